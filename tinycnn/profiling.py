"""Where does a training step spend its time? ``tinycnn.profile(model, x, y)`` answers per layer.

.. code-block:: python

    report = tinycnn.profile(model, x_train, y_train, batch_size=32)
    print(report)            # one row per layer: forward ms, backward ms, share of the step,
                             # time inside matrix products and their rate (GFLOP/s)

It runs ordinary training steps (``model.train_on_batch``) on consecutive batches of ``x`` and
times every layer's ``forward`` and ``backward``, the loss, the optimizer update (watching the
model's own step through :meth:`tinycnn.Sequential.observe`) and every matrix product of the kernels
(:func:`tinycnn.kernels.parallel.recording_matmuls`; in teaching mode the products of
:mod:`tinycnn.functional` are not counted). Whatever is
left — slicing the batch, input checks, the loop itself — is reported as "other". The model is
left exactly as it was: weights, optimizer state and random generators are restored afterwards.

A lesson in the numbers: the matrix products are where the arithmetic is, and BLAS runs them near
the machine's peak; every other line of a layer is a pass over memory on one core. A fast
framework keeps the share of time *outside* the products small. tinycnn runs products on all cores
at once, so their time is counted in core-milliseconds (summed over the threads) and the
``GFLOP/s`` column is the rate per core; compare it with ``peak_gflops / cores``, ``peak_gflops``
being the rate of one large matrix product on all cores, measured on this machine in the same call.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np

from .kernels import parallel
from .kernels.steps import ConvReLUPool


@dataclass
class LayerTimes:
    """Seconds per step spent in one layer (or the loss / optimizer row)."""

    name: str
    kind: str
    forward: float = 0.0
    backward: float = 0.0
    matmul: float = 0.0          # seconds inside matrix products, summed over the threads that ran them
    flops: float = 0.0           # floating-point operations of those products, per step

    @property
    def total(self) -> float:
        return self.forward + self.backward


@dataclass
class Profile:
    """What :func:`profile` measured, averaged per training step."""

    rows: list[LayerTimes]
    step_seconds: float
    batch_size: int
    steps: int
    peak_gflops: float | None = None
    notes: list[str] = field(default_factory=list)
    cores: int | None = None     # cores tinycnn ran products on at once (None: BLAS split them itself)

    @property
    def matmul_seconds(self) -> float:
        return sum(r.matmul for r in self.rows)

    @property
    def matmul_flops(self) -> float:
        return sum(r.flops for r in self.rows)

    @property
    def other_seconds(self) -> float:
        return max(self.step_seconds - sum(r.total for r in self.rows), 0.0)

    @property
    def samples_per_second(self) -> float:
        return self.batch_size / self.step_seconds

    def as_dict(self) -> dict:
        return {"batch_size": self.batch_size, "steps": self.steps, "step_seconds": self.step_seconds,
                "samples_per_second": self.samples_per_second, "matmul_seconds": self.matmul_seconds,
                "matmul_flops": self.matmul_flops, "other_seconds": self.other_seconds,
                "peak_gflops": self.peak_gflops, "cores": self.cores,
                "rows": [{"name": r.name, "kind": r.kind, "forward": r.forward, "backward": r.backward,
                          "matmul": r.matmul, "flops": r.flops} for r in self.rows]}

    def table(self) -> str:
        """The per-layer table as text (what ``print(profile)`` shows)."""
        step = self.step_seconds
        width = max([28, *(len(f"{r.name} ({r.kind})") + 2 for r in self.rows)])
        head = (f"{'layer':<{width}}{'forward ms':>11}{'backward ms':>12}{'% of step':>10}{'matmul core-ms':>15}"
                f"{'GFLOP/s':>9}")
        lines = [head, "─" * len(head)]

        def row(label, fwd, bwd, mm=None, flops=None):
            total = fwd + (bwd or 0.0)
            rate = f"{flops / mm / 1e9:9.1f}" if mm else f"{'':>9}"
            return (f"{label:<{width}}{fwd * 1e3:11.2f}{'' if bwd is None else f'{bwd * 1e3:12.2f}':>12}"
                    f"{100 * total / step:10.1f}{'' if not mm else f'{mm * 1e3:15.2f}':>15}{rate}")

        for r in self.rows:
            lines.append(row(f"{r.name} ({r.kind})", r.forward, r.backward, r.matmul, r.flops))
        lines.append(row("other (batching, checks)", self.other_seconds, None))
        lines.append("─" * len(head))
        lines.append(f"one step: {step * 1e3:.2f} ms for {self.batch_size} samples "
                     f"({self.samples_per_second:,.0f} samples/s; mean of {self.steps} steps)")
        if self.matmul_seconds:
            rate = self.matmul_flops / self.matmul_seconds / 1e9
            overall = self.matmul_flops / step / 1e9
            if self.cores is None:       # products split by BLAS's own threads: wall time
                lines.append(f"matrix products: {100 * self.matmul_seconds / step:.0f}% of the step, at "
                             f"{rate:.1f} GFLOP/s (BLAS's own threads); the whole step: {overall:.1f} GFLOP/s")
            else:
                lines.append(f"matrix products: {self.matmul_seconds * 1e3:.2f} core-ms per step = "
                             f"{100 * self.matmul_seconds / (step * self.cores):.0f}% of {self.cores} cores' time, at "
                             f"{rate:.1f} GFLOP/s per core; the whole step: {overall:.1f} GFLOP/s")
        if self.peak_gflops:
            lines.append(f"this machine's float32 matrix-product peak (2048×2048, now): {self.peak_gflops:.1f} GFLOP/s")
        lines.extend(self.notes)
        return "\n".join(lines)

    __str__ = table


def peak_matmul_gflops(n: int = 2048, repeats: int = 3, dtype=np.float32) -> float:
    """The best rate of an ``n×n`` float32 matrix product on this machine right now."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)
    np.matmul(a, b)
    best = min(_timed(lambda: np.matmul(a, b)) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def profile(model, x, y, batch_size: int = 32, steps: int = 20, warmup: int = 3,
            measure_peak: bool = True) -> Profile:
    """Time ``steps`` training steps of ``model`` on consecutive batches of ``(x, y)``, per layer.

    ``model`` must be compiled. ``warmup`` untimed steps come first (caches, buffers). The model's
    weights, optimizer state and random generators are restored afterwards, so profiling does not
    train it. ``measure_peak`` also times one large matrix product for comparison.
    """
    if not all(hasattr(model, name) for name in ("observe", "train_on_batch", "layers")):
        raise TypeError(f"profile: expected a tinycnn Sequential model, got {type(model).__name__}")
    model._require_compiled()
    for value, what in ((batch_size, "batch_size"), (steps, "steps")):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{what} must be a positive int, got {value!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"profile: warmup must be an int >= 0, got {warmup!r}")
    x = model._prepare_input(x)
    y = np.asarray(y)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"profile: x has {x.shape[0]} samples but y has {y.shape[0]}")
    if x.shape[0] < batch_size:
        raise ValueError(f"profile: need at least one full batch ({batch_size} samples), got {x.shape[0]}")

    saved = _save_state(model)
    per_batch = x.shape[0] // batch_size
    batches = [slice(i * batch_size, (i + 1) * batch_size) for i in range(per_batch)]
    run_as = model._steps()     # the layers as they run: a fused Conv2D → MaxPool2D pair is one row
    rows = {step.name: LayerTimes(step.name, _kind(step)) for step in run_as}
    rows["loss"] = LayerTimes("loss", type(model.loss).__name__)
    rows["optimizer"] = LayerTimes("optimizer", type(model.optimizer).__name__)
    timer = _StepTimer(rows)
    try:
        for i in range(warmup):
            sl = batches[i % per_batch]
            model.train_on_batch(x[sl], y[sl])
        with model.observe(timer), parallel.recording_matmuls(timer.record_matmul):
            start = time.perf_counter()
            for i in range(steps):
                sl = batches[(warmup + i) % per_batch]
                model.train_on_batch(x[sl], y[sl])
            total = time.perf_counter() - start
    finally:
        _restore_state(model, saved)

    for row in rows.values():
        for attr in ("forward", "backward", "matmul", "flops"):
            setattr(row, attr, getattr(row, attr) / steps)
    notes = []
    fused = [step.name for step in run_as if isinstance(step, ConvReLUPool)]
    if fused:
        notes.append(f"({', '.join(fused)}: a Conv2D with its ReLU and the MaxPool2D after it run as one fused "
                     "step; set model.fuse = False to time them separately)")
    if model.layers and getattr(model.layers[0], "can_skip_input_grad", False):
        notes.append(f"(the first layer, {model.layers[0].name}, computes no gradient for the input "
                     "images: training does not need one)")
    return Profile(rows=list(rows.values()), step_seconds=total / steps, batch_size=batch_size,
                   steps=steps, peak_gflops=peak_matmul_gflops() if measure_peak else None, notes=notes,
                   cores=parallel.CORES)


