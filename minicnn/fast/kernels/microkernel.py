"""The register-blocked micro-kernel behind the direct convolution, and its generator.

One call computes a P x FB tile of a product summed over "taps" (T of them,
each a run of L steps):

    acc[p, f] = sum_{t < T} sum_{k < L}  a[abase + aoffs[t] + p*a_ps + k*a_ks]
                                        * b[bbase + boffs[t] + k*b_ks + f]
    out[obase + p*o_ps + f]  = acc[p, f]      (add=False)
                            += acc[p, f]      (add=True)

for p < P, f < FB. The arguments: a, b, out flat float32 arrays; abase, bbase,
obase where the tile starts in each; aoffs[t], boffs[t] the start of tap t
relative to abase, bbase; a_ps, o_ps the distance between the tile's P rows
(p) in a and out; a_ks, b_ks the distance between consecutive steps (k) in a
and b; L the steps per tap; add: accumulate into out instead of overwriting.

One formula serves all three products of a convolution (kernels/direct.py):
the forward pass (p = output pixels along a row, f = output channels, taps =
kernel positions, k = input channels), dx (the same on dy with the flipped
kernel) and dW (p = input channels, f = output channels, taps = image rows,
k = pixels along the row); Winograd's products too (kernels/winograd.py,
winograd_grad.py: one tap, k = input channels or tiles).

Why it is fast: the P*FB accumulators are plain local variables, so they live
in registers for the whole sum. Every step loads FB values of b (FB/8 AVX2
vectors), P single values of a (each broadcast to a vector) and does P*FB
multiply-adds (P*FB/8 vector FMAs). With P*FB/8 = 12 accumulator vectors in
twelve of the sixteen AVX2 registers, the rest hold a broadcast and b vectors
(those that do not fit are read by the FMAs straight from L1); the two FMA
units stay busy. AVX-512 has twice the lanes and twice the registers, so its
tiles are larger (fast/vectors.py chooses the set for the CPU at run time). OpenBLAS is slower on the same products when one side is only
32 wide (docs/performance.md, "Register tiles").

Numba cannot write "a vector of 8 floats", so the kernel is written with P*FB
float32 scalar accumulators (``acc{p}_{f}``) and LLVM's SLP vectorizer packs each
run of 8 into one register. Three things must hold, or the kernel runs many
times slower (docs/performance.md):
  * the SLP vectorizer is on (numba leaves it off unless NUMBA_SLP_VECTORIZE=1;
    minicnn sets it at import, see fast/__init__.py);
  * fastmath={'contract'} lets LLVM fuse each multiply and add into an FMA;
  * index arithmetic is unsigned (uint64), so no wrap-around checks get in
    the way.

Writing 96 accumulators by hand would hide the idea, so ``tile_source(P, FB)``
writes them, and ``python minicnn/fast/kernels/microkernel.py`` regenerates
kernels/tiles.py, the file numba compiles (and caches; tests check the file is
up to date). Run it as a file, not with ``-m``: ``-m`` imports the package first,
which fails while a kernel imports a tile that tiles.py does not have yet. The readable twin of the whole direct convolution is
``direct.direct_conv_reference``.
"""
import sys
from pathlib import Path

# (P, FB) of each tile in tiles.py. For AVX2 (16 registers of 8 floats): 3 pixels x
# 32 channels (12 vectors) for the forward pass and dx (and Winograd's products);
# 4 x 24 (12 vectors) when the channels are a multiple of 24 only; 4 x 16 for forward
# rows that 4 divides better (direct.tile_width), and as 4 input x 16 output channels
# for dW, whose per-step loads come from L2 and favour the smaller tile
# (docs/performance.md compares the dW tile shapes). For AVX-512 (32 registers of
# 16 floats, fast/vectors.py): 4 x 64 (16 vectors) for forward, dx and Winograd's
# products, 4 x 32 (8 vectors) for the direct dW, and 8 x 32 (16 vectors) for Winograd's
# dW and for its forward/dx products that 4 x 64 does not suit (conv_winograd.py).
SHAPES = ((3, 32), (4, 24), (4, 16), (4, 64), (4, 32), (8, 32))


