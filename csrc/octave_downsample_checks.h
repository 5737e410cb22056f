// Argument checks and sizes of octave_downsample, shared by the CPU and CUDA implementations.
//
//   y[..., m] = sum_{n<N} filter[n] * x[..., 2m + n - (N-1)/2]   (N odd, zeros outside x), m < ceil(T/2)
//
// levels = L applies the step L times; the L outputs are packed along the last dim:
// out[..., off_l : off_l + len_l] is level l+1 (len_l = ceil(len_{l-1}/2), len_0 = T).
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <vector>

namespace dc {

struct OctaveSizes {
  int64_t rows = 1;                 // product of the leading dims
  int64_t T = 0;                    // input length
  int64_t taps = 0;                 // filter length (odd)
  int64_t levels = 1;
  std::vector<int64_t> len;         // len[l], l = 0..levels: length of level l (len[0] = T)
  std::vector<int64_t> off;         // off[l], l = 1..levels: offset of level l in the packed output (off[0] unused)
  int64_t total = 0;                // packed length
};

inline OctaveSizes octave_sizes(at::IntArrayRef x_shape, int64_t taps, int64_t levels) {
  OctaveSizes s;
  TORCH_CHECK(x_shape.size() >= 1, "octave_downsample: x must have at least 1 dimension [..., T], got a scalar");
  TORCH_CHECK(levels >= 1, "octave_downsample: levels must be >= 1, got ", levels);
  TORCH_CHECK(taps % 2 == 1, "octave_downsample: the filter must have an odd number of taps (zero phase), got ", taps);
  for (size_t i = 0; i + 1 < x_shape.size(); ++i) s.rows *= x_shape[i];
  s.T = x_shape.back();
  s.taps = taps;
  s.levels = levels;
  s.len.assign(levels + 1, 0);
  s.off.assign(levels + 1, 0);
  s.len[0] = s.T;
  for (int64_t l = 1; l <= levels; ++l) {
    s.len[l] = (s.len[l - 1] + 1) / 2;
    s.off[l] = s.total;
    s.total += s.len[l];
  }
  return s;
}

inline void octave_check_tensors(const at::Tensor& x, const at::Tensor& filter, const char* x_name = "x") {
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), "octave_downsample: ", x_name,
              " must be a floating-point tensor, got ", x.scalar_type());
  TORCH_CHECK(filter.dim() == 1, "octave_downsample: filter must be 1-D [taps], got shape ", filter.sizes());
  TORCH_CHECK(filter.numel() % 2 == 1, "octave_downsample: the filter must have an odd number of taps (zero phase), got ",
              filter.numel());
  TORCH_CHECK(x.device() == filter.device(), "octave_downsample: ", x_name, " is on ", x.device(), " but filter on ",
              filter.device(), "; move both to the same device");
  TORCH_CHECK(x.scalar_type() == filter.scalar_type(), "octave_downsample: ", x_name, " has dtype ", x.scalar_type(),
              " but filter has ", filter.scalar_type(), "; cast both to the same dtype");
}

inline std::vector<int64_t> with_last(at::IntArrayRef shape, int64_t last) {
  std::vector<int64_t> v(shape.begin(), shape.end());
  v.back() = last;
  return v;
}

}  // namespace dc
