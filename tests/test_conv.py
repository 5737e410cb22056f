"""dense_conv2d / sparse_conv2d: every algorithm against the float64 reference (values and gradients),
gradcheck, opcheck, torch.compile, determinism, the `auto` choice, bad input, CUDA against the reference."""
import functools
import os
import shutil

import pytest
import torch

import dense_conv
from dense_conv import _algorithm, reference
from testing import (ALGORITHMS, CUDA_DTYPES, DEVICES, DTYPES, KINDS, SHAPES, assert_close_scaled, make_inputs,
                     needs_cuda_kernels, needs_gpu, op, product, reference_op, rel_err, shape_id)

ops = torch.ops.dense_conv


def _id(value):
    if isinstance(value, tuple):
        return shape_id(value)
    return str(value).replace("torch.", "")


@functools.lru_cache(maxsize=None)
def _expected(kind, shape):
    """float64 inputs, a fixed grad_out, and the reference's output and gradients."""
    response, impulse = make_inputs(shape, sparse=kind == "sparse", seed=sum(shape))
    r, i = response.clone().requires_grad_(), impulse.clone().requires_grad_()
    out = reference_op(kind)(r, i)
    grad_out = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out.backward(grad_out)
    return response, impulse, grad_out, out.detach(), r.grad, i.grad


@pytest.mark.parametrize("device,dtype,algorithm,kind,shape", product(DEVICES, DTYPES, ALGORITHMS, KINDS, SHAPES),
                         ids=_id)
def test_matches_reference(device, dtype, algorithm, kind, shape):
    response, impulse, grad_out, expected, grad_response, grad_impulse = _expected(kind, shape)
    r = response.to(device, dtype, copy=True).requires_grad_()  # copies: the cached inputs stay leaves
    i = impulse.to(device, dtype, copy=True).requires_grad_()
    out = op(kind)(r, i, algorithm=algorithm)
    out.backward(grad_out.to(device, dtype))
    assert out.dtype == dtype and out.device.type == device
    assert_close_scaled(out, expected, dtype)
    assert_close_scaled(r.grad, grad_response, dtype)
    assert_close_scaled(i.grad, grad_impulse, dtype)


@pytest.mark.parametrize("device,algorithm,kind", product(DEVICES, ALGORITHMS, KINDS), ids=_id)
def test_non_contiguous_inputs(device, algorithm, kind):
    f = functools.partial(op(kind), algorithm=algorithm)
    response, impulse = make_inputs((2, 3, 3, 9, 12, 4, 3), sparse=kind == "sparse", device=device)
    # transposed H/W views, and a strided slice of the batch
    r_nc = response.transpose(2, 3).contiguous().transpose(2, 3)
    i_nc = torch.stack([impulse, impulse], dim=1)[:, 0]
    assert not r_nc.is_contiguous() and not i_nc.is_contiguous()
    torch.testing.assert_close(f(r_nc, i_nc), f(response, impulse), rtol=0, atol=0)
    assert_close_scaled(f(r_nc, i_nc), reference_op(kind)(response.cpu(), impulse.cpu()), torch.float64)
    r_nc.requires_grad_(), i_nc.requires_grad_()
    f(r_nc, i_nc).sum().backward()
    r, i = response.clone().requires_grad_(), impulse.clone().requires_grad_()
    f(r, i).sum().backward()
    torch.testing.assert_close(r_nc.grad, r.grad, rtol=0, atol=0)
    torch.testing.assert_close(i_nc.grad, i.grad, rtol=0, atol=0)


GRADCHECK_SHAPES = [(2, 2, 3, 5, 6, 2, 3), (1, 1, 2, 3, 4, 5, 6), (2, 2, 1, 4, 3, 1, 1)]


@pytest.mark.parametrize("device,algorithm,kind,shape", product(DEVICES, ["direct", "fft"], KINDS, GRADCHECK_SHAPES),
                         ids=_id)
