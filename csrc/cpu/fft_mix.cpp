// FFT algorithm of dense_mix_conv2d on CPU: dense_conv2d followed by a 1x1 channel mix, weight a [L, Ci, Cr],
//   y[b, l] = sum_{j,k} a[l, j, k] * crop(x[b, j] (*) h[b, k])
// formed in the frequency domain, so only L planes (not Ci*Cr) are ever transformed back. Per sample b
// (samples in parallel, each sample's transforms on one thread, per-thread workspaces: fft_common.h):
//   X = rfft2(x[b]) [Ci], H = rfft2(h[b] cropped to the taps that reach the image) [Cr]
//   forward:  M[l, j] = sum_k a[l, j, k] H[k], Y[l] = sum_j X[j] M[l, j] (per bin), y[b, l] = crop(irfft2(Y[l]))
//   backward: G = rfft2(gy[b]) [L], Q[l, j] = conj(X[j]) G[l]
//             grad_x[b, j] = crop(irfft2(sum_l G[l] conj(M[l, j])))
//             grad_h[b, k] = crop(irfft2(sum_{l,j} a[l, j, k] Q[l, j]))
//             grad_a[l, j, k] = sum_b <gy[b, l], crop(x[b, j] (*) h[b, k])>
//                             = sum_b 1/(H W) sum_{bins} w Re(conj(Q[l, j]) H[k])    (Parseval)
// where w = 1 on the half spectrum's DC and Nyquist columns and 2 on the others (their mirror images
// are not stored: half_spectrum_weight, csrc/shapes.h). Transform size: fft_plan (csrc/shapes.h), as
// dense_conv2d's FFT algorithm; pruned transforms (fft_common.h). The 1/(H W) of the inverse transforms (and
// of Parseval) is folded into H (and, in the backward, applied to grad_h's spectra once summed). The
// *_keep_spectra variant keeps X and H for the backward, as dense_conv2d's (fft_conv.cpp).
//
// Cost per sample and bin (K = H (W/2 + 1) bins): forward L Ci (2 Cr + 4) multiply-adds, backward
// L Ci (4 Cr + 12), plus Ci + Cr (+ L backward) real transforms forward and L (Ci + Cr backward) inverse.
// The bin loops run on blocks of kBinBlock bins split into real and imaginary parts, so that M and Q
// (recomputed per block, never stored per plane) stay in L1 and every loop is a plain vector loop.
//
// grad_a is summed per sample into a [B, L, Ci, Cr] float64 buffer, then over the batch in sample order:
// the result does not depend on the thread count.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/complex.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../checks.h"
#include "../nonfinite.h"
#include "fft_common.h"
#include "huge_pages.h"
#include "row_kernels.h"

