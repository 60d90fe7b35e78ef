"""Evaluate a model on a dataset: run it over the loader, gather across processes, compute the report."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from mobilenetv2 import console
from mobilenetv2.extras import EXTRAS, MissingExtraError
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
    from mobilenetv2.distributed import shard_loader

    run_evaluator(predictor, shard_loader(loader), evaluator, progress)
    report = evaluator.finish(data_names, len(loader.dataset))
    report.info.update({"model": str(model) if not isinstance(model, Predictor) else "(in memory)",
                        "data": data, "split": split, "input_size": predictor.preprocessing.input_size})
    return report


def evaluate_folder(predictor: Predictor, data: str, split: str | None = None, batch_size: int = 64,
                    val_split: float = 0.2, seed: int = 0, progress: bool = False) -> Report:
    """A classifier on a labelled image folder without torch: the folder's split (as the datasets list it), predict's
    own preprocessing and the same report as ``evaluate``. Other tasks and data sources need the [torch] extra."""
    import numpy as np

    from mobilenetv2.data.folders import VAL_FOLDER_NAMES, folder_splits
    from mobilenetv2.tasks.classification.prediction import check_class_names
    from mobilenetv2.tasks.classification.report import evaluate_predictions

    root = Path(data)
    if predictor.task_name != "classification" or not root.is_dir():
        what = f"a {predictor.task_name} model" if predictor.task_name != "classification" else f"{data} (not a folder)"
        raise MissingExtraError(f"evaluating {what} needs torch, which comes with the [torch] extra ({EXTRAS['torch']}): "
                                "pip install 'mobilenetv2[torch]'; without it evaluate reads classifiers on image folders")
    has_val = (root / "train").is_dir() and any((root / n).is_dir() for n in VAL_FOLDER_NAMES)
    split = split or ("val" if has_val else "all")
    splits, class_names, _ = folder_splits(root, val_split, seed)
    if predictor.has_class_names:
        check_class_names(predictor.class_names, class_names)
    samples = splits[split]
    chunks = [samples[i:i + batch_size] for i in range(0, len(samples), batch_size)]
    bar = console.progress(chunks, desc="evaluate", unit="batch", enabled=progress and console.progress_enabled())
    logits = [predictor.logits(predictor.normalize(np.stack([predictor.pixels(path) for path, _ in chunk])))
              for chunk in bar]
    targets = np.asarray([label for _, label in samples], np.int64)
    report = evaluate_predictions(targets, np.concatenate(logits) if logits else np.zeros((0, len(class_names))), class_names)
    report.info.update({"model": "(in memory)", "data": data, "split": split, "input_size": predictor.preprocessing.input_size})
    return report
