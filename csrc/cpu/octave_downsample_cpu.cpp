// CPU kernels of octave_downsample (fused low-pass FIR + decimation by 2): forward, grad_input, grad_filter.
//
//   y[m]       = sum_n f[n] x[2m + e_n],   e_n = n - M, M = (N-1)/2
//   grad_x[p]  = sum_m g[m] f[p - 2m + M]          (zero insertion + the same FIR, fused)
//   grad_f[n]  = sum_m g[m] x[2m + e_n]
//
// The signal is split into its even and odd samples, so every tap is a contiguous, vectorisable
// axpy (or dot) over a block of outputs: taps with even e_n read the even phase shifted by e_n/2,
// odd ones the odd phase shifted by (e_n-1)/2. Only kept samples are computed. Work is split into
// (row, block of outputs) tasks; grad_filter sums per-task partials in a fixed order, so results do
// not depend on the thread count.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../checks.h"
#include "row_kernels.h"

namespace dc {
namespace {

using at::Tensor;

constexpr int64_t kBlock = 2048;  // outputs per task

// A strided set of rows: row r starts at ptr + r * stride, `len` samples.
template <typename T>
struct Rows {
  T* ptr;
  int64_t stride;
  int64_t len;
  T* row(int64_t r) const { return ptr + r * stride; }
};

// ev[i] = x[2(k0 - P + i)], od[i] = x[2(k0 - P + i) + 1], zero outside [0, len), i < n
template <typename T>
void gather_phases(const T* x, int64_t len, int64_t k0, int64_t P, int64_t n, T* ev, T* od) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t p = 2 * (k0 - P + i);
    ev[i] = (p >= 0 && p < len) ? x[p] : T(0);
    od[i] = (p + 1 >= 0 && p + 1 < len) ? x[p + 1] : T(0);
  }
}

template <typename T>
void forward_level(Rows<const T> in, Rows<T> out, int64_t rows, const T* f, int64_t N) {
  const int64_t M = (N - 1) / 2, P = octave_halo(N);
  const int64_t nblk = ceil_div(out.len, kBlock);
  if (rows == 0 || nblk == 0) return;
  at::parallel_for(0, rows * nblk, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> buf(3 * (kBlock + 2 * P));
    T* ev = buf.data();
    T* od = ev + kBlock + 2 * P;
    T* acc = od + kBlock + 2 * P;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t r = task / nblk, m0 = (task % nblk) * kBlock, cnt = min64(kBlock, out.len - m0);
      gather_phases(in.row(r), in.len, m0, P, cnt + 2 * P, ev, od);
      std::fill(acc, acc + cnt, T(0));
      for (int64_t n = 0; n < N; ++n) {
        if (f[n] == T(0)) continue;  // half-band filters: every other tap is zero
        const int64_t e = n - M;
        const T* src = (e % 2 == 0) ? ev + P + e / 2 : od + P + (e - 1) / 2;
        axpy_row(acc, f[n], src, cnt);
      }
      std::copy(acc, acc + cnt, out.row(r) + m0);
    }
  });
}

