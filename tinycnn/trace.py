"""Step-through backprop: record every array of one training step, then walk the backward pass.

.. code-block:: python

    trace = model.trace_step(x, y)          # or tinycnn.trace_step(model, x, y)
    print(trace)                            # a table: shapes and statistics of every array
    for event in trace.step_through():      # the backward pass, one formula at a time
        print(event)
    trace["conv2d"].grads["kernel"]         # any recorded array (copies: safe to keep)

:func:`trace_step` runs exactly the computation of :meth:`tinycnn.Sequential.loss_and_grads` —
the same layers' ``forward`` and ``backward``, the same fused softmax/sigmoid + cross-entropy,
the same weight penalties — and keeps a copy of every array on the way::

    forward    X ─layer─▶ Y                  Conv2D/Dense with an activation:  X ─linear─▶ Z ─act─▶ Y
    loss       L = loss(logits, y)           dlogits = dL/dlogits, e.g. (p − y)/N
    backward   dY ─layer.backward─▶ dX       fills layer.grads (dW, db); dX becomes the dY below

Notation, used in every formula: ``X`` a layer's input, ``Y`` its output, ``Z`` the
pre-activation of a layer with a built-in activation (``Y = act(Z)``), ``W``/``b`` its kernel
and bias, and ``dA`` the gradient of the loss with respect to ``A`` (same shape as ``A``).

Nothing here re-derives the math: the trace runs the model's own training step —
``model.loss_and_grads`` (or ``model.train_on_batch`` with ``update=True``) — in teaching mode
(:func:`tinycnn.teaching`: every layer's own ``forward`` and ``backward``, one after the other, on
:mod:`tinycnn.functional`), and watches it through :meth:`tinycnn.Sequential.observe`, copying
every array on the way. A Conv2D/Dense with a built-in activation keeps its pre-activation ``Z``
and ``dZ`` (``layer.preactivation``, ``layer.grad_preactivation``), so a learner sees the
activation's ``dZ = dY ⊙ [Z > 0]`` apart from the linear part. The gradients it leaves in every
``layer.grads`` are those ``loss_and_grads`` computes in teaching mode, bit for bit.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from . import ops
from .gradcheck import repeatable
from .layers import Sigmoid, Softmax
from .layers.base import snake_case
from .losses import SoftmaxCrossEntropy

__all__ = ["trace_step", "Trace", "LayerTrace", "Event"]

#: How formulas name each parameter (``dW = Xᵀ · dZ``).
SYMBOLS = {"kernel": "W", "bias": "b", "gamma": "γ", "beta": "β"}


# -------------------------------------------------------------------------------------------------
# What is recorded
# -------------------------------------------------------------------------------------------------
@dataclass(repr=False)
class LayerTrace:
    """What one layer saw and computed during the traced step. Every array is a copy.

    Forward: ``input`` (X) ──▶ ``output`` (Y). For a Conv2D/Dense with a built-in activation also
    ``preactivation`` (Z, what the linear part computed, before the activation).

    Backward: ``grad_output`` (dY = dL/dY, from the layer above) ──▶ ``grad_input`` (dX = dL/dX,
    handed to the layer below); ``grad_preactivation`` (dZ) for a built-in activation; ``grads``
    (dL/dW for each parameter: what the optimizer receives, weight penalty included).

    ``fused`` marks the final softmax/sigmoid whose backward the model skips: the loss computes
    the gradient at its input directly, so ``grad_output`` (dL/dprobabilities) is None there.
    """

    index: int
    name: str
    type: str
    activation: str | None                       # built-in activation of a Conv2D/Dense ("relu")
    config: dict                                 # the layer's constructor arguments (get_config())
    input: np.ndarray
    output: np.ndarray
    preactivation: np.ndarray | None = None
    grad_output: np.ndarray | None = None
    grad_preactivation: np.ndarray | None = None
    grad_input: np.ndarray | None = None
    params: dict[str, np.ndarray] = field(default_factory=dict)          # before the step
    grads: dict[str, np.ndarray] = field(default_factory=dict)           # what the optimizer gets
    backward_grads: dict[str, np.ndarray] = field(default_factory=dict)  # from backward, before penalties
    penalty_grads: dict[str, np.ndarray] = field(default_factory=dict)   # weight penalty's share: 2·l2·W
    updates: dict[str, np.ndarray] = field(default_factory=dict)         # after − before (update=True)
    fused: bool = False

    @property
    def label(self) -> str:
        """``conv2d (Conv2D + relu)``."""
        return f"{self.name} ({self.type}{' + ' + self.activation if self.activation else ''})"

    def __repr__(self) -> str:
        return f"<LayerTrace {self.label}: {_shape(self.input)} → {_shape(self.output)}>"


@dataclass(repr=False)
class Event:
    """One step of the backward pass (or of the update), as :meth:`Trace.step_through` yields it.

    ``layer`` is the layer's name (``"loss"`` for the loss), ``kind`` what happens (``"loss"``,
    ``"relu"``, ``"conv2d"``, ``"max_pool2d"``, ``"penalty"``, ``"update"``, ...), ``formula`` the
    computation in the notation of :mod:`tinycnn.trace`, ``arrays`` the arrays the formula names.
    """

    step: int
    total: int
    layer: str
    kind: str
    formula: str
    explanation: str
    arrays: dict[str, np.ndarray]

    def __str__(self) -> str:
        width = max([len(k) for k in self.arrays] + [2])
        title = self.layer if self.kind == self.layer else f"{self.layer} · {self.kind}"
        lines = [f"── step {self.step}/{self.total} · {title} " + "─" * max(4, 60 - len(title)),
                 f"  {self.formula}",
                 *textwrap.wrap(self.explanation, 100, initial_indent="  ", subsequent_indent="  ")]
        for key, value in self.arrays.items():
            lines.append(f"    {key:<{width}}  {_shape(value):<18} {_stats_text(value)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Event {self.step}/{self.total} {self.layer} · {self.kind}: {self.formula}>"

    def _repr_pretty_(self, printer, cycle):         # IPython / Jupyter show the whole event
        printer.text(str(self))


@dataclass(repr=False)
class Trace:
    """Everything one training step computed; see :func:`trace_step`.

    ``layers`` holds one :class:`LayerTrace` per layer, in forward order (``trace["conv2d"]`` or
    ``trace[0]`` picks one). ``loss`` is what ``loss_and_grads`` returns: ``data_loss`` (the
    cross-entropy) plus ``penalty`` (weight penalties). ``logits`` are what the loss worked on,
    ``probabilities`` the model's predictions, ``grad_logits`` = dL/dlogits, where backprop starts.
    """

    model: str
    loss_name: str
    fused: bool
    x: np.ndarray
    labels: np.ndarray
    sample_weight: np.ndarray | None
    layers: list[LayerTrace]
    logits: np.ndarray
    probabilities: np.ndarray
    grad_logits: np.ndarray
    data_loss: float
    penalty: float
    loss: float
    accuracy: float
    updated: bool
    optimizer: str
    update_formula: str

    def __getitem__(self, key) -> LayerTrace:
        if isinstance(key, str):
            for record in self.layers:
                if record.name == key:
                    return record
            raise KeyError(f"trace: no layer named {key!r}; the layers are {[r.name for r in self.layers]}")
        return self.layers[key]

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        return f"<Trace of '{self.model}': {len(self.layers)} layers, batch of {len(self.x)}, loss {self.loss:.6g}>"

    def _repr_pretty_(self, printer, cycle):         # IPython / Jupyter show the table
        printer.text(str(self))

    # -- the table ------------------------------------------------------------------------
    def __str__(self) -> str:
        head = f"{'layer / array':<34}{'shape':<20}{'mean':>11}{'std':>11}{'min':>11}{'max':>11}{'norm':>11}"
        rule = "─" * len(head)
        fused = f", {self.layers[-1].activation or self.layers[-1].type.lower()} fused with the loss" \
            if self.fused else ", from logits"
        lines = [f"One training step of '{self.model}': batch of {len(self.x)}, "
                 f"{self.loss_name}{fused}{', update applied' if self.updated else ''}",
                 rule, head, rule, _row("input x", self.x)]
        for r in self.layers:
            shapes = f"{_shape(r.input)} → {_shape(r.output)}"
            lines.append(f"{r.index:>2} {r.label:<31}{shapes}")
            rows = [("Z   pre-activation", r.preactivation), ("Y   output", r.output),
                    ("dY  dL/doutput", r.grad_output), ("dZ  dL/dpre-activation", r.grad_preactivation),
                    ("dX  dL/dinput", r.grad_input)]
            rows += [(f"d{SYMBOLS.get(k, k)}  dL/d{k}", g) for k, g in r.grads.items()]
            rows += [(f"Δ{SYMBOLS.get(k, k)}  update of {k}", u) for k, u in r.updates.items()]
            for what, a in rows:
                if a is not None:
                    lines.append(_row("     " + what, a))
                elif what.startswith("dY") and r.fused:
                    lines.append("     dY  dL/doutput                not computed: fused with the loss")
        penalty = f" + weight penalty {self.penalty:.6g} = {self.loss:.6g}" if self.penalty else ""
        lines += [rule, f"loss {self.data_loss:.6g} ({self.loss_name}){penalty}   accuracy {self.accuracy:.3f}",
                  _row("dlogits  dL/dlogits", self.grad_logits)]
        if len(self.x) <= 4:
            probs = np.array2string(self.probabilities, precision=4, suppress_small=True, separator=", ")
            lines.append(f"probabilities {probs}   labels {self.labels.tolist()}")
        return "\n".join(lines)

    # -- the walk-through -----------------------------------------------------------------
    def step_through(self) -> Iterator[Event]:
        """The backward pass one event at a time: the loss first, then down the layers (a layer's
        built-in activation is its own event, before the layer's linear part), then weight
        penalties, then — if the step was applied — each layer's update.

        Each :class:`Event` has ``layer``, ``kind``, ``formula``, ``explanation`` and ``arrays``;
        ``print(event)`` shows them with shapes and statistics.
        """
        parts = [_loss_event(self)]
        for i, r in reversed(list(enumerate(self.layers))):
            below = self.layers[i - 1].name if i else "the input"
            if r.fused:
                parts.append(_fused_event(r, below))
                if r.type in ("Softmax", "Sigmoid"):
                    continue
            elif r.preactivation is not None:
                parts.append(_activation_event(r, builtin=True))
            parts.append(_layer_event(r, below))
        for r in self.layers:
            if r.penalty_grads:
                parts.append(_penalty_event(r))
        if self.updated:
            parts += [_update_event(r, self.update_formula, self.optimizer) for r in self.layers if r.updates]
        for step, (layer, kind, formula, explanation, arrays) in enumerate(parts, start=1):
            yield Event(step, len(parts), layer, kind, formula, explanation, arrays)


# -------------------------------------------------------------------------------------------------
# Recording one step
# -------------------------------------------------------------------------------------------------
def trace_step(model, x, y, sample_weight=None, update=False) -> Trace:
    """Run one training step on a compiled :class:`tinycnn.Sequential` and record it all.

    The step is the model's own: ``model.loss_and_grads(x, y, sample_weight)`` in teaching mode
    (the layers one by one, :mod:`tinycnn.functional`), so afterwards every ``layer.grads`` holds
    what it computes, and ``trace.loss`` is its loss. (Outside teaching mode the kernels compute
    the same numbers to float rounding.)

    ``update=False`` (default): the model's weights do not change, and neither do its moving
    statistics (BatchNormalization) or random generators (Dropout), so tracing is free of side
    effects apart from ``layer.grads``. ``update=True``: the step is ``model.train_on_batch``, so
    the optimizer step is applied exactly as there, and each layer's ``updates`` records the change
    of every parameter; a non-finite loss or gradient raises :class:`tinycnn.NonFiniteError` and
    the step is not applied (the model is left as it was).

    Errors come from the model's own checks: an uncompiled model, an input of the wrong shape or
    dtype, labels that do not fit the output, ``y`` with a different number of samples than ``x``.
    """
    if not all(hasattr(model, name) for name in ("observe", "loss_and_grads", "layers")):
        raise TypeError(f"trace_step: expected a tinycnn.Sequential, got {type(model).__name__}")
    if not isinstance(update, bool):
        raise TypeError(f"trace_step: update must be True or False, got {update!r}")
    model._require_compiled()
    x = model._prepare_input(x)
    y = np.asarray(y)
    if y.ndim == 0 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{model.name}: x has {x.shape[0]} samples but y has shape {y.shape}")
    recorder = _Recorder(model)
    restore = repeatable(model.layers)      # puts moving statistics and dropout generators back
    try:
        with ops.teaching(), model.observe(recorder):
            if update:
                model.train_on_batch(x, y, sample_weight)
            else:
                model.loss_and_grads(x, y, sample_weight)
    except BaseException:
        restore()                           # a step that is not applied leaves no trace in the model
        raise
    if not update:
        restore()
    records, (data_loss, grad_logits), logits = recorder.records, recorder.loss, recorder.logits
    if model._fused() and isinstance(model.layers[-1], (Softmax, Sigmoid)):   # its backward is skipped:
        records[-1].fused, records[-1].grad_input = True, grad_logits.copy()  # the loss gave dL/dlogits
    penalty = float(sum(recorder.penalties))
    for layer, record in zip(model.layers, records):
        record.grads = {k: g.copy() for k, g in layer.grads.items()}
        if update:
            record.updates = {k: layer.params[k] - record.params[k] for k in layer.params}
    return Trace(model=model.name, loss_name=type(model.loss).__name__, fused=model._fused(), x=x.copy(),
                 labels=np.array(model.loss.check_labels(y, logits.shape)),
                 sample_weight=None if sample_weight is None else np.array(sample_weight),
                 layers=records, logits=logits, probabilities=model.loss.probabilities(logits),
                 grad_logits=grad_logits, data_loss=data_loss, penalty=penalty, loss=data_loss + penalty,
                 accuracy=model.loss.accuracy(logits, y), updated=update,
                 optimizer=_describe(model.optimizer), update_formula=_update_formula(model.optimizer))


class _Recorder:
    """The observer of the traced step: a copy of every array the model's step hands it."""

    def __init__(self, model):
        self.model = model
        self.index = {id(layer): i for i, layer in enumerate(model.layers)}
        self.records: list[LayerTrace] = []
        self.penalties: list[float] = []
        self.loss = self.logits = None

    def before(self, step, phase):
        pass

    def after(self, step, phase, inputs, output):
        if phase == "forward":
            self.records.append(LayerTrace(
                self.index[id(step)], step.name, type(step).__name__,
                activation=getattr(step, "activation_name", None), config=step.get_config(),
                input=inputs.copy(), output=output.copy(), preactivation=_copy(step.preactivation),
                params={k: v.copy() for k, v in step.params.items()}))
        elif phase == "loss":
            self.logits = inputs.copy()
            self.loss = (output[0], output[1].copy())
        elif phase == "backward":
            record = self.records[self.index[id(step)]]
            last = record.index == len(self.records) - 1
            if last and self.model._fused():                # entered below the final activation
                record.fused = True
            else:
                record.grad_output = inputs.copy()
            record.grad_preactivation = _copy(step.grad_preactivation)
            record.grad_input = _copy(output)
            record.backward_grads = {k: g.copy() for k, g in step.grads.items()}
        elif phase == "penalty":
            penalty, grad = output
            self.penalties.append(penalty)
            self.records[self.index[id(step)]].penalty_grads = {"kernel": grad.copy()}


def _copy(a):
    return None if a is None else a.copy()


def _describe(optimizer) -> str:
    """``Adam(learning_rate=0.001, beta_1=0.9, ...)``."""
    config = optimizer.get_config().items()
    return f"{type(optimizer).__name__}(" + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                                     for k, v in config) + ")"


