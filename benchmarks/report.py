"""Markdown tables from the benchmark records (see run_all.py for the JSON layout).

Every time is the median of the timed repetitions, with the spread (min–max)
beside it; GFLOP/s use the median; "% SGEMM" is that rate as a fraction of
numpy's float32 SGEMM rate on the largest square shape measured in the same
run; "speed vs fastest torch" is the median time of the fastest PyTorch subject of that
row (eager NCHW, eager channels_last and, for networks, torch.compile
channels_last; a subject that failed or was skipped does not count) divided by
minicnn's median time (1.25 = minicnn does the same work in 0.8 of the time;
0.5 = minicnn takes twice as long).

``machine_line`` is the one-line description of the machine (CPU, ISA, measured
FMA peak, removed variables) printed above the tables, to be pasted under any
table of figures taken from the report.
"""

# PyTorch subjects (record "backend" labels) and their column names, in table order.
TORCH_COLUMNS = {"torch-nchw": "torch NCHW", "torch-cl": "torch CL", "torch-compile-cl": "torch.compile CL"}
SHORT_NAMES = {"torch-nchw": "NCHW", "torch-cl": "CL", "torch-compile-cl": "compile CL"}


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
    """A record with a time: not missing, failed or skipped."""
    return r is not None and "median_s" in r and "error" not in r and "skipped" not in r


def best_torch(group):
    """(label, record) of the fastest PyTorch subject in ``group`` ({backend: record}) by
    median time, among those that ran (errors and skipped subjects do not count); None if none did."""
    timed = [(label, group[label]) for label in TORCH_COLUMNS if ok(group.get(label))]
    return min(timed, key=lambda item: item[1]["median_s"], default=None)


def ratio(mine, best):
    """Speed of ``mine`` relative to ``best`` = (label, record) from best_torch: their time / mine."""
    if not ok(mine) or best is None:
        return "–"
    return f"{best[1]['median_s'] / mine['median_s']:.2f}"


def cell_time(r):
    if r is None:
        return "–"
    if "skipped" in r:
        return "skipped"
    return spread(r) if ok(r) else "error"


def isa_text(isa):
    """"AVX2, FMA; no AVX-512F, AVX512_BF16, AVX512_VNNI" from {flag: bool}."""
    have = [f.upper() for f, v in isa.items() if v]
    lack = [f.upper() for f, v in isa.items() if not v]
    return ", ".join(have) + ("; no " + ", ".join(lack) if lack else "")


def fma_peak_text(peak):
    """"101 GFLOP/s (256-bit), 512-bit: skipped (...)" from run_all's meta["fma_peak"]."""
    if not peak:
        return None
    parts = []
    for w in peak.get("widths", []):
        if "gflops" in w and w.get("asm_ok"):
            parts.append(f"{w['gflops']:.0f} GFLOP/s ({w['bits']}-bit)")
        elif "gflops" in w:
            parts.append(f"{w['bits']}-bit: not measured (the kernel's FMAs were not on {w['register']})")
        elif "skipped" in w:
            parts.append(f"{w['bits']}-bit: none ({w['skipped']})")
        else:
            parts.append(f"{w['bits']}-bit: failed")
    return ", ".join(parts)


def removed_env_text(meta):
    removed = meta.get("worker_env_removed")
    if not removed:
        return None
    had = removed.get("parent_had", {})
    names = ", ".join(removed.get("variables", []))
    if had:
        return (f"{names} removed from every worker's environment (the parent had "
                + ", ".join(f"{k}={v}" for k, v in had.items()) + ")")
    return f"{names} removed from every worker's environment (the parent had none of them)"


def machine_line(meta):
    """One line naming the machine the figures come from, for pasting under a table."""
    info = meta.get("cpu_info") or {}
    cpu = info.get("model_name") or meta.get("cpu") or "unknown CPU"
    ident = []
    if info.get("family") is not None:
        ident.append(f"family {info['family']} model {info['model']}")
    if info.get("llvm_cpu"):
        ident.append(f"LLVM {info['llvm_cpu']}")
    parts = [cpu + (f" ({', '.join(ident)})" if ident else "")]
    if info.get("isa"):
        parts.append(isa_text(info["isa"]))
    peak = fma_peak_text(meta.get("fma_peak"))
    if peak:
        parts.append(f"measured float32 FMA peak per core {peak}")
    if meta.get("threads"):
        parts.append(f"{meta['threads']} threads")
    removed = removed_env_text(meta)
    if removed:
        parts.append(removed)
    return "Machine: " + "; ".join(parts) + "."


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
        (f"- worker environment: {removed_env_text(meta)}" if meta.get("worker_env_removed") else
         f"- OPENBLAS_CORETYPE: {meta.get('OPENBLAS_CORETYPE') or 'not set'}"),
        f"- minicnn side: python {mc.get('python')}, numpy {mc.get('numpy')}, numba {mc.get('numba')} "
        f"({mc.get('numba_threads')} threads, layer {mc.get('numba_threading_layer')}), "
        f"{mc.get('vector_unit', 'tile set not recorded')}, BLAS: {blas_s}",
    ]
    if tc:
        lines.append(f"- PyTorch side: torch {tc.get('torch')} ({tc.get('torch_threads')} threads), "
                     f"numpy {tc.get('numpy')}, python {tc.get('python')}; {'; '.join(tc.get('config', []))}")
    elif meta.get("torch_skipped"):
        lines.append(f"- PyTorch comparison skipped: {meta['torch_skipped']}")
    for label, why in (meta.get("torch_subjects_skipped") or {}).items():
        lines.append(f"- {TORCH_COLUMNS.get(label, label)} skipped: {why}")
    info = meta.get("cpu_info")
    if info:
        lines.insert(2, f"- CPU: {info.get('model_name')}, {info.get('vendor')} family {info.get('family')} "
                        f"model {info.get('model')} stepping {info.get('stepping')}; ISA: "
                        f"{isa_text(info.get('isa', {}))}; numba/LLVM target: {info.get('llvm_cpu')}")
    peak = meta.get("fma_peak")
    if peak:
        details = "; ".join(
            f"{w['bits']}-bit best {w['gflops']:.1f} GFLOP/s, median by CPU time "
            f"{w.get('gflops_cpu_time_median') or 0:.1f} ({w.get('chains')} chains, {w.get('slices')} slices)"
            for w in peak.get("widths", []) if "gflops" in w)
        lines.insert(3 if info else 2, f"- float32 FMA peak per core (bench_fma_peak.py, "
                                       f"{peak.get('seconds_per_width')} s per width): {fma_peak_text(peak)}"
                                       + (f"; {details}" if details else ""))
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


