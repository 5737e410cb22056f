"""Pure-PyTorch references for dense_conv2d and sparse_conv2d.

Every function here computes the same thing as the custom ops:

    dense:  out[b, i*Cr + r, y, x] = sum_{p<=y, q<=x} impulse[b, i, y-p, x-q] * response[b, r, p, q]
    sparse: out[b, c, y, x]        = sum_{p<=y, q<=x} impulse[b, c, y-p, x-q] * response[b, c, p, q]
    per-sample: out[b, l, y, x]    = sum_i sum_{p<=y, q<=x} impulse[b, i, y-p, x-q] * weight[b, l, i, p, q]

They are the user's own variants (loops, grouped conv, unfold + matmul, einsum), written as true
convolutions, plus FFT convolutions. All are differentiable through autograd.
"""
import torch
import torch.nn.functional as F

from .._shapes import next_smooth_size

__all__ = [
    "dense_shift_add", "dense_two_loop", "dense_one_loop", "dense_conv_transpose_loop", "dense_grouped",
    "dense_unfold_matmul", "dense_einsum", "dense_fft", "dense_fft_smooth", "DENSE_VARIANTS",
    "sparse_shift_add", "sparse_loop", "sparse_grouped", "sparse_fft", "sparse_fft_smooth", "SPARSE_VARIANTS",
    "per_sample_shift_add", "per_sample_grouped", "dense_mix_reference",
]


def _sizes(response, impulse):
    B, Cr, Hr, Wr = response.shape
    Bi, Ci, Hi, Wi = impulse.shape
    assert B == Bi, "batch mismatch"
    return B, Ci, Cr, Hi, Wi, Hr, Wr


# ---------------------------------------------------------------------------------------------
# dense
# ---------------------------------------------------------------------------------------------

def dense_shift_add(response, impulse):
    """The definition, one tap at a time: shift the impulse by (p, q), weight it, add. Slow, obvious.

    response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi] -> [B, Ci*Cr, Hi, Wi], as dense_conv2d; any
    floating dtype and device the torch ops take (same for both). AssertionError on a batch mismatch.
    """
    B, Ci, Cr, Hi, Wi, Hr, Wr = _sizes(response, impulse)
    out = impulse.new_zeros(B, Ci, Cr, Hi, Wi)
    for p in range(min(Hr, Hi)):
        for q in range(min(Wr, Wi)):
            shifted = impulse[:, :, None, : Hi - p, : Wi - q]              # [B, Ci, 1, ..]
            weight = response[:, None, :, p, q, None, None]                # [B, 1, Cr, 1, 1]
            out[:, :, :, p:, q:] = out[:, :, :, p:, q:] + shifted * weight
    return out.reshape(B, Ci * Cr, Hi, Wi)


def _flipped_padded(response, impulse):
    """conv2d is a correlation: a true convolution is a correlation with the flipped kernel and the
    impulse padded by (Hr-1, Wr-1) on the top/left, which also gives the causal crop."""
    _, _, _, _, _, Hr, Wr = _sizes(response, impulse)
    return response.flip(-2, -1), F.pad(impulse, (Wr - 1, 0, Hr - 1, 0))


def dense_two_loop(response, impulse):
    """The user's first version: per sample, per impulse channel, conv2d (correlation fixed).

    response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi] -> [B, Ci*Cr, Hi, Wi], as dense_conv2d; any
    floating dtype and device the torch ops take (same for both). AssertionError on a batch mismatch.
    """
    B, Ci, Cr, Hi, Wi, Hr, Wr = _sizes(response, impulse)
    kernel, padded = _flipped_padded(response, impulse)
    batches = []
    for b in range(B):
        channels = [F.conv2d(padded[b, i][None, None], kernel[b][:, None]) for i in range(Ci)]  # [1, Cr, Hi, Wi]
        batches.append(torch.cat(channels, dim=1))
    return torch.cat(batches, dim=0)


def dense_one_loop(response, impulse):
    """The user's improved version: per sample, impulse channels as the conv2d batch.

    response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi] -> [B, Ci*Cr, Hi, Wi], as dense_conv2d; any
    floating dtype and device the torch ops take (same for both). AssertionError on a batch mismatch.
    """
    B, Ci, Cr, Hi, Wi, Hr, Wr = _sizes(response, impulse)
    kernel, padded = _flipped_padded(response, impulse)
    return torch.stack([F.conv2d(padded[b][:, None], kernel[b][:, None]).reshape(Ci * Cr, Hi, Wi)
                        for b in range(B)])


