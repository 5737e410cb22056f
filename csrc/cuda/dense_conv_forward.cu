// CUDA implementation of the dense_conv2d forward op: argument checks, allocation, dtype dispatch, launch.
// The kernels live in dense_conv_kernels.cuh and dense_conv_wmma_kernels.cuh (tensor cores: float16 / bfloat16,
// and float32 when torch.backends.cuda.matmul.allow_tf32), no ATen, shared with the CPU emulator; the backward ops
// are in dense_conv_backward.cu, a separate translation unit so that nvcc compiles both in parallel.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAException.h>
#include <torch/library.h>

#include "../checks.h"
#include "dense_conv_wmma_kernels.cuh"
#include "nonfinite_cuda.cuh"

namespace dc {
namespace {

using at::Tensor;

// float32 through TF32 tensor cores when the user allows it for matmuls. The precision query, not the legacy
// allowTF32CuBLAS(): that one raises when the user has set the new fp32_precision API (torch >= 2.9), and
// this one answers for all three ways of asking (matmul.allow_tf32, fp32_precision, set_float32_matmul_precision).
bool tf32_allowed() {
  return at::globalContext().float32Precision(at::Float32Backend::CUDA, at::Float32Op::MATMUL) ==
         at::Float32Precision::TF32;
}

Tensor dense_forward_cuda(const Tensor& response, const Tensor& impulse) {
  const ConvSizes s = check_forward(response, impulse, false);
  const c10::cuda::CUDAGuard guard(impulse.device());
  Tensor out = at::empty({s.B, s.Ci * s.Cr, s.Hi, s.Wi}, impulse.options());
  if (out.numel() == 0) return out;
  if (s.Hr == 0 || s.Wr == 0) return out.zero_();
  const Tensor resp = response.contiguous(), imp = impulse.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, imp.scalar_type(), "dense_conv2d_cuda", [&] {
    launch_dense_forward_op<scalar_t>(resp.data_ptr<scalar_t>(), imp.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), s,
                                      tf32_allowed(), at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  if (nonfinite_check_allowed()) exact_nonfinite_forward(out, resp, imp);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(dense_conv, CUDA, m) { m.impl("dense_conv2d", &dense_forward_cuda); }

}  // namespace dc
