"""The ``tinycnn`` command line.

    tinycnn gradcheck     check every layer's and the seed model's gradients in float64
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from . import __version__


def cmd_gradcheck(args) -> int:
    from . import layers
    from .gradcheck import check_layer, check_model
    from .zoo import MODELS

    rng = np.random.default_rng(args.seed)
    size = args.size
    # Inputs are spaced out so that no ReLU/max-pool kink falls within the finite-difference step.
    spaced = (rng.permutation(2 * size * size * 3) * 0.01 - size * size * 0.03).reshape(2, size, size, 3)
    cases = [
        ("Conv2D 3×3 valid", layers.Conv2D(4, 3), spaced),
        ("Conv2D 3×2 same, stride 2", layers.Conv2D(4, (3, 2), strides=2, padding="same"), spaced),
        ("MaxPool2D 2×2", layers.MaxPool2D(2), spaced),
        ("MaxPool2D 3×3 same, stride 2", layers.MaxPool2D(3, strides=2, padding="same"), spaced),
        ("ReLU", layers.ReLU(), spaced + 0.005),
        ("Flatten", layers.Flatten(), spaced),
        ("Dense", layers.Dense(5), spaced.reshape(2, -1)),
        ("Softmax", layers.Softmax(), rng.standard_normal((2, 5))),
        ("Sigmoid", layers.Sigmoid(), rng.standard_normal((2, 5))),
    ]
    worst = 0.0
    print(f"{'layer':32s} {"array":16s} {'relative error':>15s}")
    for title, layer, x in cases:
        for key, err in check_layer(layer, x, h=1e-4, seed=args.seed).items():
            worst = max(worst, err)
            print(f"{title:32s} {key:16s} {err:15.2e}")
    model = MODELS[args.model](3, input_shape=(size, size, 1), seed=args.seed, dtype="float64")
    model.compile("adam", "sparse_categorical_crossentropy")
    x = rng.random((2, size, size, 1))
    for name, err in check_model(model, x, np.array([0, 2]), h=1e-6, max_entries=args.max_entries).items():
        worst = max(worst, err)
        print(f"{args.model + ' model':32s} {name:16s} {err:15.2e}")
    ok = worst < args.tolerance
    print(f"\nworst relative error {worst:.2e}: {'PASS' if ok else 'FAIL'} (tolerance {args.tolerance:g})")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinycnn", description="A CNN in pure NumPy, written to be read.")
    parser.add_argument("--version", action="version", version=f"tinycnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("gradcheck", help="check backprop against finite differences (float64)")
    p.add_argument("--model", default="seed", choices=["seed", "deeper"])
    p.add_argument("--size", type=int, default=8, help="input height and width (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-entries", type=int, default=200,
                   help="check at most this many entries of each model weight array")
    p.add_argument("--tolerance", type=float, default=1e-6)
    p.set_defaults(func=cmd_gradcheck)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
