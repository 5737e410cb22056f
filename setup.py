"""Build of the dense_conv._C extension.

CPU kernels are always built. CUDA kernels are built whenever nvcc and a CUDA build of torch are
present, with or without a GPU; FORCE_CUDA=1 / USE_CUDA=0 force either way.
Environment switches:
  USE_CUDA=0            CPU-only build (fast iteration)
  FORCE_CUDA=1          fail instead of silently skipping CUDA
  TORCH_CUDA_ARCH_LIST  architectures (default "8.0;8.9;9.0+PTX" when no GPU can be detected: A100,
                        RTX 40xx / L4 / L40, H100; the sm_90 PTX is JIT-compiled on newer GPUs)
  DEBUG=1               -O0 -g (host and device)
  MAX_JOBS              parallel compile jobs (ninja)
"""
import glob
import os
import shutil
import sys

import torch
from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CUDA_HOME = "/usr/local/cuda-13.0"
DEFAULT_ARCH_LIST = "8.0;8.9;9.0+PTX"


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _find_cuda_home():
    """CUDA_HOME, else the toolkit behind the nvcc on PATH (which may be a wrapper script)."""
    if os.environ.get("CUDA_HOME"):
        return os.environ["CUDA_HOME"]
    if os.path.isdir(DEFAULT_CUDA_HOME):
        return DEFAULT_CUDA_HOME
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    return os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))


# torch.utils.cpp_extension reads CUDA_HOME when imported (and guesses wrong from a wrapper nvcc).
if _find_cuda_home() and not os.environ.get("CUDA_HOME"):
    os.environ["CUDA_HOME"] = _find_cuda_home()
from torch.utils import cpp_extension  # noqa: E402


def _want_cuda():
    if os.environ.get("USE_CUDA", "").strip() == "0":
        return False
    cuda_home = _find_cuda_home()
    available = (torch.version.cuda is not None and cuda_home is not None
                 and os.path.exists(os.path.join(cuda_home, "bin", "nvcc")))
    if _env_flag("FORCE_CUDA") and not available:
        sys.exit("FORCE_CUDA=1 but nvcc or a CUDA build of torch is missing "
                 f"(torch.version.cuda={torch.version.cuda}, CUDA_HOME={cuda_home})")
    return available


def _nvidia_wheel_includes():
    """cuBLAS/cuSPARSE headers that ATen/cuda/CUDAContext.h needs ship in the torch wheel."""
    site = os.path.dirname(os.path.dirname(torch.__file__))
    return [p for p in glob.glob(os.path.join(site, "nvidia", "cu*", "include")) if os.path.isdir(p)]


def build_extension():
    debug = _env_flag("DEBUG")
    with_cuda = _want_cuda()
    sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")) + glob.glob(os.path.join("csrc", "cpu", "*.cpp")))
    opt = ["-O0", "-g"] if debug else ["-O3"]
    # -fopenmp, not only -fopenmp-simd: at::parallel_for is a header template that runs serially
    # unless _OPENMP is defined in *this* translation unit (ATen/ParallelOpenMP.h). Without it every
    # CPU kernel ran on one thread (measured: direct forward 0.45 s at 1 and at 2 threads). At run
    # time libgomp.so.1 resolves to the copy torch has already loaded, so there is one OpenMP runtime.
    omp = [] if sys.platform == "darwin" else ["-fopenmp"]
    cxx_flags = opt + (omp or ["-fopenmp-simd"]) + ["-fdiagnostics-color=always"]
    extra = {"cxx": cxx_flags}
    include_dirs = [os.path.join(ROOT, "csrc")]
    ext_cls = cpp_extension.CppExtension
    if with_cuda:
        if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
            os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_ARCH_LIST
        sources += sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
        include_dirs += _nvidia_wheel_includes()
        extra["nvcc"] = (["-O0", "-g", "-G"] if debug else ["-O3", "-lineinfo"]) + [
            # Spills are build errors: a kernel that spills is a kernel to fix.
            "-Xptxas=-warn-spills,-warn-lmem-usage,-Werror",
            "--expt-relaxed-constexpr",
        ]
        ext_cls = cpp_extension.CUDAExtension
    print(f"dense_conv: building {'CPU + CUDA' if with_cuda else 'CPU-only'} extension "
          f"({len(sources)} sources, TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST')})")
    return ext_cls(
        "dense_conv._C",
        sources,
        include_dirs=include_dirs,
        extra_compile_args=extra,
        extra_link_args=omp + ([] if not debug else ["-g"]),
        py_limited_api=True,
    )


# Metadata lives in pyproject.toml; this file only describes the extension.
setup(
    ext_modules=[build_extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension},
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
