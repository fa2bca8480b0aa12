"""Reading ``.npz`` files defensively: every array checked before it is read, nothing unpickled.

``numpy.load`` trusts a file's headers: a damaged shape field can make it allocate gigabytes
before the zip checksum ever notices, and an object array would be unpickled if allowed. Model
and dataset files come from disk or the network, so :func:`read_npz` first verifies the zip
checksums, then reads each array's header and checks that the shape and dtype account for
exactly the bytes stored, refuses object (pickle) arrays, and only then reads the data. Any
problem raises :class:`NpzError` (a ``ValueError``) naming the file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

MAX_BYTES = 4 * 1024**3          # refuse archives claiming more than 4 GiB of array data


class NpzError(ValueError):
    """The file is not a sound ``.npz`` archive of plain arrays."""


def read_npz(path, max_bytes: int = MAX_BYTES) -> dict[str, np.ndarray]:
    """All arrays of the ``.npz`` file at ``path``, as a dict (``"name"`` without ``.npy``).

    Raises ``FileNotFoundError``/``PermissionError`` as the operating system does, and
    :class:`NpzError` for anything wrong with the content.
    """
    path = Path(path)
    with open(path, "rb") as file:            # system errors pass through unchanged
        try:
            return _read(file, path, max_bytes)
        except NpzError:
            raise
        except Exception as err:              # zipfile/zlib/numpy raise many kinds on damage
            raise NpzError(f"{path}: not a valid .npz file ({type(err).__name__}: {err})") from None


def _read(file, path: Path, max_bytes: int) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(file):
        raise NpzError(f"{path}: not a valid .npz file (not a zip archive)")
    file.seek(0)
    arrays = {}
    with zipfile.ZipFile(file) as archive:
        infos = archive.infolist()
        if sum(info.file_size for info in infos) > max_bytes:
            raise NpzError(f"{path}: claims more than {max_bytes} bytes of data")
        damaged = archive.testzip()           # reads every member once, checking its CRC-32
        if damaged is not None:
            raise NpzError(f"{path}: member {damaged!r} is damaged (checksum mismatch)")
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise NpzError(f"{path}: unexpected member {info.filename!r} (an .npz holds only .npy arrays)")
            name = info.filename[:-4]
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
                if dtype.hasobject:
                    raise NpzError(f"{path}: array {name!r} holds Python objects (a pickle); refused")
                expected = member.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                if expected != info.file_size:
                    raise NpzError(f"{path}: array {name!r} declares shape {shape} of {dtype} "
                                   f"but stores {info.file_size - member.tell()} bytes of data")
                data = member.read()
            array = np.frombuffer(data, dtype=dtype)
            array = array.reshape(shape, order="F" if fortran else "C").copy()
            arrays[name] = array
    return arrays
