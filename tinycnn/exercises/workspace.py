"""The learner's workspace: ``exercises.py`` with one stub per function, a README, and the solutions."""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path

from .. import functional
from ..io import atomic_write_text

#: The functions a learner writes, in the order the README suggests: their names and signatures
#: are tinycnn.functional's (the loss without sample weights).
EXERCISES = [
    "relu_forward", "relu_backward", "dense_forward", "dense_backward",
    "softmax_cross_entropy", "sgd_update", "adam_update",
    "conv2d_forward", "conv2d_backward", "maxpool2d_forward", "maxpool2d_backward",
    "batchnorm_forward", "batchnorm_backward", "dropout_forward", "dropout_backward",
]

SIGNATURES = {
    "relu_forward": "(x)", "relu_backward": "(dy, cache)",
    "dense_forward": "(x, w, b)", "dense_backward": "(dy, cache)",
    "softmax_cross_entropy": "(logits, y)",
    "sgd_update": "(w, dw, velocity, learning_rate, momentum=0.0, nesterov=False)",
    "adam_update": "(w, dw, m, v, t, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7)",
    "conv2d_forward": '(x, w, b, strides=(1, 1), padding="valid")', "conv2d_backward": "(dy, cache)",
    "maxpool2d_forward": '(x, pool_size=(2, 2), strides=None, padding="valid")',
    "maxpool2d_backward": "(dy, cache)",
    "batchnorm_forward": "(x, gamma, beta, epsilon=1e-3)", "batchnorm_backward": "(dy, cache)",
    "dropout_forward": "(x, rate, rng)", "dropout_backward": "(dy, cache)",
}

TASKS = {
    "relu_forward": """
        y = max(x, 0), elementwise. x: any shape. Return (y, cache); the cache is yours: keep
        whatever relu_backward needs.""",
    "relu_backward": """
        dx = dy · [x > 0]: the gradient passes where the input was positive. At exactly 0 the
        derivative is 0 (as TensorFlow). dy: the shape of y. Return dx.""",
    "dense_forward": """
        y = x · W + b. x: (N, in), W: (in, out), b: (out,) or None (no bias). Return (y, cache),
        y of shape (N, out).""",
    "dense_backward": """
        With dy = dL/dy of shape (N, out): dW = xᵀ · dy (in, out), db = Σ over the batch of dy
        (out,), dx = dy · Wᵀ (N, in). Return (dx, dW, db); db is None when forward had no bias.""",
    "softmax_cross_entropy": """
        logits: (N, C); y: (N,) integer class ids. p = softmax(logits) per row (subtract each row's
        max before exp: exp(1000) overflows). loss = mean over the batch of −log p[n, y_n], a
        Python float. dlogits = (p − onehot(y)) / N, shape (N, C). Return (loss, dlogits).""",
    "sgd_update": """
        Keras's SGD: velocity = momentum · velocity − learning_rate · dw (also when momentum is 0);
        then w + velocity, or with nesterov=True  w + momentum · velocity − learning_rate · dw.
        Return new arrays (w, velocity); do not change the ones you were given.""",
    "adam_update": """
        Keras's Adam at step t = 1, 2, ...:
            alpha = learning_rate · sqrt(1 − beta_2^t) / (1 − beta_1^t)
            m = m + (dw − m)(1 − beta_1);   v = v + (dw² − v)(1 − beta_2)
            w = w − alpha · m / (sqrt(v) + epsilon)        (ε outside the root, on this v)
        Return new arrays (w, m, v), in the dtype of w.""",
    "conv2d_forward": """
        x: (N, H, W, C_in); w: (kh, kw, C_in, F); b: (F,) or None. strides: an int or a pair.
        padding "valid" (none) or "same": output ceil(size / stride), padded like TensorFlow —
        total padding max((out − 1)·stride + k − size, 0), the odd extra row/column at the
        bottom/right. Then im2col + one matrix product: one row per output pixel,
        y = cols · W.reshape(kh·kw·C_in, F) + b, shape (N, Ho, Wo, F). Return (y, cache).
        (tinycnn.im2col has pad, im2col and col2im if you want them.)""",
    "conv2d_backward": """
        dy: (N, Ho, Wo, F). dW = colsᵀ · dy (reshaped like w), db = Σ of dy over every axis but F,
        dcols = dy · Wᵀ, then col2im: each input pixel sums the gradients of every window it was
        in; cut the padding off. Return (dx, dW, db) with the shapes of x, w, b (db None without
        a bias).""",
    "maxpool2d_forward": """
        The max of each pool_size window (an int or a pair); strides=None means the pool size (as
        Keras). padding "same" pads like TensorFlow, with −inf (padding must never win). y: (N,
        Ho, Wo, C). Return (y, cache).""",
    "maxpool2d_backward": """
        Each window's gradient goes to the one position that held its max — on ties the first in
        row-major window order (as TensorFlow) — the other positions get 0. Overlapping windows
        add up. Return dx with the shape of x.""",
    "batchnorm_forward": """
        Training mode over the last axis (channels): the batch mean μ and biased variance σ² over
        every other axis; x̂ = (x − μ) / sqrt(σ² + epsilon); y = gamma · x̂ + beta. gamma, beta:
        (C,). Return (y, cache).""",
    "batchnorm_backward": """
        x reaches the loss three ways: directly, through μ and through σ². With m values per
        channel and dx̂ = dy · gamma:
            dgamma = Σ dy · x̂;  dbeta = Σ dy
            dx = (1/m) · (1/sqrt(σ² + ε)) · (m · dx̂ − Σ dx̂ − x̂ · Σ (dx̂ · x̂))
        Return (dx, dgamma, dbeta).""",
    "dropout_forward": """
        Inverted dropout: keep each value with probability 1 − rate (draw the mask from the
        numpy.random.Generator rng) and scale the kept ones by 1 / (1 − rate); dropped ones are 0.
        0 <= rate < 1. Return (y, cache).""",
    "dropout_backward": """
        The gradient flows only through the kept values, scaled the same way:
        dx = dy · mask / (1 − rate). Return dx.""",
}

