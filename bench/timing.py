"""The one way bench.py and bench_cqt.py time a call: torch.utils.benchmark.Timer after a warm-up
call, on every thread torch uses, gathered into torch.utils.benchmark.Compare.

Naming, so that Compare lays the table out the same way for every benchmark:
    label       the operation and its shape   ("dense_conv2d 9x9: impulse [8, 4, 84, 600] ...")
    sub_label   the implementation            ("ours:direct", "ref:grouped", "librosa.cqt")
    description the direction                 ("fwd" or "fwd+bwd")
    env         the device                    ("cpu", "cuda")
"""
import torch
from torch.utils import benchmark
from torch.utils.benchmark.utils.timer import timer as synchronized_clock

FORWARD, FORWARD_BACKWARD = "fwd", "fwd+bwd"


WARMUP_CALLS = 3


def measure(fn, *, label, sub_label, description, env=None, min_run_time=0.2, slow=False):
    """Times fn() and returns the torch.utils.benchmark.Measurement (use .median).

    Normal calls: WARMUP_CALLS warm-up calls (they pay one-time costs: FFT plans, per-thread buffers;
    and the first fresh outputs of ~100 MB, whose pages fault in 4 KiB at a time until the kernel has
    free transparent huge pages at hand: 5-8x the steady time of a per_sample 5x5 forward on this host),
    then blocked_autorange for at least `min_run_time` seconds.
    slow=True, for calls of a second or more: no separate warm-up and no time budget; the untimed
    block-size probe inside blocked_autorange is then the warm-up, so fn runs twice and one call is
    timed. CUDA work is synchronized by the Timer itself before each reading of the clock.
    """
    if not slow:
        for _ in range(WARMUP_CALLS):
            fn()
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, label=label, sub_label=sub_label,
                            description=description, env=env,
                            # Timer defaults to one thread; time with every thread torch would use
                            num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=0.0 if slow else min_run_time)


def seconds_of_one_call(fn):
    """Wall time of one fn() on the Timer's own clock (it synchronizes CUDA before each reading).
    For cost probes only, which decide whether to time something at all: every Timer measurement
    runs fn at least twice, too much for a probe of a call that may take many seconds."""
    t0 = synchronized_clock()
    fn()
    return synchronized_clock() - t0


def timed_calls(measurement):
    """How many calls the median of `measurement` is taken over."""
    return measurement.number_per_run * len(measurement.raw_times)


def print_compare(measurements, title=None):
    """torch.utils.benchmark's own table: one block per label, a row per implementation, a column
    per direction."""
    if not measurements:
        return
    if title:
        print(f"\n{title}")
    compare = benchmark.Compare(measurements)
    compare.trim_significant_figures()
    compare.print()
