"""The MedMNIST job (`tinycnn train`) on small files made here (real-data runs are in test_cli.py)."""

import json
import re
import warnings

import matplotlib.image
import numpy as np
import pytest

import tinycnn as tc
from tinycnn.cli import main
from tinycnn.datasets import INFO, to_float
from tinycnn.io import PreprocessingWarning, load_model
from tinycnn.medmnist_job import (DEFAULT_RECIPE, Recipe, clinical_evaluation, move_standardization_into_model,
                                  preprocess, targets, train, with_overrides, write_medmnist_results)
from tinycnn.metrics import medmnist_scores


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
    results = {f"{name}_{split}_[AUC]{result[split]['auc']:.3f}_[ACC]{result[split]['acc']:.3f}"
               "@tinycnn-deeper-seed0.csv" for split in ("val", "test")}
    calibration = set() if INFO[name].task.startswith("multi-label") else {"calibration.png"}   # single-label only
    assert {p.name for p in out.iterdir()} == {"model.npz", "history.json", "metrics.json", "training_curves.png",
                                               "confusion_matrix.png", "roc_curve.png", *results, *calibration}
    model = load_model(out / "model.npz")
    assert model.metadata["task"] == INFO[name].task
    assert model.output_shape == (len(INFO[name].labels),)
    assert json.loads((out / "metrics.json").read_text())["test"] == result["test"]


