// CUDA kernels of per_sample_conv2d (forward, grad_impulse, grad_weight) and their launch code.
//
// No ATen here: compiled by nvcc for the extension (per_sample_conv_cuda.cu) and by g++ under the
// test-only CPU emulator (tests/emu/), from the same text. All pointers are contiguous.
// weight [B, L, Ci, Hr, Wr], impulse [B, Ci, Hi, Wi], out and grad_out [B, L, Hi, Wi]:
//
//   out[b,l,y,x]          = sum_i sum_{p<=y, q<=x} impulse[b,i,y-p,x-q] * weight[b,l,i,p,q]
//   grad_impulse[b,i,y,x] = sum_l sum_{p,q} g[b,l,y+p,x+q] * weight[b,l,i,p,q]   (y+p<Hi, x+q<Wi)
//   grad_weight[b,l,i,p,q]= sum_{y>=p, x>=q} g[b,l,y,x] * impulse[b,i,y-p,x-q]  (0 for p>=Hi or q>=Wi)
//
// forward and grad_impulse share one kernel body: the tile, tap chunk and padded window pitch of the dense
// kernels (dense_conv_kernels.cuh), the sum over a channel (Ci for the forward, L for grad_impulse) inside
// the block, RC output channels per block, and a register window: a thread owns kColsPerThread adjacent
// columns and one copy of a window row serves every tap of that row (the dense kernels' ForwardTile has the
// same idea with wider rows).
// grad_weight: per-slab partial sums and a fixed-order reduction (no atomics), LC x IC channel pairs per
// block, one tap per group of 8 threads (see per_sample_grad_weight_partial_kernel).
#pragma once

#include "dense_conv_kernels.cuh"

