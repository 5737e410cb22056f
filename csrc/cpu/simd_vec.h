// Fixed-width vectors for hand-blocked CPU loops (GCC vector extensions): the caller's target (row_kernels.h
// DC_ISA_FUNCTION, or a target attribute) decides the instructions.
#pragma once

namespace dc {

// W values of T in one vector.
template <class T, int W>
struct Vec {
  typedef T type __attribute__((vector_size(W * sizeof(T))));
  // loads and stores at any element offset (may_alias: arrays of T). Not memcpy into vector arrays: under
  // AVX2 that went through the stack in 16-byte halves (store-forwarding stalls, 3x slower measured).
  typedef T unaligned __attribute__((vector_size(W * sizeof(T)), aligned(sizeof(T)), may_alias));
};

}  // namespace dc
