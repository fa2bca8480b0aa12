"""Conv2D: a 2-D convolution as im2col followed by one matrix product.

Read :mod:`tinycnn.reference` first for the same computation written as plain loops, and
:mod:`tinycnn.im2col` for the picture of the im2col matrix.
"""

from __future__ import annotations

import numpy as np

from .. import initializers, regularizers
from ..fast import chunks, copy_to_middle, im2col_into, images_per_chunk, matmul, parallel_map, relu_into
from ..im2col import col2im, padding_amounts, unpad
from .activations import ReLU, make_activation
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

    With stride 1 the same ``dx`` is computed as a convolution — the gradient of a convolution is
    the *full* convolution of ``dz`` with the kernel turned by 180°::

        dx    = im2col(pad(dz)) · flip(W)       (N·H·W, kh·kw·F) · (kh·kw·F, C_in)

    ``pad`` adds ``kernel − 1`` rows and columns on each side, less what forward padded there,
    and ``flip(W)[i, j, f, c] = W[kh−1−i, kw−1−j, c, f]``. It is one matrix product with as many
    multiply-adds as ``dz · Wᵀ``, but it replaces col2im's nine strided additions with one
    contiguous copy. (:mod:`tinycnn.reference` spells out both; the tests hold them equal.)

    How it runs fast without changing those formulas (the helpers are in :mod:`tinycnn.fast`): the
    batch goes through in chunks of a few images, on both CPU cores — each chunk's images are
    padded, and its im2col rows built, multiplied and used, while they are still in the CPU cache —
    and a ReLU activation is applied (forward and backward) chunk by chunk too. The bias rides in
    the product: im2col gets a first column of ones and the weights a first row ``b``, so
    ``[1, cols] · [b; W] = cols · W + b`` and ``[1, cols]ᵀ · dz = [db; dW]``. ``dW`` and ``db`` are
    the sums of the chunks' shares. The first layer of a model skips ``dx``: nobody needs
    dL/d(images). A ``MaxPool2D`` right after a ReLU convolution is usually run together with it,
    by :mod:`tinycnn.layers.fused`.

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

    can_skip_input_grad = True
    #: apply a ReLU activation chunk by chunk inside forward, while the rows are in cache (the
    #: trace tool switches this off to record the pre-activation ``z``, which fusing overwrites)
    fuse_relu = True

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
        h, w, c_in = input_shape
        self.pads = padding_amounts(h, w, self.kernel_size, self.strides, self.padding)
        self.fan_in = self.kernel_size[0] * self.kernel_size[1] * c_in   # columns of the im2col matrix
        if self.activation is not None:
            self.activation.build(self.output_shape, dtype=dtype)
        params = {"kernel": self.kernel_initializer((*self.kernel_size, c_in, self.filters), rng, dtype)}
        if self.use_bias:
            params["bias"] = self.bias_initializer((self.filters,), rng, dtype)
        return params

    def forward(self, x, training=True):
        x = self.check_input(x)
        n, (ho, wo, f) = x.shape[0], self.output_shape
        x_padded = self._padded(x)
        z = np.empty((n, ho, wo, f), self.dtype)
        relu_here = self.fuse_relu and isinstance(self.activation, ReLU)

        weights = self._weights()

        def convolve(batch):                           # a few images, on whichever core is free
            self._pad(x[batch], x_padded[batch])
            z_rows = self._linear(x_padded[batch], z[batch], weights)    # z = cols · W + b
            if relu_here:                              # ReLU now, while these rows are in cache
                relu_into(z_rows, z_rows)

        parallel_map(convolve, self._chunks(n))
        self._cache = x_padded        # backward rebuilds cols from it (a scratch buffer when padded)
        if relu_here:
            return self.activation.applied(z)          # = self.activation.forward(z), already done
        if self.activation is None:
            return z
        return self.activation.forward(z, training, inplace=True)  # z is ours: activate in place

    def backward(self, dy, preactivation=False, input_grad=True):
        """``dy`` is dL/d(output); with ``preactivation=True`` it is already dL/dz.

        ``input_grad=False`` skips dL/dx and returns None: the model asks for that in the first
        layer, whose input (the images) needs no gradient.
        """
        x_padded = self.cached()
        n, f = x_padded.shape[0], self.filters
        self.check_grad(dy, (n, *self.output_shape))
        relu_here = self.fuse_relu and isinstance(self.activation, ReLU) and not preactivation
        if relu_here:                                  # the ReLU's backward happens chunk by chunk
            dz, y = dy, self.activation.cached()
        else:
            dz = dy if self.activation is None or preactivation else self.activation.backward(dy)
        dx = self._input_grad_array(x_padded.shape[0]) if input_grad else None
        dx_weights = self._input_grad_weights() if input_grad else None

        def backprop(batch):                           # the same chunks as forward
            dz_rows = dz[batch].reshape(-1, f)         # (images·Ho·Wo, F)
            if relu_here:                              # dz = dy · [y > 0], while these rows are in cache
                dz_rows = np.multiply(dz_rows, y[batch].reshape(-1, f) > 0,
                                      out=self._buffer("dz")(dz_rows.shape))
            return self._backprop(x_padded[batch], dz_rows, dx[batch] if input_grad else None, dx_weights)

        self._set_grads(parallel_map(backprop, self._chunks(n)))
        return self._input_grad_result(dx) if input_grad else None

    # -- the pieces, one chunk of images at a time (also used by tinycnn.layers.fused) ----------
    def _padded(self, x):
        """Where ``im2col.pad(x, self.pads)`` goes: a buffer reused by every batch, which
        :meth:`_pad` fills chunk by chunk (each core pads its own images just before reading
        them), or ``x`` itself when there is no padding."""
        (top, bottom), (left, right) = self.pads
        if top == bottom == left == right == 0:
            return x
        return self.scratch.padded("x_padded", x.shape, self.pads, self.dtype)

    def _pad(self, x, x_padded):
        """Copy a few images ``x`` into their part of :meth:`_padded`'s buffer (its zero border is there already)."""
        if x_padded is not x:
            copy_to_middle(x, x_padded, self.pads)

    def _linear(self, x_padded, out, weights):
        """``out = im2col(x_padded) · W + b`` for a few images; returns ``out`` as rows ``(images·Ho·Wo, F)``.

        With a bias, the im2col matrix starts with a column of ones and ``weights`` (from
        :meth:`_weights`) with the bias row: ``[1, cols] · [b; W]`` — the same sum in one product.
        """
        cols = self._im2col(x_padded)                  # (images·Ho·Wo, [1 +] kh·kw·C_in)
        return matmul(cols, weights, out=out.reshape(-1, self.filters))

    def _weights(self):
        """The matrix the im2col rows multiply: ``[b; W]`` with a bias, else ``W`` (see :meth:`_linear`)."""
        kernel = self.params["kernel"].reshape(self.fan_in, self.filters)
        return np.concatenate([self.params["bias"][None], kernel]) if self.use_bias else kernel

    def _backprop(self, x_padded, dz_rows, dx, dx_weights):
        """Backward for a few images, from ``dz_rows`` = dL/dz as rows ``(images·Ho·Wo, F)``.

        Writes dL/dx into ``dx`` (unless None; an array from :meth:`_input_grad_array`, with
        ``dx_weights`` from :meth:`_input_grad_weights`) and returns this chunk's shares of ``dW``
        and ``db``.
        """
        if dx is not None:
            self._input_grad(dz_rows, dx, dx_weights)
        return self._param_grads(self._im2col(x_padded), dz_rows)

    def _param_grads(self, cols, dz_rows):
        """A chunk's share of ``[db; dW] = [1, cols]ᵀ · dz`` (``dW = colsᵀ · dz`` without a bias;
        rows in any order, the same in both)."""
        return matmul(cols.T, dz_rows)

    def _input_grad(self, dz_rows, dx, weights):
        """dL/dx of a few images into ``dx``, from ``dz_rows`` in image order."""
        if self.strides == (1, 1):                             # dx = im2col(pad(dz)) · flip(W)
            self._input_grad_by_convolution(dz_rows, dx, weights)
            return
        ho, wo, _ = self.output_shape                          # dx = col2im(dz · Wᵀ)
        buffer = self._buffer("dcols")((dx.shape[0], ho * wo * self.fan_in))
        dcols = matmul(dz_rows, weights, out=buffer.reshape(-1, self.fan_in))
        col2im(dcols.reshape(dx.shape[0], ho, wo, *self.kernel_size, -1), dx.shape, self.strides, out=dx)

    def _input_grad_by_convolution(self, dz_rows, dx, flipped):
        """Stride 1: ``dx = im2col(pad(dz)) · flip(W)``, written straight into ``dx`` (a few images)."""
        (kh, kw), ((top, bottom), (left, right)) = self.kernel_size, self.pads
        ho, wo, f = self.output_shape
        dz = dz_rows.reshape(dx.shape[0], ho, wo, f)
        pads = ((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right))
        dz_padded = self.scratch.padded("dz_padded", dz.shape, pads, self.dtype)
        copy_to_middle(dz, dz_padded, pads)
        images, h, w, c = dx.shape
        buffer = self._buffer("dz_cols")((images, h * w * kh * kw * f)).reshape(-1)
        cols = im2col_into(dz_padded, self.kernel_size, (1, 1), buffer)     # (images·H·W, kh·kw·F)
        matmul(cols, flipped, out=dx.reshape(-1, c))

    def _input_grad_weights(self):
        """The matrix :meth:`_input_grad` multiplies ``dz`` by: ``flip(W)`` as ``(kh·kw·F, C_in)``
        for stride 1 — the kernel turned by 180°, input and output channels swapped — else ``Wᵀ``."""
        kh, kw, c, f = self.params["kernel"].shape
        if self.strides == (1, 1):
            flipped = self.params["kernel"][::-1, ::-1].transpose(0, 1, 3, 2)     # (kh, kw, F, C)
            return np.ascontiguousarray(flipped).reshape(kh * kw * f, c)
        return self.params["kernel"].reshape(self.fan_in, f).T

    def _input_grad_array(self, n):
        """Where backward writes dL/dx: the input's shape when every element is written (stride 1),
        else the padded input's shape, zeroed, for col2im to add into."""
        if self.strides == (1, 1):
            return np.empty((n, *self.input_shape), self.dtype)
        (top, bottom), (left, right) = self.pads
        h, w, c = self.input_shape
        return np.zeros((n, h + top + bottom, w + left + right, c), self.dtype)

    def _input_grad_result(self, dx):
        """dL/dx from :meth:`_input_grad_array`'s array (without the padding col2im added into)."""
        return dx if self.strides == (1, 1) else unpad(dx, self.pads)

    def _set_grads(self, shares):
        """``grads`` = the sum of the chunks' shares of ``[db; dW]`` (or ``dW``)."""
        total = sum(shares)
        if self.use_bias:
            self.grads["bias"], total = total[0], total[1:]
        self.grads["kernel"] = total.reshape(self.params["kernel"].shape)

    def _im2col(self, x_padded, pool=None, buffer=None):
        """``im2col.im2col(x_padded, ...)``, written into ``buffer`` (flat; by default one reused by
        every chunk and batch)."""
        if buffer is None:
            buffer = self._buffer("cols")((self._chunk_images * self._cols_per_image(),))
        return im2col_into(x_padded, self.kernel_size, self.strides, buffer, pool, ones=self.use_bias)

    def _cols_per_image(self):
        """Elements of the im2col matrix per image: ``Ho·Wo`` rows of ``[1 +] kh·kw·C_in``."""
        ho, wo, _ = self.output_shape
        return ho * wo * (self.use_bias + self.fan_in)

    def _chunks(self, n):
        """Slices of the batch, ``self._chunk_images`` images each (see :func:`tinycnn.fast.chunks`)."""
        ho, wo, _ = self.output_shape
        self._chunk_images = images_per_chunk(ho * wo * (self.fan_in + self.filters) * self.dtype.itemsize, n,
                                              work_per_image=ho * wo * self.fan_in * self.filters)
        return chunks(n, self._chunk_images)

    def _buffer(self, name):
        """``shape -> reused array``: this layer's scratch buffer ``name`` for the calling thread."""
        return lambda shape: self.scratch.get(name, shape, self.dtype)

    def get_config(self):
        return {"filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
                "padding": self.padding, "activation": self.activation_name,
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.name_of(self.kernel_initializer),
                "bias_initializer": initializers.name_of(self.bias_initializer),
                "kernel_regularizer": self.kernel_regularizer.get_config() if self.kernel_regularizer else None,
                "name": self.name}
