"""The CUDA ops' exact path for samples holding NaN or infinity (csrc/cuda/nonfinite_kernels.cuh) on the CPU emulator
(tests/emu/harness.py) under three schedules, in float32 / float64 and (on a subset of the shapes) float16 / bfloat16.

Each case plants NaN / inf in some samples' inputs and stands in for the fast kernels' result with the float64
definition rounded to the dtype, NaN over every sample whose inputs are non-finite (the FFT spreads one NaN over the
whole plane); one more sample gets a NaN in that result only. The checksums come from the shared rule
(harness.nonfinite_checksums mirrors csrc/nonfinite.cpp: the result or the inputs, whichever are smaller). Then:
the flagged samples equal the float64 definition (autograd of dense_conv.reference's shift-add on the inputs rounded
to the dtype: NaN and infinity positions exactly), and the others are bit-for-bit the result passed in.
dense_mix_conv2d's kernels (run_mix) the same way, with its checksum (inputs, results and the weight's sum: a
non-finite weight flags every sample) and its definition (mix_definition, checked against the CPU op's exact path).
"""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from emu import harness  # noqa: E402

from dense_conv import reference  # noqa: E402  (pure PyTorch: importable without the extension)

# dense (B, Ci, Cr, Hi, Wi, Hr, Wr)
DENSE_SHAPES = {
    "B1_kernel_1x1": (1, 2, 3, 5, 7, 1, 1),
    "odd": (3, 2, 3, 7, 9, 3, 4),
    "kernel_larger_than_image": (3, 1, 2, 4, 6, 7, 9),
    "Ci1_Cr1": (2, 1, 1, 9, 13, 4, 5),
    "Cr1_wide": (4, 3, 1, 5, 37, 2, 6),
    "many_outputs_per_sample": (2, 3, 4, 17, 40, 5, 6),  # 8160 outputs: every block loops over several
}
DENSE_HALF = ["odd", "kernel_larger_than_image", "many_outputs_per_sample"]
# per_sample (B, L, Ci, Hi, Wi, Hr, Wr)
PER_SAMPLE_SHAPES = {
    "B1_L1_Ci1": (1, 1, 1, 5, 7, 3, 3),
    "odd": (3, 3, 2, 7, 9, 3, 4),
    "kernel_1x1": (2, 2, 3, 6, 5, 1, 1),
    "kernel_larger_than_image": (3, 2, 1, 4, 6, 7, 9),
    "L1_Ci5": (2, 1, 5, 9, 11, 2, 3),
}
PER_SAMPLE_HALF = ["odd", "kernel_larger_than_image"]

NONFINITE = (float("nan"), float("inf"), float("-inf"))


def plant(t, b, k):
    """Writes NONFINITE[k % 3] at a position of sample b of `t` (in place) that depends on k."""
    flat = t[b].view(-1)
    flat[(7919 * (k + 1)) % flat.numel()] = NONFINITE[k % 3]


def dense_definition(response, impulse, grad_out):
    """float64 forward, grad_impulse, grad_response: autograd through the shift-add reference."""
    r = response.to(torch.float64, copy=True).requires_grad_()
    i = impulse.to(torch.float64, copy=True).requires_grad_()
    out = reference.dense_shift_add(r, i)
    out.backward(grad_out.double())
    return out.detach(), i.grad, r.grad


def per_sample_definition(weight, impulse, grad_out):
    w = weight.to(torch.float64, copy=True).requires_grad_()
    i = impulse.to(torch.float64, copy=True).requires_grad_()
    out = reference.per_sample_shift_add(w, i)
    out.backward(grad_out.double())
    return out.detach(), i.grad, w.grad


def bits(t):
    return t.contiguous().view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def check_exact(launch, first, second, definition, dtype, nonfinite_inputs, stale_sample):
    """`launch` (a harness.exact_* function) on a stand-in for the fast kernels' result; `definition` float64."""
    fast = definition.to(dtype, copy=True)
    for b in nonfinite_inputs:
        fast[b] = float("nan")
    if stale_sample is not None:
        plant(fast, stale_sample, 0)
    checksum = harness.nonfinite_checksums(fast, [first, second])
    flagged = ~torch.isfinite(checksum)
    # the rule flags exactly the samples whose checked tensors hold a non-finite value
    checked = [fast] if fast.numel() <= first.numel() + second.numel() else [first, second]
    assert flagged.tolist() == [any(not torch.isfinite(t[b]).all() for t in checked) for b in range(fast.shape[0])]
    assert flagged.any(), "the case must exercise the exact path"
    result = launch(first, second, fast, checksum)
    check_flagged([result], [fast], [definition], flagged, dtype)
    return result


