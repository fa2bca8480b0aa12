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


TOGETHER_SHAPES = [(3, 4), (40, 5), (4,), (2, 2, 1, 3), (7,)]      # with TOGETHER_BELOW = 100: all but (40, 5)


def _train(make, together_below, monkeypatch, steps=4, dtype=np.float32, old_slots_at=None):
    """``steps`` updates of fresh parameters with fixed gradients; ``old_slots_at``: before that step,
    put copies of the slots as they were a step earlier in place of ``optimizer.slots`` (as loading
    an older checkpoint's optimizer state does)."""
    monkeypatch.setattr(tc.optimizers, "TOGETHER_BELOW", together_below)
    rng = np.random.default_rng(3)
    params = [rng.standard_normal(s).astype(dtype) for s in TOGETHER_SHAPES]
    opt, saved = make(), None
    for step, grads in enumerate(gradients(rng, TOGETHER_SHAPES, steps)):
        if old_slots_at is not None and step == old_slots_at - 1:
            saved = [{k: v.copy() for k, v in slots.items()} for slots in (opt.slots or [])]
        if step == old_slots_at:
            opt.slots = saved
        opt.apply(params, [g.astype(dtype) for g in grads])
    return params, opt


OPTIMIZERS = {"sgd": lambda: tc.SGD(0.05), "sgd momentum": lambda: tc.SGD(0.05, momentum=0.9),
              "nesterov": lambda: tc.SGD(0.05, momentum=0.9, nesterov=True), "adam": lambda: tc.Adam(0.01),
              "adamw": lambda: tc.optimizers.AdamW(0.01, weight_decay=0.1)}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_small_parameters_updated_together_get_the_same_numbers_to_the_last_bit(name, monkeypatch):
    """One flat update of the small parameters is the per-parameter update, bit for bit; each
    parameter's slots stay its own (views of the flat arrays), and older slots put in their place
    mid-training (as loading a checkpoint does) are the ones the next update uses."""
    apart, _ = _train(OPTIMIZERS[name], 0, monkeypatch)                      # every parameter on its own
    together, opt = _train(OPTIMIZERS[name], 100, monkeypatch)
    assert opt._together is not None and opt._together["indices"] == [0, 2, 3, 4]
    for a, b in zip(apart, together):
        np.testing.assert_array_equal(a, b)
    for slots, shape in zip(opt.slots, TOGETHER_SHAPES):
        assert all(v.shape == shape for v in slots.values())
    apart, _ = _train(OPTIMIZERS[name], 0, monkeypatch, old_slots_at=3)
    together, _ = _train(OPTIMIZERS[name], 100, monkeypatch, old_slots_at=3)
    for a, b in zip(apart, together):
        np.testing.assert_array_equal(a, b)


def test_an_optimizer_whose_update_is_not_elementwise_is_updated_parameter_by_parameter(monkeypatch):
    """A subclass that overrides ``update`` (here: a step scaled by the parameter's own gradient norm)
    is never given the small parameters as one flat array, unless it declares ``elementwise``."""
    class NormalizedSGD(tc.SGD):
        def update(self, param, grad, slots):
            param -= self.learning_rate * grad / np.linalg.norm(grad)

    together, opt = _train(lambda: NormalizedSGD(0.05), 100, monkeypatch, dtype=np.float64)
    assert opt._together is None
    rng = np.random.default_rng(3)
    expected = [rng.standard_normal(s) for s in TOGETHER_SHAPES]
    for grads in gradients(rng, TOGETHER_SHAPES, 4):
        for p, g in zip(expected, grads):
            p -= 0.05 * g / np.linalg.norm(g)
    for a, b in zip(expected, together):
        np.testing.assert_allclose(a, b, rtol=1e-12)
