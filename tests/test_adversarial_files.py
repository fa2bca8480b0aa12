"""Files crafted to hurt: model files and images refused quickly, cheaply and clearly; saved files'
permissions; the temporaries of killed saves.

The crafted files come from benchmarks/maintainers/refusals.py (which also prints the table of
time and memory per refusal); each test here says what the file tries. The last test loads every
crafted file in a fresh process and holds each refusal to 0.5 s and 50 MB.
"""

import json
import os
import signal
import stat
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import tinycnn as tc
from tinycnn import io as tio
from tinycnn.cli import CLIError, main, read_image
from tinycnn.io import ModelFileError, load_model, save_model

from .conftest import REPO, load_script

refusals = load_script(REPO / "benchmarks" / "maintainers" / "refusals.py")


@pytest.fixture(scope="module")
def base():
    """(doc, arrays) of a small valid model file: Conv2D(2, 3) → Flatten → Dense(3, softmax) on 6×6×1."""
    return refusals.base_model()


def refused(path, match):
    with pytest.raises(ModelFileError, match=match) as err:
        load_model(path)
    assert str(path) in str(err.value)
    return str(err.value)


# -- the items of the issue -----------------------------------------------------------------------
def test_deeply_nested_json_is_refused_not_a_recursion_error(tmp_path, base):
    refused(refusals.deep_json(tmp_path, *base), r"nests 100000 levels deep; more than 64 are refused")


@pytest.mark.parametrize("make", [refusals.huge_dense, refusals.big_dense, refusals.huge_filters, refusals.huge_input])
def test_absurd_layer_sizes_are_refused_before_anything_is_built(tmp_path, base, make):
    tracemalloc.start()
    try:
        message = refused(make(tmp_path, *base), r"more than \d+ (are refused|positive numbers|numbers)|at most")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, (message, peak)


def test_compressed_member_with_a_bad_name_is_refused_before_inflating_it(tmp_path, base):
    path = refusals.bomb_bad_name(tmp_path, *base)
    assert path.stat().st_size < 2 * 2**20                   # 512 MB of zeros inside
    start = time.perf_counter()
    refused(path, r"unexpected member 'payload.bin'")
    assert time.perf_counter() - start < 0.5                  # inflating it takes seconds


def test_compressed_weight_of_the_wrong_size_is_refused_from_its_header(tmp_path, base):
    path = refusals.bomb_weight(tmp_path, *base)
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError) as err:
            load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20                                  # not 512 MB read, then copied
    assert "params/dense/kernel has shape (134217728,), the architecture needs (32, 3)" in str(err.value)


def test_duplicated_member_names_are_refused(tmp_path, base):
    refused(refusals.duplicate_member(tmp_path, *base), r"'params/dense/bias.npy' appears twice")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused_naming_the_array(tmp_path, base, value):
    doc, arrays = base
    arrays = dict(arrays)
    arrays["params/conv2d/bias"] = np.array([0.5, value], np.float32)
    path = refusals.write_model(tmp_path / "m.npz", doc, arrays)
    refused(path, r"the array 'params/conv2d/bias' holds 1 NaN or infinite value\(s\) of 2")


def test_non_finite_optimizer_state_is_refused(tmp_path, base):
    refused(refusals.inf_optimizer_slot(tmp_path, *base), r"the array 'optimizer/\d+/v' holds \d+ NaN or infinite")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # the overflow is the point
def test_predict_never_prints_a_nan_verdict(tmp_path, capsys):
    """Finite weights so large that every logit overflows to inf: softmax gives NaN."""
    model = tc.Sequential([tc.Flatten(), tc.Dense(2, activation="softmax")], input_shape=(28, 28, 1))
    model.layers[1].params["kernel"][...] = 3e38
    model.save(tmp_path / "m.npz")
    png = tmp_path / "x.png"
    png.write_bytes(refusals.png_bytes(28, 28, rows=b"".join(b"\x00" + bytes([200]) * 28 for _ in range(28))))
    assert main(["predict", str(tmp_path / "m.npz"), str(png)]) != 0
    out, err = capsys.readouterr()
    assert "nan" not in out.lower() and "->" not in out
    assert "NaN or infinite outputs" in err


def test_a_png_declaring_a_huge_image_is_refused_before_decoding(tmp_path, base):
    for make in (refusals.huge_png, refusals.giant_png):
        path = make(tmp_path, *base)
        tracemalloc.start()
        try:
            with pytest.raises(CLIError, match=r"is (9000×9000|100000×100000) pixels; the model expects 28×28"):
                read_image(path, (28, 28, 1))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 2**20                                  # decoding 9000×9000 takes 324 MB of floats


