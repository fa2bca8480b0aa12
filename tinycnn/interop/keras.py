"""Copy models between tinycnn and Keras 3, weights included, exactly.

    from tinycnn.interop.keras import to_keras, from_keras
    keras_model = to_keras(model)          # same architecture, same weights, compiled alike
    model = from_keras(keras_model)        # and back

The two frameworks share the layout (NHWC, kernels ``(kh, kw, c_in, c_out)`` and ``(in, out)``,
Flatten in (H, W, C) order, TensorFlow's "same" padding), so weights copy across without any
transpose. Keras is imported only when these functions run: tinycnn itself never needs it.
Install it with ``pip install -e ".[keras]"`` (tensorflow-cpu, which brings Keras 3).
"""

from __future__ import annotations

import numpy as np

from .. import layers as L
from ..losses import SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from ..model import Sequential
from ..optimizers import SGD, Adam, AdamW


def _keras():
    try:
        import keras
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("tinycnn.interop.keras needs Keras 3: pip install -e \".[keras]\"") from err
    return keras


# --------------------------------------------------------------------------------------------
# tinycnn -> Keras
# --------------------------------------------------------------------------------------------
def to_keras(model: Sequential, compile: bool = True):
    """A ``keras.Sequential`` with the same layers and a copy of the weights.

    With ``compile`` (and a compiled tinycnn model), the Keras model is compiled with the
    equivalent optimizer and loss (``from_logits`` as in tinycnn).
    """
    keras = _keras()
    if not model.built:
        raise ValueError("to_keras: build the tinycnn model first (pass input_shape)")
    k_layers = [keras.Input(shape=model.input_shape, dtype=model.dtype.name)]
    k_layers += [_layer_to_keras(keras, layer, model.dtype.name) for layer in model.layers]
    k_model = keras.Sequential(k_layers, name=model.name)
    for layer, k_layer in zip(model.layers, k_model.layers):
        if isinstance(layer, L.Normalization):   # its mean and variance went in through the constructor
            continue
        if layer.params or layer.state:      # Keras's order: kernel, bias / gamma, beta, moving stats
            k_layer.set_weights([*layer.params.values(), *layer.state.values()])
    if compile and model.optimizer is not None and model.loss is not None:
        k_model.compile(optimizer=optimizer_to_keras(model.optimizer), loss=loss_to_keras(model.loss))
    return k_model


def _regularizer_to_keras(keras, regularizer):
    return None if regularizer is None else keras.regularizers.L2(regularizer.l2)


def _layer_to_keras(keras, layer, dtype):
    common = {"name": layer.name, "dtype": dtype}
    if isinstance(layer, L.Conv2D):
        return keras.layers.Conv2D(layer.filters, layer.kernel_size, strides=layer.strides, padding=layer.padding,
                                   activation=layer.activation_name, use_bias=layer.use_bias,
                                   kernel_regularizer=_regularizer_to_keras(keras, layer.kernel_regularizer), **common)
    if isinstance(layer, L.Dense):
        return keras.layers.Dense(layer.units, activation=layer.activation_name, use_bias=layer.use_bias,
                                  kernel_regularizer=_regularizer_to_keras(keras, layer.kernel_regularizer), **common)
    if isinstance(layer, L.MaxPool2D):
        return keras.layers.MaxPooling2D(layer.pool_size, strides=layer.strides, padding=layer.padding, **common)
    if isinstance(layer, L.AveragePooling2D):
        return keras.layers.AveragePooling2D(layer.pool_size, strides=layer.strides, padding=layer.padding, **common)
    if isinstance(layer, L.GlobalAveragePooling2D):
        return keras.layers.GlobalAveragePooling2D(**common)
    if isinstance(layer, L.BatchNormalization):
        return keras.layers.BatchNormalization(momentum=layer.momentum, epsilon=layer.epsilon, center=layer.center,
                                               scale=layer.scale, **common)
    if isinstance(layer, L.Dropout):
        return keras.layers.Dropout(layer.rate, seed=layer.seed, **common)
    if isinstance(layer, L.LeakyReLU):
        return keras.layers.LeakyReLU(negative_slope=layer.negative_slope, **common)
    if isinstance(layer, L.Tanh):
        return keras.layers.Activation("tanh", **common)
    if isinstance(layer, L.Flatten):
        return keras.layers.Flatten(**common)
    if isinstance(layer, L.ReLU):
        return keras.layers.ReLU(**common)
    if isinstance(layer, L.Softmax):
        return keras.layers.Softmax(**common)
    if isinstance(layer, L.Sigmoid):
        return keras.layers.Activation("sigmoid", **common)
    if isinstance(layer, L.Rescaling):
        return keras.layers.Rescaling(layer.scale, offset=layer.offset, **common)
    if isinstance(layer, L.Normalization):
        if "mean" not in layer.state:
            raise ValueError(f"to_keras: {layer.label} has no mean and variance yet; adapt it first")
        return keras.layers.Normalization(axis=layer.axis, mean=layer.state["mean"], variance=layer.state["variance"],
                                          **common)
    raise ValueError(f"to_keras: no Keras equivalent for {layer.label}")


