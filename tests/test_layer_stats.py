"""Tests for tinycnn.callbacks.LayerStats (per-layer statistics of training steps) and its plot.

Every expectation is computed here, independently: layer outputs from running the layers by hand,
gradients from the softmax cross-entropy formula in NumPy, update ratios from weights copied
before and after ``train_on_batch``, dead units from hand-made weights.
"""

import math

import numpy as np
import pytest
from matplotlib.figure import Figure

import tinycnn as tc
from tinycnn import plot, zoo
from tinycnn.callbacks import LayerStats, summarize
from tinycnn.layers import Conv2D, Dense, Flatten, MaxPooling2D
from tinycnn.model import Sequential


def _data(n=32, shape=(12, 12, 1), classes=2, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *shape)).astype(np.float32), rng.integers(0, classes, n)


def _small_cnn(seed=0, optimizer="adam"):
    model = Sequential([Conv2D(4, 3, activation="relu"), MaxPooling2D(2), Flatten(),
                        Dense(8, activation="relu"), Dense(2, activation="softmax")],
                       input_shape=(12, 12, 1), seed=seed)
    model.compile(optimizer)
    return model


def _outputs_by_hand(model, x):
    """Each layer's output, running the layers one by one (the model has no Dropout, so a
    training-mode pass is deterministic)."""
    outs, out = {}, x
    with tc.teaching():
        for layer in model.layers:
            out = layer.forward(out, training=True)
            outs[layer.name] = out.copy()
    return outs


# -- arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, word", [({"every": 0}, "every"), ({"every": 2.5}, "every"),
                                          ({"every": True}, "every"), ({"bins": 0}, "bins"),
                                          ({"bins": "10"}, "bins")])
def test_bad_arguments_are_refused_by_name(kwargs, word):
    with pytest.raises(ValueError, match=word):
        LayerStats(**kwargs)


def test_attach_refuses_something_that_is_not_a_model():
    with pytest.raises(TypeError, match="Sequential"):
        LayerStats().attach(object())


def test_queries_before_any_record_say_so():
    stats = LayerStats()
    with pytest.raises(ValueError, match="nothing recorded"):
        stats.series("dense", "activation_std")
    with pytest.raises(ValueError, match="nothing recorded"):
        stats.table()


# -- activations ------------------------------------------------------------------------------


@pytest.mark.parametrize("teaching", [True, False], ids=["teaching", "kernels"])
def test_activation_statistics_match_the_layers_outputs(teaching):
    model = _small_cnn()
    x, y = _data()
    expected = _outputs_by_hand(model, x)          # same weights, same batch, before the step
    stats = LayerStats(every=1, bins=16)
    with tc.teaching(teaching), stats.watch(model):
        model.train_on_batch(x, y)
    (record,) = stats.records
    # outside teaching mode the recorded step runs unfused: every layer is seen on its own
    assert list(record.layers) == [layer.name for layer in model.layers]
    for name, out in expected.items():
        got = record.layers[name].activation
        assert got.mean == pytest.approx(float(out.astype(np.float64).mean()), rel=1e-5, abs=1e-7)
        assert got.std == pytest.approx(float(out.astype(np.float64).std()), rel=1e-5, abs=1e-7)
        assert (got.min, got.max) == pytest.approx((float(out.min()), float(out.max())), rel=1e-5, abs=1e-7)
        assert record.layers[name].zeros == pytest.approx(float(np.mean(out == 0)), abs=2 / out.size)
        assert got.counts.sum() == out.size and len(got.counts) == 16 and len(got.edges) == 17
    if teaching:                                   # identical arithmetic: identical histograms
        conv = expected["conv2d"]
        counts, edges = np.histogram(conv, bins=16, range=(conv.min(), conv.max()))
        np.testing.assert_array_equal(record.layers["conv2d"].activation.counts, counts)
        np.testing.assert_allclose(record.layers["conv2d"].activation.edges, edges)
    assert model.fuse is True                      # put back after the step


