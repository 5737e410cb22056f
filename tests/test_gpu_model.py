"""tools/gpu_model.py's arithmetic on synthetic launches, tools/sass_mix.py's SASS parser on a canned excerpt and its
occupancy calculator on hand-computed cases; with nvcc and cuobjdump present, sass_mix.py on a compiled header.

The launches here are test fixtures, not counts of the project's kernels."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import cuda_resources  # noqa: E402
import gpu_model  # noqa: E402
import sass_mix  # noqa: E402

H100 = gpu_model.GPUS["H100 SXM"]
H100_CLOCK = H100["clock_mhz"] * 1e6


def launch(**counts):
    """A synthetic launch: 8 blocks per H100 SM of 256 threads, nothing counted unless given."""
    base = {"op": "dense_conv2d.forward", "shape": "fixture", "dtype": "float32", "kernel": "void dc::k<float, 8>(int)",
            "grid": [132 * 8, 1, 1], "block": [256, 1, 1], "dynamic_smem_bytes": 0, "blocks_total": 132 * 8,
            "blocks_emulated": 132 * 8, "shared_requests": 0, "shared_wavefronts": 0, "global_load_requests": 0,
            "global_load_sectors": 0, "global_store_requests": 0, "global_store_sectors": 0, "dram_bytes": 0,
            "fma_executed": 0, "fma_useful": 0}
    base.update(counts)
    return base


def sass_row(registers=32, static_smem=0, inner_loop=None, arch="sm_90"):
    return {"kernel": "dc::k<float, 8>", "arch": arch, "registers": registers, "static_smem_bytes": static_smem,
            "inner_loop": inner_loop}


def test_fma_bound_launch_takes_fma_over_peak():
    fma = 10**12
    p = gpu_model.predict(launch(fma_executed=fma, fma_useful=fma, shared_wavefronts=10**6), H100, sass_row())
    assert p["limiter"] == "fma"
    assert p["occupancy_factor"] == 1.0 and p["imbalance"] == 1.0
    assert p["time"] == pytest.approx(fma / (H100["fp32_tflops"] * 1e12 / 2))
    assert gpu_model.peak_percent(fma, p["time"], H100["fp32_tflops"]) == pytest.approx(100)


def test_shared_bound_launch_takes_wavefronts_over_bandwidth():
    wavefronts = 10**10
    p = gpu_model.predict(launch(fma_executed=10**9, shared_wavefronts=wavefronts), H100, sass_row())
    assert p["limiter"] == "shared"
    assert p["time"] == pytest.approx(wavefronts / (H100["sms"] * H100_CLOCK))


def test_dram_bound_launch_and_rates_by_dtype():
    p = gpu_model.predict(launch(dram_bytes=3350 * 10**9), H100, sass_row())
    assert p["limiter"] == "dram" and p["time"] == pytest.approx(1.0)
    p64 = gpu_model.predict(launch(dtype="float64", fma_executed=17 * 10**12), H100, sass_row())
    assert p64["unit"] == "fp64" and p64["time"] == pytest.approx(1.0)
    mma = {"HMMA": 2, "FFMA": 0, "HFMA2": 0, "total": 10, "fma_per_thread": 128}
    ph = gpu_model.predict(launch(dtype="float16", fma_executed=int(989.5e12 / 2)), H100, sass_row(inner_loop=mma))
    assert ph["unit"] == "tensor" and ph["terms"]["fma"] == pytest.approx(1.0)


def test_counted_tensor_multiply_adds_run_at_the_tensor_rate():
    """WMMA multiply-adds counted by the emulator (fma_tensor) take the tensor rate even when the SASS inner loop
    holds no HMMA; the other multiplies take the fp32 rate."""
    tensor, other = int(989.5e12 / 2), int(67e12 / 2)
    p = gpu_model.predict(launch(dtype="float16", fma_executed=tensor + other, fma_tensor=tensor), H100, sass_row())
    assert p["unit"] == "tensor" and p["terms"]["fma"] == pytest.approx(2.0)


def test_issue_term_counts_inner_loop_instructions_per_fma():
    # 4 FFMA in a 40-instruction loop: 10 warp instructions per 4 x 32 multiply-adds.
    inner = {"FFMA": 4, "HFMA2": 0, "HMMA": 0, "total": 40, "fma_per_thread": 4}
    fma = 32 * 4 * 10**9
    p = gpu_model.predict(launch(fma_executed=fma), H100, sass_row(inner_loop=inner))
    assert p["terms"]["issue"] == pytest.approx(40 * 10**9 / (H100["sms"] * 4 * H100_CLOCK))
    assert p["limiter"] == "issue"  # 10 instructions per FFMA: issue, not the FMA pipe, bounds it


def test_low_occupancy_divides_by_the_occupancy_factor():
    # 200 KB of shared memory: one 128-thread block (4 warps) per H100 SM, a quarter of the warps assumed needed.
    fma = 10**12
    base = gpu_model.predict(launch(fma_executed=fma), H100, sass_row())
    low = gpu_model.predict(launch(fma_executed=fma, block=[128, 1, 1], dynamic_smem_bytes=200 * 1024), H100,
                            sass_row())
    assert low["occupancy"]["blocks_per_sm"] == 1 and low["resident_warps"] == 4
    assert low["occupancy_factor"] == pytest.approx(4 / gpu_model.WARPS_TO_HIDE_LATENCY)
    assert low["time"] == pytest.approx(base["time"] * gpu_model.WARPS_TO_HIDE_LATENCY / 4)


def test_one_block_too_many_costs_a_second_round_on_the_busiest_sm():
    blocks = H100["sms"] + 1
    p = gpu_model.predict(launch(fma_executed=10**9, blocks_total=blocks, grid=[blocks, 1, 1]), H100, sass_row())
    assert p["imbalance"] == pytest.approx(2 * H100["sms"] / blocks)
    assert p["resident_warps"] == 2 * 8  # two blocks of 8 warps on the busiest SM


def test_per_op_sums_forward_and_backward_launches():
    rows, missing = gpu_model.model(
        {"launches": [launch(fma_executed=10**12, fma_useful=10**12),
                      launch(op="dense_conv2d.grad_impulse", fma_executed=2 * 10**12, fma_useful=10**12)]},
        {"kernels": [dict(sass_row(arch=g["arch"]), kernel="dc::k<float, 8>") for g in gpu_model.GPUS.values()]})
    assert not missing
    parts = gpu_model.per_op(rows)[("dense_conv2d", "direct", "fixture", "float32")]
    t_fwd, useful_fwd = parts["forward"]["H100 SXM"]
    t_all, useful_all = parts["forward+backward"]["H100 SXM"]
    assert t_all == pytest.approx(3 * t_fwd) and (useful_fwd, useful_all) == (10**12, 2 * 10**12)
    table = gpu_model.report(rows, missing, {"kernels": []})
    assert "MODEL, not a measurement" in table and "forward+backward" in table


def test_kernel_names_match_across_the_two_files():
    assert gpu_model.kernel_key("void dc::k<float, 8>(float const*, int)") == "dc::k<float,8>"
    assert gpu_model.kernel_key("dc::k<c10::Half, 4>") == "dc::k<c10::Half,4>"
    rows, missing = gpu_model.model({"launches": [launch()]}, {"kernels": []})
    assert len(missing) == len({g["arch"] for g in gpu_model.GPUS.values()})
    assert rows[0][1]["H100 SXM"]["occupancy"] is None


def test_missing_counts_fail_with_a_clear_message(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "tools" / "gpu_model.py"), "--counts",
                             str(tmp_path / "emu_counts.json")], capture_output=True, text=True)
    assert result.returncode != 0
    assert "emu_counts.json not found" in result.stderr and "tools/emu_counts.py" in result.stderr


def test_readme_section_is_replaced_or_appended():
    body = "table\n"
    replaced = gpu_model.replace_readme_section(f"a\n{gpu_model.BEGIN}\nold\n{gpu_model.END}\nb\n", body)
    assert replaced == f"a\n{gpu_model.BEGIN}\ntable\n{gpu_model.END}\nb\n"
    appended = gpu_model.replace_readme_section("a\n", body)
    assert appended.startswith(f"a\n\n{gpu_model.README_HEADING}")
    assert appended.endswith(f"table\n{gpu_model.END}\n")
    inserted = gpu_model.replace_readme_section("a\n\n## Layout\nb\n", body)
    assert inserted.startswith(f"a\n\n{gpu_model.README_HEADING}")
    assert inserted.endswith(f"{gpu_model.END}\n\n## Layout\nb\n")


@pytest.mark.parametrize("arch, registers, smem, threads, blocks, warps, limiter", [
    ("sm_80", 128, 0, 256, 2, 16, "registers"),        # 4096 registers per warp: 16 warps
    ("sm_90", 32, 0, 256, 8, 64, "warps"),             # 1024 per warp: 64 warps, the warp limit too
    ("sm_89", 32, 0, 256, 6, 48, "warps"),             # Ada: 48 warps per SM
    ("sm_89", 40, 48 * 1024, 256, 2, 16, "shared_memory"),  # (48 KB + 1 KB) x 2 <= 100 KB
    ("sm_80", 64, 11364, 256, 4, 32, "registers"),     # 2048 per warp: 32 warps; smem alone would allow 13 blocks
    ("sm_90", 255, 0, 256, 1, 8, "registers"),         # 8192 per warp: 8 warps
    ("sm_90", 16, 0, 32, 32, 32, "blocks"),            # one-warp blocks: the 32-block limit
])
def test_occupancy_hand_computed(arch, registers, smem, threads, blocks, warps, limiter):
    occ = sass_mix.occupancy(arch, registers, smem, threads)
    assert (occ["blocks_per_sm"], occ["warps_per_sm"], occ["limited_by"]) == (blocks, warps, limiter)


def test_occupancy_rejects_too_much_shared_memory():
    with pytest.raises(ValueError, match="sm_89"):
        sass_mix.occupancy("sm_89", 32, 100 * 1024, 256)


def test_launch_bounds_from_the_binary_attributes():
    assert sass_mix.launch_bounds(256, 128) == [256, 2]
    assert sass_mix.launch_bounds(128, 255) == [128, None]
    assert sass_mix.launch_bounds(None, 255) is None


# A kernel with an outer loop (0x0080 -> 0x01c0) around an inner loop (0x00a0 -> 0x0150), a forward branch,
# and the end-of-code self-branch; `HFMA2.MMA R5, -RZ, RZ, 0, 0` is a register move.
CANNED_SASS = """
        code for sm_90
                Function : _Z6kernelPf
        .headerflags    @"EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*0000*/                   LDC R1, c[0x0][0x28] ;                  /* 0x00000a00ff017b82 */
        /*0010*/                   S2R R0, SR_TID.X ;                      /* 0x0000000000007919 */
        /*0020*/              @!P0 BRA 0x1d0 ;                              /* 0x000000000000a947 */
        /*0080*/                   LDG.E R4, desc[UR6][R2.64] ;             /* 0x0000000602047981 */
        /*0090*/                   STS [R11], R4 ;                          /* 0x000000040b007388 */
        /*00a0*/                   LDS.128 R8, [R12] ;                      /* 0x000000000c087984 */
        /*00b0*/                   LDS R6, [R12+0x40] ;                     /* 0x000040000c067984 */
        /*00c0*/                   FFMA R20, R8, R6, R20 ;                  /* 0x0000000608147223 */
        /*00d0*/                   FFMA R21, R9, R6, R21 ;                  /* 0x0000000609157223 */
        /*00e0*/                   FFMA R22, R10, R6, R22 ;                 /* 0x000000060a167223 */
        /*00f0*/                   FFMA R23, R11, R6, R23 ;                 /* 0x000000060b177223 */
        /*0100*/                   HFMA2.MMA R5, -RZ, RZ, 0, 0 ;            /* 0x00000000ff057435 */
        /*0110*/                   IADD3 R12, R12, 0x4, RZ ;                /* 0x000000040c0c7810 */
        /*0120*/                   ISETP.NE.AND P1, PT, R12, R13, PT ;      /* 0x0000000d0c00720c */
        /*0130*/                   FMUL R7, R6, 0.5 ;                       /* 0x3f00000006077820 */
        /*0140*/                   NOP ;                                    /* 0x0000000000007918 */
        /*0150*/               @P1 BRA 0xa0 ;                               /* 0xffffff4000f81947 */
        /*0160*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;            /* 0x0000000000007b1d */
        /*0170*/                   LDS.64 R8, [R14] ;                       /* 0x000000000e087984 */
        /*0180*/                   STG.E desc[UR6][R2.64], R20 ;            /* 0x0000001402007986 */
        /*01c0*/              @!P2 BRA 0x80 ;                               /* 0xfffffffc00f08947 */
        /*01d0*/                   EXIT ;                                   /* 0x000000000000794d */
        /*01e0*/                   BRA 0x1e0;                               /* 0xfffffffc00fc7947 */
