"""Driver-side helpers shared by the benchmark scripts.

* ``Pool``: the workers (one minicnn worker and, when a torch python is given,
  one PyTorch worker for the eager subjects and one for torch.compile) and
  ``Pool.measure(task)``, which sets a task up on every subject (minicnn, torch
  NCHW, torch channels_last, and for networks torch.compile channels_last),
  warms each up, then times them alternately one repetition at a time (the order
  rotates each round) so every subject sees the same machine load.
* ``worker_env``: the environment of every worker process: thread counts pinned,
  OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed.
* ``summarize``: median, min, max and quartiles of a list of times.
* ``machine_info`` / ``cpu_info``: CPU model, family and model numbers, ISA flags,
  LLVM's name for the CPU, cores, load, thread settings, removed variables.

Timing happens inside the workers (time.perf_counter around the work only);
the JSON round trip to the driver is outside the timed region.
"""
import datetime
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = ROOT / "evidence" / "benchmarks"   # what the scripts write, kept as evidence
sys.path.insert(0, str(BENCH_DIR))

from bench_worker import THREAD_VARS, Server  # noqa: E402

DEFAULT_THREADS = 2
TORCH_LAYOUTS = ("nchw", "channels_last")
LABELS = {"nchw": "torch-nchw", "channels_last": "torch-cl"}
# The PyTorch subjects: label -> extra task fields. The compiled one runs in a worker
# process of its own and only for networks (a single layer compiles to the same
# aten convolution the eager subjects call, so compiling it would only cost time).
TORCH_SUBJECTS = {"torch-nchw": {"layout": "nchw"},
                  "torch-cl": {"layout": "channels_last"},
                  "torch-compile-cl": {"layout": "channels_last", "compile": True}}
COMPILE_LABEL = "torch-compile-cl"
COMPILE_KINDS = ("network",)

# Removed from every worker's environment, for every subject alike. Some machines set
# them for the sake of an old OpenBLAS; they make a current one pick slower kernels.
REMOVED_ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# The CPU flags (/proc/cpuinfo) that decide which kernels the libraries can use.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni")


def log(msg):
    """Progress goes to stderr; stdout is for the tables."""
    print(msg, file=sys.stderr, flush=True)


class WorkerError(RuntimeError):
    pass


# Where workers import minicnn from: the repository, or a snapshot copy (run_all.py).
CODE_ROOT = ROOT


def snapshot_code(dest):
    """Copy minicnn/ (without caches) into ``dest`` and make every later worker import it
    from there, so code edited during a long run cannot change what is measured.
    Returns the sha256 fingerprint of the copied sources."""
    global CODE_ROOT
    shutil.copytree(ROOT / "minicnn", Path(dest) / "minicnn", ignore=shutil.ignore_patterns("__pycache__"))
    CODE_ROOT = Path(dest)
    return source_fingerprint(CODE_ROOT)


