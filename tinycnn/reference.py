"""Plain-loop convolution and max pooling: the teaching version and the test oracle.

Read these first. They say what Conv2D and MaxPool2D compute with nothing but loops and
slicing — no stride tricks, no reshapes — so each line maps onto the maths:

    y[n, i, j, f] = b[f] + Σ_{p, q, c} x_pad[n, i·sh + p, j·sw + q, c] · W[p, q, c, f]

The vectorised :mod:`tinycnn.functional` (and through it the layers and the kernels) must agree
with these to rounding error (the tests check it to 1e-10 in float64). They are slow: never train with them.

Padding for ``"same"`` is TensorFlow's (extra row/column at the bottom/right), computed by
:func:`tinycnn.im2col.padding_amounts`; max pooling pads with -inf so padding never wins.
"""

from __future__ import annotations

import numpy as np

from .im2col import output_size, pad, padding_amounts, unpad
from .im2col import pair as _pair


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


def conv2d_input_grad_as_convolution(dy, kernel, pads):
    """For stride 1, the ``dx`` of :func:`conv2d_backward` computed the other way round: each
    input pixel *gathers* from the outputs whose windows covered it, instead of each output
    scattering into its window.

    That gather is itself a convolution: pad ``dy`` with ``kernel − 1`` zeros on each side (less
    the forward's padding on that side) and slide the kernel turned by 180° over it, its input and
    output channels swapped. (Conv2D uses this form for stride 1: one matrix product and no col2im.)
    """
    kh, kw, c_in, _ = kernel.shape
    (top, bottom), (left, right) = pads
    dyp = pad(dy, ((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right)))
    flipped = kernel[::-1, ::-1]                                   # W[kh-1-i, kw-1-j, c, f]
    n, hp, wp, _ = dyp.shape
    h, w = hp - kh + 1, wp - kw + 1
    dx = np.zeros((n, h, w, c_in), dtype=dy.dtype)
    for b in range(n):
        for i in range(h):
            for j in range(w):
                patch = dyp[b, i:i + kh, j:j + kw, :]               # (kh, kw, F)
                for c in range(c_in):
                    dx[b, i, j, c] = np.sum(patch * flipped[:, :, c, :])
    return dx


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


def avgpool2d_forward(x, pool_size=2, strides=None, padding="valid"):
    """Mean over each window, counting only real (not padded) pixels. Returns ``(y, cache)``."""
    ph, pw = _pair(pool_size)
    sh, sw = _pair(pool_size if strides is None else strides)
    n, h, w, c = x.shape
    (top, _), (left, _) = padding_amounts(h, w, (ph, pw), (sh, sw), padding)
    ho = output_size(h, ph, sh, padding)
    wo = output_size(w, pw, sw, padding)
    y = np.zeros((n, ho, wo, c), dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            rows = range(max(i * sh - top, 0), min(i * sh - top + ph, h))     # the real pixels only
            cols = range(max(j * sw - left, 0), min(j * sw - left + pw, w))
            y[:, i, j, :] = x[:, rows.start:rows.stop, cols.start:cols.stop, :].mean(axis=(1, 2))
    return y, (x.shape, (ph, pw), (sh, sw), (top, left), padding)


def avgpool2d_backward(dy, cache):
    """Each window's gradient is shared equally by the pixels it averaged."""
    x_shape, (ph, pw), (sh, sw), (top, left), padding = cache
    _, h, w, _ = x_shape
    dx = np.zeros(x_shape, dtype=dy.dtype)
    _, ho, wo, _ = dy.shape
    for i in range(ho):
        for j in range(wo):
            r0, r1 = max(i * sh - top, 0), min(i * sh - top + ph, h)
            c0, c1 = max(j * sw - left, 0), min(j * sw - left + pw, w)
            dx[:, r0:r1, c0:c1, :] += dy[:, i:i + 1, j:j + 1, :] / ((r1 - r0) * (c1 - c0))
    return dx


def batchnorm_forward(x, gamma, beta, epsilon=1e-3):
    """Training-mode batch normalisation, one channel at a time. Returns ``(y, cache)``."""
    y = np.empty_like(x)
    flat = x.reshape(-1, x.shape[-1])
    out = y.reshape(-1, x.shape[-1])
    stats = []
    for ch in range(x.shape[-1]):
        values = flat[:, ch]
        mean = values.sum() / len(values)
        var = ((values - mean) ** 2).sum() / len(values)
        out[:, ch] = gamma[ch] * (values - mean) / np.sqrt(var + epsilon) + beta[ch]
        stats.append((mean, var))
    return y, (x, gamma, epsilon, stats)


def batchnorm_backward(dy, cache):
    """The three paths by which x_i reaches the loss: directly, through μ, and through σ².
    Written term by term (the fast layer uses the simplified closed form)."""
    x, gamma, epsilon, stats = cache
    flat_x = x.reshape(-1, x.shape[-1])
    flat_dy = dy.reshape(-1, x.shape[-1])
    dx = np.empty_like(flat_x)
    dgamma = np.empty_like(gamma)
    dbeta = np.empty_like(gamma)
    m = flat_x.shape[0]
    for ch in range(x.shape[-1]):
        mean, var = stats[ch]
        xc = flat_x[:, ch] - mean
        std = np.sqrt(var + epsilon)
        x_hat = xc / std
        g = flat_dy[:, ch]
        dgamma[ch] = np.sum(g * x_hat)
        dbeta[ch] = np.sum(g)
        dx_hat = g * gamma[ch]
        dvar = np.sum(dx_hat * xc) * -0.5 * std ** -3                  # ∂L/∂σ²
        dmean = np.sum(-dx_hat / std) + dvar * np.sum(-2 * xc) / m     # ∂L/∂μ
        dx[:, ch] = dx_hat / std + dvar * 2 * xc / m + dmean / m
    return dx.reshape(x.shape), dgamma, dbeta
