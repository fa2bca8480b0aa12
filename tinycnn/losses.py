"""Losses, computed from logits: softmax cross-entropy and sigmoid binary cross-entropy.

Both fuse the output non-linearity with the loss. For softmax cross-entropy with integer labels
``y`` and logits ``z`` of a batch of N::

    p    = softmax(z)
    L    = −(1/N) Σ_n log p[n, y_n]  =  (1/N) Σ_n (logsumexp(z_n) − z[n, y_n])
    dL/dz = (p − onehot(y)) / N

The second form of L never takes the log of a probability that might have underflowed to 0, and
the gradient is simply "predicted minus true" — much better behaved than chaining the softmax
Jacobian onto ``−1/p``.

The math is :func:`tinycnn.functional.softmax_cross_entropy` and
:func:`tinycnn.functional.sigmoid_binary_cross_entropy` (each returns the loss *and* dL/dlogits);
these classes add the label checks, Keras's names and the forward/backward split:
``loss = L.forward(logits, y)`` then ``dlogits = L.backward()``.
``L.forward(logits, y, sample_weight)`` weights each sample's loss: the result is
``Σ wᵢ·ℓᵢ / N`` (Keras's "sum over batch size"), and each row of the gradient is scaled by ``wᵢ``
— how class weights enter training.
``from_logits=False`` (what the Keras strings ``"sparse_categorical_crossentropy"`` and
``"binary_crossentropy"`` mean) says that the *model* ends in the softmax/sigmoid; the model then
hands the loss that layer's logits, so the computation is the same fused one.
"""

from __future__ import annotations

import numpy as np

from .errors import CallOrderError
from . import ops
from .functional import sigmoid, softmax


class Loss:
    #: The output activation this loss is fused with ("softmax" or "sigmoid").
    activation: str = ""

    def __init__(self, from_logits: bool = True):
        self.from_logits = bool(from_logits)
        self._cache = None

    def forward(self, logits: np.ndarray, y, sample_weight=None) -> float:
        raise NotImplementedError

    def backward(self) -> np.ndarray:
        """dL/dlogits of the last ``forward`` (computed there, with the loss)."""
        return self._cached()

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def accuracy(self, logits: np.ndarray, y) -> float:
        raise NotImplementedError

    def check_labels(self, y, logits_shape) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"from_logits": self.from_logits}

    def _cached(self):
        if self._cache is None:
            raise CallOrderError(f"{type(self).__name__}: backward called before forward")
        return self._cache

    def check_sample_weight(self, sample_weight, n, dtype):
        """None, or a (N,) array of finite non-negative weights in the logits' dtype."""
        if sample_weight is None:
            return None
        w = np.asarray(sample_weight, dtype=dtype)
        if w.shape != (n,):
            raise ValueError(f"{type(self).__name__}: sample_weight must have shape ({n},), got {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(f"{type(self).__name__}: sample_weight must be finite and >= 0")
        return w


class SoftmaxCrossEntropy(Loss):
    """Sparse categorical cross-entropy from logits: integer labels, mean over the batch."""

    activation = "softmax"

    def check_labels(self, y, logits_shape) -> np.ndarray:
        """Integer class ids of shape (N,) or (N, 1) (MedMNIST's), each in [0, classes)."""
        n, classes = logits_shape[0], logits_shape[-1]
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or y.shape[0] != n:
            raise ValueError(f"{type(self).__name__}: expected labels of shape ({n},) or ({n}, 1), got {y.shape}")
        if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)):
            if not np.issubdtype(y.dtype, np.floating) or not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
                raise TypeError(f"{type(self).__name__}: expected integer class labels, got dtype {y.dtype}")
        y = y.astype(np.int64)
        if y.size and (y.min() < 0 or y.max() >= classes):
            raise ValueError(
                f"{type(self).__name__}: labels must be in [0, {classes}) for {classes} outputs, "
                f"got values in [{y.min()}, {y.max()}]"
            )
        return y

    def forward(self, logits, y, sample_weight=None) -> float:
        y = self.check_labels(y, logits.shape)
        w = self.check_sample_weight(sample_weight, logits.shape[0], logits.dtype)
        args = (logits, y) if w is None else (logits, y, w)    # (an exercise's version takes two)
        loss, self._cache = ops.softmax_cross_entropy(*args)
        return loss

    def probabilities(self, logits):
        return softmax(logits)

    def accuracy(self, logits, y) -> float:
        y = self.check_labels(y, logits.shape)
        return float(np.mean(logits.argmax(axis=1) == y))


class SigmoidBinaryCrossEntropy(Loss):
    """Binary cross-entropy from logits, for binary and multi-label targets.

    Labels are 0/1 with the logits' shape ``(N, L)`` (or ``(N,)`` for one output). The loss is the
    mean over the batch and the labels (Keras's ``binary_crossentropy``)::

        L = mean( max(z, 0) − z·y + log(1 + exp(−|z|)) )      (stable form of −y·log σ − (1−y)·log(1−σ))
        dL/dz = (σ(z) − y) / (N·L)
    """

    activation = "sigmoid"

    def check_labels(self, y, logits_shape) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 1 and len(logits_shape) == 2 and logits_shape[1] == 1:
            y = y[:, None]
        if y.shape != tuple(logits_shape):
            raise ValueError(f"{type(self).__name__}: expected labels of shape {tuple(logits_shape)}, got {y.shape}")
        if y.dtype.kind not in "biuf":
            raise TypeError(f"{type(self).__name__}: expected 0/1 labels, got dtype {y.dtype}")
        if y.size and not np.all((y == 0) | (y == 1)):
            raise ValueError(f"{type(self).__name__}: labels must be 0 or 1")
        return y

    def forward(self, logits, y, sample_weight=None) -> float:
        y = self.check_labels(y, logits.shape).astype(logits.dtype)
        w = self.check_sample_weight(sample_weight, logits.shape[0], logits.dtype)
        loss, self._cache = ops.sigmoid_binary_cross_entropy(logits, y, w)
        return loss

    def probabilities(self, logits):
        return sigmoid(logits)

    def accuracy(self, logits, y) -> float:
        y = self.check_labels(y, logits.shape)
        return float(np.mean((logits > 0) == (y == 1)))


def balanced_class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """``n_samples / (n_classes · count_c)`` for each class c (scikit-learn's "balanced"): every
    class then carries the same total weight in the loss. A class absent from ``y`` gets 0."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    safe = np.maximum(counts, 1)
    return np.where(counts > 0, len(y) / (n_classes * safe), 0.0)


_BY_NAME = {
    "sparse_categorical_crossentropy": lambda: SoftmaxCrossEntropy(from_logits=False),
    "binary_crossentropy": lambda: SigmoidBinaryCrossEntropy(from_logits=False),
    "softmax_cross_entropy": lambda: SoftmaxCrossEntropy(from_logits=True),
    "sigmoid_binary_cross_entropy": lambda: SigmoidBinaryCrossEntropy(from_logits=True),
}


def get(loss) -> Loss:
    """A loss object from a Keras-style name, or the object itself."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in _BY_NAME:
        return _BY_NAME[loss]()
    raise ValueError(f"unknown loss {loss!r}; expected a tinycnn.losses.Loss or one of {sorted(_BY_NAME)}")
