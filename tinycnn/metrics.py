"""Evaluation metrics: ROC AUC, ROC curve, accuracy, confusion matrix, the MedMNIST scores, and
the clinical evaluation of a classifier (operating points, calibration, bootstrap intervals).

Everything here is plain NumPy, written to be read. The formulas are stated in the docstrings so
that the code can be checked against them line by line.

ROC AUC as a rank statistic
---------------------------
Take P positive samples with scores ``p_1..p_P`` and N negative samples with scores ``n_1..n_N``.
The area under the ROC curve is the probability that a random positive outscores a random
negative, counting a tie as half a win (the Mann–Whitney U statistic divided by P·N)::

    AUC = ( #{(i, j): p_i > n_j}  +  0.5 · #{(i, j): p_i == n_j} ) / (P · N)

Counting all P·N pairs costs O(P·N). Ranks give the same number in O((P+N) log(P+N)): rank all
P+N scores together from 1 (smallest) to P+N, giving each group of tied scores the *average* of
the ranks it spans. If ``R_pos`` is the sum of the positives' ranks, then::

    U   = R_pos - P·(P+1)/2
    AUC = U / (P·N)

(Each positive's rank counts 1 for itself, 1 for every sample below it and 1/2 for every other
sample tied with it; subtracting P·(P+1)/2 removes the positive-vs-positive part, which is
exactly 1 + 2 + ... + P.) The same number is the trapezoid area under the ROC curve returned by
:func:`roc_curve`. AUC is undefined when P = 0 or N = 0, and this module raises ``ValueError``
instead of returning a made-up number.

The MedMNIST scores
-------------------
:func:`medmnist_scores` reproduces ``getAUC`` and ``getACC`` of the official ``medmnist``
package (``medmnist/evaluator.py``, checked against release 3.0.2), which define the ACC and AUC
reported in the MedMNIST v2 paper:

    Jiancheng Yang, Rui Shi, Donglai Wei, Zequan Liu, Lin Zhao, Bilian Ke, Hanspeter Pfister,
    Bingbing Ni. "MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D biomedical
    image classification." Scientific Data 10, 41 (2023).

With ``t`` the threshold (0.5 by default) and ``mean`` over samples:

* ``"binary-class"``: the positive score is ``s = y_score[:, -1]`` (the last column; a 1-D score
  is taken as the positive score). ``ACC = mean((s > t) == y)``, with a strict ``>``.
  ``AUC = AUC(y, s)``.
* ``"multi-class"`` and ``"ordinal-regression"`` (the official code treats them alike):
  ``y_score`` has one column per class. ``ACC = mean(argmax_c y_score[:, c] == y)``; a tie in the
  argmax goes to the lowest class index, as with ``np.argmax``.
  ``AUC = (1/C) · sum_c AUC(y == c, y_score[:, c])``: the unweighted (macro) mean of the
  one-vs-rest AUCs over all C columns of ``y_score``.
* ``"multi-label, binary-class"``: ``y_true`` and ``y_score`` are (N, L).
  ``ACC = (1/L) · sum_l mean((y_score[:, l] > t) == y_true[:, l])``;
  ``AUC = (1/L) · sum_l AUC(y_true[:, l], y_score[:, l])``.
  (The first MedMNIST release predicted positive when ``score >= t`` here; the current code,
  followed here, uses ``score > t`` for both binary and multi-label ACC.)

Where the official code gives no usable number, this module raises ``ValueError``:

* A class absent from ``y_true`` (multi-class, ordinal: the macro mean runs over every column
  of ``y_score``, so a class with no sample has a one-vs-rest AUC with P = 0), or a label column
  (multi-label) or binary ``y_true`` holding only 0s or only 1s. Officially scikit-learn's
  ``roc_auc_score`` then either raises ``ValueError`` (scikit-learn up to 1.5) or warns and
  returns NaN, which turns the whole mean into NaN (1.6 on). We raise, naming the class or
  label, because no number would be right. (Dropping the class from the mean, as some
  re-implementations do, would silently change the definition.)
* Class labels outside ``[0, C)``. The official code silently counts them as a negative for
  every class, which gives a meaningless AUC and a wrong ACC.
* A binary ``y_score`` with more than two columns (the official code would silently use the
  last one).

Clinical evaluation
-------------------
A ranking (AUC) is not yet a test a clinician can use. The functions after the MedMNIST scores
turn scores into decisions and say how far the numbers can be trusted.

*Operating point.* A binary classifier calls a sample positive when its positive-class score
reaches a threshold: ``predicted positive  <=>  s >= t`` (the same ``>=`` as :func:`roc_curve`;
the official MedMNIST ACC uses ``s > 0.5``). With TP, FP, TN, FN counted at ``t``::

    sensitivity = TP / (TP + FN)      specificity = TN / (TN + FP)
    PPV         = TP / (TP + FP)      NPV         = TN / (TN + FN)

A ratio whose denominator is 0 is undefined and given as NaN (e.g. PPV when nothing is called
positive). The threshold is chosen on the *validation* split (:func:`threshold_for_sensitivity`,
:func:`youden_threshold`) and then applied, unchanged, to the test split.

*Prevalence.* Sensitivity and specificity do not depend on how common the disease is; PPV and
NPV do. With prevalence ``pi``, Bayes' rule gives (:func:`ppv_npv_at_prevalence`)::

    PPV = se·pi / (se·pi + (1 - sp)·(1 - pi))
    NPV = sp·(1 - pi) / (sp·(1 - pi) + (1 - se)·pi)

At the test split's own prevalence these equal the counted PPV and NPV exactly.

*Calibration* (Guo, Pleiss, Sun, Weinberger, "On Calibration of Modern Neural Networks", ICML
2017). Each sample has a confidence ``c_i`` in [0, 1] and an outcome ``o_i`` in {0, 1}. Split
[0, 1] into M equal-width bins ``B_m = ((m-1)/M, m/M]``, m = 1..M (``c = 0`` joins B_1); with
``conf(B_m)`` the mean confidence and ``acc(B_m)`` the mean outcome of the samples in bin m::

    ECE = sum_m  |B_m| / N · |acc(B_m) - conf(B_m)|      (empty bins contribute nothing)

Two choices of (confidence, outcome), ``kind``:

* ``"positive"`` (the default for binary tasks): ``c_i = p_i(positive)``, ``o_i = y_i``. A bin
  compares the predicted probability of disease with the observed frequency of disease; this is
  the usual calibration curve of a binary risk score.
* ``"top-label"`` (the default for C > 2 classes, Guo et al.'s definition): ``c_i = max_k p_ik``,
  ``o_i = [argmax_k p_ik == y_i]`` (a tie in the argmax goes to the lowest class index).

*Bootstrap confidence intervals* (:func:`bootstrap_ci`, the percentile method). From
``rng = numpy.random.default_rng(seed)``, each resample is ``idx = rng.integers(0, N, size=N)``
(N draws with replacement) and the metric is computed on ``(y_true[idx], y_score[idx])``. A
resample that lacks a class present in ``y_true`` (for multi-label: a value of a label column) is
*redrawn* — discarded, and the next draw from the same generator takes its place — so that
exactly ``resamples`` metric values are collected; how many were redrawn is reported. The
interval is the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of those values (linear
interpolation between order statistics, numpy's default). It measures the sampling noise of the
test set only: not the variation between training runs, and not a different population.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

__all__ = [
    "TASKS",
    "auc",
    "roc_curve",
    "accuracy",
    "confusion_matrix",
    "medmnist_scores",
    "threshold_for_sensitivity",
    "youden_threshold",
    "binary_operating_point",
    "ppv_npv_at_prevalence",
    "reliability_curve",
    "expected_calibration_error",
    "per_class_scores",
    "BootstrapCI",
    "bootstrap_ci",
    "clinical_report",
    "format_clinical_report",
]

#: The task strings used in MedMNIST's ``info.py``.
TASKS = (
    "binary-class",
    "multi-class",
    "multi-label, binary-class",
    "ordinal-regression",
)


# --------------------------------------------------------------------------------------------
# Input checking. Every message names the argument, what was expected and what was found.
# --------------------------------------------------------------------------------------------


def _as_numeric(a, name: str) -> np.ndarray:
    """``a`` as an array of bools, integers or reals (not strings, objects or complex numbers)."""
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"{name} must hold numbers (bool, int or float); got an array of dtype {arr.dtype}"
        )
    return arr


def _as_column(a, name: str) -> np.ndarray:
    """``a`` as a 1-D array, accepting shape (N,) or (N, 1) (MedMNIST stores labels as (N, 1))."""
    arr = _as_numeric(a, name)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must have shape (N,) or (N, 1); got shape {arr.shape}")
    return arr


def _check_not_empty(arr: np.ndarray, name: str) -> None:
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); at least one sample is needed")


def _check_same_length(y_true: np.ndarray, other: np.ndarray, other_name: str, y_name: str = "y_true") -> None:
    if y_true.shape[0] != other.shape[0]:
        raise ValueError(
            f"{y_name} and {other_name} must have the same number of samples; "
            f"{y_name} has {y_true.shape[0]} (shape {y_true.shape}), "
            f"{other_name} has {other.shape[0]} (shape {other.shape})"
        )


def _check_finite_scores(scores: np.ndarray, name: str) -> np.ndarray:
    """``scores`` as float64, refusing NaN and infinities (they have no meaningful rank)."""
    scores = scores.astype(np.float64)
    bad = ~np.isfinite(scores)
    if bad.any():
        raise ValueError(
            f"{name} must be finite; found {int(bad.sum())} non-finite value(s) "
            f"(NaN or inf), e.g. {scores[bad][:3].tolist()}"
        )
    return scores


def _check_binary_labels(y: np.ndarray, name: str) -> np.ndarray:
    """``y`` as an int64 array of 0/1, accepting bool, int or float arrays holding only 0 and 1."""
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        found = np.unique(y[bad])[:5].tolist()
        raise ValueError(f"{name} must contain only 0/1 labels; found value(s) {found}")
    return y.astype(np.int64)


def _check_class_labels(y: np.ndarray, name: str, n_classes: int | None = None) -> np.ndarray:
    """``y`` as int64 class indices: whole numbers >= 0, and < ``n_classes`` when it is given."""
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            raise ValueError(
                f"{name} must hold finite whole-number class labels; found NaN or inf"
            )
        fractional = y != np.round(y)
        if fractional.any():
            raise ValueError(
                f"{name} must hold whole-number class labels; found {y[fractional][:3].tolist()}"
            )
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError(f"{name} must hold class labels >= 0; found {int(y.min())}")
    if n_classes is not None and y.size and y.max() >= n_classes:
        raise ValueError(
            f"{name} has class label {int(y.max())}, out of range [0, {n_classes}) "
            f"for {n_classes} classes"
        )
    return y


def _check_both_classes(y01: np.ndarray, what: str) -> None:
    """AUC needs at least one positive and one negative: with P = 0 or N = 0 it is 0/0."""
    n_pos = int(y01.sum())
    n_neg = int(y01.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        present = "positive (1)" if n_neg == 0 else "negative (0)"
        raise ValueError(
            f"ROC AUC is undefined {what}: only one class is present "
            f"(all {y01.size} samples are {present}); it needs at least one positive and "
            f"one negative sample"
        )


def _binary_inputs(y_true, y_score, y_name: str = "y_true", s_name: str = "y_score") -> tuple[np.ndarray, np.ndarray]:
    """Validated (labels as int64 0/1, scores as float64), both 1-D of the same length, named in
    errors as the caller's arguments are named."""
    y = _as_column(y_true, y_name)
    s = _as_column(y_score, s_name)
    _check_not_empty(y, y_name)
    _check_not_empty(s, s_name)
    _check_same_length(y, s, s_name, y_name)
    s = _check_finite_scores(s, s_name)
    y = _check_binary_labels(y, y_name)
    return y, s


