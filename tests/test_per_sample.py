"""per_sample_conv2d (dynamic convolution) and dense_mix_conv2d (dense conv + 1x1 mix): values and gradients
against float64 references, every CPU instruction-set path, gradcheck, opcheck, torch.compile, determinism,
non-contiguous and empty inputs, bad input, NaN/inf against the definition, the mixing layers."""
import functools
import os
import subprocess
import sys

import pytest
import torch

import dense_conv
from dense_conv import DenseMix, FactoredMix, reference
from testing import DEVICES, DTYPES, assert_close_scaled, product

ops = torch.ops.dense_conv
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (B, Ci, L, Hi, Wi, Hr, Wr): odd sizes, 1x1 kernels and images, kernels larger than the image (both axes),
# L = 1, Ci = 1, B = 1, partial output-channel groups (L = 5, 7, 13: groups of at most 6), impulse channels in
# two groups (Ci = 7: grad_impulse's outputs) split into row chunks, partial
# vector tiles (widths just past a multiple of 8 and 16), one row, the user's kernel shape.
SHAPES = [
    (2, 3, 4, 7, 9, 3, 2),
    (1, 1, 1, 1, 1, 1, 1),
    (1, 1, 1, 5, 5, 1, 1),
    (1, 2, 3, 4, 6, 9, 11),
    (3, 1, 5, 17, 70, 10, 17),
    (2, 4, 1, 13, 31, 5, 5),
    (1, 2, 7, 9, 40, 9, 9),
    (2, 3, 13, 6, 17, 2, 3),
    (1, 1, 2, 1, 129, 3, 40),
    (2, 2, 8, 20, 70, 37, 16),
    (1, 5, 6, 11, 33, 1, 7),
    (1, 7, 3, 33, 21, 3, 4),
]


def _id(value):
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    return str(value).replace("torch.", "")


def make_inputs(shape, dtype=torch.float64, device="cpu", seed=0, requires_grad=False):
    """(weight [B, L, Ci, Hr, Wr], impulse [B, Ci, Hi, Wi]) drawn in float64, then cast."""
    B, Ci, L, Hi, Wi, Hr, Wr = shape
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(B, L, Ci, Hr, Wr, generator=g, dtype=torch.float64)
    impulse = torch.randn(B, Ci, Hi, Wi, generator=g, dtype=torch.float64)
    return (weight.to(device=device, dtype=dtype).requires_grad_(requires_grad),
            impulse.to(device=device, dtype=dtype).requires_grad_(requires_grad))


@functools.lru_cache(maxsize=None)
def _expected(shape):
    """float64 inputs, a fixed grad_out, the reference's output and gradients."""
    weight, impulse = make_inputs(shape, seed=sum(shape))
    w, i = weight.clone().requires_grad_(), impulse.clone().requires_grad_()
    out = reference.per_sample_shift_add(w, i)
    grad_out = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out.backward(grad_out)
    return weight, impulse, grad_out, out.detach(), w.grad, i.grad


@pytest.mark.parametrize("device,dtype,shape", product(DEVICES, DTYPES, SHAPES), ids=_id)
def test_matches_reference(device, dtype, shape):
    weight, impulse, grad_out, out, grad_weight, grad_impulse = _expected(shape)
    w = weight.to(device=device, dtype=dtype).requires_grad_()
    i = impulse.to(device=device, dtype=dtype).requires_grad_()
    y = dense_conv.per_sample_conv2d(w, i)
    assert y.dtype == dtype and y.shape == out.shape
    y.backward(grad_out.to(device=device, dtype=dtype))
    assert_close_scaled(y, out, dtype)
    assert_close_scaled(w.grad, grad_weight, dtype)
    assert_close_scaled(i.grad, grad_impulse, dtype)


@pytest.mark.parametrize("shape", SHAPES, ids=_id)
def test_grouped_reference_matches_the_definition(shape):
    """The benchmark's grouped-conv2d formulation (reference.per_sample_grouped) is the same op."""
    weight, impulse, _, out, _, _ = _expected(shape)
    torch.testing.assert_close(reference.per_sample_grouped(weight, impulse), out, rtol=1e-12, atol=1e-12)


