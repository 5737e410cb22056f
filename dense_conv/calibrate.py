"""Calibrate `algorithm="auto"` on this machine: time both algorithms, fit the cost model, cache it.

    python -m dense_conv.calibrate [--budget SECONDS] [--batch B] [--repeats N] [--clock cpu|wall]
                                   [--output PATH] [--no-save]

Times (float32) dense_conv2d (Ci=4, Cr=5 and one-channel problems, i.e. sparse_conv2d) and dense_mix_conv2d with
algorithm="direct" and "fft", forward (no gradient) and forward+backward, at response sizes on both sides
of the crossover, at torch's current thread count; fits the constants of every term of
dense_conv/_algorithm.py by non-negative least squares on relative errors; prints the measurements, the
constants and the choices they make; writes them to the cache file that `auto` reads for this machine
(CPU model, ISA, torch version, thread count: _algorithm.cache_path). Everything is measured, nothing
assumed about either algorithm, so a re-run stays right after the kernels change.
"""
import argparse
import itertools
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch

from . import _algorithm
from .functional import dense_conv2d, dense_mix_conv2d

# The user's layer: impulse [64, 4, 84, 600], response [64, 5, 37, 16], dense_mix_conv2d with L = 8.
USER_SHAPE = (64, 4, 5, 84, 600, 37, 16)
USER_L = 8


@dataclass(frozen=True)
class Shape:
    """One timed problem: impulse [B, Ci, Hi, Wi], response [B, Cr, Hr, Wr], L mix outputs (None: dense_conv2d)."""
    B: int
    Ci: int
    Cr: int
    Hi: int
    Wi: int
    Hr: int
    Wr: int
    L: Optional[int] = None

    def counts(self):
        return _algorithm.counts(self.B, self.Ci, self.Cr, self.Hi, self.Wi, self.Hr, self.Wr, self.L)

    @property
    def problem(self):
        return _algorithm.problem_of(self.Ci, self.Cr, self.L)

    def __str__(self):
        mix = "" if self.L is None else f" L={self.L}"
        return f"B={self.B} {self.Ci}x{self.Cr} {self.Hi}x{self.Wi} * {self.Hr}x{self.Wr}{mix}"


def calibration_shapes(batch):
    """Per problem, sizes that vary each term on its own: taps (MACs at a fixed output), channels
    (transforms per output), a small impulse (per-sample overhead), the batch (per-call overhead)."""
    big, small = (84, 600), (32, 128)
    dense = [Shape(batch, 4, 5, *big, *taps) for taps in ((5, 5), (9, 9), (15, 15), (37, 16), (37, 32))]
    dense += [Shape(4 * batch, 4, 5, *big, 37, 16), Shape(batch, 2, 3, *big, 37, 16),
              Shape(4 * batch, 4, 5, *small, 37, 16)]
    single = [Shape(4 * batch, 1, 1, *big, *taps) for taps in ((5, 5), (15, 15), (37, 16), (37, 32), (64, 64))]
    single += [Shape(batch, 1, 1, *big, 37, 16), Shape(16 * batch, 1, 1, *small, 15, 15)]
    mix = [Shape(batch, 4, 5, *big, *taps, L=8) for taps in ((5, 5), (15, 15), (37, 16))]
    mix += [Shape(4 * batch, 4, 5, *big, 37, 16, L=8), Shape(batch, 4, 5, *big, 37, 16, L=2),
            Shape(4 * batch, 4, 5, *small, 37, 16, L=8)]
    return dense + single + mix


def fit(rows, terms):
    """Non-negative constants c minimising sum_i ((sum_t c_t * counts_i[t]) / seconds_i - 1)^2.

    rows: [(counts dict, seconds)]. Relative errors weigh small and large problems alike. Exact
    non-negative least squares for a few terms: the best unconstrained fit on every subset of the terms,
    keeping those with no negative constant.
    """
    A = torch.tensor([[n[t] / s for t in terms] for n, s in rows], dtype=torch.float64)
    scale = A.abs().amax(dim=0).clamp_min(1e-300)  # unit columns: the counts span 20 orders of magnitude
    A = A / scale
    ones = torch.ones(len(rows), 1, dtype=torch.float64)
    best, best_residual = None, float("inf")
    for k in range(1, len(terms) + 1):
        for subset in itertools.combinations(range(len(terms)), k):
            x = torch.linalg.lstsq(A[:, subset], ones, driver="gelsd").solution[:, 0]
            if (x < 0).any():
                continue
            residual = float((A[:, subset] @ x - 1).square().sum())
            if residual < best_residual:
                best_residual, best = residual, dict(zip(subset, x.tolist()))
    return {t: best.get(i, 0.0) / float(scale[i]) for i, t in enumerate(terms)}