# --------------------------------------------------------------------------------------------
# Binary ROC AUC and the ROC curve
# --------------------------------------------------------------------------------------------


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x`` (smallest gets 1), each group of equal values sharing its mean rank.

    Example: ``x = [0.3, 0.1, 0.3, 0.2]`` sorts to ``[0.1, 0.2, 0.3, 0.3]`` at positions
    1, 2, 3, 4; the two 0.3 share (3 + 4) / 2 = 3.5, so the ranks are ``[3.5, 1, 3.5, 2]``.
    """
    n = x.size
    order = np.argsort(x, kind="mergesort")
    x_sorted = x[order]
    # A new group of tied values starts wherever the sorted value changes.
    starts_group = np.concatenate(([True], x_sorted[1:] != x_sorted[:-1]))
    group_of = np.cumsum(starts_group) - 1  # group number of each sorted position
    first = np.flatnonzero(starts_group)  # 0-based first position of each group
    last = np.concatenate((first[1:], [n])) - 1  # 0-based last position of each group
    mean_rank = (first + last) / 2.0 + 1.0  # mean of the 1-based ranks first+1 .. last+1
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = mean_rank[group_of]
    return ranks


def _auc_unchecked(y01: np.ndarray, scores: np.ndarray) -> float:
    """Mann–Whitney AUC of validated inputs: ``(R_pos - P(P+1)/2) / (P·N)``."""
    n_pos = int(y01.sum())
    n_neg = y01.size - n_pos
    rank_sum_pos = _average_ranks(scores)[y01 == 1].sum()
    u = rank_sum_pos - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def auc(y_true, y_score) -> float:
    """Binary ROC AUC, computed as the Mann–Whitney rank statistic with ties counted as half.

    ``AUC = (#pairs with positive > negative + 0.5 · #pairs with positive == negative) / (P·N)``,
    computed from average ranks as ``(R_pos - P·(P+1)/2) / (P·N)`` (see the module docstring).

    Parameters
    ----------
    y_true : array of shape (N,) or (N, 1)
        Labels, 0 (negative) or 1 (positive); bool, int or float arrays are accepted.
    y_score : array of shape (N,) or (N, 1)
        Finite real scores; a higher score means "more likely positive".

    Returns
    -------
    float in [0, 1]. 0.5 is chance level; 1 means every positive outscores every negative.

    Raises
    ------
    ValueError
        If the shapes or lengths differ, an array is empty, a score is NaN or infinite, a label is
        not 0/1, or only one class is present (AUC is then undefined).
    """
    y, s = _binary_inputs(y_true, y_score)
    _check_both_classes(y, "for y_true")
    return _auc_unchecked(y, s)


def roc_curve(y_true, y_score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points of the ROC curve, one per distinct score, for plotting.

    Predict "positive" when ``score >= threshold``. For each threshold ``t``::

        TPR(t) = #{positives with score >= t} / P      (true-positive rate, y axis)
        FPR(t) = #{negatives with score >= t} / N      (false-positive rate, x axis)

    The thresholds are the distinct scores in decreasing order, preceded by ``+inf`` (nothing
    predicted positive), so the curve starts at (0, 0) and ends at (1, 1) (the lowest score: all
    predicted positive). Samples with equal scores move together, giving a diagonal segment;
    this is why the trapezoid area under the curve equals :func:`auc` with ties counted half.

    Parameters and errors are as for :func:`auc`.

    Returns
    -------
    fpr, tpr : float64 arrays of shape (K + 1,), non-decreasing, for K distinct scores.
    thresholds : float64 array of shape (K + 1,), strictly decreasing, ``thresholds[0] = inf``.
    """
    y, s = _binary_inputs(y_true, y_score)
    _check_both_classes(y, "for y_true")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos

    order = np.argsort(-s, kind="mergesort")  # highest score first
    s_desc = s[order]
    y_desc = y[order]
    # Lowering the threshold past each sorted sample adds it to the predicted positives.
    true_pos = np.cumsum(y_desc)
    false_pos = np.cumsum(1 - y_desc)
    # Keep only the last sample of each group of equal scores: a threshold cannot split a tie.
    last_of_group = np.concatenate((s_desc[1:] != s_desc[:-1], [True]))

    tpr = np.concatenate(([0.0], true_pos[last_of_group] / n_pos))
    fpr = np.concatenate(([0.0], false_pos[last_of_group] / n_neg))
    thresholds = np.concatenate(([np.inf], s_desc[last_of_group]))
    return fpr, tpr, thresholds


# --------------------------------------------------------------------------------------------
# Accuracy and the confusion matrix
# --------------------------------------------------------------------------------------------


def accuracy(y_true, y_pred) -> float:
    """Fraction of predictions equal to the truth: ``mean(y_true == y_pred)``.

    Works element-wise on arrays of any shape (a (N, L) multi-label array gives the mean over
    all N·L entries). A (N, 1) array is treated as (N,), so MedMNIST's (N, 1) labels may be
    compared with (N,) predictions directly.

    Raises
    ------
    ValueError
        If the shapes differ or the arrays are empty.
    """
    t = _as_numeric(y_true, "y_true")
    p = _as_numeric(y_pred, "y_pred")
    if t.ndim == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if t.shape != p.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape; got y_true {t.shape}, y_pred {p.shape}"
        )
    _check_not_empty(t, "y_true")
    return float(np.mean(t == p))


