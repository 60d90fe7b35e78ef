"""The paper's memory accounting (section 5.1, Table 3): streamed bottlenecks, 16-bit activations."""

from __future__ import annotations

import pytest

from mobilenetv2 import create_model
from mobilenetv2.analysis import profile


def streamed(name: str, resolution: int, **kwargs) -> dict:
    return profile(create_model(name, **kwargs), resolution).streamed_memory


def by_resolution(memory: dict) -> dict[str, tuple[int, float]]:
    return {m["resolution"]: (m["max_channels"], m["kb"]) for m in memory["per_resolution"]}


def test_table3_maxima_v2_400k_v1_1600k():
    v2, v1 = streamed("mobilenet_v2", 224), streamed("mobilenet_v1", 224)
    # The paper's Table 3: max 400K for MobileNetV2 (16 channels at 112x112: the stem's 32 are streamed), 1600K for V1.
    assert (v2["largest_kb"], v2["largest_tensor"]) == (401.4, "112x112x16")  # 112*112*16 values, 2 bytes each
    assert (v1["largest_kb"], v1["largest_tensor"]) == (1605.6, "112x112x64")
    assert v1["largest_kb"] / v2["largest_kb"] == pytest.approx(4.0, abs=1e-3)
    # V1's column of Table 3, row by row: 64/1600, 128/800, 256/400, 512/200, 1024/100, 1024/2
    assert {r: c for r, (c, _) in by_resolution(v1).items()} == {
        "224x224": 3, "112x112": 64, "56x56": 128, "28x28": 256, "14x14": 512, "7x7": 1024, "1x1": 1024}
    # V2: the 1280-channel 7x7 conv feeds the pooling channel by channel (Table 3's 7x7 row: 320, 1x1 row: 1280)
    assert by_resolution(v2)["7x7"] == (320, 31.4) and by_resolution(v2)["1x1"] == (1280, 2.6)
    assert v2["scope"] == "the whole model"
    # without the split: the second block's depthwise conv, 112x112x96 in and 56x56x96 out, both whole
    assert (v2["whole_op_kb"], v2["whole_op_int8_kb"]) == (3010.6, 1505.3)
    assert v2["whole_op"] == "features.2.conv.1.0: 112x112x96 in, 56x56x96 out"


def test_small_case_by_hand():
    """MobileNetV2 0.35 at 64x64: stem 16 channels (streamed into the first block), blocks 8, 8, 16, 24, 32, 56, 112."""
    memory = streamed("mobilenet_v2", 64, width_mult=0.35, num_classes=10)
    kb = {r: kb for r, (_, kb) in by_resolution(memory).items()}
    assert kb == {"64x64": 24.6, "32x32": 16.4, "16x16": 4.1, "8x8": 2.0, "4x4": 1.0, "2x2": 0.9, "1x1": 2.6}
    assert by_resolution(memory)["32x32"][0] == 8  # not the stem's 16
    # peak: the image (64*64*3) + the first block's output (32*32*8) + one 32x32 channel of the stem and of the
    # depthwise output = 22,528 values, 45,056 bytes
    assert memory["peak_kb"] == 45.1 and memory["peak_int8_kb"] == 22.5
    assert memory["peak_step"].startswith("features.0+features.1: input 64x64x3 + output 32x32x8")


def test_squeeze_excite_keeps_the_depthwise_output_and_heads_are_out_of_scope():
    small = streamed("mobilenet_v3_small", 224)
    # the first block has SE: its 56x56x16 depthwise output must be whole before the gate; the stem is still streamed
    assert "output 56x56x16 + 56x56x16" in small["peak_step"]
    seg = streamed("deeplabv3_mobilenet_v2", 129, width_mult=0.35, num_classes=3)
    assert seg["scope"].startswith("the backbone (features) only")


def test_info_prints_both_accountings(capsys):
    from mobilenetv2.cli import main

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "| 112x112    | 32                | 802.8     | 4816.9                       | 16  " in out
    assert "largest tensor 401.4 KB (112x112x16" in out and "peak held at once 752.6 KB" in out
