"""What the finiteness check of the update costs in ``fit``: A/B against ``fit`` without it.

    python benchmarks/maintainers/update_check_ab.py              # batch 32 and 128, about a minute
    python benchmarks/maintainers/update_check_ab.py --batch-size 32 --runs 20

``fit`` keeps the weights of the last finite step even when an optimizer update overflows
(:class:`tinycnn.training.Rewind`: one snapshot and one look at the weights and optimizer slots per
epoch; a replay only when something did overflow). This times one epoch of the seed model on the
first 2048 PneumoniaMNIST training images ($TINYCNN_DATA or ../shared/medmnist) with ``Rewind`` as
shipped and with it replaced by a stub that checks nothing, alternating the two (ABBA) so that
the machine's load affects both alike, and prints the best and median epoch time and their ratio.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from tinycnn import model as model_mod
from tinycnn import training
from tinycnn.zoo import seed_model


class NoCheck:
    """``Rewind`` that snapshots nothing and never finds anything."""

    def __init__(self, model):
        pass

    def first_nonfinite(self):
        return None


def main(argv=None) -> dict:
    """Prints the table; returns ``{batch_size: {"with the check": [seconds], "without": [...]}}``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, nargs="*", default=[32, 128])
    parser.add_argument("--runs", type=int, default=10, help="epochs timed per variant (default 10)")
    parser.add_argument("--data", type=Path, help="folder with pneumoniamnist.npz (default $TINYCNN_DATA)")
    args = parser.parse_args(argv)
    default = Path(__file__).resolve().parents[3] / "shared" / "medmnist"
    folder = args.data or Path(os.environ.get("TINYCNN_DATA", default))
    results = {}
    with np.load(folder / "pneumoniamnist.npz", allow_pickle=False) as data:
        x = (data["train_images"][:2048, ..., None] / 255).astype(np.float32)
        y = data["train_labels"][:2048].ravel()
    for batch_size in args.batch_size:
        model = seed_model(2, input_shape=(28, 28, 1), seed=0)
        model.compile("adam", "sparse_categorical_crossentropy")
        times = {"with the check": [], "without": []}
        for run in range(args.runs):
            order = ("with the check", "without") if run % 2 == 0 else ("without", "with the check")
            for name in order:
                model_mod.Rewind = training.Rewind if name == "with the check" else NoCheck
                try:
                    start = time.perf_counter()
                    model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0)
                    times[name].append(time.perf_counter() - start)
                finally:
                    model_mod.Rewind = training.Rewind
        results[batch_size] = times
        for name, t in times.items():
            print(f"batch {batch_size:4d}, {name:15s}: best {min(t):.4f} s, median {np.median(t):.4f} s per epoch")
        a, b = times["with the check"], times["without"]
        print(f"batch {batch_size:4d}, ratio: best {min(a) / min(b):.3f}, median {np.median(a) / np.median(b):.3f}")
    return results


if __name__ == "__main__":
    main()
