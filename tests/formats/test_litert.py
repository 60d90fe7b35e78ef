"""LiteRT export (litert-torch, NHWC), full-integer int8 (ai-edge-quantizer, --io), TensorFlow Lite Micro, and the
bad input of the .tflite paths: one line, exit 2, nothing written."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from mobilenetv2.cli import main
from mobilenetv2.models import create_model
from mobilenetv2.spec import Preprocessing
from mobilenetv2.weights import save_checkpoint

pytest.importorskip("litert_torch", reason="LiteRT export needs the [mobile] extra")


def ops_of(path) -> list[str]:
    from mobilenetv2.backends.litert import open_interpreter

    return [op["op_name"] for op in open_interpreter(path)._get_ops_details()]


def real_photos(shared_data, count: int = 4) -> list[str]:
    return [str(p) for p in sorted((shared_data / "hymenoptera_data" / "val" / "bees").glob("*.jpg"))[:count]]


def micro_checkpoint(path, size: int, randomise_bn):
    """MobileNetV2 0.35 at ``size`` with random weights and BatchNorm statistics that keep the activations alive (with
    the default zero-initialised last BatchNorm of a block they vanish, and int8 scales with them)."""
    torch.manual_seed(0)
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=2)
    randomise_bn(model)
    return save_checkpoint(path, model, class_names=["ants", "bees"], preprocessing=Preprocessing(input_size=size))


def decisive(path):
    """The checkpoint with its logits spread 30 times wider: probabilities (the files end in a softmax) that differ
    from image to image by far more than the int8 softmax's 1/256 steps."""
    from mobilenetv2.weights import load_checkpoint

    ckpt = load_checkpoint(path)
    with torch.no_grad():
        ckpt.model.classifier[-1].weight.mul_(30)
    return save_checkpoint(path, ckpt.model, class_names=ckpt.meta.class_names, preprocessing=ckpt.preprocessing)


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("tflite") / "tiny.tflite"
    code = main(["export", str(tiny_checkpoint), "--format", "tflite", "--out", str(out),
                 "--verify-images", str(shared_data / "hymenoptera_data" / "val" / "ants")])
    assert code == 0
    return out


@pytest.mark.slow
def test_export_tflite_takes_nhwc_and_matches_pytorch_on_real_photos(exported, tiny_checkpoint, shared_data, capsys):
    from mobilenetv2.formats import open_runtime
    from mobilenetv2.formats.verify import verification_batch
    from mobilenetv2.weights import load_checkpoint

    runtime = open_runtime(exported)
    assert (runtime.backend, runtime.format, runtime.precision) == ("litert", "tflite", "fp32")
    assert (runtime.input_layout, runtime.input_shape, runtime.input_dtype) == ("NHWC", (1, 64, 64, 3), np.float32)
    assert "TRANSPOSE" not in ops_of(exported)  # the graph takes NHWC itself: no layout change left for the app
    ckpt = load_checkpoint(tiny_checkpoint)
    batch, _ = verification_batch(ckpt.preprocessing, [str(shared_data / "hymenoptera_data" / "val" / "ants")])
    with torch.inference_mode():
        reference = ckpt.model.eval()(batch).numpy()
    outputs = runtime(batch)  # log-probabilities: the file ends in a softmax
    assert (outputs.argmax(1) == reference.argmax(1)).all()
    assert np.abs(outputs - torch.from_numpy(reference).log_softmax(1).numpy()).max() < 1e-4
    meta = json.loads(exported.with_name("tiny.tflite.json").read_text())
    assert meta["mobilenetv2.class_names"] == ["ants", "bees"] and meta["mobilenetv2.precision"] == "fp32"
    assert meta["mobilenetv2.input"] == {"shape": [1, 64, 64, 3], "dtype": "float32", "layout": "NHWC"}
    assert meta["mobilenetv2.output"]["holds"] == "probabilities"  # a softmax ends the file: apps read scores
    assert main(["predict", str(exported), *real_photos(shared_data, 2), "--format", "jsonl"]) == 0
    assert [sorted(json.loads(line)["labels"]) for line in capsys.readouterr().out.splitlines()] == [["ants", "bees"]] * 2


