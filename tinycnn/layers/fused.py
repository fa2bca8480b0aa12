"""Conv2D with a ReLU, then MaxPool2D, run as one step: the feature map between them stays in cache.

Read :mod:`tinycnn.layers.conv` and :mod:`tinycnn.layers.pool` first: this file computes what
those two layers compute one after the other, only in a different order. :class:`tinycnn.Sequential`
runs every ``Conv2D(activation="relu")`` directly followed by a non-overlapping ``MaxPool2D`` this
way; set ``model.fuse = False`` to run the two layers separately (the trace tool always does, to
show every array). The output and dL/dx are the same bit for bit; ``dW`` and ``db`` add the same
products in another order, so they differ by float rounding (the tests hold them to 1e-4 of the
largest entry in float32, 1e-12 in float64). One exception: with a single filter the products are
matrix-vector products, whose BLAS kernels may round a row differently depending on where it sits
in the matrix — there the output agrees to float rounding (found by the tests' random shapes).

Why bother? In the seed model the convolution's output is ``(128, 26, 26, 32)`` floats, 11 MB per
batch of 128. Run separately, that array goes to main memory and back four times (written by the
convolution, read by the pooling; its gradient written by the pooling's backward and read by the
convolution's). Fused, each chunk of a few images is convolved, pooled and forgotten while it is
in the CPU cache; only the pooled output, four times smaller, and one byte per pooled value (which
window position held the maximum) are kept for backward.

Three facts make it work:

* **The rows of im2col may come in any order**: each output pixel is computed from its own row.
  We put them in *window-major* order (:func:`tinycnn.fast.window_major`): first the top-left
  pixel of every pooling window, then the pixel to its right, and so on. The convolution's output
  then arrives as ``ph·pw`` contiguous blocks, one per window position, and the max pooling is the
  elementwise max of whole blocks — no strided slices. Backward uses the same order for
  ``dW = colsᵀ · dz`` (hence the different order of additions).
* **ReLU commutes with max**: ``max(relu(z₁), …, relu(z₄)) = relu(max(z₁, …, z₄))`` because ReLU
  never changes the order of numbers. So we pool ``z`` first and apply the ReLU to the pooled
  values — a pass over a quarter of the data.
* **The ReLU's backward can move in front of the pooling's.** The pooling sends each window's
  gradient ``g`` to the position holding its maximum and 0 elsewhere; the ReLU's backward then
  multiplies by ``[y > 0]`` at that position — and the value there *is* the window's pooled
  output. So ``relu_backward(pool_backward(g)) = pool_backward(g · [pooled > 0])``, again on the
  small array. (When a window's maximum is ≤ 0, the ReLU outputs were all 0 and the separate
  layers would send ``g`` to the window's first position; either way ``[pooled > 0] = 0`` makes
  the gradient 0, so which position "won" does not matter.)
"""

from __future__ import annotations

import numpy as np

from ..fast import matmul, max_and_first_argmax, parallel_map, relu_into, route_to_argmax, window_major
from .activations import ReLU
from .base import RanFused
from .conv import Conv2D
from .pool import MaxPool2D


#: Forward keeps its im2col rows for backward when the whole batch's take at most this many bytes,
#: instead of backward building them again. A first layer's rows (ten columns: 4 MB at batch 128)
#: are cheap to keep and slow to rebuild (one input channel makes short pieces to copy): the seed
#: model's training step took 3–4 % less time. Keeping the deeper model's second convolution's
#: rows too (7 MB at batch 32, 29 MB at 128) made its step 2.5–3.3 % slower: those rows leave the
#: cache before backward reads them, and rebuilding them chunk by chunk is cheaper than reading them
#: back (``python benchmarks/knob_ab.py tinycnn.layers.fused.KEEP_COLS_BYTES 0 4194304 40000000``).
KEEP_COLS_BYTES = 4 * 2**20


