"""Flatten: the bridge from feature maps to Dense layers."""

from __future__ import annotations

import numpy as np

from .base import Layer


class Flatten(Layer):
    """``(N, H, W, C) -> (N, H·W·C)`` in row-major (H, W, C) order — the same order as Keras, so
    a Dense kernel copied from Keras lines up. Backward reshapes the gradient back."""

    def compute_output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)

    def forward(self, x, training=True):
        x = self.check_input(x)
        self._cache = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        shape = self.cached()
        self.check_grad(dy, (shape[0],) + self.output_shape)
        return dy.reshape(shape)
