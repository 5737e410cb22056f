// Tensor-core forward of dense_conv2d (WMMA, sm_80+) and the op's forward entry point, which picks it.
//
// No ATen here (see compat.cuh); under the test-only emulator, tests/emu/wmma_emu.h supplies nvcuda::wmma.
//
// Implicit GEMM per (b, i), chunk of K tap columns q0 .. q0+K-1 and window row a (16 x 16 x K fragments):
//   out[b, i*Cr + r0 + r, y0 + t, x(m)] += sum_k A_a[m, k] * B_a[k, j],   j = t*Cb + r   (packed columns)
//   A_a[m, k] = impulse[b, i, a, x(m) - q(k)]              (zero outside the image)
//   B_a[k, j] = response[b, r0 + r, y0 + t - a, q(k)]      (zero outside the taps), q(k) = q0 + K-1 - k
// M = output columns, K = tap columns (reversed), N = (output row t, response r) pairs of the block.
//
// Packing N: a block takes Cb responses (Cr split evenly, at most 16) and R = min(16, 64 / Cb) output rows, so
// its R*Cb <= 64 accumulator columns fill up to 4 fragments of 16 (the user's Cr = 5: 12 rows, 60 of 64 columns;
// one fragment per output row padded 5 to 8 responses wasted 3/8). As the tap row of column j is y0 + t - a, the
// B columns of window row a are consecutive in an array of taps staged as taps[p*Cb + r][k]: B_a starts at column
// (y0 - a - p0)*Cb, and each window row loads its fragments from there, no copy per output row. A fragment none of
// whose columns has a tap row in the chunk is skipped (block-uniform), so the zero MMAs are the few at the edges
// of each fragment's band of window rows.
//
// No im2col is built: with the taps reversed, A_a[m, k] = row_a[x(m) - q0 - (K-1) + k] is a Hankel matrix of one
// window row, and row_a + offset read with the least leading dimension WMMA allows, L = 16 bytes (8 elements of
// 16 bits, 4 of float), gives A[m][k] = row_a[offset + L*m + k]: the output columns of one fragment form a comb
// x(m) = x_first + L*m. The L combs shifted by 0 .. L-1 columns cover L*M consecutive columns; as a fragment
// pointer must be 256-bit aligned, each window row is staged L times, shifted by 0 .. L-1 (16-byte vector
// copies), and every warp loads its A fragments straight from its shifts' copies. A warp takes 2 combs (TF32: 1),
// so that each B fragment it loads feeds 2 MMAs (B fragments are loaded per window row).
//
// Pipeline, two barriers per kWmmaWindowRows window rows: the shifted copies of a group are built from the staged
// window rows; barrier; the next group's window rows are staged (the window is free) and the group's MMAs run;
// barrier. (Holding the next rows in registers across the MMAs spilled bfloat16, when its WMMA loads were generic
// loads with 64-bit addresses: see load_shared_fragment.) Accumulation in float (fragment accumulators).
//
// Operands: float16 / bfloat16 inputs as they are (m16n16k16); float32 rounded to TF32 with __float_to_tf32
// (m16n16k8), only when the caller allows TF32.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "compat.cuh"
#include "dense_conv_kernels.cuh"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>
#endif

