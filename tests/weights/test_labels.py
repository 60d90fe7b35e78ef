"""One reader of labels files for every command: one name a line, exactly one per class, a note allowed after them."""

import pytest

from mobilenetv2.errors import UserError
from mobilenetv2.spec import read_labels


def test_names_one_a_line_stripped(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes(b"\n  ants \r\nbees\r\n\r\n")
    assert read_labels(path, 2) == ["ants", "bees"]


def test_a_note_may_follow_the_names_after_a_blank_line(shared_data, tmp_path):
    pascal = read_labels(shared_data / "segmentation" / "pascal_voc_segmentation_labels.txt", 21)
    assert (pascal[0], pascal[-1]) == ("background", "tvmonitor")
    path = tmp_path / "labels.txt"
    path.write_text("a\nb\n\nnote: these are letters\n")
    assert read_labels(path, 2) == ["a", "b"]


@pytest.mark.parametrize("text", ["a\nb\n", "a\nb\nc\nd\n"])  # too few, and too many (an extra background class)
def test_a_file_of_another_length_is_one_line(tmp_path, text):
    path = tmp_path / "labels.txt"
    path.write_text(text)
    with pytest.raises(UserError, match=f"labels file {path} has {text.count(chr(10))} labels but the model has 3 classes"):
        read_labels(path, 3)


def test_an_unreadable_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="cannot read labels file"):
        read_labels(tmp_path / "missing.txt", 3)
    assert read_labels(["x", "y"], 2) == ["x", "y"]
