"""minicnn: a CNN library in NumPy with hand-written backprop and numba kernels.

Image activations are NHWC: (N, H, W, C).
"""
from .layers import (Layer, Conv2D, ReLU, LeakyReLU, GELU, MaxPool2D, AvgPool2D,
                     GlobalAvgPool2D, GlobalMaxPool2D, Dense, Flatten, BatchNorm1D,
                     BatchNorm2D, Dropout)
from .losses import softmax_cross_entropy, SoftmaxCrossEntropy, softmax, log_softmax
from .model import Sequential

__version__ = "0.1.0"
