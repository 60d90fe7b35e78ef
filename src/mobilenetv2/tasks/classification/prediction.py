"""A classification prediction (``Prediction``) and ``top_k_predictions``: logits to labels in numpy, without torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

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
