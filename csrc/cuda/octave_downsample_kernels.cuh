// CUDA kernels of octave_downsample (fused low-pass FIR + decimation by 2) and their launch code.
//
// No ATen here: compiled by nvcc for the extension (octave_downsample_cuda.cu) and by g++ under the
// test-only CPU emulator (csrc/emu/). Rows are contiguous; `levels` outputs are packed per row
// (see csrc/octave_downsample_checks.h):
//
//   y[m]      = sum_n f[n] x[2m + n - M]           (M = (N-1)/2, zeros outside x)
//   grad_x[p] = sum_m G[m] f[p - 2m + M]           G = total gradient of the level's output
//   grad_f[n] = sum_levels sum_rows sum_m G[m] x[2m + n - M]
//
// Each block stages the input window it needs in shared memory split into even and odd samples,
// so that consecutive threads read consecutive words for every tap (no bank conflicts); exactly
// zero taps (half-band filters) are skipped, uniformly for the whole block. Accumulation is in
// float (double for double). grad_filter writes per-block partial sums, reduced in a fixed order
// by a second kernel: deterministic, no atomics.
#pragma once

#include <stdexcept>
#include <string>
#include <type_traits>

#include "compat.cuh"

namespace dc {
namespace oct {

constexpr int kThreads = 256;
constexpr int kPerThread = 4;
constexpr int kBlockOut = kThreads * kPerThread;  // outputs (or output pairs) per block

DC_HOST_DEVICE inline long long halo(long long taps) { return ((taps - 1) / 2 + 1) / 2 + 1; }  // P

struct Levels {
  long long rows, T, taps, levels, total;
  long long len[33];  // len[l], l = 0..levels
  long long off[33];  // off[l], l = 1..levels
};

inline Levels make_levels(long long rows, long long T, long long taps, long long levels) {
  Levels s{};
  s.rows = rows;
  s.T = T;
  s.taps = taps;
  s.levels = levels;
  s.len[0] = T;
  s.total = 0;
  for (long long l = 1; l <= levels; ++l) {
    s.len[l] = (s.len[l - 1] + 1) / 2;
    s.off[l] = s.total;
    s.total += s.len[l];
  }
  return s;
}

template <typename T>
LaunchConfig level_config(long long out_len, long long rows, long long taps, long long smem_extra_elems = 0) {
  using acc_t = typename AccType<T>::type;
  const long long P = halo(taps);
  LaunchConfig c;
  c.grid = dim3((unsigned)(rows * ceil_div(out_len, kBlockOut)), 1, 1);  // block b: row b / nblk, chunk b % nblk
  c.block = dim3(kThreads, 1, 1);
  c.smem_bytes = (size_t)(2 * (kBlockOut + 2 * P) + taps + smem_extra_elems) * sizeof(acc_t);
  return c;
}

// ---- forward: one level. in: row r at in + r*in_stride (in_len samples); out likewise. ----
template <typename T>
__global__ void __launch_bounds__(kThreads) octave_forward_kernel(const T* __restrict__ in, long long in_stride,
                                                                  long long in_len, T* __restrict__ out,
                                                                  long long out_stride, long long out_len,
                                                                  const T* __restrict__ f, int taps) {
  using acc_t = typename AccType<T>::type;
  const long long P = halo(taps);
  const int M = (taps - 1) / 2;
  const long long W = kBlockOut + 2 * P;
  acc_t* ev = dc_dynamic_smem<acc_t>();
  acc_t* od = ev + W;
  acc_t* fs = od + W;
  const long long nblk = ceil_div(out_len, kBlockOut);
  const long long r = blockIdx.x / nblk, m0 = (blockIdx.x % nblk) * kBlockOut;
  const T* x = in + r * in_stride;
  for (long long i = threadIdx.x; i < W; i += kThreads) {
    const long long p = 2 * (m0 - P + i);
    ev[i] = (p >= 0 && p < in_len) ? acc_t(x[p]) : acc_t(0);
    od[i] = (p + 1 >= 0 && p + 1 < in_len) ? acc_t(x[p + 1]) : acc_t(0);
  }
  for (int n = threadIdx.x; n < taps; n += kThreads) fs[n] = acc_t(f[n]);
  __syncthreads();
  acc_t acc[kPerThread];
#pragma unroll
  for (int k = 0; k < kPerThread; ++k) acc[k] = acc_t(0);
  for (int n = 0; n < taps; ++n) {
    const acc_t w = fs[n];
    if (w == acc_t(0)) continue;  // same n for every thread: no divergence
    const int e = n - M;
    const acc_t* src = (e % 2 == 0) ? ev + P + e / 2 : od + P + (e - 1) / 2;
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) acc[k] += w * src[threadIdx.x + k * kThreads];
  }
  T* y = out + r * out_stride;
#pragma unroll
  for (int k = 0; k < kPerThread; ++k) {
    const long long m = m0 + threadIdx.x + k * kThreads;
    if (m < out_len) y[m] = T(acc[k]);
  }
}

// ---- backward through one level: gx[p] = sum_m G[m] f[p - 2m + M] (+ add[p]), p < gx_len ----
// G rows of type G_t (T for the incoming gradient, acc_t for intermediate levels); gx of type O_t.
template <typename T, typename G_t, typename O_t>
__global__ void __launch_bounds__(kThreads) octave_backward_kernel(const G_t* __restrict__ g, long long g_stride,
                                                                   long long g_len, O_t* __restrict__ gx,
                                                                   long long gx_stride, long long gx_len,
                                                                   const T* __restrict__ add, long long add_stride,
                                                                   const T* __restrict__ f, int taps) {
  using acc_t = typename AccType<T>::type;
  const long long P = halo(taps);
  const int M = (taps - 1) / 2;
  const long long W = kBlockOut + 2 * P;
  acc_t* gb = dc_dynamic_smem<acc_t>();
  acc_t* fs = gb + W;
  const long long nblk = ceil_div((gx_len + 1) / 2, kBlockOut);
  const long long r = blockIdx.x / nblk, k0 = (blockIdx.x % nblk) * kBlockOut;
  const G_t* gr = g + r * g_stride;
  for (long long i = threadIdx.x; i < W; i += kThreads) {
    const long long m = k0 - P + i;
    gb[i] = (m >= 0 && m < g_len) ? acc_t(gr[m]) : acc_t(0);
  }
  for (int n = threadIdx.x; n < taps; n += kThreads) fs[n] = acc_t(f[n]);
  __syncthreads();
  acc_t ae[kPerThread], ao[kPerThread];
#pragma unroll
  for (int k = 0; k < kPerThread; ++k) ae[k] = ao[k] = acc_t(0);
  for (int n = 0; n < taps; ++n) {
    const acc_t w = fs[n];
    if (w == acc_t(0)) continue;
    const int e = n - M;
    if (e % 2 == 0) {
      const acc_t* src = gb + P - e / 2;
#pragma unroll
      for (int k = 0; k < kPerThread; ++k) ae[k] += w * src[threadIdx.x + k * kThreads];
    } else {
      const acc_t* src = gb + P - (e - 1) / 2;
#pragma unroll
      for (int k = 0; k < kPerThread; ++k) ao[k] += w * src[threadIdx.x + k * kThreads];
    }
  }
  O_t* o = gx + r * gx_stride;
  const T* a = add ? add + r * add_stride : nullptr;
#pragma unroll
  for (int k = 0; k < kPerThread; ++k) {
    const long long p = 2 * (k0 + threadIdx.x + k * kThreads);
    if (p < gx_len) o[p] = O_t(ae[k] + (a ? acc_t(a[p]) : acc_t(0)));
    if (p + 1 < gx_len) o[p + 1] = O_t(ao[k] + (a ? acc_t(a[p + 1]) : acc_t(0)));
  }
}

// ---- filter gradient of one level: partial[block][n] = sum_{m in block} G[m] x[2m + n - M] ----
template <typename T, typename G_t>
__global__ void __launch_bounds__(kThreads) octave_filter_grad_kernel(const G_t* __restrict__ g, long long g_stride,
                                                                      long long g_len, const T* __restrict__ in,
                                                                      long long in_stride, long long in_len,
                                                                      typename AccType<T>::type* __restrict__ partial,
                                                                      int taps) {
  using acc_t = typename AccType<T>::type;
  const long long P = halo(taps);
  const int M = (taps - 1) / 2;
  const long long W = kBlockOut + 2 * P;
  acc_t* ev = dc_dynamic_smem<acc_t>();
  acc_t* od = ev + W;
  acc_t* gs = od + W;            // [kBlockOut]
  acc_t* part = gs + kBlockOut;  // [segments * taps]
  const long long nblk = ceil_div(g_len, kBlockOut);
  const long long r = blockIdx.x / nblk, m0 = (blockIdx.x % nblk) * kBlockOut;
  const T* x = in + r * in_stride;
  const G_t* gr = g + r * g_stride;
  for (long long i = threadIdx.x; i < W; i += kThreads) {
    const long long p = 2 * (m0 - P + i);
    ev[i] = (p >= 0 && p < in_len) ? acc_t(x[p]) : acc_t(0);
    od[i] = (p + 1 >= 0 && p + 1 < in_len) ? acc_t(x[p + 1]) : acc_t(0);
  }
  for (int i = threadIdx.x; i < kBlockOut; i += kThreads) {
    const long long m = m0 + i;
    gs[i] = m < g_len ? acc_t(gr[m]) : acc_t(0);
  }
  __syncthreads();
  const int tn = taps < kThreads ? taps : kThreads;  // threads per segment
  const int segs = kThreads / tn;
  const int seg_len = (kBlockOut + segs - 1) / segs;
  const int t = threadIdx.x;
  if (t < segs * tn) {
    const int seg = t / tn;
    const int i0 = seg * seg_len, i1 = (i0 + seg_len < kBlockOut) ? i0 + seg_len : kBlockOut;
    for (int n = t % tn; n < taps; n += tn) {
      const int e = n - M;
      const acc_t* src = (e % 2 == 0) ? ev + P + e / 2 : od + P + (e - 1) / 2;
      acc_t acc = acc_t(0);
      for (int i = i0; i < i1; ++i) acc += gs[i] * src[i];
      part[seg * taps + n] = acc;
    }
  }
  __syncthreads();
  for (int n = t; n < taps; n += kThreads) {
    acc_t acc = acc_t(0);
    for (int s = 0; s < segs; ++s) acc += part[s * taps + n];
    partial[(long long)blockIdx.x * taps + n] = acc;
  }
}

// grad_f[n] = sum_j partial[j][n], j in order
template <typename T>
__global__ void __launch_bounds__(kThreads) octave_reduce_kernel(const typename AccType<T>::type* __restrict__ partial,
                                                                 long long parts, T* __restrict__ grad_f, int taps) {
  using acc_t = typename AccType<T>::type;
  const int n = blockIdx.x * kThreads + threadIdx.x;
  if (n >= taps) return;
  acc_t acc = acc_t(0);
  for (long long j = 0; j < parts; ++j) acc += partial[j * taps + n];
  grad_f[n] = T(acc);
}

// ------------------------------------------------------------------------------------------------
// host launch functions (all on `stream`, in order)
// ------------------------------------------------------------------------------------------------

// The dynamic shared memory grows with the filter (a window of kBlockOut + 2P samples, the taps, the
// grad_filter partials): past the default 48 KiB (about 2000 taps in double, 4600 in float for
// grad_filter) the kernel must opt in, up to the device's per-block limit (227 KiB on sm_90).
template <typename Kernel>
void allow_smem(Kernel* kernel, size_t bytes, long long taps) {
  if (bytes <= 48 * 1024) return;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes) != cudaSuccess) {
    (void)cudaGetLastError();  // not left for the next launch check
    throw std::runtime_error("octave_downsample: a filter of " + std::to_string(taps) + " taps needs " +
                             std::to_string(bytes) + " bytes of shared memory per block, more than this GPU allows");
  }
}

