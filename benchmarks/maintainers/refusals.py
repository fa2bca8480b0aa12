"""What it costs to refuse a crafted model file or image: time and peak memory, one child process each.

    python benchmarks/maintainers/refusals.py             # about half a minute: builds the files, then
                                                          # loads each in a fresh process
    python benchmarks/maintainers/refusals.py --keep DIR  # keep the crafted files in DIR

Each file in :data:`CRAFTED` is made in a temporary folder, then loaded by a fresh Python process
(``tinycnn.load_model`` for a model file, ``tinycnn.cli.read_image`` for an image) that has already
imported tinycnn, NumPy and matplotlib. It reports the seconds the refusal took (the best of three
tries), the peak of memory allocations traced by ``tracemalloc`` during a fourth try, and how far
the process's peak resident memory (``resource.getrusage``'s ``ru_maxrss``) rose above its level
before the first try. A refusal must take under 0.5 s and 50 MB above that baseline;
``tests/test_adversarial_files.py`` asserts the same for every file here. The table printed is
the one quoted in the README's safety section.

The files are the attacks ``tinycnn/io.py``, ``tinycnn/npz.py`` and ``tinycnn/cli.py``'s
``read_image`` defend against: each builder below says what it tries.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
HEADER = "__tinycnn__"
MB = 1024**2


# -- a small valid model, and ways to write it back changed --------------------------------------
def base_model():
    """(doc, arrays) of a small compiled model: Conv2D(2, 3) → Flatten → Dense(3, softmax) on 6×6×1."""
    sys.path.insert(0, str(REPO))
    import tinycnn as tc

    model = tc.Sequential([tc.Conv2D(2, 3), tc.Flatten(), tc.Dense(3, activation="softmax")],
                          input_shape=(6, 6, 1), seed=0)
    model.compile(tc.Adam(0.01), "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((4, 6, 6, 1)).astype(np.float32)
    model.train_on_batch(x, np.array([0, 1, 2, 1]))
    with tempfile.TemporaryDirectory() as folder:
        path = model.save(Path(folder) / "m.npz")
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    doc = json.loads(str(arrays.pop(HEADER)))
    return doc, arrays


def npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


def write_members(path: Path, members, compress=False) -> Path:
    """A zip of ``(name, bytes)`` members, exactly as given (duplicates too)."""
    import warnings

    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                   # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w", method) as archive:
            for name, data in members:
                archive.writestr(name, data)
    return path


def write_model(path: Path, doc, arrays, compress=False) -> Path:
    members = [(f"{HEADER}.npy", npy_bytes(np.array(doc if isinstance(doc, str) else json.dumps(doc))))]
    members += [(f"{name}.npy", npy_bytes(value)) for name, value in arrays.items()]
    return write_model_members(path, members, compress)


def write_model_members(path, members, compress=False):
    return write_members(Path(path), members, compress)


def npy_header(shape, dtype="<f4") -> bytes:
    """A version 1.0 ``.npy`` header declaring ``shape`` and ``dtype`` (the data not included)."""
    text = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)})
    text += " " * (-(len(text) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def write_bomb(path: Path, name: str, header: bytes, zeros: int, other_members=()) -> Path:
    """A zip whose member ``name`` is ``header`` then ``zeros`` zero bytes, deflated (about 1000:1),
    written in pieces so making it costs little memory."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in other_members:
            archive.writestr(member, data)
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as out:
            out.write(header)
            block = bytes(16 * MB)
            for start in range(0, zeros, len(block)):
                out.write(block[: min(len(block), zeros - start)])
    return path