class ConvReLUPool:
    """``Conv2D(activation="relu")`` → ``MaxPool2D``, as one forward and one backward.

    Not a layer of its own: the model keeps both layers (their weights, configs and gradients live
    in ``conv``); :class:`tinycnn.Sequential` builds this step from them at run time.

    Forward, for each chunk of a few images (both cores take chunks)::

        z[k]  = cols[k] · W + b                 window position k = i·pw + j; Conv2D's chunk code
        m     = max_k z[k]                      and first = the first k holding it
        y     = relu(m)                         the step's output: the pooled feature map

    Backward, for the same chunks, from ``dy`` = dL/dy::

        g     = dy · [y > 0]                    the ReLU's backward, on the pooled gradient
        dz[k] = g where first == k, else 0      the pooling's backward
        dW, db = colsᵀ · dz, Σ dz               Conv2D's chunk code (dx too, from dz in image order)

    ``cols`` are built again chunk by chunk, or, when the whole batch's take at most
    :data:`KEEP_COLS_BYTES`, kept from forward.
    """

    can_skip_input_grad = True

    def __init__(self, conv: Conv2D, pool: MaxPool2D):
        if not self.fits(conv, pool):
            raise ValueError(f"ConvReLUPool: {conv.label} → {pool.label} cannot be fused "
                             "(needs a built Conv2D with a ReLU and a non-overlapping MaxPool2D that tiles its output)")
        self.conv, self.pool = conv, pool
        self.name = f"{conv.name}+{pool.name}"
        self._cache = None

    @staticmethod
    def fits(conv, pool) -> bool:
        """True for a built ``Conv2D(activation="relu")`` whose output a ``MaxPool2D`` cuts into
        whole, non-overlapping windows (no padding, window = stride, sizes divisible)."""
        return (type(conv) is Conv2D and type(pool) is MaxPool2D and conv.built and pool.built
                and isinstance(conv.activation, ReLU) and conv.fuse_relu and pool.tiles
                and pool.input_shape == conv.output_shape)

    def forward(self, x, training=True):
        """The pooled feature map. In training mode it also records, for backward, which window
        position held each maximum; inference (``training=False``, as in ``predict``) skips that."""
        conv, pool = self.conv, self.pool
        x = conv.check_input(x)
        x_padded = conv._padded(x)
        y = np.empty((x.shape[0], *pool.output_shape), conv.dtype)
        first = np.empty(y.shape, np.uint8) if training else None
        kept = self._convolve_and_pool(x_padded, y, first, x)
        for layer in (conv, conv.activation, pool):   # their own caches would be stale: this step has the data
            layer._cache = RanFused(self.name)
        self._cache = (x_padded, y, first, kept)
        return y

    def _convolve_and_pool(self, x_padded, y, first, x=None):
        """Fill ``y`` (and ``first``, unless None), a chunk of images at a time; given the input
        ``x``, each chunk first pads its images into ``x_padded``. Returns each chunk's im2col rows
        when they are kept for backward (see :data:`KEEP_COLS_BYTES`), else None."""
        conv, pool = self.conv, self.pool
        windows, weights = pool.pool_size[0] * pool.pool_size[1], conv._weights()
        n, per_image = x_padded.shape[0], conv._cols_per_image()
        keep = first is not None and n * per_image * conv.dtype.itemsize <= KEEP_COLS_BYTES
        kept = self._scratch("kept_cols", (n * per_image,), conv.dtype) if keep else None

        def step(batch):
            images = batch.stop - batch.start
            z = self._scratch("z", (images, windows, *pool.output_shape), conv.dtype)
            into = kept[batch.start * per_image:batch.stop * per_image] if keep else None
            if x is not None:
                conv._pad(x[batch], x_padded[batch])
            cols = conv._im2col(x_padded[batch], pool.pool_size, into)   # window-major rows
            matmul(cols, weights, out=z.reshape(-1, conv.filters))       # z = [1, cols] · [b; W]
            blocks = z.reshape(windows, images, *pool.output_shape)  # blocks[k]: window position k
            max_and_first_argmax(blocks, y[batch], None if first is None else first[batch], self._scratch)
            relu_into(y[batch], y[batch])                            # relu(max(z)) = max(relu(z))
            return cols if keep else None

        cols = parallel_map(step, conv._chunks(n))
        return cols if keep else None

    def backward(self, dy, input_grad=True):
        """dL/dy → dL/dx (None with ``input_grad=False``); fills ``conv.grads``."""
        conv, pool = self.conv, self.pool
        if self._cache is None:
            from ..safety import CallOrderError
            raise CallOrderError(f"{self.name}: backward called before forward")
        x_padded, y, first, kept = self._cache
        pool.check_grad(dy, y.shape)
        if first is None:         # the forward ran in inference mode: find the winning positions now
            first = np.empty(y.shape, np.uint8)
            kept = self._convolve_and_pool(x_padded, np.empty_like(y), first)
            self._cache = (x_padded, y, first, kept)
        dx = conv._input_grad_array(x_padded.shape[0]) if input_grad else None
        dx_weights = conv._input_grad_weights() if input_grad else None

        windows, pooled = pool.pool_size[0] * pool.pool_size[1], y.shape[1:]

        def step(chunk):
            index, batch = chunk
            images = batch.stop - batch.start
            positive = np.greater(y[batch], 0, out=self._scratch("positive", (images, *pooled), np.bool_))
            g = np.multiply(dy[batch], positive, out=self._scratch("g", (images, *pooled), conv.dtype))
            dz = self._scratch("dz", (images, windows, *pooled), conv.dtype).reshape(windows, images, *pooled)
            route_to_argmax(g, first[batch], dz, self._scratch)       # the pooling's backward, window-major
            dz_rows = dz.reshape(-1, conv.filters)
            if input_grad:                                            # dx needs dz in image order
                in_order = self._scratch("dz_in_order", (images, *conv.output_shape), conv.dtype)
                np.copyto(window_major(in_order, pool.pool_size), dz.reshape(*pool.pool_size, *dz.shape[1:]))
                conv._input_grad(in_order.reshape(-1, conv.filters), dx[batch], dx_weights)
            cols = kept[index] if kept is not None else conv._im2col(x_padded[batch], pool.pool_size)
            return conv._param_grads(cols, dz_rows)

        conv._set_grads(parallel_map(step, list(enumerate(conv._chunks(x_padded.shape[0])))))
        return conv._input_grad_result(dx) if input_grad else None

    def _scratch(self, name, shape, dtype):
        """A reused array for one chunk (see :class:`tinycnn.fast.Scratch`)."""
        return self.conv.scratch.get("fused_" + name, shape, dtype)

    def __repr__(self):
        return f"ConvReLUPool({self.conv!r}, {self.pool!r})"
