"""The mixing identity: FactoredMix == DenseMix with a_ljk = A_lj B_lk, values and gradients."""
import torch

from dense_conv import DenseMix, FactoredMix
from testing import assert_close_scaled, make_inputs


def test_factored_mix_equals_its_dense_form():
    torch.manual_seed(0)
    factored = FactoredMix(impulse_channels=3, response_channels=4, out_channels=5).double()
    dense = factored.to_dense().double()
    response, impulse = make_inputs((2, 3, 4, 9, 11, 3, 5))
    y_factored = factored(response, impulse)
    y_dense = dense(response, impulse)
    assert y_factored.shape == (2, 5, 9, 11)
    assert_close_scaled(y_factored, y_dense, torch.float64)


def test_dense_mix_gradients():
    torch.manual_seed(1)
    layer = DenseMix(2, 3, 2).double()
    response, impulse = make_inputs((1, 2, 3, 5, 6, 2, 3), requires_grad=True)
    assert torch.autograd.gradcheck(lambda r, i: layer(r, i), (response, impulse))
    layer(response, impulse).square().sum().backward()
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()
