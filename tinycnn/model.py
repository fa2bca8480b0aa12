"""Sequential: a stack of layers with Keras's build / compile / fit / evaluate / predict.

One training step, the whole of backprop::

    out  = x
    for layer in layers:            out  = layer.forward(out, training=True)
    loss = loss_fn.forward(logits, y);  grad = loss_fn.backward()        # dL/dlogits
    for layer in reversed(layers):  grad = layer.backward(grad)          # fills layer.grads
    optimizer.apply(params, grads)

When the last layer ends in a softmax (or sigmoid) and the loss is the matching cross-entropy —
``Dense(n, activation="softmax")`` with ``"sparse_categorical_crossentropy"``, as in Keras — the
loss is computed from that layer's logits and its gradient enters the layer *below* the
activation: the fused, numerically stable ``(p − y)/N``.
"""

from __future__ import annotations

import contextlib
import functools
import math

import numpy as np
from tqdm import tqdm          # the plain text bar: works in terminals and notebooks alike

from . import io, ops, regularizers
from . import losses as losses_mod
from . import optimizers as optimizers_mod
from .callbacks import as_callback
from .layers.activations import Sigmoid, Softmax
from .layers.base import Layer
from .safety import DeferredInterrupt, NonFiniteError, first_nonfinite_gradient, first_nonfinite_output
from .trace import trace_step
from .training import Checkpoints, Rewind, check_sampler, class_weight_array, epoch_order


