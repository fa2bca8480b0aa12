"""Reliability: bad input gets a clear error, failures mid-training lose nothing, files are safe.

Covers: validation errors (type and message), non-finite values during fit, Ctrl-C during fit,
checkpoints and bit-for-bit resume, a SIGKILL in the middle of saving, and fuzzing of
``load_model`` with damaged and random files (nothing is ever unpickled).
"""

import io
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn.io import HEADER, ModelFileError, load_model
from tinycnn.zoo import seed_model

from .test_model import small_problem


def fresh(seed=0, optimizer="adam"):
    model = seed_model(2, input_shape=(8, 8, 1), seed=seed)
    model.compile(optimizer, "sparse_categorical_crossentropy")
    return model


X, Y = small_problem()        # 70 images 8×8×1, labels 0/1


# --------------------------------------------------------------------------------------------
# One test per bad input: the error type, and a message that names the problem
# --------------------------------------------------------------------------------------------
BAD_INPUTS = [
    ("wrong rank", lambda m: m.predict(np.zeros((2, 8, 8), np.float32)), ValueError,
     r"x must have shape \(batch, 8, 8, 1\), got \(2, 8, 8\)"),
    ("wrong channel count", lambda m: m.predict(np.zeros((2, 8, 8, 3), np.float32)), ValueError,
     r"x must have shape \(batch, 8, 8, 1\), got \(2, 8, 8, 3\)"),
    ("shape not matching input_shape", lambda m: m.fit(np.zeros((4, 9, 8, 1), np.float32), [0, 1, 0, 1], verbose=0),
     ValueError, r"got \(4, 9, 8, 1\)"),
    ("non-float input", lambda m: m.predict(np.zeros((2, 8, 8, 1), np.uint8)), TypeError,
     "must be float images .* got dtype uint8"),
    ("NaN input", lambda m: m.predict(np.full((2, 8, 8, 1), np.nan, np.float32)), ValueError,
     "contains NaN or inf"),
    ("inf input", lambda m: m.evaluate(np.full((2, 8, 8, 1), np.inf, np.float32), [0, 1]), ValueError,
     "contains NaN or inf"),
    ("labels out of range", lambda m: m.fit(X, np.full(len(X), 2), verbose=0), ValueError,
     r"labels must be in \[0, 2\) for 2 outputs, got values in \[2, 2\]"),
    ("negative labels", lambda m: m.train_on_batch(X[:4], [0, -1, 0, 1]), ValueError, r"labels must be in \[0, 2\)"),
    ("labels of the wrong shape", lambda m: m.fit(X, np.zeros((len(X), 2), int), verbose=0), ValueError,
     r"expected labels of shape \(70,\) or \(70, 1\), got \(70, 2\)"),
    ("labels of the wrong kind", lambda m: m.fit(X, np.full(len(X), 0.5), verbose=0), TypeError,
     "expected integer class labels, got dtype float64"),
    ("labels and images disagree in number", lambda m: m.fit(X, Y[:10], verbose=0), ValueError,
     r"x has 70 samples but y has shape \(10,\)"),
    ("empty x", lambda m: m.predict(np.zeros((0, 8, 8, 1), np.float32)), ValueError, "must be a non-empty batch"),
    ("empty fit", lambda m: m.fit(np.zeros((0, 8, 8, 1), np.float32), np.zeros(0, int), verbose=0), ValueError,
     "must be a non-empty batch"),
    ("zero batch size", lambda m: m.fit(X, Y, batch_size=0), ValueError, "batch_size must be a positive int, got 0"),
    ("negative batch size", lambda m: m.predict(X, batch_size=-5), ValueError, "batch_size must be a positive int, got -5"),
    ("zero epochs", lambda m: m.fit(X, Y, epochs=0), ValueError, "epochs must be a positive int, got 0"),
    ("negative epochs", lambda m: m.fit(X, Y, epochs=-1), ValueError, "epochs must be a positive int, got -1"),
    ("zero learning rate", lambda m: tc.Adam(learning_rate=0.0), ValueError, "learning_rate must be a positive number, got 0.0"),
    ("negative learning rate", lambda m: tc.SGD(learning_rate=-0.1), ValueError, "learning_rate must be a positive number"),
    ("kernel larger than a valid input", lambda m: tc.Sequential([tc.Conv2D(4, 5)], input_shape=(3, 3, 1)), ValueError,
     r"Conv2D layer 'conv2d': kernel \(5, 5\) is larger than the 3×3 input with padding='valid'"),
    ("unknown padding", lambda m: tc.Conv2D(4, 3, padding="SAME"), ValueError, "unknown padding 'SAME'; expected one of"),
    ("unknown activation", lambda m: tc.Dense(4, activation="gelu"), ValueError, "unknown activation 'gelu'"),
    ("unknown optimizer", lambda m: m.compile("lamb", "sparse_categorical_crossentropy"), ValueError,
     "unknown optimizer 'lamb'"),
    ("unknown loss", lambda m: m.compile("adam", "mse"), ValueError, "unknown loss 'mse'"),
    ("backward before forward", lambda m: tc.Dense(3).backward(np.zeros((1, 3))), ValueError,
     "Dense layer 'dense': backward called before forward"),
    ("validation data not a pair", lambda m: m.fit(X, Y, validation_data=X, verbose=0), ValueError,
     r"validation_data must be a pair"),
]


