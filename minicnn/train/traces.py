"""Traces: what backprop does inside the network while it trains, recorded every K steps.

    recorder = TraceRecorder(model, every=50, histogram_steps=(0, 479))
    with recorder.record(step):        # a no-op unless step is a trace step
        forward, loss, backward, optimizer.step()
    recorder.save(run_dir);  traces = load_traces(run_dir, model)

On a trace step the recorder attaches one forward and one backward hook to the
Sequential (``model.forward_hooks``, ``model.backward_hooks``) and removes them when
the step ends; other steps run with no hook at all, so they cost nothing. Tracing
only reads arrays: the weights after a traced run are bit-identical to an untraced one.

Per layer i, from y_i (the layer's output) and dy_i = dL/dy_i (the gradient arriving
at that output), each over every element of the batch:

    mean, std            of y_i
    saturated            fraction of y_i's units in the layer's flat region (rules below)
    grad_mean, grad_std  of dy_i

Per trainable parameter p, named "i.key" as in ``model.named_parameters()``, with
g = dL/dp from this step's backward:

    grad_norm      ||g||_2 = sqrt(sum g^2)
    grad_std       std(g)
    update_ratio   log10( std(p_after - p_before) / std(p_before) )  across optimizer.step()
                   For plain SGD the update is -lr * g, so this is log10(lr * std(g) / std(p)).
                   Around -3 is healthy: a step moves a weight by about 1/1000 of the
                   weights' spread; far above learns too fast, far below too slowly.
                   NaN where undefined: std(p_before) = 0 (a shift initialised to zero,
                   a single number) or no update at all (lr 0, a frozen group).

Saturation rules (the slope f'(x) decides how much gradient a unit passes back):

    ReLU        y == 0    x <= 0, slope 0: the unit is dead for this input
    LeakyReLU   y < 0     x < 0, the leaky side: slope alpha
    GELU        x < -2    the flat left tail: |slope| < 0.09 and |y| < 0.05. x is the
                          layer's input, i.e. the previous layer's output (NaN when the
                          GELU is layer 0, whose input no hook sees)
    any other   y == 0    exact zeros (after a max-pool of ReLUs: all units dead)

Histograms, at ``histogram_steps`` only: per layer, the counts of y_i and of dy_i in
``HISTOGRAM_BINS`` equal bins spanning mean +- 4 std of that array at that step (the
edges are stored with the counts); values beyond the edges are counted in ``below`` /
``above`` (``histogram``).

What is measured where: the gradients after backward (optimizers never change g),
the update across ``optimizer.step()`` alone; a trainer's lookahead runs after the
traced block and is not part of the update.

Cost of a trace step: Sequential runs fused pairs as separate layers while a forward
hook is set (same numbers), every activation and output gradient is read once, chunk
by chunk (statistics and the saturation count; a GELU's input once more for its rule),
and the trainable parameters are copied once.
Statistics accumulate in float64 over chunks of ``CHUNK`` elements (``array_stats``):
temporaries of one chunk, never a copy of a whole activation. A histogram step reads
each array once more.

Files, in the run directory beside history.json (both written atomically):

traces.json
    {"format": "minicnn-traces", "version": 1,
     "architecture": [repr(layer), ...],        one string per layer of the model
     "every": K, "steps": [s, ...],             the traced steps (0-based step index)
     "layers": [{"index": i, "layer": repr, "kind": "activation" | "other",
                 "rule": "y == 0", "mean": [...], "std": [...], "saturated": [...],
                 "grad_mean": [...], "grad_std": [...]}, ...],
     "params": [{"name": "i.key", "layer": i, "role": "weight", "shape": [...],
                 "grad_norm": [...], "grad_std": [...], "update_ratio": [...]}, ...],
     "histograms": {"file": "trace_histograms.npz", "bins": B, "steps": [s, ...]}}
    Every series has one value per entry of "steps"; null where not finite.

trace_histograms.npz (no pickle), S histogram steps, L layers, B bins:
    steps               (S,)            int64   the histogram steps
    {kind}_edges        (S, L, B + 1)   float64 bin edges; kind = activation, gradient
    {kind}_counts       (S, L, B)       int64   values in each bin
    {kind}_below        (S, L)          int64   values below the first edge
    {kind}_above        (S, L)          int64   values above the last edge
    {kind}_mean, _std   (S, L)          float64 of the whole array
"""
import json
import math
import zipfile
import zlib
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

