"""The package's main job: time dense_conv2d / sparse_conv2d, ours per algorithm against every
pure-PyTorch reference, forward and forward+backward, and write results/bench.json + results/bench.png.

    python bench/bench.py            # full run with the CQT rows (under ~5 minutes on a 2-core machine)
    python bench/bench.py --quick    # batch 8 instead of 64, shorter timing runs (about two minutes)
    python bench/bench.py --no-cqt   # without the CQT rows (bench/bench_cqt.py)
    python bench/bench.py --cuda-only  # only the CUDA rows (tools/gpu_check.sh); exit 1 without a GPU

Builds the extension in place first if it cannot be imported. Every time is the median of
torch.utils.benchmark.Timer runs after three warm-up calls (bench/timing.py), printed first as
torch.utils.benchmark.Compare's table and then as a summary: GFLOP/s counts 2 x the multiply-adds
inside the causal window (forward once, forward+backward three times); "%GEMM" divides by the float32
rate of a 4096^3 torch matmul measured in the same run; "speedup" is over the fastest reference at
that shape, direction and device. On a CUDA machine every algorithm (direct, fft, auto) is also timed
on the GPU; without one the CUDA rows are skipped and the reason is printed.

A reference is skipped (with the reason printed) when a probe at batch 1, scaled to the full batch,
predicts more than the time budget (a forward+backward also when its forward alone did), or when it
would need more memory than the memory budget. A reference predicted to take more than a second per
call (0.2 s with --quick) is timed by one call after a warm-up call instead of repeated runs; rows
whose median comes from one timed call are marked "(1 call)".
The CQT rows (dense_conv.CQT vs librosa.cqt and nnAudio, bench/bench_cqt.py) are a second table; a
missing librosa / nnAudio is stated there.
"""
import argparse
import dataclasses
import functools
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import torch  # noqa: E402

from timing import FORWARD, FORWARD_BACKWARD, measure, print_compare, seconds_of_one_call, timed_calls  # noqa: E402


