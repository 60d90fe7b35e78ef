"""One writer per output folder: ``predict --out`` and ``train`` take ``FolderLock``; a second process is refused in
one line naming the holder's PID (exit 2), and a lock whose holder died (kill -9 included) is taken over."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.errors import UserError
from mobilenetv2.io import LOCK_NAME, FolderLock

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fcntl.flock and SIGKILL are POSIX")

HOLD = ("import sys, time\nfrom mobilenetv2.io import FolderLock\nFolderLock(sys.argv[1], 'the test').acquire()\n"
        "print('held', flush=True)\ntime.sleep(60)\n")


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process that takes the folder's lock and keeps it (up to a minute)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mobilenetv2", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.fixture(scope="module")
def model_and_images(tmp_path_factory) -> tuple[Path, Path]:
    import torch

    from mobilenetv2.models import create_model
    from mobilenetv2.weights import save_checkpoint

    root = tmp_path_factory.mktemp("lock")
    torch.manual_seed(0)
    checkpoint = save_checkpoint(root / "tiny.safetensors", create_model("mobilenet_v2", width_mult=0.35, num_classes=3),
                                 class_names=["a", "b", "c"])
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(images / f"{i:03d}.png")
    return checkpoint, images


def test_second_holder_is_refused_with_the_pid_and_a_dead_holders_lock_is_taken_over(tmp_path):
    holder = hold_lock(tmp_path)
    try:
        with pytest.raises(UserError, match=f"PID {holder.pid}"):
            FolderLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up runs: the kernel drops the flock
        holder.wait(10)
    with FolderLock(tmp_path) as lock:
        assert lock.fd is not None and (tmp_path / LOCK_NAME).read_text().split()[0] == str(os.getpid())
    assert FolderLock(tmp_path).acquire().release() is None  # released: taken again


def test_lock_on_a_new_folder_leaves_nothing_when_nothing_was_written(tmp_path):
    with FolderLock(tmp_path / "new"):
        pass
    assert not (tmp_path / "new").exists()


def test_predict_into_a_locked_folder_is_refused_and_touches_nothing(model_and_images, tmp_path):
    checkpoint, images = model_and_images
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.jsonl").write_text("")
    holder = hold_lock(out)
    try:
        before = snapshot(out)
        proc = cli("predict", str(checkpoint), str(images), "--out", str(out), "--format", "jsonl")
        stdout, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 2 and stdout == ""
        assert stderr.strip().count("\n") == 0 and f"PID {holder.pid}" in stderr, stderr
        assert snapshot(out) == before
    finally:
        holder.kill()
        holder.wait(10)


@pytest.mark.slow
def test_two_predicts_started_together_write_each_image_once(model_and_images, tmp_path):
    checkpoint, images = model_and_images
    out = tmp_path / "out"
    procs = [cli("predict", str(checkpoint), str(images), "--out", str(out), "--batch-size", "4") for _ in range(2)]
    results = [(p.wait(120), p.communicate()[1]) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "in use by mobilenetv2 predict (PID" in refused and refused.strip().count("\n") == 0
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(r["image"] for r in records) == sorted(str(p) for p in images.iterdir())
    lines = (out / "predictions.csv").read_text().splitlines()
    assert sum(line.startswith("image,") for line in lines) == 1


def tiny_digits(root: Path) -> Path:
    from sklearn.datasets import load_digits

    pixels, labels = load_digits(return_X_y=True)
    for digit in (0, 1):
        for split, rows in (("train", slice(0, 8)), ("val", slice(8, 12))):
            folder = root / split / str(digit)
            folder.mkdir(parents=True)
            for i in np.flatnonzero(labels == digit)[rows]:
                image = Image.fromarray((pixels[i].reshape(8, 8) * 15).astype(np.uint8), "L")
                image.resize((32, 32), Image.NEAREST).save(folder / f"{i}.png")
    return root


TRAIN = ["--width-mult", "0.35", "--input-size", "32", "--augment", "none", "--batch-size", "8", "--workers", "0",
         "--device", "cpu", "--no-progress", "--warmup-epochs", "0"]


@pytest.mark.slow
def test_train_resume_of_a_locked_run_is_refused_and_touches_nothing(tmp_path):
    run = tmp_path / "run"
    proc = cli("train", "--data", str(tiny_digits(tmp_path / "digits")), "--out", str(run), *TRAIN, "--epochs", "1")
    assert proc.wait(120) == 0, proc.communicate()[1]
    holder = hold_lock(run)
    try:
        before = snapshot(run)
        proc = cli("train", "--resume", str(run), "--epochs", "2")
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 2 and stderr.strip().count("\n") == 0, stderr
        assert f"in use by the test (PID {holder.pid})" in stderr
        assert snapshot(run) == before
    finally:
        holder.kill()
        holder.wait(10)


@pytest.mark.slow
def test_two_train_resumes_started_together_train_each_epoch_once(tmp_path):
    run = tmp_path / "run"
    first = cli("train", "--data", str(tiny_digits(tmp_path / "digits")), "--out", str(run), *TRAIN, "--epochs", "6")
    deadline = time.monotonic() + 120
    while not (run / "state.pt").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.kill()
    first.wait(10)
    assert (run / "state.pt").exists()
    procs = [cli("train", "--resume", str(run)) for _ in range(2)]
    results = [(p.wait(300), p.communicate()[1]) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    assert "in use by mobilenetv2 train (PID" in next(err for code, err in results if code == 2)
    epochs = [line.split(",")[0] for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == [str(e) for e in range(1, 7)]


def test_a_ledger_holding_an_image_twice_is_repaired_on_resume(model_and_images, tmp_path):
    """What two runs at once wrote before runs took a lock: every record twice, a second CSV header."""
    from mobilenetv2.cli import main

    checkpoint, images = model_and_images
    out = tmp_path / "out"
    assert main(["predict", str(checkpoint), str(images), "--out", str(out), "--format", "jsonl"]) == 0
    for name in ("predictions.jsonl", "predictions.csv"):
        text = (out / name).read_text()
        (out / name).write_text(text + text)
    assert main(["predict", str(checkpoint), str(images), str(images / "000.png"), "--out", str(out)]) == 0
    records = [json.loads(line)["image"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(records) == sorted(str(p) for p in images.iterdir())
    lines = (out / "predictions.csv").read_text().splitlines()
    assert sum(line.startswith("image,") for line in lines) == 1 and len(lines) == 1 + 3 * 40


def test_an_image_given_twice_counts_once_when_resuming(model_and_images, tmp_path, caplog):
    """The same file named twice is one input: predicted once, and 'resuming: N of M' counts it once."""
    from mobilenetv2.cli import main

    checkpoint, images = model_and_images
    out, photo = tmp_path / "out", str(images / "000.png")
    assert main(["predict", str(checkpoint), photo, photo, "--out", str(out)]) == 0
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 1
    with caplog.at_level(logging.INFO):
        assert main(["predict", str(checkpoint), photo, photo, "--out", str(out)]) == 0
    assert "resuming: 1 of 1 done" in caplog.text