def _update_formula(optimizer) -> str:
    from .optimizers import SGD, Adam, AdamW
    if isinstance(optimizer, AdamW):
        return "W ← W − lr·wd·W, then Adam: W ← W − α · m / (√v + ε)"
    if isinstance(optimizer, Adam):
        return "m ← m + (dW − m)(1 − β1),  v ← v + (dW² − v)(1 − β2),  W ← W − α · m / (√v + ε)"
    if isinstance(optimizer, SGD):
        if not optimizer.momentum:
            return "W ← W − lr · dW"
        if optimizer.nesterov:
            return "v ← μ·v − lr·dW,  W ← W + μ·v − lr·dW"
        return "v ← μ·v − lr·dW,  W ← W + v"
    return f"W ← {type(optimizer).__name__} step(W, dW)"


# -------------------------------------------------------------------------------------------------
# The events of step_through: (layer, kind, formula, explanation, arrays)
# -------------------------------------------------------------------------------------------------
def _loss_event(t: Trace):
    n = len(t.x)
    weighted = t.sample_weight is not None
    arrays = {"p": t.probabilities}
    if t.loss_name == SoftmaxCrossEntropy.__name__:
        arrays["y"] = np.eye(t.logits.shape[-1], dtype=t.logits.dtype)[t.labels]
        formula = "dlogits = w ⊙ (p − y) / N" if weighted else "dlogits = (p − y) / N"
        what = (f"L = −(1/N) Σ log p[n, yₙ] = {t.data_loss:.4g}: minus the log of the probability given to "
                f"the true class, averaged over the N = {n} image(s); y is the one-hot label.")
        how = "Softmax and cross-entropy together have the simplest gradient there is: predicted minus true."
    else:
        arrays["y"] = t.labels.astype(t.logits.dtype).reshape(t.logits.shape)
        k = t.logits.size // n
        formula = f"dlogits = {'w ⊙ ' if weighted else ''}(p − y) / (N·K)"
        what = (f"L = mean of −y·log p − (1 − y)·log(1 − p) over the N = {n} image(s) and K = {k} output(s) "
                f"= {t.data_loss:.4g}, with p = σ(logits).")
        how = "Sigmoid and binary cross-entropy together have the gradient predicted minus true."
    where = ("It is computed from the logits (never log 0) and enters the network below the final "
             "activation, whose own backward never runs." if t.fused else "The model outputs the logits itself.")
    if weighted:
        arrays["w"] = t.sample_weight
    arrays["dlogits"] = t.grad_logits
    return "loss", "loss", formula, f"{what} {how} {where}", arrays


