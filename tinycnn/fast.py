"""Speed tricks, each a small named helper. Read the layers first; come here to see why they are fast.

The layers in :mod:`tinycnn.layers` say *what* they compute in a few lines. The helpers below do the
parts where the straightforward NumPy spelling wastes time, and the comment on each says what it
saves. None of them changes what is computed, only the order of some additions (a weight gradient
summed chunk by chunk rounds a little differently from one big sum; the bias enters the product as
the weight of a column of ones): the loop reference
(:mod:`tinycnn.reference`), the gradient checks and the Keras parity tests hold the fast layers to
the same results, to float rounding.

Where the time goes in a small CNN on a CPU (run ``tinycnn bench --profile`` to see it yourself):

* the matrix products, which BLAS runs near the machine's peak on both cores — the useful work;
* everything else, which NumPy runs one pass over memory at a time on one core: copying windows
  into the im2col matrix, padding, ReLU, pooling, col2im, the optimizer. One pass over a
  ``(128, 28, 28, 32)`` float32 batch (13 MB) takes about a millisecond — as long as tens of
  millions of multiply-adds in BLAS — so the tricks here are all about *fewer passes*, *both
  cores*, and *no new memory* where memory can be reused.

The biggest saving of passes spans two layers, a convolution with its ReLU and the max pooling
after it; it lives in :mod:`tinycnn.layers.fused` and uses the pooling helpers at the end of this
file (:func:`window_major`, :func:`max_and_first_argmax`, :func:`route_to_argmax`).
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from .im2col import windows

# -- both cores ---------------------------------------------------------------------------------
# NumPy runs one operation on one core. But it releases Python's GIL inside its loops, so two
# Python threads working on the two halves of a batch really do run at the same time. We split
# the batch ourselves — every layer's work is independent per image — and let each core run
# everything for its half: the copies, the ReLU, the pooling, and its own single-threaded matrix
# products. (BLAS would otherwise split each product over the cores itself, and its idle threads
# keep spinning on the second core afterwards, which stalls whatever we run there.)
def _cores() -> int:
    """Cores to use: ``$TINYCNN_THREADS`` if set, else the cores this process may run on."""
    if os.environ.get("TINYCNN_THREADS"):
        return max(1, int(os.environ["TINYCNN_THREADS"]))
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


CORES = _cores()
# Waking a thread and waiting for it costs ~40–90 µs on this kind of machine, so only work worth
# more than that per core is split: a pass over this many elements, or a matrix product of this many
# multiply-adds (4 Mi: ~80 µs of BLAS per core; a Dense layer's 32 × 3136 × 128 products now split,
# which made the deeper model's training step 5 % faster at batch 32 than 8 Mi, which kept them on
# one core: ``python benchmarks/knob_ab.py tinycnn.fast.MIN_FLOPS 8388608 4194304 --rounds 31``).
# The same wait hits every NumPy call a thread makes while the other thread holds the GIL (each
# call holds it while it sets up, and so does the Python code between calls), so code that runs on
# both cores at once makes few, large calls, with little Python between them: ``math.prod`` rather
# than ``np.prod``, a window view without ``as_strided`` (``python benchmarks/call_costs.py``).
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
    array's flattened elements (used by the optimizers' elementwise updates)."""
    flat = [a.reshape(-1) for a in arrays]
    on_cores(lambda part: fn(*(a[part] for a in flat)), flat[0].size, 1, passes)


_blas = None
_limited = threading.local()      # set while one_blas_thread is active in this thread


