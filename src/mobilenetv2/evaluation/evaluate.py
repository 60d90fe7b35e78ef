"""Evaluate a model on a dataset: run it over the loader, gather across processes, compute the report."""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from mobilenetv2.errors import UserError
from mobilenetv2.evaluation.classifier import Classifier
from mobilenetv2.evaluation.report import EvalReport, evaluate_predictions


def check_class_names(model_names: list[str], data_names: list[str]) -> None:
    """The checkpoint's classes must be the dataset's, in the same order."""
    if list(model_names) == list(data_names):
        return
    if sorted(model_names) == sorted(data_names):
        raise UserError(f"the checkpoint's classes are in a different order than the dataset's: "
                        f"checkpoint {model_names}, dataset {data_names}")
    only_model = [n for n in model_names if n not in data_names]
    only_data = [n for n in data_names if n not in model_names]
    raise UserError(f"the dataset's classes do not match the checkpoint's: only in the checkpoint {only_model[:20]}, "
                    f"only in the dataset {only_data[:20]} ({len(model_names)} vs {len(data_names)} classes)")


def collect(classifier: Classifier, loader: Iterable, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets [N] and logits [N, C] of every batch of ``loader`` (this process's share under torchrun)."""
    from tqdm import tqdm

    targets, logits = [], []
    for images, labels in tqdm(loader, desc="evaluate", disable=not progress, leave=False):
        logits.append(classifier.logits(images))
        targets.append(labels.cpu())
    if not targets:
        raise UserError("the dataset split has no images")
    return torch.cat(targets), torch.cat(logits)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def shard_loader(loader: DataLoader) -> DataLoader:
    """Under torchrun, the same loader over this process's DistributedSampler share (dataset order, padded)."""
    if not is_distributed():
        return loader
    sampler = DistributedSampler(loader.dataset, shuffle=False)
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler, num_workers=loader.num_workers,
                      pin_memory=loader.pin_memory, collate_fn=loader.collate_fn)


def interleave(shares: list[tuple[torch.Tensor, torch.Tensor]], total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Undo DistributedSampler (shuffle=False): rank r holds items r, r + W, r + 2W, ... of the dataset padded to a
    multiple of W, so interleaving the equal-sized shares restores dataset order and the first ``total`` are real."""
    if len({len(t) for t, _ in shares}) != 1:  # a share lost broken images: order is lost, but no padding to drop
        return torch.cat([t for t, _ in shares]), torch.cat([lg for _, lg in shares])
    targets = torch.stack([t for t, _ in shares], dim=1).reshape(-1)[:total]
    logits = torch.stack([lg for _, lg in shares], dim=1).flatten(0, 1)[:total]
    return targets, logits


def gather_across_processes(targets: torch.Tensor, logits: torch.Tensor, total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every process's predictions, in dataset order and without DistributedSampler's padding (a no-op when alone)."""
    if not is_distributed():
        return targets, logits
    shares: list = [None] * dist.get_world_size()
    dist.all_gather_object(shares, (targets, logits))
    return interleave(shares, total)


def evaluate(model: str | os.PathLike[str] | Classifier, data: str, split: str = "val", batch_size: int = 64,
             workers: int | None = None, val_split: float = 0.2, seed: int = 0, data_root: str | None = None,
             progress: bool = False) -> EvalReport:
    """Evaluate a checkpoint (or a ``Classifier``) on ``data`` with the checkpoint's own preprocessing."""
    from mobilenetv2.data import build_eval_loader

    classifier = model if isinstance(model, Classifier) else Classifier.load(model)
    loader, data_names = build_eval_loader(data, classifier.preprocessing, split=split, batch_size=batch_size,
                                           workers=workers, val_split=val_split, seed=seed, data_root=data_root)
    if classifier.has_class_names:
        check_class_names(classifier.class_names, data_names)
    elif classifier.num_classes is not None and classifier.num_classes != len(data_names):
        raise UserError(f"the model has {classifier.num_classes} outputs but the dataset has {len(data_names)} classes "
                        f"({', '.join(data_names[:10])}{', ...' if len(data_names) > 10 else ''})")
    targets, logits = collect(classifier, shard_loader(loader), progress)
    targets, logits = gather_across_processes(targets, logits, len(loader.dataset))
    report = evaluate_predictions(targets, logits, data_names)
    report.info.update({"model": str(model) if not isinstance(model, Classifier) else "(in memory)",
                        "data": data, "split": split, "input_size": classifier.preprocessing.input_size})
    return report
