// sparse_conv2d on every backend: channel c of sample b is a one-channel dense problem, so
// sparse([B, C, ...]) = dense([B*C, 1, ...]) viewed back to [B, C, Hi, Wi]. The dense kernels of each
// backend do the work; this file only reshapes.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include "checks.h"

namespace dc {
namespace {

using at::Tensor;

Tensor call_dense_forward(const Tensor& response, const Tensor& impulse) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("dense_conv::dense_conv2d", "")
                       .typed<Tensor(const Tensor&, const Tensor&)>();
  return op.call(response, impulse);
}

Tensor call_dense_grad(const char* name, const Tensor& grad_out, const Tensor& input, at::IntArrayRef shape) {
  auto op = c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Tensor(const Tensor&, const Tensor&,
                                                                                    c10::SymIntArrayRef)>();
  return op.call(grad_out, input, c10::fromIntArrayRefSlow(shape));
}

std::vector<int64_t> as_one_channel(const ConvSizes& s, int64_t H, int64_t W) { return {s.B * s.Ci, 1, H, W}; }

Tensor sparse_forward(const Tensor& response, const Tensor& impulse) {
  const ConvSizes s = check_forward(response, impulse, /*sparse=*/true);
  Tensor out = call_dense_forward(response.reshape(as_one_channel(s, s.Hr, s.Wr)),
                                  impulse.reshape(as_one_channel(s, s.Hi, s.Wi)));
  return out.view({s.B, s.Ci, s.Hi, s.Wi});
}

Tensor sparse_grad_impulse(const Tensor& grad_out, const Tensor& response, at::IntArrayRef impulse_shape) {
  const ConvSizes s = check_backward(grad_out, response, "response", response.sizes(), impulse_shape, true);
  Tensor g = call_dense_grad("dense_conv::dense_conv2d_grad_impulse", grad_out.reshape(as_one_channel(s, s.Hi, s.Wi)),
                             response.reshape(as_one_channel(s, s.Hr, s.Wr)), as_one_channel(s, s.Hi, s.Wi));
  return g.view({s.B, s.Ci, s.Hi, s.Wi});
}

Tensor sparse_grad_response(const Tensor& grad_out, const Tensor& impulse, at::IntArrayRef response_shape) {
  const ConvSizes s = check_backward(grad_out, impulse, "impulse", response_shape, impulse.sizes(), true);
  Tensor g = call_dense_grad("dense_conv::dense_conv2d_grad_response", grad_out.reshape(as_one_channel(s, s.Hi, s.Wi)),
                             impulse.reshape(as_one_channel(s, s.Hi, s.Wi)), as_one_channel(s, s.Hr, s.Wr));
  return g.view({s.B, s.Ci, s.Hr, s.Wr});
}

}  // namespace

// Registered per backend (not CompositeExplicitAutograd) so that fake/meta and autograd stay the Python ones.
TORCH_LIBRARY_IMPL(dense_conv, CPU, m) {
  m.impl("sparse_conv2d", &sparse_forward);
  m.impl("sparse_conv2d_grad_impulse", &sparse_grad_impulse);
  m.impl("sparse_conv2d_grad_response", &sparse_grad_response);
}

TORCH_LIBRARY_IMPL(dense_conv, CUDA, m) {
  m.impl("sparse_conv2d", &sparse_forward);
  m.impl("sparse_conv2d_grad_impulse", &sparse_grad_impulse);
  m.impl("sparse_conv2d_grad_response", &sparse_grad_response);
}

}  // namespace dc
