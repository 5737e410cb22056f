#!/usr/bin/env python3
"""MEASURED per-kernel times of the CUDA paths at the benchmark's shapes (needs a GPU; tools/gpu_check.sh runs it).

For each row (op, shape, dtype, algorithm, direction) it times the whole call with CUDA events (median of
repeated calls after a warm-up) and, under torch.profiler, the device time of every kernel the call launched
(ours, cuFFT's and ATen's), per call. The kernel names are the profiler's demangled names, which
tools/gpu_model.py matches against the model's launches (its --measured option puts the measured times next
to the predictions; tools/refit_cuda_auto.py --kernel-times fits the CUDA auto rule to them). Rows:
bench/bench.py's CUDA cases at batch 64 (dense 37x16 / 9x9 / 5x5, sparse 37x16 / 5x5, mix 37x16 / 9x9 with
direct, fft and auto; per_sample 9x9 and 5x5), the float16 / bfloat16
tensor-core forward and float32 through TF32 at the user's shape; the CQT benchmark's CQT, trainable CQT, VQT and
inverse CQT (bench/bench_cqt.py).

    python tools/gpu_kernel_times.py [--out results/gpu_check/kernel_times.json] [--batch 64] [--only REGEX]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import bench  # noqa: E402  (bench/bench.py: the benchmark's cases and calls)
from bench_cqt import BPO, FMIN, HOP, NBINS, SR  # noqa: E402
import dense_conv  # noqa: E402

IMPULSE = (4, 84, 600)  # [Ci, Hi, Wi] of the benchmark's impulse
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
TIMED_CALLS = 20
PROFILED_CALLS = 5


def rows(batch):
    """(name, op, response/weight shape, dtype, algorithm, tf32, directions) of every timed row."""
    user, r9, r5 = (batch, 5, 37, 16), (batch, 5, 9, 9), (batch, 5, 5, 5)
    both = ("fwd", "fwd+bwd")
    out = []
    for algorithm in ("direct", "fft", "auto"):
        out.append(("dense 37x16 (user)", "dense", user, "float32", algorithm, False, both))
    for shape_name, shape in (("dense 9x9", r9), ("dense 5x5", r5)):
        for algorithm in ("direct", "fft", "auto"):
            out.append((shape_name, "dense", shape, "float32", algorithm, False, both))
    for dtype in ("float16", "bfloat16"):
        out.append(("dense 37x16 (user)", "dense", user, dtype, "direct", False, both))
    out.append(("dense 37x16 (user)", "dense", user, "float32", "direct", True, ("fwd",)))
    for shape_name, kind, shape in (("sparse 37x16", "sparse", (batch, 4, 37, 16)),
                                    ("sparse 5x5", "sparse", (batch, 4, 5, 5)),
                                    ("mix 37x16 L=8 (user)", "mix", user), ("mix 9x9 L=8", "mix", r9)):
        for algorithm in ("direct", "fft", "auto"):
            out.append((shape_name, kind, shape, "float32", algorithm, False, both))
    for size in (9, 5):
        out.append((f"per_sample {size}x{size} L=8", "per_sample", (batch, 8, 4, size, size), "float32", "direct",
                    False, both))
    # the CQT benchmark's cases (bench/bench_cqt.py): 60 s at 22050 Hz, 288 bins; the response shape is unused
    for name, directions in (("CQT 60 s", both), ("CQT 16 x 5 s", ("fwd",)), ("VQT 60 s", ("fwd",)),
                             ("CQT 60 s inverse", ("fwd",))):
        out.append((name, "cqt", (), "float32", "direct", False, directions))
    return out


def make_cqt_call(name, backward):
    """A CQT / VQT / inverse CQT call of the CQT benchmark's cases (bench/bench_cqt.py's parameters)."""
    g = torch.Generator().manual_seed(0)
    clip = (torch.randn(SR * 60, generator=g) * 0.1).cuda()
    args = (SR, HOP, FMIN, NBINS, BPO)
    if name == "CQT 60 s" and backward:
        cqt = dense_conv.CQT(*args, output="magnitude", trainable=True).cuda()

        def forward_backward():
            cqt.zero_grad(set_to_none=True)
            cqt(clip).sum().backward()
        return forward_backward
    if name == "CQT 60 s inverse":
        with torch.no_grad():
            spectrum = dense_conv.CQT(*args).cuda()(clip)
        kwargs = dict(sr=SR, hop_length=HOP, fmin=FMIN, bins_per_octave=BPO, length=clip.shape[-1])
        transform = lambda: dense_conv.icqt(spectrum, **kwargs)  # noqa: E731
    else:
        module = (dense_conv.VQT if name.startswith("VQT") else dense_conv.CQT)(*args).cuda()
        x = clip if "60 s" in name else (torch.randn(16, SR * 5, generator=g) * 0.1).cuda()
        transform = lambda: module(x)  # noqa: E731

    def forward():
        with torch.no_grad():
            transform()
    return forward


def make_call(kind, name, response_shape, impulse_shape, dtype, algorithm, backward):
    """A no-argument call of one row: bench/bench.py's case, inputs and call (in `dtype`), or a CQT case."""
    if kind == "cqt":
        return make_cqt_call(name, backward)
    case = bench.Case(name, kind, impulse_shape, response_shape, mix_channels=8 if kind == "mix" else 0)
    return bench.make_call(lambda r, i: case.op(r, i, algorithm=algorithm), case, "cuda", backward, dtype)


