"""tools/gpu_check.sh (the command a CUDA machine runs) and the refit of the CUDA auto rule it ends with.

Here, without a GPU: the script must say so and exit 0 at once; the fit (tools/refit_cuda_auto.py) is
checked on synthetic timings; the `gpu` mark that selects the GPU tests is checked on test_conv.py.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import refit_cuda_auto  # noqa: E402

from dense_conv import _algorithm  # noqa: E402


def test_gpu_check_without_a_gpu_says_so_and_exits_0(tmp_path):
    # an nvidia-smi that lists no GPU stands in for the driver, on this machine or any other
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\nexit 9\n")
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(["bash", os.path.join(ROOT, "tools", "gpu_check.sh")], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no GPU present" in result.stdout
    assert "== venv" not in result.stdout  # nothing set up or built


def point(kind, Hr, Wr, direct, fft, Ci=4, Cr=5):
    return dict(kind=kind, B=8, Ci=Ci, Cr=Cr, Hi=84, Wi=600, Hr=Hr, Wr=Wr, direction="fwd", direct=direct, fft=fft)


def test_refit_puts_the_threshold_between_the_points_where_the_faster_algorithm_changes():
    # dense Ci=4, Cr=5: choose_cuda weighs the taps by Ci*Cr / (Ci*Cr + Ci + Cr) = 20/29; the direct kernels
    # win up to 9x9 (81 taps -> 55.9), the FFT from 15x15 (225 taps -> 155.2)
    points = [point("dense", n, n, direct=n * n * 1e-5, fft=1.2e-3) for n in (3, 5, 9, 15, 21, 37)]
    fitted, loss = refit_cuda_auto.fit_threshold(points)
    assert loss == 0
    assert 55.9 < fitted <= 155.2
    assert [refit_cuda_auto.choice(p, fitted) for p in points] == ["direct"] * 3 + ["fft"] * 3
    # sparse planes (Ci = Cr = 1 after the [B*C, 1, ...] view): weight 1/3
    sparse = [point("sparse", n, n, direct=n * n * 1e-5, fft=4e-3, Cr=4) for n in (9, 15, 21, 37)]
    assert [refit_cuda_auto.choice(p, refit_cuda_auto.fit_threshold(sparse)[0]) for p in sparse] == \
        ["direct", "direct", "fft", "fft"]


def test_refit_takes_the_cheaper_mistake_when_no_threshold_is_exact():
    # the 9x9 point prefers the FFT by 1%, the 15x15 one the direct kernels by 50%: no threshold gets both
    points = [point("dense", 5, 5, 1.0, 2.0), point("dense", 9, 9, 1.01, 1.0), point("dense", 15, 15, 1.0, 1.5),
              point("dense", 37, 16, 3.0, 1.0)]
    fitted, loss = refit_cuda_auto.fit_threshold(points)
    assert [refit_cuda_auto.choice(p, fitted) for p in points] == ["direct", "direct", "direct", "fft"]
    assert loss == pytest.approx(0.01)


def test_gpu_tests_are_marked_gpu():
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "gpu",
                             os.path.join(ROOT, "tests", "test_conv.py")], capture_output=True, text=True, cwd=ROOT,
                            timeout=300)
    selected = [line for line in result.stdout.splitlines() if "::" in line]
    names = {line.split("::")[1].split("[")[0] for line in selected}
    assert {"test_mixed_devices_raise", "test_cuda_matches_reference", "test_cuda_fft_batch_chunks"} <= names, \
        result.stdout[-3000:]
    assert all("cpu-" not in line for line in selected)


def test_refit_reads_the_cuda_rows_of_bench_json(tmp_path):
    """bench_points pairs ours:direct and ours:fft of one case and direction, in the row format bench.py writes
    (rows timed here on the CPU at a tiny case, then labelled cuda)."""
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import bench
    settings = bench.Settings(batch=1, budget=1.0, min_run_time=0.01, slow_call=1.0, memory_budget=1 << 30,
                              peak_memory=False)
    case = bench.Case("dense 5x5", "dense", (1, 2, 9, 20), (1, 3, 5, 5))
    rows = []
    for name, (fn, ours) in bench.implementations(case, "cpu").items():
        if name in ("ours:direct", "ours:fft"):
            row, _ = bench.time_implementation(case, "cpu", "fwd", False, name, fn, ours, 1.0, settings, {})
            rows.append(dict(row, device="cuda"))
    path = tmp_path / "bench.json"
    bench.write_json(path, {"rows": rows})
    [p] = refit_cuda_auto.bench_points(str(path))
    assert (p["kind"], p["B"], p["Ci"], p["Cr"], p["Hi"], p["Wi"], p["Hr"], p["Wr"]) == ("dense", 1, 2, 3, 9, 20, 5, 5)
    assert p["direct"] == rows[0]["time"] and p["fft"] == rows[1]["time"]
    report = refit_cuda_auto.report([p], {"gpu": "none"}, 0)
    assert report["points"][0]["current_choice"] == refit_cuda_auto.choice(
        p, report["current"]["CUDA_FFT_MIN_TAPS"]["forward"])
    assert report["current"]["CUDA_FFT_MIN_TAPS"] == _algorithm.CUDA_FFT_MIN_TAPS
    assert report["fitted"]["CUDA_FFT_MIN_TAPS"]["training"] == _algorithm.CUDA_FFT_MIN_TAPS["training"]  # no points


def test_refit_without_a_gpu_fits_recorded_kernel_times(tmp_path):
    """--no-sweep fits the rows of a recorded kernel_times.json (tools/gpu_kernel_times.py) without timing anything:
    both algorithms of one case and direction make a point; the mix, float16 and TF32 rows do not."""
    def row(kind, response, algorithm, ms, dtype="float32", tf32=False):
        return {"shape": f"{kind} {response[2]}x{response[3]}", "kind": kind, "impulse": [8, 4, 84, 600],
                "response": response, "dtype": dtype, "tf32": tf32, "algorithm": algorithm, "direction": "fwd",
                "ms": ms, "kernels": []}
    rows = [row("dense", [8, 5, 3, 3], "direct", 1.0), row("dense", [8, 5, 3, 3], "fft", 4.0),
            row("dense", [8, 5, 40, 40], "direct", 9.0), row("dense", [8, 5, 40, 40], "fft", 2.0),
            row("dense", [8, 5, 40, 40], "auto", 2.0), row("mix", [8, 5, 3, 3], "direct", 1.0),
            row("mix", [8, 5, 3, 3], "fft", 9.0), row("dense", [8, 5, 3, 3], "direct", 1.0, dtype="float16"),
            row("dense", [8, 5, 3, 3], "fft", 1.0, dtype="float16")]
    recorded = tmp_path / "kernel_times.json"
    recorded.write_text(json.dumps({"gpu": "G", "torch": "t", "rows": rows}))
    points = refit_cuda_auto.kernel_times_points(recorded)
    assert [p["Hr"] for p in points] == [3, 40]
    assert [v for p in points for v in (p["direct"], p["fft"])] == pytest.approx([1e-3, 4e-3, 9e-3, 2e-3])
    out = tmp_path / "refit.json"
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "refit_cuda_auto.py"), "--no-sweep",
                             "--kernel-times", str(recorded), "--out", str(out)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    fitted = json.loads(out.read_text())
    assert fitted["machine"]["gpu"] == "G" and fitted["fitted"]["loss"] == {"forward": 0, "training": 0}
    assert all(p["fitted_choice"] == p["faster"] for p in fitted["points"])
