#!/usr/bin/env python3
"""Per-kernel resources, inner-loop instruction mix and occupancy from the SASS of the built extension.

Reads the device code of dense_conv/_C*.so (a CUDA build: `CUDA_HOME=... python setup.py build_ext --inplace`)
with cuobjdump (from CUDA, or the copy that the venv's triton package ships), for sm_80, sm_89 and sm_90, and
writes docs/gpu_counts/sass.json (format: docs/gpu_model.md). For every kernel:

  registers, static shared memory, local memory (spills), launch bounds   cuobjdump -res-usage / -elf
  the inner loop's instruction mix (and the whole kernel's)               cuobjdump -sass
  occupancy without dynamic shared memory                                  the CUDA C Programming Guide's limits

Inner loop rule: every backward branch (`BRA` to a lower address) closes a loop [target, branch]. Among the
loops holding multiply-adds (FFMA, DFMA, HFMA2, HMMA), those with no such loop inside them are candidates
(a loop that only stages operands, e.g. builds a WMMA tile, may sit inside one); the inner loop is the
candidate doing the most multiply-adds per thread and pass (fma_per_thread: HMMA by its shape), ties going
to the larger body. A kernel with no multiply-add in any loop takes its largest innermost loop (one that
contains no other loop); one with no loop has none (null).

    python tools/sass_mix.py [--binary dense_conv/_C.abi3.so] [--arch sm_90 ...] [--output docs/gpu_counts/sass.json]
"""
import argparse
import glob
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

from cuda_resources import demangle, short_name

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "docs" / "gpu_counts" / "sass.json"
DEFAULT_ARCHS = ("sm_80", "sm_89", "sm_90")

# Per-SM and per-block limits by compute capability: NVIDIA CUDA C++ Programming Guide, "Compute
# Capabilities", table "Technical Specifications per Compute Capability" (8.0 = A100, 8.9 = Ada / RTX 40xx,
# 9.0 = H100). Shared memory per SM is the largest carveout; 1 KB per block is reserved by the system.
ARCH_LIMITS = {
    "sm_80": {"max_warps_per_sm": 64, "max_blocks_per_sm": 32, "registers_per_sm": 65536,
              "max_smem_per_sm": 164 * 1024, "max_smem_per_block": 163 * 1024},
    "sm_89": {"max_warps_per_sm": 48, "max_blocks_per_sm": 24, "registers_per_sm": 65536,
              "max_smem_per_sm": 100 * 1024, "max_smem_per_block": 99 * 1024},
    "sm_90": {"max_warps_per_sm": 64, "max_blocks_per_sm": 32, "registers_per_sm": 65536,
              "max_smem_per_sm": 228 * 1024, "max_smem_per_block": 227 * 1024},
}
RESERVED_SMEM_PER_BLOCK = 1024
REGISTER_ALLOCATION_UNIT = 256   # registers are allocated per warp in units of 256 (occupancy calculator)
SMEM_ALLOCATION_UNIT = 128       # shared memory is allocated per block in units of 128 bytes
# From sm_90 on, cuobjdump -res-usage counts the 1 KB system reservation in SHARED of every kernel of a cubin that
# uses shared memory (0 otherwise); ptxas -v reports the kernel's own static shared memory without it.
RES_USAGE_INCLUDES_RESERVED = {"sm_90"}

INTEGER_OPS = {"IMAD", "IADD3", "IADD", "VIADD", "VIADDMNMX", "LEA", "ISETP", "SHF", "SHL", "SHR", "LOP3", "LOP",
               "IABS", "IMNMX", "VIMNMX", "VIMNMX3", "PRMT", "SEL", "MOV", "BMSK", "SGXT", "POPC", "FLO", "BREV",
               "IDP", "IMUL", "ISCADD", "UIADD3", "UIMAD", "ULEA", "USHF", "ULOP3", "UISETP", "UMOV", "USEL",
               "UPRMT", "USGXT", "UBMSK", "UFLO", "UPOPC", "UBREV", "UVIADD"}
FLOAT_OTHER_OPS = {"FADD", "FMUL", "FMNMX", "FSETP", "FSEL", "FCHK", "DADD", "DMUL", "DSETP", "HADD2", "HMUL2",
                   "HSETP2", "HMNMX2", "MUFU", "F2F", "F2I", "I2F", "FRND", "I2FP", "F2FP"}
MIX_FIELDS = ("FFMA", "DFMA", "HFMA2", "HMMA", "LDS", "LDS_bytes", "LDG", "STS", "STG", "INT", "FP_OTHER", "OTHER",
              "total", "fma_per_thread")

