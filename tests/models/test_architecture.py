"""MobileNetV2 is exactly the paper's Table 2, and the family's published figures hold."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mobilenetv2 import create_model
from mobilenetv2.analysis import count_macs
from mobilenetv2.models import MOBILENET_V2_TABLE
from mobilenetv2.models.layers import InvertedResidual, make_divisible


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "kwargs", "params", "macs_m"),
    [
        ("mobilenet_v2", {}, 3_504_872, 300.8),
        ("mobilenet_v2", {"width_mult": 1.4}, 6_108_776, 582.2),
        ("mobilenet_v2_050", {}, 1_968_680, None),
        ("mobilenet_v3_large", {}, 5_483_032, 216.6),
    ],
)
def test_published_figures(name, kwargs, params, macs_m):
    model = create_model(name, **kwargs)
    assert n_params(model) == params
    if macs_m is not None:
        assert count_macs(model, 224) / 1e6 == pytest.approx(macs_m, rel=0.005)


def test_table2_structure():
    model = create_model("mobilenet_v2")
    blocks = [m for m in model.features if isinstance(m, InvertedResidual)]
    assert len(blocks) == sum(n for _, _, n, _ in MOBILENET_V2_TABLE) == 17
    stem = model.features[0]
    assert (stem[0].out_channels, stem[0].kernel_size, stem[0].stride) == (32, (3, 3), (2, 2))
    assert isinstance(stem[2], nn.ReLU6)
    head = model.features[-1]
    assert head[0].out_channels == 1280 and head[0].kernel_size == (1, 1)
    assert isinstance(model.classifier[0], nn.Dropout) and model.classifier[1].in_features == 1280
    i = 0
    for t, c, n, s in MOBILENET_V2_TABLE:
        for k in range(n):
            block = blocks[i]
            dw = block.conv[0 if t == 1 else 1][0]
            assert dw.groups == dw.in_channels == dw.out_channels, "depthwise conv"
            assert dw.stride == ((s, s) if k == 0 else (1, 1))
            assert block.out_channels == c
            if t != 1:
                assert block.conv[0][0].out_channels == dw.in_channels == block.conv[0][0].in_channels * t
            i += 1


def test_linear_bottleneck_and_residuals():
    model = create_model("mobilenet_v2")
    for block in model.features:
        if not isinstance(block, InvertedResidual):
            continue
        assert isinstance(block.conv[-1], nn.BatchNorm2d), "no activation after the projection"
        assert isinstance(block.conv[-2], nn.Conv2d) and block.conv[-2].kernel_size == (1, 1)
        first_conv = block.conv[0][0]
        assert block.use_res_connect == (block.stride == 1 and first_conv.in_channels == block.out_channels)
    assert sum(b.use_res_connect for b in model.features if isinstance(b, InvertedResidual)) == 10


def test_residual_is_added():
    block = InvertedResidual(16, 16, 1, 96).eval()
    x = torch.randn(1, 16, 8, 8)
    assert torch.allclose(block(x), x + block.conv(x))


@pytest.mark.parametrize("width", [0.35, 0.5, 0.75, 1.0, 1.3, 1.4, 0.1, 2.0])
def test_width_rounding(width):
    model = create_model("mobilenet_v2", width_mult=width)
    channels = [model.features[0][0].out_channels] + [b.out_channels for b in model.features[1:-1]]
    assert all(c % 8 == 0 for c in channels)
    for c, base in zip(channels, [32] + [c for _, c, n, _ in MOBILENET_V2_TABLE for _ in range(n)]):
        assert c >= 0.9 * base * width
    assert model.num_features == (1280 if width <= 1.0 else make_divisible(1280 * width))


def test_make_divisible_rule():
    assert make_divisible(32 * 0.35) == 16  # never below 90%: 11.2 -> 8 would be 71%
    assert make_divisible(160 * 0.35) == 56
    assert make_divisible(1280 * 1.4) == 1792
    assert make_divisible(3.0) == 8


@pytest.mark.slow
@pytest.mark.parametrize("resolution", [32, 96, 128, 160, 193, 224])
def test_any_resolution(resolution):
    model = create_model("mobilenet_v2_035", num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, resolution, resolution)).shape == (2, 7)


@pytest.mark.slow
def test_knobs():
    model = create_model("mobilenet_v2", width_mult=0.5, expansion=4, in_chans=1, num_classes=3, dropout=0.0,
                         activation="hardswish", se_ratio=0.25).eval()
    assert model.features[2].conv[0][0].out_channels == model.features[1].out_channels * 4
    assert any(isinstance(m, nn.Hardswish) for m in model.modules())
    assert not any(isinstance(m, nn.ReLU6) for m in model.modules())
    assert sum(any(hasattr(m, "fc1") for m in b.conv) for b in model.features[1:-1]) == 17
    assert model.classifier[0].p == 0.0
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64)).shape == (1, 3)
    assert not any(hasattr(m, "fc1") for m in create_model("mobilenet_v2").modules()), "no SE by default"


@pytest.mark.slow
def test_backbone_pyramid_strides():
    model = create_model("mobilenet_v2").eval()
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        feats = model.forward_pyramid(x)
    assert [f["stride"] for f in model.feature_info] == [4, 8, 16, 32]
    for f, info in zip(feats, model.feature_info):
        assert f.shape[1] == info["channels"] and f.shape[-1] == 256 // info["stride"]
    assert model.forward_features(x).shape == (1, 1280, 8, 8)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v3_small", "mobilenet_v3_large"])
def test_family_pyramids_and_forward(name):
    model = create_model(name, width_mult=0.5, num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 5)
        feats = model.forward_pyramid(torch.randn(1, 3, 64, 64))
    assert [64 // f.shape[-1] for f in feats] == [4, 8, 16, 32]


def test_mobilenet_v1_figures():
    model = create_model("mobilenet_v1")
    assert n_params(model) == 4_231_976  # 4.2M, as in the V1 paper's Table 8
    assert count_macs(model, 224) / 1e6 == pytest.approx(569, rel=0.01)
    dws = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(dws) == 13


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v1"])
def test_macs_agree_with_flop_counter(name):
    model = create_model(name).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    assert 2 * count_macs(model, 224) == pytest.approx(counter.get_total_flops(), rel=0.005)


def test_tf_padding_is_asymmetric_on_stride2():
    from mobilenetv2.models.layers import Conv2dSame

    conv = Conv2dSame(1, 1, 3, 2, 0, bias=False)
    nn.init.ones_(conv.weight)
    x = torch.ones(1, 1, 4, 4)
    out = conv(x)  # TF SAME on 4x4, stride 2: pad 0 before, 1 after -> top-left window fully inside
    assert out.shape == (1, 1, 2, 2) and out[0, 0, 0, 0] == 9 and out[0, 0, 1, 1] == 4
    model = create_model("mobilenet_v2_035", tf_padding=True).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 97, 97)).shape == (1, 1000)


def test_reset_classifier():
    model = create_model("mobilenet_v2_035")
    model.reset_classifier(4)
    assert model.classifier[-1].out_features == 4 and model.arch["args"]["num_classes"] == 4
