"""The command line end to end on the real PneumoniaMNIST: train, evaluate, predict, gradcheck."""

import json
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest

from tinycnn.cli import main
from tinycnn.datasets import load
from tinycnn.io import load_model
from tinycnn.medmnist_job import preprocess

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(medmnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    code = main(["train", "--epochs", "1", "--seed", "0", "--out", str(out), "--data", str(medmnist_dir)])
    assert code == 0
    return out


@pytest.mark.slow
def test_train_one_epoch_writes_the_run_folder(run_dir, capsys):
    expected = {"model.npz", "history.json", "metrics.json", "training_curves.png",
                "confusion_matrix.png", "roc_curve.png"}
    assert {p.name for p in run_dir.iterdir()} == expected
    for png in ("training_curves.png", "confusion_matrix.png", "roc_curve.png"):
        assert (run_dir / png).read_bytes()[:8] == PNG_SIGNATURE
    history = json.loads((run_dir / "history.json").read_text())
    assert {"loss", "accuracy", "val_acc", "val_auc"} <= set(history) and len(history["loss"]) == 1
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["dataset"] == "pneumoniamnist" and metrics["best_epoch"] == 1
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
    # the same preprocessing as training (the default recipe standardises with the training stats)
    probs = model.predict(preprocess(image[None], model.metadata["preprocessing"]))[0]
    assert model.metadata["preprocessing"].get("mean") is not None
    printed = dict(line.split() for line in out.splitlines()[1:] if not line.strip().startswith("->"))
    assert set(printed) == {"normal", "pneumonia"}
    assert float(printed["normal"]) == pytest.approx(probs[0], abs=6e-4)
    assert float(printed["pneumonia"]) == pytest.approx(probs[1], abs=6e-4)
    assert f"-> {['normal', 'pneumonia'][int(probs.argmax())]}" in out


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
