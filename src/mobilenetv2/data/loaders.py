"""DataConfig -> train/val DataLoaders with seeded, resumable epochs, class balancing and mixup/cutmix."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from torch.utils.data._utils.collate import default_collate

from mobilenetv2.data.datasets import LabeledImages, resolve_source
from mobilenetv2.data.preprocessing import eval_transform
from mobilenetv2.data.transforms import BatchMix, check_augment, sample_seed, train_transform
from mobilenetv2.errors import UserError
from mobilenetv2.spec import Preprocessing, check_crop_pct, check_input_size

# Recommended settings for the built-in digits (8x8 images upscaled): small input, no flips (a flipped 2 is not a 2),
# no centre crop (the digits touch the borders). The training helper merges these into its defaults for data="digits".
DIGITS_DEFAULTS: dict[str, Any] = {"input_size": 32, "augment": "light", "crop_pct": 1.0, "batch_size": 64}
BALANCE_CHOICES = ("none", "sampler", "weights")
EVAL_SPLITS = ("val", "train", "all")


@dataclass
class DataConfig:
    """Where the images come from and how they are prepared (every field is also a `train` option)."""

    data: str = "digits"
    data_root: str | None = None
    val_split: float = 0.2
    seed: int = 0
    input_size: int = 224
    augment: str = "paper"
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    batch_size: int = 64
    workers: int | None = None
    balance: str = "none"
    mixup: float = 0.0
    cutmix: float = 0.0
    download: bool = False
    mean: tuple[float, ...] | None = None  # normalisation; None: ImageNet's (a pretrained checkpoint brings its own)
    std: tuple[float, ...] | None = None
    train_on_val: bool = False  # train on train + val (a final model once the options are chosen)
    tile: int | None = None  # detection: cut images larger than this (pixels) into tiles of this size
    tile_overlap: float = 0.25  # detection: fraction of a tile shared with its neighbour

    def preprocessing(self) -> Preprocessing:
        norm = {k: tuple(v) for k, v in (("mean", self.mean), ("std", self.std)) if v is not None}
        return Preprocessing(input_size=self.input_size, crop_pct=self.crop_pct, interpolation=self.interpolation, **norm)


@dataclass
class Data:
    """Loaders and everything a training run stores with its checkpoints."""

    train_loader: DataLoader
    val_loader: DataLoader
    class_names: list[str]
    preprocessing: Preprocessing
    class_weights: torch.Tensor | None = None
    batch_transform: Callable | None = None
    skipped: list[str] = field(default_factory=list)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass over train_loader epoch ``epoch``: its order and augmentations depend only on (seed, epoch)."""
        self.train_loader.set_epoch(epoch)
        if isinstance(self.batch_transform, BatchMix):
            self.batch_transform.set_epoch(epoch)


class EpochLoader(DataLoader):
    """A DataLoader whose every pass is a numbered epoch, seeded from (seed, epoch); passes count up from set_epoch."""

    def __init__(self, dataset: Dataset, *, seed: int, **kwargs: Any):
        super().__init__(dataset, generator=torch.Generator(), **kwargs)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        self.dataset.epoch = self.epoch
        self.generator.manual_seed(sample_seed(self.seed, self.epoch, 0x5EED))  # sampler order and worker seeds
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(self.epoch)
        self.epoch += 1
        return super().__iter__()


