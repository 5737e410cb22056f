"""The FFT forwards keeping their spectra for the backward (dense_conv2d_fft_keep_spectra /
dense_conv2d_fft_backward_spectra, the dense_mix_conv2d_fft_* pair; chosen by
dense_conv._algorithm.keep_fft_spectra), on the CPU and CUDA (the "cuda" cases run on a GPU machine,
tools/gpu_check.sh; without a GPU the CUDA pipeline is mirrored in tests/test_cuda_emulated*.py): the same
gradients as recomputing them, gradcheck through them, autograd's version check on in-place changes, the
budget, opcheck and the fake kernels."""
import pytest
import torch

import dense_conv
from dense_conv import _algorithm
from dense_conv._shapes import fft_size
from testing import make_inputs, needs_cuda_kernels, shape_id

ops = torch.ops.dense_conv
KEEP = "inf"  # DENSE_CONV_FFT_SPECTRA_BUDGET that keeps the spectra at every shape; "0" never keeps them

# (B, Ci, Cr, Hi, Wi, Hr, Wr): padded rows and columns, a kernel larger than the image, one channel, the user's kernel
SHAPES = [(2, 2, 3, 6, 8, 1, 1), (1, 2, 3, 4, 6, 9, 11), (2, 1, 1, 9, 3, 3, 7), (2, 2, 3, 20, 70, 37, 16)]


L = 3  # dense_mix_conv2d's output channels
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda_kernels)]


