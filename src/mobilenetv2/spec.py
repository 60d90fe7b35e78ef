"""The shared vocabulary of every layer: ``Preprocessing`` (how an RGB image becomes a model's input, stored with every
checkpoint and export), the small validators that models, data and weights all use, and the one reader of a labels
file (class names). A leaf: imports only ``errors``."""

from __future__ import annotations

import numbers
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mobilenetv2.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MIN_INPUT_SIZE = 32  # the network downsamples 32x
# A 2048 px input is already 84x the pixels of 224 (about 2 GB of activations a training image for MobileNetV2 1.0);
# larger sizes are typing mistakes rather than plans.
MAX_INPUT_SIZE = 2048
# The centre crop keeps crop_pct of the resized short side; the resize is input_size / crop_pct. Models use 0.75-1.0
# (ImageNet's 0.875); below 0.25 the crop would keep under 1/16 of the image and the resize would grow 16x in pixels
# (0.002 once asked for a 112,000 px resize).
MIN_CROP_PCT = 0.25


def check_choice(name: str, value: str, allowed: list[str]) -> None:
    """``value`` is one of ``allowed``."""
    if value not in allowed:
        raise UserError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def check_input_size(input_size: object) -> None:
    """An integer input resolution in [MIN_INPUT_SIZE, MAX_INPUT_SIZE]."""
    if isinstance(input_size, bool) or not isinstance(input_size, int) or not (
            MIN_INPUT_SIZE <= input_size <= MAX_INPUT_SIZE):
        raise UserError(f"input_size must be an integer >= {MIN_INPUT_SIZE} and <= {MAX_INPUT_SIZE} "
                        f"(224 for photos, 32-64 for small images), got {input_size!r}")


def check_crop_pct(crop_pct: object) -> None:
    """A centre-crop ratio in [MIN_CROP_PCT, 1]."""
    if isinstance(crop_pct, bool) or not isinstance(crop_pct, (int, float)) or not MIN_CROP_PCT <= crop_pct <= 1:
        raise UserError(f"crop_pct must be a number in [{MIN_CROP_PCT}, 1] (the fraction of the resized image the "
                        f"centre crop keeps: 0.875 for ImageNet, 1.0 = no crop), got {crop_pct!r}")


@dataclass
class Preprocessing:
    """How an RGB image becomes the model's input.

    ``resize_mode`` "crop": resize the short side to ``input_size / crop_pct`` then centre-crop ``input_size``;
    "squash": resize the whole image to ``input_size`` x ``input_size`` (TFLite/Keras style).
    """

    input_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = field(default=IMAGENET_MEAN)
    std: tuple[float, ...] = field(default=IMAGENET_STD)
    resize_mode: str = "crop"
    tile: int | None = None  # detection: images larger than this are cut into tiles of this size (pixels)
    tile_overlap: float = 0.25  # detection: fraction of a tile shared with its neighbour

    def __post_init__(self) -> None:
        if isinstance(self.input_size, numbers.Integral) or getattr(self.input_size, "is_integer", lambda: False)():
            self.input_size = int(self.input_size)  # numpy integers from TFLite headers, 224.0 from old JSON
        check_input_size(self.input_size)
        check_crop_pct(self.crop_pct)
        self.crop_pct = float(self.crop_pct)
        check_choice("interpolation", self.interpolation, ["bilinear", "bicubic", "nearest"])
        check_choice("resize_mode", self.resize_mode, ["crop", "squash"])
        self.mean, self.std = tuple(self.mean), tuple(self.std)
        tile = self.tile
        if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or tile < MIN_INPUT_SIZE):
            raise UserError(f"tile must be an integer >= {MIN_INPUT_SIZE} (pixels) or None, got {self.tile!r}")
        if not 0 <= self.tile_overlap <= 0.9:
            raise UserError(f"tile_overlap must be in [0, 0.9], got {self.tile_overlap!r}")

    @property
    def resize_size(self) -> int:
        return int(round(self.input_size / self.crop_pct))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def read_labels(labels: str | os.PathLike[str] | list[str], count: int) -> list[str]:
    """Class names from a labels file, one a line, exactly ``count`` (a note may follow them after a blank line, as in
    the PASCAL file), or from a list; one line naming the file and the two counts otherwise."""
    if isinstance(labels, list):
        names = labels
    else:
        try:
            lines = [line.strip() for line in Path(labels).read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read labels file {labels}: {exc}") from exc
        while lines and not lines[0]:
            lines.pop(0)
        names = lines[:lines.index("")] if "" in lines else lines
    if len(names) != count:
        raise UserError(f"labels file {labels} has {len(names)} labels but the model has {count} classes; "
                        "give one label per class, one a line")
    return names
