"""Both cores: threads over parts of a batch, one BLAS thread each, and the one door to BLAS.

NumPy runs one operation on one core, but it releases Python's GIL inside its loops, so two
Python threads working on two halves of a batch really do run at the same time. The kernels split
the work themselves — every layer's work is independent per image — and each core runs
everything for its part, including its own single-threaded matrix products. Measurements behind
every number here: ``docs/performance.md``.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np


def _cores() -> int:
    """Cores to use: ``$TINYCNN_THREADS`` if set, else the cores this process may run on."""
    if os.environ.get("TINYCNN_THREADS"):
        return max(1, int(os.environ["TINYCNN_THREADS"]))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


CORES = _cores()
# Waking a thread and waiting for it costs tens of µs, so only work worth more than that per core
# is split: a pass over this many elements, or a matrix product of this many multiply-adds.
MIN_ELEMENTS = 1 << 19
MIN_FLOPS = 1 << 22
_pool: ThreadPoolExecutor | None = None
_inside = threading.local()  # set in the worker threads: nested parallel calls run inline


def parallel_map(fn, parts) -> list:
    """``[fn(part) for part in parts]``, spread over the cores; results in order.

    Core ``c`` gets parts ``c, c + CORES, ...``; the calling thread does core 0's share itself
    while the pool's threads do the others.
    """
    global _pool
    parts = list(parts)
    if CORES == 1 or len(parts) < 2 or getattr(_inside, "active", False):
        return [fn(part) for part in parts]
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=CORES - 1, thread_name_prefix="tinycnn",
                                   initializer=lambda: setattr(_inside, "active", True))
    results = [None] * len(parts)

    def share(core):
        for i in range(core, len(parts), CORES):
            results[i] = fn(parts[i])

    futures = [_pool.submit(share, core) for core in range(1, min(CORES, len(parts)))]
    _inside.active = True            # the parts run inline here too: no nested splitting
    try:
        share(0)
    finally:
        _inside.active = False
        for future in futures:
            future.result()
    return results


def split(n: int, work: float, minimum: float = MIN_ELEMENTS) -> list[slice]:
    """``range(n)`` cut into one slice per core when the total ``work`` is at least ``minimum``
    per core, else one slice."""
    pieces = CORES if n >= CORES and work >= minimum * CORES else 1
    return [slice(n * i // pieces, n * (i + 1) // pieces) for i in range(pieces)]


def on_cores(fn, n: int, size: int, passes: int = 1) -> None:
    """Run ``fn(rows)`` on the cores for slices of ``range(n)``: ``size`` elements per index,
    ``passes`` passes over them (how much work there is decides whether to split)."""
    parallel_map(fn, split(n, n * size * passes))


def in_parts(fn, *arrays, passes: int = 1) -> None:
    """``fn(*arrays)`` for same-shaped arrays, on the cores: each core gets a slice of every
    array's flattened elements (the optimizers' elementwise updates)."""
    flat = [a.reshape(-1) for a in arrays]
    on_cores(lambda part: fn(*(a[part] for a in flat)), flat[0].size, 1, passes)


_blas = None
_limited = threading.local()      # set while one_blas_thread is active in this thread


@contextmanager
def one_blas_thread():
    """Within the block, each BLAS call uses one thread: the kernels run two of them side by side
    (and teaching mode runs everything on one thread). ``threadpoolctl`` finds the BLAS that NumPy
    loaded and restores its setting afterwards."""
    global _blas
    if CORES == 1 or getattr(_limited, "active", False):     # nested (fit → train_on_batch → ...)
        yield
        return
    if _blas is None:
        from threadpoolctl import ThreadpoolController
        _blas = ThreadpoolController()
    with _blas.limit(limits=1, user_api="blas"):
        _limited.active = True
        try:
            yield
        finally:
            _limited.active = False


def with_one_blas_thread(method):
    """Decorator: run ``method`` inside :func:`one_blas_thread` (Sequential's entry points)."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with one_blas_thread():
            return method(*args, **kwargs)
    return wrapper


# -- matrix products ----------------------------------------------------------------------------
_matmul_recorders: list = []      # tinycnn.profile listens here: called with (seconds, flops)


@contextmanager
def recording_matmuls(record):
    """Within the block, every product that goes through :func:`matmul` calls
    ``record(seconds, flops)`` (how :func:`tinycnn.profile` counts the matrix products)."""
    _matmul_recorders.append(record)
    try:
        yield
    finally:
        _matmul_recorders.remove(record)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.matmul(a, b, out=out)`` for 2-D arrays — the kernels' one door to BLAS.

    A big product is cut into one block per core along the longer side of the output —
    ``out[rows] = a[rows] · b`` or ``out[:, cols] = a · b[:, cols]``. Inside a chunk (already one
    core's share, see :func:`parallel_map`) it is one product.
    """
    m, k = a.shape
    n = b.shape[1]
    if out is None:
        out = np.empty((m, n), np.result_type(a, b))
    if k > 2 * LONG_K_BLOCK and m * n <= SMALL_OUTPUT:
        return _sum_over_k_blocks(a, b, out)
    if getattr(_inside, "active", False):       # already one core's share of the work (a chunk)
        _product(a, b, out)
        return out
    if m >= n:
        parallel_map(lambda rows: _product(a[rows], b, out[rows]), split(m, m * k * n, MIN_FLOPS))
    else:
        parallel_map(lambda cols: _product(a, b[:, cols], out[:, cols]), split(n, m * k * n, MIN_FLOPS))
    return out


# A long, thin product (a first layer's weight gradient: 10 × 25 088 rows · 25 088 × 32) runs
# slowly in OpenBLAS, and worse two at a time; as one stacked call over blocks of rows it is fast.
LONG_K_BLOCK = 2048
SMALL_OUTPUT = 1 << 10


def _sum_over_k_blocks(a, b, out):
    """``a · b`` as ``Σ_blocks a[:, block] · b[block]`` (the same sum, added in another order)."""
    m, k = a.shape
    blocks, whole = k // LONG_K_BLOCK, k // LONG_K_BLOCK * LONG_K_BLOCK
    a_blocks = a[:, :whole].reshape(m, blocks, LONG_K_BLOCK).transpose(1, 0, 2)   # (blocks, m, 2048)
    b_blocks = b[:whole].reshape(blocks, LONG_K_BLOCK, b.shape[1])                # (blocks, 2048, n)
    started = time.perf_counter()
    products = np.matmul(a_blocks, b_blocks)                                      # one call, every block
    for record in _matmul_recorders:
        record(time.perf_counter() - started, 2 * m * whole * b.shape[1])
    np.add.reduce(products, axis=0, out=out)
    if whole < k:                                                                 # the last, shorter block
        rest = np.empty_like(out)
        _product(a[:, whole:], b[whole:], rest)
        out += rest
    return out


def _product(a, b, out):
    if not _matmul_recorders:
        np.matmul(a, b, out=out)
        return
    start = time.perf_counter()
    np.matmul(a, b, out=out)
    for record in _matmul_recorders:
        record(time.perf_counter() - start, 2 * a.shape[0] * a.shape[1] * b.shape[1])
