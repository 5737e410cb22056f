// CUDA kernels of dense_conv2d (forward, grad_impulse, grad_response) and their launch code.
//
// No ATen here: this header is compiled by nvcc for the extension (dense_conv_forward.cu and
// dense_conv_backward.cu) and by g++ under the test-only CPU emulator (tests/emu/), from the same text.
// All pointers are contiguous NCHW.
//
//   out[b, i*Cr+r, y, x]   = sum_{p<=y, q<=x} impulse[b,i,y-p,x-q] * response[b,r,p,q]
//   grad_impulse[b,i,y,x]  = sum_r sum_{p,q} g[b,i*Cr+r,y+p,x+q] * response[b,r,p,q]  (y+p<Hi, x+q<Wi)
//   grad_response[b,r,p,q] = sum_i sum_{y,x} g[b,i*Cr+r,y,x] * impulse[b,i,y-p,x-q]
//
// Shared scheme: the taps are walked in chunks (grad_impulse: bands of kGiBandRows tap rows); for each chunk
// a block stages the response taps and the impulse (or gradient) window they touch in shared memory, so
// each global value is read once per block and chunk. Chunks outside the causal window are skipped by the
// loop bounds. Accumulation is in float (double for double inputs).
// sparse_conv2d runs these kernels on [B*C, 1, ...] views (csrc/sparse_conv.cpp).
#pragma once

#include "compat.cuh"

