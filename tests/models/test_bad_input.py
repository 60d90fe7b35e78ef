"""Bad input gives one clear error naming the parameter and what is allowed."""

from __future__ import annotations

import pytest
import torch

from mobilenetv2 import UserError, create_model


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width_mult": 0}, "width_mult must be a number > 0"),
        ({"width_mult": -1.0}, "width_mult must be a number > 0"),
        ({"num_classes": 0}, "num_classes must be an integer >= 1"),
        ({"num_classes": 2.5}, "num_classes must be an integer >= 1"),
        ({"activation": "tanhh"}, "unknown activation 'tanhh'; allowed: relu6"),
        ({"dropout": 1.5}, r"dropout must be in \[0, 1\)"),
        ({"nonsense": 1}, "bad argument for model 'mobilenet_v2'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(UserError, match=match):
        create_model("mobilenet_v2", **kwargs)


def test_unknown_model_suggests():
    with pytest.raises(UserError, match=r"unknown model 'mobilenet_v22'.*did you mean mobilenet_v2"):
        create_model("mobilenet_v22")


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((3, 224, 224), "must have 4 dimensions"),
        ((1, 1, 224, 224), "must have 3 channels"),
        ((1, 3, 16, 64), "resolution must be at least 32x32"),
    ],
)
def test_bad_tensors(shape, match):
    model = create_model("mobilenet_v2_035").eval()
    with pytest.raises(UserError, match=match):
        model(torch.randn(*shape))
    with pytest.raises(UserError, match=match):
        model.forward_pyramid(torch.randn(*shape))


def test_non_tensor_input():
    with pytest.raises(UserError, match="must be a torch.Tensor"):
        create_model("mobilenet_v2_035")([[1.0]])
