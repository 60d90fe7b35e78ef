"""SSDLite: the TF Object Detection API's layout, anchors, box coding and the paper's size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mobilenetv2.analysis.profile import count_macs
from mobilenetv2.errors import UserError
from mobilenetv2.models import create_model
from mobilenetv2.models.detection import anchor_shapes, anchors_for_count, feature_sizes, ssd_anchors


@pytest.mark.slow
def test_ssdlite_mobilenet_v2_matches_the_paper_size_at_300():
    model = create_model("ssdlite_mobilenet_v2", num_classes=91)
    weights = sum(p.numel() for n, p in model.named_parameters()
                  if not isinstance(model.get_submodule(n.rsplit(".", 1)[0]), nn.BatchNorm2d))
    assert abs(weights - 4.3e6) / 4.3e6 < 0.05  # paper: 4.3M
    assert abs(count_macs(model, 300) - 0.8e9) / 0.8e9 < 0.08  # paper: 0.8B (convolutions only here)


@pytest.mark.slow
def test_maps_channels_and_1917_anchors_at_300():
    model = create_model("ssdlite_mobilenet_v2", num_classes=91).eval()
    maps = model.feature_maps(torch.zeros(1, 3, 300, 300))
    assert [tuple(m.shape[1:]) for m in maps] == [(576, 19, 19), (1280, 10, 10), (512, 5, 5), (256, 3, 3),
                                                 (256, 2, 2), (128, 1, 1)]
    assert [len(s) for s in anchor_shapes()] == [3, 6, 6, 6, 6, 6]
    assert model(torch.zeros(1, 3, 300, 300)).shape == (1, 1917, 4 + 91)


def test_anchors_follow_tf_scales_and_order():
    anchors = ssd_anchors(feature_sizes(300))
    assert anchors.shape == (1917, 4)
    first = anchors[0]  # map 0, row 0, column 0, scale 0.1 ratio 1: a 0.1 square centred at (0.5/19, 0.5/19)
    centre = 0.5 / 19
    assert torch.allclose(first, torch.tensor([centre - 0.05, centre - 0.05, centre + 0.05, centre + 0.05]), atol=1e-6)
    second_column = anchors[3]  # next location is the next column (x moves, y stays)
    assert second_column[1] == pytest.approx(first[1]) and second_column[0] > first[0]
    last = anchors[-1]  # the 1x1 map's interpolated anchor: sqrt(0.95 * 1.0), centred
    side = (0.95 * 1.0) ** 0.5
    assert torch.allclose(last, torch.tensor([0.5 - side / 2, 0.5 - side / 2, 0.5 + side / 2, 0.5 + side / 2]), atol=1e-6)
    assert torch.equal(anchors_for_count(1917), anchors)
    assert anchors_for_count(ssd_anchors(feature_sizes(320)).shape[0]).shape[0] == ssd_anchors(feature_sizes(320)).shape[0]


@pytest.mark.slow
def test_eval_output_decodes_regression_against_the_anchors():
    model = create_model("ssdlite_mobilenet_v2", num_classes=3, width_mult=0.5)
    x = torch.randn(2, 3, 128, 128)
    model.eval()
    decoded = model(x)
    model.train()
    for m in model.modules():  # same numbers in training mode: BatchNorm on running statistics
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    raw = model(x)
    assert torch.allclose(decoded[..., 4:], raw[..., 4:], atol=1e-5)
    anchors = anchors_for_count(raw.shape[1])
    expected = model.coder.decode_single(raw[0, :, :4], anchors)
    assert torch.allclose(decoded[0, :, :4], expected, atol=1e-5)
    zero = model.coder.decode_single(torch.zeros(1, 4), anchors[:1])  # code 0 is the anchor itself
    assert torch.allclose(zero, anchors[:1], atol=1e-6)


def test_background_starts_likely_and_new_classes_keep_the_box_predictors():
    model = create_model("ssdlite_mobilenet_v2", num_classes=11, width_mult=0.35).eval()
    probs = model(torch.randn(1, 3, 96, 96))[..., 4:].softmax(-1)
    assert probs[..., 0].mean() > 0.9
    box_weights = model.classifier.box[0][-1].weight.clone()
    model.reset_classifier(4)
    assert model.num_classes == 4 and model.arch["args"]["num_classes"] == 4
    assert model(torch.randn(1, 3, 96, 96)).shape[-1] == 8
    assert torch.equal(model.classifier.box[0][-1].weight, box_weights)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "tap"), [("ssdlite_mobilenet_v1", 512), ("ssdlite_mobilenet_v3_large", 672)])
def test_v1_and_v3_backbones_for_comparison(name, tap):
    model = create_model(name, num_classes=5).eval()
    maps = model.feature_maps(torch.zeros(1, 3, 300, 300))
    assert maps[0].shape[1:] == (tap, 19, 19) and maps[1].shape[-1] == 10
    assert model(torch.zeros(1, 3, 300, 300)).shape == (1, 1917, 9)


def test_backbone_keys_match_the_classifier_for_pretrained_weights():
    detector = create_model("ssdlite_mobilenet_v2", num_classes=2)
    classifier = create_model("mobilenet_v2")
    assert detector.features.state_dict().keys() == classifier.features.state_dict().keys()


def test_bad_arguments_are_one_line():
    with pytest.raises(UserError, match="background"):
        create_model("ssdlite_mobilenet_v2", num_classes=1)
    with pytest.raises(UserError, match="backbone"):
        create_model("ssdlite_mobilenet_v2", backbone="resnet50")
    with pytest.raises(UserError, match="at least 64"):
        create_model("ssdlite_mobilenet_v2").eval()(torch.zeros(1, 3, 48, 48))
