"""The exercises: the grader fails known-wrong implementations (mutants), naming the right function,
the problem and — for the known mistakes — the right hint; it passes correct implementations
written differently from tinycnn's; it survives whatever a learner's code does (raises, returns the
wrong thing, changes its input, loops forever, kills its process); the workspace never overwrites
a learner's work; ``teaching(functions=...)`` plugs functions in and takes them out again; and
training on the reference solutions reaches the published accuracy on the real PneumoniaMNIST.

Every implementation below is written out here, independently of tinycnn.functional (loops over
output positions, einsum, log-sum-exp, the textbook's m̂/v̂ ...). Each mutant is one of those correct
implementations with one deliberate change (``mutate``), or a short wrong function of its own.
Grading forks one process per function, so the mutants are packed into a few files (at most one
per family of functions each) and each file is checked once.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import tinycnn
from tinycnn import functional, ops, zoo
from tinycnn.cli import main
from tinycnn.exercises import EXERCISES, cases as case_lists, check, solution, start
from tinycnn.exercises.mistakes import MAX_SHIFT_HINT, MISTAKES, TIE_HINT
from tinycnn.exercises.workspace import solutions_file

SOLUTIONS = solutions_file()


def family(name: str) -> str:
    """relu_forward and relu_backward are one family (a backward needs its own forward's cache)."""
    base, _, part = name.rpartition("_")
    return base if part in ("forward", "backward") else name


def defined(source: str) -> list[str]:
    """The exercise functions a piece of source defines."""
    return [node.name for node in ast.parse(source).body
            if isinstance(node, ast.FunctionDef) and node.name in EXERCISES]


def mutate(source: str, *changes) -> str:
    """``source`` with each ``(old, new)`` replaced; each ``old`` must occur exactly once."""
    for old, new in changes:
        assert source.count(old) == 1, f"{old!r} occurs {source.count(old)} times"
        source = source.replace(old, new)
    return source


def exercises_file(*sources) -> str:
    """The reference solutions, then ``sources``: their definitions replace the reference ones."""
    return SOLUTIONS + "\n\n# ---- written by the test ----\n" + "\n\n".join(textwrap.dedent(s) for s in sources)


# =================================================================================================
# Correct implementations, written differently from tinycnn.functional
# =================================================================================================
RELU = '''
def relu_forward(x):
    y = x.copy()
    y[y < 0] = 0
    return y, x


def relu_backward(dy, cache):
    dx = dy.copy()
    dx[cache <= 0] = 0
    return dx
'''

RELU_WHERE = '''
def relu_forward(x):
    positive = x > 0
    return np.where(positive, x, np.zeros_like(x)), positive


def relu_backward(dy, cache):
    return np.where(cache, dy, np.zeros_like(dy))
'''

DENSE = '''
def dense_forward(x, w, b):
    # float64 inside, the input's dtype out
    y = np.einsum("ni,io->no", x.astype(np.float64), w.astype(np.float64))
    if b is not None:
        y += b.astype(np.float64)
    return y.astype(x.dtype), {"x": x, "w": w, "bias": b is not None}


def dense_backward(dy, cache):
    x, w = cache["x"], cache["w"]
    dx = np.einsum("no,io->ni", dy, w)
    dw = np.einsum("ni,no->io", x, dy)
    db = np.add.reduce(dy, axis=0) if cache["bias"] else None
    return dx, dw, db
'''

SOFTMAX_CE = '''
def softmax_cross_entropy(logits, y):
    n = logits.shape[0]
    top = np.max(logits, axis=1, keepdims=True)
    log_sum_exp = top + np.log(np.sum(np.exp(logits - top), axis=1, keepdims=True))
    log_p = logits - log_sum_exp
    loss = -np.mean(log_p[np.arange(n), y])
    dlogits = np.exp(log_p)
    dlogits[np.arange(n), y] -= 1
    return float(loss), dlogits / n
'''

SGD = '''
def sgd_update(w, dw, velocity, learning_rate, momentum=0.0, nesterov=False):
    new_velocity = np.multiply(velocity, momentum) - np.multiply(dw, learning_rate)
    if nesterov:
        step = momentum * new_velocity - learning_rate * dw
    else:
        step = new_velocity
    return w + step, new_velocity
'''

# Keras's rule, with alpha in Python floats (float64) — not in the weights' precision as tinycnn does
ADAM_KERAS = '''
import math


def adam_update(w, dw, m, v, t, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    alpha = learning_rate * math.sqrt(1.0 - beta_2 ** t) / (1.0 - beta_1 ** t)
    m_new = beta_1 * m + (1.0 - beta_1) * dw
    v_new = beta_2 * v + (1.0 - beta_2) * np.square(dw)
    return w - alpha * m_new / (np.sqrt(v_new) + epsilon), m_new, v_new
'''

# the textbook's m̂ and v̂ — with Keras's ε: Keras adds ε to sqrt(v) of the *uncorrected* v, which in
# terms of v̂ is sqrt(v̂) + ε / sqrt(1 − β2^t). Mathematically the same rule as Keras's.
ADAM_TEXTBOOK_KERAS_EPSILON = '''
import math


def adam_update(w, dw, m, v, t, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    m = beta_1 * m + (1 - beta_1) * dw
    v = beta_2 * v + (1 - beta_2) * dw ** 2
    m_hat = m / (1 - beta_1 ** t)
    v_hat = v / (1 - beta_2 ** t)
    epsilon_hat = epsilon / math.sqrt(1 - beta_2 ** t)
    return w - learning_rate * m_hat / (np.sqrt(v_hat) + epsilon_hat), m, v
'''

CONV = '''
def _cv_pair(v):
    return (int(v), int(v)) if np.ndim(v) == 0 else (int(v[0]), int(v[1]))


def _cv_geometry(size, k, s, padding):
    """(output size, padding before, padding after) along one axis, as TensorFlow."""
    if padding == "valid":
        return (size - k) // s + 1, 0, 0
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


def _cv_padded(x, top, bottom, left, right):
    n, h, wd, c = x.shape
    xp = np.zeros((n, h + top + bottom, wd + left + right, c), x.dtype)
    xp[:, top:top + h, left:left + wd, :] = x
    return xp


def conv2d_forward(x, w, b, strides=(1, 1), padding="valid"):
    sh, sw = _cv_pair(strides)                  # an int or a pair
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    ho, top, bottom = _cv_geometry(h, kh, sh, padding)
    wo, left, right = _cv_geometry(wd, kw, sw, padding)
    xp = _cv_padded(x, top, bottom, left, right)
    y = np.zeros((n, ho, wo, f), x.dtype)
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :]
            y[:, i, j, :] = np.tensordot(patch, w, axes=([1, 2, 3], [0, 1, 2]))
    if b is not None:
        y += b
    return y, (x, w, b is not None, strides, padding)


def conv2d_backward(dy, cache):
    x, w, has_bias, strides, padding = cache
    sh, sw = _cv_pair(strides)
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    _, top, bottom = _cv_geometry(h, kh, sh, padding)
    _, left, right = _cv_geometry(wd, kw, sw, padding)
    xp = _cv_padded(x, top, bottom, left, right)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(dy.shape[1]):
        for j in range(dy.shape[2]):
            rows, cols = slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)
            g = dy[:, i, j, :]
            dxp[:, rows, cols, :] += np.tensordot(g, w, axes=([1], [3]))
            dw += np.tensordot(xp[:, rows, cols, :], g, axes=([0], [0]))
    db = dy.sum(axis=(0, 1, 2)) if has_bias else None
    return dxp[:, top:top + h, left:left + wd, :], dw, db
'''

MAXPOOL = '''
def _mp_pair(v):
    return (int(v), int(v)) if np.ndim(v) == 0 else (int(v[0]), int(v[1]))


def _mp_geometry(size, k, s, padding):
    """(output size, padding before) along one axis, as TensorFlow."""
    if padding == "valid":
        return (size - k) // s + 1, 0
    out = -(-size // s)
    return out, max((out - 1) * s + k - size, 0) // 2


def maxpool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid"):
    ph, pw = _mp_pair(pool_size)
    sh, sw = (ph, pw) if strides is None else _mp_pair(strides)
    n, h, wd, c = x.shape
    ho, top = _mp_geometry(h, ph, sh, padding)
    wo, left = _mp_geometry(wd, pw, sw, padding)
    y = np.empty((n, ho, wo, c), x.dtype)
    rows = np.empty((n, ho, wo, c), np.int64)
    cols = np.empty((n, ho, wo, c), np.int64)
    for i in range(ho):
        r0, r1 = max(i * sh - top, 0), min(i * sh - top + ph, h)
        for j in range(wo):
            c0, c1 = max(j * sw - left, 0), min(j * sw - left + pw, wd)
            window = x[:, r0:r1, c0:c1, :].reshape(n, -1, c)   # the real pixels only: padding never wins
            k = window.argmax(axis=1)                           # on ties the first, in row-major order
            y[:, i, j, :] = np.take_along_axis(window, k[:, None, :], axis=1)[:, 0, :]
            rows[:, i, j, :] = r0 + k // (c1 - c0)
            cols[:, i, j, :] = c0 + k % (c1 - c0)
    cache = {"x": x, "rows": rows, "cols": cols, "pool": (ph, pw), "strides": (sh, sw), "offset": (top, left)}
    return y, cache


def maxpool2d_backward(dy, cache):
    dx = np.zeros(cache["x"].shape, dy.dtype)
    batch, _, _, channel = np.indices(dy.shape)
    np.add.at(dx, (batch, cache["rows"], cache["cols"], channel), dy)
    return dx
'''

BATCHNORM = '''
def batchnorm_forward(x, gamma, beta, epsilon=1e-3):
    axes = tuple(range(x.ndim - 1))
    m = x.size // x.shape[-1]
    mu = x.sum(axis=axes) / m
    centered = x - mu
    var = (centered * centered).sum(axis=axes) / m
    std = np.sqrt(var + epsilon)
    x_hat = centered / std
    return gamma * x_hat + beta, (centered, std, gamma, m, axes)


def batchnorm_backward(dy, cache):
    # the chain rule the long way: through x̂, then σ², then μ
    centered, std, gamma, m, axes = cache
    dx_hat = dy * gamma
    dvar = np.sum(dx_hat * centered, axis=axes) * -0.5 * std ** -3
    dmu = -np.sum(dx_hat, axis=axes) / std + dvar * -2.0 * np.sum(centered, axis=axes) / m
    dx = dx_hat / std + dvar * 2.0 * centered / m + dmu / m
    dgamma = np.sum(dy * centered / std, axis=axes)
    return dx, dgamma, np.sum(dy, axis=axes)
'''

DROPOUT = '''
def dropout_forward(x, rate, rng):
    keep = rng.binomial(1, 1.0 - rate, size=x.shape).astype(bool)
    y = np.where(keep, x / (1.0 - rate), 0).astype(x.dtype)
    return y, (keep, rate)


def dropout_backward(dy, cache):
    keep, rate = cache
    return np.where(keep, dy / (1.0 - rate), 0).astype(dy.dtype)
'''

VARIANTS = {"relu": RELU, "relu (np.where, a boolean cache)": RELU_WHERE, "dense (float64 inside)": DENSE,
            "softmax_cross_entropy (log-sum-exp)": SOFTMAX_CE, "sgd": SGD,
            "adam (Keras's rule, alpha in float64)": ADAM_KERAS,
            "adam (textbook m-hat, v-hat with Keras's epsilon)": ADAM_TEXTBOOK_KERAS_EPSILON,
            "conv2d (loops, cache of x, w, strides, padding)": CONV,
            "maxpool2d (loops, argmax indices cached)": MAXPOOL, "batchnorm (through var and mean)": BATCHNORM,
            "dropout (binomial mask)": DROPOUT}


# =================================================================================================
# Mutants
# =================================================================================================
@dataclass
class Mutant:
    id: str
    target: str                 # the function that must fail
    source: str                 # defines the wrong function (and the correct ones it needs)
    message: tuple              # substrings of the failure's message
    hint: str | None = None     # a substring of the hint; None: there must be no hint

    def __post_init__(self):
        self.source = textwrap.dedent(self.source)


NAIVE_SOFTMAX_CE = '''
def softmax_cross_entropy(logits, y):
    n = logits.shape[0]
    e = np.exp(logits)
    p = e / e.sum(axis=1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(n), y]))
    dlogits = p.copy()
    dlogits[np.arange(n), y] -= 1
    return float(loss), dlogits / n
'''

SHIFTED_BUT_LOG_P = '''
def softmax_cross_entropy(logits, y):
    n = logits.shape[0]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    dlogits = p.copy()
    dlogits[np.arange(n), y] -= 1
    return float(-np.mean(np.log(p[np.arange(n), y]))), dlogits / n
'''

MAXPOOL_EVERY_TIE = MAXPOOL + '''

def maxpool2d_backward(dy, cache):
    # every position equal to its window's maximum gets the gradient
    x, (ph, pw), (sh, sw), (top, left) = cache["x"], cache["pool"], cache["strides"], cache["offset"]
    n, h, wd, c = x.shape
    dx = np.zeros(x.shape, dy.dtype)
    for i in range(dy.shape[1]):
        r0, r1 = max(i * sh - top, 0), min(i * sh - top + ph, h)
        for j in range(dy.shape[2]):
            c0, c1 = max(j * sw - left, 0), min(j * sw - left + pw, wd)
            window = x[:, r0:r1, c0:c1, :]
            hit = window == window.max(axis=(1, 2), keepdims=True)
            dx[:, r0:r1, c0:c1, :] += hit * dy[:, i:i + 1, j:j + 1, :]
    return dx
'''

MAXPOOL_ZERO_PADDING = MAXPOOL + '''

def maxpool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid"):
    ph, pw = _mp_pair(pool_size)
    sh, sw = (ph, pw) if strides is None else _mp_pair(strides)
    n, h, wd, c = x.shape
    ho, top = _mp_geometry(h, ph, sh, padding)
    wo, left = _mp_geometry(wd, pw, sw, padding)
    xp = np.pad(x, ((0, 0), (top, ph), (left, pw), (0, 0)))          # zeros all around
    y = np.empty((n, ho, wo, c), x.dtype)
    for i in range(ho):
        for j in range(wo):
            y[:, i, j, :] = xp[:, i * sh:i * sh + ph, j * sw:j * sw + pw, :].max(axis=(1, 2))
    return y, None
'''

MUTANTS = [
    # ---- the known mistakes: each must get its hint ------------------------------------------
    Mutant("softmax_ce: loss summed and dlogits without 1/N", "softmax_cross_entropy",
           mutate(SOFTMAX_CE, ("-np.mean(", "-np.sum("), ("dlogits / n", "dlogits")),
           ("loss is wrong",), "missing 1/N: the loss is the *mean*"),
    Mutant("softmax_ce: dlogits without 1/N", "softmax_cross_entropy", mutate(SOFTMAX_CE, ("dlogits / n", "dlogits")),
           ("dlogits is wrong",), "missing 1/N in the gradient"),
    Mutant("softmax_ce: no max shift", "softmax_cross_entropy", NAIVE_SOFTMAX_CE,
           ("large logits",), "without the max shift"),
    Mutant("softmax_ce: shifted, but the loss as log(p)", "softmax_cross_entropy", SHIFTED_BUT_LOG_P,
           ("loss is inf",), "log(p) of a probability that underflowed to 0"),
    Mutant("dense_backward: db not summed over the batch", "dense_backward",
           mutate(DENSE, ("np.add.reduce(dy, axis=0)", "dy.copy()")), ("db has shape",),
           "db not summed over the batch"),
    Mutant("dense_backward: db the mean over the batch", "dense_backward",
           mutate(DENSE, ("np.add.reduce(dy, axis=0)", "dy.mean(axis=0)")), ("db is wrong",), "not its mean"),
    Mutant("conv2d_backward: db per image", "conv2d_backward",
           mutate(CONV, ("dy.sum(axis=(0, 1, 2))", "dy.sum(axis=(1, 2))")), ("db has shape",),
           "db sums dy over the images and every output pixel"),
    Mutant("conv2d_backward: db the mean over the batch", "conv2d_backward",
           mutate(CONV, ("dy.sum(axis=(0, 1, 2))", "dy.sum(axis=(1, 2)).mean(axis=0)")), ("db is wrong",),
           "db is the sum of dy, not its mean"),
    Mutant("conv2d_backward: kernel not flipped for dx", "conv2d_backward",
           mutate(CONV, ("np.tensordot(g, w, axes", "np.tensordot(g, w[::-1, ::-1], axes")), ("dx is wrong",),
           "the kernel is turned the wrong way"),
    Mutant("conv2d_forward: 'same' padding on the top/left", "conv2d_forward",
           mutate(CONV, ("return out, total // 2, total - total // 2", "return out, total - total // 2, total // 2")),
           ("y is wrong", "'same'"), "padding on the wrong side"),
    Mutant("maxpool2d_backward: overlapping windows assigned, not added", "maxpool2d_backward",
           mutate(MAXPOOL, ('np.add.at(dx, (batch, cache["rows"], cache["cols"], channel), dy)',
                            'dx[batch, cache["rows"], cache["cols"], channel] = dy')),
           ("dx is wrong", "overlapping"), "(+=, not =)"),
    Mutant("maxpool2d_backward: every tied maximum", "maxpool2d_backward", MAXPOOL_EVERY_TIE,
           ("dx is wrong", "ties"), "every tied maximum"),
    Mutant("maxpool2d_forward: 'same' padded with zeros", "maxpool2d_forward", MAXPOOL_ZERO_PADDING,
           ("y is wrong", "'same'"), "padded with zeros"),
    Mutant("adam: no bias correction", "adam_update",
           mutate(ADAM_KERAS, ("alpha = learning_rate * math.sqrt(1.0 - beta_2 ** t) / (1.0 - beta_1 ** t)",
                               "alpha = learning_rate")), ("w is wrong",), "without bias correction"),
    Mutant("adam: epsilon inside the square root", "adam_update",
           mutate(ADAM_KERAS, ("(np.sqrt(v_new) + epsilon)", "np.sqrt(v_new + epsilon)")), ("w is wrong",),
           "inside the square root"),
    Mutant("adam: the textbook's epsilon on sqrt(v_hat)", "adam_update",
           mutate(ADAM_TEXTBOOK_KERAS_EPSILON, ("+ epsilon_hat)", "+ epsilon)")), ("w is wrong",),
           "the textbook's ε placement"),
    Mutant("sgd: momentum sign", "sgd_update",
           '''
           def sgd_update(w, dw, velocity, learning_rate, momentum=0.0, nesterov=False):
               velocity = momentum * velocity + learning_rate * dw
               return w - velocity, velocity
           ''', ("velocity is wrong",), "momentum sign"),
    Mutant("sgd: nesterov ignored", "sgd_update", mutate(SGD, ("if nesterov:", "if False:")), ("w is wrong",
           "Nesterov"), "nesterov=True ignored"),
    Mutant("relu_backward: x >= 0 passes the gradient", "relu_backward", mutate(RELU, ("cache <= 0", "cache < 0")),
           ("dx is wrong", "exact zeros"), "use x > 0, not x >= 0"),
    Mutant("batchnorm_forward: unbiased variance", "batchnorm_forward",
           mutate(BATCHNORM, ("var = (centered * centered).sum(axis=axes) / m",
                              "var = (centered * centered).sum(axis=axes) / (m - 1)")),
           ("y is wrong",), "the unbiased variance"),
    Mutant("batchnorm_backward: only the direct path", "batchnorm_backward",
           mutate(BATCHNORM, ("dx = dx_hat / std + dvar * 2.0 * centered / m + dmu / m", "dx = dx_hat / std")),
           ("dx is wrong",), "only the direct path"),

    # ---- other mutants: no hint, a message that names the problem --------------------------
    Mutant("conv2d_forward: strides[0] used for both axes", "conv2d_forward",
           mutate(CONV, ("sh, sw = _cv_pair(strides)                  # an int", "sh = sw = _cv_pair(strides)[0]  #")),
           ("y has shape", "strides (1, 2)")),
    Mutant("conv2d_forward: an int stride not accepted", "conv2d_forward",
           mutate(CONV, ("sh, sw = _cv_pair(strides)                  # an int", "sh, sw = strides  #")),
           ("raised TypeError", "stride 2 as an int")),
    Mutant("conv2d_forward: forgets the bias", "conv2d_forward", mutate(CONV, ("        y += b\n", "        pass\n")),
           ("y is wrong",)),
    Mutant("conv2d_forward: 'valid' output one too small", "conv2d_forward",
           mutate(CONV, ("return (size - k) // s + 1, 0, 0", "return (size - k) // s, 0, 0")), ("y has shape",)),
    Mutant("conv2d_forward: float64 out for float32 in", "conv2d_forward",
           mutate(CONV, ("y = np.zeros((n, ho, wo, f), x.dtype)", "y = np.zeros((n, ho, wo, f))")),
           ("y has dtype float64, expected float32",)),
    Mutant("conv2d_backward: the padding not cut off dx", "conv2d_backward",
           mutate(CONV, ("return dxp[:, top:top + h, left:left + wd, :], dw, db", "return dxp, dw, db")),
           ("dx has shape", "'same'")),
    Mutant("conv2d_backward: dW as a matrix", "conv2d_backward",
           mutate(CONV, ("return dxp[:, top:top + h, left:left + wd, :], dw, db",
                         "return dxp[:, top:top + h, left:left + wd, :], dw.reshape(-1, f), db")),
           ("dW has shape",)),
    Mutant("maxpool2d_forward: 'valid' output size rounded up", "maxpool2d_forward",
           mutate(MAXPOOL, ("return (size - k) // s + 1, 0", "return -(-size // s), 0")), ("y has shape",)),
    Mutant("maxpool2d_forward: strides=None taken as 1", "maxpool2d_forward",
           mutate(MAXPOOL, ("(ph, pw) if strides is None", "(1, 1) if strides is None")), ("y has shape",)),
    Mutant("dense_forward: forgets the bias", "dense_forward",
           mutate(DENSE, ("        y += b.astype(np.float64)\n", "        pass\n")), ("y is wrong",)),
    Mutant("dense_forward: float64 out for float32 in", "dense_forward",
           mutate(DENSE, ("return y.astype(x.dtype), {", "return y, {")), ("y has dtype float64, expected float32",)),
    Mutant("dense_backward: dW transposed", "dense_backward", mutate(DENSE, ('"ni,no->io"', '"ni,no->oi"')),
           ("dW has shape",)),
    Mutant("dense_backward: a db without a bias", "dense_backward",
           mutate(DENSE, ('if cache["bias"] else None', "")), ("db should be None",)),
    Mutant("softmax_ce: float64 one-hot up-casts float32", "softmax_cross_entropy",
           mutate(SOFTMAX_CE, ("dlogits = np.exp(log_p)\n    dlogits[np.arange(n), y] -= 1",
                               "dlogits = np.exp(log_p) - np.eye(logits.shape[1])[y]")),
           ("dlogits has dtype float64, expected float32",)),
    Mutant("softmax_ce: loss per sample, not the mean", "softmax_cross_entropy",
           mutate(SOFTMAX_CE, ("return float(loss), dlogits / n", "return -log_p[np.arange(n), y], dlogits / n")),
           ("loss should be a number",)),
    Mutant("adam: alpha as a NumPy float64 up-casts float32", "adam_update",
           mutate(ADAM_KERAS, ("math.sqrt(1.0 - beta_2 ** t)", "np.sqrt(1.0 - beta_2 ** t)")),
           ("w has dtype float64, expected float32",)),
    Mutant("adam: the moments' betas swapped", "adam_update",
           mutate(ADAM_KERAS, ("m_new = beta_1 * m + (1.0 - beta_1) * dw", "m_new = (1.0 - beta_1) * m + beta_1 * dw")),
           ("is wrong",)),
    Mutant("batchnorm_forward: normalised over the batch axis only", "batchnorm_forward",
           mutate(BATCHNORM, ("axes = tuple(range(x.ndim - 1))\n    m = x.size // x.shape[-1]",
                              "axes = (0,)\n    m = x.shape[0]")), ("y is wrong", "feature maps")),
    Mutant("batchnorm_backward: dgamma without 1/std", "batchnorm_backward",
           mutate(BATCHNORM, ("np.sum(dy * centered / std, axis=axes)", "np.sum(dy * centered, axis=axes)")),
           ("dgamma is wrong",)),
    Mutant("dropout_forward: not scaled by 1/(1 - rate)", "dropout_forward",
           mutate(DROPOUT, ("np.where(keep, x / (1.0 - rate), 0)", "np.where(keep, x, 0)")),
           ("kept values must be x / (1 − rate)",)),
    Mutant("dropout_forward: keeps with probability rate", "dropout_forward",
           mutate(DROPOUT, ("rng.binomial(1, 1.0 - rate, size", "rng.binomial(1, rate, size")),
           ("of the values were kept, expected about 75%",)),
    Mutant("dropout_forward: mask from the global NumPy random state", "dropout_forward",
           mutate(DROPOUT, ("rng.binomial(", "np.random.binomial(")), ("the mask must come from the rng",)),
    Mutant("dropout_backward: not scaled by 1/(1 - rate)", "dropout_backward",
           mutate(DROPOUT, ("np.where(keep, dy / (1.0 - rate), 0)", "np.where(keep, dy, 0)")), ("dx is wrong",)),
    Mutant("relu_forward: wrong shape (flattened)", "relu_forward",
           mutate(RELU, ("return y, x", "return y.ravel(), x")), ("y has shape",)),

    # ---- robustness: whatever the learner's function does, a clear failure -------------------
    Mutant("relu_backward raises ValueError", "relu_backward",
           '''
           def relu_backward(dy, cache):
               raise ValueError("operands could not be broadcast together")
           ''', ("relu_backward raised ValueError: operands could not be broadcast together",)),
    Mutant("relu_forward returns y without the cache", "relu_forward", mutate(RELU, ("return y, x", "return y")),
           ("relu_forward returned ndarray; expected (y, cache)",)),
    Mutant("dense_backward returns 2 values", "dense_backward", mutate(DENSE, ("return dx, dw, db", "return dx, dw")),
           ("dense_backward returned a tuple of 2; expected (dx, dW, db)",)),
    Mutant("relu_backward returns a tuple", "relu_backward", mutate(RELU, ("    return dx\n", "    return dx, None\n")),
           ("relu_backward returned a tuple of 2; expected one array",)),
    Mutant("relu_forward returns NaN", "relu_forward", mutate(RELU, ("y[y < 0] = 0", "y = y * (y > 0) / (y > 0)")),
           ("y holds NaN or inf",)),
    Mutant("relu_forward changes x in place", "relu_forward", mutate(RELU, ("y = x.copy()", "y = x")),
           ("relu_forward changed its argument 1 in place",)),
    Mutant("relu_backward changes dy in place", "relu_backward", mutate(RELU, ("dx = dy.copy()", "dx = dy")),
           ("relu_backward changed its argument 1 in place",)),
    Mutant("sgd changes w in place", "sgd_update", mutate(SGD, ("    return w + step, new_velocity\n",
                                                                "    w += step\n    return w, new_velocity\n")),
           ("sgd_update changed its argument 1 in place",)),
    Mutant("batchnorm_forward: os._exit(3)", "batchnorm_forward",
           '''
           def batchnorm_forward(x, gamma, beta, epsilon=1e-3):
               import os
               os._exit(3)
           ''', ("ended abruptly (exit code 3)",)),
    Mutant("dropout_forward: a segmentation fault", "dropout_forward",
           '''
           def dropout_forward(x, rate, rng):
               import ctypes, faulthandler, resource
               faulthandler.disable()           # (pytest's traceback dump would only clutter the log)
               resource.setrlimit(resource.RLIMIT_CORE, (0, 0))      # and no core file in the repository
               ctypes.string_at(0)              # reads address 0: SIGSEGV
           ''', ("ended abruptly (exit code -11)",)),
]


def pack(entries, names_of):
    """Files of entries that can share one file: at most one entry per family of functions."""
    rounds = []
    for entry in entries:
        families = {family(name) for name in names_of(entry)}
        for members in rounds:
            if not families & {family(n) for other in members for n in names_of(other)}:
                members.append(entry)
                break
        else:
            rounds.append([entry])
    return rounds


@pytest.fixture(scope="module")
def mutant_reports(tmp_path_factory):
    """Each mutant's id -> (its round's report, every function some mutant of that round targets)."""
    folder = tmp_path_factory.mktemp("mutants")
    reports = {}
    for i, members in enumerate(pack(MUTANTS, lambda m: defined(m.source) + [m.target])):
        path = folder / f"round{i}.py"
        path.write_text(exercises_file(*(m.source for m in members)))
        report = check(path=path)
        for m in members:
            reports[m.id] = (report, {m.target for m in members})
    return reports


def test_there_are_enough_mutants_and_every_known_mistake_is_covered():
    assert len(MUTANTS) >= 20 and len({m.id for m in MUTANTS}) == len(MUTANTS)
    expected_hints = {m.hint for m in MUTANTS if m.hint}
    for name, mistakes in MISTAKES.items():
        for hint, _ in mistakes:                  # every hint in MISTAKES is one some mutant gets
            assert any(h in hint for h in expected_hints), (name, hint)
    assert any(h in MAX_SHIFT_HINT for h in expected_hints) and any(h in TIE_HINT for h in expected_hints)


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.id)
def test_the_grader_fails_the_mutant_and_names_the_problem(mutant, mutant_reports):
    report, targets = mutant_reports[mutant.id]
    result = report[mutant.target]
    assert result.status == "failed", str(result)
    failure = result.failure
    assert failure.case and failure.case != "(loading exercises.py)", str(result)     # every mutant file loads
    for part in mutant.message:
        assert part in f"{failure.message} (case {failure.case})", str(result)
    if mutant.hint is None:
        assert failure.hint is None, str(result)
    else:
        assert failure.hint is not None and mutant.hint in failure.hint, str(result)
    if failure.index is not None and failure.expected is not None and np.isfinite(failure.expected):
        assert failure.expected != failure.received
    assert not report.ok
    # every other function of the file passes — except a mutated forward's own backward (it needs the forward)
    for other in report.results:
        partner = other.name.endswith("_backward") and f"{family(other.name)}_forward" in targets
        if other.name not in targets and not partner:
            assert other.status == "passed", f"{mutant.id}: {other}"


