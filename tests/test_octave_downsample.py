"""octave_downsample: the kernels against the float64 conv1d reference, autograd, opcheck, compile, bad
input, filter design."""
import pytest
import torch

import dense_conv as dc
from dense_conv.audio.octave import halfband_filter, halfband_response
from dense_conv.reference import octave_downsample_reference
from testing import DEVICES, DTYPES, product

# per tap: |error| / max(1, max|expected|) / sqrt(taps) / 4
TOL = {torch.float32: 2e-6, torch.float64: 1e-13}


def _as_list(y):
    return y if isinstance(y, list) else [y]


@pytest.mark.parametrize("device,dtype,shape,levels,taps", product(
    DEVICES, DTYPES, [(1,), (2,), (3,), (7,), (2, 3, 101), (5000,), (2, 4099)], [1, 3], [1, 3, 83]))
def test_forward_matches_reference(device, dtype, shape, levels, taps):
    g = torch.Generator().manual_seed(sum(shape) + taps + levels)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    f = torch.randn(taps, generator=g, dtype=torch.float64)
    ref = _as_list(octave_downsample_reference(x, f, levels))
    out = _as_list(dc.octave_downsample(x.to(device, dtype), f.to(device, dtype), levels))
    assert len(out) == levels
    for o, r in zip(out, ref):
        assert o.shape == r.shape and o.dtype == dtype
        scale = r.abs().max().clamp_min(1.0)
        assert (o.double().cpu() - r).abs().max() <= TOL[dtype] * scale * taps ** 0.5 * 4


@pytest.mark.parametrize("device", DEVICES)
def test_default_filter_and_noncontiguous(device):
    x = torch.randn(3, 2000, device=device).transpose(0, 1).contiguous().transpose(0, 1)[:, ::2]
    assert not x.is_contiguous()
    y = dc.octave_downsample(x)
    r = octave_downsample_reference(x.double().cpu(), halfband_filter(dtype=torch.float64))
    assert torch.allclose(y.double().cpu(), r, atol=1e-5)


@pytest.mark.parametrize("levels", [1, 2, 4])
def test_gradcheck(levels):
    g = torch.Generator().manual_seed(levels)
    x = torch.randn(2, 37, generator=g, dtype=torch.float64, requires_grad=True)
    f = torch.randn(9, generator=g, dtype=torch.float64, requires_grad=True)

    def fn(x, f):
        return torch.cat(_as_list(dc.octave_downsample(x, f, levels)), dim=-1)

    assert torch.autograd.gradcheck(fn, (x, f))


@pytest.mark.parametrize("levels", [1, 3])
def test_backward_matches_reference_float32(levels):
    x = torch.randn(2, 3, 3001, requires_grad=True)
    f = halfband_filter().requires_grad_()
    w = [torch.randn(o.shape) for o in _as_list(octave_downsample_reference(x, f, levels))]
    loss = sum((o * wi).sum() for o, wi in zip(_as_list(dc.octave_downsample(x, f, levels)), w))
    gx, gf = torch.autograd.grad(loss, (x, f))
    xd, fd = x.detach().double().requires_grad_(), f.detach().double().requires_grad_()
    loss = sum((o * wi.double()).sum() for o, wi in zip(_as_list(octave_downsample_reference(xd, fd, levels)), w))
    rx, rf = torch.autograd.grad(loss, (xd, fd))
    assert (gx.double() - rx).abs().max() <= 1e-5 * rx.abs().max()
    assert (gf.double() - rf).abs().max() <= 1e-5 * rf.abs().max()


def test_opcheck():
    x = torch.randn(2, 3, 50, dtype=torch.float64)
    f = torch.randn(7, dtype=torch.float64)
    for levels in (1, 3):
        for rg in (False, True):
            torch.library.opcheck(torch.ops.dense_conv.octave_downsample,
                                  (x.clone().requires_grad_(rg), f.clone().requires_grad_(rg), levels))
    g = torch.randn(2, 3, 25 + 13 + 7, dtype=torch.float64)
    torch.library.opcheck(torch.ops.dense_conv.octave_downsample_grad_input, (g, f, 50, 3))
    torch.library.opcheck(torch.ops.dense_conv.octave_downsample_grad_filter,
                          (g, x, torch.ops.dense_conv.octave_downsample(x, f, 3), f, 3))


