// Test-only CUDA emulator: runs the project's CUDA kernel headers on the CPU under g++.
//
// Included by csrc/cuda/compat.cuh when DC_CUDA_EMULATOR is defined (found through -I tests/emu);
// never part of the extension. Model:
//   * every CUDA thread of a block is a fiber with its own guarded stack; blocks run one at a time
//     on the calling OS thread, so `__shared__` arrays are function statics;
//   * between two sync points (__syncthreads, warp ops, exit) the block's runnable fibers run in
//     forward, reverse or seeded-random order; blocks run in forward, reverse or shuffled order;
//   * shared memory (static and dynamic) is filled with 0xFF bytes (NaN for floats) before each block;
//   * divergent barriers, barriers after exited threads, warp-op deadlocks, mismatched warp ops and
//     fiber stack overflows raise dc_emu::Error naming the kernel, block and thread.
//   * every launch is recorded by kernel name (executed_kernels()); with defined_functions() the tests
//     find the kernel instantiations that are compiled but never executed.
//
// Sanitizer builds: under AddressSanitizer every fiber switch is annotated. Under ThreadSanitizer
// (g++/clang -fsanitize=thread) every CUDA thread is a TSan fiber named "block (..) thread (..)";
// switches carry no happens-before, except scheduler -> fiber (the host's writes before the launch,
// the scheduler's own bookkeeping). Happens-before between CUDA threads comes only from their sync
// points: __syncthreads (all threads of the block), warp ops (the lanes of the op), the end of a
// block (blocks run one after the other, so the next block sees all of it: races between blocks are
// not reported) and the end of the launch (the host sees the outputs). A shared-memory access that
// is not ordered by a barrier is then a data race at the kernel's source lines. The emulator's own
// bookkeeping runs with TSan accesses ignored; atomics are real (relaxed) atomics.
//
// Restriction: kernels that declare static `__shared__` arrays must be templates or `inline` (as any
// kernel defined in a header should be): their statics are found through the symbol table of the
// loaded object, by the kernel's mangled name, to be poisoned before every block.
#pragma once

#if !defined(__x86_64__)
#error "the CUDA emulator's fiber switch is written for x86-64"
#endif

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cxxabi.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iterator>
#include <memory>
#include <new>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__) && !defined(DC_EMU_COUNT)  // the counting build's hooks are no AddressSanitizer
#define DC_EMU_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#else
#define DC_EMU_ASAN 0
#endif

#if defined(DC_EMU_COUNT)
#include "counters.h"
#endif

#if defined(__SANITIZE_THREAD__)
#define DC_EMU_TSAN 1
#include <sanitizer/tsan_interface.h>
extern "C" void __tsan_ignore_thread_begin(void);  // exported by libtsan, not in its header
extern "C" void __tsan_ignore_thread_end(void);
#else
#define DC_EMU_TSAN 0
#endif

// ---------------------------------------------------------------------------------------------
// CUDA keywords
// ---------------------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __shared__ static
#define __constant__ static
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
// __restrict__ is already a g++ keyword.

// ---------------------------------------------------------------------------------------------
// Built-in types and variables
// ---------------------------------------------------------------------------------------------
struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

#define DC_EMU_VECTOR2(T, name, align)                                     \
  struct __attribute__((aligned(align))) name {                            \
    T x, y;                                                                \
  };                                                                       \
  inline name make_##name(T x, T y) { return name{x, y}; }
#define DC_EMU_VECTOR3(T, name)                                            \
  struct name {                                                            \
    T x, y, z;                                                             \
  };                                                                       \
  inline name make_##name(T x, T y, T z) { return name{x, y, z}; }
#define DC_EMU_VECTOR4(T, name, align)                                     \
  struct __attribute__((aligned(align))) name {                            \
    T x, y, z, w;                                                          \
  };                                                                       \
  inline name make_##name(T x, T y, T z, T w) { return name{x, y, z, w}; }

DC_EMU_VECTOR2(float, float2, 8)
DC_EMU_VECTOR3(float, float3)
DC_EMU_VECTOR4(float, float4, 16)
DC_EMU_VECTOR2(double, double2, 16)
DC_EMU_VECTOR2(int, int2, 8)
DC_EMU_VECTOR3(int, int3)
DC_EMU_VECTOR4(int, int4, 16)
DC_EMU_VECTOR2(unsigned, uint2, 8)
DC_EMU_VECTOR4(unsigned, uint4, 16)
DC_EMU_VECTOR2(long long, longlong2, 16)

// Set by the scheduler before every switch into a fiber. Reads after a sync point see the new
// values because every sync point is an opaque call.
inline uint3 threadIdx;
inline uint3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;
constexpr int warpSize = 32;

typedef struct CUstream_st* cudaStream_t;
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorInvalidConfiguration = 9 };
enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaPeekAtLastError() { return cudaSuccess; }
inline const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated error"; }

// ---------------------------------------------------------------------------------------------
// Fiber switch (x86-64 System V): saves callee-saved registers on the old stack, loads the new
// stack pointer. About 20x cheaper than swapcontext, which makes a signal-mask syscall each time.
// A new fiber's frame "returns" into dc_emu_fiber_trampoline with r12 = argument, r13 = function.
// ---------------------------------------------------------------------------------------------
extern "C" void dc_emu_switch_context(void** save_sp, void* load_sp);
extern "C" void dc_emu_fiber_trampoline();
asm(R"(
  .text
  .weak dc_emu_switch_context
  .hidden dc_emu_switch_context
  .type dc_emu_switch_context, @function
dc_emu_switch_context:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size dc_emu_switch_context, .-dc_emu_switch_context

  .weak dc_emu_fiber_trampoline
  .hidden dc_emu_fiber_trampoline
  .type dc_emu_fiber_trampoline, @function
dc_emu_fiber_trampoline:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size dc_emu_fiber_trampoline, .-dc_emu_fiber_trampoline
)");

