"""DenseMix and FactoredMix: the mixing identity (FactoredMix == DenseMix with a_ljk = A_lj B_lk) and
gradients with respect to inputs and weights, in float64."""
import pytest
import torch

from dense_conv import DenseMix, FactoredMix, dense_conv2d
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


@pytest.mark.parametrize("layer_type", [DenseMix, FactoredMix])
def test_gradcheck_inputs_and_weights(layer_type):
    torch.manual_seed(1)
    layer = layer_type(2, 3, 2).double()
    names = [name for name, _ in layer.named_parameters()]
    assert names == (["weight"] if layer_type is DenseMix else ["impulse_mix", "response_mix"])
    weights = tuple(p.detach().clone().requires_grad_() for p in layer.parameters())
    response, impulse = make_inputs((1, 2, 3, 5, 6, 2, 3), requires_grad=True)

    def fn(response, impulse, *weights):
        return torch.func.functional_call(layer, dict(zip(names, weights)), (response, impulse))

    assert torch.autograd.gradcheck(fn, (response, impulse, *weights))


def test_dense_mix_equals_dense_conv_then_1x1_conv():
    """DenseMix (dense_mix_conv2d, no Ci*Cr planes) against the layer's formula: dense_conv2d, then a 1x1
    conv2d of its Ci*Cr channels; values and the gradients of inputs and weight."""
    torch.manual_seed(2)
    layer = DenseMix(impulse_channels=3, response_channels=4, out_channels=5).double()
    response, impulse = make_inputs((2, 3, 4, 9, 20, 6, 7), requires_grad=True)
    y = layer(response, impulse)
    r2, i2 = response.detach().clone().requires_grad_(), impulse.detach().clone().requires_grad_()
    w2 = layer.weight.detach().clone().requires_grad_()
    expected = torch.nn.functional.conv2d(dense_conv2d(r2, i2), w2.reshape(5, 12, 1, 1))
    assert y.shape == (2, 5, 9, 20)
    assert_close_scaled(y, expected, torch.float64)
    grad = torch.randn_like(y)
    y.backward(grad)
    expected.backward(grad)
    for a, e in ((response.grad, r2.grad), (impulse.grad, i2.grad), (layer.weight.grad, w2.grad)):
        assert_close_scaled(a, e, torch.float64)