def _one_blas_thread(method):
    """Run a model entry point with one BLAS thread per Python thread (see :func:`tinycnn.ops.one_blas_thread`)."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with ops.one_blas_thread():
            return method(*args, **kwargs)
    return wrapper


class Observer:
    """Watches a training step from inside the model — how the trace tool and the profiler see each
    layer without changing it. ``with model.observe(observer): ...`` calls, around every step of
    ``forward``, ``backward``, the ``loss`` and the ``optimizer`` update::

        observer.before(step, phase)
        observer.after(step, phase, inputs, output)    # forward: x, y   backward: dy, dx
                                                        # loss: logits, (loss, dlogits)
                                                        # penalty: the layer, (l2·ΣW², 2·l2·W)

    ``step`` is a layer (or, outside teaching mode, a fused step of several). Does nothing by default.
    """

    def before(self, step, phase):
        pass

    def after(self, step, phase, inputs, output):
        pass


NOBODY = Observer()


class Sequential:
    """A linear stack of layers.

    Parameters
    ----------
    layers : list of layers (more can be added with :meth:`add`).
    input_shape : per-sample input shape, e.g. ``(28, 28, 1)``; builds the model at once.
        Without it the model is built by :meth:`build` or on the first batch it sees.
    seed : int or None. One seed makes a run reproducible: the initial weights and the
        shuffling order come from ``numpy.random.Generator`` streams derived from it.
    dtype : ``"float32"`` (default, for training) or ``"float64"`` (gradient checks).
    """

    def __init__(self, layers=None, input_shape=None, seed=None, dtype="float32", name="sequential"):
        self.name = name
        self.layers: list[Layer] = []
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"Sequential: dtype must be float32 or float64, got {self.dtype}")
        self.seed = seed
        init_seq, shuffle_seq = np.random.SeedSequence(seed).spawn(2)
        self._init_rng = np.random.default_rng(init_seq)
        self.rng = np.random.default_rng(shuffle_seq)      # shuffling (and, later, dropout)
        self.input_shape: tuple[int, ...] | None = None
        self.optimizer = None
        self.loss = None
        self.metadata: dict = {}        # free-form JSON saved with the model (dataset, labels, ...)
        self.stop_training = False      # a callback may set this to end fit() after the epoch
        #: outside teaching mode, run each Conv2D(relu) → MaxPool2D pair as one fused kernel step
        #: (tinycnn.kernels.fused); False: the layers one by one
        self.fuse = True
        self._plan = (None, [])             # (what the plan was made for, the steps)
        self._observer = NOBODY
        self._last_finite = optimizers_mod.LastFiniteStep()   # undoes an update that overflowed
        for layer in layers or []:
            self.add(layer)
        if input_shape is not None:
            self.build(input_shape)

    # -- construction ---------------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add: expected a tinycnn layer, got {type(layer).__name__}")
        if self.input_shape is not None:
            raise RuntimeError("Sequential.add: the model is already built; add layers before building it")
        taken = {existing.name for existing in self.layers}
        if layer.name in taken:                 # conv2d, conv2d_1, conv2d_2 ... as in Keras
            base, k = layer.name, 1
            while f"{base}_{k}" in taken:
                k += 1
            layer.name = f"{base}_{k}"
        self.layers.append(layer)

    def build(self, input_shape) -> None:
        """Create every layer's weights, propagating the shape through the stack."""
        if not self.layers:
            raise ValueError("Sequential: cannot build a model with no layers")
        shape = tuple(int(s) for s in input_shape)
        if not shape or min(shape) < 1:
            raise ValueError(f"Sequential: input_shape must be positive sizes without the batch axis, got {input_shape!r}")
        self.input_shape = shape
        for layer in self.layers:
            shape = layer.build(shape, self._init_rng, self.dtype)

    @property
    def built(self) -> bool:
        return self.input_shape is not None

    @property
    def output_shape(self):
        return self.layers[-1].output_shape if self.built else None

    def astype(self, dtype) -> "Sequential":
        """Convert every weight (and the model's dtype) in place; returns the model."""
        self.dtype = np.dtype(dtype)
        for layer in self.layers:
            layer.dtype = self.dtype
            for key in layer.params:
                layer.params[key] = layer.params[key].astype(self.dtype)
                layer.grads[key] = np.zeros_like(layer.params[key])
            for key in layer.state:
                layer.state[key] = layer.state[key].astype(self.dtype)
        if self.optimizer is not None:
            self.optimizer.slots = None
        return self

    # -- parameters -----------------------------------------------------------------------
    def named_params(self) -> list[tuple[str, np.ndarray]]:
        """``[("conv2d/kernel", array), ("conv2d/bias", array), ...]`` in layer order."""
        return [(f"{layer.name}/{key}", value) for layer in self.layers for key, value in layer.params.items()]

    @property
    def params(self) -> list[np.ndarray]:
        return [value for _, value in self.named_params()]

    @property
    def grads(self) -> list[np.ndarray]:
        return [layer.grads[key] for layer in self.layers for key in layer.params]

    def named_state(self) -> list[tuple[str, np.ndarray]]:
        """Non-trainable arrays, e.g. ``("batch_normalization/moving_mean", array)``."""
        return [(f"{layer.name}/{key}", value) for layer in self.layers for key, value in layer.state.items()]

    def named_weights(self) -> list[tuple[str, np.ndarray]]:
        """Trainable and non-trainable arrays in Keras's order: layer by layer, params then state."""
        return [(f"{layer.name}/{key}", value) for layer in self.layers
                for key, value in [*layer.params.items(), *layer.state.items()]]

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def count_trainable_params(self) -> int:
        return sum(p.size for p in self.params)

    def get_weights(self) -> list[np.ndarray]:
        """Copies of all weights in Keras's order (layer by layer; kernel, bias; BatchNormalization:
        gamma, beta, moving_mean, moving_variance), as ``keras_model.get_weights()``."""
        return [w.copy() for _, w in self.named_weights()]

    def set_weights(self, weights) -> None:
        mine = self.named_weights()
        if len(weights) != len(mine):
            raise ValueError(f"set_weights: the model has {len(mine)} weight arrays, got {len(weights)}")
        for (name, param), new in zip(mine, weights):
            new = np.asarray(new)
            if new.shape != param.shape:
                raise ValueError(f"set_weights: {name} has shape {param.shape}, got {new.shape}")
            param[...] = new

    # -- summary --------------------------------------------------------------------------
    def summary(self, print_fn=print) -> str:
        """Layer, output shape and parameter count per layer, like Keras's ``model.summary()``."""
        if not self.built:
            raise RuntimeError("Sequential.summary: the model is not built; pass input_shape or call build()")
        rows = [(f"{layer.name} ({type(layer).__name__})", str((None, *layer.output_shape)),
                 f"{layer.count_params():,}") for layer in self.layers]
        head = ("Layer (type)", "Output Shape", "Param #")
        widths = [max(len(r[i]) for r in rows + [head]) + 2 for i in range(3)]
        line = "─" * sum(widths)
        fmt = lambda r: f"{r[0]:<{widths[0]}}{r[1]:<{widths[1]}}{r[2]:>{widths[2]}}"  # noqa: E731
        total, trainable = self.count_params(), self.count_trainable_params()
        text = "\n".join([f'Model: "{self.name}"', line, fmt(head), line, *map(fmt, rows), line,
                          f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                          f"Non-trainable params: {total - trainable:,}", line])
        if print_fn is not None:
            print_fn(text)
        return text

    # -- compile --------------------------------------------------------------------------
    def compile(self, optimizer="adam", loss="sparse_categorical_crossentropy") -> None:
        """Choose the optimizer and loss: objects, or Keras's names (``"adam"``, ``"sgd"``,
        ``"sparse_categorical_crossentropy"``, ``"binary_crossentropy"``)."""
        self.optimizer = optimizers_mod.get(optimizer)
        self.loss = losses_mod.get(loss)
        if self.layers:
            self._check_loss_matches_output()

    def _output_activation(self) -> str | None:
        last = self.layers[-1]
        if isinstance(last, (Softmax, Sigmoid)):
            return type(last).__name__.lower()
        return getattr(last, "activation_name", None)

    def _check_loss_matches_output(self) -> None:
        act = self._output_activation()
        want = self.loss.activation
        if self.loss.from_logits and act in ("softmax", "sigmoid"):
            raise ValueError(
                f"{type(self.loss).__name__}(from_logits=True) expects raw logits, but the last layer "
                f"'{self.layers[-1].name}' applies {act}; remove that activation or use from_logits=False"
            )
        if not self.loss.from_logits and act != want:
            raise ValueError(
                f"loss {type(self.loss).__name__}(from_logits=False) expects the model to end in {want}, "
                f"but the last layer '{self.layers[-1].name}' has activation {act!r}; add "
                f"activation='{want}' or use {type(self.loss).__name__}() (from logits)"
            )

    def _fused(self) -> bool:
        """True when the model ends in the softmax/sigmoid that the loss is fused with."""
        return not self.loss.from_logits

    def _final_activation(self):
        """The model's final softmax/sigmoid — the last layer, or the activation the last layer owns
        (``Dense(..., activation="softmax")``) — or None."""
        last = self.layers[-1]
        activation = last if isinstance(last, (Softmax, Sigmoid)) else getattr(last, "activation", None)
        return activation if isinstance(activation, (Softmax, Sigmoid)) else None

    def _logits(self) -> np.ndarray:
        """The last forward pass's logits: the input of the final softmax/sigmoid if fused."""
        return self._final_activation().logits

    # -- forward / backward ---------------------------------------------------------------
    def _prepare_input(self, x, what="x") -> np.ndarray:
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(
                f"{self.name}: {what} must be float images (e.g. uint8 / 255 as float32), got dtype {x.dtype}"
            )
        if x.ndim < 2 or x.shape[0] == 0:
            raise ValueError(f"{self.name}: {what} must be a non-empty batch, got shape {x.shape}")
        if not ops.all_finite(x):
            rows_ok = np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1)
            bad = int(np.flatnonzero(~rows_ok)[0])
            raise ValueError(f"{self.name}: {what} contains NaN or inf (first in sample {bad})")
        if not self.built:
            self.build(x.shape[1:])
        if x.shape[1:] != self.input_shape:
            raise ValueError(
                f"{self.name}: {what} must have shape (batch, {', '.join(map(str, self.input_shape))}), got {x.shape}"
            )
        return x.astype(self.dtype, copy=False)

    def _steps(self) -> list:
        """The layers in the order they run: in teaching mode the layers themselves; otherwise the
        kernels may run a ``Conv2D(activation="relu")`` and the ``MaxPool2D`` after it as one fused
        step (unless ``self.fuse`` is False). The same step objects serve forward and backward."""
        key = (ops.is_teaching(), self.fuse, tuple(map(id, self.layers)))
        if self._plan[0] != key:
            self._plan = (key, ops.plan(self.layers, self.fuse))
        return self._plan[1]

    @contextlib.contextmanager
    def observe(self, observer: Observer):
        """Within the block, ``observer`` sees every forward, backward, loss and update (see :class:`Observer`)."""
        before, self._observer = self._observer, observer
        try:
            yield observer
        finally:
            self._observer = before

    @_one_blas_thread
    def forward(self, x, training=False) -> np.ndarray:
        """Run every layer; returns the last layer's output (probabilities if it ends in softmax)."""
        return self._run(self._prepare_input(x), training)

    def _run(self, out, training) -> np.ndarray:
        """:meth:`forward` on an input :meth:`_prepare_input` has already checked."""
        watch = self._observer
        for step in self._steps():
            watch.before(step, "forward")
            x, out = out, step.forward(out, training=training)
            watch.after(step, "forward", x, out)
        return out

    __call__ = forward

    @_one_blas_thread
    def backward(self, dout, from_logits=False) -> np.ndarray:
        """Backpropagate dL/d(output) through every layer (after a ``forward``); returns dL/dx.

        ``from_logits=True``: ``dout`` is the gradient with respect to the *logits*, the input of
        the model's final softmax or sigmoid, and backprop starts below that activation — the way
        saliency maps and Grad-CAM seed it with d(score)/d(logits) (tutorial 07). A gradient with
        respect to the probabilities would shrink to nothing where the model is confident.
        """
        if from_logits and self._final_activation() is None:
            raise ValueError(
                f"{self.name}: backward(from_logits=True) starts below a final softmax or sigmoid, "
                f"but the last layer '{self.layers[-1].name}' ({type(self.layers[-1]).__name__}) does not "
                "end in one; backward(dout) takes the gradient with respect to its output")
        return self._backprop(dout, from_logits, training=False)

    def _backprop(self, grad, from_logits, training) -> np.ndarray:
        """``grad`` through every step in reverse; ``from_logits``: enter below the final softmax/
        sigmoid (the model must end in one). ``training``: outside teaching mode the first step
        skips dL/dx (nobody needs dL/d(images)); returns dL/dx, or None then."""
        steps = self._steps()
        if from_logits:
            *steps, last = steps
            if not isinstance(last, (Softmax, Sigmoid)):    # Dense/Conv2D(activation=...): enter below it
                grad = self._step_backward(last, grad, preactivation=True)
        for step in reversed(steps):
            skip = training and step is steps[0] and getattr(step, "can_skip_input_grad", False)
            grad = self._step_backward(step, grad, **({"input_grad": False} if skip else {}))
        return grad

    def _step_backward(self, step, grad, **options):
        self._observer.before(step, "backward")
        dx = step.backward(grad, **options)
        self._observer.after(step, "backward", grad, dx)
        return dx

    def compute_loss(self, x, y, sample_weight=None) -> float:
        """The training objective on a batch — training-mode forward pass, the loss, plus any
        weight penalties (``kernel_regularizer``) — without computing gradients."""
        self._require_compiled()
        logits = self._forward_logits(x, training=True)
        return self.loss.forward(logits, y, sample_weight) + self.regularization_loss()

    def _forward_logits(self, x, training) -> np.ndarray:
        """Forward pass returning what the loss works on: the logits (below a fused final
        softmax/sigmoid), or the raw output of a model that ends in logits."""
        out = self.forward(x, training=training)
        return self._logits() if self._fused() else out

    def regularization_loss(self) -> float:
        """Σ of every layer's ``kernel_regularizer`` penalty (0 without regularizers)."""
        return sum(penalty for _, penalty, _ in regularizers.penalties(self.layers))

    @_one_blas_thread
    def loss_and_grads(self, x, y, sample_weight=None) -> tuple[float, np.ndarray]:
        """One forward and backward pass on a batch; fills every layer's grads.

        Returns ``(loss, logits)``; the loss includes weight penalties. No weights change.
        """
        self._require_compiled()
        logits = self._forward_logits(x, training=True)
        watch = self._observer
        watch.before(self.loss, "loss")
        loss = self.loss.forward(logits, y, sample_weight)
        dlogits = self.loss.backward()
        watch.after(self.loss, "loss", logits, (loss, dlogits))
        self._backprop(dlogits, from_logits=self._fused(), training=True)      # from dL/dlogits
        for layer, penalty, grad in regularizers.penalties(self.layers):      # l2·Σw² -> 2·l2·w
            loss += penalty
            layer.grads["kernel"] += grad
            watch.after(layer, "penalty", layer, (penalty, grad))
        return loss, logits

    def trace_step(self, x, y, sample_weight=None, update=False):
        """``loss_and_grads`` (and, with ``update=True``, the optimizer step) with every array recorded:
        ``print(trace)`` for a table, ``trace.step_through()`` for the backward pass formula by formula.
        See :func:`tinycnn.trace.trace_step`."""
        return trace_step(self, x, y, sample_weight=sample_weight, update=update)

    # -- training -------------------------------------------------------------------------
    def _require_compiled(self):
        if self.loss is None or self.optimizer is None:
            raise RuntimeError(f"{self.name}: call compile(optimizer, loss) before training or evaluating")
        self._check_loss_matches_output()

    @_one_blas_thread
    def train_on_batch(self, x, y, sample_weight=None, check_update=True) -> dict:
        """One optimizer step on one batch; returns ``{"loss": ..., "accuracy": ...}`` (before the step).

        If the loss, a layer's output or a gradient is not finite, raises :class:`NonFiniteError`
        naming the first layer where it appeared, and the step is *not* applied. If the update
        makes a weight or an optimizer slot non-finite, the weights, slots and step count of the
        last finite step are put back, and :class:`NonFiniteError` names the array — at the price
        of a copy of them before the step and a look after it. ``fit`` passes
        ``check_update=False``: it gets the same guarantee once per epoch
        (:class:`tinycnn.training.Rewind`).
        """
        if not check_update:
            return self._step(x, y, sample_weight)
        names, params = [name for name, _ in self.named_params()], self.params
        self._last_finite.save(self.optimizer, params)          # the update itself may overflow
        stats = self._step(x, y, sample_weight)
        where = self._last_finite.first_nonfinite(self.optimizer, names, params)
        if where is not None:
            self._last_finite.restore(self.optimizer, params)
            raise NonFiniteError(update_overflow(self.name, where))
        return stats

    def _step(self, x, y, sample_weight=None) -> dict:
        """The step itself: loss and gradients, their finiteness, the optimizer's update."""
        loss, logits = self.loss_and_grads(x, y, sample_weight)
        if not math.isfinite(loss):
            index, layer = first_nonfinite_output(self.layers, self._prepare_input(x))
            where = f"first in the output of layer '{layer.name}' ({type(layer).__name__}, layer {index})" \
                if layer is not None else "in the loss itself (check the labels)"
            raise NonFiniteError(f"{self.name}: the loss is {loss}: non-finite values appeared {where}; "
                                 "the step was not applied")
        layer, key = first_nonfinite_gradient(self.layers)
        if layer is not None:
            raise NonFiniteError(f"{self.name}: non-finite gradient, first in '{layer.name}/{key}' "
                                 "(in backward order); the step was not applied")
        accuracy = self.loss.accuracy(logits, y)
        self._observer.before(self.optimizer, "optimizer")
        self.optimizer.apply(self.params, self.grads)
        self._observer.after(self.optimizer, "optimizer", self.grads, self.params)
        return {"loss": loss, "accuracy": accuracy}

    @_one_blas_thread
    def fit(self, x, y, epochs=1, batch_size=32, validation_data=None, shuffle=True, verbose=1,
            callbacks=(), augment=None, class_weight=None, sampler=None, checkpoint=None,
            checkpoint_best=None, monitor="val_loss", resume=None) -> dict:
        """Train for ``epochs`` passes over ``(x, y)`` in mini-batches.

        Returns the history: ``{"loss": [...], "accuracy": [...]}`` per epoch, plus
        ``"val_loss"`` and ``"val_accuracy"`` with ``validation_data=(x_val, y_val)``.

        ``verbose``: 0 silent, 1 a progress bar per epoch, 2 one line per epoch.
        ``callbacks``: functions ``callback(model, epoch, logs)`` called after each epoch
        (``epoch`` counts from 1), or :class:`tinycnn.callbacks.Callback` objects (learning-rate
        schedules, early stopping); they may add entries to ``logs`` (e.g. ``"val_auc"``), which
        join the history, and may set ``model.stop_training = True``.
        ``augment``: a function ``augment(x_batch, rng) -> x_batch`` applied to every training
        batch (e.g. random shifts), with the model's random generator.

        Class imbalance (single-label tasks):

        * ``class_weight``: ``{class: weight}`` or ``"balanced"`` (``N / (classes · count_c)``):
          each sample's loss is multiplied by its class's weight.
        * ``sampler="balanced"``: each epoch draws ``N`` samples with replacement so that every
          class is equally likely — balanced batches instead of weighted losses.
        * ``sampler="oversample"``: each epoch keeps every sample and draws each smaller class
          with replacement up to the size of the largest (an epoch is then longer).

        Safety:

        * ``checkpoint=PATH`` writes the whole training state (weights, optimizer state, random
          generators, history, epoch, the callbacks' state) atomically after every epoch;
          ``checkpoint_best=PATH`` does so whenever ``monitor`` (a history key; lower is better
          for losses, higher otherwise) improves. Both files load with ``tinycnn.load_model``.
        * ``resume=PATH`` continues from such a checkpoint: the run ends with exactly the weights
          an uninterrupted run would have (same seed, data, machine and arguments — pass the same
          callbacks: each gets its saved state back). ``epochs`` is the total. A run a callback
          had stopped (early stopping) stays stopped: nothing more is trained, ``on_train_end``
          runs. The learning rate is restored from the checkpoint; the optimizer's other
          hyperparameters, the loss and the architecture must match. The whole checkpoint is
          checked before the model changes (see :func:`tinycnn.io.load_training_state`).
        * Ctrl-C finishes the current step, then returns the history of the completed epochs
          (``model.stop_reason`` says where it stopped); the weights are those of the last step.
        * NaN/inf in the loss, an output, a gradient or the optimizer's update raises
          :class:`NonFiniteError` naming the epoch, step and layer (or array); the weights and
          optimizer state are those of the last finite step (:class:`tinycnn.training.Rewind`).
        """
        self._require_compiled()
        _check_positive_int(epochs, "epochs")
        _check_positive_int(batch_size, "batch_size")
        x = self._prepare_input(x)
        y = np.asarray(y)
        if y.ndim == 0 or y.shape[0] != x.shape[0]:
            raise ValueError(f"{self.name}: x has {x.shape[0]} samples but y has shape {y.shape}")
        y = self.loss.check_labels(y, (x.shape[0], *self.output_shape))   # all labels, once
        weights = class_weight_array(class_weight, y, self.output_shape[-1], self.name)
        check_sampler(sampler, y, self.name)
        callbacks = [as_callback(c) for c in callbacks]
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError(f"{self.name}: validation_data must be a pair (x_val, y_val)")
        checkpoints = Checkpoints(self, checkpoint, checkpoint_best, monitor,
                                  fit_args={"batch_size": int(batch_size), "samples": int(x.shape[0]),
                                            "epochs": int(epochs)})
        history: dict[str, list[float]] = {"loss": [], "accuracy": []}
        first_epoch = 1
        if resume is not None:                 # checked whole before it changes the model
            state = checkpoints.resume(resume, callbacks)
            history, first_epoch = state["history"], state["epoch"] + 1
        self.stop_training = False
        self.stop_reason = None
        for callback in callbacks:
            callback.on_train_begin(self)
        if resume is not None:
            checkpoints.restore_callbacks(callbacks, state["callbacks"], resume)
            if state["stop_reason"] is not None:        # a callback had stopped the run: it stays stopped
                self.stop_training, self.stop_reason, first_epoch = True, state["stop_reason"], epochs + 1
        with DeferredInterrupt() as interrupt:
            for epoch in range(first_epoch, epochs + 1):
                for callback in callbacks:
                    callback.on_epoch_begin(self, epoch)
                order = epoch_order(y, self.rng, shuffle, sampler)
                logs = self._train_epoch(x, y, order, weights, epoch, epochs, batch_size, augment, verbose,
                                         interrupt)
                if logs is None:                                   # Ctrl-C: stop, keep what is done
                    break
                if validation_data is not None:
                    val = self.evaluate(*validation_data, batch_size=max(batch_size, 256))
                    logs.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
                for callback in callbacks:
                    callback.on_epoch_end(self, epoch, logs)
                for key, value in logs.items():
                    history.setdefault(key, []).append(value)
                if verbose == 2:
                    print(f"Epoch {epoch}/{epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()))
                if self.stop_training:
                    self.stop_reason = self.stop_reason or f"stopped by a callback after epoch {epoch}"
                checkpoints.epoch_done(epoch, history, logs, callbacks)      # records the stop, if any
                if self.stop_training:
                    break
        if self.stop_reason is None or not self.stop_reason.startswith("interrupted"):
            for callback in callbacks:
                callback.on_train_end(self)
        return history

    def _train_epoch(self, x, y, order, class_weights, epoch, epochs, batch_size, augment, verbose, interrupt):
        """One pass over ``order``; returns the epoch's logs, or None if Ctrl-C stopped it."""
        n = len(order)
        total_loss = total_acc = 0.0

        def batches():                                 # (x_batch, y_batch, sample_weight), in order
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                yield (x[idx] if augment is None else augment(x[idx], self.rng), y[idx],
                       None if class_weights is None else class_weights[y[idx]])

        rewind = Rewind(self)                          # finds an update that overflowed, see training.py
        with tqdm(total=n, desc=f"Epoch {epoch}/{epochs}", unit="img", disable=verbose != 1,
                  dynamic_ncols=True) as bar:
            for step, (x_batch, y_batch, sample_weight) in enumerate(batches(), start=1):
                try:
                    stats = self.train_on_batch(x_batch, y_batch, sample_weight, check_update=False)
                except NonFiniteError as err:          # maybe the consequence of an earlier update
                    self._raise_if_an_update_overflowed(rewind, batches, epoch)
                    raise NonFiniteError(f"epoch {epoch}, step {step}: {err}") from None
                total_loss += stats["loss"] * len(y_batch)
                total_acc += stats["accuracy"] * len(y_batch)
                seen = min(step * batch_size, n)
                bar.update(len(y_batch))
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{total_acc / seen:.4f}", refresh=False)
                if interrupt.requested:
                    self._raise_if_an_update_overflowed(rewind, batches, epoch)
                    self.stop_reason = f"interrupted (Ctrl-C) in epoch {epoch} after step {step}"
                    if verbose:
                        print(f"\n{self.name}: {self.stop_reason}; returning the history of the completed epochs")
                    return None
        self._raise_if_an_update_overflowed(rewind, batches, epoch)   # one look per epoch
        return {"loss": total_loss / n, "accuracy": total_acc / n}

    def _raise_if_an_update_overflowed(self, rewind, batches, epoch) -> None:
        if rewind.first_nonfinite() is None:
            return
        with self.observe(NOBODY):                     # the replay is not new training to record
            step, where = rewind.find(batches, functools.partial(self.train_on_batch, check_update=False))
        raise NonFiniteError(f"epoch {epoch}, step {step}: {update_overflow(self.name, where)}")

    def save(self, path, include_optimizer: bool = True):
        """Save architecture, weights, compile settings and ``metadata`` to one ``.npz`` file
        (atomically, no pickle); see :mod:`tinycnn.io`. Load it with ``tinycnn.load_model``."""
        return io.save_model(self, path, include_optimizer=include_optimizer)

    @_one_blas_thread
    def evaluate(self, x, y, batch_size=256) -> dict:
        """Mean loss and accuracy over ``(x, y)``: ``{"loss": ..., "accuracy": ...}``."""
        self._require_compiled()
        _check_positive_int(batch_size, "batch_size")
        x = self._prepare_input(x)
        y = np.asarray(y)
        if y.shape[0] != x.shape[0]:
            raise ValueError(f"{self.name}: x has {x.shape[0]} samples but y has {y.shape[0]}")
        total_loss = total_acc = 0.0
        for start in range(0, x.shape[0], batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            logits = self._forward_logits(xb, training=False)
            total_loss += self.loss.forward(logits, yb) * len(xb)
            total_acc += self.loss.accuracy(logits, yb) * len(xb)
        return {"loss": total_loss / x.shape[0], "accuracy": total_acc / x.shape[0]}

    @_one_blas_thread
    def predict(self, x, batch_size=256) -> np.ndarray:
        """Class probabilities, computed in batches.

        A model that ends in softmax/sigmoid returns that layer's output. A model that outputs
        logits (compiled with a from-logits loss) gets the loss's softmax/sigmoid applied, so
        ``predict`` always returns probabilities; ``model(x)`` returns the raw last-layer output.
        """
        _check_positive_int(batch_size, "batch_size")
        x = self._prepare_input(x)
        batches = []
        for start in range(0, x.shape[0], batch_size):                # x is checked: run each batch
            out = self._run(x[start:start + batch_size], training=False)
            if self.loss is not None and self.loss.from_logits:
                out = self.loss.probabilities(out)
            batches.append(out)
        return np.concatenate(batches)


def update_overflow(name: str, where: str) -> str:
    return (f"{name}: the update made '{where}' non-finite (the loss and gradients were finite: an overflow "
            "in the optimizer step, e.g. a too large learning rate or gradient); the weights and optimizer "
            "state of the last finite step are restored")


def _check_positive_int(value, what: str) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")


def load_model(path) -> "Sequential":
    """Read a model written by ``model.save`` (see :func:`tinycnn.io.load_model`)."""
    return io.load_model(path)


io.MODEL_CLASSES["Sequential"] = Sequential
