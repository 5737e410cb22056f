// Column transforms of the CPU FFT algorithm (see column_fft.h): the stage loops, compiled for AVX-512,
// AVX2 and the default target and picked by direct_isa() (DC_ISA_FUNCTION, row_kernels.h: torch's CPU
// capability, so ATEN_CPU_CAPABILITY lowers these with the direct kernels).
#include "column_fft.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <cstring>
#include <utility>

#include "row_kernels.h"
#include "simd_vec.h"

namespace dc {
namespace fft {
namespace {

#define DC_FFT_INLINE __attribute__((always_inline)) inline

// (re, im) -> (im, re) in every complex lane. Vectors go by reference: no vector-ABI dependence.
template <class T, int W, size_t... I>
DC_FFT_INLINE void swap_pairs(const typename Vec<T, W>::type& v, typename Vec<T, W>::type& out,
                              std::index_sequence<I...>) {
  out = __builtin_shufflevector(v, v, (I ^ 1)...);
}

// What a butterfly needs besides its data, as local values (no loads through pointers that the stores
// could alias): the radix constants, sign * i as a lane pattern, the twiddles of one j broadcast.
template <class T, int W>
struct Constants {
  using V = typename Vec<T, W>::type;
  T cos3, sin3, cos5[2][2], sin5[2][2];
  V isign;        // swap_pairs(v) * isign = sign * i * v
  V wr[4], wi[4];  // twiddle u + 1: re broadcast, (-im, +im, ...)