namespace dc {

// out[0 .. N) = v, as one vector store when out is aligned to it (N * sizeof(T) bytes; 16-byte pieces on the
// GPU), else N scalar stores (copy_vector: the emulator's counts see the GPU's vector stores too).
template <int N, typename T>
struct alignas(N * sizeof(T)) StoreVec {
  T v[N];
};
template <int N, typename T>
__device__ __forceinline__ void store_row(T* out, const T (&v)[N]) {
  if (reinterpret_cast<uintptr_t>(out) % sizeof(StoreVec<N, T>) == 0) {
    StoreVec<N, T> chunk;
#pragma unroll
    for (int j = 0; j < N; ++j) chunk.v[j] = v[j];
    copy_vector(reinterpret_cast<StoreVec<N, T>*>(out), &chunk);
  } else {
#pragma unroll
    for (int j = 0; j < N; ++j) out[j] = v[j];
  }
}

// ------------------------------------------------------------------------------------------------
// forward and grad_impulse: one kernel body, two roles.
// ------------------------------------------------------------------------------------------------

// The two directions of the tiled kernel. Forward: the window is impulse channel `c` shifted causally,
// outputs are weight dim 1 (l). grad_impulse: the window is grad_out channel `c` shifted anti-causally,
// outputs are weight dim 2 (i).
enum class PerSampleDir { forward, grad_impulse };

// Staged taps per output channel and tap. RC <= 2: output-major [kTapRows][RC][kTapCols], so that a thread
// loads a whole tap row of one output in kTapCols / vec_width vector loads (one output's taps padded to a
// vector would waste most of each load); RC > 2: tap-major [kTapRows][kTapCols][RCP], one tap's RC weights
// in RCP / vec_width vector loads, output r of tap dq in slot (r + per_sample_tap_skew(dq)) % RCP: the staging
// stores of a warp (16 consecutive dq of two outputs) then fall on 32 distinct banks (unskewed, a stride of RCP
// words put 32 / RCP of them on each bank), and the loads undo the rotation with compile-time indices.
__host__ __device__ constexpr bool per_sample_taps_by_output(int rc) { return rc <= 2; }
template <typename acc_t>
__host__ __device__ constexpr int per_sample_tap_stride(int rc) {
  return per_sample_taps_by_output(rc) ? rc : padded_to_vec<acc_t>(rc);
}
template <int STRIDE>
__host__ __device__ constexpr int per_sample_tap_skew(int dq) {
  return 2 * (dq / (32 / STRIDE));
}
template <typename acc_t>
__host__ __device__ constexpr int per_sample_tiled_smem_words(int rc) {
  return kWindowRows * kWindowPitch + kTapRows * kTapCols * per_sample_tap_stride<acc_t>(rc);
}

// Block: a kTileRows x kTileCols tile of RC output channels o0 .. o0+RC-1 of sample b; it loops over the
// summed channels (Ci for the forward, L for grad_impulse) and the tap chunks.
//
// Thread (ty, tx) owns row ty, columns x_first .. x_first + kColsPerThread - 1. Window column origin:
// forward x0 - q0 - (kTapCols - 1), so that pixel x_first + k meets tap dq at column x_first + k + kTapCols-1 - dq;
// grad_impulse x0 + q0, column x_first + k + dq. Either way the kColsPerThread + kTapCols - 1 columns from
// x_first, loaded once per tap row into registers (kRowSpan / vec_width vector loads), serve all its taps with
// compile-time register indices. Banks: the 16 threads of a row read 16 consecutive 16-byte vectors and a
// 128-bit request is served a quarter warp (8 threads, 128 contiguous bytes) per wavefront: the minimum 4;
// tap loads are one address per warp (broadcasts).
template <typename scalar_t, int RC, PerSampleDir DIR>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSM)
    per_sample_tiled_kernel(const scalar_t* __restrict__ weight, const scalar_t* __restrict__ image,
                            scalar_t* __restrict__ out, PerSampleSizes s, unsigned tiles_x, unsigned tiles_y,
                            unsigned o_chunks) {
  using acc_t = typename AccType<scalar_t>::type;
  constexpr bool kForward = DIR == PerSampleDir::forward;
  constexpr bool kByOutput = per_sample_taps_by_output(RC);
  constexpr int kStride = per_sample_tap_stride<acc_t>(RC);
  constexpr int kRowSpan = kColsPerThread + kTapCols;  // kColsPerThread + kTapCols - 1 used, rounded to a vector
  static_assert(kRowSpan % vec_width<acc_t>() == 0 && kColsPerThread % vec_width<acc_t>() == 0 &&
                    kWindowPitch % vec_width<acc_t>() == 0 && kTapCols % vec_width<acc_t>() == 0,
                "row loads must start 16-byte aligned");
  acc_t* window = dc_dynamic_smem<acc_t>();           // [kWindowRows][kWindowPitch]
  acc_t* taps = window + kWindowRows * kWindowPitch;  // see per_sample_taps_by_output; 16-byte aligned

  // 32-bit block arithmetic: the launch checks that the grid fits, and 64-bit division is a slow call.
  unsigned block = blockIdx.x;
  const unsigned tx_tile = block % tiles_x;  block /= tiles_x;
  const unsigned ty_tile = block % tiles_y;  block /= tiles_y;
  const unsigned o_chunk = block % o_chunks;
  const long long b = block / o_chunks;
  const long long y0 = ty_tile * kTileRows, x0 = tx_tile * kTileCols, o0 = (long long)o_chunk * RC;
  const int tx = threadIdx.x % kThreadCols, ty = threadIdx.x / kThreadCols;
  const int x_first = tx * kColsPerThread;
  // Forward: outputs l, summed channels i (the image is the impulse); grad_impulse: the reverse.
  const long long n_out = kForward ? s.L : s.Ci, n_sum = kForward ? s.Ci : s.L;
  const long long taps_per_kernel = s.Hr * s.Wr;

  acc_t acc[kColsPerThread][RC];
#pragma unroll
  for (int k = 0; k < kColsPerThread; ++k)
#pragma unroll
    for (int r = 0; r < RC; ++r) acc[k][r] = acc_t(0);

  // Taps that reach the tile: forward, tap p reaches row y only if p <= y (the tile's last row is
  // y0 + kTileRows - 1); grad_impulse, tap p reaches grad row y + p only while y0 + p < Hi.
  const long long p_end = kForward ? min64(s.Hq(), y0 + kTileRows) : min64(s.Hr, s.Hi - y0);
  const long long q_end = kForward ? min64(s.Wq(), x0 + kTileCols) : min64(s.Wr, s.Wi - x0);
  // Kernels between consecutive outputs: weight[b, l, i] for output o0 + r is l = o0 + r, i = c (forward),
  // l = c, i = o0 + r (grad_impulse).
  const long long w_out_stride = (kForward ? s.Ci : 1) * taps_per_kernel;
  const int n_here = (int)min64(RC, n_out - o0);  // outputs of this block
#pragma unroll 1
  for (long long c = 0; c < n_sum; ++c) {
    const scalar_t* img = image + (b * n_sum + c) * s.Hi * s.Wi;
    const scalar_t* w_c =
        weight + (kForward ? (b * s.L + o0) * s.Ci + c : (b * s.L + c) * s.Ci + o0) * taps_per_kernel;
#pragma unroll 1
    for (long long p0 = 0; p0 < p_end; p0 += kTapRows) {
      const int np = (int)min64(kTapRows, p_end - p0);
#pragma unroll 1
      for (long long q0 = 0; q0 < q_end; q0 += kTapCols) {
        const int nq = (int)min64(kTapCols, q_end - q0);
        // window[a][col]: image row wy0 + a, column wx0 + col; only the kTileRows + np - 1 rows the chunk's taps
        // read are staged, all kWindowPitch columns (the row loads read the whole pitch; unused columns zero).
        const long long wy0 = kForward ? y0 - p0 - (np - 1) : y0 + p0;
        const long long wx0 = kForward ? x0 - q0 - (kTapCols - 1) : x0 + q0;
        // Columns the chunk's taps meet: forward [kTapCols - nq, kTapCols - 1 + kTileCols),
        // grad_impulse [0, kTileCols - 1 + nq).
        const int col_begin = kForward ? kTapCols - nq : 0, col_end = col_begin + kTileCols + nq - 1;
        for (int e = threadIdx.x; e < (kTileRows + np - 1) * kWindowPitch; e += kThreads) {
          const int a = e / kWindowPitch, col = e % kWindowPitch;
          const long long yy = wy0 + a, xx = wx0 + col;
          const bool inside = col >= col_begin && col < col_end && yy >= 0 && yy < s.Hi && xx >= 0 && xx < s.Wi;
          window[e] = inside ? acc_t(img[yy * s.Wi + xx]) : acc_t(0);
        }
        // Read along dq (coalesced), stored in the layout above; padding outputs and taps are zero.
        for (int e = threadIdx.x; e < kStride * np * kTapCols; e += kThreads) {
          const int dq = e % kTapCols, r = e / kTapCols % kStride, dp = e / (kTapCols * kStride);
          const int slot = (r + per_sample_tap_skew<kStride>(dq)) % kStride;
          const int at = kByOutput ? e : (dp * kTapCols + dq) * kStride + slot;
          taps[at] = (r < n_here && dq < nq) ? acc_t(w_c[r * w_out_stride + (p0 + dp) * s.Wr + q0 + dq]) : acc_t(0);
        }
        __syncthreads();
        // Per tap row: kRowSpan / vec_width window loads; per tap RCP / vec_width weight loads (RC > 2) or per
        // row RC * kTapCols / vec_width (RC <= 2); kColsPerThread * RC FFMA per tap.
#pragma unroll 1
        for (int dp = 0; dp < np; ++dp) {
          acc_t v[kRowSpan];
          load_shared_vec(v, window + (ty + (kForward ? np - 1 - dp : dp)) * kWindowPitch + x_first);
          acc_t w_row[kByOutput ? RC : 1][kTapCols];
          if constexpr (kByOutput) {
#pragma unroll
            for (int r = 0; r < RC; ++r) load_shared_vec(w_row[r], taps + (dp * RC + r) * kTapCols);
          }
#pragma unroll
          for (int dq = 0; dq < kTapCols; ++dq) {
            if (dq >= nq) break;
            acc_t w[RC];
            if constexpr (kByOutput) {
#pragma unroll
              for (int r = 0; r < RC; ++r) w[r] = w_row[r][dq];
            } else {
              acc_t slots[kStride];
              load_shared_vec(slots, taps + (dp * kTapCols + dq) * kStride);
#pragma unroll
              for (int r = 0; r < RC; ++r) w[r] = slots[(r + per_sample_tap_skew<kStride>(dq)) % kStride];
            }
#pragma unroll
            for (int k = 0; k < kColsPerThread; ++k) {
              const acc_t x = v[k + (kForward ? kTapCols - 1 - dq : dq)];
#pragma unroll
              for (int r = 0; r < RC; ++r) acc[k][r] += x * w[r];
            }
          }
        }
        __syncthreads();
      }
    }
  }

  const long long y = y0 + ty;
  if (y >= s.Hi) return;  // no barrier follows
#pragma unroll
  for (int r = 0; r < RC; ++r) {
    if (r >= n_here) break;
    scalar_t* out_row = out + ((b * n_out + o0 + r) * s.Hi + y) * s.Wi;
    scalar_t v[kColsPerThread];
#pragma unroll
    for (int k = 0; k < kColsPerThread; ++k) v[k] = static_cast<scalar_t>(acc[k][r]);
    const long long x = x0 + x_first;
    if (x + kColsPerThread <= s.Wi) {
      store_row(out_row + x, v);
    } else {
#pragma unroll
      for (int k = 0; k < kColsPerThread; ++k)
        if (x + k < s.Wi) out_row[x + k] = v[k];
    }
  }
}

