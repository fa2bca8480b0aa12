"""The training state of a checkpoint, checked against its schema before anything is restored.

``fit(checkpoint=PATH)`` writes, beside the weights and the optimizer's arrays, a JSON document
``training_state``::

    epoch        int >= 0            epochs completed
    history      {key: [number]}     one number per completed epoch ("loss" has ``epoch``; NaN is a
                                     number here: a val_auc of a one-class split)
    best         number | null       checkpoint_best's best monitored value so far
    rng          bit-generator state the model's random generator (shuffling, augmentation)
    layer_rngs   {layer: state}      Dropout's generators, by the checkpoint's layer names
    callbacks    [{class, state, arrays}]   each callback's state (arrays: how many it stored)
    stop_reason  str | null          set when a callback stopped the run after ``epoch``
    fit          {batch_size, samples, epochs}   the arguments the run was trained with

:func:`check` validates all of it — types, ranges, that each random-generator state loads — on
copies, and raises one :class:`~tinycnn.io.ModelFileError` naming the field. ``fit(resume=...)``
changes the model only after it passed (see :func:`tinycnn.io.load_training_state`).
"""

from __future__ import annotations

import numpy as np

from .errors import ModelFileError


def check(state, model, path, epochs=None) -> dict:
    """The checkpoint's ``training_state`` checked; returns it with optional fields filled in.

    ``model``: the model being resumed (its random generators' kinds and its layers); ``epochs``:
    the ``fit`` argument, which must not be below the epochs the checkpoint has done."""
    def refuse(field, problem):
        raise ModelFileError(f"{path}: invalid training state: {field} {problem}")

    if not isinstance(state, dict) or not {"epoch", "history", "rng"} <= set(state):
        raise ModelFileError(f"{path}: a model file but not a training checkpoint (no training state); "
                             "write one with fit(..., checkpoint=PATH)")
    epoch = state["epoch"]
    if not _is_int(epoch) or epoch < 0:
        refuse("'epoch'", f"must be an int >= 0, got {epoch!r}")
    if epochs is not None and epoch > epochs:
        raise ValueError(f"{path}: the checkpoint has trained {epoch} epochs, more than epochs={epochs} "
                         "(epochs is the total, including the checkpoint's)")
    history = state["history"]
    if not isinstance(history, dict):
        refuse("'history'", f"must be a dict {{key: [one number per epoch]}}, got {type(history).__name__}")
    for key, values in history.items():
        if not isinstance(values, list):
            refuse(f"history[{key!r}]", f"must be a list of numbers, got {type(values).__name__}")
        if len(values) > epoch:
            refuse(f"history[{key!r}]", f"has {len(values)} values for {epoch} epochs")
        for value in values:
            if not _is_number(value):
                refuse(f"history[{key!r}]", f"must hold numbers, got {value!r}")
    if epoch and len(history.get("loss", [])) != epoch:
        refuse("history['loss']", f"must have one value per completed epoch ({epoch})")
    best = state.get("best")
    if best is not None and not _is_number(best):
        refuse("'best'", f"must be a number or null, got {best!r}")
    _check_rng(state["rng"], model.rng, "'rng'", refuse)
    layer_rngs = state.get("layer_rngs") or {}
    if not isinstance(layer_rngs, dict):
        refuse("'layer_rngs'", f"must be a dict {{layer name: generator state}}, got {type(layer_rngs).__name__}")
    for name, value in layer_rngs.items():
        _check_rng(value, np.random.default_rng(), f"layer_rngs[{name!r}]", refuse)
    callbacks = state.get("callbacks") or []
    if not isinstance(callbacks, list):
        refuse("'callbacks'", f"must be a list, got {type(callbacks).__name__}")
    for i, entry in enumerate(callbacks):
        if not (isinstance(entry, dict) and isinstance(entry.get("class"), str)
                and isinstance(entry.get("state"), dict) and _is_int(entry.get("arrays")) and entry["arrays"] >= 0):
            refuse(f"callbacks[{i}]", f"must be {{'class': str, 'state': dict, 'arrays': int >= 0}}, got {entry!r}")
    stop_reason = state.get("stop_reason")
    if stop_reason is not None and not isinstance(stop_reason, str):
        refuse("'stop_reason'", f"must be a string or null, got {stop_reason!r}")
    fit = state.get("fit") or {}
    if not isinstance(fit, dict) or any(not _is_int(fit.get(k, 1)) or fit.get(k, 1) < 1
                                        for k in ("batch_size", "samples", "epochs")):
        refuse("'fit'", f"must be {{'batch_size': int, 'samples': int, 'epochs': int}}, all >= 1, got {fit!r}")
    return {**state, "best": best, "layer_rngs": layer_rngs, "callbacks": callbacks,
            "stop_reason": stop_reason, "fit": fit}


def check_iterations(value, path) -> int:
    """The optimizer's step count (``compile.optimizer.iterations``): an int >= 0."""
    if not _is_int(value) or value < 0:
        raise ModelFileError(f"{path}: invalid optimizer state: 'iterations' must be an int >= 0, got {value!r}")
    return int(value)


def _check_rng(value, like: np.random.Generator, field, refuse) -> None:
    """A bit-generator state of the same kind as ``like``'s, loaded into a scratch copy to prove it."""
    kind = type(like.bit_generator)
    if not isinstance(value, dict) or value.get("bit_generator") != kind.__name__:
        refuse(field, f"must be a {kind.__name__} state (a dict with 'bit_generator': {kind.__name__!r})")
    try:
        kind().state = value
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        refuse(field, f"is not a valid {kind.__name__} state ({type(err).__name__}: {err})")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
