// Tensor-core forward of dense_conv2d (WMMA, sm_80+) and the op's forward entry point, which picks it.
//
// No ATen here (see compat.cuh); under the test-only emulator, tests/emu/wmma_emu.h supplies nvcuda::wmma.
//
// Implicit GEMM, per (b, i) and chunk of K tap columns q0 .. q0+K-1, for window row a and output row y = a + p:
//   out[b, i*Cr + r, y, x(m)] += sum_k A_a[m, k] * B_p[k, r]
//   A_a[m, k] = impulse[b, i, a, x(m) - q(k)]   (zero outside the image)
//   B_p[k, r] = response[b, r, p, q(k)]          (zero past Wr or Cr),   q(k) = q0 + K-1 - k (taps reversed)
// M = output columns, N = response channels (padded to the fragment), K = tap columns.
//
// No im2col is built: with the taps reversed, A_a[m, k] = row_a[x(m) - q0 - (K-1) + k] is a Hankel matrix of one
// window row, and row_a + offset read with the least leading dimension WMMA allows, L = 16 bytes (8 elements of
// 16 bits, 4 of float), gives A[m][k] = row_a[offset + L*m + k]: the output columns of one fragment form a comb
// x(m) = x_first + L*m. The L combs shifted by 0 .. L-1 columns cover L*M consecutive columns; as a fragment
// pointer must be 256-bit aligned, each window row is staged L times, shifted by 0 .. L-1 (16-byte vector
// copies), and every warp loads its A fragment straight from its shift's copy.
//
// Reuse: one A fragment (window row a) feeds the MMAs of every output row of the block that it reaches (y0 + t
// with tap row p = y0 + t - a); the B fragment of output row t + 1 at window row a + 1 is that of row t at a,
// so the B fragments move along in registers and each window row loads one. The response taps of up to
// kWmmaTapRows rows are staged once per block and chunk. Accumulation is in float (the fragment accumulators,
// one per output row).
//
// Operands: float16 / bfloat16 inputs as they are (m32n8k16: 8 responses per block, the user's Cr = 5 uses
// 5/8); float32 rounded to TF32 with __float_to_tf32 (m16n16k8), only when the caller allows TF32.
#pragma once

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

constexpr int kWmmaWarps = 8;        // warps per block: one comb of output columns each
constexpr int kWmmaRows = 8;         // output rows per block: one accumulator fragment each, per warp
constexpr int kWmmaTapRows = 48;     // response tap rows staged per chunk
constexpr int kWmmaWindowRows = 4;   // window rows staged at a time (each L times shifted)
constexpr int kWmmaMinBlocksPerSM = 2;  // 16 warps per SM: at most 128 registers

