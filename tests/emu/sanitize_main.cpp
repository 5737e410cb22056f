// Sanitizer driver for the emulated CUDA kernels: no torch, built by tests/test_emulator_sanitizers.py with
//   g++ -DDC_CUDA_EMULATOR -fsanitize=address,undefined -fno-sanitize-recover=undefined ...   or
//   g++ -DDC_CUDA_EMULATOR -fsanitize=thread ...
// Every buffer is an exact-size heap allocation, so ASan sees any read or write past a tensor; UBSan
// sees out-of-bounds static shared arrays and misaligned vector loads; TSan (every CUDA thread a fiber,
// happens-before only through barriers and warp ops) sees accesses that no barrier orders.
//
//   sanitize_main kernels [small] [dense|octave|fft|mix|per_sample]
//                                      every project kernel vs a float64 reference, 3 schedules; exit 0
//                                      (small: fewer, smaller shapes, for the ~10x slower TSan build;
//                                      dense / octave / fft / mix / per_sample: only that family)
//   sanitize_main planted <bug>        runs one planted bug; the sanitizer must abort the process:
//                                      halo-past-input | index-past-tile | misaligned-float4 (ASan/UBSan)
//                                      missing-syncthreads | missing-syncwarp (TSan)
//   sanitize_main fixed <bug>          the correct variant of a TSan planted bug: runs clean, exit 0
//   sanitize_main after-errors         emulator errors (divergent barrier, warp deadlock) abandon fibers;
//                                      the correct reductions then still run clean, exit 0
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/dense_conv_kernels.cuh"
#include "cuda/dense_conv_wmma_kernels.cuh"
#include "cuda/fft_conv_kernels.cuh"
#include "cuda/fft_mix_kernels.cuh"
#include "cuda/octave_downsample_kernels.cuh"
#include "cuda/per_sample_conv_kernels.cuh"
#include "planted_bugs.cuh"

