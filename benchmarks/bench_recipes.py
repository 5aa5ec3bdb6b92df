"""Images per second of the two 94% recipes' training steps, alternated in one process.

    python benchmarks/bench_recipes.py [--reps 4] [--sgd-batch 1024] [--muon-batch 2000]
                                       [--rule NAME=VALUE]

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

--rule NAME=VALUE also times every step with one threshold of minicnn/fast/rules.py
changed (e.g. MIN_WINOGRAD_CHANNEL_USE=1.0: only whole 32-channel Winograd tiles),
alternated step by step with the rule as it is, in the same process: the speed-up of
the rule as it is over the changed one, free of the drift between separate runs.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minicnn  # noqa: E402
from minicnn.fast import rules  # noqa: E402
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


def parse_rule(text):
    """'NAME=VALUE' -> (NAME, VALUE as the type of the threshold it replaces)."""
    name, sep, value = text.partition("=")
    current = getattr(rules, name, None)
    if not sep or not name.isupper() or not isinstance(current, (int, float)):
        known = ", ".join(n for n in dir(rules) if n.isupper() and isinstance(getattr(rules, n), (int, float)))
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with NAME a threshold of "
                                         f"minicnn/fast/rules.py ({known}); got {text!r}")
    try:
        return name, type(current)(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name} is a {type(current).__name__}; got {value!r}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=4, help="timed steps per recipe (default 4)")
    ap.add_argument("--sgd-batch", type=int, default=1024)
    ap.add_argument("--muon-batch", type=int, default=2000)
    ap.add_argument("--rule", type=parse_rule, metavar="NAME=VALUE",
                    help="also time each step with this rules.py threshold changed, alternated")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    recipes = {"fast94_sgd": make_recipe("fast94_sgd", args.sgd_batch, rng),
               "fast94": make_recipe("fast94", args.muon_batch, rng),
               "fast94 frozen bias": make_recipe("fast94 frozen bias", args.muon_batch, rng)}
    settings = [None] + ([args.rule] if args.rule else [])      # None: the rules as they are
    as_is = {name: getattr(rules, name) for name, _ in settings[1:]}

    def step(recipe, setting):
        if setting is not None:
            setattr(rules, *setting)
        try:
            return timed_step(*recipe)
        finally:
            for name, value in as_is.items():
                setattr(rules, name, value)
    for recipe in recipes.values():
        for setting in settings:
            step(recipe, setting)                            # warm-up: compile, allocate
    per_image = {(name, i): [] for name in recipes for i in range(len(settings))}
    update = {name: [] for name in recipes}
    for _ in range(args.reps):
        for name, recipe in recipes.items():
            for i, setting in enumerate(settings):
                seconds, update_seconds = step(recipe, setting)
                per_image[name, i].append(seconds)
                if i == 0:
                    update[name].append(update_seconds)
    rates = {key: 1.0 / float(np.median(v)) for key, v in per_image.items()}
    epochs = 8
    for i in range(len(settings)):
        seconds_per_image = (FREEZE_EPOCH / rates["fast94", i]
                             + (epochs - FREEZE_EPOCH) / rates["fast94 frozen bias", i]) / epochs
        rates["fast94 over its 8 epochs", i] = 1.0 / seconds_per_image
    changed = f" | img/s with {args.rule[0]}={args.rule[1]} | speed-up" if args.rule else ""
    print(f"| recipe | batch | img/s (median){changed} | optimizer s per step | steps |")
    print("|---|---|---|---|---|" + "---|---|" * bool(args.rule))
    for name in list(recipes) + ["fast94 over its 8 epochs"]:
        batch = args.sgd_batch if name == "fast94_sgd" else args.muon_batch
        label = "fast94 over its 8 epochs (3 : 5)" if name not in recipes else name
        other = (f" | {rates[name, 1]:.0f} | {rates[name, 0] / rates[name, 1]:.3f}" if args.rule else "")
        tail = f"{np.median(update[name]):.3f} | {args.reps}" if name in recipes else " |"
        print(f"| {label} | {batch} | {rates[name, 0]:.0f}{other} | {tail} |")
    return {name: rate for (name, i), rate in rates.items() if i == 0}


if __name__ == "__main__":
    minicnn.tune_process()               # the process-wide settings training uses
    main()
