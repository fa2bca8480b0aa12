"""Rescaling and Normalization: Keras's formulas (checked against Keras itself), gradients by finite
differences in float64, adapt, clear errors, saving and loading, and the round trip through Keras."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn import functional as F
from tinycnn.gradcheck import check_layer, numerical_gradient, rel_error

from .conftest import missing
from .strategies import seeds

GRAD_TOL = 1e-7


def scalar_of(forward, upstream):
    return lambda: float(np.sum(upstream * forward()))


# -- the functional ops ---------------------------------------------------------------------------
@settings(max_examples=25)
@given(n=st.integers(1, 4), h=st.integers(1, 5), c=st.integers(1, 3), per_channel=st.booleans(), seed=seeds)
def test_rescaling_op_value_and_gradient(n, h, c, per_channel, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, h, c))
    scale = rng.standard_normal(c) if per_channel else float(rng.standard_normal())
    offset = rng.standard_normal(c) if per_channel else 0.25
    y, cache = F.rescaling_forward(x, scale, offset)
    for k in range(c):                                   # channel by channel, the definition
        s = scale[k] if per_channel else scale
        o = offset[k] if per_channel else offset
        np.testing.assert_allclose(y[..., k], x[..., k] * s + o, rtol=1e-14, atol=1e-14)
    dy = rng.standard_normal(y.shape)
    numeric = numerical_gradient(scalar_of(lambda: F.rescaling_forward(x, scale, offset)[0], dy), x)
    assert rel_error(F.rescaling_backward(dy, cache), numeric) < GRAD_TOL


@settings(max_examples=25)
@given(n=st.integers(1, 4), h=st.integers(1, 5), c=st.integers(1, 3), seed=seeds)
def test_normalization_op_value_and_gradient(n, h, c, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, h, c)) * 3 + 1
    mean, variance = rng.standard_normal(c), rng.random(c) * 4 + 0.1
    y, cache = F.normalization_forward(x, mean, variance)
    for k in range(c):
        np.testing.assert_allclose(y[..., k], (x[..., k] - mean[k]) / np.sqrt(variance[k]), rtol=1e-12)
    dy = rng.standard_normal(y.shape)
    numeric = numerical_gradient(scalar_of(lambda: F.normalization_forward(x, mean, variance)[0], dy), x)
    assert rel_error(F.normalization_backward(dy, cache), numeric) < GRAD_TOL


def test_normalization_guards_a_zero_variance_like_keras():
    """Keras divides by max(sqrt(variance), 1e-7) — not by sqrt(variance + ε) as batch norm does."""
    x = np.array([[2.0, 2.0, 3.0]])
    y, _ = F.normalization_forward(x, np.array([2.0, 1.0, 1.0]), np.array([0.0, 0.0, 4.0]))
    np.testing.assert_array_equal(y, [[0.0, 1e7, 1.0]])     # (2−2)/1e-7, (2−1)/1e-7, (3−1)/2
    y32, cache = F.normalization_forward(x.astype(np.float32), np.float32([0, 0, 0]), np.float32([1, 1, 1]))
    assert y32.dtype == np.float32 and F.normalization_backward(y32, cache).dtype == np.float32
    r32, cache = F.rescaling_forward(x.astype(np.float32), np.float32(1 / 255), np.float32(0))
    assert r32.dtype == np.float32 and F.rescaling_backward(r32, cache).dtype == np.float32


def test_the_ops_are_behind_the_boundary():
    from tinycnn import ops
    for name in ("rescaling_forward", "rescaling_backward", "normalization_forward", "normalization_backward"):
        assert name in F.__all__
        with tc.teaching():
            assert ops.implementation(name) is getattr(F, name)


# -- the layers -----------------------------------------------------------------------------------
@pytest.mark.parametrize("teaching", [True, False])
@pytest.mark.parametrize("make", [
    lambda: tc.Rescaling(1 / 255),
    lambda: tc.Rescaling([0.5, -2.0, 3.0], offset=[1.0, 0.0, -1.0]),
    lambda: tc.Normalization(mean=[0.5, -1.0, 2.0], variance=[0.25, 4.0, 0.5]),
    lambda: tc.Normalization(axis=(1, 3), mean=np.arange(15.0).reshape(5, 3),
                             variance=np.arange(1.0, 16.0).reshape(5, 3)),
    lambda: tc.Normalization(axis=None, mean=0.3, variance=2.0),
])
def test_layer_gradients_by_finite_differences(make, teaching):
    x = np.random.default_rng(3).standard_normal((2, 5, 4, 3))
    layer = make()
    errors = check_layer(layer, x, seed=1, teaching=teaching)
    assert set(errors) == {"input"} and errors["input"] < GRAD_TOL


def test_normalization_axes_keep_their_own_statistics():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 5, 4, 3)) * [1.0, 2.0, 3.0] + [0.0, 1.0, -1.0]
    cases = {-1: (0, 1, 2), 3: (0, 1, 2), (1, 3): (0, 2), (1, 2, 3): (0,), None: (0, 1, 2, 3)}
    for axis, averaged in cases.items():
        layer = tc.Normalization(axis=axis)
        layer.adapt(x)
        mean = x.mean(axis=averaged, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=averaged, keepdims=True)
        np.testing.assert_allclose(layer.state["mean"], np.squeeze(mean, axis=averaged), rtol=1e-12)
        np.testing.assert_allclose(layer.state["variance"], np.squeeze(var, axis=averaged), rtol=1e-12)
        y = layer.forward(x)
        np.testing.assert_allclose(y, (x - mean) / np.sqrt(var), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(y.mean(axis=averaged), 0, atol=1e-12)      # standardised over those axes
        np.testing.assert_allclose(y.std(axis=averaged), 1, rtol=1e-10)


def test_adapt_measures_in_float64_and_stores_in_the_layer_dtype():
    rng = np.random.default_rng(1)
    x = (rng.integers(0, 256, (500, 6, 6, 1)).astype(np.float32) / 255)
    layer = tc.Normalization()
    layer.adapt(x)
    assert layer.dtype == np.float32 and layer.state["mean"].dtype == np.float32
    exact = x.astype(np.float64)
    assert layer.state["mean"][0] == np.float32(exact.mean())
    assert layer.state["variance"][0] == np.float32(exact.var())
    assert layer.forward(x).dtype == np.float32


def test_a_layer_adapted_before_the_model_is_built_keeps_its_statistics():
    x = np.random.default_rng(2).random((20, 4, 4, 2)).astype(np.float32)
    norm = tc.Normalization()
    norm.adapt(x)
    expected = norm.state["mean"].copy()
    model = tc.Sequential([norm, tc.Flatten(), tc.Dense(2)], input_shape=(4, 4, 2), seed=0)
    np.testing.assert_array_equal(model.layers[0].state["mean"], expected)
    assert [name for name, _ in model.named_state()] == ["normalization/mean", "normalization/variance"]
    assert model.count_trainable_params() == 4 * 4 * 2 * 2 + 2


def test_an_unadapted_normalization_refuses_to_run():
    model = tc.Sequential([tc.Normalization(), tc.Flatten(), tc.Dense(2, activation="softmax")], input_shape=(3, 3, 1))
    assert not model.layers[0].adapted
    with pytest.raises(tc.CallOrderError, match=r"Normalization layer 'normalization' has no mean and variance: "
                                                r"call layer.adapt\(x_train\) first"):
        model.predict(np.zeros((2, 3, 3, 1), np.float32))


@pytest.mark.parametrize("make, error, match", [
    (lambda: tc.Normalization(mean=[0.0]), ValueError, "give both mean and variance, or neither"),
    (lambda: tc.Normalization(mean=[0.0, 1.0], variance=[1.0]), ValueError, "the same shape"),
    (lambda: tc.Normalization(mean=[0.0], variance=[-1.0]), ValueError, "variance must be >= 0"),
    (lambda: tc.Normalization(mean=[[0.0]], variance=[[1.0]]), ValueError, "more dimensions than the 1 kept axes"),
    (lambda: tc.Normalization(mean=[np.nan], variance=[1.0]), ValueError, "mean must hold finite real numbers"),
    (lambda: tc.Normalization(axis="channels"), TypeError, "axis must be an int, a tuple of ints or None"),
    (lambda: tc.Normalization(axis=(1, 1)), ValueError, "repeats an axis"),
    (lambda: tc.Rescaling("1/255"), TypeError, "scale must be a number or a sequence of numbers"),
    (lambda: tc.Rescaling(np.inf), ValueError, "scale must hold finite real numbers"),
])
def test_bad_arguments_are_named(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("layer, match", [
    (tc.Normalization(axis=0), "includes the batch axis 0"),
    (tc.Normalization(axis=4), r"axis=4 is out of range for inputs of shape \(batch, 3, 3, 2\)"),
    (tc.Normalization(axis=(3, -1)), "names the same axis twice"),
    (tc.Normalization(mean=[0.0, 1.0, 2.0], variance=[1.0, 1.0, 1.0]), r"does not broadcast to the shape \(2,\)"),
    (tc.Rescaling([1.0, 2.0, 3.0]), r"scale of shape \(3,\) does not broadcast"),
])
def test_shapes_that_do_not_fit_are_refused_when_built(layer, match):
    with pytest.raises(ValueError, match=match):
        tc.Sequential([layer, tc.Flatten()], input_shape=(3, 3, 2))


def test_adapt_refuses_bad_data():
    layer = tc.Normalization()
    with pytest.raises(TypeError, match="float inputs"):
        layer.adapt(np.zeros((2, 3, 3, 1), np.uint8))
    with pytest.raises(ValueError, match="NaN or inf"):
        layer.adapt(np.full((2, 3, 3, 1), np.nan))
    layer.adapt(np.zeros((2, 3, 3, 1)))
    with pytest.raises(ValueError, match=r"adapt expects data of shape \(batch, 3, 3, 1\)"):
        layer.adapt(np.zeros((2, 4, 4, 1)))


# -- saving and loading ----------------------------------------------------------------------------
def test_save_and_load_round_trip_the_adapted_statistics(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.random((30, 6, 6, 3)).astype(np.float32)
    norm = tc.Normalization(axis=(1, 3))
    norm.adapt(x * 2 - 0.5)
    model = tc.Sequential([tc.Rescaling(2.0, offset=-0.5), norm, tc.Conv2D(2, 3, activation="relu"),
                           tc.Flatten(), tc.Dense(2, activation="softmax")], input_shape=(6, 6, 3), seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    loaded = tc.load_model(model.save(tmp_path / "m.npz"))
    assert [type(l) for l in loaded.layers[:2]] == [tc.Rescaling, tc.Normalization]
    assert loaded.layers[1].get_config() == model.layers[1].get_config()
    for key in ("mean", "variance"):
        assert loaded.layers[1].state[key].shape == (6, 3)
        np.testing.assert_array_equal(loaded.layers[1].state[key], norm.state[key])
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_an_unadapted_normalization_saves_and_still_refuses_after_loading(tmp_path):
    model = tc.Sequential([tc.Normalization(), tc.Flatten(), tc.Dense(2, activation="softmax")], input_shape=(3, 3, 1))
    model.compile("adam", "sparse_categorical_crossentropy")
    loaded = tc.load_model(model.save(tmp_path / "m.npz"))
    with pytest.raises(tc.CallOrderError, match="has no mean and variance"):
        loaded.predict(np.zeros((1, 3, 3, 1), np.float32))


def test_backprop_through_a_model_that_starts_with_preprocessing():
    """dL/d(image) through Rescaling and Normalization, in teaching mode, by finite differences."""
    rng = np.random.default_rng(5)
    model = tc.Sequential([tc.Rescaling(1 / 255), tc.Normalization(mean=[0.4], variance=[0.09]),
                           tc.Conv2D(2, 3, activation="tanh"), tc.Flatten(), tc.Dense(2)],
                          input_shape=(5, 5, 1), seed=0, dtype="float64")
    x, upstream = rng.random((3, 5, 5, 1)) * 255, rng.standard_normal((3, 2))
    with tc.teaching():
        model.forward(x)
        dx = model.backward(upstream)
        numeric = numerical_gradient(lambda: float(np.sum(upstream * model.forward(x))), x, h=1e-3)
    assert rel_error(dx, numeric) < GRAD_TOL


# -- Keras ----------------------------------------------------------------------------------------
@pytest.mark.keras
@pytest.mark.parametrize("axis", [-1, None, (1, 2, 3), (2, 3)])
def test_normalization_equals_keras_adapted_and_given(keras, axis):
    rng = np.random.default_rng(6)
    x = (rng.integers(0, 256, (64, 6, 5, 3)) / 255).astype(np.float32) * [1.0, 0.5, 2.0]
    x = x.astype(np.float32)
    k_layer = keras.layers.Normalization(axis=axis)
    k_layer.adapt(x)
    layer = tc.Normalization(axis=axis)
    layer.adapt(x)
    k_mean, k_var = (keras.ops.convert_to_numpy(v) for v in (k_layer.mean, k_layer.variance))
    assert rel_error(layer.state["mean"], k_mean.reshape(layer.state["mean"].shape)) < 1e-6     # float32 rounding
    assert rel_error(layer.state["variance"], k_var.reshape(layer.state["variance"].shape)) < 1e-5
    # the same statistics given to both: the same formula, to float32 rounding
    given = keras.layers.Normalization(axis=axis, mean=layer.state["mean"], variance=layer.state["variance"])
    assert rel_error(layer.forward(x), keras.ops.convert_to_numpy(given(x))) < 1e-6


@pytest.mark.keras
def test_zero_variance_and_rescaling_equal_keras(keras):
    x = np.random.default_rng(7).random((4, 3, 3, 2)).astype(np.float32)
    mean, variance = np.float32([0.5, 0.25]), np.float32([0.0, 0.04])       # channel 0: a zero variance
    mine = tc.Normalization(mean=mean, variance=variance).forward(x)
    theirs = keras.ops.convert_to_numpy(keras.layers.Normalization(mean=mean, variance=variance)(x))
    assert np.isfinite(mine).all() and np.abs(mine[..., 0]).max() > 1e5   # divided by ε = 1e-7, as Keras does
    assert rel_error(mine, theirs) < 1e-6
    for scale, offset in ((1 / 255, 0.0), ([2.0, -1.0], [0.5, 0.0])):
        mine = tc.Rescaling(scale, offset=offset).forward(x)
        theirs = keras.ops.convert_to_numpy(keras.layers.Rescaling(scale, offset=offset)(x))
        np.testing.assert_array_equal(mine, theirs)                        # one multiply, one add: exact


@pytest.mark.keras
def test_a_model_with_preprocessing_goes_to_keras_and_back(keras):
    from tinycnn.interop.keras import from_keras, to_keras
    rng = np.random.default_rng(8)
    images = rng.integers(0, 256, (40, 8, 8, 1)).astype(np.float32)
    norm = tc.Normalization()
    norm.adapt(images / 255)
    model = tc.Sequential([tc.Rescaling(1 / 255), norm, tc.Conv2D(3, 3, activation="relu"), tc.MaxPool2D(2),
                           tc.Flatten(), tc.Dense(2, activation="softmax")], input_shape=(8, 8, 1), seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    k_model = to_keras(model)
    assert [type(l).__name__ for l in k_model.layers[:2]] == ["Rescaling", "Normalization"]
    assert rel_error(model.predict(images), k_model.predict(images, verbose=0)) < 1e-5
    # dL/d(images) through both preprocessing layers, against TensorFlow's autodiff
    import tensorflow as tf
    upstream = rng.standard_normal((40, 2)).astype(np.float32)
    model.forward(images)
    dx = model.backward(upstream)
    tensor = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        out = tf.reduce_sum(k_model(tensor) * upstream)
    assert rel_error(dx, tape.gradient(out, tensor).numpy()) < 1e-5
    back = from_keras(k_model)
    assert [l.get_config() for l in back.layers[:2]] == [l.get_config() for l in model.layers[:2]]
    np.testing.assert_array_equal(back.predict(images), model.predict(images))


@pytest.mark.keras
def test_keras_preprocessing_layers_convert(keras):
    from tinycnn.interop.keras import from_keras
    x = np.random.default_rng(9).random((30, 6, 6, 3)).astype(np.float32)
    adapted = keras.layers.Normalization(axis=(1, 3))
    adapted.adapt(x)
    k_model = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Rescaling([1.0, 2.0, 0.5], offset=0.1),
                                adapted, keras.layers.Normalization(axis=None, mean=0.2, variance=1.5),
                                keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    model = from_keras(k_model)
    assert model.layers[1].axis == (1, 3) and model.layers[1].state["mean"].shape == (6, 3)
    assert model.layers[2].axis is None and model.layers[2].state["mean"].shape == ()
    assert rel_error(model.predict(x), k_model.predict(x, verbose=0)) < 1e-5
    inverted = keras.Sequential([keras.Input((4,)), keras.layers.Normalization(mean=0.0, variance=1.0, invert=True)])
    with pytest.raises(ValueError, match="invert=True"):
        from_keras(inverted)


@pytest.mark.keras
def test_an_unadapted_normalization_does_not_go_to_keras(keras):
    from tinycnn.interop.keras import to_keras
    model = tc.Sequential([tc.Normalization(), tc.Flatten(), tc.Dense(2)], input_shape=(3, 3, 1))
    with pytest.raises(ValueError, match="has no mean and variance yet; adapt it first"):
        to_keras(model, compile=False)
