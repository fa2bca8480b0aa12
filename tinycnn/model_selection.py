"""Honest evaluation on small data: stratified splits and k-fold cross-validation.

With 546 training images (BreastMNIST) one validation split is a noisy judge; k-fold
cross-validation trains k models, each validated on a different fold, and reports the mean ± std
of the official metrics — the spread is as informative as the mean.

Stratified: every split keeps the class proportions of the whole set (single-label tasks).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .metrics import medmnist_scores


def _class_ids(y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"stratification needs integer class labels of shape (N,) or (N, 1), got {y.dtype} {y.shape}")
    return y


def stratified_split(y, val_fraction: float = 0.2, rng: np.random.Generator | None = None):
    """``(train_idx, val_idx)`` with ``val_fraction`` of each class in the validation part."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    y = _class_ids(y)
    rng = rng or np.random.default_rng()
    train, val = [], []
    for cls in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == cls))
        k = int(round(val_fraction * len(members)))
        val.append(members[:k])
        train.append(members[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def stratified_kfold(y, k: int = 5, rng: np.random.Generator | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` pairs ``(train_idx, val_idx)``; the validation parts partition the data, and each
    class is dealt round-robin over the folds so that every fold has its share."""
    y = _class_ids(y)
    if not isinstance(k, int) or k < 2:
        raise ValueError(f"k must be an int >= 2, got {k!r}")
    counts = np.bincount(y)
    if counts[counts > 0].min() < k:
        raise ValueError(f"k={k} folds need at least {k} samples of every class; the smallest class has "
                         f"{counts[counts > 0].min()}")
    rng = rng or np.random.default_rng()
    fold_of = np.empty(len(y), dtype=np.int64)
    for cls in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == cls))
        fold_of[members] = np.arange(len(members)) % k
    all_idx = np.arange(len(y))
    return [(all_idx[fold_of != f], all_idx[fold_of == f]) for f in range(k)]


def cross_validate(make_model: Callable[[int], object], x, y, task: str, k: int = 5, seed: int = 0,
                   fit_kwargs: dict | None = None) -> dict:
    """Train ``make_model(fold)`` (a compiled tinycnn model) on each of ``k`` stratified folds and
    score it on the held-out fold with the official MedMNIST metrics.

    Returns ``{"folds": [{"acc", "auc"}, ...], "acc": (mean, std), "auc": (mean, std)}``
    (std with ddof=1).
    """
    labels = np.asarray(y)
    folds = stratified_kfold(labels, k, np.random.default_rng(seed))
    results = []
    for fold, (train_idx, val_idx) in enumerate(folds):
        model = make_model(fold)
        model.fit(x[train_idx], labels[train_idx], verbose=0, **(fit_kwargs or {}))
        results.append(medmnist_scores(task, labels[val_idx], model.predict(x[val_idx])))
    summary = {"folds": results}
    for key in ("acc", "auc"):
        values = np.array([r[key] for r in results])
        summary[key] = (float(values.mean()), float(values.std(ddof=1)))
    return summary
