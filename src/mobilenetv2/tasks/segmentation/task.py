"""``SegmentationTask``: a class for every pixel; logits [N, C, H, W] out of the model, masks out of ``mask_predictions``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mobilenetv2.data import Data, DataConfig, Preprocessing
from mobilenetv2.data.segmentation.loaders import build_segmentation_data, build_segmentation_eval_loader
from mobilenetv2.data.segmentation.sources import segmentation_default_split, typical_side
from mobilenetv2.errors import UserError
from mobilenetv2.models import create_model
from mobilenetv2.tasks.base import Task
from mobilenetv2.tasks.classification.task import check_class_names
from mobilenetv2.tasks.segmentation.evaluator import SegmentationEvaluator
from mobilenetv2.tasks.segmentation.metrics import SegmentationMeter
from mobilenetv2.tasks.segmentation.prediction import SegmentationPrediction, mask_predictions

__all__ = ["SegmentationPrediction", "SegmentationTask", "mask_predictions", "resize_logits", "segmentation_preprocessing"]

IGNORE_INDEX = 255
AUX_WEIGHT = 0.4  # the auxiliary head's share of the loss (PSPNet's 0.4; torchvision's references use 0.5)
# Defaults for segmentation runs: the built-in digit scenes are small; photos train on 321 crops (DeepLab's
# smaller training crop; 513 is the evaluation size of PASCAL, too slow to train on a CPU).
DIGITS_DEFAULTS = {"input_size": 96, "augment": "light", "crop_pct": 1.0, "batch_size": 16, "warmup_epochs": 0.3}
PHOTO_DEFAULTS = {"input_size": 321, "augment": "paper", "crop_pct": 1.0, "batch_size": 8, "warmup_epochs": 1.0}
SMALL_SIDE = 160


class SegmentationLoss(nn.Module):
    """Per-pixel cross-entropy ignoring 255, plus ``AUX_WEIGHT`` x the auxiliary head's when the model has one."""

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.ce = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing)

    def forward(self, outputs: torch.Tensor | tuple[torch.Tensor, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, tuple):
            main, aux = outputs
            return self.ce(main, targets) + AUX_WEIGHT * self.ce(aux, targets)
        return self.ce(outputs, targets)


class SegmentationTask(Task):
    name = "segmentation"
    monitor = "val_miou"
    output_names = ["logits"]
    default_model = "deeplabv3_mobilenet_v2"
    default_schedule = "poly"  # DeepLab's (1 - t)^0.9
    labelled_quantize_check = False  # --calib is photos; --val MASKS gives fp32 vs int8 mIoU through our meter

    # -- data -----------------------------------------------------------------------------------------------------------
    def training_defaults(self, data: str, data_root: str | None) -> tuple[dict[str, Any], str]:
        if data == "digits":
            return dict(DIGITS_DEFAULTS), "defaults for the built-in digit scenes"
        side = typical_side(data, data_root)
        if side is not None and side <= SMALL_SIDE:
            return {**PHOTO_DEFAULTS, "input_size": 32 * -(-side // 32)}, f"defaults for small images ({side} px)"
        return dict(PHOTO_DEFAULTS), "defaults for segmentation of photos"

    def default_split(self, data: str, data_root: str | None) -> str:
        return segmentation_default_split(data, data_root)

    def build_data(self, cfg: DataConfig) -> Data:
        data = build_segmentation_data(cfg)
        data.preprocessing = segmentation_preprocessing(data.preprocessing)
        return data

    def eval_loader(self, data, preprocessing: Preprocessing, *, split, batch_size, workers, val_split, seed, data_root):
        return build_segmentation_eval_loader(data, segmentation_preprocessing(preprocessing), split=split,
                                              batch_size=batch_size, workers=workers, val_split=val_split, seed=seed,
                                              data_root=data_root)

    # -- model and loss -------------------------------------------------------------------------------------------------
    def build_model(self, name: str, num_classes: int, **kwargs: Any) -> nn.Module:
        model = create_model(name, num_classes=num_classes, **kwargs)
        if not hasattr(model, "decode"):
            raise UserError(f"{name} is not a segmentation model; use deeplabv3_mobilenet_v2 or lraspp_mobilenet_v2")
        return model

    def adapt_pretrained(self, model: nn.Module, name: str, num_classes: int, **kwargs: Any) -> nn.Module:
        """A segmentation checkpoint gets new classifiers if needed; a MobileNetV2 classifier lends its backbone."""
        if hasattr(model, "decode"):
            return super().adapt_pretrained(model, name, num_classes)
        source = model.arch["name"]
        if not source.startswith("mobilenet_v2"):
            raise UserError(f"--pretrained: a {source} classifier cannot be the backbone of {name} (it needs MobileNetV2 "
                            f"weights, e.g. the converted ImageNet checkpoint, or a segmentation checkpoint)")
        args = model.arch["args"]
        kwargs = {k: v for k, v in kwargs.items() if k != "dropout"}
        kwargs |= {k: args[k] for k in ("width_mult", "tf_padding", "bn_eps", "in_chans") if k in args}
        segmenter = self.build_model(name, num_classes, **kwargs)
        wanted = segmenter.features.state_dict()
        given = model.features.state_dict()
        missing = [k for k, v in wanted.items() if k not in given or given[k].shape != v.shape]
        if missing:
            raise UserError(f"--pretrained: the classifier's features do not fit {name}'s backbone ({len(missing)} "
                            f"tensors differ, first {missing[0]})")
        segmenter.features.load_state_dict({k: given[k] for k in wanted})
        return segmenter

    def criterion(self, data: Data, label_smoothing: float = 0.0, model: nn.Module | None = None) -> nn.Module:
        return SegmentationLoss(label_smoothing)

    def main_output(self, outputs: Any) -> torch.Tensor:
        return outputs[0] if isinstance(outputs, tuple) else outputs

    def eval_loss(self, outputs: torch.Tensor, targets: Any) -> float:
        """Mean per-pixel cross-entropy, each image's logits resized to its full-resolution mask."""
        if isinstance(targets, torch.Tensor) and targets.shape[-2:] == outputs.shape[-2:]:
            return _cross_entropy(outputs, targets)
        losses = [_cross_entropy(resize_logits(out[None], mask.shape[-2:]), mask[None]) for out, mask in zip(outputs, targets)]
        losses = [x for x in losses if np.isfinite(x)]
        return float(np.mean(losses)) if losses else 0.0

    # -- metrics --------------------------------------------------------------------------------------------------------
    def meter(self, architecture: dict[str, Any] | None = None) -> SegmentationMeter:
        return SegmentationMeter()

    def evaluator(self, preprocessing: Preprocessing, architecture: dict[str, Any] | None = None) -> SegmentationEvaluator:
        return SegmentationEvaluator(mean=preprocessing.mean, std=preprocessing.std)

    def check_classes(self, model_names: list[str] | None, num_outputs: int | None, data_names: list[str]) -> None:
        if model_names is not None:
            check_class_names(model_names, data_names)
        elif num_outputs is not None and num_outputs != len(data_names):
            raise UserError(f"the model has {num_outputs} classes but the dataset has {len(data_names)}")

    def compare_outputs(self, reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
        """Pixel agreement of the argmax, on pixels whose two best logits are not a numerical tie (< 1e-3 apart)."""
        top2 = np.sort(reference, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 1e-3
        same = reference.argmax(1) == other.argmax(1)
        return {"top1_agreement": float(same[clear].mean()) if clear.any() else 1.0,
                "pixel_agreement": float(same.mean()), "max_abs_diff": float(np.abs(reference - other).max())}


def segmentation_preprocessing(pre: Preprocessing) -> Preprocessing:
    """Segmentation sees the whole image: resized to input_size x input_size, never centre-cropped."""
    return replace(pre, resize_mode="squash", crop_pct=1.0)


def resize_logits(logits: torch.Tensor, size: Any) -> torch.Tensor:
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return F.cross_entropy(logits.float(), targets.long(), ignore_index=IGNORE_INDEX).item()
