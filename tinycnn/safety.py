"""Training that fails safely: non-finite values, Ctrl-C, and the errors they raise.

* :class:`NonFiniteError` — a NaN or inf appeared in the loss, a layer's output or a gradient.
  ``fit`` checks the loss and gradients *before* the optimizer step, and the update itself after
  it (once per epoch, rewinding and replaying the epoch to find the step: ``training.Rewind``), so
  the weights and optimizer state stay those of the last finite step.
* :class:`DeferredInterrupt` — while ``fit`` runs, Ctrl-C (SIGINT) only raises a flag; the
  current step finishes (an update is never half-applied), then ``fit`` stops and returns the
  history so far. A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import signal
import threading

import numpy as np

from . import ops
from .errors import CallOrderError, NonFiniteError  # noqa: F401  (raised by the model, found here)


def first_nonfinite_output(layers, x, training=True):
    """Run ``x`` through ``layers`` and return ``(index, layer)`` of the first whose output has a
    NaN or inf, or ``(None, None)`` (used to explain a non-finite loss)."""
    out = x
    for i, layer in enumerate(layers):
        out = layer.forward(out, training=training)
        if not np.all(np.isfinite(out)):
            return i, layer
    return None, None


def first_nonfinite_gradient(layers):
    """``(layer, key)`` of the first layer *in backward order* with a non-finite gradient."""
    for layer in reversed(layers):
        for key, grad in layer.grads.items():
            if not ops.all_finite(grad):
                return layer, key
    return None, None


class DeferredInterrupt:
    """Context manager: turn the first SIGINT into a flag (``.requested``) instead of an exception.

    Only possible in the main thread (Python delivers signals there); elsewhere it does nothing
    and Ctrl-C behaves as usual.
    """

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:                      # second Ctrl-C: stop now
            signal.signal(signal.SIGINT, self._previous)
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False
