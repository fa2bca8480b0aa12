"""Ordinary arrays a user hands to predict, evaluate and fit: read-only (a memory-mapped
``np.load(path, mmap_mode="r")``), non-contiguous (strided views, Fortran order), other dtypes,
empty batches — on the kernels and in teaching mode. Each must give the answer a plain C-ordered
float32 copy gives, or a clear error; and no input is ever changed in place.

What tinycnn does with each (the README states it too):

* read-only and non-contiguous arrays work, with the same results as a contiguous copy;
* float16 and float64 inputs are converted to the model's dtype (float32 by default);
* integer, unsigned (uint8) and boolean inputs are refused with a TypeError that says to scale
  them (``uint8 / 255`` as float32) — a silent conversion would feed 0..255 to a model trained
  on [0, 1];
* an empty batch (0 samples) is refused with a ValueError: a mean loss over nothing, or a fit on
  nothing, has no answer, and an empty predict is almost always a slicing mistake.
"""

import numpy as np
import pytest

import tinycnn
from tinycnn import layers

MODES = [pytest.param(False, id="kernels"), pytest.param(True, id="teaching")]


def small_model(padding="valid", seed=0):
    """Conv2D (``padding``) → ReLU → MaxPool2D → Dense: the fused kernel runs it outside teaching mode."""
    model = tinycnn.Sequential([
        layers.Conv2D(4, 3, padding=padding, activation="relu"), layers.MaxPool2D(2), layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ], seed=seed)
    model.build((10, 10, 2))
    model.compile(tinycnn.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    return model


def data(n=9, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((n, 10, 10, 2), dtype=np.float32), rng.integers(0, 3, n)


def weights_after_fit(model, x, y):
    model.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    return [p.copy() for p in model.params]


@pytest.mark.parametrize("teaching", MODES)
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_read_only_and_memory_mapped_inputs_work(tmp_path, teaching, padding):
    x, y = data()
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    frozen = x.copy()
    frozen.flags.writeable = False
    assert not mapped.flags.writeable
    with tinycnn.teaching(teaching):
        expected = small_model(padding).predict(x.copy())
        expected_eval = small_model(padding).evaluate(x.copy(), y)
        expected_fit = weights_after_fit(small_model(padding), x.copy(), y)
        for read_only in (mapped, frozen):
            np.testing.assert_array_equal(small_model(padding).predict(read_only), expected)
            assert small_model(padding).evaluate(read_only, y) == expected_eval
            for got, want in zip(weights_after_fit(small_model(padding), read_only, y), expected_fit):
                np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.asarray(mapped), x)


def non_contiguous_views(x):
    """The same images as ``x``, laid out in memory in other ways."""
    doubled = np.repeat(x, 2, axis=0)                            # every image twice: take every other
    wide = np.zeros((*x.shape[:3], 2 * x.shape[3]), x.dtype)
    wide[..., ::2] = x
    return {
        "every other image": doubled[::2],
        "every other channel": wide[..., ::2],
        "Fortran order": np.asfortranarray(x),
        "reversed twice": x[::-1][::-1],
        "transposed back": np.ascontiguousarray(x.transpose(3, 2, 1, 0)).transpose(3, 2, 1, 0),
    }


@pytest.mark.parametrize("teaching", MODES)
def test_non_contiguous_inputs_give_the_results_of_a_contiguous_copy(teaching):
    x, y = data()
    with tinycnn.teaching(teaching):
        expected = small_model().predict(x)
        expected_loss = small_model().evaluate(x, y)["loss"]
        expected_fit = weights_after_fit(small_model(), x, y)
        for name, view in non_contiguous_views(x).items():
            assert np.array_equal(view, x)
            np.testing.assert_allclose(small_model().predict(view), expected, rtol=1e-6, atol=1e-7, err_msg=name)
            assert small_model().evaluate(view, y)["loss"] == pytest.approx(expected_loss, rel=1e-6), name
            for got, want in zip(weights_after_fit(small_model(), view, y), expected_fit):
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("teaching", MODES)
@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_other_float_dtypes_are_converted_to_the_models_dtype(teaching, dtype):
    x, y = data()
    x_other = x.astype(dtype)
    as_float32 = x_other.astype(np.float32)            # what the conversion must give
    with tinycnn.teaching(teaching):
        got = small_model().predict(x_other)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, small_model().predict(as_float32))
        assert small_model().evaluate(x_other, y) == small_model().evaluate(as_float32, y)
        for a, b in zip(weights_after_fit(small_model(), x_other, y), weights_after_fit(small_model(), as_float32, y)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("teaching", MODES)
@pytest.mark.parametrize("dtype", ["uint8", "int64", "int32", "bool"])
def test_integer_and_boolean_images_are_refused_with_a_hint(teaching, dtype):
    x, y = data()
    raw = (x * 255).astype(dtype)
    model = small_model()
    before = [p.copy() for p in model.params]
    with tinycnn.teaching(teaching):
        for call in (lambda: model.predict(raw), lambda: model.evaluate(raw, y),
                     lambda: model.fit(raw, y, epochs=1, verbose=0)):
            with pytest.raises(TypeError, match=f"float images.*uint8 / 255.*got dtype {dtype}"):
                call()
    for a, b in zip(model.params, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("teaching", MODES)
def test_empty_batches_are_refused_clearly(teaching):
    x, y = data()
    model = small_model()
    with tinycnn.teaching(teaching):
        for call in (lambda: model.predict(x[:0]), lambda: model.evaluate(x[:0], y[:0]),
                     lambda: model.fit(x[:0], y[:0], epochs=1, verbose=0)):
            with pytest.raises(ValueError, match=r"non-empty batch, got shape \(0, 10, 10, 2\)"):
                call()


@pytest.mark.parametrize("teaching", MODES)
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_no_input_is_changed_in_place(teaching, padding):
    """x, y, sample weights and validation data compared with copies taken before each call."""
    x, y = data()
    x_val, y_val = data(5, seed=2)
    weights = np.linspace(0.5, 2.0, len(y))
    arrays = {"x": x, "y": y, "x_val": x_val, "y_val": y_val, "weights": weights}
    copies = {k: v.copy() for k, v in arrays.items()}
    model = small_model(padding)
    with tinycnn.teaching(teaching):
        model.predict(x, batch_size=4)
        model.evaluate(x, y, batch_size=4)
        model.fit(x, y, epochs=2, batch_size=4, validation_data=(x_val, y_val), verbose=0,
                  augment=lambda xb, rng: xb[:, ::-1])
        model.train_on_batch(x, y, sample_weight=weights)
        model.loss_and_grads(x, y)
        model.forward(x)
        model.backward(np.ones((len(x), 3), np.float32))
    for key, value in arrays.items():
        np.testing.assert_array_equal(value, copies[key], err_msg=f"{key} was changed")


@pytest.mark.parametrize("teaching", MODES)
def test_a_list_of_images_works_like_an_array(teaching):
    x, y = data(3)
    with tinycnn.teaching(teaching):
        np.testing.assert_array_equal(small_model().predict(x.tolist()), small_model().predict(x.astype(np.float64)))


def frozen(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("strides", [1, 2])
def test_every_kernel_takes_read_only_arrays_and_matches_functional(padding, strides):
    """Inputs, weights and upstream gradients all read-only: the kernels (and the fused step)
    compute what tinycnn.functional computes on writable copies, and never write into them."""
    from tinycnn import functional as F, kernels as K
    from tinycnn.kernels.fused import conv2d_relu_maxpool2d_backward, conv2d_relu_maxpool2d_forward

    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s) for s in ((5, 8, 8, 3), (3, 3, 3, 4), (4,)))
    ro = [frozen(a) for a in (x, w, b)]
    y, cache = K.conv2d_forward(*ro, strides, padding)
    y_ref, cache_ref = F.conv2d_forward(x, w, b, strides, padding)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    dy = frozen(rng.standard_normal(y.shape))
    for got, want in zip(K.conv2d_backward(dy, cache), F.conv2d_backward(np.array(dy), cache_ref)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)

    p, pcache = K.maxpool2d_forward(frozen(x), 2, strides, padding)
    p_ref, pcache_ref = F.maxpool2d_forward(x, 2, strides, padding)
    np.testing.assert_array_equal(p, p_ref)
    dp = frozen(rng.standard_normal(p.shape))
    np.testing.assert_array_equal(K.maxpool2d_backward(dp, pcache), F.maxpool2d_backward(np.array(dp), pcache_ref))

    r, rcache = K.relu_forward(frozen(x))
    np.testing.assert_array_equal(r, np.maximum(x, 0))
    np.testing.assert_array_equal(K.relu_backward(frozen(x), rcache), x * (x > 0))

    xd, wd, bd = x.reshape(5, -1), rng.standard_normal((x[0].size, 8)), rng.standard_normal(8)
    d, dcache = K.dense_forward(frozen(xd), frozen(wd), frozen(bd))
    np.testing.assert_allclose(d, xd @ wd + bd, rtol=1e-12, atol=1e-12)
    dd = frozen(rng.standard_normal(d.shape))
    for got, want in zip(K.dense_backward(dd, dcache), (dd @ wd.T, xd.T @ dd, dd.sum(axis=0))):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)

    fy, fcache = conv2d_relu_maxpool2d_forward(*ro, 1, padding, (2, 2), training=False)
    z, _ = F.conv2d_forward(x, w, b, 1, padding)
    fy_ref, _ = F.maxpool2d_forward(np.maximum(z, 0), 2)
    np.testing.assert_allclose(fy, fy_ref, rtol=1e-12, atol=1e-12)
    dx, dw, db = conv2d_relu_maxpool2d_backward(frozen(np.ones(fy.shape)), fcache)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape
    for a, original in zip(ro, (x, w, b)):
        np.testing.assert_array_equal(a, original)
