"""A tiny finished run of examples/train_cifar10.py, for the report tests: 600 real
CIFAR-10 training images, one epoch of airbench with widths (4, 8, 8), traces every
2 steps. ``real_data_dir()`` (conftest) says where the data is; None: tests skip."""
import importlib.util

from conftest import ROOT, real_data_dir


def make_tiny_run(out, trace_every=2):
    """Train the tiny run into ``out`` (a path that does not exist yet); returns ``out``."""
    spec = importlib.util.spec_from_file_location("train_cifar10",
                                                  ROOT / "examples" / "train_cifar10.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = ["--data-dir", str(real_data_dir()), "--limit-train", "600", "--val-size", "100",
            "--epochs", "1", "--widths", "4", "8", "8", "--batch-size", "100", "--tta", "0",
            "--out", str(out), "--no-progress"]
    if trace_every:
        args += ["--trace-every", str(trace_every)]
    script.main(args)
    return out
