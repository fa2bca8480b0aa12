"""The step-through recorder (tinycnn.trace): its gradients are the model's own, bit for bit, and
the true ones (finite differences in float64); it changes nothing unless asked to, and then exactly
what train_on_batch changes; the walk-through goes backward with formulas that hold for its arrays;
`tinycnn explain` on a real chest X-ray."""

import copy
import numpy as np
import pytest

import tinycnn as tc
from tinycnn import reference
from tinycnn.cli import main
from tinycnn.gradcheck import numerical_gradient, rel_error, repeatable
from tinycnn.zoo import seed_model

# -- small float64 models covering every path of the trace --------------------------------------


def _seed():
    """The seed model at full size: Conv2D(relu) → MaxPool → Flatten → Dense(relu) → Dense(softmax)."""
    model = seed_model(2, seed=0, dtype="float64")
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    return model, rng.random((2, 28, 28, 1)), np.array([0, 1])


def _same_two_convs():
    """'same' padding, a strided conv, two convolutions, a softmax over 3 classes."""
    model = tc.Sequential([
        tc.Conv2D(3, 3, padding="same", activation="relu"),
        tc.Conv2D(4, (3, 2), strides=2, padding="same", activation="relu"),
        tc.MaxPool2D(2),
        tc.Flatten(),
        tc.Dense(3, activation="softmax"),
    ], input_shape=(8, 8, 2), seed=1, dtype="float64")
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    return model, rng.standard_normal((3, 8, 8, 2)), np.array([2, 0, 1])


def _sigmoid_bce():
    """Multi-label: Dense(sigmoid) with binary cross-entropy, and an L2 weight penalty."""
    model = tc.Sequential([
        tc.Conv2D(3, 3, activation="relu"),
        tc.MaxPool2D(2),
        tc.Flatten(),
        tc.Dense(5, activation="relu", kernel_regularizer=0.01),
        tc.Dense(2, activation="sigmoid"),
    ], input_shape=(7, 7, 1), seed=2, dtype="float64")
    model.compile("adam", "binary_crossentropy")
    rng = np.random.default_rng(2)
    return model, rng.random((3, 7, 7, 1)), np.array([[1, 0], [1, 1], [0, 0]])


def _logits():
    """Ends in raw logits, trained with SoftmaxCrossEntropy(from_logits=True); separate ReLU layer; SGD."""
    model = tc.Sequential([tc.Conv2D(3, 3), tc.ReLU(), tc.Flatten(), tc.Dense(3)],
                          input_shape=(6, 6, 1), seed=3, dtype="float64")
    model.compile(tc.SGD(0.1, momentum=0.9, nesterov=True), tc.SoftmaxCrossEntropy(from_logits=True))
    rng = np.random.default_rng(3)
    return model, rng.standard_normal((2, 6, 6, 1)), np.array([2, 1])


def _softmax_layer():
    """A separate Softmax layer fused with the loss; Tanh, average pooling, an L2 penalty on a conv."""
    model = tc.Sequential([
        tc.Conv2D(2, 3, kernel_regularizer=0.05), tc.Tanh(), tc.AveragePooling2D(2), tc.Flatten(),
        tc.Dense(4), tc.Dense(3), tc.Softmax(),
    ], input_shape=(6, 6, 1), seed=4, dtype="float64")
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(4)
    return model, rng.standard_normal((2, 6, 6, 1)), np.array([1, 2])


def _bn_dropout():
    """Layers with side effects in training mode: BatchNormalization (moving stats), Dropout (random masks)."""
    model = tc.Sequential([
        tc.Conv2D(3, 3, activation="relu"), tc.BatchNormalization(), tc.Dropout(0.3),
        tc.GlobalAveragePooling2D(), tc.Dense(2, activation="softmax"),
    ], input_shape=(6, 6, 2), seed=5, dtype="float64")
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(5)
    return model, rng.standard_normal((4, 6, 6, 2)), np.array([0, 1, 1, 0])


