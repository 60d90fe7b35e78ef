"""`mobilenetv2 tune` end to end through real training (tiny), and its one-line errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.cli import main
from mobilenetv2.training import TrainConfig


@pytest.fixture
def tiny_folder(tmp_path):
    """Two classes of 8 tiny images each: reddish and bluish noise."""
    rng = np.random.default_rng(0)
    for label, channel in (("red", 0), ("blue", 2)):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 100, (32, 32, 3), dtype=np.uint8)
            pixels[..., channel] += 150
            Image.fromarray(pixels).save(tmp_path / "data" / label / f"{i}.png")
    return tmp_path / "data"


@pytest.mark.slow
def test_tune_end_to_end_through_train(tmp_path, tiny_folder, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("lr: {type: float, low: 0.01, high: 0.2, log: true}\n")
    out = tmp_path / "tune"
    argv = ["tune", "--data", str(tiny_folder), "--space", str(space), "--trials", "2", "--sampler", "random",
            "--out", str(out), "--epochs", "1", "--width-mult", "0.35", "--input-size", "32", "--batch-size", "8",
            "--workers", "0", "--val-split", "0.5", "--no-plots"]
    assert main(argv) == 0
    printed = capsys.readouterr().err  # progress lines are logged to stderr
    assert "trial 0: complete" in printed and "trial 1: complete" in printed and "best trial" in printed
    rows = (out / "trials.csv").read_text().splitlines()
    assert len(rows) == 3
    for n in (0, 1):
        assert (out / "trials" / f"trial_{n:04d}" / "best.safetensors").is_file()
    best = TrainConfig.from_yaml(out / "best.yaml")
    assert best.width_mult == 0.35 and best.input_size == 32 and 0.01 <= best.lr <= 0.2
    test = shutil.copytree(tiny_folder, tmp_path / "test")  # stands in for held-out images
    # resumed: 2 trials already finished, so only the retraining (on train + val) and the test evaluation run
    assert main([*argv, "--retrain-best", "--test", str(test)]) == 0
    printed = capsys.readouterr().err  # progress lines are logged to stderr
    assert "2 of 2 trials already finished" in printed and "retraining the best config on train + val" in printed
    assert "(2 classes, 16 training images" in printed  # the trials trained on 8 (--val-split 0.5)
    assert "test on" in printed and "16 images: top-1" in printed
    assert not (out / "trials" / "trial_0002").exists()
    retrained = TrainConfig.from_yaml(out / "best" / "config.yaml")
    assert retrained.lr == best.lr and retrained.train_on_val
    assert (out / "best" / "last.safetensors").is_file() and (out / "best" / "test" / "report.json").is_file()


@pytest.mark.parametrize("space, extra, message", [
    ("", [], "is empty"),
    ("lr: {type: float, low: 0.01, high: [\n", [], "is not valid YAML"),
    ("learning_rate: {type: float, low: 0.01, high: 0.1}\n", [], "unknown training option 'learning_rate'"),
    ("lr: {type: float, low: 0.5, high: 0.1}\n", [], "low (0.5) must be <= high (0.1)"),
    ("lr: {type: float, low: -0.1, high: 0.1}\n", [], "lr must be > 0"),
    ("lr: {type: float, low: 0.0, high: 0.1, log: true}\n", [], "a log range needs low > 0"),
    ("lr: {type: float, low: 0.01, high: 0.1}\n", ["--sampler", "grid"], "grid search needs a finite set of values"),
    ("lr: [0.1]\n", ["--storage", "postgresql://u:p@127.0.0.1:9/db"], "cannot open storage"),
    ("lr: [0.1]\n", ["--epochs", "0"], "epochs must be > 0"),
    ("lr: [0.1]\n", ["--test", "digits"], "--test evaluates the retrained best config: add --retrain-best"),
    ("lr: [0.1]\n", ["--retrain-best", "--test", "no/such/folder"], "no/such/folder: no such folder"),
])
def test_bad_input_is_one_line_before_any_trial(tmp_path, capsys, space, extra, message):
    path = tmp_path / "space.yaml"
    path.write_text(space)
    assert main(["tune", "--space", str(path), "--out", str(tmp_path / "tune"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mobilenetv2 tune: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "tune" / "trials").exists()
