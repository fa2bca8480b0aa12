"""Losses: values against their definitions, gradients against finite differences, stability."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit, log_expit, log_softmax

import tinycnn as tc
from tinycnn.gradcheck import numerical_gradient, rel_error


@settings(max_examples=40)
@given(n=st.integers(1, 8), k=st.integers(2, 6), scale=st.floats(0.1, 5), seed=st.integers(0, 10**6))
def test_softmax_cross_entropy_value_and_gradient(n, k, scale, seed):
    """h = 1e-4: a confident correct prediction has a loss of ~1e-4 whose rounding error, divided by
    a smaller step, would dominate; the O(h²) truncation error stays far below 1e-7 here."""
    rng = np.random.default_rng(seed)
    logits = scale * rng.standard_normal((n, k))
    y = rng.integers(0, k, n)
    loss = tc.SoftmaxCrossEntropy()
    value = loss.forward(logits, y)
    expected = -np.mean(log_softmax(logits, axis=1)[np.arange(n), y])   # scipy's, independent
    assert value == pytest.approx(expected, rel=1e-12, abs=1e-12)
    grad = loss.backward()
    p = np.exp(log_softmax(logits, axis=1))
    np.testing.assert_allclose(grad, (p - np.eye(k)[y]) / n, atol=1e-15)
    numeric = numerical_gradient(lambda: loss.forward(logits, y), logits, h=1e-4)
    assert rel_error(grad, numeric) < 1e-7


@settings(max_examples=40)
@given(n=st.integers(1, 8), labels=st.integers(1, 6), scale=st.floats(0.1, 5), seed=st.integers(0, 10**6))
def test_sigmoid_binary_cross_entropy_value_and_gradient(n, labels, scale, seed):
    rng = np.random.default_rng(seed)
    logits = scale * rng.standard_normal((n, labels))
    y = rng.integers(0, 2, (n, labels))
    loss = tc.SigmoidBinaryCrossEntropy()
    value = loss.forward(logits, y)
    p = expit(logits)
    expected = -np.mean(y * log_expit(logits) + (1 - y) * log_expit(-logits))   # scipy's, stable
    assert value == pytest.approx(expected, rel=1e-12, abs=1e-14)
    analytic = loss.backward()
    np.testing.assert_allclose(analytic, (p - y) / y.size, atol=1e-15)
    numeric = numerical_gradient(lambda: loss.forward(logits, y), logits, h=1e-4)
    assert rel_error(analytic, numeric) < 1e-7


@settings(max_examples=30)
@given(n=st.integers(1, 8), k=st.integers(2, 6), scale=st.floats(5, 200), seed=st.integers(0, 10**6))
def test_confident_logits_match_scipy(n, k, scale, seed):
    """Large logits (confident predictions): values and gradients still equal scipy's stable
    formulas. (Finite differences can no longer resolve gradients of 1e-9 here, so this is the
    check that counts.)"""
    rng = np.random.default_rng(seed)
    logits = scale * rng.standard_normal((n, k))
    y = rng.integers(0, k, n)
    ce = tc.SoftmaxCrossEntropy()
    assert ce.forward(logits, y) == pytest.approx(-np.mean(log_softmax(logits, axis=1)[np.arange(n), y]), rel=1e-12)
    np.testing.assert_allclose(ce.backward(), (np.exp(log_softmax(logits, axis=1)) - np.eye(k)[y]) / n, atol=1e-15)
    yb = rng.integers(0, 2, (n, k))
    bce = tc.SigmoidBinaryCrossEntropy()
    expected = -np.mean(yb * log_expit(logits) + (1 - yb) * log_expit(-logits))
    assert bce.forward(logits, yb) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(bce.backward(), (expit(logits) - yb) / yb.size, atol=1e-15)


def test_losses_are_stable_for_huge_logits():
    logits = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]], dtype=np.float32)
    ce = tc.SoftmaxCrossEntropy()
    assert ce.forward(logits, np.array([1, 0])) == pytest.approx(2000.0)
    np.testing.assert_allclose(ce.backward(), [[0.5, -0.5], [-0.5, 0.5]])
    assert ce.forward(logits, np.array([0, 1])) == 0.0
    bce = tc.SigmoidBinaryCrossEntropy()
    assert bce.forward(logits, np.array([[0, 1], [1, 0]])) == pytest.approx(1000.0)
    assert np.all(np.isfinite(bce.backward()))


def test_labels_of_shape_n_by_1_are_accepted():
    logits = np.random.default_rng(0).standard_normal((4, 3))
    y = np.array([0, 2, 1, 2], dtype=np.uint8)
    assert tc.SoftmaxCrossEntropy().forward(logits, y[:, None]) == tc.SoftmaxCrossEntropy().forward(logits, y)


@pytest.mark.parametrize("y, error, match", [
    (np.array([0, 3]), ValueError, r"labels must be in \[0, 3\)"),
    (np.array([0, -1]), ValueError, r"labels must be in \[0, 3\)"),
    (np.array([0, 1, 2]), ValueError, r"expected labels of shape \(2,\) or \(2, 1\)"),
    (np.array([0.5, 1.0]), TypeError, "expected integer class labels"),
])
def test_softmax_cross_entropy_rejects_bad_labels(y, error, match):
    with pytest.raises(error, match=match):
        tc.SoftmaxCrossEntropy().forward(np.zeros((2, 3)), y)


def test_binary_cross_entropy_rejects_non_binary_labels():
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        tc.SigmoidBinaryCrossEntropy().forward(np.zeros((2, 2)), np.array([[0, 2], [1, 1]]))


def test_loss_names():
    assert isinstance(tc.losses.get("sparse_categorical_crossentropy"), tc.SoftmaxCrossEntropy)
    assert not tc.losses.get("sparse_categorical_crossentropy").from_logits
    assert isinstance(tc.losses.get("binary_crossentropy"), tc.SigmoidBinaryCrossEntropy)
    with pytest.raises(ValueError, match="unknown loss 'mse'"):
        tc.losses.get("mse")