def dense_case(shape, dtype):
    """Inputs rounded to dtype with NaN / inf planted; the samples holding them; a clean sample for a stale result."""
    B, Ci, Cr, Hi, Wi, Hr, Wr = shape
    g = torch.Generator().manual_seed(sum(shape))
    response = torch.randn(B, Cr, Hr, Wr, generator=g, dtype=torch.float64).to(dtype)
    impulse = torch.randn(B, Ci, Hi, Wi, generator=g, dtype=torch.float64).to(dtype)
    grad_out = torch.randn(B, Ci * Cr, Hi, Wi, generator=g, dtype=torch.float64).to(dtype)
    return response, impulse, grad_out


def run_exact(taps, impulse, grad_out, definition, forward, grad_impulse, grad_taps, dtype):
    """The three exact kernels of one op (dense: taps = the response; per_sample: the weight): sample 0 gets a
    non-finite input of each op, sample 2 a second one, the last other sample a NaN in the stale result only."""
    B = impulse.shape[0]
    stale = B - 1 if B > 1 and B - 1 != 2 else (1 if B > 1 else None)
    plant(taps, 0, 0)
    if B > 2:
        plant(impulse, 2, 1)
    out, gi, gt = definition(taps, impulse, grad_out)
    bad = [0] + ([2] if B > 2 else [])
    check_exact(forward, taps, impulse, out, dtype, bad, stale)
    # the gradients: a non-finite grad_out too (grad_impulse reads grad_out and the taps, the taps' gradient
    # grad_out and the impulse)
    plant(grad_out, 0, 2)
    out, gi, gt = definition(taps, impulse, grad_out)
    check_exact(grad_impulse, grad_out, taps, gi, dtype, [0], stale)
    check_exact(grad_taps, grad_out, impulse, gt, dtype, bad, stale)


def run_dense(shape, dtype):
    run_exact(*dense_case(shape, dtype), dense_definition, harness.exact_dense_forward,
              harness.exact_dense_grad_impulse, harness.exact_dense_grad_response, dtype)


def per_sample_case(shape, dtype):
    B, L, Ci, Hi, Wi, Hr, Wr = shape
    g = torch.Generator().manual_seed(sum(shape))
    weight = torch.randn(B, L, Ci, Hr, Wr, generator=g, dtype=torch.float64).to(dtype)
    impulse = torch.randn(B, Ci, Hi, Wi, generator=g, dtype=torch.float64).to(dtype)
    grad_out = torch.randn(B, L, Hi, Wi, generator=g, dtype=torch.float64).to(dtype)
    return weight, impulse, grad_out


def run_per_sample(shape, dtype):
    run_exact(*per_sample_case(shape, dtype), per_sample_definition, harness.exact_per_sample_forward,
              harness.exact_per_sample_grad_impulse, harness.exact_per_sample_grad_weight, dtype)


@pytest.mark.parametrize("shape,dtype", harness.shape_dtype_cases(DENSE_SHAPES, DENSE_HALF))
def test_dense_exact(shape, dtype, schedule):
    run_dense(shape, dtype)


@pytest.mark.parametrize("shape,dtype", harness.shape_dtype_cases(PER_SAMPLE_SHAPES, PER_SAMPLE_HALF))
def test_per_sample_exact(shape, dtype, schedule):
    run_per_sample(shape, dtype)


# ---- dense_mix_conv2d (weight [L, Ci, Cr]): the checksum holds the inputs, the results and the weight's sum ----

