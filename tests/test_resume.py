"""Resume, checkpoints and the finiteness of the update, tried as an unlucky user would.

* the README's checkpoint/resume example (a cosine schedule, early stopping, class weights, a best
  checkpoint), interrupted after epoch 2 and resumed: bit for bit the uninterrupted run;
* a run that early stopping ended, killed before ``fit`` returned, stays stopped when resumed;
* a laptop that dies mid-epoch (SIGKILL of a training process) loses nothing but that epoch;
* a checkpoint that is refused — damaged or ill-typed training state — leaves the model exactly as
  it was, with one ModelFileError naming the field, before any training;
* an optimizer step that overflows (Adam's second moment, SGD with a huge learning rate) raises
  NonFiniteError and puts back the weights and optimizer state of the last finite step.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tinycnn as tc
from tinycnn.io import HEADER, ModelFileError
from tinycnn.zoo import seed_model

from .conftest import REPO, load_script
from .test_model import small_problem

X, Y = small_problem()                    # 70 images 8×8×1, labels 0/1 (separable)
VALIDATION = (X[:20], 1 - Y[:20])         # flipped labels: val_loss rises as the model learns → early stopping


def fresh(seed=0, optimizer=None, dropout=0.0):
    model = seed_model(2, input_shape=(8, 8, 1), seed=seed, dropout=dropout)
    model.compile(optimizer or tc.Adam(1e-3), "sparse_categorical_crossentropy")
    return model


class Crash(tc.callbacks.Callback):
    """The process dies (KeyboardInterrupt, not caught by fit) at the start of epoch ``at_epoch``,
    or in on_train_end — after the last checkpoint was written but before fit returned."""

    def __init__(self, at_epoch=None, at_train_end=False):
        self.at_epoch, self.at_train_end = at_epoch, at_train_end
        self.epochs = []                          # the epochs begun

    def on_epoch_begin(self, model, epoch):
        self.epochs.append(epoch)
        if epoch == self.at_epoch:
            raise KeyboardInterrupt

    def on_train_end(self, model):
        if self.at_train_end:
            raise KeyboardInterrupt


def readme_settings(crash):
    """The README's settings (section "Training safely"), scaled to a 70-image problem."""
    return dict(epochs=30, batch_size=16, verbose=0, validation_data=VALIDATION, class_weight="balanced",
                callbacks=[crash,
                           tc.callbacks.LearningRateScheduler(tc.callbacks.cosine_decay(1e-3, 30)),
                           tc.callbacks.EarlyStopping("val_loss", patience=5)])


def optimizer_state(model):
    return model.optimizer.iterations, model.optimizer.learning_rate, \
        [{k: v.copy() for k, v in slots.items()} for slots in (model.optimizer.slots or [])]


def assert_same_state(a, b):
    """Weights, optimizer step count, learning rate and slots, random generator: all bit for bit."""
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    (ia, lra, sa), (ib, lrb, sb) = optimizer_state(a), optimizer_state(b)
    assert (ia, lra) == (ib, lrb)
    assert len(sa) == len(sb)
    for x, y in zip(sa, sb):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    assert a.rng.bit_generator.state == b.rng.bit_generator.state


# --------------------------------------------------------------------------------------------
# The README's example, interrupted and resumed
# --------------------------------------------------------------------------------------------
def test_readme_example_interrupted_after_epoch_2_and_resumed_equals_the_uninterrupted_run(tmp_path):
    straight = fresh()
    full = straight.fit(X, Y, **readme_settings(Crash()))
    assert straight.stop_reason.startswith("early stopping after epoch")       # the example's early stopping fires
    assert len(set(full["lr"])) == len(full["lr"]) > 2                          # and its schedule moves the rate

    first = fresh()
    with pytest.raises(KeyboardInterrupt):
        first.fit(X, Y, checkpoint=tmp_path / "ckpt.npz", checkpoint_best=tmp_path / "best.npz",
                  monitor="val_loss", **readme_settings(Crash(at_epoch=3)))

    resumed = fresh(seed=99)                                  # the state comes from the file, not the seed
    history = resumed.fit(X, Y, resume=tmp_path / "ckpt.npz", checkpoint=tmp_path / "ckpt.npz",
                          checkpoint_best=tmp_path / "best.npz", monitor="val_loss", **readme_settings(Crash()))
    assert history == full
    assert resumed.stop_reason == straight.stop_reason
    assert_same_state(resumed, straight)


