// FFT algorithm of dense_conv2d on CPU (sparse_conv2d uses it through [B*C, 1, ...] views).
//
// Per sample b (samples run in parallel, each pipeline single-threaded and cache-sized):
//   Fi = rfft2(impulse[b]), Fr = rfft2(response[b] cropped to the taps that reach the image)   (once each)
//   forward:  P[i, r] = Fi[i] * Fr[r]                     (fused kernel below), out[b] = crop(irfft2(P))
//   backward: G = rfft2(grad_out[b]); GI[i] = sum_r G[i, r] * conj(Fr[r]), GR[r] = sum_i G[i, r] * conj(Fi[i])
//             (one fused pass), grad_impulse[b] = crop(irfft2(GI)), grad_response[b] = crop(irfft2(GR)).
// Transform size: a linear convolution of Hi and Hq rows needs Hi + Hq - 1 rows so that no causal
// output row aliases; the size is rounded up to a 2,3,5-smooth number (even along the real-FFT axis).
// The backward is the exact adjoint: zero-pad, circular correlation, crop. Only one sample's spectra
// exist at a time per thread (no B x Ci x Cr spectrum is ever materialised).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/complex.h>
#include <torch/library.h>

#include <algorithm>

#include "../conv_checks.h"

namespace dc {
namespace {

using at::Tensor;

int64_t next_smooth(int64_t n, bool even) {
  for (int64_t m = std::max<int64_t>(1, n);; ++m) {
    if (even && m % 2 != 0 && m > 1) continue;
    int64_t k = m;
    for (int64_t f : {2, 3, 5})
      while (k % f == 0) k /= f;
    if (k == 1) return m;
  }
}

struct FftPlan {
  int64_t Hq, Wq, H, W;
};

FftPlan fft_plan(const ConvSizes& s) {
  const int64_t Hq = std::min(s.Hr, s.Hi), Wq = std::min(s.Wr, s.Wi);
  return {Hq, Wq, next_smooth(s.Hi + Hq - 1, false), next_smooth(s.Wi + Wq - 1, true)};
}

// P[i][r][k] = A[i][k] * R[r][k]
template <class T>
void multiply_all_pairs(const c10::complex<T>* A, const c10::complex<T>* R, c10::complex<T>* P, int64_t Ci,
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
template <class T>
void correlate_sums(const c10::complex<T>* Gc, const c10::complex<T>* Ac, const c10::complex<T>* Rc,
                    c10::complex<T>* GIc, c10::complex<T>* GRc, int64_t Ci, int64_t Cr, int64_t K) {
  const T* G = reinterpret_cast<const T*>(Gc);
  const T* A = reinterpret_cast<const T*>(Ac);
  const T* R = reinterpret_cast<const T*>(Rc);
  T* GI = reinterpret_cast<T*>(GIc);
  T* GR = reinterpret_cast<T*>(GRc);
  std::fill(GI, GI + 2 * Ci * K, T(0));
  std::fill(GR, GR + 2 * Cr * K, T(0));
  for (int64_t i = 0; i < Ci; ++i)
    for (int64_t r = 0; r < Cr; ++r) {
      const T* g = G + 2 * (i * Cr + r) * K;
      const T* a = A + 2 * i * K;
      const T* w = R + 2 * r * K;
      T* gi = GI + 2 * i * K;
      T* gr = GR + 2 * r * K;
#pragma omp simd
      for (int64_t k = 0; k < K; ++k) {
        const T g_re = g[2 * k], g_im = g[2 * k + 1];
        gi[2 * k] += g_re * w[2 * k] + g_im * w[2 * k + 1];
        gi[2 * k + 1] += g_im * w[2 * k] - g_re * w[2 * k + 1];
        gr[2 * k] += g_re * a[2 * k] + g_im * a[2 * k + 1];
        gr[2 * k + 1] += g_im * a[2 * k] - g_re * a[2 * k + 1];
      }
    }
}

void check_cpu_fft(const Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble,
              "dense_conv2d (algorithm='fft'): the CPU kernels take float32 or float64; ", name, " is ", t.scalar_type());
}

Tensor dense_fft_forward_cpu(const Tensor& response, const Tensor& impulse) {
  const ConvSizes s = check_forward(response, impulse, false);
  check_cpu_fft(impulse, "impulse");
  Tensor out = at::empty({s.B, s.Ci * s.Cr, s.Hi, s.Wi}, impulse.options());
  if (out.numel() == 0) return out;
  if (s.Hr == 0 || s.Wr == 0) return out.zero_();
  const FftPlan f = fft_plan(s);
  const Tensor resp = response.narrow(2, 0, f.Hq).narrow(3, 0, f.Wq).contiguous(), imp = impulse.contiguous();
  const std::vector<int64_t> size{f.H, f.W};
  const int64_t K = f.H * (f.W / 2 + 1);
  AT_DISPATCH_FLOATING_TYPES(imp.scalar_type(), "dense_conv2d_fft_cpu", [&] {
    using C = c10::complex<scalar_t>;
    at::parallel_for(0, s.B, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const Tensor A = at::fft_rfft2(imp[b], size).contiguous();   // [Ci, H, W/2+1]
        const Tensor R = at::fft_rfft2(resp[b], size).contiguous();  // [Cr, H, W/2+1]
        Tensor P = at::empty({s.Ci * s.Cr, f.H, f.W / 2 + 1}, A.options());
        multiply_all_pairs<scalar_t>(A.const_data_ptr<C>(), R.const_data_ptr<C>(), P.data_ptr<C>(), s.Ci, s.Cr, K);
        out[b].copy_(at::fft_irfft2(P, size).narrow(1, 0, s.Hi).narrow(2, 0, s.Wi));
      }
    });
  });
  return out;
}

