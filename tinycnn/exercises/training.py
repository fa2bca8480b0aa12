"""The payoff: train a CNN on real chest X-rays with the backprop you wrote.

:func:`train` grades the learner's functions, plugs every one that passes into
``tinycnn.teaching(functions=...)`` — the same boundary teaching mode uses, so each layer's forward
and backward call the learner's code — trains the seed model on PneumoniaMNIST, and trains the same
model from the same initial weights on tinycnn's own kernels beside it. Both are scored on the
official test split with the official MedMNIST metrics. Functions not written yet (or failing)
fall back to tinycnn's, and the report says which ran the learner's code, and how often.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from .. import ops
from ..datasets import load, to_float
from ..metrics import medmnist_scores
from ..zoo import seed_model
from . import check
from .grader import CASE_SECONDS, CheckReport, load_module

DATASET = "pneumoniamnist"


@dataclass
class TrainReport:
    """What :func:`train` measured: the test scores of both networks and whose code ran."""

    dataset: str
    epochs: int
    yours: dict                          # {"acc": .., "auc": ..} of the network trained on your functions
    tinycnn: dict                        # the same of the network trained on tinycnn's kernels
    calls: dict = field(default_factory=dict)    # your function -> how many times training called it
    fallback: dict = field(default_factory=dict)  # tinycnn's function used instead -> why
    seconds: dict = field(default_factory=dict)   # "yours" / "tinycnn" -> training time
    history: dict = field(default_factory=dict)   # "yours" / "tinycnn" -> fit's history (loss per epoch, ...)
    check: CheckReport | None = None

    def __str__(self) -> str:
        lines = [f"{self.dataset}, seed model, {self.epochs} epochs; official test metrics:", "",
                 f"  {'':28s} {'ACC':>6s} {'AUC':>6s} {'training':>9s}",
                 f"  {'your functions':28s} {self.yours['acc']:6.3f} {self.yours['auc']:6.3f} "
                 f"{self.seconds.get('yours', 0):8.1f}s",
                 f"  {'tinycnn (same start)':28s} {self.tinycnn['acc']:6.3f} {self.tinycnn['auc']:6.3f} "
                 f"{self.seconds.get('tinycnn', 0):8.1f}s", ""]
        used = {name: n for name, n in self.calls.items() if n}
        if used:
            lines.append("Your code ran in training: " + ", ".join(f"{name} ({n}×)" for name, n in used.items()))
        unused = [name for name, n in self.calls.items() if not n]
        if unused:
            lines.append("Yours, but the seed model does not use them: " + ", ".join(unused))
        if self.fallback:
            lines.append("tinycnn's instead: " + ", ".join(f"{name} ({why})" for name, why in self.fallback.items()))
        return "\n".join(lines)


def train(path=".", epochs: int = 3, batch_size: int = 128, learning_rate: float = 1e-3, seed: int = 0,
          data=None, seconds: float = CASE_SECONDS, verbose: int = 1) -> TrainReport:
    """Train the seed model on PneumoniaMNIST with the learner's passing functions.

    ``path``: the folder holding ``exercises.py`` (or the file). ``data``: the folder with the
    MedMNIST files (default: ``$TINYCNN_DATA``, ``~/.medmnist``). The learner's network and
    tinycnn's start from the same weights (``seed``) and see the batches in the same order; each
    epoch draws the smaller class (normal) with replacement up to the larger one's size, as
    ``tinycnn train`` does for binary tasks. With tinycnn's own functions and seeds 0, 1, 2 this
    reaches test ACC 0.867, 0.872, 0.854 and AUC 0.929, 0.930, 0.921.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"exercises train: {name} must be a positive integer, got {value!r}")
    if not np.isfinite(learning_rate) or learning_rate <= 0:
        raise ValueError(f"exercises train: learning_rate must be a positive number, got {learning_rate!r}")
    say = print if verbose else (lambda *a, **k: None)

    say("Grading your functions first (only those that pass are used) ...")
    report = check(path=path, seconds=seconds)
    module = load_module(path)
    calls, fallback, functions = {}, {}, {}
    for result in report.results:
        if result.passed:
            calls[result.name] = 0
            functions[result.name] = _counted(getattr(module, result.name), calls, result.name)
        else:
            fallback[result.name] = result.status if result.status == "not started" else "fails its check"
    say(f"  {len(functions)} of {len(report.results)} pass: "
        f"{', '.join(functions) or 'none yet — this run is tinycnn against itself'}")

    dataset = load(DATASET, root=data)
    x_train, y_train = to_float(dataset.train.images), dataset.train.labels[:, 0].astype(np.int64)
    x_test, y_test = to_float(dataset.test.images), dataset.test.labels

    scores, seconds_taken, history = {}, {}, {}
    runs = {"yours": ("your functions (teaching mode)", ops.teaching(functions=functions)),
            "tinycnn": ("tinycnn's kernels", nullcontext())}
    for who, (title, mode) in runs.items():
        model = seed_model(dataset.info.n_classes, input_shape=x_train.shape[1:], seed=seed)
        model.compile(_optimizer(learning_rate), "sparse_categorical_crossentropy")
        say(f"\nTraining on {title}: {len(x_train)} images (classes balanced by oversampling), "
            f"{epochs} epochs, batch {batch_size}")
        start = time.perf_counter()
        with mode:
            history[who] = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=verbose,
                                     sampler="oversample")
            probabilities = model.predict(x_test)
        seconds_taken[who] = time.perf_counter() - start
        if not np.all(np.isfinite(probabilities)):
            raise FloatingPointError("exercises train: the network's test predictions are not finite — "
                                     "one of your functions gives NaN or inf on real data")
        scores[who] = medmnist_scores(dataset.info.task, y_test, probabilities)

    result = TrainReport(dataset.info.python_class, epochs, scores["yours"], scores["tinycnn"], calls,
                         fallback, seconds_taken, history, report)
    say("\n" + str(result))
    return result


def _optimizer(learning_rate):
    from ..optimizers import Adam
    return Adam(learning_rate=learning_rate)


def _counted(function, calls, name):
    def counted(*args, **kwargs):
        calls[name] += 1
        return function(*args, **kwargs)
    counted.__wrapped__ = function
    return counted
