"""Google's published .tflite files predict, evaluate and serve like ours: the LiteRT runtime says what their outputs
hold (a SOFTMAX's probabilities, an ARG_MAX's class indices) and --labels gives them class names."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.cli import main

pytest.importorskip("ai_edge_litert", reason="the LiteRT interpreter comes with the [interop] and [mobile] extras")

EXPECTED = {"grace_hopper.bmp": "military uniform", "cat.bmp": "Egyptian cat", "parrot.jpg": "macaw"}


@pytest.fixture(scope="module")
def tflite_dir(shared_data):
    return shared_data / "tflite"


def test_googles_classifier_predicts_its_labels_with_its_own_probabilities(tflite_dir, capsys):
    from mobilenetv2.backends.litert import quantize
    from mobilenetv2.formats import open_runtime

    model = tflite_dir / "mobilenet_v2_1.0_224_quant.tflite"
    photos = [str(tflite_dir / name) for name in EXPECTED]
    assert main(["predict", str(model), *photos, "--labels", str(tflite_dir / "imagenet_labels.txt"),
                 "--format", "jsonl", "--top-k", "3"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["labels"][0] for row in rows] == list(EXPECTED.values())
    runtime = open_runtime(model)
    assert runtime.describe()["outputs"] == "probabilities" and runtime.task == "classification"
    from mobilenetv2.inference import load_predictor

    predictor = load_predictor(model, labels=tflite_dir / "imagenet_labels.txt")
    pixels, _ = predictor.prepare(photos[2])
    raw = runtime.run(quantize(np.ascontiguousarray(predictor.normalize(pixels).transpose(0, 2, 3, 1)),
                               runtime.input))
    own = (raw.astype(np.float32) - runtime.output["quantization"][1]) * runtime.output["quantization"][0]
    assert rows[2]["probabilities"][0] == pytest.approx(float(own.max()) / float(own.sum()), abs=1e-3)


def test_a_labels_file_of_the_wrong_length_is_one_line(tflite_dir, tmp_path, capsys):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    code = main(["predict", str(tflite_dir / "mobilenet_v2_1.0_224_quant.tflite"), str(tflite_dir / "cat.bmp"),
                 "--labels", str(labels)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "has 2 labels but the model has 1001 classes" in err


@pytest.fixture(scope="module")
def bird_masks(shared_data, tmp_path_factory):
    """The bird photo and its true mask as a segmentation folder (images/, masks/, classes.txt)."""
    seg = shared_data / "segmentation"
    root = tmp_path_factory.mktemp("bird")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    Image.open(seg / "bird_segmentation.bmp").convert("RGB").save(root / "images" / "bird.png")
    Image.open(seg / "bird_segmentation_mask.bmp").convert("L").save(root / "masks" / "bird.png")
    names = [n.strip() for n in (seg / "pascal_voc_segmentation_labels.txt").read_text().splitlines() if n.strip()][:21]
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    return root


@pytest.mark.slow
def test_googles_deeplab_segments_and_evaluates_from_its_class_indices(shared_data, bird_masks, capsys):
    from mobilenetv2.formats import open_runtime

    seg = shared_data / "segmentation"
    model, labels = seg / "deeplabv3_mnv2_dm05_pascal_quant.tflite", seg / "pascal_voc_segmentation_labels.txt"
    runtime = open_runtime(model)
    assert (runtime.task, runtime.describe()["outputs"], runtime.classes) == ("segmentation", "class_indices", 21)
    assert main(["predict", str(model), str(seg / "bird_segmentation.bmp"), "--labels", str(labels),
                 "--format", "jsonl"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert list(row["fractions"])[:2] == ["background", "bird"] and 0.15 < row["fractions"]["bird"] < 0.3
    assert main(["evaluate", str(model), "--data", str(bird_masks), "--labels", str(labels), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    bird = next(row for row in report["per_class"] if row["name"] == "bird")
    assert bird["iou"] == pytest.approx(0.819, abs=0.01)  # the interpreter's own figure (README, segmentation section)


def test_serve_loads_a_published_file_with_labels(tflite_dir):
    from mobilenetv2.serving.model import load_served

    predictor, card = load_served(str(tflite_dir / "mobilenet_v2_1.0_224_quant.tflite"), None, 2,
                                  str(tflite_dir / "imagenet_labels.txt"))
    assert card["backend"] == "litert" and card["class_names"][0] == "background" and len(card["class_names"]) == 1001
    assert predictor.predict([str(tflite_dir / "parrot.jpg")])[0].label == "macaw"
