"""Segmentation metrics against figures worked out by hand; the ignore label; the streamed report and its files; the
PASCAL palette."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mobilenetv2.errors import UserError
from mobilenetv2.extras import available
from mobilenetv2.tasks.segmentation import metrics as M
from mobilenetv2.tasks.segmentation.evaluator import SegmentationEvaluator
from mobilenetv2.tasks.segmentation.palette import PALETTE, colorize, legend, overlay, pascal_palette
from mobilenetv2.tasks.segmentation.report import SegmentationReport

# rows: truth, columns: prediction; class 2 absent from both
MATRIX = torch.tensor([[50, 10, 0], [5, 35, 0], [0, 0, 0]])
# class 2 predicted 5 times, never true: IoU 0 and counted in mIoU, but no accuracy
PREDICTED_ONLY = torch.tensor([[50, 10, 0], [5, 30, 5], [0, 0, 0]])


def one_hot_logits(predicted: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(predicted, num_classes).permute(0, 3, 1, 2).float()


def strict_json(text: str) -> dict:
    def reject(name: str):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=reject)


def test_figures_from_a_confusion_matrix_by_hand():
    iou = M.per_class_iou(MATRIX)
    assert iou[0].item() == pytest.approx(50 / 65) and iou[1].item() == pytest.approx(35 / 50)
    assert iou[2].isnan()  # absent from truth and prediction: no IoU, left out of the mean
    assert M.mean_iou(MATRIX) == pytest.approx((50 / 65 + 35 / 50) / 2)
    assert M.pixel_accuracy(MATRIX) == pytest.approx(85 / 100)
    assert M.per_class_accuracy(MATRIX)[:2].tolist() == pytest.approx([50 / 60, 35 / 40])
    assert M.mean_class_accuracy(MATRIX) == pytest.approx((50 / 60 + 35 / 40) / 2)
    assert M.frequency_weighted_iou(MATRIX) == pytest.approx((60 * 50 / 65 + 40 * 35 / 50) / 100)


def test_a_class_predicted_but_never_true_counts_in_miou_not_in_class_accuracy():
    assert M.per_class_iou(PREDICTED_ONLY)[2].item() == 0
    assert M.mean_iou(PREDICTED_ONLY) == pytest.approx((50 / 65 + 30 / 50 + 0) / 3)
    assert M.per_class_accuracy(PREDICTED_ONLY)[2].isnan()
    assert M.mean_class_accuracy(PREDICTED_ONLY) == pytest.approx((50 / 60 + 30 / 40) / 2)
    assert M.pixel_accuracy(PREDICTED_ONLY) == pytest.approx(80 / 100)
    assert M.frequency_weighted_iou(PREDICTED_ONLY) == pytest.approx((60 * 50 / 65 + 40 * 30 / 50) / 100)


def test_an_empty_matrix_gives_zeros():
    empty = torch.zeros(3, 3, dtype=torch.long)
    assert M.mean_iou(empty) == M.pixel_accuracy(empty) == M.mean_class_accuracy(empty) == M.frequency_weighted_iou(empty) == 0


def test_confusion_ignores_255_and_refuses_other_labels_outside_the_classes():
    truth = torch.tensor([[0, 1, 255], [1, 1, 255]])
    predicted = torch.tensor([[0, 0, 1], [1, 1, 0]])
    assert M.confusion(predicted, truth, 2).tolist() == [[1, 0], [1, 2]]
    assert M.confusion(predicted, torch.full_like(truth, 255), 2).sum() == 0
    with pytest.raises(UserError, match="0..1 or 255"):
        M.confusion(predicted, torch.tensor([[0, 1, 2], [1, 1, 255]]), 2)


def test_confusion_in_deterministic_mode_is_the_same_count_and_leaves_the_mode_on():
    torch.manual_seed(2)
    predicted, truth = torch.randint(0, 21, (2, 64, 64)), torch.randint(0, 21, (2, 64, 64))
    expected = M.confusion(predicted, truth, 21)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        assert torch.equal(M.confusion(predicted, truth, 21), expected)
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def test_logits_are_upsampled_to_each_mask_before_the_argmax():
    torch.manual_seed(0)
    masks = [torch.randint(0, 3, (12, 20)), torch.randint(0, 3, (7, 9))]
    logits = torch.randn(2, 3, 6, 10)
    expected = sum(M.confusion(F.interpolate(lg[None], size=m.shape, mode="bilinear", align_corners=False).argmax(1), m, 3)
                   for lg, m in zip(logits, masks))
    meter = M.SegmentationMeter()
    meter.update(logits, masks, loss=0.5)
    assert torch.equal(meter.matrix, expected) and meter.matrix.sum() == 12 * 20 + 7 * 9


def test_meter_takes_a_batch_tensor_or_a_list_alike_and_weighs_the_loss_by_batch_size():
    torch.manual_seed(1)
    logits, masks = torch.randn(3, 4, 8, 8), torch.randint(0, 4, (3, 8, 8))
    masks[0, :2] = 255
    as_tensor, as_list = M.SegmentationMeter(), M.SegmentationMeter()
    as_tensor.update(logits[:2], masks[:2], loss=1.0)
    as_tensor.update(logits[2:], masks[2:], loss=4.0)
    as_list.update(logits, list(masks), loss=2.0)
    figures = as_tensor.compute("val_", torch.device("cpu"))
    assert set(figures) == {"val_loss", "val_miou", "val_pixel_acc"}
    assert figures["val_loss"] == pytest.approx((2 * 1.0 + 1 * 4.0) / 3)
    assert torch.equal(as_tensor.matrix, as_list.matrix)
    assert figures == pytest.approx({**as_list.compute("val_", torch.device("cpu")), "val_loss": 2.0})
    assert figures["val_miou"] == pytest.approx(M.mean_iou(as_tensor.matrix))


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
    assert torch.equal(torch.as_tensor(report.confusion), meter.matrix)


def test_a_perfect_prediction_and_the_worst_images_kept():
    evaluator = SegmentationEvaluator(worst_k=2)
    good = torch.zeros(1, 8, 8, dtype=torch.long)
    good[0, 2:6, 2:6] = 1
    for step in range(4):  # image 2 is wrong everywhere, image 3 half wrong
        predicted = good.clone() if step < 2 else (1 - good if step == 2 else torch.cat([good[:, :4], 1 - good[:, 4:]], 1))
        evaluator.update(one_hot_logits(predicted, 2), good)
    report = evaluator.finish(["background", "thing"], 4)
    assert [w["index"] for w in report.worst] == [2, 3]
    assert report.worst[0]["miou"] == 0 and report.worst[0]["miou"] < report.worst[1]["miou"] < 1


def test_the_worst_images_are_kept_as_small_thumbnails():
    evaluator = SegmentationEvaluator(worst_k=1)
    mask = torch.zeros(1, 300, 600, dtype=torch.long)
    evaluator.update(torch.randn(1, 2, 75, 150), mask, images=torch.rand(1, 3, 64, 64))
    (worst,) = evaluator.finish(["background", "thing"], 1).worst
    assert max(worst["image"].shape[:2]) <= 256 and worst["image"].shape[2] == 3 and worst["image"].dtype == np.uint8
    assert worst["truth"].shape == worst["predicted"].shape == worst["image"].shape[:2]


def test_report_of_a_matrix_shows_absent_classes_as_n_a():
    report = SegmentationReport.from_matrix(MATRIX, ["background", "cat", "dog"], 3, info={"split": "val"})
    assert [c["iou"] for c in report.per_class][2] is None and report.per_class[2]["pixels"] == 0
    assert report.miou == pytest.approx(M.mean_iou(MATRIX)) and report.fw_iou == pytest.approx(M.frequency_weighted_iou(MATRIX))
    assert report.summary() == "mIoU 73.5%, pixel accuracy 85.0%, fwIoU 74.2% on 3 images"
    text = report.to_markdown()
    assert "- split: val" in text and "| dog " in text and "n/a" in text.split("| dog")[1].split("\n")[0]
    assert strict_json(json.dumps(report.to_dict()))["per_class"][2]["iou"] is None
    with pytest.raises(ValueError, match="3 class names"):
        SegmentationReport.from_matrix(torch.zeros(2, 2), ["background", "cat", "dog"], 1)


def test_report_files(tmp_path):
    evaluator = SegmentationEvaluator()
    truth = torch.randint(0, 3, (2, 16, 16))
    evaluator.update(one_hot_logits(truth, 3), truth, images=torch.rand(2, 3, 16, 16))
    report = evaluator.finish(["background", "cat", "dog"], 2)
    assert report.miou == 1.0 and report.summary() == "mIoU 100.0%, pixel accuracy 100.0%, fwIoU 100.0% on 2 images"
    out = tmp_path / "out"
    report.write(out)
    data = strict_json((out / "report.json").read_text())
    assert data["miou"] == 1.0 and data["num_pixels"] == 2 * 16 * 16 and data["confusion_matrix"] == report.confusion.tolist()
    assert [c["name"] for c in data["per_class"]] == ["background", "cat", "dog"]
    markdown = (out / "report.md").read_text()
    assert all(f"| {name} " in markdown for name in ("background", "cat", "dog")) and "mIoU: 1.0000" in markdown
    assert (out / "confusion_matrix.csv").read_text().startswith("true\\predicted,background,cat,dog")
    assert (out / "confusion_matrix.png").is_file() == available("matplotlib")
    pictures = sorted(p.name for p in (out / "worst_images").glob("*.png"))
    assert pictures == ["01_image-0.png", "02_image-1.png"] and [w["file"] for w in data["worst_images"]] == [
        f"worst_images/{p}" for p in pictures]
    with Image.open(out / "worst_images" / pictures[0]) as picture:  # photo | truth | prediction
        assert picture.mode == "RGB" and picture.size == (3 * 16 + 2 * 4, 16)


def test_writing_again_replaces_the_worst_images_whole(tmp_path):
    truth = torch.zeros(1, 8, 8, dtype=torch.long)
    worst = [{"index": i, "miou": 0.1 * i, "truth": np.zeros((8, 8), np.uint8), "predicted": np.ones((8, 8), np.uint8),
              "image": None} for i in range(3)]
    SegmentationReport.from_matrix(M.confusion(truth, truth, 2), ["a", "b"], 3, worst).write(tmp_path / "out")
    worst = [{**worst[0], "name": "photos/2007_000033.jpg"}]
    SegmentationReport.from_matrix(M.confusion(truth, truth, 2), ["a", "b"], 1, worst).write(tmp_path / "out")
    assert [p.name for p in (tmp_path / "out" / "worst_images").iterdir()] == ["01_2007_000033.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # nothing staged left beside it


def test_pascal_palette_colorize_and_overlay():
    colours = np.asarray(PALETTE).reshape(-1, 3)
    assert len(PALETTE) == 3 * 256 and pascal_palette(21) == PALETTE[:63]
    assert colours[0].tolist() == [0, 0, 0] and colours[1].tolist() == [128, 0, 0] and colours[3].tolist() == [128, 128, 0]
    assert colours[15].tolist() == [192, 128, 128] and colours[255].tolist() == [224, 224, 192]  # person; ignore
    mask = np.array([[0, 3, 3], [255, 15, 1]], dtype=np.uint8)
    image = colorize(mask)
    assert image.mode == "P" and image.size == (3, 2) and np.asarray(image).tolist() == mask.tolist()
    assert image.convert("RGB").getpixel((0, 1)) == (224, 224, 192)
    blended = overlay(Image.new("RGB", (30, 20), (0, 0, 0)), mask.astype(np.int64), alpha=0.5)
    assert blended.mode == "RGB" and blended.size == (3, 2)  # the photo is resized to the mask
    pixels = np.asarray(blended)
    assert pixels[0, 0].tolist() == [0, 0, 0] and pixels[1, 0].tolist() == [0, 0, 0]  # background and ignore untouched
    assert pixels[0, 1].tolist() == [64, 64, 0] and pixels[1, 1].tolist() == [96, 64, 64]
    with pytest.raises(ValueError, match="0..255"):
        colorize(np.array([[0, 300]]))


def test_legend_has_a_row_per_class_in_its_colour():
    picture = legend(["background", "aeroplane", "bicycle"], [1, 2])
    assert picture.mode == "RGB" and picture.height == 2 * 16
    assert picture.getpixel((5, 5)) == (128, 0, 0) and picture.getpixel((5, 21)) == (0, 128, 0)
