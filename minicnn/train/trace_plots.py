"""Pictures of the traces recorded during training (traces.py), as PNG files.

    plot_gradient_norms(traces, path)    ||dL/dW|| per layer over the steps (log scale)
    plot_update_ratios(traces, path)     log10(std(update) / std(W)) per layer, with -3
    plot_histograms(run_dir, path, kind="activation" | "gradient", step=None)

``traces`` is what ``load_traces(run_dir)`` or ``TraceRecorder.traces()`` returns, or
a run directory. Lines are coloured by depth (dark: first layers, yellow: last), so
a gradient that shrinks or grows layer after layer shows as an ordered fan of lines.
Drawn with matplotlib's object API and the Agg canvas, as plots.py does.
"""
import os

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from .plots import _save
from .traces import load_traces

HEALTHY_UPDATE_RATIO = -3.0


def _as_traces(traces):
    """A traces dict, loading it first when given a run directory."""
    if isinstance(traces, (str, os.PathLike)):
        return load_traces(traces)
    if not isinstance(traces, dict) or "params" not in traces or "layers" not in traces:
        raise TypeError(f"expected the traces of load_traces(run_dir) or a run directory, "
                        f"got {type(traces).__name__}")
    return traces


def _weights(traces):
    """The params to draw: the weights (role "weight") when there are any, else all."""
    params = traces["params"]
    weights = [p for p in params if p["role"] == "weight"]
    chosen = weights or params
    if not chosen or len(traces["steps"]) == 0:
        raise ValueError("the traces hold no trainable parameters or no steps to plot")
    return chosen


def _colors(n):
    return [colormaps["viridis"](v) for v in np.linspace(0.0, 0.9, max(n, 1))]


def _label(param, traces):
    layer = traces["layers"][param["layer"]]["layer"] if param["layer"] < len(traces["layers"]) else ""
    return f"{param['name']} {layer.split('(')[0]}"


