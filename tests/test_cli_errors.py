"""The command line as a hostile or unlucky user meets it: every failure is one line on stderr and
an exit status (2: a user error, 1: unexpected, 130: Ctrl-C), never a Python traceback — unless
TINYCNN_DEBUG=1 or --traceback asks for it; a run folder that cannot be written fails before
training; a dataset file with an empty split fails at load time, naming the file and the split."""

import errno
import os
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

import tinycnn
import tinycnn.cli as cli
from tinycnn.cli import main
from tinycnn.datasets import load
from tinycnn.zoo import seed_model


def one_line_error(capsys, command):
    """stderr of the last command: exactly one line, ``tinycnn <command>: ...``, no traceback."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"tinycnn {command}: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def no_training(monkeypatch):
    """Training fails the test: the checks under test must run before it."""
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the run folder (or the arguments) were checked")
    monkeypatch.setattr(tinycnn.Sequential, "fit", refuse)


@pytest.fixture
def offline(monkeypatch):
    import tinycnn.datasets.medmnist as medmnist

    def refuse(url, *args, **kwargs):
        raise OSError("network is unreachable (test)")
    monkeypatch.setattr(medmnist.urllib.request, "urlopen", refuse)


def grey_png(path, shape=(28, 28)):
    matplotlib.image.imsave(path, np.linspace(0, 1, shape[0] * shape[1]).reshape(shape), cmap="gray")
    return path


def model_file(path, **metadata):
    model = seed_model(2, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.metadata = {"dataset": "pneumoniamnist", "labels": ["normal", "pneumonia"], **metadata}
    model.save(path)
    return path


# -- the error boundary ----------------------------------------------------------------------------
@pytest.mark.parametrize("error, status", [
    (KeyError("recipe"), 1), (AttributeError("'list' object has no attribute 'get'"), 1), (IndexError("x"), 1),
    (AssertionError(), 1), (RuntimeError("boom"), 1), (ZeroDivisionError("division by zero"), 1),
    (TypeError("bad type"), 2), (ValueError("bad value"), 2), (PermissionError(13, "Permission denied", "f"), 2),
    (OSError(errno.ENOSPC, "No space left on device"), 2), (RecursionError("too deep"), 2), (MemoryError(), 2),
    (NotADirectoryError(20, "Not a directory", "out"), 2), (IsADirectoryError(21, "Is a directory", "m"), 2),
])
def test_any_exception_is_one_line_and_a_status(monkeypatch, capsys, error, status):
    def failing(args):
        raise error
    monkeypatch.delenv("TINYCNN_DEBUG", raising=False)
    monkeypatch.setattr(cli, "cmd_gradcheck", failing)
    assert main(["gradcheck"]) == status
    line = one_line_error(capsys, "gradcheck")
    if status == 1:
        assert type(error).__name__ in line and "TINYCNN_DEBUG=1" in line and "--traceback" in line
    else:
        assert line.startswith("tinycnn gradcheck: error: ")
    if isinstance(error, MemoryError):
        assert "out of memory" in line


def test_ctrl_c_exits_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "cmd_gradcheck", interrupted)
    assert main(["gradcheck"]) == 130
    assert one_line_error(capsys, "gradcheck") == "tinycnn gradcheck: interrupted"


def test_a_multi_line_message_is_folded_into_one_line(monkeypatch, capsys):
    def failing(args):
        raise ValueError("first line\n  second line\n")
    monkeypatch.setattr(cli, "cmd_gradcheck", failing)
    assert main(["gradcheck"]) == 2
    assert one_line_error(capsys, "gradcheck") == "tinycnn gradcheck: error: first line second line"


@pytest.mark.parametrize("how", ["env", "flag"])
def test_the_full_traceback_on_request(monkeypatch, how):
    def failing(args):
        raise KeyError("the real cause")
    monkeypatch.setattr(cli, "cmd_gradcheck", failing)
    if how == "env":
        monkeypatch.setenv("TINYCNN_DEBUG", "1")
    with pytest.raises(KeyError, match="the real cause"):
        main(["--traceback", "gradcheck"] if how == "flag" else ["gradcheck"])


# -- model metadata of unexpected types --------------------------------------------------------------
GOOD_POINT = {"threshold": 0.9, "positive": "pneumonia", "negative": "normal", "rule": "largest threshold with "
              "validation sensitivity >= 0.95", "validation": {"sensitivity": 0.95, "specificity": 0.9},
              "test": {"sensitivity": 0.96, "specificity": 0.85}}
BAD_METADATA = [
    ({"labels": "normal,pneumonia"}, "metadata['labels'] must be a list of 2 str"),
    ({"labels": [0, 1]}, "metadata['labels'] must be a list of 2 str"),
    ({"labels": {"a": 1}}, "metadata['labels'] must be a list of 2 str"),
    ({"labels": ["only one"]}, "metadata['labels'] names 1 classes, but the model has 2 outputs"),
    ({"dataset": 7}, "metadata['dataset'] must be a str, got int 7"),
    ({"dataset": ["pneumoniamnist"]}, "metadata['dataset'] must be a str"),
    ({"task": 3}, "metadata['task'] must be a str"),
    ({"preprocessing": "uint8/255"}, "metadata['preprocessing'] must be a dict"),
    ({"preprocessing": [1, 2]}, "metadata['preprocessing'] must be a dict"),
    ({"preprocessing": {"mean": [0.5]}}, "has a mean without a std"),
    ({"preprocessing": {"mean": "x", "std": [1.0]}}, "['preprocessing']['mean'] must be 1 finite number"),
    ({"preprocessing": {"mean": [0.1, 0.2], "std": [1.0, 1.0]}}, "['preprocessing']['mean'] must be 1 finite"),
    ({"preprocessing": {"mean": [0.1], "std": [0.0]}}, "['preprocessing']['std'] must be positive"),
    ({"preprocessing": {"mean": [None], "std": [1.0]}}, "['preprocessing']['mean'] must be 1 finite"),
    ({"recipe": "deeper"}, "metadata['recipe'] must be a dict"),
    ({"recipe": {"model": 3}, "seed": 0}, "metadata['recipe']['model'] must be a str"),
    ({"seed": "zero"}, "metadata['seed'] must be an int, got str 'zero'"),
    ({"seed": 1.5}, "metadata['seed'] must be an int"),
    ({"size": "28"}, "metadata['size'] must be an int"),
    ({"size": -28}, "metadata['size'] must be a positive int"),
    ({"operating_threshold": 0.5}, "metadata['operating_threshold'] must be a dict with a finite 'threshold'"),
    ({"operating_threshold": {**GOOD_POINT, "threshold": float("nan")}}, "['operating_threshold'] must be a dict"),
    ({"operating_threshold": {**GOOD_POINT, "threshold": "0.9"}}, "['operating_threshold'] must be a dict"),
    ({"operating_threshold": {**GOOD_POINT, "test": {"sensitivity": 0.9}}}, "['operating_threshold'] must be"),
    ({"operating_threshold": {k: v for k, v in GOOD_POINT.items() if k != "rule"}}, "['operating_threshold']"),
]


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("metadata, message", BAD_METADATA)
def test_metadata_of_unexpected_types_is_a_clear_error(tmp_path, capsys, offline, command, metadata, message):
    path = model_file(tmp_path / "m.npz", **metadata)
    argv = ["predict", str(path), str(grey_png(tmp_path / "x.png"))] if command == "predict" \
        else ["evaluate", str(path), "--data", str(tmp_path)]
    assert main(argv) == 2
    line = one_line_error(capsys, command)
    assert str(path) in line and message in line, line


def test_good_metadata_still_predicts(tmp_path, capsys):
    path = model_file(tmp_path / "m.npz", task="binary-class", seed=3, size=28, recipe={"model": "seed"},
                      preprocessing={"mean": [0.5], "std": [0.25]})
    assert main(["predict", str(path), str(grey_png(tmp_path / "x.png"))]) == 0
    out = capsys.readouterr().out
    assert "normal" in out and "pneumonia" in out and "->" in out


@pytest.mark.parametrize("threshold, verdict", [(0.0, "pneumonia"), (1.0, "normal")])
def test_a_stored_operating_threshold_decides(tmp_path, capsys, threshold, verdict):
    """A probability is never above 1 here (the model's softmax of a grey image is not exactly one
    class), so threshold 1.0 calls every image normal, and 0.0 calls every image pneumonia."""
    path = model_file(tmp_path / "m.npz", task="binary-class", operating_threshold={**GOOD_POINT, "threshold": threshold})
    assert main(["predict", str(path), str(grey_png(tmp_path / "x.png"))]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"decision: pneumonia iff p(pneumonia) >= {threshold:g} (the model's "
                                          "operating threshold: largest threshold with validation sensitivity")
    assert out.splitlines()[-1] == f"  -> {verdict}"


# -- the run folder: checked before training ---------------------------------------------------------
def test_out_pointing_at_a_file_fails_before_training(medmnist_dir, tmp_path, capsys, no_training):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    assert main(["train", "--epochs", "1", "--out", str(target), "--data", str(medmnist_dir)]) == 2
    line = one_line_error(capsys, "train")
    assert str(target) in line and "is a file, not a folder" in line
    assert target.read_text() == "keep me"


def test_out_under_a_file_fails_before_training(medmnist_dir, tmp_path, capsys, no_training):
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "run"
    assert main(["train", "--epochs", "1", "--out", str(out), "--data", str(medmnist_dir)]) == 2
    line = one_line_error(capsys, "train")
    assert f"cannot write the run folder {out}" in line and "--out" in line


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS, errno.ENOSPC])
def test_an_unwritable_or_full_folder_fails_before_training(medmnist_dir, tmp_path, capsys, no_training,
                                                            monkeypatch, code):
    """Read-only, read-only file system, disk full — simulated at the probe write (the tests may
    run as root, who can write anywhere); nothing is left behind."""
    import tinycnn.medmnist_job as job

    def failing_write(fd, data):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(job.os, "write", failing_write)
    out = tmp_path / "new" / "run"
    assert main(["train", "--epochs", "1", "--out", str(out), "--data", str(medmnist_dir)]) == 2
    line = one_line_error(capsys, "train")
    assert line == f"tinycnn train: error: cannot write the run folder {out} ({os.strerror(code)}); choose another with --out"
    assert not out.exists()


def as_another_user(function):
    """``function()``'s return value, run in a forked child — as the user ``nobody`` when the tests
    run as root, who can write into any folder (so a read-only folder is read-only to the code
    under test either way). The child's return value must be a (status, text) pair."""
    import json
    import encodings.cp437  # noqa: F401  (imported here: nobody may not read the Python installation)
    import multiprocessing  # noqa: F401
    import sys

    import tinycnn.medmnist_job  # noqa: F401  (likewise)

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                                             # the child: never returns into pytest
        try:
            os.close(read)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            result = function()
        except BaseException as err:                         # noqa: BLE001 — reported to the parent
            result = (-1, f"{type(err).__name__}: {err}")
        with os.fdopen(write, "w") as pipe:
            pipe.write(json.dumps(result))
        sys.stdout.flush()
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    return tuple(json.loads(text))


