#!/usr/bin/env python3
"""A roofline MODEL of the CUDA kernels' time on A100, H100, H200 and RTX 4070 SUPER, from counts, next to the
one measurement this project has (an H200: tools/gpu_kernel_times.py, docs/gpu_measured/).

Inputs: docs/gpu_counts/emu_counts.json (per launch: FMAs, shared-memory wavefronts, DRAM bytes, from the CPU
emulator: tools/emu_counts.py) and docs/gpu_counts/sass.json (per kernel and arch: registers, shared memory,
inner-loop instruction mix: tools/sass_mix.py). Per launch and GPU (docs/gpu_model.md writes it down):

    t_fma    = fma_executed / peak multiply-add rate (fp32, fp64, or tensor for HMMA kernels)
    t_shared = shared_wavefronts / (SMs x 1 wavefront (128 B) per clock x clock)
    t_dram   = dram_bytes / DRAM bandwidth
    t_issue  = fma_executed / (32 x inner-loop FMAs per thread) x inner-loop instructions / (SMs x 4 x clock)
    time     = max(t_fma, t_shared, t_dram, t_issue) x imbalance / occupancy factor

With --measured (default: the latest run, docs/gpu_measured/h200-2026-12-04-b/kernel_times.json; skipped when
absent): the measured times of the same launches next to the model's H200 prediction, and the measured whole
calls (CUDA events) split into this project's kernels, cuFFT's and ATen's kernels, and the time the GPU sat idle
within the call.

Prints markdown tables; --readme replaces the section between the gpu-model markers of README.md (inserting it
before the Layout section the first time). With docs/gpu_counts/emu_counts_before.json (the same launches counted
on an earlier tree) a before/after table of the counts follows.

    python tools/gpu_model.py [--counts docs/gpu_counts/emu_counts.json] [--sass docs/gpu_counts/sass.json]
                              [--before docs/gpu_counts/emu_counts_before.json] [--measured KERNEL_TIMES] [--readme]
"""
import argparse
import json
import math
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cuda_resources import short_name  # noqa: E402
from sass_mix import ARCH_LIMITS, occupancy  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COUNTS = REPO / "docs" / "gpu_counts" / "emu_counts.json"
SASS = REPO / "docs" / "gpu_counts" / "sass.json"
BEFORE = REPO / "docs" / "gpu_counts" / "emu_counts_before.json"
MEASURED = REPO / "docs" / "gpu_measured" / "h200-2026-12-04-b" / "kernel_times.json"  # the latest run
MEASURED_GPU = "H200 SXM"  # the model's entry for the GPU the measurement ran on
README = REPO / "README.md"
BEGIN, END = "<!-- gpu-model:begin -->", "<!-- gpu-model:end -->"

