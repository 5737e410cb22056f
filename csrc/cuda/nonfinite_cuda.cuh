// The CUDA ops' entry to the non-finite check (nonfinite.h).
//
// Every CUDA op keeps the check on the device: dense_conv2d (direct and FFT; sparse_conv2d through it),
// per_sample_conv2d (and so dense_mix_conv2d's direct algorithm, which pre-mixes the responses and calls it) and
// dense_mix_conv2d's FFT algorithm (fft_mix_cuda.cu). nonfinite_checksums (nonfinite_mix_checksums for the mix:
// the weight's sum added to every sample's) are ATen reductions on the current stream, then a kernel of
// nonfinite_kernels.cuh recomputes in place the samples whose checksum is non-finite. No host synchronisation, so
// the ops also run under CUDA graph capture. Cost per op when everything is finite: the checksum (one sum, or a few
// sums and adds when the inputs are checked) and one launch (three for the mix's backward) of B x (at most 8)
// blocks that return at once.
#pragma once
#include "../nonfinite.h"
#include "nonfinite_kernels.cuh"

namespace dc {

// nonfinite_checksums' data as the kernels take it (float; double for double).
template <typename scalar_t>
const typename AccType<scalar_t>::type* checksum_data(const at::Tensor& checksum) {
  return checksum.data_ptr<typename AccType<scalar_t>::type>();
}

}  // namespace dc
