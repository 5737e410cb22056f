// The two portability points between nvcc and the test-only CPU emulator.
//
// Kernel headers (csrc/cuda/*_kernels.cuh) contain no ATen: they hold the __global__ kernels, the
// code that computes their launch configuration, and a host launch function. They are compiled
// twice from the same text:
//   * by nvcc, for the extension (csrc/cuda/*.cu include them);
//   * by g++ with DC_CUDA_EMULATOR defined, for the tests: csrc/emu/cuda_emu.h then supplies
//     __global__, __shared__, threadIdx, __syncthreads, warp shuffles, atomics, vector types...
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

#include "../emu/cuda_emu.h"

#else
#error "csrc/cuda kernel headers need nvcc, or DC_CUDA_EMULATOR with the test-only emulator"
#endif

#define DC_HOST_DEVICE __host__ __device__

#include "../shapes.h"

namespace dc {

// Launch configuration of a kernel, computed by the same code for nvcc and for the emulator.
struct LaunchConfig {
  dim3 grid;
  dim3 block;
  size_t smem_bytes;
};

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
