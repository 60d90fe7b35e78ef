"""Helpers shared by the TFLite import tests: the published files' folder, the interpreter's logits, ours, and a
float copy of a quantized file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mobilenetv2.weights.tflite import _dequantize


@pytest.fixture(scope="module")
def tflite_dir(shared_data: Path) -> Path:
    """Google's published TFLite files and the three photos (../shared/data/tflite)."""
    return shared_data / "tflite"


def interpreter_logits(model: Path | bytes, image: np.ndarray) -> np.ndarray:
    """The interpreter's (dequantized) input to the final softmax: logits with far fewer ties than uint8 probabilities."""
    source = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(**source, experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], image[None].astype(inp["dtype"]))
    it.invoke()
    (softmax,) = [op for op in it._get_ops_details() if op["op_name"] == "SOFTMAX"]
    index = int(softmax["inputs"][0])
    logits = it.get_tensor(index)[0].astype(np.float64)
    scale, zero_point = it.get_tensor_details()[index]["quantization"]
    return (logits - zero_point) * scale if scale else logits


def our_logits(model: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 128 - 1
    with torch.no_grad():
        return model(x)[0].numpy()


def float_copy(data: bytes) -> bytes:
    """The same network as a float32 TFLite file: every quantized tensor dequantized, via LiteRT's schema."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    dtypes = {schema.TensorType.UINT8: np.uint8, schema.TensorType.INT8: np.int8, schema.TensorType.INT32: np.int32}
    for tensor in model.subgraphs[0].tensors:
        q = tensor.quantization
        if q is None or q.scale is None or len(q.scale) == 0:
            continue
        buffer = model.buffers[tensor.buffer]
        if buffer.data is not None and len(buffer.data):
            values = np.frombuffer(bytes(buffer.data), dtype=dtypes[tensor.type]).reshape(tensor.shape)
            params = {"scales": np.asarray(q.scale), "zero_points": np.asarray(q.zeroPoint),
                      "quantized_dimension": q.quantizedDimension}
            detail = {"name": tensor.name, "quantization_parameters": params}
            buffer.data = np.frombuffer(_dequantize(values, detail).tobytes(), dtype=np.uint8)
        tensor.type, tensor.quantization = schema.TensorType.FLOAT32, None
    builder = flatbuffers.Builder(len(data) * 5)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