template <typename scalar_t>
void launch_octave_forward(const scalar_t* x, const scalar_t* f, scalar_t* out, const Levels& s, cudaStream_t stream) {
  for (long long l = 1; l <= s.levels; ++l) {
    if (s.len[l] == 0 || s.rows == 0) continue;
    const scalar_t* in = l == 1 ? x : out + s.off[l - 1];
    const long long in_stride = l == 1 ? s.T : s.total;
    const LaunchConfig c = level_config<scalar_t>(s.len[l], s.rows, s.taps);
    allow_smem(octave_forward_kernel<scalar_t>, c.smem_bytes, s.taps);
    DC_LAUNCH(octave_forward_kernel<scalar_t>, c.grid, c.block, c.smem_bytes, stream)(
        in, in_stride, s.len[l - 1], out + s.off[l], s.total, s.len[l], f, (int)s.taps);
  }
}

// Workspace (elements of acc_t) for the gradient chain: two [rows, len_1] buffers.
inline long long octave_chain_workspace(const Levels& s) { return s.levels > 1 ? 2 * s.rows * s.len[1] : 0; }

// Blocks (partial sums) per level for the filter gradient, summed over levels.
inline long long octave_filter_parts(const Levels& s) {
  long long parts = 0;
  for (long long l = 1; l <= s.levels; ++l) parts += s.rows * ceil_div(s.len[l], kBlockOut);
  return parts;
}

