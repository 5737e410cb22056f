// A WMMA kernel with planted bugs the emulator must report (tests/test_cuda_emulated_wmma.py), beside its
// correct variant: lanes that skip mma_sync (divergent warp), or that left the kernel before it.
#pragma once
#include "../../csrc/cuda/compat.cuh"
#if defined(__CUDACC__)
#include <mma.h>
#endif

namespace dc_planted {

enum WmmaBug { kWmmaCorrect = 0, kWmmaDivergent = 1, kWmmaLanesExited = 2 };

// out[16][16] = a[16][8] * b[8][16] in TF32 (one warp; a, b already rounded to TF32, 32-byte aligned).
template <int kBug>
__global__ void wmma_product_kernel(const float* a, const float* b, float* out) {
  namespace wmma = nvcuda::wmma;
  const int lane = threadIdx.x % 32;
  if (kBug == kWmmaLanesExited && lane >= 16) return;
  wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  wmma::load_matrix_sync(fa, a, 8);
  wmma::load_matrix_sync(fb, b, 16);
  if (kBug != kWmmaDivergent || lane < 16) wmma::mma_sync(acc, fa, fb, acc);
  wmma::store_matrix_sync(out, acc, 16, wmma::mem_row_major);
}

inline void launch_wmma_product(const float* a, const float* b, float* out, int bug) {
  if (bug == kWmmaDivergent)
    DC_LAUNCH(wmma_product_kernel<kWmmaDivergent>, dim3(1), dim3(32), 0, nullptr)(a, b, out);
  else if (bug == kWmmaLanesExited)
    DC_LAUNCH(wmma_product_kernel<kWmmaLanesExited>, dim3(1), dim3(32), 0, nullptr)(a, b, out);
  else
    DC_LAUNCH(wmma_product_kernel<kWmmaCorrect>, dim3(1), dim3(32), 0, nullptr)(a, b, out);
}

}  // namespace dc_planted
