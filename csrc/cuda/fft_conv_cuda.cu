// FFT algorithm of dense_conv2d on CUDA (sparse_conv2d uses it through [B*C, 1, ...] views, from Python).
//
// Same transforms and scaling as the CPU path (csrc/cpu/fft_conv.cpp), batched over chunks of samples:
//   A = rfft2(impulse chunk), R = rfft2(response chunk cropped to Hq x Wq) / (H W)   (fft_cuda_common.h)
//   forward:  P[b, i*Cr + r] = A[b, i] * R[b, r]   (fft_conv_kernels.cuh), out = the Hi x Wi corner of the
//             unscaled inverse of P (inverse_rows)
//   backward: G = rfft2(grad_out chunk); GI[b, i] = sum_r G[b, i*Cr+r] conj(R[b, r]) (scaled through R),
//             GR[b, r] = sum_i G[b, i*Cr+r] conj(A[b, i]) times 1/(H W) (one fused kernel); grad_impulse = the
//             Hi x Wi corner of GI's inverse, grad_response[:Hq, :Wq] = the Hq x Wq corner of GR's (pruned when
//             Hq < H / 2: inverse_rows), zero beyond.
// Spectra reuse: dense_conv2d_fft_keep_spectra also returns A and R for the whole batch (the CPU op's layout and
// scaling, checks.h KeptSpectra), and dense_conv2d_fft_backward_spectra takes them instead of transforming the
// impulse and response again; dense_conv/_algorithm.py keep_fft_spectra decides when (a memory budget).
// Transforms run in float32 for float16 / bfloat16 / float32 inputs (float64 for float64); results are
// cast back when copied into the output. Sizes: fft_plan() in csrc/shapes.h (2,3,5-smooth, shared with the CPU).
// tests/test_cuda_emulated.py emulated_fft_conv mirrors this pipeline step by step (torch.fft on the CPU around
// the emulated kernels).
//
// Memory: the batch is walked in chunks whose largest intermediate (the Ci*Cr spectra P or G, or the
// Ci*Cr inverse transforms) holds at most max(the output, 256 MiB), and at least one sample
// (fft_cuda_common.h chunk_samples: fewer, larger chunks, measured faster). So no intermediate is larger than
// the output once the output exceeds 256 MiB; a single sample's spectra can still exceed its own output slice
// (up to ~4x when the response is as large as the image, ~8x for 16-bit outputs), since the transform is
// (Hi+Hq-1) x (Wi+Wq-1). Kept spectra are on top of that, for the whole batch (the budget bounds them).
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAException.h>
#include <torch/library.h>

#include <algorithm>

#include "../checks.h"
#include "fft_cuda_common.h"
#include "fft_conv_kernels.cuh"
#include "nonfinite_cuda.cuh"

