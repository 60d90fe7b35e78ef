"""OpenVINO: the IR format (model.xml + model.bin, metadata in rt_info, written atomically) for every task, .onnx files
on the openvino backend (fp32 pinned to f32, int8), bf16 only when asked for, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mobilenetv2.cli import main
from mobilenetv2.errors import UserError
from mobilenetv2.formats import open_runtime
from mobilenetv2.hardware import cpu_info
from mobilenetv2.models import create_model
from mobilenetv2.spec import Preprocessing
from mobilenetv2.weights import load_checkpoint, load_model, save_checkpoint

pytestmark = pytest.mark.slow  # every test here takes more than ~10 s

ov = pytest.importorskip("openvino", reason="the OpenVINO backend needs the [openvino] extra")
needs_bf16 = pytest.mark.skipif(cpu_info().bf16_path is None, reason="this CPU has no bf16 instructions")

TASKS = {"classification": ("mobilenet_v2", 64), "segmentation": ("deeplabv3_mobilenet_v2", 65),
         "detection": ("ssdlite_mobilenet_v2", 96)}


@pytest.mark.parametrize("task", list(TASKS))
def test_export_writes_a_verified_ir_with_its_metadata_for_every_task(task, tmp_path):
    name, size = TASKS[task]
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, width_mult=0.35).eval()
    ckpt = save_checkpoint(tmp_path / "m.safetensors", model, ["background", "a", "b"],
                           Preprocessing(input_size=size, crop_pct=1.0, resize_mode="squash"), task=task)
    out = tmp_path / "ir" / "m.xml"
    assert main(["export", str(ckpt), "--format", "openvino", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.bin", "m.xml"]  # no temporary folder left behind
    runtime = open_runtime(out)
    assert (runtime.backend, runtime.format, runtime.precision, runtime.task) == ("openvino", "openvino", "fp32", task)
    assert runtime.class_names == ["background", "a", "b"] and runtime.preprocessing.input_size == size
    assert runtime.architecture["name"] == name and runtime.max_batch is None
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(1))  # any batch: the batch is dynamic
    with torch.inference_mode():
        expected = load_model(ckpt)(x).numpy()
    np.testing.assert_allclose(runtime(x), expected, atol=1e-4)  # f32 pinned: bf16 would be ~1e-2 off


def test_onnx_files_run_on_openvino_fp32_and_int8(tiny_checkpoint, tiny_onnx, tmp_path):
    reference = open_runtime(tiny_onnx, "onnxruntime")
    runtime = open_runtime(tiny_onnx, "openvino", threads=1)
    assert (runtime.backend, runtime.format, runtime.precision) == ("openvino", "onnx", "fp32")
    assert runtime.class_names == ["ants", "bees"] and runtime.input_shape == (None, 3, 64, 64)
    x = np.random.default_rng(0).standard_normal((5, 3, 64, 64), dtype=np.float32)
    np.testing.assert_allclose(runtime(x), reference(x), atol=1e-4)
    int8 = tmp_path / "tiny.int8.onnx"
    calib = str(tmp_path / "calib")
    _photos(tmp_path / "calib")
    assert main(["quantize", str(tiny_checkpoint), "--calib", calib, "--num-calib", "4", "--out", str(int8)]) == 0
    on_openvino, on_onnxruntime = open_runtime(int8, "openvino"), open_runtime(int8, "onnxruntime")
    assert (on_openvino.precision, on_onnxruntime.precision) == ("int8", "int8")
    assert np.mean(on_openvino(x).argmax(1) == on_onnxruntime(x).argmax(1)) >= 0.8
    with pytest.raises(UserError, match="is an int8 model; bf16 applies to fp32 models"):
        open_runtime(int8, "openvino:bf16")


def test_evaluate_runs_an_onnx_file_on_openvino(tiny_onnx, tmp_path, capsys):
    for i, name in enumerate(["ants", "bees"]):
        _photos(tmp_path / "data" / name, seed=i)
    assert main(["evaluate", str(tiny_onnx), "--data", str(tmp_path / "data"), "--backend", "openvino", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["num_samples"] == 8 and 0 <= report["top1"] <= 1


def test_quantize_writes_an_int8_ir_beside_nothing_else(tiny_checkpoint, tmp_path):
    _photos(tmp_path / "calib")
    out = tmp_path / "q" / "tiny.int8.xml"
    assert main(["quantize", str(tiny_checkpoint), "--calib", str(tmp_path / "calib"), "--num-calib", "4",
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.int8.bin", "tiny.int8.xml"]
    runtime = open_runtime(out)
    assert (runtime.format, runtime.precision, runtime.class_names) == ("openvino", "int8", ["ants", "bees"])
    model = ov.Core().read_model(str(out))
    assert any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())  # really int8, not a float copy


@needs_bf16
def test_bf16_is_asked_for_and_said(tiny_onnx, tiny_checkpoint):
    fp32, bf16 = open_runtime(tiny_onnx, "openvino"), open_runtime(tiny_onnx, "openvino:bf16")
    assert bf16.precision == "bf16" and bf16.describe()["precision"] == "bf16"
    x = np.random.default_rng(0).standard_normal((8, 3, 64, 64), dtype=np.float32)
    difference = np.abs(bf16(x) - fp32(x)).max()
    assert 0 < difference < 0.5  # bf16 really computes in bf16 (fp32 is pinned), and stays close
    on_torch = open_runtime(tiny_checkpoint, "torch:bf16", device="cpu")
    assert on_torch.precision == "bf16" and 0 < np.abs(on_torch(x) - fp32(x)).max() < 0.5


def test_bad_requests_are_one_line(tiny_onnx, tmp_path):
    with pytest.raises(UserError, match="onnxruntime runs fp32 here"):
        open_runtime(tiny_onnx, "onnxruntime:bf16")
    with pytest.raises(UserError, match="unknown precision 'fp16'"):
        open_runtime(tiny_onnx, "openvino:fp16")
    with pytest.raises(UserError, match="--backend auto takes no precision"):
        open_runtime(tiny_onnx, "auto:bf16")
    ir = tmp_path / "lonely.xml"
    ir.write_text("<net/>")
    with pytest.raises(UserError, match="its weights file lonely.bin is missing"):
        open_runtime(ir)
    ir.with_suffix(".bin").write_bytes(b"")
    with pytest.raises(UserError, match="is not a model OpenVINO can read"):
        open_runtime(ir)


def test_without_bf16_instructions_bf16_is_refused(tiny_checkpoint, monkeypatch):
    from mobilenetv2 import hardware

    monkeypatch.setattr(hardware, "cpu_info", lambda: hardware.parse_cpuinfo("model name : old\nflags : sse2 avx2\n"))
    with pytest.raises(UserError, match="this CPU has no bf16 instructions"):
        open_runtime(load_checkpoint(tiny_checkpoint), "torch:bf16", device="cpu")


def _photos(folder, seed: int = 0) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(folder / f"{i}.png")
