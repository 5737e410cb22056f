// CPU kernels of dense_conv2d: forward, grad_impulse, grad_response (direct convolution).
// The register-blocked kernels of direct_kernels.inc (AVX-512 or AVX2, chosen at run time) do the
// work; the simple row kernels below are the fallback for CPUs without AVX2+FMA.
//
// out[b, i*Cr+r, y, x]  = sum_{p<=y, q<=x} impulse[b,i,y-p,x-q] * response[b,r,p,q]
// grad_impulse[b,i,y,x] = sum_r sum_{p,q} g[b,i*Cr+r,y+p,x+q] * response[b,r,p,q]   (y+p<Hi, x+q<Wi)
// grad_response[b,r,p,q]= sum_i sum_{y,x} g[b,i*Cr+r,y,x] * impulse[b,i,y-p,x-q]
//
// Every loop bound stops at the causal window, so taps that would only meet zero padding cost
// nothing. Work is split by output rows (or response rows), so each output element is written by
// one task and summed in a fixed order: results do not depend on the thread count.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <torch/library.h>

#include <algorithm>
#include <string>

#include "../checks.h"
#include "direct.h"
#include "huge_pages.h"
#include "../nonfinite.h"
#include "row_kernels.h"

namespace dc {

DirectIsa direct_isa() {
  // torch's choice (ATEN_CPU_CAPABILITY, else what the CPU supports), so one switch lowers both
  // torch's kernels and these. at::native::get_cpu_capability() is not exported; this is its name.
  static const DirectIsa isa = [] {
#if DC_HAVE_DIRECT
    const std::string torch_isa = at::get_cpu_capability();
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (torch_isa == "AVX512" && avx2 && __builtin_cpu_supports("avx512f")) return DirectIsa::avx512;
    if ((torch_isa == "AVX512" || torch_isa == "AVX2") && avx2) return DirectIsa::avx2;
#endif
    return DirectIsa::simple;
  }();
  return isa;
}

void throw_scratch_alloc_failed(size_t bytes) {
  TORCH_CHECK(false, "dense_conv2d: could not allocate ", bytes, " bytes of scratch memory");
  __builtin_unreachable();
}

namespace {

using at::Tensor;


// Row chunks per plane: enough tasks to keep every thread busy when B*Ci is small.
int64_t plane_chunks(const ConvSizes& s) {
  const int64_t planes = s.B * s.Ci, want = 4 * at::get_num_threads();
  if (planes >= want) return 1;
  return max64(1, min64(s.Hi / 8, ceil_div(want, planes)));
}

// Rows per parallel task: enough work per task to amortise scheduling.
int64_t grain_rows(int64_t work_per_row) { return max64(1, 32768 / max64(1, work_per_row)); }

template <typename T>
void forward_rows(const T* response, const T* impulse, T* out, const ConvSizes& s, int64_t begin, int64_t end) {
  const int64_t taps_q = s.Wq();
  for (int64_t row = begin; row < end; ++row) {  // row = (b*Ci + i)*Hi + y
    const int64_t y = row % s.Hi, bi = row / s.Hi, b = bi / s.Ci, i = bi % s.Ci;
    const T* imp = impulse + bi * s.Hi * s.Wi;
    for (int64_t r = 0; r < s.Cr; ++r) {
      T* o = out + (((b * s.Ci + i) * s.Cr + r) * s.Hi + y) * s.Wi;
      std::fill(o, o + s.Wi, T(0));
      const T* resp = response + (b * s.Cr + r) * s.Hr * s.Wr;
      for (int64_t p = 0; p <= min64(y, s.Hr - 1); ++p) {
        const T* imp_row = imp + (y - p) * s.Wi;
        for (int64_t q = 0; q < taps_q; ++q) axpy_row(o + q, resp[p * s.Wr + q], imp_row, s.Wi - q);
      }
    }
  }
}

template <typename T>
void grad_impulse_rows(const T* grad, const T* response, T* grad_impulse, const ConvSizes& s, int64_t begin,
                       int64_t end) {
  const int64_t taps_q = s.Wq();
  for (int64_t row = begin; row < end; ++row) {  // row = (b*Ci + i)*Hi + y
    const int64_t y = row % s.Hi, bi = row / s.Hi, b = bi / s.Ci, i = bi % s.Ci;
    T* gi = grad_impulse + row * s.Wi;
    std::fill(gi, gi + s.Wi, T(0));
    for (int64_t r = 0; r < s.Cr; ++r) {
      const T* g = grad + ((b * s.Ci + i) * s.Cr + r) * s.Hi * s.Wi;
      const T* resp = response + (b * s.Cr + r) * s.Hr * s.Wr;
      for (int64_t p = 0; p < min64(s.Hr, s.Hi - y); ++p) {
        const T* g_row = g + (y + p) * s.Wi;
        for (int64_t q = 0; q < taps_q; ++q) axpy_row(gi, resp[p * s.Wr + q], g_row + q, s.Wi - q);
      }
    }
  }
}

template <typename T>
void grad_response_rows(const T* grad, const T* impulse, T* grad_response, const ConvSizes& s, int64_t begin,
                        int64_t end) {
  for (int64_t row = begin; row < end; ++row) {  // row = (b*Cr + r)*Hr + p
    const int64_t p = row % s.Hr, br = row / s.Hr, b = br / s.Cr, r = br % s.Cr;
    T* gr = grad_response + row * s.Wr;
    for (int64_t q = 0; q < s.Wr; ++q) {
      // Each row's dot product in T, the sum over rows in double: float32 error stays near 1e-7.
      double acc = 0.0;
      if (p < s.Hi && q < s.Wi) {
        for (int64_t i = 0; i < s.Ci; ++i) {
          const T* g = grad + ((b * s.Ci + i) * s.Cr + r) * s.Hi * s.Wi;
          const T* imp = impulse + (b * s.Ci + i) * s.Hi * s.Wi;
          for (int64_t y = p; y < s.Hi; ++y) acc += dot_row(g + y * s.Wi + q, imp + (y - p) * s.Wi, s.Wi - q);
        }
      }
      gr[q] = static_cast<T>(acc);
    }
  }
}

// forward and grad_impulse share one task layout: the direct kernels take tasks (b*Ci + i)*chunks + c
// (row chunk c of plane (b, i)), the simple kernels one output row (b*Ci + i)*Hi + y per task.
// direct(wide, chunks, begin, end) runs the AVX-512 (wide) or AVX2 kernel on [begin, end).
template <typename Direct, typename Simple>
void run_plane_tasks(const ConvSizes& s, const Direct& direct, const Simple& simple) {
#if DC_HAVE_DIRECT
  if (direct_isa() != DirectIsa::simple) {
    const int64_t chunks = plane_chunks(s);
    const bool wide = direct_isa() == DirectIsa::avx512;
    at::parallel_for(0, s.B * s.Ci * chunks, 1,
                     [&](int64_t begin, int64_t end) { direct(wide, chunks, begin, end); });
    return;
  }
#endif
  at::parallel_for(0, s.B * s.Ci * s.Hi, grain_rows(s.Cr * s.Wi * s.Hq() * s.Wq()),
                   simple);
}

void check_cpu(const Tensor& t, const char* name, bool sparse) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, op_name(sparse),
              ": the CPU kernels take float32 or float64; ", name, " is ", t.scalar_type());
}

