"""The ``tinycnn`` command line.

    tinycnn train         train on a MedMNIST dataset (official protocol), write a run folder
    tinycnn evaluate      score a saved model on a dataset's test split with the official metrics
    tinycnn predict       class probabilities of one image file
    tinycnn gradcheck     check every layer's and the seed model's gradients in float64
    tinycnn bench         training and inference speed on real data (--profile: per layer; --keras: vs Keras)
    tinycnn explain       one training step on one real image, traced: every array, every gradient formula
    tinycnn exercises     write backprop yourself: start a workspace, check it, train a CNN on it
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

    data = load(args.dataset, root=args.data)
    if data.info.is_multilabel:
        raise CLIError(f"bench trains with softmax cross-entropy; {args.dataset} is multi-label")
    x = (data.train.images.reshape(len(data.train.images), 28, 28, -1) / np.float32(255)).astype(np.float32)
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

    data = load(args.dataset, root=args.data)
    info, part = data.info, getattr(data, args.split)
    if not 0 <= args.index < len(part.images):
        raise CLIError(f"--index {args.index} is out of range: the {args.split} split of {info.name} has "
                       f"{len(part.images)} images (0 to {len(part.images) - 1})")
    model = MODELS[args.model](info.n_classes, input_shape=(28, 28, info.n_channels), seed=args.seed,
                               output_activation="sigmoid" if info.is_multilabel else "softmax")
    model.compile("adam", "binary_crossentropy" if info.is_multilabel else "sparse_categorical_crossentropy")
    x = to_float(part.images[args.index:args.index + 1])             # (1, 28, 28, C) in [0, 1]
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
    from .medmnist_job import DEFAULT_RECIPE, train, with_overrides

    recipe = with_overrides(DEFAULT_RECIPE, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                            learning_rate=args.lr, shift=args.shift, normalize=args.normalize,
                            dropout=args.dropout, weight_decay=args.weight_decay, schedule=args.schedule,
                            oversample=args.oversample)
    if args.class_weight is not None:
        recipe = with_overrides(recipe, class_weight=None if args.class_weight == "none" else args.class_weight)
    if args.early_stopping is not None:
        recipe = with_overrides(recipe, early_stopping=None if args.early_stopping < 0 else args.early_stopping)
    train(args.dataset, recipe, seed=args.seed, out=args.out, root=args.data)
    return 0


def cmd_evaluate(args) -> int:
    import re
    from pathlib import Path

    from . import published
    from .datasets import load
    from .medmnist_job import preprocess, run_name, score, write_medmnist_results

    model = _load_model(args.model)
    meta = model.metadata
    dataset = args.dataset or meta.get("dataset")
    if dataset is None:
        raise CLIError("the model file does not say which dataset it was trained on; pass --dataset NAME")
    data = load(dataset, root=args.data)
    _check_compatible(model, data.info)
    preprocessing = meta.get("preprocessing") or {}   # uint8/255 (and a mean/std if kept outside the model)
    run = args.run
    if run is None:                 # a tinycnn train model: the run name its run folder's files have
        recipe = meta.get("recipe") if isinstance(meta.get("recipe"), dict) else {}
        run = run_name(recipe["model"], meta["seed"]) if "model" in recipe and "seed" in meta \
            else re.sub(r"[^A-Za-z0-9_-]", "-", Path(args.model).stem) or "model"
    print(f"{args.model}: {data.info.python_class}, {data.info.task}")
    results = {}
    for split in ("val", "test"):
        part = getattr(data, split)
        results[split], y_score = score(model, preprocess(part.images, preprocessing), part.labels, data.info.task)
        print(f"  {split:5s} ACC {results[split]['acc']:.3f}   AUC {results[split]['auc']:.3f}   ({len(part.images)} images)")
        if args.out is not None:
            path = write_medmnist_results(args.out, data.info.name, split, part.labels, y_score, run)
            print(f"        wrote {path}")
    print()
    print(published.comparison_table(data.info.name, results["test"], ours_label="this model"))
    return 0


def cmd_predict(args) -> int:
    from .medmnist_job import preprocess

    model = _load_model(args.model)
    meta = model.metadata
    labels = meta.get("labels") or [f"class {i}" for i in range(model.output_shape[-1])]
    images = np.stack([read_image(path, model.input_shape) for path in args.images])
    probabilities = model.predict(preprocess(images, meta.get("preprocessing") or {}))
    multilabel = str(meta.get("task", "")).startswith("multi-label")
    for path, probs in zip(args.images, probabilities):
        print(f"{path}:")
        for label, p in sorted(zip(labels, probs), key=lambda t: -t[1]):
            print(f"  {label:40s} {p:7.3f}")
        if not multilabel:
            print(f"  -> {labels[int(np.argmax(probs))]}")
    return 0


def _load_model(path):
    """``tinycnn.load_model``, without the warning about a standardisation kept outside the model:
    evaluate and predict apply it themselves (``preprocess`` with the model's metadata)."""
    import warnings

    from .io import PreprocessingWarning, load_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreprocessingWarning)
        return load_model(path)


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


