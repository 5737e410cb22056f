// CUDA implementation of the per_sample_conv2d ops (forward, grad_impulse, grad_weight): argument checks,
// allocation, dtype dispatch, launch. The kernels live in per_sample_conv_kernels.cuh (no ATen), shared
// with the CPU emulator.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAException.h>
#include <torch/library.h>

#include "../checks.h"
#include "nonfinite_cuda.cuh"
#include "per_sample_conv_kernels.cuh"

namespace dc {
namespace {

using at::Tensor;

Tensor per_sample_forward_cuda(const Tensor& weight, const Tensor& impulse) {
  const PerSampleSizes s = check_per_sample_forward(weight, impulse);
  const c10::cuda::CUDAGuard guard(impulse.device());
  Tensor out = at::empty({s.B, s.L, s.Hi, s.Wi}, impulse.options());
  if (out.numel() == 0) return out;
  if (s.Ci == 0 || s.Hr == 0 || s.Wr == 0) return out.zero_();
  const Tensor w = weight.contiguous(), imp = impulse.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, imp.scalar_type(), "per_sample_conv2d_cuda", [&] {
    launch_per_sample_forward<scalar_t>(w.data_ptr<scalar_t>(), imp.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                                        s, at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    // NaN / inf: the flagged samples get the definition, on the device (nonfinite_cuda.cuh)
    const Tensor checksum = nonfinite_checksums(out, {w, imp});
    if (checksum.defined()) {
      launch_exact_per_sample_forward<scalar_t>(w.data_ptr<scalar_t>(), imp.data_ptr<scalar_t>(),
                                                out.data_ptr<scalar_t>(), checksum_data<scalar_t>(checksum), s,
                                                at::cuda::getCurrentCUDAStream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return out;
}

Tensor per_sample_grad_impulse_cuda(const Tensor& grad_out, const Tensor& weight, at::IntArrayRef impulse_shape) {
  const PerSampleSizes s = check_per_sample_backward(grad_out, weight, "weight", weight.sizes(), impulse_shape);
  const c10::cuda::CUDAGuard guard(grad_out.device());
  Tensor grad_impulse = at::empty({s.B, s.Ci, s.Hi, s.Wi}, grad_out.options());
  if (grad_impulse.numel() == 0) return grad_impulse;
  if (s.L == 0 || s.Hr == 0 || s.Wr == 0) return grad_impulse.zero_();
  const Tensor g = grad_out.contiguous(), w = weight.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "per_sample_conv2d_grad_impulse_cuda",
                                  [&] {
    launch_per_sample_grad_impulse<scalar_t>(g.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
                                             grad_impulse.data_ptr<scalar_t>(), s, at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const Tensor checksum = nonfinite_checksums(grad_impulse, {g, w});
    if (checksum.defined()) {
      launch_exact_per_sample_grad_impulse<scalar_t>(g.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
                                                     grad_impulse.data_ptr<scalar_t>(),
                                                     checksum_data<scalar_t>(checksum), s,
                                                     at::cuda::getCurrentCUDAStream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return grad_impulse;
}

Tensor per_sample_grad_weight_cuda(const Tensor& grad_out, const Tensor& impulse, at::IntArrayRef weight_shape) {
  const PerSampleSizes s = check_per_sample_backward(grad_out, impulse, "impulse", weight_shape, impulse.sizes());
  const c10::cuda::CUDAGuard guard(grad_out.device());
  Tensor grad_weight = at::empty({s.B, s.L, s.Ci, s.Hr, s.Wr}, grad_out.options());
  if (grad_weight.numel() == 0) return grad_weight;
  if (s.Hi == 0 || s.Wi == 0) return grad_weight.zero_();
  const Tensor g = grad_out.contiguous(), imp = impulse.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "per_sample_conv2d_grad_weight_cuda",
                                  [&] {
    // Per-slab partial sums, allocated through the caching allocator on the current stream.
    Tensor workspace = at::empty({(int64_t)per_sample_grad_weight_workspace_bytes<scalar_t>(s)},
                                 g.options().dtype(at::kByte));
    launch_per_sample_grad_weight<scalar_t>(g.data_ptr<scalar_t>(), imp.data_ptr<scalar_t>(),
                                            grad_weight.data_ptr<scalar_t>(), workspace.data_ptr(), s,
                                            at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const Tensor checksum = nonfinite_checksums(grad_weight, {g, imp});
    if (checksum.defined()) {
      launch_exact_per_sample_grad_weight<scalar_t>(g.data_ptr<scalar_t>(), imp.data_ptr<scalar_t>(),
                                                    grad_weight.data_ptr<scalar_t>(),
                                                    checksum_data<scalar_t>(checksum), s,
                                                    at::cuda::getCurrentCUDAStream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return grad_weight;
}

}  // namespace

TORCH_LIBRARY_IMPL(dense_conv, CUDA, m) {
  m.impl("per_sample_conv2d", &per_sample_forward_cuda);
  m.impl("per_sample_conv2d_grad_impulse", &per_sample_grad_impulse_cuda);
  m.impl("per_sample_conv2d_grad_weight", &per_sample_grad_weight_cuda);
}

}  // namespace dc
