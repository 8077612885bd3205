import pytest
import torch
from torch import nn

from rlkit.algorithms.flat_params import FlatParameters


def test_parameters_and_gradients_live_in_one_flat_tensor():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    reference = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    reference.load_state_dict(net.state_dict())
    flat = FlatParameters(net)
    assert flat.param.numel() == sum(p.numel() for p in reference.parameters())
    x = torch.randn(5, 3)
    torch.testing.assert_close(net(x), reference(x))
    for _ in range(2):  # gradients accumulate into the flat gradient, in place
        flat.zero_grad()
        net(x).pow(2).sum().backward()
    reference(x).pow(2).sum().backward()
    expected = torch.cat([p.grad.flatten() for p in reference.parameters()])
    torch.testing.assert_close(flat.param.grad, expected)


def test_clip_and_set():
    net = nn.Linear(2, 2)
    flat = FlatParameters(net)
    flat.param.grad.fill_(3.0)  # six values: norm 3 * sqrt(6)
    before = flat.clip_grad_norm_(1.0)
    assert before.item() == pytest.approx(3 * 6**0.5)
    assert flat.param.grad.norm().item() == pytest.approx(1.0, rel=1e-4)
    flat.set(torch.arange(6.0))
    torch.testing.assert_close(net.weight.detach(), torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
    with pytest.raises(ValueError, match="do not fit"):
        flat.set(torch.zeros(5))