INSTRUCTION = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)((?:\.[A-Z0-9_]+)*)\s*([^;]*);")
FUNCTION = re.compile(r"^\s*Function\s*:\s*(\S+)")


def find_tool(name):
    """cuobjdump from PATH, CUDA_HOME, or the venv's triton package (which ships it)."""
    candidates = [shutil.which(name)]
    candidates += glob.glob(str(Path(sys.executable).parents[1] / "lib" / "python3*" / "site-packages" / "triton" /
                                "backends" / "nvidia" / "bin" / name))
    candidates += glob.glob(f"/usr/local/cuda*/bin/{name}")
    for c in candidates:
        if c and Path(c).exists():
            return c
    return None


def parse_sass(text):
    """{mangled kernel: [(offset, opcode, modifiers, operands)]} from `cuobjdump -sass` (one arch)."""
    kernels, current = {}, None
    for line in text.splitlines():
        m = FUNCTION.match(line)
        if m:
            # A template instantiated by two .cu files appears in both cubins, compiled alike: keep the first.
            current = None if m.group(1) in kernels else kernels.setdefault(m.group(1), [])
            continue
        m = INSTRUCTION.search(line)
        if m and current is not None:
            current.append((int(m.group(1), 16), m.group(3), m.group(4), m.group(5).strip()))
    return kernels


def loops(instructions):
    """(start, end) offsets of every loop closed by a backward branch (a self-branch is the end-of-code trap)."""
    found = set()
    for offset, opcode, _, operands in instructions:
        if opcode != "BRA":
            continue
        target = re.findall(r"0x[0-9a-f]+", operands)
        if target and int(target[-1], 16) < offset:
            found.add((int(target[-1], 16), offset))
    return sorted(found)


def mma_fmas_per_thread(modifiers):
    """Multiply-adds per thread of one HMMA: m*n*k of its shape (`.16816` = 16x8x16, `.1688` = 16x8x8,
    `.1684` = 16x8x4: TF32 WMMA) / 32."""
    m = re.match(r"\.(16)(8)(16|8|4)\b", modifiers)
    return int(m.group(1)) * int(m.group(2)) * int(m.group(3)) // 32 if m else 0


def classify(opcode, modifiers, operands):
    """(mix field, LDS bytes) of one instruction."""
    if opcode == "HFMA2" and re.match(r"R\w+,\s*-?RZ,\s*-?RZ\b", operands):
        return "INT", 0  # `HFMA2.MMA Rd, -RZ, RZ, c, c` is the compiler's idiom for a register move
    if opcode in ("FFMA", "DFMA", "HFMA2", "HMMA", "STS", "STG"):
        return opcode, 0
    if opcode in ("LDS", "LDSM"):
        return "LDS", lds_bytes(opcode, modifiers)
    if opcode in ("LDG", "LDGSTS"):
        return "LDG", 0
    if opcode in INTEGER_OPS:
        return "INT", 0
    if opcode in FLOAT_OTHER_OPS:
        return "FP_OTHER", 0
    return "OTHER", 0


def lds_bytes(opcode, modifiers):
    """Bytes one thread loads: LDS[.U8/.S8/.U16/.S16/.64/.128], LDSM.16.M88.{1,2,4} (4 bytes per matrix)."""
    if opcode == "LDSM":
        m = re.search(r"\.M88\.(\d)", modifiers)
        return 4 * int(m.group(1)) if m else 4
    for suffix, size in ((".128", 16), (".64", 8), (".U16", 2), (".S16", 2), (".U8", 1), (".S8", 1)):
        if suffix in modifiers:
            return size
    return 4


def mix(instructions):
    """Instruction counts of a straight list of instructions (MIX_FIELDS), plus LDS counts by width.

    fma_per_thread: the multiply-adds one thread does in one pass (FFMA/DFMA 1, HFMA2 2, HMMA m*n*k/32)."""
    counts = {f: 0 for f in MIX_FIELDS}
    widths = {}
    for _, opcode, modifiers, operands in instructions:
        field, nbytes = classify(opcode, modifiers, operands)
        counts[field] += 1
        counts["LDS_bytes"] += nbytes
        counts["fma_per_thread"] += {"FFMA": 1, "DFMA": 1, "HFMA2": 2}.get(field, 0)
        if field == "HMMA":
            counts["fma_per_thread"] += mma_fmas_per_thread(modifiers)
        if field == "LDS":
            widths[str(nbytes * 8)] = widths.get(str(nbytes * 8), 0) + 1
        counts["total"] += 1
    counts["LDS_by_width_bits"] = widths
    return counts