def event_median_ms(call):
    """Median of TIMED_CALLS calls timed with CUDA events, after three warm-up calls."""
    for _ in range(3):
        call()
    times = []
    for _ in range(TIMED_CALLS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times), min(times)


def kernel_times(call):
    """[{name, calls, us}] per call: every device kernel (and memcpy / memset) the profiler saw."""
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(PROFILED_CALLS):
            call()
        torch.cuda.synchronize()
    totals = {}
    for event in prof.events():
        if event.device_type != torch.autograd.DeviceType.CUDA:
            continue
        name = event.name
        calls, us = totals.get(name, (0, 0.0))
        totals[name] = (calls + 1, us + event.device_time)
    return sorted(({"name": name, "calls": calls / PROFILED_CALLS, "us": us / PROFILED_CALLS}
                   for name, (calls, us) in totals.items()), key=lambda k: -k["us"])


def source_commit():
    """The checkout's commit (and '+changes' when the tree differs from it), or None outside git: measured times
    belong to the kernels of one tree."""
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+changes" if dirty else "")


def write(result, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "results", "gpu_check", "kernel_times.json"))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--only", default=None, help="regex on 'shape dtype algorithm direction'")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not torch.cuda.is_available() or not dense_conv.cuda_kernels_compiled():
        print("gpu_kernel_times: no GPU or no CUDA kernels: nothing to time")
        return 0
    result = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "batch": args.batch,
              "date": time.strftime("%Y-%m-%d", time.gmtime()), "commit": source_commit(),
              "source": "measured: CUDA events (whole call, median) and torch.profiler (per kernel, mean)",
              "rows": []}
    start = time.perf_counter()
    impulse_shape = (args.batch,) + IMPULSE
    saved_tf32 = torch.backends.cuda.matmul.allow_tf32
    for name, kind, shape, dtype, algorithm, tf32, directions in rows(args.batch):
        for direction in directions:
            label = f"{name} {dtype}{' tf32' if tf32 else ''} {algorithm} {direction}"
            if args.only and not re.search(args.only, label):
                continue
            torch.backends.cuda.matmul.allow_tf32 = tf32
            try:
                call = make_call(kind, name, shape, impulse_shape, DTYPES[dtype], algorithm, direction == "fwd+bwd")
                median, best = event_median_ms(call)
                kernels = kernel_times(call)
                row = {"shape": name, "kind": kind, "impulse": list(impulse_shape), "response": list(shape),
                       "dtype": dtype, "tf32": tf32,
                       "algorithm": algorithm, "direction": direction, "ms": median, "best_ms": best,
                       "kernels": kernels}
                top = ", ".join(f"{k['name'][:48]} {k['us'] / 1e3:.3f}" for k in kernels[:3])
                print(f"[{time.perf_counter() - start:5.1f}s] {label}: {median:.3f} ms (best {best:.3f}); {top}",
                      flush=True)
            except Exception as e:  # one failing row must not lose the others' figures
                row = {"shape": name, "dtype": dtype, "tf32": tf32, "algorithm": algorithm,
                       "direction": direction, "error": f"{type(e).__name__}: {e}"}
                print(f"{label}: FAILED {row['error']}", flush=True)
            finally:
                torch.backends.cuda.matmul.allow_tf32 = saved_tf32
            result["rows"].append(row)
            write(result, args.out)  # after every row: a run stopped at a time limit keeps what it timed
            torch.cuda.empty_cache()
    print(f"wrote {args.out}")
    return int(any("error" in r for r in result["rows"]))


if __name__ == "__main__":
    sys.exit(main())
