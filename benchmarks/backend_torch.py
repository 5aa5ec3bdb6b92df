"""What the PyTorch worker times: the same tasks as backend_minicnn.py, in PyTorch.

PyTorch is a yardstick, never a dependency of minicnn: this module runs only
under a separate interpreter that has torch (see run_all.py for the setup).

Every task may carry ``"layout"``: "nchw" (contiguous NCHW tensors) or
"channels_last" (NCHW shape, NHWC memory: ``torch.channels_last``, the layout
minicnn uses). Architectures mirror minicnn.zoo:

simple:   Conv(3,32,3,p1) ReLU Conv(32,32) ReLU MaxPool2 Conv(32,64) ReLU Conv(64,64) ReLU
          MaxPool2 Flatten Linear(4096,512) ReLU Linear(512,10)
airbench: airbench94's layout: Conv2d(3,24,2) (weight frozen, bias trained) GELU;
          3 groups [Conv3x3 p1 no bias, MaxPool2d(2), BatchNorm2d (weight frozen), GELU,
          Conv3x3, BN, GELU]; MaxPool2d(3), Flatten, Linear(w3,10,bias=False), x 1/9.

A training step is forward + F.cross_entropy + backward + ``p -= lr * p.grad``
(a plain loop, like minicnn's); inference is ``model.eval()`` under
``torch.inference_mode()``. Layer passes: "forward" runs with autograd recording
(a training forward); "backward" times ``y.backward(dy)`` after an untimed
forward, computing grads for the input, weight and bias.

A network task may also carry ``"compile": True``: the same step under
``torch.compile`` (default mode, ``dynamic=False``). For training the whole step
function is compiled: TorchDynamo breaks the graph at ``loss.backward()``, so
forward + loss become one compiled graph (whose backward AOTAutograd compiles
too) and the SGD loop a second one; for inference the model is compiled. Every
task builds a fresh model and compiles it for that one batch size and mode
(TorchDynamo's caches are reset first, so earlier tasks cannot use up its
recompilation limit); ``make`` then runs the step until a call compiles nothing
new, so compilation is never timed, and a timed run that compiles anything
raises. If compiling fails (no C++ compiler, an unsupported platform) the
subject is reported as skipped with the reason.
"""
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from subject import Subject, Unavailable

LR = 1e-3
MAX_COMPILE_CALLS = 5      # calls of a compiled step allowed before it must stop compiling


def init(threads):
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)


def info():
    cfg = torch.__config__.show()
    items = [i.strip() for i in cfg.replace("Build settings:", ",").replace("\n", ",").split(",")]
    keep = [i.lstrip("- ") for i in items
            if i.startswith(("BLAS_INFO=", "USE_MKLDNN=", "USE_OPENMP=", "- CPU capability"))]
    return {"python": sys.version.split()[0], "torch": torch.__version__, "numpy": np.__version__,
            "torch_threads": torch.get_num_threads(),
            "torch_interop_threads": torch.get_num_interop_threads(),
            "mkldnn": torch.backends.mkldnn.is_available(), "config": keep}


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def graphs_compiled():
    """How many graphs TorchDynamo has compiled in this process so far."""
    from torch._dynamo.utils import counters
    return counters["stats"]["unique_graphs"]


def compiled_subject(fn, meta):
    """A Subject for ``fn``, a function that calls torch.compile'd code.

    Runs ``fn`` until a call compiles no new graph (the first call compiles; at most
    MAX_COMPILE_CALLS calls), so that no timed run pays for compilation; adds to
    ``meta`` the seconds those calls took ("compile_s", compilation included), the
    number of graphs compiled and the number of calls. Raises Unavailable if
    compiling fails, RuntimeError if ``fn`` is still compiling after those calls.
    Each timed run checks that it compiled nothing."""
    start, t0 = graphs_compiled(), time.perf_counter()
    steady = False
    try:
        for calls in range(1, MAX_COMPILE_CALLS + 1):
            before = graphs_compiled()
            fn()
            steady = calls > 1 and graphs_compiled() == before
            if steady:
                break
    except Exception as e:                        # the compiler toolchain is missing or broken
        lines = [line for line in str(e).strip().splitlines() if line.strip()]
        reason = f"torch.compile failed: {type(e).__name__}: {lines[0] if lines else ''}"
        raise Unavailable(reason[:500]) from e
    if not steady:
        raise RuntimeError(f"backend_torch: torch.compile still compiled new graphs after "
                           f"{MAX_COMPILE_CALLS} calls")
    meta = {**meta, "compile_s": time.perf_counter() - t0, "graphs": graphs_compiled() - start,
            "calls_to_steady": calls}
    graphs_after_warmup = graphs_compiled()

    def run_once():
        seconds = timed(fn)
        if graphs_compiled() != graphs_after_warmup:
            raise RuntimeError("backend_torch: torch.compile compiled a new graph during a timed run")
        return seconds
    return Subject(run_once, meta)


