"""The fused Conv2D(relu) → MaxPool2D kernel (tinycnn.kernels.fused) computes what the two layers
compute one after the other in teaching mode (tinycnn.functional) — to float rounding: the same
products, added in another order — on one core or two, and the model uses it only where it applies."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinycnn as tc
from tinycnn import zoo
from tinycnn.gradcheck import numerical_gradient, rel_error
from tinycnn.kernels import fused as fused_module
from tinycnn.kernels import parallel
from tinycnn.kernels.steps import ConvReLUPool
from tinycnn.safety import CallOrderError


@pytest.fixture(params=[1, 2], ids=["one core", "two cores"])
def cores(request, monkeypatch):
    monkeypatch.setattr(parallel, "CORES", request.param)
    return request.param


def pair(input_shape, filters, kernel, padding, pool, dtype=np.float32, seed=0, strides=1):
    rng = np.random.default_rng(seed)
    conv = tc.Conv2D(filters, kernel, strides=strides, padding=padding, activation="relu")
    conv.build(input_shape, rng, dtype)
    conv.params["bias"][...] = rng.standard_normal(filters) * 0.1
    max_pool = tc.MaxPool2D(pool)
    max_pool.build(conv.output_shape, dtype=dtype)
    return conv, max_pool


def separately(conv, max_pool, x, dy, input_grad):
    """The two layers one after the other, on tinycnn.functional."""
    with tc.teaching():
        y = max_pool.forward(conv.forward(x))
        dx = conv.backward(max_pool.backward(dy))
    return y, dx if input_grad else None, {k: g.copy() for k, g in conv.grads.items()}


def fused(conv, max_pool, x, dy, input_grad):
    step = ConvReLUPool(conv, max_pool)
    y = step.forward(x)
    dx = step.backward(dy, input_grad=input_grad)
    return y, dx, {k: g.copy() for k, g in conv.grads.items()}


def relative_error(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), np.finfo(a.dtype).tiny))


# The same products in another order (the bias inside the product, window-major rows, chunk sums):
# float rounding only, which in float32 can reach 1e-5 of the largest entry when a sum cancels.
SUM_ORDER_TOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-12}


def assert_same(a, b):
    (ya, dxa, ga), (yb, dxb, gb) = a, b
    tol = SUM_ORDER_TOL[ya.dtype]
    assert ya.shape == yb.shape and relative_error(ya, yb) < tol
    assert (dxa is None) == (dxb is None)
    if dxa is not None:
        assert dxa.shape == dxb.shape and relative_error(dxa, dxb) < tol
    assert ga.keys() == gb.keys()
    for key in ga:
        assert relative_error(ga[key], gb[key]) < tol, key


# the models' own shapes (batch 128 spans several chunks on two cores), and small odd cases
CASES = {
    "seed conv1, batch 128": ((28, 28, 1), 32, 3, "valid", 2, 128, np.float32),
    "deeper conv2, batch 40": ((14, 14, 32), 64, 3, "same", 2, 40, np.float32),
    "float64, same": ((8, 8, 2), 3, 3, "same", 2, 5, np.float64),
    "2×3 windows": ((12, 14, 3), 4, (3, 3), "valid", (2, 3), 7, np.float64),
    "3×3 windows": ((9, 9, 2), 3, 3, "same", 3, 3, np.float32),
    "1×1 windows": ((5, 5, 2), 3, 2, "valid", 1, 2, np.float32),
    "strided conv (col2im)": ((9, 9, 3), 4, 3, "same", 5, 3, np.float64, 2),
}


@pytest.mark.parametrize("keep_cols", [True, False], ids=["im2col kept", "im2col rebuilt"])
@pytest.mark.parametrize("input_grad", [True, False])
@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_equals_the_two_layers(case, input_grad, keep_cols, cores, monkeypatch):
    """Backward either reads the im2col rows forward kept or builds them again (big batches)."""
    monkeypatch.setattr(fused_module, "KEEP_COLS_BYTES", 2**62 if keep_cols else 0)
    shape, filters, kernel, padding, pool, n, dtype, *strides = CASES[case]
    conv, max_pool = pair(shape, filters, kernel, padding, pool, dtype, strides=strides[0] if strides else 1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, *shape)).astype(dtype)
    x[0] = 0                       # an empty image: every window ties (all z = bias), ReLU or not
    x[1, ::2] = 1                  # repeated rows: ties between window positions
    dy = rng.standard_normal((n, *max_pool.output_shape)).astype(dtype)
    assert_same(separately(conv, max_pool, x, dy, input_grad), fused(conv, max_pool, x, dy, input_grad))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 4), hw=st.integers(1, 5), c=st.integers(1, 4), f=st.integers(1, 5),
       k=st.integers(1, 3), p=st.integers(1, 3), padding=st.sampled_from(["valid", "same"]),
       values=st.sampled_from(["normal", "few levels"]), seed=st.integers(0, 2**16))
def test_fused_equals_the_two_layers_for_any_shape(n, hw, c, f, k, p, padding, values, seed):
    """Any input whose convolution output the pooling windows tile; "few levels" makes ties common."""
    size = hw * p + (k - 1 if padding == "valid" else 0)          # conv output = hw·p: windows tile it
    conv, max_pool = pair((size, size, c), f, k, padding, p, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, size, size, c)).astype(np.float32)
    if values == "few levels":
        x = np.round(x).astype(np.float32)
        conv.params["kernel"][...] = np.round(conv.params["kernel"] * 4)
    dy = rng.standard_normal((n, *max_pool.output_shape)).astype(np.float32)
    assert_same(separately(conv, max_pool, x, dy, True), fused(conv, max_pool, x, dy, True))


def test_gradients_through_the_fused_step_match_finite_differences():
    """float64: dL/dW, dL/db and dL/dx of L = Σ dy · step(x) against central differences."""
    conv, max_pool = pair((8, 8, 2), 3, 3, "same", (2, 2), np.float64, seed=3)
    step = ConvReLUPool(conv, max_pool)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 8, 8, 2))
    dy = rng.standard_normal((2, 4, 4, 3))
    loss = lambda: float(np.sum(dy * step.forward(x)))                   # noqa: E731
    step.forward(x)
    dx = step.backward(dy)
    for key in ("kernel", "bias"):
        analytic = conv.grads[key].copy()
        numeric = numerical_gradient(loss, conv.params[key], h=1e-6)
        assert rel_error(analytic, numeric) < 1e-7, key
    numeric = numerical_gradient(loss, x, h=1e-6)
    assert rel_error(dx, numeric) < 1e-7


def test_the_model_fuses_only_what_it_can():
    model = tc.Sequential([
        tc.Conv2D(4, 3, activation="relu"), tc.MaxPool2D(2),             # 10×10 → 8×8 → 4×4: fused
        tc.Conv2D(4, 3, padding="same"), tc.ReLU(), tc.MaxPool2D(2),     # separate ReLU layer: not fused
        tc.Conv2D(4, 1, activation="relu"), tc.MaxPool2D(2, strides=1),  # overlapping windows: not fused
        tc.Conv2D(4, 1, activation="tanh"), tc.MaxPool2D(1),             # not a ReLU: not fused
        tc.Flatten(), tc.Dense(2, activation="softmax"),
    ], input_shape=(10, 10, 1), seed=0)
    names = [step.name for step in model._steps()]
    assert names == ["conv2d+max_pool2d", "conv2d_1", "re_lu", "max_pool2d_1", "conv2d_2", "max_pool2d_2",
                     "conv2d_3", "max_pool2d_3", "flatten", "dense"]
    model.fuse = False
    assert [step.name for step in model._steps()] == [layer.name for layer in model.layers]
    odd = tc.Sequential([tc.Conv2D(2, 2, activation="relu"), tc.MaxPool2D(2)], input_shape=(8, 8, 1))
    assert [step.name for step in odd._steps()] == ["conv2d", "max_pool2d"]     # 7×7 is not tiled by 2×2


@pytest.mark.parametrize("make", [zoo.seed_model, zoo.deeper_model])
def test_a_model_fused_or_not_computes_the_same(make, cores):
    """The same loss, logits, gradients and predictions to float rounding (the fused step adds the
    same products in another order), and after a few training steps the same weights."""
    rng = np.random.default_rng(5)
    x, y = rng.random((48, 28, 28, 1), dtype=np.float32), rng.integers(0, 3, 48)
    runs = []
    for fuse in (True, False):
        model = make(3, seed=2)
        model.fuse = fuse
        model.compile("adam", "sparse_categorical_crossentropy")
        loss, logits = model.loss_and_grads(x[:16], y[:16])
        grads = {name: g.copy() for (name, _), g in zip(model.named_params(), model.grads)}
        predictions = model.predict(x)
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        runs.append((loss, logits, grads, predictions, model.get_weights()))
    (loss_a, logits_a, grads_a, p_a, weights_a), (loss_b, logits_b, grads_b, p_b, weights_b) = runs
    assert loss_a == pytest.approx(loss_b, rel=1e-6)
    np.testing.assert_allclose(logits_a, logits_b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p_a, p_b, rtol=1e-5, atol=1e-6)
    for name in grads_a:
        assert relative_error(grads_a[name], grads_b[name]) < 1e-4, name
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * np.max(np.abs(b)))


def test_model_backward_returns_the_input_gradient_when_fused():
    """``model.backward`` (saliency maps) still gives dL/d(images) through a fused first step."""
    model = zoo.seed_model(2, input_shape=(12, 12, 1), seed=0)
    x = np.random.default_rng(6).random((3, 12, 12, 1), dtype=np.float32)
    dout = np.random.default_rng(7).standard_normal((3, 2)).astype(np.float32)
    grads = []
    for fuse in (True, False):
        model.fuse = fuse
        model.forward(x)
        grads.append(model.backward(dout))
    assert grads[0].shape == x.shape
    assert relative_error(*grads) < 1e-5


def test_errors_name_the_step():
    conv, max_pool = pair((6, 6, 1), 2, 3, "valid", 2)
    step = ConvReLUPool(conv, max_pool)
    with pytest.raises(CallOrderError, match=r"conv2d\+max_pool2d: backward called before forward"):
        step.backward(np.zeros((1, 2, 2, 2), np.float32))
    step.forward(np.zeros((1, 6, 6, 1), np.float32))
    with pytest.raises(ValueError, match=r"max_pool2d.*expected dy of shape \(1, 2, 2, 2\), got \(1, 2, 2, 3\)"):
        step.backward(np.zeros((1, 2, 2, 3), np.float32))
    with pytest.raises(CallOrderError, match=r"conv2d.*ran inside the fused step 'conv2d\+max_pool2d'.*model.fuse = False"):
        conv.backward(np.zeros((1, 4, 4, 2), np.float32))           # the layers' own caches are not stale
    with pytest.raises(CallOrderError, match="max_pool2d.*fused step"):
        max_pool.backward(np.zeros((1, 2, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, 6, 6, 1\)"):
        step.forward(np.zeros((1, 5, 5, 1), np.float32))
    overlapping = tc.MaxPool2D(2, strides=1)
    overlapping.build(conv.output_shape)
    with pytest.raises(ValueError, match="cannot be fused"):
        ConvReLUPool(conv, overlapping)


def test_backward_after_an_inference_forward_finds_the_winners_itself():
    """``predict`` skips recording which window position won; a backward after such a forward
    (a saliency map after ``model(x)``) recomputes it and gives the training-mode gradients."""
    conv, max_pool = pair((10, 10, 2), 3, 3, "same", 2, seed=4)
    step = ConvReLUPool(conv, max_pool)
    rng = np.random.default_rng(8)
    x = np.round(rng.standard_normal((3, 10, 10, 2))).astype(np.float32)     # ties
    dy = rng.standard_normal((3, 5, 5, 3)).astype(np.float32)
    results = []
    for training in (True, False):
        y = step.forward(x, training=training)
        assert (step._cache[6] is None) == (not training)
        dx = step.backward(dy)
        results.append((y, dx, {k: g.copy() for k, g in conv.grads.items()}))
    (ya, dxa, ga), (yb, dxb, gb) = results
    np.testing.assert_array_equal(ya, yb)
    np.testing.assert_array_equal(dxa, dxb)
    for key in ga:
        np.testing.assert_array_equal(ga[key], gb[key])
