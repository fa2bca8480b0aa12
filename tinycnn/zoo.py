"""Ready-made architectures used by the CLI, the tests, the tutorials and the benchmarks.

Every model takes any image size through ``input_shape = (height, width, channels)``: the same
convolution blocks run on 28×28 MedMNIST images and on the 64×64, 128×128 and 224×224 MedMNIST+
images, and only the first Dense layer's input grows with the picture (it takes the last feature
map, flattened). Its weight count is the arithmetic of the layers, for an ``s``×``s`` image::

    seed:    ((s − 2) // 2)² · 32 · 128     s = 28: 0.69 M   64: 3.9 M   128: 16.3 M   224: 50.5 M
    deeper:  (s // 4)² · 64 · 128           s = 28: 0.40 M   64: 2.1 M   128:  8.4 M   224: 25.7 M

so at 224×224 the seed model's first Dense alone holds 200 MB of float32 weights (three times that
with Adam's two slots). An image too small for a model's convolutions and poolings (under 4×4 for
both) is refused with a ``ValueError`` that names the model and the layer.
"""

from __future__ import annotations

from .layers import Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from .model import Sequential


def _build(builder: str, layers: list, input_shape, seed, dtype) -> Sequential:
    """``Sequential(layers, input_shape=...)``, with the model's name and input shape in an error
    (e.g. an image too small for its poolings)."""
    try:
        return Sequential(layers, input_shape=input_shape, seed=seed, dtype=dtype)
    except ValueError as error:
        shape = None if input_shape is None else tuple(input_shape)
        raise ValueError(f"{builder} with input_shape={shape}: {error}") from None


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
    inserts a Dropout layer of that rate before the last Dense. ``input_shape`` is
    ``(height, width, channels)``, e.g. ``(64, 64, 1)`` for 64×64 grey images (at least 4×4).
    """
    return _build("seed_model", [
        Conv2D(32, (3, 3), activation="relu"),
        MaxPooling2D((2, 2)),
        Flatten(),
        *_head(n_classes, output_activation, dropout),
    ], input_shape, seed, dtype)


def deeper_model(n_classes: int, input_shape=(28, 28, 1), seed=None, dtype="float32",
                 output_activation="softmax", dropout=0.0) -> Sequential:
    """Two convolution blocks::

        Conv2D(32,3,same,relu) → MaxPool → Conv2D(64,3,same,relu) → MaxPool → Flatten
        → Dense(128,relu) → Dense(n, softmax)

    ``input_shape`` is ``(height, width, channels)``, at least 4×4.
    """
    return _build("deeper_model", [
        Conv2D(32, 3, padding="same", activation="relu"),
        MaxPooling2D(2),
        Conv2D(64, 3, padding="same", activation="relu"),
        MaxPooling2D(2),
        Flatten(),
        *_head(n_classes, output_activation, dropout),
    ], input_shape, seed, dtype)


MODELS = {"seed": seed_model, "deeper": deeper_model}
