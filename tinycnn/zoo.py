"""Ready-made architectures used by the CLI, the tests, the tutorials and the benchmarks."""

from __future__ import annotations

from .layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from .model import Sequential


def _head(n_classes, output_activation, dropout):
    """Dense(128, relu) → [Dropout] → Dense(n): the classifier every zoo model ends with."""
    return [Dense(128, activation="relu"), *([Dropout(dropout)] if dropout else []),
            Dense(n_classes, activation=output_activation)]


def seed_model(n_classes: int, input_shape=(28, 28, 1), seed=None, dtype="float32",
               output_activation="softmax", dropout=0.0) -> Sequential:
    """The model as a user would first write it in Keras::

        Conv2D(32, (3, 3), relu) → MaxPooling2D((2, 2)) → Flatten → Dense(128, relu) → Dense(n, softmax)

    Compile it with ``"adam"`` and ``"sparse_categorical_crossentropy"``. For multi-label tasks
    pass ``output_activation="sigmoid"`` and compile with ``"binary_crossentropy"``. ``dropout``
    inserts a Dropout layer of that rate before the last Dense.
    """
    return Sequential([
        Conv2D(32, (3, 3), activation="relu"),
        MaxPooling2D((2, 2)),
        Flatten(),
        *_head(n_classes, output_activation, dropout),
    ], input_shape=input_shape, seed=seed, dtype=dtype)


def deeper_model(n_classes: int, input_shape=(28, 28, 1), seed=None, dtype="float32",
                 output_activation="softmax", dropout=0.0) -> Sequential:
    """Two convolution blocks::

        Conv2D(32,3,same,relu) → MaxPool → Conv2D(64,3,same,relu) → MaxPool → Flatten
        → Dense(128,relu) → Dense(n, softmax)
    """
    return Sequential([
        Conv2D(32, 3, padding="same", activation="relu"),
        MaxPooling2D(2),
        Conv2D(64, 3, padding="same", activation="relu"),
        MaxPooling2D(2),
        Flatten(),
        *_head(n_classes, output_activation, dropout),
    ], input_shape=input_shape, seed=seed, dtype=dtype)


MODELS = {"seed": seed_model, "deeper": deeper_model}