class Scale(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, x):
        return x * self.s


def simple(num_classes=10):
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 8 * 64, 512), nn.ReLU(), nn.Linear(512, num_classes))


def airbench(widths=(64, 256, 256), num_classes=10):
    def bn(c):
        b = nn.BatchNorm2d(c, momentum=0.4, eps=1e-12)    # torch momentum = 1 - airbench's 0.6
        b.weight.requires_grad_(False)
        return b

    def group(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2), bn(c_out), nn.GELU(),
                nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), bn(c_out), nn.GELU()]

    whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)
    whiten.weight.requires_grad_(False)
    w1, w2, w3 = widths
    layers = [whiten, nn.GELU()] + group(24, w1) + group(w1, w2) + group(w2, w3)
    layers += [nn.MaxPool2d(3), nn.Flatten(), nn.Linear(w3, num_classes, bias=False), Scale(1 / 9)]
    return nn.Sequential(*layers)


MODELS = {"simple": simple, "airbench": airbench}


def memory_format(task):
    layout = task.get("layout", "nchw")
    if layout not in ("nchw", "channels_last"):
        raise ValueError(f"backend_torch: layout must be 'nchw' or 'channels_last', got {layout!r}")
    return torch.channels_last if layout == "channels_last" else torch.contiguous_format


def make(task):
    kind = task["kind"]
    if kind == "sgemm":
        M, K, N = task["M"], task["K"], task["N"]
        A, B, C = torch.randn(M, K), torch.randn(K, N), torch.empty(M, N)
        return Subject(lambda: timed(lambda: torch.mm(A, B, out=C)), {"flops": 2 * M * K * N})

    fmt = memory_format(task)
    if kind == "layer":
        conv = nn.Conv2d(task["C"], task["F"], task["k"], stride=1, padding=task["padding"],
                         bias=task["bias"]).to(memory_format=fmt)
        x = torch.randn(task["N"], task["C"], task["H"], task["W"]).to(memory_format=fmt)
        x.requires_grad_(True)
        with torch.no_grad():
            dy = torch.randn_like(conv(x))              # same shape and memory format as y
        meta = {"out_shape": list(dy.shape)}
        if task["pass"] == "forward":
            return Subject(lambda: timed(lambda: conv(x)), meta)

        def backward_once():
            y = conv(x)                                 # untimed
            x.grad = None
            for p in conv.parameters():
                p.grad = None
            return timed(lambda: y.backward(dy))
        return Subject(backward_once, meta)

    if kind == "network":
        compiled = bool(task.get("compile"))
        if compiled:
            torch._dynamo.reset()
        kwargs = {"widths": tuple(task["widths"])} if task.get("widths") else {}
        model = MODELS[task["name"]](**kwargs).to(memory_format=fmt)
        N = task["N"]
        x = torch.randn(N, 3, 32, 32).to(memory_format=fmt)
        labels = torch.randint(0, 10, (N,))
        meta = {"params": sum(p.numel() for p in model.parameters())}
        if task["mode"] == "train":
            model.train()
            params = [p for p in model.parameters() if p.requires_grad]

            def step():
                loss = F.cross_entropy(model(x), labels)
                loss.backward()
                with torch.no_grad():
                    for p in params:
                        p.add_(p.grad, alpha=-LR)
                        p.grad = None
            if compiled:
                return compiled_subject(torch.compile(step, dynamic=False), meta)
            return Subject(lambda: timed(step), meta)

        model.eval()
        net = torch.compile(model, dynamic=False) if compiled else model

        def infer():
            with torch.inference_mode():
                net(x)
        return compiled_subject(infer, meta) if compiled else Subject(lambda: timed(infer), meta)

    raise ValueError(f"backend_torch: unknown task kind {kind!r} in {task!r}")
