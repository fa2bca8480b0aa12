"""Figures for a training run: learning curves, confusion matrix, ROC curves, sample images, the
reliability diagram of predicted probabilities (``reliability_diagram``, a run folder's
``calibration.png``) and per-layer training statistics (``layer_stats``, from
:class:`tinycnn.callbacks.LayerStats`).

Every function here draws one matplotlib figure and either writes it as a PNG file or hands it
back:

* with a ``path``, the figure is written there and the function returns the ``Path`` written;
* with ``path=None`` (the default), nothing is written and the function returns the
  :class:`matplotlib.figure.Figure` itself, e.g. to show it in a Jupyter notebook (a notebook
  displays a ``Figure`` that is the last expression of a cell) or to change it before saving.

Two choices make the module safe to call from scripts, servers and threads:

* Figures are built with the object-oriented API (``Figure`` plus the Agg canvas), never with
  ``matplotlib.pyplot``. Nothing goes through pyplot's global "current figure", no window is
  ever opened, no display is needed, and a figure is freed as soon as it is no longer used.
* A PNG is written atomically: first to a temporary file in the destination folder, which is
  then renamed over the destination with :func:`os.replace`. A reader never sees a half-written
  image, and if drawing or saving fails, an earlier file at ``path`` is left as it was and the
  temporary file is removed.

Inputs are checked, and a bad one raises ``ValueError`` saying what was expected.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from . import metrics

__all__ = ["confusion_matrix", "image_grid", "layer_stats", "reliability_diagram", "roc_curves", "save_figure",
           "training_curves"]

#: Resolution of the PNG files, in dots per inch. Figure sizes below are in inches.
DPI = 100


# --------------------------------------------------------------------------------------------
# Writing a figure
# --------------------------------------------------------------------------------------------


def _new_figure(width: float, height: float) -> Figure:
    """A figure with its own Agg canvas, not registered with pyplot."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` to ``path`` as a PNG, atomically, and return ``Path(path)``.

    The image is drawn into a temporary file in the same folder (created if missing) and then
    renamed over ``path``. If anything fails, the temporary file is deleted, an existing file at
    ``path`` is untouched, and the error is raised.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must name a .png file; got {str(path)!r}")
    from .io import atomic_write         # temporary file in the same folder, fsync, rename

    def draw(handle):
        FigureCanvasAgg(fig)  # draw with Agg even if the figure was given another canvas
        fig.savefig(handle, format="png", dpi=DPI)

    return atomic_write(path, draw)


def _finish(fig: Figure, path) -> Figure | Path:
    return fig if path is None else save_figure(fig, path)


# --------------------------------------------------------------------------------------------
# Small checks shared by the plots
# --------------------------------------------------------------------------------------------


def _check_labels(labels, n: int, what: str) -> list[str]:
    if isinstance(labels, (str, bytes)) or not isinstance(labels, (Sequence, np.ndarray)):
        raise ValueError(f"labels must be a sequence of {n} names ({what}); got {labels!r}")
    labels = [str(label) for label in labels]
    if len(labels) != n:
        raise ValueError(f"labels must have one name per {what}: expected {n}, got {len(labels)}")
    return labels


def _short(text: str, width: int = 24) -> str:
    """``text`` cut to ``width`` characters with an ellipsis (some MedMNIST names are long)."""
    return text if len(text) <= width else text[: width - 1] + "…"


