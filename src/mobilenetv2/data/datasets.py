"""Data sources (built-in digits, image folders, CSV files, torchvision datasets) as labelled image datasets."""

from __future__ import annotations

import csv
import inspect
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from mobilenetv2.data.folders import VAL_FOLDER_NAMES, drop_broken, drop_empty_classes, folder_splits
from mobilenetv2.data.images import (
    DECODE_ERRORS,
    IMAGE_EXTENSIONS,
    BadImageError,
    bomb_error,
    check_pixels,
    is_image_file,
    load_image,
    to_rgb,
    upright,
)
from mobilenetv2.data.splits import stratified_split
from mobilenetv2.data.transforms import sample_seed
from mobilenetv2.errors import UserError

log = logging.getLogger("mobilenetv2.data")

DIGITS_SIZE = 32  # the 8x8 digits are upscaled to this many pixels once, then resized by the transforms
# torchvision datasets with a `split` argument: (train split, validation split); others use ("train", "test").
TORCHVISION_SPLITS = {
    "oxfordiiitpet": ("trainval", "test"), "fgvcaircraft": ("trainval", "test"), "places365": ("train-standard", "val"),
    "flowers102": ("train", "val"), "dtd": ("train", "val"), "country211": ("train", "valid"), "pcam": ("train", "val"),
    "imagenette": ("train", "val"),
}
NOT_DATASETS = {"ImageFolder", "DatasetFolder", "VisionDataset", "FakeData"}  # no fixed data to open by name
LABEL_ATTRIBUTES = ("targets", "_labels", "labels", "y")
CSV_COLUMNS = {"path": ("path", "file", "filename", "image"), "label": ("label", "class", "target"), "split": ("split",)}


class LabeledImages(Dataset):
    """Labelled images read by ``reader(item)``; the transform's randomness depends only on (seed, epoch, index).

    A file that fails to decode at run time yields None (the loaders' collate drops it) instead of a crash.
    """

    def __init__(self, items: Sequence[Any], labels: Sequence[int], reader: Callable[[Any], Any],
                 transform: Callable | None = None, seed: int = 0):
        self.items, self.labels, self.reader = list(items), [int(y) for y in labels], reader
        self.transform, self.seed, self.epoch = transform, seed, 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        try:
            image = self.reader(self.items[index])
        except BadImageError as exc:
            log.warning("warning: skipping an image that became unreadable: %s", exc)
            return None
        if self.transform is not None:
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(sample_seed(self.seed, self.epoch, index))
                image = self.transform(image)
        return image, self.labels[index]

    def subset(self, indices: Sequence[int]) -> LabeledImages:
        return LabeledImages([self.items[i] for i in indices], [self.labels[i] for i in indices], self.reader,
                             self.transform, self.seed)


@dataclass
class Source:
    """A resolved data source: its splits (LabeledImages without transforms), class names and skipped files."""

    splits: dict[str, LabeledImages]          # "train", "val", "all"
    class_names: list[str]
    skipped: list[str] = field(default_factory=list)
    in_memory: bool = False                   # nothing to decode: loaders default to no worker processes


# ----------------------------------------------------------------------------------------------- built-in digits

class DigitsReader:
    """Index -> RGB uint8 tensor of a scikit-learn digit, dark ink on white, upscaled to DIGITS_SIZE."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __call__(self, index: int) -> torch.Tensor:
        return self.images[index]


def load_digits_images() -> tuple[torch.Tensor, np.ndarray]:
    """scikit-learn's 1797 8x8 digits (bundled, offline) as an (N, 3, 32, 32) uint8 tensor, and their labels."""
    from sklearn.datasets import load_digits
    from torchvision.transforms.v2 import functional as F

    digits = load_digits()
    ink = torch.from_numpy(digits.images).float().div(16.0).unsqueeze(1)  # (N, 1, 8, 8) in [0, 1]
    big = F.resize(ink, [DIGITS_SIZE, DIGITS_SIZE], interpolation=F.InterpolationMode.BICUBIC, antialias=False)
    paper = (1.0 - big.clamp(0, 1)).mul(255).round().to(torch.uint8)
    return paper.expand(-1, 3, -1, -1).contiguous(), digits.target


def digits_source(val_split: float, seed: int) -> Source:
    images, labels = load_digits_images()
    everything = LabeledImages(range(len(labels)), labels, DigitsReader(images))
    return split_source(everything, [str(d) for d in range(10)], val_split, seed, in_memory=True)


# ----------------------------------------------------------------------------------------------- files on disk

def split_source(everything: LabeledImages, class_names: list[str], val_split: float, seed: int, **kw: Any) -> Source:
    train, val = stratified_split(everything.labels, val_split, seed)
    return Source({"train": everything.subset(train), "val": everything.subset(val), "all": everything}, class_names, **kw)


def files_dataset(samples: list[tuple[Path, int]]) -> LabeledImages:
    return LabeledImages([str(p) for p, _ in samples], [y for _, y in samples], load_image)