namespace dc {

namespace wmma = nvcuda::wmma;

constexpr int kWmmaWarps = 4;           // warps per block
constexpr int kWmmaFrags = 4;           // accumulator fragments per comb: packed (output row, response) columns
constexpr int kWmmaMaxResponses = 16;   // responses per block (Cr split evenly)
constexpr int kWmmaMaxRows = 16;        // output rows per block
constexpr int kWmmaWindowRows = 8;     // window rows staged at a time (each L times shifted)
constexpr int kWmmaTapCols = 256;       // staged columns of taps (p, r) per chunk (the user's Cb = 5: 51 tap rows)
constexpr int kWmmaTapMargin = 16;      // zero columns on each side: a fragment reaches 15 columns past the chunk
constexpr int kWmmaMinBlocksPerSM = 4;  // 16 warps per SM: at most 128 registers

// The block's packing of Cr responses: Cb responses (Cr in the fewest chunks of at most kWmmaMaxResponses, of
// equal size where possible) and R output rows, R*Cb <= 16 * kWmmaFrags columns. Host and device.
struct WmmaPacking {
  int responses, rows, r_chunks;
};
__host__ __device__ inline WmmaPacking wmma_packing(long long Cr) {
  const long long chunks = (Cr + kWmmaMaxResponses - 1) / kWmmaMaxResponses;
  const int Cb = (int)((Cr + chunks - 1) / chunks);
  const int R = 16 * kWmmaFrags / Cb < kWmmaMaxRows ? 16 * kWmmaFrags / Cb : kWmmaMaxRows;
  return {Cb, R, (int)chunks};
}

// Fragment shape and operand types per input dtype (by its significand bits: c10::Half 11, c10::BFloat16 8,
// float 24). `storage` is what shared memory holds, `memory` the pointer type load_matrix_sync takes.
template <typename scalar_t, int digits = std::numeric_limits<scalar_t>::digits>
struct WmmaOperands;
template <typename scalar_t>
struct WmmaOperands<scalar_t, 11> {
  static constexpr int M = 16, N = 16, K = 16;
  using element = __half;
  using memory = __half;
  using storage = scalar_t;  // same bits as __half
  static __device__ __forceinline__ storage operand(scalar_t v) { return v; }
};
template <typename scalar_t>
struct WmmaOperands<scalar_t, 8> {
  static constexpr int M = 16, N = 16, K = 16;
  using element = __nv_bfloat16;
  using memory = __nv_bfloat16;
  using storage = scalar_t;  // same bits as __nv_bfloat16
  static __device__ __forceinline__ storage operand(scalar_t v) { return v; }
};
template <typename scalar_t>
struct WmmaOperands<scalar_t, 24> {
  static constexpr int M = 16, N = 16, K = 8;
  using element = wmma::precision::tf32;
  using memory = float;
  using storage = float;
  static __device__ __forceinline__ storage operand(scalar_t v) { return wmma::__float_to_tf32(v); }
};

// load_matrix_sync of an operand fragment from shared memory. nvcc (13.0) compiles the bfloat16 load_matrix_sync
// to the generic wmma.load (LD.E with 64-bit addresses, 4 per fragment instead of one LDSM: it does not infer
// the shared space for the bfloat16 builtins as it does for half), so bfloat16 m16n16k16 issues the .shared
// form itself, on the 32-bit shared address (same fragment registers as the builtin: 4 words of 2 elements).
template <typename Use, int M, int N, int K, typename T, typename Layout, typename P>
__device__ __forceinline__ void load_shared_fragment(wmma::fragment<Use, M, N, K, T, Layout>& f, const P* p,
                                                     unsigned ldm
#if defined(DC_CUDA_EMULATOR)
                                                     , const char* file = __builtin_FILE(), int line = __builtin_LINE()
#endif
) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, __nv_bfloat16> && M == 16 && N == 16 && K == 16) {
    static_assert(std::is_same_v<Use, wmma::matrix_a> == std::is_same_v<Layout, wmma::row_major> &&
                      !std::is_same_v<Use, wmma::accumulator>,
                  "row-major A or column-major B (the forms below)");
    const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(p));
    unsigned* x = reinterpret_cast<unsigned*>(f.x);
    if constexpr (std::is_same_v<Use, wmma::matrix_a>)
      asm volatile("wmma.load.a.sync.aligned.row.m16n16k16.shared.bf16 {%0, %1, %2, %3}, [%4], %5;"
                   : "=r"(x[0]), "=r"(x[1]), "=r"(x[2]), "=r"(x[3])
                   : "r"(address), "r"(ldm));
    else
      asm volatile("wmma.load.b.sync.aligned.col.m16n16k16.shared.bf16 {%0, %1, %2, %3}, [%4], %5;"
                   : "=r"(x[0]), "=r"(x[1]), "=r"(x[2]), "=r"(x[3])
                   : "r"(address), "r"(ldm));
  } else {
    wmma::load_matrix_sync(f, p, ldm);
  }
#elif defined(DC_CUDA_EMULATOR)
  wmma::load_matrix_sync(f, p, ldm, file, line);  // the call site of the kernel's load, for the warp checks
#else
  wmma::load_matrix_sync(f, p, ldm);
#endif
}

