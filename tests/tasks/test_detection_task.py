"""Detection task pieces by hand: SSD loss (matching, hard negatives), decoding and NMS, tiles merged, COCO figures."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.detection._utils import SSDMatcher

from mobilenetv2.data.detection.targets import BoxTargets
from mobilenetv2.models.detection import anchors_for_count, box_coder, feature_sizes, ssd_anchors
from mobilenetv2.tasks import get_task
from mobilenetv2.tasks.detection.boxes import Detections, decode, merge, to_image
from mobilenetv2.tasks.detection.evaluator import DetectionEvaluator
from mobilenetv2.tasks.detection.loss import match, ssd_loss
from mobilenetv2.tasks.detection.metrics import ImageDetections, coco_figures

ANCHORS = ssd_anchors(feature_sizes(128))


def targets(boxes: list[list[float]], labels: list[int], size: int = 128, window=None, image_id: int = 0) -> BoxTargets:
    """One image's targets: pixel boxes of a ``size`` x ``size`` image, shown whole (or through ``window``)."""
    return BoxTargets(torch.tensor([boxes], dtype=torch.float32).view(1, -1, 4), torch.tensor([labels]).view(1, -1),
                      torch.tensor([[size, size]]), torch.tensor([window or [0, 0, size, size]], dtype=torch.float32),
                      torch.tensor([image_id]))


def perfect_outputs(t: BoxTargets, num_classes: int, logit: float = 10.0) -> torch.Tensor:
    """Evaluation outputs [1, A, 4 + C] whose matched anchors predict the true boxes exactly, with class logits."""
    boxes, labels = t.in_window()
    matched, classes = match(ANCHORS, boxes[0], labels[0], SSDMatcher(0.5))
    out = torch.zeros(1, len(ANCHORS), 4 + num_classes)
    out[0, :, :4] = ANCHORS
    out[0, :, 4] = logit  # background everywhere...
    fg = matched >= 0
    out[0, fg, :4] = boxes[0][matched[fg]]
    out[0, fg, 4] = 0.0
    out[0, fg, 4 + classes[fg]] = logit  # ...but the true class where an anchor matches a box
    return out


def test_every_box_gets_an_anchor_and_the_loss_is_small_for_perfect_codes():
    t = targets([[10, 10, 40, 50], [60, 70, 120, 120]], [1, 2])
    boxes, labels = t.in_window()
    matched, classes = match(ANCHORS, boxes[0], labels[0], SSDMatcher(0.5))
    assert set(matched[matched >= 0].tolist()) == {0, 1}  # each true box has at least its best anchor
    assert set(classes[matched >= 0].tolist()) == {1, 2}
    coder = box_coder()
    fg = matched >= 0
    codes = torch.zeros(1, len(ANCHORS), 4)
    codes[0, fg] = coder.encode_single(boxes[0][matched[fg]], ANCHORS[fg])
    logits = torch.full((1, len(ANCHORS), 3), -10.0)
    logits[0, :, 0] = 10.0
    logits[0, fg, 0] = -10.0
    logits[0, fg, classes[fg]] = 10.0
    good = ssd_loss(codes, logits, boxes, labels, ANCHORS, coder, SSDMatcher(0.5))
    bad = ssd_loss(codes + 1.0, logits.flip(-1), boxes, labels, ANCHORS, coder, SSDMatcher(0.5))
    assert good < 1e-3 < 1.0 < bad


def test_hard_negatives_are_three_per_positive_and_at_least_three_per_image():
    coder = box_coder()
    empty = targets([[0, 0, 0, 0]], [0])
    boxes, labels = empty.in_window()
    logits = torch.zeros(1, len(ANCHORS), 3)
    logits[0, :5, 1] = 5.0  # five anchors wrongly confident: the 3 hardest negatives are among them
    loss = ssd_loss(torch.zeros(1, len(ANCHORS), 4), logits, boxes, labels, ANCHORS, coder, SSDMatcher(0.5))
    one = torch.nn.functional.cross_entropy(logits[0, :1], torch.zeros(1, dtype=torch.long))
    assert loss == pytest.approx(3 * float(one), rel=1e-5)  # no positive: divided by 1


def test_decode_keeps_the_best_box_per_class_after_nms():
    out = torch.zeros(1, 3, 4 + 3)
    out[0, :, :4] = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.5, 0.52], [0.6, 0.6, 0.9, 0.9]])
    out[0, :, 4:] = torch.tensor([[0.0, 4.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 5.0]])
    det = decode(out, score_threshold=0.3)[0]
    assert det.labels.tolist() == [2, 1]  # the overlapping class-1 box is suppressed
    assert torch.allclose(det.boxes[1], torch.tensor([0.1, 0.1, 0.5, 0.5]))


