"""The cases every exercise is graded on: small fixed ones that each test one thing, then randomised
ones (a fixed seed, so every check sees the same) over odd sizes, strides 1–3 given as ints and as
pairs, both paddings, overlapping pools, one image and a batch, float32 and float64."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Case:
    """Arguments of one call: ``fn(*args, **kwargs)``; ``finite_differences``: also check the
    backward of this case against finite differences (float64, no ties or kinks near a step)."""

    label: str
    args: tuple
    kwargs: dict = field(default_factory=dict)
    finite_differences: bool = False


def _r(seed):
    return np.random.default_rng(seed)


def _away_from_zero(rng, shape):
    x = rng.standard_normal(shape)
    return np.sign(x) * (0.1 + np.abs(x)) + (x == 0) * 0.1


def _distinct(rng, shape):
    size = int(np.prod(shape))
    return ((rng.permutation(size) - size / 2) * 0.05).reshape(shape)


def relu_cases():
    rng = _r(1)
    cases = [Case("exact zeros (the derivative at 0 is 0)", (np.array([[-1.0, 0.0, 2.0], [0.5, 0.0, -3.0]]),)),
             Case("a batch of feature maps, float32", (rng.standard_normal((2, 4, 4, 3)).astype(np.float32),)),
             Case("away from 0, float64", (_away_from_zero(rng, (3, 5)),), finite_differences=True)]
    for i in range(3):
        shape = tuple(rng.integers(1, 5, rng.integers(2, 5)))
        cases.append(Case(f"random #{i + 1}: shape {shape}", (_away_from_zero(rng, shape),), finite_differences=True))
    return cases


def dense_cases():
    rng = _r(2)
    cases = [Case("2 samples, 3 → 4", (rng.standard_normal((2, 3)), rng.standard_normal((3, 4)),
                                        rng.standard_normal(4)), finite_differences=True),
             Case("one sample, no bias (b=None)", (rng.standard_normal((1, 5)), rng.standard_normal((5, 2)), None),
                  finite_differences=True),
             Case("float32, batch of 5, 7 → 3", tuple(rng.standard_normal(s).astype(np.float32)
                                                     for s in ((5, 7), (7, 3), (3,))))]
    for i in range(3):
        n, d_in, d_out = (int(v) for v in rng.integers(1, 7, 3))
        cases.append(Case(f"random #{i + 1}: ({n}, {d_in}) → {d_out}", (rng.standard_normal((n, d_in)),
                          rng.standard_normal((d_in, d_out)), rng.standard_normal(d_out)), finite_differences=True))
    return cases


def conv2d_cases():
    rng = _r(3)

    def arrays(n, h, w, c, kh, kw, f, dtype=np.float64, bias=True):
        b = rng.standard_normal(f).astype(dtype) if bias else None
        return (rng.standard_normal((n, h, w, c)).astype(dtype), rng.standard_normal((kh, kw, c, f)).astype(dtype), b)

    cases = [Case("one 4×4 image, 2×2 kernel, default strides and padding", arrays(1, 4, 4, 1, 2, 2, 1),
                  finite_differences=True),
             Case("stride 2 as an int, padding 'same' on a 5×5 image (the extra row/column at the bottom/right)",
                  arrays(2, 5, 5, 2, 3, 3, 3), {"strides": 2, "padding": "same"}, finite_differences=True),
             Case("strides (1, 2) as a pair, 'valid', a 2×3 kernel", arrays(2, 6, 7, 2, 2, 3, 2),
                  {"strides": (1, 2), "padding": "valid"}, finite_differences=True),
             Case("'same' with stride 1 and an even kernel (2×2)", arrays(1, 4, 5, 1, 2, 2, 2),
                  {"padding": "same"}, finite_differences=True),
             Case("no bias (b=None)", arrays(2, 5, 5, 1, 3, 3, 2, bias=False), finite_differences=True),
             Case("float32, stride 3, 'same', 3 channels", arrays(2, 7, 8, 3, 3, 3, 4, np.float32),
                  {"strides": 3, "padding": "same"})]
    for i in range(8):
        padding = ["valid", "same"][i % 2]
        kh, kw = (int(v) for v in rng.integers(1, 4, 2))
        h, w = int(rng.integers(kh, 8)), int(rng.integers(kw, 8))
        strides = int(rng.integers(1, 4)) if i < 4 else tuple(int(v) for v in rng.integers(1, 4, 2))
        n, c, f = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
        cases.append(Case(f"random #{i + 1}: {n}×{h}×{w}×{c}, kernel {kh}×{kw}×{f}, strides {strides}, {padding!r}",
                          arrays(n, h, w, c, kh, kw, f), {"strides": strides, "padding": padding},
                          finite_differences=True))
    return cases


def maxpool2d_cases():
    rng = _r(4)
    cases = [Case("default arguments: 2×2 windows on a 4×4 image", (_distinct(rng, (1, 4, 4, 1)),),
                  finite_differences=True),
             Case("ties: every window all zeros", (np.zeros((1, 4, 4, 2)),)),
             Case("ties after a ReLU: zeros and ones", (rng.integers(0, 2, (2, 4, 6, 2)).astype(np.float64),)),
             Case("overlapping windows: pool 3, stride 2 (ints)", (_distinct(rng, (1, 7, 7, 2)), 3, 2),
                  finite_differences=True),
             Case("overlapping windows: pool (2, 2), strides (1, 1) as pairs", (_distinct(rng, (2, 4, 5, 1)), (2, 2),
                  (1, 1)), finite_differences=True),
             Case("'same' padding on negative values (padding must never win)",
                  (-1 - np.abs(_distinct(rng, (1, 5, 5, 2))),), {"padding": "same"}, finite_differences=True),
             Case("an odd size with 'valid': the last row and column are in no window", (_distinct(rng, (1, 5, 5, 1)),),
                  finite_differences=True),
             Case("float32, pool (3, 2), strides None", (rng.standard_normal((2, 6, 6, 3)).astype(np.float32), (3, 2)))]
    for i in range(6):
        ph, pw = (int(v) for v in rng.integers(1, 4, 2))
        strides = None if i % 3 == 0 else (int(rng.integers(1, 4)) if i % 3 == 1 else tuple(int(v) for v in rng.integers(1, 4, 2)))
        padding = ["valid", "same"][i % 2]
        h, w = int(rng.integers(ph, 9)), int(rng.integers(pw, 9))
        cases.append(Case(f"random #{i + 1}: {h}×{w}, pool ({ph}, {pw}), strides {strides}, {padding!r}",
                          (_distinct(rng, (2, h, w, 2)), (ph, pw), strides, padding), finite_differences=True))
    return cases


def batchnorm_cases():
    rng = _r(5)
    return [Case("(6, 3) features, a random γ (γ = 1 hides bugs)", (rng.standard_normal((6, 3)) * 2 + 1,
                 rng.standard_normal(3) * 2, rng.standard_normal(3)), finite_differences=True),
            Case("(2, 3, 3, 2) feature maps", (rng.standard_normal((2, 3, 3, 2)) * 3, rng.standard_normal(2) * 2,
                 rng.standard_normal(2)), finite_differences=True),
            Case("float32, epsilon=0.1", tuple(a.astype(np.float32) for a in (rng.standard_normal((4, 5)),
                 rng.standard_normal(5), rng.standard_normal(5))), {"epsilon": 0.1})]


def dropout_cases():
    return [Case("rate 0.25 on 200 × 50 values", (np.ones((200, 50)), 0.25)),
            Case("rate 0.5, float32 feature maps", (np.full((20, 6, 6, 3), 2.0, np.float32), 0.5)),
            Case("rate 0: the identity", (np.arange(1.0, 13.0).reshape(3, 4), 0.0))]


def softmax_cross_entropy_cases():
    rng = _r(6)
    cases = [Case("2 samples, 3 classes", (np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]), np.array([1, 2])),
                  finite_differences=True),
             Case("large logits, 1000 apart (softmax needs the max shift)",
                  (np.array([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 2.0]]), np.array([0, 2]))),
             Case("float32, a batch of 5 and 4 classes", (rng.standard_normal((5, 4)).astype(np.float32) * 3,
                                                          rng.integers(0, 4, 5)))]
    for i in range(3):
        n, c = int(rng.integers(1, 7)), int(rng.integers(2, 6))
        cases.append(Case(f"random #{i + 1}: {n} samples, {c} classes", (rng.standard_normal((n, c)) * 2,
                          rng.integers(0, c, n)), finite_differences=True))
    return cases


def sgd_update_cases():
    rng = _r(7)

    def arrays(dtype=np.float64):
        return tuple(rng.standard_normal(6).astype(dtype) for _ in range(3))

    return [Case("default arguments: no momentum", (*arrays(), 0.1)),
            Case("momentum 0.9", (*arrays(), 0.1, 0.9)),
            Case("momentum 0.9, Nesterov", (*arrays(), 0.05), {"momentum": 0.9, "nesterov": True}),
            Case("float32, momentum 0.5", (*arrays(np.float32), 0.01, 0.5))]


def adam_update_cases():
    rng = _r(8)

    def arrays(dtype=np.float64, fresh=False):
        w, dw = rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal((3, 4)).astype(dtype)
        m = np.zeros_like(w) if fresh else rng.standard_normal((3, 4)).astype(dtype) * 0.1
        v = np.zeros_like(w) if fresh else np.abs(rng.standard_normal((3, 4))).astype(dtype) * 0.01
        return w, dw, m, v

    first = arrays(fresh=True)
    w, dw, m, v = arrays(fresh=True)
    return [Case("step 1 from zero moments, default arguments", (*first, 1)),
            Case("step 1, learning rate 0.01, tiny gradients (sqrt(v) near ε: where ε goes matters)",
                 (w, dw * 1e-5, m, v, 1, 0.01)),
            Case("step 7 with moments, other betas", (*arrays(), 7), {"learning_rate": 0.01, "beta_1": 0.8,
                                                                     "beta_2": 0.99}),
            Case("float32, step 3, epsilon 1e-3", (*arrays(np.float32), 3), {"epsilon": 1e-3})]


CASES = {"relu": relu_cases, "dense": dense_cases, "conv2d": conv2d_cases, "maxpool2d": maxpool2d_cases,
         "batchnorm": batchnorm_cases, "dropout": dropout_cases}
