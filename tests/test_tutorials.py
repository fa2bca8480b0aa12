"""The tutorials never rot: each committed notebook is fresh (its outputs came from its current code)
and runs top to bottom, from scratch, within the time budget."""

import importlib.util

import pytest

from .conftest import REPO, missing

spec = importlib.util.spec_from_file_location("tutorials_run", REPO / "tutorials" / "run.py")
run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run)

NOTEBOOKS = run.notebooks()
EXPECTED = 9


def _nbformat():
    try:
        import nbformat
        import nbclient  # noqa: F401
    except ImportError:
        missing("the [tutorials] extra (nbformat, nbclient, ipykernel)")
    return nbformat


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


def test_staleness_check_catches_an_edit(tmp_path):
    """The freshness check itself can fail: edit one code cell of a fresh notebook and it must."""
    nbformat = _nbformat()
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    assert run.problems(nb) == []
    code = next(cell for cell in nb.cells if cell.cell_type == "code")
    code.source += "\nprint('edited after the run')"
    assert any("code changed" in p for p in run.problems(nb))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_within_budget(path, medmnist_dir, tmp_path, monkeypatch):
    """Execute a copy from scratch (the committed file is not touched); it must finish without an
    error, within the budget, and draw the same figures as the committed version."""
    nbformat = _nbformat()
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
