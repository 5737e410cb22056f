"""Python mirror of the host transforms of csrc/cuda/fft_cuda_common.h, with torch.fft on the CPU.

The emulated CUDA FFT pipelines (tests/test_cuda_emulated.py emulated_fft_conv, tests/test_cuda_emulated_mix_fft.py
emulated_mix_fft) call these where csrc/cuda/fft_conv_cuda.cu and fft_mix_cuda.cu call their C++ originals, with
the same arguments, so that the pipelines are tested step by step without a GPU. Keep both sides in step.
"""
import torch

COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def real_dtype(dtype):
    """csrc/checks.h fft_real_type: float64 stays float64, every other floating type transforms in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def forward_spectra(x, H, W, scaled):
    """fft_cuda_common.h forward_spectra: [..., H, W // 2 + 1] spectra of x [..., h, w] zero-padded to H x W, times
    1 / (H W) when `scaled` (norm "forward"), contiguous."""
    planes = x.to(real_dtype(x.dtype))
    return torch.fft.rfft2(planes, s=(H, W), norm="forward" if scaled else "backward").contiguous()


def inverse_rows(spec, h_keep, W):
    """fft_cuda_common.h inverse_rows: the first h_keep rows [..., h_keep, W] of the unscaled inverse 2-D real
    transform of spec [..., H, W // 2 + 1]; pruned (columns, then only the kept rows) when 2 h_keep < H."""
    H = spec.shape[-2]
    if 2 * h_keep < H:
        columns = torch.fft.ifft(spec, n=H, dim=-2, norm="forward")
        return torch.fft.irfft(columns.narrow(-2, 0, h_keep), n=W, dim=-1, norm="forward")
    return torch.fft.irfft2(spec, s=(H, W), norm="forward").narrow(-2, 0, h_keep)


def empty_kept_spectra(B, Ci, Cr, H, W, dtype):
    """fft_cuda_common.h empty_kept_spectra: impulse [B, Ci, H, W // 2 + 1], response [B, Cr, H, W // 2 + 1]."""
    complex_dtype = COMPLEX[real_dtype(dtype)]
    return (torch.empty(B, Ci, H, W // 2 + 1, dtype=complex_dtype),
            torch.empty(B, Cr, H, W // 2 + 1, dtype=complex_dtype))
