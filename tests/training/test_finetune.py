"""Fine-tuning from a checkpoint trained on one dataset beats training from scratch on a small second one."""

from __future__ import annotations

import pytest
import torch

from mobilenetv2.data import Preprocessing
from mobilenetv2.models import create_model
from mobilenetv2.training import TrainConfig, train
from mobilenetv2.weights import load_checkpoint, save_checkpoint

from .conftest import write_digits  # noqa: TID252

COMMON = dict(width_mult=0.5, input_size=32, augment="none", workers=0, device="cpu", seed=0, progress=False,
              label_smoothing=0.0, warmup_epochs=0.0)


@pytest.fixture(scope="module")
def pretrained_on_first_five(tmp_path_factory):
    data = write_digits(tmp_path_factory.mktemp("digits04"), [0, 1, 2, 3, 4], {"train": 60, "val": 10})
    out = tmp_path_factory.mktemp("pretrain") / "run"
    result = train(TrainConfig(data=str(data), out=str(out), epochs=6, batch_size=16, lr=0.01, **COMMON))
    assert result.best_metric >= 0.8, "pretraining on digits 0-4 should work"
    return result.best_checkpoint


@pytest.mark.slow
def test_finetuning_beats_scratch_with_the_same_budget(pretrained_on_first_five, tmp_path):
    small = write_digits(tmp_path / "digits59", [5, 6, 7, 8, 9], {"train": 8, "val": 30}, offset=80)
    budget = dict(data=str(small), epochs=4, batch_size=8, lr=0.02, **COMMON)
    scratch = train(TrainConfig(out=str(tmp_path / "scratch"), **budget))
    finetuned = train(TrainConfig(out=str(tmp_path / "finetune"), pretrained=str(pretrained_on_first_five),
                                  freeze="all", **budget))
    assert finetuned.best_metric >= scratch.best_metric + 0.15, (finetuned.best_metric, scratch.best_metric)
    assert finetuned.best_metric >= 0.35


@pytest.mark.slow
def test_finetuning_keeps_the_pretrained_normalisation(tmp_path):
    pre = Preprocessing(input_size=32, crop_pct=1.0, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    ckpt = save_checkpoint(tmp_path / "pre.safetensors", create_model("mobilenet_v2", width_mult=0.35, num_classes=3),
                           ["a", "b", "c"], pre)
    data = write_digits(tmp_path / "d", [0, 1], {"train": 4, "val": 2})
    result = train(TrainConfig(data=str(data), out=str(tmp_path / "run"), pretrained=str(ckpt), epochs=1,
                               batch_size=4, **{**COMMON, "width_mult": None}))
    saved = load_checkpoint(result.best_checkpoint)
    assert saved.preprocessing.mean == (0.5, 0.5, 0.5) and saved.preprocessing.std == (0.5, 0.5, 0.5)
    assert saved.class_names == ["0", "1"]


def test_folded_tflite_batchnorm_is_calibrated_before_training(tmp_path, caplog):
    caplog.set_level("INFO")
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=3, tf_padding=True)
    for m in model.modules():  # what a TFLite conversion gives: BatchNorm folded to a bias
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.zero_()
            m.running_var.fill_(1 - m.eps)
            m.weight.data.fill_(1.0)
    ckpt = save_checkpoint(tmp_path / "tfl.safetensors", model, ["a", "b", "c"], Preprocessing(input_size=32),
                           extra={"source_format": "tflite", "bn_calibration_images": 0})
    data = write_digits(tmp_path / "d", [0, 1], {"train": 8, "val": 2})
    result = train(TrainConfig(data=str(data), out=str(tmp_path / "run"), pretrained=str(ckpt), epochs=1,
                               batch_size=4, freeze="all", **{**COMMON, "width_mult": None}))
    assert "BatchNorm statistics calibrated on 16 training images" in caplog.text
    stem_bn = load_checkpoint(result.best_checkpoint).model.features[0][1]
    assert not torch.allclose(stem_bn.running_var, torch.full_like(stem_bn.running_var, 1 - stem_bn.eps))
