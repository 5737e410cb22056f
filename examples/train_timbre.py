"""Trains a small timbre classifier in the user's signal model, on synthetic notes made here (no downloads).

    python examples/train_timbre.py [--steps 300] [--batch 32] [--device cpu|cuda] [--seed 0]
                                    [--plot docs/train_timbre.png] [--reference]

The model (TimbreNet) follows the user's idea: a CQT spectrogram is an *impulse map* (where and at
which pitch notes start) convolved with a *response* (what a note of this instrument looks like:
its harmonics stacked above the fundamental, its attack and decay over the frames).

    audio [B, T] -> CQT (trainable kernels) -> log magnitude S [B, 1, bins, frames]
    S -> impulse head -> impulse [B, Ci, bins, frames]      (pitch-equivariant: convolutions)
    S -> response head -> response [B, Cr, Hr, Wr]          (pitch-invariant: pooled over bins)
    DenseMix(response, impulse)         every impulse channel * every response, mixed to L1 channels
    FactoredMix(response, that)         the factored form of the same identity, one more layer
    pooled over bins and frames -> instrument logits        (pitch-invariant)

In a CQT a pitch change is a shift along the bins, which every stage above commutes with (up to
the edges), so the label it predicts does not depend on the pitch.

The data: each instrument is a harmonic series with its own spectral envelope over the harmonic
numbers (roll-off, odd/even balance, a formant-like bump), attack and decay times and a little
inharmonicity; each note draws a random pitch, loudness, small variations of these, and noise.
The held-out notes are pitched above every training note (MIDI 63-69 against 45-63).

--reference runs the same model on the pure-PyTorch reference ops (dense_conv.reference: the user's
conv_transpose loop, the user's grouped sparse conv, the reference decimator in the CQT), which
need no compiled extension; tests/test_train_timbre.py checks both give the same loss curve.

Printed last: `loss: <first step> -> <mean of the last 10 steps>`, then the held-out accuracy.
A run is reproducible for a given --seed and number of CPU threads (float32 sums in the convolutions
are ordered by the thread split, so 1 and 2 threads end at slightly different figures).
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from dense_conv import CQT, DenseMix, FactoredMix  # noqa: E402
from dense_conv.reference import (dense_conv_transpose_loop, octave_downsample_reference,  # noqa: E402
                                  sparse_grouped)

SR = 11025
DURATION = 0.6          # seconds per note
HOP = 128               # CQT hop: 87 frames a second, 52 frames a note
FMIN = 110.0            # A2
BINS_PER_OCTAVE = 12
N_BINS = 60             # 5 octaves, A2 .. G#7
# MIDI pitches of the fundamentals (harmonics reach the top bins). The held-out notes lie above every
# training pitch: the classifier has to recognise an instrument at pitches it never heard.
TRAIN_PITCHES = (45, 63)     # A2 .. D#4
HELD_OUT_PITCHES = (63, 69)  # D#4 .. A4

# Per instrument: spectral envelope over harmonic numbers h = 1..N (amplitude h^-rolloff, odd/even
# balance, a Gaussian bump at harmonic `formant`), attack (s), decay time constant of the fundamental (s),
# inharmonicity B (partial h at h*f0*sqrt(1 + B h^2)).
INSTRUMENTS = {
    "flute":    dict(rolloff=2.5, even=1.0, formant=None, attack=0.08, decay=1.5, inharm=0.0),
    "clarinet": dict(rolloff=1.0, even=0.1, formant=None, attack=0.04, decay=2.0, inharm=0.0),
    "bowed":    dict(rolloff=1.0, even=1.0, formant=None, attack=0.15, decay=2.0, inharm=0.0),
    "brass":    dict(rolloff=0.5, even=1.0, formant=4.0, attack=0.05, decay=1.0, inharm=0.0),
    "piano":    dict(rolloff=1.5, even=1.0, formant=None, attack=0.003, decay=0.35, inharm=4e-4),
    "marimba":  dict(rolloff=3.0, even=1.0, formant=4.0, attack=0.002, decay=0.12, inharm=0.0),
}
N_HARMONICS = 16


def make_notes(n: int, seed: int, sr: int = SR, duration: float = DURATION, pitches=TRAIN_PITCHES):
    """n random notes of len(INSTRUMENTS) instruments, balanced: (audio [n, T] float32, labels [n] int64).

    pitches: the (low, high) MIDI range of the fundamentals, drawn uniformly (not only semitones).

    Deterministic in `seed`: numpy's PCG64 draws every random number, torch (float32) sums the partials."""
    rng = np.random.default_rng(seed)
    names = list(INSTRUMENTS)
    labels = rng.permutation(np.arange(n) % len(names))
    T = int(round(sr * duration))
    h = np.arange(1, N_HARMONICS + 1)
    amps, freqs, phases = (np.empty((n, N_HARMONICS)) for _ in range(3))
    attacks, decays, onsets, gains = (np.empty((n, 1)) for _ in range(4))
    for i, label in enumerate(labels):
        p = INSTRUMENTS[names[label]]
        jitter = np.exp(rng.normal(0.0, [0.1, 0.1, 0.2, 0.2]))  # relative variations of the note's timbre
        f0 = 440.0 * 2.0 ** ((rng.uniform(*pitches) - 69) / 12)
        amp = h ** -(p["rolloff"] * jitter[0]) * np.where(h % 2 == 0, p["even"], 1.0)
        if p["formant"] is not None:
            amp = amp + 2.0 * np.exp(-0.5 * (h - p["formant"] * jitter[1]) ** 2) / h
        freqs[i] = h * f0 * np.sqrt(1.0 + p["inharm"] * h ** 2)
        amps[i] = np.where(freqs[i] < 0.45 * sr, amp, 0.0)
        attacks[i], decays[i] = p["attack"] * jitter[2], p["decay"] * jitter[3]
        onsets[i] = rng.uniform(0.0, 0.1)
        gains[i] = 10.0 ** (rng.uniform(-20.0, 0.0) / 20.0)  # loudness, -20 .. 0 dB
        phases[i] = rng.uniform(0.0, 2 * np.pi, N_HARMONICS)
    noise = 10.0 ** (-45.0 / 20.0) * rng.standard_normal((n, T))  # -45 dB full scale
    audio = torch.empty(n, T)
    for lo in range(0, n, 8):  # small chunks: [notes, harmonics, T] stays in the cache (4x faster than 64)
        audio[lo:lo + 8] = _synthesize(*(torch.from_numpy(a[lo:lo + 8]).float() for a in
                                         (amps, freqs, phases, attacks, decays, onsets, gains, noise)), sr)
    return audio, torch.from_numpy(labels.astype(np.int64))


