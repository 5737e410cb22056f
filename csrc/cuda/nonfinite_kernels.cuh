// Exact results for samples holding NaN or infinity, on the device (csrc/nonfinite.h says why): for the samples
// whose checksum (nonfinite_checksums, computed by the glue with ATen on the same stream) is non-finite, the
// definition is computed and written over the fast kernels' result in place; the other samples are not touched.
// No host synchronisation: each block reads its sample's checksum and returns when it is finite, so a batch
// without NaN/inf costs one launch of B x (at most kExactBlocksPerSample) blocks that exit at once.
//
// No ATen here: compiled by nvcc (dense_conv_forward.cu, dense_conv_backward.cu, fft_conv_cuda.cu,
// per_sample_conv_cuda.cu, fft_mix_cuda.cu) and by g++ under the test-only emulator (tests/emu/). All pointers are
// contiguous.
//
// Three sums serve the six ops (dense_conv2d and per_sample_conv2d: forward, grad_impulse, grad_response /
// grad_weight), each op naming its operands' channels through ChannelMaps (dense_mix_conv2d has its own kernels,
// at the end: its weight multiplies whole dense sums):
//   causal:      out[b,o,y,x] = sum_{j<J} sum_{p<=y, q<=x, p<Kh, q<Kw} A[b, first(o,j), y-p, x-q] * K[b, second(o,j), p, q]
//   correlation: out[b,o,y,x] = sum_{j<J} sum_{p<Kh, q<Kw, y+p<H, x+q<W} G[b, first(o,j), y+p, x+q] * K[b, second(o,j), p, q]
//   taps:        out[b,o,p,q] = sum_{j<J} sum_{p<=y<H, q<=x<W} G[b, first(o,j), y, x] * A[b, second(o,j), y-p, x-q]
// (A, G: H x W planes; K and the taps' out: Kh x Kw planes; taps beyond the image sum nothing: 0.) Every product
// lies inside the causal window, so none multiplies padding. One thread per output (a warp per tap of `taps`,
// whose sums run over the image), in a fixed order: deterministic, no atomics. Accumulation in AccType.
#pragma once

#include "compat.cuh"

#if !defined(__CUDACC__)
#include <cmath>
#endif

