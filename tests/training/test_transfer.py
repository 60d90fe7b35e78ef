"""Transfer learning: pretrained weights from the torch.hub cache and the offline error."""

from __future__ import annotations

from urllib.error import URLError

import pytest
import torch

from mobilenetv2.errors import UserError
from mobilenetv2.tasks import get_task
from mobilenetv2.training.finetune import load_pretrained, prepare_model
from mobilenetv2.weights.pretrained import fetch_pretrained


def test_torchvision_weights_come_from_the_cache(tmp_path, monkeypatch, tiny):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
    cached.parent.mkdir(parents=True)
    reference = torchvision.models.mobilenet_v2().state_dict()
    torch.save(reference, cached)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("downloaded despite the cache"))
    assert fetch_pretrained("torchvision", "mobilenet_v2") == cached
    cfg = tiny(tmp_path, tmp_path / "run", width_mult=None, pretrained="torchvision")
    model = prepare_model(cfg, get_task("classification"), 3, load_pretrained(cfg))
    assert model.num_classes == 3 and model.classifier[-1].out_features == 3
    assert torch.equal(model.state_dict()["features.5.conv.1.0.weight"], reference["features.5.conv.1.0.weight"])


def test_offline_fetch_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(UserError, match=r"cannot fetch https://download\.pytorch\.org/models/mobilenet_v2-b0353104\.pth "
                                        r"\(no network.*pass --pretrained /path/mobilenet_v2-b0353104\.pth"):
        fetch_pretrained("torchvision", "mobilenet_v2")
    with pytest.raises(UserError, match="width 1.0 only"):
        fetch_pretrained("torchvision", "mobilenet_v2", 0.5)

