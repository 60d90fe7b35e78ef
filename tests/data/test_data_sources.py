"""Each data source: built-in digits, class folders (train/val or split), CSV, torchvision datasets."""

from __future__ import annotations

import logging
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from mobilenetv2.data import DIGITS_DEFAULTS, DataConfig, Preprocessing, build_data, build_eval_loader
from mobilenetv2.data.datasets import load_digits_images, resolve_source
from mobilenetv2.errors import UserError


def first_batch(loader):
    return next(iter(loader))


@pytest.fixture(scope="module")
def digits_data():
    return build_data(DataConfig(**{**DIGITS_DEFAULTS, "input_size": 32, "batch_size": 50}))


def test_digits_builtin_offline_and_stratified(digits_data):
    d = digits_data
    assert d.class_names == [str(i) for i in range(10)]
    train_labels, val_labels = d.train_loader.dataset.labels, d.val_loader.dataset.labels
    assert len(train_labels) + len(val_labels) == 1797
    for c, n in Counter(val_labels).items():  # about 20% of every class held out
        assert abs(n - 0.2 * (n + Counter(train_labels)[c])) <= 1
    images, labels = first_batch(d.train_loader)
    assert images.shape == (50, 3, 32, 32) and images.dtype == torch.float32 and labels.dtype == torch.int64
    assert d.preprocessing.input_size == 32 and d.preprocessing.crop_pct == 1.0
    assert d.train_loader.num_workers == 0  # in memory: nothing to decode


def test_digits_images_are_dark_ink_on_white():
    images, labels = load_digits_images()
    assert images.shape == (1797, 3, 32, 32) and images.dtype == torch.uint8
    assert images[:, :, 0, 0].float().mean() > 240  # corners are paper
    assert images[:, :, 12:20, 12:20].float().mean() < images[:, :, 0, 0].float().mean()
    assert sorted(set(labels.tolist())) == list(range(10))


def test_folder_with_train_and_val(tmp_path, caplog, imgs):
    imgs.make_class_folder(tmp_path / "train", {"ant": 4, "bee": 4, "cat": 3})
    imgs.make_class_folder(tmp_path / "val", {"ant": 2, "cat": 2})  # bee has no validation images
    with caplog.at_level(logging.WARNING, "mobilenetv2.data"):
        d = build_data(DataConfig(data=str(tmp_path), input_size=32, batch_size=4, workers=0))
    assert d.class_names == ["ant", "bee", "cat"]
    assert sorted(d.val_loader.dataset.labels) == [0, 0, 2, 2]  # val labels follow the train class list
    assert len(d.train_loader.dataset) == 11
    assert "no validation images: bee" in caplog.text
    images, labels = first_batch(d.val_loader)
    assert images.shape == (4, 3, 32, 32)


def test_val_folder_with_an_unknown_class_is_an_error(tmp_path, imgs):
    imgs.make_class_folder(tmp_path / "train", {"ant": 2, "bee": 2})
    imgs.make_class_folder(tmp_path / "val", {"ant": 1, "wasp": 1})
    with pytest.raises(UserError, match="wasp"):
        build_data(DataConfig(data=str(tmp_path), input_size=32))


def test_single_folder_split_is_stratified_and_seeded(tmp_path, imgs):
    imgs.make_class_folder(tmp_path, {"a": 10, "b": 20, "c": 5})
    src = resolve_source(str(tmp_path), val_split=0.2, seed=0)
    train, val = src.splits["train"], src.splits["val"]
    assert Counter(val.labels) == {0: 2, 1: 4, 2: 1}
    assert not set(train.items) & set(val.items) and len(train) + len(val) == 35
    assert resolve_source(str(tmp_path), val_split=0.2, seed=0).splits["val"].items == val.items
    assert resolve_source(str(tmp_path), val_split=0.2, seed=1).splits["val"].items != val.items


def test_train_folder_without_val_folder_is_split(tmp_path, imgs):
    imgs.make_class_folder(tmp_path / "train", {"a": 5, "b": 5})
    d = build_data(DataConfig(data=str(tmp_path), input_size=32, workers=0))
    assert d.class_names == ["a", "b"] and len(d.train_loader.dataset) == 8 and sorted(d.val_loader.dataset.labels) == [0, 1]


def test_eval_loader_splits(tmp_path, imgs):
    imgs.make_class_folder(tmp_path, {"a": 6, "b": 4})
    pre = Preprocessing(input_size=32)
    loader, classes = build_eval_loader(str(tmp_path), pre, split="all", batch_size=16, workers=0)
    images, labels = first_batch(loader)
    assert classes == ["a", "b"] and images.shape == (10, 3, 32, 32) and labels.tolist() == [0] * 6 + [1] * 4
    val_loader, _ = build_eval_loader(str(tmp_path), pre, split="val", workers=0)
    d = build_data(DataConfig(data=str(tmp_path), input_size=32, workers=0))
    assert val_loader.dataset.items == d.val_loader.dataset.items  # evaluate sees exactly the held-out images
    train_loader, _ = build_eval_loader(str(tmp_path), pre, split="train", workers=0)
    assert len(train_loader.dataset) + len(val_loader.dataset) == 10
    with pytest.raises(UserError, match="split must be one of val, train, all"):
        build_eval_loader(str(tmp_path), pre, split="test")