def ensure_built():
    try:
        import dense_conv  # noqa: F401
        return
    except ImportError as e:
        print(f"dense_conv not importable ({e}); building in place ...", flush=True)
    env = dict(os.environ)
    env.setdefault("MAX_JOBS", str(os.cpu_count() or 2))
    subprocess.check_call([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=ROOT, env=env)


ensure_built()
import dense_conv  # noqa: E402
import dense_conv.reference  # noqa: E402
from dense_conv._algorithm import choose as choose_cpu_algorithm, choose_cuda, cpu_model  # noqa: E402

DIRECTIONS = ((FORWARD, False), (FORWARD_BACKWARD, True))
OUR_ALGORITHMS = ("direct", "fft", "auto")
# On CUDA only the references that are one batched call; the loop references launch a kernel per
# sample or per tap and the unfold / einsum ones materialise the whole patch tensor.
CUDA_REFERENCES = ("grouped", "fft", "fft_smooth")
# The bars to beat get more of the time budget: the FFT references, and the unfused mixing layer.
REFERENCE_BUDGET_FACTOR = {"ref:fft": 16, "ref:fft_smooth": 16, "ref:grouped": 8, "ref:dense_conv2d+conv2d": 16}
GEMM_SIZE = 4096


# --------------------------------------------------------------------------------------------------
# arguments and settings
# --------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="batch 8, shorter timing runs (about two minutes)")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default 64, 8 with --quick)")
    ap.add_argument("--budget", type=float, default=None,
                    help="skip a reference whose predicted time per call exceeds this (s)")
    ap.add_argument("--no-cqt", action="store_true", help="leave out the CQT rows (bench/bench_cqt.py)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    ap.add_argument("--cuda-only", action="store_true",
                    help="time only the CUDA rows: no CPU rows, CQT rows or (CPU) peak memory; exit 1 without a GPU")
    ap.add_argument("--out", default=os.path.join(ROOT, "results"))
    return ap.parse_args(argv)


@dataclasses.dataclass(frozen=True)
class Settings:
    batch: int
    budget: float          # s per call a reference may be predicted to take (x REFERENCE_BUDGET_FACTOR)
    min_run_time: float    # s of repeated runs per timing
    slow_call: float       # references predicted slower than this (s) are timed by one call
    memory_budget: int     # bytes a reference may be predicted to need
    peak_memory: bool      # measure the peak memory of ours forward+backward (fresh processes)


def settings_from(args):
    return Settings(batch=args.batch or (8 if args.quick else 64),
                    budget=args.budget or (0.2 if args.quick else 2.0),
                    min_run_time=0.05 if args.quick else 0.25,
                    slow_call=0.2 if args.quick else 1.0,
                    memory_budget=6 << 30,
                    peak_memory=not (args.no_memory or args.quick or args.cuda_only))


# --------------------------------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------------------------------

def causal_taps(n, taps):
    """Multiply-adds along one axis of length n with `taps` response taps: output y sees min(y+1, taps)."""
    return sum(min(y + 1, taps) for y in range(n))


@functools.lru_cache(maxsize=None)
def mix_weight(L, Ci, Cr, device):
    """The fixed 1x1 mix [L, Ci, Cr] of the "mix" cases (the user's layer: dense conv, then the mix)."""
    g = torch.Generator().manual_seed(1)
    return (torch.randn(L, Ci, Cr, generator=g) / (Ci * Cr) ** 0.5).to(device)


@functools.lru_cache(maxsize=None)
def factored_mix(L, Ci, Cr, device):
    """The user's factored layer (dense_conv.FactoredMix: 1x1 mixes to L channels, then sparse_conv2d) with the
    same L: the layer the fused dense mix is measured against (issue 10: >= 1.5x faster)."""
    torch.manual_seed(2)
    return dense_conv.FactoredMix(Ci, Cr, L).to(device)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str          # e.g. "dense 37x16 (user)"
    kind: str          # "dense", "sparse", "mix" (dense_mix_conv2d: dense conv + 1x1 mix to L channels) or
                       # "per_sample" (per_sample_conv2d: per-sample weights, Ci -> L channels)
    impulse: tuple     # [B, Ci, Hi, Wi]
    response: tuple    # [B, Cr, Hr, Wr]; for "per_sample" the weight [B, L, Ci, Hr, Wr]
    mix_channels: int = 0  # L of the "mix" cases

    @property
    def op_name(self):
        return {"dense": "dense_conv2d", "sparse": "sparse_conv2d", "mix": "dense_mix_conv2d",
                "per_sample": "per_sample_conv2d"}[self.kind]

    def mix(self, device):
        return mix_weight(self.mix_channels, self.impulse[1], self.response[1], device)

    @property
    def algorithms(self):
        """Our algorithms at this case (per_sample_conv2d has only its direct kernels)."""
        return ("direct",) if self.kind == "per_sample" else OUR_ALGORITHMS

    @property
    def op(self):
        if self.kind == "per_sample":
            return lambda w, i, algorithm: dense_conv.per_sample_conv2d(w, i)
        if self.kind == "mix":
            return lambda r, i, algorithm: dense_conv.dense_mix_conv2d(r, i, self.mix(r.device.type),
                                                                       algorithm=algorithm)
        return dense_conv.dense_conv2d if self.kind == "dense" else dense_conv.sparse_conv2d

    def references(self, device):
        """name -> pure-PyTorch (or, for "mix", the unfused layer) function(response, impulse)."""
        if self.kind == "mix":
            def dense_then_conv2d(r, i):  # the layer as it is written without the fused op
                w = self.mix(r.device.type)
                return torch.nn.functional.conv2d(dense_conv.dense_conv2d(r, i), w.reshape(w.shape[0], -1, 1, 1))
            factored = factored_mix(self.mix_channels, self.impulse[1], self.response[1], device)
            refs = {"dense_conv2d+conv2d": dense_then_conv2d, "FactoredMix": lambda r, i: factored(r, i),
                    "shift_add+einsum": lambda r, i: dense_conv.reference.dense_mix_reference(
                        r, i, self.mix(r.device.type))}
            return refs if device == "cpu" else {k: refs[k] for k in ("dense_conv2d+conv2d", "FactoredMix")}
        if self.kind == "per_sample":
            # the one-tap-at-a-time definition takes ~20-30 s a call here: only the batched formulation
            return {"grouped": dense_conv.reference.per_sample_grouped}
        variants = (dense_conv.reference.DENSE_VARIANTS if self.kind == "dense"
                    else dense_conv.reference.SPARSE_VARIANTS)
        return {name: fn for name, fn in variants.items() if device == "cpu" or name in CUDA_REFERENCES}

    @property
    def label(self):
        """The torch.utils.benchmark label: the operation and its shape."""
        return f"{self.op_name} {self.name}: impulse {list(self.impulse)}, response {list(self.response)}"

    @property
    def output_shape(self):
        B, Ci, Hi, Wi = self.impulse
        channels = {"dense": Ci * self.response[1], "sparse": Ci, "mix": self.mix_channels,
                    "per_sample": self.response[1]}[self.kind]
        return (B, channels, Hi, Wi)

    @property
    def forward_flops(self):
        """2 x the multiply-adds inside the causal window (for "mix": of the dense conv it replaces)."""
        B, Ci, Hi, Wi = self.impulse
        Cr, Hr, Wr = self.response[1], self.response[-2], self.response[-1]  # per_sample: Cr is L
        pairs = Ci if self.kind == "sparse" else Ci * Cr
        return 2 * B * pairs * causal_taps(Hi, Hr) * causal_taps(Wi, Wr)

    def with_batch(self, batch):
        return dataclasses.replace(self, impulse=(batch,) + tuple(self.impulse[1:]),
                                   response=(batch,) + tuple(self.response[1:]))


def cases(batch):
    impulse = (batch, 4, 84, 600)
    return [
        Case("dense 37x16 (user)", "dense", impulse, (batch, 5, 37, 16)),
        Case("dense 9x9", "dense", impulse, (batch, 5, 9, 9)),
        Case("dense 5x5", "dense", impulse, (batch, 5, 5, 5)),
        Case("sparse 37x16", "sparse", impulse, (batch, 4, 37, 16)),
        Case("sparse 5x5", "sparse", impulse, (batch, 4, 5, 5)),
        Case("mix 37x16 L=8 (user)", "mix", impulse, (batch, 5, 37, 16), mix_channels=8),
        Case("mix 9x9 L=8", "mix", impulse, (batch, 5, 9, 9), mix_channels=8),
        Case("per_sample 9x9 L=8", "per_sample", impulse, (batch, 8, 4, 9, 9)),
        Case("per_sample 5x5 L=8", "per_sample", impulse, (batch, 8, 4, 5, 5)),
    ]


def implementations(case, device):
    """name -> (function(response, impulse), is_ours)"""
    impls = {}
    for algorithm in case.algorithms:
        impls[f"ours:{algorithm}"] = ((lambda r, i, a=algorithm: case.op(r, i, algorithm=a)), True)
    for name, fn in case.references(device).items():
        impls[f"ref:{name}"] = (fn, False)
    return impls


def auto_choice(case, backward, device):
    """What algorithm="auto" runs on `device` at this case (sparse_conv2d runs as B*C one-channel planes)."""
    B, Ci, Hi, Wi = case.impulse
    Cr, Hr, Wr = case.response[1:]
    if case.kind == "mix":
        Cr = case.mix_channels  # dense_mix_conv2d's auto: the dense model with L responses (functional.py)
    if case.kind == "sparse":
        B, Ci, Cr = B * Ci, 1, 1
    if device == "cuda":
        return choose_cuda(B, Ci, Cr, Hi, Wi, Hr, Wr, backward)
    return choose_cpu_algorithm(B, Ci, Cr, Hi, Wi, Hr, Wr, backward)


# --------------------------------------------------------------------------------------------------
# machine
# --------------------------------------------------------------------------------------------------

def devices_to_time():
    """['cpu'] plus 'cuda' when there is a GPU and the extension has its CUDA kernels; says why not."""
    if not torch.cuda.is_available():
        print("CUDA rows skipped: no GPU visible to torch (torch.cuda.is_available() is False)")
        return ["cpu"]
    if not dense_conv.cuda_kernels_compiled():
        print("CUDA rows skipped: dense_conv was built without its CUDA kernels (rebuild with nvcc present)")
        return ["cpu"]
    return ["cpu", "cuda"]


def time_gemm(device, min_run_time):
    n = GEMM_SIZE
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    m = measure(lambda: a @ b, label=f"torch.matmul {n}x{n} @ {n}x{n} float32", sub_label="torch",
                description=FORWARD, env=device, min_run_time=min_run_time)
    return m, 2 * n ** 3 / m.median / 1e9


def machine_info(devices, settings):
    """(machine dict for the JSON, GEMM GFLOP/s per device, the GEMM measurements)."""
    machine = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__}
    if "cuda" in devices:
        machine["gpu"] = torch.cuda.get_device_name()
    print(f"machine: {machine['cpu']}, {machine['threads']} threads, torch {machine['torch']}"
          + (f", GPU {machine['gpu']}" if "gpu" in machine else ""), flush=True)
    gemm, measurements = {}, []
    for device in devices:
        m, gemm[device] = time_gemm(device, settings.min_run_time)
        measurements.append(m)
        print(f"GEMM {GEMM_SIZE}^3 float32 on {device}: {gemm[device]:.0f} GFLOP/s", flush=True)
    return machine, gemm, measurements


