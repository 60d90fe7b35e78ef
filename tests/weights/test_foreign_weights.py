"""State dicts of torchvision and timm load into ours and give the same logits."""

from __future__ import annotations

import pytest
import torch
import torchvision

from mobilenetv2 import UserError, create_model, load_model
from mobilenetv2.weights import load_state_dict_strict, to_our_keys


def randomise_bn(model: torch.nn.Module) -> torch.nn.Module:
    """Random BatchNorm statistics and affine terms, so that eval-mode outputs exercise every tensor."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model.eval()


def assert_same_logits(theirs: torch.nn.Module, ours: torch.nn.Module, size: int = 96) -> None:
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (theirs(x) - ours.eval()(x)).abs().max().item()
    assert diff <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("width", [0.35, 0.5, 1.0, 1.4])
def test_torchvision_mobilenet_v2_any_width(width):
    tv = randomise_bn(torchvision.models.mobilenet_v2(width_mult=width, num_classes=10))
    ours = create_model("mobilenet_v2", width_mult=width, num_classes=10)
    ours.load_state_dict(tv.state_dict())  # identical keys, no mapping
    assert_same_logits(tv, ours)
    _, arch = to_our_keys(tv.state_dict())
    assert arch["args"]["width_mult"] == width and arch["args"]["num_classes"] == 10


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["small", "large"])
def test_torchvision_mobilenet_v3(variant):
    tv = randomise_bn(getattr(torchvision.models, f"mobilenet_v3_{variant}")())
    sd, arch = to_our_keys(tv.state_dict())
    assert arch == {"name": "mobilenet_v3", "args": {"num_classes": 1000, "in_chans": 3, "variant": variant,
                                                      "width_mult": 1.0}}
    ours = create_model(f"mobilenet_v3_{variant}")
    load_state_dict_strict(ours, sd)
    assert_same_logits(tv, ours)


@pytest.mark.slow
@pytest.mark.parametrize("name,width", [("mobilenetv2_050", 0.5), ("mobilenetv2_100", 1.0), ("mobilenetv2_140", 1.4)])
def test_timm_mobilenetv2(name, width):
    timm = pytest.importorskip("timm")
    theirs = randomise_bn(timm.create_model(name, pretrained=False))
    sd, arch = to_our_keys(theirs.state_dict())
    assert arch["name"] == "mobilenet_v2" and arch["args"]["width_mult"] == width
    ours = create_model("mobilenet_v2", width_mult=width)
    load_state_dict_strict(ours, sd)
    assert_same_logits(theirs, ours)


@pytest.mark.slow
def test_load_model_from_pth_and_timm_safetensors(tmp_path):
    tv = randomise_bn(torchvision.models.mobilenet_v2(width_mult=0.75))
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    assert_same_logits(tv, load_model(tmp_path / "tv.pth"))
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    theirs = randomise_bn(timm.create_model("mobilenetv2_050"))
    save_file(theirs.state_dict(), str(tmp_path / "model.safetensors"))
    assert_same_logits(theirs, load_model(tmp_path / "model.safetensors"))
    from mobilenetv2.weights import load_checkpoint

    # each source's weights come with the preprocessing they were measured with: timm's bicubic, torchvision's bilinear
    timm_pre = load_checkpoint(tmp_path / "model.safetensors").preprocessing
    assert timm_pre.interpolation == theirs.pretrained_cfg["interpolation"] == "bicubic"
    assert timm_pre.crop_pct == pytest.approx(theirs.pretrained_cfg["crop_pct"])
    assert load_checkpoint(tmp_path / "tv.pth").preprocessing.interpolation == "bilinear"


def test_wrong_width_names_keys_and_shapes():
    sd = create_model("mobilenet_v2", width_mult=0.5).state_dict()
    with pytest.raises(UserError) as err:
        load_state_dict_strict(create_model("mobilenet_v2"), sd)
    msg = str(err.value)
    assert "does not fit mobilenet_v2(num_classes=1000, width_mult=1.0)" in msg
    assert "features.0.0.weight: checkpoint [16, 3, 3, 3] vs model [32, 3, 3, 3]" in msg
    assert "look like mobilenet_v2(num_classes=1000, width_mult=0.5)" in msg
    assert "\n" not in msg


def test_other_architecture_names_keys():
    sd = create_model("mobilenet_v3_small").state_dict()
    with pytest.raises(UserError, match=r"keys missing \(e\.g\. .*\).*unexpected keys"):
        load_state_dict_strict(create_model("mobilenet_v2"), sd)


def test_unrelated_state_dict():
    with pytest.raises(UserError, match="not a MobileNet"):
        to_our_keys(torchvision.models.resnet18().state_dict())
