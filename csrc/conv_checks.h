// Argument checks shared by every backend of the conv ops: one place for the error messages.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace dc {

struct ConvSizes {
  int64_t B, Ci, Cr, Hi, Wi, Hr, Wr;
  int64_t out_channels(bool sparse) const { return sparse ? Ci : Ci * Cr; }
};

inline const char* op_name(bool sparse) { return sparse ? "sparse_conv2d" : "dense_conv2d"; }

inline void check_tensor(const at::Tensor& t, const char* name, bool sparse) {
  TORCH_CHECK(t.defined(), op_name(sparse), ": ", name, " is undefined");
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), op_name(sparse), ": ", name,
              " must be a floating-point tensor (float16, bfloat16, float32 or float64), got ", t.scalar_type());
}

inline void check_same_device_dtype(const at::Tensor& a, const char* a_name, const at::Tensor& b, const char* b_name,
                                    bool sparse) {
  TORCH_CHECK(a.device() == b.device(), op_name(sparse), ": ", a_name, " is on ", a.device(), " but ", b_name,
              " is on ", b.device(), "; move both to the same device");
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), op_name(sparse), ": ", a_name, " has dtype ", a.scalar_type(),
              " but ", b_name, " has dtype ", b.scalar_type(), "; cast both to the same dtype");
}

// response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi]; sparse requires Cr == Ci.
inline ConvSizes check_conv_sizes(at::IntArrayRef response, at::IntArrayRef impulse, bool sparse) {
  const char* op = op_name(sparse);
  TORCH_CHECK(response.size() == 4, op, ": response must be 4-D ", sparse ? "[B, C, Hr, Wr]" : "[B, Cr, Hr, Wr]",
              ", got shape ", response);
  TORCH_CHECK(impulse.size() == 4, op, ": impulse must be 4-D ", sparse ? "[B, C, Hi, Wi]" : "[B, Ci, Hi, Wi]",
              ", got shape ", impulse);
  TORCH_CHECK(response[0] == impulse[0], op, ": batch mismatch, response has B=", response[0], " but impulse has B=",
              impulse[0], " (every sample has its own response)");
  if (sparse) {
    TORCH_CHECK(response[1] == impulse[1], op, ": channel mismatch, response has C=", response[1],
                " but impulse has C=", impulse[1], " (sparse_conv2d convolves channel c with channel c)");
  }
  return {impulse[0], impulse[1], response[1], impulse[2], impulse[3], response[2], response[3]};
}

inline ConvSizes check_forward(const at::Tensor& response, const at::Tensor& impulse, bool sparse) {
  check_tensor(response, "response", sparse);
  check_tensor(impulse, "impulse", sparse);
  check_same_device_dtype(response, "response", impulse, "impulse", sparse);
  return check_conv_sizes(response.sizes(), impulse.sizes(), sparse);
}

// Backward ops get grad_out, one forward input, and the shape of the other forward input.
inline ConvSizes check_backward(const at::Tensor& grad_out, const at::Tensor& input, const char* input_name,
                                at::IntArrayRef response_shape, at::IntArrayRef impulse_shape, bool sparse) {
  check_tensor(grad_out, "grad_out", sparse);
  check_tensor(input, input_name, sparse);
  check_same_device_dtype(grad_out, "grad_out", input, input_name, sparse);
  ConvSizes s = check_conv_sizes(response_shape, impulse_shape, sparse);
  const std::vector<int64_t> expected{s.B, s.out_channels(sparse), s.Hi, s.Wi};
  TORCH_CHECK(grad_out.sizes() == at::IntArrayRef(expected), op_name(sparse), ": grad_out must have the output's shape ",
              at::IntArrayRef(expected), ", got ", grad_out.sizes());
  return s;
}

}  // namespace dc