def present_torch_columns(records):
    """The PyTorch subjects that appear in ``records`` (eager NCHW and CL always)."""
    seen = {r["backend"] for r in records}
    return [label for label in TORCH_COLUMNS if label in seen or label in ("torch-nchw", "torch-cl")]


def fastest_name(best):
    return SHORT_NAMES.get(best[0], best[0]) if best else "–"


def layer_table(records):
    groups = by_backend(records, lambda r: (r["layer"], r["pass"]))
    columns = present_torch_columns(records)
    rows = []
    for (name, pas), g in groups.items():
        m = g.get("minicnn")
        r0 = next(iter(g.values()))
        shape = f"{r0['C']}→{r0['F']} k{r0['k']} @{r0['H']}×{r0['W']}"
        best = best_torch(g)
        rows.append([name, shape, pas, f"{r0['flops'] / 1e9:.2f}", cell_time(m),
                     fnum(m.get("gflops")) if ok(m) else "–", pct(m) if ok(m) else "–"]
                    + [cell_time(g.get(label)) for label in columns]
                    + [fnum(best[1].get("gflops")) if best else "–", fastest_name(best), ratio(m, best)])
    return table(["layer", "C→F k @H×W", "pass", "GFLOP", "minicnn ms", "GFLOP/s", "% SGEMM"]
                 + [f"{TORCH_COLUMNS[label]} ms" for label in columns]
                 + ["fastest torch GFLOP/s", "fastest torch", "speed vs fastest torch"], rows)


def network_table(records):
    groups = by_backend(records, lambda r: (r["network"], r["batch"], r["mode"]))
    columns = present_torch_columns(records)
    rows = []

    def ips(r):
        if r is not None and "skipped" in r:
            return "skipped"
        return fnum(r.get("img_per_s")) if ok(r) else "–" if r is None else "error"
    for (net, N, mode), g in groups.items():
        m = g.get("minicnn")
        best = best_torch(g)
        rows.append([net, N, mode, cell_time(m), ips(m), fnum(m.get("gflops")) if ok(m) else "–",
                     pct(m) if ok(m) else "–"] + [ips(g.get(label)) for label in columns]
                    + [fastest_name(best), ratio(m, best)])
    return table(["network", "batch", "step", "minicnn ms/step", "img/s", "GFLOP/s", "% SGEMM"]
                 + [f"{TORCH_COLUMNS[label]} img/s" for label in columns]
                 + ["fastest torch", "speed vs fastest torch"], rows)


def memory_table(records):
    groups = by_backend(records, lambda r: (r["network"], r["batch"], r["mode"]))

    def cell(r):
        if r is None:
            return "–"
        if "peak_rss_mib" not in r:
            return "error"
        return f"{r['peak_rss_mib']:.0f} (+{r['peak_rss_mib'] - r['idle_rss_mib']:.0f})"
    def ratio(g):                        # minicnn's peak over the smallest PyTorch peak
        mine = g.get("minicnn", {}).get("peak_rss_mib")
        theirs = [r["peak_rss_mib"] for label, r in g.items() if label != "minicnn" and "peak_rss_mib" in r]
        return f"{mine / min(theirs):.2f}" if mine and theirs else "–"
    rows = [[net, N, mode, cell(g.get("minicnn")), cell(g.get("torch-nchw")), cell(g.get("torch-cl")),
             cell(g.get("torch-compile-cl")), ratio(g)] for (net, N, mode), g in groups.items()]
    return table(["network", "batch", "step", "minicnn MiB", "torch NCHW MiB", "torch CL MiB",
                  "torch.compile CL MiB", "minicnn ÷ smallest PyTorch"], rows)


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
    out = ["# minicnn benchmarks", "", machine_line(meta), "", header(meta), ""]
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
