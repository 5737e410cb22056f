"""CQT: octave method (custom op) against the float64 definition CQT and librosa, gradients, errors."""
import functools
import math

import numpy as np
import pytest
import torch

import dense_conv as dc
from dense_conv.audio.cqt import CQTKernels
from dense_conv.reference import cqt_definition, cqt_octave_reference
from testing import CountOps

SR, HOP = 22050, 512
FMIN = 32.70319566257483  # C1
N = 4 * SR  # 4 s: ~100 frames whose longest (C1) kernel lies inside the signal
EDGE = 36   # frames within half the longest kernel (~17.5k samples) of an end are not interior
FREQS = CQTKernels(SR, FMIN, 288, 36, 1.0, "hann", True).freqs


def _signal(name):
    t = np.arange(N) / SR
    rng = np.random.default_rng(1234)
    if name == "tone_centre":      # on bin centres, one per octave region
        return sum(np.cos(2 * np.pi * FREQS[k] * t + 0.1 * k) for k in (10, 100, 200, 280)) / 4
    if name == "tone_between":     # half-way between bin centres
        return sum(np.cos(2 * np.pi * FREQS[k] * 2 ** (0.5 / 36) * t + 0.2) for k in (30, 150, 250)) / 3
    if name == "chirp":            # 30 Hz .. 8 kHz, exponential
        f0, f1 = 30.0, 8000.0
        k = math.log(f1 / f0) / (N / SR)
        return np.cos(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)
    if name == "noise":
        return 0.3 * rng.standard_normal(N)
    if name == "clicks":
        x = np.zeros(N)
        x[rng.integers(0, N, 12)] = rng.choice([-1.0, 1.0], 12)
        return x
    raise KeyError(name)


SIGNALS = ["tone_centre", "tone_between", "chirp", "noise", "clicks"]


@functools.lru_cache(maxsize=None)
def _definition(name):
    return cqt_definition(torch.tensor(_signal(name)), SR, HOP, FMIN, 288, 36).numpy()


@functools.lru_cache(maxsize=None)
def _model(dtype=torch.float32):
    return dc.CQT(SR, HOP, FMIN, 288, 36).to(dtype)


