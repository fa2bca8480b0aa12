"""Reading ``.npz`` files defensively: everything checked before any array data is read, nothing unpickled.

``numpy.load`` trusts a file's headers: a damaged or crafted shape field can make it allocate
gigabytes before the zip checksum ever notices, an object array would be unpickled if allowed, and
a small compressed member can inflate to gigabytes (a "zip bomb"). Model and dataset files come
from disk or the network, so :class:`NpzReader` works in two steps:

1. **Open** (cheap, reads no array data): the file must be a regular file (not a directory, a
   device such as ``/dev/zero``, or a pipe); the zip's central directory must be small enough to
   list; every member name is checked (``.npy`` only, no duplicates, no encryption, stored or
   deflated only) and every member's declared size is added up against ``max_bytes`` — all before
   anything is inflated. Then each member's ``.npy`` header (a few hundred bytes) is read: object
   (pickle) and structured dtypes are refused, and the shape and dtype must account for exactly the
   bytes the member stores.
2. **Read** an array by name: the data streams straight into a new array of the declared shape, and
   the zip's CRC-32 is checked as the last byte arrives.

So a caller can look at the names, shapes and dtypes (``reader.headers``) and refuse a file before
reading — and allocating — any of its data; :mod:`tinycnn.io` does that for model files.
:func:`read_npz` opens and reads everything, for files whose contents are wanted whole. Any problem
raises :class:`NpzError` (a ``ValueError``) naming the file.
"""

from __future__ import annotations

import math
import os
import stat
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_BYTES = 4 * 1024**3           # refuse archives claiming more than 4 GiB of array data
MAX_MEMBERS = 100_000             # arrays in one archive
MAX_DIRECTORY_BYTES = 8 * 1024**2  # the zip's central directory (the list of members), read whole by zipfile
ALLOWED_KINDS = "biufcUS"         # bool, integers, floats, complex, strings: no objects, no structured records
_CHUNK = 16 * 1024**2             # data is read in pieces of this size


class NpzError(ValueError):
    """The file is not a sound ``.npz`` archive of plain arrays."""


@dataclass(frozen=True)
class ArrayHeader:
    """What a member's ``.npy`` header declares: read before any data."""
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool

    @property
    def size(self) -> int:
        return math.prod(self.shape)         # Python ints: a crafted shape cannot overflow


class NpzReader:
    """An ``.npz`` archive whose member names and array headers have been checked; data not read yet.

    ::

        with NpzReader(path) as npz:
            npz.headers              # {"train_images": ArrayHeader(shape, dtype, fortran_order), ...}
            images = npz.read("train_images")
    """

    def __init__(self, path, max_bytes: int = MAX_BYTES, max_members: int = MAX_MEMBERS,
                 max_file_bytes: int | None = None):
        self.path = Path(path)
        self._file = _open_regular_file(self.path)       # system errors pass through unchanged
        try:
            self._archive, self._infos, self.headers = _check(self._file, self.path, max_bytes, max_members,
                                                              max_file_bytes)
        except BaseException as err:
            self._file.close()
            if isinstance(err, NpzError) or not isinstance(err, Exception):
                raise
            # zipfile/zlib/numpy raise many kinds on damage
            raise NpzError(f"{self.path}: not a valid .npz file ({type(err).__name__}: {err})") from None

    def read(self, name: str) -> np.ndarray:
        """The array ``name`` (as in :attr:`headers`), its CRC-32 checked."""
        header = self.headers[name]
        try:
            with self._archive.open(self._infos[name]) as member:
                _read_header(member)
                data = np.empty(header.size * header.dtype.itemsize, np.uint8)
                view, filled = memoryview(data), 0
                while filled < len(view):
                    chunk = member.read(min(_CHUNK, len(view) - filled))
                    if not chunk:
                        raise NpzError(f"{self.path}: array {name!r} is truncated")
                    view[filled:filled + len(chunk)] = chunk
                    filled += len(chunk)
                if member.read(1):                     # also makes zipfile check the CRC-32
                    raise NpzError(f"{self.path}: array {name!r} stores more bytes than its header declares")
        except NpzError:
            raise
        except Exception as err:                       # zipfile.BadZipFile (CRC), zlib.error...
            raise NpzError(f"{self.path}: array {name!r} is damaged ({type(err).__name__}: {err})") from None
        if data.size == 0:
            return np.empty(header.shape, header.dtype)
        order = "F" if header.fortran_order else "C"
        return data.view(header.dtype).reshape(header.shape, order=order)

    def close(self) -> None:
        self._archive.close()
        self._file.close()

    def __enter__(self) -> NpzReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_npz(path, max_bytes: int = MAX_BYTES) -> dict[str, np.ndarray]:
    """All arrays of the ``.npz`` file at ``path``, as a dict (``"name"`` without ``.npy``).

    Raises ``FileNotFoundError``/``PermissionError`` as the operating system does, and
    :class:`NpzError` for anything wrong with the content.
    """
    with NpzReader(path, max_bytes=max_bytes) as npz:
        return {name: npz.read(name) for name in npz.headers}


