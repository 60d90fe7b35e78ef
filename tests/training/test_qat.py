import copy

import pytest
import torch

from mobilenetv2.models import MobileNet, create_model
from mobilenetv2.training.qat import finalize_qat, is_qat, prepare_qat


@pytest.mark.slow
def test_prepare_qat_keeps_keys_trains_and_finalizes():
    torch.manual_seed(0)
    model = create_model("mobilenet_v2", width_mult=0.35, num_classes=3)
    keys = list(model.state_dict())
    qat = prepare_qat(model)
    assert is_qat(qat) and list(qat.state_dict()) == keys
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    before = qat.features[1].conv[0][0].weight.detach().clone()
    optimizer = torch.optim.SGD(qat.parameters(), lr=0.1)
    qat.train()
    loss = torch.nn.functional.cross_entropy(qat(x), y)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and not torch.equal(before, qat.features[1].conv[0][0].weight)

    qat.eval()
    with torch.inference_mode():
        fake_quantised = qat(x)
        assert torch.equal(copy.deepcopy(qat)(x), fake_quantised)  # e.g. an EMA copy behaves the same
    plain = finalize_qat(qat)
    assert isinstance(plain, MobileNet) and not is_qat(plain)
    assert list(plain.state_dict()) == keys
    assert type(plain.features[0][0]) is torch.nn.Conv2d and type(plain.classifier[-1]) is torch.nn.Linear
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in plain.modules())
    with torch.inference_mode():
        full_precision = plain(x)
    assert not torch.equal(full_precision, fake_quantised)  # fake quantisation was really applied
    torch.testing.assert_close(full_precision, fake_quantised, atol=0.5, rtol=0.5)