def test_a_read_only_folder_fails_before_training(medmnist_dir, no_training):
    """A real read-only folder (0o555), not a simulated error: as ``nobody`` when the tests run as
    root."""
    import contextlib
    import io
    import shutil
    import tempfile

    outer = Path(tempfile.mkdtemp(prefix="tinycnn-ro-"))     # under /tmp: reachable by nobody
    try:
        outer.chmod(0o755)
        folder = outer / "ro"
        folder.mkdir(mode=0o555)
        folder.chmod(0o555)

        def train_into_it():
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                status = main(["train", "--epochs", "1", "--out", str(folder / "run"), "--data", str(medmnist_dir)])
            return status, err.getvalue()
        status, err = as_another_user(train_into_it)
        left = list(folder.iterdir())
    finally:
        shutil.rmtree(outer, ignore_errors=True) if os.geteuid() == 0 else (folder.chmod(0o755), shutil.rmtree(outer))
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinycnn train: error: cannot write the run folder"), err
    assert "Permission denied" in lines[0] and "--out" in lines[0]
    assert left == []


def test_the_check_leaves_a_writable_folder_as_it_was(tmp_path):
    from tinycnn.medmnist_job import check_writable_folder
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    check_writable_folder(existing)
    assert [p.name for p in existing.iterdir()] == ["notes.txt"]
    check_writable_folder(tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()


def test_a_full_disk_at_the_final_writes_is_one_line(monkeypatch, capsys, tmp_path):
    """The write itself is atomic (tinycnn.io): a failed save leaves no file behind."""
    from tinycnn import io

    model = seed_model(2, seed=0)
    real_replace = os.replace

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(io.os, "replace", full)
    with pytest.raises(OSError):
        model.save(tmp_path / "model.npz")
    monkeypatch.setattr(io.os, "replace", real_replace)
    assert list(tmp_path.iterdir()) == []

    def train_on_full_disk(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "model.npz"))
    monkeypatch.setattr(cli, "cmd_train", train_on_full_disk)
    assert main(["train"]) == 2
    line = one_line_error(capsys, "train")
    assert "No space left on device" in line and "model.npz" in line