def folder_source(root: Path, val_split: float, seed: int) -> Source:
    """A folder of class sub-folders, or one with train/ and val/ (or valid/, validation/, test/) sub-folders."""
    splits, class_names, skipped = folder_splits(root, val_split, seed)
    return Source({k: files_dataset(v) for k, v in splits.items()}, class_names, skipped)


def read_csv_samples(path: Path, data_root: str | None) -> tuple[list[tuple[Path, str, str | None]], bool]:
    """Rows of ``path,label[,split]``, with an optional header naming the columns; paths relative to data_root or the CSV."""
    base = Path(data_root).expanduser() if data_root else path.parent
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [[c.strip() for c in row] for row in csv.reader(f) if any(c.strip() for c in row)]
    if not rows:
        raise UserError(f"{path}: empty CSV (expected rows of path,label)")
    cols: dict[str, int | None] = {"path": 0, "label": 1, "split": 2 if len(rows[0]) > 2 else None}
    first_line = 1
    if not is_image_file(rows[0][0]):  # a header row
        header = [c.lower() for c in rows[0]]
        cols = {name: next((header.index(a) for a in aliases if a in header), None) for name, aliases in CSV_COLUMNS.items()}
        if cols["path"] is None or cols["label"] is None:
            raise UserError(f"{path}: the header must name the columns path and label (and optionally split), got {rows[0]}")
        rows, first_line = rows[1:], 2
    out = []
    width = max(c for c in cols.values() if c is not None)
    for line, row in enumerate(rows, start=first_line):
        if len(row) <= width:
            raise UserError(f"{path}, line {line}: expected the columns path,label, got {row}")
        split = row[cols["split"]].lower() if cols["split"] is not None else None
        out.append((base / row[cols["path"]], row[cols["label"]], split))
    return out, cols["split"] is not None


def csv_source(path: Path, data_root: str | None, val_split: float, seed: int) -> Source:
    rows, has_split = read_csv_samples(path, data_root)
    labels = {label for _, label, _ in rows}
    numeric = all(label.lstrip("-").isdigit() for label in labels)
    class_names = sorted(labels, key=int) if numeric else sorted(labels)  # 2 before 10 for numeric labels
    index = {name: i for i, name in enumerate(class_names)}
    samples = [(p, index[label]) for p, label, _ in rows]
    skipped: list[str] = []
    if has_split:
        bad = sorted({s for _, _, s in rows} - {"train", *VAL_FOLDER_NAMES})
        if bad:
            raise UserError(f"{path}: the split column must be train or val, got {', '.join(bad)}")
        train = [s for s, (_, _, split) in zip(samples, rows) if split == "train"]
        val = [s for s, (_, _, split) in zip(samples, rows) if split != "train"]
    else:
        train_idx, val_idx = stratified_split([y for _, y in samples], val_split, seed)
        train, val = [samples[i] for i in train_idx], [samples[i] for i in val_idx]
    splits = {"train": drop_broken(train, skipped), "val": drop_broken(val, skipped)}
    class_names = drop_empty_classes(splits, class_names, str(path))
    splits["all"] = sorted(splits["train"] + splits["val"])
    return Source({k: files_dataset(v) for k, v in splits.items()}, class_names, skipped)


# ----------------------------------------------------------------------------------------------- torchvision

class TorchvisionReader:
    """(split, index) -> RGB PIL image from torchvision dataset objects."""

    def __init__(self, datasets: dict[str, Any]):
        self.datasets = datasets

    def __call__(self, item: tuple[str, int]):
        split, index = item
        where = f"{type(self.datasets[split]).__name__} {split} image {index}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = self.datasets[split][index][0]
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise bomb_error(where, exc) from exc
        except DECODE_ERRORS as exc:
            raise BadImageError(f"{where}: not a readable image ({type(exc).__name__}: {exc})") from exc
        if isinstance(image, Image.Image):
            check_pixels(image, where)
            image = upright(image)
        return to_rgb(image)


def torchvision_class(name: str):
    """The torchvision dataset class for a name such as "CIFAR10" (any case), or None."""
    import torchvision.datasets as tvd

    wanted = name.split(":", 1)[1] if name.lower().startswith("torchvision:") else name
    matches = [getattr(tvd, n) for n in tvd.__all__ if n.lower() == wanted.lower() and n not in NOT_DATASETS]
    return matches[0] if matches and inspect.isclass(matches[0]) else None


def dataset_labels(ds: Any) -> list[int]:
    for attr in LABEL_ATTRIBUTES:
        labels = getattr(ds, attr, None)
        if labels is not None and len(labels) == len(ds):
            return [int(y) for y in labels]
    return [int(ds[i][1]) for i in range(len(ds))]  # e.g. FakeData: labels only come with the images


