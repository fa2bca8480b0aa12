"""The kernels (tinycnn.kernels) compute what tinycnn.functional computes, on one core or two; their
helpers compute exactly what the plain versions compute; tinycnn.profile / tinycnn bench report
what actually ran."""

import threading

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinycnn as tc
from tinycnn import functional as F
from tinycnn import kernels as K
from tinycnn import zoo
from tinycnn.gradcheck import rel_error
from tinycnn.im2col import im2col, pad, padding_amounts
from tinycnn.kernels import elementwise, memory, parallel, pool

from .conftest import missing
from .strategies import seeds, window_case


@pytest.fixture(params=[1, 2], ids=["one core", "two cores"])
def cores(request, monkeypatch):
    monkeypatch.setattr(parallel, "CORES", request.param)
    return request.param


@settings(max_examples=40)
@given(n=st.integers(1, 5), h=st.integers(3, 9), w=st.integers(3, 9), c=st.integers(1, 6),
       k=st.integers(1, 3), s=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_im2col_into_equals_im2col_in_both_layouts(n, h, w, c, k, s, seed):
    """Few channels fill the transpose, many fill rows: both must give the plain im2col matrix."""
    x = np.random.default_rng(seed).standard_normal((n, h, w, c)).astype(np.float32)
    expected = im2col(x, (k, k), (s, s))
    buffer = np.full(expected.size + 7, np.nan, np.float32)      # longer than needed, garbage-filled
    np.testing.assert_array_equal(memory.im2col_into(x, (k, k), (s, s), buffer), expected)


@settings(max_examples=30)
@given(n=st.integers(1, 4), h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 5),
       kh=st.integers(1, 3), kw=st.integers(1, 3), sh=st.integers(1, 3), sw=st.integers(1, 3))
def test_fast_window_view_is_the_plain_one(n, h, w, c, kh, kw, sh, sw):
    """memory._windows builds im2col.windows's view without as_strided: same shape, strides, values,
    read-only; a non-contiguous input falls back to the plain view."""
    from tinycnn.im2col import windows
    if kh > h or kw > w:
        return
    x = np.arange(n * h * w * c, dtype=np.float32).reshape(n, h, w, c)
    for array in (x, x[:, :, ::-1], x[1:]):
        fast_view, plain = memory._windows(array, (kh, kw), (sh, sw)), windows(array, (kh, kw), (sh, sw))
        assert fast_view.shape == plain.shape and fast_view.strides == plain.strides
        np.testing.assert_array_equal(fast_view, plain)
        assert not fast_view.flags.writeable


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_into_equals_maximum_with_zero(dtype, monkeypatch):
    """relu_into takes its zeros from an array; the result is np.maximum(x, 0) exactly, NaN kept,
    in place or not, contiguous or strided, and block by block when longer than RELU_BLOCK."""
    monkeypatch.setattr(elementwise, "_zeros", {})
    monkeypatch.setattr(elementwise, "RELU_BLOCK", 1000)                           # several blocks below
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 13, 11, 5)).astype(dtype)                   # 5005 elements: 6 blocks
    x[0, 0, 0, :3] = [np.nan, -0.0, np.inf]
    expected = np.maximum(x, 0)
    np.testing.assert_array_equal(elementwise.relu_into(x, np.empty_like(x)), expected)
    strided = x[:, ::2]
    np.testing.assert_array_equal(elementwise.relu_into(strided, np.empty_like(strided)), np.maximum(strided, 0))
    in_place = x.copy()
    assert elementwise.relu_into(in_place, in_place) is in_place
    np.testing.assert_array_equal(in_place, expected)
    assert not elementwise._zeros[np.dtype(dtype)].any() and not elementwise._zeros[np.dtype(dtype)].flags.writeable