// Block geometry and shared memory (in elements of the operand storage) per operand type.
template <typename scalar_t>
struct WmmaLayout {
  using Op = WmmaOperands<scalar_t>;
  using storage = typename Op::storage;
  static constexpr int L = 16 / int(sizeof(storage));      // comb pitch = ldm of the A loads = shifted copies
  static constexpr int kAlign = 32 / int(sizeof(storage)); // elements per 256 bits (fragment pointers)
  // Combs of output columns per warp (comb c = warp + kWmmaWarps * i): 2 for 16-bit operands; TF32's larger
  // fragments spill with 2.
  static constexpr int kCombs = sizeof(storage) == 2 ? 2 : 1;
  static constexpr int combs = kWmmaWarps * kCombs;
  static constexpr int block_cols = combs * Op::M;         // output columns per block: combs / L comb groups
  static constexpr int copy_cols = (int)round_up(block_cols + Op::K, kAlign);  // a shifted copy of a window row
  static constexpr int copy_vecs = copy_cols / L;
  static constexpr int row_cols = copy_cols + L;           // a staged window row: every shift's copy_cols columns
  static constexpr int window_elems = kWmmaWindowRows * row_cols;
  static constexpr int window_loads = (window_elems + kWmmaWarps * 32 - 1) / (kWmmaWarps * 32);  // per thread
  // Taps: column c = (p - p0)*Cb + r holds the K taps of (p, r), tap_pitch apart. 16-bit B fragments are read
  // by ldmatrix, 16 bytes of 8 columns at a time: a 48-byte pitch puts those on distinct banks (32 bytes would
  // pair them, 2-way). As a fragment pointer must be 256-bit aligned and 48-byte columns are so every second
  // one, the taps are staged twice, copy 1 shifted by one column (copy1[c] = copy0[c + 1]): a fragment starting
  // at an odd column reads copy 1. TF32: 32-byte columns (fragments of plain loads), one copy.
  static constexpr bool kHalf = sizeof(storage) == 2;
  static constexpr int tap_pitch = kHalf ? Op::K + Op::K / 2 : Op::K;
  static constexpr int tap_copies = kHalf ? 2 : 1;
  static constexpr int tap_copy_elems = (kWmmaTapCols + 2 * kWmmaTapMargin) * tap_pitch;
  static constexpr int taps_elems = tap_copies * tap_copy_elems;
  static constexpr int copies_elems = kWmmaWindowRows * L * copy_cols;
  static constexpr int smem_bytes = int(sizeof(storage)) * (taps_elems + copies_elems + window_elems);
  // Output staging (aliases the rest once the MMAs are done), kOutFrags fragments at a time: column m of comb c
  // at out_warp_pitch * out_slot(c) + m, column-major (ldm out_ldm). Each thread writes kOutCols consecutive
  // output columns (16-bit: 2, one 32-bit store; float: 1), so a warp's read v (v < kOutCols) takes the combs
  // c = v mod kOutCols, each at 32 / (combs / kOutCols) consecutive m. out_slot puts those combs on consecutive
  // slots; a pitch of 24 words (the least multiple of 8 words, 256 bits, that is not one of 16) puts consecutive
  // slots on distinct 8-bank groups (24 * {0, 1, 2, 3} mod 32 = 0, 24, 16, 8), so a read meets every bank once.
  // (Slots of all 8 combs, 8-word aligned, cannot all differ mod 32: with one column per thread the 8 combs of
  // 32 consecutive columns met 2 per bank.)
  static constexpr int kOutCols = 4 / int(sizeof(storage));
  static constexpr int out_warp_pitch = 24;
  static __host__ __device__ constexpr int out_slot(int comb) { return comb / kOutCols + combs / kOutCols * (comb % kOutCols); }
  // out_ldm >= (combs - 1) * 24 + 16 and = 4 mod 8 (16-bit: 188): store_matrix_sync of a float accumulator is
  // 8 32-bit stores per lane (sm_80+: lane l holds rows l/4 (+8), columns 2*(l%4) (+1, +8)), whose 8 rows x 4
  // column pairs then fall on distinct banks (8 * (ldm / 4) * q + row, ldm / 4 odd).
  static constexpr int out_ldm = ((combs - 1) * out_warp_pitch + Op::M - 4 + 7) / 8 * 8 + 4;
  static constexpr int kOutFrags = 2;
  static constexpr int out_bytes = int(sizeof(float)) * kOutFrags * Op::N * out_ldm;
  static_assert(combs % L == 0, "whole comb groups per block");
  static_assert(Op::K * sizeof(storage) == 32 && Op::M == 16 && Op::N == 16, "32-byte tap columns, 16 x 16");
  static_assert((tap_copies * tap_pitch * sizeof(storage)) % 32 == 0 && tap_pitch % L == 0,
                "every tap_copies-th column 256-bit aligned, ldm a multiple of 16 bytes");
  static_assert(copy_cols % kAlign == 0 && (L * Op::M) % kAlign == 0 && row_cols % L == 0 &&
                    tap_copy_elems % kAlign == 0 && copies_elems % kAlign == 0,
                "fragment pointers 256-bit aligned, window rows 16-byte aligned");
  static_assert(out_ldm >= (combs - 1) * out_warp_pitch + Op::M && out_ldm % 8 == 4, "output staging");
  static_assert(combs == L && (kOutCols == 1 || combs / kOutCols == 4), "one comb group; 4 combs per read");
  static_assert(out_bytes <= smem_bytes && kWmmaFrags % kOutFrags == 0, "the output staging fits in what it aliases");
  static_assert(smem_bytes <= 48 * 1024, "static shared memory");
};

