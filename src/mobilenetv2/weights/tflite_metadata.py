"""TFLite Metadata, read without tflite-support: the ``TFLITE_METADATA`` buffer of a .tflite file is a flatbuffer of
tflite-support's ``metadata_schema.fbs`` (root ``ModelMetadata``), and the files it names (the class labels) are members
of a zip archive appended to the model. Gives the labels of the output and the input's ``NormalizationOptions``;
metadata that cannot be read is a warning, never an error."""

from __future__ import annotations

import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mobilenetv2.errors import UserError, first_line
from mobilenetv2.spec import Preprocessing

log = logging.getLogger(__name__)

METADATA_NAME = b"TFLITE_METADATA"
TENSOR_AXIS_LABELS = 2  # AssociatedFileType: one label per entry of the output's last axis
NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions: NormalizationOptions
# Field slots of the tables read here, as metadata_schema.fbs declares them (a union takes two: its type, its value).
MODEL_SUBGRAPHS = 3
SUBGRAPH_INPUTS, SUBGRAPH_OUTPUTS = 2, 3
TENSOR_PROCESS_UNITS, TENSOR_FILES = 4, 6
UNIT_TYPE, UNIT_OPTIONS = 0, 1
NORM_MEAN, NORM_STD = 0, 1
FILE_NAME, FILE_TYPE = 0, 2


@dataclass(frozen=True)
class TFLiteMetadata:
    """What a file's metadata says: its output's labels (and the zip member they came from), and the input's
    normalisation ``(x - mean) / std`` on 0-255 pixels."""

    labels: list[str] | None = None
    labels_file: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


def read_metadata(path: str | os.PathLike[str], data: bytes | None = None) -> TFLiteMetadata:
    """The metadata of the .tflite at ``path`` (``data``: its bytes, if already read); empty when it has none, and a
    warning when it has some that cannot be read."""
    path = Path(path)
    try:
        data = path.read_bytes() if data is None else data
        buffer = _metadata_buffer(data)
        if buffer is None:
            return TFLiteMetadata()
        return _parse(path, buffer)
    except Exception as exc:  # noqa: BLE001 - a damaged flatbuffer or zip raises anything; metadata is optional
        log.warning("warning: %s: its TFLite metadata cannot be read (%s); ignored", path, first_line(exc, 160))
        return TFLiteMetadata()


def _metadata_buffer(data: bytes) -> bytes | None:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == METADATA_NAME:
            buffer = model.Buffers(entry.Buffer())
            if buffer.DataLength():
                return buffer.DataAsNumpy().tobytes()
            if buffer.Offset() > 1:  # stored after the flatbuffer (files over 2 GB and some converters)
                return data[buffer.Offset():buffer.Offset() + buffer.Size()]
    return None


def _parse(path: Path, buffer: bytes) -> TFLiteMetadata:
    from flatbuffers import encode, number_types, table

    root = table.Table(bytearray(buffer), encode.Get(number_types.UOffsetTFlags.packer_type, buffer, 0))
    subgraphs = _tables(root, MODEL_SUBGRAPHS)
    if not subgraphs:
        return TFLiteMetadata()
    inputs, outputs = _tables(subgraphs[0], SUBGRAPH_INPUTS), _tables(subgraphs[0], SUBGRAPH_OUTPUTS)
    mean, std = _normalization(inputs[0]) if inputs else (None, None)
    name = next((_string(f, FILE_NAME) for f in (_tables(outputs[0], TENSOR_FILES) if outputs else [])
                 if _byte(f, FILE_TYPE) == TENSOR_AXIS_LABELS), None)
    labels = _zip_member_lines(path, name) if name else None
    return TFLiteMetadata(labels=labels, labels_file=name if labels else None, mean=mean, std=std)


def _normalization(tensor: Any) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    from flatbuffers import number_types

    for unit in _tables(tensor, TENSOR_PROCESS_UNITS):
        if _byte(unit, UNIT_TYPE) == NORMALIZATION_OPTIONS:
            options = _table(unit, UNIT_OPTIONS)
            mean, std = (tuple(float(v) for v in _vector(options, slot, number_types.Float32Flags)) or None
                         for slot in (NORM_MEAN, NORM_STD))
            if mean and std and all(s > 0 for s in std):
                return mean, std
    return None, None


