"""Defaults chosen from the data: small grayscale characters get a small input, light augmentation and no crop;
photos get the paper's ImageNet recipe; the choice is described in one line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.data.describe import describe_source
from mobilenetv2.errors import UserError
from mobilenetv2.training import TrainConfig
from mobilenetv2.training.defaults import describe_defaults, resolve_defaults

HYMENOPTERA = Path(__file__).resolve().parents[3] / "shared" / "data" / "hymenoptera_data"


def write_characters(root: Path, per_class: int | None = None, size: int = 28) -> Path:
    """scikit-learn's 8x8 handwritten digits as ``size`` px grayscale PNGs (bicubic upsampling), one folder a digit."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    seen: dict[int, int] = {}
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target)):
        if per_class is not None and seen.get(label, 0) >= per_class:
            continue
        seen[label] = seen.get(label, 0) + 1
        ink = Image.fromarray((pixels * 255 / 16).astype(np.uint8), "L").resize((size, size), Image.BICUBIC)
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        ink.save(root / str(label) / f"{i:04d}.png")
    return root


def write_photos(root: Path, size: tuple[int, int], per_class: int = 3) -> Path:
    """Random RGB noise "photos" of ``size`` (width, height) in two class folders, as JPEGs."""
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.jpg")
    return root


@pytest.fixture(scope="module")
def characters(tmp_path_factory) -> Path:
    return write_characters(tmp_path_factory.mktemp("chars"), per_class=6)


def test_describe_source_summarises_a_sample(characters, tmp_path):
    summary = describe_source(str(characters))
    assert (summary.count, summary.num_classes, summary.width, summary.height) == (60, 10, 28, 28)
    assert summary.grayscale == 1.0 and str(summary) == "60 28x28 grayscale images in 10 classes"
    photos = describe_source(str(write_photos(tmp_path / "photos", (320, 240))))
    assert (photos.width, photos.height, photos.grayscale, photos.side) == (320, 240, 0.0, 320)
    gray_rgb = tmp_path / "gray_rgb"
    write_characters(gray_rgb, per_class=1)
    for f in gray_rgb.rglob("*.png"):
        Image.open(f).convert("RGB").save(f)  # gray pixels stored as RGB still count as grayscale
    assert describe_source(str(gray_rgb)).grayscale == 1.0


def test_small_grayscale_images_get_a_small_input_light_augmentation_and_no_crop(characters):
    before = TrainConfig(data=str(characters))
    after = resolve_defaults(before)
    assert (after.input_size, after.augment, after.crop_pct) == (64, "light", 1.0)
    assert (after.batch_size, after.warmup_epochs) == (32, 0.3)
    assert describe_defaults(before, after) == (
        "defaults from the data: 60 28x28 grayscale images in 10 classes -> input 64, augment light, no crop, "
        "batch 32, warm-up 0.3 epoch(s) (set --input-size/--augment/--crop-pct/--batch-size/--warmup-epochs "
        "to override)")


def test_small_images_at_an_input_of_32_get_batches_of_64_and_a_one_epoch_warm_up(characters):
    """The regression issue's case: 28x28 characters with explicit --input-size 32 --augment light --crop-pct 1.0.
    At 32 px the last stages see 1x1 maps; batches of 32 with a 0.3-epoch warm-up (tuned for the default 64 px)
    trained badly there, the earlier batches of 64 and 1 warm-up epoch well. Above 32 px the small-image run stays."""
    before = TrainConfig(data=str(characters), input_size=32, augment="light", crop_pct=1.0)
    after = resolve_defaults(before)
    assert (after.input_size, after.batch_size, after.warmup_epochs) == (32, 64, 1.0)
    assert describe_defaults(before, after) == (
        "defaults from the data: 60 28x28 grayscale images in 10 classes -> batch 64, warm-up 1 epoch(s) "
        "(set --batch-size/--warmup-epochs to override)")
    assert resolve_defaults(replace(before, batch_size=16)).warmup_epochs == 1.0  # each option on its own
    for size in (48, 64, 96):  # last maps of 2x2 and more
        after = resolve_defaults(TrainConfig(data=str(characters), input_size=size))
        assert (after.batch_size, after.warmup_epochs) == (32, 0.3), size