def _weight(shape, dtype, requires_grad=True, device="cpu"):
    Ci, Cr = shape[1:3]
    w = torch.randn(L, Ci, Cr, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    return w.to(device, dtype).requires_grad_(requires_grad)


def _call(kind, inputs):
    """dense_conv2d(response, impulse) or dense_mix_conv2d(response, impulse, weight), FFT algorithm."""
    if kind == "dense":
        return dense_conv.dense_conv2d(*inputs, algorithm="fft")
    return dense_conv.dense_mix_conv2d(*inputs, algorithm="fft")


def _inputs(kind, shape, dtype=torch.float64, device="cpu"):
    response, impulse = make_inputs(shape, dtype=dtype, device=device, requires_grad=True)
    return (response, impulse) if kind == "dense" else (response, impulse, _weight(shape, dtype, device=device))


def _keeps(inputs):
    return _algorithm.keep_fft_spectra(*inputs[:2], mix_weight=inputs[2] if len(inputs) == 3 else None)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["dense", "mix"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_kept_spectra_give_bitwise_the_same_gradients(monkeypatch, kind, dtype, shape, device):
    inputs = _inputs(kind, shape, dtype, device)
    B, Ci, Cr, Hi, Wi = shape[:5]
    channels = Ci * Cr if kind == "dense" else L
    g = torch.randn(B, channels, Hi, Wi, generator=torch.Generator().manual_seed(1), dtype=dtype).to(device)
    results = {}
    for budget in (KEEP, "0"):
        monkeypatch.setenv(_algorithm.SPECTRA_BUDGET_ENV, budget)
        assert _keeps(inputs) == (budget == KEEP)
        out = _call(kind, inputs)
        results[budget] = (out, *torch.autograd.grad(out, inputs, g))
    for kept, recomputed in zip(results[KEEP], results["0"]):
        assert torch.equal(kept, recomputed)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["dense", "mix"])
def test_gradcheck_and_gradgradcheck_through_kept_spectra(monkeypatch, kind, device):
    monkeypatch.setenv(_algorithm.SPECTRA_BUDGET_ENV, KEEP)
    inputs = _inputs(kind, (2, 2, 2, 5, 7, 3, 4), device=device)
    assert _keeps(inputs)
    f = lambda *args: _call(kind, args)  # noqa: E731
    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


@pytest.mark.parametrize("kind", ["dense", "mix"])
@pytest.mark.parametrize("modified", [0, 1, 2], ids=["response", "impulse", "weight"])
@pytest.mark.parametrize("device", DEVICES)
def test_inplace_change_after_the_forward_raises(monkeypatch, kind, modified, device):
    if kind == "dense" and modified == 2:
        pytest.skip("dense_conv2d has no weight")
    monkeypatch.setenv(_algorithm.SPECTRA_BUDGET_ENV, KEEP)
    leaves = _inputs(kind, (2, 2, 3, 6, 8, 3, 2), device=device)
    inputs = [t.clone() for t in leaves]  # non-leaf copies: in-place changes are allowed
    out = _call(kind, inputs)
    with torch.no_grad():
        inputs[modified].mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_budget(monkeypatch):
    """The user's shape: the spectra are 0.69x the output, kept at the default budget, not below it; the fused
    mix's 1.7x kept at the CPU's default."""
    response = torch.empty(64, 5, 37, 16, requires_grad=True)
    impulse = torch.empty(64, 4, 84, 600)
    monkeypatch.delenv(_algorithm.SPECTRA_BUDGET_ENV, raising=False)
    assert _algorithm.keep_fft_spectra(response, impulse)
    assert not _algorithm.keep_fft_spectra(response.detach(), impulse)  # no gradient wanted
    with torch.no_grad():
        assert not _algorithm.keep_fft_spectra(response, impulse)
    one_channel = (torch.empty(64, 1, 37, 16, requires_grad=True), torch.empty(64, 1, 84, 600))
    assert not _algorithm.keep_fft_spectra(*one_channel)  # spectra 2.1x the output
    assert _algorithm.keep_fft_spectra(response, impulse, mix_weight=torch.empty(8, 4, 5))  # 1.7x, L = 8 (CPU: 2)
    assert not _algorithm.keep_fft_spectra(response, impulse, mix_weight=torch.empty(6, 4, 5))  # 2.3x, L = 6
    # counted in the spectra's dtype: complex64 for float16 (the CUDA ops transform it in float32), 1.38x the output,
    # so not kept at CUDA's default of 1
    half = (torch.empty(64, 5, 37, 16, dtype=torch.float16, requires_grad=True),
            torch.empty(64, 4, 84, 600, dtype=torch.float16))
    monkeypatch.setenv(_algorithm.SPECTRA_BUDGET_ENV, str(_algorithm.DEFAULT_SPECTRA_BUDGET["cuda"]))
    assert not _algorithm.keep_fft_spectra(*half)
    monkeypatch.setenv(_algorithm.SPECTRA_BUDGET_ENV, "1.4")
    assert _algorithm.keep_fft_spectra(*half)
    for budget, keep in (("0.7", True), ("0.68", False), ("0", False)):
        monkeypatch.setenv(_algorithm.SPECTRA_BUDGET_ENV, budget)
        assert _algorithm.keep_fft_spectra(response, impulse) == keep
    for bad in ("-1", "lots", "nan"):
        monkeypatch.setenv(_algorithm.SPECTRA_BUDGET_ENV, bad)
        with pytest.raises(ValueError, match=_algorithm.SPECTRA_BUDGET_ENV):
            _algorithm.keep_fft_spectra(response, impulse)


def _opcheck_cases():
    """(device, dtype): the CPU ops take float32 / float64, the CUDA ops also float16 / bfloat16 (complex64 spectra)."""
    cuda = [pytest.param("cuda", dtype, marks=needs_cuda_kernels) for dtype in (torch.float32, torch.float16)]
    return [("cpu", torch.float32)] + cuda


@pytest.mark.parametrize("device,dtype", _opcheck_cases())
@pytest.mark.parametrize("shape", SHAPES[:3], ids=shape_id)
def test_opcheck_and_fake_shapes(shape, device, dtype):
    for requires_grad in (False, True):
        response, impulse = make_inputs(shape, dtype=dtype, device=device, requires_grad=requires_grad)
        torch.library.opcheck(ops.dense_conv2d_fft_keep_spectra, (response, impulse))
        out, impulse_spectra, response_spectra = ops.dense_conv2d_fft_keep_spectra(response, impulse)
        fake = ops.dense_conv2d_fft_keep_spectra(response.to("meta"), impulse.to("meta"))
        for real, meta in zip((out, impulse_spectra, response_spectra), fake):
            assert (real.shape, real.dtype) == (meta.shape, meta.dtype)
        g = torch.randn_like(out)
        args = (g, response.detach(), impulse.detach(), impulse_spectra, response_spectra)
        torch.library.opcheck(ops.dense_conv2d_fft_backward_spectra, args)


@pytest.mark.parametrize("device,dtype", _opcheck_cases())
@pytest.mark.parametrize("shape", SHAPES[:3], ids=shape_id)
def test_mix_opcheck_and_fake_shapes(shape, device, dtype):
    for requires_grad in (False, True):
        response, impulse = make_inputs(shape, dtype=dtype, device=device, requires_grad=requires_grad)
        weight = _weight(shape, dtype, requires_grad, device)
        torch.library.opcheck(ops.dense_mix_conv2d_fft_keep_spectra, (response, impulse, weight))
        real = ops.dense_mix_conv2d_fft_keep_spectra(response, impulse, weight)
        fake = ops.dense_mix_conv2d_fft_keep_spectra(response.to("meta"), impulse.to("meta"), weight.to("meta"))
        assert [(t.shape, t.dtype) for t in real] == [(t.shape, t.dtype) for t in fake]
        args = (torch.randn_like(real[0]), response.detach(), impulse.detach(), weight.detach(), *real[1:])
        torch.library.opcheck(ops.dense_mix_conv2d_fft_backward_spectra, args)


@pytest.mark.parametrize("dtype,complex_dtype", [(torch.float16, torch.complex64), (torch.bfloat16, torch.complex64),
                                                 (torch.float32, torch.complex64), (torch.float64, torch.complex128)])
def test_fake_spectra_dtype(dtype, complex_dtype):
    """The fake kernels' spectra dtype is the transforms' (csrc/checks.h fft_real_type): the CUDA ops transform
    float16 / bfloat16 in float32, and the backward takes those spectra with a 16-bit grad_out."""
    response, impulse = (torch.empty(*size, dtype=dtype, device="meta") for size in ((2, 3, 3, 2), (2, 2, 6, 8)))
    weight = torch.empty(L, 2, 3, dtype=dtype, device="meta")
    for op, args, out_channels in ((ops.dense_conv2d_fft_keep_spectra, (response, impulse), 6),
                                   (ops.dense_mix_conv2d_fft_keep_spectra, (response, impulse, weight), L)):
        out, impulse_spectra, response_spectra = op(*args)
        assert out.dtype == dtype and impulse_spectra.dtype == response_spectra.dtype == complex_dtype
    grad_out = torch.empty(2, 6, 6, 8, dtype=dtype, device="meta")
    ops.dense_conv2d_fft_backward_spectra(grad_out, response, impulse, impulse_spectra, response_spectra)


@pytest.mark.parametrize("device", ["cpu", "meta", pytest.param("cuda", marks=needs_cuda_kernels)])
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
    weight = torch.randn(L, 2, 3, device=device)
    mix_out = torch.zeros(2, L, 6, 8, device=device)
    with pytest.raises(RuntimeError, match="dense_mix_conv2d: response_spectra must be the forward's spectra"):
        ops.dense_mix_conv2d_fft_backward_spectra(mix_out, response, impulse, weight, impulse_spectra, impulse_spectra)


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


@needs_cuda_kernels
def test_cuda_kept_spectra_across_batch_chunks_are_the_cpu_ops():
    # chunks of 3 + 1 samples (as test_conv.py test_cuda_fft_batch_chunks): every chunk writes its part of the
    # kept spectra, the backward's chunks read them
    response, impulse = make_inputs((4, 8, 8, 200, 1500, 37, 16), dtype=torch.float32, device="cuda")
    g = torch.randn(4, 64, 200, 1500, generator=torch.Generator().manual_seed(2)).cuda()
    out, impulse_spectra, response_spectra = ops.dense_conv2d_fft_keep_spectra(response, impulse)
    assert torch.equal(out, ops.dense_conv2d_fft(response, impulse))
    kept = ops.dense_conv2d_fft_backward_spectra(g, response, impulse, impulse_spectra, response_spectra)
    for a, b in zip(kept, ops.dense_conv2d_fft_backward(g, response, impulse)):
        assert torch.equal(a, b)
    # the CPU op's layout and scaling, so that the fake kernels and autograd glue serve both
    response, impulse = make_inputs(SHAPES[3], dtype=torch.float64)
    for kind, args in (("dense", (response, impulse)), ("mix", (response, impulse, _weight(SHAPES[3], torch.float64)))):
        op = ops.dense_conv2d_fft_keep_spectra if kind == "dense" else ops.dense_mix_conv2d_fft_keep_spectra
        for cpu, cuda in zip(op(*args), op(*(t.detach().cuda() for t in args))):
            torch.testing.assert_close(cuda.cpu(), cpu, rtol=0, atol=1e-10)
