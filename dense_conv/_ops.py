"""Python side of the conv ops: the public functions, fake (meta) kernels and autograd.

The kernels are C++/CUDA (csrc/); the schemas are declared once, in csrc/ops.cpp.
"""
import torch

from . import _algorithm

_lib = torch.ops.dense_conv

ALGORITHMS = ("auto", "direct", "fft")


def dense_conv2d(response: torch.Tensor, impulse: torch.Tensor, algorithm: str = "auto") -> torch.Tensor:
    """Every impulse channel convolved with every response channel, per sample.

    response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi] -> out [B, Ci*Cr, Hi, Wi] with
    out[b, i*Cr + r, y, x] = sum_{p<=y, q<=x} impulse[b, i, y-p, x-q] * response[b, r, p, q]
    (true convolution, causally cropped to the impulse size).

    algorithm: "direct" (register-blocked direct kernels), "fft" (frequency domain, forward and
    backward), or "auto" (default: on CPU the one a cost model calibrated on a 2-core AVX-512 Xeon
    expects to be faster at these sizes; on CUDA a simple, uncalibrated tap-count rule; see
    dense_conv/_algorithm.py).
    """
    if _use_fft(response, impulse, algorithm, sparse=False):
        return _lib.dense_conv2d_fft(response, impulse)
    return _lib.dense_conv2d(response, impulse)


def sparse_conv2d(response: torch.Tensor, impulse: torch.Tensor, algorithm: str = "auto") -> torch.Tensor:
    """Channel c of impulse convolved with channel c of response, per sample.

    response [B, C, Hr, Wr], impulse [B, C, Hi, Wi] -> out [B, C, Hi, Wi], same causal crop as dense_conv2d.
    algorithm: "auto" | "direct" | "fft", as in dense_conv2d.
    """
    if _use_fft(response, impulse, algorithm, sparse=True):
        _check_sizes(response.shape, impulse.shape, sparse=True)
        B, C, Hi, Wi = impulse.shape
        out = _lib.dense_conv2d_fft(response.reshape(B * C, 1, *response.shape[2:]), impulse.reshape(B * C, 1, Hi, Wi))
        return out.view(B, C, Hi, Wi)
    return _lib.sparse_conv2d(response, impulse)


_FFT_DTYPES = {
    "cpu": (torch.float32, torch.float64),
    # float16 / bfloat16 are transformed in float32 (cuFFT's half transforms need power-of-two sizes)
    "cuda": (torch.float16, torch.bfloat16, torch.float32, torch.float64),
    # shapes only (fake kernels): accept what either device accepts
    "meta": (torch.float16, torch.bfloat16, torch.float32, torch.float64),
}


def _use_fft(response, impulse, algorithm, sparse):
    name = "sparse_conv2d" if sparse else "dense_conv2d"
    for t, arg in ((response, "response"), (impulse, "impulse")):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: {arg} must be a torch.Tensor, got {type(t).__name__}")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if algorithm == "direct":
        return False
    device = impulse.device.type
    fft_ok = impulse.dtype in _FFT_DTYPES.get(device, ())
    if algorithm == "fft":
        if not fft_ok:
            raise NotImplementedError("algorithm='fft' runs on CPU with float32/float64 tensors and on CUDA with "
                                      "float16/bfloat16/float32/float64 tensors (got "
                                      f"{impulse.device.type}, {impulse.dtype}); use 'direct' or 'auto'")
        return True
    if not fft_ok or response.dim() != 4 or impulse.dim() != 4:
        return False
    B, Ci, Hi, Wi = impulse.shape
    Cr, Hr, Wr = response.shape[1:]
    if sparse:
        B, Ci, Cr = B * Ci, 1, 1
    if device == "cuda":
        return _algorithm.choose_cuda(B, Ci, Cr, Hi, Wi, Hr, Wr) == "fft"
    backward = torch.is_grad_enabled() and (response.requires_grad or impulse.requires_grad)
    return _algorithm.choose(B, Ci, Cr, Hi, Wi, Hr, Wr, backward) == "fft"


def cuda_kernels_compiled() -> bool:
    """True when the extension was built with its CUDA kernels."""
    return torch._C._dispatch_has_kernel_for_dispatch_key("dense_conv::dense_conv2d", "CUDA")


# ---- fake (meta) kernels: shapes only, so torch.compile can trace through the ops ----

def _check_sizes(response_shape, impulse_shape, sparse):
    name = "sparse_conv2d" if sparse else "dense_conv2d"
    torch._check(len(response_shape) == 4, lambda: f"{name}: response must be 4-D, got shape {tuple(response_shape)}")
    torch._check(len(impulse_shape) == 4, lambda: f"{name}: impulse must be 4-D, got shape {tuple(impulse_shape)}")
    torch._check(response_shape[0] == impulse_shape[0], lambda: f"{name}: batch mismatch, response has "
                 f"B={response_shape[0]} but impulse has B={impulse_shape[0]}")
    if sparse:
        torch._check(response_shape[1] == impulse_shape[1], lambda: f"{name}: channel mismatch, response has "
                     f"C={response_shape[1]} but impulse has C={impulse_shape[1]}")


def _check_pair(a, a_name, b, b_name, sparse):
    name = "sparse_conv2d" if sparse else "dense_conv2d"
    for t, n in ((a, a_name), (b, b_name)):
        torch._check(t.is_floating_point(), lambda: f"{name}: {n} must be a floating-point tensor, got {t.dtype}")
    torch._check(a.dtype == b.dtype, lambda: f"{name}: {a_name} has dtype {a.dtype} but {b_name} has {b.dtype}")
    torch._check(a.device == b.device, lambda: f"{name}: {a_name} is on {a.device} but {b_name} on {b.device}")


