"""Argument checks shared by the public functions and the fake kernels: the Python mirror of csrc/checks.h
(same conditions, same messages).

torch._check raises RuntimeError, like TORCH_CHECK, and works on the fake tensors of torch.compile without
specialising symbolic sizes; code that Dynamo traces (the public functions) passes check=raise_unless
instead, since Dynamo cannot trace torch._check messages that format symbolic values.
"""
import operator

import torch

from ._shapes import MAX_OCTAVE_LEVELS, conv_output_shape, octave_level_lengths, per_sample_output_shape

_INT64_MAX = 2 ** 63 - 1


def raise_unless(condition, message):
    """torch._check's behaviour (RuntimeError(message())) in plain Python."""
    if not condition:
        raise RuntimeError(message())


def _concrete(*sizes):
    return all(isinstance(v, int) for v in sizes)


def checked_product(sizes, op, what, check=torch._check):
    """Product of sizes, with an error when it does not fit in int64 (symbolic sizes are not checked)."""
    if not _concrete(*sizes):
        return None
    n = 1
    for v in sizes:
        n *= v
    check(n <= _INT64_MAX, lambda: f"{op}: {what} has more elements than a 64-bit index can count; "
                 "split the input")
    return n


def check_tensor(t, name, op, check=torch._check):
    check(isinstance(t, torch.Tensor), lambda: f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    check(t.is_floating_point(), lambda: f"{op}: {name} must be a floating-point tensor (float16, bfloat16, "
                 f"float32 or float64), got {t.dtype}")


def check_same_device_dtype(a, a_name, b, b_name, op):
    torch._check(a.device == b.device, lambda: f"{op}: {a_name} is on {a.device} but {b_name} is on {b.device}; "
                 "move both to the same device")
    torch._check(a.dtype == b.dtype, lambda: f"{op}: {a_name} has dtype {a.dtype} but {b_name} has dtype {b.dtype}; "
                 "cast both to the same dtype")


# ---- dense_conv2d / sparse_conv2d ----

def conv_op_name(sparse):
    return "sparse_conv2d" if sparse else "dense_conv2d"


def check_conv_sizes(response_shape, impulse_shape, sparse, check=torch._check):
    """Ranks, batch (and channel, sparse) agreement, and no size product beyond int64."""
    op = conv_op_name(sparse)
    check(len(response_shape) == 4, lambda: f"{op}: response must be 4-D, got shape {tuple(response_shape)}")
    check(len(impulse_shape) == 4, lambda: f"{op}: impulse must be 4-D, got shape {tuple(impulse_shape)}")
    check(response_shape[0] == impulse_shape[0], lambda: f"{op}: batch mismatch, response has "
           f"B={response_shape[0]} but impulse has B={impulse_shape[0]}")
    if sparse:
        check(response_shape[1] == impulse_shape[1], lambda: f"{op}: channel mismatch, response has "
               f"C={response_shape[1]} but impulse has C={impulse_shape[1]}")
    B, Ci, Hi, Wi = impulse_shape
    _, Cr, Hr, Wr = response_shape
    checked_product((B, Ci if sparse else Ci * Cr, Hi, Wi), op, "the output", check)
    checked_product((B, Ci, Cr), op, "B x Ci x Cr", check)
    checked_product((B, Cr, Hr, Wr), op, "the response", check)
    checked_product((B, Ci, Hi, Wi), op, "the impulse", check)
    return conv_output_shape(response_shape, impulse_shape, sparse)


def check_conv_forward(response, impulse, sparse):
    """Checks of a forward op; returns the output shape."""
    op = conv_op_name(sparse)
    check_tensor(response, "response", op)
    check_tensor(impulse, "impulse", op)
    check_same_device_dtype(response, "response", impulse, "impulse", op)
    return check_conv_sizes(response.shape, impulse.shape, sparse)


def check_conv_backward(grad_out, tensors, response_shape, impulse_shape, sparse):
    """Checks of a gradient op: grad_out and the forward inputs it gets ({name: tensor}), sizes, grad_out's shape."""
    op = conv_op_name(sparse)
    check_tensor(grad_out, "grad_out", op)
    for name, t in tensors.items():
        check_tensor(t, name, op)
        check_same_device_dtype(grad_out, "grad_out", t, name, op)
    out_shape = check_conv_sizes(response_shape, impulse_shape, sparse)
    torch._check(tuple(grad_out.shape) == tuple(out_shape), lambda: f"{op}: grad_out must have the output's shape "
                 f"{tuple(out_shape)}, got {tuple(grad_out.shape)}")


# ---- per_sample_conv2d ----

PER_SAMPLE_OP = "per_sample_conv2d"


def check_per_sample_sizes(weight_shape, impulse_shape, check=torch._check):
    """Ranks, batch and channel agreement, and no size product beyond int64; returns the output shape."""
    op = PER_SAMPLE_OP
    check(len(weight_shape) == 5, lambda: f"{op}: weight must be 5-D [B, L, Ci, Hr, Wr], got shape "
          f"{tuple(weight_shape)}")
    check(len(impulse_shape) == 4, lambda: f"{op}: impulse must be 4-D [B, Ci, Hi, Wi], got shape "
          f"{tuple(impulse_shape)}")
    check(weight_shape[0] == impulse_shape[0], lambda: f"{op}: batch mismatch, weight has B={weight_shape[0]} "
          f"but impulse has B={impulse_shape[0]} (every sample has its own weights)")
    check(weight_shape[2] == impulse_shape[1], lambda: f"{op}: channel mismatch, weight has Ci={weight_shape[2]} "
          f"(dim 2) but impulse has Ci={impulse_shape[1]}")
    B, Ci, Hi, Wi = impulse_shape
    _, L, _, Hr, Wr = weight_shape
    checked_product((B, L, Hi, Wi), op, "the output", check)
    checked_product((B, L, Ci, Hr, Wr), op, "the weight", check)
    checked_product((B, Ci, Hi, Wi), op, "the impulse", check)
    return per_sample_output_shape(weight_shape, impulse_shape)


def check_per_sample_forward(weight, impulse):
    """Checks of per_sample_conv2d; returns the output shape."""
    op = PER_SAMPLE_OP
    check_tensor(weight, "weight", op)
    check_tensor(impulse, "impulse", op)
    check_same_device_dtype(weight, "weight", impulse, "impulse", op)
    return check_per_sample_sizes(weight.shape, impulse.shape)


def check_per_sample_backward(grad_out, tensors, weight_shape, impulse_shape):
    """Checks of a per_sample_conv2d gradient op: grad_out, the forward input it gets ({name: tensor}), sizes."""
    op = PER_SAMPLE_OP
    check_tensor(grad_out, "grad_out", op)
    for name, t in tensors.items():
        check_tensor(t, name, op)
        check_same_device_dtype(grad_out, "grad_out", t, name, op)
    out_shape = check_per_sample_sizes(weight_shape, impulse_shape)
    torch._check(tuple(grad_out.shape) == tuple(out_shape), lambda: f"{op}: grad_out must have the output's shape "
                 f"{tuple(out_shape)}, got {tuple(grad_out.shape)}")


def check_dense_mix(response, impulse, weight, bias=None, check=torch._check):
    """dense_mix_conv2d's arguments, the mirror of check_mix_forward in csrc/checks.h (plus bias [L] or
    None): response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi], weight [L, Ci, Cr]; floating point, one
    device, one dtype; size products checked for overflow. Returns the output shape (B, L, Hi, Wi)."""
    op = "dense_mix_conv2d"
    named = [("response", response), ("impulse", impulse), ("weight", weight)]
    if bias is not None:
        named.append(("bias", bias))
    for name, t in named:
        check_tensor(t, name, op, check)
    for name, t in named:
        if name != "impulse":  # check_same_device_dtype's messages, through `check` (plain Python when eager)
            check(t.device == impulse.device, lambda: f"{op}: {name} is on {t.device} but impulse is on "
                  f"{impulse.device}; move both to the same device")
            check(t.dtype == impulse.dtype, lambda: f"{op}: {name} has dtype {t.dtype} but impulse has dtype "
                  f"{impulse.dtype}; cast both to the same dtype")
    r, i, w = response.shape, impulse.shape, weight.shape
    check(len(r) == 4, lambda: f"{op}: response must be 4-D [B, Cr, Hr, Wr], got shape {tuple(r)}")
    check(len(i) == 4, lambda: f"{op}: impulse must be 4-D [B, Ci, Hi, Wi], got shape {tuple(i)}")
    check(len(w) == 3, lambda: f"{op}: weight must be 3-D [L, Ci, Cr], got shape {tuple(w)}")
    check(r[0] == i[0], lambda: f"{op}: batch mismatch, response has B={r[0]} but impulse has B={i[0]} "
          "(every sample has its own response)")
    check(w[1] == i[1], lambda: f"{op}: channel mismatch, weight has Ci={w[1]} (dim 1) but impulse has Ci={i[1]}")
    check(w[2] == r[1], lambda: f"{op}: channel mismatch, weight has Cr={w[2]} (dim 2) but response has Cr={r[1]}")
    if bias is not None:
        check(bias.dim() == 1 and bias.shape[0] == w[0],
              lambda: f"{op}: bias must be 1-D [L] = [{w[0]}], got shape {tuple(bias.shape)}")
    B, Ci, Hi, Wi = i
    L = w[0]
    checked_product((B, L, Hi, Wi), op, "the output", check)
    checked_product(tuple(r), op, "the response", check)
    checked_product(tuple(i), op, "the impulse", check)
    checked_product((B, L, Ci, r[1]), op, "B x L x Ci x Cr", check)
    return (B, L, Hi, Wi)


# ---- octave_downsample ----

def check_octave_levels(levels):
    """levels: an int in [1, MAX_OCTAVE_LEVELS] (TypeError / ValueError naming it, before any dispatch)."""
    if isinstance(levels, torch.SymInt):
        return levels
    if isinstance(levels, bool):
        raise TypeError(f"octave_downsample: levels must be an int in [1, {MAX_OCTAVE_LEVELS}], got a bool ({levels})")
    try:
        levels = operator.index(levels)
    except TypeError:
        raise TypeError(f"octave_downsample: levels must be an int in [1, {MAX_OCTAVE_LEVELS}], got {levels!r} "
                        f"({type(levels).__name__})") from None
    if not 1 <= levels <= MAX_OCTAVE_LEVELS:
        raise ValueError(f"octave_downsample: levels must be an int in [1, {MAX_OCTAVE_LEVELS}], got {levels}")
    return levels


def check_octave_tensors(x, filter, x_name="x"):
    """x (or grad) and filter: floating point, same device and dtype; filter 1-D with an odd length."""
    op = "octave_downsample"
    check_tensor(x, x_name, op)
    check_tensor(filter, "filter", op)
    torch._check(filter.dim() == 1, lambda: f"{op}: filter must be 1-D [taps], got shape {tuple(filter.shape)}")
    torch._check(filter.shape[0] % 2 == 1, lambda: f"{op}: the filter must have an odd number of taps (zero phase), "
                 f"got {filter.shape[0]}")
    check_same_device_dtype(x, x_name, filter, "filter", op)


def check_octave_sizes(x_shape, levels):
    """x has a last dim T; levels in range; rows x T and rows x (packed output) within int64."""
    op = "octave_downsample"
    torch._check(len(x_shape) >= 1, lambda: f"{op}: x must have at least 1 dimension [..., T], got a scalar")
    torch._check(1 <= levels <= MAX_OCTAVE_LEVELS,
                 lambda: f"{op}: levels must be an int in [1, {MAX_OCTAVE_LEVELS}], got {levels}")
    rows = checked_product(tuple(x_shape[:-1]), op, "x")
    if rows is not None and _concrete(x_shape[-1], levels):
        checked_product((rows, x_shape[-1]), op, "x")
        checked_product((rows, sum(octave_level_lengths(x_shape[-1], levels))), op, "the output")
