"""A classification prediction (``Prediction``), ``top_k_predictions`` (logits to labels in numpy) and the check that
a model's classes are a dataset's: without torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mobilenetv2.errors import UserError
from mobilenetv2.tasks.scores import softmax


@dataclass
class Prediction:
    """The ``top_k`` classes of one image, most probable first."""

    labels: list[str]
    indices: list[int]
    probabilities: list[float]
    source: str | None = None  # the file, when the image was given as a path

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def probability(self) -> float:
        return self.probabilities[0]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> dict[str, Any]:
        """The record that ``predict --format jsonl`` prints."""
        return {"image": self.source, "labels": self.labels, "indices": self.indices,
                "probabilities": [round(x, 6) for x in self.probabilities]}


def top_k_predictions(outputs: Any, class_names: list[str], top_k: int) -> list[Prediction]:
    """Logits (or log-probabilities) [N, C], an array or a CPU tensor -> each image's ``top_k`` classes, most probable
    first."""
    probs = softmax(np.asarray(outputs, dtype=np.float32), axis=1)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
    return [Prediction([class_names[j] for j in idx], [int(j) for j in idx], [float(p) for p in row[idx]])
            for row, idx in zip(probs, order)]


def check_class_names(model_names: list[str], data_names: list[str]) -> None:
    """The checkpoint's classes must be the dataset's, in the same order; the error names at most a few of each."""
    if list(model_names) == list(data_names):
        return
    if sorted(model_names) == sorted(data_names):
        raise UserError(f"the checkpoint's classes are in a different order than the dataset's "
                        f"(checkpoint: {_few(model_names)}; dataset: {_few(data_names)})")
    only_model = [n for n in model_names if n not in data_names]
    only_data = [n for n in data_names if n not in model_names]
    raise UserError(f"the dataset's classes do not match the checkpoint's ({len(model_names)} vs {len(data_names)} "
                    f"classes; only in the checkpoint: {_few(only_model)}; only in the dataset: {_few(only_data)})")


def _few(names: list[str], count: int = 5) -> str:
    shown = ", ".join(names[:count])
    return shown + (f", ... ({len(names) - count} more)" if len(names) > count else "") if names else "none"