def confusion_matrix(y_true, y_pred, n_classes: int | None = None) -> np.ndarray:
    """Count matrix ``M`` with ``M[i, j]`` = number of samples of true class i predicted as j.

    The diagonal holds the correct predictions, so ``trace(M) / M.sum()`` is the accuracy; row
    ``i`` sums to the number of samples of class ``i``.

    Parameters
    ----------
    y_true, y_pred : arrays of shape (N,) or (N, 1)
        Class indices: whole numbers >= 0 (integer arrays, or float arrays of whole numbers).
    n_classes : int, optional
        Size of the matrix. Default: ``max(y_true.max(), y_pred.max()) + 1``. Give it so that a
        class that happens not to occur still gets its row and column.

    Returns
    -------
    int64 array of shape (n_classes, n_classes), indexed ``[true, pred]``.

    Raises
    ------
    ValueError
        If the lengths differ, the arrays are empty, a label is negative or not a whole number,
        a label is >= ``n_classes``, or ``n_classes`` is not a positive integer.
    """
    t = _as_column(y_true, "y_true")
    p = _as_column(y_pred, "y_pred")
    _check_not_empty(t, "y_true")
    _check_same_length(t, p, "y_pred")
    if n_classes is not None:
        if (
            isinstance(n_classes, (bool, np.bool_))
            or not isinstance(n_classes, numbers.Integral)
            or n_classes < 1
        ):
            raise ValueError(f"n_classes must be a positive integer; got {n_classes!r}")
        n_classes = int(n_classes)
    t = _check_class_labels(t, "y_true", n_classes)
    p = _check_class_labels(p, "y_pred", n_classes)
    if n_classes is None:
        n_classes = int(max(t.max(), p.max())) + 1
    # Each (true, pred) pair gets its own cell number true * n_classes + pred; count the cells.
    counts = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes).astype(np.int64)


# --------------------------------------------------------------------------------------------
# The official MedMNIST scores
# --------------------------------------------------------------------------------------------


def _check_task(task, call: str | None = None) -> str:
    """``task`` if it is one of :data:`TASKS`, else a ``ValueError`` that names the valid tasks
    and says briefly what it got. An array where the task should be usually means the arguments
    are in the order of the official ``medmnist`` functions (``getAUC(y_true, y_score, task)``),
    which take the task last; ``call`` then shows tinycnn's order."""
    if isinstance(task, str) and task in TASKS:
        return task
    valid = ", ".join(repr(t) for t in TASKS)
    if isinstance(task, str):
        raise ValueError(f"unknown task {task!r}; valid tasks are: {valid}")
    if isinstance(task, (np.ndarray, list, tuple)):
        got = (f"an array of shape {task.shape}" if isinstance(task, np.ndarray)
               else f"a {type(task).__name__} of {len(task)} items")
        hint = f" (the task comes first: {call})" if call else ""
    else:
        got, hint = f"{type(task).__name__} {reprlib.repr(task)}", ""
    raise ValueError(f"task must be one of {valid}; got {got}{hint}")


def _check_threshold(threshold) -> float:
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, numbers.Real):
        raise ValueError(f"threshold must be a real number; got {threshold!r}")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite; got {threshold!r}")
    return float(threshold)


def _binary_class_scores(y_true, y_score, threshold: float) -> dict[str, float]:
    s = _as_numeric(y_score, "y_score")
    if s.ndim == 2 and s.shape[1] in (1, 2):
        s = s[:, -1]  # the last column is the positive class's score
    if s.ndim != 1:
        raise ValueError(
            "for task 'binary-class', y_score must have shape (N, 2), (N, 1) or (N,); "
            f"got shape {s.shape}"
        )
    y, s = _binary_inputs(y_true, s)
    _check_both_classes(y, "for task 'binary-class' (y_true)")
    acc = np.mean((s > threshold) == (y == 1))
    return {"acc": float(acc), "auc": _auc_unchecked(y, s)}


