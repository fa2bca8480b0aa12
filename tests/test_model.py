"""Sequential: shapes and parameter counts, the fused softmax, a whole-model gradient check,
training on synthetic and real data, and the Keras-like API."""

import time

import numpy as np
import pytest

import tinycnn as tc
from tinycnn.gradcheck import check_model
from tinycnn.zoo import seed_model


def conv_params(kh, kw, c_in, filters):
    return kh * kw * c_in * filters + filters


def dense_params(d_in, units):
    return d_in * units + units


def test_summary_shapes_and_parameter_counts_are_keras_counts():
    model = seed_model(2)
    text = model.summary(print_fn=None)
    # Keras's counting rule, restated: Conv2D kh·kw·C_in·F + F, Dense in·out + out.
    expected = [conv_params(3, 3, 1, 32), 0, 0, dense_params(13 * 13 * 32, 128), dense_params(128, 2)]
    assert [layer.count_params() for layer in model.layers] == expected
    assert model.count_params() == sum(expected)
    assert [layer.output_shape for layer in model.layers] == [(26, 26, 32), (13, 13, 32), (5408,), (128,), (2,)]
    assert [layer.name for layer in model.layers] == ["conv2d", "max_pool2d", "flatten", "dense", "dense_1"]
    assert f"Total params: {sum(expected):,}" in text
    assert "(None, 26, 26, 32)" in text and "conv2d (Conv2D)" in text


def test_whole_seed_model_gradient_check_every_weight():
    """The seed model's architecture on 6×6 inputs (so every single weight can be checked)."""
    model = seed_model(3, input_shape=(6, 6, 1), seed=0, dtype="float64")
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.random((3, 6, 6, 1)), np.array([0, 2, 1])
    errors = check_model(model, x, y, h=1e-6)
    assert set(errors) == {name for name, _ in model.named_params()}
    assert max(errors.values()) < 1e-6, errors


def test_seed_model_gradient_check_at_full_size_sampled():
    model = seed_model(2, seed=1, dtype="float64")
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    errors = check_model(model, rng.random((2, 28, 28, 1)), np.array([1, 0]), h=1e-6, max_entries=60)
    assert max(errors.values()) < 1e-6, errors


def test_gradient_check_catches_a_broken_backward():
    """The check above can fail: corrupt one gradient and it does."""
    model = seed_model(2, input_shape=(6, 6, 1), seed=0, dtype="float64")
    model.compile("adam", "sparse_categorical_crossentropy")
    dense = model.layers[3]
    original = dense.backward

    def broken(dy, **kw):
        dx = original(dy, **kw)
        dense.grads["kernel"] = dense.grads["kernel"] * 1.01
        return dx

    dense.backward = broken
    rng = np.random.default_rng(0)
    errors = check_model(model, rng.random((2, 6, 6, 1)), np.array([0, 1]), h=1e-6)
    assert errors["dense/kernel"] > 1e-3 and errors["conv2d/kernel"] < 1e-6


def two_heads(final_softmax: bool, seed=0):
    layers = [tc.Conv2D(4, 3, activation="relu"), tc.Flatten(),
              tc.Dense(3, activation="softmax" if final_softmax else None)]
    return tc.Sequential(layers, input_shape=(5, 5, 2), seed=seed, dtype="float64")


def test_softmax_output_with_sparse_crossentropy_is_the_fused_from_logits_loss():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 5, 5, 2)), np.array([0, 1, 2, 1])
    keras_style = two_heads(True)
    keras_style.compile("sgd", "sparse_categorical_crossentropy")
    logits_style = two_heads(False)
    logits_style.compile("sgd", tc.SoftmaxCrossEntropy())
    separate = tc.Sequential([tc.Conv2D(4, 3, activation="relu"), tc.Flatten(), tc.Dense(3), tc.Softmax()],
                             input_shape=(5, 5, 2), seed=0, dtype="float64")
    separate.compile("sgd", "sparse_categorical_crossentropy")
    results = [m.loss_and_grads(x, y)[0] for m in (keras_style, logits_style, separate)]
    assert results[0] == results[1] == results[2]
    for a, b, c in zip(keras_style.grads, logits_style.grads, separate.grads):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    np.testing.assert_allclose(keras_style.predict(x), logits_style.predict(x), rtol=1e-12)
    np.testing.assert_allclose(keras_style.predict(x).sum(axis=1), 1.0)


