"""Saving and loading models: exact round trips, atomic writes, and refusals of bad files."""

import io
import json
import zipfile

import numpy as np
import pytest

import tinycnn as tc
from tinycnn.io import HEADER, ModelFileError, load_model, save_model

ALL_LAYERS = [
    lambda: [tc.Conv2D(3, (3, 2), strides=(2, 1), padding="same", activation="relu"),
             tc.MaxPool2D((2, 3), strides=(1, 2), padding="same"),
             tc.Conv2D(2, 1, use_bias=False, kernel_initializer="he_normal"),
             tc.ReLU(), tc.MaxPooling2D(2), tc.Flatten(), tc.Dense(5, activation="sigmoid"),
             tc.Dense(4), tc.Softmax()],
    lambda: [tc.Conv2D(4, 3, activation="softmax"), tc.Flatten(), tc.Sigmoid(),
             tc.Dense(3, activation="softmax", use_bias=False)],
]


def trained(make_layers, seed=0):
    model = tc.Sequential(make_layers(), input_shape=(9, 8, 2), seed=seed)
    model.compile(tc.Adam(0.01), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(seed)
    x = rng.random((12, 9, 8, 2)).astype(np.float32)
    y = rng.integers(0, model.output_shape[-1], 12)
    model.fit(x, y, epochs=2, batch_size=5, verbose=0)
    model.metadata = {"dataset": "toy", "labels": ["a", "b", "c", "d"][: model.output_shape[-1]]}
    return model, x, y


@pytest.mark.parametrize("make_layers", ALL_LAYERS)
def test_round_trip_is_exact_for_every_layer_type(tmp_path, make_layers):
    model, x, y = trained(make_layers)
    path = model.save(tmp_path / "model.npz")
    loaded = tc.load_model(path)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert [layer.get_config() for layer in loaded.layers] == [layer.get_config() for layer in model.layers]
    for (name_a, a), (name_b, b) in zip(model.named_params(), loaded.named_params()):
        assert name_a == name_b and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x), loaded.predict(x))
    assert loaded.metadata == model.metadata
    assert loaded.summary(print_fn=None) == model.summary(print_fn=None)
    # The optimizer state came along: one more step gives identical weights in both.
    model.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    for a, b in zip(model.params, loaded.params):
        np.testing.assert_array_equal(a, b)


def test_sgd_with_momentum_and_float64_round_trip(tmp_path):
    model = tc.Sequential([tc.Flatten(), tc.Dense(3, activation="softmax")], input_shape=(2, 2, 1), dtype="float64")
    model.compile(tc.SGD(0.1, momentum=0.9, nesterov=True), "sparse_categorical_crossentropy")
    x, y = np.random.default_rng(0).random((4, 2, 2, 1)), np.array([0, 1, 2, 1])
    model.train_on_batch(x, y)
    loaded = load_model(save_model(model, tmp_path / "m.npz"))
    assert loaded.dtype == np.float64 and isinstance(loaded.optimizer, tc.SGD)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    model.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    np.testing.assert_array_equal(model.params[0], loaded.params[0])


def test_file_is_plain_arrays_loadable_without_pickle(tmp_path):
    model, _, _ = trained(ALL_LAYERS[1])
    path = model.save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as npz:
        doc = json.loads(str(npz[HEADER]))
        assert doc["format"] == "tinycnn-model" and doc["version"] == 1
        assert "params/conv2d/kernel" in npz.files


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    model, x, _ = trained(ALL_LAYERS[1])
    path = model.save(tmp_path / "m.npz")
    before = path.read_bytes()
    model.params[0][...] += 1

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]     # no temporary left


def rewrite(path, mutate):
    """Load every array of a saved model, let ``mutate`` change the dict, write it back."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    mutate(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def set_header(arrays, **changes):
    doc = json.loads(str(arrays[HEADER]))
    doc.update(changes)
    arrays[HEADER] = np.array(json.dumps(doc))


@pytest.mark.parametrize("mutate, match", [
    (lambda a: set_header(a, version=99), "written by a newer tinycnn"),
    (lambda a: set_header(a, format="keras"), "not a tinycnn model file"),
    (lambda a: a.pop("params/conv2d/kernel"), r"missing: \['conv2d/kernel'\]"),
    (lambda a: a.update({"params/extra/w": np.zeros(2)}), r"unexpected: \['extra/w'\]"),
    (lambda a: a.update({"params/conv2d/kernel": np.zeros((1, 1, 1, 1), np.float32)}), "conv2d/kernel has shape"),
    (lambda a: a.pop(HEADER), "no '__tinycnn__' entry"),
    (lambda a: a.update({HEADER: np.array("{not json")}), "not valid JSON"),
    (lambda a: set_header(a, layers=[{"class": "Lambda", "config": {}}]), "unknown layer class 'Lambda'"),
    (lambda a: a.update({"surprise": np.zeros(1)}), "unexpected arrays"),
])
def test_bad_model_files_are_refused_with_a_clear_error(tmp_path, mutate, match):
    model, _, _ = trained(ALL_LAYERS[1])
    path = model.save(tmp_path / "m.npz")
    rewrite(path, mutate)
    with pytest.raises(ModelFileError, match=match) as err:
        load_model(path)
    assert str(path) in str(err.value)


def test_truncated_and_garbage_files(tmp_path):
    model, _, _ = trained(ALL_LAYERS[1])
    path = model.save(tmp_path / "m.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="not a readable tinycnn model file"):
        load_model(path)
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelFileError):
        load_model(path)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.npz")


class Payload:
    """Unpickling this object would write a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_object_arrays_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    buffer = io.BytesIO()
    np.savez(buffer, **{HEADER: np.array(json.dumps({"format": "tinycnn-model", "version": 1})),
                        "params/dense/kernel": np.array([Payload(str(marker))], dtype=object)})
    path.write_bytes(buffer.getvalue())
    assert zipfile.is_zipfile(path)
    with pytest.raises(ModelFileError, match="not a readable tinycnn model file"):
        load_model(path)
    assert not marker.exists()
