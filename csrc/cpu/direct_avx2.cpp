// The direct kernels (direct_kernels.inc) compiled for AVX2 + FMA: 8 floats / 4 doubles per register,
// 16 registers. Only called when the CPU reports avx2 and fma (see direct_isa() in dense_conv_cpu.cpp).
#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "direct.h"

#if DC_HAVE_DIRECT
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace dc {
namespace avx2 {

constexpr int kRegs = 16;

template <class T>
struct VecOps;
template <>
struct VecOps<float> {
  using v = __m256;
  static constexpr int N = 8;
  static inline v zero() { return _mm256_setzero_ps(); }
  static inline v load(const float* p) { return _mm256_loadu_ps(p); }
  static inline void store(float* p, v a) { _mm256_storeu_ps(p, a); }
  static inline v set1(float x) { return _mm256_set1_ps(x); }
  static inline v fma(v a, v b, v c) { return _mm256_fmadd_ps(a, b, c); }
  static inline v add(v a, v b) { return _mm256_add_ps(a, b); }
};
template <>
struct VecOps<double> {
  using v = __m256d;
  static constexpr int N = 4;
  static inline v zero() { return _mm256_setzero_pd(); }
  static inline v load(const double* p) { return _mm256_loadu_pd(p); }
  static inline void store(double* p, v a) { _mm256_storeu_pd(p, a); }
  static inline v set1(double x) { return _mm256_set1_pd(x); }
  static inline v fma(v a, v b, v c) { return _mm256_fmadd_pd(a, b, c); }
  static inline v add(v a, v b) { return _mm256_add_pd(a, b); }
};

#include "direct_kernels.inc"

}  // namespace avx2
}  // namespace dc
#pragma GCC pop_options
#endif