def _synthesize(amps, freqs, phases, attacks, decays, onsets, gains, noise, sr):
    h = torch.arange(1, amps.shape[1] + 1, dtype=torch.float32)
    t = (torch.arange(noise.shape[1], dtype=torch.float32) / sr)[None] - onsets  # [n, T], from the onset
    tt = t.clamp_min(0.0)[:, None]                                                 # [n, 1, T]
    # higher partials die faster, as on real strings and bars
    rate = (1.0 + 0.15 * (h - 1))[None, :, None] / decays[:, :, None]
    env = (tt / attacks[:, :, None]).clamp_max(1.0) * torch.exp(-tt * rate)      # [n, harmonics, T]
    x = (amps[:, :, None] * env * torch.sin(2 * np.pi * freqs[:, :, None] * tt + phases[:, :, None])).sum(1)
    x = x * (t >= 0)
    return x * gains / x.abs().amax(dim=1, keepdim=True) + noise


class TimbreNet(nn.Module):
    """CQT -> impulse map and per-sample response -> DenseMix -> FactoredMix -> instrument logits.

    reference=True computes the same function with the pure-PyTorch references (see the module docstring).
    """

    def __init__(self, n_classes: int = len(INSTRUMENTS), impulse_channels: int = 4, response_channels: int = 4,
                 response_size=(12, 8), mixed_channels: int = 8, trunk_channels: int = 8, n_bins: int = N_BINS,
                 reference: bool = False):
        super().__init__()
        self.reference = reference
        self.response_channels, self.response_size = response_channels, tuple(response_size)
        self.cqt = CQT(sr=SR, hop_length=HOP, fmin=FMIN, n_bins=n_bins, bins_per_octave=BINS_PER_OCTAVE,
                       output="magnitude", trainable=True)
        self.trunk = nn.Conv2d(1, trunk_channels, 5, padding=2)
        self.impulse_head = nn.Conv2d(trunk_channels, impulse_channels, 3, padding=1)
        hr, wr = self.response_size
        # the trunk's features, max over bins (pitch-invariant), average-pooled to wr frames -> a response
        self.response_head = nn.Linear(trunk_channels * wr, response_channels * hr * wr)
        self.dense_mix = DenseMix(impulse_channels, response_channels, mixed_channels)
        self.factored_mix = FactoredMix(mixed_channels, response_channels, mixed_channels)
        self.classifier = nn.Linear(2 * mixed_channels, n_classes)

    def spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """Log CQT magnitude [B, 1, bins, frames] of audio [B, T], independent of the note's loudness."""
        audio = audio / audio.abs().amax(dim=-1, keepdim=True)
        mag = self.cqt.transform(audio, octave_downsample_reference) if self.reference else self.cqt(audio)
        return torch.log1p(mag).unsqueeze(1)

    def impulse_and_response(self, spec: torch.Tensor):
        features = F.relu(self.trunk(spec))                                    # [B, trunk, bins, frames]
        impulse = F.relu(self.impulse_head(features))                          # [B, Ci, bins, frames]
        hr, wr = self.response_size
        profile = F.adaptive_avg_pool1d(features.amax(dim=2), wr)               # [B, trunk, wr]
        response = self.response_head(profile.flatten(1)) / math.sqrt(hr * wr)
        return impulse, response.view(-1, self.response_channels, hr, wr)      # [B, Cr, hr, wr]

    def mix(self, response: torch.Tensor, impulse: torch.Tensor) -> torch.Tensor:
        if not self.reference:
            return self.factored_mix(response, F.relu(self.dense_mix(response, impulse)))
        # the user's formulas: y_l = sum_jk a_ljk (x_j * h_k), then y_l = (A x)_l * (B h)_l
        a = self.dense_mix.weight
        y = F.conv2d(dense_conv_transpose_loop(response, impulse), a.reshape(a.shape[0], -1, 1, 1))
        u = torch.einsum("lj,bjhw->blhw", self.factored_mix.impulse_mix, F.relu(y))
        v = torch.einsum("lk,bkhw->blhw", self.factored_mix.response_mix, response)
        return sparse_grouped(v, u)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        impulse, response = self.impulse_and_response(self.spectrogram(audio))
        y = self.mix(response, impulse)                                         # [B, L, bins, frames]
        pooled = torch.cat([y.mean(dim=(2, 3)), y.amax(dim=(2, 3))], dim=1)     # pitch-invariant
        return self.classifier(pooled)


