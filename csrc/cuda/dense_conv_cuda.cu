// CUDA implementations of the dense_conv2d ops: argument checks, allocation, dtype dispatch, launch.
// The kernels themselves live in dense_conv_kernels.cuh (no ATen), shared with the CPU emulator.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAException.h>
#include <torch/library.h>

#include <limits>

#include "../checks.h"
#include "dense_conv_kernels.cuh"

namespace dc {
namespace {

using at::Tensor;

ConvShape to_shape(const ConvSizes& s) { return {s.B, s.Ci, s.Cr, s.Hi, s.Wi, s.Hr, s.Wr}; }

void check_cuda(const Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), "dense_conv2d: ", name, " must be a CUDA tensor here, got ", t.device());
}

void check_grid(const LaunchConfig& cfg, const char* what) {
  TORCH_CHECK(cfg.grid.x >= 1 && cfg.grid.x <= (unsigned)std::numeric_limits<int>::max(), "dense_conv2d: ", what,
              " needs more blocks than one launch can hold; split the batch");
}

Tensor dense_forward_cuda(const Tensor& response, const Tensor& impulse) {
  const ConvSizes s = check_forward(response, impulse, false);
  check_cuda(impulse, "impulse");
  const c10::cuda::CUDAGuard guard(impulse.device());
  Tensor out = at::empty({s.B, s.Ci * s.Cr, s.Hi, s.Wi}, impulse.options());
  if (out.numel() == 0) return out;
  if (s.Hr == 0 || s.Wr == 0) return out.zero_();
  const Tensor resp = response.contiguous(), imp = impulse.contiguous();
  const ConvShape shape = to_shape(s);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, imp.scalar_type(), "dense_conv2d_cuda", [&] {
    check_grid(dense_forward_config<scalar_t>(shape), "the forward");
    launch_dense_forward<scalar_t>(resp.data_ptr<scalar_t>(), imp.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                                   shape, at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

Tensor dense_grad_impulse_cuda(const Tensor& grad_out, const Tensor& response, at::IntArrayRef impulse_shape) {
  const ConvSizes s = check_backward(grad_out, response, "response", response.sizes(), impulse_shape, false);
  check_cuda(grad_out, "grad_out");
  const c10::cuda::CUDAGuard guard(grad_out.device());
  Tensor grad_impulse = at::empty({s.B, s.Ci, s.Hi, s.Wi}, grad_out.options());
  if (grad_impulse.numel() == 0) return grad_impulse;
  if (s.Cr == 0 || s.Hr == 0 || s.Wr == 0) return grad_impulse.zero_();
  const Tensor g = grad_out.contiguous(), resp = response.contiguous();
  const ConvShape shape = to_shape(s);
  check_grid(dense_grad_impulse_config<float>(shape), "grad_impulse");
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "dense_conv2d_grad_impulse_cuda", [&] {
    launch_dense_grad_impulse<scalar_t>(g.data_ptr<scalar_t>(), resp.data_ptr<scalar_t>(),
                                        grad_impulse.data_ptr<scalar_t>(), shape, at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_impulse;
}

Tensor dense_grad_response_cuda(const Tensor& grad_out, const Tensor& impulse, at::IntArrayRef response_shape) {
  const ConvSizes s = check_backward(grad_out, impulse, "impulse", response_shape, impulse.sizes(), false);
  check_cuda(grad_out, "grad_out");
  const c10::cuda::CUDAGuard guard(grad_out.device());
  Tensor grad_response = at::empty({s.B, s.Cr, s.Hr, s.Wr}, grad_out.options());
  if (grad_response.numel() == 0) return grad_response;
  if (s.Ci == 0 || s.Hi == 0 || s.Wi == 0) return grad_response.zero_();
  const Tensor g = grad_out.contiguous(), imp = impulse.contiguous();
  const ConvShape shape = to_shape(s);
  check_grid(dense_grad_response_partial_config<float>(shape, grad_response_plan(shape)), "grad_response");
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "dense_conv2d_grad_response_cuda", [&] {
    // Per-slab partial sums, allocated through the caching allocator on the current stream.
    Tensor workspace = at::empty({(int64_t)dense_grad_response_workspace_bytes<scalar_t>(shape)},
                                 g.options().dtype(at::kByte));
    launch_dense_grad_response<scalar_t>(g.data_ptr<scalar_t>(), imp.data_ptr<scalar_t>(),
                                         grad_response.data_ptr<scalar_t>(), workspace.data_ptr(), shape,
                                         at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return grad_response;
}

}  // namespace

TORCH_LIBRARY_IMPL(dense_conv, CUDA, m) {
  m.impl("dense_conv2d", &dense_forward_cuda);
  m.impl("dense_conv2d_grad_impulse", &dense_grad_impulse_cuda);
  m.impl("dense_conv2d_grad_response", &dense_grad_response_cuda);
}

}  // namespace dc
