"""Preprocessing layers: Rescaling and Normalization — the preparation of the input, inside the model.

A model that starts with the steps its inputs need takes the images as they come, so nothing has
to be remembered and applied outside it — not by ``model.predict``, not after ``load_model``::

    norm = tc.Normalization()            # per channel (axis=-1), as Keras's
    norm.adapt(x_train)                  # x_train: uint8 / 255 as float32, (N, 28, 28, 1)
    model = tc.Sequential([norm, tc.Conv2D(32, 3, activation="relu"), ...], input_shape=(28, 28, 1))
    model.predict(x_test)                # x_test prepared like x_train: uint8 / 255, nothing more

Both are Keras's layers, with Keras's names, arguments and formulas (``keras.layers.Rescaling``,
``keras.layers.Normalization``; :mod:`tinycnn.interop.keras` maps them both ways). Neither has
trainable weights; backprop passes through them like through any layer (the math is in
:mod:`tinycnn.functional`: ``rescaling_forward/backward``, ``normalization_forward/backward``).
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..errors import CallOrderError
from .base import Layer

#: Keras's ``backend.epsilon()``: the smallest standard deviation Normalization divides by
EPSILON = 1e-7


def _numbers(value, what: str, layer: str):
    """A real number as a float, or an array of real numbers as nested lists (JSON for the config)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number, list, tuple, np.ndarray)):
        raise TypeError(f"{layer}: {what} must be a number or a sequence of numbers, got {value!r}")
    array = np.asarray(value)
    if array.dtype.kind not in "iuf" or not np.isfinite(array).all():
        raise ValueError(f"{layer}: {what} must hold finite real numbers, got {value!r}")
    return float(array) if array.ndim == 0 else array.astype(np.float64).tolist()


class Rescaling(Layer):
    """``y = x · scale + offset`` (Keras's ``Rescaling``).

    ``scale=1/255`` maps pixel values 0..255 to [0, 1]; ``scale=1/127.5, offset=-1`` to [−1, 1].
    ``scale`` and ``offset`` are numbers, or sequences that broadcast against one input (one per
    channel: length C). Backward: ``dx = dy · scale``. No weights.
    """

    def __init__(self, scale, offset=0.0, name=None):
        super().__init__(name)
        self.scale = _numbers(scale, "scale", self.label)
        self.offset = _numbers(offset, "offset", self.label)

    def compute_output_shape(self, input_shape):
        for what, value in (("scale", self.scale), ("offset", self.offset)):
            shape = np.shape(value)
            if len(shape) > len(input_shape) or any(s not in (1, d) for s, d in zip(shape[::-1], input_shape[::-1])):
                raise ValueError(f"{self.label}: {what} of shape {shape} does not broadcast against inputs of "
                                 f"shape (batch, {', '.join(map(str, input_shape))}); give a number or one per channel")
        return input_shape

    def forward(self, x, training=True):
        x = self.check_input(x)
        scale, offset = np.asarray(self.scale, x.dtype), np.asarray(self.offset, x.dtype)
        y, self._cache = ops.rescaling_forward(x, scale, offset)
        return y

    def backward(self, dy):
        cache = self.cached()
        return ops.rescaling_backward(self.check_grad(dy), cache)

    def get_config(self):
        return {"scale": self.scale, "offset": self.offset, "name": self.name}


