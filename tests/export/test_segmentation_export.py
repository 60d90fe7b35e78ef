"""Deploying a segmentation model: ONNX export verified per pixel, int8 with pixel agreement, the benchmark paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mobilenetv2.cli import main
from mobilenetv2.data import Preprocessing
from mobilenetv2.models import create_model
from mobilenetv2.weights import save_checkpoint

pytest.importorskip("onnxruntime", reason="ONNX export and int8 need the [deploy] extra")
NAMES = ["background", "a", "b"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("deeplabv3_mobilenet_v2", num_classes=3, width_mult=0.35).eval()
    pre = Preprocessing(input_size=97, crop_pct=1.0, resize_mode="squash")
    return save_checkpoint(tmp_path_factory.mktemp("seg") / "seg.safetensors", model, NAMES, pre, task="segmentation")


def test_export_onnx_is_verified_per_pixel_and_predicts_masks(checkpoint, tmp_path, capsys):
    out = tmp_path / "seg.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    assert "verify: PASS" in capsys.readouterr().out
    from mobilenetv2.evaluation import load_predictor

    onnx, torch_ = load_predictor(out), load_predictor(checkpoint)
    assert onnx.task.name == "segmentation" and onnx.class_names == NAMES
    image = np.random.default_rng(0).integers(0, 256, (50, 80, 3), dtype=np.uint8)
    a, b = onnx.predict(image)[0], torch_.predict(image)[0]
    assert a.mask.shape == (50, 80) and (a.mask == b.mask).mean() > 0.99


def test_quantize_reports_pixel_agreement(checkpoint, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (60, 70, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    out = tmp_path / "seg.int8.onnx"
    assert main(["quantize", str(checkpoint), "--calib", str(photos), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "of the pixels of 3 calibration images" in text
    assert main(["quantize", str(checkpoint), "--calib", str(photos), "--val", str(photos), "--out", str(out)]) == 2


def test_benchmark_times_eager_and_onnx_without_a_torchvision_twin(checkpoint, capsys):
    assert main(["benchmark", str(checkpoint), "--batch", "1", "--rounds", "2", "--formats", "torchvision", "eager",
                 "onnx"]) == 0
    out = capsys.readouterr().out
    assert "eager fp32 NCHW" in out and "onnxruntime fp32" in out and "torchvision eager" not in out


def test_benchmark_beside_the_tflite_interpreter(shared_data, tmp_path, capsys):
    pytest.importorskip("ai_edge_litert", reason="the TFLite interpreter comes with the [interop] extra")
    seg = shared_data / "segmentation"
    ckpt = tmp_path / "half.safetensors"
    assert main(["convert", str(seg / "deeplabv3_mnv2_dm05_pascal_quant.tflite"), str(ckpt)]) == 0
    assert main(["benchmark", str(ckpt), "--batch", "1", "--rounds", "2", "--formats", "eager",
                 "--tflite", str(seg / "deeplabv3_mnv2_dm05_pascal_quant.tflite")]) == 0
    out = capsys.readouterr().out
    assert "TFLite interpreter" in out and "at 513px" in out
