// What the CUDA FFT algorithms (fft_conv_cuda.cu, fft_mix_cuda.cu) share: chunks of samples, the 2-D transforms
// (cuFFT through ATen) with the scaling they share with the CPU (csrc/cpu/fft_common.h), the kept spectra,
// interleaved views of complex spectra for the kernel headers. The transforms' dtype: fft_real_type (checks.h).
//
// Scaling, as on the CPU: the response spectra carry the 1/(H W) of the inverse transforms (norm "forward"), so
// the inverse transforms never scale (no normalisation pass over the largest intermediate, the output planes),
// and the kept response spectra are the CPU's.
//
// Pruning. The CPU prunes both directions (fft_common.h forward_2d / inverse_2d): rows of zero padding are not
// transformed, rows outside the crop are not transformed back. With cuFFT through ATen the transform along H
// (dim -2) of [N, H, W/2+1] spectra cannot be one strided batched plan (two batch strides: N and the column),
// so ATen first copies the spectra into a column-major layout and returns its result in that layout. Counting
// bytes read + written per plane, in units of one spectrum plane S = H (W/2+1) complex (~ one real H x W plane),
// with cuFFT's 2-D transform taken as two passes over the plane (column pass, row pass) and f = h_keep / H:
//   inverse, whole:  clone (cuFFT's C2R overwrites its input) 2S + 2-D C2R 4S                        = 6S
//   inverse, pruned: transposing copy 2S + column C2C 2S + clone of the h_keep rows 2fS + row C2R 2fS = (4 + 4f)S
//   forward, whole:  zero-padded copy (1 + 2fg)S (g = w / W) + 2-D R2C 4S                          = (5 + 2fg)S
//   forward, pruned: row padding (f + 2fg)S + row R2C 2fS + column padding (1 + 2f)S + transposing copy 2S
//                    + column C2C 2S + copy back to the kernels' row-major layout 2S                 = (7 + 5f + 2fg)S
// So inverse_rows prunes when f < 1/2 (2 h_keep < H: the response gradients at the user's shape, 37 of 120
// rows) and forward_spectra never prunes. These are counts and a model of cuFFT, not timings.
#pragma once
#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

#include "../checks.h"

namespace dc {
namespace fft_cuda {

constexpr int64_t kMinChunkBytes = int64_t(256) << 20;

// Samples per chunk: per-chunk intermediates of bytes_per_sample each within max(the output, 256 MiB), at least
// one sample, at most 65535 (grid.z of the kernels). Each chunk costs ~16 launches (transforms, ATen's copies,
// our kernel) per direction, so few large chunks pay: measured on an H200 at the user's shape (impulse
// [64, 4, 84, 600], response 37x16, float32), max(1/4 of the output, 64 MiB) made 7 chunks, 114 launches in the
// forward and 237 in forward+backward, 2.11 / 5.73 ms against torch.fft in one batch (bench.py ref:fft_smooth)
// 1.4 / 4.3 ms. At most as much again as the output is the memory it may take on top.
inline int64_t chunk_samples(int64_t B, int64_t bytes_per_sample, int64_t output_bytes) {
  const int64_t budget = std::max(output_bytes, kMinChunkBytes);
  const int64_t n = budget / std::max<int64_t>(1, bytes_per_sample);
  return std::clamp<int64_t>(n, 1, std::min<int64_t>(B, 65535));
}

// spectra [..., H, W/2+1] (complex of fft_real_type, contiguous) of the real planes x [..., h, w] (h <= H,
// w <= W) zero-padded to H x W; times 1/(H W) when `scaled` (the response spectra). Written into `kept` when it
// is defined (a chunk of the kept spectra: ATen's out= variant writes while it normalises, so the unscaled
// impulse spectra cost one copy and the scaled response spectra none). Not pruned (see the top).
inline at::Tensor forward_spectra(const at::Tensor& x, int64_t H, int64_t W, bool scaled, at::Tensor kept = {}) {
  const at::Tensor planes = x.to(fft_real_type(x.scalar_type()));
  const std::vector<int64_t> size{H, W};
  const char* norm = scaled ? "forward" : "backward";  // "backward": the forward transform is not scaled
  if (kept.defined()) return at::fft_rfft2_out(kept, planes, size, {-2, -1}, norm);
  return at::fft_rfft2(planes, size, {-2, -1}, norm).contiguous();
}

// The first h_keep rows [..., h_keep, W] of the unscaled inverse 2-D real transform of spec [..., H, W/2+1].
// When fewer than half the rows are kept: the complex inverse down all W/2+1 columns, then the real inverse along
// the h_keep kept rows only (the idea of the CPU's inverse_2d); otherwise one 2-D transform, then the rows.
inline at::Tensor inverse_rows(const at::Tensor& spec, int64_t h_keep, int64_t W) {
  const int64_t H = spec.size(-2);
  if (2 * h_keep < H) {
    const at::Tensor columns = at::fft_ifft(spec, H, -2, "forward");  // "forward": the inverse is not scaled
    return at::fft_irfft(columns.narrow(-2, 0, h_keep), W, -1, "forward");
  }
  return at::fft_irfft2(spec, std::vector<int64_t>{H, W}, {-2, -1}, "forward").narrow(-2, 0, h_keep);
}

// Empty kept spectra (KeptSpectra, checks.h) for a forward of sizes s.
inline KeptSpectra empty_kept_spectra(const ConvSizes& s, const FftPlan& f, const at::Tensor& like) {
  const auto copt = like.options().dtype(c10::toComplexType(fft_real_type(like.scalar_type())));
  return {at::empty({s.B, s.Ci, f.H, f.W / 2 + 1}, copt), at::empty({s.B, s.Cr, f.H, f.W / 2 + 1}, copt)};
}

// Interleaved (re, im) view of a contiguous complex tensor's data.
template <typename scalar_t>
const scalar_t* interleaved(const at::Tensor& t) {
  return reinterpret_cast<const scalar_t*>(t.const_data_ptr());
}
template <typename scalar_t>
scalar_t* interleaved_mut(at::Tensor& t) {
  return reinterpret_cast<scalar_t*>(t.mutable_data_ptr());
}

}  // namespace fft_cuda
}  // namespace dc