std::tuple<Tensor, Tensor> dense_fft_backward_cpu(const Tensor& grad_out, const Tensor& response,
                                                  const Tensor& impulse) {
  const ConvSizes s = check_backward(grad_out, response, "response", response.sizes(), impulse.sizes(), false);
  check_same_device_dtype(grad_out, "grad_out", impulse, "impulse", false);
  check_cpu_fft(grad_out, "grad_out");
  Tensor grad_response = at::zeros(response.sizes(), grad_out.options());
  Tensor grad_impulse = at::empty(impulse.sizes(), grad_out.options());
  if (grad_impulse.numel() == 0 || grad_response.numel() == 0) return {grad_response, grad_impulse.zero_()};
  const FftPlan f = fft_plan(s);
  const Tensor resp = response.narrow(2, 0, f.Hq).narrow(3, 0, f.Wq).contiguous(), imp = impulse.contiguous();
  const Tensor g = grad_out.contiguous();
  const std::vector<int64_t> size{f.H, f.W};
  const int64_t K = f.H * (f.W / 2 + 1);
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "dense_conv2d_fft_backward_cpu", [&] {
    using C = c10::complex<scalar_t>;
    at::parallel_for(0, s.B, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        const Tensor A = at::fft_rfft2(imp[b], size).contiguous();
        const Tensor R = at::fft_rfft2(resp[b], size).contiguous();
        const Tensor G = at::fft_rfft2(g[b], size).contiguous();  // [Ci*Cr, H, W/2+1]
        Tensor GI = at::empty({s.Ci, f.H, f.W / 2 + 1}, A.options());
        Tensor GR = at::empty({s.Cr, f.H, f.W / 2 + 1}, A.options());
        correlate_sums<scalar_t>(G.const_data_ptr<C>(), A.const_data_ptr<C>(), R.const_data_ptr<C>(), GI.data_ptr<C>(),
                                 GR.data_ptr<C>(), s.Ci, s.Cr, K);
        grad_impulse[b].copy_(at::fft_irfft2(GI, size).narrow(1, 0, s.Hi).narrow(2, 0, s.Wi));
        grad_response[b].narrow(1, 0, f.Hq).narrow(2, 0, f.Wq).copy_(
            at::fft_irfft2(GR, size).narrow(1, 0, f.Hq).narrow(2, 0, f.Wq));
      }
    });
  });
  return {grad_response, grad_impulse};
}

}  // namespace

TORCH_LIBRARY_IMPL(dense_conv, CPU, m) {
  m.impl("dense_conv2d_fft", &dense_fft_forward_cpu);
  m.impl("dense_conv2d_fft_backward", &dense_fft_backward_cpu);
}

}  // namespace dc
