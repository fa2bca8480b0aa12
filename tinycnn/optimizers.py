"""SGD (with momentum and Nesterov) and Adam, with Keras 3's exact update rules.

An optimizer updates the parameter arrays **in place**::

    optimizer.apply(params, grads)     # lists of arrays, same order every step

and keeps its own per-parameter state ("slots": velocities, moments), created on the first call.
The update rules themselves are :func:`tinycnn.functional.sgd_update` and
:func:`tinycnn.functional.adam_update`, called through :mod:`tinycnn.ops`: the textbook versions
return new arrays, which are copied into the parameters; the kernels update them in place.
"""

from __future__ import annotations

import math

import numpy as np

from . import ops


class Optimizer:
    def __init__(self, learning_rate: float):
        if not isinstance(learning_rate, (int, float, np.floating)) or isinstance(learning_rate, bool) \
                or not math.isfinite(learning_rate) or learning_rate <= 0:
            raise ValueError(f"{type(self).__name__}: learning_rate must be a positive number, got {learning_rate!r}")
        self.learning_rate = float(learning_rate)
        self.iterations = 0            # number of updates applied so far (Keras's optimizer.iterations)
        self.slots: list[dict[str, np.ndarray]] | None = None

    def apply(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        """One update of every parameter, in place."""
        if len(params) != len(grads):
            raise ValueError(f"{type(self).__name__}: got {len(params)} parameters but {len(grads)} gradients")
        if self.slots is None:
            self.slots = [self.create_slots(p) for p in params]
        if len(self.slots) != len(params) or any(
                s and next(iter(s.values())).shape != p.shape for s, p in zip(self.slots, params)):
            raise ValueError(f"{type(self).__name__}: the parameters changed since the first step; "
                             "use a new optimizer for a new model")
        for param, grad, slots in zip(params, grads, self.slots):
            if grad.shape != param.shape:
                raise ValueError(f"{type(self).__name__}: gradient shape {grad.shape} != parameter shape {param.shape}")
            self.update(param, grad, slots)
        self.iterations += 1

    def create_slots(self, param: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    def update(self, param, grad, slots) -> None:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"learning_rate": self.learning_rate}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


class SGD(Optimizer):
    """Stochastic gradient descent, Keras 3's rule.

    Without momentum: ``w ← w − lr·g``. With momentum μ the velocity ``m`` (starting at 0) is::

        m ← μ·m − lr·g
        w ← w + m                      (classical)
        w ← w + μ·m − lr·g             (Nesterov: look ahead along the new velocity)
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False):
        super().__init__(learning_rate)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def create_slots(self, param):
        return {"velocity": np.zeros_like(param)} if self.momentum else {}

    def update(self, param, grad, slots):
        velocity = slots["velocity"] if self.momentum else np.zeros_like(param)
        w, velocity = ops.sgd_update(param, grad, velocity, self.learning_rate, self.momentum, self.nesterov)
        _store(param, w, slots, velocity=velocity)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam, in Keras's form. At step ``t`` (1, 2, ...)::

        alpha = lr · sqrt(1 − β2^t) / (1 − β1^t)      bias corrections folded into the step size
        m ← m + (g − m)·(1 − β1)                      running mean of gradients
        v ← v + (g² − v)·(1 − β2)                     running mean of squared gradients
        w ← w − alpha · m / (sqrt(v) + ε)

    Note where ε sits: added to ``sqrt(v)`` of the *uncorrected* v, with ε = 1e-7. The textbook
    (Kingma & Ba) adds ε = 1e-8 to ``sqrt(v̂)`` of the bias-corrected v̂; the two differ early in
    training when v is small.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        super().__init__(learning_rate)
        for what, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"Adam: {what} must be in [0, 1), got {value!r}")
        if not epsilon > 0:
            raise ValueError(f"Adam: epsilon must be positive, got {epsilon!r}")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def create_slots(self, param):
        return {"m": np.zeros_like(param), "v": np.zeros_like(param)}

    def update(self, param, grad, slots):
        w, m, v = ops.adam_update(param, grad, slots["m"], slots["v"], self.iterations + 1, self.learning_rate,
                                  self.beta_1, self.beta_2, self.epsilon)
        _store(param, w, slots, m=m, v=v)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class AdamW(Adam):
    """Adam with *decoupled* weight decay (Loshchilov & Hutter), Keras 3's rule: before each Adam
    step every weight shrinks toward 0, ``w ← w − w · weight_decay · lr``, independently of the
    gradient. Compare ``kernel_regularizer=L2(...)``, which adds to the gradient instead (see
    :mod:`tinycnn.regularizers`). As in Keras, the decay applies to every weight, biases included.
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        super().__init__(learning_rate, beta_1, beta_2, epsilon)
        if not isinstance(weight_decay, (int, float)) or isinstance(weight_decay, bool) or weight_decay < 0:
            raise ValueError(f"AdamW: weight_decay must be a number >= 0, got {weight_decay!r}")
        self.weight_decay = float(weight_decay)

    def update(self, param, grad, slots):
        w, m, v = ops.adamw_update(param, grad, slots["m"], slots["v"], self.iterations + 1, self.learning_rate,
                                   self.weight_decay, self.beta_1, self.beta_2, self.epsilon)
        _store(param, w, slots, m=m, v=v)

    def get_config(self):
        return {**super().get_config(), "weight_decay": self.weight_decay}


def _store(param, new, slots, **new_slots) -> None:
    """Put an update's results in place: the model's own ``param`` array (layers hold it) and the
    slots. (A kernel that updated them in place returned the same arrays: nothing to copy.)"""
    if new is not param:
        param[...] = new
    for key, value in new_slots.items():
        if key in slots:
            slots[key] = value


class LastFiniteStep:
    """An undo for one optimizer step, for training that must not end with NaN weights.

    A finite gradient can still make an update non-finite: a huge one overflows Adam's second
    moment ``v`` (g² > 3.4e38 in float32), or a huge learning rate sends ``w − lr·g`` to ±inf.
    ``Sequential.train_on_batch`` therefore does, around every step::

        undo.save(optimizer, params)               # copies into buffers kept between steps
        optimizer.apply(params, grads)
        bad = undo.first_nonfinite(optimizer, names, params)
        if bad: undo.restore(optimizer, params)    # weights, slots and step count as before

    The check is one BLAS dot product per array (:func:`tinycnn.ops.all_finite`); the update rules
    themselves (:mod:`tinycnn.functional`) stay as the textbook writes them. ``fit`` avoids even
    the copy per step: see :class:`tinycnn.training.Rewind`.
    """

    def __init__(self):
        self._buffers: list[np.ndarray] = []
        self._slots = self._iterations = None

    @staticmethod
    def _arrays(optimizer, params) -> list[np.ndarray]:
        return list(params) + [a for slots in (optimizer.slots or []) for a in slots.values()]

    def save(self, optimizer, params) -> None:
        arrays = self._arrays(optimizer, params)
        if [(b.shape, b.dtype) for b in self._buffers] != [(a.shape, a.dtype) for a in arrays]:
            self._buffers = [np.empty_like(a) for a in arrays]
        for buffer, a in zip(self._buffers, arrays):
            np.copyto(buffer, a)
        # the slot arrays themselves: a kernel updates them in place, a textbook rule replaces them
        self._slots = None if optimizer.slots is None else [dict(slots) for slots in optimizer.slots]
        self._iterations = optimizer.iterations

    def restore(self, optimizer, params) -> None:
        optimizer.slots = self._slots
        optimizer.iterations = self._iterations
        for buffer, a in zip(self._buffers, self._arrays(optimizer, params)):
            np.copyto(a, buffer)

    @staticmethod
    def first_nonfinite(optimizer, names, params) -> str | None:
        """The name of the first weight (``"conv2d/kernel"``) or slot (``"conv2d/kernel, Adam's v"``)
        holding a NaN or inf after the step, or None."""
        for name, param, slots in zip(names, params, optimizer.slots or [{}] * len(params)):
            if not ops.all_finite(param):
                return name
            for key, value in slots.items():
                if not ops.all_finite(value):
                    return f"{name}, {type(optimizer).__name__}'s {key}"
        return None


_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def get(optimizer) -> Optimizer:
    """An optimizer from a Keras-style name (``"adam"``, ``"sgd"``), or the object itself."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in _BY_NAME:
        return _BY_NAME[optimizer.lower()]()
    raise ValueError(f"unknown optimizer {optimizer!r}; expected an Optimizer or one of {sorted(_BY_NAME)}")