def png_bytes(width: int, height: int, rows: bytes | None = None) -> bytes:
    """A grey 8-bit PNG of ``width × height``; ``rows`` the raw scanlines (default: all zero),
    deflated — a 9000×9000 black image is about 80 KB."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    if rows is None:
        line = bytes(width + 1)                          # filter byte 0, then the pixels
        idat = b"".join(compressor.compress(line) for _ in range(height)) + compressor.flush()
    else:
        idat = compressor.compress(rows) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


# -- the crafted files -----------------------------------------------------------------------------
def _with_layer(doc, index, **config):
    doc = json.loads(json.dumps(doc))
    doc["layers"][index]["config"].update(config)
    return doc


def deep_json(folder, doc, arrays):
    """100 000 nested brackets: json.loads recurses once per level (a RecursionError traceback)."""
    return write_model(folder / "deep_json.npz", "[" * 100_000 + "]" * 100_000, arrays)


def huge_dense(folder, doc, arrays):
    """Dense(units=10**9) after 32 features: 32·10⁹ weights, built (or a bare MemoryError) before any shape check."""
    return write_model(folder / "huge_dense.npz", _with_layer(doc, 2, units=10**9), arrays)


def big_dense(folder, doc, arrays):
    """Dense(units=200 000 000): 6.4·10⁹ weights — over the parameter limit, yet small enough to try building."""
    return write_model(folder / "big_dense.npz", _with_layer(doc, 2, units=200_000_000), arrays)


def huge_filters(folder, doc, arrays):
    """Conv2D(filters=10**15): outputs of 16·10¹⁵ numbers per image, a kernel of 9·10¹⁵."""
    return write_model(folder / "huge_filters.npz", _with_layer(doc, 0, filters=10**15), arrays)


def huge_input(folder, doc, arrays):
    """input_shape [10**9, 10**9, 1]: a Flatten of 10¹⁸ features (int64 overflow in np.prod)."""
    doc = json.loads(json.dumps(doc))
    doc["model"]["input_shape"] = [10**9, 10**9, 1]
    return write_model(folder / "huge_input.npz", doc, arrays)


def bomb_bad_name(folder, doc, arrays):
    """A deflated member of 512 MB of zeros (0.5 MB on disk) with a name no model has: inflated whole
    by a checksum pass before its name is looked at."""
    members = [(f"{HEADER}.npy", npy_bytes(np.array(json.dumps(doc))))]
    members += [(f"{name}.npy", npy_bytes(value)) for name, value in arrays.items()]
    return write_bomb(folder / "bomb_bad_name.npz", "payload.bin", b"", 512 * MB, members)


def bomb_weight(folder, doc, arrays):
    """params/dense/kernel declared as 128 M float32 (512 MB of zeros, 0.5 MB deflated) where the
    architecture needs (32, 3): read, and copied, before the shape is compared."""
    members = [(f"{HEADER}.npy", npy_bytes(np.array(json.dumps(doc))))]
    members += [(f"{name}.npy", npy_bytes(value)) for name, value in arrays.items() if name != "params/dense/kernel"]
    return write_bomb(folder / "bomb_weight.npz", "params/dense/kernel.npy", npy_header((128 * MB,)), 512 * MB, members)


def duplicate_member(folder, doc, arrays):
    """params/dense/bias twice: the second copy silently wins."""
    members = [(f"{HEADER}.npy", npy_bytes(np.array(json.dumps(doc))))]
    members += [(f"{name}.npy", npy_bytes(value)) for name, value in arrays.items()]
    members.append(("params/dense/bias.npy", npy_bytes(np.full(3, 7, np.float32))))
    return write_model_members(folder / "duplicate_member.npz", members)


def nan_weights(folder, doc, arrays):
    """A NaN in params/dense/kernel: predict answers NaN."""
    arrays = dict(arrays)
    kernel = arrays["params/dense/kernel"].copy()
    kernel[0, 0] = np.nan
    arrays["params/dense/kernel"] = kernel
    return write_model(folder / "nan_weights.npz", doc, arrays)


def inf_optimizer_slot(folder, doc, arrays):
    """An infinite Adam moment: the first training step turns the weights into NaN."""
    arrays = dict(arrays)
    key = next(name for name in arrays if name.startswith("optimizer/") and name.endswith("/v"))
    arrays[key] = np.full_like(arrays[key], np.inf)
    return write_model(folder / "inf_optimizer_slot.npz", doc, arrays)


def huge_npy_shape(folder, doc, arrays):
    """A header declaring shape (2**32, 2**32) with no data: 2⁶⁴ overflows int64 to 0 bytes expected."""
    members = [(f"{HEADER}.npy", npy_bytes(np.array(json.dumps(doc))))]
    members += [(f"{name}.npy", npy_bytes(value)) for name, value in arrays.items() if name != "params/dense/kernel"]
    members.append(("params/dense/kernel.npy", npy_header((2**32, 2**32))))
    return write_model_members(folder / "huge_npy_shape.npz", members)


def huge_json_string(folder, doc, arrays):
    """A 5 M-character string in the metadata (a 20 MB header array, 20 KB deflated)."""
    doc = json.loads(json.dumps(doc))
    doc["metadata"] = {"note": "x" * 5_000_000}
    return write_model(folder / "huge_json_string.npz", doc, arrays, compress=True)


def huge_number(folder, doc, arrays):
    """units: 1e999, which JSON reads as infinity."""
    text = json.dumps(_with_layer(doc, 2, units=12345)).replace("12345", "1e999")
    return write_model(folder / "huge_number.npz", text, arrays)


def long_integer(folder, doc, arrays):
    """units: an integer of 5000 digits (Python refuses to read over 4300 with a bare ValueError)."""
    text = json.dumps(_with_layer(doc, 2, units=12345)).replace("12345", "9" * 5000)
    return write_model(folder / "long_integer.npz", text, arrays)


def many_members(folder, doc, arrays):
    """20 000 empty members: the zip's listing alone becomes many Python objects."""
    members = [(f"{HEADER}.npy", npy_bytes(np.array(json.dumps(doc))))]
    members += [(f"callbacks/0/{i}.npy", b"") for i in range(20_000)]
    return write_model_members(folder / "many_members.npz", members)


def object_array(folder, doc, arrays):
    """An object (pickle) array: unpickling runs code."""
    members = [(f"{HEADER}.npy", npy_bytes(np.array(json.dumps(doc))))]
    members += [(f"{name}.npy", npy_bytes(value)) for name, value in arrays.items()]
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([None, 1], dtype=object), allow_pickle=True)
    members.append(("callbacks/0/0.npy", buffer.getvalue()))
    return write_model_members(folder / "object_array.npz", members)