namespace dc {
namespace {

using at::Tensor;
using namespace fft_cuda;

// The forward; when `kept` is given, the spectra of the whole batch are written into it (degenerate shapes, which
// transform nothing, leave it zero).
Tensor fft_forward(const Tensor& response, const Tensor& impulse, KeptSpectra* kept) {
  const ConvSizes s = check_forward(response, impulse, false);
  const c10::cuda::CUDAGuard guard(impulse.device());
  Tensor out = at::empty({s.B, s.Ci * s.Cr, s.Hi, s.Wi}, impulse.options());
  const FftPlan f = fft_plan(s);
  if (kept != nullptr) *kept = empty_kept_spectra(s, f, impulse);
  if (out.numel() == 0 || s.Hr == 0 || s.Wr == 0) {
    if (kept != nullptr) {
      kept->impulse.zero_();
      kept->response.zero_();
    }
    return out.zero_();
  }
  TORCH_CHECK(s.Ci <= 65535, "dense_conv2d (algorithm='fft'): at most 65535 impulse channels on CUDA, got ", s.Ci);
  const at::ScalarType real = fft_real_type(impulse.scalar_type());
  const Tensor resp = response.narrow(2, 0, f.Hq).narrow(3, 0, f.Wq);
  const int64_t Wf = f.W / 2 + 1, K = f.H * Wf;
  const int64_t elem = at::elementSize(real);
  const int64_t per_sample = s.Ci * s.Cr * std::max(2 * K, f.H * f.W) * elem;  // P, or its inverse transform
  const int64_t nb_max = chunk_samples(s.B, per_sample, out.numel() * out.element_size());
  const auto complex_options = impulse.options().dtype(c10::toComplexType(real));
  AT_DISPATCH_FLOATING_TYPES(real, "dense_conv2d_fft_cuda", [&] {
    for (int64_t b0 = 0; b0 < s.B; b0 += nb_max) {
      const int64_t nb = std::min(nb_max, s.B - b0);
      // A [nb, Ci, H, Wf], R [nb, Cr, H, Wf]
      const Tensor A = forward_spectra(impulse.narrow(0, b0, nb), f.H, f.W, /*scaled=*/false,
                                       kept != nullptr ? kept->impulse.narrow(0, b0, nb) : Tensor());
      const Tensor R = forward_spectra(resp.narrow(0, b0, nb), f.H, f.W, /*scaled=*/true,
                                       kept != nullptr ? kept->response.narrow(0, b0, nb) : Tensor());
      Tensor P = at::empty({nb, s.Ci * s.Cr, f.H, Wf}, complex_options);
      launch_fft_product<scalar_t>(interleaved<scalar_t>(A), interleaved<scalar_t>(R), interleaved_mut<scalar_t>(P),
                                   SpectrumShape{nb, s.Ci, s.Cr, K}, at::cuda::getCurrentCUDAStream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      out.narrow(0, b0, nb).copy_(inverse_rows(P, s.Hi, f.W).narrow(3, 0, s.Wi));  // [nb, Ci*Cr, Hi, W] cropped
    }
  });
  // NaN / inf: the flagged samples get the definition, on the device (nonfinite_cuda.cuh)
  const Tensor checksum = nonfinite_checksums(out, {response, impulse});
  if (checksum.defined()) {
    const Tensor resp_c = response.contiguous(), imp_c = impulse.contiguous();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, out.scalar_type(), "dense_conv2d_fft_cuda_nonfinite", [&] {
      launch_exact_dense_forward<scalar_t>(resp_c.data_ptr<scalar_t>(), imp_c.data_ptr<scalar_t>(),
                                           out.data_ptr<scalar_t>(), checksum_data<scalar_t>(checksum), s,
                                           at::cuda::getCurrentCUDAStream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return out;
}

Tensor dense_fft_forward_cuda(const Tensor& response, const Tensor& impulse) {
  return fft_forward(response, impulse, nullptr);
}

std::tuple<Tensor, Tensor, Tensor> dense_fft_forward_keep_spectra_cuda(const Tensor& response,
                                                                       const Tensor& impulse) {
  KeptSpectra kept;
  Tensor out = fft_forward(response, impulse, &kept);
  return {out, kept.impulse, kept.response};
}

// The backward; with `kept` (the forward's spectra) the impulse and response are not transformed again.
std::tuple<Tensor, Tensor> fft_backward(const Tensor& grad_out, const Tensor& response, const Tensor& impulse,
                                        const KeptSpectra* kept) {
  const ConvSizes s = check_backward(grad_out, response, "response", response.sizes(), impulse.sizes(), false);
  check_same_device_dtype(grad_out, "grad_out", impulse, "impulse", op_name(false));
  const FftPlan f = fft_plan(s);
  if (kept != nullptr) check_kept_spectra(*kept, s, f, grad_out, op_name(false));
  const c10::cuda::CUDAGuard guard(grad_out.device());
  Tensor grad_response = at::zeros(response.sizes(), grad_out.options());
  Tensor grad_impulse = at::empty(impulse.sizes(), grad_out.options());
  if (grad_impulse.numel() == 0 || grad_response.numel() == 0) return {grad_response, grad_impulse.zero_()};
  TORCH_CHECK(s.Ci <= 65535, "dense_conv2d (algorithm='fft'): at most 65535 impulse channels on CUDA, got ", s.Ci);
  const at::ScalarType real = fft_real_type(grad_out.scalar_type());
  const Tensor resp = response.narrow(2, 0, f.Hq).narrow(3, 0, f.Wq);
  const int64_t Wf = f.W / 2 + 1, K = f.H * Wf;
  const int64_t elem = at::elementSize(real);
  const int64_t per_sample = s.Ci * s.Cr * 2 * K * elem;  // G, the largest intermediate
  const int64_t nb_max = chunk_samples(s.B, per_sample, grad_out.numel() * grad_out.element_size());
  const auto complex_options = grad_out.options().dtype(c10::toComplexType(real));
  const double scale = 1.0 / static_cast<double>(f.H * f.W);
  AT_DISPATCH_FLOATING_TYPES(real, "dense_conv2d_fft_backward_cuda", [&] {
    for (int64_t b0 = 0; b0 < s.B; b0 += nb_max) {
      const int64_t nb = std::min(nb_max, s.B - b0);
      const Tensor A = kept != nullptr ? kept->impulse.narrow(0, b0, nb)
                                       : forward_spectra(impulse.narrow(0, b0, nb), f.H, f.W, /*scaled=*/false);
      const Tensor R = kept != nullptr ? kept->response.narrow(0, b0, nb)
                                       : forward_spectra(resp.narrow(0, b0, nb), f.H, f.W, /*scaled=*/true);
      const Tensor G = forward_spectra(grad_out.narrow(0, b0, nb), f.H, f.W, /*scaled=*/false);  // [nb, Ci*Cr, H, Wf]
      Tensor GI = at::empty({nb, s.Ci, f.H, Wf}, complex_options);
      Tensor GR = at::empty({nb, s.Cr, f.H, Wf}, complex_options);
      // GI has the 1/(H W) from R; GR = sum G conj(A) gets it as the kernel stores it
      launch_fft_correlate<scalar_t>(interleaved<scalar_t>(G), interleaved<scalar_t>(A), interleaved<scalar_t>(R),
                                     interleaved_mut<scalar_t>(GI), interleaved_mut<scalar_t>(GR), scale,
                                     SpectrumShape{nb, s.Ci, s.Cr, K}, at::cuda::getCurrentCUDAStream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      grad_impulse.narrow(0, b0, nb).copy_(inverse_rows(GI, s.Hi, f.W).narrow(3, 0, s.Wi));
      grad_response.narrow(0, b0, nb).narrow(2, 0, f.Hq).narrow(3, 0, f.Wq).copy_(
          inverse_rows(GR, f.Hq, f.W).narrow(3, 0, f.Wq));
    }
  });
  // NaN / inf: the flagged samples get the definition, on the device (nonfinite_cuda.cuh)
  const Tensor impulse_checksum = nonfinite_checksums(grad_impulse, {grad_out, response});
  const Tensor response_checksum = nonfinite_checksums(grad_response, {grad_out, impulse});
  if (impulse_checksum.defined() && response_checksum.defined()) {  // both, as the sizes are non-zero here
    const Tensor g_c = grad_out.contiguous(), resp_c = response.contiguous(), imp_c = impulse.contiguous();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_out.scalar_type(),
                                    "dense_conv2d_fft_backward_cuda_nonfinite", [&] {
      const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
      launch_exact_dense_grad_impulse<scalar_t>(g_c.data_ptr<scalar_t>(), resp_c.data_ptr<scalar_t>(),
                                                grad_impulse.data_ptr<scalar_t>(),
                                                checksum_data<scalar_t>(impulse_checksum), s, stream);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      launch_exact_dense_grad_response<scalar_t>(g_c.data_ptr<scalar_t>(), imp_c.data_ptr<scalar_t>(),
                                                 grad_response.data_ptr<scalar_t>(),
                                                 checksum_data<scalar_t>(response_checksum), s, stream);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return {grad_response, grad_impulse};
}

std::tuple<Tensor, Tensor> dense_fft_backward_cuda(const Tensor& grad_out, const Tensor& response,
                                                   const Tensor& impulse) {
  return fft_backward(grad_out, response, impulse, nullptr);
}

std::tuple<Tensor, Tensor> dense_fft_backward_spectra_cuda(const Tensor& grad_out, const Tensor& response,
                                                           const Tensor& impulse, const Tensor& impulse_spectra,
                                                           const Tensor& response_spectra) {
  const KeptSpectra kept{impulse_spectra, response_spectra};
  return fft_backward(grad_out, response, impulse, &kept);
}

}  // namespace

TORCH_LIBRARY_IMPL(dense_conv, CUDA, m) {
  m.impl("dense_conv2d_fft", &dense_fft_forward_cuda);
  m.impl("dense_conv2d_fft_backward", &dense_fft_backward_cuda);
  m.impl("dense_conv2d_fft_keep_spectra", &dense_fft_forward_keep_spectra_cuda);
  m.impl("dense_conv2d_fft_backward_spectra", &dense_fft_backward_spectra_cuda);
}

}  // namespace dc
