"""tinycnn.functional, the textbook ops: equal to the loop reference (1e-10, float64) and to finite
differences (< 1e-7) on generated shapes — strides 1–3, both paddings, pooling ties — and readable:
each conv/pool/dense pair fits on one screen, and it runs in float32 as well as float64."""

import ast
import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinycnn import functional as F
from tinycnn import reference
from tinycnn.gradcheck import numerical_gradient, rel_error

from .helpers import away_from_zero, distinct_values
from .strategies import seeds, window_case

REF_TOL = 1e-10
GRAD_TOL = 1e-7


def scalar_of(forward, upstream):
    """``L = Σ upstream ⊙ forward()``: its gradient with respect to the output is ``upstream``."""
    return lambda: float(np.sum(upstream * forward()))


def strides_as_given(strides, draw_int):
    """Sizes and strides are an int or a pair, as the layers accept them."""
    return strides[0] if draw_int and strides[0] == strides[1] else strides


@settings(max_examples=40)
@given(case=window_case(), filters=st.integers(1, 4), as_int=st.booleans(), seed=seeds)
def test_conv2d_equals_the_loop_reference_and_finite_differences(case, filters, as_int, seed):
    n, h, w, c, kernel, strides, padding = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c))
    k = rng.standard_normal((*kernel, c, filters))
    b = rng.standard_normal(filters)
    strides = strides_as_given(strides, as_int)
    y, cache = F.conv2d_forward(x, k, b, strides, padding)
    y_ref, ref_cache = reference.conv2d_forward(x, k, b, strides, padding)
    assert y.shape == y_ref.shape and y.dtype == np.float64
    assert rel_error(y, y_ref) < REF_TOL
    dy = rng.standard_normal(y.shape)
    grads = F.conv2d_backward(dy, cache)
    for got, expected in zip(grads, reference.conv2d_backward(dy, ref_cache)):
        assert got.shape == expected.shape and rel_error(got, expected) < REF_TOL
    loss = scalar_of(lambda: F.conv2d_forward(x, k, b, strides, padding)[0], dy)
    for got, wrt in zip(grads, (x, k, b)):
        assert rel_error(got, numerical_gradient(loss, wrt, h=1e-3)) < GRAD_TOL   # linear: a big step is exact


@settings(max_examples=40)
@given(case=window_case(), ties=st.booleans(), as_int=st.booleans(), seed=seeds)
def test_maxpool2d_equals_the_loop_reference_with_ties_and_finite_differences(case, ties, as_int, seed):
    n, h, w, c, pool, strides, padding = case
    rng = np.random.default_rng(seed)
    strides = strides_as_given(strides, as_int)
    if ties:                             # whole windows of equal values (as after a ReLU): the first wins
        x = rng.integers(-1, 2, (n, h, w, c)).astype(np.float64)
    else:
        x = distinct_values(rng, (n, h, w, c), gap=0.01)
    y, cache = F.maxpool2d_forward(x, pool, strides, padding)
    y_ref, ref_cache = reference.maxpool2d_forward(x, pool, strides, padding)
    np.testing.assert_array_equal(y, y_ref)
    dy = rng.standard_normal(y.shape)
    dx = F.maxpool2d_backward(dy, cache)
    assert rel_error(dx, reference.maxpool2d_backward(dy, ref_cache)) < REF_TOL
    if not ties:
        numeric = numerical_gradient(scalar_of(lambda: F.maxpool2d_forward(x, pool, strides, padding)[0], dy), x,
                                     h=1e-4)
        assert rel_error(dx, numeric) < GRAD_TOL


def test_maxpool2d_defaults_are_keras_and_ties_go_to_the_first_maximum():
    x = np.zeros((1, 4, 4, 1))                       # every window a four-way tie
    y, cache = F.maxpool2d_forward(x)                # pool (2, 2), strides = pool size, "valid"
    assert y.shape == (1, 2, 2, 1)
    dx = F.maxpool2d_backward(np.ones_like(y), cache)
    expected = np.zeros((4, 4))
    expected[::2, ::2] = 1                           # the top-left of each window, row-major first
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)
    same, _ = F.maxpool2d_forward(-np.ones((1, 3, 3, 1)), 2, padding="same")
    np.testing.assert_array_equal(same, -np.ones((1, 2, 2, 1)))      # −inf padding never wins


@settings(max_examples=30)
@given(case=window_case(), seed=seeds)
def test_avgpool2d_equals_the_loop_reference_and_finite_differences(case, seed):
    n, h, w, c, pool, strides, padding = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c))
    y, cache = F.avgpool2d_forward(x, pool, strides, padding)
    y_ref, ref_cache = reference.avgpool2d_forward(x, pool, strides, padding)
    assert rel_error(y, y_ref) < REF_TOL
    dy = rng.standard_normal(y.shape)
    dx = F.avgpool2d_backward(dy, cache)
    assert rel_error(dx, reference.avgpool2d_backward(dy, ref_cache)) < REF_TOL
    numeric = numerical_gradient(scalar_of(lambda: F.avgpool2d_forward(x, pool, strides, padding)[0], dy), x, h=1e-3)
    assert rel_error(dx, numeric) < GRAD_TOL


