"""Finding, downloading, checking and loading the twelve 2D MedMNIST datasets.

MedMNIST (Yang et al., *Scientific Data* 2023) is a collection of small medical images in the
spirit of MNIST. Each dataset is one ``.npz`` file (a zip of NumPy arrays) with six arrays::

    train_images, train_labels, val_images, val_labels, test_images, test_labels

Images are ``uint8``, shaped ``(N, 28, 28)`` (grey) or ``(N, 28, 28, 3)`` (RGB). Labels are
``uint8``, shaped ``(N, 1)`` (one class id per image) or, for the multi-label ChestMNIST,
``(N, 14)`` (one 0/1 flag per disease).

Typical use::

    from tinycnn.datasets import load
    data = load("pneumoniamnist")
    images, labels = data.train          # raw uint8 arrays
    print(data.info.labels)              # ('normal', 'pneumonia')

**Larger images (MedMNIST+).** ``load(name, size=64)`` (or 128, 224) loads the same dataset at
that size from its own file, ``pneumoniamnist_64.npz``: the same splits, labels and order, images
``(N, 64, 64)`` or ``(N, 64, 64, 3)``. Mind the memory: ChestMNIST at 224 is 112,120 images of
224 × 224 bytes, 5.6 GB loaded, four times that as float32 after ``to_float``; the small datasets
(BreastMNIST, PneumoniaMNIST, RetinaMNIST) are the ones to start with.

What each dataset is (label names, official counts, URL, MD5 digest) is the registry,
:mod:`tinycnn.datasets.registry`; this module finds, downloads, checks and loads the files it
describes, so a file downloaded here is the same file the official ``medmnist`` package would
download.
"""

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
from tqdm import tqdm

from ..npz import read_npz
from .registry import IMAGE_SIZE, SPLITS, DataFile, DatasetInfo, get_info

__all__ = [
    "DownloadError",
    "MedMNIST",
    "Split",
    "default_root",
    "download",
    "file_md5",
    "load",
    "load_file",
    "search_folders",
]

#: The environment variable that names a folder holding MedMNIST files.
DATA_ENV_VAR = "TINYCNN_DATA"


class DownloadError(OSError):
    """A dataset file could not be downloaded (or arrived damaged). Nothing was left on disk."""


# ---------------------------------------------------------------------------------------------
# Where the files live
# ---------------------------------------------------------------------------------------------


def default_root() -> Path:
    """The official package's folder, ``~/.medmnist`` (read from ``$HOME`` at every call)."""
    return Path.home() / ".medmnist"


def search_folders(root: str | os.PathLike | None = None) -> list[Path]:
    """The folders :func:`load` looks in, in order.

    1. ``root``, if given;
    2. ``$TINYCNN_DATA``, if set and not empty;
    3. :func:`default_root` (``~/.medmnist``, where the official package keeps its files).

    The first folder of the list is also where :func:`load` downloads a missing file.
    """
    folders = []
    if root is not None:
        folders.append(Path(root).expanduser())
    env_folder = os.environ.get(DATA_ENV_VAR, "")
    if env_folder:
        folders.append(Path(env_folder).expanduser())
    folders.append(default_root())
    return folders


# ---------------------------------------------------------------------------------------------
# Downloading
# ---------------------------------------------------------------------------------------------

_CHUNK_SIZE = 64 * 1024


