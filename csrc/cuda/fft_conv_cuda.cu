// FFT algorithm of dense_conv2d on CUDA (sparse_conv2d uses it through [B*C, 1, ...] views, from Python).
//
// Same transforms as the CPU path (csrc/cpu/fft_conv.cpp), batched over chunks of samples:
//   A = rfft2(impulse chunk), R = rfft2(response chunk cropped to Hq x Wq)       (cuFFT through ATen)
//   forward:  P[b, i*Cr + r] = A[b, i] * R[b, r]   (fft_conv_kernels.cuh), out = crop(irfft2(P))
//   backward: G = rfft2(grad_out chunk); GI[b, i] = sum_r G[b, i*Cr+r] conj(R[b, r]),
//             GR[b, r] = sum_i G[b, i*Cr+r] conj(A[b, i])  (one fused kernel),
//             grad_impulse = crop(irfft2(GI)), grad_response[:Hq, :Wq] = crop(irfft2(GR)), zero beyond.
// Transforms run in float32 for float16 / bfloat16 / float32 inputs (float64 for float64); results are
// cast back when copied into the output. Sizes: fft_plan() in csrc/shapes.h (2,3,5-smooth, shared with the CPU).
//
// Memory: the batch is walked in chunks whose largest intermediate (the Ci*Cr spectra P or G, or the
// Ci*Cr inverse transforms) holds at most max(1/4 of the output, 64 MiB), and at least one sample. So
// no intermediate is larger than about a quarter of the output once the output exceeds 256 MiB; a
// single sample's spectra can still exceed its own output slice (up to ~4x when the response is as
// large as the image, ~8x for 16-bit outputs), since the transform is (Hi+Hq-1) x (Wi+Wq-1).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAException.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../checks.h"
#include "fft_cuda_common.h"
#include "fft_conv_kernels.cuh"
#include "nonfinite_cuda.cuh"

