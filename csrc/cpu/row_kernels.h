// Innermost loops of the CPU kernels, compiled for several instruction sets and picked at run time
// (GCC function multi-versioning), so one binary uses AVX-512 or AVX2 where the CPU has them.
#pragma once
#include <cstdint>

namespace dc {

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define DC_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DC_MULTIVERSION
#endif

// o[x] += w * in[x] for x < n
DC_MULTIVERSION inline void axpy_row(float* __restrict__ o, float w, const float* __restrict__ in, int64_t n) {
#pragma omp simd
  for (int64_t x = 0; x < n; ++x) o[x] += w * in[x];
}
DC_MULTIVERSION inline void axpy_row(double* __restrict__ o, double w, const double* __restrict__ in, int64_t n) {
#pragma omp simd
  for (int64_t x = 0; x < n; ++x) o[x] += w * in[x];
}

// sum_x a[x] * b[x] for x < n
DC_MULTIVERSION inline float dot_row(const float* __restrict__ a, const float* __restrict__ b, int64_t n) {
  float acc = 0.f;
#pragma omp simd reduction(+ : acc)
  for (int64_t x = 0; x < n; ++x) acc += a[x] * b[x];
  return acc;
}
DC_MULTIVERSION inline double dot_row(const double* __restrict__ a, const double* __restrict__ b, int64_t n) {
  double acc = 0.0;
#pragma omp simd reduction(+ : acc)
  for (int64_t x = 0; x < n; ++x) acc += a[x] * b[x];
  return acc;
}

}  // namespace dc
