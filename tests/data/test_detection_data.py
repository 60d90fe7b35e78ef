"""Detection data: every layout, the built-in digits, tiles, targets normalised to their window, training and evaluation
loaders, and bad input as one line naming the file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenetv2.data import DataConfig, Preprocessing
from mobilenetv2.data.detection.loaders import build_detection_data, build_detection_eval_loader
from mobilenetv2.data.detection.sources import BACKGROUND, detection_default_split, resolve_detection_source
from mobilenetv2.data.detection.targets import BoxTargets, collate_detection
from mobilenetv2.data.detection.tiles import tile_windows
from mobilenetv2.data.digit_scenes import BOX_CANVAS
from mobilenetv2.errors import UserError

TREE_BOXES = {"OSBS_029.png": 61, "SOAP_061.png": 37, "2019_YELL_2_541000_4977000_image_crop.png": 279}


def save_png(path: Path, size: tuple[int, int] = (64, 48), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def voc_xml(objects: list[tuple[str, tuple[float, ...]]], filename: str = "other.tif") -> str:
    """A Pascal VOC annotation; ``<filename>`` deliberately names another file (pairing is by stem)."""
    body = "".join(f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
                   f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for name, b in objects)
    return f"<annotation><filename>{filename}</filename><size><width>1</width><height>1</height></size>{body}</annotation>"


def voc_folder(folder: Path, count: int = 4, size: tuple[int, int] = (64, 48), names=("cat", "dog")) -> Path:
    for i in range(count):
        save_png(folder / f"im{i}.png", size, seed=i)
        objects = [(names[i % len(names)], (4, 4, 30, 20)), (names[(i + 1) % len(names)], (30, 10, 60, 40))]
        (folder / f"im{i}.xml").write_text(voc_xml(objects))
    return folder


def one_line_error(excinfo: pytest.ExceptionInfo, name: str) -> str:
    message = str(excinfo.value)
    assert name in message and "\n" not in message, message
    return message


# -- the real trees ----------------------------------------------------------------------------------------------------
def test_trees_folder_pairs_by_stem_and_splits_by_image(shared_data):
    source = resolve_detection_source(str(shared_data / "trees"), val_split=0.3, seed=3)
    assert source.class_names == [BACKGROUND, "Alive", "Dead", "Tree"] and source.dropped == 0
    counts = {r.path.name: len(r.boxes) for r in source.splits["all"].items}
    assert counts == TREE_BOXES
    train = {r.path.name for r in source.splits["train"].items}
    val = {r.path.name for r in source.splits["val"].items}
    assert train and val and not train & val and train | val == set(TREE_BOXES)
    soap = next(r for r in source.splits["all"].items if r.path.name == "SOAP_061.png")
    names = [source.class_names[i] for i in soap.labels]
    assert names.count("Dead") == 28 and names.count("Alive") == 9
    assert detection_default_split(str(shared_data / "trees")) == "val"


@pytest.mark.slow
def test_trees_eval_tiles_carry_the_whole_images_ground_truth(shared_data):
    pre = Preprocessing(input_size=64, crop_pct=1.0, resize_mode="squash")
    loader, names = build_detection_eval_loader(str(shared_data / "trees"), pre, split="all", batch_size=16, workers=0,
                                                tile=400)
    assert names[0] == BACKGROUND
    seen = {}
    for images, targets in loader:
        assert images.shape[1:] == (3, 64, 64)
        for i in range(len(targets)):
            seen.setdefault(int(targets.image_id[i]), set()).add(len(targets.image(i)["labels"]))
    assert sorted(len(s) for s in seen.values()) == [1, 1, 1]  # every tile of an image: the same full ground truth
    assert sorted(next(iter(s)) for s in seen.values()) == sorted(TREE_BOXES.values())
    assert len(loader.dataset) == 1 + 1 + 16  # 1249x1035 at 400 px tiles, stride 300: 4 x 4



def test_the_packages_keep_their_entry_points():
    from mobilenetv2.data import detection, segmentation
    from mobilenetv2.data.detection import tiles

    assert detection.tile_windows is tiles.tile_windows  # evaluation/detector.py imports it from the package
    assert all(hasattr(detection, name) for name in detection.__all__)
    assert all(hasattr(segmentation, name) for name in segmentation.__all__)

# -- the built-in digits -----------------------------------------------------------------------------------------------
def test_digits_are_deterministic_with_boxes_inside_the_canvas():
    source = resolve_detection_source("digits", seed=5)
    assert source.in_memory and source.class_names == [BACKGROUND, *map(str, range(10))]
    assert (len(source.splits["train"]), len(source.splits["val"]), len(source.splits["all"])) == (480, 120, 600)
    for i in range(20):
        image, target = source.splits["train"][i]
        boxes, labels = target["boxes"], target["labels"]
        assert image.size == (BOX_CANVAS, BOX_CANVAS) and 1 <= len(labels) <= 4
        assert ((labels >= 1) & (labels <= 10)).all()
        assert (boxes >= 0).all() and (boxes <= BOX_CANVAS).all() and (boxes[:, 2:] > boxes[:, :2]).all()
    again = resolve_detection_source("digits", seed=5).splits["train"][7]
    first = source.splits["train"][7]
    assert np.array_equal(np.asarray(first[0]), np.asarray(again[0])) and torch.equal(first[1]["boxes"], again[1]["boxes"])
    other = resolve_detection_source("digits", seed=6).splits["train"][7]
    assert not np.array_equal(np.asarray(first[0]), np.asarray(other[0]))


@pytest.mark.slow
def test_digits_training_batches_are_reproducible_per_epoch():
    data = build_detection_data(DataConfig(data="digits", input_size=64, batch_size=8, seed=1))
    assert data.preprocessing.resize_mode == "squash" and data.class_names[0] == BACKGROUND
    data.set_epoch(2)
    images, targets = next(iter(data.train_loader))
    assert images.shape == (8, 3, 64, 64) and targets.boxes.shape[:2] == targets.labels.shape
    assert (targets.window == torch.tensor([0.0, 0, 64, 64])).all() and (targets.image_size == 64).all()
    boxes, labels = targets.in_window()
    assert torch.equal(labels, targets.labels) and torch.allclose(boxes, targets.boxes / 64)
    data.set_epoch(2)
    again_images, again = next(iter(data.train_loader))
    assert torch.equal(images, again_images) and torch.equal(targets.boxes, again.boxes)
    val_images, val = next(iter(data.val_loader))
    assert val_images.shape == (8, 3, 64, 64) and (val.window == torch.tensor([0.0, 0, 128, 128])).all()


# -- tiles and targets -------------------------------------------------------------------------------------------------
def test_tile_windows_cover_overlap_and_align_to_the_edges():
    assert tile_windows(300, 200, None) == [(0, 0, 300, 200)]
    assert tile_windows(300, 200, 300) == [(0, 0, 300, 200)]
    windows = tile_windows(1000, 700, 400, overlap=0.25)
    xs, ys = sorted({w[0] for w in windows}), sorted({w[1] for w in windows})
    assert xs == [0, 300, 600] and ys == [0, 300] and len(windows) == 6
    assert all(w[2] - w[0] == 400 and w[3] - w[1] == 400 for w in windows)
    covered = np.zeros((700, 1000), dtype=bool)
    for x0, y0, x1, y1 in windows:
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    assert tile_windows(1100, 400, 400, overlap=0.0) == [(0, 0, 400, 400), (400, 0, 800, 400), (700, 0, 1100, 400)]
    assert tile_windows(900, 150, 400) == [(0, 0, 400, 150), (300, 0, 700, 150), (500, 0, 900, 150)]
    with pytest.raises(UserError, match="tile_overlap"):
        tile_windows(900, 900, 400, overlap=1.0)


def test_in_window_clips_and_drops_boxes_mostly_outside():
    targets = BoxTargets(boxes=torch.tensor([[[10.0, 10, 30, 30], [90, 0, 130, 10], [0, 0, 0, 0]]]),
                         labels=torch.tensor([[1, 2, 0]]), image_size=torch.tensor([[100, 200]]),
                         window=torch.tensor([[0.0, 0, 100, 100]]), image_id=torch.tensor([0]))
    boxes, labels = targets.in_window()
    assert labels.tolist() == [[1, 0, 0]]  # box 2 is 25% inside
    assert torch.allclose(boxes[0, 0], torch.tensor([0.1, 0.1, 0.3, 0.3]))
    boxes, labels = targets.in_window(min_visible=0.2)
    assert labels.tolist() == [[1, 2, 0]] and torch.allclose(boxes[0, 1], torch.tensor([0.9, 0.0, 1.0, 0.1]))
    assert len(targets) == 1 and targets.image(0)["boxes"].shape == (2, 4)
    assert targets.to("cpu").labels.tolist() == [[1, 2, 0]]


def test_collate_pads_and_keeps_at_least_one_row():
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "image_size": torch.tensor([8, 8]),
             "window": torch.tensor([0.0, 0, 8, 8]), "image_id": torch.tensor(0)}
    images, targets = collate_detection([(torch.zeros(3, 8, 8), empty), (torch.zeros(3, 8, 8), empty)])
    assert images.shape == (2, 3, 8, 8) and targets.boxes.shape == (2, 1, 4) and targets.labels.tolist() == [[0], [0]]


# -- layouts -----------------------------------------------------------------------------------------------------------
def test_voc_folder_with_tiles_trains_on_tile_batches(tmp_path):
    voc_folder(tmp_path, count=4, size=(96, 64))
    save_png(tmp_path / "unlabelled.png")  # an image without .xml is skipped
    cfg = DataConfig(data=str(tmp_path), input_size=32, batch_size=4, workers=0, tile=48, tile_overlap=0.25, seed=2)
    data = build_detection_data(cfg)
    assert data.class_names == [BACKGROUND, "cat", "dog"] and len(data.skipped) == 1
    assert len(data.train_loader.dataset) == 3 * 6  # 96x64 at 48 px tiles, stride 36: 3 x 2
    images, targets = next(iter(data.train_loader))
    assert images.shape == (4, 3, 32, 32) and targets.boxes.shape[0] == 4 and targets.boxes.shape[2] == 4
    assert (targets.image_size == 32).all() and (targets.boxes <= 32).all()
    images, targets = next(iter(data.val_loader))
    assert (targets.image_size == torch.tensor([64, 96])).all() and (targets.labels > 0).sum(1).tolist() == [2] * 4
    assert {tuple(w) for w in targets.window.tolist()} == {(0, 0, 48, 48), (36, 0, 84, 48), (48, 0, 96, 48),
                                                           (0, 16, 48, 64)}


def test_train_val_subfolders_and_classes_txt(tmp_path):
    voc_folder(tmp_path / "train", count=3)
    voc_folder(tmp_path / "val", count=2)
    (tmp_path / "classes.txt").write_text("dog\ncat\nbird\n")
    source = resolve_detection_source(str(tmp_path))
    assert source.class_names == [BACKGROUND, "dog", "cat", "bird"]
    assert (len(source.splits["train"]), len(source.splits["val"])) == (3, 2)
    assert source.splits["train"].items[0].labels.tolist() == [2, 1]
    assert detection_default_split(str(tmp_path)) == "val"



def test_images_of_every_suffix_the_package_reads_pair_with_their_xml(tmp_path):
    voc_folder(tmp_path, count=2)
    Image.open(tmp_path / "im1.png").save(tmp_path / "im1.ppm")  # data/images.py's suffixes, as for classification
    (tmp_path / "im1.png").unlink()
    source = resolve_detection_source(str(tmp_path))
    assert sorted(r.path.name for r in source.splits["all"].items) == ["im0.png", "im1.ppm"]

def test_voc_root_with_image_sets(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2007"
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "Annotations").mkdir()
    for i in range(3):
        save_png(root / "JPEGImages" / f"00{i}.jpg", seed=i)
        (root / "Annotations" / f"00{i}.xml").write_text(voc_xml([("person", (1, 2, 20, 30))]))
    (root / "ImageSets" / "Main" / "train.txt").write_text("000\n001\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("002\n")
    source = resolve_detection_source(str(tmp_path))
    assert source.class_names == [BACKGROUND, "person"]
    assert [r.path.name for r in source.splits["val"].items] == ["002.jpg"]
    assert source.splits["train"].items[0].boxes.tolist() == [[1, 2, 20, 30]]


def coco(images: list[tuple[int, str]], annotations: list[tuple[int, int, list]], categories: dict[int, str]) -> str:
    return json.dumps({"images": [{"id": i, "file_name": f, "width": 1, "height": 1} for i, f in images],
                       "annotations": [{"id": k, "image_id": i, "category_id": c, "bbox": b, "iscrowd": 0}
                                       for k, (i, c, b) in enumerate(annotations)],
                       "categories": [{"id": i, "name": n} for i, n in categories.items()]})


def test_coco_json_file_and_split_folder(tmp_path):
    for i in range(3):
        save_png(tmp_path / "images" / f"a{i}.png", seed=i)
    anns = [(1, 7, [2, 3, 10, 20]), (2, 3, [0, 0, 5, 5]), (2, 7, [60, 40, 10, 10])]
    (tmp_path / "data.json").write_text(coco([(1, "a0.png"), (2, "a1.png"), (3, "a2.png")], anns, {7: "zebra", 3: "yak"}))
    source = resolve_detection_source(str(tmp_path / "data.json"), seed=1)
    assert source.class_names == [BACKGROUND, "yak", "zebra"]  # sorted by category id
    records = {r.path.name: r for r in source.splits["all"].items}
    assert records["a0.png"].boxes.tolist() == [[2, 3, 12, 23]] and records["a0.png"].labels.tolist() == [2]
    assert records["a1.png"].boxes.tolist() == [[0, 0, 5, 5], [60, 40, 64, 48]]  # clipped to the 64x48 image
    assert len(records["a2.png"].boxes) == 0 and len(source.splits["train"]) + len(source.splits["val"]) == 3
    (tmp_path / "train.json").write_text(coco([(1, "a0.png"), (2, "a1.png")], anns, {7: "zebra", 3: "yak"}))
    (tmp_path / "val.json").write_text(coco([(5, "a2.png")], [(5, 1, [1, 1, 4, 4])], {1: "zebra"}))
    source = resolve_detection_source(str(tmp_path))
    assert source.splits["val"].items[0].labels.tolist() == [2]  # matched by name, not id
    assert detection_default_split(str(tmp_path)) == "val"


def test_csv_file_with_empty_rows_and_split_folder(tmp_path):
    save_png(tmp_path / "img" / "a.png")
    save_png(tmp_path / "img" / "b.png", seed=1)
    (tmp_path / "boxes.csv").write_text("path,xmin,ymin,xmax,ymax,label\nimg/a.png,1,2,10,12,car\nimg/a.png,5,5,9,9,bus\n"
                                        "img/b.png,,,,,\n")
    source = resolve_detection_source(str(tmp_path / "boxes.csv"))
    assert source.class_names == [BACKGROUND, "bus", "car"]
    records = {r.path.name: r for r in source.splits["all"].items}
    assert records["a.png"].labels.tolist() == [2, 1] and len(records["b.png"].boxes) == 0
    (tmp_path / "train.csv").write_text("path,xmin,ymin,xmax,ymax,label\na.png,1,2,10,12,car\n")
    (tmp_path / "val.csv").write_text("path,xmin,ymin,xmax,ymax,label\nb.png,3,3,8,8,car\n")
    source = resolve_detection_source(str(tmp_path), data_root=str(tmp_path / "img"))
    assert (len(source.splits["train"]), len(source.splits["val"])) == (1, 1) and source.class_names == [BACKGROUND, "car"]


# -- bad input ---------------------------------------------------------------------------------------------------------
def test_malformed_xml_and_xml_without_image(tmp_path):
    voc_folder(tmp_path, count=2)
    (tmp_path / "im1.xml").write_text("<annotation><object>")
    with pytest.raises(UserError) as excinfo:
        resolve_detection_source(str(tmp_path))
    one_line_error(excinfo, "im1.xml")
    (tmp_path / "im1.xml").write_text(voc_xml([("cat", ("ten", 1, 5, 5))]))
    with pytest.raises(UserError) as excinfo:
        resolve_detection_source(str(tmp_path))
    assert "number" in one_line_error(excinfo, "im1.xml")
    (tmp_path / "im1.png").unlink()
    with pytest.raises(UserError) as excinfo:
        resolve_detection_source(str(tmp_path))
    one_line_error(excinfo, "im1.xml")


def test_malformed_json_and_unknown_category(tmp_path):
    save_png(tmp_path / "a.png")
    (tmp_path / "data.json").write_text('{"images": [')
    with pytest.raises(UserError) as excinfo:
        resolve_detection_source(str(tmp_path / "data.json"))
    one_line_error(excinfo, "data.json")
    (tmp_path / "data.json").write_text(coco([(1, "a.png")], [(1, 9, [0, 0, 4, 4])], {1: "cat"}))
    with pytest.raises(UserError) as excinfo:
        resolve_detection_source(str(tmp_path / "data.json"))
    assert "category id 9" in one_line_error(excinfo, "data.json")
    (tmp_path / "data.json").write_text(coco([(1, "missing.png")], [], {1: "cat"}))
    with pytest.raises(UserError) as excinfo:
        resolve_detection_source(str(tmp_path / "data.json"))
    assert "missing.png" in one_line_error(excinfo, "data.json")


def test_csv_missing_column_non_numeric_and_missing_image(tmp_path):
    save_png(tmp_path / "a.png")
    bad = tmp_path / "bad.csv"
    bad.write_text("path,xmin,ymin,xmax,label\na.png,1,1,5,car\n")
    with pytest.raises(UserError) as excinfo:
        resolve_detection_source(str(bad))
    assert "ymax" in one_line_error(excinfo, "bad.csv")
    bad.write_text("path,xmin,ymin,xmax,ymax,label\na.png,1,1,five,5,car\n")
    with pytest.raises(UserError) as excinfo:
        resolve_detection_source(str(bad))
    assert "line 2" in one_line_error(excinfo, "bad.csv")
    bad.write_text("path,xmin,ymin,xmax,ymax,label\nnope.png,1,1,5,5,car\n")
    with pytest.raises(UserError) as excinfo:
        resolve_detection_source(str(bad))
    assert "nope.png" in one_line_error(excinfo, "bad.csv")


def test_unknown_class_in_val_and_unreadable_image(tmp_path):
    voc_folder(tmp_path / "train", count=2, names=("cat",))
    voc_folder(tmp_path / "val", count=1, names=("cat", "emu"))
    with pytest.raises(UserError) as excinfo:
        resolve_detection_source(str(tmp_path))
    message = one_line_error(excinfo, "im0.xml")
    assert "'emu'" in message and "cat" in message
    (tmp_path / "val" / "im0.xml").write_text(voc_xml([("cat", (1, 1, 5, 5))]))
    (tmp_path / "val" / "im0.png").write_bytes(b"not an image")
    with pytest.raises(UserError) as excinfo:
        resolve_detection_source(str(tmp_path))
    one_line_error(excinfo, "im0.png")


def test_zero_area_boxes_are_dropped_and_counted_and_outside_boxes_clipped(tmp_path, caplog):
    voc_folder(tmp_path, count=2)
    (tmp_path / "im0.xml").write_text(voc_xml([("cat", (5, 5, 5, 20)), ("cat", (70, 1, 90, 9)), ("dog", (-4, 30, 20, 99))]))
    with caplog.at_level(logging.WARNING):
        source = resolve_detection_source(str(tmp_path))
    assert source.dropped == 2 and "dropped 2 boxes" in caplog.text and "im0.xml" in caplog.text
    record = next(r for r in source.splits["all"].items if r.path.name == "im0.png")
    assert record.boxes.tolist() == [[0, 30, 20, 48]] and record.labels.tolist() == [2]


def test_unknown_layout_and_classification_options(tmp_path):
    save_png(tmp_path / "a.png")
    with pytest.raises(UserError) as excinfo:
        resolve_detection_source(str(tmp_path))
    assert "COCO" in one_line_error(excinfo, str(tmp_path))
    with pytest.raises(UserError, match="mixup"):
        build_detection_data(DataConfig(data="digits", mixup=0.2))


def test_single_image_folder_defaults_to_all_and_classes_txt_may_name_background(tmp_path):
    voc_folder(tmp_path, count=1)
    (tmp_path / "classes.txt").write_text("background\ncat\ndog\n")
    source = resolve_detection_source(str(tmp_path))
    assert source.class_names == [BACKGROUND, "cat", "dog"] and len(source.splits["val"]) == 0
    assert detection_default_split(str(tmp_path)) == "all" and detection_default_split("digits") == "val"
