"""The server's upload path: the same draft-mode decoding, resizing and normalising as ``predict``'s pipeline; the server
and the stream run an exported file with torch blocked."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.inference import load_predictor
from mobilenetv2.inference.stream.decode import model_inputs, read_picture
from mobilenetv2.serving.upload import prepare_upload


def test_an_upload_decodes_in_draft_mode_as_predict_does(tiny_checkpoint):
    clf = load_predictor(tiny_checkpoint)  # input 64, crop 0.875: the short side is resized to 73
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (600, 800, 3), dtype=np.uint8)).save(buffer, "JPEG")
    body = buffer.getvalue()
    picture, full = read_picture(body, decode_size=clf.decode_size)
    assert full == (800, 600) and picture.size == (100, 75)  # 1/8 scale: 75 >= 73
    inputs, state = prepare_upload(clf, body)
    want, _ = model_inputs(clf, picture, full)
    assert inputs.dtype == np.float32 and inputs.shape == (1, 3, 64, 64)
    np.testing.assert_array_equal(inputs, want)
    (reference,) = clf.predict(Image.open(io.BytesIO(body)))  # decoded at full size
    np.testing.assert_allclose(clf.finish(clf.logits(inputs), state).probabilities, reference.probabilities, atol=0.05)


BLOCKED = """
import sys
sys.modules.update(torch=None, torchvision=None)  # an import of either raises ImportError
from fastapi.testclient import TestClient
from mobilenetv2.inference.stream import Result, predict_stream
from mobilenetv2.serving.app import create_app
from mobilenetv2.serving.model import load_served
predictor, card = load_served(sys.argv[1], backend="onnxruntime")
with TestClient(create_app(predictor, card)) as client:
    answer = client.post("/v1/predict", content=open(sys.argv[2], "rb").read())
    assert answer.status_code == 200, answer.text
streamed = [r for r in predict_stream(predictor, sys.argv[2]) if isinstance(r, Result)]
assert streamed[0].prediction.indices[0] == answer.json()["indices"][0]
print("ok")
"""


def test_serving_and_the_stream_run_an_onnx_file_with_torch_blocked(tiny_onnx, tmp_path):
    pytest.importorskip("onnxruntime")
    photo = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(photo)
    done = subprocess.run([sys.executable, "-c", BLOCKED, str(tiny_onnx), str(photo)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
