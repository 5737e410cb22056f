// Argument checks of every op, shared by the CPU and CUDA implementations: one place for the error
// messages. Sizes themselves are in shapes.h (ATen-free).
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <array>
#include <vector>

#include "shapes.h"

namespace dc {

inline const char* op_name(bool sparse) { return sparse ? "sparse_conv2d" : "dense_conv2d"; }

// Product of sizes, or a clear error when it does not fit in int64.
inline int64_t checked_product(std::initializer_list<int64_t> sizes, const char* op, const char* what) {
  int64_t n = 1;
  for (int64_t v : sizes)
    TORCH_CHECK(checked_mul(n, v, &n), op, ": ", what, " has more elements than a 64-bit index can count; "
                "split the input");
  return n;
}

inline void check_tensor(const at::Tensor& t, const char* name, const char* op) {
  TORCH_CHECK(t.defined(), op, ": ", name, " is undefined");
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), op, ": ", name,
              " must be a floating-point tensor (float16, bfloat16, float32 or float64), got ", t.scalar_type());
}

inline void check_same_device_dtype(const at::Tensor& a, const char* a_name, const at::Tensor& b, const char* b_name,
                                    const char* op) {
  TORCH_CHECK(a.device() == b.device(), op, ": ", a_name, " is on ", a.device(), " but ", b_name, " is on ",
              b.device(), "; move both to the same device");
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), op, ": ", a_name, " has dtype ", a.scalar_type(), " but ", b_name,
              " has dtype ", b.scalar_type(), "; cast both to the same dtype");
}

// ---- dense_conv2d / sparse_conv2d ----------------------------------------------------------------

// response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi]; sparse requires Cr == Ci. Every size product an
// implementation forms (the output, the inputs, B*Ci planes, Ci*Cr channels) is checked for overflow.
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
  const ConvSizes s{impulse[0], impulse[1], response[1], impulse[2], impulse[3], response[2], response[3]};
  checked_product({s.B, s.out_channels(sparse), s.Hi, s.Wi}, op, "the output");
  checked_product({s.B, s.Ci, s.Cr}, op, "B x Ci x Cr");
  checked_product({s.B, s.Cr, s.Hr, s.Wr}, op, "the response");
  checked_product({s.B, s.Ci, s.Hi, s.Wi}, op, "the impulse");
  return s;
}

inline ConvSizes check_forward(const at::Tensor& response, const at::Tensor& impulse, bool sparse) {
  const char* op = op_name(sparse);
  check_tensor(response, "response", op);
  check_tensor(impulse, "impulse", op);
  check_same_device_dtype(response, "response", impulse, "impulse", op);
  return check_conv_sizes(response.sizes(), impulse.sizes(), sparse);
}

// Backward ops get grad_out, one forward input, and the shape of the other forward input.
inline ConvSizes check_backward(const at::Tensor& grad_out, const at::Tensor& input, const char* input_name,
                                at::IntArrayRef response_shape, at::IntArrayRef impulse_shape, bool sparse) {
  const char* op = op_name(sparse);
  check_tensor(grad_out, "grad_out", op);
  check_tensor(input, input_name, op);
  check_same_device_dtype(grad_out, "grad_out", input, input_name, op);
  const ConvSizes s = check_conv_sizes(response_shape, impulse_shape, sparse);
  const std::vector<int64_t> expected{s.B, s.out_channels(sparse), s.Hi, s.Wi};
  TORCH_CHECK(grad_out.sizes() == at::IntArrayRef(expected), op, ": grad_out must have the output's shape ",
              at::IntArrayRef(expected), ", got ", grad_out.sizes());
  return s;
}

// ---- per_sample_conv2d ---------------------------------------------------------------------------