def _fused_event(r: LayerTrace, below: str):
    """The final softmax/sigmoid fused with the loss: its backward is skipped."""
    kind = r.activation or r.type.lower()
    d_in = "dZ" if r.activation else "dX"
    goes_to = f"the linear part of {r.name}" if r.activation else below
    return (r.name, kind, f"{d_in} = dlogits      ({kind} fused with the loss)",
            f"The {kind} and the loss were differentiated together: the gradient at the {kind}'s input is "
            f"dlogits, and dL/d(probabilities) is never formed (it divides by p, which can be tiny). "
            f"{d_in} goes on to {goes_to}.",
            {d_in: r.grad_preactivation if r.activation else r.grad_input})


def _activation_event(r: LayerTrace, builtin: bool):
    """An activation's backward: inside a Conv2D/Dense (Z → Y) or as a layer of its own (X → Y)."""
    kind = r.activation if builtin else {"ReLU": "relu", "LeakyReLU": "leaky_relu"}.get(r.type, r.type.lower())
    a, a_value = ("Z", r.preactivation) if builtin else ("X", r.input)
    arrays = {"dY": r.grad_output}
    if kind == "relu":
        formula = f"d{a} = dY ⊙ [{a} > 0]"
        text = (f"ReLU passes the gradient where its input {a} was positive and blocks it where {a} was clamped "
                f"to 0 (there the output did not depend on {a}). Here {np.mean(a_value > 0):.0%} of the entries "
                "let it through.")
        arrays[a] = a_value
    elif kind == "leaky_relu":
        formula = f"d{a} = dY ⊙ (1 if {a} > 0 else α)"
        text = f"Leaky ReLU passes the gradient where {a} > 0 and scales it by the slope α elsewhere."
        arrays[a] = a_value
    elif kind == "sigmoid":
        formula = f"d{a} = dY ⊙ Y ⊙ (1 − Y)"
        text = "The sigmoid's slope is Y(1 − Y): largest at Y = 0.5, tiny near 0 and 1."
        arrays["Y"] = r.output
    elif kind == "tanh":
        formula = f"d{a} = dY ⊙ (1 − Y²)"
        text = "tanh's slope is 1 − Y²: 1 at the origin, vanishing where it saturates."
        arrays["Y"] = r.output
    elif kind == "softmax":
        formula = f"d{a} = Y ⊙ (dY − Σⱼ dYⱼ Yⱼ)"
        text = "Every softmax output depends on every input: the Jacobian-vector product of the softmax."
        arrays["Y"] = r.output
    else:
        formula, text = f"d{a} = {kind}.backward(dY)", f"The backward of {kind}."
    arrays[f"d{a}"] = r.grad_preactivation if builtin else r.grad_input
    if builtin:
        text += (f" This {kind} is built into {r.name}: in forward it came after the linear part, so in "
                 "backward it comes first.")
    return r.name, kind, formula, text, arrays