namespace dc_emu {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Order { forward, reverse, random };

struct Options {
  Order order = Order::forward;
  uint64_t seed = 0;
};

inline Options& options() {
  static Options o;
  return o;
}

// Called by the test harness: order of threads between sync points and of blocks in the grid.
inline void set_schedule(Order order, uint64_t seed = 0) { options() = Options{order, seed}; }

enum class Status : uint8_t { runnable, at_barrier, at_warp_op, exited };
enum class WarpOpKind : uint8_t { syncwarp, shfl_idx, shfl_up, shfl_down, shfl_xor, ballot, any, all, wmma };

inline const char* warp_op_name(WarpOpKind k) {
  switch (k) {
    case WarpOpKind::syncwarp: return "__syncwarp";
    case WarpOpKind::wmma: return "a WMMA op";
    case WarpOpKind::shfl_idx: return "__shfl_sync";
    case WarpOpKind::shfl_up: return "__shfl_up_sync";
    case WarpOpKind::shfl_down: return "__shfl_down_sync";
    case WarpOpKind::shfl_xor: return "__shfl_xor_sync";
    case WarpOpKind::ballot: return "__ballot_sync";
    case WarpOpKind::any: return "__any_sync";
    case WarpOpKind::all: return "__all_sync";
  }
  return "?";
}

struct ThreadSlot {
  Status status = Status::runnable;
  const char* file = "";  // call site of the sync point the thread waits at
  int line = 0;
  // barrier predicate (__syncthreads_count/and/or) or warp-op operands
  int predicate = 0;
  WarpOpKind op = WarpOpKind::syncwarp;
  unsigned mask = 0;
  int arg = 0;
  int width = 32;
  uint64_t value = 0;
  uint64_t result = 0;
  unsigned group = 0;  // lanes of the resolved warp op
  // TSan: barriers and warp ops passed by this thread, and for a resolved warp op the parity of
  // every group lane's warp-op count (see the TSan notes at barrier()).
  unsigned barrier_count = 0;
  unsigned warp_op_count = 0;
  unsigned group_parity = 0;
};

constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kGuardBytes = 64 * 1024;  // PROT_NONE below every stack
constexpr int kMaxThreads = 1024;
constexpr size_t kMaxDefaultSmem = 48 * 1024;
constexpr size_t kMaxOptInSmem = 227 * 1024;  // sm_90; sm_80 allows 163 KiB

struct Runtime {
  // fiber stacks: kMaxThreads slots of [guard | stack], reserved once
  char* pool = nullptr;
  std::vector<void*> fiber_sp;
  void* scheduler_sp = nullptr;
  std::vector<ThreadSlot> threads;
  int nthreads = 0;
  int current = -1;  // running fiber, -1 in the scheduler
  bool in_launch = false;
  bool stacks_dirty = false;  // a fiber was abandoned (error): its stack shadow needs a reset
  // the launch being run
  const char* kernel_name = "";
  void (*invoke)(void*) = nullptr;
  void* invoke_ctx = nullptr;
  unsigned char* dynamic_smem = nullptr;
  size_t dynamic_smem_bytes = 0;
  std::exception_ptr fiber_error;
  int barrier_result = 0;
  std::mt19937_64 rng;
  // stack overflow: the SIGSEGV handler jumps back to the launch
  sigjmp_buf overflow_jump;
  std::unordered_map<const void*, int> max_dynamic_smem;  // cudaFuncSetAttribute opt-ins
  std::set<std::string> executed_kernels;  // demangled names of every kernel launched (executed_kernels())
#if DC_EMU_ASAN
  const void* scheduler_stack_bottom = nullptr;
  size_t scheduler_stack_size = 0;
#endif
#if DC_EMU_TSAN
  void* tsan_scheduler = nullptr;    // the host thread's TSan state
  std::vector<void*> tsan_fibers;    // one TSan fiber per CUDA thread slot, created on first use
  char tsan_lane_sync[2][kMaxThreads];  // release/acquire addresses: per thread (warp ops),
  char tsan_barrier_sync[2];            // ... the block's barrier,
  char tsan_exit_sync;                  // ... the end of a block
#endif
};

inline Runtime& rt() {
  static Runtime r;
  return r;
}

#if defined(DC_EMU_COUNT)
// One access of compiled code (see counters.h): recorded when a CUDA thread makes it to shared or global memory.
__attribute__((no_sanitize_coverage)) inline void count_access(uintptr_t addr, uint32_t bytes, bool store) {
  if (!counting_enabled || counting_busy) return;
  counting_busy = true;
  Counter& c = counter();
  Runtime& r = rt();
  if (!r.in_launch || r.current < 0) {
    counting_busy = false;
    return;
  }
  const int t = r.current, warp = t / 32, lane = t % 32;
  bool shared = false;
  for (auto& [begin, end] : c.shared_ranges) shared |= addr >= begin && addr < end;
  bool global = false;
  if (!shared)
    for (auto& [begin, end] : c.global_ranges) global |= addr >= begin && addr < end;
  if (shared || global) {
    // a lane's n-th shared access, n-th global load, n-th global store meet the other lanes' n-th one
    uint32_t& seq = shared ? c.shared_seq[t] : store ? c.store_seq[t] : c.load_seq[t];
    auto& requests = shared ? c.shared_req[warp] : store ? c.store_req[warp] : c.load_req[warp];
    const uint32_t n = seq++;
    if (requests.size() <= n) requests.resize(n + 1);
    requests[n].push_back(Access{addr, uint32_t(lane) << 8 | bytes});
  }
  counting_busy = false;
}

// One entry of a basic block of compiled code (see counters.h), counted when a CUDA thread enters it.
__attribute__((no_sanitize_coverage)) inline void count_block_entry(uintptr_t pc) {
  if (!counting_enabled || counting_busy || block_counting_paused) return;
  counting_busy = true;  // first: rt() and the map are instrumented code too
  Runtime& r = rt();
  if (r.in_launch && r.current >= 0) counter().block_entries[pc] += 1;
  counting_busy = false;
}
#endif

// Emulator bookkeeping that TSan must not see as accesses of the CUDA threads (the scheduler and the
// fibers share it without happens-before on purpose).
struct TsanIgnore {
#if DC_EMU_TSAN
  TsanIgnore() { __tsan_ignore_thread_begin(); }
  ~TsanIgnore() { __tsan_ignore_thread_end(); }
#else
  TsanIgnore() = default;
#endif
  TsanIgnore(const TsanIgnore&) = delete;
  TsanIgnore& operator=(const TsanIgnore&) = delete;
};

inline size_t slot_bytes() { return kGuardBytes + kStackBytes; }
inline char* stack_lo(int t) { return rt().pool + size_t(t) * slot_bytes() + kGuardBytes; }

inline std::string dim_string(unsigned x, unsigned y, unsigned z) {
  return "(" + std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(z) + ")";
}
inline uint3 thread_index(int t) {
  unsigned bx = blockDim.x, by = blockDim.y;
  return uint3{unsigned(t) % bx, (unsigned(t) / bx) % by, unsigned(t) / (bx * by)};
}
inline std::string where(int t) {
  uint3 ti = thread_index(t);
  return std::string("kernel ") + rt().kernel_name + " block " + dim_string(blockIdx.x, blockIdx.y, blockIdx.z) +
         " thread " + dim_string(ti.x, ti.y, ti.z);
}
inline std::string site(const ThreadSlot& s) { return std::string(s.file) + ":" + std::to_string(s.line); }

[[noreturn]] inline void fail(const std::string& what) { throw Error("dc_emu: " + what); }

// ---- fiber switching ------------------------------------------------------------------------

inline void switch_to(void** save_sp, void* load_sp, const void* target_bottom, size_t target_size, bool dying,
                      void* tsan_fiber = nullptr, unsigned tsan_flags = 0) {
  (void)tsan_fiber, (void)tsan_flags;
#if DC_EMU_ASAN
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(dying ? nullptr : &fake_stack, target_bottom, target_size);
  dc_emu_switch_context(save_sp, load_sp);
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#elif DC_EMU_TSAN
  (void)target_bottom, (void)target_size, (void)dying;
  __tsan_switch_to_fiber(tsan_fiber, tsan_flags);
  dc_emu_switch_context(save_sp, load_sp);
#else
  (void)target_bottom, (void)target_size, (void)dying;
  dc_emu_switch_context(save_sp, load_sp);
#endif
}

// From a fiber: give control back to the scheduler (the thread waits at a sync point or exited).
inline void yield_to_scheduler(bool dying = false) {
  Runtime& r = rt();
  int t = r.current;
#if DC_EMU_ASAN
  switch_to(&r.fiber_sp[t], r.scheduler_sp, r.scheduler_stack_bottom, r.scheduler_stack_size, dying);
#elif DC_EMU_TSAN
  // No happens-before from a CUDA thread to the scheduler (it would pass on to every other thread).
  switch_to(&r.fiber_sp[t], r.scheduler_sp, nullptr, 0, dying, r.tsan_scheduler, __tsan_switch_to_fiber_no_sync);
#else
  switch_to(&r.fiber_sp[t], r.scheduler_sp, nullptr, 0, dying);
#endif
}

#if DC_EMU_TSAN
// Not instrumented: a TSan fiber is reused by the next block, and this frame never returns (its
// function-entry record would pile up on the fiber's shadow stack).
__attribute__((no_sanitize("thread")))
#endif
inline void fiber_main(void* arg) {
  Runtime& r = rt();
#if DC_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &r.scheduler_stack_bottom, &r.scheduler_stack_size);
#endif
  int t = int(reinterpret_cast<intptr_t>(arg));
  try {
    r.invoke(r.invoke_ctx);
  } catch (...) {
    r.fiber_error = std::current_exception();
  }
  r.threads[t].status = Status::exited;
#if DC_EMU_TSAN
  __tsan_release(&r.tsan_exit_sync);  // the next block and the host see everything this thread did
  __tsan_switch_to_fiber(r.tsan_scheduler, __tsan_switch_to_fiber_no_sync);
  dc_emu_switch_context(&r.fiber_sp[t], r.scheduler_sp);
#else
  yield_to_scheduler(/*dying=*/true);
#endif
  std::abort();  // an exited fiber is never resumed
}

inline void start_fiber(int t) {
  // Initial frame popped by dc_emu_switch_context: r15 r14 r13 r12 rbx rbp, return address.
#if DC_EMU_ASAN
  // An exited fiber never returns from fiber_main: its frames' redzones stay poisoned at the top.
  constexpr size_t kExitFrames = 32 * 1024;
  __asan_unpoison_memory_region(stack_lo(t) + kStackBytes - kExitFrames, kExitFrames);
#endif
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack_lo(t)) + kStackBytes - 64) & ~uintptr_t(15);
  void** sp = reinterpret_cast<void**>(top) - 7;
  sp[0] = nullptr;                                              // r15
  sp[1] = nullptr;                                              // r14
  sp[2] = reinterpret_cast<void*>(&fiber_main);                 // r13: function
  sp[3] = reinterpret_cast<void*>(intptr_t(t));                 // r12: argument
  sp[4] = nullptr;                                              // rbx
  sp[5] = nullptr;                                              // rbp
  sp[6] = reinterpret_cast<void*>(&dc_emu_fiber_trampoline);    // return address
  rt().fiber_sp[t] = sp;
}

