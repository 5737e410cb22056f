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
