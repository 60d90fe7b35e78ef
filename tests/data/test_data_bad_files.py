"""Bad data: broken files are skipped and counted once, odd image modes are converted, nothing usable is an error."""

from __future__ import annotations

import logging

import pytest

from mobilenetv2.data import DataConfig, build_data
from mobilenetv2.data.images import verify_image
from mobilenetv2.errors import UserError


@pytest.fixture
def messy_folder(tmp_path, imgs):
    """train/val folders mixing good, convertible and broken files, plus an empty class and a stray text file."""
    train = tmp_path / "train"
    imgs.make_class_folder(train, {"ants": 3, "bees": 3})
    imgs.save_image(train / "ants" / "cmyk.jpg", mode="CMYK")
    imgs.save_image(train / "ants" / "rgba.png", mode="RGBA")
    imgs.save_image(train / "bees" / "sixteen_bit.png", mode="I;16")
    imgs.save_image(train / "bees" / "palette.png", mode="P")
    imgs.save_image(train / "bees" / "gray.jpg", mode="L")
    (train / "bees" / "text.jpg").write_text("this is not a JPEG")
    imgs.truncated_jpeg(train / "ants" / "truncated.jpg")
    (train / "ants" / "notes.txt").write_text("not an image name: ignored, not counted")
    (train / "wasps").mkdir()  # an empty class folder
    imgs.make_class_folder(tmp_path / "val", {"ants": 2, "bees": 2})
    return tmp_path


def test_broken_files_are_skipped_and_reported_in_one_line(messy_folder, caplog):
    with caplog.at_level(logging.WARNING, "mobilenetv2.data"):
        d = build_data(DataConfig(data=str(messy_folder), input_size=32, batch_size=4, workers=0))
    assert sorted(p.rsplit("/", 1)[1] for p in d.skipped) == ["text.jpg", "truncated.jpg"]
    skip_lines = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(skip_lines) == 1 and "skipped 2 unreadable image file(s)" in skip_lines[0] and "\n" not in skip_lines[0]
    assert d.class_names == ["ants", "bees"]  # the empty class folder is ignored, with a warning
    assert "ignoring 1 class(es) with no usable training images: wasps" in caplog.text
    assert len(d.train_loader.dataset) == 11  # 6 plain + CMYK, RGBA, 16-bit, palette, grayscale
    seen = 0
    for images, labels in d.train_loader:  # a whole epoch without a crash; every mode became RGB
        assert images.shape[1:] == (3, 32, 32)
        seen += len(labels)
    assert seen == 8  # drop_last: two full batches of 4


def test_a_file_that_breaks_after_the_scan_is_dropped_not_fatal(tmp_path, imgs, caplog):
    imgs.make_class_folder(tmp_path, {"a": 5, "b": 5})
    d = build_data(DataConfig(data=str(tmp_path), input_size=32, batch_size=16, workers=0, augment="none"))
    d.train_loader.dataset.items[0] = str(tmp_path / "a" / "gone.png")
    with caplog.at_level(logging.WARNING, "mobilenetv2.data"):
        images, labels = next(iter(d.train_loader))
    assert len(labels) == len(d.train_loader.dataset) - 1 and "gone.png" in caplog.text


def test_large_datasets_check_headers_only_and_drop_truncated_files_later(tmp_path, imgs, monkeypatch, caplog):
    from mobilenetv2.data import folders

    imgs.make_class_folder(tmp_path, {"a": 4, "b": 4})
    imgs.truncated_jpeg(tmp_path / "a" / "cut.jpg")
    monkeypatch.setattr(folders, "FULL_CHECK_LIMIT", 0)
    d = build_data(DataConfig(data=str(tmp_path), input_size=32, batch_size=16, workers=0, val_split=0.1))
    assert d.skipped == [] and str(tmp_path / "a" / "cut.jpg") in d.train_loader.dataset.items
    with caplog.at_level(logging.WARNING, "mobilenetv2.data"):
        images, labels = next(iter(d.train_loader))
    assert len(labels) == len(d.train_loader.dataset) - 1 and "cut.jpg" in caplog.text


def test_nothing_usable_is_one_clear_error(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / "x.jpg").write_bytes(b"\x00" * 10)
    with pytest.raises(UserError, match="no usable training images"):
        build_data(DataConfig(data=str(tmp_path), input_size=32))


def test_no_class_folders_or_a_single_class_is_an_error(tmp_path, imgs):
    imgs.save_image(tmp_path / "flat" / "loose.png")
    with pytest.raises(UserError, match="no class sub-folders"):
        build_data(DataConfig(data=str(tmp_path / "flat"), input_size=32))
    imgs.make_class_folder(tmp_path / "one", {"only": 4})
    with pytest.raises(UserError, match="need at least 2 classes"):
        build_data(DataConfig(data=str(tmp_path / "one"), input_size=32))


def test_verify_image_names_the_problem(tmp_path, imgs):
    assert verify_image(imgs.save_image(tmp_path / "ok.jpg")) is None
    assert "truncated" in verify_image(imgs.truncated_jpeg(tmp_path / "cut.jpg", size=256))
    (tmp_path / "text.png").write_text("hello")
    assert "UnidentifiedImageError" in verify_image(tmp_path / "text.png")
    assert verify_image(tmp_path / "missing.png") == "no such file"


@pytest.mark.parametrize("field, value, allowed", [
    ("augment", "heavy", "paper, light, randaugment, trivialaugment, none"),
    ("balance", "oversample", "none, sampler, weights"),
    ("val_split", 1.5, "(0, 1)"),
    ("mixup", -1.0, ">= 0"),
    ("input_size", 8, ">= 32"),
])
def test_bad_options_are_one_clear_error(field, value, allowed):
    with pytest.raises(UserError, match=field) as err:
        build_data(DataConfig(**{field: value}))
    assert allowed in str(err.value)