@contextmanager
def one_blas_thread():
    """Within the block, each BLAS call uses one thread: we run two of them side by side.

    ``threadpoolctl`` (a small, well-kept library from the scikit-learn project) finds the BLAS
    that NumPy loaded and sets its thread count; the previous setting is restored afterwards, so
    the rest of the program is unaffected.
    """
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
_matmul_recorder = None     # set by tinycnn.profile while it runs: called with (seconds, flops)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.matmul(a, b, out=out)`` for 2-D arrays — the layers' one door to BLAS.

    A big product is cut into one block per core along the longer side of the output —
    ``out[rows] = a[rows] · b`` or ``out[:, cols] = a · b[:, cols]`` — computed side by side.
    Inside a chunk (already one core's share, see :func:`parallel_map`) it is one product: cutting
    it there would only run the two halves one after the other, as two smaller, slower products
    (one product: the deeper model's training step 0.97× at batch 128, its predict 0.98×,
    ``python benchmarks/revision_ab.py d14a8f9 951746f``).
    Every Conv2D and Dense product comes through here, which also lets :func:`tinycnn.profile`
    time them.
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


# A weight gradient ``colsᵀ · dz`` of a first convolution layer is tiny (10 × 32) but sums over every
# pixel of a chunk (over 10 000 rows). OpenBLAS runs such a long, thin product slowly, and two of
# them side by side (one per core) take twice as long as one. Cut into blocks of 2048 rows and
# handed to ``np.matmul`` as one *stack* of blocks, it is one NumPy call that runs every block's
# product, then one sum over the blocks — fast alone and side by side. For (10 × 25088) · (25088 × 32),
# alone and in each of two threads at once: 315 and ~690 µs as one product, ~180 and ~370 µs as one
# call per block, 163 and 167 µs as a stack (``python benchmarks/threads_vs_processes.py``).
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
    if _matmul_recorder is not None:
        _matmul_recorder(time.perf_counter() - started, 2 * m * whole * b.shape[1])
    np.add.reduce(products, axis=0, out=out)
    if whole < k:                                                                 # the last, shorter block
        rest = np.empty_like(out)
        _product(a[:, whole:], b[whole:], rest)
        out += rest
    return out


def _product(a, b, out):
    if _matmul_recorder is None:
        np.matmul(a, b, out=out)
        return
    start = time.perf_counter()
    np.matmul(a, b, out=out)
    _matmul_recorder(time.perf_counter() - start, 2 * a.shape[0] * a.shape[1] * b.shape[1])


class Scratch:
    """Arrays that a layer reuses from one batch to the next instead of allocating them anew.

    A fresh multi-megabyte array costs more than its ``malloc``: the operating system hands out
    zeroed pages on first touch, one page fault per 4 KiB. Reusing the same buffer for, say, the
    im2col matrix of every batch skips all of that. Only arrays that stay *inside* a layer (never
    returned to the caller) live here — a returned array may be kept by the caller. Each thread
    gets its own buffers (two cores may fill two im2col chunks at once).
    """

    def __init__(self):
        self._arrays: dict[tuple[str, int], np.ndarray] = {}
        self._layouts: dict[tuple[str, int], tuple | None] = {}      # of the padded buffers

    def get(self, name: str, shape, dtype, layout=None) -> np.ndarray:
        """An array of ``shape`` cut from the start of this thread's buffer ``name`` (contents left
        from its last use). The buffer only grows, so chunks of 10 and of 11 images, or a last
        smaller batch, share one allocation. (``layout``: see :meth:`padded`.)"""
        size, key = math.prod(shape), (name, threading.get_ident())   # 0.1 µs; np.prod: 3 µs
        flat = self._arrays.get(key)
        if flat is None or flat.size < size or flat.dtype != dtype or self._layouts.get(key) != layout:
            # a padded buffer starts out filled with its border value (the last item of its layout)
            flat = self._arrays[key] = np.empty(size, dtype) if layout is None else np.full(size, layout[-1], dtype)
            self._layouts[key] = layout
        return flat[:size].reshape(shape)

    def padded(self, name: str, x_shape, pads, dtype, value=0.0) -> np.ndarray:
        """Like :meth:`get`, for ``x`` of ``x_shape`` padded by ``pads`` with ``value`` (zeros for a
        convolution, −inf for a max pooling): an array whose border already holds the value, so that
        only the middle needs writing (:func:`copy_to_middle`). The border is written once, when the
        buffer is allocated (again if the image size, the padding or the value change): every image
        sits at the same place in the flat buffer whatever the batch size, and nothing writes
        outside the middle."""
        (top, bottom), (left, right) = pads
        n, h, w, c = x_shape
        shape = (n, h + top + bottom, w + left + right, c)
        return self.get(name, shape, dtype, layout=(shape[1:], pads, value))


def copy_to_middle(x: np.ndarray, x_padded: np.ndarray, pads) -> None:
    """Write ``x`` into the middle of ``x_padded`` (from :meth:`Scratch.padded`): one copy."""
    (top, _), (left, _) = pads
    h, w = x.shape[1:3]
    x_padded[:, top:top + h, left:left + w] = x


def im2col_into(x_padded: np.ndarray, kernel, strides, buffer: np.ndarray, pool=None,
                ones: bool = False) -> np.ndarray:
    """:func:`tinycnn.im2col.im2col` written into (the start of) a reused flat ``buffer``.

    Returns the ``(N·Ho·Wo, kh·kw·C)`` matrix. The window view costs nothing; the copy into the
    buffer is the one pass the matrix product needs (BLAS wants evenly spaced elements, and
    overlapping windows are not that). With few channels (a grey-scale first layer has one) each
    row is a handful of short pieces, and copying row by row crawls; then we fill the
    *transpose*, one long slab per kernel offset and channel, and return its ``.T`` view — BLAS
    multiplies a transposed matrix just as fast.

    ``pool=(ph, pw)`` puts the rows in *window-major* order for a max pooling that follows (see
    :func:`window_major`). ``ones=True`` adds a first column of ones: then ``[1, cols] · [b; W]``
    is ``cols · W + b`` in one product — the bias is the weight of an input that is always 1 —
    and ``[1, cols]ᵀ · dz`` gives ``Σ dz = db`` as its first row, next to ``dW``.
    """
    win = _windows(x_padded, kernel, strides)                    # (N, Ho, Wo, kh, kw, C)
    if pool is not None:
        win = window_major(win, pool)
    *row_dims, kh, kw, c = win.shape
    rows, columns, extra = math.prod(row_dims), kh * kw * c, int(ones)
    if c >= 4:
        out = buffer[:rows * (extra + columns)].reshape(rows, extra + columns)
        np.copyto(out[:, extra:].reshape(win.shape), win)
    else:
        k = len(row_dims)
        out_t = buffer[:rows * (extra + columns)].reshape(extra + columns, rows)
        np.copyto(out_t[extra:].reshape(kh, kw, c, *row_dims), win.transpose(k, k + 1, k + 2, *range(k)))
        out = out_t.T
    if ones:
        out[:, 0] = 1
    return out


def _windows(x: np.ndarray, kernel, strides) -> np.ndarray:
    """:func:`tinycnn.im2col.windows`, the same read-only view, built with ``np.ndarray`` directly
    when ``x`` is contiguous: 1.2 µs instead of the 3.5 µs ``as_strided`` takes
    (``python benchmarks/call_costs.py``). Both cores build windows for every chunk, and Python code
    like this holds the GIL: while one core runs it, the other cannot start or finish a NumPy call."""
    if not x.flags.c_contiguous:
        return windows(x, kernel, strides)
    (n, h, w, c), (kh, kw), (sh, sw) = x.shape, kernel, strides
    s_n, s_h, s_w, s_c = x.strides
    view = np.ndarray((n, (h - kh) // sh + 1, (w - kw) // sw + 1, kh, kw, c), x.dtype, x, 0,
                      (s_n, s_h * sh, s_w * sw, s_h, s_w, s_c))
    view.flags.writeable = False
    return view


def window_major(win: np.ndarray, pool) -> np.ndarray:
    """The convolution windows ``(N, Ho, Wo, …)`` reordered ``(ph, pw, N, Ho/ph, Wo/pw, …)``: first
    every output pixel at the top-left of a ``ph × pw`` pooling window, then every one at the
    position to its right, and so on (a view; ``Ho``, ``Wo`` must be multiples of the window).

    The rows of an im2col matrix may come in any order — each output row is computed from its own
    row alone. In this order the convolution's output arrives as ``ph·pw`` contiguous blocks, one
    per window position, so the max pooling after it is the max of whole blocks: long contiguous
    passes instead of strided slices (:func:`max_and_first_argmax`).
    """
    (ph, pw), (n, ho, wo), rest = pool, win.shape[:3], win.shape[3:]
    split = win.reshape(n, ho // ph, ph, wo // pw, pw, *rest)    # (N, Ho', i, Wo', j, …)
    return split.transpose(2, 4, 0, 1, 3, *range(5, split.ndim))


CHUNK_BYTES = 2 * 2**20     # im2col + output rows handled at once: small enough to stay in cache
CHUNK_MIN_WORK = 1 << 23    # ...but at least this many multiply-adds per chunk (see images_per_chunk)


def images_per_chunk(bytes_per_image: int, n: int, work_per_image: int = 0) -> int:
    """How many images' rows (of im2col and output) fit in :data:`CHUNK_BYTES` — and at most half
    the batch when the whole batch does not fit, so that two cores each get a chunk.

    A chunk always gets at least :data:`CHUNK_MIN_WORK` multiply-adds (``work_per_image`` each),
    even if its rows then overflow the cache. Every chunk costs a dozen or two NumPy calls, and
    with two threads each call may wait for the other's GIL; a layer with little arithmetic per
    byte — a first convolution, one input channel, ten columns of im2col against 32 output
    channels — drowned in those calls at 2 MiB chunks: 8 Mi made the seed model's training step at
    batch 128 5 % faster (``python benchmarks/knob_ab.py tinycnn.fast.CHUNK_MIN_WORK 1 8388608``).

    The chunks never depend on the number of cores: the weight gradient is summed chunk by chunk,
    and the same chunks give the same sums — the same numbers on one core or many.
    """
    fit = max(1, CHUNK_BYTES // max(bytes_per_image, 1))
    if work_per_image > 0:
        fit = max(fit, -(-CHUNK_MIN_WORK // work_per_image))
    half = -(-n // 2) if n * bytes_per_image >= CHUNK_BYTES else n
    return int(min(n, fit, half))


def chunks(n: int, size: int):
    """``range(n)`` cut into nearly equal slices of at most ``size`` indices, an even number of them.

    Cache blocking: a batch of 128 images makes a 29 MB im2col matrix in the deeper model's second
    convolution. Written in full, it travels to main memory and back (several milliseconds per
    pass on this kind of machine); built and consumed a few images at a time, it stays in the
    CPU cache, and the matrix products on the chunks run as fast as on the whole. Equal chunks in
    an even number give two cores equal shares (19 chunks of 7 images would leave one core with
    ten); the cut depends only on ``n`` and ``size``, never on the number of cores.
    """
    count = -(-n // size)
    if count > 1 and count % 2:
        count = min(count + 1, n)
    return [slice(n * i // count, n * (i + 1) // count) for i in range(count)]


def window_slices(x: np.ndarray, pool, strides, out_hw):
    """``(offset index, strided view)`` for every position ``(i, j)`` inside a pooling window.

    View ``k`` holds, for every output pixel, the input value at offset ``(i, j)`` of its window:
    ``x[:, i::sh, j::sw, :]`` cut to the output size. A max (or sum) over windows is then a max
    over ``ph·pw`` whole arrays — a few long vectorised passes instead of a reduction over a short
    reshaped axis, which NumPy does one tiny window at a time.
    """
    (ph, pw), (sh, sw), (ho, wo) = pool, strides, out_hw
    for i in range(ph):
        for j in range(pw):
            yield i * pw + j, x[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :]


def max_over_windows(x_padded: np.ndarray, pool, strides, out: np.ndarray) -> np.ndarray:
    """The max of every window, in two steps, the images split over the cores.

    Max is separable: the max over a ``ph × pw`` window is the max over its ``pw`` columns of the
    max over its ``ph`` rows. Step 1 takes the max of ``ph`` whole image rows at a time — long
    contiguous runs of memory, the fast case for NumPy — leaving an array ``ph`` times smaller;
    step 2 takes the max of the ``pw`` strided column slices of that (:func:`window_slices`).
    """
    (ph, pw), (sh, sw) = pool, strides
    ho, wo = out.shape[1:3]

    def rows_max(rows):
        x = x_padded[rows]
        row_views = [x[:, i:i + sh * (ho - 1) + 1:sh] for i in range(ph)]          # (n, Ho, W, C)
        tall = row_views[0].copy() if ph == 1 else np.maximum(row_views[0], row_views[1])
        for view in row_views[2:]:
            np.maximum(tall, view, out=tall)
        result = out[rows]
        np.copyto(result, tall[:, :, 0:sw * (wo - 1) + 1:sw])
        for j in range(1, pw):
            np.maximum(result, tall[:, :, j:j + sw * (wo - 1) + 1:sw], out=result)

    on_cores(rows_max, out.shape[0], x_padded[0].size, passes=2)
    return out


def route_to_first_max(dy, x_padded, y, pool, strides, dx_padded) -> np.ndarray:
    """Max-pool backward: each window's ``dy`` goes to the *first* position holding its max.

    For window offsets in row-major order, ``hit = (view == y) and not yet taken``: the first
    offset equal to the max takes the gradient (TensorFlow's rule on ties — common after a ReLU,
    where whole windows are 0). ``dx_padded`` must be zeroed unless the windows tile the input
    exactly (then every element is written once). The images are split over the cores.
    """
    overlap = tuple(pool) != tuple(strides)
    out_hw = y.shape[1:3]

    def rows_backward(rows):
        taken = hit = None
        last = pool[0] * pool[1] - 1
        for (k, view), (_, target) in zip(window_slices(x_padded[rows], pool, strides, out_hw),
                                          window_slices(dx_padded[rows], pool, strides, out_hw)):
            if k == 0:                               # the first offset takes every max it holds
                taken = np.equal(view, y[rows])
                hit = taken
            else:
                hit = np.equal(view, y[rows], out=hit if k > 1 else None)
                np.greater(hit, taken, out=hit)      # hit and not taken (booleans: True > False)
                if k < last:
                    np.logical_or(taken, hit, out=taken)
            if overlap:                              # windows share pixels: add up
                target += dy[rows] * hit
            else:                                    # each pixel belongs to one window: assign
                np.multiply(dy[rows], hit, out=target)

    on_cores(rows_backward, y.shape[0], x_padded[0].size, passes=4)
    return dx_padded


def max_and_first_argmax(blocks: np.ndarray, y: np.ndarray, first, buffer_of) -> None:
    """Max pooling over window-major blocks (:func:`window_major`): ``blocks[k]`` holds window
    position ``k`` (row-major, ``k = i·pw + j``) of every window. Writes ``y`` = the max over
    ``k``, and ``first`` (uint8; skipped if None) = the first ``k`` holding it (TensorFlow's rule
    on ties)::

        found[k] = the max is in one of blocks 0 … k          (a running "or" of blocks[k] == y)
        first    = (K − 1) − Σ_{k < K−1} found[k]             (the positions before the first max)

    Few, large NumPy calls on purpose: both cores run this at once, and each call holds Python's
    GIL while it sets up, so many small calls would make the two cores wait for each other.
    ``buffer_of(name, shape, dtype)`` lends reusable scratch arrays.
    """
    k = len(blocks)
    np.maximum.reduce(blocks, axis=0, out=y)
    if first is None:
        return
    if k == 1:
        first.fill(0)
        return
    found = np.equal(blocks[:-1], y, out=buffer_of("found", blocks[:-1].shape, np.bool_))
    for i in range(1, k - 1):
        np.logical_or(found[i - 1], found[i], out=found[i])
    np.add.reduce(found.view(np.uint8), axis=0, out=first)            # booleans are bytes 0/1
    np.subtract(k - 1, first, out=first)


@functools.lru_cache(maxsize=None)
def _positions(count: int, ndim: int) -> np.ndarray:
    """``0, 1, …, count − 1`` as uint8, shaped ``(count, 1, …, 1)`` to broadcast against ``first``."""
    positions = np.arange(count, dtype=np.uint8).reshape(-1, *[1] * ndim)
    positions.flags.writeable = False
    return positions


def route_to_argmax(g: np.ndarray, first: np.ndarray, blocks: np.ndarray, buffer_of) -> None:
    """Max-pool backward into window-major blocks: ``blocks[k] = g`` where window position ``k``
    held the maximum (``first == k``), else 0 — every element written, in two NumPy calls."""
    hit = np.equal(first, _positions(len(blocks), first.ndim), out=buffer_of("hit", blocks.shape, np.bool_))
    np.multiply(g, hit, out=blocks)


def windows_tile_exactly(shape_hw, pool, strides, pads) -> bool:
    """True when non-overlapping windows cover every input pixel exactly once (no zeroing needed)."""
    (h, w), (ph, pw), (sh, sw) = shape_hw, pool, strides
    no_padding = all(p == 0 for pair in pads for p in pair)
    return no_padding and (ph, pw) == (sh, sw) and h % ph == 0 and w % pw == 0


# NumPy runs ``np.maximum(x, 0)`` — a maximum with a *scalar* — on a slow element-by-element path:
# on this machine it is 3× slower than ``np.maximum(x, zeros)`` with an array of zeros of the same
# shape (74 against 26 µs for 200 000 float32), while ``x + s`` or ``x * s`` with a scalar are as
# fast as with an array (``python benchmarks/call_costs.py``). So the ReLU takes its zeros from
# an array: one read-only block per dtype, shared by every layer and thread.
RELU_BLOCK = 1 << 20         # elements of zeros (4 MB of float32); longer arrays go block by block
_zeros: dict = {}


def relu_into(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``np.maximum(x, 0, out=out)``, computed against a block of zeros (see above); returns ``out``."""
    if not (x.flags.c_contiguous and out.flags.c_contiguous):
        return np.maximum(x, 0, out=out)
    zeros = _zeros.get(x.dtype)
    if zeros is None or zeros.size < min(x.size, RELU_BLOCK):
        zeros = np.zeros(min(max(x.size, 1 << 16), RELU_BLOCK), x.dtype)
        zeros.flags.writeable = False
        _zeros[x.dtype] = zeros
    flat_x, flat_out = x.reshape(-1), out.reshape(-1)
    for start in range(0, x.size, RELU_BLOCK):
        part = slice(start, start + RELU_BLOCK)
        np.maximum(flat_x[part], zeros[:min(RELU_BLOCK, x.size - start)], out=flat_out[part])
    return out


def relu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``np.maximum(x, 0, out=out)`` (as :func:`relu_into`), the images split over the cores."""
    out = np.empty_like(x) if out is None else out
    on_cores(lambda rows: relu_into(x[rows], out[rows]), x.shape[0], x[0].size)
    return out


def relu_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``dy · [y > 0]``: a multiplication by the boolean mask (10× faster than ``np.where`` or a
    masked ``np.copyto`` here, which branch per element), the images split over the cores.

    ``y`` is the ReLU's *output*: ``y > 0`` exactly where the input was ``> 0``, so the layer keeps
    the output it already returned instead of a separate mask.
    """
    dx = np.empty_like(dy)
    on_cores(lambda rows: np.multiply(dy[rows], y[rows] > 0, out=dx[rows]), dy.shape[0], dy[0].size)
    return dx


def all_finite(a: np.ndarray) -> bool:
    """``np.isfinite(a).all()`` in one pass without a boolean temporary, for the common case.

    ``Σ a²`` — BLAS's dot product of ``a`` with itself, three times faster than ``a.sum()`` — is
    finite when every element is, unless it overflows float range; NaN or inf anywhere makes it
    NaN or inf. Only when it is not finite do we pay for the exact check (so a huge-but-finite
    array is never misreported).
    """
    flat = a.reshape(-1)
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.dot(flat, flat) if flat.dtype.kind == "f" else np.add.reduce(flat)
    if np.isfinite(total):
        return True
    return bool(np.isfinite(a).all())