def test_read_image_still_reads_a_png_of_the_right_size(tmp_path):
    rows = b"".join(b"\x00" + bytes(range(i, i + 28)) for i in range(28))
    (tmp_path / "ok.png").write_bytes(refusals.png_bytes(28, 28, rows=rows))
    image = read_image(tmp_path / "ok.png", (28, 28, 1))
    expected = np.array([list(range(i, i + 28)) for i in range(28)], np.uint8)
    np.testing.assert_array_equal(image, expected)
    np.testing.assert_array_equal(read_image(tmp_path / "ok.png", (28, 28, 3)), np.repeat(expected[:, :, None], 3, 2))


@pytest.mark.parametrize("content, match", [
    (b"GIF89a" + bytes(100), "not a PNG file"),
    (b"\x89PNG\r\n\x1a\n" + bytes(5), "not a PNG file"),
    (None, "not a regular file"),
])
def test_read_image_refuses_what_is_not_a_png_file(tmp_path, content, match):
    path = tmp_path / "x.png"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(CLIError, match=match):
        read_image(path, (28, 28, 1))
    if Path("/dev/zero").exists():
        with pytest.raises(CLIError, match="not a regular file"):
            read_image("/dev/zero", (28, 28, 1))


def test_read_image_refuses_a_huge_file(tmp_path, monkeypatch):
    import tinycnn.cli

    path = tmp_path / "big.png"
    path.write_bytes(refusals.png_bytes(28, 28) + bytes(5000))
    monkeypatch.setattr(tinycnn.cli, "MAX_IMAGE_BYTES", 4096)
    with pytest.raises(CLIError, match="bytes; image files over 4096 bytes are refused"):
        read_image(path, (28, 28, 1))


# -- beyond the list ------------------------------------------------------------------------------
def test_a_huge_declared_npy_shape_is_refused_from_its_header(tmp_path, base):
    refused(refusals.huge_npy_shape(tmp_path, *base), r"declares shape \(4294967296, 4294967296\)")


def test_object_arrays_are_refused(tmp_path, base):
    refused(refusals.object_array(tmp_path, *base), r"holds Python objects \(a pickle\)")


def test_a_listing_of_too_many_members_is_refused_before_it_is_read(tmp_path, base):
    refused(refusals.many_members(tmp_path, *base), r"lists 20001 members .* at most 10000 members")


def test_a_huge_json_document_is_refused_from_its_header(tmp_path, base):
    refused(refusals.huge_json_string(tmp_path, *base), r"5000\d\d\d characters long; documents over 4194304")


@pytest.mark.parametrize("make, match", [
    (refusals.huge_number, r"NaN or infinite number at layers\[2\]\['config'\]\['units'\]"),
    (refusals.long_integer, r"not valid JSON \(Exceeds the limit"),
])
def test_huge_numbers_in_json(tmp_path, base, make, match):
    refused(make(tmp_path, *base), match)


def test_nan_and_infinity_literals_in_a_layer_config_are_refused(tmp_path, base):
    doc, arrays = base
    text = json.dumps(doc).replace('"padding": "valid"', '"padding": "valid", "strides": NaN', 1)
    refused(refusals.write_model(tmp_path / "m.npz", text, arrays), r"NaN or infinite number at layers\[0\]")


def test_invalid_code_points_in_the_json_are_refused(tmp_path, base):
    """Not UTF-8: a header array holding a code point beyond Unicode's last (0x110000)."""
    doc, arrays = base
    text = json.dumps(doc)
    raw = np.frombuffer(np.array(text).tobytes(), np.uint32).copy()
    raw[-2] = 0x110000                                         # inside the closing of the document
    header = refusals.npy_header((), f"<U{len(text)}") + raw.tobytes()
    members = [(f"{tio.HEADER}.npy", header)] + [(f"{k}.npy", refusals.npy_bytes(v)) for k, v in arrays.items()]
    refused(refusals.write_model_members(tmp_path / "m.npz", members), r"not a readable|not valid JSON")


