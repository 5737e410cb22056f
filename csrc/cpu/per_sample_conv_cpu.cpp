// CPU kernels of per_sample_conv2d (dynamic convolution): forward, grad_impulse, grad_weight.
// The register-blocked kernels of direct_kernels.inc (AVX-512 or AVX2, the dense ops' choice) do the
// work; the simple row kernels below are the fallback for CPUs without AVX2+FMA.
//
// out[b,l,y,x]            = sum_i sum_{p<=y, q<=x} impulse[b,i,y-p,x-q] * weight[b,l,i,p,q]
// grad_impulse[b,i,y,x]   = sum_l sum_{p,q} g[b,l,y+p,x+q] * weight[b,l,i,p,q]   (y+p<Hi, x+q<Wi)
// grad_weight[b,l,i,p,q]  = sum_{y>=p, x>=q} g[b,l,y,x] * impulse[b,i,y-p,x-q]   (0 for p>=Hi or q>=Wi)
//
// Loop bounds stop at the causal window. Each output element is written by one task and summed in a
// fixed order (no atomics), so results do not depend on the thread count.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "../checks.h"
#include "../nonfinite.h"
#include "direct.h"
#include "huge_pages.h"
#include "row_kernels.h"

namespace dc {
namespace {

using at::Tensor;

constexpr const char* kOp = "per_sample_conv2d";

// Row chunks per task group: enough tasks to keep every thread busy when there are few groups.
int64_t row_chunks(int64_t groups, int64_t Hi) {
  const int64_t want = 4 * at::get_num_threads();
  if (groups >= want) return 1;
  return max64(1, min64(Hi / 8, ceil_div(want, groups)));
}

// Rows per parallel task of the simple kernels: enough work per task to amortise scheduling.
int64_t grain_rows(int64_t work_per_row) { return max64(1, 32768 / max64(1, work_per_row)); }

#if DC_HAVE_DIRECT
bool use_direct() { return direct_isa() != DirectIsa::simple; }
#endif

template <typename T>
void forward_rows(const T* weight, const T* impulse, T* out, const PerSampleSizes& s, int64_t begin, int64_t end) {
  for (int64_t row = begin; row < end; ++row) {  // row = (b*L + l)*Hi + y
    const int64_t y = row % s.Hi, bl = row / s.Hi, b = bl / s.L;
    T* o = out + row * s.Wi;
    std::fill(o, o + s.Wi, T(0));
    for (int64_t i = 0; i < s.Ci; ++i) {
      const T* imp = impulse + (b * s.Ci + i) * s.Hi * s.Wi;
      const T* w = weight + (bl * s.Ci + i) * s.Hr * s.Wr;
      for (int64_t p = 0; p <= min64(y, s.Hq() - 1); ++p)
        for (int64_t q = 0; q < s.Wq(); ++q) axpy_row(o + q, w[p * s.Wr + q], imp + (y - p) * s.Wi, s.Wi - q);
    }
  }
}

template <typename T>
void grad_impulse_rows(const T* grad, const T* weight, T* grad_impulse, const PerSampleSizes& s, int64_t begin,
                       int64_t end) {
  for (int64_t row = begin; row < end; ++row) {  // row = (b*Ci + i)*Hi + y
    const int64_t y = row % s.Hi, bi = row / s.Hi, b = bi / s.Ci, i = bi % s.Ci;
    T* gi = grad_impulse + row * s.Wi;
    std::fill(gi, gi + s.Wi, T(0));
    for (int64_t l = 0; l < s.L; ++l) {
      const T* g = grad + (b * s.L + l) * s.Hi * s.Wi;
      const T* w = weight + ((b * s.L + l) * s.Ci + i) * s.Hr * s.Wr;
      for (int64_t p = 0; p < min64(s.Hr, s.Hi - y); ++p)
        for (int64_t q = 0; q < s.Wq(); ++q) axpy_row(gi, w[p * s.Wr + q], g + (y + p) * s.Wi + q, s.Wi - q);
    }
  }
}

template <typename T>
void grad_weight_rows(const T* grad, const T* impulse, T* grad_weight, const PerSampleSizes& s, int64_t begin,
                      int64_t end) {
  for (int64_t row = begin; row < end; ++row) {  // row = ((b*L + l)*Ci + i)*Hr + p
    const int64_t p = row % s.Hr, bli = row / s.Hr, i = bli % s.Ci, bl = bli / s.Ci, b = bl / s.L;
    const T* g = grad + bl * s.Hi * s.Wi;
    const T* imp = impulse + (b * s.Ci + i) * s.Hi * s.Wi;
    T* gw = grad_weight + row * s.Wr;
    for (int64_t q = 0; q < s.Wr; ++q) {
      // Each row's dot product in T, the sum over rows in double, as in the direct kernels.
      double acc = 0.0;
      if (p < s.Hi && q < s.Wi)
        for (int64_t y = p; y < s.Hi; ++y) acc += dot_row(g + y * s.Wi + q, imp + (y - p) * s.Wi, s.Wi - q);
      gw[q] = static_cast<T>(acc);
    }
  }
}

void check_cpu(const Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, kOp,
              ": the CPU kernels take float32 or float64; ", name, " is ", t.scalar_type());
}

Tensor per_sample_forward_cpu(const Tensor& weight, const Tensor& impulse) {
  const PerSampleSizes s = check_per_sample_forward(weight, impulse);
  check_cpu(impulse, "impulse");
  Tensor out = at::empty({s.B, s.L, s.Hi, s.Wi}, impulse.options());
  if (out.numel() == 0) return out;
  advise_huge_pages(out);
  if (s.Ci == 0 || s.Hr == 0 || s.Wr == 0) return out.zero_();
  const Tensor w = weight.contiguous(), imp = impulse.contiguous();
  AT_DISPATCH_FLOATING_TYPES(imp.scalar_type(), "per_sample_conv2d_cpu", [&] {
    const scalar_t *wp = w.data_ptr<scalar_t>(), *ip = imp.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
#if DC_HAVE_DIRECT
    if (use_direct()) {
      const int64_t groups = s.B * response_groups(s.L), chunks = row_chunks(groups, s.Hi);
      const bool wide = direct_isa() == DirectIsa::avx512;
      at::parallel_for(0, groups * chunks, 1, [&](int64_t begin, int64_t end) {
        if (wide) avx512::per_sample_forward(wp, ip, op, s, chunks, begin, end);
        else avx2::per_sample_forward(wp, ip, op, s, chunks, begin, end);
      });
      return;
    }
#endif
    at::parallel_for(0, s.B * s.L * s.Hi, grain_rows(s.Ci * s.Wi * s.Hq() * s.Wq()),
                     [&](int64_t begin, int64_t end) { forward_rows(wp, ip, op, s, begin, end); });
  });
  exact_nonfinite_per_sample_forward(out, w, imp);
  return out;
}

Tensor per_sample_grad_impulse_cpu(const Tensor& grad_out, const Tensor& weight, at::IntArrayRef impulse_shape) {
  const PerSampleSizes s = check_per_sample_backward(grad_out, weight, "weight", weight.sizes(), impulse_shape);
  check_cpu(grad_out, "grad_out");
  Tensor grad_impulse = at::empty({s.B, s.Ci, s.Hi, s.Wi}, grad_out.options());
  if (grad_impulse.numel() == 0) return grad_impulse;
  advise_huge_pages(grad_impulse);
  if (s.L == 0 || s.Hr == 0 || s.Wr == 0) return grad_impulse.zero_();
  const Tensor g = grad_out.contiguous(), w = weight.contiguous();
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "per_sample_conv2d_grad_impulse_cpu", [&] {
    const scalar_t *gp = g.data_ptr<scalar_t>(), *wp = w.data_ptr<scalar_t>();
    scalar_t* op = grad_impulse.data_ptr<scalar_t>();
#if DC_HAVE_DIRECT
    if (use_direct()) {
      const int64_t groups = s.B * response_groups(s.Ci), chunks = row_chunks(groups, s.Hi);
      const bool wide = direct_isa() == DirectIsa::avx512;
      at::parallel_for(0, groups * chunks, 1, [&](int64_t begin, int64_t end) {
        if (wide) avx512::per_sample_grad_impulse(gp, wp, op, s, chunks, begin, end);
        else avx2::per_sample_grad_impulse(gp, wp, op, s, chunks, begin, end);
      });
      return;
    }
#endif
    at::parallel_for(0, s.B * s.Ci * s.Hi, grain_rows(s.L * s.Wi * s.Hq() * s.Wq()),
                     [&](int64_t begin, int64_t end) { grad_impulse_rows(gp, wp, op, s, begin, end); });
  });
  exact_nonfinite_per_sample_grad_impulse(grad_impulse, g, w);
  return grad_impulse;
}