// Fragment shape and operand types per input dtype (by its significand bits: c10::Half 11, c10::BFloat16 8,
// float 24). `storage` is what shared memory holds, `memory` the pointer type load_matrix_sync takes.
template <typename scalar_t, int digits = std::numeric_limits<scalar_t>::digits>
struct WmmaOperands;
template <typename scalar_t>
struct WmmaOperands<scalar_t, 11> {
  static constexpr int M = 32, N = 8, K = 16;
  using element = __half;
  using memory = __half;
  using storage = scalar_t;  // same bits as __half
  static __device__ __forceinline__ storage operand(scalar_t v) { return v; }
};
template <typename scalar_t>
struct WmmaOperands<scalar_t, 8> {
  static constexpr int M = 32, N = 8, K = 16;
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

// Block geometry and shared memory (in elements of the operand storage) per operand type.
template <typename scalar_t>
struct WmmaLayout {
  using Op = WmmaOperands<scalar_t>;
  using storage = typename Op::storage;
  static constexpr int L = 16 / int(sizeof(storage));      // comb pitch = ldm of the A loads = shifted copies
  static constexpr int kAlign = 32 / int(sizeof(storage)); // elements per 256 bits (fragment pointers)
  static constexpr int block_cols = kWmmaWarps * Op::M;    // output columns per block: kWmmaWarps / L comb groups
  static constexpr int copy_cols = (int)round_up(block_cols + Op::K, kAlign);  // a shifted copy of a window row
  static constexpr int row_cols = copy_cols + L;           // a staged window row: every shift's copy_cols columns
  // Column pitch of the staged B tiles (ldm of the B loads). 16-bit tiles are read 8 columns of 16 bytes at a
  // time (ldmatrix): a 48-byte pitch puts those on distinct banks, where 32 bytes would pair them (2-way).
  static constexpr int tap_pitch = sizeof(storage) == 2 ? Op::K + Op::K / 2 : Op::K;
  static constexpr int tap_tile = Op::N * tap_pitch;  // one tap row: B_p
  // The staged tap rows with kWmmaRows - 1 rows of margin on each side: B fragments are loaded for output
  // rows whose tap row is outside the chunk too (never multiplied), at fixed offsets, without clamping.
  static constexpr int taps_elems = (kWmmaTapRows + 2 * (kWmmaRows - 1)) * tap_tile;
  static constexpr int copies_elems = kWmmaWindowRows * L * copy_cols;
  static constexpr int rows_elems = kWmmaWindowRows * row_cols;
  static constexpr int smem_bytes = int(sizeof(storage)) * (taps_elems + copies_elems + rows_elems);
  static_assert(kWmmaWarps % L == 0, "whole comb groups per block");
  static_assert(tap_tile % kAlign == 0 && taps_elems % kAlign == 0 && copy_cols % kAlign == 0 &&
                    copies_elems % kAlign == 0 && tap_pitch % L == 0 && row_cols % L == 0,
                "fragment pointers 256-bit aligned, ldm a multiple of 16 bytes, window rows 16-byte aligned");
  static_assert(block_cols * Op::N * sizeof(float) <= copies_elems * sizeof(storage),
                "the output staging fits in the copies it aliases");
  static_assert(smem_bytes <= 48 * 1024, "static shared memory");
};

// Block: output rows y0 .. y0+kWmmaRows-1, columns xb .. xb + block_cols - 1, responses r0 .. r0+N-1 of one
// (b, i). Warp w: comb group w / L, shift w % L, i.e. columns xb + tile_col + L*m with
// tile_col = (w / L)*L*M + w % L.
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
  constexpr int copy_cols = Layout::copy_cols, row_cols = Layout::row_cols, tap_tile = Layout::tap_tile;
  __shared__ __align__(32) unsigned char smem[Layout::smem_bytes];

  const ForwardBlock blk = forward_block(tiles_x, tiles_y, r_chunks, s.Ci);
  const long long y0 = blk.ty_tile * kWmmaRows, xb = blk.tx_tile * Layout::block_cols, r0 = blk.r_chunk * N;
  const int rows = (int)min64(kWmmaRows, s.Hi - y0);  // output rows of the block inside the image
  const int responses = (int)min64(N, s.Cr - r0);     // responses of the block that exist
  const scalar_t* imp = impulse + (blk.b * s.Ci + blk.i) * s.Hi * s.Wi;
  const scalar_t* resp = response + (blk.b * s.Cr + r0) * s.Hr * s.Wr;       // response r0
  scalar_t* out_y0 = out + ((blk.b * s.Ci + blk.i) * s.Cr + r0) * s.Hi * s.Wi + y0 * s.Wi;  // response r0, row y0
  const int warp = threadIdx.x / 32, tile_col = warp / L * (L * M) + warp % L;

  // taps[dp][n][k] = B_{p0+dp}[k][n], column-major, dp in [-(kWmmaRows-1), kWmmaTapRows + kWmmaRows-1)
  storage_t* taps = reinterpret_cast<storage_t*>(smem) + (kWmmaRows - 1) * tap_tile;
  storage_t* copies = reinterpret_cast<storage_t*>(smem) + Layout::taps_elems;  // [kWmmaWindowRows][L][copy_cols]
  storage_t* window = copies + Layout::copies_elems;     // [kWmmaWindowRows][row_cols]
  float* staged_out = reinterpret_cast<float*>(copies);  // [block_cols][N], after the main loop
  const storage_t zero = storage_t(0.0f);

  wmma::fragment<wmma::accumulator, M, N, K, float> acc[kWmmaRows];
#pragma unroll
  for (int t = 0; t < kWmmaRows; ++t) wmma::fill_fragment(acc[t], 0.0f);

