"""DeepLabv3 and LR-ASPP on MobileNetV2: shapes, dilation, the paper's multiply-adds, heads and backbone keys."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mobilenetv2.analysis.profile import count_macs
from mobilenetv2.errors import UserError
from mobilenetv2.models import create_model

PAPER_MACS_OS16 = 2.75e9  # TF DeepLab model zoo, mobilenetv2_coco_voc_trainaug, 513x513, output stride 16


def depthwise(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.features.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deeplabv3_mobilenet_v2", "lraspp_mobilenet_v2"])
def test_logits_at_the_input_resolution(name):
    model = create_model(name, num_classes=5).eval()
    for size in [(64, 64), (97, 130)]:
        assert model(torch.randn(2, 3, *size)).shape == (2, 5, *size)


@pytest.mark.slow
def test_deeplab_multiply_adds_agree_with_the_paper():
    """Convolution multiply-adds only (BatchNorm folded, resizes and pooling not counted), as the model zoo counts."""
    macs = count_macs(create_model("deeplabv3_mobilenet_v2").eval(), 513)
    assert abs(macs - PAPER_MACS_OS16) / PAPER_MACS_OS16 < 0.01


@pytest.mark.slow
@pytest.mark.parametrize("output_stride, stride, rates", [(16, 16, [1] * 14 + [2] * 3), (8, 8, [1] * 7 + [2] * 7 + [4] * 3)])
def test_output_stride_by_dilation(output_stride, stride, rates):
    """TF's rule: the block that would stride past ``output_stride`` runs at stride 1, the later blocks dilate."""
    model = create_model("deeplabv3_mobilenet_v2", output_stride=output_stride).eval()
    assert [c.dilation[0] for c in depthwise(model)] == rates
    assert model.features(torch.randn(1, 3, 128, 128)).shape[-1] == 128 // stride
    assert model.feature_info[-1] == {"index": 17, "stride": stride, "channels": 320, "name": "features.17"}


@pytest.mark.slow
def test_backbone_ends_at_the_320_channel_bottleneck_with_classifier_keys():
    seg = create_model("deeplabv3_mobilenet_v2")
    cls = create_model("mobilenet_v2")
    seg_keys = seg.features.state_dict()
    assert len(seg.features) == 18 and seg.num_features == 320
    assert all(k in cls.features.state_dict() and cls.features.state_dict()[k].shape == v.shape for k, v in seg_keys.items())


def test_published_and_aspp_heads():
    published = create_model("deeplabv3_mobilenet_v2").classifier
    aspp = create_model("deeplabv3_mobilenet_v2", head="aspp").classifier
    assert len(published.branches) == 2 and published.project[0].in_channels == 512
    assert len(aspp.branches) == 5 and aspp.project[0].in_channels == 1280
    assert [b[0][0].dilation[0] for b in aspp.branches[1:4]] == [6, 12, 18]
    os8 = create_model("deeplabv3_mobilenet_v2", head="aspp", output_stride=8).classifier
    assert [b[0][0].dilation[0] for b in os8.branches[1:4]] == [12, 24, 36]


@pytest.mark.slow
def test_aux_head_only_in_training():
    model = create_model("deeplabv3_mobilenet_v2", num_classes=3, aux_loss=True)
    out, aux = model.train()(torch.randn(2, 3, 64, 64))
    assert out.shape == aux.shape == (2, 3, 64, 64)
    assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["deeplabv3_mobilenet_v2", "lraspp_mobilenet_v2"])
def test_reset_classifier_for_new_classes(name):
    model = create_model(name, num_classes=21, aux_loss=True)
    model.reset_classifier(4)
    assert model.num_classes == 4 and model.arch["args"]["num_classes"] == 4
    assert model.eval()(torch.randn(1, 3, 64, 64)).shape[1] == 4


def test_bad_arguments_are_one_line():
    with pytest.raises(UserError, match="output_stride must be one of 8, 16, 32"):
        create_model("deeplabv3_mobilenet_v2", output_stride=4)
    with pytest.raises(UserError, match="head must be one of published, aspp"):
        create_model("deeplabv3_mobilenet_v2", head="psp")
    with pytest.raises(UserError, match="output stride 16"):
        create_model("lraspp_mobilenet_v2", output_stride=8)