# Peak rates, dense (no structured sparsity), tensor rates with float32 accumulation. Sources:
#   A100: NVIDIA A100 Tensor Core GPU datasheet (SXM4 40 GB and 80 GB) and the NVIDIA A100 Tensor Core GPU
#         Architecture whitepaper (108 SMs, 1410 MHz boost).
#   H100: NVIDIA H100 Tensor Core GPU datasheet (SXM5; its tensor figures "with sparsity" halved) and the
#         NVIDIA H100 Tensor Core GPU Architecture whitepaper (132 SMs); 1980 MHz = 67 TFLOPS / (132 x 128 x 2).
#   H200 SXM: NVIDIA H200 Tensor Core GPU datasheet: the H100 SXM's processor (132 SMs, same compute rates) with
#         141 GB of HBM3e at 4.8 TB/s; the one GPU this project has been measured on (docs/gpu_measured/).
#   RTX 4070 SUPER: NVIDIA's product page (7168 CUDA cores = 56 SMs, 2475 MHz boost, 12 GB GDDR6X, 192 bit,
#         21 Gbps = 504 GB/s); tensor rates per SM per clock of the NVIDIA Ada GPU Architecture whitepaper
#         (GeForce: FP16/BF16 with FP32 accumulate 256 FMA/clk/SM, TF32 128) x 56 SMs x 2475 MHz; FP64 = 1/64 FP32,
#         FP16 without tensor cores = FP32 (the whitepaper's RTX 4090 figures).
#   fp16_tflops: half-precision (HFMA2) rate without tensor cores, from the same whitepapers (A100 78, H100 SXM
#         2 x FP32).
# Shared memory: 32 banks x 4 B = 128 B per clock per SM on all three (one wavefront per clock), CUDA C++
# Best Practices Guide / Programming Guide; per-SM limits of each arch: tools/sass_mix.py ARCH_LIMITS.
GPUS = {
    "A100 SXM 40GB": {"arch": "sm_80", "sms": 108, "clock_mhz": 1410, "fp32_tflops": 19.5, "fp64_tflops": 9.7,
                      "fp16_tflops": 78.0,
                      "tensor_tflops": {"float32": 156.0, "float16": 312.0, "bfloat16": 312.0}, "dram_gbs": 1555},
    "A100 SXM 80GB": {"arch": "sm_80", "sms": 108, "clock_mhz": 1410, "fp32_tflops": 19.5, "fp64_tflops": 9.7,
                      "fp16_tflops": 78.0,
                      "tensor_tflops": {"float32": 156.0, "float16": 312.0, "bfloat16": 312.0}, "dram_gbs": 2039},
    "H100 SXM": {"arch": "sm_90", "sms": 132, "clock_mhz": 1980, "fp32_tflops": 67.0, "fp64_tflops": 34.0,
                 "fp16_tflops": 134.0,
                 "tensor_tflops": {"float32": 494.5, "float16": 989.5, "bfloat16": 989.5}, "dram_gbs": 3350},
    "H200 SXM": {"arch": "sm_90", "sms": 132, "clock_mhz": 1980, "fp32_tflops": 67.0, "fp64_tflops": 34.0,
                 "fp16_tflops": 134.0,
                 "tensor_tflops": {"float32": 494.5, "float16": 989.5, "bfloat16": 989.5}, "dram_gbs": 4800},
    "RTX 4070 SUPER": {"arch": "sm_89", "sms": 56, "clock_mhz": 2475, "fp32_tflops": 35.5, "fp64_tflops": 0.55,
                       "fp16_tflops": 35.5,
                       "tensor_tflops": {"float32": 35.5, "float16": 71.0, "bfloat16": 71.0}, "dram_gbs": 504},
}
SCHEDULERS_PER_SM = 4            # warp schedulers per SM, one instruction issued per clock each (sm_80/89/90)
SHARED_WAVEFRONTS_PER_CLOCK = 1  # per SM: 128 bytes
# Resident warps per SM from which latency is taken as hidden (4 per scheduler): the kernels' inner loops
# hold many independent accumulators, so a few warps per scheduler cover FFMA and LDS latency.
WARPS_TO_HIDE_LATENCY = 16
HALF_DTYPES = ("float16", "bfloat16")


def kernel_key(name):
    """Matching key of a kernel name from either file: no `void `, no arguments, no spaces."""
    return re.sub(r"\s+", "", short_name(name))


def load_json(path, what, producer):
    if not path.exists():
        raise SystemExit(f"{path} not found: the model needs {what}; produce it with `python {producer}`")
    return json.loads(path.read_text())


def fma_rate(gpu, dtype, inner_loop):
    """(multiply-adds per second, unit name) of the arithmetic the kernel's inner loop uses."""
    if inner_loop and inner_loop.get("HMMA"):
        return gpu["tensor_tflops"][dtype] * 1e12 / 2, "tensor"
    if dtype == "float64":
        return gpu["fp64_tflops"] * 1e12 / 2, "fp64"
    if inner_loop and inner_loop.get("HFMA2", 0) > inner_loop.get("FFMA", 0):
        return gpu["fp16_tflops"] * 1e12 / 2, "fp16"
    return gpu["fp32_tflops"] * 1e12 / 2, "fp32"