def plot_gradient_norms(traces, path):
    """Left: ||dL/dW||_2 of each layer's weights over the traced steps (log scale).
    Right: the same norms against depth at the first, middle and last traced step:
    a profile that falls towards the input shows vanishing gradients, one that rises
    exploding ones."""
    traces = _as_traces(traces)
    params, steps = _weights(traces), traces["steps"]
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    over_steps, over_depth = fig.subplots(1, 2, width_ratios=(3, 2))
    for param, color in zip(params, _colors(len(params))):
        over_steps.plot(steps, param["grad_norm"], "o-", markersize=2, color=color,
                        label=_label(param, traces))
    over_steps.set_yscale("log")
    over_steps.set_xlabel("step")
    over_steps.set_ylabel("||dL/dW||  (L2 norm)")
    over_steps.set_title("gradient norm per layer")
    over_steps.grid(alpha=0.3, which="both")
    over_steps.legend(fontsize=7, ncol=2 if len(params) > 8 else 1)

    picks = sorted({0, len(steps) // 2, len(steps) - 1})
    depth = np.arange(len(params))
    for j, color in zip(picks, ("tab:blue", "tab:orange", "tab:red")):
        over_depth.plot(depth, [p["grad_norm"][j] for p in params], "o-", color=color,
                        label=f"step {steps[j]}")
    over_depth.set_yscale("log")
    over_depth.set_xticks(depth, [p["name"] for p in params], rotation=60, fontsize=7)
    over_depth.set_xlabel("parameter (input side left)")
    over_depth.set_title("gradient norm against depth")
    over_depth.grid(alpha=0.3, which="both")
    over_depth.legend(fontsize=8)
    return _save(fig, path)


def plot_update_ratios(traces, path):
    """log10(std(update) / std(W)) of each layer's weights over the steps, with the
    -3 guide line: a step should move the weights by about 1/1000 of their spread."""
    traces = _as_traces(traces)
    params, steps = _weights(traces), traces["steps"]
    fig = Figure(figsize=(10, 4.5), layout="constrained")
    ax = fig.subplots()
    for param, color in zip(params, _colors(len(params))):
        ax.plot(steps, param["update_ratio"], "o-", markersize=2, color=color,
                label=_label(param, traces))
    ax.axhline(HEALTHY_UPDATE_RATIO, color="black", linestyle="--", linewidth=1,
               label="-3: update = W spread / 1000")
    ax.set_xlabel("step")
    ax.set_ylabel("log10( std(update) / std(W) )")
    ax.set_title("update:data ratio per layer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(params) > 8 else 1, loc="best")
    return _save(fig, path)


def plot_histograms(run_dir_or_hist, path, kind="activation", step=None, layers=None):
    """One panel per layer: the histogram of its outputs (kind="activation") or of
    dL/d(output) (kind="gradient") at ``step`` (None: the last histogram step).

    run_dir_or_hist: a run directory, the traces of load_traces, or their
        "histograms" entry.
    layers: layer indices to draw (None: the activation layers, or every layer when
        the model has none). Each panel's title gives the layer, the mean, the std
        and, for activations, the saturated share (traces.py: the rules).
    """
    if kind not in ("activation", "gradient"):
        raise ValueError(f"plot_histograms: kind must be 'activation' or 'gradient', got {kind!r}")
    source = run_dir_or_hist
    if isinstance(source, (str, os.PathLike)):
        source = load_traces(source)
    traces = source if isinstance(source, dict) and "layers" in source else None
    hist = traces["histograms"] if traces is not None else source
    if not isinstance(hist, dict) or kind not in hist or "steps" not in hist:
        raise TypeError(f"plot_histograms: expected a run directory, traces or their "
                        f"'histograms', got {type(run_dir_or_hist).__name__}")
    steps = [int(s) for s in hist["steps"]]
    if not steps:
        raise ValueError("plot_histograms: the traces hold no histograms (no histogram step "
                         "was reached)")
    step = steps[-1] if step is None else int(step)
    if step not in steps:
        raise ValueError(f"plot_histograms: no histograms at step {step}; they were taken at "
                         f"steps {steps}")
    j = steps.index(step)
    data = {key: value[j] for key, value in hist[kind].items()}
    L = data["counts"].shape[0]
    if layers is None:
        layers = [e["index"] for e in traces["layers"] if e["kind"] == "activation"] if traces else []
        layers = layers or list(range(L))
    layers = [int(i) for i in layers]
    bad = [i for i in layers if not 0 <= i < L]
    if bad or not layers:
        raise ValueError(f"plot_histograms: layers must be indices in 0..{L - 1}, got {layers}")

    cols = min(4, len(layers))
    rows = -(-len(layers) // cols)
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes[len(layers):]:
        ax.axis("off")
    for ax, i, color in zip(axes, layers, _colors(len(layers))):
        edges, counts = data["edges"][i], data["counts"][i]
        total = counts.sum() + data["below"][i] + data["above"][i]
        if total == 0 or not np.all(np.isfinite(edges)):
            ax.set_title(f"{i}: no data", fontsize=8)
            continue
        ax.stairs(counts / total, edges, fill=True, color=color, alpha=0.8)
        name = traces["layers"][i]["layer"].split("(")[0] if traces else f"layer {i}"
        title = f"{i} {name}\nmean {data['mean'][i]:.3g}, std {data['std'][i]:.3g}"
        if kind == "activation" and traces is not None and traces["layers"][i]["kind"] == "activation":
            at = list(traces["steps"]).index(step) if step in list(traces["steps"]) else None
            if at is not None and np.isfinite(traces["layers"][i]["saturated"][at]):
                title += (f"\nsaturated ({traces['layers'][i]['rule']}) "
                          f"{100 * traces['layers'][i]['saturated'][at]:.1f}%")
        outside = data["below"][i] + data["above"][i]
        if outside:
            title += f"\n{100 * outside / total:.2f}% beyond mean ± 4 std"
        ax.set_title(title, fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
    what = "activations (layer outputs)" if kind == "activation" else "gradients dL/d(layer output)"
    fig.suptitle(f"{what} at step {step}: share of values per bin", fontsize=10)
    return _save(fig, path)
