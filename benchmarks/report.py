"""Markdown tables from the benchmark records (see run_all.py for the JSON layout).

Every time is the median of the timed repetitions, with the spread (min–max)
beside it; GFLOP/s use the median; "% SGEMM" is that rate as a fraction of
numpy's float32 SGEMM rate on the largest square shape measured in the same
run; "speed vs torch" is the faster PyTorch layout's median time divided by
minicnn's median time (1.25 = minicnn does the same work in
0.8 of the time; 0.5 = minicnn takes twice as long).
"""


def ms(s):
    return f"{s * 1e3:.3g}" if s < 0.1 else f"{s * 1e3:.0f}"


def spread(r):
    return f"{ms(r['median_s'])} ({ms(r['min_s'])}–{ms(r['max_s'])})"


def pct(r):
    return f"{100 * r['sgemm_fraction']:.0f}%" if r.get("sgemm_fraction") is not None else "–"


def fnum(v, digits=3):
    return "–" if v is None else f"{v:.{digits}g}" if v < 1000 else f"{v:,.0f}"


def table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def by_backend(records, keyfn):
    """Group records: {key: {backend: record}} in first-seen key order."""
    groups = {}
    for r in records:
        groups.setdefault(keyfn(r), {})[r["backend"]] = r
    return groups


def ok(r):
    return r is not None and "median_s" in r


def ratio(mine, theirs):
    best = [t for t in theirs if ok(t)]
    if not ok(mine) or not best:
        return "–"
    return f"{min(t['median_s'] for t in best) / mine['median_s']:.2f}"


def cell_time(r):
    if r is None:
        return "–"
    return spread(r) if ok(r) else "error"


def header(meta):
    w = meta.get("workers", {})
    mc, tc = w.get("minicnn_worker", {}), w.get("torch_worker")
    blas = mc.get("blas")
    blas_s = ", ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')}, "
                       f"{b.get('num_threads')} threads)" for b in blas) if isinstance(blas, list) else str(blas)
    lines = [
        f"- date: {meta.get('date')}",
        f"- machine: {meta.get('cpu')}, {meta.get('cores')} cores ({meta.get('cores_usable')} usable); "
        f"load average at start {fmt_load(meta.get('loadavg_start'))}, at end {fmt_load(meta.get('loadavg_end'))}",
        f"- threads: {meta.get('threads')} for every backend ("
        + ", ".join(f"{k}={v}" for k, v in meta.get("thread_env", {}).items()) + ", torch.set_num_threads)",
        f"- OPENBLAS_CORETYPE: {meta.get('OPENBLAS_CORETYPE') or 'not set'}",
        f"- minicnn side: python {mc.get('python')}, numpy {mc.get('numpy')}, numba {mc.get('numba')} "
        f"({mc.get('numba_threads')} threads, layer {mc.get('numba_threading_layer')}), BLAS: {blas_s}",
    ]
    if tc:
        lines.append(f"- PyTorch side: torch {tc.get('torch')} ({tc.get('torch_threads')} threads), "
                     f"numpy {tc.get('numpy')}, python {tc.get('python')}; {'; '.join(tc.get('config', []))}")
    elif meta.get("torch_skipped"):
        lines.append(f"- PyTorch comparison skipped: {meta['torch_skipped']}")
    if meta.get("minicnn_source_sha256"):
        lines.append(f"- minicnn source: sha256 {meta['minicnn_source_sha256']} (over minicnn/**/*.py, "
                     f"imported from {mc.get('minicnn_path')})")
    lines.append(f"- reps: {meta.get('reps')} timed after {meta.get('warmup')} warm-up, median (min–max)")
    if "warm" in meta:
        lines.append(f"- before each timed rep: {meta['gap']} s pause when the worker changes, then "
                     f"untimed runs of the same subject for {meta['warm']} s (at least one)")
    lines.append(f"- command: `{meta.get('command')}`")
    for note in meta.get("notes", []):
        lines.append(f"- note: {note}")
    return "\n".join(lines)


def fmt_load(load):
    return "–" if not load else " / ".join(f"{v:.2f}" for v in load)


def sgemm_table(records):
    groups = by_backend(records, lambda r: (r["M"], r["K"], r["N"]))
    rows = []
    for (M, K, N), g in groups.items():
        n, t = g.get("numpy"), g.get("torch")
        rows.append([f"{M}×{K}×{N}", cell_time(n), fnum(n.get("gflops")) if ok(n) else "–", pct(n) if ok(n) else "–",
                     cell_time(t) if t else "–", fnum(t.get("gflops")) if ok(t) else "–"])
    return table(["M×K×N", "numpy ms", "numpy GFLOP/s", "% of square", "torch.mm ms", "torch.mm GFLOP/s"], rows)


