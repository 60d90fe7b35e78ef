"""Schedules, per-stage learning rates and frozen BatchNorm statistics."""

from __future__ import annotations

import math

import pytest
import torch

from mobilenetv2.models import create_model
from mobilenetv2.training import TrainConfig
from mobilenetv2.training.freeze import frozen_stages, keep_frozen_bn, set_frozen
from mobilenetv2.training.optim import build_optimizer, build_scheduler, lr_factor, param_groups


def test_warmup_then_cosine_to_zero():
    cfg = TrainConfig(epochs=10, warmup_epochs=2, schedule="cosine")
    factors = [lr_factor(s, 10, cfg) for s in range(100)]
    assert factors[0] == pytest.approx(0.05) and factors[19] == pytest.approx(1.0)
    assert factors[20] == pytest.approx(1.0) and factors[60] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert factors[99] < 0.001 and all(a >= b for a, b in zip(factors[20:], factors[21:]))


@pytest.mark.parametrize(("schedule", "epoch", "expected"), [
    ("exponential", 3, 0.98 ** 3), ("step", 5, 0.5), ("step", 3, 1.0), ("constant", 7, 1.0),
])
def test_epoch_schedules(schedule, epoch, expected):
    cfg = TrainConfig(epochs=10, warmup_epochs=0, schedule=schedule, gamma=0.98 if schedule == "exponential" else 0.5,
                      step_epochs=4)
    assert lr_factor(epoch * 10 + 3, 10, cfg) == pytest.approx(expected)


def test_paper_recipe_builds_rmsprop_decaying_0_98_per_epoch():
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=3)
    cfg = TrainConfig.from_dict({"recipe": "paper", "epochs": 5})
    opt = build_optimizer(model, cfg)
    assert isinstance(opt, torch.optim.RMSprop) and opt.defaults["alpha"] == 0.9 and opt.defaults["momentum"] == 0.9
    sched = build_scheduler(opt, 4, cfg)
    for _ in range(8):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.045 * 0.98 ** 2)


def test_layer_decay_and_backbone_multiplier():
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=3)
    groups = param_groups(model, TrainConfig(lr=1.0, backbone_lr_mult=0.1, layer_decay=0.5))
    lr = {g["stage"]: g["lr"] for g in groups}
    assert lr["classifier"] == 1.0 and lr["head_conv"] == pytest.approx(0.1 * 0.5)
    assert lr["stage7"] == pytest.approx(0.1 * 0.25) and lr["stem"] == pytest.approx(0.1 * 0.5 ** 9)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert all(g["weight_decay"] == 0 for g in groups if g["params"][0].ndim == 1)


@pytest.mark.slow
def test_frozen_stages_keep_weights_and_batchnorm_statistics():
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=3)
    frozen = frozen_stages(model, "stage2")
    stem_bn = frozen[0][0][1]  # ConvBNAct: conv, bn, act
    before = {k: v.clone() for k, v in frozen[0].state_dict().items()}
    set_frozen(frozen)
    opt = build_optimizer(model, TrainConfig(lr=0.1))
    model.train()
    keep_frozen_bn(frozen)
    assert not stem_bn.training and model.features[-1].training
    torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 0])).backward()
    opt.step()
    after = frozen[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert len(frozen_stages(model, "all")) == 9