def _multi_class_scores(task: str, y_true, y_score) -> dict[str, float]:
    s = _as_numeric(y_score, "y_score")
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(
            f"for task {task!r}, y_score must have shape (N, C) with one column per class, "
            f"C >= 2; got shape {s.shape}"
        )
    y = _as_column(y_true, "y_true")
    _check_not_empty(y, "y_true")
    _check_same_length(y, s, "y_score")
    s = _check_finite_scores(s, "y_score")
    n_classes = s.shape[1]
    y = _check_class_labels(y, "y_true", n_classes)

    acc = np.mean(np.argmax(s, axis=1) == y)

    # One-vs-rest: class c against all others, scored by column c; then the unweighted mean.
    per_class = []
    for c in range(n_classes):
        is_c = (y == c).astype(np.int64)
        if is_c.sum() == 0:
            raise ValueError(
                f"ROC AUC is undefined for class {c}: class {c} does not occur in y_true, so its "
                f"one-vs-rest AUC has no positive sample (task {task!r} averages the AUC over "
                f"all {n_classes} columns of y_score, so every class must occur in y_true)"
            )
        if is_c.sum() == is_c.size:
            raise ValueError(
                f"ROC AUC is undefined for class {c}: every sample of y_true is class {c}, so "
                f"its one-vs-rest AUC has no negative sample (only one class is present)"
            )
        per_class.append(_auc_unchecked(is_c, s[:, c]))
    return {"acc": float(acc), "auc": float(np.mean(per_class))}


def _multi_label_scores(y_true, y_score, threshold: float) -> dict[str, float]:
    task = "multi-label, binary-class"
    y = _as_numeric(y_true, "y_true")
    s = _as_numeric(y_score, "y_score")
    if y.ndim != 2:
        raise ValueError(f"for task {task!r}, y_true must have shape (N, L); got shape {y.shape}")
    if s.ndim != 2:
        raise ValueError(f"for task {task!r}, y_score must have shape (N, L); got shape {s.shape}")
    if y.shape != s.shape:
        raise ValueError(
            f"for task {task!r}, y_true and y_score must have the same shape (N, L); "
            f"got y_true {y.shape}, y_score {s.shape}"
        )
    _check_not_empty(y, "y_true")
    s = _check_finite_scores(s, "y_score")
    y = _check_binary_labels(y, "y_true")

    n_labels = y.shape[1]
    per_label_acc = []
    per_label_auc = []
    for j in range(n_labels):
        per_label_acc.append(np.mean((s[:, j] > threshold) == (y[:, j] == 1)))
        _check_both_classes(y[:, j], f"for label {j} of task {task!r}")
        per_label_auc.append(_auc_unchecked(y[:, j], s[:, j]))
    return {"acc": float(np.mean(per_label_acc)), "auc": float(np.mean(per_label_auc))}


def medmnist_scores(task: str, y_true, y_score, threshold: float = 0.5) -> dict[str, float]:
    """ACC and AUC exactly as the official MedMNIST evaluator defines them for ``task``.

    See the module docstring for the formulas and for where this function raises instead of
    returning the official NaN or a silently wrong number.

    Parameters
    ----------
    task : str
        One of :data:`TASKS`: ``"binary-class"``, ``"multi-class"``,
        ``"multi-label, binary-class"`` or ``"ordinal-regression"`` (as in MedMNIST's info.py).
    y_true : array
        Multi-label: (N, L) of 0/1. Otherwise (N,) or (N, 1) class indices (binary: 0/1).
    y_score : array
        Binary: (N, 2) (positive score in the last column), or (N,) / (N, 1) positive scores.
        Multi-class / ordinal: (N, C), one column per class. Multi-label: (N, L).
    threshold : float
        Decision threshold for binary and multi-label ACC: predicted positive iff
        ``score > threshold`` (strictly greater, as in the official code). Not used for
        multi-class and ordinal-regression, whose ACC is an argmax (also as officially).

    Returns
    -------
    ``{"acc": float, "auc": float}``

    Raises
    ------
    ValueError
        For an unknown task, wrong shapes, non-finite scores or threshold, labels that are not
        0/1 (binary, multi-label) or not in ``[0, C)`` (multi-class, ordinal), and when a class or
        label has no positive or no negative sample (its AUC is undefined).
    """
    _check_task(task, "medmnist_scores(task, y_true, y_score)")
    threshold = _check_threshold(threshold)
    if task == "binary-class":
        return _binary_class_scores(y_true, y_score, threshold)
    if task == "multi-label, binary-class":
        return _multi_label_scores(y_true, y_score, threshold)
    return _multi_class_scores(task, y_true, y_score)


# --------------------------------------------------------------------------------------------
# Clinical evaluation: input checks shared by the functions below
# --------------------------------------------------------------------------------------------


def _check_real(value, name: str) -> float:
    """``value`` as a finite float (bools are refused: ``True`` is not a probability)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value!r}")
    return float(value)


def _check_fraction(value, name: str, *, allow_zero: bool = True, allow_one: bool = True) -> float:
    """A real number in [0, 1] (or (0, 1], [0, 1), (0, 1) as asked)."""
    value = _check_real(value, name)
    low_ok = value > 0 or (allow_zero and value == 0)
    high_ok = value < 1 or (allow_one and value == 1)
    if not (low_ok and high_ok):
        interval = ("[" if allow_zero else "(") + "0, 1" + ("]" if allow_one else ")")
        raise ValueError(f"{name} must be in {interval}; got {value!r}")
    return value


def _check_count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value!r}")
    return int(value)


def _positive_column(y_score, name: str) -> np.ndarray:
    """The positive-class score: a (N,) or (N, 1) array as it is, the last column of (N, 2)."""
    s = _as_numeric(y_score, name)
    if s.ndim == 2 and s.shape[1] in (1, 2):
        s = s[:, -1]
    if s.ndim != 1:
        raise ValueError(
            f"{name} must hold one positive-class score per sample: shape (N,), (N, 1) or "
            f"(N, 2) (the last column is the positive class); got shape {s.shape}"
        )
    return s


def _binary_pair(y_true, y_score, y_name: str, s_name: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_binary_inputs`, where the scores may also be (N, 2) class probabilities (the last
    column is the positive class)."""
    return _binary_inputs(y_true, _positive_column(y_score, s_name), y_name, s_name)


def _check_unit_interval(p: np.ndarray, name: str) -> None:
    bad = (p < 0) | (p > 1)
    if bad.any():
        raise ValueError(
            f"{name} must hold probabilities in [0, 1]; found {int(bad.sum())} value(s) outside, "
            f"e.g. {p[bad][:3].tolist()} (pass probabilities, e.g. model.predict(x), not logits)"
        )


# --------------------------------------------------------------------------------------------
# Operating points of a binary classifier
# --------------------------------------------------------------------------------------------