inline void resume(int t) {
  Runtime& r = rt();
  r.current = t;
  threadIdx = thread_index(t);
#if DC_EMU_TSAN
  // Happens-before from the scheduler (whose clock holds the host and the blocks already run).
  switch_to(&r.scheduler_sp, r.fiber_sp[t], stack_lo(t), kStackBytes, false, r.tsan_fibers[t], 0);
#else
  switch_to(&r.scheduler_sp, r.fiber_sp[t], stack_lo(t), kStackBytes, false);
#endif
  r.current = -1;
}

// ---- stack overflow detection ---------------------------------------------------------------

inline struct sigaction& previous_segv_action() {
  static struct sigaction a;
  return a;
}

inline void on_segv(int sig, siginfo_t* info, void* ucontext) {
  Runtime& r = rt();
  uintptr_t addr = reinterpret_cast<uintptr_t>(info->si_addr);
  uintptr_t pool = reinterpret_cast<uintptr_t>(r.pool);
  if (r.in_launch && r.current >= 0 && addr >= pool && addr < pool + kMaxThreads * slot_bytes() &&
      (addr - pool) % slot_bytes() < kGuardBytes) {
    siglongjmp(r.overflow_jump, 1);
  }
  // Not a fiber guard page: let the previous handler (or the default action) deal with it.
  sigaction(SIGSEGV, &previous_segv_action(), nullptr);
  (void)sig, (void)ucontext;
}

// Installs the guard-page handler (on its own signal stack) for the duration of a launch.
class OverflowHandlerScope {
 public:
  OverflowHandlerScope() {
#if !DC_EMU_ASAN && !DC_EMU_TSAN  // ASan reports stack overflows itself; TSan's longjmp cannot leave a fiber
    static std::vector<char> alt_stack(64 * 1024);
    stack_t ss{};
    ss.ss_sp = alt_stack.data();
    ss.ss_size = alt_stack.size();
    sigaltstack(&ss, &old_stack_);
    struct sigaction sa {};
    sa.sa_sigaction = &on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous_segv_action());
#endif
  }
  ~OverflowHandlerScope() {
#if !DC_EMU_ASAN && !DC_EMU_TSAN
    sigaction(SIGSEGV, &previous_segv_action(), nullptr);
    sigaltstack(&old_stack_, nullptr);
#endif
  }

 private:
  stack_t old_stack_{};
};

inline void reserve_stacks() {
  Runtime& r = rt();
  if (r.pool) return;
  size_t bytes = kMaxThreads * slot_bytes();
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) fail("cannot reserve fiber stacks");
  r.pool = static_cast<char*>(p);
  for (int t = 0; t < kMaxThreads; ++t) mprotect(r.pool + size_t(t) * slot_bytes(), kGuardBytes, PROT_NONE);
  r.fiber_sp.assign(kMaxThreads, nullptr);
}

// ---- static shared memory: found by symbol name, poisoned before every block ----------------

struct MemoryRange {
  unsigned char* begin;
  size_t bytes;
};

struct KernelInfo {
  std::string name;  // demangled, when the symbol table has it
  std::vector<MemoryRange> static_smem;
};

