"""The package's main job: time dense_conv2d / sparse_conv2d, ours per algorithm against every
pure-PyTorch reference, forward and forward+backward, and write results/bench.json + results/bench.png.

    python bench/bench.py            # full run with the CQT rows (under ~5 minutes on a 2-core machine)
    python bench/bench.py --quick    # batch 8 instead of 64, shorter CQT runs (under a minute)
    python bench/bench.py --no-cqt   # without the CQT rows (bench/bench_cqt.py)

Builds the extension in place first if it cannot be imported. Every time is the median of
torch.utils.benchmark runs; GFLOP/s counts 2 x the multiply-adds inside the causal window (forward
once, forward+backward three times); "%GEMM" divides by the float32 rate of a 4096^3 torch matmul
measured in the same run; "speedup" is over the fastest reference at that shape and direction.
A reference is skipped (with the reason printed) when a run at batch 1, scaled to the full batch,
predicts more than the time budget, or when it would need more memory than the budget. A reference
predicted to take more than a second per call is timed by one call after that estimate instead of
torch.utils.benchmark's repeated runs (to keep the whole run short; such rows are marked "1 call").
The CQT rows (dense_conv.CQT vs librosa.cqt and nnAudio, bench/bench_cqt.py) are a second table; a
missing librosa / nnAudio is stated there.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import torch  # noqa: E402
from torch.utils.benchmark import Timer  # noqa: E402


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
from dense_conv import _algorithm, reference  # noqa: E402

# (name, kind, impulse [B, Ci, Hi, Wi], response [B, Cr, Hr, Wr]); B is replaced by --batch.
SHAPES = [
    ("dense 37x16 (user)", "dense", (64, 4, 84, 600), (64, 5, 37, 16)),
    ("dense 9x9", "dense", (64, 4, 84, 600), (64, 5, 9, 9)),
    ("dense 5x5", "dense", (64, 4, 84, 600), (64, 5, 5, 5)),
    ("sparse 37x16", "sparse", (64, 4, 84, 600), (64, 4, 37, 16)),
    ("sparse 5x5", "sparse", (64, 4, 84, 600), (64, 4, 5, 5)),
]


def macs(kind, imp, resp):
    B, Ci, Hi, Wi = imp
    Cr, Hr, Wr = resp[1:]
    pairs = Ci * Cr if kind == "dense" else Ci
    return B * pairs * _algorithm.causal_taps(Hi, min(Hr, Hi)) * _algorithm.causal_taps(Wi, min(Wr, Wi))


def out_numel(kind, imp, resp):
    B, Ci, Hi, Wi = imp
    return B * (Ci * resp[1] if kind == "dense" else Ci) * Hi * Wi


def implementations(kind, device):
    """name -> (function(response, impulse), is_ours)"""
    impls = {}
    op = dense_conv.dense_conv2d if kind == "dense" else dense_conv.sparse_conv2d
    algos = ["direct", "fft", "auto"] if device == "cpu" else ["direct"]
    for a in algos:
        impls[f"ours:{a}"] = ((lambda r, i, a=a: op(r, i, algorithm=a)), True)
    refs = reference.DENSE_VARIANTS if kind == "dense" else reference.SPARSE_VARIANTS
    for name, fn in refs.items():
        if device != "cpu" and name not in ("grouped", "fft", "fft_smooth"):
            continue
        impls[f"ref:{name}"] = (fn, False)
    return impls


def make_inputs(imp, resp, device, grad):
    g = torch.Generator().manual_seed(0)
    i = torch.randn(*imp, generator=g).to(device).requires_grad_(grad)
    r = torch.randn(*resp, generator=g).to(device).requires_grad_(grad)
    return r, i


def timed(stmt_fn, min_time):
    stmt_fn()  # warm-up: first calls pay one-time costs (FFT plans, per-thread buffers, fresh pages)
    # Timer runs on one thread unless told otherwise: time with every thread torch would use.
    t = Timer(stmt="f()", globals={"f": stmt_fn}, num_threads=torch.get_num_threads()).blocked_autorange(
        min_run_time=min_time)
    return t.median


def fwd_fn(fn, r, i):
    def run():
        with torch.no_grad():
            fn(r, i)
    return run


def fwdbwd_fn(fn, r, i, g_out):
    def run():
        out = fn(r, i)
        torch.autograd.grad(out, (r, i), g_out)
    return run


def gemm_rate(device, min_time):
    n = 4096
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    t = timed(lambda: a @ b, min_time)
    return 2 * n ** 3 / t / 1e9


def estimate(fn, kind, imp, resp, device, grad, limit=float("inf")):
    """Seconds of one call at the full batch, from a call at batch 1 scaled by the batch. The faster
    of two probe calls counts (the first pays one-time costs: allocator, FFT plans, autograd setup);
    a probe that alone predicts over 3 x `limit` is not repeated."""
    small_imp, small_resp = (1,) + tuple(imp[1:]), (1,) + tuple(resp[1:])
    r, i = make_inputs(small_imp, small_resp, device, grad)
    if grad:
        g_out = torch.randn(out_numel(kind, small_imp, small_resp), device=device).view(
            (1, -1) + tuple(imp[2:]))
        run = fwdbwd_fn(fn, r, i, g_out)
    else:
        run = fwd_fn(fn, r, i)
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        run()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
        if best * imp[0] > 3 * limit:
            break
    return best * imp[0]


def ref_memory_bytes(name, kind, imp, resp, esize):
    """Rough peak of the reference variants that materialise big intermediates."""
    B, Ci, Hi, Wi = imp
    Cr, Hr, Wr = resp[1:]
    if name in ("ref:unfold_matmul", "ref:einsum"):
        return B * Ci * Hr * Wr * Hi * Wi * esize * 2
    return 0


PEAK_SCRIPT = r"""
import resource, sys, torch
sys.path.insert(0, {root!r})
import dense_conv
kind, algo = {kind!r}, {algo!r}
g = torch.Generator().manual_seed(0)
i = torch.randn(*{imp!r}, generator=g).requires_grad_()
r = torch.randn(*{resp!r}, generator=g).requires_grad_()
op = dense_conv.dense_conv2d if kind == "dense" else dense_conv.sparse_conv2d
with torch.no_grad():
    op(r[:1], i[:1], algorithm=algo)          # warm up (libraries, plans) outside the measurement
