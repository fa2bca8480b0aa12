"""Pooling layers: MaxPool2D, AveragePooling2D, GlobalAveragePooling2D.

The math is in :mod:`tinycnn.functional` (``maxpool2d_forward`` and friends); the loops in
:mod:`tinycnn.reference` say the same thing one window at a time.
"""

from __future__ import annotations

from .. import ops
from .base import Layer, as_pair, check_choice, window_output_hw


class _Pooling(Layer):
    """What max and average pooling share: window, strides, padding and the output shape."""

    def __init__(self, pool_size=2, strides=None, padding="valid", name=None):
        super().__init__(name)
        self.pool_size = as_pair(pool_size, "pool_size", self.label)
        self.strides = self.pool_size if strides is None else as_pair(strides, "strides", self.label)
        self.padding = check_choice(padding, ("valid", "same"), "padding", self.label)

    def compute_output_shape(self, input_shape):
        ho, wo = window_output_hw(self.label, input_shape, self.pool_size, self.strides, self.padding, "pool_size")
        return (ho, wo, input_shape[-1])

    def get_config(self):
        return {"pool_size": self.pool_size, "strides": self.strides, "padding": self.padding,
                "name": self.name}


class MaxPool2D(_Pooling):
    """Max over each ``ph × pw`` window of every channel (NHWC).

    Backward: only the winner influenced the output, so the whole upstream gradient of a window
    goes to the position holding the max. On ties the first maximum in row-major order wins, as in
    TensorFlow; overlapping windows add up. With ``padding="same"`` the padding is −inf, so it
    never wins.

    Parameters
    ----------
    pool_size : int or pair (default 2).
    strides : int, pair, or None (default: equal to ``pool_size``, as in Keras).
    padding : ``"valid"`` or ``"same"`` (TensorFlow-style, extra row/column at the bottom/right).
    """

    def forward(self, x, training=True):
        x = self.check_input(x)
        y, self._cache = ops.maxpool2d_forward(x, self.pool_size, self.strides, self.padding)
        return y

    def backward(self, dy):
        cache = self.cached()
        return ops.maxpool2d_backward(self.check_grad(dy), cache)


MaxPooling2D = MaxPool2D  # Keras's name


class AveragePooling2D(_Pooling):
    """Mean over each ``ph × pw`` window of every channel (NHWC).

    Backward: each window's upstream gradient is shared equally among the values it averaged,
    ``dx += dy / count`` (overlapping windows add up). With ``padding="same"`` the padding is not
    counted — a border window averages only the real pixels it covers, as in TensorFlow.
    """

    def forward(self, x, training=True):
        x = self.check_input(x)
        y, self._cache = ops.avgpool2d_forward(x, self.pool_size, self.strides, self.padding)
        return y

    def backward(self, dy):
        cache = self.cached()
        return ops.avgpool2d_backward(self.check_grad(dy), cache)


AvgPool2D = AveragePooling2D


class GlobalAveragePooling2D(Layer):
    """``(N, H, W, C) -> (N, C)``: the mean of each feature map. ``dx = dy / (H·W)`` everywhere."""

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.label}: expected inputs of shape (batch, height, width, channels), got "
                             f"(batch, {', '.join(map(str, input_shape))})")
        return (input_shape[2],)

    def forward(self, x, training=True):
        x = self.check_input(x)
        y, self._cache = ops.global_avgpool2d_forward(x)
        return y

    def backward(self, dy):
        cache = self.cached()
        return ops.global_avgpool2d_backward(self.check_grad(dy), cache)