  // Tap staging: thread -> one (n, k) of every kTapRowsPerPass-th tap row.
  static_assert(kThreadsPerBlock % (N * K) == 0, "whole tap rows per pass");
  constexpr int kTapRowsPerPass = kThreadsPerBlock / (N * K);
  const int tap_n = threadIdx.x % (N * K) / K, tap_k = threadIdx.x % K, tap_dp = threadIdx.x / (N * K);
  storage_t* tap_slot = taps + tap_dp * tap_tile + tap_n * Layout::tap_pitch + tap_k;

  // Causal window: tap p reaches row y only if p <= y, tap q column x only if q <= x.
  const long long p_end = min64(s.Hr, y0 + rows), q_end = min64(s.Wr, xb + Layout::block_cols);
  for (long long q0 = 0; q0 < q_end; q0 += K) {
    const long long wx = xb - q0 - (K - 1);  // impulse column of window column 0
    const long long tap_q = q0 + K - 1 - tap_k;
    const bool tap_exists = tap_q < s.Wr && tap_n < responses;
    for (long long p0 = 0; p0 < p_end; p0 += kWmmaTapRows) {
      const int np = (int)min64(kWmmaTapRows, p_end - p0);
      __syncthreads();  // the previous chunk's taps are no longer read
      // (Staging loops not unrolled: their unrolled address arithmetic spills next to the accumulators.)
#pragma unroll 1
      for (int dp = tap_dp; dp < np; dp += kTapRowsPerPass)
        tap_slot[(dp - tap_dp) * tap_tile] =
            tap_exists ? Op::operand(resp[(tap_n * s.Hr + p0 + dp) * s.Wr + tap_q]) : zero;
      // Window rows a feed output rows y = a + p, p in [p0, p0 + np), y in [y0, y0 + rows); rows a < 0 are
      // zero padding.
      const long long a_begin = max64(0, y0 - p0 - np + 1), a_end = y0 + rows - p0;
      wmma::fragment<wmma::matrix_b, M, N, K, typename Op::element, wmma::col_major> b_frags[kWmmaRows];  // below
      for (long long a0 = a_begin; a0 < a_end; a0 += kWmmaWindowRows) {
        const int nr = (int)min64(kWmmaWindowRows, a_end - a0);
        __syncthreads();  // the previous window rows are no longer read
#pragma unroll 1
        for (int dr = 0; dr < nr; ++dr) {
          const scalar_t* imp_row = imp + (a0 + dr) * s.Wi;
#pragma unroll 1
          for (int c = threadIdx.x; c < row_cols; c += kThreadsPerBlock) {
            const long long x = wx + c;
            window[dr * row_cols + c] = (x >= 0 && x < s.Wi) ? Op::operand(imp_row[x]) : zero;
          }
        }
        __syncthreads();
        // copies[dr][shift][j] = window[dr][shift + j], one 16-byte vector per shift from two aligned ones.
        for (int e = threadIdx.x; e < nr * (copy_cols / L); e += kThreadsPerBlock) {
          const int dr = e / (copy_cols / L), j = e % (copy_cols / L) * L;
          const Vec* src = reinterpret_cast<const Vec*>(window + dr * row_cols + j);
          const Vec lo = src[0], hi = src[1];
#pragma unroll
          for (int shift = 0; shift < L; ++shift) {
            Vec v;
#pragma unroll
            for (int m = 0; m < L; ++m) v.v[m] = shift + m < L ? lo.v[shift + m] : hi.v[shift + m - L];
            *reinterpret_cast<Vec*>(copies + (dr * L + shift) * copy_cols + j) = v;
          }
        }
        __syncthreads();
        for (int dr = 0; dr < nr; ++dr) {
          wmma::fragment<wmma::matrix_a, M, N, K, typename Op::element, wmma::row_major> a_frag;
          wmma::load_matrix_sync(a_frag,
                                 reinterpret_cast<const memory_t*>(copies + (dr * L + warp % L) * copy_cols +
                                                                   warp / L * (L * M)),
                                 L);
          // Output row y0 + t takes tap row p = y0 + t - a, staged at p - p0 = t + u: rows t_begin .. t_end-1.
          const int u = (int)(y0 - (a0 + dr) - p0);
          const int t_begin = max(0, -u), t_end = min(rows, np - u);
          // b_frags[t] = B_p of output row t: the previous window row's b_frags[t - 1] (p is the same), so one
          // new B per window row; all of them for the chunk's first.
          const storage_t* b_rows = taps + u * tap_tile;  // B_p of row t: b_rows + t * tap_tile
          if (a0 + dr == a_begin) {
#pragma unroll
            for (int t = 0; t < kWmmaRows; ++t)
              wmma::load_matrix_sync(b_frags[t], reinterpret_cast<const memory_t*>(b_rows + t * tap_tile),
                                     Layout::tap_pitch);
          } else {
#pragma unroll
            for (int t = kWmmaRows - 1; t > 0; --t) b_frags[t] = b_frags[t - 1];
            wmma::load_matrix_sync(b_frags[0], reinterpret_cast<const memory_t*>(b_rows), Layout::tap_pitch);
          }
          if (t_begin == 0 && t_end == kWmmaRows) {  // block-uniform; the common case without a test per row
#pragma unroll
            for (int t = 0; t < kWmmaRows; ++t) wmma::mma_sync(acc[t], a_frag, b_frags[t], acc[t]);
          } else {
#pragma unroll
            for (int t = 0; t < kWmmaRows; ++t)
              if (t >= t_begin && t < t_end) wmma::mma_sync(acc[t], a_frag, b_frags[t], acc[t]);  // block-uniform
          }
        }
      }
    }
  }