// The static symbol table of the loaded object (shared library or executable) that holds `address`.
struct ObjectSymbols {
  std::vector<char> image;  // the object's file
  const Elf64_Ehdr* header = nullptr;
  const Elf64_Shdr* sections = nullptr;
  const Elf64_Sym* syms = nullptr;
  size_t nsyms = 0;
  const char* names = nullptr;
  uintptr_t bias = 0;  // load address of the object

  explicit ObjectSymbols(const void* address) {
    Dl_info info{};
    link_map* map = nullptr;
    if (!dladdr1(address, &info, reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP) || !map) return;
    std::string path = (map->l_name && map->l_name[0]) ? map->l_name : "/proc/self/exe";
    std::ifstream in(path, std::ios::binary);
    image.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (image.size() < sizeof(Elf64_Ehdr)) return;
    auto* eh = reinterpret_cast<const Elf64_Ehdr*>(image.data());
    if (std::memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_shoff == 0) return;
    auto* shdrs = reinterpret_cast<const Elf64_Shdr*>(image.data() + eh->e_shoff);
    for (int i = 0; i < eh->e_shnum; ++i)
      if (shdrs[i].sh_type == SHT_SYMTAB) {
        header = eh;
        sections = shdrs;
        syms = reinterpret_cast<const Elf64_Sym*>(image.data() + shdrs[i].sh_offset);
        nsyms = shdrs[i].sh_size / sizeof(Elf64_Sym);
        names = image.data() + shdrs[shdrs[i].sh_link].sh_offset;
        bias = map->l_addr;
      }
  }
  bool is_defined_function(const Elf64_Sym& s) const { return ELF64_ST_TYPE(s.st_info) == STT_FUNC && s.st_value; }
};

inline std::string demangled(const char* symbol) {
  int status = 0;
  char* text = abi::__cxa_demangle(symbol, nullptr, nullptr, &status);
  std::string name = status == 0 && text ? text : symbol;
  std::free(text);
  return name;
}

// Static locals of a function with mangled name _Z<encoding> are named _ZZ<encoding>E<name>...;
// `__shared__` arrays cannot have initialisers, so they are the function's objects in .bss.
inline KernelInfo find_kernel_info(const void* kernel) {
  KernelInfo kernel_info;
  std::vector<MemoryRange>& ranges = kernel_info.static_smem;
  const ObjectSymbols object(kernel);
  if (!object.syms) return kernel_info;
  const Elf64_Sym* syms = object.syms;
  const char* names = object.names;

  std::string kernel_symbol;
  for (size_t i = 0; i < object.nsyms; ++i)
    if (object.is_defined_function(syms[i]) && object.bias + syms[i].st_value == reinterpret_cast<uintptr_t>(kernel)) {
      kernel_symbol = names + syms[i].st_name;
      break;
    }
  if (kernel_symbol.empty()) return kernel_info;
  kernel_info.name = demangled(kernel_symbol.c_str());
  std::string prefix = kernel_symbol.rfind("_Z", 0) == 0
                           ? "_ZZ" + kernel_symbol.substr(2) + "E"
                           : "_ZZ" + std::to_string(kernel_symbol.size()) + kernel_symbol + "E";
  for (size_t i = 0; i < object.nsyms; ++i) {
    const Elf64_Sym& s = syms[i];
    if (ELF64_ST_TYPE(s.st_info) != STT_OBJECT || s.st_size == 0) continue;
    if (s.st_shndx == SHN_UNDEF || s.st_shndx >= object.header->e_shnum ||
        object.sections[s.st_shndx].sh_type != SHT_NOBITS)
      continue;
    if (std::strncmp(names + s.st_name, prefix.c_str(), prefix.size()) != 0) continue;
    ranges.push_back({reinterpret_cast<unsigned char*>(object.bias + s.st_value), size_t(s.st_size)});
  }
  return kernel_info;
}

// Demangled names of the functions defined in the object that holds `address` (sorted, unique): with
// executed_kernels(), tests find the kernel instantiations that were compiled but never run.
inline std::vector<std::string> defined_functions(const void* address) {
  const ObjectSymbols object(address);
  std::vector<std::string> functions;
  for (size_t i = 0; i < object.nsyms; ++i)
    if (object.is_defined_function(object.syms[i]))
      functions.push_back(demangled(object.names + object.syms[i].st_name));
  std::sort(functions.begin(), functions.end());
  functions.erase(std::unique(functions.begin(), functions.end()), functions.end());
  return functions;
}

// Every kernel launched since the last clear_executed_kernels(), by demangled name.
inline const std::set<std::string>& executed_kernels() { return rt().executed_kernels; }
inline void clear_executed_kernels() { rt().executed_kernels.clear(); }

inline const KernelInfo& kernel_info(const void* kernel) {
  static std::unordered_map<const void*, KernelInfo> cache;
  auto it = cache.find(kernel);
  if (it == cache.end()) it = cache.emplace(kernel, find_kernel_info(kernel)).first;
  return it->second;
}

// ---- warp operations ------------------------------------------------------------------------