def test_gradcheck_and_gradgradcheck_float64(device, algorithm, kind, shape):
    """create_graph=True through either algorithm gives the true second derivatives."""
    response, impulse = make_inputs(shape, sparse=kind == "sparse", device=device, requires_grad=True)
    f = functools.partial(op(kind), algorithm=algorithm)
    assert torch.autograd.gradcheck(f, (response, impulse))
    assert torch.autograd.gradgradcheck(f, (response, impulse))


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_one_input(kind):
    response, impulse = make_inputs((2, 2, 2, 5, 7, 3, 2), sparse=kind == "sparse")
    assert torch.autograd.gradcheck(lambda r: op(kind)(r, impulse), (response.requires_grad_(),))
    assert torch.autograd.gradcheck(lambda i: op(kind)(response.detach(), i), (impulse.requires_grad_(),))


@pytest.mark.parametrize("device,kind", product(DEVICES, KINDS), ids=_id)
def test_opcheck(device, kind):
    forward = getattr(ops, f"{kind}_conv2d")
    grad_impulse = getattr(ops, f"{kind}_conv2d_grad_impulse")
    grad_response = getattr(ops, f"{kind}_conv2d_grad_response")
    for shape, requires_grad in product([(2, 3, 2, 6, 7, 3, 2), (1, 1, 1, 4, 4, 6, 5)], [False, True]):
        response, impulse = make_inputs(shape, sparse=kind == "sparse", device=device, dtype=torch.float32,
                                        requires_grad=requires_grad)
        torch.library.opcheck(forward, (response, impulse))
        g = torch.randn_like(forward(response, impulse)).detach()
        torch.library.opcheck(grad_impulse, (g, response.detach(), list(impulse.shape)))
        torch.library.opcheck(grad_response, (g, impulse.detach(), list(response.shape)))
        if kind == "dense":
            torch.library.opcheck(ops.dense_conv2d_fft, (response, impulse))
            torch.library.opcheck(ops.dense_conv2d_fft_backward, (g, response.detach(), impulse.detach()))