"""


def test_sass_parser_finds_the_inner_loop_and_its_mix():
    instructions = sass_mix.parse_sass(CANNED_SASS)["_Z6kernelPf"]
    assert sass_mix.loops(instructions) == [(0x80, 0x1c0), (0xa0, 0x150)]
    inner, span = sass_mix.inner_loop(instructions)
    assert span == (0xa0, 0x150)
    expected = {"FFMA": 4, "LDS": 2, "LDS_bytes": 20, "INT": 3, "FP_OTHER": 1, "OTHER": 2, "LDG": 0, "STS": 0,
                "total": 12, "fma_per_thread": 4}
    assert {k: inner[k] for k in expected} == expected
    assert inner["LDS_by_width_bits"] == {"128": 1, "32": 1}


# A WMMA-style kernel: an HMMA loop (0x0040 -> 0x0100) around a loop that stages a tile without multiply-adds
# (0x0050 -> 0x0090). The staging loop is innermost, but the inner loop is the one holding the MMAs.
CANNED_MMA_SASS = """
        code for sm_90
                Function : _Z4wmmaPf
        /*0000*/                   S2R R0, SR_TID.X ;
        /*0040*/                   IADD3 R2, R2, 0x1, RZ ;
        /*0050*/                   LDG.E.U16 R4, desc[UR6][R2.64] ;
        /*0060*/                   STS.U16 [R11], R4 ;
        /*0070*/                   IADD3 R11, R11, 0x2, RZ ;
        /*0080*/                   ISETP.NE.AND P1, PT, R11, R13, PT ;
        /*0090*/               @P1 BRA 0x50 ;
        /*00a0*/                   LDSM.16.M88.4 R16, [R12] ;
        /*00b0*/                   LDSM.16.M88.2 R20, [R14] ;
        /*00c0*/                   HMMA.16816.F32 R24, R16, R20, R24 ;
        /*00d0*/                   HMMA.16816.F32 R28, R18, R20, R28 ;
        /*00e0*/                   ISETP.NE.AND P2, PT, R2, R3, PT ;
        /*0100*/               @P2 BRA 0x40 ;
        /*0110*/                   EXIT ;
        /*0120*/                   BRA 0x120;
