"""Tests of tinycnn.datasets: the MedMNIST registry, loading, downloading, preprocessing.

Downloads go only to a small HTTP server that these tests start on 127.0.0.1 (port chosen by
the system) and that serves small .npz files the tests make themselves. The three real files
come from the ``medmnist_dir`` fixture (tests/conftest.py).
"""

import dataclasses
import hashlib
import http.server
import io
import os
import socket
import stat
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinycnn.datasets import (
    INFO,
    SPLITS,
    TASKS,
    DownloadError,
    MedMNIST,
    default_root,
    download,
    file_md5,
    get_info,
    labels_1d,
    load,
    load_file,
    random_flip,
    random_shift,
    search_folders,
    standardize,
    to_float,
)
from tinycnn.datasets import medmnist as medmnist_module

REAL_FILES = ["pneumoniamnist", "breastmnist", "retinamnist"]


# ---------------------------------------------------------------------------------------------
# Helpers: small, valid MedMNIST-like files
# ---------------------------------------------------------------------------------------------


def make_arrays(name: str, counts: tuple[int, int, int] = (6, 3, 4), seed: int = 0) -> dict:
    """Six arrays that pass every check for dataset ``name``, with ``counts`` images per split."""
    info = INFO[name]
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(SPLITS, counts):
        image_shape = (n, 28, 28) if info.n_channels == 1 else (n, 28, 28, info.n_channels)
        arrays[f"{split}_images"] = rng.integers(0, 256, size=image_shape, dtype=np.uint8)
        if info.is_multilabel:
            labels = rng.integers(0, 2, size=(n, info.n_classes), dtype=np.uint8)
        else:
            labels = rng.integers(0, info.n_classes, size=(n, 1), dtype=np.uint8)
        arrays[f"{split}_labels"] = labels
    return arrays


