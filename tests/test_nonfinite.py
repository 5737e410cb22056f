"""NaN and infinity in the inputs give the definition's result on every algorithm.

The definition only lets impulse[y-p, x-q] * response[p, q] reach out[y, x] for p <= y, q <= x: a
non-finite tap must not reach outputs left of or above it, and one NaN must not spread over a plane.
The float64 shift-add reference follows the definition exactly, NaN/inf positions included. The tests run on
every device (on CUDA the check and the recomputation stay on the device: the no-sync tests at the end).
"""
import pytest
import torch

import dense_conv
from dense_conv import reference as ref
from testing import CUDA_DTYPES, DEVICES, TOLERANCE, needs_cuda_kernels

ALGORITHMS = ["direct", "fft"]
OPS = {"dense": (dense_conv.dense_conv2d, ref.dense_shift_add), "sparse": (dense_conv.sparse_conv2d, ref.sparse_shift_add)}


def _inputs(kind, B=3, C=2, Cr=3, Hi=9, Wi=13, Hr=4, Wr=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    response = torch.randn(B, C if kind == "sparse" else Cr, Hr, Wr, generator=g, dtype=torch.float64)
    impulse = torch.randn(B, C, Hi, Wi, generator=g, dtype=torch.float64)
    return response, impulse


def _poison(response, impulse, where):
    response, impulse = response.clone(), impulse.clone()
    if where == "nan_tap":
        response[1, 0, 2, 3] = float("nan")
    elif where == "inf_tap":
        response[2, -1, 1, 4] = float("inf")
    elif where == "inf_pixel":
        impulse[0, 1, 4, 6] = float("-inf")
    elif where == "nan_pixel":
        impulse[1, 0, 8, 12] = float("nan")
    return response, impulse


def _assert_same(actual, expected):
    actual = actual.detach().double().cpu()
    assert torch.equal(torch.isnan(actual), torch.isnan(expected)), "NaN positions differ from the definition"
    assert torch.equal(torch.isinf(actual), torch.isinf(expected)), "infinite positions differ from the definition"
    finite = torch.isfinite(expected)
    torch.testing.assert_close(actual[finite], expected[finite], rtol=1e-10, atol=1e-10)
    infinite = torch.isinf(expected)
    assert torch.equal(actual[infinite], expected[infinite])  # same signs of infinity


@pytest.mark.parametrize("where", ["nan_tap", "inf_tap", "inf_pixel", "nan_pixel"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("device", DEVICES)
def test_forward_nonfinite_inputs(device, kind, algorithm, where):
    op, reference = OPS[kind]
    response, impulse = _poison(*_inputs(kind), where)
    expected = reference(response, impulse)
    assert torch.isnan(expected).any() or torch.isinf(expected).any()
    assert torch.isfinite(expected).any(), "the definition keeps finite outputs: the test must see them"
    _assert_same(op(response.to(device), impulse.to(device), algorithm=algorithm), expected)


@pytest.mark.parametrize("where", ["nan_tap", "inf_pixel", "nan_grad"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("device", DEVICES)
def test_gradients_nonfinite_inputs(device, kind, algorithm, where):
    op, reference = OPS[kind]
    response, impulse = _poison(*_inputs(kind, seed=1), where)
    grad_out = torch.randn_like(reference(response, impulse))
    if where == "nan_grad":
        grad_out[1, 0, 3, 7] = float("nan")
    r64, i64 = response.clone().requires_grad_(), impulse.clone().requires_grad_()
    reference(r64, i64).backward(grad_out)
    r, i = response.to(device).requires_grad_(), impulse.to(device).requires_grad_()
    op(r, i, algorithm=algorithm).backward(grad_out.to(device))
    _assert_same(r.grad, r64.grad)
    _assert_same(i.grad, i64.grad)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("device", DEVICES)
def test_finite_samples_keep_the_fast_result(device, algorithm):
    """Only the samples holding a non-finite value are recomputed: the others are bit-identical."""
    response, impulse = (t.to(device) for t in _inputs("dense"))
    clean = dense_conv.dense_conv2d(response, impulse, algorithm=algorithm)
    response[1, 0, 2, 3] = float("nan")
    poisoned = dense_conv.dense_conv2d(response, impulse, algorithm=algorithm)
    assert torch.equal(poisoned[0], clean[0]) and torch.equal(poisoned[2], clean[2])


def test_float32_nonfinite_matches_definition():
    response, impulse = _poison(*_inputs("dense"), "nan_tap")
    expected = ref.dense_shift_add(response, impulse)
    out = dense_conv.dense_conv2d(response.float(), impulse.float(), algorithm="direct").double()
    assert torch.equal(torch.isnan(out), torch.isnan(expected))
    finite = torch.isfinite(expected)
    assert (out[finite] - expected[finite]).abs().max() <= 2e-5 * expected[finite].abs().max()


# ---- CUDA: the check and the recomputation stay on the device ----

@needs_cuda_kernels
@pytest.mark.parametrize("dtype", CUDA_DTYPES, ids=str)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_cuda_nonfinite_sample_gets_the_definition(kind, algorithm, dtype):
    """A NaN tap in sample 1: its forward and grad_impulse are the definition's (NaN where it reaches, close to the
    float64 reference elsewhere, in every dtype), and so is its grad_response; samples 0 and 2 are bit for bit
    those of a clean run."""
    op, reference = OPS[kind]
    response, impulse = _inputs(kind, seed=2)
    response, impulse = response.to(dtype).double(), impulse.to(dtype).double()  # the dtype's values
    grad_out = torch.randn_like(reference(response, impulse)).to(dtype).double()
    runs = {}
    for name, resp in (("clean", response), ("nan", _poison(response, impulse, "nan_tap")[0])):
        r = resp.to("cuda", dtype).requires_grad_()
        i = impulse.to("cuda", dtype).requires_grad_()
        out = op(r, i, algorithm=algorithm)
        out.backward(grad_out.to("cuda", dtype))
        runs[name] = [t.detach().cpu() for t in (out, r.grad, i.grad)]
    r64, i64 = _poison(response, impulse, "nan_tap")[0].requires_grad_(), impulse.clone().requires_grad_()
    out64 = reference(r64, i64)
    out64.backward(grad_out)
    for actual, clean, expected in zip(runs["nan"], runs["clean"], (out64.detach(), r64.grad, i64.grad)):
        keep = [0, 2]
        assert torch.equal(actual[keep], clean[keep]), "a finite sample was recomputed"
        actual, expected = actual[1].double(), expected[1]
        assert torch.equal(torch.isnan(actual), torch.isnan(expected)), "NaN positions differ from the definition"
        finite = torch.isfinite(expected)  # grad_response: all finite (a NaN tap does not reach it)
        assert finite.any()
        err = (actual[finite] - expected[finite]).abs().max() / expected[finite].abs().max()
        assert err <= TOLERANCE[dtype], f"relative error {err:.2e} ({dtype})"


@needs_cuda_kernels
@pytest.mark.parametrize("dtype", CUDA_DTYPES, ids=str)
@pytest.mark.parametrize("where", ["nan_tap", "inf_pixel", "inf_weight"])
def test_cuda_mix_nonfinite_samples_get_the_definition(where, dtype):
    """dense_mix_conv2d's FFT algorithm on CUDA with a non-finite tap / pixel (one sample) or weight (every sample):
    its output and three gradients are the CPU op's float64 ones (its exact path: the einsum definition) in NaN and
    infinity positions and close elsewhere; the samples without one are bit for bit those of a clean run. (The direct
    algorithm pre-mixes the responses and follows per_sample_conv2d's definition on them: where an infinity meets
    weights of both signs its sums can give +-inf where the mix definition's give NaN, on every device.)"""
    algorithm = "fft"
    response, impulse = _inputs("dense", seed=4)
    weight = torch.randn(4, impulse.shape[1], response.shape[1], generator=torch.Generator().manual_seed(5),
                         dtype=torch.float64)
    response, impulse, weight = (t.to(dtype).double() for t in (response, impulse, weight))  # the dtype's values
    grad_out = torch.randn(3, 4, *impulse.shape[2:], dtype=torch.float64).to(dtype).double()
    poisoned = _poison(response, impulse, where)
    poisoned_weight = weight.clone()
    if where == "inf_weight":
        poisoned_weight[2, 1, 0] = float("inf")
    runs = {}
    for name, inputs in (("clean", (response, impulse, weight)), ("bad", (*poisoned, poisoned_weight))):
        r, i, w = (t.to("cuda", dtype, copy=True).requires_grad_() for t in inputs)
        out = dense_conv.dense_mix_conv2d(r, i, w, algorithm=algorithm)
        out.backward(grad_out.to("cuda", dtype))
        runs[name] = [t.detach().cpu() for t in (out, r.grad, i.grad, w.grad)]
    r64, i64, w64 = (t.detach().clone().requires_grad_() for t in (*poisoned, poisoned_weight))
    out64 = dense_conv.dense_mix_conv2d(r64, i64, w64, algorithm="fft")
    out64.backward(grad_out)
    bad = list(range(3)) if where == "inf_weight" else [1 if where == "nan_tap" else 0]
    keep = [b for b in range(3) if b not in bad]
    for n, (actual, clean, expected) in enumerate(zip(runs["bad"], runs["clean"], (out64, r64.grad, i64.grad))):
        assert torch.equal(actual[keep], clean[keep]), "a finite sample was recomputed"
        _assert_close_nonfinite(actual[bad].double(), expected.detach()[bad], dtype)
    # the weight's gradient sums every sample's
    _assert_close_nonfinite(runs["bad"][3].double(), w64.grad, dtype)


def _assert_close_nonfinite(actual, expected, dtype):
    assert torch.equal(torch.isnan(actual), torch.isnan(expected)), "NaN positions differ from the definition"
    assert torch.equal(torch.isinf(actual), torch.isinf(expected)), "infinite positions differ from the definition"
    infinite = torch.isinf(expected)
    assert torch.equal(actual[infinite], expected[infinite])  # same signs of infinity
    finite = torch.isfinite(expected)
    if finite.any():
        err = (actual[finite] - expected[finite]).abs().max() / expected[finite].abs().max().clamp_min(1e-30)
        assert err <= TOLERANCE[dtype], f"relative error {err:.2e} ({dtype})"


@needs_cuda_kernels
@pytest.mark.parametrize("poison", [None, "nan_tap", "inf_pixel", "inf_weight"])
@pytest.mark.parametrize("kind", ["dense", "sparse", "per_sample", "dense_mix"])
def test_cuda_ops_do_not_synchronise(kind, poison):
    """Forward and backward of every algorithm, finite or with NaN / inf, run without a host synchronisation
    (torch.cuda.set_sync_debug_mode("error") raises on one): the non-finite check stays on the device."""
    weight = None
    if poison == "inf_weight" and kind != "dense_mix":
        pytest.skip("only dense_mix_conv2d has a shared weight")
    if kind == "per_sample":
        g = torch.Generator().manual_seed(3)
        response = torch.randn(3, 4, 2, 4, 5, generator=g, dtype=torch.float64)  # weight [B, L, Ci, Hr, Wr]
        impulse = torch.randn(3, 2, 9, 13, generator=g, dtype=torch.float64)
        if poison == "nan_tap":
            response[1, 2, 1, 2, 3] = float("nan")
        elif poison == "inf_pixel":
            impulse[0, 1, 4, 6] = float("-inf")
        calls = [lambda r, i: dense_conv.per_sample_conv2d(r, i)]
    elif kind == "dense_mix":
        response, impulse = _inputs("dense")
        weight = torch.randn(4, impulse.shape[1], response.shape[1], generator=torch.Generator().manual_seed(3),
                             dtype=torch.float64)
        if poison == "inf_weight":
            weight[1, 0, 2] = float("inf")
        elif poison is not None:
            response, impulse = _poison(response, impulse, poison)
        calls = [lambda r, i, w, a=a: dense_conv.dense_mix_conv2d(r, i, w, algorithm=a) for a in ALGORITHMS]
    else:
        response, impulse = _inputs(kind)
        if poison is not None:
            response, impulse = _poison(response, impulse, poison)
        calls = [lambda r, i, a=a: OPS[kind][0](r, i, algorithm=a) for a in ALGORITHMS]
    for dtype in (torch.float32, torch.float16):
        r = response.to("cuda", dtype).requires_grad_()
        i = impulse.to("cuda", dtype).requires_grad_()
        inputs = (r, i) if weight is None else (r, i, weight.to("cuda", dtype).requires_grad_())
        for call in calls:
            def run():
                out = call(*inputs)
                return torch.autograd.grad(out, inputs, torch.ones_like(out))
            run()  # once outside the check: first-call set-up (cuFFT plans, the allocator) is not the point
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
            try:
                run()
            finally:
                torch.cuda.set_sync_debug_mode("default")
