"""Evaluate a model on a dataset: run it over the loader, gather across processes, compute the report."""

from __future__ import annotations

import os
from collections.abc import Iterable

from mobilenetv2 import console
from mobilenetv2.distributed import shard_loader
from mobilenetv2.evaluation.classifier import Classifier
from mobilenetv2.evaluation.predictor import load_predictor
from mobilenetv2.tasks import Evaluator, Report


def run_evaluator(classifier: Classifier, loader: Iterable, evaluator: Evaluator, progress: bool = False) -> None:
    """Feed every batch of ``loader`` (this process's share under torchrun) through the model into ``evaluator``."""
    bar = console.progress(loader, desc="evaluate", unit="batch", enabled=progress and console.progress_enabled())
    for images, targets in bar:
        evaluator.update(classifier.logits(images), targets, images)


def evaluate(model: str | os.PathLike[str] | Classifier, data: str, split: str = "val", batch_size: int = 64,
             workers: int | None = None, val_split: float = 0.2, seed: int = 0, data_root: str | None = None,
             progress: bool = False) -> Report:
    """Evaluate a checkpoint (or a ``Classifier``) on ``data`` with the checkpoint's own preprocessing."""
    classifier = model if isinstance(model, Classifier) else load_predictor(model)
    task = classifier.task
    loader, data_names = task.eval_loader(data, classifier.preprocessing, split=split, batch_size=batch_size,
                                          workers=workers, val_split=val_split, seed=seed, data_root=data_root)
    task.check_classes(classifier.class_names if classifier.has_class_names else None, classifier.num_classes, data_names)
    evaluator = task.evaluator(classifier.preprocessing)
    run_evaluator(classifier, shard_loader(loader), evaluator, progress)
    report = evaluator.finish(data_names, len(loader.dataset))
    report.info.update({"model": str(model) if not isinstance(model, Classifier) else "(in memory)",
                        "data": data, "split": split, "input_size": classifier.preprocessing.input_size})
    return report
