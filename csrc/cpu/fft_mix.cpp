// FFT algorithm of dense_mix_conv2d on CPU: dense_conv2d followed by a 1x1 channel mix, weight a [L, Ci, Cr],
//   y[b, l] = sum_{j,k} a[l, j, k] * crop(x[b, j] (*) h[b, k])
// formed in the frequency domain, so only L planes (not Ci*Cr) are ever transformed back. Per sample b
// (samples in parallel, each sample's transforms on one thread, per-thread workspaces: fft_common.h):
//   X = rfft2(x[b]) [Ci], H = rfft2(h[b] cropped to the taps that reach the image) [Cr]
//   forward:  Y[l] = sum_{j,k} a[l, j, k] X[j] H[k] (per bin), y[b, l] = crop(irfft2(Y[l]))
//   backward: G = rfft2(gy[b]) [L], N[j, k] = sum_l a[l, j, k] G[l]
//             grad_x[b, j] = crop(irfft2(sum_k conj(H[k]) N[j, k]))
//             grad_h[b, k] = crop(irfft2(sum_j conj(X[j]) N[j, k]))
//             grad_a[l, j, k] = sum_b <gy[b, l], crop(x[b, j] (*) h[b, k])>
//                             = sum_b 1/(H W) sum_{bins} w Re(conj(G[l]) X[j] H[k])    (Parseval)
// where w = 1 on the half spectrum's DC and Nyquist columns and 2 on the others (their mirror images
// are not stored: half_spectrum_weight, csrc/shapes.h). Transform size: fft_plan (csrc/shapes.h), as
// dense_conv2d's FFT algorithm; pruned transforms (fft_common.h). The 1/(H W) of the inverse transforms (and
// of Parseval) is folded into H (and, in the backward, applied to grad_h's spectra once summed). The
// *_keep_spectra variant keeps X and H for the backward, as dense_conv2d's (fft_conv.cpp).
//
// Cost per sample and bin (K = H (W/2 + 1) bins), with the pair products P[j, k] = X[j] H[k] (4 Ci Cr
// multiply-adds) formed first: forward 2 L Ci Cr (Y[l] = sum_{j,k} a[l, j, k] P[j, k]), backward
// 4 L Ci Cr + 8 Ci Cr (N, grad_x, grad_h; the weight gradient is a dot product of w G[l] and P[j, k]); plus
// Ci + Cr (+ L backward) real transforms forward and L (Ci + Cr backward) inverse.
// The bin loops run on blocks of kBinBlock bins split into real and imaginary rows (every row of a block
// stays in L1), in register tiles of whole vectors (Vec, simd_vec.h) with real weights broadcast: no lane
// shuffles inside the tiles.
//
// grad_a is summed per sample into a [B, L, Ci, Cr] float64 buffer, then over the batch in sample order:
// the result does not depend on the thread count.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/complex.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../checks.h"
#include "../nonfinite.h"
#include "fft_common.h"
#include "huge_pages.h"
#include "row_kernels.h"
#include "simd_vec.h"