MODELS = {"seed": _seed, "same_two_convs": _same_two_convs, "sigmoid_bce": _sigmoid_bce, "logits": _logits,
          "softmax_layer": _softmax_layer, "bn_dropout": _bn_dropout}


@pytest.fixture(params=sorted(MODELS))
def case(request):
    return MODELS[request.param]()


# -- the model's own backward pass, bit for bit -----------------------------------------------------


def spy_on_backward(model):
    """Wrap every layer's backward (on the instance) to record what the model's own pass sends it."""
    calls = {}
    for layer in model.layers:
        def spy(dy, *args, _original=layer.backward, _name=layer.name, **kwargs):
            dx = _original(dy, *args, **kwargs)
            calls[_name] = (dy.copy(), kwargs.get("preactivation", False), None if dx is None else dx.copy())
            return dx
        layer.backward = spy
    return calls


def test_recorded_gradients_are_the_models_own_bit_for_bit(case):
    model, x, y = case
    trace = model.trace_step(x, y)
    grads_after_trace = [{k: g.copy() for k, g in layer.grads.items()} for layer in model.layers]

    rngs = [(layer.rng, copy.deepcopy(layer.rng.bit_generator.state)) for layer in model.layers
            if hasattr(layer, "rng")]                          # Dropout: the same masks in both passes
    fused_loss, fused_logits = model.loss_and_grads(x, y)     # the kernels, Conv2D(relu) → MaxPool2D fused
    for rng, state in rngs:
        rng.bit_generator.state = state
    fused_grads = [{k: g.copy() for k, g in layer.grads.items()} for layer in model.layers]
    calls = spy_on_backward(model)
    with tc.teaching():                                       # every layer's own backward, spied on
        loss, logits = model.loss_and_grads(x, y)

    assert trace.loss == loss and fused_loss == pytest.approx(loss, rel=1e-5)
    np.testing.assert_array_equal(trace.logits, logits)
    np.testing.assert_allclose(fused_logits, logits, rtol=1e-5, atol=1e-5)
    for layer, record, grads, fused in zip(model.layers, trace.layers, grads_after_trace, fused_grads):
        assert set(record.grads) == set(layer.params)
        for key in layer.params:
            np.testing.assert_array_equal(grads[key], layer.grads[key])     # layer.grads as loss_and_grads leaves them
            np.testing.assert_array_equal(record.grads[key], layer.grads[key])
            np.testing.assert_allclose(fused[key], layer.grads[key], rtol=0,       # the kernels: the same sums
                                       atol=1e-4 * np.max(np.abs(layer.grads[key])))   # in another order
        if layer.name not in calls:                     # only a separate final softmax/sigmoid is skipped
            assert record.fused and record.type in ("Softmax", "Sigmoid")
            np.testing.assert_array_equal(record.grad_input, trace.grad_logits)
            continue
        dy, preactivation, dx = calls[layer.name]
        seen = record.grad_preactivation if preactivation else record.grad_output
        np.testing.assert_array_equal(seen, dy)
        if dx is None:      # training skips the images' gradient in the first layer; the trace has it
            assert layer is model.layers[0]
            dx = layer.backward(dy, preactivation=preactivation)
        np.testing.assert_array_equal(record.grad_input, dx)


def test_upstream_gradient_of_each_layer_is_the_input_gradient_of_the_next(case):
    model, x, y = case
    trace = model.trace_step(x, y)
    records = trace.layers
    np.testing.assert_array_equal(records[0].input, x)
    for below, above in zip(records, records[1:]):
        np.testing.assert_array_equal(above.input, below.output)
        np.testing.assert_array_equal(below.grad_output, above.grad_input)
        assert below.grad_output.shape == below.output.shape and below.grad_input.shape == below.input.shape
    top = records[-1]
    if model.loss.from_logits:
        np.testing.assert_array_equal(top.grad_output, trace.grad_logits)
    else:
        assert top.fused and top.grad_output is None
        entry = top.grad_preactivation if top.preactivation is not None else top.grad_input
        np.testing.assert_array_equal(entry, trace.grad_logits)


