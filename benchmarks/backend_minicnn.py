"""What the minicnn worker times: numpy SGEMM, one Conv2D, one network step.

``make(task)`` returns a Subject whose ``run_once()`` does one repetition and
returns the seconds it took (untimed preparation, such as the forward pass a
backward timing needs, happens inside ``run_once`` but outside the timer).

Tasks (dicts):
    {"kind": "sgemm", "M", "K", "N"}                  C (M, N) = A (M, K) @ B (K, N), float32
    {"kind": "layer", "N", "H", "W", "C", "F", "k", "padding", "bias", "pass"}
        pass "forward":  y = conv.forward(x, training=True)        x (N, H, W, C)
        pass "backward": conv.backward(dy) after an untimed forward; computes dx AND dW (and db)
    {"kind": "network", "name", "widths"?, "N", "mode", "retain"?}
        mode "train": forward + softmax_cross_entropy + backward + SGD step
                      (minicnn.optim.SGD without momentum: p -= lr * g, one pass per param)
                      (retain: backward(dy, retain=True), every saved input kept)
        mode "infer": model.predict(x, batch_size=N)   (one forward, eval mode)
"""
import os
import sys
import time

import numpy as np

from subject import Subject

LR = 1e-3




def init(threads):
    import minicnn
    minicnn.tune_process()             # before numba starts its OpenMP threads (fast/process.py)
    import numba
    if threads:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


def info():
    import numba
    out = {"python": sys.version.split()[0], "numpy": np.__version__, "numba": numba.__version__,
           "numba_threads": numba.get_num_threads()}
    try:
        out["numba_threading_layer"] = numba.threading_layer()
    except ValueError:
        out["numba_threading_layer"] = "not initialised yet"
    try:
        import minicnn
        out["minicnn"] = getattr(minicnn, "__version__", "?")
        out["minicnn_path"] = os.path.dirname(minicnn.__file__)
        from minicnn.fast.vectors import vector_unit
        unit = vector_unit()
        out["vector_unit"] = (f"{unit.name} tiles (forward {unit.forward_tile[0]}x"
                              f"{unit.forward_tile[1]}, dW {unit.grad_tile[0]}x{unit.grad_tile[1]})")
    except Exception as e:                         # the library may be mid-edit
        out["minicnn"] = f"import failed: {e}"
    try:
        from threadpoolctl import threadpool_info
        out["blas"] = [{k: d.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
                       for d in threadpool_info() if d.get("user_api") == "blas"]
    except ImportError:
        out["blas"] = "threadpoolctl not installed"
    return out


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def make(task):
    kind = task["kind"]
    rng = np.random.default_rng(0)
    if kind == "sgemm":
        M, K, N = task["M"], task["K"], task["N"]
        A = rng.standard_normal((M, K), dtype=np.float32)
        B = rng.standard_normal((K, N), dtype=np.float32)
        C = np.empty((M, N), dtype=np.float32)
        return Subject(lambda: timed(lambda: np.matmul(A, B, out=C)), {"flops": 2 * M * K * N})

    if kind == "layer":
        from minicnn.nn import Conv2D
        conv = Conv2D(task["C"], task["F"], task["k"], stride=1, padding=task["padding"],
                      bias=task["bias"], rng=0)
        N = task["N"]
        x = rng.standard_normal((N, task["H"], task["W"], task["C"]), dtype=np.float32)  # (N, H, W, C)
        y = conv.forward(x, training=True)                                                 # (N, OH, OW, F)
        dy = rng.standard_normal(y.shape, dtype=np.float32)
        meta = {"out_shape": list(y.shape), "flops_forward": N * conv.flops(x.shape[1:])}
        if task["pass"] == "forward":
            return Subject(lambda: timed(lambda: conv.forward(x, training=True)), meta)

        def backward_once():
            conv.forward(x, training=True)         # untimed: restores what backward needs
            return timed(lambda: conv.backward(dy))
        return Subject(backward_once, meta)

    if kind == "network":
        from minicnn import zoo
        from minicnn.nn import softmax_cross_entropy
        kwargs = {"widths": tuple(task["widths"])} if task.get("widths") else {}
        model = zoo.MODELS[task["name"]](**kwargs)
        N = task["N"]
        x = rng.standard_normal((N, 32, 32, 3), dtype=np.float32)    # (N, H, W, C)
        labels = rng.integers(0, 10, N)
        meta = {"flops_per_image": int(model.flops((32, 32, 3))),
                "params": int(model.num_params())}
        if task["mode"] == "train":
            retain = bool(task.get("retain", False))
            from minicnn.optim import SGD
            optimizer = SGD(model.named_parameters(), lr=LR)

            def step():
                logits = model.forward(x, training=True)                    # (N, 10)
                _, dlogits = softmax_cross_entropy(logits, labels)
                model.backward(dlogits, retain=retain)
                optimizer.step()
            return Subject(lambda: timed(step), meta)
        return Subject(lambda: timed(lambda: model.predict(x, batch_size=N)), meta)

    raise ValueError(f"backend_minicnn: unknown task kind {kind!r} in {task!r}")
