"""Fake kernels and autograd of the FFT algorithm of dense_mix_conv2d (dense_conv2d then a 1x1 channel mix).

    dense_mix_conv2d_fft(response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi], weight [L, Ci, Cr]) -> [B, L, Hi, Wi]
    out[b, l] = sum_{j,k} weight[l, j, k] * dense_conv2d(response, impulse)[b, j*Cr + k]

The checks mirror check_mix_forward / check_mix_backward of csrc/checks.h (same conditions, same messages;
the forward's are _checks.check_dense_mix, shared with dense_conv.dense_mix_conv2d).
Importing this module registers them (the schemas come from the compiled extension).
"""
import torch

from . import _checks
from ._fake import check_kept_spectra, spectra_dtype, spectra_shapes

_lib = torch.ops.dense_conv
_OP = "dense_mix_conv2d"


def check_mix_forward(response, impulse, weight):
    """Checks of the forward op; returns the output shape (B, L, Hi, Wi)."""
    return _checks.check_dense_mix(response, impulse, weight)


def check_mix_backward(grad_out, response, impulse, weight):
    expected = check_mix_forward(response, impulse, weight)
    _checks.check_tensor(grad_out, "grad_out", _OP)
    _checks.check_same_device_dtype(grad_out, "grad_out", impulse, "impulse", _OP)
    torch._check(tuple(grad_out.shape) == tuple(expected), lambda: f"{_OP}: grad_out must have the output's shape "
                 f"{list(expected)}, got {list(grad_out.shape)}")


@torch.library.register_fake("dense_conv::dense_mix_conv2d_fft")
def _forward_fake(response, impulse, weight):
    return impulse.new_empty(check_mix_forward(response, impulse, weight))


@torch.library.register_fake("dense_conv::dense_mix_conv2d_fft_backward")
def _backward_fake(grad_out, response, impulse, weight):
    check_mix_backward(grad_out, response, impulse, weight)
    return grad_out.new_empty(response.shape), grad_out.new_empty(impulse.shape), grad_out.new_empty(weight.shape)


@torch.library.register_fake("dense_conv::dense_mix_conv2d_fft_keep_spectra")
def _keep_spectra_fake(response, impulse, weight):
    out_shape = check_mix_forward(response, impulse, weight)
    impulse_shape, response_shape = spectra_shapes(response.shape, impulse.shape)
    complex_dtype = spectra_dtype(impulse.dtype)
    return (impulse.new_empty(out_shape), impulse.new_empty(impulse_shape, dtype=complex_dtype),
            impulse.new_empty(response_shape, dtype=complex_dtype))


@torch.library.register_fake("dense_conv::dense_mix_conv2d_fft_backward_spectra")
def _backward_spectra_fake(grad_out, response, impulse, weight, impulse_spectra, response_spectra):
    grads = _backward_fake(grad_out, response, impulse, weight)
    check_kept_spectra(grad_out, response, impulse, impulse_spectra, response_spectra, _OP)
    return grads


def _setup_context(ctx, inputs, output):
    response, impulse, weight = inputs
    ctx.save_for_backward(response, impulse, weight)


def _backward(ctx, grad_out):
    response, impulse, weight = ctx.saved_tensors  # grad_out as it comes: the kernels read it through its strides
    if torch.is_grad_enabled():
        return _composed_gradients(ctx, grad_out, response, impulse, weight)
    grads = _lib.dense_mix_conv2d_fft_backward(grad_out, response, impulse, weight)
    return tuple(g if need else None for g, need in zip(grads, ctx.needs_input_grad))


def _composed_gradients(ctx, grad_out, response, impulse, weight):
    """create_graph=True: the FFT backward ops have no derivative of their own; the same gradients composed
    from differentiable ops (the dense conv's gradient ops and einsums: the dense [B, Ci, Cr, Hi, Wi]
    planes exist here, as in the unfused layer)."""
    B, L, Hi, Wi = grad_out.shape
    _, Ci, Cr = weight.shape
    g_dense = torch.einsum("blyx,ljk->bjkyx", grad_out, weight).reshape(B, Ci * Cr, Hi, Wi)
    g_response = g_impulse = g_weight = None
    if ctx.needs_input_grad[0]:
        g_response = _lib.dense_conv2d_grad_response(g_dense, impulse, list(response.shape))
    if ctx.needs_input_grad[1]:
        g_impulse = _lib.dense_conv2d_grad_impulse(g_dense, response, list(impulse.shape))
    if ctx.needs_input_grad[2]:
        dense = _lib.dense_conv2d(response, impulse).reshape(B, Ci, Cr, Hi, Wi)
        g_weight = torch.einsum("blyx,bjkyx->ljk", grad_out, dense)
    return g_response, g_impulse, g_weight


torch.library.register_autograd("dense_conv::dense_mix_conv2d_fft", _backward, setup_context=_setup_context)


# The variant that keeps the forward's spectra (CPU and CUDA; _algorithm.keep_fft_spectra), as dense_conv2d's
# (_autograd.py).
def _keep_setup_context(ctx, inputs, output):
    response, impulse, weight = inputs
    _, impulse_spectra, response_spectra = output
    ctx.mark_non_differentiable(impulse_spectra, response_spectra)
    ctx.set_materialize_grads(False)  # no zero-filled gradients of the spectra
    ctx.save_for_backward(response, impulse, weight, impulse_spectra, response_spectra)


def _keep_backward(ctx, grad_out, _grad_impulse_spectra, _grad_response_spectra):
    if grad_out is None:
        return None, None, None
    response, impulse, weight, impulse_spectra, response_spectra = ctx.saved_tensors
    if torch.is_grad_enabled():
        return _composed_gradients(ctx, grad_out, response, impulse, weight)
    grads = _lib.dense_mix_conv2d_fft_backward_spectra(grad_out, response, impulse, weight, impulse_spectra,
                                                       response_spectra)
    return tuple(g if need else None for g, need in zip(grads, ctx.needs_input_grad))


torch.library.register_autograd("dense_conv::dense_mix_conv2d_fft_keep_spectra", _keep_backward,
                                setup_context=_keep_setup_context)
