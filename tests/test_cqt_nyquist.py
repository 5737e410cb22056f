"""CQT layouts with the top bin near Nyquist, up to librosa's limit: the octave method against the definition.

The decimated octaves' top bins that the half-band decimator does not pass cleanly are computed at a higher
rate (CQTKernels.raised_bins). Targets (every frame, max|dC| / max|C|, float32 module against the float64
definition): <= 1e-4 while the top bin is <= 0.95 of Nyquist, <= 1e-3 up to librosa's limit (the top bin's
band edge at Nyquist). docs/cqt.md has the full table.
"""
import math

import numpy as np
import pytest
import torch

import dense_conv as dc
from dense_conv.audio.cqt import CQTKernels, _window_bandwidth
from dense_conv.reference import cqt_definition, cqt_octave_reference


def _layout(sr, bpo, top, octaves=4, hop=512):
    """CQT keywords whose top bin sits at `top` of Nyquist ('limit': librosa's, the band edge at Nyquist)."""
    n_bins = octaves * bpo
    if top == "limit":
        r = 2.0 ** (1.0 / bpo)
        q = (r * r + 1) / (r * r - 1)  # Q at filter_scale 1
        top = (1 - 1e-9) / (1 + 0.5 * _window_bandwidth("hann") / q)
    fmin = top * sr / 2 / 2 ** ((n_bins - 1) / bpo)
    return dict(sr=sr, hop_length=hop, fmin=fmin, n_bins=n_bins, bins_per_octave=bpo)


def _signals(sr, freqs, n):
    t = np.arange(n) / sr
    rng = np.random.default_rng(7)
    clicks = np.zeros(n)
    clicks[rng.integers(0, n, 12)] = rng.choice([-1.0, 1.0], 12)
    f0, f1 = 20.0, 0.99 * sr / 2
    k = math.log(f1 / f0) / (n / sr)
    return {
        "tones": sum(np.cos(2 * np.pi * f * t + 0.3 * i) for i, f in enumerate(freqs[::-5])) / len(freqs[::-5]),
        "between": sum(np.cos(2 * np.pi * f * t) for f in (freqs[:-1:4] * (freqs[1] / freqs[0]) ** 0.5)) / 20,
        "sweep": np.cos(2 * np.pi * f0 * (np.exp(k * t) - 1) / k),
        "noise": 0.3 * rng.standard_normal(n),
        "clicks": clicks,
    }


# (sr, bins per octave, top bin / Nyquist, hop): 12..60 bins per octave, 16..48 kHz, even, odd and mixed hops
LAYOUTS = [
    (22050, 36, 0.745, 512),     # the default layout's top bin (B8 at 22050 Hz)
    (16000, 12, 0.5, 512),
    (16000, 12, 0.9, 256),
    (16000, 12, 0.95, 96),       # 96 = 32 * 3: five decimations, then the octaves' own kernels
    (22050, 36, 0.8, 512),
    (22050, 36, 0.95, 1001),     # odd hop: no decimation at all
    (44100, 24, 0.95, 512),
    (48000, 60, 0.95, 2000),     # 2000 = 16 * 125
    (44100, 24, 0.963, 512),     # above 0.95: the 1e-3 target (nnAudio's layout, 55 Hz x 207 bins, is at 0.957)
    (16000, 12, "limit", 512),
    (22050, 36, "limit", 512),
    (48000, 60, "limit", 64),
]


@pytest.mark.parametrize("sr,bpo,top,hop", LAYOUTS)
def test_near_nyquist_against_definition(sr, bpo, top, hop):
    kw = _layout(sr, bpo, top, hop=hop)
    m = dc.CQT(**kw)
    tol = 1e-4 if top != "limit" and top <= 0.95 else 1e-3
    for name, x in _signals(sr, m.frequencies, sr).items():
        C = m(torch.tensor(x, dtype=torch.float32)).numpy()
        D = cqt_definition(torch.tensor(x), **kw).numpy()
        err = np.abs(C - D).max() / np.abs(D).max()  # every frame
        print(f"{sr} Hz, {bpo}/oct, top {top}, hop {hop}, {name}: {err:.1e} (raised {m.raised_bins})")
        assert err <= tol, name


@pytest.mark.parametrize("sr,bpo,top,hop", [(16000, 12, 0.95, 96), (44100, 24, "limit", 512)])
def test_near_nyquist_reflect_and_octave_reference(sr, bpo, top, hop):
    """pad_mode='reflect' against the definition, every frame; the pure-PyTorch octave reference (which builds
    the same module) against the custom op."""
    kw = _layout(sr, bpo, top, hop=hop)
    x = torch.tensor(_signals(sr, dc.CQT(**kw).frequencies, sr // 2)["noise"])
    C = dc.CQT(**kw, pad_mode="reflect").double()(x)
    D = cqt_definition(x, **kw, pad_mode="reflect")
    assert (C - D).abs().max() <= 1e-4 * D.abs().max()
    R = cqt_octave_reference(x, **kw, pad_mode="reflect")
    assert (C - R).abs().max() <= 1e-10 * R.abs().max()


def test_librosa_limit():
    """Any top bin whose band edge is at most Nyquist is accepted (librosa's check), the next one is not."""
    kw = _layout(22050, 36, "limit")
    ker = CQTKernels(kw["sr"], kw["fmin"], kw["n_bins"], 36, 1.0, "hann", True, 512)
    assert 0.99 * 11025 < ker.cutoff <= 11025
    dc.CQT(**kw)
    with pytest.raises(ValueError, match="Nyquist"):
        dc.CQT(**{**kw, "fmin": kw["fmin"] * 1.001})


def test_raised_layout():
    """Near Nyquist the top bins of every decimated octave are computed one level up (two with 12 bins per
    octave, whose short kernels reach further); the default filter stays the 83-tap half-band design."""
    m = dc.CQT(**_layout(22050, 36, 0.95))
    assert m.downsample_filter.numel() == 83
    assert sorted(m.raised_bins) == [(1, 1), (2, 1), (3, 1)]
    assert len(set(m.raised_bins.values())) == 1 and 10 < m.raised_bins[(1, 1)] < 36
    m12 = dc.CQT(**_layout(16000, 12, 0.95))
    assert (2, 2) in m12.raised_bins and m12.raised_bins[(1, 1)] == 12
    assert dc.CQT(hop_length=1001).raised_bins == {}  # no decimation, nothing to raise


def test_gradcheck_raised_kernels():
    """Trainable: the raised kernels (one and two levels up) are parameters; gradients in float64."""
    kw = _layout(8000, 12, 0.95, octaves=3, hop=8)
    m = dc.CQT(**kw, output="magnitude", trainable=True, trainable_filter=True).double()
    names = [n for n, _ in m.named_parameters()]
    assert {(2, 2), (1, 1)} <= set(m.raised_bins)
    assert sum(n.startswith("raised_kernels.") for n in names) == len(m.raised_blocks)
    params = [p.detach().clone().requires_grad_() for _, p in m.named_parameters()]
    x = torch.randn(1, 160, dtype=torch.float64, requires_grad=True)

    def fn(x, *ps):
        return torch.func.functional_call(m, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(fn, (x, *params), atol=1e-6, fast_mode=True)
    m32 = dc.CQT(**kw, output="magnitude", trainable=True)
    m32(torch.randn(2, 800)).sum().backward()
    for n, p in m32.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, n
