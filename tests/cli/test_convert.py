"""``mobilenetv2 convert``: real TFLite weights to a checkpoint that ``predict`` uses; bad input gives one line."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mobilenetv2.cli import main

PHOTOS = {"grace_hopper.bmp": "military uniform", "cat.bmp": "Egyptian cat", "parrot.jpg": "macaw"}


@pytest.fixture(scope="module")
def tflite_dir(shared_data: Path) -> Path:
    if importlib.util.find_spec("ai_edge_litert") is None:
        pytest.skip("ai-edge-litert is needed to read .tflite files (pip install 'mobilenetv2[interop]')")
    folder = shared_data / "tflite"
    if not (folder / "mobilenet_v2_1.0_224_quant.tflite").is_file():
        pytest.skip(f"the TFLite MobileNetV2 is not in {folder}")
    return folder


@pytest.fixture(scope="module")
def converted(tflite_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("convert") / "mobilenet_v2_1.0_224.safetensors"
    code = main(["convert", str(tflite_dir / "mobilenet_v2_1.0_224_quant.tflite"), str(out),
                 "--labels", str(tflite_dir / "imagenet_labels.txt"), "--drop-background"])
    assert code == 0 and out.is_file()
    return out


def test_convert_prints_what_it_read(tflite_dir, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    assert main(["convert", str(tflite_dir / "mobilenet_v2_1.0_224_quant.tflite"), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "width 1.0, 1001 classes (1001 labels), input 224x224 RGB pixels p as p/128 - 1, TF padding" in printed
    assert "convert again with --calibrate IMAGES" in printed


@pytest.mark.slow
def test_calibrate_on_photos(tflite_dir, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    assert main(["convert", str(tflite_dir / "mobilenet_v2_1.0_224_quant.tflite"), str(out),
                 "--calibrate", str(tflite_dir / "*.bmp"), "--calibrate-images", "1"]) == 0
    assert "BatchNorm statistics calibrated on 1 images" in capsys.readouterr().out


def test_predict_with_the_converted_checkpoint(converted, tflite_dir, capsys):
    capsys.readouterr()
    photos = [str(tflite_dir / name) for name in PHOTOS]
    assert main(["predict", str(converted), *photos, "--format", "jsonl", "--top-k", "5"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {Path(r["image"]).name: r["labels"][0] for r in rows} == PHOTOS
    assert all(len(r["labels"]) == 5 for r in rows)


def test_wrong_labels_write_nothing(tflite_dir, tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("ants\nbees\n")
    out = tmp_path / "m.safetensors"
    code = main(["convert", str(tflite_dir / "mobilenet_v2_1.0_224_quant.tflite"), str(out), "--labels", str(labels)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists() and list(tmp_path.iterdir()) == [labels]
    assert err == (f"mobilenetv2 convert: error: labels file {labels} has 2 labels but the model has 1001 classes; "
                   "give one label per class, one a line")


def test_truncated_file_keeps_the_old_checkpoint(tflite_dir, tmp_path, capsys):
    truncated = tmp_path / "broken.tflite"
    truncated.write_bytes((tflite_dir / "mobilenet_v2_1.0_224_quant.tflite").read_bytes()[:1_000_000])
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"previous checkpoint")
    assert main(["convert", str(truncated), str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a readable TFLite model" in err[0]
    assert out.read_bytes() == b"previous checkpoint"


@pytest.mark.parametrize(("args", "message"), [
    (["labels.txt", "m.safetensors"], "cannot tell the format of labels.txt: allowed extensions are .tflite, .keras, .h5"),
    (["missing.tflite", "m.safetensors"], "source file not found: missing.tflite"),
    (["model.keras", "m.safetensors", "--drop-background"], "--drop-background and --calibrate apply to TFLite files"),
    (["model.keras", "m.pth"], "the output must be a .safetensors file, got m.pth"),
])
def test_bad_arguments(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    Path("labels.txt").write_text("a\n")
    Path("model.keras").write_bytes(b"PK")
    assert main(["convert", *args]) == 2
    assert message in capsys.readouterr().err
    assert not Path("m.safetensors").exists()


@pytest.mark.slow
def test_convert_keras_file(tmp_path, capsys):
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is needed to make the Keras file")
    make = textwrap.dedent("""
        import sys, keras
        keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(32, 32, 3), classes=3).save(sys.argv[1])
    """)
    source = tmp_path / "tiny.keras"
    env = {**os.environ, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "2"}
    subprocess.run([sys.executable, "-c", make, str(source)], env=env, check=True, capture_output=True, timeout=300)
    labels = tmp_path / "labels.txt"
    labels.write_text("ant\nbee\nwasp\n")
    out = tmp_path / "tiny.safetensors"
    assert main(["convert", str(source), str(out), "--labels", str(labels)]) == 0
    assert "(keras)" in capsys.readouterr().out
    from mobilenetv2.weights import load_checkpoint

    ckpt = load_checkpoint(out)
    assert ckpt.class_names == ["ant", "bee", "wasp"] and ckpt.model.arch["args"]["width_mult"] == 0.35
    assert ckpt.preprocessing.input_size == 32 and ckpt.preprocessing.resize_mode == "squash"