// weight [B, L, Ci, Hr, Wr], impulse [B, Ci, Hi, Wi]; every size product is checked for overflow.
inline PerSampleSizes check_per_sample_sizes(at::IntArrayRef weight, at::IntArrayRef impulse) {
  const char* op = "per_sample_conv2d";
  TORCH_CHECK(weight.size() == 5, op, ": weight must be 5-D [B, L, Ci, Hr, Wr], got shape ", weight);
  TORCH_CHECK(impulse.size() == 4, op, ": impulse must be 4-D [B, Ci, Hi, Wi], got shape ", impulse);
  TORCH_CHECK(weight[0] == impulse[0], op, ": batch mismatch, weight has B=", weight[0], " but impulse has B=",
              impulse[0], " (every sample has its own weights)");
  TORCH_CHECK(weight[2] == impulse[1], op, ": channel mismatch, weight has Ci=", weight[2],
              " (dim 2) but impulse has Ci=", impulse[1]);
  const PerSampleSizes s{impulse[0], weight[1], impulse[1], impulse[2], impulse[3], weight[3], weight[4]};
  checked_product({s.B, s.L, s.Hi, s.Wi}, op, "the output");
  checked_product({s.B, s.L, s.Ci, s.Hr, s.Wr}, op, "the weight");
  checked_product({s.B, s.Ci, s.Hi, s.Wi}, op, "the impulse");
  return s;
}

inline PerSampleSizes check_per_sample_forward(const at::Tensor& weight, const at::Tensor& impulse) {
  const char* op = "per_sample_conv2d";
  check_tensor(weight, "weight", op);
  check_tensor(impulse, "impulse", op);
  check_same_device_dtype(weight, "weight", impulse, "impulse", op);
  return check_per_sample_sizes(weight.sizes(), impulse.sizes());
}

// Backward ops get grad_out, one forward input, and the shape of the other forward input.
inline PerSampleSizes check_per_sample_backward(const at::Tensor& grad_out, const at::Tensor& input,
                                                const char* input_name, at::IntArrayRef weight_shape,
                                                at::IntArrayRef impulse_shape) {
  const char* op = "per_sample_conv2d";
  check_tensor(grad_out, "grad_out", op);
  check_tensor(input, input_name, op);
  check_same_device_dtype(grad_out, "grad_out", input, input_name, op);
  const PerSampleSizes s = check_per_sample_sizes(weight_shape, impulse_shape);
  const std::vector<int64_t> expected{s.B, s.L, s.Hi, s.Wi};
  TORCH_CHECK(grad_out.sizes() == at::IntArrayRef(expected), op, ": grad_out must have the output's shape ",
              at::IntArrayRef(expected), ", got ", grad_out.sizes());
  return s;
}

// ---- dense_mix_conv2d ----------------------------------------------------------------------------

// dense_conv2d sizes plus the output channels L of the 1x1 channel mix.
struct MixSizes {
  ConvSizes conv;
  int64_t L;
  // Nothing reaches the output: a zero-sized dimension of the sum or of the response (the FFT algorithm
  // then writes zeros without transforming).
  bool output_is_zero() const { return conv.Ci == 0 || conv.Cr == 0 || conv.Hr == 0 || conv.Wr == 0; }
  // Every gradient is zero (or empty): no sample, output channel or pixel, or nothing reaches the output.
  bool gradients_are_zero() const {
    return conv.B == 0 || L == 0 || conv.Hi == 0 || conv.Wi == 0 || output_is_zero();
  }
};

