"""The CUDA kernels of dense_mix_conv2d's FFT algorithm (csrc/cuda/fft_mix_kernels.cuh), run on the CPU by the
emulator (tests/emu/harness.py) under several schedules: the per-bin mix and its three gradients against
complex128 einsums, and the whole pipeline of csrc/cuda/fft_mix_cuda.cu (tests/emu/fft_host.py's torch.fft on the
CPU around the emulated kernels, spectra recomputed or kept for the backward) against the float64 definition.

Sizes cover one bin, W odd (no Nyquist column) and even, partial bin blocks (256 bins) and weight-gradient
chunks (1024 bins), L / Ci / Cr = 1, L and Cr above one thread's outputs and one block's responses (8 float,
4 double), B = 1. Outputs are NaN-poisoned before each launch.
"""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from emu import fft_host, harness  # noqa: E402

from dense_conv._shapes import fft_size  # noqa: E402
from dense_conv.reference.conv import dense_shift_add  # noqa: E402

COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}

# (nb, L, Ci, Cr, H, W)
SPECTRA = {
    "one_bin": (1, 1, 1, 1, 1, 1),
    "users_channels": (2, 8, 4, 5, 6, 10),
    "W_odd_two_gw_chunks": (1, 3, 2, 3, 40, 51),
    "L1_Cr1": (2, 1, 3, 1, 5, 8),
    "L9_Cr9_partial_blocks": (1, 9, 2, 9, 3, 4),
    "B1_Ci1_two_bin_blocks": (1, 2, 1, 2, 33, 16),
}


def half_spectrum_weights(H, W):
    """w per bin of an [H, W // 2 + 1] half spectrum: 1 on column 0 and the Nyquist column, else 2."""
    half_width = W // 2 + 1
    col = torch.arange(H * half_width) % half_width
    edge = (col == 0) | ((W % 2 == 0) & (col == half_width - 1))
    return torch.where(edge, 1.0, 2.0).double()


def mix_references(X, Hs, G, a, H, W, scale):
    """complex128 / float64: Y, GX, GH, gw of csrc/cuda/fft_mix_kernels.cuh's header."""
    a = a.to(torch.complex128)
    Y = torch.einsum("ljk,bjn,bkn->bln", a, X, Hs)
    GX = torch.einsum("bln,ljk,bkn->bjn", G, a, Hs.conj())
    GH = torch.einsum("ljk,bjn,bln->bkn", a, X.conj(), G)
    w = half_spectrum_weights(H, W).to(torch.complex128)
    gw = scale * torch.einsum("n,bjn,bln,bkn->bljk", w, X, G.conj(), Hs).real
    return Y, GX, GH, gw


def check(actual, expected, dtype, tol=None):
    if actual.is_complex():
        actual, expected = torch.view_as_real(actual), torch.view_as_real(expected)
    scale = max(1.0, expected.abs().max().item())
    atol = (tol or harness.TOLERANCE[dtype]) * scale
    torch.testing.assert_close(actual.double(), expected.double(), rtol=0, atol=atol)


def make_spectra(shape, dtype, seed=0):
    nb, L, Ci, Cr, H, W = shape
    K = H * (W // 2 + 1)
    g = torch.Generator().manual_seed(seed)

    def spectrum(*size):
        return torch.randn(*size, generator=g, dtype=torch.complex128).to(COMPLEX[dtype])

    a = torch.randn(L, Ci, Cr, generator=g, dtype=torch.float64).to(dtype)
    return spectrum(nb, Ci, K), spectrum(nb, Cr, K), spectrum(nb, L, K), a


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SPECTRA.values(), ids=SPECTRA.keys())
def test_fft_mix_kernels(shape, dtype, schedule):
    check_fft_mix_kernels(shape, dtype)


def check_fft_mix_kernels(shape, dtype):
    """The forward and backward spectrum kernels at `shape` (nb, L, Ci, Cr, H, W) against complex128 einsums."""
    H, W = shape[4:]
    X, Hs, G, a = make_spectra(shape, dtype)
    scale = 1.0 / (H * W)
    refs = mix_references(*(t.to(torch.complex128) for t in (X, Hs, G)), a.double(), H, W, scale)
    check(harness.fft_mix_forward(X, Hs, a, H, W), refs[0], dtype)
    GX, GH, gw = harness.fft_mix_backward(X, Hs, G, a, H, W, scale, gh_scale=0.25)
    check(GX, refs[1], dtype)
    check(GH, refs[2] * 0.25, dtype)
    # a sum over up to ~2000 bins of float products: a few more roundings than the per-bin sums
    check(gw, refs[3], dtype, tol=1e-5 if dtype == torch.float32 else None)


