"""The public functions: argument handling, then one call of a torch.ops.dense_conv op.

The kernels are C++/CUDA (csrc/, schemas in csrc/ops.cpp); their fake kernels are in _fake.py, their
autograd in _autograd.py, the choice of algorithm in _algorithm.py.
"""
from typing import List, Optional, Union

import torch

from . import _algorithm, _checks, _extension
from ._shapes import octave_level_lengths


def _check_is_tensor(t, name, op):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")


def _check_conv_arguments(response, impulse, op):
    for t, name in ((response, "response"), (impulse, "impulse")):
        _check_is_tensor(t, name, op)
        _checks.check_tensor(t, name, op, check=_checks.raise_unless)


def dense_conv2d(response: torch.Tensor, impulse: torch.Tensor, algorithm: str = "auto") -> torch.Tensor:
    """Every impulse channel convolved with every response channel, per sample.

    response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi] -> out [B, Ci*Cr, Hi, Wi] with
    out[b, i*Cr + r, y, x] = sum_{p<=y, q<=x} impulse[b, i, y-p, x-q] * response[b, r, p, q]
    (true convolution, causally cropped to the impulse size; p < Hr, q < Wr; any Hr, Wr >= 1, larger
    than the image too).

    Args:
        response: [B, Cr, Hr, Wr], the per-sample kernels.
        impulse: [B, Ci, Hi, Wi], the per-sample impulse maps; same device and dtype as response.
        algorithm: "direct" (register-blocked direct kernels), "fft" (frequency domain, forward and
            backward), or "auto" (default: on CPU the one a cost model expects to be faster at these
            sizes, with the constants `python -m dense_conv.calibrate` measured on this machine, else
            those of a 2-core AVX-512 Xeon; on CUDA a tap-count rule fitted on an H200, one threshold for
            a forward alone and one when a gradient will be taken; see dense_conv/_algorithm.py).

    Returns:
        out [B, Ci*Cr, Hi, Wi], the inputs' dtype and device; channel i*Cr + r is impulse channel i
        with response channel r. Dtypes: float32 or float64 on the CPU; float16, bfloat16, float32 or
        float64 on CUDA (accumulated in float32, float64 for float64). Non-contiguous inputs are
        accepted; a zero-size dimension gives an empty (or all-zero) result. Differentiable in both
        inputs, twice (the gradients are ops of their own); works under torch.compile(fullgraph=True).

    Raises:
        TypeError: response or impulse is not a tensor.
        RuntimeError: an integer tensor, wrong rank, batch mismatch, mixed devices or dtypes, sizes
            whose products overflow 64 bits, or a CPU tensor that is not float32/float64; the message
            names the argument.
        ValueError: algorithm is not "auto", "direct" or "fft".
        NotImplementedError: algorithm="fft" with a dtype the FFT path lacks (float16/bfloat16 on the CPU).
        ImportError: the compiled extension is missing (the message says how to build it).

    Example:
        out = dense_conv.dense_conv2d(torch.randn(2, 5, 3, 3), torch.randn(2, 4, 9, 11))  # [2, 20, 9, 11]
    """
    _check_conv_arguments(response, impulse, "dense_conv2d")
    ops = _extension.ops()
    if _algorithm.use_fft(response, impulse, algorithm, sparse=False):
        if _algorithm.keep_fft_spectra(response, impulse):
            return ops.dense_conv2d_fft_keep_spectra(response, impulse)[0]  # autograd holds the spectra
        return ops.dense_conv2d_fft(response, impulse)
    return ops.dense_conv2d(response, impulse)


def sparse_conv2d(response: torch.Tensor, impulse: torch.Tensor, algorithm: str = "auto") -> torch.Tensor:
    """Channel c of impulse convolved with channel c of response, per sample.

    response [B, C, Hr, Wr], impulse [B, C, Hi, Wi] -> out [B, C, Hi, Wi] with
    out[b, c, y, x] = sum_{p<=y, q<=x} impulse[b, c, y-p, x-q] * response[b, c, p, q]
    (same causal crop as dense_conv2d).

    Args:
        response: [B, C, Hr, Wr], the per-sample kernels.
        impulse: [B, C, Hi, Wi], same B and C, same device and dtype as response.
        algorithm: "auto" | "direct" | "fft", as in dense_conv2d.

    Returns:
        out [B, C, Hi, Wi], the inputs' dtype and device. Dtypes, devices, gradients and
        torch.compile support as dense_conv2d.

    Raises:
        TypeError: response or impulse is not a tensor.
        RuntimeError: as dense_conv2d, and a channel mismatch (response's C differs from impulse's).
        ValueError, NotImplementedError, ImportError: as dense_conv2d.

    Example:
        out = dense_conv.sparse_conv2d(torch.randn(2, 4, 3, 3), torch.randn(2, 4, 9, 11))  # [2, 4, 9, 11]
    """
    _check_conv_arguments(response, impulse, "sparse_conv2d")
    ops = _extension.ops()
    if _algorithm.use_fft(response, impulse, algorithm, sparse=True):
        # one-channel dense problems: [B*C, 1, ...]
        _checks.check_conv_sizes(response.shape, impulse.shape, sparse=True, check=_checks.raise_unless)
        B, C, Hi, Wi = impulse.shape
        out = ops.dense_conv2d_fft(response.reshape(B * C, 1, *response.shape[2:]), impulse.reshape(B * C, 1, Hi, Wi))
        return out.view(B, C, Hi, Wi)
    return ops.sparse_conv2d(response, impulse)


