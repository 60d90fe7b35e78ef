"""Detection through the same commands: train, evaluate (COCO report), predict (boxes drawn, JSON/CSV, tiles), info."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.cli import main

CLASSES = ["background", "bar", "square"]  # tests/conftest.py's boxes folder (sorted names after the background)


@pytest.fixture(scope="module")
def run(boxes_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("detrun") / "run"
    code = main(["train", "--task", "detection", "--data", str(boxes_folder), "--out", str(out), "--epochs", "2",
                 "--width-mult", "0.35", "--input-size", "64", "--batch-size", "4", "--workers", "0", "--device", "cpu",
                 "--augment", "none", "--no-progress"])
    assert code == 0
    return out


@pytest.mark.slow
def test_training_writes_the_coco_report_of_the_best_epoch(run):
    report = json.loads((run / "eval" / "report.json").read_text())
    assert report["class_names"] == CLASSES and report["num_images"] == 4
    assert (run / "eval" / "pr_curves.png").is_file() and any((run / "eval" / "detections").glob("*.png"))
    history = list(csv.DictReader((run / "metrics.csv").open()))
    assert {"val_map", "val_map50", "val_loss", "train_loss"} <= set(history[0])


@pytest.mark.slow
def test_evaluate_gives_coco_figures(run, boxes_folder, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["evaluate", str(run / "best.safetensors"), "--data", str(boxes_folder), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100"):
        assert -1 <= report[key] <= 1, key
    assert [c["name"] for c in report["per_class"]] == CLASSES[1:]
    assert [c["objects"] for c in report["per_class"]] == [4, 4]
    for name in ("report.md", "report.json", "pr_curves.png"):
        assert (out / name).is_file(), name


@pytest.mark.slow
def test_predict_tiles_a_large_photo_and_writes_boxes(run, tmp_path, capsys):
    rng = np.random.default_rng(3)
    photo = tmp_path / "large.png"
    Image.fromarray(rng.integers(0, 256, (150, 230, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "pred"
    assert main(["predict", str(run / "best.safetensors"), str(photo), "--out", str(out), "--draw", "--format", "jsonl",
                 "--tile", "64", "--score-threshold", "0", "--max-detections", "7"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["width"], row["height"]) == (230, 150) and row["tiles"] == 5 * 3  # stride 48, last ones at the edges
    assert 0 < len(row["detections"]) <= 7
    for det in row["detections"]:
        x0, y0, x1, y1 = det["box"]
        assert 0 <= x0 < x1 <= 230 and 0 <= y0 < y1 <= 150 and det["label"] in CLASSES[1:]
    assert Image.open(next(out.glob("*_large.png"))).size == (230, 150)
    table = list(csv.DictReader((out / "predictions.csv").open()))
    assert list(table[0]) == ["image", "label", "score", "xmin", "ymin", "xmax", "ymax"] and len(table) <= 7
    assert main(["predict", str(run / "best.safetensors"), str(photo), "--tile", "0"]) == 0
    assert "| 1 " in capsys.readouterr().out  # one input: no tiles


def test_detection_options_on_a_classifier_are_one_line(tmp_path, capsys):
    from mobilenetv2.data import Preprocessing
    from mobilenetv2.models import create_model
    from mobilenetv2.weights import save_checkpoint

    path = save_checkpoint(tmp_path / "c.safetensors", create_model("mobilenet_v2", width_mult=0.35, num_classes=2),
                           ["a", "b"], Preprocessing(input_size=32))
    Image.new("RGB", (40, 40)).save(tmp_path / "x.png")
    assert main(["predict", str(path), str(tmp_path / "x.png"), "--score-threshold", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "--score-threshold: not an option of a classification model" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_info_of_ssdlite_at_300(capsys):
    assert main(["info", "--model", "ssdlite_mobilenet_v2", "--num-classes", "91", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["resolution"] == 300 and 4.2e6 < info["params"] < 4.6e6 and 0.7e9 < info["macs"] < 0.85e9


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("broken.xml", "<annotation><object>", "broken.xml"),
    ("orphan.xml", None, "orphan.xml"),
])
def test_bad_annotations_are_one_line_and_write_nothing(boxes_folder, tmp_path, capsys, name, text, expected):
    data = tmp_path / "data"
    shutil.copytree(boxes_folder, data)
    if text is None:  # an annotation naming an image that is not there
        shutil.copy(data / "train" / "train0.xml", data / "train" / name)
    else:
        (data / "train" / name.replace(".xml", ".png")).write_bytes((data / "train" / "train1.png").read_bytes())
        (data / "train" / name).write_text(text)
    code = main(["train", "--task", "detection", "--data", str(data), "--out", str(tmp_path / "r"), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
