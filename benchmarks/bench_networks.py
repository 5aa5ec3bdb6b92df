"""Per-network throughput and peak memory: simple and airbench94, training and inference.

Usage:
    python benchmarks/bench_networks.py [--torch-python /work/torchenv/bin/python] [--quick]
                                        [--batch 128 1024] [--only simple|airbench]
                                        [--no-memory] [--json PATH]

For minicnn.zoo.simple() and .airbench(widths=(64, 256, 256)) on random
32x32x3 images (NHWC float32), at batch 128 and 1024 (--quick: 128 only):

    train  forward(x, training=True) + softmax_cross_entropy + backward
           + an SGD step (minicnn.optim.SGD, p -= lr * g)        3 × forward FLOPs
    infer  model.predict(x, batch_size=N)   (eval mode, one forward)

reporting ms per step, images per second, achieved GFLOP/s (model.flops per
image × N, ×3 for training) and its fraction of the machine's SGEMM rate. Peak
memory (RSS) is measured in a fresh process per network / batch / step / backend
(bench_worker.py --probe), so one configuration's peak cannot leak into another.
With --torch-python the same networks run in PyTorch (eager NCHW, eager
channels_last and torch.compile channels_last, see backend_torch.py; --no-compile
leaves the compiled one out), interleaved with minicnn. The memory probes cover all three (without the
compiled one under --no-compile). Threads: 2 (--threads).
"""
import argparse
import json
import subprocess
import sys

from bench_common import (BENCH_DIR, COMPILE_LABEL, TORCH_SUBJECTS, Pool, add_compile_arg, attach_rate, common_args,
                          log, machine_info, reps_warmup, sgemm_reference, summarize, worker_env, write_json)
from report import memory_table, network_table, sgemm_table

NETWORKS = {"simple": {"name": "simple"},
            "airbench": {"name": "airbench", "widths": [64, 256, 256]}}
MODES = ("train", "infer")


def bench_networks(pool, networks=NETWORKS, batches=(128, 1024), modes=MODES, reps=7, warmup=2,
                   sgemm_gflops=None):
    """Time each network / batch / mode on every backend of ``pool``. Returns flat records."""
    records = []
    for net, spec in networks.items():
        for N in batches:
            for mode in modes:
                res = pool.measure({"kind": "network", **spec, "N": N, "mode": mode}, reps, warmup)
                fpi = next((r["meta"]["flops_per_image"] for r in res.values()
                            if "flops_per_image" in r.get("meta", {})), None)
                for backend, r in res.items():
                    rec = {"kind": "network", "backend": backend, "network": net,
                           "widths": spec.get("widths"), "batch": N, "mode": mode, "flops_per_image": fpi}
                    if "error" in r:
                        rec["error"] = r["error"]
                    elif "skipped" in r:
                        rec["skipped"] = r["skipped"]
                    else:
                        rec.update(summarize(r["times"]), params=r["meta"].get("params"))
                        if "compile_s" in r["meta"]:
                            rec.update({k: r["meta"][k] for k in ("compile_s", "graphs", "calls_to_steady")})
                        rec["img_per_s"] = N / rec["median_s"]
                        flops = fpi * N * (3 if mode == "train" else 1) if fpi else None
                        attach_rate(rec, flops, sgemm_gflops)
                        log(f"  {net:<9} N={N:<5} {mode:<5} {backend:<16} {rec['median_s'] * 1e3:9.1f} ms"
                            f"  {rec['img_per_s']:8.0f} img/s")
                    records.append(rec)
    return records


def probe(backend, task, python=None, threads=2, steps=2, timeout=1800):
    """Peak RSS of one task in a fresh process (see bench_worker.probe_memory)."""
    cmd = [python or sys.executable, str(BENCH_DIR / "bench_worker.py"), "--backend", backend,
           "--threads", str(threads), "--probe", json.dumps(task), "--steps", str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=worker_env(threads), timeout=timeout)
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-2000:] or f"exit code {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_memory(networks=NETWORKS, batches=(128, 1024), modes=MODES, torch_python=None, threads=2, steps=2,
                 torch_compile=True):
    """Peak RSS per network / batch / mode / backend, each in its own process. With
    torch_compile, torch.compile (channels_last) too: its probe compiles for a batch
    of 2 and for the full batch before the peak is reset, so compiling is not in it."""
    subjects = [("minicnn", "minicnn", None, {})]
    if torch_python:
        subjects += [(label, "torch", torch_python, extra) for label, extra in TORCH_SUBJECTS.items()
                     if torch_compile or label != COMPILE_LABEL]
    records = []
    for net, spec in networks.items():
        for N in batches:
            for mode in modes:
                for label, backend, python, extra in subjects:
                    task = {"kind": "network", **spec, "N": N, "mode": mode, **extra}
                    rec = {"kind": "memory", "backend": label, "network": net, "widths": spec.get("widths"),
                           "batch": N, "mode": mode, **probe(backend, task, python, threads, steps)}
                    if "peak_rss_mib" in rec:
                        log(f"  {net:<9} N={N:<5} {mode:<5} {label:<10} peak {rec['peak_rss_mib']:7.0f} MiB"
                            f"  (idle {rec['idle_rss_mib']:.0f})")
                    else:
                        log(f"  ! memory probe {label} {net} N={N} {mode} failed: {rec['error'][-300:]}")
                    records.append(rec)
    return records


def main():
    ap = add_compile_arg(common_args(argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter),
        quick_help="few reps, batch 128 only (smoke test)"))
    ap.add_argument("--batch", type=int, nargs="+", default=None, help="batch sizes (default 128 1024)")
    ap.add_argument("--only", choices=list(NETWORKS), help="one network")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS probes")
    args = ap.parse_args()
    reps, warmup = reps_warmup(args)
    batches = args.batch or ([128] if args.quick else [128, 1024])
    nets = {k: v for k, v in NETWORKS.items() if not args.only or k == args.only}
    from bench_sgemm import bench_sgemm
    meta = machine_info(args.threads)
    with Pool(args.torch_python, args.threads, gap=args.gap, warm=args.warm,
              torch_compile=not args.no_compile) as pool:
        sgemm = bench_sgemm(pool, shapes=[(2048, 2048, 2048)], reps=3, warmup=1)
        records = bench_networks(pool, nets, batches, MODES, reps, warmup, sgemm_gflops=sgemm_reference(sgemm))
        meta["workers"] = pool.info()
        meta["torch_subjects_skipped"] = dict(pool.skipped)
        torch_python = pool.torch_python
    memory = [] if args.no_memory else bench_memory(nets, batches, MODES, torch_python, args.threads,
                                                     torch_compile=not args.no_compile)
    print(sgemm_table(sgemm) + "\n\n" + network_table(records))
    if memory:
        print("\n" + memory_table(memory))
    if args.json:
        write_json(args.json, {"meta": meta, "sgemm": sgemm, "networks": records, "memory": memory})


if __name__ == "__main__":
    main()