class WeightedEpochSampler(Sampler[int]):
    """Class-balanced sampling with replacement, seeded per epoch; with ``num_replicas`` > 1 each rank takes a shard."""

    def __init__(self, weights: torch.Tensor, seed: int = 0, rank: int = 0, num_replicas: int = 1):
        self.weights, self.seed, self.rank, self.num_replicas, self.epoch = weights.double(), seed, rank, num_replicas, 0
        self.num_samples = -(-len(weights) // num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, 0xBA1))
        picks = torch.multinomial(self.weights, self.num_samples * self.num_replicas, replacement=True, generator=g)
        return iter(picks[self.rank::self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples


class ShardSampler(Sampler[int]):
    """Rank ``rank`` of ``num_replicas`` takes every num_replicas-th index, no padding: summed metrics stay exact."""

    def __init__(self, length: int, rank: int, num_replicas: int):
        self.indices = list(range(rank, length, num_replicas))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class DropNoneCollate:
    """Batch the samples that decoded; files that broke after the up-front scan come back as None and are dropped."""

    def __init__(self, input_size: int):
        self.input_size = input_size

    def __call__(self, batch: list) -> tuple[torch.Tensor, torch.Tensor]:
        batch = [b for b in batch if b is not None]
        if not batch:
            return torch.empty(0, 3, self.input_size, self.input_size), torch.empty(0, dtype=torch.int64)
        images, labels = default_collate(batch)
        return images, labels.long()


def default_workers(in_memory: bool) -> int:
    return 0 if in_memory else min(4, os.cpu_count() or 1)


def check_config(cfg: DataConfig) -> None:
    check_input_size(cfg.input_size)
    check_crop_pct(cfg.crop_pct)
    check_augment(cfg.augment)
    if cfg.balance not in BALANCE_CHOICES:
        raise UserError(f"balance must be one of {', '.join(BALANCE_CHOICES)}, got {cfg.balance!r}")
    if int(cfg.batch_size) < 1:
        raise UserError(f"batch_size must be >= 1, got {cfg.batch_size}")
    if cfg.workers is not None and int(cfg.workers) < 0:
        raise UserError(f"workers must be >= 0, got {cfg.workers}")
    if cfg.mixup < 0 or cfg.cutmix < 0:
        raise UserError(f"mixup and cutmix are alphas >= 0 (0 = off), got mixup={cfg.mixup}, cutmix={cfg.cutmix}")


def class_counts(dataset: LabeledImages, num_classes: int) -> torch.Tensor:
    return torch.bincount(torch.tensor(dataset.labels, dtype=torch.int64), minlength=num_classes)


def balanced_class_weights(counts: torch.Tensor) -> torch.Tensor:
    """Inverse-frequency class weights, mean 1 over the classes present (sklearn's "balanced")."""
    present = counts > 0
    weights = torch.zeros(len(counts))
    weights[present] = counts.sum() / (present.sum() * counts[present].float())
    return weights


def distributed_rank() -> tuple[int, int] | None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return None


def refuse_classification_options(cfg: DataConfig, why: str) -> None:
    """Segmentation and detection: mixup, cutmix and class balancing are classification's; ``why`` says what the task
    trains on instead."""
    if cfg.mixup > 0 or cfg.cutmix > 0 or cfg.balance != "none":
        raise UserError(f"--mixup, --cutmix and --balance are for classification; {why}")


def train_val_splits(cfg: DataConfig, splits: dict[str, Any], need: str = "") -> tuple[Any, Any]:
    """The training split ("all" with ``train_on_val``) and the validation split; an empty one is an error (``need``
    ends its message)."""
    train, val = splits["all" if cfg.train_on_val else "train"], splits["val"]
    if len(train) == 0 or len(val) == 0:
        raise UserError(f"{cfg.data}: the training or validation split is empty ({len(train)} / {len(val)} images){need}")
    return train, val


def check_split(split: str) -> None:
    if split not in EVAL_SPLITS:
        raise UserError(f"split must be one of {', '.join(EVAL_SPLITS)}, got {split!r}")


def train_val_loaders(cfg: DataConfig, train: Any, val: Any, transforms: tuple[Callable, Callable],
                      collate: Callable | tuple[Callable, Callable], in_memory: bool,
                      sampler: Sampler | None = None) -> tuple[EpochLoader, DataLoader]:
    """Every task's two loaders over its datasets, with its (training, validation) transforms and its collate
    function (one for both, or (training, validation)). Training: seeded, resumable epochs (``EpochLoader``),
    shuffled, or drawn by ``sampler``, or under torchrun a ``DistributedSampler`` shard. Validation: in order, each
    rank a ``ShardSampler`` shard."""
    train.transform, train.seed = transforms[0], cfg.seed
    val.transform = transforms[1]
    train_collate, val_collate = collate if isinstance(collate, tuple) else (collate, collate)
    workers = default_workers(in_memory) if cfg.workers is None else int(cfg.workers)
    dist = distributed_rank()
    if sampler is None and dist is not None:
        sampler = DistributedSampler(train, num_replicas=dist[1], rank=dist[0], shuffle=True, seed=cfg.seed)
    common = {"batch_size": int(cfg.batch_size), "num_workers": workers, "pin_memory": torch.cuda.is_available()}
    per_epoch = len(sampler) if sampler is not None else len(train)
    # drop_last: a final batch of one image would break BatchNorm in training
    train_loader = EpochLoader(train, seed=cfg.seed, sampler=sampler, shuffle=sampler is None,
                               drop_last=per_epoch > cfg.batch_size, collate_fn=train_collate, **common)
    val_loader = DataLoader(val, sampler=ShardSampler(len(val), *dist) if dist else None, collate_fn=val_collate, **common)
    return train_loader, val_loader


def build_data(cfg: DataConfig) -> Data:
    """Resolve ``cfg.data`` and build the loaders; bad files are skipped with one warning line, nothing usable is an error."""
    check_config(cfg)
    pre = cfg.preprocessing()
    source = resolve_source(cfg.data, cfg.data_root, cfg.val_split, cfg.seed, cfg.download)
    train, val = source.splits["all" if cfg.train_on_val else "train"], source.splits["val"]
    num_classes = len(source.class_names)
    counts = class_counts(train, num_classes)
    sampler = None
    if cfg.balance == "sampler":
        sample_weights = (1.0 / counts.clamp(min=1).double())[torch.tensor(train.labels)]
        sampler = WeightedEpochSampler(sample_weights, cfg.seed, *(distributed_rank() or (0, 1)))
    train_loader, val_loader = train_val_loaders(cfg, train, val, (train_transform(cfg.augment, pre), eval_transform(pre)),
                                                 DropNoneCollate(pre.input_size), source.in_memory, sampler)
    mix = BatchMix(num_classes, cfg.mixup, cfg.cutmix, cfg.seed) if cfg.mixup > 0 or cfg.cutmix > 0 else None
    return Data(train_loader, val_loader, source.class_names, pre,
                class_weights=balanced_class_weights(counts) if cfg.balance == "weights" else None,
                batch_transform=mix, skipped=source.skipped)


def build_eval_loader(data: str, preprocessing: Preprocessing, split: str = "val", batch_size: int = 64,
                      workers: int | None = None, val_split: float = 0.2, seed: int = 0,
                      data_root: str | None = None) -> tuple[DataLoader, list[str]]:
    """A deterministic loader over one split ("val", "train" or "all") with the model's evaluation transform."""
    check_split(split)
    check_config(DataConfig(data=data, input_size=preprocessing.input_size, batch_size=batch_size, workers=workers))
    source = resolve_source(data, data_root, val_split, seed)
    dataset: Dataset = source.splits[split]
    dataset.transform = eval_transform(preprocessing)
    loader = DataLoader(dataset, batch_size=int(batch_size), shuffle=False,
                        num_workers=default_workers(source.in_memory) if workers is None else int(workers),
                        pin_memory=torch.cuda.is_available(), collate_fn=DropNoneCollate(preprocessing.input_size))
    return loader, source.class_names