def threshold_for_sensitivity(y_val, p_val, sensitivity: float = 0.95) -> float:
    """The largest threshold ``t`` with sensitivity >= ``sensitivity`` on ``(y_val, p_val)``.

    Decision rule: positive iff ``p >= t``. Sensitivity ``TPR(t) = #{positives with p >= t} / P``
    only grows as ``t`` falls, so the answer is the highest ``t`` with ``TPR(t) >= sensitivity``.
    It is always one of the positive samples' scores: between two consecutive positive scores
    TPR does not change, and the highest ``t`` of that stretch is the upper score itself. The
    largest such threshold calls as few samples positive as the target allows, which makes the
    specificity as high as it can be at that sensitivity (on these data).

    Choose ``t`` on the validation split and apply it unchanged to the test split; its
    sensitivity there is whatever it is — that is the number to report.

    Parameters
    ----------
    y_val : (N,) or (N, 1) 0/1 labels, at least one of them 1.
    p_val : (N,), (N, 1) positive-class scores, or (N, 2) class probabilities (last column used).
    sensitivity : the target, in (0, 1].

    Returns
    -------
    float, the threshold (a value of ``p_val``).
    """
    y, s = _binary_pair(y_val, p_val, "y_val", "p_val")
    target = _check_fraction(sensitivity, "sensitivity", allow_zero=False)
    positives = np.sort(s[y == 1])                          # ascending
    n_pos = positives.size
    if n_pos == 0:
        raise ValueError("y_val has no positive (1) sample, so sensitivity is undefined")
    candidates = np.unique(positives)[::-1]                  # distinct positive scores, high first
    # true positives at threshold t: the positives not below t
    true_pos = n_pos - np.searchsorted(positives, candidates, side="left")
    reached = true_pos / n_pos >= target
    return float(candidates[np.argmax(reached)])             # the first (highest) that reaches it


def youden_threshold(y_val, p_val) -> float:
    """The threshold that maximises Youden's J = sensitivity + specificity − 1 = TPR − FPR.

    Decision rule: positive iff ``p >= t``; the candidates are the distinct values of ``p_val``
    (the finite thresholds of :func:`roc_curve`). J is the vertical distance of an ROC point above
    the chance diagonal. A tie goes to the largest threshold (fewest samples called positive).

    Parameters are as for :func:`threshold_for_sensitivity`; both classes must occur in ``y_val``.
    """
    y, s = _binary_pair(y_val, p_val, "y_val", "p_val")
    _check_both_classes(y, "for y_val (Youden's J needs both sensitivity and specificity)")
    thresholds = np.unique(s)[::-1]                          # the candidates, largest first
    positives, negatives = np.sort(s[y == 1]), np.sort(s[y == 0])
    P, N = len(positives), len(negatives)
    tp = P - np.searchsorted(positives, thresholds, side="left")   # positives with p >= t
    fp = N - np.searchsorted(negatives, thresholds, side="left")   # negatives with p >= t
    # J = tp/P - fp/N. Compared as the integer tp·N - fp·P (J times P·N): in floats, equal J's
    # can differ in the last bit (5/9 - 1/9 > 4/9 - 0/9), and a tie must go to the largest t.
    j_times_pn = tp * N - fp * P
    return float(thresholds[np.argmax(j_times_pn)])          # argmax: first = largest threshold


def _ratio(num: int, den: int) -> float:
    return float(num / den) if den else float("nan")


def binary_operating_point(y_true, y_score, threshold: float) -> dict:
    """Counts and rates of a binary classifier that calls ``p >= threshold`` positive.

    Parameters
    ----------
    y_true : (N,) or (N, 1) 0/1 labels.
    y_score : (N,), (N, 1) positive-class scores, or (N, 2) class probabilities (last column).
    threshold : a finite real number.

    Returns
    -------
    dict with ``threshold``, ``n``, ``positives``, ``negatives``, ``tp``, ``fp``, ``tn``, ``fn``
    (ints) and ``sensitivity`` = TP/(TP+FN), ``specificity`` = TN/(TN+FP), ``ppv`` = TP/(TP+FP),
    ``npv`` = TN/(TN+FN), ``accuracy`` = (TP+TN)/N and ``prevalence`` = (TP+FN)/N (floats; NaN
    where the denominator is 0, e.g. PPV when no sample is called positive).
    """
    y, s = _binary_pair(y_true, y_score, "y_true", "y_score")
    threshold = _check_real(threshold, "threshold")
    called = s >= threshold
    truth = y == 1
    tp = int(np.sum(called & truth))
    fp = int(np.sum(called & ~truth))
    tn = int(np.sum(~called & ~truth))
    fn = int(np.sum(~called & truth))
    n = y.size
    return {
        "threshold": threshold,
        "n": n, "positives": tp + fn, "negatives": tn + fp,
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "accuracy": _ratio(tp + tn, n),
        "prevalence": _ratio(tp + fn, n),
    }


def ppv_npv_at_prevalence(sensitivity, specificity, prevalence):
    """PPV and NPV of a test with this sensitivity and specificity where the disease has this
    prevalence, by Bayes' rule::

        PPV = P(disease | positive) = se·pi / (se·pi + (1 − sp)·(1 − pi))
        NPV = P(healthy | negative) = sp·(1 − pi) / (sp·(1 − pi) + (1 − se)·pi)

    The inputs may be numbers or arrays (they broadcast, e.g. a whole range of prevalences).
    A 0/0 (e.g. PPV of a test that never calls anyone positive: se = 0 and sp = 1) is NaN.

    Returns
    -------
    ``(ppv, npv)``: two floats, or two arrays when any input is an array.
    """
    arrays = []
    for value, name in ((sensitivity, "sensitivity"), (specificity, "specificity"),
                        (prevalence, "prevalence")):
        arr = _as_numeric(value, name)
        if arr.dtype.kind == "b":
            raise TypeError(f"{name} must be a real number or an array of them; got booleans")
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite")
        _check_unit_interval(arr, name)
        arrays.append(arr)
    se, sp, pi = np.broadcast_arrays(*arrays)
    with np.errstate(invalid="ignore", divide="ignore"):
        true_pos = se * pi                       # P(positive and diseased)
        false_pos = (1 - sp) * (1 - pi)          # P(positive and healthy)
        true_neg = sp * (1 - pi)                 # P(negative and healthy)
        false_neg = (1 - se) * pi                # P(negative and diseased)
        ppv = np.where(true_pos + false_pos > 0, true_pos / (true_pos + false_pos), np.nan)
        npv = np.where(true_neg + false_neg > 0, true_neg / (true_neg + false_neg), np.nan)
    if ppv.ndim == 0:
        return float(ppv), float(npv)
    return ppv, npv


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------

CALIBRATION_KINDS = ("positive", "top-label")


def _confidence_and_outcome(y_true, y_prob, kind) -> tuple[np.ndarray, np.ndarray, str]:
    """(confidence c_i, outcome o_i, kind) as defined in the module docstring."""
    p = _as_numeric(y_prob, "y_prob")
    if p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    if p.ndim not in (1, 2) or (p.ndim == 2 and p.shape[1] < 2):
        raise ValueError(
            "y_prob must be (N,) positive-class probabilities or (N, C) class probabilities "
            f"with C >= 2; got shape {p.shape}"
        )
    y = _as_column(y_true, "y_true")
    _check_not_empty(y, "y_true")
    _check_same_length(y, p, "y_prob")
    p = _check_finite_scores(p, "y_prob")
    _check_unit_interval(p, "y_prob")
    binary = p.ndim == 1 or p.shape[1] == 2
    if kind is None:
        kind = "positive" if binary else "top-label"
    if kind not in CALIBRATION_KINDS:
        raise ValueError(f"kind must be one of {CALIBRATION_KINDS} or None; got {kind!r}")
    if p.ndim == 2:
        row_sums = p.sum(axis=1)
        off = np.abs(row_sums - 1) > 1e-3
        if off.any():
            raise ValueError(
                f"each row of y_prob must sum to 1 (class probabilities); {int(off.sum())} row(s) "
                f"do not, e.g. sums {row_sums[off][:3].tolist()}"
            )
    if kind == "positive":
        if not binary:
            raise ValueError(
                f"kind='positive' needs a binary task (y_prob of shape (N,) or (N, 2)); got "
                f"{p.shape[1]} classes — use kind='top-label'"
            )
        y = _check_binary_labels(y, "y_true")
        confidence = p if p.ndim == 1 else p[:, 1]
        return confidence, y.astype(np.float64), kind
    # top-label
    probs = np.stack([1 - p, p], axis=1) if p.ndim == 1 else p
    y = _check_class_labels(y, "y_true", probs.shape[1])
    predicted = np.argmax(probs, axis=1)
    confidence = probs[np.arange(len(y)), predicted]
    return confidence, (predicted == y).astype(np.float64), kind


