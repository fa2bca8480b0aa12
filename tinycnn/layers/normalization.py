"""BatchNormalization: normalise each channel with the batch's statistics while training."""

from __future__ import annotations

import numpy as np

from .. import ops
from .base import Layer


class BatchNormalization(Layer):
    """Per-channel (last axis) normalisation, with Keras's defaults and weight names.

    Training (``training=True``), with the mean ``μ`` and the *biased* variance ``σ²`` of the
    batch over every axis but the last (N, or N·H·W for feature maps)::

        x̂ = (x − μ) / sqrt(σ² + ε)          y = γ · x̂ + β
        moving_mean     ← momentum · moving_mean     + (1 − momentum) · μ
        moving_variance ← momentum · moving_variance + (1 − momentum) · σ²

    Inference (``training=False``) uses ``moving_mean`` and ``moving_variance`` instead — the
    layer is then a fixed per-channel affine map.

    Backward in training mode must go through μ and σ², which depend on every input of the
    batch. With ``m`` values per channel and ``dx̂ = dy · γ``::

        dγ = Σ dy · x̂        dβ = Σ dy
        dx = (1/m) · (1/sqrt(σ² + ε)) · (m · dx̂ − Σ dx̂ − x̂ · Σ (dx̂ · x̂))

    (the three terms: the direct path, the path through μ, the path through σ²).

    ``gamma``/``beta`` are trainable (``params``); ``moving_mean``/``moving_variance`` are not
    (``state``), as in Keras — and in Keras's weight order: gamma, beta, moving_mean, moving_variance.
    """

    def __init__(self, momentum=0.99, epsilon=1e-3, center=True, scale=True, name=None):
        super().__init__(name)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"{self.label}: momentum must be in [0, 1), got {momentum!r}")
        if not epsilon > 0:
            raise ValueError(f"{self.label}: epsilon must be positive, got {epsilon!r}")
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)

    def create_params(self, input_shape, rng, dtype):
        channels = input_shape[-1]
        params = {}
        if self.scale:
            params["gamma"] = np.ones(channels, dtype)
        if self.center:
            params["beta"] = np.zeros(channels, dtype)
        return params

    def create_state(self, input_shape, dtype):
        channels = input_shape[-1]
        return {"moving_mean": np.zeros(channels, dtype), "moving_variance": np.ones(channels, dtype)}

    def forward(self, x, training=True):
        x = self.check_input(x)
        gamma, beta = self._gamma_beta(x.dtype)
        if not training:
            y, cache = ops.batchnorm_inference_forward(x, gamma, beta, self.state["moving_mean"],
                                                       self.state["moving_variance"], self.epsilon)
            self._cache = (cache, False)
            return y
        y, cache = ops.batchnorm_forward(x, gamma, beta, self.epsilon)
        axes = tuple(range(x.ndim - 1))                      # every axis but the channels
        for key, batch_value in (("moving_mean", x.mean(axis=axes)), ("moving_variance", x.var(axis=axes))):
            self.state[key] *= self.momentum
            self.state[key] += (1 - self.momentum) * batch_value
        self._cache = (cache, True)
        return y

    def backward(self, dy):
        cache, training = self.cached()
        backward = ops.batchnorm_backward if training else ops.batchnorm_inference_backward
        dx, dgamma, dbeta = backward(self.check_grad(dy), cache)
        if self.scale:
            self.grads["gamma"] = dgamma
        if self.center:
            self.grads["beta"] = dbeta
        return dx

    def _gamma_beta(self, dtype):
        """γ and β, or 1 and 0 for the ones switched off (``scale=False``, ``center=False``)."""
        channels = self.input_shape[-1]
        gamma = self.params["gamma"] if self.scale else np.ones(channels, dtype)
        beta = self.params["beta"] if self.center else np.zeros(channels, dtype)
        return gamma, beta

    def get_config(self):
        return {"momentum": self.momentum, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "name": self.name}