@pytest.mark.parametrize("change, match", [
    (dict(units="3"), r"layers\[2\] \(Dense\): invalid config \(ValueError: .*units must be a positive int"),
    (dict(units=0), r"units must be a positive int, got 0"),
    (dict(units=-5), r"units must be a positive int, got -5"),
    (dict(units=3.0), r"units must be a positive int, got 3.0"),
    (dict(use_bias=False), r"missing: none; unexpected: \['dense/bias'\]"),
    (dict(activation=["softmax"]), r"unknown activation"),
    (dict(kernel_initializer={"class": "os.system"}), r"unknown initializer"),
    (dict(surprise=1), r"unexpected keyword argument 'surprise'"),
    (dict(name=5), r"the name 5 is not a unique, non-empty string"),
    (dict(name="conv2d"), r"the name 'conv2d' is not a unique"),
    (dict(name="a/b"), r"the name 'a/b' is not a unique, non-empty string without '/'"),
])
def test_layer_configs_of_wrong_types_and_sizes_are_refused(tmp_path, base, change, match):
    doc, arrays = base
    doc = json.loads(json.dumps(doc))
    doc["layers"][2]["config"].update(change)
    refused(refusals.write_model(tmp_path / "m.npz", doc, arrays), match)


@pytest.mark.parametrize("change, match", [
    (lambda d: d["model"].update(input_shape=[0, 6, 1]), r"input_shape must be a list of 1 to 3 positive ints"),
    (lambda d: d["model"].update(input_shape="6,6,1"), r"input_shape must be a list"),
    (lambda d: d["model"].update(dtype="float16"), r"model dtype must be 'float32' or 'float64'"),
    (lambda d: d["model"].update(dtype="object"), r"model dtype must be"),
    (lambda d: d.update(layers={"0": {}}), r"needs a 'model' object and a 'layers' list"),
    (lambda d: d.update(layers=[]), r"0 layers; a model file holds 1 to 1000"),
    (lambda d: d["layers"].__setitem__(0, ["Conv2D"]), r"layers\[0\] must be an object"),
    (lambda d: d["layers"][0].update({"class": ["Conv2D"]}), r"unknown layer class \['Conv2D'\]"),
    (lambda d: d["layers"][0]["config"].update(kernel_size=[3]), r"kernel_size must be an int or a pair"),
    (lambda d: d["layers"][0]["config"].update(kernel_size=[-1, 3]), r"kernel_size must be positive"),
    (lambda d: d["layers"][0]["config"].update(kernel_size=7), r"kernel \(7, 7\) is larger than the 6×6 input"),
    (lambda d: d.update(version=True), r"invalid format version True"),
])
def test_architectures_that_make_no_sense_are_refused(tmp_path, base, change, match):
    doc, arrays = base
    doc = json.loads(json.dumps(doc))
    change(doc)
    refused(refusals.write_model(tmp_path / "m.npz", doc, arrays), match)


@pytest.mark.parametrize("dtype", ["float64", "float16", "int32", ">f4"])
def test_weights_of_another_dtype_are_refused_or_read_exactly(tmp_path, base, dtype):
    doc, arrays = base
    arrays = dict(arrays)
    arrays["params/dense/kernel"] = arrays["params/dense/kernel"].astype(dtype)
    path = refusals.write_model(tmp_path / "m.npz", doc, arrays)
    if dtype == ">f4":                                  # the same float32, big-endian: read exactly
        np.testing.assert_array_equal(load_model(path).layers[2].params["kernel"], arrays["params/dense/kernel"])
    else:
        refused(path, rf"dense/kernel has dtype {np.dtype(dtype)}, the model is float32")


def test_fortran_ordered_arrays_are_read_exactly(tmp_path, base):
    doc, arrays = base
    arrays = dict(arrays)
    kernel = arrays["params/dense/kernel"]
    arrays["params/dense/kernel"] = np.asfortranarray(kernel)
    path = refusals.write_model(tmp_path / "m.npz", doc, arrays)
    np.testing.assert_array_equal(load_model(path).layers[2].params["kernel"], kernel)


def test_a_directory_a_device_and_a_pipe_are_refused_without_reading(tmp_path, base):
    refused(refusals.directory(tmp_path, *base), "is a directory, not an .npz file")
    if Path("/dev/zero").exists():
        refused(refusals.dev_zero(tmp_path, *base), "not a regular file")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.npz")
        refused(tmp_path / "pipe.npz", "not a regular file")          # and does not wait for a writer
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.npz")


def test_a_symbolic_link_to_a_model_file_loads(tmp_path, base):
    path = refusals.write_model(tmp_path / "m.npz", *base)
    (tmp_path / "link.npz").symlink_to(path)
    np.testing.assert_array_equal(load_model(tmp_path / "link.npz").layers[0].params["kernel"],
                                  base[1]["params/conv2d/kernel"])


