"""``ClassificationTask``: one label per image; logits out of the model, top-k ``Prediction``s out of ``top_k_predictions``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from mobilenetv2 import distributed as D
from mobilenetv2.data import Data, DataConfig, Preprocessing, build_data, build_eval_loader
from mobilenetv2.errors import UserError
from mobilenetv2.models import create_model
from mobilenetv2.tasks.base import Task
from mobilenetv2.tasks.classification.prediction import Prediction, _few, check_class_names, top_k_predictions
from mobilenetv2.tasks.classification.report import EvalReport, evaluate_predictions

__all__ = ["AccuracyMeter", "ClassificationTask", "LogitsCollector", "Prediction", "check_class_names",
           "top_k_predictions"]


class AccuracyMeter:
    """Mean loss and top-1 accuracy of a pass (accuracy against hard labels; mixed targets count for the loss only)."""

    def __init__(self) -> None:
        self.loss_sum = self.correct = self.count = self.scored = 0.0

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, loss: float) -> None:
        n = outputs.shape[0]
        self.loss_sum += loss * n
        self.count += n
        if targets.ndim == 1:
            self.correct += (outputs.argmax(1).cpu() == targets.cpu()).sum().item()
            self.scored += n

    def compute(self, prefix: str, device: torch.device) -> dict[str, float]:
        loss_sum, correct, count, scored = D.all_reduce_sum([self.loss_sum, self.correct, self.count, self.scored], device)
        return {f"{prefix}loss": loss_sum / max(count, 1), f"{prefix}acc": correct / max(scored, 1)}


class LogitsCollector:
    """Keeps every logit and label of an evaluation (small: one row per image) for the full report."""

    def __init__(self) -> None:
        self.targets: list[torch.Tensor] = []
        self.logits: list[torch.Tensor] = []

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, images: torch.Tensor | None = None) -> None:
        self.logits.append(outputs.detach().float().cpu())
        self.targets.append(targets.cpu())

    def finish(self, class_names: list[str], total: int, gather: bool = True) -> EvalReport:
        if not self.targets:
            raise UserError("the dataset split has no images")
        targets, logits = torch.cat(self.targets), torch.cat(self.logits)
        if gather:
            targets, logits = D.gather_across_processes(targets, logits, total)
        return evaluate_predictions(targets, logits, class_names)


class ClassificationTask(Task):
    name = "classification"
    monitor = "val_acc"
    output_names = ["logits"]
    default_model = "mobilenet_v2"

    def build_data(self, cfg: DataConfig) -> Data:
        return build_data(cfg)

    def eval_loader(self, data, preprocessing: Preprocessing, *, split, batch_size, workers, val_split, seed, data_root):
        return build_eval_loader(data, preprocessing, split=split, batch_size=batch_size, workers=workers,
                                 val_split=val_split, seed=seed, data_root=data_root)

    def build_model(self, name: str, num_classes: int, **kwargs: Any) -> nn.Module:
        return create_model(name, num_classes=num_classes, **kwargs)

    def criterion(self, data: Data, label_smoothing: float = 0.0, model: nn.Module | None = None) -> nn.Module:
        weights = data.class_weights
        return nn.CrossEntropyLoss(weight=weights, label_smoothing=label_smoothing)

    def eval_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        return nn.functional.cross_entropy(outputs.float(), targets).item()

    def meter(self, architecture: dict[str, Any] | None = None) -> AccuracyMeter:
        return AccuracyMeter()

    def evaluator(self, preprocessing: Preprocessing, architecture: dict[str, Any] | None = None) -> LogitsCollector:
        return LogitsCollector()

    def check_classes(self, model_names: list[str] | None, num_outputs: int | None, data_names: list[str]) -> None:
        if model_names is not None:
            check_class_names(model_names, data_names)
        elif num_outputs is not None and num_outputs != len(data_names):
            raise UserError(f"the model has {num_outputs} outputs but the dataset has {len(data_names)} classes "
                            f"({_few(data_names)})")

    def compare_outputs(self, reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
        return {"top1_agreement": float((reference.argmax(1) == other.argmax(1)).mean()),
                "max_abs_diff": float(np.abs(reference - other).max())}