  // Each output row through shared memory ([column][response]: the combs interleave), then written with
  // consecutive columns on consecutive threads: thread c of every block_cols writes column c, 4 responses
  // at a time.
  static_assert(kThreadsPerBlock % Layout::block_cols == 0 && N % (4 * (kThreadsPerBlock / Layout::block_cols)) == 0,
                "every thread writes one column, the same number of 4-response groups");
  const int col = threadIdx.x % Layout::block_cols;
  const bool col_inside = xb + col < s.Wi;
  scalar_t* out_col = out_y0 + xb + col;
  const long long plane = s.Hi * s.Wi;
  __syncthreads();  // the copies, which staged_out aliases, are no longer read
#pragma unroll
  for (int t = 0; t < kWmmaRows; ++t) {
    if (t >= rows) break;  // block-uniform
    wmma::store_matrix_sync(staged_out + tile_col * N, acc[t], L * N, wmma::mem_row_major);
    __syncthreads();
    if (col_inside) {
#pragma unroll 1
      for (int n4 = threadIdx.x / Layout::block_cols * 4; n4 < responses;
           n4 += kThreadsPerBlock / Layout::block_cols * 4) {
        float v[4];
        load_shared_vec(v, staged_out + col * N + n4);
        scalar_t* o = out_col + n4 * plane + t * s.Wi;
#pragma unroll
        for (int j = 0; j < 4; ++j, o += plane)
          if (n4 + j < responses) *o = static_cast<scalar_t>(v[j]);
      }
    }
    __syncthreads();  // staged_out is read before the next row's store
  }
}

template <typename scalar_t>
LaunchConfig dense_forward_wmma_config(const ConvSizes& s) {
  using Op = WmmaOperands<scalar_t>;
  const int64_t blocks = ceil_div(s.Wi, WmmaLayout<scalar_t>::block_cols) * ceil_div(s.Hi, kWmmaRows) *
                         ceil_div(s.Cr, Op::N) * s.Ci * s.B;
  return {blocks, 1, 1, kWmmaWarps * 32, 0};  // static shared memory only
}

// (Op as a parameter: the kernel exists for float16, bfloat16 and float only.)
template <typename scalar_t, typename Op = WmmaOperands<scalar_t>>
void launch_dense_forward_wmma(const scalar_t* response, const scalar_t* impulse, scalar_t* out, const ConvSizes& s,
                               cudaStream_t stream) {
  const LaunchConfig cfg = dense_forward_wmma_config<scalar_t>(s);
  auto* kernel = &dense_forward_wmma_kernel<scalar_t>;
  DC_LAUNCH(kernel, checked_grid(cfg, "dense_conv2d forward"), cfg.threads, cfg.smem_bytes, stream)(
      response, impulse, out, s, (unsigned)ceil_div(s.Wi, WmmaLayout<scalar_t>::block_cols),
      (unsigned)ceil_div(s.Hi, kWmmaRows), (unsigned)ceil_div(s.Cr, Op::N));
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
