"""tools/setup_env.sh prints one line per stage and keeps the compiler's output in a log.

Each test builds a one-file extension with the repository's setup.py and setup_env.sh in a copy of
the tree under tmp_path (CPU-only, in the venv running the tests), so the real tree is never touched.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPILER_TRACES = ("c++ ", "nvcc ", "-I/")

pytestmark = pytest.mark.skipif(sys.prefix == sys.base_prefix,
                                reason="setup_env.sh needs the tests to run in a virtual environment")


def _tree_with_one_source(tmp_path, source):
    """A copy of the files the build needs, with csrc/ holding one C++ file."""
    for name in ("setup.py", "pyproject.toml", "README.md", os.path.join("tools", "setup_env.sh")):
        os.makedirs(tmp_path / os.path.dirname(name), exist_ok=True)
        shutil.copy(os.path.join(ROOT, name), tmp_path / name)
    (tmp_path / "dense_conv").mkdir()
    (tmp_path / "dense_conv" / "__init__.py").write_text("")
    (tmp_path / "csrc").mkdir()
    (tmp_path / "csrc" / "only.cpp").write_text(source)
    return tmp_path


def _run_setup(tree):
    env = dict(os.environ, DENSE_CONV_VENV=sys.prefix, USE_CUDA="0", MAX_JOBS="1")
    env.pop("VERBOSE", None)
    return subprocess.run(["bash", str(tree / "tools" / "setup_env.sh")], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=120)


def test_setup_prints_stages_and_logs_the_compiler(tmp_path):
    tree = _tree_with_one_source(tmp_path, "int dense_conv_quiet_setup_probe() { return 1; }\n")
    result = _run_setup(tree)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    lines = output.splitlines()
    assert lines[0].startswith("== venv: ") and lines[0].endswith("(exists)"), output
    assert lines[1] == "== dependencies: ok", output
    build_line = "== build: dense_conv._C (MAX_JOBS=1, log: build/logs/build.log) ... CPU kernels, done in "
    assert lines[2].startswith(build_line), output
    assert len(lines) == 3, output
    for trace in COMPILER_TRACES:
        assert trace not in output
    build_log = (tree / "build" / "logs" / "build.log").read_text()
    assert "c++ " in build_log and "only.cpp" in build_log
    assert any(name.startswith("_C") and name.endswith(".so") for name in os.listdir(tree / "dense_conv"))


def test_failed_compile_prints_the_log_path_and_the_compiler_errors(tmp_path):
    tree = _tree_with_one_source(tmp_path, "#error deliberately broken source\n")
    result = _run_setup(tree)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    log_path = tree / "build" / "logs" / "build.log"
    assert " ... FAILED in " in output
    assert f"== full log: {log_path}\n== the compiler's errors (at most 40 lines):\nFAILED: " in output
    assert "error: #error deliberately broken source" in output
    last_line = log_path.read_text().splitlines()[-1]
    assert output.endswith(f"== the log's last line:\n{last_line}\n")
    assert "Error compiling objects" in last_line


def test_failed_setup_prints_the_log_path_and_its_tail(tmp_path):
    tree = _tree_with_one_source(tmp_path, "int unused;\n")
    (tree / "setup.py").write_text("raise SystemExit('setup.py deliberately broken')\n")
    result = _run_setup(tree)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    log_path = tree / "build" / "logs" / "build.log"
    failure_lines = rf" \.\.\. FAILED in 0m[0-9]{{2}}s\n== full log: {re.escape(str(log_path))}\n"
    assert re.search(failure_lines + "== its last 40 lines:\n", output), output
    tail = output.split("== its last 40 lines:\n", 1)[1]
    assert tail.splitlines() == log_path.read_text().splitlines()[-40:]
    assert tail.splitlines()[-1] == "setup.py deliberately broken"
