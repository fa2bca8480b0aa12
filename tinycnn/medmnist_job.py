"""The MedMNIST job, the pipeline behind the command line's ``tinycnn train``.

Trains a CNN on one MedMNIST dataset with the official protocol and writes a run folder. This
is the application (recipe, preprocessing, scoring, run folder), not the training loop itself:
that is :meth:`tinycnn.model.Sequential.fit`, which this job calls.

The protocol of the MedMNIST paper: train on ``train``, after every epoch score the model on
``val`` with the official metrics, keep the weights of the epoch with the best validation AUC,
and report that model's ACC and AUC on ``test``.

    from tinycnn.medmnist_job import train
    result = train("pneumoniamnist", seed=0)          # what `tinycnn train` runs
    result["test"]                                    # {"acc": ..., "auc": ...}

A run folder holds ``model.npz``, ``history.json``, ``metrics.json``, ``training_curves.png``,
``confusion_matrix.png``, ``roc_curve.png``, ``calibration.png`` (single-label tasks), and
MedMNIST's standard evaluation files of the validation and test scores (below). It appears whole
or not at all (:func:`tinycnn.io.atomic_folder`). The recipe is the dataset's
(:func:`default_recipe`): ``DEFAULT_RECIPE``, or the dataset's own in ``DATASET_RECIPES``, each
chosen on validation scores alone (``benchmarks/recipe_search.py``).

**The clinical evaluation** (``metrics.json``'s ``clinical``, printed at the end of the run and
by ``tinycnn evaluate``; :func:`clinical_evaluation`, :func:`tinycnn.metrics.clinical_report`):
95 % percentile bootstrap intervals of the test AUC and ACC (1000 resamples, seed 0, stated in
the json); for binary tasks two operating thresholds chosen on the *validation* scores — the
largest reaching sensitivity 0.95 (``--target-sensitivity``) and Youden's — each with its
sensitivity, specificity, PPV and NPV on validation and on test, and PPV/NPV of the first at a
given prevalence (``--prevalence``, default 0.1); the test ECE and reliability curve (10 bins;
``calibration.png``); per-class precision/recall/F1 for multi-class and ordinal tasks; per-label
AUC and ACC for multi-label tasks, which get no thresholds or calibration (the json says so).

For binary tasks the model's ``metadata["operating_threshold"]`` keeps the first of those
thresholds (:func:`operating_threshold`), which ``tinycnn predict`` decides with.

**The model is whole.** It takes the images as ``uint8 / 255`` in float32, NHWC
(:func:`tinycnn.datasets.to_float`), nothing more: when the recipe standardises (``normalize``,
the default), the model's first layer is a :class:`tinycnn.Normalization` adapted on the training
images, so the saved model reproduces the run's numbers on its own::

    model = tinycnn.load_model("runs/.../model.npz")
    y_score = model.predict(to_float(data.test.images))      # the scores behind metrics.json's test ACC/AUC

(A model file that keeps the standardisation in ``metadata["preprocessing"]`` instead — a
``mean`` and ``std`` to apply first — is still read and evaluated correctly by ``tinycnn
evaluate`` and ``tinycnn predict``; :func:`preprocess` prepares its inputs, and
:func:`move_standardization_into_model` turns it into a whole model.)

**MedMNIST's standard evaluation files** — the format of the official ``medmnist`` package
(``medmnist/evaluator.py``: ``Evaluator.evaluate(y_score, save_folder, run)`` writes them,
``Evaluator.parse_and_evaluate(path)`` reads one and checks its metrics), written by
:func:`write_medmnist_results` for ``tinycnn train`` and ``tinycnn evaluate --out DIR``::

    {flag}_{split}_[AUC]{auc:.3f}_[ACC]{acc:.3f}@{run}.csv
    e.g. pneumoniamnist_test_[AUC]0.962_[ACC]0.886@tinycnn-deeper-seed0.csv

    0,0.0123,0.9877          one line per image of the split, in the dataset's order, no header:
    1,0.85120004,0.14879997  the image's index, then its score for each class (or label)

``flag`` is the dataset's name (``pneumoniamnist``; 28×28 images have no size suffix), ``split``
is ``val`` or ``test``, AUC and ACC are the official metrics of these very scores, rounded to three
decimals, and ``run`` names the run (``tinycnn train``: ``tinycnn-<model>-seed<seed>``; letters,
digits, ``-`` and ``_``, since the official reader takes what follows the last ``@`` up to the
first ``.``). Each score is the shortest decimal that reads back as exactly the same number in
the scores' precision (float32), so the metrics recomputed from a file are the ones in its name.
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from . import metrics
from .datasets import load, random_flip, random_shift, standardize, to_float
from .io import atomic_folder, atomic_write_text
from .layers import Normalization, Rescaling
from .callbacks import EarlyStopping, LearningRateScheduler, cosine_decay, step_decay
from .model import Sequential
from .optimizers import Adam, AdamW
from .zoo import MODELS


@dataclass(frozen=True)
class Recipe:
    """Everything about a training run except the data and the seed."""

    model: str = "deeper"
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 0.001
    shift: int = 2                  # augmentation: random shifts of up to this many pixels (0: off)
    flip: bool = False              # augmentation: mirror left-right with probability 0.5 (see random_flip first)
    normalize: bool = True          # first layer: Normalization adapted on the training images (per channel)
    dropout: float = 0.0            # Dropout rate before the classifier (0: none)
    weight_decay: float = 0.0       # decoupled weight decay: AdamW instead of Adam when > 0
    class_weight: str | None = None  # "balanced": weight each class's loss by N / (classes · count)
    early_stopping: int | None = None  # patience in epochs on the validation AUC (None: off)
    schedule: str = "none"          # learning rate: "none" (constant), "step" (×0.1 at 50% and 75%) or "cosine"
    oversample: str = "binary"      # draw smaller classes up to the largest: "binary" tasks only, "always", "never"

    def check(self) -> "Recipe":
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; expected one of {sorted(MODELS)}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning rate must be positive, got {self.learning_rate!r}")
        if not isinstance(self.shift, int) or not 0 <= self.shift < 14:
            raise ValueError(f"shift must be an int in [0, 14), got {self.shift!r}")
        if not isinstance(self.flip, bool):
            raise ValueError(f"flip must be True or False, got {self.flip!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight decay must be >= 0, got {self.weight_decay!r}")
        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {self.class_weight!r}")
        if self.early_stopping is not None and (not isinstance(self.early_stopping, int) or self.early_stopping < 0):
            raise ValueError(f"early_stopping must be None or a patience >= 0, got {self.early_stopping!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {sorted(SCHEDULES)}, got {self.schedule!r}")
        if self.oversample not in ("binary", "always", "never"):
            raise ValueError(f"oversample must be 'binary', 'always' or 'never', got {self.oversample!r}")
        return self

    def sampler(self, task: str) -> str | None:
        """``fit``'s sampler for a task: oversampling where the recipe asks for it."""
        if task.startswith("multi-label") or self.oversample == "never":
            return None
        return "oversample" if self.oversample == "always" or task == "binary-class" else None

    def callbacks(self) -> list:
        """The learning-rate schedule and early stopping this recipe asks for."""
        found = []
        # "none" is a constant rate, set through the scheduler too, so every run's history records its lr
        found.append(LearningRateScheduler(SCHEDULES[self.schedule](self.learning_rate, self.epochs)))
        if self.early_stopping is not None:
            # restore_best_weights is left to the pipeline, which keeps the best-val-AUC weights anyway
            found.append(EarlyStopping("val_auc", patience=self.early_stopping, mode="max", restore_best_weights=False))
        return found


