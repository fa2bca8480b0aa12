"""Weight initializers, with Keras's definitions so that a tinycnn model starts where Keras would.

Every initializer is a function ``init(shape, rng, dtype) -> array``. ``rng`` is a
``numpy.random.Generator``: randomness is always passed in, never taken from global state.

Fans follow Keras (``keras.src.initializers.random_initializers.compute_fans``):

* Dense kernel ``(in, out)``:             fan_in = in,            fan_out = out
* Conv2D kernel ``(kh, kw, c_in, c_out)``: fan_in = kh·kw·c_in,   fan_out = kh·kw·c_out
"""

from __future__ import annotations

import numpy as np


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight tensor the way Keras computes them."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def glorot_uniform(shape, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """Uniform on ``[-limit, limit]`` with ``limit = sqrt(6 / (fan_in + fan_out))`` (Keras's default)."""
    fan_in, fan_out = compute_fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def he_normal(shape, rng: np.random.Generator, dtype=np.float32) -> np.ndarray:
    """Truncated normal with ``stddev = sqrt(2 / fan_in)``, as Keras's ``HeNormal``.

    Keras draws from a normal truncated at two standard deviations and divides the scale by
    0.8796..., the standard deviation of a unit normal truncated to [-2, 2], so that the
    *truncated* distribution has variance ``2 / fan_in``.
    """
    fan_in, _ = compute_fans(shape)
    stddev = np.sqrt(2.0 / fan_in) / 0.87962566103423978
    return truncated_normal(shape, stddev, rng).astype(dtype)


def truncated_normal(shape, stddev: float, rng: np.random.Generator) -> np.ndarray:
    """Normal(0, stddev²) samples, redrawing any that fall outside two standard deviations."""
    values = rng.standard_normal(size=shape)
    outside = np.abs(values) > 2.0
    while outside.any():
        values[outside] = rng.standard_normal(size=int(outside.sum()))
        outside = np.abs(values) > 2.0
    return values * stddev


def zeros(shape, rng: np.random.Generator | None = None, dtype=np.float32) -> np.ndarray:
    """All zeros (Keras's default for biases). ``rng`` is accepted and ignored."""
    return np.zeros(shape, dtype=dtype)


_BY_NAME = {"glorot_uniform": glorot_uniform, "he_normal": he_normal, "zeros": zeros}


def get(initializer):
    """Look up an initializer by name, or pass a callable through."""
    if callable(initializer):
        return initializer
    if isinstance(initializer, str) and initializer in _BY_NAME:
        return _BY_NAME[initializer]
    raise ValueError(
        f"unknown initializer {initializer!r}: expected one of {sorted(_BY_NAME)} or a callable "
        "init(shape, rng, dtype)"
    )


def name_of(initializer) -> str:
    """The registry name of an initializer (for saving a model's architecture)."""
    for name, fn in _BY_NAME.items():
        if fn is initializer:
            return name
    raise ValueError(f"initializer {initializer!r} has no registered name and cannot be saved")
