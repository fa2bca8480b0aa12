"""What a second *process* would give the training step: data parallelism without the GIL.

    python benchmarks/maintainers/processes_ab.py                         # deeper model, batch 32 and 128
    python benchmarks/maintainers/processes_ab.py --models seed deeper --rounds 21

tinycnn runs the second core as a second Python *thread* (``tinycnn.kernels.parallel.parallel_map``):
every kernel splits its work by images, and the two threads share one GIL, so each of them waits
for the other at NumPy calls (``threads_vs_processes.py`` times single calls). This script measures the
alternative the threads are up against — the one PyTorch took with DistributedDataParallel: a
second *process*, with its own GIL, running the whole model on half of every batch.

* **threads**: ``model.train_on_batch`` on the batch, as ``fit`` runs it.
* **processes**: a worker process (forked at start-up) and this process each run
  ``model.loss_and_grads`` on one half of the batch, one core and one BLAS thread each; the weights,
  Adam's moments and both halves' gradients live in shared memory. Then each process adds up the
  two halves' gradients for half of the parameters, checks that they are finite, and applies
  tinycnn's Adam to them. Two messages through a pipe per step, in each direction. What it leaves
  out of ``train_on_batch``: the accuracy, and the error message that names a non-finite layer.

The two take turns, ``--steps`` training steps each, for ``--rounds`` rounds, on the same
consecutive batches of the real PneumoniaMNIST training images, each training its own copy of the
same model. Reported: the median step time of each, the median of the per-round ratios
(processes / threads), where the processes' step goes (this process: its half's forward and
backward, waiting for the worker, its half of Adam), and — checked before the timing, from the same
weights on the same batch — how far the gradient the two processes computed is from the one the
threads compute (float rounding: the two halves' gradients are added up in another order).

Needs ``os.fork`` (Linux, macOS) and the MedMNIST files ($TINYCNN_DATA or --data).
"""

from __future__ import annotations

import argparse
import mmap
import os
import struct
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:          # fusion_ab's step timer (and, through it, this checkout's tinycnn)
    sys.path.insert(0, str(HERE))

from fusion_ab import add_round_arguments, step_ms, training_set  # noqa: E402


