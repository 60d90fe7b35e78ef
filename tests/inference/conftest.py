"""A tiny checkpoint and a few images on disk, shared by the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenetv2.data import Preprocessing
from mobilenetv2.models import create_model
from mobilenetv2.weights import save_checkpoint

CLASSES = ["circle", "square", "triangle"]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=len(CLASSES)).eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    return save_checkpoint(path, model, class_names=CLASSES, preprocessing=Preprocessing(input_size=64))


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """class sub-folders with 4 small random RGB/L/RGBA images each."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name in CLASSES:
        (root / name).mkdir()
        for i, mode in enumerate(["RGB", "L", "RGBA", "RGB"]):
            arr = rng.integers(0, 256, (40 + i, 50, {"RGB": 3, "L": 1, "RGBA": 4}[mode]), dtype=np.uint8)
            Image.fromarray(arr.squeeze(-1) if mode == "L" else arr, mode).save(root / name / f"{i}.png")
    return root