def test_compile_matches_eager():
    def loss(x, f):
        return dc.octave_downsample(x, f, 2)[1].square().sum()

    x = torch.randn(4, 300, dtype=torch.float64, requires_grad=True)
    f = halfband_filter(dtype=torch.float64).requires_grad_()
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")(x, f)
    gx, gf = torch.autograd.grad(compiled, (x, f))
    expected = loss(x, f)
    ex, ef = torch.autograd.grad(expected, (x, f))
    torch.testing.assert_close(compiled, expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(gx, ex, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(gf, ef, rtol=1e-12, atol=1e-15)


def test_errors():
    f = halfband_filter()
    with pytest.raises((TypeError, RuntimeError), match="floating"):
        dc.octave_downsample(torch.ones(10, dtype=torch.int64), f)
    with pytest.raises((ValueError, RuntimeError), match="odd"):
        dc.octave_downsample(torch.randn(10), torch.randn(4))
    with pytest.raises(RuntimeError, match="dtype"):
        torch.ops.dense_conv.octave_downsample(torch.randn(10), f.double(), 1)
    with pytest.raises(TypeError, match="x has dtype torch.float32 but filter has dtype torch.float64"):
        dc.octave_downsample(torch.randn(10), f.double())


@pytest.mark.parametrize("levels,error", [(2.5, TypeError), ("3", TypeError), (True, TypeError), (None, TypeError),
                                          (-1, ValueError), (0, ValueError), (33, ValueError),
                                          (2 ** 40, ValueError), (2 ** 62, ValueError)], ids=repr)
def test_bad_levels(levels, error):
    with pytest.raises(error, match="levels must be an int in \\[1, 32\\]"):
        dc.octave_downsample(torch.randn(10), levels=levels)
    with pytest.raises(error, match="levels"):
        octave_downsample_reference(torch.randn(10), halfband_filter(), levels)


@pytest.mark.parametrize("levels", [0, 33, 2 ** 40, 2 ** 62])
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_bad_levels_rejected_by_the_ops(device, levels):
    """The ops themselves (C++ and fake kernels) refuse levels outside [1, 32]."""
    x, f = torch.zeros(2, 10, device=device), torch.zeros(3, device=device)
    with pytest.raises(RuntimeError, match="levels must be an int in \\[1, 32\\]"):
        torch.ops.dense_conv.octave_downsample(x, f, levels)
    with pytest.raises(RuntimeError, match="levels"):
        torch.ops.dense_conv.octave_downsample_grad_input(torch.zeros(2, 5, device=device), f, 10, levels)


def test_max_levels_match_the_compiled_ops():
    x, f = torch.randn(3, 70), torch.randn(5)
    out = dc.octave_downsample(x, f, 32)
    assert [o.shape[-1] for o in out] == [35, 18, 9, 5, 3, 2] + [1] * 26
    for o, r in zip(out, octave_downsample_reference(x, f, 32)):
        torch.testing.assert_close(o, r)


def _meta(*shape, dtype=torch.float32):
    return torch.empty(shape, device="meta", dtype=dtype)


@pytest.mark.parametrize("x_device,filter_device", [("cpu", "meta"), ("meta", "cpu")])
def test_meta_and_cpu_arguments_are_refused(x_device, filter_device):
    """One meta argument would send the call to the shape-only fake kernel: an error, never uninitialised data."""
    x, f = torch.randn(4, 100).to(x_device), halfband_filter().to(filter_device)
    with pytest.raises(ValueError, match=f"x is on {x_device} but filter is on {filter_device}"):
        dc.octave_downsample(x, f)
    with pytest.raises(RuntimeError, match="is on"):
        torch.ops.dense_conv.octave_downsample(x, f, 1)


# Every octave op, called directly: arguments built by `t(*shape)`.
_OP_ARGS = {
    "octave_downsample": lambda t: (t(2, 10), t(3), 2),
    "octave_downsample_grad_input": lambda t: (t(2, 8), t(3), 10, 2),
    "octave_downsample_grad_filter": lambda t: (t(2, 8), t(2, 10), t(2, 8), t(3), 2),
}


@pytest.mark.parametrize("name", list(_OP_ARGS))
def test_fake_kernels_check_every_tensor_argument(name):
    f = getattr(torch.ops.dense_conv, name)
    n_tensors = sum(isinstance(a, torch.Tensor) for a in _OP_ARGS[name](_meta))
    assert f(*_OP_ARGS[name](_meta)).device.type == "meta"
    for k in range(n_tensors):  # argument k differs from the others
        for make, message in [(lambda *s, d: torch.zeros(s) if d else _meta(*s), "is on"),
                              (lambda *s, d: _meta(*s, dtype=torch.float64 if d else torch.float32), "dtype"),
                              (lambda *s, d: _meta(*s, dtype=torch.int32 if d else torch.float32), "floating-point")]:
            count = iter(range(n_tensors))
            args = _OP_ARGS[name](lambda *s: make(*s, d=next(count) == k))
            with pytest.raises(RuntimeError, match=message):
                f(*args)


@pytest.mark.parametrize("name", list(_OP_ARGS))
def test_kernels_check_every_tensor_dtype(name):
    """The real kernels too: one float64 argument among float32 ones is refused, whichever it is."""
    f = getattr(torch.ops.dense_conv, name)
    n_tensors = sum(isinstance(a, torch.Tensor) for a in _OP_ARGS[name](torch.zeros))
    for k in range(n_tensors):
        count = iter(range(n_tensors))
        args = _OP_ARGS[name](lambda *s: torch.zeros(s, dtype=torch.float64 if next(count) == k else torch.float32))
        with pytest.raises(RuntimeError, match="dtype"):
            f(*args)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_sizes_beyond_int64_raise(device):
    """2^62 rows of one sample (a stride-0 view): 32 levels of one sample each are 2^67 output elements."""
    x = torch.zeros(1, 1, device=device).expand(2 ** 62, 1)
    f = torch.zeros(3, device=device)
    with pytest.raises(RuntimeError, match="the output has more elements than a 64-bit index can count"):
        dc.octave_downsample(x, f, 32)
    with pytest.raises(RuntimeError, match="the output has more elements than a 64-bit index can count"):
        torch.ops.dense_conv.octave_downsample(x, f, 32)


def test_empty():
    assert dc.octave_downsample(torch.randn(3, 0)).shape == (3, 0)
    assert dc.octave_downsample(torch.randn(0, 10)).shape == (0, 5)


def test_zero_phase_tone_alignment():
    # a tone in the passband keeps its phase: output sample m sits on input sample 2m
    t = torch.arange(20000, dtype=torch.float64)
    x = torch.cos(0.3 * torch.pi * t + 0.4)
    y = dc.octave_downsample(x, halfband_filter(dtype=torch.float64))
    expect = torch.cos(0.3 * torch.pi * 2 * torch.arange(y.numel(), dtype=torch.float64) + 0.4)
    assert (y[100:-100] - expect[100:-100]).abs().max() < 2e-5


@pytest.mark.parametrize("passband,atten,taps,ripple_db,stop_db", [
    (0.42, 100.0, 83, 1e-4, -100.0),    # the default
    (0.378, 88.0, 47, 4.5e-4, -87.5),   # the design quoted in halfband_filter's docstring
    (0.378, 116.0, 63, 2e-5, -115.0),
])
def test_halfband_design(passband, atten, taps, ripple_db, stop_db):
    h = halfband_filter(passband, atten, dtype=torch.float64)
    assert h.numel() == taps and h.numel() % 2 == 1
    assert torch.equal(h, h.flip(0))                      # zero phase
    assert abs(h.sum().item() - 1.0) < 1e-14              # unit DC gain
    m = (taps - 1) // 2
    even = torch.arange(-m, m + 1) % 2 == 0
    even[m] = False
    assert (h[even] == 0).all()                           # half-band zeros
    ripple, stop = halfband_response(h, passband)
    assert ripple <= ripple_db and stop <= stop_db


@pytest.mark.parametrize("levels", [1, 3])
def test_double_backward(levels):
    """create_graph=True through the signal gradient gives the true second derivative; through the filter
    gradient it raises a clear error."""
    g = torch.Generator().manual_seed(levels)
    x = torch.randn(2, 29, generator=g, dtype=torch.float64, requires_grad=True)
    f = torch.randn(7, generator=g, dtype=torch.float64, requires_grad=True)

    def fn(x, f):
        return torch.cat(_as_list(dc.octave_downsample(x, f, levels)), dim=-1)

    y = fn(x, f)
    gx, = torch.autograd.grad(y.square().sum(), x, create_graph=True)
    ggf, = torch.autograd.grad(gx.sum(), f)
    y2 = torch.cat(_as_list(octave_downsample_reference(x, f, levels)), dim=-1)
    gx2, = torch.autograd.grad(y2.square().sum(), x, create_graph=True)
    ggf2, = torch.autograd.grad(gx2.sum(), f)
    torch.testing.assert_close(ggf, ggf2)
    assert torch.autograd.gradgradcheck(lambda x: fn(x, f.detach()), (x,))
    gf, = torch.autograd.grad(fn(x, f).square().sum(), f, create_graph=True)
    with pytest.raises(RuntimeError, match="second derivative"):
        torch.autograd.grad(gf.sum(), x)
