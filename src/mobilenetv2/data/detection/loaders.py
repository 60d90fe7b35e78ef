"""Detection loaders: training (augmented windows, targets in S x S pixels) and evaluation (windows with their image's
full ground truth); batches are (images [N, 3, S, S], BoxTargets)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from mobilenetv2.data.detection.sources import resolve_detection_source
from mobilenetv2.data.detection.targets import collate_detection
from mobilenetv2.data.detection.transforms import DetectionEval, DetectionTrain
from mobilenetv2.data.loaders import (
    Data,
    DataConfig,
    check_config,
    check_split,
    default_workers,
    refuse_classification_options,
    train_val_loaders,
    train_val_splits,
)
from mobilenetv2.errors import UserError
from mobilenetv2.spec import Preprocessing


def squash_preprocessing(cfg: DataConfig) -> Preprocessing:
    norm = {k: tuple(v) for k, v in (("mean", cfg.mean), ("std", cfg.std)) if v is not None}
    return Preprocessing(input_size=cfg.input_size, crop_pct=1.0, interpolation=cfg.interpolation, resize_mode="squash",
                         **norm)


def build_detection_data(cfg: DataConfig) -> Data:
    """Training loader (augmented windows, targets in S x S pixels) and validation loader (windows with their image's
    full ground truth); batches are (images [N, 3, S, S], BoxTargets)."""
    check_config(cfg)
    refuse_classification_options(cfg, "detection trains on boxes as they are")
    pre = squash_preprocessing(cfg)
    source = resolve_detection_source(cfg.data, cfg.data_root, cfg.val_split, cfg.seed)
    train, val = train_val_splits(cfg, source.splits, "; detection needs at least 2 images")
    for dataset in (train, val):
        dataset.set_tiles(cfg.tile, cfg.tile_overlap)
    transforms = DetectionTrain(pre, cfg.augment, flip=cfg.data != "digits"), DetectionEval(pre)
    loaders = train_val_loaders(cfg, train, val, transforms, collate_detection, source.in_memory)
    return Data(*loaders, source.class_names, pre, skipped=source.skipped)


def build_detection_eval_loader(data: str, preprocessing: Preprocessing, split: str = "val", batch_size: int = 8,
                                workers: int | None = None, val_split: float = 0.2, seed: int = 0,
                                data_root: str | None = None, tile: int | None = None,
                                tile_overlap: float = 0.25) -> tuple[DataLoader, list[str]]:
    """A deterministic loader over one split's windows; each target holds its whole image's ground truth."""
    check_split(split)
    if int(batch_size) < 1 or (workers is not None and int(workers) < 0):
        raise UserError(f"batch_size must be >= 1 and workers >= 0, got {batch_size} and {workers}")
    source = resolve_detection_source(data, data_root, val_split, seed)
    dataset = source.splits[split]
    dataset.set_tiles(tile, tile_overlap)
    dataset.transform = DetectionEval(preprocessing)
    loader = DataLoader(dataset, batch_size=int(batch_size), shuffle=False, collate_fn=collate_detection,
                        num_workers=default_workers(source.in_memory) if workers is None else int(workers),
                        pin_memory=torch.cuda.is_available())
    return loader, source.class_names