def fit_constants(measurements):
    """{model name: {term: seconds}} from [(Shape, algorithm, backward, seconds)]; models without a
    measurement keep their built-in constants."""
    table = {model: dict(terms) for model, terms in _algorithm.BUILTIN_CONSTANTS.items()}
    for model in _algorithm.MODELS:
        rows = [(shape.counts(), seconds) for shape, algorithm, backward, seconds in measurements
                if _algorithm.model_name(shape.problem, algorithm, backward) == model]
        if rows:
            table[model] = fit(rows, _algorithm.TERMS[model.split(".")[1]])
    return table


def _inputs(shape, backward, generator):
    def randn(*size):
        return torch.randn(*size, generator=generator).requires_grad_(backward)
    response = randn(shape.B, shape.Cr, shape.Hr, shape.Wr)
    impulse = randn(shape.B, shape.Ci, shape.Hi, shape.Wi)
    return (response, impulse) if shape.L is None else (response, impulse, randn(shape.L, shape.Ci, shape.Cr))


def cpu_clock():
    """CPU seconds of this thread, which runs its share of every parallel loop of the ops. Blind to other
    processes' load (on a shared machine a call's wall time can be several times this), it equals the
    wall time on an idle machine when the threads' shares are even, as in both algorithms at batch >=
    threads. (Not the process's CPU time: the kernel updates the other threads' share only at its ticks.)
    The command runs with OMP_WAIT_POLICY=PASSIVE unless told otherwise, so that waiting is not counted."""
    return time.thread_time()


CLOCKS = {"cpu": cpu_clock, "wall": time.perf_counter}


def time_call(shape, algorithm, backward, seconds_left, repeats, generator, clock):
    """Fastest of up to `repeats` timed calls (after one warm-up) on `clock`, stopping when `seconds_left`
    (on `clock`) is spent."""
    inputs = _inputs(shape, backward, generator)
    op = dense_conv2d if shape.L is None else dense_mix_conv2d
    grad_out = None

    def call():
        nonlocal grad_out
        with torch.set_grad_enabled(backward):
            out = op(*inputs, algorithm=algorithm)
            if backward:
                grad_out = torch.randn(out.shape, generator=generator) if grad_out is None else grad_out
                out.backward(grad_out)
                for t in inputs:
                    t.grad = None
    call()
    best, spent = float("inf"), 0.0
    for _ in range(repeats):
        start = clock()
        call()
        best, spent = min(best, clock() - start), spent + clock() - start
        if spent >= seconds_left:
            break
    return best


def measure(shapes, budget, repeats, log, clock=cpu_clock):
    """[(Shape, algorithm, backward, seconds)] of every shape x algorithm x pass, sharing `budget` seconds
    of `clock` (so a loaded machine times as many repeats as an idle one, taking longer)."""
    generator = torch.Generator().manual_seed(0)
    jobs = [(shape, algorithm, backward) for shape in shapes for backward in (False, True)
            for algorithm in ("direct", "fft")]
    start, out = clock(), []
    for i, (shape, algorithm, backward) in enumerate(jobs):
        share = max(0.0, (budget - (clock() - start)) / (len(jobs) - i))
        seconds = time_call(shape, algorithm, backward, share, repeats, generator, clock)
        out.append((shape, algorithm, backward, seconds))
        log(f"  {str(shape):42} {_algorithm.PASSES[backward]:9} {algorithm:6} {seconds * 1e3:9.2f} ms")
    return out


def report(measurements, table, log):
    """Measured against modelled times, and the winner each table predicts."""
    log("\nmeasured / modelled (fitted) ms; winner measured | fitted model | built-in model")
    by_call = {}
    for shape, algorithm, backward, seconds in measurements:
        by_call.setdefault((shape, backward), {})[algorithm] = seconds
    for (shape, backward), seconds in by_call.items():
        args = (shape.B, shape.Ci, shape.Cr, shape.Hi, shape.Wi, shape.Hr, shape.Wr, backward, shape.L)
        fitted = dict(zip(("direct", "fft"), _algorithm.costs(*args, table=table)))
        builtin = dict(zip(("direct", "fft"), _algorithm.costs(*args, table=_algorithm.BUILTIN_CONSTANTS)))
        cells = "  ".join(f"{a} {seconds[a] * 1e3:8.2f} / {fitted[a] * 1e3:8.2f}" for a in ("direct", "fft"))
        winners = [min(d, key=d.get) for d in (seconds, fitted, builtin)]
        log(f"  {str(shape):42} {_algorithm.PASSES[backward]:9} {cells}   {' | '.join(winners)}")


