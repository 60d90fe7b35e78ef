"""TFLite Metadata written into our .tflite files, the way app task libraries (MediaPipe Tasks, the TFLite Task Library)
read it: a ``TFLITE_METADATA`` buffer (a flatbuffer of tflite-support's ``metadata_schema.fbs``, root ``ModelMetadata``,
identifier ``M001``) registered in the model's ``metadata`` list, and its associated files (labels) in a zip appended
to the model, as tflite-support's populator packs them.

Written with ``flatbuffers.Builder`` table by table (the field slots below are the schema's; mediapipe 1.2's metadata
writer needs a compiled module its wheel lacks, and tflite-support needs protobuf < 4): name, description, version,
author and license; the input image (RGB, its ``NormalizationOptions``); each output (its labels, a detector's box
layout and score threshold); and custom metadata: ``DETECTOR_METADATA`` (MediaPipe's ``object_detector_metadata_schema``:
SSD anchors and box decoding), ``SEGMENTER_METADATA`` (the activation of the score maps) and ``mobilenetv2`` (our own
task, architecture and resize settings as JSON)."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mobilenetv2.weights.tflite_metadata import METADATA_NAME

OWN_METADATA = "mobilenetv2"  # custom metadata: our task, architecture, resize settings and precision (JSON)
META_BACKGROUND = "mobilenetv2.background"  # a detector's class 0, which its label file leaves out

MIN_PARSER_VERSION = "1.5.0"  # custom metadata in a subgraph (DETECTOR_METADATA, ours) came with schema 1.5.0
METADATA_IDENTIFIER = b"M001"
DETECTOR_IDENTIFIER = b"V001"
RGB = 1  # ColorSpaceType
IMAGE_PROPERTIES, BOUNDING_BOX_PROPERTIES = 2, 3  # ContentProperties
NORMALIZATION, SCORE_THRESHOLDING = 1, 3  # ProcessUnitOptions
TENSOR_AXIS_LABELS = 2  # AssociatedFileType
BOUNDARIES, RATIO = 1, 0  # BoundingBoxType, CoordinateType
SOFTMAX = 2  # image_segmenter_metadata_schema's Activation


@dataclass
class Table:
    """One flatbuffer table: ``fields`` maps a slot to a value: str, bytes (a ubyte vector), Table, list of Tables, or
    a typed scalar or vector ``(kind, value)`` with kind one of u8, i8, i32, f32, bool, f32[], u32[]."""

    fields: dict[int, Any] = field(default_factory=dict)


SCALARS = {"u8": "PrependUint8Slot", "i8": "PrependInt8Slot", "i32": "PrependInt32Slot", "f32": "PrependFloat32Slot",
           "bool": "PrependBoolSlot"}
VECTORS = {"f32[]": np.float32, "u32[]": np.uint32}


def serialize(root: Table, identifier: bytes) -> bytes:
    """``root`` as a finished flatbuffer with its file ``identifier``."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.ForceDefaults(True)
    builder.Finish(_build(builder, root), file_identifier=identifier)
    return bytes(builder.Output())


def _build(builder: Any, table: Table) -> int:
    offsets = {slot: _child(builder, value) for slot, value in table.fields.items()
               if not (isinstance(value, tuple) and value[0] in SCALARS)}
    builder.StartObject(max(table.fields, default=-1) + 1)
    for slot, value in table.fields.items():
        if slot in offsets:
            builder.PrependUOffsetTRelativeSlot(slot, offsets[slot], 0)
        else:
            getattr(builder, SCALARS[value[0]])(slot, value[1], 0)
    return builder.EndObject()


def _child(builder: Any, value: Any) -> int:
    if isinstance(value, str):
        return builder.CreateString(value)
    if isinstance(value, bytes):
        return builder.CreateByteVector(value)
    if isinstance(value, Table):
        return _build(builder, value)
    if isinstance(value, list):
        children = [_build(builder, child) for child in value]
        builder.StartVector(4, len(children), 4)
        for child in reversed(children):
            builder.PrependUOffsetTRelative(child)
        return builder.EndVector()
    kind, values = value
    return builder.CreateNumpyVector(np.asarray(values, dtype=VECTORS[kind]))


# -- the tables of metadata_schema.fbs used here ----------------------------------------------------------------------
def labels_file(name: str, description: str) -> Table:
    """An AssociatedFile: one label per entry of the tensor's last axis."""
    return Table({0: name, 1: description, 2: ("i8", TENSOR_AXIS_LABELS)})


