"""The search space file: parsing, Optuna suggestions, grids, and one clear error for each kind of bad input."""

from __future__ import annotations

import optuna
import pytest

from mobilenetv2.errors import UserError
from mobilenetv2.training import TrainConfig
from mobilenetv2.tuning import SearchSpace, load_space

SPACE = """
lr: {type: float, low: 0.001, high: 0.1, log: true}
width_mult: {type: categorical, choices: [0.5, 0.75, 1.0]}
batch_size: {type: int, low: 16, high: 64, step: 16}
optimizer: [sgd, adamw]
"""


def write(tmp_path, text: str):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_parse_and_suggest(tmp_path):
    space = load_space(write(tmp_path, SPACE), TrainConfig())
    assert list(space.params) == ["lr", "width_mult", "batch_size", "optimizer"]
    assert space.params["lr"].log and space.params["optimizer"].choices == ("sgd", "adamw")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(10):
        values = space.suggest(study.ask())
        assert 0.001 <= values["lr"] <= 0.1
        assert values["batch_size"] in (16, 32, 48, 64)
        assert values["width_mult"] in (0.5, 0.75, 1.0) and values["optimizer"] in ("sgd", "adamw")


def test_grid_enumerates_finite_values():
    space = SearchSpace.from_dict({"batch_size": {"type": "int", "low": 16, "high": 64, "step": 16},
                                   "lr": {"type": "float", "low": 0.1, "high": 0.3, "step": 0.1},
                                   "optimizer": ["sgd", "adamw"]})
    assert space.grid() == {"batch_size": [16, 32, 48, 64], "lr": [0.1, 0.2, 0.3], "optimizer": ["sgd", "adamw"]}
    assert space.grid_size() == 24


def test_grid_rejects_continuous_float():
    space = SearchSpace.from_dict({"lr": {"type": "float", "low": 0.01, "high": 0.1, "log": True}})
    with pytest.raises(UserError, match="grid search needs a finite set of values for lr"):
        space.grid()


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("# only a comment\n", "is empty"),
    ("lr: [0.1\n", "not valid YAML at line"),
    ("- lr\n- momentum\n", "must map option names to ranges"),
    ("lrr: {type: float, low: 0.01, high: 0.1}\n", r"unknown training option 'lrr' \(did you mean lr"),
    ("learning_speed: {type: float, low: 0.01, high: 0.1}\n", "unknown training option 'learning_speed'"),
    ("lr: {type: float, low: 0.1, high: 0.01}\n", r"lr: low \(0.1\) must be <= high \(0.01\)"),
    ("lr: {type: float, low: -0.1, high: 0.1}\n", "lr=-0.1 is not allowed: lr must be > 0"),
    ("weight_decay: {type: float, low: 0.0, high: 0.1, log: true}\n", "a log range needs low > 0"),
    ("lr: {type: float, low: 0.01, high: 0.1, log: true, step: 0.01}\n", "either log: true or a step"),
    ("lr: {type: uniform, low: 0.01, high: 0.1}\n", "type must be one of float, int, categorical"),
    ("lr: {type: float, lo: 0.01, high: 0.1}\n", "unknown key"),
    ("lr: {type: float, high: 0.1}\n", "needs both `low` and `high`"),
    ("lr: {type: float, low: small, high: 0.1}\n", "low must be a finite number"),
    ("batch_size: {type: int, low: 16.5, high: 64}\n", "needs integer low"),
    ("batch_size: {type: float, low: 16, high: 64}\n", "batch_size must be an? int"),
    ("optimizer: {type: categorical, choices: []}\n", "non-empty list"),
    ("optimizer: [sgd, sgd]\n", "duplicates"),
    ("optimizer: [sgd, lion]\n", "optimizer must be one of sgd, rmsprop, adamw"),
    ("input_size: {type: int, low: 16, high: 64}\n", "input_size must be an integer >= 32"),
    ("dropout: {type: float, low: 0.0, high: 1.0}\n", r"dropout must be >= 0 and < 1"),
    ("out: [a, b]\n", "unknown training option 'out'"),
])
def test_bad_space_is_one_clear_error(tmp_path, text, message):
    with pytest.raises(UserError, match=message) as info:
        load_space(write(tmp_path, text), TrainConfig())
    assert "\n" not in str(info.value)


def test_missing_space_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_space(tmp_path / "nope.yaml", TrainConfig())