from ..checkpoint import read_npz, write_atomic, write_npz_atomic
from ..nn import GELU, LeakyReLU, ReLU

FORMAT = "minicnn-traces"
VERSION = 1
TRACES_FILE = "traces.json"
HISTOGRAMS_FILE = "trace_histograms.npz"
DEFAULT_TRACE_EVERY = 50         # benchmarks/bench_traces.py measures its cost
HISTOGRAM_BINS = 64
HISTOGRAM_SPAN = 4.0             # bin edges span mean +- 4 std
HISTOGRAM_KINDS = ("activation", "gradient")
CHUNK = 1 << 16                  # elements per chunk in array_stats (256 KB of float32)
GELU_FLAT_TAIL = -2.0
LAYER_SERIES = ("mean", "std", "saturated", "grad_mean", "grad_std")
PARAM_SERIES = ("grad_norm", "grad_std", "update_ratio")


class TraceFileError(ValueError):
    """A traces file that is damaged, half-written, foreign, or from another model."""


class MissingTraceFile(TraceFileError, FileNotFoundError):
    """No traces file where one was expected (the run was trained without tracing)."""


# -- saturation rules ---------------------------------------------------------------------
class SaturationRule:
    """Which units of a layer count as saturated: ``test(array)`` -> bool array, applied
    to the layer's output (reads="output") or to its input (reads="input")."""

    def __init__(self, text, reads, test, kind):
        self.text, self.reads, self.test, self.kind = text, reads, test, kind


def saturation_rule(layer):
    """The rule for ``layer`` (module docstring: ReLU, LeakyReLU, GELU, anything else)."""
    if isinstance(layer, ReLU):
        return SaturationRule("y == 0", "output", lambda y: y == 0, "activation")
    if isinstance(layer, LeakyReLU):
        return SaturationRule("y < 0", "output", lambda y: y < 0, "activation")
    if isinstance(layer, GELU):
        return SaturationRule(f"x < {GELU_FLAT_TAIL:g}", "input",
                              lambda x: x < GELU_FLAT_TAIL, "activation")
    return SaturationRule("y == 0", "output", lambda y: y == 0, "other")


# -- statistics of one array -----------------------------------------------------------------
def array_stats(a, saturated=None):
    """(mean, std, fraction) of all n elements of ``a``; fraction = share of elements
    where ``saturated(chunk)`` is True (None without a test).

    Shifted sums, one pass, CHUNK elements at a time: with c = the first chunk's mean
    and d = a - c (in a's dtype),
        mean = c + S1 / n,   std = sqrt(S2 / n - (S1 / n)^2),   S1 = sum d,  S2 = sum d^2
    S1 adds up in float64; S2 is a float32 dot product per chunk, added up in float64.
    Subtracting c first keeps std accurate when |mean| >> std. Memory: one chunk of d
    (256 KB in float32, it stays in cache) and one chunk of bools for the test.
    """
    flat = a.reshape(-1)
    n = flat.size
    if n == 0:
        return math.nan, math.nan, (math.nan if saturated else None)
    shift = flat.dtype.type(flat[:CHUNK].mean(dtype=np.float64))
    d_buffer = np.empty(min(CHUNK, n), flat.dtype)
    s1 = s2 = 0.0
    hits = 0
    for start in range(0, n, CHUNK):
        chunk = flat[start:start + CHUNK]
        d = np.subtract(chunk, shift, out=d_buffer[:len(chunk)])
        s1 += float(d.sum(dtype=np.float64))
        s2 += float(np.dot(d, d))
        if saturated is not None:
            hits += int(np.count_nonzero(saturated(chunk)))
    m = s1 / n
    mean = float(shift) + m
    std = math.sqrt(max(s2 / n - m * m, 0.0))
    return mean, std, (hits / n if saturated is not None else None)


