"""Callbacks for ``Sequential.fit``: learning-rate schedules and early stopping.

A callback is either a plain function ``f(model, epoch, logs)`` (called after each epoch) or an
object with any of these methods (epochs count from 1)::

    on_train_begin(model)              on_epoch_begin(model, epoch)
    on_epoch_end(model, epoch, logs)   on_train_end(model)

``logs`` holds the epoch's numbers (``loss``, ``accuracy``, ``val_loss`` ...); a callback may add
entries, which join the history, and may set ``model.stop_training = True``.

A callback that keeps state from epoch to epoch (:class:`EarlyStopping` counts epochs without
improvement) also defines ``get_state()`` and ``set_state(state, arrays)``: ``fit(checkpoint=...)``
saves that state with the weights, and ``fit(resume=...)`` gives it back to the callback passed
at the same position, so that a resumed run stops where an uninterrupted one would.
"""

from __future__ import annotations

import math


class Callback:
    def on_train_begin(self, model):
        pass

    def on_epoch_begin(self, model, epoch):
        pass

    def on_epoch_end(self, model, epoch, logs):
        pass

    def on_train_end(self, model):
        pass

    def get_state(self) -> tuple[dict, list]:
        """What resuming needs: a JSON-able dict and a list of arrays (both empty: no state)."""
        return {}, []

    def set_state(self, state: dict, arrays: list) -> None:
        """Take back what :meth:`get_state` returned (called by ``fit(resume=...)`` after
        ``on_train_begin``)."""


class FunctionCallback(Callback):
    """Wraps ``f(model, epoch, logs)`` as an ``on_epoch_end`` callback."""

    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, model, epoch, logs):
        self.fn(model, epoch, logs)


def as_callback(obj) -> Callback:
    if isinstance(obj, Callback):
        return obj
    if callable(obj):
        return FunctionCallback(obj)
    raise TypeError(f"a callback must be a function f(model, epoch, logs) or a Callback, got {type(obj).__name__}")


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate to ``schedule(epoch)`` at the start of every epoch and
    record it as ``logs["lr"]``. The schedule is a function of the epoch alone, so a resumed run
    picks it up where it stopped."""

    def __init__(self, schedule):
        if not callable(schedule):
            raise TypeError("LearningRateScheduler: schedule must be a function epoch -> learning rate")
        self.schedule = schedule

    def on_epoch_begin(self, model, epoch):
        lr = float(self.schedule(epoch))
        if not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"LearningRateScheduler: the schedule gave learning rate {lr!r} for epoch {epoch}")
        model.optimizer.learning_rate = lr

    def on_epoch_end(self, model, epoch, logs):
        logs["lr"] = model.optimizer.learning_rate


def step_decay(initial: float, epochs: int, milestones=(0.5, 0.75), factor: float = 0.1):
    """The MedMNIST protocol's schedule: multiply the rate by ``factor`` (0.1) once ``milestones``
    (50% and 75%) of the ``epochs`` are done. Returns ``epoch -> lr``."""
    steps = [int(round(m * epochs)) for m in milestones]

    def lr(epoch: int) -> float:
        return initial * factor ** sum(epoch > s for s in steps)
    return lr


def cosine_decay(initial: float, epochs: int, final: float = 0.0):
    """Half a cosine from ``initial`` (epoch 1) down toward ``final`` (after the last epoch)."""
    def lr(epoch: int) -> float:
        return final + (initial - final) * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / epochs))
    return lr


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``mode`` "min" or "max" ("auto": min for losses, max otherwise). With
    ``restore_best_weights`` the model ends with the weights of its best epoch (as Keras, only
    when training ran through ``fit``'s end or was stopped by this callback).
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto", restore_best_weights=True):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, abs(float(min_delta))
        self.mode = ("min" if "loss" in monitor else "max") if mode == "auto" else mode
        self.restore_best_weights = restore_best_weights

    def on_train_begin(self, model):
        self.best, self.best_epoch, self.best_weights, self.wait = None, 0, None, 0
        self.stopped_epoch = None

    def _improved(self, value) -> bool:
        if self.best is None:
            return True
        return value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta

    def on_epoch_end(self, model, epoch, logs):
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which is not among the epoch's logs "
                             f"{sorted(logs)}; pass validation_data or choose another monitor")
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = model.get_weights()
        else:
            self.wait += 1
            if self.wait > self.patience:
                self.stopped_epoch = epoch
                model.stop_training = True
                model.stop_reason = (f"early stopping after epoch {epoch}: {self.monitor} has not improved "
                                     f"since epoch {self.best_epoch} ({self.best:.4f})")

    def on_train_end(self, model):
        if self.restore_best_weights and self.best_weights is not None:
            model.set_weights(self.best_weights)

    def get_state(self):
        state = {"best": None if self.best is None else float(self.best), "best_epoch": self.best_epoch,
                 "wait": self.wait, "stopped_epoch": self.stopped_epoch}
        return state, list(self.best_weights) if self.best_weights is not None else []

    def set_state(self, state, arrays):
        try:
            best, best_epoch, wait = state["best"], int(state["best_epoch"]), int(state["wait"])
            stopped = state["stopped_epoch"]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"EarlyStopping: invalid saved state {state!r} ({err})") from None
        self.best = None if best is None else float(best)
        self.best_epoch, self.wait = best_epoch, wait
        self.stopped_epoch = None if stopped is None else int(stopped)
        self.best_weights = [a.copy() for a in arrays] if arrays else None
