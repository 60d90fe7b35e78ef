"""The built-in digit scenes are pinned: the same seed gives the same pixels, masks and boxes, release after release
(tests, trained checkpoints and the README's figures depend on them)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from mobilenetv2.data.detection.sources import resolve_detection_source
from mobilenetv2.data.segmentation.sources import resolve_segmentation_source


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


@pytest.mark.parametrize(("seed", "split", "index", "pixels", "pixel", "boxes", "labels"), [
    (0, "train", 0, "36c0c4c37825056e", ((10, 10), [255, 199, 138]), [[46, 38, 56, 62]], [2]),
    (0, "val", 3, "d484912e2cb18d56", ((64, 100), [178, 124, 15]),
     [[56, 7, 63, 23], [65, 78, 88, 111], [46, 37, 52, 51], [47, 82, 60, 101]], [2, 3, 2, 7]),
    (0, "all", 481, "85df78932687a038", ((10, 10), [132, 123, 238]),
     [[54, 91, 74, 121], [1, 17, 23, 47], [32, 113, 43, 128], [49, 63, 71, 95]], [6, 9, 8, 8]),
    (3, "train", 5, "b6922a1b8dfc75a5", None,
     [[13, 27, 33, 51], [18, 7, 30, 25], [20, 39, 39, 66], [44, 81, 58, 101]], [5, 10, 9, 8]),
])
def test_detection_digit_canvases_are_pinned(seed, split, index, pixels, pixel, boxes, labels):
    image, target = resolve_detection_source("digits", seed=seed).splits[split][index]
    array = np.asarray(image)
    assert digest(array) == pixels
    if pixel is not None:
        assert array[pixel[0]].tolist() == pixel[1]
    assert target["boxes"].tolist() == boxes and target["labels"].tolist() == labels


@pytest.mark.parametrize(("seed", "split", "index", "pixels", "mask", "counts"), [
    (0, "train", 0, "b2093ce4b76fdfd3", "5a5f53b503186aba", {0: 8208, 8: 1008}),
    (0, "val", 3, "5bdf9be5e950e7a7", "d3ecb8980c6533c5", {0: 7242, 1: 1008, 2: 966}),
    (0, "all", 481, "a30c84f36f0ff127", "be203b2721102cdc", {0: 7584, 10: 1632}),
    (3, "train", 5, "94a973d1e7dfe425", "8e11dd32fdcff226", None),
])
def test_segmentation_digit_scenes_are_pinned(seed, split, index, pixels, mask, counts):
    image, target = resolve_segmentation_source("digits", seed=seed).splits[split][index]
    assert digest(np.asarray(image)) == pixels and digest(target) == mask
    if counts is not None:
        assert {int(c): int(n) for c, n in enumerate(np.bincount(target.ravel())) if n} == counts