def test_summarize_of_a_known_array():
    s = summarize(np.array([0.0, 0.0, 1.0, 3.0]), bins=3)
    assert (s.mean, s.std, s.min, s.max) == (1.0, pytest.approx(math.sqrt(1.5)), 0.0, 3.0)
    np.testing.assert_array_equal(s.counts, [2, 1, 1])
    np.testing.assert_allclose(s.edges, [0, 1, 2, 3])
    nonfinite = summarize(np.array([1.0, np.inf]))
    assert nonfinite.counts is None and nonfinite.edges is None


# -- dead units -------------------------------------------------------------------------------


def test_dead_relu_fraction_on_hand_made_weights():
    """Unit 0 has bias -100 (zero for every sample): dead. Unit 1 is zero for the negative
    samples only: not dead. Units 2 and 3 are always positive."""
    x = np.array([[1.0], [-1.0], [2.0], [-3.0]], dtype=np.float32)
    y = np.array([0, 1, 0, 1])
    model = Sequential([Dense(4, activation="relu"), Dense(2, activation="softmax")], input_shape=(1,), seed=0)
    model.compile(tc.SGD(0.01))
    model.layers[0].params["kernel"][...] = [[1.0, 1.0, 0.0, 0.5]]
    model.layers[0].params["bias"][...] = [-100.0, 0.0, 1.0, 5.0]
    stats = LayerStats(every=1)
    with stats.watch(model):
        model.train_on_batch(x, y)
    dense = stats.records[0].layers["dense"]
    assert dense.dead == 0.25 and dense.dead_channels == 0.25
    assert dense.zeros == pytest.approx((4 + 2) / 16)       # unit 0 four times, unit 1 twice
    assert stats.records[0].layers["dense_1"].dead is None  # a softmax output: no dead units
    assert stats.series("dense", "dead")[0] == 0.25
    assert math.isnan(stats.series("dense_1", "dead")[0])


def test_dead_filter_of_a_convolution():
    x, y = _data(n=8)
    model = _small_cnn()
    model.layers[0].params["bias"][...] = [-100.0, 0.0, 0.0, 0.0]   # filter 0 never fires
    outs = _outputs_by_hand(model, x)["conv2d"]
    stats = LayerStats(every=1)
    with stats.watch(model):
        model.train_on_batch(x, y)
    conv = stats.records[0].layers["conv2d"]
    assert conv.dead_channels == 0.25
    assert conv.dead == pytest.approx(float(np.mean(np.all(outs == 0, axis=0))))
    assert conv.dead >= 0.25


# -- gradients --------------------------------------------------------------------------------


