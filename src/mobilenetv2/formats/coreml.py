"""Core ML packages (``.mlpackage``, a folder) for iPhones, iPads and Macs.

The BatchNorm-folded model goes through ``torch.export`` to coremltools, which writes an ML Program (iOS 16 / macOS 13
and later) with fp16 weights and fp16 compute; ``int8_weights`` then quantizes the weights to int8 with
``coremltools.optimize`` (linear symmetric, per output channel, tensors of 2048 values or more, coremltools' default;
activations stay fp16).

The input is an image. Core ML turns its pixels p into ``scale * p + bias``: one scale for all channels, one bias per
channel. A per-channel std (ImageNet's) is not one scale, so the file's scale uses the mean of the stds and the rest
(mean std / std, 0.98 to 1.02 per channel for ImageNet) is folded into the first convolution's weights: exact, zero
padding being zero on both sides. A classifier ends with a softmax and Core ML's classifier (``classLabel`` and
``classLabel_probs`` by label); a segmentation model with the argmax at the input's resolution (``mask``, int32
[1, H, W]). Task, class names and preprocessing are in the model's user-defined metadata.

Core ML runs on macOS and iOS only. The export is checked everywhere through what can be read: the PyTorch graph
given to the converter against the model (on real or synthetic pixels), and the written file's spec and program
(input size, colour space, scale and bias, the folded first convolution, labels, outputs, weight types). Its
predictions are compared with PyTorch's where Core ML runs; elsewhere the check says it was skipped and why.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from mobilenetv2.backends.base import Runtime, RuntimeOptions
from mobilenetv2.backends.coreml import (
    INPUT_NAME,
    LABEL_OUTPUT,
    MASK_OUTPUT,
    PROBS_OUTPUT,
    CoreMLRuntime,
    check_available,
    from_pixels,
    label_names,
    require_coremltools,
    to_pixels,
    unavailable_reason,
)
from mobilenetv2.errors import UserError, first_line
from mobilenetv2.formats.base import Format, meta_from_entries, metadata_entries
from mobilenetv2.formats.input_scaling import InputScaling, fold_first_conv
from mobilenetv2.formats.verify import Verification, verification_batch, verify_outputs
from mobilenetv2.spec import Preprocessing
from mobilenetv2.tasks import get_task
from mobilenetv2.weights import CheckpointMeta

TASKS = ("classification", "segmentation")
META_WEIGHTS = "mobilenetv2.weights"  # "fp16" or "int8": the weights' type (compute is fp16 either way)
INT8_WEIGHTS = {"mode": "linear_symmetric", "dtype": "int8", "granularity": "per_channel"}
CLEAR_MARGIN = 0.05  # a classifier's prediction counts when PyTorch's two best probabilities are further apart
PROBABILITY_TOLERANCE = {"fp16": 0.02, "int8": 0.1}  # classifier: largest |probability difference| from PyTorch's
PIXEL_AGREEMENT = {"fp16": 0.99, "int8": 0.97}  # segmentation: Core ML's mask against PyTorch's


class _CoreMLHead(nn.Module):
    """The graph coremltools converts: the model, then a softmax (classifier) or the argmax mask (segmentation)."""

    def __init__(self, model: nn.Module, task: str) -> None:
        super().__init__()
        self.model, self.task = model, task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out.argmax(1).to(torch.int32) if self.task == "segmentation" else out.softmax(1)


@dataclass
class SpecCheck:
    """What the written file says about itself, against what was asked."""

    facts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def expect(self, ok: bool, fact: str, problem: str) -> None:
        (self.facts if ok else self.problems).append(fact if ok else problem)


@dataclass
class CoreMLCheck:
    """The checks of one Core ML export: the graph in PyTorch, the file's spec, Core ML's predictions (or why not)."""

    graph: Verification
    spec: SpecCheck
    predictions: dict[str, Any] | None
    skipped: str | None

    @property
    def passed(self) -> bool:
        return self.graph.passed and not self.spec.problems and (self.predictions is None or self.predictions["passed"])

    def summary(self) -> str:
        graph = self.graph.summary().replace("verify: ", "verify: the graph given to coremltools (normalisation folded) "
                                                        "against PyTorch: ", 1)
        spec = "; ".join(self.spec.problems) if self.spec.problems else ", ".join(self.spec.facts)
        lines = [graph, f"spec: {'FAIL' if self.spec.problems else 'PASS'}: {spec}"]
        if self.predictions is not None:
            lines.append(f"Core ML predictions: {'PASS' if self.predictions['passed'] else 'FAIL'}: {self.predictions['text']}")
        else:
            lines.append(f"Core ML predictions against PyTorch: skipped: {self.skipped}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "graph": self.graph.to_dict(), "spec": {"facts": self.spec.facts,
                "problems": self.spec.problems}, "predictions": self.predictions, "predictions_skipped": self.skipped}


class CoreMLFormat(Format):
    name = "coreml"
    checks_itself = True

    def export(self, model: nn.Module, path: Path, meta: CheckpointMeta, *, opset: int | None = None,
               int8_weights: bool = False) -> None:
        """Write ``model`` as an ML Program package at ``path`` (fp16; int8 weights with ``int8_weights``)."""
        ct = _prepare(model, meta, opset)
        folded, scaling = coreml_graph(model, meta)
        _write(ct, folded, scaling, path, meta, int8_weights)

    def export_checked(self, model: nn.Module, path: Path, meta: CheckpointMeta, *, opset: int | None = None,
                       images: list[str] | None = None, int8_weights: bool = False) -> CoreMLCheck:
        """Export, then check the graph in PyTorch, the file's spec, and Core ML's predictions where it runs."""
        ct = _prepare(model, meta, opset)
        model = model.eval()
        folded, scaling = coreml_graph(model, meta)
        pixels, source = verification_pixels(meta.preprocessing, images, model.in_chans)
        with torch.inference_mode():
            reference = model(torch.from_numpy(from_pixels(pixels, meta.preprocessing))).numpy()
            graph = folded(torch.from_numpy(scaling.apply(pixels))).numpy()
        graph_check = verify_outputs(get_task(meta.task), reference, graph, source)
        _write(ct, folded, scaling, path, meta, int8_weights)
        spec = check_spec(path, meta, scaling, folded, int8_weights)
        predictions, skipped = check_predictions(path, meta, pixels, reference, int8_weights)
        return CoreMLCheck(graph_check, spec, predictions, skipped)

    def read_meta(self, path: Path) -> tuple[CheckpointMeta, str | None]:
        mlmodel = _load(path)
        spec = mlmodel.get_spec()
        image = spec.description.input[0].type.imageType if spec.description.input else None
        entries = dict(spec.description.metadata.userDefined)
        meta, precision = meta_from_entries(entries, path, input_size=image.width if image and image.width else None)
        if meta.task == "classification" and not meta.class_names:
            classify = [op for op in _program(mlmodel).functions["main"].operations if op.op_type == "classify"]
            if classify:
                meta = meta.replace(class_names=[str(c) for c in classify[0].classes.val])
        return meta, precision

    def open(self, path: Path, backend: str, options: RuntimeOptions, meta: CheckpointMeta | None = None,
             precision: str | None = None) -> Runtime:
        if not Path(path).is_dir():
            raise UserError(f"{path} is not a Core ML package (a .mlpackage is a folder)")
        check_available(path)
        return super().open(path, backend, options, meta, precision)


def _prepare(model: nn.Module, meta: CheckpointMeta, opset: int | None) -> ModuleType:
    """One line for what Core ML cannot take, before any work; coremltools itself."""
    if opset is not None:
        raise UserError("--opset is an ONNX option; Core ML packages have none")
    if meta.task not in TASKS:
        raise UserError(f"Core ML export writes classifiers and segmentation models, not {meta.task} (an SSDLite "
                        f"model needs a separate NMS model in a Core ML pipeline, not written here): export it to "
                        f"onnx or pte instead")
    InputScaling.of(meta.preprocessing, getattr(model, "in_chans", 3))
    return require_coremltools()


def coreml_graph(model: nn.Module, meta: CheckpointMeta) -> tuple[nn.Module, InputScaling]:
    """The BatchNorm-folded copy of ``model`` with the per-channel rest of the normalisation in its first conv, and
    the scale and bias Core ML applies to the pixels before it."""
    scaling = InputScaling.of(meta.preprocessing, model.in_chans)
    return fold_first_conv(model, scaling, "Core ML export"), scaling


def verification_pixels(pre: Preprocessing, images: list[str] | None, channels: int,
                        count: int = 4) -> tuple[np.ndarray, str]:
    """uint8 NHWC pixels to check on: real images as the eval transform prepares them, or seeded random pixels."""
    if images:
        batch, source = verification_batch(pre, images, in_chans=channels)
        return to_pixels(batch.numpy(), pre), source
    size = pre.input_size
    return np.random.default_rng(0).integers(0, 256, (count, size, size, channels), dtype=np.uint8), "synthetic images"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """coremltools draws progress bars and warns on stderr while it converts: one line per export is what we print."""
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _write(ct: ModuleType, folded: nn.Module, scaling: InputScaling, path: Path, meta: CheckpointMeta,
           int8_weights: bool) -> None:
    mlmodel = _convert(ct, _CoreMLHead(folded, meta.task), scaling, meta, folded.in_chans)
    if int8_weights:
        import coremltools.optimize.coreml as cto

        config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(**INT8_WEIGHTS))
        with _quiet():
            mlmodel = cto.linear_quantize_weights(mlmodel, config=config)
    _describe(mlmodel, meta, scaling, "int8" if int8_weights else "fp16")
    with _quiet():
        mlmodel.save(str(path))


def _convert(ct: ModuleType, head: nn.Module, scaling: InputScaling, meta: CheckpointMeta, channels: int) -> Any:
    size = meta.preprocessing.input_size
    example = torch.zeros(1, channels, size, size)
    try:
        with _quiet():
            program = torch.export.export(head.eval(), (example,)).run_decompositions({})
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch.export raises many types; one line is what the user needs
        raise UserError(f"this model cannot be exported for Core ML (torch.export): {first_line(exc)}") from exc
    image = ct.ImageType(name=INPUT_NAME, shape=tuple(example.shape), scale=scaling.scale,
                         bias=list(scaling.bias) if channels == 3 else scaling.bias[0],
                         color_layout=ct.colorlayout.RGB if channels == 3 else ct.colorlayout.GRAYSCALE)
    task = ({"classifier_config": ct.ClassifierConfig(label_names(meta))} if meta.task == "classification"
            else {"outputs": [ct.TensorType(name=MASK_OUTPUT)]})
    try:
        with _quiet():
            return ct.convert(program, inputs=[image], convert_to="mlprogram", compute_precision=ct.precision.FLOAT16,
                              minimum_deployment_target=ct.target.iOS16, **task)
    except Exception as exc:  # noqa: BLE001 - the converter raises many types for ops and shapes it cannot take
        raise UserError(f"coremltools cannot convert this model: {first_line(exc)}") from exc


def _describe(mlmodel: Any, meta: CheckpointMeta, scaling: InputScaling, weights: str) -> None:
    """Our metadata, and descriptions an app developer sees in Xcode."""
    for key, value in {**metadata_entries(meta, "fp16"), META_WEIGHTS: json.dumps(weights)}.items():
        mlmodel.user_defined_metadata[key] = value
    name = meta.architecture.get("name", "model")
    mlmodel.short_description = f"{name} ({meta.task}), {weights} weights, exported by mobilenetv2"
    mlmodel.input_description[INPUT_NAME] = _input_text(meta.preprocessing, len(scaling.bias))
    if meta.task == "segmentation":
        mlmodel.output_description[MASK_OUTPUT] = "class index per pixel (int32, 1 x H x W, the input's size)"
    else:
        mlmodel.output_description[LABEL_OUTPUT] = "the most probable class"
        mlmodel.output_description[PROBS_OUTPUT] = "the probability of every class (softmax)"


def _input_text(pre: Preprocessing, channels: int) -> str:
    kind, size = "RGB" if channels == 3 else "grayscale", pre.input_size
    if pre.resize_mode == "squash":
        return f"{kind} image {size}x{size}: the whole image resized to {size}x{size} ({pre.interpolation}; Vision: scaleFill)"
    return (f"{kind} image {size}x{size}: resize the shorter side to {pre.resize_size} ({pre.interpolation}) and take "
            f"the centre {size}x{size} (crop {pre.crop_pct:g}; Vision's centerCrop is crop 1)")


def _load(path: Path) -> Any:
    ct = require_coremltools()
    if not Path(path).is_dir():
        raise UserError(f"{path} is not a Core ML package (a .mlpackage is a folder)")
    try:
        with _quiet():
            return ct.models.MLModel(str(path), skip_model_load=True)
    except Exception as exc:  # noqa: BLE001 - a damaged package raises many types
        raise UserError(f"{path} is not a Core ML package coremltools can read ({first_line(exc)})") from exc


def _program(mlmodel: Any) -> Any:
    """The package's ML Program with its weights, as coremltools' MIL objects (readable on any system)."""
    from coremltools.converters.mil.frontend.milproto.load import load

    spec = mlmodel.get_spec()
    with _quiet():
        return load(spec, spec.specificationVersion, file_weights_dir=mlmodel.weights_dir)


def check_spec(path: Path, meta: CheckpointMeta, scaling: InputScaling, folded: nn.Module, int8_weights: bool) -> SpecCheck:
    """Read the written package back: input, scale and bias, the folded first conv, labels, outputs, weight types."""
    mlmodel = _load(path)
    spec, ops = mlmodel.get_spec(), list(_program(mlmodel).functions["main"].operations)
    check = SpecCheck()
    _check_input(check, spec, meta, len(scaling.bias))
    _check_scaling(check, ops, scaling)
    _check_first_conv(check, ops, folded, scaling.factors)
    _check_outputs(check, spec, ops, meta)
    _check_weights(check, ops, folded, int8_weights)
    stored = dict(spec.description.metadata.userDefined)
    check.expect(all(k in stored for k in metadata_entries(meta)), "metadata (task, classes, preprocessing)",
                 "the mobilenetv2 metadata is missing")
    return check


def _check_input(check: SpecCheck, spec: Any, meta: CheckpointMeta, channels: int) -> None:
    size, inputs = meta.preprocessing.input_size, spec.description.input
    image = inputs[0].type.imageType if len(inputs) == 1 and inputs[0].type.HasField("imageType") else None
    space = "RGB" if channels == 3 else "GRAYSCALE"
    ok = (image is not None and inputs[0].name == INPUT_NAME and (image.width, image.height) == (size, size)
          and spec.description.input[0].type.imageType.colorSpace == type(image).ColorSpace.Value(space))
    check.expect(ok, f"input {INPUT_NAME!r} {size}x{size} {space}", f"the input is not one {size}x{size} {space} image")


def _check_scaling(check: SpecCheck, ops: list, scaling: InputScaling) -> None:
    mul = next((op for op in ops if op.op_type == "mul" and op.x.name == INPUT_NAME), None)
    add = next((op for op in ops if mul is not None and op.op_type == "add" and op.x is mul.outputs[0]), None)
    scale = float(mul.y.val) if mul is not None else None
    bias = np.asarray(add.y.val, np.float64).ravel() if add is not None else np.array([])
    ok = (scale is not None and np.isclose(scale, scaling.scale, rtol=1e-6) and bias.shape == (len(scaling.bias),)
          and np.allclose(bias, scaling.bias, rtol=1e-6, atol=1e-7))
    check.expect(ok, f"scale {scaling.scale:.6g} bias [{', '.join(f'{b:.4f}' for b in scaling.bias)}]",
                 f"the image scale/bias in the file ({scale}, {bias.tolist()}) are not {scaling.scale:.6g}, {list(scaling.bias)}")


def _check_first_conv(check: SpecCheck, ops: list, folded: nn.Module, factors: tuple[float, ...]) -> None:
    """The per-channel rest of the normalisation reached the file: its first conv holds the folded weights."""
    conv = next((op for op in ops if op.op_type == "conv"), None)
    producer = conv.weight.op if conv is not None else None
    if producer is None or producer.op_type != "const":
        check.facts.append("first conv weights compressed, not compared")
        return
    expected = next(m for m in folded.modules() if isinstance(m, nn.Conv2d)).weight.detach().half().numpy()
    stored = np.asarray(producer.outputs[0].val)
    ok = stored.shape == expected.shape and np.allclose(stored.astype(np.float32), expected.astype(np.float32), atol=1e-3,
                                                        rtol=1e-3)
    folded_text = ("one std for all channels, nothing to fold" if all(abs(f - 1) < 1e-12 for f in factors)
                   else "the per-channel std folded into the first conv")
    check.expect(ok, f"{folded_text} (the file's first conv weights match)",
                 "the first conv's weights in the file are not the folded weights")


def _check_outputs(check: SpecCheck, spec: Any, ops: list, meta: CheckpointMeta) -> None:
    outputs = {o.name: o.type for o in spec.description.output}
    if meta.task == "segmentation":
        mask = outputs.get(MASK_OUTPUT)
        size = meta.preprocessing.input_size
        ok = (list(outputs) == [MASK_OUTPUT] and mask.HasField("multiArrayType")
              and list(mask.multiArrayType.shape) == [1, size, size]
              and mask.multiArrayType.dataType == type(mask.multiArrayType).ArrayDataType.Value("INT32"))
        check.expect(ok, f"output {MASK_OUTPUT} int32 1x{size}x{size}", f"the outputs are not one int32 {MASK_OUTPUT}")
        return
    classify = next((op for op in ops if op.op_type == "classify"), None)
    labels = [str(c) for c in classify.classes.val] if classify is not None else []
    ok = (labels == label_names(meta) and set(outputs) == {LABEL_OUTPUT, PROBS_OUTPUT}
          and spec.description.predictedFeatureName == LABEL_OUTPUT)
    check.expect(ok, f"classifier with {len(labels)} labels ({LABEL_OUTPUT}, {PROBS_OUTPUT})",
                 f"the classifier's labels or outputs differ ({len(labels)} labels, outputs {sorted(outputs)})")


def _check_weights(check: SpecCheck, ops: list, folded: nn.Module, int8_weights: bool) -> None:
    kinds = Counter(_weight_kind(op.weight.op) for op in ops if op.op_type in ("conv", "linear"))
    layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in folded.modules())
    text = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) + f" weight tensors ({layers} layers)"
    ok = (kinds["int8"] > 0 if int8_weights else set(kinds) == {"fp16"}) and sum(kinds.values()) == layers
    check.expect(ok, text, f"weights are not {'int8' if int8_weights else 'fp16'} as asked: {text}")


def _weight_kind(producer: Any) -> str:
    if producer is None:
        return "computed"
    if producer.op_type.startswith("constexpr"):
        data = next((v.val for v in producer.inputs.values() if v.val is not None and np.ndim(v.val) > 1), None)
        return str(data.dtype) if data is not None else producer.op_type
    value = producer.outputs[0].val
    return {"float16": "fp16", "float32": "fp32"}.get(str(np.asarray(value).dtype), str(np.asarray(value).dtype))


def check_predictions(path: Path, meta: CheckpointMeta, pixels: np.ndarray, reference: np.ndarray,
                      int8_weights: bool) -> tuple[dict[str, Any] | None, str | None]:
    """Core ML's outputs on ``pixels`` against PyTorch's ``reference``, or (None, why not) where Core ML cannot run."""
    reason = unavailable_reason()
    if reason is not None:
        return None, f"Core ML runs on macOS/iOS only ({reason})"
    runtime = CoreMLRuntime(path, meta, RuntimeOptions(), format="coreml")
    outputs = np.concatenate([runtime.from_native(runtime.run(one[None])) for one in pixels])
    return compare_predictions(meta.task, reference, outputs, "int8" if int8_weights else "fp16"), None


def compare_predictions(task: str, reference: np.ndarray, outputs: np.ndarray, weights: str) -> dict[str, Any]:
    """A classifier: the same class on every image PyTorch is clear about, probabilities within a tolerance; a
    segmentation model: the pixel agreement of the masks."""
    if task == "segmentation":
        agreement = float((reference.argmax(1) == outputs.argmax(1)).mean())
        passed = agreement >= PIXEL_AGREEMENT[weights]
        return {"passed": passed, "pixel_agreement": agreement,
                "text": f"mask pixel agreement {agreement:.3%} (>= {PIXEL_AGREEMENT[weights]:.0%}) on {len(reference)} images"}
    expected = torch.from_numpy(reference).float().softmax(1).numpy()
    got = np.exp(outputs)
    top2 = np.sort(expected, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > CLEAR_MARGIN
    same = expected.argmax(1) == got.argmax(1)
    agreement = float(same[clear].mean()) if clear.any() else 1.0
    diff = float(np.abs(expected - got).max())
    tolerance = PROBABILITY_TOLERANCE[weights]
    return {"passed": agreement == 1.0 and diff <= tolerance, "top1_agreement": agreement, "max_prob_diff": diff,
            "text": f"same class on {agreement:.0%} of {int(clear.sum())} clear images of {len(reference)}, "
                    f"max |probability diff| {diff:.2e} (tolerance {tolerance:g})"}


FORMAT = CoreMLFormat()
