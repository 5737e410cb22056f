"""Autograd of every op: backward (and double backward) formulas built from the ops themselves.

Importing this module registers them (the schemas come from the compiled extension).
"""
import torch

_lib = torch.ops.dense_conv


# ---- dense_conv2d / sparse_conv2d (direct kernels) and per_sample_conv2d ----

def _register_bilinear(forward_name, grad_impulse_name, grad_kernel_name):
    """Autograd of a bilinear op forward(kernel, impulse) with the gradient ops
    grad_impulse(g, kernel, impulse_shape) and grad_kernel(g, impulse, kernel_shape), and of those two
    (double backward). The kernel is the response (dense, sparse) or the weight (per_sample)."""
    forward = getattr(_lib, forward_name)
    grad_impulse = getattr(_lib, grad_impulse_name)
    grad_kernel = getattr(_lib, grad_kernel_name)

    def setup_context(ctx, inputs, output):
        kernel, impulse = inputs
        ctx.save_for_backward(kernel, impulse)

    def backward(ctx, grad_out):
        kernel, impulse = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        g_kernel = g_impulse = None
        if ctx.needs_input_grad[0]:
            g_kernel = grad_kernel(grad_out, impulse, list(kernel.shape))
        if ctx.needs_input_grad[1]:
            g_impulse = grad_impulse(grad_out, kernel, list(impulse.shape))
        return g_kernel, g_impulse

    torch.library.register_autograd(f"dense_conv::{forward_name}", backward, setup_context=setup_context)

    # Double backward: both gradient ops are bilinear adjoints of the forward,
    #   <v, grad_impulse(g, k)> = <forward(k, v), g>,  <u, grad_kernel(g, i)> = <forward(u, i), g>,
    # so their own gradients are forward / gradient ops again (without this, create_graph=True would
    # backpropagate through them as if they were constants: silently wrong second derivatives).
    def gi_setup(ctx, inputs, output):
        g, kernel, _ = inputs
        ctx.save_for_backward(g, kernel)

    def gi_backward(ctx, v):
        g, kernel = ctx.saved_tensors
        v = v.contiguous()
        dg = forward(kernel, v) if ctx.needs_input_grad[0] else None
        dk = grad_kernel(g, v, list(kernel.shape)) if ctx.needs_input_grad[1] else None
        return dg, dk, None

    def gk_setup(ctx, inputs, output):
        g, impulse, _ = inputs
        ctx.save_for_backward(g, impulse)

    def gk_backward(ctx, u):
        g, impulse = ctx.saved_tensors
        u = u.contiguous()
        dg = forward(u, impulse) if ctx.needs_input_grad[0] else None
        di = grad_impulse(g, u, list(impulse.shape)) if ctx.needs_input_grad[1] else None
        return dg, di, None

    torch.library.register_autograd(f"dense_conv::{grad_impulse_name}", gi_backward, setup_context=gi_setup)
    torch.library.register_autograd(f"dense_conv::{grad_kernel_name}", gk_backward, setup_context=gk_setup)


for _prefix in ("dense", "sparse"):
    _register_bilinear(f"{_prefix}_conv2d", f"{_prefix}_conv2d_grad_impulse", f"{_prefix}_conv2d_grad_response")
_register_bilinear("per_sample_conv2d", "per_sample_conv2d_grad_impulse", "per_sample_conv2d_grad_weight")


# ---- FFT algorithm: backward in the frequency domain, one op for both gradients ----

def _fft_setup_context(ctx, inputs, output):
    response, impulse = inputs
    ctx.save_for_backward(response, impulse)


def _direct_gradients(ctx, grad_out, response, impulse):
    """create_graph=True: the FFT backward ops have no derivative of their own; the direct gradient ops
    compute the same function and are differentiable (double backward)."""
    grad_out = grad_out.contiguous()
    return ((_lib.dense_conv2d_grad_response(grad_out, impulse, list(response.shape))
             if ctx.needs_input_grad[0] else None),
            (_lib.dense_conv2d_grad_impulse(grad_out, response, list(impulse.shape))
             if ctx.needs_input_grad[1] else None))


