"""TFLite Metadata read without tflite-support: the label file zipped onto Google's published files (no --labels
needed to predict or convert), a float input's NormalizationOptions, and damaged metadata as a warning."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from mobilenetv2.cli import main
from mobilenetv2.weights.tflite import convert_tflite
from mobilenetv2.weights.tflite_metadata import read_metadata

pytest.importorskip("ai_edge_litert")
from ai_edge_litert import schema_py_generated as schema  # noqa: E402

EXPECTED = {"grace_hopper.bmp": "military uniform", "cat.bmp": "Egyptian cat", "parrot.jpg": "macaw"}



def repacked(data: bytes, edit=None) -> bytes:
    """The model written back by LiteRT's schema (``edit`` applied to its ModelT): the zip appended to it is lost."""
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    if edit is not None:
        edit(model)
    builder = flatbuffers.Builder(len(data) * 5)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def normalization_metadata(mean: list[float], std: list[float]) -> bytes:
    """A ModelMetadata flatbuffer (metadata_schema.fbs) whose one input has NormalizationOptions(mean, std)."""
    import flatbuffers

    b = flatbuffers.Builder(256)

    def floats(values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependFloat32(v)
        return b.EndVector()

    def tables(offsets):
        b.StartVector(4, len(offsets), 4)
        for o in reversed(offsets):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    mean_vec, std_vec = floats(mean), floats(std)
    b.StartObject(2)  # NormalizationOptions: mean, std
    b.PrependUOffsetTRelativeSlot(0, mean_vec, 0)
    b.PrependUOffsetTRelativeSlot(1, std_vec, 0)
    options = b.EndObject()
    b.StartObject(2)  # ProcessUnit: options_type, options
    b.PrependUint8Slot(0, 1, 0)
    b.PrependUOffsetTRelativeSlot(1, options, 0)
    unit = b.EndObject()
    units = tables([unit])
    b.StartObject(7)  # TensorMetadata: process_units is slot 4
    b.PrependUOffsetTRelativeSlot(4, units, 0)
    tensor = b.EndObject()
    inputs = tables([tensor])
    b.StartObject(5)  # SubGraphMetadata: input_tensor_metadata is slot 2
    b.PrependUOffsetTRelativeSlot(2, inputs, 0)
    subgraph = b.EndObject()
    subgraphs = tables([subgraph])
    b.StartObject(8)  # ModelMetadata: subgraph_metadata is slot 3
    b.PrependUOffsetTRelativeSlot(3, subgraphs, 0)
    b.Finish(b.EndObject(), file_identifier=b"M001")
    return bytes(b.Output())


def with_metadata(buffer: bytes):
    """An edit that replaces the TFLITE_METADATA buffer's bytes."""
    def edit(model):
        (entry,) = [m for m in model.metadata if m.name == b"TFLITE_METADATA"]
        model.buffers[entry.buffer].data = np.frombuffer(buffer, dtype=np.uint8)
    return edit


@pytest.mark.parametrize("name", ["mobilenet_v1_0.5_160_quant.tflite", "mobilenet_v2_1.0_224_quant.tflite"])
def test_googles_files_carry_their_labels_and_normalisation(tflite_dir, name):
    metadata = read_metadata(tflite_dir / name)
    lines = (tflite_dir / "imagenet_labels.txt").read_text().splitlines()
    assert metadata.labels_file == "imagenet_labels.txt" and metadata.labels == lines and metadata.labels[0] == "background"
    assert (metadata.mean, metadata.std) == ((127.5,), (127.5,))


def test_predict_needs_no_labels_file(tflite_dir, capsys):
    photos = [str(tflite_dir / name) for name in EXPECTED]
    assert main(["predict", str(tflite_dir / "mobilenet_v2_1.0_224_quant.tflite"), *photos, "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["labels"][0] for row in rows] == list(EXPECTED.values())


def test_convert_takes_the_metadata_labels(tflite_dir, tmp_path, capsys):
    out = tmp_path / "v1.safetensors"
    assert main(["convert", str(tflite_dir / "mobilenet_v1_0.5_160_quant.tflite"), str(out), "--drop-background"]) == 0
    assert "1000 classes (1000 labels)" in capsys.readouterr().out
    ckpt = convert_tflite(tflite_dir / "mobilenet_v1_0.5_160_quant.tflite")
    assert ckpt.class_names[:2] == ["background", "tench, Tinca tinca"]


class InputOnly:
    """An interpreter as ``input_preprocessing`` sees it: one 1x160x160x3 input of ``dtype``."""

    def __init__(self, dtype, scale: float = 0.0, zero_point: int = 0) -> None:
        params = {"scales": np.array([scale] if scale else []), "zero_points": np.array([zero_point] if scale else [])}
        self.detail = {"shape": np.array([1, 160, 160, 3]), "dtype": dtype, "quantization_parameters": params}

    def get_input_details(self):
        return [self.detail]


def test_a_float_input_is_normalised_as_the_metadata_says(tflite_dir, tmp_path):
    from mobilenetv2.weights.tflite import input_preprocessing

    path = tmp_path / "normalised.tflite"
    source = (tflite_dir / "mobilenet_v1_0.5_160_quant.tflite").read_bytes()
    path.write_bytes(repacked(source, with_metadata(normalization_metadata([0.0], [255.0]))))
    metadata = read_metadata(path)
    assert (metadata.mean, metadata.std) == ((0.0,), (255.0,))
    pre = input_preprocessing(InputOnly(np.float32), metadata)
    assert pre.mean == (0.0, 0.0, 0.0) and pre.std == (1.0, 1.0, 1.0)
    assert input_preprocessing(InputOnly(np.float32)).mean == (0.5, 0.5, 0.5)  # no metadata: x/127.5 - 1
    # an integer input is fed the pixels its quantisation says, whatever the metadata
    assert input_preprocessing(InputOnly(np.uint8, 1 / 128, 128), metadata).mean == (128 / 255,) * 3
    path.write_bytes(repacked(source, with_metadata(normalization_metadata([123.675, 116.28, 103.53],
                                                                           [58.395, 57.12, 57.375]))))
    pre = input_preprocessing(InputOnly(np.float32), read_metadata(path))
    assert pre.mean == pytest.approx((0.485, 0.456, 0.406)) and pre.std == pytest.approx((0.229, 0.224, 0.225))


def test_damaged_metadata_is_a_warning(tflite_dir, tmp_path, caplog):
    source = (tflite_dir / "mobilenet_v1_0.5_160_quant.tflite").read_bytes()
    no_zip, garbage = tmp_path / "no_zip.tflite", tmp_path / "garbage.tflite"
    no_zip.write_bytes(repacked(source))  # the metadata still names imagenet_labels.txt, which is no longer there
    garbage.write_bytes(repacked(source, with_metadata(b"\xff" * 40)))
    with caplog.at_level(logging.WARNING):
        assert read_metadata(no_zip).labels is None
        assert "names the label file 'imagenet_labels.txt', which cannot be read" in caplog.text
        caplog.clear()
        assert read_metadata(garbage).labels is None and "its TFLite metadata cannot be read" in caplog.text
        ckpt = convert_tflite(garbage)
    assert ckpt.class_names is None and ckpt.model.arch["name"] == "mobilenet_v1"


def test_predict_on_a_file_without_labels_names_the_classes_by_index(tflite_dir, tmp_path, capsys):
    """No labels in the file and no --labels: the classes are "0", "1", ... (the output's count), not a crash."""
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(repacked((tflite_dir / "mobilenet_v1_0.5_160_quant.tflite").read_bytes()))
    assert main(["predict", str(bare), str(tflite_dir / "parrot.jpg"), "--format", "jsonl"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["labels"][0] == str(row["indices"][0]) and 0 <= row["indices"][0] < 1001