@pytest.mark.parametrize("ending", ["dense softmax", "softmax layer", "dense sigmoid"])
def test_backward_from_logits_is_the_gradient_of_a_logit_score(ending):
    """model.backward(g, from_logits=True) returns d(g · logits)/dx — checked against finite
    differences of the logits (in float64), through a fused conv step, for a final activation owned
    by a Dense layer or standing alone; and it differs from backward(g), which starts above it."""
    head = {"dense softmax": [tc.Dense(3, activation="softmax")],
            "softmax layer": [tc.Dense(3), tc.Softmax()],
            "dense sigmoid": [tc.Dense(3, activation="sigmoid")]}[ending]
    model = tc.Sequential([tc.Conv2D(4, 3, padding="same", activation="relu"), tc.MaxPooling2D(2), tc.Flatten(),
                           *head], input_shape=(6, 6, 2), seed=0, dtype="float64")
    rng = np.random.default_rng(1)
    x, g = rng.standard_normal((2, 6, 6, 2)), rng.standard_normal((2, 3))

    def score(x):
        model.forward(x)
        last = model.layers[-1]
        logits = (last if isinstance(last, tc.Softmax) else last.activation).logits
        return float(np.sum(g * logits))

    score(x)
    dx = model.backward(g, from_logits=True)
    numeric, h = np.zeros_like(x), 1e-6
    for i in np.ndindex(*x.shape):
        bump = np.zeros_like(x)
        bump[i] = h
        numeric[i] = (score(x + bump) - score(x - bump)) / (2 * h)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-8)
    score(x)
    assert not np.allclose(model.backward(g), dx)                        # above the activation: another gradient


def test_backward_from_logits_needs_a_final_softmax_or_sigmoid():
    model = tc.Sequential([tc.Flatten(), tc.Dense(3)], input_shape=(2, 2, 1), seed=0)
    model.forward(np.zeros((1, 2, 2, 1), np.float32))
    with pytest.raises(ValueError, match=r"from_logits=True.*last layer 'dense.*' \(Dense\) does not end in one"):
        model.backward(np.ones((1, 3), np.float32), from_logits=True)


def test_loss_and_output_mismatch_is_refused():
    with pytest.raises(ValueError, match="expects the model to end in softmax"):
        two_heads(False).compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"from_logits=True\) expects raw logits"):
        two_heads(True).compile("adam", tc.SoftmaxCrossEntropy(from_logits=True))


def separable_images(rng, n, size=12):
    """Class 0: a bright block top-left; class 1: bottom-right; plus noise."""
    y = rng.integers(0, 2, n)
    x = 0.1 * rng.random((n, size, size, 1)).astype(np.float32)
    half = size // 2
    for i, label in enumerate(y):
        r = slice(0, half) if label == 0 else slice(half, size)
        x[i, r, r, 0] += 0.8
    return x, y


