"""The main job's promises about resuming, diverging and missing data, run as a user would
(subprocesses, 100-600 real CIFAR-10 images; skipped without the data)."""
import json
import subprocess
import sys

import pytest
from conftest import ROOT, real_data_dir

SCRIPT = str(ROOT / "examples" / "train_cifar10.py")
pytestmark = pytest.mark.skipif(real_data_dir() is None, reason="the CIFAR-10 data is not here")


def run(*args):
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True,
                          text=True, timeout=600, cwd=ROOT)


def tiny(out, *extra):
    return ["--data-dir", real_data_dir(), "--limit-train", "300", "--val-size", "100",
            "--epochs", "1", "--widths", "4", "8", "8", "--batch-size", "100", "--tta", "0",
            "--out", out, "--no-progress", *extra]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "run"
    proc = run(*tiny(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_resume_refuses_to_change_what_the_run_is(finished_run):
    proc = run("--resume", finished_run, "--batch-size", "50")
    assert proc.returncode == 2
    assert "--batch-size 50: cannot change when resuming" in proc.stderr
    assert "uses 100" in proc.stderr and "--epochs" in proc.stderr      # what may change
    assert "Traceback" not in proc.stderr


def test_resume_extends_a_finished_run_and_counts_all_its_time(finished_run, tmp_path):
    import shutil
    run_dir = tmp_path / "extended"
    shutil.copytree(finished_run, run_dir)
    again = run("--resume", run_dir, "--no-progress")
    assert again.returncode == 0, again.stderr
    assert "nothing left to train" in again.stdout
    proc = run("--resume", run_dir, "--epochs", "2", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "epoch 2/2" in proc.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2
    assert metrics["total_seconds"] >= metrics["train_seconds"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["epochs"] == 2 and config["changed_on_resume"] == [{"epochs": 2}]


def test_a_corrupt_config_is_named(finished_run, tmp_path):
    import shutil
    run_dir = tmp_path / "corrupt"
    shutil.copytree(finished_run, run_dir)
    (run_dir / "config.json").write_text('{"epochs": 1, "batch_si')
    proc = run("--resume", run_dir)
    assert proc.returncode == 1
    assert f"{run_dir / 'config.json'} is not valid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_diverging_run_stops_with_a_non_zero_exit_and_a_way_out(tmp_path):
    out = tmp_path / "diverged"
    args = tiny(out, "--lr", "1e6", "--epochs", "4")
    args[args.index("--val-size") + 1] = "0"
    args[args.index("--limit-train") + 1] = "100"             # one step an epoch
    proc = run(*args)
    assert proc.returncode == 1
    assert "training diverged at epoch" in proc.stderr and "learning rates" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (out / "metrics.json").exists() and not (out / "model.npz").exists()
    if (out / "checkpoint.npz").exists():
        assert f"--resume {out} --lr 1e+05" in proc.stderr


def test_missing_data_is_one_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run(*tiny(tmp_path / "run"), "--data-dir", empty)
    assert proc.returncode == 1
    assert "CIFAR-10" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "checkpoint.npz").exists()