def test_fft_mix_kernels_are_deterministic_across_schedules():
    shape = (2, 3, 2, 9, 40, 51)
    X, Hs, G, a = make_spectra(shape, torch.float32, seed=3)
    results = harness.under_each_schedule(
        lambda: (harness.fft_mix_forward(X, Hs, a, 40, 51),) + harness.fft_mix_backward(X, Hs, G, a, 40, 51, 0.5))
    for other in results[1:]:
        for x, y in zip(results[0], other):
            assert torch.equal(torch.view_as_real(x) if x.is_complex() else x,
                               torch.view_as_real(y) if y.is_complex() else y)


def emulated_mix_fft(response, impulse, weight, grad_out, keep=False, nb_max=None):
    """The pipeline of csrc/cuda/fft_mix_cuda.cu, step by step (mix_fft_forward, then mix_fft_backward), with the
    host transforms of tests/emu/fft_host.py (torch.fft on the CPU) around the emulated kernels: output, the three
    gradients and the kept spectra (None unless `keep`: dense_mix_conv2d_fft_keep_spectra, then
    dense_mix_conv2d_fft_backward_spectra taking them). nb_max: samples per chunk (the whole batch by default)."""
    B, Ci, Hi, Wi = impulse.shape
    Cr, Hr, Wr = response.shape[1:]
    L = weight.shape[0]
    Hq, Wq = min(Hr, Hi), min(Wr, Wi)
    H, W = fft_size(Hi, Wi, Hr, Wr)
    Wf, K = W // 2 + 1, H * (W // 2 + 1)
    nb_max = nb_max or B
    resp = response[:, :, :Hq, :Wq]
    a = weight.to(fft_host.real_dtype(impulse.dtype))
    # mix_fft_forward
    out = torch.empty(B, L, Hi, Wi, dtype=impulse.dtype)
    kept = fft_host.empty_kept_spectra(B, Ci, Cr, H, W, impulse.dtype) if keep else None
    for b0 in range(0, B, nb_max):
        nb = min(nb_max, B - b0)
        X = fft_host.forward_spectra(impulse[b0:b0 + nb], H, W, scaled=False)
        Hs = fft_host.forward_spectra(resp[b0:b0 + nb], H, W, scaled=True)
        if keep:
            kept[0][b0:b0 + nb], kept[1][b0:b0 + nb] = X, Hs
        Y = harness.fft_mix_forward(X.reshape(nb, Ci, K), Hs.reshape(nb, Cr, K), a, H, W).view(nb, L, H, Wf)
        out[b0:b0 + nb] = fft_host.inverse_rows(Y, Hi, W)[..., :Wi]
    # mix_fft_backward
    grad_response = torch.zeros_like(response)
    grad_impulse = torch.empty_like(impulse)
    grad_weight_per_sample = torch.empty(B, L, Ci, Cr, dtype=torch.float64)
    for b0 in range(0, B, nb_max):
        nb = min(nb_max, B - b0)
        if keep:
            X, Hs = kept[0][b0:b0 + nb], kept[1][b0:b0 + nb]
        else:
            X = fft_host.forward_spectra(impulse[b0:b0 + nb], H, W, scaled=False)
            Hs = fft_host.forward_spectra(resp[b0:b0 + nb], H, W, scaled=True)
        G = fft_host.forward_spectra(grad_out[b0:b0 + nb], H, W, scaled=False)
        # Parseval's 1 / (H W) is in Hs (the weight gradients' scale is 1), and so is GX's; GH gets it in the kernel
        GX, GH, gw = harness.fft_mix_backward(X.reshape(nb, Ci, K), Hs.reshape(nb, Cr, K), G.reshape(nb, L, K), a,
                                              H, W, 1.0, gh_scale=1.0 / (H * W))
        grad_weight_per_sample[b0:b0 + nb] = gw
        grad_impulse[b0:b0 + nb] = fft_host.inverse_rows(GX.view(nb, Ci, H, Wf), Hi, W)[..., :Wi]
        grad_response[b0:b0 + nb, :, :Hq, :Wq] = fft_host.inverse_rows(GH.view(nb, Cr, H, Wf), Hq, W)[..., :Wq]
    grad_weight = grad_weight_per_sample.sum(0).to(impulse.dtype)
    return out, grad_response, grad_impulse, grad_weight, kept