@pytest.mark.parametrize("algorithm,kind", product(ALGORITHMS, KINDS), ids=_id)
def test_torch_compile_fullgraph_matches_eager(algorithm, kind):
    def model(response, impulse):
        return (op(kind)(response * 2.0, impulse, algorithm=algorithm).relu() ** 2).sum()

    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    response, impulse = make_inputs((2, 2, 3, 6, 8, 3, 2), sparse=kind == "sparse", requires_grad=True)
    loss = compiled(response, impulse)
    loss.backward()
    r2, i2 = response.detach().clone().requires_grad_(), impulse.detach().clone().requires_grad_()
    expected = model(r2, i2)
    expected.backward()
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(response.grad, r2.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(impulse.grad, i2.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device,algorithm,kind", product(DEVICES, ["direct", "fft"], KINDS), ids=_id)
def test_deterministic_across_thread_counts(device, algorithm, kind):
    response, impulse = make_inputs((3, 3, 3, 20, 33, 7, 6), sparse=kind == "sparse", dtype=torch.float32,
                                    device=device)
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, threads, 1):
            torch.set_num_threads(n)
            r, i = response.clone().requires_grad_(), impulse.clone().requires_grad_()
            out = op(kind)(r, i, algorithm=algorithm)
            out.backward(torch.ones_like(out))
            results.append((out, r.grad, i.grad))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


def test_fft_float32_error_user_like_shape():
    """float32 FFT within 1e-5 relative of the float64 reference at the user's kernel size."""
    r, i = make_inputs((2, 4, 5, 84, 120, 37, 16))
    out = dense_conv.dense_conv2d(r.float(), i.float(), algorithm="fft")
    assert rel_err(out, reference.dense_fft(r, i)) < 1e-5


# ---- the references ----

@pytest.mark.parametrize("kind,shape", product(KINDS, SHAPES[:10]), ids=_id)
def test_reference_variants_agree(kind, shape):
    response, impulse = make_inputs(shape, sparse=kind == "sparse", seed=3)
    expected = reference_op(kind)(response, impulse)
    variants = reference.SPARSE_VARIANTS if kind == "sparse" else reference.DENSE_VARIANTS
    for name, variant in variants.items():
        assert rel_err(variant(response, impulse), expected) <= 1e-12, name


def test_sparse_reference_handles_non_square_kernels():
    """sparse_grouped with Hr != Wr equals the per-channel dense definition."""
    response, impulse = make_inputs((2, 3, 3, 6, 9, 2, 5), sparse=True)
    expected = torch.stack([reference.dense_shift_add(response[:, c:c + 1], impulse[:, c:c + 1])[:, 0]
                            for c in range(3)], dim=1)
    assert_close_scaled(reference.sparse_grouped(response, impulse), expected, torch.float64)


def test_dense_channel_order_is_impulse_major():
    response, impulse = make_inputs((1, 2, 3, 4, 5, 2, 2))
    out = dense_conv.dense_conv2d(response, impulse)
    for i in range(2):
        for r in range(3):
            single = reference.dense_shift_add(response[:, r:r + 1], impulse[:, i:i + 1])
            torch.testing.assert_close(out[:, i * 3 + r], single[:, 0])


# ---- the `auto` choice ----

@pytest.mark.parametrize("shape,backward,expected", [
    ((64, 4, 5, 84, 600, 37, 16), True, "fft"),      # the user's layer: FFT ~4x faster forward+backward
    ((64, 4, 5, 84, 600, 37, 16), False, "fft"),     # ~2x forward
    ((64, 4, 5, 84, 600, 5, 5), True, "direct"),
    ((64, 4, 5, 84, 600, 5, 5), False, "direct"),
    ((64, 4, 5, 84, 600, 9, 9), True, "direct"),
    ((256, 1, 1, 84, 600, 64, 64), True, "fft"),     # sparse, 4096 taps
    ((128, 1, 1, 84, 600, 5, 5), True, "direct"),    # sparse, 25 taps
    ((1, 1, 1, 1, 1, 1, 1), False, "direct"),
    ((0, 1, 1, 4, 4, 2, 2), True, "direct"),
], ids=str)
def test_auto_cpu_choice(shape, backward, expected):
    assert _algorithm.choose(*shape, backward) == expected


def test_auto_cpu_choice_follows_the_constants(monkeypatch):
    # choose remembers its answers per constants table: a new table (a calibration, another
    # DENSE_CONV_CALIBRATION) must be priced afresh, and the old table's answers come back with it.
    shape = (64, 4, 5, 84, 600, 37, 16)
    builtin = _algorithm.BUILTIN_CONSTANTS
    assert _algorithm.choose(*shape, True) == "fft"
    fft_dear = {model: {term: (1.0 if ".fft." in model else 0.0) for term in terms}
                for model, terms in builtin.items()}
    monkeypatch.setattr(_algorithm, "constants", lambda: fft_dear)
    assert _algorithm.choose(*shape, True) == "direct"
    monkeypatch.setattr(_algorithm, "constants", lambda: builtin)
    assert _algorithm.choose(*shape, True) == "fft"


def test_auto_cuda_rule():
    # fitted on an H200: training FFT from ~186 taps at Ci=4, Cr=5 and 384 for sparse; a forward alone later
    # (~363 and 750 taps)
    for backward in (False, True):
        assert _algorithm.choose_cuda(64, 4, 5, 84, 600, 37, 16, backward) == "fft"
        assert _algorithm.choose_cuda(64, 4, 5, 84, 600, 9, 9, backward) == "direct"
        assert _algorithm.choose_cuda(0, 4, 5, 84, 600, 37, 16, backward) == "direct"
        # taps beyond the image do not count
        assert _algorithm.choose_cuda(1, 4, 5, 3, 3, 100, 100, backward) == "direct"
    assert _algorithm.choose_cuda(256, 1, 1, 84, 600, 19, 19, True) == "direct"
    assert _algorithm.choose_cuda(256, 1, 1, 84, 600, 20, 20, True) == "fft"
    # the measured forwards where the FFT lost: dense 15x15, sparse 37x16 (592 taps)
    assert _algorithm.choose_cuda(64, 4, 5, 84, 600, 15, 15, True) == "fft"
    assert _algorithm.choose_cuda(64, 4, 5, 84, 600, 15, 15, False) == "direct"
    assert _algorithm.choose_cuda(256, 1, 1, 84, 600, 37, 16, True) == "fft"
    assert _algorithm.choose_cuda(256, 1, 1, 84, 600, 37, 16, False) == "direct"


@pytest.mark.parametrize("kind,choice", product(KINDS, ["direct", "fft"]))
def test_auto_runs_the_chosen_algorithm(monkeypatch, kind, choice):
    """auto asks the model (with backward=True when a gradient is needed) and runs what it answers."""
    calls = []
    monkeypatch.setattr(_algorithm, "choose", lambda *args: calls.append(args) or choice)
    r, i = make_inputs((2, 3, 3, 6, 7, 5, 4), sparse=kind == "sparse", requires_grad=True)
    out = op(kind)(r, i, algorithm="auto")
    planes = (2 * 3, 1, 1) if kind == "sparse" else (2, 3, 3)
    assert calls == [(*planes, 6, 7, 5, 4, True)]
    assert torch.equal(out, op(kind)(r, i, algorithm=choice))
    other = "direct" if choice == "fft" else "fft"
    assert not torch.equal(out, op(kind)(r, i, algorithm=other))  # the two algorithms round differently


# ---- bad input ----

BAD_INPUTS = [
    ("dense", lambda: (torch.randn(2, 3, 3), torch.randn(2, 1, 4, 4)), "response must be 4-D"),
    ("dense", lambda: (torch.randn(2, 3, 3, 3), torch.randn(2, 4, 4)), "impulse must be 4-D"),
    ("dense", lambda: (torch.randn(2, 3, 3, 3), torch.randn(3, 1, 4, 4)), "batch mismatch"),
    ("sparse", lambda: (torch.randn(2, 3, 3, 3), torch.randn(2, 2, 4, 4)), "channel mismatch"),
    ("dense", lambda: (torch.randn(2, 3, 3, 3), torch.randn(2, 1, 4, 4, dtype=torch.float64)), "dtype"),
    ("dense", lambda: (torch.ones(2, 3, 3, 3, dtype=torch.int64), torch.ones(2, 1, 4, 4, dtype=torch.int64)),
     "floating-point"),
    ("sparse", lambda: (torch.ones(2, 1, 3, 3, dtype=torch.int32), torch.randn(2, 1, 4, 4)), "floating-point"),
    # a CPU tensor with a meta one: the dispatcher runs the fake kernel, which must refuse it
    ("dense", lambda: (torch.randn(2, 3, 3, 3), torch.empty(2, 1, 4, 4, device="meta")), "is on"),
    ("sparse", lambda: (torch.empty(2, 1, 3, 3, device="meta"), torch.randn(2, 1, 4, 4)), "is on"),
]


@pytest.mark.parametrize("algorithm,case", product(ALGORITHMS, BAD_INPUTS), ids=lambda v: v if isinstance(v, str)
                         else f"{v[0]}-{v[2]}")
def test_bad_input_raises_clear_error(algorithm, case):
    kind, make, message = case
    with pytest.raises(RuntimeError, match=message):
        op(kind)(*make(), algorithm=algorithm)


def _meta(*shape, dtype=torch.float32):
    return torch.empty(shape, device="meta", dtype=dtype)


# Every conv op, called directly with one CPU and one meta tensor, then with two meta tensors of different dtypes.
_OP_ARGS = {
    "dense_conv2d": lambda t: (t(2, 3, 2, 2), t(2, 4, 5, 6)),
    "dense_conv2d_grad_impulse": lambda t: (t(2, 12, 5, 6), t(2, 3, 2, 2), [2, 4, 5, 6]),
    "dense_conv2d_grad_response": lambda t: (t(2, 12, 5, 6), t(2, 4, 5, 6), [2, 3, 2, 2]),
    "dense_conv2d_fft": lambda t: (t(2, 3, 2, 2), t(2, 4, 5, 6)),
    "dense_conv2d_fft_backward": lambda t: (t(2, 12, 5, 6), t(2, 3, 2, 2), t(2, 4, 5, 6)),
    "sparse_conv2d": lambda t: (t(2, 4, 2, 2), t(2, 4, 5, 6)),
    "sparse_conv2d_grad_impulse": lambda t: (t(2, 4, 5, 6), t(2, 4, 2, 2), [2, 4, 5, 6]),
    "sparse_conv2d_grad_response": lambda t: (t(2, 4, 5, 6), t(2, 4, 5, 6), [2, 4, 2, 2]),
}


@pytest.mark.parametrize("name", list(_OP_ARGS))
def test_fake_kernels_check_every_tensor_argument(name):
    f = getattr(ops, name)
    n_tensors = sum(isinstance(a, torch.Tensor) for a in _OP_ARGS[name](_meta))
    out = f(*_OP_ARGS[name](_meta))
    assert all(o.device.type == "meta" for o in (out if isinstance(out, tuple) else (out,)))
    for k in range(n_tensors):  # argument k on the CPU, the others on meta
        count = iter(range(n_tensors))
        args = _OP_ARGS[name](lambda *s: torch.zeros(s) if next(count) == k else _meta(*s))
        with pytest.raises(RuntimeError, match="is on"):
            f(*args)
        count = iter(range(n_tensors))
        args = _OP_ARGS[name](lambda *s: _meta(*s, dtype=torch.float64 if next(count) == k else torch.float32))
        with pytest.raises(RuntimeError, match="dtype"):
            f(*args)
        count = iter(range(n_tensors))
        args = _OP_ARGS[name](lambda *s: _meta(*s, dtype=torch.int32 if next(count) == k else torch.float32))
        with pytest.raises(RuntimeError, match="floating-point"):
            f(*args)


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_sizes_beyond_int64_raise(device, algorithm):
    """Ci = Cr = 2^32 (stride-0 views, no memory): Ci*Cr = 2^64 output channels cannot be indexed.
    (sparse_conv2d forms no product beyond its inputs' element counts, which torch itself bounds.)"""
    huge = torch.zeros(1, 1, 1, 1, device=device).expand(1, 2 ** 32, 1, 1)
    with pytest.raises(RuntimeError, match="more elements than a 64-bit index can count"):
        dense_conv.dense_conv2d(huge, huge, algorithm=algorithm)
    for name in ("dense_conv2d", "dense_conv2d_fft"):
        with pytest.raises(RuntimeError, match="more elements than a 64-bit index can count"):
            getattr(ops, name)(huge, huge)


@needs_gpu
def test_mixed_devices_raise():
    with pytest.raises(RuntimeError, match="device"):
        dense_conv.dense_conv2d(torch.randn(1, 1, 2, 2), torch.randn(1, 1, 3, 3, device="cuda"))


@pytest.mark.parametrize("kind", KINDS)
def test_non_tensor_argument_is_a_type_error(kind):
    with pytest.raises(TypeError, match="response must be a torch.Tensor"):
        op(kind)([[1.0]], torch.randn(1, 1, 3, 3))
    with pytest.raises(TypeError, match="impulse must be a torch.Tensor"):
        op(kind)(torch.randn(1, 1, 3, 3), 3.0)


def test_bad_algorithm():
    r, i = make_inputs((1, 1, 1, 4, 4, 2, 2))
    with pytest.raises(ValueError, match="algorithm"):
        dense_conv.dense_conv2d(r, i, algorithm="winograd")


def test_fft_on_cpu_needs_float32_or_float64():
    r, i = make_inputs((1, 1, 1, 4, 4, 2, 2))
    with pytest.raises(NotImplementedError, match="float32/float64"):
        dense_conv.dense_conv2d(r.half(), i.half(), algorithm="fft")


@pytest.mark.parametrize("algorithm,kind", product(ALGORITHMS, KINDS), ids=_id)
def test_meta_tensors_give_shapes(algorithm, kind):
    C = 4 if kind == "sparse" else 3
    out = op(kind)(_meta(2, C, 2, 2), _meta(2, 4, 5, 6), algorithm=algorithm)
    assert out.shape == ((2, 4, 5, 6) if kind == "sparse" else (2, 12, 5, 6)) and out.device.type == "meta"


@pytest.mark.parametrize("device,kind,shape", product(DEVICES, KINDS, [
    (0, 2, 3, 4, 5, 2, 2), (2, 0, 3, 4, 5, 2, 2), (2, 2, 0, 4, 5, 2, 2), (2, 2, 3, 0, 5, 2, 2),
    (2, 2, 3, 4, 0, 2, 2), (2, 2, 3, 4, 5, 0, 2), (2, 2, 3, 4, 5, 2, 0)]), ids=_id)
def test_empty_dimensions(device, kind, shape):
    if kind == "sparse" and shape[2] == 0:
        shape = (shape[0], 0, 0) + shape[3:]
    response, impulse = make_inputs(shape, sparse=kind == "sparse", device=device, requires_grad=True)
    out = op(kind)(response, impulse)
    expected = reference_op(kind)(response.detach().cpu(), impulse.detach().cpu())
    assert out.shape == expected.shape
    assert torch.equal(out.cpu(), expected)
    out.sum().backward()
    assert response.grad.shape == response.shape and impulse.grad.shape == impulse.shape
    assert not response.grad.abs().sum() and not impulse.grad.abs().sum()


# ---- CUDA ----

def _nvcc_available():
    from torch.utils.cpp_extension import CUDA_HOME
    home = os.environ.get("CUDA_HOME") or CUDA_HOME
    nvcc = shutil.which("nvcc") is not None or (home is not None and os.path.exists(os.path.join(home, "bin", "nvcc")))
    return nvcc and torch.version.cuda is not None


def test_cuda_kernels_compiled_when_nvcc_present():
    if os.environ.get("USE_CUDA", "").strip() == "0":
        pytest.skip("CPU-only build requested (USE_CUDA=0)")
    if not _nvcc_available():
        pytest.skip("no nvcc or no CUDA build of torch: the CPU-only build is expected")
    assert dense_conv.cuda_kernels_compiled(), "nvcc was present but the extension has no CUDA kernels"


@needs_cuda_kernels
@pytest.mark.parametrize("dtype,algorithm,kind,shape", product(CUDA_DTYPES, ALGORITHMS, KINDS, SHAPES), ids=_id)
def test_cuda_matches_reference(dtype, algorithm, kind, shape):
    response, impulse = make_inputs(shape, sparse=kind == "sparse", seed=11)
    # inputs exactly representable in dtype, so that only the kernels' rounding is measured
    response, impulse = response.to(dtype).double(), impulse.to(dtype).double()
    grad_out = torch.randn(reference_op(kind)(response, impulse).shape, dtype=torch.float64,
                           generator=torch.Generator().manual_seed(1)).to(dtype).double()
    r64, i64 = response.clone().requires_grad_(), impulse.clone().requires_grad_()
    expected = reference_op(kind)(r64, i64)
    expected.backward(grad_out)
    r = response.cuda().to(dtype).requires_grad_()
    i = impulse.cuda().to(dtype).requires_grad_()
    out = op(kind)(r, i, algorithm=algorithm)
    out.backward(grad_out.cuda().to(dtype))
    assert out.dtype == dtype and out.device.type == "cuda"
    # compared in float64: a float32 copy of a float64 result would itself be 3e-8 off (seen on an H200)
    assert_close_scaled(out.double(), expected.detach(), dtype)
    assert_close_scaled(r.grad.double(), r64.grad, dtype)
    assert_close_scaled(i.grad.double(), i64.grad, dtype)


@needs_cuda_kernels
def test_cuda_fft_batch_chunks():
    # 94 MB of spectra per sample (64 planes of 240 x 769 bins) against a chunk budget of the 307 MB output
    # (fft_cuda_common.h chunk_samples): chunks of 3 + 1 samples
    r, i = make_inputs((4, 8, 8, 200, 1500, 37, 16))
    g = torch.randn(4, 64, 200, 1500, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    expected = ops.dense_conv2d_fft(r, i)
    expected_gr, expected_gi = ops.dense_conv2d_fft_backward(g, r, i)
    out = ops.dense_conv2d_fft(r.float().cuda(), i.float().cuda())
    gr, gi = ops.dense_conv2d_fft_backward(g.float().cuda(), r.float().cuda(), i.float().cuda())
    assert rel_err(out, expected) < 1e-5
    assert rel_err(gi, expected_gi) < 1e-5 and rel_err(gr, expected_gr) < 1e-5


@needs_cuda_kernels
def test_cuda_auto_uses_fft_for_large_kernels():
    r, i = make_inputs((1, 2, 3, 40, 50, 20, 20))
    out = dense_conv.dense_conv2d(r.cuda(), i.cuda(), algorithm="auto")
    assert rel_err(out, reference.dense_fft(r, i)) < 1e-12
