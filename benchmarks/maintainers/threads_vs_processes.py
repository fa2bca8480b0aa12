"""What a NumPy call costs when two threads make such calls at once — against two processes.

tinycnn runs both CPU cores as two Python threads (``tinycnn.kernels.parallel.parallel_map``). NumPy releases
Python's GIL inside its loops, but every call holds it while it sets up, and a thread that finds it
taken sleeps until the other hands it over. Two *processes* have a GIL each. So the time a call
takes in two threads at once, against two processes at once, is the price of the GIL; it is why
tinycnn's parallel code makes few, large calls (``docs/performance.md``, "Both cores").

Each case is timed three ways — alone, in two threads started together, in two processes started
together — and the per-call time of each of the two workers is printed:

* the deeper model's second convolution's im2col copy (window-major, with the bias column) for a
  chunk of 2 and of 6 images;
* a first layer's long, thin weight gradient ``(10 × R) · (R × 32)`` for R = 25 088 rows (32
  images of 28 × 28), as one product, as one product per 2048-row block, and as one stacked
  product over those blocks (what ``tinycnn.kernels.parallel.matmul`` does).

Run: ``python benchmarks/maintainers/threads_vs_processes.py`` (about a minute; ``--reps`` to change).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:          # this checkout's tinycnn, installed or not
    sys.path.insert(0, str(REPO))


def _im2col_case(images):
    from tinycnn.kernels.memory import im2col_into
    x_padded = np.random.default_rng(0).random((images, 16, 16, 32), dtype=np.float32)
    buffer = np.empty(images * 14 * 14 * (1 + 9 * 32), np.float32)
    return lambda: im2col_into(x_padded, (3, 3), (1, 1), buffer, pool=(2, 2), ones=True)


def _long_thin_case(how, rows=25088):
    from tinycnn.kernels import parallel
    rng = np.random.default_rng(0)
    a = rng.random((10, rows), dtype=np.float32)             # [1, cols]ᵀ of a first layer's chunk
    b = rng.random((rows, 32), dtype=np.float32)             # dz
    out = np.empty((10, 32), np.float32)
    block = parallel.LONG_K_BLOCK

    def per_block():
        np.matmul(a[:, :block], b[:block], out=out)
        part = np.empty_like(out)
        for start in range(block, rows, block):
            np.matmul(a[:, start:start + block], b[start:start + block], out=part)
            np.add(out, part, out=out)

    return {"one product": lambda: np.matmul(a, b, out=out),
            "one product per block": per_block,
            "stacked blocks": lambda: parallel._sum_over_k_blocks(a, b, out)}[how]


CASES = {
    "im2col copy, 2 images": lambda: _im2col_case(2),
    "im2col copy, 6 images": lambda: _im2col_case(6),
    "long thin product: one product": lambda: _long_thin_case("one product"),
    "long thin product: one product per block": lambda: _long_thin_case("one product per block"),
    "long thin product: stacked blocks": lambda: _long_thin_case("stacked blocks"),
}


def _one_blas_thread():
    from threadpoolctl import threadpool_limits
    threadpool_limits(1, user_api="blas")     # each worker multiplies on its own core, as tinycnn does


def _per_call_us(case, reps, barrier=None):
    """Microseconds per call of ``case`` (warmed up; after ``barrier`` if given)."""
    call = CASES[case]()
    for _ in range(10):
        call()
    if barrier is not None:
        barrier.wait()
    start = time.perf_counter()
    for _ in range(reps):
        call()
    return (time.perf_counter() - start) / reps * 1e6


def _process_worker(case, reps, barrier, results):
    _one_blas_thread()
    results.put(_per_call_us(case, reps, barrier))


def measure(case, reps):
    """(alone, [two threads], [two processes]) in µs per call."""
    alone = _per_call_us(case, reps)
    barrier, in_threads = threading.Barrier(2), [0.0, 0.0]

    def thread_worker(i):
        in_threads[i] = _per_call_us(case, reps, barrier)

    threads = [threading.Thread(target=thread_worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    context = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
    barrier, results = context.Barrier(2), context.Queue()
    processes = [context.Process(target=_process_worker, args=(case, reps, barrier, results)) for _ in range(2)]
    for process in processes:
        process.start()
    in_processes = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    return alone, in_threads, in_processes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=2000, help="calls per measurement (default 2000)")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES), metavar="CASE")
    args = parser.parse_args(argv)
    _one_blas_thread()
    print("| call | alone µs | each of two threads µs | each of two processes µs |")
    print("|---|--:|--:|--:|")
    for case in args.cases:
        alone, threads, processes = measure(case, args.reps)
        print(f"| {case} | {alone:.0f} | {' / '.join(f'{t:.0f}' for t in threads)} "
              f"| {' / '.join(f'{p:.0f}' for p in processes)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
