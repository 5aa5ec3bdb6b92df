"""What each airbench trick adds: train the same short run with one trick switched off.

    python benchmarks/ablation.py                       # 3 epochs of the default preset, ~30 min
    python benchmarks/ablation.py --epochs 2 --only baseline no-lookahead

Each variant is one run of examples/train_cifar10.py (a fresh process, so each wall time
is the example's own figure) with one flag added to the baseline. Test-time augmentation
needs no retraining: the baseline's saved model is evaluated again with --tta 0 and 1.
Figures: accuracy on the 5,000-image validation split (lossless, held out of training),
on the exact test subset 0-999 and on all 10,000 test images, train and wall seconds.
Writes evidence/benchmarks/ablation.json and ablation.md (runs in runs/ablation/<variant>-seed<s>/).
One run per variant: differences below ~1 point (the validation split's standard error
is ~0.5 point) are within seed noise; --seeds 0 1 repeats every variant.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from minicnn.data import load_cifar10, standardize, train_val_split  # noqa: E402
from minicnn.train import predict_logits  # noqa: E402
from minicnn.predict import load_run  # noqa: E402

VARIANTS = {                                   # name -> flags added to the baseline
    "baseline": [],
    "no-whiten": ["--no-whiten"],              # trainable first conv, random init
    "no-dirac": ["--no-dirac"],                # plain He init of the 3x3 convs
    "no-lookahead": ["--no-lookahead"],
    "no-label-smoothing": ["--label-smoothing", "0"],
    "random-flip": ["--flip", "random"],       # instead of the alternating flip
    "bn-lr-x1": ["--bn-lr-scale", "1"],        # BatchNorm shifts at the base lr, not 64x
}


def run_variant(name, flags, args, seed):
    out = Path(args.runs) / f"{name}-seed{seed}"
    cmd = [sys.executable, str(ROOT / "examples" / "train_cifar10.py"), "--preset", args.preset,
           "--epochs", str(args.epochs), "--seed", str(seed), "--out", str(out), "--overwrite",
           "--no-progress"] + args.extra.split() + flags
    print(f"[{time.strftime('%H:%M:%S')}] {name} seed {seed}: {' '.join(flags) or '(all tricks)'}",
          flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    m = json.loads((out / "metrics.json").read_text())
    return dict(variant=name, seed=seed, flags=" ".join(flags), tta=m["tta"],
                val=m["val_accuracy"], exact=m["test_accuracy_exact_subset"],
                test=m["test_accuracy"], train_s=m["train_seconds"], wall_s=m["total_seconds"])


def tta_rows(base, run):
    """Re-evaluate the baseline's model (saved in run) with lower TTA levels (no training)."""
    model, config = load_run(run)
    data = load_cifar10(config["data_dir"])
    _, _, x_val, y_val = train_val_split(data["x_train"], data["y_train"], config["val_size"],
                                         seed=config["seed"])
    mean, std = np.asarray(config["mean"], np.float32), np.asarray(config["std"], np.float32)
    x_val, x_test = standardize(x_val, mean, std), standardize(data["x_test"], mean, std)
    y_test = data["y_test"]
    rows = []
    for tta in (0, 1):
        t = time.perf_counter()
        val = float((predict_logits(model, x_val, tta=tta).argmax(1) == y_val).mean())
        pred = predict_logits(model, x_test, tta=tta).argmax(1)
        rows.append(dict(base, variant=f"tta-{tta}", flags=f"--tta {tta}", tta=tta, val=val,
                         exact=float((pred[:1000] == y_test[:1000]).mean()),
                         test=float((pred == y_test).mean()),
                         eval_s=time.perf_counter() - t))
    return rows


def markdown(rows, args, started):
    base = {r["seed"]: r for r in rows if r["variant"] == "baseline"}
    lines = [f"Ablation, `{args.command}`, {started}, {platform.node()} "
             f"({os.cpu_count()} cores). Preset `{args.preset}` for {args.epochs} epochs; "
             "one trick off per row; delta = change in validation accuracy vs the baseline "
             "of the same seed.", "",
             "| variant | flags | seed | val acc | delta val | exact 0-999 | all 10k | train s | wall s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        d = r["val"] - base[r["seed"]]["val"] if r["seed"] in base else float("nan")
        lines.append(f"| {r['variant']} | `{r['flags'] or '-'}` | {r['seed']} | {100 * r['val']:.2f} | "
                     f"{100 * d:+.2f} | {100 * r['exact']:.1f} | {100 * r['test']:.2f} | "
                     f"{r['train_s']:.0f} | {r['wall_s']:.0f} |")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="default")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--only", nargs="+", choices=sorted(VARIANTS), help="run just these variants")
    p.add_argument("--extra", default="", help="flags for every run, e.g. "
                   "'--limit-train 600 --val-size 100 --widths 4 8 8' (smoke tests)")
    p.add_argument("--runs", default=str(ROOT / "runs" / "ablation"), help="run directories")
    p.add_argument("--out", default=str(ROOT / "evidence" / "benchmarks" / "ablation"))
    args = p.parse_args()
    args.command = "python benchmarks/ablation.py " + " ".join(sys.argv[1:])
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = []
    for seed in args.seeds:
        for name in args.only or VARIANTS:
            rows.append(run_variant(name, VARIANTS[name], args, seed))
            if name == "baseline":
                rows += tta_rows(rows[-1], Path(args.runs) / f"baseline-seed{seed}")
            Path(args.out + ".json").write_text(json.dumps(rows, indent=1))   # after every run
            Path(args.out + ".md").write_text(markdown(rows, args, started))
    print(markdown(rows, args, started))


if __name__ == "__main__":
    main()
