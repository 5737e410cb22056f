// Machinery shared by the CPU FFT algorithms (fft_conv.cpp: dense_conv2d, fft_mix.cpp: dense_mix_conv2d):
// single-threaded transforms inside the per-sample parallel region, named per-thread workspaces with a
// kept-bytes cap, zero-padded copies into reused buffers, and the pruned 2-D transforms.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <dlfcn.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include "../checks.h"
#include "../shapes.h"
#include "column_fft.h"
#include "huge_pages.h"

namespace dc {
namespace fft {

// Inside our parallel region each sample's transforms must run on the calling thread: MKL's FFT
// otherwise starts a nested thread team per call, measured 5-10x slower here. torch links MKL
// statically and exports MKL_Set_Num_Threads_Local (the C entry; the lower-case name is the Fortran
// one); when it is absent (a non-MKL build) nothing is done.
class SingleThreadedFft {
 public:
  SingleThreadedFft() {
    if (fn() != nullptr) prev_ = fn()(1);
  }
  ~SingleThreadedFft() {
    if (fn() != nullptr) fn()(prev_);
  }

 private:
  using SetLocal = int (*)(int);
  static SetLocal fn() {
    static const SetLocal f = reinterpret_cast<SetLocal>(dlsym(RTLD_DEFAULT, "MKL_Set_Num_Threads_Local"));
    return f;
  }
  int prev_ = 0;
};

// Per-thread workspaces, one tensor per slot (slots are shared by the FFT ops: one op runs at a time per
// thread). Reused across samples: a fresh temporary of a few MB
// per sample is a fresh mmap more often than not (glibc hands large blocks back to the kernel), and
// its first touch costs page faults plus kernel page zeroing.
// Spectra are [C, H, W/2+1] (forward_2d).
enum WorkspaceSlot : int {
  kImpulseSpectra,       // [Ci]
  kResponseSpectra,      // [Cr]
  kCrSpectra,            // forward: products of one impulse channel; backward: its grad_out spectra [Cr]
  kGradImpulseSpectra,   // [Ci]
  kGradResponseSpectra,  // [Cr]
  kMixOutSpectra,        // dense_mix_conv2d: output spectra [L] (forward), grad_out spectra [L] (backward)
  kFirstTransformSlot,   // then the three buffers of each TransformRole (8 of them, checked below)
  kNumSlots = kFirstTransformSlot + 3 * 8
};

// What a 2-D transform works on, each with its own three buffers (transform_slot), so that no buffer
// changes size between the transforms of one call.
enum TransformRole : int {
  kImpulseIn,        // impulse [Ci] -> spectra
  kResponseIn,       // response [Cr] -> spectra
  kGradIn,           // dense_conv2d: grad_out of one impulse channel [Cr] -> spectra
  kMixGradIn,        // dense_mix_conv2d: grad_out [L] -> spectra
  kOut,              // dense_conv2d: products of one impulse channel [Cr] -> output planes
  kMixOut,           // dense_mix_conv2d: [L] -> output planes
  kGradImpulseOut,   // [Ci] -> grad_impulse planes
  kGradResponseOut,  // [Cr] -> grad_response planes
  kNumRoles
};
static_assert(kNumSlots == kFirstTransformSlot + 3 * kNumRoles, "three buffers per transform role");

struct Workspace {
  at::Tensor t;
  int64_t h = -1, w = -1;  // corner written by padded(); the rest of t is zero
};

// Between calls a thread keeps its workspaces only while all threads together keep at most
// kKeptBytesCap: the next call at the same shape skips the first-touch cost, and a call at a large
// shape does not leave hundreds of MB behind.
constexpr int64_t kKeptBytesCap = int64_t(48) << 20;
inline std::atomic<int64_t> kept_bytes_all_threads{0};

struct ThreadWorkspaces {
  Workspace slots[kNumSlots];
  int64_t kept_bytes = 0;  // this thread's share of kept_bytes_all_threads
  ~ThreadWorkspaces() { kept_bytes_all_threads -= kept_bytes; }
};

inline ThreadWorkspaces& thread_workspaces() {
  thread_local ThreadWorkspaces ws;
  return ws;
}

// End of a call's work on this thread: keep the workspaces or release them (see kKeptBytesCap).
inline void end_of_call() {
  ThreadWorkspaces& ws = thread_workspaces();
  int64_t bytes = 0;
  for (const Workspace& s : ws.slots)
    if (s.t.defined()) bytes += static_cast<int64_t>(s.t.nbytes());
  kept_bytes_all_threads -= ws.kept_bytes;
  ws.kept_bytes = 0;
  if (kept_bytes_all_threads.fetch_add(bytes) + bytes <= kKeptBytesCap) {
    ws.kept_bytes = bytes;
    return;
  }
  kept_bytes_all_threads -= bytes;
  for (Workspace& s : ws.slots) s = Workspace{};
}

struct EndOfCall {
  ~EndOfCall() { end_of_call(); }
};

inline at::Tensor& workspace(int slot, at::IntArrayRef sizes, const at::TensorOptions& opt) {
  Workspace& s = thread_workspaces().slots[slot];
  if (!s.t.defined() || s.t.sizes() != sizes || s.t.dtype() != opt.dtype()) {
    s.t = at::empty(sizes, opt);
    s.h = s.w = -1;
  }
  return s.t;
}

// Default: samples run in parallel, one single-threaded pipeline per thread (one parallel region per
// op; a sample's spectra stay in its core's cache). DENSE_CONV_FFT_PARALLEL=transforms runs samples one
// after another and lets each batched transform use every thread instead (measured slower here).
template <class F>
void run_samples(int64_t B, const F& run) {
  static const bool per_sample = [] {
    const char* v = std::getenv("DENSE_CONV_FFT_PARALLEL");
    return v == nullptr || std::string(v) != "transforms";
  }();
  if (per_sample) {
    at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
      EndOfCall end_of_call;
      SingleThreadedFft single_threaded;
      run(begin, end);
    });
  } else {
    EndOfCall end_of_call;
    run(0, B);
  }
}