def test_the_saved_model_is_whole_it_takes_uint8_over_255(tmp_path):
    """The standardisation is the model's first layer, adapted on the training images: the saved
    model alone, on to_float(images), gives the run's test scores exactly."""
    fake_medmnist(tmp_path, "dermamnist", n=(60, 20, 21))             # RGB: one mean per channel
    out = tmp_path / "run"
    result = train("dermamnist", Recipe(epochs=2, batch_size=16), seed=0, out=out, root=tmp_path, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                  # no warning for a whole model
        model = tc.load_model(out / "model.npz")
    first = model.layers[0]
    assert isinstance(first, tc.Normalization) and first.axis == -1
    with np.load(tmp_path / "dermamnist.npz") as d:
        train_images, test_images, test_labels = d["train_images"], d["test_images"], d["test_labels"]
    pixels = train_images.reshape(-1, 3) / 255.0                        # float64, per channel
    np.testing.assert_allclose(first.state["mean"], pixels.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(first.state["variance"], pixels.var(axis=0), rtol=1e-6)
    assert model.metadata["preprocessing"] == {"scale": "uint8/255", "normalization_layer": first.name}
    x_test = test_images.astype(np.float32) / 255                       # as the README prepares images
    assert medmnist_scores("multi-class", test_labels, model.predict(x_test)) == result["test"]


def test_without_normalize_the_model_has_no_normalization_layer(tmp_path):
    fake_medmnist(tmp_path, "breastmnist")
    result = train("breastmnist", Recipe(epochs=1, batch_size=16, normalize=False), seed=0, out=tmp_path / "r",
                   root=tmp_path, verbose=0)
    model = load_model(tmp_path / "r" / "model.npz")
    assert not any(isinstance(layer, tc.Normalization) for layer in model.layers)
    with np.load(tmp_path / "breastmnist.npz") as d:
        x_test, labels = d["test_images"][..., None].astype(np.float32) / 255, d["test_labels"]
    assert medmnist_scores("binary-class", labels, model.predict(x_test)) == result["test"]


# -- MedMNIST's standard evaluation files, read back by the specification --------------------------
#: {flag}_{split}_[AUC]{auc:.3f}_[ACC]{acc:.3f}@{run}.csv (official medmnist/evaluator.py)
RESULT_NAME = re.compile(r"(?P<flag>[a-z]+mnist)_(?P<split>train|val|test)_\[AUC\](?P<auc>\d\.\d{3})"
                         r"_\[ACC\](?P<acc>\d\.\d{3})@(?P<run>[^@.]+)\.csv")


def read_result_file(path):
    """The file name's fields and the scores, read by the format alone: each line
    ``index,score_0,score_1,...``, no header, indices 0, 1, 2, ... in order."""
    fields = RESULT_NAME.fullmatch(path.name).groupdict()
    rows = [line.split(",") for line in path.read_text().splitlines()]
    assert [int(row[0]) for row in rows] == list(range(len(rows)))
    # how the official reader takes the name apart: flag and split before the first two "_",
    # the run between the last "@" and the next "."
    flag, split, *_ = path.name.split("_")
    assert (flag, split) == (fields["flag"], fields["split"])
    assert path.name.split("@")[-1].split(".")[0] == fields["run"]
    return fields, np.array([[float(v) for v in row[1:]] for row in rows])


@pytest.mark.parametrize("flag, classes", [("pneumoniamnist", 2), ("dermamnist", 7), ("chestmnist", 14)])
def test_result_files_follow_the_official_format_and_their_names_hold_their_metrics(tmp_path, flag, classes):
    rng = np.random.default_rng(classes)
    n = 50
    task = INFO[flag].task
    if task.startswith("multi-label"):
        labels = rng.integers(0, 2, (n, classes))
        labels[0], labels[1] = 0, 1
    else:
        labels = (np.arange(n) % classes)[:, None]
    logits = rng.standard_normal((n, classes)) + 2 * (labels == np.arange(classes)) if classes > 2 and not \
        task.startswith("multi-label") else rng.standard_normal((n, classes)) + labels
    y_score = (1 / (1 + np.exp(-logits))).astype(np.float32)
    y_score[3, 0] = 1e-8                                               # a tiny score: written 1e-08, read back
    path = write_medmnist_results(tmp_path, flag, "test", labels, y_score, "tinycnn-seed-7")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]       # no temporary file left behind
    fields, scores = read_result_file(path)
    assert (fields["flag"], fields["split"], fields["run"]) == (flag, "test", "tinycnn-seed-7")
    np.testing.assert_array_equal(scores.astype(np.float32), y_score)  # every score, exactly
    recomputed = medmnist_scores(task, labels, scores)
    assert f"{recomputed['auc']:.3f}" == fields["auc"] and f"{recomputed['acc']:.3f}" == fields["acc"]
    assert recomputed == medmnist_scores(task, labels, y_score)       # the same numbers, not just rounded alike


@pytest.mark.parametrize("args, match", [
    (("mnist", "test", "run1"), "unknown flag 'mnist'"),
    (("breastmnist", "validation", "run1"), "split must be 'train', 'val' or 'test'"),
    (("breastmnist", "test", "run.1"), "run must be a non-empty name"),
    (("breastmnist", "test", ""), "run must be a non-empty name"),
])
def test_result_file_arguments_are_checked(tmp_path, args, match):
    flag, split, run = args
    with pytest.raises(ValueError, match=match):
        write_medmnist_results(tmp_path, flag, split, np.array([[0], [1]]), np.array([[0.9, 0.1], [0.2, 0.8]]), run)
    with pytest.raises(ValueError, match=r"y_score must be float scores of shape \(N, classes\)"):
        write_medmnist_results(tmp_path, "breastmnist", "test", np.array([[0], [1]]), np.array([0.1, 0.8]), "r")


def test_evaluate_out_writes_the_same_files_as_the_run(tmp_path, capsys):
    fake_medmnist(tmp_path, "breastmnist", n=(60, 20, 20))
    run = tmp_path / "run"
    train("breastmnist", Recipe(epochs=1, batch_size=16), seed=3, out=run, root=tmp_path, verbose=0)
    written = sorted(run.glob("*.csv"))
    assert [p.name.split("_")[1] for p in written] == ["test", "val"]
    assert main(["evaluate", str(run / "model.npz"), "--data", str(tmp_path), "--out", str(tmp_path / "eval")]) == 0
    again = sorted((tmp_path / "eval").glob("*.csv"))
    assert [p.name for p in again] == [p.name for p in written]
    assert [p.read_text() for p in again] == [p.read_text() for p in written]
    assert main(["evaluate", str(run / "model.npz"), "--data", str(tmp_path), "--out", str(tmp_path / "e2"),
                 "--run", "mine"]) == 0
    assert all(p.name.endswith("@mine.csv") for p in (tmp_path / "e2").iterdir())


# -- model files that keep the standardisation outside the model -----------------------------------
def old_style_model_file(folder, name="breastmnist"):
    """A model file as it looks when the standardisation lives in its metadata, not in the model:
    a bare zoo model trained on standardised images, with the mean and std to apply first."""
    with np.load(folder / f"{name}.npz") as d:
        x, labels = d["train_images"][..., None].astype(np.float64) / 255, d["train_labels"][:, 0]
    mean, std = np.float32(x.mean()), np.float32(x.std())
    model = tc.zoo.seed_model(2, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(((x.astype(np.float32) - mean) / std), labels, epochs=2, batch_size=16, verbose=0)
    model.metadata = {"dataset": name, "task": INFO[name].task, "labels": list(INFO[name].labels),
                      "preprocessing": {"scale": "uint8/255", "mean": [float(mean)], "std": [float(std)]}}
    model.save(folder / "old.npz")
    return folder / "old.npz", mean, std


def test_old_model_files_warn_from_python_and_are_still_evaluated_right_by_the_cli(tmp_path, capsys):
    fake_medmnist(tmp_path, "breastmnist", n=(80, 30, 30))
    path, mean, std = old_style_model_file(tmp_path)
    with pytest.warns(PreprocessingWarning, match=r"expects standardised inputs.*"
                                                  r"move_standardization_into_model") as record:
        model = tc.load_model(path)
    assert issubclass(record[0].category, UserWarning)
    with np.load(tmp_path / "breastmnist.npz") as d:
        test_images, test_labels = d["test_images"], d["test_labels"]
    right = model.predict((test_images[..., None].astype(np.float32) / 255 - mean) / std)
    wrong = model.predict(test_images[..., None].astype(np.float32) / 255)
    assert not np.allclose(right, wrong)

    with warnings.catch_warnings():
        warnings.simplefilter("error")                                  # the CLI applies it: no warning
        assert main(["evaluate", str(path), "--data", str(tmp_path), "--out", str(tmp_path / "eval")]) == 0
        png = tmp_path / "img.png"
        matplotlib.image.imsave(png, np.repeat(test_images[0][:, :, None], 3, axis=2))
        assert main(["predict", str(path), str(png)]) == 0
    out = capsys.readouterr().out
    expected = medmnist_scores("binary-class", test_labels, right)
    assert f"test  ACC {expected['acc']:.3f}   AUC {expected['auc']:.3f}" in out
    (test_file,) = (tmp_path / "eval").glob("breastmnist_test_*.csv")
    np.testing.assert_array_equal(read_result_file(test_file)[1].astype(np.float32), right)
    labels = INFO["breastmnist"].labels
    printed = dict(line.strip().rsplit(None, 1) for line in out.splitlines() if line.strip().startswith(labels))
    assert float(printed[labels[1]]) == pytest.approx(right[0, 1], abs=6e-4)      # printed with 3 decimals
    assert float(printed[labels[0]]) == pytest.approx(right[0, 0], abs=6e-4)


def test_an_old_model_file_converts_into_a_whole_model(tmp_path):
    fake_medmnist(tmp_path, "breastmnist", n=(80, 30, 30))
    path, mean, std = old_style_model_file(tmp_path)
    with pytest.warns(PreprocessingWarning):
        old = tc.load_model(path)
    whole = move_standardization_into_model(old)
    assert isinstance(whole.layers[0], tc.Normalization) and len(whole.layers) == len(old.layers) + 1
    assert whole.metadata["preprocessing"] == {"scale": "uint8/255", "normalization_layer": "normalization"}
    assert old.metadata["preprocessing"]["mean"] == [float(mean)]      # the original is left as it was
    with np.load(tmp_path / "breastmnist.npz") as d:
        images = d["test_images"]
    expected = old.predict(preprocess(images, old.metadata["preprocessing"]))
    np.testing.assert_array_equal(whole.predict(to_float(images)), expected)     # the same numbers, exactly
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reloaded = tc.load_model(whole.save(tmp_path / "whole.npz"))
    np.testing.assert_array_equal(reloaded.predict(to_float(images)), expected)
    with pytest.raises(ValueError, match="has no mean and std"):
        move_standardization_into_model(whole)


def test_a_float32_std_survives_the_variance_round_trip():
    """Normalization divides by sqrt(variance); given variance = float32(std²), that is std again,
    exactly, for any float32 std — which the conversion of old model files relies on."""
    std = np.random.default_rng(0).uniform(1e-3, 10, 200_000).astype(np.float32)
    variance = np.square(std.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(np.sqrt(variance), std)


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
    ({"flip": "yes"}, "flip must be True or False, got 'yes'"),
    ({"flip": 1}, "flip must be True or False, got 1"),
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


@pytest.mark.parametrize("shift, flip", [(0, False), (0, True), (2, False), (2, True)])
def test_the_augmentation_is_the_recipe_s_shift_then_flip(shift, flip):
    from tinycnn.datasets import random_flip, random_shift
    from tinycnn.medmnist_job import augmentation

    x = np.random.default_rng(0).random((16, 28, 28, 1)).astype(np.float32)
    augment = augmentation(Recipe(shift=shift, flip=flip))
    if not shift and not flip:
        assert augment is None
        return
    got = augment(x, np.random.default_rng(5))
    rng = np.random.default_rng(5)                  # the same draws, by hand
    expected = random_shift(x, shift, rng) if shift else x
    expected = random_flip(expected, rng) if flip else expected
    np.testing.assert_array_equal(got, expected)
    if flip and not shift:                          # each image as it was, or mirrored left-right
        mirrored = [np.array_equal(g, x[i][:, ::-1]) for i, g in enumerate(got)]
        same = [np.array_equal(g, x[i]) for i, g in enumerate(got)]
        assert all(m != s for m, s in zip(mirrored, same)) and 0 < sum(mirrored) < len(x)


def test_a_dataset_s_own_recipe_is_its_default(tmp_path, monkeypatch):
    import tinycnn.medmnist_job as job

    assert job.default_recipe("pathmnist") == DEFAULT_RECIPE
    for name, recipe in job.DATASET_RECIPES.items():
        assert name in INFO and job.default_recipe(name) == recipe.check()
    fake_medmnist(tmp_path, "breastmnist", n=(60, 20, 20))
    monkeypatch.setitem(job.DATASET_RECIPES, "breastmnist", Recipe(epochs=1, batch_size=16, flip=True))
    result = train("breastmnist", root=tmp_path, verbose=0, write=False, resamples=20)
    assert result["recipe"]["epochs"] == 1 and result["recipe"]["flip"] is True
    seen = []
    monkeypatch.setattr(job, "train", lambda dataset, recipe, **kwargs: seen.append((dataset, recipe)))
    assert main(["train", "--dataset", "breastmnist", "--batch-size", "8"]) == 0
    assert main(["train", "--dataset", "pathmnist", "--flip", "--no-normalize"]) == 0
    assert seen == [("breastmnist", Recipe(epochs=1, batch_size=8, flip=True)),
                    ("pathmnist", with_overrides(DEFAULT_RECIPE, flip=True, normalize=False))]


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


# -- the clinical evaluation in the run ------------------------------------------------------------
def test_a_multiclass_run_reports_per_class_scores_recomputed_from_its_test_file(medmnist_dir, tmp_path):
    """A real RetinaMNIST run (1 epoch): metrics.json's per-class recall/precision/F1 are the ones
    counted here from the run's own MedMNIST test file; no thresholds (not a binary task); the
    top-label calibration and its figure."""
    out = tmp_path / "run"
    result = train("retinamnist", Recipe(epochs=1), seed=0, out=out, root=medmnist_dir, verbose=0, resamples=200)
    clinical = json.loads((out / "metrics.json").read_text())["clinical"]
    assert clinical == result["clinical"]
    (test_file,) = out.glob("retinamnist_test_*.csv")
    scores = read_result_file(test_file)[1]
    with np.load(medmnist_dir / "retinamnist.npz", allow_pickle=False) as d:
        truth = d["test_labels"][:, 0].tolist()
    predicted = scores.argmax(axis=1).tolist()
    for c in range(5):
        tp = sum(1 for t, p in zip(truth, predicted) if t == c and p == c)
        support = truth.count(c)
        called = predicted.count(c)
        assert clinical["per_class"]["support"][c] == support
        assert clinical["per_class"]["recall"][c] == pytest.approx(tp / support)
        if called:
            assert clinical["per_class"]["precision"][c] == pytest.approx(tp / called)
            if tp:
                assert clinical["per_class"]["f1"][c] == pytest.approx(2 * tp / (support + called))
        else:
            assert clinical["per_class"]["precision"][c] is None              # 0/0: undefined, not 0
    assert "operating_points" not in clinical and "at_prevalence" not in clinical
    assert clinical["calibration"]["kind"] == "top-label" and 0 <= clinical["calibration"]["ece"] <= 1
    assert clinical["test_ci"]["resamples"] == 200 and clinical["test_ci"]["seed"] == 0
    assert clinical["test_ci"]["auc"]["low"] <= result["test"]["auc"] <= clinical["test_ci"]["auc"]["high"]
    assert (out / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_multilabel_run_reports_each_label_and_says_what_does_not_apply(tmp_path, capsys):
    fake_medmnist(tmp_path, "chestmnist", n=(40, 20, 300))         # enough test images to bootstrap 14 labels
    out = tmp_path / "run"
    train("chestmnist", Recipe(epochs=1, batch_size=16), seed=0, out=out, root=tmp_path, verbose=1, resamples=50)
    printed = capsys.readouterr().out
    clinical = json.loads((out / "metrics.json").read_text())["clinical"]
    with np.load(tmp_path / "chestmnist.npz") as d:
        labels = d["test_labels"]
    assert clinical["per_label"]["positives"] == labels.sum(axis=0).tolist()
    assert len(clinical["per_label"]["auc"]) == 14
    assert "threshold" in clinical["not_applicable"] and "calibration" in clinical["not_applicable"]
    assert "operating_points" not in clinical and not (out / "calibration.png").exists()
    assert f"{INFO['chestmnist'].labels[0]}: AUC" in printed and "not computed:" in printed


@pytest.mark.parametrize("options, match", [
    ({"prevalence": 0.0}, "prevalence must be a number strictly between 0 and 1"),
    ({"prevalence": 1.0}, "prevalence must be a number strictly between 0 and 1"),
    ({"prevalence": -0.2}, "prevalence must be a number strictly between 0 and 1"),
    ({"prevalence": float("nan")}, "prevalence must be a number strictly between 0 and 1"),
    ({"prevalence": True}, "prevalence must be a number strictly between 0 and 1"),
    ({"target_sensitivity": 0.0}, r"target sensitivity must be in \(0, 1\]"),
    ({"target_sensitivity": 1.5}, r"target sensitivity must be in \(0, 1\]"),
    ({"resamples": 0}, "resamples must be a positive int"),
])
def test_bad_clinical_options_stop_the_run_before_training(tmp_path, options, match):
    with pytest.raises(ValueError, match=match):          # no data in tmp_path: it stops before loading any
        train("breastmnist", Recipe(epochs=1), root=tmp_path, out=tmp_path / "r", verbose=0, **options)
    assert not (tmp_path / "r").exists()


def test_data_that_cannot_give_a_clinical_report_leave_a_reason_not_a_crash():
    """14 labels, each with a single positive among 20 images: almost no resample holds a positive
    of every label, so no bootstrap interval; the run keeps its model and says why."""
    y = np.zeros((20, 14), np.uint8)
    y[np.arange(14), np.arange(14)] = 1
    s = np.linspace(0.1, 0.9, 20 * 14).reshape(20, 14).astype(np.float32)
    clinical = clinical_evaluation("multi-label, binary-class", y, s, y, s, resamples=10)
    assert set(clinical) == {"task", "error"} and "too few samples for a bootstrap" in clinical["error"]
