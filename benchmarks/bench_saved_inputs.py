"""What letting go of saved inputs during backward saves: peak RSS of a training step
with ``Sequential.backward(dy)`` (each layer frees what its forward kept once its
backward has run) against ``backward(dy, retain=True)`` (everything kept, as a layer
list that never frees would).

    python benchmarks/bench_saved_inputs.py [--batch 128 1024] [--nets simple airbench]

Each configuration runs in a fresh process (bench_worker.py --probe): one step on a
batch of 2 to compile, one warm-up step at full size, then the peak resident set
(VmHWM, reset after the warm-up) over two steps. Random images, minicnn only.
"""
import argparse

from bench_common import cpu_info, log
from bench_networks import NETWORKS, probe


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[128, 1024])
    ap.add_argument("--nets", nargs="+", choices=list(NETWORKS), default=list(NETWORKS))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    cpu = cpu_info()
    isa = ", ".join(flag for flag, has in cpu["isa"].items() if has)
    print(f"# peak RSS of a training step, MiB; {cpu['model_name']} (family {cpu['family']} model "
          f"{cpu['model']}, LLVM {cpu['llvm_cpu']}; {isa}), {args.threads} threads")
    print("| network | batch | retain=True | freed during backward | saved |")
    print("|---|---|---|---|---|")
    for net in args.nets:
        for N in args.batch:
            peaks = {}
            for retain in (True, False):
                task = {"kind": "network", **NETWORKS[net], "N": N, "mode": "train", "retain": retain}
                rec = probe("minicnn", task, threads=args.threads)
                if "error" in rec:
                    raise SystemExit(f"probe {net} N={N} retain={retain} failed: {rec['error']}")
                peaks[retain] = rec["peak_rss_mib"]
                log(f"  {net} N={N} retain={retain}: peak {rec['peak_rss_mib']:.0f} MiB")
            print(f"| {net} | {N} | {peaks[True]:,.0f} | {peaks[False]:,.0f} | "
                  f"{peaks[True] - peaks[False]:,.0f} ({1 - peaks[False] / peaks[True]:.0%}) |")


if __name__ == "__main__":
    main()
