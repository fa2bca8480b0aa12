"""MaxPool2D: keep the largest value of each window."""

from __future__ import annotations

import numpy as np

from ..fast import copy_to_middle, max_over_windows, route_to_first_max, windows_tile_exactly
from ..im2col import col2im, pad, padding_amounts, unpad, windows
from .base import Layer, as_pair, check_choice, window_output_hw


class MaxPool2D(Layer):
    """Max over each ``ph × pw`` window of every channel (NHWC).

    Forward: for every position ``(i, j)`` inside the window, the strided slice
    ``x[:, i::sh, j::sw, :]`` holds that position's value for every output pixel; the output is
    the elementwise max of those ``ph·pw`` slices (for 2×2 pooling, three ``np.maximum`` calls).
    Backward: only the winner influenced the output, so the whole upstream gradient of a window
    goes to the position holding the max — found again by comparing each slice with the output.
    On ties the first maximum in row-major order wins, as in TensorFlow; overlapping windows add
    up. With ``padding="same"`` the padding is -inf, so it never wins.

    Parameters
    ----------
    pool_size : int or pair (default 2).
    strides : int, pair, or None (default: equal to ``pool_size``, as in Keras).
    padding : ``"valid"`` or ``"same"`` (TensorFlow-style, extra row/column at the bottom/right).
    """

    def __init__(self, pool_size=2, strides=None, padding="valid", name=None):
        super().__init__(name)
        self.pool_size = as_pair(pool_size, "pool_size", self.label)
        self.strides = self.pool_size if strides is None else as_pair(strides, "strides", self.label)
        self.padding = check_choice(padding, ("valid", "same"), "padding", self.label)

    def compute_output_shape(self, input_shape):
        ho, wo = window_output_hw(self.label, input_shape, self.pool_size, self.strides, self.padding, "pool_size")
        return (ho, wo, input_shape[-1])

    def create_params(self, input_shape, rng, dtype):
        h, w, _ = input_shape
        self.pads = padding_amounts(h, w, self.pool_size, self.strides, self.padding)
        self.tiles = windows_tile_exactly((h, w), self.pool_size, self.strides, self.pads)
        return {}

    def forward(self, x, training=True):
        x = self.check_input(x)
        (top, bottom), (left, right) = self.pads
        x_padded = x
        if not top == bottom == left == right == 0:        # -inf around the edges: never a window's max
            x_padded = self.scratch.padded("x_padded", x.shape, self.pads, x.dtype, value=-np.inf)
            copy_to_middle(x, x_padded, self.pads)
        y = max_over_windows(x_padded, self.pool_size, self.strides,
                             out=np.empty((x.shape[0], *self.output_shape), x.dtype))
        self._cache = (x_padded, y)      # (a scratch buffer when padded: valid until the next forward)
        return y

    def backward(self, dy):
        x_padded, y = self.cached()
        self.check_grad(dy, y.shape)
        dx_padded = np.empty(x_padded.shape, dy.dtype) if self.tiles else np.zeros(x_padded.shape, dy.dtype)
        route_to_first_max(dy, x_padded, y, self.pool_size, self.strides, dx_padded)
        return unpad(dx_padded, self.pads)

    def get_config(self):
        return {"pool_size": self.pool_size, "strides": self.strides, "padding": self.padding,
                "name": self.name}


MaxPooling2D = MaxPool2D  # Keras's name


class AveragePooling2D(Layer):
    """Mean over each ``ph × pw`` window of every channel (NHWC).

    Backward: each window's upstream gradient is shared equally among the values it averaged,
    ``dx += dy / count`` (col2im adds up overlapping windows). With ``padding="same"`` the
    padding is not counted — a border window averages only the real pixels it covers, as in
    TensorFlow.
    """

    def __init__(self, pool_size=2, strides=None, padding="valid", name=None):
        super().__init__(name)
        self.pool_size = as_pair(pool_size, "pool_size", self.label)
        self.strides = self.pool_size if strides is None else as_pair(strides, "strides", self.label)
        self.padding = check_choice(padding, ("valid", "same"), "padding", self.label)

    compute_output_shape = MaxPool2D.compute_output_shape

    def create_params(self, input_shape, rng, dtype):
        h, w, _ = input_shape
        self.pads = padding_amounts(h, w, self.pool_size, self.strides, self.padding)
        # How many real (not padded) pixels each window covers: the same windows over a map of ones.
        ones = pad(np.ones((1, h, w, 1), dtype), self.pads)
        self.counts = windows(ones, self.pool_size, self.strides).sum(axis=(3, 4))   # (1, Ho, Wo, 1)
        return {}

    def forward(self, x, training=True):
        x = self.check_input(x)
        x_padded = pad(x, self.pads)
        sums = windows(x_padded, self.pool_size, self.strides).sum(axis=(3, 4))    # (N, Ho, Wo, C)
        self._cache = x_padded.shape
        return sums / self.counts

    def backward(self, dy):
        x_padded_shape = self.cached()
        n = x_padded_shape[0]
        self.check_grad(dy, (n, *self.output_shape))
        share = dy / self.counts                                                   # (N, Ho, Wo, C)
        ph, pw = self.pool_size
        dwin = np.broadcast_to(share[:, :, :, None, None, :], (*share.shape[:3], ph, pw, share.shape[3]))
        return unpad(col2im(dwin, x_padded_shape, self.strides), self.pads)

    def get_config(self):
        return {"pool_size": self.pool_size, "strides": self.strides, "padding": self.padding,
                "name": self.name}


class GlobalAveragePooling2D(Layer):
    """``(N, H, W, C) -> (N, C)``: the mean of each feature map. ``dx = dy / (H·W)`` everywhere."""

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(f"{self.label}: expected inputs of shape (batch, height, width, channels), got "
                             f"(batch, {', '.join(map(str, input_shape))})")
        return (input_shape[2],)

    def forward(self, x, training=True):
        x = self.check_input(x)
        self._cache = x.shape
        return x.mean(axis=(1, 2))

    def backward(self, dy):
        shape = self.cached()
        self.check_grad(dy, (shape[0], shape[3]))
        n, h, w, c = shape
        return np.broadcast_to((dy / (h * w))[:, None, None, :], shape).copy()


AvgPool2D = AveragePooling2D
