"""The seam between the commands and a task: what ``train``, ``evaluate``, ``export`` and ``quantize`` ask of
classification, segmentation or detection. A new task is a new module implementing ``Task``, and a ``Presenter``
(tasks/present.py) for what ``predict`` and ``serve`` show of its predictions."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    from mobilenetv2.data import Data, DataConfig, Preprocessing


class Meter(Protocol):
    """Running figures of one pass (training or validation), reduced across processes by ``compute``."""

    def update(self, outputs: torch.Tensor, targets: torch.Tensor, loss: float) -> None: ...

    def compute(self, prefix: str, device: torch.device) -> dict[str, float]: ...


class Report(Protocol):
    """The full evaluation of a model on a dataset: ``write`` puts Markdown, JSON and PNGs in a folder."""

    info: dict[str, Any]

    def to_dict(self) -> dict[str, Any]: ...

    def to_markdown(self) -> str: ...

    def summary(self) -> str: ...

    def write(self, out_dir: Any) -> Any: ...


class Evaluator(Protocol):
    """Streams over a whole evaluation batch by batch, then gives the report (gathered across processes)."""

    def update(self, outputs: torch.Tensor, targets: Any, images: torch.Tensor | None = None) -> None: ...

    def finish(self, class_names: list[str], total: int, gather: bool = True) -> Report:
        """The report of everything seen; with ``gather`` (under torchrun) of every process's share."""
        ...


class Task(ABC):
    """One task: its data, model, loss and metrics (its predictions are shown by its ``Presenter``, tasks/present.py)."""

    name: ClassVar[str]
    monitor: ClassVar[str]  # the validation figure (higher is better) that picks the best checkpoint
    output_names: ClassVar[list[str]]  # names of the model's outputs in exported graphs
    default_model: ClassVar[str]  # what `train --task NAME` builds without --model
    default_schedule: ClassVar[str] = "cosine"  # the lr schedule without --schedule
    # optimizer, lr and label smoothing when the user leaves them unset
    optimizer_defaults: ClassVar[dict[str, Any]] = {"optimizer": "sgd", "lr": 0.05, "label_smoothing": 0.1}
    # quantize measures top-1 on labelled --val or --calib; False: --calib is photos only, --val goes through the
    # task's eval_loader and meter (segmentation's mIoU)
    labelled_quantize_check: ClassVar[bool] = True
    # int8 keeps what follows the last convolutions in float (detection: box decoding and the boxes + logits concat,
    # whose one shared scale would crush the logits)
    float_output_tail: ClassVar[bool] = False

    # -- data ---------------------------------------------------------------------------------------------------------
    @abstractmethod
    def build_data(self, cfg: DataConfig) -> Data:
        """Training and validation loaders, class names and preprocessing for a training run."""

    @abstractmethod
    def eval_loader(self, data: str, preprocessing: Preprocessing, *, split: str, batch_size: int,
                    workers: int | None, val_split: float, seed: int, data_root: str | None) -> tuple[DataLoader, list[str]]:
        """A deterministic loader over one split of ``data`` and the dataset's class names."""

    def training_defaults(self, data: str, data_root: str | None) -> tuple[dict[str, Any], str] | None:
        """Input size, augmentation, crop, batch size and warm-up for ``data`` and why; None: the general rule."""
        return None

    def default_split(self, data: str, data_root: str | None) -> str:
        """The split ``evaluate`` uses without ``--split``: "val" when the data has its own validation images."""
        from mobilenetv2.data.datasets import default_eval_split

        return default_eval_split(data, data_root)

    # -- model and loss -----------------------------------------------------------------------------------------------
    @abstractmethod
    def build_model(self, name: str, num_classes: int, **kwargs: Any) -> nn.Module:
        """A fresh model of this task for ``num_classes`` classes."""

    def adapt_pretrained(self, model: nn.Module, name: str, num_classes: int, **kwargs: Any) -> nn.Module:
        """A pretrained model made ready to fine-tune as ``name`` on ``num_classes`` classes (default: a new head)."""
        if model.num_classes != num_classes:
            model.reset_classifier(num_classes)
        return model

    @abstractmethod
    def criterion(self, data: Data, label_smoothing: float = 0.0, model: nn.Module | None = None) -> nn.Module:
        """The training loss (of ``model``: e.g. a detector's own anchors)."""

    def main_output(self, outputs: Any) -> torch.Tensor:
        """The outputs that metrics read, when the training forward returns more (e.g. auxiliary logits)."""
        return outputs

    @abstractmethod
    def eval_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        """The plain validation loss of a batch (mean), comparable across runs."""

    # -- metrics ------------------------------------------------------------------------------------------------------
    @abstractmethod
    def meter(self, architecture: dict[str, Any] | None = None) -> Meter:
        """A fresh running meter for one pass over the data (of a model of ``architecture``, e.g. its score converter)."""

    @abstractmethod
    def evaluator(self, preprocessing: Preprocessing, architecture: dict[str, Any] | None = None) -> Evaluator:
        """A fresh evaluator for a model of ``architecture``: feed it every batch, then ``finish`` gives the report."""

    @abstractmethod
    def check_classes(self, model_names: list[str] | None, num_outputs: int | None, data_names: list[str]) -> None:
        """Raise one line when a model's classes cannot be evaluated on a dataset's."""

    # -- comparing runtimes -------------------------------------------------------------------------------------------
    def class_scores(self, outputs: np.ndarray) -> tuple[np.ndarray, str]:
        """The outputs as class scores with the classes on axis 1, and what one argmax is: "images" for [N, C],
        "pixels" for [N, C, H, W] (quantize counts how often int8 and fp32 agree on it)."""
        return outputs, "pixels" if outputs.ndim > 2 else "images"

    @abstractmethod
    def compare_outputs(self, reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
        """How far another runtime's outputs are from PyTorch's (agreement and largest difference)."""
