"""`mobilenetv2 evaluate`: the report on a small image folder, agreement with `predict`, ONNX, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.cli import main
from mobilenetv2.data import Preprocessing
from mobilenetv2.inference import Classifier
from mobilenetv2.models import create_model
from mobilenetv2.weights import save_checkpoint

CLASSES = ["ant", "bee", "wasp"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, save_tiny):
    return save_tiny(tmp_path_factory.mktemp("ckpt") / "m.safetensors", CLASSES, seed=1, input_size=32, crop_pct=1.0)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 classes x 4 images; class "wasp" has bright images, so predictions are not all one class."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir()
        for i in range(4):
            pixels = rng.integers(0, 256, (36, 36, 3)) * (c + 1) / 3
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.mark.slow
def test_report_files_and_agreement_with_predict(checkpoint, folder, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", str(checkpoint), "--data", str(folder), "--split", "all", "--out", str(out),
                 "--batch-size", "5", "--workers", "0"]) == 0
    stdout = capsys.readouterr().out
    assert "top-1 accuracy" in stdout and "| **macro avg**" in stdout
    assert {p.name for p in out.iterdir()} >= {"report.json", "report.md", "confusion_matrix.csv",
                                               "confusion_matrix.png", "confusion_matrix_normalized.png", "reliability.png"}
    report = json.loads((out / "report.json").read_text())
    assert report["num_samples"] == 12 and report["class_names"] == CLASSES
    assert np.asarray(report["confusion_matrix"]).sum(axis=1).tolist() == [4, 4, 4]

    preds = Classifier.load(checkpoint, device="cpu").predict(sorted(folder.rglob("*.png")), top_k=1)
    truth = [CLASSES.index(p.parent.name) for p in sorted(folder.rglob("*.png"))]
    assert report["top1"] == pytest.approx(np.mean([p.indices[0] == t for p, t in zip(preds, truth)]))


@pytest.mark.slow
def test_onnx_gives_the_same_report(checkpoint, folder, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="ONNX comes with the [deploy] extra")
    from mobilenetv2.formats import get_format
    from mobilenetv2.weights import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    onnx_path = tmp_path / "m.onnx"
    get_format("onnx").export(ckpt.model, onnx_path, ckpt.meta)
    reports = []
    for path in (checkpoint, onnx_path):
        assert main(["evaluate", str(path), "--data", str(folder), "--split", "all", "--json", "--workers", "0"]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert reports[0]["confusion_matrix"] == reports[1]["confusion_matrix"]
    assert reports[0]["loss"] == pytest.approx(reports[1]["loss"], abs=1e-4)


def test_bad_input_one_line(checkpoint, folder, tmp_path, capsys):
    other = save_checkpoint(tmp_path / "other.safetensors", create_model("mobilenet_v2", width_mult=0.35, num_classes=3),
                            class_names=["cat", "dog", "wasp"], preprocessing=Preprocessing(input_size=32))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(np.random.default_rng(0).bytes(2000))
    (tmp_path / "empty").mkdir()
    cases = [
        ([str(other), "--data", str(folder)], "only in the checkpoint: cat, dog; only in the dataset: ant, bee"),
        ([str(junk), "--data", str(folder)], "junk.safetensors"),
        ([str(tmp_path / "missing.safetensors"), "--data", str(folder)], "not found"),
        ([str(checkpoint), "--data", str(tmp_path / "empty")], "empty"),
    ]
    for argv, message in cases:
        assert main(["evaluate", *argv, "--split", "all", "--out", str(tmp_path / "out"), "--workers", "0"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("mobilenetv2 evaluate: error:") and message in err[0], err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_real_photos_val_split(shared_data, tmp_path, capsys):
    hymenoptera = shared_data / "hymenoptera_data"
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=2)
    ckpt = save_checkpoint(tmp_path / "ab.safetensors", model, class_names=["ants", "bees"],
                           preprocessing=Preprocessing(input_size=32))
    assert main(["evaluate", str(ckpt), "--data", str(hymenoptera), "--json", "--workers", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["num_samples"] == len(list((hymenoptera / "val").rglob("*.jpg")))
    assert [c["support"] for c in report["per_class"]] == [len(list((hymenoptera / "val" / c).glob("*.jpg")))
                                                            for c in ("ants", "bees")]


@pytest.mark.slow
def test_a_class_folder_is_evaluated_whole_unless_split_says(checkpoint, folder, tmp_path, capsys):
    total = sum(1 for p in folder.rglob("*") if p.is_file())
    assert main(["evaluate", str(checkpoint), "--data", str(folder), "--json", "--out", str(tmp_path / "r"),
                 "--workers", "0"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["num_samples"] == total  # stdout is the JSON and nothing else, --out or not
    assert "evaluated the all split" in captured.err and (tmp_path / "r" / "report.json").is_file()
    assert main(["evaluate", str(checkpoint), "--data", str(folder), "--split", "val", "--json", "--workers", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["num_samples"] < total


def test_a_class_mismatch_error_stays_short(folder, tmp_path, capsys):
    names = [f"imagenet class number {i}" for i in range(1000)]
    big = save_checkpoint(tmp_path / "big.safetensors", create_model("mobilenet_v2", width_mult=0.35, num_classes=1000),
                          class_names=names, preprocessing=Preprocessing(input_size=32))
    assert main(["evaluate", str(big), "--data", str(folder), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and len(err[0]) < 400 and "1000 vs 3 classes" in err[0], err


def test_unwritable_out_is_one_line_before_any_work(checkpoint, folder, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["evaluate", str(checkpoint), "--data", str(folder), "--out", str(tmp_path / "file"), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file" in err[0], err


@pytest.mark.slow
def test_torchrun_two_processes_same_report(checkpoint, folder, capsys):
    """Each process evaluates its share; the gathered report equals the single-process one."""
    import os
    import subprocess
    import sys

    argv = ["evaluate", str(checkpoint), "--data", str(folder), "--split", "all", "--json", "--workers", "0",
            "--batch-size", "4", "--device", "cpu"]
    assert main(argv) == 0
    alone = json.loads(capsys.readouterr().out)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "mobilenetv2", *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    together = json.loads(proc.stdout)  # only rank 0 prints
    assert together["num_samples"] == alone["num_samples"] == 12
    assert together["confusion_matrix"] == alone["confusion_matrix"]
    assert together["loss"] == pytest.approx(alone["loss"], abs=1e-6)
