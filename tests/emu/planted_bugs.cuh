// Kernels with planted bugs that the emulator (or its sanitizer build) must report, each beside its
// correct variant. Plain CUDA: `nvcc -c` compiles them too (tests/emu/nvcc_check.cu).
#pragma once
#include "../../csrc/cuda/compat.cuh"

namespace dc_planted {

constexpr int kBlock = 128;

// Block sum by a shared-memory tree. Bug: no barrier between the levels of the tree.
template <bool kMissingSync>
__global__ void block_sum_kernel(const float* in, float* out, int n) {
  __shared__ float partial[kBlock];
  const int t = threadIdx.x, i = blockIdx.x * kBlock + t;
  partial[t] = i < n ? in[i] : 0.0f;
  __syncthreads();
  for (int stride = kBlock / 2; stride > 0; stride /= 2) {
    if (t < stride) partial[t] += partial[t + stride];
    if (!kMissingSync) __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = partial[0];
}

inline void launch_block_sum(const float* in, float* out, int n, bool missing_sync) {
  const int blocks = int(dc::ceil_div(n, kBlock));
  if (missing_sync)
    DC_LAUNCH(block_sum_kernel<true>, dim3(blocks), dim3(kBlock), 0, nullptr)(in, out, n);
  else
    DC_LAUNCH(block_sum_kernel<false>, dim3(blocks), dim3(kBlock), 0, nullptr)(in, out, n);
}

// out[i] = in[i] + in[i + 1] (in has n + 1 elements) through a shared tile with a one-element halo.
enum TileBug { kTileCorrect = 0, kHaloNotLoaded = 1, kHaloPastInput = 2, kIndexPastTile = 3 };

template <int kBug>
__global__ void tile_pair_sum_kernel(const float* in, float* out, int n) {
  __shared__ float tile[kBlock + 1];
  const int t = threadIdx.x, start = blockIdx.x * kBlock, i = start + t;
  tile[t] = i <= n ? in[i] : 0.0f;
  if (kBug == kTileCorrect && t == 0) tile[kBlock] = start + kBlock <= n ? in[start + kBlock] : 0.0f;
  // Bug kHaloPastInput: the halo load forgets the bound and reads past the end of `in`.
  if (kBug == kHaloPastInput && t == 0) tile[kBlock] = in[start + kBlock + 1];
  // Bug kHaloNotLoaded: nobody loads tile[kBlock], the last thread reads it anyway.
  __syncthreads();
  // Bug kIndexPastTile: an off-by-one in the shared index, past the end of the tile array.
  const int next = kBug == kIndexPastTile ? t + 2 : t + 1;
  if (kBug == kIndexPastTile && t == 0) tile[kBlock] = 0.0f;
  if (i < n) out[i] = tile[t] + tile[next];
}

inline void launch_tile_pair_sum(const float* in, float* out, int n, int bug) {
  const dim3 grid(unsigned(dc::ceil_div(n, kBlock))), block(kBlock);
  if (bug == kHaloNotLoaded)
    DC_LAUNCH(tile_pair_sum_kernel<kHaloNotLoaded>, grid, block, 0, nullptr)(in, out, n);
  else if (bug == kHaloPastInput)
    DC_LAUNCH(tile_pair_sum_kernel<kHaloPastInput>, grid, block, 0, nullptr)(in, out, n);
  else if (bug == kIndexPastTile)
    DC_LAUNCH(tile_pair_sum_kernel<kIndexPastTile>, grid, block, 0, nullptr)(in, out, n);
  else
    DC_LAUNCH(tile_pair_sum_kernel<kTileCorrect>, grid, block, 0, nullptr)(in, out, n);
}

// Scales by the block's first element. Bug: out-of-range threads return before the barrier.
template <bool kEarlyReturn>
__global__ void scale_by_first_kernel(const float* in, float* out, int n) {
  __shared__ float first;
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (kEarlyReturn && i >= n) return;
  if (threadIdx.x == 0) first = in[blockIdx.x * blockDim.x];
  __syncthreads();
  if (i < n) out[i] = in[i] * first;
}

inline void launch_scale_by_first(const float* in, float* out, int n, bool early_return) {
  const dim3 grid(unsigned(dc::ceil_div(n, kBlock))), block(kBlock);
  if (early_return)
    DC_LAUNCH(scale_by_first_kernel<true>, grid, block, 0, nullptr)(in, out, n);
  else
    DC_LAUNCH(scale_by_first_kernel<false>, grid, block, 0, nullptr)(in, out, n);
}

// Sum of each warp's 32 values through shared memory. Bug: no __syncwarp between the steps.
template <bool kMissingSyncwarp>
__global__ void warp_sum_kernel(const float* in, float* out) {
  __shared__ float partial[kBlock];
  const int t = threadIdx.x, lane = t % 32, warp_base = t - lane;
  partial[t] = in[blockIdx.x * kBlock + t];
  __syncwarp();
  for (int offset = 16; offset > 0; offset /= 2) {
    if (lane < offset) partial[t] += partial[t + offset];
    if (!kMissingSyncwarp) __syncwarp();
  }
  if (lane == 0) out[blockIdx.x * (kBlock / 32) + warp_base / 32] = partial[t];
}

inline void launch_warp_sum(const float* in, float* out, int nblocks, bool missing_syncwarp) {
  if (missing_syncwarp)
    DC_LAUNCH(warp_sum_kernel<true>, dim3(nblocks), dim3(kBlock), 0, nullptr)(in, out);
  else
    DC_LAUNCH(warp_sum_kernel<false>, dim3(nblocks), dim3(kBlock), 0, nullptr)(in, out);
}

// Bug: the two halves of the block wait at different __syncthreads.
template <typename Unused>
__global__ void divergent_barrier_kernel(float* out) {
  __shared__ float s[kBlock];
  const int t = threadIdx.x;
  s[t] = float(t);
  if (t < kBlock / 2) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[t] = s[(t + 1) % kBlock];
}

inline void launch_divergent_barrier(float* out) {
  DC_LAUNCH(divergent_barrier_kernel<void>, dim3(1), dim3(kBlock), 0, nullptr)(out);
}

// Bug: half a warp shuffles with a full mask while the other half waits at a block barrier.
template <typename Unused>
__global__ void warp_deadlock_kernel(float* out) {
  const int t = threadIdx.x;
  float v = float(t);
  if (t % 32 < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
  __syncthreads();
  out[t] = v;
}

inline void launch_warp_deadlock(float* out) {
  DC_LAUNCH(warp_deadlock_kernel<void>, dim3(1), dim3(64), 0, nullptr)(out);
}

// Bug: float4 loads from a pointer that is not 16-byte aligned (in + 1).
template <bool kUseLdg>
__global__ void misaligned_float4_kernel(const float* in, float* out) {
  const float4* vec = reinterpret_cast<const float4*>(in + 1);
  const float4 v = kUseLdg ? __ldg(vec + threadIdx.x) : vec[threadIdx.x];
  out[threadIdx.x] = v.x + v.y + v.z + v.w;
}

inline void launch_misaligned_float4(const float* in, float* out, int nthreads, bool use_ldg) {
  if (use_ldg)
    DC_LAUNCH(misaligned_float4_kernel<true>, dim3(1), dim3(nthreads), 0, nullptr)(in, out);
  else
    DC_LAUNCH(misaligned_float4_kernel<false>, dim3(1), dim3(nthreads), 0, nullptr)(in, out);
}

}  // namespace dc_planted