def test_weight_taps_beyond_the_image_get_zero_gradient():
    weight, impulse = make_inputs((2, 2, 3, 4, 5, 7, 9))
    g = ops.per_sample_conv2d_grad_weight(torch.randn(2, 3, 4, 5, dtype=torch.float64), impulse, list(weight.shape))
    assert g[..., 4:, :].abs().sum() == 0 and g[..., 5:].abs().sum() == 0
    assert g[..., :4, :5].abs().min() > 0


ISA_CHECK = """
import torch, dense_conv
from dense_conv import reference as R
assert torch.backends.cpu.get_cpu_capability() == {capability!r}, torch.backends.cpu.get_cpu_capability()
for n, (B, Ci, L, Hi, Wi, Hr, Wr) in enumerate({shapes!r}):
    g = torch.Generator().manual_seed(n)
    w = torch.randn(B, L, Ci, Hr, Wr, dtype=torch.float64, generator=g)
    i = torch.randn(B, Ci, Hi, Wi, dtype=torch.float64, generator=g)
    go = torch.randn(B, L, Hi, Wi, dtype=torch.float64, generator=g)
    wq, iq = w.clone().requires_grad_(), i.clone().requires_grad_()
    R.per_sample_shift_add(wq, iq).backward(go)
    ref = R.per_sample_shift_add(w, i)
    for dt in (torch.float32, torch.float64):
        wx, ix = w.to(dt).requires_grad_(), i.to(dt).requires_grad_()
        o = dense_conv.per_sample_conv2d(wx, ix); o.backward(go.to(dt))
        for name, a, b in (("out", o, ref), ("grad_weight", wx.grad, wq.grad), ("grad_impulse", ix.grad, iq.grad)):
            e = ((a.double() - b).abs().max() / b.abs().max()).item()
            assert e < (2e-5 if dt == torch.float32 else 1e-12), (name, B, Ci, L, Hi, Wi, Hr, Wr, dt, e)
print("ok")
"""
CAPABILITY_RANK = {"DEFAULT": 0, "AVX2": 1, "AVX512": 2}


