"""Grading a learner's functions: each on its own, in a child process, case by case.

For every function: shapes and dtypes first, then values against :mod:`tinycnn.functional` (fixed
cases, then randomised ones: :mod:`.cases`), then — for a backward — finite differences of the
learner's *own* forward, through the learner's own cache. A failure names the case, the first wrong
element with the expected and the received value, and a hint when the output is that of a known
mistake (:mod:`.mistakes`). The learner's code runs in a child process with a time limit per case,
so an exception, a wrong return, NaN, a changed input, an endless loop or a crash is a clear ✘ —
never the grader's end.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import functional as F
from ..gradcheck import numerical_gradient, rel_error
from . import cases as case_lists
from .mistakes import MAX_SHIFT_HINT, MISTAKES, TIE_HINT, maxpool_every_tie
from .workspace import EXERCISES

#: seconds one case may take before the grader stops the function (an endless loop, say)
CASE_SECONDS = 20.0
FINITE_DIFFERENCE_TOL = 1e-6

#: what each function returns, by name
RETURNS = {"forward": ("y", "cache"), "backward": None, "softmax_cross_entropy": ("loss", "dlogits"),
           "sgd_update": ("w", "velocity"), "adam_update": ("w", "m", "v")}
BACKWARD_RETURNS = {"relu": ("dx",), "dense": ("dx", "dW", "db"), "conv2d": ("dx", "dW", "db"),
                    "maxpool2d": ("dx",), "batchnorm": ("dx", "dgamma", "dbeta"), "dropout": ("dx",)}
#: which arguments of a forward the backward's outputs are the gradients of
GRADIENT_OF = {"relu": (0,), "dense": (0, 1, 2), "conv2d": (0, 1, 2), "maxpool2d": (0,), "batchnorm": (0, 1, 2)}


@dataclass
class Failure:
    case: str
    message: str
    hint: str | None = None
    index: tuple | None = None
    expected: float | None = None
    received: float | None = None


@dataclass
class FunctionResult:
    """How one function did: ``status`` is ``"passed"``, ``"failed"`` or ``"not started"``."""

    name: str
    status: str
    cases_passed: int = 0
    cases: int = 0
    failure: Failure | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __str__(self) -> str:
        mark = {"passed": "✔", "failed": "✘", "not started": "·"}[self.status]
        if self.status == "passed":
            return f"{mark} {self.name:24s} {self.cases_passed}/{self.cases} cases"
        if self.status == "not started":
            return f"{mark} {self.name:24s} not started (it raises NotImplementedError)"
        f = self.failure
        lines = [f"{mark} {self.name:24s} case {f.case!r}:", f"      {f.message}"]
        if f.index is not None:
            lines.append(f"      first wrong element {list(f.index)}: expected {f.expected!r}, received {f.received!r}")
        if f.hint:
            lines.append(f"      hint: {f.hint}")
        return "\n".join(lines)


@dataclass
class CheckReport:
    """The results of ``check``: one :class:`FunctionResult` per function, in order."""

    path: str
    results: list[FunctionResult] = field(default_factory=list)

    def __getitem__(self, name) -> FunctionResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(name)

    @property
    def ok(self) -> bool:
        """True when every function checked passed (what the exit status 0 means)."""
        return bool(self.results) and all(r.passed for r in self.results)

    def count(self, status) -> int:
        return sum(r.status == status for r in self.results)

    def __str__(self) -> str:
        lines = [f"Checking {self.path}", ""] + [str(r) for r in self.results]
        lines += ["", f"{self.count('passed')} passed, {self.count('failed')} failed, "
                      f"{self.count('not started')} not started"]
        return "\n".join(lines)


class _Fail(Exception):
    def __init__(self, failure: Failure):
        super().__init__(failure.message)
        self.failure = failure


class _NotStarted(Exception):
    pass


def load_module(path):
    """Import the learner's ``exercises.py`` by its path (never from the installed package)."""
    path = Path(path)
    if path.is_dir():
        path = path / "exercises.py"
    if not path.is_file():
        raise FileNotFoundError(f"exercises: no file {path}; start one with 'tinycnn exercises start DIR'")
    spec = importlib.util.spec_from_file_location(f"tinycnn_learner_exercises_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -------------------------------------------------------------------------------------------------
# Running one function in a child process
# -------------------------------------------------------------------------------------------------
def grade(path, name: str, seconds: float = CASE_SECONDS) -> FunctionResult:
    """Grade one function of the file at ``path`` in a child process (``seconds`` per case)."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(str(path), name, send), daemon=True)
    child.start()
    send.close()
    case, phase = "(loading exercises.py)", "loading exercises.py"
    try:
        while True:
            if not receive.poll(seconds):
                return FunctionResult(name, "failed", failure=Failure(
                    case, f"still running after {seconds:g} s in {phase} — an endless loop? (stopped)"))
            try:
                kind, payload = receive.recv()
            except EOFError:
                child.join(5)
                return FunctionResult(name, "failed", failure=Failure(
                    case, f"the process running it ended abruptly (exit code {child.exitcode})"))
            if kind == "case":
                case, phase = payload, f"your {name}"
            elif kind == "phase":                   # which function of the learner is running now
                phase = payload
            else:
                return payload
    finally:
        if child.is_alive():
            child.kill()
        child.join(5)
        receive.close()


def _child(path, name, send):
    global _phase
    _phase = lambda text: send.send(("phase", text))  # noqa: E731
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                module = load_module(path)
            except Exception as err:                                          # noqa: BLE001
                result = FunctionResult(name, "failed", failure=Failure(
                    "(loading exercises.py)", f"exercises.py does not load: {_describe(err)}"))
            else:
                result = grade_function(module, name, lambda case: send.send(("case", case)))
        send.send(("result", result))
    finally:
        send.close()


def _describe(err: BaseException) -> str:
    where = traceback.extract_tb(err.__traceback__)
    line = f" (line {where[-1].lineno} of {Path(where[-1].filename).name})" if where else ""
    return f"{type(err).__name__}: {err}{line}"


# -------------------------------------------------------------------------------------------------
# Grading, in the child
# -------------------------------------------------------------------------------------------------
def grade_function(module, name: str, started=lambda case: None) -> FunctionResult:
    """Run every case of ``name``; the first failure ends it."""
    if name not in EXERCISES:
        raise ValueError(f"exercises: no exercise {name!r}; the exercises are {EXERCISES}")
    function = getattr(module, name, None)
    if not callable(function):
        return FunctionResult(name, "failed", failure=Failure("(loading exercises.py)",
                                                             f"exercises.py has no function {name}"))
    family, _, part = name.rpartition("_")
    runner = {"forward": _forward_case, "backward": _backward_case}.get(part, _standalone_case)
    if name.startswith("dropout"):
        runner = _dropout_case
    cases = (case_lists.CASES[family]() if part in ("forward", "backward")
             else getattr(case_lists, f"{name}_cases")())
    passed = 0
    for case in cases:
        started(case.label)
        try:
            runner(module, name, function, case)
        except _NotStarted:
            if passed == 0:
                return FunctionResult(name, "not started", cases=len(cases))
            return FunctionResult(name, "failed", passed, len(cases),
                                  Failure(case.label, "raised NotImplementedError"))
        except _Fail as failed:
            return FunctionResult(name, "failed", passed, len(cases), failed.failure)
        passed += 1
    return FunctionResult(name, "passed", passed, len(cases))


_phase = lambda text: None  # noqa: E731  (in the grading child: tells the parent what is running)


def _invoke(function, name, args, kwargs, label):
    """``function(*args, **kwargs)``; any exception is a failure; an input it changed is one too."""
    _phase(f"your {name}")
    before = [np.array(a, copy=True) if isinstance(a, np.ndarray) else None for a in args]
    try:
        out = function(*args, **kwargs)
    except NotImplementedError:
        raise _NotStarted() from None
    except Exception as err:                                                  # noqa: BLE001
        raise _Fail(Failure(label, f"{name} raised {_describe(err)}")) from None
    for i, (old, new) in enumerate(zip(before, args)):
        if old is not None and not np.array_equal(old, new, equal_nan=True):
            raise _Fail(Failure(label, f"{name} changed its argument {i + 1} in place; return new arrays instead"))
    return out


def _unpack(out, names, function_name, label):
    """Check the arity of what came back: a tuple of ``names`` (or one array when a single name)."""
    if len(names) == 1:
        if isinstance(out, tuple):
            raise _Fail(Failure(label, f"{function_name} returned a tuple of {len(out)}; expected one array ({names[0]})"))
        return (out,)
    if not isinstance(out, (tuple, list)) or len(out) != len(names):
        got = f"a tuple of {len(out)}" if isinstance(out, (tuple, list)) else type(out).__name__
        raise _Fail(Failure(label, f"{function_name} returned {got}; expected ({', '.join(names)})"))
    return tuple(out)


def _compare(name, what, received, expected, label, hint_for=None):
    """Shape, dtype, finiteness, then values; ``hint_for(received)`` names a known mistake."""
    if expected is None:
        if received is not None:
            raise _Fail(Failure(label, f"{what} should be None here (there is no bias), got {type(received).__name__}"))
        return
    if np.ndim(expected) == 0:
        try:
            value = float(received)
        except (TypeError, ValueError):
            raise _Fail(Failure(label, f"{what} should be a number, got {type(received).__name__}")) from None
        if not np.isfinite(value) and np.isfinite(expected):
            raise _Fail(Failure(label, f"{what} is {value}", hint_for(received) if hint_for else None))
        if not np.isclose(value, float(expected), rtol=1e-6, atol=1e-9):
            raise _Fail(Failure(label, f"{what} is wrong", hint_for(received) if hint_for else None, (),
                                float(expected), value))
        return
    if not isinstance(received, np.ndarray):
        raise _Fail(Failure(label, f"{what} should be a NumPy array, got {type(received).__name__}"))
    if received.shape != expected.shape:
        hint = hint_for(received) if hint_for else None
        raise _Fail(Failure(label, f"{what} has shape {received.shape}, expected {expected.shape}", hint))
    if received.dtype != expected.dtype:
        raise _Fail(Failure(label, f"{what} has dtype {received.dtype}, expected {expected.dtype} "
                                   "(float32 in, float32 out: no silent up-casting)"))
    if np.issubdtype(received.dtype, np.floating) and not np.all(np.isfinite(received)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(received))[0])
        raise _Fail(Failure(label, f"{what} holds NaN or inf", hint_for(received) if hint_for else None, bad,
                            float(expected[bad]), float(received[bad])))
    rtol, scale = (1e-4, 1e-5) if expected.dtype == np.float32 else (1e-6, 1e-9)
    atol = scale * max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0)
    wrong = ~np.isclose(received, expected, rtol=rtol, atol=atol)
    if wrong.any():
        bad = tuple(int(i) for i in np.argwhere(wrong)[0])
        raise _Fail(Failure(label, f"{what} is wrong in {int(wrong.sum())} of {wrong.size} elements",
                            hint_for(received) if hint_for else None, bad, float(expected[bad]), float(received[bad])))


def _hint(name, case_args, case_kwargs, position, dy=None, ref_cache=None):
    """A function ``received -> hint or None``: the hint of the known mistake whose output
    (``position`` in its returned tuple) equals ``received``."""
    def hint_for(received):
        for hint, mistake in MISTAKES.get(name, []):
            try:
                with np.errstate(all="ignore"):
                    out = mistake(dy, ref_cache) if dy is not None else mistake(*case_args, **case_kwargs)
            except Exception:                                                 # noqa: BLE001
                continue
            out = out if isinstance(out, tuple) else (out,)
            wrong = out[position]
            if _same(received, wrong):
                return hint
        if name == "maxpool2d_backward" and dy is not None:
            if _same(received, maxpool_every_tie(*case_args, **case_kwargs)(dy)):
                return TIE_HINT
        return None
    return hint_for


def _same(a, b) -> bool:
    if a is None or b is None:
        return False
    try:
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-5, atol=1e-7))


def _forward_case(module, name, function, case):
    expected = getattr(F, name)(*case.args, **case.kwargs)
    out = _unpack(_invoke(function, name, case.args, case.kwargs, case.label), ("y", "cache"), name, case.label)
    _compare(name, "y", out[0], expected[0], case.label, _hint(name, case.args, case.kwargs, 0))


def _standalone_case(module, name, function, case):
    expected = getattr(F, name)(*case.args, **case.kwargs)
    names = RETURNS[name]
    out = _unpack(_invoke(function, name, case.args, case.kwargs, case.label), names, name, case.label)
    for i, what in enumerate(names):
        hint_for = _hint(name, case.args, case.kwargs, i)
        if name == "softmax_cross_entropy":
            hint_for = _overflow_hint(hint_for)
        _compare(name, what, out[i], expected[i], case.label, hint_for)
    if name == "softmax_cross_entropy" and case.finite_differences:
        logits, labels = (np.array(a, copy=True) for a in case.args)
        numeric = numerical_gradient(lambda: float(function(logits, labels)[0]), logits)
        _finite_differences(name, "dlogits", out[1], numeric, case.label)


def _overflow_hint(hint_for):
    """Softmax without the max shift shows as inf or NaN on large logits."""
    def hint(received):
        try:
            finite = np.all(np.isfinite(np.asarray(received, dtype=np.float64)))
        except (TypeError, ValueError):
            finite = True
        return hint_for(received) if finite else MAX_SHIFT_HINT
    return hint


def _backward_case(module, name, function, case):
    family = name.rpartition("_")[0]
    forward_name = f"{family}_forward"
    ref_y, ref_cache = getattr(F, forward_name)(*case.args, **case.kwargs)
    dy = np.random.default_rng(len(case.label)).standard_normal(ref_y.shape).astype(ref_y.dtype)
    expected = getattr(F, name)(dy, ref_cache)
    expected = expected if isinstance(expected, tuple) else (expected,)
    learner_forward = getattr(module, forward_name, None)
    try:
        if learner_forward is None:
            raise _NotStarted()
        y, cache = _unpack(_invoke(learner_forward, forward_name, case.args, case.kwargs, case.label),
                           ("y", "cache"), forward_name, case.label)
    except (_NotStarted, _Fail) as err:
        _probe_stub(function, dy)                 # a stub is "not started" whatever the forward does
        why = "is not written yet" if isinstance(err, _NotStarted) else f"fails this case ({err.failure.message})"
        raise _Fail(Failure(case.label, f"{name} needs your {forward_name} (its cache comes from there), which {why}")) \
            from None
    names = BACKWARD_RETURNS[family]
    out = _unpack(_invoke(function, name, (dy, cache), {}, case.label), names, name, case.label)
    for i, what in enumerate(names):
        _compare(name, what, out[i], expected[i], case.label, _hint(name, case.args, case.kwargs, i, dy, ref_cache)
                 if name != "maxpool2d_backward" or i == 0 else None)
    if case.finite_differences:
        inputs = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in case.args]

        def loss():
            return float(np.sum(dy * learner_forward(*inputs, **case.kwargs)[0]))
        _phase(f"finite differences of your {forward_name}")
        for i, what in zip(GRADIENT_OF[family], names):
            if inputs[i] is None:
                continue
            _finite_differences(name, what, out[names.index(what)], numerical_gradient(loss, inputs[i]), case.label)


def _probe_stub(function, dy):
    try:
        function(dy, None)
    except NotImplementedError:
        raise _NotStarted() from None
    except Exception:                                                         # noqa: BLE001
        pass


def _finite_differences(name, what, analytic, numeric, label):
    error = rel_error(analytic, numeric)
    if not error < FINITE_DIFFERENCE_TOL:
        wrong = np.abs(np.asarray(analytic) - numeric)
        bad = tuple(int(i) for i in np.unravel_index(np.argmax(wrong), wrong.shape))
        raise _Fail(Failure(label, f"{what} disagrees with finite differences of your forward "
                                   f"(relative error {error:.1e}, allowed {FINITE_DIFFERENCE_TOL:g})",
                            None, bad, float(numeric[bad]), float(np.asarray(analytic)[bad])))


def _dropout_case(module, name, function, case):
    """Randomness: no element-by-element comparison — the properties instead."""
    x, rate = case.args
    forward = getattr(module, "dropout_forward", None)
    rng = np.random.default_rng(0)
    if name == "dropout_backward":
        try:
            y, cache = _unpack(_invoke(forward, "dropout_forward", (x, rate, rng), {}, case.label), ("y", "cache"),
                               "dropout_forward", case.label)
        except (_NotStarted, _Fail):
            _probe_stub(function, np.ones_like(x))
            raise _Fail(Failure(case.label, "dropout_backward needs your dropout_forward, which does not work yet")) \
                from None
        dy = np.random.default_rng(1).standard_normal(x.shape).astype(x.dtype)
        dx = _unpack(_invoke(function, name, (dy, cache), {}, case.label), ("dx",), name, case.label)[0]
        _compare(name, "dx", dx, (dy * (y / x)).astype(x.dtype), case.label)       # x has no zeros here
        return
    y, _ = _unpack(_invoke(function, name, (x, rate, rng), {}, case.label), ("y", "cache"), name, case.label)
    if not isinstance(y, np.ndarray) or y.shape != x.shape or y.dtype != x.dtype:
        raise _Fail(Failure(case.label, f"y must be an array of x's shape {x.shape} and dtype {x.dtype}"))
    kept = y != 0
    if not np.allclose(y[kept], (x / (1 - rate))[kept], rtol=1e-6):
        raise _Fail(Failure(case.label, "the kept values must be x / (1 − rate) (inverted dropout)"))
    share = kept.mean()
    if abs(share - (1 - rate)) > 0.03:
        raise _Fail(Failure(case.label, f"{share:.1%} of the values were kept, expected about {1 - rate:.0%}"))
    again, _ = function(x, rate, np.random.default_rng(0))
    if not np.array_equal(again, y):
        raise _Fail(Failure(case.label, "the mask must come from the rng you are given (the same rng state, the "
                                        "same mask)"))
