// CUDA kernels of octave_downsample (fused low-pass FIR + decimation by 2) and their launch code.
//
// No ATen here: compiled by nvcc for the extension (octave_downsample_cuda.cu) and by g++ under the
// test-only CPU emulator (tests/emu/). Rows are contiguous; the `levels` outputs are packed per row
// (csrc/shapes.h, OctaveLevels):
//
//   y[m]      = sum_n f[n] x[2m + n - M]           (M = (N-1)/2, zeros outside x)
//   grad_x[p] = sum_m G[m] f[p - 2m + M]           G = total gradient of the level's output
//   grad_f[n] = sum_levels sum_rows sum_m G[m] x[2m + n - M]
//
// Split by the parity of e = n - M, each is a pair of plain correlations: y[m] = sum_j f[M + 2j] x[2(m + j)]
// + sum_j f[M + 2j + 1] x[2(m + j) + 1] (the even and the odd samples), grad_x[2q] = sum_j f[M + 2j] G[q - j],
// grad_x[2q + 1] = sum_j f[M + 2j + 1] G[q - j].
//
// Register blocking: a forward / backward thread computes kRun consecutive outputs and slides a window of
// 2 kRun samples over its staged stream, one shared load per new sample serving kRun outputs and the taps
// arriving kRun at a time as broadcast vectors (LDS.128); a grad_filter thread computes kLags consecutive taps
// of one segment of outputs, sliding its window two samples per output. The staged streams are stored "by
// phases" (phase_pitch below) so that the lanes of a warp, kRun (kLags) samples apart, read consecutive words:
// no bank conflicts. Exactly zero taps (half-band filters) are skipped, uniformly for the whole block: each
// phase runs only over its first to last nonzero tap, and a zero tap inside that range skips its multiplies.
// Every shared-memory loop runs whole warps (its trip count is the same for the lanes of a warp), so that
// the lanes issue their shared accesses together. Accumulation is in float (double for double). grad_filter
// writes per-block partial sums, reduced in a fixed order by a second kernel: deterministic, no atomics.
#pragma once

#include <climits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "compat.cuh"
#include "dense_conv_kernels.cuh"  // load_shared_vec