def _zip_member_lines(path: Path, name: str) -> list[str] | None:
    """The lines of ``name`` in the zip appended to the model (blank ones dropped), or None with a warning."""
    try:
        with zipfile.ZipFile(path) as archive:
            text = archive.read(name).decode("utf-8")
    except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        log.warning("warning: %s: its metadata names the label file %r, which cannot be read from the file (%s); "
                    "give --labels", path, name, first_line(exc, 120))
        return None
    return [line.strip() for line in text.splitlines() if line.strip()]


# -- the few flatbuffer reads needed, on flatbuffers.table.Table ---------------------------------------------------
def _offset(t: Any, slot: int) -> int:
    return t.Offset(4 + 2 * slot)


def _string(t: Any, slot: int) -> str | None:
    o = _offset(t, slot)
    return t.String(o + t.Pos).decode("utf-8") if o else None


def _byte(t: Any, slot: int) -> int:
    from flatbuffers import number_types

    o = _offset(t, slot)
    return int(t.Get(number_types.Uint8Flags, o + t.Pos)) if o else 0


def _table(t: Any, slot: int) -> Any:
    from flatbuffers import table

    o = _offset(t, slot)
    return table.Table(t.Bytes, t.Indirect(o + t.Pos)) if o else None


def _tables(t: Any, slot: int) -> list[Any]:
    from flatbuffers import table

    o = _offset(t, slot)
    if not o:
        return []
    start = t.Vector(o)
    return [table.Table(t.Bytes, t.Indirect(start + 4 * i)) for i in range(t.VectorLen(o))]


def _vector(t: Any, slot: int, flags: Any) -> list[float]:
    o = _offset(t, slot) if t is not None else 0
    return list(t.GetVectorAsNumpy(flags, o)) if o else []


def metadata_labels(path: Path, metadata: TFLiteMetadata, count: int) -> list[str] | None:
    """The labels of the file's TFLite metadata when there is one per class; a warning (and None) when the count differs."""
    if metadata.labels is None:
        return None
    if len(metadata.labels) != count:
        log.warning("warning: %s: the label file of its metadata (%s) has %d labels but the model has %d classes; "
                    "ignored (give --labels)", path, metadata.labels_file, len(metadata.labels), count)
        return None
    return metadata.labels


def input_preprocessing(interpreter: Any, metadata: TFLiteMetadata | None = None) -> Preprocessing:
    """What the input tensor implies: RGB resized to its size, scaled as its quantization says; a float input as its
    TFLite metadata's NormalizationOptions say, else x/127.5 - 1."""
    (inp,) = interpreter.get_input_details()
    _, height, width, channels = (int(v) for v in inp["shape"])
    if height != width or channels != 3:
        raise UserError(f"the model's input is {height}x{width}x{channels}; only square RGB inputs are supported")
    scales, zero_points = inp["quantization_parameters"]["scales"], inp["quantization_parameters"]["zero_points"]
    if inp["dtype"] in (np.uint8, np.int8) and len(scales):
        offset = 128 if inp["dtype"] == np.int8 else 0  # an int8 input holds the pixel minus 128
        mean, std = (float(zero_points[0]) + offset) / 255, 1 / (255 * float(scales[0]))
    elif metadata is not None and metadata.mean is not None and len(metadata.mean) in (1, 3) and len(metadata.std) in (1, 3):
        return Preprocessing(input_size=height, crop_pct=1.0, interpolation="bilinear", resize_mode="squash",
                             mean=_per_channel(metadata.mean), std=_per_channel(metadata.std))
    else:
        mean, std = 0.5, 0.5
    return Preprocessing(input_size=height, crop_pct=1.0, interpolation="bilinear", mean=(mean,) * 3, std=(std,) * 3,
                         resize_mode="squash")


def _per_channel(values: tuple[float, ...]) -> tuple[float, ...]:
    """Metadata's 0-255 values (one, or one per channel) as our three 0-1 ones."""
    return tuple(v / 255 for v in (values * 3 if len(values) == 1 else values))