Tensor per_sample_grad_weight_cpu(const Tensor& grad_out, const Tensor& impulse, at::IntArrayRef weight_shape) {
  const PerSampleSizes s = check_per_sample_backward(grad_out, impulse, "impulse", weight_shape, impulse.sizes());
  check_cpu(grad_out, "grad_out");
  Tensor grad_weight = at::empty({s.B, s.L, s.Ci, s.Hr, s.Wr}, grad_out.options());
  if (grad_weight.numel() == 0) return grad_weight;
  if (s.Hi == 0 || s.Wi == 0) return grad_weight.zero_();
  const Tensor g = grad_out.contiguous(), imp = impulse.contiguous();
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "per_sample_conv2d_grad_weight_cpu", [&] {
    const scalar_t *gp = g.data_ptr<scalar_t>(), *ip = imp.data_ptr<scalar_t>();
    scalar_t* op = grad_weight.data_ptr<scalar_t>();
#if DC_HAVE_DIRECT
    if (use_direct()) {
      const bool wide = direct_isa() == DirectIsa::avx512;
      at::parallel_for(0, s.B * response_groups(s.L) * s.Ci, 1, [&](int64_t begin, int64_t end) {
        if (wide) avx512::per_sample_grad_weight(gp, ip, op, s, begin, end);
        else avx2::per_sample_grad_weight(gp, ip, op, s, begin, end);
      });
      return;
    }
#endif
    at::parallel_for(0, s.B * s.L * s.Ci * s.Hr, grain_rows(s.Hi * s.Wi * s.Wq()),
                     [&](int64_t begin, int64_t end) { grad_weight_rows(gp, ip, op, s, begin, end); });
  });
  exact_nonfinite_per_sample_grad_weight(grad_weight, g, imp);
  return grad_weight;
}

}  // namespace

TORCH_LIBRARY_IMPL(dense_conv, CPU, m) {
  m.impl("per_sample_conv2d", &per_sample_forward_cpu);
  m.impl("per_sample_conv2d_grad_impulse", &per_sample_grad_impulse_cpu);
  m.impl("per_sample_conv2d_grad_weight", &per_sample_grad_weight_cpu);
}

}  // namespace dc