g_out = torch.randn(op(r.detach()[:1], i.detach()[:1], algorithm=algo).shape[1:])
import os, threading
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
go = g_out.expand((i.shape[0],) + tuple(g_out.shape)).contiguous()
base = rss(); peak = [base]; done = [False]
def sample():
    while not done[0]:
        peak[0] = max(peak[0], rss())
threading.Thread(target=sample, daemon=True).start()
out = op(r, i, algorithm=algo)
gr, gi = torch.autograd.grad(out, (r, i), go)
peak[0] = max(peak[0], rss()); done[0] = True
print(peak[0] - base)
"""


def peak_memory(kind, imp, resp, algo):
    """Peak resident-memory growth (bytes) of one forward+backward in a fresh process, sampled from
    /proc/self/statm after the inputs and grad_out exist; it includes the output and both gradients."""
    code = PEAK_SCRIPT.format(root=ROOT, kind=kind, algo=algo, imp=tuple(imp), resp=tuple(resp))
    try:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        return int(res.stdout.strip().splitlines()[-1])
    except Exception as e:  # noqa: BLE001
        print(f"  peak memory of {algo} failed: {e}")
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="batch 8, shorter timing runs (under a minute)")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default 64, 8 with --quick)")
    ap.add_argument("--budget", type=float, default=None,
                    help="skip a reference whose predicted time per call exceeds this (s)")
    ap.add_argument("--no-cqt", action="store_true", help="leave out the CQT rows (bench/bench_cqt.py)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    ap.add_argument("--out", default=os.path.join(ROOT, "results"))
    args = ap.parse_args()
    batch = args.batch or (8 if args.quick else 64)
    budget = args.budget or (0.2 if args.quick else 2.0)
    min_time = 0.05 if args.quick else 0.25
    single_call = 0.2 if args.quick else 1.0  # references predicted slower than this: timed by one call
    mem_budget = 6 << 30

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and dense_conv.cuda_kernels_compiled() else [])
    machine = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
               "torch": torch.__version__}
    try:
        with open("/proc/cpuinfo") as f:
            machine["cpu"] = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if "cuda" in devices:
        machine["gpu"] = torch.cuda.get_device_name()
    print(f"machine: {machine['cpu']}, {machine['threads']} threads, torch {machine['torch']}"
          + (f", GPU {machine['gpu']}" if "gpu" in machine else ""), flush=True)

    gemm = {d: gemm_rate(d, min_time) for d in devices}
    for d in devices:
        print(f"GEMM 4096^3 float32 on {d}: {gemm[d]:.0f} GFLOP/s", flush=True)

    rows = []
    start = time.perf_counter()
    for device in devices:
        for label, kind, imp, resp in SHAPES:
            imp = (batch,) + tuple(imp[1:])
            resp = (batch,) + tuple(resp[1:])
            flops = 2 * macs(kind, imp, resp)
            impls = implementations(kind, device)
            for direction, grad in (("fwd", False), ("fwd+bwd", True)):
                for name, (fn, ours) in impls.items():
                    elapsed = time.perf_counter() - start
                    print(f"[{elapsed:6.1f}s] {device} {label} {direction} {name} ...", end=" ", flush=True)
                    row = {"device": device, "shape": label, "kind": kind, "impulse": imp, "response": resp,
                           "direction": direction, "impl": name, "ours": ours}
                    if not ours:
                        mem = ref_memory_bytes(name, kind, imp, resp, 4)
                        if mem > mem_budget:
                            row["skipped"] = f"needs ~{mem / 2**30:.0f} GiB"
                            print("skipped:", row["skipped"], flush=True)
                            rows.append(row)
                            continue
                        # the bars to beat get more time; the FFT references are named in the targets
                        limit = budget * (16 if name in ("ref:fft", "ref:fft_smooth") else
                                          8 if name == "ref:grouped" else 1)
                        est = estimate(fn, kind, imp, resp, device, grad, limit)
                        if est > limit:
                            row["skipped"] = f"~{est:.1f} s per call predicted from batch 1 (budget {budget} s)"
                            print("skipped:", row["skipped"], flush=True)
                            rows.append(row)
                            continue
                    r, i = make_inputs(imp, resp, device, grad)
                    if grad:
                        g_out = torch.randn(out_numel(kind, imp, resp), device=device).view((batch, -1) + imp[2:])
                        run = fwdbwd_fn(fn, r, i, g_out)
                    else:
                        run = fwd_fn(fn, r, i)
                    if not ours and est > single_call:
                        t0 = time.perf_counter()
                        run()
                        if device == "cuda":
                            torch.cuda.synchronize()
                        t = time.perf_counter() - t0
                        row["single_call"] = True
                    else:
                        t = timed(run, min_time)
                    n_flops = flops * (3 if grad else 1)
                    row.update(time=t, gflops=n_flops / t / 1e9, pct_gemm=100 * n_flops / t / 1e9 / gemm[device])
                    if name == "ours:auto":
                        B, Ci, Hi, Wi = imp
                        Cr, Hr, Wr = resp[1:]
                        if kind == "sparse":
                            B, Ci, Cr = B * Ci, 1, 1
                        row["auto_choice"] = _algorithm.choose(B, Ci, Cr, Hi, Wi, Hr, Wr, grad)
                    print(f"{t * 1e3:9.1f} ms", flush=True)
                    rows.append(row)
                    del r, i, run

    # speedup over the fastest reference per (device, shape, direction)
    for row in rows:
        if "time" in row:
            refs = [x["time"] for x in rows if "time" in x and not x["ours"] and x["device"] == row["device"]
                    and x["shape"] == row["shape"] and x["direction"] == row["direction"]]
            row["best_ref"] = min(refs) if refs else None
            row["speedup"] = (min(refs) / row["time"]) if refs else None

    memory = []
    if not (args.no_memory or args.quick):
        for label, kind, imp, resp in SHAPES[:1]:
            imp = (batch,) + tuple(imp[1:])
            resp = (batch,) + tuple(resp[1:])
            io = 4 * (out_numel(kind, imp, resp) + sum_numel(imp) + sum_numel(resp))  # out + both grads
            for algo in ("direct", "fft"):
                peak = peak_memory(kind, imp, resp, algo)
                memory.append({"shape": label, "algorithm": algo, "peak_bytes": peak, "io_bytes": io})

    cqt_rows = []
    if args.no_cqt:
        print("CQT rows left out (--no-cqt)")
    else:
        print(f"[{time.perf_counter() - start:6.1f}s] CQT rows (bench/bench_cqt.py) ...", flush=True)
        try:
            import bench_cqt
            cqt_rows, _ = bench_cqt.run(quick=args.quick)
        except ImportError as e:
            cqt_rows = [dict(name="CQT rows", case="-", seconds=None, note=f"bench_cqt not importable: {e}")]
        except Exception as e:  # noqa: BLE001  (a failing optional reference must not lose the table)
            cqt_rows = [dict(name="CQT rows", case="-", seconds=None, note=f"failed: {type(e).__name__}: {e}")]

    print_table(rows, gemm)
    if cqt_rows:
        print_cqt_table(cqt_rows)
    if memory:
        print("\nPeak memory of forward+backward (resident growth in a fresh process, beyond inputs and grad_out):")
        for m in memory:
            peak = "n/a" if m["peak_bytes"] is None else f"{m['peak_bytes'] / 2**20:.0f} MiB"
            print(f"  {m['shape']:20s} {m['algorithm']:7s} peak {peak:>9s}; output + both gradients = "
                  f"{m['io_bytes'] / 2**20:.0f} MiB (float32)")
    os.makedirs(args.out, exist_ok=True)
    result = {"machine": machine, "batch": batch, "quick": args.quick, "gemm_gflops": gemm, "rows": rows,
              "memory": memory, "cqt": cqt_rows, "seconds": time.perf_counter() - start}
    with open(os.path.join(args.out, "bench.json"), "w") as f:
        json.dump(result, f, indent=1, default=str)
    plot(rows, os.path.join(args.out, "bench.png"), machine)
    print(f"\nwrote {args.out}/bench.json and bench.png in {time.perf_counter() - start:.0f} s")


def sum_numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def print_table(rows, gemm):
    print(f"\n{'device':6s} {'shape':20s} {'dir':8s} {'implementation':34s} {'time':>10s} {'GFLOP/s':>8s} "
          f"{'%GEMM':>6s} {'speedup':>8s}")
    for row in rows:
        name = row["impl"] + (f" ({row['auto_choice']})" if "auto_choice" in row else "") + (
            " (1 call)" if row.get("single_call") else "")
        head = f"{row['device']:6s} {row['shape']:20s} {row['direction']:8s} {name:34s}"
        if "time" not in row:
            print(f"{head} skipped: {row['skipped']}")
            continue
        sp = f"{row['speedup']:7.1f}x" if row.get("speedup") and row["ours"] else ""
        print(f"{head} {row['time'] * 1e3:8.1f}ms {row['gflops']:8.1f} {row['pct_gemm']:5.1f}% {sp:>8s}")


def print_cqt_table(rows):
    print(f"\nCQT (60 s of audio at 22050 Hz, 288 bins, 36/octave, hop 512; bench/bench_cqt.py)")
    print(f"{'implementation':28s} {'case':26s} {'time':>10s}  note")
    for r in rows:
        t = f"{r['seconds'] * 1e3:8.1f}ms" if r.get("seconds") is not None else "-"
        print(f"{r['name']:28s} {r['case']:26s} {t:>10s}  {r.get('note', '')}")


def plot(rows, path, machine):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (pip install matplotlib): no chart")
        return
    ours = [r for r in rows if r["ours"] and r.get("speedup") and r["impl"] != "ours:auto"]
    groups = sorted({(r["device"], r["shape"], r["direction"]) for r in ours}, key=lambda k: [x for x in k])
    algos = sorted({r["impl"] for r in ours})
    fig, ax = plt.subplots(figsize=(max(8, len(groups) * 0.9), 4.5))
    width = 0.8 / max(1, len(algos))
    for k, a in enumerate(algos):
        xs, ys = [], []
        for g_i, g in enumerate(groups):
            for r in ours:
                if (r["device"], r["shape"], r["direction"]) == g and r["impl"] == a:
                    xs.append(g_i + k * width)
                    ys.append(r["speedup"])
        ax.bar(xs, ys, width, label=a)
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


if __name__ == "__main__":
    main()