// A reused buffer whose elements outside the leading h x w corner of its last two dims are zero: zeroed
// only when the buffer is created or the corner changes, since every sample writes the same corner.
inline at::Tensor& padded_buffer(int slot, at::IntArrayRef sizes, const at::TensorOptions& opt, int64_t h,
                                 int64_t w) {
  at::Tensor& t = workspace(slot, sizes, opt);
  Workspace& s = thread_workspaces().slots[slot];
  if (s.h != h || s.w != w) {
    t.zero_();
    s.h = h;
    s.w = w;
  }
  return t;
}

// ---- Spectra a forward keeps for its backward (the *_keep_spectra ops; KeptSpectra: checks.h) -----------
inline KeptSpectra empty_kept_spectra(const ConvSizes& s, const FftPlan& f, const at::Tensor& like) {
  const auto copt = like.options().dtype(c10::toComplexType(like.scalar_type()));
  KeptSpectra kept{at::empty({s.B, s.Ci, f.H, f.W / 2 + 1}, copt), at::empty({s.B, s.Cr, f.H, f.W / 2 + 1}, copt)};
  advise_huge_pages(kept.impulse);
  advise_huge_pages(kept.response);
  return kept;
}

// ---- Pruned 2-D real transforms ----------------------------------------------------------------------
// A 2-D real transform is row transforms then column transforms. Rows that are all zero padding
// transform to zero, so the forward transforms only the h rows that hold data (84 of 120 for the user's
// impulse, 37 for the response); the inverse transforms every column but keeps only the rows of the
// causal crop, and transforms back only those. Rows: MKL's batched real transforms over contiguous rows.
// Columns: ColumnFft (column_fft.h), which reads the row spectra in place (no transposed copies).
inline int transform_slot(TransformRole role, int stage) { return kFirstTransformSlot + 3 * role + stage; }

template <class T>
T* complex_data(const at::Tensor& t) {
  return reinterpret_cast<T*>(t.data_ptr<c10::complex<T>>());
}

// spec [C, H, W/2+1] (contiguous) = 2-D real transform of src [C, h, w] (any strides) zero-padded to H x W
// (h <= H = columns.n, w <= W), times 1/(H W) when `scaled` (the inverse below never scales).
template <class T>
void forward_2d(const at::Tensor& src, const ColumnFft<T>& columns, int64_t W, bool scaled, TransformRole role,
                at::Tensor& spec) {
  const int64_t C = src.size(0), h = src.size(1), w = src.size(2), Wh = W / 2 + 1, H = columns.n;
  at::Tensor& rows = padded_buffer(transform_slot(role, 0), {C, h, W}, src.options(), h, w);
  rows.narrow(2, 0, w).copy_(src);
  at::Tensor& row_spectra = workspace(transform_slot(role, 1), {C, h, Wh}, spec.options());
  at::fft_rfft_out(row_spectra, rows, W, -1);
  at::Tensor& work = workspace(transform_slot(role, 2), {2 * H + 1, Wh}, spec.options());
  const T scale = scaled ? static_cast<T>(1.0 / static_cast<double>(H * W)) : T(1);
  for (int64_t c = 0; c < C; ++c)
    columns.run(complex_data<T>(row_spectra) + 2 * c * h * Wh, h, complex_data<T>(spec) + 2 * c * H * Wh, H,
                complex_data<T>(work), 2 * Wh, scale);
}

// The first h_keep rows [C, h_keep, W] of the unscaled inverse 2-D real transform of spec [C, H, W/2+1]
// (contiguous; columns: the inverse ColumnFft of length H).
template <class T>
const at::Tensor& inverse_2d(const at::Tensor& spec, const ColumnFft<T>& columns, int64_t h_keep, int64_t W,
                             TransformRole role) {
  const int64_t C = spec.size(0), H = spec.size(1), Wh = spec.size(2);
  at::Tensor& kept = workspace(transform_slot(role, 1), {C, h_keep, Wh}, spec.options());
  at::Tensor& work = workspace(transform_slot(role, 2), {2 * H + 1, Wh}, spec.options());
  for (int64_t c = 0; c < C; ++c)
    columns.run(complex_data<T>(spec) + 2 * c * H * Wh, H, complex_data<T>(kept) + 2 * c * h_keep * Wh, h_keep,
                complex_data<T>(work), 2 * Wh, T(1));
  at::Tensor& rows = workspace(transform_slot(role, 0), {C, h_keep, W},
                               spec.options().dtype(c10::toRealValueType(spec.scalar_type())));
  at::fft_irfft_out(rows, kept, W, -1, "forward");  // norm "forward": the inverse is not scaled
  return rows;
}

}  // namespace fft
}  // namespace dc
