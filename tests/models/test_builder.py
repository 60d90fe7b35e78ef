"""FeatureBuilder: stages and feature points derived in one place, usable by backbone heads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mobilenetv2.models import create_model
from mobilenetv2.models.builder import FeatureBuilder


def conv(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, padding=dilation, dilation=dilation)


def test_stages_and_deepest_layer_per_stride():
    b = FeatureBuilder()
    b.stage("stem", "conv2d 3x3", None, 8, 1, 2)
    b.add(conv(3, 8, 2), 2, 8)
    b.stage("stage1", "conv", None, 16, 1, 2)
    b.add(conv(8, 16, 2), 2, 16)
    b.extend_stage()
    b.add(conv(16, 16), 1, 16)
    b.stage("stage2", "conv", None, 24, 1, 2)
    b.add(conv(16, 24, 2), 2, 24)
    features, stages, info = b.build()
    assert isinstance(features, nn.Sequential) and len(features) == len(b) == 4
    assert [(s.name, s.n, s.indices) for s in stages] == [("stem", 1, [0]), ("stage1", 2, [1, 2]), ("stage2", 1, [3])]
    assert info == [
        {"index": 2, "stride": 4, "channels": 16, "name": "features.2"},
        {"index": 3, "stride": 8, "channels": 24, "name": "features.3"},
    ]
    assert b.stride == 8


def test_dilated_layers_keep_the_stride():
    """A DeepLab-style backbone trades stride 2 for dilation: its feature points report the real output stride."""
    b = FeatureBuilder()
    b.stage("stem", "conv", None, 8, 1, 2)
    b.add(conv(3, 8, 2), 2, 8)
    b.add(conv(8, 8, 2), 2, 8)
    b.add(conv(8, 16, 1, dilation=2), 1, 16)
    features, _, info = b.build()
    assert info == [{"index": 2, "stride": 4, "channels": 16, "name": "features.2"}]
    assert features(torch.zeros(1, 3, 32, 32)).shape[-1] == 32 // info[-1]["stride"]


def test_add_needs_an_open_stage():
    with pytest.raises(RuntimeError, match="open a stage"):
        FeatureBuilder().add(conv(3, 8), 1, 8)


@pytest.mark.parametrize("name", ["mobilenet_v1_025", "mobilenet_v2_035", "mobilenet_v3_small", "mobilenet_v3_large_075"])
def test_feature_info_names_the_modules(name):
    model = create_model(name).eval()
    assert [f["stride"] for f in model.feature_info] == [4, 8, 16, 32]
    assert model.feature_info[-1]["index"] == len(model.features) - 1, "the last layer (final 1x1 conv) reports stride 32"
    assert sorted(i for s in model.stages for i in s.indices) == list(range(len(model.features)))
    with torch.no_grad():
        feats = model.forward_pyramid(torch.randn(1, 3, 64, 64))
    for f, info in zip(feats, model.feature_info):
        assert model.get_submodule(info["name"]) is model.features[info["index"]]
        assert (f.shape[1], 64 // f.shape[-1]) == (info["channels"], info["stride"])


@pytest.mark.slow
def test_ssdlite_tap_inside_the_first_stride32_block():
    """SSDLite taps the expansion inside the block after the last stride-16 layer, found from feature_info."""
    model = create_model("mobilenet_v2_035").eval()
    at16 = next(f for f in model.feature_info if f["stride"] == 16)
    expansion = model.get_submodule(f"features.{at16['index'] + 1}.conv.0")
    seen = []
    expansion.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        model(torch.randn(1, 3, 320, 320))
    assert seen[0].shape[-1] == 320 // 16 and seen[0].shape[1] == 6 * at16["channels"]
