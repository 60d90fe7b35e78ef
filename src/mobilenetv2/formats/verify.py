"""Is a file's output PyTorch's? The task's comparison of two sets of outputs, as a pass/fail ``Verification`` (what
export checks before a file takes its name) or streamed batch by batch (``OutputComparison``: quantize's agreement)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import torch

from mobilenetv2.errors import UserError
from mobilenetv2.spec import Preprocessing
from mobilenetv2.tasks import Task

FP32_TOLERANCE = 1e-4


class ExportCheck(Protocol):
    """What the check of an export says: whether it passed, lines for the user, JSON (``Verification``, or a format's
    own when its backend cannot run everywhere: Core ML's)."""

    @property
    def passed(self) -> bool: ...

    def summary(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass
class Verification:
    """The exported model vs PyTorch on the same inputs."""

    images: int
    source: str              # "real images" or "synthetic images"
    max_abs_diff: float
    top1_agreement: float    # fraction of images (pixels, for segmentation) with the same argmax class
    tolerance: float
    pixel_agreement: float | None = None  # dense outputs: the same argmax on every pixel, numerical ties included
    box_diff: float | None = None  # detection: largest box difference (fraction of the input's side)
    score_diff: float | None = None  # detection: largest class-probability difference

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance and self.top1_agreement == 1.0

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        text = (f"verify: {verdict} on {self.images} {self.source}: max |logit diff| {self.max_abs_diff:.2e} "
                f"(tolerance {self.tolerance:.0e}), same argmax {self.top1_agreement:.0%}")
        if self.box_diff is not None:
            text += f" of the anchors; boxes within {self.box_diff:.1e} of the input side, scores within {self.score_diff:.1e}"
        if self.pixel_agreement is None:
            return text
        return (f"{text} of the pixels without a numerical tie (pixel agreement {self.pixel_agreement:.3%} "
                f"counting ties)")

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def verify_outputs(task: Task, reference: np.ndarray, candidate: np.ndarray, source: str,
                   tolerance: float = FP32_TOLERANCE) -> Verification:
    """The task's comparison (largest difference, agreement of the predictions) as a pass/fail verification."""
    found = task.compare_outputs(reference, candidate)
    return Verification(len(reference), source, found["max_abs_diff"], found["top1_agreement"], tolerance,
                        found.get("pixel_agreement"), found.get("max_box_diff"), found.get("max_score_diff"))


def verification_batch(preprocessing: Preprocessing, images: list[str] | None = None, count: int = 4,
                       in_chans: int = 3, limit: int = 32) -> tuple[torch.Tensor, str]:
    """Preprocessed real images (files, folders or globs; the first ``limit``), or ``count`` seeded synthetic ones."""
    if images:
        from mobilenetv2.data.images import find_images, load_image
        from mobilenetv2.data.preprocessing import eval_transform

        paths = find_images(list(images))
        if not paths:
            raise UserError(f"--verify-images: no images found in {', '.join(images)}")
        transform = eval_transform(preprocessing)
        return torch.stack([transform(load_image(p)) for p in paths[:limit]]), "real images"
    size = preprocessing.input_size
    generator = torch.Generator().manual_seed(0)
    return torch.randn(count, in_chans, size, size, generator=generator), "synthetic images"


class OutputComparison:
    """Another runtime's outputs against a reference's, batch by batch (nothing kept: 128 DeepLab logits at 513x513
    are 2.8 GB): agreement of the argmax over the classes (where the task says its classes are: per image, per pixel,
    per anchor) and the max/mean absolute difference."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.images = self.same = self.predictions = self.values = 0
        self.max_diff = self.sum_diff = 0.0
        self.unit = "images"

    def update(self, reference: np.ndarray, other: np.ndarray) -> None:
        diff = np.abs(reference - other)
        (ref_scores, self.unit), (other_scores, _) = self.task.class_scores(reference), self.task.class_scores(other)
        same = ref_scores.argmax(1) == other_scores.argmax(1)
        self.images += len(reference)
        self.same, self.predictions = self.same + int(same.sum()), self.predictions + same.size
        self.values, self.sum_diff = self.values + diff.size, self.sum_diff + float(diff.sum(dtype=np.float64))
        self.max_diff = max(self.max_diff, float(diff.max(initial=0.0)))

    def result(self) -> dict[str, float | str]:
        return {"agreement": self.same / max(self.predictions, 1), "max_logit_diff": self.max_diff,
                "mean_logit_diff": self.sum_diff / max(self.values, 1), "agreement_unit": self.unit}
