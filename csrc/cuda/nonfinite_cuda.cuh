// The CUDA ops' entry to nonfinite.h: its per-sample check copies one flag to the host, which a CUDA
// graph capture forbids, so it is skipped while the current stream is being captured (captured graphs
// keep the fast kernels' result for non-finite inputs).
#pragma once
#include <ATen/cuda/CUDAGraphsUtils.cuh>

#include "../nonfinite.h"

namespace dc {

inline bool nonfinite_check_allowed() {
  return at::cuda::currentStreamCaptureStatus() == at::cuda::CaptureStatus::None;
}

}  // namespace dc