def image_input(name: str, description: str, mean: float, std: float) -> Table:
    """TensorMetadata of an RGB image input whose pixels p become ``(p - mean) / std``."""
    normalization = Table({0: ("f32[]", [mean]), 1: ("f32[]", [std])})
    return Table({0: name, 1: description,
                  3: Table({0: ("u8", IMAGE_PROPERTIES), 1: Table({0: ("i8", RGB)})}),
                  4: [Table({0: ("u8", NORMALIZATION), 1: normalization})]})


def output(name: str, description: str, files: list[Table] | None = None, *, boxes: bool = False,
           score_threshold: float | None = None) -> Table:
    """TensorMetadata of an output: its labels; ``boxes``: corners (xmin, ymin, xmax, ymax as ratios of the image)."""
    fields: dict[int, Any] = {0: name, 1: description}
    if boxes:
        box = Table({0: ("u32[]", [0, 1, 2, 3]), 1: ("i8", BOUNDARIES), 2: ("i8", RATIO)})
        fields[3] = Table({0: ("u8", BOUNDING_BOX_PROPERTIES), 1: box})
    if score_threshold is not None:
        fields[4] = [Table({0: ("u8", SCORE_THRESHOLDING), 1: Table({0: ("f32", score_threshold)})})]
    if files:
        fields[6] = files
    return Table(fields)


def custom(name: str, data: bytes) -> Table:
    return Table({0: name, 1: data})


def model_metadata(info: dict[str, str], inputs: list[Table], outputs: list[Table], customs: list[Table]) -> bytes:
    """The ``TFLITE_METADATA`` buffer: ``info`` (name, description, version, author, license), one subgraph."""
    subgraph = Table({0: info["name"], 1: info["description"], 2: inputs, 3: outputs, **({9: customs} if customs else {})})
    return serialize(Table({0: info["name"], 1: info["description"], 2: info["version"], 3: [subgraph],
                            4: info["author"], 5: info["license"], 7: MIN_PARSER_VERSION}), METADATA_IDENTIFIER)


def detector_options(anchors: np.ndarray, num_classes: int, scales: tuple[float, float, float, float],
                     sigmoid: bool) -> bytes:
    """MediaPipe's ObjectDetectorOptions for a model without NMS: fixed anchors ``[A, 4]`` (y_center, x_center, h, w as
    ratios), raw box codes (y, x, h, w) divided by ``scales`` (y, x, h, w), sizes through exp."""
    fixed = [Table({0: ("f32", float(x)), 1: ("f32", float(y)), 2: ("f32", float(w)), 3: ("f32", float(h))})
             for y, x, h, w in np.asarray(anchors, dtype=np.float64)]
    y, x, h, w = scales
    decoding = Table({0: ("i32", num_classes), 1: ("i32", len(fixed)), 2: ("i32", 4), 3: ("i32", 0), 4: ("i32", 0),
                      5: ("i32", 2), 6: ("f32", x), 7: ("f32", y), 8: ("f32", w), 9: ("f32", h), 10: ("bool", True),
                      11: ("bool", sigmoid)})
    root = Table({0: "1.0.0", 1: Table({0: Table({0: fixed})}), 2: decoding})
    return serialize(root, DETECTOR_IDENTIFIER)


def segmenter_options() -> bytes:
    """MediaPipe's ImageSegmenterOptions: the score maps become probabilities through a softmax."""
    return serialize(Table({0: ("i8", SOFTMAX), 1: "1.0.0"}), b"V001")


# -- into the model -------------------------------------------------------------------------------------------------
def populate(model: bytes, metadata: bytes, files: dict[str, bytes]) -> bytes:
    """``model`` with ``metadata`` as its ``TFLITE_METADATA`` buffer (replacing any) and ``files`` zipped onto it."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    tree = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    tree.metadata = [m for m in (tree.metadata or []) if m.name != METADATA_NAME]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata, dtype=np.uint8)
    tree.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(tree.buffers) - 1
    tree.metadata.append(entry)
    out = io.BytesIO(bytes(flatbuffer_utils.convert_object_to_bytearray(tree)))
    if files:
        out.seek(0, io.SEEK_END)
        with zipfile.ZipFile(out, "a") as archive:  # as tflite-support appends associated files
            for name, data in files.items():
                archive.writestr(name, data)
    return out.getvalue()
