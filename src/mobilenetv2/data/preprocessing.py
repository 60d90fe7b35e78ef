"""The evaluation transforms a ``Preprocessing`` implies (torchvision transforms v2)."""

from __future__ import annotations

from mobilenetv2.spec import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, check_crop_pct, check_input_size

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Preprocessing", "check_crop_pct", "check_input_size", "eval_transform",
           "normalize_transform", "pixel_transform"]


def pixel_transform(pre: Preprocessing, channels: int = 3):
    """torchvision transforms v2: PIL/tensor image -> image tensor of ``input_size``, not yet normalised (uint8 from
    PIL); a server runs this per request and ``normalize_transform`` once per batch. ``channels`` 1 (a grayscale
    model): colour images become grayscale first, as PIL's "L" (ITU-R 601 luma)."""
    from torchvision.transforms import InterpolationMode, v2

    mode = InterpolationMode(pre.interpolation)
    if pre.resize_mode == "crop":
        resize = [v2.Resize(pre.resize_size, interpolation=mode, antialias=True), v2.CenterCrop(pre.input_size)]
    else:
        resize = [v2.Resize((pre.input_size, pre.input_size), interpolation=mode, antialias=True)]
    gray = [v2.Grayscale(num_output_channels=1)] if channels == 1 else []
    return v2.Compose([v2.ToImage(), *gray, *resize])


def normalize_transform(pre: Preprocessing):
    """Image tensors [..., C, H, W] (uint8, or float in [0, 1]) -> normalised float32."""
    import torch
    from torchvision.transforms import v2

    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(pre.mean), list(pre.std))])


def eval_transform(pre: Preprocessing):
    """torchvision transforms v2 pipeline: PIL/tensor image -> normalised float tensor of ``input_size``."""
    from torchvision.transforms import v2

    return v2.Compose([*pixel_transform(pre).transforms, *normalize_transform(pre).transforms])
