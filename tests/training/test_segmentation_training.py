"""Training segmentation models: from scratch, from a classifier's backbone, from a segmentation checkpoint, and
every training feature of classification (resume after SIGKILL, AMP, EMA, auxiliary loss, early stop, logs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mobilenetv2.cli import main
from mobilenetv2.data import Preprocessing
from mobilenetv2.errors import UserError
from mobilenetv2.models import create_model
from mobilenetv2.training import TrainConfig, train
from mobilenetv2.weights import load_checkpoint, save_checkpoint

CLASSES = ["background", "square", "disc"]  # as tests/conftest.py writes them
OPTIONS = dict(task="segmentation", width_mult=0.35, input_size=32, augment="none", batch_size=4, epochs=3, workers=0,
               device="cpu", lr=0.05, warmup_epochs=0.5, deterministic=True, seed=3)


@pytest.fixture(scope="module")
def shapes(shapes_folder) -> Path:
    return shapes_folder


@pytest.mark.slow
def test_from_scratch_writes_a_segmentation_run(shapes, tmp_path):
    result = train(TrainConfig(data=str(shapes), out=str(tmp_path / "run"), progress=False, **OPTIONS))
    ckpt = load_checkpoint(result.best_checkpoint)
    assert ckpt.task == "segmentation" and ckpt.class_names == CLASSES
    assert ckpt.model.arch["name"] == "deeplabv3_mobilenet_v2"
    assert ckpt.preprocessing.resize_mode == "squash" and ckpt.preprocessing.crop_pct == 1.0
    assert {"train_miou", "val_miou", "val_pixel_acc", "val_loss"} <= set(result.history[-1])
    report = json.loads((result.run_dir / "eval" / "report.json").read_text())
    assert 0 <= report["miou"] <= 1 and report["class_names"] == CLASSES
    assert (result.run_dir / "metrics.csv").exists() and (result.run_dir / "tb").is_dir()


@pytest.mark.slow
def test_amp_ema_aux_loss_early_stop_and_lraspp(shapes, tmp_path):
    options = {**OPTIONS, "epochs": 4}
    result = train(TrainConfig(data=str(shapes), out=str(tmp_path / "run"), progress=False, amp="bf16", ema=0.9,
                               early_stop=1, **options))
    assert 1 <= len(result.history) <= 4
    model = create_model("deeplabv3_mobilenet_v2", num_classes=3, width_mult=0.35, aux_loss=True)
    result = train(TrainConfig(data=str(shapes), out=str(tmp_path / "aux"), progress=False, **{**OPTIONS, "epochs": 1}),
                   model=model)
    assert load_checkpoint(result.best_checkpoint).model.aux is not None
    lraspp = train(TrainConfig(data=str(shapes), out=str(tmp_path / "lraspp"), progress=False, model="lraspp_mobilenet_v2",
                               **{**OPTIONS, "epochs": 1}))
    assert load_checkpoint(lraspp.best_checkpoint).model.arch["name"] == "lraspp_mobilenet_v2"


@pytest.mark.slow
def test_backbone_from_a_classification_checkpoint(shapes, tmp_path):
    classifier = create_model("mobilenet_v2", width_mult=0.35, num_classes=10)
    path = save_checkpoint(tmp_path / "cls.safetensors", classifier, [str(i) for i in range(10)], Preprocessing(input_size=32))
    from mobilenetv2.tasks import get_task

    segmenter = get_task("segmentation").adapt_pretrained(load_checkpoint(path).model, "deeplabv3_mobilenet_v2", 3)
    for key, value in classifier.features.state_dict().items():
        if key in segmenter.features.state_dict():
            assert torch.equal(segmenter.features.state_dict()[key], value), key
    result = train(TrainConfig(data=str(shapes), out=str(tmp_path / "run"), progress=False, pretrained=str(path),
                               **{**OPTIONS, "epochs": 1, "width_mult": None}))
    assert load_checkpoint(result.best_checkpoint).model.num_classes == 3
    v1 = save_checkpoint(tmp_path / "v1.safetensors", create_model("mobilenet_v1", width_mult=0.25, num_classes=2), ["a", "b"],
                         Preprocessing(input_size=32))
    with pytest.raises(UserError, match="mobilenet_v1 classifier cannot be the backbone"):
        train(TrainConfig(data=str(shapes), out=str(tmp_path / "v1run"), progress=False, pretrained=str(v1),
                          **{**OPTIONS, "epochs": 1, "width_mult": None}))


@pytest.mark.slow
def test_fine_tune_a_segmentation_checkpoint_to_new_classes(shapes, tmp_path):
    model = create_model("deeplabv3_mobilenet_v2", width_mult=0.35, num_classes=21)
    names = [f"c{i}" for i in range(21)]
    path = save_checkpoint(tmp_path / "seg.safetensors", model, names, Preprocessing(input_size=32), task="segmentation")
    result = train(TrainConfig(data=str(shapes), out=str(tmp_path / "run"), progress=False, pretrained=str(path),
                               **{**OPTIONS, "epochs": 1, "width_mult": None}))
    tuned = load_checkpoint(result.best_checkpoint)
    assert tuned.model.num_classes == 3 and tuned.class_names == CLASSES
    from mobilenetv2.tasks import get_task

    adapted = get_task("segmentation").adapt_pretrained(load_checkpoint(path).model, "deeplabv3_mobilenet_v2", 3)
    assert adapted.classifier.logits.out_channels == 3
    assert torch.equal(adapted.features[5].conv[0][0].weight, model.features[5].conv[0][0].weight)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_then_resume_equals_uninterrupted_run(shapes, tmp_path, kill_mid_run):
    options = {**OPTIONS, "epochs": 4, "ema": 0.9}
    killed = tmp_path / "killed"
    kill_mid_run(shapes, killed, options)
    assert main(["train", "--resume", str(killed)]) == 0
    straight = train(TrainConfig(data=str(shapes), out=str(tmp_path / "straight"), progress=False, **options))
    resumed, reference = load_file(str(killed / "last.safetensors")), load_file(str(straight.run_dir / "last.safetensors"))
    for key in reference:
        torch.testing.assert_close(resumed[key], reference[key], rtol=0, atol=1e-6, msg=key)


@pytest.mark.slow
def test_torchrun_two_processes_reduce_the_confusion_matrix_exactly(shapes, tmp_path):
    """Each process validates its shard; the all-reduced figures equal one process evaluating the same weights."""
    import csv

    from mobilenetv2.evaluation.evaluator import evaluate

    out = tmp_path / "ddp"
    flags = ["--task", "segmentation", "--width-mult", "0.35", "--input-size", "32", "--augment", "none", "--epochs", "1",
             "--workers", "0", "--device", "cpu", "--batch-size", "4", "--seed", "0"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29531",
           "-m", "mobilenetv2", "train", "--data", str(shapes), "--out", str(out), "--no-progress", *flags]
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "x2 processes" in done.stderr
    logged = list(csv.DictReader((out / "metrics.csv").open()))[-1]
    report = evaluate(str(out / "last.safetensors"), str(shapes), split="val", batch_size=4, workers=0)
    assert float(logged["val_miou"]) == pytest.approx(report.miou, abs=1e-6)
    assert float(logged["val_pixel_acc"]) == pytest.approx(report.pixel_acc, abs=1e-6)


def test_poly_schedule_is_the_segmentation_default():
    from mobilenetv2.training.optim import lr_factor

    cfg = TrainConfig(task="segmentation", epochs=10, warmup_epochs=0)
    assert cfg.schedule == "poly" and TrainConfig().schedule == "cosine"
    assert lr_factor(0, 10, cfg) == 1.0 and lr_factor(50, 10, cfg) == pytest.approx(0.5 ** 0.9)
    assert lr_factor(100, 10, cfg) == 0.0
