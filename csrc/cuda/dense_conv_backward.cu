// CUDA implementations of the dense_conv2d backward ops (grad_impulse, grad_response): argument checks,
// allocation, dtype dispatch, launch. The kernels live in dense_conv_kernels.cuh (no ATen), shared with
// the CPU emulator.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAException.h>
#include <torch/library.h>

#include "../checks.h"
#include "dense_conv_kernels.cuh"
#include "nonfinite_cuda.cuh"

namespace dc {
namespace {

using at::Tensor;

Tensor dense_grad_impulse_cuda(const Tensor& grad_out, const Tensor& response, at::IntArrayRef impulse_shape) {
  const ConvSizes s = check_backward(grad_out, response, "response", response.sizes(), impulse_shape, false);
  const c10::cuda::CUDAGuard guard(grad_out.device());
  Tensor grad_impulse = at::empty({s.B, s.Ci, s.Hi, s.Wi}, grad_out.options());
  if (grad_impulse.numel() == 0) return grad_impulse;
  if (s.Cr == 0 || s.Hr == 0 || s.Wr == 0) return grad_impulse.zero_();
  const Tensor g = grad_out.contiguous(), resp = response.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "dense_conv2d_grad_impulse_cuda", [&] {
    launch_dense_grad_impulse<scalar_t>(g.data_ptr<scalar_t>(), resp.data_ptr<scalar_t>(),
                                        grad_impulse.data_ptr<scalar_t>(), s, at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    // NaN / inf: the flagged samples get the definition, on the device (nonfinite_cuda.cuh)
    const Tensor checksum = nonfinite_checksums(grad_impulse, {g, resp});
    if (checksum.defined()) {
      launch_exact_dense_grad_impulse<scalar_t>(g.data_ptr<scalar_t>(), resp.data_ptr<scalar_t>(),
                                                grad_impulse.data_ptr<scalar_t>(), checksum_data<scalar_t>(checksum), s,
                                                at::cuda::getCurrentCUDAStream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return grad_impulse;
}

Tensor dense_grad_response_cuda(const Tensor& grad_out, const Tensor& impulse, at::IntArrayRef response_shape) {
  const ConvSizes s = check_backward(grad_out, impulse, "impulse", response_shape, impulse.sizes(), false);
  const c10::cuda::CUDAGuard guard(grad_out.device());
  Tensor grad_response = at::empty({s.B, s.Cr, s.Hr, s.Wr}, grad_out.options());
  if (grad_response.numel() == 0) return grad_response;
  if (s.Ci == 0 || s.Hi == 0 || s.Wi == 0) return grad_response.zero_();
  const Tensor g = grad_out.contiguous(), imp = impulse.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "dense_conv2d_grad_response_cuda", [&] {
    // Per-slab partial sums, allocated through the caching allocator on the current stream.
    Tensor workspace = at::empty({(int64_t)dense_grad_response_workspace_bytes<scalar_t>(s)},
                                 g.options().dtype(at::kByte));
    launch_dense_grad_response<scalar_t>(g.data_ptr<scalar_t>(), imp.data_ptr<scalar_t>(),
                                         grad_response.data_ptr<scalar_t>(), workspace.data_ptr(), s,
                                         at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const Tensor checksum = nonfinite_checksums(grad_response, {g, imp});
    if (checksum.defined()) {
      launch_exact_dense_grad_response<scalar_t>(g.data_ptr<scalar_t>(), imp.data_ptr<scalar_t>(),
                                                 grad_response.data_ptr<scalar_t>(), checksum_data<scalar_t>(checksum),
                                                 s, at::cuda::getCurrentCUDAStream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return grad_response;
}

}  // namespace

TORCH_LIBRARY_IMPL(dense_conv, CUDA, m) {
  m.impl("dense_conv2d_grad_impulse", &dense_grad_impulse_cuda);
  m.impl("dense_conv2d_grad_response", &dense_grad_response_cuda);
}

}  // namespace dc