// Walks G_l from l = levels down to 1 (G_l = g_l + back(G_{l+1})), calling visit(l, G, G_stride) with
// G either the incoming gradient (type T) or a workspace buffer (acc_t); then, when gx is given,
// writes the input gradient back(G_1).
template <typename T, typename Visit>
void octave_gradient_chain(const T* g, const T* f, T* gx, typename AccType<T>::type* work, const Levels& s,
                           cudaStream_t stream, Visit visit) {
  using acc_t = typename AccType<T>::type;
  const T* gT = g + s.off[s.levels];  // G_levels: the incoming gradient itself
  const acc_t* gA = nullptr;
  long long g_stride = s.total;
  acc_t* buf[2] = {work, work ? work + s.rows * s.len[1] : nullptr};
  int which = 0;
  for (long long l = s.levels; l >= 1; --l) {
    if (gA) visit(l, gA, g_stride);
    else visit(l, gT, g_stride);
    const long long dst_len = s.len[l - 1];
    if (s.rows == 0 || dst_len == 0) return;
    const LaunchConfig c = level_config<T>((dst_len + 1) / 2, s.rows, s.taps);
    if (l == 1) {
      if (!gx) return;
      if (gA) {
        allow_smem(octave_backward_kernel<T, acc_t, T>, c.smem_bytes, s.taps);
        DC_LAUNCH((octave_backward_kernel<T, acc_t, T>), c.grid, c.block, c.smem_bytes, stream)(
            gA, g_stride, s.len[l], gx, s.T, s.T, (const T*)nullptr, 0, f, (int)s.taps);
      } else {
        allow_smem(octave_backward_kernel<T, T, T>, c.smem_bytes, s.taps);
        DC_LAUNCH((octave_backward_kernel<T, T, T>), c.grid, c.block, c.smem_bytes, stream)(
            gT, g_stride, s.len[l], gx, s.T, s.T, (const T*)nullptr, 0, f, (int)s.taps);
      }
      return;
    }
    acc_t* dst = buf[which];
    which ^= 1;
    const T* add = g + s.off[l - 1];
    if (gA) {
      allow_smem(octave_backward_kernel<T, acc_t, acc_t>, c.smem_bytes, s.taps);
      DC_LAUNCH((octave_backward_kernel<T, acc_t, acc_t>), c.grid, c.block, c.smem_bytes, stream)(
          gA, g_stride, s.len[l], dst, dst_len, dst_len, add, s.total, f, (int)s.taps);
    } else {
      allow_smem(octave_backward_kernel<T, T, acc_t>, c.smem_bytes, s.taps);
      DC_LAUNCH((octave_backward_kernel<T, T, acc_t>), c.grid, c.block, c.smem_bytes, stream)(
          gT, g_stride, s.len[l], dst, dst_len, dst_len, add, s.total, f, (int)s.taps);
    }
    gA = dst;
    g_stride = dst_len;
  }
}

