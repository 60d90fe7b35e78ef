"""Our checkpoint format: safetensors + JSON, atomic, nothing unpickled, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from mobilenetv2 import UserError, create_model, load_model
from mobilenetv2.data import Preprocessing
from mobilenetv2.weights import load_checkpoint, save_checkpoint


def test_round_trip(tmp_path):
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=3, activation="hardswish").eval()
    pre = Preprocessing(input_size=160, crop_pct=0.9, interpolation="bicubic")
    path = save_checkpoint(tmp_path / "m.safetensors", model, ["a", "b", "c"], pre, {"val_acc": 0.5})
    ckpt = load_checkpoint(path)
    assert ckpt.class_names == ["a", "b", "c"] and ckpt.preprocessing == pre and ckpt.metrics == {"val_acc": 0.5}
    assert ckpt.model.arch == model.arch and not ckpt.model.training
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ckpt.model(x), model(x))


def test_metadata_is_plain_json(tmp_path):
    save_checkpoint(tmp_path / "model.safetensors", create_model("mobilenet_v2_035"))
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        meta = json.loads(f.metadata()["mobilenetv2"])
    assert meta["format"] == "mobilenetv2-checkpoint" and meta["architecture"]["name"] == "mobilenet_v2"
    assert set(meta) >= {"architecture", "class_names", "preprocessing", "metrics"}


def test_folder_prefers_best(tmp_path):
    save_checkpoint(tmp_path / "last.safetensors", create_model("mobilenet_v2_035", num_classes=2))
    save_checkpoint(tmp_path / "best.safetensors", create_model("mobilenet_v2_035", num_classes=3))
    assert load_model(tmp_path).num_classes == 3


def test_class_names_must_match_outputs(tmp_path):
    with pytest.raises(UserError, match="2 class names for a model with 3 outputs"):
        save_checkpoint(tmp_path / "x.safetensors", create_model("mobilenet_v2_035", num_classes=3), ["a", "b"])
    assert not list(tmp_path.iterdir())


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import mobilenetv2.weights.checkpoint as ck

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ck, "save_file", boom)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "m.safetensors", create_model("mobilenet_v2_035"))
    assert not list(tmp_path.iterdir())


def test_corrupt_and_missing_files(tmp_path):
    good = save_checkpoint(tmp_path / "good.safetensors", create_model("mobilenet_v2_035"))
    data = good.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint at all")
    (tmp_path / "junk.pth").write_bytes(b"\x80\x04junk")
    for name in ("trunc.safetensors", "junk.safetensors", "junk.pth"):
        with pytest.raises(UserError):
            load_model(tmp_path / name)
    with pytest.raises(UserError, match="checkpoint not found"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(UserError, match="no checkpoint in folder"):
        load_model(tmp_path / "empty_dir" if (tmp_path / "empty_dir").mkdir() is None else None)


def test_pickle_payload_is_not_executed(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(tmp_path / 'pwned')!r}, 'w').write('pwned')",))

    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"features.0.0.weight": Evil()}))
    with pytest.raises(UserError):
        load_model(tmp_path / "evil.pth")
    assert not (tmp_path / "pwned").exists()


def test_checkpoint_file_has_usual_permissions(tmp_path):
    import os
    import stat

    path = save_checkpoint(tmp_path / "m.safetensors", create_model("mobilenet_v2_035"))
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


def test_classifier_at_package_root():
    import mobilenetv2
    from mobilenetv2.inference import Classifier

    assert mobilenetv2.Classifier is Classifier