namespace dc {

constexpr int kExactThreads = 256;
// Blocks per sample: enough for a flagged sample to spread over a few SMs, few enough that the launch is cheap
// when nothing is flagged.
constexpr int kExactBlocksPerSample = 8;

// The channel of an operand for output channel o and term j: (o / div) * outer + (o % div) * inner + j * step.
struct ChannelMap {
  long long div, outer, inner, step;
  DC_HD long long base(long long o) const { return o / div * outer + o % div * inner; }  // the channel for j = 0
};

struct ExactProblem {
  long long B, O, J;  // samples, output channels per sample, terms per output channel
  long long C1, C2;   // channels per sample of the first (A or G) and second (K or A) operand
  long long H, W;     // image planes
  long long Kh, Kw;   // tap planes
  ChannelMap first, second;
};

template <typename acc_t>
__device__ __forceinline__ bool exact_is_finite(acc_t v) {
#if defined(__CUDACC__)
  return isfinite(v);
#else
  return std::isfinite(v);
#endif
}

template <typename scalar_t>
__global__ void __launch_bounds__(kExactThreads)
    exact_causal_kernel(const scalar_t* __restrict__ a, const scalar_t* __restrict__ k, scalar_t* __restrict__ out,
                        const typename AccType<scalar_t>::type* __restrict__ checksum, ExactProblem s) {
  using acc_t = typename AccType<scalar_t>::type;
  const long long b = blockIdx.x;
  if (exact_is_finite(checksum[b])) return;
  const long long plane = s.H * s.W, per_sample = s.O * plane;
  for (long long e = (long long)blockIdx.y * blockDim.x + threadIdx.x; e < per_sample;
       e += (long long)gridDim.y * blockDim.x) {
    const long long o = e / plane, y = e % plane / s.W, x = e % s.W;
    const long long p_end = min64(y + 1, s.Kh), q_end = min64(x + 1, s.Kw);
    const scalar_t* ap = a + (b * s.C1 + s.first.base(o)) * plane;
    const scalar_t* kp = k + (b * s.C2 + s.second.base(o)) * s.Kh * s.Kw;
    acc_t sum = acc_t(0);
    for (long long j = 0; j < s.J; ++j, ap += s.first.step * plane, kp += s.second.step * s.Kh * s.Kw) {
      for (long long p = 0; p < p_end; ++p)
        for (long long q = 0; q < q_end; ++q) sum += acc_t(ap[(y - p) * s.W + x - q]) * acc_t(kp[p * s.Kw + q]);
    }
    out[b * per_sample + e] = static_cast<scalar_t>(sum);
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kExactThreads)
    exact_correlation_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ k,
                             scalar_t* __restrict__ out, const typename AccType<scalar_t>::type* __restrict__ checksum,
                             ExactProblem s) {
  using acc_t = typename AccType<scalar_t>::type;
  const long long b = blockIdx.x;
  if (exact_is_finite(checksum[b])) return;
  const long long plane = s.H * s.W, per_sample = s.O * plane;
  for (long long e = (long long)blockIdx.y * blockDim.x + threadIdx.x; e < per_sample;
       e += (long long)gridDim.y * blockDim.x) {
    const long long o = e / plane, y = e % plane / s.W, x = e % s.W;
    const long long p_end = min64(s.H - y, s.Kh), q_end = min64(s.W - x, s.Kw);
    const scalar_t* gp = g + (b * s.C1 + s.first.base(o)) * plane;
    const scalar_t* kp = k + (b * s.C2 + s.second.base(o)) * s.Kh * s.Kw;
    acc_t sum = acc_t(0);
    for (long long j = 0; j < s.J; ++j, gp += s.first.step * plane, kp += s.second.step * s.Kh * s.Kw) {
      for (long long p = 0; p < p_end; ++p)
        for (long long q = 0; q < q_end; ++q) sum += acc_t(gp[(y + p) * s.W + x + q]) * acc_t(kp[p * s.Kw + q]);
    }
    out[b * per_sample + e] = static_cast<scalar_t>(sum);
  }
}

// A warp per tap: its lanes split the (j, pixel) terms, then add their partial sums in a fixed butterfly.
template <typename scalar_t>
__global__ void __launch_bounds__(kExactThreads)
    exact_taps_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ a, scalar_t* __restrict__ out,
                      const typename AccType<scalar_t>::type* __restrict__ checksum, ExactProblem s) {
  using acc_t = typename AccType<scalar_t>::type;
  const long long b = blockIdx.x;
  if (exact_is_finite(checksum[b])) return;
  const int lane = threadIdx.x % 32;
  const long long warps = blockDim.x / 32, plane = s.H * s.W, taps = s.Kh * s.Kw, per_sample = s.O * taps;
  // e is the same for the whole warp: the shuffles below see all 32 lanes
  for (long long e = (long long)blockIdx.y * warps + threadIdx.x / 32; e < per_sample; e += (long long)gridDim.y * warps) {
    const long long o = e / taps, p = e % taps / s.Kw, q = e % s.Kw;
    // Lane l takes the pixels l, l + 32, ... of the rows x cols window, row-major: (y, x) of A, (y + p, x + q)
    // of G; stepping by 32 pixels is dy rows and dx columns (one division per tap, none per pixel).
    const long long rows = s.H - p, cols = s.W - q;
    acc_t sum = acc_t(0);
    if (rows > 0 && cols > 0) {  // taps beyond the image sum nothing
      int dy = 0, dx = 32, y0 = 0, x0 = lane;
      if (cols < 32) {  // 32-bit divisions (64-bit ones are calls, which spilled)
        const int c = (int)cols;
        dy = 32 / c, dx = 32 % c, y0 = lane / c, x0 = lane % c;
      }
      const scalar_t* gp = g + (b * s.C1 + s.first.base(o)) * plane + p * s.W + q;
      const scalar_t* ap = a + (b * s.C2 + s.second.base(o)) * plane;
      for (long long j = 0; j < s.J; ++j, gp += s.first.step * plane, ap += s.second.step * plane) {
        for (long long y = y0, x = x0; y < rows;) {
          sum += acc_t(gp[y * s.W + x]) * acc_t(ap[y * s.W + x]);
          x += dx;
          y += dy;
          if (x >= cols) {
            x -= cols;
            ++y;
          }
        }
      }
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (lane == 0) out[b * per_sample + e] = static_cast<scalar_t>(sum);
  }
}

// Blocks per sample for `items` threads of work per sample, at most kExactBlocksPerSample.
inline LaunchConfig exact_config(long long B, long long items) {
  return {B, max64(1, min64(ceil_div(items, kExactThreads), kExactBlocksPerSample)), 1, kExactThreads, 0};
}

enum class ExactSum { causal, correlation, taps };

template <typename scalar_t>
void launch_exact_sum(ExactSum kind, const scalar_t* first, const scalar_t* second, scalar_t* out,
                      const typename AccType<scalar_t>::type* checksum, const ExactProblem& s, const char* what,
                      cudaStream_t stream) {
  const long long per_sample = s.O * (kind == ExactSum::taps ? s.Kh * s.Kw : s.H * s.W);
  if (s.B == 0 || per_sample == 0) return;
  // a pointer: template commas cannot pass through a macro
  auto* kernel = kind == ExactSum::taps     ? &exact_taps_kernel<scalar_t>
                 : kind == ExactSum::causal ? &exact_causal_kernel<scalar_t>
                                            : &exact_correlation_kernel<scalar_t>;
  // taps: a warp per output
  const LaunchConfig cfg = exact_config(s.B, kind == ExactSum::taps ? per_sample * 32 : per_sample);
  DC_LAUNCH(kernel, checked_grid(cfg, what), cfg.threads, cfg.smem_bytes, stream)(first, second, out, checksum, s);
}

// ---- dense_conv2d (sparse_conv2d: on [B*C, 1, ...] views) ---------------------------------------------------
// response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi], out / grad_out [B, Ci*Cr, Hi, Wi]; checksum [B].

template <typename scalar_t>
void launch_exact_dense_forward(const scalar_t* response, const scalar_t* impulse, scalar_t* out,
                                const typename AccType<scalar_t>::type* checksum, ConvSizes s, cudaStream_t stream) {
  if (s.Cr == 0) return;
  // out[b, i*Cr + r] = impulse[b, i] * response[b, r]
  const ExactProblem p{s.B, s.Ci * s.Cr, 1, s.Ci, s.Cr, s.Hi, s.Wi, s.Hr, s.Wr, {s.Cr, 1, 0, 0}, {s.Cr, 0, 1, 0}};
  launch_exact_sum<scalar_t>(ExactSum::causal, impulse, response, out, checksum, p, "dense_conv2d forward", stream);
}

template <typename scalar_t>
void launch_exact_dense_grad_impulse(const scalar_t* grad_out, const scalar_t* response, scalar_t* grad_impulse,
                                     const typename AccType<scalar_t>::type* checksum, ConvSizes s,
                                     cudaStream_t stream) {
  // grad_impulse[b, i] = sum_r grad_out[b, i*Cr + r] (x) response[b, r]
  const ExactProblem p{s.B, s.Ci, s.Cr, s.Ci * s.Cr, s.Cr, s.Hi, s.Wi, s.Hr, s.Wr, {1, s.Cr, 0, 1}, {1, 0, 0, 1}};
  launch_exact_sum<scalar_t>(ExactSum::correlation, grad_out, response, grad_impulse, checksum, p,
                             "dense_conv2d grad_impulse", stream);
}

template <typename scalar_t>
void launch_exact_dense_grad_response(const scalar_t* grad_out, const scalar_t* impulse, scalar_t* grad_response,
                                      const typename AccType<scalar_t>::type* checksum, ConvSizes s,
                                      cudaStream_t stream) {
  // grad_response[b, r] = sum_i grad_out[b, i*Cr + r] (x) impulse[b, i]
  const ExactProblem p{s.B, s.Cr, s.Ci, s.Ci * s.Cr, s.Ci, s.Hi, s.Wi, s.Hr, s.Wr, {1, 1, 0, s.Cr}, {1, 0, 0, 1}};
  launch_exact_sum<scalar_t>(ExactSum::taps, grad_out, impulse, grad_response, checksum, p,
                             "dense_conv2d grad_response", stream);
}

// ---- per_sample_conv2d --------------------------------------------------------------------------------------
// weight [B, L, Ci, Hr, Wr], impulse [B, Ci, Hi, Wi], out / grad_out [B, L, Hi, Wi]; checksum [B].

template <typename scalar_t>
void launch_exact_per_sample_forward(const scalar_t* weight, const scalar_t* impulse, scalar_t* out,
                                     const typename AccType<scalar_t>::type* checksum, PerSampleSizes s,
                                     cudaStream_t stream) {
  // out[b, l] = sum_i impulse[b, i] * weight[b, l, i]
  const ExactProblem p{s.B, s.L, s.Ci, s.Ci, s.L * s.Ci, s.Hi, s.Wi, s.Hr, s.Wr, {1, 0, 0, 1}, {1, s.Ci, 0, 1}};
  launch_exact_sum<scalar_t>(ExactSum::causal, impulse, weight, out, checksum, p, "per_sample_conv2d forward",
                             stream);
}

template <typename scalar_t>
void launch_exact_per_sample_grad_impulse(const scalar_t* grad_out, const scalar_t* weight, scalar_t* grad_impulse,
                                          const typename AccType<scalar_t>::type* checksum, PerSampleSizes s,
                                          cudaStream_t stream) {
  // grad_impulse[b, i] = sum_l grad_out[b, l] (x) weight[b, l, i]
  const ExactProblem p{s.B, s.Ci, s.L, s.L, s.L * s.Ci, s.Hi, s.Wi, s.Hr, s.Wr, {1, 0, 0, 1}, {1, 1, 0, s.Ci}};
  launch_exact_sum<scalar_t>(ExactSum::correlation, grad_out, weight, grad_impulse, checksum, p,
                             "per_sample_conv2d grad_impulse", stream);
}

template <typename scalar_t>
void launch_exact_per_sample_grad_weight(const scalar_t* grad_out, const scalar_t* impulse, scalar_t* grad_weight,
                                         const typename AccType<scalar_t>::type* checksum, PerSampleSizes s,
                                         cudaStream_t stream) {
  if (s.Ci == 0) return;
  // grad_weight[b, l, i] = grad_out[b, l] (x) impulse[b, i]
  const ExactProblem p{s.B, s.L * s.Ci, 1, s.L, s.Ci, s.Hi, s.Wi, s.Hr, s.Wr, {s.Ci, 1, 0, 0}, {s.Ci, 0, 1, 0}};
  launch_exact_sum<scalar_t>(ExactSum::taps, grad_out, impulse, grad_weight, checksum, p,
                             "per_sample_conv2d grad_weight", stream);
}

// ---- dense_mix_conv2d ---------------------------------------------------------------------------------------
// weight [L, Ci, Cr], response [B, Cr, Hr, Wr], impulse [B, Ci, Hi, Wi], out / grad_out [B, L, Hi, Wi], the
// per-sample weight gradients [B, L, Ci, Cr] (float64, as the CUDA op keeps them); checksum [B] (the weight's sum
// included: a non-finite weight flags every sample). The definition of exact_nonfinite_mix_* (csrc/nonfinite.cpp),
// term by term: the dense conv's value dense[j, k] at a pixel, or the dense output's gradient
// g_dense[j, k] = sum_l g[l] weight[l, j, k], is summed whole before it meets the weight or the other operand, so
// 0 * inf gives NaN where the definition's does. Each output recomputes the terms it needs (L or Kh x Kw times
// the work of the definition's intermediates, which would need B x Ci x Cr planes): slow, but only flagged
// samples run it. One thread (or one warp, in lane order then a fixed butterfly) per output, in a fixed order.

// Elements e, e + stride, e + 2 stride, ... of a row-major rows x cols plane as (r, c): 32-bit divisions once, then
// carries per step (64-bit divisions are calls, which made kernels spill). e, stride < 2^32: a thread's, warp's or
// lane's index within a sample's few blocks (the caller stops when r reaches the rows).
struct PlaneWalk {
  long long r, c;    // the current element
  unsigned dr, dc;   // the stride
  __device__ __forceinline__ void step(long long cols) {
    c += dc;
    r += dr;
    if (c >= cols) {  // c, dc < cols
      c -= cols;
      ++r;
    }
  }
};

// v / m in 32-bit arithmetic (v < 2^32 <= m: 0).
__device__ __forceinline__ unsigned div32(unsigned v, long long m) { return m > 0xffffffffLL ? 0u : v / (unsigned)m; }

__device__ __forceinline__ PlaneWalk plane_walk(unsigned e, unsigned stride, long long cols) {
  const unsigned r = div32(e, cols), dr = div32(stride, cols);
  return {r, e - r * cols, dr, (unsigned)(stride - dr * cols)};
}

// The warp's 32 partial sums added in a fixed butterfly (every lane gets the total).
template <typename acc_t>
__device__ __forceinline__ acc_t warp_sum(acc_t sum) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  return sum;
}