def user_choices(table):
    """{call: (direct ms, fft ms, choice)} the table models at the user's layer."""
    out = {}
    for name, L in (("dense_conv2d", None), (f"dense_mix_conv2d L={USER_L}", USER_L)):
        for backward in (False, True):
            direct, fft = _algorithm.costs(*USER_SHAPE, backward, L, table=table)
            choice = "fft" if fft < direct else "direct"
            out[f"{name} {_algorithm.PASSES[backward]}"] = (direct * 1e3, fft * 1e3, choice)
    return out


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m dense_conv.calibrate", description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=20.0,
                        help="seconds (of --clock) to aim for; each call runs at least twice (warm-up, timing)")
    parser.add_argument("--batch", type=int, default=4, help="batch of the timed dense problems (others scale)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="at most this many timings per call (the fastest counts)")
    parser.add_argument("--clock", choices=CLOCKS, default="cpu",
                        help="cpu (default): this thread's CPU seconds, robust to other load; wall: elapsed seconds")
    parser.add_argument("--output", help="write the calibration here instead of this machine's cache file")
    parser.add_argument("--no-save", action="store_true", help="measure and print only")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.repeats < 1 or args.budget < 0:
        parser.error("--batch and --repeats must be >= 1 and --budget >= 0")
    return args


def main(argv=None):
    """The command: measure, fit, print, save (unless --no-save); returns the fitted constants."""
    args = parse_args(argv)

    key = _algorithm.machine_key()
    print(f"calibrating on {key}, {args.clock} clock")
    start = time.perf_counter()
    measurements = measure(calibration_shapes(args.batch), args.budget, args.repeats, print, CLOCKS[args.clock])
    table = fit_constants(measurements)
    report(measurements, table, print)

    print("\nconstants (s per unit): fitted | built-in")
    for model in _algorithm.MODELS:
        fitted = ", ".join(f"{t}={c:.3g}" for t, c in table[model].items())
        builtin = ", ".join(f"{t}={c:.3g}" for t, c in _algorithm.BUILTIN_CONSTANTS[model].items())
        print(f"  {model:24} {fitted:48} | {builtin}")
    print("\nmodelled at the user's layer (impulse [64, 4, 84, 600], response [64, 5, 37, 16]): direct / fft ms")
    before, after = user_choices(_algorithm.BUILTIN_CONSTANTS), user_choices(table)
    for call in after:
        b, a = before[call], after[call]
        print(f"  {call:32} built-in {b[0]:7.1f} / {b[1]:7.1f} -> {b[2]:6}  fitted {a[0]:7.1f} / {a[1]:7.1f} -> {a[2]}")
    print(f"measured in {time.perf_counter() - start:.1f} s")

    if not args.no_save:
        path = save(args.output or _algorithm.cache_path(key), key, table, measurements, args.clock)
        print(f"wrote {path}")
    return table


def save(path, key, table, measurements, clock):
    """Writes a calibration file (the format _algorithm.read_calibration reads) and returns its path."""
    data = {"format": _algorithm.CALIBRATION_FORMAT, "key": key, "clock": clock, "constants": table,
            "measurements": [{"shape": asdict(s), "algorithm": a, "pass": _algorithm.PASSES[b], "seconds": t}
                             for s, a, b, t in measurements]}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    partial = f"{path}.{os.getpid()}.tmp"  # then renamed: a reader never sees half a file
    with open(partial, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(partial, path)
    _algorithm._load_constants.cache_clear()  # this process's later `auto` calls read the new file
    return path


if __name__ == "__main__":
    if parse_args(sys.argv[1:]).clock == "cpu" and "OMP_WAIT_POLICY" not in os.environ:
        # OpenMP threads spin while they wait at the end of a parallel loop, so a peer preempted by another
        # process would charge its delay to this thread's CPU clock: start again (OpenMP reads the variable
        # once, when torch loads it) with threads that sleep while they wait.
        os.execve(sys.executable, [sys.executable, "-m", "dense_conv.calibrate", *sys.argv[1:]],
                  {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    main(sys.argv[1:])
