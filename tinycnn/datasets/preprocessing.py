"""Turning raw MedMNIST arrays into network inputs, and light data augmentation.

Layout: images are ``NHWC`` (batch, height, width, channels) throughout tinycnn. A typical
pipeline::

    from tinycnn.datasets import load, to_float, standardize, labels_1d, random_shift

    data = load("pneumoniamnist")
    x_train = to_float(data.train.images)                # (N, 28, 28, 1) float32 in [0, 1]
    x_train, mean, std = standardize(x_train)            # statistics of the *training* set...
    x_val, _, _ = standardize(to_float(data.val.images), mean, std)   # ...reused for val/test
    y_train = labels_1d(data.train.labels)               # (N,) int64 class ids

    rng = np.random.default_rng(0)
    x_batch = random_shift(x_train[:64], max_shift=2, rng=rng)   # a new shift every epoch

Every random function takes a ``numpy.random.Generator``, never the global random state, so a
run is reproducible from its seed.
"""

import numpy as np

__all__ = ["labels_1d", "random_flip", "random_shift", "standardize", "to_float"]


def _check_generator(rng: object) -> None:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)), "
            f"got {type(rng).__name__}"
        )


def _check_image_batch(x: object, name: str = "x") -> None:
    """Accept a batch of grey ``(N, H, W)`` or channel-last ``(N, H, W, C)`` images."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.ndim not in (3, 4):
        raise ValueError(
            f"{name} must be a batch of images shaped (N, H, W) or (N, H, W, C), "
            f"got shape {x.shape}"
        )


def to_float(images: np.ndarray) -> np.ndarray:
    """Convert ``uint8`` images to ``float32`` in ``[0, 1]``, channel-last (NHWC).

    Grey images ``(N, H, W)`` get a channel axis: ``(N, H, W, 1)``. RGB images ``(N, H, W, 3)``
    keep their shape. The input is not changed.

    Raises:
        TypeError: ``images`` is not a ``uint8`` array.
        ValueError: ``images`` is not a batch (3 or 4 dimensions).
    """
    _check_image_batch(images, "images")
    if images.dtype != np.uint8:
        raise TypeError(
            f"images must have dtype uint8 (raw pixel values 0..255), got {images.dtype}; "
            f"were they converted already?"
        )
    x = images.astype(np.float32) / np.float32(255.0)
    if x.ndim == 3:
        x = x[..., np.newaxis]
    return x


def standardize(
    x: np.ndarray, mean: np.ndarray | None = None, std: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shift and scale each channel to mean 0 and standard deviation 1.

    Compute the statistics on the training set (leave ``mean`` and ``std`` out), then pass the
    same ``mean`` and ``std`` for the validation and test sets: they must be transformed exactly
    like the training data, and must not leak their own statistics into the model.

    Args:
        x: float images, NHWC (as :func:`to_float` returns them).
        mean, std: per-channel statistics, shape ``(C,)``; both or neither.

    Returns:
        ``(standardized x as float32, mean, std)``, ``mean`` and ``std`` of shape ``(C,)``. A
        channel that is constant over the whole set gets ``std = 1`` (it becomes all zeros).
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy array, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"x must be NHWC images shaped (N, H, W, C), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must be floating point (use to_float first), got {x.dtype}")
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std (from the training set), or neither")

    n_channels = x.shape[-1]
    if mean is None:
        if x.shape[0] == 0:
            raise ValueError("cannot compute statistics of an empty set of images")
        mean = x.mean(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)
        std = x.std(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)
        std[std == 0] = 1.0  # constant channel: nothing to scale
    else:
        mean = np.asarray(mean, dtype=np.float32)
        std = np.asarray(std, dtype=np.float32)
        if mean.shape != (n_channels,) or std.shape != (n_channels,):
            raise ValueError(
                f"mean and std must have shape ({n_channels},) for {n_channels} channel(s), "
                f"got {mean.shape} and {std.shape}"
            )
        if np.any(std <= 0):
            raise ValueError(f"std must be positive, got {std}")
    standardized = ((x - mean) / std).astype(np.float32)
    return standardized, mean, std


def labels_1d(labels: np.ndarray) -> np.ndarray:
    """Turn single-label MedMNIST labels ``(N, 1)`` into class ids ``(N,)`` of dtype ``int64``.

    Labels already shaped ``(N,)`` are accepted too. Multi-label labels ``(N, L)`` with
    ``L > 1`` (ChestMNIST) are refused: they are one 0/1 flag per disease, not one class id.
    """
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"labels must be a numpy array, got {type(labels).__name__}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be integers (class ids), got {labels.dtype}")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    elif labels.ndim == 2:
        raise ValueError(
            f"labels shaped {labels.shape} have {labels.shape[1]} columns: these are multi-label "
            f"0/1 flags, not class ids; use them as they are"
        )
    elif labels.ndim != 1:
        raise ValueError(f"labels must be shaped (N, 1) or (N,), got {labels.shape}")
    return labels.astype(np.int64)


def random_shift(x: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Move each image by its own random whole number of pixels, filling the gap with zeros.

    Each image gets a vertical offset ``dy`` and a horizontal offset ``dx``, each drawn uniformly
    from ``-max_shift .. max_shift``; its content moves ``dy`` pixels down and ``dx`` pixels right
    (negative: up, left). Pixels pushed over the edge are lost. The shape and dtype stay the same
    and the input is not changed.

    How: pad every image with ``max_shift`` zeros on each side, then let each image cut its own
    ``H × W`` window out of its padded copy, all images at once with NumPy indexing.

    Args:
        x: images ``(N, H, W)`` or ``(N, H, W, C)``, any dtype.
        max_shift: largest offset in pixels, ``0 <= max_shift < min(H, W)``; 0 returns a copy.
        rng: the random generator to draw the offsets from.
    """
    _check_image_batch(x)
    _check_generator(rng)
    height, width = x.shape[1], x.shape[2]
    if isinstance(max_shift, bool) or not isinstance(max_shift, (int, np.integer)):
        raise TypeError(f"max_shift must be an int, got {type(max_shift).__name__}")
    if not 0 <= max_shift < min(height, width):
        raise ValueError(
            f"max_shift must be between 0 and {min(height, width) - 1} for {height}×{width} "
            f"images, got {max_shift}"
        )
    m = int(max_shift)
    n = x.shape[0]
    dy = rng.integers(-m, m + 1, size=n)
    dx = rng.integers(-m, m + 1, size=n)

    pad = [(0, 0), (m, m), (m, m)] + [(0, 0)] * (x.ndim - 3)
    padded = np.pad(x, pad)  # zeros around each image

    # Output pixel (i, j) of image k shows input pixel (i - dy[k], j - dx[k]), which sits at
    # (i - dy[k] + m, j - dx[k] + m) in the padded image. Shapes broadcast to (N, H, W).
    batch_index = np.arange(n)[:, None, None]
    row_index = np.arange(height)[None, :, None] - dy[:, None, None] + m
    column_index = np.arange(width)[None, None, :] - dx[:, None, None] + m
    return padded[batch_index, row_index, column_index]


def random_flip(
    x: np.ndarray, rng: np.random.Generator, horizontal: bool = True, p: float = 0.5
) -> np.ndarray:
    """Mirror each image with probability ``p`` (left-right, or up-down if not ``horizontal``).

    Opt-in only, and think before using it: a flip does not keep the label right for every
    modality. OrganA/C/SMNIST tell ``kidney-left`` from ``kidney-right`` (and femur, lung), and a
    mirrored chest X-ray puts the heart on the wrong side, which no real patient image shows
    (except in rare situs inversus). Histology (PathMNIST) or blood cells have no such direction.

    Args:
        x: images ``(N, H, W)`` or ``(N, H, W, C)``, any dtype.
        rng: the random generator that decides which images flip.
        horizontal: flip left-right (width axis); if False, flip up-down (height axis).
        p: the probability that an image is flipped.

    Returns:
        A new array of the same shape and dtype; the input is not changed.
    """
    _check_image_batch(x)
    _check_generator(rng)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability between 0 and 1, got {p}")
    flip = rng.random(x.shape[0]) < p
    axis = 2 if horizontal else 1
    out = x.copy()
    out[flip] = np.flip(x[flip], axis=axis)
    return out
