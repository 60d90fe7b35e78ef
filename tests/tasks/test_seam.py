"""The task seam: checkpoints record their task, commands dispatch on it, unknown tasks are one line."""

from __future__ import annotations

import json

import pytest
import torch

from mobilenetv2.data import Preprocessing
from mobilenetv2.errors import UserError
from mobilenetv2.models import create_model
from mobilenetv2.tasks import Task, get_task, list_tasks, register_task
from mobilenetv2.tasks.classification.task import top_k_predictions
from mobilenetv2.weights import load_checkpoint, save_checkpoint
from mobilenetv2.weights.checkpoint import METADATA_KEY


def test_classification_is_the_first_task():
    task = get_task("classification")
    assert isinstance(task, Task) and task.name == "classification" and "classification" in list_tasks()
    logits = torch.tensor([[0.0, 3.0, 1.0]])
    (prediction,) = top_k_predictions(logits, ["a", "b", "c"], top_k=2)
    assert prediction.labels == ["b", "c"] and prediction.probabilities[0] > prediction.probabilities[1]
    assert task.compare_outputs(logits.numpy(), logits.numpy())["top1_agreement"] == 1.0


def test_unknown_task_is_one_line():
    with pytest.raises(UserError, match="unknown task 'regression'; this version of mobilenetv2 has: classification, "
                                        "detection, segmentation"):
        get_task("regression")


def test_checkpoint_records_its_task(tmp_path):
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=2)
    path = save_checkpoint(tmp_path / "m.safetensors", model, ["a", "b"], Preprocessing(input_size=64))
    ckpt = load_checkpoint(path)
    assert ckpt.task == "classification" and ckpt.meta.input_size == 64 and not hasattr(ckpt.model, "class_names")
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        assert json.loads(f.metadata()[METADATA_KEY])["task"] == "classification"


def test_a_new_task_is_a_new_module(monkeypatch):
    """register_task points a name at a class; nothing else in the tree changes."""
    from mobilenetv2.tasks import _INSTANCES, _TASKS

    monkeypatch.setattr("mobilenetv2.tasks._TASKS", dict(_TASKS))
    monkeypatch.setattr("mobilenetv2.tasks._INSTANCES", dict(_INSTANCES))
    register_task("toy", "mobilenetv2.tasks.classification:ClassificationTask")
    assert "toy" in list_tasks() and get_task("toy").monitor == "val_acc"
