// Test-only bridge between pytest and the CUDA kernel headers compiled for the CPU emulator.
//
// Built by tests/emu/harness.py with plain g++ (-DDC_CUDA_EMULATOR) into a small shared library with a
// C ABI, loaded through ctypes: of torch only c10's Half and BFloat16 headers (the 16-bit types the kernels
// are instantiated with). Every binding runs one
// host launch function on raw pointers that the Python side took from CPU tensors; errors come back
// as a message (dc_emu_last_error) that Python raises as RuntimeError.
//
// To cover a new kernel header: include it here and add one DC_EMU_BINDING per launch function.
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <dlfcn.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/dense_conv_kernels.cuh"
#include "cuda/dense_conv_wmma_kernels.cuh"
#include "cuda/fft_conv_kernels.cuh"
#include "cuda/fft_mix_kernels.cuh"
#include "cuda/nonfinite_kernels.cuh"
#include "cuda/octave_downsample_kernels.cuh"
#include "cuda/per_sample_conv_kernels.cuh"
#include "planted_bugs.cuh"
#include "planted_wmma_bugs.cuh"
#include "selftest_kernels.cuh"

namespace {

std::string last_error;

template <typename F>
int guarded(F&& body) {
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
    return 1;
  }
}

// dtype codes shared with harness.py (DTYPE_CODES). Each binding instantiates its launch function for the
// dtypes that the op's dispatch in csrc/cuda/*.cu accepts (tests/test_cuda_emulated_coverage.py checks it):
//   with_scalar_type           AT_DISPATCH_FLOATING_TYPES                                float, double
//   with_scalar_type_and_half  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16)  ... and c10::Half,
//                              c10::BFloat16: the extension's own 16-bit types (same rounding as on the GPU)
template <typename F>
void with_scalar_type(int dtype, F&& body) {
  if (dtype == 0) body(float{});
  else if (dtype == 1) body(double{});
  else throw std::runtime_error("harness: unsupported dtype code " + std::to_string(dtype));
}

template <typename F>
void with_scalar_type_and_half(int dtype, F&& body) {
  if (dtype == 2) body(c10::Half{});
  else if (dtype == 3) body(c10::BFloat16{});
  else with_scalar_type(dtype, body);
}

std::string joined_lines(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  return text;
}

dc::ConvSizes conv_sizes(const int64_t* s) { return dc::ConvSizes{s[0], s[1], s[2], s[3], s[4], s[5], s[6]}; }

// sizes = {B, L, Ci, Hi, Wi, Hr, Wr}
dc::PerSampleSizes per_sample_sizes(const int64_t* s) {
  return dc::PerSampleSizes{s[0], s[1], s[2], s[3], s[4], s[5], s[6]};
}

// sizes = {rows, T, taps, levels}
dc::OctaveProblem octave_problem(const int64_t* sz) { return {sz[0], sz[2], dc::octave_levels(sz[1], sz[3])}; }

}  // namespace

#define DC_EMU_BINDING(name, params, ...) \
  extern "C" int name params { return guarded([&] { __VA_ARGS__; }); }

extern "C" const char* dc_emu_last_error() { return last_error.c_str(); }

DC_EMU_BINDING(dc_emu_set_schedule, (int order, uint64_t seed),
               dc_emu::set_schedule(static_cast<dc_emu::Order>(order), seed))

// Kernel coverage: the kernels launched since the last clear, and every function compiled into this library
// (demangled names, one a line).
extern "C" const char* dc_emu_executed_kernels() {
  static std::string text;
  text = joined_lines({dc_emu::executed_kernels().begin(), dc_emu::executed_kernels().end()});
  return text.c_str();
}
extern "C" const char* dc_emu_defined_functions() {
  static const std::string text = joined_lines(dc_emu::defined_functions(reinterpret_cast<const void*>(&joined_lines)));
  return text.c_str();
}
DC_EMU_BINDING(dc_emu_clear_executed_kernels, (), dc_emu::clear_executed_kernels())

#if defined(DC_EMU_COUNT)
// Counting build (tests/emu/counters.h): start counting (sample: per-dimension block sample size, 0 = all),
// register a global buffer (the binding's tensors; harness.py resets them before each binding call), read the
// launches' counts (one line per launch, tab-separated; the last field lists the basic blocks entered as
// offset-in-this-library:entries), stop.
DC_EMU_BINDING(dc_emu_count_start, (int sample),
               dc_emu::counter() = dc_emu::Counter{}; dc_emu::counter().sample = sample;
               dc_emu::counting_enabled = true)