namespace dc {

// Tile and chunk sizes (shared by the kernels and their launch configuration).
constexpr int kThreads = 256;
constexpr int kMinBlocksPerSM = 2;     // lets ptxas use up to 128 registers without spilling
constexpr int kTileRows = 16;             // per_sample_conv_kernels.cuh's tiled kernel: output rows per block
constexpr int kTileCols = 64;             // ... output columns per block
constexpr int kColsPerThread = 4;         // ... each thread: 4 columns, kTileCols/kColsPerThread apart
constexpr int kThreadCols = kTileCols / kColsPerThread;  // 16 threads across, 16 down
constexpr int kTapRows = 8;               // forward / per_sample: response taps staged per chunk
constexpr int kTapCols = 16;
constexpr int kMaxResponsesPerBlock = 8;  // forward: responses per block (all Cr when Cr <= 8)
constexpr int kMaxResponsesPerBlockDouble = 2;
constexpr int kWindowRows = kTileRows + kTapRows - 1;
constexpr int kWindowCols = kTileCols + kTapCols - 1;
// Window row pitch in words: a warp reads 16 consecutive columns of two adjacent rows (ty, ty + 1). A pitch
// of 16 mod 32 puts the second row's 16 words on the 16 banks the first row leaves free: one wavefront
// per request (float), the minimum two (double). The unpadded 79 = 15 mod 32 overlapped on one bank (2-way).
constexpr int kWindowPitch = 80;

constexpr int kGrTapRows = 16;            // grad_response: taps per block (one tap per thread group)
constexpr int kGrTapCols = 16;
constexpr int kGrPixRows = 8;             // grad_response: pixel tile staged per step
constexpr int kGrPixCols = 32;
constexpr int kGrMaxResponses = 8;        // grad_response: most responses per block (a template parameter)
constexpr int kGrMaxResponsesDouble = 4;  // ... for double: 2 registers per accumulator
constexpr int kGrTapGroup = 4;            // grad_response: consecutive taps (and pixels) per thread step
constexpr int kGrMaxSlabs = 32;           // grad_response: row slabs = partial sums per (b, r, p, q)
constexpr int kGrWindowRows = kGrPixRows + kGrTapRows - 1;
constexpr int kGrWindowCols = kGrPixCols + kGrTapCols - 1;
// Same reasoning as kWindowPitch: a warp's 32 threads hold 32 consecutive taps of a 16-wide chunk (two tap
// rows dp, dp + 1, 16 consecutive dq) and read one pixel: 16 consecutive words in each of two rows one
// pitch apart. 48 = 16 mod 32 keeps the two halves on disjoint banks (47 = 15 mod 32 shared one bank).
constexpr int kGrWindowPitch = 48;

// Vector shared loads: values a thread reads together (the RC responses' taps of one tap, the RB
// responses' gradients at one pixel) are stored contiguously and padded to whole 16-byte vectors, so
// they arrive in ceil(n / vec_width) LDS.128 (LDS.64 pairs of double) instead of n LDS.32.
template <typename T>
__host__ __device__ constexpr int vec_width() {
  return 16 / (int)sizeof(T);
}
template <typename T>
__host__ __device__ constexpr int padded_to_vec(int n) {
  return (n + vec_width<T>() - 1) / vec_width<T>() * vec_width<T>();
}
template <typename T>
struct alignas(16) SharedVec {
  T v[vec_width<T>()];
};
// *dst = *src, V an aligned vector struct: one access of sizeof(V) bytes, as nvcc makes it (LDS.128, STS.128,
// LDG.128, ...). Under g++ the vector goes through memory whole, so that the emulator's counting build sees that
// one access: GCC's scalar replacement splits a struct copy into word accesses, which it would count as requests
// of their own (a row of STS.128 split into 4 STS.32 requests, 16 bytes apart: 4-way bank conflicts).
template <typename V>
__device__ __forceinline__ void copy_vector(V* dst, const V* src) {
#if defined(DC_CUDA_EMULATOR)
  typedef unsigned char Bytes __attribute__((vector_size(sizeof(V))));
  Bytes bytes;
  __builtin_memcpy(&bytes, src, sizeof bytes);
  asm volatile("" : "+m"(bytes));
  *reinterpret_cast<Bytes*>(dst) = bytes;
#else
  *dst = *src;
#endif
}
// dst[0 .. N) = src[0 .. N), src 16-byte aligned and readable up to padded_to_vec<T>(N).
template <int N, typename T>
__device__ __forceinline__ void load_shared_vec(T (&dst)[N], const T* src) {
  constexpr int W = vec_width<T>();
#pragma unroll
  for (int c = 0; c < padded_to_vec<T>(N) / W; ++c) {
    SharedVec<T> chunk;
    copy_vector(&chunk, reinterpret_cast<const SharedVec<T>*>(src) + c);
#pragma unroll
    for (int j = 0; j < W; ++j)
      if (c * W + j < N) dst[c * W + j] = chunk.v[j];
  }
}

// Most response channels one forward block accumulates (a template parameter: register arrays).
// Double accumulators take two registers each; double stops at 2 to stay clear of spills.
template <typename scalar_t>
constexpr int max_responses_per_block() {
  return sizeof(typename AccType<scalar_t>::type) == 8 ? kMaxResponsesPerBlockDouble : kMaxResponsesPerBlock;
}

// Responses per block: Cr split into the fewest chunks of at most max_per_block, of equal size where
// possible, so no accumulator is wasted on a response that does not exist (Cr = 5 gives 5, Cr = 9 gives
// 5 + 4, Cr = 1, as sparse_conv2d launches, gives 1).
inline int responses_per_block(int64_t Cr, int max_per_block) {
  const int64_t chunks = ceil_div(Cr, max_per_block);
  return (int)ceil_div(Cr, chunks);
}
template <typename scalar_t>
int responses_per_block(int64_t Cr) {
  return responses_per_block(Cr, max_responses_per_block<scalar_t>());
}

// ------------------------------------------------------------------------------------------------
// forward
// ------------------------------------------------------------------------------------------------

// The tile of a forward block (direct and tensor-core kernels): blockIdx.x enumerates x tiles fastest, then
// y tiles, response chunks, input channels i and samples b. 32-bit arithmetic: the launch checks that the
// grid fits, and 64-bit division is a slow call.
struct ForwardBlock {
  unsigned tx_tile, ty_tile, r_chunk;
  long long i, b;
};
__device__ __forceinline__ ForwardBlock forward_block(unsigned tiles_x, unsigned tiles_y, unsigned r_chunks,
                                                      long long Ci) {
  unsigned block = blockIdx.x;
  ForwardBlock f;
  f.tx_tile = block % tiles_x;  block /= tiles_x;
  f.ty_tile = block % tiles_y;  block /= tiles_y;
  f.r_chunk = block % r_chunks; block /= r_chunks;
  f.i = block % (unsigned)Ci;
  f.b = block / (unsigned)Ci;
  return f;
}

// Forward tile of RC responses per block, per accumulator type. A thread owns kCols consecutive output
// columns of one row, for all RC responses, and slides a register copy of its window row over the taps (as
// grad_impulse does): per tap row, one load of kSpan window values and, per response, kTapCols taps (one
// address per warp) feed kCols * kTapCols * RC multiply-adds.
template <typename acc_t, int RC>
struct ForwardTile {
  // Few responses (sparse_conv2d launches RC = 1): 16 columns, so that each staged tap serves 16 products;
  // more responses reuse the row RC times over and 8 columns leave registers for the 8 * RC accumulators.
  // double: 4 columns (two registers per value).
  static constexpr int kCols = sizeof(acc_t) == 8 ? (RC == 1 ? 8 : 4) : RC <= 2 ? 16 : 8;
  static constexpr int kSpan = kCols + kTapCols;  // window values a thread's columns meet in one tap row
  // A thread's columns span kSegmentWords banks and a tile row 128 (512 bytes): kThreadsAcross threads.
  static constexpr int kSegmentWords = kCols * (int)sizeof(acc_t) / 4;
  static constexpr int kThreadsAcross = 128 / kSegmentWords;
  static constexpr int kRowsPerWarp = 32 / kThreadsAcross;
  static constexpr int kTileCols = kThreadsAcross * kCols;
  static constexpr int kTileRows = kThreads / kThreadsAcross;
  // The window holds one row and one column more than the taps reach (on the top and the left): it starts at
  // column x0 - q0 - kTapCols, a multiple of 16 (whole 32-byte sectors when the image rows are aligned), and
  // it stages in whole warps.
  static constexpr int kWindowRows = kTileRows + kTapRows;
  static constexpr int kWindowCols = kTileCols + kTapCols;
  // Banks of a row load (128-bit loads are served a quarter warp, 8 lanes, per wavefront): each quarter warp
  // holds kRowsPerWarp rows x (8 / kRowsPerWarp) adjacent threads, whose vectors cover the banks
  // {k * kSegmentWords .. k * kSegmentWords + 3}; a pitch of 4 mod kSegmentWords words moves each next row
  // 4 banks on: 32 distinct banks, one wavefront per quarter, the minimum 4 per request.
  static constexpr int kPitch = kWindowCols + vec_width<acc_t>();
  static constexpr size_t kSmemBytes = (kWindowRows * kPitch + RC * kTapRows * kTapCols) * sizeof(acc_t);
  static_assert(kPitch * sizeof(acc_t) / 4 % kSegmentWords == 4 && kCols * sizeof(acc_t) % 16 == 0,
                "row loads must start 16-byte aligned, 4 banks apart from row to row");
  static_assert(kWindowRows * kWindowCols % 32 == 0 && kTapRows * kTapCols % 32 == 0 &&
                    kTileRows * kTileCols % kThreads == 0,
                "staging loops run in whole warps (the emulator's counts pair the lanes' n-th accesses)");
};

// dst[0 .. N) = src[0 .. N), dst 16-byte aligned, N whole vectors (the store of load_shared_vec).
template <int N, typename T>
__device__ __forceinline__ void store_shared_vec(T* dst, const T (&src)[N]) {
  constexpr int W = vec_width<T>();
  static_assert(N % W == 0, "whole vectors");
#pragma unroll
  for (int c = 0; c < N / W; ++c) {
    SharedVec<T> chunk;
#pragma unroll
    for (int j = 0; j < W; ++j) chunk.v[j] = src[c * W + j];
    copy_vector(reinterpret_cast<SharedVec<T>*>(dst) + c, &chunk);
  }
}

// Block: a kTileRows x kTileCols tile of out[b, i*Cr + r0 .. r0+RC-1]; each impulse value staged once
// serves all RC responses.
template <typename scalar_t, int RC>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSM)
    dense_forward_kernel(const scalar_t* __restrict__ response, const scalar_t* __restrict__ impulse,
                         scalar_t* __restrict__ out, ConvSizes s, unsigned tiles_x, unsigned tiles_y,
                         unsigned r_chunks) {
  using acc_t = typename AccType<scalar_t>::type;
  using Tile = ForwardTile<acc_t, RC>;
  constexpr int kCols = Tile::kCols, kPitch = Tile::kPitch, kTileRows = Tile::kTileRows;
  constexpr int kTileCols = Tile::kTileCols, kWindowCols = Tile::kWindowCols;
  acc_t* window = dc_dynamic_smem<acc_t>();           // [kWindowRows][kPitch]
  acc_t* taps = window + Tile::kWindowRows * kPitch;  // [RC][kTapRows][kTapCols]: 16-byte aligned
  acc_t* out_tile = window;                           // [kTileRows][kPitch], once the taps are done

  const ForwardBlock blk = forward_block(tiles_x, tiles_y, r_chunks, s.Ci);
  const long long i = blk.i, b = blk.b;
  const long long y0 = blk.ty_tile * kTileRows, x0 = blk.tx_tile * kTileCols, r0 = blk.r_chunk * RC;
  // Thread -> (row, columns col .. col + kCols-1) of the tile, quarter warps as in ForwardTile::kPitch.
  constexpr int kAcrossPerQuarter = 8 / Tile::kRowsPerWarp;
  const int warp = threadIdx.x / 32, quarter = threadIdx.x % 32 / 8, lane8 = threadIdx.x % 8;
  const int row = warp * Tile::kRowsPerWarp + lane8 / kAcrossPerQuarter;
  const int col = (quarter * kAcrossPerQuarter + lane8 % kAcrossPerQuarter) * kCols;

  const scalar_t* imp = impulse + (b * s.Ci + i) * s.Hi * s.Wi;
  acc_t acc[RC][kCols];
#pragma unroll
  for (int r = 0; r < RC; ++r)
#pragma unroll
    for (int c = 0; c < kCols; ++c) acc[r][c] = acc_t(0);

  // Causal window: tap p reaches row y only if p <= y; the tile's last row is y0 + kTileRows - 1, and this
  // warp's last row warp_y0 + kRowsPerWarp - 1 (a warp wholly below the image computes nothing). The bound
  // is the warp's, so its lanes stay converged.
  const long long p_end = min64(s.Hr, y0 + kTileRows), q_end = min64(s.Wr, x0 + kTileCols);
  const long long warp_y0 = y0 + warp * Tile::kRowsPerWarp;
  const long long warp_p_end = warp_y0 < s.Hi ? warp_y0 + Tile::kRowsPerWarp : 0;
  for (long long p0 = 0; p0 < p_end; p0 += kTapRows) {
    const int np = (int)min64(kTapRows, p_end - p0);
    const int dp_end = (int)max64(0, min64(np, warp_p_end - p0));
    for (long long q0 = 0; q0 < q_end; q0 += kTapCols) {
      const int nq = (int)min64(kTapCols, q_end - q0);
      // window[a][c] = impulse[wy0 + a][wx0 + c], zero outside the image.
      const long long wy0 = y0 - p0 - kTapRows, wx0 = x0 - q0 - kTapCols;
#pragma unroll 1  // unrolled, RC = 2 and 6..8 spilled
      for (int e = threadIdx.x; e < Tile::kWindowRows * kWindowCols; e += kThreads) {
        const int a = e / kWindowCols, c = e % kWindowCols;
        const long long yy = wy0 + a, xx = wx0 + c;
        window[a * kPitch + c] =
            (yy >= 0 && yy < s.Hi && xx >= 0 && xx < s.Wi) ? acc_t(imp[yy * s.Wi + xx]) : acc_t(0);
      }
      // taps[r][dp][dq] = response[b, r0 + r, p0 + dp, q0 + dq], zero past the chunk.
      for (int e = threadIdx.x; e < RC * kTapRows * kTapCols; e += kThreads) {
        const int r = e / (kTapRows * kTapCols), dp = e / kTapCols % kTapRows, dq = e % kTapCols;
        const long long rr = r0 + r;
        taps[e] = (rr < s.Cr && dp < np && dq < nq)
                      ? acc_t(response[((b * s.Cr + rr) * s.Hr + p0 + dp) * s.Wr + q0 + dq])
                      : acc_t(0);
      }
      __syncthreads();
      // Output (row, col + c) meets tap (dp, dq) at window[row + kTapRows - dp][col + c + kTapCols - dq] =
      // v[c + kTapCols - dq]. Per tap row: kSpan / vec_width vector loads of the window (conflict-free, see
      // ForwardTile) and RC * kTapCols / vec_width of the taps (broadcasts) feed RC * kTapCols * kCols FFMA
      // (float, RC = 5: 6 + 20 LDS.128 for 640 FFMA; RC = 1: 8 + 4 for 256). Taps at dq >= nq are staged
      // as zero; groups of 4 past nq are skipped.
      for (int dp = 0; dp < dp_end; ++dp) {
        acc_t v[Tile::kSpan];
        load_shared_vec(v, window + (row + kTapRows - dp) * kPitch + col);
#pragma unroll
        for (int g = 0; g < kTapCols; g += 4) {
          if (g >= nq) break;
#pragma unroll
          for (int r = 0; r < RC; ++r) {
            acc_t w[4];
            load_shared_vec(w, taps + (r * kTapRows + dp) * kTapCols + g);
#pragma unroll
            for (int t = 0; t < 4; ++t)
#pragma unroll
              for (int c = 0; c < kCols; ++c) acc[r][c] += v[c + kTapCols - g - t] * w[t];
          }
        }
      }
      __syncthreads();
    }
  }

  // Stores through shared memory, one response at a time: a thread's columns are consecutive, so its direct
  // stores would put every lane of a warp in its own 32-byte sector; from the tile, 32 lanes store 32
  // consecutive columns.
#pragma unroll
  for (int r = 0; r < RC; ++r) {
    const long long rr = r0 + r;
    if (rr >= s.Cr) break;  // the same for the whole block
    store_shared_vec(out_tile + row * kPitch + col, acc[r]);
    __syncthreads();
    scalar_t* out_plane = out + ((b * s.Ci + i) * s.Cr + rr) * s.Hi * s.Wi;
    for (int e = threadIdx.x; e < kTileRows * kTileCols; e += kThreads) {
      const int a = e / kTileCols, c = e % kTileCols;
      const long long y = y0 + a, x = x0 + c;
      if (y < s.Hi && x < s.Wi) out_plane[y * s.Wi + x] = static_cast<scalar_t>(out_tile[a * kPitch + c]);
    }
    __syncthreads();
  }
}