// Output channels of the tiled kernel: L for the forward, Ci for grad_impulse.
template <PerSampleDir DIR>
int64_t per_sample_outputs(const PerSampleSizes& s) {
  return DIR == PerSampleDir::forward ? s.L : s.Ci;
}

template <typename scalar_t, PerSampleDir DIR>
LaunchConfig per_sample_tiled_config(const PerSampleSizes& s) {
  const int64_t n_out = per_sample_outputs<DIR>(s), rc = responses_per_block<scalar_t>(n_out);
  const int64_t blocks = ceil_div(s.Wi, kTileCols) * ceil_div(s.Hi, kTileRows) * ceil_div(n_out, rc) * s.B;
  using acc_t = typename AccType<scalar_t>::type;
  return {blocks, 1, 1, kThreads, per_sample_tiled_smem_words<acc_t>((int)rc) * sizeof(acc_t)};
}

template <typename scalar_t, PerSampleDir DIR, int RC>
void launch_per_sample_tiled_rc(const scalar_t* weight, const scalar_t* image, scalar_t* out,
                                const PerSampleSizes& s, cudaStream_t stream) {
  const LaunchConfig cfg = per_sample_tiled_config<scalar_t, DIR>(s);  // for RC == responses_per_block
  auto* kernel = &per_sample_tiled_kernel<scalar_t, RC, DIR>;  // a pointer: template commas and macros
  const char* what = DIR == PerSampleDir::forward ? "per_sample_conv2d forward" : "per_sample_conv2d grad_impulse";
  DC_LAUNCH(kernel, checked_grid(cfg, what), cfg.threads, cfg.smem_bytes, stream)(
      weight, image, out, s, (unsigned)ceil_div(s.Wi, kTileCols), (unsigned)ceil_div(s.Hi, kTileRows),
      (unsigned)ceil_div(per_sample_outputs<DIR>(s), RC));
}