# (B, L, Ci, Cr, Hi, Wi, Hr, Wr)
MIX_SHAPES = {
    "B1_kernel_1x1": (1, 2, 2, 3, 5, 7, 1, 1),
    "odd": (3, 3, 2, 3, 7, 9, 3, 4),
    "kernel_larger_than_image": (3, 2, 1, 2, 4, 6, 7, 9),
    "L1_Ci1_Cr1": (2, 1, 1, 1, 9, 13, 4, 5),
    # more pixels than a sample's 8 x 256 threads and taps than its 64 warps: the threads' and warps' walks step;
    # W > 32 (each lane one pixel a row)
    "many_pixels_and_taps": (2, 2, 1, 2, 41, 52, 9, 8),
    "many_channel_pairs": (1, 2, 9, 8, 6, 7, 2, 3),  # 72 (j, k) pairs > 64 warps: the weight gradient's walk steps
}
MIX_HALF = ["odd", "kernel_larger_than_image"]


def mix_case(shape, dtype):
    B, L, Ci, Cr, Hi, Wi, Hr, Wr = shape
    g = torch.Generator().manual_seed(sum(shape) + 1)
    response = torch.randn(B, Cr, Hr, Wr, generator=g, dtype=torch.float64).to(dtype)
    impulse = torch.randn(B, Ci, Hi, Wi, generator=g, dtype=torch.float64).to(dtype)
    weight = torch.randn(L, Ci, Cr, generator=g, dtype=torch.float64).to(dtype)
    grad_out = torch.randn(B, L, Hi, Wi, generator=g, dtype=torch.float64).to(dtype)
    return response, impulse, weight, grad_out


def mix_definition(response, impulse, weight, grad_out):
    """float64 (out, grad_response, grad_impulse, grad_weight_per_sample) of exact_nonfinite_mix_* (csrc/nonfinite.cpp):
    dense = the shift-add reference; out = sum_jk w * dense and gw = sum_yx g * dense, the dense sums whole; the
    input gradients through g_dense = sum_l g w (whole) and the reference's autograd. Broadcast products, not
    einsum, so that no BLAS shortcut skips a zero times a NaN."""
    B, Cr = response.shape[:2]
    L, Ci = weight.shape[:2]
    r = response.to(torch.float64, copy=True).requires_grad_()
    i = impulse.to(torch.float64, copy=True).requires_grad_()
    w, g = weight.double(), grad_out.double()
    dense = reference.dense_shift_add(r, i).view(B, Ci, Cr, *impulse.shape[2:])
    out = (w[None, :, :, :, None, None] * dense.detach()[:, None]).sum((2, 3))
    gw = (g[:, :, None, None] * dense.detach()[:, None]).sum((4, 5))
    dense.backward((g[:, :, None, None] * w[None, :, :, :, None, None]).sum(1))
    return out, r.grad, i.grad, gw


def check_flagged(results, fasts, definitions, flagged, dtype):
    """Flagged samples: the float64 definition (NaN / inf exactly); the others: bit for bit the fast result."""
    for result, fast, definition in zip(results, fasts, definitions):
        for b in range(fast.shape[0]):
            if flagged[b]:
                finite = definition[b][torch.isfinite(definition[b])]
                scale = finite.abs().max().item() if finite.numel() else 0.0
                torch.testing.assert_close(result[b].double(), definition[b], rtol=0,
                                           atol=harness.TOLERANCE[dtype] * max(scale, 1e-30), equal_nan=True,
                                           msg=lambda m: f"sample {b} (recomputed): {m}")
            else:
                assert torch.equal(bits(result[b]), bits(fast[b])), f"sample {b} is not flagged but was written"


def stand_in(definition, dtype, bad):
    """The fast kernels' result: the definition rounded to dtype, NaN over the samples with a non-finite input."""
    fast = definition.to(dtype, copy=True)
    for b in bad:
        fast[b] = float("nan")
    return fast


