// Kernels that pin down the emulator's semantics (tests/test_emulator.py). Plain CUDA: they also
// compile with nvcc, so the same expectations could be checked on a GPU.
#pragma once
#include "../../csrc/cuda/compat.cuh"

namespace dc_selftest {

enum ShuffleOp { kShflIdx = 0, kShflUp = 1, kShflDown = 2, kShflXor = 3 };

// out[t] = shuffle of in[t] for the lanes named in `mask`; the other lanes leave out[t] untouched.
template <typename T>
__global__ void shuffle_kernel(const T* in, T* out, int op, int arg, int width, unsigned mask) {
  const int t = threadIdx.x;
  const unsigned lane = t % warpSize;
  if (!(mask >> lane & 1u)) return;
  const T v = in[t];
  T r;
  switch (op) {
    case kShflIdx: r = __shfl_sync(mask, v, arg, width); break;
    case kShflUp: r = __shfl_up_sync(mask, v, unsigned(arg), width); break;
    case kShflDown: r = __shfl_down_sync(mask, v, unsigned(arg), width); break;
    default: r = __shfl_xor_sync(mask, v, arg, width); break;
  }
  out[t] = r;
}

template <typename T>
void launch_shuffle(const T* in, T* out, int nthreads, int op, int arg, int width, unsigned mask) {
  DC_LAUNCH(shuffle_kernel<T>, dim3(1), dim3(nthreads), 0, nullptr)(in, out, op, arg, width, mask);
}

// out[t] = ballot over the lanes named in `mask` of pred[t] != 0, then any/all.
template <typename Unused>
__global__ void ballot_kernel(const int* pred, unsigned* ballot, int* any, int* all, unsigned mask) {
  const int t = threadIdx.x;
  if (!(mask >> (t % warpSize) & 1u)) return;
  ballot[t] = __ballot_sync(mask, pred[t]);
  any[t] = __any_sync(mask, pred[t]);
  all[t] = __all_sync(mask, pred[t]);
}

inline void launch_ballot(const int* pred, unsigned* ballot, int* any, int* all, int nthreads, unsigned mask) {
  DC_LAUNCH(ballot_kernel<void>, dim3(1), dim3(nthreads), 0, nullptr)(pred, ballot, any, all, mask);
}

// Every thread writes its slot, waits, then reads its neighbour's: correct only if the barrier
// orders all writes before all reads. Also counts an odd predicate with __syncthreads_count, and
// uses both static and dynamic shared memory.
template <typename Unused>
__global__ void barrier_kernel(int* neighbour, int* count) {
  __shared__ int slots[256];
  int* dyn = dc_dynamic_smem<int>();
  const int t = threadIdx.x, n = blockDim.x;
  slots[t] = t + 1000 * int(blockIdx.x);
  dyn[t] = 2 * t;
  __syncthreads();
  const int b = blockIdx.x * n;
  neighbour[b + t] = slots[(t + 1) % n] + dyn[(t + 2) % n];
  count[b + t] = __syncthreads_count(t % 2);
}

inline void launch_barrier(int* neighbour, int* count, int nblocks, int nthreads) {
  DC_LAUNCH(barrier_kernel<void>, dim3(nblocks), dim3(nthreads), nthreads * sizeof(int), nullptr)(neighbour, count);
}

// Reads shared memory before writing it: every block must see poison, not the previous block's data.
template <typename Unused>
__global__ void read_unwritten_smem_kernel(float* out) {
  __shared__ float static_smem[64];
  float* dynamic_smem = dc_dynamic_smem<float>();
  const int t = threadIdx.x;
  out[blockIdx.x * blockDim.x + t] = static_smem[t] + dynamic_smem[t];
  static_smem[t] = 1.0f;
  dynamic_smem[t] = 1.0f;
}

inline void launch_read_unwritten_smem(float* out, int nblocks, int nthreads) {
  DC_LAUNCH(read_unwritten_smem_kernel<void>, dim3(nblocks), dim3(nthreads), nthreads * sizeof(float), nullptr)(out);
}

// Records the order in which the threads of each block reach the first instruction, and the order
// of the blocks.
template <typename Unused>
__global__ void arrival_order_kernel(int* counters, int* thread_rank, int* block_rank) {
  const int t = threadIdx.x;
  thread_rank[blockIdx.x * blockDim.x + t] = atomicAdd(&counters[1 + blockIdx.x], 1);
  if (t == 0) block_rank[blockIdx.x] = atomicAdd(&counters[0], 1);
}

inline void launch_arrival_order(int* counters, int* thread_rank, int* block_rank, int nblocks, int nthreads) {
  DC_LAUNCH(arrival_order_kernel<void>, dim3(nblocks), dim3(nthreads), 0, nullptr)(counters, thread_rank, block_rank);
}

// Launches with an invalid configuration (too many threads, or too much dynamic shared memory).
template <typename Unused>
__global__ void empty_kernel() {}

inline void launch_invalid(int threads, int smem_bytes) {
  DC_LAUNCH(empty_kernel<void>, dim3(1), dim3(threads), smem_bytes, nullptr)();
}

// Recursion deep enough to run off any fiber stack.
__device__ inline int deep_recursion(int depth, volatile int* sink) {
  volatile char frame[4096];
  frame[0] = char(depth);
  if (depth == 0) return frame[0];
  int r = deep_recursion(depth - 1, sink) + frame[0];
  *sink = r;
  return r;
}

template <typename Unused>
__global__ void stack_overflow_kernel(int* out, int depth) {
  out[threadIdx.x] = deep_recursion(depth, out + threadIdx.x);
}

inline void launch_stack_overflow(int* out, int depth) {
  DC_LAUNCH(stack_overflow_kernel<void>, dim3(1), dim3(4), 0, nullptr)(out, depth);
}

// Access probes for the counting build (tests/test_emulator_counts.py): each of the `nthreads` threads reads
// one T of shared memory (poisoned, never written) at index t * stride, or of `in` at t * stride, and
// writes it to out[t]: one shared (global) load request per warp, then one store request.
template <typename T>
__global__ void shared_probe_kernel(T* out, int stride) {
  __shared__ T tile[32 * 32];
  out[threadIdx.x] = tile[threadIdx.x * stride % (32 * 32)];
}

template <typename T>
__global__ void global_probe_kernel(const T* in, T* out, int stride) {
  out[threadIdx.x] = in[threadIdx.x * stride];
}

template <typename T>
void launch_access_probe(bool shared, const T* in, T* out, int nthreads, int stride) {
  if (shared)
    DC_LAUNCH(shared_probe_kernel<T>, dim3(1), dim3(nthreads), 0, nullptr)(out, stride);
  else
    DC_LAUNCH(global_probe_kernel<T>, dim3(1), dim3(nthreads), 0, nullptr)(in, out, stride);
}

// Divergence probe for the counting build: lanes 0..17 of one warp read shared words 0..17 in a loop (its one
// pass), then, after a barrier, all 32 lanes read word 32 + (lane + 14) % 32 (distinct banks): two requests
// of one wavefront each. (Pairing each lane's n-th access across the barrier instead would put lanes 18..31's
// second read with lanes 0..17's first, banks 0..13 twice: 2 wavefronts.)
template <typename T>
__global__ void divergent_probe_kernel(T* out) {
  __shared__ T tile[64];
  T sum = T(0);
  for (int j = threadIdx.x; j < 18; j += 32) sum += tile[j];
  __syncthreads();
  out[threadIdx.x] = sum + tile[32 + (threadIdx.x + 14) % 32];
}

inline void launch_divergent_probe(float* out) {
  DC_LAUNCH(divergent_probe_kernel<float>, dim3(1), dim3(32), 0, nullptr)(out);
}

// Planted multiply-adds (the counting build's executed-FMA count): every thread of every block runs n
// multiply-adds in a loop and one fused multiply-add intrinsic: blocks * threads * (n + 1) in all.
inline __device__ float fused_multiply_add(float a, float b, float c) { return __fmaf_rn(a, b, c); }
inline __device__ double fused_multiply_add(double a, double b, double c) { return __fma_rn(a, b, c); }

template <typename T>
__global__ void multiply_add_probe_kernel(const T* a, const T* b, T* out, int n) {
  T acc = 0;
  for (int k = 0; k < n; ++k) acc += a[k] * b[k];
  out[blockIdx.x * blockDim.x + threadIdx.x] = fused_multiply_add(acc, a[0], b[0]);
}

template <typename T>
void launch_multiply_add_probe(const T* a, const T* b, T* out, int nblocks, int nthreads, int n) {
  DC_LAUNCH(multiply_add_probe_kernel<T>, dim3(nblocks), dim3(nthreads), 0, nullptr)(a, b, out, n);
}

}  // namespace dc_selftest