namespace dc {
namespace {

using at::Tensor;
using namespace fft;

constexpr int64_t kBinBlock = 64;
// Register tiles: kOutTile output channels l at a time (the forward's Y, the weight gradient), kPairTile
// pairs jk = j*Cr + k at a time (the backward's N), kGwPairTile pairs for the weight gradient; at most 8
// accumulator vectors, so that AVX2's 16 registers also hold the operands. L and Ci*Cr are padded to
// these tiles with zero weights / zero rows (no branches in the tiles).
constexpr int64_t kOutTile = 4, kPairTile = 4, kGwPairTile = 2;
static_assert(kPairTile % kGwPairTile == 0, "padded pairs are whole weight-gradient tiles");
// The weight gradient's float lanes go into float64 every kGwFlushBlocks blocks (32 terms per lane).
constexpr int64_t kGwFlushBlocks = 8;
constexpr int64_t kMaxVectorBytes = 64;

#define DC_INLINE __attribute__((always_inline)) inline

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// Sizes of one thread's scratch (elements of T), for both directions.
struct MixScratch {
  int64_t L, Ci, Cr, Lp, CC, CCp;
  MixScratch(int64_t L_, int64_t Ci_, int64_t Cr_)
      : L(L_), Ci(Ci_), Cr(Cr_), Lp(round_up(L_, kOutTile)), CC(Ci_ * Cr_), CCp(round_up(Ci_ * Cr_, kPairTile)) {}
  // rows of 2 * kBinBlock (re then im): X, H, G, w G, the products P, N, Y (forward), GX, GH
  int64_t rows() const { return Ci + Cr + 2 * Lp + 2 * CCp + Lp + Ci + Cr; }
  // then the padded weights [Lp][CCp] and the weight gradient's float lanes [Lp][CCp][lanes]
  template <class T>
  int64_t size() const {
    return 2 * kBinBlock * rows() + Lp * CCp + Lp * CCp * (kMaxVectorBytes / static_cast<int64_t>(sizeof(T)));
  }
};

// Split rows of one block: row r at scratch + 2 kBinBlock r (re), + kBinBlock (im).
template <class T>
struct BlockRows {
  T *x, *h, *g, *wg, *p, *n, *y, *gx, *gh, *a, *gw_lanes;
  BlockRows(const MixScratch& m, T* scratch) {
    T* next = scratch;
    const auto take = [&](int64_t rows) {
      T* at = next;
      next += 2 * kBinBlock * rows;
      return at;
    };
    x = take(m.Ci), h = take(m.Cr), g = take(m.Lp), wg = take(m.Lp), p = take(m.CCp), n = take(m.CCp);
    y = take(m.Lp), gx = take(m.Ci), gh = take(m.Cr);
    a = next;
    gw_lanes = a + m.Lp * m.CCp;
  }
};

template <class T>
T* row(T* base, int64_t r) {
  return base + 2 * kBinBlock * r;
}

// Bins [k0, k0 + n) of each of C interleaved complex planes (K bins apart) into split rows, zero past n.
template <class T>
DC_INLINE void load_split(const T* src, int64_t C, int64_t K, int64_t k0, int64_t n, T* dst) {
  for (int64_t c = 0; c < C; ++c) {
    const T* s = src + 2 * (c * K + k0);
    T* re = row(dst, c);
    T* im = re + kBinBlock;
    for (int64_t t = 0; t < n; ++t) {
      re[t] = s[2 * t];
      im[t] = s[2 * t + 1];
    }
    for (int64_t t = n; t < kBinBlock; ++t) re[t] = im[t] = T(0);
  }
}

template <class T>
DC_INLINE void store_interleaved(const T* split_row, int64_t n, T* dst) {
  for (int64_t t = 0; t < n; ++t) {
    dst[2 * t] = split_row[t];
    dst[2 * t + 1] = split_row[kBinBlock + t];
  }
}

// The weights a [L, Ci, Cr] as [Lp][CCp], zero in the padding; the padded rows of G, w G, P: zero.
template <class T>
void prepare_padding(const MixScratch& m, const T* a, const BlockRows<T>& r) {
  for (int64_t l = 0; l < m.Lp; ++l)
    for (int64_t jk = 0; jk < m.CCp; ++jk) r.a[l * m.CCp + jk] = l < m.L && jk < m.CC ? a[l * m.CC + jk] : T(0);
  std::fill(row(r.g, m.L), row(r.g, m.Lp), T(0));
  std::fill(row(r.wg, m.L), row(r.wg, m.Lp), T(0));
  std::fill(row(r.p, m.CC), row(r.p, m.CCp), T(0));
}

// P[j Cr + k] = X[j] H[k] on the block.
template <class T, int W>
DC_INLINE void pair_products(const MixScratch& m, const BlockRows<T>& r) {
  using V = typename Vec<T, W>::type;
  using U = typename Vec<T, W>::unaligned;
  for (int64_t j = 0; j < m.Ci; ++j)
    for (int64_t k = 0; k < m.Cr; ++k)
      for (int64_t c = 0; c < kBinBlock; c += W) {
        const V xr = *(const U*)(row(r.x, j) + c), xi = *(const U*)(row(r.x, j) + kBinBlock + c);
        const V hr = *(const U*)(row(r.h, k) + c), hi = *(const U*)(row(r.h, k) + kBinBlock + c);
        T* o = row(r.p, j * m.Cr + k) + c;
        *(U*)o = xr * hr - xi * hi;
        *(U*)(o + kBinBlock) = xr * hi + xi * hr;
      }
}

// Y[l] = sum_jk a[l, jk] P[jk] (kOutTile l at a time), into Y's interleaved planes (K bins apart).
template <class T, int W>
DC_INLINE void mix_forward_block(const MixScratch& m, const BlockRows<T>& r, T* Y, int64_t K, int64_t k0, int64_t n) {
  using V = typename Vec<T, W>::type;
  using U = typename Vec<T, W>::unaligned;
  for (int64_t l0 = 0; l0 < m.Lp; l0 += kOutTile)
    for (int64_t c = 0; c < kBinBlock; c += W) {
      V yr[kOutTile] = {}, yi[kOutTile] = {};
      for (int64_t jk = 0; jk < m.CC; ++jk) {
        const V pr = *(const U*)(row(r.p, jk) + c), pi = *(const U*)(row(r.p, jk) + kBinBlock + c);
#pragma GCC unroll 4
        for (int t = 0; t < kOutTile; ++t) {
          const T a = r.a[(l0 + t) * m.CCp + jk];
          yr[t] += a * pr;
          yi[t] += a * pi;
        }
      }
#pragma GCC unroll 4
      for (int t = 0; t < kOutTile; ++t) {
        *(U*)(row(r.y, l0 + t) + c) = yr[t];
        *(U*)(row(r.y, l0 + t) + kBinBlock + c) = yi[t];
      }
    }
  for (int64_t l = 0; l < m.L; ++l) store_interleaved(row(r.y, l), n, Y + 2 * (l * K + k0));
}

// Y[l] = sum_j X[j] sum_k a[l, j, k] H[k] on every bin (interleaved spectra, K bins per plane).
template <class T, int W>
DC_INLINE void mix_forward_spectra(const T* X, const T* Hs, const T* a, T* Y, int64_t L, int64_t Ci, int64_t Cr,
                                   int64_t K, T* scratch) {
  const MixScratch m(L, Ci, Cr);
  const BlockRows<T> r(m, scratch);
  prepare_padding(m, a, r);
  for (int64_t k0 = 0; k0 < K; k0 += kBinBlock) {
    const int64_t n = std::min(kBinBlock, K - k0);
    load_split(X, Ci, K, k0, n, r.x);
    load_split(Hs, Cr, K, k0, n, r.h);
    pair_products<T, W>(m, r);
    mix_forward_block<T, W>(m, r, Y, K, k0, n);
  }
}

// The backward on one block, with N[jk] = sum_l a[l, jk] G[l] (the output gradient mixed back to the pairs):
//   GX[j] = sum_k conj(H[k]) N[j Cr + k],  GH[k] = sum_j conj(X[j]) N[j Cr + k],
//   weight gradient lanes [l][jk] += w Re(conj(G[l]) P[jk]) = (w G[l]).re P.re + (w G[l]).im P.im.
template <class T, int W>
DC_INLINE void mix_backward_block(const MixScratch& m, const BlockRows<T>& r, T* GX, T* GH, T gh_scale, int64_t K,
                                  int64_t k0, int64_t n) {
  using V = typename Vec<T, W>::type;
  using U = typename Vec<T, W>::unaligned;
  for (int64_t jk0 = 0; jk0 < m.CCp; jk0 += kPairTile)
    for (int64_t c = 0; c < kBinBlock; c += W) {
      V nr[kPairTile] = {}, ni[kPairTile] = {};
      for (int64_t l = 0; l < m.L; ++l) {
        const V gr = *(const U*)(row(r.g, l) + c), gi = *(const U*)(row(r.g, l) + kBinBlock + c);
#pragma GCC unroll 4
        for (int t = 0; t < kPairTile; ++t) {
          const T a = r.a[l * m.CCp + jk0 + t];
          nr[t] += a * gr;
          ni[t] += a * gi;
        }
      }
#pragma GCC unroll 4
      for (int t = 0; t < kPairTile; ++t) {
        *(U*)(row(r.n, jk0 + t) + c) = nr[t];
        *(U*)(row(r.n, jk0 + t) + kBinBlock + c) = ni[t];
      }
    }
  // scale * sum of conj(u) v: (ur vr + ui vi) + i (ur vi - ui vr), for GX (u = H) and GH (u = X)
  const auto conj_sum = [&](const T* u_rows, int64_t count, int64_t pair0, int64_t pair_step, T scale,
                            T* out_row) {
    for (int64_t c = 0; c < kBinBlock; c += W) {
      V sr = {}, si = {};
      for (int64_t q = 0; q < count; ++q) {
        const T* u = row(u_rows, q) + c;
        const T* v = row(r.n, pair0 + q * pair_step) + c;
        const V ur = *(const U*)u, ui = *(const U*)(u + kBinBlock), vr = *(const U*)v, vi = *(const U*)(v + kBinBlock);
        sr += ur * vr + ui * vi;
        si += ur * vi - ui * vr;
      }
      *(U*)(out_row + c) = sr * scale;
      *(U*)(out_row + kBinBlock + c) = si * scale;
    }
  };
  for (int64_t j = 0; j < m.Ci; ++j) {
    conj_sum(r.h, m.Cr, j * m.Cr, 1, T(1), row(r.gx, j));
    store_interleaved(row(r.gx, j), n, GX + 2 * (j * K + k0));
  }
  for (int64_t k = 0; k < m.Cr; ++k) {
    conj_sum(r.x, m.Ci, k, m.Cr, gh_scale, row(r.gh, k));
    store_interleaved(row(r.gh, k), n, GH + 2 * (k * K + k0));
  }
  for (int64_t l0 = 0; l0 < m.Lp; l0 += kOutTile)
    for (int64_t jk0 = 0; jk0 < m.CCp; jk0 += kGwPairTile) {
      V acc[kOutTile][kGwPairTile] = {};
      for (int64_t c = 0; c < kBinBlock; c += W) {
        V pr[kGwPairTile], pi[kGwPairTile];
#pragma GCC unroll 2
        for (int u = 0; u < kGwPairTile; ++u) {
          pr[u] = *(const U*)(row(r.p, jk0 + u) + c);
          pi[u] = *(const U*)(row(r.p, jk0 + u) + kBinBlock + c);
        }
#pragma GCC unroll 4
        for (int t = 0; t < kOutTile; ++t) {
          const V gr = *(const U*)(row(r.wg, l0 + t) + c), gi = *(const U*)(row(r.wg, l0 + t) + kBinBlock + c);
#pragma GCC unroll 2
          for (int u = 0; u < kGwPairTile; ++u) acc[t][u] += gr * pr[u] + gi * pi[u];
        }
      }
#pragma GCC unroll 4
      for (int t = 0; t < kOutTile; ++t)
#pragma GCC unroll 2
        for (int u = 0; u < kGwPairTile; ++u) {
          T* lanes = r.gw_lanes + ((l0 + t) * m.CCp + jk0 + u) * W;
          *(U*)lanes += acc[t][u];
        }
    }
}

// GX[j] = sum_k conj(H[k]) N[j, k] and GH[k] = gh_scale sum_j conj(X[j]) N[j, k] with N[j, k] = sum_l a[l, j, k] G[l],
// and gw[l, j, k] = sum over bins of w Re(conj(G[l]) X[j] H[k]) (w: the half-spectrum weight, see the top), in
// float64: the float lanes of mix_backward_block, added into float64 lanes every kGwFlushBlocks blocks and
// summed once per sample, in a fixed order.
template <class T, int W>
DC_INLINE void mix_backward_spectra(const T* X, const T* Hs, const T* G, const T* a, T* GX, T* GH, T gh_scale,
                                    double* gw, int64_t L, int64_t Ci, int64_t Cr, int64_t K, int64_t half_width,
                                    bool has_nyquist, T* scratch, double* gw_lanes) {
  const MixScratch m(L, Ci, Cr);
  const BlockRows<T> r(m, scratch);
  prepare_padding(m, a, r);
  const int64_t lane_count = m.Lp * m.CCp * W;
  std::fill(gw_lanes, gw_lanes + lane_count, 0.0);
  const auto flush = [&] {
    for (int64_t i = 0; i < lane_count; ++i) gw_lanes[i] += static_cast<double>(r.gw_lanes[i]);
    std::fill(r.gw_lanes, r.gw_lanes + lane_count, T(0));
  };
  std::fill(r.gw_lanes, r.gw_lanes + lane_count, T(0));
  T w[kBinBlock];
  for (int64_t k0 = 0, block = 1; k0 < K; k0 += kBinBlock, ++block) {
    const int64_t n = std::min(kBinBlock, K - k0);
    load_split(X, Ci, K, k0, n, r.x);
    load_split(Hs, Cr, K, k0, n, r.h);
    load_split(G, L, K, k0, n, r.g);
    for (int64_t t = 0; t < kBinBlock; ++t)
      w[t] = t >= n ? T(0) : T(half_spectrum_weight((k0 + t) % half_width, half_width, has_nyquist));
    for (int64_t l = 0; l < L; ++l)
#pragma omp simd
      for (int64_t t = 0; t < kBinBlock; ++t) {
        row(r.wg, l)[t] = w[t] * row(r.g, l)[t];
        row(r.wg, l)[kBinBlock + t] = w[t] * row(r.g, l)[kBinBlock + t];
      }
    pair_products<T, W>(m, r);
    mix_backward_block<T, W>(m, r, GX, GH, gh_scale, K, k0, n);
    if (block % kGwFlushBlocks == 0) flush();
  }
  flush();
  for (int64_t l = 0; l < L; ++l)
    for (int64_t jk = 0; jk < m.CC; ++jk) {
      double sum = 0.0;
      for (int64_t u = 0; u < W; ++u) sum += gw_lanes[(l * m.CCp + jk) * W + u];
      gw[l * m.CC + jk] = sum;
    }
}

// Entry points, one per dtype and instruction set (DC_ISA_FUNCTION, row_kernels.h: kVectorBytes per set).
#define DC_MIX_ENTRY_POINTS(T)                                                                                 \
  DC_ISA_FUNCTION(void, forward_spectra,                                                                       \
                  (const T* X, const T* Hs, const T* a, T* Y, int64_t L, int64_t Ci, int64_t Cr, int64_t K,     \
                   T* scratch),                                                                                \
                  (X, Hs, a, Y, L, Ci, Cr, K, scratch), {                                                      \
                    mix_forward_spectra<T, kVectorBytes / sizeof(T)>(X, Hs, a, Y, L, Ci, Cr, K, scratch);      \
                  })                                                                                           \
  DC_ISA_FUNCTION(void, backward_spectra,                                                                      \
                  (const T* X, const T* Hs, const T* G, const T* a, T* GX, T* GH, T gh_scale, double* gw,      \
                   int64_t L, int64_t Ci, int64_t Cr, int64_t K, int64_t half_width, bool has_nyquist,         \
                   T* scratch, double* gw_lanes),                                                              \
                  (X, Hs, G, a, GX, GH, gh_scale, gw, L, Ci, Cr, K, half_width, has_nyquist, scratch,          \
                   gw_lanes),                                                                                  \
                  {                                                                                            \
                    mix_backward_spectra<T, kVectorBytes / sizeof(T)>(X, Hs, G, a, GX, GH, gh_scale, gw, L,    \
                                                                      Ci, Cr, K, half_width, has_nyquist,      \
                                                                      scratch, gw_lanes);                      \
                  })
DC_MIX_ENTRY_POINTS(float)
DC_MIX_ENTRY_POINTS(double)
#undef DC_MIX_ENTRY_POINTS

void check_cpu_fft(const Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble,
              "dense_mix_conv2d (algorithm='fft'): the CPU kernels take float32 or float64; ", name, " is ",
              t.scalar_type());
}

// The forward; when `kept` is given, each sample's spectra are written into it instead of the per-thread
// workspaces (shapes whose output is zero leave it zero).
Tensor mix_fft_forward(const Tensor& response, const Tensor& impulse, const Tensor& weight, KeptSpectra* kept) {
  const MixSizes ms = check_mix_forward(response, impulse, weight);
  const ConvSizes& s = ms.conv;
  const int64_t L = ms.L;
  check_cpu_fft(impulse, "impulse");
  Tensor out = at::empty({s.B, L, s.Hi, s.Wi}, impulse.options());
  advise_huge_pages(out);
  const FftPlan f = fft_plan(s);
  if (kept != nullptr) *kept = empty_kept_spectra(s, f, impulse);
  if (out.numel() == 0 || ms.output_is_zero()) {
    if (kept != nullptr) {
      kept->impulse.zero_();
      kept->response.zero_();
    }
    return out.zero_();
  }
  const Tensor resp = response.narrow(2, 0, f.Hq).narrow(3, 0, f.Wq);
  const Tensor a = weight.contiguous();
  const int64_t K = (f.W / 2 + 1) * f.H;
  AT_DISPATCH_FLOATING_TYPES(impulse.scalar_type(), "dense_mix_conv2d_fft_cpu", [&] {
    using C = c10::complex<scalar_t>;
    const ColumnFft<scalar_t> columns(f.H, /*inverse=*/false), inverse_columns(f.H, /*inverse=*/true);
    const auto run = [&](int64_t begin, int64_t end) {
      at::NoGradGuard no_grad;  // plain tensor math on this thread (see fft_conv.cpp)
      const auto copt = impulse.options().dtype(c10::toComplexType(impulse.scalar_type()));
      Tensor& Y = workspace(kMixOutSpectra, {L, f.H, f.W / 2 + 1}, copt);
      std::vector<scalar_t> scratch(MixScratch(L, s.Ci, s.Cr).size<scalar_t>());
      for (int64_t b = begin; b < end; ++b) {
        Tensor X = kept != nullptr ? kept->impulse[b] : workspace(kImpulseSpectra, {s.Ci, f.H, f.W / 2 + 1}, copt);
        Tensor Hs =
            kept != nullptr ? kept->response[b] : workspace(kResponseSpectra, {s.Cr, f.H, f.W / 2 + 1}, copt);
        forward_2d<scalar_t>(impulse[b], columns, f.W, /*scaled=*/false, kImpulseIn, X);
        forward_2d<scalar_t>(resp[b], columns, f.W, /*scaled=*/true, kResponseIn, Hs);
        TORCH_INTERNAL_ASSERT(X.is_contiguous() && Hs.is_contiguous() && Y.is_contiguous());
        forward_spectra(reinterpret_cast<const scalar_t*>(X.const_data_ptr<C>()),
                        reinterpret_cast<const scalar_t*>(Hs.const_data_ptr<C>()), a.const_data_ptr<scalar_t>(),
                        reinterpret_cast<scalar_t*>(Y.data_ptr<C>()), L, s.Ci, s.Cr, K, scratch.data());
        out[b].copy_(inverse_2d<scalar_t>(Y, inverse_columns, s.Hi, f.W, kMixOut).narrow(2, 0, s.Wi));
      }
    };
    run_samples(s.B, run);
  });
  exact_nonfinite_mix_forward(out, response, impulse, weight);
  return out;
}

Tensor dense_mix_fft_forward_cpu(const Tensor& response, const Tensor& impulse, const Tensor& weight) {
  return mix_fft_forward(response, impulse, weight, nullptr);
}

std::tuple<Tensor, Tensor, Tensor> dense_mix_fft_forward_keep_spectra_cpu(const Tensor& response,
                                                                          const Tensor& impulse,
                                                                          const Tensor& weight) {
  KeptSpectra kept;
  Tensor out = mix_fft_forward(response, impulse, weight, &kept);
  return {out, kept.impulse, kept.response};
}

// The backward; with `kept` (the forward's spectra) the impulse and response are not transformed again.
// Either way the response spectrum carries the 1/(H W) (GX and the weight gradient get it from there) and GH
// is scaled after the sum, so both give bitwise the same gradients.
std::tuple<Tensor, Tensor, Tensor> mix_fft_backward(const Tensor& grad_out, const Tensor& response,
                                                    const Tensor& impulse, const Tensor& weight,
                                                    const KeptSpectra* kept) {
  const MixSizes ms = check_mix_backward(grad_out, response, impulse, weight);
  const ConvSizes& s = ms.conv;
  const int64_t L = ms.L;
  check_cpu_fft(grad_out, "grad_out");
  const FftPlan f = fft_plan(s);
  if (kept != nullptr) check_kept_spectra(*kept, s, f, grad_out, "dense_mix_conv2d");
  Tensor grad_response = at::zeros(response.sizes(), grad_out.options());
  Tensor grad_impulse = at::empty(impulse.sizes(), grad_out.options());
  advise_huge_pages(grad_impulse);
  if (ms.gradients_are_zero())
    return {grad_response, grad_impulse.zero_(), at::zeros(weight.sizes(), grad_out.options())};
  const Tensor resp = response.narrow(2, 0, f.Hq).narrow(3, 0, f.Wq);
  const Tensor a = weight.contiguous();  // grad_out is read through its strides
  // Per-sample weight gradients, summed over the batch in sample order below (deterministic).
  Tensor grad_weight_per_sample = at::empty({s.B, L, s.Ci, s.Cr}, grad_out.options().dtype(at::kDouble));
  const int64_t half_width = f.W / 2 + 1, K = f.H * half_width;
  const bool has_nyquist = f.W % 2 == 0;
  AT_DISPATCH_FLOATING_TYPES(grad_out.scalar_type(), "dense_mix_conv2d_fft_backward_cpu", [&] {
    using C = c10::complex<scalar_t>;
    const ColumnFft<scalar_t> columns(f.H, /*inverse=*/false), inverse_columns(f.H, /*inverse=*/true);
    const scalar_t scale = static_cast<scalar_t>(1.0 / static_cast<double>(f.H * f.W));
    const auto run = [&](int64_t begin, int64_t end) {
      at::NoGradGuard no_grad;
      const auto copt = grad_out.options().dtype(c10::toComplexType(grad_out.scalar_type()));
      Tensor& G = workspace(kMixOutSpectra, {L, f.H, half_width}, copt);
      Tensor& GX = workspace(kGradImpulseSpectra, {s.Ci, f.H, half_width}, copt);
      Tensor& GH = workspace(kGradResponseSpectra, {s.Cr, f.H, half_width}, copt);
      const MixScratch sizes(L, s.Ci, s.Cr);
      std::vector<scalar_t> scratch(sizes.size<scalar_t>());
      std::vector<double> gw_lanes(sizes.Lp * sizes.CCp * (kMaxVectorBytes / sizeof(scalar_t)));
      const auto re = [](Tensor& t) { return reinterpret_cast<scalar_t*>(t.data_ptr<C>()); };
      for (int64_t b = begin; b < end; ++b) {
        Tensor X, Hs;
        if (kept != nullptr) {
          X = kept->impulse[b];
          Hs = kept->response[b];
        } else {
          X = workspace(kImpulseSpectra, {s.Ci, f.H, half_width}, copt);
          Hs = workspace(kResponseSpectra, {s.Cr, f.H, half_width}, copt);
          forward_2d<scalar_t>(impulse[b], columns, f.W, /*scaled=*/false, kImpulseIn, X);
          forward_2d<scalar_t>(resp[b], columns, f.W, /*scaled=*/true, kResponseIn, Hs);
        }
        forward_2d<scalar_t>(grad_out[b], columns, f.W, /*scaled=*/false, kMixGradIn, G);
        TORCH_INTERNAL_ASSERT(X.is_contiguous() && Hs.is_contiguous() && G.is_contiguous());
        // GH = sum a conj(X) G gets the 1/(H W) as it is stored
        backward_spectra(re(X), re(Hs), re(G), a.const_data_ptr<scalar_t>(), re(GX), re(GH), scale,
                         grad_weight_per_sample[b].data_ptr<double>(), L, s.Ci, s.Cr, K, half_width, has_nyquist,
                         scratch.data(), gw_lanes.data());
        grad_impulse[b].copy_(
            inverse_2d<scalar_t>(GX, inverse_columns, s.Hi, f.W, kGradImpulseOut).narrow(2, 0, s.Wi));
        grad_response[b].narrow(1, 0, f.Hq).narrow(2, 0, f.Wq).copy_(
            inverse_2d<scalar_t>(GH, inverse_columns, f.Hq, f.W, kGradResponseOut).narrow(2, 0, f.Wq));
      }
    };
    run_samples(s.B, run);
  });
  exact_nonfinite_mix_backward(grad_response, grad_impulse, grad_weight_per_sample, grad_out, response, impulse,
                               weight);
  Tensor grad_weight = at::zeros({L, s.Ci, s.Cr}, grad_weight_per_sample.options());
  for (int64_t b = 0; b < s.B; ++b) grad_weight.add_(grad_weight_per_sample[b]);
  return {grad_response, grad_impulse, grad_weight.to(grad_out.scalar_type())};
}

std::tuple<Tensor, Tensor, Tensor> dense_mix_fft_backward_cpu(const Tensor& grad_out, const Tensor& response,
                                                              const Tensor& impulse, const Tensor& weight) {
  return mix_fft_backward(grad_out, response, impulse, weight, nullptr);
}

std::tuple<Tensor, Tensor, Tensor> dense_mix_fft_backward_spectra_cpu(const Tensor& grad_out,
                                                                      const Tensor& response,
                                                                      const Tensor& impulse, const Tensor& weight,
                                                                      const Tensor& impulse_spectra,
                                                                      const Tensor& response_spectra) {
  const KeptSpectra kept{impulse_spectra, response_spectra};
  return mix_fft_backward(grad_out, response, impulse, weight, &kept);
}

}  // namespace

TORCH_LIBRARY_IMPL(dense_conv, CPU, m) {
  m.impl("dense_mix_conv2d_fft", &dense_mix_fft_forward_cpu);
  m.impl("dense_mix_conv2d_fft_backward", &dense_mix_fft_backward_cpu);
  m.impl("dense_mix_conv2d_fft_keep_spectra", &dense_mix_fft_forward_keep_spectra_cpu);
  m.impl("dense_mix_conv2d_fft_backward_spectra", &dense_mix_fft_backward_spectra_cpu);
}

}  // namespace dc
