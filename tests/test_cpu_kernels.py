"""CPU kernels (csrc/cpu): every instruction-set path of the direct kernels against the float64
reference, chosen through torch's CPU capability; scratch allocation failure raises; the FFT
algorithm's per-thread workspaces do not outlive a large call."""
import gc
import os
import subprocess
import sys

import pytest
import torch

import dense_conv

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPABILITY_RANK = {"DEFAULT": 0, "AVX2": 1, "AVX512": 2}


def run_python(code, **env_vars):
    env = dict(os.environ, **env_vars)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)


# (B, Ci, Cr, Hi, Wi, Hr, Wr): tails of every width, taps beyond the image, Cr = 1 (the sparse
# kernels), two response groups (Cr = 7), one row, many columns.
ISA_SHAPES = [(2, 3, 5, 7, 33, 4, 5), (2, 2, 3, 20, 70, 37, 16), (3, 1, 1, 5, 17, 8, 20), (1, 2, 7, 9, 40, 9, 9),
              (1, 1, 2, 1, 129, 3, 40)]

ISA_CHECK = """
import torch, dense_conv
from dense_conv import reference as R
assert torch.backends.cpu.get_cpu_capability() == {capability!r}, torch.backends.cpu.get_cpu_capability()
torch.manual_seed(0)
for (B, Ci, Cr, Hi, Wi, Hr, Wr) in {shapes!r}:
    for dt in (torch.float32, torch.float64):
        r = torch.randn(B, Cr, Hr, Wr, dtype=torch.float64); i = torch.randn(B, Ci, Hi, Wi, dtype=torch.float64)
        g = torch.randn(B, Ci * Cr, Hi, Wi, dtype=torch.float64)
        rq, iq = r.clone().requires_grad_(), i.clone().requires_grad_()
        ref = R.dense_shift_add(rq, iq); ref.backward(g)
        rx, ix = r.to(dt).requires_grad_(), i.to(dt).requires_grad_()
        o = dense_conv.dense_conv2d(rx, ix, algorithm={algorithm!r}); o.backward(g.to(dt))
        for name, a, b in (("out", o, ref), ("grad_impulse", ix.grad, iq.grad), ("grad_response", rx.grad, rq.grad)):
            e = ((a.double() - b).abs().max() / b.abs().max()).item()
            assert e < (2e-5 if dt == torch.float32 else 1e-12), (name, B, Ci, Cr, Hi, Wi, Hr, Wr, dt, e)
print("ok")
"""


@pytest.mark.parametrize("algorithm", ["direct", "fft"])
@pytest.mark.parametrize("capability", ["DEFAULT", "AVX2", "AVX512"])
def test_cpu_kernels_follow_torch_cpu_capability(capability, algorithm):
    """ATEN_CPU_CAPABILITY picks the direct kernels (simple rows, AVX2, AVX-512) and the FFT's column
    transforms (csrc/cpu/column_fft.cpp); each path gives the reference's answers. Runs in a fresh process:
    the capability is read once per process."""
    if CAPABILITY_RANK[capability] > CAPABILITY_RANK.get(torch.backends.cpu.get_cpu_capability(), 0):
        pytest.skip(f"this CPU does not run {capability}")
    res = run_python(ISA_CHECK.format(capability=capability, shapes=ISA_SHAPES, algorithm=algorithm),
                     ATEN_CPU_CAPABILITY=capability.lower())
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-3000:]


SCRATCH_FAILURE = """
import resource, torch, dense_conv
ops = torch.ops.dense_conv
# grad_response copies a response group's grad_out planes (6 x the impulse, 96 MB here) into scratch
imp = torch.randn(1, 1, 1000, 4096); g = torch.randn(1, 6, 1000, 4096)
ops.dense_conv2d_grad_response(g[:, :, :8], imp[:, :, :8], [1, 6, 3, 3])  # warm-up: threads exist
vm_bytes = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (vm_bytes + (32 << 20), resource.RLIM_INFINITY))
try:
    ops.dense_conv2d_grad_response(g, imp, [1, 6, 3, 3])
except RuntimeError as e:
    print(e)
else:
    print("no error")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and RLIMIT_AS")
def test_scratch_allocation_failure_raises():
    res = run_python(SCRATCH_FAILURE)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "dense_conv2d: could not allocate" in res.stdout and "bytes of scratch memory" in res.stdout, res.stdout


def rss_bytes():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def release_freed_heap():
    # glibc keeps freed heap memory mapped; malloc_trim hands it back so RSS shows what is still held.
    import ctypes
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def fft_forward_backward(Bi, Ci, Hi, Wi, Cr, Hr, Wr):
    torch.manual_seed(0)
    r = torch.randn(Bi, Cr, Hr, Wr, requires_grad=True)
    i = torch.randn(Bi, Ci, Hi, Wi, requires_grad=True)
    out = dense_conv.dense_conv2d(r, i, algorithm="fft")
    out.backward(torch.ones_like(out))
    return out.nbytes


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_fft_workspaces_released_after_large_call():
    """Per-thread FFT workspaces are kept between calls only while small: after a forward+backward
    with a 134 MB output, the process holds less than 64 MB more than before the call."""
    fft_forward_backward(2, 4, 30, 50, 8, 37, 16)  # warm-up: library init, FFT plans, thread pool
    gc.collect()
    release_freed_heap()
    before = rss_bytes()
    assert fft_forward_backward(8, 4, 256, 512, 8, 37, 16) >= 128 << 20
    gc.collect()
    release_freed_heap()
    grown = rss_bytes() - before
    assert grown < 64 << 20, f"RSS grew by {grown / 2**20:.0f} MB"
