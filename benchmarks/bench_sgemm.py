"""The machine's own SGEMM rate: float32 matrix products, the ceiling for im2col convs.

Usage:
    python benchmarks/bench_sgemm.py [--torch-python /work/torchenv/bin/python] [--quick] [--json PATH]

Shapes (M×K×N, C = A (M, K) @ B (K, N)):
    2048×2048×2048   large square: the practical peak every other figure is compared with
    131072×27×32     thin: simple's first conv at batch 128 (M = 128·32·32, K = 3·3·3)
    6272×2304×256    airbench's 256→256 3x3 conv at 7x7, batch 128 (M = 128·7·7, K = 9·256)

numpy (np.matmul, OpenBLAS) runs in the minicnn worker; with --torch-python,
torch.mm runs in the PyTorch worker, interleaved with it. Threads: 2 (--threads).
"""
import argparse

from bench_common import (Pool, attach_rate, common_args, log, machine_info, reps_warmup,
                          sgemm_reference, summarize, write_json)
from report import sgemm_table

SHAPES = [(2048, 2048, 2048), (131072, 27, 32), (6272, 2304, 256)]


def bench_sgemm(pool, shapes=SHAPES, reps=7, warmup=2):
    """Time C = A @ B for each (M, K, N). Returns one record per shape and backend."""
    records = []
    for M, K, N in shapes:
        res = pool.measure({"kind": "sgemm", "M": M, "K": K, "N": N}, reps, warmup)
        for backend, r in res.items():
            rec = {"kind": "sgemm", "backend": backend, "M": M, "K": K, "N": N}
            if "error" in r:
                rec["error"] = r["error"]
            else:
                rec.update(summarize(r["times"]))
                attach_rate(rec, 2 * M * K * N, None)
            records.append(rec)
    ref = sgemm_reference(records)
    for r in records:
        if ref and "gflops" in r:
            r["sgemm_fraction"] = r["gflops"] / ref
    for r in records:
        if "gflops" in r:
            log(f"  sgemm {r['M']}x{r['K']}x{r['N']:<6} {r['backend']:<6} {r['gflops']:7.1f} GFLOP/s")
    return records


def main():
    ap = common_args(argparse.ArgumentParser(description=__doc__,
                                             formatter_class=argparse.RawDescriptionHelpFormatter))
    args = ap.parse_args()
    reps, warmup = reps_warmup(args)
    meta = machine_info(args.threads)
    with Pool(args.torch_python, args.threads, gap=args.gap, warm=args.warm, torch_compile=False) as pool:
        records = bench_sgemm(pool, reps=reps, warmup=warmup)
        meta["workers"] = pool.info()
    print(sgemm_table(records))
    if args.json:
        write_json(args.json, {"meta": meta, "sgemm": records})


if __name__ == "__main__":
    main()