template <typename scalar_t, int RC>
LaunchConfig dense_forward_config(const ConvSizes& s) {
  using Tile = ForwardTile<typename AccType<scalar_t>::type, RC>;
  const int64_t blocks =
      ceil_div(s.Wi, Tile::kTileCols) * ceil_div(s.Hi, Tile::kTileRows) * ceil_div(s.Cr, RC) * s.Ci * s.B;
  return {blocks, 1, 1, kThreads, Tile::kSmemBytes};
}

template <typename scalar_t, int RC>
void launch_dense_forward_rc(const scalar_t* response, const scalar_t* impulse, scalar_t* out, const ConvSizes& s,
                             cudaStream_t stream) {
  using Tile = ForwardTile<typename AccType<scalar_t>::type, RC>;
  const LaunchConfig cfg = dense_forward_config<scalar_t, RC>(s);
  auto* kernel = &dense_forward_kernel<scalar_t, RC>;  // a pointer: template commas cannot pass through a macro
  DC_LAUNCH(kernel, checked_grid(cfg, "dense_conv2d forward"), cfg.threads, cfg.smem_bytes, stream)(
      response, impulse, out, s, (unsigned)ceil_div(s.Wi, Tile::kTileCols), (unsigned)ceil_div(s.Hi, Tile::kTileRows),
      (unsigned)ceil_div(s.Cr, RC));
}

