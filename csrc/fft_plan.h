// Transform sizes of the FFT algorithm, shared by the CPU (cpu/fft_conv.cpp) and CUDA
// (cuda/fft_conv_cuda.cu) paths; dense_conv/_algorithm.py mirrors next_smooth for its cost model.
//
// A linear convolution of Hi and Hq rows needs Hi + Hq - 1 rows so that no causal output row aliases;
// the size is rounded up to a 2,3,5-smooth number (even along the real-FFT axis). Response taps beyond
// the image (p >= Hi or q >= Wi) never reach an output and are cropped away first (Hq, Wq).
#pragma once
#include <algorithm>
#include <cstdint>

#include "conv_checks.h"

namespace dc {

inline int64_t next_smooth(int64_t n, bool even) {
  for (int64_t m = std::max<int64_t>(1, n);; ++m) {
    if (even && m % 2 != 0 && m > 1) continue;
    int64_t k = m;
    for (int64_t f : {2, 3, 5})
      while (k % f == 0) k /= f;
    if (k == 1) return m;
  }
}

struct FftPlan {
  int64_t Hq, Wq, H, W;  // response taps used; transform size (W even unless 1)
};

inline FftPlan fft_plan(const ConvSizes& s) {
  const int64_t Hq = std::min(s.Hr, s.Hi), Wq = std::min(s.Wr, s.Wi);
  return {Hq, Wq, next_smooth(s.Hi + Hq - 1, false), next_smooth(s.Wi + Wq - 1, true)};
}

}  // namespace dc
