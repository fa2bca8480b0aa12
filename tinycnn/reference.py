"""Plain-loop convolution and max pooling: the teaching version and the test oracle.

Read these first. They say what Conv2D and MaxPool2D compute with nothing but loops and
slicing — no stride tricks, no reshapes — so each line maps onto the maths:

    y[n, i, j, f] = b[f] + Σ_{p, q, c} x_pad[n, i·sh + p, j·sw + q, c] · W[p, q, c, f]

The fast layers in :mod:`tinycnn.layers` must agree with these to rounding error (the tests
check it to 1e-10 in float64). They are slow: never train with them.

Padding for ``"same"`` is TensorFlow's (extra row/column at the bottom/right), computed by
:func:`tinycnn.im2col.padding_amounts`; max pooling pads with -inf so padding never wins.
"""

from __future__ import annotations

import numpy as np

from .im2col import output_size, pad, padding_amounts, unpad


def _pair(v) -> tuple[int, int]:
    return (v, v) if np.isscalar(v) else (int(v[0]), int(v[1]))


def conv2d_forward(x, kernel, bias, strides=1, padding="valid"):
    """Convolve an NHWC batch with a ``(kh, kw, C_in, F)`` kernel, one output number at a time.

    Returns ``(y, cache)``; pass ``cache`` to :func:`conv2d_backward`.
    """
    sh, sw = _pair(strides)
    kh, kw, c_in, filters = kernel.shape
    n, h, w, _ = x.shape
    pads = padding_amounts(h, w, (kh, kw), (sh, sw), padding)
    xp = pad(x, pads)
    ho = output_size(h, kh, sh, padding)
    wo = output_size(w, kw, sw, padding)
    y = np.zeros((n, ho, wo, filters), dtype=x.dtype)
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                patch = xp[b, i * sh:i * sh + kh, j * sw:j * sw + kw, :]   # (kh, kw, C_in)
                for f in range(filters):
                    y[b, i, j, f] = np.sum(patch * kernel[:, :, :, f]) + bias[f]
    return y, (x, kernel, (sh, sw), pads)


def conv2d_backward(dy, cache):
    """Gradients of :func:`conv2d_forward`: returns ``(dx, dkernel, dbias)``.

    Every output ``y[b, i, j, f]`` was ``patch · W[..., f] + b[f]``, so its upstream gradient
    ``dy[b, i, j, f]`` flows to the patch (times W), to W (times the patch) and to b (times 1).
    """
    x, kernel, (sh, sw), pads = cache
    kh, kw, _, filters = kernel.shape
    xp = pad(x, pads)
    dxp = np.zeros_like(xp)
    dkernel = np.zeros_like(kernel)
    dbias = np.zeros(filters, dtype=dy.dtype)
    n, ho, wo, _ = dy.shape
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                rows = slice(i * sh, i * sh + kh)
                cols = slice(j * sw, j * sw + kw)
                for f in range(filters):
                    g = dy[b, i, j, f]
                    dxp[b, rows, cols, :] += g * kernel[:, :, :, f]
                    dkernel[:, :, :, f] += g * xp[b, rows, cols, :]
                    dbias[f] += g
    return unpad(dxp, pads), dkernel, dbias


def maxpool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    """Max over each ``ph × pw`` window. Returns ``(y, cache)``."""
    ph, pw = _pair(pool_size)
    sh, sw = _pair(pool_size if strides is None else strides)
    n, h, w, c = x.shape
    pads = padding_amounts(h, w, (ph, pw), (sh, sw), padding)
    xp = pad(x, pads, value=-np.inf)
    ho = output_size(h, ph, sh, padding)
    wo = output_size(w, pw, sw, padding)
    y = np.zeros((n, ho, wo, c), dtype=x.dtype)
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                for ch in range(c):
                    y[b, i, j, ch] = np.max(xp[b, i * sh:i * sh + ph, j * sw:j * sw + pw, ch])
    return y, (x, (ph, pw), (sh, sw), pads)


def maxpool2d_backward(dy, cache):
    """Route each window's gradient to the *first* maximum of that window in row-major order.

    Only the winner influenced the output, so only it receives gradient (what TensorFlow does
    on ties, too). Overlapping windows add up.
    """
    x, (ph, pw), (sh, sw), pads = cache
    xp = pad(x, pads, value=-np.inf)
    dxp = np.zeros(xp.shape, dtype=dy.dtype)
    n, ho, wo, c = dy.shape
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                for ch in range(c):
                    window = xp[b, i * sh:i * sh + ph, j * sw:j * sw + pw, ch]
                    p, q = np.unravel_index(np.argmax(window), window.shape)  # first maximum
                    dxp[b, i * sh + p, j * sw + q, ch] += dy[b, i, j, ch]
    return unpad(dxp, pads)