def predict(launch, gpu, sass_row):
    """Model time (s) of one launch on one GPU, with its terms. sass_row may be None (no SASS: no occupancy,
    no issue term; flagged)."""
    clock = gpu["clock_mhz"] * 1e6
    sms = gpu["sms"]
    inner = sass_row["inner_loop"] if sass_row else None
    rate, unit = fma_rate(gpu, launch["dtype"], inner)
    tensor = launch.get("fma_tensor", 0)  # WMMA multiply-adds the emulator counted: at the tensor rate, the rest not
    if tensor and unit != "tensor":
        t_fma = tensor / (gpu["tensor_tflops"][launch["dtype"]] * 1e12 / 2) + (launch["fma_executed"] - tensor) / rate
        unit = "tensor"
    else:
        t_fma = launch["fma_executed"] / rate
    terms = {
        "fma": t_fma,
        "shared": launch["shared_wavefronts"] / (sms * SHARED_WAVEFRONTS_PER_CLOCK * clock),
        "dram": launch["dram_bytes"] / (gpu["dram_gbs"] * 1e9),
        "issue": 0.0,
    }
    if inner and inner.get("fma_per_thread"):
        warp_instructions = launch["fma_executed"] / (32 * inner["fma_per_thread"]) * inner["total"]
        terms["issue"] = warp_instructions / (sms * SCHEDULERS_PER_SM * clock)
    threads = math.prod(launch["block"])
    warps_per_block = math.ceil(threads / 32)
    blocks_on_busiest_sm = math.ceil(launch["blocks_total"] / sms)
    imbalance = blocks_on_busiest_sm * sms / launch["blocks_total"]
    if sass_row:
        occ = occupancy(gpu["arch"], sass_row["registers"],
                        sass_row["static_smem_bytes"] + launch["dynamic_smem_bytes"], threads)
        resident_warps = min(occ["blocks_per_sm"], blocks_on_busiest_sm) * warps_per_block
    else:
        occ, resident_warps = None, WARPS_TO_HIDE_LATENCY
    occupancy_factor = min(1.0, resident_warps / WARPS_TO_HIDE_LATENCY)
    limiter = max(terms, key=terms.get)
    return {"time": terms[limiter] * imbalance / occupancy_factor, "terms": terms, "limiter": limiter, "unit": unit,
            "imbalance": imbalance, "occupancy": occ, "resident_warps": resident_warps,
            "occupancy_factor": occupancy_factor}


def direction(op):
    """'forward' or 'backward' from the op name: `<op>.grad_*` and `*backward*` parts are the backward."""
    part = op.split(".", 1)[1] if "." in op else op
    return "backward" if part.startswith("grad") or "backward" in part else "forward"


def sass_index(sass):
    return {(kernel_key(r["kernel"]), r["arch"]): r for r in sass["kernels"]}


def model(counts, sass):
    """Per-launch predictions: [(launch, {gpu: prediction})], and the kernels without SASS."""
    index = sass_index(sass)
    rows, missing = [], set()
    for launch in counts["launches"]:
        predictions = {}
        for name, gpu in GPUS.items():
            row = index.get((kernel_key(launch["kernel"]), gpu["arch"]))
            if row is None:
                missing.add(f"{launch['kernel']} ({gpu['arch']})")
            predictions[name] = predict(launch, gpu, row)
        rows.append((launch, predictions))
    return rows, sorted(missing)


def per_op(rows):
    """{(family, algorithm, shape, dtype): {'forward' | 'forward+backward': {gpu: (time, useful FMAs)},
    'counts_backward': whether a backward launch was counted}}."""
    ops = {}
    for launch, predictions in rows:
        family = launch["op"].split(".", 1)[0]
        entry = ops.setdefault((family, launch.get("algorithm", "direct"), launch["shape"], launch["dtype"]), {})
        entry["counts_backward"] = entry.get("counts_backward", False) or direction(launch["op"]) == "backward"
        parts = ["forward+backward"] + (["forward"] if direction(launch["op"]) == "forward" else [])
        for part in parts:
            for gpu, p in predictions.items():
                t, useful = entry.setdefault(part, {}).get(gpu, (0.0, 0))
                entry[part][gpu] = (t + p["time"], useful + launch["fma_useful"])
    return ops


def peak_percent(useful, seconds, tflops):
    return 100 * 2 * useful / seconds / (tflops * 1e12) if seconds else 0.0


def fmt_time(seconds):
    return f"{seconds * 1e3:.3f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} us"


def peak_cell(useful, seconds, gpu, dtype):
    """'% of fp32 peak' and, for float16 / bfloat16, '(% of the tensor peak)'."""
    cell = f"{peak_percent(useful, seconds, GPUS[gpu]['fp32_tflops']):.0f}%"
    if dtype in HALF_DTYPES:
        cell += f" ({peak_percent(useful, seconds, GPUS[gpu]['tensor_tflops'][dtype]):.0f}%)"
    return cell


