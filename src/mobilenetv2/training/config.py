"""``TrainConfig``: every training option, as a dataclass, a YAML file and ``mobilenetv2 train`` flags."""

from __future__ import annotations

import difflib
import os
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mobilenetv2.errors import UserError

OPTIMIZERS = ["sgd", "rmsprop", "adamw"]
SCHEDULES = ["cosine", "poly", "step", "exponential", "constant"]
AMP_MODES = ["none", "bf16", "fp16"]
AUGMENTS = ["paper", "light", "randaugment", "trivialaugment", "none"]
BALANCE_MODES = ["none", "sampler", "weights"]
RECIPES = ["paper"]
FREEZE_CHOICES = ["all", "stem", *(f"stage{i}" for i in range(1, 8)), "head_conv"]

# The paper (section 6.1): RMSProp, decay and momentum 0.9, weight decay 4e-5, lr 0.045 decayed x0.98 per epoch.
PAPER_RECIPE: dict[str, Any] = {
    "optimizer": "rmsprop", "lr": 0.045, "momentum": 0.9, "alpha": 0.9, "eps": 1e-3, "weight_decay": 4e-5,
    "schedule": "exponential", "gamma": 0.98, "warmup_epochs": 0.0,
}


def _opt(default: Any, help: str) -> Any:  # noqa: A002 - mirrors argparse's keyword
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """All options of a training run; each field is a flag ``--field-name`` and a YAML key ``field_name``."""

    task: str = _opt("classification", "what the model learns (recorded in its checkpoints): classification, "
                                       "segmentation (a class per pixel; data: images/ + masks/, PASCAL VOC, ...) or "
                                       "detection (boxes; data: Pascal VOC XML, COCO JSON or a CSV of boxes)")
    # data (mobilenetv2.data.DataConfig)
    data: str = _opt("digits", "built-in 'digits' (for segmentation: digit scenes with exact masks), an image folder, a "
                               "CSV of path,label, or a torchvision dataset name; for segmentation a folder of images/ + "
                               "masks/, a PASCAL VOC root, VOCSegmentation or OxfordIIITPet; for detection images with "
                               "Pascal VOC .xml beside them, a VOC root, a COCO .json or a CSV of path,xmin,ymin,xmax,ymax,"
                               "label (the built-in 'digits': digits on canvases with exact boxes)")
    data_root: str | None = _opt(None, "where torchvision datasets live / CSV-relative paths resolve")
    val_split: float = _opt(0.2, "fraction held out for validation when there is no val/ folder")
    seed: int = _opt(0, "random seed (model init, data order, augmentation)")
    input_size: int | None = _opt(None, "input resolution (default: chosen from the data: 32 for the "
                                               "built-in digits, ~2x the size of small images, 224 for photos)")
    augment: str | None = _opt(None, f"training augmentation: {', '.join(AUGMENTS)} (default: chosen from "
                                  "the data: light for digits and small images, paper for photos)")
    crop_pct: float | None = _opt(None, "evaluation centre-crop ratio (default: chosen from the data: 1.0 for digits and small "
                                        "images, 0.875 for photos)")
    interpolation: str = _opt("bilinear", "resize interpolation: bilinear, bicubic, nearest")
    batch_size: int | None = _opt(None, "batch size per process (default: chosen from the data: 32 for small "
                                         "images at an input above 32 px, 64 otherwise)")
    workers: int | None = _opt(None, "data loader workers (default: automatic)")
    balance: str = _opt("none", f"class imbalance: {', '.join(BALANCE_MODES)}")
    mixup: float = _opt(0.0, "mixup alpha (0: off)")
    cutmix: float = _opt(0.0, "cutmix alpha (0: off)")
    download: bool = _opt(False, "download torchvision datasets when online")
    train_on_val: bool = _opt(False, "also train on the validation images (a final model once the options are chosen; "
                                     "validation metrics then no longer measure generalisation)")
    tile: int | None = _opt(None, "detection: cut images larger than TILE pixels into TILE x TILE tiles for training and "
                                  "evaluation (small objects in large photos); detections are merged across tiles by NMS")
    tile_overlap: float = _opt(0.25, "detection: fraction of a tile shared with its neighbour (0 to 0.9)")
    # model
    model: str | None = _opt(None, "model name (see `mobilenetv2 info --list`; default: the task's, mobilenet_v2 for "
                                   "classification, deeplabv3_mobilenet_v2 for segmentation, ssdlite_mobilenet_v2 for "
                                   "detection)")
    width_mult: float | None = _opt(None, "width multiplier (default: the model's, 1.0 for mobilenet_v2)")
    dropout: float | None = _opt(None, "dropout before the classifier (default: the model's, 0.2)")
    bn_momentum: float | None = _opt(None, "BatchNorm momentum of every layer (default: the model's: 0.1, 0.01 for "
                                           "V3 as in torchvision; 0.1 makes short runs from scratch evaluate well)")
    pretrained: str | None = _opt(None, "start from weights: torchvision, timm, or a checkpoint/state-dict PATH")
    freeze: str | None = _opt(None, "keep frozen (weights and BatchNorm statistics): 'all' (the whole backbone) or "
                                    "a stage name, freezing the stem up to that stage")
    head_epochs: int = _opt(0, "first train only the classifier for N epochs (of --epochs), then the whole model")
    backbone_lr_mult: float = _opt(1.0, "learning-rate multiplier of the backbone (e.g. 0.1 when fine-tuning)")
    layer_decay: float = _opt(1.0, "layer-wise lr decay: each stage further from the head gets lr x this (1: off)")
    # optimisation
    recipe: str | None = _opt(None, "'paper': RMSprop lr 0.045, momentum 0.9, alpha 0.9, wd 4e-5, lr x0.98 per epoch")
    epochs: int = _opt(12, "number of epochs")
    optimizer: str | None = _opt(None, f"optimizer: {', '.join(OPTIMIZERS)} (default: the task's, sgd; adamw for "
                                       "detection)")
    lr: float | None = _opt(None, "peak learning rate for batch size --batch-size per process (default: the task's, "
                                  "0.05; 0.008 for detection with adamw)")
    momentum: float = _opt(0.9, "momentum (SGD, RMSprop)")
    nesterov: bool = _opt(True, "Nesterov momentum (SGD)")
    alpha: float = _opt(0.9, "RMSprop decay of the squared-gradient average")
    eps: float | None = _opt(None, "epsilon (default: 1e-3 for RMSprop, TensorFlow-like; 1e-8 for AdamW)")
    weight_decay: float = _opt(4e-5, "weight decay (not applied to biases and BatchNorm)")
    schedule: str | None = _opt(None, f"lr schedule after warm-up: {', '.join(SCHEDULES)} (default: the task's, cosine "
                                       "for classification, poly (1 - t)^0.9 for segmentation as in DeepLab)")
    warmup_epochs: float | None = _opt(None, "linear warm-up epochs, fractions allowed (default: chosen from the "
                                             "data: 0.3 for small images at an input above 32 px, 1 otherwise)")
    gamma: float = _opt(0.98, "lr factor per epoch (exponential) or per --step-epochs (step)")
    step_epochs: int = _opt(30, "epochs between lr drops (step schedule)")
    label_smoothing: float | None = _opt(None, "label smoothing of the cross-entropy loss (default: the task's, 0.1; 0 "
                                               "for detection)")
    ema: float = _opt(0.0, "exponential moving average of the weights, decay per step (e.g. 0.999; 0: off)")
    amp: str = _opt("none", f"mixed precision: {', '.join(AMP_MODES)} (bf16 on CPU or CUDA, fp16 on CUDA)")
    channels_last: bool = _opt(False, "channels-last memory format")
    clip_grad: float = _opt(0.0, "clip the gradient norm to this value (0: off)")
    early_stop: int = _opt(0, "stop after N epochs without a better val accuracy (0: off)")
    qat: bool = _opt(False, "quantization-aware training (fake-quantised weights and activations)")
    sync_bn: bool = _opt(False, "SyncBatchNorm across processes (CUDA, under torchrun)")
    limit_batches: int = _opt(0, "at most N training batches per epoch (0: all; quick experiments)")
    # run
    device: str = _opt("auto", "auto (cuda if available), cpu, cuda, cuda:N")
    deterministic: bool = _opt(False, "deterministic algorithms (torch.use_deterministic_algorithms)")
    out: str | None = _opt(None, "run folder (default runs/<data>-<timestamp>)")
    resume: str | None = _opt(None, "continue the interrupted run in this folder")
    progress: bool = _opt(True, "progress bar (shown only when stderr is a terminal)")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """One clear UserError for the first value outside what is allowed."""
        from mobilenetv2.tasks import list_tasks

        _choice("task", self.task, list_tasks())
        if None in (self.model, self.schedule, self.optimizer, self.lr, self.label_smoothing):
            from mobilenetv2.tasks import get_task

            task = get_task(self.task)
            self.model = self.model or task.default_model
            self.schedule = self.schedule or task.default_schedule
            for name, value in task.optimizer_defaults.items():
                if getattr(self, name) is None:
                    setattr(self, name, value)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("amp", self.amp, AMP_MODES)
        _choice("balance", self.balance, BALANCE_MODES)
        if self.augment is not None:
            _choice("augment", self.augment, AUGMENTS)
        if self.recipe is not None:
            _choice("recipe", self.recipe, RECIPES)
        if self.freeze is not None:
            _choice("freeze", self.freeze, FREEZE_CHOICES)
        for name in ("lr", "epochs", "step_epochs", "gamma", "backbone_lr_mult", "layer_decay"):
            _positive(name, getattr(self, name))
        if self.batch_size is not None:
            _positive("batch_size", self.batch_size)
        if self.warmup_epochs is not None:
            _non_negative("warmup_epochs", self.warmup_epochs)
        for name in ("width_mult", "eps"):
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        for name in ("weight_decay", "momentum", "clip_grad", "mixup", "cutmix", "head_epochs",
                     "early_stop", "limit_batches"):
            _non_negative(name, getattr(self, name))
        for name in ("label_smoothing", "ema", "alpha"):
            if not 0 <= getattr(self, name) < 1:
                raise UserError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not 0 < self.val_split < 1:
            raise UserError(f"val_split must be in (0, 1), got {self.val_split!r}")
        if self.tile is not None and self.tile < 32:
            raise UserError(f"tile must be an integer >= 32 (pixels), got {self.tile!r}")
        if not 0 <= self.tile_overlap <= 0.9:
            raise UserError(f"tile_overlap must be in [0, 0.9], got {self.tile_overlap!r}")
        if self.bn_momentum is not None and not 0 < self.bn_momentum <= 1:
            raise UserError(f"bn_momentum must be in (0, 1], got {self.bn_momentum!r}")
        if self.input_size is not None and self.input_size < 32:
            raise UserError(f"input_size must be an integer >= 32, got {self.input_size!r}")
        if self.head_epochs and self.head_epochs >= self.epochs:
            raise UserError(f"head_epochs ({self.head_epochs}) must be smaller than epochs ({self.epochs})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a mapping (YAML); unknown keys or values of the wrong type give one clear error."""
        names = [f.name for f in fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            close = difflib.get_close_matches(unknown[0], names, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UserError(f"unknown training option {unknown[0]!r}{hint}; see `mobilenetv2 train --help`")
        values = dict(PAPER_RECIPE) if data.get("recipe") == "paper" else {}
        values.update(data)
        hints = typing.get_type_hints(cls)
        return cls(**{k: coerce(k, v, hints[k]) for k, v in values.items()})

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> TrainConfig:
        return cls.from_dict(read_yaml(path))

    def to_yaml(self, path: str | os.PathLike[str]) -> None:
        import yaml

        from mobilenetv2.io import atomic_write_text

        atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


def load_yaml(path: str | os.PathLike[str], what: str = "config file") -> Any:
    """The YAML document in ``path`` (None when empty); a missing file or bad YAML is one clear error about ``what``."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} {str(p)!r} does not exist")
    try:
        return yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{what} {str(p)!r} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from exc


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML mapping from ``path``; a missing file or bad YAML is one clear error."""
    p = Path(path)
    data = load_yaml(p)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{p} must hold a mapping of option: value, got a {type(data).__name__}")
    return data


TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def field_types(tp: Any) -> tuple[type, bool]:
    """(base type, optional) of a field annotation such as ``int | None``."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def coerce(name: str, value: Any, tp: Any) -> Any:
    """``value`` as the field's type; YAML ints for float fields are fine, strings for numbers are not."""
    base, optional = field_types(tp)
    if value is None and optional:
        return None
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is bool and isinstance(value, bool):
        return value
    if base is float and is_number:
        return float(value)
    if base is int and is_number and isinstance(value, int):
        return value
    if base is str and (is_number or isinstance(value, str)):
        return str(value)
    raise UserError(f"{name} must be {TYPE_WORDS[base]}, got {'null' if value is None else repr(value)}")


def _choice(name: str, value: Any, allowed: list[str]) -> None:
    if value not in allowed:
        raise UserError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise UserError(f"{name} must be > 0, got {value!r}")


def _non_negative(name: str, value: float) -> None:
    if not value >= 0:
        raise UserError(f"{name} must be >= 0, got {value!r}")
