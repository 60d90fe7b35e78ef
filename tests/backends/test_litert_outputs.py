"""What a .tflite output holds, read past QUANTIZE, DEQUANTIZE and RESHAPE: a SOFTMAX requantized to uint8 (as TF2's
post-training-quantized classifiers end) stays probabilities, and is not softmaxed a second time by predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from mobilenetv2.backends.litert import output_kind
from mobilenetv2.cli import main


class FakeInterpreter:
    """The three calls ``output_kind`` makes, on a made-up graph of (op name, inputs, outputs)."""

    def __init__(self, ops: list[tuple[str, list[int], list[int]]], output: int, shapes: dict[int, list[int]] | None = None):
        self.ops = [{"index": i, "op_name": name, "inputs": inputs, "outputs": outputs}
                    for i, (name, inputs, outputs) in enumerate(ops)]
        self.output, self.shapes = output, shapes or {}

    def _get_ops_details(self):
        return self.ops

    def get_output_details(self):
        return [{"index": self.output}]

    def _get_tensor_details(self, index, _subgraph):
        return {"shape": np.array(self.shapes[index])}


@pytest.mark.parametrize(("tail", "kind"), [
    (["SOFTMAX"], "probabilities"),
    (["SOFTMAX", "QUANTIZE"], "probabilities"),
    (["SOFTMAX", "DEQUANTIZE"], "probabilities"),
    (["SOFTMAX", "RESHAPE", "QUANTIZE"], "probabilities"),
    (["FULLY_CONNECTED", "DEQUANTIZE"], "logits"),
    (["CONV_2D", "RESHAPE", "QUANTIZE"], "logits"),
    (["SOFTMAX", "FULLY_CONNECTED", "DEQUANTIZE"], "logits"),  # a layer after the softmax: no longer probabilities
])
def test_the_output_is_what_the_last_computing_operator_makes(tail, kind):
    ops = [("MEAN", [0], [1])] + [(name, [i + 1], [i + 2]) for i, name in enumerate(tail)]
    assert output_kind(FakeInterpreter(ops, output=len(tail) + 1)) == (kind, None)


def test_class_indices_behind_a_cast_keep_their_class_count_and_delegate_nodes_are_skipped():
    ops = [("CONV_2D", [0], [1]), ("ARG_MAX", [1], [2]), ("RESHAPE", [2], [3]), ("DELEGATE", [0], [3])]
    assert output_kind(FakeInterpreter(ops, output=3, shapes={1: [1, 8, 8, 21]})) == ("class_indices", 21)


def test_an_output_that_is_a_graph_input_is_taken_as_it_is():
    assert output_kind(FakeInterpreter([("QUANTIZE", [0], [1])], output=1)) == ("logits", None)


class WithSoftmax(nn.Module):
    """One of our classifiers with its probabilities as the output, as TF2's Keras classifiers are exported."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.in_chans = model, model.in_chans

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), 1)


@pytest.fixture(scope="module")
def softmax_uint8(tmp_path_factory, randomise_bn):
    """MobileNetV2 0.35 (5 classes, 64 px) ending in SOFTMAX then QUANTIZE to uint8, quantized as ``quantize`` does."""
    pytest.importorskip("litert_torch", reason="LiteRT export needs the [mobile] extra")
    from mobilenetv2.formats.tflite import convert_nhwc, quantize_full_integer, set_io_type
    from mobilenetv2.models import create_model
    from mobilenetv2.spec import Preprocessing
    from mobilenetv2.weights import CheckpointMeta

    torch.manual_seed(0)
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=5)
    randomise_bn(model)
    with torch.no_grad():
        model.classifier[1].weight.mul_(30)  # confident outputs: far from uniform, so a second softmax shows
    model.eval()
    folder = tmp_path_factory.mktemp("softmax")
    fp32 = folder / "fp32.tflite"
    meta = CheckpointMeta.for_model(model, preprocessing=Preprocessing(input_size=64))
    fp32.write_bytes(convert_nhwc(WithSoftmax(model), meta))
    calibration = [np.random.default_rng(0).standard_normal((8, 3, 64, 64)).astype(np.float32)]
    out = folder / "softmax_uint8.tflite"  # no metadata beside it: read as a published file is, by its tensors
    out.write_bytes(set_io_type(quantize_full_integer(fp32, calibration), "uint8"))
    return out


@pytest.mark.slow
def test_a_softmax_requantized_to_uint8_is_predicted_with_its_own_probabilities(softmax_uint8, shared_data, tmp_path,
                                                                                capsys):
    from mobilenetv2.backends.litert import dequantize, open_interpreter, quantize
    from mobilenetv2.inference import load_predictor

    it = open_interpreter(softmax_uint8)
    names = [op["op_name"] for op in it._get_ops_details() if op["op_name"] != "DELEGATE"]
    assert names[-2:] == ["SOFTMAX", "QUANTIZE"] and it.get_output_details()[0]["dtype"] == np.uint8
    photos = [str(shared_data / "tflite" / name) for name in ("grace_hopper.bmp", "cat.bmp")]  # BMP: decoded at full size
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"class {i}\n" for i in range(5)))
    assert main(["predict", str(softmax_uint8), *photos, "--labels", str(labels), "--format", "jsonl", "--top-k", "5"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    predictor = load_predictor(softmax_uint8)
    for photo, row in zip(photos, rows, strict=True):
        assert sum(row["probabilities"]) == pytest.approx(1.0, abs=0.02)  # uint8 steps of 1/256 on each of 5 classes
        pixels, _ = predictor.prepare(photo)
        (inp,), out = it.get_input_details(), it.get_output_details()[0]
        nhwc = np.ascontiguousarray(predictor.normalize(pixels).transpose(0, 2, 3, 1))
        it.set_tensor(inp["index"], quantize(nhwc, inp))
        it.invoke()
        own = dequantize(it.get_tensor(out["index"]), out)[0]
        own = own / own.sum()  # predict renormalises the file's probabilities (their uint8 rounding need not sum to 1)
        assert row["probabilities"] == pytest.approx(sorted(own, reverse=True), abs=1e-3)
        assert max(row["probabilities"]) > 0.3  # softmaxed twice, 5 probabilities would all be near 1/5
