"""Segmentation data: every layout, the built-in digit scenes, joint transforms that keep image and mask aligned,
full-resolution evaluation masks, and bad pairs as one line naming the file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenetv2.data import DataConfig, Preprocessing
from mobilenetv2.data.digit_scenes import DIGIT_CLASSES
from mobilenetv2.data.segmentation.loaders import build_segmentation_data, build_segmentation_eval_loader
from mobilenetv2.data.segmentation.sources import (
    PASCAL_CLASSES,
    resolve_segmentation_source,
    segmentation_default_split,
    typical_side,
)
from mobilenetv2.data.segmentation.transforms import JointTrain
from mobilenetv2.data.splits import seeded_split
from mobilenetv2.errors import UserError

COLOURS = {0: (0, 0, 0), 1: (250, 0, 0), 2: (0, 250, 0)}


def colour_coded(size: tuple[int, int], seed: int = 0) -> tuple[Image.Image, np.ndarray]:
    """Blocks whose colour encodes their class: after any joint transform the mask must still match the colour."""
    rng = np.random.default_rng(seed)
    mask = np.kron(rng.integers(0, 3, (size[1] // 8, size[0] // 8)), np.ones((8, 8), dtype=np.int64)).astype(np.uint8)
    image = np.zeros((*mask.shape, 3), dtype=np.uint8)
    for cls, colour in COLOURS.items():
        image[mask == cls] = colour
    return Image.fromarray(image), mask


def write_pairs(folder, count: int, size=(48, 40), seed: int = 0) -> None:
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir(parents=True)
    for i in range(count):
        image, mask = colour_coded(size, seed + i)
        image.save(folder / "images" / f"p{i}.png")
        Image.fromarray(mask).save(folder / "masks" / f"p{i}.png")


def test_images_and_masks_folder_with_seeded_split_and_class_names(tmp_path):
    write_pairs(tmp_path, 10)
    source = resolve_segmentation_source(str(tmp_path), val_split=0.3, seed=1)
    assert source.class_names == ["0", "1", "2"]
    assert len(source.splits["train"]) == 7 and len(source.splits["val"]) == 3 and len(source.splits["all"]) == 10
    (tmp_path / "classes.txt").write_text("void\nred\ngreen\n")
    assert resolve_segmentation_source(str(tmp_path)).class_names == ["void", "red", "green"]
    assert segmentation_default_split(str(tmp_path)) == "all" and typical_side(str(tmp_path)) == 48
    Image.open(tmp_path / "images" / "p0.png").save(tmp_path / "images" / "p0.gif")  # data/images.py's suffixes
    (tmp_path / "images" / "p0.png").unlink()
    assert sorted(p.name for p, _ in resolve_segmentation_source(str(tmp_path)).splits["all"].items)[0] == "p0.gif"



def test_seeded_split_keeps_a_training_image_whatever_the_validation_share(tmp_path):
    assert seeded_split(10, 0.3, 1) == ([0, 1, 2, 3, 4, 5, 7], [6, 8, 9])  # the split by image of both tasks
    assert seeded_split(5, 0.01, 2) == ([0, 1, 3, 4], [2]) and seeded_split(1, 0.5, 0) == ([0], [])
    write_pairs(tmp_path, 2)
    data = build_segmentation_data(DataConfig(data=str(tmp_path), val_split=0.9, input_size=32, batch_size=2, workers=0))
    assert len(data.train_loader.dataset) == 1 and len(data.val_loader.dataset) == 1

def test_train_val_folders_and_palette_masks(tmp_path):
    write_pairs(tmp_path / "train", 4)
    write_pairs(tmp_path / "val", 2, seed=9)
    mask = Image.open(tmp_path / "val" / "masks" / "p0.png").convert("P")
    mask.save(tmp_path / "val" / "masks" / "p0.png")  # a palette PNG is read as its indices
    source = resolve_segmentation_source(str(tmp_path))
    assert len(source.splits["train"]) == 4 and len(source.splits["val"]) == 2
    assert segmentation_default_split(str(tmp_path)) == "val"


def test_pascal_voc_layout(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True)
    for i in range(3):
        image, mask = colour_coded((32, 32), i)
        image.save(root / "JPEGImages" / f"2007_{i}.jpg")
        Image.fromarray(mask).save(root / "SegmentationClass" / f"2007_{i}.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("2007_0\n2007_1\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("2007_2\n")
    source = resolve_segmentation_source(str(tmp_path))
    assert source.class_names == PASCAL_CLASSES and len(source.splits["train"]) == 2 and len(source.splits["val"]) == 1
    assert segmentation_default_split(str(tmp_path)) == "val"


def test_builtin_digit_scenes_are_deterministic_with_exact_masks():
    a, b = resolve_segmentation_source("digits", seed=0), resolve_segmentation_source("digits", seed=0)
    assert a.class_names == DIGIT_CLASSES and len(a.splits["train"]) > len(a.splits["val"]) > 0
    for i in range(5):
        (img_a, mask_a), (img_b, mask_b) = a.splits["train"][i], b.splits["train"][i]
        assert np.array_equal(np.asarray(img_a), np.asarray(img_b)) and np.array_equal(mask_a, mask_b)
        assert mask_a.max() <= 10 and (mask_a > 0).any()
        pixels = np.asarray(img_a).astype(int)
        # a digit's pixels all carry its one paint colour: the mask marks exactly the painted strokes
        for cls in np.unique(mask_a[mask_a > 0]):
            assert len(np.unique(pixels[mask_a == cls].reshape(-1, 3), axis=0)) <= 3


@pytest.mark.parametrize("augment", ["paper", "light"])
def test_joint_augmentation_keeps_image_and_mask_aligned(augment):
    pre = Preprocessing(input_size=64, mean=(0.0,) * 3, std=(1.0,) * 3)
    transform = JointTrain(pre, augment, flip=True)
    for seed in range(6):
        torch.manual_seed(seed)
        image, mask = colour_coded((48, 40), seed)
        x, y = transform(image, mask)
        assert x.shape == (3, 64, 64) and y.shape == (64, 64) and y.dtype == torch.int64
        red, green = x[0] > x[1:].max(0).values + 0.3, x[1] > x[[0, 2]].max(0).values + 0.3  # survives colour jitter
        labelled = y != 255
        assert (y[red & labelled] == 1).float().mean() > 0.85 and (y[green & labelled] == 2).float().mean() > 0.85  # edges blur
        if augment == "light":  # no colour jitter: padded pixels stay 0 in the image, 255 (ignore) in the mask
            assert (x[:, y == 255] == 0).all()


def test_loaders_train_crops_and_full_resolution_eval_masks(tmp_path):
    write_pairs(tmp_path / "train", 6, size=(48, 40))
    write_pairs(tmp_path / "val", 3, size=(56, 24), seed=5)
    data = build_segmentation_data(DataConfig(data=str(tmp_path), input_size=32, batch_size=3, augment="light", workers=0))
    images, masks = next(iter(data.train_loader))
    assert images.shape == (3, 3, 32, 32) and masks.shape == (3, 32, 32)
    images, masks = next(iter(data.val_loader))
    assert images.shape == (3, 3, 32, 32) and [tuple(m.shape) for m in masks] == [(24, 56)] * 3
    loader, names = build_segmentation_eval_loader(str(tmp_path), Preprocessing(input_size=32), split="all", batch_size=4)
    assert names == ["0", "1", "2"] and len(loader.dataset) == 9
    with pytest.raises(UserError, match="classification"):
        build_segmentation_data(DataConfig(data=str(tmp_path), input_size=32, mixup=0.2))


def test_bad_pairs_are_one_line_naming_the_file(tmp_path):
    write_pairs(tmp_path / "a", 2)
    (tmp_path / "a" / "masks" / "p1.png").unlink()
    with pytest.raises(UserError, match=r"p1\.png: no mask \(expected .*masks/p1\.png\)"):
        resolve_segmentation_source(str(tmp_path / "a"))
    write_pairs(tmp_path / "b", 1)
    Image.new("L", (10, 10)).save(tmp_path / "b" / "masks" / "p0.png")
    with pytest.raises(UserError, match=r"p0\.png: mask is 10x10 but its image p0\.png is 48x40"):
        resolve_segmentation_source(str(tmp_path / "b"))
    write_pairs(tmp_path / "c", 1)
    (tmp_path / "c" / "classes.txt").write_text("a\nb\n")
    with pytest.raises(UserError, match=r"p0\.png: mask values \[2\] are outside the 2 classes"):
        resolve_segmentation_source(str(tmp_path / "c"))
    write_pairs(tmp_path / "d", 1)
    Image.new("RGB", (48, 40)).save(tmp_path / "d" / "masks" / "p0.png")
    with pytest.raises(UserError, match="single-channel"):
        resolve_segmentation_source(str(tmp_path / "d"))
    (tmp_path / "e").mkdir()
    with pytest.raises(UserError, match="not a segmentation dataset; expected images/"):
        resolve_segmentation_source(str(tmp_path / "e"))


@pytest.mark.parametrize("name", ["VOCSegmentation", "OxfordIIITPet"])
def test_torchvision_datasets_offline_are_one_line(name, tmp_path):
    with pytest.raises(UserError, match=f"{name}: dataset not found in .* downloads are off"):
        resolve_segmentation_source(name, data_root=str(tmp_path))


def test_real_photo_and_mask(shared_data, tmp_path):
    """The PASCAL bird and its mask as a one-image folder: 21 classes, 255 kept as ignore."""
    seg = shared_data / "segmentation"
    write = tmp_path / "bird"
    (write / "images").mkdir(parents=True)
    (write / "masks").mkdir()
    Image.open(seg / "bird_segmentation.bmp").save(write / "images" / "bird.png")
    Image.open(seg / "bird_segmentation_mask.bmp").save(write / "masks" / "bird.png")
    (write / "classes.txt").write_text("\n".join(PASCAL_CLASSES))
    loader, _ = build_segmentation_eval_loader(str(write), Preprocessing(input_size=65), split="all")
    _, masks = next(iter(loader))
    assert masks[0].shape == (513, 513) and set(masks[0].unique().tolist()) <= {0, 1, 2, 3, 255}
