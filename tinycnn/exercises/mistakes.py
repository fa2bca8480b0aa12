"""Known mistakes, each written out as the wrong function it produces.

When a learner's function fails a case, the grader runs these on the same case: if the learner's
output equals one of them (and not the right answer), the hint beside it names the mistake. So a
hint is recognised, never guessed. A backward mistake takes ``tinycnn.functional``'s own cache.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..im2col import col2im, pad, padding_amounts, unpad, windows


def _conv_forward_padding_top_left(x, w, b, strides=(1, 1), padding="valid"):
    """'same' padding with the odd extra row/column at the top/left (PyTorch's habit, not TensorFlow's)."""
    if padding != "same":
        return F.conv2d_forward(x, w, b, strides, padding)
    (top, bottom), (left, right) = padding_amounts(x.shape[1], x.shape[2], w.shape[:2],
                                                   (strides, strides) if np.ndim(strides) == 0 else strides, "same")
    shifted = pad(x, ((bottom, top), (right, left)))
    return F.conv2d_forward(shifted, w, b, strides, "valid")


def _conv_backward_unflipped(dy, cache):
    """dx from the kernel turned the wrong way: W[::-1, ::-1] where W belongs (or a missing flip)."""
    cols, x_padded_shape, w, strides, pads, has_bias = cache
    return F.conv2d_backward(dy, (cols, x_padded_shape, w[::-1, ::-1], strides, pads, has_bias))


def _conv_backward_db_per_image(dy, cache):
    dx, dw, db = F.conv2d_backward(dy, cache)
    return dx, dw, None if db is None else dy.sum(axis=(1, 2))


def _conv_backward_db_mean(dy, cache):
    dx, dw, db = F.conv2d_backward(dy, cache)
    return dx, dw, None if db is None else db / dy.shape[0]


def _dense_backward_db_not_summed(dy, cache):
    dx, dw, db = F.dense_backward(dy, cache)
    return dx, dw, None if db is None else dy


def _dense_backward_db_mean(dy, cache):
    dx, dw, db = F.dense_backward(dy, cache)
    return dx, dw, None if db is None else db / dy.shape[0]


def _relu_backward_at_zero(dy, cache):
    return dy * (cache >= 0)


def _maxpool_backward_assigned(dy, cache):
    """Overlapping windows: each one's gradient written over the last instead of added."""
    winner, win_shape, x_padded_shape, pads, strides = cache
    n, ho, wo, ph, pw, c = win_shape
    dx = np.zeros(x_padded_shape, dy.dtype)
    rows, cols = np.divmod(winner, pw)                                   # (N, Ho, Wo, C)
    nn, ii, jj, cc = np.indices((n, ho, wo, c))
    dx[nn, ii * strides[0] + rows, jj * strides[1] + cols, cc] = dy      # later windows overwrite
    return unpad(dx, pads)


def maxpool_every_tie(x, pool_size=(2, 2), strides=None, padding="valid"):
    """The backward that sends the gradient to every position equal to its window's max."""
    pool = (pool_size, pool_size) if np.ndim(pool_size) == 0 else tuple(pool_size)
    strides = pool if strides is None else ((strides, strides) if np.ndim(strides) == 0 else tuple(strides))
    pads = padding_amounts(x.shape[1], x.shape[2], pool, strides, padding)
    x_padded = pad(x, pads, value=-np.inf)
    win = windows(x_padded, pool, strides)
    y = win.max(axis=(3, 4))

    def backward(dy):
        hit = (win == y[:, :, :, None, None, :])
        return unpad(col2im(hit * dy[:, :, :, None, None, :], x_padded.shape, strides), pads)
    return backward


def _maxpool_forward_zero_padding(x, pool_size=(2, 2), strides=None, padding="valid"):
    if padding != "same":
        return F.maxpool2d_forward(x, pool_size, strides, padding)
    pool = (pool_size, pool_size) if np.ndim(pool_size) == 0 else tuple(pool_size)
    strides_ = pool if strides is None else ((strides, strides) if np.ndim(strides) == 0 else tuple(strides))
    pads = padding_amounts(x.shape[1], x.shape[2], pool, strides_, "same")
    return F.maxpool2d_forward(pad(x, pads), pool_size, strides, "valid")


def _softmax_ce_without_1_over_n(logits, y):
    loss, dlogits = F.softmax_cross_entropy(logits, y)
    return loss * logits.shape[0], dlogits * logits.shape[0]


def _softmax_ce_grad_without_1_over_n(logits, y):
    loss, dlogits = F.softmax_cross_entropy(logits, y)
    return loss, dlogits * logits.shape[0]


