"""Ready-made networks for 32x32x3 CIFAR-10 images (NHWC).

simple     — the classic small VGG-style net of the speed benchmark:
             conv3x3(3->32) ReLU, conv3x3(32->32) ReLU, maxpool2,
             conv3x3(32->64) ReLU, conv3x3(64->64) ReLU, maxpool2,
             flatten, dense(4096->512) ReLU, dense(512->10).   53.2 MFLOP/image.
airbench   — Keller Jordan's airbench94 layout (github.com/KellerJordan/cifar10-airbench):
             conv2x2(3->24, frozen patch-whitening weights, bias) GELU;
             3 groups [conv3x3 same (no bias), maxpool2, BN, GELU, conv3x3 same, BN, GELU];
             maxpool3, flatten, dense(w3->10, no bias) * 1/9.
             widths=(64, 256, 256) is airbench94 (236 MFLOP/image);
             narrower widths give the faster presets.

BatchNorm in airbench: scale frozen at 1, trainable shift, momentum 0.6, eps 1e-12.
Convolutions after the first get ``dirac_init`` (identity on the first C filters).
"""
import numpy as np

from ..nn import (Conv2D, ReLU, GELU, MaxPool2D, BatchNorm2D, Dense, Flatten)
from ..nn.init import as_rng
from ..nn.sequential import Sequential
from .whitening import whitening_weights


def simple(num_classes=10, rng=0, dtype=np.float32):
    rng = as_rng(rng)
    return Sequential([
        Conv2D(3, 32, 3, rng=rng, dtype=dtype), ReLU(),
        Conv2D(32, 32, 3, rng=rng, dtype=dtype), ReLU(), MaxPool2D(2),
        Conv2D(32, 64, 3, rng=rng, dtype=dtype), ReLU(),
        Conv2D(64, 64, 3, rng=rng, dtype=dtype), ReLU(), MaxPool2D(2),
        Flatten(), Dense(8 * 8 * 64, 512, init="he", rng=rng, dtype=dtype), ReLU(),
        Dense(512, num_classes, rng=rng, dtype=dtype),
    ])


def dirac_init(conv):
    """Make the first min(C, F) filters of a 3x3 conv pass their input channel
    through unchanged: W[center, center, c, c] = 1 (other entries of those filters 0).
    The net then starts close to a shallower one, which trains faster."""
    W = conv.params["W"]
    KH, KW, C, F = W.shape
    k = min(C, F)
    W[:, :, :, :k] = 0
    W[KH // 2, KW // 2, np.arange(k), np.arange(k)] = 1


def _bn(channels, dtype):
    return BatchNorm2D(channels, momentum=0.6, eps=1e-12, freeze_scale=True, dtype=dtype)


def _group(c_in, c_out, rng, dtype, dirac):
    conv1 = Conv2D(c_in, c_out, 3, padding="same", bias=False, rng=rng, dtype=dtype)
    conv2 = Conv2D(c_out, c_out, 3, padding="same", bias=False, rng=rng, dtype=dtype)
    if dirac:
        dirac_init(conv1)
        dirac_init(conv2)
    return [conv1, MaxPool2D(2), _bn(c_out, dtype), GELU(),
            conv2, _bn(c_out, dtype), GELU()]


def airbench(widths=(64, 256, 256), num_classes=10, rng=0, dtype=np.float32,
             whiten_images=None, frozen_whiten=True, dirac=True):
    """The airbench94 network. ``whiten_images`` (N, 32, 32, 3), already
    standardised, sets the frozen first layer to whiten 2x2 patches; without it
    that layer keeps a random init (and is still frozen).

    For ablations: ``frozen_whiten=False`` makes the first layer an ordinary
    trainable conv (random init, no whitening); ``dirac=False`` skips the
    identity init of the 3x3 convs."""
    rng = as_rng(rng)
    whiten = Conv2D(3, 24, 2, padding="valid", bias=True, rng=rng, dtype=dtype, name="Whiten")
    whiten.roles.update(W="whitening", b="whitening_bias")
    if frozen_whiten:
        whiten.frozen.add("W")
        if whiten_images is not None:
            whiten.params["W"][...] = whitening_weights(whiten_images, 2)
    elif whiten_images is not None:
        raise ValueError("airbench: whiten_images given but frozen_whiten=False "
                         "(a trainable first layer is not whitened)")
    w1, w2, w3 = widths
    layers = [whiten, GELU()]
    layers += (_group(24, w1, rng, dtype, dirac) + _group(w1, w2, rng, dtype, dirac)
               + _group(w2, w3, rng, dtype, dirac))
    layers += [MaxPool2D(3), Flatten(),
               Dense(w3, num_classes, bias=False, init="he", rng=rng, dtype=dtype, scale=1 / 9)]
    return Sequential(layers)


MODELS = {"simple": simple, "airbench": airbench}
