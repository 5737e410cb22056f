// Counting build of the emulator (DC_EMU_COUNT, included by cuda_emu.h): per-launch memory-access counts.
//
// The harness is compiled with g++ -fsanitize=kernel-address and a call threshold of 0, so every load
// and store of compiled code calls __asan_{load,store}{1,2,4,8,16,N}_noabort(addr), defined below. An
// access made by a CUDA thread (a fiber is running) is classified by address: inside the block's static
// or dynamic shared memory -> shared; inside a global range registered by the host (the tensors passed
// to the launch function) -> global; anything else (fiber stacks = registers/locals, the emulator's own
// state) is ignored. The n-th shared (global) access of each lane of a warp forms the warp's n-th
// shared (global) request, as the lanes of a warp issue the same instruction in lockstep.
//   shared wavefronts of a request: 32 banks of 4 bytes. Lanes are served in phases: the whole warp for
//   accesses of <= 4 bytes, half-warps for 8 bytes, quarter-warps for 16 bytes (so a 64-bit request takes
//   >= 2 wavefronts, a 128-bit one >= 4). Per phase: the largest number of distinct 4-byte words in one
//   bank (the same word from several lanes is a broadcast); a request's wavefronts = the sum over its
//   phases that have active lanes.
//   global sectors of a request: distinct 32-byte sectors its lanes touch. dram sectors: sectors not yet
//   touched by an earlier emulated block of the launch (a lower bound of DRAM traffic, no cache misses).
// Executed multiply-adds: the build also has -fsanitize-coverage=trace-pc, so every basic block of compiled
// code starts with a call of __sanitizer_cov_trace_pc (defined by the emulator), whose return address names the
// block. Blocks entered by a CUDA thread are counted per return address; tests/emu/harness.py turns them into
// floating-point multiplies from the library's disassembly (the multiply instructions between a block's call
// and the next one, lanes counted). WMMA mma_sync is counted here instead (M*N*K per warp) and its emulated
// arithmetic, which every lane repeats for the whole matrix, is kept out of the block counts.
// Sampling: with a sample size s > 0, each grid dimension longer than s runs indices {0, 1, .., interior
// picks (low-discrepancy, see sampled_indices) .., n-2, n-1}, each interior pick standing for an equal share of
// the interior; a block's counts
// are weighted by the product of its dimensions' shares, so totals are estimates of the full launch.
#pragma once

#include <cstdint>
#include <map>
#include <unordered_map>
#include <unordered_set>