namespace dc {
namespace {

using at::Tensor;
using namespace fft_cuda;

Tensor dense_fft_forward_cuda(const Tensor& response, const Tensor& impulse) {
  const ConvSizes s = check_forward(response, impulse, false);
  const c10::cuda::CUDAGuard guard(impulse.device());
  Tensor out = at::empty({s.B, s.Ci * s.Cr, s.Hi, s.Wi}, impulse.options());
  if (out.numel() == 0) return out;
  if (s.Hr == 0 || s.Wr == 0) return out.zero_();
  TORCH_CHECK(s.Ci <= 65535, "dense_conv2d (algorithm='fft'): at most 65535 impulse channels on CUDA, got ", s.Ci);
  const FftPlan f = fft_plan(s);
  const at::ScalarType real = transform_type(impulse.scalar_type());
  const Tensor resp = response.narrow(2, 0, f.Hq).narrow(3, 0, f.Wq);
  const std::vector<int64_t> size{f.H, f.W};
  const int64_t Wf = f.W / 2 + 1, K = f.H * Wf;
  const int64_t elem = at::elementSize(real);
  const int64_t per_sample = s.Ci * s.Cr * std::max(2 * K, f.H * f.W) * elem;  // P, or its inverse transform
  const int64_t nb_max = chunk_samples(s.B, per_sample, out.numel() * out.element_size());
  const auto complex_options = impulse.options().dtype(c10::toComplexType(real));
  AT_DISPATCH_FLOATING_TYPES(real, "dense_conv2d_fft_cuda", [&] {
    for (int64_t b0 = 0; b0 < s.B; b0 += nb_max) {
      const int64_t nb = std::min(nb_max, s.B - b0);
      const Tensor A = at::fft_rfft2(impulse.narrow(0, b0, nb).to(real), size).contiguous();  // [nb, Ci, H, Wf]
      const Tensor R = at::fft_rfft2(resp.narrow(0, b0, nb).to(real), size).contiguous();     // [nb, Cr, H, Wf]
      Tensor P = at::empty({nb, s.Ci * s.Cr, f.H, Wf}, complex_options);
      launch_fft_product<scalar_t>(interleaved<scalar_t>(A), interleaved<scalar_t>(R), interleaved_mut<scalar_t>(P),
                                   SpectrumShape{nb, s.Ci, s.Cr, K}, at::cuda::getCurrentCUDAStream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      const Tensor Y = at::fft_irfft2(P, size);  // [nb, Ci*Cr, H, W]
      out.narrow(0, b0, nb).copy_(Y.narrow(2, 0, s.Hi).narrow(3, 0, s.Wi));
    }
  });
  if (nonfinite_check_allowed()) exact_nonfinite_forward(out, response, impulse);
  return out;
}

std::tuple<Tensor, Tensor> dense_fft_backward_cuda(const Tensor& grad_out, const Tensor& response,
                                                   const Tensor& impulse) {
  const ConvSizes s = check_backward(grad_out, response, "response", response.sizes(), impulse.sizes(), false);
  check_same_device_dtype(grad_out, "grad_out", impulse, "impulse", op_name(false));
  const c10::cuda::CUDAGuard guard(grad_out.device());
  Tensor grad_response = at::zeros(response.sizes(), grad_out.options());
  Tensor grad_impulse = at::empty(impulse.sizes(), grad_out.options());
  if (grad_impulse.numel() == 0 || grad_response.numel() == 0) return {grad_response, grad_impulse.zero_()};
  TORCH_CHECK(s.Ci <= 65535, "dense_conv2d (algorithm='fft'): at most 65535 impulse channels on CUDA, got ", s.Ci);
  const FftPlan f = fft_plan(s);
  const at::ScalarType real = transform_type(grad_out.scalar_type());
  const Tensor resp = response.narrow(2, 0, f.Hq).narrow(3, 0, f.Wq);
  const std::vector<int64_t> size{f.H, f.W};
  const int64_t Wf = f.W / 2 + 1, K = f.H * Wf;
  const int64_t elem = at::elementSize(real);
  const int64_t per_sample = s.Ci * s.Cr * 2 * K * elem;  // G, the largest intermediate
  const int64_t nb_max = chunk_samples(s.B, per_sample, grad_out.numel() * grad_out.element_size());
  const auto complex_options = grad_out.options().dtype(c10::toComplexType(real));
  AT_DISPATCH_FLOATING_TYPES(real, "dense_conv2d_fft_backward_cuda", [&] {
    for (int64_t b0 = 0; b0 < s.B; b0 += nb_max) {
      const int64_t nb = std::min(nb_max, s.B - b0);
      const Tensor A = at::fft_rfft2(impulse.narrow(0, b0, nb).to(real), size).contiguous();  // [nb, Ci, H, Wf]
      const Tensor R = at::fft_rfft2(resp.narrow(0, b0, nb).to(real), size).contiguous();     // [nb, Cr, H, Wf]
      const Tensor G = at::fft_rfft2(grad_out.narrow(0, b0, nb).to(real), size).contiguous();  // [nb, Ci*Cr, H, Wf]
      Tensor GI = at::empty({nb, s.Ci, f.H, Wf}, complex_options);
      Tensor GR = at::empty({nb, s.Cr, f.H, Wf}, complex_options);
      launch_fft_correlate<scalar_t>(interleaved<scalar_t>(G), interleaved<scalar_t>(A), interleaved<scalar_t>(R),
                                     interleaved_mut<scalar_t>(GI), interleaved_mut<scalar_t>(GR),
                                     SpectrumShape{nb, s.Ci, s.Cr, K}, at::cuda::getCurrentCUDAStream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      const Tensor YI = at::fft_irfft2(GI, size);  // [nb, Ci, H, W]
      const Tensor YR = at::fft_irfft2(GR, size);  // [nb, Cr, H, W]
      grad_impulse.narrow(0, b0, nb).copy_(YI.narrow(2, 0, s.Hi).narrow(3, 0, s.Wi));
      grad_response.narrow(0, b0, nb).narrow(2, 0, f.Hq).narrow(3, 0, f.Wq).copy_(
          YR.narrow(2, 0, f.Hq).narrow(3, 0, f.Wq));
    }
  });
  if (nonfinite_check_allowed()) {
    exact_nonfinite_grad_impulse(grad_impulse, grad_out, response);
    exact_nonfinite_grad_response(grad_response, grad_out, impulse);
  }
  return {grad_response, grad_impulse};
}

}  // namespace

TORCH_LIBRARY_IMPL(dense_conv, CUDA, m) {
  m.impl("dense_conv2d_fft", &dense_fft_forward_cuda);
  m.impl("dense_conv2d_fft_backward", &dense_fft_backward_cuda);
}

}  // namespace dc