def dense_conv_transpose_loop(response, impulse):
    """The user's conv_transpose2d version (a true convolution), full output cropped to Hi x Wi.

    response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi] -> [B, Ci*Cr, Hi, Wi], as dense_conv2d; any
    floating dtype and device the torch ops take (same for both). AssertionError on a batch mismatch.
    """
    B, Ci, Cr, Hi, Wi, Hr, Wr = _sizes(response, impulse)
    return torch.stack([F.conv_transpose2d(impulse[b][:, None], response[b][None])[:, :, :Hi, :Wi]
                        .reshape(Ci * Cr, Hi, Wi) for b in range(B)])


def dense_grouped(response, impulse):
    """The user's zero-loop version: one grouped conv2d with groups=B, impulse channels as the batch.

    response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi] -> [B, Ci*Cr, Hi, Wi], as dense_conv2d; any
    floating dtype and device the torch ops take (same for both). AssertionError on a batch mismatch.
    """
    B, Ci, Cr, Hi, Wi, Hr, Wr = _sizes(response, impulse)
    kernel, padded = _flipped_padded(response, impulse)
    out = F.conv2d(padded.transpose(0, 1), kernel.reshape(B * Cr, 1, Hr, Wr), groups=B)  # [Ci, B*Cr, Hi, Wi]
    return out.view(Ci, B, Cr, Hi, Wi).transpose(0, 1).reshape(B, Ci * Cr, Hi, Wi)


def _unfolded(response, impulse):
    B, Ci, Cr, Hi, Wi, Hr, Wr = _sizes(response, impulse)
    kernel, padded = _flipped_padded(response, impulse)
    cols = F.unfold(padded, (Hr, Wr)).view(B, Ci, Hr * Wr, Hi * Wi)   # [B, Ci, taps, pixels]
    return kernel.reshape(B, Cr, Hr * Wr), cols


def dense_unfold_matmul(response, impulse):
    """Copilot's unfold + matmul version (memory: Hr*Wr copies of the impulse).

    response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi] -> [B, Ci*Cr, Hi, Wi], as dense_conv2d; any
    floating dtype and device the torch ops take (same for both). AssertionError on a batch mismatch.
    """
    B, Ci, Cr, Hi, Wi, Hr, Wr = _sizes(response, impulse)
    kernel, cols = _unfolded(response, impulse)
    out = torch.matmul(kernel[:, None], cols)                          # [B, Ci, Cr, pixels]
    return out.reshape(B, Ci * Cr, Hi, Wi)


def dense_einsum(response, impulse):
    """The unfold version with einsum (memory: Hr*Wr copies of the impulse).

    response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi] -> [B, Ci*Cr, Hi, Wi], as dense_conv2d; any
    floating dtype and device the torch ops take (same for both). AssertionError on a batch mismatch.
    """
    B, Ci, Cr, Hi, Wi, Hr, Wr = _sizes(response, impulse)
    kernel, cols = _unfolded(response, impulse)
    return torch.einsum("brk,bikn->birn", kernel, cols).reshape(B, Ci * Cr, Hi, Wi)


def _fft_sizes(response, impulse, smooth):
    _, _, _, Hi, Wi, Hr, Wr = _sizes(response, impulse)
    # the full linear size: no circular wrap-around into the kept Hi x Wi corner
    H, W = Hi + Hr - 1, Wi + Wr - 1
    return (next_smooth_size(H), next_smooth_size(W)) if smooth else (H, W)


def _dense_fft(response, impulse, smooth):
    B, Ci, Cr, Hi, Wi, Hr, Wr = _sizes(response, impulse)
    s = _fft_sizes(response, impulse, smooth)
    spec_i = torch.fft.rfft2(impulse, s=s)                              # [B, Ci, H, W/2+1]
    spec_r = torch.fft.rfft2(response, s=s)                             # [B, Cr, H, W/2+1]
    out = torch.fft.irfft2(spec_i[:, :, None] * spec_r[:, None], s=s)   # [B, Ci, Cr, H, W]
    return out[..., :Hi, :Wi].reshape(B, Ci * Cr, Hi, Wi)