def test_padded_buffers_keep_their_zero_border_across_batches():
    """Scratch.padded writes the zeros once; copy_to_middle then gives im2col.pad's array for any
    batch size, after other contents, and a new layout (other pads, image size or border value)
    starts from its border value."""
    scratch, rng = memory.Scratch(), np.random.default_rng(0)
    pads = ((1, 2), (0, 1))
    for n in (3, 5, 2, 5):
        x = rng.standard_normal((n, 4, 3, 2)).astype(np.float32) + 10           # never 0
        buffer = scratch.padded("x_padded", x.shape, pads, np.float32)
        memory.copy_to_middle(x, buffer, pads)
        np.testing.assert_array_equal(buffer, pad(x, pads))
    other = ((2, 2), (2, 2))
    y = rng.standard_normal((1, 4, 3, 2)).astype(np.float32) + 10            # fits in the old buffer
    buffer = scratch.padded("x_padded", y.shape, other, np.float32)
    memory.copy_to_middle(y, buffer, other)
    np.testing.assert_array_equal(buffer, pad(y, other))
    same = padding_amounts(3, 4, (3, 3), (1, 1), "same")                    # max pooling's -inf border
    z = rng.standard_normal((2, 3, 4, 2)).astype(np.float32)
    buffer = scratch.padded("x_padded", z.shape, same, np.float32, value=-np.inf)
    memory.copy_to_middle(z, buffer, same)
    np.testing.assert_array_equal(buffer, pad(z, same, value=-np.inf))


def test_parallel_map_keeps_order_and_raises_errors(cores):
    assert parallel.parallel_map(lambda i: i * i, range(7)) == [i * i for i in range(7)]

    def fail_on_three(i):
        if i == 3:
            raise ValueError("part 3 failed")
        return i

    with pytest.raises(ValueError, match="part 3 failed"):
        parallel.parallel_map(fail_on_three, range(6))
    assert parallel.parallel_map(lambda i: i, range(3)) == [0, 1, 2]           # still usable afterwards


def test_parallel_map_really_uses_another_thread(monkeypatch):
    monkeypatch.setattr(parallel, "CORES", 2)
    threads = parallel.parallel_map(lambda _: threading.get_ident(), range(4))
    assert len(set(threads)) == 2 and threading.get_ident() in threads


def test_split_covers_the_range_once():
    for n in (1, 2, 5, 1000):
        for work in (1, 10**9):
            parts = parallel.split(n, work)
            assert [i for part in parts for i in range(n)[part]] == list(range(n))


@pytest.mark.parametrize("shape", [(7, 5), (4, 3000), (3000, 4), (600, 700)])
def test_matmul_equals_numpy(cores, shape, monkeypatch):
    monkeypatch.setattr(parallel, "MIN_FLOPS", 1)                  # force splitting even for small products
    rng = np.random.default_rng(0)
    a = rng.standard_normal((shape[0], 50)).astype(np.float32)
    b = rng.standard_normal((50, shape[1])).astype(np.float32)
    np.testing.assert_allclose(parallel.matmul(a, b), a @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(parallel.matmul(b.T, a.T), b.T @ a.T, rtol=1e-5, atol=1e-5)  # transposed views


def test_long_thin_products_summed_in_blocks_equal_numpy(cores):
    """A first layer's [db; dW] = [1, cols]ᵀ · dz: 10 × 32, summed over ~10 000 rows in blocks."""
    rng = np.random.default_rng(2)
    for rows in (3 * parallel.LONG_K_BLOCK + 17, 4 * parallel.LONG_K_BLOCK):      # a shorter last block, or none
        a = rng.standard_normal((10, rows))
        b = rng.standard_normal((a.shape[1], 32))
        assert a.shape[0] * b.shape[1] <= parallel.SMALL_OUTPUT and a.shape[1] > 2 * parallel.LONG_K_BLOCK
        np.testing.assert_allclose(parallel.matmul(a, b), a @ b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(parallel.matmul(b.T, a.T), b.T @ a.T, rtol=1e-12, atol=1e-12)   # not a view: copied
        np.testing.assert_allclose(parallel.matmul(a.astype(np.float32), b.astype(np.float32)), a @ b, rtol=1e-4, atol=1e-3)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3), ho=st.integers(1, 3), wo=st.integers(1, 3), c=st.integers(1, 5),
       ph=st.integers(1, 3), pw=st.integers(1, 3), k=st.integers(1, 3), ones=st.booleans(),
       seed=st.integers(0, 2**16))
