"""Per-layer analysis of a model: the paper's architecture table with parameters, multiply-adds and memory.

Multiply-adds count convolutions and linear layers (as torchvision, timm and the paper do); BatchNorm,
activations and additions are left out, which is also what ``torch.utils.flop_counter`` counts (2 FLOPs a MAC).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from mobilenetv2.analysis.memory import ACTIVATION_BYTES, numel, streamed_memory
from mobilenetv2.models.base import MobileNet
from mobilenetv2.models.checks import check_resolution


@dataclass
class LayerRow:
    """One row of the table: a stage of the paper's Table 2, or the pooling/classifier rows."""

    name: str
    input: str
    operator: str
    t: int | None
    c: int | None
    n: int | None
    s: int | None
    params: int
    macs: int
    output: str
    output_elements: int


@dataclass
class ModelProfile:
    """Totals and the per-layer table of one model at one input resolution."""

    model: str
    arch: dict[str, Any]
    resolution: int
    params: int
    params_without_bn: int
    macs: int
    size_fp32_mb: float
    size_int8_mb: float
    rows: list[LayerRow] = field(default_factory=list)
    blocks: list[LayerRow] = field(default_factory=list)
    activation_memory: list[dict[str, Any]] = field(default_factory=list)
    streamed_memory: dict[str, Any] = field(default_factory=dict)  # the paper's section 5.1 accounting (memory.py)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_macs(model: nn.Module, resolution: int = 224, in_chans: int = 3) -> int:
    """Multiply-adds of one forward pass at ``resolution`` (batch 1)."""
    per_module = _trace(model, resolution, in_chans)[0]
    return sum(per_module.values())


def _conv_linear_macs(module: nn.Module, out: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0] * module.kernel_size[1] * (module.in_channels // module.groups)
        return out.numel() * k
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    return 0


def _trace(model: nn.Module, resolution: int, in_chans: int):
    """Run one image through the model; return MACs per leaf module name and in/out shapes per module."""
    macs: dict[str, int] = {}
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    hooks = []
    for name, module in model.named_modules():
        def hook(mod, inputs, output, name=name):
            if inputs and isinstance(inputs[0], torch.Tensor) and isinstance(output, torch.Tensor):
                shapes[name] = (tuple(inputs[0].shape), tuple(output.shape))
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                macs[name] = _conv_linear_macs(mod, output)
        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_chans, resolution, resolution))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return macs, _complete(model, shapes)


def _complete(model: nn.Module, shapes: dict) -> dict:
    """Shapes also for modules whose parts ran without the module itself (SSDLite taps a block's expansion): the
    first part's input and the last part's output."""
    for name, _ in model.named_modules():
        if name and name not in shapes:
            parts = [v for k, v in shapes.items() if k.startswith(name + ".")]
            if parts:
                shapes[name] = (parts[0][0], parts[-1][1])
    return shapes


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[2]}x{shape[3]}x{shape[1]}" if len(shape) == 4 else f"1x1x{shape[-1]}"


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def profile(model: MobileNet, resolution: int = 224) -> ModelProfile:
    """The paper-style table of ``model`` at ``resolution`` x ``resolution``, with totals."""
    check_resolution(resolution)
    macs, shapes = _trace(model, resolution, model.in_chans)
    params = _params(model)
    bn_params = sum(_params(m) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))

    def prefix_macs(prefix: str) -> int:
        return sum(v for k, v in macs.items() if k == prefix or k.startswith(prefix + "."))

    rows, blocks = [], []
    for stage in model.stages:
        first, last = f"features.{stage.indices[0]}", f"features.{stage.indices[-1]}"
        stage_params = sum(_params(model.features[i]) for i in stage.indices)
        stage_macs = sum(prefix_macs(f"features.{i}") for i in stage.indices)
        rows.append(LayerRow(stage.name, _size(shapes[first][0]), stage.operator, stage.t, stage.c, stage.n, stage.s,
                             stage_params, stage_macs, _size(shapes[last][1]), numel(shapes[last][1])))
        for i in stage.indices:
            name = f"features.{i}"
            block = model.features[i]
            stride = getattr(block, "stride", stage.s if i == stage.indices[0] else 1)
            blocks.append(LayerRow(name, _size(shapes[name][0]), type(block).__name__, stage.t,
                                   shapes[name][1][1], 1, stride, _params(block), prefix_macs(name),
                                   _size(shapes[name][1]), numel(shapes[name][1])))
    if hasattr(model, "extras"):
        rows += _detection_rows(model, shapes, prefix_macs)
    elif any(isinstance(m, nn.Linear) for m in model.classifier.modules()):
        rows += _classifier_rows(model, shapes, prefix_macs)
    else:
        rows += _dense_head_rows(model, shapes, prefix_macs)
    total_macs = sum(macs.values())
    return ModelProfile(
        model=model.arch["name"], arch=model.arch, resolution=resolution, params=params,
        params_without_bn=params - bn_params, macs=total_macs,
        size_fp32_mb=round(params * 4 / 1e6, 3), size_int8_mb=round(params / 1e6, 3),
        rows=rows, blocks=blocks, activation_memory=activation_memory(model, shapes),
        streamed_memory=streamed_memory(model, shapes).to_dict(),
    )


