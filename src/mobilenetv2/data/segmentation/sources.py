"""Segmentation sources: images with class-index masks (255 = ignore) from every layout, as datasets.

Sources (``data``): the built-in ``digits`` scenes (cards with digits printed in Pillow's bundled font on generated
backgrounds, exact masks); a folder with ``images/`` + ``masks/`` (same stem, masks PNG of class indices, "L" or "P"), directly or
under ``train/`` and ``val/``, class names from ``classes.txt`` or ``labels.txt``; the PASCAL VOC layout
(``JPEGImages/``, ``SegmentationClass/``, ``ImageSets/Segmentation/{train,val}.txt``); torchvision's
``VOCSegmentation`` and ``OxfordIIITPet`` under ``data_root``. Pairs are checked when the source is built (a
missing mask, a size mismatch, an RGB mask or a class outside the list is one error naming the file), so a run
never starts on bad data; unreadable images are errors too (a mask without its image cannot be trained on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from mobilenetv2.data.digit_scenes import DIGIT_CLASSES, SCENE_CANVAS, DigitScenes, digit_items
from mobilenetv2.data.images import IMAGE_EXTENSIONS, is_image_file, load_image
from mobilenetv2.data.splits import seeded_split
from mobilenetv2.data.transforms import sample_seed
from mobilenetv2.errors import UserError

IGNORE = 255
PASCAL_CLASSES = ["background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
                  "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")
TORCHVISION = ("VOCSegmentation", "OxfordIIITPet")
LAYOUTS = "images/ + masks/ (optionally under train/ and val/), a PASCAL VOC root (JPEGImages/, SegmentationClass/, " \
          "ImageSets/Segmentation/), 'digits', or VOCSegmentation / OxfordIIITPet with --data-root"


# -- datasets ----------------------------------------------------------------------------------------------------------
class SegmentationImages(Dataset):
    """(image, mask) pairs: ``reader(item)`` gives a PIL image and an HxW uint8 mask; ``transform`` makes tensors."""

    def __init__(self, items: list[Any], reader: Callable[[Any], tuple[Image.Image, np.ndarray]]) -> None:
        self.items, self.reader = list(items), reader
        self.transform: Callable | None = None
        self.seed, self.epoch = 0, 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        image, mask = self.reader(self.items[index])
        if self.transform is None:
            return image, mask
        with torch.random.fork_rng(devices=[]):  # augmentation depends only on (seed, epoch, image)
            torch.default_generator.manual_seed(sample_seed(self.seed, self.epoch, index))
            return self.transform(image, mask)

    def subset(self, indices: list[int]) -> SegmentationImages:
        return SegmentationImages([self.items[i] for i in indices], self.reader)


@dataclass
class SegmentationSource:
    splits: dict[str, SegmentationImages]
    class_names: list[str]
    in_memory: bool = False


def read_pair(pair: tuple[Path, Path]) -> tuple[Image.Image, np.ndarray]:
    return load_image(pair[0]), np.asarray(Image.open(pair[1]))


def check_pairs(pairs: list[tuple[Path, Path]], class_names: list[str] | None) -> list[str]:
    """Every mask single-channel, of its image's size, with values in the classes or 255; the class names."""
    largest = 0
    for image_path, mask_path in pairs:
        with Image.open(mask_path) as mask_image:
            if mask_image.mode not in ("L", "P", "I;16", "I"):
                raise UserError(f"{mask_path}: a mask must be single-channel class indices (PNG mode L or P), "
                                f"not {mask_image.mode}")
            mask = np.asarray(mask_image)
        try:
            with Image.open(image_path) as image:
                size = image.size
        except Exception as exc:  # noqa: BLE001 - PIL raises many types for a broken file
            raise UserError(f"{image_path}: not a readable image (its mask is {mask_path})") from exc
        if size != (mask.shape[1], mask.shape[0]):
            raise UserError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {image_path.name} is "
                            f"{size[0]}x{size[1]}")
        values = np.unique(mask)
        values = values[values != IGNORE]
        if class_names is not None and len(values) and values.max() >= len(class_names):
            bad = [int(v) for v in values if v >= len(class_names)]
            raise UserError(f"{mask_path}: mask values {bad[:5]} are outside the {len(class_names)} classes "
                            f"(0-{len(class_names) - 1}; 255 = ignore)")
        largest = max(largest, int(values.max()) if len(values) else 0)
    return class_names if class_names is not None else [str(i) for i in range(largest + 1)]