def open_torchvision(cls: type, root: Path, split: str | None, download: bool) -> Any:
    params = inspect.signature(cls.__init__).parameters
    key = cls.__name__.lower()
    kwargs: dict[str, Any] = {"download": download} if "download" in params else {}
    if split is not None and "train" in params:
        kwargs["train"] = split == "train"
    elif split is not None and "split" in params:
        kwargs["split"] = TORCHVISION_SPLITS.get(key, ("train", "test"))[0 if split == "train" else 1]
    try:
        return cls(root, **kwargs)
    except Exception as exc:  # torchvision raises RuntimeError "not found", download errors are URLError/OSError
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        how = f"the download failed ({detail})" if download else "it cannot be downloaded without --download (and a network)"
        raise UserError(
            f"{cls.__name__}: dataset not found at {root} and {how}; point --data-root at a copy, "
            "or pass an image folder instead: --data path/to/folder (one sub-folder per class)"
        ) from exc


def torchvision_source(name: str, data_root: str | None, val_split: float, seed: int, download: bool) -> Source:
    cls = torchvision_class(name)
    root = Path(data_root or Path.home() / ".cache" / "mobilenetv2" / "datasets").expanduser()
    params = inspect.signature(cls.__init__).parameters
    if "train" in params or "split" in params:
        sets = {s: open_torchvision(cls, root, s, download) for s in ("train", "val")}
    else:
        sets = {"all": open_torchvision(cls, root, None, download)}
    labels = {s: dataset_labels(ds) for s, ds in sets.items()}
    first = next(iter(sets.values()))
    n_classes = max(max(v, default=0) for v in labels.values()) + 1
    class_names = [str(c) for c in getattr(first, "classes", None) or range(n_classes)]
    reader = TorchvisionReader(sets)
    per_split = {s: LabeledImages([(s, i) for i in range(len(ds))], labels[s], reader) for s, ds in sets.items()}
    if "all" in per_split:
        return split_source(per_split["all"], class_names, val_split, seed)
    train, val = per_split["train"], per_split["val"]
    everything = LabeledImages(train.items + val.items, train.labels + val.labels, reader)
    return Source({"train": train, "val": val, "all": everything}, class_names)


# ----------------------------------------------------------------------------------------------- dispatch

def resolve_source(data: str, data_root: str | None = None, val_split: float = 0.2, seed: int = 0,
                   download: bool = False) -> Source:
    """Turn a data spec ("digits", a folder, a CSV, a torchvision dataset name) into a Source."""
    if not 0 < val_split < 1:
        raise UserError(f"val_split must be in (0, 1), got {val_split}")
    path = Path(data).expanduser()
    if data == "digits":
        source = digits_source(val_split, seed)
    elif path.is_dir():
        source = folder_source(path, val_split, seed)
    elif path.is_file() and path.suffix.lower() == ".csv":
        source = csv_source(path, data_root, val_split, seed)
    elif torchvision_class(data) is not None:
        source = torchvision_source(data, data_root, val_split, seed, download)
    elif path.is_file():
        raise UserError(f"{data}: not a folder or a .csv file (data must be digits, a folder of class sub-folders, "
                        "a CSV of path,label, or a torchvision dataset name such as CIFAR10)")
    else:
        raise UserError(f"{data}: no such folder or CSV file, and not a torchvision dataset name (data must be digits, "
                        "a folder of class sub-folders, a CSV of path,label, or e.g. CIFAR10, Flowers102)")
    report_source(source, data)
    return source


def report_source(source: Source, data: str) -> None:
    """One warning line for skipped files and one for classes missing from validation; an error if nothing is usable."""
    if source.skipped:
        shown = ", ".join(source.skipped[:3]) + (f" (+{len(source.skipped) - 3} more)" if len(source.skipped) > 3 else "")
        log.warning("warning: %s: skipped %d unreadable image file(s): %s", data, len(source.skipped), shown)
    train, val = source.splits["train"], source.splits["val"]
    if len(train) == 0:
        raise UserError(f"{data}: no usable training images (found {len(source.skipped)} unreadable file(s); "
                        f"supported: {', '.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)})")
    if len(source.class_names) < 2:
        raise UserError(f"{data}: need at least 2 classes with images, found {len(source.class_names)}: "
                        f"{', '.join(source.class_names)}")
    missing = sorted(set(range(len(source.class_names))) - set(val.labels))
    if missing:
        log.warning("warning: %s: %d class(es) have no validation images: %s", data, len(missing),
                    ", ".join(source.class_names[c] for c in missing[:10]))


def default_eval_split(data: str, data_root: str | None) -> str:
    """"val" when the data brings its own validation images (train/ + val/ folders, a CSV split column, a
    torchvision dataset's test split); "all" for a plain folder of class sub-folders, never a silent random share."""
    root = Path(data)
    if root.is_dir():
        return "val" if (root / "train").is_dir() and any((root / n).is_dir() for n in VAL_FOLDER_NAMES) else "all"
    if root.suffix.lower() == ".csv" and root.is_file():
        return "val" if read_csv_samples(root, data_root)[1] else "all"
    return "val" if data == "digits" or torchvision_class(data) is not None else "all"
