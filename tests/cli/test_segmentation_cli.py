"""Segmentation through the same commands: train, evaluate (mIoU report), predict (mask, overlay, fractions), info."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.cli import main

CLASSES = ["background", "square", "disc"]  # tests/conftest.py's shapes folder


@pytest.fixture(scope="module")
def run(shapes_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("segrun") / "run"
    code = main(["train", "--task", "segmentation", "--data", str(shapes_folder), "--out", str(out), "--epochs", "2",
                 "--width-mult", "0.35", "--input-size", "32", "--batch-size", "4", "--workers", "0", "--device", "cpu",
                 "--augment", "none", "--no-progress"])
    assert code == 0
    return out


@pytest.mark.slow
def test_evaluate_writes_the_miou_report(run, shapes_folder, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["evaluate", str(run / "best.safetensors"), "--data", str(shapes_folder), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["class_names"] == CLASSES and 0 <= report["miou"] <= 1 and 0 <= report["pixel_acc"] <= 1
    assert report["num_images"] == 4  # the val/ split by default
    for name in ("report.md", "report.json", "confusion_matrix.csv"):
        assert (out / name).is_file(), name
    assert any((out / "worst_images").glob("*.png"))


@pytest.mark.slow
def test_predict_writes_mask_overlay_and_fractions_at_any_size(run, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    for name, size in [("wide.png", (30, 70)), ("tall.jpg", (90, 41))]:
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(photos / name)
    out = tmp_path / "pred"
    assert main(["predict", str(run / "best.safetensors"), str(photos), "--out", str(out), "--draw", "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted((r["height"], r["width"]) for r in rows) == [(30, 70), (90, 41)]
    for r in rows:
        assert set(r["fractions"]) <= set(CLASSES) and abs(sum(r["fractions"].values()) - 1) < 1e-3
    mask = Image.open(next(out.glob("*_wide_mask.png")))
    assert mask.mode == "P" and mask.size == (70, 30) and max(np.asarray(mask).ravel()) < len(CLASSES)
    assert Image.open(next(out.glob("*_wide_overlay.png"))).size == (70, 30)
    table = list(csv.DictReader((out / "predictions.csv").open()))
    assert {"image", "class", "index", "fraction"} <= set(table[0])
    assert main(["predict", str(run / "best.safetensors"), str(photos / "wide.png"), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "image,class,index,fraction"


@pytest.mark.slow
def test_info_of_the_segmentation_models_at_513(capsys):
    assert main(["info", "--model", "deeplabv3_mobilenet_v2", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["resolution"] == 513 and abs(info["macs"] - 2.75e9) / 2.75e9 < 0.01
    assert main(["info", "--model", "lraspp_mobilenet_v2", "--resolution", "257"]) == 0
    assert "head.cbr" in capsys.readouterr().out


def test_bad_mask_is_one_line(shapes_folder, tmp_path, capsys):
    bad = tmp_path / "bad"
    (bad / "images").mkdir(parents=True)
    (bad / "masks").mkdir()
    Image.new("RGB", (40, 40)).save(bad / "images" / "a.png")
    Image.new("L", (20, 40)).save(bad / "masks" / "a.png")
    code = main(["train", "--task", "segmentation", "--data", str(bad), "--out", str(tmp_path / "r"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "a.png" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "best.safetensors").exists()


def test_predict_out_writes_the_masks_without_draw(run, tmp_path, capsys):
    """The masks are what a segmentation user came for: --out writes them; the overlays wait for --draw."""
    from mobilenetv2.inference import load_predictor

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(2)
    for name in ("one.png", "two.png"):
        Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)).save(photos / name)
    out = tmp_path / "pred"
    assert main(["predict", str(run / "best.safetensors"), str(photos), "--out", str(out), "--format", "jsonl"]) == 0
    capsys.readouterr()
    masks = sorted(out.glob("*_mask.png"))
    assert [p.name for p in masks] == ["0001_one_mask.png", "0002_two_mask.png"] and not list(out.glob("*_overlay.png"))
    expected = load_predictor(run / "best.safetensors").predict(photos / "one.png")[0].mask
    np.testing.assert_array_equal(np.asarray(Image.open(masks[0])), expected)