// Picks the instantiation RC = rc among 1..RC_MAX.
template <typename scalar_t, PerSampleDir DIR, int RC_MAX>
void launch_per_sample_tiled_pick(int rc, const scalar_t* weight, const scalar_t* image, scalar_t* out,
                                  const PerSampleSizes& s, cudaStream_t stream) {
  if constexpr (RC_MAX > 1) {
    if (rc < RC_MAX) return launch_per_sample_tiled_pick<scalar_t, DIR, RC_MAX - 1>(rc, weight, image, out, s, stream);
  }
  launch_per_sample_tiled_rc<scalar_t, DIR, RC_MAX>(weight, image, out, s, stream);
}

// Host entry points; sizes must be non-empty (the callers return early otherwise).
template <typename scalar_t>
void launch_per_sample_forward(const scalar_t* weight, const scalar_t* impulse, scalar_t* out, PerSampleSizes s,
                               cudaStream_t stream) {
  launch_per_sample_tiled_pick<scalar_t, PerSampleDir::forward, max_responses_per_block<scalar_t>()>(
      responses_per_block<scalar_t>(s.L), weight, impulse, out, s, stream);
}

template <typename scalar_t>
void launch_per_sample_grad_impulse(const scalar_t* grad_out, const scalar_t* weight, scalar_t* grad_impulse,
                                    PerSampleSizes s, cudaStream_t stream) {
  launch_per_sample_tiled_pick<scalar_t, PerSampleDir::grad_impulse, max_responses_per_block<scalar_t>()>(
      responses_per_block<scalar_t>(s.Ci), weight, grad_out, grad_impulse, s, stream);
}


// ------------------------------------------------------------------------------------------------
// grad_weight: a reduction over Hi*Wi pixels for each of L*Ci*Hq*Wq taps, deterministic in two passes:
// each block sums one row slab into its own partial, then a second kernel adds the slabs in a fixed
// order (no float atomics). Taps p >= Hi or q >= Wi never meet a pixel: the reduction writes their zeros.
// ------------------------------------------------------------------------------------------------

constexpr int kGwLanes = 8;                        // threads per tap (a quarter warp)
constexpr int kGwMaxTaps = kThreads / kGwLanes;    // taps per block
constexpr int kGwMaxChunkRows = 8;                 // tap rows per block (bounds the staged window)
constexpr int kGwPixRows = 8;                      // pixel tile rows staged per step
constexpr int kGwMaxChannels = 4;                  // LC and IC per block (float: LC up to 2 * kGwMaxChannels)
constexpr int kGwTargetBlocks = 2048;              // row slabs are added until the grid has about this many blocks

