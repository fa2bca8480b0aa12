"""Where does a training step spend its time? ``tinycnn.profile(model, x, y)`` answers per layer.

.. code-block:: python

    report = tinycnn.profile(model, x_train, y_train, batch_size=32)
    print(report)            # one row per layer: forward ms, backward ms, share of the step,
                             # time inside matrix products and their rate (GFLOP/s)

It runs ordinary training steps (``model.train_on_batch``) on consecutive batches of ``x`` and
times every layer's ``forward`` and ``backward``, the loss, the optimizer update and every matrix
product (each Conv2D and Dense product goes through :func:`tinycnn.fast.matmul`). Whatever is
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

from . import fast
from .layers.fused import ConvReLUPool


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
    from .model import Sequential, _check_positive_int
    if not isinstance(model, Sequential):
        raise TypeError(f"profile: expected a tinycnn Sequential model, got {type(model).__name__}")
    model._require_compiled()
    for value, what in ((batch_size, "batch_size"), (steps, "steps")):
        _check_positive_int(value, what)
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
    current = [None]            # the row whose matrix products are being timed

    def record_matmul(elapsed, flops):
        if current[0] is not None:
            current[0].matmul += elapsed
            current[0].flops += flops

    def timed(obj, method, row, attr):
        original = getattr(obj, method)

        def wrapper(*args, **kwargs):
            outer, current[0] = current[0], row
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                setattr(row, attr, getattr(row, attr) + time.perf_counter() - start)
                current[0] = outer
        setattr(obj, method, wrapper)           # an instance attribute shadows the class's method
        return obj, method

    try:
        for i in range(warmup):
            sl = batches[i % per_batch]
            model.train_on_batch(x[sl], y[sl])
        patched = [timed(step, m, rows[step.name], m) for step in run_as for m in ("forward", "backward")]
        patched += [timed(model.loss, "forward", rows["loss"], "forward"),
                    timed(model.loss, "backward", rows["loss"], "backward"),
                    timed(model.optimizer, "apply", rows["optimizer"], "forward")]
        for row in rows.values():
            row.forward = row.backward = row.matmul = row.flops = 0.0
        fast._matmul_recorder = record_matmul
        try:
            start = time.perf_counter()
            for i in range(steps):
                sl = batches[(warmup + i) % per_batch]
                model.train_on_batch(x[sl], y[sl])
            total = time.perf_counter() - start
        finally:
            fast._matmul_recorder = None
            for obj, method in patched:
                delattr(obj, method)
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
                   cores=getattr(fast, "CORES", None))


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