def test_a_backward_whose_forward_fails_says_so(mutant_reports):
    report, targets = mutant_reports["relu_forward returns y without the cache"]
    assert "relu_backward" not in targets
    failure = report["relu_backward"].failure
    assert report["relu_backward"].status == "failed"
    assert "relu_backward needs your relu_forward (its cache comes from there)" in failure.message
    assert "relu_forward returned ndarray; expected (y, cache)" in failure.message


# The failure's expected and received values are the true ones: recomputed here, with the test's
# own implementations, on the case the failure names.
VALUE_CHECKS = ["dense_forward: forgets the bias", "conv2d_forward: forgets the bias",
                "conv2d_forward: 'same' padding on the top/left", "maxpool2d_forward: 'same' padded with zeros",
                "adam: no bias correction", "sgd: nesterov ignored", "softmax_ce: dlogits without 1/N"]


def run_source(source, name, *args, **kwargs):
    namespace = {}
    exec(compile(exercises_file(source), "<test>", "exec"), namespace)   # noqa: S102
    return namespace[name](*args, **kwargs)


@pytest.mark.parametrize("mutant_id", VALUE_CHECKS)
def test_the_reported_first_wrong_element_is_the_true_one(mutant_id, mutant_reports):
    mutant = next(m for m in MUTANTS if m.id == mutant_id)
    failure = mutant_reports[mutant_id][0][mutant.target].failure
    listing = (case_lists.CASES[family(mutant.target)]() if mutant.target.endswith("_forward")
               else getattr(case_lists, f"{mutant.target}_cases")())
    case = next(c for c in listing if c.label == failure.case)
    correct = next(v for v in VARIANTS.values() if mutant.target in defined(v))
    position = {"y": 0, "w": 0, "loss": 0, "dlogits": 1, "velocity": 1, "m": 1, "v": 2}[failure.message.split()[0]]
    right = run_source(correct, mutant.target, *case.args, **case.kwargs)[position]
    wrong = run_source(mutant.source, mutant.target, *case.args, **case.kwargs)[position]
    assert np.asarray(right)[failure.index] == pytest.approx(failure.expected, rel=1e-6)
    assert np.asarray(wrong)[failure.index] == pytest.approx(failure.received, rel=1e-6)
    assert failure.expected != pytest.approx(failure.received, rel=1e-6)


