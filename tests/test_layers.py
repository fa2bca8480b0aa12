"""Layers: float64 gradient checks over generated shapes, equality with the loop reference and
with scipy, the activation sugar, and the Layer contract."""

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn import reference
from tinycnn.gradcheck import check_layer

from .helpers import away_from_zero, distinct_values
from .strategies import seeds, window_case

GRAD_TOL = 1e-7       # the engine issue's bound for every layer's gradients
REF_TOL = 1e-10       # fast layers vs the loop reference, float64


def build(layer, shape, seed=0):
    layer.build(shape, rng=np.random.default_rng(seed), dtype=np.float64)
    # Non-zero biases, so that a bias gradient or a missing bias term cannot hide.
    if "bias" in layer.params:
        layer.params["bias"][...] = np.random.default_rng(seed + 1).standard_normal(layer.params["bias"].shape)
    return layer


# --------------------------------------------------------------------------------------------
# Gradient checks
# --------------------------------------------------------------------------------------------
@settings(max_examples=40)
@given(case=window_case(), filters=st.integers(1, 5), seed=seeds)
def test_conv2d_gradients(case, filters, seed):
    n, h, w, c, kernel, strides, padding = case
    rng = np.random.default_rng(seed)
    layer = build(tc.Conv2D(filters, kernel, strides=strides, padding=padding), (h, w, c), seed % 1000)
    x = rng.standard_normal((n, h, w, c))
    # Conv2D is linear in x and in W: a large step has no truncation error, only less rounding.
    errors = check_layer(layer, x, h=1e-3, seed=seed % 1000, teaching=False)   # the kernels (functional: test_functional)
    assert set(errors) == {"input", "kernel", "bias"}
    assert max(errors.values()) < GRAD_TOL, errors


@settings(max_examples=40)
@given(case=window_case(), seed=seeds)
def test_maxpool2d_gradients(case, seed):
    n, h, w, c, pool, strides, padding = case
    rng = np.random.default_rng(seed)
    layer = build(tc.MaxPool2D(pool, strides=strides, padding=padding), (h, w, c))
    x = distinct_values(rng, (n, h, w, c), gap=0.01)     # no tie or swap within a step of 1e-4
    errors = check_layer(layer, x, h=1e-4, seed=seed % 1000, teaching=False)
    assert errors.keys() == {"input"}
    assert errors["input"] < GRAD_TOL, errors


@settings(max_examples=30)
@given(n=st.integers(1, 4), d_in=st.integers(1, 40), units=st.integers(1, 20), seed=seeds)
def test_dense_gradients(n, d_in, units, seed):
    rng = np.random.default_rng(seed)
    layer = build(tc.Dense(units), (d_in,), seed % 1000)
    errors = check_layer(layer, rng.standard_normal((n, d_in)), h=1e-3, seed=seed % 1000)
    assert max(errors.values()) < GRAD_TOL, errors


@settings(max_examples=30)
@given(n=st.integers(1, 4), h=st.integers(1, 12), w=st.integers(1, 12), c=st.integers(1, 5), seed=seeds)
def test_relu_and_flatten_gradients(n, h, w, c, seed):
    rng = np.random.default_rng(seed)
    x = away_from_zero(rng, (n, h, w, c), margin=0.05)
    for layer in (tc.ReLU(), tc.Flatten()):
        errors = check_layer(build(layer, (h, w, c)), x, h=1e-3, seed=seed % 1000)
        assert errors["input"] < GRAD_TOL, (layer, errors)


@settings(max_examples=30)
@given(n=st.integers(1, 4), k=st.integers(1, 10), scale=st.floats(0.1, 5.0), seed=seeds)
def test_softmax_and_sigmoid_gradients(n, k, scale, seed):
    # h = 1e-4: where sigmoid saturates (|x| ~ 15) its derivative is ~1e-7, and with h = 1e-5 the
    # float64 cancellation noise of the central difference alone reaches the 1e-7 tolerance
    # Softmax's logits stay within ±4.5 (probabilities ≥ 1e-4): with logits 16.7 apart the derivative
    # is 5e-8 of outputs near 1, below what a float64 central difference resolves (Hypothesis found
    # n=1, k=2, scale=4, seed=67381748: 1.2e-6 at h=1e-4, 4.6e-7 at 1e-5, with the exact gradient)
    x = scale * np.random.default_rng(seed).standard_normal((n, k))
    for layer, inputs in ((tc.Softmax(), np.clip(x, -4.5, 4.5)), (tc.Sigmoid(), x)):
        errors = check_layer(build(layer, (k,)), inputs, h=1e-4, seed=seed % 1000)
        assert errors["input"] < GRAD_TOL, (layer, errors)