def reliability_curve(y_true, y_prob, bins: int = 10, kind: str | None = None) -> dict:
    """Per-bin mean confidence, observed accuracy and count: the data of a reliability diagram.

    Bins are equal-width on [0, 1]: ``edges[m] = m / bins`` for m = 0..bins, and bin m holds
    the samples with ``edges[m] < c <= edges[m + 1]`` (``c = 0`` goes to bin 0). See the module
    docstring for the confidence ``c`` and outcome of each ``kind``.

    Parameters
    ----------
    y_true : (N,) or (N, 1) class labels (0/1 for ``kind="positive"``).
    y_prob : (N,) positive-class probabilities (binary), or (N, C) class probabilities whose
        rows sum to 1 (e.g. ``model.predict(x)``); all values in [0, 1].
    bins : number of bins, >= 1.
    kind : ``"positive"``, ``"top-label"`` or ``None`` (``"positive"`` for (N,) and (N, 2)
        inputs, ``"top-label"`` for C > 2 classes).

    Returns
    -------
    dict: ``edges`` (bins + 1,), ``confidence`` (bins,) mean confidence per bin, ``accuracy``
    (bins,) mean outcome per bin — the observed frequency of the positive class for
    ``"positive"``, the fraction of correct top-label predictions for ``"top-label"`` —
    both NaN for an empty bin, ``count`` (bins,) int64, and ``kind``.
    """
    bins = _check_count(bins, "bins")
    confidence, outcome, kind = _confidence_and_outcome(y_true, y_prob, kind)
    edges = np.arange(bins + 1) / bins                  # m / bins, each correctly rounded
    # searchsorted(side="left") gives i with edges[i-1] < c <= edges[i]; bin = i - 1.
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    sum_conf = np.bincount(which, weights=confidence, minlength=bins)
    sum_outcome = np.bincount(which, weights=outcome, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, sum_conf / count, np.nan)
        mean_outcome = np.where(count > 0, sum_outcome / count, np.nan)
    return {"edges": edges, "confidence": mean_conf, "accuracy": mean_outcome,
            "count": count.astype(np.int64), "kind": kind}


def expected_calibration_error(y_true, y_prob, bins: int = 10, kind: str | None = None) -> float:
    """ECE = sum over bins of (bin count / N) · |accuracy(bin) − confidence(bin)|.

    Equal-width bins on [0, 1] as in :func:`reliability_curve` (Guo et al. 2017, eq. 3); empty
    bins contribute nothing. 0 means that, bin by bin, the predicted probabilities match the
    observed frequencies. ``kind="positive"`` (binary default) compares p(positive) with the
    frequency of positives; ``kind="top-label"`` (default for C > 2 classes) compares the top
    class's probability with how often the top class is right. Parameters as for
    :func:`reliability_curve`. Note that the value depends on ``bins`` and, with few samples,
    on the noise of each bin's frequency: compare ECEs only at the same ``bins`` and N.
    """
    curve = reliability_curve(y_true, y_prob, bins, kind)
    filled = curve["count"] > 0
    weights = curve["count"][filled] / curve["count"].sum()
    gaps = np.abs(curve["accuracy"][filled] - curve["confidence"][filled])
    return float(np.sum(weights * gaps))


# --------------------------------------------------------------------------------------------
# Per-class scores of a multi-class classifier
# --------------------------------------------------------------------------------------------


def per_class_scores(y_true, y_pred, n_classes: int | None = None) -> dict:
    """Precision, recall and F1 of every class, read off the confusion matrix ``M[true, pred]``.

    For class c: ``TP = M[c, c]``, ``FP = sum_i M[i, c] − TP`` (column), ``FN = sum_j M[c, j] −
    TP`` (row), and::

        precision_c = TP / (TP + FP)     recall_c = TP / (TP + FN)
        F1_c = 2·precision·recall / (precision + recall) = 2·TP / (2·TP + FP + FN)

    An undefined ratio is NaN (precision of a class never predicted, recall of a class with no
    sample; F1 only when the class is neither present nor predicted), never a silent 0.

    Parameters
    ----------
    y_true : (N,) or (N, 1) class indices.
    y_pred : (N,) or (N, 1) predicted class indices, or (N, C) scores / probabilities (the
        prediction is the argmax, the lowest index winning a tie, and C sets ``n_classes``).
    n_classes : the number of classes for index predictions (default: the largest label + 1).

    Returns
    -------
    dict: ``precision``, ``recall``, ``f1`` (float arrays, one entry per class), ``support``
    (int array, samples per true class), ``confusion_matrix`` (C, C), and ``macro_f1``, the
    unweighted mean of the per-class F1 (NaN if any of them is NaN).
    """
    pred = _as_numeric(y_pred, "y_pred")
    if pred.ndim == 2 and pred.shape[1] > 1:
        y = _as_column(y_true, "y_true")
        _check_same_length(y, pred, "y_pred")
        pred = _check_finite_scores(pred, "y_pred")
        if n_classes is not None and n_classes != pred.shape[1]:
            raise ValueError(
                f"n_classes={n_classes!r} does not match the {pred.shape[1]} columns of y_pred"
            )
        n_classes = pred.shape[1]
        pred = np.argmax(pred, axis=1)
    cm = confusion_matrix(y_true, pred, n_classes)
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0)                 # column sums: TP + FP
    support = cm.sum(axis=1)                   # row sums: TP + FN
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, np.nan)
        recall = np.where(support > 0, tp / support, np.nan)
        f1_den = predicted + support           # 2·TP + FP + FN
        f1 = np.where(f1_den > 0, 2 * tp / f1_den, np.nan)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64),
            "confusion_matrix": cm, "macro_f1": float(np.mean(f1))}


# --------------------------------------------------------------------------------------------
# Bootstrap confidence intervals
# --------------------------------------------------------------------------------------------


class BootstrapCI(NamedTuple):
    """A percentile bootstrap interval: the metric on all samples and the interval around it."""

    estimate: float    #: the metric on the full sample (not a bootstrap mean)
    low: float         #: the (1 − level)/2 quantile of the resampled metric values
    high: float        #: the (1 + level)/2 quantile
    level: float       #: e.g. 0.95
    resamples: int     #: metric values behind the interval (valid resamples)
    redrawn: int       #: resamples discarded and drawn again because a class was missing


BOOTSTRAP_METRICS = ("auc", "acc")