def run_mix(shape, dtype, where="inputs"):
    """where: 'inputs' (response of sample 0, impulse of sample 2, grad_out of sample 0; a NaN in one fast result of
    the last other sample, each result in turn) or 'weight' (a non-finite weight: every sample is flagged)."""
    response, impulse, weight, grad_out = mix_case(shape, dtype)
    B = shape[0]
    stale = B - 1 if B > 1 and B - 1 != 2 else (1 if B > 1 else None)
    if where == "weight":
        weight.view(-1)[(7919 * 2) % weight.numel()] = NONFINITE[1 if dtype == torch.float64 else 2]
        bad, stale = list(range(B)), None
    else:
        plant(response, 0, 0)
        if B > 2:
            plant(impulse, 2, 1)
        plant(grad_out, 0, 2)
        bad = [0] + ([2] if B > 2 else [])
    out, gr, gi, gw = mix_definition(response, impulse, weight, grad_out)
    # forward
    fast_out = stand_in(out, dtype, bad)
    if stale is not None:
        plant(fast_out, stale, 0)
    checksum = harness.nonfinite_mix_checksums([response, impulse, fast_out], weight)
    flagged = ~torch.isfinite(checksum)
    assert flagged.tolist() == [b in bad or b == stale for b in range(B)]
    result = harness.exact_mix_forward(response, impulse, weight, fast_out, checksum)
    check_flagged([result], [fast_out], [out], flagged, dtype)
    # backward: the stale NaN in grad_response, grad_impulse, then grad_weight_per_sample
    for target in range(3 if stale is not None else 1):
        fasts = [stand_in(gr, dtype, bad), stand_in(gi, dtype, bad), stand_in(gw, torch.float64, bad)]
        if stale is not None:
            plant(fasts[target], stale, target)
        checksum = harness.nonfinite_mix_checksums([grad_out, response, impulse, *fasts], weight)
        flagged = ~torch.isfinite(checksum)
        assert flagged.tolist() == [b in bad or b == stale for b in range(B)]
        results = harness.exact_mix_backward(grad_out, response, impulse, weight, *fasts, checksum)
        check_flagged(results, fasts, [gr, gi, gw], flagged, dtype)


@pytest.mark.parametrize("where", ["inputs", "weight"])
@pytest.mark.parametrize("shape,dtype", harness.shape_dtype_cases(MIX_SHAPES, MIX_HALF))
def test_mix_exact(shape, dtype, where, schedule):
    run_mix(shape, dtype, where)


def test_mix_definition_is_the_cpu_ops():
    """mix_definition is exact_nonfinite_mix_*'s (the CPU op's exact path, float64): the same NaN / inf positions
    and values, for non-finite inputs and weights."""
    try:
        from dense_conv import _extension
        ops = _extension.ops()
    except (ImportError, RuntimeError, OSError) as e:
        pytest.skip(f"the extension is not built: {e}")
    shape = MIX_SHAPES["odd"]
    for where in ("inputs", "weight"):
        response, impulse, weight, grad_out = mix_case(shape, torch.float64)
        if where == "weight":
            weight[1, 0, 2] = float("inf")
        else:
            plant(response, 0, 0)
            plant(impulse, 2, 1)
            plant(grad_out, 0, 2)
        out, gr, gi, gw = mix_definition(response, impulse, weight, grad_out)
        cpu_out = ops.dense_mix_conv2d_fft(response, impulse, weight)
        cpu_gr, cpu_gi, cpu_gw = ops.dense_mix_conv2d_fft_backward(grad_out, response, impulse, weight)
        for actual, expected in [(cpu_out, out), (cpu_gr, gr), (cpu_gi, gi), (cpu_gw, gw.sum(0))]:
            torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10, equal_nan=True)
        assert not torch.isfinite(out).all() and torch.isfinite(out).any()


def test_mix_finite_checksums_touch_nothing():
    """Finite checksums (large, negative, zero): the mix's launches write nothing, not even over a NaN result."""
    response, impulse, weight, grad_out = mix_case(MIX_SHAPES["odd"], torch.float32)
    checksum = torch.tensor([3e38, -1.0, 0.0])
    results = [torch.full_like(t, float("nan")) for t in (grad_out, response, impulse)]
    results.append(torch.full((3, *weight.shape), float("nan"), dtype=torch.float64))
    results[0][1] = 7
    out = harness.exact_mix_forward(response, impulse, weight, results[0], checksum)
    assert torch.equal(bits(out), bits(results[0]))
    for new, old in zip(harness.exact_mix_backward(grad_out, response, impulse, weight, *results[1:], checksum),
                        results[1:]):
        assert torch.equal(bits(new), bits(old))


