"""Training detection models: from scratch with tiles, from a classifier's backbone, from a detection checkpoint, and
the training features of classification (resume after SIGKILL, AMP, EMA, early stop, torchrun)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from mobilenetv2.cli import main
from mobilenetv2.data import Preprocessing
from mobilenetv2.errors import UserError
from mobilenetv2.models import create_model
from mobilenetv2.tasks import get_task
from mobilenetv2.training import TrainConfig, train
from mobilenetv2.weights import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.slow  # every test here takes more than ~10 s

CLASSES = ["background", "bar", "square"]  # tests/conftest.py's boxes folder
OPTIONS = dict(task="detection", width_mult=0.35, input_size=64, augment="none", batch_size=4, epochs=2, workers=0,
               device="cpu", warmup_epochs=0.5, deterministic=True, seed=3)


def test_from_scratch_with_tiles_records_the_tile_and_the_task_defaults(boxes_folder, tmp_path):
    result = train(TrainConfig(data=str(boxes_folder), out=str(tmp_path / "run"), progress=False, tile=48,
                               tile_overlap=0.5, **OPTIONS))
    ckpt = load_checkpoint(result.best_checkpoint)
    assert ckpt.task == "detection" and ckpt.class_names == CLASSES
    assert ckpt.model.arch["name"] == "ssdlite_mobilenet_v2"
    assert (ckpt.preprocessing.tile, ckpt.preprocessing.tile_overlap) == (48, 0.5)
    assert {"val_map", "val_map50", "val_loss", "train_loss"} <= set(result.history[-1])
    cfg = TrainConfig(task="detection")
    assert (cfg.optimizer, cfg.lr, cfg.label_smoothing) == ("adamw", 0.008, 0.0)
    assert (TrainConfig().optimizer, TrainConfig().lr, TrainConfig().label_smoothing) == ("sgd", 0.05, 0.1)
    report = json.loads((result.run_dir / "eval" / "report.json").read_text())
    assert report["num_images"] == 4  # tiles of one image are scored as one image


def test_amp_ema_early_stop_and_the_v3_backbone(boxes_folder, tmp_path):
    result = train(TrainConfig(data=str(boxes_folder), out=str(tmp_path / "run"), progress=False, amp="bf16", ema=0.9,
                               early_stop=1, **{**OPTIONS, "epochs": 3}))
    assert 1 <= len(result.history) <= 3
    v3 = train(TrainConfig(data=str(boxes_folder), out=str(tmp_path / "v3"), progress=False,
                           model="ssdlite_mobilenet_v3_large", **{**OPTIONS, "epochs": 1}))
    assert load_checkpoint(v3.best_checkpoint).model.arch["args"]["backbone"] == "mobilenet_v3_large"


def test_backbone_from_a_classifier_and_new_classes_from_a_detector(boxes_folder, tmp_path):
    classifier = create_model("mobilenet_v2", width_mult=0.35, num_classes=10)
    path = save_checkpoint(tmp_path / "cls.safetensors", classifier, [str(i) for i in range(10)], Preprocessing(input_size=64))
    detector = get_task("detection").adapt_pretrained(load_checkpoint(path).model, "ssdlite_mobilenet_v2", 3)
    for key, value in classifier.features.state_dict().items():
        assert torch.equal(detector.features.state_dict()[key], value), key
    result = train(TrainConfig(data=str(boxes_folder), out=str(tmp_path / "run"), progress=False, pretrained=str(path),
                               **{**OPTIONS, "epochs": 1, "width_mult": None}))
    assert load_checkpoint(result.best_checkpoint).model.num_classes == 3
    coco = create_model("ssdlite_mobilenet_v2", width_mult=0.35, num_classes=91)
    det_path = save_checkpoint(tmp_path / "det.safetensors", coco, [f"c{i}" for i in range(91)], Preprocessing(input_size=64),
                               task="detection")
    tuned = train(TrainConfig(data=str(boxes_folder), out=str(tmp_path / "tuned"), progress=False, pretrained=str(det_path),
                              **{**OPTIONS, "epochs": 1, "width_mult": None}))
    assert load_checkpoint(tuned.best_checkpoint).class_names == CLASSES
    v1 = save_checkpoint(tmp_path / "v1.safetensors", create_model("mobilenet_v1", width_mult=0.25, num_classes=2), ["a", "b"],
                         Preprocessing(input_size=64))
    with pytest.raises(UserError, match="features do not fit"):
        train(TrainConfig(data=str(boxes_folder), out=str(tmp_path / "v1run"), progress=False, pretrained=str(v1),
                          **{**OPTIONS, "epochs": 1, "width_mult": None}))


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_then_resume_equals_uninterrupted_run(boxes_folder, tmp_path, kill_mid_run):
    options = {**OPTIONS, "epochs": 4, "ema": 0.9, "augment": "paper"}
    killed = tmp_path / "killed"
    kill_mid_run(boxes_folder, killed, options)
    assert main(["train", "--resume", str(killed)]) == 0
    straight = train(TrainConfig(data=str(boxes_folder), out=str(tmp_path / "straight"), progress=False, **options))
    resumed, reference = load_file(str(killed / "last.safetensors")), load_file(str(straight.run_dir / "last.safetensors"))
    for key in reference:
        torch.testing.assert_close(resumed[key], reference[key], rtol=0, atol=1e-6, msg=key)


def test_torchrun_two_processes_gather_tiles_into_the_same_map(boxes_folder, tmp_path):
    """Each process validates its share of the tiles; the gathered mAP equals one process evaluating the same weights."""
    from mobilenetv2.evaluation.evaluator import evaluate
    from mobilenetv2.inference import load_predictor

    out = tmp_path / "ddp"
    flags = ["--task", "detection", "--width-mult", "0.35", "--input-size", "64", "--augment", "none", "--epochs", "1",
             "--workers", "0", "--device", "cpu", "--batch-size", "4", "--seed", "0", "--tile", "40"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533",
           "-m", "mobilenetv2", "train", "--data", str(boxes_folder), "--out", str(out), "--no-progress", *flags]
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "x2 processes" in done.stderr
    logged = list(csv.DictReader((out / "metrics.csv").open()))[-1]
    detector = load_predictor(out / "last.safetensors", device="cpu")
    report = evaluate(detector, str(boxes_folder), split="val", batch_size=4, workers=0)
    assert float(logged["val_map"]) == pytest.approx(report.map, abs=1e-6)
    assert float(logged["val_map50"]) == pytest.approx(report.map50, abs=1e-6)