@pytest.mark.parametrize("capability", ["DEFAULT", "AVX2", "AVX512"])
def test_every_cpu_isa_path(capability):
    """ATEN_CPU_CAPABILITY picks the kernels (simple rows, AVX2, AVX-512), read once per process."""
    if CAPABILITY_RANK[capability] > CAPABILITY_RANK.get(torch.backends.cpu.get_cpu_capability(), 0):
        pytest.skip(f"this CPU does not run {capability}")
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability.lower())
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    code = ISA_CHECK.format(capability=capability, shapes=SHAPES)
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-3000:]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(2, 2, 3, 5, 7, 3, 2), (1, 1, 1, 3, 4, 5, 6)], ids=_id)
def test_gradcheck_and_gradgradcheck_float64(device, shape):
    weight, impulse = make_inputs(shape, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(dense_conv.per_sample_conv2d, (weight, impulse))
    assert torch.autograd.gradgradcheck(dense_conv.per_sample_conv2d, (weight, impulse))


def test_gradcheck_one_input():
    weight, impulse = make_inputs((2, 2, 2, 5, 7, 3, 2))
    assert torch.autograd.gradcheck(lambda w: dense_conv.per_sample_conv2d(w, impulse), (weight.requires_grad_(),))
    assert torch.autograd.gradcheck(lambda i: dense_conv.per_sample_conv2d(weight.detach(), i),
                                    (impulse.requires_grad_(),))


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    for shape, requires_grad in product([(2, 3, 2, 6, 7, 3, 2), (1, 1, 1, 4, 4, 6, 5)], [False, True]):
        weight, impulse = make_inputs(shape, device=device, dtype=torch.float32, requires_grad=requires_grad)
        torch.library.opcheck(ops.per_sample_conv2d, (weight, impulse))
        g = torch.randn(weight.shape[0], weight.shape[1], *impulse.shape[2:], device=device)
        torch.library.opcheck(ops.per_sample_conv2d_grad_impulse, (g, weight.detach(), list(impulse.shape)))
        torch.library.opcheck(ops.per_sample_conv2d_grad_weight, (g, impulse.detach(), list(weight.shape)))


def test_torch_compile_fullgraph_matches_eager():
    def model(weight, impulse, mix, response):
        y = dense_conv.per_sample_conv2d(weight * 2.0, impulse).relu() ** 2
        z = dense_conv.dense_mix_conv2d(response, impulse, mix)
        return y.sum() + (z ** 2).sum()

    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    weight, impulse = make_inputs((2, 2, 3, 6, 8, 3, 2), requires_grad=True)
    mix = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    response = torch.randn(2, 4, 3, 2, dtype=torch.float64, requires_grad=True)
    inputs = (weight, impulse, mix, response)
    loss = compiled(*inputs)
    loss.backward()
    copies = [t.detach().clone().requires_grad_() for t in inputs]
    expected = model(*copies)
    expected.backward()
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=0)
    for a, b in zip(inputs, copies):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_deterministic_across_thread_counts(device):
    weight, impulse = make_inputs((3, 3, 7, 20, 33, 7, 6), dtype=torch.float32, device=device)
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, max(threads, 3), 1):
            torch.set_num_threads(n)
            w, i = weight.clone().requires_grad_(), impulse.clone().requires_grad_()
            out = dense_conv.per_sample_conv2d(w, i)
            out.backward(torch.cos(out.detach()))
            results.append((out, w.grad, i.grad))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_non_contiguous_inputs(device):
    weight, impulse = make_inputs((2, 3, 4, 9, 11, 3, 4), device=device)
    w_nc = weight.transpose(3, 4).contiguous().transpose(3, 4)[..., :, :]    # strided, same values
    i_nc = torch.cat([impulse, impulse], dim=3)[..., ::2]                     # every other column
    i_nc_values = impulse.repeat(1, 1, 1, 2)[..., ::2].contiguous()
    assert not w_nc.is_contiguous() and not i_nc.is_contiguous()
    expected = reference.per_sample_shift_add(weight.cpu(), i_nc_values.cpu())
    assert_close_scaled(dense_conv.per_sample_conv2d(w_nc, i_nc), expected, torch.float64)
    g = torch.randn(2, 4, 9, 22, dtype=torch.float64, device=device)[..., ::2]
    gi = ops.per_sample_conv2d_grad_impulse(g, w_nc, list(impulse.shape))
    gw = ops.per_sample_conv2d_grad_weight(g, i_nc, list(weight.shape))
    assert_close_scaled(gi, ops.per_sample_conv2d_grad_impulse(g.contiguous(), weight, list(impulse.shape)),
                        torch.float64, tol=0)
    assert_close_scaled(gw, ops.per_sample_conv2d_grad_weight(g.contiguous(), i_nc_values, list(weight.shape)),
                        torch.float64, tol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [
    (0, 2, 3, 4, 5, 2, 2), (2, 0, 3, 4, 5, 2, 2), (2, 2, 0, 4, 5, 2, 2), (2, 2, 3, 0, 5, 2, 2),
    (2, 2, 3, 4, 0, 2, 2), (2, 2, 3, 4, 5, 0, 2), (2, 2, 3, 4, 5, 2, 0)], ids=_id)
def test_empty_dimensions(device, shape):
    weight, impulse = make_inputs(shape, device=device, requires_grad=True)
    out = dense_conv.per_sample_conv2d(weight, impulse)
    expected = reference.per_sample_shift_add(weight.detach().cpu(), impulse.detach().cpu())
    assert out.shape == expected.shape
    assert torch.equal(out.cpu(), expected)
    out.sum().backward()
    assert weight.grad.shape == weight.shape and impulse.grad.shape == impulse.shape
    assert not weight.grad.abs().sum() and not impulse.grad.abs().sum()


# ---- bad input ----

def _meta(*shape, dtype=torch.float32):
    return torch.empty(shape, device="meta", dtype=dtype)


BAD_INPUTS = [
    (lambda: (torch.randn(2, 3, 4, 3), torch.randn(2, 4, 5, 6)), "weight must be 5-D"),
    (lambda: (torch.randn(2, 3, 4, 3, 3), torch.randn(4, 5, 6)), "impulse must be 4-D"),
    (lambda: (torch.randn(2, 3, 4, 3, 3), torch.randn(3, 4, 5, 6)), "batch mismatch"),
    (lambda: (torch.randn(2, 3, 4, 3, 3), torch.randn(2, 5, 5, 6)), "channel mismatch"),
    (lambda: (torch.randn(2, 3, 4, 3, 3), torch.randn(2, 4, 5, 6, dtype=torch.float64)), "dtype"),
    (lambda: (torch.randn(2, 3, 4, 3, 3).int(), torch.randn(2, 4, 5, 6).int()), "floating-point"),
    (lambda: (torch.randn(2, 3, 4, 3, 3).half(), torch.randn(2, 4, 5, 6).half()), "float32 or float64"),
    (lambda: (torch.randn(2, 3, 4, 3, 3), _meta(2, 4, 5, 6)), "is on"),
    (lambda: (_meta(2, 3, 4, 3, 3), torch.randn(2, 4, 5, 6)), "is on"),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=lambda c: c[1])
