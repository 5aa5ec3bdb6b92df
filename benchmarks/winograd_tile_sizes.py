"""Would F(6x6, 3x3) Winograd pay on the CIFAR nets? Rounding and multiplies, F(2), F(4), F(6).

    python benchmarks/winograd_tile_sizes.py [--tiles 20000]

Builds the transforms of F(m x m, 3x3) for m = 2, 4, 6 from their interpolation
points (Toom-Cook; the points are the usual 0, +-1, +-2, +-1/2 and infinity), checks
each is exact in float64, then measures:

* rounding: the same random 3x3 correlations computed tile by tile in float32 with
  each transform, against float64; the error is relative to the largest output.
* multiplies: the element-wise products each layer shape of the bundled nets needs
  per image and per input x output channel, (ceil(OH/m) ceil(OW/m)) tiles x (m+2)^2,
  against the direct 9 OH OW.

The construction. Linear convolution of g (3 taps) with h (m values) is evaluation at
a = m + 2 points, a product, and interpolation: s = V^-1 ((V3 g) * (Vm h)), with Vn the
a x n matrix evaluating a polynomial of n coefficients at the points (at infinity: its
leading coefficient) and V = Va. The correlation a conv layer
computes is the transpose of that map in h: y = Vm^T ((V3 g) * (V^-T d)), so
A^T = Vm^T, G = V3, B^T = V^-T.
"""
import argparse
import math

import numpy as np

POINTS = {2: [0, 1, -1], 4: [0, 1, -1, 2, -2], 6: [0, 1, -1, 2, -2, 0.5, -0.5]}
LAYERS = [("simple.conv1-2", 32), ("simple.conv3-4", 16), ("airbench.g1", 31),
          ("airbench.g1 after pool", 15), ("airbench.g2/g3 (256->256)", 7), ("airbench.g3.conv2", 3)]


def transforms(m, r=3):
    """(A^T (m, a), G (a, r), B^T (a, a)) of F(m, r), float64."""
    a = m + r - 1

    def evaluation(n):             # (a, n): a polynomial of n coefficients at the a points
        E = np.zeros((a, n))
        for i, p in enumerate(POINTS[m]):
            E[i] = [p ** k for k in range(n)]
        E[a - 1, n - 1] = 1.0      # "at infinity": the leading coefficient
        return E
    return evaluation(m).T, evaluation(r), np.linalg.inv(evaluation(a)).T


def correlate_tiles(d, g, m, dtype):
    """Y (T, m, m) = A^T [(G g G^T) * (B^T d B)] A for tiles d (T, m+2, m+2), in dtype."""
    AT, G, BT = (M.astype(dtype) for M in transforms(m))
    U = G @ g.astype(dtype) @ G.T
    V = BT @ d.astype(dtype) @ BT.T
    return AT @ (U * V) @ AT.T


def direct_tiles(d, g, m):
    """The same correlations, directly, in float64."""
    return np.stack([[[np.sum(d[t, i:i + 3, j:j + 3] * g) for j in range(m)] for i in range(m)]
                     for t in range(len(d))])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, default=20000, help="random tiles per size (default 20000)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    g = rng.standard_normal((3, 3))
    print("rounding of one float32 tile correlation (C = 1), relative to the largest output:")
    print("| tile | exact in float64 | max error | RMS error |")
    print("|---|---|---|---|")
    for m in (2, 4, 6):
        d = rng.standard_normal((args.tiles, m + 2, m + 2))
        want = direct_tiles(d[:200], g, m)
        exact = np.abs(correlate_tiles(d[:200], g, m, np.float64) - want).max()
        assert exact < 1e-10, f"F({m}x{m}, 3x3) transforms are wrong: error {exact}"
        got = correlate_tiles(d, g, m, np.float32).astype(np.float64)
        ref = correlate_tiles(d, g, m, np.float64)
        err = np.abs(got - ref) / np.abs(ref).max()
        print(f"| F({m}x{m}, 3x3) | {exact:.1e} | {err.max():.2e} | {math.sqrt((err ** 2).mean()):.2e} |")
    print("\nelement-wise multiplies per image and channel pair (direct: 9 per output):")
    print("| layer | output map | direct | F(2x2) | F(4x4) | F(6x6) | F(6x6) vs F(4x4) |")
    print("|---|---|---|---|---|---|---|")
    for name, side in LAYERS:
        counts = {m: math.ceil(side / m) ** 2 * (m + 2) ** 2 for m in (2, 4, 6)}
        print(f"| {name} | {side}x{side} | {9 * side * side} | {counts[2]} | {counts[4]} | "
              f"{counts[6]} | {counts[6] / counts[4]:.2f}x |")


if __name__ == "__main__":
    main()
