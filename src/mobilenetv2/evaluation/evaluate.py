"""Evaluate a model on a dataset: run it over the loader, gather across processes, compute the report."""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch

from mobilenetv2 import console
from mobilenetv2.distributed import gather_across_processes, shard_loader
from mobilenetv2.errors import UserError
from mobilenetv2.evaluation.classifier import Classifier
from mobilenetv2.tasks import Report


def collect(classifier: Classifier, loader: Iterable, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets [N] and logits [N, C] of every batch of ``loader`` (this process's share under torchrun)."""
    targets, logits = [], []
    bar = console.progress(loader, desc="evaluate", unit="batch", enabled=progress and console.progress_enabled())
    for images, labels in bar:
        logits.append(classifier.logits(images))
        targets.append(labels.cpu())
    if not targets:
        raise UserError("the dataset split has no images")
    return torch.cat(targets), torch.cat(logits)


def evaluate(model: str | os.PathLike[str] | Classifier, data: str, split: str = "val", batch_size: int = 64,
             workers: int | None = None, val_split: float = 0.2, seed: int = 0, data_root: str | None = None,
             progress: bool = False) -> Report:
    """Evaluate a checkpoint (or a ``Classifier``) on ``data`` with the checkpoint's own preprocessing."""
    classifier = model if isinstance(model, Classifier) else Classifier.load(model)
    task = classifier.task
    loader, data_names = task.eval_loader(data, classifier.preprocessing, split=split, batch_size=batch_size,
                                          workers=workers, val_split=val_split, seed=seed, data_root=data_root)
    task.check_classes(classifier.class_names if classifier.has_class_names else None, classifier.num_classes, data_names)
    targets, logits = collect(classifier, shard_loader(loader), progress)
    targets, logits = gather_across_processes(targets, logits, len(loader.dataset))
    report = task.report(targets, logits, data_names)
    report.info.update({"model": str(model) if not isinstance(model, Classifier) else "(in memory)",
                        "data": data, "split": split, "input_size": classifier.preprocessing.input_size})
    return report
