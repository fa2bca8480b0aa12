"""Evaluation metrics: ROC AUC, ROC curve, accuracy, confusion matrix, and the MedMNIST scores.

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
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "TASKS",
    "auc",
    "roc_curve",
    "accuracy",
    "confusion_matrix",
    "medmnist_scores",
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


def _check_same_length(y_true: np.ndarray, other: np.ndarray, other_name: str) -> None:
    if y_true.shape[0] != other.shape[0]:
        raise ValueError(
            f"y_true and {other_name} must have the same number of samples; "
            f"y_true has {y_true.shape[0]} (shape {y_true.shape}), "
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


def _binary_inputs(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    """Validated (labels as int64 0/1, scores as float64), both 1-D of the same length."""
    y = _as_column(y_true, "y_true")
    s = _as_column(y_score, "y_score")
    _check_not_empty(y, "y_true")
    _check_not_empty(s, "y_score")
    _check_same_length(y, s, "y_score")
    s = _check_finite_scores(s, "y_score")
    y = _check_binary_labels(y, "y_true")
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
    if not isinstance(task, str) or task not in TASKS:
        raise ValueError(
            f"unknown task {task!r}; valid tasks are: " + ", ".join(repr(t) for t in TASKS)
        )
    threshold = _check_threshold(threshold)
    if task == "binary-class":
        return _binary_class_scores(y_true, y_score, threshold)
    if task == "multi-label, binary-class":
        return _multi_label_scores(y_true, y_score, threshold)
    return _multi_class_scores(task, y_true, y_score)
