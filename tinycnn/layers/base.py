"""The Layer contract that every layer follows.

.. code-block:: python

    y  = layer.forward(x, training=True)   # caches what backward needs
    dx = layer.backward(dy)                # returns dL/dx and fills layer.grads
    layer.params   # {"kernel": ..., "bias": ...}   (empty for ReLU, MaxPool2D, Flatten)
    layer.grads    # the same keys and shapes as params
    layer.state    # non-trainable arrays, e.g. BatchNormalization's moving mean and variance

``dy`` is the gradient of the loss with respect to this layer's output; ``backward`` returns the
gradient with respect to its input, which the model hands to the layer before it.

The math is not here: a layer checks its input, holds its weights and calls the pure functions of
:mod:`tinycnn.functional` through :mod:`tinycnn.ops` (``ops.conv2d_forward(x, W, b, ...)``), which
runs them as written in teaching mode and as fast kernels otherwise.

**Gradients are overwritten, never accumulated.** Each ``backward`` call replaces
``layer.grads``; calling it twice with the same ``dy`` gives the same gradients, not twice them.
(micrograd and PyTorch accumulate into ``.grad`` until you zero it — a classic source of confusion
that this contract avoids.)

Shapes are NHWC, as in Keras. ``input_shape`` and ``output_shape`` never include the batch axis.
A layer is *built* — its weights created — either by :class:`tinycnn.Sequential`, which knows the
input shape, or on its first ``forward`` call.
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import CallOrderError

def snake_case(name: str) -> str:
    """``Conv2D`` -> ``conv2d``, ``MaxPool2D`` -> ``max_pool2d`` (Keras's default layer names)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def as_pair(value, what: str, layer: str) -> tuple[int, int]:
    """Accept ``3`` or ``(3, 3)`` for a kernel size or stride; return a pair of positive ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{layer}: {what} must be an int or a pair of ints, got {value!r}")
    if min(pair) < 1:
        raise ValueError(f"{layer}: {what} must be positive, got {value!r}")
    return pair


def check_choice(value, choices: tuple[str, ...], what: str, layer: str) -> str:
    if value not in choices:
        raise ValueError(f"{layer}: unknown {what} {value!r}; expected one of {list(choices)}")
    return value


def window_output_hw(layer: str, input_shape, window, strides, padding, what: str) -> tuple[int, int]:
    """Output height and width of a sliding-window layer (Conv2D, pooling), with clear errors for
    an input that is not (height, width, channels) or a window that does not fit a "valid" input."""
    from ..im2col import output_size
    if len(input_shape) != 3:
        raise ValueError(f"{layer}: expected inputs of shape (batch, height, width, channels), got "
                         f"(batch, {', '.join(map(str, input_shape))})")
    h, w, _ = input_shape
    if padding == "valid" and (h < window[0] or w < window[1]):
        raise ValueError(f"{layer}: {what} {tuple(window)} is larger than the {h}×{w} input with "
                         f"padding='valid'; use a smaller {what.split('_')[0]} or padding='same'")
    return output_size(h, window[0], strides[0], padding), output_size(w, window[1], strides[1], padding)


class Layer:
    """Base class: shape bookkeeping, input checks and the params/grads dictionaries.

    Subclasses implement ``compute_output_shape``, ``forward``, ``backward`` and, if they have
    weights, ``create_params``; ``get_config`` returns the constructor arguments.
    """

    def __init__(self, name: str | None = None):
        self.name = name or snake_case(type(self).__name__)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}       # non-trainable (updated by forward, not by the optimizer)
        self.input_shape: tuple[int, ...] | None = None
        self.output_shape: tuple[int, ...] | None = None
        self.dtype: np.dtype | None = None
        self.batch_size: int | None = None     # of the last forward's input
        self._cache = None
        #: for a layer with a built-in activation (Conv2D, Dense): the last forward's pre-activation
        #: Z (``Y = act(Z)``) and the last backward's dL/dZ — kept for inspection (the trace tool)
        self.preactivation: np.ndarray | None = None
        self.grad_preactivation: np.ndarray | None = None

    # -- building -------------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return self.input_shape is not None

    def build(self, input_shape, rng: np.random.Generator | None = None, dtype=np.float32):
        """Create the weights for inputs of ``input_shape`` (no batch axis); return the output shape."""
        input_shape = tuple(int(s) for s in input_shape)
        self.output_shape = tuple(self.compute_output_shape(input_shape))
        self.input_shape = input_shape
        self.dtype = np.dtype(dtype)
        self.params = self.create_params(input_shape, rng or np.random.default_rng(), self.dtype)
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}
        self.state = self.create_state(input_shape, self.dtype)
        return self.output_shape

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return input_shape

    def create_params(self, input_shape, rng, dtype) -> dict[str, np.ndarray]:
        return {}

    def create_state(self, input_shape, dtype) -> dict[str, np.ndarray]:
        return {}

    def count_params(self) -> int:
        """Trainable plus non-trainable numbers, as Keras's ``count_params``."""
        return int(sum(p.size for p in self.params.values()) + sum(s.size for s in self.state.values()))

    def get_config(self) -> dict:
        return {"name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    @property
    def label(self) -> str:
        """How errors name this layer: ``Conv2D layer 'conv2d_1'``."""
        return f"{type(self).__name__} layer {self.name!r}"

    # -- checks shared by every forward/backward -----------------------------------------
    def check_input(self, x) -> np.ndarray:
        """Check a forward input (building the layer on first use) and return it."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self.label}: expected a NumPy array, got {type(x).__name__}")
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"{self.label}: expected a float32 or float64 input, got dtype {x.dtype}")
        if not self.built:
            self.build(x.shape[1:], dtype=x.dtype)
        if x.shape[1:] != self.input_shape:
            raise ValueError(
                f"{self.label}: expected input of shape (batch, {', '.join(map(str, self.input_shape))})"
                f", got {x.shape}"
            )
        if self.params and x.dtype != self.dtype:
            raise TypeError(
                f"{self.label}: input dtype {x.dtype} does not match the layer's weights ({self.dtype});"
                " cast the input (or the model, with model.astype) first"
            )
        self.batch_size = x.shape[0]
        return x

    def check_grad(self, dy, expected_shape=None) -> np.ndarray:
        """Check that ``dy`` is a gradient of this layer's last output (by default of shape
        ``(batch of the last forward, *output_shape)``)."""
        if expected_shape is None:
            expected_shape = (self.batch_size, *self.output_shape)
        if not isinstance(dy, np.ndarray) or dy.shape != tuple(expected_shape):
            got = dy.shape if isinstance(dy, np.ndarray) else type(dy).__name__
            raise ValueError(f"{self.label}: backward expected dy of shape {tuple(expected_shape)}, got {got}")
        return dy

    def cached(self):
        """What the last ``forward`` stored for ``backward`` (an error if there was none)."""
        if self._cache is None:
            raise CallOrderError(f"{self.label}: backward called before forward")
        if hasattr(self._cache, "fused_step"):
            raise CallOrderError(
                f"{self.label}: its last forward pass ran inside the fused step '{self._cache.fused_step}', "
                "which keeps what backward needs itself; call the model's backward, or run in "
                "tinycnn.teaching() (or set model.fuse = False) to run the layers one by one")
        return self._cache

    # -- a built-in activation (Conv2D and Dense: activation="relu", "softmax", ...) ------------
    def activate(self, z, training):
        """``Y = act(Z)`` with the layer's own activation object (or ``Z`` without one)."""
        if self.activation is None:
            return z
        self.preactivation = z
        return self.activation.forward(z, training)

    def deactivate(self, dy, preactivation):
        """dL/dZ from dL/dY through the activation's backward (``preactivation=True``: ``dy`` is
        dL/dZ already — the model enters there below a final softmax fused with the loss)."""
        if self.activation is None:
            return dy
        self.grad_preactivation = dy if preactivation else self.activation.backward(dy)
        return self.grad_preactivation
