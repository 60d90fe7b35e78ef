"""``benchmark`` given an exported file says in one line what it takes (not a safetensors parse error)."""

from __future__ import annotations

import pytest

from mobilenetv2.cli import main


@pytest.mark.parametrize(("name", "said"), [("model.onnx", "is an ONNX model"), ("model.tflite", "--tflite FILE"),
                                             ("model.pte", "is an ExecuTorch program")])
def test_an_exported_file_is_one_line_saying_what_benchmark_takes(tmp_path, capsys, name, said):
    exported = tmp_path / name
    exported.write_bytes(b"\x08\x07" + b"\0" * 64)
    assert main(["benchmark", str(exported)]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and said in err and "takes a checkpoint" in err
    assert "safetensors file" not in err