// gx[p] = sum_m g[m] f[p - 2m + M] (+ add[p] when add is given), p < gx.len
template <typename T>
void backward_level(Rows<const T> g, Rows<T> gx, const Rows<const T>* add, int64_t rows, const T* f, int64_t N) {
  const int64_t M = (N - 1) / 2, P = octave_halo(N);
  const int64_t half = (gx.len + 1) / 2;  // k: pairs (2k, 2k+1)
  const int64_t nblk = ceil_div(half, kBlock);
  if (rows == 0 || nblk == 0) return;
  at::parallel_for(0, rows * nblk, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> buf(3 * (kBlock + 2 * P));
    T* gb = buf.data();
    T* ae = gb + kBlock + 2 * P;
    T* ao = ae + kBlock + 2 * P;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t r = task / nblk, k0 = (task % nblk) * kBlock, cnt = min64(kBlock, half - k0);
      const T* gr = g.row(r);
      for (int64_t i = 0; i < cnt + 2 * P; ++i) {
        const int64_t m = k0 - P + i;
        gb[i] = (m >= 0 && m < g.len) ? gr[m] : T(0);
      }
      std::fill(ae, ae + cnt, T(0));
      std::fill(ao, ao + cnt, T(0));
      for (int64_t n = 0; n < N; ++n) {
        if (f[n] == T(0)) continue;
        const int64_t e = n - M;
        if (e % 2 == 0) axpy_row(ae, f[n], gb + P - e / 2, cnt);
        else axpy_row(ao, f[n], gb + P - (e - 1) / 2, cnt);
      }
      T* o = gx.row(r);
      const T* a = add ? add->row(r) : nullptr;
      for (int64_t i = 0; i < cnt; ++i) {
        const int64_t p = 2 * (k0 + i);
        o[p] = ae[i] + (a ? a[p] : T(0));
        if (p + 1 < gx.len) o[p + 1] = ao[i] + (a ? a[p + 1] : T(0));
      }
    }
  });
}

// partial[n] += sum_m g[m] x[2m + e_n], accumulated into gf (double)
template <typename T>
void filter_grad_level(Rows<const T> g, Rows<const T> in, int64_t rows, int64_t N, std::vector<double>& gf) {
  const int64_t M = (N - 1) / 2, P = octave_halo(N);
  const int64_t nblk = ceil_div(g.len, kBlock);
  if (rows == 0 || nblk == 0) return;
  const int64_t ntask = rows * nblk;
  std::vector<double> partial(ntask * N);
  at::parallel_for(0, ntask, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> buf(2 * (kBlock + 2 * P));
    T* ev = buf.data();
    T* od = ev + kBlock + 2 * P;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t r = task / nblk, m0 = (task % nblk) * kBlock, cnt = min64(kBlock, g.len - m0);
      gather_phases(in.row(r), in.len, m0, P, cnt + 2 * P, ev, od);
      const T* gr = g.row(r) + m0;
      for (int64_t n = 0; n < N; ++n) {
        const int64_t e = n - M;
        const T* src = (e % 2 == 0) ? ev + P + e / 2 : od + P + (e - 1) / 2;
        partial[task * N + n] = static_cast<double>(dot_row(gr, src, cnt));
      }
    }
  });
  for (int64_t t = 0; t < ntask; ++t)
    for (int64_t n = 0; n < N; ++n) gf[n] += partial[t * N + n];
}

void check_cpu_dtype(const Tensor& t) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble,
              "octave_downsample (CPU): float32 or float64 only, got ", t.scalar_type());
}

Tensor octave_downsample_cpu(const Tensor& x_in, const Tensor& filter_in, int64_t levels) {
  check_octave_tensors(x_in, filter_in);
  check_cpu_dtype(x_in);
  const OctaveSizes s = octave_sizes(x_in.sizes(), filter_in.numel(), levels);
  const Tensor x = x_in.contiguous(), filter = filter_in.contiguous();
  Tensor out = at::empty(with_last(x.sizes(), s.lv.total), x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "octave_downsample_cpu", [&] {
    using T = scalar_t;
    T* o = out.data_ptr<T>();
    for (int64_t l = 1; l <= levels; ++l) {
      Rows<const T> in = l == 1 ? Rows<const T>{x.data_ptr<T>(), s.T, s.T}
                                : Rows<const T>{o + s.lv.off[l - 1], s.lv.total, s.lv.len[l - 1]};
      forward_level<T>(in, Rows<T>{o + s.lv.off[l], s.lv.total, s.lv.len[l]}, s.rows, filter.data_ptr<T>(), s.taps);
    }
  });
  return out;
}

