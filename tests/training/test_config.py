"""TrainConfig: YAML round trip, the paper recipe, and one clear error per bad value."""

from __future__ import annotations

import pytest

from mobilenetv2.errors import UserError
from mobilenetv2.training import PAPER_RECIPE, TrainConfig


def test_yaml_round_trip(tmp_path):
    cfg = TrainConfig(epochs=3, lr=0.02, optimizer="adamw", freeze="stage3", ema=0.99, amp="bf16")
    cfg.to_yaml(tmp_path / "c.yaml")
    assert TrainConfig.from_yaml(tmp_path / "c.yaml") == cfg


def test_paper_recipe_sets_the_papers_values_and_explicit_values_win():
    cfg = TrainConfig.from_dict({"recipe": "paper", "epochs": 5})
    assert (cfg.optimizer, cfg.lr, cfg.momentum, cfg.alpha, cfg.weight_decay, cfg.schedule, cfg.gamma) == (
        "rmsprop", 0.045, 0.9, 0.9, 4e-5, "exponential", 0.98)
    assert PAPER_RECIPE["lr"] == 0.045
    assert TrainConfig.from_dict({"recipe": "paper", "lr": 0.01}).lr == 0.01


@pytest.mark.parametrize(("data", "message"), [
    ({"learning_rate": 0.1}, "unknown training option 'learning_rate'"),
    ({"lr": -0.1}, "lr must be > 0"),
    ({"lr": "fast"}, "lr must be a number"),
    ({"epochs": 2.5}, "epochs must be an integer"),
    ({"optimizer": "lamb"}, "optimizer must be one of sgd, rmsprop, adamw"),
    ({"freeze": "stage9"}, "freeze must be one of all, stem, stage1"),
    ({"ema": 1.5}, "ema must be in [0, 1)"),
    ({"bn_momentum": 0}, "bn_momentum must be in (0, 1]"),
    ({"amp": "fp8"}, "amp must be one of none, bf16, fp16"),
    ({"epochs": 3, "head_epochs": 3}, "head_epochs (3) must be smaller than epochs (3)"),
])
def test_bad_values_are_one_clear_error(data, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        TrainConfig.from_dict(data)


def test_unknown_key_suggests_close_names():
    with pytest.raises(UserError, match="did you mean weight_decay"):
        TrainConfig.from_dict({"weight_decy": 0.1})
