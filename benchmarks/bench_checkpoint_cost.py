"""What a checkpoint costs a fast94_sgd run: the time of one save against the steps between two.

    python benchmarks/bench_checkpoint_cost.py [--reps 5]

Builds the fast94_sgd trainer (airbench94, batch 1024, SGD + lookahead) on random images,
times ``--reps`` training steps and ``--reps`` saves of its checkpoint (write, fsync,
rename) alternately, and reports the medians and the share of the run spent saving with
the example's default (every 50 steps, and at each of the 48-step epochs' ends).
Writes evidence/benchmarks/checkpoint_cost.json.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_common import RESULTS_DIR, cpu_model, write_json  # noqa: E402

STEPS_PER_EPOCH = 48          # fast94_sgd: 50,000 images // 1,024
DEFAULT_EVERY = 50


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    import minicnn
    from minicnn.data import BatchLoader
    from minicnn.nn.loss import softmax_cross_entropy
    from minicnn.train import Trainer
    from minicnn.zoo import airbench, airbench_lookahead, airbench_optimizer, airbench_schedule
    minicnn.tune_process()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1024 * (args.reps + 1), 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, len(x))
    model = airbench((64, 256, 256), rng=rng, whiten_images=x[:2000])
    loader = BatchLoader(x, y, 1024, seed=0, drop_last=True)
    lookahead, decay = airbench_lookahead(model, 1000)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model, airbench_optimizer(model, 1024), loader,
                          airbench_schedule(1000), 1000, label_smoothing=0.2,
                          lookahead=lookahead, lookahead_decay=decay, run_dir=run_dir,
                          progress=False)
        steps, saves = [], []
        batches = iter(loader)
        next(batches)                                          # warm-up step, untimed
        for xb, yb in batches:
            t0 = time.perf_counter()
            logits = model.forward(xb, training=True)
            loss, dlogits = softmax_cross_entropy(logits, yb, 0.2)
            model.backward(dlogits)
            trainer.optimizer.step()
            t1 = time.perf_counter()
            trainer.save()
            t2 = time.perf_counter()
            steps.append(t1 - t0)
            saves.append(t2 - t1)
        size = os.path.getsize(Path(run_dir) / "checkpoint.npz")
    step, save = median(steps), median(saves)
    saves_per_epoch = 1 + STEPS_PER_EPOCH / DEFAULT_EVERY          # epoch end + every 50 steps
    share = saves_per_epoch * save / (STEPS_PER_EPOCH * step + saves_per_epoch * save)
    result = {"cpu": cpu_model(), "date": time.strftime("%Y-%m-%d %H:%M"),
              "command": "python " + " ".join(sys.argv), "step_s": step, "save_s": save,
              "checkpoint_bytes": size, "steps": steps, "saves": saves,
              "share_of_run_with_default_every": share}
    write_json(RESULTS_DIR / "checkpoint_cost.json", result)
    print(f"fast94_sgd step {step:.3f} s, checkpoint save {save:.3f} s ({size / 1e6:.1f} MB); "
          f"with a save every {DEFAULT_EVERY} steps and at epoch ends: {100 * share:.2f}% of "
          f"the run (promise: < 5%); every step: {100 * save / (step + save):.1f}%; "
          f"{result['cpu']}")


if __name__ == "__main__":
    main()
