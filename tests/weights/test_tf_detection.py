"""The TF Object Detection API's SSDLite-MobileNetV2 frozen graph: the converted checkpoint computes TensorFlow's tensors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from mobilenetv2.cli import main
from mobilenetv2.errors import UserError
from mobilenetv2.tasks.detection.boxes import decode
from mobilenetv2.weights import load_checkpoint

pytest.importorskip("tensorboard", reason="reading a frozen graph needs tensorboard's protobuf classes ([tensorboard])")
from tensorboard.compat.proto import graph_pb2  # noqa: E402

from mobilenetv2.weights.tf_detection import class_names, convert_tf_detection  # noqa: E402

PHOTOS = {"walkers": ("people", "walkers.bmp"), "grace_hopper": ("tflite", "grace_hopper.bmp"), "cat": ("tflite", "cat.bmp")}
PEOPLE = {"walkers": 2, "grace_hopper": 1, "cat": 0}
THRESHOLD = 0.3


@pytest.fixture(scope="module")
def graph(shared_data):
    return shared_data / "people" / "ssdlite_pedestrians" / "frozen_inference_graph.pb"


@pytest.fixture(scope="module")
def checkpoint(graph, tmp_path_factory):
    """The graph converted once by the real command (with the two labels), as a checkpoint file."""
    labels = tmp_path_factory.mktemp("labels") / "people.txt"
    labels.write_text("background\nperson\n")
    out = tmp_path_factory.mktemp("people") / "people.safetensors"
    assert main(["convert", str(graph), str(out), "--labels", str(labels)]) == 0
    return out


@pytest.fixture(scope="module")
def model(checkpoint):
    return load_checkpoint(checkpoint).model


@pytest.fixture(scope="module")
def references(shared_data):
    return {name: dict(np.load(shared_data / "people" / "reference" / f"{name}.npz")) for name in PHOTOS}


@torch.no_grad()
def raw_outputs(model, reference) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
    x = torch.from_numpy(reference["network_input"]).permute(0, 3, 1, 2)
    maps = model.feature_maps(x)
    boxes, logits = model.classifier(maps)
    return boxes[0], logits[0], [tuple(m.shape[-2:]) for m in maps]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = np.prod(np.clip(hi - lo, 0, None))
    return float(inter / (np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter))


def tf_detections(reference) -> list[tuple[np.ndarray, float, int]]:
    """TF's detections above the threshold: (box xyxy normalised, score, class id)."""
    keep = reference["detection_scores"][0] > THRESHOLD
    boxes = reference["detection_boxes"][0][keep][:, [1, 0, 3, 2]]
    return list(zip(boxes, reference["detection_scores"][0][keep], reference["detection_classes"][0][keep].astype(int)))


def test_checkpoint_records_what_tf_does(checkpoint):
    ckpt = load_checkpoint(checkpoint)
    args = ckpt.model.arch["args"]
    assert ckpt.task == "detection" and ckpt.class_names == ["background", "person"]
    assert args["score_converter"] == "sigmoid" and args["tf_padding"] and args["num_classes"] == 2
    assert args["anchor_specs"][0] == [[0.1, 1.0], [0.2, 2.0], [0.2, 0.5]]
    assert args["anchor_specs"][5][4] == [0.95, 0.3333]  # TF's config says 0.3333, not 1/3
    pre = ckpt.preprocessing
    assert (pre.input_size, pre.mean, pre.std, pre.resize_mode) == (300, (0.5,) * 3, (0.5,) * 3, "squash")
    assert ckpt.extra["nms_iou"] == 0.6 and ckpt.extra["box_coder_scales"] == [10.0, 10.0, 5.0, 5.0]