def dense_fft(response, impulse):
    """FFT convolution at the full linear size (Hi+Hr-1) x (Wi+Wr-1).

    response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi] -> [B, Ci*Cr, Hi, Wi], as dense_conv2d; any
    floating dtype and device the torch ops take (same for both). AssertionError on a batch mismatch.
    """
    return _dense_fft(response, impulse, smooth=False)


def dense_fft_smooth(response, impulse):
    """FFT convolution at sizes padded to 2,3,5-smooth numbers (what a careful user writes).

    response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi] -> [B, Ci*Cr, Hi, Wi], as dense_conv2d; any
    floating dtype and device the torch ops take (same for both). AssertionError on a batch mismatch.
    """
    return _dense_fft(response, impulse, smooth=True)


#: The dense references by name (the benchmark's row labels): name -> function(response, impulse),
#: response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi] -> [B, Ci*Cr, Hi, Wi]; dtypes as the functions.
DENSE_VARIANTS = {
    "shift_add": dense_shift_add,
    "two_loop": dense_two_loop,
    "one_loop": dense_one_loop,
    "conv_transpose_loop": dense_conv_transpose_loop,
    "grouped": dense_grouped,
    "unfold_matmul": dense_unfold_matmul,
    "einsum": dense_einsum,
    "fft": dense_fft,
    "fft_smooth": dense_fft_smooth,
}


# ---------------------------------------------------------------------------------------------
# sparse
# ---------------------------------------------------------------------------------------------

def _check_sparse(response, impulse):
    B, Ci, Cr, Hi, Wi, Hr, Wr = _sizes(response, impulse)
    assert Ci == Cr, "sparse: channel mismatch"
    return B, Ci, Hi, Wi, Hr, Wr


def sparse_shift_add(response, impulse):
    """The definition, one tap at a time.

    response [B, C, Hr, Wr], impulse [B, C, Hi, Wi] -> [B, C, Hi, Wi], as sparse_conv2d; any
    floating dtype and device the torch ops take (same for both). AssertionError on a batch or channel
    mismatch.
    """
    B, C, Hi, Wi, Hr, Wr = _check_sparse(response, impulse)
    out = impulse.new_zeros(B, C, Hi, Wi)
    for p in range(min(Hr, Hi)):
        for q in range(min(Wr, Wi)):
            out[:, :, p:, q:] = out[:, :, p:, q:] + impulse[:, :, : Hi - p, : Wi - q] * response[:, :, p, q, None, None]
    return out


def sparse_loop(response, impulse):
    """Per sample, a depthwise conv_transpose2d (groups=C), cropped.

    response [B, C, Hr, Wr], impulse [B, C, Hi, Wi] -> [B, C, Hi, Wi], as sparse_conv2d; any
    floating dtype and device the torch ops take (same for both). AssertionError on a batch or channel
    mismatch.
    """
    B, C, Hi, Wi, Hr, Wr = _check_sparse(response, impulse)
    return torch.stack([F.conv_transpose2d(impulse[b][None], response[b][:, None], groups=C)[0, :, :Hi, :Wi]
                        for b in range(B)])


def sparse_grouped(response, impulse):
    """The user's sparseConv2d: one conv_transpose2d with groups=B*C. The impulse is not padded (a
    padded view is easy to get wrong when Hr != Wr); the full output is cropped instead.

    response [B, C, Hr, Wr], impulse [B, C, Hi, Wi] -> [B, C, Hi, Wi], as sparse_conv2d; any
    floating dtype and device the torch ops take (same for both). AssertionError on a batch or channel
    mismatch.
    """
    B, C, Hi, Wi, Hr, Wr = _check_sparse(response, impulse)
    out = F.conv_transpose2d(impulse.reshape(1, B * C, Hi, Wi), response.reshape(B * C, 1, Hr, Wr), groups=B * C)
    return out[0, :, :Hi, :Wi].reshape(B, C, Hi, Wi)


def _sparse_fft(response, impulse, smooth):
    B, C, Hi, Wi, Hr, Wr = _check_sparse(response, impulse)
    s = _fft_sizes(response, impulse, smooth)
    out = torch.fft.irfft2(torch.fft.rfft2(impulse, s=s) * torch.fft.rfft2(response, s=s), s=s)
    return out[..., :Hi, :Wi]


