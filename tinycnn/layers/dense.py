"""Dense (fully connected) layer."""

from __future__ import annotations

import numpy as np

from .. import initializers, ops, regularizers
from .activations import make_activation
from .base import Layer


class Dense(Layer):
    """``y = act(x · W + b)`` with ``x`` of shape ``(N, in)``, ``W`` of shape ``(in, units)``.

    Backward, with ``dz`` the gradient at the pre-activation ``z = x · W + b``::

        dW = xᵀ · dz        (in, units)   — each weight sums input × upstream over the batch
        db = Σ_batch dz     (units,)
        dx = dz · Wᵀ        (N, in)       — handed to the layer before

    Parameters
    ----------
    units : number of outputs.
    activation : None (linear), ``"relu"``, ``"softmax"`` or ``"sigmoid"``; behaves exactly like
        the corresponding activation layer placed after this one.
    use_bias, kernel_initializer, bias_initializer : as in Keras.
    kernel_regularizer : None, a number ``l2`` or ``tinycnn.regularizers.L2(l2)``: adds
        ``l2 · Σ kernel²`` to the loss (the model adds it and its gradient).
    """

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, name=None):
        super().__init__(name)
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
            raise ValueError(f"{self.label}: units must be a positive int, got {units!r}")
        self.units = int(units)
        self.activation_name = None if activation in (None, "linear") else activation
        self.activation = make_activation(activation, self.label)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"{self.label}: expected inputs of shape (batch, features), got (batch, "
                f"{', '.join(map(str, input_shape))}); put a Flatten() before this layer"
            )
        return (self.units,)

    def create_params(self, input_shape, rng, dtype):
        if self.activation is not None:
            self.activation.build((self.units,), dtype=dtype)
        params = {"kernel": self.kernel_initializer((input_shape[0], self.units), rng, dtype)}
        if self.use_bias:
            params["bias"] = self.bias_initializer((self.units,), rng, dtype)
        return params

    def forward(self, x, training=True):
        """``Z = x · W + b`` (:func:`tinycnn.functional.dense_forward`), then the activation."""
        x = self.check_input(x)
        z, self._cache = ops.dense_forward(x, self.params["kernel"], self.params.get("bias"))
        return self.activate(z, training)

    def backward(self, dy, preactivation=False):
        """``dy`` is dL/d(output); with ``preactivation=True`` it is already dL/dZ (the model
        passes that when it fuses a final softmax/sigmoid with the cross-entropy loss)."""
        cache = self.cached()
        dz = self.deactivate(self.check_grad(dy), preactivation)
        dx, self.grads["kernel"], db = ops.dense_backward(dz, cache)
        if self.use_bias:
            self.grads["bias"] = db
        return dx

    def get_config(self):
        return {"units": self.units, "activation": self.activation_name, "use_bias": self.use_bias,
                "kernel_initializer": initializers.name_of(self.kernel_initializer),
                "bias_initializer": initializers.name_of(self.bias_initializer),
                "kernel_regularizer": self.kernel_regularizer.get_config() if self.kernel_regularizer else None,
                "name": self.name}
