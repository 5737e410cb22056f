// The direct kernels (direct_kernels.inc) compiled for AVX-512F: 16 floats / 8 doubles per register,
// 32 registers. Only called when the CPU reports avx512f (see direct_isa() in dense_conv_cpu.cpp).
#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "direct.h"

#if DC_HAVE_DIRECT
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
namespace dc {
namespace avx512 {

constexpr int kRegs = 32;

template <class T>
struct VecOps;
template <>
struct VecOps<float> {
  using v = __m512;
  static constexpr int N = 16;
  static inline v zero() { return _mm512_setzero_ps(); }
  static inline v load(const float* p) { return _mm512_loadu_ps(p); }
  static inline void store(float* p, v a) { _mm512_storeu_ps(p, a); }
  static inline v set1(float x) { return _mm512_set1_ps(x); }
  static inline v fma(v a, v b, v c) { return _mm512_fmadd_ps(a, b, c); }
  static inline v add(v a, v b) { return _mm512_add_ps(a, b); }
};
template <>
struct VecOps<double> {
  using v = __m512d;
  static constexpr int N = 8;
  static inline v zero() { return _mm512_setzero_pd(); }
  static inline v load(const double* p) { return _mm512_loadu_pd(p); }
  static inline void store(double* p, v a) { _mm512_storeu_pd(p, a); }
  static inline v set1(double x) { return _mm512_set1_pd(x); }
  static inline v fma(v a, v b, v c) { return _mm512_fmadd_pd(a, b, c); }
  static inline v add(v a, v b) { return _mm512_add_pd(a, b); }
};

#include "direct_kernels.inc"

}  // namespace avx512
}  // namespace dc
#pragma GCC pop_options
#endif