def test_mix_results_are_bitwise_the_same_in_every_schedule():
    shape = MIX_SHAPES["many_pixels_and_taps"]
    response, impulse, weight, grad_out = mix_case(shape, torch.float32)
    plant(impulse, 1, 0)
    B, L, Ci, Cr = shape[:4]
    checksum = torch.full((B,), float("nan"))
    results = harness.under_each_schedule(lambda: (
        harness.exact_mix_forward(response, impulse, weight, torch.zeros_like(grad_out), checksum),
        *harness.exact_mix_backward(grad_out, response, impulse, weight, torch.zeros_like(response),
                                    torch.zeros_like(impulse), torch.zeros(B, L, Ci, Cr, dtype=torch.float64),
                                    checksum)))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(bits(a), bits(b))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_finite_checksums_touch_nothing(dtype):
    """All checksums finite (large, negative, zero): the launch writes nothing, not even a NaN result."""
    response, impulse, grad_out = dense_case(DENSE_SHAPES["odd"], dtype)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    checksum = torch.tensor([3e38, -1.0, 0.0], dtype=acc)
    stale = torch.full_like(grad_out, float("nan"))
    stale[1] = 7
    for launch, first, second, result in [
            (harness.exact_dense_forward, response, impulse, stale),
            (harness.exact_dense_grad_impulse, grad_out, response, stale[:, :impulse.shape[1]].contiguous()),
            (harness.exact_dense_grad_response, grad_out, impulse, stale[:, :3, :3, :4].contiguous())]:
        assert torch.equal(bits(launch(first, second, result, checksum)), bits(result))


def test_only_the_checksum_decides():
    """A NaN checksum recomputes a sample whose inputs and result are finite (the definition), and a finite checksum
    leaves a sample alone whatever it holds: the kernels read the flags, nothing else."""
    shape = DENSE_SHAPES["odd"]
    response, impulse, grad_out = dense_case(shape, torch.float64)
    out, gi, gr = dense_definition(response, impulse, grad_out)
    checksum = torch.tensor([0.0, float("nan"), float("-inf")], dtype=torch.float64)
    stale = torch.randn_like(out)
    stale[0, 0, 0, 0] = float("nan")
    result = harness.exact_dense_forward(response, impulse, stale, checksum)
    assert torch.equal(bits(result[0]), bits(stale[0]))
    torch.testing.assert_close(result[1:], out[1:], rtol=0, atol=1e-13 * out.abs().max().item())


def test_results_are_bitwise_the_same_in_every_schedule():
    shape = DENSE_SHAPES["many_outputs_per_sample"]
    response, impulse, grad_out = dense_case(shape, torch.float32)
    plant(impulse, 1, 0)
    checksum = torch.full((shape[0],), float("nan"))
    stale_out = torch.zeros(shape[0], shape[1] * shape[2], *shape[3:5])
    stale_gr = torch.zeros(shape[0], shape[2], *shape[5:7])
    results = harness.under_each_schedule(lambda: (
        harness.exact_dense_forward(response, impulse, stale_out, checksum),
        harness.exact_dense_grad_response(grad_out, impulse, stale_gr, checksum)))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(bits(a), bits(b))


def test_launch_shape_is_a_few_blocks_per_sample():
    """B x k blocks (k <= 8, fewer for small samples): a batch without NaN/inf costs one small launch, whatever the
    image size; the counting build reports the grid."""
    shape = (5, 3, 4, 17, 40, 5, 6)  # 8160 outputs per sample
    response, impulse, grad_out = dense_case(shape, torch.float32)
    checksum = torch.zeros(shape[0])
    with harness.counting() as c:
        harness.exact_dense_forward(response, impulse, torch.zeros_like(grad_out), checksum)
        harness.exact_dense_grad_impulse(grad_out, response, torch.zeros_like(impulse), checksum)
        harness.exact_dense_grad_response(grad_out, impulse, torch.zeros_like(response), checksum)
        small = dense_case((2, 1, 1, 3, 5, 2, 2), torch.float32)
        harness.exact_dense_forward(small[0], small[1], torch.zeros_like(small[2]), torch.zeros(2))
    grids = [launch["grid"] for launch in c.launches]
    # forward 8160 outputs, grad_impulse 3 * 17 * 40 = 2040 (8 blocks), grad_response 4 * 30 taps x 32 lanes (8);
    # the small forward: 15 outputs, one block
    assert grids == [[5, 8, 1], [5, 8, 1], [5, 8, 1], [2, 1, 1]]