def _label_values(y: np.ndarray) -> list[np.ndarray]:
    """For each label column (one for single-label y), a bool mask of the values present."""
    cols = y[:, None] if y.ndim == 1 else y
    return [np.bincount(col, minlength=int(y.max()) + 1) > 0 for col in cols.T]


def _has_all_values(y_sample: np.ndarray, present: list[np.ndarray]) -> bool:
    cols = y_sample[:, None] if y_sample.ndim == 1 else y_sample
    for col, wanted in zip(cols.T, present):
        got = np.bincount(col, minlength=wanted.size) > 0
        if not np.all(got[: wanted.size] >= wanted):
            return False
    return True


def bootstrap_ci(y_true, y_score, metric: str | Callable = "auc", resamples: int = 1000,
                 level: float = 0.95, seed=0, task: str = "binary-class") -> BootstrapCI:
    """Percentile bootstrap confidence interval of a metric on one test set.

    The procedure, exactly (see also the module docstring)::

        rng = numpy.random.default_rng(seed)          # or the Generator passed as seed
        values, redrawn = [], 0
        while len(values) < resamples:
            idx = rng.integers(0, N, size=N)          # N samples drawn with replacement
            if a class of y_true is missing from y_true[idx]:
                redrawn += 1                          # AUC would be undefined: draw again
                continue
            values.append(metric(y_true[idx], y_score[idx]))
        low, high = quantiles of values at (1 - level)/2 and (1 + level)/2

    Every metric uses the same rule (a class missing → redrawn), so intervals of different
    metrics come from the same resamples. If more than ``10 · resamples`` draws are redrawn, the
    data are too one-sided for a bootstrap and ``ValueError`` is raised.

    Parameters
    ----------
    y_true : class labels: (N,) or (N, 1) (binary 0/1, or class indices), or (N, L) 0/1 flags for
        a multi-label task.
    y_score : the scores, as :func:`medmnist_scores` takes them for ``task`` (any array with N
        rows for a callable metric).
    metric : ``"auc"`` or ``"acc"`` (the official MedMNIST AUC or ACC of ``task``, see
        :func:`medmnist_scores`), or a function ``metric(y_true, y_score) -> float`` (it
        receives (N, 1) labels as (N,), and rows of ``y_score`` as they are).
    resamples : the number of metric values the interval is computed from (1000 by default; the
        interval's ends move by about a thousandth between seeds at 1000 on a few hundred samples).
    level : the coverage, in (0, 1); 0.95 gives the 2.5 % and 97.5 % quantiles.
    seed : an int for ``numpy.random.default_rng``, or a ``numpy.random.Generator``.
    task : one of :data:`TASKS`, for the named metrics.

    Returns
    -------
    :class:`BootstrapCI` ``(estimate, low, high, level, resamples, redrawn)``.
    """
    resamples = _check_count(resamples, "resamples")
    level = _check_fraction(level, "level", allow_zero=False, allow_one=False)
    if isinstance(seed, np.random.Generator):
        rng = seed
    elif isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)):
        rng = np.random.default_rng(int(seed))
    else:
        raise TypeError(f"seed must be an int or a numpy.random.Generator; got {seed!r}")

    if isinstance(metric, str):
        if metric not in BOOTSTRAP_METRICS:
            raise ValueError(f"metric must be 'auc', 'acc' or a function; got {metric!r}")
        _check_task(task)
        name = metric

        def compute(y_part, s_part):
            return medmnist_scores(task, y_part, s_part)[name]
    elif callable(metric):
        compute = metric
    else:
        raise TypeError(f"metric must be 'auc', 'acc' or a function; got {metric!r}")

    y = _as_numeric(y_true, "y_true")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim not in (1, 2):
        raise ValueError(f"y_true must have shape (N,), (N, 1) or (N, L); got shape {y.shape}")
    _check_not_empty(y, "y_true")
    s = np.asarray(y_score)
    if s.ndim == 0 or s.shape[0] != y.shape[0]:
        raise ValueError(
            f"y_true and y_score must have the same number of samples; got y_true {y.shape}, "
            f"y_score {s.shape}"
        )
    labels = _check_class_labels(y, "y_true")              # whole numbers >= 0, as int64

    def checked(value, what):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value):
            raise ValueError(f"metric returned {value!r} {what}; it must return a finite number")
        return float(value)

    estimate = checked(compute(y, s), "on all samples")
    present = _label_values(labels)
    n = y.shape[0]
    values: list[float] = []
    redrawn = 0
    while len(values) < resamples:
        idx = rng.integers(0, n, size=n)
        if not _has_all_values(labels[idx], present):
            redrawn += 1
            if redrawn > 10 * resamples:
                raise ValueError(
                    f"bootstrap_ci: {redrawn} of the resamples lacked a class present in y_true; "
                    "the rarest class has too few samples for a bootstrap interval"
                )
            continue
        values.append(checked(compute(y[idx], s[idx]), "on a resample"))
    low, high = np.quantile(np.asarray(values), [(1 - level) / 2, (1 + level) / 2])
    return BootstrapCI(estimate, float(low), float(high), level, resamples, redrawn)


# --------------------------------------------------------------------------------------------
# One report for a trained classifier
# --------------------------------------------------------------------------------------------


