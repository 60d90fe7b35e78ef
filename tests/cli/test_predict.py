"""`mobilenetv2 predict`: files, folders and globs; table/jsonl/csv; broken files reported, the rest still run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.cli import main

CLASSES = ["cat", "dog", "fox"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, save_tiny):
    return save_tiny(tmp_path_factory.mktemp("ckpt") / "m.safetensors", CLASSES, seed=0, input_size=48)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    (root / "sub").mkdir()
    for i, name in enumerate(["a.png", "b.jpg", "sub/c.png"]):
        Image.fromarray(rng.integers(0, 256, (30 + 5 * i, 40, 3), dtype=np.uint8)).save(root / name)
    return root


def test_folder_jsonl(checkpoint, images, capsys):
    assert main(["predict", str(checkpoint), str(images), "--format", "jsonl", "--top-k", "2", "--batch-size", "2"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["image"].split("imgs")[-1][-5:] for r in rows] == ["a.png", "b.jpg", "c.png"]
    for r in rows:
        assert len(r["labels"]) == 2 and set(r["labels"]) <= set(CLASSES)
        assert r["probabilities"][0] >= r["probabilities"][1] and sum(r["probabilities"]) <= 1.0 + 1e-6


def test_glob_table_and_csv_agree(checkpoint, images, capsys):
    assert main(["predict", str(checkpoint), str(images / "*.png"), "--top-k", "1"]) == 0
    table = capsys.readouterr().out
    assert table.count("a.png") == 1 and "b.jpg" not in table and "| image" in table
    assert main(["predict", str(checkpoint), str(images / "a.png"), "--format", "csv", "--tta"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "image,rank,label,index,probability" and len(lines) == 1 + len(CLASSES)


def test_broken_file_reported_rest_still_run(checkpoint, images, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    code = main(["predict", str(checkpoint), str(broken), str(images / "a.png"), "--format", "jsonl"])
    out, err = capsys.readouterr()
    assert code == 1
    assert len(out.splitlines()) == 1 and "a.png" in out
    assert "broken.jpg" in err and "1 of 2 files could not be read" in err
    summary = [line for line in err.splitlines() if "could not be read" in line or " in " in line and "/s)" in line]
    assert len(summary) == 1 and summary[0].startswith("predict: 1 image in "), err  # one summary, "1 image"
    assert main(["predict", "-q", str(checkpoint), str(broken), str(images / "a.png"), "--format", "jsonl"]) == 1
    assert "1 of 2 files could not be read" in capsys.readouterr().err  # -q still says how many failed


@pytest.mark.parametrize("argv, message", [
    (["{ckpt}", "/nonexistent/x.png"], "no such file"),
    (["{ckpt}", "{empty}"], "no images found"),
    (["{junk}", "{img}"], "not a readable safetensors file"),
    (["{ckpt}", "{img}", "--top-k", "0"], "--top-k"),
])
def test_bad_input_one_line(checkpoint, images, tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 100)
    fill = {"ckpt": checkpoint, "empty": tmp_path / "empty", "junk": junk, "img": images / "a.png"}
    assert main(["predict", *(a.format(**fill) for a in argv)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mobilenetv2 predict: error:") and message in err[0]


def test_real_photos(shared_data, checkpoint, capsys):
    ants = shared_data / "hymenoptera_data" / "val" / "ants"
    assert main(["predict", str(checkpoint), str(ants / "*.jpg"), "--format", "jsonl", "--top-k", "1"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == len(list(ants.glob("*.jpg"))) > 10


def test_out_draw_writes_a_picture_per_image_and_the_predictions(checkpoint, images, tmp_path, capsys):
    out = tmp_path / "pictures"
    assert main(["predict", str(checkpoint), str(images / "*.png"), "--format", "jsonl", "--out", str(out), "--draw"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    pictures = sorted(out.glob("*.png"))
    assert len(pictures) == len(printed) > 0
    from PIL import Image

    with Image.open(pictures[0]) as first:  # the image below a band with its top classes
        assert first.height > 14 and first.mode == "RGB"
    written = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [w["labels"] for w in written] == [p["labels"] for p in printed]


def test_a_one_channel_model_predicts_colour_photos_as_their_grayscale(tmp_path, capsys):
    import torch

    from mobilenetv2.data import Preprocessing
    from mobilenetv2.models import create_model
    from mobilenetv2.weights import save_checkpoint

    torch.manual_seed(0)
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=3, in_chans=1)
    torch.nn.init.normal_(model.classifier[-1].weight)
    gray = save_checkpoint(tmp_path / "gray.safetensors", model, CLASSES, Preprocessing(input_size=48, crop_pct=1.0,
                                                                                         mean=(0.5,), std=(0.5,)))
    photo = Image.fromarray(np.random.default_rng(4).integers(0, 256, (40, 52, 3), dtype=np.uint8))
    photo.save(tmp_path / "colour.png")
    photo.convert("L").save(tmp_path / "gray.png")
    assert main(["predict", str(gray), str(tmp_path / "colour.png"), str(tmp_path / "gray.png"), "--format", "jsonl",
                 "--top-k", "3"]) == 0
    colour, grayscale = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert colour["labels"] == grayscale["labels"]
    np.testing.assert_allclose(colour["probabilities"], grayscale["probabilities"], atol=2e-3)


@pytest.mark.parametrize("backend", ["onnxruntime", "auto"])
def test_predict_on_an_exported_file_never_imports_torch(tiny_onnx, tmp_path, backend):
    """The whole command in a fresh process (the full install): torch, torchvision and the training stack stay unloaded."""
    import os
    import subprocess
    import sys

    pytest.importorskip("onnxruntime")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(tmp_path / "photo.jpg")
    script = ("import sys\nfrom mobilenetv2.cli import main\n"
              f"code = main(['predict', {str(tiny_onnx)!r}, 'photo.jpg', '--backend', {backend!r}, '--format', 'jsonl'])\n"
              "print(sorted(m for m in ('torch', 'torchvision', 'torchmetrics', 'mobilenetv2.models') if m in sys.modules))\n"
              "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    record, loaded = done.stdout.splitlines()
    assert json.loads(record)["labels"] and loaded == "[]"