DC_EMU_BINDING(dc_emu_count_global, (const void* p, int64_t bytes),
               dc_emu::counter().global_ranges.push_back({uintptr_t(p), uintptr_t(p) + size_t(bytes)}))
DC_EMU_BINDING(dc_emu_count_reset_globals, (), dc_emu::counter().global_ranges.clear())
DC_EMU_BINDING(dc_emu_count_stop, (), dc_emu::counting_enabled = false)
extern "C" const char* dc_emu_count_results() {
  static std::string text;
  text.clear();
  Dl_info self;
  dladdr(reinterpret_cast<const void*>(&dc_emu_count_results), &self);
  const uintptr_t base = reinterpret_cast<uintptr_t>(self.dli_fbase);
  for (const dc_emu::LaunchCounts& l : dc_emu::counter().launches) {
    char numbers[512];
    std::snprintf(numbers, sizeof numbers,
                  "\t%u %u %u\t%u %u %u\t%zu\t%llu\t%llu"
                  "\t%.17g\t%.17g\t%.17g\t%.17g\t%.17g\t%.17g\t%.17g\t%.17g\t%.17g\t",
                  l.grid[0], l.grid[1], l.grid[2], l.block[0], l.block[1], l.block[2], l.smem,
                  (unsigned long long)l.blocks_total, (unsigned long long)l.blocks_emulated, l.shared_requests,
                  l.shared_wavefronts, l.global_load_requests, l.global_load_sectors, l.global_store_requests,
                  l.global_store_sectors, l.dram_sectors, l.tensor_fma, l.shared_conflict_free_wavefronts);
    text += l.kernel + numbers;
    for (const auto& [pc, entries] : l.block_entries) {
      std::snprintf(numbers, sizeof numbers, "%zx:%.17g ", size_t(pc - base), entries);
      text += numbers;
    }
    text += "\n";
  }
  return text.c_str();
}
#endif

namespace {

// A buffer a binding allocates for the kernels (a workspace), poisoned with `fill`; in the counting build it is
// global memory of the launch, like the tensors that Python passes.
template <typename T>
std::vector<T> launch_buffer(size_t n, T fill) {
  std::vector<T> buffer(n, fill);
#if defined(DC_EMU_COUNT)
  dc_emu::counter().global_ranges.push_back({uintptr_t(buffer.data()), uintptr_t(buffer.data() + n)});
#endif
  return buffer;
}

}  // namespace

// ---- csrc/cuda/dense_conv_kernels.cuh -------------------------------------------------------
// ---- and csrc/cuda/dense_conv_wmma_kernels.cuh (the op's forward picks the kernel) ---------
DC_EMU_BINDING(dc_emu_dense_forward, (int dtype, const void* response, const void* impulse, void* out, const int64_t* shape,
                                      int allow_tf32),
               with_scalar_type_and_half(dtype, [&](auto zero) {
                 using T = decltype(zero);
                 dc::launch_dense_forward_op<T>(static_cast<const T*>(response), static_cast<const T*>(impulse),
                                                static_cast<T*>(out), conv_sizes(shape), allow_tf32 != 0, nullptr);
               }))
DC_EMU_BINDING(dc_emu_dense_grad_impulse, (int dtype, const void* grad_out, const void* response, void* grad_impulse, const int64_t* shape),
               with_scalar_type_and_half(dtype, [&](auto zero) {
                 using T = decltype(zero);
                 dc::launch_dense_grad_impulse<T>(static_cast<const T*>(grad_out), static_cast<const T*>(response),
                                                  static_cast<T*>(grad_impulse), conv_sizes(shape), nullptr);
               }))
DC_EMU_BINDING(dc_emu_dense_grad_response, (int dtype, const void* grad_out, const void* impulse, void* grad_response, const int64_t* shape),
               with_scalar_type_and_half(dtype, [&](auto zero) {
                 using T = decltype(zero);
                 const dc::ConvSizes s = conv_sizes(shape);
                 // Exact size and poisoned, like every buffer the kernels get.
                 auto workspace = launch_buffer<unsigned char>(dc::dense_grad_response_workspace_bytes<T>(s), 0xFF);
                 dc::launch_dense_grad_response<T>(static_cast<const T*>(grad_out), static_cast<const T*>(impulse),
                                                   static_cast<T*>(grad_response), workspace.data(), s, nullptr);
               }))