HEADER = '''"""My backprop: the functions of tinycnn.functional, written by me.

Fill in each function, then check it:

    tinycnn exercises check                    # every function
    tinycnn exercises check conv2d_backward    # one

Each check runs the function on small fixed cases and on randomised ones, compares it with
tinycnn's own, and checks every backward against finite differences of your own forward. When
everything passes, `tinycnn exercises train` trains a CNN on chest X-rays with your functions.
Stuck? `tinycnn exercises solution NAME` prints tinycnn's version.
"""

import numpy as np
'''

README = """# Your turn: write backprop, have it checked

`exercises.py` holds {count} functions to write — the ops tinycnn itself is built from
(`tinycnn/functional.py`), with the same names and signatures. Each says what to compute, the
shapes, and what to return; the `cache` a forward returns is yours: put in it whatever your
backward needs.

1. Open `exercises.py` and write a function (start with `relu_forward`, `relu_backward`, then the
   dense layer, the loss, the optimizers, then convolution and pooling).
2. Check it: `tinycnn exercises check relu_forward --dir {folder}` (or all of them: leave out the
   name). A failure names the case, the first wrong element with the expected and the received
   value, and a hint when the mistake is a known one.
3. When the functions pass, train a CNN on PneumoniaMNIST with them:
   `tinycnn exercises train --dir {folder}` — the test ACC/AUC of your network beside tinycnn's.
4. Stuck: `tinycnn exercises solution NAME` prints tinycnn's version.

From Python: `tinycnn.exercises.check("conv2d_backward", path="{folder}/exercises.py")`.
"""


def stub(name: str) -> str:
    """The stub of one exercise: signature, the task as its docstring, ``raise NotImplementedError``."""
    task = textwrap.indent(textwrap.dedent(TASKS[name]).strip(), "    ")
    return (f"def {name}{SIGNATURES[name]}:\n    \"\"\"\n{task}\n    \"\"\"\n"
            f"    raise NotImplementedError(\"{name}: not written yet\")\n")


def start(folder, force: bool = False) -> Path:
    """Write ``folder/exercises.py`` (the stubs) and ``folder/README.md``; returns the file's path.

    Never overwrites a learner's work: an existing ``exercises.py`` is an error unless ``force``.
    The workspace may not be inside the installed tinycnn package.
    """
    folder = Path(folder).resolve()
    package = Path(__file__).resolve().parents[1]
    if folder == package or package in folder.parents:
        raise ValueError(f"exercises: {folder} is inside the tinycnn package ({package}); "
                         "choose a folder of your own, e.g. ~/tinycnn-exercises")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"exercises: {folder} exists and is not a folder")
    target = folder / "exercises.py"
    if target.exists() and not force:
        raise FileExistsError(f"exercises: {target} exists — your work is not overwritten; check it with "
                              f"'tinycnn exercises check --dir {folder}', or start over with --force")
    text = HEADER + "".join("\n\n" + stub(name) for name in EXERCISES)
    atomic_write_text(target, text)
    atomic_write_text(folder / "README.md", README.format(count=len(EXERCISES), folder=folder))
    return target


HELPERS = {"tinycnn.im2col": ["col2im", "im2col", "output_size", "pad", "padding_amounts", "pair", "unpad", "windows"],
           "tinycnn.functional": ["softmax", "sigmoid"]}


def solution(name: str) -> str:
    """tinycnn's own version of exercise ``name``: the source of tinycnn.functional's function,
    after the imports of the helpers it uses."""
    if name not in EXERCISES:
        raise ValueError(f"exercises: no exercise {name!r}; the exercises are {EXERCISES}")
    source = inspect.getsource(getattr(functional, name))
    body = source.split('"""')[-1] if source.count('"""') >= 2 else source
    imports = [f"from {module} import {', '.join(used)}" for module, names in HELPERS.items()
               if (used := [n for n in names if re.search(rf"\b{n}\(", body)])]
    return "\n".join(imports + ([""] if imports else []) + [source])


def solutions_file() -> str:
    """An ``exercises.py`` holding tinycnn's solution of every exercise (what the tutorial checks)."""
    parts = [HEADER] + [f"\n\n{solution(name)}" for name in EXERCISES]
    return "".join(parts)