namespace dc {
namespace oct {

constexpr int kThreads = 256;
constexpr int kRun = 8;                     // consecutive outputs per forward / backward thread
constexpr int kBlockOut = kThreads * kRun;  // outputs (backward: output pairs) per block
constexpr int kLags = 16;                   // consecutive taps per grad_filter thread

// rows signals of lv.len[0] samples each, a filter of `taps` taps, lv.levels levels. The host launch
// functions need rows >= 1 and lv.len[0] >= 1 (the callers return early on empty tensors), so every
// level has at least one sample.
struct OctaveProblem {
  int64_t rows, taps;
  OctaveLevels lv;
};

// Layout "by R phases" of a staged stream: sample i at [(i % R) * pitch + i / R]. The samples c, c + R, ..
// of R consecutive threads' runs (R t + c) are then consecutive words, and with pitch = L / R (mod L),
// L = the acc_t words of the 32 banks, so are the stores of 32 consecutive samples (R phases x L / R rows).
template <typename acc_t, int R>
DC_HD constexpr int64_t phase_pitch(int64_t rows) {
  constexpr int64_t L = 128 / (int64_t)sizeof(acc_t);
  return rows + ((L / R - rows) % L + L) % L;
}

// ---- forward / backward geometry ----

// Staged samples per stream: the block's kBlockOut outputs, the halo P on both sides and the window's
// overrun past the last tap (the taps start at a multiple of kRun and end a whole group later): a whole
// number of warps' stores.
DC_HD constexpr int64_t staged_len(int64_t taps) { return round_up(kBlockOut + 2 * octave_halo(taps) + 2 * kRun, 32); }
// Tap slots for both phases: each has at most (taps + 1) / 2 taps, up to kRun - 1 leading zeros (its
// start rounded down to a multiple of kRun) and is padded to whole groups of kRun.
DC_HD constexpr int64_t tap_slots(int64_t taps) { return round_up(2 * round_up((taps + 1) / 2 + kRun - 1, kRun), 32); }

template <typename acc_t>
DC_HD constexpr int64_t stream_pitch(int64_t taps) {
  return phase_pitch<acc_t, kRun>(staged_len(taps) / kRun);
}

// The taps of one block, per phase (0: even e = n - M, 1: odd e) in the order its run consumes them: slot u
// of phase ph multiplies sample kRun t + k + c0[ph] + u of the staged stream into output k of thread t.
struct PhaseTaps {
  int c0[2];      // first sample offset, a multiple of kRun
  int lead[2];    // zero slots before the first nonzero tap
  int lo[2], hi[2];  // j of the first and last nonzero tap f[M + 2j + ph] (lo > hi: none)
  int groups[2];  // groups of kRun slots
  int base[2];    // first slot in the block's tap buffer
};

// First and last nonzero tap of each phase, by every warp from its own loads and shuffles (no shared memory,
// no barrier); every lane loads on every trip (a clamped index), so the lanes' loads stay in step.
template <typename T>
__device__ __forceinline__ void nonzero_range(const T* __restrict__ f, int taps, int (&lo)[2], int (&hi)[2]) {
  using acc_t = typename AccType<T>::type;
  const int M = (taps - 1) / 2, lane = threadIdx.x % 32;
  lo[0] = lo[1] = INT_MAX;
  hi[0] = hi[1] = INT_MIN;
  for (int n0 = 0; n0 < taps; n0 += 32) {
    const int n = n0 + lane;
    const acc_t v = acc_t(f[n < taps ? n : taps - 1]);
    const int e = n - M, ph = e & 1, j = (e - ph) / 2;
    if (n < taps && v != acc_t(0)) {
#pragma unroll
      for (int p = 0; p < 2; ++p)  // not lo[ph]: a runtime index would put the arrays in local memory
        if (p == ph) {
          lo[p] = j < lo[p] ? j : lo[p];
          hi[p] = j > hi[p] ? j : hi[p];
        }
    }
  }
#pragma unroll
  for (int s = 16; s > 0; s /= 2)
#pragma unroll
    for (int ph = 0; ph < 2; ++ph) {
      const int l = __shfl_xor_sync(0xffffffffu, lo[ph], s), h = __shfl_xor_sync(0xffffffffu, hi[ph], s);
      lo[ph] = l < lo[ph] ? l : lo[ph];
      hi[ph] = h > hi[ph] ? h : hi[ph];
    }
}

// The block's phase taps for a stream staged from sample offset -P: the forward reads sample m + j
// (slot order j = lo..hi), the backward sample q - j (reversed: j = hi..lo). Stages them, as acc_t, in hs
// (tap_slots(taps) slots, zeros between and after the phases).
template <typename T>
__device__ PhaseTaps stage_phase_taps(const T* __restrict__ f, int taps, bool reversed, typename AccType<T>::type* hs) {
  using acc_t = typename AccType<T>::type;
  const int M = (taps - 1) / 2, P = (int)octave_halo(taps);
  PhaseTaps pt;
  nonzero_range(f, taps, pt.lo, pt.hi);
  int slots = 0;
#pragma unroll
  for (int ph = 0; ph < 2; ++ph) {
    const bool any = pt.lo[ph] <= pt.hi[ph];
    const int c = !any ? 0 : reversed ? P - pt.hi[ph] : P + pt.lo[ph];  // >= 1: the halo covers every tap
    pt.c0[ph] = c / kRun * kRun;
    pt.lead[ph] = c - pt.c0[ph];
    pt.groups[ph] = any ? (int)ceil_div(pt.lead[ph] + pt.hi[ph] - pt.lo[ph] + 1, kRun) : 0;
    pt.base[ph] = slots;
    slots += pt.groups[ph] * kRun;
  }
  const int n_slots = (int)tap_slots(taps);
  for (int v = threadIdx.x; v < n_slots; v += kThreads) {  // n_slots: whole warps
    // selects, not pt.x[ph]: a runtime index would put pt in local memory
    const int ph = v < pt.base[1] ? 0 : 1, lo = ph ? pt.lo[1] : pt.lo[0], hi = ph ? pt.hi[1] : pt.hi[0];
    const int u = v - (ph ? pt.base[1] + pt.lead[1] : pt.lead[0]);
    const bool valid = v < slots && lo <= hi && u >= 0 && u <= hi - lo;  // (an empty phase: lo = INT_MAX)
    const int j = !valid ? 0 : reversed ? hi - u : lo + u;
    const acc_t w = acc_t(f[valid ? M + 2 * j + ph : 0]);
    hs[v] = valid ? w : acc_t(0);
  }
  return pt;
}

// acc[k] += sum over the phase's slots u of h[u] * s[kRun t + k + c0 + u], s staged by kRun phases.
template <typename acc_t>
__device__ __forceinline__ void run_phase(acc_t (&acc)[kRun], const acc_t* s, int pitch, int c0, int groups,
                                          const acc_t* h) {
  if (groups == 0) return;  // no nonzero tap in this phase
  const acc_t* row = s + threadIdx.x + c0 / kRun;  // sample kRun t + c0: phase 0 of row t + c0 / kRun
  acc_t w[2 * kRun];  // samples kRun t + c0 + kRun g + [0, 2 kRun)
#pragma unroll
  for (int c = 0; c < kRun; ++c) w[c] = row[c * pitch];
  for (int g = 0; g < groups; ++g) {
    ++row;
#pragma unroll
    for (int c = 0; c < kRun; ++c) w[kRun + c] = row[c * pitch];
    acc_t hv[kRun];
    load_shared_vec(hv, h + g * kRun);
#pragma unroll
    for (int d = 0; d < kRun; ++d) {
      if (hv[d] == acc_t(0)) continue;  // the same tap for every thread: no divergence
#pragma unroll
      for (int k = 0; k < kRun; ++k) acc[k] += hv[d] * w[d + k];
    }
#pragma unroll
    for (int c = 0; c < kRun; ++c) w[c] = w[kRun + c];
  }
}

// Sample `p` of a row of `len` samples as acc_t, 0 outside; every lane loads (a clamped index, len >= 1).
template <typename acc_t, typename T>
__device__ __forceinline__ acc_t load_or_zero(const T* __restrict__ x, long long p, long long len) {
  const acc_t v = acc_t(x[p < 0 ? 0 : p < len ? p : len - 1]);
  return p >= 0 && p < len ? v : acc_t(0);
}

// ---- forward: one level. in: row r at in + r*in_stride (in_len samples); out likewise. ----
template <typename T>
DC_HD constexpr int64_t forward_smem_elems(int64_t taps) {
  using acc_t = typename AccType<T>::type;
  return 2 * kRun * stream_pitch<acc_t>(taps) + tap_slots(taps);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) octave_forward_kernel(const T* __restrict__ in, long long in_stride,
                                                                  long long in_len, T* __restrict__ out,
                                                                  long long out_stride, long long out_len,
                                                                  const T* __restrict__ f, int taps) {
  using acc_t = typename AccType<T>::type;
  const long long P = octave_halo(taps), W = staged_len(taps);
  const int pitch = (int)stream_pitch<acc_t>(taps);
  acc_t* ev = dc_dynamic_smem<acc_t>();  // x[2(m0 - P + i)], by kRun phases
  acc_t* od = ev + kRun * pitch;         // x[2(m0 - P + i) + 1]
  acc_t* hs = od + kRun * pitch;
  const long long nblk = ceil_div(out_len, kBlockOut);
  const long long r = blockIdx.x / nblk, m0 = (blockIdx.x % nblk) * kBlockOut;
  const T* x = in + r * in_stride;
  for (long long i = threadIdx.x; i < W; i += kThreads) {
    const long long p = 2 * (m0 - P + i);
    const int at = (int)(i % kRun) * pitch + (int)(i / kRun);
    ev[at] = load_or_zero<acc_t>(x, p, in_len);
    od[at] = load_or_zero<acc_t>(x, p + 1, in_len);
  }
  const PhaseTaps pt = stage_phase_taps(f, taps, false, hs);
  __syncthreads();
  acc_t acc[kRun];
#pragma unroll
  for (int k = 0; k < kRun; ++k) acc[k] = acc_t(0);
  run_phase(acc, ev, pitch, pt.c0[0], pt.groups[0], hs + pt.base[0]);
  run_phase(acc, od, pitch, pt.c0[1], pt.groups[1], hs + pt.base[1]);
  // through shared memory (ev, by kRun phases: output kRun t + k at phase k, row t), so that consecutive
  // lanes store consecutive outputs
  __syncthreads();
#pragma unroll
  for (int k = 0; k < kRun; ++k) ev[k * pitch + threadIdx.x] = acc[k];
  __syncthreads();
  T* y = out + r * out_stride;
#pragma unroll
  for (int j = threadIdx.x; j < kBlockOut; j += kThreads) {
    const acc_t v = ev[(j % kRun) * pitch + j / kRun];
    if (m0 + j < out_len) y[m0 + j] = T(v);
  }
}

// ---- backward through one level: gx[p] = sum_m G[m] f[p - 2m + M] (+ add[p]), p < gx_len ----
// G rows of type G_t (T for the incoming gradient, acc_t for intermediate levels); gx: contiguous
// rows of gx_len values of type O_t. Thread t computes the pairs q = q0 + kRun t + k, gx[2q] from the even
// taps and gx[2q + 1] from the odd ones, both over G[q - j].
constexpr int kPairPhases = 2 * kRun;  // the outputs' layout in shared memory: 2 kRun consecutive per thread

template <typename T>
DC_HD constexpr int64_t backward_smem_elems(int64_t taps) {
  using acc_t = typename AccType<T>::type;
  return max64(kRun * stream_pitch<acc_t>(taps) + tap_slots(taps),
               kPairPhases * phase_pitch<acc_t, kPairPhases>(kThreads));
}

template <typename T, typename G_t, typename O_t>
__global__ void __launch_bounds__(kThreads) octave_backward_kernel(const G_t* __restrict__ g, long long g_stride,
                                                                   long long g_len, O_t* __restrict__ gx,
                                                                   long long gx_len,
                                                                   const T* __restrict__ add, long long add_stride,
                                                                   const T* __restrict__ f, int taps) {
  using acc_t = typename AccType<T>::type;
  const long long P = octave_halo(taps), W = staged_len(taps);
  const int pitch = (int)stream_pitch<acc_t>(taps);
  acc_t* gb = dc_dynamic_smem<acc_t>();  // G[q0 - P + i], by kRun phases
  acc_t* hs = gb + kRun * pitch;
  const long long nblk = ceil_div((gx_len + 1) / 2, kBlockOut);
  const long long r = blockIdx.x / nblk, q0 = (blockIdx.x % nblk) * kBlockOut;
  const G_t* gr = g + r * g_stride;
  for (long long i = threadIdx.x; i < W; i += kThreads)
    gb[(int)(i % kRun) * pitch + (int)(i / kRun)] = load_or_zero<acc_t>(gr, q0 - P + i, g_len);
  const PhaseTaps pt = stage_phase_taps(f, taps, true, hs);
  __syncthreads();
  acc_t ae[kRun], ao[kRun];
#pragma unroll
  for (int k = 0; k < kRun; ++k) ae[k] = ao[k] = acc_t(0);
  run_phase(ae, gb, pitch, pt.c0[0], pt.groups[0], hs + pt.base[0]);
  run_phase(ao, gb, pitch, pt.c0[1], pt.groups[1], hs + pt.base[1]);
  // through shared memory, by 2 kRun phases: gx[2 q0 + j], j = 2 (kRun t + k) + parity, at phase 2k + parity
  // of row t
  __syncthreads();
  acc_t* os = dc_dynamic_smem<acc_t>();
  const int opitch = (int)phase_pitch<acc_t, kPairPhases>(kThreads);
#pragma unroll
  for (int k = 0; k < kRun; ++k) {
    os[2 * k * opitch + threadIdx.x] = ae[k];
    os[(2 * k + 1) * opitch + threadIdx.x] = ao[k];
  }
  __syncthreads();
  O_t* o = gx + r * gx_len;
  const T* a = add ? add + r * add_stride : nullptr;
#pragma unroll
  for (int j = threadIdx.x; j < 2 * kBlockOut; j += kThreads) {
    const acc_t v = os[(j % kPairPhases) * opitch + j / kPairPhases];
    const long long p = 2 * q0 + j;
    if (p < gx_len) o[p] = O_t(v + (a ? acc_t(a[p]) : acc_t(0)));
  }
}

// ---- filter gradient of one level: partial[block][n] = sum_{m in block} G[m] x[2m + n - M] ----
// Thread t = seg * tiles + tile (one round; tiles > kThreads: tile = t, t + kThreads, .. and one segment)
// sums taps n = kLags tile + [0, kLags) over the block's outputs seg_len seg + [0, seg_len), sliding its
// window of x (staged by kLags phases from x[2 m0 - M]) two samples per output. Segment s starts 2 seg_len
// = kLags * stride samples, `stride` rows, after segment s - 1; with stride = tiles (mod 32) the lanes of a
// warp read rows seg * stride + tile = t + const: consecutive words. The segments' sums meet in shared
// memory and are added in segment order.
struct FilterGradGeometry {
  int tiles, tiles_per_round, segs, stride, seg_len, block_out;
};

DC_HD constexpr FilterGradGeometry filter_grad_geometry(int64_t taps) {
  const int tiles = (int)ceil_div(taps, kLags), per_round = tiles < kThreads ? tiles : kThreads;
  const int segs = kThreads / per_round;
  const int min_stride = (int)ceil_div(128, segs);  // a block sums at least 8 * 128 = 1024 outputs
  const int stride = min_stride + ((tiles - min_stride) % 32 + 32) % 32;
  const int seg_len = kLags / 2 * stride;  // a multiple of 8: whole loop trips
  return {tiles, per_round, segs, stride, seg_len, segs * seg_len};
}

// Shared memory of grad_filter, acc_t elements: x staged by kLags phases (its space later holds the
// segments' sums, by kLags phases of kThreads rows), then G, segment s at s * g_pitch.
struct FilterGradSmem {
  int64_t x_len, x_pitch, sums_pitch, g_offset, g_pitch, g_len, total;
};

template <typename acc_t>
DC_HD constexpr FilterGradSmem filter_grad_smem(int64_t taps) {
  const FilterGradGeometry q = filter_grad_geometry(taps);
  const int64_t x_len = round_up(2 * (int64_t)q.block_out + kLags * (int64_t)q.tiles, 32);
  const int64_t x_pitch = phase_pitch<acc_t, kLags>(x_len / kLags);
  const int64_t sums_pitch = phase_pitch<acc_t, kLags>(kThreads);
  const int64_t g_offset = kLags * max64(x_pitch, sums_pitch);
  // seg_len is a multiple of 8, an even number of 16-byte vectors: one more makes it odd, so that the first
  // vectors of 8 consecutive segments, which a quarter warp may read together, lie in 8 different banks
  const int64_t g_pitch = q.seg_len + 16 / (int64_t)sizeof(acc_t);
  const int64_t g_len = round_up(q.block_out, 32);
  return {x_len, x_pitch, sums_pitch, g_offset, g_pitch, g_len, g_offset + ceil_div(g_len, q.seg_len) * g_pitch};
}

// acc[a] = sum over the segment's outputs of G[m] * x[2m + kLags tile + a - M]
template <typename acc_t>
__device__ __forceinline__ void filter_grad_tile(acc_t (&acc)[kLags], const acc_t* xs, int x_pitch, const acc_t* gs,
                                                 int seg_len, int row0) {
#pragma unroll
  for (int a = 0; a < kLags; ++a) acc[a] = acc_t(0);
  const acc_t* row = xs + row0;  // the segment's first sample for this tile: phase 0
  acc_t w[2 * kLags];            // x samples 2 ml + [0, 2 kLags) of the tile's window
#pragma unroll
  for (int c = 0; c < kLags; ++c) w[c] = row[c * x_pitch];
  for (int ml = 0; ml < seg_len; ml += kLags / 2) {
    ++row;
#pragma unroll
    for (int c = 0; c < kLags; ++c) w[kLags + c] = row[c * x_pitch];
    acc_t gv[kLags / 2];
    load_shared_vec(gv, gs + ml);
#pragma unroll
    for (int d = 0; d < kLags / 2; ++d)
#pragma unroll
      for (int a = 0; a < kLags; ++a) acc[a] += gv[d] * w[2 * d + a];
#pragma unroll
    for (int c = 0; c < kLags; ++c) w[c] = w[kLags + c];
  }
}

template <typename T, typename G_t>
__global__ void __launch_bounds__(kThreads) octave_filter_grad_kernel(const G_t* __restrict__ g, long long g_stride,
                                                                      long long g_len, const T* __restrict__ in,
                                                                      long long in_stride, long long in_len,
                                                                      typename AccType<T>::type* __restrict__ partial,
                                                                      int taps) {
  using acc_t = typename AccType<T>::type;
  const int M = (taps - 1) / 2;
  const FilterGradGeometry q = filter_grad_geometry(taps);
  const FilterGradSmem sm = filter_grad_smem<acc_t>(taps);
  const int x_pitch = (int)sm.x_pitch, g_pitch = (int)sm.g_pitch, t = threadIdx.x;
  acc_t* xs = dc_dynamic_smem<acc_t>();
  acc_t* gs = xs + sm.g_offset;
  const long long nblk = ceil_div(g_len, q.block_out);
  const long long r = blockIdx.x / nblk, m0 = (blockIdx.x % nblk) * q.block_out;
  const T* x = in + r * in_stride;
  const G_t* gr = g + r * g_stride;
  for (long long i = t; i < sm.x_len; i += kThreads)
    xs[(int)(i % kLags) * x_pitch + (int)(i / kLags)] = load_or_zero<acc_t>(x, 2 * m0 - M + i, in_len);
  for (int m = t; m < sm.g_len; m += kThreads)
    gs[m / q.seg_len * g_pitch + m % q.seg_len] = load_or_zero<acc_t>(gr, m0 + m, g_len);
  __syncthreads();
  acc_t acc[kLags];
  const int seg = t / q.tiles_per_round;
  if (q.segs == 1) {  // > kThreads / 2 tiles: one segment, the thread's tiles straight to `partial`
    for (int tile = t; tile < q.tiles; tile += kThreads) {
      filter_grad_tile(acc, xs, x_pitch, gs, q.seg_len, tile);
#pragma unroll
      for (int a = 0; a < kLags; ++a)
        if (kLags * tile + a < taps) partial[(long long)blockIdx.x * taps + kLags * tile + a] = acc[a];
    }
    return;
  }
  const int tile = t % q.tiles_per_round;
  const bool active = seg < q.segs;
  if (active) filter_grad_tile(acc, xs, x_pitch, gs + seg * g_pitch, q.seg_len, seg * q.stride + tile);
  __syncthreads();  // x is read: its space takes the segments' sums, sum a of thread t at [a * sums_pitch + t]
  acc_t* sums = xs;
  const int sums_pitch = (int)sm.sums_pitch;
  if (active)
#pragma unroll
    for (int a = 0; a < kLags; ++a) sums[a * sums_pitch + t] = acc[a];
  __syncthreads();
  for (int n = t; n < taps; n += kThreads) {
    const acc_t* s = sums + (n % kLags) * sums_pitch + n / kLags;
    acc_t total = acc_t(0);
    for (int sg = 0; sg < q.segs; ++sg) total += s[sg * q.tiles];
    partial[(long long)blockIdx.x * taps + n] = total;
  }
}

// grad_f[n] = sum_j partial[j][n], j in order
template <typename T>
__global__ void __launch_bounds__(kThreads) octave_reduce_kernel(const typename AccType<T>::type* __restrict__ partial,
                                                                 long long parts, T* __restrict__ grad_f, int taps) {
  using acc_t = typename AccType<T>::type;
  const int n = blockIdx.x * kThreads + threadIdx.x;
  if (n >= taps) return;
  acc_t acc = acc_t(0);
  for (long long j = 0; j < parts; ++j) acc += partial[j * taps + n];
  grad_f[n] = T(acc);
}

// ------------------------------------------------------------------------------------------------
// host launch functions (all on `stream`, in order)
// ------------------------------------------------------------------------------------------------

// rows * blocks_per_row blocks of kThreads (block b: row b / blocks_per_row, chunk b % blocks_per_row)
template <typename T>
LaunchConfig level_config(int64_t rows, int64_t blocks_per_row, int64_t smem_elems) {
  return {rows * blocks_per_row, 1, 1, kThreads, (size_t)smem_elems * sizeof(typename AccType<T>::type)};
}

// The dynamic shared memory grows with the filter (the staged windows' halos, the taps; grad_filter's
// window of 2 block_out + taps samples): past the default 48 KiB (the forward from 979 taps in double and
// 4019 in float, the backward from 2643 in double, grad_filter in double always: 50-75 KiB) the kernel must
// opt in, up to the device's per-block limit (227 KiB on sm_90).
template <typename Kernel>
void allow_smem(Kernel* kernel, size_t bytes, int64_t taps) {
  if (bytes <= 48 * 1024) return;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes) != cudaSuccess) {
    (void)cudaGetLastError();  // not left for the next launch check
    throw std::runtime_error("octave_downsample: a filter of " + std::to_string(taps) + " taps needs " +
                             std::to_string(bytes) + " bytes of shared memory per block, more than this GPU allows");
  }
}

