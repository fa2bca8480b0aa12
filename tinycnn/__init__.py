"""tinycnn: a convolutional neural network framework in pure NumPy, written to be read.

The public API lives here and nothing else does.
"""

__version__ = "0.1.0"

from . import datasets, functional, gradcheck, initializers, layers, losses, metrics, optimizers, reference, zoo  # noqa: E402
from .layers import (  # noqa: E402
    AveragePooling2D, AvgPool2D, BatchNormalization, Conv2D, Dense, Dropout, Flatten,
    GlobalAveragePooling2D, Layer, LeakyReLU, MaxPool2D, MaxPooling2D, Normalization, ReLU, Rescaling, Sigmoid,
    Softmax, Tanh,
)
from .losses import SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy  # noqa: E402
from .model import Sequential, load_model  # noqa: E402
from .ops import is_teaching, set_teaching, teaching  # noqa: E402
from .errors import CallOrderError, NonFiniteError  # noqa: E402
from .optimizers import SGD, Adam  # noqa: E402
from .profiling import profile  # noqa: E402
from . import trace  # noqa: E402
from .trace import trace_step  # noqa: E402

__all__ = [
    "Sequential", "load_model", "NonFiniteError", "CallOrderError", "Layer", "Conv2D", "MaxPool2D", "MaxPooling2D", "AveragePooling2D",
    "AvgPool2D", "GlobalAveragePooling2D", "Dense", "Dropout", "BatchNormalization", "ReLU",
    "LeakyReLU", "Tanh", "Softmax", "Sigmoid", "Flatten", "Rescaling", "Normalization", "SoftmaxCrossEntropy", "SigmoidBinaryCrossEntropy", "SGD", "Adam",
    "layers", "losses", "optimizers", "initializers", "gradcheck", "reference", "zoo", "datasets",
    "metrics", "profile", "trace", "trace_step", "functional", "teaching", "set_teaching", "is_teaching",
]
