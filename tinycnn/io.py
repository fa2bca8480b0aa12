"""Saving and loading models: one ``.npz`` file, a JSON architecture plus plain arrays, no pickle.

Layout of the file (a zip of ``.npy`` arrays, readable by ``numpy.load(..., allow_pickle=False)``)::

    __tinycnn__                 a 0-d unicode array holding the JSON document below
    params/<layer>/<key>        one array per weight, e.g. params/conv2d/kernel
    optimizer/<i>/<slot>        the optimizer's state (Adam's m and v, SGD's velocity), if saved

The JSON document::

    {"format": "tinycnn-model", "version": 1, "tinycnn_version": "...",
     "model":     {"name": ..., "dtype": "float32", "input_shape": [28, 28, 1]},
     "layers":    [{"class": "Conv2D", "config": {...}}, ...],
     "compile":   {"optimizer": {"class": "Adam", "config": {...}, "iterations": 120},
                   "loss": {"class": "SoftmaxCrossEntropy", "config": {"from_logits": false}}},
     "metadata":  {...}}                 # free-form JSON: dataset, label names, preprocessing

Writes are atomic: the file is written next to its destination under a temporary name, flushed to
disk, then renamed over the destination, so a crash mid-save never leaves a half-written model
(the previous file, if any, stays intact). Loading never unpickles anything.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from . import __version__, layers as layers_mod, losses as losses_mod, optimizers as optimizers_mod
from .npz import NpzError, read_npz

FORMAT = "tinycnn-model"
VERSION = 1
HEADER = "__tinycnn__"

LAYER_CLASSES = {name: getattr(layers_mod, name) for name in
                 ("Conv2D", "MaxPool2D", "AveragePooling2D", "GlobalAveragePooling2D", "Dense", "Dropout",
                  "BatchNormalization", "ReLU", "LeakyReLU", "Tanh", "Softmax", "Sigmoid", "Flatten",
                  "Rescaling", "Normalization")}
LOSS_CLASSES = {"SoftmaxCrossEntropy": losses_mod.SoftmaxCrossEntropy,
                "SigmoidBinaryCrossEntropy": losses_mod.SigmoidBinaryCrossEntropy}
OPTIMIZER_CLASSES = {"SGD": optimizers_mod.SGD, "Adam": optimizers_mod.Adam, "AdamW": optimizers_mod.AdamW}


#: The model classes a file can hold; :mod:`tinycnn.model` adds ``Sequential`` when it is imported
#: (this module never imports the model: the model uses it to save itself).
MODEL_CLASSES: dict = {}


class ModelFileError(ValueError):
    """A model file that cannot be loaded: not a tinycnn model, damaged, or inconsistent."""


class PreprocessingWarning(UserWarning):
    """A loaded model expects inputs prepared in a way it does not do itself (see :func:`load_model`)."""


def atomic_write(path, write) -> Path:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)        # mkstemp makes the file owner-only; give it ordinary permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def save_model(model, path, include_optimizer: bool = True, training_state: dict | None = None,
               callback_arrays: list[list[np.ndarray]] | None = None) -> Path:
    """Write ``model`` (architecture, weights, compile settings, ``model.metadata``) to ``path``.

    ``training_state`` (used by ``fit(checkpoint=...)``) adds what resuming needs: the epoch,
    the history, the state of the model's random generators and of the callbacks
    (``training_state["callbacks"]``, with their arrays — e.g. early stopping's best weights —
    in ``callback_arrays``, one list per callback).
    """
    if not model.built:
        raise ValueError("save_model: the model is not built yet; build it (or pass input_shape) first")
    doc = {
        "format": FORMAT, "version": VERSION, "tinycnn_version": __version__,
        "model": {"name": model.name, "dtype": model.dtype.name, "input_shape": list(model.input_shape)},
        "layers": [{"class": _layer_class_name(layer), "config": _jsonable(layer.get_config())}
                   for layer in model.layers],
        "compile": None,
        "metadata": _jsonable(getattr(model, "metadata", {}) or {}),
    }
    if training_state is not None:
        doc["training_state"] = _jsonable(training_state)
    arrays = {f"params/{name}": value for name, value in model.named_params()}
    arrays.update({f"state/{name}": value for name, value in model.named_state()})
    if model.loss is not None and model.optimizer is not None:
        opt = model.optimizer
        doc["compile"] = {
            "optimizer": {"class": type(opt).__name__, "config": opt.get_config(),
                          "iterations": int(opt.iterations) if include_optimizer else 0},
            "loss": {"class": type(model.loss).__name__, "config": model.loss.get_config()},
        }
        if include_optimizer and opt.slots is not None:
            for i, slots in enumerate(opt.slots):
                for slot, value in slots.items():
                    arrays[f"optimizer/{i}/{slot}"] = value
    for i, callback in enumerate(callback_arrays or []):
        for j, value in enumerate(callback):
            arrays[f"callbacks/{i}/{j}"] = np.asarray(value)
    arrays[HEADER] = np.array(json.dumps(doc))

    def write(f):
        buffer = io.BytesIO()                       # np.savez needs a seekable file
        np.savez(buffer, **arrays)
        f.write(buffer.getvalue())

    return atomic_write(path, write)


def load_model(path):
    """Read a model written by :func:`save_model`. Raises :class:`ModelFileError` (a ValueError)
    naming the file and the problem for anything that is not a valid tinycnn model file.

    A model file whose ``metadata["preprocessing"]`` holds a ``mean`` and ``std`` keeps its input
    standardisation outside the model (``tinycnn train`` puts it inside, as a first
    ``Normalization`` layer): it loads with a :class:`PreprocessingWarning` that says how to
    prepare its inputs, or how to convert it."""
    doc, arrays, path = _read(path)
    _callback_arrays(doc, arrays, path)             # (checked, then set aside: a model has no use for them)
    model = _rebuild(doc, arrays, path)
    preprocessing = model.metadata.get("preprocessing")
    if isinstance(preprocessing, dict) and preprocessing.get("mean") is not None:
        warnings.warn(
            f"{path}: this model expects standardised inputs, x = (uint8 images / 255 - mean) / std with "
            f"mean={preprocessing['mean']} and std={preprocessing.get('std')} (model.metadata['preprocessing']); "
            "the standardisation is not part of the model, so predict(images / 255) alone gives wrong "
            "answers. Prepare inputs with tinycnn.medmnist_job.preprocess(uint8_images, "
            "model.metadata['preprocessing']), or convert the model once with "
            "model = tinycnn.medmnist_job.move_standardization_into_model(model) and model.save(...): "
            "it then takes images / 255 itself.", PreprocessingWarning, stacklevel=3)
    return model


def load_training_state(model, path) -> dict:
    """Restore a checkpoint written by ``fit(checkpoint=...)`` into ``model`` (weights, optimizer
    state, random generator) and return its training state (``epoch``, ``history``, ``best``, and
    ``callbacks``: per callback its class, state and arrays, for ``fit`` to hand back).

    The checkpoint must come from the same architecture and optimizer, or a ModelFileError says
    what differs.
    """
    doc, arrays, path = _read(path)
    state = doc.get("training_state")
    if not isinstance(state, dict) or not {"epoch", "history", "rng"} <= set(state):
        raise ModelFileError(f"{path}: a model file but not a training checkpoint (no training state); "
                             "write one with fit(..., checkpoint=PATH)")
    state["callbacks"] = _callback_arrays(doc, arrays, path)
    saved = _rebuild(doc, arrays, path)
    mine = [(type(l).__name__, {k: v for k, v in l.get_config().items() if k != "name"}) for l in model.layers]
    theirs = [(type(l).__name__, {k: v for k, v in l.get_config().items() if k != "name"}) for l in saved.layers]
    if mine != theirs or saved.input_shape != model.input_shape or saved.dtype != model.dtype:
        raise ModelFileError(f"{path}: the checkpoint's architecture differs from this model's")
    if type(saved.optimizer) is not type(model.optimizer) or saved.optimizer.get_config() != model.optimizer.get_config():
        raise ModelFileError(f"{path}: the checkpoint was trained with {type(saved.optimizer).__name__}"
                             f"{saved.optimizer.get_config() if saved.optimizer else ''}, this model is compiled with "
                             f"{type(model.optimizer).__name__}{model.optimizer.get_config()}")
    model.set_weights(saved.get_weights())
    model.optimizer.slots = saved.optimizer.slots
    model.optimizer.iterations = saved.optimizer.iterations
    try:
        model.rng.bit_generator.state = state["rng"]
        for layer in model.layers:                      # Dropout masks continue where they were
            if hasattr(layer, "rng") and layer.name in state.get("layer_rngs", {}):
                layer.rng.bit_generator.state = state["layer_rngs"][layer.name]
    except (TypeError, ValueError, KeyError) as err:
        raise ModelFileError(f"{path}: invalid random-generator state ({err})") from None
    return state


def _callback_arrays(doc: dict, arrays: dict, path: Path) -> list[dict]:
    """Take the callbacks' arrays out of ``arrays``: the checkpoint's callback entries, each with
    its ``"arrays"`` count replaced by the list of arrays ([] in a plain model file)."""
    entries = (doc.get("training_state") or {}).get("callbacks") or []
    stored = {key: arrays.pop(key) for key in [k for k in arrays if k.startswith("callbacks/")]}
    try:
        result = [{"class": str(e["class"]), "state": dict(e["state"]),
                   "arrays": [stored.pop(f"callbacks/{i}/{j}") for j in range(int(e["arrays"]))]}
                  for i, e in enumerate(entries)]
    except (KeyError, TypeError, ValueError) as err:
        raise ModelFileError(f"{path}: invalid callback state in the checkpoint ({type(err).__name__}: {err})") from None
    if stored:
        raise ModelFileError(f"{path}: unexpected arrays {sorted(stored)}")
    return result


def _read(path) -> tuple[dict, dict, Path]:
    """The JSON document and the arrays of a model file, checked for format and version."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_model: no such file: {path}")
    try:
        arrays = read_npz(path)
    except NpzError as err:
        raise ModelFileError(f"{path}: not a readable tinycnn model file ({err})") from None
    if not isinstance(arrays, dict) or HEADER not in arrays:
        raise ModelFileError(f"{path}: not a tinycnn model file (no '{HEADER}' entry)")
    doc = _read_header(arrays.pop(HEADER), path)
    return doc, arrays, path


