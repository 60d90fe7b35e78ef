"""The runtime interface: every backend opens its files, says what the model is and takes, and runs like PyTorch."""

import numpy as np
import pytest
import torch

from mobilenetv2.errors import UserError
from mobilenetv2.formats import open_runtime
from mobilenetv2.weights import load_checkpoint, load_model


@pytest.mark.slow
def test_onnx_runtime_matches_pytorch_and_reads_metadata(tiny_checkpoint, tiny_onnx):
    runtime = open_runtime(tiny_onnx, threads=1)
    assert (runtime.backend, runtime.format, runtime.precision) == ("onnxruntime", "onnx", "fp32")
    assert runtime.task == "classification" and runtime.class_names == ["ants", "bees"]
    assert runtime.preprocessing.input_size == 64 and runtime.architecture["name"] == "mobilenet_v2"
    assert (runtime.input_layout, runtime.input_dtype, runtime.input_shape) == ("NCHW", np.float32, (None, 3, 64, 64))
    assert runtime.max_batch is None and runtime.input_channels == 3
    x = torch.randn(5, 3, 64, 64)  # a batch size other than the export's: the batch is dynamic
    with torch.inference_mode():
        expected = load_model(tiny_checkpoint)(x).numpy()
    logits = runtime(x.numpy())
    assert logits.dtype == np.float32 and logits.shape == (5, 2)
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    np.testing.assert_allclose(runtime(x), logits)  # torch tensors are taken too


@pytest.mark.slow
def test_a_checkpoint_runs_on_torch_or_exported_on_another_backend(tiny_checkpoint):
    torch_runtime = open_runtime(tiny_checkpoint, device="cpu")
    assert (torch_runtime.backend, torch_runtime.format, torch_runtime.class_names) == ("torch", "checkpoint", ["ants", "bees"])
    onnx_runtime = open_runtime(load_checkpoint(tiny_checkpoint), "onnxruntime")
    assert (onnx_runtime.backend, onnx_runtime.format, onnx_runtime.task) == ("onnxruntime", "onnx", "classification")
    x = torch.randn(3, 3, 64, 64)
    np.testing.assert_allclose(onnx_runtime(x), torch_runtime(x), atol=1e-4)
    folder = onnx_runtime.path.parent
    assert folder.is_dir()
    onnx_runtime.close()
    assert not folder.exists()  # the temporary export goes with the runtime


def test_runtime_errors_are_one_line(tmp_path, tiny_onnx):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx model at all")
    with pytest.raises(UserError, match="not a loadable ONNX model"):
        open_runtime(corrupt)
    with pytest.raises(UserError, match="ONNX model not found"):
        open_runtime(tmp_path / "missing.onnx")
    with pytest.raises(UserError, match="cannot tell the model format"):
        open_runtime(tmp_path / "model.xyz")
    with pytest.raises(UserError, match="unknown backend 'tensorrt'; allowed: torch, onnxruntime"):
        open_runtime(tiny_onnx, "tensorrt")
    with pytest.raises(UserError, match="runs on --backend onnxruntime or openvino, not executorch"):
        open_runtime(tiny_onnx, "executorch")
    with pytest.raises(UserError, match=r"input must have 4 dimensions"):
        open_runtime(tiny_onnx)(np.zeros((3, 64, 64), np.float32))


def test_the_registry_is_the_one_declaration_of_a_format():
    from mobilenetv2.formats import FORMATS, get_format

    for name, entry in FORMATS.items():
        fmt = get_format(name)
        assert fmt.entry is entry and fmt.suffix == entry.suffixes[0]
        assert "suffix" not in vars(type(fmt))  # not declared again by the class