def test_window_major_im2col_is_im2col_with_reordered_rows(n, ho, wo, c, ph, pw, k, ones, seed):
    """Row (i, j, image, r, s) of the window-major matrix is the plain im2col row of output pixel
    (image, r·ph + i, s·pw + j); with ``ones`` a first column of ones comes before it."""
    h, w = ho * ph + k - 1, wo * pw + k - 1                       # "valid": output (ho·ph, wo·pw)
    x = np.random.default_rng(seed).standard_normal((n, h, w, c)).astype(np.float32)
    plain = im2col(x, (k, k), (1, 1)).reshape(n, ho * ph, wo * pw, -1)
    expected = np.stack([plain[:, i::ph, j::pw].reshape(-1, plain.shape[-1])
                         for i in range(ph) for j in range(pw)]).reshape(-1, plain.shape[-1])
    if ones:
        expected = np.concatenate([np.ones((len(expected), 1), np.float32), expected], axis=1)
    buffer = np.full(expected.size + 5, np.nan, np.float32)
    got = memory.im2col_into(x, (k, k), (1, 1), buffer, pool=(ph, pw), ones=ones)
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=30, deadline=None)
@given(positions=st.integers(1, 6), n=st.integers(1, 40), levels=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_max_and_first_argmax_and_routing_match_numpy(positions, n, levels, seed):
    """np.argmax returns the first maximum, as TensorFlow's pooling does: an independent oracle.
    Few distinct levels make ties common."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, levels, (positions, n, 3)).astype(np.float32)
    y, first = np.empty((n, 3), np.float32), np.empty((n, 3), np.uint8)
    scratch = memory.Scratch()
    pool.max_and_first_argmax(blocks, y, first, scratch.get)
    np.testing.assert_array_equal(y, blocks.max(axis=0))
    np.testing.assert_array_equal(first, np.argmax(blocks, axis=0))
    g = rng.standard_normal((n, 3)).astype(np.float32)
    routed = np.full(blocks.shape, np.nan, np.float32)
    pool.route_to_argmax(g, first, routed, scratch.get)
    expected = np.zeros_like(blocks)
    np.put_along_axis(expected, np.argmax(blocks, axis=0)[None], g[None], axis=0)
    np.testing.assert_array_equal(routed, expected)
    y_only = np.empty_like(y)
    pool.max_and_first_argmax(blocks, y_only, None, scratch.get)           # inference: no argmax
    np.testing.assert_array_equal(y_only, y)


def test_all_finite():
    a = np.random.default_rng(1).standard_normal((1000, 7))
    assert elementwise.all_finite(a)
    huge = np.full(10, 3e38, np.float32)                      # finite, but its sum overflows
    assert elementwise.all_finite(huge)
    for bad in (np.nan, np.inf, -np.inf):
        b = a.copy()
        b[500, 3] = bad
        assert not elementwise.all_finite(b)


def test_one_blas_thread_sets_and_restores_the_blas_threads(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")   # a declared dependency: always there
    monkeypatch.setattr(parallel, "CORES", 2)
    blas = [info for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    if not blas:
        missing("a BLAS library that threadpoolctl can see")
    before = [info["num_threads"] for info in blas]
    with parallel.one_blas_thread():
        inside = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    after = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    assert inside == [1] * len(blas) and after == before


def test_scratch_buffers_are_per_thread_reused_and_only_grow():
    scratch = memory.Scratch()
    a = scratch.get("cols", (11, 3, 4), np.float32)
    again = scratch.get("cols", (11, 3, 4), np.float32)
    assert again.shape == (11, 3, 4) and np.shares_memory(again, a)              # reused
    smaller = scratch.get("cols", (10, 3, 4), np.float32)
    assert smaller.shape == (10, 3, 4) and np.shares_memory(smaller, a)          # cut from the same
    bigger = scratch.get("cols", (12, 3, 4), np.float32)
    assert bigger.shape == (12, 3, 4) and not np.shares_memory(bigger, a)        # grown: new memory
    assert scratch.get("cols", (2, 2), np.float64).dtype == np.float64
    other = []
    t = threading.Thread(target=lambda: other.append(scratch.get("cols", (3, 5), np.float32)))
    t.start()
    t.join()
    assert not np.shares_memory(other[0], scratch.get("cols", (3, 5), np.float32))   # another thread's own


def _gradients(cores_value, monkeypatch):
    monkeypatch.setattr(parallel, "CORES", cores_value)
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 1)          # split everything that can be split
    monkeypatch.setattr(parallel, "MIN_FLOPS", 1)
    model = zoo.deeper_model(3, input_shape=(12, 12, 2), seed=3)
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(3)
    x = rng.random((16, 12, 12, 2), dtype=np.float32)
    loss, _ = model.loss_and_grads(x, rng.integers(0, 3, 16))
    return loss, [g.copy() for g in model.grads]


def test_two_cores_compute_what_one_core_computes(monkeypatch):
    """Splitting the work by images and by product blocks changes who computes what, not the result:
    equal within float32 rounding (BLAS may round a block of rows differently from the whole; the
    convolution chunks themselves never depend on the core count)."""
    loss_one, one = _gradients(1, monkeypatch)
    loss_two, two = _gradients(2, monkeypatch)
    assert loss_one == pytest.approx(loss_two, rel=1e-6)
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


def test_chunks_fit_the_cache_but_carry_enough_work():
    """Chunks: about CHUNK_BYTES of rows, at least CHUNK_MIN_WORK multiply-adds, at most half a
    batch that does not fit whole (two cores, two chunks), the whole of a batch that does."""
    big, tiny = memory.CHUNK_BYTES // 4, memory.CHUNK_BYTES // 1000
    assert memory.images_per_chunk(big, 128) == 4                                   # bytes decide
    assert memory.images_per_chunk(big, 128, work_per_image=memory.CHUNK_MIN_WORK // 8) == 8      # work decides
    assert memory.images_per_chunk(big, 6, work_per_image=memory.CHUNK_MIN_WORK) == 3  # half of 6
    assert memory.images_per_chunk(tiny, 100, work_per_image=1) == 100              # 0.1 of CHUNK_BYTES: one chunk
    assert memory.images_per_chunk(tiny, 1200) == 600                               # all of it does not fit: halves
    for n, size in ((128, 43), (32, 16), (7, 3), (5, 5)):
        parts = memory.chunks(n, size)
        assert [i for part in parts for i in range(n)[part]] == list(range(n))
        assert max(p.stop - p.start for p in parts) <= size and (len(parts) % 2 == 0 or len(parts) == 1 or len(parts) == n)


def test_chunked_conv_equals_the_whole_batch_at_once(monkeypatch):
    """Cache blocking: a conv computed a few images at a time equals the one-chunk computation."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((9, 10, 10, 3))
    dy = rng.standard_normal((9, 10, 10, 4))
    results = []
    for chunk_bytes in (10**9, 1):                       # one chunk; one image per chunk
        monkeypatch.setattr(memory, "CHUNK_BYTES", chunk_bytes)
        monkeypatch.setattr(memory, "CHUNK_MIN_WORK", 1)
        layer = tc.Conv2D(4, 3, padding="same", activation="relu")
        layer.build((10, 10, 3), np.random.default_rng(0), np.float64)
        y = layer.forward(x)
        dx = layer.backward(dy)
        results.append((y, dx, layer.grads["kernel"], layer.grads["bias"]))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# -- tinycnn.profile ---------------------------------------------------------------------------------
def _expected_flops_per_step(model, batch, fused=True):
    """Every matrix product a training step makes, counted from the layer shapes (2·M·K·N each); a
    fused first step skips dL/d(images)."""
    total = 0
    for i, layer in enumerate(model.layers):
        if isinstance(layer, tc.Conv2D):
            ho, wo, f = layer.output_shape
            h, w, c = layer.input_shape
            rows, k = batch * ho * wo, layer.kernel_size[0] * layer.kernel_size[1] * c + layer.use_bias  # [1, cols]: the bias's column of ones
            total += 2 * rows * k * f * 2                            # z = [1, cols]·[b; W], [db; dW] = [1, cols]ᵀ·dz
            if i > 0 or not fused:                                   # dx = im2col(pad(dz))·flip(W) (stride 1)
                total += 2 * (batch * h * w) * (layer.kernel_size[0] * layer.kernel_size[1] * f) * c
        elif isinstance(layer, tc.Dense):
            k, f = layer.params["kernel"].shape
            total += 2 * batch * k * f * (2 if i == 0 else 3)
    return total


FUSED_ROWS = {"seed_model": ["conv2d+max_pool2d", "flatten", "dense", "dense_1"],
              "deeper_model": ["conv2d+max_pool2d", "conv2d_1+max_pool2d_1", "flatten", "dense", "dense_1"]}


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("make", [zoo.seed_model, zoo.deeper_model])
def test_profile_times_every_layer_and_counts_every_product(make, fuse):
    model = make(2, input_shape=(16, 16, 1), seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fuse = fuse
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 16, 16, 1), dtype=np.float32), rng.integers(0, 2, 40)
    before = model.get_weights()
    result = tc.profile(model, x, y, batch_size=8, steps=4, warmup=1, measure_peak=False)
    names = [r.name for r in result.rows]
    expected = FUSED_ROWS[make.__name__] if fuse else [layer.name for layer in model.layers]
    assert names == expected + ["loss", "optimizer"]
    if fuse:
        assert result.rows[0].kind == "Conv2D+MaxPool2D"
    assert result.step_seconds > 0 and all(r.forward >= 0 and r.backward >= 0 for r in result.rows)
    assert sum(r.total for r in result.rows) <= result.step_seconds * 1.001
    assert result.matmul_flops == pytest.approx(_expected_flops_per_step(model, 8, fuse))
    text = str(result)
    for name in names[:-1]:
        assert name in text
    assert "matrix products" in text
    for a, b in zip(before, model.get_weights()):          # profiling does not train the model
        np.testing.assert_array_equal(a, b)