# --------------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------------

def make_call(fn, case, device, backward, dtype=torch.float32):
    """A no-argument call of fn on fresh inputs of `case` (in `dtype`): forward under no_grad, or forward and
    both input gradients."""
    g = torch.Generator().manual_seed(0)
    impulse = torch.randn(*case.impulse, generator=g).to(device, dtype).requires_grad_(backward)
    response = torch.randn(*case.response, generator=g).to(device, dtype).requires_grad_(backward)
    if not backward:
        def forward():
            with torch.no_grad():
                fn(response, impulse)
        return forward
    grad_out = torch.randn(*case.output_shape, generator=g).to(device, dtype)

    def forward_backward():
        torch.autograd.grad(fn(response, impulse), (response, impulse), grad_out)
    return forward_backward


def predicted_seconds(fn, case, device, backward, limit):
    """Seconds of one call at the full batch: a call at batch 1 scaled by the batch. The faster of two
    probe calls counts (the first pays one-time costs: allocator, FFT plans, autograd set-up); a first
    call that alone predicts over 3 x `limit` is not repeated."""
    call = make_call(fn, case.with_batch(1), device, backward)
    best = seconds_of_one_call(call) * case.impulse[0]
    if best <= 3 * limit:
        best = min(best, seconds_of_one_call(call) * case.impulse[0])
    return best


