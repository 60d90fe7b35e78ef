"""Labelled image folders as (path, label) lists and their splits, without torch: what the datasets wrap, and what
``evaluate`` reads directly where torch is not installed."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mobilenetv2.data.images import list_image_folder, verify_image
from mobilenetv2.data.splits import stratified_split
from mobilenetv2.errors import UserError

log = logging.getLogger("mobilenetv2.data")

# Above this many files only headers are checked up front (a full check costs ~2-5 ms a photo); a file that then
# fails to decode is dropped from its batch with a warning.
FULL_CHECK_LIMIT = 20_000
VAL_FOLDER_NAMES = ("val", "valid", "validation", "test")


def scan_images(paths: Sequence[Path], workers: int | None = None) -> list[tuple[Path, str]]:
    """Check every file (header + fast decode; header only for very large datasets); (path, reason) of broken ones."""
    decode = len(paths) <= FULL_CHECK_LIMIT
    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1)) as pool:
        reasons = list(pool.map(lambda p: verify_image(p, decode), paths))
    return [(p, r) for p, r in zip(paths, reasons) if r is not None]


def drop_broken(samples: list[tuple[Path, int]], skipped: list[str]) -> list[tuple[Path, int]]:
    broken = {p for p, _ in scan_images([p for p, _ in samples])}
    skipped += [str(p) for p, _ in samples if p in broken]
    return [(p, y) for p, y in samples if p not in broken]


def drop_empty_classes(splits: dict[str, list[tuple[Path, int]]], class_names: list[str], where: str) -> list[str]:
    """Remove classes without any training image (renumbering labels in place); returns the kept class names."""
    counts = np.bincount([y for _, y in splits["train"]], minlength=len(class_names))
    empty = [name for name, n in zip(class_names, counts) if n == 0]
    if empty and len(empty) < len(class_names):  # all empty: the caller's one-line error says it
        log.warning("warning: %s: ignoring %d class(es) with no usable training images: %s", where, len(empty), ", ".join(empty))
    keep = [c for c, n in enumerate(counts) if n > 0]
    new_label = {old: new for new, old in enumerate(keep)}
    for name, samples in splits.items():
        splits[name] = [(p, new_label[y]) for p, y in samples if y in new_label]
    return [class_names[c] for c in keep]


def folder_splits(root: Path, val_split: float, seed: int) -> tuple[dict[str, list[tuple[Path, int]]], list[str], list[str]]:
    """A folder of class sub-folders, or one with train/ and val/ (or valid/, validation/, test/) sub-folders, as
    (path, label) lists of its "train", "val" and "all" splits, the class names and the broken files skipped."""
    skipped: list[str] = []
    val_dir = next((root / n for n in VAL_FOLDER_NAMES if (root / n).is_dir()), None)
    if (root / "train").is_dir() and val_dir is not None:
        train, class_names = list_image_folder(root / "train")
        val, val_names = list_image_folder(val_dir)
        unknown = sorted(set(val_names) - set(class_names))
        if unknown:
            raise UserError(f"{val_dir}: class folder(s) not in {root / 'train'}: {', '.join(unknown)}")
        index = {name: i for i, name in enumerate(class_names)}
        splits = {"train": drop_broken(train, skipped),
                  "val": drop_broken([(p, index[val_names[y]]) for p, y in val], skipped)}
    else:
        base = root / "train" if (root / "train").is_dir() else root
        samples, class_names = list_image_folder(base)
        # split first, so that a broken file does not move others between train and val
        train, val = stratified_split([y for _, y in samples], val_split, seed)
        splits = {"train": drop_broken([samples[i] for i in train], skipped),
                  "val": drop_broken([samples[i] for i in val], skipped)}
    class_names = drop_empty_classes(splits, class_names, str(root))
    splits["all"] = sorted(splits["train"] + splits["val"])
    return splits, class_names, skipped