def count_fraction(a, test):
    """Share of elements of ``a`` where ``test(chunk)`` holds, CHUNK elements at a time."""
    flat = a.reshape(-1)
    hits = sum(int(np.count_nonzero(test(flat[s:s + CHUNK]))) for s in range(0, flat.size, CHUNK))
    return hits / flat.size if flat.size else math.nan


def histogram(a, mean, std, bins=HISTOGRAM_BINS):
    """(edges (bins+1,), counts (bins,), below, above) of ``a`` in equal bins
    [e_k, e_k+1) spanning lo, hi = mean -+ HISTOGRAM_SPAN * std (mean -+ 0.5 when std
    is 0). below counts values < lo, above values >= hi.

    Per chunk: t = floor((x - lo) * bins / (hi - lo)), clipped to -1..bins, counted with
    np.bincount. t is computed in a's dtype, in one chunk-sized buffer, so a value
    within rounding of an edge may land in the bin beside it. With a non-finite mean
    or std (a diverged step) nothing is counted.
    """
    half = HISTOGRAM_SPAN * std
    if not (math.isfinite(mean) and math.isfinite(half)):
        return np.linspace(-0.5, 0.5, bins + 1), np.zeros(bins, np.int64), 0, 0
    half = half if half > 0 else 0.5
    lo, hi = mean - half, mean + half
    flat = a.reshape(-1)
    scale, offset = flat.dtype.type(bins / (hi - lo)), flat.dtype.type(lo)
    t_buffer = np.empty(min(CHUNK, flat.size), flat.dtype)
    counts = np.zeros(bins + 2, np.int64)              # [below, bin 0 .. bin bins-1, above]
    for start in range(0, flat.size, CHUNK):
        chunk = flat[start:start + CHUNK]
        t = np.subtract(chunk, offset, out=t_buffer[:len(chunk)])
        np.multiply(t, scale, out=t)
        np.clip(t, -1, bins, out=t)
        np.floor(t, out=t)
        counts += np.bincount(t.astype(np.intp) + 1, minlength=bins + 2)
    return np.linspace(lo, hi, bins + 1), counts[1:-1], int(counts[0]), int(counts[-1])


def log10_ratio(num, den):
    """log10(num / den), NaN when either is zero or not finite (the ratio is undefined)."""
    if not (num > 0 and den > 0 and math.isfinite(num) and math.isfinite(den)):
        return math.nan
    return math.log10(num / den)