// Resolves every warp op whose named, non-exited lanes have all arrived; all results of a group
// are computed before any lane continues. Returns whether some thread became runnable.
inline bool resolve_warp_ops() {
  Runtime& r = rt();
  bool progressed = false;
  for (int base = 0; base < r.nthreads; base += 32) {
    int lanes = std::min(32, r.nthreads - base);
    unsigned live = 0;
    for (int l = 0; l < lanes; ++l)
      if (r.threads[base + l].status != Status::exited) live |= 1u << l;
    for (int l = 0; l < lanes; ++l) {
      ThreadSlot& me = r.threads[base + l];
      if (me.status != Status::at_warp_op) continue;
      if (!(me.mask & (1u << l)))
        fail(std::string(warp_op_name(me.op)) + " at " + site(me) + ": mask does not name the calling lane, " +
             where(base + l));
      unsigned group = me.mask & live;
      bool arrived = true;
      for (int k = 0; k < lanes; ++k)
        if ((group >> k & 1) && r.threads[base + k].status != Status::at_warp_op) arrived = false;
      if (!arrived) continue;
      for (int k = 0; k < lanes; ++k) {
        const ThreadSlot& other = r.threads[base + k];
        if ((group >> k & 1) && (other.op != me.op || other.mask != me.mask))
          fail("mismatched warp ops: " + where(base + l) + " at " + warp_op_name(me.op) + " " + site(me) +
               ", " + where(base + k) + " at " + warp_op_name(other.op) + " " + site(other));
      }
      // Lanes that are not in the group (not named, exited, past the block) read as poison.
      auto value_of = [&](int src_lane) -> uint64_t {
        return (src_lane >= 0 && src_lane < 32 && (group >> src_lane & 1)) ? r.threads[base + src_lane].value
                                                                           : ~uint64_t(0);
      };
      uint64_t ballot = 0;
      for (int k = 0; k < lanes; ++k)
        if ((group >> k & 1) && r.threads[base + k].value != 0) ballot |= 1ull << k;
      for (int k = 0; k < lanes; ++k) {
        if (!(group >> k & 1)) continue;
        ThreadSlot& t = r.threads[base + k];
        int w = t.width;
        if (t.op >= WarpOpKind::shfl_idx && t.op <= WarpOpKind::shfl_xor && (w < 1 || w > 32 || (w & (w - 1))))
          fail(std::string(warp_op_name(t.op)) + " at " + site(t) + ": width " + std::to_string(w) +
               " is not a power of two <= 32, " + where(base + k));
        int segment = k & ~(w - 1);
        switch (t.op) {
          case WarpOpKind::syncwarp: t.result = 0; break;
          case WarpOpKind::shfl_idx: t.result = value_of(segment + (t.arg & (w - 1))); break;
          case WarpOpKind::shfl_up: t.result = k - t.arg < segment ? t.value : value_of(k - t.arg); break;
          case WarpOpKind::shfl_down: t.result = k + t.arg >= segment + w ? t.value : value_of(k + t.arg); break;
          case WarpOpKind::shfl_xor: {
            int src = k ^ t.arg;
            t.result = src >= segment + w ? t.value : value_of(src);
            break;
          }
          case WarpOpKind::ballot: t.result = ballot; break;
          case WarpOpKind::any: t.result = ballot != 0; break;
          case WarpOpKind::all: t.result = ballot == group; break;
          case WarpOpKind::wmma: t.result = value_of(0); break;  // lane 0's call site (wmma_emu.h)
        }
      }
      unsigned parity = 0;
      for (int k = 0; k < lanes; ++k)
        if (group >> k & 1) parity |= (r.threads[base + k].warp_op_count & 1u) << k;
      for (int k = 0; k < lanes; ++k)
        if (group >> k & 1) {
          ThreadSlot& t = r.threads[base + k];
          t.status = Status::runnable, t.group = group, t.group_parity = parity;
        }
      progressed = true;
    }
  }
  return progressed;
}

// From inside a sync point's TsanIgnore scope: a fiber is never suspended with TSan ignores enabled
// (fibers abandoned by an error are destroyed, which TSan refuses for a fiber inside an ignore).
inline void yield_from_sync_point() {
#if DC_EMU_TSAN
  __tsan_ignore_thread_end();
  yield_to_scheduler();
  __tsan_ignore_thread_begin();
#else
  yield_to_scheduler();
#endif
}

inline uint64_t warp_op(WarpOpKind op, unsigned mask, uint64_t value, int arg, int width, const char* file,
                        int line) {
  Runtime& r = rt();
  [[maybe_unused]] TsanIgnore ignore;
  if (r.current < 0) fail(std::string(warp_op_name(op)) + " called outside an emulated kernel");
  ThreadSlot& me = r.threads[r.current];
  me.op = op;
  me.mask = mask;
  me.value = value;
  me.arg = arg;
  me.width = width;
  me.file = file;
  me.line = line;
  me.status = Status::at_warp_op;
#if DC_EMU_TSAN
  __tsan_release(&r.tsan_lane_sync[me.warp_op_count & 1][r.current]);
#endif
  yield_from_sync_point();
#if DC_EMU_TSAN
  // Each lane of the op sees what every other lane of the op did before it.
  const int base = r.current & ~31;
  for (int k = 0; k < 32; ++k)
    if (me.group >> k & 1) __tsan_acquire(&r.tsan_lane_sync[me.group_parity >> k & 1][base + k]);
  ++me.warp_op_count;
#endif
  return r.threads[r.current].result;
}

template <typename T>
inline uint64_t to_bits(T v) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "warp shuffles move at most 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  if (sizeof(T) < 8) bits |= ~uint64_t(0) << (8 * sizeof(T));  // keeps poisoned reads all-ones
  return bits;
}
template <typename T>
inline T from_bits(uint64_t bits) {
  T v;
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}

// ---- barriers and the block scheduler -------------------------------------------------------

inline int barrier(int predicate, const char* file, int line) {
  Runtime& r = rt();
  [[maybe_unused]] TsanIgnore ignore;
  if (r.current < 0) fail("__syncthreads called outside an emulated kernel");
  ThreadSlot& me = r.threads[r.current];
  me.status = Status::at_barrier;
  me.file = file;
  me.line = line;
  me.predicate = predicate;
#if DC_EMU_TSAN
  // Every thread releases before any thread is resumed, then each acquires what all released.
  // Two addresses, by the parity of the barrier count: a thread resumed earlier may release at the
  // next barrier before a later one acquires this one, but never at the one after (it cannot
  // complete without the later thread). Warp ops do the same per lane, by each lane's op count:
  // all runnable threads run once between two resolutions, so a lane releases at most once more.
  char* sync = &r.tsan_barrier_sync[me.barrier_count++ & 1];
  __tsan_release(sync);
#endif
  yield_from_sync_point();
#if DC_EMU_TSAN
  __tsan_acquire(sync);
#endif
  return r.barrier_result;
}

[[noreturn]] inline void report_deadlock() {
  Runtime& r = rt();
  std::string msg = "deadlock: no thread can make progress;";
  int shown = 0;
  for (int t = 0; t < r.nthreads && shown < 6; ++t) {
    const ThreadSlot& s = r.threads[t];
    if (s.status == Status::at_warp_op) {
      msg += " " + where(t) + " waits at " + warp_op_name(s.op) + " " + site(s) + ";";
      ++shown;
    }
  }
  for (int t = 0; t < r.nthreads && shown < 8; ++t) {
    const ThreadSlot& s = r.threads[t];
    if (s.status == Status::at_barrier) {
      msg += " " + where(t) + " waits at __syncthreads " + site(s) + ";";
      ++shown;
    }
  }
  fail(msg);
}

