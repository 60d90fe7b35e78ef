"""A quick look at a data source (image size, grayscale, count, classes) to choose defaults from the data."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mobilenetv2.data.images import BadImageError, list_image_folder, open_image

SAMPLE = 48  # images opened (headers; small ones decoded): ~50 ms for small files, ~0.3 s for large JPEGs
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


@dataclass
class DataSummary:
    """What the defaults depend on: the typical image size and colour, and how many images and classes."""

    count: int               # images listed for training and validation
    num_classes: int
    width: int               # median over the sample
    height: int
    grayscale: float         # fraction of the sample that is grayscale (by mode, or by identical RGB channels)
    sampled: int             # images of the sample that opened

    @property
    def side(self) -> int:
        """The typical long side in pixels."""
        return max(self.width, self.height)

    def __str__(self) -> str:
        colour = "grayscale" if self.grayscale >= 0.5 else "colour"
        return f"{self.count} {self.width}x{self.height} {colour} images in {self.num_classes} classes"


def describe_source(data: str, data_root: str | None = None, sample: int = SAMPLE) -> DataSummary | None:
    """Summarise an image folder or CSV from a sample of its files; None when there is nothing to look at here
    (the built-in digits, a torchvision dataset name, a source with no readable image)."""
    path = Path(data).expanduser()
    if data == "digits":
        return None
    if path.is_dir():
        files, num_classes = _folder_files(path)
    elif path.is_file() and path.suffix.lower() == ".csv":
        files, num_classes = _csv_files(path, data_root)
    else:
        return _describe_torchvision(data, data_root, sample)
    if not files:
        return None
    picks = np.unique(np.linspace(0, len(files) - 1, min(sample, len(files))).round().astype(int))
    looks = [look for look in map(_look, (files[i] for i in picks)) if look is not None]
    return _summary(len(files), num_classes, looks)


def _summary(count: int, num_classes: int, looks: list[tuple[int, int, bool]]) -> DataSummary | None:
    """Medians and the grayscale fraction of the sampled (width, height, grayscale) looks; None without any."""
    if not looks:
        return None
    return DataSummary(count=count, num_classes=num_classes,
                       width=int(statistics.median(w for w, _, _ in looks)),
                       height=int(statistics.median(h for _, h, _ in looks)),
                       grayscale=sum(g for _, _, g in looks) / len(looks), sampled=len(looks))


def _folder_files(root: Path) -> tuple[list[Path], int]:
    from mobilenetv2.data.datasets import VAL_FOLDER_NAMES
    from mobilenetv2.errors import UserError

    try:
        base = root / "train" if (root / "train").is_dir() else root
        samples, classes = list_image_folder(base)
        val_dir = next((root / n for n in VAL_FOLDER_NAMES if (root / n).is_dir()), None)
        if base != root and val_dir is not None:
            samples += list_image_folder(val_dir)[0]
    except UserError:
        return [], 0
    return [p for p, _ in samples], len(classes)


def _csv_files(path: Path, data_root: str | None) -> tuple[list[Path], int]:
    from mobilenetv2.data.datasets import read_csv_samples
    from mobilenetv2.errors import UserError

    try:
        rows, _ = read_csv_samples(path, data_root)
    except UserError:
        return [], 0
    return [p for p, _, _ in rows], len({label for _, label, _ in rows})


def _describe_torchvision(name: str, data_root: str | None, sample: int) -> DataSummary | None:
    """A torchvision dataset already on disk (nothing is downloaded here), from ``sample`` of its training images."""
    from mobilenetv2.data.datasets import open_torchvision, torchvision_class
    from mobilenetv2.errors import UserError

    cls = torchvision_class(name)
    if cls is None:
        return None
    root = Path(data_root or Path.home() / ".cache" / "mobilenetv2" / "datasets").expanduser()
    try:
        ds = open_torchvision(cls, root, "train", download=False)
        picks = np.unique(np.linspace(0, len(ds) - 1, min(sample, len(ds))).round().astype(int))
        images = [ds[int(i)][0] for i in picks]
    except (UserError, OSError, ValueError, TypeError, IndexError, RuntimeError):
        return None
    looks = [(im.width, im.height, im.mode in GRAY_MODES) for im in images if isinstance(im, Image.Image)]
    return _summary(len(ds), len(getattr(ds, "classes", None) or []), looks)


def _look(path: Path) -> tuple[int, int, bool] | None:
    """(width, height, grayscale) of one file, or None if it does not open."""
    try:
        with open_image(path) as img:
            width, height = img.size
            if img.mode in GRAY_MODES:
                return width, height, True
            if img.mode not in ("RGB", "RGBA", "P"):
                return width, height, False
            if img.format == "JPEG":
                img.draft("RGB", (64, 64))
            img.thumbnail((64, 64))
            rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
            return width, height, bool(np.abs(rgb - rgb[..., :1]).max() <= 2)
    except (BadImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
