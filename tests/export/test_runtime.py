import numpy as np
import pytest
import torch

from mobilenetv2.errors import UserError
from mobilenetv2.export.runtime import OnnxBackend
from mobilenetv2.weights import load_model


def test_onnx_backend_matches_pytorch_and_reads_metadata(tiny_checkpoint, tiny_onnx):
    backend = OnnxBackend(tiny_onnx, threads=1)
    assert backend.class_names == ["ants", "bees"]
    assert backend.preprocessing.input_size == 64
    x = torch.randn(5, 3, 64, 64)  # a batch size other than the export's: the batch is dynamic
    with torch.inference_mode():
        expected = load_model(tiny_checkpoint)(x).numpy()
    logits = backend(x.numpy())
    assert logits.dtype == np.float32 and logits.shape == (5, 2)
    np.testing.assert_allclose(logits, expected, atol=1e-4)


def test_onnx_backend_rejects_corrupt_and_missing_files(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx model at all")
    with pytest.raises(UserError, match="not a loadable ONNX model"):
        OnnxBackend(corrupt)
    with pytest.raises(UserError, match="not found"):
        OnnxBackend(tmp_path / "missing.onnx")