@pytest.mark.parametrize("method", ["bzip2", "encrypted"])
def test_unusual_zip_members_are_refused_before_reading(tmp_path, base, method):
    import zipfile

    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_BZIP2 if method == "bzip2" else zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{tio.HEADER}.npy", refusals.npy_bytes(np.array(json.dumps(base[0]))))
    if method == "encrypted":                   # set the "encrypted" flag in both headers
        data = bytearray(path.read_bytes())
        data[6] |= 1
        central = data.rfind(b"PK\x01\x02")
        data[central + 8] |= 1
        path.write_bytes(bytes(data))
    refused(path, "uses compression method 12" if method == "bzip2" else "is encrypted")


def test_weight_shapes_worked_out_from_configs_match_what_build_makes():
    """tinycnn.io._weight_shapes (used to refuse files before building) against build, every class."""
    def built(layer, shape):
        tc.Sequential([layer], input_shape=shape)
        return ({k: v.shape for k, v in layer.params.items()}, {k: v.shape for k, v in layer.state.items()})

    cases = [(cls(), (5, 4, 3)) for name, cls in tio.LAYER_CLASSES.items()
             if name not in ("Conv2D", "Dense", "Dropout", "Rescaling", "Normalization")]
    cases += [(tc.Conv2D(4, (3, 2)), (5, 4, 3)), (tc.Conv2D(2, 1, use_bias=False), (5, 4, 3)),
              (tc.Dense(7), (6,)), (tc.Dense(2, use_bias=False), (6,)), (tc.Dropout(0.5), (6,)),
              (tc.Rescaling(0.5), (5, 4, 3)), (tc.BatchNormalization(center=False), (5, 4, 3)),
              (tc.BatchNormalization(scale=False), (6,)), (tc.Normalization(), (5, 4, 3)),
              (tc.Normalization(axis=None, mean=0.5, variance=2.0), (5, 4, 3)),
              (tc.Normalization(axis=(1, 3), mean=[[1.0, 2.0, 3.0]] * 5, variance=[[1.0] * 3] * 5), (5, 4, 3))]
    assert {type(layer).__name__ for layer, _ in cases} == set(tio.LAYER_CLASSES)
    for layer, shape in cases:
        fresh = type(layer)(**{k: v for k, v in layer.get_config().items()})
        expected = tio._weight_shapes(fresh, shape)
        assert built(layer, shape) == expected, type(layer).__name__
        assert [list(d) for d in built(fresh, shape)] == [list(d) for d in expected]      # the same order


def test_save_refuses_what_load_would_refuse(tmp_path):
    model = tc.Sequential([tc.Flatten(), tc.Dense(2)], input_shape=(3, 3, 1))
    model.layers[1].params["bias"][0] = np.nan
    with pytest.raises(ValueError, match=r"not saved, .* would not load back: .*'params/dense/bias' holds 1 NaN"):
        model.save(tmp_path / "m.npz")
    model.layers[1].params["bias"][0] = 0
    model.metadata = {"deep": json.loads("[" * 70 + "]" * 70)}
    with pytest.raises(ValueError, match=r"nesting 72 deep; at most .* and 64 levels load back"):
        model.save(tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_limits_are_where_the_readme_says(tmp_path):
    readme = (REPO / "README.md").read_text()
    import tinycnn.cli

    section = readme[readme.index("Files crafted to hurt"):][:2500]
    for text in (f"{tio.MAX_FILE_BYTES // 2**30} GiB", f"{tio.MAX_ARRAY_BYTES // 2**30} GiB",
                 f"{tio.MAX_HEADER_CHARS:,} characters", f"{tio.MAX_JSON_DEPTH} levels", f"{tio.MAX_PARAMETERS:,}",
                 f"{tio.MAX_FEATURES:,}", f"{tio.MAX_ARRAYS:,} arrays", f"{tio.MAX_LAYERS:,} layers",
                 f"{tinycnn.cli.MAX_IMAGE_BYTES // 2**20} MiB"):
        assert text in section, text


# -- permissions and temporaries ------------------------------------------------------------------
def save_with_umask(path, umask, text="x"):
    old = os.umask(umask)
    try:
        return tio.atomic_write_text(path, text)
    finally:
        os.umask(old)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("umask, mode", [(0o077, 0o600), (0o022, 0o644), (0o002, 0o664)])
def test_a_new_file_gets_the_umask(tmp_path, umask, mode):
    path = save_with_umask(tmp_path / "m.txt", umask)
    assert stat.S_IMODE(path.stat().st_mode) == mode


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444])
def test_a_file_written_over_keeps_its_mode_and_the_temporary_is_never_more_open(tmp_path, mode):
    path = tmp_path / "m.npz"
    path.write_text("old")
    path.chmod(mode)
    seen = []

    def write(f):
        seen.append(stat.S_IMODE(os.fstat(f.fileno()).st_mode))
        f.write(b"new")

    save_with_umask(tmp_path / "unused", 0o022)
    old = os.umask(0o022)
    try:
        tio.atomic_write(path, write)
    finally:
        os.umask(old)
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == mode
    assert seen == [mode]


