"""The segmentation report: mIoU, per-class IoU, pixel accuracy, fwIoU, confusion matrix and the worst images."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import mobilenetv2.tasks.segmentation.metrics as M
from mobilenetv2.extras import optional
from mobilenetv2.reporting import format_table, staged_dir
from mobilenetv2.tasks.classification.report import plot_confusion
from mobilenetv2.tasks.segmentation.palette import colorize, side_by_side


@dataclass
class SegmentationReport:
    """Every figure of one evaluation, computed from the confusion matrix of all labelled pixels."""

    num_images: int
    class_names: list[str]
    confusion: np.ndarray
    miou: float
    pixel_acc: float
    mean_class_acc: float
    fw_iou: float
    per_class: list[dict[str, Any]]
    worst: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_matrix(cls, matrix: torch.Tensor, class_names: list[str], num_images: int,
                    worst: list[dict[str, Any]] | None = None) -> SegmentationReport:
        iou = M.per_class_iou(matrix)
        support = matrix.sum(1)
        per_class = [{"name": name, "iou": None if math.isnan(v) else float(v), "pixels": int(s),
                      "accuracy": float(matrix[i, i] / s) if s > 0 else None}
                     for i, (name, v, s) in enumerate(zip(class_names, iou.tolist(), support.tolist()))]
        return cls(num_images, class_names, matrix.numpy(), M.mean_iou(matrix), M.pixel_accuracy(matrix),
                   M.mean_class_accuracy(matrix), M.frequency_weighted_iou(matrix), per_class, worst or [])

    @property
    def num_pixels(self) -> int:
        return int(self.confusion.sum())

    def to_dict(self) -> dict[str, Any]:
        return {"num_images": self.num_images, "num_pixels": self.num_pixels, "class_names": self.class_names,
                "miou": self.miou, "pixel_acc": self.pixel_acc, "mean_class_acc": self.mean_class_acc,
                "fw_iou": self.fw_iou, "per_class": self.per_class, "confusion_matrix": self.confusion.tolist(),
                "worst_images": [{"index": w["index"], "miou": w["miou"]} for w in self.worst], "info": self.info}

    def summary(self) -> str:
        return (f"mIoU {self.miou:.2%}, pixel accuracy {self.pixel_acc:.2%}, fwIoU {self.fw_iou:.2%} "
                f"on {self.num_images} images")

    def to_markdown(self) -> str:
        def pct(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.2%}"

        lines = ["# Segmentation report", "", *(f"- {k}: {v}" for k, v in self.info.items()),
                 f"- images: {self.num_images}, labelled pixels: {self.num_pixels:,} (255 = ignored), "
                 f"classes: {len(self.class_names)}",
                 f"- mIoU: {self.miou:.4f} (mean over the classes present in the truth or the prediction)",
                 f"- pixel accuracy: {self.pixel_acc:.4f}", f"- mean class accuracy: {self.mean_class_acc:.4f}",
                 f"- frequency-weighted IoU: {self.fw_iou:.4f}", "", "## Per class", "",
                 format_table(["class", "IoU", "accuracy", "pixels"],
                              [[c["name"], pct(c["iou"]), pct(c["accuracy"]), f"{c['pixels']:,}"] for c in self.per_class]),
                 "", "## Worst images (lowest mIoU)", ""]
        lines += [f"- image {w['index']}: mIoU {w['miou']:.2%}" for w in self.worst] or ["none kept"]
        lines += ["", "## Confusion matrix (pixels; rows: true, columns: predicted)", "",
                  format_table(["true \\ predicted", *self.class_names],
                               [[n, *row] for n, row in zip(self.class_names, self.confusion.tolist())])]
        return "\n".join(lines) + "\n"

    def confusion_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["true\\predicted", *self.class_names])
        for name, row in zip(self.class_names, self.confusion.tolist()):
            writer.writerow([name, *row])
        return buf.getvalue()

    def write(self, out_dir: str | os.PathLike[str]) -> Path:
        """report.md, report.json, confusion_matrix.csv, confusion_matrix.png and worst_images/, all or nothing."""
        with staged_dir(out_dir) as tmp:
            (tmp / "report.md").write_text(self.to_markdown())
            (tmp / "confusion_matrix.csv").write_text(self.confusion_csv())
            if optional("matplotlib", "plots", "the report's PNG plots"):
                plot_confusion(self.confusion, self.class_names, tmp / "confusion_matrix.png", normalize=True)
            self.write_worst(tmp / "worst_images")
            (tmp / "report.json").write_text(json.dumps(self.to_dict(), indent=2))
        return Path(out_dir)

    def write_worst(self, folder: Path) -> None:
        """NN_image-I.png: photo | true mask | predicted mask (PASCAL palette), worst first."""
        folder.mkdir()
        for rank, w in enumerate(self.worst, 1):
            parts = [colorize(w["truth"]), colorize(w["predicted"])]
            if w.get("image") is not None:
                parts.insert(0, Image.fromarray(w["image"]))
            side_by_side(*parts).save(folder / f"{rank:02d}_image-{w['index']}.png")