namespace dc {
namespace {

using at::Tensor;
using namespace fft;

constexpr int64_t kBinBlock = 64;

// The bin loops are inlined into entry points compiled for several instruction sets (DC_MULTIVERSION,
// row_kernels.h): the default x86-64 target has 4-float vectors, AVX-512 16.
#if defined(__GNUC__)
#define DC_INLINE __attribute__((always_inline)) inline
#else
#define DC_INLINE inline
#endif

// Bins [k0, k0 + n) of each of C interleaved complex planes (K bins apart) into split real / imaginary
// rows of kBinBlock, zero past n.
template <class T>
DC_INLINE void load_split(const T* src, int64_t C, int64_t K, int64_t k0, int64_t n, T* dst) {
  for (int64_t c = 0; c < C; ++c) {
    const T* s = src + 2 * (c * K + k0);
    T* re = dst + 2 * c * kBinBlock;
    T* im = re + kBinBlock;
    for (int64_t t = 0; t < n; ++t) {
      re[t] = s[2 * t];
      im[t] = s[2 * t + 1];
    }
    for (int64_t t = n; t < kBinBlock; ++t) re[t] = im[t] = T(0);
  }
}

template <class T>
DC_INLINE void store_interleaved(const T* re, const T* im, int64_t n, T* dst) {
  for (int64_t t = 0; t < n; ++t) {
    dst[2 * t] = re[t];
    dst[2 * t + 1] = im[t];
  }
}

// m = sum_k a[k] h[k] over one block (h: Cr split rows).
template <class T>
DC_INLINE void mix_block(const T* a, const T* h, int64_t Cr, T* mr, T* mi) {
#pragma omp simd
  for (int64_t t = 0; t < kBinBlock; ++t) mr[t] = mi[t] = T(0);
  for (int64_t k = 0; k < Cr; ++k) {
    const T ak = a[k];
    const T* hr = h + 2 * k * kBinBlock;
    const T* hi = hr + kBinBlock;
#pragma omp simd
    for (int64_t t = 0; t < kBinBlock; ++t) {
      mr[t] += ak * hr[t];
      mi[t] += ak * hi[t];
    }
  }
}

// Y[l] = sum_j X[j] sum_k a[l, j, k] H[k] on every bin (interleaved spectra, K bins per plane).
// scratch: forward_scratch_size(...) elements.
int64_t forward_scratch_size(int64_t Ci, int64_t Cr) { return 2 * kBinBlock * (Ci + Cr); }

template <class T>
DC_INLINE void mix_forward_spectra(const T* X, const T* Hs, const T* a, T* Y, int64_t L, int64_t Ci, int64_t Cr,
                                   int64_t K, T* scratch) {
  T* xs = scratch;
  T* hs = xs + 2 * kBinBlock * Ci;
  // Accumulators are local arrays: nothing else can alias them, so they stay in registers.
  T mr[kBinBlock], mi[kBinBlock], yr[kBinBlock], yi[kBinBlock];
  for (int64_t k0 = 0; k0 < K; k0 += kBinBlock) {
    const int64_t n = std::min(kBinBlock, K - k0);
    load_split(X, Ci, K, k0, n, xs);
    load_split(Hs, Cr, K, k0, n, hs);
    for (int64_t l = 0; l < L; ++l) {
#pragma omp simd
      for (int64_t t = 0; t < kBinBlock; ++t) yr[t] = yi[t] = T(0);
      for (int64_t j = 0; j < Ci; ++j) {
        mix_block(a + (l * Ci + j) * Cr, hs, Cr, mr, mi);
        const T* xr = xs + 2 * j * kBinBlock;
        const T* xi = xr + kBinBlock;
#pragma omp simd
        for (int64_t t = 0; t < kBinBlock; ++t) {
          yr[t] += xr[t] * mr[t] - xi[t] * mi[t];
          yi[t] += xr[t] * mi[t] + xi[t] * mr[t];
        }
      }
      store_interleaved(yr, yi, n, Y + 2 * (l * K + k0));
    }
  }
}

// GX[j] = sum_l G[l] conj(M[l, j]), GH[k] = sum_{l,j} a[l, j, k] Q[l, j] with Q[l, j] = conj(X[j]) G[l], and
// gw[l, j, k] = sum over bins of w Re(conj(Q[l, j]) H[k]) (w: the half-spectrum weight, see the top).
// Per block, Q and wQ of every (l, j) are formed once; then each k accumulates GH[k] and its weight
// gradients over (l, j) in local arrays (kept in registers), the latter in kGwLanes partial sums per
// (l, j, k) (float64 across blocks), reduced once per sample.
constexpr int64_t kGwLanes = 16;
static_assert(kBinBlock % kGwLanes == 0, "a block is a whole number of weight-gradient lane groups");

// scratch: backward_scratch_size(...) elements.
int64_t backward_scratch_size(int64_t L, int64_t Ci, int64_t Cr) {
  return 2 * kBinBlock * (2 * Ci + Cr + L + 2 * L * Ci);
}

template <class T>
DC_INLINE void mix_backward_spectra(const T* X, const T* Hs, const T* G, const T* a, T* GX, T* GH, double* gw,
                                    int64_t L, int64_t Ci, int64_t Cr, int64_t K, int64_t half_width,
                                    bool has_nyquist, T* scratch, double* gw_lanes) {
  T* xs = scratch;
  T* hs = xs + 2 * kBinBlock * Ci;
  T* gs = hs + 2 * kBinBlock * Cr;
  T* gx = gs + 2 * kBinBlock * L;
  T* qs = gx + 2 * kBinBlock * Ci;   // [L * Ci][re, im][kBinBlock]
  T* wqs = qs + 2 * kBinBlock * L * Ci;  // the same, times w
  const int64_t LC = L * Ci;
  for (int64_t i = 0; i < LC * Cr * kGwLanes; ++i) gw_lanes[i] = 0.0;
  T w[kBinBlock];
  for (int64_t k0 = 0; k0 < K; k0 += kBinBlock) {
    const int64_t n = std::min(kBinBlock, K - k0);
    load_split(X, Ci, K, k0, n, xs);
    load_split(Hs, Cr, K, k0, n, hs);
    load_split(G, L, K, k0, n, gs);
#pragma omp simd
    for (int64_t t = 0; t < 2 * kBinBlock * Ci; ++t) gx[t] = T(0);
    for (int64_t t = 0; t < kBinBlock; ++t) {
      const int64_t col = (k0 + t) % half_width;
      w[t] = t >= n ? T(0) : T(half_spectrum_weight(col, half_width, has_nyquist));
    }
    for (int64_t l = 0; l < L; ++l) {
      const T* gr = gs + 2 * l * kBinBlock;
      const T* gi = gr + kBinBlock;
      for (int64_t j = 0; j < Ci; ++j) {
        T mr[kBinBlock], mi[kBinBlock];
        mix_block(a + (l * Ci + j) * Cr, hs, Cr, mr, mi);
        const T* xr = xs + 2 * j * kBinBlock;
        const T* xi = xr + kBinBlock;
        T* gxr = gx + 2 * j * kBinBlock;
        T* gxi = gxr + kBinBlock;
        T* qr = qs + 2 * (l * Ci + j) * kBinBlock;
        T* qi = qr + kBinBlock;
        T* wqr = wqs + 2 * (l * Ci + j) * kBinBlock;
        T* wqi = wqr + kBinBlock;
#pragma omp simd
        for (int64_t t = 0; t < kBinBlock; ++t) {
          gxr[t] += gr[t] * mr[t] + gi[t] * mi[t];
          gxi[t] += gi[t] * mr[t] - gr[t] * mi[t];
          qr[t] = xr[t] * gr[t] + xi[t] * gi[t];
          qi[t] = xr[t] * gi[t] - xi[t] * gr[t];
          wqr[t] = w[t] * qr[t];
          wqi[t] = w[t] * qi[t];
        }
      }
    }
    for (int64_t k = 0; k < Cr; ++k) {
      const T* hr = hs + 2 * k * kBinBlock;
      const T* hi = hr + kBinBlock;
      T ghr[kBinBlock], ghi[kBinBlock];
#pragma omp simd
      for (int64_t t = 0; t < kBinBlock; ++t) ghr[t] = ghi[t] = T(0);
      for (int64_t lj = 0; lj < LC; ++lj) {
        const T ak = a[lj * Cr + k];
        const T* qr = qs + 2 * lj * kBinBlock;
        const T* qi = qr + kBinBlock;
        const T* wqr = wqs + 2 * lj * kBinBlock;
        const T* wqi = wqr + kBinBlock;
        T dot[kGwLanes];
#pragma omp simd
        for (int64_t u = 0; u < kGwLanes; ++u) dot[u] = T(0);
        for (int64_t c = 0; c < kBinBlock; c += kGwLanes) {
#pragma omp simd
          for (int64_t u = 0; u < kGwLanes; ++u) {
            const int64_t t = c + u;
            ghr[t] += ak * qr[t];
            ghi[t] += ak * qi[t];
            dot[u] += wqr[t] * hr[t] + wqi[t] * hi[t];
          }
        }
        double* lanes = gw_lanes + (lj * Cr + k) * kGwLanes;
#pragma omp simd
        for (int64_t u = 0; u < kGwLanes; ++u) lanes[u] += static_cast<double>(dot[u]);
      }
      store_interleaved(ghr, ghi, n, GH + 2 * (k * K + k0));
    }
    for (int64_t j = 0; j < Ci; ++j)
      store_interleaved(gx + 2 * j * kBinBlock, gx + (2 * j + 1) * kBinBlock, n, GX + 2 * (j * K + k0));
  }
  for (int64_t i = 0; i < LC * Cr; ++i) {
    double sum = 0.0;
    for (int64_t u = 0; u < kGwLanes; ++u) sum += gw_lanes[i * kGwLanes + u];
    gw[i] = sum;
  }
}

// Entry points, one per dtype and instruction set.
#define DC_MIX_ENTRY_POINTS(T)                                                                                  \
  DC_MULTIVERSION void forward_spectra(const T* X, const T* Hs, const T* a, T* Y, int64_t L, int64_t Ci,         \
                                       int64_t Cr, int64_t K, T* scratch) {                                     \
    mix_forward_spectra<T>(X, Hs, a, Y, L, Ci, Cr, K, scratch);                                                 \
  }                                                                                                             \
  DC_MULTIVERSION void backward_spectra(const T* X, const T* Hs, const T* G, const T* a, T* GX, T* GH,          \
                                        double* gw, int64_t L, int64_t Ci, int64_t Cr, int64_t K,               \
                                        int64_t half_width, bool has_nyquist, T* scratch, double* gw_lanes) {   \
    mix_backward_spectra<T>(X, Hs, G, a, GX, GH, gw, L, Ci, Cr, K, half_width, has_nyquist, scratch, gw_lanes); \
  }
DC_MIX_ENTRY_POINTS(float)
DC_MIX_ENTRY_POINTS(double)
#undef DC_MIX_ENTRY_POINTS

void check_cpu_fft(const Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble,
              "dense_mix_conv2d (algorithm='fft'): the CPU kernels take float32 or float64; ", name, " is ",
              t.scalar_type());
}

// The forward; when `kept` is given, each sample's spectra are written into it instead of the per-thread
// workspaces (shapes whose output is zero leave it zero).
Tensor mix_fft_forward(const Tensor& response, const Tensor& impulse, const Tensor& weight, KeptSpectra* kept) {
  const MixSizes ms = check_mix_forward(response, impulse, weight);
  const ConvSizes& s = ms.conv;
  const int64_t L = ms.L;
  check_cpu_fft(impulse, "impulse");
  Tensor out = at::empty({s.B, L, s.Hi, s.Wi}, impulse.options());
  advise_huge_pages(out);
  const FftPlan f = fft_plan(s);
  if (kept != nullptr) *kept = empty_kept_spectra(s, f, impulse);
  if (out.numel() == 0 || ms.output_is_zero()) {
    if (kept != nullptr) {
      kept->impulse.zero_();
      kept->response.zero_();
    }
    return out.zero_();
  }
  const Tensor resp = response.narrow(2, 0, f.Hq).narrow(3, 0, f.Wq);
  const Tensor a = weight.contiguous();
  const int64_t K = (f.W / 2 + 1) * f.H;
  AT_DISPATCH_FLOATING_TYPES(impulse.scalar_type(), "dense_mix_conv2d_fft_cpu", [&] {
    using C = c10::complex<scalar_t>;
    const ColumnFft<scalar_t> columns(f.H, /*inverse=*/false), inverse_columns(f.H, /*inverse=*/true);
    const auto run = [&](int64_t begin, int64_t end) {
      at::NoGradGuard no_grad;  // plain tensor math on this thread (see fft_conv.cpp)
      const auto copt = impulse.options().dtype(c10::toComplexType(impulse.scalar_type()));
      Tensor& Y = workspace(kMixOutSpectra, {L, f.H, f.W / 2 + 1}, copt);
      std::vector<scalar_t> scratch(forward_scratch_size(s.Ci, s.Cr));
      for (int64_t b = begin; b < end; ++b) {
        Tensor X = kept != nullptr ? kept->impulse[b] : workspace(kImpulseSpectra, {s.Ci, f.H, f.W / 2 + 1}, copt);
        Tensor Hs =
            kept != nullptr ? kept->response[b] : workspace(kResponseSpectra, {s.Cr, f.H, f.W / 2 + 1}, copt);
        forward_2d<scalar_t>(impulse[b], columns, f.W, /*scaled=*/false, kImpulseIn, X);
        forward_2d<scalar_t>(resp[b], columns, f.W, /*scaled=*/true, kResponseIn, Hs);
        TORCH_INTERNAL_ASSERT(X.is_contiguous() && Hs.is_contiguous() && Y.is_contiguous());
        forward_spectra(reinterpret_cast<const scalar_t*>(X.const_data_ptr<C>()),
                        reinterpret_cast<const scalar_t*>(Hs.const_data_ptr<C>()), a.const_data_ptr<scalar_t>(),
                        reinterpret_cast<scalar_t*>(Y.data_ptr<C>()), L, s.Ci, s.Cr, K, scratch.data());
        out[b].copy_(inverse_2d<scalar_t>(Y, inverse_columns, s.Hi, f.W, kMixOut).narrow(2, 0, s.Wi));
      }
    };
    run_samples(s.B, run);
  });
  exact_nonfinite_mix_forward(out, response, impulse, weight);
  return out;
}

Tensor dense_mix_fft_forward_cpu(const Tensor& response, const Tensor& impulse, const Tensor& weight) {
  return mix_fft_forward(response, impulse, weight, nullptr);
}

std::tuple<Tensor, Tensor, Tensor> dense_mix_fft_forward_keep_spectra_cpu(const Tensor& response,
                                                                          const Tensor& impulse,
                                                                          const Tensor& weight) {
  KeptSpectra kept;
  Tensor out = mix_fft_forward(response, impulse, weight, &kept);
  return {out, kept.impulse, kept.response};
}

// The backward; with `kept` (the forward's spectra) the impulse and response are not transformed again.
// Either way the response spectrum carries the 1/(H W) (GX and the weight gradient get it from there) and GH
// is scaled after the sum, so both give bitwise the same gradients.
std::tuple<Tensor, Tensor, Tensor> mix_fft_backward(const Tensor& grad_out, const Tensor& response,
                                                    const Tensor& impulse, const Tensor& weight,
                                                    const KeptSpectra* kept) {
  const MixSizes ms = check_mix_backward(grad_out, response, impulse, weight);
  const ConvSizes& s = ms.conv;
  const int64_t L = ms.L;
  check_cpu_fft(grad_out, "grad_out");
  const FftPlan f = fft_plan(s);
  if (kept != nullptr) check_kept_spectra(*kept, s, f, grad_out, "dense_mix_conv2d");
  Tensor grad_response = at::zeros(response.sizes(), grad_out.options());
  Tensor grad_impulse = at::empty(impulse.sizes(), grad_out.options());
  advise_huge_pages(grad_impulse);
  if (ms.gradients_are_zero())
    return {grad_response, grad_impulse.zero_(), at::zeros(weight.sizes(), grad_out.options())};
  const Tensor resp = response.narrow(2, 0, f.Hq).narrow(3, 0, f.Wq);
  const Tensor a = weight.contiguous();  // grad_out is read through its strides
  // Per-sample weight gradients, summed over the batch in sample order below (deterministic).
  Tensor grad_weight_per_sample = at::empty({s.B, L, s.Ci, s.Cr}, grad_out.options().dtype(at::kDouble));
  const int64_t half_width = f.W / 2 + 1, K = f.H * half_width;
  const bool has_nyquist = f.W % 2 == 0;
  AT_DISPATCH_FLOATING_TYPES(grad_out.scalar_type(), "dense_mix_conv2d_fft_backward_cpu", [&] {
    using C = c10::complex<scalar_t>;
    const ColumnFft<scalar_t> columns(f.H, /*inverse=*/false), inverse_columns(f.H, /*inverse=*/true);
    const scalar_t scale = static_cast<scalar_t>(1.0 / static_cast<double>(f.H * f.W));
    const auto run = [&](int64_t begin, int64_t end) {
      at::NoGradGuard no_grad;
      const auto copt = grad_out.options().dtype(c10::toComplexType(grad_out.scalar_type()));
      Tensor& G = workspace(kMixOutSpectra, {L, f.H, half_width}, copt);
      Tensor& GX = workspace(kGradImpulseSpectra, {s.Ci, f.H, half_width}, copt);
      Tensor& GH = workspace(kGradResponseSpectra, {s.Cr, f.H, half_width}, copt);
      std::vector<scalar_t> scratch(backward_scratch_size(L, s.Ci, s.Cr));
      std::vector<double> gw_lanes(L * s.Ci * s.Cr * kGwLanes);
      const auto re = [](Tensor& t) { return reinterpret_cast<scalar_t*>(t.data_ptr<C>()); };
      for (int64_t b = begin; b < end; ++b) {
        Tensor X, Hs;
        if (kept != nullptr) {
          X = kept->impulse[b];
          Hs = kept->response[b];
        } else {
          X = workspace(kImpulseSpectra, {s.Ci, f.H, half_width}, copt);
          Hs = workspace(kResponseSpectra, {s.Cr, f.H, half_width}, copt);
          forward_2d<scalar_t>(impulse[b], columns, f.W, /*scaled=*/false, kImpulseIn, X);
          forward_2d<scalar_t>(resp[b], columns, f.W, /*scaled=*/true, kResponseIn, Hs);
        }
        forward_2d<scalar_t>(grad_out[b], columns, f.W, /*scaled=*/false, kMixGradIn, G);
        TORCH_INTERNAL_ASSERT(X.is_contiguous() && Hs.is_contiguous() && G.is_contiguous());
        backward_spectra(re(X), re(Hs), re(G), a.const_data_ptr<scalar_t>(), re(GX), re(GH),
                         grad_weight_per_sample[b].data_ptr<double>(), L, s.Ci, s.Cr, K, half_width, has_nyquist,
                         scratch.data(), gw_lanes.data());
        GH.mul_(scale);  // GH = sum a conj(X) G gets the 1/(H W) here
        grad_impulse[b].copy_(
            inverse_2d<scalar_t>(GX, inverse_columns, s.Hi, f.W, kGradImpulseOut).narrow(2, 0, s.Wi));
        grad_response[b].narrow(1, 0, f.Hq).narrow(2, 0, f.Wq).copy_(
            inverse_2d<scalar_t>(GH, inverse_columns, f.Hq, f.W, kGradResponseOut).narrow(2, 0, f.Wq));
      }
    };
    run_samples(s.B, run);
  });
  exact_nonfinite_mix_backward(grad_response, grad_impulse, grad_weight_per_sample, grad_out, response, impulse,
                               weight);
  Tensor grad_weight = at::zeros({L, s.Ci, s.Cr}, grad_weight_per_sample.options());
  for (int64_t b = 0; b < s.B; ++b) grad_weight.add_(grad_weight_per_sample[b]);
  return {grad_response, grad_impulse, grad_weight.to(grad_out.scalar_type())};
}

std::tuple<Tensor, Tensor, Tensor> dense_mix_fft_backward_cpu(const Tensor& grad_out, const Tensor& response,
                                                              const Tensor& impulse, const Tensor& weight) {
  return mix_fft_backward(grad_out, response, impulse, weight, nullptr);
}

std::tuple<Tensor, Tensor, Tensor> dense_mix_fft_backward_spectra_cpu(const Tensor& grad_out,
                                                                      const Tensor& response,
                                                                      const Tensor& impulse, const Tensor& weight,
                                                                      const Tensor& impulse_spectra,
                                                                      const Tensor& response_spectra) {
  const KeptSpectra kept{impulse_spectra, response_spectra};
  return mix_fft_backward(grad_out, response, impulse, weight, &kept);
}

}  // namespace

TORCH_LIBRARY_IMPL(dense_conv, CPU, m) {
  m.impl("dense_mix_conv2d_fft", &dense_mix_fft_forward_cpu);
  m.impl("dense_mix_conv2d_fft_backward", &dense_mix_fft_backward_cpu);
  m.impl("dense_mix_conv2d_fft_keep_spectra", &dense_mix_fft_forward_keep_spectra_cpu);
  m.impl("dense_mix_conv2d_fft_backward_spectra", &dense_mix_fft_backward_spectra_cpu);
}

}  // namespace dc
