"""Smoke test of the benchmark suite (benchmarks/): tiny shapes, 1 rep, no torch.

It checks that the benchmark functions run and return well-formed records, not
how fast anything is (performance claims live in benchmarks/, per STYLE.md).
The workers are served in this process, so no subprocess start-up is paid
except for the one memory probe.
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, real_data_dir

BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

from bench_common import Pool  # noqa: E402
from bench_layers import FIELDS, LAYERS, bench_layers  # noqa: E402
from bench_networks import bench_memory, bench_networks  # noqa: E402
from bench_sgemm import bench_sgemm  # noqa: E402
from report import render  # noqa: E402

DATA = real_data_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="CIFAR-10 not found in ../shared/data or $MINICNN_DATA")
STAT_KEYS = {"times_s", "reps", "median_s", "min_s", "max_s", "q1_s", "q3_s", "flops", "gflops"}
TINY_NETS = {"simple": {"name": "simple"},
             "airbench": {"name": "airbench", "widths": [8, 16, 16]}}


@pytest.fixture(scope="module")
def pool():
    with Pool(torch_python=None, inprocess=True) as p:
        yield p


def check_timed(record, extra_keys):
    assert "error" not in record, record.get("error")
    missing = (STAT_KEYS | set(extra_keys)) - set(record)
    assert not missing, f"record lacks {missing}: {record}"
    for key in ("median_s", "min_s", "max_s", "gflops"):
        assert math.isfinite(record[key]) and record[key] > 0, (key, record[key])
    assert all(math.isfinite(t) and t > 0 for t in record["times_s"])


def test_sgemm_records(pool):
    recs = bench_sgemm(pool, shapes=[(64, 64, 64), (256, 9, 8)], reps=1, warmup=0)
    assert [r["backend"] for r in recs] == ["numpy", "numpy"]
    for r in recs:
        check_timed(r, {"M", "K", "N", "sgemm_fraction"})
    assert recs[0]["sgemm_fraction"] == pytest.approx(1.0)


def test_layer_records(pool):
    layers = [("tiny.conv", 6, 6, 3, 4, 3, "same", True), ("tiny.valid", 5, 5, 2, 3, 2, "valid", False)]
    recs = bench_layers(pool, layers, batch=2, reps=1, warmup=0, sgemm_gflops=10.0)
    assert [(r["layer"], r["pass"]) for r in recs] == [
        ("tiny.conv", "forward"), ("tiny.conv", "backward"), ("tiny.valid", "forward"), ("tiny.valid", "backward")]
    for r in recs:
        check_timed(r, set(FIELDS) | {"backend", "N", "pass", "out_shape", "sgemm_fraction"})
        assert r["backend"] == "minicnn"
    assert recs[0]["flops"] == 2 * 2 * 6 * 6 * 3 * 3 * 3 * 4
    assert recs[1]["flops"] == 2 * recs[0]["flops"]
    assert recs[2]["out_shape"] == [2, 4, 4, 3]


def test_network_records(pool):
    recs = bench_networks(pool, TINY_NETS, batches=(2,), reps=1, warmup=0, sgemm_gflops=10.0)
    assert [(r["network"], r["mode"]) for r in recs] == [
        ("simple", "train"), ("simple", "infer"), ("airbench", "train"), ("airbench", "infer")]
    for r in recs:
        check_timed(r, {"backend", "network", "batch", "mode", "img_per_s", "flops_per_image"})
        assert r["flops"] == r["flops_per_image"] * 2 * (3 if r["mode"] == "train" else 1)
    md = render({"meta": {}, "networks": recs})
    assert "| simple | 2 | train |" in md


def test_memory_probe_in_fresh_process():
    recs = bench_memory({"simple": {"name": "simple"}}, batches=(2,), modes=("infer",), steps=1)
    assert len(recs) == 1
    r = recs[0]
    assert "error" not in r, r.get("error")
    assert r["peak_rss_mib"] > 0 and r["idle_rss_mib"] > 0
    assert r["peak_rss_with_warmup_mib"] >= r["peak_rss_mib"] * 0.99


def test_layer_table_matches_the_models():
    """LAYERS is hard-coded (the torch worker cannot import minicnn); keep it in sync."""
    from minicnn import zoo
    from minicnn.nn import Conv2D
    got = []
    for net, model in (("simple", zoo.simple()), ("airbench", zoo.airbench(widths=(64, 256, 256)))):
        shape = (32, 32, 3)
        for layer in model.layers:
            if isinstance(layer, Conv2D):
                got.append((net, shape[0], shape[1], layer.C, layer.F, layer.KH, layer.padding, layer.use_bias))
            shape = layer.output_shape(shape)
    expected = [(row[0].split(".")[0],) + tuple(row[1:]) for row in LAYERS]
    assert got == expected


@needs_data
def test_ablation_driver_runs_variants_and_tta(tmp_path):
    out = tmp_path / "ablation"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "ablation.py"), "--epochs", "1",
           "--only", "baseline", "no-dirac", "--runs", str(tmp_path / "runs"), "--out", str(out),
           "--extra", "--limit-train 600 --val-size 100 --widths 4 8 8 --batch-size 100"]
    subprocess.run(cmd, check=True, capture_output=True, env=dict(os.environ, MINICNN_DATA=str(DATA)))
    rows = json.loads(out.with_suffix(".json").read_text())
    assert [r["variant"] for r in rows] == ["baseline", "tta-0", "tta-1", "no-dirac"]
    assert [r["tta"] for r in rows] == [2, 0, 1, 2]
    assert all(0 <= r["val"] <= 1 and 0 <= r["exact"] <= 1 for r in rows)
    assert "| no-dirac | `--no-dirac` |" in out.with_suffix(".md").read_text()


def test_summarize_runs_copies_figures_and_averages_seeds(tmp_path, capsys):
    import summarize_runs
    for seed, exact in ((0, 0.94), (1, 0.95)):
        run = tmp_path / f"fast94-seed{seed}"
        run.mkdir()
        (run / "metrics.json").write_text(json.dumps(dict(
            preset="fast94", epochs=10, seed=seed, total_seconds=2820, train_seconds=2700,
            test_accuracy_exact_subset=exact, test_accuracy=0.87, val_accuracy=None)))
    summarize_runs.main([str(tmp_path / "fast94-seed0"), str(tmp_path / "fast94-seed1")])
    out = capsys.readouterr().out
    assert "| fast94-seed1 | fast94 | 10 | 1 | 47.0 | 2700 | 95.00 | 87.00 | - |" in out
    assert "**94.50 ± 0.71**" in out                          # mean and sample sd of 94, 95
    with pytest.raises(SystemExit, match="no metrics.json"):
        summarize_runs.main([str(tmp_path)])


@pytest.mark.parametrize("script,rows", [("bench_direct.py", 30), ("bench_winograd.py", 31)])
def test_rule_benchmarks_run_and_print_every_row(script, rows):
    """bench_direct / bench_winograd at batch 2, one rep: every shape x op gets a row."""
    path = ROOT / "benchmarks" / script
    out = subprocess.run([sys.executable, str(path), "--batch", "2", "--reps", "1"],
                         capture_output=True, text=True, timeout=600, check=True)
    lines = [l for l in out.stdout.splitlines() if l and not l.startswith("#")][1:]   # - header
    assert len(lines) == rows, out.stdout
    assert "RuntimeWarning" not in out.stderr


def test_time_op_warms_up_untimed_before_timing():
    """"warm" runs the subject untimed (for that long, at least once) before each timed run."""
    import time
    from bench_worker import Server

    class Fake:
        calls = 0

        def run_once(self):
            Fake.calls += 1
            time.sleep(0.004)
            return 0.001
    server = Server("minicnn")
    server.subjects["fake"] = Fake()
    t = time.perf_counter()
    reply = server.handle({"op": "time", "key": "fake", "n": 2, "warm": 0.03})
    assert time.perf_counter() - t >= 0.03
    assert reply == {"times": [0.001, 0.001]} and Fake.calls >= 3     # >= 1 untimed + 2 timed
    Fake.calls = 0
    server.handle({"op": "time", "key": "fake", "n": 1, "warm": 1e-9})   # at least one
    assert Fake.calls == 2
    Fake.calls = 0
    server.handle({"op": "time", "key": "fake", "n": 1})                 # default: none
    assert Fake.calls == 1


def test_idle_benchmark_prints_its_four_conditions():
    path = ROOT / "benchmarks" / "bench_idle.py"
    out = subprocess.run([sys.executable, str(path), "--batch", "2", "--reps", "1"],
                         capture_output=True, text=True, timeout=600, check=True)
    rows = [l for l in out.stdout.splitlines() if l and not l.startswith("#")]
    assert [r[:12] for r in rows] == ["back to back", "after 0.5 s ", "sleep, then ", "sleep, then "]
    assert all(float(r.split()[-1]) > 0 for r in rows)


def test_heap_and_spinning_thread_benchmarks_print_their_rows():
    """bench_heap.py (page faults with and without keep_freed_memory) and
    bench_spinning_threads.py (idle CPU after a Winograd layer), at tiny sizes: the rows
    they print, not the numbers (those were unit-test assertions once; they are measurements)."""
    import platform
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_heap.py"),
                          "--batch", "2", "--steps", "1"],
                         capture_output=True, text=True, timeout=600, check=True)
    rows = [l.split() for l in out.stdout.splitlines() if l and not l.startswith("#")]
    assert rows[0] == ["setting", "heap_kept", "realloc_64MB", "faults_per_step"]
    assert [r[:2] for r in rows[1:]] == [["keep_freed_memory", str(glibc)],
                                         ["MINICNN_KEEP_HEAP=0", "False"]]
    assert all(int(r[2]) >= 0 and float(r[3]) >= 0 for r in rows[1:])

    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_spinning_threads.py"),
                          "--channels", "32", "--batch", "2", "--matmul", "128", "--idle", "0.02",
                          "--reps", "1"],
                         capture_output=True, text=True, timeout=600, check=True)
    lines = out.stdout.splitlines()
    assert lines[0].startswith("# Conv2D(32, 32, 3)") and "forward path winograd" in lines[0]
    rows = [l.rsplit(None, 1) for l in lines[1:]]
    assert [name for name, _ in rows] == ["nothing", "winograd forward", "BLAS matmul"]
    assert all(float(ms) >= 0 for _, ms in rows)


def test_winograd_tile_sizes_builds_exact_transforms_and_counts_products(capsys):
    """The F(m x m, 3x3) built from interpolation points is exact in float64 (m = 2, 4, 6),
    its float32 error grows with m, and 7x7 maps need 144 products with F(4x4), 256 with F(6x6)."""
    import winograd_tile_sizes as wts
    rng = np.random.default_rng(1)
    g = rng.standard_normal((3, 3))
    errors = []
    for m in (2, 4, 6):
        AT, G, BT = wts.transforms(m)
        assert AT.shape == (m, m + 2) and G.shape == (m + 2, 3) and BT.shape == (m + 2, m + 2)
        d = rng.standard_normal((50, m + 2, m + 2))
        want = wts.direct_tiles(d, g, m)
        np.testing.assert_allclose(wts.correlate_tiles(d, g, m, np.float64), want, atol=1e-9)
        errors.append(np.abs(wts.correlate_tiles(d, g, m, np.float32) - want).max())
    assert errors[0] < errors[2]
    sys.argv = ["winograd_tile_sizes.py", "--tiles", "300"]
    wts.main()
    out = capsys.readouterr().out
    assert "| airbench.g2/g3 (256->256) | 7x7 | 441 | 256 | 144 | 256 | 1.78x |" in out
    assert sum(line.startswith("| F(") for line in out.splitlines()) == 3   # a row per tile


def test_recipe_benchmark_times_both_recipes(capsys):
    """bench_recipes.py at tiny batches: a row per recipe, positive rates."""
    import bench_recipes
    rates = bench_recipes.main(["--reps", "1", "--sgd-batch", "8", "--muon-batch", "16"])
    assert set(rates) == {"fast94_sgd", "fast94", "fast94 frozen bias", "fast94 over its 8 epochs"}
    assert all(r > 0 for r in rates.values())
    low, high = sorted([rates["fast94"], rates["fast94 frozen bias"]])
    assert low <= rates["fast94 over its 8 epochs"] <= high              # a weighted mean
    out = capsys.readouterr().out
    assert "| fast94_sgd | 8 |" in out and "| fast94 | 16 |" in out
    assert "| fast94 frozen bias | 16 |" in out


def test_recipe_benchmark_alternates_a_changed_rule_and_restores_it(capsys, monkeypatch):
    """--rule: every step also runs with the threshold changed (seen by a spy on the
    rule's test), and the threshold is back to its value afterwards."""
    import bench_recipes
    from minicnn.fast import rules
    seen = []
    real = rules.winograd_width_fits
    monkeypatch.setattr(rules, "winograd_width_fits",
                        lambda c: seen.append(rules.MIN_WINOGRAD_CHANNEL_USE) or real(c))
    before = rules.MIN_WINOGRAD_CHANNEL_USE
    bench_recipes.main(["--reps", "1", "--sgd-batch", "8", "--muon-batch", "16",
                        "--rule", "MIN_WINOGRAD_CHANNEL_USE=1.0"])
    assert rules.MIN_WINOGRAD_CHANNEL_USE == before
    assert {before, 1.0} <= set(seen)
    out = capsys.readouterr().out
    assert "img/s with MIN_WINOGRAD_CHANNEL_USE=1.0 | speed-up |" in out
    assert out.count("| fast94") == 4 and "| fast94 over its 8 epochs (3 : 5) | 16 |" in out
    for bad in ("NOT_A_RULE=1", "MIN_WINOGRAD_CHANNEL_USE", "MIN_WINOGRAD_SIDE=seven", "conv_path=1"):
        with pytest.raises(SystemExit):
            bench_recipes.main(["--rule", bad])


def test_gelu_benchmark_times_the_checkout_another_revision_and_libm(capsys):
    """bench_gelu.py on a few elements: the kernel of HEAD is loaded from git and timed
    beside the checkout's kernel and libm's erfc."""
    import bench_gelu
    rates = bench_gelu.main(["--size", "1000", "--reps", "1", "--against", "HEAD"])
    assert set(rates) == {"this checkout forward", "this checkout backward", "HEAD forward",
                          "HEAD backward", "libm erfc forward"}
    assert all(0 < ns < 1e6 for ns in rates.values())
    assert "ns per element" in capsys.readouterr().out


def test_winograd_benchmark_runs_only_the_shapes_asked_for():
    """--shapes C,F,H: one row per op of each layer given; a malformed shape is refused."""
    path = ROOT / "benchmarks" / "bench_winograd.py"
    out = subprocess.run([sys.executable, str(path), "--batch", "2", "--reps", "1",
                          "--shapes", "32,32,8", "3,32,8"],
                         capture_output=True, text=True, timeout=600, check=True)
    rows = [l.split() for l in out.stdout.splitlines() if l and not l.startswith("#")][1:]
    assert [(r[0], r[3]) for r in rows] == [("32->32", "fwd"), ("32->32", "dx"), ("32->32", "dW"),
                                            ("3->32", "fwd")]
    bad = subprocess.run([sys.executable, str(path), "--shapes", "32,32"],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "expected C,F,H" in bad.stderr


def test_memory_table_ratio_is_against_the_smallest_pytorch_peak():
    from report import memory_table

    def rec(backend, peak):
        return {"kind": "memory", "backend": backend, "network": "simple", "batch": 8,
                "mode": "train", "peak_rss_mib": peak, "idle_rss_mib": peak - 10}
    recs = [rec("minicnn", 300), rec("torch-nchw", 500), rec("torch-cl", 400),
            rec("torch-compile-cl", 600)]
    row = memory_table(recs).splitlines()[-1]
    assert row.endswith("| 0.75 |") and "| 600 (+10) |" in row           # 300 / 400
    failed = recs[:1] + [{**recs[2], "peak_rss_mib": None}]
    del failed[1]["peak_rss_mib"]
    assert memory_table(failed).splitlines()[-1].endswith("| – |")     # nothing to compare


def test_tta_benchmark_times_every_level_and_batch(capsys):
    """bench_tta.py on a few images: a row per (level, batch) with the level's number
    of views, and a positive time for each."""
    import bench_tta
    result = bench_tta.main(["--images", "24", "--batch", "8", "16", "--tta", "0", "2",
                             "--reps", "1"])
    assert set(result) == {(0, 8), (0, 16), (2, 8), (2, 16)}
    assert all(seconds > 0 for seconds in result.values())
    out = capsys.readouterr().out
    assert "| 2 | 6 | 16 |" in out and "| 0 | 1 | 8 |" in out


def test_weight_transform_benchmark_compares_equal_transforms(capsys):
    """bench_weight_transform.py: a row per shape; its NumPy contrast is the same transform."""
    import bench_weight_transform as bench
    from minicnn.fast.kernels.winograd import weight_transform
    W = np.random.default_rng(0).standard_normal((3, 3, 8, 64)).astype(np.float32)
    np.testing.assert_array_equal(bench.transform_over_slices(W), weight_transform(W))
    result = bench.main(["--reps", "1"])
    assert set(result) == set(bench.SHAPES) and all(min(t) > 0 for t in result.values())
    assert capsys.readouterr().out.count("| 256 -> 256 |") == 1


def test_saved_inputs_benchmark_probes_both_ways_in_fresh_processes(capsys):
    """bench_saved_inputs.py: one row per (net, batch) with two positive peaks, each from
    its own process (the retain flag reaches the worker's backward)."""
    import bench_saved_inputs
    bench_saved_inputs.main(["--nets", "simple", "--batch", "2"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| simple |")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[1] == "2"
    kept, freed = (float(c.replace(",", "")) for c in cells[2:4])
    assert kept > 50 and freed > 50                       # a Python process with numpy and numba


def test_network_task_with_retain_keeps_every_saved_input_between_steps(monkeypatch):
    import backend_minicnn
    from minicnn.nn import Sequential
    held = []
    original = Sequential.backward

    def counting_backward(self, dy, retain=False):
        out = original(self, dy, retain)
        held.append(sum(getattr(layer, attr, None) is not None for layer in self.layers
                        for attr in layer.cached))
        return out
    monkeypatch.setattr(Sequential, "backward", counting_backward)
    for retain in (True, False):
        task = {"kind": "network", **TINY_NETS["airbench"], "N": 2, "mode": "train", "retain": retain}
        backend_minicnn.make(task).run_once()
    assert held[0] >= 10 and held[1] == 0


def test_compare_trees_runs_one_tree_in_two_environments(capsys):
    """The same tree twice, one side forced to the AVX2 tiles: both workers start, each
    reports its setting, and one tiny timing row comes out with a positive ratio."""
    import compare_trees
    compare_trees.main([str(ROOT), str(ROOT), "--old-env", "MINICNN_VECTOR_UNIT=avx2",
                        "--nets", "simple", "--batch", "4", "--modes", "infer", "--reps", "1",
                        "--threads", "1"])
    out = capsys.readouterr().out
    assert "# old: " in out and "with MINICNN_VECTOR_UNIT=avx2" in out
    assert "# new: " in out and out.count("with MINICNN_VECTOR_UNIT") == 1
    row = next(line for line in out.splitlines() if line.startswith("simple "))
    old_ms, new_ms, ratio = map(float, row.split()[3:6])
    low, high = map(float, row.split()[6].split("-"))
    assert old_ms > 0 and new_ms > 0 and ratio > 0
    assert low == high == ratio                    # one repetition: its ratio is the median's


def test_compare_trees_refuses_an_environment_without_equals_sign(capsys):
    import compare_trees
    with pytest.raises(SystemExit) as exit_info:
        compare_trees.main([str(ROOT), str(ROOT), "--new-env", "MINICNN_VECTOR_UNIT"])
    assert exit_info.value.code == 2
    assert "--new-env: expected KEY=VALUE, got 'MINICNN_VECTOR_UNIT'" in capsys.readouterr().err


def test_bench_tiles_prints_a_rate_per_tile_and_refuses_bad_shapes(capsys, monkeypatch):
    import bench_tiles
    monkeypatch.setitem(bench_tiles.CASES, "forward", [(8, 32, 16)])   # tiny: compile time only
    bench_tiles.main(["--tiles", "4x32", "3x64", "--patterns", "forward", "--seconds", "0.001"])
    out = capsys.readouterr().out.splitlines()
    row = next(line for line in out if line.startswith("forward"))
    assert "3x64: -" in row                                        # 64 does not divide F = 32
    assert float(row.split("4x32:")[1].split()[0]) > 0
    with pytest.raises(SystemExit):
        bench_tiles.main(["--tiles", "4by32"])
    assert "expected a tile as PxFB (e.g. 8x32), got '4by32'" in capsys.readouterr().err


def test_bench_winograd_blocks_prints_a_ratio_per_block_size_and_restores_the_rule(capsys):
    import bench_winograd_blocks
    from minicnn.fast import conv_winograd
    rule, size = conv_winograd.forward_tiles_per_block, conv_winograd.TILES_PER_BLOCK
    bench_winograd_blocks.main(["--batch", "2", "--reps", "1", "--shapes", "16,32,8",
                                "--tiles", "4", "16"])
    rows = [l for l in capsys.readouterr().out.splitlines() if l.strip().startswith("16->32")]
    assert len(rows) == 1 and float(rows[0].split()[3]) > 0    # ms at 4, x at 16, rule
    assert int(rows[0].split()[-1]) == rule(16, 32)
    assert conv_winograd.forward_tiles_per_block is rule and conv_winograd.TILES_PER_BLOCK == size
    with pytest.raises(SystemExit, match="must be >= 1"):
        bench_winograd_blocks.main(["--tiles", "0", "32"])


def test_bench_fusion_prints_both_passes_of_each_net(capsys):
    import bench_fusion
    bench_fusion.main(["--nets", "airbench", "--batch", "2", "--reps", "1"])
    rows = [l.split() for l in capsys.readouterr().out.splitlines() if l.startswith("airbench")]
    assert [r[2] for r in rows] == ["train", "infer"]
    assert all(float(r[3]) > 0 and float(r[4]) > 0 for r in rows)
    assert rows[0][-1] == "9"            # airbench: six BatchNorm + GELU, three Conv2D + MaxPool2D
    with pytest.raises(SystemExit):
        bench_fusion.main(["--batch", "0"])


def test_memory_bandwidth_benchmark_prints_each_pass_and_thread_count():
    path = ROOT / "benchmarks" / "bench_memory_bandwidth.py"
    out = subprocess.run([sys.executable, str(path), "--mb", "0.5", "--reps", "1",
                          "--threads", "1", "2"],
                         capture_output=True, text=True, timeout=600, check=True)
    rows = [l.split() for l in out.stdout.splitlines() if l and not l.startswith("#")]
    assert rows[0] == ["pass", "threads", "GB/s"]
    assert [r[:2] for r in rows[1:]] == [[p, t] for p in ("copy", "read", "write") for t in "12"]
    assert all(float(r[2]) > 0 for r in rows[1:])
    bad = subprocess.run([sys.executable, str(path), "--threads", "0"],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "--threads" in bad.stderr and "[0]" in bad.stderr


def test_parallel_profile_prints_its_rows():
    path = ROOT / "benchmarks" / "profile_parallel.py"
    out = subprocess.run([sys.executable, str(path), "--net", "simple", "--batch", "4",
                          "--reps", "1"], capture_output=True, text=True, timeout=600, check=True)
    rows = dict(l.split() for l in out.stdout.splitlines() if l and not l.startswith("#"))
    assert list(rows) == ["step_ms", "calls_per_step", "wall_ms", "busiest_thread_ms",
                          "overhead_ms", "idle_tail_ms", "start_lag_us"]
    assert float(rows["calls_per_step"]) >= 1                 # the wrapper saw the conv blocks
    assert float(rows["wall_ms"]) >= float(rows["busiest_thread_ms"]) > 0
    bad = subprocess.run([sys.executable, str(path), "--reps", "0"],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "--reps" in bad.stderr


def test_profile_step_fused_times_sequentials_steps_and_runs_its_forward(capsys):
    import time

    import profile_step
    from minicnn.zoo import simple
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3), dtype=np.float32)
    labels = np.array([3, 7])
    model = simple(rng=0)
    model.set_input_grads(wanted=False)
    fwd, bwd, other, units, out = profile_step.profile(model, x, labels, "train", 0,
                                                       time.perf_counter, fused=True)
    assert units == model.steps and any(len(unit) == 3 for unit in units)   # conv+relu+pool
    np.testing.assert_array_equal(out, simple(rng=0).forward(x, training=True))
    assert fwd.shape == bwd.shape == (len(units),) and not fwd.any()         # warm-up only
    profile_step.main(["--net", "simple", "--batch", "2", "--reps", "1", "--fused"])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line[:2].strip().isdigit()]
    assert [row[1] for row in rows[:2]] == ["Conv2D+ReLU", "Conv2D+ReLU+MaxPool2D"]
    shares = [float(row[-1].rstrip("%")) for row in rows]
    conv_rows = [row for row in rows if row[1].startswith("Conv2D")]
    assert len(conv_rows) == 4 and all(float(row[2]) > 0 and float(row[3]) > 0 for row in conv_rows)
    assert 90 < sum(shares) <= 100.5                  # the rest: the loss and the update


def test_bench_conv_paths_times_each_pass_on_each_path_and_restores_the_layer(capsys):
    import bench_conv_paths
    bench_conv_paths.main(["--batch", "2", "--reps", "1", "--shapes", "256,256,3", "32,32,5",
                           "--paths", "shifts", "taps"])
    rows = [l.split() for l in capsys.readouterr().out.splitlines() if "->" in l and "@" in l
            and not l.startswith("C->F")]
    assert [(r[0], r[3]) for r in rows] == [("256->256", p) for p in ("fwd", "dx", "dW")] + \
        [("32->32", p) for p in ("fwd", "dx", "dW")]
    assert all(float(r[4]) > 0 and float(r[5]) > 0 for r in rows)     # ms on shifts, taps
    assert [r[-1] for r in rows[:3]] == ["shifts"] * 3                 # the rule's choice
    with pytest.raises(SystemExit, match="must be >= 1"):
        bench_conv_paths.main(["--reps", "0"])
