"""MedMNIST+ image sizes (64, 128, 224): registry, loading, downloading, zoo, training, CLI.

No 64/128/224 file of the official package is on this machine (and there is no internet), so
every file here at those sizes is a small synthetic ``.npz`` with the official keys and shapes,
loaded from a temporary folder or downloaded from an HTTP server on 127.0.0.1 that serves one.
The 28×28 default is checked on the real files (``medmnist_dir``: fails rather than skips in CI).
"""

import dataclasses
import functools
import hashlib
import http.server
import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest

import tinycnn
from tinycnn import cli
from tinycnn.datasets import (
    INFO,
    SIZES,
    SPLITS,
    DownloadError,
    get_info,
    load,
    load_file,
    to_float,
)
from tinycnn.medmnist_job import DEFAULT_RECIPE, train, with_overrides, write_medmnist_results
from tinycnn.zoo import MODELS

# ---------------------------------------------------------------------------------------------
# The official facts, transcribed by hand
# ---------------------------------------------------------------------------------------------

# Which sizes each 2D dataset is offered at, from the official package, version 3.0.2:
# https://github.com/MedMNIST/MedMNIST/blob/main/medmnist/info.py (every 2D entry has url_64/MD5_64,
# url_128/MD5_128, url_224/MD5_224 beside url/MD5) and
# https://github.com/MedMNIST/MedMNIST/blob/main/medmnist/dataset.py (MedMNIST2D.available_sizes =
# [28, 64, 128, 224]); https://github.com/MedMNIST/MedMNIST/blob/main/on_medmnist_plus.md says the
# same in words.
OFFICIAL_SIZES = {
    "pathmnist": (28, 64, 128, 224),
    "chestmnist": (28, 64, 128, 224),
    "dermamnist": (28, 64, 128, 224),
    "octmnist": (28, 64, 128, 224),
    "pneumoniamnist": (28, 64, 128, 224),
    "retinamnist": (28, 64, 128, 224),
    "breastmnist": (28, 64, 128, 224),
    "bloodmnist": (28, 64, 128, 224),
    "tissuemnist": (28, 64, 128, 224),
    "organamnist": (28, 64, 128, 224),
    "organcmnist": (28, 64, 128, 224),
    "organsmnist": (28, 64, 128, 224),
}

# A few digests copied by hand from the same info.py, one per size and then some, to catch a
# digest put under the wrong size or the wrong dataset.
OFFICIAL_MD5_SAMPLES = {
    ("pneumoniamnist", 64): "8f4eceb4ccffa70c672198ea285246c6",
    ("pneumoniamnist", 128): "05b46931834c231683c68f40c47b2971",
    ("pneumoniamnist", 224): "d6a3c71de1b945ea11211b03746c1fe1",
    ("breastmnist", 64): "742edef2a1fd1524b2efff4bd7ba9364",
    ("retinamnist", 128): "e48e916a24454daf90583d4e6efb1a18",
    ("pathmnist", 224): "2c51a510bcdc9cf8ddb2af93af1eadec",
    ("organsmnist", 64): "53a6d115339d874c25e309a994ff46d3",
    ("chestmnist", 224): "45bd33e6f06c3e8cdb481c74a89152aa",
}


def test_registry_sizes_are_the_official_ones() -> None:
    assert set(INFO) == set(OFFICIAL_SIZES)
    for name, sizes in OFFICIAL_SIZES.items():
        assert INFO[name].sizes == sizes, name
    assert SIZES == (28, 64, 128, 224)


@pytest.mark.parametrize("name", list(OFFICIAL_SIZES))
def test_registry_files_follow_the_official_names(name: str) -> None:
    info = INFO[name]
    for size in info.sizes:
        official = info.file(size)
        expected = f"{name}.npz" if size == 28 else f"{name}_{size}.npz"
        assert (official.name, official.size, official.filename) == (name, size, expected)
        assert official.url == f"https://zenodo.org/records/10519652/files/{expected}?download=1"
        assert len(official.md5) == 32 and set(official.md5) <= set("0123456789abcdef")
    # 28 is the entry that was there before the larger sizes: nothing about it changed.
    assert (info.file(28).url, info.file(28).md5, info.file().filename) == (info.url, info.md5, info.filename)


