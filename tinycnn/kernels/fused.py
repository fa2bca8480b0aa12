"""Conv2D with a ReLU, then MaxPool2D, as one step: the feature map between them stays in cache.

This computes what :func:`tinycnn.functional.conv2d_forward`, ``relu_forward`` and
``maxpool2d_forward`` compute one after the other (and their backwards), only in another order.
The model runs every ``Conv2D(activation="relu")`` directly followed by a ``MaxPool2D`` whose
windows tile its output this way — outside teaching mode, and unless ``model.fuse = False``.
The output and dL/dx are the same up to float rounding; ``dW`` and ``db`` add the same products
in another order.

Why: the convolution's output (``(128, 26, 26, 32)`` floats in the seed model, 11 MB a batch)
would otherwise go to main memory and back four times. Fused, each chunk of a few images is
convolved, pooled and forgotten while it is in the CPU cache; only the pooled output and one byte
per pooled value (which window position held the maximum) are kept for backward. Three facts make
it work:

* **The rows of im2col may come in any order**: each output pixel is computed from its own row.
  In *window-major* order (:func:`~.memory.window_major`) the convolution's output arrives as
  ``ph·pw`` contiguous blocks, one per window position, and the max pooling is the elementwise max
  of whole blocks.
* **ReLU commutes with max** (it never changes the order of numbers): pool ``z`` first, then apply
  the ReLU to the pooled values — a quarter of the data.
* **The ReLU's backward moves in front of the pooling's**: the pooling sends ``g`` to the window's
  maximum, where the ReLU's mask is ``[pooled > 0]``; so ``relu_backward(pool_backward(g)) =
  pool_backward(g · [pooled > 0])``, again on the small array.
"""

from __future__ import annotations

import numpy as np

from .conv import (ConvGeometry, input_grad_array, input_grad_chunk, input_grad_result, input_grad_weights,
                   split_weight_grads, weights_matrix)
from .elementwise import relu_into
from . import memory
from .memory import Scratch, copy_to_middle, window_major
from .parallel import matmul, parallel_map
from .pool import max_and_first_argmax, route_to_argmax, windows_tile_exactly

#: Forward keeps its im2col rows for backward when the whole batch's take at most this many bytes
#: (a first layer's few columns are cheap to keep and slow to rebuild); larger rows leave the cache
#: before backward reads them, and rebuilding them chunk by chunk is cheaper.
KEEP_COLS_BYTES = 4 * 2**20

_scratch = Scratch()


def conv2d_relu_maxpool2d_forward(x, w, b, strides, padding, pool_size, training=True):
    """``maxpool2d(relu(conv2d(x)))`` for a pooling whose windows tile the convolution's output.

    For each chunk of a few images (both cores take chunks)::

        z[k]  = cols[k] · W + b          window position k = i·pw + j
        m     = max_k z[k]               and first = the first k holding it (ties: the first)
        y     = relu(m)

    ``training=False`` (predict) skips recording ``first``. Returns ``(y, cache)``.
    """
    geo = ConvGeometry.of(x, w, b, strides, padding)
    pool = tuple(pool_size)
    n = x.shape[0]
    x_padded = geo.pad_input(x, w)
    pooled = (geo.output_hw[0] // pool[0], geo.output_hw[1] // pool[1], geo.filters)
    y = np.empty((n, *pooled), geo.dtype)
    first = np.empty(y.shape, np.uint8) if training else None
    weights = weights_matrix(w, b)
    kept = _convolve_and_pool(geo, weights, pool, x_padded, y, first, x, owner=w)
    return y, [x_padded, w, weights, geo, pool, y, first, kept]


def _convolve_and_pool(geo, weights, pool, x_padded, y, first, x=None, owner=None):
    """Fill ``y`` (and ``first``, unless None), a chunk of images at a time; given ``x``, each chunk
    first pads its images into ``x_padded``. Returns the chunks' im2col rows when they are kept for
    backward (:data:`KEEP_COLS_BYTES`), else None."""
    windows, pooled = pool[0] * pool[1], y.shape[1:]
    n = x_padded.shape[0]
    batch_chunks = geo.chunks(n)
    ho, wo = geo.output_hw
    per_image = ho * wo * (geo.has_bias + geo.fan_in)
    keep = first is not None and n * per_image * geo.dtype.itemsize <= KEEP_COLS_BYTES
    kept = (memory.kept("cols", owner, (n * per_image,), geo.dtype) if owner is not None
            else np.empty(n * per_image, geo.dtype)) if keep else None

    def step(batch):
        images = batch.stop - batch.start
        z = _scratch.get("z", (images, windows, *pooled), geo.dtype)
        into = kept[batch.start * per_image:batch.stop * per_image] if keep else None
        if x is not None and x_padded is not x:
            copy_to_middle(x[batch], x_padded[batch], geo.pads)
        cols = geo.im2col(x_padded[batch], pool, into)             # window-major rows
        matmul(cols, weights, out=z.reshape(-1, geo.filters))      # z = [1, cols] · [b; W]
        blocks = z.reshape(windows, images, *pooled)               # blocks[k]: window position k
        max_and_first_argmax(blocks, y[batch], None if first is None else first[batch], _scratch.get)
        relu_into(y[batch], y[batch])                              # relu(max(z)) = max(relu(z))
        return cols if keep else None

    cols = parallel_map(step, batch_chunks)
    return cols if keep else None


def conv2d_relu_maxpool2d_backward(dy, cache, input_grad=True):
    """dL/dy → ``(dx, dW, db)`` (``dx`` None with ``input_grad=False``), for the same chunks::

        g     = dy · [y > 0]             the ReLU's backward, on the pooled gradient
        dz[k] = g where first == k       the pooling's backward, window-major
        dW, db = colsᵀ · dz, Σ dz        (and dx from dz in image order, as Conv2D's kernel)
    """
    x_padded, w, weights, geo, pool, y, first, kept = cache
    n = x_padded.shape[0]
    if first is None:         # the forward ran in inference mode: find the winning positions now
        first = cache[6] = np.empty(y.shape, np.uint8)
        kept = cache[7] = _convolve_and_pool(geo, weights, pool, x_padded, np.empty_like(y), first)
    dx = input_grad_array(geo, n) if input_grad else None
    dx_weights = input_grad_weights(w, geo) if input_grad else None
    windows, pooled = pool[0] * pool[1], y.shape[1:]

    def step(chunk):
        index, batch = chunk
        images = batch.stop - batch.start
        positive = np.greater(y[batch], 0, out=_scratch.get("positive", (images, *pooled), np.bool_))
        g = np.multiply(dy[batch], positive, out=_scratch.get("g", (images, *pooled), geo.dtype))
        dz = _scratch.get("dz", (images, windows, *pooled), geo.dtype).reshape(windows, images, *pooled)
        route_to_argmax(g, first[batch], dz, _scratch.get)
        if input_grad:                                              # dx needs dz in image order
            in_order = _scratch.get("dz_in_order", (images, *geo.output_hw, geo.filters), geo.dtype)
            np.copyto(window_major(in_order, pool), dz.reshape(*pool, *dz.shape[1:]))
            input_grad_chunk(geo, in_order.reshape(-1, geo.filters), dx[batch], dx_weights)
        cols = kept[index] if kept is not None else geo.im2col(x_padded[batch], pool)
        return matmul(cols.T, dz.reshape(-1, geo.filters))

    dw, db = split_weight_grads(sum(parallel_map(step, list(enumerate(geo.chunks(n))))), w, geo)
    return (input_grad_result(geo, dx) if input_grad else None), dw, db