// A quad: the vec_width<acc_t> adjacent pixels (one 16-byte vector) a lane reads per channel and pixel row;
// the pixel tile is kGwLanes quads wide.
template <typename acc_t>
__host__ __device__ constexpr int grad_weight_pix_cols() {
  return kGwLanes * vec_width<acc_t>();
}
// Most channels per block: accumulators LC x IC (double: two registers each).
template <typename scalar_t>
constexpr int grad_weight_max_lc() {
  return sizeof(typename AccType<scalar_t>::type) == 8 ? kGwMaxChannels : 2 * kGwMaxChannels;
}
template <typename scalar_t>
constexpr int grad_weight_max_ic() {
  return sizeof(typename AccType<scalar_t>::type) == 8 ? kGwMaxChannels / 2 : kGwMaxChannels;
}

struct GradWeightPlan {
  int lc, ic;                      // channels per block (the kernel's template parameters)
  int chunk_rows, chunk_cols;      // tap chunk: at most kGwMaxTaps taps
  int window_rows, window_pitch;   // staged impulse window per channel and shifted copy
  int64_t l_chunks, i_chunks, tap_chunks_p, tap_chunks_q, slabs, slab_rows;

  int64_t partial_count(const PerSampleSizes& s) const { return s.B * slabs * s.L * s.Ci * s.Hq() * s.Wq(); }
};

// Channels per block: n split into the fewest chunks of at most max_per_block, rounded up to a power of two
// (the instantiated sizes; 3 channels run as 4 with one zero channel).
inline int grad_weight_channels(int64_t n, int max_per_block) {
  const int per = (int)ceil_div(n, ceil_div(n, max_per_block));
  int p2 = 1;
  while (p2 < per) p2 *= 2;
  return p2;
}

template <typename scalar_t>
GradWeightPlan grad_weight_plan(const PerSampleSizes& s) {
  using acc_t = typename AccType<scalar_t>::type;
  GradWeightPlan plan;
  plan.lc = grad_weight_channels(s.L, grad_weight_max_lc<scalar_t>());
  plan.ic = grad_weight_channels(s.Ci, grad_weight_max_ic<scalar_t>());
  plan.chunk_cols = (int)min64(kGwMaxTaps, s.Wq());
  plan.chunk_rows = (int)min64(min64(kGwMaxChunkRows, kGwMaxTaps / plan.chunk_cols), s.Hq());
  plan.window_rows = kGwPixRows + plan.chunk_rows - 1;
  plan.window_pitch = (int)round_up(grad_weight_pix_cols<acc_t>() + plan.chunk_cols - 1, vec_width<acc_t>());
  plan.l_chunks = ceil_div(s.L, plan.lc);
  plan.i_chunks = ceil_div(s.Ci, plan.ic);
  plan.tap_chunks_p = ceil_div(s.Hq(), plan.chunk_rows);
  plan.tap_chunks_q = ceil_div(s.Wq(), plan.chunk_cols);
  // Row slabs only while the other dimensions leave the GPU short of blocks; at most kGrMaxSlabs, each a
  // multiple of the staged pixel rows.
  const int64_t other_blocks = s.B * plan.l_chunks * plan.i_chunks * plan.tap_chunks_p * plan.tap_chunks_q;
  const int64_t want = min64(kGrMaxSlabs, max64(1, ceil_div(kGwTargetBlocks, other_blocks)));
  plan.slab_rows = round_up(max64(1, ceil_div(s.Hi, want)), kGwPixRows);
  plan.slabs = ceil_div(s.Hi, plan.slab_rows);
  return plan;
}