def test_a_full_disk_while_the_run_folder_is_written_leaves_no_half_folder(medmnist_dir, tmp_path, capsys, monkeypatch):
    """The run's files are written into a staging folder and appear together: the disk filling up
    at the last figure leaves neither a run folder nor the staging folder."""
    import tinycnn.plot as plot

    def full(*args, path=None, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    monkeypatch.setattr(plot, "reliability_diagram", full)
    out = tmp_path / "runs" / "run"
    assert main(["train", "--dataset", "breastmnist", "--epochs", "1", "--out", str(out), "--data", str(medmnist_dir),
                 "--resamples", "20"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("tinycnn train: error: No space left on device: ") and "calibration.png" in line
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_run_into_an_existing_folder_keeps_its_files_and_adds_all_or_nothing(medmnist_dir, tmp_path, monkeypatch):
    import tinycnn.plot as plot

    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    real = plot.reliability_diagram

    def full(*args, path=None, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(plot, "reliability_diagram", full)
    command = ["train", "--dataset", "breastmnist", "--epochs", "1", "--out", str(out), "--data", str(medmnist_dir),
               "--resamples", "20"]
    assert main(command) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    monkeypatch.setattr(plot, "reliability_diagram", real)
    assert main(command) == 0
    names = {p.name for p in out.iterdir()}
    assert {"notes.txt", "model.npz", "metrics.json", "history.json", "calibration.png"} <= names
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


# -- arguments a hostile user passes -----------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    (["--epochs", "-3"], "epochs must be a positive int, got -3"),
    (["--epochs", "0"], "epochs must be a positive int, got 0"),
    (["--batch-size", "0"], "batch_size must be a positive int, got 0"),
    (["--lr", "nan"], "learning rate must be positive, got nan"),
    (["--lr", "-1"], "learning rate must be positive"),
    (["--dropout", "1.5"], "dropout must be in [0, 1)"),
    (["--shift", "-1"], "shift must be an int in [0, 14)"),
    (["--weight-decay", "nan"], "weight decay must be >= 0"),
    (["--seed", "-1"], "seed must be an int >= 0, got -1"),
])
def test_bad_training_arguments_fail_before_loading_or_training(tmp_path, capsys, no_training, args, message):
    assert main(["train", *args, "--out", str(tmp_path / "r"), "--data", str(tmp_path / "nowhere")]) == 2
    assert message in one_line_error(capsys, "train")
    assert not (tmp_path / "r").exists()


def test_a_missing_data_folder_is_one_line(tmp_path, capsys, offline, no_training, monkeypatch):
    monkeypatch.setenv("TINYCNN_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "nowhere")]) == 2
    line = one_line_error(capsys, "train")
    assert "pneumoniamnist.npz" in line and "zenodo.org" in line


def test_a_model_file_that_is_a_folder(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(["predict", str(tmp_path / "run"), str(grey_png(tmp_path / "x.png"))]) == 2
    assert "is a folder, not a model file" in one_line_error(capsys, "predict")
    assert main(["evaluate", str(tmp_path / "run")]) == 2
    assert "is a folder, not a model file" in one_line_error(capsys, "evaluate")


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"PK\x03\x04garbage"])
def test_a_model_file_that_is_not_a_model(tmp_path, capsys, content):
    path = tmp_path / "m.npz"
    path.write_bytes(content)
    assert main(["predict", str(path), str(grey_png(tmp_path / "x.png"))]) == 2
    assert str(path) in one_line_error(capsys, "predict")


def test_a_missing_model_file(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "absent.npz"), str(grey_png(tmp_path / "x.png"))]) == 2
    assert "absent.npz" in one_line_error(capsys, "predict")