def test_csv_with_relative_paths_header_and_split_column(tmp_path, caplog, imgs):
    for i in range(3):
        imgs.save_image(tmp_path / "imgs" / f"r{i}.png", color=(220, 10, 10))
        imgs.save_image(tmp_path / "imgs" / f"g{i}.png", color=(10, 220, 10))
    rows = [f"imgs/r{i}.png,red,{'val' if i == 0 else 'train'}" for i in range(3)]
    rows += [f"imgs/g{i}.png,green,{'val' if i == 0 else 'train'}" for i in range(3)]
    rows.append("imgs/missing.png,green,train")
    (tmp_path / "labels.csv").write_text("path,label,split\n" + "\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING, "mobilenetv2.data"):
        d = build_data(DataConfig(data=str(tmp_path / "labels.csv"), input_size=32, batch_size=2, workers=0))
    assert d.class_names == ["green", "red"]
    assert len(d.train_loader.dataset) == 4 and sorted(d.val_loader.dataset.labels) == [0, 1]
    assert d.skipped == [str(tmp_path / "imgs" / "missing.png")]
    assert "skipped 1 unreadable image file(s)" in caplog.text and "missing.png" in caplog.text


def test_csv_without_header_resolves_against_data_root(tmp_path, imgs):
    imgs.make_class_folder(tmp_path / "root", {"x": 5, "y": 5})
    lines = [f"{c}/{i:03d}.png,{label}" for c, label in (("x", 10), ("y", 2)) for i in range(5)]
    (tmp_path / "list.csv").write_text("\n".join(lines))
    d = build_data(DataConfig(data=str(tmp_path / "list.csv"), data_root=str(tmp_path / "root"), input_size=32, workers=0))
    assert d.class_names == ["2", "10"]  # numeric labels sort as numbers
    assert len(d.train_loader.dataset) == 8 and len(d.val_loader.dataset) == 2


def test_csv_with_a_bad_header_is_an_error(tmp_path):
    (tmp_path / "bad.csv").write_text("file,label_name\na.png,x\n")
    with pytest.raises(UserError, match="path and label"):
        build_data(DataConfig(data=str(tmp_path / "bad.csv")))


def test_torchvision_dataset_not_present_offline_is_one_clear_error(tmp_path):
    for name in ("CIFAR10", "torchvision:Flowers102"):
        with pytest.raises(UserError) as err:
            build_data(DataConfig(data=name, data_root=str(tmp_path)))
        message = str(err.value)
        assert f"not found at {tmp_path}" in message and "cannot be downloaded without --download" in message
        assert "--data path/to/folder" in message and "\n" not in message


def test_unknown_data_spec_is_an_error(tmp_path):
    with pytest.raises(UserError, match="no such folder or CSV file, and not a torchvision dataset name"):
        build_data(DataConfig(data=str(tmp_path / "nowhere")))
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(UserError, match="not a folder or a .csv file"):
        build_data(DataConfig(data=str(tmp_path / "notes.txt")))


def write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's IDX format: magic (0, 0, uint8 type, ndim), big-endian dims, raw bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
                     + array.astype(np.uint8).tobytes())


def test_torchvision_dataset_from_local_files(tmp_path):
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    for prefix, n in (("train", 30), ("t10k", 10)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    d = build_data(DataConfig(data="MNIST", data_root=str(tmp_path), input_size=32, batch_size=8, workers=0))
    assert len(d.class_names) == 10 and d.class_names[0].startswith("0")
    assert len(d.train_loader.dataset) == 30 and len(d.val_loader.dataset) == 10  # the official test split
    images, labels = first_batch(d.train_loader)
    assert images.shape == (8, 3, 32, 32)  # grayscale became RGB


def test_torchvision_dataset_without_splits_is_split_stratified(tmp_path, imgs):
    imgs.make_class_folder(tmp_path / "eurosat" / "2750", {"Forest": 5, "River": 10})  # EuroSAT's on-disk layout
    d = build_data(DataConfig(data="EuroSAT", data_root=str(tmp_path), input_size=32, workers=0))
    assert d.class_names == ["Forest", "River"]
    assert Counter(d.val_loader.dataset.labels) == {0: 1, 1: 2} and len(d.train_loader.dataset) == 12


def test_real_photos_train_val_folder(shared_data):
    d = build_data(DataConfig(data=str(shared_data / "hymenoptera_data"), input_size=64, batch_size=8, workers=0))
    assert d.class_names == ["ants", "bees"] and d.skipped == []
    assert len(d.train_loader.dataset) == 245 and len(d.val_loader.dataset) == 153
    images, labels = first_batch(d.val_loader)
    assert images.shape == (8, 3, 64, 64)