def augmentation(recipe: Recipe):
    """``fit``'s ``augment(batch, rng)`` for the recipe: a random shift, then a left-right flip,
    each when the recipe asks for it; ``None`` when it asks for neither."""
    if not recipe.shift and not recipe.flip:
        return None

    def augment(batch, rng):
        if recipe.shift:
            batch = random_shift(batch, recipe.shift, rng)
        if recipe.flip:
            batch = random_flip(batch, rng)
        return batch
    return augment


def constant(initial: float, epochs: int):
    """The learning rate ``initial`` at every epoch (the schedule "none")."""
    return lambda epoch: initial


SCHEDULES = {"none": constant, "step": step_decay, "cosine": cosine_decay}


#: The recipe of ``tinycnn train``, chosen on the validation splits of PneumoniaMNIST, BreastMNIST
#: and RetinaMNIST together (``benchmarks/recipe_search.py``, stages 1–2).
DEFAULT_RECIPE = Recipe()
#: Datasets with a recipe of their own, each chosen on that dataset's validation split alone
#: (``benchmarks/recipe_search.py --per-dataset``, stage 3); every other dataset uses DEFAULT_RECIPE.
#: ``benchmarks/results/recipe_per_dataset.md`` shows every candidate's validation scores.
DATASET_RECIPES: dict[str, Recipe] = {
    "breastmnist": replace(DEFAULT_RECIPE, flip=True, epochs=40),
    "retinamnist": replace(DEFAULT_RECIPE, flip=True, dropout=0.5),
    "pneumoniamnist": replace(DEFAULT_RECIPE, learning_rate=3e-4, epochs=40),
}