def test_a_stopped_run_killed_before_fit_returned_stays_stopped_when_resumed(tmp_path):
    """Early stopping fired, the checkpoint of that epoch was written, then the process died
    before fit returned (and before the best weights were put back): resuming must not train
    further, and must end with the best weights, as the uninterrupted run does."""
    straight = fresh()
    full = straight.fit(X, Y, **readme_settings(Crash()))
    stopped_after = len(full["loss"])
    assert stopped_after < 30

    first = fresh()
    with pytest.raises(KeyboardInterrupt):
        first.fit(X, Y, checkpoint=tmp_path / "ckpt.npz", **readme_settings(Crash(at_train_end=True)))
    with np.load(tmp_path / "ckpt.npz", allow_pickle=False) as npz:
        state = json.loads(str(npz[HEADER]))["training_state"]
    assert state["epoch"] == stopped_after and state["stop_reason"] == straight.stop_reason

    resumed, crash = fresh(seed=99), Crash()
    history = resumed.fit(X, Y, resume=tmp_path / "ckpt.npz", **readme_settings(crash))
    assert crash.epochs == []                                # no further epoch
    assert history == full and resumed.stop_reason == straight.stop_reason
    assert_same_state(resumed, straight)                     # the best weights, put back by on_train_end


def test_a_finished_run_killed_before_fit_returned_resumes_to_the_same_end(tmp_path):
    straight = fresh()
    settings = dict(epochs=3, batch_size=16, verbose=0, validation_data=VALIDATION)
    full = straight.fit(X, Y, callbacks=[Crash(), tc.callbacks.EarlyStopping(patience=10)], **settings)
    first = fresh()
    with pytest.raises(KeyboardInterrupt):
        first.fit(X, Y, checkpoint=tmp_path / "c.npz",
                  callbacks=[Crash(at_train_end=True), tc.callbacks.EarlyStopping(patience=10)], **settings)
    resumed = fresh(seed=5)
    assert resumed.fit(X, Y, resume=tmp_path / "c.npz",
                       callbacks=[Crash(), tc.callbacks.EarlyStopping(patience=10)], **settings) == full
    assert_same_state(resumed, straight)


LAPTOP = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {root!r})
    import tinycnn as tc
    from tests.test_resume import X, Y, fresh, readme_settings, Crash

    calls = {{"n": 0}}
    def augment(batch, rng):                 # the battery dies in step 2 of epoch 4 (5 steps per epoch)
        calls["n"] += 1
        if calls["n"] == 3 * 5 + 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return batch
    fresh().fit(X, Y, checkpoint={checkpoint!r}, augment=augment, **readme_settings(Crash()))
