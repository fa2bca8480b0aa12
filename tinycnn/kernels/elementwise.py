"""Elementwise kernels: ReLU, the optimizers' updates, the finiteness check — on both cores, in place.

Each public function has the signature of its twin in :mod:`tinycnn.functional` and computes the
same numbers (the tests hold them equal). Unlike the textbook versions, the optimizer updates
write into the arrays they are given (the optimizer's own weights and slots) and return them.
"""

from __future__ import annotations

import numpy as np

from .memory import Scratch
from .parallel import in_parts, on_cores

_scratch = Scratch()    # temporaries of the optimizer updates (per thread, reused every step)

# NumPy runs ``np.maximum(x, 0)`` — a maximum with a *scalar* — on a slow element-by-element path,
# about 3× slower than against an array of zeros; so the ReLU takes its zeros from an array.
RELU_BLOCK = 1 << 20         # elements of zeros (4 MB of float32); longer arrays go block by block
_zeros: dict = {}


def relu_into(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``np.maximum(x, 0, out=out)``, computed against a block of zeros (see above); returns ``out``."""
    if not (x.flags.c_contiguous and out.flags.c_contiguous):
        return np.maximum(x, 0, out=out)
    zeros = _zeros.get(x.dtype)
    if zeros is None or zeros.size < min(x.size, RELU_BLOCK):
        zeros = np.zeros(min(max(x.size, 1 << 16), RELU_BLOCK), x.dtype)
        zeros.flags.writeable = False
        _zeros[x.dtype] = zeros
    flat_x, flat_out = x.reshape(-1), out.reshape(-1)
    for start in range(0, x.size, RELU_BLOCK):
        part = slice(start, start + RELU_BLOCK)
        np.maximum(flat_x[part], zeros[:min(RELU_BLOCK, x.size - start)], out=flat_out[part])
    return out


def relu_forward(x):
    """``y = max(x, 0)`` (:func:`relu_into`), the images split over the cores; the cache is ``y``
    (``y > 0`` exactly where ``x > 0``)."""
    y = np.empty_like(x)
    on_cores(lambda rows: relu_into(x[rows], y[rows]), x.shape[0], x[0].size)
    return y, y


def relu_backward(dy, cache):
    """``dy · [y > 0]``: a multiplication by the boolean mask (far faster than ``np.where``), the
    images split over the cores."""
    y = cache
    dx = np.empty_like(dy)
    on_cores(lambda rows: np.multiply(dy[rows], y[rows] > 0, out=dx[rows]), dy.shape[0], dy[0].size)
    return dx


def sgd_update(w, dw, velocity, learning_rate, momentum=0.0, nesterov=False):
    """:func:`tinycnn.functional.sgd_update`, in place: ``w`` and ``velocity`` are updated and returned."""
    f = w.dtype.type
    lr, mu = f(learning_rate), f(momentum)
    np.multiply(velocity, mu, out=velocity)            # velocity = μ·velocity − lr·dw
    step = _scratch.get("sgd", w.shape, w.dtype)
    np.multiply(dw, lr, out=step)
    velocity -= step
    if nesterov:                                        # w += μ·velocity − lr·dw
        np.multiply(velocity, mu, out=step)
        w += step
        np.multiply(dw, lr, out=step)
        w -= step
    else:
        w += velocity
    return w, velocity


def adam_update(w, dw, m, v, t, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """:func:`tinycnn.functional.adam_update`, in place: the same operations in the same order,
    spelled as in-place steps through reused temporaries (nothing allocated), a big kernel cut into
    one part per core. ``w``, ``m`` and ``v`` are updated and returned."""
    f = w.dtype.type
    alpha = f(learning_rate) * np.sqrt(1 - f(beta_2) ** t) / (1 - f(beta_1) ** t)
    one_minus_b1, one_minus_b2, eps = f(1 - beta_1), f(1 - beta_2), f(epsilon)

    def step(w, g, m, v, tmp, tmp2):
        np.subtract(g, m, out=tmp)                  # m = m + (g − m)·(1 − β1)
        tmp *= one_minus_b1
        m += tmp
        np.multiply(g, g, out=tmp)                  # v = v + (g² − v)·(1 − β2)
        tmp -= v
        tmp *= one_minus_b2
        v += tmp
        np.multiply(m, alpha, out=tmp)              # w = w − m·alpha / (sqrt(v) + ε)
        np.sqrt(v, out=tmp2)
        tmp2 += eps
        tmp /= tmp2
        w -= tmp

    in_parts(step, w, dw, m, v, _scratch.get("adam_1", w.shape, w.dtype), _scratch.get("adam_2", w.shape, w.dtype),
             passes=12)
    return w, m, v


def adamw_update(w, dw, m, v, t, learning_rate=1e-3, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7):
    """:func:`tinycnn.functional.adamw_update`, in place."""
    f = w.dtype.type
    w -= w * f(weight_decay) * f(learning_rate)
    return adam_update(w, dw, m, v, t, learning_rate, beta_1, beta_2, epsilon)


def all_finite(a: np.ndarray) -> bool:
    """``np.isfinite(a).all()`` in one pass without a boolean temporary, for the common case.

    ``Σ a²`` — BLAS's dot product of ``a`` with itself, faster than ``a.sum()`` — is
    finite when every element is, unless it overflows float range; NaN or inf anywhere makes it
    NaN or inf. Only when it is not finite do we pay for the exact check (so a huge-but-finite
    array is never misreported).
    """
    flat = a.reshape(-1)
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.dot(flat, flat) if flat.dtype.kind == "f" else np.add.reduce(flat)
    if np.isfinite(total):
        return True
    return bool(np.isfinite(a).all())