struct ExactMixSizes {
  long long B, L, Ci, Cr, H, W, Kh, Kw;  // image planes H x W, response planes Kh x Kw
};

inline ExactMixSizes exact_mix_sizes(const ConvSizes& c, long long L) {
  return {c.B, L, c.Ci, c.Cr, c.Hi, c.Wi, c.Hr, c.Wr};
}

// dense[j, k] at (y, x): impulse plane j (H x W) by response plane k (Kh x Kw), over the causal window.
template <typename acc_t, typename scalar_t>
__device__ __forceinline__ acc_t exact_dense_at(const scalar_t* imp, const scalar_t* resp, long long y, long long x,
                                                const ExactMixSizes& s) {
  const long long p_end = min64(y + 1, s.Kh), q_end = min64(x + 1, s.Kw);
  acc_t sum = acc_t(0);
  for (long long p = 0; p < p_end; ++p)
    for (long long q = 0; q < q_end; ++q) sum += acc_t(imp[(y - p) * s.W + x - q]) * acc_t(resp[p * s.Kw + q]);
  return sum;
}

// g_dense[j, k] at pixel yx (y * W + x) of the sample's grad_out g: sum_l g[l, yx] weight[l, j, k].
template <typename acc_t, typename scalar_t>
__device__ __forceinline__ acc_t exact_g_dense_at(const scalar_t* g, const scalar_t* weight, long long j, long long k,
                                                  long long yx, const ExactMixSizes& s) {
  acc_t sum = acc_t(0);
  for (long long l = 0; l < s.L; ++l) sum += acc_t(g[l * s.H * s.W + yx]) * acc_t(weight[(l * s.Ci + j) * s.Cr + k]);
  return sum;
}

