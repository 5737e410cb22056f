#!/usr/bin/env python3
"""Per-launch counts of the CUDA kernels at the benchmark's shapes, from the CPU emulator's counting build.

Runs the kernel launches that the benchmark's CUDA rows make (bench/bench.py `cases`: the user's shape 37x16 for
dense, sparse and mix, the first per_sample case; every case with --all-shapes), plus the float16 / bfloat16
tensor-core forward at the user's shape and octave_downsample at the CQT benchmark's size, through the emulator's
counting build (tests/emu/counters.h, `harness.counting(sample)`): a sample of blocks per grid dimension is
emulated and the counts are extrapolated to the whole grid. The launches are found by the harness, not listed
here: a new kernel or template parameter shows up by itself. Writes docs/gpu_counts/emu_counts.json (one launch a
line), the input of tools/gpu_model.py. Counts, not measurements (docs/gpu_model.md).

Per launch: the harness's counts (shared requests and wavefronts, global requests and sectors, dram sectors x 32
= dram_bytes, fma_executed: the floating-point multiplies, FMA instructions and WMMA multiply-adds the kernel's
threads executed) and fma_useful: the multiply-adds the pass needs by its definition (below), shared among the
pass's launches in proportion to their executed multiplies (a reduction launch with none gets none).

    python tools/emu_counts.py [--sample 8] [--batch 64] [--all-shapes] [--only REGEX] [--merge]
                               [--out docs/gpu_counts/emu_counts.json]
"""
import argparse
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

import torch  # noqa: E402

from dense_conv._shapes import fft_size, octave_level_lengths  # noqa: E402
from emu import harness  # noqa: E402

OUT = REPO / "docs" / "gpu_counts" / "emu_counts.json"
SOURCE = "CPU emulator (tests/emu), counts extrapolated from emulated blocks to the full grid"
USER_SHAPE = "dense 37x16 (user)"
HALF_DTYPES = (torch.float16, torch.bfloat16)
DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
               torch.bfloat16: "bfloat16"}
# The CQT benchmark's octave_downsample (bench/bench_cqt.py: 60 s at 22050 Hz, 8 octaves: 7 decimations) with the
# default half-band filter.
CQT_SAMPLES, CQT_LEVELS = 60 * 22050, 7


def benchmark_cases(batch):
    """bench/bench.py's cases (importing it needs the built extension, as the benchmark does)."""
    import bench
    return bench.cases(batch)


def causal_taps(n, taps):
    """Multiply-adds along one axis of length n with `taps` taps: output y sees min(y + 1, taps) (bench.py's)."""
    return sum(min(y + 1, taps) for y in range(n))


def window_fma(B, pairs, Hi, Wi, Hr, Wr):
    """Multiply-adds of a dense / per_sample pass: every (sample, channel pair) over the causal window."""
    return B * pairs * causal_taps(Hi, Hr) * causal_taps(Wi, Wr)


class Passes:
    """Collects the launches of each pass (one harness call: an op's forward or one of its gradients); with a
    path, rewrites it after every pass (a pass replaces the launches of the same op, shape and dtype there)."""

    def __init__(self, sample, path=None, launches=()):
        self.sample = sample
        self.path = path
        self.launches = list(launches)

    def run(self, op, shape, dtype, algorithm, useful, fn, *args):
        start = time.perf_counter()
        with harness.counting(sample=self.sample) as counted:
            fn(*args)
        executed = sum(launch["fma_executed"] for launch in counted.launches)
        key = {"op": op, "shape": shape, "dtype": DTYPE_NAMES[dtype]}
        self.launches = [launch for launch in self.launches if {k: launch[k] for k in key} != key]
        for launch in counted.launches:
            share = launch["fma_executed"] / executed if executed else 1 / len(counted.launches)
            dram_sectors = launch.pop("dram_sectors")
            launch.update(key, algorithm=algorithm, dram_bytes=32 * dram_sectors,
                          fma_useful=int(round(useful * share)))
            self.launches.append(launch)
        if self.path:
            write_counts(self.launches, self.path)
        print(f"  {op:44s} {DTYPE_NAMES[dtype]:8s} {len(counted.launches)} launches, "
              f"{time.perf_counter() - start:5.1f} s", flush=True)


def randn(shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype)