// Picks the instantiation RC = rc among 1..RC_MAX.
template <typename scalar_t, int RC_MAX>
void launch_dense_forward_pick(int rc, const scalar_t* response, const scalar_t* impulse, scalar_t* out,
                               const ConvSizes& s, cudaStream_t stream) {
  if constexpr (RC_MAX > 1) {
    if (rc < RC_MAX) return launch_dense_forward_pick<scalar_t, RC_MAX - 1>(rc, response, impulse, out, s, stream);
  }
  launch_dense_forward_rc<scalar_t, RC_MAX>(response, impulse, out, s, stream);
}

// Host entry point; sizes must be non-empty (the caller returns early otherwise).
template <typename scalar_t>
void launch_dense_forward(const scalar_t* response, const scalar_t* impulse, scalar_t* out, ConvSizes s,
                          cudaStream_t stream) {
  launch_dense_forward_pick<scalar_t, max_responses_per_block<scalar_t>()>(responses_per_block<scalar_t>(s.Cr),
                                                                           response, impulse, out, s, stream);
}

// ------------------------------------------------------------------------------------------------
// grad_impulse: a correlation of grad_out with the response, summed over r.
// ------------------------------------------------------------------------------------------------

// grad_impulse block: one tile of grad_impulse[b, i] in the forward's RC = 1 layout (ForwardTile<acc_t, 1>: float
// 32 x 128 outputs, a thread 16 consecutive columns of one row; double 32 x 64, 8 columns; the same conflict-free
// row loads). It walks bands of kGiBandRows x kTapCols taps and, per band, the responses r; each (band, r) stages
// its grad_out window once and then costs, per tap row, one register copy of the thread's window row and kTapCols
// taps for kCols * kTapCols FFMA (float: 8 + 4 LDS.128 for 256 FFMA). A thread sums its products in that fixed
// order (bands, tap column chunks, responses, tap rows, tap columns): no atomics, the same bits under any schedule.
constexpr int kGiBandRows = 16;
constexpr int kGiStageRows = 8;  // window rows are staged in multiples of this: whole warps (see stage_window)

template <typename acc_t>
struct GradImpulseTile {
  using Threads = ForwardTile<acc_t, 1>;  // tile, thread layout, window columns and pitch
  static constexpr int kWindowRows = Threads::kTileRows + kGiBandRows;  // a band reads kTileRows + np - 1 rows
  static constexpr size_t kSmemBytes = (kWindowRows * Threads::kPitch + kGiBandRows * kTapCols) * sizeof(acc_t);
  static_assert(kWindowRows % kGiStageRows == 0 && kGiBandRows * kTapCols == kThreads,
                "window staged in whole warps, one tap per thread");
};

// N values of T in one aligned global load.
template <typename T, int N>
struct alignas(N * sizeof(T)) GlobalVec {
  T v[N];
};
template <int N, typename T>
__device__ __forceinline__ GlobalVec<T, N> load_global_vec(const T* __restrict__ src) {
  GlobalVec<T, N> in;
  copy_vector(&in, reinterpret_cast<const GlobalVec<T, N>*>(src));  // one access, in the emulator's counts too
  return in;
}

// window[a * kPitch + c .. + N) = src[a * W + c .. + N), zero outside a < rows_in, c < cols_in: one N-value global
// load (src and W N-aligned when N > 1: a vector is then wholly inside or wholly outside cols_in) and one shared store.
template <int N, int kPitch, typename scalar_t, typename acc_t>
__device__ __forceinline__ void stage_vector(acc_t* window, int a, int c, int rows_in, int cols_in,
                                             const scalar_t* __restrict__ src_row) {
  acc_t vals[N];
  if (a < rows_in && c < cols_in) {
    const GlobalVec<scalar_t, N> in = load_global_vec<N>(src_row + c);
#pragma unroll
    for (int j = 0; j < N; ++j) vals[j] = acc_t(in.v[j]);
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) vals[j] = acc_t(0);
  }
  if constexpr (N == 1)
    window[a * kPitch + c] = vals[0];
  else
    store_shared_vec(window + a * kPitch + c, vals);
}

