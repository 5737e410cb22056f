"""icqt / ICQT: librosa's icqt tests ported (librosa/tests/test_constantq.py), against librosa.icqt, gradients, errors.

nnAudio has no inverse CQT (its tests, Installation/tests/, invert only the STFT), so there is nothing of its
to port. librosa's tests build C with librosa.cqt; the ports build it with dense_conv.CQT (the pipeline this
module serves) and keep librosa's thresholds; test_matches_librosa_icqt feeds librosa.cqt's C to both inverses.
"""
import functools

import numpy as np
import pytest
import torch

import dense_conv as dc
from testing import CountOps, needs_gpu

librosa = pytest.importorskip("librosa")


def _sweep(sr, duration, fmin="C2", fmax="C4"):
    """librosa's make_signal: a sine whose frequency rises exponentially from fmin to fmax (note names)."""
    lo, hi = librosa.note_to_hz(fmin) / sr, librosa.note_to_hz(fmax) / sr
    return np.sin(np.cumsum(2 * np.pi * np.logspace(np.log10(lo), np.log10(hi), num=int(duration * sr))))


def _interior_rms(y, yinv, sr):
    """librosa's measure: RMS of the residual on the signal without sr // 2 samples at either end."""
    return float(np.sqrt(np.mean((y[sr // 2:-sr // 2] - yinv[sr // 2:-sr // 2]) ** 2)))


@functools.lru_cache(maxsize=None)
def _cqt(sr, hop, n_bins, bpo, scale, dtype=torch.float32):
    return dc.CQT(sr, hop, None, n_bins, bpo, scale=scale).to(dtype)


# librosa test_icqt (res_type dropped: not supported): 6% interior RMSE
@pytest.mark.parametrize("sr", [22050, 16000])
@pytest.mark.parametrize("over_sample", [1, 3])
@pytest.mark.parametrize("scale", [False, True])
@pytest.mark.parametrize("hop_length", [384, 512])
def test_librosa_icqt(sr, over_sample, scale, hop_length):
    y = _sweep(sr, 1.5)
    bpo = 12 * over_sample
    C = _cqt(sr, hop_length, 7 * bpo, bpo, scale)(torch.tensor(y, dtype=torch.float32))
    yinv = dc.icqt(C, sr=sr, scale=scale, hop_length=hop_length, bins_per_octave=bpo, length=len(y))
    assert yinv.shape == (len(y),) and yinv.dtype == torch.float32
    assert _interior_rms(y, yinv.numpy(), sr) <= 0.06


# librosa test_icqt_nolength: no length, then librosa.util.fix_length; 6% interior RMSE
@pytest.mark.parametrize("sr", [22050, 16000])
@pytest.mark.parametrize("hop_length", [384, 512])
def test_librosa_icqt_nolength(sr, hop_length):
    y = _sweep(sr, 1.5)
    C = _cqt(sr, hop_length, 84, 12, True)(torch.tensor(y, dtype=torch.float32))
    yinv = dc.icqt(C, sr=sr, hop_length=hop_length, bins_per_octave=12)
    assert yinv.shape == (hop_length * (C.shape[-1] - 1),)
    yinv = librosa.util.fix_length(yinv.numpy(), size=len(y))
    assert _interior_rms(y, yinv, sr) <= 0.06


# librosa test_icqt_dtype: dtype picks the output's precision
@pytest.mark.parametrize("dtype,expected", [(np.float32, torch.float32), (np.float64, torch.float64),
                                            (torch.float64, torch.float64), (None, torch.float32)])
def test_librosa_icqt_dtype(dtype, expected):
    sr = 22050
    C = _cqt(sr, 512, 84, 12, True)(torch.tensor(_sweep(sr, 1.5), dtype=torch.float32))
    assert dc.icqt(C, sr=sr, dtype=dtype).dtype == expected
    assert dc.icqt(C.to(torch.complex128), sr=sr).dtype == torch.float64


# librosa test_icqt_odd_hop: a hop of 1001 (no decimation: every octave at the full rate) runs
def test_librosa_icqt_odd_hop():
    sr = 11025
    y = librosa.tone(110.0, sr=sr, duration=0.75)
    C = dc.CQT(sr, 1001, None, 84, 12)(torch.tensor(y, dtype=torch.float32))
    yi = dc.icqt(C, sr=sr, hop_length=1001, length=len(y))
    assert yi.shape == (len(y),) and torch.isfinite(yi).all()


# Same C (librosa.cqt's) into librosa.icqt (sparsity=0) and icqt: the same function away from the ends, where
# the resamplers differ (librosa's soxr of each truncated octave, the half-band filter here). hop 384 is
# left out: there librosa's frame count alternates between two integers (see the module docstring).
# Measured (interior max difference / max|y|): 4e-5 .. 1.4e-4 with the Hann window; 1.1e-2 with Hamming,
# whose kernels leak more into negative frequencies, which librosa's one-sided inverse FFT drops and the
# time-domain adjoint keeps (the reconstruction errors agree to 4 digits all the same).
LAYOUTS = [(dict(n_bins=84, bins_per_octave=12), 1e-3),
           (dict(n_bins=252, bins_per_octave=36), 1e-3),
           (dict(n_bins=60, bins_per_octave=12, fmin=65.40639132514966, hop_length=256, scale=False), 1e-3),
           (dict(n_bins=48, bins_per_octave=24, fmin=110.0, filter_scale=0.8, norm=2, tuning=0.3), 1e-3),
           (dict(n_bins=48, bins_per_octave=24, fmin=110.0, window="hamming"), 2e-2),
           (dict(n_bins=96, bins_per_octave=12, sr=44100, hop_length=1024), 1e-3)]


@pytest.mark.parametrize("kw,tol", LAYOUTS)
def test_matches_librosa_icqt(kw, tol):
    kw = {"sr": 22050, "hop_length": 512, **kw}
    sr, n_bins = kw["sr"], kw.pop("n_bins")
    y = _sweep(sr, 2.0, "C1", "C8")
    C = librosa.cqt(y, n_bins=n_bins, sparsity=0, **kw)
    L = librosa.icqt(C, sparsity=0, length=len(y), **kw)
    ours = dc.icqt(torch.tensor(C), length=len(y), **kw).numpy()
    err = np.abs(ours - L)[sr // 2:-sr // 2].max() / np.abs(L).max()
    print(f"{kw}: interior max|icqt - librosa.icqt| / max|librosa.icqt| = {err:.2e}")
    assert err <= tol
    # and the reconstruction is at least as good as librosa's
    assert _interior_rms(y, ours, sr) <= 1.01 * _interior_rms(y, L, sr)


# librosa.icqt's reconstruction error on librosa's test layouts (its res_type default, soxr_hq), against icqt's
# of dense_conv.CQT's C: at least as good everywhere, much better where n_fft is not a multiple of the octave's
# hop (384, 96, 1001). hop 96 = 32 * 3: the two lowest octaves share the last rate; hop 1001: no decimation.
@pytest.mark.parametrize("sr,bpo,hop", [(22050, 12, 384), (22050, 12, 512), (16000, 36, 384), (16000, 36, 512),
                                        (22050, 12, 96), (22050, 24, 1001)])
def test_reconstruction_at_least_librosas(sr, bpo, hop):
    y = _sweep(sr, 1.5)
    L = librosa.icqt(librosa.cqt(y, sr=sr, n_bins=7 * bpo, bins_per_octave=bpo, hop_length=hop), sr=sr,
                     hop_length=hop, bins_per_octave=bpo, length=len(y))
    C = _cqt(sr, hop, 7 * bpo, bpo, True, torch.float64)(torch.tensor(y))
    ours = dc.icqt(C, sr=sr, hop_length=hop, bins_per_octave=bpo, length=len(y)).numpy()
    e_ours, e_librosa = _interior_rms(y, ours, sr), _interior_rms(y, L, sr)
    print(f"sr {sr} bpo {bpo} hop {hop}: interior RMSE icqt {e_ours:.4f}, librosa.icqt {e_librosa:.4f}")
    assert e_ours <= 1.01 * e_librosa


def test_batch_shapes_module_and_length():
    sr, hop = 22050, 256
    x = torch.randn(2, 3, 5000, dtype=torch.float64)
    C = dc.CQT(sr, hop, None, 84, 12).double()(x)  # [2, 3, 84, 20]
    m = dc.ICQT(sr, hop, None, 84, 12)
    y = m(C)
    assert y.shape == (2, 3, hop * (C.shape[-1] - 1)) and y.dtype == torch.float64
    assert torch.equal(dc.icqt(C, hop_length=hop), y)
    assert torch.allclose(m(C[1, 2]), y[1, 2], rtol=0, atol=1e-12)
    assert torch.allclose(m(C[1]), y[1], rtol=0, atol=1e-12)
    # length cuts or zero-pads, after librosa's cut of the frames that cannot reach the first length samples
    assert m(C, length=100).shape == (2, 3, 100)
    long = m(C, length=6000)
    assert long.shape == (2, 3, 6000) and torch.equal(long[..., y.shape[-1]:], torch.zeros(2, 3, 6000 - y.shape[-1]))
    # one frame: no samples
    assert m(C[..., :1]).shape == (2, 3, 0)


def _small(hop):
    """sr 8000, 24 bins from 400 Hz (two octaves): hop 8 decimates once, hop 3 not at all."""
    return dict(sr=8000, hop_length=hop, fmin=400.0, bins_per_octave=12)


@pytest.mark.parametrize("hop", [8, 3])
def test_gradcheck(hop):
    torch.manual_seed(0)
    C = torch.randn(24, 4, dtype=torch.complex128, requires_grad=True)
    fn = functools.partial(dc.icqt, **_small(hop))
    assert torch.autograd.gradcheck(fn, (C,))
    assert torch.autograd.gradcheck(lambda c: fn(c, length=30), (C,))
    assert torch.autograd.gradgradcheck(fn, (C,), fast_mode=True)


def test_linear_in_c():
    torch.manual_seed(1)
    A, B = torch.randn(2, 24, 9, dtype=torch.complex128).unbind(0)
    f = functools.partial(dc.icqt, **_small(8))
    assert torch.allclose(f(2 * A - 3j * B), 2 * f(A) - 3 * f(1j * B), atol=1e-12)


def test_repeated_call_converts_no_constants():
    """The synthesis matrices, the filter and the edge scales are converted once per device, dtype and frame count
    (the functional form's module keeps float64 buffers on the CPU): a repeated call dispatches no conversion and
    no index arithmetic, one matmul per octave (on a GPU no host-to-device copy, ~16 launches fewer per octave)."""
    C = dc.CQT(22050, 512, None, 84, 12)(torch.randn(2, 22050))  # 7 octaves
    first = dc.icqt(C)
    with CountOps() as ops:
        again = dc.icqt(C)
    assert torch.equal(again, first)
    assert not {"aten._to_copy", "aten.lift_fresh", "aten.arange", "aten.div", "aten.clamp"} & set(ops.counts)
    assert ops.counts["aten.mm"] == 7
    # a module moved or converted drops what it converted from its old buffers, and stays right
    m = dc.ICQT(22050, 512, None, 84, 12)
    y = m(C)
    assert m.float()(C).dtype == torch.float32 and torch.allclose(m(C), y, rtol=0, atol=1e-6 * y.abs().max())


@needs_gpu
def test_cuda_matches_cpu():
    C = dc.CQT(22050, 512, None, 84, 12)(torch.randn(2, 22050))
    y = dc.icqt(C)
    yc = dc.icqt(C.cuda())
    assert yc.device.type == "cuda"
    assert torch.allclose(yc.cpu(), y, rtol=0, atol=1e-5 * y.abs().max())


C84 = torch.zeros(84, 5, dtype=torch.complex64)


@pytest.mark.parametrize("args,kw,exc,match", [
    ((np.zeros((84, 5), np.complex64),), {}, TypeError, "torch.Tensor"),
    ((torch.zeros(84, 5),), {}, TypeError, "complex64 or complex128"),
    ((torch.zeros(5, dtype=torch.complex64),), {}, ValueError, "n_bins, F"),
    ((torch.zeros(1, 1, 1, 84, 5, dtype=torch.complex64),), {}, ValueError, "n_bins, F"),
    ((torch.zeros(84, 0, dtype=torch.complex64),), {}, ValueError, "one frame"),
    ((C84,), dict(sr=0), ValueError, "sr"),
    ((C84,), dict(hop_length=0), ValueError, "hop_length"),
    ((C84,), dict(hop_length=2.5), TypeError, "hop_length"),
    ((C84,), dict(bins_per_octave=0), ValueError, "bins_per_octave"),
    ((C84,), dict(fmin=-1.0), ValueError, "fmin"),
    ((C84,), dict(filter_scale=0), ValueError, "filter_scale"),
    ((C84,), dict(norm="l1"), TypeError, "norm"),
    ((C84,), dict(window="nonsense"), ValueError, "window"),
    ((C84,), dict(window={"a": 1}), ValueError, "window"),
    ((C84,), dict(dtype="int32"), ValueError, "dtype"),
    ((C84,), dict(scale=1), TypeError, "scale"),
    ((C84,), dict(tuning=None), TypeError, "tuning"),
    ((C84,), dict(length=0), ValueError, "length"),
    ((C84,), dict(length=2.5), TypeError, "length"),
    ((C84,), dict(length=True), TypeError, "length"),
    ((torch.zeros(310, 5, dtype=torch.complex64),), dict(bins_per_octave=36), ValueError, "Nyquist"),
])
def test_bad_input(args, kw, exc, match):
    with pytest.raises(exc, match=match):
        dc.icqt(*args, **kw)


def test_module_checks_bins():
    with pytest.raises(ValueError, match="n_bins=84"):
        dc.ICQT()(torch.zeros(72, 5, dtype=torch.complex64))
    with pytest.raises(TypeError, match="ICQT: n_bins"):
        dc.ICQT(n_bins=None)


def test_torch_compile_matches_eager():
    """CQT (kept operands, or built per call when trainable) and ICQT (converted constants) trace under
    torch.compile and give eager's values and gradients."""
    torch.manual_seed(0)
    x = torch.randn(2, 4000)
    for trainable in (False, True):
        cqt = dc.CQT(22050, 64, 55.0, 60, 12, output="magnitude", trainable=trainable)
        compiled = torch.compile(cqt, backend="aot_eager")
        assert torch.equal(compiled(x), cqt(x))
    compiled(x).sum().backward()
    grad = cqt.kernels.grad.clone()
    cqt.zero_grad()
    cqt(x).sum().backward()
    assert torch.equal(grad, cqt.kernels.grad)
    C = dc.CQT(22050, 64, 55.0, 60, 12)(x)
    m = dc.ICQT(22050, 64, 55.0, 60, 12)
    assert torch.equal(torch.compile(m, backend="aot_eager")(C, length=4000), m(C, length=4000))