def test_bad_input_raises_clear_error(case):
    make, message = case
    with pytest.raises(RuntimeError, match=message):
        dense_conv.per_sample_conv2d(*make())
    with pytest.raises(RuntimeError, match=message):
        ops.per_sample_conv2d(*make())


def test_non_tensor_argument_is_a_type_error():
    with pytest.raises(TypeError, match="weight must be a torch.Tensor"):
        dense_conv.per_sample_conv2d([[1.0]], torch.randn(1, 1, 3, 3))
    with pytest.raises(TypeError, match="impulse must be a torch.Tensor"):
        dense_conv.per_sample_conv2d(torch.randn(1, 1, 1, 3, 3), 3.0)


_OP_ARGS = {
    "per_sample_conv2d": lambda t: (t(2, 3, 4, 2, 2), t(2, 4, 5, 6)),
    "per_sample_conv2d_grad_impulse": lambda t: (t(2, 3, 5, 6), t(2, 3, 4, 2, 2), [2, 4, 5, 6]),
    "per_sample_conv2d_grad_weight": lambda t: (t(2, 3, 5, 6), t(2, 4, 5, 6), [2, 3, 4, 2, 2]),
}


@pytest.mark.parametrize("name", list(_OP_ARGS))
def test_fake_kernels_check_every_tensor_argument(name):
    f = getattr(ops, name)
    n_tensors = sum(isinstance(a, torch.Tensor) for a in _OP_ARGS[name](_meta))
    out = f(*_OP_ARGS[name](_meta))
    assert out.device.type == "meta"
    assert tuple(out.shape) == {"per_sample_conv2d": (2, 3, 5, 6), "per_sample_conv2d_grad_impulse": (2, 4, 5, 6),
                                "per_sample_conv2d_grad_weight": (2, 3, 4, 2, 2)}[name]
    for k in range(n_tensors):  # argument k on the CPU, the others on meta
        count = iter(range(n_tensors))
        with pytest.raises(RuntimeError, match="is on"):
            f(*_OP_ARGS[name](lambda *s: torch.zeros(s) if next(count) == k else _meta(*s)))
        count = iter(range(n_tensors))
        with pytest.raises(RuntimeError, match="dtype"):
            f(*_OP_ARGS[name](lambda *s: _meta(*s, dtype=torch.float64 if next(count) == k else torch.float32)))
        count = iter(range(n_tensors))
        with pytest.raises(RuntimeError, match="floating-point"):
            f(*_OP_ARGS[name](lambda *s: _meta(*s, dtype=torch.int32 if next(count) == k else torch.float32)))


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("name,args", [
    ("per_sample_conv2d_grad_impulse", lambda t: (t(2, 3, 5, 7), t(2, 3, 4, 2, 2), [2, 4, 5, 6])),
    ("per_sample_conv2d_grad_weight", lambda t: (t(2, 2, 5, 6), t(2, 4, 5, 6), [2, 3, 4, 2, 2]))], ids=_id)
def test_grad_out_shape_is_checked(device, name, args):
    with pytest.raises(RuntimeError, match="grad_out must have the output's shape"):
        getattr(ops, name)(*args(lambda *s: torch.zeros(s, device=device)))


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_sizes_beyond_int64_raise(device):
    """L = 4 outputs of a 2^31 x 2^31 image (stride-0 views, no memory): 2^64 output elements."""
    weight = torch.zeros(1, 1, 1, 1, 1, device=device).expand(1, 4, 1, 1, 1)
    impulse = torch.zeros(1, 1, 1, 1, device=device).expand(1, 1, 2 ** 31, 2 ** 31)
    with pytest.raises(RuntimeError, match="more elements than a 64-bit index can count"):
        dense_conv.per_sample_conv2d(weight, impulse)


def test_meta_tensors_give_shapes():
    out = dense_conv.per_sample_conv2d(_meta(2, 3, 4, 2, 2), _meta(2, 4, 5, 6))
    assert out.shape == (2, 3, 5, 6) and out.device.type == "meta"
    out = dense_conv.dense_mix_conv2d(_meta(2, 5, 2, 2), _meta(2, 4, 7, 6), _meta(3, 4, 5))
    assert out.shape == (2, 3, 7, 6) and out.device.type == "meta"


