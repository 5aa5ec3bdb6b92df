"""A benchmark worker: one long-lived process that times one backend.

The drivers (bench_sgemm.py, bench_layers.py, bench_networks.py, run_all.py)
start one worker per backend and drive them alternately, one timed repetition
at a time, so minicnn and PyTorch see the same machine load:

    python benchmarks/bench_worker.py --backend minicnn --threads 2
    /work/torchenv/bin/python benchmarks/bench_worker.py --backend torch --threads 2

Protocol: one JSON object per line on stdin, one JSON reply per line on stdout
(the process's real stdout is reserved for replies; anything a library prints
goes to stderr).

    {"op": "info"}                                  -> {"info": {...versions, threads...}}
    {"op": "setup", "key": K, "task": T, "warmup": n} -> {"meta": {...}}   build + n untimed runs
    {"op": "time", "key": K, "n": n, "warm": s}     -> {"times": [seconds, ...]}
                                     (first runs the subject untimed for s seconds, at least once)
    {"op": "drop", "key": K}                        -> {}
    {"op": "quit"}                                  -> {} and exit
    a subject this machine cannot run               -> {"skipped": "reason"}   (setup only)
    any failure                                     -> {"error": "traceback"}

A task T is a dict; ``T["kind"]`` is "sgemm", "layer" or "network" (see
backend_minicnn.py / backend_torch.py for the fields).

Peak memory is measured in a fresh process per configuration instead, so that
one configuration's peak cannot leak into another's:

    python benchmarks/bench_worker.py --backend minicnn --probe '{"kind": "network", ...}'

prints {"idle_rss_mib", "peak_rss_mib", "peak_rss_with_warmup_mib"}. The probe
first runs the task once on a 2-image batch (so numba compilation and library
loading are done), builds the full-size model and data and reads the RSS
("idle"), runs one full-size warm-up step, resets the kernel's high-water mark
(/proc/self/clear_refs), runs ``--steps`` steps and reads the peak (VmHWM).
"peak_rss_with_warmup_mib" (``ru_maxrss`` read before the reset and after the
steps) covers the whole process, compilation and warm-up included.

This file must run under both interpreters, so it imports only the standard
library before choosing a backend (the torch venv has no numba or minicnn).
"""
import argparse
import gc
import json
import os
import resource
import sys
import time
import traceback

from subject import Unavailable

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def set_thread_env(threads):
    """Pin every thread pool to ``threads``: must run before numpy/numba/torch load."""
    for var in THREAD_VARS:
        os.environ[var] = str(threads)


def load_backend(name):
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    if name == "minicnn":
        import backend_minicnn as backend
    elif name == "torch":
        import backend_torch as backend
    else:
        raise ValueError(f"bench_worker: backend must be 'minicnn' or 'torch', got {name!r}")
    return backend


class Server:
    """Answers protocol messages; used by the subprocess loop and, in-process, by tests."""

    def __init__(self, backend_name, threads=None):
        self.backend_name = backend_name
        self.backend = load_backend(backend_name)
        self.backend.init(threads)
        self.subjects = {}

    def handle(self, msg):
        try:
            op = msg.get("op")
            if op == "info":
                return {"info": self.backend.info()}
            if op == "setup":
                try:
                    subject = self.backend.make(msg["task"])
                except Unavailable as e:
                    return {"skipped": str(e)}
                for _ in range(int(msg.get("warmup", 1))):
                    subject.run_once()
                self.subjects[msg["key"]] = subject
                return {"meta": subject.meta}
            if op == "time":
                subject = self.subjects[msg["key"]]
                warm_up(subject, float(msg.get("warm", 0.0)))
                return {"times": [subject.run_once() for _ in range(int(msg.get("n", 1)))]}
            if op == "drop":
                self.subjects.pop(msg["key"], None)
                gc.collect()
                return {}
            if op == "quit":
                return {}
            raise ValueError(f"bench_worker: unknown op {op!r} in {msg!r}")
        except Exception:
            return {"error": traceback.format_exc()}


def warm_up(subject, seconds):
    """Run ``subject`` untimed until ``seconds`` have passed (at least once if seconds > 0),
    so that the timed run after it starts as in a training loop: clocks up on every core,
    the library's threads awake, its caches holding the weights.

    Why: the cores here lower their clock when idle. After a 0.5 s sleep, minicnn's
    simple-net inference (batch 128) took 49 ms instead of 33 ms back to back; 30 ms of
    busy-waiting on one core first gave 34 ms, 100 ms 33 ms (bench_idle.py,
    evidence/benchmarks/idle_clock.txt). A
    busy-wait on one core is not enough for a two-thread library: in the full benchmark
    PyTorch's channels_last inference went from 43 to 55 ms with a 0.1 s one (its second
    core idled meanwhile), hence whole runs of the subject. Without any warm-up, a subject
    timed right after another in the same process (PyTorch channels_last after NCHW)
    started warm while the others started cold (2-core Zen 3: docs/performance.md)."""
    end = time.perf_counter() + seconds
    while seconds > 0:
        subject.run_once()
        if time.perf_counter() >= end:
            break


def serve(server):
    # Keep the real stdout for replies; route stray prints to stderr.
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        replies.write(json.dumps(server.handle(msg)) + "\n")
        if msg.get("op") == "quit":
            break


def rss_status_kib(field):
    """VmRSS / VmHWM of this process from /proc/self/status, in KiB (None if unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def probe_memory(server, task, steps):
    warm = server.backend.make({**task, "N": 2})          # compile / load every kernel on a tiny batch
    warm.run_once()
    del warm
    subject = server.backend.make(task)
    gc.collect()
    idle = rss_status_kib("VmRSS")
    subject.run_once()                                    # warm-up at full size: first-touch pages
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB; the reset below clears it too
    try:
        with open("/proc/self/clear_refs", "w") as f:     # reset the peak (VmHWM) to current RSS
            f.write("5")
        reset = True
    except OSError:
        reset = False
    for _ in range(steps):
        subject.run_once()
    maxrss = max(maxrss_before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    peak = rss_status_kib("VmHWM") if reset else None
    mib = lambda kib: None if kib is None else kib / 1024
    return {"idle_rss_mib": mib(idle), "peak_rss_mib": mib(peak if peak is not None else maxrss),
            "peak_rss_with_warmup_mib": mib(maxrss), "hwm_reset": reset, "steps": steps}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", required=True, choices=["minicnn", "torch"])
    ap.add_argument("--threads", type=int, default=None,
                    help="set OMP/OPENBLAS/MKL/NUMBA thread counts and torch.set_num_threads")
    ap.add_argument("--probe", metavar="TASK_JSON", help="measure peak RSS of one task and exit")
    ap.add_argument("--steps", type=int, default=2, help="timed steps for --probe (after 1 warm-up)")
    args = ap.parse_args()
    if args.threads:
        set_thread_env(args.threads)
    server = Server(args.backend, args.threads)
    if args.probe:
        print(json.dumps(probe_memory(server, json.loads(args.probe), args.steps)))
    else:
        serve(server)


if __name__ == "__main__":
    main()
