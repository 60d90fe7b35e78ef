"""``DetectionTask``: boxes, classes and scores (torchvision's conventions: xyxy pixels, class 0 the background)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from mobilenetv2.data import Data, DataConfig, Preprocessing
from mobilenetv2.errors import UserError
from mobilenetv2.models import create_model
from mobilenetv2.tasks.base import Task
from mobilenetv2.tasks.classification.task import check_class_names
from mobilenetv2.tasks.detection.evaluator import DetectionEvaluator
from mobilenetv2.tasks.detection.loss import SSDLoss
from mobilenetv2.tasks.detection.metrics import DetectionMeter
from mobilenetv2.tasks.detection.prediction import DetectionPrediction

__all__ = ["DetectionPrediction", "DetectionTask", "detection_preprocessing", "score_converter_of"]

# The built-in digit canvases are 128 px; photos train at 320 (SSDLite's 300 rounded to a multiple of 32).
DIGITS_DEFAULTS = {"input_size": 128, "augment": "light", "crop_pct": 1.0, "batch_size": 16, "warmup_epochs": 0.5}
PHOTO_DEFAULTS = {"input_size": 320, "augment": "paper", "crop_pct": 1.0, "batch_size": 16, "warmup_epochs": 1.0}


class DetectionTask(Task):
    name = "detection"
    monitor = "val_map"
    output_names = ["boxes_and_logits"]  # [N, anchors, 4 + C]: boxes (xyxy, normalised to the input), class logits
    default_model = "ssdlite_mobilenet_v2"
    # SGD at 0.05 learns SSD from scratch 4x slower in a short run (digits, 12 epochs: mAP 4.3% vs 16.7%); label
    # smoothing would blur the background/object split that hard-negative mining relies on
    optimizer_defaults = {"optimizer": "adamw", "lr": 0.008, "label_smoothing": 0.0}
    labelled_quantize_check = False  # --calib is photos; --val gives fp32 vs int8 mAP through our meter
    float_output_tail = True  # int8 files decode and join boxes and logits in float (see formats/onnx.py)

    # -- data -------------------------------------------------------------------------------------------------------------
    def training_defaults(self, data: str, data_root: str | None) -> tuple[dict[str, Any], str]:
        if data == "digits":
            return dict(DIGITS_DEFAULTS), "defaults for the built-in digit canvases"
        return dict(PHOTO_DEFAULTS), "defaults for detection in photos"

    def default_split(self, data: str, data_root: str | None) -> str:
        from mobilenetv2.data.detection.sources import detection_default_split

        return detection_default_split(data, data_root)

    def build_data(self, cfg: DataConfig) -> Data:
        from mobilenetv2.data.detection.loaders import build_detection_data

        data = build_detection_data(cfg)
        data.preprocessing = detection_preprocessing(data.preprocessing, cfg.tile, cfg.tile_overlap)
        return data

    def eval_loader(self, data, preprocessing: Preprocessing, *, split, batch_size, workers, val_split, seed, data_root):
        from mobilenetv2.data.detection.loaders import build_detection_eval_loader

        pre = detection_preprocessing(preprocessing, preprocessing.tile, preprocessing.tile_overlap)
        return build_detection_eval_loader(data, pre, split=split, batch_size=batch_size, workers=workers,
                                           val_split=val_split, seed=seed, data_root=data_root, tile=pre.tile,
                                           tile_overlap=pre.tile_overlap)

    # -- model and loss -----------------------------------------------------------------------------------------------------
    def build_model(self, name: str, num_classes: int, **kwargs: Any) -> nn.Module:
        kwargs = {k: v for k, v in kwargs.items() if k != "dropout"}
        model = create_model(name, num_classes=num_classes, **kwargs)
        if not hasattr(model, "extras"):
            raise UserError(f"{name} is not a detection model; use ssdlite_mobilenet_v2 (or ssdlite_mobilenet_v1, "
                            f"ssdlite_mobilenet_v3_large)")
        return model

    def adapt_pretrained(self, model: nn.Module, name: str, num_classes: int, **kwargs: Any) -> nn.Module:
        """A detection checkpoint gets new class predictors if needed; a classifier lends its backbone."""
        if hasattr(model, "extras"):
            if getattr(model, "score_converter", "softmax") != "softmax":  # e.g. TF's: our loss trains softmax scores
                model.use_score_converter("softmax")
            return super().adapt_pretrained(model, name, num_classes)
        source = model.arch["name"]
        kwargs = {k: v for k, v in kwargs.items() if k != "dropout"}
        args = model.arch["args"]
        kwargs |= {k: args[k] for k in ("width_mult", "tf_padding", "in_chans") if k in args}
        detector = self.build_model(name, num_classes, **kwargs)
        wanted, given = detector.features.state_dict(), model.features.state_dict()
        missing = [k for k, v in wanted.items() if k not in given or given[k].shape != v.shape]
        if missing:
            raise UserError(f"--pretrained: the {source} classifier's features do not fit {name}'s backbone "
                            f"({len(missing)} tensors differ, first {missing[0]}); use a classifier of the same family")
        detector.features.load_state_dict({k: given[k] for k in wanted})
        return detector

    def criterion(self, data: Data, label_smoothing: float = 0.0, model: nn.Module | None = None) -> nn.Module:
        """SSD's loss on ``model``'s own anchors (an imported model's recorded ``anchor_specs``), as eval_loss's."""
        specs = ((getattr(model, "arch", None) or {}).get("args") or {}).get("anchor_specs")
        self._eval_loss = SSDLoss(anchor_specs=specs)
        return SSDLoss(label_smoothing, anchor_specs=specs)

    def main_output(self, outputs: Any) -> None:
        return None  # training outputs are box codes before decoding: the training pass measures its loss only

    def eval_loss(self, outputs: torch.Tensor, targets: Any) -> float:
        """SSD's loss on evaluation outputs (the decoded boxes coded again against the anchors)."""
        if not hasattr(self, "_eval_loss"):  # one loss for every batch: its anchors are computed once
            self._eval_loss = SSDLoss()
        loss = self._eval_loss
        anchors = loss.anchors(outputs.shape[1], outputs.device)
        boxes = outputs[..., :4].reshape(-1, 4).clone()
        boxes[:, 2:] = torch.maximum(boxes[:, 2:], boxes[:, :2] + 1e-4)  # a quantized runtime may flip a tiny box
        codes = loss.coder.encode_single(boxes, anchors.repeat(outputs.shape[0], 1))
        with torch.no_grad():
            return float(loss(torch.cat([codes.view(outputs.shape[0], -1, 4), outputs[..., 4:]], dim=-1), targets))

    # -- metrics --------------------------------------------------------------------------------------------------------------
    def meter(self, architecture: dict[str, Any] | None = None) -> DetectionMeter:
        return DetectionMeter(score_converter_of(architecture))

    def evaluator(self, preprocessing: Preprocessing, architecture: dict[str, Any] | None = None) -> DetectionEvaluator:
        return DetectionEvaluator(mean=preprocessing.mean, std=preprocessing.std,
                                  score_converter=score_converter_of(architecture))

    def check_classes(self, model_names: list[str] | None, num_outputs: int | None, data_names: list[str]) -> None:
        if model_names is not None:
            check_class_names(model_names, data_names)
        elif num_outputs is not None and num_outputs != len(data_names):
            raise UserError(f"the model has {num_outputs} classes (with the background) but the dataset has {len(data_names)}")

    def class_scores(self, outputs: np.ndarray) -> tuple[np.ndarray, str]:
        return np.moveaxis(outputs[..., 4:], -1, 1), "anchors"

    def compare_outputs(self, reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
        """How far another runtime's boxes and scores are from PyTorch's: the largest box difference (fraction of the
        input) and class-probability difference, and the share of anchors whose best class agrees (ties left out)."""
        ref, oth = torch.from_numpy(reference).float(), torch.from_numpy(other).float()
        ref_p, oth_p = ref[..., 4:].softmax(-1), oth[..., 4:].softmax(-1)
        top2 = ref_p.topk(2, dim=-1).values
        clear = (top2[..., 0] - top2[..., 1]) > 1e-3
        same = ref_p.argmax(-1) == oth_p.argmax(-1)
        return {"top1_agreement": float(same[clear].float().mean()) if clear.any() else 1.0,
                "max_box_diff": float((ref[..., :4] - oth[..., :4]).abs().max()),
                "max_score_diff": float((ref_p - oth_p).abs().max()),
                "max_abs_diff": float((ref - oth).abs().max())}


def score_converter_of(architecture: dict[str, Any] | None) -> str:
    """How the model's logits become scores, as its architecture says: "softmax" (ours) or "sigmoid" (TF's)."""
    return ((architecture or {}).get("args") or {}).get("score_converter", "softmax")


def detection_preprocessing(pre: Preprocessing, tile: int | None, tile_overlap: float) -> Preprocessing:
    """Detection squashes each image (or tile) to input_size x input_size, as TF's fixed_shape_resizer."""
    return replace(pre, resize_mode="squash", crop_pct=1.0, tile=tile, tile_overlap=tile_overlap)