inline void run_block(const std::vector<MemoryRange>& static_smem) {
  Runtime& r = rt();
  for (const MemoryRange& m : static_smem) std::memset(m.begin, 0xFF, m.bytes);
  if (r.dynamic_smem_bytes) std::memset(r.dynamic_smem, 0xFF, r.dynamic_smem_bytes);
  const int n = r.nthreads;
  for (int t = 0; t < n; ++t) {
    r.threads[t] = ThreadSlot{};
    start_fiber(t);
  }
  std::vector<int> order(n);
  for (;;) {
    order.clear();
    for (int t = 0; t < n; ++t)
      if (r.threads[t].status == Status::runnable) order.push_back(t);
    if (options().order == Order::reverse) std::reverse(order.begin(), order.end());
    if (options().order == Order::random) std::shuffle(order.begin(), order.end(), r.rng);
    for (int t : order) {
      resume(t);
      if (r.fiber_error) {
        r.stacks_dirty = true;
        std::exception_ptr e = std::exchange(r.fiber_error, nullptr);
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          fail(std::string(ex.what()) + " (in " + where(t) + ")");
        }
      }
    }
    if (resolve_warp_ops()) continue;
    int exited = 0, waiting = 0, first_exited = -1;
    for (int t = 0; t < n; ++t) {
      if (r.threads[t].status == Status::exited && first_exited < 0) first_exited = t;
      exited += r.threads[t].status == Status::exited;
      waiting += r.threads[t].status == Status::at_barrier;
    }
    if (exited == n) {
#if DC_EMU_TSAN
      __tsan_acquire(&r.tsan_exit_sync);  // the next block (and the host) after this one
#endif
      return;
    }
    r.stacks_dirty = true;  // any error below abandons live fibers
    if (waiting != n - exited) report_deadlock();
    int first = 0;
    while (r.threads[first].status != Status::at_barrier) ++first;
    const ThreadSlot& ref = r.threads[first];
    if (exited)
      fail("__syncthreads at " + site(ref) + " reached after " + where(first_exited) +
           " exited: every thread of the block must reach every barrier (" + std::to_string(exited) + " of " +
           std::to_string(n) + " threads exited)");
    int count = 0;
    for (int t = 0; t < n; ++t) {
      const ThreadSlot& s = r.threads[t];
      if (s.line != ref.line || std::strcmp(s.file, ref.file) != 0)
        fail("divergent __syncthreads: " + where(first) + " waits at " + site(ref) + ", " + where(t) +
             " waits at " + site(s));
      count += s.predicate != 0;
    }
    r.barrier_result = count;
#if defined(DC_EMU_COUNT)
    if (counting_enabled) count_barrier(n);
#endif
    for (int t = 0; t < n; ++t) r.threads[t].status = Status::runnable;
    r.stacks_dirty = false;
  }
}

inline void check_launch(const void* kernel, dim3 grid, dim3 block, size_t smem) {
  unsigned long long threads = 1ull * block.x * block.y * block.z;
  if (!grid.x || !grid.y || !grid.z || !threads)
    fail(std::string("invalid launch of ") + rt().kernel_name + ": empty grid or block");
  if (threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64)
    fail(std::string("invalid launch of ") + rt().kernel_name + ": block " + dim_string(block.x, block.y, block.z) +
         " exceeds 1024 threads or the per-dimension limits");
  if (grid.y > 65535 || grid.z > 65535 || grid.x > 2147483647u)
    fail(std::string("invalid launch of ") + rt().kernel_name + ": grid " + dim_string(grid.x, grid.y, grid.z) +
         " exceeds the limits");
  auto opt_in = rt().max_dynamic_smem.find(kernel);
  size_t allowed = opt_in == rt().max_dynamic_smem.end() ? kMaxDefaultSmem : size_t(opt_in->second);
  if (smem > allowed)
    fail(std::string("invalid launch of ") + rt().kernel_name + ": " + std::to_string(smem) +
         " bytes of dynamic shared memory, more than the " + std::to_string(allowed) +
         " allowed (above 48 KiB needs cudaFuncSetAttribute(MaxDynamicSharedMemorySize))");
}

// The CUDA thread that is running, for sanitizer reports.
inline void describe_current_thread() {
  Runtime& r = rt();
  if (r.in_launch && r.current >= 0) std::fprintf(stderr, "dc_emu: sanitizer report from %s\n", where(r.current).c_str());
}

#if DC_EMU_TSAN
// TSan reports name both racing CUDA threads by their fiber's name.
inline void name_tsan_fibers() {
  Runtime& r = rt();
  char name[96];
  for (int t = 0; t < r.nthreads; ++t) {
    uint3 ti = thread_index(t);
    std::snprintf(name, sizeof name, "block (%u,%u,%u) thread (%u,%u,%u)", blockIdx.x, blockIdx.y, blockIdx.z, ti.x,
                  ti.y, ti.z);
    __tsan_set_fiber_name(r.tsan_fibers[t], name);
  }
}
#endif

#if defined(DC_EMU_COUNT)
// Counting build: runs the sampled blocks (all when the sample size is 0) in order, counting their accesses.
inline void run_counted_grid(const KernelInfo& info, dim3 grid, dim3 block, size_t smem) {
  Counter& c = counter();
  LaunchCounts counts;
  counts.kernel = info.name;
  counts.grid[0] = grid.x, counts.grid[1] = grid.y, counts.grid[2] = grid.z;
  counts.block[0] = block.x, counts.block[1] = block.y, counts.block[2] = block.z;
  counts.smem = smem;
  counts.blocks_total = uint64_t(grid.x) * grid.y * grid.z;
  c.shared_ranges.clear();
  for (const MemoryRange& m : info.static_smem)
    c.shared_ranges.push_back({uintptr_t(m.begin), uintptr_t(m.begin) + m.bytes});
  if (smem) c.shared_ranges.push_back({uintptr_t(rt().dynamic_smem), uintptr_t(rt().dynamic_smem) + smem});
  c.launch_sectors.clear();
  for (auto [z, wz] : sampled_indices(grid.z, c.sample))
    for (auto [y, wy] : sampled_indices(grid.y, c.sample))
      for (auto [x, wx] : sampled_indices(grid.x, c.sample)) {
        blockIdx = uint3{x, y, z};
        count_begin_block(rt().nthreads);
        run_block(info.static_smem);
        count_end_block(counts, wx * wy * wz);
      }
  c.launches.push_back(counts);
}
#endif