def multiply_adds(counts):
    return counts["FFMA"] + counts["DFMA"] + counts["HFMA2"] + counts["HMMA"]


def inner_loop(instructions):
    """(mix, (start, end)) of the inner loop (module docstring's rule), or (None, None) without loops."""
    spans = loops(instructions)
    mixes = {s: mix([i for i in instructions if s[0] <= i[0] <= s[1]]) for s in spans}

    def innermost(candidates):
        return [s for s in candidates if not any(o != s and s[0] <= o[0] and o[1] <= s[1] for o in candidates)]

    fma_loops = innermost([s for s in spans if multiply_adds(mixes[s])])
    if fma_loops:
        best = max(fma_loops, key=lambda s: (mixes[s]["fma_per_thread"], mixes[s]["total"]))
    elif spans:
        best = max(innermost(spans), key=lambda s: mixes[s]["total"])
    else:
        return None, None
    return mixes[best], best


def parse_res_usage(text):
    """{(arch, mangled kernel): {REG, STACK, SHARED, LOCAL}} from `cuobjdump -res-usage`."""
    usage, arch, kernel = {}, None, None
    for line in text.splitlines():
        m = re.match(r"\s*arch = (sm_\d+)", line)
        if m:
            arch = m.group(1)
            continue
        m = re.match(r"\s*Function (\S+):", line)
        if m:
            kernel = m.group(1)
            continue
        m = re.match(r"\s*REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", line)
        if m and kernel:
            usage[(arch, kernel)] = dict(zip(("REG", "STACK", "SHARED", "LOCAL"), map(int, m.groups())))
            kernel = None
    return usage


def parse_launch_bounds(elf_text):
    """{mangled kernel: (max threads, max registers per thread)} from the .nv.info sections of `cuobjdump -elf`."""
    bounds, kernel, attribute = {}, None, None
    for line in elf_text.splitlines():
        m = re.match(r"^\.nv\.info\.(\S+)", line)
        if m:
            kernel = m.group(1)
            continue
        m = re.search(r"Attribute:\s+(EIATTR_\w+)", line)
        if m:
            attribute = m.group(1)
            continue
        m = re.search(r"Value:\s+(0x[0-9a-f]+)", line)
        if m and kernel and attribute in ("EIATTR_MAX_THREADS", "EIATTR_MAXREG_COUNT"):
            threads, maxreg = bounds.get(kernel, (None, None))
            value = int(m.group(1), 16)
            bounds[kernel] = (value, maxreg) if attribute == "EIATTR_MAX_THREADS" else (threads, value)
            attribute = None
    return bounds