@pytest.mark.parametrize("what, call, error, match", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_gets_a_clear_error(what, call, error, match):
    model = fresh()
    before = model.get_weights()
    with pytest.raises(error, match=match):
        call(model)
    for a, b in zip(before, model.get_weights()):      # and nothing was half-done
        np.testing.assert_array_equal(a, b)


def test_backward_before_forward_is_also_a_runtime_error():
    with pytest.raises(RuntimeError):
        tc.MaxPool2D().backward(np.zeros((1, 1, 1, 1)))
    assert issubclass(tc.CallOrderError, ValueError) and issubclass(tc.CallOrderError, RuntimeError)


# --------------------------------------------------------------------------------------------
# Non-finite values during fit
# --------------------------------------------------------------------------------------------
def reference_weights_after(steps, batch_size=16):
    """Weights after ``steps`` plain train_on_batch calls on the unshuffled data."""
    model = fresh()
    for step in range(steps):
        model.train_on_batch(X[step * batch_size:(step + 1) * batch_size], Y[step * batch_size:(step + 1) * batch_size])
    return model.get_weights()


def test_injected_nan_in_a_layer_output_is_named_and_the_weights_roll_back(monkeypatch):
    model = fresh()
    dense = model.layers[3]
    original = dense.forward
    calls = {"n": 0}

    def poisoned(x, training=True):
        calls["n"] += 1
        out = original(x, training)
        if calls["n"] >= 3:            # the third step's forward pass goes bad
            out = out.copy()
            out[0, 0] = np.nan
        return out

    monkeypatch.setattr(dense, "forward", poisoned)
    with pytest.raises(tc.NonFiniteError, match=r"epoch 1, step 3: .*first in the output of layer 'dense' \(Dense"):
        model.fit(X, Y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), reference_weights_after(2)):   # the last finite step
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_non_finite_gradient_is_named_and_not_applied(fuse):
    model = fresh()
    model.fuse = fuse                  # the conv's gradients come from Conv2D.backward or the fused step
    conv = model.layers[0]

    class Poison(tc.model.Observer):   # after each backward step, the conv's bias gradient is inf
        def after(self, step, phase, inputs, output):
            if phase == "backward" and "bias" in conv.grads:
                conv.grads["bias"] = conv.grads["bias"] * np.inf

    before = model.get_weights()
    with model.observe(Poison()), pytest.raises(tc.NonFiniteError,
                                                match=r"epoch 1, step 1: .*non-finite gradient, first in 'conv2d/bias'"):
        model.fit(X, Y, epochs=1, batch_size=16, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")      # the overflow is the point of the test
def test_diverging_learning_rate_stops_with_the_last_finite_weights():
    model = seed_model(2, input_shape=(8, 8, 1), seed=0)
    model.compile(tc.SGD(learning_rate=1e30), "sparse_categorical_crossentropy")
    with pytest.raises(tc.NonFiniteError, match=r"epoch \d+, step \d+"):
        model.fit(X * 1e3, Y, epochs=5, batch_size=8, verbose=0)
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


# --------------------------------------------------------------------------------------------
# Ctrl-C, checkpoints and resume
# --------------------------------------------------------------------------------------------
def interrupt_at(epoch, step, steps_per_epoch):
    """An augment hook that sends this process SIGINT during the given step (Ctrl-C)."""
    calls = {"n": 0}

    def augment(batch, rng):
        calls["n"] += 1
        if calls["n"] == (epoch - 1) * steps_per_epoch + step:
            os.kill(os.getpid(), signal.SIGINT)
        return batch
    return augment


def identity(batch, rng):
    return batch


def test_ctrl_c_returns_the_history_so_far_with_consistent_weights():
    before = signal.getsignal(signal.SIGINT)       # default_int_handler, or SIG_IGN under nohup / `cmd &`
    model = fresh()
    history = model.fit(X, Y, epochs=5, batch_size=16, verbose=0, augment=interrupt_at(3, 2, steps_per_epoch=5))
    assert len(history["loss"]) == 2                          # two completed epochs
    assert model.stop_reason == "interrupted (Ctrl-C) in epoch 3 after step 2"
    assert model.optimizer.iterations == 2 * 5 + 2             # every started step finished
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
    assert model.evaluate(X, Y)["loss"] > 0                    # usable as it is
    assert signal.getsignal(signal.SIGINT) is before                        # handler restored


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_interrupt_and_resume_equals_uninterrupted_training_bit_for_bit(tmp_path, optimizer):
    make_opt = (lambda: tc.Adam(0.01)) if optimizer == "adam" else (lambda: tc.SGD(0.05, momentum=0.9, nesterov=True))
    validation = (X[:20], Y[:20])
    straight = fresh(seed=7, optimizer=make_opt())
    full = straight.fit(X, Y, epochs=4, batch_size=16, verbose=0, validation_data=validation, augment=identity)

    first = fresh(seed=7, optimizer=make_opt())
    checkpoint = tmp_path / "ckpt.npz"
    first.fit(X, Y, epochs=4, batch_size=16, verbose=0, validation_data=validation, checkpoint=checkpoint,
              augment=interrupt_at(3, 3, steps_per_epoch=5))
    assert first.stop_reason.startswith("interrupted")

    resumed = fresh(seed=123, optimizer=make_opt())            # even another seed: the state comes from the file
    history = resumed.fit(X, Y, epochs=4, batch_size=16, verbose=0, validation_data=validation,
                          resume=checkpoint, augment=identity)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert history == full
    assert resumed.optimizer.iterations == straight.optimizer.iterations


def never_improving_early_stopping():
    """Counts every epoch after the first as "no improvement" (min_delta is huge), so it stops at
    epoch 1 + patience + 1 — and at a later epoch if its count were reset."""
    return tc.callbacks.EarlyStopping("val_loss", patience=2, min_delta=1e9, restore_best_weights=True)


def test_resume_gives_early_stopping_its_count_and_best_weights_back(tmp_path):
    """Interrupted after epoch 2 (one epoch without improvement so far), resumed: it stops after
    epoch 4 with epoch 1's weights, as the uninterrupted run does — not two epochs later."""
    validation = (X[:20], Y[:20])
    straight = fresh(seed=7)
    full = straight.fit(X, Y, epochs=8, batch_size=16, verbose=0, validation_data=validation, augment=identity,
                        callbacks=[never_improving_early_stopping()])
    assert len(full["loss"]) == 4 and straight.stop_reason.startswith("early stopping after epoch 4")

    first = fresh(seed=7)
    checkpoint = tmp_path / "ckpt.npz"
    first.fit(X, Y, epochs=8, batch_size=16, verbose=0, validation_data=validation, checkpoint=checkpoint,
              augment=interrupt_at(3, 3, steps_per_epoch=5), callbacks=[never_improving_early_stopping()])
    assert first.stop_reason.startswith("interrupted (Ctrl-C) in epoch 3")

    resumed = fresh(seed=123)
    stopper = never_improving_early_stopping()
    history = resumed.fit(X, Y, epochs=8, batch_size=16, verbose=0, validation_data=validation, resume=checkpoint,
                          augment=identity, callbacks=[stopper])
    assert history == full
    assert resumed.stop_reason == straight.stop_reason
    assert stopper.best_epoch == 1 and stopper.stopped_epoch == 4
    for a, b in zip(straight.get_weights(), resumed.get_weights()):      # epoch 1's, restored at the end
        np.testing.assert_array_equal(a, b)
    assert len(load_model(checkpoint).get_weights()) == len(straight.get_weights())   # still a loadable model


def test_resume_with_other_callbacks_warns_and_restores_only_matching_ones(tmp_path):
    checkpoint = tmp_path / "ckpt.npz"
    validation = (X[:20], Y[:20])
    fresh().fit(X, Y, epochs=2, batch_size=16, verbose=0, validation_data=validation, checkpoint=checkpoint,
                callbacks=[never_improving_early_stopping()])
    schedule = tc.callbacks.LearningRateScheduler(lambda epoch: 1e-3)
    with pytest.warns(UserWarning, match=r"written with callbacks \['EarlyStopping'\].*\['LearningRateScheduler'\]"):
        fresh().fit(X, Y, epochs=3, batch_size=16, verbose=0, validation_data=validation, resume=checkpoint,
                    callbacks=[schedule])


def test_a_checkpoint_with_damaged_callback_state_is_refused(tmp_path):
    checkpoint = tmp_path / "ckpt.npz"
    fresh().fit(X, Y, epochs=2, batch_size=16, verbose=0, validation_data=(X[:20], Y[:20]), checkpoint=checkpoint,
                callbacks=[never_improving_early_stopping()])
    with np.load(checkpoint, allow_pickle=False) as npz:
        arrays = dict(npz)
    arrays.pop("callbacks/0/0")                                  # one of the best weights is missing
    np.savez(tmp_path / "damaged.npz", **arrays)
    with pytest.raises(ModelFileError, match="invalid callback state"):
        fresh().fit(X, Y, epochs=3, verbose=0, resume=tmp_path / "damaged.npz",
                    callbacks=[never_improving_early_stopping()])


def test_best_checkpoint_follows_the_monitored_metric(tmp_path):
    model = fresh()
    history = model.fit(X, Y, epochs=4, batch_size=16, verbose=0, validation_data=(X[:20], Y[:20]),
                        checkpoint=tmp_path / "last.npz", checkpoint_best=tmp_path / "best.npz",
                        monitor="val_loss")
    best_epoch = int(np.argmin(history["val_loss"])) + 1
    import json
    with np.load(tmp_path / "best.npz", allow_pickle=False) as npz:
        state = json.loads(str(npz[HEADER]))["training_state"]
    assert state["epoch"] == best_epoch and state["best"] == min(history["val_loss"])
    last = load_model(tmp_path / "last.npz")
    for a, b in zip(last.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="checkpoint_best monitors 'val_auc'"):
        fresh().fit(X, Y, epochs=1, verbose=0, checkpoint_best=tmp_path / "b2.npz", monitor="val_auc")


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path):
    fresh().fit(X, Y, epochs=1, verbose=0, checkpoint=tmp_path / "c.npz")
    other = tc.Sequential([tc.Flatten(), tc.Dense(2, activation="softmax")], input_shape=(8, 8, 1))
    other.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ModelFileError, match="architecture differs"):
        other.fit(X, Y, epochs=2, verbose=0, resume=tmp_path / "c.npz")
    sgd = fresh(optimizer="sgd")
    with pytest.raises(ModelFileError, match="trained with Adam"):
        sgd.fit(X, Y, epochs=2, verbose=0, resume=tmp_path / "c.npz")
    fresh().save(tmp_path / "plain.npz")
    with pytest.raises(ModelFileError, match="not a training checkpoint"):
        fresh().fit(X, Y, epochs=2, verbose=0, resume=tmp_path / "plain.npz")


