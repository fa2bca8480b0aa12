"""Activation layers: ReLU, LeakyReLU, Tanh, Sigmoid, Softmax.

They have no weights. Conv2D and Dense accept ``activation="relu"`` (or ``"softmax"``,
``"sigmoid"``) as sugar: the layer then owns one of these objects and calls its ``forward`` after
the linear part and its ``backward`` before — exactly the same numbers as a separate layer.
The math is in :mod:`tinycnn.functional` (``relu_forward`` / ``relu_backward`` and friends).
"""

from __future__ import annotations

from .. import ops
from ..functional import sigmoid, softmax  # noqa: F401  (re-exported: tinycnn.layers.activations.softmax)
from .base import Layer


class _Elementwise(Layer):
    """An activation computed by a pair of ops: ``y, cache = forward_op(x)``, ``dx = backward_op(dy, cache)``."""

    op = ""    # "relu" -> ops.relu_forward / ops.relu_backward

    def forward(self, x, training=True):
        x = self.check_input(x)
        y, self._cache = ops.implementation(f"{self.op}_forward")(x, *self.op_arguments())
        return y

    def backward(self, dy):
        cache = self.cached()
        return ops.implementation(f"{self.op}_backward")(self.check_grad(dy), cache)

    def op_arguments(self) -> tuple:
        return ()


class ReLU(Layer):
    """``y = max(x, 0)``;  ``dx = dy · [x > 0]``. The derivative at exactly 0 is taken as 0 (as
    TensorFlow does)."""

    def forward(self, x, training=True):
        x = self.check_input(x)
        y, self._cache = ops.relu_forward(x)
        return y

    def backward(self, dy):
        cache = self.cached()
        return ops.relu_backward(self.check_grad(dy), cache)


class LeakyReLU(_Elementwise):
    """``y = x`` for ``x > 0``, ``negative_slope · x`` otherwise;  ``dx = dy · (1 or negative_slope)``.

    Keras's ``LeakyReLU`` layer defaults to ``negative_slope=0.3``; the ``"leaky_relu"``
    activation string uses 0.2 (as Keras's ``activations.leaky_relu``).
    """

    op = "leaky_relu"

    def __init__(self, negative_slope=0.3, name=None):
        super().__init__(name)
        if not isinstance(negative_slope, (int, float)) or isinstance(negative_slope, bool) or negative_slope < 0:
            raise ValueError(f"{self.label}: negative_slope must be a number >= 0, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def op_arguments(self):
        return (self.negative_slope,)

    def get_config(self):
        return {"negative_slope": self.negative_slope, "name": self.name}


class Tanh(_Elementwise):
    """``y = tanh(x)``;  ``dx = dy · (1 − y²)``."""

    op = "tanh"


class _Probabilities(_Elementwise):
    """Softmax and Sigmoid: the model may fuse them with the cross-entropy loss, which then works on
    their input — the logits of the last forward call."""

    logits = None

    def forward(self, x, training=True):
        self.logits = x
        return super().forward(x, training)


class Softmax(_Probabilities):
    """``y_i = exp(x_i) / Σ_j exp(x_j)`` over the last axis.

    Backward is the Jacobian-vector product ``dx = y ⊙ (dy − Σ_j dy_j y_j)``.

    Trained with cross-entropy, the model never calls this backward: it fuses softmax and the
    loss, whose combined gradient ``(y − onehot)/N`` is both simpler and numerically stable.
    """

    op = "softmax"


class Sigmoid(_Probabilities):
    """``y = 1 / (1 + exp(−x))``;  ``dx = dy · y · (1 − y)``."""

    op = "sigmoid"


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
