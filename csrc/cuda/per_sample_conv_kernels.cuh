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
// The tiling of the dense kernels (dense_conv_kernels.cuh, same tile and chunk constants): a block stages
// one image window per tap chunk in shared memory and every thread accumulates kColsPerThread pixels
// for a chunk of outputs in registers, so each staged value serves every output of the chunk and every
// tap. The forward sums over Ci inside the block (the window is the impulse channel i, the outputs are
// RC channels l); grad_impulse is the same with the roles of l and i swapped (window: grad_out channel
// l, outputs: RC impulse channels). Chunks outside the causal window are skipped by the loop bounds.
// grad_weight: the dense grad_response scheme (per-slab partial sums, fixed-order reduction, no
// atomics), register-blocked over LC output channels x IC impulse channels.
#pragma once

#include "dense_conv_kernels.cuh"

namespace dc {

// ------------------------------------------------------------------------------------------------
// forward and grad_impulse: one kernel body, two roles.
// ------------------------------------------------------------------------------------------------

// The two directions of the tiled kernel. Forward: the window is impulse channel `c` shifted causally
// (window[a][c] = impulse[y0 - p0 - (np-1) + a][x0 - q0 - (nq-1) + c]), outputs are weight dim 1.
// grad_impulse: the window is grad_out channel `c` shifted anti-causally (g[y0 + p0 + a][x0 + q0 + c]),
// outputs are weight dim 2.
enum class PerSampleDir { forward, grad_impulse };

// The staged taps start 16-byte aligned after the window, so that a tap's weights load as vectors.
constexpr int kTiledTapsOffset = (int)round_up(kWindowRows * kWindowCols, 4);

// Block: a kTileRows x kTileCols tile of RC output channels o0 .. o0+RC-1 of sample b; it loops over
// the summed channels (Ci for the forward, L for grad_impulse) and the tap chunks.
template <typename scalar_t, int RC, PerSampleDir DIR>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSM)
    per_sample_tiled_kernel(const scalar_t* __restrict__ weight, const scalar_t* __restrict__ image,
                            scalar_t* __restrict__ out, PerSampleSizes s, unsigned tiles_x, unsigned tiles_y,
                            unsigned o_chunks) {
  using acc_t = typename AccType<scalar_t>::type;
  constexpr bool kForward = DIR == PerSampleDir::forward;
  acc_t* window = dc_dynamic_smem<acc_t>();   // [kWindowRows][kWindowCols]
  acc_t* taps = window + kTiledTapsOffset;    // [kTapRows][kTapCols][RC]: one tap's RC weights in vector loads

  // 32-bit block arithmetic: the launch checks that the grid fits, and 64-bit division is a slow call.
  unsigned block = blockIdx.x;
  const unsigned tx_tile = block % tiles_x;  block /= tiles_x;
  const unsigned ty_tile = block % tiles_y;  block /= tiles_y;
  const unsigned o_chunk = block % o_chunks;
  const long long b = block / o_chunks;
  const long long y0 = ty_tile * kTileRows, x0 = tx_tile * kTileCols, o0 = (long long)o_chunk * RC;
  const int tx = threadIdx.x % kThreadCols, ty = threadIdx.x / kThreadCols;
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
    const scalar_t* w_c = weight + (kForward ? (b * s.L + o0) * s.Ci + c : (b * s.L + c) * s.Ci + o0) * taps_per_kernel;
#pragma unroll 1
    for (long long p0 = 0; p0 < p_end; p0 += kTapRows) {
      const int np = (int)min64(kTapRows, p_end - p0);
#pragma unroll 1
      for (long long q0 = 0; q0 < q_end; q0 += kTapCols) {
        const int nq = (int)min64(kTapCols, q_end - q0);
        const scalar_t* w_chunk = w_c + p0 * s.Wr + q0;
        const long long wy0 = kForward ? y0 - p0 - (np - 1) : y0 + p0;
        const long long wx0 = kForward ? x0 - q0 - (nq - 1) : x0 + q0;
        for (int e = threadIdx.x; e < kWindowRows * kWindowCols; e += kThreads) {
          const long long yy = wy0 + e / kWindowCols, xx = wx0 + e % kWindowCols;
          const bool inside = (kForward ? yy >= 0 && xx >= 0 : true) && yy < s.Hi && xx < s.Wi;  // grad: never < 0
          window[e] = inside ? acc_t(img[yy * s.Wi + xx]) : acc_t(0);
        }
        for (int e = threadIdx.x; e < RC * kTapRows * kTapCols; e += kThreads) {
          const int r = e / (kTapRows * kTapCols), dp = (e / kTapCols) % kTapRows, dq = e % kTapCols;
          // read along dq (coalesced), stored tap-major
          taps[(dp * kTapCols + dq) * RC + r] =
              (r < n_here && dp < np && dq < nq) ? acc_t(w_chunk[r * w_out_stride + dp * s.Wr + dq]) : acc_t(0);
        }
        __syncthreads();
#pragma unroll 1
        for (int dp = 0; dp < np; ++dp) {
          // Forward: pixel (ty, tx + k*kThreadCols) meets tap (dp, dq) at window[ty + np-1 - dp][tx + nq-1 - dq + ...];
          // grad_impulse: at window[ty + dp][tx + dq + ...].
          const acc_t* window_row =
              kForward ? window + (ty + np - 1 - dp) * kWindowCols + tx + nq - 1 : window + (ty + dp) * kWindowCols + tx;
#pragma unroll 2
          for (int dq = 0; dq < nq; ++dq) {
            acc_t w[RC];
#pragma unroll
            for (int r = 0; r < RC; ++r) w[r] = taps[(dp * kTapCols + dq) * RC + r];
#pragma unroll
            for (int k = 0; k < kColsPerThread; ++k) {
              const acc_t v = window_row[k * kThreadCols + (kForward ? -dq : dq)];
#pragma unroll
              for (int r = 0; r < RC; ++r) acc[k][r] += v * w[r];
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
#pragma unroll
    for (int k = 0; k < kColsPerThread; ++k) {
      const long long x = x0 + tx + k * kThreadCols;
      if (x < s.Wi) out_row[x] = static_cast<scalar_t>(acc[k][r]);
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
  const size_t smem = (kTiledTapsOffset + rc * kTapRows * kTapCols) * sizeof(typename AccType<scalar_t>::type);
  return {blocks, 1, 1, kThreads, smem};
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

constexpr int kGwMaxChannels = 4;  // grad_weight: output channels (LC) and impulse channels (IC) per block
constexpr int kGwTargetBlocks = 2048;  // row slabs are added until the grid has about this many blocks

struct GradWeightPlan {
  int lc, ic;  // channels per block (the kernel's template parameters)
  int64_t l_chunks, i_chunks, tap_chunks_p, tap_chunks_q, slabs, slab_rows;
  int tap_rows, tap_cols;  // tap chunk extent (<= kGrTapRows x kGrTapCols)

  int64_t partial_count(const PerSampleSizes& s) const { return s.B * slabs * s.L * s.Ci * s.Hq() * s.Wq(); }
};

// Channels per block: n split into the fewest chunks of at most kGwMaxChannels, rounded up to 1, 2 or 4
// (the instantiated sizes; 3 channels run as 4 with one zero channel).
inline int grad_weight_channels(int64_t n) {
  const int per = (int)ceil_div(n, ceil_div(n, kGwMaxChannels));
  return per <= 2 ? per : kGwMaxChannels;
}

inline GradWeightPlan grad_weight_plan(const PerSampleSizes& s) {
  GradWeightPlan plan;
  plan.lc = grad_weight_channels(s.L);
  plan.ic = grad_weight_channels(s.Ci);
  plan.tap_rows = (int)min64(kGrTapRows, s.Hq());
  plan.tap_cols = (int)min64(kGrTapCols, s.Wq());
  plan.l_chunks = ceil_div(s.L, plan.lc);
  plan.i_chunks = ceil_div(s.Ci, plan.ic);
  plan.tap_chunks_p = ceil_div(s.Hq(), plan.tap_rows);
  plan.tap_chunks_q = ceil_div(s.Wq(), plan.tap_cols);
  // Row slabs only while the other dimensions leave the GPU short of blocks; at most kGrMaxSlabs, each a
  // multiple of the staged pixel rows.
  const int64_t other_blocks = s.B * plan.l_chunks * plan.i_chunks * plan.tap_chunks_p * plan.tap_chunks_q;
  const int64_t want = min64(kGrMaxSlabs, max64(1, ceil_div(kGwTargetBlocks, other_blocks)));
  plan.slab_rows = round_up(max64(1, ceil_div(s.Hi, want)), kGrPixRows);
  plan.slabs = ceil_div(s.Hi, plan.slab_rows);
  return plan;
}

// Block: (b, slab, l chunk, i chunk, tap chunk). Thread t owns tap t % n_taps of the chunk and every
// lanes-th pixel of each staged tile (lane = t / n_taps), for LC x IC (l, i) pairs; the lanes are then
// summed in shared memory in a fixed order.
template <typename scalar_t, int LC, int IC>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSM)
    per_sample_grad_weight_partial_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ impulse,
                                          typename AccType<scalar_t>::type* __restrict__ partial, PerSampleSizes s,
                                          GradWeightPlan plan) {
  using acc_t = typename AccType<scalar_t>::type;
  constexpr int kGTile = kGrPixRows * kGrPixCols, kWindow = kGrWindowRows * kGrWindowCols;
  acc_t* g_tile = dc_dynamic_smem<acc_t>();  // [LC][kGrPixRows][kGrPixCols]
  acc_t* window = g_tile + LC * kGTile;      // [IC][kGrWindowRows][kGrWindowCols]
  acc_t* lane_sums = g_tile;                 // reused at the end: [lanes][n_taps][LC * IC]

  unsigned block = blockIdx.x;
  const unsigned tq_chunk = block % (unsigned)plan.tap_chunks_q; block /= (unsigned)plan.tap_chunks_q;
  const unsigned tp_chunk = block % (unsigned)plan.tap_chunks_p; block /= (unsigned)plan.tap_chunks_p;
  const unsigned i_chunk = block % (unsigned)plan.i_chunks;      block /= (unsigned)plan.i_chunks;
  const unsigned l_chunk = block % (unsigned)plan.l_chunks;      block /= (unsigned)plan.l_chunks;
  const long long slab = block % (unsigned)plan.slabs;
  const long long b = block / (unsigned)plan.slabs;
  const long long Hq = s.Hq(), Wq = s.Wq();
  const long long p0 = (long long)tp_chunk * plan.tap_rows, q0 = (long long)tq_chunk * plan.tap_cols;
  const long long l0 = (long long)l_chunk * LC, i0 = (long long)i_chunk * IC;
  const int np = (int)min64(plan.tap_rows, Hq - p0), nq = (int)min64(plan.tap_cols, Wq - q0);
  const int n_taps = np * nq, lanes = kThreads / n_taps;
  const int tap = threadIdx.x % n_taps, lane = threadIdx.x / n_taps;
  const int dp = tap / nq, dq = tap % nq;
  const bool active = lane < lanes;  // threads beyond lanes * n_taps only help staging
  const int nl = (int)min64(LC, s.L - l0), ni = (int)min64(IC, s.Ci - i0);
  const long long slab_begin = slab * plan.slab_rows, slab_end = min64(s.Hi, slab_begin + plan.slab_rows);

  acc_t acc[LC][IC];
#pragma unroll
  for (int l = 0; l < LC; ++l)
#pragma unroll
    for (int i = 0; i < IC; ++i) acc[l][i] = acc_t(0);

  // Causal window: pixel row y meets tap p only if y >= p, so rows below p0 contribute nothing (and
  // columns below q0).
  for (long long y0 = max64(slab_begin, p0 / kGrPixRows * kGrPixRows); y0 < slab_end; y0 += kGrPixRows) {
    for (long long x0 = q0 / kGrPixCols * kGrPixCols; x0 < s.Wi; x0 += kGrPixCols) {
      for (int e = threadIdx.x; e < LC * kGTile; e += kThreads) {
        const int l = e / kGTile, yy = (e / kGrPixCols) % kGrPixRows, xx = e % kGrPixCols;
        const long long y = y0 + yy, x = x0 + xx;
        g_tile[e] = (l < nl && y < slab_end && x < s.Wi) ? acc_t(grad[((b * s.L + l0 + l) * s.Hi + y) * s.Wi + x])
                                                         : acc_t(0);
      }
      // window[i][a][c] = impulse[i0 + i][y0 - p0 - (np-1) + a][x0 - q0 - (nq-1) + c], zero outside the image.
      const long long wy0 = y0 - p0 - (np - 1), wx0 = x0 - q0 - (nq - 1);
      for (int e = threadIdx.x; e < IC * kWindow; e += kThreads) {
        const int i = e / kWindow, a = (e / kGrWindowCols) % kGrWindowRows, c = e % kGrWindowCols;
        const long long yy = wy0 + a, xx = wx0 + c;
        window[e] = (i < ni && yy >= 0 && yy < s.Hi && xx >= 0 && xx < s.Wi)
                        ? acc_t(impulse[((b * s.Ci + i0 + i) * s.Hi + yy) * s.Wi + xx])
                        : acc_t(0);
      }
      __syncthreads();
      if (active) {
        const acc_t* window_tap = window + (np - 1 - dp) * kGrWindowCols + nq - 1 - dq;
        for (int pix = lane; pix < kGTile; pix += lanes) {
          const int yy = pix / kGrPixCols, xx = pix % kGrPixCols;
          acc_t v[IC];
#pragma unroll
          for (int i = 0; i < IC; ++i) v[i] = window_tap[i * kWindow + yy * kGrWindowCols + xx];
#pragma unroll
          for (int l = 0; l < LC; ++l) {
            const acc_t g = g_tile[l * kGTile + pix];
#pragma unroll
            for (int i = 0; i < IC; ++i) acc[l][i] += g * v[i];
          }
        }
      }
      __syncthreads();
    }
  }

  // Sum the lanes in a fixed order: lane_sums[lane][tap][l * IC + i].
  if (active) {
#pragma unroll
    for (int l = 0; l < LC; ++l)
#pragma unroll
      for (int i = 0; i < IC; ++i) lane_sums[(lane * n_taps + tap) * (LC * IC) + l * IC + i] = acc[l][i];
  }
  __syncthreads();
  if (lane == 0) {
    for (int l = 0; l < nl; ++l)
      for (int i = 0; i < ni; ++i) {
        acc_t sum = acc_t(0);
        for (int k = 0; k < lanes; ++k) sum += lane_sums[(k * n_taps + tap) * (LC * IC) + l * IC + i];
        // partial[b][slab][l][i][p][q] over the Hq x Wq taps that meet pixels
        partial[((((b * plan.slabs + slab) * s.L + l0 + l) * s.Ci + i0 + i) * Hq + p0 + dp) * Wq + q0 + dq] = sum;
      }
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
  const int64_t staged = plan.lc * kGrPixRows * kGrPixCols + plan.ic * kGrWindowRows * kGrWindowCols;
  const int64_t lane_sums = (int64_t)kThreads * plan.lc * plan.ic;  // lanes * n_taps <= kThreads
  return {blocks, 1, 1, kThreads, (size_t)max64(staged, lane_sums) * sizeof(acc_t)};
}

inline LaunchConfig per_sample_grad_weight_reduce_config(const PerSampleSizes& s) {
  return {min64(ceil_div(s.B * s.L * s.Ci * s.Hr * s.Wr, kThreads), 65536), 1, 1, kThreads, 0};  // grid-stride
}

// Bytes of scratch memory launch_per_sample_grad_weight needs (the per-slab partial sums).
template <typename scalar_t>
size_t per_sample_grad_weight_workspace_bytes(PerSampleSizes s) {
  return (size_t)grad_weight_plan(s).partial_count(s) * sizeof(typename AccType<scalar_t>::type);
}

template <typename scalar_t, int LC, int IC>
void launch_per_sample_grad_weight_partial(const scalar_t* grad_out, const scalar_t* impulse,
                                           typename AccType<scalar_t>::type* partial, const PerSampleSizes& s,
                                           const GradWeightPlan& plan, cudaStream_t stream) {
  const LaunchConfig cfg = per_sample_grad_weight_partial_config<scalar_t>(s, plan);
  auto* kernel = &per_sample_grad_weight_partial_kernel<scalar_t, LC, IC>;
  DC_LAUNCH(kernel, checked_grid(cfg, "per_sample_conv2d grad_weight"), cfg.threads, cfg.smem_bytes, stream)(
      grad_out, impulse, partial, s, plan);
}

// Picks the instantiation (LC, IC) = (plan.lc, plan.ic), each 1, 2 or 4.
template <typename scalar_t, int LC>
void launch_per_sample_grad_weight_pick_ic(const scalar_t* grad_out, const scalar_t* impulse,
                                           typename AccType<scalar_t>::type* partial, const PerSampleSizes& s,
                                           const GradWeightPlan& plan, cudaStream_t stream) {
  if (plan.ic == 1) return launch_per_sample_grad_weight_partial<scalar_t, LC, 1>(grad_out, impulse, partial, s, plan, stream);
  if (plan.ic == 2) return launch_per_sample_grad_weight_partial<scalar_t, LC, 2>(grad_out, impulse, partial, s, plan, stream);
  launch_per_sample_grad_weight_partial<scalar_t, LC, kGwMaxChannels>(grad_out, impulse, partial, s, plan, stream);
}

// Host entry point; sizes must be non-empty (the caller returns early otherwise). `workspace` holds
// per_sample_grad_weight_workspace_bytes<scalar_t>(s) bytes.
template <typename scalar_t>
void launch_per_sample_grad_weight(const scalar_t* grad_out, const scalar_t* impulse, scalar_t* grad_weight,
                                   void* workspace, PerSampleSizes s, cudaStream_t stream) {
  using acc_t = typename AccType<scalar_t>::type;
  const GradWeightPlan plan = grad_weight_plan(s);
  acc_t* partial = static_cast<acc_t*>(workspace);
  if (plan.lc == 1) launch_per_sample_grad_weight_pick_ic<scalar_t, 1>(grad_out, impulse, partial, s, plan, stream);
  else if (plan.lc == 2) launch_per_sample_grad_weight_pick_ic<scalar_t, 2>(grad_out, impulse, partial, s, plan, stream);
  else launch_per_sample_grad_weight_pick_ic<scalar_t, kGwMaxChannels>(grad_out, impulse, partial, s, plan, stream);
  const LaunchConfig reduce_cfg = per_sample_grad_weight_reduce_config(s);
  auto* reduce_kernel = &per_sample_grad_weight_reduce_kernel<scalar_t>;
  DC_LAUNCH(reduce_kernel, checked_grid(reduce_cfg, "per_sample_conv2d grad_weight"), reduce_cfg.threads,
            reduce_cfg.smem_bytes, stream)(partial, grad_weight, s, plan.slabs);
}

}  // namespace dc