# =================================================================================================
# Correct implementations written differently pass
# =================================================================================================
@pytest.fixture(scope="module")
def variant_reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("variants")
    reports = {}
    for i, members in enumerate(pack(list(VARIANTS), lambda key: defined(VARIANTS[key]))):
        path = folder / f"variants{i}.py"
        path.write_text(exercises_file(*(VARIANTS[key] for key in members)))
        report = check(path=path)
        reports.update({key: report for key in members})
    return reports


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_correct_implementation_written_differently_passes(variant, variant_reports):
    report = variant_reports[variant]
    names = defined(VARIANTS[variant])
    assert names
    for name in names:
        assert report[name].status == "passed", str(report[name])
        assert report[name].cases_passed == report[name].cases > 0
    assert report.ok, str(report)


def test_the_variants_are_really_written_differently():
    """Not tinycnn's code under another name: they run on a file with no tinycnn import at all."""
    for source in VARIANTS.values():
        assert "tinycnn" not in source and "F." not in source
    x = np.random.default_rng(0).standard_normal((2, 6, 5, 3))
    w = np.random.default_rng(1).standard_normal((3, 2, 3, 4))
    namespace = {"np": np}
    exec(CONV, namespace)                                                         # noqa: S102
    y, cache = namespace["conv2d_forward"](x, w, None, (2, 1), "same")
    assert np.allclose(y, functional.conv2d_forward(x, w, None, (2, 1), "same")[0])
    assert isinstance(cache, tuple) and cache[0] is x                             # no im2col columns cached