// window[a][c] = src[a * W + c] for a < rows_in, c < cols_in, zero for the other a < rows, c < kCols (row pitch
// kPitch). N values per step: one N-value global load, when the caller knows that src and W are N-aligned (a vector
// is then wholly inside or wholly outside cols_in, a multiple of N or at least kCols), and one STS.128 (N =
// vec_width); else N = 1. rows is a multiple of kGiStageRows, so that every warp runs the same number of steps.
// No warp's stores straddle two rows: the pitch's gap at a row's end inside a phase (8 16-byte lanes, 32 4-byte
// ones) put its first and last lanes on the same banks (float: 5 wavefronts instead of 4 for 4 of 9 warps). So the
// window is walked in two parts, each thread's column fixed and its row moved on by a constant:
//   main: columns [0, kCols - kTapCols), a multiple of 32 lanes per row: a phase holds consecutive columns of a row;
//   tail: the last kTapCols columns (64 bytes a row for float, 128 for double), 8 rows per group of 8 * kTapCols / N
//   lanes; a float phase (128 bytes) holds the tails of rows j and j + 4 of the group, 16 banks apart.
template <int N, int kCols, int kPitch, typename scalar_t, typename acc_t>
__device__ __forceinline__ void stage_window(acc_t* window, int rows, int rows_in, int cols_in,
                                             const scalar_t* __restrict__ src, long long W) {
  constexpr int kMainCols = kCols - kTapCols, kMainVecs = kMainCols / N, kTailVecs = kTapCols / N;
  constexpr int kTailBytes = kTapCols * (int)sizeof(acc_t);
  static_assert(kMainCols % N == 0 && kMainVecs % 32 == 0 && kThreads % kMainVecs == 0 && kTapCols % N == 0 &&
                    kGiStageRows == 8 && 8 * kTailVecs % 32 == 0 && kThreads % (8 * kTailVecs) == 0 &&
                    (N == 1 || N == vec_width<acc_t>()),
                "whole vectors, whole warps, a thread's column fixed");
  static_assert(kTailBytes == 128 || (kTailBytes == 64 && 4 * kPitch * sizeof(acc_t) / 4 % 32 == 16),
                "a phase's two tail rows (j, j + 4) on disjoint banks");
  {
    const int c = threadIdx.x % kMainVecs * N;
    constexpr int kStepRows = kThreads / kMainVecs;
    int a = threadIdx.x / kMainVecs;
    const scalar_t* src_row = src + a * W;
#pragma unroll 1
    for (; a < rows; a += kStepRows, src_row += kStepRows * W)
      stage_vector<N, kPitch>(window, a, c, rows_in, cols_in, src_row);
  }
  {
    constexpr int kGroup = 8 * kTailVecs, kStepRows = 8 * (kThreads / kGroup);
    const int f = threadIdx.x % kGroup, c = kMainCols + f % kTailVecs * N;
    int a = threadIdx.x / kGroup * 8 + f / (2 * kTailVecs) + f / kTailVecs % 2 * 4;
    const scalar_t* src_row = src + a * W;
#pragma unroll 1
    for (; a < rows; a += kStepRows, src_row += kStepRows * W)
      stage_vector<N, kPitch>(window, a, c, rows_in, cols_in, src_row);
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSM)
    dense_grad_impulse_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ response,
                              scalar_t* __restrict__ grad_impulse, ConvSizes s, unsigned tiles_x, unsigned tiles_y) {
  using acc_t = typename AccType<scalar_t>::type;
  using Tile = GradImpulseTile<acc_t>;
  using Threads = typename Tile::Threads;
  constexpr int kCols = Threads::kCols, kPitch = Threads::kPitch, kWindowCols = Threads::kWindowCols;
  constexpr int kTileRows = Threads::kTileRows, kTileCols = Threads::kTileCols, kVec = vec_width<acc_t>();
  acc_t* window = dc_dynamic_smem<acc_t>();           // [Tile::kWindowRows][kPitch] of grad_out
  acc_t* taps = window + Tile::kWindowRows * kPitch;  // [kGiBandRows][kTapCols]: 16-byte aligned
  acc_t* out_tile = window;                           // [kTileRows][kPitch], once the responses are done

  const ForwardBlock blk = forward_block(tiles_x, tiles_y, 1, s.Ci);
  const long long i = blk.i, b = blk.b;
  const long long y0 = blk.ty_tile * kTileRows, x0 = blk.tx_tile * kTileCols;
  // Thread -> (row, columns col .. col + kCols-1) of the tile, as in the forward (quarter warps: ForwardTile).
  constexpr int kAcrossPerQuarter = 8 / Threads::kRowsPerWarp;
  const int warp = threadIdx.x / 32, quarter = threadIdx.x % 32 / 8, lane8 = threadIdx.x % 8;
  const int row = warp * Threads::kRowsPerWarp + lane8 / kAcrossPerQuarter;
  const int col = (quarter * kAcrossPerQuarter + lane8 % kAcrossPerQuarter) * kCols;

  acc_t acc[kCols];
#pragma unroll
  for (int c = 0; c < kCols; ++c) acc[c] = acc_t(0);

  // Anti-causal window: tap p reaches grad row y + p only while y + p < Hi. The block's bound is its first row's;
  // a warp stops at its own first row's (a warp wholly below the image computes nothing), so its lanes stay
  // converged.
  const long long p_end = min64(s.Hr, s.Hi - y0), q_end = min64(s.Wr, s.Wi - x0);
  const long long warp_p_end = s.Hi - (y0 + warp * Threads::kRowsPerWarp);
  // Vector staging needs every grad_out row N-aligned: the window starts at a multiple of 16 columns.
  static_assert(kTapCols % kVec == 0 && kTileCols % kVec == 0, "window columns start vector-aligned");
  const bool vector_staging =
      s.Wi % kVec == 0 && reinterpret_cast<uintptr_t>(grad) % sizeof(GlobalVec<scalar_t, kVec>) == 0;
  // Bands of kGiBandRows tap rows and chunks of kTapCols tap columns, each summed over the responses r: the bounds
  // of a band and chunk are worked out once for all r. Response r's grad_out plane and taps:
  const long long g_plane = s.Hi * s.Wi, resp_plane = s.Hr * s.Wr;
  const scalar_t* g_planes = grad + (b * s.Ci + i) * s.Cr * g_plane;
  const scalar_t* resp_planes = response + b * s.Cr * resp_plane;
  const int tap_dp = threadIdx.x / kTapCols, tap_dq = threadIdx.x % kTapCols;  // the tap this thread stages
  for (long long p0 = 0; p0 < p_end; p0 += kGiBandRows) {
    const int np = (int)min64(kGiBandRows, p_end - p0);
    const int dp_end = (int)max64(0, min64(np, warp_p_end - p0));
    // The kTileRows + np - 1 window rows the band's taps reach, rounded up to whole warps of staging (<=
    // Tile::kWindowRows), and how many of them are inside the image.
    const int rows = (kTileRows + np - 1 + kGiStageRows - 1) / kGiStageRows * kGiStageRows;
    const int rows_in = (int)min64(rows, s.Hi - (y0 + p0));
    for (long long q0 = 0; q0 < q_end; q0 += kTapCols) {
      const int nq = (int)min64(kTapCols, q_end - q0);
      const int cols_in = (int)min64(kWindowCols, s.Wi - (x0 + q0));
      const long long window_origin = (y0 + p0) * s.Wi + x0 + q0;
      const bool tap_in = tap_dp < np && tap_dq < nq;
      const long long tap_offset = (p0 + tap_dp) * s.Wr + q0 + tap_dq;
      // Offsets per r, not pointers moved on per r: those took 18 more registers (sm_90: 96, 2 blocks per SM, not 3).
      for (long long r = 0; r < s.Cr; ++r) {
        // window[a][c] = g[y0 + p0 + a][x0 + q0 + c]: all kWindowCols columns (the row loads read up to
        // col + kSpan - 1), the rows the band's taps reach, zero outside the image.
        const scalar_t* window_src = g_planes + r * g_plane + window_origin;
        if (vector_staging)
          stage_window<kVec, kWindowCols, kPitch>(window, rows, rows_in, cols_in, window_src, s.Wi);
        else
          stage_window<1, kWindowCols, kPitch>(window, rows, rows_in, cols_in, window_src, s.Wi);
        // taps[dp][dq] = resp[p0 + dp][q0 + dq], zero past the band: one per thread.
        taps[threadIdx.x] = tap_in ? acc_t(resp_planes[r * resp_plane + tap_offset]) : acc_t(0);
        __syncthreads();
        // Output (row, col + c) meets tap (dp, dq) at window[row + dp][col + c + dq] = v[c + dq]. Per tap row:
        // kSpan / vec_width vector loads of the window (conflict-free, see ForwardTile) and kTapCols / vec_width
        // of the taps (broadcasts) feed kCols * kTapCols FFMA. Taps at dq >= nq are staged as zero; groups of 4
        // past nq are skipped.
        for (int dp = 0; dp < dp_end; ++dp) {
          acc_t v[Threads::kSpan];
          load_shared_vec(v, window + (row + dp) * kPitch + col);
#pragma unroll
          for (int g4 = 0; g4 < kTapCols; g4 += 4) {
            if (g4 >= nq) break;
            acc_t w[4];
            load_shared_vec(w, taps + dp * kTapCols + g4);
#pragma unroll
            for (int t = 0; t < 4; ++t)
#pragma unroll
              for (int c = 0; c < kCols; ++c) acc[c] += v[c + g4 + t] * w[t];
          }
        }
        __syncthreads();
      }
    }
  }

  // Stores through shared memory, as the forward's: from the tile, 32 lanes store 32 consecutive columns.
  store_shared_vec(out_tile + row * kPitch + col, acc);
  __syncthreads();
  scalar_t* gi_plane = grad_impulse + (b * s.Ci + i) * s.Hi * s.Wi;
  for (int e = threadIdx.x; e < kTileRows * kTileCols; e += kThreads) {
    const int a = e / kTileCols, c = e % kTileCols;
    const long long y = y0 + a, x = x0 + c;
    if (y < s.Hi && x < s.Wi) gi_plane[y * s.Wi + x] = static_cast<scalar_t>(out_tile[a * kPitch + c]);
  }
}