# ---- NaN and infinity: the definition's result ----

def _assert_same(actual, expected):
    actual = actual.double()
    assert torch.equal(torch.isnan(actual), torch.isnan(expected)), "NaN positions differ from the definition"
    assert torch.equal(torch.isinf(actual), torch.isinf(expected)), "infinite positions differ from the definition"
    finite = torch.isfinite(expected)
    torch.testing.assert_close(actual[finite], expected[finite], rtol=1e-10, atol=1e-10)
    assert torch.equal(actual[torch.isinf(expected)], expected[torch.isinf(expected)])


def _poisoned(where, seed=0):
    weight, impulse = make_inputs((3, 2, 3, 9, 21, 4, 5), seed=seed)
    grad_out = torch.randn(3, 3, 9, 21, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    if where == "nan_tap":
        weight[1, 0, 1, 2, 3] = float("nan")
    elif where == "inf_tap":
        weight[2, 2, 0, 1, 4] = float("inf")
    elif where == "inf_pixel":
        impulse[0, 1, 4, 6] = float("-inf")
    elif where == "nan_pixel":
        impulse[1, 0, 8, 20] = float("nan")
    elif where == "inf_grad":
        grad_out[1, 0, 3, 7] = float("inf")
    return weight, impulse, grad_out


@pytest.mark.parametrize("dtype", DTYPES, ids=_id)
@pytest.mark.parametrize("where", ["nan_tap", "inf_tap", "inf_pixel", "nan_pixel", "inf_grad"])
def test_nonfinite_inputs_give_the_definition(where, dtype):
    weight, impulse, grad_out = _poisoned(where)
    w64, i64 = weight.clone().requires_grad_(), impulse.clone().requires_grad_()
    expected = reference.per_sample_shift_add(w64, i64)
    expected.backward(grad_out)
    w, i = weight.to(dtype).requires_grad_(), impulse.to(dtype).requires_grad_()
    out = dense_conv.per_sample_conv2d(w, i)
    out.backward(grad_out.to(dtype))
    if where != "inf_grad":
        assert torch.isfinite(expected).any() and not torch.isfinite(expected).all()
    for actual, exp in ((out, expected.detach()), (w.grad, w64.grad), (i.grad, i64.grad)):
        if dtype == torch.float64:
            _assert_same(actual, exp)
        else:
            assert torch.equal(torch.isfinite(actual), torch.isfinite(exp))
    # samples without a non-finite value are the fast kernels' result, bit for bit
    clean = dense_conv.per_sample_conv2d(*make_inputs((3, 2, 3, 9, 21, 4, 5), dtype=dtype))
    if where != "inf_grad":
        bad = int({"nan_tap": 1, "inf_tap": 2, "inf_pixel": 0, "nan_pixel": 1}[where])
        keep = [b for b in range(3) if b != bad]
        assert torch.equal(out.detach()[keep], clean[keep])


# ---- dense_mix_conv2d and the mixing layers ----

# (B, Ci, Cr, L, Hi, Wi, Hr, Wr): kernel larger than the image, L > Ci*Cr, one response, 1x1 kernels
MIX_SHAPES = [(2, 3, 4, 5, 9, 11, 3, 5), (1, 1, 1, 1, 4, 4, 6, 5), (2, 2, 3, 8, 13, 70, 7, 16),
              (1, 4, 1, 3, 5, 9, 1, 1)]


def _mix_inputs(shape, seed=0):
    """(response, impulse, weight, bias) for (B, Ci, Cr, L, Hi, Wi, Hr, Wr), float64."""
    B, Ci, Cr, L, Hi, Wi, Hr, Wr = shape
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, Cr, Hr, Wr, generator=g, dtype=torch.float64),
            torch.randn(B, Ci, Hi, Wi, generator=g, dtype=torch.float64),
            torch.randn(L, Ci, Cr, generator=g, dtype=torch.float64),
            torch.randn(L, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("dtype", DTYPES, ids=_id)
@pytest.mark.parametrize("algorithm", ["auto", "direct", "fft"])
@pytest.mark.parametrize("shape", MIX_SHAPES, ids=_id)
def test_dense_mix_matches_the_dense_formula(shape, algorithm, dtype):
    """dense_mix_conv2d == dense_conv2d + 1x1 conv2d (the user's DenseMix) == the float64 reference, with
    gradients of all four arguments."""
    inputs = _mix_inputs(shape)
    ref_args = [t.clone().requires_grad_() for t in inputs]
    expected = reference.dense_mix_reference(*ref_args)
    grad_out = torch.randn(expected.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    expected.backward(grad_out)
    args = [t.to(dtype).requires_grad_() for t in inputs]
    out = dense_conv.dense_mix_conv2d(*args, algorithm=algorithm)
    out.backward(grad_out.to(dtype))
    tol = 1e-4 if dtype == torch.float32 else 1e-11
    assert_close_scaled(out, expected, dtype, tol=tol)
    for a, e in zip(args, ref_args):
        assert_close_scaled(a.grad, e.grad, dtype, tol=tol)
    response, impulse, weight, bias = inputs
    as_conv = torch.nn.functional.conv2d(dense_conv.dense_conv2d(response, impulse),
                                         weight.reshape(weight.shape[0], -1, 1, 1), bias)
    assert_close_scaled(as_conv, expected, torch.float64)


def test_dense_mix_gradcheck_and_gradgradcheck():
    args = [t.requires_grad_() for t in _mix_inputs((2, 2, 3, 2, 5, 6, 3, 2))]
    assert torch.autograd.gradcheck(dense_conv.dense_mix_conv2d, args)
    assert torch.autograd.gradgradcheck(lambda r, i, w, b: dense_conv.dense_mix_conv2d(r, i, w, b), args)


def test_dense_mix_layer_equals_the_factored_layer_and_the_old_formula():
    torch.manual_seed(0)
    factored = FactoredMix(impulse_channels=3, response_channels=4, out_channels=5).double()
    dense = factored.to_dense()
    assert isinstance(dense, DenseMix)
    response, impulse, _, _ = _mix_inputs((2, 3, 4, 5, 9, 11, 3, 5))
    expected = reference.dense_mix_reference(response, impulse, dense.weight.detach())
    assert_close_scaled(dense(response, impulse), expected, torch.float64)
    assert_close_scaled(factored(response, impulse), expected, torch.float64)
    old = torch.nn.functional.conv2d(dense_conv.dense_conv2d(response, impulse),
                                     dense.weight.detach().reshape(5, 12, 1, 1))
    assert_close_scaled(old, expected, torch.float64)


DENSE_MIX_BAD = [
    (lambda r, i, w, b: (r[0], i, w, b), "response must be 4-D"),
    (lambda r, i, w, b: (r, i[0], w, b), "impulse must be 4-D"),
    (lambda r, i, w, b: (r, i, w[0], b), "weight must be 3-D"),
    (lambda r, i, w, b: (r[:1], i, w, b), "batch mismatch"),
    (lambda r, i, w, b: (r, i, w[:, :1], b), "channel mismatch, weight has Ci=1"),
    (lambda r, i, w, b: (r, i, w[:, :, :1], b), "channel mismatch, weight has Cr=1"),
    (lambda r, i, w, b: (r, i, w, b[:1]), "bias must be 1-D"),
    (lambda r, i, w, b: (r, i, w.float(), b), "dtype"),
    (lambda r, i, w, b: (r, i.to("meta"), w, b), "is on"),
    (lambda r, i, w, b: (r.long(), i, w, b), "floating-point"),
]


@pytest.mark.parametrize("case", DENSE_MIX_BAD, ids=lambda c: c[1])
def test_dense_mix_bad_input(case):
    change, message = case
    with pytest.raises(RuntimeError, match=message):
        dense_conv.dense_mix_conv2d(*change(*_mix_inputs((2, 3, 4, 5, 9, 11, 3, 5))))


def test_dense_mix_bad_algorithm_and_non_tensors():
    r, i, w, b = _mix_inputs((1, 1, 1, 1, 4, 4, 2, 2))
    with pytest.raises(ValueError, match="algorithm"):
        dense_conv.dense_mix_conv2d(r, i, w, algorithm="winograd")
    with pytest.raises(TypeError, match="weight must be a torch.Tensor"):
        dense_conv.dense_mix_conv2d(r, i, [[1.0]])
    with pytest.raises(TypeError, match="bias must be a torch.Tensor"):
        dense_conv.dense_mix_conv2d(r, i, w, 1.0)
