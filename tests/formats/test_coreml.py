"""Core ML packages: the .mlpackage of a classifier and of a DeepLab model, checked through its spec on Linux (input,
scale and bias, labels, outputs, fp16 or int8 weights); Core ML's own predictions where it runs (simulated here);
one line for what Core ML cannot take, with nothing left at --out."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mobilenetv2.cli import main
from mobilenetv2.models import create_model
from mobilenetv2.models.fuse import fuse_bn
from mobilenetv2.spec import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from mobilenetv2.weights import load_checkpoint, save_checkpoint

ct = pytest.importorskip("coremltools", reason="--format coreml needs coremltools (the [mobile] extra)")

LABELS = ["ant", "bee", "wasp, yellow"]
ON_MAC = sys.platform == "darwin"


def _with_statistics(model: torch.nn.Module, logit_scale: float = 1.0) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics (folding is really tested) and, for a classifier, logits far apart."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.normal_(0, 0.1, generator=generator)
            bn.running_var.uniform_(0.5, 1.5, generator=generator)
        for linear in (m for m in model.modules() if isinstance(m, torch.nn.Linear)):
            linear.weight.mul_(logit_scale)
    return model


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = _with_statistics(create_model("mobilenet_v2", width_mult=0.35, num_classes=3), logit_scale=300.0)
    return save_checkpoint(tmp_path_factory.mktemp("coreml") / "clf.safetensors", model, LABELS,
                           Preprocessing(input_size=64))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Four 80x60 colour gradients: different enough for a random network to give each a clear class."""
    folder = tmp_path_factory.mktemp("photos")
    ramp = np.linspace(0, 1, 80, dtype=np.float32)[None, :, None]
    for i, colour in enumerate([(220, 40, 40), (40, 200, 60), (30, 60, 230), (240, 240, 240)]):
        pixels = (ramp * np.asarray(colour, np.float32)).repeat(60, axis=0)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"p{i}.png")
    return folder


def _export(*argv: str) -> tuple[int, str]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["export", *argv])
    return code, printed.getvalue()


@pytest.fixture(scope="module")
def exported_classifier(classifier, photos) -> tuple[Path, str]:
    out = classifier.with_name("clf.mlpackage")
    code, printed = _export(str(classifier), "--format", "coreml", "--out", str(out), "--verify-images", str(photos))
    assert code == 0, printed
    return out, printed


def _spec_and_ops(path: Path):
    """The package's spec and its ML Program's operations, read with coremltools (any system)."""
    from coremltools.converters.mil.frontend.milproto.load import load

    mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
    spec = mlmodel.get_spec()
    program = load(spec, spec.specificationVersion, file_weights_dir=mlmodel.weights_dir)
    return spec, list(program.functions["main"].operations)


def _weight_producers(ops) -> list:
    return [op.weight.op for op in ops if op.op_type in ("conv", "linear")]


@pytest.mark.slow
def test_classifier_package_spec(exported_classifier, classifier):
    out, printed = exported_classifier
    assert out.is_dir() and (out / "Manifest.json").is_file()
    assert "verify: the graph given to coremltools (normalisation folded) against PyTorch: PASS on 4 real images" in printed
    assert "spec: PASS" in printed and f"wrote {out}" in printed
    if not ON_MAC:
        assert "Core ML predictions against PyTorch: skipped: Core ML runs on macOS/iOS only (this machine runs Linux)" in printed

    spec, ops = _spec_and_ops(out)
    (image,) = spec.description.input
    assert image.name == "image" and (image.type.imageType.width, image.type.imageType.height) == (64, 64)
    assert image.type.imageType.colorSpace == type(image.type.imageType).ColorSpace.Value("RGB")
    # Core ML computes scale * pixel + bias: one scale (the mean std), one bias per channel
    common = float(np.mean(IMAGENET_STD))
    mul = next(op for op in ops if op.op_type == "mul" and op.x.name == "image")
    add = next(op for op in ops if op.op_type == "add" and op.x is mul.outputs[0])
    assert float(mul.y.val) == pytest.approx(1 / (255 * common), rel=1e-6)
    np.testing.assert_allclose(np.ravel(add.y.val), [-m / common for m in IMAGENET_MEAN], rtol=1e-6)
    # ... and the rest of each channel's std is in the first conv: the file holds the BN-folded weights times it
    model = load_checkpoint(classifier).model
    first = next(m for m in fuse_bn(model).modules() if isinstance(m, torch.nn.Conv2d)).weight.detach()
    expected = first * torch.tensor([common / s for s in IMAGENET_STD]).view(1, 3, 1, 1)
    stored = _weight_producers(ops)[0].outputs[0].val
    assert stored.dtype == np.float16
    np.testing.assert_allclose(stored.astype(np.float32), expected.numpy(), atol=2e-3 * float(expected.abs().max()))
    # a classifier: the labels, Core ML's two outputs, fp16 weights everywhere, our metadata
    classify = next(op for op in ops if op.op_type == "classify")
    assert [str(c) for c in classify.classes.val] == LABELS
    assert {o.name for o in spec.description.output} == {"classLabel", "classLabel_probs"}
    assert spec.description.predictedFeatureName == "classLabel"
    kinds = {str(p.outputs[0].val.dtype) for p in _weight_producers(ops)}
    assert kinds == {"float16"} and len(_weight_producers(ops)) == 53
    stored_meta = dict(spec.description.metadata.userDefined)
    assert json.loads(stored_meta["mobilenetv2.class_names"]) == LABELS
    assert json.loads(stored_meta["mobilenetv2.weights"]) == "fp16"
    assert json.loads(stored_meta["mobilenetv2.preprocessing"])["input_size"] == 64