@settings(max_examples=25)
@given(case=window_case(max_channels=3), filters=st.integers(1, 4), seed=seeds)
def test_conv2d_relu_activation_gradients(case, filters, seed):
    """Conv2D(activation="relu") passes the gradient check too, with no pre-activation near the
    kink by construction: integer inputs, kernels on a grid of 1/8 and biases at 1/16 + k/8 make
    every pre-activation an odd multiple of 1/16, so |z| >= 1/16, far beyond any step of 1e-4."""
    n, h, w, c, kernel, strides, padding = case
    rng = np.random.default_rng(seed)
    layer = build(tc.Conv2D(filters, kernel, strides, padding, activation="relu"), (h, w, c))
    layer.params["kernel"][...] = rng.integers(-8, 9, layer.params["kernel"].shape) / 8
    layer.params["bias"][...] = rng.integers(-4, 4, filters) / 8 + 1 / 16
    x = rng.integers(-2, 3, (n, h, w, c)).astype(np.float64)
    errors = check_layer(layer, x, h=1e-4, seed=seed % 1000)
    assert max(errors.values()) < GRAD_TOL, errors


# --------------------------------------------------------------------------------------------
# Fast layers equal the loop reference (and scipy)
# --------------------------------------------------------------------------------------------
@settings(max_examples=40)
@given(case=window_case(), filters=st.integers(1, 5), seed=seeds)
def test_conv2d_equals_loop_reference(case, filters, seed):
    n, h, w, c, kernel, strides, padding = case
    rng = np.random.default_rng(seed)
    layer = build(tc.Conv2D(filters, kernel, strides=strides, padding=padding), (h, w, c), seed % 1000)
    x = rng.standard_normal((n, h, w, c))
    y = layer.forward(x)
    y_ref, cache = reference.conv2d_forward(x, layer.params["kernel"], layer.params["bias"], strides, padding)
    assert y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=REF_TOL)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    dx_ref, dk_ref, db_ref = reference.conv2d_backward(dy, cache)
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=REF_TOL)
    np.testing.assert_allclose(layer.grads["kernel"], dk_ref, rtol=0, atol=REF_TOL)
    np.testing.assert_allclose(layer.grads["bias"], db_ref, rtol=0, atol=REF_TOL)


@settings(max_examples=40)
@given(case=window_case(), filters=st.integers(1, 5), seed=seeds)
def test_conv2d_input_gradient_is_a_full_convolution_with_the_flipped_kernel(case, filters, seed):
    """Stride 1: gathering dx by a convolution (what Conv2D does) equals scattering it window by window."""
    n, h, w, c, kernel, _, padding = case
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((*kernel, c, filters))
    x = rng.standard_normal((n, h, w, c))
    y, cache = reference.conv2d_forward(x, weights, np.zeros(filters), 1, padding)
    dy = rng.standard_normal(y.shape)
    dx_scatter, _, _ = reference.conv2d_backward(dy, cache)
    dx_gather = reference.conv2d_input_grad_as_convolution(dy, weights, cache[3])
    np.testing.assert_allclose(dx_gather, dx_scatter, rtol=0, atol=REF_TOL)


def tf_same_pads(size, k, s):
    """TensorFlow's 'same' padding, restated here independently of tinycnn.im2col."""
    out = (size + s - 1) // s
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