template <typename scalar_t>
void launch_octave_grad_input(const scalar_t* g, const scalar_t* f, scalar_t* gx, typename AccType<scalar_t>::type* work, const Levels& s,
                              cudaStream_t stream) {
  octave_gradient_chain<scalar_t>(g, f, gx, work, s, stream, [](long long, const void*, long long) {});
}

// out: packed forward output (inputs of levels >= 2); partial: octave_filter_parts(s) * taps acc_t.
template <typename scalar_t>
void launch_octave_grad_filter(const scalar_t* g, const scalar_t* x, const scalar_t* out, const scalar_t* f, scalar_t* grad_f,
                               typename AccType<scalar_t>::type* work, typename AccType<scalar_t>::type* partial, const Levels& s,
                               cudaStream_t stream) {
  using acc_t = typename AccType<scalar_t>::type;
  long long part_off = 0;
  auto visit = [&](long long l, const auto* G, long long G_stride) {
    using G_t = typename std::remove_cv<typename std::remove_pointer<decltype(G)>::type>::type;
    const long long n_out = s.len[l];
    if (s.rows == 0 || n_out == 0) return;
    const scalar_t* in = l == 1 ? x : out + s.off[l - 1];
    const long long in_stride = l == 1 ? s.T : s.total;
    const int tn = s.taps < kThreads ? (int)s.taps : kThreads;
    const long long segs = kThreads / tn;
    const LaunchConfig c = level_config<scalar_t>(n_out, s.rows, s.taps, kBlockOut + segs * s.taps - s.taps);
    allow_smem(octave_filter_grad_kernel<scalar_t, G_t>, c.smem_bytes, s.taps);
    DC_LAUNCH((octave_filter_grad_kernel<scalar_t, G_t>), c.grid, c.block, c.smem_bytes, stream)(
        G, G_stride, n_out, in, in_stride, s.len[l - 1], partial + part_off * s.taps, (int)s.taps);
    part_off += (long long)c.grid.x;
  };
  octave_gradient_chain<scalar_t>(g, f, (scalar_t*)nullptr, work, s, stream, visit);
  const dim3 grid((unsigned)ceil_div(s.taps, kThreads)), block(kThreads);
  DC_LAUNCH(octave_reduce_kernel<scalar_t>, grid, block, 0, stream)(partial, part_off, grad_f, (int)s.taps);
}

}  // namespace oct

using oct::launch_octave_forward;
using oct::launch_octave_grad_filter;
using oct::launch_octave_grad_input;

}  // namespace dc
