// FFT algorithm of dense_mix_conv2d on CUDA: the math and scaling of csrc/cpu/fft_mix.cpp, batched over chunks of
// samples, never forming the [B, Ci*Cr, H, W] planes of the dense conv:
//   X = rfft2(impulse chunk) [nb, Ci], Hs = rfft2(response chunk cropped to Hq x Wq) / (H W) [nb, Cr]
//   (fft_cuda_common.h forward_spectra; Hs carries the 1/(H W) of the inverse transforms and of Parseval)
//   forward:  Y = per-bin mix of X and Hs (fft_mix_kernels.cuh) [nb, L], out = the Hi x Wi corner of Y's unscaled
//             inverse (inverse_rows)
//   backward: G = rfft2(grad_out chunk) [nb, L]; GX [nb, Ci] (scaled through Hs), GH [nb, Cr] (times 1/(H W)
//             as the kernel stores it) and the per-sample weight gradients (float64, Parseval through Hs) from one
//             kernel launch sequence; grad_impulse = the Hi x Wi corner of GX's inverse, grad_response[:Hq, :Wq] = the
//             Hq x Wq corner of GH's (pruned when Hq < H / 2), zero beyond; grad_weight = the per-sample gradients
//             summed over the batch (a fixed-order reduction: deterministic).
// The weights are laid out for the mix kernels once per call, not per chunk. Spectra reuse: the *_keep_spectra op
// returns X and Hs for the whole batch (checks.h KeptSpectra, the CPU op's layout and scaling), and the
// *_backward_spectra op takes them instead of transforming the impulse and response again.
// Transforms run in float32 for float16 / bfloat16 / float32 inputs (float64 for float64), as dense_conv2d's;
// results are cast back when copied into the outputs. Chunks: fft_cuda::chunk_samples (fft_cuda_common.h), with
// every per-sample intermediate counted. tests/test_cuda_emulated_mix_fft.py emulated_mix_fft mirrors this
// pipeline step by step (torch.fft on the CPU around the emulated kernels). Samples holding NaN / inf get the
// definition on the device (nonfinite_cuda.cuh): no host synchronisation.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAException.h>
#include <torch/library.h>

#include <algorithm>

#include "../checks.h"
#include "fft_cuda_common.h"
#include "fft_mix_kernels.cuh"
#include "nonfinite_cuda.cuh"

