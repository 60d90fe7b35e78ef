"""SSDLite's options for imported TF Object Detection API models leave our own models as they were."""

from __future__ import annotations

import math

import pytest
import torch

from mobilenetv2.errors import UserError
from mobilenetv2.models import create_model, model_from_arch
from mobilenetv2.models.detection import anchor_shapes, feature_sizes, ssd_anchors
from mobilenetv2.models.layers import Conv2dSame
from mobilenetv2.tasks import get_task
from mobilenetv2.tasks.detection.boxes import decode

SCALES = (0.35, 0.5, 0.65, 0.8, 0.95, 1.0)
TF_SPECS = [[(0.1, 1.0), (0.2, 2.0), (0.2, 0.5)],  # what the pedestrian graph holds: its aspect ratio 0.3333, not 1/3
            *([(s, r) for r in (1.0, 2.0, 0.5, 3.0, 0.3333)] + [(math.sqrt(s * t), 1.0)] for s, t in zip(SCALES, SCALES[1:]))]


def small(**kwargs):
    return create_model("ssdlite_mobilenet_v2", num_classes=3, width_mult=0.35, image_size=128, **kwargs)


def test_our_models_keep_their_arguments_anchors_and_padding():
    model = small()
    assert "anchor_specs" not in model.arch["args"] and "score_converter" not in model.arch["args"]
    assert model.score_converter == "softmax" and model.anchor_specs == anchor_shapes()
    assert not any(isinstance(m, Conv2dSame) for m in model.extras.modules())


def test_anchor_specs_and_sigmoid_travel_in_the_architecture():
    model = small(anchor_specs=TF_SPECS, score_converter="sigmoid", tf_padding=True)
    again = model_from_arch(model.arch)
    assert again.score_converter == "sigmoid" and again.anchor_specs == model.anchor_specs
    assert any(isinstance(m, Conv2dSame) for m in model.extras.modules())  # TF's SAME in the stride-2 extras
    sizes = feature_sizes(300)
    ours, theirs = ssd_anchors(sizes), ssd_anchors(sizes, TF_SPECS)
    assert ours.shape == theirs.shape == (1917, 4) and 0 < (ours - theirs).abs().max() < 1e-4


def test_anchor_specs_must_cover_every_map():
    with pytest.raises(UserError, match="each of the 6 maps"):
        small(anchor_specs=TF_SPECS[:5])
    with pytest.raises(UserError, match="score_converter must be one of"):
        small(score_converter="tanh")


def test_decode_scores_by_sigmoid_when_asked():
    outputs = torch.tensor([[[0.1, 0.1, 0.5, 0.5, 2.0, 1.0, -5.0]]])
    softmax, sigmoid = decode(outputs, 0.2)[0], decode(outputs, 0.2, score_converter="sigmoid")[0]
    assert softmax.scores.tolist() == pytest.approx([torch.tensor([2.0, 1.0, -5.0]).softmax(0)[1].item()])
    assert sigmoid.scores.tolist() == pytest.approx([torch.sigmoid(torch.tensor(1.0)).item()])


def test_fine_tuning_an_imported_sigmoid_model_trains_softmax_scores():
    model = small(anchor_specs=TF_SPECS, score_converter="sigmoid")
    tuned = get_task("detection").adapt_pretrained(model, "ssdlite_mobilenet_v2", 3)
    assert tuned.score_converter == "softmax" and "score_converter" not in tuned.arch["args"]
    assert tuned.arch["args"]["anchor_specs"][5][4] == [0.95, 0.3333]
