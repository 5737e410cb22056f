// CUDA kernels of the FFT algorithm of dense_conv2d: the fused pointwise products of spectra.
//
// No ATen here: compiled by nvcc for the extension (fft_conv_cuda.cu, which does the transforms with
// cuFFT through ATen) and by g++ under the test-only CPU emulator (tests/emu/). Spectra are contiguous
// interleaved complex (re, im pairs) of float or double: K bins per channel, for a chunk of nb samples.
//
//   forward:   P[b, i*Cr + r, k] = A[b, i, k] * R[b, r, k]
//   backward:  GI[b, i, k] = sum_r G[b, i*Cr + r, k] * conj(R[b, r, k])      (r ascending)
//              GR[b, r, k] = gr_scale sum_i G[b, i*Cr + r, k] * conj(A[b, i, k])  (i ascending)
//
// A = impulse spectra [nb, Ci, K], R = response spectra [nb, Cr, K], P / G = [nb, Ci*Cr, K].
// Forward: one thread per (b, i, k) reads A once for all Cr responses. Backward: one thread per (b, k)
// holds up to fft_resp_per_thread() (8 float, 4 double) responses' R and GR accumulators in registers and walks i, so G, A
// and R are each read once (when Cr fits in one pass; larger Cr takes several passes over i, each
// continuing GI's sum in the same r order). Every sum has one fixed order: deterministic, no atomics.
// Arithmetic is in the spectra's type (float, or double).
#pragma once

#include "compat.cuh"

