"""The package as a whole: its public names, the references without the compiled extension, use after fork."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dense_conv

ROOT = Path(__file__).resolve().parents[1]

PUBLIC = ["dense_conv2d", "sparse_conv2d", "per_sample_conv2d", "dense_mix_conv2d", "cuda_kernels_compiled",
          "DenseMix", "FactoredMix", "octave_downsample", "halfband_filter", "CQT", "VQT", "ICQT", "icqt",
          "cqt_definition", "cqt_octave_reference"]


def test_public_names():
    assert sorted(dense_conv.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert callable(getattr(dense_conv, name)), name
    from dense_conv import reference
    from dense_conv._algorithm import choose
    assert choose(64, 4, 5, 84, 600, 37, 16, True) == "fft"
    assert {"shift_add", "fft"} <= set(reference.DENSE_VARIANTS)
    assert {"shift_add", "fft"} <= set(reference.SPARSE_VARIANTS)


def _run(code, cwd, env_path, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(env_path))
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_references_import_without_the_compiled_extension(tmp_path):
    """A copy of the package's Python files without _C*.so: the references work, the ops say how to build."""
    shutil.copytree(ROOT / "dense_conv", tmp_path / "dense_conv", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    assert not list((tmp_path / "dense_conv").glob("_C*"))
    code = (
        "import torch\n"
        "import dense_conv.reference as R\n"
        "import dense_conv\n"
        "assert dense_conv.__file__.startswith(%r), dense_conv.__file__\n"
        "r = torch.randn(2, 3, 4, 5, dtype=torch.float64); i = torch.randn(2, 2, 7, 9, dtype=torch.float64)\n"
        "out = R.dense_shift_add(r, i)\n"
        "assert out.shape == (2, 6, 7, 9)\n"
        "assert ((out - R.dense_fft(r, i)).abs().max() / out.abs().max()).item() < 1e-12\n"
        "assert not dense_conv.cuda_kernels_compiled()\n"
        "for call in (lambda: dense_conv.dense_conv2d(r, i), lambda: dense_conv.octave_downsample(i)):\n"
        "    try:\n"
        "        call()\n"
        "    except ImportError as e:\n"
        "        assert 'build_ext --inplace' in str(e), e\n"
        "    else:\n"
        "        raise AssertionError('no ImportError')\n"
        "print('ok')\n"
    ) % str(tmp_path)
    res = _run(code, cwd=tmp_path, env_path=tmp_path)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-3000:]


def test_ops_in_a_forked_child_after_set_num_threads_1():
    """The documented way to use the ops after fork(): torch.set_num_threads(1) in the child."""
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    code = (
        "import os, sys, torch, dense_conv\n"
        "from dense_conv import reference\n"
        "torch.set_num_threads(2)\n"
        "g = torch.Generator().manual_seed(0)\n"
        "r = torch.randn(4, 3, 5, 4, generator=g, dtype=torch.float64)\n"
        "i = torch.randn(4, 4, 40, 90, generator=g, dtype=torch.float64)\n"
        "expected = reference.dense_shift_add(r, i)\n"
        "for algorithm in ('direct', 'fft'):\n"
        "    dense_conv.dense_conv2d(r, i, algorithm=algorithm)  # starts the parent's thread pool\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    torch.set_num_threads(1)\n"
        "    ok = all(((dense_conv.dense_conv2d(r, i, algorithm=a) - expected).abs().max() / expected.abs().max())\n"
        "             .item() < 1e-12 for a in ('direct', 'fft'))\n"
        "    os._exit(0 if ok else 1)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print('child', os.waitstatus_to_exitcode(status))\n"
    )
    res = _run(code, cwd=ROOT, env_path=ROOT, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "child 0", (res.stdout, res.stderr[-3000:])
