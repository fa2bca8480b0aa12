"""The command line end to end on the real PneumoniaMNIST: train, evaluate, predict, gradcheck."""

import json
import math
import re
import subprocess
import sys
import warnings

import matplotlib.image
import numpy as np
import pytest

import tinycnn as tc
from tinycnn.cli import main
from tinycnn.datasets import load, to_float
from tinycnn.io import PreprocessingWarning, load_model
from tinycnn.medmnist_job import preprocess
from tinycnn.metrics import medmnist_scores

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(medmnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    code = main(["train", "--epochs", "2", "--seed", "0", "--out", str(out), "--data", str(medmnist_dir)])
    assert code == 0
    return out


@pytest.mark.slow
def test_train_two_epochs_writes_the_run_folder(run_dir, capsys):
    expected = {"model.npz", "history.json", "metrics.json", "training_curves.png",
                "confusion_matrix.png", "roc_curve.png", "calibration.png"}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    expected |= {f"pneumoniamnist_{split}_[AUC]{metrics[split]['auc']:.3f}_[ACC]{metrics[split]['acc']:.3f}"
                 "@tinycnn-deeper-seed0.csv" for split in ("val", "test")}
    assert {p.name for p in run_dir.iterdir()} == expected
    for png in ("training_curves.png", "confusion_matrix.png", "roc_curve.png", "calibration.png"):
        assert (run_dir / png).read_bytes()[:8] == PNG_SIGNATURE
    history = json.loads((run_dir / "history.json").read_text())
    assert {"loss", "accuracy", "val_acc", "val_auc"} <= set(history) and len(history["loss"]) == 2
    assert metrics["dataset"] == "pneumoniamnist" and metrics["best_epoch"] == int(np.argmax(history["val_auc"])) + 1
    assert 0.5 < metrics["test"]["auc"] <= 1.0 and 0.0 < metrics["test"]["acc"] <= 1.0
    assert "ResNet-18 (28)" in metrics["published"]


@pytest.mark.slow
def test_evaluate_reproduces_the_saved_test_metrics(run_dir, medmnist_dir, capsys):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert main(["evaluate", str(run_dir / "model.npz"), "--data", str(medmnist_dir)]) == 0
    out = capsys.readouterr().out
    assert f"ACC {metrics['test']['acc']:.3f}   AUC {metrics['test']['auc']:.3f}" in out
    assert "ResNet-18 (28)" in out


@pytest.mark.slow
def test_predict_prints_label_names_and_the_model_probabilities(run_dir, medmnist_dir, tmp_path, capsys):
    data = load("pneumoniamnist", root=medmnist_dir)
    image = data.test.images[0]
    png = tmp_path / "xray.png"
    matplotlib.image.imsave(png, np.repeat(image[:, :, None], 3, axis=2))   # exact uint8 RGB pixels
    assert main(["predict", str(run_dir / "model.npz"), str(png)]) == 0
    out = capsys.readouterr().out
    model = load_model(run_dir / "model.npz")
    # the default recipe standardises inside the model: its input is uint8 / 255, nothing more
    assert isinstance(model.layers[0], tc.Normalization) and "mean" not in model.metadata["preprocessing"]
    probs = model.predict(to_float(image[None]))[0]
    np.testing.assert_array_equal(probs, model.predict(preprocess(image[None], model.metadata["preprocessing"]))[0])
    lines = out.splitlines()
    assert lines[0].startswith("decision: pneumonia iff p(pneumonia) >= ") and lines[1] == f"{png}:"
    printed = dict(line.split() for line in lines[2:] if not line.strip().startswith("->"))
    assert set(printed) == {"normal", "pneumonia"}
    assert float(printed["normal"]) == pytest.approx(probs[0], abs=6e-4)
    assert float(printed["pneumonia"]) == pytest.approx(probs[1], abs=6e-4)
    threshold = model.metadata["operating_threshold"]["threshold"]
    assert lines[-1] == f"  -> {'pneumonia' if probs[1] >= threshold else 'normal'}"


@pytest.mark.slow
def test_predict_decides_at_the_threshold_chosen_on_validation(run_dir, medmnist_dir, tmp_path, capsys):
    """The model carries the operating threshold its run chose on validation (the one in
    metrics.json's clinical evaluation), and `tinycnn predict` calls pneumonia with it; --threshold
    overrides it."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    point = metrics["clinical"]["operating_points"]["sensitivity_target"]
    model = load_model(run_dir / "model.npz")
    stored = model.metadata["operating_threshold"]
    assert stored["threshold"] == point["threshold"] and stored["positive"] == "pneumonia"
    assert stored["test"]["sensitivity"] == point["test"]["sensitivity"]
    assert stored["rule"] == "largest threshold with validation sensitivity >= 0.95"

    data = load("pneumoniamnist", root=medmnist_dir)
    p = model.predict(to_float(data.test.images))[:, 1]
    # two test images on either side of the stored threshold, and one between it and 0.5
    above = int(np.flatnonzero(p >= point["threshold"])[0])
    below = int(np.argmin(np.where(p < point["threshold"], np.abs(p - point["threshold"]), np.inf)))
    pngs = []
    for i in (above, below):
        pngs.append(tmp_path / f"{i}.png")
        matplotlib.image.imsave(pngs[-1], np.repeat(data.test.images[i][:, :, None], 3, axis=2))
    assert main(["predict", str(run_dir / "model.npz"), *map(str, pngs)]) == 0
    verdicts = [line.strip() for line in capsys.readouterr().out.splitlines() if line.strip().startswith("->")]
    assert verdicts == ["-> pneumonia", "-> normal"]
    # the sensitivity the stored threshold reaches on test, recomputed from the model's own scores
    positives = data.test.labels.reshape(-1) == 1
    assert np.mean(p[positives] >= stored["threshold"]) == pytest.approx(stored["test"]["sensitivity"], abs=1e-12)

    assert main(["predict", str(run_dir / "model.npz"), str(pngs[1]), "--threshold", "0"]) == 0
    out = capsys.readouterr().out
    assert "decision: pneumonia iff p(pneumonia) >= 0 (given with --threshold)" in out and "-> pneumonia" in out
    for bad in ("1.5", "nan", "-0.1"):
        assert main(["predict", str(run_dir / "model.npz"), str(pngs[1]), "--threshold", bad]) == 2
        assert "--threshold must be a probability in [0, 1]" in capsys.readouterr().err


@pytest.mark.slow
def test_the_saved_model_alone_reproduces_the_run_and_evaluate_agrees(run_dir, medmnist_dir, tmp_path, capsys):
    """The main job's model is whole: load it, feed it uint8/255 float32 images (as the README's
    30-second example prepares them), and the official metrics are metrics.json's, exactly; so are
    `tinycnn evaluate`'s, and its MedMNIST evaluation files are the run folder's."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    with np.load(medmnist_dir / "pneumoniamnist.npz", allow_pickle=False) as d:
        x_test = d["test_images"][..., None].astype(np.float32) / 255
        y_test = d["test_labels"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = tc.load_model(run_dir / "model.npz")
    scores = medmnist_scores("binary-class", y_test, model.predict(x_test))
    assert scores["auc"] == metrics["test"]["auc"] and scores["acc"] == metrics["test"]["acc"]
    assert scores["auc"] > 0.8                            # a trained model, not a coin toss

    assert main(["evaluate", str(run_dir / "model.npz"), "--data", str(medmnist_dir), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for split in ("val", "test"):
        assert f"{split:5s} ACC {metrics[split]['acc']:.3f}   AUC {metrics[split]['auc']:.3f}" in out
        (mine,) = tmp_path.glob(f"pneumoniamnist_{split}_*.csv")
        (runs,) = run_dir.glob(f"pneumoniamnist_{split}_*.csv")
        assert mine.name == runs.name and mine.read_bytes() == runs.read_bytes()
    (test_file,) = tmp_path.glob("pneumoniamnist_test_*.csv")
    name = re.fullmatch(r"pneumoniamnist_test_\[AUC\](\d\.\d{3})_\[ACC\](\d\.\d{3})@tinycnn-deeper-seed0\.csv",
                        test_file.name)
    assert name.groups() == (f"{scores['auc']:.3f}", f"{scores['acc']:.3f}")
    rows = [line.split(",") for line in test_file.read_text().splitlines()]
    assert [int(r[0]) for r in rows] == list(range(624))
    from_file = np.array([[float(v) for v in r[1:]] for r in rows])
    assert medmnist_scores("binary-class", y_test, from_file) == scores


@pytest.mark.slow
def test_an_old_style_model_file_still_evaluates_right_and_warns_from_python(medmnist_dir, tmp_path, capsys):
    """A model file that keeps its standardisation in metadata["preprocessing"] (mean, std), written
    here by hand: the CLI applies it; Python's load_model warns that the model expects standardised
    inputs (fed uint8/255 alone, it scores worse)."""
    data = load("pneumoniamnist", root=medmnist_dir)
    x = to_float(data.train.images).astype(np.float64)
    mean, std = np.float32(x.mean()), np.float32(x.std())
    model = tc.zoo.seed_model(2, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit((x.astype(np.float32) - mean) / std, data.train.labels[:, 0], epochs=1, batch_size=128, verbose=0)
    model.metadata = {"dataset": "pneumoniamnist", "task": "binary-class", "labels": ["normal", "pneumonia"],
                      "preprocessing": {"scale": "uint8/255", "mean": [float(mean)], "std": [float(std)]}}
    model.save(tmp_path / "old.npz")

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["evaluate", str(tmp_path / "old.npz"), "--data", str(medmnist_dir)]) == 0
    out = capsys.readouterr().out
    x_test = to_float(data.test.images)
    right = medmnist_scores("binary-class", data.test.labels, model.predict((x_test - mean) / std))
    assert f"test  ACC {right['acc']:.3f}   AUC {right['auc']:.3f}" in out and right["auc"] > 0.85
    with pytest.warns(PreprocessingWarning, match="expects standardised inputs"):
        loaded = tc.load_model(tmp_path / "old.npz")
    wrong = medmnist_scores("binary-class", data.test.labels, loaded.predict(x_test))
    assert wrong != right


def _scores_of(run_dir, split):
    """(labels, positive-class scores) of a split, read back from the run's MedMNIST result file."""
    (path,) = run_dir.glob(f"pneumoniamnist_{split}_*.csv")
    rows = [line.split(",") for line in path.read_text().splitlines()]
    return [float(np.float32(row[2])) for row in rows]        # float32 scores, written as their shortest decimals


@pytest.mark.slow
def test_the_run_chooses_its_thresholds_on_val_and_measures_them_on_test(run_dir, medmnist_dir):
    """metrics.json's clinical numbers of a real PneumoniaMNIST run, recomputed here by brute force
    from the run's own val and test result files: the threshold is the validation split's, the
    sensitivity/specificity/PPV/NPV are counted on test."""
    clinical = json.loads((run_dir / "metrics.json").read_text())["clinical"]
    with np.load(medmnist_dir / "pneumoniamnist.npz", allow_pickle=False) as d:
        y_val, y_test = d["val_labels"][:, 0].tolist(), d["test_labels"][:, 0].tolist()
    s_val, s_test = _scores_of(run_dir, "val"), _scores_of(run_dir, "test")

    def rates(ys, ss, t):
        tp = sum(1 for y, s in zip(ys, ss) if y == 1 and s >= t)
        fn = sum(1 for y, s in zip(ys, ss) if y == 1 and s < t)
        tn = sum(1 for y, s in zip(ys, ss) if y == 0 and s < t)
        fp = sum(1 for y, s in zip(ys, ss) if y == 0 and s >= t)
        return tp / (tp + fn), tn / (tn + fp), tp / (tp + fp) if tp + fp else math.nan, tn / (tn + fn) if tn + fn \
            else math.nan

    candidates = sorted(set(s_val), reverse=True)                 # every validation score, highest first
    by_sensitivity = next(t for t in candidates if rates(y_val, s_val, t)[0] >= 0.95)
    youden = max(candidates, key=lambda t: (sum(rates(y_val, s_val, t)[:2]), t))   # a tie: the larger t
    points = clinical["operating_points"]
    assert points["target_sensitivity"] == 0.95
    assert points["sensitivity_target"]["threshold"] == by_sensitivity
    assert points["youden"]["threshold"] == youden
    for key, t in (("sensitivity_target", by_sensitivity), ("youden", youden)):
        test = points[key]["test"]
        se, sp, ppv, npv = rates(y_test, s_test, t)
        assert (test["sensitivity"], test["specificity"], test["ppv"], test["npv"]) == pytest.approx((se, sp, ppv, npv))
        assert test["n"] == 624 and test["positives"] == 390
    # Bayes' rule at the default prevalence (10 %), from the test sensitivity and specificity
    se, sp = points["sensitivity_target"]["test"]["sensitivity"], points["sensitivity_target"]["test"]["specificity"]
    at = clinical["at_prevalence"]
    assert at["prevalence"] == 0.1
    assert at["ppv"] == pytest.approx(0.1 * se / (0.1 * se + 0.9 * (1 - sp)))
    assert at["npv"] == pytest.approx(0.9 * sp / (0.9 * sp + 0.1 * (1 - se)))
    # the intervals: 95 %, 1000 seeded resamples, around the test numbers
    ci = clinical["test_ci"]
    assert (ci["level"], ci["resamples"], ci["seed"]) == (0.95, 1000, 0)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("auc", "acc"):
        assert 0 < ci[key]["low"] <= metrics["test"][key] <= ci[key]["high"] <= 1
        assert ci[key]["high"] - ci[key]["low"] < 0.15                # 624 images: a few points wide
    # ECE over 10 equal-width bins of p(pneumonia), one sample at a time
    bins = [[] for _ in range(10)]
    for y, s in zip(y_test, s_test):
        bins[max(0, math.ceil(s * 10) - 1)].append((y, s))
    ece = sum(len(b) / 624 * abs(sum(y for y, _ in b) / len(b) - sum(s for _, s in b) / len(b)) for b in bins if b)
    assert clinical["calibration"]["ece"] == pytest.approx(ece, abs=1e-6)
    assert clinical["calibration"]["kind"] == "positive" and sum(clinical["calibration"]["count"]) == 624


@pytest.mark.slow
def test_evaluate_prints_the_same_clinical_summary_and_takes_a_prevalence(run_dir, medmnist_dir, capsys):
    clinical = json.loads((run_dir / "metrics.json").read_text())["clinical"]
    assert main(["evaluate", str(run_dir / "model.npz"), "--data", str(medmnist_dir), "--prevalence", "0.3"]) == 0
    out = capsys.readouterr().out
    t = clinical["operating_points"]["sensitivity_target"]["threshold"]
    test = clinical["operating_points"]["sensitivity_target"]["test"]
    assert f"threshold {t:.4g}: largest threshold with validation sensitivity >= 0.95" in out
    assert f"sensitivity {test['sensitivity']:.3f}  specificity {test['specificity']:.3f}" in out
    se, sp = test["sensitivity"], test["specificity"]
    assert f"at prevalence 0.3 (test sensitivity/specificity): PPV {0.3 * se / (0.3 * se + 0.7 * (1 - sp)):.3f}" in out
    ci = clinical["test_ci"]["auc"]
    assert f"[95% CI {ci['low']:.3f}-{ci['high']:.3f}]" in out and "ECE" in out


@pytest.mark.parametrize("command", ["train", "evaluate"])
@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.1", "nan"])
def test_a_prevalence_outside_0_1_is_a_clear_error(command, value, tmp_path, capsys):
    argv = ["train", "--epochs", "1", "--out", str(tmp_path / "r")] if command == "train" \
        else ["evaluate", str(tmp_path / "model.npz")]
    assert main([*argv, "--data", str(tmp_path), "--prevalence", value]) == 2
    err = capsys.readouterr().err
    assert f"tinycnn {command}: error: prevalence must be a number strictly between 0 and 1" in err
    assert "Traceback" not in err and not (tmp_path / "r").exists()


def test_a_target_sensitivity_outside_0_1_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--target-sensitivity", "95", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "target sensitivity must be in (0, 1] (e.g. 0.95), got 95.0" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "model.npz"), "--resamples", "0"]) == 2
    assert "resamples must be a positive int, got 0" in capsys.readouterr().err


def test_predict_refuses_a_wrong_size_image(tmp_path, capsys):
    from tinycnn.zoo import seed_model
    model = seed_model(2, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.save(tmp_path / "m.npz")
    png = tmp_path / "big.png"
    matplotlib.image.imsave(png, np.zeros((40, 30)), cmap="gray")
    assert main(["predict", str(tmp_path / "m.npz"), str(png)]) == 2
    assert "is 30×40 pixels; the model expects 28×28" in capsys.readouterr().err


def test_missing_data_is_a_clear_error_without_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TINYCNN_DATA", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    import tinycnn.datasets.medmnist as medmnist

    def offline(url, *args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(medmnist.urllib.request, "urlopen", offline)
    assert main(["train", "--dataset", "breastmnist", "--epochs", "1", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "breastmnist.npz" in err and "zenodo.org" in err and str(tmp_path) in err
    assert "Traceback" not in err


def test_gradcheck_command_passes():
    result = subprocess.run([sys.executable, "-m", "tinycnn.cli", "gradcheck", "--size", "6", "--max-entries", "30"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "PASS" in result.stdout and "conv2d/kernel" in result.stdout
