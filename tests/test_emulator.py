"""The CUDA emulator's own tests: warp-op and barrier semantics, poisoning, schedules, and planted bugs
it must report (tests/emu/planted_bugs.cuh). Kernels run on the CPU through tests/emu/harness.py."""
import math
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from emu import harness  # noqa: E402

SCHEDULES = [("forward", 0), ("reverse", 0), ("random", 1), ("random", 2)]
SCHEDULE_IDS = [f"{s}{seed or ''}" for s, seed in SCHEDULES]


@pytest.fixture(params=SCHEDULES, ids=SCHEDULE_IDS)
def schedule(request):
    harness.set_schedule(*request.param)
    yield request.param
    harness.set_schedule("forward")


def nan_equal(a, b):
    return torch.equal(torch.nan_to_num(a, nan=-12345.0), torch.nan_to_num(b, nan=-12345.0))


# ---- warp operations ----------------------------------------------------------------------------

SHFL_IDX, SHFL_UP, SHFL_DOWN, SHFL_XOR = range(4)


def expected_shuffle(values, op, arg, width, mask):
    """CUDA's rules; a source lane that is not named in the mask (or past the block) reads as NaN."""
    out = values.clone()
    n = len(values)
    nan = float("nan")
    for t in range(n):
        lane, base = t % 32, t - t % 32
        if not mask >> lane & 1:
            out[t] = nan  # did not take part: output stays poisoned
            continue
        segment = lane & ~(width - 1)
        if op == SHFL_IDX:
            src = segment + arg % width
        elif op == SHFL_UP:
            src = lane - arg if lane - arg >= segment else lane
        elif op == SHFL_DOWN:
            src = lane + arg if lane + arg < segment + width else lane
        else:
            src = lane ^ arg if (lane ^ arg) < segment + width else lane
        named = base + src < n and mask >> src & 1
        out[t] = values[base + src] if named else nan
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("op,arg", [(SHFL_IDX, 3), (SHFL_IDX, 37), (SHFL_UP, 1), (SHFL_UP, 5), (SHFL_DOWN, 2),
                                    (SHFL_DOWN, 16), (SHFL_XOR, 1), (SHFL_XOR, 16), (SHFL_XOR, 7)])
@pytest.mark.parametrize("width", [32, 8])
@pytest.mark.parametrize("mask", [0xFFFFFFFF, 0x0000FFFF, 0x0F0F0F0F])
def test_shuffle(dtype, op, arg, width, mask):
    nthreads = 48  # one full warp and one half warp
    values = torch.arange(nthreads, dtype=dtype) * 1.5 + 1
    out = harness.poisoned((nthreads,), dtype)
    harness.call("dc_emu_shuffle", harness.DTYPE_CODES[dtype], values, out, nthreads, op, arg, width, mask)
    assert nan_equal(out, expected_shuffle(values, op, arg, width, mask))


def test_shuffle_results_are_computed_before_any_lane_continues(schedule):
    # A rotate by xor and up/down at once: computing lane by lane would read overwritten values.
    values = torch.arange(32, dtype=torch.float32)
    out = harness.poisoned((32,), torch.float32)
    harness.call("dc_emu_shuffle", 0, values, out, 32, SHFL_XOR, 31, 32, 0xFFFFFFFF)
    assert torch.equal(out, values.flip(0))


@pytest.mark.parametrize("mask", [0xFFFFFFFF, 0x0000FFFF, 0xAAAAAAAA])
def test_ballot_any_all(mask, schedule):
    nthreads = 40
    pred = (torch.arange(nthreads) % 3 == 0).to(torch.int32)
    pred[32:] = 1  # second (partial) warp: all true
    ballot = harness.poisoned((nthreads,), torch.int32)
    any_ = harness.poisoned((nthreads,), torch.int32)
    all_ = harness.poisoned((nthreads,), torch.int32)
    harness.call("dc_emu_ballot", pred, ballot, any_, all_, nthreads, mask)
    for t in range(nthreads):
        lane, base = t % 32, t - t % 32
        if not mask >> lane & 1:
            assert ballot[t] == -1 and any_[t] == -1 and all_[t] == -1
            continue
        lanes = [k for k in range(32) if mask >> k & 1 and base + k < nthreads]
        bits = sum(1 << k for k in lanes if pred[base + k])
        assert ballot[t].item() & 0xFFFFFFFF == bits
        assert any_[t] == int(bits != 0)
        assert all_[t] == int(all(pred[base + k] for k in lanes))