def read_image(path, input_shape) -> np.ndarray:
    """A PNG file as a uint8 array shaped like the model's input (grey (H, W) or RGB (H, W, 3))."""
    import matplotlib.image

    height, width, channels = input_shape
    try:
        img = matplotlib.image.imread(path)
    except (OSError, ValueError, SyntaxError) as err:
        raise CLIError(f"cannot read image {path}: {err}") from None
    if img.dtype != np.uint8:                       # PNGs come back as floats in [0, 1]
        img = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 4:         # drop alpha
        img = img[:, :, :3]
    if img.shape[:2] != (height, width):
        raise CLIError(f"{path} is {img.shape[1]}×{img.shape[0]} pixels; the model expects {width}×{height} "
                       "(MedMNIST images are 28×28)")
    if channels == 1 and img.ndim == 3:             # RGB -> grey (ITU-R 601 luma)
        img = np.round(img[:, :, :3] @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    elif channels == 3 and img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return img


def _check_compatible(model, info) -> None:
    if model.input_shape != (28, 28, info.n_channels) or model.output_shape[-1] != info.n_classes:
        raise CLIError(f"the model takes {model.input_shape} and gives {model.output_shape[-1]} outputs; "
                       f"{info.name} has 28×28×{info.n_channels} images and {info.n_classes} classes")


class CLIError(Exception):
    """A user-facing error: printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinycnn", description="A CNN in pure NumPy, written to be read.")
    parser.add_argument("--version", action="version", version=f"tinycnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    from .datasets import INFO
    from .medmnist_job import DEFAULT_RECIPE
    from .zoo import MODELS
    p = sub.add_parser("train", help="train on a MedMNIST dataset and write a run folder",
                       description="Train with the official MedMNIST protocol: keep the weights of the epoch "
                                   "with the best validation AUC, report test ACC and AUC.")
    p.add_argument("--dataset", default="pneumoniamnist", choices=sorted(INFO))
    p.add_argument("--model", default=None, choices=sorted(MODELS), help=f"architecture (default {DEFAULT_RECIPE.model})")
    p.add_argument("--epochs", type=int, default=None, help=f"default {DEFAULT_RECIPE.epochs}")
    p.add_argument("--batch-size", type=int, default=None, help=f"default {DEFAULT_RECIPE.batch_size}")
    p.add_argument("--lr", type=float, default=None, help=f"Adam learning rate (default {DEFAULT_RECIPE.learning_rate})")
    p.add_argument("--shift", type=int, default=None,
                   help=f"augmentation: random shifts of up to this many pixels, 0 for none (default {DEFAULT_RECIPE.shift})")
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help=f"standardise inputs with the training set's mean and std (default {DEFAULT_RECIPE.normalize})")
    p.add_argument("--dropout", type=float, default=None,
                   help=f"Dropout rate before the classifier (default {DEFAULT_RECIPE.dropout})")
    p.add_argument("--weight-decay", type=float, default=None,
                   help=f"decoupled weight decay, trains with AdamW when > 0 (default {DEFAULT_RECIPE.weight_decay})")
    p.add_argument("--class-weight", choices=["balanced", "none"], default=None,
                   help=f"weight the loss of each class by N/(classes·count) (default {DEFAULT_RECIPE.class_weight})")
    p.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE",
                   help="stop when the validation AUC has not improved for PATIENCE epochs (-1: off; "
                        f"default {DEFAULT_RECIPE.early_stopping})")
    p.add_argument("--schedule", choices=["none", "step", "cosine"], default=None,
                   help=f"learning-rate schedule (default {DEFAULT_RECIPE.schedule})")
    p.add_argument("--oversample", choices=["binary", "always", "never"], default=None,
                   help="each epoch, draw smaller classes with replacement up to the largest class's size: "
                        f"for binary tasks only, always, or never (default {DEFAULT_RECIPE.oversample})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="run folder (default runs/<dataset>-<model>-seed<seed>-<time>)")
    p.add_argument("--data", default=None, help="folder with the MedMNIST .npz files (default: $TINYCNN_DATA, ~/.medmnist)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="official ACC/AUC of a saved model on a dataset")
    p.add_argument("model", help="a model file written by tinycnn train (model.npz)")
    p.add_argument("--dataset", default=None, choices=sorted(INFO), help="default: the dataset it was trained on")
    p.add_argument("--data", default=None, help="folder with the MedMNIST .npz files")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="also write MedMNIST's standard evaluation files of the val and test scores into DIR: "
                        "{flag}_{split}_[AUC]{auc:.3f}_[ACC]{acc:.3f}@{run}.csv")
    p.add_argument("--run", default=None,
                   help="the run name in those files (default: tinycnn-<model>-seed<seed> of a tinycnn train model)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="class probabilities of image files (28×28 PNG)")
    p.add_argument("model", help="a model file written by tinycnn train (model.npz)")
    p.add_argument("images", nargs="+", help="PNG image files")
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


def main(argv=None) -> int:
    from .datasets import DownloadError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CLIError, DownloadError, FileNotFoundError, FileExistsError, ValueError, FloatingPointError) as err:
        print(f"tinycnn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tinycnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