def test_training_drives_the_loss_down_on_a_separable_problem():
    rng = np.random.default_rng(0)
    x, y = separable_images(rng, 256)
    model = seed_model(2, input_shape=(12, 12, 1), seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    assert history["loss"][-1] < 0.1 * history["loss"][0]
    x_test, y_test = separable_images(rng, 128)
    assert model.evaluate(x_test, y_test)["accuracy"] == 1.0


def test_multilabel_model_trains_with_sigmoid_binary_cross_entropy():
    rng = np.random.default_rng(0)
    x = rng.random((400, 6)).astype(np.float32)
    y = np.stack([x[:, 0] > 0.5, x[:, 1] + x[:, 2] > 1.0, x[:, 3] < 0.3], axis=1).astype(np.uint8)
    model = tc.Sequential([tc.Dense(16, activation="relu"), tc.Dense(3, activation="sigmoid")],
                          input_shape=(6,), seed=0)
    model.compile(tc.Adam(0.01), "binary_crossentropy")
    history = model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["accuracy"][-1] > 0.9
    assert model.predict(x).shape == (400, 3)


@pytest.mark.slow
def test_seed_model_on_real_pneumoniamnist(medmnist_dir):
    """The engine issue's bar: 2 epochs on the real PneumoniaMNIST, test accuracy > 0.80.

    Batch 128: with batch 32 the test accuracy of 2-epoch models swings between 0.75 and 0.85
    with the seed (the val/test distributions differ; validation accuracy is > 0.92 either way).
    """
    with np.load(medmnist_dir / "pneumoniamnist.npz", allow_pickle=False) as data:
        x_train = data["train_images"][..., None].astype(np.float32) / 255
        x_test = data["test_images"][..., None].astype(np.float32) / 255
        y_train, y_test = data["train_labels"], data["test_labels"]
    model = seed_model(2, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=2, batch_size=128, verbose=0)
    seconds = time.perf_counter() - start
    result = model.evaluate(x_test, y_test)
    print(f"PneumoniaMNIST test after 2 epochs ({seconds:.1f} s):", result)
    assert result["accuracy"] > 0.80


def small_problem(seed=0):
    rng = np.random.default_rng(seed)
    return separable_images(rng, 70, size=8)


def fresh(seed=0):
    model = seed_model(2, input_shape=(8, 8, 1), seed=seed)
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def test_same_seed_same_weights_after_training():
    x, y = small_problem()
    a, b = fresh(3), fresh(3)
    a.fit(x, y, epochs=2, batch_size=16, verbose=0)
    b.fit(x, y, epochs=2, batch_size=16, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    c = fresh(4)
    assert not np.array_equal(c.get_weights()[0], fresh(3).get_weights()[0])


def test_fit_history_and_verbosity(capsys):
    x, y = small_problem()
    model = fresh()
    history = model.fit(x, y, epochs=3, batch_size=16, validation_data=(x[:20], y[:20]), verbose=0)
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in history.values())
    assert capsys.readouterr().err == "" and capsys.readouterr().out == ""
    model.fit(x, y, epochs=2, batch_size=16, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 1/2 - loss:" in out and "Epoch 2/2" in out
    model.fit(x, y, epochs=1, batch_size=16, verbose=1)
    assert "Epoch 1/1" in capsys.readouterr().err           # the tqdm bar


def test_evaluate_matches_a_manual_computation():
    x, y = small_problem()
    model = fresh()
    probs = model.predict(x)
    expected_loss = -np.mean(np.log(probs[np.arange(len(y)), y]))
    result = model.evaluate(x, y, batch_size=16)
    assert result["loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert result["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == y))


def test_predict_is_batched_and_independent_of_batch_size():
    x, _ = small_problem()
    model = fresh()
    np.testing.assert_allclose(model.predict(x, batch_size=7), model.predict(x, batch_size=1000), rtol=1e-6)
    assert model.predict(x).dtype == np.float32


def test_train_on_batch_updates_weights_and_reports():
    x, y = small_problem()
    model = fresh()
    before = model.get_weights()
    stats = model.train_on_batch(x[:16], y[:16])
    assert set(stats) == {"loss", "accuracy"} and stats["loss"] > 0
    assert all(not np.array_equal(b, a) for b, a in zip(before, model.get_weights()))


def test_non_finite_input_is_refused_before_training():
    x, y = small_problem()
    model = fresh()
    x[3, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"x contains NaN or inf \(first in sample 3\)"):
        model.fit(x, y, epochs=1, verbose=0)


def test_model_input_errors():
    model = fresh()
    with pytest.raises(TypeError, match="must be float images"):
        model.predict(np.zeros((2, 8, 8, 1), np.uint8))
    with pytest.raises(ValueError, match=r"must have shape \(batch, 8, 8, 1\), got \(2, 9, 8, 1\)"):
        model.predict(np.zeros((2, 9, 8, 1), np.float32))
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        model.fit(np.zeros((2, 8, 8, 1), np.float32), [0, 1], batch_size=0)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        model.fit(np.zeros((2, 8, 8, 1), np.float32), [0, 1], epochs=0)
    with pytest.raises(RuntimeError, match="call compile"):
        seed_model(2, input_shape=(8, 8, 1)).fit(np.zeros((2, 8, 8, 1), np.float32), [0, 1])


def test_float64_inputs_are_cast_to_the_model_dtype():
    x, y = small_problem()
    model = fresh()
    np.testing.assert_array_equal(model.predict(x.astype(np.float64)), model.predict(x))


def test_set_weights_round_trip_and_astype():
    a, b = fresh(0), fresh(1)
    b.set_weights(a.get_weights())
    x, _ = small_problem()
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    b.astype("float64")
    assert all(p.dtype == np.float64 for p in b.params)
    np.testing.assert_allclose(a.predict(x), b.predict(x), rtol=1e-5)
    with pytest.raises(ValueError, match="has shape"):
        b.set_weights([w.T for w in a.get_weights()])


def test_callbacks_extend_the_history_and_can_stop_training():
    x, y = small_problem()
    model = fresh()
    seen = []

    def callback(model, epoch, logs):
        seen.append((epoch, sorted(logs)))
        logs["val_auc"] = 0.5 + epoch / 10
        if epoch == 2:
            model.stop_training = True

    history = model.fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=[callback])
    assert seen == [(1, ["accuracy", "loss"]), (2, ["accuracy", "loss"])]
    assert history["val_auc"] == [0.6, 0.7] and len(history["loss"]) == 2


def test_augment_sees_every_training_batch_with_the_model_rng():
    x, y = small_problem()
    model = fresh()
    sizes = []

    def augment(batch, rng):
        assert rng is model.rng
        sizes.append(len(batch))
        return batch[:, ::-1]            # something visible: flip upside down

    model.fit(x, y, epochs=1, batch_size=32, verbose=0, augment=augment)
    assert sizes == [32, 32, 6]