def layer_table(records):
    groups = by_backend(records, lambda r: (r["layer"], r["pass"]))
    rows = []
    for (name, pas), g in groups.items():
        m, tn, tc = g.get("minicnn"), g.get("torch-nchw"), g.get("torch-cl")
        r0 = next(iter(g.values()))
        shape = f"{r0['C']}→{r0['F']} k{r0['k']} @{r0['H']}×{r0['W']}"
        best = max((t for t in (tn, tc) if ok(t)), key=lambda t: t["gflops"], default=None)
        rows.append([name, shape, pas, f"{r0['flops'] / 1e9:.2f}", cell_time(m),
                     fnum(m.get("gflops")) if ok(m) else "–", pct(m) if ok(m) else "–",
                     cell_time(tn), cell_time(tc), fnum(best["gflops"]) if best else "–", ratio(m, [tn, tc])])
    return table(["layer", "C→F k @H×W", "pass", "GFLOP", "minicnn ms", "GFLOP/s", "% SGEMM",
                  "torch NCHW ms", "torch CL ms", "torch best GFLOP/s", "speed vs torch"], rows)


def network_table(records):
    groups = by_backend(records, lambda r: (r["network"], r["batch"], r["mode"]))
    rows = []
    for (net, N, mode), g in groups.items():
        m, tn, tc = g.get("minicnn"), g.get("torch-nchw"), g.get("torch-cl")
        ips = lambda r: fnum(r.get("img_per_s")) if ok(r) else "–"
        rows.append([net, N, mode, cell_time(m), ips(m), fnum(m.get("gflops")) if ok(m) else "–",
                     pct(m) if ok(m) else "–", ips(tn), ips(tc), ratio(m, [tn, tc])])
    return table(["network", "batch", "step", "minicnn ms/step", "img/s", "GFLOP/s", "% SGEMM",
                  "torch NCHW img/s", "torch CL img/s", "speed vs torch"], rows)


def memory_table(records):
    groups = by_backend(records, lambda r: (r["network"], r["batch"], r["mode"]))

    def cell(r):
        if r is None:
            return "–"
        if "peak_rss_mib" not in r:
            return "error"
        return f"{r['peak_rss_mib']:.0f} (+{r['peak_rss_mib'] - r['idle_rss_mib']:.0f})"
    rows = [[net, N, mode, cell(g.get("minicnn")), cell(g.get("torch-nchw")), cell(g.get("torch-cl"))]
            for (net, N, mode), g in groups.items()]
    return table(["network", "batch", "step", "minicnn MiB", "torch NCHW MiB", "torch CL MiB"], rows)


def conv_share(layers, networks):
    """How much of a training step at the layer batch the convolutions account for (minicnn)."""
    lines = []
    for net in ("simple", "airbench"):
        convs = [r for r in layers if r["layer"].startswith(net + ".") and r["backend"] == "minicnn" and ok(r)]
        if not convs:
            continue
        N = convs[0]["N"]
        step = [r for r in networks if r["network"] == net and r["batch"] == N and r["mode"] == "train"
                and r["backend"] == "minicnn" and ok(r)]
        if step:
            total = sum(r["median_s"] for r in convs)
            lines.append(f"- {net}, batch {N}: conv layers forward+backward (measured alone) "
                         f"{ms(total)} ms of a {ms(step[0]['median_s'])} ms training step "
                         f"({100 * total / step[0]['median_s']:.0f}%)")
    return "\n".join(lines)


def render(results):
    meta = results.get("meta", {})
    out = ["# minicnn benchmarks", "", header(meta), ""]
    if results.get("sgemm"):
        out += ["## SGEMM (float32, the machine's matmul rate)", "", sgemm_table(results["sgemm"]), ""]
    if results.get("layers"):
        N = results["layers"][0]["N"]
        out += [f"## Convolution layers (batch {N}; backward computes dx, dW and db)", "",
                layer_table(results["layers"]), ""]
    if results.get("networks"):
        out += ["## Networks (train = forward + loss + backward + SGD update, 3× forward FLOPs; "
                "infer = eval-mode forward)", "", network_table(results["networks"]), ""]
        share = conv_share(results.get("layers", []), results["networks"])
        if share:
            out += [share, ""]
    if results.get("memory"):
        out += ["## Peak memory (RSS in MiB over steps after warm-up, one fresh process per cell; "
                "in parentheses the growth over the process's RSS before the first step)", "",
                memory_table(results["memory"]), ""]
    return "\n".join(out)
