r"""The math of every layer, as pure functions — what a learner reads, and what teaching mode runs.

Every operation comes as a pair, in the style of CS231n::

    y, cache = op_forward(x, weights...)       # cache: whatever backward will need (the op's own business)
    dx, dw, db = op_backward(dy, cache)        # dy = dL/dy; returns dL/dx and the weight gradients

Shapes are NHWC (``(batch, height, width, channels)``), kernels ``(kh, kw, C_in, C_out)`` and
Dense kernels ``(in, out)`` — Keras's layouts. Everything works in float32 and in float64, and
nothing here changes its inputs: each function returns new arrays.

Reading order: :mod:`tinycnn.reference` (the same convolution and pooling as plain loops), then
:mod:`tinycnn.im2col` (the picture), then this file. The layers in :mod:`tinycnn.layers` call these
functions through :mod:`tinycnn.ops`; with ``tinycnn.teaching()`` on, these are the very functions
that run during ``fit``. Outside teaching mode the same signatures are served by
:mod:`tinycnn.kernels` (threads, cache blocking, fusion), which the tests hold equal to this file.
"""

from __future__ import annotations

import numpy as np

from .im2col import col2im, im2col, output_size, pad, padding_amounts, pair, unpad, windows

__all__ = [
    "dense_forward", "dense_backward", "relu_forward", "relu_backward",
    "conv2d_forward", "conv2d_backward", "maxpool2d_forward", "maxpool2d_backward",
    "avgpool2d_forward", "avgpool2d_backward", "global_avgpool2d_forward", "global_avgpool2d_backward",
    "leaky_relu_forward", "leaky_relu_backward", "tanh_forward", "tanh_backward",
    "sigmoid_forward", "sigmoid_backward", "softmax_forward", "softmax_backward",
    "batchnorm_forward", "batchnorm_backward", "batchnorm_inference_forward", "batchnorm_inference_backward",
    "dropout_forward", "dropout_backward",
    "softmax_cross_entropy", "sigmoid_binary_cross_entropy",
    "sgd_update", "adam_update", "adamw_update",
    "softmax", "sigmoid", "all_finite",
    "rescaling_forward", "rescaling_backward", "normalization_forward", "normalization_backward",
]


# -- Dense -------------------------------------------------------------------------------------
def dense_forward(x, w, b):
    """``y = x · W + b`` for ``x`` of shape ``(N, in)`` and ``W`` of shape ``(in, out)``; ``b`` may be None."""
    y = x @ w
    if b is not None:
        y = y + b
    return y, (x, w, b is not None)


def dense_backward(dy, cache):
    """``dW = xᵀ · dy`` (each weight sums input × upstream over the batch), ``db = Σ_batch dy``,
    ``dx = dy · Wᵀ``. Returns ``(dx, dW, db)`` (``db`` None without a bias)."""
    x, w, has_bias = cache
    dw = x.T @ dy
    db = dy.sum(axis=0) if has_bias else None
    dx = dy @ w.T
    return dx, dw, db


# -- ReLU ---------------------------------------------------------------------------------------
def relu_forward(x):
    """``y = max(x, 0)``."""
    return np.maximum(x, 0), x


def relu_backward(dy, cache):
    """``dx = dy · [x > 0]``: the gradient passes where the input was positive (at exactly 0: blocked)."""
    x = cache
    return dy * (x > 0)


# -- Conv2D: im2col and one matrix product ------------------------------------------------------
def conv2d_forward(x, w, b, strides=(1, 1), padding="valid"):
    """Convolve ``x (N, H, W, C_in)`` with ``w (kh, kw, C_in, F)``; ``b (F,)`` or None.

    ::

        x_padded = pad(x)                          "same": TensorFlow's padding (extra at bottom/right)
        cols     = im2col(x_padded)                (N·Ho·Wo, kh·kw·C_in): one row per output pixel
        y        = cols · W.reshape(kh·kw·C_in, F) + b, reshaped to (N, Ho, Wo, F)
    """
    strides = pair(strides)
    kh, kw, c_in, filters = w.shape
    n, h, width, _ = x.shape
    pads = padding_amounts(h, width, (kh, kw), strides, padding)
    x_padded = pad(x, pads)
    cols = im2col(x_padded, (kh, kw), strides)
    y = cols @ w.reshape(kh * kw * c_in, filters)
    if b is not None:
        y = y + b
    ho, wo = output_size(h, kh, strides[0], padding), output_size(width, kw, strides[1], padding)
    return y.reshape(n, ho, wo, filters), (cols, x_padded.shape, w, strides, pads, b is not None)