// response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi], weight [L, Ci, Cr]: floating point, one device, one
// dtype; every size product an implementation forms (output, inputs, L x Ci x Cr, B x L x Ci x Cr) is
// checked for overflow.
inline MixSizes check_mix_forward(const at::Tensor& response, const at::Tensor& impulse, const at::Tensor& weight) {
  const char* op = "dense_mix_conv2d";
  check_tensor(response, "response", op);
  check_tensor(impulse, "impulse", op);
  check_tensor(weight, "weight", op);
  check_same_device_dtype(response, "response", impulse, "impulse", op);
  check_same_device_dtype(weight, "weight", impulse, "impulse", op);
  const at::IntArrayRef r = response.sizes(), i = impulse.sizes(), w = weight.sizes();
  TORCH_CHECK(r.size() == 4, op, ": response must be 4-D [B, Cr, Hr, Wr], got shape ", r);
  TORCH_CHECK(i.size() == 4, op, ": impulse must be 4-D [B, Ci, Hi, Wi], got shape ", i);
  TORCH_CHECK(w.size() == 3, op, ": weight must be 3-D [L, Ci, Cr], got shape ", w);
  TORCH_CHECK(r[0] == i[0], op, ": batch mismatch, response has B=", r[0], " but impulse has B=", i[0],
              " (every sample has its own response)");
  TORCH_CHECK(w[1] == i[1], op, ": channel mismatch, weight has Ci=", w[1], " (dim 1) but impulse has Ci=", i[1]);
  TORCH_CHECK(w[2] == r[1], op, ": channel mismatch, weight has Cr=", w[2], " (dim 2) but response has Cr=", r[1]);
  const MixSizes s{{i[0], i[1], r[1], i[2], i[3], r[2], r[3]}, w[0]};
  checked_product({s.conv.B, s.L, s.conv.Hi, s.conv.Wi}, op, "the output");
  checked_product({s.conv.B, s.conv.Cr, s.conv.Hr, s.conv.Wr}, op, "the response");
  checked_product({s.conv.B, s.conv.Ci, s.conv.Hi, s.conv.Wi}, op, "the impulse");
  checked_product({s.conv.B, s.L, s.conv.Ci, s.conv.Cr}, op, "B x L x Ci x Cr");
  return s;
}

// The forward's checks, and grad_out: the output's shape, device and dtype.
inline MixSizes check_mix_backward(const at::Tensor& grad_out, const at::Tensor& response, const at::Tensor& impulse,
                                   const at::Tensor& weight) {
  const char* op = "dense_mix_conv2d";
  const MixSizes s = check_mix_forward(response, impulse, weight);
  check_tensor(grad_out, "grad_out", op);
  check_same_device_dtype(grad_out, "grad_out", impulse, "impulse", op);
  const std::vector<int64_t> expected{s.conv.B, s.L, s.conv.Hi, s.conv.Wi};
  TORCH_CHECK(grad_out.sizes() == at::IntArrayRef(expected), op, ": grad_out must have the output's shape ",
              at::IntArrayRef(expected), ", got ", grad_out.sizes());
  return s;
}

// ---- octave_downsample ---------------------------------------------------------------------------

struct OctaveSizes {
  int64_t rows = 1;  // product of the leading dims
  int64_t T = 0;     // input length
  int64_t taps = 0;  // filter length (odd)
  OctaveLevels lv;
};

inline void check_octave_levels(int64_t levels) {
  TORCH_CHECK(levels >= 1 && levels <= kMaxOctaveLevels, "octave_downsample: levels must be an int in [1, ",
              kMaxOctaveLevels, "], got ", levels);
}

inline OctaveSizes octave_sizes(at::IntArrayRef x_shape, int64_t taps, int64_t levels) {
  TORCH_CHECK(x_shape.size() >= 1, "octave_downsample: x must have at least 1 dimension [..., T], got a scalar");
  check_octave_levels(levels);
  TORCH_CHECK(taps % 2 == 1, "octave_downsample: the filter must have an odd number of taps (zero phase), got ", taps);
  OctaveSizes s;
  for (size_t i = 0; i + 1 < x_shape.size(); ++i) s.rows = checked_product({s.rows, x_shape[i]}, "octave_downsample", "x");
  s.T = x_shape.back();
  checked_product({s.rows, s.T}, "octave_downsample", "x");
  s.taps = taps;
  s.lv = octave_levels(s.T, levels);
  checked_product({s.rows, s.lv.total}, "octave_downsample", "the output");
  return s;
}