def tile_source(P, FB):
    """Python source of the numba function tile_{P}x{FB} (module docstring)."""
    I = "    "
    L = [f"@njit(nogil=True, cache=True, boundscheck=False, fastmath={{'contract'}})",
         f"def tile_{P}x{FB}(a, abase, aoffs, a_ps, a_ks, b, bbase, boffs, b_ks, L, out, obase, o_ps, add):",
         f'{I}"""out[obase + p*o_ps + f] (+)= sum_t sum_k a[abase + aoffs[t] + p*a_ps + k*a_ks]'
         f' * b[bbase + boffs[t] + k*b_ks + f],  p < {P}, f < {FB}."""',
         f"{I}zero = np.float32(0.0)"]
    eights = [range(f0, min(f0 + 8, FB)) for f0 in range(0, FB, 8)]   # an AVX2 register each
    L += [f"{I}# acc{{p}}_{{f}} = acc[p, f]; each run of 8 becomes one vector register"]
    L += [f"{I}" + ", ".join(f"acc{p}_{f}" for f in fs) + " = " + ", ".join(["zero"] * len(fs))
          for p in range(P) for fs in eights]
    L += [f"{I}a_ps, a_ks, b_ks = uint64(a_ps), uint64(a_ks), uint64(b_ks)",
          f"{I}for t in range(len(aoffs)):",
          f"{I * 2}ai = uint64(abase + aoffs[t])           # where step k of tap t starts in a",
          f"{I * 2}bi = uint64(bbase + boffs[t])           # ... and in b",
          f"{I * 2}for k in range(L):",
          f"{I * 3}# b{{f}} = b[bi + f]: this step's FB values of b",
          ] + [f"{I * 3}" + ", ".join(f"b{f}" for f in fs) + " = "
               + ", ".join(f"b[bi + uint64({f})]" for f in fs) for fs in eights]
    for p in range(P):
        L.append(f"{I * 3}a_p = a[ai + uint64({p}) * a_ps]")
        L += [f"{I * 3}" + "; ".join(f"acc{p}_{f} += a_p * b{f}" for f in fs) for fs in eights]
    L += [f"{I * 3}ai += a_ks", f"{I * 3}bi += b_ks",
          f"{I}o_ps = uint64(o_ps)",
          f"{I}if not add:"]
    for p in range(P):
        L.append(f"{I * 2}o = uint64(obase) + uint64({p}) * o_ps   # row p of the tile in out")
        L += [f"{I * 2}" + ", ".join(f"out[o + uint64({f})]" for f in fs) + " = "
              + ", ".join(f"acc{p}_{f}" for f in fs) for fs in eights]
    L.append(f"{I}else:")
    for p in range(P):
        L.append(f"{I * 2}o = uint64(obase) + uint64({p}) * o_ps")
        L += [f"{I * 2}" + "; ".join(f"out[o + uint64({f})] += acc{p}_{f}" for f in fs)
              for fs in eights]
    return "\n".join(L) + "\n"


def module_source():
    """The whole of kernels/tiles.py."""
    head = ('"""Register-blocked tiles for the direct convolution. GENERATED by\n'
            '``python minicnn/fast/kernels/microkernel.py`` from tile_source() in\n'
            'microkernel.py, which explains them; do not edit by hand. The tiles\n'
            'repeat one pattern at six sizes on purpose: numba keeps a tile in\n'
            'registers only as named scalar accumulators, one set per size."""\n'
            "import numpy as np\nfrom numba import njit, uint64\n")
    return head + "".join("\n\n" + tile_source(P, FB) for P, FB in SHAPES)


TILES_PATH = Path(__file__).with_name("tiles.py")

if __name__ == "__main__":
    TILES_PATH.write_text(module_source())
    print(f"wrote {TILES_PATH} ({len(SHAPES)} tiles)", file=sys.stderr)