@pytest.mark.parametrize("content", [b"", b"hello, I am text", b"\x89PNG\r\n\x1a\ntruncated"])
def test_predict_on_a_file_that_is_not_an_image(tmp_path, capsys, content):
    model = model_file(tmp_path / "m.npz")
    bad = tmp_path / "notes.png"
    bad.write_bytes(content)
    assert main(["predict", str(model), str(bad)]) == 2
    assert f"cannot read image {bad}" in one_line_error(capsys, "predict")


def test_predict_on_a_folder_and_a_missing_image(tmp_path, capsys):
    model = model_file(tmp_path / "m.npz")
    assert main(["predict", str(model), str(tmp_path)]) == 2
    assert str(tmp_path) in one_line_error(capsys, "predict")
    assert main(["predict", str(model), str(tmp_path / "absent.png")]) == 2
    assert "absent.png" in one_line_error(capsys, "predict")


def test_an_rgb_image_for_a_grey_model_is_converted_to_grey(tmp_path, capsys):
    """A 28×28 RGB PNG of a grey picture (R = G = B) predicts exactly what the grey PNG does."""
    model = model_file(tmp_path / "m.npz")
    grey = np.linspace(0, 1, 28 * 28).reshape(28, 28)
    matplotlib.image.imsave(tmp_path / "rgb.png", np.stack([grey] * 3, axis=2))
    grey_png(tmp_path / "grey.png")
    assert main(["predict", str(model), str(tmp_path / "rgb.png")]) == 0
    rgb_out = capsys.readouterr().out.split(":", 1)[1]
    assert main(["predict", str(model), str(tmp_path / "grey.png")]) == 0
    assert capsys.readouterr().out.split(":", 1)[1] == rgb_out