Tensor dense_forward_cpu(const Tensor& response, const Tensor& impulse) {
  const ConvSizes s = check_forward(response, impulse, false);
  check_cpu(impulse, "impulse", false);
  Tensor out = at::empty({s.B, s.Ci * s.Cr, s.Hi, s.Wi}, impulse.options());
  if (out.numel() == 0) return out;
  advise_huge_pages(out);
  if (s.Hr == 0 || s.Wr == 0) return out.zero_();
  const Tensor resp = response.contiguous(), imp = impulse.contiguous();
  AT_DISPATCH_FLOATING_TYPES(imp.scalar_type(), "dense_conv2d_cpu", [&] {
    const scalar_t *rp = resp.data_ptr<scalar_t>(), *ip = imp.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    run_plane_tasks(
        s,
        [&](bool wide, int64_t chunks, int64_t begin, int64_t end) {
#if DC_HAVE_DIRECT
          if (wide) avx512::forward(rp, ip, op, s, chunks, begin, end);
          else avx2::forward(rp, ip, op, s, chunks, begin, end);
#endif
        },
        [&](int64_t begin, int64_t end) { forward_rows(rp, ip, op, s, begin, end); });
  });
  exact_nonfinite_forward(out, resp, imp);
  return out;
}

Tensor dense_grad_impulse_cpu(const Tensor& grad_out, const Tensor& response, at::IntArrayRef impulse_shape) {
  const ConvSizes s = check_backward(grad_out, response, "response", response.sizes(), impulse_shape, false);
  check_cpu(grad_out, "grad_out", false);
  Tensor grad_impulse = at::empty({s.B, s.Ci, s.Hi, s.Wi}, grad_out.options());
  if (grad_impulse.numel() == 0) return grad_impulse;
  advise_huge_pages(grad_impulse);
  if (s.Cr == 0 || s.Hr == 0 || s.Wr == 0) return grad_impulse.zero_();
  const Tensor g = grad_out.contiguous(), resp = response.contiguous();
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "dense_conv2d_grad_impulse_cpu", [&] {
    const scalar_t *gp = g.data_ptr<scalar_t>(), *rp = resp.data_ptr<scalar_t>();
    scalar_t* op = grad_impulse.data_ptr<scalar_t>();
    run_plane_tasks(
        s,
        [&](bool wide, int64_t chunks, int64_t begin, int64_t end) {
#if DC_HAVE_DIRECT
          if (wide) avx512::grad_impulse(gp, rp, op, s, chunks, begin, end);
          else avx2::grad_impulse(gp, rp, op, s, chunks, begin, end);
#endif
        },
        [&](int64_t begin, int64_t end) { grad_impulse_rows(gp, rp, op, s, begin, end); });
  });
  exact_nonfinite_grad_impulse(grad_impulse, g, resp);
  return grad_impulse;
}

