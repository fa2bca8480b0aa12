"""Conv2D with a ReLU, then MaxPool2D, run as one step: the feature map between them stays in cache.

Read :mod:`tinycnn.layers.conv` and :mod:`tinycnn.layers.pool` first: this file computes exactly
what those two layers compute one after the other — the same numbers, bit for bit — only in a
different order. :class:`tinycnn.Sequential` runs every ``Conv2D(activation="relu")`` directly
followed by a non-overlapping ``MaxPool2D`` this way; set ``model.fuse = False`` to run the two
layers separately (the trace tool always does, to show every array).

Why bother? In the seed model the convolution's output is ``(128, 26, 26, 32)`` floats, 11 MB per
batch of 128. Run separately, that array goes to main memory and back four times (written by the
convolution, read by the pooling; its gradient written by the pooling's backward and read by the
convolution's). Fused, each chunk of a few images is convolved, pooled and forgotten while it is
in the CPU cache; only the pooled output, four times smaller, and one byte per pooled value (which
window position held the maximum) are kept for backward.

Two facts make it exact:

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

from ..fast import max_and_first_argmax, parallel_map, route_to_argmax
from .activations import ReLU
from .conv import Conv2D
from .pool import MaxPool2D


class ConvReLUPool:
    """``Conv2D(activation="relu")`` → ``MaxPool2D``, as one forward and one backward.

    Not a layer of its own: the model keeps both layers (their weights, configs and gradients live
    in ``conv``); :class:`tinycnn.Sequential` builds this step from them at run time.

    Forward, for each chunk of a few images (both cores take chunks)::

        z     = cols · W + b                    (images, Ho, Wo, F)   Conv2D's own chunk code
        m     = max over each window of z       and first = which window position held it
        y     = relu(m)                         the step's output: the pooled feature map

    Backward, for the same chunks, from ``dy`` = dL/dy::

        g     = dy · [y > 0]                    the ReLU's backward, on the pooled gradient
        dz    = g at each window's ``first`` position, 0 elsewhere     the pooling's backward
        dW, db, dx  from dz                     Conv2D's own chunk code
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
        conv, pool = self.conv, self.pool
        x = conv.check_input(x)
        n = x.shape[0]
        x_padded = conv._pad(x)
        y = np.empty((n, *pool.output_shape), conv.dtype)
        first = np.empty(y.shape, np.uint8)

        def step(batch):
            z = self._chunk_buffer("z", batch, conv.output_shape, conv.dtype)
            conv._linear(x_padded[batch], z)                         # z = cols · W + b
            max_and_first_argmax(z, pool.pool_size, y[batch], first[batch], self._scratch)
            np.maximum(y[batch], 0, out=y[batch])                    # relu(max(z)) = max(relu(z))

        parallel_map(step, conv._chunks(n))
        for layer in (conv, conv.activation, pool):   # their own caches would be stale: this step has the data
            layer._cache = None
        self._cache = (x_padded, y, first)
        return y

    def backward(self, dy, input_grad=True):
        """dL/dy → dL/dx (None with ``input_grad=False``); fills ``conv.grads``."""
        conv, pool = self.conv, self.pool
        if self._cache is None:
            from ..safety import CallOrderError
            raise CallOrderError(f"{self.name}: backward called before forward")
        x_padded, y, first = self._cache
        pool.check_grad(dy, y.shape)
        dx = conv._input_grad_array(x_padded.shape[0]) if input_grad else None

        def step(batch):
            g = np.multiply(dy[batch], y[batch] > 0, out=self._chunk_buffer("g", batch, y.shape[1:], conv.dtype))
            dz = self._chunk_buffer("dz", batch, conv.output_shape, conv.dtype)
            route_to_argmax(g, first[batch], pool.pool_size, dz)      # the pooling's backward
            return conv._backprop(x_padded[batch], dz.reshape(-1, conv.filters),
                                  dx[batch] if input_grad else None)

        conv._set_grads(parallel_map(step, conv._chunks(x_padded.shape[0])))
        return conv._input_grad_result(dx) if input_grad else None

    def _scratch(self, name, shape, dtype):
        """A reused array of ``shape = (images, ...)``, cut from a buffer sized for the largest
        chunk: chunks of 10 and 11 images share one allocation."""
        size = int(np.prod(shape[1:]))
        flat = self.conv.scratch.get("fused_" + name, (self.conv._chunk_images * size,), dtype)
        return flat[:shape[0] * size].reshape(shape)

    def _chunk_buffer(self, name, batch, shape, dtype):
        """:meth:`_scratch` for the images of ``batch`` (a slice), each of ``shape``."""
        return self._scratch(name, (batch.stop - batch.start, *shape), dtype)

    def __repr__(self):
        return f"ConvReLUPool({self.conv!r}, {self.pool!r})"