def test_gradients_match_the_softmax_cross_entropy_formula():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 5)).astype(np.float64)
    y = rng.integers(0, 3, 16)
    model = Sequential([Dense(6, activation="relu"), Dense(3, activation="softmax")], input_shape=(5,),
                       seed=1, dtype="float64")
    model.compile(tc.SGD(0.1))
    w1, b1, w2, b2 = model.get_weights()
    a1 = np.maximum(x @ w1 + b1, 0)
    z2 = a1 @ w2 + b2
    p = np.exp(z2 - z2.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dlogits = (p - np.eye(3)[y]) / len(y)
    da1 = dlogits @ w2.T                         # what the first Dense layer's backward receives
    stats = LayerStats(every=1)
    with stats.watch(model):
        model.train_on_batch(x, y)
    record = stats.records[0]
    last, first = record.layers["dense_1"], record.layers["dense"]
    assert last.gradient_of == "preactivation" and first.gradient_of == "output"
    assert last.gradient.std == pytest.approx(dlogits.std(), rel=1e-10)
    assert last.gradient.mean == pytest.approx(dlogits.mean(), abs=1e-15)
    assert first.gradient.std == pytest.approx(da1.std(), rel=1e-10)
    assert first.gradient.mean == pytest.approx(da1.mean(), rel=1e-10)
    assert record.loss == pytest.approx(float(-np.mean(np.log(p[np.arange(16), y]))), rel=1e-12)
    text = stats.table()
    assert "dense_1" in text and "dL/d(logits)" in text


# -- update-to-weight ratio -------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", [tc.SGD(0.05), tc.Adam(1e-3)], ids=["sgd", "adam"])
def test_update_ratio_from_weights_saved_before_and_after(optimizer):
    model = _small_cnn(optimizer=optimizer)
    x, y = _data()
    model.train_on_batch(x, y)                   # biases leave 0, so every ratio is defined
    names = [name for name, _ in model.named_params()]
    before = [w.astype(np.float64) for w in model.get_weights()]
    stats = LayerStats(every=1)
    with stats.watch(model):
        model.train_on_batch(x, y)
    after = [w.astype(np.float64) for w in model.get_weights()]
    record = stats.records[0]
    assert list(record.weights) == names
    for name, b, a in zip(names, before, after):
        expected = np.linalg.norm(a - b) / np.linalg.norm(b)
        assert record.weights[name].ratio == pytest.approx(expected, rel=1e-6)
        assert record.weights[name].norm == pytest.approx(np.linalg.norm(b), rel=1e-6)
        assert stats.series(name, "ratio")[0] == record.weights[name].ratio
    if isinstance(optimizer, tc.SGD):            # plain SGD: ΔW = -lr·dW exactly
        for w in record.weights.values():
            assert w.update_norm == pytest.approx(0.05 * w.grad_norm, rel=1e-5)


def test_update_ratio_is_nan_while_the_weights_are_zero():
    model = _small_cnn()
    stats = LayerStats(every=1)
    with stats.watch(model):
        model.train_on_batch(*_data())
    weights = stats.records[0].weights
    assert math.isnan(weights["dense/bias"].ratio) and weights["dense/bias"].norm == 0
    assert weights["dense/bias"].update_norm > 0
    assert math.isfinite(weights["dense/kernel"].ratio)


# -- which steps, and what it costs -----------------------------------------------------------


class _Spy:
    """An observer around fit: which steps ran forward, in order, per training step."""

    def __init__(self):
        self.passes, self.current = [], []

    def before(self, step, phase):
        pass

    def after(self, step, phase, inputs, output):
        if phase == "forward":
            self.current.append(step.name)
        elif phase == "optimizer":
            self.passes.append(self.current)
            self.current = []


class _CountingStats(LayerStats):
    calls = 0

    def summarize(self, a):
        type(self).calls += 1
        return super().summarize(a)


def test_records_every_nth_step_and_runs_only_those_unfused():
    model = _small_cnn()
    x, y = _data(n=96)
    stats, spy = LayerStats(every=4), _Spy()
    with model.observe(spy):                     # LayerStats hands every step on to it
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[stats])
    assert stats.steps_seen == 12 and len(spy.passes) == 12
    np.testing.assert_array_equal(stats.steps, [1, 5, 9])
    assert [r.epoch for r in stats.records] == [1, 1, 2]
    unfused = ["conv2d", "max_pool2d", "flatten", "dense", "dense_1"]
    fused = ["conv2d+max_pool2d", "flatten", "dense", "dense_1"]
    for step, names in enumerate(spy.passes, start=1):
        assert names == (unfused if step in (1, 5, 9) else fused), step
    assert model.fuse is True and model._observer is not stats


def test_a_large_every_costs_nothing_after_the_first_step():
    model = _small_cnn()
    x, y = _data(n=64)
    _CountingStats.calls = 0
    stats = _CountingStats(every=1000)
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[stats])
    assert stats.steps_seen == 24 and len(stats.records) == 1
    # step 1 only: one output and one gradient summary per layer (5 layers)
    assert _CountingStats.calls == 10


def test_counting_continues_over_fits_until_reset():
    model = _small_cnn()
    x, y = _data(n=32)
    stats = LayerStats(every=3)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[stats])
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[stats])
    np.testing.assert_array_equal(stats.steps, [1, 4, 7])
    stats.reset()
    assert stats.records == [] and stats.steps_seen == 0
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[stats])
    np.testing.assert_array_equal(stats.steps, [1, 4])


def test_a_stale_attachment_is_replaced_not_stacked():
    """A fit that dies leaves the probe in; the next attach detaches it first."""
    model = _small_cnn()
    before = model._observer
    stats = LayerStats(every=1)
    stats.attach(model)                           # as after a fit that raised
    model.fit(*_data(n=16), epochs=1, batch_size=8, verbose=0, callbacks=[stats])
    assert model._observer is before and model.fuse is True
    assert len(stats.records) == 2