// ---- csrc/cuda/per_sample_conv_kernels.cuh --------------------------------------------------
DC_EMU_BINDING(dc_emu_per_sample_forward, (int dtype, const void* weight, const void* impulse, void* out, const int64_t* shape),
               with_scalar_type_and_half(dtype, [&](auto zero) {
                 using T = decltype(zero);
                 dc::launch_per_sample_forward<T>(static_cast<const T*>(weight), static_cast<const T*>(impulse),
                                                  static_cast<T*>(out), per_sample_sizes(shape), nullptr);
               }))
DC_EMU_BINDING(dc_emu_per_sample_grad_impulse, (int dtype, const void* grad_out, const void* weight, void* grad_impulse, const int64_t* shape),
               with_scalar_type_and_half(dtype, [&](auto zero) {
                 using T = decltype(zero);
                 dc::launch_per_sample_grad_impulse<T>(static_cast<const T*>(grad_out), static_cast<const T*>(weight),
                                                       static_cast<T*>(grad_impulse), per_sample_sizes(shape), nullptr);
               }))
// workspace: per_sample_grad_weight_workspace_bytes (dc_emu_per_sample_grad_weight_plan's plan[4]) bytes
DC_EMU_BINDING(dc_emu_per_sample_grad_weight, (int dtype, const void* grad_out, const void* impulse, void* grad_weight,
                                               void* workspace, const int64_t* shape),
               with_scalar_type_and_half(dtype, [&](auto zero) {
                 using T = decltype(zero);
                 dc::launch_per_sample_grad_weight<T>(static_cast<const T*>(grad_out), static_cast<const T*>(impulse),
                                                      static_cast<T*>(grad_weight), workspace, per_sample_sizes(shape),
                                                      nullptr);
               }))
// The grad_weight plan (float's): {slabs, lc, ic, partial blocks, float workspace bytes, double workspace bytes}.
DC_EMU_BINDING(dc_emu_per_sample_grad_weight_plan, (const int64_t* shape, int64_t* plan),
               const dc::PerSampleSizes s = per_sample_sizes(shape);
               const dc::GradWeightPlan p = dc::grad_weight_plan<float>(s);
               plan[0] = p.slabs; plan[1] = p.lc; plan[2] = p.ic;
               plan[3] = dc::per_sample_grad_weight_partial_config<float>(s, p).blocks_x;
               plan[4] = (int64_t)dc::per_sample_grad_weight_workspace_bytes<float>(s);
               plan[5] = (int64_t)dc::per_sample_grad_weight_workspace_bytes<double>(s))

// ---- csrc/cuda/nonfinite_kernels.cuh ---------------------------------------------------------
// op: 0 forward, 1 grad_impulse, 2 grad_response (grad_weight); first, second: the launch function's two inputs;
// result is recomputed in place where checksum (float, double for dtype 1) is non-finite.
DC_EMU_BINDING(dc_emu_exact_dense, (int op, int dtype, const void* first, const void* second, void* result,
                                    const void* checksum, const int64_t* shape),
               with_scalar_type_and_half(dtype, [&](auto zero) {
                 using T = decltype(zero);
                 using A = typename dc::AccType<T>::type;
                 const T *x = static_cast<const T*>(first), *y = static_cast<const T*>(second);
                 T* r = static_cast<T*>(result);
                 const A* c = static_cast<const A*>(checksum);
                 const dc::ConvSizes s = conv_sizes(shape);
                 if (op == 0) dc::launch_exact_dense_forward<T>(x, y, r, c, s, nullptr);
                 else if (op == 1) dc::launch_exact_dense_grad_impulse<T>(x, y, r, c, s, nullptr);
                 else dc::launch_exact_dense_grad_response<T>(x, y, r, c, s, nullptr);
               }))