@pytest.mark.slow
@pytest.mark.parametrize("size", [96, 128])
def test_int8_tflite_runs_under_tflm_with_litert_outputs(size, shared_data, randomise_bn, tmp_path, capsys):
    pytest.importorskip("tflite_micro", reason="TensorFlow Lite Micro comes with the [mobile] extra")
    from mobilenetv2.formats import open_runtime
    from mobilenetv2.formats.verify import verification_batch

    ckpt = decisive(micro_checkpoint(tmp_path / "micro.safetensors", size, randomise_bn))
    out = tmp_path / "micro.int8.tflite"
    assert main(["quantize", str(ckpt), "--calib", str(shared_data / "hymenoptera_data" / "train"), "--num-calib", "16",
                 "--io", "int8", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["format"], report["backend"], report["method"]) == ("tflite", "litert", "min-max, int8 I/O")
    litert, micro = open_runtime(out), open_runtime(out, "tflm")
    assert micro.input_dtype == np.int8 and micro.describe()["flash_bytes"] == out.stat().st_size
    batch, _ = verification_batch(litert.preprocessing, real_photos(shared_data))
    step = litert.output["quantization"][0]  # of the int8 softmax: compared as probabilities
    expected, found = np.exp(litert(batch)), np.exp(micro(batch))
    assert np.ptp(expected) > 10 * step  # outputs that are more than rounding
    # XNNPACK (float requantisation) and TFLM's reference kernels (fixed-point multipliers) round a little apart: 2-3
    # steps of the output after 60 layers, on outputs spanning over 100 steps
    assert np.abs(expected - found).max() <= 4 * step + 1e-6
    assert (expected.argmax(1) == found.argmax(1)).all()
    assert main(["info", "--tflite", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["arena_bytes"] == micro.arena_bytes and 100_000 < info["arena_bytes"] < 1_000_000
    assert set(info["fits"]) == {"256 KiB SRAM, 1024 KiB flash", "512 KiB SRAM, 1024 KiB flash"}


@pytest.mark.slow
def test_io_type_sets_the_interface_and_keeps_the_outputs(shared_data, randomise_bn, tmp_path):
    from mobilenetv2.formats import get_format, open_runtime
    from mobilenetv2.formats.tflite import quantize_full_integer, set_io_type
    from mobilenetv2.formats.verify import verification_batch
    from mobilenetv2.weights import load_checkpoint

    ckpt = load_checkpoint(micro_checkpoint(tmp_path / "micro.safetensors", 64, randomise_bn))
    fp32 = tmp_path / "fp32.tflite"
    get_format("tflite").export(ckpt.model, fp32, ckpt.meta)
    batch, _ = verification_batch(ckpt.preprocessing, real_photos(shared_data, 8))
    int8 = quantize_full_integer(fp32, [batch])
    outputs = {}
    for io_type, dtype in (("uint8", np.uint8), ("int8", np.int8), ("float", np.float32)):
        path = tmp_path / f"{io_type}.tflite"
        path.write_bytes(set_io_type(int8, io_type))
        runtime = open_runtime(path)
        assert runtime.input_dtype == dtype and runtime.output["dtype"] == dtype
        outputs[io_type] = runtime(batch)
        ops = ops_of(path)
        assert ops.count("QUANTIZE") == {"uint8": 2, "int8": 0, "float": 1}[io_type]  # uint8: requantize in and out
    step = 0.02 * np.abs(outputs["float"]).max()
    for io_type in ("uint8", "int8"):
        assert np.abs(outputs[io_type] - outputs["float"]).max() <= step
        assert (outputs[io_type].argmax(1) == outputs["float"].argmax(1)).all()


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_tflite_only_options_are_refused_elsewhere_and_the_reverse(tiny_checkpoint, tmp_path, capsys):
    calib = str(tmp_path)
    for out, flags, message in [("m.int8.tflite", ["--method", "entropy"], "--method apply to ONNX (onnxruntime) only"),
                                ("m.int8.onnx", ["--io", "uint8"], "--io applies to .tflite files only"),
                                ("m.int8.txt", [], "quantize writes onnx, pte, tflite, openvino files")]:
        code = main(["quantize", str(tiny_checkpoint), "--calib", calib, "--out", str(tmp_path / out), *flags])
        assert code == 2 and message in one_error_line(capsys)
        assert not (tmp_path / out).exists()


def test_missing_mobile_extra_is_one_line_and_writes_nothing(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "litert_torch", None)
    out = tmp_path / "m.tflite"
    assert main(["export", str(tiny_checkpoint), "--format", "tflite", "--out", str(out)]) == 2
    assert "litert_torch is not installed; it comes with the [mobile] extra" in one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


def test_an_operator_the_converter_cannot_take_is_one_line(tmp_path, capsys):
    from mobilenetv2.errors import UserError
    from mobilenetv2.export.exporter import export_model
    from mobilenetv2.weights import CheckpointMeta

    class Spectrum(torch.nn.Module):
        in_chans = 3

        def forward(self, x):
            return torch.fft.rfft2(x).abs().mean((2, 3))

    out = tmp_path / "spectrum.tflite"
    meta = CheckpointMeta(architecture={}, class_names=["r", "g", "b"],
                          preprocessing=Preprocessing(input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3))
    with pytest.raises(UserError, match="this model cannot be converted to LiteRT: Only 1D FFT"):
        export_model(Spectrum(), out, "tflite", meta=meta)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_info_reports_what_a_board_needs_for_a_float_file_too(exported, capsys):
    pytest.importorskip("tflite_micro", reason="TensorFlow Lite Micro comes with the [mobile] extra")
    assert main(["info", "--tflite", str(exported)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{exported}: fp32 classification model, input NHWC float32 1x64x64x3, output: probabilities")
    assert f"flash (the file):         {exported.stat().st_size:,} bytes" in out and "TFLM tensor arena (SRAM): " in out
