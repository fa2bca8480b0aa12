"""The gradient checker itself."""

import numpy as np
import pytest

import tinycnn as tc
from tinycnn.gradcheck import check_layer, numerical_gradient, rel_error


def test_rel_error_definition():
    a, n = np.array([1.0, -2.0, 0.0]), np.array([1.0, -2.1, 1e-12])
    assert rel_error(a, n) == pytest.approx(0.1 / 4.1)
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.array([1e-10]), np.array([0.0])) == pytest.approx(1e-2)   # floor of 1e-8


def test_numerical_gradient_of_a_cubic():
    x = np.array([0.5, -1.0, 2.0])
    grad = numerical_gradient(lambda: float(np.sum(x**3)), x, h=1e-5)
    np.testing.assert_allclose(grad, 3 * np.array([0.5, -1.0, 2.0]) ** 2, rtol=1e-9)
    np.testing.assert_array_equal(x, [0.5, -1.0, 2.0])          # restored exactly


def test_numerical_gradient_refuses_float32():
    with pytest.raises(TypeError, match="use float64"):
        numerical_gradient(lambda: 0.0, np.zeros(2, np.float32))


class WrongDense(tc.Dense):
    """A Dense layer whose input gradient forgets one column of the kernel."""

    def backward(self, dy, preactivation=False):
        dx = super().backward(dy, preactivation)
        return dx - dy[:, :1] @ self.params["kernel"][:, :1].T


def test_check_layer_catches_a_wrong_backward():
    x = np.random.default_rng(0).standard_normal((3, 5))
    good = check_layer(tc.Dense(4), x, h=1e-3)
    bad = check_layer(WrongDense(4), x, h=1e-3)
    assert good["input"] < 1e-9 and bad["input"] > 1e-2 and bad["kernel"] < 1e-9
