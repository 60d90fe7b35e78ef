"""The detection report: COCO mAP, AP by size, AR, per-class AP, precision-recall curves and pictures with the
predicted and true boxes drawn."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mobilenetv2.extras import optional
from mobilenetv2.reporting import format_table, staged_dir

PICTURES_DIR = "detections"
FIGURE_NAMES = {"map": "mAP@[.5:.95]", "map_50": "mAP@.5", "map_75": "mAP@.75", "map_small": "AP small (< 32² px)",
                "map_medium": "AP medium", "map_large": "AP large (> 96² px)", "mar_1": "AR@1", "mar_100": "AR@100",
                "mar_300": "AR@300", "mar_small": "AR small", "mar_medium": "AR medium", "mar_large": "AR large"}


@dataclass
class DetectionReport:
    """Every figure of one evaluation. ``figures``: COCO's (-1 where a size has no object); ``per_class``: one dict per
    class (name, ap, ap50, ar, objects, detections); ``curves``: precision at 101 recall points, [IoU .5/.75, R, class]."""

    num_images: int
    class_names: list[str]
    figures: dict[str, float]
    per_class: list[dict[str, Any]]
    curves: np.ndarray
    pictures: list[tuple[str, Image.Image]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def map(self) -> float:
        return max(self.figures.get("map", 0.0), 0.0)

    @property
    def map50(self) -> float:
        return max(self.figures.get("map_50", 0.0), 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"num_images": self.num_images, "class_names": self.class_names, **self.figures,
                "per_class": self.per_class, "pictures": [f"{PICTURES_DIR}/{name}" for name, _ in self.pictures],
                "info": self.info}

    def summary(self) -> str:
        objects = sum(c["objects"] for c in self.per_class)
        return (f"mAP@[.5:.95] {self.map:.1%}, mAP@.5 {self.map50:.1%}, AR@100 {max(self.figures.get('mar_100', 0), 0):.1%} "
                f"on {self.num_images} images ({objects} objects)")

    def to_markdown(self) -> str:
        lines = ["# Detection report", "", *(f"- {k}: {v}" for k, v in self.info.items()),
                 f"- images: {self.num_images}, classes: {len(self.class_names) - 1} (+ background)", "",
                 "COCO evaluation (pycocotools through torchmetrics); the mAP counts up to 300 detections an image.", "",
                 format_table(["figure", "value"], [[FIGURE_NAMES.get(k, k), _pct(v)] for k, v in self.figures.items()
                                                    if k in FIGURE_NAMES]),
                 "", "n/a: no object of that size.", "", "## Per class", "",
                 format_table(["class", "AP@[.5:.95]", "AP@.5", "AR@300", "objects", "detections"],
                              [[c["name"], _pct(c["ap"]), _pct(c["ap50"]), _pct(c["ar"]), c["objects"], c["detections"]]
                               for c in self.per_class]),
                 "", "Precision-recall curves: pr_curves.png. Pictures (green: truth, red: detections with score >= 0.3): "
                 f"{PICTURES_DIR}/."]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | os.PathLike[str]) -> Path:
        """report.md, report.json, pr_curves.png (with matplotlib) and detections/; all together or none."""
        out = Path(out_dir)
        with staged_dir(out) as tmp:
            (tmp / "report.md").write_text(self.to_markdown())
            if optional("matplotlib", "plots", "the report's PNG plots"):
                self.plot_curves(tmp / "pr_curves.png")
            (tmp / PICTURES_DIR).mkdir()
            for name, picture in self.pictures:
                picture.save(tmp / PICTURES_DIR / name)
            (tmp / "report.json").write_text(json.dumps(self.to_dict(), indent=2, default=str))
            if (out / PICTURES_DIR).is_dir():
                shutil.rmtree(out / PICTURES_DIR)
        return out

    def plot_curves(self, path: Path) -> None:
        """Precision against recall per class at IoU 0.5 and 0.75 (COCO's 101 recall points)."""
        from mobilenetv2.reporting import pyplot

        plt = pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        recall = np.linspace(0, 1, self.curves.shape[1])
        for ax, iou, curves in zip(axes, ("0.5", "0.75"), self.curves):
            for cls, name in enumerate(self.class_names[1:], start=1):
                if (curves[:, cls] > -1).all():
                    ax.plot(recall, curves[:, cls], label=name)
            ax.set(xlabel="recall", ylabel="precision", title=f"precision-recall at IoU {iou}", xlim=(0, 1), ylim=(0, 1.02))
            ax.grid(alpha=0.3)
        if len(self.class_names) <= 21:
            axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, format="png", dpi=100)
        plt.close(fig)


def picture_name(rank: int, name: str | None, image_id: int) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem if name else "").strip("._")[:60]
    return f"{rank:02d}_{stem or f'image-{image_id}'}.png"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or value < 0 else f"{value:.2%}"
