"""A checkpoint, its ONNX file and its ExecuTorch program predict as the checkpoint's task, for every task: the
runtime says the task, load_predictor picks the task's predictor, and `predict` prints the task's answer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenetv2.cli import main
from mobilenetv2.errors import UserError
from mobilenetv2.inference import Classifier, load_predictor
from mobilenetv2.models import create_model
from mobilenetv2.spec import Preprocessing
from mobilenetv2.weights import save_checkpoint

pytestmark = pytest.mark.slow  # every test here takes more than ~10 s

TASKS = {  # task -> (model, input size, predictor class name, what its JSON record holds)
    "classification": ("mobilenet_v2", 64, "Classifier", "labels"),
    "segmentation": ("deeplabv3_mobilenet_v2", 65, "Segmenter", "fractions"),
    "detection": ("ssdlite_mobilenet_v2", 96, "Detector", "detections"),
}
NAMES = ["background", "a", "b"]


@pytest.fixture(scope="module", params=list(TASKS))
def checkpoint(request, tmp_path_factory):
    task = request.param
    name, size = TASKS[task][:2]
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, width_mult=0.35).eval()
    pre = Preprocessing(input_size=size, crop_pct=1.0, resize_mode="squash")
    return save_checkpoint(tmp_path_factory.mktemp(task) / f"{task}.safetensors", model, NAMES, pre, task=task)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(path)
    return path


def exported(checkpoint, fmt: str):
    if fmt == "checkpoint":
        return checkpoint
    out = checkpoint.with_suffix(f".{fmt}")
    if not out.exists():
        assert main(["export", str(checkpoint), "--format", fmt, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("fmt", ["checkpoint", "onnx", "pte"])
def test_each_file_predicts_as_its_task(checkpoint, fmt, photo, capsys):
    if fmt == "pte":
        pytest.importorskip("executorch", reason="ExecuTorch programs need the [interop] extra")
    if fmt == "onnx":
        pytest.importorskip("onnxruntime", reason="ONNX needs the [deploy] extra")
    task = checkpoint.stem
    path = exported(checkpoint, fmt)
    predictor = load_predictor(path, device="cpu")
    assert predictor.runtime.task == task and type(predictor).__name__ == TASKS[task][2]
    assert predictor.class_names == NAMES and predictor.runtime.format == fmt
    capsys.readouterr()
    assert main(["predict", str(path), str(photo), "--format", "jsonl"]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    assert TASKS[task][3] in record
    reference = load_predictor(checkpoint, device="cpu")
    x = torch.randn(2, 3, reference.preprocessing.input_size, reference.preprocessing.input_size,
                    generator=torch.Generator().manual_seed(1)).numpy()
    np.testing.assert_allclose(predictor.logits(x), reference.logits(x), atol=1e-4)


def test_a_predictor_refuses_another_tasks_model_and_options(checkpoint):
    task = checkpoint.stem
    if task != "classification":
        with pytest.raises(UserError, match=f"is a {task} model, not a classification one"):
            Classifier.load(checkpoint)
    predictor = load_predictor(checkpoint, device="cpu")
    foreign = "score_threshold" if task != "detection" else "tta"
    with pytest.raises(UserError, match=f"--{foreign.replace('_', '-')}: not an option of a {task} model"):
        predictor.configure(**{foreign: 0.5 if foreign == "score_threshold" else True})
