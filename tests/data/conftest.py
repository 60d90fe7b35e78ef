"""Small image files written into tmp_path for the data tests, offered as the ``imgs`` fixture."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def save_image(path: Path, color: tuple[int, int, int] = (200, 30, 30), size: int = 24, mode: str = "RGB") -> Path:
    """A tiny image with a gradient (so crops differ), saved in ``mode`` with the format its suffix implies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0.3, 1.0, size)[None, :, None]
    rgb = Image.fromarray((np.ones((size, size, 3)) * np.array(color) * ramp).astype(np.uint8))
    if mode == "I;16":
        Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257).save(path)
    else:
        rgb.convert(mode).save(path)
    return path


def make_class_folder(root: Path, counts: dict[str, int], size: int = 24) -> Path:
    """root/<class>/<i>.png with a distinct colour per class."""
    for k, (name, n) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            save_image(root / name / f"{i:03d}.png", color=(40 + 60 * k % 256, 200 - 50 * k % 200, 20 + 9 * i), size=size)
    return root


def truncated_jpeg(path: Path, size: int = 64) -> Path:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


@pytest.fixture
def imgs():
    """The helpers above: imgs.save_image, imgs.make_class_folder, imgs.truncated_jpeg."""
    from types import SimpleNamespace

    return SimpleNamespace(save_image=save_image, make_class_folder=make_class_folder, truncated_jpeg=truncated_jpeg)