template <typename scalar_t>
void launch_octave_forward(const scalar_t* x, const scalar_t* f, scalar_t* out, const OctaveProblem& s,
                           cudaStream_t stream) {
  const OctaveLevels& lv = s.lv;
  for (int64_t l = 1; l <= lv.levels; ++l) {
    const scalar_t* in = l == 1 ? x : out + lv.off[l - 1];
    const int64_t in_stride = l == 1 ? lv.len[0] : lv.total;
    const LaunchConfig c =
        level_config<scalar_t>(s.rows, ceil_div(lv.len[l], kBlockOut), forward_smem_elems<scalar_t>(s.taps));
    allow_smem(octave_forward_kernel<scalar_t>, c.smem_bytes, s.taps);
    DC_LAUNCH(octave_forward_kernel<scalar_t>, checked_grid(c, "octave_downsample"), c.threads, c.smem_bytes, stream)(
        in, in_stride, lv.len[l - 1], out + lv.off[l], lv.total, lv.len[l], f, (int)s.taps);
  }
}

// Workspace (elements of acc_t) for the gradient chain: two [rows, len_1] buffers.
inline int64_t octave_chain_workspace(const OctaveProblem& s) { return s.lv.levels > 1 ? 2 * s.rows * s.lv.len[1] : 0; }

