r"""im2col and col2im: how a convolution becomes one matrix product.

A 2-D convolution (really a cross-correlation, as in every deep-learning framework) slides a
``kh × kw × C`` kernel over the image and takes a dot product at every position. If we *copy*
every window the kernel visits into one row of a matrix — "image to columns", im2col — the whole
convolution is one matrix product with the kernel reshaped to ``(kh·kw·C, filters)``::

    input x (one image, one channel, 4×4)         windows of a 2×2 kernel, stride 1 (3×3 of them)

      a b c d                                      row 0: a b e f      <- window at (0, 0)
      e f g h        im2col                        row 1: b c f g      <- window at (0, 1)
      i j k l     ------------>  cols (9 × 4) =    row 2: c d g h
      m n o p                                      row 3: e f i j      <- window at (1, 0)
                                                   ...
                                                   row 8: k l o p      <- window at (2, 2)

    y = cols @ kernel.reshape(4, filters)   # (9, filters), then reshape to (3, 3, filters)

**Stride tricks.** We never loop over output pixels to build the windows. A NumPy array is a
block of memory plus *strides* (how many bytes to step per index along each axis). The array of
all windows, shape ``(N, Ho, Wo, kh, kw, C)``, can be described over the *same* memory as ``x``:
stepping one output row moves ``stride_h`` image rows; stepping one kernel row moves one image
row. ``numpy.lib.stride_tricks.as_strided`` builds that view in O(1) without copying. Reshaping
it to the 2-D ``cols`` matrix makes the one copy that the matrix product needs.

**col2im** is the backward of im2col: every window position received a gradient; each input
pixel collects the sum of the gradients of all the windows it appeared in. We add each of the
``kh·kw`` kernel offsets' slabs back into place — a loop over kernel offsets, not over pixels.

Layout is NHWC throughout, kernels ``(kh, kw, C_in, C_out)``: the same as Keras.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def pair(value) -> tuple[int, int]:
    """A kernel size, stride or pool size given as an int or a ``(rows, cols)`` pair, as a pair."""
    if np.ndim(value) == 0:
        return int(value), int(value)
    return int(value[0]), int(value[1])


def output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """Spatial output size of a sliding window, as TensorFlow computes it."""
    if padding == "same":
        return -(-size // stride)  # ceil(size / stride)
    return (size - kernel) // stride + 1


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Zeros to add before and after one spatial axis for ``padding="same"``, TensorFlow-style.

    The output has ``ceil(size / stride)`` positions; the input is padded just enough for the last
    window to fit. When the total padding is odd the extra row/column goes at the *end* (bottom /
    right), which is what TensorFlow and Keras do.
    """
    out = output_size(size, kernel, stride, "same")
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def padding_amounts(height: int, width: int, kernel: tuple[int, int], strides: tuple[int, int],
                    padding: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((top, bottom), (left, right))`` for an NHWC input."""
    if padding == "valid":
        return (0, 0), (0, 0)
    return (same_padding(height, kernel[0], strides[0]),
            same_padding(width, kernel[1], strides[1]))


def pad(x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]], value: float = 0.0) -> np.ndarray:
    """Pad the two spatial axes of an NHWC batch (returns ``x`` itself when there is nothing to add)."""
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def unpad(x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    """Cut the padding added by :func:`pad` back off (the gradient of padding)."""
    (top, bottom), (left, right) = pads
    return x[:, top:x.shape[1] - bottom, left:x.shape[2] - right, :]


def windows(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int]) -> np.ndarray:
    """All ``kh × kw`` windows of an (already padded) NHWC batch, as a read-only view.

    Returns shape ``(N, Ho, Wo, kh, kw, C)`` where ``windows[n, i, j]`` is the patch the kernel
    sees at output position ``(i, j)``. No data is copied: only the strides change.
    """
    n, h, w, c = x.shape
    kh, kw = kernel
    sh, sw = strides
    ho = (h - kh) // sh + 1
    wo = (w - kw) // sw + 1
    s_n, s_h, s_w, s_c = x.strides
    return as_strided(
        x,
        shape=(n, ho, wo, kh, kw, c),
        strides=(s_n, s_h * sh, s_w * sw, s_h, s_w, s_c),
        writeable=False,
    )


def im2col(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int]) -> np.ndarray:
    """The im2col matrix: one row per output pixel, one column per (kernel row, kernel col, channel).

    Shape ``(N·Ho·Wo, kh·kw·C)``; the column order matches ``kernel.reshape(kh·kw·C, filters)``.
    """
    win = windows(x, kernel, strides)
    n, ho, wo, kh, kw, c = win.shape
    return win.reshape(n * ho * wo, kh * kw * c)  # the one copy


def col2im(dwin: np.ndarray, x_shape: tuple[int, ...], strides: tuple[int, int], out=None) -> np.ndarray:
    """The backward of :func:`windows`: sum each window's gradient back onto the input pixels.

    ``dwin`` has the windows' shape ``(N, Ho, Wo, kh, kw, C)``; the result has ``x_shape``.
    Kernel offset ``(i, j)`` of output pixel ``(r, s)`` came from input pixel
    ``(r·sh + i, s·sw + j)``, so for each offset we add one strided slab at once.
    ``out``: add into this (zeroed) array of ``x_shape`` instead of a new one.
    """
    _, ho, wo, kh, kw, _ = dwin.shape
    sh, sw = strides
    dx = np.zeros(x_shape, dtype=dwin.dtype) if out is None else out
    for i in range(kh):
        for j in range(kw):
            dx[:, i:i + sh * ho:sh, j:j + sw * wo:sw, :] += dwin[:, :, :, i, j, :]
    return dx