def source_fingerprint(root=None):
    """sha256 (first 16 hex digits) over minicnn/**/*.py under ``root``."""
    root = Path(root or CODE_ROOT)
    h = hashlib.sha256()
    for path in sorted((root / "minicnn").rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def worker_env(threads, parent_env=None):
    """The environment of a worker process: the parent's (``parent_env``, default
    os.environ) without REMOVED_ENV_VARS, with thread counts pinned and CODE_ROOT on
    PYTHONPATH so the worker imports that minicnn. The parent's own environment is
    left as it is."""
    env = dict(os.environ if parent_env is None else parent_env)
    for var in REMOVED_ENV_VARS:
        env.pop(var, None)
    for var in THREAD_VARS:
        env[var] = str(threads)
    paths = [str(CODE_ROOT), str(BENCH_DIR)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


class SubprocessWorker:
    """A bench_worker.py process driven over stdin/stdout JSON lines."""

    def __init__(self, backend, python=None, threads=DEFAULT_THREADS):
        self.backend, self.python = backend, python or sys.executable
        self.proc = subprocess.Popen(
            [self.python, str(BENCH_DIR / "bench_worker.py"), "--backend", backend, "--threads", str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=worker_env(threads), text=True, bufsize=1)

    def call(self, **msg):
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = self.proc.stdout.readline()
        if not line:
            raise WorkerError(f"{self.backend} worker ({self.python}) exited with code {self.proc.wait()}")
        reply = json.loads(line)
        if "error" in reply:
            raise WorkerError(f"{self.backend} worker: {reply['error']}")
        return reply

    def close(self):
        if self.proc.poll() is None:
            try:
                self.call(op="quit")
            except (WorkerError, OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class InProcessWorker:
    """The same protocol, served in this process (tests; no thread pinning)."""

    def __init__(self, backend):
        self.backend, self.python = backend, sys.executable
        self.server = Server(backend)

    def call(self, **msg):
        reply = self.server.handle(msg)
        if "error" in reply:
            raise WorkerError(f"{self.backend} (in-process): {reply['error']}")
        return reply

    def close(self):
        self.server.subjects.clear()


def torch_python_ok(path):
    """(True, '') if ``path`` is a python that can import torch, else (False, reason)."""
    if not path:
        return False, "no --torch-python given"
    if not Path(path).exists():
        return False, f"{path} does not exist"
    try:
        out = subprocess.run([path, "-c", "import torch; print(torch.__version__)"],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"{path} could not run: {e}"
    if out.returncode != 0:
        return False, f"{path} cannot import torch: {out.stderr.strip().splitlines()[-1:]}"
    return True, ""


class Pool:
    """The minicnn worker plus, optionally, the torch workers (eager, and torch.compile
    in a process of its own unless ``torch_compile`` is False).

    gap: seconds to sleep before switching to a subject in another process, so
    the previous process's thread pools (OpenBLAS and OpenMP threads spin for a
    while after a call) have gone idle before the next timing starts.
    warm: seconds for which the worker runs the subject untimed right before each
    timed repetition (at least once; every subject, every repetition), so each is
    timed as in a training loop, at full clock on both cores: an idle core slows
    down, and a subject that ran right after another in the same process (PyTorch
    channels_last after NCHW) otherwise started warm where the others started cold
    (bench_worker.warm_up has the figures).
    skipped: {label: reason} for subjects that cannot run on this machine (a worker
    answered "skipped", e.g. torch.compile without a working compiler); they are
    not tried again and their records carry the reason.
    """

    def __init__(self, torch_python=None, threads=DEFAULT_THREADS, inprocess=False, gap=0.2,
                 warm=0.1, torch_compile=True):
        self.threads, self.gap, self.warm, self.log = threads, gap, warm, log
        self.minicnn = InProcessWorker("minicnn") if inprocess else SubprocessWorker("minicnn", None, threads)
        self.torch, self.torch_compile, self.torch_python, self.torch_skipped = None, None, None, None
        self.skipped = {}
        if torch_python:
            ok, why = torch_python_ok(torch_python)
            if ok:
                self.torch = SubprocessWorker("torch", torch_python, threads)
                self.torch_python = str(torch_python)
                if torch_compile:
                    self.torch_compile = SubprocessWorker("torch", torch_python, threads)
                else:
                    self.skipped[COMPILE_LABEL] = "left out on request (--no-compile)"
            else:
                self.torch_skipped = why
                self.log(f"PyTorch comparison skipped: {why}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for w in (self.minicnn, self.torch, self.torch_compile):
            if w is not None:
                w.close()

    def info(self):
        out = {"minicnn_worker": self.minicnn.call(op="info")["info"]}
        if self.torch:
            out["torch_worker"] = self.torch.call(op="info")["info"]
        return out

    def subjects(self, kind):
        """(label, worker, extra task fields) for every backend that runs this kind of task."""
        if kind == "sgemm":
            subs = [("numpy", self.minicnn, {})]
            if self.torch:
                subs.append(("torch", self.torch, {}))
            return subs
        subs = [("minicnn", self.minicnn, {})]
        if self.torch:
            subs += [(label, self.torch, extra) for label, extra in TORCH_SUBJECTS.items()
                     if label != COMPILE_LABEL]
            if kind in COMPILE_KINDS and (self.torch_compile or COMPILE_LABEL in self.skipped):
                subs.append((COMPILE_LABEL, self.torch_compile, TORCH_SUBJECTS[COMPILE_LABEL]))
        return subs

    def measure(self, task, reps, warmup):
        """Time ``task`` on every subject, interleaved.
        Returns {label: {"meta", "times"} or {"error"} or {"skipped"}}."""
        subs = self.subjects(task["kind"])
        out, live = {}, []
        for label, worker, extra in subs:
            if label in self.skipped:
                out[label] = {"skipped": self.skipped[label]}
                continue
            key = f"{label}:{json.dumps(task, sort_keys=True)}"
            try:
                reply = worker.call(op="setup", key=key, task={**task, **extra}, warmup=warmup)
                if "skipped" in reply:
                    self.skipped[label] = reply["skipped"]
                    out[label] = {"skipped": reply["skipped"]}
                    self.log(f"  {label} skipped from now on: {reply['skipped']}")
                    continue
                out[label] = {"meta": reply["meta"], "times": []}
                live.append((label, worker, key))
            except WorkerError as e:
                out[label] = {"error": str(e)}
                self.log(f"  ! {label} failed on {task}: {str(e).strip().splitlines()[-1]}")
        setup_ok, last = list(live), None
        for r in range(reps):
            k = r % len(live) if live else 0
            for label, worker, key in live[k:] + live[:k]:       # rotate who goes first
                if last is not None and last is not worker and self.gap:
                    time.sleep(self.gap)
                try:
                    out[label]["times"] += worker.call(op="time", key=key, n=1,
                                                       warm=self.warm)["times"]
                except WorkerError as e:
                    out[label] = {"error": str(e)}
                last = worker
            live = [s for s in live if "error" not in out[s[0]]]
        for label, worker, key in setup_ok:
            try:
                worker.call(op="drop", key=key)
            except WorkerError:
                pass
        return out


def summarize(times):
    """Median, spread and quartiles of a list of seconds."""
    t = np.asarray(times, dtype=float)
    return {"times_s": [float(v) for v in t], "reps": int(t.size), "median_s": float(np.median(t)),
            "min_s": float(t.min()), "max_s": float(t.max()),
            "q1_s": float(np.percentile(t, 25)), "q3_s": float(np.percentile(t, 75))}


def sgemm_reference(sgemm_records):
    """The machine's SGEMM rate (GFLOP/s): numpy's largest square shape."""
    best = None
    for r in sgemm_records:
        if r.get("backend") == "numpy" and r["M"] == r["K"] == r["N"] and "gflops" in r:
            if best is None or r["M"] > best["M"]:
                best = r
    return best["gflops"] if best else None


def attach_rate(record, flops, ref_gflops):
    """Add gflops (from the median) and its fraction of the reference SGEMM rate."""
    record["flops"] = flops
    if flops and "median_s" in record:
        record["gflops"] = flops / record["median_s"] / 1e9
        if ref_gflops:
            record["sgemm_fraction"] = record["gflops"] / ref_gflops
    return record


def cpuinfo_fields(path="/proc/cpuinfo"):
    """The first processor's "key: value" lines of /proc/cpuinfo ({} if unreadable)."""
    fields = {}
    try:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    break                      # the end of the first processor's block
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_model():
    return cpuinfo_fields().get("model name") or platform.processor() or platform.machine()


def llvm_host_cpu():
    """The CPU name LLVM (and so numba) compiles for, e.g. "znver3" (None without llvmlite)."""
    try:
        import llvmlite.binding as llvm
        return llvm.get_host_cpu_name()
    except Exception:
        return None


def cpu_info(path="/proc/cpuinfo"):
    """CPU model name, vendor, family / model / stepping numbers, the ISA_FLAGS it has
    ({flag: bool}) and the CPU name numba's LLVM targets."""
    fields = cpuinfo_fields(path)
    flags = set(fields.get("flags", "").split())

    def number(key):
        return int(fields[key]) if fields.get(key, "").isdigit() else None
    return {"model_name": fields.get("model name") or platform.processor() or platform.machine(),
            "vendor": fields.get("vendor_id"), "family": number("cpu family"),
            "model": number("model"), "stepping": number("stepping"),
            "isa": {flag: flag in flags for flag in ISA_FLAGS}, "llvm_cpu": llvm_host_cpu()}


def machine_info(threads, environ=None):
    """What the report says about the machine and the run's settings. ``environ``
    (default os.environ) is the parent's environment, for REMOVED_ENV_VARS."""
    environ = os.environ if environ is None else environ
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    info = cpu_info()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": info["model_name"], "cpu_info": info, "cores": os.cpu_count(), "cores_usable": affinity,
        "platform": platform.platform(), "loadavg_start": list(os.getloadavg()),
        "threads": threads, "thread_env": {v: str(threads) for v in THREAD_VARS},
        "worker_env_removed": {"variables": list(REMOVED_ENV_VARS),
                               "parent_had": {v: environ[v] for v in REMOVED_ENV_VARS if v in environ}},
        "command": " ".join(shlex.quote(a) for a in ["python"] + sys.argv),
        "python": sys.executable,
    }


def common_args(ap, quick_help="few reps (smoke test)"):
    ap.add_argument("--torch-python", metavar="PATH",
                    help="a python with torch installed (e.g. /work/torchenv/bin/python); "
                         "skipped cleanly if absent")
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions (default 7, --quick 3)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 2, --quick 1)")
    ap.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="threads for every backend (default 2)")
    ap.add_argument("--gap", type=float, default=0.2,
                    help="seconds to pause when switching between worker processes (default 0.2)")
    ap.add_argument("--warm", type=float, default=0.1,
                    help="seconds of untimed runs (at least one) of the same subject before "
                         "every timed repetition, so each starts at full clock (default 0.1; "
                         "0 = no warm-up runs, the earlier method)")
    ap.add_argument("--json", metavar="PATH", help="also write the records as JSON here")
    return ap


def add_compile_arg(ap):
    """--no-compile, for the scripts that time networks."""
    ap.add_argument("--no-compile", action="store_true",
                    help="leave out the torch.compile subject (networks only; compiling takes "
                         "seconds to a minute per network, batch and step)")
    return ap


def reps_warmup(args):
    reps = args.reps if args.reps is not None else (3 if args.quick else 7)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    return reps, warmup


def write_json(path, obj):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1) + "\n")


def set_up_pass(layer, op):
    """Make a Conv2D's backward compute one pass alone: op "dx" (W frozen) or "dW" (no
    input gradient); "fwd" needs nothing."""
    layer.frozen = {"W"} if op == "dx" else set()
    layer.needs_input_grad = op == "dx"


def time_pass(layer, op, x, dy):
    """Seconds of one pass of ``layer`` ("fwd": forward; "dx", "dW": backward, after an
    untimed forward that keeps x), as set_up_pass prepared it."""
    if op != "fwd":
        layer.forward(x, True)
    t = time.perf_counter()
    layer.forward(x, True) if op == "fwd" else layer.backward(dy)
    return time.perf_counter() - t


def rule_bench_args(doc, shapes=False, argv=None):
    """--batch and --reps of the single-process rule benchmarks (bench_direct, bench_winograd);
    shapes=True adds --shapes C,F,H ... (a layer C->F on H x H maps)."""
    import argparse

    def layer_shape(text):
        try:
            C, F, H = (int(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected C,F,H (three whole numbers), got {text!r}")
        if min(C, F, H) < 1:
            raise argparse.ArgumentTypeError(f"C, F and H must be >= 1, got {text!r}")
        return C, F, H
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--batch", type=int, default=128, help="images per batch (default 128)")
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions (default 5)")
    if shapes:
        ap.add_argument("--shapes", type=layer_shape, nargs="+", metavar="C,F,H",
                        help="only these layers (default: the list in the script)")
    return ap.parse_args(argv)
