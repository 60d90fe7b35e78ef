"""Seeded train/validation splits of a source without its own: by image (segmentation, detection) or per class
(classification). The same seed gives the same split; each keeps at least one training image."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np


def seeded_split(n: int, val_split: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of (train, val) images, round(val_split * n) to validation: at least one in each when there are two
    or more (the validation share is capped at n - 1)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_val = min(n - 1, max(1, round(n * val_split))) if n > 1 else 0
    return sorted(order[n_val:]), sorted(order[:n_val])


def stratified_split(labels: Sequence[int], val_split: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded per-class split: round(val_split * n) of each class (at least 1 when it has 2+) go to validation."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = min(max(int(round(val_split * len(idx))), 1), len(idx) - 1) if len(idx) > 1 else 0
        val += idx[:n_val].tolist()
        train += idx[n_val:].tolist()
    return sorted(train), sorted(val)