def seconds_text(seconds):
    return f"{seconds:.1f} s" if seconds >= 1 else f"{seconds:.2f} s"


def reference_memory_bytes(name, case, element_size=4):
    """Rough peak of the reference variants that materialise the whole patch tensor."""
    if name not in ("ref:unfold_matmul", "ref:einsum"):
        return 0
    B, Ci, Hi, Wi = case.impulse
    Hr, Wr = case.response[2:]
    return B * Ci * Hr * Wr * Hi * Wi * element_size * 2


def reference_skip_reason(name, fn, case, device, backward, settings, forward_prediction=None):
    """(reason to skip or None, predicted seconds per call). A forward+backward call costs at least its
    forward, so a forward already predicted over the limit skips the forward+backward without a probe."""
    need = reference_memory_bytes(name, case)
    if need > settings.memory_budget:
        return f"needs ~{need / 2**30:.0f} GiB", None
    limit = settings.budget * REFERENCE_BUDGET_FACTOR.get(name, 1)
    if backward and forward_prediction is not None and forward_prediction > limit:
        return f"its forward alone: ~{seconds_text(forward_prediction)} per call predicted (budget {limit:g} s)", None
    predicted = predicted_seconds(fn, case, device, backward, limit)
    if predicted > limit:
        return f"~{seconds_text(predicted)} per call predicted from batch 1 (budget {limit:g} s)", predicted
    return None, predicted


def time_implementation(case, device, direction, backward, name, fn, ours, gemm_gflops, settings,
                        predictions):
    """(row for the summary and the JSON, its Measurement or None when skipped). `predictions` keeps
    the predicted seconds of each reference per (device, case, direction, name)."""
    row = {"device": device, "shape": case.name, "kind": case.kind, "impulse": case.impulse,
           "response": case.response, "direction": direction, "impl": name, "ours": ours}
    slow = False
    if not ours:
        reason, predicted = reference_skip_reason(name, fn, case, device, backward, settings,
                                                  predictions.get((device, case.name, FORWARD, name)))
        predictions[(device, case.name, direction, name)] = predicted
        if reason:
            row["skipped"] = reason
            return row, None
        slow = predicted > settings.slow_call
    m = measure(make_call(fn, case, device, backward), label=case.label, sub_label=name,
                description=direction, env=device, min_run_time=settings.min_run_time, slow=slow)
    flops = case.forward_flops * (3 if backward else 1)
    gflops = flops / m.median / 1e9
    row.update(time=m.median, calls=timed_calls(m), gflops=gflops, pct_gemm=100 * gflops / gemm_gflops)
    if name == "ours:auto":
        row["auto_choice"] = auto_choice(case, backward, device)
    return row, m