def _plain(value):
    """``value`` with numpy scalars and arrays turned into Python floats, ints and lists, and
    NaN into None — something ``json.dumps`` writes as standard JSON."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def clinical_report(task: str, y_val, p_val, y_test, p_test, *, sensitivity: float = 0.95,
                    prevalence: float | None = None, resamples: int = 1000, seed=0,
                    bins: int = 10, level: float = 0.95) -> dict:
    """Everything this module says about a trained classifier, as plain JSON-ready data.

    The validation split chooses; the test split is measured once:

    * ``validation`` and ``test``: the official MedMNIST ACC and AUC (:func:`medmnist_scores`);
    * ``test_ci``: percentile bootstrap intervals of the test AUC and ACC (:func:`bootstrap_ci`,
      ``resamples``, ``level``, ``seed`` — an int here, as it goes into the report; both
      intervals come from the same resamples);
    * binary tasks only — ``operating_points``: the threshold reaching ``sensitivity`` on the
      validation split (:func:`threshold_for_sensitivity`) and Youden's threshold (also chosen on
      validation), each with its :func:`binary_operating_point` on validation and on test;
      with ``prevalence``, ``at_prevalence``: PPV and NPV of the sensitivity-target operating
      point's *test* sensitivity and specificity at that prevalence (:func:`ppv_npv_at_prevalence`);
    * multi-class and ordinal tasks — ``per_class``: precision, recall, F1 and support of the test
      argmax predictions, and ``macro_f1`` (:func:`per_class_scores`);
    * binary, multi-class, ordinal — ``calibration``: test ECE and the reliability curve
      (``kind`` "positive" for binary, "top-label" otherwise; ``bins`` equal-width bins).

    * multi-label tasks — ``per_label``: each label's test AUC, ACC (``score > 0.5``, the
      official rule) and number of positives; and ``not_applicable``, a sentence saying what is
      left out (operating points, PPV/NPV, calibration, per-class scores) and why.

    Returns
    -------
    A dict of str keys, plain ``float``/``int``/``str``/``list``/``dict`` values and ``None``
    where a number is undefined (NaN), so ``json.dumps(report)`` works as it is.
    """
    _check_task(task, "clinical_report(task, y_val, p_val, y_test, p_test)")
    sensitivity = _check_fraction(sensitivity, "sensitivity", allow_zero=False)
    if prevalence is not None:
        prevalence = _check_fraction(prevalence, "prevalence")
    resamples = _check_count(resamples, "resamples")
    bins = _check_count(bins, "bins")
    seed = _check_count(seed, "seed", minimum=0)      # an int: it is written into the report

    report: dict = {
        "task": task,
        "n_validation": int(np.shape(y_val)[0]),
        "n_test": int(np.shape(y_test)[0]),
        "validation": medmnist_scores(task, y_val, p_val),
        "test": medmnist_scores(task, y_test, p_test),
    }
    intervals = {}
    for name in BOOTSTRAP_METRICS:
        # the same seed for both metrics, so both intervals come from the same resamples
        ci = bootstrap_ci(y_test, p_test, name, resamples=resamples, level=level, seed=seed,
                          task=task)
        intervals[name] = {"low": ci.low, "high": ci.high}
    report["test_ci"] = {"level": level, "resamples": resamples, "redrawn": ci.redrawn,
                         "seed": seed, **intervals}

    if task == "binary-class":
        t_sens = threshold_for_sensitivity(y_val, p_val, sensitivity)
        t_youden = youden_threshold(y_val, p_val)
        points = {}
        for key, rule, t in (
            ("sensitivity_target",
             f"largest threshold with validation sensitivity >= {sensitivity}", t_sens),
            ("youden", "validation threshold maximising sensitivity + specificity - 1", t_youden),
        ):
            points[key] = {"rule": rule, "threshold": t,
                           "validation": binary_operating_point(y_val, p_val, t),
                           "test": binary_operating_point(y_test, p_test, t)}
        report["operating_points"] = {"decision": "positive iff p(positive) >= threshold",
                                      "target_sensitivity": sensitivity, **points}
        if prevalence is not None:
            test_point = points["sensitivity_target"]["test"]
            ppv, npv = ppv_npv_at_prevalence(test_point["sensitivity"], test_point["specificity"],
                                             prevalence)
            report["at_prevalence"] = {"prevalence": prevalence, "ppv": ppv, "npv": npv,
                                       "from": "sensitivity_target operating point on test"}
    elif task in ("multi-class", "ordinal-regression"):
        scores = per_class_scores(y_test, p_test)
        report["per_class"] = {k: scores[k] for k in ("precision", "recall", "f1", "support")}
        report["macro_f1"] = scores["macro_f1"]
    else:                       # multi-label: each label is its own yes/no question
        y_ml = _as_numeric(y_test, "y_test")
        s_ml = _as_numeric(p_test, "p_test")
        report["per_label"] = {
            "auc": [auc(y_ml[:, j], s_ml[:, j]) for j in range(y_ml.shape[1])],
            "acc": [float(np.mean((s_ml[:, j] > 0.5) == (y_ml[:, j] == 1))) for j in range(y_ml.shape[1])],
            "positives": [int(np.sum(y_ml[:, j] == 1)) for j in range(y_ml.shape[1])],
        }
        report["not_applicable"] = MULTI_LABEL_NOTE

    if task != "multi-label, binary-class":
        curve = reliability_curve(y_test, p_test, bins)
        report["calibration"] = {
            "kind": curve["kind"], "bins": bins,
            "ece": expected_calibration_error(y_test, p_test, bins),
            "confidence": curve["confidence"], "accuracy": curve["accuracy"],
            "count": curve["count"],
        }
    return _plain(report)


#: What a multi-label report leaves out, and why (it is written into the report itself).
MULTI_LABEL_NOTE = ("operating thresholds, sensitivity/specificity/PPV/NPV, PPV/NPV at a prevalence, "
                    "calibration and per-class precision/recall/F1 are not computed for a multi-label "
                    "task: each label would need its own threshold and prevalence; the report gives "
                    "each label's test AUC and ACC (score > 0.5) instead")


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_clinical_report(report: dict, *, brief: bool = False, names=None) -> str:
    """A few lines for the console from a :func:`clinical_report` dict.

    ``brief``: at each operating threshold, only the test split's numbers (the threshold itself
    was chosen on validation either way). ``names``: class (or label) names to print instead of
    ``class 0``, ``class 1``, ... for per-class and per-label lines.
    """
    if not isinstance(report, dict) or "task" not in report or "test" not in report:
        raise ValueError("report must be a dict returned by clinical_report")
    ci = report["test_ci"]
    pct = f"{100 * ci['level']:g}%"

    def name(c):
        return str(names[c]) if names is not None and c < len(names) else f"class {c}"

    lines = [
        f"{report['task']}: test n={report['n_test']} (validation n={report['n_validation']})",
        f"  test AUC {_fmt(report['test']['auc'])}  [{pct} CI {_fmt(ci['auc']['low'])}-"
        f"{_fmt(ci['auc']['high'])}]   ACC {_fmt(report['test']['acc'])}  "
        f"[{_fmt(ci['acc']['low'])}-{_fmt(ci['acc']['high'])}]   "
        f"({ci['resamples']} bootstrap resamples, seed {ci['seed']}, {ci['redrawn']} redrawn)",
    ]
    points = report.get("operating_points")
    if points:
        for key in ("sensitivity_target", "youden"):
            point = points[key]
            lines.append(f"  threshold {point['threshold']:.4g}: {point['rule']}")
            for split in ("test",) if brief else ("validation", "test"):
                op = point[split]
                lines.append(
                    f"    {split:<10}  sensitivity {_fmt(op['sensitivity'])}  specificity "
                    f"{_fmt(op['specificity'])}  PPV {_fmt(op['ppv'])}  NPV {_fmt(op['npv'])}  "
                    f"(TP {op['tp']} FP {op['fp']} TN {op['tn']} FN {op['fn']})"
                )
    if "at_prevalence" in report:
        at = report["at_prevalence"]
        lines.append(f"  at prevalence {at['prevalence']:g} (test sensitivity/specificity): "
                     f"PPV {_fmt(at['ppv'])}  NPV {_fmt(at['npv'])}")
    if "per_class" in report:
        pc = report["per_class"]
        rows = zip(pc["precision"], pc["recall"], pc["f1"], pc["support"])
        for c, (prec, rec, f1, n) in enumerate(rows):
            lines.append(f"  {name(c)}: precision {_fmt(prec)}  recall {_fmt(rec)}  F1 {_fmt(f1)}"
                         f"  (n={n})")
        lines.append(f"  macro F1 {_fmt(report['macro_f1'])}")
    if "per_label" in report:
        pl = report["per_label"]
        for j, (a, acc_j) in enumerate(zip(pl["auc"], pl["acc"])):
            lines.append(f"  {name(j)}: AUC {_fmt(a)}  ACC {_fmt(acc_j)}  ({pl['positives'][j]} positive)")
    if "calibration" in report:
        cal = report["calibration"]
        lines.append(f"  calibration ({cal['kind']}, {cal['bins']} equal-width bins): "
                     f"ECE {_fmt(cal['ece'])}")
    if "not_applicable" in report:
        lines.append(f"  not computed: {report['not_applicable']}")
    return "\n".join(lines)