def test_large_photos_get_the_paper_recipe_and_medium_images_keep_their_size(tmp_path):
    after = resolve_defaults(TrainConfig(data=str(write_photos(tmp_path / "big", (640, 480)))))
    assert (after.input_size, after.augment, after.crop_pct) == (224, "paper", 0.875)
    after = resolve_defaults(TrainConfig(data=str(write_photos(tmp_path / "medium", (96, 96)))))
    assert (after.input_size, after.augment, after.crop_pct) == (96, "paper", 0.875)


@pytest.mark.skipif(not HYMENOPTERA.is_dir(), reason="needs ../shared/data/hymenoptera_data (real photos)")
def test_real_photos_get_the_paper_recipe():
    before = TrainConfig(data=str(HYMENOPTERA))
    after = resolve_defaults(before)
    assert (after.input_size, after.augment, after.crop_pct) == (224, "paper", 0.875)
    assert "colour images in 2 classes -> input 224, augment paper, crop 0.875" in describe_defaults(before, after)


def test_options_the_user_sets_are_kept_and_not_described(characters):
    before = TrainConfig(data=str(characters), input_size=96, augment="none", batch_size=16, warmup_epochs=0.0)
    after = resolve_defaults(before)
    assert (after.input_size, after.augment, after.crop_pct, after.batch_size, after.warmup_epochs) == (96, "none", 1.0, 16, 0)
    assert describe_defaults(before, after).endswith("-> no crop (set --crop-pct to override)")
    full = TrainConfig(data=str(characters), input_size=96, augment="none", crop_pct=0.9, batch_size=16, warmup_epochs=1)
    assert resolve_defaults(full) == full and describe_defaults(full, full) == ""


def test_digits_and_uninspectable_sources_keep_their_defaults():
    before = TrainConfig(data="digits")
    after = resolve_defaults(before)
    assert (after.input_size, after.augment, after.crop_pct) == (32, "light", 1.0)
    assert describe_defaults(before, after).startswith("defaults for the built-in digits")
    missing = TrainConfig(data="CIFAR10", data_root="/nonexistent/datasets")  # not on disk: nothing to look at
    assert (resolve_defaults(missing).input_size, resolve_defaults(missing).augment) == (224, "paper")


@pytest.mark.parametrize("option, value, message", [
    ("crop_pct", 0.002, r"crop_pct must be a number in \[0.25, 1\]"),
    ("input_size", 4096, "input_size must be an integer >= 32 and <= 2048"),
])
def test_out_of_range_options_fail_before_training(option, value, message):
    with pytest.raises(UserError, match=message):
        resolve_defaults(TrainConfig(data="digits", **{option: value}))


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 5 epochs of 1797 images: past the suite's 600 s when it shares 2 cores with an xdist worker
def test_small_grayscale_characters_train_well_with_the_defaults(tmp_path):
    """The foundation issue's case: 28x28 handwritten characters with every default, 5 epochs. The ImageNet recipe
    stalled at 78%; the data's defaults (64 px, light, no crop, batch 32, 0.3 warm-up epochs) give 98.9% with seed 0
    (batch 64 and 1 warm-up epoch: 96.7%, too few steps in 5 epochs; 32 px: 94.7%)."""
    from mobilenetv2.training import train

    folder = write_characters(tmp_path / "chars")  # all 1797 digits, 28x28 grayscale PNGs
    result = train(TrainConfig(data=str(folder), epochs=5, out=str(tmp_path / "run"), progress=False))
    assert result.best_metric >= 0.98, result.history