def default_recipe(dataset: str) -> Recipe:
    """The recipe ``tinycnn train --dataset DATASET`` uses when no option changes it."""
    return DATASET_RECIPES.get(dataset, DEFAULT_RECIPE)

# The clinical evaluation's defaults (``tinycnn train``/``evaluate`` --prevalence,
# --target-sensitivity). The prevalence is a stand-in for a screening population, not the
# MedMNIST splits' (74 % pneumonia in PneumoniaMNIST's train and val): PPV and NPV depend on where
# a test is used, so give the prevalence of yours.
DEFAULT_PREVALENCE = 0.10
DEFAULT_TARGET_SENSITIVITY = 0.95
DEFAULT_RESAMPLES = 1000                 # bootstrap resamples of the test split (seed 0)


def preprocess(images: np.ndarray, preprocessing: dict) -> np.ndarray:
    """uint8 images -> the float32 NHWC input of a model with this ``metadata["preprocessing"]``:
    ``uint8 / 255``, then — only for a model file that keeps its standardisation outside the
    model (a ``mean`` and ``std`` in the dict) — ``(x − mean) / std``. A model written by
    ``tinycnn train`` standardises inside (its first layer), so for it this is ``to_float``."""
    x = to_float(images)
    if preprocessing.get("mean") is not None:
        x, _, _ = standardize(x, np.asarray(preprocessing["mean"], np.float32),
                              np.asarray(preprocessing["std"], np.float32))
    return x


def targets(labels: np.ndarray, task: str) -> np.ndarray:
    """Labels in the form the loss expects: (N,) class ids, or (N, L) 0/1 flags for multi-label."""
    return labels.astype(np.float32) if task.startswith("multi-label") else labels.reshape(-1).astype(np.int64)


def build_model(recipe: Recipe, info, seed, size: int = 28) -> Sequential:
    """The recipe's zoo network for ``info``'s task and ``size``×``size`` images, initialised from
    ``seed`` and compiled (no preprocessing layer: :func:`train` puts the adapted
    ``Normalization`` in front of it)."""
    multilabel = info.task.startswith("multi-label")
    model = MODELS[recipe.model](info.n_classes, input_shape=(size, size, info.n_channels), seed=seed,
                                 output_activation="sigmoid" if multilabel else "softmax", dropout=recipe.dropout)
    optimizer = AdamW(recipe.learning_rate, weight_decay=recipe.weight_decay) if recipe.weight_decay \
        else Adam(recipe.learning_rate)
    model.compile(optimizer, "binary_crossentropy" if multilabel else "sparse_categorical_crossentropy")
    return model


