// Tensor-core forward of dense_conv2d (WMMA, sm_80+) and the op's forward entry point, which picks it.
//
// No ATen here (see compat.cuh); under the test-only emulator, tests/emu/wmma_emu.h supplies nvcuda::wmma.
//
// Implicit GEMM, per (b, i), for one output row y and one chunk of K tap columns q0 .. q0+K-1:
//   out[b, i*Cr + r, y, x] += sum_p sum_k A_{y-p}[x, k] * B_p[k, r]
//   A_a[x, k] = impulse[b, i, a, x - q0 - k]   (zero outside the image or past Wr: an im2col row of window row a)
//   B_p[k, r] = response[b, r, p, q0 + k]      (zero past Wr or Cr)
// M = output columns x (a warp's M consecutive pixels), N = response channels (padded to the fragment),
// K = tap columns q; the reduction runs over the tap rows p (one MMA per p) and the q chunks. The tile A_a
// depends only on the window row a = y - p, so a warp builds it once in shared memory and feeds it to the
// MMAs of every output row of the block that it reaches (up to kWmmaRows). The response taps of a chunk of
// kWmmaTapRows rows are staged once per block. Accumulation is in float (the fragment accumulators).
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

constexpr int kWmmaWarps = 4;     // warps per block, side by side along x
constexpr int kWmmaRows = 8;      // output rows per block: one accumulator fragment each, per warp
constexpr int kWmmaTapRows = 16;  // response tap rows staged per chunk

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

// Shared memory of a block, in bytes: taps [kWmmaTapRows][K][N], then per warp an A tile [M][K] and an
// output tile [N][M] of floats. Every part is a multiple of 32 bytes (WMMA pointers are 256-bit aligned).
template <typename scalar_t>
DC_HD constexpr int wmma_smem_bytes() {
  using Op = WmmaOperands<scalar_t>;
  return int(sizeof(typename Op::storage)) * (kWmmaTapRows * Op::K * Op::N + kWmmaWarps * Op::M * Op::K) +
         int(sizeof(float)) * kWmmaWarps * Op::M * Op::N;
}

