"""Atomic writes of a file with companions (an OpenVINO IR's .xml and .bin): all of them, or nothing."""

import pytest

from mobilenetv2.io import atomic_files


def test_a_file_and_its_companion_take_their_names_together(tmp_path):
    out = tmp_path / "sub" / "model.xml"
    with atomic_files(out, (".bin",)) as staged:
        assert staged.name == "model.xml" and staged.parent != out.parent  # the writer sees the real name
        staged.write_text("graph")
        staged.with_suffix(".bin").write_bytes(b"weights")
        assert not out.exists()
    assert out.read_text() == "graph" and out.with_suffix(".bin").read_bytes() == b"weights"
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.bin", "model.xml"]


def test_a_failed_write_leaves_nothing_and_keeps_the_old_files(tmp_path):
    out = tmp_path / "model.xml"
    out.write_text("old")
    with pytest.raises(RuntimeError), atomic_files(out, (".bin",)) as staged:
        staged.write_text("new")
        raise RuntimeError("verification failed")
    with pytest.raises(FileNotFoundError), atomic_files(out, (".bin",)) as staged:
        staged.write_text("new")  # the companion was never written
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["model.xml"]