namespace dc {

struct SpectrumShape {
  int64_t nb, Ci, Cr, K;  // samples in the chunk, impulse / response channels, complex bins per channel
};

template <typename T>
struct Complex2;
template <>
struct Complex2<float> {
  using type = float2;
};
template <>
struct Complex2<double> {
  using type = double2;
};

constexpr int kFftThreads = 256;
constexpr int kFftMinBlocksPerSM = 2;  // backward: at most 128 registers a thread (memory-bound: keep occupancy)

// Backward: responses whose R and GR live in one thread's registers (double values take two registers).
template <typename scalar_t>
DC_HD constexpr int fft_resp_per_thread() {
  return sizeof(scalar_t) == 8 ? 4 : 8;
}

template <typename scalar_t>
__global__ void __launch_bounds__(kFftThreads)
    fft_product_kernel(const typename Complex2<scalar_t>::type* __restrict__ A,
                       const typename Complex2<scalar_t>::type* __restrict__ R,
                       typename Complex2<scalar_t>::type* __restrict__ P, SpectrumShape s) {
  using C = typename Complex2<scalar_t>::type;
  const long long k = (long long)blockIdx.x * kFftThreads + threadIdx.x;
  if (k >= s.K) return;
  const long long i = blockIdx.y, b = blockIdx.z;
  const C a = __ldg(A + (b * s.Ci + i) * s.K + k);
  const C* r_k = R + b * s.Cr * s.K + k;
  C* p_k = P + (b * s.Ci + i) * s.Cr * s.K + k;
  for (long long r = 0; r < s.Cr; ++r) {
    const C w = __ldg(r_k + r * s.K);
    C p;
    p.x = a.x * w.x - a.y * w.y;
    p.y = a.x * w.y + a.y * w.x;
    p_k[r * s.K] = p;
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kFftThreads, kFftMinBlocksPerSM)
    fft_correlate_kernel(const typename Complex2<scalar_t>::type* __restrict__ G,
                         const typename Complex2<scalar_t>::type* __restrict__ A,
                         const typename Complex2<scalar_t>::type* __restrict__ R,
                         typename Complex2<scalar_t>::type* __restrict__ GI,
                         typename Complex2<scalar_t>::type* __restrict__ GR, scalar_t gr_scale, SpectrumShape s) {
  using C = typename Complex2<scalar_t>::type;
  constexpr int RC = fft_resp_per_thread<scalar_t>();
  const long long k = (long long)blockIdx.x * kFftThreads + threadIdx.x;
  if (k >= s.K) return;
  const long long b = blockIdx.z;
  const C* a_k = A + b * s.Ci * s.K + k;
  const C* r_k = R + b * s.Cr * s.K + k;
  const C* g_k = G + b * s.Ci * s.Cr * s.K + k;
  C* gi_k = GI + b * s.Ci * s.K + k;
  C* gr_k = GR + b * s.Cr * s.K + k;
  for (long long r0 = 0; r0 < s.Cr; r0 += RC) {
    const int nr = (int)(s.Cr - r0 < RC ? s.Cr - r0 : RC);
    scalar_t w_re[RC], w_im[RC], gr_re[RC], gr_im[RC];
#pragma unroll
    for (int j = 0; j < RC; ++j) {
      w_re[j] = w_im[j] = gr_re[j] = gr_im[j] = scalar_t(0);
      if (j < nr) {
        const C w = __ldg(r_k + (r0 + j) * s.K);
        w_re[j] = w.x;
        w_im[j] = w.y;
      }
    }
    for (long long i = 0; i < s.Ci; ++i) {
      const C a = __ldg(a_k + i * s.K);
      C gi;
      if (r0 == 0) {
        gi.x = gi.y = scalar_t(0);
      } else {
        gi = gi_k[i * s.K];  // this thread's own partial sum from the previous pass: same r order
      }
      const C* g_i = g_k + (i * s.Cr + r0) * s.K;
#pragma unroll
      for (int j = 0; j < RC; ++j) {
        if (j < nr) {
          const C g = __ldg(g_i + j * s.K);
          gi.x += g.x * w_re[j] + g.y * w_im[j];
          gi.y += g.y * w_re[j] - g.x * w_im[j];
          gr_re[j] += g.x * a.x + g.y * a.y;
          gr_im[j] += g.y * a.x - g.x * a.y;
        }
      }
      gi_k[i * s.K] = gi;
    }
#pragma unroll
    for (int j = 0; j < RC; ++j) {
      if (j < nr) {
        C out;
        out.x = gr_re[j] * gr_scale;
        out.y = gr_im[j] * gr_scale;
        gr_k[(r0 + j) * s.K] = out;
      }
    }
  }
}

// Grid: x over bins, y over impulse channels (forward only), z over samples.
inline LaunchConfig fft_product_config(const SpectrumShape& s) {
  return {ceil_div(s.K, kFftThreads), s.Ci, s.nb, kFftThreads, 0};
}

inline LaunchConfig fft_correlate_config(const SpectrumShape& s) {
  return {ceil_div(s.K, kFftThreads), 1, s.nb, kFftThreads, 0};
}

// Host entry points. Pointers are interleaved complex spectra of one chunk of s.nb samples; every size
// must be positive (the caller returns early otherwise), and nb and Ci at most 65535 (grid.z and
// grid.y: the caller chunks the batch and limits Ci). gr_scale: the backward's 1/(H W) of GR (GI has it from R).
template <typename scalar_t>
void launch_fft_product(const scalar_t* A, const scalar_t* R, scalar_t* P, SpectrumShape s, cudaStream_t stream) {
  using C = typename Complex2<scalar_t>::type;
  const LaunchConfig cfg = fft_product_config(s);
  auto* kernel = &fft_product_kernel<scalar_t>;
  DC_LAUNCH(kernel, checked_grid(cfg, "dense_conv2d (algorithm='fft')"), cfg.threads, cfg.smem_bytes, stream)(
      reinterpret_cast<const C*>(A), reinterpret_cast<const C*>(R), reinterpret_cast<C*>(P), s);
}

template <typename scalar_t>
void launch_fft_correlate(const scalar_t* G, const scalar_t* A, const scalar_t* R, scalar_t* GI, scalar_t* GR,
                          double gr_scale, SpectrumShape s, cudaStream_t stream) {
  using C = typename Complex2<scalar_t>::type;
  const LaunchConfig cfg = fft_correlate_config(s);
  auto* kernel = &fft_correlate_kernel<scalar_t>;
  DC_LAUNCH(kernel, checked_grid(cfg, "dense_conv2d (algorithm='fft') backward"), cfg.threads, cfg.smem_bytes,
            stream)(
      reinterpret_cast<const C*>(G), reinterpret_cast<const C*>(A), reinterpret_cast<const C*>(R),
      reinterpret_cast<C*>(GI), reinterpret_cast<C*>(GR), static_cast<scalar_t>(gr_scale), s);
}

}  // namespace dc
