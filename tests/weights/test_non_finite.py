"""Weights that cannot be right are refused: a NaN in a checkpoint is one line naming the tensor and exit 2 for
predict, evaluate, export, quantize and serve; a file whose weights are not read here (ONNX) is refused on its
first batch's outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenetv2.cli import main
from mobilenetv2.models import create_model
from mobilenetv2.spec import Preprocessing
from mobilenetv2.weights import save_checkpoint

CLASSES = ["background", "cat", "dog"]
NAMED = "tensor 'classifier.1.weight' holds NaN values"


def tiny_model(poisoned: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=len(CLASSES)).eval()
    if poisoned:
        with torch.no_grad():
            model.classifier[1].weight[0, 0] = float("nan")
    return model


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("nan")
    data = root / "data"
    rng = np.random.default_rng(0)
    for name in CLASSES:
        (data / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(data / name / f"{i}.png")
    save = dict(class_names=CLASSES, preprocessing=Preprocessing(input_size=64))
    return {"data": data, "poisoned": save_checkpoint(root / "poisoned.safetensors", tiny_model(True), **save),
            "good": save_checkpoint(root / "good.safetensors", tiny_model(False), **save)}


def one_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.err.strip().count("\n") == 0, captured.err
    return captured.err


@pytest.mark.parametrize("command", [
    ["predict", "{poisoned}", "{data}"],
    ["evaluate", "{poisoned}", "--data", "{data}", "--split", "all"],
    ["export", "{poisoned}", "--out", "{tmp}/model.onnx"],
    ["quantize", "{poisoned}", "--calib", "{data}", "--out", "{tmp}/model.onnx"],
])
def test_each_command_refuses_a_nan_checkpoint_naming_the_tensor(files, command, tmp_path, capsys):
    argv = [arg.format(tmp=tmp_path, **files) for arg in command]
    assert main(argv) == 2
    err = one_line(capsys)
    assert NAMED in err and "does not match" not in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_serve_refuses_a_nan_checkpoint_before_listening(files):
    done = subprocess.run([sys.executable, "-m", "mobilenetv2", "serve", str(files["poisoned"]), "--port", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and NAMED in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr


def test_export_of_a_model_object_with_nan_blames_the_weights(files, tmp_path):
    from mobilenetv2.errors import UserError
    from mobilenetv2.export.exporter import export_model
    from mobilenetv2.weights import load_checkpoint

    meta = load_checkpoint(files["good"]).meta
    with pytest.raises(UserError, match="the model to export: tensor 'classifier.1.weight' holds NaN"):
        export_model(tiny_model(True), tmp_path / "model.onnx", "onnx", meta=meta)


def test_an_onnx_file_with_nan_weights_is_refused_on_its_first_outputs(files, tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    good = tmp_path / "good.onnx"
    assert main(["export", str(files["good"]), "--out", str(good)]) == 0
    model = onnx.load(str(good))
    last = max(model.graph.initializer, key=lambda t: t.name if "classifier" in t.name else "")
    values = numpy_helper.to_array(last).copy()
    values.flat[0] = np.nan
    last.CopyFrom(numpy_helper.from_array(values, last.name))
    poisoned = tmp_path / "poisoned.onnx"
    onnx.save(model, str(poisoned))
    capsys.readouterr()
    assert main(["predict", str(poisoned), str(files["data"])]) == 2
    err = one_line(capsys)
    assert "outputs are NaN or infinite" in err and "weights" in err
    assert main(["predict", str(good), str(files["data"])]) == 0
