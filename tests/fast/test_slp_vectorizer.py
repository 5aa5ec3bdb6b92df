"""The one setting made at import (minicnn/fast/__init__.py): numba's SLP vectorizer,
switched on unless the user chose, with a warning when numba was imported first."""
import os
import subprocess
import sys

from minicnn.fast.kernels.direct import slp_vectorizer_on


def test_slp_vectorizer_switched_on_by_import():
    code = "import minicnn, numba; print(numba.config.SLP_VECTORIZE)"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_SLP_VECTORIZE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env)
    assert out.stdout.strip() == "1"
    assert slp_vectorizer_on()


def test_user_setting_of_slp_vectorizer_wins():
    code = "import minicnn, numba; print(numba.config.SLP_VECTORIZE)"
    env = {**os.environ, "NUMBA_SLP_VECTORIZE": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env)
    assert out.stdout.strip() == "0"


def test_numba_imported_first_is_a_warning_not_a_silent_slowdown():
    code = "import numba, warnings; warnings.simplefilter('always'); import minicnn"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "NUMBA_SLP_VECTORIZE"})
    assert out.returncode == 0 and "NUMBA_SLP_VECTORIZE" in out.stderr