template <typename scalar_t>
LaunchConfig dense_grad_impulse_config(const ConvSizes& s) {
  using Tile = GradImpulseTile<typename AccType<scalar_t>::type>;
  const int64_t blocks =
      ceil_div(s.Wi, Tile::Threads::kTileCols) * ceil_div(s.Hi, Tile::Threads::kTileRows) * s.Ci * s.B;
  return {blocks, 1, 1, kThreads, Tile::kSmemBytes};
}

template <typename scalar_t>
void launch_dense_grad_impulse(const scalar_t* grad_out, const scalar_t* response, scalar_t* grad_impulse, ConvSizes s,
                               cudaStream_t stream) {
  using Threads = typename GradImpulseTile<typename AccType<scalar_t>::type>::Threads;
  const LaunchConfig cfg = dense_grad_impulse_config<scalar_t>(s);
  auto* kernel = &dense_grad_impulse_kernel<scalar_t>;
  DC_LAUNCH(kernel, checked_grid(cfg, "dense_conv2d grad_impulse"), cfg.threads, cfg.smem_bytes, stream)(
      grad_out, response, grad_impulse, s, (unsigned)ceil_div(s.Wi, Threads::kTileCols),
      (unsigned)ceil_div(s.Hi, Threads::kTileRows));
}

// ------------------------------------------------------------------------------------------------
// grad_response: a reduction over Ci*Hi*Wi pixels for each of Cr*Hr*Wr taps. Deterministic in two
// passes: each block sums one row slab into its own partial, then a second kernel adds the slabs in
// a fixed order (no float atomics).
// ------------------------------------------------------------------------------------------------

struct GradResponsePlan {
  int64_t r_chunks, tap_chunks_p, tap_chunks_q, slabs, slab_rows;
  int responses;           // responses per block (the kernel's RB): no block works on a missing response
  int tap_rows, tap_cols;  // tap chunk extent (<= kGrTapRows x kGrTapCols)

  int64_t partial_count(const ConvSizes& s) const { return s.B * slabs * s.Cr * s.Hr * s.Wr; }
};

// Most responses one grad_response block accumulates (double accumulators take two registers each).
template <typename scalar_t>
constexpr int max_grad_responses_per_block() {
  return sizeof(typename AccType<scalar_t>::type) == 8 ? kGrMaxResponsesDouble : kGrMaxResponses;
}

// Blocks per SM the partial kernel is compiled for: 3 (at most 80 registers) fits float accumulators with
// RB >= 2 without spills; double's 2-register accumulators, and RB = 1 (which spilled 8 bytes on sm_80 / sm_89
// at 80), take the 2-block budget.
template <typename scalar_t, int RB>
constexpr int kGrMinBlocksPerSM = sizeof(typename AccType<scalar_t>::type) == 8 || RB == 1 ? 2 : 3;

template <typename scalar_t>
GradResponsePlan grad_response_plan(const ConvSizes& s) {
  GradResponsePlan plan;
  plan.tap_rows = (int)min64(kGrTapRows, s.Hr);
  plan.tap_cols = (int)min64(kGrTapCols, s.Wr);
  plan.responses = responses_per_block(s.Cr, max_grad_responses_per_block<scalar_t>());
  plan.r_chunks = ceil_div(s.Cr, plan.responses);
  plan.tap_chunks_p = ceil_div(s.Hr, plan.tap_rows);
  plan.tap_chunks_q = ceil_div(s.Wr, plan.tap_cols);
  // Rows per slab: a multiple of the staged pixel rows, with at most kGrMaxSlabs slabs.
  plan.slab_rows = ceil_div(max64(1, ceil_div(s.Hi, kGrMaxSlabs)), kGrPixRows) * kGrPixRows;
  plan.slabs = ceil_div(s.Hi, plan.slab_rows);
  return plan;
}