def test_profile_leaves_the_model_as_it_was():
    """After profiling, training goes exactly as if the profile had never run."""
    rng = np.random.default_rng(1)
    x, y = rng.random((24, 12, 12, 1), dtype=np.float32), rng.integers(0, 2, 24)
    models = []
    for profiled in (False, True):
        model = zoo.seed_model(2, input_shape=(12, 12, 1), seed=1)
        model.compile("adam", "sparse_categorical_crossentropy")
        model.train_on_batch(x[:8], y[:8])                          # optimizer state exists
        if profiled:
            tc.profile(model, x, y, batch_size=8, steps=3, measure_peak=False)
        model.fit(x, y, epochs=1, batch_size=8, verbose=0)
        models.append(model.get_weights())
    for a, b in zip(*models):
        np.testing.assert_array_equal(a, b)


def test_profile_errors():
    model = zoo.seed_model(2, input_shape=(12, 12, 1), seed=1)
    x, y = np.zeros((10, 12, 12, 1), np.float32), np.zeros(10, int)
    with pytest.raises(RuntimeError, match="compile"):
        tc.profile(model, x, y)
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="at least one full batch"):
        tc.profile(model, x, y, batch_size=32)
    with pytest.raises(ValueError, match="batch_size"):
        tc.profile(model, x, y, batch_size=0)
    with pytest.raises(ValueError, match="samples"):
        tc.profile(model, x, y[:5], batch_size=4)
    with pytest.raises(TypeError, match="Sequential"):
        tc.profile("model", x, y)


