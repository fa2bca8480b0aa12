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

import contextlib
import hashlib
import io
import json
import math
import os
import re
import secrets
import shutil
import socket
import stat
import time
import warnings
from pathlib import Path

import numpy as np

from . import __version__, layers as layers_mod, losses as losses_mod, optimizers as optimizers_mod
from .npz import NpzError, NpzReader

FORMAT = "tinycnn-model"
VERSION = 1
HEADER = "__tinycnn__"

# What a model file may hold. A file beyond any limit is refused — with a ModelFileError that says
# which — before anything of that size is read, built or allocated (tests/test_adversarial_files.py;
# benchmarks/maintainers/refusals.py measures the time and memory each refusal takes). save_model
# refuses to write a model that load_model would refuse.
MAX_FILE_BYTES = 4 * 1024**3        # the file on disk
MAX_ARRAY_BYTES = 4 * 1024**3       # all its arrays together, as declared, once inflated
MAX_ARRAYS = 10_000                 # arrays (zip members) in one file
MAX_HEADER_CHARS = 4 * 1024**2      # the JSON document (architecture, metadata, training state)
MAX_JSON_DEPTH = 64                 # how deeply the JSON document's brackets nest
MAX_LAYERS = 1_000
MAX_PARAMETERS = 100_000_000        # numbers in the weights and state (not counting optimizer slots)
MAX_FEATURES = 2**26                # numbers per sample in the input and in each layer's output (67,108,864)

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


from .errors import ModelFileError  # noqa: E402  (defined there so that tinycnn.training_state can use it too)


class PreprocessingWarning(UserWarning):
    """A loaded model expects inputs prepared in a way it does not do itself (see :func:`load_model`)."""


def atomic_write(path, write) -> Path:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it into place.

    The file is flushed to disk before the rename, and the rename itself afterwards, so a crash
    leaves either the previous file or the new one, never half of one. Permissions: a new file gets
    the usual ``0o666`` less the umask (as ``open`` would give it); a file written over keeps its
    permission bits (a private ``0o600`` checkpoint stays private). The temporary is never more
    open than the file it becomes.

    Temporaries are named ``.<name>.<pid>-<host>-<random>.tinycnn-tmp``. A save killed mid-write
    (``kill -9``, a power cut) leaves one behind; each later save of the same ``path`` removes the
    stray temporaries of that path that are safe to remove (see :func:`remove_stale_temporaries`).
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot save to {path}: it is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode) & 0o777     # keep an existing file's permissions
    except FileNotFoundError:                                  # (not set-user-ID bits: a rewrite drops them)
        mode = None
    tmp = path.parent / f".{_temporary_tag(path.name)}.{os.getpid()}-{_HOST}-{secrets.token_hex(4)}{TEMPORARY_SUFFIX}"
    # For a new file the temporary is created 0o666 and the system takes the umask off, as for any
    # file a program creates; over an existing file it is created 0o600 and given that file's mode
    # before any data goes in. (O_EXCL: never opens an existing file or a link.)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666 if mode is None else 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    _fsync_folder(path.parent)
    remove_stale_temporaries(path)
    return path


