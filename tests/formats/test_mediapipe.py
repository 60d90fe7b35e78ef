"""Our .tflite files in MediaPipe Tasks (the Python package runs the C++ task graphs of Android, iOS and the web) with
no configuration but the file: the converted ImageNet classifier in ImageClassifier, the half-width DeepLab in
ImageSegmenter, the SSDLite person detector in ObjectDetector, fp32 (``export``) and int8 (``quantize``), against
``predict`` on real photos; the TFLite Metadata read by MediaPipe's own schema; the per-channel normalisation folded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenetv2.cli import main
from mobilenetv2.models import create_model
from mobilenetv2.spec import Preprocessing
from mobilenetv2.weights import save_checkpoint

pytest.importorskip("litert_torch", reason="LiteRT export needs the [mobile] extra")
mp = pytest.importorskip("mediapipe", reason="MediaPipe Tasks needs the [apps] extra")
from mediapipe.tasks.python import BaseOptions, vision  # noqa: E402

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def exported_pair(folder: Path, ckpt: Path, calib: list[str], num_calib: int = 16) -> tuple[Path, Path]:
    fp32, int8 = folder / "model.tflite", folder / "model.int8.tflite"
    assert main(["export", str(ckpt), "--format", "tflite", "--out", str(fp32)]) == 0
    assert main(["quantize", str(ckpt), "--calib", *calib, "--num-calib", str(num_calib), "--out", str(int8)]) == 0
    return fp32, int8


def at_size(photos: list[Path], size: int, folder: Path) -> list[Path]:
    """The photos resized to the model's input (PNG): MediaPipe and ``predict`` then see the same pixels."""
    folder.mkdir(exist_ok=True)
    out = [folder / f"{p.stem}.png" for p in photos]
    for photo, path in zip(photos, out):
        Image.open(photo).convert("RGB").resize((size, size), Image.BILINEAR).save(path)
    return out


def predict(path: Path, photos: list[Path], capsys, *extra: str) -> list[dict]:
    capsys.readouterr()
    assert main(["predict", str(path), *map(str, photos), "--format", "jsonl", *extra]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.fixture(scope="module")
def photos(shared_data) -> list[Path]:
    return [shared_data / "tflite" / n for n in ("parrot.jpg", "cat.bmp", "grace_hopper.bmp")]


@pytest.fixture(scope="module")
def imagenet(shared_data, photos, tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("mp-imagenet")
    tflite = shared_data / "tflite"
    assert main(["convert", str(tflite / "mobilenet_v2_1.0_224_quant.tflite"), str(folder / "imagenet.safetensors"),
                 "--labels", str(tflite / "imagenet_labels.txt")]) == 0
    return exported_pair(folder, folder / "imagenet.safetensors",
                         [*map(str, photos), str(shared_data / "hymenoptera_data" / "val")])


@pytest.mark.slow
def test_image_classifier_names_predicts_top1_with_its_probability_fp32_and_int8(imagenet, photos, tmp_path, capsys):
    resized = at_size(photos, 224, tmp_path / "224")
    for path in imagenet:
        ours = predict(path, resized, capsys, "--top-k", "1")
        options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)), max_results=1)
        with vision.ImageClassifier.create_from_options(options) as classifier:
            theirs = [classifier.classify(mp.Image.create_from_file(str(p))).classifications[0].categories[0]
                      for p in resized]
        assert [t.category_name for t in theirs] == [o["labels"][0] for o in ours] == ["macaw", "Egyptian cat",
                                                                                      "military uniform"]
        assert np.allclose([t.score for t in theirs], [o["probabilities"][0] for o in ours], atol=0.02), path.name


@pytest.mark.slow
def test_image_segmenter_category_mask_agrees_with_ours_fp32_and_int8(shared_data, tmp_path, capsys):
    from mobilenetv2.formats import open_runtime
    from mobilenetv2.formats.verify import verification_batch

    seg = shared_data / "segmentation"
    ckpt = tmp_path / "half.safetensors"
    assert main(["convert", str(seg / "deeplabv3_mnv2_dm05_pascal_quant.tflite"), str(ckpt),
                 "--labels", str(seg / "pascal_voc_segmentation_labels.txt")]) == 0
    photos = [seg / "bird_segmentation.bmp", *at_size([shared_data / "people" / "walkers.bmp"], 513, tmp_path / "513")]
    for path, bound in zip(exported_pair(tmp_path, ckpt, list(map(str, photos)), 4), (0.99, 0.97)):
        runtime = open_runtime(path)
        options = vision.ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=str(path)),
                                               output_category_mask=True)
        with vision.ImageSegmenter.create_from_options(options) as segmenter:
            for photo in photos:
                ours = runtime(verification_batch(runtime.meta.preprocessing, [str(photo)])[0]).argmax(1)[0]
                mask = segmenter.segment(mp.Image.create_from_file(str(photo))).category_mask.numpy_view()
                assert (mask.reshape(ours.shape) == ours).mean() >= bound, (path.name, photo.name)
        assert "bird" in runtime.meta.class_names and len(runtime.meta.class_names) == 21