// out[b, l, y, x] = sum_{j, k} weight[l, j, k] * dense[j, k](y, x); a thread per output.
template <typename scalar_t>
__global__ void __launch_bounds__(kExactThreads)
    exact_mix_forward_kernel(const scalar_t* __restrict__ response, const scalar_t* __restrict__ impulse,
                             const scalar_t* __restrict__ weight, scalar_t* __restrict__ out,
                             const typename AccType<scalar_t>::type* __restrict__ checksum, ExactMixSizes s) {
  using acc_t = typename AccType<scalar_t>::type;
  const long long b = blockIdx.x;
  if (exact_is_finite(checksum[b])) return;
  const long long plane = s.H * s.W;
  // a thread per pixel, for each output channel in turn
  for (PlaneWalk at = plane_walk(blockIdx.y * blockDim.x + threadIdx.x, gridDim.y * blockDim.x, s.W); at.r < s.H;
       at.step(s.W)) {
    const long long y = at.r, x = at.c;
    for (long long l = 0; l < s.L; ++l) {
      acc_t sum = acc_t(0);
      for (long long j = 0; j < s.Ci; ++j)
        for (long long k = 0; k < s.Cr; ++k)
          sum += acc_t(weight[(l * s.Ci + j) * s.Cr + k]) *
                 exact_dense_at<acc_t>(impulse + (b * s.Ci + j) * plane, response + (b * s.Cr + k) * s.Kh * s.Kw, y, x,
                                       s);
      out[((b * s.L + l) * s.H + y) * s.W + x] = static_cast<scalar_t>(sum);
    }
  }
}

