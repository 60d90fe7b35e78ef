"""A tiny checkpoint (MobileNetV2 0.35, 2 classes, 64 px) and its ONNX export, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mobilenetv2.models import create_model
from mobilenetv2.spec import Preprocessing
from mobilenetv2.weights import save_checkpoint


def _randomise_bn(model: torch.nn.Module) -> None:
    """Non-trivial BatchNorm statistics, so folding them is really tested."""
    generator = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=generator) * 0.1)


@pytest.fixture(scope="session")
def randomise_bn():
    """``randomise_bn(model)``: non-trivial BatchNorm statistics (live activations, for int8 ranges too)."""
    return _randomise_bn


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=2)
    _randomise_bn(model)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    return save_checkpoint(path, model, class_names=["ants", "bees"], preprocessing=Preprocessing(input_size=64))


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint) -> Path:
    from mobilenetv2.export.exporter import export_model
    from mobilenetv2.weights import load_checkpoint

    out = tiny_checkpoint.with_suffix(".onnx")
    ckpt = load_checkpoint(tiny_checkpoint)
    export_model(ckpt.model, out, "onnx", meta=ckpt.meta)
    return out