SAVER = textwrap.dedent("""
    import sys
    import numpy as np
    from tinycnn.zoo import seed_model
    model = seed_model(2, input_shape=(8, 8, 1), seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    path = sys.argv[1]
    k = 0
    while True:
        for w in model.params:
            w[...] = k
        model.save(path)
        print(k, flush=True)
        k += 1
""")


@pytest.mark.parametrize("delay", [0.0, 0.003, 0.011, 0.029])
def test_sigkill_while_saving_leaves_the_previous_checkpoint_loadable(tmp_path, delay):
    path = tmp_path / "ckpt.npz"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        saved = [int(proc.stdout.readline()) for _ in range(3)]      # three complete saves
        time.sleep(delay)                                            # then die mid-way through later ones
        proc.kill()
    finally:
        proc.wait(timeout=30)
    model = load_model(path)
    values = {float(np.unique(w)[0]) for w in model.params}
    assert len(values) == 1 and values.pop() >= saved[-1]          # one whole version, never a mix


# --------------------------------------------------------------------------------------------
# Fuzzing load_model: only ModelFileError (a ValueError), never a crash, a hang or an unpickle
# --------------------------------------------------------------------------------------------
def saved_bytes(compress=False):
    model = fresh()
    model.fit(X[:16], Y[:16], epochs=1, verbose=0)
    buffer = io.BytesIO()
    path = Path(tempfile.mkdtemp()) / "m.npz"
    model.save(path)
    data = path.read_bytes()
    if compress:
        with np.load(path, allow_pickle=False) as npz:
            np.savez_compressed(buffer, **{k: npz[k] for k in npz.files})
        data = buffer.getvalue()
    return data


