"""A TF1 Object Detection API checkpoint folder (tensor bundle + pipeline.config), read without TensorFlow: TF's own
writer's bytes, and the pedestrian detector's weights as a folder that converts to what its frozen graph gives."""

from __future__ import annotations

import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mobilenetv2.cli import main
from mobilenetv2.errors import UserError
from mobilenetv2.weights import load_checkpoint

pytest.importorskip("tensorboard", reason="reading a TF checkpoint needs tensorboard's protobuf classes ([tensorboard])")

from mobilenetv2.weights.tf_bundle import DTYPES, TABLE_MAGIC, bundle_messages, read_bundle  # noqa: E402
from mobilenetv2.weights.tf_checkpoint import parse_text_proto, read_pipeline  # noqa: E402
from mobilenetv2.weights.tf_detection import convert_tf_detection, graph_consts, read_graph  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "tf_bundle"))
from make_bundle import VARIABLES, value  # noqa: E402

TF_WRITTEN = Path(__file__).parent / "tf_bundle" / "model.ckpt"
WEIGHT = re.compile(r".*/(weights|depthwise_weights|biases|BatchNorm/(gamma|beta|moving_mean|moving_variance))")
CONFIG = """# the pedestrian model's settings (reconstructed from its frozen graph; its real config is not published)
model {
  ssd {
    num_classes: 1
    box_coder { faster_rcnn_box_coder { y_scale: 10.0 x_scale: 10.0 height_scale: 5.0 width_scale: 5.0 } }
    anchor_generator {
      ssd_anchor_generator {
        num_layers: 6
        min_scale: 0.2
        max_scale: 0.95
        aspect_ratios: 1.0
        aspect_ratios: 2.0
        aspect_ratios: 0.5
        aspect_ratios: 3.0
        aspect_ratios: 0.3333
      }
    }
    image_resizer { fixed_shape_resizer { height: 300 width: 300 } }
    box_predictor {
      convolutional_box_predictor { kernel_size: 3 use_depthwise: true box_code_size: 4
        conv_hyperparams { activation: RELU_6, batch_norm { train: true, scale: true, epsilon: 0.001, } } }
    }
    feature_extractor { type: 'ssd_mobilenet_v2' min_depth: 16 depth_multiplier: 1.0 use_depthwise: true }
    post_processing {
      batch_non_max_suppression { score_threshold: 1e-8 iou_threshold: 0.6 max_detections_per_class: 100
                                  max_total_detections: 100 }
      score_converter: SIGMOID
    }
  }
}
train_config: { batch_size: 24 fine_tune_checkpoint: "PATH_TO_BE_CONFIGURED/model.ckpt" }
eval_config: { num_examples: 8000 use_moving_averages: true }
"""


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _block(records: list[tuple[bytes, bytes]]) -> bytes:
    """A table block with every record a restart point (no shared key prefixes), and its 5-byte trailer."""
    body, restarts = bytearray(), []
    for key, val in records:
        restarts.append(len(body))
        body += _varint(0) + _varint(len(key)) + _varint(len(val)) + key + val
    restarts = restarts or [0]
    return bytes(body) + struct.pack(f"<{len(restarts)}I", *restarts) + struct.pack("<I", len(restarts))


def write_bundle(prefix: Path, tensors: dict[str, np.ndarray]) -> None:
    """The tensor-bundle format as TF lays it out (one shard, one data block): enough for the reader's test."""
    header_cls, entry_cls = bundle_messages()
    ids = {np.dtype(d): k for k, d in DTYPES.items() if d != "bfloat16"}
    data, records = bytearray(), [(b"", header_cls(num_shards=1).SerializeToString())]
    for name in sorted(tensors):
        array = np.array(tensors[name], order="C")  # (ascontiguousarray makes a scalar 1-d)
        entry = entry_cls(dtype=ids[array.dtype], shard_id=0, offset=len(data), size=array.nbytes)
        for size in array.shape:
            entry.shape.dim.add(size=size)
        data += array.tobytes()
        records.append((name.encode(), entry.SerializeToString()))
    table = bytearray()
    blocks = {}
    for what, block in (("data", _block(records)), ("meta", _block([]))):
        blocks[what] = (len(table), len(block))
        table += block + b"\0" * 5
    index = _block([(records[-1][0], _varint(blocks["data"][0]) + _varint(blocks["data"][1]))])
    blocks["index"] = (len(table), len(index))
    table += index + b"\0" * 5
    handles = b"".join(_varint(n) for what in ("meta", "index") for n in blocks[what])
    table += handles.ljust(40, b"\0") + struct.pack("<Q", TABLE_MAGIC)
    Path(f"{prefix}.index").write_bytes(bytes(table))
    Path(f"{prefix}.data-00000-of-00001").write_bytes(bytes(data))