@settings(max_examples=30)
@given(n=st.integers(1, 5), d_in=st.integers(1, 12), d_out=st.integers(1, 6), bias=st.booleans(), seed=seeds)
def test_dense_gradients(n, d_in, d_out, bias, seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((n, d_in)), rng.standard_normal((d_in, d_out))
    b = rng.standard_normal(d_out) if bias else None
    y, cache = F.dense_forward(x, w, b)
    np.testing.assert_allclose(y, x @ w + (b if bias else 0), rtol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = F.dense_backward(dy, cache)
    loss = scalar_of(lambda: F.dense_forward(x, w, b)[0], dy)
    assert rel_error(dx, numerical_gradient(loss, x)) < GRAD_TOL
    assert rel_error(dw, numerical_gradient(loss, w)) < GRAD_TOL
    if bias:
        assert rel_error(db, numerical_gradient(loss, b)) < GRAD_TOL
    else:
        assert db is None


ELEMENTWISE = {
    "relu": (F.relu_forward, F.relu_backward, ()),
    "leaky_relu": (F.leaky_relu_forward, F.leaky_relu_backward, (0.2,)),
    "tanh": (F.tanh_forward, F.tanh_backward, ()),
    "sigmoid": (F.sigmoid_forward, F.sigmoid_backward, ()),
    "softmax": (F.softmax_forward, F.softmax_backward, ()),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@settings(max_examples=20)
@given(n=st.integers(1, 4), d=st.integers(1, 7), seed=seeds)
def test_activation_gradients(name, n, d, seed):
    forward, backward, args = ELEMENTWISE[name]
    rng = np.random.default_rng(seed)
    x = away_from_zero(rng, (n, d)) * 2                  # ReLU's kink never within a step
    y, cache = forward(x, *args)
    dy = rng.standard_normal(y.shape)
    numeric = numerical_gradient(scalar_of(lambda: forward(x, *args)[0], dy), x)
    assert rel_error(backward(dy, cache), numeric) < GRAD_TOL


def test_relu_derivative_at_zero_is_zero():
    y, cache = F.relu_forward(np.array([[-1.0, 0.0, 2.0]]))
    np.testing.assert_array_equal(F.relu_backward(np.ones((1, 3)), cache), [[0.0, 0.0, 1.0]])


@settings(max_examples=20)
@given(n=st.integers(2, 4), h=st.integers(1, 4), c=st.integers(1, 3), training=st.booleans(), seed=seeds)
def test_batchnorm_gradients_with_a_random_gamma(n, h, c, training, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, h, c)) * 3 + 1
    gamma, beta = rng.standard_normal(c) * 2, rng.standard_normal(c)     # γ = 1 would hide bugs
    mean, var = rng.standard_normal(c), rng.random(c) + 0.5
    if training:
        run = lambda: F.batchnorm_forward(x, gamma, beta, 1e-3)                          # noqa: E731
        backward = F.batchnorm_backward
        y_ref, ref_cache = reference.batchnorm_forward(x, gamma, beta, 1e-3)
    else:
        run = lambda: F.batchnorm_inference_forward(x, gamma, beta, mean, var, 1e-3)     # noqa: E731
        backward = F.batchnorm_inference_backward
        y_ref = gamma * (x - mean) / np.sqrt(var + 1e-3) + beta
    y, cache = run()
    assert rel_error(y, y_ref) < REF_TOL
    dy = rng.standard_normal(y.shape)
    grads = backward(dy, cache)
    if training:
        for got, expected in zip(grads, reference.batchnorm_backward(dy, ref_cache)):
            assert rel_error(got, expected) < REF_TOL
    loss = scalar_of(lambda: run()[0], dy)
    for got, wrt in zip(grads, (x, gamma, beta)):
        assert rel_error(got, numerical_gradient(loss, wrt)) < GRAD_TOL


def test_dropout_keeps_the_expected_share_and_routes_the_gradient():
    rng = np.random.default_rng(0)
    x = np.ones((200, 50))
    y, mask = F.dropout_forward(x, 0.25, rng)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75)
    np.testing.assert_array_equal(F.dropout_backward(np.ones_like(x), mask), y)


@settings(max_examples=20)
@given(n=st.integers(1, 5), classes=st.integers(2, 5), weighted=st.booleans(), seed=seeds)
def test_softmax_cross_entropy_value_and_gradient(n, classes, weighted, seed):
    rng = np.random.default_rng(seed)
    logits, y = rng.standard_normal((n, classes)) * 3, rng.integers(0, classes, n)
    w = rng.random(n) if weighted else None
    loss, dlogits = F.softmax_cross_entropy(logits, y, w)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)       # the definition, written out
    per_sample = -np.log(p[np.arange(n), y])
    assert loss == pytest.approx(np.mean(per_sample * (1 if w is None else w)), rel=1e-12)
    assert rel_error(dlogits, numerical_gradient(lambda: F.softmax_cross_entropy(logits, y, w)[0], logits)) < GRAD_TOL
    big, _ = F.softmax_cross_entropy(np.array([[1000.0, 0.0]]), np.array([1]))   # the max shift: no overflow
    assert big == pytest.approx(1000.0)