def test_saving_over_a_directory_says_so_and_leaves_nothing(tmp_path):
    (tmp_path / "m.npz").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        tio.atomic_write_text(tmp_path / "m.npz", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


KILLED_SAVE = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from tinycnn.io import atomic_write
def write(f):
    f.write(b"half a model")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)       # killed mid-save
atomic_write(sys.argv[2], write)
"""


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals and pids")
def test_temporaries_of_killed_saves_are_cleaned_up_safely(tmp_path):
    target = tmp_path / "ckpt.npz"
    target.write_bytes(b"previous")
    done = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(REPO), str(target)], timeout=120)
    assert done.returncode == -signal.SIGKILL
    (stray,) = [p for p in tmp_path.iterdir() if p.name != "ckpt.npz"]
    assert stray.name.startswith(".ckpt.npz.") and stray.name.endswith(".tinycnn-tmp")
    assert target.read_bytes() == b"previous"

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead_pid = int(stray.name[len(".ckpt.npz."):].split("-")[0])
        alive = tmp_path / f".ckpt.npz.{live.pid}-{tio._HOST}-abcdef00.tinycnn-tmp"
        alive.write_bytes(b"someone saving")          # a save in progress in another process
        other = tmp_path / f".other.npz.{dead_pid}-{tio._HOST}-abcdef00.tinycnn-tmp"
        other.write_bytes(b"another file's")          # a temporary of another target
        foreign = tmp_path / f".ckpt.npz.1-{'0' * 8}-abcdef01.tinycnn-tmp"
        foreign.write_bytes(b"from another machine")  # another host's pid 1: only age counts
        an_hour_ago = time.time() - 3600
        for path in (stray, alive, other, foreign):
            os.utime(path, (an_hour_ago, an_hour_ago))
        victim = tmp_path / "precious"
        victim.write_bytes(b"keep")
        link = tmp_path / f".ckpt.npz.{2**22 + 7}-{tio._HOST}-abcdef01.tinycnn-tmp"
        link.symlink_to(victim)                       # a link named like a temporary: left alone

        fresh = tmp_path / f".ckpt.npz.{2**22 + 9}-{tio._HOST}-abcdef02.tinycnn-tmp"
        fresh.write_bytes(b"just killed")             # writer gone, but written a moment ago: kept for now
        tio.atomic_write_text(target, "new")
        left = sorted(p.name for p in tmp_path.iterdir())
        assert stray.name not in left                               # writer gone, an hour old: removed
        assert {alive.name, other.name, foreign.name, link.name, fresh.name, "precious", "ckpt.npz"} == set(left)
        assert victim.read_bytes() == b"keep" and target.read_text() == "new"

        a_day_ago = time.time() - 25 * 3600
        for path in (alive, foreign):
            os.utime(path, (a_day_ago, a_day_ago))
        removed = tio.remove_stale_temporaries(target)
        assert sorted(p.name for p in removed) == sorted([alive.name, foreign.name])
    finally:
        live.kill()
        live.wait()


KILLED_RUN_FOLDER = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from tinycnn.io import atomic_folder, atomic_write_text
with atomic_folder(sys.argv[2]) as staging:
    atomic_write_text(staging / "model.npz", "half a run")
    os.kill(os.getpid(), signal.SIGKILL)       # killed while the run folder is written
"""


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("umask, mode", [(0o077, 0o700), (0o022, 0o755)])
def test_a_folder_appears_whole_with_the_umask_or_not_at_all(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        with tio.atomic_folder(tmp_path / "run") as staging:
            (staging / "a.txt").write_text("a")
            assert not (tmp_path / "run").exists()                # nothing visible until the block ends
            assert stat.S_IMODE(staging.stat().st_mode) == mode
        with pytest.raises(KeyboardInterrupt):
            with tio.atomic_folder(tmp_path / "other") as staging:
                (staging / "b.txt").write_text("b")
                raise KeyboardInterrupt                           # Ctrl-C while writing
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == mode and (tmp_path / "run" / "a.txt").read_text() == "a"


def test_a_folder_written_into_an_existing_one_replaces_its_files_and_keeps_the_others(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    (run / "model.npz").write_text("old model")
    with tio.atomic_folder(run) as staging:
        (staging / "model.npz").write_text("new model")
        (staging / "metrics.json").write_text("{}")
    assert {p.name: p.read_text() for p in run.iterdir()} == {"notes.txt": "mine", "model.npz": "new model",
                                                               "metrics.json": "{}"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="it is a file"):
        with tio.atomic_folder(tmp_path / "file"):
            pass


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals and pids")
def test_the_staging_folder_of_a_killed_run_is_cleaned_up_by_the_next(tmp_path):
    target = tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", KILLED_RUN_FOLDER, str(REPO), str(target)], timeout=120)
    assert done.returncode == -signal.SIGKILL
    (stray,) = tmp_path.iterdir()
    assert stray.name.startswith(".run.") and stray.name.endswith(".tinycnn-partial") and stray.is_dir()
    assert not target.exists()                                    # no half run folder
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = tmp_path / f".run.{live.pid}-{tio._HOST}-abcdef00.tinycnn-partial"
        alive.mkdir()                                             # another process writing that run now
        an_hour_ago = time.time() - 3600
        for path in (stray, alive):
            os.utime(path, (an_hour_ago, an_hour_ago))
        with tio.atomic_folder(target) as staging:
            (staging / "model.npz").write_text("whole")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, "run"])
    finally:
        live.kill()
        live.wait()


