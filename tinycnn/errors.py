"""The errors tinycnn raises beyond ValueError and TypeError (a module of its own: everything may import it)."""


class NonFiniteError(FloatingPointError):
    """Training produced NaN or inf; the message names the epoch, step and first layer."""


class CallOrderError(RuntimeError, ValueError):
    """A method was called out of order (e.g. ``backward`` before ``forward``)."""


class ModelFileError(ValueError):
    """A model file that cannot be loaded: not a tinycnn model, damaged, or inconsistent."""
