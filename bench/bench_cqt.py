"""CQT benchmark: dense_conv.CQT against librosa.cqt and nnAudio CQT2010v2, dense_conv.VQT against librosa.vqt,
dense_conv.icqt against librosa.icqt (librosa and nnAudio: optional dependencies).

    python bench/bench_cqt.py [--quick]

Cases (22050 Hz, 288 bins C1..B8, 36 per octave, hop 512): 60 s forward; 60 s trainable
forward+backward (magnitude output, loss = sum); a batch of 16 clips of 5 s forward; the VQT (gamma=None,
librosa's ERB default, same bins) 60 s forward; the inverse of the 60 s CQT (complex64, length given;
librosa.icqt with its defaults, as a user calls it). Timed with
bench/timing.py, as bench.py is. `run()` returns rows (dicts) and Measurements for the main benchmark;
missing librosa/nnAudio give rows with time None and a note.
"""
import argparse
import os
import sys
import warnings

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
import dense_conv  # noqa: E402
from timing import FORWARD, FORWARD_BACKWARD, measure, print_compare  # noqa: E402

SR, HOP, NBINS, BPO = 22050, 512, 288, 36
FMIN = 32.70319566257483
# case -> (the torch.utils.benchmark label: the transform and the audio; the direction)
CASES = {
    "60 s forward": ("CQT 60 s", FORWARD),
    "60 s trainable fwd+bwd": ("CQT 60 s", FORWARD_BACKWARD),
    "16 x 5 s forward": ("CQT 16 x 5 s", FORWARD),
    "VQT 60 s forward": ("VQT 60 s", FORWARD),
    "60 s inverse": ("CQT 60 s inverse", FORWARD),
}


def _librosa():
    try:
        import librosa
        return librosa
    except ImportError:
        return None


def _nnaudio():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from nnAudio.features import CQT2010v2
        return CQT2010v2
    except ImportError:
        return None


