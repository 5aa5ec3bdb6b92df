"""minicnn.tune_process() (fast/process.py): the process-wide settings training wants, made
only when asked -- OpenMP's idle threads sleep, and glibc keeps freed memory for reuse.

What each setting is worth (page faults per step, idle CPU time) is measured by
benchmarks/bench_heap.py and benchmarks/bench_omp_wait.py, not here; these tests check
what is set, when, and that the user's choices win. Each runs in a fresh process."""
import os
import platform
import subprocess
import sys

import pytest

from minicnn.fast import process

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MALLOC_MMAP_THRESHOLD_",
            "MALLOC_TRIM_THRESHOLD_", "MINICNN_KEEP_HEAP")

# Records every symbol looked up in a C library through ctypes (mallopt among them).
SPY_CTYPES = """
import ctypes
looked_up = []
_real_getattr = ctypes.CDLL.__getattr__
def _spy(self, name):
    looked_up.append(name)
    return _real_getattr(self, name)
ctypes.CDLL.__getattr__ = _spy
"""


def run(code, **env):
    """stdout lines of ``code`` in a fresh python, with none of SETTINGS set but ``env``."""
    full = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True,
                         check=True)
    return out.stdout.split("\n")[:-1]


def test_import_changes_no_process_setting():
    """``import minicnn`` leaves OMP_WAIT_POLICY unset and glibc's thresholds alone."""
    code = SPY_CTYPES + ("import os, minicnn, minicnn.fast.process as p\n"
                         "print(os.environ.get('OMP_WAIT_POLICY'))\n"
                         "print(p.heap_kept)\n"
                         "print('mallopt' in looked_up)\n")
    assert run(code) == ["None", "False", "False"]


@pytest.mark.parametrize("user,expected,changed", [
    ({}, "PASSIVE", "True"),
    ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE", "False"),
    ({"GOMP_SPINCOUNT": "1000"}, "None", "False")])
def test_idle_openmp_threads_sleep_unless_the_user_chose(user, expected, changed):
    code = ("import os, minicnn\n"
            "done = minicnn.tune_process()\n"
            "print(os.environ.get('OMP_WAIT_POLICY'))\n"
            "print(done['openmp_passive'])\n")
    assert run(code, **user) == [expected, changed]


def test_tune_process_after_numba_started_openmp_warns():
    code = ("import numba; numba.config.THREADING_LAYER = 'omp'\n"
            "try:\n    numba.set_num_threads(1)\nexcept Exception:\n"
            "    print('no-omp'); raise SystemExit\n"
            "import os, warnings; warnings.simplefilter('error')\n"
            "import minicnn\n"                               # importing is silent ...
            "print('imported', os.environ.get('OMP_WAIT_POLICY'))\n"
            "try:\n    minicnn.tune_process()\nexcept RuntimeWarning as w:\n"
            "    print('warned:', w)\n")                      # ... tune_process is too late
    out = run(code, NUMBA_SLP_VECTORIZE="1")
    if out == ["no-omp"]:
        pytest.skip("numba's OpenMP threading layer is not available here")
    assert out[0] == "imported None"
    assert out[1].startswith("warned:") and "OMP_WAIT_POLICY=PASSIVE" in out[1]


@pytest.mark.skipif(not GLIBC, reason="glibc malloc settings")
def test_tune_process_keeps_freed_memory_once():
    code = SPY_CTYPES + ("import minicnn, minicnn.fast.process as p\n"
                         "print(minicnn.tune_process()['heap_kept'], p.heap_kept)\n"
                         "print('mallopt' in looked_up)\n"
                         "print(minicnn.tune_process())\n")           # once per process
    assert run(code) == ["True True", "True", "{'openmp_passive': False, 'heap_kept': False}"]


@pytest.mark.skipif(not GLIBC, reason="glibc malloc settings")
@pytest.mark.parametrize("env", [{"MINICNN_KEEP_HEAP": "0"},
                                 {"MALLOC_TRIM_THRESHOLD_": "131072"},
                                 {"MALLOC_MMAP_THRESHOLD_": "131072"}])
def test_heap_setting_can_be_switched_off_and_user_settings_win(env):
    code = SPY_CTYPES + ("import minicnn, minicnn.fast.process as p\n"
                         "print(minicnn.tune_process()['heap_kept'], p.heap_kept)\n"
                         "print('mallopt' in looked_up)\n")
    assert run(code, **env) == ["False False", "False"]


@pytest.mark.parametrize("name,value", [("MINICNN_KEEP_HEAP", "0"),
                                        ("MALLOC_TRIM_THRESHOLD_", "131072"),
                                        ("MALLOC_MMAP_THRESHOLD_", "131072")])
def test_keep_freed_memory_returns_false_when_switched_off(monkeypatch, name, value):
    """Checked in this process too: these return before mallopt is looked up."""
    monkeypatch.setenv(name, value)
    assert process.keep_freed_memory() is False