def _classifier_rows(model: MobileNet, shapes: dict, prefix_macs) -> list[LayerRow]:
    pooled = shapes["features"][1]
    out = shapes["classifier"][1]
    return [LayerRow("pool", _size(pooled), f"avgpool {pooled[2]}x{pooled[3]}", None, None, 1, None, 0, 0,
                     f"1x1x{pooled[1]}", pooled[1]),
            LayerRow("classifier", f"1x1x{pooled[1]}", "linear (conv2d 1x1)", None, out[-1], None, None,
                     _params(model.classifier), prefix_macs("classifier"), f"1x1x{out[-1]}", out[-1])]


def _dense_head_rows(model: MobileNet, shapes: dict, prefix_macs) -> list[LayerRow]:
    """A segmentation head: one row per part of ``classifier`` that ran, then the upsampling to the input size."""
    rows = []
    for name, module in model.classifier.named_modules():
        if name.count(".") > 1 or not name or isinstance(module, nn.ModuleList) or f"classifier.{name}" not in shapes:
            continue
        if name.count(".") == 1 and not name.startswith("branches."):
            continue
        shape_in, shape_out = shapes[f"classifier.{name}"]
        rows.append(LayerRow(f"head.{name}", _size(shape_in), type(module).__name__, None, shape_out[1], None, None,
                             _params(module), prefix_macs(f"classifier.{name}"), _size(shape_out), numel(shape_out)))
    out = shapes[""][1]
    rows.append(LayerRow("upsample", rows[-1].output, "bilinear resize", None, out[1], None, None, 0, 0, _size(out), numel(out)))
    return rows


def _detection_rows(model: MobileNet, shapes: dict, prefix_macs) -> list[LayerRow]:
    """SSDLite: one row per extra feature layer, then the box and class predictors of all six maps."""
    rows = []
    for i, extra in enumerate(model.extras):
        shape_in, shape_out = shapes[f"extras.{i}"]
        rows.append(LayerRow(f"extra{i + 1}", _size(shape_in), "1x1, dw 3x3 s2, 1x1", None, shape_out[1], 1, 2,
                             _params(extra), prefix_macs(f"extras.{i}"), _size(shape_out), numel(shape_out)))
    out = shapes[""][1]
    anchors = f"{out[1]} anchors"
    for part, what in (("box", "boxes x4"), ("cls", f"classes x{out[2] - 4}")):
        module = getattr(model.classifier, part)
        rows.append(LayerRow(f"{part}_predictors", "6 maps", "dw 3x3 + 1x1 (SSDLite)", None, None, None, 1,
                             _params(module), prefix_macs(f"classifier.{part}"), f"{anchors}, {what}", 0))
    return rows


def activation_memory(model: MobileNet, shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]) -> list[dict[str, Any]]:
    """Per spatial resolution: the largest tensor between blocks (what inference must keep, as in the paper's
    Table 3, the expansion inside a bottleneck being computed in slices) and the naive peak of any single layer
    (its input plus output), both with 16-bit activations, in KB (1000 bytes)."""
    kept: dict[int, int] = defaultdict(int)
    kept_channels: dict[int, int] = defaultdict(int)
    naive: dict[int, int] = defaultdict(int)
    input_shape = shapes["features.0"][0]
    kept[input_shape[2]] = numel(input_shape)
    kept_channels[input_shape[2]] = input_shape[1]
    for i in range(len(model.features)):
        out = shapes[f"features.{i}"][1]
        if numel(out) > kept[out[2]]:
            kept[out[2]], kept_channels[out[2]] = numel(out), out[1]
    for name, module in model.features.named_modules(prefix="features"):
        if name in shapes and not list(module.children()) and len(shapes[name][1]) == 4:
            inp, out = shapes[name]
            naive[out[2]] = max(naive[out[2]], numel(inp) + numel(out))
    return [
        {"resolution": f"{r}x{r}", "max_channels": kept_channels[r], "kept_kb": round(kept[r] * ACTIVATION_BYTES / 1e3, 1),
         "naive_peak_kb": round(naive.get(r, kept[r]) * ACTIVATION_BYTES / 1e3, 1)}
        for r in sorted(kept, reverse=True)
    ]
