"""Dropout: randomly silence units while training."""

from __future__ import annotations

import numpy as np

from .. import ops
from .base import Layer


class Dropout(Layer):
    """Inverted dropout: while training, each value is kept with probability ``1 − rate`` and
    scaled by ``1 / (1 − rate)``; at inference the layer is the identity (nothing to rescale).

    ``y = x · mask / (1 − rate)`` with ``mask ~ Bernoulli(1 − rate)``;  ``dx = dy · mask / (1 − rate)``
    — the gradient flows only through the units that were kept.

    The masks come from the layer's own ``numpy.random.Generator``: ``seed`` if given, otherwise
    derived from the model's seed when the layer is built, so a seeded model drops the same
    units every run. (Keras draws different masks, so training-mode numbers cannot match it.)
    """

    def __init__(self, rate, seed=None, name=None):
        super().__init__(name)
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0.0 <= rate < 1.0:
            raise ValueError(f"{self.label}: rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def create_params(self, input_shape, rng, dtype):
        if self.seed is None:                         # derive the mask stream from the model's seed
            self.rng = np.random.default_rng(rng.integers(2**63))
        return {}

    def forward(self, x, training=True):
        x = self.check_input(x)
        if not training or self.rate == 0.0:
            self._cache = "identity"
            return x
        y, self._cache = ops.dropout_forward(x, self.rate, self.rng)
        return y

    def backward(self, dy):
        cache = self.cached()
        dy = self.check_grad(dy)
        return dy if isinstance(cache, str) else ops.dropout_backward(dy, cache)

    def get_config(self):
        return {"rate": self.rate, "seed": self.seed, "name": self.name}
