#!/usr/bin/env python3
"""Per-kernel registers, shared memory, stack and spills of every CUDA kernel header, from ptxas.

Compiles each csrc/cuda/*_kernels.cuh standalone with nvcc (no torch headers: a few seconds), in a
generated .cu that takes the address of every `launch_*<scalar_t>` function template for float and
double, so that every kernel they launch is instantiated. Prints one table row per (arch, kernel) and
exits non-zero if any kernel spills to local memory.

    python tools/cuda_resources.py [--arch 80 --arch 90] [--output build/cuda_resources.txt]

The default archs are those setup.py builds when no GPU is present (8.0, 8.9, 9.0).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KERNEL_DIR = REPO / "csrc" / "cuda"
LAUNCH_TEMPLATE = re.compile(r"template\s*<\s*typename\s+scalar_t\s*>\s*(?:inline\s+)?void\s+(launch_\w+)\s*\(")


def nvcc_path():
    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if cuda_home and (Path(cuda_home) / "bin" / "nvcc").exists():
        return str(Path(cuda_home) / "bin" / "nvcc")
    return shutil.which("nvcc")


def probe_source(header):
    """A translation unit that instantiates every launch function of `header`."""
    names = LAUNCH_TEMPLATE.findall(header.read_text())
    lines = [f'#include "{header.name}"', "void dc_resource_probe() {"]
    lines += [f"  (void)&dc::{name}<{t}>;" for name in names for t in ("float", "double")]
    lines.append("}")
    return "\n".join(lines) + "\n", names


def demangle(names):
    tool = shutil.which("c++filt")
    if not tool or not names:
        return {n: n for n in names}
    out = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True).stdout.splitlines()
    return dict(zip(names, out))


def short_name(demangled):
    """`void dc::k<float, 4>(args...)` -> `dc::k<float, 4>`."""
    name = demangled[5:] if demangled.startswith("void ") else demangled
    depth = 0
    for i, c in enumerate(name):
        depth += c in "<("
        depth -= c in ">)"
        if c == "(" and depth == 1:
            return name[:i]
    return name


def parse_ptxas(text):
    """Rows (arch, mangled kernel, registers, smem, stack, spill stores, spill loads) from -Xptxas -v."""
    rows, current, props = [], None, {}
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '(\w+)' for '(sm_\d+)'", line)
        if m:
            current = {"kernel": m.group(1), "arch": m.group(2), "stack": 0, "spill_stores": 0, "spill_loads": 0}
            continue
        m = re.search(r"Function properties for (\w+)", line)
        if m:
            props = {"name": m.group(1)}
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and current and props.get("name") == current["kernel"]:
            current["stack"], current["spill_stores"], current["spill_loads"] = map(int, m.groups())
            continue
        m = re.search(r"Used (\d+) registers.*?(?:(\d+) bytes smem)?,", line)
        if m and current:
            smem = re.search(r"(\d+) bytes smem", line)
            current["registers"] = int(m.group(1))
            current["smem"] = int(smem.group(1)) if smem else 0
            rows.append(current)
            current = None
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", action="append", help="compute capability, e.g. 80 (default: 80, 89, 90)")
    parser.add_argument("--output", help="also write the table to this file")
    args = parser.parse_args()
    archs = args.arch or ["80", "89", "90"]
    nvcc = nvcc_path()
    if not nvcc:
        print("nvcc not found (set CUDA_HOME)", file=sys.stderr)
        return 2

    rows = []
    for header in sorted(KERNEL_DIR.glob("*_kernels.cuh")):
        source, names = probe_source(header)
        if not names:
            print(f"warning: no launch_*<scalar_t> templates found in {header.name}", file=sys.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            probe = Path(tmp) / f"{header.stem}_probe.cu"
            probe.write_text(source)
            cmd = [nvcc, "-c", "-std=c++17", "-O3", f"-I{KERNEL_DIR}", "-Xptxas", "-v", str(probe), "-o",
                   str(Path(tmp) / "probe.o")]
            for arch in archs:
                cmd += ["-gencode", f"arch=compute_{arch},code=sm_{arch}"]
            result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"nvcc failed on {header.name}:\n{result.stderr}", file=sys.stderr)
            return 2
        for row in parse_ptxas(result.stdout + result.stderr):
            row["header"] = header.name
            rows.append(row)

    names = demangle(sorted({r["kernel"] for r in rows}))
    rows.sort(key=lambda r: (r["arch"], r["header"], short_name(names[r["kernel"]])))
    header_line = f"{'arch':<6} {'kernel':<58} {'regs':>4} {'smem':>6} {'stack':>5} {'spill st':>8} {'spill ld':>8}"
    lines = [header_line, "-" * len(header_line)]
    for r in rows:
        lines.append(f"{r['arch']:<6} {short_name(names[r['kernel']]):<58} {r['registers']:>4} {r['smem']:>6} "
                     f"{r['stack']:>5} {r['spill_stores']:>8} {r['spill_loads']:>8}")
    spills = [r for r in rows if r["spill_stores"] or r["spill_loads"]]
    lines.append(f"{len(rows)} kernels; smem = static shared memory (dynamic shared memory is set at launch); "
                 f"{len(spills)} with spills")
    table = "\n".join(lines)
    print(table)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(table + "\n")
    if spills:
        print("error: register spills in " + ", ".join(sorted({short_name(names[r['kernel']]) for r in spills})),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
