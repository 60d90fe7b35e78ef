"""ExecuTorch programs (``.pte``) for on-device inference, delegated to XNNPACK: fp32 (BatchNorm folded) or int8 by
PT2E static quantization with XNNPACK's quantizer.

The program has a static batch of 1 (what on-device apps run; a dynamic batch would make ExecuTorch plan its input
buffer for the largest allowed batch). It has no metadata field: class names and preprocessing go to FILE.pte.json.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mobilenetv2.backends.executorch import require_executorch
from mobilenetv2.errors import UserError, first_line
from mobilenetv2.formats.base import Format, QuantizeOptions
from mobilenetv2.models.fuse import fuse_bn
from mobilenetv2.tasks import get_task
from mobilenetv2.weights import CheckpointMeta

WEIGHTED = ("aten.conv2d.default", "aten.linear.default")  # where a float tail starts (as formats/onnx.py's tail_nodes)


def _example(model: nn.Module, meta: CheckpointMeta) -> torch.Tensor:
    size = meta.preprocessing.input_size
    return torch.randn(1, model.in_chans, size, size)


def tail_nodes(graph: torch.fx.Graph) -> set[torch.fx.Node]:
    """The nodes between the last weighted layers (conv2d, linear) and the output: a detector's box decoding and concat."""
    output = next(node for node in graph.nodes if node.op == "output")
    pending, tail = list(output.all_input_nodes), set()
    while pending:
        node = pending.pop()
        if node in tail or node.op != "call_function" or str(node.target) in WEIGHTED:
            continue
        tail.add(node)
        pending.extend(node.all_input_nodes)
    return tail


def _quantizer(config, float_tail: bool):
    """XNNPACK's quantizer at ``config``; with ``float_tail`` it leaves the tail unannotated, so it runs in float."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer

    class FloatTailQuantizer(XNNPACKQuantizer):
        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            model = super().annotate(model)
            for node in tail_nodes(model.graph):
                node.meta.pop("quantization_annotation", None)
            return model

    return (FloatTailQuantizer if float_tail else XNNPACKQuantizer)().set_global(config)


def _lower_to_xnnpack(program: torch.export.ExportedProgram) -> bytes:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer


class PteFormat(Format):
    name = "pte"
    sidecar = True

    def export(self, model: nn.Module, path: Path, meta: CheckpointMeta, *, opset: int | None = None) -> None:
        """``torch.export`` the BN-folded model at batch 1, lower it to ExecuTorch with the XNNPACK delegate."""
        require_executorch("executorch.backends.xnnpack.partition.xnnpack_partitioner")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                buffer = _lower_to_xnnpack(torch.export.export(fuse_bn(model), (_example(model, meta),)))
        except Exception as exc:  # noqa: BLE001 - export and lowering raise many types; one line is what the user needs
            raise UserError(f"this model cannot be exported to ExecuTorch: {first_line(exc)}") from exc
        Path(path).write_bytes(buffer)

    def quantize_method(self, options: QuantizeOptions) -> str:
        if options.io:
            raise UserError("--io applies to .tflite files only")
        given = [flag for flag, used in [("--method", options.method), ("--quant-format", options.quant_format != "qdq"),
                                         ("--reduce-range", options.reduce_range)] if used]
        if given:
            raise UserError(f"{', '.join(given)} apply to ONNX (onnxruntime) only; ExecuTorch's XNNPACK quantizer "
                            f"calibrates with a histogram observer (allowed with .pte: --num-calib, --per-tensor)")
        return "histogram"

    def quantize(self, model: nn.Module, path: Path, meta: CheckpointMeta, calibration: Iterable[np.ndarray],
                 options: QuantizeOptions, *, fp32_path: Path | None = None) -> None:
        """Weights symmetric int8 (per output channel by default), activations int8 with histogram-observed ranges;
        BatchNorm is folded by the quantizer's conversion. The program has batch 1 like the fp32 one."""
        self.quantize_method(options)
        require_executorch("executorch.backends.xnnpack.partition.xnnpack_partitioner")
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        example = _example(model, meta)
        config = get_symmetric_quantization_config(is_per_channel=options.per_channel)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prepared = prepare_pt2e(torch.export.export(model.eval(), (example,)).module(),
                                        _quantizer(config, get_task(meta.task).float_output_tail))
                with torch.no_grad():
                    for batch in calibration:
                        for image in torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)):
                            prepared(image[None])  # the exported graph has batch 1
                buffer = _lower_to_xnnpack(torch.export.export(convert_pt2e(prepared), (example,)))
        except Exception as exc:  # noqa: BLE001 - export, quantizer and lowering raise many types; the cause is kept
            raise UserError(f"this model cannot be quantized for ExecuTorch: {first_line(exc)}") from exc
        Path(path).write_bytes(buffer)


FORMAT = PteFormat()
