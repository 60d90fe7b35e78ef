"""`benchmark` of a segmentation model: our paths at the checkpoint's size without a torchvision twin, batch 1 by
default for large inputs, and the TFLite interpreter timed beside them on the published DeepLab file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mobilenetv2.cli import main
from mobilenetv2.data import Preprocessing
from mobilenetv2.errors import UserError
from mobilenetv2.models import create_model
from mobilenetv2.weights import save_checkpoint

HALF = "deeplabv3_mnv2_dm05_pascal_quant.tflite"


def _checkpoint(folder, size: int):
    torch.manual_seed(0)
    model = create_model("deeplabv3_mobilenet_v2", num_classes=3, width_mult=0.35).eval()
    pre = Preprocessing(input_size=size, crop_pct=1.0, resize_mode="squash", mean=(0.5,) * 3, std=(0.5,) * 3)
    return save_checkpoint(folder / f"seg{size}.safetensors", model, ["background", "a", "b"], pre, task="segmentation")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("seg"), 97)


@pytest.mark.slow
def test_benchmark_times_eager_and_onnx_without_a_torchvision_twin(checkpoint, capsys):
    pytest.importorskip("onnxruntime", reason="the ONNX paths need the [deploy] extra")
    assert main(["benchmark", str(checkpoint), "--batch", "1", "--rounds", "2", "--paths", "torchvision", "eager",
                 "onnx", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in report["paths"]] == ["eager", "onnx"]
    assert report["resolution"] == 97 and report["batches"] == [1] and report["cpu"].startswith("CPU: ")
    assert all(p["median_ms"]["1"] > 0 and p["size_mb"] > 0 for p in report["paths"])


def test_without_a_reference_the_table_has_no_ratio_column():
    from mobilenetv2.benchmarking.inference import BenchmarkReport, PathResult

    paths = [PathResult("eager", 2.0, 1, {1: 40.0}, {1: 45.0}),
             PathResult("int8", 0.7, 1, {1: 10.0}, {1: 11.0}, precision="int8")]
    text = BenchmarkReport("deeplabv3_mobilenet_v2()", 513, 2, 2_740_000_000, 100.0, [1], 3, paths, cpu="CPU: x").table()
    assert "vs torchvision" not in text and "vs TFLite" not in text and "- (no int8 limit)" in text


@pytest.mark.parametrize("size, batches", [(97, (1, 32)), (321, (1,)), (513, (1,))])
def test_large_inputs_default_to_batch_one(tmp_path, monkeypatch, capsys, size, batches):
    seen = {}

    class Report:
        def table(self) -> str:
            return "table"

    def fake(model, **kwargs):
        seen.update(kwargs)
        return Report()

    monkeypatch.setattr("mobilenetv2.benchmarking.inference.benchmark_inference", fake)
    assert main(["benchmark", str(_checkpoint(tmp_path, size)), "--paths", "eager"]) == 0
    assert seen["batches"] == batches and seen["resolution"] == size and seen["meta"].task == "segmentation"


@pytest.fixture(scope="module")
def published(shared_data):
    pytest.importorskip("ai_edge_litert", reason="the TFLite interpreter comes with the [interop] extra")
    return shared_data / "segmentation" / HALF


def test_the_tflite_path_times_the_published_file(published):
    import torch

    from mobilenetv2.benchmarking.inference import runners
    from mobilenetv2.formats import open_runtime

    runtime = open_runtime(published, threads=2)
    assert (runtime.backend, runtime.input_layout, runtime.input_dtype, runtime.precision) == ("litert", "NHWC", np.uint8, "int8")
    images = {1: torch.randn(1, 3, 513, 513), 32: torch.randn(32, 3, 513, 513)}
    calls = runners(runtime, images, 513)
    assert list(calls) == [1]  # the interpreter runs batch 1 only
    assert calls[1]().shape == (1, 513, 513)  # the published file ends with an ArgMax: class indices
    with pytest.raises(UserError, match="takes 513x513 images"):
        runners(runtime, {1: torch.randn(1, 3, 224, 224)}, 224)
    with pytest.raises(UserError, match="TFLite model not found"):
        open_runtime(published.with_name("missing.tflite"))


@pytest.mark.slow
def test_benchmark_beside_the_tflite_interpreter(published, tmp_path, capsys):
    ckpt = tmp_path / "half.safetensors"
    assert main(["convert", str(published), str(ckpt)]) == 0
    capsys.readouterr()
    assert main(["benchmark", str(ckpt), "--rounds", "2", "--paths", "bn_folded", "--tflite", str(published)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("CPU: ") and "at 513px" in out and "b1 vs TFLite" in out and "b32" not in out
    row = next(line for line in out.splitlines() if line.startswith("| LiteRT interpreter (XNNPACK): " + HALF))
    assert "1.00x" in row and "- (no int8 limit)" in row
