"""Per-layer timing: forward and backward of every convolution in both networks.

Usage:
    python benchmarks/bench_layers.py [--torch-python /work/torchenv/bin/python] [--quick]
                                      [--batch 128] [--only simple|airbench] [--json PATH]

For each conv shape of minicnn.zoo.simple() and .airbench() (the table
LAYERS below; tests/benchmarks/test_benchmarks_smoke.py checks it still matches the models)
it times, on a batch of random NHWC float32 images:

    forward   y = conv.forward(x, training=True)        2·N·OH·OW·KH·KW·C·F FLOPs
    backward  conv.backward(dy), after an untimed forward: dx and dW (and db),
              2 × the forward FLOPs. (In the networks the first conv skips dx and
              airbench's whitening conv also skips dW; here every layer does both,
              so the rows compare like with like.)

and reports the median time, spread, GFLOP/s and that rate as a fraction of the
machine's SGEMM rate (measured first, 2048³ numpy matmul). With --torch-python
the same layer runs in PyTorch (nn.Conv2d, NCHW and channels_last), interleaved
repetition by repetition with minicnn. Threads: 2 (--threads).
"""
import argparse

from bench_common import (Pool, attach_rate, common_args, log, machine_info, reps_warmup,
                          sgemm_reference, summarize, write_json)
from report import layer_table, sgemm_table

# name, H, W, C, F, k, padding, bias    (input H x W x C, F filters of k x k, stride 1)
LAYERS = [
    ("simple.conv1", 32, 32, 3, 32, 3, "same", True),
    ("simple.conv2", 32, 32, 32, 32, 3, "same", True),
    ("simple.conv3", 16, 16, 32, 64, 3, "same", True),
    ("simple.conv4", 16, 16, 64, 64, 3, "same", True),
    ("airbench.whiten", 32, 32, 3, 24, 2, "valid", True),
    ("airbench.g1.conv1", 31, 31, 24, 64, 3, "same", False),
    ("airbench.g1.conv2", 15, 15, 64, 64, 3, "same", False),
    ("airbench.g2.conv1", 15, 15, 64, 256, 3, "same", False),
    ("airbench.g2.conv2", 7, 7, 256, 256, 3, "same", False),
    ("airbench.g3.conv1", 7, 7, 256, 256, 3, "same", False),
    ("airbench.g3.conv2", 3, 3, 256, 256, 3, "same", False),
]
FIELDS = ("layer", "H", "W", "C", "F", "k", "padding", "bias")


def forward_flops(spec, N):
    """2·N·OH·OW·k·k·C·F for a stride-1 'same' or 'valid' conv."""
    OH, OW = (spec["H"], spec["W"]) if spec["padding"] == "same" else \
        (spec["H"] - spec["k"] + 1, spec["W"] - spec["k"] + 1)
    return 2 * N * OH * OW * spec["k"] * spec["k"] * spec["C"] * spec["F"]


def bench_layers(pool, layers=LAYERS, batch=128, reps=7, warmup=2, passes=("forward", "backward"),
                 sgemm_gflops=None):
    """Time each layer's passes on every backend of ``pool``. Returns flat records."""
    records = []
    for row in layers:
        spec = dict(zip(FIELDS, row))
        for pas in passes:
            task = {"kind": "layer", "N": batch, "pass": pas, **{k: v for k, v in spec.items() if k != "layer"}}
            flops = forward_flops(spec, batch) * (1 if pas == "forward" else 2)
            res = pool.measure(task, reps, warmup)
            for backend, r in res.items():
                rec = {"kind": "layer", "backend": backend, "N": batch, "pass": pas, **spec}
                if "error" in r:
                    rec["error"] = r["error"]
                else:
                    rec.update(summarize(r["times"]), out_shape=r["meta"].get("out_shape"))
                    attach_rate(rec, flops, sgemm_gflops)
                    log(f"  {spec['layer']:<18} {pas:<8} {backend:<10} {rec['median_s'] * 1e3:8.2f} ms"
                        f"  {rec['gflops']:6.1f} GFLOP/s")
                records.append(rec)
    return records


def main():
    ap = common_args(argparse.ArgumentParser(description=__doc__,
                                             formatter_class=argparse.RawDescriptionHelpFormatter))
    ap.add_argument("--batch", type=int, default=128, help="images per batch (default 128)")
    ap.add_argument("--only", choices=["simple", "airbench"], help="one network's layers")
    args = ap.parse_args()
    reps, warmup = reps_warmup(args)
    layers = [l for l in LAYERS if not args.only or l[0].startswith(args.only + ".")]
    from bench_sgemm import bench_sgemm
    meta = machine_info(args.threads)
    with Pool(args.torch_python, args.threads, gap=args.gap, warm=args.warm, torch_compile=False) as pool:
        sgemm = bench_sgemm(pool, shapes=[(2048, 2048, 2048)], reps=3, warmup=1)
        records = bench_layers(pool, layers, args.batch, reps, warmup, sgemm_gflops=sgemm_reference(sgemm))
        meta["workers"] = pool.info()
    print(sgemm_table(sgemm) + "\n\n" + layer_table(records))
    if args.json:
        write_json(args.json, {"meta": meta, "sgemm": sgemm, "layers": records})


if __name__ == "__main__":
    main()