def file_md5(path: str | os.PathLike) -> str:
    """The MD5 digest of a file, as 32 lower-case hex digits (what ``md5sum`` prints)."""
    digest = hashlib.md5()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(_CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _by_hand(filename: str, url: str, folder: Path) -> str:
    """The sentence every download error ends with: how to get the file without us."""
    return f"Download {url} by hand and save it as {folder / filename}."


def _content_length(response: http.client.HTTPResponse) -> int | None:
    """The size the server announced, or None when it announced none (or nonsense)."""
    value = response.headers.get("Content-Length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def _stream_to_file(
    url: str, out: BinaryIO, filename: str, folder: Path, timeout: float, progress: bool
) -> str:
    """Copy ``url`` into the open file ``out``; return the MD5 digest of what was written.

    Network problems become :class:`DownloadError`. Other exceptions (and Ctrl-C) pass through.
    """
    digest = hashlib.md5()
    received = 0
    try:
        # ``timeout`` applies to connecting and to every single read from the socket.
        with urllib.request.urlopen(url, timeout=timeout) as response:
            expected = _content_length(response)
            with tqdm(
                total=expected,
                desc=filename,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                disable=not progress,
            ) as bar:
                while True:
                    chunk = response.read(_CHUNK_SIZE)
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as error:
        raise DownloadError(
            f"could not download {filename} from {url}: the server answered HTTP {error.code} "
            f"({error.reason}). {_by_hand(filename, url, folder)}"
        ) from error
    except (OSError, http.client.HTTPException) as error:
        # URLError (no server, bad host), TimeoutError, ConnectionResetError, IncompleteRead...
        raise DownloadError(
            f"could not download {filename} from {url}: {error!r}. "
            f"{_by_hand(filename, url, folder)}"
        ) from error

    # A connection that closes early looks like a normal end of file to ``read``; only the
    # announced length tells them apart.
    if expected is not None and received != expected:
        raise DownloadError(
            f"could not download {filename} from {url}: the connection closed after "
            f"{received} of {expected} bytes. {_by_hand(filename, url, folder)}"
        )
    return digest.hexdigest()


def download(
    name: str,
    folder: str | os.PathLike,
    url: str | None = None,
    md5: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    size: int = IMAGE_SIZE,
) -> Path:
    """Download ``<name>.npz`` (``<name>_<size>.npz`` for ``size`` 64, 128 or 224) into ``folder``,
    check its MD5 digest, and return its path.

    The file is first written to a temporary file in ``folder`` and renamed to its final name
    only once it is complete and its digest is right, so a half-downloaded file can never be
    mistaken for a good one. If anything goes wrong (HTTP error, connection lost, timeout, wrong
    digest, Ctrl-C) the temporary file is deleted and an existing ``<name>.npz`` is left as it
    was.

    Args:
        name: a dataset name from :data:`~tinycnn.datasets.registry.INFO`.
        folder: where to put the file; created if missing.
        url: where to fetch it; defaults to the registry's official URL for ``size``.
        md5: the expected digest; defaults to the registry's for ``size``.
        progress: show a tqdm progress bar on stderr.
        timeout: seconds to wait for the server to connect or to send more data.
        size: the image size, 28 (MedMNIST, the default) or a larger MedMNIST+ size the registry
            lists for the dataset (``get_info(name).sizes``).

    Raises:
        ValueError: the dataset has no file of that ``size``; the message lists the sizes it has.
        DownloadError: the download failed; the message names the file, the URL and the folder
            to put a hand-downloaded copy in.
        KeyboardInterrupt: passed on unchanged (after cleaning up), so Ctrl-C still stops the
            program.
    """
    official = get_info(name).file(size)
    filename = official.filename
    url = official.url if url is None else url
    md5 = (official.md5 if md5 is None else md5).lower()
    folder = Path(folder).expanduser()
    final_path = folder / filename

    from ..io import atomic_write      # (here, not at the top: tinycnn.io imports the layers)

    def fetch(out: BinaryIO) -> None:
        actual_md5 = _stream_to_file(url, out, filename, folder, timeout, progress)
        if actual_md5 != md5:
            raise DownloadError(
                f"downloaded {filename} from {url}, but its MD5 digest is wrong: "
                f"expected {md5}, got {actual_md5}. {_by_hand(filename, url, folder)}"
            )

    # The file is written as every file tinycnn saves (tinycnn.io.atomic_write): into a temporary
    # beside it, on disk, then renamed, with the mode a new file gets (0o666 less the umask). A
    # failure or Ctrl-C at any point leaves no partial file, and an existing file as it was.
    try:
        atomic_write(final_path, fetch)
    except DownloadError:
        raise
    except OSError as error:
        raise DownloadError(
            f"could not write {filename} into {folder}: {error}. {_by_hand(filename, url, folder)}"
        ) from error
    return final_path


# ---------------------------------------------------------------------------------------------
# Loading and checking
# ---------------------------------------------------------------------------------------------


class Split(NamedTuple):
    """One split of a dataset: raw ``uint8`` images and labels, as stored in the file."""

    images: np.ndarray
    labels: np.ndarray


@dataclass
class MedMNIST:
    """A loaded MedMNIST dataset: its registry entry, its file, its three splits, and the
    height and width of its images (28, or a MedMNIST+ size: 64, 128, 224)."""

    info: DatasetInfo
    path: Path
    train: Split
    val: Split
    test: Split
    size: int = IMAGE_SIZE

    @property
    def n_samples(self) -> dict[str, int]:
        """The image counts found in the file (compare with ``info.n_samples``)."""
        return {split: len(getattr(self, split).images) for split in SPLITS}

    def __repr__(self) -> str:
        counts = ", ".join(f"{split}={n}" for split, n in self.n_samples.items())
        return f"MedMNIST({self.info.name!r}, {counts}, size={self.size}, path='{self.path}')"


_REQUIRED_KEYS = tuple(f"{split}_{part}" for split in SPLITS for part in ("images", "labels"))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Read the six required arrays from an ``.npz`` file into memory.

    Raises ValueError (naming the file) for anything that is not a readable ``.npz`` file with
    the six keys. Pickled (object) arrays are refused: a data file must not run code.
    """
    # Opening the file can fail for reasons of the system (no such file, no permission): those
    # errors pass through as they are. Anything wrong with the content is a ValueError naming
    # the file (tinycnn.npz checks checksums and array headers before reading any data).
    archive = read_npz(path)
    missing = [key for key in _REQUIRED_KEYS if key not in archive]
    if missing:
        raise ValueError(
            f"{path}: missing key(s) {', '.join(missing)}; expected keys "
            f"{', '.join(_REQUIRED_KEYS)}, found {', '.join(archive) or 'none'}"
        )
    return {key: archive[key] for key in _REQUIRED_KEYS}


def _check_split(
    path: Path,
    info: DatasetInfo,
    split: str,
    images: np.ndarray,
    labels: np.ndarray,
    size: int = IMAGE_SIZE,
) -> None:
    """Raise ValueError (naming file, key, expected and actual) if a split looks wrong."""
    images_key, labels_key = f"{split}_images", f"{split}_labels"

    if images.dtype != np.uint8:
        raise ValueError(f"{path}: key {images_key!r}: expected dtype uint8, got {images.dtype}")
    if info.n_channels == 1:
        expected_image_shape, kind = (size, size), "grey"
    else:
        expected_image_shape, kind = (size, size, info.n_channels), "RGB"
    if images.ndim != 1 + len(expected_image_shape) or images.shape[1:] != expected_image_shape:
        shape_text = ", ".join(str(side) for side in expected_image_shape)
        # A file of another size (pneumoniamnist_64.npz loaded as 28×28) deserves a pointer.
        hint = ""
        if images.ndim >= 3 and images.shape[1] == images.shape[2] != size:
            hint = f"; these are {images.shape[1]}×{images.shape[2]} images: pass size={images.shape[1]}"
        raise ValueError(
            f"{path}: key {images_key!r}: expected shape (N, {shape_text}) ({kind} {size}×{size} "
            f"images, as {info.name} has {info.n_channels} channel(s)), got {images.shape}{hint}"
        )

    n_images = images.shape[0]
    if n_images == 0:          # training, model selection and the test score each need images
        raise ValueError(f"{path}: the {split} split is empty (key {images_key!r} has 0 images); "
                         "every split (train, val, test) needs at least one image")
    n_columns = info.n_classes if info.is_multilabel else 1
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{path}: key {labels_key!r}: expected an integer dtype (uint8), got {labels.dtype}"
        )
    if labels.shape != (n_images, n_columns):
        raise ValueError(
            f"{path}: key {labels_key!r}: expected shape ({n_images}, {n_columns}) "
            f"(one row per image in {images_key!r}), got {labels.shape}"
        )

    if labels.size > 0:
        high = 2 if info.is_multilabel else info.n_classes
        lowest, highest = int(labels.min()), int(labels.max())
        if lowest < 0 or highest >= high:
            raise ValueError(
                f"{path}: key {labels_key!r}: expected label values in [0, {high}) "
                f"({info.task}, {info.n_classes} labels), found values from {lowest} to {highest}"
            )


def load_file(path: str | os.PathLike, name: str, size: int = IMAGE_SIZE) -> MedMNIST:
    """Load and check one ``.npz`` file, taking the dataset's facts from the registry.

    Checks: the six keys are there; no split is empty; images are ``uint8`` with shape ``(N, size, size)`` (grey) or
    ``(N, size, size, 3)`` (RGB) as the registry's ``n_channels`` says (``size`` is 28 unless
    given: 64, 128 or 224 for a MedMNIST+ file); labels are integers with shape
    ``(N, 1)`` (or ``(N, n_classes)`` for multi-label) and values in ``[0, n_classes)`` (0/1 for
    multi-label). Counts are *not* required to equal the official ones (small test files are
    fine); compare ``result.n_samples`` with ``result.info.n_samples`` if that matters.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        ValueError: ``size`` is not one the dataset is offered at, or anything else is wrong;
            the message names the file, the key, and what was expected and found.
    """
    info = get_info(name)
    size = info.file(size).size          # a size the dataset is offered at, as an int
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no MedMNIST file at {path}")

    arrays = _read_npz(path)
    splits = {}
    for split in SPLITS:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        _check_split(path, info, split, images, labels, size)
        splits[split] = Split(images=images, labels=labels)
    return MedMNIST(info=info, path=path, size=size, **splits)


def load(
    name: str,
    root: str | os.PathLike | None = None,
    download: bool = True,
    size: int = IMAGE_SIZE,
) -> MedMNIST:
    """Find (or download) ``<name>.npz``, check it, and return its three splits.

    ``size`` chooses the images' height and width: 28 (MedMNIST, the default, ``<name>.npz``) or
    a larger MedMNIST+ size the dataset is offered at, 64, 128 or 224 (``<name>_64.npz``...;
    ``get_info(name).sizes`` lists them).

    The file is looked for in the folders of :func:`search_folders`: ``root`` (if given), then
    ``$TINYCNN_DATA``, then ``~/.medmnist``. If none has it and ``download`` is true, it is
    downloaded into the first of those folders (see :func:`download`).

    Raises:
        ValueError: the dataset is not offered at ``size`` (the message lists the sizes it is
            offered at), or the file is damaged or not what the registry describes.
        FileNotFoundError: the file is nowhere and ``download`` is false; the message lists the
            folders searched and the URL to fetch the file from.
        DownloadError: the download failed.
    """
    info = get_info(name)
    official = info.file(size)
    folders = search_folders(root)
    for folder in folders:
        candidate = folder / official.filename
        if candidate.is_file():
            return load_file(candidate, info.name, official.size)

    if not download:
        searched = ", ".join(str(folder) for folder in folders)
        size_argument = "" if official.size == IMAGE_SIZE else f", size={official.size}"
        raise FileNotFoundError(
            f"{official.filename} was not found in any of these folders: {searched}. "
            f"Download it from {official.url} and put it in {folders[0]}, "
            f"or call load({info.name!r}{size_argument}, download=True)."
        )
    # Inside this function ``download`` is the argument (a bool), not the function below.
    path = _download_function(official, folders[0])
    return load_file(path, info.name, official.size)


def _download_function(official: DataFile, folder: Path) -> Path:
    """Call :func:`download` (kept separate because :func:`load` has an argument of that name)."""
    return download(official.name, folder, size=official.size)
