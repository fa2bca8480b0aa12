"""Layers, one file per family. Each has an explicit ``forward`` and ``backward``."""

from .activations import ReLU, Sigmoid, Softmax
from .base import Layer
from .conv import Conv2D
from .dense import Dense
from .pool import MaxPool2D, MaxPooling2D
from .reshape import Flatten

__all__ = ["Layer", "Conv2D", "MaxPool2D", "MaxPooling2D", "Dense", "ReLU", "Softmax", "Sigmoid",
           "Flatten"]