@settings(max_examples=40)
@given(case=window_case(), filters=st.integers(1, 5), seed=seeds)
def test_conv2d_equals_scipy_correlate(case, filters, seed):
    n, h, w, c, (kh, kw), (sh, sw), padding = case
    rng = np.random.default_rng(seed)
    layer = build(tc.Conv2D(filters, (kh, kw), strides=(sh, sw), padding=padding), (h, w, c), seed % 1000)
    x = rng.standard_normal((n, h, w, c))
    kernel, bias = layer.params["kernel"], layer.params["bias"]
    pads = (tf_same_pads(h, kh, sh), tf_same_pads(w, kw, sw)) if padding == "same" else ((0, 0), (0, 0))
    xp = np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    expected = np.stack([
        np.stack([scipy.signal.correlate(xp[i], kernel[:, :, :, f], mode="valid")[::sh, ::sw, 0] + bias[f]
                  for f in range(filters)], axis=-1)
        for i in range(n)])
    np.testing.assert_allclose(layer.forward(x), expected, rtol=0, atol=REF_TOL)


@settings(max_examples=40)
@given(case=window_case(), seed=seeds, ties=st.booleans())
def test_maxpool2d_equals_loop_reference(case, seed, ties):
    n, h, w, c, pool, strides, padding = case
    rng = np.random.default_rng(seed)
    layer = build(tc.MaxPool2D(pool, strides=strides, padding=padding), (h, w, c))
    # With ties=True many windows hold equal maxima: the first in row-major order must win.
    x = rng.integers(0, 3, (n, h, w, c)).astype(np.float64) if ties else rng.standard_normal((n, h, w, c))
    y = layer.forward(x)
    y_ref, cache = reference.maxpool2d_forward(x, pool, strides, padding)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=REF_TOL)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(layer.backward(dy), reference.maxpool2d_backward(dy, cache), rtol=0, atol=REF_TOL)


def test_maxpool_tie_goes_to_first_maximum_in_row_major_order():
    x = np.array([[1.0, 5.0], [5.0, 5.0]]).reshape(1, 2, 2, 1)
    layer = tc.MaxPool2D(2)
    layer.forward(x)
    dx = layer.backward(np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(dx.reshape(2, 2), [[0.0, 1.0], [0.0, 0.0]])


def test_same_padding_puts_the_extra_row_at_the_bottom_right():
    # 4×4 input, 3×3 kernel of ones, stride 2, "same": out 2×2, total pad 1 -> 0 top, 1 bottom.
    x = np.arange(16, dtype=np.float64).reshape(1, 4, 4, 1)
    layer = tc.Conv2D(1, 3, strides=2, padding="same", use_bias=False)
    layer.build((4, 4, 1), dtype=np.float64)
    layer.params["kernel"][...] = 1.0
    y = layer.forward(x)[0, :, :, 0]
    grid = x[0, :, :, 0]
    expected = [[grid[0:3, 0:3].sum(), grid[0:3, 2:4].sum()],
                [grid[2:4, 0:3].sum(), grid[2:4, 2:4].sum()]]
    np.testing.assert_array_equal(y, expected)


# --------------------------------------------------------------------------------------------
# activation="relu" is exactly a following ReLU()
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda act: tc.Conv2D(3, (2, 3), strides=(1, 2), padding="same", activation=act),
    lambda act: tc.Dense(7, activation=act),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_relu_equals_separate_relu_layer(make, dtype):
    rng = np.random.default_rng(3)
    fused, plain, relu = make("relu"), make(None), tc.ReLU()
    shape = (5, 6, 2) if isinstance(fused, tc.Conv2D) else (9,)
    fused.build(shape, rng=np.random.default_rng(0), dtype=dtype)
    plain.build(shape, rng=np.random.default_rng(0), dtype=dtype)
    x = rng.standard_normal((3, *shape)).astype(dtype)
    y = fused.forward(x)
    np.testing.assert_array_equal(y, relu.forward(plain.forward(x)))
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_array_equal(fused.backward(dy), plain.backward(relu.backward(dy)))
    for key in fused.params:
        np.testing.assert_array_equal(fused.grads[key], plain.grads[key])


def test_relu_derivative_at_zero_is_zero():
    relu = tc.ReLU()
    relu.forward(np.array([[-1.0, 0.0, 2.0]]))
    np.testing.assert_array_equal(relu.backward(np.ones((1, 3))), [[0.0, 0.0, 1.0]])


# --------------------------------------------------------------------------------------------
# The Layer contract
# --------------------------------------------------------------------------------------------
def test_backward_twice_overwrites_instead_of_accumulating():
    rng = np.random.default_rng(0)
    layer = tc.Conv2D(2, 3)
    x = rng.standard_normal((2, 5, 5, 1)).astype(np.float32)
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    layer.backward(dy)
    first = {k: g.copy() for k, g in layer.grads.items()}
    layer.backward(dy)
    for key in first:
        np.testing.assert_array_equal(layer.grads[key], first[key])


@pytest.mark.parametrize("layer", [tc.Conv2D(2, 3), tc.MaxPool2D(), tc.Dense(3), tc.ReLU(), tc.Flatten()])
def test_backward_before_forward_is_an_error(layer):
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.zeros((1, 1)))


