"""dense_mix_conv2d_fft (dense_conv2d then a 1x1 channel mix, in the frequency domain): values and gradients
against a float64 reference, gradcheck, opcheck, torch.compile, determinism, non-finite inputs, bad input; the
same on CUDA when a GPU is present (its kernels also run on the CPU emulator: test_cuda_emulated_mix_fft.py)."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from dense_conv import _mix_fft  # noqa: F401  (registers the fake kernels and autograd)
from dense_conv.reference.conv import dense_shift_add
import dense_conv
from testing import TOLERANCE, assert_close_scaled, needs_cuda_kernels

ops = torch.ops.dense_conv

# (B, Ci, Cr, L, Hi, Wi, Hr, Wr): odd sizes, 1x1 kernels, kernels larger than the image, L = 1, Ci = 1,
# Cr = 1, B = 1, more bins than one block and a partial last block, the user's kernel on a small image.
SHAPES = [
    (2, 3, 4, 5, 7, 9, 3, 2),
    (1, 1, 1, 1, 1, 1, 1, 1),
    (1, 1, 1, 1, 5, 5, 1, 1),
    (1, 2, 3, 2, 4, 6, 9, 11),
    (3, 1, 2, 3, 5, 17, 8, 20),
    (2, 4, 1, 1, 13, 31, 5, 5),
    (1, 1, 5, 3, 6, 5, 2, 3),
    (2, 4, 5, 8, 21, 70, 37, 16),
]


def _id(shape):
    return "B{}_Ci{}_Cr{}_L{}_{}x{}_k{}x{}".format(*shape)


def reference(response, impulse, weight):
    """The definition in float64: dense_shift_add, then the 1x1 mix as an einsum."""
    B, Ci, Hi, Wi = impulse.shape
    Cr = response.shape[1]
    dense = dense_shift_add(response.double(), impulse.double()).reshape(B, Ci, Cr, Hi, Wi)
    return torch.einsum("ljk,bjkyx->blyx", weight.double(), dense)


def make(shape, dtype=torch.float64, seed=0, requires_grad=False):
    B, Ci, Cr, L, Hi, Wi, Hr, Wr = shape
    gen = torch.Generator().manual_seed(seed)
    tensors = (torch.randn(B, Cr, Hr, Wr, generator=gen, dtype=torch.float64),
               torch.randn(B, Ci, Hi, Wi, generator=gen, dtype=torch.float64),
               torch.randn(L, Ci, Cr, generator=gen, dtype=torch.float64))
    return tuple(t.to(dtype).requires_grad_(requires_grad) for t in tensors)


def _grads(fn, inputs, grad_out):
    inputs = tuple(t.detach().requires_grad_(True) for t in inputs)
    out = fn(*inputs)
    return out, torch.autograd.grad(out, inputs, grad_out, allow_unused=True, materialize_grads=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=_id)
def test_values_and_gradients_match_reference(dtype, shape):
    inputs = make(shape, dtype)
    g = torch.randn(shape[0], shape[3], shape[4], shape[5], generator=torch.Generator().manual_seed(1),
                    dtype=torch.float64)
    out, grads = _grads(ops.dense_mix_conv2d_fft, inputs, g.to(dtype))
    ref_out, ref_grads = _grads(reference, tuple(t.double() for t in inputs), g)
    assert out.dtype == dtype and out.shape == (shape[0], shape[3], shape[4], shape[5])
    assert_close_scaled(out, ref_out, dtype)
    for name, actual, expected in zip(("response", "impulse", "weight"), grads, ref_grads):
        assert actual.dtype == dtype and actual.shape == expected.shape, name
        assert_close_scaled(actual, expected, dtype)


def test_backward_op_returns_all_three_gradients():
    shape = SHAPES[0]
    response, impulse, weight = make(shape)
    g = torch.randn(shape[0], shape[3], shape[4], shape[5], dtype=torch.float64)
    ref_grads = _grads(reference, (response, impulse, weight), g)[1]
    for actual, expected in zip(ops.dense_mix_conv2d_fft_backward(g, response, impulse, weight), ref_grads):
        assert_close_scaled(actual, expected, torch.float64)


@pytest.mark.parametrize("shape", [(2, 2, 3, 2, 5, 6, 3, 2), (1, 1, 2, 1, 3, 4, 5, 6)], ids=_id)
def test_gradcheck_float64(shape):
    assert torch.autograd.gradcheck(ops.dense_mix_conv2d_fft, make(shape, requires_grad=True))


def test_double_backward_composes_differentiably():
    assert torch.autograd.gradgradcheck(ops.dense_mix_conv2d_fft, make((2, 2, 3, 2, 4, 5, 3, 2), requires_grad=True))


def test_opcheck():
    shape = (2, 2, 3, 4, 5, 7, 3, 4)
    response, impulse, weight = make(shape, torch.float32, requires_grad=True)
    torch.library.opcheck(ops.dense_mix_conv2d_fft, (response, impulse, weight))
    g = torch.randn(2, 4, 5, 7)
    torch.library.opcheck(ops.dense_mix_conv2d_fft_backward, (g, response.detach(), impulse.detach(), weight.detach()))


def test_torch_compile_fullgraph_matches_eager():
    def model(response, impulse, weight):
        return torch.tanh(ops.dense_mix_conv2d_fft(response * 2, impulse, weight)).sum()

    inputs = make((2, 3, 2, 4, 9, 12, 4, 3), torch.float32, requires_grad=True)
    eager_loss = model(*inputs)
    eager_grads = torch.autograd.grad(eager_loss, inputs)
    compiled_loss = torch.compile(model, fullgraph=True, backend="aot_eager")(*inputs)
    compiled_grads = torch.autograd.grad(compiled_loss, inputs)
    torch.testing.assert_close(compiled_loss, eager_loss)
    for c, e in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(c, e)


def test_deterministic_across_thread_counts(tmp_path):
    # Bit-identical results at 1, 2 and 3 threads, in fresh processes (the thread count of a process is set once).
    script = textwrap.dedent("""
        import sys, torch
        torch.set_num_threads(int(sys.argv[1]))
        from dense_conv import _mix_fft
        gen = torch.Generator().manual_seed(0)
        h = torch.randn(7, 3, 6, 5, generator=gen, requires_grad=True)
        x = torch.randn(7, 2, 17, 30, generator=gen, requires_grad=True)
        a = torch.randn(4, 2, 3, generator=gen, requires_grad=True)
        y = torch.ops.dense_conv.dense_mix_conv2d_fft(h, x, a)
        grads = torch.autograd.grad(y, (h, x, a), torch.randn(y.shape, generator=gen))
        torch.save([y.detach()] + list(grads), sys.argv[2])
    """)
    results = []
    for threads in (1, 2, 3):
        path = str(tmp_path / f"mix_{threads}.pt")
        subprocess.run([sys.executable, "-c", script, str(threads), path], check=True, cwd=_repo_root())
        results.append(torch.load(path))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


def _repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_non_contiguous_inputs():
    shape = (2, 3, 2, 4, 7, 9, 3, 4)
    response, impulse, weight = make(shape)
    g = torch.randn(2, 4, 7, 9, dtype=torch.float64)
    # Transposed storage, strided slices, an expanded weight.
    response_nc = response.transpose(2, 3).contiguous().transpose(2, 3)
    impulse_nc = torch.cat([impulse, impulse], dim=3)[..., ::2]
    weight_nc = weight.transpose(0, 2).contiguous().transpose(0, 2)
    assert not response_nc.is_contiguous() and not weight_nc.is_contiguous() and not impulse_nc.is_contiguous()
    ref_out, ref_grads = _grads(reference, (response_nc, impulse_nc, weight_nc), g)
    out, grads = _grads(ops.dense_mix_conv2d_fft, (response_nc, impulse_nc, weight_nc), g.transpose(2, 3).contiguous()
                        .transpose(2, 3))
    assert_close_scaled(out, ref_out, torch.float64)
    for actual, expected in zip(grads, ref_grads):
        assert_close_scaled(actual, expected, torch.float64)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("where", ["impulse", "response", "grad_out", "weight"])
def test_nonfinite_values_give_the_definition(value, where):
    shape = (3, 2, 3, 2, 6, 7, 3, 2)
    response, impulse, weight = make(shape)
    g = torch.randn(3, 2, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    target = {"impulse": impulse, "response": response, "grad_out": g, "weight": weight}[where]
    target.view(-1)[4 if where != "weight" else 1] = value  # sample 0 (or one weight)
    ref_out, ref_grads = _grads(reference, (response, impulse, weight), g)
    out, grads = _grads(ops.dense_mix_conv2d_fft, (response, impulse, weight), g)
    for actual, expected in zip((out,) + grads, (ref_out,) + ref_grads):
        nonfinite = ~torch.isfinite(expected)
        # Same non-finite pattern (NaN where NaN, +-inf where +-inf), finite values close.
        assert torch.equal(torch.isnan(actual), torch.isnan(expected))
        assert torch.equal(actual[torch.isinf(expected)], expected[torch.isinf(expected)])
        assert torch.allclose(actual[~nonfinite], expected[~nonfinite], rtol=1e-9, atol=1e-9)
    if where == "impulse":
        # Only sample 0 is affected.
        assert torch.isfinite(out[1:]).all() and not torch.isfinite(out[0]).all()


@pytest.mark.parametrize("shape", [
    (0, 2, 3, 4, 5, 6, 2, 2), (2, 0, 3, 4, 5, 6, 2, 2), (2, 2, 0, 4, 5, 6, 2, 2), (2, 2, 3, 0, 5, 6, 2, 2),
    (2, 2, 3, 4, 0, 6, 2, 2), (2, 2, 3, 4, 5, 0, 2, 2), (2, 2, 3, 4, 5, 6, 0, 2), (2, 2, 3, 4, 5, 6, 2, 0),
], ids=_id)
def test_empty_sizes(shape):
    inputs = make(shape)
    g = torch.randn(shape[0], shape[3], shape[4], shape[5], dtype=torch.float64)
    ref_out, ref_grads = _grads(reference, inputs, g)
    out, grads = _grads(ops.dense_mix_conv2d_fft, inputs, g)
    assert out.shape == ref_out.shape and torch.equal(out, ref_out)
    for actual, expected in zip(grads, ref_grads):
        assert actual.shape == expected.shape and torch.equal(actual, expected)


def _bad_cases():
    h, x, a = torch.randn(2, 3, 4, 4), torch.randn(2, 2, 6, 6), torch.randn(5, 2, 3)
    return {
        "response rank": ((h[0], x, a), "response must be 4-D"),
        "impulse rank": ((h, x[0], a), "impulse must be 4-D"),
        "weight rank": ((h, x, a[0]), "weight must be 3-D"),
        "batch": ((h[:1], x, a), "batch mismatch"),
        "impulse channels": ((h, x, a[:, :1]), "weight has Ci=1"),
        "response channels": ((h, x, a[:, :, :2]), "weight has Cr=2"),
        "dtype": ((h, x, a.double()), "weight has dtype"),
        "integer": ((h, x, a.int()), "floating-point"),
        "half on cpu": ((h.half(), x.half(), a.half()), "float32 or float64"),
    }


@pytest.mark.parametrize("case", list(_bad_cases()))
def test_bad_input_raises_clear_error(case):
    args, message = _bad_cases()[case]
    with pytest.raises(RuntimeError, match="dense_mix_conv2d") as info:
        ops.dense_mix_conv2d_fft(*args)
    assert message in str(info.value)
    if case != "half on cpu":
        # The fake kernel (meta tensors) raises the same error.
        with pytest.raises(RuntimeError, match=message):
            ops.dense_mix_conv2d_fft(*(t.to("meta") for t in args))


def test_backward_bad_grad_out_shape():
    h, x, a = torch.randn(2, 3, 4, 4), torch.randn(2, 2, 6, 6), torch.randn(5, 2, 3)
    with pytest.raises(RuntimeError, match="dense_mix_conv2d: grad_out must have the output's shape"):
        ops.dense_mix_conv2d_fft_backward(torch.randn(2, 4, 6, 6), h, x, a)
    with pytest.raises(RuntimeError, match="dense_mix_conv2d: grad_out must have the output's shape"):
        ops.dense_mix_conv2d_fft_backward(torch.randn(2, 4, 6, 6, device="meta"), h.to("meta"), x.to("meta"),
                                          a.to("meta"))


def test_sizes_beyond_int64_raise():
    # Each input fits; the output [2, 2**31, 2**16, 2**16] does not (expanded views hold no memory).
    h = torch.empty(1, 1, 1, 1).expand(2, 3, 4, 4)
    x = torch.empty(1, 1, 1, 1).expand(2, 2, 2 ** 16, 2 ** 16)
    a = torch.empty(1, 1, 1).expand(2 ** 31, 2, 3)
    with pytest.raises(RuntimeError, match="dense_mix_conv2d: the output has more elements than a 64-bit index"):
        ops.dense_mix_conv2d_fft(h, x, a)


def test_meta_tensors_give_shapes():
    out = ops.dense_mix_conv2d_fft(torch.empty(3, 5, 37, 16, device="meta"), torch.empty(3, 4, 84, 600, device="meta"),
                                   torch.empty(8, 4, 5, device="meta"))
    assert out.shape == (3, 8, 84, 600) and out.device.type == "meta"


# ---- CUDA (csrc/cuda/fft_mix_cuda.cu): needs a GPU ----

def _cuda_case(shape, dtype, seed=0):
    """(inputs on CUDA in dtype, grad_out on CUDA, float64 reference output and gradients on the CPU)."""
    inputs = make(shape, torch.float64, seed)
    g = torch.randn(shape[0], shape[3], shape[4], shape[5], generator=torch.Generator().manual_seed(seed + 1),
                    dtype=torch.float64)
    # the reference from the inputs rounded to dtype: only the op's own error is measured
    rounded = tuple(t.to(dtype).double() for t in inputs)
    ref = _grads(reference, rounded, g.to(dtype).double())
    return tuple(t.to("cuda", dtype) for t in inputs), g.to("cuda", dtype), ref


@needs_cuda_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", SHAPES, ids=_id)
def test_cuda_values_and_gradients_match_reference_and_cpu(dtype, shape):
    inputs, g, (ref_out, ref_grads) = _cuda_case(shape, dtype)
    out, grads = _grads(ops.dense_mix_conv2d_fft, inputs, g)
    assert out.device.type == "cuda" and out.dtype == dtype
    assert_close_scaled(out.cpu().double(), ref_out, dtype)
    for actual, expected in zip(grads, ref_grads):
        assert actual.dtype == dtype
        assert_close_scaled(actual.cpu().double(), expected, dtype)
    if dtype in (torch.float32, torch.float64):
        cpu_out, cpu_grads = _grads(ops.dense_mix_conv2d_fft, tuple(t.cpu() for t in inputs), g.cpu())
        for actual, expected in zip((out,) + grads, (cpu_out,) + cpu_grads):
            assert_close_scaled(actual.cpu(), expected, dtype, tol=2 * TOLERANCE[dtype])


@needs_cuda_kernels
def test_cuda_many_weight_gradient_chunks_and_samples():
    # 120 x 321 bins: 38 weight-gradient chunks of 1024 bins; 9 samples
    shape = (9, 3, 2, 5, 84, 600, 37, 16)
    inputs, g, (ref_out, ref_grads) = _cuda_case(shape, torch.float64)
    out, grads = _grads(ops.dense_mix_conv2d_fft, inputs, g)
    for actual, expected in zip((out,) + grads, (ref_out,) + ref_grads):
        assert_close_scaled(actual.cpu(), expected, torch.float64)


@needs_cuda_kernels
def test_cuda_gradcheck_and_opcheck():
    args = tuple(t.cuda().requires_grad_() for t in make((2, 2, 3, 2, 5, 6, 3, 2)))
    assert torch.autograd.gradcheck(ops.dense_mix_conv2d_fft, args)
    assert torch.autograd.gradgradcheck(ops.dense_mix_conv2d_fft, args)
    response, impulse, weight = (t.cuda().requires_grad_() for t in make((2, 2, 3, 4, 5, 7, 3, 4), torch.float32))
    torch.library.opcheck(ops.dense_mix_conv2d_fft, (response, impulse, weight))
    torch.library.opcheck(ops.dense_mix_conv2d_fft_backward, (torch.randn(2, 4, 5, 7, device="cuda"), response.detach(),
                                                              impulse.detach(), weight.detach()))


@needs_cuda_kernels
def test_cuda_is_deterministic():
    inputs, g, _ = _cuda_case((5, 3, 9, 4, 40, 51, 7, 6), torch.float32, seed=4)
    first = _grads(ops.dense_mix_conv2d_fft, inputs, g)
    again = _grads(ops.dense_mix_conv2d_fft, inputs, g)
    for a, b in zip((first[0],) + first[1], (again[0],) + again[1]):
        assert torch.equal(a, b)


@needs_cuda_kernels
@pytest.mark.parametrize("where", ["impulse", "weight"])
def test_cuda_nonfinite_values_give_the_definition(where):
    shape = (3, 2, 3, 2, 6, 7, 3, 2)
    response, impulse, weight = make(shape)
    g = torch.randn(3, 2, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    {"impulse": impulse, "weight": weight}[where].view(-1)[1] = float("inf")
    ref_out, ref_grads = _grads(reference, (response, impulse, weight), g)
    out, grads = _grads(ops.dense_mix_conv2d_fft, tuple(t.cuda() for t in (response, impulse, weight)), g.cuda())
    for actual, expected in zip((out,) + grads, (ref_out,) + ref_grads):
        actual = actual.cpu()
        assert torch.equal(torch.isnan(actual), torch.isnan(expected))
        finite = torch.isfinite(expected)
        assert torch.equal(actual[~finite & ~torch.isnan(expected)], expected[~finite & ~torch.isnan(expected)])
        assert torch.allclose(actual[finite], expected[finite], rtol=1e-9, atol=1e-9)


@needs_cuda_kernels
def test_cuda_dense_mix_conv2d_fft_runs_the_fused_op():
    response, impulse, weight = (t.cuda() for t in make((2, 4, 5, 8, 21, 70, 37, 16), torch.float32))
    out = dense_conv.dense_mix_conv2d(response, impulse, weight, algorithm="fft")
    assert torch.equal(out, ops.dense_mix_conv2d_fft(response, impulse, weight))
    # 'auto' takes it for the user's 37x16 kernels
    assert torch.equal(dense_conv.dense_mix_conv2d(response, impulse, weight), out)
