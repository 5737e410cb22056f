// Exact results for samples holding NaN or infinity, on the device (csrc/nonfinite.h says why): for the samples
// whose checksum (nonfinite_checksums, computed by the glue with ATen on the same stream) is non-finite, the
// definition is computed and written over the fast kernels' result in place; the other samples are not touched.
// No host synchronisation: each block reads its sample's checksum and returns when it is finite, so a batch
// without NaN/inf costs one launch of B x (at most kExactBlocksPerSample) blocks that exit at once.
//
// No ATen here: compiled by nvcc (dense_conv_forward.cu, dense_conv_backward.cu, fft_conv_cuda.cu,
// per_sample_conv_cuda.cu) and by g++ under the test-only emulator (tests/emu/). All pointers are contiguous.
//
// Three sums serve the six ops (dense_conv2d and per_sample_conv2d: forward, grad_impulse, grad_response /
// grad_weight), each op naming its operands' channels through ChannelMaps:
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
inline LaunchConfig exact_config(const ExactProblem& s, long long items) {
  return {s.B, max64(1, min64(ceil_div(items, kExactThreads), kExactBlocksPerSample)), 1, kExactThreads, 0};
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
  const LaunchConfig cfg = exact_config(s, kind == ExactSum::taps ? per_sample * 32 : per_sample);
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

}  // namespace dc
