"""Weight decay (L2 vs AdamW), learning-rate schedules, early stopping, class weights, balanced
sampling, and stratified splits / cross-validation."""

import math

import numpy as np
import pytest

import tinycnn as tc
from tinycnn.training import epoch_order
from tinycnn.callbacks import EarlyStopping, LearningRateScheduler, cosine_decay, step_decay
from tinycnn.gradcheck import check_model
from tinycnn.losses import balanced_class_weights
from tinycnn.model_selection import cross_validate, stratified_kfold, stratified_split


def tiny(seed=0, optimizer="adam", **dense_kwargs):
    model = tc.Sequential([tc.Flatten(), tc.Dense(6, activation="relu", **dense_kwargs),
                           tc.Dense(2, activation="softmax")], input_shape=(3, 3, 1), seed=seed)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    return model


RNG = np.random.default_rng(0)
X = RNG.random((60, 3, 3, 1)).astype(np.float32)
Y = (X.reshape(60, -1).mean(axis=1) > 0.5).astype(int)


def test_l2_penalty_is_added_to_loss_and_gradient():
    plain, reg = tiny(), tiny(kernel_regularizer=0.1)
    loss_plain, _ = plain.loss_and_grads(X, Y)
    loss_reg, _ = reg.loss_and_grads(X, Y)
    kernel = reg.layers[1].params["kernel"]
    assert loss_reg == pytest.approx(loss_plain + 0.1 * np.sum(kernel.astype(np.float64) ** 2), rel=1e-6)
    np.testing.assert_allclose(reg.layers[1].grads["kernel"], plain.layers[1].grads["kernel"] + 0.2 * kernel, rtol=1e-5)
    np.testing.assert_array_equal(reg.layers[2].grads["kernel"], plain.layers[2].grads["kernel"])   # no regularizer there


def test_l2_model_gradient_check():
    model = tc.Sequential([tc.Flatten(), tc.Dense(4, activation="tanh", kernel_regularizer=0.3),
                           tc.Dense(2, activation="softmax", kernel_regularizer=0.01)],
                          input_shape=(3, 3, 1), seed=0, dtype="float64")
    model.compile("adam", "sparse_categorical_crossentropy")
    assert max(check_model(model, X[:8].astype(np.float64), Y[:8], h=1e-6).values()) < 1e-7


def test_adamw_decays_decoupled_from_the_gradient():
    """Keras 3's AdamW: w ← w − lr·wd·w, then the Adam step (zero gradient: only the decay acts)."""
    p = np.array([1.0, -2.0])
    opt = tc.optimizers.AdamW(learning_rate=0.1, weight_decay=0.5)
    opt.apply([p], [np.zeros(2)])
    np.testing.assert_allclose(p, [1.0 - 0.05, -2.0 + 0.1])
    g = np.array([0.3, -0.7])
    q, r = np.array([1.0, -2.0]), np.array([1.0, -2.0])
    tc.optimizers.AdamW(0.1, weight_decay=0.5).apply([q], [g])
    tc.Adam(0.1).apply([r], [g])
    np.testing.assert_allclose(q, r - 0.05 * np.array([1.0, -2.0]))


def test_schedules():
    step = step_decay(0.001, epochs=100)
    assert [step(e) for e in (1, 50, 51, 75, 76, 100)] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5])
    cos = cosine_decay(0.01, epochs=10, final=0.001)
    assert cos(1) == pytest.approx(0.01)
    assert cos(6) == pytest.approx(0.001 + 0.009 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(cos(e) > cos(e + 1) for e in range(1, 10))


def test_learning_rate_scheduler_sets_and_records_the_rate():
    model = tiny(optimizer=tc.SGD(0.1))
    history = model.fit(X, Y, epochs=4, batch_size=20, verbose=0,
                        callbacks=[LearningRateScheduler(step_decay(0.1, epochs=4))])
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.01, 0.001])


def test_early_stopping_restores_the_best_weights():
    model = tiny(optimizer=tc.Adam(0.05))
    snapshots = {}
    history = model.fit(X, Y, epochs=30, batch_size=10, validation_data=(X[::-1][:15], Y[::-1][:15]), verbose=0,
                        callbacks=[lambda m, e, logs: snapshots.__setitem__(e, m.get_weights()),
                                   EarlyStopping("val_loss", patience=2, restore_best_weights=True)])
    best_epoch = int(np.argmin(history["val_loss"])) + 1
    epochs_run = len(history["loss"])
    if epochs_run < 30:
        assert epochs_run == best_epoch + 3 and "early stopping" in model.stop_reason
    for a, b in zip(model.get_weights(), snapshots[best_epoch]):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_stops():
    model = tiny()
    calls = iter([0.5, 0.4, 0.45, 0.41, 0.42, 0.3])

    def fake_metric(m, e, logs):
        logs["val_metric"] = next(calls)

    history = model.fit(X, Y, epochs=6, verbose=0, callbacks=[fake_metric, EarlyStopping("val_metric", mode="min",
                                                                                          patience=2)])
    assert len(history["loss"]) == 5                     # best at 2, no gain at 3, 4, 5 -> stop after 5
    assert "has not improved since epoch 2" in model.stop_reason


