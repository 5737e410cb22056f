"""The CPU FFT forward keeping its spectra for the backward (dense_conv2d_fft_keep_spectra /
dense_conv2d_fft_backward_spectra, chosen by dense_conv._algorithm.keep_fft_spectra): the same gradients
as recomputing them, gradcheck through it, autograd's version check on in-place changes, the budget,
opcheck and the fake kernels."""
import pytest
import torch

import dense_conv
from dense_conv import _algorithm
from dense_conv._shapes import fft_size
from testing import make_inputs, shape_id

ops = torch.ops.dense_conv
KEEP = "inf"  # DENSE_CONV_FFT_SPECTRA_BUDGET that keeps the spectra at every shape; "0" never keeps them

# (B, Ci, Cr, Hi, Wi, Hr, Wr): padded rows and columns, a kernel larger than the image, one channel, the user's kernel
SHAPES = [(2, 2, 3, 6, 8, 1, 1), (1, 2, 3, 4, 6, 9, 11), (2, 1, 1, 9, 3, 3, 7), (2, 2, 3, 20, 70, 37, 16)]


def _fft_grads(response, impulse, g):
    out = dense_conv.dense_conv2d(response, impulse, algorithm="fft")
    return (out, *torch.autograd.grad(out, (response, impulse), g))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_kept_spectra_give_bitwise_the_same_gradients(monkeypatch, dtype, shape):
    response, impulse = make_inputs(shape, dtype=dtype, requires_grad=True)
    B, Ci, Cr, Hi, Wi = shape[:5]
    g = torch.randn(B, Ci * Cr, Hi, Wi, generator=torch.Generator().manual_seed(1), dtype=dtype)
    results = {}
    for budget in (KEEP, "0"):
        monkeypatch.setenv(_algorithm.SPECTRA_BUDGET_ENV, budget)
        assert _algorithm.keep_fft_spectra(response, impulse) == (budget == KEEP)
        results[budget] = _fft_grads(response, impulse, g)
    for kept, recomputed in zip(results[KEEP], results["0"]):
        assert torch.equal(kept, recomputed)


def test_gradcheck_and_gradgradcheck_through_kept_spectra(monkeypatch):
    monkeypatch.setenv(_algorithm.SPECTRA_BUDGET_ENV, KEEP)
    response, impulse = make_inputs((2, 2, 2, 5, 7, 3, 4), requires_grad=True)
    assert _algorithm.keep_fft_spectra(response, impulse)
    f = lambda r, i: dense_conv.dense_conv2d(r, i, algorithm="fft")  # noqa: E731
    assert torch.autograd.gradcheck(f, (response, impulse))
    assert torch.autograd.gradgradcheck(f, (response, impulse))


@pytest.mark.parametrize("modified", ["response", "impulse"])
def test_inplace_change_after_the_forward_raises(monkeypatch, modified):
    monkeypatch.setenv(_algorithm.SPECTRA_BUDGET_ENV, KEEP)
    response, impulse = make_inputs((2, 2, 3, 6, 8, 3, 2))
    inputs = {"response": response.clone().requires_grad_(), "impulse": impulse.clone().requires_grad_()}
    leaf = {name: t.clone() for name, t in inputs.items()}  # non-leaf copies: in-place changes are allowed
    out = dense_conv.dense_conv2d(leaf["response"], leaf["impulse"], algorithm="fft")
    with torch.no_grad():
        leaf[modified].mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_budget(monkeypatch):
    """The user's shape: the spectra are 0.69x the output, kept at the default budget, not below it."""
    response = torch.empty(64, 5, 37, 16, requires_grad=True)
    impulse = torch.empty(64, 4, 84, 600)
    monkeypatch.delenv(_algorithm.SPECTRA_BUDGET_ENV, raising=False)
    assert _algorithm.keep_fft_spectra(response, impulse)
    assert not _algorithm.keep_fft_spectra(response.detach(), impulse)  # no gradient wanted
    with torch.no_grad():
        assert not _algorithm.keep_fft_spectra(response, impulse)
    one_channel = (torch.empty(64, 1, 37, 16, requires_grad=True), torch.empty(64, 1, 84, 600))
    assert not _algorithm.keep_fft_spectra(*one_channel)  # spectra 2.1x the output
    for budget, keep in (("0.7", True), ("0.68", False), ("0", False)):
        monkeypatch.setenv(_algorithm.SPECTRA_BUDGET_ENV, budget)
        assert _algorithm.keep_fft_spectra(response, impulse) == keep
    for bad in ("-1", "lots", "nan"):
        monkeypatch.setenv(_algorithm.SPECTRA_BUDGET_ENV, bad)
        with pytest.raises(ValueError, match=_algorithm.SPECTRA_BUDGET_ENV):
            _algorithm.keep_fft_spectra(response, impulse)


@pytest.mark.parametrize("shape", SHAPES[:3], ids=shape_id)
def test_opcheck_and_fake_shapes(shape):
    for requires_grad in (False, True):
        response, impulse = make_inputs(shape, dtype=torch.float32, requires_grad=requires_grad)
        torch.library.opcheck(ops.dense_conv2d_fft_keep_spectra, (response, impulse))
        out, impulse_spectra, response_spectra = ops.dense_conv2d_fft_keep_spectra(response, impulse)
        fake = ops.dense_conv2d_fft_keep_spectra(response.to("meta"), impulse.to("meta"))
        for real, meta in zip((out, impulse_spectra, response_spectra), fake):
            assert (real.shape, real.dtype) == (meta.shape, meta.dtype)
        g = torch.randn_like(out)
        args = (g, response.detach(), impulse.detach(), impulse_spectra, response_spectra)
        torch.library.opcheck(ops.dense_conv2d_fft_backward_spectra, args)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_spectra_that_do_not_fit_raise(device):
    response, impulse = (t.to(device) for t in make_inputs((2, 2, 3, 6, 8, 3, 2), dtype=torch.float32))
    out, impulse_spectra, response_spectra = ops.dense_conv2d_fft_keep_spectra(response, impulse)
    H, W = fft_size(6, 8, 3, 2)
    assert impulse_spectra.shape == (2, 2, H, W // 2 + 1) and response_spectra.dtype == torch.complex64
    for bad in (impulse_spectra[:, :1], impulse_spectra.to(torch.complex128), impulse_spectra.transpose(2, 3)):
        with pytest.raises(RuntimeError, match="impulse_spectra must be the forward's spectra"):
            ops.dense_conv2d_fft_backward_spectra(out, response, impulse, bad, response_spectra)
    with pytest.raises(RuntimeError, match="response_spectra must be the forward's spectra"):
        ops.dense_conv2d_fft_backward_spectra(out, response, impulse, impulse_spectra, impulse_spectra)


def test_torch_compile_through_kept_spectra(monkeypatch):
    monkeypatch.setenv(_algorithm.SPECTRA_BUDGET_ENV, KEEP)

    def model(response, impulse):
        return (dense_conv.dense_conv2d(response * 2.0, impulse, algorithm="fft").relu() ** 2).sum()

    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    response, impulse = make_inputs((2, 2, 3, 6, 8, 3, 2), requires_grad=True)
    expected = torch.autograd.grad(model(response, impulse), (response, impulse))
    actual = torch.autograd.grad(compiled(response, impulse), (response, impulse))
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e)
