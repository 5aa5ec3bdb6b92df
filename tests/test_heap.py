"""minicnn.heap: glibc keeps freed memory for reuse (fewer page faults), unless switched off."""
import os
import platform
import subprocess
import sys

import pytest

PROBE = """
import resource, numpy as np, minicnn, minicnn.heap as heap
a = np.ones(16 << 20, np.float32); del a                # 64 MB, freed
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = np.ones(16 << 20, np.float32)                       # again: reused, or fresh pages?
print(heap.applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
"""


def probe(**env):
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    applied, faults = out.stdout.split()
    return applied == "True", int(faults)


GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="glibc malloc settings")
def test_freed_memory_is_reused_without_page_faults():
    applied, faults = probe()
    assert applied
    assert faults < 100                  # a 64 MB array has 16,384 pages of 4 KiB


@pytest.mark.skipif(not GLIBC, reason="glibc malloc settings")
def test_heap_setting_can_be_switched_off_and_user_settings_win():
    applied, faults = probe(MINICNN_KEEP_HEAP="0")
    assert not applied and faults > 100     # fresh pages (fewer than 16,384 with huge pages)
    assert not probe(MALLOC_TRIM_THRESHOLD_="131072")[0]
