"""Refit the CUDA `auto` rule (dense_conv/_algorithm.py: choose_cuda, CUDA_FFT_MIN_TAPS) from GPU timings.

    python tools/refit_cuda_auto.py [--bench results/gpu_check/bench.json] [--kernel-times KERNEL_TIMES_JSON]
                                    [--out results/gpu_check.json] [--no-sweep]

Run by tools/gpu_check.sh on a CUDA machine. choose_cuda takes the FFT when the response taps that reach the
image, weighted by the channels, pass CUDA_FFT_MIN_TAPS of the pass (a forward alone, or training: forward +
backward); each pass's threshold is fitted to the points of that direction. Points: each case and direction where
both `ours:direct` and `ours:fft` were timed on CUDA by bench/bench.py (dense and sparse rows), plus a sweep of
response sizes at the user's impulse [64, 4, 84, 600] (dense_conv2d with 5 responses, and sparse_conv2d),
forward and forward+backward, timed here. The fitted threshold minimises the relative time lost against
the faster algorithm, summed over the points (choose_cuda itself decides at each candidate threshold: the
rule is not copied here). Writes every point, the current and the fitted threshold with their decisions and
losses to the JSON file. Needs a GPU and the extension's CUDA kernels.
"""
import argparse
import json
import math
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import torch  # noqa: E402

from dense_conv import _algorithm  # noqa: E402

SWEEP_RESPONSES = ((3, 3), (5, 5), (9, 9), (15, 15), (21, 21), (37, 16), (37, 32), (64, 64))
SWEEP_BATCH = 64
# candidate thresholds: 16 per octave from 1 to 2**16 taps
CANDIDATES = sorted({round(2 ** (k / 16)) for k in range(16 * 16 + 1)})


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", default=None,
                    help="bench.json of `bench/bench.py --cuda-only` (its CUDA rows join the fit)")
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "gpu_check.json"))
    ap.add_argument("--tests-exit-code", type=int, default=None, help="recorded in the JSON (tools/gpu_check.sh)")
    ap.add_argument("--min-run-time", type=float, default=0.1, help="seconds of repeated runs per sweep timing")
    ap.add_argument("--kernel-times", default=None,
                    help="kernel_times.json of tools/gpu_kernel_times.py (its dense / sparse rows join the fit)")
    ap.add_argument("--no-sweep", action="store_true",
                    help="fit from --bench's rows alone (no timing: runs without a GPU, on a recorded bench.json)")
    return ap.parse_args(argv)


def rule_sizes(point):
    """choose_cuda's arguments for a point: sparse_conv2d runs as B*C one-channel planes."""
    B, Ci, Cr = point["B"], point["Ci"], point["Cr"]
    if point["kind"] == "sparse":
        B, Ci, Cr = B * Ci, 1, 1
    return B, Ci, Cr, point["Hi"], point["Wi"], point["Hr"], point["Wr"]


def backward(point):
    """Whether a point was timed forward+backward (choose_cuda's `backward`)."""
    return point["direction"] != "fwd"


def rule_pass(point):
    """The CUDA_FFT_MIN_TAPS key of a point's direction (_algorithm.PASSES: "forward" or "training")."""
    return _algorithm.PASSES[backward(point)]


def choice(point, threshold):
    """What choose_cuda picks at `point` when its pass's CUDA_FFT_MIN_TAPS = threshold."""
    thresholds, key = _algorithm.CUDA_FFT_MIN_TAPS, rule_pass(point)
    saved, thresholds[key] = thresholds[key], threshold
    try:
        return _algorithm.choose_cuda(*rule_sizes(point), backward(point))
    finally:
        thresholds[key] = saved


def loss(points, threshold):
    """Relative time lost against the faster algorithm, summed over the points."""
    return sum(p[choice(p, threshold)] / min(p["direct"], p["fft"]) - 1 for p in points)


def fit_threshold(points, candidates=CANDIDATES):
    """The candidate threshold of least loss; among equal losses (a range between two points) the geometric
    middle of the range, so that the rule does not sit on a measured point."""
    losses = [loss(points, t) for t in candidates]
    best = min(losses)
    first = losses.index(best)
    last = first  # the run of consecutive candidates that tie with the first best one
    while last + 1 < len(candidates) and losses[last + 1] <= best + 1e-12:
        last += 1
    return round(math.sqrt(candidates[first] * candidates[last])), best


def bench_points(path):
    """Points from the CUDA rows of a bench.json: both algorithms timed at one case and direction."""
    with open(path) as f:
        rows = json.load(f)["rows"]
    times = {}
    for r in rows:
        if r["device"] == "cuda" and r["kind"] in ("dense", "sparse") and "time" in r:
            times.setdefault((r["shape"], r["direction"]), {})[r["impl"]] = (r, r["time"])
    points = []
    for (shape, direction), impls in sorted(times.items()):
        if "ours:direct" in impls and "ours:fft" in impls:
            r = impls["ours:direct"][0]
            B, Ci, Hi, Wi = r["impulse"]
            Cr, Hr, Wr = r["response"][1:]
            points.append(dict(source="bench", kind=r["kind"], B=B, Ci=Ci, Cr=Cr, Hi=Hi, Wi=Wi, Hr=Hr, Wr=Wr,
                               direction=direction, direct=impls["ours:direct"][1], fft=impls["ours:fft"][1]))
    return points


