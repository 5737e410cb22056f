// CUDA kernels of the FFT algorithm of dense_mix_conv2d: the per-bin channel mix of the spectra, weight a [L, Ci, Cr].
//
// No ATen here (compiled by nvcc for fft_mix_cuda.cu, which does the transforms with cuFFT through ATen, and
// by g++ under the test-only CPU emulator). The math is csrc/cpu/fft_mix.cpp's, for a chunk of nb samples of
// interleaved complex spectra (float or double), K = H (W/2 + 1) bins per channel:
//   X [nb, Ci, K] impulse, Hs [nb, Cr, K] response, G [nb, L, K] output-gradient spectra;
//   M[l, j] = sum_k a[l, j, k] Hs[k]
//   forward:  Y[l]  = sum_j X[j] M[l, j]                                             [nb, L, K]
//   backward: GX[j] = sum_l G[l] conj(M[l, j])                                       [nb, Ci, K]
//             GH[k] = gh_scale sum_j conj(X[j]) sum_l a[l, j, k] G[l]                 [nb, Cr, K]
//             gw[b, l, j, k] = scale * sum_bins w Re(X[j] conj(G[l]) Hs[k])           [nb, L, Ci, Cr], float64
// (w: half_spectrum_weight, csrc/shapes.h; scale = 1 / (H W), Parseval).
//
// Y, GX and GH are one kernel, fft_mix_kernel: out[o] = sum_p S[p] (sum_q a[o, p, q] T[q]), with conjugates
// and strides into a chosen per launch. One thread per (sample, bin, block of outputs) keeps that block's
// inner sums and outputs in registers and walks p then q in ascending order; a tiny kernel first lays the
// weights out (once per call, for every chunk of samples) so that a thread reads its outputs' weights of one
// (p, q) in two vector loads (the same for the whole block: a broadcast): 3 loads per 16 (float) or 8 (double)
// multiply-adds, not 9 or 5.
// The weight gradient is a dot product over bins: fft_mix_gw_partial_kernel sums a chunk of kGwChunkBins bins
// per block (per thread, then a fixed shared-memory tree), fft_mix_gw_reduce_kernel adds the chunks of each
// sample in chunk order. Every sum has one fixed order: deterministic, no atomics.
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

// out[b, o] = out_scale cj_out(sum_{p < P} cj_s(S[b, p]) sum_{q < Q} a[o * so + p * sp + q * sq] T[b, q]) on
// every bin, with cj_s / cj_out a complex conjugate when conj_s / conj_out.
struct MixTerms {
  int64_t nb, K, O, P, Q;
  int64_t so, sp, sq;
  bool conj_s, conj_out;
  double out_scale;
};

// The three uses (see the top).
inline MixTerms forward_terms(const MixSpectra& s) {  // Y from X (p = j) and Hs (q = k)
  return {s.nb, s.bins(), s.L, s.Ci, s.Cr, s.Ci * s.Cr, s.Cr, 1, false, false, 1.0};
}
inline MixTerms grad_impulse_terms(const MixSpectra& s) {  // GX = conj(sum_l conj(G[l]) M[l, j]): p = l, q = k
  return {s.nb, s.bins(), s.Ci, s.L, s.Cr, s.Cr, s.Ci * s.Cr, 1, true, true, 1.0};
}
inline MixTerms grad_response_terms(const MixSpectra& s, double gh_scale) {  // GH from X (p = j, conj.), G (q = l)
  return {s.nb, s.bins(), s.Cr, s.Ci, s.L, 1, s.Cr, s.Ci * s.Cr, true, false, gh_scale};
}

// Outputs per thread of fft_mix_kernel (their sums and inner sums in registers: double values take two), and
// the weights of one (p, q) for them: two 16-byte vector loads.
template <typename scalar_t>
DC_HD constexpr int fft_mix_outputs_per_thread() {
  return sizeof(scalar_t) == 8 ? 4 : 8;
}

__device__ __forceinline__ void load_mix_weights(const float* w, float (&v)[8]) {
  const float4 lo = __ldg(reinterpret_cast<const float4*>(w)), hi = __ldg(reinterpret_cast<const float4*>(w) + 1);
  v[0] = lo.x, v[1] = lo.y, v[2] = lo.z, v[3] = lo.w, v[4] = hi.x, v[5] = hi.y, v[6] = hi.z, v[7] = hi.w;
}
__device__ __forceinline__ void load_mix_weights(const double* w, double (&v)[4]) {
  const double2 lo = __ldg(reinterpret_cast<const double2*>(w)), hi = __ldg(reinterpret_cast<const double2*>(w) + 1);
  v[0] = lo.x, v[1] = lo.y, v[2] = hi.x, v[3] = hi.y;
}

