"""Deploying a segmentation model: ONNX export verified per pixel, int8 with pixel agreement (and mIoU on labelled
masks through the task's own loader and meter). The benchmark's paths are in tests/benchmarking."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenetv2.cli import main
from mobilenetv2.data import Preprocessing
from mobilenetv2.export.calibration import calibration_batch_size
from mobilenetv2.export.ptq import QuantizeReport
from mobilenetv2.formats.verify import OutputComparison, Verification
from mobilenetv2.models import create_model
from mobilenetv2.tasks import get_task
from mobilenetv2.weights import save_checkpoint

NAMES = ["background", "a", "b"]
SIZE = 129


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("deeplabv3_mobilenet_v2", num_classes=3, width_mult=0.35).eval()
    pre = Preprocessing(input_size=SIZE, crop_pct=1.0, resize_mode="squash", mean=(0.5,) * 3, std=(0.5,) * 3)
    return save_checkpoint(tmp_path_factory.mktemp("seg") / "seg.safetensors", model, NAMES, pre, task="segmentation")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(3):
        pixels = np.random.default_rng(i).integers(0, 256, (60 + 10 * i, 70, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def masks(tmp_path_factory):
    """images/ + masks/ with classes.txt: the segmentation layout that `evaluate` and `quantize --val` read."""
    root = tmp_path_factory.mktemp("masks")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    (root / "classes.txt").write_text("\n".join(NAMES) + "\n")
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
        mask = np.zeros((48, 64), np.uint8)
        mask[10:30, 5:40], mask[35:, 45:] = 1, 2
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    return root


@pytest.mark.slow
def test_export_onnx_is_verified_per_pixel_at_the_checkpoint_size(checkpoint, photos, tmp_path, capsys):
    onnxruntime = pytest.importorskip("onnxruntime", reason="ONNX export needs the [deploy] extra")
    out = tmp_path / "seg.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "--out", str(out), "--verify-images", str(photos)]) == 0
    text = capsys.readouterr().out
    assert "verify: PASS on 3 real images" in text and "of the pixels without a numerical tie" in text
    assert "pixel agreement" in text
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (inp,), (output,) = session.get_inputs(), session.get_outputs()
    assert inp.shape[1:] == [3, SIZE, SIZE] and output.shape[1:] == [3, SIZE, SIZE]
    from mobilenetv2.inference import load_predictor

    onnx, torch_ = load_predictor(out), load_predictor(checkpoint)
    assert onnx.task.name == "segmentation" and onnx.class_names == NAMES
    image = np.random.default_rng(0).integers(0, 256, (50, 80, 3), dtype=np.uint8)
    a, b = onnx.predict(image)[0], torch_.predict(image)[0]
    assert a.mask.shape == (50, 80) and (a.mask == b.mask).mean() > 0.99
    batch = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)).numpy()
    reference = torch_.logits(batch)  # predictors take and give numpy arrays
    assert np.abs(session.run(None, {inp.name: batch})[0] - reference).max() < 1e-4


def test_verification_names_the_pixel_agreement_only_for_dense_outputs():
    dense = Verification(4, "real images", 2e-5, 1.0, 1e-4, pixel_agreement=0.99999)
    assert dense.passed and "pixel agreement 99.999% counting ties" in dense.summary()
    assert dense.to_dict()["pixel_agreement"] == 0.99999
    images = Verification(4, "real images", 2e-5, 1.0, 1e-4)
    assert images.summary().endswith("same argmax 100%") and "pixel" not in images.summary()


@pytest.mark.slow
def test_quantize_reports_pixel_agreement_on_the_calibration_photos(checkpoint, photos, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="int8 needs the [deploy] extra")
    out = tmp_path / "seg.int8.onnx"
    assert main(["quantize", str(checkpoint), "--calib", str(photos), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert out.is_file() and report["agreement_unit"] == "pixels" and 0.0 <= report["agreement"] <= 1.0
    assert report["compared_images"] == report["calibration_images"] == 3 and report["compared_on"] == "calibration"
    assert report["fp32_top1"] is None and report["metric"] == "mIoU" and report["no_accuracy"] == "no labelled --val given"
    assert report["int8_mb"] < report["fp32_mb"] and report["speedup"] > 0 and report["cpu"].startswith("CPU: ")
    text = QuantizeReport(**{k: v for k, v in report.items() if k != "drop_points"}).verdict()
    assert "same prediction on" in text and "of the pixels of 3 calibration images" in text


@pytest.mark.slow
def test_quantize_with_labelled_masks_gives_the_miou_of_both(checkpoint, photos, masks, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="int8 needs the [deploy] extra")
    out = tmp_path / "seg.int8.onnx"
    assert main(["quantize", str(checkpoint), "--calib", str(photos), "--val", str(masks), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("CPU: ") and "| mIoU" in text and "onnx int8 (minmax)" in text
    assert "on 2 validation images: mIoU drop" in text and "of the pixels of 2 validation images" in text
    int8_miou = float(text.split("| onnx int8 (minmax) |")[1].split("%")[0]) / 100
    # the figure `evaluate` gives the int8 file (to the table's two decimals)
    from mobilenetv2.evaluation.evaluator import evaluate

    assert evaluate(out, str(masks), split="all", workers=0).miou == pytest.approx(int8_miou, abs=6e-5)
    (masks / "classes.txt").write_text("background\nx\ny\n")
    try:
        assert main(["quantize", str(checkpoint), "--calib", str(photos), "--val", str(masks), "--out", str(out)]) == 2
        assert "validation data" in capsys.readouterr().err
    finally:
        (masks / "classes.txt").write_text("\n".join(NAMES) + "\n")


def test_the_comparison_streams_and_counts_pixels_or_images():
    rng = np.random.default_rng(0)
    for shape in [(6, 5), (6, 3, 7, 9)]:
        a, b = rng.standard_normal(shape, dtype=np.float32), rng.standard_normal(shape, dtype=np.float32)
        whole, streamed = OutputComparison(get_task("classification")), OutputComparison(get_task("segmentation"))
        whole.update(a, b)
        whole = whole.result()
        for i in range(0, 6, 4):
            streamed.update(a[i:i + 4], b[i:i + 4])
        found = streamed.result()
        assert found["agreement"] == pytest.approx(float((a.argmax(1) == b.argmax(1)).mean()))
        assert found["max_logit_diff"] == whole["max_logit_diff"] == pytest.approx(float(np.abs(a - b).max()))
        assert found["mean_logit_diff"] == pytest.approx(whole["mean_logit_diff"], rel=1e-5)
        assert found["agreement_unit"] == ("images" if len(shape) == 2 else "pixels") and streamed.images == 6


def test_calibration_batches_shrink_with_the_image_size():
    assert calibration_batch_size(224) == calibration_batch_size(64) == 16
    assert calibration_batch_size(513) == 3 and calibration_batch_size(2048) == 1
