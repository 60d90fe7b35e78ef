"""Segmentation metrics against figures worked out by hand; the ignore label; the streamed report and its files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mobilenetv2.tasks.segmentation import metrics as M
from mobilenetv2.tasks.segmentation.evaluator import SegmentationEvaluator
from mobilenetv2.tasks.segmentation.palette import PALETTE, colorize, overlay

# rows: truth, columns: prediction
MATRIX = torch.tensor([[50, 10, 0], [5, 35, 0], [0, 0, 0]])


def one_hot_logits(predicted: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(predicted, num_classes).permute(0, 3, 1, 2).float()


def test_figures_from_a_confusion_matrix_by_hand():
    iou = M.per_class_iou(MATRIX)
    assert iou[0].item() == pytest.approx(50 / 65) and iou[1].item() == pytest.approx(35 / 50)
    assert iou[2].isnan()  # absent from truth and prediction: no IoU, left out of the mean
    assert M.mean_iou(MATRIX) == pytest.approx((50 / 65 + 35 / 50) / 2)
    assert M.pixel_accuracy(MATRIX) == pytest.approx(85 / 100)
    assert M.mean_class_accuracy(MATRIX) == pytest.approx((50 / 60 + 35 / 40) / 2)
    assert M.frequency_weighted_iou(MATRIX) == pytest.approx((60 * 50 / 65 + 40 * 35 / 50) / 100)
    predicted_only = torch.tensor([[50, 10, 0], [5, 30, 5], [0, 0, 0]])  # class 2 predicted, never true: IoU 0, counted
    assert M.per_class_iou(predicted_only)[2].item() == 0 and M.mean_iou(predicted_only) == pytest.approx(
        (50 / 65 + 30 / 50 + 0) / 3)


def test_confusion_ignores_255():
    truth = torch.tensor([[0, 1, 255], [1, 1, 255]])
    predicted = torch.tensor([[0, 0, 1], [1, 1, 0]])
    assert M.confusion(predicted, truth, 2).tolist() == [[1, 0], [1, 2]]


def test_meter_and_evaluator_agree_on_masks_of_different_sizes():
    torch.manual_seed(0)
    masks = [torch.randint(0, 3, (12, 20)), torch.randint(0, 3, (7, 9))]
    masks[0][0, :5] = 255
    logits = torch.randn(2, 3, 6, 10)  # smaller than both masks: resized to each before the argmax
    meter, evaluator = M.SegmentationMeter(), SegmentationEvaluator()
    meter.update(logits, masks, loss=1.0)
    evaluator.update(logits, masks, images=torch.zeros(2, 3, 6, 10))
    report = evaluator.finish(["a", "b", "c"], 2)
    figures = meter.compute("val_", torch.device("cpu"))
    assert figures["val_miou"] == pytest.approx(report.miou) and figures["val_pixel_acc"] == pytest.approx(report.pixel_acc)
    assert report.num_pixels == 12 * 20 - 5 + 7 * 9 and report.num_images == 2


def test_a_perfect_prediction_and_the_worst_images_kept():
    evaluator = SegmentationEvaluator(worst_k=2)
    good = torch.zeros(1, 8, 8, dtype=torch.long)
    good[0, 2:6, 2:6] = 1
    for step in range(4):  # image 2 is wrong everywhere, image 3 half wrong
        predicted = good.clone() if step < 2 else (1 - good if step == 2 else torch.cat([good[:, :4], 1 - good[:, 4:]], 1))
        evaluator.update(one_hot_logits(predicted, 2), good)
    report = evaluator.finish(["background", "thing"], 4)
    assert [w["index"] for w in report.worst] == [2, 3]
    assert report.worst[0]["miou"] < report.worst[1]["miou"] < 1


def test_report_files(tmp_path):
    evaluator = SegmentationEvaluator()
    truth = torch.randint(0, 3, (2, 16, 16))
    evaluator.update(one_hot_logits(truth, 3), truth, images=torch.rand(2, 3, 16, 16))
    report = evaluator.finish(["background", "cat", "dog"], 2)
    assert report.miou == 1.0 and report.summary().startswith("mIoU 100.00%")
    report.write(tmp_path / "out")
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["miou"] == 1.0 and [c["name"] for c in data["per_class"]] == ["background", "cat", "dog"]
    assert "| cat " in (tmp_path / "out" / "report.md").read_text()
    assert (tmp_path / "out" / "confusion_matrix.csv").read_text().startswith("true\\predicted,background,cat,dog")
    assert len(list((tmp_path / "out" / "worst_images").glob("*.png"))) == 2


def test_pascal_palette_colorize_and_overlay():
    colours = np.asarray(PALETTE).reshape(-1, 3)
    assert colours[1].tolist() == [128, 0, 0] and colours[3].tolist() == [128, 128, 0] and colours[15].tolist() == [192, 128, 128]
    mask = np.array([[0, 3], [255, 15]], dtype=np.uint8)
    image = colorize(mask)
    assert image.mode == "P" and np.asarray(image).tolist() == mask.tolist()
    from PIL import Image

    blended = np.asarray(overlay(Image.new("RGB", (2, 2), (0, 0, 0)), mask, alpha=0.5))
    assert blended[0, 0].tolist() == [0, 0, 0] and blended[1, 0].tolist() == [0, 0, 0]  # background and ignore untouched
    assert blended[0, 1].tolist() == [64, 64, 0]
