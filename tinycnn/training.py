"""Training policy, beside the training loop: which samples an epoch visits, how classes are
weighted, and checkpoints that let a run resume exactly where it stopped.

:meth:`tinycnn.Sequential.fit` runs the loop (epochs, batches, the step); it asks this module
*what* to train on and *what* to save.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from .io import load_training_state, save_model
from .losses import balanced_class_weights
from .optimizers import LastFiniteStep

SAMPLERS = (None, "balanced", "oversample")


def class_weight_array(class_weight, y, n_classes: int, who: str):
    """Per-class loss weights as an array indexed by class id (None: unweighted).

    ``class_weight``: ``{class: weight}`` or ``"balanced"`` (``N / (classes · count_c)``)."""
    if class_weight is None:
        return None
    if y.ndim != 1:
        raise ValueError(f"{who}: class_weight needs single-label (integer) targets")
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"{who}: unknown class_weight {class_weight!r}; expected 'balanced' or a dict")
        return balanced_class_weights(y, n_classes)
    if not isinstance(class_weight, dict):
        raise TypeError(f"{who}: class_weight must be a dict {{class: weight}} or 'balanced'")
    weights = np.ones(n_classes)
    for cls, w in class_weight.items():
        if not (isinstance(cls, (int, np.integer)) and 0 <= cls < n_classes):
            raise ValueError(f"{who}: class_weight has class {cls!r}, expected ids in [0, {n_classes})")
        if not (isinstance(w, (int, float, np.number)) and math.isfinite(w) and w >= 0):
            raise ValueError(f"{who}: class_weight[{cls}] must be a finite number >= 0, got {w!r}")
        weights[cls] = w
    return weights


def check_sampler(sampler, y, who: str) -> None:
    if sampler not in SAMPLERS:
        raise ValueError(f"{who}: unknown sampler {sampler!r}; expected None, 'balanced' or 'oversample'")
    if sampler is not None and y.ndim != 1:
        raise ValueError(f"{who}: sampler={sampler!r} needs single-label (integer) targets")


def epoch_order(y, rng: np.random.Generator, shuffle: bool, sampler) -> np.ndarray:
    """The sample indices of one epoch, in training order.

    * ``sampler=None``: every sample once, shuffled (or in order with ``shuffle=False``);
    * ``"balanced"``: ``N`` draws with replacement, every class equally likely;
    * ``"oversample"``: every sample, plus each smaller class drawn with replacement up to the size
      of the largest (the epoch is then longer).
    """
    n = len(y)
    if sampler == "balanced":
        p = 1.0 / np.bincount(y)[y]
        return rng.choice(n, size=n, replace=True, p=p / p.sum())
    if sampler == "oversample":
        counts = np.bincount(y)
        largest = counts.max()
        parts = [np.flatnonzero(y == c) if counts[c] == largest else
                 rng.choice(np.flatnonzero(y == c), largest, replace=True)
                 for c in range(len(counts)) if counts[c]]
        return rng.permutation(np.concatenate(parts))
    return rng.permutation(n) if shuffle else np.arange(n)


class Checkpoints:
    """``fit(checkpoint=..., checkpoint_best=..., monitor=...)``: write the whole training state
    (weights, optimizer state, random generators, history, epoch, the callbacks' state) atomically
    after every epoch, and whenever ``monitor`` improves (lower is better for losses)."""

    def __init__(self, model, every=None, best=None, monitor="val_loss", fit_args=None):
        self.model, self.every, self.best_path, self.monitor = model, every, best, monitor
        self.fit_args = fit_args or {}          # {"batch_size", "samples", "epochs"}: recorded, compared on resume
        self.best = None

    def resume(self, path, callbacks=()) -> dict:
        """Load checkpoint ``path`` into the model — all of it checked first, so a refused
        checkpoint changes nothing; returns its training state (``epoch``, ``history``,
        ``stop_reason``, ``callbacks``: hand those to :meth:`restore_callbacks`).

        Resuming with another batch size or number of training samples works, but the run then
        differs from the uninterrupted one: a warning says so."""
        state = load_training_state(self.model, path, callbacks, self.fit_args.get("epochs"))
        self.best = state["best"]
        differs = {k: (state["fit"][k], self.fit_args[k]) for k in ("batch_size", "samples")
                   if k in state["fit"] and k in self.fit_args and state["fit"][k] != self.fit_args[k]}
        if differs:
            warnings.warn(f"{self.model.name}: resuming from {path} with other arguments than it was trained with ("
                          + ", ".join(f"{k} {a} then, {b} now" for k, (a, b) in differs.items())
                          + "): training continues, but does not end as the uninterrupted run would", stacklevel=4)
        return state

    def epoch_done(self, epoch, history, logs, callbacks) -> None:
        if self.best_path is not None:
            if self.monitor not in logs:
                raise ValueError(f"{self.model.name}: checkpoint_best monitors {self.monitor!r}, which is not among "
                                 f"the epoch's logs {sorted(logs)}; pass validation_data or another monitor")
            value = logs[self.monitor]
            lower_is_better = "loss" in self.monitor
            if self.best is None or (value < self.best if lower_is_better else value > self.best):
                self.best = value
                self._write(self.best_path, epoch, history, callbacks)
        if self.every is not None:
            self._write(self.every, epoch, history, callbacks)

    def _write(self, path, epoch, history, callbacks):
        model = self.model
        states = [callback.get_state() for callback in callbacks]     # (JSON-able dict, arrays) each
        save_model(model, path, include_optimizer=True,
                   training_state={"epoch": epoch, "history": history, "best": self.best,
                                   "stop_reason": model.stop_reason if model.stop_training else None,   # no more epochs
                                   "fit": self.fit_args,
                                   "rng": model.rng.bit_generator.state,
                                   "layer_rngs": {layer.name: layer.rng.bit_generator.state
                                                  for layer in model.layers if hasattr(layer, "rng")},
                                   "callbacks": [{"class": type(callback).__name__, "state": state,
                                                  "arrays": len(arrays)}
                                                 for callback, (state, arrays) in zip(callbacks, states)]},
                   callback_arrays=[arrays for _, arrays in states])

    def restore_callbacks(self, callbacks, saved, path):
        """Hand each callback the state saved for the callback at its position (same class); warn
        when the callbacks differ from the checkpoint's, whose states then stay behind."""
        mine, theirs = [type(c).__name__ for c in callbacks], [entry["class"] for entry in saved]
        if mine != theirs:
            warnings.warn(f"{self.model.name}: resuming from {path}, which was written with callbacks {theirs}, "
                          f"with callbacks {mine}: only a callback at the same position and of the same class "
                          "gets its saved state (early stopping's counters, for one) back", stacklevel=4)
        for callback, entry in zip(callbacks, saved):
            if type(callback).__name__ == entry["class"]:
                callback.set_state(entry["state"], entry["arrays"])


class Rewind:
    """Find the optimizer step that made the weights or the optimizer's state non-finite, and go
    back to the state just before it — at no cost per step.

    A finite gradient can still give a non-finite update (Adam's ``v`` overflows when g² > 3.4e38
    in float32; SGD's ``w − lr·g`` overflows for a huge learning rate). Checking every array after
    every step would cost a pass over all weights and slots per step, and undoing a step a copy of
    them. Instead ``fit`` keeps one snapshot per epoch (weights, optimizer state, random
    generators). Non-finite weights show up, for free, in the next step's loss; non-finite slots
    reach the weights a step later; and :meth:`first_nonfinite` looks once at the end of every
    epoch (and before a Ctrl-C returns).
    When that happens, :meth:`find` restores the snapshot and replays the epoch's steps — the same
    batches from the same random state, so the same numbers bit for bit — checking after each
    one, and stops before the step whose update overflowed. (What it costs an epoch, against no
    check at all: ``python benchmarks/maintainers/update_check_ab.py``.)
    """

    def __init__(self, model):
        self.model = model
        optimizer = model.optimizer
        self.weights = model.get_weights()
        self.slots = None if optimizer.slots is None else \
            [{k: v.copy() for k, v in slots.items()} for slots in optimizer.slots]
        self.iterations = optimizer.iterations
        self.rngs = [gen.bit_generator.state for gen in self._generators()]

    def _generators(self):
        return [self.model.rng] + [layer.rng for layer in self.model.layers if hasattr(layer, "rng")]

    def first_nonfinite(self) -> str | None:
        """The first weight or optimizer slot holding NaN or inf (``"dense/kernel, Adam's v"``), or None."""
        model = self.model
        return LastFiniteStep.first_nonfinite(model.optimizer, [n for n, _ in model.named_params()], model.params)

    def find(self, batches, step_fn) -> tuple[int, str]:
        """Restore the snapshot, replay ``step_fn(*batch)`` for ``batches()`` (a fresh iterator
        over the epoch's batches) until a step leaves a non-finite array; undo that step and
        return ``(step, array name)``."""
        model, optimizer = self.model, self.model.optimizer
        model.set_weights(self.weights)
        optimizer.slots = None if self.slots is None else [{k: v.copy() for k, v in s.items()} for s in self.slots]
        optimizer.iterations = self.iterations
        for gen, state in zip(self._generators(), self.rngs):
            gen.bit_generator.state = state
        undo = LastFiniteStep()
        for step, batch in enumerate(batches(), start=1):
            undo.save(optimizer, model.params)
            step_fn(*batch)
            where = self.first_nonfinite()
            if where is not None:
                undo.restore(optimizer, model.params)
                return step, where
        raise RuntimeError(f"{model.name}: the replay of the epoch did not reproduce the non-finite update")
