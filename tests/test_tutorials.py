"""The tutorials never rot: each committed notebook is fresh (its outputs came from its current code
and from the current tinycnn/), runs top to bottom, from scratch, within the time budget — and,
since every claim a notebook makes is an assert next to the number that backs it, a claim that
stops being true fails the run."""

import re
import shutil

import pytest

from . import conftest
from .conftest import REPO, load_script, missing

run = load_script(REPO / "tutorials" / "run.py", "tutorials_run")

NOTEBOOKS = run.notebooks()
EXPECTED = 12


def _nbformat():
    try:
        import nbformat
        import nbclient  # noqa: F401
    except ImportError:
        missing("the [tutorials] extra (nbformat, nbclient, ipykernel)")
    return nbformat


def _requirements(path):
    """Skip (outside CI) or fail (in CI) a notebook whose optional extra is not installed."""
    lacking = run.missing_requirement(path)
    if lacking:
        missing(f"{lacking}, which {path.name} needs,")


def test_a_notebook_without_its_extra_skips_outside_ci_and_fails_in_ci(monkeypatch):
    """08 needs Keras: without it the slow test skips on a developer's machine and fails in CI."""
    monkeypatch.setitem(run.REQUIRES, NOTEBOOKS[0].name, ("keras", ("no_such_module_for_this_test",)))
    monkeypatch.setattr(conftest, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="no_such_module_for_this_test"):
        _requirements(NOTEBOOKS[0])
    monkeypatch.setattr(conftest, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI=true requires it"):
        _requirements(NOTEBOOKS[0])


def test_every_tutorial_is_there():
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers == list(range(1, EXPECTED + 1)), [p.name for p in NOTEBOOKS]
    index = (REPO / "tutorials" / "README.md").read_text()
    for path in NOTEBOOKS:
        assert path.name in index, f"tutorials/README.md does not list {path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_fresh(path):
    nbformat = _nbformat()
    assert run.problems(nbformat.read(path, as_version=4)) == []


def _freshly_stamped(library):
    """Notebook 01 as if it had just been executed against ``library`` (a library hash)."""
    nbformat = _nbformat()
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    run.stamp(nb, 1.0, library)
    assert run.problems(nb, library) == []
    return nb


def test_staleness_check_catches_an_edit():
    """The freshness check itself can fail: edit one code cell of a fresh notebook and it must."""
    nb = _freshly_stamped(run.library_hash())
    code = next(cell for cell in nb.cells if cell.cell_type == "code")
    code.source += "\nprint('edited after the run')"
    assert [p for p in run.problems(nb) if "changed" in p] == [
        "code changed since the outputs were produced; re-run `python tutorials/run.py`"]


def test_staleness_check_catches_a_library_change(tmp_path):
    """A notebook executed against one tinycnn/ is stale once any file of the library changes (here a
    copy of it, with a comment added to one module) — while its own code is untouched."""
    library = tmp_path / "tinycnn"
    shutil.copytree(run.LIBRARY, library, ignore=shutil.ignore_patterns("__pycache__"))
    nb = _freshly_stamped(run.library_hash(library))
    (library / "functional.py").write_text((library / "functional.py").read_text() + "\n# edited\n")
    assert run.problems(nb, run.library_hash(library)) == [
        "tinycnn/ changed since it was executed; re-run `python tutorials/run.py`"]
    (library / "new_module.py").write_text("")                  # a new file counts too
    assert run.library_hash(library) != run.library_hash(run.LIBRARY)


def test_a_false_claim_fails_the_run(tmp_path):
    """What makes a notebook's claims binding: an assert that fails stops the execution with an
    error naming it (a tiny notebook, executed exactly as the tutorials are)."""
    nbformat = _nbformat()
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("0.1 + 0.2 is 0.3, exactly."),
        nbformat.v4.new_code_cell("total = 0.1 + 0.2\nprint(total)\n"
                                  "assert total == 0.3, f'0.1 + 0.2 is {total!r}, not 0.3'"),
    ])
    path = tmp_path / "claim.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(CellExecutionError, match=r"0\.1 \+ 0\.2 is 0\.30000000000000004, not 0\.3"):
        run.execute(path)


@pytest.mark.slow
def test_backprop_tutorial_fails_when_the_trace_differs_from_loss_and_grads(medmnist_dir, tmp_path,
                                                                           monkeypatch):
    """Tutorial 04 says the trace holds the very numbers `loss_and_grads` computes. Break that on
    purpose — the trace's copy of one gradient entry moved by one unit in the last place — and
    executing the notebook must fail, at that claim."""
    nbformat = _nbformat()
    from nbclient.exceptions import CellExecutionError

    monkeypatch.setenv("TINYCNN_DATA", str(medmnist_dir))
    path = REPO / "tutorials" / "04_backprop_step_by_step.ipynb"
    nb = nbformat.read(path, as_version=4)
    sabotage = nbformat.v4.new_code_cell(
        "import tinycnn.model\n"
        "_trace_step = tinycnn.model.Sequential.trace_step\n"
        "def trace_step(self, *args, **kwargs):          # the trace, one gradient entry off by one ulp\n"
        "    trace = _trace_step(self, *args, **kwargs)\n"
        "    g = trace['dense'].grads['kernel']\n"
        "    g.flat[0] = np.nextafter(g.flat[0], np.inf)\n"
        "    return trace\n"
        "tinycnn.model.Sequential.trace_step = trace_step")
    nb.cells.insert(2, sabotage)                                   # right after the imports
    copy = tmp_path / path.name
    nbformat.write(nb, copy)
    with pytest.raises(CellExecutionError) as failure:
        run.execute(copy)
    message = re.sub(r"\x1b\[[0-9;]*m", "", str(failure.value))      # without the terminal colours
    print(message)
    assert "AssertionError: the trace and loss_and_grads differ: ['dense/kernel']" in message


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_within_budget(path, medmnist_dir, tmp_path, monkeypatch):
    """Execute a copy from scratch (the committed file is not touched); it must finish without an
    error — every claim's assert holding — within the budget, and draw the same figures as the
    committed version."""
    nbformat = _nbformat()
    _requirements(path)
    monkeypatch.setenv("TINYCNN_DATA", str(medmnist_dir))
    copy = tmp_path / path.name
    copy.write_bytes(path.read_bytes())
    nb, seconds = run.execute(copy)
    assert seconds < run.BUDGET_SECONDS, f"{path.name} took {seconds:.0f} s (budget {run.BUDGET_SECONDS} s)"
    run.stamp(nb, seconds)
    assert run.problems(nb) == []

    def figures(notebook):
        return [sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))
                for cell in notebook.cells if cell.cell_type == "code"]

    assert figures(nb) == figures(nbformat.read(path, as_version=4))
