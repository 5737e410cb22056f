// CUDA kernels of octave_downsample (fused low-pass FIR + decimation by 2) and their launch code.
//
// No ATen here: compiled by nvcc for the extension (octave_downsample_cuda.cu) and by g++ under the
// test-only CPU emulator (tests/emu/). Rows are contiguous; the `levels` outputs are packed per row
// (csrc/shapes.h, OctaveLevels):
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

// rows signals of lv.len[0] samples each, a filter of `taps` taps, lv.levels levels. The host launch
// functions need rows >= 1 and lv.len[0] >= 1 (the callers return early on empty tensors), so every
// level has at least one sample.
struct OctaveProblem {
  int64_t rows, taps;
  OctaveLevels lv;
};

template <typename T>
LaunchConfig level_config(int64_t out_len, int64_t rows, int64_t taps, int64_t smem_extra_elems = 0) {
  using acc_t = typename AccType<T>::type;
  const int64_t P = octave_halo(taps);
  // block b: row b / nblk, chunk b % nblk
  return {rows * ceil_div(out_len, kBlockOut), 1, 1, kThreads,
          (size_t)(2 * (kBlockOut + 2 * P) + taps + smem_extra_elems) * sizeof(acc_t)};
}

// ---- forward: one level. in: row r at in + r*in_stride (in_len samples); out likewise. ----
template <typename T>
__global__ void __launch_bounds__(kThreads) octave_forward_kernel(const T* __restrict__ in, long long in_stride,
                                                                  long long in_len, T* __restrict__ out,
                                                                  long long out_stride, long long out_len,
                                                                  const T* __restrict__ f, int taps) {
  using acc_t = typename AccType<T>::type;
  const long long P = octave_halo(taps);
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
// G rows of type G_t (T for the incoming gradient, acc_t for intermediate levels); gx: contiguous
// rows of gx_len values of type O_t.
template <typename T, typename G_t, typename O_t>
__global__ void __launch_bounds__(kThreads) octave_backward_kernel(const G_t* __restrict__ g, long long g_stride,
                                                                   long long g_len, O_t* __restrict__ gx,
                                                                   long long gx_len,
                                                                   const T* __restrict__ add, long long add_stride,
                                                                   const T* __restrict__ f, int taps) {
  using acc_t = typename AccType<T>::type;
  const long long P = octave_halo(taps);
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
  O_t* o = gx + r * gx_len;
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
  const long long P = octave_halo(taps);
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
void allow_smem(Kernel* kernel, size_t bytes, int64_t taps) {
  if (bytes <= 48 * 1024) return;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes) != cudaSuccess) {
    (void)cudaGetLastError();  // not left for the next launch check
    throw std::runtime_error("octave_downsample: a filter of " + std::to_string(taps) + " taps needs " +
                             std::to_string(bytes) + " bytes of shared memory per block, more than this GPU allows");
  }
}

template <typename scalar_t>
void launch_octave_forward(const scalar_t* x, const scalar_t* f, scalar_t* out, const OctaveProblem& s,
                           cudaStream_t stream) {
  const OctaveLevels& lv = s.lv;
  for (int64_t l = 1; l <= lv.levels; ++l) {
    const scalar_t* in = l == 1 ? x : out + lv.off[l - 1];
    const int64_t in_stride = l == 1 ? lv.len[0] : lv.total;
    const LaunchConfig c = level_config<scalar_t>(lv.len[l], s.rows, s.taps);
    allow_smem(octave_forward_kernel<scalar_t>, c.smem_bytes, s.taps);
    DC_LAUNCH(octave_forward_kernel<scalar_t>, checked_grid(c, "octave_downsample"), c.threads, c.smem_bytes, stream)(
        in, in_stride, lv.len[l - 1], out + lv.off[l], lv.total, lv.len[l], f, (int)s.taps);
  }
}

// Workspace (elements of acc_t) for the gradient chain: two [rows, len_1] buffers.
inline int64_t octave_chain_workspace(const OctaveProblem& s) { return s.lv.levels > 1 ? 2 * s.rows * s.lv.len[1] : 0; }

// Blocks (partial sums) per level for the filter gradient, summed over levels.
inline int64_t octave_filter_parts(const OctaveProblem& s) {
  int64_t parts = 0;
  for (int64_t l = 1; l <= s.lv.levels; ++l) parts += s.rows * ceil_div(s.lv.len[l], kBlockOut);
  return parts;
}