def _fft_backward(ctx, grad_out):
    response, impulse = ctx.saved_tensors
    if torch.is_grad_enabled():
        return _direct_gradients(ctx, grad_out, response, impulse)
    # grad_out as it comes: the kernels read it through its strides (an expanded one is never materialised)
    g_response, g_impulse = _lib.dense_conv2d_fft_backward(grad_out, response, impulse)
    return (g_response if ctx.needs_input_grad[0] else None), (g_impulse if ctx.needs_input_grad[1] else None)


torch.library.register_autograd("dense_conv::dense_conv2d_fft", _fft_backward, setup_context=_fft_setup_context)


# The variant that keeps the forward's spectra (CPU and CUDA; _algorithm.keep_fft_spectra): saved here, so an in-place
# change of response or impulse between forward and backward raises autograd's version error.
def _fft_keep_setup_context(ctx, inputs, output):
    response, impulse = inputs
    _, impulse_spectra, response_spectra = output
    ctx.mark_non_differentiable(impulse_spectra, response_spectra)
    # Otherwise autograd would hand the backward zero-filled gradients of the spectra (as large as they are).
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(response, impulse, impulse_spectra, response_spectra)


def _fft_keep_backward(ctx, grad_out, _grad_impulse_spectra, _grad_response_spectra):
    if grad_out is None:
        return None, None
    response, impulse, impulse_spectra, response_spectra = ctx.saved_tensors
    if torch.is_grad_enabled():
        return _direct_gradients(ctx, grad_out, response, impulse)
    g_response, g_impulse = _lib.dense_conv2d_fft_backward_spectra(grad_out, response, impulse, impulse_spectra,
                                                                   response_spectra)
    return (g_response if ctx.needs_input_grad[0] else None), (g_impulse if ctx.needs_input_grad[1] else None)


torch.library.register_autograd("dense_conv::dense_conv2d_fft_keep_spectra", _fft_keep_backward,
                                setup_context=_fft_keep_setup_context)


# ---- octave_downsample ----

def _octave_setup_context(ctx, inputs, output):
    x, filter, levels = inputs
    ctx.levels = levels
    ctx.length = x.shape[-1]
    need_filter = ctx.needs_input_grad[1]
    ctx.save_for_backward(filter, x if need_filter else None, output if need_filter and levels > 1 else None)


def _octave_backward(ctx, grad):
    filter, x, out = ctx.saved_tensors
    gx = gf = None
    grad = grad.contiguous()
    if ctx.needs_input_grad[0]:
        gx = _lib.octave_downsample_grad_input(grad, filter, ctx.length, ctx.levels)
    if ctx.needs_input_grad[1]:
        if out is None:
            out = grad.new_empty(0)
        gf = _lib.octave_downsample_grad_filter(grad, x, out, filter, ctx.levels)
    return gx, gf, None


torch.library.register_autograd("dense_conv::octave_downsample", _octave_backward, setup_context=_octave_setup_context)


# Double backward. grad_input is the adjoint of the (x-linear) packed forward F_f:
# <v, grad_input(g, f)> = <F_f(v), g> for every f, so its derivatives are d/dg = F_f(v) and
# d/df = grad_filter(g, v, F_f(v), f). grad_filter's own derivative is not implemented: a clear error
# instead of backpropagating through it as a constant (silently wrong).
def _octave_gi_setup_context(ctx, inputs, output):
    grad, filter, length, levels = inputs
    ctx.levels = levels
    ctx.save_for_backward(grad, filter)


def _octave_gi_backward(ctx, v):
    grad, filter = ctx.saved_tensors
    v = v.contiguous()
    fv = _lib.octave_downsample(v, filter, ctx.levels)
    dg = fv if ctx.needs_input_grad[0] else None
    df = _lib.octave_downsample_grad_filter(grad, v, fv, filter, ctx.levels) if ctx.needs_input_grad[1] else None
    return dg, df, None, None


def _octave_gf_backward(ctx, v):
    raise RuntimeError("octave_downsample: the second derivative through the filter gradient (trainable filter "
                       "with create_graph=True) is not implemented; detach the filter or use "
                       "dense_conv.reference.octave_downsample_reference for double backward")


torch.library.register_autograd("dense_conv::octave_downsample_grad_input", _octave_gi_backward,
                                setup_context=_octave_gi_setup_context)
torch.library.register_autograd("dense_conv::octave_downsample_grad_filter", _octave_gf_backward,
                                setup_context=lambda ctx, inputs, output: None)
