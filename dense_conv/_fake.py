"""Fake (meta) kernels of every op: the checks of csrc/checks.h and the output shapes, no data.

They let torch.compile trace through the ops, and they are what the dispatcher runs whenever one argument
is a meta tensor, so they check the device and dtype of every tensor argument: a CPU tensor mixed with a
meta one is an error here, never an uninitialised result. Importing this module registers them (the
schemas come from the compiled extension).
"""
import torch

from . import _checks
from ._shapes import fft_size, octave_packed_length


def _register_conv(prefix, sparse):
    @torch.library.register_fake(f"dense_conv::{prefix}_conv2d")
    def _forward(response, impulse):
        return impulse.new_empty(_checks.check_conv_forward(response, impulse, sparse))

    @torch.library.register_fake(f"dense_conv::{prefix}_conv2d_grad_impulse")
    def _grad_impulse(grad_out, response, impulse_shape):
        _checks.check_conv_backward(grad_out, {"response": response}, response.shape, impulse_shape, sparse)
        return grad_out.new_empty(tuple(impulse_shape))

    @torch.library.register_fake(f"dense_conv::{prefix}_conv2d_grad_response")
    def _grad_response(grad_out, impulse, response_shape):
        _checks.check_conv_backward(grad_out, {"impulse": impulse}, response_shape, impulse.shape, sparse)
        return grad_out.new_empty(tuple(response_shape))


_register_conv("dense", sparse=False)
_register_conv("sparse", sparse=True)


@torch.library.register_fake("dense_conv::dense_conv2d_fft")
def _fft_forward(response, impulse):
    return impulse.new_empty(_checks.check_conv_forward(response, impulse, sparse=False))


@torch.library.register_fake("dense_conv::dense_conv2d_fft_backward")
def _fft_backward(grad_out, response, impulse):
    _checks.check_conv_forward(response, impulse, sparse=False)
    _checks.check_conv_backward(grad_out, {"response": response, "impulse": impulse}, response.shape, impulse.shape,
                                sparse=False)
    return grad_out.new_empty(response.shape), grad_out.new_empty(impulse.shape)


def spectra_shapes(response_shape, impulse_shape):
    """Shapes of the spectra the *_keep_spectra ops keep: impulse [B, Ci, H, W/2+1], response [B, Cr, H, W/2+1]."""
    B, Ci, Hi, Wi = impulse_shape
    Cr, Hr, Wr = response_shape[1:]
    H, W = fft_size(Hi, Wi, Hr, Wr)
    return (B, Ci, H, W // 2 + 1), (B, Cr, H, W // 2 + 1)


def spectra_dtype(dtype):
    """dtype of the spectra of an input of `dtype` (csrc/checks.h fft_real_type): complex128 for float64, else
    complex64 (the CUDA ops transform float16 / bfloat16 in float32; the CPU ops take float32 / float64)."""
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def check_kept_spectra(grad_out, response, impulse, impulse_spectra, response_spectra, op):
    """csrc/checks.h check_kept_spectra."""
    complex_dtype = spectra_dtype(grad_out.dtype)
    for spectra, name, shape in zip((impulse_spectra, response_spectra), ("impulse_spectra", "response_spectra"),
                                    spectra_shapes(response.shape, impulse.shape)):
        torch._check(spectra.device == grad_out.device and spectra.dtype == complex_dtype
                     and tuple(spectra.shape) == shape and spectra.is_contiguous(),
                     lambda: f"{op}: {name} must be the forward's spectra: contiguous "
                     f"{complex_dtype} of shape {list(shape)} on {grad_out.device}, got "
                     f"{spectra.dtype} {list(spectra.shape)} on {spectra.device}")


@torch.library.register_fake("dense_conv::dense_conv2d_fft_keep_spectra")
def _fft_keep_spectra(response, impulse):
    out_shape = _checks.check_conv_forward(response, impulse, sparse=False)
    impulse_shape, response_shape = spectra_shapes(response.shape, impulse.shape)
    complex_dtype = spectra_dtype(impulse.dtype)
    return (impulse.new_empty(out_shape), impulse.new_empty(impulse_shape, dtype=complex_dtype),
            impulse.new_empty(response_shape, dtype=complex_dtype))


@torch.library.register_fake("dense_conv::dense_conv2d_fft_backward_spectra")
def _fft_backward_spectra(grad_out, response, impulse, impulse_spectra, response_spectra):
    grads = _fft_backward(grad_out, response, impulse)
    check_kept_spectra(grad_out, response, impulse, impulse_spectra, response_spectra, "dense_conv2d")
    return grads


@torch.library.register_fake("dense_conv::per_sample_conv2d")
def _per_sample_forward(weight, impulse):
    return impulse.new_empty(_checks.check_per_sample_forward(weight, impulse))


@torch.library.register_fake("dense_conv::per_sample_conv2d_grad_impulse")
def _per_sample_grad_impulse(grad_out, weight, impulse_shape):
    _checks.check_per_sample_backward(grad_out, {"weight": weight}, weight.shape, impulse_shape)
    return grad_out.new_empty(tuple(impulse_shape))


@torch.library.register_fake("dense_conv::per_sample_conv2d_grad_weight")
def _per_sample_grad_weight(grad_out, impulse, weight_shape):
    _checks.check_per_sample_backward(grad_out, {"impulse": impulse}, weight_shape, impulse.shape)
    return grad_out.new_empty(tuple(weight_shape))


def _with_last(shape, last):
    return (*shape[:-1], last)


@torch.library.register_fake("dense_conv::octave_downsample")
def _octave_forward(x, filter, levels):
    _checks.check_octave_tensors(x, filter)
    _checks.check_octave_sizes(x.shape, levels)
    return x.new_empty(_with_last(x.shape, octave_packed_length(x.shape[-1], levels)))


@torch.library.register_fake("dense_conv::octave_downsample_grad_input")
def _octave_grad_input(grad, filter, length, levels):
    _checks.check_octave_tensors(grad, filter, "grad")
    _checks.check_octave_sizes(_with_last(grad.shape, length), levels)
    torch._check(grad.shape[-1] == octave_packed_length(length, levels),
                 lambda: f"octave_downsample_grad_input: grad has {grad.shape[-1]} samples, expected "
                 f"{octave_packed_length(length, levels)} for length {length} and {levels} levels")
    return grad.new_empty(_with_last(grad.shape, length))


@torch.library.register_fake("dense_conv::octave_downsample_grad_filter")
def _octave_grad_filter(grad, x, out, filter, levels):
    _checks.check_octave_tensors(grad, filter, "grad")
    _checks.check_octave_tensors(x, filter)
    _checks.check_octave_tensors(out, filter, "out")
    _checks.check_octave_sizes(x.shape, levels)
    torch._check(grad.shape[-1] == octave_packed_length(x.shape[-1], levels),
                 lambda: f"octave_downsample_grad_filter: grad has shape {tuple(grad.shape)}, expected last dim "
                 f"{octave_packed_length(x.shape[-1], levels)}")
    return filter.new_empty(filter.shape)
