"""Evaluate a model on a dataset: run it over the loader, gather across processes, compute the report."""

from __future__ import annotations

import os
from collections.abc import Iterable

from mobilenetv2 import console
from mobilenetv2.distributed import shard_loader
from mobilenetv2.inference import Predictor, load_predictor
from mobilenetv2.tasks import Evaluator, Report


def run_evaluator(predictor: Predictor, loader: Iterable, evaluator: Evaluator, progress: bool = False) -> None:
    """Feed every batch of ``loader`` (this process's share under torchrun) through the model into ``evaluator``."""
    import torch

    bar = console.progress(loader, desc="evaluate", unit="batch", enabled=progress and console.progress_enabled())
    for images, targets in bar:
        evaluator.update(torch.from_numpy(predictor.logits(images.numpy())), targets, images)


def evaluate(model: str | os.PathLike[str] | Predictor, data: str, split: str = "val", batch_size: int = 64,
             workers: int | None = None, val_split: float = 0.2, seed: int = 0, data_root: str | None = None,
             progress: bool = False, backend: str | None = None) -> Report:
    """Evaluate a checkpoint or exported file (or a loaded ``Predictor``) on ``data`` with the model's own
    preprocessing; ``backend`` runs a file on another backend than its format's own."""
    predictor = model if isinstance(model, Predictor) else load_predictor(model, backend=backend)
    task = predictor.task
    loader, data_names = task.eval_loader(data, predictor.preprocessing, split=split, batch_size=batch_size,
                                          workers=workers, val_split=val_split, seed=seed, data_root=data_root)
    task.check_classes(predictor.class_names if predictor.has_class_names else None, predictor.num_classes, data_names)
    evaluator = task.evaluator(predictor.preprocessing, predictor.runtime.architecture)
    run_evaluator(predictor, shard_loader(loader), evaluator, progress)
    report = evaluator.finish(data_names, len(loader.dataset))
    report.info.update({"model": str(model) if not isinstance(model, Predictor) else "(in memory)",
                        "data": data, "split": split, "input_size": predictor.preprocessing.input_size})
    return report