def atomic_write_text(path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


@contextlib.contextmanager
def atomic_folder(folder):
    """Write a folder's files all at once: ``with atomic_folder(run_dir) as staging:`` gives a new
    folder beside ``run_dir`` to write into; when the block ends without an error, its files take
    their places in ``run_dir``.

    - ``run_dir`` does not exist: the staging folder is renamed to it, one atomic step, so the
      folder appears complete or not at all.
    - ``run_dir`` exists (e.g. a folder the user made for ``--out``): each file is moved in with an
      atomic rename, over any file of the same name; the files already there stay.

    If the block raises (a full disk, Ctrl-C), the staging folder and everything written into it
    are removed and ``run_dir`` is left as it was. The staging folder is named
    ``.<name>.<pid>-<host>-<random>.tinycnn-partial`` and made with the usual ``0o777`` less the
    umask; one left behind by a killed process is removed by a later ``atomic_folder`` of the same
    folder (the rules of :func:`remove_stale_temporaries`).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"cannot write the folder {folder}: it is a file")
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    staging = folder.parent / (f".{_temporary_tag(folder.name)}.{os.getpid()}-{_HOST}-{secrets.token_hex(4)}"
                               f"{PARTIAL_FOLDER_SUFFIX}")
    os.mkdir(staging, 0o777)                       # the system takes the umask off, as for any new folder
    try:
        yield staging
        try:
            os.rename(staging, folder)             # no folder yet (or an empty one): the whole folder at once
        except OSError:
            if not folder.is_dir():
                raise
            for entry in sorted(staging.iterdir()):
                os.replace(entry, folder / entry.name)
            staging.rmdir()
        _fsync_folder(folder)
        _fsync_folder(folder.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


#: The ending of every temporary file :func:`atomic_write` makes.
TEMPORARY_SUFFIX = ".tinycnn-tmp"
#: The ending of every staging folder :func:`atomic_folder` makes.
PARTIAL_FOLDER_SUFFIX = ".tinycnn-partial"
#: A temporary whose writer has gone is removed once it is this old (seconds since last written):
#: a margin for a writer in another process namespace (a container) that only looks gone.
STALE_AFTER_WRITER_GONE = 60.0
#: A temporary this old is removed whoever wrote it (a writer on another machine, a reused pid).
STALE_AFTER = 24 * 3600.0
_HOST = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def remove_stale_temporaries(path) -> list[Path]:
    """Remove the temporaries that killed saves of ``path`` left behind; return what was removed.

    Only what is certainly abandoned goes: a regular file (not a link) owned by this user, named
    like a temporary of exactly this ``path`` — or a folder (not a link) named like a staging folder
    of :func:`atomic_folder` for it, removed with what it holds — and either

    - written by a process of this machine that no longer runs (its pid is in the name), and not
      written to for :data:`STALE_AFTER_WRITER_GONE` seconds; or
    - not written to for :data:`STALE_AFTER` seconds (24 hours), whoever wrote it — a temporary
      from another machine sharing the folder, or whose pid was reused by another program.

    A save in progress writes and renames its temporary within seconds, so neither rule removes
    one. (On systems without POSIX process ids only the age rule applies.) Errors are ignored:
    cleaning up never makes a save fail.
    """
    path = Path(path)
    pattern = re.compile(re.escape(f".{_temporary_tag(path.name)}.") +
                         r"(?:(\d+)-([0-9a-f]{8})-[0-9a-f]{8}(" + re.escape(TEMPORARY_SUFFIX) + "|" +
                         re.escape(PARTIAL_FOLDER_SUFFIX) + r")"
                         r"|[a-z0-9_]{8}\.tmp)")            # (or an older tinycnn's temporary)
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            folder = match.group(3) == PARTIAL_FOLDER_SUFFIX
            if not (stat.S_ISDIR if folder else stat.S_ISREG)(info.st_mode) \
                    or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
                continue
            age = now - info.st_mtime
            pid, host = match.group(1), match.group(2)
            writer_gone = (pid is not None and host == _HOST and int(pid) != os.getpid()
                           and not _process_exists(int(pid)))
            if (writer_gone and age > STALE_AFTER_WRITER_GONE) or age > STALE_AFTER:
                if folder:
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed.append(Path(entry.path))
        except (OSError, ValueError):
            continue
    return removed


def _temporary_tag(name: str) -> str:
    """The file name as temporaries carry it (shortened, with a digest, if long: names have a limit)."""
    if len(name) <= 120:
        return name
    return f"{name[:100]}~{hashlib.sha1(name.encode('utf-8', 'surrogateescape')).hexdigest()[:12]}"


def _process_exists(pid: int) -> bool:
    if os.name != "posix":          # os.kill(pid, 0) would terminate a process on Windows
        return True
    try:
        os.kill(pid, 0)             # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:         # it exists, and belongs to someone else
        return True
    except OSError:
        return True
    return True


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the system allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
    text = json.dumps(doc)
    _check_loadable(doc, text, arrays, path)
    arrays[HEADER] = np.array(text)

    def write(f):
        buffer = io.BytesIO()                       # np.savez needs a seekable file
        np.savez(buffer, **arrays)
        f.write(buffer.getvalue())

    return atomic_write(path, write)


def _check_loadable(doc: dict, text: str, arrays: dict, path) -> None:
    """Refuse to save what :func:`load_model` would refuse: a file beyond the limits, NaN weights."""
    try:
        if len(text) > MAX_HEADER_CHARS or _json_depth(text) > MAX_JSON_DEPTH:
            raise ModelFileError(f"the JSON document (architecture and metadata) is {len(text)} characters "
                                 f"nesting {_json_depth(text)} deep; at most {MAX_HEADER_CHARS} characters and "
                                 f"{MAX_JSON_DEPTH} levels load back")
        if len(arrays) + 1 > MAX_ARRAYS:
            raise ModelFileError(f"{len(arrays) + 1} arrays; at most {MAX_ARRAYS} load back")
        _architecture(doc, Path(path))
        for name, value in arrays.items():
            _check_finite(name, np.asarray(value), Path(path))
    except ModelFileError as err:
        reason = str(err).removeprefix(f"{Path(path)}: ")
        raise ValueError(f"save_model: not saved, {path} would not load back: {reason}") from None


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


def load_training_state(model, path, callbacks=(), epochs=None) -> dict:
    """Restore a checkpoint written by ``fit(checkpoint=...)`` into ``model`` (weights, optimizer
    state and step count, learning rate, random generators) and return its training state
    (``epoch``, ``history``, ``best``, ``stop_reason``, ``fit``, and ``callbacks``: per callback its
    class, state and arrays, for ``fit`` to hand back).

    Everything is checked before anything changes — the file (:func:`_read`), the training state
    against its schema (:mod:`tinycnn.training_state`), the architecture, the optimizer, and the
    saved state of each of ``callbacks`` that will get it back — so a checkpoint that is refused,
    with a ModelFileError naming what is wrong, leaves ``model`` exactly as it was.

    The optimizer must be of the same class with the same hyperparameters; its learning rate is
    *not* compared (a schedule changes it every epoch): the checkpoint's rate is restored, and a
    :class:`~tinycnn.callbacks.LearningRateScheduler` sets its own at the next epoch.
    """
    from . import training_state

    doc, arrays, path = _read(path)
    state = training_state.check(doc.get("training_state"), model, path, epochs)
    state["callbacks"] = _callback_arrays(doc, arrays, path)
    saved = _rebuild(doc, arrays, path)
    mine = [(type(l).__name__, {k: v for k, v in l.get_config().items() if k != "name"}) for l in model.layers]
    theirs = [(type(l).__name__, {k: v for k, v in l.get_config().items() if k != "name"}) for l in saved.layers]
    if mine != theirs or saved.input_shape != model.input_shape or saved.dtype != model.dtype:
        raise ModelFileError(f"{path}: the checkpoint's architecture differs from this model's")
    if _defining_config(saved.optimizer) != _defining_config(model.optimizer):
        raise ModelFileError(f"{path}: the checkpoint was trained with {type(saved.optimizer).__name__}"
                             f"{_defining_config(saved.optimizer)[1]}, this model is compiled with "
                             f"{type(model.optimizer).__name__}{_defining_config(model.optimizer)[1]} "
                             "(the learning rate is not compared: it is restored from the checkpoint)")
    if type(saved.loss) is not type(model.loss) or saved.loss.get_config() != model.loss.get_config():
        raise ModelFileError(f"{path}: the checkpoint was trained with the loss {type(saved.loss).__name__}"
                             f"{saved.loss.get_config()}, this model is compiled with {type(model.loss).__name__}"
                             f"{model.loss.get_config()}")
    for callback, entry in zip(callbacks, state["callbacks"]):      # those that will get their state back
        if type(callback).__name__ == entry["class"]:
            try:
                callback.check_state(entry["state"], entry["arrays"], model)
            except (TypeError, ValueError) as err:
                raise ModelFileError(f"{path}: invalid callback state in the checkpoint: {err}") from None
    layer_rngs = {layer: state["layer_rngs"][theirs.name] for layer, theirs in zip(model.layers, saved.layers)
                  if hasattr(layer, "rng") and theirs.name in state["layer_rngs"]}
    # -- checked: from here on nothing can fail ----------------------------------------------
    model.set_weights(saved.get_weights())
    model.optimizer.slots = saved.optimizer.slots
    model.optimizer.iterations = saved.optimizer.iterations
    model.optimizer.learning_rate = saved.optimizer.learning_rate
    model.rng.bit_generator.state = state["rng"]
    for layer, rng_state in layer_rngs.items():          # Dropout masks continue where they were (by position)
        layer.rng.bit_generator.state = rng_state
    return state


def _defining_config(optimizer) -> tuple:
    """What defines an optimizer's updates apart from its learning rate, which schedules drive."""
    if optimizer is None:
        return None, {}
    return type(optimizer), {k: v for k, v in optimizer.get_config().items() if k != "learning_rate"}


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
    """The JSON document and the arrays of a model file, checked for format and version.

    Every check that needs no array data runs first, on the zip's listing and the arrays' headers:
    the architecture is validated and each weight's shape worked out from the layers' configs
    (nothing built, nothing allocated), the limits above enforced, and the stored arrays' names,
    shapes and dtypes compared with it. Only then is any array data read; NaN or infinite values
    are refused, naming the array.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"load_model: no such file: {path}")
    try:
        with NpzReader(path, max_bytes=MAX_ARRAY_BYTES, max_members=MAX_ARRAYS, max_file_bytes=MAX_FILE_BYTES) as npz:
            if HEADER not in npz.headers:
                raise ModelFileError(f"{path}: not a tinycnn model file (no '{HEADER}' entry)")
            header = npz.headers[HEADER]
            if header.shape != () or header.dtype.kind != "U":
                raise ModelFileError(f"{path}: '{HEADER}' must be a JSON string")
            if header.dtype.itemsize // 4 > MAX_HEADER_CHARS:
                raise ModelFileError(f"{path}: the architecture document is {header.dtype.itemsize // 4} characters "
                                     f"long; documents over {MAX_HEADER_CHARS} characters are refused")
            doc = _read_header(npz.read(HEADER), path)
            _check_stored_arrays(npz.headers, doc, path)
            arrays = {name: npz.read(name) for name in npz.headers if name != HEADER}
    except NpzError as err:
        raise ModelFileError(f"{path}: not a readable tinycnn model file ({err})") from None
    for name, value in arrays.items():
        _check_finite(name, value, path)
    return doc, arrays, path


def _read_header(header: np.ndarray, path: Path) -> dict:
    if header.shape != () or header.dtype.kind != "U":
        raise ModelFileError(f"{path}: '{HEADER}' must be a JSON string")
    try:
        text = str(header)
    except ValueError as err:                         # code points that are not Unicode
        raise ModelFileError(f"{path}: the architecture is not valid text ({err})") from None
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise ModelFileError(f"{path}: the architecture document nests {depth} levels deep; "
                             f"more than {MAX_JSON_DEPTH} are refused")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as err:       # JSONDecodeError, or an integer of > 4300 digits
        raise ModelFileError(f"{path}: the architecture is not valid JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a tinycnn model file (format {doc.get('format') if isinstance(doc, dict) else None!r})")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{path}: invalid format version {version!r}")
    if version > VERSION:
        raise ModelFileError(
            f"{path}: written by a newer tinycnn (file format version {version}, "
            f"this tinycnn {__version__} reads up to {VERSION}); upgrade tinycnn to load it"
        )
    return doc


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _json_depth(text: str) -> int:
    """How deeply the brackets of a JSON text nest, counted without parsing it (``json.loads``
    recurses once per level and would end in a RecursionError on a crafted document)."""
    skeleton = _JSON_STRING.sub("", text).encode("utf-8", "replace")   # brackets inside strings do not count
    codes = np.frombuffer(skeleton, np.uint8)
    steps = np.isin(codes, (ord("["), ord("{"))).astype(np.int8) - np.isin(codes, (ord("]"), ord("}")))
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))


def _architecture(doc: dict, path: Path) -> tuple[list, list[tuple[str, tuple]], list[tuple[str, tuple]]]:
    """Check the document's model and layers and work out, from the configs alone, the shape of
    every weight and state array: ``(layers, [(name, shape) of params], [(name, shape) of state])``.

    Only the layer objects are made (their constructors validate their configs and allocate
    nothing); sizes are computed with Python integers and held to :data:`MAX_FEATURES` and
    :data:`MAX_PARAMETERS` before anything of that size exists.
    """
    def refuse(message):
        raise ModelFileError(f"{path}: {message}")

    spec, entries = doc.get("model"), doc.get("layers")
    if not isinstance(spec, dict) or not isinstance(entries, list):
        refuse("the document needs a 'model' object and a 'layers' list")
    where = _non_finite(spec, "model") or _non_finite(entries, "layers") or _non_finite(doc.get("compile"), "compile")
    if where:
        refuse(f"the architecture holds a NaN or infinite number at {where}")
    if spec.get("dtype") not in ("float32", "float64"):
        refuse(f"model dtype must be 'float32' or 'float64', got {spec.get('dtype')!r}")
    if not isinstance(spec.get("name"), str):
        refuse(f"model name must be a string, got {spec.get('name')!r}")
    shape = spec.get("input_shape")
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 3
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)):
        refuse(f"input_shape must be a list of 1 to 3 positive ints, got {shape!r}")
    if math.prod(shape) > MAX_FEATURES:
        refuse(f"input_shape {shape} has {math.prod(shape)} numbers per sample; more than {MAX_FEATURES} are refused")
    if not 1 <= len(entries) <= MAX_LAYERS:
        refuse(f"{len(entries)} layers; a model file holds 1 to {MAX_LAYERS}")
    layers, names = [], set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            refuse(f"layers[{i}] must be an object with a 'class' and a 'config' object")
        cls = LAYER_CLASSES.get(entry.get("class")) if isinstance(entry.get("class"), str) else None
        if cls is None:
            refuse(f"unknown layer class {entry.get('class')!r}")
        name = entry["config"].get("name")
        if not isinstance(name, str) or not name or "/" in name or name in names:
            refuse(f"layers[{i}] ({entry['class']}): the name {name!r} is not a unique, non-empty string without '/'")
        names.add(name)
        try:
            layers.append(cls(**entry["config"]))
        except Exception as err:                     # each constructor validates its arguments
            refuse(f"layers[{i}] ({entry['class']}): invalid config ({type(err).__name__}: {err})")
    params, state, shape = [], [], tuple(shape)
    for layer in layers:
        try:
            output = tuple(layer.compute_output_shape(shape))
        except Exception as err:
            refuse(f"inconsistent architecture ({type(err).__name__}: {err})")
        if not all(isinstance(s, int) and s >= 1 for s in output) or math.prod(output) > MAX_FEATURES:
            refuse(f"{layer.label} gives outputs of shape {output}; at most {MAX_FEATURES} positive numbers "
                   "per sample are accepted")
        for target, shapes in zip((params, state), _weight_shapes(layer, shape)):
            target.extend((f"{layer.name}/{key}", weight) for key, weight in shapes.items())
        shape = output
    total = sum(math.prod(weight) for _, weight in params + state)
    if total > MAX_PARAMETERS:
        refuse(f"the architecture has {total} parameters; more than {MAX_PARAMETERS} are refused")
    return layers, params, state


def _weight_shapes(layer, input_shape) -> tuple[dict, dict]:
    """The shapes ``layer.build(input_shape)`` would give its params and its state, in their order —
    without creating them. (tests/test_adversarial_files.py checks this against ``build`` for every
    layer class.)"""
    channels = input_shape[-1]
    if isinstance(layer, layers_mod.Conv2D):
        params = {"kernel": (*layer.kernel_size, channels, layer.filters)}
        return (params | {"bias": (layer.filters,)} if layer.use_bias else params), {}
    if isinstance(layer, layers_mod.Dense):
        params = {"kernel": (channels, layer.units)}
        return (params | {"bias": (layer.units,)} if layer.use_bias else params), {}
    if isinstance(layer, layers_mod.BatchNormalization):
        params = {key: (channels,) for key, on in (("gamma", layer.scale), ("beta", layer.center)) if on}
        return params, {"moving_mean": (channels,), "moving_variance": (channels,)}
    if isinstance(layer, layers_mod.Normalization) and layer.adapted:
        _, stats_shape, _ = layer.axes(input_shape)
        return {}, {"mean": stats_shape, "variance": stats_shape}
    return {}, {}


def _non_finite(value, where: str) -> str | None:
    """Where in a JSON value a NaN or infinity hides (JSON's ``NaN``, ``Infinity``, or ``1e999``), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _non_finite(item, f"{where}[{key!r}]" if isinstance(key, str) else f"{where}[{key}]")
        if found:
            return found
    return None


def _check_stored_arrays(headers: dict, doc: dict, path: Path) -> None:
    """Compare the arrays' headers (names, shapes, dtypes) with what the architecture needs,
    before any array data is read."""
    _, params, state = _architecture(doc, path)
    dtype = np.dtype(doc["model"]["dtype"])
    stored = {name: header for name, header in headers.items() if name != HEADER}
    for prefix, expected in (("params/", dict(params)), ("state/", dict(state))):
        found = {name[len(prefix):]: header for name, header in stored.items() if name.startswith(prefix)}
        missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
        if missing or extra:
            raise ModelFileError(f"{path}: {prefix.rstrip('/')} arrays do not match the architecture "
                                 f"(missing: {missing or 'none'}; unexpected: {extra or 'none'})")
        for name, shape in expected.items():
            _check_stored(found[name], prefix + name, shape, dtype, path)
    shapes = [shape for _, shape in params]
    for name, header in stored.items():
        parts = name.split("/")
        if parts[0] == "optimizer":
            if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) >= len(shapes):
                raise ModelFileError(f"{path}: unexpected optimizer array {name!r}")
            _check_stored(header, name, shapes[int(parts[1])], dtype, path)
        elif parts[0] == "callbacks":
            if header.dtype.kind not in "biuf":
                raise ModelFileError(f"{path}: {name} has dtype {header.dtype}, expected numbers")
        elif parts[0] not in ("params", "state"):
            raise ModelFileError(f"{path}: unexpected arrays {[name]}")
    kept = sum(header.size for name, header in stored.items() if name.startswith("callbacks/"))
    if kept > MAX_PARAMETERS:
        raise ModelFileError(f"{path}: the callbacks' arrays hold {kept} numbers; more than {MAX_PARAMETERS} are refused")


def _check_stored(header, name: str, shape: tuple, dtype: np.dtype, path: Path) -> None:
    if header.shape != tuple(shape):
        raise ModelFileError(f"{path}: {name} has shape {header.shape}, the architecture needs {tuple(shape)}")
    if header.dtype.kind != "f" or header.dtype.itemsize != dtype.itemsize:
        raise ModelFileError(f"{path}: {name} has dtype {header.dtype}, the model is {dtype}")


def _check_finite(name: str, value: np.ndarray, path: Path) -> None:
    if value.dtype.kind in "fc" and not np.isfinite(value).all():
        bad = int(value.size - np.count_nonzero(np.isfinite(value)))
        raise ModelFileError(f"{path}: the array {name!r} holds {bad} NaN or infinite value(s) of {value.size}; "
                             "a model file's numbers must be finite")


def _rebuild(doc: dict, arrays: dict, path: Path):
    layers, _, _ = _architecture(doc, path)      # checked, and its sizes within the limits: safe to build
    try:
        spec = doc["model"]
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
    from .training_state import check_iterations

    slot_keys = [key for key in arrays if key.startswith("optimizer/")]
    if model.optimizer is not None:
        model.optimizer.iterations = check_iterations(doc["compile"]["optimizer"].get("iterations", 0), path)
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
