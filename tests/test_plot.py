"""Tests for tinycnn.plot: valid PNGs, written atomically, and figures with the right content."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from tinycnn import metrics, plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _history(epochs=6):
    t = np.arange(epochs)
    return {
        "loss": list(1.0 / (1 + t)),
        "accuracy": list(0.5 + 0.05 * t),
        "val_loss": list(1.2 / (1 + t)),
        "val_accuracy": list(0.45 + 0.05 * t),
        "val_auc": list(0.6 + 0.04 * t),
    }


def _multiclass(n=300, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes  # every class present
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), y] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y.reshape(-1, 1), probs


def _assert_png(path: Path, fig: Figure):
    """``path`` is a PNG of the size of ``fig``, and nothing else is left in its folder."""
    path = Path(path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    width, height = fig.get_size_inches() * fig.dpi
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert abs(image.shape[0] - height) <= 2 and abs(image.shape[1] - width) <= 2
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name], "a temp file remains"
    assert image.std() > 0.01, "the image is blank"


# Each case: (function, positional args); the function is called with path=... or path=None.
def _cases():
    y, probs = _multiclass()
    cm = metrics.confusion_matrix(y, probs.argmax(axis=1), 3)
    images = np.random.default_rng(1).integers(0, 256, size=(10, 28, 28), dtype=np.uint8)
    return {
        "training_curves": (plot.training_curves, (_history(),), {"best_epoch": 3}),
        "confusion_matrix": (plot.confusion_matrix, (cm, ["a", "b", "c"]), {"title": "test"}),
        "roc_curves": (plot.roc_curves, ("multi-class", y, probs, ["a", "b", "c"]), {}),
        "image_grid": (plot.image_grid, (images,), {"ncols": 4}),
    }


CASES = _cases()


# --------------------------------------------------------------------------------------------
# Writing files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_writes_a_valid_png_of_the_figure_size_and_no_temp_file(tmp_path, name):
    func, args, kwargs = CASES[name]
    target = tmp_path / "out" / f"{name}.png"  # the folder does not exist yet
    written = func(*args, path=target, **kwargs)
    assert written == target and isinstance(written, Path)
    _assert_png(target, func(*args, path=None, **kwargs))


@pytest.mark.parametrize("name", sorted(CASES))
def test_path_none_returns_a_figure_and_writes_nothing(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    func, args, kwargs = CASES[name]
    fig = func(*args, **kwargs)
    assert isinstance(fig, Figure)
    assert list(tmp_path.iterdir()) == []


def test_the_temp_file_is_made_in_the_destination_folder_then_renamed(tmp_path, monkeypatch):
    moves = []
    real_replace = os.replace

    def spy(src, dst):
        moves.append((Path(src), Path(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    target = tmp_path / "grid.png"
    plot.image_grid(np.zeros((2, 5, 5)), path=str(target))  # a str path works too
    assert len(moves) == 1
    src, dst = moves[0]
    assert dst == target and src.parent == tmp_path and src != target


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_failed_save_keeps_the_previous_file_and_leaves_no_temp_file(tmp_path, monkeypatch, name):
    func, args, kwargs = CASES[name]
    target = tmp_path / "figure.png"
    before = b"the previous, complete file"
    target.write_bytes(before)

    def broken(*_args, **_kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(FigureCanvasAgg, "print_png", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        func(*args, path=target, **kwargs)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]


def test_overwrites_an_existing_file(tmp_path):
    target = tmp_path / "grid.png"
    target.write_bytes(b"old")
    plot.image_grid(np.zeros((3, 4, 4)), path=target)
    assert target.read_bytes()[:8] == PNG_SIGNATURE


def test_rejects_a_path_that_is_not_png(tmp_path):
    with pytest.raises(ValueError, match="png"):
        plot.image_grid(np.zeros((1, 4, 4)), path=tmp_path / "grid.jpg")
    assert list(tmp_path.iterdir()) == []


def test_works_from_several_threads_at_once(tmp_path):
    errors = []

    def work(i):
        try:
            y, probs = _multiclass(seed=i)
            plot.roc_curves("multi-class", y, probs, ["a", "b", "c"], tmp_path / f"roc{i}.png")
            plot.training_curves(_history(3 + i), tmp_path / f"curves{i}.png")
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([f"roc{i}.png" for i in range(4)] + [f"curves{i}.png" for i in range(4)])
    for name in names:
        assert (tmp_path / name).read_bytes()[:8] == PNG_SIGNATURE


def test_never_imports_pyplot(tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from tinycnn import plot\n"
        f"plot.image_grid(np.zeros((2, 4, 4)), path={str(tmp_path / 'g.png')!r})\n"
        "plot.training_curves({'loss': [1.0, 0.5]})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# --------------------------------------------------------------------------------------------
# training_curves
# --------------------------------------------------------------------------------------------


def test_training_curves_panels_lines_epochs_and_best_epoch():
    history = _history(epochs=6)
    fig = plot.training_curves(history, best_epoch=4)
    assert len(fig.axes) == 3  # loss, accuracy, AUC
    loss_ax = fig.axes[0]
    labels = {ax: [line.get_label() for line in ax.lines] for ax in fig.axes}
    assert set(labels[loss_ax]) >= {"loss", "val_loss"}
    all_labels = [label for ax in fig.axes for label in labels[ax]]
    for key in history:
        assert all_labels.count(key) == 1, key
    for ax in fig.axes:
        data_lines = [line for line in ax.lines if line.get_label() in history]
        for line in data_lines:
            np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 7))
            np.testing.assert_allclose(line.get_ydata(), history[line.get_label()])
        best = [line for line in ax.lines if line.get_label() not in history]
        assert len(best) == 1 and set(np.ravel(best[0].get_xdata())) == {4}
        assert ax.get_xlabel() == "epoch"


def test_training_curves_groups_train_and_validation_and_acc_alias():
    history = {"loss": [1, 0.5], "val_loss": [1.1, 0.7], "val_acc": [0.5, 0.6],
               "accuracy": [0.4, 0.6], "val_accuracy": [0.45, 0.55]}
    fig = plot.training_curves(history)
    assert len(fig.axes) == 2
    groups = sorted(sorted(line.get_label() for line in ax.lines) for ax in fig.axes)
    assert groups == [["accuracy", "val_acc", "val_accuracy"], ["loss", "val_loss"]]
    assert not any(line.get_label().startswith("best epoch") for ax in fig.axes for line in ax.lines)


def test_training_curves_accepts_a_keras_like_history_object():
    class History:
        history = {"loss": [0.9, 0.8, 0.7]}

    fig = plot.training_curves(History())
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 1


@pytest.mark.parametrize(
    ("history", "best"),
    [
        ({}, None),
        ([1, 2, 3], None),
        ({"loss": [1, 2], "val_loss": [1]}, None),
        ({"loss": []}, None),
        ({"loss": ["a", "b"]}, None),
        ({"loss": [1, 2, 3]}, 0),
        ({"loss": [1, 2, 3]}, 4),
        ({"loss": [1, 2, 3]}, 1.5),
    ],
)
def test_training_curves_bad_input(history, best):
    with pytest.raises(ValueError):
        plot.training_curves(history, best_epoch=best)


# --------------------------------------------------------------------------------------------
# confusion_matrix
# --------------------------------------------------------------------------------------------


def test_confusion_matrix_counts_percentages_and_axis_labels():
    cm = np.array([[3, 1, 0], [0, 4, 0], [2, 2, 4]])
    fig = plot.confusion_matrix(cm, ["cat", "dog", "eel"], title="pets")
    assert len(fig.axes) == 2  # the matrix and its colour bar
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 2 * cm.size  # a count and a percentage per cell
    for value in np.unique(cm):
        assert str(value) in texts
    for pct in ("75.0%", "25.0%", "100.0%", "50.0%", "0.0%"):  # rows: 3/4, 1/4, 4/4, 4/8, 0
        assert pct in texts
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog", "eel"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog", "eel"]
    assert "pets" in ax.get_title()


def test_confusion_matrix_row_without_samples_is_not_a_division_by_zero():
    fig = plot.confusion_matrix(np.array([[5, 0], [0, 0]]), ["x", "y"])
    assert "100.0%" in [t.get_text() for t in fig.axes[0].texts]


@pytest.mark.parametrize(
    ("cm", "labels"),
    [
        (np.zeros((2, 3), dtype=int), ["a", "b"]),  # not square
        (np.zeros(3, dtype=int), ["a", "b", "c"]),  # not 2-D
        (np.eye(3, dtype=int), ["a", "b"]),  # labels length mismatch
        (np.eye(2, dtype=int), "ab"),  # a string is not a list of names
        (-np.eye(2, dtype=int), ["a", "b"]),  # negative count
        (np.eye(2) * 0.5, ["a", "b"]),  # not whole numbers
        (np.array([["1", "0"], ["0", "1"]]), ["a", "b"]),  # not numbers
    ],
)
def test_confusion_matrix_bad_input(cm, labels):
    with pytest.raises(ValueError):
        plot.confusion_matrix(cm, labels)


# --------------------------------------------------------------------------------------------
# roc_curves
# --------------------------------------------------------------------------------------------


def _legend_texts(ax):
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()], legend.get_title().get_text()


def test_roc_multiclass_one_curve_per_class_plus_chance_and_official_mean_auc():
    y, probs = _multiclass(classes=3)
    fig = plot.roc_curves("multi-class", y, probs, ["alpha", "beta", "gamma"])
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.lines) == 4  # three classes + the chance line
    chance = ax.lines[-1]
    np.testing.assert_allclose(chance.get_xdata(), [0, 1])
    np.testing.assert_allclose(chance.get_ydata(), [0, 1])
    texts, title = _legend_texts(ax)
    aucs = [metrics.auc(y[:, 0] == c, probs[:, c]) for c in range(3)]
    for name, area in zip(["alpha", "beta", "gamma"], aucs):
        assert any(name in t and f"{area:.3f}" in t for t in texts), (name, texts)
    official = metrics.medmnist_scores("multi-class", y, probs)["auc"]
    assert f"{official:.3f}" in title
    for line, c in zip(ax.lines[:3], range(3)):
        fpr, tpr, _ = metrics.roc_curve(y[:, 0] == c, probs[:, c])
        np.testing.assert_allclose(line.get_xdata(), fpr)
        np.testing.assert_allclose(line.get_ydata(), tpr)


def test_roc_binary_uses_the_last_column():
    rng = np.random.default_rng(3)
    y = np.arange(100) % 2
    positive = np.clip(0.3 * y + 0.7 * rng.random(100), 0, 1)
    fig = plot.roc_curves("binary-class", y.reshape(-1, 1), np.c_[1 - positive, positive],
                          ["normal", "pneumonia"])
    ax = fig.axes[0]
    assert len(ax.lines) == 2
    texts, _ = _legend_texts(ax)
    assert "pneumonia" in texts[0] and f"{metrics.auc(y, positive):.3f}" in texts[0]


def test_roc_ordinal_is_drawn_like_multiclass():
    y, probs = _multiclass(classes=5)
    fig = plot.roc_curves("ordinal-regression", y, probs, list("01234"))
    assert len(fig.axes[0].lines) == 6


def test_roc_multilabel_one_curve_per_label():
    rng = np.random.default_rng(4)
    y = (rng.random((200, 4)) < 0.3).astype(int)
    y[0], y[1] = 1, 0  # every label has both values
    scores = 0.5 * y + 0.5 * rng.random((200, 4))
    fig = plot.roc_curves("multi-label, binary-class", y, scores, ["w", "x", "y", "z"])
    ax = fig.axes[0]
    assert len(ax.lines) == 5
    _, title = _legend_texts(ax)
    official = metrics.medmnist_scores("multi-label, binary-class", y, scores)["auc"]
    assert f"{official:.3f}" in title


def test_roc_many_labels_get_distinct_colours():
    rng = np.random.default_rng(5)
    y = (rng.random((300, 14)) < 0.3).astype(int)
    y[0], y[1] = 1, 0
    fig = plot.roc_curves("multi-label, binary-class", y, rng.random((300, 14)), list("abcdefghijklmn"))
    colours = {to_rgba(line.get_color()) for line in fig.axes[0].lines[:-1]}
    assert len(colours) == 14


def _roc_bad_cases():
    y, probs = _multiclass(classes=3)
    missing = np.where(y == 2, 1, y)  # class 2 never occurs
    return [
        ("multi-class", y, probs, ["a", "b"]),  # labels length mismatch
        ("multi-class", missing, probs, ["a", "b", "c"]),  # a class with no sample
        ("multi-class", y, probs[:-1], ["a", "b", "c"]),  # sample counts differ
        ("multi-class", y + 3, probs, ["a", "b", "c"]),  # class index out of range
        ("multi-class", y, np.where(probs > 0.9, np.nan, probs), ["a", "b", "c"]),
        ("binary-class", y % 2, probs, ["neg", "pos"]),  # 3 score columns for a binary task
        ("binary-class", y % 2, probs[:, :2], ["only one"]),
        ("multi-label, binary-class", y, probs, ["a", "b", "c"]),  # y not (N, L)
        ("regression", y, probs, ["a", "b", "c"]),  # unknown task
    ]


@pytest.mark.parametrize("case", range(len(_roc_bad_cases())))
def test_roc_bad_input(case):
    task, y, scores, labels = _roc_bad_cases()[case]
    with pytest.raises(ValueError):
        plot.roc_curves(task, y, scores, labels)


def test_roc_missing_class_error_names_the_class():
    y, probs = _multiclass(classes=3)
    with pytest.raises(ValueError, match="gamma"):
        plot.roc_curves("multi-class", np.where(y == 2, 0, y), probs, ["alpha", "beta", "gamma"])


# --------------------------------------------------------------------------------------------
# image_grid
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "images",
    [
        np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8),
        np.random.default_rng(0).integers(0, 256, (7, 28, 28, 1), dtype=np.uint8),
        np.random.default_rng(0).integers(0, 256, (7, 28, 28, 3), dtype=np.uint8),
        np.random.default_rng(0).random((7, 28, 28, 3)),  # float in [0, 1]
        np.random.default_rng(0).normal(size=(7, 28, 28, 1)),  # standardised floats
    ],
)
def test_image_grid_one_axes_per_image_grey_or_rgb(images):
    fig = plot.image_grid(images, labels=[f"c{i}" for i in range(7)], ncols=3)
    assert len(fig.axes) == 7
    assert [ax.get_title() for ax in fig.axes] == [f"c{i}" for i in range(7)]
    shown = fig.axes[0].get_images()[0].get_array()
    assert shown.shape[:2] == (28, 28)
    rgb = images.ndim == 4 and images.shape[-1] == 3
    assert (shown.ndim == 3) == rgb


def test_image_grid_rows_and_columns():
    fig = plot.image_grid(np.zeros((10, 4, 4), dtype=np.uint8), ncols=4)
    positions = {(round(ax.get_position().x0, 3), round(ax.get_position().y0, 3)) for ax in fig.axes}
    assert len({x for x, _ in positions}) == 4 and len({y for _, y in positions}) == 3
    wide = plot.image_grid(np.zeros((3, 4, 4), dtype=np.uint8), ncols=8)
    assert len(wide.axes) == 3


def test_image_grid_label_arrays_as_stored_by_medmnist():
    labels = np.array([[0], [3], [1]], dtype=np.uint8)  # (N, 1), as in the .npz files
    fig = plot.image_grid(np.zeros((3, 4, 4)), labels=labels)
    assert [ax.get_title() for ax in fig.axes] == ["0", "3", "1"]


@pytest.mark.parametrize(
    ("images", "labels", "ncols"),
    [
        (np.zeros((2, 4, 4, 2)), None, 8),  # two channels
        (np.zeros((0, 4, 4)), None, 8),  # no image
        (np.zeros(5), None, 8),  # not an image batch
        (np.zeros((3, 4, 4)), ["a", "b"], 8),  # labels length mismatch
        (np.zeros((3, 4, 4)), "abc", 8),  # a string is not one label per image
        (np.zeros((3, 4, 4)), None, 0),
        (np.full((3, 4, 4), 300), None, 8),  # integers outside 0..255
        (np.full((3, 4, 4), np.nan), None, 8),
        (np.array([["a"]]), None, 8),
    ],
)
def test_image_grid_bad_input(images, labels, ncols):
    with pytest.raises(ValueError):
        plot.image_grid(images, labels=labels, ncols=ncols)