def kernel_times_points(path):
    """Points from tools/gpu_kernel_times.py's rows (dense and sparse, float32): both algorithms timed at one case
    and direction (whole calls, CUDA events)."""
    with open(path) as f:
        measured = json.load(f)
    times = {}
    for r in measured["rows"]:
        if r.get("kind") in ("dense", "sparse") and r.get("dtype") == "float32" and not r.get("tf32") and "ms" in r:
            impulse = tuple(r.get("impulse", (r["response"][0], 4, 84, 600)))  # recorded since its second run
            times.setdefault((r["kind"], impulse, tuple(r["response"]), r["direction"]), {})[r["algorithm"]] = \
                r["ms"] * 1e-3
    points = []
    for (kind, impulse, response, direction), t in sorted(times.items()):
        if "direct" in t and "fft" in t:
            B, Ci, Hi, Wi = impulse
            Cr, Hr, Wr = response[1:]
            points.append(dict(source="kernel_times", kind=kind, B=B, Ci=Ci, Cr=Cr, Hi=Hi, Wi=Wi, Hr=Hr, Wr=Wr,
                               direction=direction, direct=t["direct"], fft=t["fft"]))
    return points


def sweep_points(min_run_time):
    """Direct and FFT timed on CUDA over SWEEP_RESPONSES, dense (Cr = 5) and sparse, both directions."""
    import bench  # bench/bench.py: its cases and calls (imported here: it builds the extension if needed)
    from timing import measure
    points = []
    for kind in ("dense", "sparse"):
        for Hr, Wr in SWEEP_RESPONSES:
            Cr = 5 if kind == "dense" else 4
            case = bench.Case(f"{kind} {Hr}x{Wr}", kind, (SWEEP_BATCH, 4, 84, 600), (SWEEP_BATCH, Cr, Hr, Wr))
            for direction, backward in bench.DIRECTIONS:
                t = {}
                for algorithm in ("direct", "fft"):
                    fn = lambda r, i, a=algorithm: case.op(r, i, algorithm=a)  # noqa: E731
                    t[algorithm] = measure(bench.make_call(fn, case, "cuda", backward), label=case.label,
                                           sub_label=f"ours:{algorithm}", description=direction, env="cuda",
                                           min_run_time=min_run_time).median
                print(f"  {case.name:14s} {direction:8s} direct {t['direct'] * 1e3:8.2f} ms  "
                      f"fft {t['fft'] * 1e3:8.2f} ms", flush=True)
                points.append(dict(source="sweep", kind=kind, B=SWEEP_BATCH, Ci=4, Cr=Cr, Hi=84, Wi=600, Hr=Hr,
                                   Wr=Wr, direction=direction, **t))
    return points


def report(points, machine, tests_exit_code):
    """The JSON document: every point with both rules' decisions, and each pass's current and fitted threshold
    with their losses (a pass without points keeps its threshold)."""
    current, fitted = dict(_algorithm.CUDA_FFT_MIN_TAPS), dict(_algorithm.CUDA_FFT_MIN_TAPS)
    current_loss, fitted_loss = {}, {}
    for rule in current:
        mine = [p for p in points if rule_pass(p) == rule]
        current_loss[rule] = loss(mine, current[rule])
        fitted[rule], fitted_loss[rule] = fit_threshold(mine) if mine else (current[rule], 0.0)
    for p in points:
        p["faster"] = "direct" if p["direct"] <= p["fft"] else "fft"
        p["current_choice"], p["fitted_choice"] = choice(p, current[rule_pass(p)]), choice(p, fitted[rule_pass(p)])
    return {"machine": machine, "tests_exit_code": tests_exit_code,
            "rule": "choose_cuda (dense_conv/_algorithm.py): FFT when taps * Ci * Cr >= "
                    "CUDA_FFT_MIN_TAPS[pass] * (Ci * Cr + Ci + Cr), taps = min(Hr, Hi) * min(Wr, Wi)",
            "loss": "relative time lost against the faster algorithm, summed over the points of the pass",
            "current": {"CUDA_FFT_MIN_TAPS": current, "loss": current_loss},
            "fitted": {"CUDA_FFT_MIN_TAPS": fitted, "loss": fitted_loss},
            "points": points}


def main(argv=None):
    args = parse_args(argv)
    if args.no_sweep and not (args.bench or args.kernel_times):
        sys.exit("refit_cuda_auto: --no-sweep needs --bench or --kernel-times (the points to fit)")
    if not args.no_sweep and not torch.cuda.is_available():
        sys.exit("refit_cuda_auto: no GPU visible to torch; nothing to time (--no-sweep fits a recorded bench.json)")
    start = time.perf_counter()
    points = (bench_points(args.bench) if args.bench else []) + \
        (kernel_times_points(args.kernel_times) if args.kernel_times else [])
    print(f"refit_cuda_auto: {len(points)} points from {args.bench or 'no bench.json'} and "
          f"{args.kernel_times or 'no kernel_times.json'}" + ("" if args.no_sweep else "; timing the sweep ..."),
          flush=True)
    if args.no_sweep:
        with open(args.bench or args.kernel_times) as f:
            recorded = json.load(f)
        machine = recorded.get("machine") or {"gpu": recorded["gpu"], "torch": recorded["torch"]}
    else:
        points += sweep_points(args.min_run_time)
        machine = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
                   "capability": ".".join(map(str, torch.cuda.get_device_capability()))}
    result = report(points, machine, args.tests_exit_code)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    current, fitted = result["current"], result["fitted"]
    for rule in current["CUDA_FFT_MIN_TAPS"]:
        print(f"CUDA_FFT_MIN_TAPS[{rule!r}]: current {current['CUDA_FFT_MIN_TAPS'][rule]} (loss "
              f"{current['loss'][rule]:.2f}), fitted {fitted['CUDA_FFT_MIN_TAPS'][rule]} (loss "
              f"{fitted['loss'][rule]:.2f})")
    print(f"{len(points)} points; wrote {args.out} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
