// The CUDA ops' entry to the non-finite check (nonfinite.h).
//
// dense_conv2d (direct and FFT; sparse_conv2d through it) and per_sample_conv2d keep the check on the device:
// nonfinite_checksums (ATen reductions on the current stream), then a kernel of nonfinite_kernels.cuh that
// recomputes in place the samples whose checksum is non-finite. No host synchronisation, so they also run under
// CUDA graph capture. Cost per op when everything is finite: the checksum (one sum, or two sums and an add when
// the inputs are checked) and one launch of B x (at most 8) blocks that return at once.
//
// dense_mix_conv2d (fft_mix_cuda.cu) stays on the host path (exact_nonfinite_mix_*: its weight reaches every
// sample and its definition goes through einsums; no kernel for it here). That check copies one flag to the
// host, which a CUDA graph capture forbids, so it is skipped while the current stream is being captured (the
// captured graph keeps the fast kernels' result for non-finite inputs).
#pragma once
#include <ATen/cuda/CUDAGraphsUtils.cuh>

#include "../nonfinite.h"
#include "nonfinite_kernels.cuh"

namespace dc {

// For the host path only (dense_mix_conv2d).
inline bool nonfinite_check_allowed() {
  return at::cuda::currentStreamCaptureStatus() == at::cuda::CaptureStatus::None;
}

// nonfinite_checksums' data as the kernels take it (float; double for double).
template <typename scalar_t>
const typename AccType<scalar_t>::type* checksum_data(const at::Tensor& checksum) {
  return checksum.data_ptr<typename AccType<scalar_t>::type>();
}

}  // namespace dc