def octave_downsample(x: torch.Tensor, filter: Optional[torch.Tensor] = None,
                      levels: int = 1) -> Union[torch.Tensor, List[torch.Tensor]]:
    """Low-pass + decimate by 2 along the last dim, fused. Any leading dims.

        y[..., m] = sum_{n=0}^{N-1} filter[n] * x[..., 2m + n - (N-1)/2]      (N odd, zeros outside x)

    Args:
        x: [..., T], floating point: float32 or float64 on the CPU; float16, bfloat16, float32 or
            float64 on CUDA.
        filter: [N], N odd: the FIR, same device and dtype as x (default: `dense_conv.halfband_filter()`
            in x's dtype, on x's device); it gets a gradient when it requires one.
        levels: an int in [1, 32]: how many successive octaves to compute in one call.

    Returns:
        levels=1: a tensor [..., ceil(T/2)]; levels=L: a list of L tensors [..., ceil(T/2)],
        [..., ceil(T/4)], ..., the successive octaves. x's dtype and device. Differentiable in x (twice)
        and in filter (once: a second derivative through the filter gradient raises RuntimeError).
        The pure-PyTorch definition is dense_conv.reference.octave_downsample_reference.

    Raises:
        TypeError: x or filter is not a tensor, x is not floating point, x and filter differ in dtype,
            or levels is not an int (a bool included).
        ValueError: levels outside [1, 32], x is a scalar, filter is not 1-D with an odd number of
            taps, or x and filter are on different devices.
        RuntimeError: a CPU tensor that is not float32/float64, or sizes whose products overflow 64 bits.
        ImportError: the compiled extension is missing.

    Example:
        y = dense_conv.octave_downsample(torch.randn(2, 1000))            # [2, 500]
        y1, y2 = dense_conv.octave_downsample(torch.randn(1001), levels=2)  # [501], [251]
    """
    _check_is_tensor(x, "x", "octave_downsample")
    if not x.is_floating_point():
        raise TypeError(f"octave_downsample: x must be a floating-point tensor, got {x.dtype}")
    levels = _checks.check_octave_levels(levels)
    if filter is None:
        from .audio.octave import halfband_filter
        filter = halfband_filter(dtype=x.dtype, device=x.device)
    _check_is_tensor(filter, "filter", "octave_downsample")
    if x.dim() < 1:
        raise ValueError("octave_downsample: x must have at least 1 dimension [..., T]")
    if filter.dim() != 1 or filter.shape[0] % 2 == 0:
        raise ValueError(f"octave_downsample: filter must be 1-D with an odd number of taps (zero phase), "
                         f"got shape {tuple(filter.shape)}")
    # Before dispatch: with one meta argument the dispatcher would run the shape-only fake kernel.
    if x.device != filter.device:
        raise ValueError(f"octave_downsample: x is on {x.device} but filter is on {filter.device}; "
                         "move both to the same device")
    if x.dtype != filter.dtype:
        raise TypeError(f"octave_downsample: x has dtype {x.dtype} but filter has dtype {filter.dtype}; "
                        "cast both to the same dtype")
    packed = _extension.ops().octave_downsample(x, filter, levels)
    if levels == 1:
        return packed
    return list(torch.split(packed, octave_level_lengths(x.shape[-1], levels), dim=-1))


def cuda_kernels_compiled() -> bool:
    """True when the extension is present and was built with its CUDA kernels (a GPU need not be visible).

    Returns:
        bool: False without the compiled extension or in a CPU-only build (USE_CUDA=0, no nvcc).
    """
    return _extension.LOADED and torch._C._dispatch_has_kernel_for_dispatch_key("dense_conv::dense_conv2d", "CUDA")


def per_sample_conv2d(weight: torch.Tensor, impulse: torch.Tensor) -> torch.Tensor:
    """A convolution whose kernels differ per sample (dynamic convolution), causal like dense_conv2d.

    weight [B, L, Ci, Hr, Wr], impulse [B, Ci, Hi, Wi] -> out [B, L, Hi, Wi] with
    out[b, l, y, x] = sum_i sum_{p<=y, q<=x} impulse[b, i, y-p, x-q] * weight[b, l, i, p, q].

    Direct kernels: float32 or float64 on the CPU; float16, bfloat16, float32 or float64 on CUDA
    (accumulation in float32, float64 for float64). Both tensors on one device with one dtype;
    non-contiguous inputs are accepted. Differentiable in both arguments (twice).

    Raises:
        TypeError: an argument is not a tensor.
        RuntimeError: wrong rank, batch or channel mismatch (weight's dim 2 against impulse's Ci), mixed
            devices or dtypes, integer tensors, sizes whose products overflow 64 bits.

    Example:
        out = per_sample_conv2d(torch.randn(2, 8, 4, 5, 5), torch.randn(2, 4, 30, 40))  # [2, 8, 30, 40]
    """
    for t, name in ((weight, "weight"), (impulse, "impulse")):
        _check_is_tensor(t, name, "per_sample_conv2d")
        _checks.check_tensor(t, name, "per_sample_conv2d", check=_checks.raise_unless)
    return _extension.ops().per_sample_conv2d(weight, impulse)


