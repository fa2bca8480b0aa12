"""The speed: the ops of :mod:`tinycnn.functional`, with the same signatures, made fast.

Read :mod:`tinycnn.functional` first — this package computes the same numbers (the tests hold
every kernel equal to its functional twin) with threads on both cores, cache-sized chunks, buffers
reused across calls, the bias inside the matrix product, and a fused Conv2D → ReLU → MaxPool2D
step. Layers never import this package: they call :mod:`tinycnn.ops`, which picks these kernels
outside teaching mode and :mod:`tinycnn.functional` inside it. An op without a kernel here runs
its functional version in both modes.

Modules: :mod:`.parallel` (threads, BLAS), :mod:`.memory` (chunks, im2col into buffers, padding),
:mod:`.conv` (Conv2D, Dense), :mod:`.pool` (MaxPool2D), :mod:`.elementwise` (ReLU, optimizer
updates, finiteness), :mod:`.fused` (Conv2D → ReLU → MaxPool2D), :mod:`.steps` (which layers run
fused). How each is fast, measured: ``docs/performance.md``.

Two extras beyond the functional signatures: ``conv2d_backward`` and ``dense_backward`` take
``input_grad=False`` (skip dL/dx for a model's first layer), and the optimizer updates work in
place (they update and return the arrays they are given).
"""

from .conv import conv2d_backward, conv2d_forward, dense_backward, dense_forward
from .elementwise import adam_update, adamw_update, all_finite, relu_backward, relu_forward, sgd_update
from .pool import maxpool2d_backward, maxpool2d_forward
from .steps import ConvReLUPool, plan

__all__ = ["conv2d_forward", "conv2d_backward", "dense_forward", "dense_backward", "maxpool2d_forward",
           "maxpool2d_backward", "relu_forward", "relu_backward", "sgd_update", "adam_update", "adamw_update",
           "all_finite", "plan", "ConvReLUPool"]