def test_explain_with_an_index_out_of_range(medmnist_dir, capsys):
    n = len(load("pneumoniamnist", root=medmnist_dir).test.images)
    for index in (n, -1):
        assert main(["explain", "--index", str(index), "--data", str(medmnist_dir)]) == 2
        assert f"has {n} images (0 to {n - 1})" in one_line_error(capsys, "explain")


# -- a dataset file with an empty or inconsistent split -----------------------------------------------
def write_dataset(folder, medmnist_dir, change):
    """A copy of the real PneumoniaMNIST file with ``change(arrays)`` applied (a damaged file)."""
    with np.load(medmnist_dir / "pneumoniamnist.npz", allow_pickle=False) as real:
        arrays = {key: real[key] for key in real.files}
    change(arrays)
    folder.mkdir(exist_ok=True)
    np.savez(folder / "pneumoniamnist.npz", **arrays)
    return folder / "pneumoniamnist.npz"


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_an_empty_split_fails_at_load_naming_the_file_and_the_split(medmnist_dir, tmp_path, capsys, no_training,
                                                                   split):
    def empty(arrays):
        arrays[f"{split}_images"] = arrays[f"{split}_images"][:0]
        arrays[f"{split}_labels"] = arrays[f"{split}_labels"][:0]
    path = write_dataset(tmp_path / "data", medmnist_dir, empty)
    with pytest.raises(ValueError, match=f"{path}: the {split} split is empty"):
        load("pneumoniamnist", root=tmp_path / "data", download=False)
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "data")]) == 2
    line = one_line_error(capsys, "train")
    assert str(path) in line and f"the {split} split is empty" in line


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(val_labels=a["val_labels"][:-1]), "key 'val_labels': expected shape (524, 1)"),
    (lambda a: a.update(test_images=a["test_images"].astype(np.float32)), "key 'test_images': expected dtype uint8"),
    (lambda a: a.update(train_labels=a["train_labels"] + 1), "key 'train_labels': expected label values in [0, 2)"),
    (lambda a: a.update(train_labels=a["train_labels"].astype(np.float64)), "key 'train_labels': expected an integer"),
    (lambda a: a.pop("val_images"), "missing key(s) val_images"),
], ids=["lengths", "dtype", "label range", "label dtype", "missing split"])
def test_an_inconsistent_split_fails_at_load(medmnist_dir, tmp_path, change, message):
    path = write_dataset(tmp_path / "data", medmnist_dir, change)
    with pytest.raises(ValueError) as info:
        load("pneumoniamnist", root=tmp_path / "data", download=False)
    assert str(path) in str(info.value) and message in str(info.value)


def test_the_real_file_still_loads(medmnist_dir):
    data = load("pneumoniamnist", root=medmnist_dir, download=False)
    assert min(len(getattr(data, s).images) for s in ("train", "val", "test")) > 0