def with_first_layers(model: Sequential, first_layers: list) -> Sequential:
    """A new model: ``first_layers`` (preprocessing layers, ready to run), then copies of
    ``model``'s layers with its weights, its seed's random streams, its compile settings, its
    optimizer's state and its metadata. ``model`` itself is left as it was."""
    for layer in first_layers:
        if not isinstance(layer, (Rescaling, Normalization)):
            raise TypeError(f"with_first_layers: {layer.label} is not a preprocessing layer (Rescaling, Normalization)")
    copies = [type(layer)(**layer.get_config()) for layer in model.layers]
    new = Sequential([*first_layers, *copies], input_shape=model.input_shape, seed=model.seed,
                     dtype=model.dtype, name=model.name)
    for twin, layer in zip(copies, model.layers):
        for key in twin.params:
            twin.params[key][...] = layer.params[key]
        for key in twin.state:
            twin.state[key][...] = layer.state[key]
    if model.optimizer is not None and model.loss is not None:
        new.compile(type(model.optimizer)(**model.optimizer.get_config()), type(model.loss)(**model.loss.get_config()))
        if model.optimizer.slots is not None:     # the same trainable arrays in the same order: the same slots
            new.optimizer.slots = copy.deepcopy(model.optimizer.slots)
        new.optimizer.iterations = model.optimizer.iterations
    new.metadata = copy.deepcopy(model.metadata)
    return new


def move_standardization_into_model(model: Sequential) -> Sequential:
    """A model file that keeps its standardisation outside (``metadata["preprocessing"]`` with a
    ``mean`` and ``std``, applied by :func:`preprocess`) made whole: the same model behind a
    first ``Normalization(mean=mean, variance=std²)``, taking ``uint8 / 255`` images itself, with
    the ``mean``/``std`` taken out of its metadata. Save it to keep it::

        model = move_standardization_into_model(tinycnn.load_model("old/model.npz"))
        model.save("old/model-whole.npz")

    ``max(sqrt(std²), 1e-7)`` is ``std`` again in float32, so the predictions are the same numbers."""
    preprocessing = dict(model.metadata.get("preprocessing") or {})
    if preprocessing.get("mean") is None:
        raise ValueError("move_standardization_into_model: the model's metadata['preprocessing'] has no mean and "
                         "std; it takes uint8 / 255 images already (or standardises inside)")
    mean = np.asarray(preprocessing.pop("mean"), np.float32)
    std = np.asarray(preprocessing.pop("std"), np.float32)
    normalization = Normalization(mean=mean, variance=np.square(std.astype(np.float64)).astype(np.float32))
    whole = with_first_layers(model, [normalization])
    whole.metadata["preprocessing"] = {**preprocessing, "normalization_layer": whole.layers[0].name}
    return whole


def score(model: Sequential, x, labels, task) -> tuple[dict, np.ndarray]:
    """Official MedMNIST ACC and AUC of ``model`` on ``(x, labels)``, and the predicted scores."""
    y_score = model.predict(x)
    return metrics.medmnist_scores(task, labels, y_score), y_score


def check_clinical_options(prevalence, target_sensitivity, resamples=DEFAULT_RESAMPLES) -> None:
    """ValueError unless 0 < ``prevalence`` < 1, 0 < ``target_sensitivity`` <= 1 and ``resamples``
    is a positive int."""
    if isinstance(prevalence, bool) or not isinstance(prevalence, (int, float)) or not 0 < prevalence < 1:
        raise ValueError(f"prevalence must be a number strictly between 0 and 1 (e.g. 0.1 for 10 %), got "
                         f"{prevalence!r}")
    if isinstance(target_sensitivity, bool) or not isinstance(target_sensitivity, (int, float)) \
            or not 0 < target_sensitivity <= 1:
        raise ValueError(f"target sensitivity must be in (0, 1] (e.g. 0.95), got {target_sensitivity!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples must be a positive int, got {resamples!r}")


