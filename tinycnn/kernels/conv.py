"""Conv2D and Dense kernels: the textbook's matrix products, run chunk by chunk on both cores.

:func:`conv2d_forward` and :func:`conv2d_backward` compute what
:func:`tinycnn.functional.conv2d_forward`/``conv2d_backward`` compute — ``cols · W + b``, then
``colsᵀ · dz``, ``dz · Wᵀ`` and col2im — with three changes of *order*, never of formula:

* **cache blocking**: the batch goes through in chunks of a few images (:func:`~.memory.chunks`),
  each chunk's images padded, its im2col rows built, multiplied and used while they are still in
  the CPU cache, the chunks shared by the two cores (:func:`~.parallel.parallel_map`);
* **the bias rides in the product**: im2col gets a first column of ones and the weights a first row
  ``b``, so ``[1, cols] · [b; W] = cols · W + b`` and ``[1, cols]ᵀ · dz = [db; dW]``;
* **with stride 1, dx is a convolution**: the full convolution of ``dz`` with the kernel turned by
  180° (channels swapped) — one product, and one contiguous copy instead of col2im's strided
  additions (:func:`tinycnn.reference.conv2d_input_grad_as_convolution` spells it out).

``conv2d_backward`` and ``dense_backward`` also take ``input_grad=False``: skip dL/dx (a model's
first layer — nobody needs dL/d(images)). The weight gradients are sums over chunks, so they round
a little differently from one big sum; the tests hold them to the functional ops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..im2col import col2im, output_size, padding_amounts, pair, unpad
from .memory import Scratch, chunks, copy_to_middle, im2col_into, images_per_chunk, padded
from .parallel import matmul, parallel_map

_scratch = Scratch()    # im2col rows and other temporaries of one call (per thread)


@dataclass
class ConvGeometry:
    """The sizes of one convolution, worked out once per call."""

    input_shape: tuple          # (H, W, C_in)
    kernel: tuple               # (kh, kw)
    filters: int
    strides: tuple
    pads: tuple
    output_hw: tuple            # (Ho, Wo)
    has_bias: bool
    dtype: np.dtype

    @classmethod
    def of(cls, x, w, b, strides, padding):
        strides = pair(strides)
        kh, kw, _, filters = w.shape
        h, width, c = x.shape[1:]
        pads = padding_amounts(h, width, (kh, kw), strides, padding)
        hw = (output_size(h, kh, strides[0], padding), output_size(width, kw, strides[1], padding))
        return cls((h, width, c), (kh, kw), filters, strides, pads, hw, b is not None, x.dtype)

    @property
    def fan_in(self):
        """Columns of the im2col matrix (without the column of ones)."""
        return self.kernel[0] * self.kernel[1] * self.input_shape[2]

    @property
    def unpadded(self):
        return not any(p for side in self.pads for p in side)

    def chunks(self, n):
        """Slices of the batch that fit the cache (:func:`~.memory.images_per_chunk`)."""
        ho, wo = self.output_hw
        self.chunk_images = images_per_chunk(ho * wo * (self.fan_in + self.filters) * self.dtype.itemsize, n,
                                             work_per_image=ho * wo * self.fan_in * self.filters)
        return chunks(n, self.chunk_images)

    def pad_input(self, x, w):
        """Where the padded input goes (kept for the layer whose kernel is ``w``), or ``x`` itself."""
        return x if self.unpadded else padded(x.shape, self.pads, self.dtype, owner=w)

    def im2col(self, x_padded, pool=None, buffer=None):
        """``[1,] im2col(x_padded)`` into ``buffer`` (by default this thread's reused one)."""
        ho, wo = self.output_hw
        if buffer is None:
            buffer = _scratch.get("cols", (self.chunk_images * ho * wo * (self.has_bias + self.fan_in),), self.dtype)
        return im2col_into(x_padded, self.kernel, self.strides, buffer, pool, ones=self.has_bias)


def weights_matrix(w, b):
    """The matrix the im2col rows multiply: ``[b; W]`` with a bias, else ``W``."""
    kernel = w.reshape(-1, w.shape[-1])
    return kernel if b is None else np.concatenate([b[None], kernel])


def conv2d_forward(x, w, b, strides=(1, 1), padding="valid"):
    """:func:`tinycnn.functional.conv2d_forward`, chunk by chunk on both cores."""
    geo = ConvGeometry.of(x, w, b, strides, padding)
    n = x.shape[0]
    x_padded = geo.pad_input(x, w)
    y = np.empty((n, *geo.output_hw, geo.filters), geo.dtype)
    weights = weights_matrix(w, b)

    def convolve(batch):                        # a few images, on whichever core is free
        if x_padded is not x:
            copy_to_middle(x[batch], x_padded[batch], geo.pads)
        matmul(geo.im2col(x_padded[batch]), weights, out=y[batch].reshape(-1, geo.filters))

    parallel_map(convolve, geo.chunks(n))
    return y, (x_padded, w, geo)


def conv2d_backward(dy, cache, input_grad=True):
    """:func:`tinycnn.functional.conv2d_backward`, the same chunks as forward."""
    x_padded, w, geo = cache
    n = x_padded.shape[0]
    dx = input_grad_array(geo, n) if input_grad else None
    dx_weights = input_grad_weights(w, geo) if input_grad else None

    def backprop(batch):
        dz_rows = dy[batch].reshape(-1, geo.filters)           # (images·Ho·Wo, F)
        if input_grad:
            input_grad_chunk(geo, dz_rows, dx[batch], dx_weights)
        return matmul(geo.im2col(x_padded[batch]).T, dz_rows)   # this chunk's [db; dW]

    dw, db = split_weight_grads(sum(parallel_map(backprop, geo.chunks(n))), w, geo)
    return (input_grad_result(geo, dx) if input_grad else None), dw, db


def split_weight_grads(total, w, geo):
    """``[db; dW]`` (or ``dW``) summed over the chunks → ``(dW, db)``."""
    if geo.has_bias:
        return total[1:].reshape(w.shape), total[0]
    return total.reshape(w.shape), None


def input_grad_array(geo, n):
    """Where dL/dx goes: the input's shape when every element is written (stride 1), else the
    padded input's shape, zeroed, for col2im to add into."""
    h, width, c = geo.input_shape
    if geo.strides == (1, 1):
        return np.empty((n, h, width, c), geo.dtype)
    (top, bottom), (left, right) = geo.pads
    return np.zeros((n, h + top + bottom, width + left + right, c), geo.dtype)


def input_grad_result(geo, dx):
    """dL/dx from :func:`input_grad_array`'s array (without the padding col2im added into)."""
    return dx if geo.strides == (1, 1) else unpad(dx, geo.pads)


def input_grad_weights(w, geo):
    """What :func:`input_grad_chunk` multiplies ``dz`` by: ``flip(W)`` as ``(kh·kw·F, C_in)`` for
    stride 1 — the kernel turned by 180°, input and output channels swapped — else ``Wᵀ``."""
    kh, kw, c, f = w.shape
    if geo.strides == (1, 1):
        return np.ascontiguousarray(w[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(kh * kw * f, c)
    return w.reshape(kh * kw * c, f).T


def input_grad_chunk(geo, dz_rows, dx, weights):
    """dL/dx of a few images into ``dx``, from ``dz_rows`` (their rows in image order)."""
    (kh, kw), (ho, wo), f = geo.kernel, geo.output_hw, geo.filters
    images = dx.shape[0]
    if geo.strides != (1, 1):                                   # dx = col2im(dz · Wᵀ)
        buffer = _scratch.get("dcols", (images * ho * wo, geo.fan_in), geo.dtype)
        dcols = matmul(dz_rows, weights, out=buffer)
        col2im(dcols.reshape(images, ho, wo, kh, kw, -1), dx.shape, geo.strides, out=dx)
        return
    (top, bottom), (left, right) = geo.pads                     # dx = im2col(pad(dz)) · flip(W)
    pads = ((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right))
    dz_padded = _scratch.padded("dz_padded", (images, ho, wo, f), pads, geo.dtype)
    copy_to_middle(dz_rows.reshape(images, ho, wo, f), dz_padded, pads)
    h, width, c = geo.input_shape
    buffer = _scratch.get("dz_cols", (images * h * width * kh * kw * f,), geo.dtype)
    matmul(im2col_into(dz_padded, geo.kernel, (1, 1), buffer), weights, out=dx.reshape(-1, c))


def dense_forward(x, w, b):
    """:func:`tinycnn.functional.dense_forward`; a big product split over the cores."""
    y = matmul(x, w)
    if b is not None:
        y += b
    return y, (x, w, b is not None)


def dense_backward(dy, cache, input_grad=True):
    """:func:`tinycnn.functional.dense_backward` (``input_grad=False``: no ``dx``)."""
    x, w, has_bias = cache
    dw = matmul(x.T, dy)
    db = dy.sum(axis=0) if has_bias else None
    return (matmul(dy, w.T) if input_grad else None), dw, db
