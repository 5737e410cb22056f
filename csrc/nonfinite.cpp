// See nonfinite.h. The definition, restricted to the samples that need it:
//   out[b, i*Cr+r, y, x]   = sum_{p<=y, q<=x} impulse[b, i, y-p, x-q] * response[b, r, p, q]
//   grad_impulse[b, i, y, x]  = sum_r sum_{p,q} g[b, i*Cr+r, y+p, x+q] * response[b, r, p, q]  (y+p<Hi, x+q<Wi)
//   grad_response[b, r, p, q] = sum_i sum_{y>=p, x>=q} g[b, i*Cr+r, y, x] * impulse[b, i, y-p, x-q]
//   per_sample_conv2d (weight [B, L, Ci, Hr, Wr]):
//   out[b, l, y, x]          = sum_i sum_{p<=y, q<=x} impulse[b, i, y-p, x-q] * weight[b, l, i, p, q]
//   grad_impulse[b, i, y, x] = sum_l sum_{p,q} g[b, l, y+p, x+q] * weight[b, l, i, p, q]  (y+p<Hi, x+q<Wi)
//   grad_weight[b, l, i, p, q] = sum_{y>=p, x>=q} g[b, l, y, x] * impulse[b, i, y-p, x-q]
// Each tap touches only the part of the plane inside the causal window, so nothing is multiplied by
// padding. Accumulation is in float32 for 16-bit inputs, as in the kernels.
#include "nonfinite.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>

#include <cmath>
#include <vector>

