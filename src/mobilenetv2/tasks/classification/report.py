"""The evaluation report: metrics from predictions, as a dict, Markdown, CSV and plots."""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import mobilenetv2.tasks.classification.metrics as M
from mobilenetv2.extras import optional
from mobilenetv2.reporting import format_table, pyplot, staged_dir

if TYPE_CHECKING:
    import torch

REPORT_FILES = ("report.json", "report.md", "confusion_matrix.csv", "confusion_matrix.png",
                "confusion_matrix_normalized.png", "reliability.png")


@dataclass
class ClassScores:
    name: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class EvalReport:
    """Top-1/top-5 accuracy, per-class scores, averages, confusion matrix, most confused pairs and calibration."""

    num_samples: int
    class_names: list[str]
    top1: float
    top5: float
    per_class: list[ClassScores]
    macro: dict[str, float]
    weighted: dict[str, float]
    confusion: np.ndarray
    most_confused: list[dict]
    ece: float
    calibration_bins: list[dict]
    loss: float
    info: dict[str, Any] = field(default_factory=dict)  # what was evaluated: checkpoint, data, split...

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_samples": self.num_samples,
            "class_names": self.class_names,
            "top1": self.top1,
            "top5": self.top5,
            "loss": self.loss,
            "ece": self.ece,
            "macro": self.macro,
            "weighted": self.weighted,
            "per_class": [asdict(c) for c in self.per_class],
            "confusion_matrix": self.confusion.tolist(),
            "most_confused": self.most_confused,
            "calibration_bins": self.calibration_bins,
            "info": self.info,
        }

    def summary(self) -> str:
        """One line: sample count, top-1, top-5, macro F1 and ECE."""
        return (f"{self.num_samples} images: top-1 {self.top1:.2%}, top-5 {self.top5:.2%}, "
                f"macro F1 {self.macro['f1']:.4f}, ECE {self.ece:.4f}")

    def to_markdown(self) -> str:
        top5_note = " (trivially 100%: at most 5 classes)" if len(self.class_names) <= 5 else ""
        lines = [
            "# Evaluation report", "", *(f"- {k}: {v}" for k, v in self.info.items()),
            f"- samples: {self.num_samples}, classes: {len(self.class_names)}",
            f"- top-1 accuracy: {self.top1:.4f}",
            f"- top-5 accuracy: {self.top5:.4f}{top5_note}",
            f"- cross-entropy loss: {self.loss:.4f}",
            f"- expected calibration error ({M.ECE_BINS} bins): {self.ece:.4f}", "",
            "## Per class", "",
            format_table(["class", "precision", "recall", "F1", "support"],
                         [[c.name, f"{c.precision:.4f}", f"{c.recall:.4f}", f"{c.f1:.4f}", c.support] for c in self.per_class]
                         + [[f"**{k} avg**", f"{v['precision']:.4f}", f"{v['recall']:.4f}", f"{v['f1']:.4f}",
                             self.num_samples] for k, v in (("macro", self.macro), ("weighted", self.weighted))]),
            "", "## Most confused pairs", "",
        ]
        if self.most_confused:
            lines.append(format_table(["true", "predicted as", "count", "of the true class"],
                                      [[p["true"], p["predicted"], p["count"], f"{p['fraction_of_true']:.1%}"]
                                       for p in self.most_confused]))
        else:
            lines.append("None: every sample was classified correctly.")
        lines += ["", "## Confusion matrix (rows: true, columns: predicted)", "",
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
        """Write report.json, report.md, confusion_matrix.csv and the PNG plots; all appear together or none."""
        with staged_dir(out_dir) as tmp:
            (tmp / "report.md").write_text(self.to_markdown())
            (tmp / "confusion_matrix.csv").write_text(self.confusion_csv())
            if optional("matplotlib", "plots", "the report's PNG plots"):
                plot_confusion(self.confusion, self.class_names, tmp / "confusion_matrix.png", normalize=False)
                plot_confusion(self.confusion, self.class_names, tmp / "confusion_matrix_normalized.png", normalize=True)
                plot_reliability(self.calibration_bins, self.ece, tmp / "reliability.png")
            (tmp / "report.json").write_text(json.dumps(self.to_dict(), indent=2))
        return Path(out_dir)


def evaluate_predictions(targets: np.ndarray | torch.Tensor, logits_or_probs: np.ndarray | torch.Tensor,
                         class_names: list[str]) -> EvalReport:
    """All metrics of one set of predictions. Rows of ``logits_or_probs`` that are not probabilities get a softmax."""
    targets = M.as_numpy(targets).astype(np.int64).reshape(-1)
    scores = M.as_numpy(logits_or_probs).astype(np.float64)
    class_names = list(class_names)
    M.check_inputs(targets, scores, len(class_names))
    probs = M.to_probabilities(scores)
    preds = scores.argmax(axis=1)
    cm = M.confusion_matrix(targets, preds, len(class_names))
    per_class = M.per_class_scores(cm)
    avg = M.averages(per_class)
    ece, bins = M.calibration(targets, probs)
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(targets)), targets], 1e-12, None))))
    return EvalReport(
        num_samples=len(targets), class_names=class_names,
        top1=float((preds == targets).mean()), top5=M.topk_accuracy(targets, scores, 5),
        per_class=[ClassScores(n, float(p), float(r), float(f), int(s)) for n, p, r, f, s in
                   zip(class_names, per_class["precision"], per_class["recall"], per_class["f1"], per_class["support"])],
        macro=avg["macro"], weighted=avg["weighted"], confusion=cm,
        most_confused=M.most_confused(cm, class_names), ece=ece, calibration_bins=bins, loss=loss,
    )


def plot_confusion(cm: np.ndarray, class_names: list[str], path: Path, normalize: bool) -> None:
    """A labelled heat map; counts (or row fractions) written in the cells when there are at most 30 classes."""
    plt = pyplot()
    n = len(class_names)
    data = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    size = min(4 + 0.35 * n, 30)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(data, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), class_names, rotation=90 if n > 6 else 0, fontsize=max(4, 10 - n // 10))
    ax.set_yticks(range(n), class_names, fontsize=max(4, 10 - n // 10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix" + (" (normalised by true class)" if normalize else " (counts)"))
    if n <= 30:
        threshold = data.max() / 2
        for i in range(n):
            for j in range(n):
                text = f"{data[i, j]:.2f}" if normalize else str(int(data[i, j]))
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if data[i, j] > threshold else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_reliability(bins: list[dict], ece: float, path: Path) -> None:
    """Accuracy against confidence per bin, with the diagonal of perfect calibration."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    width = bins[0]["upper"] - bins[0]["lower"]
    filled = [b for b in bins if b["count"]]
    ax.bar([b["lower"] for b in filled], [b["accuracy"] for b in filled], width=width, align="edge",
           edgecolor="black", label="accuracy")
    ax.bar([b["lower"] for b in filled], [b["confidence"] - b["accuracy"] for b in filled], width=width,
           bottom=[b["accuracy"] for b in filled], align="edge", color="red", alpha=0.3, label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability diagram (ECE {ece:.4f}, {len(bins)} bins)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