def _numeric_array(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numbers; got an array of dtype {arr.dtype}")
    return arr


# --------------------------------------------------------------------------------------------
# Training curves
# --------------------------------------------------------------------------------------------

# Names that mean the same metric share a panel ("acc" is the official MedMNIST ACC that the
# training loop logs next to Keras's "accuracy").
_ALIASES = {"acc": "accuracy"}
_PANEL_TITLES = {"loss": "loss", "accuracy": "accuracy", "auc": "AUC"}


def _panel_name(key: str) -> str:
    base = key[4:] if key.startswith("val_") else key
    return _ALIASES.get(base, base)


def training_curves(history, path=None, *, best_epoch: int | None = None, title: str | None = None):
    """Loss and metrics per epoch, one panel per quantity, training and validation together.

    Parameters
    ----------
    history : a mapping of per-epoch lists, as :meth:`tinycnn.Sequential.fit` (or Keras's
        ``History.history``) returns: ``{"loss": [...], "accuracy": [...], "val_loss": [...],
        "val_accuracy": [...], "val_auc": [...], "val_acc": [...]}``. A Keras ``History`` object
        is accepted too. ``x`` and ``val_x`` share a panel; ``acc`` and ``accuracy`` also do.
        The loss panel comes first. All lists must have the same length (one entry per epoch).
    path : where to write the PNG, or ``None`` to return the figure instead.
    best_epoch : the epoch (counting from 1) whose weights were kept, marked by a vertical line.
    title : an optional title above all panels.

    Returns
    -------
    The ``Path`` written, or the ``Figure`` when ``path`` is ``None``. The figure has one axes
    per panel; each holds one line per history key, plus the best-epoch line if given.
    """
    history = getattr(history, "history", history)  # a Keras History object
    if not isinstance(history, Mapping) or not history:
        raise ValueError(
            "history must be a non-empty mapping of per-epoch lists, e.g. "
            f"{{'loss': [...], 'val_loss': [...]}}; got {history!r}"
        )
    series: dict[str, np.ndarray] = {}
    for key, values in history.items():
        if not isinstance(key, str):
            raise ValueError(f"history keys must be strings; got {key!r}")
        arr = _numeric_array(values, f"history[{key!r}]").astype(np.float64)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(
                f"history[{key!r}] must be a non-empty 1-D list of numbers, one per epoch; "
                f"got shape {arr.shape}"
            )
        series[key] = arr
    lengths = {key: arr.size for key, arr in series.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"every history list must have one value per epoch; lengths: {lengths}")
    n_epochs = next(iter(lengths.values()))
    if best_epoch is not None:
        if (
            isinstance(best_epoch, (bool, np.bool_))
            or not isinstance(best_epoch, numbers.Integral)
            or not 1 <= best_epoch <= n_epochs
        ):
            raise ValueError(
                f"best_epoch must be an epoch number from 1 to {n_epochs}; got {best_epoch!r}"
            )
        best_epoch = int(best_epoch)

    panels: dict[str, list[str]] = {}
    for key in sorted(series, key=lambda k: _panel_name(k) != "loss"):  # stable: loss first
        panels.setdefault(_panel_name(key), []).append(key)

    n_panels = len(panels)
    ncols = min(n_panels, 3)
    nrows = math.ceil(n_panels / ncols)
    fig = _new_figure(4.3 * ncols, 3.4 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        fig.delaxes(ax)

    epochs = np.arange(1, n_epochs + 1)
    marker = n_epochs <= 40
    for ax, (name, keys) in zip(axes, panels.items()):
        train_keys = [k for k in keys if not k.startswith("val_")]
        val_keys = [k for k in keys if k.startswith("val_")]
        # Training in blue, validation in orange (then green, red for a second validation
        # series such as val_acc beside val_accuracy): the same colours in every panel.
        styles = [(k, "-", "o", f"C{4 + 2 * i if i else 0}") for i, k in enumerate(train_keys)]
        styles += [(k, "--", "s", f"C{1 + i}") for i, k in enumerate(val_keys)]
        for key, linestyle, point, colour in styles:
            ax.plot(epochs, series[key], linestyle=linestyle, marker=point if marker else None,
                    markersize=3.5, color=colour, label=key)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="0.35", linestyle=":", linewidth=1.3,
                       label=f"best epoch ({best_epoch})")
        ax.set_title(_PANEL_TITLES.get(name, name))
        ax.set_xlabel("epoch")
        ax.set_xlim(0.5, n_epochs + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


# --------------------------------------------------------------------------------------------
# Confusion matrix
# --------------------------------------------------------------------------------------------


def confusion_matrix(cm, labels, path=None, title: str | None = None):
    """The confusion matrix, annotated with counts and row-normalised percentages.

    Parameters
    ----------
    cm : (C, C) counts, ``cm[i, j]`` = samples of true class ``i`` predicted as ``j``, as
        :func:`tinycnn.metrics.confusion_matrix` returns: whole numbers >= 0.
    labels : the C class names, in class order.
    path : where to write the PNG, or ``None`` to return the figure instead.
    title : an optional title.

    Rows are the true classes, columns the predictions. Each cell shows its count and, in
    smaller type, the percentage of its row (the share of that true class predicted as the
    column's class; the diagonal is each class's recall). Cells are coloured by that percentage,
    so that a rare class is as visible as a common one.

    Returns
    -------
    The ``Path`` written, or the ``Figure`` (one axes for the matrix, one for the colour bar).
    """
    arr = _numeric_array(cm, "cm")
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        raise ValueError(f"cm must be a square (C, C) matrix with C >= 1; got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr != np.round(arr)):
        raise ValueError("cm must hold counts: whole numbers >= 0")
    counts = arr.astype(np.int64)
    n = counts.shape[0]
    labels = [_short(label) for label in _check_labels(labels, n, "class (row of cm)")]

    row_sums = counts.sum(axis=1, keepdims=True)
    fraction = counts / np.maximum(row_sums, 1)  # an empty row stays 0

    side = max(4.8, 0.62 * n + 2.6)
    fig = _new_figure(side + 1.0, side)
    ax = fig.add_subplot()
    image = ax.imshow(fraction, cmap="Blues", vmin=0.0, vmax=1.0)
    colorbar = fig.colorbar(image, ax=ax, shrink=0.8)
    colorbar.set_label("fraction of the true class")

    big = 11 if n <= 5 else 10 if n <= 8 else 8
    for i in range(n):
        for j in range(n):
            colour = "white" if fraction[i, j] > 0.55 else "black"
            ax.text(j, i - 0.12, f"{counts[i, j]:d}", ha="center", va="center",
                    fontsize=big, color=colour)
            pct = f"{100 * fraction[i, j]:.1f}%" if row_sums[i, 0] > 0 else "–"
            ax.text(j, i + 0.22, pct, ha="center", va="center", fontsize=max(6, big - 2),
                    color=colour)

    ax.set_xticks(range(n), labels, rotation=45 if n > 2 else 0,
                  ha="right" if n > 2 else "center", rotation_mode="anchor")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = int(counts.sum())
    accuracy = np.trace(counts) / total if total else float("nan")
    ax.set_title(
        (f"{title}\n" if title else "") + f"{total} samples, accuracy {accuracy:.3f}",
        fontsize="medium",
    )
    return _finish(fig, path)


# --------------------------------------------------------------------------------------------
# ROC curves
# --------------------------------------------------------------------------------------------


def _roc(y01: np.ndarray, score: np.ndarray, what: str):
    """``(fpr, tpr, auc)`` of one binary problem, with an error that names the class."""
    if y01.min() == y01.max():
        present = "positive" if y01.max() == 1 else "negative"
        raise ValueError(
            f"{what}: y_true holds only {present} samples, so its ROC curve and AUC are "
            "undefined (both classes are needed)"
        )
    fpr, tpr, _ = metrics.roc_curve(y01, score)
    return fpr, tpr, metrics.auc(y01, score)


def roc_curves(task: str, y_true, y_score, labels, path=None, title: str | None = None):
    """ROC curves of a classifier's test scores, with the AUCs in the legend.

    Parameters
    ----------
    task : one of :data:`tinycnn.metrics.TASKS`.
    y_true : the labels: (N,) or (N, 1) class indices, or (N, L) 0/1 flags for multi-label.
    y_score : the scores: (N, C) one column per class (for binary, (N, 2), (N, 1) or (N,):
        the last column is the positive class); (N, L) for multi-label.
    labels : the class names (binary: 2, multi-class/ordinal: C) or label names (multi-label: L).
    path : where to write the PNG, or ``None`` to return the figure instead.
    title : an optional title (a default naming the kind of curve is used otherwise).

    What is drawn:

    * binary-class: one curve, the positive (last) class against the other;
    * multi-class and ordinal-regression: one one-vs-rest curve per class. The legend title
      gives the mean of the per-class AUCs, which is the official MedMNIST AUC;
    * multi-label: one curve per label, and the mean AUC over labels (also the official AUC);

    plus the diagonal of a classifier that guesses (AUC 0.5). Curves come from
    :func:`tinycnn.metrics.roc_curve`, areas from :func:`tinycnn.metrics.auc`.

    Returns
    -------
    The ``Path`` written, or the ``Figure``: one axes holding one line per curve, then the
    chance line last.
    """
    if task not in metrics.TASKS:
        raise ValueError(f"task must be one of {metrics.TASKS}; got {task!r}")
    y = _numeric_array(y_true, "y_true")
    s = _numeric_array(y_score, "y_score").astype(np.float64)
    if y.ndim == 2 and y.shape[1] == 1 and task != "multi-label, binary-class":
        y = y[:, 0]
    if y.shape[0] == 0:
        raise ValueError("y_true is empty")
    if s.shape[0] != y.shape[0]:
        raise ValueError(
            f"y_true and y_score must have the same number of samples; got {y.shape[0]} "
            f"and {s.shape[0]}"
        )
    if not np.all(np.isfinite(s)):
        raise ValueError("y_score must be finite (no NaN or inf)")

    curves: list[tuple[str, np.ndarray, np.ndarray, float]] = []
    if task == "binary-class":
        names = _check_labels(labels, 2, "class (binary task: negative, positive)")
        if s.ndim == 2 and s.shape[1] in (1, 2):
            s = s[:, -1]
        if s.ndim != 1:
            raise ValueError(
                f"for a binary task y_score must have shape (N, 2), (N, 1) or (N,); got {s.shape}"
            )
        if y.ndim != 1 or not np.isin(y, (0, 1)).all():
            raise ValueError("for a binary task y_true must hold 0/1 labels of shape (N,) or (N, 1)")
        fpr, tpr, area = _roc(y.astype(np.int64), s, f"class {names[1]!r}")
        curves.append((f"{_short(names[1])} vs {_short(names[0])}", fpr, tpr, area))
        legend_title = None
        default_title = "ROC curve"
    elif task in ("multi-class", "ordinal-regression"):
        if s.ndim != 2 or s.shape[1] < 2:
            raise ValueError(f"for task {task!r} y_score must be (N, C) with C >= 2; got {s.shape}")
        n_classes = s.shape[1]
        names = _check_labels(labels, n_classes, "class (column of y_score)")
        if y.ndim != 1:
            raise ValueError(f"for task {task!r} y_true must have shape (N,) or (N, 1); got {y.shape}")
        if np.any(y != np.round(y)) or y.min() < 0 or y.max() >= n_classes:
            raise ValueError(f"y_true must hold class indices from 0 to {n_classes - 1}")
        y = y.astype(np.int64)
        for c in range(n_classes):
            fpr, tpr, area = _roc((y == c).astype(np.int64), s[:, c], f"class {c} ({names[c]!r})")
            curves.append((_short(names[c]), fpr, tpr, area))
        mean = float(np.mean([area for *_, area in curves]))
        legend_title = f"mean AUC {mean:.3f} (official MedMNIST AUC)"
        default_title = "ROC curves, each class against the rest"
    else:  # multi-label, binary-class
        if y.ndim != 2 or s.shape != y.shape:
            raise ValueError(
                "for a multi-label task y_true and y_score must both be (N, L); got "
                f"{y.shape} and {s.shape}"
            )
        names = _check_labels(labels, y.shape[1], "label (column of y_true)")
        if not np.isin(y, (0, 1)).all():
            raise ValueError("for a multi-label task y_true must hold 0/1 flags")
        y = y.astype(np.int64)
        for k in range(y.shape[1]):
            fpr, tpr, area = _roc(y[:, k], s[:, k], f"label {k} ({names[k]!r})")
            curves.append((_short(names[k]), fpr, tpr, area))
        mean = float(np.mean([area for *_, area in curves]))
        legend_title = f"mean AUC {mean:.3f} (official MedMNIST AUC)"
        default_title = "ROC curves, one per label"

    many = len(curves) > 6
    fig = _new_figure(8.6 if many else 5.6, 5.2)
    ax = fig.add_subplot()
    colours = [f"C{i}" for i in range(10)]
    if len(curves) > 10:  # tab20 has 20 distinguishable colours (ChestMNIST has 14 labels)
        from matplotlib import colormaps

        colours = [colormaps["tab20"](i % 20) for i in range(len(curves))]
    for i, (name, fpr, tpr, area) in enumerate(curves):
        ax.plot(fpr, tpr, color=colours[i % len(colours)], linewidth=1.6,
                label=f"{name} (AUC {area:.3f})")
    ax.plot([0, 1], [0, 1], color="0.5", linestyle="--", linewidth=1, label="chance (AUC 0.5)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false-positive rate (1 − specificity)")
    ax.set_ylabel("true-positive rate (sensitivity)")
    ax.set_title(title if title else default_title)
    ax.grid(alpha=0.3)
    if many:
        ax.legend(title=legend_title, fontsize="x-small", title_fontsize="small",
                  loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    else:
        ax.legend(title=legend_title, fontsize="small", title_fontsize="small", loc="lower right")
    return _finish(fig, path)


# --------------------------------------------------------------------------------------------
# Sample images
# --------------------------------------------------------------------------------------------


def _label_text(label) -> str:
    """A caption: a name or a number as it is, a (1,) label row as its one value, else a list."""
    values = np.asarray(label).reshape(-1).tolist()
    return str(values[0]) if len(values) == 1 else str(values)


def image_grid(images, labels=None, path=None, ncols: int = 8):
    """Show a batch of images in a grid, optionally with a caption under each.

    Parameters
    ----------
    images : (N, H, W) or (N, H, W, 1) grey images, or (N, H, W, 3) RGB images (NHWC, as
        everywhere in tinycnn); a single (H, W) image is accepted too. ``uint8`` images are shown
        on their 0-255 scale. Float images in [0, 1] are shown as they are; other float images
        (e.g. standardised ones) are rescaled with the batch's minimum and maximum, so that
        their relative brightness is kept.
    labels : optional, one caption per image (class names, or class ids); shown above each.
    path : where to write the PNG, or ``None`` to return the figure instead.
    ncols : images per row.

    Returns
    -------
    The ``Path`` written, or the ``Figure`` (one axes per image).
    """
    arr = _numeric_array(images, "images")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 3 or (arr.ndim == 4 and arr.shape[-1] == 3)) or arr.shape[0] == 0:
        raise ValueError(
            "images must be (N, H, W), (N, H, W, 1) or (N, H, W, 3) with N >= 1; got shape "
            f"{np.shape(images)}"
        )
    if (
        isinstance(ncols, (bool, np.bool_))
        or not isinstance(ncols, numbers.Integral)
        or ncols < 1
    ):
        raise ValueError(f"ncols must be a positive integer; got {ncols!r}")
    n = arr.shape[0]
    captions = None
    if labels is not None:
        if isinstance(labels, (str, bytes)) or len(labels) != n:
            raise ValueError(
                f"labels must have one entry per image: expected {n}, got "
                f"{'a string' if isinstance(labels, (str, bytes)) else len(labels)}"
            )
        captions = [_short(_label_text(label), 18) for label in labels]

    if arr.dtype.kind == "f":
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError("images must be finite (no NaN or inf)")
        low, high = float(arr.min()), float(arr.max())
        if low < 0.0 or high > 1.0:
            arr = (arr - low) / (high - low) if high > low else np.zeros_like(arr)
        vmax = 1.0
    else:
        if arr.min() < 0 or arr.max() > 255:
            raise ValueError("integer images must hold values from 0 to 255")
        arr = arr.astype(np.uint8)
        vmax = 255

    ncols = min(int(ncols), n)
    nrows = math.ceil(n / ncols)
    cell = 1.25
    fig = _new_figure(cell * ncols, (cell + (0.22 if captions else 0.0)) * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n:]:
        fig.delaxes(ax)
    for i, ax in enumerate(axes[:n]):
        if arr.ndim == 3:
            ax.imshow(arr[i], cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
        else:
            ax.imshow(arr[i], interpolation="nearest")
        ax.set_axis_off()
        if captions:
            ax.set_title(captions[i], fontsize=7, pad=2)
    return _finish(fig, path)


# --------------------------------------------------------------------------------------------
# Reliability diagram
# --------------------------------------------------------------------------------------------


def reliability_diagram(y_true, y_prob, bins: int = 10, path=None, *, ax=None, kind=None,
                        title: str | None = None):
    """How well predicted probabilities match observed frequencies, bin by bin (Guo et al. 2017).

    The probabilities are split into ``bins`` equal-width bins on [0, 1]
    (:func:`tinycnn.metrics.reliability_curve`). For each non-empty bin:

    * a blue bar, as wide as the bin, up to the bin's observed frequency — the fraction of
      positives (``kind="positive"``, the binary default) or the fraction of correct top-class
      predictions (``kind="top-label"``, the default for more than two classes);
    * a hatched red bar spanning the gap between that frequency and the bin's mean predicted
      probability (above the blue bar when the model over-predicts, inside it when it
      under-predicts);
    * the bin's sample count above it.

    A calibrated model's bars reach the dashed diagonal and have no red. The legend gives the
    ECE, the count-weighted mean of the gaps (:func:`tinycnn.metrics.expected_calibration_error`);
    it sits below the axes, so that it never hides a bar.

    Parameters
    ----------
    y_true, y_prob, bins, kind : as for :func:`tinycnn.metrics.reliability_curve`.
    path : where to write the PNG, or ``None`` to return the figure instead.
    ax : an existing matplotlib Axes to draw into (then the figure returned, or written, is
        ``ax.figure``); by default a new figure with one axes.
    title : an optional title.

    Returns
    -------
    The ``Path`` written, or the ``Figure``. In the axes, ``ax.containers[0]`` holds one bar per
    non-empty bin (observed frequency), ``ax.containers[1]`` the gap bars (from the lower to the
    higher of observed frequency and mean prediction), in bin order.
    """
    curve = metrics.reliability_curve(y_true, y_prob, bins, kind)
    ece = metrics.expected_calibration_error(y_true, y_prob, bins, kind)
    if ax is None:
        fig = _new_figure(5.4, 6.4)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    edges, count = curve["edges"], curve["count"]
    filled = count > 0
    left = edges[:-1][filled]
    width = 1.0 / len(count)
    observed = curve["accuracy"][filled]
    predicted = curve["confidence"][filled]
    positive = curve["kind"] == "positive"

    ax.bar(left, observed, width=width, align="edge", color="C0", edgecolor="white",
           label="observed frequency of the positive class" if positive else "accuracy")
    ax.bar(left, np.abs(predicted - observed), bottom=np.minimum(observed, predicted),
           width=width, align="edge", facecolor=(0.84, 0.15, 0.16, 0.18), edgecolor="C3",
           hatch="//", linewidth=0.8, label="gap to the mean predicted probability")
    for x, top, n in zip(left + width / 2, np.maximum(observed, predicted), count[filled]):
        ax.text(x, min(top + 0.015, 1.04), f"{n}", ha="center", va="bottom", fontsize=7,
                color="0.3")
    ax.plot([0, 1], [0, 1], color="0.4", linestyle="--", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.08)
    ax.set_aspect("equal")
    if positive:
        ax.set_xlabel("predicted probability of the positive class")
        ax.set_ylabel("observed frequency of the positive class")
    else:
        ax.set_xlabel("confidence (probability of the top class)")
        ax.set_ylabel("accuracy of the top class")
    ax.grid(alpha=0.3)
    ax.legend(title=f"ECE {ece:.3f} ({len(count)} bins; numbers: samples per bin)",
              fontsize="small", title_fontsize="small", loc="upper center",
              bbox_to_anchor=(0.5, -0.13), ncols=1)
    ax.set_title(title if title else "Reliability diagram")
    return _finish(fig, path)


# --------------------------------------------------------------------------------------------
# Inside the training steps: tinycnn.callbacks.LayerStats
# --------------------------------------------------------------------------------------------


def layer_stats(stats, path=None, *, index: int = -1, layers=None, title: str | None = None):
    """Per-layer histograms of one recorded step and the update-to-weight ratios of every step.

    ``stats`` is a :class:`tinycnn.callbacks.LayerStats` that has recorded at least one step.

    * Top row: a histogram of each layer's output in record ``index`` (default: the last), the
      share of entries per bin on a log scale, titled with its mean, std and — for a ReLU
      output — the fraction of dead units.
    * Middle row: the same for the gradient each layer's backward received, dL/d(output) (for a
      last layer whose softmax is fused with the loss: dL/d(logits)).
    * Bottom: ‖ΔW‖/‖W‖ of every weight array at every recorded step (kernels solid, biases
      dashed, log scale), with CS231n's rule of thumb, 1e-3, as a dotted line.

    ``layers``: names of the layers to show (default: every layer except Flatten, whose numbers
    are its input's). Returns the figure, or the path written with ``path``.
    """
    from matplotlib.ticker import NullFormatter

    from .callbacks import LayerStats

    if not isinstance(stats, LayerStats):
        raise TypeError(f"layer_stats: expected a tinycnn.callbacks.LayerStats, got {type(stats).__name__}")
    if not stats.records:
        raise ValueError("layer_stats: the LayerStats has recorded no step yet; pass it to fit(callbacks=[...])")
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) \
            or not -len(stats.records) <= index < len(stats.records):
        raise ValueError(f"layer_stats: index must be an int in [-{len(stats.records)}, {len(stats.records) - 1}], "
                         f"got {index!r}")
    record = stats.records[index]
    if layers is None:
        layers = [name for name, layer in record.layers.items() if layer.kind != "Flatten"]
    else:
        if isinstance(layers, str) or not isinstance(layers, Sequence) or not layers:
            raise ValueError(f"layer_stats: layers must be a non-empty list of layer names, got {layers!r}")
        unknown = [name for name in layers if name not in record.layers]
        if unknown:
            raise ValueError(f"layer_stats: no layer {unknown[0]!r} in the record; recorded: {list(record.layers)}")

    n = len(layers)
    fig = _new_figure(max(8.0, 2.7 * n), 7.6)
    grid = fig.add_gridspec(3, n, height_ratios=[1, 1, 1.15])

    def histogram(ax, summary, color):
        if summary is None or summary.counts is None:
            ax.text(0.5, 0.5, "not recorded" if summary is None else "not finite", ha="center",
                    va="center", transform=ax.transAxes, color="0.4")
            return
        share = summary.counts / max(1, summary.counts.sum())
        ax.stairs(np.where(share > 0, share, np.nan), summary.edges, fill=True, color=color, alpha=0.8)
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)

    for j, name in enumerate(layers):
        layer = record.layers[name]
        act, grad = layer.activation, layer.gradient
        ax = fig.add_subplot(grid[0, j])
        histogram(ax, act, "C0")
        dead = "" if layer.dead is None else f", dead {layer.dead:.0%}"
        ax.set_title(f"{_short(name, 20)} ({layer.kind})\nmean {act.mean:.2g}, std {act.std:.2g}{dead}", fontsize=8)
        if j == 0:
            ax.set_ylabel("share of outputs")
        ax = fig.add_subplot(grid[1, j])
        histogram(ax, grad, "C1")
        what = "dL/d(logits)" if layer.gradient_of == "preactivation" else "dL/d(output)"
        ax.set_title(what if grad is None else f"{what}\nmean {grad.mean:.2g}, std {grad.std:.2g}", fontsize=8)
        if j == 0:
            ax.set_ylabel("share of gradient entries")

    ax = fig.add_subplot(grid[2, :])
    steps = stats.steps
    for k, name in enumerate(stats.weight_names):
        ratio = stats.series(name, "ratio")
        if np.all(np.isnan(ratio)):
            continue
        ax.plot(steps, ratio, linestyle="--" if name.endswith("/bias") else "-",
                marker="o" if len(steps) < 12 else None, markersize=3, color=f"C{k // 2 % 10}", label=name)
    ax.axhline(1e-3, color="0.3", linestyle=":", linewidth=1.2, label="rule of thumb ≈ 1e-3")
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("‖ΔW‖ / ‖W‖")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="x-small", ncols=min(4, len(stats.weight_names) + 1), loc="best")
    ax.set_title("update-to-weight ratio per weight array", fontsize=9)
    epoch = "" if record.epoch is None else f", epoch {record.epoch}"
    fig.suptitle(title if title else f"Layer statistics: histograms of step {record.step}{epoch}", fontsize=11)
    return _finish(fig, path)


__all__ += ["layer_stats"]
