"""The MedMNIST job (`tinycnn train`) on small files made here (real-data runs are in test_cli.py)."""

import json

import numpy as np
import pytest

from tinycnn.datasets import INFO
from tinycnn.io import load_model
from tinycnn.medmnist_job import DEFAULT_RECIPE, Recipe, preprocess, targets, train, with_overrides


def fake_medmnist(folder, name, n=(60, 20, 20), seed=0):
    """A small file in the official layout for a dataset that is not on this machine."""
    info = INFO[name]
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        shape = (count, 28, 28) if info.n_channels == 1 else (count, 28, 28, 3)
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        if info.task.startswith("multi-label"):
            labels = rng.integers(0, 2, (count, len(info.labels)))
            labels[0], labels[1] = 0, 1                         # every label has both values
        else:
            labels = np.arange(count)[:, None] % info.n_classes
        arrays[f"{split}_labels"] = labels.astype(np.uint8)
    np.savez(folder / f"{name}.npz", **arrays)


@pytest.mark.parametrize("name", ["chestmnist", "dermamnist"])
def test_pipeline_runs_for_multilabel_and_rgb_multiclass(tmp_path, name):
    fake_medmnist(tmp_path, name)
    out = tmp_path / "run"
    result = train(name, Recipe(epochs=2, batch_size=16), seed=0, out=out, root=tmp_path, verbose=0)
    assert result["best_epoch"] in (1, 2)
    for key in ("acc", "auc"):
        assert 0.0 <= result["test"][key] <= 1.0
    assert {p.name for p in out.iterdir()} == {"model.npz", "history.json", "metrics.json",
                                               "training_curves.png", "confusion_matrix.png", "roc_curve.png"}
    model = load_model(out / "model.npz")
    assert model.metadata["task"] == INFO[name].task
    assert model.output_shape == (len(INFO[name].labels),)
    assert json.loads((out / "metrics.json").read_text())["test"] == result["test"]


def test_best_validation_auc_weights_are_the_ones_kept(tmp_path):
    fake_medmnist(tmp_path, "breastmnist", n=(80, 30, 30))
    result = train("breastmnist", Recipe(epochs=4, batch_size=16), seed=1, root=tmp_path, verbose=0, write=False)
    val_auc = result["history"]["val_auc"]
    assert result["best_epoch"] == int(np.argmax(val_auc)) + 1
    assert result["val"]["auc"] == pytest.approx(max(val_auc))


def test_preprocess_and_targets():
    images = np.full((2, 28, 28), 255, np.uint8)
    x = preprocess(images, {"scale": "uint8/255"})
    assert x.shape == (2, 28, 28, 1) and x.dtype == np.float32 and x.max() == 1.0
    z = preprocess(images, {"mean": [0.5], "std": [0.25]})
    np.testing.assert_allclose(z, 2.0)
    assert targets(np.array([[1], [0]], np.uint8), "binary-class").tolist() == [1, 0]
    assert targets(np.array([[1, 0]], np.uint8), "multi-label, binary-class").shape == (1, 2)


@pytest.mark.parametrize("changes, match", [
    ({"model": "resnet"}, "unknown model 'resnet'"),
    ({"epochs": 0}, "epochs must be a positive int"),
    ({"batch_size": -2}, "batch_size must be a positive int"),
    ({"learning_rate": 0.0}, "learning rate must be positive"),
    ({"shift": 20}, "shift must be an int"),
])
def test_bad_recipes(changes, match):
    with pytest.raises(ValueError, match=match):
        with_overrides(DEFAULT_RECIPE, **changes).check()


def test_with_overrides_ignores_none():
    assert with_overrides(DEFAULT_RECIPE, epochs=None) == DEFAULT_RECIPE
    assert with_overrides(DEFAULT_RECIPE, epochs=3).epochs == 3


def test_recipe_options_reach_the_model_and_the_training(tmp_path):
    fake_medmnist(tmp_path, "breastmnist", n=(60, 20, 20))
    recipe = Recipe(epochs=6, batch_size=16, dropout=0.3, weight_decay=1e-3, class_weight="balanced",
                    early_stopping=0, schedule="cosine")
    result = train("breastmnist", recipe, seed=0, out=tmp_path / "run", root=tmp_path, verbose=0)
    model = load_model(tmp_path / "run" / "model.npz")
    assert any(layer.get_config().get("rate") == 0.3 for layer in model.layers)     # Dropout(0.3)
    assert type(model.optimizer).__name__ == "AdamW" and model.optimizer.weight_decay == 1e-3
    lrs = result["history"]["lr"]
    assert lrs[0] == pytest.approx(1e-3) and all(a > b for a, b in zip(lrs, lrs[1:]))   # cosine decay
    aucs = result["history"]["val_auc"]
    stopped = len(aucs) < 6
    assert stopped == any(b <= a for a, b in zip(aucs, aucs[1:]))    # patience 0: first non-improvement stops
    assert result["recipe"]["class_weight"] == "balanced"


@pytest.mark.parametrize("changes, match", [
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ({"class_weight": "inverse"}, "class_weight must be None or 'balanced'"),
    ({"schedule": "linear"}, "schedule must be one of"),
    ({"early_stopping": -3}, "early_stopping must be None or a patience"),
    ({"oversample": "sometimes"}, "oversample must be 'binary', 'always' or 'never'"),
])
def test_bad_regularisation_options(changes, match):
    """(and the oversampling choice, which is per task: see test_oversampling_follows_the_task)"""
    with pytest.raises(ValueError, match=match):
        with_overrides(DEFAULT_RECIPE, **changes).check()


def test_oversampling_follows_the_task():
    recipe = Recipe()
    assert recipe.sampler("binary-class") == "oversample"
    assert recipe.sampler("ordinal-regression") is None and recipe.sampler("multi-class") is None
    assert with_overrides(recipe, oversample="always").sampler("multi-class") == "oversample"
    assert with_overrides(recipe, oversample="never").sampler("binary-class") is None
    assert recipe.sampler("multi-label, binary-class") is None