def npz_bytes(arrays: dict, compressed: bool = True) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def write_npz(path: Path, arrays: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(npz_bytes(arrays))
    return path


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# ---------------------------------------------------------------------------------------------
# A loopback HTTP server
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Route:
    body: bytes
    content_length: int | None  # the Content-Length header sent, or None for no header
    stall: bool = False  # send the headers, then nothing until the test ends


class _Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.0: the server closes the connection after each answer, so a body shorter than its
    # Content-Length is a connection dropped mid-file.
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802 (the name http.server wants)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if route.content_length is not None:
            self.send_header("Content-Length", str(route.content_length))
        self.end_headers()
        if route.stall:
            self.wfile.flush()
            self.server.release.wait(timeout=10)
            return
        self.wfile.write(route.body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output quiet


class LocalServer:
    """What a test sees of the server: add files, get their URLs."""

    def __init__(self, httpd: http.server.ThreadingHTTPServer) -> None:
        self._httpd = httpd

    def add(
        self, path: str, body: bytes, content_length: int | None = -1, stall: bool = False
    ) -> str:
        """Serve ``body`` at ``path``; ``content_length=-1`` means the body's true length."""
        if content_length == -1:
            content_length = len(body)
        self._httpd.routes[path] = Route(body, content_length, stall)
        return self.url(path)

    def url(self, path: str) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{path}"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    # No proxy may turn a loopback request into one that leaves the machine.
    for variable in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                     "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.routes = {}
    httpd.release = threading.Event()
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield LocalServer(httpd)
    finally:
        httpd.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# ---------------------------------------------------------------------------------------------
# The real files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_file_md5_equals_registry(name: str, medmnist_dir: Path) -> None:
    assert file_md5(medmnist_dir / f"{name}.npz") == INFO[name].md5
    md5sums = medmnist_dir / "MD5SUMS"
    if md5sums.is_file():
        lines = dict(line.split()[::-1] for line in md5sums.read_text().splitlines() if line)
        assert lines[f"{name}.npz"] == INFO[name].md5


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_file_loads_and_matches_registry(name: str, medmnist_dir: Path) -> None:
    data = load(name, root=medmnist_dir, download=False)
    info = INFO[name]
    assert isinstance(data, MedMNIST)
    assert data.info is info
    assert data.path == medmnist_dir / f"{name}.npz"
    assert data.n_samples == dict(info.n_samples)
    for split in SPLITS:
        images, labels = getattr(data, split)
        n = info.n_samples[split]
        expected_shape = (n, 28, 28) if info.n_channels == 1 else (n, 28, 28, 3)
        assert images.shape == expected_shape
        assert images.dtype == np.uint8
        assert labels.shape == (n, 1)
        assert labels.dtype == np.uint8
        # Every class occurs in every split of these three datasets.
        assert set(np.unique(labels)) == set(range(info.n_classes))


def test_real_file_through_environment_variable(
    medmnist_dir: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TINYCNN_DATA", str(medmnist_dir))
    data = load("breastmnist", download=False)
    assert data.path == medmnist_dir / "breastmnist.npz"


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------

# Independent facts: totals and label counts stated in the official descriptions.
EXPECTED = {
    # name: (n_classes, n_channels, task, total number of images)
    "pathmnist": (9, 3, "multi-class", 100_000 + 7_180),
    "chestmnist": (14, 1, "multi-label, binary-class", 112_120),
    "dermamnist": (7, 3, "multi-class", 10_015),
    "octmnist": (4, 1, "multi-class", 109_309),
    "pneumoniamnist": (2, 1, "binary-class", 5_856),
    "retinamnist": (5, 3, "ordinal-regression", 1_600),
    "breastmnist": (2, 1, "binary-class", 780),
    "bloodmnist": (8, 3, "multi-class", 17_092),
    "tissuemnist": (8, 1, "multi-class", 236_386),
    "organamnist": (11, 1, "multi-class", None),
    "organcmnist": (11, 1, "multi-class", None),
    "organsmnist": (11, 1, "multi-class", None),
}


def test_registry_holds_the_twelve_2d_datasets() -> None:
    assert list(INFO) == list(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_registry_entry_is_consistent(name: str) -> None:
    info = INFO[name]
    n_classes, n_channels, task, total = EXPECTED[name]
    assert info.name == name
    assert info.python_class.lower() == name
    assert info.task == task and info.task in TASKS
    assert info.n_channels == n_channels
    assert info.n_classes == n_classes == len(info.labels)
    assert all(isinstance(label, str) and label for label in info.labels)
    assert len(set(info.labels)) == n_classes
    assert info.is_multilabel == (name == "chestmnist")
    assert info.url == f"https://zenodo.org/records/10519652/files/{name}.npz?download=1"
    assert len(info.md5) == 32 and set(info.md5) <= set("0123456789abcdef")
    assert info.filename == f"{name}.npz"
    assert list(info.n_samples) == list(SPLITS)
    assert all(n > 0 for n in info.n_samples.values())
    if total is not None:
        assert sum(info.n_samples.values()) == total
    assert info.description and len(info.description) < 120


def test_registry_md5s_are_all_different() -> None:
    assert len({info.md5 for info in INFO.values()}) == len(INFO)


def test_registry_cannot_be_changed_by_accident() -> None:
    info = INFO["pneumoniamnist"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.md5 = "0" * 32
    with pytest.raises(TypeError):
        info.n_samples["train"] = 1


def test_get_info() -> None:
    assert get_info("PneumoniaMNIST") is INFO["pneumoniamnist"]
    with pytest.raises(ValueError, match="unknown MedMNIST dataset 'mnist'.*pathmnist"):
        get_info("mnist")
    with pytest.raises(ValueError, match="organmnist3d"):
        load("organmnist3d")  # 3D datasets are not in this registry


# ---------------------------------------------------------------------------------------------
# Where load() looks
# ---------------------------------------------------------------------------------------------


def test_search_folders_order(isolated: Path, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    assert default_root() == isolated / ".medmnist"
    assert search_folders() == [isolated / ".medmnist"]
    monkeypatch.setenv("TINYCNN_DATA", str(tmp_path / "env"))
    assert search_folders(tmp_path / "root") == [
        tmp_path / "root",
        tmp_path / "env",
        isolated / ".medmnist",
    ]
    monkeypatch.setenv("TINYCNN_DATA", "")  # empty counts as unset
    assert search_folders() == [isolated / ".medmnist"]


def test_load_searches_root_then_environment_then_home(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Three copies that differ in their number of training images: 5 in root, 6 in $TINYCNN_DATA,
    # 7 in ~/.medmnist.
    root, env, home = tmp_path / "root", tmp_path / "env", isolated / ".medmnist"
    for folder, n_train in ((root, 5), (env, 6), (home, 7)):
        write_npz(folder / "pneumoniamnist.npz", make_arrays("pneumoniamnist", (n_train, 2, 2)))
    monkeypatch.setenv("TINYCNN_DATA", str(env))

    assert load("pneumoniamnist", root=root, download=False).n_samples["train"] == 5
    assert load("pneumoniamnist", download=False).n_samples["train"] == 6
    # A root without the file falls through to the next folder.
    assert load("pneumoniamnist", root=tmp_path / "empty", download=False).path == (
        env / "pneumoniamnist.npz"
    )
    monkeypatch.delenv("TINYCNN_DATA")
    data = load("pneumoniamnist", download=False)
    assert data.n_samples["train"] == 7
    assert data.path == home / "pneumoniamnist.npz"


def test_load_missing_file_without_download(isolated: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        load("breastmnist", root=tmp_path / "data", download=False)
    message = str(caught.value)
    assert "breastmnist.npz" in message
    assert str(tmp_path / "data") in message
    assert str(isolated / ".medmnist") in message
    assert INFO["breastmnist"].url in message


@pytest.mark.parametrize("where", ["root", "environment", "home"])
def test_load_downloads_into_the_first_folder(
    where: str, isolated: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server
) -> None:
    body = npz_bytes(make_arrays("breastmnist"))
    url = server.add("/breastmnist.npz", body)
    real_download = medmnist_module.download

    def local_download(name: str, folder: Path, size: int = 28) -> Path:
        return real_download(name, folder, url=url, md5=md5_of(body), progress=False, size=size)

    monkeypatch.setattr(medmnist_module, "download", local_download)
    root = tmp_path / "root" if where == "root" else None
    monkeypatch.setenv("TINYCNN_DATA", str(tmp_path / "env"))
    if where == "home":
        monkeypatch.delenv("TINYCNN_DATA")
    expected_folder = {
        "root": tmp_path / "root",
        "environment": tmp_path / "env",
        "home": isolated / ".medmnist",
    }[where]

    data = load("breastmnist", root=root)
    assert data.path == expected_folder / "breastmnist.npz"
    assert listing(expected_folder) == ["breastmnist.npz"]
    assert data.n_samples == {"train": 6, "val": 3, "test": 4}


# ---------------------------------------------------------------------------------------------
# download()
# ---------------------------------------------------------------------------------------------


def test_download_good_file(server, tmp_path: Path) -> None:
    body = npz_bytes(make_arrays("retinamnist"))
    url = server.add("/files/retinamnist.npz?download=1", body)
    folder = tmp_path / "new" / "folder"  # created on demand

    path = download("retinamnist", folder, url=url, md5=md5_of(body), progress=False)

    assert path == folder / "retinamnist.npz"
    assert listing(folder) == ["retinamnist.npz"]
    assert path.read_bytes() == body
    assert file_md5(path) == md5_of(body)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~current_umask()
    assert load_file(path, "retinamnist").train.images.shape == (6, 28, 28, 3)


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("umask, mode", [(0o077, 0o600), (0o022, 0o644), (0o002, 0o664)])
def test_a_downloaded_file_gets_the_umask(server, tmp_path: Path, umask, mode) -> None:
    body = npz_bytes(make_arrays("breastmnist"))
    url = server.add("/files/breastmnist.npz", body)
    old = os.umask(umask)
    try:
        path = download("breastmnist", tmp_path, url=url, md5=md5_of(body), progress=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_download_without_content_length_shows_progress(server, tmp_path: Path, capsys) -> None:
    body = npz_bytes(make_arrays("chestmnist"))
    url = server.add("/chestmnist.npz", body, content_length=None)
    path = download("chestmnist", tmp_path, url=url, md5=md5_of(body).upper(), progress=True)
    assert path.read_bytes() == body
    assert "chestmnist.npz" in capsys.readouterr().err  # the tqdm bar's label


def test_download_md5_mismatch_leaves_nothing(server, tmp_path: Path) -> None:
    body = npz_bytes(make_arrays("pneumoniamnist"))
    url = server.add("/pneumoniamnist.npz", body)
    wrong = "0" * 32
    with pytest.raises(DownloadError, match=f"MD5.*expected {wrong}, got {md5_of(body)}") as caught:
        download("pneumoniamnist", tmp_path, url=url, md5=wrong, progress=False)
    assert url in str(caught.value)
    assert str(tmp_path / "pneumoniamnist.npz") in str(caught.value)
    assert listing(tmp_path) == []


def test_download_with_registry_md5_refuses_a_foreign_file(server, tmp_path: Path) -> None:
    url = server.add("/pneumoniamnist.npz", npz_bytes(make_arrays("pneumoniamnist")))
    with pytest.raises(DownloadError, match=f"expected {INFO['pneumoniamnist'].md5}"):
        download("pneumoniamnist", tmp_path, url=url, progress=False)
    assert listing(tmp_path) == []


def test_failed_download_keeps_an_existing_file(server, tmp_path: Path) -> None:
    existing = write_npz(tmp_path / "breastmnist.npz", make_arrays("breastmnist"))
    before = existing.read_bytes()
    url = server.add("/breastmnist.npz", b"not the right file")
    with pytest.raises(DownloadError):
        download("breastmnist", tmp_path, url=url, md5="0" * 32, progress=False)
    assert listing(tmp_path) == ["breastmnist.npz"]
    assert existing.read_bytes() == before


def test_download_connection_dropped_mid_file(server, tmp_path: Path) -> None:
    body = npz_bytes(make_arrays("dermamnist"))
    half = body[: len(body) // 2]
    url = server.add("/dermamnist.npz", half, content_length=len(body))
    with pytest.raises(DownloadError, match=f"closed after {len(half)} of {len(body)} bytes"):
        download("dermamnist", tmp_path, url=url, md5=md5_of(body), progress=False)
    assert listing(tmp_path) == []


def test_download_http_404(server, tmp_path: Path) -> None:
    url = server.url("/no/such/file.npz")
    with pytest.raises(DownloadError, match="HTTP 404") as caught:
        download("octmnist", tmp_path, url=url, progress=False)
    message = str(caught.value)
    assert url in message and "octmnist.npz" in message and str(tmp_path) in message
    assert listing(tmp_path) == []


def test_download_timeout(server, tmp_path: Path) -> None:
    body = npz_bytes(make_arrays("pneumoniamnist"))
    url = server.add("/slow.npz", body, stall=True)
    with pytest.raises(DownloadError, match="slow.npz"):
        download("pneumoniamnist", tmp_path, url=url, md5=md5_of(body), progress=False,
                 timeout=0.3)
    assert listing(tmp_path) == []


def test_download_no_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    with socket.socket() as probe:  # a port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/pneumoniamnist.npz"
    with pytest.raises(DownloadError, match=f"{url}.*by hand"):
        download("pneumoniamnist", tmp_path, url=url, progress=False, timeout=2)
    assert listing(tmp_path) == []


def test_download_interrupted_by_ctrl_c(server, tmp_path: Path, monkeypatch) -> None:
    class InterruptingBar:
        """Stands in for tqdm: the user presses Ctrl-C after the first chunk."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def __enter__(self) -> "InterruptingBar":
            return self

        def __exit__(self, *exc_info: object) -> None:
            return None

        def update(self, n: int) -> None:
            raise KeyboardInterrupt

    monkeypatch.setattr(medmnist_module, "tqdm", InterruptingBar)
    body = npz_bytes(make_arrays("bloodmnist"))
    url = server.add("/bloodmnist.npz", body)
    with pytest.raises(KeyboardInterrupt):
        download("bloodmnist", tmp_path, url=url, md5=md5_of(body))
    assert listing(tmp_path) == []


def test_download_error_is_an_oserror() -> None:
    assert issubclass(DownloadError, OSError)


# ---------------------------------------------------------------------------------------------
# Checking what is loaded
# ---------------------------------------------------------------------------------------------


def _missing_key(arrays: dict) -> None:
    del arrays["val_labels"]


def _float_images(arrays: dict) -> None:
    arrays["train_images"] = arrays["train_images"].astype(np.float32)


def _label_out_of_range(arrays: dict) -> None:
    arrays["test_labels"][0, 0] = 2


def _negative_label(arrays: dict) -> None:
    arrays["val_labels"] = arrays["val_labels"].astype(np.int16)
    arrays["val_labels"][1, 0] = -1


def _rgb_images(arrays: dict) -> None:
    arrays["train_images"] = np.zeros((6, 28, 28, 3), np.uint8)


def _wrong_size(arrays: dict) -> None:
    arrays["val_images"] = np.zeros((3, 32, 32), np.uint8)


def _too_few_labels(arrays: dict) -> None:
    arrays["test_labels"] = arrays["test_labels"][:2]


def _flat_labels(arrays: dict) -> None:
    arrays["train_labels"] = arrays["train_labels"][:, 0]


def _float_labels(arrays: dict) -> None:
    arrays["train_labels"] = arrays["train_labels"].astype(np.float64)


BROKEN = {
    "missing key": (_missing_key, r"missing key\(s\) val_labels"),
    "float images": (_float_images, r"'train_images': expected dtype uint8, got float32"),
    "label out of range": (
        _label_out_of_range,
        r"'test_labels': expected label values in \[0, 2\).*from 0 to 2",
    ),
    "negative label": (_negative_label, r"'val_labels': .*values from -1"),
    "RGB for a grey dataset": (
        _rgb_images,
        r"'train_images': expected shape \(N, 28, 28\) \(grey.*got \(6, 28, 28, 3\)",
    ),
    "wrong image size": (_wrong_size, r"'val_images': expected shape.*got \(3, 32, 32\)"),
    "too few labels": (_too_few_labels, r"'test_labels': expected shape \(4, 1\).*got \(2, 1\)"),
    "flat labels": (_flat_labels, r"'train_labels': expected shape \(6, 1\).*got \(6,\)"),
    "float labels": (_float_labels, r"'train_labels': expected an integer dtype.*float64"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_invalid_file_raises_value_error(case: str, tmp_path: Path) -> None:
    change, message = BROKEN[case]
    arrays = make_arrays("pneumoniamnist")
    change(arrays)
    path = write_npz(tmp_path / "pneumoniamnist.npz", arrays)
    with pytest.raises(ValueError, match=message) as caught:
        load("pneumoniamnist", root=tmp_path, download=False)
    assert str(path) in str(caught.value)


def test_multilabel_file(tmp_path: Path) -> None:
    arrays = make_arrays("chestmnist")
    path = write_npz(tmp_path / "chestmnist.npz", arrays)
    data = load_file(path, "chestmnist")
    assert data.train.labels.shape == (6, 14)

    arrays["val_labels"][0, 3] = 2
    write_npz(path, arrays)
    with pytest.raises(ValueError, match=r"'val_labels': expected label values in \[0, 2\)"):
        load_file(path, "chestmnist")

    arrays = make_arrays("chestmnist")
    arrays["train_labels"] = arrays["train_labels"][:, :1]
    write_npz(path, arrays)
    with pytest.raises(ValueError, match=r"'train_labels': expected shape \(6, 14\)"):
        load_file(path, "chestmnist")


def test_counts_are_reported_not_enforced(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "retinamnist.npz", make_arrays("retinamnist", (2, 1, 1)))
    data = load_file(path, "retinamnist")
    assert data.n_samples == {"train": 2, "val": 1, "test": 1}
    assert data.n_samples != dict(data.info.n_samples)
    assert "retinamnist" in repr(data) and "train=2" in repr(data)


def test_truncated_file(tmp_path: Path) -> None:
    body = npz_bytes(make_arrays("breastmnist"))
    path = tmp_path / "breastmnist.npz"
    path.write_bytes(body[: len(body) // 2])
    with pytest.raises(ValueError, match=f"{path}: not a valid .npz file"):
        load("breastmnist", root=tmp_path, download=False)


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "breastmnist.npz"
    path.write_bytes(np.random.default_rng(1).bytes(1000))
    with pytest.raises(ValueError, match=f"{path}: not a valid .npz file"):
        load_file(path, "breastmnist")


def test_single_npy_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "breastmnist.npz"
    with open(path, "wb") as file:
        np.save(file, np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="not a valid .npz file \\(not a zip archive\\)"):
        load_file(path, "breastmnist")


def test_pickled_arrays_are_refused(tmp_path: Path) -> None:
    arrays = make_arrays("breastmnist")
    arrays["train_labels"] = np.array([{"evil": 1}] * 6, dtype=object).reshape(6, 1)
    path = write_npz(tmp_path / "breastmnist.npz", arrays)
    with pytest.raises(ValueError, match=f"{path}: array 'train_labels' holds Python objects \\(a pickle\\); refused"):
        load_file(path, "breastmnist")


def test_load_file_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        load_file(tmp_path / "nothing.npz", "breastmnist")


_SMALL_FILES = {
    compressed: npz_bytes(make_arrays("breastmnist", (2, 1, 1)), compressed=compressed)
    for compressed in (True, False)
}


@settings(max_examples=1000)
@given(
    compressed=st.booleans(),
    cut=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255)),
                   max_size=3),
)
def test_damaged_files_raise_only_value_error(compressed: bool, cut: float, flips) -> None:
    """Truncated or bit-flipped files: a ValueError naming the file, or (flips only) success."""
    data = bytearray(_SMALL_FILES[compressed])
    for position, mask in flips:
        data[int(position * len(data))] ^= mask
    truncated = cut > 0.0
    if truncated:
        data = data[: int(cut * len(data))]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "breastmnist.npz"
        path.write_bytes(bytes(data))
        try:
            load_file(path, "breastmnist")
        except ValueError as error:
            assert str(path) in str(error)
        else:
            assert not truncated, "a truncated file loaded"


@settings(max_examples=500)
@given(
    prefix=st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY\x01\x00"]),
    junk=st.binary(max_size=300),
)
def test_junk_files_raise_only_value_error(prefix: bytes, junk: bytes) -> None:
    """Random bytes, also behind the magic bytes of a zip file or of an .npy file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "breastmnist.npz"
        path.write_bytes(prefix + junk)
        with pytest.raises(ValueError, match="breastmnist.npz"):
            load_file(path, "breastmnist")


# ---------------------------------------------------------------------------------------------
# Preprocessing
# ---------------------------------------------------------------------------------------------


def test_to_float_grey_and_rgb() -> None:
    grey = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)  # (1, 2, 2)
    x = to_float(grey)
    assert x.shape == (1, 2, 2, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, :, 0], [[0.0, 1.0], [0.2, 0.4]], rtol=1e-6)

    rgb = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 3), dtype=np.uint8)
    copy = rgb.copy()
    y = to_float(rgb)
    assert y.shape == (3, 28, 28, 3) and y.dtype == np.float32
    assert 0.0 <= y.min() and y.max() <= 1.0
    np.testing.assert_array_equal(rgb, copy)  # input unchanged


def test_to_float_refuses_bad_input() -> None:
    with pytest.raises(TypeError, match="uint8"):
        to_float(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"got shape \(28, 28\)"):
        to_float(np.zeros((28, 28), np.uint8))
    with pytest.raises(TypeError, match="numpy array"):
        to_float([[1, 2], [3, 4]])


def test_standardize_uses_training_statistics() -> None:
    rng = np.random.default_rng(0)
    train = to_float(rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8))
    other = to_float(rng.integers(0, 128, (10, 8, 8, 3), dtype=np.uint8))

    x, mean, std = standardize(train)
    assert x.dtype == np.float32 and mean.shape == std.shape == (3,)
    np.testing.assert_allclose(x.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=(0, 1, 2)), 1.0, atol=1e-4)

    y, mean_again, std_again = standardize(other, mean, std)
    np.testing.assert_array_equal(mean_again, mean)
    np.testing.assert_allclose(y, (other - mean) / std, rtol=1e-6)
    assert y.mean() < -0.5  # darker than the training set, and it shows


def test_standardize_edge_cases() -> None:
    constant = np.full((4, 3, 3, 1), 0.5, np.float32)
    x, mean, std = standardize(constant)
    assert std[0] == 1.0 and np.all(x == 0.0)
    with pytest.raises(ValueError, match="both mean and std"):
        standardize(constant, mean=mean)
    with pytest.raises(ValueError, match=r"shape \(1,\)"):
        standardize(constant, np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match="positive"):
        standardize(constant, np.zeros(1), np.zeros(1))
    with pytest.raises(TypeError, match="to_float"):
        standardize(np.zeros((2, 3, 3, 1), np.uint8))
    with pytest.raises(ValueError, match="NHWC"):
        standardize(np.zeros((2, 3, 3), np.float32))


def test_labels_1d() -> None:
    labels = np.array([[0], [1], [4]], dtype=np.uint8)
    y = labels_1d(labels)
    assert y.dtype == np.int64 and y.shape == (3,)
    np.testing.assert_array_equal(y, [0, 1, 4])
    np.testing.assert_array_equal(labels_1d(np.array([2, 3])), [2, 3])
    with pytest.raises(ValueError, match="multi-label"):
        labels_1d(np.zeros((3, 14), np.uint8))
    with pytest.raises(TypeError, match="integers"):
        labels_1d(np.zeros((3, 1), np.float32))
    with pytest.raises(ValueError, match=r"\(N, 1\)"):
        labels_1d(np.zeros((3, 1, 1), np.uint8))


def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Reference shift, one pixel at a time: ``dy`` down, ``dx`` right, zeros fill the gap."""
    out = np.zeros_like(image)
    height, width = image.shape[:2]
    for i in range(height):
        for j in range(width):
            if 0 <= i - dy < height and 0 <= j - dx < width:
                out[i, j] = image[i - dy, j - dx]
    return out


def test_random_shift_moves_content_within_range() -> None:
    # 400 images, each with one bright pixel in the middle: where it lands is the offset.
    images = np.zeros((400, 28, 28), np.uint8)
    images[:, 14, 14] = 255
    out = random_shift(images, max_shift=2, rng=np.random.default_rng(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert np.all(images[:, 14, 14] == 255)  # input unchanged
    assert np.all(out.reshape(400, -1).sum(axis=1) == 255)  # the pixel moved, nothing else

    _, rows, columns = np.nonzero(out)
    offsets = set(zip(rows - 14, columns - 14))
    assert offsets == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}


def test_random_shift_fills_with_zeros() -> None:
    ones = np.ones((50, 10, 12, 3), np.float32)
    out = random_shift(ones, max_shift=3, rng=np.random.default_rng(1))
    for image in out:
        rows = np.any(image[:, :, 0] > 0, axis=1).sum()
        columns = np.any(image[:, :, 0] > 0, axis=0).sum()
        assert 7 <= rows <= 10 and 9 <= columns <= 12
        assert image.sum() == rows * columns * 3  # a solid block of ones, zeros around it


@given(
    n=st.integers(1, 4),
    height=st.integers(2, 6),
    width=st.integers(2, 6),
    channels=st.sampled_from([None, 1, 2]),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_random_shift_matches_reference(n, height, width, channels, seed, data) -> None:
    max_shift = data.draw(st.integers(0, min(height, width) - 1))
    shape = (n, height, width) if channels is None else (n, height, width, channels)
    images = np.random.default_rng(seed).integers(1, 256, shape).astype(np.uint8)
    out = random_shift(images, max_shift, np.random.default_rng(seed))
    assert out.shape == images.shape and out.dtype == images.dtype
    offsets = range(-max_shift, max_shift + 1)
    for image, result in zip(images, out):
        assert any(
            np.array_equal(result, shifted(image, dy, dx)) for dy in offsets for dx in offsets
        )


def test_random_shift_is_deterministic_given_the_generator() -> None:
    images = np.random.default_rng(0).integers(0, 256, (20, 28, 28, 3), dtype=np.uint8)
    first = random_shift(images, 2, np.random.default_rng(42))
    again = random_shift(images, 2, np.random.default_rng(42))
    other = random_shift(images, 2, np.random.default_rng(43))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    np.testing.assert_array_equal(random_shift(images, 0, np.random.default_rng(0)), images)


def test_random_shift_refuses_bad_input() -> None:
    images = np.zeros((2, 28, 28), np.uint8)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="between 0 and 27"):
        random_shift(images, 28, rng)
    with pytest.raises(ValueError, match="got -1"):
        random_shift(images, -1, rng)
    with pytest.raises(TypeError, match="max_shift must be an int"):
        random_shift(images, 1.5, rng)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        random_shift(images, 2, np.random.RandomState(0))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        random_shift(images, 2, 0)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        random_shift(np.zeros((28, 28), np.uint8), 2, rng)


def test_random_flip() -> None:
    images = np.random.default_rng(0).integers(0, 256, (30, 5, 7, 3), dtype=np.uint8)
    copy = images.copy()
    np.testing.assert_array_equal(
        random_flip(images, np.random.default_rng(0), p=1.0), images[:, :, ::-1]
    )
    np.testing.assert_array_equal(
        random_flip(images, np.random.default_rng(0), horizontal=False, p=1.0), images[:, ::-1]
    )
    np.testing.assert_array_equal(random_flip(images, np.random.default_rng(0), p=0.0), images)

    out = random_flip(images, np.random.default_rng(5))
    flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images)]
    kept = [np.array_equal(o, i) for o, i in zip(out, images)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 0 < sum(flipped) < 30
    np.testing.assert_array_equal(out, random_flip(images, np.random.default_rng(5)))
    np.testing.assert_array_equal(images, copy)  # input unchanged
    with pytest.raises(ValueError, match="probability"):
        random_flip(images, np.random.default_rng(0), p=1.5)