def dense_passes(p, name, dtype, response_shape, impulse_shape, op="dense_conv2d", backward=True):
    B, Ci, Hi, Wi = impulse_shape
    _, Cr, Hr, Wr = response_shape
    useful = window_fma(B, Ci * Cr, Hi, Wi, Hr, Wr)
    response, impulse = randn(response_shape, dtype, 1), randn(impulse_shape, dtype, 2)
    p.run(f"{op}.forward", name, dtype, "direct", useful, harness.dense_forward, response, impulse)
    if backward:
        grad_out = randn((B, Ci * Cr, Hi, Wi), dtype, 3)
        p.run(f"{op}.grad_impulse", name, dtype, "direct", useful, harness.dense_grad_impulse, grad_out, response)
        p.run(f"{op}.grad_response", name, dtype, "direct", useful, harness.dense_grad_response, grad_out, impulse,
              Hr, Wr)


def per_sample_passes(p, op, name, dtype, weight_shape, impulse_shape):
    B, L, Ci, Hr, Wr = weight_shape
    Hi, Wi = impulse_shape[2:]
    useful = window_fma(B, L * Ci, Hi, Wi, Hr, Wr)
    weight, impulse = randn(weight_shape, dtype, 1), randn(impulse_shape, dtype, 2)
    grad_out = randn((B, L, Hi, Wi), dtype, 3)
    p.run(f"{op}.forward", name, dtype, "direct", useful, harness.per_sample_forward, weight, impulse)
    p.run(f"{op}.grad_impulse", name, dtype, "direct", useful, harness.per_sample_grad_impulse, grad_out, weight)
    p.run(f"{op}.grad_weight", name, dtype, "direct", useful, harness.per_sample_grad_weight, grad_out, impulse,
          Hr, Wr)


def spectra(shape, seed):
    return torch.view_as_complex(randn((*shape, 2), torch.float32, seed))


