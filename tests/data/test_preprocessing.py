"""Inference's numpy preprocessing (``pil_pixels``, ``Normalize``) gives exactly the torchvision transforms' numbers."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.data.preprocessing import Normalize, eval_transform, pil_pixels, pixel_transform
from mobilenetv2.spec import Preprocessing


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
@pytest.mark.parametrize("resize_mode", ["crop", "squash"])
@pytest.mark.parametrize("channels", [3, 1])
def test_numpy_pixels_are_torchvisions(interpolation, resize_mode, channels):
    rng = np.random.default_rng(0)
    pre = Preprocessing(input_size=64, resize_mode=resize_mode, interpolation=interpolation, crop_pct=0.8)
    to_tensor, to_pixels = pixel_transform(pre, channels), eval_transform(pre)
    for height, width in [(97, 131), (131, 97), (64, 64), (300, 71)]:
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        pixels = pil_pixels(image, pre, channels)
        assert pixels.dtype == np.uint8 and pixels.shape == (channels, 64, 64)
        assert np.array_equal(pixels, to_tensor(image).numpy())
        if channels == 3:
            assert np.array_equal(Normalize(pre)(pixels), to_pixels(image).numpy())


def test_float_pixels_are_normalised_without_rescaling():
    pre = Preprocessing(input_size=32, mean=(0.5,), std=(0.25,))
    assert np.allclose(Normalize(pre)(np.full((1, 1, 2, 2), 0.75, np.float32)), 1.0)
    assert np.allclose(Normalize(pre)(np.full((1, 1, 2, 2), 255, np.uint8)), 2.0)