def conv2d_backward(dy, cache):
    """The three gradients of ``y = cols · W + b``, then col2im back to the image::

        dW    = colsᵀ · dy                         (kh·kw·C_in, F), reshaped like the kernel
        db    = Σ_rows dy                          (F,)
        dcols = dy · Wᵀ                            (N·Ho·Wo, kh·kw·C_in)
        dx    = col2im(dcols)                      each pixel sums the gradients of every window it was in
    """
    cols, x_padded_shape, w, strides, pads, has_bias = cache
    kh, kw, c_in, filters = w.shape
    n, ho, wo, _ = dy.shape
    dy_rows = dy.reshape(n * ho * wo, filters)
    dw = (cols.T @ dy_rows).reshape(w.shape)
    db = dy_rows.sum(axis=0) if has_bias else None
    dcols = dy_rows @ w.reshape(kh * kw * c_in, filters).T
    dx_padded = col2im(dcols.reshape(n, ho, wo, kh, kw, c_in), x_padded_shape, strides)
    return unpad(dx_padded, pads), dw, db


# -- Pooling ------------------------------------------------------------------------------------
def maxpool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid"):
    """The largest value of each window (``strides=None``: the pool size, as in Keras; "same" pads
    with −inf, so padding never wins)."""
    pool = pair(pool_size)
    strides = pool if strides is None else pair(strides)
    n, h, w, c = x.shape
    pads = padding_amounts(h, w, pool, strides, padding)
    x_padded = pad(x, pads, value=-np.inf)
    win = windows(x_padded, pool, strides)                          # (N, Ho, Wo, ph, pw, C)
    flat = win.reshape(*win.shape[:3], pool[0] * pool[1], c)       # window positions in row-major order
    winner = flat.argmax(axis=3)                                    # on ties: the first maximum
    return flat.max(axis=3), (winner, win.shape, x_padded.shape, pads, strides)


def maxpool2d_backward(dy, cache):
    """Only each window's winner influenced the output: it receives the window's whole gradient,
    the other positions 0. Overlapping windows add up (col2im)."""
    winner, win_shape, x_padded_shape, pads, strides = cache
    n, ho, wo, ph, pw, c = win_shape
    dflat = np.zeros((n, ho, wo, ph * pw, c), dy.dtype)
    np.put_along_axis(dflat, winner[:, :, :, None, :], dy[:, :, :, None, :], axis=3)
    return unpad(col2im(dflat.reshape(win_shape), x_padded_shape, strides), pads)


def avgpool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid"):
    """The mean of each window; with "same", a border window averages only the real pixels it covers."""
    pool = pair(pool_size)
    strides = pool if strides is None else pair(strides)
    n, h, w, c = x.shape
    pads = padding_amounts(h, w, pool, strides, padding)
    counts = windows(pad(np.ones((1, h, w, 1), x.dtype), pads), pool, strides).sum(axis=(3, 4))
    x_padded = pad(x, pads)
    y = windows(x_padded, pool, strides).sum(axis=(3, 4)) / counts
    return y, (counts, x_padded.shape, pool, strides, pads)


def avgpool2d_backward(dy, cache):
    """Each window's gradient is shared equally by the pixels it averaged: ``dx += dy / count``."""
    counts, x_padded_shape, (ph, pw), strides, pads = cache
    share = dy / counts
    dwin = np.broadcast_to(share[:, :, :, None, None, :], (*share.shape[:3], ph, pw, share.shape[3]))
    return unpad(col2im(dwin, x_padded_shape, strides), pads)


def global_avgpool2d_forward(x):
    """``(N, H, W, C) -> (N, C)``: the mean of each feature map."""
    return x.mean(axis=(1, 2)), x.shape


def global_avgpool2d_backward(dy, cache):
    """Every pixel of a map gets ``dy / (H·W)``."""
    n, h, w, c = cache
    return np.broadcast_to((dy / (h * w))[:, None, None, :], cache).copy()


# -- Other activations --------------------------------------------------------------------------
def leaky_relu_forward(x, negative_slope=0.3):
    """``y = x`` where ``x > 0``, ``negative_slope · x`` elsewhere."""
    slope = np.where(x > 0, 1, negative_slope).astype(x.dtype)
    return x * slope, slope


def leaky_relu_backward(dy, cache):
    """``dx = dy · (1 or negative_slope)``."""
    return dy * cache


def tanh_forward(x):
    y = np.tanh(x)
    return y, y