namespace dc {
namespace {

using at::Tensor;

at::ScalarType acc_type(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

}  // namespace

Tensor nonfinite_checksums(int64_t B, const std::vector<Tensor>& tensors) {
  Tensor sum;
  if (B == 0) return sum;
  for (const Tensor& t : tensors) {
    if (t.numel() == 0) continue;
    const Tensor s = t.reshape({B, -1}).sum(1, false, acc_type(t.scalar_type()));
    sum = sum.defined() ? sum.add_(s) : s;
  }
  return sum;
}

Tensor nonfinite_checksums(const Tensor& result, const std::vector<Tensor>& inputs) {
  int64_t input_elements = 0;
  for (const Tensor& t : inputs) input_elements += t.numel();
  return nonfinite_checksums(result.size(0), result.numel() <= input_elements ? std::vector<Tensor>{result} : inputs);
}

namespace {

// Indices (int64, on the tensors' device) of the samples whose checksum is non-finite; undefined when
// there is none. The host path: one device-to-host copy on CUDA.
Tensor flagged_samples(const Tensor& checksums) {
  if (!checksums.defined()) return {};
  if (checksums.is_cpu()) {
    // A loop over the B checksums: ATen's isfinite / logical_not / any / nonzero chain cost ~25 us per call,
    // most of a small op's time.
    const Tensor c = checksums.contiguous();
    std::vector<int64_t> bad;
    AT_DISPATCH_FLOATING_TYPES(c.scalar_type(), "flagged_samples", [&] {
      const scalar_t* v = c.const_data_ptr<scalar_t>();
      for (int64_t b = 0; b < c.numel(); ++b)
        if (!std::isfinite(v[b])) bad.push_back(b);
    });
    if (bad.empty()) return {};
    return at::tensor(bad, checksums.options().dtype(at::kLong));
  }
  const Tensor bad = at::isfinite(checksums).logical_not();
  if (!bad.any().item<bool>()) return {};
  return bad.nonzero().squeeze(1);
}

Tensor nonfinite_samples(const Tensor& result, const std::vector<Tensor>& inputs) {
  return flagged_samples(nonfinite_checksums(result, inputs));
}

// The definitions on gathered samples (accumulation dtype): imp [n, Ci, Hi, Wi], resp [n, Cr, Hr, Wr],
// g [n, Ci, Cr, Hi, Wi] (the dense output's gradient, one plane per channel pair).
Tensor dense_definition(const Tensor& impulse, const Tensor& response) {  // -> [n, Ci, Cr, Hi, Wi]
  const int64_t n = impulse.size(0), Ci = impulse.size(1), Cr = response.size(1), Hi = impulse.size(2),
                Wi = impulse.size(3);
  const Tensor imp = impulse.unsqueeze(2);  // [n, Ci, 1, Hi, Wi]
  Tensor sum = at::zeros({n, Ci, Cr, Hi, Wi}, imp.options());
  for (int64_t p = 0; p < std::min(response.size(2), Hi); ++p)
    for (int64_t q = 0; q < std::min(response.size(3), Wi); ++q) {
      const Tensor tap = response.select(3, q).select(2, p).view({n, 1, Cr, 1, 1});
      sum.narrow(3, p, Hi - p).narrow(4, q, Wi - q).add_(imp.narrow(3, 0, Hi - p).narrow(4, 0, Wi - q) * tap);
    }
  return sum;
}

Tensor grad_impulse_definition(const Tensor& g, const Tensor& response) {  // -> [n, Ci, Hi, Wi]
  const int64_t n = g.size(0), Ci = g.size(1), Cr = g.size(2), Hi = g.size(3), Wi = g.size(4);
  Tensor sum = at::zeros({n, Ci, Hi, Wi}, g.options());
  for (int64_t p = 0; p < std::min(response.size(2), Hi); ++p)
    for (int64_t q = 0; q < std::min(response.size(3), Wi); ++q) {
      const Tensor tap = response.select(3, q).select(2, p).view({n, 1, Cr, 1, 1});
      sum.narrow(2, 0, Hi - p).narrow(3, 0, Wi - q).add_((g.narrow(3, p, Hi - p).narrow(4, q, Wi - q) * tap).sum(2));
    }
  return sum;
}

Tensor grad_response_definition(const Tensor& g, const Tensor& impulse, int64_t Hr, int64_t Wr) {  // [n, Cr, Hr, Wr]
  const int64_t n = g.size(0), Cr = g.size(2), Hi = g.size(3), Wi = g.size(4);
  const Tensor imp = impulse.unsqueeze(2);  // [n, Ci, 1, Hi, Wi]
  Tensor taps = at::zeros({n, Cr, Hr, Wr}, g.options());  // taps beyond the image stay 0
  for (int64_t p = 0; p < std::min(Hr, Hi); ++p)
    for (int64_t q = 0; q < std::min(Wr, Wi); ++q)
      taps.select(3, q).select(2, p).copy_(
          (g.narrow(3, p, Hi - p).narrow(4, q, Wi - q) * imp.narrow(3, 0, Hi - p).narrow(4, 0, Wi - q))
              .sum({1, 3, 4}));
  return taps;
}

}  // namespace

void exact_nonfinite_forward(Tensor& out, const Tensor& response, const Tensor& impulse) {
  const Tensor idx = nonfinite_samples(out, {response, impulse});
  if (!idx.defined()) return;
  const at::ScalarType acc = acc_type(out.scalar_type());
  const Tensor sum = dense_definition(impulse.index_select(0, idx).to(acc), response.index_select(0, idx).to(acc));
  out.index_copy_(0, idx, sum.flatten(1, 2).to(out.scalar_type()));
}

void exact_nonfinite_grad_impulse(Tensor& grad_impulse, const Tensor& grad_out, const Tensor& response) {
  const Tensor idx = nonfinite_samples(grad_impulse, {grad_out, response});
  if (!idx.defined()) return;
  const int64_t n = idx.size(0), Ci = grad_impulse.size(1), Cr = response.size(1), Hi = grad_impulse.size(2),
                Wi = grad_impulse.size(3);
  const at::ScalarType acc = acc_type(grad_impulse.scalar_type());
  const Tensor g = grad_out.index_select(0, idx).to(acc).view({n, Ci, Cr, Hi, Wi});
  const Tensor sum = grad_impulse_definition(g, response.index_select(0, idx).to(acc));
  grad_impulse.index_copy_(0, idx, sum.to(grad_impulse.scalar_type()));
}

void exact_nonfinite_grad_response(Tensor& grad_response, const Tensor& grad_out, const Tensor& impulse) {
  const Tensor idx = nonfinite_samples(grad_response, {grad_out, impulse});
  if (!idx.defined()) return;
  const int64_t n = idx.size(0), Ci = impulse.size(1), Cr = grad_response.size(1), Hi = impulse.size(2),
                Wi = impulse.size(3);
  const at::ScalarType acc = acc_type(grad_response.scalar_type());
  const Tensor g = grad_out.index_select(0, idx).to(acc).view({n, Ci, Cr, Hi, Wi});
  const Tensor taps = grad_response_definition(g, impulse.index_select(0, idx).to(acc), grad_response.size(2),
                                               grad_response.size(3));
  grad_response.index_copy_(0, idx, taps.to(grad_response.scalar_type()));
}

void exact_nonfinite_per_sample_forward(Tensor& out, const Tensor& weight, const Tensor& impulse) {
  const Tensor idx = nonfinite_samples(out, {weight, impulse});
  if (!idx.defined()) return;
  const int64_t n = idx.size(0), L = weight.size(1), Ci = impulse.size(1), Hi = impulse.size(2),
                Wi = impulse.size(3);
  const at::ScalarType acc = acc_type(out.scalar_type());
  const Tensor imp = impulse.index_select(0, idx).to(acc).unsqueeze(1);  // [n, 1, Ci, Hi, Wi]
  const Tensor w = weight.index_select(0, idx).to(acc);                  // [n, L, Ci, Hr, Wr]
  Tensor sum = at::zeros({n, L, Hi, Wi}, imp.options());
  for (int64_t p = 0; p < std::min(weight.size(3), Hi); ++p)
    for (int64_t q = 0; q < std::min(weight.size(4), Wi); ++q) {
      const Tensor tap = w.select(4, q).select(3, p).view({n, L, Ci, 1, 1});
      sum.narrow(2, p, Hi - p).narrow(3, q, Wi - q).add_((imp.narrow(3, 0, Hi - p).narrow(4, 0, Wi - q) * tap).sum(2));
    }
  out.index_copy_(0, idx, sum.to(out.scalar_type()));
}

void exact_nonfinite_per_sample_grad_impulse(Tensor& grad_impulse, const Tensor& grad_out, const Tensor& weight) {
  const Tensor idx = nonfinite_samples(grad_impulse, {grad_out, weight});
  if (!idx.defined()) return;
  const int64_t n = idx.size(0), L = weight.size(1), Ci = grad_impulse.size(1), Hi = grad_impulse.size(2),
                Wi = grad_impulse.size(3);
  const at::ScalarType acc = acc_type(grad_impulse.scalar_type());
  const Tensor g = grad_out.index_select(0, idx).to(acc).unsqueeze(2);  // [n, L, 1, Hi, Wi]
  const Tensor w = weight.index_select(0, idx).to(acc);                 // [n, L, Ci, Hr, Wr]
  Tensor sum = at::zeros({n, Ci, Hi, Wi}, g.options());
  for (int64_t p = 0; p < std::min(weight.size(3), Hi); ++p)
    for (int64_t q = 0; q < std::min(weight.size(4), Wi); ++q) {
      const Tensor tap = w.select(4, q).select(3, p).view({n, L, Ci, 1, 1});
      sum.narrow(2, 0, Hi - p).narrow(3, 0, Wi - q).add_((g.narrow(3, p, Hi - p).narrow(4, q, Wi - q) * tap).sum(1));
    }
  grad_impulse.index_copy_(0, idx, sum.to(grad_impulse.scalar_type()));
}

void exact_nonfinite_per_sample_grad_weight(Tensor& grad_weight, const Tensor& grad_out, const Tensor& impulse) {
  const Tensor idx = nonfinite_samples(grad_weight, {grad_out, impulse});
  if (!idx.defined()) return;
  const int64_t n = idx.size(0), L = grad_weight.size(1), Ci = impulse.size(1), Hi = impulse.size(2),
                Wi = impulse.size(3), Hr = grad_weight.size(3), Wr = grad_weight.size(4);
  const at::ScalarType acc = acc_type(grad_weight.scalar_type());
  const Tensor g = grad_out.index_select(0, idx).to(acc).unsqueeze(2);   // [n, L, 1, Hi, Wi]
  const Tensor imp = impulse.index_select(0, idx).to(acc).unsqueeze(1);  // [n, 1, Ci, Hi, Wi]
  Tensor taps = at::zeros({n, L, Ci, Hr, Wr}, g.options());              // taps beyond the image stay 0
  for (int64_t p = 0; p < std::min(Hr, Hi); ++p)
    for (int64_t q = 0; q < std::min(Wr, Wi); ++q)
      taps.select(4, q).select(3, p).copy_(
          (g.narrow(3, p, Hi - p).narrow(4, q, Wi - q) * imp.narrow(3, 0, Hi - p).narrow(4, 0, Wi - q)).sum({3, 4}));
  grad_weight.index_copy_(0, idx, taps.to(grad_weight.scalar_type()));
}

// ---- dense_mix_conv2d: out[b, l] = sum_{j,k} weight[l, j, k] * dense[b, j, k] --------------------------

Tensor nonfinite_mix_checksums(int64_t B, const std::vector<Tensor>& tensors, const Tensor& weight) {
  if (B == 0) return {};
  const at::ScalarType acc = acc_type(weight.scalar_type());
  Tensor checksums = nonfinite_checksums(B, tensors);
  if (weight.numel() > 0) {  // an add on the device, no synchronisation
    const Tensor w = weight.sum(acc);
    checksums = checksums.defined() ? checksums + w : w.expand({B});
  }
  // the kernels index it [b] in the accumulation type: a fresh contiguous tensor
  return checksums.defined() ? checksums.to(acc).contiguous() : checksums;
}

namespace {

// The mix's checked tensors for the host path (see nonfinite_mix_checksums).
Tensor nonfinite_mix_samples(int64_t B, const std::vector<Tensor>& tensors, const Tensor& weight) {
  return flagged_samples(nonfinite_mix_checksums(B, tensors, weight));
}

}  // namespace

void exact_nonfinite_mix_forward(Tensor& out, const Tensor& response, const Tensor& impulse, const Tensor& weight) {
  const Tensor idx = nonfinite_mix_samples(out.size(0), {response, impulse, out}, weight);
  if (!idx.defined()) return;
  const at::ScalarType acc = acc_type(out.scalar_type());
  const Tensor dense = dense_definition(impulse.index_select(0, idx).to(acc), response.index_select(0, idx).to(acc));
  out.index_copy_(0, idx, at::einsum("ljk,njkyx->nlyx", {weight.to(acc), dense}).to(out.scalar_type()));
}

void exact_nonfinite_mix_backward(Tensor& grad_response, Tensor& grad_impulse, Tensor& grad_weight_per_sample,
                                  const Tensor& grad_out, const Tensor& response, const Tensor& impulse,
                                  const Tensor& weight) {
  const Tensor idx = nonfinite_mix_samples(grad_out.size(0), {grad_out, response, impulse, grad_response,
                                                              grad_impulse, grad_weight_per_sample}, weight);
  if (!idx.defined()) return;
  const at::ScalarType acc = acc_type(grad_out.scalar_type());
  const Tensor g = grad_out.index_select(0, idx).to(acc), a = weight.to(acc);
  const Tensor imp = impulse.index_select(0, idx).to(acc), resp = response.index_select(0, idx).to(acc);
  const Tensor g_dense = at::einsum("nlyx,ljk->njkyx", {g, a});  // the dense output's gradient
  grad_impulse.index_copy_(0, idx, grad_impulse_definition(g_dense, resp).to(grad_impulse.scalar_type()));
  grad_response.index_copy_(0, idx, grad_response_definition(g_dense, imp, response.size(2), response.size(3))
                                        .to(grad_response.scalar_type()));
  const Tensor gw = at::einsum("nlyx,njkyx->nljk", {g, dense_definition(imp, resp)});
  grad_weight_per_sample.index_copy_(0, idx, gw.to(grad_weight_per_sample.scalar_type()));
}

}  // namespace dc