# =================================================================================================
# Robustness: files that do not load, endless loops, stubs
# =================================================================================================
def write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "exercises.py").write_text(textwrap.dedent(text))
    return folder


def test_an_endless_loop_is_stopped(tmp_path):
    folder = write(tmp_path, '''
        import numpy as np

        def relu_forward(x):
            while True:
                pass
        ''')
    report = check("relu_forward", path=folder, seconds=1)
    failure = report["relu_forward"].failure
    assert report["relu_forward"].status == "failed"
    assert "still running after 1 s in your relu_forward" in failure.message
    assert failure.case == case_lists.relu_cases()[0].label


def test_an_endless_loop_names_the_function_that_loops(tmp_path):
    """A backward is graded with the learner's own forward (its cache): when that forward loops,
    the report says it was the forward, not the backward being graded."""
    folder = write(tmp_path, SOLUTIONS.replace("def relu_forward(x", "def _unused_relu_forward(x") + '''

def relu_forward(x):
    while True:
        pass
''')
    failure = check("relu_backward", path=folder, seconds=1)["relu_backward"].failure
    assert "still running after 1 s in your relu_forward" in failure.message, failure.message


def test_a_file_with_a_syntax_error_fails_every_function(tmp_path):
    folder = write(tmp_path, SOLUTIONS + "\n\ndef relu_forward(x):\n    return x +\n")
    report = check(path=folder)
    assert [r.name for r in report.results] == EXERCISES
    for result in report.results:
        assert result.status == "failed"
        assert "exercises.py does not load: SyntaxError" in result.failure.message, str(result)
    assert main(["exercises", "check", "--dir", str(folder)]) == 1


