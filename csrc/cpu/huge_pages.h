// advise_huge_pages: see below. Shared by the direct (dense_conv_cpu.cpp) and FFT (fft_conv.cpp) ops.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace dc {

// A fresh output of hundreds of MB costs one page fault per 4 KiB page when the kernels first write
// it (dense 5x5 forward: about half of its time). Asking for transparent huge pages on this one
// buffer (madvise, before any page is touched) cuts the faults 512-fold. Only this allocation is
// advised: the allocator's global settings are left alone; without THP support this does nothing.
inline void advise_huge_pages(const at::Tensor& t) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const size_t bytes = t.nbytes();
  if (bytes < 8 * kHuge) return;
  const uintptr_t a = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t lo = (a + kHuge - 1) & ~(kHuge - 1), hi = (a + bytes) & ~(kHuge - 1);
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
#else
  (void)t;
#endif
}

}  // namespace dc
