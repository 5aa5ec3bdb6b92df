"""Layers. Image activations are NHWC (N, H, W, C) throughout minicnn."""
from .base import Layer
from .conv import Conv2D
from .activations import ReLU, LeakyReLU, GELU
from .pooling import MaxPool2D, AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D
from .dense import Dense, Flatten
from .batchnorm import BatchNorm1D, BatchNorm2D
from .dropout import Dropout

__all__ = ["Layer", "Conv2D", "ReLU", "LeakyReLU", "GELU", "MaxPool2D", "AvgPool2D",
           "GlobalAvgPool2D", "GlobalMaxPool2D", "Dense", "Flatten", "BatchNorm1D",
           "BatchNorm2D", "Dropout"]
