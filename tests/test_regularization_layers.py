"""The layers against overfitting and their friends: Dropout, BatchNormalization,
AveragePooling2D, GlobalAveragePooling2D, LeakyReLU, Tanh — gradient checks over generated shapes,
loop references, and behaviour in training and inference mode."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn import reference
from tinycnn.gradcheck import check_layer, check_model

from .helpers import away_from_zero
from .strategies import seeds, window_case

GRAD_TOL = 1e-7


def built(layer, shape, seed=0):
    layer.build(shape, rng=np.random.default_rng(seed), dtype=np.float64)
    return layer


@settings(max_examples=30)
@given(n=st.integers(2, 4), h=st.integers(1, 6), w=st.integers(1, 6), c=st.integers(1, 5), seed=seeds,
       rank=st.sampled_from([2, 4]))
def test_batchnorm_gradients_in_training_mode(n, h, w, c, seed, rank):
    """w.r.t. the input (through the batch mean and variance), gamma and beta.

    With only 2 values per channel the normalised output is ±1 whatever the input (the input
    gradient is ~ε/σ³, pure rounding noise to finite differences), so at least 3 are used."""
    rng = np.random.default_rng(seed)
    shape = (h, w, c) if rank == 4 else (c,)
    assume(n * (h * w if rank == 4 else 1) >= 3)
    layer = built(tc.BatchNormalization(), shape)
    layer.params["gamma"][...] = rng.uniform(0.5, 2, c)
    layer.params["beta"][...] = rng.standard_normal(c)
    x = rng.standard_normal((n, *shape)) * rng.uniform(0.5, 3) + rng.standard_normal()
    errors = check_layer(layer, x, h=1e-5, seed=seed % 1000)
    assert set(errors) == {"input", "gamma", "beta"}
    assert max(errors.values()) < GRAD_TOL, errors


@settings(max_examples=30)
@given(n=st.integers(2, 4), h=st.integers(1, 6), c=st.integers(1, 5), seed=seeds)
def test_batchnorm_equals_the_term_by_term_reference(n, h, c, seed):
    rng = np.random.default_rng(seed)
    layer = built(tc.BatchNormalization(epsilon=1e-3), (h, h, c))
    layer.params["gamma"][...] = rng.uniform(0.5, 2, c)
    layer.params["beta"][...] = rng.standard_normal(c)
    x = rng.standard_normal((n, h, h, c)) * 2 + 1
    y = layer.forward(x, training=True)
    y_ref, cache = reference.batchnorm_forward(x, layer.params["gamma"], layer.params["beta"], 1e-3)
    np.testing.assert_allclose(y, y_ref, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    dx_ref, dgamma, dbeta = reference.batchnorm_backward(dy, cache)
    np.testing.assert_allclose(dx, dx_ref, atol=1e-10)
    np.testing.assert_allclose(layer.grads["gamma"], dgamma, atol=1e-10)
    np.testing.assert_allclose(layer.grads["beta"], dbeta, atol=1e-10)


def test_batchnorm_moving_statistics_and_inference_mode():
    rng = np.random.default_rng(0)
    layer = built(tc.BatchNormalization(momentum=0.9, epsilon=1e-3), (3,))
    batches = [rng.standard_normal((8, 3)) * 2 + 5 for _ in range(3)]
    mean, var = np.zeros(3), np.ones(3)
    for b in batches:
        layer.forward(b, training=True)
        mean = 0.9 * mean + 0.1 * b.mean(axis=0)
        var = 0.9 * var + 0.1 * b.var(axis=0)            # biased variance, as Keras
    np.testing.assert_allclose(layer.state["moving_mean"], mean)
    np.testing.assert_allclose(layer.state["moving_variance"], var)
    x = rng.standard_normal((4, 3))
    y = layer.forward(x, training=False)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3))
    np.testing.assert_allclose(layer.state["moving_mean"], mean)       # inference does not update
    errors = check_layer(layer, x, h=1e-5)                              # (check_layer trains: fine)
    assert max(errors.values()) < GRAD_TOL


def test_batchnorm_inference_backward_is_the_affine_map():
    layer = built(tc.BatchNormalization(), (2,))
    layer.state["moving_mean"][...] = [1.0, -1.0]
    layer.state["moving_variance"][...] = [4.0, 0.25]
    layer.params["gamma"][...] = [2.0, 3.0]
    layer.forward(np.zeros((1, 2)), training=False)
    np.testing.assert_allclose(layer.backward(np.ones((1, 2))), [[2 / np.sqrt(4.001), 3 / np.sqrt(0.251)]])


def test_dropout_training_and_inference():
    layer = tc.Dropout(0.25, seed=1)
    x = np.ones((400, 50), np.float32)
    y = layer.forward(x, training=True)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75)                    # inverted dropout: rescaled
    dy = np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(layer.backward(dy), dy * kept / 0.75, rtol=1e-6)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)   # identity at inference
    np.testing.assert_array_equal(layer.backward(dy), dy)


def test_dropout_is_seeded_and_gradient_checked():
    a, b = tc.Dropout(0.5, seed=3), tc.Dropout(0.5, seed=3)
    x = np.random.default_rng(0).standard_normal((5, 7))
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    errors = check_layer(built(tc.Dropout(0.4), (7,)), x, h=1e-4)
    assert errors["input"] < GRAD_TOL
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        tc.Dropout(1.0)


@settings(max_examples=30)
@given(n=st.integers(1, 4), h=st.integers(1, 12), w=st.integers(1, 12), c=st.integers(1, 5),
       rate=st.floats(0.05, 0.9), seed=seeds)
def test_dropout_gradients_over_generated_shapes(n, h, w, c, rate, seed):
    layer = built(tc.Dropout(rate), (h, w, c), seed % 1000)
    x = np.random.default_rng(seed).standard_normal((n, h, w, c))
    assert check_layer(layer, x, h=1e-3, seed=seed % 1000)["input"] < GRAD_TOL


def test_models_with_dropout_are_reproducible_from_their_seed():
    def make():
        m = tc.Sequential([tc.Flatten(), tc.Dense(8, activation="relu"), tc.Dropout(0.5), tc.Dense(2, activation="softmax")],
                          input_shape=(4, 4, 1), seed=5)
        m.compile("adam", "sparse_categorical_crossentropy")
        return m
    x = np.random.default_rng(0).random((20, 4, 4, 1)).astype(np.float32)
    y = np.arange(20) % 2
    a, b = make(), make()
    a.fit(x, y, epochs=3, batch_size=4, verbose=0)
    b.fit(x, y, epochs=3, batch_size=4, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


@settings(max_examples=40)
@given(case=window_case(), seed=seeds)
def test_average_pooling_gradients_and_reference(case, seed):
    n, h, w, c, pool, strides, padding = case
    rng = np.random.default_rng(seed)
    layer = built(tc.AveragePooling2D(pool, strides=strides, padding=padding), (h, w, c))
    x = rng.standard_normal((n, h, w, c))
    y = layer.forward(x)
    y_ref, cache = reference.avgpool2d_forward(x, pool, strides, padding)
    np.testing.assert_allclose(y, y_ref, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(layer.backward(dy), reference.avgpool2d_backward(dy, cache), atol=1e-10)
    assert check_layer(layer, x, h=1e-3, seed=seed % 1000)["input"] < GRAD_TOL


@settings(max_examples=30)
@given(n=st.integers(1, 4), h=st.integers(1, 12), w=st.integers(1, 12), c=st.integers(1, 5), seed=seeds)
def test_global_average_pooling_leaky_relu_tanh_gradients(n, h, w, c, seed):
    rng = np.random.default_rng(seed)
    x = away_from_zero(rng, (n, h, w, c), margin=0.05)
    gap = built(tc.GlobalAveragePooling2D(), (h, w, c))
    np.testing.assert_allclose(gap.forward(x), x.mean(axis=(1, 2)))
    for layer in (gap, built(tc.LeakyReLU(0.3), (h, w, c)), built(tc.Tanh(), (h, w, c))):
        errors = check_layer(layer, x, h=1e-4 if isinstance(layer, tc.LeakyReLU) else 1e-5, seed=seed % 1000)
        assert errors["input"] < GRAD_TOL, (layer, errors)


def test_leaky_relu_and_tanh_values():
    x = np.array([[-2.0, 0.0, 3.0]])
    np.testing.assert_allclose(tc.LeakyReLU(0.3).forward(x), [[-0.6, 0.0, 3.0]])
    np.testing.assert_allclose(tc.LeakyReLU().forward(x), [[-0.6, 0.0, 3.0]])    # Keras's default 0.3
    np.testing.assert_allclose(tc.Tanh().forward(x), np.tanh(x))
    assert tc.Dense(2, activation="leaky_relu").activation.negative_slope == 0.2   # Keras's function default


def test_model_with_every_new_layer_passes_the_gradient_check():
    """(Layers followed by BatchNormalization have no bias: BN subtracts the batch mean, so such a
    bias has a gradient of exactly 0 — see the next test — and relative errors of 0 vs 0 are noise.)"""
    model = tc.Sequential([
        tc.Conv2D(3, 3, padding="same", use_bias=False), tc.BatchNormalization(), tc.LeakyReLU(0.1),
        tc.AveragePooling2D(2, padding="same"), tc.Conv2D(4, 2, activation="tanh"), tc.Dropout(0.3),
        tc.GlobalAveragePooling2D(), tc.Dense(5, kernel_regularizer=0.01, use_bias=False), tc.BatchNormalization(),
        tc.Tanh(), tc.Dense(3, activation="softmax", kernel_regularizer=tc.regularizers.L2(0.05)),
    ], input_shape=(7, 7, 2), seed=0, dtype="float64")
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    errors = check_model(model, rng.standard_normal((4, 7, 7, 2)), np.array([0, 1, 2, 1]), h=1e-6)
    assert max(errors.values()) < 1e-6, errors


def test_a_bias_before_batchnorm_gets_no_gradient():
    model = tc.Sequential([tc.Conv2D(3, 3), tc.BatchNormalization(), tc.Flatten(), tc.Dense(2)],
                          input_shape=(5, 5, 1), seed=0, dtype="float64")
    model.compile("sgd", tc.SoftmaxCrossEntropy())
    model.loss_and_grads(np.random.default_rng(0).standard_normal((4, 5, 5, 1)), np.array([0, 1, 1, 0]))
    assert np.abs(model.layers[0].grads["bias"]).max() < 1e-14
    assert np.abs(model.layers[0].grads["kernel"]).max() > 1e-3


def test_summary_counts_non_trainable_state_like_keras():
    model = tc.Sequential([tc.Conv2D(4, 3), tc.BatchNormalization(), tc.Flatten(), tc.Dense(2)], input_shape=(5, 5, 1))
    text = model.summary(print_fn=None)
    conv, bn, dense = 3 * 3 * 1 * 4 + 4, 4 * 4, 3 * 3 * 4 * 2 + 2      # BN: gamma, beta, mean, var
    assert model.count_params() == conv + bn + dense
    assert f"Trainable params: {conv + 8 + dense:,}" in text and "Non-trainable params: 8" in text
    assert [w.shape for w in model.get_weights()][2:6] == [(4,)] * 4