def _out_shape(response_shape, impulse_shape, sparse):
    B, Ci, Hi, Wi = impulse_shape
    return (B, Ci if sparse else Ci * response_shape[1], Hi, Wi)


def _register(prefix, sparse):
    forward = getattr(_lib, f"{prefix}_conv2d")
    grad_impulse = getattr(_lib, f"{prefix}_conv2d_grad_impulse")
    grad_response = getattr(_lib, f"{prefix}_conv2d_grad_response")

    @torch.library.register_fake(f"dense_conv::{prefix}_conv2d")
    def _(response, impulse):
        _check_pair(response, "response", impulse, "impulse", sparse)
        _check_sizes(response.shape, impulse.shape, sparse)
        return impulse.new_empty(_out_shape(response.shape, impulse.shape, sparse))

    @torch.library.register_fake(f"dense_conv::{prefix}_conv2d_grad_impulse")
    def _(grad_out, response, impulse_shape):
        _check_pair(grad_out, "grad_out", response, "response", sparse)
        _check_sizes(response.shape, impulse_shape, sparse)
        return grad_out.new_empty(tuple(impulse_shape))

    @torch.library.register_fake(f"dense_conv::{prefix}_conv2d_grad_response")
    def _(grad_out, impulse, response_shape):
        _check_pair(grad_out, "grad_out", impulse, "impulse", sparse)
        _check_sizes(response_shape, impulse.shape, sparse)
        return grad_out.new_empty(tuple(response_shape))

    def setup_context(ctx, inputs, output):
        response, impulse = inputs
        ctx.save_for_backward(response, impulse)

    def backward(ctx, grad_out):
        response, impulse = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        g_response = g_impulse = None
        if ctx.needs_input_grad[0]:
            g_response = grad_response(grad_out, impulse, list(response.shape))
        if ctx.needs_input_grad[1]:
            g_impulse = grad_impulse(grad_out, response, list(impulse.shape))
        return g_response, g_impulse

    torch.library.register_autograd(f"dense_conv::{prefix}_conv2d", backward, setup_context=setup_context)

    # Double backward: both gradient ops are bilinear adjoints of the forward,
    #   <v, grad_impulse(g, r)> = <forward(r, v), g>,  <u, grad_response(g, i)> = <forward(u, i), g>,
    # so their own gradients are forward / gradient ops again (without this, create_graph=True
    # backpropagated through them as if they were constants: silently wrong second derivatives).
    def gi_setup(ctx, inputs, output):
        g, response, _ = inputs
        ctx.save_for_backward(g, response)

    def gi_backward(ctx, v):
        g, response = ctx.saved_tensors
        v = v.contiguous()
        dg = forward(response, v) if ctx.needs_input_grad[0] else None
        dr = grad_response(g, v, list(response.shape)) if ctx.needs_input_grad[1] else None
        return dg, dr, None

    def gr_setup(ctx, inputs, output):
        g, impulse, _ = inputs
        ctx.save_for_backward(g, impulse)

    def gr_backward(ctx, u):
        g, impulse = ctx.saved_tensors
        u = u.contiguous()
        dg = forward(u, impulse) if ctx.needs_input_grad[0] else None
        di = grad_impulse(g, u, list(impulse.shape)) if ctx.needs_input_grad[1] else None
        return dg, di, None

    torch.library.register_autograd(f"dense_conv::{prefix}_conv2d_grad_impulse", gi_backward, setup_context=gi_setup)
    torch.library.register_autograd(f"dense_conv::{prefix}_conv2d_grad_response", gr_backward, setup_context=gr_setup)


_register("dense", sparse=False)
_register("sparse", sparse=True)


# ---- FFT algorithm: fakes and autograd (backward in the frequency domain, one op for both grads) ----

@torch.library.register_fake("dense_conv::dense_conv2d_fft")
def _(response, impulse):
    _check_pair(response, "response", impulse, "impulse", False)
    _check_sizes(response.shape, impulse.shape, False)
    return impulse.new_empty(_out_shape(response.shape, impulse.shape, False))


@torch.library.register_fake("dense_conv::dense_conv2d_fft_backward")
def _(grad_out, response, impulse):
    _check_pair(grad_out, "grad_out", response, "response", False)
    _check_pair(grad_out, "grad_out", impulse, "impulse", False)
    _check_sizes(response.shape, impulse.shape, False)
    torch._check(tuple(grad_out.shape) == _out_shape(response.shape, impulse.shape, False),
                 lambda: f"dense_conv2d: grad_out must have the output's shape, got {tuple(grad_out.shape)}")
    return grad_out.new_empty(response.shape), grad_out.new_empty(impulse.shape)


def _fft_setup_context(ctx, inputs, output):
    response, impulse = inputs
    ctx.save_for_backward(response, impulse)


def _fft_backward(ctx, grad_out):
    response, impulse = ctx.saved_tensors
    if torch.is_grad_enabled():
        # create_graph=True: the FFT backward op has no derivative of its own; the direct gradient ops
        # compute the same function and are differentiable (double backward).
        grad_out = grad_out.contiguous()
        return ((_lib.dense_conv2d_grad_response(grad_out, impulse, list(response.shape))
                 if ctx.needs_input_grad[0] else None),
                (_lib.dense_conv2d_grad_impulse(grad_out, response, list(impulse.shape))
                 if ctx.needs_input_grad[1] else None))
    g_response, g_impulse = _lib.dense_conv2d_fft_backward(grad_out.contiguous(), response, impulse)
    return (g_response if ctx.needs_input_grad[0] else None), (g_impulse if ctx.needs_input_grad[1] else None)


torch.library.register_autograd("dense_conv::dense_conv2d_fft", _fft_backward, setup_context=_fft_setup_context)