namespace dc {
namespace {

using at::Tensor;
using namespace fft_cuda;

// The forward; when `kept` is given, the spectra of the whole batch are written into it (degenerate shapes, which
// transform nothing, leave it zero).
Tensor mix_fft_forward(const Tensor& response, const Tensor& impulse, const Tensor& weight, KeptSpectra* kept) {
  const MixSizes ms = check_mix_forward(response, impulse, weight);
  const ConvSizes& s = ms.conv;
  const int64_t L = ms.L;
  const c10::cuda::CUDAGuard guard(impulse.device());
  Tensor out = at::empty({s.B, L, s.Hi, s.Wi}, impulse.options());
  const FftPlan f = fft_plan(s);
  if (kept != nullptr) *kept = empty_kept_spectra(s, f, impulse);
  if (out.numel() == 0 || ms.output_is_zero()) {
    if (kept != nullptr) {
      kept->impulse.zero_();
      kept->response.zero_();
    }
    return out.zero_();
  }
  const at::ScalarType real = fft_real_type(impulse.scalar_type());
  const Tensor resp = response.narrow(2, 0, f.Hq).narrow(3, 0, f.Wq);
  const Tensor a = weight.to(real).contiguous();
  const int64_t Wf = f.W / 2 + 1, K = f.H * Wf;
  // X, Hs and Y, then the L inverse transforms
  const int64_t per_sample = ((s.Ci + s.Cr + L) * 2 * K + L * f.H * f.W) * at::elementSize(real);
  const int64_t nb_max = chunk_samples(s.B, per_sample, out.numel() * out.element_size());
  const auto complex_options = impulse.options().dtype(c10::toComplexType(real));
  AT_DISPATCH_FLOATING_TYPES(real, "dense_mix_conv2d_fft_cuda", [&] {
    const MixSpectra one_sample{1, L, s.Ci, s.Cr, f.H, f.W};
    Tensor workspace = at::empty({fft_mix_forward_workspace_elements<scalar_t>(one_sample)},
                                 impulse.options().dtype(real));
    launch_fft_mix_forward_weights<scalar_t>(a.const_data_ptr<scalar_t>(), workspace.mutable_data_ptr<scalar_t>(),
                                             one_sample, at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    for (int64_t b0 = 0; b0 < s.B; b0 += nb_max) {
      const int64_t nb = std::min(nb_max, s.B - b0);
      // X [nb, Ci, H, Wf], Hs [nb, Cr, H, Wf]
      const Tensor X = forward_spectra(impulse.narrow(0, b0, nb), f.H, f.W, /*scaled=*/false,
                                       kept != nullptr ? kept->impulse.narrow(0, b0, nb) : Tensor());
      const Tensor Hs = forward_spectra(resp.narrow(0, b0, nb), f.H, f.W, /*scaled=*/true,
                                        kept != nullptr ? kept->response.narrow(0, b0, nb) : Tensor());
      Tensor Y = at::empty({nb, L, f.H, Wf}, complex_options);
      launch_fft_mix_forward<scalar_t>(interleaved<scalar_t>(X), interleaved<scalar_t>(Hs),
                                       workspace.const_data_ptr<scalar_t>(), interleaved_mut<scalar_t>(Y),
                                       MixSpectra{nb, L, s.Ci, s.Cr, f.H, f.W}, at::cuda::getCurrentCUDAStream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      out.narrow(0, b0, nb).copy_(inverse_rows(Y, s.Hi, f.W).narrow(3, 0, s.Wi));
    }
  });
  // NaN / inf: the flagged samples get the definition, on the device (nonfinite_cuda.cuh); the checked tensors of
  // exact_nonfinite_mix_forward
  const Tensor checksum = nonfinite_mix_checksums(s.B, {response, impulse, out}, weight);
  if (checksum.defined()) {
    const Tensor resp_c = response.contiguous(), imp_c = impulse.contiguous(), w_c = weight.contiguous();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "dense_mix_conv2d_fft_cuda_nonfinite",
                                    [&] {
      launch_exact_mix_forward<scalar_t>(resp_c.data_ptr<scalar_t>(), imp_c.data_ptr<scalar_t>(),
                                         w_c.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                                         checksum_data<scalar_t>(checksum), s, L,
                                         at::cuda::getCurrentCUDAStream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return out;
}

Tensor mix_fft_forward_cuda(const Tensor& response, const Tensor& impulse, const Tensor& weight) {
  return mix_fft_forward(response, impulse, weight, nullptr);
}

std::tuple<Tensor, Tensor, Tensor> mix_fft_forward_keep_spectra_cuda(const Tensor& response, const Tensor& impulse,
                                                                     const Tensor& weight) {
  KeptSpectra kept;
  Tensor out = mix_fft_forward(response, impulse, weight, &kept);
  return {out, kept.impulse, kept.response};
}

// The backward; with `kept` (the forward's spectra) the impulse and response are not transformed again.
std::tuple<Tensor, Tensor, Tensor> mix_fft_backward(const Tensor& grad_out, const Tensor& response,
                                                    const Tensor& impulse, const Tensor& weight,
                                                    const KeptSpectra* kept) {
  const MixSizes ms = check_mix_backward(grad_out, response, impulse, weight);
  const ConvSizes& s = ms.conv;
  const int64_t L = ms.L;
  const FftPlan f = fft_plan(s);
  if (kept != nullptr) check_kept_spectra(*kept, s, f, grad_out, "dense_mix_conv2d");
  const c10::cuda::CUDAGuard guard(grad_out.device());
  Tensor grad_response = at::zeros(response.sizes(), grad_out.options());
  Tensor grad_impulse = at::empty(impulse.sizes(), grad_out.options());
  if (ms.gradients_are_zero())
    return {grad_response, grad_impulse.zero_(), at::zeros(weight.sizes(), grad_out.options())};
  const at::ScalarType real = fft_real_type(grad_out.scalar_type());
  const Tensor resp = response.narrow(2, 0, f.Hq).narrow(3, 0, f.Wq);
  const Tensor a = weight.to(real).contiguous();
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
  const double scale = 1.0 / static_cast<double>(f.H * f.W);
  AT_DISPATCH_FLOATING_TYPES(real, "dense_mix_conv2d_fft_backward_cuda", [&] {
    Tensor workspace = at::empty({fft_mix_backward_workspace_elements<scalar_t>(one_sample)},
                                 grad_out.options().dtype(real));
    launch_fft_mix_backward_weights<scalar_t>(a.const_data_ptr<scalar_t>(), workspace.mutable_data_ptr<scalar_t>(),
                                              one_sample, at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    for (int64_t b0 = 0; b0 < s.B; b0 += nb_max) {
      const int64_t nb = std::min(nb_max, s.B - b0);
      const Tensor X = kept != nullptr ? kept->impulse.narrow(0, b0, nb)
                                       : forward_spectra(impulse.narrow(0, b0, nb), f.H, f.W, /*scaled=*/false);
      const Tensor Hs = kept != nullptr ? kept->response.narrow(0, b0, nb)
                                        : forward_spectra(resp.narrow(0, b0, nb), f.H, f.W, /*scaled=*/true);
      const Tensor G = forward_spectra(grad_out.narrow(0, b0, nb), f.H, f.W, /*scaled=*/false);  // [nb, L, H, Wf]
      Tensor GX = at::empty({nb, s.Ci, f.H, Wf}, complex_options);
      Tensor GH = at::empty({nb, s.Cr, f.H, Wf}, complex_options);
      // Parseval's 1/(H W) is in Hs (the weight gradients' scale is 1), and so is GX's; GH = sum a conj(X) G gets
      // it as the mix kernel stores it
      launch_fft_mix_backward<scalar_t>(
          interleaved<scalar_t>(X), interleaved<scalar_t>(Hs), interleaved<scalar_t>(G),
          workspace.const_data_ptr<scalar_t>(), interleaved_mut<scalar_t>(GX), interleaved_mut<scalar_t>(GH),
          grad_weight_per_sample.narrow(0, b0, nb).mutable_data_ptr<double>(), gw_workspace.mutable_data_ptr<double>(),
          1.0, scale, MixSpectra{nb, L, s.Ci, s.Cr, f.H, f.W}, at::cuda::getCurrentCUDAStream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      grad_impulse.narrow(0, b0, nb).copy_(inverse_rows(GX, s.Hi, f.W).narrow(3, 0, s.Wi));
      grad_response.narrow(0, b0, nb).narrow(2, 0, f.Hq).narrow(3, 0, f.Wq).copy_(
          inverse_rows(GH, f.Hq, f.W).narrow(3, 0, f.Wq));
    }
  });
  // NaN / inf: as the forward, with exact_nonfinite_mix_backward's checked tensors (one checksum for the three
  // gradients)
  const Tensor checksum = nonfinite_mix_checksums(
      s.B, {grad_out, response, impulse, grad_response, grad_impulse, grad_weight_per_sample}, weight);
  if (checksum.defined()) {
    const Tensor g_c = grad_out.contiguous(), resp_c = response.contiguous(), imp_c = impulse.contiguous(),
                 w_c = weight.contiguous();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_out.scalar_type(),
                                    "dense_mix_conv2d_fft_backward_cuda_nonfinite", [&] {
      launch_exact_mix_backward<scalar_t>(g_c.data_ptr<scalar_t>(), resp_c.data_ptr<scalar_t>(),
                                          imp_c.data_ptr<scalar_t>(), w_c.data_ptr<scalar_t>(),
                                          grad_response.data_ptr<scalar_t>(), grad_impulse.data_ptr<scalar_t>(),
                                          grad_weight_per_sample.data_ptr<double>(), checksum_data<scalar_t>(checksum),
                                          s, L, at::cuda::getCurrentCUDAStream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  // A reduction kernel of fixed shape sums in a fixed order (no atomics): the same bits on every run.
  const Tensor grad_weight = grad_weight_per_sample.sum(0).to(grad_out.scalar_type());
  return {grad_response, grad_impulse, grad_weight};
}

std::tuple<Tensor, Tensor, Tensor> mix_fft_backward_cuda(const Tensor& grad_out, const Tensor& response,
                                                         const Tensor& impulse, const Tensor& weight) {
  return mix_fft_backward(grad_out, response, impulse, weight, nullptr);
}

std::tuple<Tensor, Tensor, Tensor> mix_fft_backward_spectra_cuda(const Tensor& grad_out, const Tensor& response,
                                                                 const Tensor& impulse, const Tensor& weight,
                                                                 const Tensor& impulse_spectra,
                                                                 const Tensor& response_spectra) {
  const KeptSpectra kept{impulse_spectra, response_spectra};
  return mix_fft_backward(grad_out, response, impulse, weight, &kept);
}

}  // namespace

TORCH_LIBRARY_IMPL(dense_conv, CUDA, m) {
  m.impl("dense_mix_conv2d_fft", &mix_fft_forward_cuda);
  m.impl("dense_mix_conv2d_fft_backward", &mix_fft_backward_cuda);
  m.impl("dense_mix_conv2d_fft_keep_spectra", &mix_fft_forward_keep_spectra_cuda);
  m.impl("dense_mix_conv2d_fft_backward_spectra", &mix_fft_backward_spectra_cuda);
}

}  // namespace dc