// Total gradient G_l of level l's output, for l = levels down to `stop` (G_0 is the input gradient):
// visit(l, G_l) for each; returns G_stop as a [rows, len_stop] tensor when stop < levels.
template <typename T, typename Visit>
Tensor gradient_chain(const T* g, const OctaveSizes& s, const T* f, int64_t stop, const Tensor& like, Visit visit) {
  Tensor cur;
  Rows<const T> G{g + s.lv.off[s.lv.levels], s.lv.total, s.lv.len[s.lv.levels]};  // G_levels = g_levels (a view)
  for (int64_t l = s.lv.levels;; --l) {
    visit(l, G);
    if (l == stop) break;
    // G_{l-1} = back(G_l) + g_{l-1} for l-1 >= 1; back(G_1) is the input gradient
    Tensor next = at::empty({s.rows, s.lv.len[l - 1]}, like.options());
    T* np = next.data_ptr<T>();
    Rows<T> dst{np, s.lv.len[l - 1], s.lv.len[l - 1]};
    if (l - 1 >= 1) {
      Rows<const T> add{g + s.lv.off[l - 1], s.lv.total, s.lv.len[l - 1]};
      backward_level<T>(G, dst, &add, s.rows, f, s.taps);
    } else {
      backward_level<T>(G, dst, nullptr, s.rows, f, s.taps);
    }
    cur = next;
    G = Rows<const T>{np, s.lv.len[l - 1], s.lv.len[l - 1]};
  }
  return cur;
}

Tensor octave_downsample_grad_input_cpu(const Tensor& grad_in, const Tensor& filter_in, int64_t length, int64_t levels) {
  check_octave_tensors(grad_in, filter_in, "grad");
  check_cpu_dtype(grad_in);
  const OctaveSizes s = octave_sizes(with_last(grad_in.sizes(), length), filter_in.numel(), levels);
  TORCH_CHECK(grad_in.size(-1) == s.lv.total, "octave_downsample_grad_input: grad has ", grad_in.size(-1),
              " samples, expected ", s.lv.total, " for length ", length, " and ", levels, " levels");
  const Tensor g = grad_in.contiguous(), filter = filter_in.contiguous();
  Tensor gx;
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "octave_downsample_grad_input_cpu", [&] {
    using T = scalar_t;
    gx = gradient_chain<T>(g.data_ptr<T>(), s, filter.data_ptr<T>(), 0, g, [](int64_t, Rows<const T>) {});
  });
  return gx.view(with_last(grad_in.sizes(), length));
}

// out: the packed forward output (needed as the input of levels >= 2; may be empty when levels == 1)
Tensor octave_downsample_grad_filter_cpu(const Tensor& grad_in, const Tensor& x_in, const Tensor& out_in,
                                         const Tensor& filter_in, int64_t levels) {
  const OctaveSizes s = check_octave_grad_filter(grad_in, x_in, out_in, filter_in, levels);
  check_cpu_dtype(x_in);
  const Tensor g = grad_in.contiguous(), x = x_in.contiguous(), filter = filter_in.contiguous();
  const Tensor out = levels > 1 ? out_in.contiguous() : out_in;
  std::vector<double> acc(s.taps, 0.0);
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "octave_downsample_grad_filter_cpu", [&] {
    using T = scalar_t;
    const T* op = levels > 1 ? out.data_ptr<T>() : nullptr;
    gradient_chain<T>(g.data_ptr<T>(), s, filter.data_ptr<T>(), 1, g, [&](int64_t l, Rows<const T> G) {
      Rows<const T> in = l == 1 ? Rows<const T>{x.data_ptr<T>(), s.T, s.T}
                                : Rows<const T>{op + s.lv.off[l - 1], s.lv.total, s.lv.len[l - 1]};
      filter_grad_level<T>(G, in, s.rows, s.taps, acc);
    });
  });
  Tensor gf = at::empty({s.taps}, filter.options().dtype(at::kDouble));
  std::copy(acc.begin(), acc.end(), gf.data_ptr<double>());
  return gf.to(filter.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(dense_conv, CPU, m) {
  m.impl("octave_downsample", &octave_downsample_cpu);
  m.impl("octave_downsample_grad_input", &octave_downsample_grad_input_cpu);
  m.impl("octave_downsample_grad_filter", &octave_downsample_grad_filter_cpu);
}

}  // namespace dc
