"""benchmarks/vs_keras.py: the tinycnn-vs-Keras benchmark, run in quick mode on real data.

The Keras test runs the script's core function on a small slice of the real PneumoniaMNIST for
one model and one batch size (about 20–40 s, most of it importing TensorFlow in the memory
child), and checks the outputs' structure and that both frameworks, given identical weights and
batches, produce the same per-batch losses. The tests after it run each maintainers' tool in
benchmarks/maintainers/ for one short round.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import load_script, missing

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "vs_keras.py"
MAINTAINERS = REPO / "benchmarks" / "maintainers"      # the A/B and micro-timing tools


def _load(name):
    """benchmarks/maintainers/<name>.py, imported by path as the test of it does."""
    return load_script(MAINTAINERS / f"{name}.py")


@pytest.fixture(scope="module")
def bench():
    return load_script(SCRIPT)


def test_help_describes_the_benchmark():
    out = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for word in ("--quick", "--timed-epochs", "--train-limit", "--wait-idle", "Keras", "peak resident memory"):
        assert word in out.stdout


def test_per_batch_losses_are_recovered_from_the_running_mean(bench):
    rng = np.random.default_rng(0)
    n, batch = 100, 32                           # batches of 32, 32, 32, 4
    losses = rng.uniform(0.1, 2.0, 4)
    sizes = np.array([32, 32, 32, 4])
    running = np.cumsum(losses * sizes) / np.cumsum(sizes)
    np.testing.assert_allclose(bench.per_batch_from_running_mean(running, n, batch), losses, rtol=1e-12)


def test_readme_block_is_replaced_and_the_rest_kept(bench, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nintro\n\n{bench.MARK_BEGIN}\nold\n{bench.MARK_END}\n\nafter\n")
    bench.update_readme(readme, f"{bench.MARK_BEGIN}\nnew table\n{bench.MARK_END}\n")
    text = readme.read_text()
    assert text.startswith("# Title\n\nintro\n") and text.rstrip().endswith("after")
    assert "new table" in text and "old" not in text
    assert text.count(bench.MARK_BEGIN) == 1 and text.count(bench.MARK_END) == 1


@pytest.mark.keras
@pytest.mark.slow
def test_quick_run_on_real_pneumoniamnist(bench, medmnist_dir, tmp_path):
    try:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    except ImportError:
        missing("Keras with the TensorFlow backend (pip install -e \".[keras]\")")
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\nhand-written text\n")
    doc = bench.run_benchmark(["seed"], ["pneumoniamnist"], [32], quick=True, train_limit=192, test_limit=200,
                              data_root=medmnist_dir, out_dir=tmp_path, readme=readme, log=lambda *a: None)

    # the JSON on disk is the document returned, with every number the README reports
    saved = json.loads((tmp_path / "vs_keras_quick.json").read_text())
    assert saved["configs"][0]["batch_size"] == 32 and saved["settings"]["quick"] is True
    for key in ("command", "date", "machine", "threads", "matmul", "tf_matmul", "quiet", "total_seconds",
                "waited_seconds", "markdown"):
        assert key in saved, key
    assert saved["matmul"]["gflops"] > 0 and saved["threads"]["tensorflow"]["intra_op_threads"] >= 0
    (cfg,) = doc["configs"]
    assert (cfg["model"], cfg["dataset"], cfg["n_train"], cfg["steps_per_epoch"]) == ("seed", "pneumoniamnist", 192, 6)
    for fw in ("tinycnn", "keras"):
        r = cfg[fw]
        assert len(r["epoch_seconds"]) == len(r["epoch_others_cores"]) == 2                # warm-up + 1 timed
        assert r["median_epoch_seconds"] > 0
        assert r["samples_per_second"] > 0 and r["predict_samples_per_second"] > 0
        assert 0 < r["train_fraction_of_matmul"] < 1.5
        assert 0 <= r["test"]["acc"] <= 1 and 0 <= r["test"]["auc"] <= 1
        mem = r["memory"]
        assert mem["peak_bytes"] >= mem["before_training_bytes"] > 0 and mem["imports_bytes"] > 0
        assert len(r["batch_loss_epoch1"]) == 6
    assert cfg["keras"]["memory"]["imports_bytes"] > cfg["tinycnn"]["memory"]["imports_bytes"]   # TensorFlow

    # identical weights and batches: the same losses, step by step, to float32 rounding
    np.testing.assert_allclose(cfg["tinycnn"]["batch_loss_epoch1"], cfg["keras"]["batch_loss_epoch1"], rtol=1e-4)
    assert cfg["agreement"]["batch_loss_rel_diff_first_10_max"] < 1e-4
    assert cfg["agreement"]["float32_vs_float64_rel_diff_first_10_max"] < 1e-4      # the rounding yardstick
    assert len(cfg["agreement"]["float64_reference_batch_loss_epoch1"]) == 6
    assert cfg["tinycnn"]["test"]["acc"] == pytest.approx(cfg["keras"]["test"]["acc"], abs=0.02)

    # the figure and the Markdown table
    png = tmp_path / cfg["plot"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = readme.read_text()
    assert text.startswith("# Benchmarks\n\nhand-written text\n")
    block = text[text.index(bench.MARK_BEGIN):text.index(bench.MARK_END)]
    rows = [line for line in block.splitlines() if line.startswith("| seed | pneumoniamnist | 32 |")]
    assert len(rows) == 2                                  # one row in each of the two tables
    assert "| model | dataset | batch | tinycnn s/epoch | Keras s/epoch | ratio tinycnn/Keras" in block
    assert {line.count("|") for line in block.splitlines() if line.startswith("| ")} == {5, 12, 14}
    # the targets, each with the measured value and a verdict that agrees with it
    ratio = cfg["time_ratio_tinycnn_over_keras"]
    target_row = next(line for line in block.splitlines() if line.startswith("| seed model, batch 32: training"))
    best = min(cfg["tinycnn"]["epoch_seconds"][1:]) / min(cfg["keras"]["epoch_seconds"][1:])
    assert f"| {ratio:.2f} | {best:.2f} |" in target_row
    assert ("**met**" in target_row) == (ratio <= bench.TARGETS[("seed", 32)])
    assert doc["markdown"] == text[text.index(bench.MARK_BEGIN):text.index(bench.MARK_END) + len(bench.MARK_END)] + "\n"


def test_fusion_ab_script_times_both_settings_on_real_data(medmnist_dir, capsys):
    """benchmarks/maintainers/fusion_ab.py: one model, one batch size, one short round of each setting."""
    module = _load("fusion_ab")
    assert module.main(["--models", "seed", "--batch-sizes", "16", "--rounds", "2", "--steps", "2",
                        "--data", str(medmnist_dir)]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| seed | 16 |")]
    assert len(row) == 1
    fused, separate, ratio = (float(v) for v in row[0].strip("|").split("|")[2:])
    assert fused > 0 and separate > 0
    assert 0.2 < ratio < 5                                                    # same work either way


def test_threads_vs_processes_script_times_each_call_three_ways(capsys):
    """benchmarks/maintainers/threads_vs_processes.py: a few calls of two cases, alone, in threads, in processes."""
    module = _load("threads_vs_processes")
    cases = ["im2col copy, 2 images", "long thin product: stacked blocks"]
    assert module.main(["--reps", "5", "--cases", *cases]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "µs" not in line]
    assert [row.split("|")[1].strip() for row in rows] == cases
    for row in rows:
        alone, threads, processes = (cell.strip() for cell in row.strip("|").split("|")[1:])
        times = [float(alone)] + [float(t) for t in threads.split("/")] + [float(p) for p in processes.split("/")]
        assert len(times) == 5 and all(t > 0 for t in times)


def test_knob_ab_script_alternates_the_values_and_restores_the_setting(medmnist_dir, capsys):
    """benchmarks/maintainers/knob_ab.py: an A/A and an A/B of a real constant, one short round each."""
    module = _load("knob_ab")
    from tinycnn.kernels import parallel
    before = parallel.MIN_FLOPS
    assert module.main(["tinycnn.kernels.parallel.MIN_FLOPS", "1", "1", str(1 << 40), "--models", "seed", "--batch-sizes", "16",
                        "--rounds", "2", "--steps", "2", "--data", str(medmnist_dir)]) == 0
    assert parallel.MIN_FLOPS == before
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("seed/16: ")]
    assert len(row) == 1
    cells = row[0].split(": ", 1)[1].split("  ")
    assert [cell.split(":")[0] for cell in cells] == ["1", "1", str(1 << 40)]    # the A/A pair kept apart
    assert cells[0].endswith("(1.000)")
    with pytest.raises(SystemExit):
        module.main(["tinycnn.kernels.parallel.NO_SUCH_CONSTANT", "1"])


def test_call_costs_script_times_every_call(capsys):
    """benchmarks/maintainers/call_costs.py: each pair of ways to do one thing gets a positive time."""
    module = _load("call_costs")
    assert module.main(["--reps", "3"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "µs" not in line]
    assert [row.split("|")[1].strip() for row in rows] == list(module.cases())
    assert all(float(row.split("|")[2]) > 0 for row in rows)


def test_profile_layers_script_writes_its_files_where_it_is_told(medmnist_dir, tmp_path, capsys):
    """benchmarks/maintainers/profile_layers.py: one model, one batch size, two steps; the JSON and
    the Markdown name the command and hold one profile each; nothing goes to benchmarks/results."""
    module = _load("profile_layers")
    assert module.main(["--label", "test", "--models", "seed", "--batch-sizes", "16", "--steps", "2",
                        "--data", str(medmnist_dir), "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "profile_test.json").read_text())
    assert doc["command"].startswith("python benchmarks/maintainers/profile_layers.py --label test")
    assert [(p["model"], p["batch_size"]) for p in doc["profiles"]] == [("seed", 16)]
    assert "## seed model, batch 16" in (tmp_path / "profile_test.md").read_text()
    assert "seed model, batch 16" in capsys.readouterr().out
    assert not (REPO / "benchmarks" / "results" / "profile_test.json").exists()


def _worktrees():
    """The repository's worktrees and revision_ab's temporary folders."""
    import tempfile
    out = subprocess.run(["git", "-C", str(REPO), "worktree", "list"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines() + sorted(Path(tempfile.gettempdir()).glob("tinycnn_ab_*"))


def test_revision_ab_script_runs_two_checkouts_in_turn_and_removes_them(medmnist_dir, capsys):
    """benchmarks/maintainers/revision_ab.py: HEAD (a temporary worktree, checked to be what its worker imported)
    against the files as they are, one short round; the worktree is gone afterwards, also when a
    revision does not exist."""
    module = _load("revision_ab")
    before = _worktrees()
    assert module.main(["HEAD", "WORKTREE", "--models", "seed", "--batch-sizes", "16", "--rounds", "2",
                        "--steps", "2", "--data", str(medmnist_dir)]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("seed/16: ")]
    assert len(row) == 1
    a, b, ratio = (float(row[0].split(label)[1].split()[0]) for label in ("A ", "B ", "B / A "))
    assert a > 0 and b > 0 and 0.2 < ratio < 5                               # the same work either way
    assert module.main(["HEAD", "WORKTREE", "--predict", "--models", "seed", "--rounds", "1",
                        "--data", str(medmnist_dir)]) == 0
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith("seed predict: A ")]
    assert _worktrees() == before
    with pytest.raises(subprocess.CalledProcessError):
        module.main(["no-such-revision-xyz", "WORKTREE", "--data", str(medmnist_dir)])
    assert _worktrees() == before


def test_processes_ab_script_trains_with_two_processes_on_the_same_gradient(medmnist_dir):
    """benchmarks/maintainers/processes_ab.py (in a fresh interpreter: it forks): one short round of each way;
    the gradient the two processes add up from their halves is the threads' gradient, to float rounding."""
    out = subprocess.run([sys.executable, str(MAINTAINERS / "processes_ab.py"), "--models", "seed",
                          "--batch-sizes", "16", "--rounds", "1", "--steps", "2", "--data", str(medmnist_dir)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    row = [line for line in out.stdout.splitlines() if line.startswith("| seed | 16 |")]
    assert len(row) == 1
    cells = [cell.strip() for cell in row[0].strip("|").split("|")]
    threads, processes, ratio = (float(v) for v in cells[2:5])
    assert threads > 0 and processes > 0 and 0.2 < ratio < 5                  # the same work either way
    own, waiting, adam = (float(v) for v in cells[5].split(" / "))
    assert own > 0 and waiting >= 0 and adam > 0
    assert float(cells[6].split()[0]) < 1e-5                                   # relative to the largest entry
    odd = subprocess.run([sys.executable, str(MAINTAINERS / "processes_ab.py"), "--models", "seed",
                          "--batch-sizes", "15", "--rounds", "1", "--steps", "1", "--data", str(medmnist_dir)],
                         capture_output=True, text=True, timeout=300)
    assert odd.returncode != 0 and "must be even" in odd.stderr