namespace dc_emu {

struct LaunchCounts {
  std::string kernel;
  unsigned grid[3], block[3];
  size_t smem = 0;
  uint64_t blocks_total = 0, blocks_emulated = 0;
  double shared_requests = 0, shared_wavefronts = 0;
  double global_load_requests = 0, global_load_sectors = 0, global_store_requests = 0, global_store_sectors = 0;
  double dram_sectors = 0;
  double shared_conflict_free_wavefronts = 0;         // what the shared requests would take without bank conflicts
  double tensor_fma = 0;                              // WMMA multiply-adds (M*N*K per warp mma_sync)
  std::unordered_map<uintptr_t, double> block_entries;  // basic block (trace-pc return address) -> entries
};

struct Access {
  uintptr_t addr;
  uint32_t lane_size;  // lane << 8 | bytes
};

// Plain flags (no function-local statics, whose guarded initialisation the hooks would re-enter). The two
// guards are volatile: g++ declares its instrumentation calls leaf functions (they read none of this file's
// variables), so a plain `guard = true; <instrumented loads>; guard = false;` may lose the first store.
inline bool counting_enabled = false;
inline volatile bool counting_busy = false;  // re-entry guard: the counting code is itself instrumented
inline volatile bool block_counting_paused = false;  // inside the emulator's own arithmetic of a warp op (WMMA)

struct Counter {
  int sample = 0;  // 0: every block; else the per-dimension sample size
  std::vector<std::pair<uintptr_t, uintptr_t>> global_ranges;  // [begin, end), registered by the host
  std::vector<std::pair<uintptr_t, uintptr_t>> shared_ranges;  // the running kernel's shared memory
  std::vector<LaunchCounts> launches;
  // the running block: per thread the number of shared accesses / global loads / stores so far,
  // per warp its requests
  std::vector<uint32_t> shared_seq, load_seq, store_seq;
  std::vector<std::vector<std::vector<Access>>> shared_req, load_req, store_req;  // [warp][n] -> accesses
  std::unordered_set<uintptr_t> launch_sectors;
  std::unordered_map<uintptr_t, uint64_t> block_entries;  // the running block's basic-block entries
  double tensor_fma = 0;                                  // the running block's WMMA multiply-adds
};

inline Counter& counter() {
  static Counter c;
  return c;
}

inline uint64_t shared_wavefronts(const std::vector<Access>& accesses) {
  uint32_t bytes = 0;
  for (const Access& a : accesses) bytes = std::max(bytes, a.lane_size & 0xFF);
  const int lanes_per_phase = bytes <= 4 ? 32 : bytes <= 8 ? 16 : 8;
  uint64_t total = 0;
  for (int phase = 0; phase < 32 / lanes_per_phase; ++phase) {
    std::map<int, std::set<uintptr_t>> words_per_bank;
    for (const Access& a : accesses) {
      int lane = int(a.lane_size >> 8);
      if (lane / lanes_per_phase != phase) continue;
      for (uintptr_t w = a.addr / 4; w <= (a.addr + (a.lane_size & 0xFF) - 1) / 4; ++w)
        words_per_bank[int(w % 32)].insert(w);
    }
    size_t worst = 0;
    for (auto& [bank, words] : words_per_bank) worst = std::max(worst, words.size());
    total += worst;
  }
  return total;
}

// Wavefronts of the request without bank conflicts: one per phase that has active lanes (1 for accesses of
// <= 4 bytes, up to 2 for 8 bytes, up to 4 for 16 bytes). shared_wavefronts / this = the conflict degree.
inline uint64_t conflict_free_wavefronts(const std::vector<Access>& accesses) {
  uint32_t bytes = 0;
  for (const Access& a : accesses) bytes = std::max(bytes, a.lane_size & 0xFF);
  const int lanes_per_phase = bytes <= 4 ? 32 : bytes <= 8 ? 16 : 8;
  uint32_t phases = 0;  // bit p: phase p has an active lane
  for (const Access& a : accesses) phases |= 1u << ((a.lane_size >> 8) / lanes_per_phase);
  return uint64_t(__builtin_popcount(phases));
}

inline uint64_t sectors(const std::vector<Access>& accesses, std::unordered_set<uintptr_t>* launch_sectors,
                        uint64_t* new_sectors) {
  std::set<uintptr_t> s;
  for (const Access& a : accesses)
    for (uintptr_t x = a.addr / 32; x <= (a.addr + (a.lane_size & 0xFF) - 1) / 32; ++x) s.insert(x);
  for (uintptr_t x : s) *new_sectors += launch_sectors->insert(x).second;
  return s.size();
}

// Indices of one grid dimension to run and the number of indices each stands for.
inline std::vector<std::pair<unsigned, double>> sampled_indices(unsigned n, int sample) {
  std::vector<std::pair<unsigned, double>> picks;
  if (sample <= 0 || n <= unsigned(sample)) {
    for (unsigned i = 0; i < n; ++i) picks.push_back({i, 1.0});
    return picks;
  }
  const unsigned edge = sample >= 5 ? 2 : 1;  // edge indices run exactly on each side
  const unsigned interior = n - 2 * edge, picks_inside = unsigned(sample) - 2 * edge;
  for (unsigned i = 0; i < edge; ++i) picks.push_back({i, 1.0});
  // Interior picks at the fractional parts of (k + 1/2) / golden ratio (a low-discrepancy sequence): evenly
  // spaced picks would alias with a grid's period (e.g. tiles x channels x samples flattened into one dimension).
  for (unsigned k = 0; k < picks_inside; ++k) {
    const double u = (k + 0.5) * 0.6180339887498949;
    picks.push_back({edge + unsigned((u - unsigned(u)) * interior), double(interior) / picks_inside});
  }
  for (unsigned i = n - edge; i < n; ++i) picks.push_back({i, 1.0});
  return picks;
}

inline void count_begin_block(int nthreads) {
  Counter& c = counter();
  const int warps = (nthreads + 31) / 32;
  c.shared_seq.assign(nthreads, 0);
  c.load_seq.assign(nthreads, 0);
  c.store_seq.assign(nthreads, 0);
  for (auto* requests : {&c.shared_req, &c.load_req, &c.store_req}) {
    requests->clear();
    requests->resize(warps);
  }
  c.block_entries.clear();
  c.tensor_fma = 0;
}

// At a __syncthreads every lane of a warp is converged: a lane that made fewer accesses since (inactive in a
// divergent branch, e.g. a loop over 18 vectors on lanes 0..17) catches up with its warp's count, so that
// the lanes' n-th accesses after the barrier are the same instruction again. (Without it, one such loop shifted
// every later request of the warp by the difference, mixing different instructions' addresses in one request.)
inline void count_barrier(int nthreads) {
  Counter& c = counter();
  for (auto* seq : {&c.shared_seq, &c.load_seq, &c.store_seq})
    for (int w = 0; w < nthreads; w += 32) {
      const int end = std::min(nthreads, w + 32);
      const uint32_t most = *std::max_element(seq->begin() + w, seq->begin() + end);
      std::fill(seq->begin() + w, seq->begin() + end, most);
    }
}

// Adds the block's requests to the launch's totals, `weight` times (the blocks it stands for).
inline void count_end_block(LaunchCounts& counts, double weight) {
  Counter& c = counter();
  counts.blocks_emulated += 1;
  uint64_t requests = 0, wavefronts = 0, conflict_free = 0, new_sectors = 0;
  for (auto& warp : c.shared_req)
    for (auto& request : warp) {
      requests += 1;
      wavefronts += shared_wavefronts(request);
      conflict_free += conflict_free_wavefronts(request);
    }
  counts.shared_requests += weight * requests;
  counts.shared_wavefronts += weight * wavefronts;
  counts.shared_conflict_free_wavefronts += weight * conflict_free;
  uint64_t loads = 0, load_sectors = 0, stores = 0, store_sectors = 0;
  for (auto& warp : c.load_req)
    for (auto& request : warp) {
      loads += 1;
      load_sectors += sectors(request, &c.launch_sectors, &new_sectors);
    }
  for (auto& warp : c.store_req)
    for (auto& request : warp) {
      stores += 1;
      store_sectors += sectors(request, &c.launch_sectors, &new_sectors);
    }
  counts.global_load_requests += weight * loads;
  counts.global_load_sectors += weight * load_sectors;
  counts.global_store_requests += weight * stores;
  counts.global_store_sectors += weight * store_sectors;
  counts.dram_sectors += weight * new_sectors;
  for (auto& [pc, entries] : c.block_entries) counts.block_entries[pc] += weight * entries;
  counts.tensor_fma += weight * c.tensor_fma;
}

// One lane's share of a warp's WMMA mma_sync of M x N x K (every lane of the warp calls it).
inline void count_tensor_fma(double warp_fma) {
  if (counting_enabled) counter().tensor_fma += warp_fma / 32;
}

// The emulator's arithmetic inside a warp op is no kernel instruction: its basic blocks are not counted.
struct UncountedBlocks {
  bool was = block_counting_paused;
  UncountedBlocks() { block_counting_paused = true; }
  ~UncountedBlocks() { block_counting_paused = was; }
};

}  // namespace dc_emu
