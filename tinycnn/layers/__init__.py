"""Layers, one file per family. Each has an explicit ``forward`` and ``backward``."""

from .activations import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer
from .conv import Conv2D
from .dense import Dense
from .normalization import BatchNormalization
from .pool import AveragePooling2D, AvgPool2D, GlobalAveragePooling2D, MaxPool2D, MaxPooling2D
from .preprocessing import Normalization, Rescaling
from .regularization import Dropout
from .reshape import Flatten

__all__ = ["Layer", "Conv2D", "MaxPool2D", "MaxPooling2D", "AveragePooling2D", "AvgPool2D",
           "GlobalAveragePooling2D", "Dense", "Dropout", "BatchNormalization", "ReLU", "LeakyReLU",
           "Tanh", "Softmax", "Sigmoid", "Flatten", "Rescaling", "Normalization"]