// x (or grad) and filter: floating point, same device, same dtype; filter 1-D with an odd length.
inline void check_octave_tensors(const at::Tensor& x, const at::Tensor& filter, const char* x_name = "x") {
  const char* op = "octave_downsample";
  check_tensor(x, x_name, op);
  check_tensor(filter, "filter", op);
  TORCH_CHECK(filter.dim() == 1, "octave_downsample: filter must be 1-D [taps], got shape ", filter.sizes());
  TORCH_CHECK(filter.numel() % 2 == 1, "octave_downsample: the filter must have an odd number of taps (zero phase), got ",
              filter.numel());
  check_same_device_dtype(x, x_name, filter, "filter", op);
}

// Arguments of octave_downsample_grad_filter. out, the packed forward output, is the input of levels >= 2
// (it may be empty when levels == 1).
inline OctaveSizes check_octave_grad_filter(const at::Tensor& grad, const at::Tensor& x, const at::Tensor& out,
                                            const at::Tensor& filter, int64_t levels) {
  check_octave_tensors(grad, filter, "grad");
  check_octave_tensors(x, filter);
  const OctaveSizes s = octave_sizes(x.sizes(), filter.numel(), levels);
  TORCH_CHECK(grad.size(-1) == s.lv.total && grad.numel() == s.rows * s.lv.total,
              "octave_downsample_grad_filter: grad has shape ", grad.sizes(), ", expected last dim ", s.lv.total);
  if (levels > 1) {
    TORCH_CHECK(out.numel() == s.rows * s.lv.total,
                "octave_downsample_grad_filter: levels > 1 needs the forward output");
    check_same_device_dtype(out, "out", filter, "filter", "octave_downsample");
  }
  return s;
}

// ---- FFT spectra a forward keeps for its backward (the *_keep_spectra ops, CPU and CUDA) ---------------------

// Real dtype of the FFT algorithms' transforms: float64 stays float64, every other floating type transforms in
// float32 (the CUDA ops' float16 / bfloat16 inputs: cuFFT's half transforms need power-of-two sizes; the CPU
// ops take float32 / float64 only).
inline at::ScalarType fft_real_type(at::ScalarType t) { return t == at::kDouble ? at::kDouble : at::kFloat; }

// impulse [B, Ci, H, W/2+1] unscaled and response [B, Cr, H, W/2+1] times 1/(H W), complex of fft_real_type,
// contiguous, at the transform size of fft_plan: the same layout and scaling on every backend, so that the
// fake kernels and the autograd glue (dense_conv/_fake.py, _autograd.py, _mix_fft.py) are shared.
struct KeptSpectra {
  at::Tensor impulse, response;
};

inline void check_kept_spectra_tensor(const at::Tensor& t, const char* name, int64_t channels, const FftPlan& f,
                                      int64_t batch, const at::Tensor& grad_out, const char* op) {
  const auto complex_type = c10::toComplexType(fft_real_type(grad_out.scalar_type()));
  const std::array<int64_t, 4> shape{batch, channels, f.H, f.W / 2 + 1};
  TORCH_CHECK(t.device() == grad_out.device() && t.scalar_type() == complex_type && t.sizes() == shape &&
                  t.is_contiguous(),
              op, ": ", name, " must be the forward's spectra: contiguous ", complex_type, " of shape ",
              at::IntArrayRef(shape), " on ", grad_out.device(), ", got ", t.scalar_type(), " ", t.sizes(),
              (t.is_contiguous() ? "" : " (not contiguous)"), " on ", t.device());
}

inline void check_kept_spectra(const KeptSpectra& kept, const ConvSizes& s, const FftPlan& f,
                               const at::Tensor& grad_out, const char* op) {
  check_kept_spectra_tensor(kept.impulse, "impulse_spectra", s.Ci, f, s.B, grad_out, op);
  check_kept_spectra_tensor(kept.response, "response_spectra", s.Cr, f, s.B, grad_out, op);
}

inline std::vector<int64_t> with_last(at::IntArrayRef shape, int64_t last) {
  std::vector<int64_t> v(shape.begin(), shape.end());
  v.back() = last;
  return v;
}

}  // namespace dc