def optimizer_to_keras(optimizer):
    keras = _keras()
    if isinstance(optimizer, AdamW):
        return keras.optimizers.AdamW(learning_rate=optimizer.learning_rate, weight_decay=optimizer.weight_decay,
                                      beta_1=optimizer.beta_1, beta_2=optimizer.beta_2, epsilon=optimizer.epsilon)
    if isinstance(optimizer, Adam):
        return keras.optimizers.Adam(learning_rate=optimizer.learning_rate, beta_1=optimizer.beta_1,
                                     beta_2=optimizer.beta_2, epsilon=optimizer.epsilon)
    if isinstance(optimizer, SGD):
        return keras.optimizers.SGD(learning_rate=optimizer.learning_rate, momentum=optimizer.momentum,
                                    nesterov=optimizer.nesterov)
    raise ValueError(f"to_keras: no Keras equivalent for optimizer {type(optimizer).__name__}")


def loss_to_keras(loss):
    keras = _keras()
    if isinstance(loss, SoftmaxCrossEntropy):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=loss.from_logits)
    if isinstance(loss, SigmoidBinaryCrossEntropy):
        return keras.losses.BinaryCrossentropy(from_logits=loss.from_logits)
    raise ValueError(f"to_keras: no Keras equivalent for loss {type(loss).__name__}")


# --------------------------------------------------------------------------------------------
# Keras -> tinycnn
# --------------------------------------------------------------------------------------------
_ACTIVATIONS = {"linear": None, "relu": "relu", "softmax": "softmax", "sigmoid": "sigmoid", "tanh": "tanh",
                "leaky_relu": "leaky_relu"}


def from_keras(keras_model, seed=None) -> Sequential:
    """A tinycnn ``Sequential`` with the same layers and a copy of the weights.

    Supports Keras ``Conv2D``, ``Dense`` (each with a linear/relu/softmax/sigmoid/tanh/leaky_relu
    activation and an optional L2 kernel regularizer), ``MaxPooling2D``, ``AveragePooling2D``,
    ``GlobalAveragePooling2D``, ``BatchNormalization``, ``Dropout``, ``Flatten``, ``ReLU``,
    ``LeakyReLU``, ``Softmax``, ``Activation``, ``Rescaling`` and ``Normalization`` (adapted or
    given its statistics; not ``invert=True``) layers; anything else raises a ``ValueError``
    naming the layer and what is unsupported. The model is not compiled.
    """
    keras = _keras()
    if not isinstance(keras_model, keras.Sequential):
        raise ValueError(f"from_keras: expected a keras.Sequential model, got {type(keras_model).__name__}")
    input_shape = tuple(keras_model.inputs[0].shape[1:]) if keras_model.inputs else None
    if input_shape is None or any(s is None for s in input_shape):
        raise ValueError("from_keras: the Keras model needs a fixed input shape (keras.Input(shape=...))")
    dtype = "float64" if keras_model.layers and keras_model.layers[0].dtype == "float64" else "float32"
    layers = [_layer_from_keras(keras, k_layer) for k_layer in keras_model.layers]
    model = Sequential(layers, input_shape=input_shape, seed=seed, dtype=dtype, name=keras_model.name)
    for layer, k_layer in zip(model.layers, keras_model.layers):
        if isinstance(layer, L.Normalization):   # its mean and variance came through the constructor
            continue
        targets = [*layer.params.items(), *layer.state.items()]
        weights = k_layer.get_weights()
        if len(weights) != len(targets):
            raise ValueError(f"from_keras: {k_layer.name} has {len(weights)} weight arrays, tinycnn expects {len(targets)}")
        for (key, target), value in zip(targets, weights):
            if target.shape != value.shape:
                raise ValueError(f"from_keras: {k_layer.name} {key} has shape {value.shape}, "
                                 f"tinycnn expects {target.shape}")
            target[...] = value
    return model


def _regularizer_from_keras(k, cfg, unsupported):
    for other in ("bias_regularizer", "activity_regularizer"):
        if cfg.get(other) is not None:
            raise unsupported(other)
    reg = cfg.get("kernel_regularizer")
    if reg is None:
        return None
    name = reg.get("class_name") if isinstance(reg, dict) else type(reg).__name__
    config = reg.get("config", {}) if isinstance(reg, dict) else reg.get_config()
    if name != "L2":
        raise unsupported(f"kernel_regularizer {name}")
    return config["l2"]


def _activation_name(k_layer) -> str | None:
    fn = k_layer.activation
    name = getattr(fn, "__name__", str(fn))
    if name not in _ACTIVATIONS:
        raise ValueError(f"from_keras: layer '{k_layer.name}' uses activation '{name}', which tinycnn does not "
                         f"have (supported: {sorted(_ACTIVATIONS)})")
    return _ACTIVATIONS[name]


