"""TFLite import: the converted model against the LiteRT interpreter on the real quantized MobileNetV2 file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenetv2.data.preprocessing import eval_transform
from mobilenetv2.errors import UserError
from mobilenetv2.weights import load_checkpoint, save_checkpoint
from mobilenetv2.weights.tflite import _dequantize, calibrate_checkpoint, convert_tflite

from .conftest import float_copy, interpreter_logits, our_logits  # noqa: TID252

pytest.importorskip("ai_edge_litert")
from ai_edge_litert import schema_py_generated as schema  # noqa: E402

PHOTOS = {"grace_hopper.bmp": "military uniform", "cat.bmp": "Egyptian cat", "parrot.jpg": "macaw"}



@pytest.fixture(scope="module")
def quant_file(tflite_dir: Path) -> Path:
    return tflite_dir / "mobilenet_v2_1.0_224_quant.tflite"


@pytest.fixture(scope="module")
def converted(quant_file: Path, tflite_dir: Path):
    return convert_tflite(quant_file, labels=tflite_dir / "imagenet_labels.txt")


def photo_uint8(path: Path, size: int = 224) -> np.ndarray:
    """The README's reference input: the photo resized (bilinear) to size x size, HWC uint8."""
    return np.array(Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR))








def int8_per_channel_copy(data: bytes) -> bytes:
    """The same network as a full-int8 file with symmetric per-output-channel conv weights (requantized)."""
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    graph, ops = model.subgraphs[0], schema.BuiltinOperator
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    dtypes = {schema.TensorType.UINT8: np.uint8, schema.TensorType.INT32: np.int32}

    def values(t):
        return np.frombuffer(bytes(model.buffers[t.buffer].data), dtype=dtypes[t.type]).reshape(t.shape).astype(np.float64)

    def put(t, array):
        model.buffers[t.buffer].data = np.frombuffer(array.tobytes(), dtype=np.uint8)

    for op in graph.operators:
        if codes[op.opcodeIndex] not in (ops.CONV_2D, ops.DEPTHWISE_CONV_2D):
            continue
        x, w, b = (graph.tensors[i] for i in op.inputs)
        axis = 0 if codes[op.opcodeIndex] == ops.CONV_2D else 3
        real = (values(w) - w.quantization.zeroPoint[0]) * w.quantization.scale[0]
        others = tuple(d for d in range(4) if d != axis)
        peak = np.abs(real).max(axis=others)
        scale = np.where(peak > 0, peak / 127, w.quantization.scale[0])  # all-zero (pruned) channels keep the old scale
        shape = [-1 if d == axis else 1 for d in range(4)]
        put(w, np.round(real / scale.reshape(shape)).astype(np.int8))
        bias_scale = x.quantization.scale[0] * scale
        put(b, np.round(values(b) * b.quantization.scale[0] / bias_scale).astype(np.int32))
        for t, s, dim in ((w, scale, axis), (b, bias_scale, 0)):
            t.quantization.scale, t.quantization.quantizedDimension = s.astype(np.float32), dim
            t.quantization.zeroPoint = np.zeros(len(s), dtype=np.int64)
        w.type = schema.TensorType.INT8
    for t in graph.tensors:  # activations: uint8 with zero point z is int8 with zero point z - 128
        if t.type == schema.TensorType.UINT8:
            if model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data):
                put(t, (values(t) - 128).astype(np.int8))
            t.type = schema.TensorType.INT8
            t.quantization.zeroPoint = np.asarray(t.quantization.zeroPoint, dtype=np.int64) - 128
    builder = flatbuffers.Builder(len(data) + 65536)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def convert_tflite_bytes(data: bytes):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(data)
        return convert_tflite(path)