def _use_mix_fft(response, impulse, weight, algorithm):
    """dense_mix_conv2d's algorithm: see its docstring."""
    if algorithm == "auto":
        if impulse.device.type == "cuda":
            # CUDA's tap-count rule for a dense problem of L response channels (the per-sample path's direct work)
            mixed_response = response.new_empty((response.shape[0], weight.shape[0], *response.shape[2:]),
                                                device="meta")
            # a gradient through the response or the weight is one through the mixed responses
            mixed_response.requires_grad_(_algorithm.gradient_needed(response, weight))
            return _algorithm.use_fft(mixed_response, impulse, "auto", sparse=False)
        return _algorithm.use_fft(response, impulse, "auto", sparse=False, mix_weight=weight)
    return _algorithm.use_fft(response, impulse, algorithm, sparse=False)


def dense_mix_conv2d(response: torch.Tensor, impulse: torch.Tensor, weight: torch.Tensor,
                     bias: Optional[torch.Tensor] = None, algorithm: str = "auto") -> torch.Tensor:
    """dense_conv2d followed by a 1x1 mix of its Ci*Cr channels, without the B x Ci*Cr dense planes.

    response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi], weight [L, Ci, Cr], bias [L] or None ->
    out [B, L, Hi, Wi] with out[b, l] = sum_{j,k} weight[l, j, k] * (impulse[b, j] (*) response[b, k]) + bias[l],
    the same function as nn.functional.conv2d(dense_conv2d(response, impulse), weight.reshape(L, Ci*Cr, 1, 1)).

    algorithm: "direct" pre-mixes the responses per sample, w[b, l, j] = sum_k weight[l, j, k] response[b, k]
    (B x L x Ci kernels), then runs per_sample_conv2d: Ci*L convolutions per sample instead of Ci*Cr, and only
    the [B, L, Hi, Wi] output is stored. "fft" transforms each impulse and response channel once, mixes
    per frequency bin, Y_l = sum_j X_j sum_k weight[l, j, k] H_k, and transforms only the L outputs back (the
    backward too, in the frequency domain; on CUDA float16/bfloat16 are transformed in float32). "auto"
    (default): on the CPU, the choice of the cost model's mix terms (Ci*L direct convolutions against
    Ci + Cr + L transforms; calibrated per machine by `python -m dense_conv.calibrate`), so large kernels such
    as the user's 37x16 take the FFT; on CUDA, dense_conv2d's choice for a dense problem of L response channels
    (a tap-count rule fitted on an H200: see dense_conv/_algorithm.py).

    Dtypes and devices as per_sample_conv2d (float32/float64 on the CPU, also float16/bfloat16 on CUDA);
    weight and bias must have the inputs' dtype and device. Differentiable in response, impulse, weight
    and bias.

    Raises:
        TypeError: an argument is not a tensor.
        ValueError: an unknown algorithm.
        RuntimeError: wrong rank, batch mismatch, weight not [L, Ci, Cr] for these inputs, bias not [L],
            mixed devices or dtypes, integer tensors.

    Example:
        out = dense_mix_conv2d(torch.randn(2, 5, 3, 3), torch.randn(2, 4, 9, 11), torch.randn(8, 4, 5))
        # [2, 8, 9, 11]
    """
    op = "dense_mix_conv2d"
    for t, name in ((response, "response"), (impulse, "impulse"), (weight, "weight")):
        _check_is_tensor(t, name, op)
    if bias is not None:
        _check_is_tensor(bias, "bias", op)
    if algorithm not in _algorithm.ALGORITHMS:
        raise ValueError(f"algorithm must be one of {_algorithm.ALGORITHMS}, got {algorithm!r}")
    _checks.check_dense_mix(response, impulse, weight, bias, check=_checks.raise_unless)
    ops = _extension.ops()
    if _use_mix_fft(response, impulse, weight, algorithm):
        if _algorithm.keep_fft_spectra(response, impulse, mix_weight=weight):
            out = ops.dense_mix_conv2d_fft_keep_spectra(response, impulse, weight)[0]  # autograd holds the spectra
        else:
            out = ops.dense_mix_conv2d_fft(response, impulse, weight)
    else:
        mixed = torch.einsum("ljk,bkpq->bljpq", weight, response)  # [B, L, Ci, Hr, Wr]
        out = ops.per_sample_conv2d(mixed.contiguous(), impulse)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out
