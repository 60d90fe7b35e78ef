"""The training loop on a tiny folder: outputs of a run, EMA, callbacks, staged fine-tuning, early stopping."""

from __future__ import annotations

import csv

import pytest
import torch
from safetensors.torch import load_file

from mobilenetv2.training import train
from mobilenetv2.weights import load_checkpoint


def test_run_writes_checkpoints_logs_and_report(tiny_folder, tmp_path, tiny):
    result = train(tiny(tiny_folder, tmp_path / "run", ema=0.9, mixup=0.2, label_smoothing=0.1, clip_grad=1.0))
    run = result.run_dir
    for name in ("best.safetensors", "last.safetensors", "state.pt", "config.yaml", "metrics.csv", "curves.png",
                 "eval/report.json", "eval/confusion_matrix.csv"):
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir())
    assert result.best_checkpoint == run / "best.safetensors" and 0 <= result.best_metric <= 1
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and {"train_loss", "val_loss", "val_acc", "lr"} <= set(rows[0])
    assert [h["epoch"] for h in result.history] == [1, 2]
    ckpt = load_checkpoint(run / "best.safetensors")
    assert ckpt.class_names == ["0", "1"] and ckpt.preprocessing.input_size == 32
    assert ckpt.metrics["val_acc"] == result.best_metric
    assert result.final_metrics["top1"] == pytest.approx(result.best_metric)


def test_callback_may_stop_the_run_after_last_is_saved(tiny_folder, tmp_path, tiny):
    class Stop(Exception):
        pass

    def stop(epoch, metrics):
        assert "val_acc" in metrics and "val_loss" in metrics
        raise Stop

    with pytest.raises(Stop):
        train(tiny(tiny_folder, tmp_path / "run", epochs=3), on_epoch_end=stop)
    assert (tmp_path / "run" / "last.safetensors").is_file()


def test_head_epochs_train_only_the_classifier_first(tiny_folder, tmp_path, tiny):
    seen = {}

    def snapshot(epoch, metrics):
        seen[epoch] = load_file(str(tmp_path / "run" / "last.safetensors"))

    result = train(tiny(tiny_folder, tmp_path / "run", epochs=2, head_epochs=1, backbone_lr_mult=0.1, limit_batches=1),
                   on_epoch_end=snapshot)
    first = load_checkpoint(result.run_dir / "last.safetensors")  # the final weights
    from mobilenetv2.models import create_model

    torch.manual_seed(0)  # train() builds the model right after seeding with cfg.seed
    fresh = create_model("mobilenet_v2", width_mult=0.35, num_classes=2).state_dict()
    for key in ("features.0.0.weight", "features.0.1.running_mean", "features.18.0.weight"):
        assert torch.equal(seen[0][key], fresh[key]), key  # backbone untouched, BN statistics too, in epoch 1
        assert not torch.equal(first.model.state_dict()[key], fresh[key]), key  # trained in epoch 2
    assert not torch.equal(seen[0]["classifier.1.weight"], fresh["classifier.1.weight"])


def test_early_stop(tiny_folder, tmp_path, tiny):
    result = train(tiny(tiny_folder, tmp_path / "run", epochs=6, early_stop=1, lr=1e-9, limit_batches=1))
    assert len(result.history) < 6


def test_qat_with_bf16_autocast_saves_a_plain_model(tiny_folder, tmp_path, tiny):
    result = train(tiny(tiny_folder, tmp_path / "run", epochs=1, qat=True, amp="bf16", channels_last=True,
                        optimizer="rmsprop", lr=0.01, limit_batches=1))
    model = load_checkpoint(result.best_checkpoint).model
    assert type(model.features[0][0]) is torch.nn.Conv2d and model.num_classes == 2


def test_bn_momentum_applies_to_every_batchnorm(tiny_folder, tmp_path, tiny):
    from mobilenetv2.training.loop import Trainer

    def momenta(trainer):
        return {m.momentum for m in trainer.model.modules() if isinstance(m, torch.nn.BatchNorm2d)}

    assert momenta(Trainer(tiny(tiny_folder, tmp_path / "a", model="mobilenet_v3_small"))) == {0.01}  # torchvision's
    assert momenta(Trainer(tiny(tiny_folder, tmp_path / "b", model="mobilenet_v3_small", bn_momentum=0.1))) == {0.1}