def _layer_from_keras(keras, k):
    kind = type(k).__name__
    cfg = k.get_config()
    name = k.name

    def unsupported(what):
        return ValueError(f"from_keras: layer '{name}' ({kind}) uses {what}, which tinycnn does not support")

    if cfg.get("data_format", "channels_last") != "channels_last":
        raise unsupported(f"data_format='{cfg['data_format']}' (tinycnn is channels_last / NHWC)")
    if isinstance(k, keras.layers.Conv2D) and kind == "Conv2D":
        if tuple(cfg["dilation_rate"]) != (1, 1):
            raise unsupported(f"dilation_rate={cfg['dilation_rate']}")
        if cfg.get("groups", 1) != 1:
            raise unsupported(f"groups={cfg['groups']}")
        return L.Conv2D(cfg["filters"], tuple(cfg["kernel_size"]), strides=tuple(cfg["strides"]),
                        padding=cfg["padding"], activation=_activation_name(k), use_bias=cfg["use_bias"],
                        kernel_regularizer=_regularizer_from_keras(k, cfg, unsupported), name=name)
    if kind == "Dense":
        return L.Dense(cfg["units"], activation=_activation_name(k), use_bias=cfg["use_bias"],
                       kernel_regularizer=_regularizer_from_keras(k, cfg, unsupported), name=name)
    if kind == "MaxPooling2D":
        return L.MaxPool2D(tuple(cfg["pool_size"]), strides=tuple(cfg["strides"]), padding=cfg["padding"], name=name)
    if kind == "AveragePooling2D":
        return L.AveragePooling2D(tuple(cfg["pool_size"]), strides=tuple(cfg["strides"]), padding=cfg["padding"],
                                  name=name)
    if kind == "GlobalAveragePooling2D":
        if cfg.get("keepdims"):
            raise unsupported("keepdims=True")
        return L.GlobalAveragePooling2D(name=name)
    if kind == "BatchNormalization":
        if cfg.get("axis") not in (-1, [-1], 3, [3]) or cfg.get("renorm") or cfg.get("synchronized"):
            raise unsupported(f"axis={cfg.get('axis')}/renorm/synchronized (tinycnn normalises the last axis)")
        return L.BatchNormalization(momentum=cfg["momentum"], epsilon=cfg["epsilon"], center=cfg["center"],
                                    scale=cfg["scale"], name=name)
    if kind == "Dropout":
        if cfg.get("noise_shape") is not None:
            raise unsupported("noise_shape")
        return L.Dropout(cfg["rate"], seed=cfg.get("seed"), name=name)
    if kind == "LeakyReLU":
        return L.LeakyReLU(cfg.get("negative_slope", 0.3), name=name)
    if kind == "Flatten":
        return L.Flatten(name=name)
    if kind == "ReLU":
        if cfg.get("max_value") is not None or cfg.get("negative_slope", 0) != 0 or cfg.get("threshold", 0) != 0:
            raise unsupported("max_value/negative_slope/threshold")
        return L.ReLU(name=name)
    if kind == "Softmax":
        if cfg.get("axis", -1) not in (-1, [-1]):
            raise unsupported(f"axis={cfg['axis']}")
        return L.Softmax(name=name)
    if kind == "Activation":
        act = _activation_name(k)
        classes = {"relu": L.ReLU, "softmax": L.Softmax, "sigmoid": L.Sigmoid, "tanh": L.Tanh,
                   "leaky_relu": lambda name: L.LeakyReLU(0.2, name=name)}
        if act is None:
            raise unsupported("a linear Activation layer (drop it)")
        return classes[act](name=name)
    if kind == "Rescaling":
        return L.Rescaling(_numbers_from_keras(keras, k.scale), offset=_numbers_from_keras(keras, k.offset), name=name)
    if kind == "Normalization":
        if cfg.get("invert"):
            raise unsupported("invert=True")
        # k.mean / k.variance: the statistics (given or adapted) in the shape that broadcasts
        # against a batch, 1 on the averaged axes; tinycnn keeps only the kept axes' sizes
        mean, variance = (np.asarray(keras.ops.convert_to_numpy(v), np.float64) for v in (k.mean, k.variance))
        kept = sorted(a % mean.ndim for a in k.axis)
        shape = [mean.shape[d] for d in kept]
        axis = None if not k.axis else k.axis[0] if len(k.axis) == 1 else tuple(k.axis)
        return L.Normalization(axis=axis, mean=mean.reshape(shape), variance=variance.reshape(shape), name=name)
    raise ValueError(f"from_keras: Keras layer '{name}' of type {kind} has no tinycnn equivalent "
                     "(supported: Conv2D, Dense, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, "
                     "BatchNormalization, Dropout, Flatten, ReLU, LeakyReLU, Softmax, Activation, Rescaling, "
                     "Normalization)")


def _numbers_from_keras(keras, value):
    """A Keras Rescaling's scale or offset (a number, a list, an array or a tensor) as tinycnn takes it."""
    value = np.asarray(keras.ops.convert_to_numpy(value), np.float64)
    return float(value) if value.ndim == 0 else value.tolist()
