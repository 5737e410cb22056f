// FFT algorithm of dense_mix_conv2d on CUDA: the math of csrc/cpu/fft_mix.cpp, batched over chunks of samples,
// never forming the [B, Ci*Cr, H, W] planes of the dense conv:
//   X = rfft2(impulse chunk) [nb, Ci], Hs = rfft2(response chunk cropped to Hq x Wq) [nb, Cr]   (cuFFT via ATen)
//   forward:  Y = per-bin mix of X and Hs (fft_mix_kernels.cuh) [nb, L], out = crop(irfft2(Y))
//   backward: G = rfft2(grad_out chunk) [nb, L]; GX [nb, Ci], GH [nb, Cr] and the per-sample weight gradients
//             (float64, Parseval) from one kernel launch sequence; grad_impulse = crop(irfft2(GX)),
//             grad_response[:Hq, :Wq] = crop(irfft2(GH)), zero beyond; grad_weight = the per-sample gradients
//             summed over the batch (a fixed-order reduction: deterministic).
// Transforms run in float32 for float16 / bfloat16 / float32 inputs (float64 for float64), as dense_conv2d's;
// results are cast back when copied into the outputs. Chunks: fft_cuda::chunk_samples (fft_cuda_common.h), with
// every per-sample intermediate counted.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAException.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../checks.h"
#include "fft_cuda_common.h"
#include "fft_mix_kernels.cuh"
#include "nonfinite_cuda.cuh"

