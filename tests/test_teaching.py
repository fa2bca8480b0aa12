"""Teaching mode: inside ``tinycnn.teaching()`` fit runs every layer's own forward and backward, in
order, on tinycnn.functional, in one thread — a breakpoint there fires; outside it the kernels and
the fused step run; both train the same network; the readable files hold no speed code; and the
package imports without cycles."""

import ast
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import tinycnn as tc
from tinycnn import functional, ops, zoo
from tinycnn.layers.conv import Conv2D

from .conftest import REPO

KERNEL_FILES = {str(p) for p in (REPO / "tinycnn" / "kernels").glob("*.py") if p.name not in ("parallel.py", "__init__.py")}


class CallLog:
    """Every Python function called while active, on every thread: (thread id, file, function).
    (``sys.setprofile`` is what a debugger's breakpoints build on: a function it sees is one where a
    breakpoint would fire.)"""

    def __enter__(self):
        self.calls = []

        def profile(frame, event, arg):
            if event == "call":
                self.calls.append((threading.get_ident(), frame.f_code.co_filename, frame.f_code.co_name,
                                   frame.f_code))
        self._profile = profile
        threading.setprofile(profile)
        sys.setprofile(profile)
        return self

    def __exit__(self, *exc):
        sys.setprofile(None)
        threading.setprofile(None)

    def called(self, function) -> bool:
        return any(code is function.__code__ for *_, code in self.calls)


def spy_on_layers(model):
    """Count each layer's forward and backward calls (wrapping them on the instances)."""
    counts = {layer.name: {"forward": 0, "backward": 0} for layer in model.layers}
    for layer in model.layers:
        for method in ("forward", "backward"):
            def spy(*args, _original=getattr(layer, method), _name=layer.name, _method=method, **kwargs):
                counts[_name][_method] += 1
                return _original(*args, **kwargs)
            setattr(layer, method, spy)
    return counts


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 2, n)


