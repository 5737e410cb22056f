"""Every algorithm of dense_conv2d / sparse_conv2d against the float64 reference, on awkward shapes;
gradcheck in float64; opcheck of the FFT ops; `auto` picks a valid algorithm. The direct kernels are
also run through their AVX2 and simple paths (DENSE_CONV_CPU_KERNELS, in a subprocess)."""
import os
import subprocess
import sys

import pytest
import torch

import dense_conv
from dense_conv import _algorithm, reference

ops = torch.ops.dense_conv
ALGOS = ["direct", "fft", "auto"]
# (B, Ci, Cr, Hi, Wi, Hr, Wr): odd sizes, kernels larger than the image, 1x1, tails of every width
SHAPES = [
    (2, 3, 5, 7, 33, 4, 5),
    (1, 1, 1, 1, 1, 1, 1),
    (2, 2, 3, 20, 70, 37, 16),
    (3, 1, 1, 5, 17, 8, 20),
    (1, 2, 7, 9, 40, 9, 9),
    (2, 2, 8, 10, 31, 5, 5),
    (1, 3, 6, 12, 50, 2, 3),
    (1, 1, 2, 3, 200, 1, 1),
]
TOL = {torch.float32: 2e-5, torch.float64: 1e-12}


def rel_err(a, b):
    return ((a.double() - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def inputs(B, Ci, Cr, Hi, Wi, Hr, Wr, sparse, seed=0):
    g = torch.Generator().manual_seed(seed)
    if sparse:
        Cr = Ci
    r = torch.randn(B, Cr, Hr, Wr, generator=g, dtype=torch.float64)
    i = torch.randn(B, Ci, Hi, Wi, generator=g, dtype=torch.float64)
    return r, i


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_reference(shape, algorithm, dtype, sparse):
    r, i = inputs(*shape, sparse)
    ref_fn = reference.sparse_shift_add if sparse else reference.dense_shift_add
    op = dense_conv.sparse_conv2d if sparse else dense_conv.dense_conv2d
    rq, iq = r.clone().requires_grad_(), i.clone().requires_grad_()
    ref = ref_fn(rq, iq)
    g = torch.randn(ref.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref.backward(g)
    rx, ix = r.to(dtype).requires_grad_(), i.to(dtype).requires_grad_()
    out = op(rx, ix, algorithm=algorithm)
    out.backward(g.to(dtype))
    assert out.dtype == dtype and out.shape == ref.shape
    assert rel_err(out, ref.detach()) < TOL[dtype]
    assert rel_err(ix.grad, iq.grad) < TOL[dtype]
    assert rel_err(rx.grad, rq.grad) < TOL[dtype]


@pytest.mark.parametrize("algorithm", ["direct", "fft"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_gradcheck(algorithm, sparse):
    r, i = inputs(2, 2, 3, 6, 9, 4, 3, sparse)
    op = dense_conv.sparse_conv2d if sparse else dense_conv.dense_conv2d
    assert torch.autograd.gradcheck(lambda a, b: op(a, b, algorithm=algorithm),
                                    (r.requires_grad_(), i.requires_grad_()))


@pytest.mark.parametrize("algorithm", ["direct", "fft"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_gradgradcheck(algorithm, sparse):
    """create_graph=True through either algorithm gives the true second derivatives (it used to
    backpropagate through the gradient ops as constants: silently wrong, or an error from torch.fft)."""
    r, i = inputs(2, 2, 3, 5, 7, 3, 2, sparse)
    op = dense_conv.sparse_conv2d if sparse else dense_conv.dense_conv2d
    assert torch.autograd.gradgradcheck(lambda a, b: op(a, b, algorithm=algorithm),
                                        (r.requires_grad_(), i.requires_grad_()))


def test_fft_float32_error_user_like_shape():
    # the bound: float32 FFT within 1e-5 relative of the float64 reference
    r, i = inputs(2, 4, 5, 84, 120, 37, 16, False)
    ref = reference.dense_fft(r, i)
    out = dense_conv.dense_conv2d(r.float(), i.float(), algorithm="fft")
    assert rel_err(out, ref) < 1e-5


@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck_fft_ops(requires_grad):
    r, i = inputs(2, 2, 3, 6, 9, 4, 3, False)
    r, i = r.float().requires_grad_(requires_grad), i.float().requires_grad_(requires_grad)
    torch.library.opcheck(ops.dense_conv2d_fft, (r, i))
    g = torch.randn(2, 6, 6, 9)
    torch.library.opcheck(ops.dense_conv2d_fft_backward, (g, r.detach(), i.detach()))


def test_auto_picks_valid_algorithm():
    for shape in [(64, 4, 5, 84, 600, 37, 16), (64, 4, 5, 84, 600, 5, 5), (256, 1, 1, 84, 600, 64, 64),
                  (1, 1, 1, 1, 1, 1, 1), (0, 1, 1, 4, 4, 2, 2)]:
        for bw in (False, True):
            assert _algorithm.choose(*shape, bw) in ("direct", "fft")
    assert _algorithm.choose(64, 4, 5, 84, 600, 5, 5, True) == "direct"
    assert _algorithm.choose(64, 4, 5, 84, 600, 37, 16, True) == "fft"


def test_bad_algorithm():
    r, i = inputs(1, 1, 1, 4, 4, 2, 2, False)
    with pytest.raises(ValueError, match="algorithm"):
        dense_conv.dense_conv2d(r, i, algorithm="winograd")


def test_fft_cpu_float_only():
    r, i = inputs(1, 1, 1, 4, 4, 2, 2, False)
    with pytest.raises(NotImplementedError):
        dense_conv.dense_conv2d(r.half(), i.half(), algorithm="fft")


@pytest.mark.parametrize("kernels", ["avx2", "simple"])
def test_direct_kernel_paths(kernels):
    """The lower instruction-set paths give the same answers (run in a fresh process: the choice is
    made once per process)."""
    code = (
        "import torch, dense_conv\n"
        "from dense_conv import reference as R\n"
        "for (B,Ci,Cr,Hi,Wi,Hr,Wr) in [(2,3,5,7,33,4,5),(2,2,3,20,70,37,16),(3,1,1,5,17,8,20),(1,2,7,9,40,9,9)]:\n"
        "  for dt in (torch.float32, torch.float64):\n"
        "    r=torch.randn(B,Cr,Hr,Wr,dtype=torch.float64); i=torch.randn(B,Ci,Hi,Wi,dtype=torch.float64)\n"
        "    g=torch.randn(B,Ci*Cr,Hi,Wi,dtype=torch.float64)\n"
        "    rq,iq=r.clone().requires_grad_(),i.clone().requires_grad_(); R.dense_shift_add(rq,iq).backward(g)\n"
        "    rx,ix=r.to(dt).requires_grad_(),i.to(dt).requires_grad_()\n"
        "    o=dense_conv.dense_conv2d(rx,ix,algorithm='direct'); o.backward(g.to(dt))\n"
        "    ref=R.dense_shift_add(r,i)\n"
        "    for a,b in ((o,ref),(ix.grad,iq.grad),(rx.grad,rq.grad)):\n"
        "      e=((a.double()-b).abs().max()/b.abs().max()).item(); assert e < (2e-5 if dt==torch.float32 else 1e-12), e\n"
        "print('ok')\n")
    env = dict(os.environ, DENSE_CONV_CPU_KERNELS=kernels)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]


# ---- CUDA FFT (csrc/cuda/fft_conv_cuda.cu): needs a GPU; the kernels alone run under the emulator in
# tests/test_cuda_emulated.py ----

needs_cuda_kernels = pytest.mark.skipif(not (torch.cuda.is_available() and dense_conv.cuda_kernels_compiled()),
                                        reason="needs a GPU and the extension's CUDA kernels")
CUDA_TOL = {torch.float16: 3e-3, torch.bfloat16: 2e-2, torch.float32: 2e-5, torch.float64: 1e-12}


def test_auto_cuda_rule():
    # uncalibrated placeholder (no GPU was available): FFT from ~186 taps at Ci=4, Cr=5, 384 taps for sparse
    assert _algorithm.choose_cuda(64, 4, 5, 84, 600, 37, 16) == "fft"
    assert _algorithm.choose_cuda(64, 4, 5, 84, 600, 9, 9) == "direct"
    assert _algorithm.choose_cuda(256, 1, 1, 84, 600, 19, 19) == "direct"
    assert _algorithm.choose_cuda(256, 1, 1, 84, 600, 20, 20) == "fft"
    assert _algorithm.choose_cuda(0, 4, 5, 84, 600, 37, 16) == "direct"
    # taps beyond the image do not count
    assert _algorithm.choose_cuda(1, 4, 5, 3, 3, 100, 100) == "direct"


@needs_cuda_kernels
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64],
                         ids=["f16", "bf16", "f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_cuda_fft_matches_reference(shape, dtype, sparse):
    r, i = inputs(*shape, sparse)
    r, i = r.to(dtype).double(), i.to(dtype).double()  # inputs exactly representable in dtype
    ref_fn = reference.sparse_shift_add if sparse else reference.dense_shift_add
    op = dense_conv.sparse_conv2d if sparse else dense_conv.dense_conv2d
    rq, iq = r.clone().requires_grad_(), i.clone().requires_grad_()
    ref = ref_fn(rq, iq)
    g = torch.randn(ref.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).to(dtype).double()
    ref.backward(g)
    rx, ix = r.cuda().to(dtype).requires_grad_(), i.cuda().to(dtype).requires_grad_()
    out = op(rx, ix, algorithm="fft")
    out.backward(g.cuda().to(dtype))
    assert out.dtype == dtype and out.device.type == "cuda" and out.shape == ref.shape
    assert rel_err(out.cpu(), ref.detach()) < CUDA_TOL[dtype]
    assert rel_err(ix.grad.cpu(), iq.grad) < CUDA_TOL[dtype]
    assert rel_err(rx.grad.cpu(), rq.grad) < CUDA_TOL[dtype]


@needs_cuda_kernels
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_cuda_fft_gradcheck(sparse):
    r, i = inputs(2, 2, 3, 6, 9, 4, 3, sparse)
    op = dense_conv.sparse_conv2d if sparse else dense_conv.dense_conv2d
    assert torch.autograd.gradcheck(lambda a, b: op(a, b, algorithm="fft"),
                                    (r.cuda().requires_grad_(), i.cuda().requires_grad_()))


@needs_cuda_kernels
def test_cuda_fft_batch_chunks():
    # ~30 MB of spectra per sample against a 64 MiB chunk budget: chunks of 2 + 1 samples
    r, i = inputs(3, 4, 5, 200, 1500, 37, 16, False)
    g = torch.randn(3, 20, 200, 1500, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    ref = ops.dense_conv2d_fft(r, i)
    ref_gr, ref_gi = ops.dense_conv2d_fft_backward(g, r, i)
    out = ops.dense_conv2d_fft(r.float().cuda(), i.float().cuda())
    gr, gi = ops.dense_conv2d_fft_backward(g.float().cuda(), r.float().cuda(), i.float().cuda())
    assert rel_err(out.cpu(), ref) < 1e-5
    assert rel_err(gi.cpu(), ref_gi) < 1e-5 and rel_err(gr.cpu(), ref_gr) < 1e-5


@needs_cuda_kernels
def test_cuda_fft_opcheck():
    r, i = inputs(2, 2, 3, 6, 9, 4, 3, False)
    r, i = r.float().cuda().requires_grad_(), i.float().cuda().requires_grad_()
    torch.library.opcheck(ops.dense_conv2d_fft, (r, i))
    g = torch.randn(2, 6, 6, 9, device="cuda")
    torch.library.opcheck(ops.dense_conv2d_fft_backward, (g, r.detach(), i.detach()))


@needs_cuda_kernels
def test_cuda_auto_uses_fft_for_large_kernels():
    r, i = inputs(1, 2, 3, 40, 50, 20, 20, False)
    out = dense_conv.dense_conv2d(r.cuda(), i.cuda(), algorithm="auto")
    assert rel_err(out.cpu(), reference.dense_fft(r, i)) < 1e-12