def test_balanced_class_weights_and_weighted_loss():
    y = np.array([0, 0, 0, 1])
    w = balanced_class_weights(y, 2)
    np.testing.assert_allclose(w, [4 / 6, 4 / 2])
    logits = np.random.default_rng(0).standard_normal((4, 2))
    loss = tc.SoftmaxCrossEntropy()
    weighted = loss.forward(logits, y, w[y])
    per_sample = [tc.SoftmaxCrossEntropy().forward(logits[i:i + 1], y[i:i + 1]) for i in range(4)]
    assert weighted == pytest.approx(np.sum(w[y] * per_sample) / 4)
    grad = loss.backward()
    unweighted = tc.SoftmaxCrossEntropy()
    unweighted.forward(logits, y)
    np.testing.assert_allclose(grad, unweighted.backward() * w[y][:, None])


def test_class_weight_in_fit_shifts_predictions_toward_the_rare_class():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, 2, 2, 1)).astype(np.float32)
    y = (x[:, 0, 0, 0] + rng.standard_normal(400) > 1.5).astype(int)     # ~14% positives, overlapping
    models = {}
    for weighting in (None, "balanced"):
        m = tc.Sequential([tc.Flatten(), tc.Dense(2, activation="softmax")], input_shape=(2, 2, 1), seed=3)
        m.compile(tc.Adam(0.05), "sparse_categorical_crossentropy")
        m.fit(x, y, epochs=20, batch_size=32, verbose=0, class_weight=weighting)
        models[weighting] = np.mean(m.predict(x).argmax(axis=1) == 1)
    assert models["balanced"] > models[None] + 0.15            # many more positive calls
    with pytest.raises(ValueError, match="class_weight has class 5"):
        tiny().fit(X, Y, verbose=0, class_weight={5: 1.0})
    with pytest.raises(ValueError, match="unknown class_weight 'equal'"):
        tiny().fit(X, Y, verbose=0, class_weight="equal")


def test_balanced_sampler_draws_classes_equally():
    y = np.array([0] * 90 + [1] * 10)
    model = tiny()
    orders = [epoch_order(y, model.rng, True, "balanced") for _ in range(50)]
    share = np.mean([np.mean(y[o] == 1) for o in orders])
    assert 0.45 < share < 0.55
    with pytest.raises(ValueError, match="unknown sampler 'smote'"):
        tiny().fit(X, Y, verbose=0, sampler="smote")


def test_oversampler_keeps_every_sample_and_fills_up_smaller_classes():
    y = np.array([0] * 30 + [1] * 7 + [2] * 12)
    order = epoch_order(y, tiny().rng, True, "oversample")
    assert len(order) == 90 and np.bincount(y[order]).tolist() == [30, 30, 30]
    assert set(np.flatnonzero(y == 0)) == set(order[y[order] == 0])        # the largest class: each once
    assert set(order[y[order] == 1]) <= set(np.flatnonzero(y == 1))        # drawn from its own class only


def test_stratified_split_and_kfold_keep_class_proportions():
    y = np.array([0] * 80 + [1] * 20)
    train, val = stratified_split(y, 0.25, np.random.default_rng(0))
    assert len(val) == 25 and np.sum(y[val] == 1) == 5 and set(train).isdisjoint(val)
    folds = stratified_kfold(y, 5, np.random.default_rng(0))
    all_val = np.concatenate([v for _, v in folds])
    assert sorted(all_val) == list(range(100))
    assert all(np.sum(y[v] == 1) == 4 and len(v) == 20 for _, v in folds)
    with pytest.raises(ValueError, match="smallest class has 2"):
        stratified_kfold(np.array([0] * 10 + [1] * 2), 5)


def test_cross_validate_reports_mean_and_std_of_official_metrics():
    result = cross_validate(lambda fold: tiny(seed=fold), X, Y, "binary-class", k=3, seed=0,
                            fit_kwargs={"epochs": 3, "batch_size": 10})
    assert len(result["folds"]) == 3
    aucs = [f["auc"] for f in result["folds"]]
    assert result["auc"] == pytest.approx((np.mean(aucs), np.std(aucs, ddof=1)))
