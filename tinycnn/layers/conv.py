"""Conv2D: a 2-D convolution as im2col followed by one matrix product.

Read :mod:`tinycnn.reference` first for the same computation written as plain loops,
:mod:`tinycnn.im2col` for the picture of the im2col matrix, and ``conv2d_forward`` /
``conv2d_backward`` in :mod:`tinycnn.functional` for the math this layer calls.
"""

from __future__ import annotations

import numpy as np

from .. import initializers, ops, regularizers
from .activations import make_activation
from .base import Layer, as_pair, check_choice, window_output_hw


class Conv2D(Layer):
    """2-D convolution over NHWC inputs with a ``(kh, kw, C_in, filters)`` kernel (Keras's layout).

    Forward::

        cols = im2col(x_padded)                 (N·Ho·Wo, kh·kw·C_in)   one row per output pixel
        z    = cols · W.reshape(kh·kw·C_in, F) + b                      one matrix product
        y    = act(z).reshape(N, Ho, Wo, F)

    Backward, with ``dz`` the gradient at the pre-activation, reshaped to ``(N·Ho·Wo, F)``::

        dW    = colsᵀ · dz                      (kh·kw·C_in, F) -> (kh, kw, C_in, F)
        db    = Σ_rows dz                       (F,)
        dcols = dz · Wᵀ                         (N·Ho·Wo, kh·kw·C_in)
        dx    = col2im(dcols)                   each pixel sums the gradients of its windows

    Outside teaching mode the same formulas run as :mod:`tinycnn.kernels` (chunks on both cores;
    and a ``MaxPool2D`` right after a ReLU convolution is run together with it, as one step).

    Parameters
    ----------
    filters : number of output channels F.
    kernel_size, strides : an int or a ``(rows, cols)`` pair.
    padding : ``"valid"`` (no padding) or ``"same"`` (output ``ceil(size/stride)``, padded like
        TensorFlow: an odd extra row/column goes at the bottom/right).
    activation : None, ``"relu"``, ``"softmax"`` or ``"sigmoid"`` — exactly like a following
        activation layer.
    use_bias, kernel_initializer, bias_initializer : as in Keras.
    kernel_regularizer : None, a number ``l2`` or ``tinycnn.regularizers.L2(l2)``: adds
        ``l2 · Σ kernel²`` to the loss (the model adds it and its gradient).
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, name=None):
        super().__init__(name)
        if not isinstance(filters, (int, np.integer)) or isinstance(filters, bool) or filters < 1:
            raise ValueError(f"{self.label}: filters must be a positive int, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = as_pair(kernel_size, "kernel_size", self.label)
        self.strides = as_pair(strides, "strides", self.label)
        self.padding = check_choice(padding, ("valid", "same"), "padding", self.label)
        self.activation_name = None if activation in (None, "linear") else activation
        self.activation = make_activation(activation, self.label)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)

    def compute_output_shape(self, input_shape):
        ho, wo = window_output_hw(self.label, input_shape, self.kernel_size, self.strides, self.padding, "kernel")
        return (ho, wo, self.filters)

    def create_params(self, input_shape, rng, dtype):
        c_in = input_shape[-1]
        if self.activation is not None:
            self.activation.build(self.output_shape, dtype=dtype)
        params = {"kernel": self.kernel_initializer((*self.kernel_size, c_in, self.filters), rng, dtype)}
        if self.use_bias:
            params["bias"] = self.bias_initializer((self.filters,), rng, dtype)
        return params

    def forward(self, x, training=True):
        """``Z = im2col(x) · W + b`` (:func:`tinycnn.functional.conv2d_forward`), then the activation."""
        x = self.check_input(x)
        z, self._cache = ops.conv2d_forward(x, self.params["kernel"], self.params.get("bias"),
                                            self.strides, self.padding)
        return self.activate(z, training)

    def backward(self, dy, preactivation=False):
        """``dy`` is dL/d(output); with ``preactivation=True`` it is already dL/dZ.

        Returns dL/dx and fills ``grads`` (:func:`tinycnn.functional.conv2d_backward`)."""
        cache = self.cached()
        dz = self.deactivate(self.check_grad(dy), preactivation)
        dx, self.grads["kernel"], db = ops.conv2d_backward(dz, cache)
        if self.use_bias:
            self.grads["bias"] = db
        return dx

    def get_config(self):
        return {"filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "activation": self.activation_name,
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.name_of(self.kernel_initializer),
                "bias_initializer": initializers.name_of(self.bias_initializer),
                "kernel_regularizer": self.kernel_regularizer.get_config() if self.kernel_regularizer else None,
                "name": self.name}