def make_optimizer(model: TimbreNet, lr: float = 3e-3) -> torch.optim.Optimizer:
    # the CQT kernels start as a correct CQT: a smaller step keeps them one while the rest learns
    cqt = list(model.cqt.parameters())
    rest = [p for name, p in model.named_parameters() if not name.startswith("cqt.")]
    return torch.optim.Adam([{"params": rest, "lr": lr}, {"params": cqt, "lr": lr * 0.1}])


def batches(n_examples: int, batch: int, steps: int, seed: int):
    """`steps` index batches drawn without replacement within each pass over the examples."""
    rng = np.random.default_rng(seed)
    order = np.empty(0, dtype=np.int64)
    for _ in range(steps):
        if len(order) < batch:
            order = np.concatenate([order, rng.permutation(n_examples)])
        idx, order = order[:batch], order[batch:]
        yield torch.from_numpy(idx)


def train(model, audio, labels, steps, batch, seed, device="cpu", eval_every=0, eval_set=None, progress=False):
    """Adam on the cross-entropy, learning rate annealed to 0 over `steps` (a cosine: the held-out accuracy
    settles instead of ending wherever the last steps left it);
    returns {'loss': [...], 'batch_acc': [...], 'eval': [(step, acc), ...]}."""
    opt = make_optimizer(model)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    history = {"loss": [], "batch_acc": [], "eval": []}
    if eval_set is not None and eval_every:
        history["eval"].append((0, accuracy(model, *eval_set, device=device)))
    it = batches(len(labels), batch, steps, seed)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, total=steps, desc="train", unit="step")
    for step, idx in enumerate(it, start=1):
        x, y = audio[idx].to(device), labels[idx].to(device)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        history["loss"].append(loss.item())
        history["batch_acc"].append((logits.argmax(1) == y).float().mean().item())
        if progress:
            it.set_postfix(loss=f"{history['loss'][-1]:.3f}")
        if eval_set is not None and eval_every and (step % eval_every == 0 or step == steps):
            history["eval"].append((step, accuracy(model, *eval_set, device=device)))
    return history