VALID = {False: saved_bytes(False), True: saved_bytes(True)}


def load_bytes(data: bytes):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.npz"
        path.write_bytes(data)
        try:
            load_model(path)
        except ModelFileError as err:
            assert str(path) in str(err)
            return "refused"
        return "loaded"


@settings(max_examples=1200)
@given(compressed=st.booleans(), cut=st.floats(0.0, 1.0, exclude_max=True),
       flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255)), max_size=4))
def test_fuzz_load_model_with_damaged_files(compressed, cut, flips):
    data = bytearray(VALID[compressed])
    for position, mask in flips:
        data[int(position * len(data))] ^= mask
    if cut > 0:
        data = data[: int(cut * len(data))]
        assert load_bytes(bytes(data)) == "refused"
    else:
        load_bytes(bytes(data))            # a flip in zip padding may be harmless; no other error


@settings(max_examples=600)
@given(prefix=st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY\x01\x00"]),
       junk=st.binary(max_size=400))
def test_fuzz_load_model_with_random_files(prefix, junk):
    assert load_bytes(prefix + junk) == "refused"


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "the payload ran"))


def test_crafted_pickle_is_refused_and_its_payload_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"
    with np.load(io.BytesIO(VALID[False]), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["params/dense/kernel"] = np.array([Payload(str(marker))], dtype=object)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    assert load_bytes(buffer.getvalue()) == "refused"
    with pytest.raises(ModelFileError, match="holds Python objects \\(a pickle\\); refused"):
        path = tmp_path / "evil.npz"
        path.write_bytes(buffer.getvalue())
        load_model(path)
    assert not marker.exists()
