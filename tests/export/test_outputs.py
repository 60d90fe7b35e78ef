"""``io.check_writable``: where export and quantize may write, decided before any work."""

import os

import pytest

from mobilenetv2.errors import UserError
from mobilenetv2.io import check_writable


def test_new_paths_and_existing_files_are_writable(tmp_path):
    check_writable(tmp_path / "a" / "b" / "model.onnx")  # folders still to be created
    existing = tmp_path / "model.onnx"
    existing.write_bytes(b"old")  # 0644, not executable: overwriting it is allowed
    check_writable(existing)
    check_writable(tmp_path / "run", folder=True)


@pytest.mark.parametrize(("name", "folder", "message"), [
    ("dir", False, "is a folder; give a file path"),
    ("file", True, "is a file; give a folder"),
    ("file/model.onnx", False, "is a file"),
])
def test_outputs_that_cannot_be_written_are_one_line(tmp_path, name, folder, message):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match=message) as err:
        check_writable(tmp_path / name, folder=folder)
    assert "\n" not in str(err.value)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions and a non-root user")
def test_a_read_only_folder_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(UserError, match="no write permission"):
            check_writable(locked / "model.onnx")
    finally:
        locked.chmod(0o755)