// Block: (b, slab, l chunk, i chunk, tap chunk). Thread t owns tap t / kGwLanes of the chunk for LC x IC
// (l, i) pairs and, as lane t % kGwLanes, one quad column of each staged pixel tile; the 8 lanes of a tap are
// summed by warp shuffles at the end.
//
// Pixel xx meets tap (dp, dq) at window column xx + o, o = nq - 1 - dq: any alignment. The window is staged
// in Q = vec_width shifted copies (copy k, column c = window column c + k), so that a lane reads its quad
// at column lane * Q + o from copy o % Q as one aligned vector. Per pixel row: LC gradient and IC window
// vector loads feed LC * IC * Q FFMA (float, LC = 8, IC = 4: 12 LDS.128, 128 FFMA). Banks: the 8 threads of
// a quarter warp (served per wavefront for 128-bit loads) are the 8 lanes of one tap and read 8 consecutive
// 16-byte vectors: the minimum 4 wavefronts per request, for any tap shape.
template <typename scalar_t, int LC, int IC>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSM)
    per_sample_grad_weight_partial_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ impulse,
                                          typename AccType<scalar_t>::type* __restrict__ partial, PerSampleSizes s,
                                          GradWeightPlan plan) {
  using acc_t = typename AccType<scalar_t>::type;
  constexpr int Q = vec_width<acc_t>();
  constexpr int kPixCols = grad_weight_pix_cols<acc_t>(), kPix = kGwPixRows * kPixCols;
  const int pitch = plan.window_pitch, copy_size = plan.window_rows * pitch;
  acc_t* g_tile = dc_dynamic_smem<acc_t>();  // [LC][kGwPixRows][kPixCols]
  acc_t* window = g_tile + LC * kPix;        // [IC][Q copies][window_rows][pitch], 16-byte aligned

  unsigned block = blockIdx.x;
  const unsigned tq_chunk = block % (unsigned)plan.tap_chunks_q; block /= (unsigned)plan.tap_chunks_q;
  const unsigned tp_chunk = block % (unsigned)plan.tap_chunks_p; block /= (unsigned)plan.tap_chunks_p;
  const unsigned i_chunk = block % (unsigned)plan.i_chunks;      block /= (unsigned)plan.i_chunks;
  const unsigned l_chunk = block % (unsigned)plan.l_chunks;      block /= (unsigned)plan.l_chunks;
  const long long slab = block % (unsigned)plan.slabs;
  const long long b = block / (unsigned)plan.slabs;
  const long long Hq = s.Hq(), Wq = s.Wq();
  const long long p0 = (long long)tp_chunk * plan.chunk_rows, q0 = (long long)tq_chunk * plan.chunk_cols;
  const long long l0 = (long long)l_chunk * LC, i0 = (long long)i_chunk * IC;
  const int np = (int)min64(plan.chunk_rows, Hq - p0), nq = (int)min64(plan.chunk_cols, Wq - q0);
  const int tap = threadIdx.x / kGwLanes, lane = threadIdx.x % kGwLanes;
  const bool active = tap < np * nq;  // the other threads stage, and join the shuffles with zeros
  const int dp = active ? tap / nq : 0, dq = active ? tap % nq : 0;
  const int o = nq - 1 - dq;
  // this lane's quad of pixel row 0, window row dp' = np - 1 - dp of copy o % Q
  const acc_t* lane_window = window + (o % Q) * copy_size + (np - 1 - dp) * pitch + lane * Q + o - o % Q;
  const acc_t* lane_grad = g_tile + lane * Q;
  const int nl = (int)min64(LC, s.L - l0), ni = (int)min64(IC, s.Ci - i0);
  const long long slab_begin = slab * plan.slab_rows, slab_end = min64(s.Hi, slab_begin + plan.slab_rows);
  const scalar_t* impulse_b = impulse + (b * s.Ci + i0) * s.Hi * s.Wi;  // this block's first impulse channel

  acc_t acc[LC][IC];
#pragma unroll
  for (int l = 0; l < LC; ++l)
#pragma unroll
    for (int i = 0; i < IC; ++i) acc[l][i] = acc_t(0);

  // Causal window: pixel row y meets tap p only if y >= p, so rows below p0 contribute nothing (and
  // columns below q0).
  for (long long y0 = max64(slab_begin, p0 / kGwPixRows * kGwPixRows); y0 < slab_end; y0 += kGwPixRows) {
    for (long long x0 = q0 / kPixCols * kPixCols; x0 < s.Wi; x0 += kPixCols) {
      for (int e = threadIdx.x; e < LC * kPix; e += kThreads) {
        const int l = e / kPix, yy = e / kPixCols % kGwPixRows, xx = e % kPixCols;
        const long long y = y0 + yy, x = x0 + xx;
        g_tile[e] = (l < nl && y < slab_end && x < s.Wi) ? acc_t(grad[((b * s.L + l0 + l) * s.Hi + y) * s.Wi + x])
                                                         : acc_t(0);
      }
      // copy k, column c = impulse[i0 + i][wy0 + a][wx0 + c + k], zero outside the image and past the
      // kPixCols + nq - 1 columns the taps meet. One store per element (an impulse value is read by each copy
      // that holds it, from cache after the first): every lane makes the same accesses.
      // Element e = line * pitch + col, line = (i * Q + k) * rows + a. The indices advance with e += kThreads by
      // additions and carries, not by divisions: three runtime divisions per staged element cost more than the
      // element's load and store (the kernel measured ALU-bound on an H200: ALU pipe 55% busy).
      const long long wy0 = y0 - p0 - (np - 1), wx0 = x0 - q0 - (nq - 1);
      const int rows = kGwPixRows + np - 1, lines = IC * Q * rows, cols_used = kPixCols + nq - 1;
      const int line_step = kThreads / pitch, col_step = kThreads % pitch;
      int col = threadIdx.x % pitch, line = threadIdx.x / pitch;
      int i = line / (Q * rows), k = line / rows % Q, a = line % rows;
      while (line < lines) {
        const int c = col + k;
        const long long yy = wy0 + a, xx = wx0 + c;
        window[(i * Q + k) * copy_size + a * pitch + col] =
            (i < ni && c < cols_used && yy >= 0 && yy < s.Hi && xx >= 0 && xx < s.Wi)
                ? acc_t(impulse_b[((long long)i * s.Hi + yy) * s.Wi + xx])
                : acc_t(0);
        int advance = line_step;
        col += col_step;
        if (col >= pitch) {
          col -= pitch;
          ++advance;
        }
        line += advance;
        for (a += advance; a >= rows; a -= rows) {
          if (++k == Q) {
            k = 0;
            ++i;
          }
        }
      }
      __syncthreads();
      if (active) {
#pragma unroll 1
        for (int yy = 0; yy < kGwPixRows; ++yy) {
          acc_t gv[LC][Q], wv[IC][Q];
#pragma unroll
          for (int l = 0; l < LC; ++l) load_shared_vec(gv[l], lane_grad + (l * kGwPixRows + yy) * kPixCols);
#pragma unroll
          for (int i = 0; i < IC; ++i) load_shared_vec(wv[i], lane_window + i * Q * copy_size + yy * pitch);
#pragma unroll
          for (int l = 0; l < LC; ++l)
#pragma unroll
            for (int i = 0; i < IC; ++i)
#pragma unroll
              for (int j = 0; j < Q; ++j) acc[l][i] += gv[l][j] * wv[i][j];
        }
      }
      __syncthreads();
    }
  }

  // Sum a tap's kGwLanes lanes (aligned groups of 8 threads of one warp) in a fixed butterfly; every thread
  // takes part. Lane k writes the pairs l * IC + i = k mod kGwLanes.
#pragma unroll
  for (int l = 0; l < LC; ++l)
#pragma unroll
    for (int i = 0; i < IC; ++i) {
      acc_t sum = acc[l][i];
#pragma unroll
      for (int m = kGwLanes / 2; m > 0; m /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, m);
      if (active && (l * IC + i) % kGwLanes == lane && l < nl && i < ni)
        // partial[b][slab][l][i][p][q] over the Hq x Wq taps that meet pixels
        partial[((((b * plan.slabs + slab) * s.L + l0 + l) * s.Ci + i0 + i) * Hq + p0 + dp) * Wq + q0 + dq] = sum;
    }
}

