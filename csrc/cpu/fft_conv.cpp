// FFT algorithm of dense_conv2d on CPU (sparse_conv2d uses it through [B*C, 1, ...] views).
//
// Per sample b (samples run in parallel; inside a parallel region each sample's transforms run on one
// thread, so a sample's spectra stay in its core's cache; per-thread workspaces are reused across
// samples (and across calls while small: kKeptBytesCap), and the products / inverse transforms go one
// impulse channel (Cr planes) at a time):
//   Fi = rfft2(impulse[b]), Fr = rfft2(response[b] cropped to the taps that reach the image)   (once each)
//   forward:  P[i, r] = Fi[i] * Fr[r]                     (fused kernel below), out[b] = crop(irfft2(P))
//   backward: G = rfft2(grad_out[b]); GI[i] = sum_r G[i, r] * conj(Fr[r]), GR[r] = sum_i G[i, r] * conj(Fi[i])
//             (one fused pass), grad_impulse[b] = crop(irfft2(GI)), grad_response[b] = crop(irfft2(GR)).
// The transforms are pruned (forward_2d / inverse_2d, fft_common.h): zero padding rows are
// not transformed, and inverse rows outside the crop are not computed. The 1/(H W) of the inverse is
// folded into Fr (and, in the backward, applied to GR once summed), since the inverse transforms never scale.
// Spectra reuse: dense_conv2d_fft_keep_spectra also returns every sample's Fi and Fr, which autograd saves
// (its version counters catch an in-place change of an input) and dense_conv2d_fft_backward_spectra
// takes instead of transforming them again (9 of the backward's 38 transforms per sample at the user's
// shape). When it is used, and what it was measured to save: dense_conv/_algorithm.py.
// Transform size (fft_plan in csrc/shapes.h, shared with the CUDA path): Hi + Hq - 1 rows so that no
// causal output row aliases, rounded up to a 2,3,5-smooth number (even along the real-FFT axis).
// The backward is the exact adjoint: zero-pad, circular correlation, crop. Only one sample's spectra
// exist at a time per thread (no B x Ci x Cr spectrum is ever materialised).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/complex.h>
#include <torch/library.h>

#include <algorithm>

#include "../checks.h"
#include "fft_common.h"
#include "huge_pages.h"
#include "../nonfinite.h"
#include "row_kernels.h"