def _open_regular_file(path: Path):
    """Open ``path`` for reading, refusing anything but a regular file (checked on the open file,
    so it cannot be swapped between the check and the read; ``O_NONBLOCK`` so a named pipe cannot
    make the open wait forever)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = "a directory" if stat.S_ISDIR(mode) else "not a regular file (a device, pipe or socket)"
        raise NpzError(f"{path}: is {what}, not an .npz file")
    return os.fdopen(fd, "rb")


def _check(file, path: Path, max_bytes: int, max_members: int, max_file_bytes: int | None):
    size = os.fstat(file.fileno()).st_size
    if max_file_bytes is not None and size > max_file_bytes:
        raise NpzError(f"{path}: the file is {size} bytes; files over {max_file_bytes} bytes are refused")
    if not zipfile.is_zipfile(file):
        raise NpzError(f"{path}: not a valid .npz file (not a zip archive)")
    entries, directory_bytes = _central_directory(file, size)
    if entries > max_members or directory_bytes > MAX_DIRECTORY_BYTES:
        raise NpzError(f"{path}: the archive lists {entries} members in {directory_bytes} bytes; at most "
                       f"{max_members} members and {MAX_DIRECTORY_BYTES} bytes of listing are read")
    file.seek(0)
    archive = zipfile.ZipFile(file)
    try:
        infos = _check_members(archive.infolist(), path, max_bytes, max_members)
        headers = {}
        for name, info in infos.items():
            with archive.open(info) as member:
                headers[name] = _check_header(member, info, name, path)
    except BaseException:
        archive.close()
        raise
    return archive, infos, headers


def _central_directory(file, size: int) -> tuple[int, int]:
    """(number of members, bytes of the central directory) from the zip's end record, read before
    ``zipfile`` lists the members — a crafted listing of millions of entries would cost gigabytes."""
    tail = min(size, 22 + 65535)                  # the end record and a comment of at most 64 KiB
    file.seek(size - tail)
    data = file.read(tail)
    at = data.rfind(b"PK\x05\x06")
    if at < 0 or len(data) - at < 22:
        raise NpzError("no zip end record")
    entries, directory_bytes = struct.unpack("<HI", data[at + 10:at + 16])
    locator = at - 20                             # ZIP64: the real counts are in another record
    if locator >= 0 and data[locator:locator + 4] == b"PK\x06\x07":
        (offset,) = struct.unpack("<Q", data[locator + 8:locator + 16])
        file.seek(offset)
        record = file.read(56)
        if len(record) < 56 or record[:4] != b"PK\x06\x06":
            raise NpzError("damaged ZIP64 end record")
        entries, directory_bytes = struct.unpack("<QQ", record[32:48])
    return entries, directory_bytes


def _check_members(infos, path: Path, max_bytes: int, max_members: int) -> dict[str, zipfile.ZipInfo]:
    """Member names and declared sizes, before a single byte is inflated."""
    if len(infos) > max_members:
        raise NpzError(f"{path}: {len(infos)} members; at most {max_members} are read")
    members = {}
    for info in infos:
        if not info.filename.endswith(".npy"):
            raise NpzError(f"{path}: unexpected member {info.filename!r} (an .npz holds only .npy arrays)")
        name = info.filename[:-4]
        if name in members:
            raise NpzError(f"{path}: the member {info.filename!r} appears twice; which one is meant is ambiguous")
        if info.flag_bits & 0x1:
            raise NpzError(f"{path}: member {info.filename!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise NpzError(f"{path}: member {info.filename!r} uses compression method {info.compress_type}; "
                           "only stored and deflated members (np.savez, np.savez_compressed) are read")
        members[name] = info
    total = sum(info.file_size for info in infos)
    if total > max_bytes:
        raise NpzError(f"{path}: claims {total} bytes of data; more than {max_bytes} bytes are refused")
    return members


def _read_header(member) -> tuple[tuple, bool, np.dtype]:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(member)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(member)
    raise NpzError(f"unknown .npy format version {version}")


def _check_header(member, info: zipfile.ZipInfo, name: str, path: Path) -> ArrayHeader:
    shape, fortran, dtype = _read_header(member)
    if dtype.hasobject:
        raise NpzError(f"{path}: array {name!r} holds Python objects (a pickle); refused")
    if dtype.kind not in ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise NpzError(f"{path}: array {name!r} has dtype {dtype}; only plain numbers and strings are read")
    if any(side < 0 for side in shape):
        raise NpzError(f"{path}: array {name!r} declares a negative shape {shape}")
    header = ArrayHeader(tuple(shape), dtype, bool(fortran))
    stored = info.file_size - member.tell()
    if header.size * dtype.itemsize != stored:
        raise NpzError(f"{path}: array {name!r} declares shape {header.shape} of {dtype} "
                       f"but stores {stored} bytes of data")
    return header
