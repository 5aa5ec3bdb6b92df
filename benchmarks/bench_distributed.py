"""Data-parallel training on one host: 1 rank x 2 threads against 2 ranks x 1 thread.

    python benchmarks/bench_distributed.py [--rounds 3] [--steps 6] [--batch 1024]

Each configuration is one ``mpiexec`` job that trains airbench94 (random images and
labels, the fast94_sgd optimizer) for 1 untimed + ``--steps`` timed steps of the global
batch; the configurations alternate, ``--rounds`` times, and the medians are reported:

* step: forward + loss + backward + gradient averaging + SGD update, per global batch
* wait: a Barrier before the Allreduce (one rank waiting for the other: load imbalance)
* allreduce: the one Allreduce of the gradient buffer after that Barrier
  (communication alone), and its share of the step

Configurations: "1x2" (one rank, 2 threads), "2x1" (two ranks of 1 thread, per-rank
BatchNorm), "2x1-sync" (the same with SyncBatchNorm). Writes
evidence/benchmarks/distributed.json and prints a table.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_common import RESULTS_DIR, cpu_model, write_json  # noqa: E402

CONFIGS = {"1x2": (1, 2, False), "2x1": (2, 1, False), "2x1-sync": (2, 1, True)}


def worker(steps, batch, threads, sync_bn):
    """Runs under mpiexec: time the steps, print one JSON line from rank 0."""
    import numpy as np
    import minicnn
    from minicnn import distributed
    from minicnn.nn.loss import softmax_cross_entropy
    from minicnn.zoo import airbench, airbench_optimizer

    minicnn.tune_process()
    ranks = distributed.Ranks()
    ranks.abort_on_error()
    ranks.limit_threads(threads)
    rng = np.random.default_rng(0)
    model = airbench((64, 256, 256), rng=rng,
                     whiten_images=rng.standard_normal((500, 32, 32, 3)).astype(np.float32))
    if sync_bn:
        distributed.sync_batchnorm(model, ranks)
    optimizer = airbench_optimizer(model, batch)
    averager = distributed.GradientAverager(ranks, list(model.named_parameters()),
                                            distributed.per_rank_buffers(model))
    shard = batch // ranks.size
    x = rng.standard_normal((shard, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, shard)
    records = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        logits = model.forward(x, training=True)
        loss, dlogits = softmax_cross_entropy(logits, y, 0.2)
        model.backward(dlogits)
        t1 = time.perf_counter()
        ranks.comm.Barrier()
        t2 = time.perf_counter()
        averager.average(loss, 0.0)
        t3 = time.perf_counter()
        optimizer.step()
        t4 = time.perf_counter()
        if i:                                              # the first step is warm-up
            records.append({"step": t4 - t0, "wait": t2 - t1, "allreduce": t3 - t2})
    every = ranks.comm.gather(records, root=0)
    if ranks.is_main:
        # a step ends when its slowest rank ends: per step, the largest time of any rank
        steps_max = [{k: max(r[i][k] for r in every) for k in ("step", "wait", "allreduce")}
                     for i in range(len(records))]
        print("RESULT " + json.dumps({"steps": steps_max, "buffer_bytes": averager.nbytes}))


def run_config(name, steps, batch):
    n, threads, sync = CONFIGS[name]
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}   # every config alike
    cmd = ["mpiexec", "-n", str(n), sys.executable, __file__, "--worker", "--steps", str(steps),
           "--batch", str(batch), "--threads", str(threads)] + (["--sync-bn"] if sync else [])
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
    if out.returncode or line is None:
        raise SystemExit(f"{name} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return json.loads(line[len("RESULT "):])


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--sync-bn", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.steps, args.batch, args.threads, args.sync_bn)
    per_config = {name: [] for name in CONFIGS}
    for r in range(args.rounds):
        for name in CONFIGS:
            per_config[name] += run_config(name, args.steps, args.batch)["steps"]
            print(f"round {r + 1}/{args.rounds} {name} done", file=sys.stderr)
    buffer_bytes = run_config("2x1", 1, args.batch)["buffer_bytes"]
    summary = {}
    for name, steps in per_config.items():
        step = median(s["step"] for s in steps)
        allreduce = median(s["allreduce"] for s in steps)
        summary[name] = {"step_s": step, "images_per_s": args.batch / step,
                         "wait_s": median(s["wait"] for s in steps), "allreduce_s": allreduce,
                         "allreduce_share": allreduce / step, "n_steps": len(steps)}
    base = summary["1x2"]["images_per_s"]
    result = {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)), "batch": args.batch,
              "rounds": args.rounds, "steps_per_round": args.steps,
              "gradient_buffer_bytes": buffer_bytes,
              "date": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(sys.argv),
              "configs": summary}
    write_json(RESULTS_DIR / "distributed.json", result)
    print(f"airbench94 training, global batch {args.batch}, {result['cpu']}, "
          f"{result['cores']} cores; medians of {args.rounds} rounds x {args.steps} steps")
    print(f"{'config':10s} {'img/s':>7s} {'vs 1x2':>7s} {'step s':>7s} {'wait s':>7s} "
          f"{'allreduce s':>11s} {'share':>6s}")
    for name, s in summary.items():
        print(f"{name:10s} {s['images_per_s']:7.0f} {s['images_per_s'] / base:7.2f} "
              f"{s['step_s']:7.3f} {s['wait_s']:7.3f} {s['allreduce_s']:11.4f} "
              f"{100 * s['allreduce_share']:5.1f}%")
    print(f"gradient buffer: {buffer_bytes / 1e6:.2f} MB; wrote {RESULTS_DIR / 'distributed.json'}")


if __name__ == "__main__":
    main()
