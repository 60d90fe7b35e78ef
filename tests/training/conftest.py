"""Tiny image folders made from scikit-learn's digits, and a tiny training configuration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.training import TrainConfig


def write_digits(root: Path, digits: list[int], per_class: dict[str, int], offset: int = 0) -> Path:
    """root/{split}/{digit}/*.png with ``per_class[split]`` images of each digit, upscaled to 32 px."""
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    for d in digits:
        rows = np.flatnonzero(labels == d)[offset:]
        start = 0
        for split, count in per_class.items():
            folder = root / split / str(d)
            folder.mkdir(parents=True, exist_ok=True)
            for i in rows[start:start + count]:
                pixels = (images[i].reshape(8, 8) * 15).astype(np.uint8)
                Image.fromarray(pixels, "L").resize((32, 32), Image.NEAREST).save(folder / f"{i}.png")
            start += count
    return root


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    """Two classes, 16 training and 8 validation images."""
    return write_digits(tmp_path_factory.mktemp("tiny"), [0, 1], {"train": 8, "val": 4})


def tiny_config(data: Path, out: Path, **overrides) -> TrainConfig:
    """The smallest run that still trains: width 0.35, 32 px, no augmentation, one CPU process."""
    base = dict(data=str(data), out=str(out), width_mult=0.35, input_size=32, augment="none", batch_size=8,
                epochs=2, workers=0, device="cpu", progress=False, lr=0.05, warmup_epochs=0.0, seed=0)
    return TrainConfig(**{**base, **overrides})


@pytest.fixture
def tiny():
    """``tiny(data, out, **overrides) -> TrainConfig``."""
    return tiny_config


def as_flags(options: dict) -> list[str]:
    """TrainConfig keyword options as `mobilenetv2 train` flags."""
    flags = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        flags += ([flag] if value else [f"--no-{key.replace('_', '-')}"]) if isinstance(value, bool) else [flag, str(value)]
    return flags


@pytest.fixture
def kill_mid_run():
    """``kill(data, out, options)``: start `mobilenetv2 train` in a subprocess, SIGKILL it once its first resume state
    is written, check that the run had not finished, and return its output."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch

    def kill(data: Path, out: Path, options: dict) -> str:
        cmd = [sys.executable, "-m", "mobilenetv2", "train", "--data", str(data), "--out", str(out), "--no-progress",
               *as_flags(options)]
        proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "2"}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while not (out / "state.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        output = proc.communicate()[0].decode()
        assert (out / "state.pt").exists(), output
        interrupted_after = torch.load(out / "state.pt", weights_only=True)["epoch"]
        assert interrupted_after < options["epochs"] - 1, "the run finished before it could be killed"
        return output

    return kill
