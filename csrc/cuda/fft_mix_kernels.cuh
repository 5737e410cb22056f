// CUDA kernels of the FFT algorithm of dense_mix_conv2d: the per-bin channel mix of the spectra, weight a [L, Ci, Cr].
//
// No ATen here (compiled by nvcc for fft_mix_cuda.cu, which does the transforms with cuFFT through ATen, and
// by g++ under the test-only CPU emulator). The math is csrc/cpu/fft_mix.cpp's, for a chunk of nb samples of
// interleaved complex spectra (float or double), K = H (W/2 + 1) bins per channel:
//   X [nb, Ci, K] impulse, Hs [nb, Cr, K] response, G [nb, L, K] output-gradient spectra;
//   M[l, j] = sum_k a[l, j, k] Hs[k]
//   forward:  Y[l]  = sum_j X[j] M[l, j]                                             [nb, L, K]
//   backward: GX[j] = sum_l G[l] conj(M[l, j])                                       [nb, Ci, K]
//             GH[k] = sum_j conj(X[j]) sum_l a[l, j, k] G[l]                          [nb, Cr, K]
//             gw[b, l, j, k] = scale * sum_bins w Re(X[j] conj(G[l]) Hs[k])           [nb, L, Ci, Cr], float64
// (w: half_spectrum_weight, csrc/shapes.h; scale = 1 / (H W), Parseval).
//
// Y, GX and GH are one kernel, fft_mix_kernel: out[o] = sum_p S[p] (sum_q a[o, p, q] T[q]), with conjugates
// and strides into a chosen per launch. One thread per (sample, bin, block of outputs) keeps that block's
// inner sums and outputs in registers and walks p then q in ascending order. The weight gradient is a dot
// product over bins: fft_mix_gw_partial_kernel sums a chunk of kGwChunkBins bins per block (per thread, then
// a fixed shared-memory tree), fft_mix_gw_reduce_kernel adds the chunks of each sample in chunk order. Every
// sum has one fixed order: deterministic, no atomics.
#pragma once

#include "fft_conv_kernels.cuh"

