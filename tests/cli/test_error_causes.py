"""An error is one line; with -v the traceback and the underlying cause come before that line."""

from __future__ import annotations

import pytest

from mobilenetv2.cli import main


@pytest.fixture
def corrupt_program(tmp_path):
    path = tmp_path / "broken.torchscript.pt"
    path.write_bytes(b"not a zip archive")
    image = tmp_path / "image.png"
    from PIL import Image

    Image.new("RGB", (32, 32)).save(image)
    return path, image


def test_a_corrupt_file_is_one_line_without_v(corrupt_program, capsys):
    path, image = corrupt_program
    assert main(["predict", str(path), str(image), "--backend", "torch"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"mobilenetv2 predict: error: {path} is not a loadable TorchScript file")


def test_v_shows_the_cause_and_its_traceback(corrupt_program, capsys):
    path, image = corrupt_program
    assert main(["predict", "-v", str(path), str(image), "--backend", "torch"]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert any(line.startswith("RuntimeError: PytorchStreamReader") for line in lines)  # torch's own error, kept
    assert "The above exception was the direct cause of the following exception:" in err
    assert 'torchscript.py", line' in err  # where it was raised
    assert lines[-1].startswith(f"mobilenetv2 predict: error: {path} is not a loadable TorchScript file")


def test_a_failing_export_keeps_the_exporter_error_under_v(tmp_path, save_tiny, monkeypatch, capsys):
    import torch

    ckpt = save_tiny(tmp_path / "tiny.safetensors", ["a", "b"])

    def refuse(*args, **kwargs):
        raise NotImplementedError("the tracer met an operator it cannot take")

    monkeypatch.setattr(torch.jit, "trace", refuse)
    out = tmp_path / "tiny.torchscript.pt"
    assert main(["export", str(ckpt), "--format", "torchscript", "--out", str(out)]) == 2
    quiet = capsys.readouterr().err
    assert quiet == ("mobilenetv2 export: error: this model cannot be exported to TorchScript: the tracer met an operator "
                     "it cannot take\n")
    assert main(["-v", "export", str(ckpt), "--format", "torchscript", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "NotImplementedError: the tracer met an operator it cannot take" in err and "in refuse" in err
    assert err.strip().splitlines()[-1] == quiet.strip()