DC_EMU_BINDING(dc_emu_exact_per_sample, (int op, int dtype, const void* first, const void* second, void* result,
                                         const void* checksum, const int64_t* shape),
               with_scalar_type_and_half(dtype, [&](auto zero) {
                 using T = decltype(zero);
                 using A = typename dc::AccType<T>::type;
                 const T *x = static_cast<const T*>(first), *y = static_cast<const T*>(second);
                 T* r = static_cast<T*>(result);
                 const A* c = static_cast<const A*>(checksum);
                 const dc::PerSampleSizes s = per_sample_sizes(shape);
                 if (op == 0) dc::launch_exact_per_sample_forward<T>(x, y, r, c, s, nullptr);
                 else if (op == 1) dc::launch_exact_per_sample_grad_impulse<T>(x, y, r, c, s, nullptr);
                 else dc::launch_exact_per_sample_grad_weight<T>(x, y, r, c, s, nullptr);
               }))
// dense_mix_conv2d; shape = {B, Ci, Cr, Hi, Wi, Hr, Wr, L}; grad_weight_per_sample is float64 for every dtype.
DC_EMU_BINDING(dc_emu_exact_mix_forward, (int dtype, const void* response, const void* impulse, const void* weight,
                                          void* out, const void* checksum, const int64_t* shape),
               with_scalar_type_and_half(dtype, [&](auto zero) {
                 using T = decltype(zero);
                 dc::launch_exact_mix_forward<T>(
                     static_cast<const T*>(response), static_cast<const T*>(impulse), static_cast<const T*>(weight),
                     static_cast<T*>(out), static_cast<const typename dc::AccType<T>::type*>(checksum),
                     conv_sizes(shape), shape[7], nullptr);
               }))
DC_EMU_BINDING(dc_emu_exact_mix_backward, (int dtype, const void* grad_out, const void* response, const void* impulse,
                                           const void* weight, void* grad_response, void* grad_impulse,
                                           void* grad_weight_per_sample, const void* checksum, const int64_t* shape),
               with_scalar_type_and_half(dtype, [&](auto zero) {
                 using T = decltype(zero);
                 dc::launch_exact_mix_backward<T>(
                     static_cast<const T*>(grad_out), static_cast<const T*>(response), static_cast<const T*>(impulse),
                     static_cast<const T*>(weight), static_cast<T*>(grad_response), static_cast<T*>(grad_impulse),
                     static_cast<double*>(grad_weight_per_sample),
                     static_cast<const typename dc::AccType<T>::type*>(checksum), conv_sizes(shape), shape[7],
                     nullptr);
               }))

// ---- csrc/cuda/fft_conv_kernels.cuh ---------------------------------------------------------
// sizes = {nb, Ci, Cr, K}; spectra are interleaved complex of the dtype (complex64 / complex128 tensors)
DC_EMU_BINDING(dc_emu_fft_product, (int dtype, const void* A, const void* R, void* P, const int64_t* sz),
               with_scalar_type(dtype, [&](auto zero) {
                 using T = decltype(zero);
                 dc::launch_fft_product<T>(static_cast<const T*>(A), static_cast<const T*>(R), static_cast<T*>(P),
                                           dc::SpectrumShape{sz[0], sz[1], sz[2], sz[3]}, nullptr);
               }))
DC_EMU_BINDING(dc_emu_fft_correlate, (int dtype, const void* G, const void* A, const void* R, void* GI, void* GR,
                                      double gr_scale, const int64_t* sz),
               with_scalar_type(dtype, [&](auto zero) {
                 using T = decltype(zero);
                 dc::launch_fft_correlate<T>(static_cast<const T*>(G), static_cast<const T*>(A),
                                             static_cast<const T*>(R), static_cast<T*>(GI), static_cast<T*>(GR),
                                             gr_scale, dc::SpectrumShape{sz[0], sz[1], sz[2], sz[3]}, nullptr);
               }))

// ---- csrc/cuda/fft_mix_kernels.cuh ----------------------------------------------------------
// sizes = {nb, L, Ci, Cr, H, W}; spectra [nb, channels, H * (W / 2 + 1)] interleaved complex of the dtype;
// gw [nb, L, Ci, Cr] float64. The workspaces are allocated here, of the launches' sizes, poisoned.
DC_EMU_BINDING(dc_emu_fft_mix_forward, (int dtype, const void* X, const void* Hs, const void* a, void* Y,
                                        const int64_t* sz),
               with_scalar_type(dtype, [&](auto zero) {
                 using T = decltype(zero);
                 const dc::MixSpectra s{sz[0], sz[1], sz[2], sz[3], sz[4], sz[5]};
                 auto workspace = launch_buffer<T>(dc::fft_mix_forward_workspace_elements<T>(s), T(std::nan("")));
                 dc::launch_fft_mix_forward_weights<T>(static_cast<const T*>(a), workspace.data(), s, nullptr);
                 dc::launch_fft_mix_forward<T>(static_cast<const T*>(X), static_cast<const T*>(Hs), workspace.data(),
                                               static_cast<T*>(Y), s, nullptr);
               }))
