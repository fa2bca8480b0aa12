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
``confusion_matrix.png`` and ``roc_curve.png``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from . import metrics
from .datasets import load, random_shift, standardize, to_float
from .io import atomic_write_text
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
    normalize: bool = True          # standardise with the training set's per-channel mean and std
    dropout: float = 0.0            # Dropout rate before the classifier (0: none)
    weight_decay: float = 0.0       # decoupled weight decay: AdamW instead of Adam when > 0
    class_weight: str | None = None  # "balanced": weight each class's loss by N / (classes · count)
    early_stopping: int | None = None  # patience in epochs on the validation AUC (None: off)
    schedule: str = "cosine"        # learning rate: "none", "step" (×0.1 at 50% and 75%) or "cosine"
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
        if self.schedule != "none":
            found.append(LearningRateScheduler(SCHEDULES[self.schedule](self.learning_rate, self.epochs)))
        if self.early_stopping is not None:
            # restore_best_weights is left to the pipeline, which keeps the best-val-AUC weights anyway
            found.append(EarlyStopping("val_auc", patience=self.early_stopping, mode="max", restore_best_weights=False))
        return found


SCHEDULES = {"none": None, "step": step_decay, "cosine": cosine_decay}


DEFAULT_RECIPE = Recipe()


def preprocess(images: np.ndarray, preprocessing: dict) -> np.ndarray:
    """uint8 images -> the float32 NHWC input a model was trained on (its saved preprocessing)."""
    x = to_float(images)
    if preprocessing.get("mean") is not None:
        x, _, _ = standardize(x, np.asarray(preprocessing["mean"], np.float32),
                              np.asarray(preprocessing["std"], np.float32))
    return x


def targets(labels: np.ndarray, task: str) -> np.ndarray:
    """Labels in the form the loss expects: (N,) class ids, or (N, L) 0/1 flags for multi-label."""
    return labels.astype(np.float32) if task.startswith("multi-label") else labels.reshape(-1).astype(np.int64)


def build_model(recipe: Recipe, info, seed) -> Sequential:
    multilabel = info.task.startswith("multi-label")
    model = MODELS[recipe.model](info.n_classes, input_shape=(28, 28, info.n_channels), seed=seed,
                                 output_activation="sigmoid" if multilabel else "softmax", dropout=recipe.dropout)
    optimizer = AdamW(recipe.learning_rate, weight_decay=recipe.weight_decay) if recipe.weight_decay \
        else Adam(recipe.learning_rate)
    model.compile(optimizer, "binary_crossentropy" if multilabel else "sparse_categorical_crossentropy")
    return model


def score(model: Sequential, x, labels, task) -> tuple[dict, np.ndarray]:
    """Official MedMNIST ACC and AUC of ``model`` on ``(x, labels)``, and the predicted scores."""
    y_score = model.predict(x)
    return metrics.medmnist_scores(task, labels, y_score), y_score


def train(dataset: str = "pneumoniamnist", recipe: Recipe = DEFAULT_RECIPE, seed: int = 0, out=None,
          root=None, verbose: int = 1, write: bool = True) -> dict:
    """Train ``recipe`` on ``dataset`` with ``seed``; returns the run's results (and writes the
    run folder when ``write``). ``out`` defaults to ``runs/<dataset>-<model>-seed<seed>-<time>``."""
    recipe = recipe.check()
    started = time.perf_counter()
    data = load(dataset, root=root)
    info = data.info
    x_train = to_float(data.train.images)
    preprocessing: dict = {"scale": "uint8/255"}
    if recipe.normalize:
        x_train, mean, std = standardize(x_train)
        preprocessing.update(mean=mean.tolist(), std=std.tolist())
    x_val = preprocess(data.val.images, preprocessing)
    x_test = preprocess(data.test.images, preprocessing)
    y_train = targets(data.train.labels, info.task)

    model = build_model(recipe, info, seed)
    best = {"auc": -np.inf, "epoch": 0, "weights": None}

    def keep_best_by_val_auc(model, epoch, logs):
        scores, _ = score(model, x_val, data.val.labels, info.task)
        logs["val_acc"], logs["val_auc"] = scores["acc"], scores["auc"]
        if scores["auc"] > best["auc"]:
            best.update(auc=scores["auc"], epoch=epoch, weights=model.get_weights())

    augment = None
    if recipe.shift:
        augment = lambda xb, rng: random_shift(xb, recipe.shift, rng)  # noqa: E731
    if verbose:
        print(f"tinycnn: training '{recipe.model}' on {info.python_class} ({info.task}, "
              f"{len(x_train)} training images) for {recipe.epochs} epochs, seed {seed}")
    if recipe.class_weight and info.task.startswith("multi-label"):
        raise ValueError("class_weight='balanced' applies to single-label tasks, not to multi-label ones")
    history = model.fit(x_train, y_train, epochs=recipe.epochs, batch_size=recipe.batch_size,
                        verbose=1 if verbose else 0, callbacks=[keep_best_by_val_auc, *recipe.callbacks()],
                        augment=augment, class_weight=recipe.class_weight, sampler=recipe.sampler(info.task))
    if best["weights"] is None:                  # Ctrl-C before the first epoch ended
        raise KeyboardInterrupt
    if model.stop_reason and verbose:
        print(f"{model.stop_reason}: evaluating the best of the {len(history['loss'])} completed epochs")
    model.set_weights(best["weights"])
    val_scores, _ = score(model, x_val, data.val.labels, info.task)
    test_scores, test_score_array = score(model, x_test, data.test.labels, info.task)
    seconds = time.perf_counter() - started

    result = {
        "dataset": info.name, "task": info.task, "seed": seed, "recipe": asdict(recipe),
        "best_epoch": best["epoch"], "val": val_scores, "test": test_scores,
        "history": history, "seconds": seconds, "run_dir": None,
    }
    model.metadata = {"dataset": info.name, "task": info.task, "labels": list(info.labels),
                      "preprocessing": preprocessing, "recipe": asdict(recipe), "seed": seed,
                      "best_epoch": best["epoch"], "val": val_scores, "test": test_scores}
    if verbose:
        print(f"\nbest validation AUC {best['auc']:.3f} at epoch {best['epoch']}; "
              f"test ACC {test_scores['acc']:.3f}, AUC {test_scores['auc']:.3f} ({seconds:.0f} s)\n")
        from . import published
        print(published.comparison_table(info.name, test_scores, ours_label=f"tinycnn {recipe.model}"))
    if write:
        run_dir = _run_dir(out, info.name, recipe.model, seed)
        write_run(run_dir, model, result, info, data.test.labels, test_score_array)
        result["run_dir"] = str(run_dir)
        if verbose:
            print(f"\nrun folder: {run_dir}")
    return result


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
    """The run folder: model, history, metrics, and three figures."""
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


def with_overrides(recipe: Recipe = DEFAULT_RECIPE, **changes) -> Recipe:
    """The recipe with the given fields changed (``None`` values are ignored)."""
    return replace(recipe, **{k: v for k, v in changes.items() if v is not None})
