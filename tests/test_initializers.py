"""Initializers use Keras's fans and distributions, and only the generator they are given."""

import numpy as np
import pytest

from tinycnn import initializers


@pytest.mark.parametrize("shape, fans", [((30, 20), (30, 20)), ((3, 5, 4, 8), (60, 120)), ((7,), (7, 7))])
def test_fans_like_keras(shape, fans):
    assert initializers.compute_fans(shape) == fans


def test_glorot_uniform_limit_and_spread():
    w = initializers.glorot_uniform((3, 3, 16, 32), np.random.default_rng(0))
    limit = np.sqrt(6 / (3 * 3 * 16 + 3 * 3 * 32))
    assert w.dtype == np.float32 and np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.99 * limit                      # uses the whole range
    assert w.std() == pytest.approx(limit / np.sqrt(3), rel=0.03)  # uniform's std


def test_he_normal_std_and_truncation():
    w = initializers.he_normal((400, 300), np.random.default_rng(0), dtype=np.float64)
    assert w.std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    stddev = np.sqrt(2 / 400) / 0.87962566103423978
    assert np.abs(w).max() <= 2 * stddev


def test_same_generator_state_same_weights_and_no_global_state():
    a = initializers.glorot_uniform((5, 5), np.random.default_rng(42))
    np.random.seed(0)
    b = initializers.glorot_uniform((5, 5), np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)
    assert not initializers.zeros((2, 3)).any()


def test_unknown_initializer():
    with pytest.raises(ValueError, match="unknown initializer 'ones'"):
        initializers.get("ones")