# ---- barriers, shared memory, schedules ---------------------------------------------------------

def test_syncthreads_orders_writes_before_reads(schedule):
    nblocks, nthreads = 3, 96
    neighbour = harness.poisoned((nblocks * nthreads,), torch.int32)
    count = harness.poisoned((nblocks * nthreads,), torch.int32)
    harness.call("dc_emu_barrier", neighbour, count, nblocks, nthreads)
    t = torch.arange(nthreads)
    for b in range(nblocks):
        expected = (t + 1) % nthreads + 1000 * b + 2 * ((t + 2) % nthreads)
        assert torch.equal(neighbour[b * nthreads:(b + 1) * nthreads], expected.to(torch.int32))
    assert torch.all(count == nthreads // 2)


def test_shared_memory_is_poisoned_before_every_block(schedule):
    nblocks, nthreads = 3, 64
    out = torch.zeros(nblocks * nthreads)
    harness.call("dc_emu_read_unwritten_smem", out, nblocks, nthreads)
    assert torch.isnan(out).all(), "static or dynamic shared memory kept a previous block's data"


def test_schedules_change_thread_and_block_order():
    nblocks, nthreads = 6, 64

    def arrival(schedule, seed=0):
        harness.set_schedule(schedule, seed)
        counters = torch.zeros(1 + nblocks, dtype=torch.int32)
        thread_rank = harness.poisoned((nblocks, nthreads), torch.int32)
        block_rank = harness.poisoned((nblocks,), torch.int32)
        harness.call("dc_emu_arrival_order", counters, thread_rank, block_rank, nblocks, nthreads)
        harness.set_schedule("forward")
        return thread_rank[0].tolist(), block_rank.tolist()

    forward = list(range(nthreads)), list(range(nblocks))
    assert arrival("forward") == forward
    assert arrival("reverse") == (forward[0][::-1], forward[1][::-1])
    random1, random2 = arrival("random", 1), arrival("random", 2)
    assert random1 == arrival("random", 1), "a seed must give the same schedule"
    for threads, blocks in (random1, random2):
        assert sorted(threads) == forward[0] and threads not in (forward[0], forward[0][::-1])
        assert sorted(blocks) == forward[1] and blocks != forward[1]
    assert random1 != random2


def test_invalid_launch_configurations_are_errors():
    with pytest.raises(RuntimeError, match="exceeds 1024 threads"):
        harness.call("dc_emu_invalid_launch", 2048, 0)
    with pytest.raises(RuntimeError, match="dynamic shared memory"):
        harness.call("dc_emu_invalid_launch", 32, 64 * 1024)


def test_fiber_stack_overflow_is_reported():
    out = harness.poisoned((4,), torch.int32)
    with pytest.raises(RuntimeError, match=r"stack overflow .* block \(0,0,0\) thread \(\d,0,0\)"):
        harness.call("dc_emu_stack_overflow", out, 1000)
    # The emulator is still usable afterwards.
    harness.call("dc_emu_stack_overflow", out, 2)
    assert torch.all(out == 3)


# ---- planted bugs (tests/emu/planted_bugs.cuh) --------------------------------------------------

def test_planted_missing_syncthreads_in_reduction():
    n = 300  # three blocks, the last one partial
    values = torch.arange(n, dtype=torch.float32) % 17 + 1
    expected = torch.stack([values[b * 128:(b + 1) * 128].sum() for b in range(3)])
    wrong = []
    for schedule, seed in SCHEDULES:
        harness.set_schedule(schedule, seed)
        for missing in (False, True):
            out = harness.poisoned((3,), torch.float32)
            harness.call("dc_emu_block_sum", values, out, n, int(missing))
            if not missing:
                assert torch.equal(out, expected), schedule
            elif not torch.equal(out, expected):
                wrong.append(schedule)
    harness.set_schedule("forward")
    # Reverse order happens to run every level's readers after its writers: one schedule is not enough.
    assert "forward" in wrong and "random" in wrong and "reverse" not in wrong


def test_planted_tile_read_past_loaded_halo_reads_poison(schedule):
    n = 200
    values = torch.arange(n + 1, dtype=torch.float32)
    expected = values[:-1] + values[1:]
    for bug, ok in ((0, True), (1, False)):
        out = harness.poisoned((n,), torch.float32)
        harness.call("dc_emu_tile_pair_sum", values, out, n, bug)
        if ok:
            assert torch.equal(out, expected)
        else:
            # The last thread of every full tile reads the halo nobody loaded: poison, hence NaN.
            assert torch.isnan(out[127]) and not torch.isnan(out[:127]).any()


def test_planted_early_return_before_barrier(schedule):
    n = 200  # the second block has out-of-range threads
    values = torch.arange(n, dtype=torch.float32) + 1
    out = harness.poisoned((n,), torch.float32)
    harness.call("dc_emu_scale_by_first", values, out, n, 0)
    assert torch.equal(out, values * torch.where(torch.arange(n) < 128, 1.0, 129.0))
    with pytest.raises(RuntimeError, match=r"__syncthreads at .*planted_bugs.cuh:\d+ reached after kernel "
                                           r".*scale_by_first_kernel<true>.* block \(1,0,0\) thread \(72,0,0\) exited"):
        harness.call("dc_emu_scale_by_first", values, out, n, 1)


def test_planted_warp_reduction_without_syncwarp():
    nblocks = 2
    values = torch.arange(nblocks * 128, dtype=torch.float32) % 13
    expected = values.reshape(-1, 32).sum(1)
    wrong = []
    for schedule, seed in SCHEDULES:
        harness.set_schedule(schedule, seed)
        for missing in (False, True):
            out = harness.poisoned((nblocks * 4,), torch.float32)
            harness.call("dc_emu_warp_sum", values, out, nblocks, int(missing))
            if not missing:
                assert torch.equal(out, expected), schedule
            elif not torch.equal(out, expected):
                wrong.append(schedule)
    harness.set_schedule("forward")
    assert "forward" in wrong and "random" in wrong


def test_planted_divergent_barrier(schedule):
    out = harness.poisoned((128,), torch.float32)
    with pytest.raises(RuntimeError, match=r"divergent __syncthreads: .*block \(0,0,0\) thread \(\d+,0,0\) waits at "
                                           r".*planted_bugs.cuh:(\d+), .* waits at .*planted_bugs.cuh:(?!\1)\d+"):
        harness.call("dc_emu_divergent_barrier", out)


def test_planted_warp_op_deadlock(schedule):
    out = harness.poisoned((64,), torch.float32)
    with pytest.raises(RuntimeError, match=r"deadlock: .*thread \(\d+,0,0\) waits at __shfl_xor_sync "
                                           r".*planted_bugs.cuh:\d+"):
        harness.call("dc_emu_warp_deadlock", out)


def test_planted_misaligned_float4_ldg():
    values = torch.arange(4 * 8 + 4, dtype=torch.float32)
    out = harness.poisoned((8,), torch.float32)
    with pytest.raises(RuntimeError, match=r"misaligned __ldg of 16 bytes .* thread \(\d,0,0\)"):
        harness.call("dc_emu_misaligned_float4", values, out, 8, 1)