// Walks G_l from l = levels down to 1 (G_l = g_l + back(G_{l+1})), calling visit(l, G, G_stride) with
// G either the incoming gradient (type T) or a workspace buffer (acc_t); then, when gx is given,
// writes the input gradient back(G_1).
template <typename T, typename Visit>
void octave_gradient_chain(const T* g, const T* f, T* gx, typename AccType<T>::type* work, const OctaveProblem& s,
                           cudaStream_t stream, Visit visit) {
  using acc_t = typename AccType<T>::type;
  const OctaveLevels& lv = s.lv;
  const T* gT = g + lv.off[lv.levels];  // G_levels: the incoming gradient itself
  const acc_t* gA = nullptr;
  int64_t g_stride = lv.total;
  acc_t* buf[2] = {work, work ? work + s.rows * lv.len[1] : nullptr};
  int which = 0;
  for (int64_t l = lv.levels; l >= 1; --l) {
    if (gA) visit(l, gA, g_stride);
    else visit(l, gT, g_stride);
    const int64_t dst_len = lv.len[l - 1];
    const LaunchConfig c = level_config<T>((dst_len + 1) / 2, s.rows, s.taps);
    const dim3 grid = checked_grid(c, "octave_downsample backward");
    if (l == 1) {
      if (!gx) return;
      if (gA) {
        allow_smem(octave_backward_kernel<T, acc_t, T>, c.smem_bytes, s.taps);
        DC_LAUNCH((octave_backward_kernel<T, acc_t, T>), grid, c.threads, c.smem_bytes, stream)(
            gA, g_stride, lv.len[l], gx, dst_len, (const T*)nullptr, 0, f, (int)s.taps);
      } else {
        allow_smem(octave_backward_kernel<T, T, T>, c.smem_bytes, s.taps);
        DC_LAUNCH((octave_backward_kernel<T, T, T>), grid, c.threads, c.smem_bytes, stream)(
            gT, g_stride, lv.len[l], gx, dst_len, (const T*)nullptr, 0, f, (int)s.taps);
      }
      return;
    }
    acc_t* dst = buf[which];
    which ^= 1;
    const T* add = g + lv.off[l - 1];
    if (gA) {
      allow_smem(octave_backward_kernel<T, acc_t, acc_t>, c.smem_bytes, s.taps);
      DC_LAUNCH((octave_backward_kernel<T, acc_t, acc_t>), grid, c.threads, c.smem_bytes, stream)(
          gA, g_stride, lv.len[l], dst, dst_len, add, lv.total, f, (int)s.taps);
    } else {
      allow_smem(octave_backward_kernel<T, T, acc_t>, c.smem_bytes, s.taps);
      DC_LAUNCH((octave_backward_kernel<T, T, acc_t>), grid, c.threads, c.smem_bytes, stream)(
          gT, g_stride, lv.len[l], dst, dst_len, add, lv.total, f, (int)s.taps);
    }
    gA = dst;
    g_stride = dst_len;
  }
}

template <typename scalar_t>
void launch_octave_grad_input(const scalar_t* g, const scalar_t* f, scalar_t* gx, typename AccType<scalar_t>::type* work,
                              const OctaveProblem& s, cudaStream_t stream) {
  octave_gradient_chain<scalar_t>(g, f, gx, work, s, stream, [](int64_t, const void*, int64_t) {});
}

// out: packed forward output (inputs of levels >= 2); partial: octave_filter_parts(s) * taps acc_t.
template <typename scalar_t>
void launch_octave_grad_filter(const scalar_t* g, const scalar_t* x, const scalar_t* out, const scalar_t* f,
                               scalar_t* grad_f, typename AccType<scalar_t>::type* work,
                               typename AccType<scalar_t>::type* partial, const OctaveProblem& s, cudaStream_t stream) {
  const OctaveLevels& lv = s.lv;
  int64_t part_off = 0;
  auto visit = [&](int64_t l, const auto* G, int64_t G_stride) {
    using G_t = typename std::remove_cv<typename std::remove_pointer<decltype(G)>::type>::type;
    const scalar_t* in = l == 1 ? x : out + lv.off[l - 1];
    const int64_t in_stride = l == 1 ? lv.len[0] : lv.total;
    const int tn = s.taps < kThreads ? (int)s.taps : kThreads;
    const int64_t segs = kThreads / tn;
    const LaunchConfig c = level_config<scalar_t>(lv.len[l], s.rows, s.taps, kBlockOut + segs * s.taps - s.taps);
    allow_smem(octave_filter_grad_kernel<scalar_t, G_t>, c.smem_bytes, s.taps);
    DC_LAUNCH((octave_filter_grad_kernel<scalar_t, G_t>), checked_grid(c, "octave_downsample grad_filter"), c.threads,
              c.smem_bytes, stream)(G, G_stride, lv.len[l], in, in_stride, lv.len[l - 1], partial + part_off * s.taps,
                                    (int)s.taps);
    part_off += c.blocks_x;
  };
  octave_gradient_chain<scalar_t>(g, f, (scalar_t*)nullptr, work, s, stream, visit);
  const LaunchConfig reduce{ceil_div(s.taps, kThreads), 1, 1, kThreads, 0};
  DC_LAUNCH(octave_reduce_kernel<scalar_t>, checked_grid(reduce, "octave_downsample grad_filter"), reduce.threads, 0,
            stream)(partial, part_off, grad_f, (int)s.taps);
}

}  // namespace oct

using oct::launch_octave_forward;
using oct::launch_octave_grad_filter;
using oct::launch_octave_grad_input;
using oct::OctaveProblem;

}  // namespace dc
