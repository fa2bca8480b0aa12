"""Activation layers: ReLU, LeakyReLU, Tanh, Sigmoid, Softmax.

They have no weights. Conv2D and Dense accept ``activation="relu"`` (or ``"softmax"``,
``"sigmoid"``) as sugar: the layer then owns one of these objects and calls its ``forward`` after
the linear part and its ``backward`` before — exactly the same numbers as a separate layer.
"""

from __future__ import annotations

import numpy as np

from ..fast import relu, relu_backward
from .base import Layer


class ReLU(Layer):
    """``y = max(x, 0)``;  ``dx = dy · [x > 0]``.

    The derivative at exactly 0 is taken as 0 (as TensorFlow does). The layer keeps its *output*
    for backward: ``y > 0`` exactly where ``x > 0``, so no separate mask is stored.
    """

    def forward(self, x, training=True, inplace=False):
        """``inplace=True`` overwrites ``x`` with the result (Conv2D and Dense use it on their own
        freshly computed ``z``, saving an array and a pass)."""
        x = self.check_input(x)
        y = relu(x, out=x if inplace else None)      # np.maximum(x, 0), on all cores
        self._cache = y
        return y

    def applied(self, y):
        """Record ``y`` as this ReLU's output when the owning layer computed ``max(z, 0)`` itself
        (Conv2D does, chunk by chunk, while the numbers are in cache); returns ``y``."""
        self._cache = self.check_input(y)
        return y

    def backward(self, dy):
        y = self.cached()
        self.check_grad(dy, y.shape)
        return relu_backward(dy, y)                   # dy · [y > 0]


class LeakyReLU(Layer):
    """``y = x`` for ``x > 0``, ``negative_slope · x`` otherwise;  ``dx = dy · (1 or negative_slope)``.

    Keras's ``LeakyReLU`` layer defaults to ``negative_slope=0.3``; the ``"leaky_relu"``
    activation string uses 0.2 (as Keras's ``activations.leaky_relu``).
    """

    def __init__(self, negative_slope=0.3, name=None):
        super().__init__(name)
        if not isinstance(negative_slope, (int, float)) or isinstance(negative_slope, bool) or negative_slope < 0:
            raise ValueError(f"{self.label}: negative_slope must be a number >= 0, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def forward(self, x, training=True, inplace=False):
        x = self.check_input(x)
        slope = np.where(x > 0, 1, self.negative_slope).astype(x.dtype)
        self._cache = slope
        return x * slope

    def backward(self, dy):
        slope = self.cached()
        self.check_grad(dy, slope.shape)
        return dy * slope

    def get_config(self):
        return {"negative_slope": self.negative_slope, "name": self.name}


class Tanh(Layer):
    """``y = tanh(x)``;  ``dx = dy · (1 − y²)``."""

    def forward(self, x, training=True, inplace=False):
        x = self.check_input(x)
        y = np.tanh(x)
        self._cache = y
        return y

    def backward(self, dy):
        y = self.cached()
        self.check_grad(dy, y.shape)
        return dy * (1 - y * y)


class Softmax(Layer):
    """``y_i = exp(x_i) / Σ_j exp(x_j)`` over the last axis.

    Backward is the Jacobian-vector product ``dx = y ⊙ (dy − Σ_j dy_j y_j)``.

    Trained with cross-entropy, the model never calls this backward: it fuses softmax and the
    loss, whose combined gradient ``(y − onehot)/N`` is both simpler and numerically stable.
    """

    def forward(self, x, training=True, inplace=False):
        x = self.check_input(x)
        y = softmax(x)
        self._cache = (x, y)
        return y

    def backward(self, dy):
        _, y = self.cached()
        self.check_grad(dy, y.shape)
        return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))

    @property
    def logits(self) -> np.ndarray:
        """The input of the last forward call (used when the loss is fused with the softmax)."""
        return self.cached()[0]


class Sigmoid(Layer):
    """``y = 1 / (1 + exp(−x))``;  ``dx = dy · y · (1 − y)``."""

    def forward(self, x, training=True, inplace=False):
        x = self.check_input(x)
        y = sigmoid(x)
        self._cache = (x, y)
        return y

    def backward(self, dy):
        _, y = self.cached()
        self.check_grad(dy, y.shape)
        return dy * y * (1 - y)

    @property
    def logits(self) -> np.ndarray:
        return self.cached()[0]


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the row maximum so that ``exp`` cannot overflow."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function, written so that neither branch overflows."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


ACTIVATIONS = {"relu": ReLU, "softmax": Softmax, "sigmoid": Sigmoid, "tanh": Tanh,
               "leaky_relu": lambda name: LeakyReLU(0.2, name=name)}


def make_activation(name: str | None, owner: str) -> Layer | None:
    """The activation object a Conv2D/Dense layer owns for ``activation=name`` (None for linear)."""
    if name is None or name == "linear":
        return None
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(
            f"{owner}: unknown activation {name!r}; expected None, 'linear' or one of {sorted(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name](name=name)
