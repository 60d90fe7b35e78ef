"""Calibration images for int8 quantization: labelled data or plain photos, preprocessed as the model expects."""

from __future__ import annotations

import logging

import numpy as np

from mobilenetv2.errors import UserError

log = logging.getLogger("mobilenetv2.export")
CALIB_BATCH_PIXELS = 16 * 224 * 224  # calibration batches of 16 images at 224 px, fewer at larger sizes: onnxruntime's
# calibration session holds every activation of a batch (about 0.7 GB per 513x513 image for DeepLabv3 1.0)


def calibration_batch_size(input_size: int) -> int:
    """16 images a batch at 224 px and below, fewer above (3 at 513): a batch's activations bound the memory."""
    return max(1, min(16, CALIB_BATCH_PIXELS // (input_size * input_size)))


def is_labelled(calib: list[str]) -> bool:
    """True for one labelled data spec (a folder of class sub-folders or with train/ and val/, a CSV, ``digits``, a
    dataset name); False for photos: image files, globs, or a folder with images directly inside."""
    import glob
    from pathlib import Path

    from mobilenetv2.data.images import is_image_file

    if len(calib) != 1 or glob.has_magic(calib[0]):
        return False
    path = Path(calib[0])
    if path.is_file():
        return path.suffix.lower() == ".csv"
    if path.is_dir():
        entries = list(path.iterdir())
        return any(e.is_dir() for e in entries) and not any(e.is_file() and is_image_file(e) for e in entries)
    return True  # digits or a dataset name; resolve_source names what is wrong otherwise


def split_of(data: str | None, wanted: str) -> str:
    """``wanted`` for data with train/ and val/ folders (or a CSV/dataset name); every image of a plain class folder."""
    from pathlib import Path

    return "all" if data and Path(data).is_dir() and not (Path(data) / wanted).is_dir() else wanted


def calibration(calib: list[str], labelled: bool, val: str | None, pre, num_calib: int) -> list[np.ndarray]:
    """The calibration batches: from labelled data's training split, or from photos."""
    batch_size = calibration_batch_size(pre.input_size)
    if not labelled:
        return image_batches(calib, pre, num_calib, batch_size=batch_size)
    # Without --val, calibration draws from the training split only, so the two never share an image.
    return calibration_batches(calib[0], pre, num_calib, batch_size=batch_size,
                               split="train" if val is None else split_of(calib[0], "train"))


def calibration_batches(data: str, preprocessing, num_images: int = 128, batch_size: int = 16,
                        seed: int = 0, split: str = "train") -> list[np.ndarray]:
    """``num_images`` images drawn at random (seeded) from ``split`` of ``data``, preprocessed for eval."""
    import torch
    from torch.utils.data import DataLoader, Subset

    from mobilenetv2.data import build_eval_loader

    if num_images < 1:
        raise UserError(f"--num-calib must be >= 1, got {num_images}")
    loader, _ = build_eval_loader(data, preprocessing, split=split, batch_size=batch_size, workers=0, seed=seed)
    dataset = loader.dataset
    if len(dataset) == 0:
        raise UserError(f"--calib {data}: no usable images for calibration")
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:num_images].tolist()
    subset = DataLoader(Subset(dataset, order), batch_size=batch_size, collate_fn=loader.collate_fn)
    batches = [images.numpy() for images, _ in subset if len(images)]
    if not batches:
        raise UserError(f"--calib {data}: none of the calibration images could be read")
    return batches


def image_batches(inputs: list[str], preprocessing, num_images: int = 128, batch_size: int = 16,
                  seed: int = 0) -> list[np.ndarray]:
    """``num_images`` unlabelled photos (files, folders or globs) drawn at random (seeded), preprocessed for eval.

    Unreadable files are skipped with one warning line; none readable is an error.
    """
    import torch

    from mobilenetv2.data.images import BadImageError, find_images, load_image
    from mobilenetv2.data.preprocessing import eval_transform

    if num_images < 1:
        raise UserError(f"--num-calib must be >= 1, got {num_images}")
    paths = find_images(list(inputs))
    if not paths:
        raise UserError(f"--calib {' '.join(inputs)}: no images found (give photos, a folder of photos, or a glob)")
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed))[:num_images].tolist()
    transform, images, skipped = eval_transform(preprocessing), [], []
    for i in order:
        try:
            images.append(transform(load_image(paths[i])))
        except BadImageError:
            skipped.append(paths[i].name)
    if skipped:
        log.warning("warning: --calib: skipped %d unreadable image file(s): %s", len(skipped), ", ".join(skipped[:3]))
    if not images:
        raise UserError(f"--calib {' '.join(inputs)}: none of the calibration images could be read")
    stacked = torch.stack(images).numpy()
    return [stacked[i:i + batch_size] for i in range(0, len(stacked), batch_size)]