namespace {

using dc::ConvSizes;

template <typename T>
std::vector<T> poisoned(size_t n) {
  std::vector<T> v(n);
  if (n) std::memset(v.data(), 0xFF, n * sizeof(T));  // NaN
  return v;
}

std::vector<double> random_values(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> normal;
  std::vector<double> v(n);
  for (double& x : v) x = normal(gen);
  return v;
}

// The three formulas of dense_conv_kernels.cuh, in float64, straight from the definition.
struct Reference {
  std::vector<double> out, grad_impulse, grad_response;
};

Reference reference(const ConvSizes& s, const std::vector<double>& response, const std::vector<double>& impulse,
                    const std::vector<double>& grad) {
  Reference ref{std::vector<double>(s.B * s.Ci * s.Cr * s.Hi * s.Wi), std::vector<double>(s.B * s.Ci * s.Hi * s.Wi),
                std::vector<double>(s.B * s.Cr * s.Hr * s.Wr)};
  for (long long b = 0; b < s.B; ++b)
    for (long long i = 0; i < s.Ci; ++i)
      for (long long r = 0; r < s.Cr; ++r)
        for (long long y = 0; y < s.Hi; ++y)
          for (long long x = 0; x < s.Wi; ++x)
            for (long long p = 0; p < s.Hr && p <= y; ++p)
              for (long long q = 0; q < s.Wr && q <= x; ++q) {
                const double imp = impulse[((b * s.Ci + i) * s.Hi + y - p) * s.Wi + x - q];
                const double resp = response[((b * s.Cr + r) * s.Hr + p) * s.Wr + q];
                const long long o = (((b * s.Ci + i) * s.Cr + r) * s.Hi + y) * s.Wi + x;
                ref.out[o] += imp * resp;
                ref.grad_impulse[((b * s.Ci + i) * s.Hi + y - p) * s.Wi + x - q] += grad[o] * resp;
                ref.grad_response[((b * s.Cr + r) * s.Hr + p) * s.Wr + q] += grad[o] * imp;
              }
  return ref;
}

template <typename T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

// Error bound of a kernel computing in T, relative to the largest reference value.
template <typename T>
constexpr double tolerance() {
  return sizeof(T) == 4 ? 2e-6 : 1e-13;
}

template <typename T>
bool close(const char* what, const std::vector<T>& actual, const std::vector<double>& expected,
           double rel_tol = tolerance<T>()) {
  double scale = 1.0;
  for (double e : expected) scale = std::max(scale, std::abs(e));
  const double tol = rel_tol * scale;
  for (size_t k = 0; k < expected.size(); ++k)
    if (!(std::abs(double(actual[k]) - expected[k]) <= tol)) {  // NaN fails too
      std::printf("  %s: element %zu is %.17g, expected %.17g\n", what, k, double(actual[k]), expected[k]);
      return false;
    }
  return true;
}

// The tensor-core forward in TF32 (dense_conv_wmma_kernels.cuh), per element within the bound that
// tests/test_cuda_emulated_wmma.py derives: (2^-10 + 2^-21 + n 2^-23) S + 2^-24 |out|, n = Hr Wr taps and
// S the forward of |response| and |impulse|.
bool tf32_forward_close(const ConvSizes& s, const std::vector<float>& response, const std::vector<float>& impulse,
                        const std::vector<double>& expected) {
  std::vector<double> abs_response(response.size()), abs_impulse(impulse.size());
  for (size_t k = 0; k < response.size(); ++k) abs_response[k] = std::abs(double(response[k]));
  for (size_t k = 0; k < impulse.size(); ++k) abs_impulse[k] = std::abs(double(impulse[k]));
  const std::vector<double> S = reference(s, abs_response, abs_impulse, std::vector<double>(expected.size())).out;
  auto out = poisoned<float>(expected.size());
  dc::launch_dense_forward_op<float>(response.data(), impulse.data(), out.data(), s, true, nullptr);
  const double per_sum = std::ldexp(1.0, -10) + std::ldexp(1.0, -21) + double(s.Hr * s.Wr) * std::ldexp(1.0, -23);
  for (size_t k = 0; k < expected.size(); ++k)
    if (!(std::abs(double(out[k]) - expected[k]) <= per_sum * S[k] + std::ldexp(std::abs(expected[k]), -24))) {
      std::printf("  forward tf32: element %zu is %.17g, expected %.17g\n", k, double(out[k]), expected[k]);
      return false;
    }
  return true;
}

template <typename T>
bool run_dense(const ConvSizes& s, unsigned seed) {
  const auto response64 = random_values(s.B * s.Cr * s.Hr * s.Wr, seed);
  const auto impulse64 = random_values(s.B * s.Ci * s.Hi * s.Wi, seed + 1);
  const auto grad64 = random_values(s.B * s.Ci * s.Cr * s.Hi * s.Wi, seed + 2);
  const auto response = cast<T>(response64), impulse = cast<T>(impulse64), grad = cast<T>(grad64);
  const Reference ref = reference(s, std::vector<double>(response.begin(), response.end()),
                                  std::vector<double>(impulse.begin(), impulse.end()),
                                  std::vector<double>(grad.begin(), grad.end()));
  auto out = poisoned<T>(ref.out.size());
  auto grad_impulse = poisoned<T>(ref.grad_impulse.size());
  auto grad_response = poisoned<T>(ref.grad_response.size());
  auto workspace = poisoned<unsigned char>(dc::dense_grad_response_workspace_bytes<T>(s));
  dc::launch_dense_forward<T>(response.data(), impulse.data(), out.data(), s, nullptr);
  dc::launch_dense_grad_impulse<T>(grad.data(), response.data(), grad_impulse.data(), s, nullptr);
  dc::launch_dense_grad_response<T>(grad.data(), impulse.data(), grad_response.data(), workspace.data(), s, nullptr);
  bool ok = close("forward", out, ref.out) && close("grad_impulse", grad_impulse, ref.grad_impulse) &&
            close("grad_response", grad_response, ref.grad_response);
  if constexpr (std::is_same_v<T, float>) ok = ok && tf32_forward_close(s, response, impulse, ref.out);
  return ok;
}

// ---- per_sample_conv_kernels.cuh: out[b,l] = sum_i impulse[b,i] (*) weight[b,l,i], causally cropped ----
Reference per_sample_reference(const dc::PerSampleSizes& s, const std::vector<double>& weight,
                               const std::vector<double>& impulse, const std::vector<double>& grad) {
  Reference ref{std::vector<double>(s.B * s.L * s.Hi * s.Wi), std::vector<double>(s.B * s.Ci * s.Hi * s.Wi),
                std::vector<double>(s.B * s.L * s.Ci * s.Hr * s.Wr)};
  for (long long b = 0; b < s.B; ++b)
    for (long long l = 0; l < s.L; ++l)
      for (long long i = 0; i < s.Ci; ++i)
        for (long long y = 0; y < s.Hi; ++y)
          for (long long x = 0; x < s.Wi; ++x)
            for (long long p = 0; p < s.Hr && p <= y; ++p)
              for (long long q = 0; q < s.Wr && q <= x; ++q) {
                const long long in = ((b * s.Ci + i) * s.Hi + y - p) * s.Wi + x - q;
                const long long w = (((b * s.L + l) * s.Ci + i) * s.Hr + p) * s.Wr + q;
                const long long o = ((b * s.L + l) * s.Hi + y) * s.Wi + x;
                ref.out[o] += impulse[in] * weight[w];
                ref.grad_impulse[in] += grad[o] * weight[w];
                ref.grad_response[w] += grad[o] * impulse[in];  // grad_weight
              }
  return ref;
}

template <typename T>
bool run_per_sample(const dc::PerSampleSizes& s, unsigned seed) {
  const auto weight = cast<T>(random_values(s.B * s.L * s.Ci * s.Hr * s.Wr, seed));
  const auto impulse = cast<T>(random_values(s.B * s.Ci * s.Hi * s.Wi, seed + 1));
  const auto grad = cast<T>(random_values(s.B * s.L * s.Hi * s.Wi, seed + 2));
  const Reference ref = per_sample_reference(s, std::vector<double>(weight.begin(), weight.end()),
                                             std::vector<double>(impulse.begin(), impulse.end()),
                                             std::vector<double>(grad.begin(), grad.end()));
  auto out = poisoned<T>(ref.out.size());
  auto grad_impulse = poisoned<T>(ref.grad_impulse.size());
  auto grad_weight = poisoned<T>(ref.grad_response.size());
  auto workspace = poisoned<unsigned char>(dc::per_sample_grad_weight_workspace_bytes<T>(s));
  dc::launch_per_sample_forward<T>(weight.data(), impulse.data(), out.data(), s, nullptr);
  dc::launch_per_sample_grad_impulse<T>(grad.data(), weight.data(), grad_impulse.data(), s, nullptr);
  dc::launch_per_sample_grad_weight<T>(grad.data(), impulse.data(), grad_weight.data(), workspace.data(), s, nullptr);
  return close("per_sample forward", out, ref.out) && close("per_sample grad_impulse", grad_impulse, ref.grad_impulse) &&
         close("per_sample grad_weight", grad_weight, ref.grad_response);
}

// ---- octave_downsample_kernels.cuh: low-pass FIR (odd length N, zero phase) + keep the even samples ----
//   y[m] = sum_n f[n] x[2m + n - M]   (M = (N-1)/2, zeros outside x), m < ceil(len/2), applied `levels` times;
// the levels' outputs are packed per row. Gradients: the adjoint of exactly these loops.
struct OctaveCase {
  std::vector<long long> lead;  // leading (batch) dims, flattened to rows by the caller of the launch functions
  long long T, taps, levels;
  bool halfband;  // zero taps at even offsets != 0 from the centre: the kernels skip them
};

struct OctaveReference {
  std::vector<double> out, grad_x, grad_f;
};

OctaveReference octave_reference(long long rows, long long T, long long levels, const std::vector<double>& x,
                                 const std::vector<double>& f, const std::vector<double>& grad) {
  const long long N = (long long)f.size(), M = (N - 1) / 2;
  const dc::OctaveLevels lv = dc::octave_levels(T, levels);
  const int64_t* len = lv.len;
  const int64_t* off = lv.off;
  const long long total = lv.total;
  OctaveReference ref{std::vector<double>(rows * total), std::vector<double>(rows * T), std::vector<double>(N)};
  for (long long r = 0; r < rows; ++r) {
    // forward: level l reads level l-1 (the input for l = 1)
    std::vector<std::vector<double>> level{std::vector<double>(x.begin() + r * T, x.begin() + (r + 1) * T)};
    for (long long l = 1; l <= levels; ++l) {
      const std::vector<double>& in = level[l - 1];
      std::vector<double> y(len[l]);
      for (long long m = 0; m < len[l]; ++m)
        for (long long n = 0; n < N; ++n) {
          const long long p = 2 * m + n - M;
          if (p >= 0 && p < len[l - 1]) y[m] += f[n] * in[p];
        }
      std::copy(y.begin(), y.end(), ref.out.begin() + r * total + off[l]);
      level.push_back(std::move(y));
    }
    // backward: G_l = grad of level l + the gradient flowing back from level l+1
    std::vector<double> G(grad.begin() + r * total + off[levels], grad.begin() + r * total + off[levels] + len[levels]);
    for (long long l = levels; l >= 1; --l) {
      std::vector<double> back(len[l - 1]);
      for (long long m = 0; m < len[l]; ++m)
        for (long long n = 0; n < N; ++n) {
          const long long p = 2 * m + n - M;
          if (p < 0 || p >= len[l - 1]) continue;
          ref.grad_f[n] += G[m] * level[l - 1][p];
          back[p] += G[m] * f[n];
        }
      if (l > 1)
        for (long long p = 0; p < len[l - 1]; ++p) back[p] += grad[r * total + off[l - 1] + p];
      G = std::move(back);
    }
    std::copy(G.begin(), G.end(), ref.grad_x.begin() + r * T);
  }
  return ref;
}

template <typename T>
bool run_octave(const OctaveCase& c, unsigned seed) {
  using A = typename dc::AccType<T>::type;
  long long rows = 1;
  for (long long d : c.lead) rows *= d;
  const dc::OctaveProblem s{rows, c.taps, dc::octave_levels(c.T, c.levels)};
  auto f64 = random_values(c.taps, seed);
  if (c.halfband)
    for (long long n = 0; n < c.taps; ++n)
      if ((n - (c.taps - 1) / 2) % 2 == 0 && n != (c.taps - 1) / 2) f64[n] = 0.0;
  const auto x = cast<T>(random_values(rows * c.T, seed + 1)), f = cast<T>(f64);
  const auto grad = cast<T>(random_values(rows * s.lv.total, seed + 2));
  const OctaveReference ref = octave_reference(rows, c.T, c.levels, std::vector<double>(x.begin(), x.end()),
                                               std::vector<double>(f.begin(), f.end()),
                                               std::vector<double>(grad.begin(), grad.end()));
  auto out = poisoned<T>(ref.out.size());
  auto grad_x = poisoned<T>(ref.grad_x.size());
  auto grad_f = poisoned<T>(ref.grad_f.size());
  // exact sizes, as octave_downsample_cuda.cu allocates them (no workspace for one level)
  auto work = poisoned<A>(dc::oct::octave_chain_workspace(s));
  auto work2 = poisoned<A>(dc::oct::octave_chain_workspace(s));
  auto partial = poisoned<A>(dc::oct::octave_filter_parts(s) * c.taps);
  dc::launch_octave_forward<T>(x.data(), f.data(), out.data(), s, nullptr);
  dc::launch_octave_grad_input<T>(grad.data(), f.data(), grad_x.data(), work.empty() ? nullptr : work.data(), s,
                                  nullptr);
  dc::launch_octave_grad_filter<T>(grad.data(), x.data(), out.data(), f.data(), grad_f.data(),
                                   work2.empty() ? nullptr : work2.data(), partial.data(), s, nullptr);
  return close("octave forward", out, ref.out) && close("octave grad_input", grad_x, ref.grad_x) &&
         close("octave grad_filter", grad_f, ref.grad_f);
}

const std::pair<dc_emu::Order, uint64_t> kSchedules[] = {
    {dc_emu::Order::forward, 0}, {dc_emu::Order::reverse, 0}, {dc_emu::Order::random, 7}};

int run_dense_kernels(bool small, int& runs) {
  const std::vector<ConvSizes> all_shapes = {
      {1, 1, 1, 5, 7, 3, 3},      // B = 1, Cr = 1, odd sizes
      {2, 2, 3, 17, 65, 9, 17},   // partial tiles, several tap chunks
      {1, 3, 2, 6, 5, 1, 1},      // 1x1 kernel
      {2, 1, 2, 4, 6, 7, 9},      // kernel larger than the image
      {1, 2, 9, 5, 6, 2, 3},      // more responses than one block handles
      {1, 1, 1, 40, 3, 18, 2},    // several row slabs and tap chunks in grad_response
  };
  const std::vector<ConvSizes> small_shapes = {
      {1, 1, 2, 5, 7, 3, 3},      // odd sizes, partial tiles, one tap chunk
      {1, 2, 9, 18, 9, 10, 17},   // more responses than one block, several tap chunks and row slabs
      {1, 1, 1, 4, 6, 7, 9},      // kernel larger than the image, Cr = 1
  };
  const std::vector<ConvSizes>& shapes = small ? small_shapes : all_shapes;
  int failures = 0, count = 0;
  for (const auto& [order, seed] : kSchedules) {
    dc_emu::set_schedule(order, seed);
    for (const ConvSizes& s : shapes) {
      for (int dtype = 0; dtype < 2; ++dtype) {
        const bool ok = dtype == 0 ? run_dense<float>(s, 11) : run_dense<double>(s, 11);
        ++count;
        if (!ok) {
          ++failures;
          std::printf("FAILED %s shape B=%lld Ci=%lld Cr=%lld Hi=%lld Wi=%lld Hr=%lld Wr=%lld order=%d\n",
                      dtype == 0 ? "float" : "double", (long long)s.B, (long long)s.Ci, (long long)s.Cr,
                      (long long)s.Hi, (long long)s.Wi, (long long)s.Hr, (long long)s.Wr, int(order));
        }
      }
    }
  }
  std::printf("dense: %d of %d runs match\n", count - failures, count);
  runs += count;
  return failures;
}

// forward, grad_impulse, grad_weight (partials + reduce) per shape {B, L, Ci, Hi, Wi, Hr, Wr}, float and double
int run_per_sample_kernels(bool small, int& runs) {
  const std::vector<dc::PerSampleSizes> all_shapes = {
      {1, 1, 1, 5, 7, 3, 3},      // B = L = Ci = 1, odd sizes
      {2, 3, 2, 17, 65, 9, 17},   // partial tiles, several tap chunks
      {1, 2, 3, 6, 5, 1, 1},      // 1x1 kernel
      {2, 2, 1, 4, 6, 7, 9},      // kernel larger than the image
      {1, 9, 10, 5, 6, 2, 3},     // L, Ci above one block's channels, uneven chunks
      {1, 5, 3, 40, 3, 18, 2},    // empty grad_weight channels, several row slabs and tap chunks
  };
  const std::vector<dc::PerSampleSizes> small_shapes = {
      {1, 2, 3, 5, 7, 3, 3},      // odd sizes, partial tiles, one tap chunk
      {1, 9, 5, 18, 9, 10, 17},   // more channels than one block, several tap chunks and row slabs
      {1, 1, 1, 4, 6, 7, 9},      // kernel larger than the image, L = Ci = 1
  };
  const std::vector<dc::PerSampleSizes>& shapes = small ? small_shapes : all_shapes;
  int failures = 0, count = 0;
  for (const auto& [order, seed] : kSchedules) {
    dc_emu::set_schedule(order, seed);
    for (const dc::PerSampleSizes& s : shapes) {
      for (int dtype = 0; dtype < 2; ++dtype) {
        const bool ok = dtype == 0 ? run_per_sample<float>(s, 19) : run_per_sample<double>(s, 19);
        ++count;
        if (!ok) {
          ++failures;
          std::printf("FAILED %s per_sample B=%lld L=%lld Ci=%lld Hi=%lld Wi=%lld Hr=%lld Wr=%lld order=%d\n",
                      dtype == 0 ? "float" : "double", (long long)s.B, (long long)s.L, (long long)s.Ci,
                      (long long)s.Hi, (long long)s.Wi, (long long)s.Hr, (long long)s.Wr, int(order));
        }
      }
    }
  }
  std::printf("per_sample: %d of %d runs match\n", count - failures, count);
  runs += count;
  return failures;
}

// forward, grad_input and grad_filter (partials + reduce) per case, float and double
int run_octave_kernels(bool small, int& runs) {
  const std::vector<OctaveCase> all_cases = {
      {{1}, 1, 1, 1, false},        // one sample, one tap
      {{2, 3}, 37, 7, 3, false},    // leading dims 2x3, odd lengths 37 -> 19, 10, 5
      {{2}, 5, 31, 2, false},       // input shorter than the filter (5 -> 3, 2)
      {{1}, 4097, 83, 4, true},     // half-band zero taps; 3 and 2 blocks at levels 1 and 2, partial last blocks
      {{3}, 300, 301, 2, false},    // taps > threads per block (one grad_filter segment), shorter than the filter
      {{1}, 6, 3, 5, false},        // levels down to length 1 (3, 2, 1, 1, 1); 3 taps: 85 grad_filter segments
      {{2, 2}, 2049, 5, 1, false},  // one level, 2 blocks, the second with one output; odd length
      {{2}, 60, 2101, 2, false},    // > 48 KiB of dynamic shared memory in double: every kernel opts in
  };
  const std::vector<OctaveCase> small_cases = {
      {{2, 3}, 37, 7, 3, false},    // leading dims, odd lengths, 3 levels
      {{2}, 5, 31, 2, false},       // input shorter than the filter
      {{1}, 2049, 83, 2, true},     // half-band zero taps, 2 blocks at level 1
      {{1}, 300, 301, 2, false},    // taps > threads per block
  };
  const std::vector<OctaveCase>& cases = small ? small_cases : all_cases;
  int failures = 0, count = 0;
  for (const auto& [order, seed] : kSchedules) {
    dc_emu::set_schedule(order, seed);
    for (const OctaveCase& c : cases) {
      for (int dtype = 0; dtype < 2; ++dtype) {
        const bool ok = dtype == 0 ? run_octave<float>(c, 13) : run_octave<double>(c, 13);
        ++count;
        if (!ok) {
          ++failures;
          std::string lead;
          for (long long d : c.lead) lead += std::to_string(d) + "x";
          std::printf("FAILED %s octave lead=%s T=%lld taps=%lld levels=%lld order=%d\n",
                      dtype == 0 ? "float" : "double", lead.c_str(), c.T, c.taps, c.levels, int(order));
        }
      }
    }
  }
  std::printf("octave: %d of %d runs match\n", count - failures, count);
  runs += count;
  return failures;
}

// The two spectral products of fft_conv_kernels.cuh vs float64 sums of the same products; buffers of
// interleaved complex values at exact sizes.
template <typename T>
bool run_fft(const dc::SpectrumShape& s, unsigned seed) {
  const long long nA = s.nb * s.Ci * s.K, nR = s.nb * s.Cr * s.K, nG = s.nb * s.Ci * s.Cr * s.K;
  const auto a64 = random_values(2 * nA, seed), r64 = random_values(2 * nR, seed + 1), g64 = random_values(2 * nG, seed + 2);
  std::vector<T> A(a64.begin(), a64.end()), R(r64.begin(), r64.end()), G(g64.begin(), g64.end());
  std::vector<double> P_ref(2 * nG), GI_ref(2 * nA, 0.0), GR_ref(2 * nR, 0.0);
  for (long long b = 0; b < s.nb; ++b)
    for (long long i = 0; i < s.Ci; ++i)
      for (long long r = 0; r < s.Cr; ++r)
        for (long long k = 0; k < s.K; ++k) {
          const long long a = (b * s.Ci + i) * s.K + k, w = (b * s.Cr + r) * s.K + k, g = ((b * s.Ci + i) * s.Cr + r) * s.K + k;
          const double ar = double(A[2 * a]), ai = double(A[2 * a + 1]), wr = double(R[2 * w]), wi = double(R[2 * w + 1]);
          const double gr = double(G[2 * g]), gi = double(G[2 * g + 1]);
          P_ref[2 * g] = ar * wr - ai * wi;
          P_ref[2 * g + 1] = ar * wi + ai * wr;
          GI_ref[2 * a] += gr * wr + gi * wi;
          GI_ref[2 * a + 1] += gi * wr - gr * wi;
          GR_ref[2 * w] += gr * ar + gi * ai;
          GR_ref[2 * w + 1] += gi * ar - gr * ai;
        }
  auto P = poisoned<T>(2 * nG), GI = poisoned<T>(2 * nA), GR = poisoned<T>(2 * nR);
  dc::launch_fft_product<T>(A.data(), R.data(), P.data(), s, nullptr);
  dc::launch_fft_correlate<T>(G.data(), A.data(), R.data(), GI.data(), GR.data(), 1.0, s, nullptr);
  return close("fft product", P, P_ref) && close("fft correlate GI", GI, GI_ref) && close("fft correlate GR", GR, GR_ref);
}

int run_fft_kernels(bool small, int& runs) {
  const std::vector<dc::SpectrumShape> all_shapes = {
      {1, 1, 1, 1},      // one bin
      {3, 4, 5, 301},    // the user's channels, K odd, two blocks
      {2, 4, 1, 513},    // Cr = 1, three blocks
      {2, 1, 3, 257},    // Ci = 1
      {1, 3, 9, 37},     // Cr above the responses per thread (float: 2 passes, double: 3)
  };
  const std::vector<dc::SpectrumShape> small_shapes = {{2, 2, 3, 37}, {1, 3, 9, 20}};
  const std::vector<dc::SpectrumShape>& shapes = small ? small_shapes : all_shapes;
  int failures = 0, count = 0;
  for (const auto& [order, seed] : kSchedules) {
    dc_emu::set_schedule(order, seed);
    for (const dc::SpectrumShape& s : shapes) {
      for (int dtype = 0; dtype < 2; ++dtype) {
        const bool ok = dtype == 0 ? run_fft<float>(s, 17) : run_fft<double>(s, 17);
        ++count;
        if (!ok) {
          ++failures;
          std::printf("FAILED %s fft nb=%lld Ci=%lld Cr=%lld K=%lld order=%d\n", dtype == 0 ? "float" : "double",
                      (long long)s.nb, (long long)s.Ci, (long long)s.Cr, (long long)s.K, int(order));
        }
      }
    }
  }
  std::printf("fft: %d of %d runs match\n", count - failures, count);
  runs += count;
  return failures;
}

// The per-bin mix of fft_mix_kernels.cuh and its three gradients vs float64 sums straight from the formulas
// of its header; buffers of interleaved complex values (and the weight-gradient workspace) at exact sizes.
template <typename T>
bool run_mix(const dc::MixSpectra& s, unsigned seed) {
  using Z = std::complex<double>;
  const long long K = s.bins(), nX = s.nb * s.Ci * K, nH = s.nb * s.Cr * K, nG = s.nb * s.L * K;
  const long long nw = s.L * s.Ci * s.Cr;
  const auto X = cast<T>(random_values(2 * nX, seed)), Hs = cast<T>(random_values(2 * nH, seed + 1));
  const auto G = cast<T>(random_values(2 * nG, seed + 2)), a = cast<T>(random_values(nw, seed + 3));
  const double scale = 1.0 / double(s.H * s.W);
  const auto z = [](const std::vector<T>& v, long long i) { return Z(double(v[2 * i]), double(v[2 * i + 1])); };
  std::vector<double> Y_ref(2 * nG), GX_ref(2 * nX), GH_ref(2 * nH), gw_ref(s.nb * nw, 0.0);
  for (long long b = 0; b < s.nb; ++b)
    for (long long n = 0; n < K; ++n) {
      const double w = dc::half_spectrum_weight(n % s.half_width(), s.half_width(), s.has_nyquist());
      const auto x = [&](long long j) { return z(X, (b * s.Ci + j) * K + n); };
      const auto h = [&](long long k) { return z(Hs, (b * s.Cr + k) * K + n); };
      const auto g = [&](long long l) { return z(G, (b * s.L + l) * K + n); };
      const auto weight = [&](long long l, long long j, long long k) { return double(a[(l * s.Ci + j) * s.Cr + k]); };
      for (long long l = 0; l < s.L; ++l) {
        Z y = 0;
        for (long long j = 0; j < s.Ci; ++j)
          for (long long k = 0; k < s.Cr; ++k) {
            y += weight(l, j, k) * x(j) * h(k);
            gw_ref[(b * s.L + l) * s.Ci * s.Cr + j * s.Cr + k] += scale * w * (x(j) * std::conj(g(l)) * h(k)).real();
          }
        Y_ref[2 * ((b * s.L + l) * K + n)] = y.real();
        Y_ref[2 * ((b * s.L + l) * K + n) + 1] = y.imag();
      }
      for (long long j = 0; j < s.Ci; ++j) {
        Z gx = 0;
        for (long long l = 0; l < s.L; ++l)
          for (long long k = 0; k < s.Cr; ++k) gx += weight(l, j, k) * g(l) * std::conj(h(k));
        GX_ref[2 * ((b * s.Ci + j) * K + n)] = gx.real();
        GX_ref[2 * ((b * s.Ci + j) * K + n) + 1] = gx.imag();
      }
      for (long long k = 0; k < s.Cr; ++k) {
        Z gh = 0;
        for (long long l = 0; l < s.L; ++l)
          for (long long j = 0; j < s.Ci; ++j) gh += weight(l, j, k) * std::conj(x(j)) * g(l);
        GH_ref[2 * ((b * s.Cr + k) * K + n)] = gh.real();
        GH_ref[2 * ((b * s.Cr + k) * K + n) + 1] = gh.imag();
      }
    }
  auto Y = poisoned<T>(2 * nG), GX = poisoned<T>(2 * nX), GH = poisoned<T>(2 * nH);
  auto gw = poisoned<double>(s.nb * nw), gw_workspace = poisoned<double>(dc::fft_mix_gw_workspace_elements(s));
  auto forward_workspace = poisoned<T>(dc::fft_mix_forward_workspace_elements<T>(s));
  auto backward_workspace = poisoned<T>(dc::fft_mix_backward_workspace_elements<T>(s));
  dc::launch_fft_mix_forward_weights<T>(a.data(), forward_workspace.data(), s, nullptr);
  dc::launch_fft_mix_forward<T>(X.data(), Hs.data(), forward_workspace.data(), Y.data(), s, nullptr);
  dc::launch_fft_mix_backward_weights<T>(a.data(), backward_workspace.data(), s, nullptr);
  dc::launch_fft_mix_backward<T>(X.data(), Hs.data(), G.data(), backward_workspace.data(), GX.data(), GH.data(),
                                 gw.data(), gw_workspace.data(), scale, 1.0, s, nullptr);
  return close("mix Y", Y, Y_ref) && close("mix GX", GX, GX_ref) && close("mix GH", GH, GH_ref) &&
         close("mix gw", gw, gw_ref, tolerance<T>());  // float64 sums of products computed in T
}

int run_mix_kernels(bool small, int& runs) {
  const std::vector<dc::MixSpectra> all_shapes = {
      // {nb, L, Ci, Cr, H, W}
      {1, 1, 1, 1, 1, 1},    // one bin
      {2, 8, 4, 5, 6, 10},   // the user's channels
      {1, 3, 2, 3, 40, 51},  // W odd (no Nyquist column), two weight-gradient chunks, partial bin blocks
      {2, 1, 3, 1, 5, 8},    // L = 1, Cr = 1
      {1, 9, 2, 9, 3, 4},    // L and Cr above one thread's outputs and one block's responses
  };
  const std::vector<dc::MixSpectra> small_shapes = {{1, 2, 2, 3, 5, 8}, {1, 2, 1, 9, 40, 51}};
  const std::vector<dc::MixSpectra>& shapes = small ? small_shapes : all_shapes;
  int failures = 0, count = 0;
  for (const auto& [order, seed] : kSchedules) {
    dc_emu::set_schedule(order, seed);
    for (const dc::MixSpectra& s : shapes) {
      for (int dtype = 0; dtype < 2; ++dtype) {
        const bool ok = dtype == 0 ? run_mix<float>(s, 23) : run_mix<double>(s, 23);
        ++count;
        if (!ok) {
          ++failures;
          std::printf("FAILED %s mix nb=%lld L=%lld Ci=%lld Cr=%lld H=%lld W=%lld order=%d\n",
                      dtype == 0 ? "float" : "double", (long long)s.nb, (long long)s.L, (long long)s.Ci,
                      (long long)s.Cr, (long long)s.H, (long long)s.W, int(order));
        }
      }
    }
  }
  std::printf("mix: %d of %d runs match\n", count - failures, count);
  runs += count;
  return failures;
}

int run_kernels(bool small, const std::string& only) {
  int failures = 0, runs = 0;
  if (only.empty() || only == "dense") failures += run_dense_kernels(small, runs);
  if (only.empty() || only == "octave") failures += run_octave_kernels(small, runs);
  if (only.empty() || only == "fft") failures += run_fft_kernels(small, runs);
  if (only.empty() || only == "mix") failures += run_mix_kernels(small, runs);
  if (only.empty() || only == "per_sample") failures += run_per_sample_kernels(small, runs);
  std::printf("%d of %d kernel runs match the float64 reference\n", runs - failures, runs);
  return failures ? 1 : 0;
}

// Block sums / warp sums of 1..n: each must be exact (small integers in float).
int run_reduction(const std::string& bug, bool planted) {
  const int nblocks = 2, n = nblocks * dc_planted::kBlock;
  std::vector<float> in(n);
  for (int i = 0; i < n; ++i) in[i] = float(i % 7);
  std::vector<float> out, expected;
  if (bug == "missing-syncthreads") {
    out = poisoned<float>(nblocks);
    dc_planted::launch_block_sum(in.data(), out.data(), n, planted);
    for (int b = 0; b < nblocks; ++b) {
      float sum = 0;
      for (int t = 0; t < dc_planted::kBlock; ++t) sum += in[b * dc_planted::kBlock + t];
      expected.push_back(sum);
    }
  } else if (bug == "missing-syncwarp") {
    out = poisoned<float>(n / 32);
    dc_planted::launch_warp_sum(in.data(), out.data(), nblocks, planted);
    for (int w = 0; w < n / 32; ++w) {
      float sum = 0;
      for (int l = 0; l < 32; ++l) sum += in[w * 32 + l];
      expected.push_back(sum);
    }
  } else {
    std::fprintf(stderr, "unknown planted bug %s\n", bug.c_str());
    return 2;
  }
  const bool ok = out == expected;
  std::printf("%s %s: sums %s\n", planted ? "planted" : "fixed", bug.c_str(), ok ? "correct" : "WRONG");
  if (planted) std::printf("planted bug %s was NOT reported\n", bug.c_str());
  return !planted && !ok ? 1 : 0;
}

int run_after_errors() {
  std::vector<float> out(dc_planted::kBlock);
  int reported = 0;
  for (int k = 0; k < 2; ++k) {
    try {
      k == 0 ? dc_planted::launch_divergent_barrier(out.data()) : dc_planted::launch_warp_deadlock(out.data());
    } catch (const dc_emu::Error&) {
      ++reported;
    }
  }
  std::printf("%d of 2 emulator errors reported\n", reported);
  const int failed = run_reduction("missing-syncthreads", false) + run_reduction("missing-syncwarp", false);
  return reported == 2 && failed == 0 ? 0 : 1;
}

int run_planted(const std::string& bug) {
  if (bug == "missing-syncthreads" || bug == "missing-syncwarp") return run_reduction(bug, true);
  if (bug == "halo-past-input" || bug == "index-past-tile") {
    const int n = 255;                 // two blocks; the second one's halo is in[257], past in[255]
    std::vector<float> in(n + 1, 1.0f), out(n);
    dc_planted::launch_tile_pair_sum(in.data(), out.data(), n,
                                     bug == "halo-past-input" ? dc_planted::kHaloPastInput : dc_planted::kIndexPastTile);
  } else if (bug == "misaligned-float4") {
    std::vector<float> in(4 * 8 + 4, 1.0f), out(8);
    dc_planted::launch_misaligned_float4(in.data(), out.data(), 8, /*use_ldg=*/false);
  } else {
    std::fprintf(stderr, "unknown planted bug %s\n", bug.c_str());
    return 2;
  }
  std::printf("planted bug %s was NOT reported\n", bug.c_str());
  return 0;
}

}  // namespace

// Called by UBSan after each report (ASan reports use the emulator's death callback): name the CUDA thread.
extern "C" void __ubsan_on_report() { dc_emu::describe_current_thread(); }

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "kernels";
  try {
    if (mode == "kernels") {
      bool small = false;
      std::string only;
      for (int i = 2; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "small") small = true;
        else if (arg == "dense" || arg == "octave" || arg == "fft" || arg == "mix" ||
                 arg == "per_sample")
          only = arg;
        else throw std::invalid_argument("unknown kernels option " + arg);
      }
      return run_kernels(small, only);
    }
    if (mode == "planted" && argc > 2) return run_planted(argv[2]);
    if (mode == "fixed" && argc > 2) return run_reduction(argv[2], false);
    if (mode == "after-errors") return run_after_errors();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 3;
  }
  std::fprintf(stderr,
               "usage: %s kernels [small] [dense|octave|fft|mix|per_sample] | planted <bug> | fixed <bug> | "
               "after-errors\n",
               argv[0]);
  return 2;
}