def test_registry_md5s_match_the_hand_copied_ones_and_are_all_different() -> None:
    for (name, size), md5 in OFFICIAL_MD5_SAMPLES.items():
        assert INFO[name].file(size).md5 == md5, (name, size)
    digests = [info.file(size).md5 for info in INFO.values() for size in info.sizes]
    assert len(digests) == 48 and len(set(digests)) == 48


def test_registry_larger_files_cannot_be_changed_by_accident() -> None:
    with pytest.raises(TypeError):
        INFO["pneumoniamnist"].larger[64] = ("http://example.org/x.npz", "0" * 32)


@pytest.mark.parametrize("size", [0, 27, 32, 56, 96, 256, -64])
def test_size_not_offered_is_a_clear_error(size: int) -> None:
    with pytest.raises(ValueError, match=rf"breastmnist has no {size}×{size} images.*28, 64, 128, 224"):
        get_info("breastmnist").file(size)
    with pytest.raises(ValueError, match="28, 64, 128, 224"):
        load("breastmnist", root="/nonexistent-folder", size=size, download=False)


@pytest.mark.parametrize("size", ["64", 64.0, True, None])
def test_size_must_be_an_int(size) -> None:
    with pytest.raises(TypeError, match="size must be an int"):
        get_info("breastmnist").file(size)


def test_numpy_int_sizes_are_accepted() -> None:
    assert get_info("breastmnist").file(np.int64(64)).filename == "breastmnist_64.npz"


# ---------------------------------------------------------------------------------------------
# Small synthetic files at any size
# ---------------------------------------------------------------------------------------------


