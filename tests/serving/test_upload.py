"""The server's upload path: the same draft-mode decoding, resizing and normalising as ``predict``'s pipeline."""

from __future__ import annotations

import io

import numpy as np
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
