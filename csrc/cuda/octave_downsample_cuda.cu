// CUDA implementations of the octave_downsample ops: checks, allocation, dtype dispatch, launch.
// The kernels live in octave_downsample_kernels.cuh (no ATen), shared with the CPU emulator.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAException.h>
#include <torch/library.h>

#include "../checks.h"
#include "octave_downsample_kernels.cuh"

namespace dc {
namespace {

using at::Tensor;

OctaveProblem problem(const OctaveSizes& s) { return {s.rows, s.taps, s.lv}; }

// Workspace of `n` accumulators (AccType) for the kernels of dtype scalar_t.
template <typename scalar_t>
Tensor acc_workspace(int64_t n, const Tensor& like) {
  return at::empty({n}, like.options().dtype(c10::CppTypeToScalarType<typename AccType<scalar_t>::type>::value));
}

Tensor octave_downsample_cuda(const Tensor& x_in, const Tensor& filter_in, int64_t levels) {
  check_octave_tensors(x_in, filter_in);
  const OctaveSizes s = octave_sizes(x_in.sizes(), filter_in.numel(), levels);
  const c10::cuda::CUDAGuard guard(x_in.device());
  Tensor out = at::empty(with_last(x_in.sizes(), s.lv.total), x_in.options());
  if (out.numel() == 0) return out;
  const Tensor x = x_in.contiguous(), filter = filter_in.contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "octave_downsample_cuda", [&] {
    launch_octave_forward<scalar_t>(x.data_ptr<scalar_t>(), filter.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                                    problem(s), at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

Tensor octave_downsample_grad_input_cuda(const Tensor& grad_in, const Tensor& filter_in, int64_t length,
                                         int64_t levels) {
  check_octave_tensors(grad_in, filter_in, "grad");
  const OctaveSizes s = octave_sizes(with_last(grad_in.sizes(), length), filter_in.numel(), levels);
  TORCH_CHECK(grad_in.size(-1) == s.lv.total, "octave_downsample_grad_input: grad has ", grad_in.size(-1),
              " samples, expected ", s.lv.total, " for length ", length, " and ", levels, " levels");
  const c10::cuda::CUDAGuard guard(grad_in.device());
  Tensor gx = at::empty(with_last(grad_in.sizes(), length), grad_in.options());
  if (gx.numel() == 0) return gx;
  const Tensor g = grad_in.contiguous(), filter = filter_in.contiguous();
  const OctaveProblem p = problem(s);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "octave_downsample_grad_input_cuda", [&] {
    using acc_t = typename AccType<scalar_t>::type;
    Tensor work = acc_workspace<scalar_t>(oct::octave_chain_workspace(p), g);
    launch_octave_grad_input<scalar_t>(g.data_ptr<scalar_t>(), filter.data_ptr<scalar_t>(), gx.data_ptr<scalar_t>(),
                                       work.numel() ? work.data_ptr<acc_t>() : nullptr, p,
                                       at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return gx;
}

Tensor octave_downsample_grad_filter_cuda(const Tensor& grad_in, const Tensor& x_in, const Tensor& out_in,
                                          const Tensor& filter_in, int64_t levels) {
  const OctaveSizes s = check_octave_grad_filter(grad_in, x_in, out_in, filter_in, levels);
  const c10::cuda::CUDAGuard guard(grad_in.device());
  Tensor gf = at::zeros({s.taps}, filter_in.options());
  if (s.rows * s.T == 0) return gf;
  const Tensor g = grad_in.contiguous(), x = x_in.contiguous(), filter = filter_in.contiguous();
  const Tensor out = levels > 1 ? out_in.contiguous() : x;
  const OctaveProblem p = problem(s);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "octave_downsample_grad_filter_cuda", [&] {
    using acc_t = typename AccType<scalar_t>::type;
    Tensor work = acc_workspace<scalar_t>(oct::octave_chain_workspace(p), g);
    Tensor partial = acc_workspace<scalar_t>(oct::octave_filter_parts(p) * s.taps, g);
    launch_octave_grad_filter<scalar_t>(g.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                                        filter.data_ptr<scalar_t>(), gf.data_ptr<scalar_t>(),
                                        work.numel() ? work.data_ptr<acc_t>() : nullptr, partial.data_ptr<acc_t>(), p,
                                        at::cuda::getCurrentCUDAStream());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return gf;
}

}  // namespace

TORCH_LIBRARY_IMPL(dense_conv, CUDA, m) {
  m.impl("octave_downsample", &octave_downsample_cuda);
  m.impl("octave_downsample_grad_input", &octave_downsample_grad_input_cuda);
  m.impl("octave_downsample_grad_filter", &octave_downsample_grad_filter_cuda);
}

}  // namespace dc