# -- the recorder ----------------------------------------------------------------------------
class TraceRecorder:
    """Records the statistics of the module docstring every ``every`` steps of training.

    Args:
        model: a Sequential (its hooks are used on trace steps only).
        every: trace steps 0, every, 2*every, ... (a positive int).
        histogram_steps: steps at which histograms are also taken; each is also a
            trace step, whether or not it is a multiple of ``every``.
        bins: histogram bins per layer.
    """

    def __init__(self, model, every=DEFAULT_TRACE_EVERY, histogram_steps=(0,), bins=HISTOGRAM_BINS):
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"TraceRecorder: every must be a positive int (steps between "
                             f"traces), got {every!r}")
        steps = list(histogram_steps or ())
        for s in steps:
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
                raise ValueError(f"TraceRecorder: histogram_steps must be step numbers >= 0, "
                                 f"got {histogram_steps!r}")
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
            raise ValueError(f"TraceRecorder: bins must be a positive int, got {bins!r}")
        self.model, self.every, self.bins = model, int(every), int(bins)
        self.histogram_steps = sorted({int(s) for s in steps})
        self.architecture = [repr(layer) for layer in model]
        self.rules = [saturation_rule(layer) for layer in model]
        self.clear()

    def clear(self):
        """Forget everything recorded."""
        self.steps = []
        self.layers = [{"index": i, "layer": self.architecture[i], "kind": rule.kind,
                        "rule": rule.text, **{key: [] for key in LAYER_SERIES}}
                       for i, rule in enumerate(self.rules)]
        roles = self.model.roles()
        self.params = [{"name": name, "layer": int(name.split(".")[0]), "role": roles.get(name, ""),
                        "shape": list(p.shape), **{key: [] for key in PARAM_SERIES}}
                       for name, p, _ in self.model.named_parameters()]
        self.histograms = []         # per histogram step: {"step": s, kind: {...arrays}}

    def is_trace_step(self, step):
        return step % self.every == 0 or step in self.histogram_steps

    # -- recording one step --------------------------------------------------------------------
    def record(self, step):
        """A context manager around one training step (forward, backward, optimizer.step):
        records it when ``step`` is a trace step, else does nothing. When the block raises
        (a diverged loss), the hooks are removed and nothing is recorded."""
        return self._trace(step) if self.is_trace_step(step) else nullcontext()

    @contextmanager
    def _trace(self, step):
        if self.steps and step <= self.steps[-1]:
            raise ValueError(f"TraceRecorder: step {step} comes after step {self.steps[-1]}; "
                             f"steps must increase (restore() drops later ones on resume)")
        L = len(self.model)
        row = {key: [math.nan] * L for key in LAYER_SERIES}
        hist = {kind: {} for kind in HISTOGRAM_KINDS} if step in self.histogram_steps else None
        previous_output = [None]          # the input of the next layer (GELU's rule reads it)

        def on_forward(i, layer, y):
            rule = self.rules[i]
            if rule.reads == "output":
                mean, std, frac = array_stats(y, rule.test)
            else:
                mean, std, _ = array_stats(y)
                x = previous_output[0]
                frac = count_fraction(x, rule.test) if x is not None else math.nan
            row["mean"][i], row["std"][i], row["saturated"][i] = mean, std, frac
            wanted_next = i + 1 < L and self.rules[i + 1].reads == "input"
            previous_output[0] = y if wanted_next else None
            if hist is not None:
                hist["activation"][i] = histogram(y, mean, std, self.bins) + (mean, std)

        def on_backward(i, layer, dy):
            mean, std, _ = array_stats(dy)
            row["grad_mean"][i], row["grad_std"][i] = mean, std
            if hist is not None:
                hist["gradient"][i] = histogram(dy, mean, std, self.bins) + (mean, std)

        before = {name: p.copy() for name, p, _ in self.model.named_parameters()}
        self.model.forward_hooks.append(on_forward)
        self.model.backward_hooks.append(on_backward)
        try:
            yield
        finally:
            self.model.forward_hooks.remove(on_forward)
            self.model.backward_hooks.remove(on_backward)
            previous_output[0] = None
        self._append(step, row, self._param_row(before), hist)

    def _param_row(self, before):
        """{name: (grad_norm, grad_std, update_ratio)} after the optimizer's step."""
        out = {}
        for name, p, g in self.model.named_parameters():
            _, g_std, _ = array_stats(g)
            g_norm = float(np.linalg.norm(g.reshape(-1).astype(np.float64)))
            ratio = math.nan
            if name in before:
                p0 = before[name]
                _, update_std, _ = array_stats(p.astype(np.float64) - p0.astype(np.float64))
                ratio = log10_ratio(update_std, array_stats(p0)[1])
            out[name] = (g_norm, g_std, ratio)
        return out

    def _append(self, step, row, param_row, hist):
        self.steps.append(int(step))
        for i, entry in enumerate(self.layers):
            for key in LAYER_SERIES:
                entry[key].append(float(row[key][i]))
        for entry in self.params:
            values = param_row.get(entry["name"], (math.nan,) * len(PARAM_SERIES))
            for key, v in zip(PARAM_SERIES, values):
                entry[key].append(float(v))
        if hist is not None:
            self.histograms.append({"step": int(step), **{
                kind: self._stack(hist[kind]) for kind in HISTOGRAM_KINDS}})

    def _stack(self, per_layer):
        """{i: (edges, counts, below, above, mean, std)} -> arrays over all L layers
        (a layer no hook reached gets zero counts and NaN edges)."""
        L, B = len(self.model), self.bins
        edges = np.full((L, B + 1), np.nan)
        counts = np.zeros((L, B), np.int64)
        below, above = np.zeros(L, np.int64), np.zeros(L, np.int64)
        mean, std = np.full(L, np.nan), np.full(L, np.nan)
        for i, (e, c, lo, hi, m, s) in per_layer.items():
            edges[i], counts[i], below[i], above[i], mean[i], std[i] = e, c, lo, hi, m, s
        return {"edges": edges, "counts": counts, "below": below, "above": above,
                "mean": mean, "std": std}

    # -- the files -----------------------------------------------------------------------------------
    def to_json(self):
        """The traces.json document (module docstring); non-finite values as None."""
        def clean(values):
            return [v if math.isfinite(v) else None for v in values]

        layers = [{k: (clean(v) if k in LAYER_SERIES else v) for k, v in e.items()} for e in self.layers]
        params = [{k: (clean(v) if k in PARAM_SERIES else v) for k, v in e.items()} for e in self.params]
        return {"format": FORMAT, "version": VERSION, "architecture": self.architecture,
                "every": self.every, "steps": list(self.steps), "layers": layers, "params": params,
                "histograms": {"file": HISTOGRAMS_FILE, "bins": self.bins,
                               "steps": [h["step"] for h in self.histograms]}}

    def histogram_arrays(self):
        """The trace_histograms.npz entries (module docstring)."""
        L, B = len(self.model), self.bins
        arrays = {"steps": np.array([h["step"] for h in self.histograms], dtype=np.int64)}
        empty = {"edges": (L, B + 1), "counts": (L, B), "below": (L,), "above": (L,),
                 "mean": (L,), "std": (L,)}
        for kind in HISTOGRAM_KINDS:
            for key, shape in empty.items():
                dtype = np.int64 if key in ("counts", "below", "above") else np.float64
                values = [h[kind][key] for h in self.histograms]
                arrays[f"{kind}_{key}"] = (np.stack(values).astype(dtype) if values
                                           else np.zeros((0,) + shape, dtype))
        return arrays

    def traces(self):
        """What ``load_traces`` would return for the files ``save`` writes now."""
        return _as_arrays(self.to_json(), self.histogram_arrays())

    def save(self, run_dir):
        """Write trace_histograms.npz, then traces.json, each atomically, into ``run_dir``.
        The JSON names the histogram steps, so a crash between the two writes leaves a
        JSON that still describes what the .npz holds."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_npz_atomic(run_dir / HISTOGRAMS_FILE, self.histogram_arrays())
        text = json.dumps(self.to_json(), allow_nan=False).encode("utf-8")
        write_atomic(run_dir / TRACES_FILE, lambda f: f.write(text))

    def restore(self, run_dir, before_step):
        """Continue the traces saved in ``run_dir``, keeping the steps < ``before_step``
        (the step of the checkpoint being resumed: later entries were recorded after it
        and will be recorded again). Without a traces file there, start empty."""
        self.clear()
        if not (Path(run_dir) / TRACES_FILE).exists():
            return
        saved = _load(run_dir, self.model, before_step)
        where = Path(run_dir) / TRACES_FILE
        if saved["every"] != self.every:
            raise TraceFileError(f"{where}: traced every {saved['every']} steps, but this run "
                                 f"traces every {self.every}; resume with the same interval")
        if saved["histograms"]["bins"] != self.bins:
            raise TraceFileError(f"{where}: histograms of {saved['histograms']['bins']} bins, "
                                 f"this run takes {self.bins}")
        names = [p["name"] for p in saved["params"]]
        if names != [p["name"] for p in self.params]:
            raise TraceFileError(f"{where}: holds parameters {names}, this model trains "
                                 f"{[p['name'] for p in self.params]}")
        keep = saved["steps"] < before_step
        self.steps = [int(s) for s in saved["steps"][keep]]
        for entries, saved_entries, keys in ((self.layers, saved["layers"], LAYER_SERIES),
                                             (self.params, saved["params"], PARAM_SERIES)):
            for mine, theirs in zip(entries, saved_entries):
                for key in keys:
                    mine[key] = [float(v) for v in theirs[key][keep]]
        hist = saved["histograms"]
        for j, step in enumerate(hist["steps"]):
            if step < before_step:
                self.histograms.append({"step": int(step), **{
                    kind: {key: value[j] for key, value in hist[kind].items()}
                    for kind in HISTOGRAM_KINDS}})


# -- reading ----------------------------------------------------------------------------------------
def load_traces(run_dir, model=None):
    """Read traces.json and trace_histograms.npz from ``run_dir``.

    Returns the traces.json document with every series as a float64 array (NaN for
    null), "steps" as an int array, and "histograms" as {"steps": (S,), "bins": B,
    "activation": {"edges": (S, L, B+1), "counts": (S, L, B), "below", "above",
    "mean", "std": (S, L)}, "gradient": {...}}.

    Raises MissingTraceFile (a FileNotFoundError and a ValueError) when traces.json is
    absent, and TraceFileError (a ValueError) naming the file and the problem when a
    file is damaged, half-written, not a minicnn traces file, inconsistent, or (with
    ``model``) recorded on a different architecture.
    """
    return _load(run_dir, model)


def _load(run_dir, model=None, before_step=None):
    """load_traces; with ``before_step``, histograms at later steps (which a resume drops)
    may be absent: a crash between the two writes of a resumed run's save can leave a
    traces.json that lists some the new .npz no longer holds."""
    run_dir = Path(run_dir)
    path = run_dir / TRACES_FILE
    if not path.is_file():
        raise MissingTraceFile(f"{path}: no traces file (the run was trained without tracing: "
                               f"Trainer(trace_every=K), or --trace-every K in the example)")
    try:              # as checkpoint.py reads its JSON header, with this file's own error
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TraceFileError(f"{path}: not valid JSON (half-written or damaged?): {e}") from e
    _check_document(doc, path)
    if model is not None:
        check_architecture(doc["architecture"], [repr(layer) for layer in model], path)
    if before_step is not None:
        doc["histograms"]["steps"] = [s for s in doc["histograms"]["steps"] if s < before_step]
    arrays = _read_histograms(run_dir / HISTOGRAMS_FILE, doc, path)
    return _as_arrays(doc, arrays)


def check_architecture(recorded, current, path):
    """Raise TraceFileError naming both architectures when they differ."""
    if list(recorded) == list(current):
        return
    n = min(len(recorded), len(current))
    first = next((i for i in range(n) if recorded[i] != current[i]), n)
    where = (f"layer {first} is {recorded[first] if first < len(recorded) else 'absent'} there, "
             f"{current[first] if first < len(current) else 'absent'} here")
    raise TraceFileError(
        f"{path}: recorded on a different model ({len(recorded)} layers vs {len(current)}; "
        f"{where}).\n  traces: [{', '.join(recorded)}]\n  model:  [{', '.join(current)}]")


def _check_document(doc, path):
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise TraceFileError(f"{path}: no \"format\": {FORMAT!r}, so not a minicnn traces file")
    version = doc.get("version")
    if not isinstance(version, int) or not 1 <= version <= VERSION:
        raise TraceFileError(f"{path}: format version {version!r}; this minicnn reads 1..{VERSION}")
    expected = {"architecture": list, "every": int, "steps": list, "layers": list,
                "params": list, "histograms": dict}
    for key, kind in expected.items():
        if not isinstance(doc.get(key), kind):
            raise TraceFileError(f"{path}: {key!r} should be a {kind.__name__}, "
                                 f"got {type(doc.get(key)).__name__}")
    n = len(doc["steps"])
    if len(doc["layers"]) != len(doc["architecture"]):
        raise TraceFileError(f"{path}: {len(doc['layers'])} layer entries for an architecture "
                             f"of {len(doc['architecture'])} layers")
    for group, keys, label in ((doc["layers"], LAYER_SERIES, "layer"),
                               (doc["params"], PARAM_SERIES, "param")):
        for j, entry in enumerate(group):
            for key in keys:
                series = entry.get(key) if isinstance(entry, dict) else None
                if not isinstance(series, list) or len(series) != n:
                    got = len(series) if isinstance(series, list) else type(series).__name__
                    raise TraceFileError(f"{path}: {label} {j} {key!r} should hold {n} values "
                                         f"(one per step), got {got}")
    hist = doc["histograms"]
    bins = hist.get("bins")
    if (not isinstance(hist.get("file"), str) or not isinstance(hist.get("steps"), list)
            or not isinstance(bins, int) or bins < 1):
        raise TraceFileError(f"{path}: \"histograms\" should name a \"file\", its \"steps\" "
                             f"and the number of \"bins\", got {hist}")


def _read_histograms(npz_path, doc, json_path):
    """The histogram arrays of the steps traces.json lists, checked against each other."""
    listed = doc["histograms"]["steps"]
    L, bins = len(doc["architecture"]), doc["histograms"].get("bins")
    if not npz_path.is_file():
        if listed:
            raise TraceFileError(f"{npz_path}: missing, but {json_path.name} lists histograms "
                                 f"at steps {listed}")
        return None
    unreadable = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
    try:
        arrays = read_npz(npz_path)                          # bounded, no pickle
    except unreadable as e:
        raise TraceFileError(f"{npz_path}: not a readable .npz file (half-written or "
                             f"damaged?): {e}") from e
    expected = {"steps": (None,)}
    for kind in HISTOGRAM_KINDS:
        expected.update({f"{kind}_edges": (None, L, bins + 1), f"{kind}_counts": (None, L, bins),
                         f"{kind}_below": (None, L), f"{kind}_above": (None, L),
                         f"{kind}_mean": (None, L), f"{kind}_std": (None, L)})
    S = len(arrays["steps"]) if "steps" in arrays else None
    for key, shape in expected.items():
        want = (S,) + shape[1:]
        if key not in arrays or arrays[key].shape != want:
            got = arrays[key].shape if key in arrays else "absent"
            raise TraceFileError(f"{npz_path}: entry {key!r} should have shape {want} "
                                 f"({L} layers, {bins} bins), got {got}")
    missing = sorted(set(listed) - set(arrays["steps"].tolist()))
    if missing:
        raise TraceFileError(f"{npz_path}: lacks the histograms of steps {missing} that "
                             f"{json_path.name} lists (half-written run?)")
    take = [arrays["steps"].tolist().index(s) for s in listed]
    return {key: value[take] for key, value in arrays.items()}


def _as_arrays(doc, arrays):
    """The JSON document with series as numpy arrays and the histograms attached."""
    def series(values):
        return np.array([math.nan if v is None else v for v in values], dtype=np.float64)

    out = dict(doc)
    out["steps"] = np.array(doc["steps"], dtype=np.int64)
    out["layers"] = [{k: (series(v) if k in LAYER_SERIES else v) for k, v in e.items()}
                     for e in doc["layers"]]
    out["params"] = [{k: (series(v) if k in PARAM_SERIES else v) for k, v in e.items()}
                     for e in doc["params"]]
    L, B = len(doc["architecture"]), doc["histograms"]["bins"]
    hist = {"steps": np.array(doc["histograms"]["steps"], dtype=np.int64), "bins": B}
    for kind in HISTOGRAM_KINDS:
        if arrays is None:
            hist[kind] = {"edges": np.zeros((0, L, B + 1)), "counts": np.zeros((0, L, B), np.int64),
                          "below": np.zeros((0, L), np.int64), "above": np.zeros((0, L), np.int64),
                          "mean": np.zeros((0, L)), "std": np.zeros((0, L))}
        else:
            hist[kind] = {key[len(kind) + 1:]: value for key, value in arrays.items()
                          if key.startswith(kind + "_")}
    out["histograms"] = hist
    return out
