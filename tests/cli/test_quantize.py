import json

import onnx
import pytest

from mobilenetv2.cli import main


@pytest.fixture
def checkpoint(tmp_path, save_tiny):
    return save_tiny(tmp_path / "tiny.safetensors", ["ants", "bees"], input_size=32)


def test_quantize_reports_fp32_and_int8_side_by_side(checkpoint, shared_data, capsys):
    data = shared_data / "hymenoptera_data"
    out = checkpoint.parent / "tiny.int8.onnx"
    code = main(["quantize", str(checkpoint), "--calib", str(data / "train"), "--val", str(data / "val"),
                 "--num-calib", "8", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["val_images"] == 153 and report["calibration_images"] == 8  # every val image, 8 calibration images
    assert 0 <= report["int8_top1"] <= 1 and 0 <= report["agreement"] <= 1
    assert report["int8_mb"] < report["fp32_mb"] / 2
    proto = onnx.load(str(out))
    assert any(n.op_type == "QuantizeLinear" for n in proto.graph.node)
    assert "mobilenetv2.class_names" in {p.key for p in proto.metadata_props}

    from mobilenetv2.export.runtime import OnnxBackend

    assert OnnxBackend(out).class_names == ["ants", "bees"]


def test_quantize_rejects_a_calibration_folder_without_images(checkpoint, tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "ants").mkdir(parents=True)
    (empty / "bees").mkdir()
    out = tmp_path / "x.int8.onnx"
    assert main(["quantize", str(checkpoint), "--calib", str(empty), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mobilenetv2 quantize: error:") and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.slow
def test_quantize_for_executorch_writes_an_int8_program_beside_its_metadata(checkpoint, shared_data, capsys):
    pytest.importorskip("executorch", reason="--runtime executorch needs ExecuTorch (the [interop] extra)")
    import numpy as np
    import torch

    from mobilenetv2.export.executorch import ExecuTorchBackend
    from mobilenetv2.weights import load_model

    data = shared_data / "hymenoptera_data"
    out = checkpoint.parent / "tiny.int8.pte"
    code = main(["quantize", str(checkpoint), "--calib", str(data / "train"), "--val", str(data / "val"),
                 "--num-calib", "8", "--runtime", "executorch", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["runtime"] == "executorch" and report["method"] == "histogram" and report["out"] == str(out)
    assert report["val_images"] == 153 and report["calibration_images"] == 8
    assert report["int8_mb"] < report["fp32_mb"] / 2  # int8 weights in the program, not fp32 ones
    assert json.loads(out.with_name("tiny.int8.pte.json").read_text())["mobilenetv2.class_names"] == ["ants", "bees"]

    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        reference = load_model(checkpoint)(images).numpy()
    logits = ExecuTorchBackend(out)(images)
    assert logits.shape == reference.shape
    # int8 approximates fp32: close relative to the logits' spread, but not equal (it would be for fp32 weights)
    spread = float(np.abs(reference).max())
    assert 0 < float(np.abs(logits - reference).max()) < 0.25 * spread + 0.05


def test_quantize_rejects_onnx_only_options_for_executorch(checkpoint, shared_data, tmp_path, capsys):
    out = tmp_path / "x.int8.pte"
    data = shared_data / "hymenoptera_data"
    assert main(["quantize", str(checkpoint), "--calib", str(data / "train"), "--runtime", "executorch",
                 "--method", "entropy", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mobilenetv2 quantize: error: --method apply to --runtime onnxruntime only")
    assert err.count("\n") == 1 and not out.exists()
