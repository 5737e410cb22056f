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