def tanh_backward(dy, cache):
    """``dx = dy · (1 − y²)``."""
    return dy * (1 - cache * cache)


def sigmoid_forward(x):
    y = sigmoid(x)
    return y, y


def sigmoid_backward(dy, cache):
    """``dx = dy · y · (1 − y)``."""
    return dy * cache * (1 - cache)


def softmax_forward(x):
    y = softmax(x)
    return y, y


def softmax_backward(dy, cache):
    """The Jacobian-vector product of the softmax: ``dx = y ⊙ (dy − Σ_j dy_j y_j)``."""
    y = cache
    return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))


def softmax(z):
    """Softmax over the last axis, shifted by the row maximum so that ``exp`` cannot overflow."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(z):
    """The logistic function, written so that neither branch overflows."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


# -- BatchNormalization and Dropout -------------------------------------------------------------
def batchnorm_forward(x, gamma, beta, epsilon=1e-3):
    """Training mode: normalise each channel (last axis) with the batch's mean ``μ`` and biased
    variance ``σ²`` over every other axis, then scale and shift::

        x̂ = (x − μ) / sqrt(σ² + ε)          y = γ · x̂ + β
    """
    axes = tuple(range(x.ndim - 1))
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    inv_std = 1 / np.sqrt(var + epsilon)
    x_hat = (x - mean) * inv_std
    return gamma * x_hat + beta, (x_hat, gamma, inv_std)


def batchnorm_backward(dy, cache):
    """μ and σ² depend on every input of the batch, so each ``x`` reaches the loss three ways
    (directly, through μ, through σ²). With ``m`` values per channel and ``dx̂ = dy · γ``::

        dγ = Σ dy · x̂        dβ = Σ dy
        dx = (1/m) · (1/sqrt(σ² + ε)) · (m · dx̂ − Σ dx̂ − x̂ · Σ (dx̂ · x̂))
    """
    x_hat, gamma, inv_std = cache
    axes = tuple(range(dy.ndim - 1))
    m = dy.size // dy.shape[-1]
    dx_hat = dy * gamma
    dx = (inv_std / m) * (m * dx_hat - dx_hat.sum(axis=axes) - x_hat * np.sum(dx_hat * x_hat, axis=axes))
    return dx, np.sum(dy * x_hat, axis=axes), np.sum(dy, axis=axes)


def batchnorm_inference_forward(x, gamma, beta, mean, var, epsilon=1e-3):
    """Inference mode: the moving statistics are constants, so the layer is a fixed affine map."""
    inv_std = 1 / np.sqrt(var + epsilon)
    x_hat = (x - mean) * inv_std
    return gamma * x_hat + beta, (x_hat, gamma, inv_std)


def batchnorm_inference_backward(dy, cache):
    """``dx = dy · γ / sqrt(σ² + ε)`` (no path through the statistics); ``dγ``, ``dβ`` as in training."""
    x_hat, gamma, inv_std = cache
    axes = tuple(range(dy.ndim - 1))
    return dy * gamma * inv_std, np.sum(dy * x_hat, axis=axes), np.sum(dy, axis=axes)


def dropout_forward(x, rate, rng):
    """Inverted dropout: keep each value with probability ``1 − rate`` and scale it by
    ``1 / (1 − rate)``, so that nothing needs rescaling at inference (where the layer is the identity)."""
    keep = x.dtype.type(1 - rate)
    scaled_mask = (rng.random(x.shape, dtype=np.float32) < keep).astype(x.dtype) / keep
    return x * scaled_mask, scaled_mask


def dropout_backward(dy, cache):
    """The gradient flows only through the values that were kept: ``dx = dy · mask / (1 − rate)``."""
    return dy * cache


# -- Losses, from logits ------------------------------------------------------------------------
def softmax_cross_entropy(logits, y, sample_weight=None):
    """Mean cross-entropy of integer labels ``y (N,)`` under ``softmax(logits)``, and its gradient::

        L       = (1/N) Σ_n (logsumexp(z_n) − z[n, y_n])      (never the log of an underflowed p)
        dlogits = (p − onehot(y)) / N                           "predicted minus true"

    ``sample_weight (N,)``: ``L = Σ w_n ℓ_n / N`` and each row of the gradient times ``w_n``.
    Returns ``(loss, dlogits)``.
    """
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)             # the largest logit becomes 0
    per_sample = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(n), y]
    dlogits = softmax(logits)
    dlogits[np.arange(n), y] -= 1
    if sample_weight is None:
        return float(np.mean(per_sample)), dlogits / logits.dtype.type(n)
    dlogits *= sample_weight[:, None]
    return float(np.sum(sample_weight * per_sample) / n), dlogits / logits.dtype.type(n)


