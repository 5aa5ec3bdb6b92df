"""The whole benchmark suite in one command: FMA peak, SGEMM, conv layers, networks, peak memory.

Usage:
    python benchmarks/run_all.py [--torch-python PATH] [--quick] [--note TEXT]

    --torch-python PATH   a python that has torch: the same layers and networks then
                          also run in PyTorch (eager NCHW and channels_last, and for
                          the networks torch.compile channels_last in a worker of its
                          own), interleaved with minicnn, and every table gets a speed
                          ratio vs the fastest PyTorch subject of each row. Optional;
                          if the path is missing or has no torch, the comparison is
                          skipped with a message; if torch.compile fails on this
                          machine, that subject is skipped with the reason.
    --quick               smoke test: 3 reps after 1 warm-up, batch 128 only,
                          writes evidence/benchmarks/quick.{json,md} instead of latest.*
    --nets simple         only these networks; --no-layers skips the layer table;
                          --no-compile leaves torch.compile out (smaller smoke tests)

First, bench_fma_peak.py measures the float32 FMA peak of one core (its figures
and the CPU's family, model, ISA flags and LLVM target go into the report's
machine line).

Writes evidence/benchmarks/latest.json (every record, with all repetition times)
and evidence/benchmarks/latest.md (the tables, with date, machine, versions and
this command), and prints the Markdown. A full run takes about 40 minutes
on 2 cores with torch (batch 1024 dominates), plus torch.compile's compilation
(seconds to a minute per network, batch and step); --quick about 5 plus that.

PyTorch is a yardstick, never a dependency of minicnn. On a fresh machine, set up
a separate venv for it (CPU build, pinned so results stay comparable):

    python -m venv .venv-torch && .venv-torch/bin/pip install torch==2.13.0 numpy
    python benchmarks/run_all.py --torch-python .venv-torch/bin/python

(On Linux x86-64 the default torch wheel bundles CUDA, several GB; the CPU-only
build these figures were taken with, 2.13.0+cpu, is installed by adding
``--index-url https://download.pytorch.org/whl/cpu`` to that pip command.)

Code: minicnn/ is copied to a temporary directory at the start and every worker
imports it from there (--no-snapshot: from the work tree), so edits made during
a long run cannot mix two versions into one report; the report gives the
sha256 of the copied sources and says if the work tree changed meanwhile.

Threads: 2 for everyone: OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS
and NUMBA_NUM_THREADS are set in the worker processes, and the PyTorch workers
call torch.set_num_threads(2). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed
from every worker's environment (only there); the report says which of them this
process had. Each figure is the median of the timed repetitions (at least 5 in
a full run) with min–max beside it; see benchmarks/README.md.
"""
import argparse
import os
import shutil
import sys
import tempfile

import bench_common
from bench_common import RESULTS_DIR, Pool, add_compile_arg, common_args, log, machine_info, reps_warmup, \
    sgemm_reference, snapshot_code, source_fingerprint, write_json
from bench_fma_peak import describe, fma_peak
from bench_layers import LAYERS, bench_layers
from bench_networks import MODES, NETWORKS, bench_memory, bench_networks
from bench_sgemm import SHAPES, bench_sgemm
from report import render