def _rel_err(a, b, edge=EDGE):
    """max|a - b| / max|b| over the interior frames."""
    a, b = a[:, edge:-edge], b[:, edge:-edge]
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("name", SIGNALS)
def test_against_definition_float32(name):
    C = _model()(torch.tensor(_signal(name), dtype=torch.float32)).numpy()
    D = _definition(name)
    assert C.shape == D.shape == (288, 1 + N // HOP)
    err = _rel_err(C, D)
    print(f"{name}: max|dC|/max|C| vs definition (float32) = {err:.2e}")
    # Clicks: the definition's kernels end abruptly (window support), the octave method's effective
    # kernels are band-limited by the decimators and ring ~1.2e-4 past those ends; a sharper
    # decimator does not change that (0.45/100 dB, 131 taps: 1.23e-4; 0.47/110 dB: 1.21e-4).
    assert err <= (1.5e-4 if name == "clicks" else 1e-4)


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
def test_octave_reference_matches_op(pad_mode):
    """The module with the custom op against the same octave loop with the pure-PyTorch decimator."""
    x = torch.tensor(_signal("noise"), dtype=torch.float64)
    a = dc.CQT(SR, HOP, FMIN, 288, 36, pad_mode=pad_mode).double()(x)
    b = cqt_octave_reference(x, SR, HOP, FMIN, 288, 36, pad_mode=pad_mode)
    assert (a - b).abs().max() <= 1e-10 * b.abs().max()


@pytest.mark.parametrize("name", SIGNALS)
def test_against_librosa(name):
    librosa = pytest.importorskip("librosa")
    x = _signal(name)
    C = _model(torch.float64)(torch.tensor(x)).numpy()
    kw = dict(sr=SR, hop_length=HOP, fmin=FMIN, n_bins=288, bins_per_octave=36)
    L0 = librosa.cqt(x, sparsity=0, **kw)
    L = librosa.cqt(x, **kw)
    assert L0.shape == C.shape
    e0, e = _rel_err(C, L0), _rel_err(C, L)
    print(f"{name}: vs librosa sparsity=0 {e0:.2e}, vs librosa default {e:.2e}")
    assert e0 <= 1e-3
    assert e <= 1e-2
    # the float32 module against librosa as well
    C32 = _model()(torch.tensor(x, dtype=torch.float32)).numpy()
    assert _rel_err(C32, L0) <= 1e-3


# librosa first resamples the whole signal when the top bin is far below Nyquist ("early downsampling",
# kernels then discretised at a lower rate: ~1% differences from its own full-rate result), so these
# layouts keep the top bin's band edge above sr/8, where it does not.
@pytest.mark.parametrize("kw", [dict(n_bins=84, bins_per_octave=12),
                                dict(n_bins=72, bins_per_octave=12, fmin=65.40639132514966, hop_length=256),
                                dict(n_bins=7, bins_per_octave=12, fmin=3000.0),
                                dict(filter_scale=0.8, n_bins=60, bins_per_octave=24, fmin=880.0, scale=False)])
def test_other_layouts_against_librosa(kw):
    librosa = pytest.importorskip("librosa")
    kw = {"sr": SR, "hop_length": HOP, "fmin": FMIN, **kw}
    x = _signal("chirp")
    C = dc.CQT(**kw).double()(torch.tensor(x)).numpy()
    L = librosa.cqt(x, sparsity=0, **kw)
    assert C.shape == L.shape
    ker = dc.CQT(**kw).ker
    e = int(ker.lengths[0] / 2 / kw["hop_length"]) + 2
    a, b = C[:, e:-e], L[:, e:-e]
    assert np.abs(a - b).max() <= 1e-3 * np.abs(b).max()


def test_unit_cosine_reads_half_sqrt_length():
    k = 150
    t = np.arange(N) / SR
    C = _model(torch.float64)(torch.tensor(np.cos(2 * np.pi * FREQS[k] * t))).abs().numpy()
    L = CQTKernels(SR, FMIN, 288, 36, 1.0, "hann", True).lengths[k]
    assert abs(C[k, N // HOP // 2] - 0.5 * math.sqrt(L)) < 1e-4 * math.sqrt(L)


def test_shapes_outputs_and_batch():
    m = dc.CQT(output="complex")
    x = torch.randn(2, 3, 20000)
    c = m(x)
    assert c.shape == (2, 3, 288, 1 + 20000 // 512) and c.is_complex()
    assert torch.allclose(m(x[1, 2]), c[1, 2], atol=1e-5)
    assert torch.allclose(m(x[1]), c[1], atol=1e-5)
    mag = dc.CQT(output="magnitude")(x)
    pw = dc.CQT(output="power")(x)
    assert torch.allclose(mag, c.abs(), rtol=1e-5, atol=1e-6)
    assert torch.allclose(pw, c.abs() ** 2, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("T", [1, 2, 100, 511, 513])
def test_short_inputs(T):
    x = torch.randn(T, dtype=torch.float64)
    c = dc.CQT().double()(x)
    assert c.shape == (288, 1 + T // 512) and torch.isfinite(torch.view_as_real(c)).all()
    d = cqt_definition(x)
    assert (c - d).abs().max() <= 2e-3 * d.abs().max() + 1e-12


@pytest.mark.parametrize("name,hop", [("noise", 512), ("chirp", 512), ("noise", 1001)])
def test_reflect_padding_every_frame_against_definition(name, hop):
    """pad_mode='reflect' reflects the full-rate signal for every octave, as cqt_definition does: every frame,
    the edge ones included, within 1e-4 of max|C|."""
    x = torch.tensor(_signal(name), dtype=torch.float32)
    C = dc.CQT(SR, hop, FMIN, 288, 36, pad_mode="reflect")(x).numpy()
    D = cqt_definition(x, SR, hop, FMIN, 288, 36, pad_mode="reflect").numpy()
    assert C.shape == D.shape
    err = np.abs(C - D).max() / np.abs(D).max()
    print(f"reflect {name} hop {hop}: every frame {err:.2e}")
    assert err <= 1e-4


@pytest.mark.parametrize("T", [1, 2, 700])
def test_reflect_short_signals(T):
    kw = dict(sr=SR, hop_length=64, fmin=110.0, n_bins=36, bins_per_octave=12, pad_mode="reflect")
    x = torch.randn(T, dtype=torch.float64)
    C = dc.CQT(**kw).double()(x)
    D = cqt_definition(x, **kw)
    assert C.shape == D.shape == (36, 1 + T // 64)
    # reflections of a very short signal are periodic with most of their power out of band, so the scale
    # is that of an in-band unit cosine (0.5 sqrt(L)) times max|x|
    scale = 0.5 * math.sqrt(dc.CQT(**kw).ker.lengths[0]) * x.abs().max()
    assert (C - D).abs().max() <= 1e-4 * scale


def test_errors():
    with pytest.raises(ValueError, match="Nyquist"):
        dc.CQT(n_bins=310)
    with pytest.raises(TypeError, match="floating-point"):
        dc.CQT()(torch.ones(1000, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"\[T\], \[B, T\] or \[B, C, T\]"):
        dc.CQT()(torch.randn(1, 1, 1, 1000))
    with pytest.raises(ValueError, match="output"):
        dc.CQT(output="db")


@pytest.mark.parametrize("output", ["magnitude", "power", "complex"])
def test_gradcheck_small_cqt(output):
    # 3 octaves of 12 bins, trainable kernels and decimation filter, float64
    m = dc.CQT(sr=8000, hop_length=16, fmin=400.0, n_bins=36, bins_per_octave=12, output=output,
               trainable=True, trainable_filter=True, downsample_filter=dc.halfband_filter(0.378, 40.0)).double()
    x = torch.randn(2, 300, dtype=torch.float64, requires_grad=True)
    k = m.kernels.detach().clone().requires_grad_()
    f = m.downsample_filter.detach().clone().requires_grad_()

    def fn(x, k, f):
        out = torch.func.functional_call(m, {"kernels": k, "downsample_filter": f}, (x,))
        return torch.view_as_real(out) if out.is_complex() else out

    # fast mode: random projections of the Jacobians (the full ones of ~2000 kernel weights take minutes)
    assert torch.autograd.gradcheck(fn, (x, k, f), atol=1e-6, fast_mode=True)


def test_magnitude_gradients_finite_on_silence():
    m = dc.CQT(output="magnitude", trainable=True, trainable_filter=True)
    x = torch.zeros(2, 30000, requires_grad=True)
    m(x).sum().backward()
    for g in (x.grad, m.kernels.grad, m.downsample_filter.grad):
        assert g is not None and torch.isfinite(g).all()
    # and on a signal with silent stretches, through all 8 octaves
    m.zero_grad()
    x = torch.zeros(30000)
    x[10000:10100] = torch.randn(100)
    x.requires_grad_()
    m(x).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(m.kernels.grad).all()
    assert m.kernels.grad.abs().sum() > 0


def test_trainable_shares_one_octave():
    """One octave of shared kernels; the top bins of the decimated octaves that the decimator does not pass
    cleanly (CQTKernels.raised_bins) have their own kernels, one level up, as parameters too."""
    m = dc.CQT(trainable=True)
    names = [n for n, _ in m.named_parameters()]
    assert names == ["kernels"] + [f"raised_kernels.{b}" for b in range(len(m.raised_blocks))]
    assert m.kernels.shape[:2] == (36, 2)
    assert [i for i, _ in m.raised_blocks] == list(range(1, 8))
    for (i, j), k in zip(m.raised_blocks, m.raised_kernels):
        assert j == 1 and k.shape[:2] == (m.raised_bins[(i, j)], 2)


@pytest.mark.parametrize("shape", [(0,), (2, 0), (2, 3, 0)])
def test_empty_input_gives_one_silent_frame(shape):
    """T = 0 is the shortest input: 1 + 0 // hop = 1 frame of zeros."""
    kw = dict(sr=22050, hop_length=64, n_bins=36, bins_per_octave=12, fmin=110.0)
    x = torch.zeros(shape)
    c = dc.CQT(**kw)(x)
    assert c.shape == (*shape[:-1], 36, 1) and not c.abs().any()
    assert cqt_definition(x, **kw).shape == c.shape


# Hops with fewer than n_octaves-1 factors of 2: the octaves below are computed at the last rate with their
# own kernels, as librosa does (hop 1 and 3: no decimation; 2000 = 16 * 125: four decimations).
# 7 octaves of 12 on short signals for the small hops (shorter than the lowest kernel: every frame is compared
# with librosa); 8 octaves of 36 on 4 s for the others (interior frames against librosa).
_HOP_CASES = {
    1: (dict(fmin=FMIN, n_bins=84, bins_per_octave=12), 3000),
    3: (dict(fmin=FMIN, n_bins=84, bins_per_octave=12), 8000),
    1001: (dict(fmin=FMIN, n_bins=288, bins_per_octave=36), N),
    2000: (dict(fmin=FMIN, n_bins=288, bins_per_octave=36), N),
    512: (dict(fmin=FMIN, n_bins=84, bins_per_octave=12), N),
}


@pytest.mark.parametrize("hop", sorted(_HOP_CASES))
def test_any_hop_against_definition_and_librosa(hop):
    librosa = pytest.importorskip("librosa")
    kw, T = _HOP_CASES[hop]
    kw = dict(sr=SR, hop_length=hop, **kw)
    x = np.random.default_rng(hop).standard_normal(T) * 0.3
    m = dc.CQT(**kw)
    assert m.ker.n_octaves >= 7
    C = m(torch.tensor(x, dtype=torch.float32)).numpy()
    D = cqt_definition(torch.tensor(x), **kw).numpy()
    L = librosa.cqt(x, sparsity=0, **kw)
    assert C.shape == D.shape == L.shape == (kw["n_bins"], 1 + T // hop)
    err_def = np.abs(C - D).max() / np.abs(D).max()  # every frame
    e = int(m.ker.lengths[0] / 2 / hop) + 2
    err_lib = _rel_err(C, L, e) if 2 * e < C.shape[1] else np.abs(C - L).max() / np.abs(L).max()
    print(f"hop {hop} levels {m.ker.levels}: vs definition {err_def:.2e}, vs librosa (interior) {err_lib:.2e}")
    assert err_def <= 1e-4
    assert err_lib <= 1e-4


def test_hop_layout():
    assert CQTKernels(SR, FMIN, 288, 36, 1.0, "hann", True, 2000).levels == [0, 1, 2, 3, 4, 4, 4, 4]
    assert CQTKernels(SR, FMIN, 288, 36, 1.0, "hann", True, 1001).levels == [0] * 8
    assert CQTKernels(SR, FMIN, 288, 36, 1.0, "hann", True, 512).levels == list(range(8))
    m = dc.CQT(hop_length=2000)
    assert m.own_octaves == [5, 6, 7] and m.octave_kernels_7.shape[:2] == (36, 2)


@pytest.mark.parametrize("kw", [dict(tuning=0.3), dict(tuning=-0.45), dict(norm=2), dict(norm=np.inf),
                                dict(norm=None), dict(norm=None, scale=False), dict(norm=0.5, tuning=0.1)])
def test_tuning_and_norm_against_librosa(kw):
    librosa = pytest.importorskip("librosa")
    x = _signal("noise")
    base = dict(sr=SR, hop_length=HOP, fmin=FMIN, n_bins=84, bins_per_octave=12)
    C = dc.CQT(**base, **kw).double()(torch.tensor(x)).numpy()
    L = librosa.cqt(x, sparsity=0, **base, **kw)
    D = cqt_definition(torch.tensor(x), **base, **kw).numpy()
    assert C.shape == L.shape
    assert _rel_err(C, L, 25) <= 1e-4
    assert np.abs(C - D).max() <= 1e-4 * np.abs(D).max()


def test_tuning_moves_fmin():
    m = dc.CQT(n_bins=36, fmin=440.0, tuning=0.5, bins_per_octave=12)
    assert m.frequencies[0] == pytest.approx(440.0 * 2 ** (0.5 / 12))


@pytest.mark.parametrize("dtype,x_dtype,out", [(torch.complex128, torch.float32, torch.complex128),
                                               (np.complex64, torch.float64, torch.complex64),
                                               (None, torch.float64, torch.complex128),
                                               (torch.complex128, torch.float32, torch.float64)])
def test_dtype(dtype, x_dtype, out):
    librosa = pytest.importorskip("librosa")
    kw = dict(sr=SR, hop_length=HOP, fmin=FMIN, n_bins=84, bins_per_octave=12)
    output = "magnitude" if not out.is_complex else "complex"
    x = _signal("chirp")
    C = dc.CQT(**kw, dtype=dtype, output=output)(torch.tensor(x, dtype=x_dtype))
    assert C.dtype == out
    L = librosa.cqt(x, sparsity=0, **kw, dtype=np.complex128)
    C = C.numpy()
    tol = 1e-4 if out in (torch.complex128, torch.float64) else 3e-4
    assert _rel_err(C, np.abs(L) if output == "magnitude" else L, 25) <= tol


@pytest.mark.parametrize("kw,exc,name", [
    (dict(n_bins=None), TypeError, "n_bins"), (dict(n_bins=0), ValueError, "n_bins"),
    (dict(n_bins=12.0), TypeError, "n_bins"), (dict(bins_per_octave=0), ValueError, "bins_per_octave"),
    (dict(hop_length=0), ValueError, "hop_length"), (dict(hop_length=2.5), TypeError, "hop_length"),
    (dict(hop_length=None), TypeError, "hop_length"), (dict(sr=0), ValueError, "sr"),
    (dict(sr="22050"), TypeError, "sr"), (dict(fmin=-1.0), ValueError, "fmin"),
    (dict(filter_scale=0), ValueError, "filter_scale"), (dict(tuning=None), TypeError, "tuning"),
    (dict(tuning=float("nan")), ValueError, "tuning"), (dict(norm="l1"), TypeError, "norm"),
    (dict(norm=-1), ValueError, "norm"), (dict(dtype="int32"), ValueError, "dtype"),
    (dict(dtype=torch.int32), ValueError, "dtype"), (dict(dtype="nonsense"), TypeError, "dtype"),
    (dict(window="nonsense"), ValueError, "window"), (dict(pad_mode="edge"), ValueError, "pad_mode"),
    (dict(output="db"), ValueError, "output"), (dict(scale=1), TypeError, "scale"),
    (dict(trainable="yes"), TypeError, "trainable"), (dict(n_bins=310), ValueError, "Nyquist"),
    (dict(downsample_filter=torch.ones(4)), ValueError, "downsample_filter"),
])
def test_bad_parameters(kw, exc, name):
    with pytest.raises(exc, match=name):
        dc.CQT(**kw)


def test_fmin_none_is_c1():
    assert dc.CQT(fmin=None).frequencies[0] == pytest.approx(FMIN)


def test_short_signals():
    """librosa raises for a short signal only when it early-downsamples, which this module does not: with
    zero padding any length works (T = 0 gives one silent frame); reflection needs one sample."""
    m = dc.CQT(hop_length=1001)
    assert m(torch.zeros(0)).shape == (288, 1)
    x = torch.randn(5, dtype=torch.float64)
    assert torch.allclose(m.double()(x), cqt_definition(x, hop_length=1001), atol=1e-6)
    with pytest.raises(ValueError, match="pad_mode='reflect'"):
        dc.CQT(pad_mode="reflect")(torch.zeros(3, 0))


@pytest.mark.parametrize("hop", [3, 6])
def test_gradcheck_odd_hops(hop):
    """hop 3: no decimation, every lower octave with its own kernels; hop 6: one decimation, then own kernels."""
    m = dc.CQT(sr=8000, hop_length=hop, fmin=400.0, n_bins=36, bins_per_octave=12, output="magnitude",
               trainable=True, trainable_filter=True, downsample_filter=dc.halfband_filter(0.378, 40.0)).double()
    names = [n for n, _ in m.named_parameters()]
    own = ["octave_kernels.0", "octave_kernels.1"] if hop == 3 else ["octave_kernels.0"]
    raised = [f"raised_kernels.{b}" for b in range(len(m.raised_blocks))]
    assert sorted(names) == sorted(["kernels", "downsample_filter"] + own + raised)
    assert (hop == 3) == (not raised)  # hop 6: octave 1 is decimated, its top bins computed at the full rate
    params = [p.detach().clone().requires_grad_() for _, p in m.named_parameters()]
    x = torch.randn(1, 120, dtype=torch.float64, requires_grad=True)

    def fn(x, *ps):
        return torch.func.functional_call(m, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(fn, (x, *params), atol=1e-6, fast_mode=True)
    # float32 forward + backward reaches every parameter (the filter only where the signal is decimated)
    m32 = dc.CQT(sr=8000, hop_length=hop, fmin=400.0, n_bins=36, bins_per_octave=12, output="magnitude",
                 trainable=True, trainable_filter=True)
    m32(torch.randn(2, 500)).sum().backward()
    for n, p in m32.named_parameters():
        if n == "downsample_filter" and m32.ker.n_decimations == 0:
            assert p.grad is None
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, n


def test_kept_matmuls_follow_the_kernels():
    """A CQT whose kernels take no gradient builds its matmul weights once per device and dtype (no copy, scaling or
    concatenation of kernels per call) and rebuilds them when a kernel changes in place or the module is converted."""
    torch.manual_seed(0)
    x = torch.randn(2, 4000, dtype=torch.float64)
    cqt = dc.CQT(SR, 64, 55.0, 60, 12)
    y = cqt(x)
    with CountOps() as ops:
        assert torch.equal(cqt(x), y)
    # (float64 input, float32 kernels: converted once) no scaling, one concatenation (the bins' assembly)
    assert "aten._to_copy" not in ops.counts and "aten.mul" not in ops.counts and ops.counts["aten.cat"] == 1
    kernels = [cqt.kernels, *cqt._own_weights(), *cqt._raised_weights()]
    with torch.no_grad():
        for k in kernels:
            k.mul_(2)  # exact: every product and sum doubles
    assert torch.equal(cqt(x), 2 * y)
    assert torch.allclose(cqt.double()(x), 2 * y, rtol=0, atol=1e-6 * y.abs().max())
    # trainable: rebuilt per call, the gradient reaches the kernels
    t = dc.CQT(SR, 64, 55.0, 60, 12, output="magnitude", trainable=True)
    t(x.float()).sum().backward()
    assert t.kernels.grad is not None and t.kernels.grad.abs().sum() > 0


def test_group_weights_node():
    """_GroupWeights (the matmul weights of every level as one autograd node): values are the blocks placed and
    scaled, gradients pass gradcheck and gradgradcheck, for a source used at several levels (the shared kernels),
    one placed whole and once (its gradient a slice) and one placed in part."""
    from dense_conv.audio.cqt import _GroupWeights
    torch.manual_seed(0)
    shared = torch.randn(6, 2, 5, dtype=torch.float64, requires_grad=True)
    whole = torch.randn(2, 2, 3, dtype=torch.float64, requires_grad=True)
    part = torch.randn(3, 2, 7, dtype=torch.float64, requires_grad=True)
    layout = ((2 + 4, 6, ((1, 0, 2, 0, 0, 1.0), (0, 2, 6, 2, 1, 2.0))),   # (rows, width, blocks)
              (3, 5, ((0, 0, 3, 0, 0, 0.5),)),
              (4, 8, ((2, 1, 3, 0, 1, 1.0), (0, 4, 6, 2, 3, 3.0))))
    outs = _GroupWeights.apply(layout, shared, whole, part)
    expected = torch.zeros(6, 2, 6, dtype=torch.float64)
    expected[0:2, :, 0:3] = whole.detach()
    expected[2:6, :, 1:6] = 2 * shared.detach()[2:6]
    assert torch.equal(outs[0], expected)
    assert torch.equal(outs[1], 0.5 * shared.detach()[0:3])
    fn = lambda *t: _GroupWeights.apply(layout, *t)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (shared, whole, part))
    assert torch.autograd.gradgradcheck(fn, (shared, whole, part))