""")


def test_a_laptop_that_dies_mid_epoch_loses_only_that_epoch(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    checkpoint = str(tmp_path / "ckpt.npz")
    script = LAPTOP.format(root=root, checkpoint=checkpoint)
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]       # the last complete checkpoint only

    def identity(batch, rng):
        return batch
    straight = fresh()
    full = straight.fit(X, Y, augment=identity, **readme_settings(Crash()))
    resumed = fresh(seed=99)
    assert resumed.fit(X, Y, resume=checkpoint, augment=identity, **readme_settings(Crash())) == full
    assert_same_state(resumed, straight)


# --------------------------------------------------------------------------------------------
# A refused checkpoint changes nothing; ill-typed training state is named
# --------------------------------------------------------------------------------------------
def rewrite(src, dst, doc_change=None, array_change=None):
    """Copy checkpoint ``src`` to ``dst`` with its JSON document and/or arrays changed."""
    with np.load(src, allow_pickle=False) as npz:
        arrays = dict(npz)
    doc = json.loads(str(arrays.pop(HEADER)))
    if doc_change:
        doc_change(doc)
    if array_change:
        array_change(arrays)
    np.savez(dst, **arrays, **{HEADER: np.array(json.dumps(doc))})
    return dst


def set_path(*keys_and_value):
    *keys, value = keys_and_value

    def change(doc):
        target = doc
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return change


def early_stopping_state(key, value):
    return lambda doc: doc["training_state"]["callbacks"][0]["state"].__setitem__(key, value)


def set_array(name, value):
    return lambda arrays: arrays.__setitem__(name, value(arrays[name]))


ILL_TYPED = {
    "damaged rng": (set_path("training_state", "rng", "state", "state", "not a number"), None, r"'rng'"),
    "rng of another kind": (set_path("training_state", "rng", "bit_generator", "MT19937"), None, r"'rng'"),
    "rng a list": (set_path("training_state", "rng", [1, 2]), None, r"'rng'"),
    "epoch a string": (set_path("training_state", "epoch", "2"), None, r"'epoch' must be an int >= 0, got '2'"),
    "epoch negative": (set_path("training_state", "epoch", -1), None, r"'epoch' must be an int >= 0, got -1"),
    "epoch a bool": (set_path("training_state", "epoch", True), None, r"'epoch' must be an int >= 0, got True"),
    "epoch a float": (set_path("training_state", "epoch", 2.0), None, r"'epoch'"),
    "epoch beyond the history": (set_path("training_state", "epoch", 1), None, r"history\['loss'\] has 2 values"),
    "history a list": (set_path("training_state", "history", [0.5, 0.4]), None, r"'history' must be a dict"),
    "history values not lists": (set_path("training_state", "history", {"loss": 0.5}), None,
                                 r"history\['loss'\] must be a list"),
    "history of strings": (set_path("training_state", "history", "loss", ["a", "b"]), None,
                           r"history\['loss'\] must hold numbers"),
    "history too short": (set_path("training_state", "history", "loss", [0.5]), None,
                          r"history\['loss'\] must have one value per completed epoch"),
    "best a string": (set_path("training_state", "best", "low"), None, r"'best'"),
    "iterations negative": (set_path("compile", "optimizer", "iterations", -3), None, r"'iterations'.*got -3"),
    "iterations a list": (set_path("compile", "optimizer", "iterations", [10]), None, r"'iterations'.*got \[10\]"),
    "iterations a bool": (set_path("compile", "optimizer", "iterations", True), None, r"'iterations'"),
    "slots of strings": (None, set_array("optimizer/0/m", lambda a: np.full(a.shape, "x")), r"optimizer/0/m"),
    "slots of the wrong shape": (None, set_array("optimizer/1/v", lambda a: np.zeros(a.shape + (2,), a.dtype)),
                                 r"optimizer/1/v has shape"),
    "slots of the wrong dtype": (None, set_array("optimizer/2/m", lambda a: a.astype(np.float64)),
                                 r"optimizer/2/m has dtype float64"),
    "slots of ints": (None, set_array("optimizer/2/m", lambda a: a.astype(np.int32)), r"optimizer/2/m has dtype"),
    "callbacks a dict": (set_path("training_state", "callbacks", {"0": 1}), None, r"'callbacks' must be a list"),
    "callback arrays count a string": (lambda d: d["training_state"]["callbacks"][0].__setitem__("arrays", "2"),
                                       None, r"callbacks\[0\]"),
    "early stopping wait a string": (early_stopping_state("wait", "1"), None, r"EarlyStopping: saved state 'wait'"),
    "early stopping wait negative": (early_stopping_state("wait", -1), None, r"'wait' must be an int >= 0"),
    "early stopping best a string": (early_stopping_state("best", "0.3"), None, r"'best' must be a number or null"),
    "early stopping best epoch missing": (lambda d: d["training_state"]["callbacks"][0]["state"].pop("best_epoch"),
                                          None, r"'best_epoch'"),
    "early stopping weights of the wrong shape": (None, set_array("callbacks/0/0", lambda a: a[:1]),
                                                  r"best weights do not match"),
    "stop reason a number": (set_path("training_state", "stop_reason", 5), None, r"'stop_reason'"),
    "fit arguments a string": (set_path("training_state", "fit", "batch_size=16"), None, r"'fit'"),
    "layer rngs a list": (set_path("training_state", "layer_rngs", [1]), None, r"'layer_rngs'"),
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint after 2 epochs of a run with early stopping (which has best weights to save)."""
    path = tmp_path_factory.mktemp("ckpt") / "ckpt.npz"
    fresh().fit(X, Y, epochs=2, batch_size=16, verbose=0, validation_data=VALIDATION, checkpoint=path,
                callbacks=[tc.callbacks.EarlyStopping("val_loss", patience=5)])
    return path