// Runs every block of the grid; the whole launch is synchronous.
inline void run_grid(const void* kernel, const char* name, dim3 grid, dim3 block, size_t smem,
                     void (*invoke)(void*), void* ctx) {
  Runtime& r = rt();
  if (r.in_launch) fail("kernel launch from inside an emulated kernel");
  [[maybe_unused]] TsanIgnore ignore;  // the scheduler's accesses are bookkeeping, not the CUDA threads'
#if DC_EMU_ASAN
  // Sanitizer reports show the host stack; this names the CUDA block and thread as well.
  static const bool death_callback_set = (__sanitizer_set_death_callback(&describe_current_thread), true);
  (void)death_callback_set;
#endif
  const KernelInfo& info = kernel_info(kernel);
  r.kernel_name = info.name.empty() ? name : info.name.c_str();
  check_launch(kernel, grid, block, smem);
  r.executed_kernels.insert(r.kernel_name);
#if DC_EMU_TSAN
  r.tsan_scheduler = __tsan_get_current_fiber();
  if (r.stacks_dirty) {
    // Fibers abandoned by an error (their shadow call stacks hold the abandoned frames): fresh ones.
    for (void* f : r.tsan_fibers) __tsan_destroy_fiber(f);
    r.tsan_fibers.clear();
  }
#endif
  reserve_stacks();
#if DC_EMU_ASAN
  if (r.stacks_dirty) __asan_unpoison_memory_region(r.pool, kMaxThreads * slot_bytes());
#endif
  r.stacks_dirty = false;
  r.invoke = invoke;
  r.invoke_ctx = ctx;
  r.nthreads = int(block.x * block.y * block.z);
  r.threads.assign(r.nthreads, ThreadSlot{});
#if DC_EMU_TSAN
  while (r.tsan_fibers.size() < size_t(r.nthreads)) r.tsan_fibers.push_back(__tsan_create_fiber(0));
#endif
  r.rng.seed(options().seed);
  gridDim = grid;
  blockDim = block;
  // Exact-size allocation so that ASan sees reads past the dynamic shared memory.
  struct AlignedFree {
    void operator()(void* p) const { ::operator delete(p, std::align_val_t(16)); }
  };
  std::unique_ptr<void, AlignedFree> dynamic(::operator new(smem ? smem : 1, std::align_val_t(16)));
  r.dynamic_smem = static_cast<unsigned char*>(dynamic.get());
  r.dynamic_smem_bytes = smem;

  size_t nblocks = size_t(grid.x) * grid.y * grid.z;
  std::vector<size_t> block_order(nblocks);
  for (size_t i = 0; i < nblocks; ++i) block_order[i] = i;
  if (options().order == Order::reverse) std::reverse(block_order.begin(), block_order.end());
  if (options().order == Order::random) std::shuffle(block_order.begin(), block_order.end(), r.rng);

  struct LaunchScope {
    OverflowHandlerScope overflow;
    LaunchScope() { rt().in_launch = true; }
    ~LaunchScope() {
#if DC_EMU_TSAN
      // An error abandoned fibers that never reached their exit release: release for them (TSan's
      // current thread switched without a stack switch), so that later launches, which reuse the
      // host stack and the fiber stacks, are ordered after everything they did.
      Runtime& r = rt();
      if (r.stacks_dirty) {
        for (int t = 0; t < r.nthreads; ++t) {
          __tsan_switch_to_fiber(r.tsan_fibers[t], __tsan_switch_to_fiber_no_sync);
          __tsan_release(&r.tsan_exit_sync);
          __tsan_switch_to_fiber(r.tsan_scheduler, __tsan_switch_to_fiber_no_sync);
        }
        __tsan_acquire(&r.tsan_exit_sync);
      }
#endif
      rt().in_launch = false;
      rt().current = -1;
      rt().dynamic_smem = nullptr;
    }
  } scope;
  // Stack overflow: the SIGSEGV handler jumps here, out of the overflowing fiber.
  if (sigsetjmp(r.overflow_jump, 1)) {
    r.stacks_dirty = true;
    fail("fiber stack overflow (" + std::to_string(kStackBytes / 1024) + " KiB per CUDA thread) in " +
         where(r.current));
  }
#if defined(DC_EMU_COUNT)
  if (counting_enabled) {
    run_counted_grid(info, grid, block, smem);
    return;
  }
#endif
  for (size_t b : block_order) {
    blockIdx = uint3{unsigned(b % grid.x), unsigned(b / grid.x % grid.y), unsigned(b / (size_t(grid.x) * grid.y))};
#if DC_EMU_TSAN
    name_tsan_fibers();
#endif
    run_block(info.static_smem);
  }
}

template <typename... Params>
struct Launch {
  void (*kernel)(Params...);
  dim3 grid, block;
  size_t smem;
  const char* name;

  template <typename... Args>
  void operator()(Args&&... args) const {
    static_assert(sizeof...(Args) == sizeof...(Params), "wrong number of kernel arguments");
    // Each fiber's call copies these into its own by-value parameters.
    std::tuple<std::decay_t<Params>...> params(std::forward<Args>(args)...);
    auto call = [&] { std::apply(kernel, params); };
    run_grid(reinterpret_cast<const void*>(kernel), name, grid, block, smem,
             [](void* c) { (*static_cast<decltype(call)*>(c))(); }, &call);
  }
};

template <typename... Params>
Launch<Params...> make_launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t,
                              const char* name) {
  return Launch<Params...>{kernel, grid, block, smem, name};
}

}  // namespace dc_emu

#define DC_LAUNCH(kernel, grid, block, smem_bytes, stream) \
  ::dc_emu::make_launch(kernel, grid, block, smem_bytes, stream, #kernel)

template <typename T>
inline T* dc_dynamic_smem() {
  return reinterpret_cast<T*>(dc_emu::rt().dynamic_smem);
}

template <typename Kernel>
inline cudaError_t cudaFuncSetAttribute(Kernel* kernel, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || size_t(value) > dc_emu::kMaxOptInSmem) return cudaErrorInvalidValue;
    dc_emu::rt().max_dynamic_smem[reinterpret_cast<const void*>(kernel)] = value;
  }
  return cudaSuccess;
}

// ---------------------------------------------------------------------------------------------
// Synchronisation and warp intrinsics
// ---------------------------------------------------------------------------------------------
inline void __syncthreads(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  dc_emu::barrier(0, file, line);
}
inline int __syncthreads_count(int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return dc_emu::barrier(pred, file, line);
}
inline int __syncthreads_or(int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return dc_emu::barrier(pred, file, line) != 0;
}
inline int __syncthreads_and(int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return dc_emu::barrier(pred, file, line) == int(blockDim.x * blockDim.y * blockDim.z);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  dc_emu::warp_op(dc_emu::WarpOpKind::syncwarp, mask, 0, 0, 32, file, line);
}
inline void __threadfence() {}
inline void __threadfence_block() {}

template <typename T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize, const char* file = __builtin_FILE(),
                     int line = __builtin_LINE()) {
  using namespace dc_emu;
  return from_bits<T>(warp_op(WarpOpKind::shfl_idx, mask, to_bits(var), src_lane, width, file, line));
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                        const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  using namespace dc_emu;
  return from_bits<T>(warp_op(WarpOpKind::shfl_up, mask, to_bits(var), int(delta), width, file, line));
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                          const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  using namespace dc_emu;
  return from_bits<T>(warp_op(WarpOpKind::shfl_down, mask, to_bits(var), int(delta), width, file, line));
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize,
                         const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  using namespace dc_emu;
  return from_bits<T>(warp_op(WarpOpKind::shfl_xor, mask, to_bits(var), lane_mask, width, file, line));
}
inline unsigned __ballot_sync(unsigned mask, int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return unsigned(dc_emu::warp_op(dc_emu::WarpOpKind::ballot, mask, pred != 0, 0, 32, file, line));
}
inline int __any_sync(unsigned mask, int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return int(dc_emu::warp_op(dc_emu::WarpOpKind::any, mask, pred != 0, 0, 32, file, line));
}
inline int __all_sync(unsigned mask, int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return int(dc_emu::warp_op(dc_emu::WarpOpKind::all, mask, pred != 0, 0, 32, file, line));
}
inline unsigned __activemask() {
  // Lanes of the calling warp that have not exited (the emulator has no intra-warp divergence).
  dc_emu::Runtime& r = dc_emu::rt();
  [[maybe_unused]] dc_emu::TsanIgnore ignore;
  int base = r.current & ~31;
  unsigned mask = 0;
  for (int l = 0; l < 32 && base + l < r.nthreads; ++l)
    if (r.threads[base + l].status != dc_emu::Status::exited) mask |= 1u << l;
  return mask;
}