@pytest.mark.slow
def test_package_metadata_reads_back_and_runs_only_on_macos(exported_classifier, capsys):
    from mobilenetv2.formats import entry_of, get_format

    out, _ = exported_classifier
    assert entry_of(out).name == "coreml" and entry_of(out.parent).name == "checkpoint"  # any other folder: a run
    meta, precision = get_format("coreml").read_meta(out)
    assert (meta.task, meta.class_names, meta.preprocessing.input_size, precision) == ("classification", LABELS, 64, "fp16")
    if ON_MAC:
        pytest.skip("Core ML runs here")
    assert main(["predict", str(out), str(out.parent / "clf.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mobilenetv2 predict: error: Core ML runs on macOS/iOS only; this machine runs Linux")
    assert err.count("\n") == 1


@pytest.mark.slow
def test_deeplab_package_int8_weights(tmp_path):
    torch.manual_seed(0)
    model = _with_statistics(create_model("deeplabv3_mobilenet_v2", width_mult=0.35, num_classes=4))
    ckpt = save_checkpoint(tmp_path / "seg.safetensors", model, ["background", "a", "b", "c"],
                           Preprocessing(input_size=65, resize_mode="squash", crop_pct=1.0), task="segmentation")
    code, printed = _export(str(ckpt), "--format", "coreml", "--int8")
    out = tmp_path / "seg.mlpackage"
    assert code == 0 and f"wrote {out}" in printed
    assert "same argmax 100% of the pixels" in printed and "output mask int32 1x65x65" in printed

    spec, ops = _spec_and_ops(out)
    (mask,) = spec.description.output
    assert mask.name == "mask" and list(mask.type.multiArrayType.shape) == [1, 65, 65]
    assert mask.type.multiArrayType.dataType == type(mask.type.multiArrayType).ArrayDataType.Value("INT32")
    quantized = [p for p in _weight_producers(ops) if p.op_type == "constexpr_affine_dequantize"]
    assert quantized and all(p.quantized_data.val.dtype == np.int8 for p in quantized)
    assert not any(op.op_type == "classify" for op in ops)
    # int8 weights: well under the 2 bytes per parameter of fp16 (small tensors stay fp16)
    params = sum(p.numel() for p in model.parameters())
    weights = sum(f.stat().st_size for f in out.rglob("weight.bin"))
    assert weights < 1.3 * params
    assert json.loads(dict(spec.description.metadata.userDefined)["mobilenetv2.weights"]) == "int8"


class FakeCoreML:
    """Stands in for Core ML where it does not run: the PyTorch model on the image's pixels, normalised here."""

    def __init__(self, model: torch.nn.Module, swap: bool = False) -> None:
        self.model, self.swap = model.eval(), swap

    def predict(self, inputs: dict) -> dict:
        pixels = np.asarray(inputs["image"], dtype=np.float32) / 255.0
        x = (pixels - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
        with torch.inference_mode():
            probs = self.model(torch.from_numpy(x.transpose(2, 0, 1)[None].copy())).softmax(1)[0].tolist()
        if self.swap:  # a converter bug: two classes exchanged
            probs[0], probs[1] = probs[1], probs[0]
        return {"classLabel": LABELS[int(np.argmax(probs))], "classLabel_probs": dict(zip(LABELS, probs))}


@pytest.mark.slow
@pytest.mark.parametrize("swap", [False, True])
def test_predictions_are_checked_where_core_ml_runs(swap, classifier, photos, tmp_path, monkeypatch):
    import mobilenetv2.backends.coreml as backend
    import mobilenetv2.formats.coreml as fmt

    fake = FakeCoreML(load_checkpoint(classifier).model, swap)
    monkeypatch.setattr(fmt, "unavailable_reason", lambda: None)
    monkeypatch.setattr(backend, "unavailable_reason", lambda: None)
    monkeypatch.setattr(backend, "load_mlmodel", lambda path, options: fake)
    out = tmp_path / "clf.mlpackage"
    code, printed = _export(str(classifier), "--format", "coreml", "--out", str(out), "--verify-images", str(photos))
    if swap:
        assert code == 2 and not out.exists() and list(tmp_path.iterdir()) == []
    else:
        assert code == 0 and "Core ML predictions: PASS: same class on 100% of 4 clear images of 4" in printed


def test_compare_predictions_of_masks():
    from mobilenetv2.formats.coreml import compare_predictions

    reference = np.zeros((1, 3, 10, 10), np.float32)
    reference[0, 1] = 1.0
    outputs = reference.copy()
    outputs[0, :, 0, 0] = [0.0, 0.0, 1.0]  # one pixel of 100 disagrees: 99%
    assert compare_predictions("segmentation", reference, outputs, "fp16")["passed"]
    outputs[0, :, 0, 1] = [0.0, 0.0, 1.0]
    assert not compare_predictions("segmentation", reference, outputs, "fp16")["passed"]
    assert compare_predictions("segmentation", reference, outputs, "int8")["passed"]


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"mobilenetv2 {command}: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize(("name", "kwargs", "task", "message"), [
    ("ssdlite_mobilenet_v2", {"width_mult": 0.35, "num_classes": 3, "image_size": 64}, "detection",
     "Core ML export writes classifiers and segmentation models, not detection"),
    ("mobilenet_v2", {"width_mult": 0.35, "num_classes": 2, "in_chans": 4}, None,
     "Core ML's image inputs are RGB or grayscale; this model takes 4 channels"),
])
def test_what_core_ml_cannot_take_is_one_line(name, kwargs, task, message, tmp_path, capsys):
    model = create_model(name, **kwargs)
    pre = Preprocessing(input_size=64, mean=(0.5,) * 4, std=(0.5,) * 4) if kwargs.get("in_chans") == 4 else None
    ckpt = save_checkpoint(tmp_path / "m.safetensors", model, preprocessing=pre, task=task)
    out = tmp_path / "m.mlpackage"
    assert main(["export", str(ckpt), "--format", "coreml", "--out", str(out)]) == 2
    assert message in _one_line_error(capsys, "export")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_unsupported_python_and_wrong_options_are_one_line(classifier, tmp_path, monkeypatch, capsys):
    out = tmp_path / "m.mlpackage"
    assert main(["export", str(classifier), "--format", "onnx", "--int8", "--out", str(tmp_path / "m.onnx")]) == 2
    assert "--int8 at export is for Core ML (int8 weights)" in _one_line_error(capsys, "export")
    assert main(["export", str(classifier), "--format", "coreml", "--opset", "17", "--out", str(out)]) == 2
    assert "--opset is an ONNX option" in _one_line_error(capsys, "export")
    # coremltools installed from its source on a Python it has no wheels for: no compiled parts
    monkeypatch.setitem(sys.modules, "coremltools.libmilstoragepython", None)
    assert main(["export", str(classifier), "--format", "coreml", "--out", str(out)]) == 2
    assert "has no compiled parts for Python" in _one_line_error(capsys, "export")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_an_op_the_converter_cannot_take(classifier, tmp_path):
    from mobilenetv2.errors import UserError
    from mobilenetv2.export.exporter import export_model

    class InverseErf(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.erfinv(torch.tanh(x) * 0.5)

    ckpt = load_checkpoint(classifier)
    ckpt.model.features[1].conv[0][2] = InverseErf()  # no Core ML op for erfinv
    with pytest.raises(UserError, match="coremltools cannot convert this model: Unsupported fx node erfinv"):
        export_model(ckpt.model, tmp_path / "m.mlpackage", "coreml", meta=ckpt.meta)
    assert list(tmp_path.iterdir()) == []


def test_atomic_folder_replaces_whole_or_leaves_the_old(tmp_path):
    from mobilenetv2.io import atomic_folder

    target = tmp_path / "m.mlpackage"
    with atomic_folder(target) as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("first")
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        tmp.mkdir()
        (tmp / "a").write_text("half")
        raise RuntimeError("the converter failed")
    assert (target / "a").read_text() == "first"
    with atomic_folder(target) as tmp:
        tmp.mkdir()
        (tmp / "b").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b"] and [p.name for p in tmp_path.iterdir()] == ["m.mlpackage"]
