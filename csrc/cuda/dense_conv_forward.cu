// CUDA implementation of the dense_conv2d forward op: argument checks, allocation, dtype dispatch, launch.
// The kernels live in dense_conv_kernels.cuh and dense_conv_wmma_kernels.cuh (tensor cores: float16 / bfloat16;
// its TF32 variant is not dispatched, see kUseTf32), no ATen, shared with the CPU emulator; the backward ops
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

// float32 never goes through the TF32 tensor-core kernel, even when float32 matmuls may use TF32: measured on an
// H200 at the user's shape it took 3.68 ms against the float32 kernel's 1.95 ms (docs/gpu_measured/). The TF32
// instantiation stays compiled and emulator-tested (launch_dense_forward_op's allow_tf32, the harness) for a GPU
// where it measures faster.
constexpr bool kUseTf32 = false;

Tensor dense_forward_cuda(const Tensor& response, const Tensor& impulse) {
  const ConvSizes s = check_forward(response, impulse, false);
  const c10::cuda::CUDAGuard guard(impulse.device());
  Tensor out = at::empty({s.B, s.Ci * s.Cr, s.Hi, s.Wi}, impulse.options());
  if (out.numel() == 0) return out;
  if (s.Hr == 0 || s.Wr == 0) return out.zero_();
  const Tensor resp = response.contiguous(), imp = impulse.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, imp.scalar_type(), "dense_conv2d_cuda", [&] {
    launch_dense_forward_op<scalar_t>(resp.data_ptr<scalar_t>(), imp.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), s,
                                      kUseTf32, at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    // NaN / inf: the flagged samples get the definition, on the device (nonfinite_cuda.cuh)
    const Tensor checksum = nonfinite_checksums(out, {resp, imp});
    if (checksum.defined()) {
      launch_exact_dense_forward<scalar_t>(resp.data_ptr<scalar_t>(), imp.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                                           checksum_data<scalar_t>(checksum), s, at::cuda::getCurrentCUDAStream());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(dense_conv, CUDA, m) { m.impl("dense_conv2d", &dense_forward_cuda); }

}  // namespace dc