def sigmoid_binary_cross_entropy(logits, y, sample_weight=None):
    """Mean binary cross-entropy of 0/1 labels ``y`` (the logits' shape) under ``sigmoid(logits)``::

        L       = mean( max(z, 0) − z·y + log(1 + exp(−|z|)) )    (stable −y·log σ − (1−y)·log(1−σ))
        dlogits = (σ(z) − y) / (number of logits)
    """
    loss = np.maximum(logits, 0) - logits * y + np.log1p(np.exp(-np.abs(logits)))
    dlogits = (sigmoid(logits) - y) / logits.dtype.type(logits.size)
    if sample_weight is not None:
        per_row = sample_weight.reshape(-1, *([1] * (logits.ndim - 1)))
        loss, dlogits = loss * per_row, dlogits * per_row
    return float(loss.mean()), dlogits


# -- Optimizer updates (Keras 3's exact rules; new arrays returned) ------------------------------
def sgd_update(w, dw, velocity, learning_rate, momentum=0.0, nesterov=False):
    """``velocity = momentum · velocity − lr · dw``; then ``w + velocity``, or with Nesterov
    ``w + momentum · velocity − lr · dw`` (a look ahead along the new velocity). Returns ``(w, velocity)``."""
    velocity = momentum * velocity - learning_rate * dw
    if nesterov:
        return w + momentum * velocity - learning_rate * dw, velocity
    return w + velocity, velocity


def adam_update(w, dw, m, v, t, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Adam as Keras writes it, at step ``t = 1, 2, ...``::

        alpha = lr · sqrt(1 − β2^t) / (1 − β1^t)        the bias corrections, folded into the step size
        m     = m + (dw − m)(1 − β1)                     running mean of the gradients
        v     = v + (dw² − v)(1 − β2)                    running mean of their squares
        w     = w − alpha · m / (sqrt(v) + ε)            ε outside the root, on the *uncorrected* v

    ``alpha`` is computed in the weights' precision, as Keras does. Returns ``(w, m, v)``.
    """
    f = w.dtype.type
    alpha = f(learning_rate) * np.sqrt(1 - f(beta_2) ** t) / (1 - f(beta_1) ** t)
    m = m + (dw - m) * (1 - beta_1)
    v = v + (dw * dw - v) * (1 - beta_2)
    return w - m * alpha / (np.sqrt(v) + epsilon), m, v


def adamw_update(w, dw, m, v, t, learning_rate=1e-3, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7):
    """AdamW (decoupled weight decay, Keras's rule): ``w = w − w · weight_decay · lr``, then Adam."""
    w = w - w * weight_decay * learning_rate
    return adam_update(w, dw, m, v, t, learning_rate, beta_1, beta_2, epsilon)


def all_finite(a) -> bool:
    """True when no element of ``a`` is NaN or ±inf."""
    return bool(np.isfinite(a).all())


# -- Preprocessing inside the model: Rescaling and Normalization (Keras's formulas) ---------------
def rescaling_forward(x, scale, offset=0.0):
    """``y = x · scale + offset``, e.g. ``scale = 1/255`` maps pixel values 0..255 to [0, 1].

    ``scale`` and ``offset`` are numbers, or arrays that broadcast against ``x`` (one per channel:
    shape ``(C,)``), in ``x``'s dtype."""
    return x * scale + offset, scale


def rescaling_backward(dy, cache):
    """``dx = dy · scale``: the slope of the affine map."""
    scale = cache
    return dy * scale


def normalization_forward(x, mean, variance, epsilon=1e-7):
    """Standardise with fixed statistics, as Keras's ``Normalization`` does::

        y = (x − mean) / max(sqrt(variance), ε)          ε = 1e-7 (Keras's backend epsilon)

    ``mean`` and ``variance`` broadcast against ``x`` (one per channel: shape ``(C,)``). They are
    constants — measured once on training data, never learned — so the op is a fixed affine map.
    ε only guards a zero variance (a constant feature): the denominator is the larger of the
    standard deviation and ε, not ``sqrt(variance + ε)`` as in batch normalisation.
    """
    std = np.maximum(np.sqrt(variance), epsilon)
    return (x - mean) / std, std


def normalization_backward(dy, cache):
    """``dx = dy / max(sqrt(variance), ε)``; mean and variance are constants, so they get no gradient."""
    std = cache
    return dy / std
