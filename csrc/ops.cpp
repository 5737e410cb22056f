// Every schema of the dense_conv library, in one place. Implementations live per backend:
// csrc/cpu/*.cpp (TORCH_LIBRARY_IMPL(dense_conv, CPU, m)) and csrc/cuda/*.cu (..., CUDA, m).
#include <Python.h>
#include <torch/library.h>

extern "C" {
// Importing dense_conv._C loads this shared object, which runs the TORCH_LIBRARY registrations below.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(dense_conv, m) {
  // dense: out[b, i*Cr + r] = impulse[b, i] (*) response[b, r], causally cropped to the impulse size.
  m.def("dense_conv2d(Tensor response, Tensor impulse) -> Tensor");
  m.def("dense_conv2d_grad_impulse(Tensor grad_out, Tensor response, SymInt[] impulse_shape) -> Tensor");
  m.def("dense_conv2d_grad_response(Tensor grad_out, Tensor impulse, SymInt[] response_shape) -> Tensor");
  // dense, FFT algorithm: same result as dense_conv2d, computed in the frequency domain (each impulse and
  // response channel transformed once at 2,3,5-smooth padded sizes, fused complex products per sample).
  // The backward returns (grad_response, grad_impulse), both from one transform of grad_out.
  m.def("dense_conv2d_fft(Tensor response, Tensor impulse) -> Tensor");
  m.def("dense_conv2d_fft_backward(Tensor grad_out, Tensor response, Tensor impulse) -> (Tensor, Tensor)");
  // The same with the forward's spectra kept for the backward (CPU and CUDA; dense_conv/_algorithm.py decides when):
  // (out, impulse_spectra [B, Ci, H, W/2+1], response_spectra [B, Cr, H, W/2+1] times 1/(H W)), complex64
  // (complex128 for float64 inputs; checks.h KeptSpectra), at the transform size (H, W) of fft_size
  // (dense_conv/_shapes.py); the backward takes them instead of transforming response and impulse again.
  m.def("dense_conv2d_fft_keep_spectra(Tensor response, Tensor impulse) -> (Tensor, Tensor, Tensor)");
  m.def("dense_conv2d_fft_backward_spectra(Tensor grad_out, Tensor response, Tensor impulse, "
        "Tensor impulse_spectra, Tensor response_spectra) -> (Tensor, Tensor)");
  // sparse: out[b, c] = impulse[b, c] (*) response[b, c].
  m.def("sparse_conv2d(Tensor response, Tensor impulse) -> Tensor");
  m.def("sparse_conv2d_grad_impulse(Tensor grad_out, Tensor response, SymInt[] impulse_shape) -> Tensor");
  m.def("sparse_conv2d_grad_response(Tensor grad_out, Tensor impulse, SymInt[] response_shape) -> Tensor");
  // per_sample_conv2d (dynamic convolution): out[b, l] = sum_i impulse[b, i] (*) weight[b, l, i], causally
  // cropped to the impulse size; weight [B, L, Ci, Hr, Wr], impulse [B, Ci, Hi, Wi] -> out [B, L, Hi, Wi].
  // The direct path of the dense conv + channel mix: weights pre-mixed per sample, no B x Ci x Cr planes.
  m.def("per_sample_conv2d(Tensor weight, Tensor impulse) -> Tensor");
  m.def("per_sample_conv2d_grad_impulse(Tensor grad_out, Tensor weight, SymInt[] impulse_shape) -> Tensor");
  m.def("per_sample_conv2d_grad_weight(Tensor grad_out, Tensor impulse, SymInt[] weight_shape) -> Tensor");
  // dense_mix_conv2d, FFT algorithm: dense_conv2d followed by a 1x1 channel mix, weight [L, Ci, Cr],
  // out[b, l] = sum_{j,k} weight[l, j, k] * (impulse[b, j] (*) response[b, k]) -> [B, L, Hi, Wi], formed in the
  // frequency domain (Ci + Cr forward and L inverse transforms per sample). The backward returns
  // (grad_response, grad_impulse, grad_weight).
  m.def("dense_mix_conv2d_fft(Tensor response, Tensor impulse, Tensor weight) -> Tensor");
  m.def("dense_mix_conv2d_fft_backward(Tensor grad_out, Tensor response, Tensor impulse, Tensor weight) -> "
        "(Tensor, Tensor, Tensor)");
  // The same with the forward's spectra kept for the backward, as dense_conv2d_fft_keep_spectra.
  m.def("dense_mix_conv2d_fft_keep_spectra(Tensor response, Tensor impulse, Tensor weight) -> "
        "(Tensor, Tensor, Tensor)");
  m.def("dense_mix_conv2d_fft_backward_spectra(Tensor grad_out, Tensor response, Tensor impulse, Tensor weight, "
        "Tensor impulse_spectra, Tensor response_spectra) -> (Tensor, Tensor, Tensor)");
  // octave_downsample: y[..., m] = sum_n filter[n] * x[..., 2m + n - (N-1)/2] (N odd), m < ceil(T/2), applied
  // `levels` times; the levels' outputs are packed along the last dim (level 1 first).
  m.def("octave_downsample(Tensor x, Tensor filter, int levels) -> Tensor");
  m.def("octave_downsample_grad_input(Tensor grad, Tensor filter, SymInt length, int levels) -> Tensor");
  m.def("octave_downsample_grad_filter(Tensor grad, Tensor x, Tensor out, Tensor filter, int levels) -> Tensor");
}
