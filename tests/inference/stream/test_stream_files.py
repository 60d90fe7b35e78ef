"""Image files through the prediction pipeline: folders, globs and list files in order, the same predictions as the
predictor's own, JPEG draft decoding, resumable output folders (even after SIGKILL), Parquet, and bad input."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.cli import main
from mobilenetv2.inference import load_predictor
from mobilenetv2.inference.stream import Failure, Result, predict_stream
from mobilenetv2.inference.stream.decode import read_image, read_picture


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """30 JPEG and PNG images of several sizes, two in a sub-folder."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    (root / "sub").mkdir()
    for i in range(30):
        size = (40 + 7 * (i % 5), 50 + 3 * i)
        name = f"sub/{i:02d}.png" if i >= 28 else f"{i:02d}.{'jpg' if i % 2 else 'png'}"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / name)
    return root


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_stream_gives_the_predictors_predictions_in_order(tiny_checkpoint, photos, tmp_path):
    clf = load_predictor(tiny_checkpoint)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# photos\n{photos / '03.jpg'}\n\n{os.path.relpath(photos / '10.png', tmp_path)}\n")
    results = [r for r in predict_stream(clf, [str(photos), str(photos / "0*.jpg"), str(listing)], batch_size=4, top_k=3)
               if isinstance(r, Result)]
    names = [os.path.relpath(r.frame.source, photos) for r in results]
    expected = sorted(p for p in os.listdir(photos) if p != "sub") + ["sub/28.png", "sub/29.png"]
    assert names == expected + ["01.jpg", "03.jpg", "05.jpg", "07.jpg", "09.jpg", "03.jpg", "10.png"]
    reference = clf.predict([str(photos / n) for n in names], top_k=3)
    for got, want in zip(results, reference):  # uint8 resizing in torch vs PIL: within a pixel level
        assert got.prediction.indices[0] == want.indices[0] or abs(got.prediction.probabilities[0] - want.probabilities[0]) < 1e-2
        np.testing.assert_allclose(got.prediction.probabilities, want.probabilities, atol=1e-2)


def test_jpeg_draft_decodes_at_the_smallest_scale_that_covers_the_input(tmp_path, tiny_checkpoint):
    big = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (600, 800, 3), dtype=np.uint8)).save(big, quality=90)
    clf = load_predictor(tiny_checkpoint)  # input 64, crop 0.875: the short side is resized to 73
    array, full = read_image(big, decode_size=clf.decode_size)
    assert full == (800, 600) and array.shape == (600 // 8, 800 // 8, 3)  # 1/8 scale: 75 >= 73
    array, _ = read_image(big)
    assert array.shape == (600, 800, 3)
    (result,) = [r for r in predict_stream(clf, str(big)) if isinstance(r, Result)]
    (reference,) = clf.predict(str(big))
    np.testing.assert_allclose(result.prediction.probabilities, reference.probabilities, atol=0.05)


def test_a_photo_tagged_sideways_decodes_upright_in_draft_mode(tmp_path):
    pixels = np.zeros((400, 600, 3), np.uint8)
    pixels[:, :300] = 255  # stored: white on the left half
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": the white half comes on top
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    picture, full = read_picture(tmp_path / "phone.jpg", decode_size=lambda w, h: (w // 4, h // 4))
    assert full == (400, 600) and picture.size == (100, 150) and picture.mode == "RGB"  # 1/4 scale, turned
    upright = np.asarray(picture)
    assert upright[:60].mean() > 200 and upright[90:].mean() < 50


def test_out_resumes_and_each_image_is_written_once(tiny_checkpoint, photos, tmp_path, capsys, caplog):
    out = tmp_path / "out"
    first = sorted(photos.glob("0*.png"))
    assert main(["predict", str(tiny_checkpoint), *map(str, first), "--out", str(out), "--format", "jsonl", "--parquet"]) == 0
    assert len(records(out / "predictions.jsonl")) == len(first)
    capsys.readouterr()
    assert main(["predict", str(tiny_checkpoint), str(photos), "--out", str(out), "--format", "jsonl", "--parquet",
                 "--batch-size", "4"]) == 0
    assert f"resuming: {len(first)} of 30 done" in caplog.text
    assert len(capsys.readouterr().out.splitlines()) == 30 - len(first)  # only the new ones are predicted
    written = records(out / "predictions.jsonl")
    assert sorted(r["image"] for r in written) == sorted(str(p) for p in photos.rglob("*.*"))
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 30 * 3 and rows[0]["image"] == written[0]["image"]  # 3 classes: top-3 rows an image
    import pyarrow.parquet as pq

    table = pq.read_table(out / "predictions.parquet")
    assert table.num_rows == 30 and table.column("image").to_pylist() == [r["image"] for r in written]
    assert table.column("probabilities").to_pylist()[5] == pytest.approx(written[5]["probabilities"])


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_gives_every_image_once(tiny_checkpoint, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in range(240):
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mobilenetv2", "predict", str(tiny_checkpoint), str(folder), "--out", str(out),
           "--format", "csv", "--batch-size", "2", "--workers", "1", "--threads", "1"]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    ledger, deadline = out / "predictions.jsonl", time.monotonic() + 120
    while (not ledger.exists() or ledger.stat().st_size < 1000) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    err = proc.communicate()[1].decode()
    before = len(ledger.read_text().splitlines())
    assert 0 < before < 240, f"the run was not killed mid-way ({before} lines): {err}"
    done = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming:" in done.stderr and "of 240 done" in done.stderr
    images = [r["image"] for r in records(ledger)]
    assert len(images) == 240 and sorted(images) == sorted(str(p) for p in folder.iterdir())
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 240 * 3 and {r["image"] for r in rows} == set(images)


def test_unreadable_file_is_one_line_and_the_run_goes_on(tiny_checkpoint, photos, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    items = list(predict_stream(load_predictor(tiny_checkpoint), [str(photos / "00.png"), str(broken),
                                                                  str(photos / "01.jpg")], batch_size=2))
    kinds = [type(i).__name__ for i in items]
    assert kinds == ["Result", "Failure", "Result", "SourceEnd"]
    assert isinstance(items[1], Failure) and "broken.jpg: not a readable image" in items[1].message


@pytest.mark.parametrize("argv, message", [
    (["--out", "{blocked}/out"], "is a file"),
    (["--draw"], "--draw needs --out"),
    (["--vid-stride", "0"], "--vid-stride must be >= 1"),
    (["--out", "{other}"], "holds predictions made with other settings"),
])
def test_bad_input_is_one_line_before_any_work(tiny_checkpoint, photos, tmp_path, capsys, argv, message):
    blocked = tmp_path / "blocked"  # a file where a folder should be: unwritable, even for root
    blocked.write_text("")
    other = tmp_path / "other"
    other.mkdir()
    (other / "predict.json").write_text(json.dumps({"model": "/elsewhere/model.onnx"}))
    (other / "predictions.jsonl").write_text("")
    argv = [a.format(blocked=blocked, other=other) for a in argv]
    assert main(["predict", str(tiny_checkpoint), str(photos / "00.png"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mobilenetv2 predict: error:") and message in err[0]