def box_iou(a: list[float], b: list[float]) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.mark.slow
def test_object_detector_returns_our_boxes_fp32_and_int8(shared_data, tmp_path, capsys):
    ckpt = tmp_path / "people.safetensors"
    assert main(["convert", str(shared_data / "people" / "ssdlite_pedestrians" / "frozen_inference_graph.pb"),
                 str(ckpt)]) == 0
    photos = at_size([shared_data / "people" / "walkers.bmp", shared_data / "tflite" / "grace_hopper.bmp"], 300,
                     tmp_path / "300")
    found = 0
    for path in exported_pair(tmp_path, ckpt, [*map(str, photos), str(shared_data / "hymenoptera_data" / "val")]):
        ours = predict(path, photos, capsys)
        with vision.ObjectDetector.create_from_options(
                vision.ObjectDetectorOptions(base_options=BaseOptions(model_asset_path=str(path)))) as detector:
            for photo, predicted in zip(photos, ours):
                theirs = [(d.categories[0].category_name, [d.bounding_box.origin_x, d.bounding_box.origin_y,
                                                           d.bounding_box.origin_x + d.bounding_box.width,
                                                           d.bounding_box.origin_y + d.bounding_box.height])
                          for d in detector.detect(mp.Image.create_from_file(str(photo))).detections]
                for box in predicted["detections"]:
                    best = max((box_iou(box["box"], b) for name, b in theirs if name == box["label"]), default=0.0)
                    assert best >= 0.9, (path.name, photo.name, box, theirs[:3])
                    found += 1
    assert found >= 6  # two walkers and Grace Hopper, in both files


def test_a_checkpoint_without_class_names_gets_one_line_and_no_file(tmp_path, capsys):
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=2)
    ckpt = save_checkpoint(tmp_path / "nameless.safetensors", model, preprocessing=Preprocessing(input_size=64))
    out = tmp_path / "nameless.tflite"
    assert main(["export", str(ckpt), "--format", "tflite", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "class names" in err[0] and not out.exists()


@pytest.mark.slow
def test_imagenet_per_channel_normalisation_is_one_mean_and_std_with_the_rest_folded(tmp_path, shared_data, capsys,
                                                                                    randomise_bn):
    from mediapipe.tasks.metadata import metadata_schema_py_generated as schema

    from mobilenetv2.weights.tflite_metadata import read_metadata

    torch.manual_seed(0)
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=3)
    randomise_bn(model)
    pre = Preprocessing(input_size=64, crop_pct=1.0, resize_mode="squash", mean=IMAGENET_MEAN, std=IMAGENET_STD)
    ckpt = save_checkpoint(tmp_path / "imagenet-norm.safetensors", model, ["a", "b", "c"], pre)
    out = tmp_path / "imagenet-norm.tflite"
    assert main(["export", str(ckpt), "--format", "tflite", "--out", str(out),
                 "--verify-images", str(shared_data / "tflite")]) == 0
    assert "verify: PASS on 3 real images" in capsys.readouterr().out  # the folded graph is PyTorch's model
    metadata = read_metadata(out)
    assert metadata.mean == pytest.approx((255 * np.mean(IMAGENET_MEAN),)) and len(metadata.std) == 1
    # MediaPipe's own reading of the metadata flatbuffer: what apps see
    buffer = _metadata_buffer(out)
    root = schema.ModelMetadata.GetRootAs(buffer, 0)
    assert schema.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0)
    assert root.Name().decode() == "mobilenet_v2 classification" and root.MinParserVersion()
    assert root.Author() and root.License() and root.Version()
    tensor = root.SubgraphMetadata(0).OutputTensorMetadata(0)
    assert tensor.AssociatedFiles(0).Name() == b"labels.txt" and metadata.labels == ["a", "b", "c"]
    photos = at_size([shared_data / "tflite" / n for n in ("parrot.jpg", "cat.bmp")], 64, tmp_path / "64")
    ours = predict(out, photos, capsys, "--top-k", "3")
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(out)))
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for photo, predicted in zip(photos, ours):
            scores = {c.category_name: c.score for c in
                      classifier.classify(mp.Image.create_from_file(str(photo))).classifications[0].categories}
            assert scores == pytest.approx(dict(zip(predicted["labels"], predicted["probabilities"])), abs=0.02)


def _metadata_buffer(path: Path) -> bytes:
    from ai_edge_litert import schema_py_generated as tflite

    data = path.read_bytes()
    model = tflite.Model.GetRootAs(data, 0)
    entry = next(model.Metadata(i) for i in range(model.MetadataLength()) if model.Metadata(i).Name() == b"TFLITE_METADATA")
    return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