"""


def test_inner_loop_is_the_innermost_loop_holding_multiply_adds():
    instructions = sass_mix.parse_sass(CANNED_MMA_SASS)["_Z4wmmaPf"]
    assert sass_mix.loops(instructions) == [(0x40, 0x100), (0x50, 0x90)]
    inner, span = sass_mix.inner_loop(instructions)
    assert span == (0x40, 0x100)
    expected = {"HMMA": 2, "fma_per_thread": 128, "LDS": 2, "LDS_bytes": 24, "LDG": 1, "STS": 1, "total": 12}
    assert {k: inner[k] for k in expected} == expected
    # Without the MMAs, the largest innermost loop.
    no_mma = [i for i in instructions if i[1] != "HMMA"]
    assert sass_mix.inner_loop(no_mma)[1] == (0x50, 0x90)


def test_res_usage_parser_and_mma_shapes():
    usage = sass_mix.parse_res_usage("arch = sm_90\n Function _Z1kPf:\n  REG:40 STACK:8 SHARED:2048 LOCAL:16 "
                                     "CONSTANT[0]:548 TEXTURE:0\n")
    assert usage[("sm_90", "_Z1kPf")] == {"REG": 40, "STACK": 8, "SHARED": 2048, "LOCAL": 16}
    assert sass_mix.mma_fmas_per_thread(".16816.F32.BF16") == 64
    assert sass_mix.mma_fmas_per_thread(".1688.F32.TF32") == 32
    assert sass_mix.mma_fmas_per_thread(".1684.F32.TF32") == 16


CUDA_HOME = os.environ.get("CUDA_HOME", "/usr/local/cuda-13.0")
NVCC = cuda_resources.nvcc_path() or (str(Path(CUDA_HOME) / "bin" / "nvcc")
                                      if (Path(CUDA_HOME) / "bin" / "nvcc").exists() else None)


@pytest.mark.skipif(not NVCC or not sass_mix.find_tool("cuobjdump"), reason="needs nvcc and cuobjdump")
def test_sass_mix_on_the_compiled_dense_header_finds_ffma_in_the_forward_loop(tmp_path):
    header = REPO / "csrc" / "cuda" / "dense_conv_kernels.cuh"
    source, _ = cuda_resources.probe_source(header)
    (tmp_path / "probe.cu").write_text(source)
    subprocess.run([NVCC, "-c", "-std=c++17", "-O3", f"-I{header.parent}", "-gencode", "arch=compute_90,code=sm_90",
                    str(tmp_path / "probe.cu"), "-o", str(tmp_path / "probe.o")], check=True)
    out = tmp_path / "sass.json"
    subprocess.run([sys.executable, str(REPO / "tools" / "sass_mix.py"), "--binary", str(tmp_path / "probe.o"),
                    "--arch", "sm_90", "--output", str(out)], check=True, capture_output=True)
    rows = {r["kernel"]: r for r in json.loads(out.read_text())["kernels"]}
    forward = rows["dc::dense_forward_kernel<float, 8>"]
    assert forward["inner_loop"]["FFMA"] > 0 and forward["inner_loop"]["LDS"] > 0
    assert forward["launch_bounds"] == [256, 2] and forward["spill_bytes"] == 0


def test_docs_hold_the_current_gpu_constants():
    text = (REPO / "docs" / "gpu_model.md").read_text()
    section = text.split("<!-- gpu-constants:begin -->\n", 1)[1].split("<!-- gpu-constants:end -->", 1)[0]
    assert section.strip() == gpu_model.constants_table().strip(), "run tools/gpu_model.py --constants"


def test_committed_counts_have_a_sass_row_on_every_arch():
    """docs/gpu_counts: every kernel that tools/emu_counts.py counted has its SASS row (tools/sass_mix.py) on
    every modelled arch, so that no launch is modelled without occupancy and issue terms."""
    counts = json.loads((REPO / "docs" / "gpu_counts" / "emu_counts.json").read_text())
    sass = json.loads((REPO / "docs" / "gpu_counts" / "sass.json").read_text())
    assert counts["launches"]
    rows, missing = gpu_model.model(counts, sass)
    assert not missing
    for launch, _ in rows:
        assert launch["fma_executed"] >= 0 and launch["blocks_emulated"] <= launch["blocks_total"]


def test_before_after_table_pairs_launches_by_op_shape_and_dtype():
    now = launch(kernel="void dc::k<float, 8>(int)", shared_requests=100, shared_wavefronts=110,
                 shared_conflict_free_wavefronts=100,
                 global_load_requests=10, global_load_sectors=40, fma_executed=120, fma_useful=100)
    before = {"source": "fixture", "launches": [
        dict({k: v for k, v in now.items() if k != "shared_conflict_free_wavefronts"},  # recorded without it
             kernel="void dc::old<float>(int)", shared_wavefronts=200, fma_executed=None,
             inner_loop_fma_per_lds="0.93 (64/69)")]}
    inner = {"FFMA": 64, "LDS": 16, "total": 100, "fma_per_thread": 64}
    sass = {"kernels": [dict(sass_row(inner_loop=inner), kernel="dc::k<float, 8>")]}
    rows, _ = gpu_model.model({"launches": [now]}, sass)
    table = gpu_model.before_after_table(before, rows, sass)
    assert "`dc::old<float>` -> `dc::k<float, 8>`" in table
    assert ("| 2.00 (n/a) -> 1.10 (1.10) | 4.00 -> 4.00 | 0.93 (64/69) -> 4.00 (64 FFMA / 16 LDS) | n/a -> 1.20 |"
            in table)


def test_measured_times_per_pass():
    """A kernel's measured backward time is its forward+backward time less its forward time (a kernel both passes
    launch), from the rows of the same shape, dtype and algorithm; other rows and other kernels do not count."""
    def row(direction, kernels, algorithm="direct", dtype="float32"):
        return {"shape": "s", "dtype": dtype, "algorithm": algorithm, "direction": direction, "tf32": False,
                "ms": 1.0, "kernels": [{"name": f"void dc::{k}<float>(float const*)", "calls": 1, "us": us}
                                       for k, us in kernels]}
    measured = {"rows": [row("fwd", [("k", 10.0)]), row("fwd+bwd", [("k", 25.0), ("g", 7.0)]),
                         row("fwd", [("k", 99.0)], algorithm="fft"), row("fwd", [("k", 98.0)], dtype="float64")]}
    forward = {"op": "x.forward", "shape": "s", "dtype": "float32", "kernel": "void dc::k<float>(float const*, int)"}
    assert gpu_model.measured_kernel_seconds(measured, forward) == pytest.approx(10e-6)
    assert gpu_model.measured_kernel_seconds(measured, {**forward, "op": "x.backward"}) == pytest.approx(15e-6)
    grad = {**forward, "op": "x.grad_impulse", "kernel": "void dc::g<float>(float const*)"}
    assert gpu_model.measured_kernel_seconds(measured, grad) == pytest.approx(7e-6)
    assert gpu_model.measured_kernel_seconds(measured, {**forward, "shape": "other"}) is None


def test_fft_library_bytes_follow_the_pass_counts():
    # fft_cuda_common.h's counts per plane, S = H (W/2+1) complex: forward (5 + 2fg)S (+2S scaled, +2S kept and
    # unscaled), inverse 6S whole or (4 + 4f)S pruned, plus the cropped corner's read + write.
    S = 8 * 5 * 8  # H = W = 8, float32 complex
    assert gpu_model.forward_spectra_bytes(3, 8, 8, 8, 8, 4) == pytest.approx(3 * 7 * S)
    assert gpu_model.forward_spectra_bytes(1, 8, 8, 4, 2, 4, scaled=True) == pytest.approx((5 + 2 / 8 + 2) * S)
    assert gpu_model.forward_spectra_bytes(1, 8, 8, 8, 8, 4, kept=True) == pytest.approx(9 * S)
    assert gpu_model.inverse_rows_bytes(1, 8, 8, 4, 4, 4) == pytest.approx(6 * S + 2 * 16 * 4)    # 2 * 4 == H
    assert gpu_model.inverse_rows_bytes(1, 8, 8, 3, 4, 4) == pytest.approx(5.5 * S + 2 * 12 * 4)  # pruned


def test_fft_library_bytes_of_a_call():
    # dense, B = 2, Ci = 1, Cr = 2, 5 x 6 image, 4 x 3 response: transform 8 x 8 (fft_size), S = 8 * 5 * 8
    from dense_conv._shapes import fft_size
    assert fft_size(5, 6, 4, 3) == (8, 8)
    S, f = 8 * 5 * 8, gpu_model
    impulse, response = (2, 1, 5, 6), (2, 2, 4, 3)
    inputs = f.forward_spectra_bytes(2, 8, 8, 5, 6, 4) + f.forward_spectra_bytes(4, 8, 8, 4, 3, 4, scaled=True)
    forward = inputs + f.inverse_rows_bytes(4, 8, 8, 5, 6, 4)
    assert f.fft_library_bytes("dense", impulse, response, 0, "float32", False) == (pytest.approx(forward), False)
    # forward + backward: grad_out's spectra, the inputs' again (not kept: 3 spectra planes of 320 B per sample
    # against 2 output planes of 120 B), the two inverses and grad_response's zero fill
    backward = (f.forward_spectra_bytes(4, 8, 8, 5, 6, 4) + inputs + f.inverse_rows_bytes(2, 8, 8, 5, 6, 4)
                + f.inverse_rows_bytes(4, 8, 8, 4, 3, 4) + 2 * 2 * 4 * 3 * 4)
    assert f.fft_library_bytes("dense", impulse, response, 0, "float32", True) == \
        (pytest.approx(forward + backward), False)
    assert S == gpu_model.spectrum_plane_bytes(8, 8, 4)
    # sparse: B * C one-channel problems; mix: L output planes
    sparse = f.fft_library_bytes("sparse", (2, 2, 5, 6), (2, 2, 4, 3), 0, "float32", False)[0]
    assert sparse == pytest.approx(f.forward_spectra_bytes(4, 8, 8, 5, 6, 4) + f.forward_spectra_bytes(
        4, 8, 8, 4, 3, 4, scaled=True) + f.inverse_rows_bytes(4, 8, 8, 5, 6, 4))
    mix = f.fft_library_bytes("mix", impulse, response, 7, "float32", False)[0]
    assert mix == pytest.approx(inputs + f.inverse_rows_bytes(14, 8, 8, 5, 6, 4))


def test_fft_library_bytes_keep_the_spectra_by_the_cuda_budget():
    # the user's shape: dense keeps its spectra (0.69x the output), the mix at L = 8 does not (1.7x)
    user_impulse, user_response = (64, 4, 84, 600), (64, 5, 37, 16)
    kept_bytes, kept = gpu_model.fft_library_bytes("dense", user_impulse, user_response, 0, "float32", True)
    assert kept
    assert not gpu_model.fft_library_bytes("mix", user_impulse, user_response, 8, "float32", True)[1]
    # keeping trades the backward's input transforms for one copy of the impulse spectra
    from dense_conv._shapes import fft_size
    H, W = fft_size(84, 600, 37, 16)
    S = gpu_model.spectrum_plane_bytes(H, W, 4)
    recomputed = (kept_bytes - 64 * 4 * 2 * S + gpu_model.forward_spectra_bytes(64 * 4, H, W, 84, 600, 4)
                  + gpu_model.forward_spectra_bytes(64 * 5, H, W, 37, 16, 4, scaled=True))
    assert recomputed > kept_bytes
