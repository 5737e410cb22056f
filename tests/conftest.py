import os
import sys

# Tests import the package from the repository (built in place) when it is not installed.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The `auto` choice with the built-in cost model, whatever this machine has calibrated (dense_conv.calibrate).
os.environ["DENSE_CONV_CALIBRATION"] = "0"


import pytest  # noqa: E402

from emu import harness  # noqa: E402


@pytest.fixture(params=harness.TEST_SCHEDULES, ids=[f"{s}{seed or ''}" for s, seed in harness.TEST_SCHEDULES])
def schedule(request):
    """Runs an emulated-kernel test under each thread schedule (tests/emu/harness.py)."""
    harness.set_schedule(*request.param)
    yield request.param
    harness.set_schedule("forward")


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: runs on a CUDA device (tools/gpu_check.sh runs `pytest -m gpu`)")


def pytest_collection_modifyitems(config, items):
    """Marks `gpu` every test that runs on a CUDA device: a "cuda" device among its parameters, or the
    needs_gpu / needs_cuda_kernels skip of tests/testing.py."""
    testing = sys.modules.get("testing")  # imported by every test module that uses its marks
    gpu_skips = [testing.needs_gpu.mark, testing.needs_cuda_kernels.mark] if testing else []
    for item in items:
        params = item.callspec.params.values() if hasattr(item, "callspec") else ()
        if any(str(p) == "cuda" for p in params) or any(m in gpu_skips for m in item.iter_markers("skipif")):
            item.add_marker(pytest.mark.gpu)