def reference_mix(response, impulse, weight, grad_out):
    """float64: the definition (dense_shift_add, then the 1x1 mix) and its autograd gradients."""
    inputs = tuple(t.double().requires_grad_() for t in (response, impulse, weight))
    B, Ci, Hi, Wi = impulse.shape
    dense = dense_shift_add(inputs[0], inputs[1]).reshape(B, Ci, response.shape[1], Hi, Wi)
    out = torch.einsum("ljk,bjkyx->blyx", inputs[2], dense)
    return (out.detach(),) + torch.autograd.grad(out, inputs, grad_out.double())


# (B, Ci, Cr, L, Hi, Wi, Hr, Wr): odd sizes, 1x1 kernels, kernels larger than the image, B / L / Ci / Cr = 1,
# L and Cr above one thread's block, the user's 37x16 kernel on a small image (2070 bins: three gw chunks).
PIPELINE_SHAPES = [
    (2, 3, 4, 5, 7, 9, 3, 2),
    (1, 1, 1, 1, 1, 1, 1, 1),
    (1, 1, 1, 1, 5, 5, 1, 1),
    (1, 2, 3, 2, 4, 6, 9, 11),
    (2, 4, 1, 1, 13, 31, 5, 5),
    (1, 2, 9, 9, 6, 5, 2, 3),
    (2, 4, 5, 8, 21, 70, 37, 16),
]


@pytest.mark.parametrize("keep", [False, True], ids=["recomputed", "kept"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", PIPELINE_SHAPES, ids=lambda s: "B{}_Ci{}_Cr{}_L{}_{}x{}_k{}x{}".format(*s))
def test_fft_mix_pipeline(shape, dtype, keep):
    response, impulse, weight, grad_out = pipeline_inputs(shape, dtype)
    refs = reference_mix(response, impulse, weight, grad_out)
    actual = emulated_mix_fft(response, impulse, weight, grad_out, keep=keep, nb_max=1 if keep else None)
    for name, x, ref in zip(("out", "grad_response", "grad_impulse", "grad_weight"), actual, refs):
        assert x.shape == ref.shape, name
        # transforms of a few thousand points: a few float32 roundings more than the direct kernels
        check(x, ref, dtype, tol=2e-5 if dtype == torch.float32 else 1e-12)


def pipeline_inputs(shape, dtype):
    B, Ci, Cr, L, Hi, Wi, Hr, Wr = shape
    g = torch.Generator().manual_seed(sum(shape))
    return (torch.randn(*size, generator=g, dtype=torch.float64).to(dtype) for size in
            ((B, Cr, Hr, Wr), (B, Ci, Hi, Wi), (L, Ci, Cr), (B, L, Hi, Wi)))


def test_fft_mix_pipeline_prunes_some_inverses():
    """PIPELINE_SHAPES reach both branches of fft_host.inverse_rows for grad_response (2 Hq < H or not)."""
    pruned = set()
    for B, Ci, Cr, L, Hi, Wi, Hr, Wr in PIPELINE_SHAPES:
        pruned.add(2 * min(Hr, Hi) < fft_size(Hi, Wi, Hr, Wr)[0])
    assert pruned == {False, True}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_fft_mix_pipeline_kept_spectra_are_the_cpu_ops(dtype):
    """Kept spectra: the same results as recomputed ones, bitwise, and the CPU op's layout and scaling (so the
    fake kernels and the autograd glue serve both backends)."""
    response, impulse, weight, grad_out = pipeline_inputs(PIPELINE_SHAPES[-1], dtype)
    kept_run = emulated_mix_fft(response, impulse, weight, grad_out, keep=True, nb_max=1)
    recomputed_run = emulated_mix_fft(response, impulse, weight, grad_out)
    for kept, recomputed in zip(kept_run[:4], recomputed_run[:4]):
        assert torch.equal(kept, recomputed)
    try:
        from dense_conv import _extension
        ops = _extension.ops()
    except ImportError:
        pytest.skip("the CPU op needs the compiled extension")
    _, impulse_spectra, response_spectra = ops.dense_mix_conv2d_fft_keep_spectra(response, impulse, weight)
    for emulated, cpu in zip(kept_run[4], (impulse_spectra, response_spectra)):
        assert emulated.dtype == cpu.dtype and emulated.shape == cpu.shape
        torch.testing.assert_close(emulated, cpu, rtol=0, atol=1e-4 if dtype == torch.float32 else 1e-12)