@pytest.mark.parametrize("name", PHOTOS)
def test_raw_outputs_and_anchors_equal_tensorflows(model, references, name):
    ref = references[name]
    boxes, logits, sizes = raw_outputs(model, ref)
    ty_tx_th_tw = boxes.numpy()[:, [1, 0, 3, 2]]  # ours: (tx, ty, tw, th)
    assert np.abs(ty_tx_th_tw - ref["box_encodings"][0, :, 0]).max() <= 1e-4
    assert np.abs(logits.numpy() - ref["class_logits"][0]).max() <= 1e-4
    anchors = model.anchors(sizes, torch.device("cpu")).numpy()  # xyxy; TF's npz holds ymin, xmin, ymax, xmax
    assert anchors.shape == (1917, 4) and np.abs(anchors[:, [1, 0, 3, 2]] - ref["anchors"]).max() <= 1e-6


@pytest.mark.parametrize("name", PHOTOS)
def test_decoded_detections_equal_tensorflows(model, references, name):
    ref = references[name]
    with torch.no_grad():
        outputs = model.eval()(torch.from_numpy(ref["network_input"]).permute(0, 3, 1, 2))
    ours = decode(outputs, THRESHOLD, score_converter="sigmoid")[0]
    theirs = tf_detections(ref)
    assert len(ours) == len(theirs) == PEOPLE[name]
    for box, score, label in zip(ours.boxes.numpy(), ours.scores.numpy(), ours.labels.numpy()):
        best = max(theirs, key=lambda t: iou(box, t[0]))
        assert iou(box, best[0]) >= 0.95 and label == best[2] == 1 and abs(score - best[1]) <= 0.01