DC_EMU_BINDING(dc_emu_fft_mix_backward, (int dtype, const void* X, const void* Hs, const void* G, const void* a,
                                         void* GX, void* GH, double* gw, double scale, double gh_scale,
                                         const int64_t* sz),
               with_scalar_type(dtype, [&](auto zero) {
                 using T = decltype(zero);
                 const dc::MixSpectra s{sz[0], sz[1], sz[2], sz[3], sz[4], sz[5]};
                 auto workspace = launch_buffer<T>(dc::fft_mix_backward_workspace_elements<T>(s), T(std::nan("")));
                 auto gw_workspace = launch_buffer<double>(dc::fft_mix_gw_workspace_elements(s), std::nan(""));
                 dc::launch_fft_mix_backward_weights<T>(static_cast<const T*>(a), workspace.data(), s, nullptr);
                 dc::launch_fft_mix_backward<T>(static_cast<const T*>(X), static_cast<const T*>(Hs),
                                                static_cast<const T*>(G), workspace.data(), static_cast<T*>(GX),
                                                static_cast<T*>(GH), gw, gw_workspace.data(), scale, gh_scale, s,
                                                nullptr);
               }))

// ---- tests/emu/selftest_kernels.cuh ---------------------------------------------------------
DC_EMU_BINDING(dc_emu_shuffle, (int dtype, const void* in, void* out, int nthreads, int op, int arg, int width, unsigned mask),
               with_scalar_type(dtype, [&](auto zero) {
                 using T = decltype(zero);
                 dc_selftest::launch_shuffle<T>(static_cast<const T*>(in), static_cast<T*>(out), nthreads, op, arg, width, mask);
               }))
DC_EMU_BINDING(dc_emu_ballot, (const int* pred, unsigned* ballot, int* any, int* all, int nthreads, unsigned mask),
               dc_selftest::launch_ballot(pred, ballot, any, all, nthreads, mask))
DC_EMU_BINDING(dc_emu_barrier, (int* neighbour, int* count, int nblocks, int nthreads),
               dc_selftest::launch_barrier(neighbour, count, nblocks, nthreads))
DC_EMU_BINDING(dc_emu_read_unwritten_smem, (float* out, int nblocks, int nthreads),
               dc_selftest::launch_read_unwritten_smem(out, nblocks, nthreads))
DC_EMU_BINDING(dc_emu_arrival_order, (int* counters, int* thread_rank, int* block_rank, int nblocks, int nthreads),
               dc_selftest::launch_arrival_order(counters, thread_rank, block_rank, nblocks, nthreads))
DC_EMU_BINDING(dc_emu_access_probe, (int vector_width, int shared, const void* in, void* out, int nthreads, int stride),
               switch (vector_width) {
                 case 1: dc_selftest::launch_access_probe(shared, (const float*)in, (float*)out, nthreads, stride); break;
                 case 2: dc_selftest::launch_access_probe(shared, (const float2*)in, (float2*)out, nthreads, stride); break;
                 default: dc_selftest::launch_access_probe(shared, (const float4*)in, (float4*)out, nthreads, stride);
               })
DC_EMU_BINDING(dc_emu_divergent_probe, (float* out), dc_selftest::launch_divergent_probe(out))
DC_EMU_BINDING(dc_emu_multiply_add_probe, (int dtype, const void* a, const void* b, void* out, int nblocks, int nthreads,
                                           int n),
               with_scalar_type(dtype, [&](auto zero) {
                 using T = decltype(zero);
                 dc_selftest::launch_multiply_add_probe<T>(static_cast<const T*>(a), static_cast<const T*>(b),
                                                           static_cast<T*>(out), nblocks, nthreads, n);
               }))
