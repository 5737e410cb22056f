// Exact results for samples whose inputs hold a NaN or an infinity, on every backend and algorithm.
//
// The fast kernels multiply zero padding by response taps (direct: tap blocks, FFT: whole planes), so a
// non-finite tap or pixel reaches outputs the definition never lets it reach (0 * inf = NaN), and the
// FFT spreads one NaN over its whole plane. Rather than slowing every kernel down, each op checks each
// sample (one reduction) and recomputes the rare non-finite samples by the definition, over the causal
// window only (below: ATen ops, any device and floating dtype; on CUDA, nonfinite_kernels.cuh).
//
// Either the inputs or the result may be checked, whichever is smaller (the result, for the gradients):
// every kernel's sum holds all the terms of the definition (no value-dependent skips) plus products
// with zero padding, and the FFT turns a non-finite value into non-finite outputs over its whole plane.
// So a finite result of the kernels holds only finite terms and equals the definition; a sample with a
// non-finite input or result is recomputed (which may confirm its infinities).
//
// Each function overwrites the affected samples of `result` (a dense_conv2d layout: output [B, Ci*Cr,
// Hi, Wi], grad_impulse [B, Ci, Hi, Wi], grad_response [B, Cr, Hr, Wr]) and does nothing when the
// checked tensors are finite. These functions are the CPU ops' path (the flagged samples gathered on the
// host's side of the check). The CUDA ops keep the check on the device: nonfinite_checksums (or
// nonfinite_mix_checksums), then csrc/cuda/nonfinite_kernels.cuh's kernels, which recompute in place the
// samples whose checksum is non-finite (no host synchronisation, CUDA graph capture allowed).
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

namespace dc {

// The per-sample check, shared by both paths: checksums [B] (float; double for double tensors), the sum
// of each sample's slice [b] of `tensors`. A sum is non-finite whenever one of its terms is; finite
// values whose sum overflows only send a finite sample down the exact path (slower, still right).
// Undefined when B == 0 or every tensor is empty.
at::Tensor nonfinite_checksums(int64_t B, const std::vector<at::Tensor>& tensors);
// ... of `result` or of its `inputs`, whichever have fewer elements (see above).
at::Tensor nonfinite_checksums(const at::Tensor& result, const std::vector<at::Tensor>& inputs);

void exact_nonfinite_forward(at::Tensor& out, const at::Tensor& response, const at::Tensor& impulse);
void exact_nonfinite_grad_impulse(at::Tensor& grad_impulse, const at::Tensor& grad_out, const at::Tensor& response);
void exact_nonfinite_grad_response(at::Tensor& grad_response, const at::Tensor& grad_out, const at::Tensor& impulse);

// per_sample_conv2d (layouts: out [B, L, Hi, Wi], grad_impulse [B, Ci, Hi, Wi], grad_weight [B, L, Ci, Hr, Wr]).
void exact_nonfinite_per_sample_forward(at::Tensor& out, const at::Tensor& weight, const at::Tensor& impulse);
void exact_nonfinite_per_sample_grad_impulse(at::Tensor& grad_impulse, const at::Tensor& grad_out,
                                             const at::Tensor& weight);
void exact_nonfinite_per_sample_grad_weight(at::Tensor& grad_weight, const at::Tensor& grad_out,
                                            const at::Tensor& impulse);

// dense_mix_conv2d (weight [L, Ci, Cr]): out [B, L, Hi, Wi]; the backward's per-sample weight gradients
// grad_weight_per_sample [B, L, Ci, Cr] (summed over the batch by the caller). A sample is recomputed when
// its inputs or results are non-finite, every sample when the weight is: its checksum is
// nonfinite_checksums(B, tensors) plus the weight's sum (contiguous [B], the accumulation type of the weight's
// dtype; undefined when B == 0 or everything is empty). Both paths use it: below, and on CUDA
// nonfinite_kernels.cuh's launch_exact_mix_*.
at::Tensor nonfinite_mix_checksums(int64_t B, const std::vector<at::Tensor>& tensors, const at::Tensor& weight);
void exact_nonfinite_mix_forward(at::Tensor& out, const at::Tensor& response, const at::Tensor& impulse,
                                 const at::Tensor& weight);
void exact_nonfinite_mix_backward(at::Tensor& grad_response, at::Tensor& grad_impulse,
                                  at::Tensor& grad_weight_per_sample, const at::Tensor& grad_out,
                                  const at::Tensor& response, const at::Tensor& impulse, const at::Tensor& weight);

}  // namespace dc
