// Register-blocked direct CPU kernels of dense_conv2d (forward, grad_impulse, grad_response) and of
// per_sample_conv2d (forward, grad_impulse, grad_weight).
//
// The same kernel source (direct_kernels.inc) is compiled once per instruction set, in its own
// translation unit under `#pragma GCC target` (direct_avx512.cpp, direct_avx2.cpp); direct_isa()
// picks one at run time. No translation unit is built with -march=native, so one binary runs on any
// x86-64 CPU; CPUs without AVX2+FMA (and non-x86 builds) use the simple kernels in dense_conv_cpu.cpp.
//
// Each entry point does the work of tasks [begin, end) of a task list that the caller splits across
// threads with at::parallel_for; every output element belongs to exactly one task and is summed in
// a fixed order, so results do not depend on the thread count.
#pragma once
// Everything direct_kernels.inc uses: it is included inside a namespace, so it cannot include.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "../shapes.h"

namespace dc {

// Raises "could not allocate" as a c10::Error. Defined in dense_conv_cpu.cpp, outside the ISA
// translation units, so that no ATen/c10 inline code is compiled under their target pragma.
[[noreturn]] void throw_scratch_alloc_failed(size_t bytes);

// Tasks: forward and grad_impulse run tasks (b*Ci + i)*chunks + c (row chunk c of plane (b, i));
// grad_response runs tasks b*response_groups(Cr) + g (response group g of sample b).
// per_sample_conv2d (output channels in groups of response_groups(L)): forward runs tasks
// (b*chunks + c)*groups + g, grad_impulse (b*chunks + c)*response_groups(Ci) + g (channel group g of
// the impulse), grad_weight (b*groups + g)*Ci + i.
#define DC_DIRECT_DECLS(ns)                                                                                      \
  namespace ns {                                                                                                 \
  void forward(const float* resp, const float* imp, float* out, const ConvSizes& s, int64_t chunks, int64_t b,  \
               int64_t e);                                                                                       \
  void forward(const double* resp, const double* imp, double* out, const ConvSizes& s, int64_t chunks,         \
               int64_t b, int64_t e);                                                                            \
  void grad_impulse(const float* g, const float* resp, float* gi, const ConvSizes& s, int64_t chunks,          \
                    int64_t b, int64_t e);                                                                       \
  void grad_impulse(const double* g, const double* resp, double* gi, const ConvSizes& s, int64_t chunks,       \
                    int64_t b, int64_t e);                                                                       \
  void grad_response(const float* g, const float* imp, float* gr, const ConvSizes& s, int64_t b, int64_t e);   \
  void grad_response(const double* g, const double* imp, double* gr, const ConvSizes& s, int64_t b, int64_t e); \
  void per_sample_forward(const float* w, const float* imp, float* out, const PerSampleSizes& s, int64_t chunks, \
                          int64_t b, int64_t e);                                                                 \
  void per_sample_forward(const double* w, const double* imp, double* out, const PerSampleSizes& s,             \
                          int64_t chunks, int64_t b, int64_t e);                                                 \
  void per_sample_grad_impulse(const float* g, const float* w, float* gi, const PerSampleSizes& s,              \
                               int64_t chunks, int64_t b, int64_t e);                                            \
  void per_sample_grad_impulse(const double* g, const double* w, double* gi, const PerSampleSizes& s,           \
                               int64_t chunks, int64_t b, int64_t e);                                            \
  void per_sample_grad_weight(const float* g, const float* imp, float* gw, const PerSampleSizes& s, int64_t b,  \
                              int64_t e);                                                                        \
  void per_sample_grad_weight(const double* g, const double* imp, double* gw, const PerSampleSizes& s,          \
                              int64_t b, int64_t e);                                                             \
  }

#if defined(__GNUC__) && defined(__x86_64__)
#define DC_HAVE_DIRECT 1
DC_DIRECT_DECLS(avx512)
DC_DIRECT_DECLS(avx2)
#else
#define DC_HAVE_DIRECT 0
#endif

// Which kernels run: torch's CPU capability (ATEN_CPU_CAPABILITY=default|avx2|avx512 lowers it),
// limited to what the CPU supports; simple = the row kernels of dense_conv_cpu.cpp.
enum class DirectIsa { simple, avx2, avx512 };
DirectIsa direct_isa();

}  // namespace dc
