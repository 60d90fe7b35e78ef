"""The preprocessing a model expects, stored with every checkpoint, and the evaluation transform it implies."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mobilenetv2.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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

    def __post_init__(self) -> None:
        from mobilenetv2.models.checks import check_choice, check_resolution

        check_resolution(int(self.input_size))
        check_choice("interpolation", self.interpolation, ["bilinear", "bicubic", "nearest"])
        check_choice("resize_mode", self.resize_mode, ["crop", "squash"])
        if not 0 < self.crop_pct <= 1:
            raise UserError(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        self.mean, self.std = tuple(self.mean), tuple(self.std)

    @property
    def resize_size(self) -> int:
        return int(round(self.input_size / self.crop_pct))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def eval_transform(pre: Preprocessing):
    """torchvision transforms v2 pipeline: PIL/tensor image -> normalised float tensor of ``input_size``."""
    import torch
    from torchvision.transforms import InterpolationMode, v2

    mode = InterpolationMode(pre.interpolation)
    if pre.resize_mode == "crop":
        resize = [v2.Resize(pre.resize_size, interpolation=mode, antialias=True), v2.CenterCrop(pre.input_size)]
    else:
        resize = [v2.Resize((pre.input_size, pre.input_size), interpolation=mode, antialias=True)]
    return v2.Compose([
        v2.ToImage(), *resize, v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(pre.mean), list(pre.std)),
    ])