def sparse_fft(response, impulse):
    """FFT convolution at the full linear size (Hi+Hr-1) x (Wi+Wr-1).

    response [B, C, Hr, Wr], impulse [B, C, Hi, Wi] -> [B, C, Hi, Wi], as sparse_conv2d; any
    floating dtype and device the torch ops take (same for both). AssertionError on a batch or channel
    mismatch.
    """
    return _sparse_fft(response, impulse, smooth=False)


def sparse_fft_smooth(response, impulse):
    """FFT convolution at sizes padded to 2,3,5-smooth numbers.

    response [B, C, Hr, Wr], impulse [B, C, Hi, Wi] -> [B, C, Hi, Wi], as sparse_conv2d; any
    floating dtype and device the torch ops take (same for both). AssertionError on a batch or channel
    mismatch.
    """
    return _sparse_fft(response, impulse, smooth=True)


#: The sparse references by name: name -> function(response, impulse),
#: response [B, C, Hr, Wr], impulse [B, C, Hi, Wi] -> [B, C, Hi, Wi]; dtypes as the functions.
SPARSE_VARIANTS = {
    "shift_add": sparse_shift_add,
    "loop": sparse_loop,
    "grouped": sparse_grouped,
    "fft": sparse_fft,
    "fft_smooth": sparse_fft_smooth,
}


# ---------------------------------------------------------------------------------------------
# per-sample (dynamic) convolution and the dense conv + 1x1 mix
# ---------------------------------------------------------------------------------------------

def per_sample_shift_add(weight, impulse):
    """per_sample_conv2d's definition, one tap at a time: weight [B, L, Ci, Hr, Wr], impulse [B, Ci, Hi, Wi]
    -> out [B, L, Hi, Wi], in the inputs' dtype (any floating dtype, any device; float64 for the tests)."""
    B, L, Ci, Hr, Wr = weight.shape
    Bi, Cii, Hi, Wi = impulse.shape
    assert (B, Ci) == (Bi, Cii), "batch or channel mismatch"
    out = impulse.new_zeros(B, L, Hi, Wi)
    for p in range(min(Hr, Hi)):
        for q in range(min(Wr, Wi)):
            term = torch.einsum("bihw,bli->blhw", impulse[:, :, : Hi - p, : Wi - q], weight[:, :, :, p, q])
            out[:, :, p:, q:] = out[:, :, p:, q:] + term
    return out


def per_sample_grouped(weight, impulse):
    """per_sample_conv2d as one grouped conv2d (groups=B, the batch folded into the channels): the usual
    dynamic-convolution formulation. weight [B, L, Ci, Hr, Wr], impulse [B, Ci, Hi, Wi] -> [B, L, Hi, Wi],
    in the inputs' dtype (any floating dtype and device the torch ops take). AssertionError on a mismatch."""
    B, L, Ci, Hr, Wr = weight.shape
    Bi, Cii, Hi, Wi = impulse.shape
    assert (B, Ci) == (Bi, Cii), "batch or channel mismatch"
    padded = F.pad(impulse, (Wr - 1, 0, Hr - 1, 0)).reshape(1, B * Ci, Hi + Hr - 1, Wi + Wr - 1)
    out = F.conv2d(padded, weight.flip(-2, -1).reshape(B * L, Ci, Hr, Wr), groups=B)  # [1, B*L, Hi, Wi]
    return out.view(B, L, Hi, Wi)


def dense_mix_reference(response, impulse, weight, bias=None):
    """dense_mix_conv2d as the user's layer: dense_conv2d's planes, then the 1x1 mix weight [L, Ci, Cr].

    response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi], bias [L] or None -> out [B, L, Hi, Wi], in the
    inputs' dtype (any floating dtype, any device; float64 for the tests). Stores the B x Ci*Cr planes."""
    B, Ci, Cr, Hi, Wi, Hr, Wr = _sizes(response, impulse)
    dense = dense_shift_add(response, impulse).reshape(B, Ci, Cr, Hi, Wi)
    out = torch.einsum("ljk,bjkhw->blhw", weight, dense)
    return out if bias is None else out + bias.view(1, -1, 1, 1)