// The 16 bits of a 16-bit value, as the low half of a word.
template <typename T>
__host__ __device__ __forceinline__ uint32_t bits16(T v) {
  static_assert(sizeof(T) == 2, "16-bit values");
  uint16_t b;
  memcpy(&b, &v, 2);
  return b;
}

// Block: output rows y0 .. y0+R-1, columns xb .. xb + block_cols - 1, responses r0 .. r0+Cb-1 of one (b, i).
// Comb c (warp c % kWmmaWarps): comb group c / L, shift c % L, i.e. columns xb + (c / L)*L*M + c % L + L*m.
template <typename scalar_t>
__global__ void __launch_bounds__(kWmmaWarps * 32, kWmmaMinBlocksPerSM)
    dense_forward_wmma_kernel(const scalar_t* __restrict__ response, const scalar_t* __restrict__ impulse,
                              scalar_t* __restrict__ out, ConvSizes s, unsigned tiles_x, unsigned tiles_y,
                              unsigned r_chunks) {
  using Op = WmmaOperands<scalar_t>;
  using Layout = WmmaLayout<scalar_t>;
  using storage_t = typename Op::storage;
  using memory_t = typename Op::memory;
  using Vec = SharedVec<storage_t>;  // L elements, 16 bytes
  constexpr int M = Op::M, N = Op::N, K = Op::K, L = Layout::L, kThreadsPerBlock = kWmmaWarps * 32;
  constexpr int copy_cols = Layout::copy_cols, row_cols = Layout::row_cols;
  __shared__ __align__(32) unsigned char smem[Layout::smem_bytes];

  const WmmaPacking pack = wmma_packing(s.Cr);
  const int Cb = pack.responses;
  const ForwardBlock blk = forward_block(tiles_x, tiles_y, r_chunks, s.Ci);
  const long long y0 = (long long)blk.ty_tile * pack.rows, xb = (long long)blk.tx_tile * Layout::block_cols;
  const long long r0 = (long long)blk.r_chunk * Cb;
  const int rows = (int)min64(pack.rows, s.Hi - y0);  // output rows of the block inside the image
  const int responses = (int)min64(Cb, s.Cr - r0);    // responses of the block that exist
  const scalar_t* imp = impulse + (blk.b * s.Ci + blk.i) * s.Hi * s.Wi;
  const scalar_t* resp = response + (blk.b * s.Cr + r0) * s.Hr * s.Wr;       // response r0
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  // taps[copy][c][k] (pitch tap_pitch), c in [-kWmmaTapMargin, kWmmaTapCols + kWmmaTapMargin): copy 0's column c
  // = (p - p0)*Cb + r, copy 1's column c that of copy 0's c + 1
  storage_t* taps = reinterpret_cast<storage_t*>(smem) + kWmmaTapMargin * Layout::tap_pitch;
  storage_t* copies = reinterpret_cast<storage_t*>(smem) + Layout::taps_elems;  // [kWmmaWindowRows][L][copy_cols]
  storage_t* window = copies + Layout::copies_elems;     // [kWmmaWindowRows][row_cols]
  const storage_t zero = storage_t(0.0f);

  // Fragment f holds output rows N*f / Cb .. t_hi[f] (t_hi < N*f / Cb: none of the block's rows).
  int t_hi[kWmmaFrags], active_span[kWmmaFrags];
#pragma unroll
  for (int f = 0; f < kWmmaFrags; ++f) t_hi[f] = min((N * f + N - 1) / Cb, rows - 1);

  wmma::fragment<wmma::accumulator, M, N, K, float> acc[Layout::kCombs][kWmmaFrags];
#pragma unroll
  for (int i = 0; i < Layout::kCombs; ++i)
#pragma unroll
    for (int f = 0; f < kWmmaFrags; ++f) wmma::fill_fragment(acc[i][f], 0.0f);

  // Causal window: tap p reaches row y only if p <= y, tap q column x only if q <= x.
  const long long p_end = min64(s.Hr, y0 + rows), q_end = min64(s.Wr, xb + Layout::block_cols);
  const int chunk_rows = kWmmaTapCols / Cb;
  for (long long q0 = 0; q0 < q_end; q0 += K) {
    const long long wx = xb - q0 - (K - 1);  // impulse column of window column 0
    for (long long p0 = 0; p0 < p_end; p0 += chunk_rows) {
      const int np = (int)min64(chunk_rows, p_end - p0);
      // Fragment f has a tap row of the chunk at window row a = d0 - d iff 0 <= d + t_hi[f] < active_span[f]
      // (d + t_hi >= 0 and d + t_lo < np, t_lo = N*f / Cb: one unsigned comparison).
#pragma unroll
      for (int f = 0; f < kWmmaFrags; ++f) active_span[f] = max(0, np + t_hi[f] - N * f / Cb);
      // (The previous chunk's last barrier: its taps and window rows are no longer read.)
      // Taps of the chunk and the zero margins around them (every copy), consecutive k on consecutive threads.
      const int tap_cols = np * Cb, staged_cols = tap_cols + 2 * kWmmaTapMargin;
#pragma unroll 1
      for (int e = threadIdx.x; e < Layout::tap_copies * staged_cols * K; e += kThreadsPerBlock) {
        const int copy = e / (staged_cols * K), c = e / K % staged_cols - kWmmaTapMargin, k = e % K;
        const int tc = c + copy;  // the column of copy 0 it holds
        const long long q = q0 + K - 1 - k;
        storage_t v = zero;
        if (tc >= 0 && tc < tap_cols && q < s.Wr) {
          const int dp = tc / Cb, r = tc % Cb;
          if (r < responses) v = Op::operand(resp[((long long)r * s.Hr + p0 + dp) * s.Wr + q]);
        }
        taps[copy * Layout::tap_copy_elems + c * Layout::tap_pitch + k] = v;
      }
      // Window rows a feed output rows y = a + p, p in [p0, p0 + np), y in [y0, y0 + rows); rows a < 0 are
      // zero padding.
      // (int: rows and columns of one image fit; only offsets into the tensors need 64 bits)
      const int a_begin = (int)max64(0, y0 - p0 - np + 1), a_end = (int)(y0 + rows - p0);
      const int d0 = (int)(y0 - p0);  // window row a takes tap columns from (d0 - a)*Cb on
      // Window rows a0 .. a0 + kWmmaWindowRows - 1 (zero past a_end) into `window`, consecutive columns on
      // consecutive threads.
      auto stage_window = [&](int a0) {
#pragma unroll
        for (int i = 0; i < Layout::window_loads; ++i) {
          const int e = threadIdx.x + i * kThreadsPerBlock, dr = e / row_cols, a = a0 + dr;
          const long long x = wx + e % row_cols;
          if (e < Layout::window_elems)
            window[e] = a < a_end && x >= 0 && x < s.Wi ? Op::operand(imp[a * s.Wi + x]) : zero;
        }
      };
      stage_window(a_begin);
      __syncthreads();  // taps and the first window rows staged
      for (int a0 = a_begin; a0 < a_end; a0 += kWmmaWindowRows) {
        const int nr = min(kWmmaWindowRows, a_end - a0);
        // copies[dr][shift][j] = window[dr][shift + j]: rows dr on warp dr % kWmmaWarps, one 16-byte vector per
        // shift from two aligned ones (a warp's requests stay in one row: consecutive vectors, no bank conflict).
#pragma unroll 1
        for (int dr = warp; dr < nr; dr += kWmmaWarps) {
#pragma unroll 1
          for (int j = lane; j < Layout::copy_vecs; j += 32) {
            const Vec* src = reinterpret_cast<const Vec*>(window + dr * row_cols + j * L);
            const Vec lo = src[0], hi = src[1];
#pragma unroll
            for (int shift = 0; shift < L; ++shift) {
              Vec v;
#pragma unroll
              for (int m = 0; m < L; ++m) v.v[m] = shift + m < L ? lo.v[shift + m] : hi.v[shift + m - L];
              *reinterpret_cast<Vec*>(copies + (dr * L + shift) * copy_cols + j * L) = v;
            }
          }
        }
        __syncthreads();  // copies built; the window rows are no longer read
        if (a0 + kWmmaWindowRows < a_end) stage_window(a0 + kWmmaWindowRows);  // block-uniform
        for (int dr = 0; dr < nr; ++dr) {
          wmma::fragment<wmma::matrix_a, M, N, K, typename Op::element, wmma::row_major> a_frag[Layout::kCombs];
#pragma unroll
          for (int i = 0; i < Layout::kCombs; ++i) {
            const int comb = warp + kWmmaWarps * i;
            load_shared_fragment(a_frag[i],
                                 reinterpret_cast<const memory_t*>(copies + (dr * L + comb % L) * copy_cols +
                                                                   comb / L * (L * M)),
                                 L);
          }
          // Column j = t*Cb + r of B takes tap row y0 + t - a, staged at column (y0 - a - p0)*Cb + j.
          // (N = 16 columns per fragment: every fragment starts on the same copy.)
          const int d = d0 - (a0 + dr), c = d * Cb, copy = Layout::tap_copies == 2 ? c & 1 : 0;
          const storage_t* b_cols = taps + copy * Layout::tap_copy_elems + (c - copy) * Layout::tap_pitch;
#pragma unroll
          for (int f = 0; f < kWmmaFrags; ++f) {
            // block-uniform: a row of the fragment has a tap row here. (The load is not in the branch, where nvcc
            // would recompute the lanes' offsets for each fragment; an idle fragment reads column 0 instead.)
            const bool active = unsigned(d + t_hi[f]) < unsigned(active_span[f]);
            wmma::fragment<wmma::matrix_b, M, N, K, typename Op::element, wmma::col_major> b_frag;
            load_shared_fragment(b_frag,
                                 reinterpret_cast<const memory_t*>(active ? b_cols + f * N * Layout::tap_pitch : taps),
                                 Layout::tap_pitch);
            if (active) {
#pragma unroll
              for (int i = 0; i < Layout::kCombs; ++i) wmma::mma_sync(acc[i][f], a_frag[i], b_frag, acc[i][f]);
            }
          }
        }
        __syncthreads();  // the group's MMAs are done with the copies; the next window rows are staged
      }
    }
  }

  // Each accumulator column j = t*Cb + r through shared memory, then written with consecutive output columns on
  // consecutive threads (the combs interleave), kOutCols columns per thread, kOutFrags fragments at a time.
  constexpr int V = Layout::kOutCols, kThreadsPerRow = Layout::block_cols / V;
  static_assert(kThreadsPerBlock % kThreadsPerRow == 0, "whole output rows per pass");
  float* staged_out = reinterpret_cast<float*>(smem);
  const int col = threadIdx.x % kThreadsPerRow * V;  // the thread's first column; col + v in comb (col + v) % L
  const float* out_src[V];
#pragma unroll
  for (int v = 0; v < V; ++v)
    out_src[v] = staged_out + Layout::out_slot((col + v) % L) * Layout::out_warp_pitch + (col + v) / L;
  const long long plane = s.Hi * s.Wi;
  scalar_t* out_col = out + ((blk.b * s.Ci + blk.i) * s.Cr + r0) * plane + y0 * s.Wi + xb + col;
  // 16-bit: the pair of columns in one 32-bit store where every row starts 4-byte aligned (then both columns are
  // inside or neither, as col and Wi are even); else one store per column.
  const bool paired = V == 2 && s.Wi % 2 == 0 && reinterpret_cast<uintptr_t>(out) % 4 == 0;
  const int used_cols = rows * Cb;  // columns t < rows (r >= responses are skipped below)
#pragma unroll  // (acc indexed by constants: a runtime index would put the accumulators in local memory)
  for (int f0 = 0; f0 < kWmmaFrags; f0 += Layout::kOutFrags) {
    if (f0 * N >= used_cols) break;  // block-uniform
    __syncthreads();  // shared memory is no longer read (MMAs, or the previous fragments' writes)
#pragma unroll
    for (int i = 0; i < Layout::kCombs; ++i) {
      const int comb = warp + kWmmaWarps * i;
#pragma unroll
      for (int f = 0; f < Layout::kOutFrags; ++f)
        wmma::store_matrix_sync(staged_out + f * N * Layout::out_ldm + Layout::out_slot(comb) * Layout::out_warp_pitch,
                                acc[i][f0 + f], Layout::out_ldm, wmma::mem_col_major);
    }
    __syncthreads();
    if (xb + col < s.Wi) {
#pragma unroll 1
      for (int jj = threadIdx.x / kThreadsPerRow; jj < Layout::kOutFrags * N; jj += kThreadsPerBlock / kThreadsPerRow) {
        const int j = f0 * N + jj, t = j / Cb, r = j % Cb;
        if (t < rows && r < responses) {
          scalar_t* dst = out_col + r * plane + t * s.Wi;
          scalar_t v[V];
#pragma unroll
          for (int k = 0; k < V; ++k) v[k] = static_cast<scalar_t>(out_src[k][jj * Layout::out_ldm]);
          if constexpr (V == 2) {
            if (paired) {
              *reinterpret_cast<uint32_t*>(dst) = bits16(v[0]) | bits16(v[1]) << 16;  // little-endian: v[0] first
            } else {
              dst[0] = v[0];
              if (xb + col + 1 < s.Wi) dst[1] = v[1];
            }
          } else {
            dst[0] = v[0];
          }
        }
      }
    }
  }
}