namespace dc {
namespace {

using at::Tensor;
using namespace fft;

// The bin loops are inlined into entry points compiled for several instruction sets (DC_ISA_FUNCTION,
// row_kernels.h), as in fft_mix.cpp.
#define DC_INLINE __attribute__((always_inline)) inline

// P[i][r][k] = A[i][k] * R[r][k]
template <class T>
DC_INLINE void multiply_all_pairs(const c10::complex<T>* A, const c10::complex<T>* R, c10::complex<T>* P, int64_t Ci,
                        int64_t Cr, int64_t K) {
  const T* a = reinterpret_cast<const T*>(A);
  const T* rr = reinterpret_cast<const T*>(R);
  T* p = reinterpret_cast<T*>(P);
  for (int64_t i = 0; i < Ci; ++i)
    for (int64_t r = 0; r < Cr; ++r) {
      const T* x = a + 2 * i * K;
      const T* y = rr + 2 * r * K;
      T* o = p + 2 * (i * Cr + r) * K;
#pragma omp simd
      for (int64_t k = 0; k < K; ++k) {
        const T xr = x[2 * k], xi = x[2 * k + 1], yr = y[2 * k], yi = y[2 * k + 1];
        o[2 * k] = xr * yr - xi * yi;
        o[2 * k + 1] = xr * yi + xi * yr;
      }
    }
}

// GI[i][k] = sum_r G[i][r][k] * conj(R[r][k]);  GR[r][k] = sum_i G[i][r][k] * conj(A[i][k])
// over bins [0, m) of planes spaced K bins apart
template <class T>
DC_INLINE void correlate_sums(const c10::complex<T>* Gc, const c10::complex<T>* Ac, const c10::complex<T>* Rc,
                    c10::complex<T>* GIc, c10::complex<T>* GRc, int64_t Ci, int64_t Cr, int64_t m, int64_t K,
                    bool accumulate_gr = false) {
  const T* G = reinterpret_cast<const T*>(Gc);
  const T* A = reinterpret_cast<const T*>(Ac);
  const T* R = reinterpret_cast<const T*>(Rc);
  T* GI = reinterpret_cast<T*>(GIc);
  T* GR = reinterpret_cast<T*>(GRc);
  for (int64_t i = 0; i < Ci; ++i) std::fill(GI + 2 * i * K, GI + 2 * (i * K + m), T(0));
  if (!accumulate_gr)
    for (int64_t r = 0; r < Cr; ++r) std::fill(GR + 2 * r * K, GR + 2 * (r * K + m), T(0));
  for (int64_t i = 0; i < Ci; ++i)
    for (int64_t r = 0; r < Cr; ++r) {
      const T* g = G + 2 * (i * Cr + r) * K;
      const T* a = A + 2 * i * K;
      const T* w = R + 2 * r * K;
      T* gi = GI + 2 * i * K;
      T* gr = GR + 2 * r * K;
#pragma omp simd
      for (int64_t k = 0; k < m; ++k) {
        const T g_re = g[2 * k], g_im = g[2 * k + 1];
        gi[2 * k] += g_re * w[2 * k] + g_im * w[2 * k + 1];
        gi[2 * k + 1] += g_im * w[2 * k] - g_re * w[2 * k + 1];
        gr[2 * k] += g_re * a[2 * k] + g_im * a[2 * k + 1];
        gr[2 * k + 1] += g_im * a[2 * k] - g_re * a[2 * k + 1];
      }
    }
}

// Entry points, one per dtype and instruction set (DC_ISA_FUNCTION, row_kernels.h).
#define DC_CONV_ENTRY_POINTS(T)                                                                                  \
  DC_ISA_FUNCTION(void, multiply_pairs,                                                                         \
                  (const c10::complex<T>* A, const c10::complex<T>* R, c10::complex<T>* P, int64_t Cr, int64_t K), \
                  (A, R, P, Cr, K), { multiply_all_pairs<T>(A, R, P, 1, Cr, K); })                              \
  DC_ISA_FUNCTION(void, correlate,                                                                              \
                  (const c10::complex<T>* G, const c10::complex<T>* A, const c10::complex<T>* R,                \
                   c10::complex<T>* GI, c10::complex<T>* GR, int64_t Cr, int64_t K, bool accumulate_gr),         \
                  (G, A, R, GI, GR, Cr, K, accumulate_gr),                                                      \
                  { correlate_sums<T>(G, A, R, GI, GR, 1, Cr, K, K, accumulate_gr); })
DC_CONV_ENTRY_POINTS(float)
DC_CONV_ENTRY_POINTS(double)
#undef DC_CONV_ENTRY_POINTS

void check_cpu_fft(const Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble,
              "dense_conv2d (algorithm='fft'): the CPU kernels take float32 or float64; ", name, " is ", t.scalar_type());
}

// The forward; when `kept` is given, each sample's spectra are written into it instead of the per-thread
// workspaces (degenerate shapes, which transform nothing, leave it zero).
Tensor fft_forward(const Tensor& response, const Tensor& impulse, KeptSpectra* kept) {
  const ConvSizes s = check_forward(response, impulse, false);
  check_cpu_fft(impulse, "impulse");
  Tensor out = at::empty({s.B, s.Ci * s.Cr, s.Hi, s.Wi}, impulse.options());
  advise_huge_pages(out);
  const FftPlan f = fft_plan(s);
  if (kept != nullptr) *kept = empty_kept_spectra(s, f, impulse);
  if (out.numel() == 0 || s.Hr == 0 || s.Wr == 0) {
    if (kept != nullptr) {
      kept->impulse.zero_();
      kept->response.zero_();
    }
    return out.zero_();
  }
  const Tensor resp = response.narrow(2, 0, f.Hq).narrow(3, 0, f.Wq);
  const int64_t Wh = f.W / 2 + 1, K = Wh * f.H;
  AT_DISPATCH_FLOATING_TYPES(impulse.scalar_type(), "dense_conv2d_fft_cpu", [&] {
    using C = c10::complex<scalar_t>;
    const ColumnFft<scalar_t> columns(f.H, /*inverse=*/false), inverse_columns(f.H, /*inverse=*/true);
    const auto run = [&](int64_t begin, int64_t end) {
      // Plain tensor math on this thread (grad mode is per thread): no graph, and out= variants
      // accept inputs that require grad.
      at::NoGradGuard no_grad;
      const auto copt = impulse.options().dtype(c10::toComplexType(impulse.scalar_type()));
      // One impulse channel's Cr products at a time: P is Cr planes (1.5 MB at the user's shape), so the
      // product, the inverse transform and the crop work on cached data.
      Tensor& P = workspace(kCrSpectra, {s.Cr, f.H, Wh}, copt);
      for (int64_t b = begin; b < end; ++b) {
        Tensor A = kept != nullptr ? kept->impulse[b] : workspace(kImpulseSpectra, {s.Ci, f.H, Wh}, copt);
        Tensor R = kept != nullptr ? kept->response[b] : workspace(kResponseSpectra, {s.Cr, f.H, Wh}, copt);
        forward_2d<scalar_t>(impulse[b], columns, f.W, /*scaled=*/false, kImpulseIn, A);
        forward_2d<scalar_t>(resp[b], columns, f.W, /*scaled=*/true, kResponseIn, R);
        TORCH_INTERNAL_ASSERT(A.is_contiguous() && R.is_contiguous());
        for (int64_t i = 0; i < s.Ci; ++i) {
          multiply_pairs(A.const_data_ptr<C>() + i * K, R.const_data_ptr<C>(), P.data_ptr<C>(), s.Cr, K);
          const Tensor& y = inverse_2d<scalar_t>(P, inverse_columns, s.Hi, f.W, kOut);  // [Cr, Hi, W]
          out[b].narrow(0, i * s.Cr, s.Cr).copy_(y.narrow(2, 0, s.Wi));
        }
      }
    };
    run_samples(s.B, run);
  });
  exact_nonfinite_forward(out, response, impulse);
  return out;
}

Tensor dense_fft_forward_cpu(const Tensor& response, const Tensor& impulse) {
  return fft_forward(response, impulse, nullptr);
}

std::tuple<Tensor, Tensor, Tensor> dense_fft_forward_keep_spectra_cpu(const Tensor& response,
                                                                      const Tensor& impulse) {
  KeptSpectra kept;
  Tensor out = fft_forward(response, impulse, &kept);
  return {out, kept.impulse, kept.response};
}

// The backward; with `kept` (the forward's spectra) the impulse and response are not transformed again.
// Either way the response spectrum carries the 1/(H W) and GR is scaled after the sum, so both give
// bitwise the same gradients.
std::tuple<Tensor, Tensor> fft_backward(const Tensor& grad_out, const Tensor& response, const Tensor& impulse,
                                        const KeptSpectra* kept) {
  const ConvSizes s = check_backward(grad_out, response, "response", response.sizes(), impulse.sizes(), false);
  check_same_device_dtype(grad_out, "grad_out", impulse, "impulse", op_name(false));
  check_cpu_fft(grad_out, "grad_out");
  const FftPlan f = fft_plan(s);
  if (kept != nullptr) check_kept_spectra(*kept, s, f, grad_out, op_name(false));
  Tensor grad_response = at::zeros(response.sizes(), grad_out.options());
  Tensor grad_impulse = at::empty(impulse.sizes(), grad_out.options());
  advise_huge_pages(grad_impulse);
  if (grad_impulse.numel() == 0 || grad_response.numel() == 0) return {grad_response, grad_impulse.zero_()};
  // grad_out is read through its strides (an expanded grad_out is never materialised).
  const Tensor resp = response.narrow(2, 0, f.Hq).narrow(3, 0, f.Wq);
  const int64_t Wh = f.W / 2 + 1, K = Wh * f.H;
  AT_DISPATCH_FLOATING_TYPES(grad_out.scalar_type(), "dense_conv2d_fft_backward_cpu", [&] {
    using C = c10::complex<scalar_t>;
    const ColumnFft<scalar_t> columns(f.H, /*inverse=*/false), inverse_columns(f.H, /*inverse=*/true);
    const scalar_t scale = static_cast<scalar_t>(1.0 / static_cast<double>(f.H * f.W));
    const auto run = [&](int64_t begin, int64_t end) {
      at::NoGradGuard no_grad;
      const auto copt = grad_out.options().dtype(c10::toComplexType(grad_out.scalar_type()));
      // One impulse channel's Cr planes of grad_out at a time (as in the forward): G is Cr planes.
      Tensor& G = workspace(kCrSpectra, {s.Cr, f.H, Wh}, copt);
      Tensor& GI = workspace(kGradImpulseSpectra, {s.Ci, f.H, Wh}, copt);
      Tensor& GR = workspace(kGradResponseSpectra, {s.Cr, f.H, Wh}, copt);
      for (int64_t b = begin; b < end; ++b) {
        Tensor A, R;
        if (kept != nullptr) {
          A = kept->impulse[b];
          R = kept->response[b];
        } else {
          A = workspace(kImpulseSpectra, {s.Ci, f.H, Wh}, copt);
          R = workspace(kResponseSpectra, {s.Cr, f.H, Wh}, copt);
          forward_2d<scalar_t>(impulse[b], columns, f.W, /*scaled=*/false, kImpulseIn, A);
          forward_2d<scalar_t>(resp[b], columns, f.W, /*scaled=*/true, kResponseIn, R);
        }
        TORCH_INTERNAL_ASSERT(A.is_contiguous() && R.is_contiguous() && G.is_contiguous());
        for (int64_t i = 0; i < s.Ci; ++i) {
          forward_2d<scalar_t>(grad_out[b].narrow(0, i * s.Cr, s.Cr), columns, f.W, /*scaled=*/false, kGradIn,
                               G);
          correlate(G.const_data_ptr<C>(), A.const_data_ptr<C>() + i * K, R.const_data_ptr<C>(),
                    GI.data_ptr<C>() + i * K, GR.data_ptr<C>(), s.Cr, K, i > 0);
        }
        GR.mul_(scale);  // GI has the 1/(H W) from R; GR = sum G conj(A) gets it here
        grad_impulse[b].copy_(
            inverse_2d<scalar_t>(GI, inverse_columns, s.Hi, f.W, kGradImpulseOut).narrow(2, 0, s.Wi));
        grad_response[b].narrow(1, 0, f.Hq).narrow(2, 0, f.Wq).copy_(
            inverse_2d<scalar_t>(GR, inverse_columns, f.Hq, f.W, kGradResponseOut).narrow(2, 0, f.Wq));
      }
    };
    run_samples(s.B, run);
  });
  exact_nonfinite_grad_impulse(grad_impulse, grad_out, response);
  exact_nonfinite_grad_response(grad_response, grad_out, impulse);
  return {grad_response, grad_impulse};
}

std::tuple<Tensor, Tensor> dense_fft_backward_cpu(const Tensor& grad_out, const Tensor& response,
                                                  const Tensor& impulse) {
  return fft_backward(grad_out, response, impulse, nullptr);
}

std::tuple<Tensor, Tensor> dense_fft_backward_spectra_cpu(const Tensor& grad_out, const Tensor& response,
                                                          const Tensor& impulse, const Tensor& impulse_spectra,
                                                          const Tensor& response_spectra) {
  const KeptSpectra kept{impulse_spectra, response_spectra};
  return fft_backward(grad_out, response, impulse, &kept);
}

}  // namespace

TORCH_LIBRARY_IMPL(dense_conv, CPU, m) {
  m.impl("dense_conv2d_fft", &dense_fft_forward_cpu);
  m.impl("dense_conv2d_fft_backward", &dense_fft_backward_cpu);
  m.impl("dense_conv2d_fft_keep_spectra", &dense_fft_forward_keep_spectra_cpu);
  m.impl("dense_conv2d_fft_backward_spectra", &dense_fft_backward_spectra_cpu);
}

}  // namespace dc
