import onnx
import pytest

from mobilenetv2.cli import main


@pytest.fixture
def checkpoint(tmp_path, save_tiny):
    return save_tiny(tmp_path / "tiny.safetensors", ["ants", "bees"], input_size=64)


@pytest.mark.slow
def test_export_onnx_verifies_on_real_images(checkpoint, shared_data, capsys):
    out = checkpoint.parent / "model.onnx"
    images = str(shared_data / "hymenoptera_data" / "val" / "bees")
    assert main(["export", str(checkpoint), "--out", str(out), "--verify-images", images]) == 0
    printed = capsys.readouterr().out
    assert "verify: PASS on 32 real images" in printed and f"wrote {out}" in printed
    proto = onnx.load(str(out))
    assert not any(n.op_type == "BatchNormalization" for n in proto.graph.node)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    assert {p.key for p in proto.metadata_props} >= {"mobilenetv2.class_names", "mobilenetv2.preprocessing"}
    # the weights are inside the file: no external-data (.data) or temporary file beside it
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.onnx", "tiny.safetensors"]
    assert main(["export", str(checkpoint), "--out", str(out)]) == 0  # an existing output is replaced
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.onnx", "tiny.safetensors"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["torchscript", "pt2"])
def test_export_torch_formats(checkpoint, fmt, capsys):
    assert main(["export", str(checkpoint), "--format", fmt]) == 0
    printed = capsys.readouterr().out
    assert "verify: PASS on 4 synthetic images" in printed
    assert list(checkpoint.parent.glob(f"tiny.{'torchscript.pt' if fmt == 'torchscript' else 'pt2'}"))


def test_export_errors_are_one_line_and_leave_no_file(checkpoint, tmp_path, capsys):
    out = tmp_path / "bad.onnx"
    assert main(["export", str(checkpoint), "--out", str(out), "--opset", "7"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mobilenetv2 export: error: --opset must be between 13 and 23") and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob(".bad.onnx*"))
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 10)
    assert main(["export", str(broken)]) == 2
    assert "mobilenetv2 export: error:" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["folder", "under_a_file"])
def test_export_refuses_an_unwritable_out_before_loading(tmp_path, capsys, case):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    out = tmp_path if case == "folder" else blocker / "model.onnx"
    missing = tmp_path / "missing.safetensors"  # never read: the output is checked first
    assert main(["export", str(missing), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mobilenetv2 export: error:") and err.count("\n") == 1 and "missing" not in err
