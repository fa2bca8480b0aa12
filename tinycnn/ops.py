"""The one boundary between the layers and the math.

Layers call ``ops.conv2d_forward(...)``, ``ops.relu_backward(...)`` and so on — the names and
signatures of :mod:`tinycnn.functional`. Which implementation answers is decided here, and only here:

* **teaching mode** (``with tinycnn.teaching():`` or ``tinycnn.set_teaching(True)``): the textbook
  functions of :mod:`tinycnn.functional`, one thread, no fusion — every layer's own ``forward``
  and ``backward`` runs, in order, so a breakpoint in ``Conv2D.backward`` or in
  ``functional.conv2d_backward`` fires during ``model.fit``;
* otherwise: :mod:`tinycnn.kernels`, the same signatures made fast (threads, cache blocking, the
  fused Conv2D → ReLU → MaxPool2D step); ops without a kernel run their functional version.

The switch is process-wide (like NumPy's print options): turn it on in the thread that trains.
"""

from __future__ import annotations

from contextlib import contextmanager

from . import functional, kernels

_teaching = False


def is_teaching() -> bool:
    """True while teaching mode is on."""
    return _teaching


def set_teaching(on: bool = True) -> None:
    """Turn teaching mode on (``True``) or off (``False``) until it is set again."""
    global _teaching
    if not isinstance(on, bool):
        raise TypeError(f"set_teaching: expected True or False, got {on!r}")
    _teaching = on


@contextmanager
def teaching(on: bool = True, functions: dict | None = None):
    """``with tinycnn.teaching(): model.fit(...)`` — run everything on :mod:`tinycnn.functional`,
    layer by layer, in one thread; the previous mode comes back afterwards.

    ``functions``: ``{"conv2d_forward": my_conv2d_forward, ...}`` — your own implementations of some
    ops, used instead of :mod:`tinycnn.functional`'s while the block runs (how ``tinycnn exercises
    train`` plugs a learner's backprop into a real training run). They must have the functional
    signatures."""
    global _TEACHING
    unknown = sorted(set(functions or {}) - set(functional.__all__))
    if unknown:
        raise ValueError(f"teaching: unknown ops {unknown}; the ops are those of tinycnn.functional")
    before, table = _teaching, _TEACHING
    _TEACHING = {**table, **(functions or {})}
    set_teaching(on)
    try:
        yield
    finally:
        set_teaching(before)
        _TEACHING = table


def implementation(name: str):
    """The function that ``ops.<name>`` calls right now."""
    table = _TEACHING if _teaching else _FAST
    if name not in table:
        raise AttributeError(f"tinycnn.ops has no op {name!r}; the ops are those of tinycnn.functional")
    return table[name]


_TEACHING = {name: getattr(functional, name) for name in functional.__all__}
_FAST = {name: getattr(kernels, name, None) or getattr(functional, name) for name in functional.__all__}


def plan(layers, fuse=True) -> list:
    """The steps that run ``layers``: the layers themselves in teaching mode (or with
    ``fuse=False``); otherwise the kernels may run some neighbours as one fused step."""
    return list(layers) if _teaching else kernels.plan(layers, fuse)


def one_blas_thread():
    """Context manager: each BLAS call uses one thread (the kernels run two side by side; teaching
    mode runs everything in one)."""
    return kernels.parallel.one_blas_thread()


def __getattr__(name: str):                 # ops.conv2d_forward, ops.adam_update, ...
    return implementation(name)
