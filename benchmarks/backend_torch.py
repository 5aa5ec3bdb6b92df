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
"""
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from subject import Subject

LR = 1e-3




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
            return Subject(lambda: timed(step), meta)

        model.eval()

        def infer():
            with torch.inference_mode():
                model(x)
        return Subject(lambda: timed(infer), meta)

    raise ValueError(f"backend_torch: unknown task kind {kind!r} in {task!r}")
