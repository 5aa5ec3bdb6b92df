"""Images per second of the two 94% recipes' training steps, alternated in one process.

    python benchmarks/bench_recipes.py [--reps 4] [--sgd-batch 1024] [--muon-batch 2000]

fast94_sgd: airbench94, batch 1024, Nesterov SGD + lookahead (zoo.airbench_optimizer).
fast94:     airbench94, batch 2000, Muon for the conv filters + SGD for the rest
            (zoo.airbench_muon_optimizer), no lookahead; its steps in epochs 1-3, and in
            epochs 4-8 ("fast94 frozen bias"), where the whitening bias no longer trains
            and the backward pass stops at the first conv (zoo.freeze_whiten_bias). The
            last row weighs them 3 : 5, as a run does.

One step = forward + label-smoothed cross-entropy + backward + optimizer update (+ the
lookahead update, every step here: an upper bound on its cost). Random images and
labels; one untimed step each, then --reps steps of each, alternated; medians. Prints
images per second and the optimizer's share of the step. With equal rates per image,
the recipe with fewer epochs reaches 94% sooner (docs/results.md).
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minicnn  # noqa: E402
from minicnn.nn import softmax_cross_entropy  # noqa: E402
from minicnn.zoo import (airbench, airbench_lookahead, airbench_muon_optimizer,  # noqa: E402
                         airbench_optimizer, freeze_whiten_bias)

FREEZE_EPOCH = 3        # fast94 trains the whitening bias in epochs 1-3 of 8


class HookTarget:
    """What an epoch hook reads of a Trainer: its model and optimizer."""

    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer


def make_recipe(name, batch, rng):
    """(model, optimizer, lookahead or None, images, labels) for one recipe."""
    model = airbench((64, 256, 256), rng=0)
    if name == "fast94_sgd":
        optimizer = airbench_optimizer(model, batch, bias_scaler=64.0)
        lookahead, _ = airbench_lookahead(model, total_steps=480)
    else:
        optimizer, lookahead = airbench_muon_optimizer(model, batch), None
        if name == "fast94 frozen bias":
            freeze_whiten_bias(FREEZE_EPOCH)(HookTarget(model, optimizer), FREEZE_EPOCH)
    x = rng.standard_normal((batch, 32, 32, 3)).astype(np.float32)
    return model, optimizer, lookahead, x, rng.integers(0, 10, batch)


def timed_step(model, optimizer, lookahead, x, y):
    """(seconds per image of the whole step, seconds of the optimizer + lookahead)."""
    start = time.perf_counter()
    logits = model.forward(x, training=True)
    _, dlogits = softmax_cross_entropy(logits, y, 0.2)
    model.backward(dlogits)
    update = time.perf_counter()
    optimizer.step()
    if lookahead is not None:
        lookahead.update()
    end = time.perf_counter()
    return (end - start) / len(y), end - update


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=4, help="timed steps per recipe (default 4)")
    ap.add_argument("--sgd-batch", type=int, default=1024)
    ap.add_argument("--muon-batch", type=int, default=2000)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    recipes = {"fast94_sgd": make_recipe("fast94_sgd", args.sgd_batch, rng),
               "fast94": make_recipe("fast94", args.muon_batch, rng),
               "fast94 frozen bias": make_recipe("fast94 frozen bias", args.muon_batch, rng)}
    for recipe in recipes.values():
        timed_step(*recipe)                                  # warm-up: compile, allocate
    per_image = {name: [] for name in recipes}
    update = {name: [] for name in recipes}
    for _ in range(args.reps):
        for name, recipe in recipes.items():
            seconds, update_seconds = timed_step(*recipe)
            per_image[name].append(seconds)
            update[name].append(update_seconds)
    print("| recipe | batch | img/s (median) | optimizer s per step | steps |")
    print("|---|---|---|---|---|")
    for name, recipe in recipes.items():
        print(f"| {name} | {len(recipe[4])} | {1.0 / np.median(per_image[name]):.0f} | "
              f"{np.median(update[name]):.3f} | {args.reps} |")
    rates = {name: 1.0 / float(np.median(v)) for name, v in per_image.items()}
    epochs = 8
    seconds_per_image = (FREEZE_EPOCH / rates["fast94"]
                         + (epochs - FREEZE_EPOCH) / rates["fast94 frozen bias"]) / epochs
    rates["fast94 over its 8 epochs"] = 1.0 / seconds_per_image
    print(f"| fast94 over its {epochs} epochs (3 : 5) | {args.muon_batch} | "
          f"{rates['fast94 over its 8 epochs']:.0f} | | |")
    return rates


if __name__ == "__main__":
    minicnn.tune_process()               # the process-wide settings training uses
    main()