  Constants(const ColumnFft<T>& plan) : cos3(plan.cos3), sin3(plan.sin3) {
    for (int u = 0; u < 2; ++u)
      for (int t = 0; t < 2; ++t) {
        cos5[u][t] = plan.cos5[u][t];
        sin5[u][t] = plan.sin5[u][t];
      }
    alternating(isign, -plan.sign, plan.sign);
  }
  void set_twiddles(const T* tw, int count) {
    for (int u = 0; u < count; ++u) {
      alternating(wr[u], tw[2 * u], tw[2 * u]);
      alternating(wi[u], -tw[2 * u + 1], tw[2 * u + 1]);
    }
  }
  // (even, odd, even, odd, ...), built in memory: GCC warns on lane insertions into a fresh vector
  static void alternating(V& v, T even, T odd) {
    T lanes[W];
    for (int l = 0; l < W; ++l) lanes[l] = (l & 1) ? odd : even;
    std::memcpy(&v, lanes, sizeof(V));
  }
};

// The radix-P butterfly of one chunk of W values at offset f of the rows a[t] -> y[u] (y[u] null: not kept).
template <int P, class T, int W>
DC_FFT_INLINE void butterfly(const Constants<T, W>& k, const T* const* a, T* const* y, int64_t f, bool twiddled,
                             T scale) {
  using V = typename Vec<T, W>::type;
  constexpr auto lanes = std::make_index_sequence<W>{};
  using U = typename Vec<T, W>::unaligned;
  V x[P], b[P];
#pragma GCC unroll 8
  for (int t = 0; t < P; ++t) x[t] = *reinterpret_cast<const U*>(a[t] + f) * scale;
  if constexpr (P == 2) {
    b[0] = x[0] + x[1];
    b[1] = x[0] - x[1];
  } else if constexpr (P == 4) {
    const V t0 = x[0] + x[2], t1 = x[0] - x[2], t2 = x[1] + x[3], d = x[1] - x[3];
    V sd;
    swap_pairs<T, W>(d, sd, lanes);
    const V t3 = sd * k.isign;
    b[0] = t0 + t2;
    b[2] = t0 - t2;
    b[1] = t1 + t3;
    b[3] = t1 - t3;
  } else if constexpr (P == 3) {
    const V s1 = x[1] + x[2], si = k.sin3 * (x[1] - x[2]);
    const V sr = x[0] + k.cos3 * s1;
    V ssi;
    swap_pairs<T, W>(si, ssi, lanes);
    b[0] = x[0] + s1;
    b[1] = sr + ssi * k.isign;
    b[2] = sr - ssi * k.isign;
  } else {
    static_assert(P == 5, "radices 2, 3, 4, 5");
    const V s1 = x[1] + x[4], d1 = x[1] - x[4], s2 = x[2] + x[3], d2 = x[2] - x[3];
    b[0] = x[0] + s1 + s2;
    for (int u = 1; u <= 2; ++u) {
      const V sr = x[0] + k.cos5[u - 1][0] * s1 + k.cos5[u - 1][1] * s2;
      const V si = k.sin5[u - 1][0] * d1 + k.sin5[u - 1][1] * d2;
      V ssi;
      swap_pairs<T, W>(si, ssi, lanes);
      b[u] = sr + ssi * k.isign;
      b[5 - u] = sr - ssi * k.isign;
    }
  }
  if (y[0] != nullptr) *reinterpret_cast<U*>(y[0] + f) = b[0];
#pragma GCC unroll 8
  for (int u = 1; u < P; ++u) {
    if (y[u] == nullptr) continue;
    V r = b[u];
    if (twiddled) {  // r = b[u] * (wr + i wi)
      V sb;
      swap_pairs<T, W>(b[u], sb, lanes);
      r = b[u] * k.wr[u - 1] + sb * k.wi[u - 1];
    }
    *reinterpret_cast<U*>(y[u] + f) = r;
  }
}

// One stage: rows of src at or beyond src_rows read as `zero`; rows of dst at or beyond dst_rows are dropped.
template <int P, class T, int W>
DC_FFT_INLINE void stage(const ColumnFft<T>& plan, const typename ColumnFft<T>::Stage& st, const T* src,
                         int64_t src_rows, T* dst, int64_t dst_rows, int64_t F, const T* zero, T scale) {
  const int64_t m = st.m, s = st.s;
  Constants<T, W> k(plan);
  Constants<T, 2> k_tail(plan);
  for (int64_t j = 0; j < m; ++j) {
    const T* tw = plan.twiddles.data() + st.twiddle + 2 * (P - 1) * j;
    k.set_twiddles(tw, P - 1);
    k_tail.set_twiddles(tw, P - 1);
    for (int64_t q = 0; q < s; ++q) {
      const T* a[P];
      T* y[P];
      bool any_input = false, any_output = false;
      for (int t = 0; t < P; ++t) {
        const int64_t r = q + s * (j + t * m);
        a[t] = r < src_rows ? src + r * F : zero;
        any_input |= r < src_rows;
      }
      for (int u = 0; u < P; ++u) {
        const int64_t o = q + s * (P * j + u);
        y[u] = o < dst_rows ? dst + o * F : nullptr;
        any_output |= o < dst_rows;
      }
      if (!any_output) continue;
      if (!any_input) {  // all inputs are zero padding
        for (int u = 0; u < P; ++u)
          if (y[u] != nullptr) std::memset(y[u], 0, F * sizeof(T));
        continue;
      }
      int64_t f = 0;
      for (; f + W <= F; f += W) butterfly<P, T, W>(k, a, y, f, j != 0, scale);
      for (; f < F; f += 2) butterfly<P, T, 2>(k_tail, a, y, f, j != 0, scale);
    }
  }
}

template <int W, class T>
DC_FFT_INLINE void run_stages(const ColumnFft<T>& plan, const T* in, int64_t rows_in, T* out, int64_t rows_out,
                              T* work, int64_t F, T scale) {
  const int64_t n = plan.n;
  T* zero = work + 2 * n * F;
  std::memset(zero, 0, F * sizeof(T));
  const int64_t k = static_cast<int64_t>(plan.stages.size());
  if (k == 0) {  // n == 1
    if (rows_out > 0)
      for (int64_t f = 0; f < F; ++f) out[f] = rows_in > 0 ? in[f] * scale : T(0);
    return;
  }
  const T* src = in;
  int64_t src_rows = rows_in;
  for (int64_t i = 0; i < k; ++i) {
    const bool last = i == k - 1;
    T* dst = last ? out : work + (i % 2) * n * F;
    const int64_t dst_rows = last ? rows_out : n;
    const auto& st = plan.stages[i];
    switch (st.p) {
      case 2: stage<2, T, W>(plan, st, src, src_rows, dst, dst_rows, F, zero, scale); break;
      case 3: stage<3, T, W>(plan, st, src, src_rows, dst, dst_rows, F, zero, scale); break;
      case 4: stage<4, T, W>(plan, st, src, src_rows, dst, dst_rows, F, zero, scale); break;
      default: stage<5, T, W>(plan, st, src, src_rows, dst, dst_rows, F, zero, scale); break;
    }
    src = dst;
    src_rows = n;
    scale = T(1);
  }
}

// Entry points, one per dtype and instruction set (DC_ISA_FUNCTION, row_kernels.h: the vector width of each).
#define DC_COLUMN_FFT_ENTRY(T)                                                                                \
  DC_ISA_FUNCTION(void, run_columns,                                                                          \
                  (const ColumnFft<T>& plan, const T* in, int64_t rows_in, T* out, int64_t rows_out, T* work, \
                   int64_t F, T scale),                                                                       \
                  (plan, in, rows_in, out, rows_out, work, F, scale),                                         \
                  { run_stages<kVectorBytes / sizeof(T), T>(plan, in, rows_in, out, rows_out, work, F, scale); })
DC_COLUMN_FFT_ENTRY(float)
DC_COLUMN_FFT_ENTRY(double)
#undef DC_COLUMN_FFT_ENTRY

}  // namespace

template <class T>
ColumnFft<T>::ColumnFft(int64_t length, bool inverse) : n(length), sign(inverse ? T(1) : T(-1)) {
  TORCH_CHECK(n >= 1, "column transform of length ", n);
  std::vector<int> radices;
  int64_t rest = n;
  for (; rest % 4 == 0; rest /= 4) radices.push_back(4);
  for (int p : {2, 3, 5})
    for (; rest % p == 0; rest /= p) radices.push_back(p);
  TORCH_CHECK(rest == 1, "column transform length ", n, " is not 2,3,5-smooth");
  const double two_pi = 2.0 * std::acos(-1.0);
  int64_t len = n, s = 1;
  for (int p : radices) {
    const int64_t m = len / p;
    stages.push_back({p, m, s, static_cast<int64_t>(twiddles.size())});
    for (int64_t j = 0; j < m; ++j)
      for (int u = 1; u < p; ++u) {
        const double angle = two_pi * static_cast<double>((j * u) % len) / static_cast<double>(len);
        twiddles.push_back(static_cast<T>(std::cos(angle)));
        twiddles.push_back(static_cast<T>(sign * std::sin(angle)));
      }
    len = m;
    s *= p;
  }
  cos3 = static_cast<T>(std::cos(two_pi / 3));
  sin3 = static_cast<T>(std::sin(two_pi / 3));
  for (int u = 1; u <= 2; ++u)
    for (int t = 1; t <= 2; ++t) {
      cos5[u - 1][t - 1] = static_cast<T>(std::cos(two_pi * t * u / 5));
      sin5[u - 1][t - 1] = static_cast<T>(std::sin(two_pi * t * u / 5));
    }
}

template <class T>
void ColumnFft<T>::run(const T* in, int64_t rows_in, T* out, int64_t rows_out, T* work, int64_t row_floats,
                       T scale) const {
  run_columns(*this, in, rows_in, out, rows_out, work, row_floats, scale);
}

template struct ColumnFft<float>;
template struct ColumnFft<double>;

}  // namespace fft
}  // namespace dc