def make_arrays(name: str, size: int, counts=(6, 3, 4), seed: int = 0, learnable: bool = False) -> dict:
    """Six arrays with the official keys, dtypes and shapes for ``name`` at ``size``×``size``.

    ``learnable``: single-label images whose class is written in them (class k: a bright square
    in the k-th of n horizontal bands, over noise), so a network can learn them in a few steps.
    """
    info = INFO[name]
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(SPLITS, counts):
        channels = () if info.n_channels == 1 else (info.n_channels,)
        images = rng.integers(0, 60, size=(n, size, size, *channels), dtype=np.uint8)
        if info.is_multilabel:
            labels = rng.integers(0, 2, size=(n, info.n_classes), dtype=np.uint8)
        else:
            labels = (np.arange(n) % info.n_classes).astype(np.uint8)[:, None]
            rng.shuffle(labels)
            if learnable:
                band = size // info.n_classes
                for image, label in zip(images, labels[:, 0]):
                    image[label * band:(label + 1) * band, size // 4:3 * size // 4] = 230
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    return arrays


def npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def write_npz(path: Path, arrays: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(npz_bytes(arrays))
    return path


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, size", [("pneumoniamnist", 64), ("retinamnist", 128), ("chestmnist", 224)])
def test_load_picks_the_file_of_the_size(name: str, size: int, isolated: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_npz(root / f"{name}.npz", make_arrays(name, 28, counts=(5, 2, 2)))
    write_npz(root / f"{name}_{size}.npz", make_arrays(name, size, counts=(3, 2, 2)))

    data = load(name, root=root, size=size, download=False)
    channels = () if INFO[name].n_channels == 1 else (3,)
    assert data.size == size and data.path == root / f"{name}_{size}.npz"
    assert data.train.images.shape == (3, size, size, *channels)
    assert f"size={size}" in repr(data)

    default = load(name, root=root, download=False)     # 28×28 stays the default, from its own file
    assert default.size == 28 and default.path == root / f"{name}.npz"
    assert default.train.images.shape == (5, 28, 28, *channels)


def test_missing_file_names_the_size_and_its_url(isolated: Path, tmp_path: Path) -> None:
    write_npz(tmp_path / "data" / "breastmnist.npz", make_arrays("breastmnist", 28))   # 28 is not 64
    with pytest.raises(FileNotFoundError) as caught:
        load("breastmnist", root=tmp_path / "data", size=64, download=False)
    message = str(caught.value)
    assert "breastmnist_64.npz was not found" in message
    assert "https://zenodo.org/records/10519652/files/breastmnist_64.npz?download=1" in message
    assert str(tmp_path / "data") in message and "size=64" in message


def test_a_file_of_another_size_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "pneumoniamnist.npz", make_arrays("pneumoniamnist", 64))
    with pytest.raises(ValueError, match=r"expected shape \(N, 28, 28\).*got \(6, 64, 64\).*pass size=64"):
        load_file(path, "pneumoniamnist")
    with pytest.raises(ValueError, match=r"expected shape \(N, 128, 128, 3\).*got \(6, 64, 64, 3\)"):
        load_file(write_npz(tmp_path / "b.npz", make_arrays("bloodmnist", 64)), "bloodmnist", size=128)
    assert load_file(path, "pneumoniamnist", size=64).size == 64


def test_default_28_on_the_real_files(medmnist_dir: Path) -> None:
    data = load("pneumoniamnist", root=medmnist_dir, download=False)
    assert data.size == 28 and data.path.name == "pneumoniamnist.npz"
    assert data.train.images.shape == (4708, 28, 28)


# ---------------------------------------------------------------------------------------------
# Downloading from a local HTTP server
# ---------------------------------------------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:
        pass


@pytest.fixture
def file_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """An HTTP server on 127.0.0.1 serving the folder it returns, in a thread; yields (folder, base URL)."""
    for variable in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)    # no proxy between us and 127.0.0.1
    folder = tmp_path / "served"
    (folder / "files").mkdir(parents=True)
    handler = functools.partial(_QuietHandler, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        host, port = httpd.server_address[:2]
        yield folder, f"http://{host}:{port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def point_registry_at(monkeypatch, name: str, size: int, url: str, md5: str) -> None:
    """The registry entry of ``name`` with its ``size`` file at ``url`` with digest ``md5``."""
    info = INFO[name]
    monkeypatch.setitem(INFO, name, dataclasses.replace(info, larger={**info.larger, size: (url, md5)}))


def test_load_downloads_the_64_file_with_its_md5_and_progress(
    file_server, isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    served, base = file_server
    body = npz_bytes(make_arrays("pneumoniamnist", 64, counts=(7, 2, 3)))
    (served / "files" / "pneumoniamnist_64.npz").write_bytes(body)
    point_registry_at(monkeypatch, "pneumoniamnist", 64, f"{base}/files/pneumoniamnist_64.npz?download=1",
                      hashlib.md5(body).hexdigest())
    root = tmp_path / "data"

    data = load("pneumoniamnist", root=root, size=64)         # not there: downloaded, checked, loaded

    assert data.path == root / "pneumoniamnist_64.npz" and data.path.read_bytes() == body
    assert sorted(p.name for p in root.iterdir()) == ["pneumoniamnist_64.npz"]
    assert data.n_samples == {"train": 7, "val": 2, "test": 3} and data.size == 64
    assert "pneumoniamnist_64.npz" in capsys.readouterr().err          # the progress bar's label
    # A second load finds the file and does not download again (the server may be gone).
    (served / "files" / "pneumoniamnist_64.npz").unlink()
    assert load("pneumoniamnist", root=root, size=64).path == data.path


def test_md5_mismatch_is_a_clear_error_and_leaves_nothing(
    file_server, isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served, base = file_server
    (served / "files" / "breastmnist_128.npz").write_bytes(npz_bytes(make_arrays("breastmnist", 128)))
    official_md5 = INFO["breastmnist"].file(128).md5          # the real file's digest, not this one's
    url = f"{base}/files/breastmnist_128.npz?download=1"
    point_registry_at(monkeypatch, "breastmnist", 128, url, official_md5)
    root = tmp_path / "data"

    with pytest.raises(DownloadError) as caught:
        load("breastmnist", root=root, size=128)

    message = str(caught.value)
    assert "breastmnist_128.npz" in message and "MD5 digest is wrong" in message
    assert f"expected {official_md5}" in message and url in message
    assert str(root / "breastmnist_128.npz") in message           # where to put a copy by hand
    assert list(root.iterdir()) == []                              # no file, no partial file


# ---------------------------------------------------------------------------------------------
# The model zoo at every size
# ---------------------------------------------------------------------------------------------

# The first Dense layer's inputs, worked out by hand from the layers: seed is a 3×3 valid
# convolution (s − 2) with 32 filters, then a 2×2 pool (floor halving); deeper is two "same"
# convolutions with 2×2 pools (s // 2 // 2) and 64 filters.
DENSE_INPUTS = {"seed": lambda s: ((s - 2) // 2) ** 2 * 32, "deeper": lambda s: (s // 4) ** 2 * 64}


@pytest.mark.parametrize("size", [28, 64, 128, 224])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_zoo_models_build_and_run_at_every_size(name: str, size: int) -> None:
    assert set(MODELS) == set(DENSE_INPUTS)        # a new zoo model needs its row above
    channels = 3 if size == 64 else 1
    model = MODELS[name](5, input_shape=(size, size, channels), seed=0)
    dense = next(layer for layer in model.layers if isinstance(layer, tinycnn.layers.Dense))
    assert dense.params["kernel"].shape == (DENSE_INPUTS[name](size), 128)
    x = np.random.default_rng(0).random((2, size, size, channels), dtype=np.float32)
    y = model.predict(x)
    assert y.shape == (2, 5) and y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_zoo_refuses_an_image_too_small_naming_the_model(name: str) -> None:
    with pytest.raises(ValueError, match=rf"{name}_model with input_shape=\(3, 3, 1\): .*larger than the 1×1 input"):
        MODELS[name](2, input_shape=(3, 3, 1))
    MODELS[name](2, input_shape=(4, 4, 1))         # the smallest both take


# ---------------------------------------------------------------------------------------------
# Training, the run folder, evaluating
# ---------------------------------------------------------------------------------------------


def auc_by_brute_force(labels: np.ndarray, scores: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counting half, over every pair."""
    positive, negative = scores[labels == 1], scores[labels == 0]
    wins = (positive[:, None] > negative[None, :]).sum() + 0.5 * (positive[:, None] == negative[None, :]).sum()
    return wins / (len(positive) * len(negative))


@pytest.fixture(scope="module")
def run_64(tmp_path_factory):
    """A short fit on a tiny learnable synthetic BreastMNIST at 64×64, through medmnist_job.train."""
    root = tmp_path_factory.mktemp("data64")
    write_npz(root / "breastmnist_64.npz", make_arrays("breastmnist", 64, counts=(48, 24, 24), seed=1, learnable=True))
    write_npz(root / "breastmnist.npz", make_arrays("breastmnist", 28, counts=(8, 4, 4), seed=2))
    recipe = with_overrides(DEFAULT_RECIPE, model="seed", epochs=3, batch_size=16)
    out = root / "run"
    result = train("breastmnist", recipe, seed=0, out=out, root=root, verbose=0, size=64)
    return root, out, result


def test_train_at_64_records_the_size_and_learns(run_64) -> None:
    root, out, result = run_64
    assert result["size"] == 64
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["size"] == 64 and summary["dataset"] == "breastmnist"
    assert summary["test"] == result["test"]
    # The class is painted into each image: three epochs separate it (chance would be 0.5).
    assert result["test"]["auc"] > 0.9

    model = tinycnn.load_model(out / "model.npz")
    assert model.input_shape == (64, 64, 1) and model.metadata["size"] == 64
    data = load("breastmnist", root=root, size=64, download=False)
    scores = model.predict(to_float(data.test.images))          # the whole model: uint8 / 255 in
    assert auc_by_brute_force(data.test.labels[:, 0], scores[:, 1]) == pytest.approx(result["test"]["auc"])


def test_train_at_64_writes_the_official_result_files(run_64) -> None:
    root, out, result = run_64
    data = load("breastmnist", root=root, size=64, download=False)
    for split in ("val", "test"):
        files = sorted(out.glob(f"breastmnist_64_{split}_*.csv"))
        assert len(files) == 1, sorted(p.name for p in out.iterdir())
        # Read the name as the official Evaluator.parse_and_evaluate does: flag, size, split.
        flag, size, split_part, *_ = files[0].name.split("_")
        assert (flag, size, split_part) == ("breastmnist", "64", split)
        rows = np.loadtxt(files[0], delimiter=",", ndmin=2)
        labels = getattr(data, split).labels[:, 0]
        assert np.array_equal(rows[:, 0], np.arange(len(labels)))
        auc = auc_by_brute_force(labels, rows[:, 2])
        assert f"[AUC]{auc:.3f}_" in files[0].name


def test_a_64_model_refuses_28_pixel_input(run_64) -> None:
    root, out, _ = run_64
    model = tinycnn.load_model(out / "model.npz")
    x28 = to_float(load("breastmnist", root=root, download=False).test.images)
    with pytest.raises(ValueError, match=r"must have shape \(batch, 64, 64, 1\), got \(4, 28, 28, 1\)"):
        model.predict(x28)


def test_cli_evaluate_uses_the_models_size(run_64, isolated, tmp_path: Path, capsys) -> None:
    root, out, result = run_64
    assert cli.main(["evaluate", str(out / "model.npz"), "--data", str(root), "--out", str(tmp_path / "eval")]) == 0
    printed = capsys.readouterr().out
    assert f"test  ACC {result['test']['acc']:.3f}   AUC {result['test']['auc']:.3f}" in printed
    assert len(list((tmp_path / "eval").glob("breastmnist_64_test_*.csv"))) == 1

    assert cli.main(["evaluate", str(out / "model.npz"), "--data", str(root), "--size", "28"]) == 2
    error = capsys.readouterr().err
    assert "the model takes (64, 64, 1)" in error and "breastmnist has 28×28×1 images" in error


def test_cli_size_option(run_64, isolated, capsys) -> None:
    root, _, _ = run_64
    with pytest.raises(SystemExit) as caught:
        cli.build_parser().parse_args(["train", "--size", "32"])
    assert caught.value.code == 2
    assert "invalid choice: 32 (choose from 28, 64, 128, 224)" in capsys.readouterr().err
    assert cli.build_parser().parse_args(["train"]).size == 28
    assert cli.build_parser().parse_args(["evaluate", "m.npz"]).size is None

    assert cli.main(["explain", "--dataset", "breastmnist", "--size", "64", "--data", str(root)]) == 0
    assert "input x                           (1, 64, 64, 1)" in capsys.readouterr().out
    assert cli.main(["bench", "--dataset", "breastmnist", "--size", "64", "--data", str(root), "--repeats", "1"]) == 0
    assert "(48 training images)" in capsys.readouterr().out


def test_write_medmnist_results_size_flag(tmp_path: Path) -> None:
    labels = np.array([[0], [1], [1], [0]])
    y_score = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]], np.float32)
    # AUC by hand: positives 0.8, 0.6 against negatives 0.1, 0.7: 3 of 4 pairs → 0.75; ACC 3/4.
    path = write_medmnist_results(tmp_path, "breastmnist", "test", labels, y_score, "run1", size=224)
    assert path.name == "breastmnist_224_test_[AUC]0.750_[ACC]0.750@run1.csv"
    path = write_medmnist_results(tmp_path, "breastmnist", "test", labels, y_score, "run1")
    assert path.name == "breastmnist_test_[AUC]0.750_[ACC]0.750@run1.csv"
    with pytest.raises(ValueError, match="no 32×32 images"):
        write_medmnist_results(tmp_path, "breastmnist", "test", labels, y_score, "run1", size=32)