def test_builtin_activation_is_split_from_the_linear_part(case):
    model, x, y = case
    trace = model.trace_step(x, y)
    for layer, record in zip(model.layers, trace.layers):
        if getattr(layer, "activation", None) is None:
            assert record.preactivation is None and record.grad_preactivation is None
            continue
        # Y = act(Z): running the activation layer class on the recorded Z gives the recorded Y
        np.testing.assert_array_equal(type(layer.activation)().forward(record.preactivation), record.output)
        if record.activation == "relu" and not record.fused:
            np.testing.assert_array_equal(record.grad_preactivation, record.grad_output * (record.preactivation > 0))


# -- the true gradients: central differences in float64 -------------------------------------------


def objective(model, out, y) -> float:
    """The training loss from the model's final output, written out by hand (not with tinycnn.losses):
    cross-entropy of the probabilities, plus every L2 penalty."""
    n = out.shape[0]
    if isinstance(model.loss, tc.SoftmaxCrossEntropy):
        if model.loss.from_logits:
            e = np.exp(out - out.max(axis=1, keepdims=True))
            out = e / e.sum(axis=1, keepdims=True)
        data = -np.mean(np.log(out[np.arange(n), y]))
    else:
        p = 1 / (1 + np.exp(-out)) if model.loss.from_logits else out
        data = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    penalty = sum(layer.kernel_regularizer.l2 * np.sum(layer.params["kernel"] ** 2) for layer in model.layers
                  if getattr(layer, "kernel_regularizer", None) is not None)
    return data + penalty


