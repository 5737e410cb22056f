// Column transforms of the CPU FFT algorithm: the length-n DFT down every column of a plane of n rows of
// interleaved complex values (row-major, rows contiguous), a whole row per vector loop.
//
// Why not MKL: after the row transforms the columns are strided; MKL's strided (or transposed-copy then
// contiguous) column transforms were the largest cost of the FFT ops on the AMD EPYC they were measured on
// (MKL takes its generic code path there). Here the columns of a row are the vector lanes, so every
// butterfly is a plain vector loop over the row (one lane swap per twiddle multiply), and pruning is free:
// rows of the input at or beyond `rows_in` are zero (not read), and only the first `rows_out` rows of the
// result are written (the causal crop of the inverse).
//
// The algorithm is the self-sorting (Stockham) decimation-in-frequency FFT with radices 4, 2, 3 and 5
// (n must be 2,3,5-smooth, as fft_plan's sizes are): a stage of radix p on sub-sequences of length
// len = p m, s of them interleaved, maps rows q + s (j + t m) (t < p) to rows q + s (p j + u) (u < p):
//   y_u = w^(j u) sum_t x_t e^(sign 2 pi i t u / p),  w = e^(sign 2 pi i / len)
// then continues with length m and s p sequences; after the last stage the rows are in natural order.
// Intermediate stages ping-pong between two scratch planes; the first reads `in`, the last writes `out`.
//
// Deterministic: a fixed sequence of operations per element, independent of threads and vector width
// only up to the order of a complex product's two terms (same in every lane).
#pragma once
#include <cstdint>
#include <vector>

namespace dc {
namespace fft {

template <class T>
struct ColumnFft {
  struct Stage {
    int p;            // radix
    int64_t m, s;     // sub-sequence length after this stage, sequences before it
    int64_t twiddle;  // offset in `twiddles` of this stage's [m][p - 1] (re, im) pairs w^(j u)
  };
  int64_t n = 1;
  T sign = -1;   // -1 forward, +1 inverse (unscaled)
  std::vector<Stage> stages;
  std::vector<T> twiddles;
  // radix constants: cos / sin of 2 pi t u / p for the odd radices, [u][t] with u, t in 1..(p-1)/2
  T cos3, sin3, cos5[2][2], sin5[2][2];

  ColumnFft(int64_t n, bool inverse);

  // out[r] (r < rows_out, row stride `row_floats`) = scale * DFT down the columns of in (rows r >= rows_in
  // are zero); work: 2 * n * row_floats scratch. out, in and work must not overlap.
  void run(const T* in, int64_t rows_in, T* out, int64_t rows_out, T* work, int64_t row_floats, T scale) const;
};

extern template struct ColumnFft<float>;
extern template struct ColumnFft<double>;

}  // namespace fft
}  // namespace dc