@pytest.fixture(scope="module")
def graph(shared_data):
    return shared_data / "people" / "ssdlite_pedestrians" / "frozen_inference_graph.pb"


@pytest.fixture(scope="module")
def folder(graph, tmp_path_factory):
    """The pedestrian graph's weights as a training checkpoint: each trainable variable off by noise, its
    ExponentialMovingAverage shadow the frozen value (use_moving_averages: true), an RMSProp slot and global_step."""
    weights = {n: v for n, v in graph_consts(read_graph(graph)).items() if WEIGHT.fullmatch(n)}
    rng = np.random.default_rng(0)
    tensors = {"global_step": np.array(200000, np.int64)}
    for name, frozen in weights.items():
        trainable = "moving_" not in name
        tensors[name] = frozen + (rng.standard_normal(frozen.shape).astype(np.float32) * 0.05 if trainable else 0)
        if trainable:
            tensors[f"{name}/ExponentialMovingAverage"] = frozen
            tensors[f"{name}/RMSProp"] = np.ones_like(frozen)
    root = tmp_path_factory.mktemp("ssdlite_people")
    write_bundle(root / "model.ckpt", tensors)
    (root / "pipeline.config").write_text(CONFIG)
    (root / "checkpoint").write_text('model_checkpoint_path: "/elsewhere/train/model.ckpt"\n')
    return root


@pytest.fixture(scope="module")
def from_graph(graph):
    return convert_tf_detection(graph, labels=["background", "person"])


def test_reads_tensorflows_own_writer():
    """model.ckpt.* written by tf.compat.v1.train.Saver (make_bundle.py): names, dtypes, shapes and values."""
    bundle = read_bundle(TF_WRITTEN)
    assert sorted(bundle) == sorted(VARIABLES)
    for name, (shape, dtype) in VARIABLES.items():
        assert bundle[name].dtype == dtype and bundle[name].shape == shape
        assert np.array_equal(bundle[name], value(name, shape, dtype)), name


def test_the_test_writer_reads_back(tmp_path):
    tensors = {n: value(n, s, d) for n, (s, d) in VARIABLES.items()}
    write_bundle(tmp_path / "model.ckpt", tensors)
    bundle = read_bundle(tmp_path / "model.ckpt")
    assert sorted(bundle) == sorted(tensors) and all(np.array_equal(bundle[n], tensors[n]) for n in tensors)


def test_the_folder_converts_to_what_the_frozen_graph_gives(folder, from_graph, tmp_path, capsys):
    out = tmp_path / "people.safetensors"
    labels = tmp_path / "people.txt"
    labels.write_text("background\nperson\n")
    assert main(["convert", str(folder), str(out), "--labels", str(labels)]) == 0
    printed = capsys.readouterr().out
    assert "(tf_checkpoint)" in printed and "sigmoid class scores" in printed and "the variables' moving averages" in printed
    ckpt = load_checkpoint(out)
    assert ckpt.model.arch == from_graph.model.arch  # anchors (0.3333, float32 interpolated scales), classes, sigmoid
    ours, theirs = ckpt.model.state_dict(), from_graph.model.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert ckpt.class_names == from_graph.class_names and ckpt.preprocessing == from_graph.preprocessing
    extra = ckpt.extra
    assert (extra["nms_iou"], extra["max_detections"], extra["box_coder_scales"]) == (0.6, 100, [10.0, 10.0, 5.0, 5.0])


