"""Markdown table of finished training runs, read from their metrics.json files.

    python benchmarks/summarize_runs.py runs/fast94-seed0 runs/fast94-seed1 runs/fast94-seed2
    python benchmarks/summarize_runs.py runs/*/ --sort wall

One row per run (preset, epochs, seed, wall and training time as measured by
examples/train_cifar10.py, test accuracy on the exact subset 0-999 and on all
10,000 images, validation accuracy if the run held out a split), then, for every
preset + epochs with more than one seed, a row with the mean and the sample standard
deviation over its seeds. The figures are copied, never recomputed.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path


def load(run):
    path = Path(run) / "metrics.json"
    if not path.exists():
        sys.exit(f"{run}: no metrics.json (expected a finished run of examples/train_cifar10.py)")
    m = json.loads(path.read_text())
    return dict(run=Path(run).name, preset=m["preset"], epochs=m["epochs"], seed=m["seed"],
                wall=m["total_seconds"], train=m["train_seconds"],
                exact=100 * m["test_accuracy_exact_subset"], test=100 * m["test_accuracy"],
                val=None if m.get("val_accuracy") is None else 100 * m["val_accuracy"],
                date=m.get("date", "?"))


def pct(v):
    return "-" if v is None else f"{v:.2f}"


def table(rows):
    lines = ["| run | preset | epochs | seed | wall min | train s | exact 0-999 % | all 10k % | val % | finished |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['preset']} | {r['epochs']} | {r['seed']} | {r['wall'] / 60:.1f} | "
                     f"{r['train']:.0f} | {pct(r['exact'])} | {pct(r['test'])} | {pct(r['val'])} | {r['date']} |")
    groups = {}
    for r in rows:
        groups.setdefault((r["preset"], r["epochs"]), []).append(r)
    for (preset, epochs), g in groups.items():
        if len(g) < 2:
            continue

        def ms(key, scale=1.0, digits=2):
            vals = [r[key] * scale for r in g if r[key] is not None]
            if not vals:
                return "-"
            return f"{statistics.mean(vals):.{digits}f} ± {statistics.stdev(vals):.{digits}f}"
        lines.append(f"| **mean ± sd of {len(g)} seeds** | {preset} | {epochs} | - | "
                     f"{ms('wall', 1 / 60, 1)} | {ms('train', 1, 0)} | **{ms('exact')}** | "
                     f"{ms('test')} | {ms('val')} | |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run directories holding metrics.json")
    p.add_argument("--sort", choices=["given", "wall"], default="given")
    args = p.parse_args(argv)
    rows = [load(r) for r in args.runs]
    if args.sort == "wall":
        rows.sort(key=lambda r: r["wall"])
    print(table(rows))


if __name__ == "__main__":
    main()
