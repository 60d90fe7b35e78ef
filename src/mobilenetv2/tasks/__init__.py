"""Tasks behind one seam: ``get_task(checkpoint.meta.task)`` gives the data, model, loss and metrics; each task's
``Presenter`` (``tasks/<task>/present.py``) shows its predictions."""

from __future__ import annotations

import importlib

from mobilenetv2.errors import UserError
from mobilenetv2.tasks.base import Evaluator, Meter, Report, Task
from mobilenetv2.tasks.present import Presenter

# Task name -> "module:Class", imported on first use so that one task's dependencies never load for another.
_TASKS: dict[str, str] = {"classification": "mobilenetv2.tasks.classification:ClassificationTask",
                          "segmentation": "mobilenetv2.tasks.segmentation.task:SegmentationTask",
                          "detection": "mobilenetv2.tasks.detection.task:DetectionTask"}
_INSTANCES: dict[str, Task] = {}


def register_task(name: str, target: str) -> None:
    """Make ``get_task(name)`` build ``target`` ("package.module:ClassName")."""
    _TASKS[name] = target
    _INSTANCES.pop(name, None)


def list_tasks() -> list[str]:
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    """The task called ``name`` (as recorded in checkpoints and ``train --task``)."""
    if name not in _TASKS:
        raise UserError(f"unknown task {name!r}; this version of mobilenetv2 has: {', '.join(list_tasks())}")
    if name not in _INSTANCES:
        module, cls = _TASKS[name].split(":")
        _INSTANCES[name] = getattr(importlib.import_module(module), cls)()
    return _INSTANCES[name]


__all__ = ["Evaluator", "Meter", "Presenter", "Report", "Task", "get_task", "list_tasks", "register_task"]
