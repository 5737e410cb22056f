// Compile check only: the planted-bug and self-test kernels are plain CUDA.
//   nvcc -c -arch=sm_80 -std=c++17 tests/emu/nvcc_check.cu -o /tmp/nvcc_check.o
#include "planted_bugs.cuh"
#include "planted_wmma_bugs.cuh"
#include "selftest_kernels.cuh"

// Calls every launch function once, so that every kernel is instantiated and compiled for the device.
void instantiate_all(float* f, double* d, int* i, unsigned* u) {
  using namespace dc_planted;
  for (int flag = 0; flag < 2; ++flag) {
    launch_block_sum(f, f, 1, flag);
    launch_scale_by_first(f, f, 1, flag);
    launch_warp_sum(f, f, 1, flag);
    launch_misaligned_float4(f, f, 1, flag);
  }
  for (int bug = 0; bug < 4; ++bug) launch_tile_pair_sum(f, f, 1, bug);
  for (int bug = 0; bug < 3; ++bug) launch_wmma_product(f, f, f, bug);
  launch_divergent_barrier(f);
  launch_warp_deadlock(f);
  dc_selftest::launch_shuffle<float>(f, f, 32, 0, 0, 32, ~0u);
  dc_selftest::launch_divergent_probe(f);
  dc_selftest::launch_shuffle<double>(d, d, 32, 0, 0, 32, ~0u);
  dc_selftest::launch_ballot(i, u, i, i, 32, ~0u);
  dc_selftest::launch_barrier(i, i, 1, 32);
  dc_selftest::launch_read_unwritten_smem(f, 1, 32);
  dc_selftest::launch_arrival_order(i, i, i, 1, 32);
  dc_selftest::launch_invalid(32, 0);
  dc_selftest::launch_stack_overflow(i, 1);
  dc_selftest::launch_multiply_add_probe<float>(f, f, f, 1, 32, 4);
  dc_selftest::launch_multiply_add_probe<double>(d, d, d, 1, 32, 4);
}