@pytest.mark.slow
def test_bench_cli_on_real_data(medmnist_dir, capsys):
    from tinycnn.cli import main
    assert main(["bench", "--profile", "--steps", "3", "--batch-size", "64", "--data", str(medmnist_dir)]) == 0
    out = capsys.readouterr().out
    assert "conv2d+max_pool2d (Conv2D+MaxPool2D)" in out and "matrix products" in out
    assert main(["bench", "--repeats", "1", "--model", "deeper", "--data", str(medmnist_dir)]) == 0
    out = capsys.readouterr().out
    assert "training epoch" in out and "images/s" in out


@pytest.mark.slow
@pytest.mark.keras
def test_bench_cli_against_keras(medmnist_dir, capsys):
    try:
        import keras  # noqa: F401
    except ImportError:
        missing("Keras (the [keras] extra)")
    from tinycnn.cli import main
    assert main(["bench", "--keras", "--repeats", "1", "--batch-size", "128", "--data", str(medmnist_dir)]) == 0
    out = capsys.readouterr().out
    assert "keras" in out and "ratio tinycnn/Keras" in out


# -- every kernel equals its functional twin -------------------------------------------------------

TWIN_TOL = 1e-12          # float64: the same sums, in another order (chunks, the bias inside the product)


@settings(max_examples=40)
@given(case=window_case(), filters=st.integers(1, 4), bias=st.booleans(), seed=seeds)
def test_conv2d_kernel_equals_functional(case, filters, bias, seed):
    n, h, w, c, kernel, strides, padding = case
    rng = np.random.default_rng(seed)
    x, k = rng.standard_normal((n, h, w, c)), rng.standard_normal((*kernel, c, filters))
    b = rng.standard_normal(filters) if bias else None
    (y, cache), (y_k, cache_k) = F.conv2d_forward(x, k, b, strides, padding), K.conv2d_forward(x, k, b, strides, padding)
    assert y_k.shape == y.shape and rel_error(y_k, y) < TWIN_TOL
    dy = rng.standard_normal(y.shape)
    for mine, theirs in zip(K.conv2d_backward(dy, cache_k), F.conv2d_backward(dy, cache)):
        assert (mine is None) == (theirs is None)
        if mine is not None:
            assert mine.shape == theirs.shape and rel_error(mine, theirs) < TWIN_TOL
    no_dx = K.conv2d_backward(dy, cache_k, input_grad=False)
    assert no_dx[0] is None and rel_error(no_dx[1], F.conv2d_backward(dy, cache)[1]) < TWIN_TOL