def pair_folder(folder: Path) -> list[tuple[Path, Path]]:
    """(image, mask) of folder/images/* and folder/masks/<stem>.png; an image without a mask is an error."""
    masks = {p.stem: p for p in (folder / "masks").iterdir() if p.suffix.lower() in MASK_SUFFIXES}
    pairs = []
    for image in sorted(p for p in (folder / "images").iterdir() if is_image_file(p)):
        if image.stem not in masks:
            raise UserError(f"{image}: no mask (expected {folder / 'masks' / (image.stem + '.png')})")
        pairs.append((image, masks[image.stem]))
    if not pairs:
        raise UserError(f"{folder / 'images'}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    return pairs


def read_class_names(root: Path) -> list[str] | None:
    for name in ("classes.txt", "labels.txt"):
        if (root / name).is_file():
            return [line.strip() for line in (root / name).read_text().splitlines() if line.strip()]
    return None


def from_pairs(split_pairs: dict[str, list[tuple[Path, Path]]], names: list[str] | None, val_split: float,
               seed: int) -> SegmentationSource:
    everything = [p for pairs in split_pairs.values() for p in pairs]
    names = check_pairs(everything, names)
    if "val" in split_pairs:
        splits = {s: SegmentationImages(p, read_pair) for s, p in split_pairs.items()}
    else:
        train, val = seeded_split(len(everything), val_split, seed)
        splits = {"train": SegmentationImages([everything[i] for i in train], read_pair),
                  "val": SegmentationImages([everything[i] for i in val], read_pair)}
    splits["all"] = SegmentationImages(everything, read_pair)
    return SegmentationSource(splits, names)


def folder_source(root: Path, val_split: float, seed: int) -> SegmentationSource:
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return from_pairs({"all": pair_folder(root)}, read_class_names(root), val_split, seed)
    return from_pairs({s: pair_folder(root / s) for s in ("train", "val")}, read_class_names(root), val_split, seed)


def find_voc_root(root: Path) -> Path | None:
    """The folder holding JPEGImages/, SegmentationClass/ and ImageSets/Segmentation/ (root or below it)."""
    for candidate in [root, *sorted(root.glob("*")), *sorted(root.glob("*/*"))]:
        if all((candidate / p).is_dir() for p in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation")):
            return candidate
    return None


def voc_source(root: Path) -> SegmentationSource:
    split_pairs = {}
    for split in ("train", "val"):
        listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not listing.is_file():
            raise UserError(f"{listing}: missing (the PASCAL VOC layout lists its {split} images there)")
        pairs = []
        for stem in listing.read_text().split():
            image, mask = root / "JPEGImages" / f"{stem}.jpg", root / "SegmentationClass" / f"{stem}.png"
            if not image.is_file() or not mask.is_file():
                raise UserError(f"{listing}: {stem} has no {'image' if not image.is_file() else 'mask'} "
                                f"({image if not image.is_file() else mask})")
            pairs.append((image, mask))
        split_pairs[split] = pairs
    return from_pairs(split_pairs, read_class_names(root) or PASCAL_CLASSES, 0.2, 0)


class TorchvisionPairs:
    """Reads (image, mask) from torchvision datasets; Oxford pet trimaps become background 0, pet 1, border 255."""

    def __init__(self, sets: dict[str, Any], trimap: bool) -> None:
        self.sets, self.trimap = sets, trimap

    def __call__(self, item: tuple[str, int]) -> tuple[Image.Image, np.ndarray]:
        image, mask = self.sets[item[0]][item[1]]
        mask = np.asarray(mask, dtype=np.uint8)
        if self.trimap:
            mask = np.select([mask == 1, mask == 2], [1, 0], IGNORE).astype(np.uint8)
        return image.convert("RGB"), mask


def torchvision_source(name: str, data_root: str | None, download: bool) -> SegmentationSource:
    import torchvision.datasets as tvd

    root = Path(data_root or Path.home() / ".cache" / "mobilenetv2" / "datasets").expanduser()
    splits = {"train": "train", "val": "val"} if name == "VOCSegmentation" else {"train": "trainval", "val": "test"}
    try:
        if name == "VOCSegmentation":
            sets = {s: tvd.VOCSegmentation(root, image_set=v, download=download) for s, v in splits.items()}
        else:
            sets = {s: tvd.OxfordIIITPet(root, split=v, target_types="segmentation", download=download)
                    for s, v in splits.items()}
    except Exception as exc:  # noqa: BLE001 - torchvision raises RuntimeError when absent, URLError offline
        how = "the download failed" if download else "downloads are off (--download needs a network)"
        raise UserError(f"{name}: dataset not found in {root} and {how} ({str(exc).splitlines()[0][:80]}); "
                        f"point --data-root at a copy") from exc
    reader = TorchvisionPairs(sets, trimap=name == "OxfordIIITPet")
    parts = {s: SegmentationImages([(s, i) for i in range(len(ds))], reader) for s, ds in sets.items()}
    parts["all"] = SegmentationImages(parts["train"].items + parts["val"].items, reader)
    return SegmentationSource(parts, PASCAL_CLASSES if name == "VOCSegmentation" else ["background", "pet"])


# -- the built-in digit scenes -----------------------------------------------------------------------------------------
def digits_source(seed: int) -> SegmentationSource:
    reader = DigitScenes(seed)
    return SegmentationSource({s: SegmentationImages(items, reader) for s, items in digit_items().items()},
                              list(DIGIT_CLASSES), in_memory=True)


# -- resolving a data string -------------------------------------------------------------------------------------------
def resolve_segmentation_source(data: str, data_root: str | None = None, val_split: float = 0.2, seed: int = 0,
                                download: bool = False) -> SegmentationSource:
    """The source that ``data`` names (see the module docstring); one error line when it is none of them."""
    if data == "digits":
        return digits_source(seed)
    if data in TORCHVISION:
        return torchvision_source(data, data_root, download)
    root = Path(data).expanduser()
    if not root.is_dir():
        raise UserError(f"segmentation data {data!r} not found; expected {LAYOUTS}")
    if (root / "images").is_dir() and (root / "masks").is_dir() or (root / "train" / "images").is_dir():
        return folder_source(root, val_split, seed)
    voc = find_voc_root(root)
    if voc is not None:
        return voc_source(voc)
    raise UserError(f"{root}: not a segmentation dataset; expected {LAYOUTS}")


def segmentation_default_split(data: str, data_root: str | None = None) -> str:
    """"val" when the data has its own validation images, else "all"."""
    root = Path(data).expanduser()
    if data == "digits" or data in TORCHVISION or (root / "val" / "images").is_dir():
        return "val"
    return "val" if root.is_dir() and find_voc_root(root) is not None else "all"


def typical_side(data: str, data_root: str | None = None, sample: int = 16) -> int | None:
    """The median long side of a few of the images (None when they are not files to look at)."""
    if data == "digits":
        return SCENE_CANVAS
    if data in TORCHVISION or not Path(data).is_dir():
        return None
    root = Path(data)
    files = sorted(p for p in root.rglob("*") if is_image_file(p) and "masks" not in p.parts
                   and "SegmentationClass" not in p.parts)[:sample]
    sides = []
    for path in files:
        try:
            with Image.open(path) as image:
                sides.append(max(image.size))
        except Exception:  # noqa: BLE001
            continue
    return int(np.median(sides)) if sides else None