def some_entries(analytic, rng, candidates=None, k=24):
    """The entries with the largest gradients (so the error is measured at the gradient's scale) plus
    random ones, among ``candidates`` (flat indices; default all)."""
    flat = np.abs(analytic).reshape(-1)
    candidates = np.arange(flat.size) if candidates is None else candidates
    largest = candidates[np.argsort(flat[candidates])[-k // 2:]]
    random = rng.choice(candidates, size=min(k // 2, candidates.size), replace=False)
    return np.unique(np.concatenate([largest, random]))


def test_every_recorded_gradient_matches_finite_differences(case):
    model, x, y = case
    reset = repeatable(model.layers)         # same dropout masks and BN statistics on every pass
    trace = model.trace_step(x, y)
    rng = np.random.default_rng(0)

    def loss_from(i, h) -> float:
        """Run the network from layer i on h, to the loss."""
        reset()
        out = h
        for layer in model.layers[i:]:
            out = layer.forward(out, training=True)
        return objective(model, out, y)

    errors = {}
    for i, record in enumerate(trace.layers):
        h = record.input.copy()
        # A max pool's input holds ties (ReLU's zeros): there the derivative is one-sided; skip them.
        candidates = np.flatnonzero(h) if record.type == "MaxPool2D" else None
        idx = some_entries(record.grad_input, rng, candidates)
        numeric = numerical_gradient(lambda: loss_from(i, h), h, h=1e-6, indices=idx)
        errors[f"{record.name} dX"] = rel_error(record.grad_input.reshape(-1)[idx], numeric.reshape(-1)[idx])
        for key, param in model.layers[i].params.items():
            idx = some_entries(record.grads[key], rng)
            numeric = numerical_gradient(lambda: loss_from(0, x), param, h=1e-6, indices=idx)
            errors[f"{record.name} d{key}"] = rel_error(record.grads[key].reshape(-1)[idx], numeric.reshape(-1)[idx])
    assert len(errors) == len(trace.layers) + sum(len(layer.params) for layer in model.layers)
    assert max(errors.values()) < 1e-6, errors


def test_finite_difference_check_catches_a_wrong_input_gradient():
    """The check above can fail: a trace whose dX is off by 1% in one entry does not pass."""
    model, x, y = _same_two_convs()
    trace = model.trace_step(x, y)
    record = trace["conv2d_1"]
    h = record.input.copy()
    i = int(np.argmax(np.abs(record.grad_input)))
    wrong = record.grad_input.copy().reshape(-1)
    wrong[i] *= 1.01

    def loss_from():
        out = h
        for layer in model.layers[1:]:
            out = layer.forward(out, training=True)
        return objective(model, out, y)

    numeric = numerical_gradient(loss_from, h, h=1e-6, indices=[i])
    assert rel_error(wrong[[i]], numeric.reshape(-1)[[i]]) > 1e-3


# -- side effects: none without update, exactly train_on_batch's with it ---------------------------


def test_without_update_nothing_changes_but_the_grads(case):
    model, x, y = case
    weights = model.get_weights()                       # params and state (BN's moving statistics)
    generators = [layer.rng.bit_generator.state for layer in model.layers if hasattr(layer, "rng")]
    trace = model.trace_step(x, y)
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert generators == [layer.rng.bit_generator.state for layer in model.layers if hasattr(layer, "rng")]
    assert model.optimizer.iterations == 0 and model.optimizer.slots is None
    assert not trace.updated and all(not record.updates for record in trace.layers)
    again = model.trace_step(x, y)                      # so a second trace is the same trace
    assert again.loss == trace.loss


@pytest.mark.parametrize("name", sorted(MODELS))
def test_with_update_the_step_is_exactly_train_on_batch(name):
    (model, x, y), (twin, _, _) = MODELS[name](), MODELS[name]()
    for _ in range(2):                                  # twice: the second step uses the optimizer's state
        before = model.get_weights()
        trace = model.trace_step(x, y, update=True)
        with tc.teaching():                             # the trace runs the layers one by one
            stats = twin.train_on_batch(x, y)
        assert trace.loss == stats["loss"] and trace.accuracy == stats["accuracy"]
        for mine, theirs in zip(model.get_weights(), twin.get_weights()):
            np.testing.assert_array_equal(mine, theirs)
        assert model.optimizer.iterations == twin.optimizer.iterations
        changed = [record.updates[key] for record in trace.layers for key in record.updates]
        after = [p for _, p in model.named_params()]
        start = [w for (name, _), w in zip(model.named_weights(), before) if name in dict(model.named_params())]
        assert len(changed) == len(after) and all(np.any(c != 0) for c in changed)
        for change, new, old in zip(changed, after, start):
            np.testing.assert_array_equal(change, new - old)


def test_update_is_refused_when_the_gradient_is_not_finite():
    model, x, y = _seed()
    model.layers[3].params["kernel"][0, 0] = np.nan
    weights = model.get_weights()
    trace = model.trace_step(x, y)                      # inspecting is fine...
    assert np.isnan(trace.loss)
    with pytest.raises(tc.NonFiniteError, match="not applied"):
        model.trace_step(x, y, update=True)             # ...applying is not
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)


# -- the walk-through -------------------------------------------------------------------------------


def test_step_through_goes_backward_from_the_loss_with_the_formulas():
    model, x, y = _seed()
    events = list(model.trace_step(x, y).step_through())
    assert [(e.layer, e.kind) for e in events] == [
        ("loss", "loss"), ("dense_1", "softmax"), ("dense_1", "dense"), ("dense", "relu"), ("dense", "dense"),
        ("flatten", "flatten"), ("max_pool2d", "max_pool2d"), ("conv2d", "relu"), ("conv2d", "conv2d")]
    assert [(e.step, e.total) for e in events] == [(i, len(events)) for i in range(1, len(events) + 1)]
    formulas = {(e.layer, e.kind): e.formula for e in events}
    assert formulas[("loss", "loss")] == "dlogits = (p − y) / N"
    assert formulas[("conv2d", "relu")] == "dZ = dY ⊙ [Z > 0]"
    assert "dW = colsᵀ · dZ" in formulas[("conv2d", "conv2d")]
    assert "dX = col2im(dZ · Wᵀ)" in formulas[("conv2d", "conv2d")]
    assert "dW = Xᵀ · dZ" in formulas[("dense", "dense")] and "dX = dZ · Wᵀ" in formulas[("dense", "dense")]
    assert "max" in formulas[("max_pool2d", "max_pool2d")] and "reshape" in formulas[("flatten", "flatten")]
    for event in events:
        text = str(event)
        assert event.formula in text and event.layer in text and event.explanation.split()[0] in text
        assert all(name in text for name in event.arrays)


def test_the_formulas_hold_for_the_arrays_of_their_events():
    """Each event's arrays satisfy its formula — checked with plain NumPy and the loop oracles."""
    model, x, y = _same_two_convs()
    trace = model.trace_step(x, y)
    events = {(e.layer, e.kind): e.arrays for e in trace.step_through()}
    a = events[("loss", "loss")]
    np.testing.assert_allclose(a["dlogits"], (a["p"] - a["y"]) / len(x), rtol=1e-12, atol=1e-15)
    for name in ("conv2d", "conv2d_1"):
        a = events[(name, "relu")]
        np.testing.assert_array_equal(a["dZ"], a["dY"] * (a["Z"] > 0))
        layer = model.layers[[layer.name for layer in model.layers].index(name)]
        a = events[(name, "conv2d")]
        dz = a["dZ"].reshape(-1, layer.filters)
        np.testing.assert_allclose(a["dW"], (a["cols"].T @ dz).reshape(a["W"].shape), rtol=1e-12, atol=1e-15)
    for record, layer in zip(trace.layers, model.layers):
        if record.type == "Conv2D":
            _, cache = reference.conv2d_forward(record.input, layer.params["kernel"], layer.params["bias"],
                                                layer.strides, layer.padding)
            dx, dw, db = reference.conv2d_backward(record.grad_preactivation, cache)
            a = events[(record.name, "conv2d")]
            np.testing.assert_allclose(a["dX"], dx, rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose(a["dW"], dw, rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose(a["db"], db, rtol=1e-10, atol=1e-14)
        if record.type == "MaxPool2D":
            _, cache = reference.maxpool2d_forward(record.input, layer.pool_size, layer.strides, layer.padding)
            np.testing.assert_array_equal(events[(record.name, "max_pool2d")]["dX"],
                                          reference.maxpool2d_backward(record.grad_output, cache))
    a = events[("flatten", "flatten")]
    np.testing.assert_array_equal(a["dX"].reshape(a["dY"].shape), a["dY"])
    a = events[("dense", "dense")]
    np.testing.assert_allclose(a["dW"], a["X"].T @ a["dZ"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(a["dX"], a["dZ"] @ a["W"].T, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(a["db"], a["dZ"].sum(axis=0), rtol=1e-12, atol=1e-15)


def test_penalty_and_update_events_come_after_the_backward_pass():
    model, x, y = _softmax_layer()
    events = list(model.trace_step(x, y, update=True).step_through())
    kinds = [e.kind for e in events]
    assert kinds[:3] == ["loss", "softmax", "dense"] and events[1].formula.startswith("dX = dlogits")
    assert kinds.index("tanh") < kinds.index("conv2d") < kinds.index("penalty") < kinds.index("update")
    penalty = events[kinds.index("penalty")].arrays
    np.testing.assert_allclose(penalty["2·l2·W"], 2 * 0.05 * penalty["W"], rtol=1e-12)
    updates = [e for e in events if e.kind == "update"]
    assert [e.layer for e in updates] == [layer.name for layer in model.layers if layer.params]
    assert all("Adam" in e.explanation and "ΔW" in e.arrays for e in updates)


# -- the table and the errors -------------------------------------------------------------------------


def test_printed_table_mentions_every_layer_and_the_loss(case):
    model, x, y = case
    trace = model.trace_step(x, y)
    text = str(trace)
    for layer in model.layers:
        assert f"{layer.name} ({type(layer).__name__}" in text
        assert f"{(len(x), *layer.input_shape)} → {(len(x), *layer.output_shape)}" in text
    for key in ("dX  dL/dinput", "dW  dL/dkernel", "Y   output", "dlogits"):
        assert key in text
    assert f"loss {trace.data_loss:.6g}" in text and type(model.loss).__name__ in text
    assert (trace.penalty > 0) == ("weight penalty" in text)


def test_trace_gives_layers_by_name_and_index():
    model, x, y = _seed()
    trace = tc.trace_step(model, x, y)
    assert trace["conv2d"] is trace[0] and len(trace) == len(model.layers) == len(list(trace))
    assert trace["conv2d"].preactivation.shape == (2, 26, 26, 32)
    with pytest.raises(KeyError, match="conv2d"):
        trace["conv3d"]


@pytest.mark.parametrize("call, error, message", [
    (lambda m, x, y: m.trace_step(x[:, :27], y), ValueError, r"must have shape \(batch, 28, 28, 1\)"),
    (lambda m, x, y: m.trace_step(x, y[:1]), ValueError, "x has 2 samples but y has shape"),
    (lambda m, x, y: m.trace_step(x, np.array([0, 2])), ValueError, r"labels must be in \[0, 2\)"),
    (lambda m, x, y: m.trace_step((x * 255).astype(np.uint8), y), TypeError, "float images"),
    (lambda m, x, y: m.trace_step(x, y, sample_weight=[1.0]), ValueError, "sample_weight"),
    (lambda m, x, y: m.trace_step(x, y, update="yes"), TypeError, "update must be True or False"),
    (lambda m, x, y: tc.trace_step("model", x, y), TypeError, "expected a tinycnn.Sequential"),
])
def test_clear_errors(call, error, message):
    model, x, y = _seed()
    with pytest.raises(error, match=message):
        call(model, x, y)


def test_uncompiled_model_is_refused():
    model = seed_model(2, seed=0)
    with pytest.raises(RuntimeError, match="compile"):
        model.trace_step(np.zeros((1, 28, 28, 1), np.float32), np.array([0]))


# -- tinycnn explain, on a real chest X-ray -------------------------------------------------------------


def test_explain_command_traces_one_real_image(medmnist_dir, capsys):
    assert main(["explain", "--data", str(medmnist_dir), "--index", "3"]) == 0
    out = capsys.readouterr().out
    # the same step, computed here with the model's own loss_and_grads
    data = tc.datasets.load("pneumoniamnist", root=medmnist_dir)
    model = seed_model(2, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    loss, _ = model.loss_and_grads(tc.datasets.to_float(data.test.images[3:4]), data.test.labels[3:4, 0])
    label = ("normal", "pneumonia")[int(data.test.labels[3, 0])]
    assert f"test image 3: label {label}" in out
    assert f"loss {loss:.6g} (SoftmaxCrossEntropy)" in out
    for layer in model.layers:
        assert f"{layer.name} ({type(layer).__name__}" in out
    for formula in ("dlogits = (p − y) / N", "dZ = dY ⊙ [Z > 0]", "dW = colsᵀ · dZ", "dX = col2im(dZ · Wᵀ)"):
        assert formula in out
    assert "· update" not in out                         # no optimizer step without --update


def test_explain_update_and_bad_index(medmnist_dir, capsys):
    assert main(["explain", "--data", str(medmnist_dir), "--model", "deeper", "--split", "val", "--update"]) == 0
    out = capsys.readouterr().out
    assert "conv2d_1 (Conv2D + relu)" in out and "update applied" in out and "conv2d_1 · update" in out
    assert main(["explain", "--data", str(medmnist_dir), "--index", "100000"]) == 2
    assert "--index 100000 is out of range" in capsys.readouterr().err