@settings(max_examples=40)
@given(case=window_case(), ties=st.booleans(), seed=seeds)
def test_maxpool2d_kernel_equals_functional_with_ties(case, ties, seed):
    n, h, w, c, pool_size, strides, padding = case
    rng = np.random.default_rng(seed)
    x = rng.integers(-1, 2, (n, h, w, c)).astype(np.float64) if ties else rng.standard_normal((n, h, w, c))
    (y, cache), (y_k, cache_k) = (F.maxpool2d_forward(x, pool_size, strides, padding),
                                  K.maxpool2d_forward(x, pool_size, strides, padding))
    np.testing.assert_array_equal(y_k, y)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(K.maxpool2d_backward(dy, cache_k), F.maxpool2d_backward(dy, cache), rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_relu_and_updates_kernels_equal_functional(dtype, cores):
    rng = np.random.default_rng(2)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in ((7, 5), (5, 3), (3,)))
    (y, cache), (y_k, cache_k) = F.dense_forward(x, w, b), K.dense_forward(x, w, b)
    np.testing.assert_allclose(y_k, y, rtol=1e-6)
    dy = rng.standard_normal(y.shape).astype(dtype)
    for mine, theirs in zip(K.dense_backward(dy, cache_k), F.dense_backward(dy, cache)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-6)
    z = rng.standard_normal((4, 9)).astype(dtype)
    z[0, 0] = 0
    (r, r_cache), (r_k, r_cache_k) = F.relu_forward(z), K.relu_forward(z)
    np.testing.assert_array_equal(r_k, r)
    np.testing.assert_array_equal(K.relu_backward(z, r_cache_k), F.relu_backward(z, r_cache))
    # the optimizer updates: bit for bit, the kernels in place
    for momentum, nesterov in ((0.0, False), (0.9, False), (0.9, True)):
        p, g, v = (rng.standard_normal(50).astype(dtype) for _ in range(3))
        expected = F.sgd_update(p, g, v, 0.05, momentum, nesterov)
        got = K.sgd_update(p.copy(), g, v.copy(), 0.05, momentum, nesterov)
        for a, e in zip(got, expected):
            np.testing.assert_array_equal(a, e)
    p, g, m, v = (rng.standard_normal(300).astype(dtype) for _ in range(4))
    v = np.abs(v)
    for t in (1, 2, 50):
        expected = F.adam_update(p, g, m, v, t, 0.01)
        got = K.adam_update(p.copy(), g, m.copy(), v.copy(), t, 0.01)
        for a, e in zip(got, expected):
            np.testing.assert_array_equal(a, e)
        expected = F.adamw_update(p, g, m, v, t, 0.01, 0.004)
        got = K.adamw_update(p.copy(), g, m.copy(), v.copy(), t, 0.01, 0.004)
        for a, e in zip(got, expected):
            np.testing.assert_array_equal(a, e)


def test_a_kernel_cache_lives_until_the_next_forward_with_the_same_weights():
    """The padded input is kept per layer (by its weights array): two layers never share it."""
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 5, 5, 1)), rng.standard_normal((2, 5, 5, 1))
    k1, k2 = rng.standard_normal((3, 3, 1, 2)), rng.standard_normal((3, 3, 1, 2))
    _, cache1 = K.conv2d_forward(x1, k1, None, 1, "same")
    _, cache2 = K.conv2d_forward(x2, k2, None, 1, "same")        # another layer's forward in between
    dy = rng.standard_normal((2, 5, 5, 2))
    _, dw1, _ = K.conv2d_backward(dy, cache1)
    _, expected, _ = F.conv2d_backward(dy, F.conv2d_forward(x1, k1, None, 1, "same")[1])
    assert rel_error(dw1, expected) < TWIN_TOL
