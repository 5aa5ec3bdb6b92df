"""Layers, the loss and Sequential: the maths of a CNN, each pass written in NumPy.

Image activations are NHWC (N, H, W, C) throughout minicnn. Every layer file starts
with its forward and backward formulas, then the plain NumPy code that computes
them (the reference backend), then the layer class.
"""
from .layer import Layer
from .conv import Conv2D
from .activations import ReLU, LeakyReLU, GELU
from .pooling import MaxPool2D, AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D
from .dense import Dense, Flatten
from .batchnorm import BatchNorm1D, BatchNorm2D
from .dropout import Dropout
from .loss import softmax_cross_entropy, SoftmaxCrossEntropy, softmax, log_softmax
from .sequential import Sequential

__all__ = ["Layer", "Conv2D", "ReLU", "LeakyReLU", "GELU", "MaxPool2D", "AvgPool2D",
           "GlobalAvgPool2D", "GlobalMaxPool2D", "Dense", "Flatten", "BatchNorm1D",
           "BatchNorm2D", "Dropout", "softmax_cross_entropy", "SoftmaxCrossEntropy", "softmax",
           "log_softmax", "Sequential"]
