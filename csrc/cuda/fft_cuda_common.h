// What the CUDA FFT algorithms (fft_conv_cuda.cu, fft_mix_cuda.cu) share: the transforms' dtype, the chunks of
// samples, interleaved views of complex spectra for the kernel headers.
#pragma once
#include <ATen/ATen.h>

#include <algorithm>

namespace dc {
namespace fft_cuda {

// Real dtype of the transforms: float64 stays float64, every other floating type runs in float32 (cuFFT's
// half transforms need power-of-two sizes).
inline at::ScalarType transform_type(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

constexpr int64_t kMinChunkBytes = int64_t(64) << 20;

// Samples per chunk: per-chunk intermediates of bytes_per_sample each within max(1/4 of the output, 64 MiB),
// at least one sample, at most 65535 (grid.z of the kernels).
inline int64_t chunk_samples(int64_t B, int64_t bytes_per_sample, int64_t output_bytes) {
  const int64_t budget = std::max(output_bytes / 4, kMinChunkBytes);
  const int64_t n = budget / std::max<int64_t>(1, bytes_per_sample);
  return std::clamp<int64_t>(n, 1, std::min<int64_t>(B, 65535));
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