// Block: (b, slab, response chunk, tap chunk). The chunk's taps are split into groups of kGrTapGroup
// consecutive dq (one tap row); thread t owns group t % n_groups and, of each staged tile, lane
// t / n_groups's contiguous share of the runs (kRunQuads quads of kGrTapGroup consecutive pixels along a
// pixel row); the lanes are then summed in shared memory. RB responses per block (plan.responses).
//
// Register blocking: pixel xx meets tap dq at window column xx - dq + kGrTapCols - 1, so a quad of pixels
// against a group of taps reads 2 * kGrTapGroup - 1 consecutive window values (two aligned vectors, the
// second shared with the next quad of the run), and the quad's RB gradients (kGrTapGroup * RB contiguous
// values) serve every tap of the group.
template <typename scalar_t, int RB>
__global__ void __launch_bounds__(kThreads, kGrMinBlocksPerSM<scalar_t, RB>)
    dense_grad_response_partial_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ impulse,
                                       typename AccType<scalar_t>::type* __restrict__ partial, ConvSizes s,
                                       GradResponsePlan plan) {
  using acc_t = typename AccType<scalar_t>::type;
  constexpr int G = kGrTapGroup;
  constexpr int kPix = kGrPixRows * kGrPixCols;
  constexpr int kRunQuads = 4;                                  // quads per run (one thread, one pixel row)
  constexpr int kRunsPerRow = kGrPixCols / (kRunQuads * G);
  constexpr int kRuns = kGrPixRows * kRunsPerRow;
  constexpr int kWinStep = kThreads / kGrWindowPitch;           // window rows staged per pass
  constexpr int kWinThreads = kWinStep * kGrWindowPitch;
  constexpr int kWinPasses = (kGrWindowRows + kWinStep - 1) / kWinStep;
  static_assert(kPix == kThreads, "gradient staging: one pixel per thread");
  static_assert((kWinPasses - 1) * kWinStep + kWinStep - 1 < kGrWindowRows + kWinStep, "window passes");
  static_assert(kGrPixCols % (kRunQuads * G) == 0, "runs tile a pixel row");
  static_assert(G * sizeof(acc_t) % 16 == 0 && kGrWindowPitch % G == 0, "quad loads must be 16-byte aligned");
  acc_t* g_tile = dc_dynamic_smem<acc_t>();  // [kGrPixRows][kGrPixCols][RB]: one quad's values contiguous
  acc_t* window = g_tile + kPix * RB;        // [kGrWindowRows][kGrWindowPitch]
  acc_t* lane_sums = g_tile;                 // reused at the end: [lanes][n_groups][G][RB]

  unsigned block = blockIdx.x;
  const long long tq_chunk = block % (unsigned)plan.tap_chunks_q; block /= (unsigned)plan.tap_chunks_q;
  const long long tp_chunk = block % (unsigned)plan.tap_chunks_p; block /= (unsigned)plan.tap_chunks_p;
  const long long r_chunk = block % (unsigned)plan.r_chunks;      block /= (unsigned)plan.r_chunks;
  const long long slab = block % (unsigned)plan.slabs;
  const long long b = block / (unsigned)plan.slabs;
  const long long p0 = tp_chunk * plan.tap_rows, q0 = tq_chunk * plan.tap_cols, r0 = r_chunk * RB;
  const int np = (int)min64(plan.tap_rows, s.Hr - p0), nq = (int)min64(plan.tap_cols, s.Wr - q0);
  const int groups_per_row = (nq + G - 1) / G, n_groups = np * groups_per_row, lanes = kThreads / n_groups;
  const int group = threadIdx.x % n_groups, lane = threadIdx.x / n_groups;
  const int dp = group / groups_per_row, dq0 = group % groups_per_row * G;  // taps (dp, dq0 .. dq0 + G-1)
  const bool active = lane < lanes;  // threads beyond lanes * n_groups only help staging
  // Each lane takes a contiguous share of the tile's runs (so of its pixel rows): a warp (one lane when
  // n_groups >= 32) can then skip the rows that cannot meet its taps (see run_lo, run_hi).
  const int run_begin = active ? lane * kRuns / lanes : 0, run_end = active ? (lane + 1) * kRuns / lanes : 0;
  // v[j] of a quad at pixel (yy, xx) = window[yy + np-1 - dp][xx + kGrTapCols-1 - dq0 - (G-1) + j]
  const acc_t* group_window = window + (np - 1 - dp) * kGrWindowPitch + kGrTapCols - dq0 - G;
  const int nr = (int)min64(RB, s.Cr - r0);
  const long long slab_begin = slab * plan.slab_rows, slab_end = min64(s.Hi, slab_begin + plan.slab_rows);

  acc_t acc[G][RB];
#pragma unroll
  for (int t = 0; t < G; ++t)
#pragma unroll
    for (int r = 0; r < RB; ++r) acc[t][r] = acc_t(0);

  // Staging roles: thread t stages pixel (g_yy, g_xx) = t of the gradient tile for every response (stored
  // pixel-major) and, if t < kWinThreads, window column w_c of rows w_a0, w_a0 + kWinStep, ...: no division
  // per element, one bounds test per value, addresses advanced by adds.
  const int g_yy = threadIdx.x / kGrPixCols, g_xx = threadIdx.x % kGrPixCols;
  const int w_a0 = threadIdx.x / kGrWindowPitch, w_c = threadIdx.x % kGrWindowPitch;
  const long long plane = s.Hi * s.Wi, win_step = kWinStep * s.Wi;
  for (long long i = 0; i < s.Ci; ++i) {
    const scalar_t* imp = impulse + (b * s.Ci + i) * plane;
    const scalar_t* grad_i = grad + ((b * s.Ci + i) * s.Cr + r0) * plane;  // grad[b, i*Cr + r0]
    // Causal window: pixel row y meets tap p only if y >= p, so rows below p0 contribute nothing.
    for (long long y0 = max64(slab_begin, p0 / kGrPixRows * kGrPixRows); y0 < slab_end; y0 += kGrPixRows) {
      const bool g_row_inside = y0 + g_yy < slab_end;
      // This thread's runs whose pixel row y meets tap row p0 + dp (y >= p0 + dp) inside the slab
      // (y < slab_end): the others would only add products with zero padding.
      const int rows_lo = (int)min64(max64(p0 + dp - y0, 0), kGrPixRows);
      const int rows_hi = (int)min64(slab_end - y0, kGrPixRows);
      const int run_lo = max(run_begin, rows_lo * kRunsPerRow), run_hi = min(run_end, rows_hi * kRunsPerRow);
      const long long g_row = (y0 + g_yy) * s.Wi + g_xx;
      // Window rows inside the image (bit k: pass k), worked out once per y0.
      unsigned w_rows_inside = 0;
      const long long w_y0 = y0 - p0 - (np - 1) + w_a0, w_row = w_y0 * s.Wi;  // window row w_a0's image row
#pragma unroll
      for (int k = 0; k < kWinPasses; ++k)
        w_rows_inside |= (unsigned)(w_y0 + k * kWinStep >= 0 && w_y0 + k * kWinStep < s.Hi) << k;
      for (long long x0 = q0 / kGrPixCols * kGrPixCols; x0 < s.Wi; x0 += kGrPixCols) {
        // Pointers here may lie outside the tensors; only the loads under their bounds tests dereference them.
        {
          const bool inside = g_row_inside && x0 + g_xx < s.Wi;
          const scalar_t* src = grad_i + g_row + x0;
#pragma unroll
          for (int r = 0; r < RB; ++r, src += plane)
            g_tile[threadIdx.x * RB + r] = (inside && r < nr) ? acc_t(*src) : acc_t(0);
        }
        // window[a][c] = impulse[y0 - p0 - (np-1) + a][x0 - q0 - (kGrTapCols-1) + c], zero outside the
        // image; the whole pitch is staged (the last run's last vector reads the padding column).
        if (threadIdx.x < kWinThreads) {
          const long long wx = x0 - q0 - (kGrTapCols - 1) + w_c;
          const unsigned inside = wx >= 0 && wx < s.Wi ? w_rows_inside : 0u;
          const scalar_t* src = imp + w_row + wx;
#pragma unroll
          for (int k = 0; k < kWinPasses; ++k, src += win_step) {
            const int a = w_a0 + k * kWinStep;
            if (k + 1 < kWinPasses || a < kGrWindowRows)  // only the last pass can run past the window
              window[a * kGrWindowPitch + w_c] = (inside >> k & 1u) ? acc_t(*src) : acc_t(0);
          }
        }
        __syncthreads();
        // Per run of kRunQuads quads along a pixel row: (kRunQuads + 1) * G window values (consecutive quads
        // share a vector) and, per quad, G * RB gradients (float: 5 + 5 * RB LDS.128 for 64 * RB FFMA).
        // Banks, window: a quarter warp (8 threads, served per wavefront for 128-bit loads) holds the 4
        // groups of two tap rows at one run: 4 consecutive vectors (16 words) per row, the rows one pitch
        // (16 mod 32 words) apart, so 32 distinct banks: the minimum 4 wavefronts per request. Gradients:
        // one run per lane and at most a few lanes per warp: broadcasts.
        {
          for (int run = run_lo; run < run_hi; ++run) {
            const int yy = run / kRunsPerRow, xx = run % kRunsPerRow * (kRunQuads * G);
            const acc_t* run_grads = g_tile + run * (kRunQuads * G * RB);  // pixel yy * kGrPixCols + xx on
            acc_t v[(kRunQuads + 1) * G];
            load_shared_vec(v, group_window + yy * kGrWindowPitch + xx);
#pragma unroll
            for (int quad = 0; quad < kRunQuads; ++quad) {
              acc_t gv[G * RB];
              load_shared_vec(gv, run_grads + quad * (G * RB));
#pragma unroll
              for (int k = 0; k < G; ++k)      // pixel xx + quad * G + k
#pragma unroll
                for (int t = 0; t < G; ++t)    // tap dq0 + t
#pragma unroll
                  for (int r = 0; r < RB; ++r) acc[t][r] += gv[k * RB + r] * v[quad * G + k - t + G - 1];
            }
          }
        }
        __syncthreads();
      }
    }
  }

  // Sum the lanes in a fixed order: lane_sums[lane][group][t][r].
  if (active) {
#pragma unroll
    for (int t = 0; t < G; ++t)
#pragma unroll
      for (int r = 0; r < RB; ++r) lane_sums[((lane * n_groups + group) * G + t) * RB + r] = acc[t][r];
  }
  __syncthreads();
  if (lane == 0) {
    for (int t = 0; t < G && dq0 + t < nq; ++t) {
      for (int r = 0; r < nr; ++r) {
        acc_t sum = acc_t(0);
        for (int l = 0; l < lanes; ++l) sum += lane_sums[((l * n_groups + group) * G + t) * RB + r];
        // partial[b][slab][r][p][q]
        partial[(((b * plan.slabs + slab) * s.Cr + r0 + r) * s.Hr + p0 + dp) * s.Wr + q0 + dq0 + t] = sum;
      }
    }
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSM)
    dense_grad_response_reduce_kernel(const typename AccType<scalar_t>::type* __restrict__ partial,
                                      scalar_t* __restrict__ grad_response, ConvSizes s, long long slabs) {
  using acc_t = typename AccType<scalar_t>::type;
  const long long per_sample = s.Cr * s.Hr * s.Wr, total = s.B * per_sample;
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
       e += (long long)gridDim.x * blockDim.x) {
    const long long b = e / per_sample, k = e % per_sample;
    acc_t sum = acc_t(0);
    for (long long slab = 0; slab < slabs; ++slab) sum += partial[(b * slabs + slab) * per_sample + k];
    grad_response[e] = static_cast<scalar_t>(sum);
  }
}

