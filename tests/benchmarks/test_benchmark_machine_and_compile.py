"""The benchmark suite's machine record, worker environment, FMA peak kernel and the
torch.compile subject's bookkeeping (skipped subjects, fastest-subject ratio), without torch."""
import math
import os
import sys

import pytest

import minicnn  # noqa: F401  (before numba, which the FMA kernel imports: minicnn sets its flags)
from conftest import ROOT

BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_common  # noqa: E402
import bench_fma_peak  # noqa: E402
from bench_common import (COMPILE_LABEL, ISA_FLAGS, REMOVED_ENV_VARS, Pool, cpu_info,  # noqa: E402
                          machine_info, worker_env)
from bench_worker import THREAD_VARS, Server  # noqa: E402
from report import best_torch, machine_line, network_table, render  # noqa: E402
from subject import Unavailable  # noqa: E402

FAKE_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC 7B13
stepping\t: 1
flags\t\t: fpu sse sse2 avx fma avx2 bmi2

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse sse2 avx fma avx2 bmi2 avx512f
"""


# --- worker environment ------------------------------------------------------------

def test_worker_env_removes_openblas_overrides_and_keeps_the_rest():
    parent = {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "262144", "HOME": "/home/x",
              "MY_SETTING": "kept", "PYTHONPATH": "/elsewhere"}
    env = worker_env(3, parent_env=parent)
    assert "OPENBLAS_CORETYPE" not in env and "OPENBLAS_L2_SIZE" not in env
    assert env["HOME"] == "/home/x" and env["MY_SETTING"] == "kept"
    assert all(env[var] == "3" for var in THREAD_VARS)
    paths = env["PYTHONPATH"].split(os.pathsep)
    assert paths[0] == str(bench_common.CODE_ROOT) and "/elsewhere" in paths
    assert parent["OPENBLAS_CORETYPE"] == "Haswell"                 # the parent's copy untouched


def test_worker_env_leaves_the_parent_process_environment_alone(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "262144")
    env = worker_env(2)
    assert not set(REMOVED_ENV_VARS) & set(env)
    assert os.environ["OPENBLAS_CORETYPE"] == "Haswell" and os.environ["OPENBLAS_L2_SIZE"] == "262144"


def test_machine_info_records_which_removed_variables_the_parent_had():
    meta = machine_info(2, environ={"OPENBLAS_CORETYPE": "Haswell", "PATH": "/bin"})
    removed = meta["worker_env_removed"]
    assert removed["variables"] == ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"]
    assert removed["parent_had"] == {"OPENBLAS_CORETYPE": "Haswell"}
    assert machine_info(2, environ={})["worker_env_removed"]["parent_had"] == {}


# --- machine info ------------------------------------------------------------------

def test_cpu_info_reads_the_first_processor(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(FAKE_CPUINFO)
    info = cpu_info(path)
    assert info["model_name"] == "AMD EPYC 7B13" and info["vendor"] == "AuthenticAMD"
    assert (info["family"], info["model"], info["stepping"]) == (25, 1, 1)
    assert info["isa"] == {"avx2": True, "fma": True, "avx512f": False, "avx512_bf16": False,
                           "avx512_vnni": False}                   # processor 1's avx512f not read


def test_machine_info_has_the_cpu_fields():
    meta = machine_info(2)
    info = meta["cpu_info"]
    assert set(info) >= {"model_name", "vendor", "family", "model", "stepping", "isa", "llvm_cpu"}
    assert info["model_name"] and meta["cpu"] == info["model_name"]
    assert list(info["isa"]) == list(ISA_FLAGS) and all(isinstance(v, bool) for v in info["isa"].values())
    import llvmlite.binding as llvm
    assert info["llvm_cpu"] == llvm.get_host_cpu_name() and info["llvm_cpu"]


# --- FMA peak ----------------------------------------------------------------------

def test_fma_kernel_returns_a_positive_finite_rate():
    rec = bench_fma_peak.measure(8, seconds=0.02, slice_seconds=0.001)
    assert math.isfinite(rec["gflops"]) and rec["gflops"] > 0
    assert rec["gflops"] >= rec["gflops_wall_median"] > 0
    assert rec["slices"] >= 5 and rec["lanes"] == 8 and rec["chains"] == bench_fma_peak.CHAINS
    counts = rec["fma_instructions"]
    assert sum(counts.values()) >= bench_fma_peak.CHAINS         # FMAs were generated at all


def test_fma_register_counts_and_target_features():
    asm = ("\tvfmadd213ps\t%ymm1, %ymm13, %ymm12\n\tvfmadd231ps\t%zmm1, %zmm2, %zmm3\n"
           "\tvfmadd213ss\t%xmm1, %xmm2, %xmm3\n\tvfnmadd213ps\t%ymm1, %ymm2, %ymm3\n\tvmulps %ymm1, %ymm2, %ymm3\n")
    assert bench_fma_peak.fma_register_counts(asm) == {"xmm": 0, "ymm": 2, "zmm": 1}
    features = "+avx2,+fma,+avx512f,+avx512vl,-avx512bf16,+avx10.1-512"
    assert bench_fma_peak.target_features(256, features) == \
        "+avx2,+fma,-avx512f,-avx512vl,-avx512bf16,-avx10.1-512"
    assert bench_fma_peak.target_features(512, features) == features + ",-prefer-256-bit"


def test_fma_peak_skips_512_bits_without_avx512f(monkeypatch):
    monkeypatch.setattr(bench_fma_peak, "cpu_flags", lambda: {"avx2", "fma"})
    rec = bench_fma_peak.run_width(512, 0.01)
    assert rec["skipped"] == "the CPU has no avx512f" and "gflops" not in rec


# --- report: fastest PyTorch subject -------------------------------------------------

def net_record(backend, median_s, **extra):
    rec = {"kind": "network", "backend": backend, "network": "simple", "batch": 128, "mode": "train"}
    if median_s is not None:
        rec.update(median_s=median_s, min_s=median_s, max_s=median_s, img_per_s=128 / median_s)
    rec.update(extra)
    return rec


def test_speed_ratio_is_against_the_compiled_subject_when_it_is_fastest():
    records = [net_record("minicnn", 0.1), net_record("torch-nchw", 0.2), net_record("torch-cl", 0.15),
               net_record(COMPILE_LABEL, 0.05, compile_s=30.0)]
    group = {r["backend"]: r for r in records}
    assert best_torch(group)[0] == COMPILE_LABEL
    row = network_table(records).splitlines()[-1]
    assert row.endswith("| compile CL | 0.50 |"), row
    assert "torch.compile CL img/s" in network_table(records).splitlines()[0]


def test_speed_ratio_ignores_a_skipped_or_failed_compiled_subject():
    skipped = [net_record("minicnn", 0.1), net_record("torch-nchw", 0.2), net_record("torch-cl", 0.15),
               net_record(COMPILE_LABEL, None, skipped="torch.compile failed: no compiler")]
    assert best_torch({r["backend"]: r for r in skipped})[0] == "torch-cl"
    row = network_table(skipped).splitlines()[-1]
    assert "| skipped |" in row and row.endswith("| CL | 1.50 |"), row
    failed = skipped[:3] + [net_record(COMPILE_LABEL, None, error="Traceback ...")]
    assert network_table(failed).splitlines()[-1].endswith("| CL | 1.50 |")
    nothing = [net_record("minicnn", 0.1), net_record(COMPILE_LABEL, None, skipped="no compiler")]
    assert best_torch({r["backend"]: r for r in nothing}) is None
    assert network_table(nothing).splitlines()[-1].endswith("| – | – |")


def test_machine_line_names_cpu_isa_peak_and_removed_variables():
    meta = {"cpu_info": {"model_name": "AMD EPYC", "family": 25, "model": 1, "llvm_cpu": "znver3",
                         "isa": {"avx2": True, "fma": True, "avx512f": False}},
            "fma_peak": {"widths": [{"bits": 256, "register": "ymm", "gflops": 101.4, "asm_ok": True},
                                    {"bits": 512, "register": "zmm", "skipped": "the CPU has no avx512f"}]},
            "threads": 2,
            "worker_env_removed": {"variables": ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"],
                                   "parent_had": {"OPENBLAS_CORETYPE": "Haswell"}}}
    line = machine_line(meta)
    assert line.startswith("Machine: AMD EPYC (family 25 model 1, LLVM znver3); AVX2, FMA; no AVX512F;")
    assert "FMA peak per core 101 GFLOP/s (256-bit), 512-bit: none (the CPU has no avx512f)" in line
    assert "OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE removed" in line and "OPENBLAS_CORETYPE=Haswell" in line
    md = render({"meta": meta})
    assert line in md.splitlines()


# --- skipped subjects through the worker protocol and the pool ----------------------

def test_worker_answers_skipped_when_a_subject_is_unavailable():
    server = Server("minicnn")

    def unavailable(task):
        raise Unavailable("torch.compile failed: no compiler")
    server.backend = type("Backend", (), {"make": staticmethod(unavailable)})
    assert server.handle({"op": "setup", "key": "k", "task": {}, "warmup": 1}) == \
        {"skipped": "torch.compile failed: no compiler"}
    assert "k" not in server.subjects


class FakeTorchWorker:
    """Stands in for a PyTorch worker process: every setup succeeds, or is skipped."""

    def __init__(self, skipped=None):
        self.skipped, self.setups = skipped, 0

    def call(self, op, **msg):
        if op == "setup":
            self.setups += 1
            return {"skipped": self.skipped} if self.skipped else {"meta": {}}
        if op == "time":
            return {"times": [0.001]}
        return {}

    def close(self):
        pass


@pytest.fixture
def pool_with_fake_torch():
    with Pool(torch_python=None, inprocess=True) as pool:
        pool.torch, pool.torch_compile = FakeTorchWorker(), FakeTorchWorker(skipped="no compiler")
        yield pool


def test_pool_records_a_skipped_subject_and_does_not_try_it_again(pool_with_fake_torch):
    pool = pool_with_fake_torch
    task = {"kind": "network", "name": "airbench", "widths": [8, 16, 16], "N": 2, "mode": "infer"}
    out = pool.measure(task, reps=1, warmup=0)
    assert set(out) == {"minicnn", "torch-nchw", "torch-cl", COMPILE_LABEL}
    assert out[COMPILE_LABEL] == {"skipped": "no compiler"}
    assert out["torch-cl"]["times"] == [0.001] and len(out["minicnn"]["times"]) == 1
    assert pool.skipped == {COMPILE_LABEL: "no compiler"}
    pool.measure(task, reps=1, warmup=0)
    assert pool.torch_compile.setups == 1 and pool.torch.setups == 4
    layer = {"kind": "layer", "N": 1, "H": 4, "W": 4, "C": 2, "F": 2, "k": 3, "padding": "same",
             "bias": True, "pass": "forward"}
    assert COMPILE_LABEL not in pool.measure(layer, reps=1, warmup=0)    # networks only