DC_EMU_BINDING(dc_emu_invalid_launch, (int threads, int smem_bytes), dc_selftest::launch_invalid(threads, smem_bytes))
DC_EMU_BINDING(dc_emu_stack_overflow, (int* out, int depth), dc_selftest::launch_stack_overflow(out, depth))

// ---- csrc/cuda/octave_downsample_kernels.cuh -----------------------------------------------
// sizes = {rows, T, taps, levels}; work/partial are float (double for dtype 1) buffers with the element
// counts that dc_emu_octave_buffer_sizes writes to counts[0] / counts[1].
DC_EMU_BINDING(dc_emu_octave_buffer_sizes, (const int64_t* sz, int64_t* counts),
               const dc::OctaveProblem s = octave_problem(sz);
               counts[0] = dc::oct::octave_chain_workspace(s);
               counts[1] = dc::oct::octave_filter_parts(s) * s.taps)
DC_EMU_BINDING(dc_emu_octave_forward, (int dtype, const void* x, const void* f, void* out, const int64_t* sz),
               with_scalar_type_and_half(dtype, [&](auto zero) {
                 using T = decltype(zero);
                 dc::oct::launch_octave_forward<T>(static_cast<const T*>(x), static_cast<const T*>(f),
                                                   static_cast<T*>(out),
                                                   octave_problem(sz), nullptr);
               }))
DC_EMU_BINDING(dc_emu_octave_grad_input, (int dtype, const void* g, const void* f, void* gx, void* work, const int64_t* sz),
               with_scalar_type_and_half(dtype, [&](auto zero) {
                 using T = decltype(zero);
                 using A = typename dc::AccType<T>::type;
                 dc::oct::launch_octave_grad_input<T>(static_cast<const T*>(g), static_cast<const T*>(f),
                                                      static_cast<T*>(gx), static_cast<A*>(work),
                                                      octave_problem(sz), nullptr);
               }))
DC_EMU_BINDING(dc_emu_octave_grad_filter, (int dtype, const void* g, const void* x, const void* out, const void* f,
                                           void* gf, void* work, void* partial, const int64_t* sz),
               with_scalar_type_and_half(dtype, [&](auto zero) {
                 using T = decltype(zero);
                 using A = typename dc::AccType<T>::type;
                 dc::oct::launch_octave_grad_filter<T>(static_cast<const T*>(g), static_cast<const T*>(x),
                                                       static_cast<const T*>(out), static_cast<const T*>(f),
                                                       static_cast<T*>(gf), static_cast<A*>(work),
                                                       static_cast<A*>(partial),
                                                       octave_problem(sz), nullptr);
               }))

// ---- tests/emu/planted_bugs.cuh -------------------------------------------------------------
DC_EMU_BINDING(dc_emu_block_sum, (const float* in, float* out, int n, int missing_sync),
               dc_planted::launch_block_sum(in, out, n, missing_sync))
DC_EMU_BINDING(dc_emu_tile_pair_sum, (const float* in, float* out, int n, int bug),
               dc_planted::launch_tile_pair_sum(in, out, n, bug))
DC_EMU_BINDING(dc_emu_scale_by_first, (const float* in, float* out, int n, int early_return),
               dc_planted::launch_scale_by_first(in, out, n, early_return))
DC_EMU_BINDING(dc_emu_warp_sum, (const float* in, float* out, int nblocks, int missing_syncwarp),
               dc_planted::launch_warp_sum(in, out, nblocks, missing_syncwarp))
DC_EMU_BINDING(dc_emu_float_to_tf32, (const float* in, float* out, int n),
               for (int k = 0; k < n; ++k) out[k] = nvcuda::wmma::__float_to_tf32(in[k]))
DC_EMU_BINDING(dc_emu_wmma_product, (const float* a, const float* b, float* out, int bug),
               dc_planted::launch_wmma_product(a, b, out, bug))
DC_EMU_BINDING(dc_emu_divergent_barrier, (float* out), dc_planted::launch_divergent_barrier(out))
DC_EMU_BINDING(dc_emu_warp_deadlock, (float* out), dc_planted::launch_warp_deadlock(out))
DC_EMU_BINDING(dc_emu_misaligned_float4, (const float* in, float* out, int nthreads, int use_ldg),
               dc_planted::launch_misaligned_float4(in, out, nthreads, use_ldg))
