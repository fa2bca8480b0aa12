"""Gradient checking: compare backprop with central finite differences, in float64.

For a scalar function f of an array x, each partial derivative is estimated as::

    ∂f/∂x_i ≈ ( f(x + h·e_i) − f(x − h·e_i) ) / 2h        error O(h²) + rounding O(ε·|f|/h)

and compared with the analytic gradient ``a`` by the relative error::

    rel_error(a, n) = max_i |a_i − n_i| / max(1e-8, max_i (|a_i| + |n_i|))

The denominator is the scale of the whole gradient, not of each entry: an entry whose true
gradient is 0 would otherwise turn harmless rounding noise of 1e-12 into a "relative error" of 1.
In float64, a correct backward typically gives 1e-10 or less; a wrong one, 1e-2 or more.

Layers are checked through a scalar "loss" ``L = Σ R ⊙ layer(x)`` with a fixed random ``R``: its
gradient with respect to the output is exactly ``R``, which is what ``backward`` receives.

The checks run in teaching mode by default (:func:`tinycnn.teaching`: the layers' own ``forward``
and ``backward`` on :mod:`tinycnn.functional`); ``teaching=False`` checks the kernels instead.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import ops


def rel_error(analytic, numeric) -> float:
    """``max|a − n| / max(1e-8, max(|a| + |n|))``."""
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"rel_error: shapes differ: {a.shape} vs {n.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - n)) / max(1e-8, float(np.max(np.abs(a) + np.abs(n)))))


def numerical_gradient(f: Callable[[], float], x: np.ndarray, h: float = 1e-5,
                       indices=None) -> np.ndarray:
    """Central differences of ``f()`` with respect to the array ``x``, which ``f`` reads.

    ``x`` is perturbed in place one entry at a time and restored exactly. With ``indices`` (flat
    positions), only those entries are estimated; the others are left at 0.
    """
    if x.dtype != np.float64:
        raise TypeError(f"numerical_gradient: use float64 arrays (got {x.dtype}); float32 rounding "
                        "swamps the finite differences")
    grad = np.zeros_like(x)
    flat_x, flat_g = x.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat_x, x):
        raise ValueError("numerical_gradient: x must be contiguous so that it can be perturbed in place")
    for i in range(flat_x.size) if indices is None else indices:
        old = flat_x[i]
        flat_x[i] = old + h
        f_plus = f()
        flat_x[i] = old - h
        f_minus = f()
        flat_x[i] = old
        flat_g[i] = (f_plus - f_minus) / (2 * h)
    return grad


def repeatable(layers) -> Callable[[], None]:
    """A function that resets every layer's random generator (Dropout's masks) and state
    (BatchNormalization's moving statistics) to what they are now, so that repeated forward
    passes compute the same function — finite differences need exactly that."""
    generators = [(layer, layer.rng.bit_generator.state) for layer in layers if hasattr(layer, "rng")]
    states = [(layer, {key: value.copy() for key, value in layer.state.items()}) for layer in layers]

    def reset() -> None:
        for layer, state in generators:
            layer.rng.bit_generator.state = state
        for layer, saved in states:
            for key, value in saved.items():
                layer.state[key][...] = value
    return reset


def check_layer(layer, x: np.ndarray, h: float = 1e-5, seed: int = 0, teaching: bool = True) -> dict[str, float]:
    """Relative errors of a layer's input gradient and every parameter gradient.

    Returns ``{"input": err, "kernel": err, "bias": err, ...}``. ``x`` and the layer's weights
    must be float64 (build the layer with ``dtype=np.float64``, or let ``forward`` build it).
    """
    with ops.teaching(teaching):
        return _check_layer(layer, x, h, seed)


def _check_layer(layer, x, h, seed):
    x = np.array(x, dtype=np.float64, copy=True)
    if not layer.built:
        layer.build(x.shape[1:], rng=np.random.default_rng(seed), dtype=np.float64)
    if layer.dtype != np.float64:
        raise TypeError(f"check_layer: {layer.label} has {layer.dtype} weights; build it in float64")
    reset = repeatable([layer])
    out = layer.forward(x, training=True)
    upstream = np.random.default_rng(seed).standard_normal(out.shape)

    def loss() -> float:
        reset()
        return float(np.sum(upstream * layer.forward(x, training=True)))

    reset()
    layer.forward(x, training=True)
    dx = layer.backward(upstream)
    analytic = {"input": dx, **{k: g.copy() for k, g in layer.grads.items()}}
    errors = {"input": rel_error(dx, numerical_gradient(loss, x, h))}
    for key, param in layer.params.items():
        errors[key] = rel_error(analytic[key], numerical_gradient(loss, param, h))
    reset()
    return errors


def check_model(model, x, y, h: float = 1e-5, max_entries: int | None = None,
                seed: int = 0, teaching: bool = True) -> dict[str, float]:
    """Relative error of the model's loss gradient for every weight array (``"conv2d/kernel"``...).

    The model must be compiled and float64 (``model.astype("float64")``). With ``max_entries``,
    at most that many randomly chosen entries of each weight array are checked (all if None).
    """
    with ops.teaching(teaching):
        return _check_model(model, x, y, h, max_entries, seed)


def _check_model(model, x, y, h, max_entries, seed):
    if model.dtype != np.float64:
        raise TypeError(f"check_model: the model is {model.dtype}; call model.astype('float64') first")
    x = np.asarray(x, dtype=np.float64)
    reset = repeatable(model.layers)
    reset()
    model.loss_and_grads(x, y)
    analytic = [g.copy() for g in model.grads]
    rng = np.random.default_rng(seed)

    def loss() -> float:
        reset()
        return model.compute_loss(x, y)

    errors = {}
    for (name, param), grad in zip(model.named_params(), analytic):
        if max_entries is None or param.size <= max_entries:
            errors[name] = rel_error(grad, numerical_gradient(loss, param, h))
        else:
            idx = rng.choice(param.size, size=max_entries, replace=False)
            numeric = numerical_gradient(loss, param, h, indices=idx)
            errors[name] = rel_error(grad.reshape(-1)[idx], numeric.reshape(-1)[idx])
    reset()
    return errors
