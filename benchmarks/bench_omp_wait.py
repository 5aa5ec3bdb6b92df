"""Training-step time with idle OpenMP threads spinning vs sleeping (A/B, fresh processes).

    python benchmarks/bench_omp_wait.py [--nets airbench simple] [--batch 128] [--rounds 3]

minicnn.tune_process() sets OMP_WAIT_POLICY=PASSIVE (minicnn/fast/process.py). "spin" runs the
same step with GOMP_SPINCOUNT=300000, libgomp's default when no policy is set. The two
alternate, one fresh process per measurement, --rounds times; each process prints the
median of 5 steps after 2 warm-up steps (forward + loss + backward + SGD update, float32).
"""
import argparse
import os
import subprocess
import sys

STEP = r"""
import sys, time, numpy as np
import minicnn
minicnn.tune_process()
from minicnn.nn import softmax_cross_entropy
from minicnn.zoo import airbench, simple
net, N = sys.argv[1], int(sys.argv[2])
model = simple() if net == "simple" else airbench()
rng = np.random.default_rng(0)
x = rng.standard_normal((N, 32, 32, 3)).astype(np.float32)    # (N, H, W, C)
y = rng.integers(0, 10, N)
times = []
for rep in range(7):
    t = time.perf_counter()
    loss, d = softmax_cross_entropy(model.forward(x, True), y)
    model.backward(d)
    for _, p, g in model.named_parameters():
        p -= 1e-3 * g
    times.append(time.perf_counter() - t)
print(1e3 * float(np.median(times[2:])))
"""
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def step_ms(net, batch, spin):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    if spin:
        env["GOMP_SPINCOUNT"] = "300000"
    out = subprocess.run([sys.executable, "-c", STEP, net, str(batch)], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", nargs="+", default=["airbench", "simple"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    for net in args.nets:
        res = {"spin": [], "passive": []}
        for _ in range(args.rounds):
            for mode in ("spin", "passive"):
                res[mode].append(step_ms(net, args.batch, mode == "spin"))
        s, q = sorted(res["spin"])[len(res["spin"]) // 2], sorted(res["passive"])[len(res["passive"]) // 2]
        print(f"{net} batch {args.batch}: spin {s:.1f} ms, passive {q:.1f} ms (per round: "
              f"spin {[round(v) for v in res['spin']]}, passive {[round(v) for v in res['passive']]}) "
              f"-> passive is {s / q:.2f}x faster")


if __name__ == "__main__":
    main()
