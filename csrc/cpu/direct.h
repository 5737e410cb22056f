// Register-blocked direct CPU kernels of dense_conv2d (forward, grad_impulse, grad_response).
//
// The same kernel source (direct_kernels.inc) is compiled once per instruction set, in its own
// translation unit under `#pragma GCC target` (direct_avx512.cpp, direct_avx2.cpp), and the entry
// points below are picked at run time from what the CPU reports (__builtin_cpu_supports). No
// translation unit is built with -march=native, so one binary runs on any x86-64 CPU; CPUs without
// AVX2+FMA (and non-x86 builds) use the simple kernels in dense_conv_cpu.cpp.
//
// Each entry point does the work of tasks [begin, end) of a task list that the caller splits across
// threads with at::parallel_for; every output element belongs to exactly one task and is summed in
// a fixed order, so results do not depend on the thread count.
#pragma once
#include <cstdint>

namespace dc {

struct DirectSizes {
  int64_t B, Ci, Cr, Hi, Wi, Hr, Wr;
};

// Tasks: forward and grad_impulse run tasks (b*Ci + i)*chunks + c (row chunk c of plane (b, i));
// grad_response runs tasks b*ceil(Cr/6) + g (group g of at most 6 responses of sample b).
#define DC_DIRECT_DECLS(ns)                                                                                        \
  namespace ns {                                                                                                   \
  void forward(const float* resp, const float* imp, float* out, const DirectSizes& s, int64_t chunks, int64_t b,  \
               int64_t e);                                                                                         \
  void forward(const double* resp, const double* imp, double* out, const DirectSizes& s, int64_t chunks,         \
               int64_t b, int64_t e);                                                                              \
  void grad_impulse(const float* g, const float* resp, float* gi, const DirectSizes& s, int64_t chunks,          \
                    int64_t b, int64_t e);                                                                         \
  void grad_impulse(const double* g, const double* resp, double* gi, const DirectSizes& s, int64_t chunks,       \
                    int64_t b, int64_t e);                                                                         \
  void grad_response(const float* g, const float* imp, float* gr, const DirectSizes& s, int64_t b, int64_t e);   \
  void grad_response(const double* g, const double* imp, double* gr, const DirectSizes& s, int64_t b, int64_t e); \
  }

#if defined(__GNUC__) && defined(__x86_64__)
#define DC_HAVE_DIRECT 1
DC_DIRECT_DECLS(avx512)
DC_DIRECT_DECLS(avx2)
#else
#define DC_HAVE_DIRECT 0
#endif

// Which direct kernels this CPU runs: "avx512", "avx2" or "simple". DENSE_CONV_CPU_KERNELS=simple|avx2|avx512
// in the environment lowers the choice (tests use it to cover every path on one machine).
const char* direct_isa();

}  // namespace dc