def clinical_evaluation(task: str, y_val, s_val, y_test, s_test, *, prevalence: float = DEFAULT_PREVALENCE,
                        target_sensitivity: float = DEFAULT_TARGET_SENSITIVITY,
                        resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict:
    """:func:`tinycnn.metrics.clinical_report` of the validation and test scores (thresholds chosen
    on validation, measured on test; intervals from ``resamples`` bootstrap resamples with
    ``seed``), JSON-ready. Where the data cannot give a report (e.g. a validation split without a
    positive, or a class too rare to bootstrap), the dict is ``{"task": task, "error": reason}``
    instead: the trained model and its official scores are still worth saving."""
    check_clinical_options(prevalence, target_sensitivity, resamples)
    try:
        return metrics.clinical_report(task, y_val, s_val, y_test, s_test, sensitivity=target_sensitivity,
                                       prevalence=prevalence if task == "binary-class" else None,
                                       resamples=resamples, seed=seed)
    except ValueError as err:
        return {"task": task, "error": str(err)}


def operating_threshold(clinical: dict, labels) -> dict | None:
    """What ``tinycnn predict`` decides with, for the model's metadata: the threshold a binary
    task's clinical evaluation chose on validation for the target sensitivity, the class it
    calls, and that threshold's sensitivity and specificity on validation and test. ``None`` for
    other tasks, or when the evaluation could not choose one."""
    point = clinical.get("operating_points", {}).get("sensitivity_target")
    if clinical.get("task") != "binary-class" or point is None:
        return None
    keep = ("sensitivity", "specificity", "ppv", "npv")
    return {"threshold": float(point["threshold"]), "positive": str(labels[1]), "negative": str(labels[0]),
            "rule": point["rule"], "decision": clinical["operating_points"]["decision"],
            **{split: {k: None if point[split][k] is None else float(point[split][k]) for k in keep}
               for split in ("validation", "test")}}      # (PPV/NPV are None where nothing was called)


def format_clinical(clinical: dict, names=None) -> str:
    """The console summary of a :func:`clinical_evaluation` (test numbers at thresholds chosen on
    validation)."""
    if "error" in clinical:
        return f"clinical evaluation not computed: {clinical['error']}"
    return ("clinical evaluation (thresholds chosen on validation, measured on test):\n"
            + metrics.format_clinical_report(clinical, brief=True, names=names))


def train(dataset: str = "pneumoniamnist", recipe: Recipe | None = None, seed: int = 0, out=None,
          root=None, verbose: int = 1, write: bool = True, size: int = 28, *,
          prevalence: float = DEFAULT_PREVALENCE, target_sensitivity: float = DEFAULT_TARGET_SENSITIVITY,
          resamples: int = DEFAULT_RESAMPLES) -> dict:
    """Train ``recipe`` on ``dataset`` with ``seed``; returns the run's results (and writes the
    run folder when ``write``). ``out`` defaults to ``runs/<dataset>-<model>-seed<seed>-<time>``.
    ``size`` picks the images: 28 (MedMNIST) or a MedMNIST+ size, 64, 128 or 224 (the file
    ``<dataset>_<size>.npz``, the model built for it; ``metrics.json`` and the model's metadata
    record it). ``recipe`` defaults to the dataset's (:func:`default_recipe`).

    After training, the clinical evaluation (:func:`clinical_evaluation`: bootstrap intervals
    from ``resamples`` resamples, for binary tasks the thresholds chosen on validation — the one
    reaching ``target_sensitivity``, and Youden's — measured on test, PPV/NPV at
    ``prevalence``, calibration, per-class scores) goes into ``result["clinical"]`` and
    ``metrics.json``, and ``calibration.png`` into the run folder."""
    recipe = (default_recipe(dataset) if recipe is None else recipe).check()
    check_clinical_options(prevalence, target_sensitivity, resamples)      # before, not after, training
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    started = time.perf_counter()
    data = load(dataset, root=root, size=size)
    info, size = data.info, data.size
    if write:                                 # a folder we cannot write fails now, not after training
        run_dir = _run_dir(out, info.file(size).stem, recipe.model, seed)
        check_writable_folder(run_dir)
    x_train, x_val, x_test = (to_float(part.images) for part in (data.train, data.val, data.test))
    y_train = targets(data.train.labels, info.task)

    model = build_model(recipe, info, seed, size)
    # With normalize, the model that is scored and saved is Normalization (adapted on the training
    # images) → the network. That layer has nothing to learn, so the network trains on the images
    # standardised once, up front (no backprop into the images at every step); a random shift fills
    # the border it uncovers with 0, the training images' mean.
    normalization = None
    x_train_in, x_val_in = x_train, x_val
    if recipe.normalize:
        normalization = Normalization()
        normalization.adapt(x_train)
        x_train_in, x_val_in = (normalization.forward(x, training=False) for x in (x_train, x_val))
    best = {"auc": -np.inf, "epoch": 0, "weights": None}

    def keep_best_by_val_auc(model, epoch, logs):
        scores, _ = score(model, x_val_in, data.val.labels, info.task)
        logs["val_acc"], logs["val_auc"] = scores["acc"], scores["auc"]
        if scores["auc"] > best["auc"]:
            best.update(auc=scores["auc"], epoch=epoch, weights=model.get_weights())

    augment = augmentation(recipe)
    at_size = "" if size == 28 else f" at {size}×{size}"        # MedMNIST+ images
    if verbose:
        print(f"tinycnn: training '{recipe.model}' on {info.python_class}{at_size} ({info.task}, "
              f"{len(x_train)} training images) for {recipe.epochs} epochs, seed {seed}")
    if recipe.class_weight and info.task.startswith("multi-label"):
        raise ValueError("class_weight='balanced' applies to single-label tasks, not to multi-label ones")
    history = model.fit(x_train_in, y_train, epochs=recipe.epochs, batch_size=recipe.batch_size,
                        verbose=1 if verbose else 0, callbacks=[keep_best_by_val_auc, *recipe.callbacks()],
                        augment=augment, class_weight=recipe.class_weight, sampler=recipe.sampler(info.task))
    if best["weights"] is None:                  # Ctrl-C before the first epoch ended
        raise KeyboardInterrupt
    if model.stop_reason and verbose:
        print(f"{model.stop_reason}: evaluating the best of the {len(history['loss'])} completed epochs")
    model.set_weights(best["weights"])
    preprocessing: dict = {"scale": "uint8/255"}
    if normalization is not None:                # the whole model: it takes uint8 / 255 images
        model = with_first_layers(model, [normalization])
        preprocessing["normalization_layer"] = normalization.name
    val_scores, val_score_array = score(model, x_val, data.val.labels, info.task)
    test_scores, test_score_array = score(model, x_test, data.test.labels, info.task)
    if verbose:      # about 1 s for PneumoniaMNIST's 624 test images, minutes for the largest test splits
        print(f"clinical evaluation: {resamples} bootstrap resamples of the {len(x_test)} test images ...",
              end=" ", flush=True)
    clinical_started = time.perf_counter()
    clinical = clinical_evaluation(info.task, data.val.labels, val_score_array, data.test.labels,
                                   test_score_array, prevalence=prevalence,
                                   target_sensitivity=target_sensitivity, resamples=resamples)
    if verbose:
        print(f"{time.perf_counter() - clinical_started:.0f} s")
    seconds = time.perf_counter() - started

    result = {
        "dataset": info.name, "size": size, "task": info.task, "seed": seed, "recipe": asdict(recipe),
        "best_epoch": best["epoch"], "val": val_scores, "test": test_scores,
        "clinical": clinical, "history": history, "seconds": seconds, "run_dir": None,
    }
    model.metadata = {"dataset": info.name, "size": size, "task": info.task, "labels": list(info.labels),
                      "preprocessing": preprocessing, "recipe": asdict(recipe), "seed": seed,
                      "best_epoch": best["epoch"], "val": val_scores, "test": test_scores}
    threshold = operating_threshold(clinical, info.labels)
    if threshold is not None:
        model.metadata["operating_threshold"] = threshold
    if verbose:
        print(f"\nbest validation AUC {best['auc']:.3f} at epoch {best['epoch']}; "
              f"test ACC {test_scores['acc']:.3f}, AUC {test_scores['auc']:.3f} ({seconds:.0f} s)\n")
        from . import published
        ours_label = f"tinycnn {recipe.model}" + ("" if size == 28 else f" ({size})")
        print(published.comparison_table(info.name, test_scores, ours_label=ours_label))
        print()
        print(format_clinical(clinical, info.labels))
    if write:            # all files or none: a full disk or Ctrl-C while writing leaves no half run folder
        with atomic_folder(run_dir) as staging:
            write_run(staging, model, result, info, data.test.labels, test_score_array)
            for split, labels, y_score in (("val", data.val.labels, val_score_array),
                                           ("test", data.test.labels, test_score_array)):
                write_medmnist_results(staging, info.name, split, labels, y_score, run_name(recipe.model, seed),
                                       size=size)
        result["run_dir"] = str(run_dir)
        if verbose:
            print(f"\nrun folder: {run_dir}")
    return result


def check_writable_folder(folder: Path) -> None:
    """Raise ``OSError`` with a clear message unless ``folder`` is (or can be made) a folder we can
    write files into: it is created, a probe file is written and deleted. A folder created here is
    removed again (the run writes it at the end)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"the run folder {folder} is a file, not a folder; pass --out a folder")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".tinycnn-probe-", dir=folder)
        try:
            os.write(fd, b"tinycnn checks this folder is writable before training\n")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise OSError(err.errno, f"cannot write the run folder {folder} ({err.strerror or err}); "
                                 "choose another with --out") from None
    if created:
        folder.rmdir()


def _run_dir(out, dataset, model_name, seed) -> Path:
    if out is not None:
        return Path(out)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{dataset}-{model_name}-seed{seed}-{stamp}"
    k = 1
    while path.exists():                       # never overwrite an earlier run
        path = Path("runs") / f"{dataset}-{model_name}-seed{seed}-{stamp}-{k}"
        k += 1
    return path


def write_run(run_dir: Path, model: Sequential, result: dict, info, y_test, y_score) -> None:
    """The run folder: model, history, metrics, and the figures (training curves, confusion
    matrix, ROC, and — single-label tasks — the reliability diagram ``calibration.png``)."""
    from . import plot, published      # matplotlib is imported only when figures are drawn
    run_dir.mkdir(parents=True, exist_ok=True)
    model.save(run_dir / "model.npz")
    atomic_write_text(run_dir / "history.json", json.dumps(result["history"], indent=1))
    summary = {k: v for k, v in result.items() if k not in ("history", "run_dir")}
    summary["published"] = {m: {"acc": a, "auc": u} for m, (a, u) in published.PUBLISHED.get(info.name, {}).items()}
    atomic_write_text(run_dir / "metrics.json", json.dumps(summary, indent=1))
    plot.training_curves(result["history"], run_dir / "training_curves.png", best_epoch=result["best_epoch"])
    if info.task.startswith("multi-label"):
        predicted = (y_score > 0.5).astype(int)
        cm = sum(metrics.confusion_matrix(y_test[:, i], predicted[:, i], 2) for i in range(y_test.shape[1]))
        plot.confusion_matrix(cm, ["absent", "present"], run_dir / "confusion_matrix.png",
                              title=f"{info.python_class} test (all labels pooled)")
    else:
        predicted = y_score.argmax(axis=1) if info.task != "binary-class" else (y_score[:, -1] > 0.5).astype(int)
        cm = metrics.confusion_matrix(y_test.reshape(-1), predicted, info.n_classes)
        plot.confusion_matrix(cm, list(info.labels), run_dir / "confusion_matrix.png",
                              title=f"{info.python_class} test")
    plot.roc_curves(info.task, y_test, y_score, list(info.labels), run_dir / "roc_curve.png",
                    title=f"{info.python_class} test ROC")
    if not info.task.startswith("multi-label"):     # calibration of one probability per image
        plot.reliability_diagram(y_test, y_score, path=run_dir / "calibration.png",
                                 title=f"{info.python_class} test calibration")


def run_name(model_name: str, seed) -> str:
    """The ``run`` of a ``tinycnn train`` run's MedMNIST evaluation files: ``tinycnn-deeper-seed0``."""
    return f"tinycnn-{model_name}-seed{seed}"


def write_medmnist_results(folder, flag: str, split: str, labels, y_score, run: str, size: int = 28) -> Path:
    """Write MedMNIST's standard evaluation file of ``y_score`` on a split (atomically) and return
    its path: ``folder/{flag}_{split}_[AUC]{auc:.3f}_[ACC]{acc:.3f}@{run}.csv``, one line
    ``index,score_0,score_1,...`` per image, no header (the format is in this module's docstring).
    For MedMNIST+ images (``size`` 64, 128, 224) the flag carries the official size suffix:
    ``pneumoniamnist_64_test_...csv``, what ``Evaluator(flag, split, size=64)`` writes.

    ``flag``: the dataset's name (``"pneumoniamnist"``); ``split``: ``"train"``, ``"val"`` or
    ``"test"``; ``labels``: the split's labels as stored (``(N, 1)``, or ``(N, L)`` multi-label),
    which with ``y_score`` (``(N, classes)`` or ``(N, L)``) give the official AUC and ACC of the
    file name (:func:`tinycnn.metrics.medmnist_scores`); ``run``: letters, digits, ``-``, ``_``.
    """
    from .datasets import INFO
    if flag not in INFO:
        raise ValueError(f"write_medmnist_results: unknown flag {flag!r}; expected a MedMNIST dataset name, one "
                         f"of {sorted(INFO)}")
    stem = INFO[flag].file(size).stem               # "pneumoniamnist_64" (a size it is offered at, else ValueError)
    if split not in ("train", "val", "test"):
        raise ValueError(f"write_medmnist_results: split must be 'train', 'val' or 'test', got {split!r}")
    if not isinstance(run, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", run):
        raise ValueError(f"write_medmnist_results: run must be a non-empty name of letters, digits, '-' and '_' "
                         f"(the official reader stops at the first '.'), got {run!r}")
    y_score = np.asarray(y_score)
    if y_score.ndim != 2 or y_score.dtype.kind != "f":
        raise ValueError(f"write_medmnist_results: y_score must be float scores of shape (N, classes), got "
                         f"{y_score.dtype} of shape {y_score.shape}")
    scores = metrics.medmnist_scores(INFO[flag].task, labels, y_score)
    name = f"{stem}_{split}_[AUC]{scores['auc']:.3f}_[ACC]{scores['acc']:.3f}@{run}.csv"
    # shortest decimals that read back as the same numbers (float32 scores: as float32)
    text = "".join(f"{i},{','.join(row)}\n" for i, row in enumerate(y_score.astype(str)))
    return atomic_write_text(Path(folder) / name, text)


def with_overrides(recipe: Recipe = DEFAULT_RECIPE, **changes) -> Recipe:
    """The recipe with the given fields changed (``None`` values are ignored)."""
    return replace(recipe, **{k: v for k, v in changes.items() if v is not None})
