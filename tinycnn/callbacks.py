"""Callbacks for ``Sequential.fit``: learning-rate schedules, early stopping, per-layer statistics.

A callback is either a plain function ``f(model, epoch, logs)`` (called after each epoch) or an
object with any of these methods (epochs count from 1)::

    on_train_begin(model)              on_epoch_begin(model, epoch)
    on_epoch_end(model, epoch, logs)   on_train_end(model)

``logs`` holds the epoch's numbers (``loss``, ``accuracy``, ``val_loss`` ...); a callback may add
entries, which join the history, and may set ``model.stop_training = True``.

A callback that keeps state from epoch to epoch (:class:`EarlyStopping` counts epochs without
improvement) also defines ``get_state()`` and ``set_state(state, arrays)``: ``fit(checkpoint=...)``
saves that state with the weights, and ``fit(resume=...)`` gives it back to the callback passed
at the same position, so that a resumed run stops where an uninterrupted one would.

:class:`LayerStats` looks inside the training steps themselves — activations, dead ReLUs,
gradients and update-to-weight ratios, layer by layer — through the model's observer
(:meth:`tinycnn.Sequential.observe`), not through the epoch hooks alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass

import numpy as np


class Callback:
    def on_train_begin(self, model):
        pass

    def on_epoch_begin(self, model, epoch):
        pass

    def on_epoch_end(self, model, epoch, logs):
        pass

    def on_train_end(self, model):
        pass

    def get_state(self) -> tuple[dict, list]:
        """What resuming needs: a JSON-able dict and a list of arrays (both empty: no state)."""
        return {}, []

    def set_state(self, state: dict, arrays: list) -> None:
        """Take back what :meth:`get_state` returned (called by ``fit(resume=...)`` after
        ``on_train_begin``, and only with a state :meth:`check_state` accepted)."""

    def check_state(self, state: dict, arrays: list, model) -> None:
        """Raise ValueError/TypeError, naming the field, if ``state``/``arrays`` (read from a
        checkpoint) are not what :meth:`get_state` writes. ``fit(resume=...)`` calls it before it
        changes anything, so a damaged checkpoint leaves the model as it was."""


class FunctionCallback(Callback):
    """Wraps ``f(model, epoch, logs)`` as an ``on_epoch_end`` callback."""

    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, model, epoch, logs):
        self.fn(model, epoch, logs)


def as_callback(obj) -> Callback:
    if isinstance(obj, Callback):
        return obj
    if callable(obj):
        return FunctionCallback(obj)
    raise TypeError(f"a callback must be a function f(model, epoch, logs) or a Callback, got {type(obj).__name__}")


class LearningRateScheduler(Callback):
    """Set the optimizer's learning rate to ``schedule(epoch)`` at the start of every epoch and
    record it as ``logs["lr"]``. The schedule is a function of the epoch alone, so a resumed run
    picks it up where it stopped."""

    def __init__(self, schedule):
        if not callable(schedule):
            raise TypeError("LearningRateScheduler: schedule must be a function epoch -> learning rate")
        self.schedule = schedule

    def on_epoch_begin(self, model, epoch):
        lr = float(self.schedule(epoch))
        if not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"LearningRateScheduler: the schedule gave learning rate {lr!r} for epoch {epoch}")
        model.optimizer.learning_rate = lr

    def on_epoch_end(self, model, epoch, logs):
        logs["lr"] = model.optimizer.learning_rate


def step_decay(initial: float, epochs: int, milestones=(0.5, 0.75), factor: float = 0.1):
    """The MedMNIST protocol's schedule: multiply the rate by ``factor`` (0.1) once ``milestones``
    (50% and 75%) of the ``epochs`` are done. Returns ``epoch -> lr``."""
    steps = [int(round(m * epochs)) for m in milestones]

    def lr(epoch: int) -> float:
        return initial * factor ** sum(epoch > s for s in steps)
    return lr


def cosine_decay(initial: float, epochs: int, final: float = 0.0):
    """Half a cosine from ``initial`` (epoch 1) down toward ``final`` (after the last epoch)."""
    def lr(epoch: int) -> float:
        return final + (initial - final) * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / epochs))
    return lr


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``mode`` "min" or "max" ("auto": min for losses, max otherwise). With
    ``restore_best_weights`` the model ends with the weights of its best epoch (as Keras, only
    when training ran through ``fit``'s end or was stopped by this callback).
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto", restore_best_weights=True):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, abs(float(min_delta))
        self.mode = ("min" if "loss" in monitor else "max") if mode == "auto" else mode
        self.restore_best_weights = restore_best_weights

    def on_train_begin(self, model):
        self.best, self.best_epoch, self.best_weights, self.wait = None, 0, None, 0
        self.stopped_epoch = None

    def _improved(self, value) -> bool:
        if self.best is None:
            return True
        return value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta

    def on_epoch_end(self, model, epoch, logs):
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, which is not among the epoch's logs "
                             f"{sorted(logs)}; pass validation_data or choose another monitor")
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = model.get_weights()
        else:
            self.wait += 1
            if self.wait > self.patience:
                self.stopped_epoch = epoch
                model.stop_training = True
                model.stop_reason = (f"early stopping after epoch {epoch}: {self.monitor} has not improved "
                                     f"since epoch {self.best_epoch} ({self.best:.4f})")

    def on_train_end(self, model):
        if self.restore_best_weights and self.best_weights is not None:
            model.set_weights(self.best_weights)

    def get_state(self):
        state = {"best": None if self.best is None else float(self.best), "best_epoch": self.best_epoch,
                 "wait": self.wait, "stopped_epoch": self.stopped_epoch}
        return state, list(self.best_weights) if self.best_weights is not None else []

    def check_state(self, state, arrays, model):
        def field(key, ok, expected):
            if key not in state or not ok(state[key]):
                raise ValueError(f"EarlyStopping: saved state {key!r} must be {expected}, "
                                 f"got {state.get(key, 'nothing')!r}")
        def is_int(v):
            return isinstance(v, int) and not isinstance(v, bool)
        field("best", lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)),
              "a number or null")
        field("best_epoch", lambda v: is_int(v) and v >= 0, "an int >= 0")
        field("wait", lambda v: is_int(v) and v >= 0, "an int >= 0")
        field("stopped_epoch", lambda v: v is None or (is_int(v) and v >= 1), "an int >= 1 or null")
        if arrays:
            expected = [(w.shape, w.dtype) for w in model.get_weights()]
            if [(a.shape, a.dtype) for a in arrays] != expected:
                raise ValueError(f"EarlyStopping: the saved best weights do not match the model's weights "
                                 f"(shapes and dtypes {[(a.shape, str(a.dtype)) for a in arrays]})")

    def set_state(self, state, arrays):
        self.best = None if state["best"] is None else float(state["best"])
        self.best_epoch, self.wait, self.stopped_epoch = state["best_epoch"], state["wait"], state["stopped_epoch"]
        self.best_weights = [a.copy() for a in arrays] if arrays else None


# --------------------------------------------------------------------------------------------
# Per-layer statistics: what a network that does not learn looks like from inside
# --------------------------------------------------------------------------------------------


@dataclass
class Summary:
    """Mean, standard deviation and histogram of one array (``counts`` over ``bins`` equal bins
    from its minimum to its maximum; both None if the array holds NaN or inf)."""

    mean: float
    std: float
    min: float
    max: float
    counts: np.ndarray | None
    edges: np.ndarray | None


@dataclass
class LayerRecord:
    """What one layer did in one recorded step.

    ``activation``: its output (after its own activation, e.g. after the ReLU of
    ``Conv2D(activation="relu")``). ``zeros``: the fraction of output entries that are exactly 0.
    ``dead``: for a ReLU output, the fraction of *units* — output entries without the batch axis:
    a Dense layer's neurons, a Conv2D's (row, column, filter) positions — that are 0 for every
    sample of the batch; ``dead_channels``: the fraction of the last axis (Dense units, Conv2D
    filters) that is 0 everywhere in the batch. Both None for a layer that does not end in a ReLU.
    ``gradient``: dL/d(output) as the layer's backward received it — for the last layer of a model
    whose softmax/sigmoid is fused with the loss, dL/d(logits), below that activation
    (``gradient_of`` says which); None for a layer whose backward did not run.
    """

    name: str
    kind: str
    activation: Summary
    zeros: float
    dead: float | None
    dead_channels: float | None
    gradient: Summary | None = None
    gradient_of: str = "output"


@dataclass
class WeightRecord:
    """One weight array in one recorded step: ``norm`` ‖W‖ before the update, ``grad_norm`` ‖dW‖
    (the gradient the optimizer received, weight penalty included), ``update_norm`` ‖ΔW‖ (what the
    optimizer changed) and ``ratio`` = ‖ΔW‖ / ‖W‖ (NaN while ‖W‖ is 0, e.g. a bias at its zero
    initialisation). Norms are Frobenius norms: the root of the sum of squares of every entry."""

    name: str
    norm: float
    grad_norm: float
    update_norm: float
    ratio: float


@dataclass
class StepRecord:
    """One recorded training step: its number (counted from 1), the epoch (None outside ``fit``),
    the batch's loss as the loss function computed it (without weight penalties), and the per-layer
    and per-weight records in the order the model runs them."""

    step: int
    epoch: int | None
    loss: float
    layers: dict = dataclasses.field(default_factory=dict)      # layer name -> LayerRecord
    weights: dict = dataclasses.field(default_factory=dict)     # "layer/key" -> WeightRecord


def summarize(a, bins: int = 40) -> Summary:
    """:class:`Summary` of an array: mean and std (in float64), and a ``bins``-bin histogram
    between its minimum and maximum."""
    a = np.asarray(a)
    lo, hi = float(a.min()), float(a.max())
    if math.isfinite(lo) and math.isfinite(hi):
        counts, edges = np.histogram(a, bins=bins, range=(lo, hi))
        return Summary(mean=float(a.mean(dtype=np.float64)), std=float(a.std(dtype=np.float64)),
                       min=lo, max=hi, counts=counts, edges=edges)
    with np.errstate(invalid="ignore", over="ignore"):        # NaN or inf: the numbers say so
        return Summary(mean=float(a.mean(dtype=np.float64)), std=float(a.std(dtype=np.float64)),
                       min=lo, max=hi, counts=None, edges=None)


def _ends_in_relu(step) -> bool:
    return type(step).__name__ == "ReLU" or getattr(step, "activation_name", None) == "relu"


def _kind(step) -> str:
    """``Conv2D``; ``Conv2D+MaxPool2D`` for a fused step (seen only if ``model.fuse`` is switched
    back on by hand while LayerStats is attached)."""
    parts = [getattr(step, "conv", None), getattr(step, "pool", None)]
    if all(parts):
        return "+".join(type(part).__name__ for part in parts)
    return type(step).__name__


class LayerStats(Callback):
    """Record per-layer statistics of training steps: ``fit(..., callbacks=[LayerStats(every=20)])``.

    Every recorded step keeps, for every layer (a :class:`LayerRecord`):

    * the **activations** — mean, standard deviation and a histogram of the layer's output;
    * for a ReLU output, the fraction of **dead units**, zero for every sample of the batch (a unit
      that is dead for every input gets no gradient, so nothing below it through that unit learns);
    * the **gradient** dL/d(output) the layer's backward received — mean, std, histogram;

    and for every weight array (a :class:`WeightRecord`) the **update-to-weight ratio**

        ratio = ‖ΔW‖ / ‖W‖ ,   ΔW = W after the optimizer step − W before it,

    with Frobenius norms (root of the sum of squares). It is CS231n's "ratio of the update magnitudes
    to the value magnitudes" (rough heuristic: around 1e-3; much lower, the learning rate may be too
    low; much higher, too high). Karpathy's std(ΔW)/std(W) is nearly the same number for arrays
    whose mean is near 0, as weight matrices' are.

    Which steps: the first step after the callback is attached, then every ``every``-th (steps 1,
    1 + every, 1 + 2·every ...; counted over everything this object has watched until
    :meth:`reset`). The others cost one counter update each: nothing is computed or copied.

    What it sees, in each mode. LayerStats watches the model's own step through
    :meth:`tinycnn.Sequential.observe`; nothing is patched. In teaching mode every layer runs on
    its own anyway, and recording changes nothing: the weights come out bit for bit as without it.
    Outside teaching mode the kernels run a ``Conv2D(relu)`` and the ``MaxPool2D`` after it as one
    fused step, whose convolution output never exists as an array. So the steps LayerStats records
    run unfused — ``model.fuse`` is False from just before such a step until its update, then it
    is put back — and every layer is seen on its own. Unfused, the kernels compute the same
    numbers, summed in another order: a run with LayerStats matches one without it to float
    rounding, not bit for bit, and each recorded step is a little slower (no fusion).

    ``bins``: number of histogram bins (each histogram spans its array's own minimum to maximum).

    Outside ``fit`` (a loop of ``train_on_batch``): ``with stats.watch(model): ...``. Records are
    kept in :attr:`records` (a list of :class:`StepRecord`); :meth:`series` pulls one number out of
    every record, :meth:`table` prints one record. ``tinycnn.plot.layer_stats`` draws them.
    A fit that ends with an exception (NaN, Ctrl-C) does not call ``on_train_end``: call
    :meth:`detach` then, or the next ``fit`` with this object detaches it first.
    """

    def __init__(self, every: int = 10, bins: int = 40):
        for value, what in ((every, "every"), (bins, "bins")):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"LayerStats: {what} must be a positive int, got {value!r}")
        self.every, self.bins = int(every), int(bins)
        self.records: list[StepRecord] = []
        self.steps_seen = 0             # training steps (optimizer updates) watched so far
        self._model = None
        self._scope = None              # the model.observe(...) context we entered
        self._fuse = None               # model.fuse as it was when we attached
        self._epoch = None
        self._armed = False             # is the next step recorded?
        self._outputs: dict = {}        # step name -> (step, LayerRecord) of the latest forward
        self._pending: StepRecord | None = None
        self._before: dict = {}         # "layer/key" -> (layer, key, copy of W before the update)

    # -- the callback ---------------------------------------------------------------------
    def on_train_begin(self, model):
        self.attach(model)

    def on_epoch_begin(self, model, epoch):
        self._epoch = epoch

    def on_train_end(self, model):
        self.detach()
        self._epoch = None

    # -- attaching ------------------------------------------------------------------------
    def attach(self, model) -> None:
        """Start watching ``model``'s training steps (``fit`` does this through ``on_train_begin``)."""
        if not all(hasattr(model, name) for name in ("observe", "layers", "fuse")):
            raise TypeError(f"LayerStats: expected a tinycnn.Sequential, got {type(model).__name__}")
        if self._model is not None:
            self.detach()
        self._scope = model.observe(_Probe(self, model._observer))
        self._scope.__enter__()
        self._model, self._fuse = model, model.fuse
        self._arm()

    def detach(self) -> None:
        """Stop watching; the model's ``fuse`` setting and previous observer come back."""
        if self._model is None:
            return
        model, scope = self._model, self._scope
        self._model = self._scope = None
        scope.__exit__(None, None, None)
        model.fuse = self._fuse
        self._armed, self._pending, self._outputs, self._before = False, None, {}, {}

    @contextlib.contextmanager
    def watch(self, model):
        """``with stats.watch(model): model.train_on_batch(...)`` — record outside ``fit``."""
        self.attach(model)
        try:
            yield self
        finally:
            self.detach()

    def reset(self) -> None:
        """Forget every record and start counting steps from 1 again."""
        self.records, self.steps_seen = [], 0
        if self._model is not None:
            self._arm()

    def _arm(self) -> None:
        """Decide whether the next step is recorded, and run it unfused if it is."""
        self._armed = self.steps_seen % self.every == 0
        self._outputs, self._pending, self._before = {}, None, {}
        self._model.fuse = False if self._armed else self._fuse

    # -- what the probe hands over --------------------------------------------------------
    def _observe(self, step, phase, inputs, output) -> None:
        if phase == "optimizer":
            self.steps_seen += 1
            if self._pending is not None:
                self._finish(self._pending)
                self.records.append(self._pending)
            self._arm()
        elif not self._armed:
            return
        elif phase == "forward":            # the last forward pass before the loss is the step's
            self._outputs[step.name] = (step, self._output_record(step, output))
        elif phase == "loss":
            self._pending = StepRecord(step=self.steps_seen + 1, epoch=self._epoch, loss=float(output[0]),
                                       layers={name: record for name, (_, record) in self._outputs.items()})
            self._before = {f"{layer.name}/{key}": (layer, key, value.copy())
                            for layer, _ in self._outputs.values() for key, value in layer.params.items()}
        elif phase == "backward" and self._pending is not None and step.name in self._pending.layers:
            record = self._pending.layers[step.name]
            record.gradient = self.summarize(inputs)
            if self._enters_below_activation(step):
                record.gradient_of = "preactivation"

    def _enters_below_activation(self, step) -> bool:
        """True for the last layer of a model whose loss starts below its own softmax/sigmoid."""
        model = self._model
        return (step is model.layers[-1] and model._fused()
                and getattr(step, "activation", None) is model._final_activation() is not None)

    def summarize(self, a) -> Summary:
        """:func:`summarize` with this object's ``bins``."""
        return summarize(a, self.bins)

    def _output_record(self, step, y) -> LayerRecord:
        zero = y == 0
        dead = dead_channels = None
        if _ends_in_relu(step):
            dead = float(zero.all(axis=0).mean())
            dead_channels = float(zero.reshape(-1, y.shape[-1]).all(axis=0).mean())
        return LayerRecord(name=step.name, kind=_kind(step), activation=self.summarize(y),
                           zeros=float(zero.mean()), dead=dead, dead_channels=dead_channels)

    def _finish(self, record: StepRecord) -> None:
        """After the optimizer step: the update of every weight array, against its copy."""
        for name, (layer, key, before) in self._before.items():
            after, grad = layer.params[key], layer.grads[key]
            norm = float(np.linalg.norm(before.astype(np.float64)))
            update = float(np.linalg.norm(after.astype(np.float64) - before))
            record.weights[name] = WeightRecord(name=name, norm=norm, grad_norm=float(np.linalg.norm(grad)),
                                                update_norm=update, ratio=update / norm if norm > 0 else math.nan)

    # -- reading the records --------------------------------------------------------------
    @property
    def steps(self) -> np.ndarray:
        """The step number of every record."""
        return np.array([record.step for record in self.records], dtype=int)

    @property
    def layer_names(self) -> list[str]:
        return list(self.records[0].layers) if self.records else []

    @property
    def weight_names(self) -> list[str]:
        return list(self.records[0].weights) if self.records else []

    LAYER_FIELDS = ("activation_mean", "activation_std", "zeros", "dead", "dead_channels",
                    "gradient_mean", "gradient_std")
    WEIGHT_FIELDS = ("norm", "grad_norm", "update_norm", "ratio")

    def series(self, name: str, field: str) -> np.ndarray:
        """One number from every record, as an array (NaN where a record has none):
        ``series("conv2d", "activation_std")``, ``series("dense", "dead")``,
        ``series("dense/kernel", "ratio")``. Layer fields: :attr:`LAYER_FIELDS`; weight-array fields
        (names ``"layer/key"``): :attr:`WEIGHT_FIELDS`."""
        if not self.records:
            raise ValueError("LayerStats.series: nothing recorded yet")
        if field in self.WEIGHT_FIELDS:
            if name not in self.weight_names:
                raise ValueError(f"LayerStats.series: no weight array {name!r}; recorded: {self.weight_names}")
            return np.array([getattr(record.weights[name], field) for record in self.records], dtype=float)
        if field not in self.LAYER_FIELDS:
            raise ValueError(f"LayerStats.series: unknown field {field!r}; layer fields {list(self.LAYER_FIELDS)}, "
                             f"weight fields {list(self.WEIGHT_FIELDS)}")
        if name not in self.layer_names:
            raise ValueError(f"LayerStats.series: no layer {name!r}; recorded: {self.layer_names}")
        return np.array([_layer_number(record.layers[name], field) for record in self.records], dtype=float)

    def table(self, index: int = -1) -> str:
        """One record as text: a row per layer (activations, dead units, gradient) and a row per
        weight array (norms and update ratio)."""
        if not self.records:
            raise ValueError("LayerStats.table: nothing recorded yet")
        record = self.records[index]
        epoch = "" if record.epoch is None else f", epoch {record.epoch}"
        lines = [f"step {record.step}{epoch}: loss {record.loss:.4f}",
                 f"{'layer':<22}{'out mean':>10}{'out std':>10}{'zeros':>8}{'dead':>8}"
                 f"{'grad mean':>11}{'grad std':>10}"]
        for layer in record.layers.values():
            dead = "" if layer.dead is None else f"{layer.dead:.1%}"
            grad = layer.gradient
            grad_text = f"{grad.mean:>11.2e}{grad.std:>10.2e}" if grad is not None else f"{'—':>11}{'—':>10}"
            mark = " *" if layer.gradient_of == "preactivation" else ""
            lines.append(f"{layer.name:<22}{layer.activation.mean:>10.3g}{layer.activation.std:>10.3g}"
                         f"{layer.zeros:>8.1%}{dead:>8}{grad_text}{mark}")
        if any(layer.gradient_of == "preactivation" for layer in record.layers.values()):
            lines.append("(* the gradient below the final softmax/sigmoid: dL/d(logits), where the loss enters)")
        lines.append(f"{'weights':<22}{'‖W‖':>10}{'‖dW‖':>10}{'‖ΔW‖/‖W‖':>12}")
        for w in record.weights.values():
            lines.append(f"{w.name:<22}{w.norm:>10.3g}{w.grad_norm:>10.3g}{w.ratio:>12.2e}")
        return "\n".join(lines)

    def __repr__(self):
        return f"LayerStats(every={self.every}, bins={self.bins}, records={len(self.records)}, steps_seen={self.steps_seen})"


def _layer_number(record: LayerRecord, name: str) -> float:
    if name.startswith("activation_"):
        return getattr(record.activation, name[len("activation_"):])
    if name.startswith("gradient_"):
        return math.nan if record.gradient is None else getattr(record.gradient, name[len("gradient_"):])
    value = getattr(record, name)
    return math.nan if value is None else value


class _Probe:
    """The observer LayerStats puts into the model: hands every step to it, and to the observer
    that was there before (a profiler or a trace around ``fit`` keeps working)."""

    def __init__(self, stats: LayerStats, previous):
        self.stats, self.previous = stats, previous

    def before(self, step, phase):
        self.previous.before(step, phase)

    def after(self, step, phase, inputs, output):
        self.stats._observe(step, phase, inputs, output)
        self.previous.after(step, phase, inputs, output)