def _layer_event(r: LayerTrace, below: str):
    """The backward of one layer (the linear part, for a Conv2D/Dense with an activation)."""
    d_out = "dZ" if r.preactivation is not None else "dY"
    dz = r.grad_preactivation if r.preactivation is not None else r.grad_output
    has_bias = "bias" in r.grads
    grads = {f"d{SYMBOLS[k]}": r.backward_grads[k] for k in ("kernel", "bias") if k in r.grads}
    sends = f"dX goes to {below}." if below != "the input" else "dX is the gradient with respect to the image."
    if r.type == "Dense":
        formula = ",  ".join([f"dW = Xᵀ · {d_out}", *([f"db = Σₙ {d_out}"] if has_bias else []),
                              f"dX = {d_out} · Wᵀ"])
        text = (f"Y = X · W + b. Weight W[i, j] connects input i to output j, so its gradient sums input i × "
                f"the gradient of output j over the batch; db sums {d_out} over the batch; each input collects "
                f"the gradients of all outputs it feeds, weighted by W. {sends}")
        return (r.name, "dense", formula, text,
                {"X": r.input, d_out: dz, "W": r.params["kernel"], **grads, "dX": r.grad_input})
    if r.type == "Conv2D":
        formula = ",  ".join([f"dW = colsᵀ · {d_out}", *([f"db = Σ {d_out}"] if has_bias else []),
                              f"dX = col2im({d_out} · Wᵀ)"])
        text = (f"Forward was one matrix product, cols · W, where each row of cols is one input window "
                f"(im2col). Backward is two: colsᵀ · {d_out} sums every window × its gradient into the "
                f"kernel's gradient, {d_out} · Wᵀ gives each window copy a gradient, and col2im adds those back "
                f"onto the pixels they came from (a pixel in k windows collects k terms). {d_out} is used as "
                f"a (N·Ho·Wo, F) matrix. {sends}")
        return (r.name, "conv2d", formula, text,
                {"cols": _cols(r), d_out: dz, "W": r.params["kernel"], **grads, "dX": r.grad_input})
    base = {"X": r.input, "Y": r.output, "dY": r.grad_output}
    if r.type == "MaxPool2D":
        (ph, pw), got = r.config["pool_size"], np.count_nonzero(r.grad_input)
        text = (f"Only the largest value of each {ph}×{pw} window reached the output, so dY goes to the "
                f"position of each window's max (the first one on ties, as in TensorFlow); the other positions "
                f"get 0. Here {got} of {r.grad_input.size} input positions receive a gradient. {sends}")
        return r.name, "max_pool2d", "dX = dY at each window's max (argmax), 0 elsewhere", text, \
            {**base, "dX": r.grad_input}
    if r.type == "Flatten":
        text = (f"Flatten only lines the numbers up in (H, W, C) order; backward puts each gradient back "
                f"where its value came from: {_shape(r.grad_output)} → {_shape(r.grad_input)}. {sends}")
        return r.name, "flatten", "dX = reshape(dY, X.shape)", text, {"dY": r.grad_output, "dX": r.grad_input}
    if r.type in ("ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax"):
        return _activation_event(r, builtin=False)
    formula, text = _OTHER_LAYERS.get(r.type, ("dX = backward(dY)", f"The backward of {r.type}."))
    grads = {f"d{SYMBOLS.get(k, k)}": g for k, g in r.backward_grads.items()}
    return r.name, snake_case(r.type), formula, f"{text} {sends}", {**base, **grads, "dX": r.grad_input}


