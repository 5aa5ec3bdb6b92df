"""Is one checkout of minicnn as fast as another? Interleaved A/B of two source trees.

    python benchmarks/compare_trees.py OLD_TREE NEW_TREE [--batch 128 1024]
           [--nets simple airbench] [--modes train infer] [--reps 9]
           [--old-env KEY=VALUE ...] [--new-env KEY=VALUE ...]

The same tree twice with two environments compares two settings of one checkout, e.g.
the AVX2 build against the AVX-512 one on an AVX-512 CPU:

    python benchmarks/compare_trees.py . . --old-env MINICNN_VECTOR_UNIT=avx2

For checking that a change which should not move speed (a reorganisation, renames)
did not. Starts one persistent worker process per tree (PYTHONPATH = that tree, so
each imports its own minicnn), builds the same network with the same seed in both,
warms both up, then times single steps alternately, old and new (the one going first
swaps every repetition), so both see the same machine load and clock. Each worker
applies the process settings its tree applies for training (``tune_process()`` where
it exists; older trees applied them at import). Prints, per configuration, the median
step time of each tree, the ratio new / old of the medians and the range of the
per-repetition ratios: a ratio of 1.00 within that range is "the same speed".

train = forward + softmax cross-entropy + backward + an SGD step (minicnn.optim.SGD, lr 1e-3);
infer = ``model.predict(x, batch_size=N)``. Random images, float32, 2 threads.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = r"""
import json, sys, time
import numpy as np
import minicnn
if hasattr(minicnn, "tune_process"):
    minicnn.tune_process()
import os
# Choose by the files of THIS tree: an editable install of another checkout can answer an
# import that this tree lacks (minicnn.zoo), which would mix two versions in one process.
if os.path.isdir(os.path.join(os.path.dirname(minicnn.__file__), "zoo")):
    from minicnn.zoo import airbench, simple
    from minicnn.nn import softmax_cross_entropy
else:                                                 # the layout before minicnn/zoo
    from minicnn.models import airbench, simple
    from minicnn.losses import softmax_cross_entropy
try:
    from minicnn.optim import SGD
except ImportError:                                   # a tree from before minicnn.optim
    SGD = None
here = os.path.dirname(minicnn.__file__)
foreign = sorted(m.__file__ for m in list(sys.modules.values())
                 if m.__name__.startswith("minicnn") and getattr(m, "__file__", None)
                 and not m.__file__.startswith(here))
if foreign:
    sys.exit(f"compare_trees: modules from another checkout were loaded: {foreign}")
print(json.dumps({"ready": minicnn.__file__}), flush=True)
model = step = None
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "setup":
        model = simple(rng=0) if cmd["net"] == "simple" else airbench(rng=0)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((cmd["batch"], 32, 32, 3)).astype(np.float32)   # (N, H, W, C)
        labels = rng.integers(0, 10, cmd["batch"])
        if cmd["mode"] == "train":
            optimizer = SGD(model.named_parameters(), lr=1e-3) if SGD else None

            def step():
                loss, dlogits = softmax_cross_entropy(model.forward(x, training=True), labels)
                model.backward(dlogits)
                if optimizer is not None:
                    optimizer.step()
                else:
                    for _, p, g in model.named_parameters():
                        p -= 1e-3 * g
        else:
            def step():
                model.predict(x, batch_size=len(x))
        for _ in range(2):
            step()
        print(json.dumps({"ok": True}), flush=True)
    elif cmd["op"] == "time":
        t = time.perf_counter()
        step()
        print(json.dumps({"seconds": time.perf_counter() - t}), flush=True)
"""


class Worker:
    def __init__(self, tree, threads, extra_env=()):
        env = dict(os.environ, PYTHONPATH=os.path.abspath(tree), NUMBA_NUM_THREADS=str(threads),
                   OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
        env.update(extra_env)
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env,
                                     cwd=os.path.abspath(tree))
        self.where = self.read()["ready"]

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("compare_trees: a worker died (see its error above)")
        return json.loads(line)

    def ask(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old_tree")
    ap.add_argument("new_tree")
    ap.add_argument("--nets", nargs="+", default=["simple", "airbench"], choices=["simple", "airbench"])
    ap.add_argument("--batch", nargs="+", type=int, default=[128, 1024])
    ap.add_argument("--modes", nargs="+", default=["train", "infer"], choices=["train", "infer"])
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--old-env", nargs="+", default=[], metavar="KEY=VALUE",
                    help="environment variables set for the old tree's worker only")
    ap.add_argument("--new-env", nargs="+", default=[], metavar="KEY=VALUE",
                    help="environment variables set for the new tree's worker only")
    args = ap.parse_args(argv)
    for tree in (args.old_tree, args.new_tree):
        if not os.path.isdir(os.path.join(tree, "minicnn")):
            ap.error(f"{tree}: expected a source tree with a minicnn/ folder")
    envs = {}
    for side in ("old", "new"):
        pairs = getattr(args, f"{side}_env")
        bad = [p for p in pairs if "=" not in p or not p.split("=", 1)[0]]
        if bad:
            ap.error(f"--{side}-env: expected KEY=VALUE, got {bad[0]!r}")
        envs[side] = dict(p.split("=", 1) for p in pairs)
    workers = {"old": Worker(args.old_tree, args.threads, envs["old"]),
               "new": Worker(args.new_tree, args.threads, envs["new"])}
    for side in ("old", "new"):
        extra = " ".join(f"{k}={v}" for k, v in envs[side].items())
        print(f"# {side}: {workers[side].where}" + (f" with {extra}" if extra else ""))
    print(f"# {args.reps} alternating repetitions after 2 warm-up steps each; {args.threads} threads")
    print(f"{'net':9s} {'batch':>5s} {'mode':5s} {'old ms':>8s} {'new ms':>8s} {'new/old':>8s} "
          f"{'per-rep range':>15s}")
    try:
        for net in args.nets:
            for batch in args.batch:
                for mode in args.modes:
                    for w in workers.values():
                        w.ask(op="setup", net=net, batch=batch, mode=mode)
                    times = {"old": [], "new": []}
                    for rep in range(args.reps):
                        order = ("old", "new") if rep % 2 == 0 else ("new", "old")
                        for name in order:
                            times[name].append(workers[name].ask(op="time")["seconds"])
                    old, new = statistics.median(times["old"]), statistics.median(times["new"])
                    per_rep = sorted(n / o for n, o in zip(times["new"], times["old"]))
                    print(f"{net:9s} {batch:5d} {mode:5s} {old * 1e3:8.1f} {new * 1e3:8.1f} "
                          f"{new / old:8.3f} {per_rep[0]:7.3f}-{per_rep[-1]:.3f}", flush=True)
    finally:
        for w in workers.values():
            w.close()


if __name__ == "__main__":
    main()
