"""Weight penalties added to the loss (Keras's ``kernel_regularizer``).

``L2(l2)`` adds ``l2 · Σ w²`` to the loss for the layer's kernel, so backprop adds ``2 · l2 · w``
to the kernel's gradient: every step pulls the weights toward 0 by an amount that the optimizer
then rescales like any other gradient (with Adam, by the running gradient statistics).

That is *not* the same as decoupled weight decay (:class:`tinycnn.optimizers.AdamW`), which
shrinks the weights directly, ``w ← w − lr · wd · w``, outside the gradient and therefore outside
Adam's per-weight rescaling. With plain SGD the two coincide (for ``wd = 2 · l2``); with Adam they
do not, and decoupled decay usually regularises more predictably (Loshchilov & Hutter, 2019).
"""

from __future__ import annotations

import numpy as np


class L2:
    """``penalty = l2 · Σ w²``;  ``gradient = 2 · l2 · w`` (Keras's ``regularizers.L2``, default 0.01)."""

    def __init__(self, l2: float = 0.01):
        if not isinstance(l2, (int, float)) or isinstance(l2, bool) or not np.isfinite(l2) or l2 < 0:
            raise ValueError(f"L2: l2 must be a finite number >= 0, got {l2!r}")
        self.l2 = float(l2)

    def penalty(self, w: np.ndarray) -> float:
        return self.l2 * float(np.sum(np.square(w, dtype=np.float64)))

    def gradient(self, w: np.ndarray) -> np.ndarray:
        return w * w.dtype.type(2 * self.l2)

    def get_config(self) -> dict:
        return {"l2": self.l2}

    def __eq__(self, other):
        return isinstance(other, L2) and other.l2 == self.l2

    def __repr__(self):
        return f"L2({self.l2})"


def get(regularizer):
    """None, an ``L2`` object, a number (meaning ``L2(number)``) or a saved config dict."""
    if regularizer is None or isinstance(regularizer, L2):
        return regularizer
    if isinstance(regularizer, dict) and set(regularizer) == {"l2"}:
        return L2(**regularizer)
    if isinstance(regularizer, (int, float)) and not isinstance(regularizer, bool):
        return L2(regularizer)
    raise ValueError(f"unknown kernel_regularizer {regularizer!r}; expected None, a number or tinycnn.regularizers.L2")


def penalties(layers):
    """``(layer, penalty, gradient)`` for every layer with a ``kernel_regularizer``: the one place
    that works out what weight penalties add to the loss (``l2 · Σ W²``) and to the kernel's
    gradient (``2 · l2 · W``) — the model's step, its loss and the trace all ask here."""
    for layer in layers:
        regularizer = getattr(layer, "kernel_regularizer", None)
        if regularizer is not None:
            kernel = layer.params["kernel"]
            yield layer, regularizer.penalty(kernel), regularizer.gradient(kernel)