def fit_watched(make, teaching):
    """One epoch of ``make``'s model on 96 random images, batch 32, every layer and call watched."""
    model = make(2, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    counts = spy_on_layers(model)
    x, y = data()
    with tc.teaching(teaching), CallLog() as log:
        assert tc.is_teaching() == teaching
        model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    return model, counts, log


@pytest.mark.parametrize("make", [zoo.seed_model, zoo.deeper_model])
def test_in_teaching_mode_fit_calls_every_layers_forward_and_backward_in_one_thread(make):
    model, counts, log = fit_watched(make, teaching=True)
    steps = 3                                                   # 96 images, batch 32
    assert not tc.is_teaching()
    last = model.layers[-1].name                                # its softmax is fused with the loss:
    for name, count in counts.items():                          # it is entered below the softmax
        assert count == {"forward": steps, "backward": steps}, (name, count)
    threads = {thread for thread, filename, *_ in log.calls if "tinycnn" in filename}
    assert threads == {threading.get_ident()}                   # one thread
    assert not [name for _, filename, name, _ in log.calls if filename in KERNEL_FILES]   # no kernel ran
    assert log.called(functional.conv2d_backward) and log.called(Conv2D.backward)       # a breakpoint fires
    assert log.called(functional.maxpool2d_backward) and log.called(functional.adam_update)
    assert counts[last]["backward"] == steps


@pytest.mark.parametrize("make", [zoo.seed_model, zoo.deeper_model])
def test_outside_teaching_mode_the_fused_kernels_run(make):
    model, counts, log = fit_watched(make, teaching=False)
    from tinycnn.kernels import fused
    assert log.called(fused.conv2d_relu_maxpool2d_forward) and log.called(fused.conv2d_relu_maxpool2d_backward)
    assert not log.called(functional.conv2d_backward)
    convs = [layer.name for layer in model.layers if isinstance(layer, tc.Conv2D)]
    assert all(counts[name] == {"forward": 0, "backward": 0} for name in convs)     # run inside the fused step
    assert counts["dense"] == {"forward": 3, "backward": 3}


def test_trace_step_and_the_gradient_checks_run_in_teaching_mode():
    model = zoo.seed_model(2, input_shape=(12, 12, 1), seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(1).random((2, 12, 12, 1), dtype=np.float32)
    with CallLog() as log:
        model.trace_step(x, np.array([0, 1]))
    assert log.called(functional.conv2d_backward) and log.called(Conv2D.backward)
    assert not tc.is_teaching()                                 # and the mode is put back
    from tinycnn.gradcheck import check_layer, check_model
    with CallLog() as log:
        check_layer(tc.Conv2D(2, 3), np.random.default_rng(2).standard_normal((1, 5, 5, 1)))
    assert log.called(functional.conv2d_backward)
    small = zoo.seed_model(2, input_shape=(6, 6, 1), seed=0, dtype="float64")
    small.compile("adam", "sparse_categorical_crossentropy")
    with CallLog() as log:
        errors = check_model(small, np.random.default_rng(3).random((2, 6, 6, 1)), np.array([0, 1]), max_entries=5)
    assert log.called(functional.conv2d_backward) and max(errors.values()) < 1e-7


def test_teaching_switch():
    assert not tc.is_teaching()
    tc.set_teaching(True)
    try:
        assert tc.is_teaching() and ops.implementation("conv2d_forward") is functional.conv2d_forward
        with tc.teaching(False):
            assert ops.implementation("conv2d_forward") is not functional.conv2d_forward
        assert tc.is_teaching()
    finally:
        tc.set_teaching(False)
    with pytest.raises(TypeError, match="True or False"):
        tc.set_teaching("yes")
    with pytest.raises(AttributeError, match="no op 'conv3d_forward'"):
        ops.conv3d_forward
    assert ops.implementation("softmax_cross_entropy") is functional.softmax_cross_entropy   # no kernel: functional


def test_a_layer_fused_outside_teaching_mode_says_how_to_step_through_it():
    model = zoo.seed_model(2, input_shape=(12, 12, 1), seed=0)
    model.forward(np.zeros((1, 12, 12, 1), np.float32))
    with pytest.raises(tc.CallOrderError, match=r"ran inside the fused step.*tinycnn.teaching\(\)"):
        model.layers[0].backward(np.zeros((1, 10, 10, 32), np.float32))


@pytest.mark.slow
@pytest.mark.parametrize("make", [zoo.seed_model, zoo.deeper_model])
def test_teaching_and_fast_mode_train_the_same_network_on_real_pneumoniamnist(make, medmnist_dir):
    """The same loss curve to float32 rounding: the kernels add the same products in another order,
    and that rounding difference grows slowly over training."""
    with np.load(medmnist_dir / "pneumoniamnist.npz", allow_pickle=False) as d:
        x = d["train_images"][:1024, ..., None].astype(np.float32) / 255
        y = d["train_labels"][:1024]
    curves = {}
    for teaching in (True, False):
        model = make(2, seed=0)
        model.compile("adam", "sparse_categorical_crossentropy")
        losses = []
        with tc.teaching(teaching):
            for epoch in range(2):
                order = np.random.default_rng(epoch).permutation(len(x))
                for start in range(0, len(x), 32):
                    idx = order[start:start + 32]
                    losses.append(model.train_on_batch(x[idx], y[idx])["loss"])
        curves[teaching] = np.array(losses)
    first_steps = slice(0, 8)
    np.testing.assert_allclose(curves[True][first_steps], curves[False][first_steps], rtol=1e-5)
    np.testing.assert_allclose(curves[True], curves[False], rtol=2e-3, atol=1e-4)
    assert curves[True][-32:].mean() < curves[True][:8].mean() * 0.8          # and it learned


READABLE = ["layers/conv.py", "layers/pool.py", "layers/dense.py", "layers/base.py", "layers/activations.py",
            "functional.py"]
SPEED_WORDS = ["thread", "chunk", "scratch", "parallel", "kernels", "buffer", "matmul"]


@pytest.mark.parametrize("path", READABLE)
def test_the_readable_files_hold_no_speed_code(path):
    """Code lines only (docstrings and comments may say where the speed lives)."""
    tree = ast.parse((REPO / "tinycnn" / path).read_text())
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    names |= {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
              for alias in node.names}
    modules = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    found = [word for word in SPEED_WORDS for name in names | modules if word in name.lower()]
    assert not found, f"{path}: {sorted(set(found))}"


def _imports(path: Path, package: str) -> set[str]:
    """Every tinycnn module ``path`` imports, at the top or inside a function."""
    module = package + "." + ".".join(path.relative_to(REPO / "tinycnn").with_suffix("").parts)
    module = module.removesuffix(".__init__")
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith(package):
                found.add(target)
                found |= {f"{target}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith(package)}
    return found


def test_no_import_cycles():
    files = {p: None for p in (REPO / "tinycnn").rglob("*.py")}
    modules = {}
    for path in files:
        name = "tinycnn." + ".".join(path.relative_to(REPO / "tinycnn").with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = {name: {t for t in _imports(path, "tinycnn") if t in modules and t != name}
             for name, path in modules.items()}
    for name in graph:                       # a package's __init__ is where its users enter: skip those edges
        graph[name] = {t for t in graph[name] if t != "tinycnn" and not name.startswith(t + ".")}
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for name in graph:
        if name not in state:
            visit(name, [name])
