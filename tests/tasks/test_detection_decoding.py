"""predict's numpy decoding (``decoding``) keeps what training's torchvision decoding (``boxes``) keeps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mobilenetv2.tasks.detection import boxes, decoding


def random_outputs(seed: int, anchors: int = 400, classes: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centre, side = rng.random((2, anchors, 2), dtype=np.float32) * np.float32([1.0, 0.3])[:, None, None]
    xyxy = np.concatenate([centre - side / 2, centre + side / 2], axis=-1)
    logits = rng.normal(0, 2.5, (anchors, classes + 1)).astype(np.float32)
    return np.concatenate([xyxy, logits], axis=-1)[None]


@pytest.mark.parametrize("converter", ["softmax", "sigmoid"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numpy_decoding_matches_torchvision(seed, converter):
    outputs = random_outputs(seed)
    (ours,) = decoding.decode(outputs, 0.2, score_converter=converter)
    (theirs,) = boxes.decode(torch.from_numpy(outputs), 0.2, score_converter=converter)
    assert len(ours) == len(theirs) > 5
    np.testing.assert_allclose(ours.boxes, theirs.boxes.numpy(), atol=1e-6)
    np.testing.assert_allclose(ours.scores, theirs.scores.numpy(), rtol=1e-5)
    assert np.array_equal(ours.labels, theirs.labels.numpy())


def test_tiles_move_into_the_image_and_merge():
    (a,), (b,) = decoding.decode(random_outputs(3), 0.3), decoding.decode(random_outputs(4), 0.3)
    windows, size = [(0, 0, 120, 120), (80, 0, 200, 120)], (120, 200)
    ours = decoding.merge([decoding.to_image(d, w, size) for d, w in zip((a, b), windows)])
    theirs = boxes.merge([boxes.to_image(boxes.Detections(*(torch.from_numpy(x) for x in (d.boxes, d.scores, d.labels))),
                                         torch.tensor(w, dtype=torch.float32), size) for d, w in zip((a, b), windows)])
    assert len(ours) == len(theirs) and ours.boxes[:, 2].max() <= 200 and ours.boxes[:, 3].max() <= 120
    np.testing.assert_allclose(ours.boxes, theirs.boxes.numpy(), atol=1e-4)
    assert np.array_equal(ours.labels, theirs.labels.numpy())
