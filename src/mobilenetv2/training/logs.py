"""Run logs: metrics.csv, TensorBoard and a PNG of the learning curves (the last two skipped without their extras)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from mobilenetv2.extras import optional
from mobilenetv2.io import atomic_path, atomic_write_text
from mobilenetv2.reporting import pyplot


def write_metrics_csv(path: Path, history: list[dict]) -> None:
    """One row per epoch, columns in first-seen order."""
    columns = list(dict.fromkeys(k for row in history for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buf.getvalue())


def plot_curves(path: Path, history: list[dict], monitor: str = "val_acc") -> bool:
    """Loss (train, val) and the task's validation figure (``monitor``) per epoch, side by side; False (and one log
    line) without matplotlib."""
    if not optional("matplotlib", "plots", f"the learning curves ({Path(path).name})"):
        return False
    plt = pyplot()
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [row["train_loss"] for row in history], label="train")
    ax_loss.plot(epochs, [row["val_loss"] for row in history], label="val")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [100 * row[monitor] for row in history], color="tab:green")
    label = {"val_acc": "top-1", "val_miou": "mIoU", "val_map": "mAP@[.5:.95]"}.get(monitor, monitor)
    ax_acc.set(xlabel="epoch", ylabel=f"{label} (%)", title=f"validation {label}")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return True


class TensorBoard:
    """Scalars per epoch under run_dir/tb; does nothing (after one log line) without the tensorboard package."""

    def __init__(self, log_dir: Path):
        self.writer = None
        if optional("tensorboard", "tensorboard", f"TensorBoard logs ({Path(log_dir).name}/)"):
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(log_dir))

    def log(self, epoch: int, metrics: dict) -> None:
        if self.writer is None:
            return
        for key, value in metrics.items():
            if key != "epoch" and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, epoch)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
