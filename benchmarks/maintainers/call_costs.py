"""What some single NumPy and Python calls cost — the small prices behind ``tinycnn.kernels``' choices.

    python benchmarks/maintainers/call_costs.py              # a few seconds
    python benchmarks/maintainers/call_costs.py --reps 2000  # steadier numbers

Each call is timed ``--reps`` times in a row on one thread; the median is printed, in µs. Pairs
that do the same thing two ways sit next to each other:

* a ReLU, ``np.maximum(x, 0)``, against ``np.maximum(x, zeros)`` with an array of zeros (what
  ``tinycnn.kernels.elementwise.relu_into`` does), next to an addition of a scalar for scale —
  200 000 float32, the pooled output of 32 images of the first convolution;
* ``int(np.prod(shape))`` against ``math.prod(shape)`` (``tinycnn.kernels.memory.Scratch.get`` sizes
  every buffer so);
* the im2col window view built with ``as_strided`` (``tinycnn.im2col.windows``) against one built
  with ``np.ndarray`` directly (``tinycnn.kernels.memory._windows``), for a chunk of 7 images of
  16 × 16 × 32;
* one ``tinycnn.kernels.parallel.parallel_map`` over two parts that do nothing: the price of
  waking the other core's thread and hearing back from it.

Microseconds matter here because both cores run their chunks at once, and Python code holds the
GIL: while one core spends 5 µs in ``np.prod``, the other cannot start or finish a NumPy call.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:          # this checkout's tinycnn, installed or not
    sys.path.insert(0, str(REPO))


def cases() -> dict:
    from tinycnn.im2col import windows
    from tinycnn.kernels import memory, parallel

    rng = np.random.default_rng(0)
    x = rng.standard_normal(200_000).astype(np.float32)
    out, zeros, scalar = np.empty_like(x), np.zeros_like(x), np.float32(0.5)
    shape = (7, 14, 14, 289)
    chunk = rng.standard_normal((7, 16, 16, 32)).astype(np.float32)
    nothing = lambda part: part                                             # noqa: E731
    return {
        "np.maximum(x, 0), 200 000 float32": lambda: np.maximum(x, 0, out=out),
        "np.maximum(x, zeros), the same": lambda: np.maximum(x, zeros, out=out),
        "np.add(x, 0.5), the same": lambda: np.add(x, scalar, out=out),
        "int(np.prod(shape)), a 4-tuple": lambda: int(np.prod(shape)),
        "math.prod(shape), the same": lambda: math.prod(shape),
        "im2col windows with as_strided": lambda: windows(chunk, (3, 3), (1, 1)),
        "im2col windows with np.ndarray": lambda: memory._windows(chunk, (3, 3), (1, 1)),
        "parallel_map of 2 empty parts": lambda: parallel.parallel_map(nothing, [0, 1]),
    }


def median_us(fn, reps: int) -> float:
    fn()                                                                    # warm-up
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1e6


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=500)
    args = parser.parse_args(argv)
    from tinycnn.kernels.parallel import one_blas_thread

    print("| call | µs (median) |")
    print("|---|--:|")
    with one_blas_thread():                          # as inside tinycnn's fit and predict
        for name, fn in cases().items():
            print(f"| {name} | {median_us(fn, args.reps):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
