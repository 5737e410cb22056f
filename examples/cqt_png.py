"""Draws the CQT of a test signal (a C major arpeggio over three octaves, then a chirp) to a PNG.

    python examples/cqt_png.py [out.png]

Log-frequency axis labelled with note names (C1 .. B8), time in seconds, magnitude in dB.
"""
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import dense_conv  # noqa: E402
from dense_conv.audio import note_names  # noqa: E402


def test_signal(sr=22050):
    notes = [48, 52, 55, 60, 64, 67, 72, 76, 79, 84]  # MIDI: C3 E3 G3 C4 ... C6
    seg = int(0.35 * sr)
    t = np.arange(seg) / sr
    env = np.minimum(1, t / 0.01) * np.exp(-3 * t)
    parts = []
    for m in notes:
        f = 440.0 * 2 ** ((m - 69) / 12)
        parts.append(env * sum(np.cos(2 * np.pi * f * h * t) / h for h in (1, 2, 3)))
    tc = np.arange(int(2.5 * sr)) / sr
    k = math.log(6000 / 40) / tc[-1]
    parts.append(0.5 * np.cos(2 * np.pi * 40 * (np.exp(k * tc) - 1) / k))  # exponential chirp 40 Hz .. 6 kHz
    return np.concatenate(parts).astype(np.float32)


def main(path="cqt.png"):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sr, hop = 22050, 256
    cqt = dense_conv.CQT(sr=sr, hop_length=hop, output="magnitude")  # 288 bins C1..B8, 36 per octave
    x = torch.from_numpy(test_signal(sr))
    with torch.no_grad():
        mag = cqt(x).numpy()
    db = 20 * np.log10(np.maximum(mag, 1e-6 * mag.max()) / mag.max())
    fig, ax = plt.subplots(figsize=(12, 6))
    im = ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0,
                   extent=[0, x.numel() / sr, -0.5, db.shape[0] - 0.5], interpolation="nearest")
    bpo = cqt.bins_per_octave
    ticks = np.arange(0, cqt.n_bins, max(1, bpo // 3))  # every 4 semitones: C, E, G#
    ax.set_yticks(ticks)
    ax.set_yticklabels(note_names(cqt.frequencies[ticks]))
    ax.set_ylabel("note (log frequency)")
    ax.set_xlabel("time (s)")
    ax.set_title(f"dense_conv.CQT: {cqt.n_bins} bins, {bpo}/octave, hop {hop}")
    fig.colorbar(im, ax=ax, label="dB re max")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
