"""The main job under MPI: ``mpiexec -n 2 python examples/train_cifar10.py --distributed``,
on 600 real CIFAR-10 images (skipped without the data or without MPI)."""
import json
import subprocess
import sys

import pytest
from conftest import ROOT, real_data_dir
from test_distributed import TIMEOUT, clean_env, mpiexec, needs_mpi

SCRIPT = str(ROOT / "examples" / "train_cifar10.py")

pytestmark = [needs_mpi, pytest.mark.skipif(real_data_dir() is None,
                                            reason="the CIFAR-10 data is not here")]


def tiny(out, data_dir=None):
    return ["--distributed", "--data-dir", str(data_dir or real_data_dir()), "--limit-train",
            "600", "--val-size", "100", "--epochs", "1", "--widths", "4", "8", "8",
            "--batch-size", "100", "--tta", "0", "--out", str(out), "--no-progress"]


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=clean_env(),
                          cwd=ROOT)


def on_ranks(n, args):
    return run([mpiexec(), "-n", str(n), sys.executable, SCRIPT, *args])


def test_two_ranks_train_and_only_rank_0_speaks_and_writes(tmp_path):
    out = tmp_path / "run"
    proc = on_ranks(2, tiny(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("config:") == 1 and proc.stdout.count("epoch 1/1") == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and 0.0 <= metrics["test_accuracy"] <= 1.0
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    # resuming on another number of ranks is refused, saying why and how
    alone = run([sys.executable, SCRIPT, "--resume", str(out), "--no-progress"])
    assert alone.returncode == 1
    assert "trained on 2 rank(s), this job has 1" in alone.stderr
    assert "mpiexec -n 2" in alone.stderr
    # on the same number it continues (here: nothing left to train)
    again = on_ranks(2, ["--distributed", "--resume", str(out), "--no-progress"])
    assert again.returncode == 0, again.stderr


def test_launched_by_mpiexec_without_distributed_is_refused_once(tmp_path):
    args = [a for a in tiny(tmp_path / "run") if a != "--distributed"]
    proc = on_ranks(2, args)
    assert proc.returncode != 0
    assert proc.stderr.count("without --distributed") == 1
    assert not (tmp_path / "run").exists()


def test_a_batch_the_ranks_cannot_split_is_refused_before_training(tmp_path):
    args = tiny(tmp_path / "run")
    args[args.index("--batch-size") + 1] = "101"
    proc = on_ranks(2, args)
    assert proc.returncode == 2
    assert proc.stderr.count("--batch-size 101 cannot be split evenly over 2 ranks") == 1
    assert "every rank:" in proc.stderr
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_a_rank_that_cannot_see_the_data_is_named(tmp_path):
    missing = tmp_path / "not-here"
    proc = run([mpiexec(), "-n", "1", sys.executable, SCRIPT, *tiny(tmp_path / "run"), ":",
                "-n", "1", sys.executable, SCRIPT, *tiny(tmp_path / "run", data_dir=missing)])
    assert proc.returncode == 2
    assert f"rank 1: " in proc.stderr and f"--data-dir {missing}: no such file" in proc.stderr
    assert "rank 0:" not in proc.stderr
