"""Keras parity: the same model, weights and batches give the same numbers in tinycnn and Keras.

Tolerances are "float32 rounding": forward outputs rel. 1e-5; gradients and weights after 1 and
10 optimizer steps rel. 1e-4, with ``rel_error`` (max |a − b| over the scale of the whole array,
see tinycnn.gradcheck). After 10 steps a weight whose value is mostly cancellation (a tiny bias
that its gradients push back and forth) can drift further by rounding alone, in both frameworks;
there the yardstick is tinycnn's own float32 rounding on the same steps — its distance from the
same model trained in float64 — and tinycnn must be within 10 times that of Keras. (A wrong
gradient or update would be in the float64 run too, so it would not widen the yardstick.) Needs
the ``keras`` extra; fails instead of skipping when CI=true.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn.gradcheck import rel_error

from .conftest import missing

pytestmark = pytest.mark.keras


@st.composite
def model_specs(draw):
    """A small random CNN: 1–2 conv (+ optional pool) blocks, optional hidden Dense, a head."""
    h, w, c = draw(st.integers(5, 12)), draw(st.integers(5, 12)), draw(st.integers(1, 3))
    layers, shape = [], (h, w)
    for _ in range(draw(st.integers(1, 2))):
        k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        s = draw(st.integers(1, 2))
        pad = draw(st.sampled_from(["valid", "same"]))
        if pad == "valid" and (shape[0] < k[0] or shape[1] < k[1]):
            pad = "same"
        layers.append(("conv", draw(st.integers(1, 4)), k, s, pad, draw(st.sampled_from([None, "relu"]))))
        shape = tuple(-(-n // s) if pad == "same" else (n - kk) // s + 1 for n, kk in zip(shape, k))
        if draw(st.booleans()):
            pool_pad = draw(st.sampled_from(["valid", "same"]))
            if pool_pad == "valid" and min(shape) < 2:
                pool_pad = "same"
            stride = draw(st.integers(1, 2))
            layers.append(("pool", 2, stride, pool_pad))
            shape = tuple(-(-n // stride) if pool_pad == "same" else (n - 2) // stride + 1 for n in shape)
    if draw(st.booleans()):
        layers.append(("dense", draw(st.integers(2, 6)), "relu"))
    classes = draw(st.integers(2, 4))
    head = draw(st.sampled_from(["softmax", "logits", "softmax_layer"]))
    return {"input": (h, w, c), "layers": layers, "classes": classes, "head": head,
            "batch": draw(st.integers(1, 6)), "seed": draw(st.integers(0, 2**16))}


def build(spec, optimizer):
    layers = []
    for kind, *args in spec["layers"]:
        if kind == "conv":
            filters, k, s, pad, act = args
            layers.append(tc.Conv2D(filters, k, strides=s, padding=pad, activation=act))
        elif kind == "pool":
            size, stride, pad = args
            layers.append(tc.MaxPool2D(size, strides=stride, padding=pad))
        elif kind == "dense":
            layers.append(tc.Flatten()) if not any(isinstance(l, tc.Flatten) for l in layers) else None
            layers.append(tc.Dense(args[0], activation=args[1]))
    if not any(isinstance(l, tc.Flatten) for l in layers):
        layers.append(tc.Flatten())
    head = spec["head"]
    layers.append(tc.Dense(spec["classes"], activation="softmax" if head == "softmax" else None))
    if head == "softmax_layer":
        layers.append(tc.Softmax())
    model = tc.Sequential(layers, input_shape=spec["input"], seed=spec["seed"])
    loss = tc.SoftmaxCrossEntropy() if head == "logits" else "sparse_categorical_crossentropy"
    model.compile(optimizer, loss)
    return model


def data(spec, steps=1):
    rng = np.random.default_rng(spec["seed"])
    xs = rng.standard_normal((steps, spec["batch"], *spec["input"])).astype(np.float32)
    ys = rng.integers(0, spec["classes"], (steps, spec["batch"]))
    return xs, ys


def within_float32_rounding(mine, theirs, mine_float64, floor=1e-4, factor=10):
    """rel_error(mine, theirs) below ``floor``, or below ``factor`` × tinycnn's own float32 rounding
    (``rel_error(mine, mine_float64)``); returns the numbers for the assertion message."""
    error, rounding = rel_error(mine, theirs), rel_error(mine, mine_float64.astype(mine.dtype))
    return error < max(floor, factor * rounding), (error, rounding)


def keras_loss_and_grads(keras, k_model, x, y):
    import tensorflow as tf
    loss_fn = keras.losses.get(k_model.loss) if isinstance(k_model.loss, str) else k_model.loss
    with tf.GradientTape() as tape:
        loss = loss_fn(y, k_model(x, training=True))
    grads = tape.gradient(loss, k_model.trainable_weights)
    return float(loss), [g.numpy() for g in grads]


SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(spec=model_specs())
def test_forward_loss_and_gradients_match_keras(keras, spec):
    from tinycnn.interop.keras import to_keras
    model = build(spec, tc.Adam())
    k_model = to_keras(model)
    (x,), (y,) = data(spec)
    out, k_out = model(x), k_model(x, training=False).numpy()
    assert out.shape == k_out.shape
    assert rel_error(out, k_out) < 1e-5
    loss, _ = model.loss_and_grads(x, y)
    k_loss, k_grads = keras_loss_and_grads(keras, k_model, x, y)
    assert loss == pytest.approx(k_loss, rel=1e-5, abs=1e-6)
    assert len(k_grads) == len(model.grads)
    for (name, _), g, kg in zip(model.named_params(), model.grads, k_grads):
        assert rel_error(g, kg) < 1e-4, name


@SETTINGS
@given(spec=model_specs(), which=st.sampled_from(["adam", "sgd_momentum", "sgd_nesterov"]))
def test_weights_after_1_and_10_steps_match_keras(keras, spec, which):
    from tinycnn.interop.keras import to_keras
    # Adam's first steps move each weight by ~lr·g/|g|: a gradient entry that is float32 rounding
    # noise (|g| ~ 1e-6, e.g. from cancellation) would move by a non-reproducible ±lr. ε = 1e-3
    # keeps such entries from being blown up — and makes Keras's placement of ε matter more.
    make = {"adam": lambda: tc.Adam(0.01, epsilon=1e-3), "sgd_momentum": lambda: tc.SGD(0.05, momentum=0.9),
            "sgd_nesterov": lambda: tc.SGD(0.05, momentum=0.9, nesterov=True)}[which]
    model = build(spec, make())
    k_model = to_keras(model)
    model64 = build(spec, make()).astype("float64")           # the rounding yardstick (module docstring)
    xs, ys = data(spec, steps=10)
    for step, (x, y) in enumerate(zip(xs, ys), start=1):
        model.train_on_batch(x, y)
        model64.train_on_batch(x.astype(np.float64), y)
        _, k_grads = keras_loss_and_grads(keras, k_model, x, y)
        k_model.optimizer.apply_gradients(zip(k_grads, k_model.trainable_weights))
        if step == 1:
            for (name, w), kw in zip(model.named_params(), k_model.get_weights()):
                assert rel_error(w, kw) < 1e-4, f"{which}: {name} after 1 step"
        if step == 10:
            for (name, w), kw, w64 in zip(model.named_params(), k_model.get_weights(), model64.params):
                ok, numbers = within_float32_rounding(w, kw, w64)
                assert ok, f"{which}: {name} after 10 steps: rel_error vs Keras, vs float64 = {numbers}"


def test_round_trip_through_keras_keeps_everything(keras):
    from tinycnn.interop.keras import from_keras, to_keras
    model = tc.Sequential([tc.Conv2D(4, (3, 2), strides=2, padding="same", activation="relu"),
                           tc.MaxPool2D(2, padding="same"), tc.ReLU(), tc.Flatten(),
                           tc.Dense(6, activation="sigmoid"), tc.Dense(3), tc.Softmax()],
                          input_shape=(9, 7, 2), seed=0)
    back = from_keras(to_keras(model, compile=False))
    assert [l.get_config() for l in back.layers] == [l.get_config() for l in model.layers]
    for a, b in zip(model.params, back.params):
        np.testing.assert_array_equal(a, b)
    k_model = to_keras(model, compile=False)
    assert k_model.count_params() == model.count_params()


def test_keras_written_model_converts(keras):
    """A model as a user writes it in Keras (the seed model) arrives with the same summary counts."""
    from tinycnn.interop.keras import from_keras
    k_model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, (3, 3), activation="relu"),
        keras.layers.MaxPooling2D((2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(2, activation="softmax"),
    ])
    model = from_keras(k_model)
    assert [l.count_params() for l in model.layers] == [l.count_params() for l in k_model.layers]
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    assert rel_error(model.predict(x), k_model.predict(x, verbose=0)) < 1e-5


@pytest.mark.parametrize("make, match", [
    (lambda k: k.layers.GaussianNoise(0.1), "GaussianNoise has no tinycnn equivalent"),
    (lambda k: k.layers.Conv2D(2, 3, dilation_rate=2), "dilation_rate"),
    (lambda k: k.layers.Dense(3, activation="gelu"), "activation 'gelu'"),
    (lambda k: k.layers.Dense(3, kernel_regularizer=k.regularizers.L1(0.1)), "kernel_regularizer L1"),
    (lambda k: k.layers.ReLU(max_value=6.0), "max_value"),
])
def test_unsupported_keras_layers_are_named(keras, make, match):
    from tinycnn.interop.keras import from_keras
    k_model = keras.Sequential([keras.Input((8, 8, 1)), make(keras)])
    with pytest.raises(ValueError, match=match):
        from_keras(k_model)


# --------------------------------------------------------------------------------------------
# The layers against overfitting: BatchNormalization (training and inference mode), pooling,
# activations, L2 regularization, AdamW — and Dropout at inference
# --------------------------------------------------------------------------------------------
@st.composite
def regularized_specs(draw):
    """Layer recipes ``(class, kwargs)``; a layer followed by BatchNormalization has no bias (its
    gradient would be exactly 0 in theory, leaving only rounding noise to compare)."""
    h, w, c = draw(st.integers(4, 9)), draw(st.integers(4, 9)), draw(st.integers(1, 3))
    l2 = draw(st.sampled_from([None, 0.01, 0.1]))
    bn_after_conv = draw(st.booleans())
    layers = [(tc.Conv2D, dict(filters=draw(st.integers(2, 4)), kernel_size=draw(st.integers(1, 3)), padding="same",
                               activation=None if bn_after_conv else draw(st.sampled_from([None, "tanh", "leaky_relu"])),
                               use_bias=not bn_after_conv, kernel_regularizer=l2))]
    if bn_after_conv:
        layers.append((tc.BatchNormalization, dict(momentum=draw(st.sampled_from([0.9, 0.99])), epsilon=1e-3)))
    layers.append(draw(st.sampled_from([(tc.LeakyReLU, dict(negative_slope=0.3)), (tc.Tanh, {}), (tc.ReLU, {})])))
    layers.append((tc.AveragePooling2D, dict(pool_size=2, strides=draw(st.integers(1, 2)),
                                             padding=draw(st.sampled_from(["valid", "same"])))))
    layers.append(draw(st.sampled_from([(tc.GlobalAveragePooling2D, {}), (tc.Flatten, {})])))
    layers.append((tc.Dense, dict(units=draw(st.integers(2, 5)), use_bias=False, kernel_regularizer=l2)))
    layers.append((tc.BatchNormalization, {}))
    layers.append((tc.Dense, dict(units=draw(st.integers(2, 4)), activation="softmax")))
    # batches of 8–16: BatchNormalization over 3 samples is ill-conditioned in float32 (and unrealistic)
    return {"input": (h, w, c), "layers": layers, "batch": draw(st.integers(8, 16)), "seed": draw(st.integers(0, 2**16))}


def regularized_model(spec, optimizer):
    model = tc.Sequential([cls(**kwargs) for cls, kwargs in spec["layers"]], input_shape=spec["input"],
                          seed=spec["seed"])
    model.compile(optimizer, "sparse_categorical_crossentropy")
    rng = np.random.default_rng(spec["seed"])
    for layer in model.layers:                     # non-trivial BN state and affine parameters
        if isinstance(layer, tc.BatchNormalization):
            c = layer.params["gamma"].shape[0]
            layer.params["gamma"][...] = rng.uniform(0.5, 1.5, c)
            layer.params["beta"][...] = rng.normal(0, 0.5, c)
            layer.state["moving_mean"][...] = rng.normal(0, 0.5, c)
            layer.state["moving_variance"][...] = rng.uniform(0.5, 2, c)
    return model


def keras_objective(keras, k_model, x, y, training=True):
    import tensorflow as tf
    with tf.GradientTape() as tape:
        loss = k_model.loss(y, k_model(x, training=training)) + sum(k_model.losses)
    return float(loss), [g.numpy() for g in tape.gradient(loss, k_model.trainable_weights)]


@SETTINGS
@given(spec=regularized_specs(), which=st.sampled_from(["adam", "adamw", "sgd_momentum"]))
def test_batchnorm_pooling_activations_l2_and_adamw_match_keras(keras, spec, which):
    from tinycnn.interop.keras import to_keras
    make = {"adam": lambda: tc.Adam(0.01, epsilon=1e-3),           # ε: see the test above
            "adamw": lambda: tc.optimizers.AdamW(0.01, weight_decay=0.05, epsilon=1e-3),
            "sgd_momentum": lambda: tc.SGD(0.05, momentum=0.9)}[which]
    model = regularized_model(spec, make())
    k_model = to_keras(model)
    rng = np.random.default_rng(spec["seed"])
    xs = rng.standard_normal((10, spec["batch"], *spec["input"])).astype(np.float32)
    ys = rng.integers(0, model.output_shape[-1], (10, spec["batch"]))
    # Inference mode (moving statistics) and training mode (batch statistics), outputs and loss.
    assert rel_error(model.predict(xs[0]), k_model(xs[0], training=False).numpy()) < 1e-5
    assert rel_error(model.forward(xs[0], training=True), k_model(xs[0], training=True).numpy()) < 1e-5
    model = regularized_model(spec, make())                 # undo the BN updates of that forward pass
    k_model = to_keras(model)
    model64 = regularized_model(spec, make()).astype("float64")     # the rounding yardstick
    for step, (x, y) in enumerate(zip(xs, ys), start=1):
        model64.loss_and_grads(x.astype(np.float64), y)
        model64.optimizer.apply(model64.params, model64.grads)
        loss, _ = model.loss_and_grads(x, y)
        grads = [g.copy() for g in model.grads]
        k_loss, k_grads = keras_objective(keras, k_model, x, y)
        if step == 1:
            assert loss == pytest.approx(k_loss, rel=1e-5)
            # Measured against the scale of the whole gradient: BatchNormalization removes any
            # batch-wide shift, so weights upstream of it (a bias especially) can have a true
            # gradient near 0 whose float32 value is mostly cancellation noise in both frameworks.
            flat, k_flat = np.concatenate([g.ravel() for g in grads]), np.concatenate([g.ravel() for g in k_grads])
            assert rel_error(flat, k_flat) < 1e-4, {name: rel_error(g, kg) for (name, _), g, kg
                                                    in zip(model.named_params(), grads, k_grads)}
        model.optimizer.apply(model.params, model.grads)
        k_model.optimizer.apply_gradients(zip(k_grads, k_model.trainable_weights))
        if step in (1, 10):                                     # (whole-model scale: see above)
            mine, theirs = model.named_weights(), k_model.get_weights()
            flat = np.concatenate([w.ravel() for _, w in mine])
            k_flat = np.concatenate([w.ravel() for w in theirs])
            flat64 = np.concatenate([w.ravel() for _, w in model64.named_weights()])
            ok, numbers = (rel_error(flat, k_flat) < 1e-4, None) if step == 1 else \
                within_float32_rounding(flat, k_flat, flat64)
            assert ok, (which, step, numbers, {name: rel_error(w, kw) for (name, w), kw in zip(mine, theirs)})


def test_dropout_converts_and_is_the_identity_at_inference(keras):
    from tinycnn.interop.keras import from_keras, to_keras
    model = tc.Sequential([tc.Flatten(), tc.Dense(6, activation="relu"), tc.Dropout(0.5, seed=1),
                           tc.Dense(2, activation="softmax")], input_shape=(3, 3, 1), seed=0)
    k_model = to_keras(model, compile=False)
    x = np.random.default_rng(0).random((4, 3, 3, 1)).astype(np.float32)
    assert rel_error(model.predict(x), k_model(x, training=False).numpy()) < 1e-6
    back = from_keras(k_model)
    assert isinstance(back.layers[2], tc.Dropout) and back.layers[2].rate == 0.5