def main():
    ap = add_compile_arg(common_args(argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter),
        quick_help="3 reps, batch 128 only; writes evidence/benchmarks/quick.*"))
    ap.add_argument("--batch", type=int, nargs="+", default=None,
                    help="network batch sizes (default 128 1024; --quick 128)")
    ap.add_argument("--layer-batch", type=int, default=128, help="batch for the layer table (default 128)")
    ap.add_argument("--nets", nargs="+", choices=list(NETWORKS), default=list(NETWORKS),
                    help="networks to time (default: all)")
    ap.add_argument("--no-layers", action="store_true", help="skip the conv layer table")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS probes")
    ap.add_argument("--fma-seconds", type=float, default=None,
                    help="run time per vector width of the FMA peak measurement (default 2, --quick 0.5)")
    ap.add_argument("--note", action="append", default=[], help="a note to print in the report (repeatable)")
    ap.add_argument("--no-snapshot", action="store_true",
                    help="import minicnn from the work tree instead of a copy taken at start")
    ap.add_argument("--out", metavar="PREFIX",
                    help="output path without extension (default evidence/benchmarks/latest, --quick: evidence/benchmarks/quick)")
    args = ap.parse_args()
    reps, warmup = reps_warmup(args)
    batches = args.batch or ([128] if args.quick else [128, 1024])
    out = args.out or str(RESULTS_DIR / ("quick" if args.quick else "latest"))

    meta = machine_info(args.threads)
    meta.update(reps=reps, warmup=warmup, gap=args.gap, warm=args.warm, notes=list(args.note))
    snapshot = None
    if not args.no_snapshot:
        snapshot = tempfile.mkdtemp(prefix="minicnn-bench-")
        meta["minicnn_source_sha256"] = snapshot_code(snapshot)
    else:
        meta["minicnn_source_sha256"] = source_fingerprint()
    try:
        run(args, meta, reps, warmup, batches, out)
    finally:
        if snapshot:
            shutil.rmtree(snapshot, ignore_errors=True)


def run(args, meta, reps, warmup, batches, out):
    results = {"meta": meta}
    networks = {name: NETWORKS[name] for name in args.nets}

    def save():
        write_json(out + ".json", results)

    fma_seconds = args.fma_seconds if args.fma_seconds is not None else (0.5 if args.quick else 2.0)
    log(f"== float32 FMA peak per core ({fma_seconds} s per vector width)")
    meta["fma_peak"] = fma_peak(fma_seconds)
    for width in meta["fma_peak"]["widths"]:
        log("  " + describe(width))
    with Pool(args.torch_python, args.threads, gap=args.gap, warm=args.warm,
              torch_compile=not args.no_compile) as pool:
        meta["torch_skipped"] = pool.torch_skipped
        meta["torch_python"] = pool.torch_python
        log("== SGEMM")
        results["sgemm"] = bench_sgemm(pool, SHAPES, reps, warmup)
        ref = results["sgemm_reference_gflops"] = sgemm_reference(results["sgemm"])
        save()
        if not args.no_layers:
            log(f"== conv layers, batch {args.layer_batch}")
            results["layers"] = bench_layers(pool, LAYERS, args.layer_batch, reps, warmup, sgemm_gflops=ref)
            save()
        log(f"== networks, batch {batches}")
        results["networks"] = bench_networks(pool, networks, batches, MODES, reps, warmup, sgemm_gflops=ref)
        meta["workers"] = pool.info()
        meta["torch_subjects_skipped"] = dict(pool.skipped)
        save()
        torch_python = pool.torch_python
    if not args.no_memory:
        log("== peak memory (one fresh process each)")
        results["memory"] = bench_memory(networks, batches, MODES, torch_python, args.threads,
                                         torch_compile=not args.no_compile)
    meta["loadavg_end"] = list(os.getloadavg())
    live = source_fingerprint(bench_common.ROOT)
    if live != meta["minicnn_source_sha256"]:
        meta["notes"].append(f"minicnn/ in the work tree changed during the run (now {live}); "
                             f"every figure here is of the snapshot {meta['minicnn_source_sha256']} "
                             "taken at the start" if not args.no_snapshot else
                             f"minicnn/ changed during the run ({meta['minicnn_source_sha256']} -> {live}): "
                             "later sections measured different code than earlier ones")
    save()
    md = render(results)
    with open(out + ".md", "w") as f:
        f.write(md)
    print(md)
    log(f"wrote {out}.json and {out}.md")
    errors = sum("error" in r for key in ("sgemm", "layers", "networks", "memory") for r in results.get(key, []))
    if errors:
        log(f"{errors} measurement(s) failed: see the 'error' fields in {out}.json")
        sys.exit(1)


if __name__ == "__main__":
    main()
