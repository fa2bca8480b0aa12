"""Exercises: write backprop yourself, have it graded, then train a CNN with it.

.. code-block:: bash

    tinycnn exercises start my-backprop            # my-backprop/exercises.py: 15 stubs, and a README
    tinycnn exercises check --dir my-backprop      # ✔ / ✘ / not started, with the first wrong element
    tinycnn exercises train --dir my-backprop      # a CNN on PneumoniaMNIST, on your functions
    tinycnn exercises solution conv2d_backward     # tinycnn's version, when stuck

From Python: ``report = tinycnn.exercises.check("conv2d_backward", path="my-backprop")``;
``print(report)``, ``report.ok``, ``report["conv2d_backward"].failure``.

The functions are those of :mod:`tinycnn.functional`, with the same names and signatures; the
grader (:mod:`.grader`) compares each with tinycnn's on fixed and randomised cases, checks every
backward against finite differences of the learner's own forward, and names known mistakes
(:mod:`.mistakes`). Training plugs the learner's functions in through the same boundary that
``tinycnn.teaching()`` uses (:mod:`tinycnn.ops`).
"""

from __future__ import annotations

from .grader import CASE_SECONDS, CheckReport, Failure, FunctionResult, grade
from .workspace import EXERCISES, solution, start


def check(*names, path=".", seconds: float = CASE_SECONDS) -> CheckReport:
    """Grade the functions ``names`` (all of them by default) of ``path`` (a folder holding
    ``exercises.py``, or the file), each on its own; returns a :class:`CheckReport`."""
    from pathlib import Path
    unknown = [n for n in names if n not in EXERCISES]
    if unknown:
        raise ValueError(f"exercises: no exercise {', '.join(map(repr, unknown))}; the exercises are {EXERCISES}")
    file = Path(path) / "exercises.py" if Path(path).is_dir() else Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"exercises: no file {file}; start one with 'tinycnn exercises start DIR'")
    report = CheckReport(str(file))
    for name in names or EXERCISES:
        report.results.append(grade(file, name, seconds))
    return report


def train(path=".", **options):
    """Train the seed model on PneumoniaMNIST with the learner's passing functions (see
    :func:`tinycnn.exercises.training.train`)."""
    from .training import train as _train
    return _train(path, **options)


__all__ = ["start", "check", "train", "solution", "EXERCISES", "CheckReport", "FunctionResult", "Failure"]
