"""Helpers shared by the command tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mobilenetv2.models import create_model
from mobilenetv2.spec import Preprocessing
from mobilenetv2.weights import save_checkpoint


def save_tiny_checkpoint(path: Path, class_names: list[str], seed: int | None = None, **preprocessing) -> Path:
    """A MobileNetV2 0.35 checkpoint with ``class_names`` and ``Preprocessing(**preprocessing)``, seeded if asked."""
    if seed is not None:
        torch.manual_seed(seed)
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=len(class_names))
    return save_checkpoint(path, model, class_names=class_names, preprocessing=Preprocessing(**preprocessing))


@pytest.fixture(scope="session")
def save_tiny():
    """``save_tiny(path, class_names, seed=None, **preprocessing) -> Path`` (see ``save_tiny_checkpoint``)."""
    return save_tiny_checkpoint
