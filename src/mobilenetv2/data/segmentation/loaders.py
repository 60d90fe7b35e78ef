"""Segmentation loaders: training (fixed-size crops, masks [N, S, S]) and evaluation (images at the input size, masks
at full resolution, a list)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

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
from mobilenetv2.data.segmentation.sources import resolve_segmentation_source
from mobilenetv2.data.segmentation.transforms import JointEval, JointTrain
from mobilenetv2.spec import Preprocessing


def collate_train(batch: list) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])


def collate_eval(batch: list) -> tuple[torch.Tensor, list[torch.Tensor]]:
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


def build_segmentation_data(cfg: DataConfig) -> Data:
    """Training loader (fixed-size crops, masks [N, S, S]) and validation loader (full-resolution masks, a list)."""
    check_config(cfg)
    refuse_classification_options(cfg, "segmentation trains on masks as they are")
    pre = cfg.preprocessing()
    source = resolve_segmentation_source(cfg.data, cfg.data_root, cfg.val_split, cfg.seed, cfg.download)
    train, val = train_val_splits(cfg, source.splits)
    transforms = JointTrain(pre, cfg.augment, flip=cfg.data != "digits"), JointEval(pre)
    loaders = train_val_loaders(cfg, train, val, transforms, (collate_train, collate_eval), source.in_memory)
    return Data(*loaders, source.class_names, pre)


def build_segmentation_eval_loader(data: str, preprocessing: Preprocessing, split: str = "val", batch_size: int = 8,
                                   workers: int | None = None, val_split: float = 0.2, seed: int = 0,
                                   data_root: str | None = None) -> tuple[DataLoader, list[str]]:
    """A deterministic loader over one split, images at the input size and masks at full resolution."""
    check_split(split)
    source = resolve_segmentation_source(data, data_root, val_split, seed)
    dataset = source.splits[split]
    dataset.transform = JointEval(preprocessing)
    loader = DataLoader(dataset, batch_size=int(batch_size), shuffle=False, collate_fn=collate_eval,
                        num_workers=default_workers(source.in_memory) if workers is None else int(workers))
    return loader, source.class_names