class Normalization(Layer):
    """Standardise the input with a fixed mean and variance (Keras's ``Normalization``)::

        y = (x − mean) / max(sqrt(variance), ε)          ε = 1e-7

    ``axis`` says which axes keep their own statistics, counted as in Keras on the input *with*
    its batch axis: ``-1`` (the default) one mean and variance per channel, ``(1, 2, 3)`` one per
    pixel and channel, ``None`` a single mean and variance for everything. The statistics come
    either from the constructor (``mean=`` and ``variance=``: numbers, or arrays that broadcast to
    the kept axes' shape) or from :meth:`adapt`, which measures them on data::

        mean = average of x over every other axis     variance = average of (x − mean)²  (biased)

    They are constants while training — backward is ``dx = dy / max(sqrt(variance), ε)`` and
    nothing updates them — and are the layer's ``state`` (``mean`` and ``variance``, of the kept
    axes' shape), saved with the model. ε only guards a zero variance (Keras's choice).

    Unlike Keras's (which quietly computes ``(x − 0) / 1`` until adapted), a layer with neither
    statistics nor ``adapt`` refuses to run: that would silently be the wrong model.
    """

    def __init__(self, axis=-1, mean=None, variance=None, name=None):
        super().__init__(name)
        is_int = lambda a: isinstance(a, (int, np.integer)) and not isinstance(a, bool)  # noqa: E731
        if axis is None:
            self.axis, self._axes = None, ()
        elif is_int(axis):
            self.axis, self._axes = int(axis), (int(axis),)
        elif isinstance(axis, (tuple, list)) and all(map(is_int, axis)):
            self.axis = self._axes = tuple(int(a) for a in axis)
        else:
            raise TypeError(f"{self.label}: axis must be an int, a tuple of ints or None, got {axis!r}")
        if len(set(self._axes)) != len(self._axes):
            raise ValueError(f"{self.label}: axis {axis!r} repeats an axis")
        if (mean is None) != (variance is None):
            raise ValueError(f"{self.label}: give both mean and variance, or neither (then call adapt); "
                             f"got mean={mean!r}, variance={variance!r}")
        self._statistics = None               # (mean, variance) as float64 arrays, before the layer is built
        if mean is not None:
            mean = np.asarray(_numbers(mean, "mean", self.label), np.float64)
            variance = np.asarray(_numbers(variance, "variance", self.label), np.float64)
            if mean.shape != variance.shape:
                raise ValueError(f"{self.label}: mean and variance must have the same shape, got {mean.shape} "
                                 f"and {variance.shape}")
            if mean.ndim > len(self._axes):
                raise ValueError(f"{self.label}: mean of shape {mean.shape} has more dimensions than the "
                                 f"{len(self._axes)} kept axes (axis={self.axis!r})")
            if (variance < 0).any():
                raise ValueError(f"{self.label}: variance must be >= 0, got {variance.tolist()}")
            self._statistics = (mean, variance)

    # -- axes: which keep their statistics, which are averaged over ----------------------------
    def axes(self, input_shape) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """For inputs of ``input_shape`` (no batch axis): the axes averaged over by :meth:`adapt`
        (of the batch ``(N, *input_shape)``), the shape of ``mean`` and ``variance``, and the shape
        they take to broadcast against one input."""
        ndim = len(input_shape) + 1
        if any(not -ndim <= a < ndim for a in self._axes):
            raise ValueError(f"{self.label}: axis={self.axis!r} is out of range for inputs of shape "
                             f"(batch, {', '.join(map(str, input_shape))})")
        keep = sorted(a % ndim for a in self._axes)
        if len(set(keep)) != len(keep):
            raise ValueError(f"{self.label}: axis={self.axis!r} names the same axis twice")
        if 0 in keep:
            raise ValueError(f"{self.label}: axis={self.axis!r} includes the batch axis 0; statistics are "
                             "kept per feature, e.g. axis=-1 (per channel)")
        reduce = tuple(d for d in range(ndim) if d not in keep)
        stats_shape = tuple(input_shape[d - 1] for d in keep)
        broadcast = tuple(input_shape[d - 1] if d in keep else 1 for d in range(1, ndim))
        return reduce, stats_shape, broadcast

    def compute_output_shape(self, input_shape):
        self.axes(input_shape)                   # a clear error now for an axis that does not fit
        return input_shape

    def create_state(self, input_shape, dtype):
        if self._statistics is None:
            return {}                            # not adapted yet
        _, shape, _ = self.axes(input_shape)
        state = {}
        for key, value in zip(("mean", "variance"), self._statistics):
            try:
                state[key] = np.broadcast_to(value, shape).astype(dtype)
            except ValueError:
                raise ValueError(f"{self.label}: {key} of shape {value.shape} does not broadcast to the "
                                 f"shape {shape} of the kept axes (axis={self.axis!r})") from None
        return state

    @property
    def adapted(self) -> bool:
        """True once the layer has its mean and variance (from the constructor or :meth:`adapt`)."""
        return "mean" in self.state or self._statistics is not None

    def adapt(self, x) -> None:
        """Measure ``mean`` and ``variance`` on ``x`` (e.g. the training images, prepared exactly
        as the model's inputs will be), in float64, then store them in the layer's dtype."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self.label}: adapt expects a NumPy array, got {type(x).__name__}")
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"{self.label}: adapt expects float inputs (e.g. uint8 / 255 as float32), "
                            f"got dtype {x.dtype}")
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"{self.label}: adapt expects a non-empty batch, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"{self.label}: adapt data contains NaN or inf")
        if not self.built:
            self.build(x.shape[1:], dtype=x.dtype)
        elif x.shape[1:] != self.input_shape:
            raise ValueError(f"{self.label}: adapt expects data of shape (batch, "
                             f"{', '.join(map(str, self.input_shape))}), got {x.shape}")
        reduce, _, _ = self.axes(self.input_shape)
        self._statistics = (x.mean(axis=reduce, dtype=np.float64), x.var(axis=reduce, dtype=np.float64))
        self.state = self.create_state(self.input_shape, self.dtype)

    def forward(self, x, training=True):
        x = self.check_input(x)
        if "mean" not in self.state:
            raise CallOrderError(f"{self.label} has no mean and variance: call layer.adapt(x_train) first, or "
                                 "pass mean= and variance= to Normalization")
        _, _, shape = self.axes(self.input_shape)
        mean = self.state["mean"].reshape(shape).astype(x.dtype, copy=False)
        variance = self.state["variance"].reshape(shape).astype(x.dtype, copy=False)
        y, self._cache = ops.normalization_forward(x, mean, variance, EPSILON)
        return y

    def backward(self, dy):
        cache = self.cached()
        return ops.normalization_backward(self.check_grad(dy), cache)

    def get_config(self):
        """``axis``, ``mean``, ``variance`` (the current statistics as lists, None before
        :meth:`adapt`) and ``name``: ``Normalization(**config)`` is the same layer."""
        if "mean" in self.state:
            mean, variance = (self.state[key].tolist() for key in ("mean", "variance"))
        elif self._statistics is not None:
            mean, variance = (value.tolist() for value in self._statistics)
        else:
            mean = variance = None
        return {"axis": self.axis, "mean": mean, "variance": variance, "name": self.name}