// The weights of one launch laid out for fft_mix_kernel: wl[(p * Q + q) * O_pad + o] = a[o * so + p * sp + q * sq],
// zero for o >= O (O_pad: O rounded up to the outputs per thread). So a thread reads the weights of its
// outputs for one (p, q) as two aligned vectors, the same for every thread of the block (a broadcast).
template <typename scalar_t>
DC_HD inline int64_t padded_outputs(const MixTerms& m) {
  return round_up(m.O, fft_mix_outputs_per_thread<scalar_t>());
}

template <typename scalar_t>
inline int64_t mix_weight_elements(const MixTerms& m) {
  return m.P * m.Q * padded_outputs<scalar_t>(m);
}

template <typename scalar_t>
__global__ void __launch_bounds__(kFftThreads)
    fft_mix_weight_kernel(const scalar_t* __restrict__ a, scalar_t* __restrict__ wl, MixTerms m) {
  const long long i = (long long)blockIdx.x * kFftThreads + threadIdx.x;
  const long long O_pad = padded_outputs<scalar_t>(m);
  if (i >= m.P * m.Q * O_pad) return;
  const long long o = i % O_pad, p = i / O_pad / m.Q, q = i / O_pad % m.Q;
  wl[i] = o < m.O ? a[o * m.so + p * m.sp + q * m.sq] : scalar_t(0);
}