def test_validation_passes_are_not_recorded_as_steps():
    """fit's validation forward passes (no loss, no update) come between two steps; the record
    of the next step holds that step's training batch, not the validation batch."""
    model = _small_cnn()
    x, y = _data(n=32)
    x_val = x[16:24] * 3.0
    stats = LayerStats(every=1)
    saved = []
    model.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0, validation_data=(x_val, y[16:24]),
              callbacks=[stats, lambda m, epoch, logs: saved.append(m.get_weights())])
    assert len(stats.records) == 4
    replica = _small_cnn()
    replica.set_weights(saved[0])                  # the weights step 3 started from
    step3 = _outputs_by_hand(replica, x[:16])      # step 3 = epoch 2's first batch (no shuffling)
    for name, out in step3.items():
        assert stats.records[2].layers[name].activation.mean == pytest.approx(float(out.mean()), rel=1e-5, abs=1e-7)
    val = _outputs_by_hand(replica, x_val)["dense"]
    assert stats.records[2].layers["dense"].activation.mean != pytest.approx(float(val.mean()), rel=1e-3)


def test_teaching_mode_training_is_unchanged_bit_for_bit():
    x, y = _data(n=64)
    runs = []
    for callbacks in ([], [LayerStats(every=2)]):
        model = _small_cnn(seed=5)
        with tc.teaching():
            model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=callbacks)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_kernel_mode_training_agrees_to_float_rounding():
    x, y = _data(n=64)
    runs = []
    for callbacks in ([], [LayerStats(every=2)]):
        model = zoo.seed_model(2, input_shape=(12, 12, 1), seed=5)
        model.compile("adam")
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=callbacks)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# -- reading the records ----------------------------------------------------------------------


def test_series_and_table():
    model = _small_cnn()
    stats = LayerStats(every=2)
    model.fit(*_data(n=64), epochs=1, batch_size=16, verbose=0, callbacks=[stats])
    assert stats.layer_names == [layer.name for layer in model.layers]
    assert stats.weight_names == [name for name, _ in model.named_params()]
    stds = stats.series("conv2d", "activation_std")
    assert stds.shape == (2,) and np.all(stds > 0)
    assert stats.series("conv2d", "gradient_std")[0] == stats.records[0].layers["conv2d"].gradient.std
    with pytest.raises(ValueError, match="unknown field"):
        stats.series("conv2d", "variance")
    with pytest.raises(ValueError, match="no layer"):
        stats.series("conv9", "activation_std")
    with pytest.raises(ValueError, match="no weight array"):
        stats.series("conv9/kernel", "ratio")
    text = stats.table(0)
    assert text.startswith("step 1, epoch 1") and "conv2d/kernel" in text and "max_pool2d" in text


# -- the plot ---------------------------------------------------------------------------------


def test_layer_stats_plot(tmp_path):
    model = _small_cnn()
    stats = LayerStats(every=2)
    model.fit(*_data(n=64), epochs=1, batch_size=16, verbose=0, callbacks=[stats])
    fig = plot.layer_stats(stats)
    assert isinstance(fig, Figure)
    shown = 4                                      # every layer but Flatten
    assert len(fig.axes) == 2 * shown + 1
    ratio_axes = fig.axes[-1]
    assert ratio_axes.get_yscale() == "log"
    plotted = [line.get_label() for line in ratio_axes.get_lines()]
    assert set(stats.weight_names) <= set(plotted)
    assert "conv2d" in fig.axes[0].get_title()
    path = plot.layer_stats(stats, tmp_path / "stats.png", index=0, layers=["conv2d", "dense"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no layer"):
        plot.layer_stats(stats, layers=["nope"])
    with pytest.raises(ValueError, match="index"):
        plot.layer_stats(stats, index=5)
    with pytest.raises(ValueError, match="recorded no step"):
        plot.layer_stats(LayerStats())
    with pytest.raises(TypeError, match="LayerStats"):
        plot.layer_stats({"records": []})