def run(quick=False, device="cpu"):
    """Returns (rows, measurements): rows are dicts name, case, seconds, note."""
    torch.manual_seed(0)
    mrt = 0.3 if quick else 1.0
    x60 = torch.randn(SR * 60, device=device) * 0.1
    xb = torch.randn(16, SR * 5, device=device) * 0.1
    rows, ms = [], []

    def add(name, case, fn, note=""):
        if fn is None:
            rows.append(dict(name=name, case=case, seconds=None, note=note))
            return
        label, direction = CASES[case]
        m = measure(fn, label=label, sub_label=name, description=direction, env=device, min_run_time=mrt)
        ms.append(m)
        rows.append(dict(name=name, case=case, seconds=m.median, note=note))

    ours = dense_conv.CQT(SR, HOP, FMIN, NBINS, BPO).to(device)
    ours_t = dense_conv.CQT(SR, HOP, FMIN, NBINS, BPO, output="magnitude", trainable=True).to(device)
    ours_v = dense_conv.VQT(SR, HOP, FMIN, NBINS, BPO).to(device)

    def ours_fb(x=x60):
        ours_t.zero_grad(set_to_none=True)
        ours_t(x).sum().backward()

    with torch.no_grad():
        add("dense_conv.CQT", "60 s forward", lambda: ours(x60))
        add("dense_conv.CQT", "16 x 5 s forward", lambda: ours(xb))
        add("dense_conv.VQT", "VQT 60 s forward", lambda: ours_v(x60))
    add("dense_conv.CQT", "60 s trainable fwd+bwd", ours_fb)
    with torch.no_grad():
        C60 = ours(x60)
        icqt_kw = dict(sr=SR, hop_length=HOP, fmin=FMIN, bins_per_octave=BPO, length=x60.shape[-1])
        dense_conv.icqt(C60, **icqt_kw)  # build and cache the kernels
        add("dense_conv.icqt", "60 s inverse", lambda: dense_conv.icqt(C60, **icqt_kw))

    librosa = _librosa()
    if librosa is None:
        add("librosa.cqt", "60 s forward", None, "librosa not installed (pip install librosa)")
        add("librosa.vqt", "VQT 60 s forward", None, "librosa not installed (pip install librosa)")
    else:
        y60, yb = x60.cpu().numpy(), xb.cpu().numpy()
        kw = dict(sr=SR, hop_length=HOP, fmin=FMIN, n_bins=NBINS, bins_per_octave=BPO)
        librosa.cqt(y60[: SR], **kw)  # warm the filter cache
        add("librosa.cqt", "60 s forward", lambda: librosa.cqt(y60, **kw), f"librosa {librosa.__version__}, CPU")
        add("librosa.cqt", "16 x 5 s forward", lambda: librosa.cqt(yb, **kw), "CPU")
        librosa.vqt(y60[: SR], **kw)
        add("librosa.vqt", "VQT 60 s forward", lambda: librosa.vqt(y60, **kw), f"librosa {librosa.__version__}, CPU")
        C60n = C60.cpu().numpy()
        ikw = dict(sr=SR, hop_length=HOP, fmin=FMIN, bins_per_octave=BPO, length=y60.shape[-1])
        librosa.icqt(C60n[:, :100], **ikw)  # warm its filter cache
        add("librosa.icqt", "60 s inverse", lambda: librosa.icqt(C60n, **ikw), "CPU")

    CQT2010v2 = _nnaudio()
    if CQT2010v2 is None:
        for case in ("60 s forward", "60 s trainable fwd+bwd"):
            add("nnAudio CQT2010v2", case, None, "nnAudio not installed (pip install nnAudio)")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nn_f = CQT2010v2(sr=SR, hop_length=HOP, fmin=FMIN, n_bins=NBINS, bins_per_octave=BPO,
                             output_format="Complex", verbose=False).to(device)
            nn_t = CQT2010v2(sr=SR, hop_length=HOP, fmin=FMIN, n_bins=NBINS, bins_per_octave=BPO,
                             output_format="Magnitude", trainable=True, verbose=False).to(device)

        def nn_fb():
            nn_t.zero_grad(set_to_none=True)
            nn_t(x60).sum().backward()

        with torch.no_grad():
            add("nnAudio CQT2010v2", "60 s forward", lambda: nn_f(x60))
            add("nnAudio CQT2010v2", "16 x 5 s forward", lambda: nn_f(xb))
        add("nnAudio CQT2010v2", "60 s trainable fwd+bwd", nn_fb)

    # speed-ups against the targets of the issues (forward >= 5x librosa, >= 30x nnAudio; fwd+bwd >= 15x nnAudio;
    # VQT and inverse >= 5x librosa)
    t = {(r["name"], r["case"]): r["seconds"] for r in rows}
    for ours_name, other, case, target in (
            ("dense_conv.CQT", "librosa.cqt", "60 s forward", 5),
            ("dense_conv.CQT", "nnAudio CQT2010v2", "60 s forward", 30),
            ("dense_conv.CQT", "nnAudio CQT2010v2", "60 s trainable fwd+bwd", 15),
            ("dense_conv.CQT", "librosa.cqt", "16 x 5 s forward", None),
            ("dense_conv.CQT", "nnAudio CQT2010v2", "16 x 5 s forward", None),
            ("dense_conv.VQT", "librosa.vqt", "VQT 60 s forward", 5),
            ("dense_conv.icqt", "librosa.icqt", "60 s inverse", 5)):
        a, b = t.get((ours_name, case)), t.get((other, case))
        if a and b:
            r = b / a
            tgt = f", target >= {target}x: {'met' if r >= target else 'MISSED'}" if target else ""
            rows.append(dict(name=f"speed-up vs {other}", case=case, seconds=None, note=f"{r:.1f}x{tgt}"))
    return rows, ms


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    rows, ms = run(a.quick, a.device)
    print_compare(ms)
    print(f"{'name':28s} {'case':26s} {'seconds':>10s}  note")
    for r in rows:
        s = f"{r['seconds']:.4f}" if r["seconds"] is not None else "-"
        print(f"{r['name']:28s} {r['case']:26s} {s:>10s}  {r['note']}")


if __name__ == "__main__":
    main()