def test_a_file_whose_import_fails_fails_every_function_named(tmp_path):
    folder = write(tmp_path, "import numpy as np\nimport no_such_module_for_the_exercises\n")
    report = check("relu_forward", "conv2d_backward", path=folder)
    for result in report.results:
        assert "does not load: ModuleNotFoundError" in result.failure.message, str(result)


def test_a_missing_function_fails_and_the_others_are_graded(tmp_path):
    folder = write(tmp_path, "import numpy as np\n\n" + RELU + "\n\ndef dense_backward(dy, cache):\n"
                   "    x, w, has_bias = cache\n    return dy @ w.T, x.T @ dy, dy.sum(axis=0) if has_bias else None\n")
    report = check("relu_forward", "relu_backward", "dense_forward", "dense_backward", "adam_update", path=folder)
    assert report["relu_forward"].passed and report["relu_backward"].passed
    assert "has no function dense_forward" in report["dense_forward"].failure.message
    assert "has no function adam_update" in report["adam_update"].failure.message
    # a backward without its forward cannot be graded: it says what it needs
    assert report["dense_backward"].status == "failed"
    assert "needs your dense_forward" in report["dense_backward"].failure.message
    assert "not written yet" in report["dense_backward"].failure.message


def test_a_stub_is_not_started_and_the_exit_status_is_1(tmp_path, capsys):
    folder = write(tmp_path, '''
        import numpy as np

        def relu_forward(x):
            return np.maximum(x, 0), x

        def relu_backward(dy, cache):
            raise NotImplementedError("relu_backward: not written yet")

        def dense_forward(x, w, b):
            raise NotImplementedError
        ''')
    report = check("relu_forward", "relu_backward", "dense_forward", path=folder)
    assert [r.status for r in report.results] == ["passed", "not started", "not started"]
    assert not report.ok and report.count("not started") == 2
    assert main(["exercises", "check", "relu_forward", "--dir", str(folder)]) == 0
    assert main(["exercises", "check", "relu_forward", "relu_backward", "--dir", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "not started" in out and "1 passed, 0 failed, 1 not started" in out


# =================================================================================================
# The workspace
# =================================================================================================
def test_start_writes_the_stubs_and_a_readme_and_every_stub_is_not_started(tmp_path):
    folder = tmp_path / "new" / "my-backprop"                     # created if missing
    target = start(folder)
    assert target == (folder / "exercises.py").resolve() and target.is_file()
    assert (folder / "README.md").is_file() and "exercises.py" in (folder / "README.md").read_text()
    text = target.read_text()
    assert defined(text) == EXERCISES
    assert text.count("raise NotImplementedError") == len(EXERCISES)
    report = check(path=folder)
    assert [r.name for r in report.results] == EXERCISES
    assert [r.status for r in report.results] == ["not started"] * 15 and not report.ok
    assert main(["exercises", "check", "--dir", str(folder)]) == 1


def test_start_never_overwrites_the_learners_work_unless_forced(tmp_path):
    target = start(tmp_path)
    mine = target.read_text().replace('raise NotImplementedError("relu_forward: not written yet")',
                                      "return np.maximum(x, 0), x")
    target.write_text(mine)
    with pytest.raises(FileExistsError, match="not overwritten"):
        start(tmp_path)
    assert target.read_text() == mine
    assert main(["exercises", "start", str(tmp_path)]) == 2
    assert target.read_text() == mine
    assert check("relu_forward", path=tmp_path)["relu_forward"].passed
    start(tmp_path, force=True)
    assert target.read_text() != mine
    assert check("relu_forward", path=tmp_path)["relu_forward"].status == "not started"


def test_start_refuses_the_tinycnn_package_and_a_file(tmp_path):
    package = Path(tinycnn.__file__).resolve().parent
    for inside in (package, package / "my-exercises", package / "exercises"):
        existed = inside.exists()
        with pytest.raises(ValueError, match="inside the tinycnn package"):
            start(inside)
        assert inside.exists() == existed
    assert not (package / "my-exercises").exists()
    assert not (package / "exercises" / "exercises.py").exists()
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    with pytest.raises(ValueError, match="not a folder"):
        start(a_file)
    assert a_file.read_text() == "mine"


# small cases on which each solution is run beside tinycnn.functional's function
def _small(name):
    rng = np.random.default_rng(EXERCISES.index(name))
    x4 = rng.standard_normal((2, 5, 5, 2))
    forward = {
        "relu": (x4,), "dense": (rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal(2)),
        "conv2d": (x4, rng.standard_normal((3, 3, 2, 3)), rng.standard_normal(3), 2, "same"),
        "maxpool2d": (x4, 3, 2, "same"), "batchnorm": (x4, rng.standard_normal(2), rng.standard_normal(2)),
    }
    if name == "softmax_cross_entropy":
        return (rng.standard_normal((4, 3)), np.array([0, 2, 1, 2])), None
    if name == "sgd_update":
        return tuple(rng.standard_normal(5) for _ in range(3)) + (0.1, 0.9, True), None
    if name == "adam_update":
        return (rng.standard_normal(5), rng.standard_normal(5), rng.standard_normal(5), np.abs(rng.standard_normal(5)),
                4, 0.01), None
    base, _, part = name.rpartition("_")
    if base == "dropout":
        return ((x4, 0.3, np.random.default_rng(5)), "forward") if part == "forward" else (None, "dropout")
    return forward[base], part


@pytest.mark.parametrize("name", EXERCISES)
def test_each_solution_runs_alone_and_equals_tinycnns_function(name):
    source = solution(name)
    assert f"def {name}(" in source
    namespace = {}
    exec(compile("import numpy as np\n" + source, f"<solution {name}>", "exec"), namespace)   # noqa: S102
    mine, theirs = namespace[name], getattr(functional, name)
    args, part = _small(name)
    if name == "dropout_backward":
        x = np.ones((4, 6))
        _, cache = functional.dropout_forward(x, 0.5, np.random.default_rng(2))
        args = (np.arange(24.0).reshape(4, 6), cache)
    elif part == "backward":
        y, cache = getattr(functional, f"{name.rpartition('_')[0]}_forward")(*args)
        args = (np.random.default_rng(3).standard_normal(y.shape), cache)
    if name == "dropout_forward":
        got, want = mine(args[0], args[1], np.random.default_rng(5)), theirs(args[0], args[1], np.random.default_rng(5))
    else:
        got, want = mine(*args), theirs(*args)
    got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
    if part == "forward":
        got, want = got[:1], want[:1]                    # the cache is the function's own business
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert (a is None and b is None) or np.array_equal(np.asarray(a), np.asarray(b))


def test_the_reference_solutions_pass_every_function(tmp_path, capsys):
    folder = write(tmp_path, SOLUTIONS)
    report = check(path=folder)
    assert report.ok and [r.name for r in report.results] == EXERCISES, str(report)
    assert all(r.cases_passed == r.cases > 0 for r in report.results)
    assert main(["exercises", "check", "--dir", str(folder)]) == 0
    assert "15 passed, 0 failed, 0 not started" in capsys.readouterr().out


def test_an_unknown_exercise_is_an_error(tmp_path, capsys):
    folder = write(tmp_path, SOLUTIONS)
    with pytest.raises(ValueError, match="no exercise 'relu_fwd'"):
        check("relu_fwd", path=folder)
    with pytest.raises(ValueError, match="no exercise"):
        solution("conv3d_forward")
    assert main(["exercises", "check", "relu_fwd", "--dir", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "no exercise 'relu_fwd'" in err and "relu_forward" in err
    with pytest.raises(FileNotFoundError):
        check(path=tmp_path / "nowhere")


# =================================================================================================
# teaching(functions=...)
# =================================================================================================
def _model():
    model = zoo.seed_model(2, input_shape=(8, 8, 1), seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    return model, np.random.default_rng(0).random((5, 8, 8, 1), dtype=np.float32)


def test_teaching_functions_are_called_during_a_forward_and_taken_out_afterwards():
    model, x = _model()
    calls = []

    def my_relu_forward(v):
        calls.append(v.shape)
        return functional.relu_forward(v)

    expected = model.predict(x)
    with tinycnn.teaching(functions={"relu_forward": my_relu_forward}):
        assert ops.relu_forward is my_relu_forward and tinycnn.is_teaching()
        got = model.predict(x)
    assert len(calls) == 2                    # Conv2D's relu and the first Dense's relu, one batch
    assert sorted(calls) == sorted([(5, 6, 6, 32), (5, 128)])
    assert np.allclose(got, expected, atol=1e-6)
    assert not tinycnn.is_teaching()
    assert ops.implementation("relu_forward") is not my_relu_forward
    with tinycnn.teaching():
        assert ops.relu_forward is functional.relu_forward
        model.predict(x)
    model.predict(x)
    assert len(calls) == 2


def test_teaching_functions_are_taken_out_after_an_exception_too():
    def broken_conv(*args, **kwargs):
        raise RuntimeError("my conv is broken")

    model, x = _model()
    with pytest.raises(RuntimeError, match="my conv is broken"):
        with tinycnn.teaching(functions={"conv2d_forward": broken_conv}):
            model.predict(x)
    assert not tinycnn.is_teaching()
    with tinycnn.teaching():
        assert ops.conv2d_forward is functional.conv2d_forward
    assert np.all(np.isfinite(model.predict(x)))


def test_teaching_rejects_unknown_functions():
    with pytest.raises(ValueError, match="unknown ops"):
        with tinycnn.teaching(functions={"relu_fwd": lambda x: (x, x)}):
            pass                                                  # pragma: no cover
    assert not tinycnn.is_teaching()
    with tinycnn.teaching():
        assert ops.relu_forward is functional.relu_forward


# =================================================================================================
# Training on the real PneumoniaMNIST
# =================================================================================================
USED_BY_THE_SEED_MODEL = ["relu_forward", "relu_backward", "dense_forward", "dense_backward",
                          "softmax_cross_entropy", "adam_update", "conv2d_forward", "conv2d_backward",
                          "maxpool2d_forward", "maxpool2d_backward"]


@pytest.mark.slow
def test_training_on_the_reference_solutions_reaches_the_published_accuracy(tmp_path, medmnist_dir):
    folder = write(tmp_path, SOLUTIONS)
    report = tinycnn.exercises.train(folder, data=medmnist_dir, verbose=0)
    assert report.check.ok and report.fallback == {}
    assert report.epochs == 3 and report.dataset
    assert report.yours["acc"] >= 0.85, report.yours
    assert 0.9 <= report.yours["auc"] <= 1.0, report.yours
    assert report.tinycnn["acc"] >= 0.85, report.tinycnn
    assert set(report.calls) == set(EXERCISES)
    for name in USED_BY_THE_SEED_MODEL:
        assert report.calls[name] > 0, (name, report.calls)
    for name in set(EXERCISES) - set(USED_BY_THE_SEED_MODEL):      # sgd, batchnorm, dropout
        assert report.calls[name] == 0, (name, report.calls)
    assert "Your code ran in training" in str(report) and "sgd_update" in str(report)


@pytest.mark.slow
def test_training_falls_back_to_tinycnn_for_the_functions_not_written(tmp_path, medmnist_dir):
    target = start(tmp_path)
    target.write_text(target.read_text() + "\n\n" + solution("relu_forward") + "\n\n" + solution("relu_backward"))
    report = tinycnn.exercises.train(tmp_path, epochs=1, data=medmnist_dir, verbose=0)
    assert set(report.calls) == {"relu_forward", "relu_backward"}
    assert report.calls["relu_forward"] > 0 and report.calls["relu_backward"] > 0
    assert report.fallback == {name: "not started" for name in EXERCISES if not name.startswith("relu")}
    assert np.isfinite(report.yours["acc"]) and report.epochs == 1
    assert "tinycnn's instead" in str(report)
