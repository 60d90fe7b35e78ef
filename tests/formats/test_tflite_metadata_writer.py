"""The TFLite Metadata writer (flatbuffers, no tflite-support) against two readers: ours (weights/tflite_metadata.py)
and MediaPipe's generated schema code (what its task graphs read); a damaged detector entry is a warning."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from mobilenetv2.formats import tflite_metadata as md
from mobilenetv2.formats.tflite_app import DETECTOR_METADATA, AppInput, metadata_for
from mobilenetv2.spec import Preprocessing
from mobilenetv2.weights import CheckpointMeta
from mobilenetv2.weights.tflite_metadata import read_metadata

pytest.importorskip("ai_edge_litert", reason="reading .tflite files needs ai-edge-litert")

ANCHORS = np.array([[0.5, 0.5, 0.2, 0.1], [0.25, 0.75, 0.4, 0.3]])  # (y, x, h, w)


def detector_file(tmp_path, shared_data, anchors: np.ndarray = ANCHORS):
    meta = CheckpointMeta(architecture={"name": "ssdlite_mobilenet_v2", "args": {"num_classes": 3}}, task="detection",
                          class_names=["background", "bar", "square"],
                          preprocessing=Preprocessing(input_size=96, mean=(0.5,) * 3, std=(0.25,) * 3),
                          extra={"author": "someone", "license": "MIT"})
    app_input = AppInput.of(meta.preprocessing, 3)
    buffer, files = metadata_for(meta, app_input, "int8", anchors)
    base = (shared_data / "tflite" / "mobilenet_v1_0.5_160_quant.tflite").read_bytes()  # any model carries it
    path = tmp_path / "det.tflite"
    path.write_bytes(md.populate(base, buffer, files))
    return path, buffer


def test_what_is_written_reads_back_in_ours_and_in_mediapipes_schema(tmp_path, shared_data):
    path, buffer = detector_file(tmp_path, shared_data)
    metadata = read_metadata(path)
    assert metadata.labels == ["bar", "square"] and metadata.outputs == ("location", "score")  # the background left out
    assert metadata.mean == (127.5,) and metadata.std == (63.75,)
    assert metadata.info["author"] == "someone" and metadata.info["license"] == "MIT"
    decoding = metadata.detector()
    assert np.allclose(decoding.anchors, ANCHORS) and decoding.scales == (10.0, 10.0, 5.0, 5.0)
    assert decoding.exponential and not decoding.sigmoid
    schema = pytest.importorskip("mediapipe.tasks.metadata.metadata_schema_py_generated")
    detector_schema = pytest.importorskip("mediapipe.tasks.metadata.object_detector_metadata_schema_py_generated")
    root = schema.ModelMetadata.GetRootAs(buffer, 0)
    subgraph = root.SubgraphMetadata(0)
    box = subgraph.OutputTensorMetadata(0).Content()
    assert box.ContentPropertiesType() == schema.ContentProperties.BoundingBoxProperties
    custom = {subgraph.CustomMetadata(i).Name(): subgraph.CustomMetadata(i) for i in range(subgraph.CustomMetadataLength())}
    options = detector_schema.ObjectDetectorOptions.GetRootAs(custom[DETECTOR_METADATA.encode()].DataAsNumpy().tobytes(), 0)
    decoding = options.TensorsDecodingOptions()
    assert (decoding.NumClasses(), decoding.NumBoxes(), decoding.NumCoords()) == (2, 2, 4)
    anchor = options.SsdAnchorsOptions().FixedAnchorsSchema().Anchors(1)
    assert (anchor.YCenter(), anchor.XCenter(), anchor.Height(), anchor.Width()) == pytest.approx(ANCHORS[1])


def test_a_damaged_detector_entry_is_a_warning_not_a_crash(tmp_path, shared_data, caplog):
    path, _ = detector_file(tmp_path, shared_data)
    metadata = read_metadata(path)
    damaged = type(metadata)(custom={DETECTOR_METADATA: b"\xff" * 7})
    with caplog.at_level(logging.WARNING):
        assert damaged.detector() is None
    assert "DETECTOR_METADATA cannot be read" in caplog.text