def fft_passes(p, name, response_shape, impulse_shape):
    """dense_conv2d's FFT algorithm: the spectrum products of the whole batch as one chunk (cuFFT's transforms are
    not this project's kernels and are not counted)."""
    B, Ci, Hi, Wi = impulse_shape
    _, Cr, Hr, Wr = response_shape
    H, W = fft_size(Hi, Wi, Hr, Wr)
    K = H * (W // 2 + 1)
    A, R = spectra((B, Ci, K), 1), spectra((B, Cr, K), 2)
    # complex multiply-adds (4 real ones): P = A R per (i, r); GI and GR one each per (i, r)
    p.run("dense_conv2d.fft_product", name, torch.float32, "fft", 4 * B * Ci * Cr * K, harness.fft_product, A, R)
    G = spectra((B, Ci * Cr, K), 3)
    p.run("dense_conv2d.grad_fft_correlate", name, torch.float32, "fft", 8 * B * Ci * Cr * K, harness.fft_correlate,
          G, A, R)


def fft_mix_passes(p, name, response_shape, impulse_shape, L):
    """dense_mix_conv2d's FFT algorithm: the per-bin mix of the whole batch as one chunk (transforms not counted).
    Multiply-adds per bin (real weights x complex: 2, complex x complex: 4), as fft_mix_kernels.cuh writes them:
    M = a Hs 2 L Ci Cr, Y = X M 4 L Ci; backward GX 2 L Ci Cr + 4 L Ci, GH 2 L Ci Cr + 4 Ci Cr,
    gw 4 L Ci + 2 L Ci Cr."""
    B, Ci, Hi, Wi = impulse_shape
    _, Cr, Hr, Wr = response_shape
    H, W = fft_size(Hi, Wi, Hr, Wr)
    K = H * (W // 2 + 1)
    X, Hs, G = spectra((B, Ci, K), 1), spectra((B, Cr, K), 2), spectra((B, L, K), 3)
    a = randn((L, Ci, Cr), torch.float32, 4)
    per_bin_forward = 2 * L * Ci * Cr + 4 * L * Ci
    per_bin_backward = 6 * L * Ci * Cr + 8 * L * Ci + 4 * Ci * Cr
    p.run("dense_mix_conv2d.fft_mix_forward", name, torch.float32, "fft", B * K * per_bin_forward,
          harness.fft_mix_forward, X, Hs, a, H, W)
    p.run("dense_mix_conv2d.fft_mix_backward", name, torch.float32, "fft", B * K * per_bin_backward,
          harness.fft_mix_backward, X, Hs, G, a, H, W, 1.0 / (H * W))


def octave_passes(p, dtype):
    from dense_conv.audio.octave import halfband_filter
    f = halfband_filter(dtype=torch.float64).to(dtype)
    x = randn((1, CQT_SAMPLES), dtype, 1)
    outputs = sum(octave_level_lengths(CQT_SAMPLES, CQT_LEVELS))  # output samples of every level
    # the half-band filter's zero taps multiply nothing (the kernels skip them); the filter's gradient has a
    # term for every tap
    nonzero_taps = int((f != 0).sum())
    name = f"cqt 60 s, {CQT_LEVELS} levels"
    out = harness.octave_forward(x, f, CQT_LEVELS)  # the forward's output, an input of grad_filter
    p.run("octave_downsample.forward", name, dtype, "direct", outputs * nonzero_taps, harness.octave_forward, x, f,
          CQT_LEVELS)
    g = randn(out.shape, dtype, 2)
    p.run("octave_downsample.grad_input", name, dtype, "direct", outputs * nonzero_taps, harness.octave_grad_input,
          g, f, CQT_SAMPLES, CQT_LEVELS)
    p.run("octave_downsample.grad_filter", name, dtype, "direct", outputs * f.numel(), harness.octave_grad_filter,
          g, x, out, f, CQT_LEVELS)


def all_passes(p, batch, only, all_shapes):
    """The passes of the benchmark's CUDA rows (ours: direct and fft) at the user's shape (dense, sparse and mix
    37x16) and the first per_sample case, or at every case with all_shapes; filtered by `only` (a regex on
    'kind shape dtype', e.g. 'dense 37x16 .*float32')."""
    def wanted(*words):
        return only is None or re.search(only, " ".join(words))

    first_per_sample = True
    for case in benchmark_cases(batch):
        f32 = "float32"
        if not all_shapes and not ("37x16" in case.name or (case.kind == "per_sample" and first_per_sample)):
            continue
        first_per_sample &= case.kind != "per_sample"
        if case.kind in ("dense", "sparse") and wanted(case.kind, case.name, f32):
            if case.kind == "dense":
                dense_passes(p, case.name, torch.float32, case.response, case.impulse)
            else:  # sparse_conv2d = dense_conv2d on [B*C, 1, ...] views (csrc/sparse_conv.cpp)
                B, C, Hr, Wr = case.response
                dense_passes(p, case.name, torch.float32, (B * C, 1, Hr, Wr), (B * C, 1, *case.impulse[2:]),
                             op="sparse_conv2d")
        if case.kind == "dense" and case.name == USER_SHAPE:
            for dtype in HALF_DTYPES:  # the tensor-core forward
                if wanted(case.kind, case.name, DTYPE_NAMES[dtype]):
                    dense_passes(p, case.name, dtype, case.response, case.impulse, backward=False)
            if wanted(case.kind, case.name, f32, "fft"):
                fft_passes(p, case.name, case.response, case.impulse)
        if case.kind == "per_sample" and wanted(case.kind, case.name, f32):
            per_sample_passes(p, "per_sample_conv2d", case.name, torch.float32, case.response, case.impulse)
        if case.kind == "mix" and wanted(case.kind, case.name, f32):
            # direct: the responses pre-mixed per sample (torch), then per_sample_conv2d with L outputs
            B, Cr, Hr, Wr = case.response
            per_sample_passes(p, "dense_mix_conv2d", case.name, torch.float32,
                              (B, case.mix_channels, case.impulse[1], Hr, Wr), case.impulse)
        if case.kind == "mix" and "37x16" in case.name and wanted(case.kind, case.name, f32, "fft"):
            fft_mix_passes(p, case.name, case.response, case.impulse, case.mix_channels)
    if wanted("octave cqt", "float32"):
        octave_passes(p, torch.float32)


def write_counts(launches, path):
    """The JSON of docs/gpu_counts: one launch a line (diffs stay readable)."""
    lines = ",\n".join(json.dumps(launch) for launch in launches)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{{"source": {json.dumps(SOURCE)},\n "launches": [\n{lines}\n]}}\n')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=8, help="blocks emulated per grid dimension (0: all)")
    parser.add_argument("--batch", type=int, default=64, help="the benchmark's batch size (default 64)")
    parser.add_argument("--only", default=None, help="regex on 'kind shape dtype' of the passes to run")
    parser.add_argument("--all-shapes", action="store_true",
                        help="every benchmark case, not only the user's shape and one per_sample case")
    parser.add_argument("--merge", action="store_true",
                        help="keep the output file's other launches (replace only the passes run now)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    kept = json.loads(args.out.read_text())["launches"] if args.merge and args.out.exists() else []
    p = Passes(args.sample, args.out, kept)
    all_passes(p, args.batch, args.only, args.all_shapes)
    write_counts(p.launches, args.out)
    print(f"{len(p.launches)} launches -> {args.out} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