class TwoProcesses:
    """``model`` trained data-parallel by this process and one forked worker (see the module docstring)."""

    def __init__(self, model, x, y, batch):
        from tinycnn import optimizers
        from tinycnn.kernels import parallel
        if batch % 2:
            raise SystemExit(f"processes_ab: the batch size must be even (two equal halves), got {batch}")
        self.model, self.x, self.y, self.half = model, x, y, batch // 2
        params = model.params
        sizes = [p.size for p in params]
        self.total, offsets = sum(sizes), np.cumsum([0] + sizes)
        # weights, Adam's m and v, and the two halves' gradients, in memory both processes see
        self._memory = mmap.mmap(-1, 5 * 4 * self.total)
        flat = np.frombuffer(self._memory, np.float32)
        self.w, self.m, self.v, grads_main, grads_worker = (flat[i * self.total:(i + 1) * self.total] for i in range(5))
        self.grads = (grads_main, grads_worker)
        self.m[:] = 0
        self.v[:] = 0
        for layer in model.layers:                       # the model's weights become views of self.w
            for key, value in layer.params.items():
                i = next(j for j, p in enumerate(params) if p is value)
                view = self.w[offsets[i]:offsets[i + 1]].reshape(value.shape)
                view[...] = value
                layer.params[key] = view
        self._grad_views = [[g[offsets[i]:offsets[i + 1]].reshape(p.shape) for i, p in enumerate(params)]
                            for g in self.grads]
        self.adam = optimizers.Adam()
        self.step_count = 0
        self.phases: list[tuple[float, float, float]] = []
        to_worker, self._from_main = os.pipe()
        self._from_worker, to_main = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:                                # the worker: serve until told to stop
            os.close(self._from_main)
            os.close(self._from_worker)
            parallel.CORES = 1                           # one core here; no thread pool in this process
            code = 0
            try:
                self._serve(to_worker, to_main)
            except BaseException:                        # noqa: BLE001 (report, then leave without cleanup)
                import traceback
                traceback.print_exc()
                code = 1
            os._exit(code)
        os.close(to_worker)
        os.close(to_main)

    # -- one training step ------------------------------------------------------------------
    def step(self, first):
        """Train on the batch ``x[first:first + 2·half]``: this process the first half, the worker the second."""
        from tinycnn.kernels import parallel
        self.step_count += 1
        os.write(self._from_main, struct.pack("<cqq", b"g", first + self.half, self.step_count))
        cores, parallel.CORES = parallel.CORES, 1        # this process's half on this core only
        try:
            began = time.perf_counter()
            self._half_grads(0, first)
            computed = time.perf_counter()
            self._expect(b"g")
            waited = time.perf_counter()
            os.write(self._from_main, b"u")              # both halves' gradients are in place
            finite = self._update(0, self.step_count)
            self._expect(b"1" if finite else b"0")
            if not finite:
                raise FloatingPointError("processes_ab: a gradient is not finite")
            self.phases.append((computed - began, waited - computed, time.perf_counter() - waited))
        finally:
            parallel.CORES = cores

    def _half_grads(self, which, first):
        """``loss_and_grads`` on one half of the batch, its gradients written to shared memory."""
        self.model.loss_and_grads(self.x[first:first + self.half], self.y[first:first + self.half])
        for grad, shared in zip(self.model.grads, self._grad_views[which]):
            np.copyto(shared, grad)

    def _update(self, which, t) -> bool:
        """Adam at step ``t`` on this process's half of the parameters, from the mean of the two
        halves' gradients (each is the gradient of its half's mean loss); False if one is not finite."""
        from tinycnn.kernels.elementwise import all_finite
        part = slice(0, self.total // 2) if which == 0 else slice(self.total // 2, self.total)
        grad = self.grads[0][part]
        np.add(grad, self.grads[1][part], out=grad)
        grad *= np.float32(0.5)                           # exact: a power of two
        if not all_finite(grad):
            return False
        self.adam.iterations = t - 1
        self.adam.update(self.w[part], grad, {"m": self.m[part], "v": self.v[part]})
        return True

    def _expect(self, what):
        reply = os.read(self._from_worker, 1)
        if reply != what:
            raise RuntimeError(f"processes_ab: the worker answered {reply!r} instead of {what!r} (see its traceback above)")

    def _serve(self, commands, replies):
        while True:
            message = os.read(commands, 17)
            if not message:
                return
            first, t = struct.unpack("<cqq", message)[1:]
            self._half_grads(1, first)
            os.write(replies, b"g")
            self._expect_from(commands, b"u")
            os.write(replies, b"1" if self._update(1, t) else b"0")

    def _expect_from(self, commands, what):
        if os.read(commands, 1) != what:
            raise RuntimeError("processes_ab: lost step with the main process")

    def close(self):
        os.close(self._from_main)
        _, status = os.waitpid(self.pid, 0)
        os.close(self._from_worker)
        if status:
            raise RuntimeError(f"processes_ab: the worker exited with status {status}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_round_arguments(parser, rounds=15, models=["deeper"])
    args = parser.parse_args(argv)
    if not hasattr(os, "fork"):
        raise SystemExit("processes_ab: needs os.fork (Linux or macOS)")

    from threadpoolctl import threadpool_limits

    from tinycnn import zoo

    threadpool_limits(1, user_api="blas")     # one BLAS thread everywhere: the threads do as much inside fit
    x, y = training_set(args.data)
    print("| model | batch | threads ms/step | processes ms/step | processes / threads "
          "| processes: own half / waiting / Adam, ms | gradients agree to |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for name in args.models:
        for batch in args.batch_sizes:
            threaded, parallel = (zoo.MODELS[name](2, seed=0) for _ in range(2))
            for model in (threaded, parallel):
                model.compile("adam", "sparse_categorical_crossentropy")
                model.build(x.shape[1:])
            two = TwoProcesses(parallel, x, y, batch)
            try:
                threaded.loss_and_grads(x[:batch], y[:batch])        # the same weights, the same batch
                two.step(0)                                          # leaves the mean gradient in two.grads[0]
                expected = np.concatenate([g.reshape(-1) for g in threaded.grads])
                agree = float(np.abs(two.grads[0] - expected).max() / np.abs(expected).max())
                threaded.train_on_batch(x[:batch], y[:batch])        # keep the two copies in step
                times = {"threads": [], "processes": []}
                starts = range(0, (args.rounds + 1) * args.steps * batch, args.steps * batch)
                for r, start in enumerate(starts):         # round 0 is a warm-up (buffers, caches, threads)
                    for mode in (("threads", "processes") if r % 2 else ("processes", "threads")):
                        if mode == "threads":
                            ms = step_ms(threaded, x, y, batch, start, args.steps)
                        else:
                            began = time.perf_counter()
                            for i in range(args.steps):
                                two.step((start + i * batch) % (len(x) - batch))
                            ms = (time.perf_counter() - began) / args.steps * 1e3
                        if r:
                            times[mode].append(ms)
            finally:
                two.close()
            ratio = np.median(np.array(times["processes"]) / np.array(times["threads"]))
            phases = np.median(np.array(two.phases[1 + args.steps:]), axis=0) * 1e3
            print(f"| {name} | {batch} | {np.median(times['threads']):.2f} | {np.median(times['processes']):.2f} "
                  f"| {ratio:.3f} | {phases[0]:.2f} / {phases[1]:.2f} / {phases[2]:.2f} "
                  f"| {agree:.1e} of the largest |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