@pytest.mark.parametrize("what", ILL_TYPED)
def test_ill_typed_training_state_is_refused_naming_the_field_and_changes_nothing(what, checkpoint, tmp_path):
    doc_change, array_change, message = ILL_TYPED[what]
    damaged = rewrite(checkpoint, tmp_path / "damaged.npz", doc_change, array_change)
    model = fresh(seed=3)                                     # a model mid-training: slots, steps, a used rng
    model.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    before = fresh(seed=3)
    before.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    epochs_run = []
    with pytest.raises(ModelFileError, match=message):
        model.fit(X, Y, epochs=5, batch_size=16, verbose=0, validation_data=VALIDATION, resume=damaged,
                  callbacks=[tc.callbacks.EarlyStopping("val_loss", patience=5),
                             lambda m, epoch, logs: epochs_run.append(epoch)])
    assert epochs_run == []                                   # refused before any training
    assert_same_state(model, before)                          # and nothing of the model changed


def test_the_undamaged_checkpoint_of_the_refusal_tests_resumes(checkpoint):
    """The control for the test above: its refusals come from the damage, not the checkpoint."""
    model = fresh(seed=3)
    history = model.fit(X, Y, epochs=3, batch_size=16, verbose=0, validation_data=VALIDATION, resume=checkpoint,
                        callbacks=[tc.callbacks.EarlyStopping("val_loss", patience=5)])
    assert len(history["loss"]) == 3


def test_a_checkpoint_trained_further_than_asked_is_a_clear_error(checkpoint):
    model, before = fresh(seed=3), fresh(seed=3)
    with pytest.raises(ValueError, match=r"trained 2 epochs, more than epochs=1"):
        model.fit(X, Y, epochs=1, verbose=0, resume=checkpoint)
    assert_same_state(model, before)


# --------------------------------------------------------------------------------------------
# What may differ on resume, and what may not
# --------------------------------------------------------------------------------------------
def test_resume_restores_the_learning_rate_and_compares_only_what_defines_the_optimizer(tmp_path):
    """Without a schedule, the learning rate is part of the training state: a model compiled with
    another rate continues with the checkpoint's, as the uninterrupted run does. Another beta_1 is
    another optimizer: refused, naming it."""
    settings = dict(epochs=4, batch_size=16, verbose=0)
    straight = fresh(optimizer=tc.Adam(3e-3))
    full = straight.fit(X, Y, **settings)
    first = fresh(optimizer=tc.Adam(3e-3))
    with pytest.raises(KeyboardInterrupt):
        first.fit(X, Y, checkpoint=tmp_path / "c.npz", callbacks=[Crash(at_epoch=3)], **settings)
    resumed = fresh(optimizer=tc.Adam(1e-3))
    assert resumed.fit(X, Y, resume=tmp_path / "c.npz", callbacks=[Crash()], **settings) == full
    assert_same_state(resumed, straight)
    other = fresh(optimizer=tc.Adam(3e-3, beta_1=0.8))
    with pytest.raises(ModelFileError, match=r"trained with Adam\{'beta_1': 0.9.*compiled with Adam\{'beta_1': 0.8"):
        other.fit(X, Y, resume=tmp_path / "c.npz", **settings)