def test_tiles_go_back_to_image_pixels_and_merge_across_overlaps():
    box = torch.tensor([[0.5, 0.5, 1.0, 1.0]])
    left = to_image(Detections(box, torch.tensor([0.9]), torch.tensor([1])), torch.tensor([0.0, 0, 200, 200]), (300, 400))
    assert torch.allclose(left.boxes, torch.tensor([[100.0, 100, 200, 200]]))
    same = to_image(Detections(torch.tensor([[0.0, 0.5, 0.5, 1.0]]), torch.tensor([0.8]), torch.tensor([1])),
                    torch.tensor([100.0, 0, 300, 200]), (300, 400))
    merged = merge([left, same])
    assert len(merged) == 1 and float(merged.scores[0]) == pytest.approx(0.9)


def test_coco_figures_are_one_for_perfect_detections_and_drop_with_misses():
    truth = {"boxes": torch.tensor([[10.0, 10, 60, 60], [70, 70, 120, 110]]), "labels": torch.tensor([1, 2])}
    perfect = Detections(truth["boxes"].clone(), torch.tensor([0.9, 0.8]), truth["labels"].clone())
    figures = coco_figures([(0, perfect, truth)], num_classes=3)
    assert figures["figures"]["map"] == pytest.approx(1.0) and figures["figures"]["map_50"] == pytest.approx(1.0)
    assert figures["per_class"][1]["ap50"] == pytest.approx(1.0)
    half = Detections(truth["boxes"][:1].clone(), torch.tensor([0.9]), truth["labels"][:1].clone())
    figures = coco_figures([(0, half, truth)], num_classes=3)
    assert figures["figures"]["map"] == pytest.approx(0.5)  # class 2 missed: AP 0
    assert figures["curves"].shape == (2, 101, 3)


def test_meter_merges_tiles_of_one_image_before_scoring():
    t_left = targets([[10, 10, 60, 60]], [1], size=128, window=[0, 0, 64, 128])
    t_right = targets([[10, 10, 60, 60]], [1], size=128, window=[64, 0, 128, 128])
    images = ImageDetections()
    out = torch.zeros(1, 1, 4 + 2)
    out[0, 0, :4] = torch.tensor([10 / 64, 10 / 128, 60 / 64, 60 / 128])  # the left tile sees the box whole
    out[0, 0, 4:] = torch.tensor([0.0, 6.0])
    images.add(out, t_left)
    empty = torch.zeros(1, 1, 4 + 2)
    empty[0, 0, :4] = torch.tensor([0.1, 0.1, 0.2, 0.2])
    empty[0, 0, 4] = 6.0  # the right tile sees nothing
    images.add(empty, t_right)
    merged = images.merged()
    assert len(merged) == 1
    _, det, truth = merged[0]
    assert torch.allclose(det.boxes, torch.tensor([[10.0, 10, 60, 60]]), atol=1e-4)
    assert coco_figures(merged, 2)["figures"]["map"] == pytest.approx(1.0)


def test_evaluator_report_with_pictures(tmp_path):
    t = targets([[10, 10, 40, 50], [60, 70, 120, 120]], [1, 2])
    outputs = perfect_outputs(t, num_classes=3)
    evaluator = DetectionEvaluator(mean=(0.5,) * 3, std=(0.5,) * 3)
    evaluator.update(outputs, t, torch.zeros(1, 3, 128, 128))
    report = evaluator.finish(["background", "a", "b"], gather=False)
    assert report.map == pytest.approx(1.0)
    assert [c["objects"] for c in report.per_class] == [1, 1]
    report.write(tmp_path / "eval")
    assert {p.name for p in (tmp_path / "eval").iterdir()} >= {"report.md", "report.json", "detections"}
    assert len(list((tmp_path / "eval" / "detections").iterdir())) == 1
    assert "mAP@[.5:.95]" in (tmp_path / "eval" / "report.md").read_text()


def test_eval_loss_recodes_decoded_boxes_like_the_training_loss():
    task = get_task("detection")
    t = targets([[10, 10, 40, 50]], [1])
    outputs = perfect_outputs(t, num_classes=2)
    assert task.eval_loss(outputs, t) < 0.01
    anchors = anchors_for_count(outputs.shape[1])
    assert torch.equal(anchors, ANCHORS)
    assert math.isfinite(task.eval_loss(torch.rand(1, len(ANCHORS), 6), t))


def test_boxes_labelled_zero_between_real_ones_match_nothing():
    t = targets([[10, 10, 40, 50], [0, 0, 0, 0], [60, 70, 120, 120]], [1, 0, 2])
    boxes, labels = t.in_window()
    matched, classes = match(ANCHORS, boxes[0], labels[0], SSDMatcher(0.5))
    assert set(matched[matched >= 0].tolist()) == {0, 2}
    assert ((classes == 2) == (matched == 2)).all() and ((classes == 1) == (matched == 0)).all()