def test_without_moving_averages_the_raw_variables_are_taken(folder, from_graph, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    for file in folder.iterdir():
        (plain / file.name).symlink_to(file)
    (plain / "pipeline.config").unlink()
    (plain / "pipeline.config").write_text(CONFIG.replace("use_moving_averages: true", "use_moving_averages: false"))
    from mobilenetv2.weights.tf_checkpoint import convert_tf_checkpoint

    model = convert_tf_checkpoint(plain).model
    raw = read_bundle(folder / "model.ckpt")["FeatureExtractor/MobilenetV2/Conv/weights"]
    assert torch.equal(model.features[0][0].weight, torch.from_numpy(raw.transpose(3, 2, 0, 1).copy()))
    assert not torch.equal(model.features[0][0].weight, from_graph.model.features[0][0].weight)


def test_pipeline_settings(tmp_path):
    config = tmp_path / "pipeline.config"
    config.write_text(CONFIG)
    settings = read_pipeline(config)
    assert settings.num_classes == 2 and settings.score_converter == "sigmoid" and settings.use_moving_averages
    assert settings.anchor_specs[0] == [(0.1, 1.0), (0.2, 2.0), (0.2, 0.5)]
    assert settings.anchor_specs[3][5] == (0.7211102, 1.0)  # sqrt(0.65 * 0.8) in float32, as the graph holds it
    assert (settings.nms_iou, settings.score_threshold, settings.max_detections) == (0.6, 1e-8, 100)


def test_text_format_reader():
    message = parse_text_proto("a: 1 # note\nb { c: 'x\\'y' d: [1.5, 2] e: TRUE_ENUM f: true }\nb < c: \"z\" >, g: -3e-2")
    assert message == {"a": [1], "b": [{"c": ["x'y"], "d": [1.5, 2], "e": ["TRUE_ENUM"], "f": [True]}, {"c": ["z"]}],
                       "g": [-0.03]}
    with pytest.raises(ValueError, match="not closed"):
        parse_text_proto("a { b: 1")


def _copy(folder: Path, tmp_path: Path, **replace: bytes | str) -> Path:
    """The folder with some of its files replaced (bytes or text)."""
    copy = tmp_path / "copy"
    copy.mkdir()
    for file in folder.iterdir():
        if file.name not in replace:
            (copy / file.name).symlink_to(file)
    for name, content in replace.items():
        (copy / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return copy


def _one_line(source: Path, tmp_path: Path, capsys, *extra: str) -> str:
    out = tmp_path / "out.safetensors"
    capsys.readouterr()
    assert main(["convert", str(source), str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and not out.exists()
    return err


@pytest.mark.parametrize("cut", ["model.ckpt.index", "model.ckpt.data-00000-of-00001"])
def test_truncated_files_are_one_line(folder, tmp_path, capsys, cut):
    source = _copy(folder, tmp_path, **{cut: (folder / cut).read_bytes()[:2000]})
    assert "truncated" in _one_line(source, tmp_path, capsys)


def test_missing_pipeline_config_is_one_line(folder, tmp_path, capsys):
    source = _copy(folder, tmp_path)
    (source / "pipeline.config").unlink()
    assert "pipeline.config not found" in _one_line(source, tmp_path, capsys)


@pytest.mark.parametrize("extractor", ["ssd_mobilenet_v1", "ssd_resnet50_v1_fpn"])
def test_another_feature_extractor_is_named(folder, tmp_path, capsys, extractor):
    source = _copy(folder, tmp_path, **{"pipeline.config": CONFIG.replace("'ssd_mobilenet_v2'", f"'{extractor}'")})
    assert f"feature extractor {extractor}; only ssd_mobilenet_v2" in _one_line(source, tmp_path, capsys)


def test_full_convolution_heads_are_refused(folder, tmp_path, capsys):
    config = CONFIG.replace("kernel_size: 3 use_depthwise: true", "kernel_size: 3 use_depthwise: false")
    source = _copy(folder, tmp_path, **{"pipeline.config": config})
    assert "full convolution heads" in _one_line(source, tmp_path, capsys)


def test_a_label_map_whose_count_does_not_match_is_one_line(folder, tmp_path, capsys):
    label_map = tmp_path / "label_map.pbtxt"
    label_map.write_text("item { id: 1 name: 'person' }\nitem { id: 2 name: 'car' }\n")
    err = _one_line(folder, tmp_path, capsys, "--labels", str(label_map))
    assert "ids up to 2 but the model has 1 classes" in err


def test_a_config_whose_class_count_is_not_the_heads_is_one_line(folder, tmp_path, capsys):
    source = _copy(folder, tmp_path, **{"pipeline.config": CONFIG.replace("num_classes: 1", "num_classes: 90")})
    assert "config says 90 classes but the class predictors hold 1" in _one_line(source, tmp_path, capsys)


def test_a_folder_without_a_checkpoint_is_one_line(tmp_path, capsys):
    source = tmp_path / "empty"
    source.mkdir()
    (source / "pipeline.config").write_text(CONFIG)
    assert "expected one checkpoint" in _one_line(source, tmp_path, capsys)


def test_not_an_index_is_one_line(tmp_path):
    (tmp_path / "model.ckpt.index").write_bytes(b"\x00" * 100)
    with pytest.raises(UserError, match="not a TensorFlow checkpoint index"):
        read_bundle(tmp_path / "model.ckpt")