def test_dropout_generators_are_restored_by_position_not_by_name(tmp_path):
    """A model rebuilt in another session may name its layers differently; its Dropout must still
    draw the masks the uninterrupted run draws."""
    def model(name):
        m = tc.Sequential([tc.Flatten(), tc.Dense(16, activation="relu"), tc.Dropout(0.5, name=name),
                           tc.Dense(2, activation="softmax")], input_shape=(8, 8, 1), seed=1)
        m.compile("adam", "sparse_categorical_crossentropy")
        return m
    settings = dict(epochs=4, batch_size=16, verbose=0)
    straight = model("dropout")
    full = straight.fit(X, Y, **settings)
    first = model("dropout")
    with pytest.raises(KeyboardInterrupt):
        first.fit(X, Y, checkpoint=tmp_path / "c.npz", callbacks=[Crash(at_epoch=3)], **settings)
    resumed = model("dropout_7")
    assert resumed.fit(X, Y, resume=tmp_path / "c.npz", callbacks=[Crash()], **settings) == full
    assert_same_state(resumed, straight)


@pytest.mark.parametrize("change, message", [
    (dict(batch_size=8), r"batch_size 16 then, 8 now"),
    (dict(x=X[:60], y=Y[:60]), r"samples 70 then, 60 now"),
])
def test_resuming_with_another_batch_size_or_dataset_warns(tmp_path, change, message):
    fresh().fit(X, Y, epochs=2, batch_size=16, verbose=0, checkpoint=tmp_path / "c.npz")
    args = dict(x=X, y=Y, batch_size=16) | change
    with pytest.warns(UserWarning, match=message + r".*does not end as the uninterrupted run"):
        history = fresh().fit(args.pop("x"), args.pop("y"), epochs=3, verbose=0, resume=tmp_path / "c.npz", **args)
    assert len(history["loss"]) == 3


# --------------------------------------------------------------------------------------------
# The update itself: an overflow in the optimizer step
# --------------------------------------------------------------------------------------------
def dense_model(optimizer):
    model = tc.Sequential([tc.Flatten(), tc.Dense(2, activation="softmax")], input_shape=(8, 8, 1), seed=0)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    return model


def snapshot(model):
    return [w.copy() for w in model.get_weights()], optimizer_state(model)


