"""Shared fixtures: the real data folder beside the checkout, and small thread counts for a 2-core machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

THREADS = 2
torch.set_num_threads(THREADS)


@pytest.fixture(autouse=True)
def _isolate_torch_globals():
    """Every test starts with the same thread count and determinism flag, whatever the previous one set:
    results that must match bit for bit (resume, DDP) depend on the reduction order, hence on threads."""
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(False)
    yield
    torch.set_num_threads(THREADS)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the checkout; tests needing it skip when it is absent (a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (only CI and developer machines have ../shared/data)")
    return SHARED_DATA


SHAPE_CLASSES = ["background", "square", "disc"]


def shapes_image(rng: np.random.Generator, size: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A noisy background with a red square (class 1) and a blue disc (class 2); the mask marks them exactly."""
    image = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
    mask = np.zeros((size, size), dtype=np.uint8)
    x, y = rng.integers(2, size // 2, 2)
    s = int(rng.integers(6, size // 2))
    image[y:y + s, x:x + s] = (220, 30, 30)
    mask[y:y + s, x:x + s] = 1
    cy, cx, r = rng.integers(8, size - 8), rng.integers(8, size - 8), rng.integers(4, 8)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    image[disc] = (30, 30, 220)
    mask[disc] = 2
    return image, mask


def write_shapes(root: Path, counts: dict[str, int], seed: int = 0, size: int = 40) -> Path:
    """A segmentation folder: root/{split}/images/*.png, root/{split}/masks/*.png (class indices), root/classes.txt."""
    rng = np.random.default_rng(seed)
    for split, count in counts.items():
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for i in range(count):
            image, mask = shapes_image(rng, size)
            Image.fromarray(image).save(root / split / "images" / f"{split}{i}.png")
            Image.fromarray(mask, "L").save(root / split / "masks" / f"{split}{i}.png")
    (root / "classes.txt").write_text("\n".join(SHAPE_CLASSES) + "\n")
    return root


@pytest.fixture(scope="session")
def shapes_folder(tmp_path_factory) -> Path:
    """12 training and 4 validation 40x40 images of a square and a disc, with exact masks (3 classes)."""
    return write_shapes(tmp_path_factory.mktemp("shapes"), {"train": 12, "val": 4})