def _adam_without_bias_correction(w, dw, m, v, t, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    m = m + (dw - m) * (1 - beta_1)
    v = v + (dw * dw - v) * (1 - beta_2)
    return w - learning_rate * m / (np.sqrt(v) + epsilon), m, v


def _adam_epsilon_inside(w, dw, m, v, t, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    alpha = learning_rate * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
    m = m + (dw - m) * (1 - beta_1)
    v = v + (dw * dw - v) * (1 - beta_2)
    return w - alpha * m / np.sqrt(v + epsilon), m, v


def _adam_textbook(w, dw, m, v, t, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    m = m + (dw - m) * (1 - beta_1)
    v = v + (dw * dw - v) * (1 - beta_2)
    m_hat, v_hat = m / (1 - beta_1 ** t), v / (1 - beta_2 ** t)
    return w - learning_rate * m_hat / (np.sqrt(v_hat) + epsilon), m, v


def _sgd_momentum_sign(w, dw, velocity, learning_rate, momentum=0.0, nesterov=False):
    velocity = momentum * velocity + learning_rate * dw
    step = momentum * velocity + learning_rate * dw if nesterov else velocity
    return w - step, velocity


def _sgd_nesterov_ignored(w, dw, velocity, learning_rate, momentum=0.0, nesterov=False):
    return F.sgd_update(w, dw, velocity, learning_rate, momentum, False)


def _batchnorm_backward_direct_path_only(dy, cache):
    x_hat, gamma, inv_std = cache
    dx, dgamma, dbeta = F.batchnorm_backward(dy, cache)
    return dy * gamma * inv_std, dgamma, dbeta


def _batchnorm_forward_unbiased_variance(x, gamma, beta, epsilon=1e-3):
    axes = tuple(range(x.ndim - 1))
    m = x.size // x.shape[-1]
    mean, var = x.mean(axis=axes), x.var(axis=axes) * m / (m - 1)
    x_hat = (x - mean) / np.sqrt(var + epsilon)
    return gamma * x_hat + beta, None


MAX_SHIFT_HINT = ("inf or NaN on large logits: softmax without the max shift (exp(1000) overflows to inf), or "
                  "log(p) of a probability that underflowed to 0 (log 0 = −inf). Subtract each row's largest "
                  "logit before exp — softmax(z) = softmax(z − max z) — and compute the loss as "
                  "logsumexp(z) − z[y], never log(p).")

#: name → [(hint, the wrong function)]
MISTAKES = {
    "relu_backward": [("ReLU's derivative at exactly 0 is taken as 0 (as TensorFlow): use x > 0, not x >= 0.",
                       _relu_backward_at_zero)],
    "dense_backward": [("db not summed over the batch: db = Σ_n dy[n], shape (out,).", _dense_backward_db_not_summed),
                       ("db is the *sum* of dy over the batch, not its mean: the 1/N is already inside dy "
                        "(the loss's gradient carries it).", _dense_backward_db_mean)],
    "conv2d_forward": [("padding on the wrong side: with 'same', TensorFlow puts the odd extra row/column at the "
                        "bottom/right, not the top/left.", _conv_forward_padding_top_left)],
    "conv2d_backward": [("the kernel is turned the wrong way in dx: dcols = dy · Wᵀ with W as the forward used it "
                         "(in the convolution view: the full convolution with the kernel flipped by 180°, "
                         "channels swapped).", _conv_backward_unflipped),
                        ("db not summed over the batch: db sums dy over the images and every output pixel, "
                         "shape (F,).", _conv_backward_db_per_image),
                        ("db is the sum of dy, not its mean over the batch.", _conv_backward_db_mean)],
    "maxpool2d_forward": [("'same' max pooling padded with zeros: a 0 beats every negative value; pad with −inf so "
                           "that padding never wins.", _maxpool_forward_zero_padding)],
    "maxpool2d_backward": [("overlapping windows not accumulated: when windows share a pixel, its gradient is the "
                            "*sum* over the windows that picked it (+=, not =).", _maxpool_backward_assigned)],
    # the gradient-only mistake first: both give the same dlogits, and only it has the right loss
    "softmax_cross_entropy": [("missing 1/N in the gradient: dlogits = (p − onehot) / N.",
                               _softmax_ce_grad_without_1_over_n),
                              ("missing 1/N: the loss is the *mean* over the batch, so dlogits = (p − onehot) / N.",
                               _softmax_ce_without_1_over_n)],
    "adam_update": [("Adam without bias correction: alpha = lr · sqrt(1 − β2^t) / (1 − β1^t), not lr.",
                     _adam_without_bias_correction),
                    ("ε inside the square root: Keras divides by sqrt(v) + ε.", _adam_epsilon_inside),
                    ("the textbook's ε placement (ε added to sqrt(v̂) of the corrected v̂): Keras folds the "
                     "corrections into alpha and adds ε to sqrt(v) of the uncorrected v.", _adam_textbook)],
    "sgd_update": [("momentum sign: Keras keeps velocity = momentum·velocity − lr·dw and *adds* it: w + velocity.",
                    _sgd_momentum_sign),
                   ("nesterov=True ignored: the Nesterov step is w + momentum·velocity − lr·dw, with the new "
                    "velocity.", _sgd_nesterov_ignored)],
    "batchnorm_backward": [("only the direct path: x also reaches the loss through the batch mean μ and variance "
                            "σ² — dx = (1/m)(1/sqrt(σ² + ε))(m·dx̂ − Σdx̂ − x̂·Σ(dx̂·x̂)).",
                            _batchnorm_backward_direct_path_only)],
    "batchnorm_forward": [("the unbiased variance (divided by m − 1): batch normalisation uses the biased one "
                           "(divided by m), as np.var does by default.", _batchnorm_forward_unbiased_variance)],
}

TIE_HINT = ("gradient sent to every tied maximum: on ties only the *first* maximum of a window (row-major order) "
            "gets the gradient, as in TensorFlow — np.argmax gives that position.")
