"""Memory: cache-sized chunks of a batch, im2col written into reused buffers, padding.

One pass over a batch's feature maps costs about as much as tens of millions of multiply-adds in
BLAS, so the kernels make as few passes as they can and keep each chunk of a few images in the
CPU cache between the passes that touch it. Measurements: ``docs/performance.md``.
"""

from __future__ import annotations

import math
import threading
import weakref

import numpy as np

from ..im2col import windows


class Scratch:
    """Arrays that a layer reuses from one batch to the next instead of allocating them anew.

    A fresh multi-megabyte array costs more than its ``malloc``: the operating system hands out
    zeroed pages on first touch, one page fault per 4 KiB. Reusing the same buffer for, say, the
    im2col matrix of every batch skips all of that. Only arrays that stay *inside* one kernel call
    (never returned, never cached for backward) live here — a returned array may be kept by the caller. Each thread
    gets its own buffers (two cores may fill two im2col chunks at once).
    """

    def __init__(self):
        self._arrays: dict[tuple[str, int], np.ndarray] = {}
        self._layouts: dict[tuple[str, int], tuple | None] = {}      # of the padded buffers

    def get(self, name: str, shape, dtype, layout=None) -> np.ndarray:
        """An array of ``shape`` cut from the start of this thread's buffer ``name`` (contents left
        from its last use). The buffer only grows, so chunks of 10 and of 11 images, or a last
        smaller batch, share one allocation. (``layout``: see :meth:`padded`.)"""
        size, key = math.prod(shape), (name, threading.get_ident())   # math.prod: a fraction of np.prod's cost
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
    """Write ``x`` into the middle of ``x_padded`` (from :meth:`Scratch.padded` or :func:`padded`): one copy."""
    (top, _), (left, _) = pads
    h, w = x.shape[1:3]
    x_padded[:, top:top + h, left:left + w] = x


class Kept:
    """Arrays a kernel keeps in its cache for backward (the padded input, im2col rows), reused from
    one call to the next of the same layer — told apart by its weights array, the ``owner`` —
    instead of allocated anew: a fresh multi-megabyte array costs page faults on first touch. So a
    kernel's cache is valid until its next forward call with the same weights, as a layer's cache
    is until the layer's next forward. An owner's arrays go when the owner goes."""

    def __init__(self):
        self._arrays: dict = {}

    def get(self, name, owner, shape, dtype, border=None) -> np.ndarray:
        key = (name, id(owner))
        entry = self._arrays.get(key)
        if entry is None or entry[0]() is not owner or entry[1].shape != tuple(shape) \
                or entry[1].dtype != dtype or entry[2] != border:
            if entry is None or entry[0]() is not owner:
                weakref.finalize(owner, self._arrays.pop, key, None)
            array = np.empty(shape, dtype) if border is None else _with_border(shape, dtype, *border)
            self._arrays[key] = entry = (weakref.ref(owner), array, border)
        return entry[1]


_kept = Kept()


def kept(name, owner, shape, dtype) -> np.ndarray:
    """An array of ``shape`` kept for backward by the layer whose weights are ``owner`` (:class:`Kept`)."""
    return _kept.get(name, owner, shape, dtype)


def padded(x_shape, pads, dtype, owner, value=0.0) -> np.ndarray:
    """The array where ``x`` of ``x_shape`` goes padded by ``pads``, its border already ``value``
    (zeros for a convolution, −inf for a max pooling), its middle for each chunk to copy its own
    images into (:func:`copy_to_middle`), on its own core, just before reading them. Kept for
    ``owner`` (:class:`Kept`): the border is written once."""
    (top, bottom), (left, right) = pads
    n, h, w, c = x_shape
    return _kept.get("padded", owner, (n, h + top + bottom, w + left + right, c), dtype, (pads, value))


def _with_border(shape, dtype, pads, value):
    (top, bottom), (left, right) = pads
    out = np.empty(shape, dtype)
    h, w = shape[1] - top - bottom, shape[2] - left - right
    out[:, :top] = value
    out[:, h + top:] = value
    out[:, top:h + top, :left] = value
    out[:, top:h + top, w + left:] = value
    return out


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
    when ``x`` is contiguous (a third of ``as_strided``'s cost). Both cores build windows for every
    chunk, and Python code like this holds the GIL: while one core runs it, the other waits."""
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
    channels — drowned in those calls at 2 MiB chunks (see ``docs/performance.md``).

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