def test_predict_finds_tensorflows_people_through_our_resize(checkpoint, shared_data, references, capsys):
    paths = [shared_data / folder / file for folder, file in PHOTOS.values()]
    capsys.readouterr()
    assert main(["predict", str(checkpoint), *map(str, paths), "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for name, row in zip(PHOTOS, rows):
        people = [d for d in row["detections"] if d["score"] > THRESHOLD]
        assert len(people) == PEOPLE[name] and all(d["label"] == "person" for d in people)
        scale = np.array([row["width"], row["height"]] * 2)
        for det in people:  # our resize is not TF's legacy bilinear: the boxes move by a pixel or two
            box, score = np.array(det["box"]) / scale, det["score"]
            best = max(tf_detections(references[name]), key=lambda t: iou(box, t[0]))
            assert iou(box, best[0]) >= 0.95 and abs(score - best[1]) <= 0.03  # measured: 0.97-0.99, 0.015


@pytest.mark.slow
def test_onnx_export_predicts_the_same_people(checkpoint, shared_data, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="ONNX export needs the [deploy] extra")
    onnx = tmp_path / "people.onnx"
    paths = [str(shared_data / folder / file) for folder, file in PHOTOS.values()]
    assert main(["export", str(checkpoint), "--format", "onnx", "--out", str(onnx)]) == 0
    rows = {}
    for model in (checkpoint, onnx):
        capsys.readouterr()
        assert main(["predict", str(model), *paths, "--format", "jsonl"]) == 0
        rows[model.suffix] = [json.loads(line)["detections"] for line in capsys.readouterr().out.splitlines()]
    assert [len(d) for d in rows[".onnx"]] == list(PEOPLE.values())
    for ours, exported in zip(rows[".safetensors"], rows[".onnx"]):
        for a, b in zip(ours, exported):
            assert a["label"] == b["label"] == "person" and abs(a["score"] - b["score"]) <= 1e-3
            assert np.abs(np.array(a["box"]) - np.array(b["box"])).max() <= 0.5


def test_label_map_pbtxt_names_the_classes(graph, tmp_path):
    label_map = tmp_path / "label_map.pbtxt"
    label_map.write_text("item {\n  id: 1\n  name: 'person'\n}\n")
    assert convert_tf_detection(graph, labels=label_map).class_names == ["background", "person"]


def test_without_labels_two_classes_get_generic_names(graph):
    assert convert_tf_detection(graph).class_names == ["background", "class_1"]


def test_labels_that_do_not_fit_the_class_head_write_nothing(graph, tmp_path, capsys):
    labels, out = tmp_path / "labels.txt", tmp_path / "out.safetensors"
    labels.write_text("background\nperson\nbicycle\n")
    capsys.readouterr()
    assert main(["convert", str(graph), str(out), "--labels", str(labels)]) == 2
    err = capsys.readouterr().err.strip()
    assert "3 labels but the model has 2 classes" in err and len(err.splitlines()) == 1 and not out.exists()


def test_truncated_graph_is_one_line(graph, tmp_path, capsys):
    cut, out = tmp_path / "cut.pb", tmp_path / "out.safetensors"
    cut.write_bytes(graph.read_bytes()[:100_000])
    capsys.readouterr()
    assert main(["convert", str(cut), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "truncated" in err and len(err.splitlines()) == 1 and not out.exists()


def tiny_graph(path, weights: str) -> None:
    """A GraphDef of one float Const node named ``weights``."""
    graph = graph_pb2.GraphDef()
    node = graph.node.add(name=weights, op="Const")
    node.attr["value"].tensor.dtype = 1
    node.attr["value"].tensor.tensor_shape.dim.add(size=2)
    node.attr["value"].tensor.tensor_content = np.ones(2, np.float32).tobytes()
    path.write_bytes(graph.SerializeToString())


@pytest.mark.parametrize("weights, found", [
    ("FeatureExtractor/InceptionV2/Conv2d_1a_7x7/weights", "found feature extractor InceptionV2"),
    ("resnet_v1_50/conv1/weights", "found scopes resnet_v1_50 with weights"),
])
def test_a_graph_that_is_not_ssd_mobilenet_v2_is_named(tmp_path, capsys, weights, found):
    source, out = tmp_path / "other.pb", tmp_path / "out.safetensors"
    tiny_graph(source, weights)
    capsys.readouterr()
    assert main(["convert", str(source), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not an SSD on MobileNetV2" in err and found in err and len(err.splitlines()) == 1 and not out.exists()


def test_full_convolution_box_heads_are_refused(tmp_path):
    """``ssd_mobilenet_v2`` (3x3 conv box predictors, no depthwise) is not SSDLite: one line says so."""
    source = tmp_path / "ssd.pb"
    graph = graph_pb2.GraphDef()
    for name in ["FeatureExtractor/MobilenetV2/Conv/weights",
                 *(f"BoxPredictor_{j}/BoxEncodingPredictor/weights" for j in range(6))]:
        node = graph.node.add(name=name, op="Const")
        node.attr["value"].tensor.dtype = 1
        node.attr["value"].tensor.float_val.append(1.0)
    source.write_bytes(graph.SerializeToString())
    with pytest.raises(UserError, match="not SSDLite's separable convs"):
        convert_tf_detection(source)


def test_empty_graph_is_refused(tmp_path):
    source = tmp_path / "empty.pb"
    source.write_bytes(b"")
    with pytest.raises(UserError, match="holds no nodes"):
        convert_tf_detection(source)


def test_91_classes_get_cocos_names_with_the_apis_gaps(tmp_path):
    names = class_names(tmp_path / "g.pb", None, 91)
    assert (names[0], names[1], names[12], names[13], names[90]) == ("background", "person", "N/A", "stop sign", "toothbrush")


def test_a_label_map_whose_ids_do_not_fit_is_one_line(tmp_path):
    label_map = tmp_path / "label_map.pbtxt"
    label_map.write_text("item { id: 1 name: 'person' }\nitem { id: 2 name: 'car' }\n")
    with pytest.raises(UserError, match="ids up to 2 but the model has 1 classes besides the background"):
        class_names(tmp_path / "g.pb", label_map, 2)


def test_missing_tensorboard_names_its_extra(tmp_path, monkeypatch):
    source = tmp_path / "g.pb"
    source.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(UserError, match=r"\[tensorboard\] extra"):
        convert_tf_detection(source)


@pytest.fixture(scope="module")
def walkers_set(shared_data, references, tmp_path_factory):
    """walkers.bmp as a tiny COCO set (train.json and val.json) whose ground truth is TF's two people."""
    from PIL import Image

    root = tmp_path_factory.mktemp("walkers_coco")
    image = Image.open(shared_data / "people" / "walkers.bmp")
    image.save(root / "walkers.png")
    width, height = image.size
    annotations = []
    for k, (box, _, _) in enumerate(tf_detections(references["walkers"])):
        x0, y0, x1, y1 = (box * [width, height, width, height]).tolist()
        annotations.append({"id": k + 1, "image_id": 1, "category_id": 1, "bbox": [x0, y0, x1 - x0, y1 - y0]})
    coco = {"images": [{"id": 1, "file_name": "walkers.png", "width": width, "height": height}],
            "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
    for split in ("train", "val"):
        (root / f"{split}.json").write_text(json.dumps(coco))
    return root


def test_evaluate_scores_tensorflows_people_by_their_sigmoid(checkpoint, walkers_set, shared_data):
    from mobilenetv2.evaluation.evaluator import evaluate, run_evaluator
    from mobilenetv2.inference import load_predictor

    report = evaluate(checkpoint, str(walkers_set), split="val", batch_size=1, workers=0)
    assert report.figures["map_50"] >= 0.99 and report.per_class[0]["detections"] == 2
    predictor = load_predictor(checkpoint)
    task = predictor.task
    loader, _ = task.eval_loader(str(walkers_set), predictor.preprocessing, split="val", batch_size=1, workers=0,
                                 val_split=0.2, seed=0, data_root=None)
    evaluator = task.evaluator(predictor.preprocessing, predictor.runtime.architecture)
    run_evaluator(predictor, loader, evaluator)
    (_, det, _), = evaluator.images.merged()
    scores = np.sort(det.scores.numpy()[det.scores.numpy() > THRESHOLD])[::-1]
    predicted = predictor.predict([shared_data / "people" / "walkers.bmp"])[0].scores
    assert np.allclose(scores, np.sort(predicted)[::-1], atol=0.01)  # the sigmoid scores predict gives (TF: 1.00, 0.94)


@pytest.mark.slow
def test_int8_onnx_keeps_tensorflows_people(checkpoint, shared_data, walkers_set, tmp_path, capsys):
    """Boxes and logits leave the int8 file through float: one int8 scale over both lost a walker (1 of 2 found)."""
    pytest.importorskip("onnxruntime", reason="int8 ONNX needs the [deploy] extra")
    calib = tmp_path / "calib"
    calib.mkdir()
    for folder, file in PHOTOS.values():
        (calib / file).write_bytes((shared_data / folder / file).read_bytes())
    out = tmp_path / "people.int8.onnx"
    assert main(["quantize", str(checkpoint), "--calib", str(calib), "--val", str(walkers_set), "--out", str(out),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["int8_top1"] >= 0.6 * report["fp32_top1"] > 0  # mAP@[.5:.95] on TF's two people, sigmoid scores
    rows = {}
    for model in (checkpoint, out):
        assert main(["predict", str(model), str(calib / "walkers.bmp"), "--format", "jsonl"]) == 0
        rows[model.suffix] = json.loads(capsys.readouterr().out)["detections"]
    assert len(rows[".onnx"]) == len(rows[".safetensors"]) == PEOPLE["walkers"]
    for person in rows[".safetensors"]:
        best = max(rows[".onnx"], key=lambda d: iou(np.array(d["box"]), np.array(person["box"])))
        assert iou(np.array(best["box"]), np.array(person["box"])) >= 0.9 and best["label"] == person["label"]


@pytest.mark.slow
@pytest.mark.parametrize("suffix, extra", [(".tflite", "ai_edge_quantizer"), (".pte", "executorch")])
def test_int8_tflite_and_pte_keep_tensorflows_people(checkpoint, shared_data, tmp_path, capsys, suffix, extra):
    """The tail (box decoding, the concat with the logits) stays float in both: the same people, none on the cat."""
    pytest.importorskip(extra, reason=f"int8 {suffix} needs {extra}")
    calib = tmp_path / "calib"
    calib.mkdir()
    for folder, file in PHOTOS.values():
        (calib / file).write_bytes((shared_data / folder / file).read_bytes())
    out = tmp_path / f"people.int8{suffix}"
    assert main(["quantize", str(checkpoint), "--calib", str(calib), "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agreement_unit"] == "anchors"
    paths = [str(calib / file) for _, file in PHOTOS.values()]
    rows = {}
    for model in (checkpoint, out):
        assert main(["predict", str(model), *paths, "--format", "jsonl"]) == 0
        rows[model.suffix] = [json.loads(line)["detections"] for line in capsys.readouterr().out.splitlines()]
    assert [len(d) for d in rows[suffix]] == [len(d) for d in rows[".safetensors"]] == list(PEOPLE.values())
    for ours, quantized in zip(rows[".safetensors"], rows[suffix]):
        for person in ours:
            best = max(quantized, key=lambda d: iou(np.array(d["box"]), np.array(person["box"])))
            assert iou(np.array(best["box"]), np.array(person["box"])) >= 0.9 and best["label"] == "person"
            assert abs(best["score"] - person["score"]) <= 0.1


def test_fine_tuning_keeps_the_backbone_and_box_heads_and_uses_tfs_anchors(checkpoint, model):
    from mobilenetv2.models.detection import ssd_anchors
    from mobilenetv2.tasks import get_task

    task = get_task("detection")
    tuned = task.adapt_pretrained(load_checkpoint(checkpoint).model, "ssdlite_mobilenet_v2", 3)
    for part in ("features", "extras"):
        for key, value in getattr(model, part).state_dict().items():
            assert torch.equal(getattr(tuned, part).state_dict()[key], value), key
    for ours, theirs in zip(tuned.classifier.box, model.classifier.box):
        assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), theirs.state_dict().values()))
    assert tuned.num_classes == 3 and tuned.classifier.cls[0][-1].out_channels == 3 * 3
    assert tuned.score_converter == "softmax" and tuned.arch["args"]["anchor_specs"] == model.arch["args"]["anchor_specs"]
    loss = task.criterion(None, 0.0, tuned)
    with torch.no_grad():
        maps = tuned.feature_maps(torch.zeros(1, 3, 300, 300))
    theirs = tuned.anchors([tuple(m.shape[-2:]) for m in maps], torch.device("cpu"))
    assert torch.equal(loss.anchors(1917, torch.device("cpu")), theirs)  # TF's anchors, not ours (4e-5 off)
    assert not torch.equal(ssd_anchors([tuple(m.shape[-2:]) for m in maps]), theirs)
    assert torch.equal(task._eval_loss.anchors(1917, torch.device("cpu")), theirs)


@pytest.mark.slow
def test_a_few_training_steps_from_the_people_detector(checkpoint, boxes_folder, tmp_path):
    from mobilenetv2.training import TrainConfig, train

    result = train(TrainConfig(data=str(boxes_folder), out=str(tmp_path / "run"), progress=False, pretrained=str(checkpoint),
                               task="detection", input_size=64, augment="none", batch_size=4, epochs=1, workers=0,
                               device="cpu", limit_batches=2, deterministic=True, seed=0))
    tuned = load_checkpoint(result.best_checkpoint)
    assert tuned.class_names == ["background", "bar", "square"] and np.isfinite(result.history[-1]["train_loss"])
    assert tuned.model.arch["args"]["anchor_specs"] and "score_converter" not in tuned.model.arch["args"]
