"""What the fused Conv2D → ReLU → MaxPool2D step saves: training steps with ``model.fuse`` on and off.

    python benchmarks/maintainers/fusion_ab.py                 # seed and deeper model, batch 32 and 128
    python benchmarks/maintainers/fusion_ab.py --rounds 20     # more rounds on a noisy machine

One model per configuration, in one process; the two settings take turns, ``--steps`` training
steps each, for ``--rounds`` rounds, on consecutive batches of the real PneumoniaMNIST training
images. Reported: the median step time of each setting and the median of the per-round ratios
(fused / separate), so that slow drifts of a shared machine hit both alike. The two settings train
the same weights (they differ only by float rounding in the convolutions' dW and db), so the
alternation does not favour either. Needs the MedMNIST files ($TINYCNN_DATA or --data).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:          # this checkout's tinycnn, installed or not
    sys.path.insert(0, str(REPO))


def training_set(root=None):
    """The PneumoniaMNIST training images as float32 ``(N, 28, 28, 1)`` in [0, 1], and their labels."""
    from tinycnn.datasets import load
    data = load("pneumoniamnist", root=root)
    x = (data.train.images[..., None] / np.float32(255)).astype(np.float32)
    return x, data.train.labels[:, 0].astype(np.int64)


def add_round_arguments(parser, rounds, models=("seed", "deeper")):
    """The options every alternating training-step benchmark takes (fusion_ab, knob_ab, processes_ab;
    revision_ab spells them out: its workers must import their own checkout's tinycnn before this file)."""
    parser.add_argument("--models", nargs="+", default=list(models))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 128])
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--steps", type=int, default=10, help="training steps per setting and round")
    parser.add_argument("--data", default=None, help="folder with the MedMNIST files (default: $TINYCNN_DATA, then ~/.medmnist)")


def step_ms(model, x, y, batch, start, steps):
    """Mean time of ``steps`` training steps on consecutive batches from ``start``, in ms."""
    began = time.perf_counter()
    for i in range(steps):
        first = (start + i * batch) % (len(x) - batch)
        model.train_on_batch(x[first:first + batch], y[first:first + batch])
    return (time.perf_counter() - began) / steps * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_round_arguments(parser, rounds=10)
    args = parser.parse_args(argv)

    from tinycnn import zoo

    x, y = training_set(args.data)
    print("| model | batch | fused ms/step | separate ms/step | fused / separate |")
    print("|---|--:|--:|--:|--:|")
    for name in args.models:
        for batch in args.batch_sizes:
            model = zoo.MODELS[name](2, seed=0)
            model.compile("adam", "sparse_categorical_crossentropy")
            times = {True: [], False: []}
            for fuse in (True, False):                      # warm-up: buffers, caches, threads
                model.fuse = fuse
                step_ms(model, x, y, batch, 0, 3)
            start = 0
            for _ in range(args.rounds):
                for fuse in (True, False):
                    model.fuse = fuse
                    times[fuse].append(step_ms(model, x, y, batch, start, args.steps))
                    start += args.steps * batch
            ratio = np.median(np.array(times[True]) / np.array(times[False]))
            print(f"| {name} | {batch} | {np.median(times[True]):.2f} | {np.median(times[False]):.2f} "
                  f"| {ratio:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
