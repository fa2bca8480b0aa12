"""Max-pooling kernels: separable maxima and first-maximum routing on both cores, and the
window-major helpers of the fused convolution step (:mod:`tinycnn.kernels.fused`)."""

from __future__ import annotations

import functools

import numpy as np

from ..im2col import output_size, padding_amounts, pair, unpad
from .memory import copy_to_middle, window_slices
from .parallel import on_cores


def maxpool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid"):
    """:func:`tinycnn.functional.maxpool2d_forward`: the max of every window, in two separable
    passes on both cores (:func:`max_over_windows`). The cache keeps the padded input and ``y``;
    backward finds each window's first maximum again by comparing them."""
    pool = pair(pool_size)
    strides = pool if strides is None else pair(strides)
    n, h, w, c = x.shape
    pads = padding_amounts(h, w, pool, strides, padding)
    x_padded = x
    if any(p for side in pads for p in side):              # −inf around the edges: never a window's max
        x_padded = np.full((n, h + sum(pads[0]), w + sum(pads[1]), c), -np.inf, x.dtype)
        copy_to_middle(x, x_padded, pads)
    ho, wo = output_size(h, pool[0], strides[0], padding), output_size(w, pool[1], strides[1], padding)
    y = max_over_windows(x_padded, pool, strides, out=np.empty((n, ho, wo, c), x.dtype))
    return y, (x_padded, y, pool, strides, pads)


def maxpool2d_backward(dy, cache):
    """:func:`tinycnn.functional.maxpool2d_backward`: each window's gradient to its first maximum."""
    x_padded, y, pool, strides, pads = cache
    tiles = windows_tile_exactly(x_padded.shape[1:3], pool, strides, pads)
    dx_padded = np.empty(x_padded.shape, dy.dtype) if tiles else np.zeros(x_padded.shape, dy.dtype)
    route_to_first_max(dy, x_padded, y, pool, strides, dx_padded)
    return unpad(dx_padded, pads)


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
