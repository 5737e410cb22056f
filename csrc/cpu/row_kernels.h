// Innermost loops of the CPU kernels outside the direct kernels, compiled for several instruction sets and
// picked at run time by direct_isa() (direct.h), the same choice as the direct kernels and the column FFT:
// torch's CPU capability, so ATEN_CPU_CAPABILITY=avx2 (or default) lowers every hand-written CPU loop at once.
#pragma once
#include <cstdint>

#include "direct.h"

namespace dc {

#if DC_HAVE_DIRECT
#define DC_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define DC_TARGET_AVX2 __attribute__((target("avx2,fma")))  // "avx2" alone has no FMA: mul + add
#define DC_ISA_CASES(NAME, ARGS)                         \
  case DirectIsa::avx512: return NAME##_isa_avx512 ARGS; \
  case DirectIsa::avx2: return NAME##_isa_avx2 ARGS;     \
  case DirectIsa::simple: break;
#define DC_ISA_VARIANTS(RET, NAME, PARAMS, ...)                \
  DC_TARGET_AVX512 inline RET NAME##_isa_avx512 PARAMS {       \
    [[maybe_unused]] constexpr int kVectorBytes = 64;          \
    __VA_ARGS__                                                \
  }                                                            \
  DC_TARGET_AVX2 inline RET NAME##_isa_avx2 PARAMS {           \
    [[maybe_unused]] constexpr int kVectorBytes = 32;          \
    __VA_ARGS__                                                \
  }
#else
#define DC_ISA_CASES(NAME, ARGS) default: break;
#define DC_ISA_VARIANTS(RET, NAME, PARAMS, ...)
#endif

// DC_ISA_FUNCTION(RET, NAME, (params), (args), { body }) defines RET NAME(params): `body` compiled once per
// instruction set (its loops, and the always_inline functions it calls, vectorised for each), the variant
// direct_isa() names called. `args` are the parameter names, in order; `body` may use kVectorBytes, the
// variant's vector width in bytes (64, 32, 16). Every definition is inline (headers).
#define DC_ISA_FUNCTION(RET, NAME, PARAMS, ARGS, ...)         \
  DC_ISA_VARIANTS(RET, NAME, PARAMS, __VA_ARGS__)             \
  inline RET NAME##_isa_default PARAMS {                      \
    [[maybe_unused]] constexpr int kVectorBytes = 16;         \
    __VA_ARGS__                                               \
  }                                                           \
  inline RET NAME PARAMS {                                    \
    switch (direct_isa()) { DC_ISA_CASES(NAME, ARGS) }        \
    return NAME##_isa_default ARGS;                           \
  }

// o[x] += w * in[x] for x < n
#define DC_AXPY_ROW(T)                                                                                        \
  DC_ISA_FUNCTION(void, axpy_row, (T* __restrict__ o, T w, const T* __restrict__ in, int64_t n),       \
                  (o, w, in, n), {                                                                            \
                    _Pragma("omp simd") for (int64_t x = 0; x < n; ++x) o[x] += w * in[x];                    \
                  })
DC_AXPY_ROW(float)
DC_AXPY_ROW(double)
#undef DC_AXPY_ROW

// sum_x a[x] * b[x] for x < n
#define DC_DOT_ROW(T)                                                                                         \
  DC_ISA_FUNCTION(T, dot_row, (const T* __restrict__ a, const T* __restrict__ b, int64_t n), (a, b, n), { \
    T acc = T(0);                                                                                             \
    _Pragma("omp simd reduction(+ : acc)") for (int64_t x = 0; x < n; ++x) acc += a[x] * b[x];                \
    return acc;                                                                                               \
  })
DC_DOT_ROW(float)
DC_DOT_ROW(double)
#undef DC_DOT_ROW

}  // namespace dc