// Block: output rows y0 .. y0+kWmmaRows-1, columns xb0 .. xb0 + kWmmaWarps*M - 1 (warp w: M of them),
// responses r0 .. r0+N-1, of one (b, i).
template <typename scalar_t>
__global__ void __launch_bounds__(kWmmaWarps * 32)
    dense_forward_wmma_kernel(const scalar_t* __restrict__ response, const scalar_t* __restrict__ impulse,
                              scalar_t* __restrict__ out, ConvSizes s, unsigned tiles_x, unsigned tiles_y,
                              unsigned r_chunks) {
  using Op = WmmaOperands<scalar_t>;
  using storage_t = typename Op::storage;
  using memory_t = typename Op::memory;
  constexpr int M = Op::M, N = Op::N, K = Op::K;
  __shared__ __align__(32) unsigned char smem[wmma_smem_bytes<scalar_t>()];

  unsigned block = blockIdx.x;
  const unsigned tx_tile = block % tiles_x;  block /= tiles_x;
  const unsigned ty_tile = block % tiles_y;  block /= tiles_y;
  const unsigned r_chunk = block % r_chunks; block /= r_chunks;
  const long long i = block % (unsigned)s.Ci;
  const long long b = block / (unsigned)s.Ci;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const long long y0 = ty_tile * kWmmaRows, xb0 = tx_tile * (kWmmaWarps * M), xw0 = xb0 + warp * M;
  const long long r0 = r_chunk * N;

  storage_t* taps = reinterpret_cast<storage_t*>(smem);                            // [kWmmaTapRows][K][N]
  storage_t* a_tile = taps + kWmmaTapRows * K * N + warp * M * K;                  // [M][K]
  float* c_tile = reinterpret_cast<float*>(taps + kWmmaTapRows * K * N + kWmmaWarps * M * K) + warp * M * N;
  const scalar_t* imp = impulse + (b * s.Ci + i) * s.Hi * s.Wi;
  const storage_t zero = storage_t(0.0f);

  wmma::fragment<wmma::accumulator, M, N, K, float> acc[kWmmaRows];
#pragma unroll
  for (int t = 0; t < kWmmaRows; ++t) wmma::fill_fragment(acc[t], 0.0f);

  // Causal window: tap p reaches row y only if p <= y, tap q column x only if q <= x.
  const long long p_end = min64(s.Hr, y0 + kWmmaRows), q_end = min64(s.Wr, xb0 + kWmmaWarps * M);
  for (long long q0 = 0; q0 < q_end; q0 += K) {
    for (long long p0 = 0; p0 < p_end; p0 += kWmmaTapRows) {
      const int np = (int)min64(kWmmaTapRows, p_end - p0);
      __syncthreads();  // the previous chunk's taps are no longer read
      for (int e = threadIdx.x; e < kWmmaTapRows * K * N; e += kWmmaWarps * 32) {
        const int dp = e / (K * N), k = (e / N) % K, n = e % N;
        const long long q = q0 + k, r = r0 + n;
        taps[e] = (dp < np && q < s.Wr && r < s.Cr)
                      ? Op::operand(response[((b * s.Cr + r) * s.Hr + p0 + dp) * s.Wr + q]) : zero;
      }
      __syncthreads();
      if (xw0 + M - 1 < q0) continue;  // every tap of the chunk is left of the warp's pixels: A = 0
      // Window rows a feed output rows y = a + p, p in [p0, p0 + np); rows a < 0 are zero padding and
      // rows a >= Hi reach no stored output.
      const long long a_begin = max64(0, y0 - p0 - np + 1), a_end = min64(s.Hi, y0 + kWmmaRows - p0);
      for (long long a = a_begin; a < a_end; ++a) {
        __syncwarp();  // the previous A tile is loaded
        for (int e = lane; e < M * K; e += 32) {
          const int m = e / K, k = e % K;
          const long long x = xw0 + m - q0 - k;
          a_tile[e] = (x >= 0 && x < s.Wi && q0 + k < s.Wr) ? Op::operand(imp[a * s.Wi + x]) : zero;
        }
        __syncwarp();
        wmma::fragment<wmma::matrix_a, M, N, K, typename Op::element, wmma::row_major> a_frag;
        wmma::load_matrix_sync(a_frag, reinterpret_cast<const memory_t*>(a_tile), K);
#pragma unroll
        for (int t = 0; t < kWmmaRows; ++t) {
          const long long p = y0 + t - a;  // the tap row joining window row a to output row y0 + t
          if (p < p0 || p >= p0 + np) continue;
          wmma::fragment<wmma::matrix_b, M, N, K, typename Op::element, wmma::row_major> b_frag;
          wmma::load_matrix_sync(b_frag, reinterpret_cast<const memory_t*>(taps + (p - p0) * K * N), N);
          wmma::mma_sync(acc[t], a_frag, b_frag, acc[t]);
        }
      }
    }
  }

  // Column-major staging: a warp's lanes then write consecutive x of one output row.
#pragma unroll
  for (int t = 0; t < kWmmaRows; ++t) {
    const long long y = y0 + t;
    if (y >= s.Hi) break;  // warp-uniform; no barrier follows
    __syncwarp();  // the previous row's tile is read
    wmma::store_matrix_sync(c_tile, acc[t], M, wmma::mem_col_major);
    __syncwarp();
    for (int e = lane; e < M * N; e += 32) {
      const int n = e / M, m = e % M;
      const long long x = xw0 + m, r = r0 + n;
      if (x < s.Wi && r < s.Cr)
        out[(((b * s.Ci + i) * s.Cr + r) * s.Hi + y) * s.Wi + x] = static_cast<scalar_t>(c_tile[e]);
    }
  }
}

template <typename scalar_t>
LaunchConfig dense_forward_wmma_config(const ConvSizes& s) {
  using Op = WmmaOperands<scalar_t>;
  const int64_t blocks =
      ceil_div(s.Wi, kWmmaWarps * Op::M) * ceil_div(s.Hi, kWmmaRows) * ceil_div(s.Cr, Op::N) * s.Ci * s.B;
  return {blocks, 1, 1, kWmmaWarps * 32, 0};  // static shared memory only
}

// (Op as a parameter: the kernel exists for float16, bfloat16 and float only.)
template <typename scalar_t, typename Op = WmmaOperands<scalar_t>>
void launch_dense_forward_wmma(const scalar_t* response, const scalar_t* impulse, scalar_t* out, const ConvSizes& s,
                               cudaStream_t stream) {
  const LaunchConfig cfg = dense_forward_wmma_config<scalar_t>(s);
  auto* kernel = &dense_forward_wmma_kernel<scalar_t>;
  DC_LAUNCH(kernel, checked_grid(cfg, "dense_conv2d forward"), cfg.threads, cfg.smem_bytes, stream)(
      response, impulse, out, s, (unsigned)ceil_div(s.Wi, kWmmaWarps * Op::M), (unsigned)ceil_div(s.Hi, kWmmaRows),
      (unsigned)ceil_div(s.Cr, Op::N));
}

// The op's forward (host entry point; sizes non-empty): float16 / bfloat16 on tensor cores, float32 on
// tensor cores in TF32 when `allow_tf32` (torch.backends.cuda.matmul.allow_tf32), else the direct kernel.
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
