"""Crash consistency, proven by killing training: a worker process (fault_worker.py) is
SIGKILLed at chosen points - inside optimizer steps, at epoch ends and starts, and inside
each stage of the checkpoint write (minicnn.checkpoint.WRITE_HOOKS) - then resumed, again
and again. After every kill, whatever checkpoint is on disk loads, and it is no more than
``checkpoint_every`` steps behind the step the process died at; each chain of kills and
resumes ends with weights bit-identical to an uninterrupted run.

MINICNN_FAULT_KILLS sets how many kills (default 22; the long variant: 200).
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minicnn.checkpoint import WRITE_STAGES, load_checkpoint

HERE = Path(__file__).parent
KILLS = int(os.environ.get("MINICNN_FAULT_KILLS", "22"))
STEPS, EPOCHS, STEPS_PER_EPOCH, CHECKPOINT_EVERY = 12, 4, 3, 2    # fault_worker.py's run


def worker(run_dir, point):
    return subprocess.run([sys.executable, str(HERE / "fault_worker.py"), str(run_dir), point],
                          capture_output=True, text=True, timeout=300)


def saved_position(run_dir):
    """(step, epoch) of the checkpoint on disk, (0, 0) without one. It must load."""
    path = run_dir / "checkpoint.npz"
    if not path.exists():
        return 0, 0
    _, meta = load_checkpoint(path)
    return meta["step"], meta["epoch"]


def next_point(i, step, epoch, rng):
    """A kill point reachable from a run resumed at (step, epoch); kinds in rotation."""
    kind = ("step", "write", "epoch_end", "write", "epoch_start")[i % 5]
    if kind == "epoch_start" and epoch + 1 < EPOCHS:
        return f"epoch_start:{epoch + 1}"
    if kind == "epoch_end" and epoch < EPOCHS:
        return f"epoch_end:{epoch + 1}"
    if kind == "write":
        return f"write:{rng.integers(1, 3)}:{WRITE_STAGES[(i // 2) % len(WRITE_STAGES)]}"
    return f"step:{min(STEPS - 1, step + int(rng.integers(0, 3)))}"


def final_weights(run_dir):
    with np.load(run_dir / "final.npz") as f:
        return {k: f[k] for k in f.files}


def test_killed_anywhere_and_resumed_ends_bit_identical(tmp_path):
    straight = tmp_path / "straight"
    straight.mkdir()
    proc = worker(straight, "none")
    assert proc.returncode == 0, proc.stderr
    expected = final_weights(straight)

    rng = np.random.default_rng(0)
    kills, chains, kinds = 0, 0, set()
    while kills < KILLS:
        chain = tmp_path / f"chain{chains}"
        chain.mkdir()
        chains += 1
        for i in range(10 * KILLS):
            step, epoch = saved_position(chain)
            point = next_point(kills + i, step, epoch, rng)
            proc = worker(chain, point)
            if proc.returncode == 0:                 # the point lay beyond the run's end
                break
            assert proc.returncode == -signal.SIGKILL, (point, proc.stderr)
            died = json.loads((chain / "killed.json").read_text())
            saved_step, _ = saved_position(chain)    # loads, whatever the kill left
            assert died["step"] - saved_step <= CHECKPOINT_EVERY, (point, died, saved_step)
            kills += 1
            kinds.add(point.split(":")[0] + (":" + point.split(":")[2] if "write" in point
                                             else ""))
            if kills >= KILLS:
                break
        if not (chain / "final.npz").exists():
            proc = worker(chain, "none")
            assert proc.returncode == 0, proc.stderr
        resumed = final_weights(chain)
        assert resumed.keys() == expected.keys()
        for name in expected:
            np.testing.assert_array_equal(resumed[name], expected[name], err_msg=name)
    print(f"{kills} kills over {chains} chains; kinds: {sorted(kinds)}")
    # every kind of point was hit: steps, epoch ends and starts, each stage of a write
    assert {"step", "epoch_end", "epoch_start"} <= kinds
    assert {f"write:{stage}" for stage in WRITE_STAGES} <= kinds


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import errno
    import minicnn.checkpoint as checkpoint
    sys.path.insert(0, str(HERE))
    from fault_worker import make_trainer
    from minicnn.train import CheckpointWriteError
    trainer = make_trainer(tmp_path)
    trainer.fit(1, log=lambda line: None)
    good = (tmp_path / "checkpoint.npz").read_bytes()

    def disk_full(stage, path):
        if stage == "written":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(checkpoint, "WRITE_HOOKS", [disk_full])
    with pytest.raises(CheckpointWriteError, match=r"could not write the checkpoint .*"
                       r"No space left on device; the previous checkpoint \(step 3\) is "
                       r"untouched"):
        trainer.fit(2, log=lambda line: None)
    assert (tmp_path / "checkpoint.npz").read_bytes() == good
    assert not list(tmp_path.glob(".checkpoint.npz.*.tmp"))       # no half-written file left
