// The direct kernels (direct_kernels.inc) for AVX-512F: 64-byte registers, 32 of them.
// Only called when direct_isa() (dense_conv_cpu.cpp) is DirectIsa::avx512.
#include "direct.h"

#if DC_HAVE_DIRECT
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
namespace dc::avx512 {
constexpr int kVectorBytes = 64;
constexpr int kRegs = 32;
#include "direct_kernels.inc"
}  // namespace dc::avx512
#pragma GCC pop_options
#endif
