"""Fuzzing the config.json a resumed run reads (hypothesis, seeded and bounded): damaged
bytes, wrong JSON types and out-of-range values each end in one line naming the file and
the setting (SystemExit with a message, or a flag error) — never a traceback, never a
config that would fail later in the run."""
import json
import os

import pytest
from helpers import load_example

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

EXAMPLES = int(os.environ.get("MINICNN_FUZZ_EXAMPLES", "60"))
FUZZ = settings(derandomize=True, max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
CASES = {"run": 0}


@pytest.fixture(scope="module")
def script():
    return load_example()


def good_config(script):
    return dict(script.PRESETS["default"], preset="default", seed=0, data_dir=None,
                limit_train=None, patience=None, trace_every=None, sync_bn=False,
                checkpoint_every=50, lr=0.75)


def resume(script, run_dir):
    """What --resume reads, up to the config: returns the config or the one-line error."""
    args = script.parse_args(["--resume", str(run_dir)], raise_errors=True)
    try:
        return script.make_config(args)[0]
    except SystemExit as e:
        assert isinstance(e.code, str), "a refusal must say why"
        return e.code
    except script.FlagError as e:
        return str(e)


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes(script, tmp_path_factory, data):
    run_dir = tmp_path_factory.mktemp("bytes")
    (run_dir / "config.json").write_bytes(data)
    CASES["run"] += 1
    out = resume(script, run_dir)
    assert isinstance(out, str) and str(run_dir / "config.json") in out


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                   st.lists(st.integers(-5, 300), max_size=4))


@FUZZ
@given(key=st.sampled_from(["epochs", "batch_size", "lr", "seed", "val_size", "translate",
                            "label_smoothing", "bn_lr_scale", "model", "flip", "tta",
                            "optimizer", "widths", "limit_train", "patience", "whiten",
                            "checkpoint_every", "trace_every"]), value=VALUES)
def test_one_setting_damaged(script, tmp_path_factory, key, value):
    run_dir = tmp_path_factory.mktemp("value")
    config = good_config(script)
    config[key] = value
    (run_dir / "config.json").write_text(json.dumps(config))
    CASES["run"] += 1
    out = resume(script, run_dir)
    if isinstance(out, str):                                    # refused: names what and where
        assert key in out and str(run_dir / "config.json") in out
    else:                                                       # accepted: it really is valid
        script.check_saved_config(out, run_dir / "config.json")
        assert out[key] == value


def test_the_fuzzing_ran(script):
    assert CASES["run"] >= 2 * EXAMPLES
    print(f"config.json fuzz cases: {CASES['run']}")