def op_table(rows):
    gpus = list(GPUS)
    lines = ["| op | algorithm | shape | dtype | pass | "
             + " | ".join(f"{g}: time, % fp32 peak (% tensor)" for g in gpus) + " |",
             "|" + "---|" * (5 + len(gpus))]
    for (family, algorithm, shape, dtype), parts in sorted(per_op(rows).items()):
        for part in ("forward", "forward+backward"):
            if part not in parts or (part == "forward+backward" and not parts["counts_backward"]):
                continue
            cells = [f"{fmt_time(parts[part][g][0])}, {peak_cell(parts[part][g][1], parts[part][g][0], g, dtype)}"
                     for g in gpus]
            lines.append(f"| {family} | {algorithm} | {shape} | {dtype} | {part} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio(a, b, digits=2):
    return f"{a / b:.{digits}f}" if b else "n/a"


def fma_per_lds(inner_loop):
    """The inner loop's multiply-add instructions per shared load, 'ratio (FMA/LDS)', from its SASS mix."""
    if not inner_loop:
        return "no loop"
    fma = {k: inner_loop.get(k, 0) for k in ("FFMA", "DFMA", "HFMA2", "HMMA") if inner_loop.get(k, 0)}
    if not fma:
        return f"no FMA ({inner_loop.get('LDS', 0)} LDS)"
    names = " + ".join(f"{n} {k}" for k, n in fma.items())
    return f"{ratio(sum(fma.values()), inner_loop.get('LDS', 0))} ({names} / {inner_loop.get('LDS', 0)} LDS)"


REFERENCE_ARCH = "sm_90"  # the arch whose SASS the per-launch table quotes (its inner loop's FMA:LDS)


def shared_cell(launch):
    """'wavefronts/request (conflict degree)': the degree is wavefronts over conflict-free wavefronts (a 16-byte
    per lane request takes 4 without conflicts); n/a for counts without that field."""
    cell = ratio(launch["shared_wavefronts"], launch["shared_requests"])
    if launch["shared_requests"]:
        cell += f" ({ratio(launch['shared_wavefronts'], launch.get('shared_conflict_free_wavefronts', 0))})"
    return cell


SUMMED = ("blocks_total", "shared_requests", "shared_wavefronts", "shared_conflict_free_wavefronts",
          "global_load_requests", "global_load_sectors", "fma_executed", "fma_useful")


def same_kernel_launches_summed(rows):
    """Rows with the launches of one kernel in one pass (e.g. one per octave level) summed: counts added, times
    added, the bound of the longest launch."""
    merged = {}
    for launch, predictions in rows:
        key = (launch["op"], launch["shape"], launch["dtype"], launch["kernel"])
        if key not in merged:
            merged[key] = (dict(launch), {g: dict(p) for g, p in predictions.items()}, dict(predictions))
            continue
        total, summed, longest = merged[key]
        for field in SUMMED:
            if field in total or field in launch:
                total[field] = total.get(field, 0) + launch.get(field, 0)
        for g, p in predictions.items():
            summed[g]["time"] += p["time"]
            if p["time"] > longest[g]["time"]:
                longest[g] = p
                summed[g]["limiter"] = p["limiter"]
    return [(total, summed) for total, summed, _ in merged.values()]


def launch_table(rows, sass):
    gpus = list(GPUS)
    index = sass_index(sass)
    rows = same_kernel_launches_summed(rows)
    lines = ["| op.pass | shape | dtype | kernel | blocks | shared wavefronts/request (conflict degree) "
             "| global load sectors/request "
             f"| FMA:LDS, inner loop ({REFERENCE_ARCH}) | executed/useful FMA | "
             + " | ".join(f"{g}: time, % fp32 peak (% tensor), bound" for g in gpus) + " |",
             "|" + "---|" * (9 + len(gpus))]
    for launch, predictions in rows:
        row = index.get((kernel_key(launch["kernel"]), REFERENCE_ARCH))
        cells = [f"{fmt_time(predictions[g]['time'])}, "
                 f"{peak_cell(launch['fma_useful'], predictions[g]['time'], g, launch['dtype'])}, "
                 f"{predictions[g]['limiter']}" for g in gpus]
        lines.append(f"| {launch['op']} | {launch['shape']} | {launch['dtype']} | `{short_name(launch['kernel'])}` | "
                     f"{launch['blocks_total']} | {shared_cell(launch)} | "
                     f"{ratio(launch['global_load_sectors'], launch['global_load_requests'])} | "
                     f"{fma_per_lds(row['inner_loop']) if row else 'no SASS'} | "
                     f"{ratio(launch['fma_executed'], launch['fma_useful'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def old_sectors_per_request(old):
    """Global load sectors per request of a `before` launch: its counts, or the recorded ratio."""
    if "global_load_sectors_per_request" in old:
        return f"{old['global_load_sectors_per_request']:.2f}"
    return ratio(old["global_load_sectors"], old["global_load_requests"])


def before_after_table(before, rows, sass):
    """The kernels of `before` (counts of an earlier tree, same launches, docs/gpu_counts/emu_counts_before.json)
    next to today's launch of the same op, shape and dtype."""
    index = sass_index(sass)
    now = {(l["op"], l["shape"], l["dtype"]): l for l, _ in rows if l["fma_useful"]}
    lines = ["| op.pass | shape | dtype | kernel before -> after | shared wavefronts/request (conflict degree) | "
             "global load sectors/request | FMA:LDS, inner loop (sm_90) | executed/useful FMA |", "|" + "---|" * 8]
    for old in before["launches"]:
        new = now.get((old["op"], old["shape"], old["dtype"]))
        if not new:
            continue
        row = index.get((kernel_key(new["kernel"]), REFERENCE_ARCH))
        old_fma = old.get("fma_executed")
        lines.append(
            f"| {old['op']} | {old['shape']} | {old['dtype']} | `{short_name(old['kernel'])}` -> "
            f"`{short_name(new['kernel'])}` | {shared_cell(old)} -> {shared_cell(new)} | "
            f"{old_sectors_per_request(old)} -> "
            f"{ratio(new['global_load_sectors'], new['global_load_requests'])} | "
            f"{old.get('inner_loop_fma_per_lds', 'n/a')} -> {fma_per_lds(row['inner_loop']) if row else 'no SASS'} | "
            f"{ratio(old_fma, new['fma_useful']) if old_fma else 'n/a'} -> "
            f"{ratio(new['fma_executed'], new['fma_useful'])} |")
    return "\n".join(lines)


def ours(kernel_name):
    """Whether a profiled kernel is this project's (namespace dc), not cuFFT's or ATen's."""
    return short_name(kernel_name).startswith("dc::")


def measured_row(measured, shape, dtype, algorithm, row_direction):
    """The measured row (not TF32) of a call, or None."""
    for row in (measured or {}).get("rows", []):
        if (row.get("shape"), row.get("dtype"), row.get("algorithm"), row.get("direction"), row.get("tf32")) == \
                (shape, dtype, algorithm, row_direction, False):
            return row
    return None


def call_split(row):
    """(our kernels, cuFFT + ATen kernels, whole call) in seconds of a measured row with its kernels."""
    mine = sum(k["us"] for k in row["kernels"] if ours(k["name"])) * 1e-6
    libraries = sum(k["us"] for k in row["kernels"] if not ours(k["name"])) * 1e-6
    return mine, libraries, row["ms"] * 1e-3


def measured_kernel_seconds(measured, launch):
    """Measured device time (s) per call of `launch`'s kernel in its pass, or None: the forward launches from the
    forward row of the same shape, dtype and algorithm; the backward launches from the forward+backward row less
    that kernel's forward time (a kernel both passes launch, e.g. fft_mix_kernel)."""
    def kernel_us(row_direction):
        row = measured_row(measured, launch["shape"], launch["dtype"], launch.get("algorithm", "direct"), row_direction)
        if row is None or "kernels" not in row:
            return None
        key = kernel_key(launch["kernel"])
        return sum(k["us"] for k in row["kernels"] if kernel_key(k["name"]) == key)
    forward = kernel_us("fwd")
    if direction(launch["op"]) == "forward":
        return forward * 1e-6 if forward else None
    both = kernel_us("fwd+bwd")
    if both is None:
        return None
    backward = both - (forward or 0.0)
    return backward * 1e-6 if backward > 0 else None


def measured_launch_table(rows, measured):
    """Per kernel and pass: the model's H200 time, the measured one, their ratio, and the measured % of peak."""
    lines = [f"| op.pass | shape | dtype | kernel | model {MEASURED_GPU}: time, bound | measured | measured / model "
             "| measured % fp32 peak (% tensor) |", "|" + "---|" * 8]
    for launch, predictions in same_kernel_launches_summed(rows):
        seconds = measured_kernel_seconds(measured, launch)
        if seconds is None:
            continue
        p = predictions[MEASURED_GPU]
        lines.append(f"| {launch['op']} | {launch['shape']} | {launch['dtype']} | `{short_name(launch['kernel'])}` | "
                     f"{fmt_time(p['time'])}, {p['limiter']} | {fmt_time(seconds)} | {ratio(seconds, p['time'])} | "
                     f"{peak_cell(launch['fma_useful'], seconds, MEASURED_GPU, launch['dtype'])} |")
    return "\n".join(lines)


def measured_call_table(measured):
    """Each measured call: its time (CUDA events, median), the device time of this project's kernels and of the
    libraries' (cuFFT, ATen), and the rest of the call, in which the GPU had no kernel of it running."""
    lines = ["| shape | dtype | algorithm | pass | call (median) | our kernels | cuFFT + ATen kernels | GPU idle "
             "| launches |", "|" + "---|" * 9]
    for row in measured["rows"]:
        if "kernels" not in row:
            continue
        mine, libraries, call = call_split(row)
        dtype = row["dtype"] + (" (TF32)" if row.get("tf32") else "")
        launches = sum(k["calls"] for k in row["kernels"])
        lines.append(f"| {row['shape']} | {dtype} | {row['algorithm']} | {row['direction']} | {fmt_time(call)} | "
                     f"{fmt_time(mine)} | {fmt_time(libraries)} | {fmt_time(max(0.0, call - mine - libraries))} | "
                     f"{launches:.0f} |")
    return "\n".join(lines)


# ---- the FFT algorithms' library work: cuFFT's transforms and ATen's copies, priced by their bytes ----
# The emulator sees only this project's spectrum kernels. Around them the CUDA FFT paths (csrc/cuda/fft_conv_cuda.cu,
# fft_mix_cuda.cu) call cuFFT through ATen and ATen copies (zero padding, crops, the C2R input clone, the response
# spectra's scaling). Their DRAM bytes per plane are the pass counts written down in csrc/cuda/fft_cuda_common.h
# (cuFFT's 2-D transform taken as two passes over the plane, ATen's copies as read + write), priced at DRAM
# bandwidth: a lower bound, as for the kernels, and a model of cuFFT, not a count of it.
BENCH_BATCH = 64  # the batch of the counts (tools/emu_counts.py --batch default) and of the measured run


def spectrum_plane_bytes(H, W, real_bytes):
    """S of fft_cuda_common.h: one H x (W/2+1) complex plane."""
    return H * (W // 2 + 1) * 2 * real_bytes


def forward_spectra_bytes(planes, H, W, h, w, real_bytes, scaled=False, kept=False):
    """forward_spectra of `planes` h x w planes: (5 + 2fg) S each; the response spectra's norm='forward' scaling
    2S more; a kept (unscaled) impulse spectrum one copy (2S) more."""
    S = spectrum_plane_bytes(H, W, real_bytes)
    passes = 5 + 2 * (h / H) * (w / W) + (2 if scaled else 0) + (2 if kept and not scaled else 0)
    return planes * passes * S


def inverse_rows_bytes(planes, H, W, h_keep, w_keep, real_bytes):
    """inverse_rows of `planes` spectra, then the h_keep x w_keep corner copied out: 6S whole, (4 + 4f)S pruned
    (2 h_keep < H), and the corner's read + write."""
    S = spectrum_plane_bytes(H, W, real_bytes)
    f = h_keep / H
    passes = 4 + 4 * f if 2 * h_keep < H else 6
    return planes * (passes * S + 2 * h_keep * w_keep * real_bytes)


DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


def fft_library_bytes(kind, impulse, response, L, dtype, backward):
    """(bytes of cuFFT + ATen work of one call, spectra kept) for the FFT algorithm of a benchmark case (bench.py
    Case: kind 'dense' | 'sparse' | 'mix', impulse and response shapes); forward, or forward + backward."""
    from dense_conv._algorithm import spectra_fit_budget
    from dense_conv._shapes import fft_size
    B, Ci, Hi, Wi = impulse
    Cr, Hr, Wr = response[1:]
    if kind == "sparse":  # sparse_conv2d runs as B*C one-channel problems
        B, Ci, Cr = B * Ci, 1, 1
    outs = L if kind == "mix" else Ci * Cr
    H, W = fft_size(Hi, Wi, Hr, Wr)
    Hq, Wq = min(Hr, Hi), min(Wr, Wi)
    real = 8 if dtype == "float64" else 4  # 16-bit inputs transform in float32
    kept = backward and spectra_fit_budget(B, Ci, Cr, Hi, Wi, Hr, Wr, outs, DTYPE_BYTES[dtype], dtype == "float64",
                                           "cuda")

    def spectra_of_inputs(keep):
        return (forward_spectra_bytes(B * Ci, H, W, Hi, Wi, real, kept=keep)
                + forward_spectra_bytes(B * Cr, H, W, Hq, Wq, real, scaled=True))
    total = spectra_of_inputs(kept) + inverse_rows_bytes(B * outs, H, W, Hi, Wi, real)
    if backward:
        total += forward_spectra_bytes(B * outs, H, W, Hi, Wi, real)  # grad_out
        total += 0 if kept else spectra_of_inputs(False)
        total += inverse_rows_bytes(B * Ci, H, W, Hi, Wi, real) + inverse_rows_bytes(B * Cr, H, W, Hq, Wq, real)
        total += B * Cr * Hr * Wr * DTYPE_BYTES[dtype]  # grad_response's zero fill
    return total, kept


def benchmark_cases():
    """bench/bench.py's cases by name (importing it needs the built extension, as the benchmark does)."""
    sys.path.insert(0, str(REPO / "bench"))
    import bench
    return {case.name: case for case in bench.cases(BENCH_BATCH)}


def fft_call_table(rows, measured):
    """Per FFT op and pass: the model's whole call on each GPU (our kernels + the library bytes at DRAM bandwidth),
    and the measured split where a measurement exists."""
    cases = benchmark_cases()
    gpus = list(GPUS)
    lines = ["| op | shape | dtype | pass | spectra kept | cuFFT + ATen bytes | "
             + " | ".join(f"{g}: ours + library = call" for g in gpus)
             + f" | measured {MEASURED_GPU}: ours, cuFFT + ATen, call (GPU idle) | measured / model: cuFFT + ATen, call |",
             "|" + "---|" * (8 + len(gpus))]
    for (family, algorithm, shape, dtype), parts in sorted(per_op(rows).items()):
        case = cases.get(shape)
        if algorithm != "fft" or case is None:
            continue
        for part, row_direction in (("forward", "fwd"), ("forward+backward", "fwd+bwd")):
            if part not in parts or (part == "forward+backward" and not parts["counts_backward"]):
                continue
            nbytes, kept = fft_library_bytes(case.kind, case.impulse, case.response, case.mix_channels, dtype,
                                             part == "forward+backward")
            library = {g: nbytes / (GPUS[g]["dram_gbs"] * 1e9) for g in gpus}
            call = {g: parts[part][g][0] + library[g] for g in gpus}
            cells = [f"{fmt_time(parts[part][g][0])} + {fmt_time(library[g])} = {fmt_time(call[g])}" for g in gpus]
            row = measured_row(measured, shape, dtype, "fft", row_direction)
            m = call_split(row) if row is not None and "kernels" in row else None
            seen = (f"{fmt_time(m[0])}, {fmt_time(m[1])}, {fmt_time(m[2])} ({fmt_time(max(0.0, m[2] - m[0] - m[1]))}) | "
                    f"{ratio(m[1], library[MEASURED_GPU])}, {ratio(m[2], call[MEASURED_GPU])}" if m
                    else "not measured | n/a")
            lines.append(f"| {family} | {shape} | {dtype} | {part} | {'yes' if kept else 'no'} | {nbytes / 1e9:.2f} GB | "
                         + " | ".join(cells) + f" | {seen} |")
    return "\n".join(lines)


def measured_report(rows, measured):
    commit = f", source {measured['commit']}" if measured.get("commit") else ""
    note = f" **{measured['note']}**" if measured.get("note") else ""
    return (f"\n### Measured: {measured['gpu']} ({measured.get('date', 'see docs/gpu_measured/')}, torch "
            f"{measured['torch']}, batch {measured['batch']}{commit})\n\n"
            f"{measured['source']}; `tools/gpu_kernel_times.py`, raw data and Nsight Compute metrics in "
            f"[docs/gpu_measured/](docs/gpu_measured/).{note} Whole calls:\n\n" + measured_call_table(measured)
            + "\n\nThe model against the measurement, per kernel and pass (device time per call; the model's "
            f"{MEASURED_GPU} column):\n\n" + measured_launch_table(rows, measured) + "\n")


def report(rows, missing, sass, before=None, measured=None):
    text = ("**The tables up to the measured section are A MODEL, not a measurement**: `tools/gpu_model.py` turns "
            "counts from the CPU emulator (`tools/emu_counts.py`: the benchmark's launches, a sample of blocks per "
            "grid dimension emulated and extrapolated) and the compiled SASS (`tools/sass_mix.py`) into predicted "
            "times, as written down in [docs/gpu_model.md](docs/gpu_model.md). % of peak counts the op's useful "
            "multiply-adds only.\n\n"
            "Per op (launches summed; the FFT rows count only this project's spectrum kernels, not cuFFT's "
            "transforms (the whole FFT calls are priced further down); dense_mix_conv2d direct counts its per_sample kernels, not the torch einsum that pre-mixes "
            "the responses):\n\n" + op_table(rows)
            + "\n\nPer launch (launches of one kernel in one pass summed; bound: the largest term of the model; "
            "executed FMAs: multiplies the emulated threads executed, useful: the op's multiply-adds):\n\n"
            + launch_table(rows, sass) + "\n"
            + "\nThe FFT algorithms' whole calls (MODEL): this project's spectrum kernels (the rows above) plus "
            "cuFFT's transforms and ATen's copies, which the emulator does not see, priced by their DRAM bytes (the "
            "pass counts of csrc/cuda/fft_cuda_common.h, cuFFT's 2-D transform taken as two passes; spectra kept for "
            "the backward by dense_conv's CUDA budget rule); launch gaps and host time are not priced. The measured "
            f"{MEASURED_GPU} call, where one exists, is from before the changes named in the measured section:\n\n"
            + fft_call_table(rows, measured) + "\n")
    if before:
        text += (f"\nBefore / after: {before['source']}\n\n" + before_after_table(before, rows, sass) + "\n")
    if measured:
        text += measured_report(rows, measured)
    if missing:
        text += "\nNo SASS for (occupancy factor 1, no issue term): " + ", ".join(missing) + "\n"
    return text


def constants_table():
    """The GPU constants as a markdown table (docs/gpu_model.md holds a copy; a test checks it is current)."""
    lines = ["| GPU | arch | SMs | boost MHz | fp32 TFLOPS | fp64 TFLOPS | fp16 TFLOPS "
             "| tensor TFLOPS tf32 / fp16 / bf16 | DRAM GB/s | shared B/clk/SM | max threads/SM | max blocks/SM "
             "| registers/SM | max shared KB/SM (/block) |",
             "|" + "---|" * 14]
    for name, g in GPUS.items():
        t, lim = g["tensor_tflops"], ARCH_LIMITS[g["arch"]]
        cells = [name, g["arch"], g["sms"], g["clock_mhz"], g["fp32_tflops"], g["fp64_tflops"], g["fp16_tflops"],
                 f"{t['float32']} / {t['float16']} / {t['bfloat16']}", g["dram_gbs"], 128 * SHARED_WAVEFRONTS_PER_CLOCK,
                 32 * lim["max_warps_per_sm"], lim["max_blocks_per_sm"], lim["registers_per_sm"],
                 f"{lim['max_smem_per_sm'] // 1024} ({lim['max_smem_per_block'] // 1024})"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


README_HEADING = "## GPU performance: a model from counts, and one measurement (H200)"
README_BEFORE = "\n## Layout\n"  # a new section goes before this one (at the end without it)


def replace_readme_section(readme_text, body):
    """README text with the marked section's body replaced; when absent, the section is inserted before the
    Layout section (appended without one)."""
    block = f"{BEGIN}\n{body}{END}"
    if BEGIN in readme_text and END in readme_text:
        head, rest = readme_text.split(BEGIN, 1)
        return head + block + rest.split(END, 1)[1]
    section = f"{README_HEADING}\n\n{block}\n"
    if README_BEFORE in readme_text:
        head, tail = readme_text.split(README_BEFORE, 1)
        return head.rstrip("\n") + "\n\n" + section + README_BEFORE + tail
    return readme_text.rstrip("\n") + "\n\n" + section


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=Path, default=COUNTS)
    parser.add_argument("--sass", type=Path, default=SASS)
    parser.add_argument("--before", type=Path, default=BEFORE,
                        help="counts of an earlier tree for the before/after table (skipped when absent)")
    parser.add_argument("--measured", type=Path, default=MEASURED,
                        help="tools/gpu_kernel_times.py's JSON: measured times next to the model (skipped when absent)")
    parser.add_argument("--readme", action="store_true", help="write the tables into README.md's marked section")
    parser.add_argument("--constants", action="store_true", help="print the GPU constants table and exit")
    args = parser.parse_args()
    if args.constants:
        print(constants_table())
        return 0
    counts = load_json(args.counts, "the emulator's per-launch counts", "tools/emu_counts.py")
    sass = load_json(args.sass, "the per-kernel SASS summary", "tools/sass_mix.py")
    rows, missing = model(counts, sass)
    before = json.loads(args.before.read_text()) if args.before.exists() else None
    measured = json.loads(args.measured.read_text()) if args.measured.exists() else None
    text = report(rows, missing, sass, before, measured)
    print(text)
    if missing:
        print("warning: no SASS for " + ", ".join(missing), file=sys.stderr)
    if args.readme:
        README.write_text(replace_readme_section(README.read_text(), text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
