"""The per-layer table and totals of `info`."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from mobilenetv2 import UserError, create_model
from mobilenetv2.analysis import profile


def test_v2_table_matches_paper_rows():
    prof = profile(create_model("mobilenet_v2"), 224)
    rows = {r.name: r for r in prof.rows}
    assert [(r.input, r.t, r.c, r.n, r.s) for r in prof.rows[:9]] == [
        ("224x224x3", None, 32, 1, 2),
        ("112x112x32", 1, 16, 1, 1),
        ("112x112x16", 6, 24, 2, 2),
        ("56x56x24", 6, 32, 3, 2),
        ("28x28x32", 6, 64, 4, 2),
        ("14x14x64", 6, 96, 3, 1),
        ("14x14x96", 6, 160, 3, 2),
        ("7x7x160", 6, 320, 1, 1),
        ("7x7x320", None, 1280, 1, 1),
    ]
    assert rows["pool"].operator == "avgpool 7x7" and rows["classifier"].c == 1000
    assert sum(r.params for r in prof.rows) == prof.params == 3_504_872
    assert sum(r.macs for r in prof.rows) == prof.macs
    assert len(prof.blocks) == 19 and sum(b.macs for b in prof.blocks) + rows["classifier"].macs == prof.macs


def test_totals():
    prof = profile(create_model("mobilenet_v2"), 224)
    assert prof.params_without_bn == 3_470_760  # the TF tables' 3.47M
    assert prof.size_fp32_mb == pytest.approx(3_504_872 * 4 / 1e6, abs=1e-3)
    assert prof.size_int8_mb == pytest.approx(3.505, abs=1e-3)


@pytest.mark.parametrize(("width", "resolution"), [(1.0, 224), (0.5, 160), (1.4, 96), (0.35, 128)])
def test_macs_match_flop_counter(width, resolution):
    model = create_model("mobilenet_v2", width_mult=width).eval()
    prof = profile(model, resolution)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, resolution, resolution))
    assert 2 * prof.macs == pytest.approx(counter.get_total_flops(), rel=0.005)


def test_activation_memory_16bit():
    mem = {m["resolution"]: m for m in profile(create_model("mobilenet_v2"), 224).activation_memory}
    assert mem["56x56"]["max_channels"] == 24 and mem["56x56"]["kept_kb"] == pytest.approx(56 * 56 * 24 * 2 / 1e3, abs=0.1)
    # naive: the 96-channel expansion at 112x112 in and out of one layer (BatchNorm after the 1x1 expand)
    assert mem["112x112"]["naive_peak_kb"] == pytest.approx(112 * 112 * (96 + 96) * 2 / 1e3, abs=0.1)
    v1 = {m["resolution"]: m for m in profile(create_model("mobilenet_v1"), 224).activation_memory}
    # The paper's Table 3: MobileNetV1 keeps 1600K at 112x112, MobileNetV2 far less at every resolution below.
    assert v1["112x112"]["kept_kb"] == pytest.approx(1605.6, abs=0.1)
    assert all(mem[r]["kept_kb"] < v1[r]["kept_kb"] for r in ("112x112", "56x56", "28x28", "14x14"))


def test_bad_resolution():
    with pytest.raises(UserError, match="resolution must be an integer >= 32"):
        profile(create_model("mobilenet_v2_035"), 31)