def _read_header(header: np.ndarray, path: Path) -> dict:
    if header.shape != () or header.dtype.kind != "U":
        raise ModelFileError(f"{path}: '{HEADER}' must be a JSON string")
    try:
        doc = json.loads(str(header))
    except json.JSONDecodeError as err:
        raise ModelFileError(f"{path}: the architecture is not valid JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a tinycnn model file (format {doc.get('format') if isinstance(doc, dict) else None!r})")
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"{path}: invalid format version {version!r}")
    if version > VERSION:
        raise ModelFileError(
            f"{path}: written by a newer tinycnn (file format version {version}, "
            f"this tinycnn {__version__} reads up to {VERSION}); upgrade tinycnn to load it"
        )
    return doc


def _rebuild(doc: dict, arrays: dict, path: Path):
    try:
        spec = doc["model"]
        layers = []
        for entry in doc["layers"]:
            cls = LAYER_CLASSES.get(entry["class"])
            if cls is None:
                raise ModelFileError(f"{path}: unknown layer class {entry['class']!r}")
            layers.append(cls(**entry["config"]))
        model = MODEL_CLASSES["Sequential"](layers, input_shape=tuple(spec["input_shape"]), dtype=spec["dtype"], name=spec["name"])
        model.metadata = doc.get("metadata") or {}
        compiled = doc.get("compile")
        if compiled:
            opt = compiled["optimizer"]
            loss = compiled["loss"]
            if opt["class"] not in OPTIMIZER_CLASSES or loss["class"] not in LOSS_CLASSES:
                raise ModelFileError(f"{path}: unknown optimizer {opt['class']!r} or loss {loss['class']!r}")
            model.compile(OPTIMIZER_CLASSES[opt["class"]](**opt["config"]), LOSS_CLASSES[loss["class"]](**loss["config"]))
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ModelFileError(f"{path}: inconsistent architecture ({type(err).__name__}: {err})") from None

    _restore_arrays(model.named_params(), arrays, "params/", path)
    _restore_arrays(model.named_state(), arrays, "state/", path)
    _restore_optimizer(model, doc, arrays, path)
    leftovers = [key for key in arrays if not key.startswith(("params/", "state/", "optimizer/"))]
    if leftovers:
        raise ModelFileError(f"{path}: unexpected arrays {sorted(leftovers)}")
    return model