// grad_impulse[b, j, y, x] = sum_k sum_{p, q} g_dense[j, k](y + p, x + q) * response[b, k, p, q]
// (y + p < H, x + q < W); a thread per output.
template <typename scalar_t>
__global__ void __launch_bounds__(kExactThreads)
    exact_mix_grad_impulse_kernel(const scalar_t* __restrict__ grad_out, const scalar_t* __restrict__ response,
                                  const scalar_t* __restrict__ weight, scalar_t* __restrict__ grad_impulse,
                                  const typename AccType<scalar_t>::type* __restrict__ checksum, ExactMixSizes s) {
  using acc_t = typename AccType<scalar_t>::type;
  const long long b = blockIdx.x;
  if (exact_is_finite(checksum[b])) return;
  const long long plane = s.H * s.W;
  const scalar_t* g = grad_out + b * s.L * plane;
  // a thread per pixel, for each impulse channel in turn
  for (PlaneWalk at = plane_walk(blockIdx.y * blockDim.x + threadIdx.x, gridDim.y * blockDim.x, s.W); at.r < s.H;
       at.step(s.W)) {
    const long long y = at.r, x = at.c;
    const long long p_end = min64(s.H - y, s.Kh), q_end = min64(s.W - x, s.Kw);
    for (long long j = 0; j < s.Ci; ++j) {
      acc_t sum = acc_t(0);
      for (long long k = 0; k < s.Cr; ++k) {
        const scalar_t* resp = response + (b * s.Cr + k) * s.Kh * s.Kw;
        for (long long p = 0; p < p_end; ++p)
          for (long long q = 0; q < q_end; ++q)
            sum += exact_g_dense_at<acc_t>(g, weight, j, k, (y + p) * s.W + x + q, s) * acc_t(resp[p * s.Kw + q]);
      }
      grad_impulse[((b * s.Ci + j) * s.H + y) * s.W + x] = static_cast<scalar_t>(sum);
    }
  }
}