@torch.no_grad()
def accuracy(model, audio, labels, device="cpu", batch=256) -> float:
    was_training = model.training
    model.eval()
    correct = sum((model(audio[i:i + batch].to(device)).argmax(1).cpu() == labels[i:i + batch]).sum().item()
                  for i in range(0, len(labels), batch))
    model.train(was_training)
    return correct / len(labels)


def plot(history, path, chance):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(1, len(history["loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot(steps, history["loss"], lw=0.8, alpha=0.5, label="batch")
    ax_loss.plot(steps, _smooth(history["loss"]), lw=1.8, label="mean of 10")
    ax_loss.set(xlabel="step", ylabel="cross-entropy", title="training loss", yscale="log")
    ax_loss.legend()
    ax_acc.plot(steps, _smooth(history["batch_acc"]), lw=1.5, label="training batches (mean of 10)")
    if history["eval"]:
        s, a = zip(*history["eval"])
        ax_acc.plot(s, a, "o-", lw=1.8, label="held-out notes (higher pitches)")
    ax_acc.axhline(chance, color="gray", ls="--", lw=1, label="chance")
    ax_acc.set(xlabel="step", ylabel="accuracy", title="instrument accuracy", ylim=(0, 1.02))
    ax_acc.legend(loc="lower right")
    fig.suptitle("TimbreNet: CQT -> impulse * response -> DenseMix -> FactoredMix -> instrument")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _smooth(values, n=10):
    v = np.asarray(values, dtype=np.float64)
    c = np.cumsum(np.concatenate([[0.0], v]))
    lo = np.maximum(np.arange(1, len(v) + 1) - n, 0)
    return (c[1:] - c[lo]) / (np.arange(1, len(v) + 1) - lo)


def main(argv=None):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the same run on a GPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-notes", type=int, default=3000)
    parser.add_argument("--test-notes", type=int, default=600)
    parser.add_argument("--plot", default=os.path.join(here, "docs", "train_timbre.png"))
    parser.add_argument("--reference", action="store_true", help="pure-PyTorch reference ops (slower)")
    args = parser.parse_args(argv)

    wall, cpu = time.perf_counter(), time.process_time()
    torch.manual_seed(args.seed)
    train_audio, train_labels = make_notes(args.train_notes, seed=2 * args.seed)
    test_audio, test_labels = make_notes(args.test_notes, seed=2 * args.seed + 1, pitches=HELD_OUT_PITCHES)
    model = TimbreNet(reference=args.reference).to(args.device)
    history = train(model, train_audio, train_labels, args.steps, args.batch, args.seed, args.device,
                    eval_every=max(1, args.steps // 10), eval_set=(test_audio, test_labels), progress=True)
    chance = 1.0 / len(INSTRUMENTS)
    plot(history, args.plot, chance)
    held_out = history["eval"][-1][1]
    print(f"{len(INSTRUMENTS)} instruments; {args.train_notes} training notes (MIDI {TRAIN_PITCHES[0]}-"
          f"{TRAIN_PITCHES[1]}), {args.test_notes} held-out notes (MIDI {HELD_OUT_PITCHES[0]}-{HELD_OUT_PITCHES[1]}); "
          f"{args.steps} steps of {args.batch} on {args.device}")
    print(f"time: {time.perf_counter() - wall:.1f} s wall, {time.process_time() - cpu:.1f} s process CPU, "
          f"{torch.get_num_threads()} threads")
    print(f"wrote {args.plot}")
    last = history["loss"][-10:]
    print(f"loss: {history['loss'][0]:.4f} -> {sum(last) / len(last):.4f}")
    print(f"held-out accuracy: {held_out:.2f} (chance {chance:.2f})")
    return history


if __name__ == "__main__":
    main()
