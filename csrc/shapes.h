// Sizes and index helpers of every op, in one ATen-free header: used by the argument checks, the CPU
// kernels, the CUDA kernels (nvcc, and g++ under the test-only emulator) and the emulator harness.
// dense_conv/_shapes.py mirrors it for Python (fake kernels, the `auto` cost model, tests).
#pragma once
#include <cstdint>
#include <initializer_list>

#if defined(__CUDACC__)
#define DC_HD __host__ __device__
#else
#define DC_HD
#endif

namespace dc {

DC_HD constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
DC_HD constexpr int64_t round_up(int64_t a, int64_t m) { return ceil_div(a, m) * m; }
DC_HD constexpr int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
DC_HD constexpr int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

// a * b, or false when it does not fit in int64 (sizes come from user tensors, views can be huge).
inline bool checked_mul(int64_t a, int64_t b, int64_t* out) { return !__builtin_mul_overflow(a, b, out); }

// ---- dense_conv2d / sparse_conv2d --------------------------------------------------------------
//   out[b, i*Cr + r, y, x] = sum_{p<=y, q<=x} impulse[b, i, y-p, x-q] * response[b, r, p, q]
// response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi]; sparse_conv2d is the Ci = Cr = 1 problem on
// [B*C, 1, ...] views. Taps p >= Hi or q >= Wi never reach an output: Hq x Wq taps are used.
struct ConvSizes {
  int64_t B, Ci, Cr, Hi, Wi, Hr, Wr;
  DC_HD int64_t out_channels(bool sparse) const { return sparse ? Ci : Ci * Cr; }
  DC_HD int64_t Hq() const { return min64(Hr, Hi); }
  DC_HD int64_t Wq() const { return min64(Wr, Wi); }
};

// per_sample_conv2d: weight [B, L, Ci, Hr, Wr], impulse [B, Ci, Hi, Wi] -> out [B, L, Hi, Wi]; each
// (l, i) pair has its own kernel, and output l sums over the Ci impulse channels.
struct PerSampleSizes {
  int64_t B, L, Ci, Hi, Wi, Hr, Wr;
  DC_HD int64_t Hq() const { return min64(Hr, Hi); }
  DC_HD int64_t Wq() const { return min64(Wr, Wi); }
};

// CPU direct kernels: responses are processed in groups of at most kCpuResponseGroup channels (a
// group's accumulators and broadcasts fit in the vector registers), split as evenly as possible.
constexpr int kCpuResponseGroup = 6;
DC_HD constexpr int64_t response_groups(int64_t Cr) { return ceil_div(Cr, kCpuResponseGroup); }
// First response r0 and count rb of group g.
DC_HD inline void response_group_range(int64_t Cr, int64_t g, int64_t* r0, int64_t* rb) {
  const int64_t n = response_groups(Cr), base = Cr / n, extra = Cr % n;
  *r0 = g * base + min64(g, extra);
  *rb = base + (g < extra ? 1 : 0);
}

// ---- FFT algorithm -------------------------------------------------------------------------------
// A linear convolution of Hi and Hq rows needs Hi + Hq - 1 rows so that no causal output row aliases;
// the size is rounded up to a 2,3,5-smooth number (even along the real-FFT axis).
inline int64_t next_smooth(int64_t n, bool even) {
  for (int64_t m = max64(1, n);; ++m) {
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
  return {s.Hq(), s.Wq(), next_smooth(s.Hi + s.Hq() - 1, false), next_smooth(s.Wi + s.Wq() - 1, true)};
}

// A real transform of width W keeps W / 2 + 1 columns (half_width) of its Hermitian spectrum. A sum over
// all W columns (Parseval) counts each kept column twice, for its unstored mirror image, except column 0
// and, when W is even, the Nyquist column W / 2: their images are themselves.
DC_HD constexpr int half_spectrum_weight(int64_t col, int64_t half_width, bool has_nyquist) {
  return col == 0 || (has_nyquist && col == half_width - 1) ? 1 : 2;
}

// ---- octave_downsample ---------------------------------------------------------------------------
//   y[..., m] = sum_{n<N} filter[n] * x[..., 2m + n - (N-1)/2]   (N odd, zeros outside x), m < ceil(T/2)
// `levels` = L applies the step L times; the L outputs are packed along the last dim:
// out[..., off[l] : off[l] + len[l]] is level l (len[l] = ceil(len[l-1] / 2), len[0] = T).
// 32 levels take any int32-sized signal down to one sample.
constexpr int kMaxOctaveLevels = 32;

struct OctaveLevels {
  int64_t levels = 0;
  int64_t total = 0;                       // packed length
  int64_t len[kMaxOctaveLevels + 1] = {};  // len[l], l = 0..levels
  int64_t off[kMaxOctaveLevels + 1] = {};  // off[l], l = 1..levels (off[0] unused)
};

// levels must be in [1, kMaxOctaveLevels] (the checks say so before calling this).
DC_HD inline OctaveLevels octave_levels(int64_t T, int64_t levels) {
  OctaveLevels s;
  s.levels = levels;
  s.len[0] = T;
  for (int64_t l = 1; l <= levels; ++l) {
    s.len[l] = (s.len[l - 1] + 1) / 2;
    s.off[l] = s.total;
    s.total += s.len[l];
  }
  return s;
}

// Input samples a block of outputs reads beyond its own span, on each side, per polyphase branch:
// output m reads x[2m - M .. 2m + M] (M = (taps-1)/2), i.e. phase samples m - P + 1 .. m + P - 1.
DC_HD constexpr int64_t octave_halo(int64_t taps) { return ((taps - 1) / 2 + 1) / 2 + 1; }

}  // namespace dc