def modified(data: bytes, edit) -> bytes:
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    edit(model)
    builder = flatbuffers.Builder(len(data) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_architecture_and_preprocessing_read_from_the_file(converted):
    args = converted.model.arch["args"]
    assert (args["width_mult"], args["num_classes"], args["tf_padding"]) == (1.0, 1001, True)
    assert converted.class_names[0] == "background" and len(converted.class_names) == 1001
    pre = converted.preprocessing
    assert (pre.input_size, pre.resize_mode, pre.crop_pct, pre.interpolation) == (224, "squash", 1.0, "bilinear")
    pixels = torch.randint(0, 256, (3, 224, 224), dtype=torch.uint8)
    assert torch.allclose(eval_transform(pre)(pixels), pixels.float() / 128 - 1, atol=1e-6)


def test_batchnorm_is_identity_plus_folded_bias(converted):
    bn = converted.model.features[0][1]
    x = torch.randn(2, bn.num_features, 4, 4)
    assert torch.allclose(bn(x), x + bn.bias[None, :, None, None], atol=1e-6)


@pytest.mark.parametrize("photo", sorted(PHOTOS))
def test_top1_and_top5_match_the_interpreter(converted, quant_file, tflite_dir, photo):
    image = photo_uint8(tflite_dir / photo)
    ref, ours = interpreter_logits(quant_file, image), our_logits(converted.model, image)
    assert converted.class_names[int(ours.argmax())] == PHOTOS[photo] == converted.class_names[int(ref.argmax())]
    overlap = set(np.argsort(-ours)[:5]) & set(np.argsort(-ref, kind="stable")[:5])
    assert len(overlap) >= 4, (photo, overlap)


def test_float_tflite_gives_the_same_logits(converted, quant_file, tflite_dir):
    """A float32 copy of the file runs in the interpreter with the same weights: logits must agree to float error.

    This pins down layouts, TF "SAME" padding on stride-2 convs, residuals and the folded-BN mapping exactly.
    """
    data = float_copy(quant_file.read_bytes())
    image = photo_uint8(tflite_dir / "cat.bmp")
    ref = interpreter_logits(data, image.astype(np.float32) / 128 - 1)
    ours = our_logits(converted.model, image)
    assert np.abs(ours - ref).max() < 1e-3 * max(1.0, np.abs(ref).max())
    float_model = convert_tflite_bytes(data)
    assert float_model.preprocessing.mean == (0.5, 0.5, 0.5)
    assert np.abs(our_logits(float_model.model, image) - ours).max() < 1e-4


def test_int8_per_channel_file_matches_the_interpreter(converted, quant_file, tflite_dir):
    data = int8_per_channel_copy(quant_file.read_bytes())
    ckpt = convert_tflite_bytes(data)
    assert ckpt.preprocessing.mean == converted.preprocessing.mean  # int8 input p - 128 is still p/128 - 1
    image = photo_uint8(tflite_dir / "cat.bmp")
    ref = interpreter_logits(data, (image.astype(np.int16) - 128).astype(np.int8))
    ours = our_logits(ckpt.model, image)
    assert int(ours.argmax()) == int(ref.argmax()) == converted.class_names.index("Egyptian cat")
    assert len(set(np.argsort(-ours)[:5]) & set(np.argsort(-ref, kind="stable")[:5])) >= 4
    assert np.corrcoef(ours, our_logits(converted.model, image))[0, 1] > 0.99


def test_drop_background_gives_1000_classes(converted, quant_file, tflite_dir):
    dropped = convert_tflite(quant_file, labels=tflite_dir / "imagenet_labels.txt", drop_background=True)
    assert dropped.model.num_classes == 1000 and dropped.class_names == converted.class_names[1:]
    image = photo_uint8(tflite_dir / "parrot.jpg", 96)
    assert np.allclose(our_logits(dropped.model, image), our_logits(converted.model, image)[1:], atol=1e-5)


def test_saved_checkpoint_loads_with_labels_and_preprocessing(converted, tmp_path):
    path = save_checkpoint(tmp_path / "mnv2.safetensors", converted.model, converted.class_names, converted.preprocessing)
    loaded = load_checkpoint(path)
    model = loaded.model
    assert loaded.class_names == converted.class_names and loaded.preprocessing == converted.preprocessing
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), converted.model(x))