def assert_snapshot(model, saved):
    weights, (iterations, lr, slots) = saved
    for a, b in zip(model.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(a, b)
    now = optimizer_state(model)
    assert now[:2] == (iterations, lr) and len(now[2]) == len(slots)
    for x, y in zip(now[2], slots):
        for key in y:
            np.testing.assert_array_equal(x[key], y[key])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")          # the overflow is the point
def test_a_huge_finite_gradient_that_overflows_adams_second_moment_restores_the_last_finite_step():
    """g ≈ 1e20 is finite in float32, g² is not: v becomes inf at this step (the weights stay
    finite), and every later step would turn the weights into NaN (inf − inf in v's update)."""
    model = dense_model(tc.Adam(1e-3))
    model.train_on_batch(X[:16], Y[:16])                      # a normal step: the slots exist
    saved = snapshot(model)
    huge, wrong = X[:16] * 1e20, 1 - Y[:16]                   # loss ~7e19, gradients ~5e19: finite
    assert np.isfinite(model.compute_loss(huge, wrong))
    with pytest.raises(tc.NonFiniteError, match=r"the update made 'dense/kernel, Adam's v' non-finite"):
        model.train_on_batch(huge, wrong)
    assert_snapshot(model, saved)
    model.train_on_batch(X[:16], Y[:16])                      # training can go on from there, finite
    assert all(np.isfinite(w).all() for w in model.get_weights())


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_fit_names_epoch_step_and_array_of_an_update_that_overflowed():
    x, y = X.copy(), Y.copy()
    x[20], y[20] = x[20] * 1e22, 1 - y[20]                     # one poisoned sample, in the second batch
    model = dense_model(tc.Adam(1e-3))
    with pytest.raises(tc.NonFiniteError, match=r"epoch 1, step 2: .*the update made 'dense/kernel, Adam's v'"):
        model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    assert model.optimizer.iterations == 1
    reference = dense_model(tc.Adam(1e-3))                     # exactly the weights after step 1
    reference.train_on_batch(x[:16], y[:16])
    assert_snapshot(model, snapshot(reference))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_with_a_huge_learning_rate_raises_instead_of_returning_inf_weights(momentum):
    model = dense_model(tc.SGD(1e38, momentum=momentum))
    saved = snapshot(model)
    with pytest.raises(tc.NonFiniteError, match=r"the update made 'dense/kernel.*' non-finite"):
        model.train_on_batch(X[:16] * 1e3, 1 - Y[:16])         # loss, gradients finite; lr·g is not
    assert_snapshot(model, saved)
    assert model.optimizer.slots is None                       # as before the first step


def test_huge_but_finite_weights_are_not_mistaken_for_an_overflow():
    """The cheap check (Σa², one BLAS call per array) overflows for weights near 1e20; it must then
    look again element by element, not raise."""
    model = dense_model(tc.SGD(1e-30))
    model.layers[1].params["kernel"][...] = 1e20
    model.train_on_batch(X[:16] * 1e-20, Y[:16])
    assert np.isfinite(model.layers[1].params["kernel"]).all()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("epochs, batch_size", [(1, 16), (3, 4)])
def test_fit_with_sgd_and_a_huge_learning_rate_ends_with_the_last_finite_weights(epochs, batch_size):
    """(1, 16): one step, found by the look at the end of the epoch; (3, 4): found when the next
    step's loss is not finite, then replayed to the step that overflowed."""
    model = dense_model(tc.SGD(1e38))
    saved = snapshot(model)
    with pytest.raises(tc.NonFiniteError, match=r"epoch 1, step 1: .*the update made 'dense/kernel' non-finite"):
        model.fit(X[:16] * 1e3, 1 - Y[:16], epochs=epochs, batch_size=batch_size, shuffle=False, verbose=0)
    assert_snapshot(model, saved)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_the_replay_that_finds_an_overflowing_update_is_not_recorded_by_layer_stats():
    x, y = X.copy(), Y.copy()
    x[20], y[20] = x[20] * 1e22, 1 - y[20]
    stats = tc.callbacks.LayerStats(every=1)
    model = dense_model(tc.Adam(1e-3))
    with pytest.raises(tc.NonFiniteError, match=r"epoch 1, step 2"):
        model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0, callbacks=[stats])
    # steps 1-3 ran (2 overflowed v, 3 made the weights NaN, 4's loss was NaN): recorded once each,
    # not again by the replay that found step 2
    assert list(stats.steps) == [1, 2, 3]


def test_the_update_check_benchmark_times_both_variants_on_real_data(medmnist_dir, capsys):
    """benchmarks/maintainers/update_check_ab.py (the README's cost of the check): one short round."""
    from tinycnn import model as model_mod, training
    module = load_script(REPO / "benchmarks" / "maintainers" / "update_check_ab.py")
    results = module.main(["--batch-size", "512", "--runs", "1", "--data", str(medmnist_dir)])
    assert set(results) == {512} and all(len(t) == 1 and t[0] > 0 for t in results[512].values())
    assert "ratio" in capsys.readouterr().out
    assert model_mod.Rewind is training.Rewind                 # the stub is gone afterwards


def test_a_history_with_nan_entries_resumes(tmp_path):
    """A val_auc of a one-class validation split is NaN: legitimate history, not damage."""
    def nan_auc(model, epoch, logs):
        logs["val_auc"] = float("nan")
    fresh().fit(X, Y, epochs=2, batch_size=16, verbose=0, checkpoint=tmp_path / "c.npz", callbacks=[nan_auc])
    history = fresh().fit(X, Y, epochs=3, batch_size=16, verbose=0, resume=tmp_path / "c.npz", callbacks=[nan_auc])
    assert len(history["val_auc"]) == 3 and np.isnan(history["val_auc"]).all()