// Blocks (partial sums) per level for the filter gradient, summed over levels.
inline int64_t octave_filter_parts(const OctaveProblem& s) {
  const int64_t block_out = filter_grad_geometry(s.taps).block_out;
  int64_t parts = 0;
  for (int64_t l = 1; l <= s.lv.levels; ++l) parts += s.rows * ceil_div(s.lv.len[l], block_out);
  return parts;
}

// Walks G_l from l = levels down to 1 (G_l = g_l + back(G_{l+1})), calling visit(l, G, G_stride) with
// G either the incoming gradient (type T) or a workspace buffer (acc_t); then, when gx is given,
// writes the input gradient back(G_1).
template <typename T, typename Visit>
void octave_gradient_chain(const T* g, const T* f, T* gx, typename AccType<T>::type* work, const OctaveProblem& s,
                           cudaStream_t stream, Visit visit) {
  using acc_t = typename AccType<T>::type;
  const OctaveLevels& lv = s.lv;
  const T* gT = g + lv.off[lv.levels];  // G_levels: the incoming gradient itself
  const acc_t* gA = nullptr;
  int64_t g_stride = lv.total;
  acc_t* buf[2] = {work, work ? work + s.rows * lv.len[1] : nullptr};
  int which = 0;
  for (int64_t l = lv.levels; l >= 1; --l) {
    if (gA) visit(l, gA, g_stride);
    else visit(l, gT, g_stride);
    const int64_t dst_len = lv.len[l - 1];
    const LaunchConfig c =
        level_config<T>(s.rows, ceil_div((dst_len + 1) / 2, kBlockOut), backward_smem_elems<T>(s.taps));
    const dim3 grid = checked_grid(c, "octave_downsample backward");
    if (l == 1) {
      if (!gx) return;
      if (gA) {
        allow_smem(octave_backward_kernel<T, acc_t, T>, c.smem_bytes, s.taps);
        DC_LAUNCH((octave_backward_kernel<T, acc_t, T>), grid, c.threads, c.smem_bytes, stream)(
            gA, g_stride, lv.len[l], gx, dst_len, (const T*)nullptr, 0, f, (int)s.taps);
      } else {
        allow_smem(octave_backward_kernel<T, T, T>, c.smem_bytes, s.taps);
        DC_LAUNCH((octave_backward_kernel<T, T, T>), grid, c.threads, c.smem_bytes, stream)(
            gT, g_stride, lv.len[l], gx, dst_len, (const T*)nullptr, 0, f, (int)s.taps);
      }
      return;
    }
    acc_t* dst = buf[which];
    which ^= 1;
    const T* add = g + lv.off[l - 1];
    if (gA) {
      allow_smem(octave_backward_kernel<T, acc_t, acc_t>, c.smem_bytes, s.taps);
      DC_LAUNCH((octave_backward_kernel<T, acc_t, acc_t>), grid, c.threads, c.smem_bytes, stream)(
          gA, g_stride, lv.len[l], dst, dst_len, add, lv.total, f, (int)s.taps);
    } else {
      allow_smem(octave_backward_kernel<T, T, acc_t>, c.smem_bytes, s.taps);
      DC_LAUNCH((octave_backward_kernel<T, T, acc_t>), grid, c.threads, c.smem_bytes, stream)(
          gT, g_stride, lv.len[l], dst, dst_len, add, lv.total, f, (int)s.taps);
    }
    gA = dst;
    g_stride = dst_len;
  }
}