def dev_zero(folder, doc, arrays):
    """A symbolic link to /dev/zero: endless zeros."""
    link = folder / "dev_zero.npz"
    link.symlink_to("/dev/zero")
    return link


def directory(folder, doc, arrays):
    """A directory named like a model file."""
    path = folder / "directory.npz"
    path.mkdir()
    return path


def huge_png(folder, doc, arrays):
    """A 9000×9000 PNG in 80 KB: decoded in full (81 MB, then 324 MB of floats) before its size is compared."""
    path = folder / "huge_png.png"
    path.write_bytes(png_bytes(9000, 9000))
    return path


def giant_png(folder, doc, arrays):
    """A PNG header declaring 100 000 × 100 000 (no pixel data at all)."""
    path = folder / "giant_png.png"
    path.write_bytes(png_bytes(100_000, 100_000, rows=b""))
    return path


MODEL_FILES = [deep_json, huge_dense, big_dense, huge_filters, huge_input, bomb_bad_name, bomb_weight,
               duplicate_member, nan_weights, inf_optimizer_slot, huge_npy_shape, huge_json_string, huge_number,
               long_integer, many_members, object_array, dev_zero, directory]
IMAGES = [huge_png, giant_png]
CRAFTED = MODEL_FILES + IMAGES


def build_all(folder: Path) -> dict[str, Path]:
    doc, arrays = base_model()
    return {make.__name__: make(Path(folder), doc, arrays) for make in CRAFTED}


# -- measuring, in a fresh process ----------------------------------------------------------------
CHILD = r"""
import json, resource, sys, time, tracemalloc, warnings
sys.path.insert(0, sys.argv[1])
if len(sys.argv) > 3:   # a cap on the address space, so that an old revision's huge allocations fail fast
    resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[3]), int(sys.argv[3])))
import numpy, matplotlib.image
import tinycnn
from tinycnn.cli import read_image
results = {}
for kind, name, path in json.loads(sys.argv[2]):
    def attempt():
        try:
            if kind == "model":
                tinycnn.load_model(path)
            else:
                read_image(path, (28, 28, 1))
        except Exception as err:
            return f"{type(err).__name__}: {err}"
        return None
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(3):
        start = time.perf_counter()
        error = attempt()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    attempt()
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline
    results[name] = {"seconds": min(times), "traced_mb": traced / 2**20, "rss_mb": rss / 1024, "error": error}
print(json.dumps(results))
"""


def measure(files: dict[str, Path], separate: bool = True, repo: Path = REPO,
            address_space: int | None = None) -> dict[str, dict]:
    """Load each file in a fresh process (``separate``) or all in one, with the tinycnn of ``repo``;
    the numbers per file."""
    jobs = [("image" if str(path).endswith(".png") else "model", name, str(path)) for name, path in files.items()]
    groups = [[job] for job in jobs] if separate else [jobs]
    results = {}
    for group in groups:
        command = [sys.executable, "-c", CHILD, str(repo), json.dumps(group)]
        out = subprocess.run(command + ([str(address_space)] if address_space else []), capture_output=True,
                             text=True, timeout=600)
        if out.returncode != 0:                 # e.g. an old revision killed or crashed by a file
            last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit status {out.returncode}"
            results[group[0][1]] = {"seconds": float("nan"), "traced_mb": float("nan"), "rss_mb": float("nan"),
                                    "error": f"crashed: {last}"}
            continue
        results.update(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def table(results: dict[str, dict]) -> str:
    lines = ["| crafted file | refused with | time | traced peak | peak RSS above baseline |",
             "|---|---|---:|---:|---:|"]
    for name, r in results.items():
        error = (r["error"] or "NOT REFUSED").split(":")[0]
        lines.append(f"| `{name}` | {error} | {r['seconds'] * 1000:.1f} ms | {r['traced_mb']:.1f} MB | "
                     f"{r['rss_mb']:.1f} MB |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", default=None, help="make the files in this folder and keep them")
    parser.add_argument("--repo", default=str(REPO),
                        help="the checkout whose tinycnn loads the files, e.g. an export of an older revision: "
                             "git archive HEAD | tar -x -C /tmp/old (default: this one)")
    parser.add_argument("--address-space-gb", type=float, default=None,
                        help="cap each child's address space (RLIMIT_AS), so that huge allocations fail at once")
    args = parser.parse_args(argv)
    cap = int(args.address_space_gb * 1024**3) if args.address_space_gb else None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        results = measure(build_all(folder), repo=Path(args.repo), address_space=cap)
    print(table(results))
    bad = [name for name, r in results.items()
           if r["error"] is None or r["seconds"] >= 0.5 or max(r["rss_mb"], r["traced_mb"]) >= 50]
    if bad:
        print(f"over the limits (0.5 s, 50 MB) or not refused: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