def time_all(case_list, devices, gemm, settings, start):
    """Every case x device x direction x implementation: (rows, measurements)."""
    rows, measurements, predictions = [], [], {}
    for device in devices:
        for case in case_list:
            impls = implementations(case, device)
            for direction, backward in DIRECTIONS:
                for name, (fn, ours) in impls.items():
                    print(f"[{time.perf_counter() - start:6.1f}s] {device} {case.name} {direction} {name} ...",
                          end=" ", flush=True)
                    row, m = time_implementation(case, device, direction, backward, name, fn, ours,
                                                 gemm[device], settings, predictions)
                    print(f"skipped: {row['skipped']}" if m is None else f"{m.median * 1e3:9.1f} ms", flush=True)
                    rows.append(row)
                    if m is not None:
                        measurements.append(m)
    add_speedups(rows)
    return rows, measurements


def add_speedups(rows):
    """best_ref and speedup (over the fastest reference) per device, shape and direction."""
    for row in rows:
        if "time" not in row:
            continue
        refs = [x["time"] for x in rows if "time" in x and not x["ours"] and x["device"] == row["device"]
                and x["shape"] == row["shape"] and x["direction"] == row["direction"]]
        row["best_ref"] = min(refs) if refs else None
        row["speedup"] = min(refs) / row["time"] if refs else None


# --------------------------------------------------------------------------------------------------
# peak memory (fresh processes) and the CQT rows
# --------------------------------------------------------------------------------------------------

PEAK_SCRIPT = r"""
import os, sys, threading, torch
sys.path.insert(0, {root!r})
import dense_conv
op = dense_conv.dense_conv2d if {kind!r} == "dense" else dense_conv.sparse_conv2d
algo = {algo!r}
g = torch.Generator().manual_seed(0)
i = torch.randn(*{imp!r}, generator=g).requires_grad_()
r = torch.randn(*{resp!r}, generator=g).requires_grad_()
with torch.no_grad():
    op(r[:1], i[:1], algorithm=algo)          # warm up (libraries, plans) outside the measurement
grad_out = torch.randn(*{out!r})
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
base = rss(); peak = [base]; done = [False]
def sample():
    while not done[0]:
        peak[0] = max(peak[0], rss())
threading.Thread(target=sample, daemon=True).start()
out = op(r, i, algorithm=algo)
gr, gi = torch.autograd.grad(out, (r, i), grad_out)
peak[0] = max(peak[0], rss()); done[0] = True
print(peak[0] - base)
"""


def peak_memory(case, algorithm):
    """Peak resident-memory growth (bytes) of one forward+backward in a fresh process, sampled from
    /proc/self/statm after the inputs and grad_out exist; it includes the output and both gradients."""
    code = PEAK_SCRIPT.format(root=ROOT, kind=case.kind, algo=algorithm, imp=case.impulse, resp=case.response,
                              out=case.output_shape)
    try:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        return int(res.stdout.strip().splitlines()[-1])
    except Exception as e:  # noqa: BLE001  (a failed measurement must not lose the table)
        print(f"  peak memory of {algorithm} failed: {e}")
        return None


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def measure_memory(case_list, settings):
    """Peak memory of ours forward+backward at the first (the user's) case, per algorithm."""
    if not settings.peak_memory:
        return []
    case = case_list[0]
    io_bytes = 4 * (numel(case.output_shape) + numel(case.impulse) + numel(case.response))  # out + both grads
    return [{"shape": case.name, "algorithm": algo, "peak_bytes": peak_memory(case, algo), "io_bytes": io_bytes}
            for algo in ("direct", "fft")]


def run_cqt(args, start):
    """(CQT rows, their measurements); a failure becomes a row that says so."""
    if args.no_cqt:
        print("CQT rows left out (--no-cqt)")
        return [], []
    print(f"[{time.perf_counter() - start:6.1f}s] CQT rows (bench/bench_cqt.py) ...", flush=True)
    try:
        import bench_cqt
        return bench_cqt.run(quick=args.quick)
    except ImportError as e:
        return [dict(name="CQT rows", case="-", seconds=None, note=f"bench_cqt not importable: {e}")], []
    except Exception as e:  # noqa: BLE001  (a failing optional reference must not lose the table)
        return [dict(name="CQT rows", case="-", seconds=None, note=f"failed: {type(e).__name__}: {e}")], []


# --------------------------------------------------------------------------------------------------
# output: tables, JSON, chart
# --------------------------------------------------------------------------------------------------

