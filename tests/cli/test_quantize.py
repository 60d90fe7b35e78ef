import json

import onnx
import pytest

from mobilenetv2.cli import main


@pytest.fixture
def checkpoint(tmp_path, save_tiny):
    return save_tiny(tmp_path / "tiny.safetensors", ["ants", "bees"], input_size=32)


@pytest.mark.slow
def test_quantize_reports_fp32_and_int8_side_by_side(checkpoint, shared_data, capsys):
    data = shared_data / "hymenoptera_data"
    out = checkpoint.parent / "tiny.int8.onnx"
    code = main(["quantize", str(checkpoint), "--calib", str(data / "train"), "--val", str(data / "val"),
                 "--num-calib", "8", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["val_images"] == 153 and report["calibration_images"] == 8  # every val image, 8 calibration images
    assert report["compared_on"] == "validation" and report["compared_images"] == 153 and report["no_accuracy"] == ""
    assert 0 <= report["int8_top1"] <= 1 and 0 <= report["agreement"] <= 1
    assert report["int8_mb"] < report["fp32_mb"] / 2
    assert report["speedup_p10"] <= report["speedup"] <= report["speedup_p90"] and report["speed_rounds"] == 20
    assert report["cpu"].startswith("CPU: ")
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["tiny.int8.onnx", "tiny.safetensors"]
    proto = onnx.load(str(out))
    assert any(n.op_type == "QuantizeLinear" for n in proto.graph.node)
    assert "mobilenetv2.class_names" in {p.key for p in proto.metadata_props}

    from mobilenetv2.formats import open_runtime

    assert open_runtime(out).class_names == ["ants", "bees"]


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
    pytest.importorskip("executorch", reason="--format pte needs ExecuTorch (the [interop] extra)")
    import numpy as np
    import torch

    from mobilenetv2.formats import open_runtime
    from mobilenetv2.weights import load_model

    data = shared_data / "hymenoptera_data"
    out = checkpoint.parent / "tiny.int8.pte"
    code = main(["quantize", str(checkpoint), "--calib", str(data / "train"), "--val", str(data / "val"),
                 "--num-calib", "8", "--format", "pte", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["format"], report["backend"], report["method"]) == ("pte", "executorch", "histogram")
    assert report["out"] == str(out)
    assert report["val_images"] == 153 and report["calibration_images"] == 8
    assert report["int8_mb"] < report["fp32_mb"] / 2  # int8 weights in the program, not fp32 ones
    stored = json.loads(out.with_name("tiny.int8.pte.json").read_text())
    assert stored["mobilenetv2.class_names"] == ["ants", "bees"] and stored["mobilenetv2.precision"] == "int8"

    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        reference = load_model(checkpoint)(images).numpy()
    runtime = open_runtime(out)
    assert runtime.precision == "int8"
    logits = runtime(images)
    assert logits.shape == reference.shape
    # int8 approximates fp32: close relative to the logits' spread, but not equal (it would be for fp32 weights)
    spread = float(np.abs(reference).max())
    assert 0 < float(np.abs(logits - reference).max()) < 0.25 * spread + 0.05


def test_quantize_rejects_onnx_only_options_for_executorch(checkpoint, shared_data, tmp_path, capsys):
    out = tmp_path / "x.int8.pte"  # the extension picks the format
    data = shared_data / "hymenoptera_data"
    assert main(["quantize", str(checkpoint), "--calib", str(data / "train"), "--method", "entropy", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mobilenetv2 quantize: error: --method apply to ONNX (onnxruntime) only")
    assert err.count("\n") == 1 and not out.exists()


@pytest.mark.parametrize(("args", "expected"), [
    (["--out", "m.int8.torchscript.pt"],
     "--out m.int8.torchscript.pt: quantize writes onnx, pte, tflite, openvino files (.onnx, .pte, .tflite, .xml)"),
    (["--out", "m.int8.txt"], "--out m.int8.txt: quantize writes onnx, pte, tflite, openvino files (.onnx, .pte, .tflite, .xml)"),
    (["--out", "m.int8.onnx", "--format", "pte"], "--out m.int8.onnx is an onnx file but --format says pte"),
])
def test_quantize_format_comes_from_the_output_name(checkpoint, args, expected, capsys):
    assert main(["quantize", str(checkpoint), "--calib", "photos", *args]) == 2
    err = capsys.readouterr().err
    assert err == f"mobilenetv2 quantize: error: {expected}\n"


@pytest.mark.slow
def test_quantize_with_unlabelled_photos_reports_agreement_and_no_accuracy(checkpoint, shared_data, tmp_path, capsys):
    photos = tmp_path / "photos"  # a plain folder of photos: no class sub-folders
    photos.mkdir()
    for src in sorted((shared_data / "hymenoptera_data" / "val" / "bees").glob("*.jpg"))[:6]:
        (photos / src.name).write_bytes(src.read_bytes())
    out = tmp_path / "out" / "tiny.int8.onnx"
    assert main(["quantize", str(checkpoint), "--calib", str(photos), "--num-calib", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].startswith("CPU: ") and ("VNNI" in lines[0] or "dot-product" in lines[0] or "unknown" in lines[0])
    assert lines[1].startswith("backends: torch")
    assert "same prediction on" in printed and "of 4 calibration images" in printed and "|logit diff| max" in printed
    assert "no accuracy measured: no labelled --val given" in printed and "p10-p90" in printed
    assert [p.name for p in out.parent.iterdir()] == ["tiny.int8.onnx"]  # nothing else beside it


@pytest.mark.slow
def test_quantize_with_a_glob_of_photos_and_labelled_val_gives_accuracy(checkpoint, shared_data, tmp_path, capsys):
    data = shared_data / "hymenoptera_data"
    out = tmp_path / "tiny.int8.onnx"
    assert main(["quantize", str(checkpoint), "--calib", str(data / "train" / "ants" / "1*.jpg"), "--num-calib", "4",
                 "--val", str(data / "val"), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["calibration_images"] == 4 and report["val_images"] == 153 and report["compared_on"] == "validation"
    assert report["fp32_top1"] is not None and report["drop_points"] is not None


@pytest.mark.slow
def test_quantize_calibrates_on_labelled_data_of_other_classes_without_accuracy(checkpoint, shared_data, tmp_path,
                                                                                 capsys):
    other = tmp_path / "other"  # labelled, but with classes the checkpoint does not have
    for name in ("cat", "dog"):
        (other / name).mkdir(parents=True)
        for src in sorted((shared_data / "hymenoptera_data" / "val" / "bees").glob("*.jpg"))[:2]:
            (other / name / src.name).write_bytes(src.read_bytes())
    out = tmp_path / "x.int8.onnx"
    assert main(["quantize", str(checkpoint), "--calib", str(other), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fp32_top1"] is None and report["compared_on"] == "calibration" and report["compared_images"] == 4
    assert "classes of --calib are not the checkpoint's" in report["no_accuracy"]


@pytest.mark.parametrize("case", ["folder", "under_a_file"])
def test_quantize_refuses_an_unwritable_out_before_any_work(checkpoint, tmp_path, capsys, case):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    out = tmp_path if case == "folder" else blocker / "x.int8.onnx"
    assert main(["quantize", str(checkpoint), "--calib", str(tmp_path / "no-such-photos"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mobilenetv2 quantize: error:") and err.count("\n") == 1
    assert "no-such-photos" not in err  # refused before the calibration data was even looked at