// grad_weight[b, l, i, p, q] = sum over slabs of partial[b][slab][l][i][p][q]; 0 for p >= Hq or q >= Wq.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    per_sample_grad_weight_reduce_kernel(const typename AccType<scalar_t>::type* __restrict__ partial,
                                         scalar_t* __restrict__ grad_weight, PerSampleSizes s, long long slabs) {
  using acc_t = typename AccType<scalar_t>::type;
  const long long Hq = s.Hq(), Wq = s.Wq();
  const long long kernels = s.L * s.Ci, total = s.B * kernels * s.Hr * s.Wr, per_sample = kernels * Hq * Wq;
  for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
       e += (long long)gridDim.x * blockDim.x) {
    const long long q = e % s.Wr, p = (e / s.Wr) % s.Hr, kernel = e / (s.Hr * s.Wr);
    acc_t sum = acc_t(0);
    if (p < Hq && q < Wq) {
      const long long b = kernel / kernels, k = ((kernel % kernels) * Hq + p) * Wq + q;
      for (long long slab = 0; slab < slabs; ++slab) sum += partial[(b * slabs + slab) * per_sample + k];
    }
    grad_weight[e] = static_cast<scalar_t>(sum);
  }
}

template <typename scalar_t>
LaunchConfig per_sample_grad_weight_partial_config(const PerSampleSizes& s, const GradWeightPlan& plan) {
  using acc_t = typename AccType<scalar_t>::type;
  const int64_t blocks =
      s.B * plan.slabs * plan.l_chunks * plan.i_chunks * plan.tap_chunks_p * plan.tap_chunks_q;
  const int64_t g_tile = (int64_t)plan.lc * kGwPixRows * grad_weight_pix_cols<acc_t>();
  const int64_t window = (int64_t)plan.ic * vec_width<acc_t>() * plan.window_rows * plan.window_pitch;
  return {blocks, 1, 1, kThreads, (size_t)(g_tile + window) * sizeof(acc_t)};
}

