"""Folders given to ``predict`` are walked once each: a symlink loop or a second link to a folder is not followed, and
it or an unreadable folder is one warning; everything else is predicted."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from mobilenetv2.cli import main
from mobilenetv2.inference.stream.sources.files import ImageFiles, walk


@pytest.fixture
def looped(image_folder, tmp_path) -> Path:
    """A copy of ``image_folder`` with ``loop -> .``, ``circle/up -> ..`` and two links that point at each other."""
    root = shutil.copytree(image_folder, tmp_path / "looped")
    os.symlink(".", root / "loop")
    os.symlink("..", root / "circle" / "up")
    os.symlink("ping", root / "pong")
    os.symlink("pong", root / "ping")
    return root


def test_walk_follows_no_loop_and_lists_each_image_once(looped, image_folder, caplog):
    found = list(walk(looped))
    assert sorted(p.relative_to(looped) for p in found) == sorted(p.relative_to(image_folder)
                                                                 for p in image_folder.rglob("*.png"))
    assert "loop: the same folder as one already walked" in caplog.text and "up: the same folder" in caplog.text


def test_walking_twice_warns_once(looped, caplog):
    source = ImageFiles([str(looped)])
    assert source.count() == len(list(source.paths())) == 12
    assert caplog.text.count("loop: the same folder") == 1


def test_an_unreadable_folder_is_one_warning_and_the_rest_is_listed(image_folder, monkeypatch, caplog):
    scandir = os.scandir

    def refuse_square(path):
        if Path(path).name == "square":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refuse_square)
    found = list(walk(image_folder))
    assert len(found) == 8 and not any("square" in str(p) for p in found)
    assert f"skipped {image_folder / 'square'}: Permission denied" in caplog.text


def test_predict_on_a_folder_with_a_symlink_loop_predicts_everything(tiny_checkpoint, looped, tmp_path, capsys):
    assert main(["predict", str(tiny_checkpoint), str(looped), "--format", "jsonl", "--out", str(tmp_path / "out")]) == 0
    images = [json.loads(line)["image"] for line in capsys.readouterr().out.splitlines()]
    assert len(images) == len(set(images)) == 12