@settings(max_examples=20)
@given(n=st.integers(1, 5), outputs=st.integers(1, 3), seed=seeds)
def test_sigmoid_binary_cross_entropy_value_and_gradient(n, outputs, seed):
    rng = np.random.default_rng(seed)
    logits, y = rng.standard_normal((n, outputs)) * 3, rng.integers(0, 2, (n, outputs)).astype(np.float64)
    loss, dlogits = F.sigmoid_binary_cross_entropy(logits, y)
    p = 1 / (1 + np.exp(-logits))
    assert loss == pytest.approx(np.mean(-y * np.log(p) - (1 - y) * np.log(1 - p)), rel=1e-12)
    numeric = numerical_gradient(lambda: F.sigmoid_binary_cross_entropy(logits, y)[0], logits)
    assert rel_error(dlogits, numeric) < GRAD_TOL


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_update_is_keras_rule_and_returns_new_arrays(momentum, nesterov):
    rng = np.random.default_rng(0)
    w, dw, velocity = rng.standard_normal(5), rng.standard_normal(5), rng.standard_normal(5)
    before = (w.copy(), velocity.copy())
    new_w, new_v = F.sgd_update(w, dw, velocity, 0.1, momentum, nesterov)
    expected_v = momentum * before[1] - 0.1 * dw
    np.testing.assert_allclose(new_v, expected_v)
    step = momentum * expected_v - 0.1 * dw if nesterov else expected_v
    np.testing.assert_allclose(new_w, before[0] + step)
    np.testing.assert_array_equal(w, before[0])              # no in-place surprises
    np.testing.assert_array_equal(velocity, before[1])


def test_adam_update_is_keras_rule_from_step_one():
    rng = np.random.default_rng(1)
    w, dw = rng.standard_normal(6), rng.standard_normal(6)
    m, v = np.zeros(6), np.zeros(6)
    new_w, new_m, new_v = F.adam_update(w, dw, m, v, 1, learning_rate=0.01)
    # step 1 by hand: m = 0.1·g, v = 0.001·g², alpha = lr·sqrt(0.001)/0.1
    alpha = 0.01 * np.sqrt(1 - 0.999) / (1 - 0.9)
    np.testing.assert_allclose(new_m, 0.1 * dw)
    np.testing.assert_allclose(new_v, 0.001 * dw ** 2)
    np.testing.assert_allclose(new_w, w - alpha * (0.1 * dw) / (np.sqrt(0.001 * dw ** 2) + 1e-7))
    assert not m.any() and not v.any()                       # inputs untouched
    f32 = F.adam_update(*(a.astype(np.float32) for a in (w, dw, m, v)), 1)
    assert all(a.dtype == np.float32 for a in f32)           # no silent up-casting


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_op_keeps_the_dtype(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 6, 3)).astype(dtype)
    k, b = rng.standard_normal((3, 3, 3, 4)).astype(dtype), rng.standard_normal(4).astype(dtype)
    y, cache = F.conv2d_forward(x, k, b, 2, "same")
    assert y.dtype == dtype and all(g.dtype == dtype for g in F.conv2d_backward(y, cache))
    p, cache = F.maxpool2d_forward(x)
    assert p.dtype == dtype and F.maxpool2d_backward(p, cache).dtype == dtype
    flat = x.reshape(2, -1)
    d, cache = F.dense_forward(flat, flat.T, None)
    assert d.dtype == dtype and F.dense_backward(d, cache)[0].dtype == dtype


def _code_lines(function) -> int:
    """Lines of code of a function, without its docstring, comments and blank lines."""
    source = inspect.getsource(function)
    body = ast.parse(source).body[0].body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    lines = inspect.getsource(function).splitlines()
    first = body[0].lineno - 1
    return sum(1 for line in lines[first:] if line.strip() and not line.strip().startswith("#"))


@pytest.mark.parametrize("op, limit", [("conv2d", 40), ("maxpool2d", 30), ("dense", 20), ("relu", 8)])
def test_each_op_pair_fits_on_one_screen(op, limit):
    lines = _code_lines(getattr(F, f"{op}_forward")) + _code_lines(getattr(F, f"{op}_backward"))
    assert lines <= limit, f"{op}: {lines} code lines"
