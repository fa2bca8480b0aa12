"""A/B test of one speed setting: training steps with each value, alternating in one process.

tinycnn's kernels are tuned by a few module-level constants (``tinycnn.kernels.parallel.MIN_FLOPS``,
``tinycnn.kernels.memory.CHUNK_BYTES`` and ``CHUNK_MIN_WORK``, ``tinycnn.kernels.fused.KEEP_COLS_BYTES``,
…). This script sets
the constant to each value in turn, round after round, and times the same training steps on real
PneumoniaMNIST images, so that the machine's slow drifts hit every value alike. It prints the
median step time per value and the median of the per-round ratios to the first value.

Example (one of the measurements ``docs/performance.md`` quotes)::

    python benchmarks/maintainers/knob_ab.py tinycnn.kernels.parallel.MIN_FLOPS 8388608 4194304 --rounds 31

The same value twice (``… MIN_FLOPS 4194304 4194304``) is an A/A test: how far apart two
identical settings come out, the noise floor of the ratios.

The model's weights change as it trains, which does not change the work per step.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:          # fusion_ab's step timer (and, through it, this checkout's tinycnn)
    sys.path.insert(0, str(HERE))

from fusion_ab import add_round_arguments, step_ms, training_set  # noqa: E402


def _setting(dotted: str):
    module_name, _, attribute = dotted.rpartition(".")
    if not module_name:
        raise SystemExit(f"knob_ab: expected MODULE.CONSTANT, got {dotted!r}")
    module = importlib.import_module(module_name)
    if not hasattr(module, attribute):
        raise SystemExit(f"knob_ab: {module_name} has no {attribute}")
    return module, attribute


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("setting", help="MODULE.CONSTANT, e.g. tinycnn.kernels.parallel.MIN_FLOPS")
    parser.add_argument("values", nargs="+", type=int, help="values to alternate (integers); the first is the baseline")
    add_round_arguments(parser, rounds=9)
    args = parser.parse_args(argv)

    from tinycnn import zoo

    module, attribute = _setting(args.setting)
    original = getattr(module, attribute)
    x, y = training_set(args.data)
    print(f"{args.setting}: " + ", ".join(map(str, args.values)) + f" ({args.rounds} alternating rounds of "
          f"{args.steps} steps; ms per step, median; in brackets the median ratio to {args.values[0]})")
    try:
        for name in args.models:
            for batch in args.batch_sizes:
                model = zoo.MODELS[name](2, seed=0)
                model.compile("adam", "sparse_categorical_crossentropy")
                times = [[] for _ in args.values]        # by position: the same value twice is an A/A test
                for value in args.values:                 # warm-up: buffers, caches, threads
                    setattr(module, attribute, value)
                    step_ms(model, x, y, batch, 0, 3)
                start = 0
                for _ in range(args.rounds):
                    for i, value in enumerate(args.values):
                        setattr(module, attribute, value)
                        times[i].append(step_ms(model, x, y, batch, start, args.steps))
                        start += args.steps * batch
                base = np.array(times[0])
                cells = [f"{value}: {np.median(t):.2f} ({np.median(np.array(t) / base):.3f})"
                         for value, t in zip(args.values, times)]
                print(f"{name}/{batch}: " + "  ".join(cells), flush=True)
    finally:
        setattr(module, attribute, original)
    return 0


if __name__ == "__main__":
    sys.exit(main())