inline LaunchConfig per_sample_grad_weight_reduce_config(const PerSampleSizes& s) {
  return {min64(ceil_div(s.B * s.L * s.Ci * s.Hr * s.Wr, kThreads), 65536), 1, 1, kThreads, 0};  // grid-stride
}

// Bytes of scratch memory launch_per_sample_grad_weight needs (the per-slab partial sums).
template <typename scalar_t>
size_t per_sample_grad_weight_workspace_bytes(PerSampleSizes s) {
  return (size_t)grad_weight_plan<scalar_t>(s).partial_count(s) * sizeof(typename AccType<scalar_t>::type);
}

// Launches the partial kernel instantiated for (LC, IC) = (plan.lc, plan.ic): powers of two up to the maxima.
template <typename scalar_t, int LC, int IC_MAX>
void launch_per_sample_grad_weight_pick_ic(const scalar_t* grad_out, const scalar_t* impulse,
                                           typename AccType<scalar_t>::type* partial, const PerSampleSizes& s,
                                           const GradWeightPlan& plan, cudaStream_t stream) {
  if constexpr (IC_MAX > 1) {
    if (plan.ic < IC_MAX)
      return launch_per_sample_grad_weight_pick_ic<scalar_t, LC, IC_MAX / 2>(grad_out, impulse, partial, s, plan,
                                                                             stream);
  }
  const LaunchConfig cfg = per_sample_grad_weight_partial_config<scalar_t>(s, plan);
  auto* kernel = &per_sample_grad_weight_partial_kernel<scalar_t, LC, IC_MAX>;
  DC_LAUNCH(kernel, checked_grid(cfg, "per_sample_conv2d grad_weight"), cfg.threads, cfg.smem_bytes, stream)(
      grad_out, impulse, partial, s, plan);
}

template <typename scalar_t, int LC_MAX>
void launch_per_sample_grad_weight_pick_lc(const scalar_t* grad_out, const scalar_t* impulse,
                                           typename AccType<scalar_t>::type* partial, const PerSampleSizes& s,
                                           const GradWeightPlan& plan, cudaStream_t stream) {
  if constexpr (LC_MAX > 1) {
    if (plan.lc < LC_MAX)
      return launch_per_sample_grad_weight_pick_lc<scalar_t, LC_MAX / 2>(grad_out, impulse, partial, s, plan, stream);
  }
  launch_per_sample_grad_weight_pick_ic<scalar_t, LC_MAX, grad_weight_max_ic<scalar_t>()>(grad_out, impulse, partial,
                                                                                          s, plan, stream);
}

// Host entry point; sizes must be non-empty (the caller returns early otherwise). `workspace` holds
// per_sample_grad_weight_workspace_bytes<scalar_t>(s) bytes.
template <typename scalar_t>
void launch_per_sample_grad_weight(const scalar_t* grad_out, const scalar_t* impulse, scalar_t* grad_weight,
                                   void* workspace, PerSampleSizes s, cudaStream_t stream) {
  using acc_t = typename AccType<scalar_t>::type;
  const GradWeightPlan plan = grad_weight_plan<scalar_t>(s);
  acc_t* partial = static_cast<acc_t*>(workspace);
  launch_per_sample_grad_weight_pick_lc<scalar_t, grad_weight_max_lc<scalar_t>()>(grad_out, impulse, partial, s, plan,
                                                                                  stream);
  const LaunchConfig reduce_cfg = per_sample_grad_weight_reduce_config(s);
  auto* reduce_kernel = &per_sample_grad_weight_reduce_kernel<scalar_t>;
  DC_LAUNCH(reduce_kernel, checked_grid(reduce_cfg, "per_sample_conv2d grad_weight"), reduce_cfg.threads,
            reduce_cfg.smem_bytes, stream)(partial, grad_weight, s, plan.slabs);
}

}  // namespace dc