// ---------------------------------------------------------------------------------------------
// Atomics (blocks and threads never run concurrently, so plain read-modify-write is atomic; under
// TSan they are real relaxed atomics, which TSan does not report as races)
// ---------------------------------------------------------------------------------------------
#if DC_EMU_TSAN
namespace dc_emu {
template <typename T, typename F>
inline T atomic_update(T* address, F f) {
  static_assert(std::is_trivially_copyable_v<T> && (sizeof(T) == 4 || sizeof(T) == 8), "4- or 8-byte atomics");
  T old;
  __atomic_load(address, &old, __ATOMIC_RELAXED);
  T desired = f(old);
  while (!__atomic_compare_exchange(address, &old, &desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
    desired = f(old);
  return old;
}
}  // namespace dc_emu
template <typename T>
inline T atomicAdd(T* address, T value) {
  static_assert(std::is_arithmetic_v<T>, "atomicAdd on arithmetic types only");
  return dc_emu::atomic_update(address, [&](T old) { return T(old + value); });
}
template <typename T>
inline T atomicMax(T* address, T value) {
  return dc_emu::atomic_update(address, [&](T old) { return old < value ? value : old; });
}
template <typename T>
inline T atomicMin(T* address, T value) {
  return dc_emu::atomic_update(address, [&](T old) { return value < old ? value : old; });
}
template <typename T>
inline T atomicExch(T* address, T value) {
  return dc_emu::atomic_update(address, [&](T) { return value; });
}
template <typename T>
inline T atomicCAS(T* address, T compare, T value) {
  __atomic_compare_exchange(address, &compare, &value, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;  // the old value, whether or not it was swapped
}
#else
template <typename T>
inline T atomicAdd(T* address, T value) {
  static_assert(std::is_arithmetic_v<T>, "atomicAdd on arithmetic types only");
  T old = *address;
  *address = old + value;
  return old;
}
template <typename T>
inline T atomicMax(T* address, T value) {
  T old = *address;
  *address = old < value ? value : old;
  return old;
}
template <typename T>
inline T atomicMin(T* address, T value) {
  T old = *address;
  *address = value < old ? value : old;
  return old;
}
template <typename T>
inline T atomicExch(T* address, T value) {
  return std::exchange(*address, value);
}
template <typename T>
inline T atomicCAS(T* address, T compare, T value) {
  T old = *address;
  if (old == compare) *address = value;
  return old;
}
#endif

// ---------------------------------------------------------------------------------------------
// Loads and math
// ---------------------------------------------------------------------------------------------
// Read-only cached load; a misaligned vector load faults on a GPU, so it is an error here too.
template <typename T>
inline T __ldg(const T* p) {
  if (reinterpret_cast<uintptr_t>(p) % alignof(T) != 0) {
    dc_emu::Runtime& r = dc_emu::rt();
    dc_emu::fail("misaligned __ldg of " + std::to_string(sizeof(T)) + " bytes (alignment " +
                 std::to_string(alignof(T)) + ")" + (r.current >= 0 ? " in " + dc_emu::where(r.current) : ""));
  }
  return *p;
}

// CUDA's device min/max: any arithmetic mix, fmin/fmax semantics for floating point.
template <typename A, typename B, typename = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  if constexpr (std::is_floating_point_v<C>) return std::fmin(C(a), C(b));
  else return C(b) < C(a) ? C(b) : C(a);
}
template <typename A, typename B, typename = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  if constexpr (std::is_floating_point_v<C>) return std::fmax(C(a), C(b));
  else return C(a) < C(b) ? C(b) : C(a);
}

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline void __sincosf(float x, float* s, float* c) { *s = std::sin(x), *c = std::cos(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline float __saturatef(float x) { return x != x ? 0.0f : std::fmin(std::fmax(x, 0.0f), 1.0f); }
inline float __int_as_float(int x) { return dc_emu::from_bits<float>(uint32_t(x)); }
inline int __float_as_int(float x) { return int(uint32_t(dc_emu::to_bits(x))); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x ? __builtin_clz(unsigned(x)) : 32; }
inline int __ffs(int x) { return __builtin_ffs(x); }

#include "wmma_emu.h"  // nvcuda::wmma

#if defined(DC_EMU_COUNT)
// The calls g++ -fsanitize=kernel-address inserts at every load and store (see counters.h).
#define DC_EMU_HOOK extern "C" __attribute__((no_sanitize("kernel-address"), no_sanitize_coverage))
#define DC_EMU_ACCESS_HOOKS(bytes)                                                                            \
  DC_EMU_HOOK void __asan_load##bytes##_noabort(uintptr_t a) { dc_emu::count_access(a, bytes, false); }  \
  DC_EMU_HOOK void __asan_store##bytes##_noabort(uintptr_t a) { dc_emu::count_access(a, bytes, true); }
DC_EMU_ACCESS_HOOKS(1)
DC_EMU_ACCESS_HOOKS(2)
DC_EMU_ACCESS_HOOKS(4)
DC_EMU_ACCESS_HOOKS(8)
DC_EMU_ACCESS_HOOKS(16)
#undef DC_EMU_ACCESS_HOOKS
DC_EMU_HOOK void __asan_loadN_noabort(uintptr_t a, size_t n) { dc_emu::count_access(a, uint32_t(n), false); }
DC_EMU_HOOK void __asan_storeN_noabort(uintptr_t a, size_t n) { dc_emu::count_access(a, uint32_t(n), true); }
// The call -fsanitize-coverage=trace-pc inserts at the start of every basic block: its return address names it.
DC_EMU_HOOK void __sanitizer_cov_trace_pc() {
  dc_emu::count_block_entry(reinterpret_cast<uintptr_t>(__builtin_return_address(0)));
}
#undef DC_EMU_HOOK
// Other calls of the instrumentation, with nothing to do here.
extern "C" void __asan_handle_no_return() {}
extern "C" void __asan_before_dynamic_init(const char*) {}
extern "C" void __asan_after_dynamic_init() {}
#endif