def launch_bounds(max_threads, maxreg, registers_per_sm=65536):
    """[threads, min blocks] of __launch_bounds__, or None without one.

    The binary keeps the thread bound and the register cap that ptxas derived from the min-blocks bound
    (255 without one); min blocks is recovered as the most blocks of `threads` that the cap lets fit."""
    if not max_threads:
        return None
    if not maxreg or maxreg >= 255:
        return [max_threads, None]
    return [max_threads, registers_per_sm // (max_threads * maxreg)]


def occupancy(arch, registers, smem_per_block, threads_per_block):
    """Resident blocks and warps per SM, and the limiting resource, for one launch configuration.

    smem_per_block: static + dynamic shared memory (the 1 KB system reservation is added here)."""
    lim = ARCH_LIMITS[arch]
    warps_per_block = math.ceil(threads_per_block / 32)
    regs_per_warp = math.ceil(max(registers, 1) * 32 / REGISTER_ALLOCATION_UNIT) * REGISTER_ALLOCATION_UNIT
    smem = math.ceil((smem_per_block + RESERVED_SMEM_PER_BLOCK) / SMEM_ALLOCATION_UNIT) * SMEM_ALLOCATION_UNIT
    if smem_per_block > lim["max_smem_per_block"]:
        raise ValueError(f"{smem_per_block} bytes of shared memory exceed the {arch} limit per block")
    limits = {
        "warps": lim["max_warps_per_sm"] // warps_per_block,
        "blocks": lim["max_blocks_per_sm"],
        "registers": (lim["registers_per_sm"] // regs_per_warp) // warps_per_block,
        "shared_memory": lim["max_smem_per_sm"] // smem,
    }
    limiter = min(limits, key=limits.get)
    blocks = limits[limiter]
    return {"blocks_per_sm": blocks, "warps_per_sm": blocks * warps_per_block,
            "max_warps_per_sm": lim["max_warps_per_sm"], "limited_by": limiter}


def run(cmd):
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr}")
    return result.stdout


def analyse(binary, archs, cuobjdump):
    """The sass.json rows of every kernel of `binary` for each arch."""
    usage = parse_res_usage(run([cuobjdump, "-res-usage", str(binary)]))
    rows = []
    for arch in archs:
        sass = parse_sass(run([cuobjdump, "-sass", "-arch", arch, str(binary)]))
        if not sass:
            raise SystemExit(f"{binary} holds no {arch} SASS (built with another TORCH_CUDA_ARCH_LIST?)")
        bounds = parse_launch_bounds(run([cuobjdump, "-elf", "-arch", arch, str(binary)]))
        names = demangle(sorted(sass))
        for mangled, instructions in sass.items():
            res = usage[(arch, mangled)]
            reserved = RESERVED_SMEM_PER_BLOCK if arch in RES_USAGE_INCLUDES_RESERVED and res["SHARED"] else 0
            static_smem = res["SHARED"] - reserved
            threads, maxreg = bounds.get(mangled, (None, None))
            loop_mix, span = inner_loop(instructions)
            local_ops = sum(1 for i in instructions if i[1] in ("LDL", "STL"))
            row = {
                "kernel": short_name(names[mangled]), "arch": arch,
                "registers": res["REG"], "static_smem_bytes": static_smem, "spill_bytes": res["LOCAL"],
                "stack_bytes": res["STACK"], "local_memory_instructions": local_ops,
                "launch_bounds": launch_bounds(threads, maxreg), "inner_loop": loop_mix,
                "kernel_mix": mix(instructions),
                "inner_loop_offsets": [f"{span[0]:#06x}", f"{span[1]:#06x}"] if span else None,
            }
            if threads:
                row["occupancy_without_dynamic_smem"] = occupancy(arch, res["REG"], static_smem, threads)
            rows.append(row)
    rows.sort(key=lambda r: (r["kernel"], r["arch"]))
    return rows


def default_binary():
    found = sorted(glob.glob(str(REPO / "dense_conv" / "_C*.so")))
    return Path(found[0]) if found else None


def ratio(a, b):
    return f"{a / b:.2f}" if b else "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=Path, help="a CUDA build of the extension (default: dense_conv/_C*.so)")
    parser.add_argument("--arch", action="append", choices=sorted(ARCH_LIMITS), help="default: all three")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    binary = args.binary or default_binary()
    if not binary or not binary.exists():
        print("no built extension: build it with CUDA first (CUDA_HOME=... python setup.py build_ext --inplace)",
              file=sys.stderr)
        return 2
    cuobjdump = find_tool("cuobjdump")
    if not cuobjdump:
        print("cuobjdump not found (CUDA's bin/ or the venv's triton/backends/nvidia/bin/)", file=sys.stderr)
        return 2
    listing = subprocess.run([cuobjdump, "-lelf", str(binary)], capture_output=True, text=True)
    if ".sm_" not in listing.stdout:
        print(f"{binary} holds no device code: a CPU-only build (rebuild with CUDA_HOME set)", file=sys.stderr)
        return 2
    rows = analyse(binary, args.arch or DEFAULT_ARCHS, cuobjdump)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # One kernel a line: diffs between two runs show which kernels changed.
    source = json.dumps(f"cuobjdump on {binary.name} (tools/sass_mix.py)")
    args.output.write_text(f'{{"source": {source},\n "kernels": [\n' + ",\n".join(json.dumps(r) for r in rows)
                           + "\n]}\n")

    print(f"{'arch':<6} {'kernel':<60} {'regs':>4} {'smem':>6} {'spill':>5} {'FFMA':>4} {'DFMA':>4} {'HFMA2':>5} "
          f"{'HMMA':>4} {'LDS':>4} {'LDS B':>5} {'INT':>4} {'tot':>4} {'FMA:LDS':>7} {'blk/SM':>6}")
    for r in rows:
        m = r["inner_loop"] or {f: 0 for f in MIX_FIELDS}
        occ = r.get("occupancy_without_dynamic_smem", {}).get("blocks_per_sm", "-")
        print(f"{r['arch']:<6} {r['kernel'][:60]:<60} {r['registers']:>4} {r['static_smem_bytes']:>6} "
              f"{r['spill_bytes']:>5} {m['FFMA']:>4} {m['DFMA']:>4} {m['HFMA2']:>5} {m['HMMA']:>4} {m['LDS']:>4} "
              f"{m['LDS_bytes']:>5} {m['INT']:>4} {m['total']:>4} {ratio(multiply_adds(m), m['LDS']):>7} {occ:>6}")
    print(f"{len(rows)} (kernel, arch) rows -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
