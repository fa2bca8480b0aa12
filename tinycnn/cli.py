"""The ``tinycnn`` command line.

    tinycnn train         train on a MedMNIST dataset (official protocol), write a run folder
    tinycnn evaluate      score a saved model on a dataset's test split with the official metrics
    tinycnn predict       class probabilities of one image file
    tinycnn gradcheck     check every layer's and the seed model's gradients in float64
    tinycnn bench         training and inference speed on real data (--profile: per layer; --keras: vs Keras)
    tinycnn explain       one training step on one real image, traced: every array, every gradient formula
    tinycnn exercises     write backprop yourself: start a workspace, check it, train a CNN on it

Every failure is one line on stderr and an exit status (:func:`main`): 2 for a user error (bad
arguments, files or data; a full disk), 1 for an unexpected one, 130 for Ctrl-C;
``TINYCNN_DEBUG=1`` or ``tinycnn --traceback ...`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from . import __version__


def cmd_gradcheck(args) -> int:
    from . import layers
    from .gradcheck import check_layer, check_model
    from .zoo import MODELS

    rng = np.random.default_rng(args.seed)
    size = args.size
    # Inputs are spaced out so that no ReLU/max-pool kink falls within the finite-difference step.
    spaced = (rng.permutation(2 * size * size * 3) * 0.01 - size * size * 0.03).reshape(2, size, size, 3)
    cases = [
        ("Conv2D 3×3 valid", layers.Conv2D(4, 3), spaced),
        ("Conv2D 3×2 same, stride 2", layers.Conv2D(4, (3, 2), strides=2, padding="same"), spaced),
        ("MaxPool2D 2×2", layers.MaxPool2D(2), spaced),
        ("MaxPool2D 3×3 same, stride 2", layers.MaxPool2D(3, strides=2, padding="same"), spaced),
        ("ReLU", layers.ReLU(), spaced + 0.005),
        ("Flatten", layers.Flatten(), spaced),
        ("Dense", layers.Dense(5), spaced.reshape(2, -1)),
        ("Softmax", layers.Softmax(), rng.standard_normal((2, 5))),
        ("Sigmoid", layers.Sigmoid(), rng.standard_normal((2, 5))),
    ]
    worst = 0.0
    print(f"{'layer':32s} {'array':16s} {'relative error':>15s}")
    for title, layer, x in cases:
        for key, err in check_layer(layer, x, h=1e-4, seed=args.seed).items():
            worst = max(worst, err)
            print(f"{title:32s} {key:16s} {err:15.2e}")
    model = MODELS[args.model](3, input_shape=(size, size, 1), seed=args.seed, dtype="float64")
    model.compile("adam", "sparse_categorical_crossentropy")
    x = rng.random((2, size, size, 1))
    for name, err in check_model(model, x, np.array([0, 2]), h=1e-6, max_entries=args.max_entries).items():
        worst = max(worst, err)
        print(f"{args.model + ' model':32s} {name:16s} {err:15.2e}")
    ok = worst < args.tolerance
    print(f"\nworst relative error {worst:.2e}: {'PASS' if ok else 'FAIL'} (tolerance {args.tolerance:g})")
    return 0 if ok else 1


def cmd_bench(args) -> int:
    import time

    from .datasets import load
    from .profiling import profile
    from .zoo import MODELS

    data = load(args.dataset, root=args.data, size=args.size)
    if data.info.is_multilabel:
        raise CLIError(f"bench trains with softmax cross-entropy; {args.dataset} is multi-label")
    images = data.train.images
    x = (images.reshape(len(images), data.size, data.size, -1) / np.float32(255)).astype(np.float32)
    y = data.train.labels[:, 0].astype(np.int64)
    model = MODELS[args.model](data.info.n_classes, input_shape=x.shape[1:], seed=args.seed)
    model.compile("adam", "sparse_categorical_crossentropy")
    print(f"tinycnn bench: {args.model} model on {args.dataset} ({len(x)} training images), "
          f"batch {args.batch_size}")
    if args.profile:
        print(profile(model, x, y, batch_size=args.batch_size, steps=args.steps))
        return 0

    models = {"tinycnn": model}
    if args.keras:
        from .interop.keras import to_keras
        models["keras"] = to_keras(model)
    train_s, predict_s = {}, {}
    for name, m in models.items():                 # warm-up: buffers, Keras's graph tracing
        kwargs = {"verbose": 0} if name == "keras" else {}
        m.fit(x[:4 * args.batch_size], y[:4 * args.batch_size], epochs=1, batch_size=args.batch_size,
              verbose=0)
        m.predict(x[:512], batch_size=256, **kwargs)
    for repeat in range(args.repeats):             # alternate the frameworks, keep the best
        for name in (list(models) if repeat % 2 == 0 else list(models)[::-1]):
            m, kwargs = models[name], ({"verbose": 0} if name == "keras" else {})
            start = time.perf_counter()
            m.fit(x, y, epochs=1, batch_size=args.batch_size, shuffle=False, verbose=0)
            train_s[name] = min(train_s.get(name, np.inf), time.perf_counter() - start)
            start = time.perf_counter()
            m.predict(x, batch_size=256, **kwargs)
            predict_s[name] = min(predict_s.get(name, np.inf), time.perf_counter() - start)
    for name in models:
        print(f"  {name:8s} training epoch {train_s[name]:6.2f} s ({len(x) / train_s[name]:7,.0f} images/s)   "
              f"predict (batch 256) {len(x) / predict_s[name]:8,.0f} images/s")
    if args.keras:
        print(f"  ratio tinycnn/Keras: training time {train_s['tinycnn'] / train_s['keras']:.2f}, "
              f"prediction time {predict_s['tinycnn'] / predict_s['keras']:.2f} (best of {args.repeats}; "
              "the full method is benchmarks/vs_keras.py)")
    return 0


def cmd_explain(args) -> int:
    from .datasets import load, to_float
    from .medmnist_job import targets
    from .zoo import MODELS

    data = load(args.dataset, root=args.data, size=args.size)
    info, part = data.info, getattr(data, args.split)
    if not 0 <= args.index < len(part.images):
        raise CLIError(f"--index {args.index} is out of range: the {args.split} split of {info.name} has "
                       f"{len(part.images)} images (0 to {len(part.images) - 1})")
    model = MODELS[args.model](info.n_classes, input_shape=(data.size, data.size, info.n_channels),
                               seed=args.seed, output_activation="sigmoid" if info.is_multilabel else "softmax")
    model.compile("adam", "binary_crossentropy" if info.is_multilabel else "sparse_categorical_crossentropy")
    x = to_float(part.images[args.index:args.index + 1])             # (1, size, size, C) in [0, 1]
    y = targets(part.labels[args.index:args.index + 1], info.task)
    raw = part.labels[args.index]
    names = [info.labels[i] for i in np.flatnonzero(raw)] if info.is_multilabel else [info.labels[int(raw[0])]]
    print(f"{info.python_class}, {args.split} image {args.index}: label {', '.join(names) or 'none'}; "
          f"a freshly initialised '{args.model}' model (seed {args.seed}), Adam\n")
    trace = model.trace_step(x, y, update=args.update)
    print(trace)
    print("\nThe backward pass, one step at a time (X input, Y output, Z pre-activation, dA = dL/dA):")
    for event in trace.step_through():
        print()
        print(event)
    return 0


def cmd_train(args) -> int:
    from .medmnist_job import default_recipe, train, with_overrides

    recipe = with_overrides(default_recipe(args.dataset), model=args.model, epochs=args.epochs,
                            batch_size=args.batch_size, learning_rate=args.lr, shift=args.shift, flip=args.flip,
                            normalize=args.normalize,
                            dropout=args.dropout, weight_decay=args.weight_decay, schedule=args.schedule,
                            oversample=args.oversample)
    if args.class_weight is not None:
        recipe = with_overrides(recipe, class_weight=None if args.class_weight == "none" else args.class_weight)
    if args.early_stopping is not None:
        recipe = with_overrides(recipe, early_stopping=None if args.early_stopping < 0 else args.early_stopping)
    train(args.dataset, recipe, seed=args.seed, out=args.out, root=args.data, size=args.size,
          prevalence=args.prevalence, target_sensitivity=args.target_sensitivity, resamples=args.resamples)
    return 0


def cmd_evaluate(args) -> int:
    import re
    from pathlib import Path

    from . import published
    from .datasets import load
    from .medmnist_job import (check_clinical_options, clinical_evaluation, format_clinical, preprocess, run_name,
                               score, write_medmnist_results)

    check_clinical_options(args.prevalence, args.target_sensitivity, args.resamples)
    model = _load_model(args.model)
    meta = model.metadata
    dataset = args.dataset or meta.get("dataset")
    if dataset is None:
        raise CLIError("the model file does not say which dataset it was trained on; pass --dataset NAME")
    # the size of the images the model was trained on, unless --size says otherwise
    size = args.size or meta.get("size") or model.input_shape[0]
    data = load(dataset, root=args.data, size=size)
    _check_compatible(model, data.info, data.size)
    preprocessing = meta.get("preprocessing") or {}   # uint8/255 (and a mean/std if kept outside the model)
    run = args.run
    if run is None:                 # a tinycnn train model: the run name its run folder's files have
        recipe = meta.get("recipe") if isinstance(meta.get("recipe"), dict) else {}
        run = run_name(recipe["model"], meta["seed"]) if "model" in recipe and "seed" in meta \
            else re.sub(r"[^A-Za-z0-9_-]", "-", Path(args.model).stem) or "model"
    print(f"{args.model}: {data.info.python_class}, {data.info.task}")
    results, y_scores = {}, {}
    for split in ("val", "test"):
        part = getattr(data, split)
        results[split], y_score = score(model, preprocess(part.images, preprocessing), part.labels, data.info.task)
        y_scores[split] = y_score
        print(f"  {split:5s} ACC {results[split]['acc']:.3f}   AUC {results[split]['auc']:.3f}   ({len(part.images)} images)")
        if args.out is not None:
            path = write_medmnist_results(args.out, data.info.name, split, part.labels, y_score, run, size=data.size)
            print(f"        wrote {path}")
    print()
    print(published.comparison_table(data.info.name, results["test"], ours_label="this model"))
    print()
    print(f"clinical evaluation: {args.resamples} bootstrap resamples of the {len(data.test.images)} test images ...",
          flush=True)
    clinical = clinical_evaluation(data.info.task, data.val.labels, y_scores["val"], data.test.labels, y_scores["test"],
                                   prevalence=args.prevalence, target_sensitivity=args.target_sensitivity,
                                   resamples=args.resamples)
    print(format_clinical(clinical, data.info.labels))
    return 0


def cmd_predict(args) -> int:
    from .medmnist_job import preprocess

    model = _load_model(args.model)
    meta = model.metadata
    labels = meta.get("labels") or [f"class {i}" for i in range(model.output_shape[-1])]
    images = np.stack([read_image(path, model.input_shape) for path in args.images])
    probabilities = model.predict(preprocess(images, meta.get("preprocessing") or {}))
    for path, probs in zip(args.images, probabilities):    # never print a verdict from NaN
        if not np.isfinite(probs).all():
            raise CLIError(f"the model gives NaN or infinite outputs for {path} (its weights or preprocessing "
                           "overflow on this image); no prediction")
    multilabel = str(meta.get("task", "")).startswith("multi-label")
    if args.threshold is not None and not 0 <= args.threshold <= 1:      # (NaN fails this too)
        raise CLIError(f"--threshold must be a probability in [0, 1], got {args.threshold}")
    operating = meta.get("operating_threshold") if len(labels) == 2 else None
    threshold = args.threshold if args.threshold is not None else (operating or {}).get("threshold")
    if threshold is not None and len(labels) != 2:
        raise CLIError(f"--threshold applies to a model with two classes; {args.model} has {len(labels)}")
    if threshold is not None:
        source = ("given with --threshold" if args.threshold is not None else
                  f"the model's operating threshold: {operating['rule']}, test sensitivity "
                  f"{operating['test']['sensitivity']:.3f}, specificity {operating['test']['specificity']:.3f}")
        print(f"decision: {labels[1]} iff p({labels[1]}) >= {threshold:.4g} ({source})")
    for path, probs in zip(args.images, probabilities):
        print(f"{path}:")
        for label, p in sorted(zip(labels, probs), key=lambda t: -t[1]):
            print(f"  {label:40s} {p:7.3f}")
        if multilabel:
            continue
        if threshold is not None:
            print(f"  -> {labels[1] if probs[1] >= threshold else labels[0]}")
        else:
            print(f"  -> {labels[int(np.argmax(probs))]}")
    return 0


def _load_model(path):
    """``tinycnn.load_model``, without the warning about a standardisation kept outside the model
    (evaluate and predict apply it themselves, ``preprocess`` with the model's metadata); its
    metadata checked by :func:`check_metadata`."""
    import os
    import warnings

    from .io import PreprocessingWarning, load_model

    if os.path.isdir(path):
        raise CLIError(f"{path} is a folder, not a model file (a run folder's model is {os.path.join(path, 'model.npz')})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreprocessingWarning)
        model = load_model(path)
    check_metadata(model, path)
    return model


def check_metadata(model, path) -> dict:
    """Check the metadata fields the command line reads (all optional) and return the metadata.

    ``dataset`` and ``task`` str; ``size`` and ``seed`` int; ``labels`` a list of str, one per
    output; ``preprocessing`` a dict whose ``mean``/``std``, if present, are numbers, one per input
    channel (``std`` > 0); ``recipe`` a dict whose ``model``, if present, is a str;
    ``operating_threshold`` (two-output models) a dict with a finite ``threshold``, a ``rule`` and
    finite validation and test ``sensitivity``/``specificity``. Anything else is
    a :class:`CLIError` naming the file, the field, what it should be and what it is."""
    import math

    meta = model.metadata
    where = f"{path}: metadata"
    if not isinstance(meta, dict):
        raise CLIError(f"{where} is a {type(meta).__name__}, not a dict")

    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    def wrong(field, expected):
        value = repr(meta[field])
        value = value if len(value) <= 60 else value[:57] + "..."
        return CLIError(f"{where}[{field!r}] must be {expected}, got {type(meta[field]).__name__} {value}")

    for field in ("dataset", "task"):
        if field in meta and meta[field] is not None and not isinstance(meta[field], str):
            raise wrong(field, "a str")
    for field in ("size", "seed"):
        if field in meta and meta[field] is not None and not is_int(meta[field]):
            raise wrong(field, "an int")
    if meta.get("size") is not None and meta["size"] < 1:
        raise wrong("size", "a positive int")
    outputs = model.output_shape[-1]
    if meta.get("labels") is not None:
        labels = meta["labels"]
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise wrong("labels", f"a list of {outputs} str (one class name per output)")
        if len(labels) != outputs:
            raise CLIError(f"{where}['labels'] names {len(labels)} classes, but the model has {outputs} outputs")
    if meta.get("preprocessing") is not None:
        pre = meta["preprocessing"]
        if not isinstance(pre, dict):
            raise wrong("preprocessing", "a dict")
        if (pre.get("mean") is None) != (pre.get("std") is None):
            raise CLIError(f"{where}['preprocessing'] has a mean without a std, or a std without a mean")
        channels = model.input_shape[-1]
        for key in ("mean", "std"):
            value = pre.get(key)
            if value is None:
                continue
            numbers = value if isinstance(value, list) else [value]
            if not (len(numbers) == channels and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                     and math.isfinite(v) for v in numbers)):
                raise CLIError(f"{where}['preprocessing'][{key!r}] must be {channels} finite number(s), one per "
                               f"input channel, got {value!r:.60}")
            if key == "std" and min(numbers) <= 0:
                raise CLIError(f"{where}['preprocessing']['std'] must be positive, got {value!r:.60}")
    if meta.get("operating_threshold") is not None:
        point = meta["operating_threshold"]
        numbers = [point.get("threshold")] if isinstance(point, dict) else []
        for split in ("validation", "test"):
            part = point.get(split) if isinstance(point, dict) else None
            numbers += [part.get(k) for k in ("sensitivity", "specificity")] if isinstance(part, dict) else [None]
        if not (isinstance(point, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                and math.isfinite(v) for v in numbers)
                and isinstance(point.get("rule"), str) and outputs == 2):
            raise CLIError(f"{where}['operating_threshold'] must be a dict with a finite 'threshold', a 'rule' and "
                           "the 'validation' and 'test' sensitivity and specificity, on a model with two outputs; "
                           f"got {point!r:.60}")
    if meta.get("recipe") is not None:
        if not isinstance(meta["recipe"], dict):
            raise wrong("recipe", "a dict")
        if "model" in meta["recipe"] and not isinstance(meta["recipe"]["model"], str):
            raise CLIError(f"{where}['recipe']['model'] must be a str, got {meta['recipe']['model']!r:.60}")
    return meta


def cmd_exercises_start(args) -> int:
    from .exercises import EXERCISES, start

    target = start(args.dir, force=args.force)
    print(f"wrote {target}: {len(EXERCISES)} functions to write (and {target.parent / 'README.md'})")
    print(f"next: open it, write relu_forward, then run  tinycnn exercises check relu_forward --dir {args.dir}")
    return 0


def cmd_exercises_check(args) -> int:
    from .exercises import check

    report = check(*args.names, path=args.dir, seconds=args.seconds)
    print(report)
    return 0 if report.ok else 1


def cmd_exercises_train(args) -> int:
    from .exercises import train

    train(args.dir, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, data=args.data,
          seconds=args.seconds)
    return 0


def cmd_exercises_solution(args) -> int:
    from .exercises import solution

    print(solution(args.name))
    return 0


MAX_IMAGE_BYTES = 16 * 1024**2      # an image file for predict (a 224×224 RGB PNG is at most ~150 KB)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_image(path, input_shape) -> np.ndarray:
    """A PNG file as a uint8 array shaped like the model's input (grey (H, W) or RGB (H, W, 3)).

    The size the PNG declares in its header is compared with the model's input size before a pixel
    is decoded: a small file can declare an image of gigabytes. Anything but a regular file of at
    most :data:`MAX_IMAGE_BYTES`, a PNG, of the model's size, is refused with a CLIError.
    """
    import io as io_module
    import os
    import stat
    import struct

    import matplotlib.image

    if len(input_shape) != 3:
        raise CLIError(f"this model takes inputs of shape {tuple(input_shape)}, not images (height, width, channels)")
    height, width, channels = input_shape
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise CLIError(f"cannot read image {path}: not a regular file")
        if info.st_size > MAX_IMAGE_BYTES:
            raise CLIError(f"cannot read image {path}: {info.st_size} bytes; image files over {MAX_IMAGE_BYTES} "
                           "bytes are refused")
        with open(path, "rb") as f:
            data = f.read(min(info.st_size, MAX_IMAGE_BYTES) + 1)   # read once: what is checked is decoded
    except OSError as err:
        raise CLIError(f"cannot read image {path}: {err}") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise CLIError(f"cannot read image {path}: image files over {MAX_IMAGE_BYTES} bytes are refused")
    if len(data) < 24 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise CLIError(f"cannot read image {path}: not a PNG file")
    declared = struct.unpack(">II", data[16:24])   # IHDR: width, height — the first thing after the signature
    if declared != (width, height):
        raise CLIError(f"{path} is {declared[0]}×{declared[1]} pixels; the model expects {width}×{height} "
                       "(the size of the images it was trained on)")
    try:
        img = matplotlib.image.imread(io_module.BytesIO(data), format="png")
    except Exception as err:                        # PIL raises many kinds on a damaged PNG
        raise CLIError(f"cannot read image {path}: {type(err).__name__}: {err}") from None
    if img.dtype != np.uint8:                       # PNGs come back as floats in [0, 1]
        img = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 4:         # drop alpha
        img = img[:, :, :3]
    if channels == 1 and img.ndim == 3:             # RGB -> grey (ITU-R 601 luma)
        img = np.round(img[:, :, :3] @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    elif channels == 3 and img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return img


def _check_compatible(model, info, size=28) -> None:
    if model.input_shape != (size, size, info.n_channels) or model.output_shape[-1] != info.n_classes:
        raise CLIError(f"the model takes {model.input_shape} and gives {model.output_shape[-1]} outputs; "
                       f"{info.name} has {size}×{size}×{info.n_channels} images and {info.n_classes} classes")


class CLIError(Exception):
    """A user-facing error: printed without a traceback."""


def _add_clinical_options(p) -> None:
    """--prevalence and --target-sensitivity of train's and evaluate's clinical evaluation."""
    from .medmnist_job import DEFAULT_PREVALENCE, DEFAULT_RESAMPLES, DEFAULT_TARGET_SENSITIVITY

    p.add_argument("--prevalence", type=float, default=DEFAULT_PREVALENCE, metavar="P",
                   help="binary tasks: the share of positives where the model would be used, in (0, 1); PPV and "
                        f"NPV are also reported at it (default {DEFAULT_PREVALENCE}, a stand-in: give yours)")
    p.add_argument("--target-sensitivity", type=float, default=DEFAULT_TARGET_SENSITIVITY, metavar="S",
                   help="binary tasks: the operating threshold is the largest one reaching this sensitivity on the "
                        f"validation split, then measured on test (default {DEFAULT_TARGET_SENSITIVITY})")
    p.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES, metavar="N",
                   help="bootstrap resamples of the test split behind the 95%% intervals of AUC and ACC (seed 0; "
                        f"default {DEFAULT_RESAMPLES}; about 1 s on PneumoniaMNIST, minutes on the largest test "
                        "splits)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinycnn", description="A CNN in pure NumPy, written to be read.")
    parser.add_argument("--version", action="version", version=f"tinycnn {__version__}")
    parser.add_argument("--traceback", action="store_true",
                        help="on an error, show Python's full traceback (for bug reports; also TINYCNN_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    from .datasets import INFO, SIZES
    from .medmnist_job import DATASET_RECIPES, DEFAULT_RECIPE
    from .zoo import MODELS

    def default(field: str) -> str:
        """A recipe field's default, with the datasets whose own recipe (chosen on validation) differs."""
        value = getattr(DEFAULT_RECIPE, field)
        others = "".join(f"; {name}: {getattr(recipe, field)}" for name, recipe in sorted(DATASET_RECIPES.items())
                         if getattr(recipe, field) != value)
        return f"{value}{others}"
    p = sub.add_parser("train", help="train on a MedMNIST dataset and write a run folder",
                       description="Train with the official MedMNIST protocol: keep the weights of the epoch "
                                   "with the best validation AUC, report test ACC and AUC.")
    p.add_argument("--dataset", default="pneumoniamnist", choices=sorted(INFO))
    p.add_argument("--model", default=None, choices=sorted(MODELS), help=f"architecture (default {default('model')})")
    p.add_argument("--epochs", type=int, default=None, help=f"default {default('epochs')}")
    p.add_argument("--batch-size", type=int, default=None, help=f"default {default('batch_size')}")
    p.add_argument("--lr", type=float, default=None, help=f"Adam learning rate (default {default('learning_rate')})")
    p.add_argument("--shift", type=int, default=None,
                   help=f"augmentation: random shifts of up to this many pixels, 0 for none (default {default('shift')})")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="augmentation: mirror each training image left-right with probability 0.5; not for "
                        f"images with a side, e.g. chest X-rays (default {default('flip')})")
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help=f"standardise inputs with the training set's mean and std (default {default('normalize')})")
    p.add_argument("--dropout", type=float, default=None,
                   help=f"Dropout rate before the classifier (default {default('dropout')})")
    p.add_argument("--weight-decay", type=float, default=None,
                   help=f"decoupled weight decay, trains with AdamW when > 0 (default {default('weight_decay')})")
    p.add_argument("--class-weight", choices=["balanced", "none"], default=None,
                   help=f"weight the loss of each class by N/(classes·count) (default {default('class_weight')})")
    p.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE",
                   help="stop when the validation AUC has not improved for PATIENCE epochs (-1: off; "
                        f"default {default('early_stopping')})")
    p.add_argument("--schedule", choices=["none", "step", "cosine"], default=None,
                   help=f"learning-rate schedule (default {default('schedule')})")
    p.add_argument("--oversample", choices=["binary", "always", "never"], default=None,
                   help="each epoch, draw smaller classes with replacement up to the largest class's size: "
                        f"for binary tasks only, always, or never (default {default('oversample')})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=28, choices=SIZES,
                   help="image size: 28 (MedMNIST) or a MedMNIST+ size, 64, 128 or 224 (the file "
                        "<dataset>_<size>.npz, downloaded if missing; default 28)")
    _add_clinical_options(p)
    p.add_argument("--out", default=None, help="run folder (default runs/<dataset>-<model>-seed<seed>-<time>)")
    p.add_argument("--data", default=None, help="folder with the MedMNIST .npz files (default: $TINYCNN_DATA, ~/.medmnist)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="official ACC/AUC of a saved model on a dataset")
    p.add_argument("model", help="a model file written by tinycnn train (model.npz)")
    p.add_argument("--dataset", default=None, choices=sorted(INFO), help="default: the dataset it was trained on")
    p.add_argument("--size", type=int, default=None, choices=SIZES,
                   help="image size of the dataset's file (default: the size the model was trained on)")
    p.add_argument("--data", default=None, help="folder with the MedMNIST .npz files")
    _add_clinical_options(p)
    p.add_argument("--out", default=None, metavar="DIR",
                   help="also write MedMNIST's standard evaluation files of the val and test scores into DIR: "
                        "{flag}_{split}_[AUC]{auc:.3f}_[ACC]{acc:.3f}@{run}.csv")
    p.add_argument("--run", default=None,
                   help="the run name in those files (default: tinycnn-<model>-seed<seed> of a tinycnn train model)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="class probabilities of image files (PNG, the model's image size)")
    p.add_argument("model", help="a model file written by tinycnn train (model.npz)")
    p.add_argument("images", nargs="+", help="PNG image files")
    p.add_argument("--threshold", type=float, default=None, metavar="T",
                   help="two-class models: call the second class iff its probability >= T (default: the "
                        "operating threshold tinycnn train chose on validation and stored in the model, "
                        "else the larger probability)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("gradcheck", help="check backprop against finite differences (float64)")
    p.add_argument("--model", default="seed", choices=["seed", "deeper"])
    p.add_argument("--size", type=int, default=8, help="input height and width (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-entries", type=int, default=200,
                   help="check at most this many entries of each model weight array")
    p.add_argument("--tolerance", type=float, default=1e-6)
    p.set_defaults(func=cmd_gradcheck)

    p = sub.add_parser("bench", help="training and inference speed on real data (per-layer profile, vs Keras)",
                       description="Time one training epoch and predict on a MedMNIST training split. "
                                   "--profile prints the time of every layer's forward and backward pass and "
                                   "the share spent in matrix products; --keras times Keras on the same model, "
                                   "weights and data in the same run.")
    p.add_argument("--model", default="seed", choices=sorted(MODELS))
    p.add_argument("--dataset", default="pneumoniamnist", choices=sorted(INFO))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--profile", action="store_true", help="per-layer time of training steps")
    p.add_argument("--steps", type=int, default=30, help="steps to profile (default 30)")
    p.add_argument("--keras", action="store_true", help="also time Keras (needs the [keras] extra)")
    p.add_argument("--size", type=int, default=28, choices=SIZES, help="image size: 28, 64, 128 or 224 (default 28)")
    p.add_argument("--repeats", type=int, default=3, help="timed epochs per framework; the best counts (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, help="folder with the MedMNIST .npz files")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("explain", help="trace one training step on one real image and walk through backprop",
                       description="Run one training step of a fresh model on one MedMNIST image, print every "
                                   "layer's activations and gradients, then the backward pass formula by formula.")
    p.add_argument("--dataset", default="pneumoniamnist", choices=sorted(INFO), help="default pneumoniamnist")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="default test")
    p.add_argument("--index", type=int, default=0, help="which image of the split (default 0)")
    p.add_argument("--model", default="seed", choices=sorted(MODELS), help="architecture (default seed)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights (default 0)")
    p.add_argument("--update", action="store_true", help="also apply the optimizer step and show each change")
    p.add_argument("--size", type=int, default=28, choices=SIZES, help="image size: 28, 64, 128 or 224 (default 28)")
    p.add_argument("--data", default=None, help="folder with the MedMNIST .npz files")
    p.set_defaults(func=cmd_explain)

    from .exercises import CASE_SECONDS, EXERCISES
    p = sub.add_parser("exercises", help="write backprop yourself: start a workspace, check it, train a CNN on it",
                       description="Write the functions of tinycnn.functional yourself (dense, relu, conv2d, "
                                   "maxpool2d, softmax cross-entropy, SGD, Adam, batchnorm, dropout), have each "
                                   "graded against tinycnn's and by finite differences, then train a CNN on "
                                   "PneumoniaMNIST with them. Start with: tinycnn exercises start my-backprop")
    actions = p.add_subparsers(dest="action", required=True, metavar="{start,check,train,solution}")
    q = actions.add_parser("start", help="write DIR/exercises.py (stubs to fill in) and DIR/README.md",
                           description="Write DIR/exercises.py: one stub per function, each with a docstring "
                                       "that states the math, the shapes and what the cache may hold. An "
                                       "existing exercises.py is never overwritten (unless --force).")
    q.add_argument("dir", help="the folder for your workspace (created if missing)")
    q.add_argument("--force", action="store_true", help="start over: overwrite DIR/exercises.py")
    q.set_defaults(func=cmd_exercises_start)
    q = actions.add_parser("check", help="grade your functions: ✔ / ✘ / not started, with the first wrong element",
                           description="Grade each function of DIR/exercises.py on its own: shapes and dtypes, "
                                       "values against tinycnn.functional on fixed and random cases, every "
                                       "backward by finite differences of your own forward. Exit status 0 only "
                                       "when every function checked passes.")
    q.add_argument("names", nargs="*", metavar="NAME", help=f"functions to check (default: all): {', '.join(EXERCISES)}")
    q.add_argument("--dir", default=".", help="the folder holding exercises.py (default: the current folder)")
    q.add_argument("--seconds", type=float, default=CASE_SECONDS,
                   help=f"time limit per case, in seconds (default {CASE_SECONDS:g})")
    q.set_defaults(func=cmd_exercises_check)
    q = actions.add_parser("train", help="train the seed model on PneumoniaMNIST with your functions",
                           description="Train the seed model on PneumoniaMNIST with every function of yours that "
                                       "passes its check (tinycnn's for the others), and the same model on "
                                       "tinycnn's own kernels beside it; report both official test ACC/AUC.")
    q.add_argument("--dir", default=".", help="the folder holding exercises.py (default: the current folder)")
    q.add_argument("--epochs", type=int, default=3, help="default 3")
    q.add_argument("--batch-size", type=int, default=128, help="default 128")
    q.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the batch order (default 0)")
    q.add_argument("--seconds", type=float, default=CASE_SECONDS, help="time limit per grading case")
    q.add_argument("--data", default=None, help="folder with the MedMNIST .npz files (default: $TINYCNN_DATA, ~/.medmnist)")
    q.set_defaults(func=cmd_exercises_train)
    q = actions.add_parser("solution", help="print tinycnn's version of one function (when stuck)")
    q.add_argument("name", choices=EXERCISES, metavar="NAME", help=", ".join(EXERCISES))
    q.set_defaults(func=cmd_exercises_solution)
    return parser


#: Exit statuses: 0 success (1 also for a check that ran and failed: gradcheck, exercises check).
EXIT_USER_ERROR = 2        # bad arguments, files or data: the message says what to change
EXIT_UNEXPECTED = 1        # a bug (or an environment problem) the message could not explain
EXIT_INTERRUPTED = 130     # Ctrl-C (128 + SIGINT, the shell's convention)


def _user_error(err: BaseException) -> bool:
    """True for the exceptions a user's input or environment causes (a message is enough):
    tinycnn's own errors, bad values and types, missing or unreadable files, a full disk."""
    from .datasets import DownloadError

    return isinstance(err, (CLIError, DownloadError, ValueError, TypeError, OSError, FloatingPointError,
                            MemoryError, RecursionError))


def _one_line(err: BaseException) -> str:
    """The exception as one line: its message (the type's name when it has none), newlines folded."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, MemoryError):
        text = f"out of memory ({text})"
    if isinstance(err, OSError) and err.strerror:        # not "[Errno 13] ...": the system's words only
        text = " ".join(err.strerror.split())
    if isinstance(err, OSError) and err.filename is not None and str(err.filename) not in text:
        text = f"{text}: {err.filename}"
    return text


def main(argv=None) -> int:
    """Run one command. The one error boundary of the command line: any exception becomes one line
    on stderr and a non-zero exit status — 2 for user errors, 1 for unexpected ones, 130 for
    Ctrl-C. ``TINYCNN_DEBUG=1`` (or ``--traceback``) shows the full traceback instead."""
    import os

    args = build_parser().parse_args(argv)
    debug = getattr(args, "traceback", False) or os.environ.get("TINYCNN_DEBUG", "") not in ("", "0")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"tinycnn {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:                 # noqa: BLE001 — the boundary: nothing escapes as a traceback
        if debug:
            raise
        if _user_error(err):
            print(f"tinycnn {args.command}: error: {_one_line(err)}", file=sys.stderr)
            return EXIT_USER_ERROR
        print(f"tinycnn {args.command}: unexpected error ({type(err).__name__}: {_one_line(err)}); this is "
              "probably a bug in tinycnn: run again with TINYCNN_DEBUG=1 (or --traceback) for the full "
              "traceback to report", file=sys.stderr)
        return EXIT_UNEXPECTED


if __name__ == "__main__":
    sys.exit(main())