namespace dc {
namespace {

using at::Tensor;
using namespace fft_cuda;

Tensor mix_fft_forward_cuda(const Tensor& response, const Tensor& impulse, const Tensor& weight) {
  const MixSizes ms = check_mix_forward(response, impulse, weight);
  const ConvSizes& s = ms.conv;
  const int64_t L = ms.L;
  const c10::cuda::CUDAGuard guard(impulse.device());
  Tensor out = at::empty({s.B, L, s.Hi, s.Wi}, impulse.options());
  if (out.numel() == 0) return out;
  if (ms.output_is_zero()) return out.zero_();
  const FftPlan f = fft_plan(s);
  const at::ScalarType real = transform_type(impulse.scalar_type());
  const Tensor resp = response.narrow(2, 0, f.Hq).narrow(3, 0, f.Wq);
  const Tensor a = weight.to(real).contiguous();
  const std::vector<int64_t> size{f.H, f.W};
  const int64_t Wf = f.W / 2 + 1, K = f.H * Wf;
  // X, Hs and Y, then the L inverse transforms
  const int64_t per_sample = ((s.Ci + s.Cr + L) * 2 * K + L * f.H * f.W) * at::elementSize(real);
  const int64_t nb_max = chunk_samples(s.B, per_sample, out.numel() * out.element_size());
  const auto complex_options = impulse.options().dtype(c10::toComplexType(real));
  AT_DISPATCH_FLOATING_TYPES(real, "dense_mix_conv2d_fft_cuda", [&] {
    Tensor workspace = at::empty({fft_mix_forward_workspace_elements<scalar_t>(MixSpectra{1, L, s.Ci, s.Cr, f.H, f.W})},
                                 impulse.options().dtype(real));
    for (int64_t b0 = 0; b0 < s.B; b0 += nb_max) {
      const int64_t nb = std::min(nb_max, s.B - b0);
      const Tensor X = at::fft_rfft2(impulse.narrow(0, b0, nb).to(real), size).contiguous();  // [nb, Ci, H, Wf]
      const Tensor Hs = at::fft_rfft2(resp.narrow(0, b0, nb).to(real), size).contiguous();    // [nb, Cr, H, Wf]
      Tensor Y = at::empty({nb, L, f.H, Wf}, complex_options);
      launch_fft_mix_forward<scalar_t>(interleaved<scalar_t>(X), interleaved<scalar_t>(Hs),
                                       a.const_data_ptr<scalar_t>(), interleaved_mut<scalar_t>(Y),
                                       workspace.mutable_data_ptr<scalar_t>(), MixSpectra{nb, L, s.Ci, s.Cr, f.H, f.W},
                                       at::cuda::getCurrentCUDAStream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      out.narrow(0, b0, nb).copy_(at::fft_irfft2(Y, size).narrow(2, 0, s.Hi).narrow(3, 0, s.Wi));
    }
  });
  if (nonfinite_check_allowed()) exact_nonfinite_mix_forward(out, response, impulse, weight);
  return out;
}

std::tuple<Tensor, Tensor, Tensor> mix_fft_backward_cuda(const Tensor& grad_out, const Tensor& response,
                                                         const Tensor& impulse, const Tensor& weight) {
  const MixSizes ms = check_mix_backward(grad_out, response, impulse, weight);
  const ConvSizes& s = ms.conv;
  const int64_t L = ms.L;
  const c10::cuda::CUDAGuard guard(grad_out.device());
  Tensor grad_response = at::zeros(response.sizes(), grad_out.options());
  Tensor grad_impulse = at::empty(impulse.sizes(), grad_out.options());
  if (ms.gradients_are_zero())
    return {grad_response, grad_impulse.zero_(), at::zeros(weight.sizes(), grad_out.options())};
  const FftPlan f = fft_plan(s);
  const at::ScalarType real = transform_type(grad_out.scalar_type());
  const Tensor resp = response.narrow(2, 0, f.Hq).narrow(3, 0, f.Wq);
  const Tensor a = weight.to(real).contiguous();
  const std::vector<int64_t> size{f.H, f.W};
  const int64_t Wf = f.W / 2 + 1, K = f.H * Wf;
  const MixSpectra one_sample{1, L, s.Ci, s.Cr, f.H, f.W};
  // X, Hs, G, GX, GH, the Ci + Cr inverse transforms, the weight gradient's partial sums
  const int64_t per_sample = ((2 * (s.Ci + s.Cr) + L) * 2 * K + (s.Ci + s.Cr) * f.H * f.W) * at::elementSize(real) +
                             fft_mix_gw_workspace_elements(one_sample) * int64_t(sizeof(double));
  const int64_t nb_max = chunk_samples(s.B, per_sample, grad_out.numel() * grad_out.element_size());
  const auto complex_options = grad_out.options().dtype(c10::toComplexType(real));
  const auto double_options = grad_out.options().dtype(at::kDouble);
  Tensor grad_weight_per_sample = at::empty({s.B, L, s.Ci, s.Cr}, double_options);
  Tensor gw_workspace = at::empty({fft_mix_gw_workspace_elements(MixSpectra{nb_max, L, s.Ci, s.Cr, f.H, f.W})},
                                  double_options);
  const double parseval = 1.0 / static_cast<double>(f.H * f.W);
  AT_DISPATCH_FLOATING_TYPES(real, "dense_mix_conv2d_fft_backward_cuda", [&] {
    Tensor workspace = at::empty({fft_mix_backward_workspace_elements<scalar_t>(one_sample)},
                                 grad_out.options().dtype(real));
    for (int64_t b0 = 0; b0 < s.B; b0 += nb_max) {
      const int64_t nb = std::min(nb_max, s.B - b0);
      const Tensor X = at::fft_rfft2(impulse.narrow(0, b0, nb).to(real), size).contiguous();   // [nb, Ci, H, Wf]
      const Tensor Hs = at::fft_rfft2(resp.narrow(0, b0, nb).to(real), size).contiguous();     // [nb, Cr, H, Wf]
      const Tensor G = at::fft_rfft2(grad_out.narrow(0, b0, nb).to(real), size).contiguous();  // [nb, L, H, Wf]
      Tensor GX = at::empty({nb, s.Ci, f.H, Wf}, complex_options);
      Tensor GH = at::empty({nb, s.Cr, f.H, Wf}, complex_options);
      launch_fft_mix_backward<scalar_t>(
          interleaved<scalar_t>(X), interleaved<scalar_t>(Hs), interleaved<scalar_t>(G), a.const_data_ptr<scalar_t>(),
          interleaved_mut<scalar_t>(GX), interleaved_mut<scalar_t>(GH),
          grad_weight_per_sample.narrow(0, b0, nb).mutable_data_ptr<double>(), workspace.mutable_data_ptr<scalar_t>(),
          gw_workspace.mutable_data_ptr<double>(), parseval, MixSpectra{nb, L, s.Ci, s.Cr, f.H, f.W},
          at::cuda::getCurrentCUDAStream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      grad_impulse.narrow(0, b0, nb).copy_(at::fft_irfft2(GX, size).narrow(2, 0, s.Hi).narrow(3, 0, s.Wi));
      grad_response.narrow(0, b0, nb).narrow(2, 0, f.Hq).narrow(3, 0, f.Wq).copy_(
          at::fft_irfft2(GH, size).narrow(2, 0, f.Hq).narrow(3, 0, f.Wq));
    }
  });
  if (nonfinite_check_allowed())
    exact_nonfinite_mix_backward(grad_response, grad_impulse, grad_weight_per_sample, grad_out, response, impulse,
                                 weight);
  // A reduction kernel of fixed shape sums in a fixed order (no atomics): the same bits on every run.
  const Tensor grad_weight = grad_weight_per_sample.sum(0).to(grad_out.scalar_type());
  return {grad_response, grad_impulse, grad_weight};
}

}  // namespace

TORCH_LIBRARY_IMPL(dense_conv, CUDA, m) {
  m.impl("dense_mix_conv2d_fft", &mix_fft_forward_cuda);
  m.impl("dense_mix_conv2d_fft_backward", &mix_fft_backward_cuda);
}

}  // namespace dc
