"""nvcc checks that need no GPU: the emulator's test kernels are plain CUDA, and no project kernel spills
registers on sm_80 / sm_90 (tools/cuda_resources.py prints the per-kernel table)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CUDA_HOME = os.environ.get("CUDA_HOME", "/usr/local/cuda-13.0")
NVCC = str(Path(CUDA_HOME) / "bin" / "nvcc") if (Path(CUDA_HOME) / "bin" / "nvcc").exists() else shutil.which("nvcc")

pytestmark = pytest.mark.skipif(not NVCC, reason="nvcc not found (set CUDA_HOME)")


def test_emulator_test_kernels_compile_with_nvcc(tmp_path):
    result = subprocess.run([NVCC, "-c", "-std=c++17", "-arch=sm_80", str(REPO / "tests" / "emu" / "nvcc_check.cu"),
                             "-o", str(tmp_path / "nvcc_check.o")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_no_kernel_spills_registers():
    env = {**os.environ, "CUDA_HOME": str(Path(NVCC).parents[1])}
    result = subprocess.run([sys.executable, str(REPO / "tools" / "cuda_resources.py"),
                             "--output", str(REPO / "build" / "cuda_resources.txt")],
                            capture_output=True, text=True, env=env)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sm_80" in result.stdout and "sm_90" in result.stdout