# -- the cost of every refusal, measured in a fresh process ---------------------------------------
def test_every_crafted_file_is_refused_in_under_half_a_second_and_50_mb(tmp_path):
    files = refusals.build_all(tmp_path)
    results = refusals.measure(files, separate=False)
    print("\n" + refusals.table(results))
    for name, r in results.items():
        assert r["error"] is not None and r["error"].split(":")[0] in ("ModelFileError", "CLIError"), (name, r)
        assert r["seconds"] < 0.5, (name, r)
        assert r["traced_mb"] < 50 and r["rss_mb"] < 50, (name, r)


def test_a_zip64_listing_of_too_many_members_is_refused_before_it_is_read(tmp_path):
    """Over 65,535 members the counts move to the ZIP64 end record; they are read from there."""
    import zipfile

    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(70_000):
            archive.writestr(f"{i}.npy", b"")
    refused(path, r"lists 70000 members in \d+ bytes; at most 10000 members")


def test_random_damage_gives_a_model_file_error_or_a_sound_model(tmp_path, base):
    """500 copies of a valid file, each with 1 to 4 random bytes changed or cut short at a random
    place: every load either succeeds with finite weights (the change hit nothing checked, e.g. a
    timestamp) or raises ModelFileError — never another exception."""
    good = refusals.write_model(tmp_path / "good.npz", *base).read_bytes()
    rng = np.random.default_rng(0)
    outcomes = {"loaded": 0, "refused": 0}
    for trial in range(500):
        data = bytearray(good)
        if trial % 5 == 0:
            data = data[: rng.integers(0, len(data))]
        else:
            for at in rng.integers(0, len(data), rng.integers(1, 5)):
                data[at] = rng.integers(0, 256)
        path = tmp_path / "damaged.npz"
        path.write_bytes(bytes(data))
        try:
            model = load_model(path)
        except ModelFileError:
            outcomes["refused"] += 1
        else:
            outcomes["loaded"] += 1
            assert all(np.isfinite(p).all() for p in model.params)
    assert outcomes["refused"] > 400, outcomes


def test_callback_arrays_are_held_to_the_parameter_limit_before_they_are_read(tmp_path, base, monkeypatch):
    doc, arrays = base
    arrays = dict(arrays, **{"callbacks/0/0": np.zeros(1001, np.float32)})
    path = refusals.write_model(tmp_path / "m.npz", doc, arrays)
    monkeypatch.setattr(tio, "MAX_PARAMETERS", 1000)          # the model itself has 119 numbers
    refused(path, r"the callbacks' arrays hold 1001 numbers; more than 1000 are refused")
