"""Memory stays flat over a run: peak RSS of each epoch of a 5-epoch airbench94 run.

    python benchmarks/bench_memory_flat.py [--epochs 5] [--images 10240]

Trains airbench94 (batch 1024, the fast94_sgd optimizer, lookahead, checkpoints every epoch
and every 5 steps, validation on 2,000 images each epoch) on random images, and reads the
process's peak resident set (VmHWM) at the end of each epoch, resetting it after
(writing 5 to /proc/self/clear_refs, Linux). Growth = (peak of the worst later epoch -
peak of epoch 1) / peak of epoch 1; the promise is < 2%. Writes
evidence/benchmarks/memory_flat.json.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_common import RESULTS_DIR, cpu_model, write_json  # noqa: E402


def peak_rss_mib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def reset_peak():
    Path("/proc/self/clear_refs").write_text("5")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--images", type=int, default=10240)
    args = ap.parse_args()
    import minicnn
    from minicnn.data import BatchLoader, CropFlip
    from minicnn.train import Trainer
    from minicnn.zoo import (airbench, airbench_lookahead, airbench_optimizer,
                             airbench_schedule)
    minicnn.tune_process()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.images, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, args.images)
    model = airbench((64, 256, 256), rng=rng, whiten_images=x[:2000])
    loader = BatchLoader(x, y, 1024, seed=0, augment=CropFlip(len(x), pad=2, seed=0),
                         drop_last=True)
    total = args.epochs * len(loader)
    lookahead, decay = airbench_lookahead(model, total)
    peaks = []

    def measure(trainer, epoch):             # runs at the start of each epoch
        if epoch > 0:
            peaks.append(peak_rss_mib())
            reset_peak()
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model, airbench_optimizer(model, 1024), loader,
                          airbench_schedule(total), total, val=(x[:2000], y[:2000]),
                          label_smoothing=0.2, lookahead=lookahead, lookahead_decay=decay,
                          epoch_hooks=[measure], run_dir=run_dir, progress=False,
                          checkpoint_every=5)
        reset_peak()
        trainer.fit(args.epochs, log=lambda line: print(line, flush=True))
        peaks.append(peak_rss_mib())
    growth = (max(peaks[1:]) - peaks[0]) / peaks[0]
    result = {"cpu": cpu_model(), "date": time.strftime("%Y-%m-%d %H:%M"),
              "command": "python " + " ".join(sys.argv), "epochs": args.epochs,
              "images": args.images, "peak_rss_mib_per_epoch": peaks,
              "growth_after_first_epoch": growth, "promise": "< 2%"}
    write_json(RESULTS_DIR / "memory_flat.json", result)
    print("peak RSS per epoch (MiB): " + ", ".join(f"{p:.0f}" for p in peaks))
    print(f"growth after the first epoch: {100 * growth:+.2f}% (promise: < 2%); "
          f"{result['cpu']}; wrote {RESULTS_DIR / 'memory_flat.json'}")
    return 0 if growth < 0.02 else 1


if __name__ == "__main__":
    sys.exit(main())
