"""``CheckpointMeta``: what a model file says about its model besides the tensors, read and checked without torch
(exported files carry it too; ``formats`` reads it before any engine or torch loads)."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mobilenetv2.errors import UserError, first_line
from mobilenetv2.spec import Preprocessing

if TYPE_CHECKING:
    from torch import nn

FORMAT = "mobilenetv2-checkpoint"
FORMAT_VERSION = 1
METADATA_KEY = "mobilenetv2"
# Names tried, in order, when load_model is given a folder (a training run's folder, say).
CHECKPOINT_NAMES = ("best.safetensors", "model.safetensors", "last.safetensors")
# What a checkpoint can say it is; each has a module under mobilenetv2.tasks that knows how to train and run it.
TASK_NAMES = ("classification", "segmentation", "detection")
MAX_METADATA_BYTES = 1 << 20  # class names of 100k classes fit; a larger JSON is not ours
# The evaluation preprocessing each source's ImageNet weights were measured with (timm's pretrained_cfg: bicubic).
FOREIGN_PREPROCESSING = {"timm_mobilenetv2": Preprocessing(interpolation="bicubic", crop_pct=0.875)}


@dataclass(frozen=True)
class CheckpointMeta:
    """Everything a model file says about its model besides the tensors: architecture, task, classes, preprocessing."""

    architecture: dict[str, Any]
    task: str = "classification"
    class_names: list[str] | None = None
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int | None:
        return self.architecture.get("args", {}).get("num_classes")

    @property
    def input_size(self) -> int:
        return self.preprocessing.input_size

    def replace(self, **changes: Any) -> CheckpointMeta:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "task": self.task, "architecture": self.architecture,
                "class_names": self.class_names, "preprocessing": self.preprocessing.to_dict(),
                "metrics": self.metrics, "extra": self.extra}

    @classmethod
    def for_model(cls, model: nn.Module, **fields: Any) -> CheckpointMeta:
        """The metadata of ``model`` (its ``arch``) with the given fields; None values take the defaults."""
        fields = {k: v for k, v in fields.items() if v is not None}
        if "class_names" in fields:
            fields["class_names"] = list(fields["class_names"])
        meta = cls(architecture=copy.deepcopy(model.arch), **fields)
        meta.check_class_names()
        return meta

    @classmethod
    def from_dict(cls, data: Any, source: str = "checkpoint") -> CheckpointMeta:
        """Validate a stored metadata document; anything malformed is one line naming ``source`` and the field."""
        if not isinstance(data, dict):
            raise UserError(f"{source}: the metadata is not a JSON object")
        if data.get("format") != FORMAT:
            raise UserError(f"{source}: not a {FORMAT} file (format {_short(data.get('format'))})")
        version = data.get("format_version", 1)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise UserError(f"{source}: format version {_short(version)} is newer than this mobilenetv2 reads "
                            f"({FORMAT_VERSION}); upgrade mobilenetv2")
        arch = data.get("architecture")
        if not (isinstance(arch, dict) and isinstance(arch.get("name"), str) and isinstance(arch.get("args", {}), dict)):
            raise UserError(f"{source}: 'architecture' must be an object with a 'name' string and an 'args' object")
        task = data.get("task", "classification")
        if task not in TASK_NAMES:
            raise UserError(f"{source}: unknown task {_short(task)}; known: {', '.join(TASK_NAMES)}")
        names = data.get("class_names")
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise UserError(f"{source}: 'class_names' must be a list of strings")
        meta = cls(architecture={"name": arch["name"], "args": dict(arch.get("args", {}))}, task=task,
                   class_names=names, preprocessing=_preprocessing(data.get("preprocessing"), source),
                   metrics=_object(data, "metrics", source), extra=_object(data, "extra", source))
        meta.check_class_names(source)
        return meta

    def check_class_names(self, source: str = "checkpoint") -> None:
        if self.class_names is not None and self.num_classes is not None and len(self.class_names) != self.num_classes:
            raise UserError(f"{source}: {len(self.class_names)} class names for a model with {self.num_classes} outputs")


def _preprocessing(data: Any, source: str) -> Preprocessing:
    if data is None:
        return Preprocessing()
    if not isinstance(data, dict):
        raise UserError(f"{source}: 'preprocessing' must be an object")
    try:
        return Preprocessing.from_dict(data)
    except UserError as exc:
        raise UserError(f"{source}: preprocessing: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise UserError(f"{source}: malformed preprocessing ({first_line(exc, 160)})") from exc


def _object(data: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise UserError(f"{source}: {key!r} must be an object")
    return value


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
