import torch

from mobilenetv2.models.fuse import count_batchnorms, fuse_bn
from mobilenetv2.weights import load_model


def test_fuse_bn_removes_batchnorm_and_keeps_outputs(tiny_checkpoint):
    model = load_model(tiny_checkpoint)
    fused = fuse_bn(model)
    x = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        expected, actual = model(x), fused(x)
    assert count_batchnorms(fused) == 0
    assert count_batchnorms(model) > 0  # the original is untouched
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-4)


def test_fuse_bn_handles_tf_same_padding(randomise_bn):
    from mobilenetv2.models import create_model

    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=5, tf_padding=True).eval()
    randomise_bn(model)  # fresh BatchNorms are near identities: folding them would prove little
    fused = fuse_bn(model)
    assert count_batchnorms(fused) == 0  # the padding layer does not stop the Conv2dSame + BatchNorm fold
    x = torch.randn(1, 3, 48, 48)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-4)