_OTHER_LAYERS = {           # type: (formula, explanation)
    "Dropout": ("dX = dY ⊙ mask / (1 − rate)",
                "Only the units kept in the forward pass get a gradient, scaled like their values were."),
    "AveragePooling2D": ("dX = each window's dY / count, shared by its pixels",
                         "Every value of a window counted equally in its mean, so it gets an equal share."),
    "GlobalAveragePooling2D": ("dX = dY / (H·W), the same at every position",
                               "Each output is the mean of a whole feature map."),
    "BatchNormalization": ("dγ = Σ dY ⊙ x̂,  dβ = Σ dY,  dX = (m·dx̂ − Σ dx̂ − x̂ · Σ dx̂ ⊙ x̂) / (m·√(σ² + ε))",
                           "The batch mean and variance depend on every input, so dX has three paths: direct, "
                           "through μ, through σ² (dx̂ = dY · γ)."),
}


def _penalty_event(r: LayerTrace):
    return (r.name, "penalty", "dW ← dW + 2·l2·W      (the L2 penalty l2·ΣW² is part of the loss)",
            "The weight penalty pulls every weight toward 0: its gradient is added to the kernel's after "
            "backward.", {"W": r.params["kernel"], "2·l2·W": r.penalty_grads["kernel"], "dW": r.grads["kernel"]})