def test_per_channel_dequantization_and_bias_rule():
    q = np.array([[1, 3], [5, 7]], dtype=np.int8)
    detail = {"name": "w", "quantization_parameters": {
        "scales": np.array([0.5, 0.25], dtype=np.float32), "zero_points": np.array([1, 3]), "quantized_dimension": 1}}
    assert np.array_equal(_dequantize(q, detail), np.array([[0.0, 0.0], [2.0, 1.0]], dtype=np.float32))
    bias = {"name": "b", "quantization_parameters": {"scales": np.array([9.0]), "zero_points": np.array([0]),
                                                     "quantized_dimension": 0}}
    # int32 biases use input scale x per-channel weight scale, not the (per-tensor) scale stored with them.
    bias_scales = np.float32(0.5) * detail["quantization_parameters"]["scales"]
    out = _dequantize(np.array([4, 8], dtype=np.int32), bias, scales=bias_scales)
    assert np.array_equal(out, np.array([1.0, 1.0], dtype=np.float32))


def test_labels_of_the_wrong_length_are_rejected(quant_file, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    with pytest.raises(UserError, match="3 labels but the model has 1001 classes"):
        convert_tflite(quant_file, labels=labels)


def test_truncated_and_foreign_files_are_rejected(quant_file, tmp_path):
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(quant_file.read_bytes()[:200_000])
    with pytest.raises(UserError, match="not a readable TFLite model"):
        convert_tflite(truncated)
    text = tmp_path / "notes.tflite"
    text.write_text("not a model")
    with pytest.raises(UserError, match="not a readable TFLite model"):
        convert_tflite(text)


def test_wrong_activation_names_the_operator(quant_file, tmp_path):
    def relu_instead_of_relu6(model):
        model.subgraphs[0].operators[1].builtinOptions.fusedActivationFunction = schema.ActivationFunctionType.RELU

    path = tmp_path / "relu.tflite"
    path.write_bytes(modified(quant_file.read_bytes(), relu_instead_of_relu6))
    with pytest.raises(UserError, match=r"block 1's depthwise .* found operator 1 DEPTHWISE_CONV_2D .* activation RELU\)$"):
        convert_tflite(path)


def test_foreign_operator_is_named(quant_file, tmp_path):
    def logistic_instead_of_softmax(model):
        for code in model.operatorCodes:
            if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.SOFTMAX:
                code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.LOGISTIC

    path = tmp_path / "logistic.tflite"
    path.write_bytes(modified(quant_file.read_bytes(), logistic_instead_of_softmax))
    with pytest.raises(UserError, match="not a MobileNet V1/V2 file: operator 65 is LOGISTIC, which occurs in neither"):
        convert_tflite(path)


def test_missing_blocks_are_reported(quant_file, tmp_path):
    def drop_last_block(model):
        ops = model.subgraphs[0].operators
        # block 17 = expand, depthwise, project (no residual); rewire the head conv to read block 16's output.
        convs = (schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D)
        codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
        conv_ops = [i for i, op in enumerate(ops) if codes[op.opcodeIndex] in convs]
        head = conv_ops[-2]
        expand = head - 3
        ops[head].inputs = [ops[expand].inputs[0], *ops[head].inputs[1:]]
        del ops[expand:head]

    path = tmp_path / "short.tflite"
    path.write_bytes(modified(quant_file.read_bytes(), drop_last_block))
    with pytest.raises(UserError, match="found 16 inverted-residual blocks"):
        convert_tflite(path)


@pytest.mark.slow
def test_calibrated_batchnorm_keeps_eval_outputs_and_fits_training_mode(quant_file, tflite_dir):
    photos = [str(tflite_dir / name) for name in sorted(PHOTOS)]
    plain = convert_tflite(quant_file)
    images = torch.stack([eval_transform(plain.preprocessing)(Image.open(p).convert("RGB")) for p in photos])
    calibrated = convert_tflite(quant_file)
    assert calibrate_checkpoint(calibrated, images) == 3 and calibrated.extra["bn_calibration_images"] == 3
    with torch.no_grad():
        reference = plain.model(images)
        assert torch.allclose(calibrated.model(images), reference, atol=1e-3)
        # In training mode BN uses batch statistics: only the calibrated model still recognises the photos.
        assert torch.equal(calibrated.model.train()(images).argmax(1), reference.argmax(1))
        assert not torch.equal(plain.model.train()(images).argmax(1), reference.argmax(1))
