"""Untrusted checkpoint files: every field is checked, and tensor shapes are checked against the architecture before
any memory is allocated for the model."""

from __future__ import annotations

import json
import resource
import time

import pytest
import torch
from safetensors.torch import save_file

from mobilenetv2.cli import main
from mobilenetv2.data import Preprocessing
from mobilenetv2.errors import UserError
from mobilenetv2.models import create_model
from mobilenetv2.weights import load_checkpoint, save_checkpoint
from mobilenetv2.weights.checkpoint import METADATA_KEY


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=3)
    path = save_checkpoint(tmp_path_factory.mktemp("ok") / "tiny.safetensors", model, ["a", "b", "c"],
                           Preprocessing(input_size=64))
    return model, path


def rewrite(tiny, tmp_path, change) -> str:
    """A copy of the tiny checkpoint whose metadata JSON went through ``change``."""
    model, path = tiny
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()[METADATA_KEY])
    change(meta)
    out = tmp_path / "evil.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out),
              metadata={METADATA_KEY: json.dumps(meta)})
    return str(out)


def test_a_small_file_claiming_300000_classes_costs_nothing(tiny, tmp_path):
    def claim(meta):
        meta["architecture"]["args"]["num_classes"], meta["class_names"] = 300_000, None

    evil = rewrite(tiny, tmp_path, claim)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(UserError, match=r"does not fit mobilenet_v2\(.*num_classes=300000.*shapes differ"):
        load_checkpoint(evil)
    assert time.perf_counter() - start < 5  # today's cost was 20 s and 2.4 GB: the model is never built for real
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mb < 500


@pytest.mark.parametrize("change, message", [
    (lambda m: m.pop("architecture"), "'architecture' must be an object"),
    (lambda m: m.update(architecture={"name": 3}), "'architecture' must be an object"),
    (lambda m: m.update(class_names="a,b,c"), "'class_names' must be a list of strings"),
    (lambda m: m.update(class_names=["a"]), "1 class names for a model with 3 outputs"),
    (lambda m: m.update(task="astrology"), "unknown task 'astrology'"),
    (lambda m: m.update(preprocessing={"input_size": "big"}), "preprocessing"),
    (lambda m: m.update(preprocessing={"crop_pct": 0.002}), "crop_pct"),
    (lambda m: m.update(preprocessing=[1, 2]), "'preprocessing' must be an object"),
    (lambda m: m.update(metrics=[1]), "'metrics' must be an object"),
    (lambda m: m.update(format_version=99), "newer than this mobilenetv2 reads"),
    (lambda m: m["architecture"]["args"].update(width_mult="wide"), "width_mult"),
])
def test_malformed_metadata_is_one_line(tiny, tmp_path, change, message):
    evil = rewrite(tiny, tmp_path, change)
    with pytest.raises(UserError, match=message) as info:
        load_checkpoint(evil)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_commands_answer_a_bad_checkpoint_with_one_line_and_write_nothing(tiny, tmp_path, capsys):
    evil = rewrite(tiny, tmp_path, lambda m: m.update(class_names=[f"class {i}" for i in range(1000)]))
    images = tmp_path / "imgs"
    images.mkdir()
    from PIL import Image

    Image.new("RGB", (40, 40), "red").save(images / "x.png")
    out = tmp_path / "out"
    for argv in (["predict", evil, str(images), "--out", str(out)], ["export", evil, "--out", str(out / "m.onnx")],
                 ["benchmark", evil, "--paths", "eager"], ["info", "--checkpoint", evil]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "1000 class names for a model with 3 outputs" in err[0] and len(err[0]) < 300, err
    assert not out.exists()


def test_garbage_header_is_one_line(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes((2**40).to_bytes(8, "little") + b"{" * 100)  # a header length of 1 TB
    with pytest.raises(UserError, match="not a readable safetensors file"):
        load_checkpoint(junk)


def test_a_genuine_checkpoint_still_loads(tiny):
    model, path = tiny
    ckpt = load_checkpoint(path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ckpt.model(x), model.eval()(x))
    assert ckpt.meta.class_names == ["a", "b", "c"] and ckpt.meta.input_size == 64