def test_keras_weight_shapes_and_names():
    conv = tc.Conv2D(8, (3, 5))
    conv.build((10, 12, 3))
    assert conv.params["kernel"].shape == (3, 5, 3, 8) and conv.params["bias"].shape == (8,)
    dense = tc.Dense(4)
    dense.build((7,))
    assert dense.params["kernel"].shape == (7, 4) and dense.params["bias"].shape == (4,)
    assert tc.Conv2D(8, 3, use_bias=False).build((5, 5, 1)) == (3, 3, 8)
    assert tc.MaxPooling2D is tc.MaxPool2D


def test_flatten_uses_hwc_order():
    x = np.arange(2 * 2 * 3 * 2, dtype=np.float32).reshape(2, 2, 3, 2)
    np.testing.assert_array_equal(tc.Flatten().forward(x)[1], x[1].ravel())


def test_float32_stays_float32():
    layers = [tc.Conv2D(4, 3, padding="same", activation="relu"), tc.MaxPool2D(), tc.Flatten(), tc.Dense(3)]
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 1)).astype(np.float32)
    for layer in layers:
        x = layer.forward(x)
        assert x.dtype == np.float32, layer
    dy = np.ones_like(x)
    for layer in reversed(layers):
        dy = layer.backward(dy)
        assert dy.dtype == np.float32, layer
        assert all(g.dtype == np.float32 for g in layer.grads.values()), layer


@pytest.mark.parametrize("make, shape, match", [
    (lambda: tc.Conv2D(2, 5), (3, 3, 1), r"kernel \(5, 5\) is larger than the 3×3 input"),
    (lambda: tc.MaxPool2D(4), (3, 3, 1), r"pool_size \(4, 4\) is larger"),
    (lambda: tc.Dense(3), (4, 4, 1), r"put a Flatten\(\) before"),
    (lambda: tc.Conv2D(2, 3), (9, 9), r"expected inputs of shape \(batch, height, width, channels\)"),
])
def test_bad_shapes_name_the_layer(make, shape, match):
    layer = make()
    with pytest.raises(ValueError, match=match) as err:
        layer.build(shape)
    assert layer.name in str(err.value)


@pytest.mark.parametrize("make, match", [
    (lambda: tc.Conv2D(2, 3, padding="full"), "unknown padding 'full'"),
    (lambda: tc.Conv2D(2, 3, activation="gelu"), "unknown activation 'gelu'"),
    (lambda: tc.Conv2D(0, 3), "filters must be a positive int"),
    (lambda: tc.Conv2D(2, (3, 0)), "kernel_size must be positive"),
    (lambda: tc.MaxPool2D(2, strides=(1, 2, 3)), "strides must be an int or a pair"),
    (lambda: tc.Dense(-1), "units must be a positive int"),
])
def test_bad_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_forward_checks_input_shape_and_dtype():
    layer = tc.Conv2D(2, 3)
    layer.build((8, 8, 1))
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, 8, 8, 1\), got \(2, 8, 8, 3\)"):
        layer.forward(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(TypeError, match="float64 does not match the layer's weights"):
        layer.forward(np.zeros((2, 8, 8, 1)))
    with pytest.raises(TypeError, match="expected a float32 or float64 input, got dtype uint8"):
        layer.forward(np.zeros((2, 8, 8, 1), np.uint8))
