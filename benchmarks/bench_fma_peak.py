"""The machine's float32 FMA peak per core, measured with a small numba kernel.

Usage:
    python benchmarks/bench_fma_peak.py [--seconds 2] [--asm] [--json PATH]

Prints the float32 GFLOP/s one core reaches with fused multiply-adds on 256-bit
vectors (ymm, 8 floats) and, if the CPU has AVX-512 (avx512f), on 512-bit
vectors (zmm, 16 floats), and the ISA flags of the CPU. run_all.py calls
``fma_peak()`` once at the start and stores the figures with the results: they
are the ceiling every GFLOP/s figure of a convolution on one core can be read
against (two cores: twice that).

The kernel: ``CHAINS`` independent accumulator vectors, each updated
``acc = acc * a + b`` over and over. One FMA has to wait for the previous FMA
of its own chain (4 cycles on Zen 3 and Skylake), and a core starts up to two
FMAs per cycle, so at least 8 chains must be in flight to keep both FMA units
busy; 12 leave a margin and still fit the 16 ymm registers of AVX2 with ``a``
and ``b``. LLVM keeps the whole accumulator array in registers: the loop body
is ``CHAINS`` vfmadd instructions and a loop counter, no memory access.
``fastmath=True`` lets LLVM fuse the multiply and the add into one FMA.

The vector width is chosen by what LLVM may use, not by the code: each width is
compiled and run in a fresh process whose NUMBA_CPU_FEATURES is the host's
features with AVX-512 switched off (256-bit), or with LLVM's "prefer-256-bit"
tuning switched off (512-bit; LLVM otherwise splits 512-bit vectors into two
256-bit halves on most AVX-512 CPUs). The generated assembly is then checked
(``kernel.inspect_asm``): a width counts only if the FMAs are packed-single
vfmadd on registers of that width and on no other; ``--asm`` prints the loop.

Timing: the run is cut into slices of a few milliseconds; the figure is the
best slice by wall clock (on a shared machine some slices are interrupted by
other processes; the fastest one is the undisturbed rate), with the median of
the per-slice rates by thread CPU time beside it as a check (it should agree).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHAINS = 12                        # independent FMA chains (vector registers in flight)
WIDTHS = {256: 8, 512: 16}         # vector bits -> float32 lanes
REGISTER = {256: "ymm", 512: "zmm"}
SLICE_SECONDS = 0.005              # one timed call of the kernel


def make_kernel(lanes):
    """An njit kernel that runs CHAINS chains of ``lanes``-wide FMAs ``iterations`` times.

    ``acc`` holds CHAINS * lanes float32 values (the accumulators); 2 flops per
    element per iteration."""
    import numba
    n_values = CHAINS * lanes          # a compile-time constant for numba (a closure variable)

    @numba.njit(fastmath=True)
    def fma_chains(acc, a, b, iterations):
        for _ in range(iterations):
            for j in range(n_values):
                acc[j] = acc[j] * a + b
    return fma_chains


def fma_register_counts(asm):
    """How many packed-single FMA instructions (vfmadd/vfmsub/vfnmadd/vfnmsub ...ps)
    the assembly has on xmm, ymm and zmm registers."""
    counts = {"xmm": 0, "ymm": 0, "zmm": 0}
    for operands in re.findall(r"\bvfn?m(?:add|sub)\w*ps\s+([^\n]*)", asm):
        for reg in counts:
            if "%" + reg in operands:
                counts[reg] += 1
                break
    return counts


def fma_loop_asm(asm):
    """The lines of the innermost loop that holds the FMAs (for --asm)."""
    lines = asm.splitlines()
    hits = [i for i, line in enumerate(lines) if re.search(r"\bvfn?m(?:add|sub)\w*ps\b", line)]
    if not hits:
        return "(no packed FMA instruction found)"
    start = hits[0]
    while start > 0 and not lines[start - 1].rstrip().endswith(":"):
        start -= 1
    end = hits[-1] + 1
    while end < len(lines) and not re.match(r"\s+j\w+\s", lines[end]):
        end += 1
    return "\n".join(lines[max(start - 1, 0):end + 1])


def measure(lanes, seconds=1.0, slice_seconds=SLICE_SECONDS):
    """Run the kernel for ``lanes``-wide vectors in this process (with numba's current
    target) for about ``seconds``. Returns GFLOP/s figures and the assembly's FMA counts."""
    kernel = make_kernel(lanes)
    acc = np.ones(CHAINS * lanes, dtype=np.float32)
    a, b = np.float32(0.999), np.float32(0.001)     # acc stays near 1: no overflow, no denormals
    kernel(acc, a, b, 1)                            # compile
    asm = kernel.inspect_asm(kernel.signatures[0])
    flops_per_iteration = 2 * CHAINS * lanes

    iterations = 1000
    while True:                                     # calibrate one slice
        t0 = time.perf_counter()
        kernel(acc, a, b, iterations)
        dt = time.perf_counter() - t0
        if dt >= slice_seconds / 4 or iterations > 1 << 30:
            break
        iterations *= 4
    iterations = max(1, int(iterations * slice_seconds / max(dt, 1e-9)))

    wall, cpu = [], []
    end = time.perf_counter() + seconds
    while len(wall) < 5 or time.perf_counter() < end:
        t0, c0 = time.perf_counter(), time.thread_time()
        kernel(acc, a, b, iterations)
        t1, c1 = time.perf_counter(), time.thread_time()
        flops = flops_per_iteration * iterations
        wall.append(flops / (t1 - t0) / 1e9)
        if c1 > c0:
            cpu.append(flops / (c1 - c0) / 1e9)
    if not np.all(np.isfinite(acc)):
        raise RuntimeError("bench_fma_peak: the accumulators left the finite range")
    return {"lanes": lanes, "chains": CHAINS, "gflops": max(wall),
            "gflops_wall_median": float(np.median(wall)),
            "gflops_cpu_time_median": float(np.median(cpu)) if cpu else None,
            "slices": len(wall), "slice_s": iterations * flops_per_iteration / max(wall) / 1e9,
            "fma_instructions": fma_register_counts(asm), "asm_loop": fma_loop_asm(asm)}


def cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo (empty if unreadable)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def host_features():
    """LLVM's feature string for this CPU ("+avx2,+fma,-avx512f,..."), as numba uses it."""
    import llvmlite.binding as llvm
    return llvm.get_host_cpu_features().flatten()


def target_features(bits, features):
    """``features`` changed so that LLVM uses ``bits``-wide vectors: 256 switches every
    AVX-512 (and AVX10) feature off; 512 switches the "prefer-256-bit" tuning off."""
    items = [f for f in features.split(",") if f]
    if bits == 256:
        return ",".join("-" + f[1:] if f[1:].startswith(("avx512", "avx10")) else f for f in items)
    return ",".join(items + ["-prefer-256-bit"])


def run_width(bits, seconds, python=None):
    """Measure one vector width in a fresh process compiled for it (see the module doc).
    Returns the record; "skipped" says why a width was not measured, "error" if it failed."""
    rec = {"bits": bits, "register": REGISTER[bits], "lanes": WIDTHS[bits]}
    if bits == 512 and "avx512f" not in cpu_flags():
        return {**rec, "skipped": "the CPU has no avx512f"}
    env = dict(os.environ, NUMBA_CPU_FEATURES=target_features(bits, host_features()))
    env.pop("NUMBA_CPU_NAME", None)
    cmd = [python or sys.executable, str(Path(__file__).resolve()), "--child", str(WIDTHS[bits]),
           "--seconds", str(seconds)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120 + 4 * seconds)
    except subprocess.TimeoutExpired:
        return {**rec, "error": "timed out"}
    if out.returncode != 0:
        return {**rec, "error": out.stderr.strip()[-2000:] or f"exit code {out.returncode}"}
    rec.update(json.loads(out.stdout.strip().splitlines()[-1]))
    counts = rec["fma_instructions"]
    others = sum(n for reg, n in counts.items() if reg != rec["register"])
    rec["asm_ok"] = counts[rec["register"]] >= CHAINS and others == 0
    if not rec["asm_ok"]:
        rec["note"] = (f"the kernel's FMAs are not all on {rec['register']} registers ({counts}): "
                       f"this rate is not a {bits}-bit figure")
    return rec


def fma_peak(seconds=2.0):
    """The FMA peak per core for every vector width the CPU has, with the ISA flags."""
    from bench_common import cpu_info
    info = cpu_info()
    return {"cpu": info["model_name"], "isa": info["isa"], "llvm_cpu": info["llvm_cpu"],
            "seconds_per_width": seconds,
            "widths": [run_width(bits, seconds) for bits in WIDTHS]}


def describe(rec):
    """One line for a width's record."""
    head = f"{rec['bits']}-bit FMA ({rec['register']}, {rec['lanes']} floats)"
    if "skipped" in rec:
        return f"{head}: skipped, {rec['skipped']}"
    if "error" in rec:
        return f"{head}: failed: {rec['error'].splitlines()[-1]}"
    cpu = rec.get("gflops_cpu_time_median")
    line = (f"{head}: {rec['gflops']:.1f} GFLOP/s per core (float32; best of {rec['slices']} slices "
            f"of {1e3 * rec['slice_s']:.0f} ms, median by CPU time {cpu:.1f}; {rec['chains']} chains)"
            if cpu else f"{head}: {rec['gflops']:.1f} GFLOP/s per core")
    return line if rec["asm_ok"] else f"{line}; WARNING: {rec['note']}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0, help="run time per vector width (default 2)")
    ap.add_argument("--asm", action="store_true", help="also print the kernel's inner loop per width")
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    ap.add_argument("--child", type=int, metavar="LANES", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:                 # one width, in the process run_width started for it
        print(json.dumps(measure(args.child, args.seconds)))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    result = fma_peak(args.seconds)
    isa = ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in result["isa"].items())
    print(f"# {result['cpu']} (LLVM target {result['llvm_cpu']}); {isa}")
    for rec in result["widths"]:
        print(describe(rec))
        if args.asm and rec.get("asm_loop"):
            print(rec["asm_loop"])
    if args.json:
        from bench_common import write_json
        write_json(args.json, result)


if __name__ == "__main__":
    main()