def print_table(rows):
    print(f"\n{'device':6s} {'shape':20s} {'dir':8s} {'implementation':34s} {'time':>10s} {'GFLOP/s':>8s} "
          f"{'%GEMM':>6s} {'speedup':>8s}")
    for row in rows:
        name = row["impl"] + (f" ({row['auto_choice']})" if "auto_choice" in row else "") + (
            " (1 call)" if row.get("calls") == 1 else "")
        head = f"{row['device']:6s} {row['shape']:20s} {row['direction']:8s} {name:34s}"
        if "time" not in row:
            print(f"{head} skipped: {row['skipped']}")
            continue
        speedup = f"{row['speedup']:7.1f}x" if row.get("speedup") and row["ours"] else ""
        print(f"{head} {row['time'] * 1e3:8.1f}ms {row['gflops']:8.1f} {row['pct_gemm']:5.1f}% {speedup:>8s}")


def print_cqt_table(rows):
    if not rows:
        return
    print("\nCQT (60 s of audio at 22050 Hz, 288 bins, 36/octave, hop 512; bench/bench_cqt.py)")
    print(f"{'implementation':28s} {'case':26s} {'time':>10s}  note")
    for r in rows:
        t = f"{r['seconds'] * 1e3:8.1f}ms" if r.get("seconds") is not None else "-"
        print(f"{r['name']:28s} {r['case']:26s} {t:>10s}  {r.get('note', '')}")


def print_memory(memory):
    if not memory:
        return
    print("\nPeak memory of forward+backward (resident growth in a fresh process, beyond inputs and grad_out):")
    for m in memory:
        peak = "n/a" if m["peak_bytes"] is None else f"{m['peak_bytes'] / 2**20:.0f} MiB"
        print(f"  {m['shape']:20s} {m['algorithm']:7s} peak {peak:>9s}; output + both gradients = "
              f"{m['io_bytes'] / 2**20:.0f} MiB (float32)")


def write_json(path, result):
    with open(path, "w") as f:
        json.dump(result, f, indent=1, default=str)


def plot(rows, path, machine):
    """Speedup of ours (direct, fft) over the fastest reference, one group of bars per case."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (pip install matplotlib): no chart")
        return
    ours = [r for r in rows if r["ours"] and r.get("speedup") and r["impl"] != "ours:auto"]
    groups = sorted({(r["device"], r["shape"], r["direction"]) for r in ours})
    algos = sorted({r["impl"] for r in ours})
    fig, ax = plt.subplots(figsize=(max(8, len(groups) * 0.9), 4.5))
    width = 0.8 / max(1, len(algos))
    for k, algo in enumerate(algos):
        bars = [(g_i + k * width, r["speedup"]) for g_i, g in enumerate(groups) for r in ours
                if (r["device"], r["shape"], r["direction"]) == g and r["impl"] == algo]
        ax.bar([x for x, _ in bars], [y for _, y in bars], width, label=algo)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_yscale("log")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))])
    ax.set_xticklabels([f"{s}\n{d}" + (f" [{dev}]" if dev != "cpu" else "") for dev, s, d in groups],
                       rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("speedup over the fastest reference")
    ax.set_title(f"dense_conv on {machine['cpu']} ({machine['threads']} threads)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    settings = settings_from(args)
    start = time.perf_counter()
    case_list = cases(settings.batch)
    devices = devices_to_time()
    if args.cuda_only:
        if "cuda" not in devices:
            sys.exit("--cuda-only: no CUDA rows can be timed here (the reason is above)")
        devices = ["cuda"]
    machine, gemm, gemm_measurements = machine_info(devices, settings)
    rows, measurements = time_all(case_list, devices, gemm, settings, start)
    memory = measure_memory(case_list, settings)
    cqt_rows, cqt_measurements = ([], []) if args.cuda_only else run_cqt(args, start)

    print_compare(gemm_measurements + measurements + cqt_measurements,
                  "torch.utils.benchmark.Compare (median times; rows: implementation, columns: direction)")
    print_table(rows)
    print_cqt_table(cqt_rows)
    print_memory(memory)

    os.makedirs(args.out, exist_ok=True)
    write_json(os.path.join(args.out, "bench.json"),
               {"machine": machine, "batch": settings.batch, "quick": args.quick, "gemm_gflops": gemm,
                "rows": rows, "memory": memory, "cqt": cqt_rows, "seconds": time.perf_counter() - start})
    plot(rows, os.path.join(args.out, "bench.png"), machine)
    print(f"\nwrote {args.out}/bench.json and bench.png in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