template <typename scalar_t>
LaunchConfig dense_grad_response_partial_config(const ConvSizes& s, const GradResponsePlan& plan) {
  using acc_t = typename AccType<scalar_t>::type;
  const int64_t blocks = s.B * plan.slabs * plan.r_chunks * plan.tap_chunks_p * plan.tap_chunks_q;
  const int64_t staged = plan.responses * kGrPixRows * kGrPixCols + kGrWindowRows * kGrWindowPitch;
  const int64_t lane_sums = kThreads * kGrTapGroup * plan.responses;  // at most kThreads (lane, group) pairs
  return {blocks, 1, 1, kThreads, max64(staged, lane_sums) * sizeof(acc_t)};
}

inline LaunchConfig dense_grad_response_reduce_config(const ConvSizes& s) {
  return {min64(ceil_div(s.B * s.Cr * s.Hr * s.Wr, kThreads), 65536), 1, 1, kThreads, 0};  // grid-stride loop
}

// Bytes of scratch memory launch_dense_grad_response needs (the per-slab partial sums).
template <typename scalar_t>
size_t dense_grad_response_workspace_bytes(ConvSizes s) {
  return (size_t)grad_response_plan<scalar_t>(s).partial_count(s) * sizeof(typename AccType<scalar_t>::type);
}

// Launches the partial kernel instantiated for RB = plan.responses among 1..RB_MAX.
template <typename scalar_t, int RB_MAX>
void launch_dense_grad_response_partial_pick(const scalar_t* grad_out, const scalar_t* impulse,
                                             typename AccType<scalar_t>::type* partial, const ConvSizes& s,
                                             const GradResponsePlan& plan, cudaStream_t stream) {
  if constexpr (RB_MAX > 1) {
    if (plan.responses < RB_MAX)
      return launch_dense_grad_response_partial_pick<scalar_t, RB_MAX - 1>(grad_out, impulse, partial, s, plan,
                                                                            stream);
  }
  const LaunchConfig cfg = dense_grad_response_partial_config<scalar_t>(s, plan);
  auto* kernel = &dense_grad_response_partial_kernel<scalar_t, RB_MAX>;
  DC_LAUNCH(kernel, checked_grid(cfg, "dense_conv2d grad_response"), cfg.threads, cfg.smem_bytes, stream)(
      grad_out, impulse, partial, s, plan);
}

template <typename scalar_t>
void launch_dense_grad_response(const scalar_t* grad_out, const scalar_t* impulse, scalar_t* grad_response,
                                void* workspace, ConvSizes s, cudaStream_t stream) {
  using acc_t = typename AccType<scalar_t>::type;
  const GradResponsePlan plan = grad_response_plan<scalar_t>(s);
  acc_t* partial = static_cast<acc_t*>(workspace);
  launch_dense_grad_response_partial_pick<scalar_t, max_grad_responses_per_block<scalar_t>()>(
      grad_out, impulse, partial, s, plan, stream);
  const LaunchConfig reduce_cfg = dense_grad_response_reduce_config(s);
  auto* reduce_kernel = &dense_grad_response_reduce_kernel<scalar_t>;
  DC_LAUNCH(reduce_kernel, checked_grid(reduce_cfg, "dense_conv2d grad_response"), reduce_cfg.threads,
            reduce_cfg.smem_bytes, stream)(partial, grad_response, s, plan.slabs);
}

}  // namespace dc
