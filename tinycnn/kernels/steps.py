"""How the model's layers run outside teaching mode: one by one, except that a
``Conv2D(activation="relu")`` directly followed by a ``MaxPool2D`` that tiles its output runs as
one fused step (:mod:`tinycnn.kernels.fused`)."""

from __future__ import annotations

from ..errors import CallOrderError
from .fused import conv2d_relu_maxpool2d_backward, conv2d_relu_maxpool2d_forward


def plan(layers, fuse=True) -> list:
    """The steps that run ``layers`` in order: the layers themselves, with each fusable pair
    replaced by a :class:`ConvReLUPool` (unless ``fuse`` is False)."""
    steps, i = [], 0
    while i < len(layers):
        after = layers[i + 1] if i + 1 < len(layers) else None
        if fuse and ConvReLUPool.fits(layers[i], after):
            steps.append(ConvReLUPool(layers[i], after))
            i += 2
        else:
            steps.append(layers[i])
            i += 1
    return steps


class ConvReLUPool:
    """``Conv2D(activation="relu")`` → ``MaxPool2D`` as one forward and one backward.

    Not a layer: the model keeps both layers (the weights, configs and gradients live in
    ``conv``); this step calls the fused kernel with them and fills ``conv.grads``.
    """

    #: backward(dy, input_grad=False) skips dL/dx (a model's first step: nobody needs dL/d(images))
    can_skip_input_grad = True

    def __init__(self, conv, pool):
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
        if not (type(conv).__name__ == "Conv2D" and type(pool).__name__ == "MaxPool2D" and conv.built
                and pool.built and conv.activation_name == "relu" and pool.input_shape == conv.output_shape):
            return False
        (h, w, _), (ph, pw) = conv.output_shape, pool.pool_size
        return pool.padding == "valid" and pool.strides == pool.pool_size and h % ph == 0 and w % pw == 0

    def forward(self, x, training=True):
        """The pooled feature map (``training=False``: without recording the winning positions)."""
        conv = self.conv
        x = conv.check_input(x)
        y, self._cache = conv2d_relu_maxpool2d_forward(x, conv.params["kernel"], conv.params.get("bias"),
                                                        conv.strides, conv.padding, self.pool.pool_size, training)
        for layer in (conv, conv.activation, self.pool):   # their own caches would be stale: this step has the data
            layer._cache = RanFused(self.name)
        conv.preactivation = conv.grad_preactivation = None
        return y

    def backward(self, dy, input_grad=True):
        """dL/dy → dL/dx (None with ``input_grad=False``); fills ``conv.grads``."""
        if self._cache is None:
            raise CallOrderError(f"{self.name}: backward called before forward")
        self.pool.check_grad(dy, (self._cache[5].shape[0], *self.pool.output_shape))
        dx, dw, db = conv2d_relu_maxpool2d_backward(dy, self._cache, input_grad)
        self.conv.grads["kernel"] = dw
        if db is not None:
            self.conv.grads["bias"] = db
        return dx

    def __repr__(self):
        return f"ConvReLUPool({self.conv!r}, {self.pool!r})"


class RanFused:
    """What a layer's cache holds after it ran inside a fused step: nothing its own ``backward``
    could use (``Layer.cached`` turns it into a clear error)."""

    def __init__(self, step: str):
        self.fused_step = step
