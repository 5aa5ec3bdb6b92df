"""examples/backprop_walkthrough.py: it runs, every gradient it prints agrees with both
oracles, the Swish layer passes its check, and its cmp() tells a wrong gradient from a
right one."""
import importlib.util
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from minicnn.gradcheck import numerical_gradient

SCRIPT = ROOT / "examples" / "backprop_walkthrough.py"
CMP_LINE = re.compile(r"^  (?P<name>\S+) vs (?P<oracle>numerical|reference)\s+\([\d, ]*\)\s+"
                      r"\| exact: (?P<exact>True|False)\s+"
                      r"\| approximate: (?P<approximate>True|False)\s+"
                      r"\| maxdiff: (?P<maxdiff>\S+)$")
# every gradient of the net; the loss has one implementation, so no reference line
EXPECTED = ({("dlogits", "numerical")}
            | {(f"{layer}.d{t}", oracle) for layer, tensors in
               [("Dense", "xWb"), ("Flatten", "x"), ("ReLU", "x"), ("MaxPool2D", "x"),
                ("Conv2D", "xWb")]
               for t in tensors for oracle in ("numerical", "reference")})


def load_walkthrough():
    """The script as a module (its main block does not run on import)."""
    spec = importlib.util.spec_from_file_location("backprop_walkthrough", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run():
    return subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def cmp_lines(stdout):
    return [line for line in stdout.splitlines() if "| exact:" in line]


def test_runs_to_the_end(run):
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr


def test_every_gradient_agrees_with_both_oracles(run):
    lines = cmp_lines(run.stdout)
    matches = [CMP_LINE.match(line) for line in lines]
    assert all(matches), [line for line, m in zip(lines, matches) if m is None]
    assert {(m["name"], m["oracle"]) for m in matches} == EXPECTED
    for m in matches:
        assert m["approximate"] == "True", m.string
        assert float(m["maxdiff"]) < 1e-6, m.string


def test_prints_shapes_and_formulas(run):
    out = run.stdout
    for shapes in ["(4, 8, 8, 3)   -> (4, 8, 8, 8)", "(4, 4, 4, 8)   -> (4, 128)",
                   "(4, 128)       -> (4, 10)", "dy (4, 8, 8, 8) -> dx (4, 8, 8, 3)"]:
        assert shapes in out
    for formula in ["(softmax(logits) - onehot(labels)) / N", "dx = dy @ W.T", "dx = dy * [x > 0]",
                    "winner of each 2x2 window", "full convolution of dy, flipped kernel"]:
        assert formula in out


def test_swish_passes_its_check_and_the_broken_one_fails(run):
    out = run.stdout
    assert re.search(r"check_layer\(Swish\(\)\): relative error of dx \S+  PASS", out)
    assert re.search(r"check_layer\(SwishWithoutProductRule\(\)\): relative error of dx \S+  FAIL",
                     out)


def test_cmp_tells_a_wrong_gradient_from_a_right_one(capsys):
    walkthrough = load_walkthrough()
    g = np.random.default_rng(0).standard_normal((4, 10))
    assert walkthrough.cmp("same", g, g.copy()) == (True, True, 0.0)
    exact, approximate, _ = walkthrough.cmp("float32", g.astype(np.float32), g)
    assert (exact, approximate) == (False, True)
    wrong = g.copy()
    wrong[1, 2] += 1e-2
    exact, approximate, maxdiff = walkthrough.cmp("wrong", wrong, g)
    assert (exact, approximate) == (False, False) and maxdiff == pytest.approx(1e-2)
    assert walkthrough.cmp("shape", g, g.T)[:2] == (False, False)
    assert "| exact: False | approximate: False | maxdiff: 1.0e-02" in capsys.readouterr().out


def test_cmp_reports_a_broken_backward_as_not_approximate():
    walkthrough = load_walkthrough()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 3, 4))
    dy = rng.standard_normal(x.shape)

    def backward_vs_numerical(layer):
        loss = lambda: float(np.sum(layer.forward(x) * dy))      # noqa: E731
        numeric = numerical_gradient(loss, x)
        layer.forward(x)
        return walkthrough.cmp(type(layer).__name__, layer.backward(dy), numeric)

    assert backward_vs_numerical(walkthrough.Swish())[1] is True
    assert backward_vs_numerical(walkthrough.SwishWithoutProductRule())[1] is False