namespace dc {

// The spectra of one chunk: nb samples, L outputs, Ci impulse and Cr response channels, transform H x W.
struct MixSpectra {
  int64_t nb, L, Ci, Cr, H, W;
  DC_HD int64_t half_width() const { return W / 2 + 1; }
  DC_HD int64_t bins() const { return H * half_width(); }
  DC_HD bool has_nyquist() const { return W % 2 == 0; }
};

// out[b, o] = cj_out(sum_{p < P} cj_s(S[b, p]) sum_{q < Q} a[o * so + p * sp + q * sq] T[b, q]) on every bin,
// with cj_s / cj_out a complex conjugate when conj_s / conj_out.
struct MixTerms {
  int64_t nb, K, O, P, Q;
  int64_t so, sp, sq;
  bool conj_s, conj_out;
};

// Outputs per thread of fft_mix_kernel (their sums and inner sums in registers: double values take two).
template <typename scalar_t>
DC_HD constexpr int fft_mix_outputs_per_thread() {
  return sizeof(scalar_t) == 8 ? 4 : 8;
}

template <typename scalar_t>
__global__ void __launch_bounds__(kFftThreads)
    fft_mix_kernel(const typename Complex2<scalar_t>::type* __restrict__ S,
                   const typename Complex2<scalar_t>::type* __restrict__ T, const scalar_t* __restrict__ a,
                   typename Complex2<scalar_t>::type* __restrict__ out, MixTerms m) {
  using C = typename Complex2<scalar_t>::type;
  constexpr int OB = fft_mix_outputs_per_thread<scalar_t>();
  const long long k = (long long)blockIdx.x * kFftThreads + threadIdx.x;
  if (k >= m.K) return;
  const long long b = blockIdx.z, o0 = (long long)blockIdx.y * OB;
  const int no = (int)(m.O - o0 < OB ? m.O - o0 : OB);
  const scalar_t s_sign = m.conj_s ? scalar_t(-1) : scalar_t(1);
  const C* s_k = S + b * m.P * m.K + k;
  const C* t_k = T + b * m.Q * m.K + k;
  scalar_t acc_re[OB], acc_im[OB];
#pragma unroll
  for (int u = 0; u < OB; ++u) acc_re[u] = acc_im[u] = scalar_t(0);
  for (long long p = 0; p < m.P; ++p) {
    const scalar_t* a_p = a + o0 * m.so + p * m.sp;
    scalar_t in_re[OB], in_im[OB];
#pragma unroll
    for (int u = 0; u < OB; ++u) in_re[u] = in_im[u] = scalar_t(0);
    for (long long q = 0; q < m.Q; ++q) {
      const C t = __ldg(t_k + q * m.K);
      const scalar_t* a_q = a_p + q * m.sq;
#pragma unroll
      for (int u = 0; u < OB; ++u) {
        if (u < no) {
          const scalar_t w = __ldg(a_q + u * m.so);  // the same for every thread of the block: a broadcast
          in_re[u] += w * t.x;
          in_im[u] += w * t.y;
        }
      }
    }
    const C s = __ldg(s_k + p * m.K);
    const scalar_t s_im = s_sign * s.y;
#pragma unroll
    for (int u = 0; u < OB; ++u) {
      acc_re[u] += s.x * in_re[u] - s_im * in_im[u];
      acc_im[u] += s.x * in_im[u] + s_im * in_re[u];
    }
  }
  const scalar_t out_sign = m.conj_out ? scalar_t(-1) : scalar_t(1);
  C* out_k = out + (b * m.O + o0) * m.K + k;
#pragma unroll
  for (int u = 0; u < OB; ++u) {
    if (u < no) {
      C y;
      y.x = acc_re[u];
      y.y = out_sign * acc_im[u];
      out_k[u * m.K] = y;
    }
  }
}

// Weight gradient: a block sums kGwBinsPerThread bins per thread (kFftThreads apart) of one (l, j) pair for
// a group of fft_gw_resp_per_block() responses k, then the threads' sums in a float64 tree.
constexpr int kGwBinsPerThread = 4;
constexpr int64_t kGwChunkBins = int64_t(kGwBinsPerThread) * kFftThreads;

template <typename scalar_t>
DC_HD constexpr int fft_gw_resp_per_block() {
  return sizeof(scalar_t) == 8 ? 4 : 8;
}

DC_HD inline int64_t fft_gw_chunks(const MixSpectra& s) { return ceil_div(s.bins(), kGwChunkBins); }

// float64 elements of the partial-sum workspace of launch_fft_mix_backward: [nb, chunks, L * Ci * Cr].
inline int64_t fft_mix_gw_workspace_elements(const MixSpectra& s) {
  return s.nb * fft_gw_chunks(s) * s.L * s.Ci * s.Cr;
}

// Grid: x over (l, j) pairs times chunks (chunk fastest), y over response groups, z over samples.
template <typename scalar_t>
__global__ void __launch_bounds__(kFftThreads)
    fft_mix_gw_partial_kernel(const typename Complex2<scalar_t>::type* __restrict__ X,
                              const typename Complex2<scalar_t>::type* __restrict__ Hs,
                              const typename Complex2<scalar_t>::type* __restrict__ G, double* __restrict__ partial,
                              MixSpectra s) {
  using C = typename Complex2<scalar_t>::type;
  constexpr int RB = fft_gw_resp_per_block<scalar_t>();
  __shared__ double tree[RB][kFftThreads];
  const int64_t K = s.bins(), half_width = s.half_width(), chunks = fft_gw_chunks(s);
  const bool has_nyquist = s.has_nyquist();
  const long long chunk = blockIdx.x % chunks, lj = blockIdx.x / chunks;
  const long long l = lj / s.Ci, j = lj % s.Ci, b = blockIdx.z, k0 = (long long)blockIdx.y * RB;
  const int nk = (int)(s.Cr - k0 < RB ? s.Cr - k0 : RB);
  const C* x_b = X + (b * s.Ci + j) * K;
  const C* g_b = G + (b * s.L + l) * K;
  const C* h_b = Hs + (b * s.Cr + k0) * K;
  scalar_t acc[RB];
#pragma unroll
  for (int u = 0; u < RB; ++u) acc[u] = scalar_t(0);
  for (int i = 0; i < kGwBinsPerThread; ++i) {
    const long long bin = chunk * kGwChunkBins + (long long)i * kFftThreads + threadIdx.x;
    if (bin >= K) break;
    const C x = __ldg(x_b + bin), g = __ldg(g_b + bin);
    const scalar_t w = scalar_t(half_spectrum_weight(bin % half_width, half_width, has_nyquist));
    const scalar_t p_re = w * (x.x * g.x + x.y * g.y), p_im = w * (x.y * g.x - x.x * g.y);  // w X conj(G)
#pragma unroll
    for (int u = 0; u < RB; ++u) {
      if (u < nk) {
        const C h = __ldg(h_b + u * K + bin);
        acc[u] += p_re * h.x - p_im * h.y;
      }
    }
  }
#pragma unroll
  for (int u = 0; u < RB; ++u) tree[u][threadIdx.x] = static_cast<double>(acc[u]);
  __syncthreads();
  for (int half = kFftThreads / 2; half > 0; half /= 2) {
    if ((int)threadIdx.x < half) {
#pragma unroll
      for (int u = 0; u < RB; ++u) tree[u][threadIdx.x] += tree[u][threadIdx.x + half];
    }
    __syncthreads();
  }
  if ((int)threadIdx.x < nk) {
    const long long n = s.L * s.Ci * s.Cr;
    partial[(b * chunks + chunk) * n + lj * s.Cr + k0 + threadIdx.x] = tree[threadIdx.x][0];
  }
}

// gw[b, i] = scale * sum over chunks c (ascending) of partial[b, c, i]; one thread per (b, i). A template, as
// every kernel defined in a header (compat.cuh), instantiated for the spectra's type.
template <typename scalar_t>
__global__ void __launch_bounds__(kFftThreads)
    fft_mix_gw_reduce_kernel(const double* __restrict__ partial, double* __restrict__ gw, MixSpectra s,
                             double scale) {
  const long long n = s.L * s.Ci * s.Cr;
  const long long i = (long long)blockIdx.x * kFftThreads + threadIdx.x;
  if (i >= n) return;
  const long long b = blockIdx.z, chunks = fft_gw_chunks(s);
  const double* p = partial + b * chunks * n + i;
  double sum = 0.0;
  for (long long c = 0; c < chunks; ++c) sum += p[c * n];
  gw[b * n + i] = scale * sum;
}

template <typename scalar_t>
inline LaunchConfig fft_mix_config(const MixTerms& m) {
  return {ceil_div(m.K, kFftThreads), ceil_div(m.O, fft_mix_outputs_per_thread<scalar_t>()), m.nb, kFftThreads, 0};
}

template <typename scalar_t>
inline LaunchConfig fft_mix_gw_partial_config(const MixSpectra& s) {
  return {s.L * s.Ci * fft_gw_chunks(s), ceil_div(s.Cr, fft_gw_resp_per_block<scalar_t>()), s.nb, kFftThreads, 0};
}

inline LaunchConfig fft_mix_gw_reduce_config(const MixSpectra& s) {
  return {ceil_div(s.L * s.Ci * s.Cr, kFftThreads), 1, s.nb, kFftThreads, 0};
}

template <typename scalar_t>
void launch_fft_mix(const scalar_t* S, const scalar_t* T, const scalar_t* a, scalar_t* out, const MixTerms& m,
                    const char* what, cudaStream_t stream) {
  using C = typename Complex2<scalar_t>::type;
  const LaunchConfig cfg = fft_mix_config<scalar_t>(m);
  auto* kernel = &fft_mix_kernel<scalar_t>;
  DC_LAUNCH(kernel, checked_grid(cfg, what), cfg.threads, cfg.smem_bytes, stream)(
      reinterpret_cast<const C*>(S), reinterpret_cast<const C*>(T), a, reinterpret_cast<C*>(out), m);
}

// Host entry points. Spectra are interleaved complex, a is [L, Ci, Cr] contiguous; every size must be positive
// (the caller returns early otherwise) and nb at most 65535 (grid.z: the caller chunks the batch).
template <typename scalar_t>
void launch_fft_mix_forward(const scalar_t* X, const scalar_t* Hs, const scalar_t* a, scalar_t* Y, MixSpectra s,
                            cudaStream_t stream) {
  const MixTerms m{s.nb, s.bins(), s.L, s.Ci, s.Cr, s.Ci * s.Cr, s.Cr, 1, false, false};
  launch_fft_mix<scalar_t>(X, Hs, a, Y, m, "dense_mix_conv2d (algorithm='fft')", stream);
}

// GX, GH as at the top; gw: [nb, L, Ci, Cr] float64, times `scale`; workspace: fft_mix_gw_workspace_elements(s)
// float64 elements.
template <typename scalar_t>
void launch_fft_mix_backward(const scalar_t* X, const scalar_t* Hs, const scalar_t* G, const scalar_t* a,
                             scalar_t* GX, scalar_t* GH, double* gw, double* workspace, double scale, MixSpectra s,
                             cudaStream_t stream) {
  using C = typename Complex2<scalar_t>::type;
  const char* what = "dense_mix_conv2d (algorithm='fft') backward";
  const int64_t K = s.bins();
  // GX[j] = conj(sum_l conj(G[l]) sum_k a[l, j, k] Hs[k]);  GH[k] = sum_j conj(X[j]) sum_l a[l, j, k] G[l]
  launch_fft_mix<scalar_t>(G, Hs, a, GX, MixTerms{s.nb, K, s.Ci, s.L, s.Cr, s.Cr, s.Ci * s.Cr, 1, true, true},
                           what, stream);
  launch_fft_mix<scalar_t>(X, G, a, GH, MixTerms{s.nb, K, s.Cr, s.Ci, s.L, 1, s.Cr, s.Ci * s.Cr, true, false},
                           what, stream);
  const LaunchConfig partial_cfg = fft_mix_gw_partial_config<scalar_t>(s);
  auto* partial_kernel = &fft_mix_gw_partial_kernel<scalar_t>;
  DC_LAUNCH(partial_kernel, checked_grid(partial_cfg, what), partial_cfg.threads, partial_cfg.smem_bytes, stream)(
      reinterpret_cast<const C*>(X), reinterpret_cast<const C*>(Hs), reinterpret_cast<const C*>(G), workspace, s);
  const LaunchConfig reduce_cfg = fft_mix_gw_reduce_config(s);
  auto* reduce_kernel = &fft_mix_gw_reduce_kernel<scalar_t>;
  DC_LAUNCH(reduce_kernel, checked_grid(reduce_cfg, what), reduce_cfg.threads, reduce_cfg.smem_bytes, stream)(
      workspace, gw, s, scale);
}

}  // namespace dc
