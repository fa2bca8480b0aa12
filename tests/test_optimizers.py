"""Optimizers follow their update equations (Keras 3's forms) step after step."""

import numpy as np
import pytest

import tinycnn as tc


def gradients(rng, shapes, steps):
    return [[rng.standard_normal(s) for s in shapes] for _ in range(steps)]


SHAPES = [(3, 4), (4,), (2, 2, 1, 3)]


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True), (0.5, True)])
def test_sgd_matches_its_equations(momentum, nesterov):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(s) for s in SHAPES]
    expected = [p.copy() for p in params]
    velocity = [np.zeros(s) for s in SHAPES]
    lr = 0.05
    opt = tc.SGD(learning_rate=lr, momentum=momentum, nesterov=nesterov)
    for step_grads in gradients(rng, SHAPES, 6):
        opt.apply(params, step_grads)
        for i, g in enumerate(step_grads):
            velocity[i] = momentum * velocity[i] - lr * g
            if nesterov:
                expected[i] = expected[i] + momentum * velocity[i] - lr * g
            else:
                expected[i] = expected[i] + velocity[i]
        for p, e in zip(params, expected):
            np.testing.assert_allclose(p, e, rtol=1e-12, atol=1e-14)
    assert opt.iterations == 6


@pytest.mark.parametrize("lr, b1, b2, eps", [(0.001, 0.9, 0.999, 1e-7), (0.1, 0.5, 0.9, 1e-3)])
def test_adam_matches_keras_equations(lr, b1, b2, eps):
    rng = np.random.default_rng(1)
    params = [rng.standard_normal(s) for s in SHAPES]
    expected = [p.copy() for p in params]
    m = [np.zeros(s) for s in SHAPES]
    v = [np.zeros(s) for s in SHAPES]
    opt = tc.Adam(learning_rate=lr, beta_1=b1, beta_2=b2, epsilon=eps)
    for t, step_grads in enumerate(gradients(rng, SHAPES, 8), start=1):
        opt.apply(params, step_grads)
        for i, g in enumerate(step_grads):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g**2
            step = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
            expected[i] = expected[i] - step * m[i] / (np.sqrt(v[i]) + eps)
        for p, e in zip(params, expected):
            np.testing.assert_allclose(p, e, rtol=1e-10, atol=1e-13)


def test_adam_epsilon_is_keras_placement_not_textbook():
    """With tiny gradients the two placements of epsilon give clearly different steps."""
    g = np.full(3, 1e-7)
    p = np.zeros(3)
    tc.Adam(learning_rate=1.0).apply([p], [g])
    # Keras: alpha·m/(sqrt(v)+eps) with m=0.1g, v=0.001g², alpha=sqrt(0.001)/0.1
    keras = np.sqrt(1 - 0.999) / (1 - 0.9) * (0.1 * 1e-7) / (np.sqrt(0.001) * 1e-7 + 1e-7)
    textbook = 1.0 * 1e-7 / (1e-7 + 1e-7)       # m̂/(sqrt(v̂)+eps) with m̂=g, v̂=g², eps=1e-7
    np.testing.assert_allclose(-p, keras, rtol=1e-12)
    assert abs(keras - textbook) > 0.1


def test_float32_updates_stay_float32():
    p = np.ones(4, np.float32)
    for opt in (tc.Adam(), tc.SGD(momentum=0.9, nesterov=True)):
        opt.apply([p], [np.ones(4, np.float32)])
        assert p.dtype == np.float32
        assert all(s.dtype == np.float32 for s in opt.slots[0].values())


@pytest.mark.parametrize("make, match", [
    (lambda: tc.Adam(learning_rate=0), "learning_rate must be a positive number"),
    (lambda: tc.SGD(learning_rate=-1), "learning_rate must be a positive number"),
    (lambda: tc.SGD(momentum=1.5), r"momentum must be in \[0, 1\)"),
    (lambda: tc.optimizers.get("rmsprop"), "unknown optimizer 'rmsprop'"),
])
def test_bad_optimizer_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_names():
    assert isinstance(tc.optimizers.get("adam"), tc.Adam)
    assert isinstance(tc.optimizers.get("sgd"), tc.SGD)


def test_optimizers_show_their_settings():
    from tinycnn.optimizers import AdamW
    for opt in (tc.SGD(0.05, momentum=0.9, nesterov=True), tc.Adam(0.002, epsilon=1e-3), AdamW(weight_decay=0.01)):
        text = repr(opt)
        assert text.startswith(type(opt).__name__ + "(")
        for key, value in opt.get_config().items():
            assert f"{key}={value!r}" in text