def _update_event(r: LayerTrace, formula: str, optimizer: str):
    arrays = {}
    for key, change in r.updates.items():
        s = SYMBOLS.get(key, key)
        arrays.update({s: r.params[key], f"d{s}": r.grads[key], f"Δ{s}": change})
    return (r.name, "update", formula,
            f"{optimizer} moves every parameter against its gradient (Δ = after − before); for a small enough "
            "step, the loss on this batch goes down.", arrays)


def _cols(r: LayerTrace) -> np.ndarray:
    """The im2col matrix of a Conv2D's (padded) input, recomputed from the recorded input."""
    from .im2col import im2col, pad, padding_amounts
    kernel, strides, padding = r.config["kernel_size"], r.config["strides"], r.config["padding"]
    pads = padding_amounts(r.input.shape[1], r.input.shape[2], kernel, strides, padding)
    return im2col(pad(r.input, pads), kernel, strides)


# -------------------------------------------------------------------------------------------------
# Formatting
# -------------------------------------------------------------------------------------------------
def _shape(a: np.ndarray) -> str:
    return str(tuple(a.shape))


def _stats(a: np.ndarray) -> tuple[float, float, float, float, float]:
    """mean, std, min, max and Euclidean norm (of all entries)."""
    a = np.asarray(a, dtype=np.float64)
    if a.size == 0:
        return (math.nan,) * 5
    lo, hi = float(a.min()) + 0.0, float(a.max()) + 0.0           # + 0.0 turns ReLU's -0.0 into 0.0
    return float(a.mean()), float(a.std()), lo, hi, float(np.sqrt(np.sum(a * a)))


def _stats_text(a: np.ndarray) -> str:
    mean, std, lo, hi, norm = _stats(a)
    return f"mean {mean:10.3g}  std {std:9.3g}  min {lo:10.3g}  max {hi:10.3g}  norm {norm:9.3g}"


def _row(what: str, a: np.ndarray) -> str:
    return f"{what:<34}{_shape(a):<20}" + "".join(f"{v:11.3g}" for v in _stats(a))
