"""Deploying a detection model: ONNX export verified on boxes and scores, int8 with the mAP of fp32 and int8 on
labelled boxes, the ONNX file predicting and evaluating like the checkpoint, and the benchmark at the tile size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mobilenetv2.cli import main
from mobilenetv2.data import Preprocessing
from mobilenetv2.formats.verify import OutputComparison
from mobilenetv2.models import create_model
from mobilenetv2.tasks import get_task
from mobilenetv2.weights import save_checkpoint

NAMES = ["background", "bar", "square"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("ssdlite_mobilenet_v2", num_classes=3, width_mult=0.35).eval()
    pre = Preprocessing(input_size=96, crop_pct=1.0, resize_mode="squash", tile=64)
    return save_checkpoint(tmp_path_factory.mktemp("det") / "det.safetensors", model, NAMES, pre, task="detection")


@pytest.mark.slow
def test_export_onnx_verifies_boxes_and_scores_and_predicts_like_pytorch(checkpoint, boxes_folder, tmp_path, capsys):
    onnx = tmp_path / "det.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "--out", str(onnx),
                 "--verify-images", str(boxes_folder / "val")]) == 0
    out = capsys.readouterr().out
    assert "verify: PASS on 4 real images" in out and "boxes within" in out and "scores within" in out
    photo = str(boxes_folder / "val" / "val0.png")
    rows = []
    for model in (checkpoint, onnx):
        assert main(["predict", str(model), photo, "--format", "jsonl", "--score-threshold", "0"]) == 0
        rows.append(json.loads(capsys.readouterr().out))
    assert rows[0]["tiles"] == rows[1]["tiles"] == 1  # 64x64: one tile of 64
    torch.testing.assert_close(torch.tensor([d["box"] for d in rows[0]["detections"]]),
                               torch.tensor([d["box"] for d in rows[1]["detections"]]), atol=0.11, rtol=0)
    reports = []
    for model in (checkpoint, onnx):
        assert main(["evaluate", str(model), "--data", str(boxes_folder), "--json"]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert reports[0]["map"] == pytest.approx(reports[1]["map"], abs=1e-6)


@pytest.mark.slow
def test_quantize_with_labelled_boxes_gives_the_map_of_both(checkpoint, boxes_folder, tmp_path, capsys):
    out = tmp_path / "det.int8.onnx"
    assert main(["quantize", str(checkpoint), "--calib", str(boxes_folder / "train"), "--val", str(boxes_folder),
                 "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metric"] == "mAP@[.5:.95]" and report["agreement_unit"] == "anchors"
    assert 0 <= report["fp32_top1"] <= 1 and 0 <= report["int8_top1"] <= 1 and report["val_images"] == 4
    assert out.is_file()


def test_int8_agreement_is_counted_per_anchor_over_the_classes():
    task = get_task("detection")
    fp32 = np.zeros((2, 5, 4 + 3), dtype=np.float32)
    fp32[..., 4] = 1.0  # background wins on every anchor...
    int8 = fp32.copy()
    int8[0, 0, 6] = 2.0  # ...except one anchor of int8
    int8[..., :4] += 0.5  # box columns are not classes
    comparison = OutputComparison(task)
    comparison.update(fp32, int8)
    result = comparison.result()
    assert result["agreement_unit"] == "anchors" and result["agreement"] == pytest.approx(9 / 10)


@pytest.mark.slow
def test_benchmark_times_a_detection_checkpoint_at_its_size(checkpoint, capsys):
    assert main(["benchmark", str(checkpoint), "--paths", "eager", "onnx", "--batch", "1", "--rounds", "2",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["resolution"] == 96
    assert {path["name"] for path in result["paths"]} == {"eager", "onnx"}
    assert all(path["median_ms"]["1"] > 0 for path in result["paths"])