// grad_response[b, k, p, q] = sum_j sum_{p<=y<H, q<=x<W} g_dense[j, k](y, x) * impulse[b, j, y - p, x - q]
// (taps beyond the image: 0); a warp per tap, as exact_taps_kernel.
template <typename scalar_t>
__global__ void __launch_bounds__(kExactThreads)
    exact_mix_grad_response_kernel(const scalar_t* __restrict__ grad_out, const scalar_t* __restrict__ impulse,
                                   const scalar_t* __restrict__ weight, scalar_t* __restrict__ grad_response,
                                   const typename AccType<scalar_t>::type* __restrict__ checksum, ExactMixSizes s) {
  using acc_t = typename AccType<scalar_t>::type;
  const long long b = blockIdx.x;
  if (exact_is_finite(checksum[b])) return;
  const int lane = threadIdx.x % 32;
  const unsigned warps = blockDim.x / 32;
  const long long plane = s.H * s.W;
  const scalar_t* g = grad_out + b * s.L * plane;
  // a warp per tap (`at` is the same for the whole warp: the shuffles see all 32 lanes), for each channel in turn
  for (PlaneWalk at = plane_walk(blockIdx.y * warps + threadIdx.x / 32, gridDim.y * warps, s.Kw); at.r < s.Kh;
       at.step(s.Kw)) {
    const long long p = at.r, q = at.c;
    const long long rows = s.H - p, cols = s.W - q;  // the window, in impulse coordinates (y - p, x - q)
    for (long long k = 0; k < s.Cr; ++k) {
      acc_t sum = acc_t(0);
      if (rows > 0 && cols > 0) {  // taps beyond the image sum nothing
        for (long long j = 0; j < s.Ci; ++j) {
          const scalar_t* imp = impulse + (b * s.Ci + j) * plane;
          // the lane's pixels of the window: lane, lane + 32, ...
          for (PlaneWalk px = plane_walk(lane, 32, cols); px.r < rows; px.step(cols))
            sum += exact_g_dense_at<acc_t>(g, weight, j, k, (px.r + p) * s.W + px.c + q, s) *
                   acc_t(imp[px.r * s.W + px.c]);
        }
      }
      sum = warp_sum(sum);
      if (lane == 0) grad_response[((b * s.Cr + k) * s.Kh + p) * s.Kw + q] = static_cast<scalar_t>(sum);
    }
  }
}