class _StepTimer:
    """The profiler's observer: the time between each ``before`` and ``after`` of the model's step,
    added to the step's row; matrix products counted against the row that is running."""

    PHASES = {"forward": "forward", "backward": "backward", "loss": "forward", "optimizer": "forward"}

    def __init__(self, rows):
        self.rows, self.running, self.started = rows, [], []

    def _row(self, step, phase):
        if phase == "loss":
            return self.rows["loss"]
        if phase == "optimizer":
            return self.rows["optimizer"]
        return self.rows[step.name]

    def before(self, step, phase):
        if phase in self.PHASES:
            self.running.append(self._row(step, phase))
            self.started.append(time.perf_counter())

    def after(self, step, phase, inputs, output):
        if phase in self.PHASES:
            row, elapsed = self.running.pop(), time.perf_counter() - self.started.pop()
            attr = self.PHASES[phase]
            setattr(row, attr, getattr(row, attr) + elapsed)

    def record_matmul(self, elapsed, flops):
        if self.running:
            self.running[-1].matmul += elapsed
            self.running[-1].flops += flops


def _kind(step) -> str:
    """``Conv2D``; ``Conv2D+MaxPool2D`` for a fused step."""
    parts = (step.conv, step.pool) if isinstance(step, ConvReLUPool) else (step,)
    return "+".join(type(part).__name__ for part in parts)


def _save_state(model) -> dict:
    opt = model.optimizer
    return {"weights": model.get_weights(), "rng": copy.deepcopy(model.rng.bit_generator.state),
            "layer_rngs": {layer.name: copy.deepcopy(layer.rng.bit_generator.state)
                           for layer in model.layers if hasattr(layer, "rng")},
            "iterations": opt.iterations,
            "slots": None if opt.slots is None else [{k: v.copy() for k, v in s.items()} for s in opt.slots]}


def _restore_state(model, saved) -> None:
    model.set_weights(saved["weights"])
    model.rng.bit_generator.state = saved["rng"]
    for layer in model.layers:
        if layer.name in saved["layer_rngs"]:
            layer.rng.bit_generator.state = saved["layer_rngs"][layer.name]
    model.optimizer.iterations = saved["iterations"]
    model.optimizer.slots = saved["slots"]