template <typename scalar_t>
LaunchConfig dense_forward_wmma_config(const ConvSizes& s) {
  const WmmaPacking pack = wmma_packing(s.Cr);
  const int64_t blocks = ceil_div(s.Wi, WmmaLayout<scalar_t>::block_cols) * ceil_div(s.Hi, pack.rows) *
                         pack.r_chunks * s.Ci * s.B;
  return {blocks, 1, 1, kWmmaWarps * 32, 0};  // static shared memory only
}

// (Op as a parameter: the kernel exists for float16, bfloat16 and float only.)
template <typename scalar_t, typename Op = WmmaOperands<scalar_t>>
void launch_dense_forward_wmma(const scalar_t* response, const scalar_t* impulse, scalar_t* out, const ConvSizes& s,
                               cudaStream_t stream) {
  const LaunchConfig cfg = dense_forward_wmma_config<scalar_t>(s);
  const WmmaPacking pack = wmma_packing(s.Cr);
  auto* kernel = &dense_forward_wmma_kernel<scalar_t>;
  DC_LAUNCH(kernel, checked_grid(cfg, "dense_conv2d forward"), cfg.threads, cfg.smem_bytes, stream)(
      response, impulse, out, s, (unsigned)ceil_div(s.Wi, WmmaLayout<scalar_t>::block_cols),
      (unsigned)ceil_div(s.Hi, pack.rows), (unsigned)pack.r_chunks);
}

// The op's forward (host entry point; sizes non-empty): float16 / bfloat16 on tensor cores, float32 on
// tensor cores in TF32 when `allow_tf32` (the op passes false: dense_conv_forward.cu kUseTf32), else the direct
// kernel.
template <typename scalar_t>
void launch_dense_forward_op(const scalar_t* response, const scalar_t* impulse, scalar_t* out, ConvSizes s,
                             bool allow_tf32, cudaStream_t stream) {
  if constexpr (std::is_same_v<scalar_t, double>) {
    launch_dense_forward<scalar_t>(response, impulse, out, s, stream);
  } else if constexpr (std::is_same_v<scalar_t, float>) {
    if (allow_tf32) launch_dense_forward_wmma<scalar_t>(response, impulse, out, s, stream);
    else launch_dense_forward<scalar_t>(response, impulse, out, s, stream);
  } else {
    launch_dense_forward_wmma<scalar_t>(response, impulse, out, s, stream);
  }
}

}  // namespace dc