template <typename scalar_t>
void launch_octave_grad_input(const scalar_t* g, const scalar_t* f, scalar_t* gx, typename AccType<scalar_t>::type* work,
                              const OctaveProblem& s, cudaStream_t stream) {
  octave_gradient_chain<scalar_t>(g, f, gx, work, s, stream, [](int64_t, const void*, int64_t) {});
}

// out: packed forward output (inputs of levels >= 2); partial: octave_filter_parts(s) * taps acc_t.
template <typename scalar_t>
void launch_octave_grad_filter(const scalar_t* g, const scalar_t* x, const scalar_t* out, const scalar_t* f,
                               scalar_t* grad_f, typename AccType<scalar_t>::type* work,
                               typename AccType<scalar_t>::type* partial, const OctaveProblem& s, cudaStream_t stream) {
  const OctaveLevels& lv = s.lv;
  int64_t part_off = 0;
  auto visit = [&](int64_t l, const auto* G, int64_t G_stride) {
    using G_t = typename std::remove_cv<typename std::remove_pointer<decltype(G)>::type>::type;
    const scalar_t* in = l == 1 ? x : out + lv.off[l - 1];
    const int64_t in_stride = l == 1 ? lv.len[0] : lv.total;
    using acc_t = typename AccType<scalar_t>::type;
    const LaunchConfig c = level_config<scalar_t>(s.rows, ceil_div(lv.len[l], filter_grad_geometry(s.taps).block_out),
                                                  filter_grad_smem<acc_t>(s.taps).total);
    allow_smem(octave_filter_grad_kernel<scalar_t, G_t>, c.smem_bytes, s.taps);
    DC_LAUNCH((octave_filter_grad_kernel<scalar_t, G_t>), checked_grid(c, "octave_downsample grad_filter"), c.threads,
              c.smem_bytes, stream)(G, G_stride, lv.len[l], in, in_stride, lv.len[l - 1], partial + part_off * s.taps,
                                    (int)s.taps);
    part_off += c.blocks_x;
  };
  octave_gradient_chain<scalar_t>(g, f, (scalar_t*)nullptr, work, s, stream, visit);
  const LaunchConfig reduce{ceil_div(s.taps, kThreads), 1, 1, kThreads, 0};
  DC_LAUNCH(octave_reduce_kernel<scalar_t>, checked_grid(reduce, "octave_downsample grad_filter"), reduce.threads, 0,
            stream)(partial, part_off, grad_f, (int)s.taps);
}

}  // namespace oct

using oct::launch_octave_forward;
using oct::launch_octave_grad_filter;
using oct::launch_octave_grad_input;
using oct::OctaveProblem;

}  // namespace dc