template <typename scalar_t>
__global__ void __launch_bounds__(kFftThreads)
    fft_mix_kernel(const typename Complex2<scalar_t>::type* __restrict__ S,
                   const typename Complex2<scalar_t>::type* __restrict__ T, const scalar_t* __restrict__ wl,
                   typename Complex2<scalar_t>::type* __restrict__ out, MixTerms m) {
  using C = typename Complex2<scalar_t>::type;
  constexpr int OB = fft_mix_outputs_per_thread<scalar_t>();
  const long long k = (long long)blockIdx.x * kFftThreads + threadIdx.x;
  if (k >= m.K) return;
  const long long b = blockIdx.z, o0 = (long long)blockIdx.y * OB, O_pad = padded_outputs<scalar_t>(m);
  const scalar_t s_sign = m.conj_s ? scalar_t(-1) : scalar_t(1);
  const C* s_k = S + b * m.P * m.K + k;
  const C* t_k = T + b * m.Q * m.K + k;
  scalar_t acc_re[OB], acc_im[OB];
#pragma unroll
  for (int u = 0; u < OB; ++u) acc_re[u] = acc_im[u] = scalar_t(0);
  for (long long p = 0; p < m.P; ++p) {
    const scalar_t* w_p = wl + p * m.Q * O_pad + o0;
    scalar_t in_re[OB], in_im[OB];
#pragma unroll
    for (int u = 0; u < OB; ++u) in_re[u] = in_im[u] = scalar_t(0);
    for (long long q = 0; q < m.Q; ++q) {
      const C t = __ldg(t_k + q * m.K);
      scalar_t w[OB];
      load_mix_weights(w_p + q * O_pad, w);
#pragma unroll
      for (int u = 0; u < OB; ++u) {
        in_re[u] += w[u] * t.x;
        in_im[u] += w[u] * t.y;
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
  const scalar_t re_scale = scalar_t(m.out_scale), im_scale = m.conj_out ? -re_scale : re_scale;
  const int no = (int)(m.O - o0 < OB ? m.O - o0 : OB);
  C* out_k = out + (b * m.O + o0) * m.K + k;
#pragma unroll
  for (int u = 0; u < OB; ++u) {
    if (u < no) {
      C y;
      y.x = re_scale * acc_re[u];
      y.y = im_scale * acc_im[u];
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

// Grid: x over chunks times (l, j) pairs, the pair fastest (so blocks that run together share a chunk of the
// spectra in the cache), y over response groups, z over samples.
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
  const long long lj = blockIdx.x % (s.L * s.Ci), chunk = blockIdx.x / (s.L * s.Ci);
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
inline LaunchConfig fft_mix_weight_config(const MixTerms& m) {
  return {ceil_div(mix_weight_elements<scalar_t>(m), kFftThreads), 1, 1, kFftThreads, 0};
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

// Workspaces of the launch functions below, in elements of the spectra's type (weight layouts) and of double
// (the weight gradient's partial sums).
template <typename scalar_t>
inline int64_t fft_mix_forward_workspace_elements(const MixSpectra& s) {
  return mix_weight_elements<scalar_t>(forward_terms(s));
}
template <typename scalar_t>
inline int64_t fft_mix_backward_workspace_elements(const MixSpectra& s) {
  return mix_weight_elements<scalar_t>(grad_impulse_terms(s)) +
         mix_weight_elements<scalar_t>(grad_response_terms(s, 1.0));
}

// The weight layout for `m` into wl (it depends on the weights and sizes only, not on the samples: laid out once
// per call, before the chunk loop).
template <typename scalar_t>
void launch_fft_mix_weights(const scalar_t* a, scalar_t* wl, const MixTerms& m, const char* what, cudaStream_t stream) {
  const LaunchConfig cfg = fft_mix_weight_config<scalar_t>(m);
  auto* kernel = &fft_mix_weight_kernel<scalar_t>;
  DC_LAUNCH(kernel, checked_grid(cfg, what), cfg.threads, cfg.smem_bytes, stream)(a, wl, m);
}

// The mix for `m`, weights laid out in wl.
template <typename scalar_t>
void launch_fft_mix(const scalar_t* S, const scalar_t* T, const scalar_t* wl, scalar_t* out, const MixTerms& m,
                    const char* what, cudaStream_t stream) {
  using C = typename Complex2<scalar_t>::type;
  const LaunchConfig cfg = fft_mix_config<scalar_t>(m);
  auto* kernel = &fft_mix_kernel<scalar_t>;
  DC_LAUNCH(kernel, checked_grid(cfg, what), cfg.threads, cfg.smem_bytes, stream)(
      reinterpret_cast<const C*>(S), reinterpret_cast<const C*>(T), wl, reinterpret_cast<C*>(out), m);
}

constexpr const char* kMixForwardName = "dense_mix_conv2d (algorithm='fft')";
constexpr const char* kMixBackwardName = "dense_mix_conv2d (algorithm='fft') backward";

// Host entry points. Spectra are interleaved complex, a is [L, Ci, Cr] contiguous; every size must be positive
// (the caller returns early otherwise) and nb at most 65535 (grid.z: the caller chunks the batch). Workspaces
// (16-byte aligned): fft_mix_forward_workspace_elements<scalar_t>(s) / fft_mix_backward_workspace_elements, filled
// once per call by the *_weights launch (any s.nb), then read by every chunk's launches.
template <typename scalar_t>
void launch_fft_mix_forward_weights(const scalar_t* a, scalar_t* workspace, MixSpectra s, cudaStream_t stream) {
  launch_fft_mix_weights<scalar_t>(a, workspace, forward_terms(s), kMixForwardName, stream);
}

template <typename scalar_t>
void launch_fft_mix_forward(const scalar_t* X, const scalar_t* Hs, const scalar_t* workspace, scalar_t* Y,
                            MixSpectra s, cudaStream_t stream) {
  launch_fft_mix<scalar_t>(X, Hs, workspace, Y, forward_terms(s), kMixForwardName, stream);
}

template <typename scalar_t>
void launch_fft_mix_backward_weights(const scalar_t* a, scalar_t* workspace, MixSpectra s, cudaStream_t stream) {
  const MixTerms gx_terms = grad_impulse_terms(s);
  launch_fft_mix_weights<scalar_t>(a, workspace, gx_terms, kMixBackwardName, stream);
  launch_fft_mix_weights<scalar_t>(a, workspace + mix_weight_elements<scalar_t>(gx_terms),
                                   grad_response_terms(s, 1.0), kMixBackwardName, stream);  // the scale: at the mix
}

// GX, GH (times gh_scale) as at the top; gw: [nb, L, Ci, Cr] float64, times `scale`; gw_workspace:
// fft_mix_gw_workspace_elements(s) float64 elements.
template <typename scalar_t>
void launch_fft_mix_backward(const scalar_t* X, const scalar_t* Hs, const scalar_t* G, const scalar_t* workspace,
                             scalar_t* GX, scalar_t* GH, double* gw, double* gw_workspace, double scale,
                             double gh_scale, MixSpectra s, cudaStream_t stream) {
  using C = typename Complex2<scalar_t>::type;
  const MixTerms gx_terms = grad_impulse_terms(s), gh_terms = grad_response_terms(s, gh_scale);
  launch_fft_mix<scalar_t>(G, Hs, workspace, GX, gx_terms, kMixBackwardName, stream);
  launch_fft_mix<scalar_t>(X, G, workspace + mix_weight_elements<scalar_t>(gx_terms), GH, gh_terms, kMixBackwardName,
                           stream);
  const LaunchConfig partial_cfg = fft_mix_gw_partial_config<scalar_t>(s);
  auto* partial_kernel = &fft_mix_gw_partial_kernel<scalar_t>;
  DC_LAUNCH(partial_kernel, checked_grid(partial_cfg, kMixBackwardName), partial_cfg.threads, partial_cfg.smem_bytes,
            stream)(reinterpret_cast<const C*>(X), reinterpret_cast<const C*>(Hs), reinterpret_cast<const C*>(G),
                    gw_workspace, s);
  const LaunchConfig reduce_cfg = fft_mix_gw_reduce_config(s);
  auto* reduce_kernel = &fft_mix_gw_reduce_kernel<scalar_t>;
  DC_LAUNCH(reduce_kernel, checked_grid(reduce_cfg, kMixBackwardName), reduce_cfg.threads, reduce_cfg.smem_bytes,
            stream)(gw_workspace, gw, s, scale);
}

}  // namespace dc
