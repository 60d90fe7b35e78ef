"""The segmentation report: mIoU, per-class IoU, pixel accuracy, fwIoU, confusion matrix and the worst images."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
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

REPORT_FILES = ("report.json", "report.md", "confusion_matrix.csv", "confusion_matrix.png", "worst_images")
WORST_DIR = "worst_images"


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


@dataclass
class SegmentationReport:
    """Every figure of one evaluation, computed from the confusion matrix of all labelled pixels.

    ``per_class``: one dict per class (name, iou, accuracy, pixels); iou is None for a class absent from both truth and
    prediction, accuracy None for one absent from the truth. ``worst``: dicts of index, miou, truth and predicted
    (uint8 masks), image (uint8 [H, W, 3] or None) and optionally name, lowest mIoU first.
    """

    num_images: int
    class_names: list[str]
    confusion: np.ndarray
    miou: float
    pixel_acc: float
    mean_class_acc: float
    fw_iou: float
    per_class: list[dict[str, Any]]
    worst: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # what was evaluated: checkpoint, data, split...

    @classmethod
    def from_matrix(cls, matrix: torch.Tensor, class_names: list[str], num_images: int,
                    worst: list[dict[str, Any]] | None = None, info: dict[str, Any] | None = None) -> SegmentationReport:
        """The report of a [C, C] pixel confusion matrix (rows: truth, columns: prediction)."""
        matrix = torch.as_tensor(matrix).long().cpu()
        if matrix.shape != (len(class_names), len(class_names)):
            raise ValueError(f"a {tuple(matrix.shape)} confusion matrix for {len(class_names)} class names")
        per_class = [{"name": name, "iou": _number(iou), "accuracy": _number(acc), "pixels": int(pixels)}
                     for name, iou, acc, pixels in zip(class_names, M.per_class_iou(matrix).tolist(),
                                                       M.per_class_accuracy(matrix).tolist(), matrix.sum(1).tolist())]
        return cls(num_images, list(class_names), matrix.numpy(), M.mean_iou(matrix), M.pixel_accuracy(matrix),
                   M.mean_class_accuracy(matrix), M.frequency_weighted_iou(matrix), per_class, list(worst or []),
                   dict(info or {}))

    @property
    def num_pixels(self) -> int:
        """The labelled pixels counted (255 left out)."""
        return int(self.confusion.sum())

    def worst_files(self) -> list[str]:
        """The paths, relative to the report folder, of the worst images' pictures: worst_images/NN_name.png."""
        return [f"{WORST_DIR}/{rank:02d}_{_file_stem(w)}.png" for rank, w in enumerate(self.worst, 1)]

    def to_dict(self) -> dict[str, Any]:
        worst = [{"index": w["index"], "miou": w["miou"], **({"name": w["name"]} if w.get("name") else {}), "file": f}
                 for w, f in zip(self.worst, self.worst_files())]
        return {"num_images": self.num_images, "num_pixels": self.num_pixels, "class_names": self.class_names,
                "miou": self.miou, "pixel_acc": self.pixel_acc, "mean_class_acc": self.mean_class_acc,
                "fw_iou": self.fw_iou, "per_class": self.per_class, "confusion_matrix": self.confusion.tolist(),
                "worst_images": worst, "info": self.info}

    def summary(self) -> str:
        """One line: mIoU, pixel accuracy, fwIoU and the image count."""
        return (f"mIoU {self.miou:.1%}, pixel accuracy {self.pixel_acc:.1%}, fwIoU {self.fw_iou:.1%} "
                f"on {self.num_images} images")

    def to_markdown(self) -> str:
        lines = ["# Segmentation report", "", *(f"- {k}: {v}" for k, v in self.info.items()),
                 f"- images: {self.num_images}, labelled pixels: {self.num_pixels:,} (255 = ignored), "
                 f"classes: {len(self.class_names)}",
                 f"- mIoU: {self.miou:.4f} (mean over the classes present in the truth or the prediction)",
                 f"- pixel accuracy: {self.pixel_acc:.4f}", f"- mean class accuracy: {self.mean_class_acc:.4f}",
                 f"- frequency-weighted IoU: {self.fw_iou:.4f}", "", "## Per class", "",
                 format_table(["class", "IoU", "accuracy", "pixels"],
                              [[c["name"], _pct(c["iou"]), _pct(c["accuracy"]), f"{c['pixels']:,}"] for c in self.per_class]),
                 "", "n/a: IoU of a class absent from both truth and prediction (left out of mIoU); accuracy of a class "
                 "absent from the truth.", "", "## Worst images (lowest mIoU)", ""]
        lines += [f"- {w.get('name') or 'image ' + str(w['index'])}: mIoU {w['miou']:.2%} ({f})"
                  for w, f in zip(self.worst, self.worst_files())] or ["none kept"]
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
        """Write report.md, report.json, confusion_matrix.csv, confusion_matrix.png (row-normalised, with matplotlib)
        and worst_images/; all appear together or none, and worst_images/ replaces an earlier one whole."""
        out = Path(out_dir)
        with staged_dir(out) as tmp:
            (tmp / "report.md").write_text(self.to_markdown())
            (tmp / "confusion_matrix.csv").write_text(self.confusion_csv())
            if optional("matplotlib", "plots", "the report's PNG plots"):
                plot_confusion(self.confusion, self.class_names, tmp / "confusion_matrix.png", normalize=True)
            self.write_worst(tmp / WORST_DIR)
            (tmp / "report.json").write_text(json.dumps(self.to_dict(), indent=2, default=str))
            if (out / WORST_DIR).is_dir():  # a folder cannot replace a non-empty one: the old pictures go first
                shutil.rmtree(out / WORST_DIR)
        return out

    def write_worst(self, folder: Path) -> None:
        """NN_name.png: photo | true mask | predicted mask (PASCAL palette), worst first; no photo when none was kept."""
        folder.mkdir()
        for w, name in zip(self.worst, self.worst_files()):
            parts = [colorize(w["truth"]), colorize(w["predicted"])]
            if w.get("image") is not None:
                parts.insert(0, Image.fromarray(np.asarray(w["image"], dtype=np.uint8)))
            side_by_side(*parts).save(folder / Path(name).name)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _file_stem(worst: dict[str, Any]) -> str:
    """The image's own name (its stem, made safe for a file name) or image-INDEX."""
    name = Path(str(worst["name"])).stem if worst.get("name") else ""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:60]
    return name or f"image-{worst['index']}"