Tensor dense_grad_response_cpu(const Tensor& grad_out, const Tensor& impulse, at::IntArrayRef response_shape) {
  const ConvSizes s = check_backward(grad_out, impulse, "impulse", response_shape, impulse.sizes(), false);
  check_cpu(grad_out, "grad_out", false);
  Tensor grad_response = at::empty({s.B, s.Cr, s.Hr, s.Wr}, grad_out.options());
  if (grad_response.numel() == 0) return grad_response;
  if (s.Ci == 0 || s.Hi == 0 || s.Wi == 0) return grad_response.zero_();
  const Tensor g = grad_out.contiguous(), imp = impulse.contiguous();
  AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "dense_conv2d_grad_response_cpu", [&] {
#if DC_HAVE_DIRECT
    if (direct_isa() != DirectIsa::simple) {
      const int64_t groups = response_groups(s.Cr);
      const bool wide = direct_isa() == DirectIsa::avx512;
      at::parallel_for(0, s.B * groups, 1, [&](int64_t begin, int64_t end) {
        const scalar_t *gp = g.data_ptr<scalar_t>(), *ip = imp.data_ptr<scalar_t>();
        scalar_t* op = grad_response.data_ptr<scalar_t>();
        if (wide) avx512::grad_response(gp, ip, op, s, begin, end);
        else avx2::grad_response(gp, ip, op, s, begin, end);
      });
      return;
    }
#endif
    at::parallel_for(0, s.B * s.Cr * s.Hr, grain_rows(s.Ci * s.Hi * s.Wi * s.Wq()),
                     [&](int64_t begin, int64_t end) {
                       grad_response_rows(g.data_ptr<scalar_t>(), imp.data_ptr<scalar_t>(),
                                          grad_response.data_ptr<scalar_t>(), s, begin, end);
                     });
  });
  exact_nonfinite_grad_response(grad_response, g, imp);
  return grad_response;
}

}  // namespace

TORCH_LIBRARY_IMPL(dense_conv, CPU, m) {
  m.impl("dense_conv2d", &dense_forward_cpu);
  m.impl("dense_conv2d_grad_impulse", &dense_grad_impulse_cpu);
  m.impl("dense_conv2d_grad_response", &dense_grad_response_cpu);
}

}  // namespace dc
