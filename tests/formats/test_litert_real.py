"""The issue's agreement on real photos, through LiteRT: the converted ImageNet classifier exported to fp32 .tflite
gives PyTorch's top-1 on the shared photos; its ants/bees rows quantized to int8 lose at most 1 point of top-1 on
the hymenoptera val photos; an SSDLite export keeps every anchor's box and class."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mobilenetv2.cli import main
from mobilenetv2.models import create_model
from mobilenetv2.spec import Preprocessing
from mobilenetv2.weights import load_checkpoint, save_checkpoint

pytest.importorskip("litert_torch", reason="LiteRT export needs the [mobile] extra")

EXPECTED = {"grace_hopper.bmp": "military uniform", "cat.bmp": "Egyptian cat", "parrot.jpg": "macaw"}
ANT, BEE = 311, 310  # ImageNet rows (with index 0 "background") of "ant, emmet, pismire" and "bee"


@pytest.fixture(scope="module")
def imagenet(shared_data, tmp_path_factory):
    tflite = shared_data / "tflite"
    out = tmp_path_factory.mktemp("imagenet") / "imagenet.safetensors"
    assert main(["convert", str(tflite / "mobilenet_v2_1.0_224_quant.tflite"), str(out),
                 "--labels", str(tflite / "imagenet_labels.txt")]) == 0
    return out


@pytest.mark.slow
def test_fp32_tflite_of_the_imagenet_classifier_gives_pytorchs_top1_on_the_shared_photos(imagenet, shared_data, capsys):
    out = imagenet.with_suffix(".tflite")
    photos = [str(shared_data / "tflite"), str(shared_data / "segmentation" / "bird_segmentation.bmp")]
    assert main(["export", str(imagenet), "--format", "tflite", "--out", str(out), "--verify-images", *photos]) == 0
    assert "verify: PASS on 4 real images" in capsys.readouterr().out  # the same argmax on all 4 (a PASS needs 100%)
    assert main(["predict", str(out), *(str(shared_data / "tflite" / n) for n in EXPECTED), "--format", "jsonl"]) == 0
    assert [json.loads(line)["labels"][0] for line in capsys.readouterr().out.splitlines()] == list(EXPECTED.values())


@pytest.mark.slow
def test_int8_tflite_loses_at_most_one_point_on_hymenoptera(imagenet, shared_data, tmp_path, capsys):
    ckpt = load_checkpoint(imagenet)
    args = {**ckpt.meta.architecture["args"], "num_classes": 2}
    model = create_model(ckpt.meta.architecture["name"], **args)
    state = ckpt.model.state_dict()
    for key in ("classifier.1.weight", "classifier.1.bias"):
        state[key] = state[key][[ANT, BEE]]  # ImageNet's own ant and bee classifiers: a real ants/bees model
    model.load_state_dict(state)
    antsbees = save_checkpoint(tmp_path / "antsbees.safetensors", model, ["ants", "bees"], ckpt.preprocessing)
    data = shared_data / "hymenoptera_data"
    out = tmp_path / "antsbees.int8.tflite"
    assert main(["quantize", str(antsbees), "--calib", str(data / "train"), "--val", str(data / "val"),
                 "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["val_images"] == 153 and report["format"] == "tflite" and report["method"] == "min-max, uint8 I/O"
    assert report["fp32_top1"] == pytest.approx(149 / 153)  # PyTorch's 97.39% (evaluate on the checkpoint)
    assert report["drop_points"] <= 1.0
    meta = json.loads(out.with_name(out.name + ".json").read_text())
    assert meta["mobilenetv2.input"]["dtype"] == "uint8" and meta["mobilenetv2.input"]["layout"] == "NHWC"
    assert {"scale", "zero_point"} <= set(meta["mobilenetv2.input"]) and meta["mobilenetv2.precision"] == "int8"


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of matching rows of two [N, 4] xyxy arrays."""
    low, high = np.maximum(a[:, :2], b[:, :2]), np.minimum(a[:, 2:], b[:, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


@pytest.mark.slow
def test_ssdlite_tflite_keeps_every_anchors_box_and_class_fp32_and_int8(boxes_folder, tmp_path, capsys):
    from mobilenetv2.formats import open_runtime
    from mobilenetv2.formats.verify import verification_batch

    torch.manual_seed(0)
    model = create_model("ssdlite_mobilenet_v2", num_classes=3, width_mult=0.35).eval()
    pre = Preprocessing(input_size=96, crop_pct=1.0, resize_mode="squash")
    ckpt = save_checkpoint(tmp_path / "det.safetensors", model, ["background", "bar", "square"], pre, task="detection")
    fp32, int8 = tmp_path / "det.tflite", tmp_path / "det.int8.tflite"
    assert main(["export", str(ckpt), "--format", "tflite", "--out", str(fp32),
                 "--verify-images", str(boxes_folder / "val")]) == 0
    assert "verify: PASS on 4 real images" in capsys.readouterr().out  # boxes within tolerance, same class per anchor
    assert main(["quantize", str(ckpt), "--calib", str(boxes_folder / "train"), "--out", str(int8), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agreement_unit"] == "anchors"
    batch, _ = verification_batch(pre, [str(boxes_folder / "val")])
    reference, quantized = open_runtime(fp32)(batch), open_runtime(int8)(batch)
    assert reference.shape == quantized.shape and reference.shape[0] == 4 and reference.shape[2] == 4 + 3
    ious = box_iou(reference[..., :4].reshape(-1, 4), quantized[..., :4].reshape(-1, 4))
    assert np.median(ious) >= 0.9  # the boxes an int8 detector draws where fp32 draws them
    same = reference[..., 4:].argmax(-1) == quantized[..., 4:].argmax(-1)
    assert same.mean() >= 0.9


@pytest.mark.slow
def test_deeplab_tflite_agrees_per_pixel_fp32_and_int8_on_real_photos(shared_data, tmp_path, capsys):
    from mobilenetv2.formats import open_runtime
    from mobilenetv2.formats.verify import verification_batch

    seg = shared_data / "segmentation"
    ckpt = tmp_path / "half.safetensors"
    assert main(["convert", str(seg / "deeplabv3_mnv2_dm05_pascal_quant.tflite"), str(ckpt),
                 "--labels", str(seg / "pascal_voc_segmentation_labels.txt")]) == 0  # the file's labels need them
    photos = [str(seg / "bird_segmentation.bmp"), str(shared_data / "tflite")]
    fp32, int8 = tmp_path / "half.tflite", tmp_path / "half.int8.tflite"
    assert main(["export", str(ckpt), "--format", "tflite", "--out", str(fp32), "--verify-images", *photos]) == 0
    assert "verify: PASS on 4 real images" in capsys.readouterr().out  # same class on every pixel without a tie
    assert main(["quantize", str(ckpt), "--calib", *photos, str(shared_data / "hymenoptera_data" / "val"),
                 "--num-calib", "32", "--out", str(int8), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agreement_unit"] == "pixels"
    model = load_checkpoint(ckpt)
    batch, _ = verification_batch(model.preprocessing, photos)
    with torch.inference_mode():
        reference = model.model.eval()(batch).numpy().argmax(1)
    assert (open_runtime(fp32)(batch).argmax(1) == reference).mean() >= 0.99
    assert (open_runtime(int8)(batch).argmax(1) == reference).mean() >= 0.97