def _restore_arrays(named, arrays, prefix, path) -> None:
    """Copy ``arrays[prefix + name]`` into each named array, checking names, shapes and dtypes."""
    expected = dict(named)
    stored = {key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)}
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    if missing or extra:
        raise ModelFileError(f"{path}: {prefix.rstrip('/')} arrays do not match the architecture "
                             f"(missing: {missing or 'none'}; unexpected: {extra or 'none'})")
    for name, target in expected.items():
        value = stored[name]
        if value.shape != target.shape:
            raise ModelFileError(f"{path}: {name} has shape {value.shape}, the architecture needs {target.shape}")
        if value.dtype.kind != "f":
            raise ModelFileError(f"{path}: {name} has dtype {value.dtype}, expected a float array")
        target[...] = value


def _restore_optimizer(model, doc, arrays, path) -> None:
    slot_keys = [key for key in arrays if key.startswith("optimizer/")]
    if not slot_keys:
        return
    if model.optimizer is None:
        raise ModelFileError(f"{path}: optimizer state without an optimizer")
    params = model.params
    slots = [model.optimizer.create_slots(p) for p in params]
    for key in slot_keys:
        parts = key.split("/")
        if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) >= len(params) \
                or parts[2] not in slots[int(parts[1])]:
            raise ModelFileError(f"{path}: unexpected optimizer array {key!r}")
        target = slots[int(parts[1])][parts[2]]
        if arrays[key].shape != target.shape:
            raise ModelFileError(f"{path}: {key} has shape {arrays[key].shape}, expected {target.shape}")
        target[...] = arrays[key]
    if sum(len(s) for s in slots) != len(slot_keys):
        raise ModelFileError(f"{path}: incomplete optimizer state")
    model.optimizer.slots = slots
    model.optimizer.iterations = int(doc["compile"]["optimizer"].get("iterations", 0))


def _layer_class_name(layer) -> str:
    name = type(layer).__name__
    if name not in LAYER_CLASSES or type(layer) is not LAYER_CLASSES[name]:
        raise ValueError(f"save_model: cannot save layer {layer.name!r} of class {name}")
    return name


def _jsonable(value):
    """Tuples to lists, NumPy scalars to Python numbers, recursively (JSON has no tuples)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