// grad_weight_per_sample[b, l, j, k] = sum_{y, x} grad_out[b, l, y, x] * dense[j, k](y, x); a warp per output.
template <typename scalar_t>
__global__ void __launch_bounds__(kExactThreads)
    exact_mix_grad_weight_kernel(const scalar_t* __restrict__ grad_out, const scalar_t* __restrict__ response,
                                 const scalar_t* __restrict__ impulse, double* __restrict__ grad_weight_per_sample,
                                 const typename AccType<scalar_t>::type* __restrict__ checksum, ExactMixSizes s) {
  using acc_t = typename AccType<scalar_t>::type;
  const long long b = blockIdx.x;
  if (exact_is_finite(checksum[b])) return;
  const int lane = threadIdx.x % 32;
  const unsigned warps = blockDim.x / 32;
  const long long plane = s.H * s.W;
  // a warp per (j, k) pair (`at` is the same for the whole warp), for each output channel in turn
  for (PlaneWalk at = plane_walk(blockIdx.y * warps + threadIdx.x / 32, gridDim.y * warps, s.Cr); at.r < s.Ci;
       at.step(s.Cr)) {
    const long long j = at.r, k = at.c;
    const scalar_t* imp = impulse + (b * s.Ci + j) * plane;
    const scalar_t* resp = response + (b * s.Cr + k) * s.Kh * s.Kw;
    for (long long l = 0; l < s.L; ++l) {
      const scalar_t* g = grad_out + (b * s.L + l) * plane;
      acc_t sum = acc_t(0);
      if (plane > 0)  // an empty image sums nothing
        for (PlaneWalk px = plane_walk(lane, 32, s.W); px.r < s.H; px.step(s.W))
          sum += acc_t(g[px.r * s.W + px.c]) * exact_dense_at<acc_t>(imp, resp, px.r, px.c, s);
      sum = warp_sum(sum);
      if (lane == 0) grad_weight_per_sample[((b * s.L + l) * s.Ci + j) * s.Cr + k] = static_cast<double>(sum);
    }
  }
}

// Blocks: a thread per pixel (forward, grad_impulse), a warp per tap (grad_response) or per (j, k) pair (grad_weight),
// each looping over the other channel.
template <typename scalar_t>
void launch_exact_mix_forward(const scalar_t* response, const scalar_t* impulse, const scalar_t* weight,
                              scalar_t* out, const typename AccType<scalar_t>::type* checksum, ConvSizes c,
                              long long L, cudaStream_t stream) {
  const ExactMixSizes s = exact_mix_sizes(c, L);
  if (s.B == 0 || s.L * s.H * s.W == 0) return;
  const LaunchConfig cfg = exact_config(s.B, s.H * s.W);
  DC_LAUNCH(exact_mix_forward_kernel<scalar_t>, checked_grid(cfg, "dense_mix_conv2d forward"), cfg.threads,
            cfg.smem_bytes, stream)(response, impulse, weight, out, checksum, s);
}

// The three gradients of the flagged samples (one checksum: a flagged sample gets all of them, as on the host).
template <typename scalar_t>
void launch_exact_mix_backward(const scalar_t* grad_out, const scalar_t* response, const scalar_t* impulse,
                               const scalar_t* weight, scalar_t* grad_response, scalar_t* grad_impulse,
                               double* grad_weight_per_sample, const typename AccType<scalar_t>::type* checksum,
                               ConvSizes c, long long L, cudaStream_t stream) {
  const ExactMixSizes s = exact_mix_sizes(c, L);
  if (s.B == 0) return;
  if (s.Ci * s.H * s.W > 0) {
    const LaunchConfig cfg = exact_config(s.B, s.H * s.W);
    DC_LAUNCH(exact_mix_grad_impulse_kernel<scalar_t>, checked_grid(cfg, "dense_mix_conv2d grad_impulse"),
              cfg.threads, cfg.smem_bytes, stream)(grad_out, response, weight, grad_impulse, checksum, s);
  }
  if (s.Cr * s.Kh * s.Kw > 0) {
    const LaunchConfig cfg = exact_config(s.B, s.Kh * s.Kw * 32);
    DC_LAUNCH(exact_mix_grad_response_kernel<scalar_t>, checked_grid(cfg, "dense_mix_conv2d grad_response"),
              cfg.threads, cfg.smem_bytes, stream)(grad_out, impulse, weight, grad_response, checksum, s);
  }
  if (s.L * s.Ci * s.Cr > 0) {
    const LaunchConfig cfg = exact_config(s.B, s.Ci * s.Cr * 32);
    DC_LAUNCH(exact_mix_grad_weight_kernel<scalar_t>, checked_grid(cfg, "dense_mix_conv2d grad_weight"),
              cfg.threads, cfg.smem_bytes, stream)(grad_out, response, impulse, grad_weight_per_sample, checksum, s);
  }
}

}  // namespace dc
