"""Untrusted image files: decompression bombs and broken files are one error each, photos are turned upright by
their EXIF orientation, and preprocessing sizes are bounded."""

from __future__ import annotations

import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobilenetv2.data import DataConfig, Preprocessing, build_data
from mobilenetv2.data.images import MAX_IMAGE_PIXELS, BadImageError, load_image, verify_image
from mobilenetv2.errors import UserError


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A ~70-byte grayscale PNG whose header claims ``width`` x ``height`` (PIL checks the size when opening)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [10_000, 30_000])  # above the limit (PIL warns), above twice it (PIL raises)
def test_a_decompression_bomb_is_one_error_naming_file_size_and_limit(tmp_path, side):
    bomb = png_claiming(tmp_path / "bomb.png", side, side)
    assert bomb.stat().st_size < 200
    with pytest.raises(BadImageError) as info:
        load_image(bomb)
    message = str(info.value)
    assert message.startswith(f"{bomb}: ") and f"limit of {MAX_IMAGE_PIXELS:,} pixels" in message
    assert f"{side * side:,}" in message.replace("(", " ").replace(")", " ") or f"{side * side} pixels" in message
    assert "\n" not in message
    assert "limit" in verify_image(bomb) and "limit" in verify_image(bomb, decode=False)


def test_a_picture_just_under_the_limit_is_not_refused_for_its_size(tmp_path):
    side = int(MAX_IMAGE_PIXELS ** 0.5)
    with pytest.raises(BadImageError, match="not a readable image"):  # its pixel data is missing, its size is fine
        load_image(png_claiming(tmp_path / "big.png", side, side))


def test_predict_style_loading_reports_the_bad_files_and_loads_the_rest(tmp_path, imgs):
    paths = [imgs.save_image(tmp_path / "a.png"), png_claiming(tmp_path / "bomb.png", 30_000, 30_000),
             imgs.truncated_jpeg(tmp_path / "cut.jpg", size=256), imgs.save_image(tmp_path / "b.jpg")]
    loaded, errors = [], []
    for path in paths:
        try:
            loaded.append(load_image(path))
        except BadImageError as exc:
            errors.append(str(exc))
    assert [im.size for im in loaded] == [(24, 24), (24, 24)]
    assert [e.split(":")[0] for e in errors] == [str(paths[1]), str(paths[2])]
    assert "pixels" in errors[0] and "truncated" in errors[1]


def test_training_skips_a_bomb_and_counts_it(tmp_path, imgs, caplog):
    imgs.make_class_folder(tmp_path, {"a": 4, "b": 4})
    png_claiming(tmp_path / "a" / "bomb.png", 30_000, 30_000)
    with caplog.at_level(logging.WARNING, "mobilenetv2.data"):
        d = build_data(DataConfig(data=str(tmp_path), input_size=32, batch_size=4, workers=0, augment="none"))
    assert [Path(p).name for p in d.skipped] == ["bomb.png"] and "skipped 1 unreadable image file(s)" in caplog.text
    assert len(d.train_loader.dataset) + len(d.val_loader.dataset) == 8


def test_a_bomb_met_after_the_scan_is_dropped_from_its_batch(tmp_path, imgs, caplog):
    imgs.make_class_folder(tmp_path, {"a": 4, "b": 4})
    d = build_data(DataConfig(data=str(tmp_path), input_size=32, batch_size=16, workers=0, augment="none"))
    d.train_loader.dataset.items[0] = str(png_claiming(tmp_path / "a" / "late.png", 30_000, 30_000))
    with caplog.at_level(logging.WARNING, "mobilenetv2.data"):
        _, labels = next(iter(d.train_loader))
    assert len(labels) == len(d.train_loader.dataset) - 1 and "late.png" in caplog.text and "pixels" in caplog.text


def test_photos_are_turned_upright_by_their_exif_orientation(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)  # stored landscape, 40 wide: left half red, right half blue
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    Image.fromarray(pixels).save(tmp_path / "plain.jpg", quality=95)
    upright = np.asarray(load_image(tmp_path / "phone.jpg"), dtype=int)
    assert upright.shape == (40, 20, 3)  # portrait, as the camera was held
    assert upright[5, 10, 0] > 200 > upright[5, 10, 2]  # turned clockwise: the stored left (red) half is on top
    assert upright[35, 10, 2] > 200 > upright[35, 10, 0]
    assert np.asarray(load_image(tmp_path / "plain.jpg")).shape == (20, 40, 3)  # no tag: unchanged


@pytest.mark.parametrize("kwargs, message", [
    ({"crop_pct": 0.002}, r"crop_pct must be a number in \[0.25, 1\]"),
    ({"crop_pct": 1.5}, r"crop_pct must be a number in \[0.25, 1\]"),
    ({"input_size": 4096}, r"input_size must be an integer >= 32 and <= 2048"),
    ({"input_size": 16}, r"input_size must be an integer >= 32 and <= 2048"),
])
def test_preprocessing_and_data_options_are_bounded(kwargs, message):
    with pytest.raises(UserError, match=message):
        Preprocessing(**kwargs)
    with pytest.raises(UserError, match=message):
        build_data(DataConfig(data="digits", **kwargs))


def test_the_bounds_themselves_are_allowed():
    assert Preprocessing(input_size=2048, crop_pct=0.25).resize_size == 8192
    assert Preprocessing(input_size=np.int32(32), crop_pct=1).input_size == 32  # e.g. from a TFLite header
