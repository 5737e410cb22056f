// Machinery shared by the CPU FFT algorithms (fft_conv.cpp: dense_conv2d, fft_mix.cpp: dense_mix_conv2d):
// single-threaded transforms inside the per-sample parallel region, named per-thread workspaces with a
// kept-bytes cap, zero-padded copies into reused buffers.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <dlfcn.h>

#include <atomic>
#include <cstdlib>
#include <string>

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

// Per-thread workspaces, one tensor per role (slots are shared by the FFT ops: one op runs at a time per
// thread). Reused across samples: a fresh temporary of a few MB
// per sample is a fresh mmap more often than not (glibc hands large blocks back to the kernel), and
// its first touch costs page faults plus kernel page zeroing.
enum WorkspaceSlot : int {
  kCrSpectra,           // forward: products of one impulse channel; backward: grad_out spectra [Cr]
  kForwardPlanes,       // forward: inverse transforms [Cr]
  kImpulseSpectra,      // [Ci]
  kResponseSpectra,     // [Cr]
  kImpulsePadded,       // [Ci] real
  kResponsePadded,      // [Cr] real
  kGradImpulseSpectra,  // [Ci]
  kGradResponseSpectra, // [Cr]
  kGradPadded,          // grad_out of one impulse channel [Cr] real
  kBackwardPlanes,      // inverse transforms [Ci + Cr]
  kMixOutSpectra,       // dense_mix_conv2d: output spectra [L] (forward), grad_out spectra [L] (backward)
  kMixOutPlanes,        // dense_mix_conv2d: inverse transforms [L] (forward), [Ci + Cr] (backward)
  kMixGradPadded,       // dense_mix_conv2d: zero-padded grad_out [L] real
  kNumSlots
};

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

inline at::Tensor& workspace(WorkspaceSlot slot, at::IntArrayRef sizes, const at::TensorOptions& opt) {
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

// A zero-padded [C, H, W] copy of src [C, h, w] in a reused buffer: the pad region is zeroed only
// when the buffer is created or the corner changes, since every sample writes the same corner.
inline const at::Tensor& padded(WorkspaceSlot slot, const at::Tensor& src, int64_t H, int64_t W) {
  const int64_t h = src.size(1), w = src.size(2);
  at::Tensor& t = workspace(slot, {src.size(0), H, W}, src.options());
  Workspace& s = thread_workspaces().slots[slot];
  if (s.h != h || s.w != w) {
    t.zero_();
    s.h = h;
    s.w = w;
  }
  t.narrow(1, 0, h).narrow(2, 0, w).copy_(src);
  return t;
}

}  // namespace fft
}  // namespace dc
