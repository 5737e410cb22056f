// The two portability points between nvcc and the test-only CPU emulator.
//
// Kernel headers (csrc/cuda/*_kernels.cuh) contain no ATen: they hold the __global__ kernels, the
// code that computes their launch configuration, and a host launch function. They are compiled
// twice from the same text:
//   * by nvcc, for the extension (csrc/cuda/*.cu include them);
//   * by g++ with DC_CUDA_EMULATOR defined, for the tests: the test-only emulator tests/emu/cuda_emu.h
//     (on the include path of the emulator builds only) then supplies __global__, __shared__,
//     threadIdx, __syncthreads, warp shuffles, atomics, vector types...
//
// Everything CUDA-specific that the emulator cannot provide as a plain name goes through:
//   DC_LAUNCH(kernel, grid, block, smem_bytes, stream)(args...)   a kernel launch
//   dc_dynamic_smem<T>()                                           the block's dynamic shared memory
//
// For kernel authors: a kernel that declares static `__shared__` arrays must be a template or
// `inline` (as any kernel defined in a header should be). Under the emulator `__shared__` is a
// function static, which the emulator finds by the kernel's symbol name to poison before every block;
// a plain non-inline kernel's statics would be missed (and would break the one-definition rule).
#pragma once

#if defined(__CUDACC__)

#include <cuda_runtime.h>

#define DC_LAUNCH(kernel, grid, block, smem_bytes, stream) kernel<<<(grid), (block), (smem_bytes), (stream)>>>

// A raw `extern __shared__` array cannot be declared in a template under g++, so kernels ask for it.
template <typename T>
__device__ __forceinline__ T* dc_dynamic_smem() {
  extern __shared__ __align__(16) unsigned char dc_dynamic_smem_bytes[];
  return reinterpret_cast<T*>(dc_dynamic_smem_bytes);
}

#elif defined(DC_CUDA_EMULATOR)

#include "cuda_emu.h"

#else
#error "csrc/cuda kernel headers need nvcc, or DC_CUDA_EMULATOR and -I tests/emu for the test-only emulator"
#endif

#include <cstdint>
#include <stdexcept>
#include <string>

#include "../shapes.h"

namespace dc {

// Launch configuration of a kernel, computed by the same code for nvcc and for the emulator. Block
// counts are products of user sizes (at most a tensor's element count, which the argument checks keep
// within int64): they stay 64-bit until checked_grid() narrows them.
struct LaunchConfig {
  int64_t blocks_x, blocks_y, blocks_z;
  unsigned threads;
  size_t smem_bytes;
};

// The grid of `c`, or std::runtime_error (RuntimeError in Python) when it exceeds CUDA's limits.
inline dim3 checked_grid(const LaunchConfig& c, const char* what) {
  if (c.blocks_x > INT32_MAX || c.blocks_y > 65535 || c.blocks_z > 65535)
    throw std::runtime_error(std::string(what) + ": the launch needs a grid of " + std::to_string(c.blocks_x) + " x " +
                             std::to_string(c.blocks_y) + " x " + std::to_string(c.blocks_z) +
                             " blocks, more than CUDA allows (2147483647 x 65535 x 65535); split the batch");
  return dim3((unsigned)c.blocks_x, (unsigned)c.blocks_y, (unsigned)c.blocks_z);
}

// Accumulation type of every kernel: float for half, bfloat16 and float inputs, double for double.
template <typename scalar_t>
struct AccType {
  using type = float;
};
template <>
struct AccType<double> {
  using type = double;
};

}  // namespace dc
