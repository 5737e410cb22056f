// The direct kernels (direct_kernels.inc) for AVX2 + FMA: 32-byte registers, 16 of them.
// Only called when direct_isa() (dense_conv_cpu.cpp) is DirectIsa::avx2.
#include "direct.h"

#if DC_HAVE_DIRECT
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace dc::avx2 {
constexpr int kVectorBytes = 32;
constexpr int kRegs = 16;
#include "direct_kernels.inc"
}  // namespace dc::avx2
#pragma GCC pop_options
#endif
