"""BatchNormalization: normalise each channel with the batch's statistics while training."""

from __future__ import annotations

import numpy as np

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
        axes = tuple(range(x.ndim - 1))                      # every axis but the channels
        if training:
            mean = x.mean(axis=axes)
            var = x.var(axis=axes)
            m = self.momentum
            self.state["moving_mean"] *= m
            self.state["moving_mean"] += (1 - m) * mean
            self.state["moving_variance"] *= m
            self.state["moving_variance"] += (1 - m) * var
        else:
            mean, var = self.state["moving_mean"], self.state["moving_variance"]
        inv_std = 1 / np.sqrt(var + x.dtype.type(self.epsilon))
        x_hat = (x - mean) * inv_std
        self._cache = (x_hat, inv_std, training)
        y = x_hat * self.params["gamma"] if self.scale else x_hat.copy()
        if self.center:
            y += self.params["beta"]
        return y

    def backward(self, dy):
        x_hat, inv_std, training = self.cached()
        self.check_grad(dy, x_hat.shape)
        axes = tuple(range(dy.ndim - 1))
        if self.scale:
            self.grads["gamma"] = np.sum(dy * x_hat, axis=axes)
        if self.center:
            self.grads["beta"] = np.sum(dy, axis=axes)
        dx_hat = dy * self.params["gamma"] if self.scale else dy
        if not training:                                     # a fixed affine map
            return dx_hat * inv_std
        m = dy.size // dy.shape[-1]
        return (inv_std / m) * (m * dx_hat - dx_hat.sum(axis=axes) - x_hat * np.sum(dx_hat * x_hat, axis=axes))

    def get_config(self):
        return {"momentum": self.momentum, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "name": self.name}
