"""Round trip through the CQT and back (dense_conv.CQT, then dense_conv.icqt), drawn to a PNG.

    python examples/icqt_reconstruction.py [out.png]

Four panels: the signal (arpeggio of harmonic notes, then an exponential chirp, all inside the CQT's
range C1 .. B7), the CQT magnitude (252 bins, 36 per octave, hop 128), the reconstruction, and the error
(reconstruction - signal, y axis magnified 5 times), with the interior SNR in the title; the first and last
half second (where the lowest octave's frames are cut) are shaded. Prints the SNR and librosa.icqt's
on the same signal when librosa is installed.

The inverse (librosa's algorithm) needs frames that overlap in every bin: hop_length well below the
shortest filter, Q sr / f_max (290 samples here; with 12 bins per octave it is 96, and hop 256 leaves
the top octave's atoms apart: both inverses then reconstruct it at ~6 dB SNR).
"""
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import dense_conv  # noqa: E402
from dense_conv.audio import note_names  # noqa: E402

SR, HOP, N_BINS, BPO = 22050, 128, 252, 36


def test_signal(sr=SR):
    """Eight harmonic notes (C3 .. C6, 3 harmonics, decaying) then a 40 Hz .. 3 kHz chirp: float64 [T]."""
    seg = int(0.3 * sr)
    t = np.arange(seg) / sr
    env = np.minimum(1, t / 0.01) * np.exp(-4 * t)
    parts = [np.zeros(sr // 2)]
    for m in (48, 52, 55, 60, 64, 67, 72, 84):
        f = 440.0 * 2 ** ((m - 69) / 12)
        parts.append(env * sum(np.cos(2 * np.pi * f * h * t) / h for h in (1, 2, 3)) / 1.8)
    tc = np.arange(int(2.0 * sr)) / sr
    k = math.log(3000 / 40) / tc[-1]
    parts.append(0.5 * np.cos(2 * np.pi * 40 * (np.exp(k * tc) - 1) / k))
    parts.append(np.zeros(sr // 2))
    return np.concatenate(parts)


def snr_db(x, y, edge=SR // 2):
    """10 log10(|x|^2 / |y - x|^2) over x without `edge` samples at either end."""
    x, y = x[edge:-edge], y[edge:-edge]
    return 10 * math.log10(np.sum(x ** 2) / np.sum((y - x) ** 2))


def main(path="icqt_reconstruction.png"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = test_signal()
    cqt = dense_conv.CQT(SR, HOP, None, N_BINS, BPO).double()
    with torch.no_grad():
        C = cqt(torch.from_numpy(x))                                                    # [252, F] complex128
        y = dense_conv.icqt(C, sr=SR, hop_length=HOP, bins_per_octave=BPO, length=len(x)).numpy()
    snr = snr_db(x, y)
    print(f"dense_conv CQT -> icqt: interior SNR {snr:.1f} dB, max |error| {np.abs(y - x)[SR // 2:-SR // 2].max():.2e}")
    try:
        import librosa
        Cl = librosa.cqt(x, sr=SR, hop_length=HOP, n_bins=N_BINS, bins_per_octave=BPO)
        yl = librosa.icqt(Cl, sr=SR, hop_length=HOP, bins_per_octave=BPO, length=len(x))
        print(f"librosa.cqt -> librosa.icqt: interior SNR {snr_db(x, yl):.1f} dB")
    except ImportError:
        pass

    t = np.arange(len(x)) / SR
    fig, axes = plt.subplots(4, 1, figsize=(11, 9), sharex=True)
    axes[0].plot(t, x, lw=0.5)
    axes[0].set_title("signal")
    mag = np.abs(C.numpy())
    db = 20 * np.log10(np.maximum(mag, 1e-5 * mag.max()) / mag.max())
    axes[1].imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0,
                   extent=[0, len(x) / SR, -0.5, N_BINS - 0.5], interpolation="nearest")
    ticks = np.arange(0, N_BINS, BPO)
    axes[1].set_yticks(ticks)
    axes[1].set_yticklabels(note_names(cqt.frequencies[ticks]))
    axes[1].set_title(f"|CQT| (dB), {N_BINS} bins, {BPO}/octave, hop {HOP}")
    axes[2].plot(t, y, lw=0.5, color="C2")
    axes[2].set_title("dense_conv.icqt(CQT)")
    axes[3].plot(t, y - x, lw=0.5, color="C3")
    axes[3].set_ylim(-0.2, 0.2)
    axes[3].set_title(f"error (reconstruction - signal; y axis x5): interior SNR {snr:.1f} dB")
    axes[3].set_xlabel("time (s)")
    for ax in (axes[0], axes[2], axes[3]):
        for a, b in ((0, 0.5), (t[-1] - 0.5, t[-1])):
            ax.axvspan(a, b, color="0.9", zorder=0)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
