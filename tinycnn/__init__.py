"""tinycnn: a convolutional neural network framework in pure NumPy, written to be read.

The public API lives here and nothing else does.
"""

__version__ = "0.1.0"
