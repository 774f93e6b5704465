"""The first layer's sparse kernels (inputs that are mostly zeros, as MNIST's
pixels) against plain numpy float64 references, and the fused epoch with
them against the dense path.

The kernels skip the zero entries of the input; every result must equal the
dense product up to the order of the sums.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import descend as dn
from descend import _sparse, training
from descend._train import EpochRunner
from descend.plans import DEFAULT_SPARSE_DENSITY as SPARSE_DENSITY

FAST = settings(max_examples=40, deadline=None)
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}
IDENTITY, SIGMOID, TANH, RELU = 0, 1, 2, 3


def sparse_matrix(rng, n, d, density, dtype):
    """Random values with about `density` of them non-zero; one all-zero row
    and one all-non-zero row where there is room (the kernels' edge cases)."""
    x = rng.normal(size=(n, d))
    x[rng.random((n, d)) >= density] = 0
    if n >= 2:
        x[0] = 0
        x[1] = rng.normal(size=d) + 3.0
    return x.astype(dtype)


@pytest.fixture(params=["avx512", "avx2", "portable"], autouse=True)
def row_loops(request):
    """Every test runs with each version of the row loops the CPU has: the
    AVX-512 ones, the AVX2 + FMA ones and the portable ones."""
    widest = _sparse._use_isa("avx512")
    if _sparse._use_isa(request.param) != request.param:
        _sparse._use_isa(widest)
        pytest.skip(f"this CPU has no {request.param}")
    yield
    _sparse._use_isa(widest)


shapes = st.tuples(st.integers(1, 19), st.integers(1, 23), st.integers(1, 21))
densities = st.sampled_from([0.0, 0.1, 0.3, 0.7, 1.0])
dtypes = st.sampled_from([np.float32, np.float64])
seeds = st.integers(0, 2**32 - 1)


@FAST
@given(shape=shapes, density=densities, dtype=dtypes, seed=seeds)
def test_nonzero_entries_lists_the_non_zero_columns_in_order(shape, density, dtype, seed):
    n, d, _ = shape
    x = sparse_matrix(np.random.default_rng(seed), n, d, density, dtype)
    index, value, count = _sparse.nonzero_entries_py(x)
    for i in range(n):
        columns = np.flatnonzero(x[i])
        assert count[i] == len(columns)
        np.testing.assert_array_equal(index[i, :count[i]], columns)
        np.testing.assert_array_equal(value[i, :count[i]], x[i, columns])


@FAST
@given(shape=shapes, density=densities, dtype=dtypes, seed=seeds,
       activation=st.sampled_from([IDENTITY, SIGMOID, TANH, RELU]), bias=st.booleans())
def test_sparse_forward_equals_the_dense_product(shape, density, dtype, seed, activation,
                                                 bias):
    n, d, k = shape
    rng = np.random.default_rng(seed)
    x = sparse_matrix(rng, n, d, density, dtype)
    w = rng.normal(size=(d, k)).astype(dtype)
    b = rng.normal(size=k).astype(dtype) if bias else None
    z = np.full((n, k), np.nan, dtype)
    a = np.full((n, k), np.nan, dtype)
    _sparse.sparse_forward_py(x, w, b, z, a, activation, 0.0)
    ref = x.astype(np.float64) @ w.astype(np.float64)
    if bias:
        ref += b
    act = {IDENTITY: lambda v: v, SIGMOID: lambda v: 1 / (1 + np.exp(-v)),
           TANH: np.tanh, RELU: lambda v: np.maximum(v, 0)}[activation]
    scale = 1 + np.abs(x).sum(axis=1, keepdims=True) * np.abs(w).max()
    np.testing.assert_allclose(z / scale, ref / scale, **TOL[dtype])
    np.testing.assert_allclose(a / scale, act(ref) / scale, **TOL[dtype])


@FAST
@given(shape=shapes, density=densities, dtype=dtypes, seed=seeds,
       scale=st.sampled_from([1.0, -0.01, 2.5]), data=st.data())
def test_sparse_grad_kernel_adds_the_rows_of_x_transpose_dz(shape, density, dtype, seed,
                                                            scale, data):
    n, d, k = shape
    rng = np.random.default_rng(seed)
    x = sparse_matrix(rng, n, d, density, dtype)
    dz = rng.normal(size=(n, k)).astype(dtype)
    out = rng.normal(size=(d, k)).astype(dtype)
    begin = data.draw(st.integers(0, d))
    end = data.draw(st.integers(begin, d))
    expected = out.astype(np.float64)
    expected[begin:end] += scale * (x.astype(np.float64).T @ dz)[begin:end]
    untouched = out.copy()
    _sparse.sparse_grad_kernel_py(x, dz, out, begin, end, scale)
    norm = 1 + np.abs(expected).max()
    np.testing.assert_allclose(out / norm, expected / norm, **TOL[dtype])
    # rows outside [begin, end) are not written at all
    np.testing.assert_array_equal(out[:begin], untouched[:begin])
    np.testing.assert_array_equal(out[end:], untouched[end:])


@FAST
@given(shape=shapes, density=densities, dtype=dtypes, seed=seeds)
def test_sparse_forward_gives_each_row_the_bits_of_that_row_alone(shape, density, dtype,
                                                                  seed):
    """Rows go four at a time where the CPU has the four-row loop: each row
    still gets the one-row loop's sums, in the same order."""
    n, d, k = shape
    rng = np.random.default_rng(seed)
    x = sparse_matrix(rng, n, d, density, dtype)
    w = rng.normal(size=(d, k)).astype(dtype)
    z = np.empty((n, k), dtype)
    _sparse.sparse_forward_py(x, w, None, z, z, IDENTITY, 0.0)
    for i in range(n):
        alone = np.empty((1, k), dtype)
        _sparse.sparse_forward_py(x[i:i + 1], w, None, alone, alone, IDENTITY, 0.0)
        np.testing.assert_array_equal(z[i], alone[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [127, 300])
def test_sparse_forward_rows_keep_their_bits_in_any_batch_order(dtype, n):
    """Rows go four at a time where the CPU has the four-row loop: each
    row of z is still that row's own sum, written to its own place,
    whatever rows share its four and in whatever order the batch has them
    (n: rows left over after the fours; zero prefixes of every length, so
    that the four rows' unions differ)."""
    rng = np.random.default_rng(13)
    d, k = 70, 37
    x = sparse_matrix(rng, n, d, 0.3, dtype)
    # rows that start at every column, zero prefixes of random lengths
    x[2:, :] *= np.arange(d)[None, :] >= rng.integers(0, d, size=(n - 2, 1))
    w = rng.normal(size=(d, k)).astype(dtype)
    b = rng.normal(size=k).astype(dtype)
    z, a = np.empty((n, k), dtype), np.empty((n, k), dtype)
    _sparse.sparse_forward_py(x, w, b, z, a, RELU, 0.0)
    permutation = rng.permutation(n)
    z_permuted, a_permuted = np.empty((n, k), dtype), np.empty((n, k), dtype)
    _sparse.sparse_forward_py(np.ascontiguousarray(x[permutation]), w, b, z_permuted,
                              a_permuted, RELU, 0.0)
    np.testing.assert_array_equal(z_permuted, z[permutation])
    np.testing.assert_array_equal(a_permuted, a[permutation])
    for i in range(0, n, 7):
        alone, alone_a = np.empty((1, k), dtype), np.empty((1, k), dtype)
        _sparse.sparse_forward_py(x[i:i + 1], w, b, alone, alone_a, RELU, 0.0)
        np.testing.assert_array_equal(z[i], alone[0])
        np.testing.assert_array_equal(a[i], alone_a[0])
    expected = x.astype(np.float64) @ w.astype(np.float64) + b
    np.testing.assert_allclose(z, expected, **TOL[dtype])
    np.testing.assert_array_equal(a, np.maximum(z, 0))


@FAST
@given(shape=shapes, density=densities, dtype=dtypes, seed=seeds,
       scale=st.sampled_from([1.0, -0.01, 2.5]))
def test_sparse_grad_kernel_row_r_is_the_forward_product_of_column_r(shape, density, dtype,
                                                                     seed, scale):
    """Kernel rows go four at a time (one load of a row of dz serves four):
    row r of scale * x^T . dz still has the bits of the forward product of
    the row vector scale * x[:, r] with dz (the same sum, in sample order)."""
    n, d, k = shape
    rng = np.random.default_rng(seed)
    x = sparse_matrix(rng, n, d, density, dtype)
    dz = rng.normal(size=(n, k)).astype(dtype)
    out = np.zeros((d, k), dtype)
    _sparse.sparse_grad_kernel_py(x, dz, out, 0, d, scale)
    for r in range(d):
        column = np.ascontiguousarray((dtype(scale) * x[:, r])[None, :])
        row = np.empty((1, k), dtype)
        _sparse.sparse_forward_py(column, dz, None, row, row, IDENTITY, 0.0)
        np.testing.assert_array_equal(out[r], row[0])


@FAST
@given(shape=shapes, density=densities, dtype=dtypes, seed=seeds)
def test_update_rows_is_the_sgd_step_on_the_rows_of_non_zero_inputs(shape, density, dtype,
                                                                      seed):
    # the per-sample path's update: w[i] += (scale x_i) dz where x_i != 0, one
    # fused multiply-add per element (portable: the product rounded first)
    _, d, k = shape
    rng = np.random.default_rng(seed)
    x = sparse_matrix(rng, 1, d, density, dtype)[0]
    dz = rng.normal(size=k).astype(dtype)
    w = rng.normal(size=(d, k)).astype(dtype)
    out = w.copy()
    _sparse.update_rows_py(x, -0.05, dz, out)
    step = (dtype(-0.05) * x).astype(np.float64)[:, None] * dz.astype(np.float64)
    exact = w.astype(np.float64) + step
    # rows of zero inputs are not touched at all
    np.testing.assert_array_equal(out[x == 0], w[x == 0])
    # within the rounding of the terms: one (fma) or two (portable) roundings
    bound = 2 * np.finfo(dtype).eps * (np.abs(w) + np.abs(step))
    assert np.all(np.abs(out - exact) <= bound)


def test_update_rows_rejects_bad_shapes():
    x, dz = np.ones(3), np.ones(2)
    with pytest.raises(ValueError, match=r"w has shape \(2, 2\), expected \(3, 2\)"):
        _sparse.update_rows_py(x, 1.0, dz, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="must not be empty"):
        _sparse.update_rows_py(np.ones(0), 1.0, np.ones(0), np.zeros((0, 0)))


def test_sparse_kernels_reject_bad_shapes_and_ranges():
    x = np.zeros((3, 4))
    with pytest.raises(ValueError, match="w has shape"):
        _sparse.sparse_forward_py(x, np.zeros((5, 2)), None, np.zeros((3, 2)),
                                  np.zeros((3, 2)), RELU, 0.0)
    with pytest.raises(ValueError, match="activation code"):
        _sparse.sparse_forward_py(x, np.zeros((4, 2)), None, np.zeros((3, 2)),
                                  np.zeros((3, 2)), 9, 0.0)
    with pytest.raises(ValueError, match=r"rows \[2, 5\)"):
        _sparse.sparse_grad_kernel_py(x, np.zeros((3, 2)), np.zeros((4, 2)), 2, 5, 1.0)
    with pytest.raises(ValueError, match="dz has 2 rows"):
        _sparse.sparse_grad_kernel_py(x, np.zeros((2, 2)), np.zeros((4, 2)), 0, 4, 1.0)
    with pytest.raises(ValueError, match="at least one row"):
        _sparse.nonzero_entries_py(np.zeros((0, 4)))
    with pytest.raises(TypeError, match="'w' must not be None"):
        _sparse.sparse_forward_py(x, None, None, np.zeros((3, 2)), np.zeros((3, 2)), RELU, 0.0)
    with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
        _sparse.sparse_grad_kernel_py(x, np.zeros((3, 2)), np.zeros((4, 2)), 0.5, 2, 1.0)
    with pytest.raises(ValueError, match="must lie in"):
        _sparse.sparse_grad_kernel_py(x, np.zeros((3, 2)), np.zeros((4, 2)), 0, 2**40, 1.0)


# ---------------------------------------------------------------------------
# the fused epoch: sparse first layer against the dense one
# ---------------------------------------------------------------------------
OPTIMIZERS = {
    "sgd": lambda: dn.optimizers.SGD(0.05),
    "sgd_decay_l2": lambda: dn.optimizers.SGD(0.05, weight_decay=0.01),
    "adam": lambda: dn.optimizers.Adam(0.01),
    "momentum_clipnorm": lambda: dn.optimizers.SGD(0.05, momentum=0.9, clipnorm=0.5),
}


def _runner(X, y, optimizer, batch_size, n_threads, sparse_input, dtype, l2=0.0):
    """An EpochRunner over a fresh 3-layer net, and the net holding its weights."""
    net = dn.Sequential([dn.Dense(70, activation="relu",
                                  kernel_regularizer=dn.regularizers.l2(l2) if l2 else None),
                         dn.Dense(9, activation="tanh"), dn.Dense(3)],
                        input_dim=X.shape[1], dtype=dtype, seed=5)
    net.compile(loss="softmax_cross_entropy", optimizer=OPTIMIZERS[optimizer]())
    net.build(X.shape[1])
    net.optimizer.build(net._params())
    runner = EpochRunner(X, None, y, training.runner_specs(net), net.loss_.code,
                         net.optimizer.kernel_config(), *net.optimizer.clip_settings(),
                         batch_size, n_threads, sparse_input=sparse_input)
    return runner, net


def _train(X, y, optimizer, batch_size, n_threads, sparse_input, dtype="float64", l2=0.0):
    runner, net = _runner(X, y, optimizer, batch_size, n_threads, sparse_input, dtype, l2)
    assert runner.sparse_input == sparse_input
    order = np.random.default_rng(0).permutation(len(X)).astype(np.intp)
    step = 0
    for epoch in range(2):
        result = runner.run_epoch(order, net.optimizer.learning_rate,
                                  net.optimizer.weight_decay, step, epoch)
        step = result["step"]
        assert result["finite"]
    return net.get_weights(), result


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("batch_size", [3, 64, 150])   # 1, several and large blocks
def test_sparse_and_dense_first_layer_train_the_same(optimizer, batch_size):
    X = sparse_matrix(np.random.default_rng(1), 301, 130, 0.2, np.float64)
    y = np.random.default_rng(2).integers(0, 3, len(X)).astype(np.int32)
    l2 = 1e-3 if optimizer == "sgd_decay_l2" else 0.0
    sparse, sparse_result = _train(X, y, optimizer, batch_size, 2, True, l2=l2)
    dense, dense_result = _train(X, y, optimizer, batch_size, 2, False, l2=l2)
    for a, b in zip(sparse, dense):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert sparse_result["loss_sum"] == pytest.approx(dense_result["loss_sum"], rel=1e-10)
    assert sparse_result["n_correct"] == dense_result["n_correct"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_size", [8, 200])
def test_sparse_first_layer_gives_the_same_bits_for_any_thread_count(dtype, batch_size):
    X = sparse_matrix(np.random.default_rng(3), 400, 150, 0.15, dtype)
    y = np.random.default_rng(4).integers(0, 3, len(X)).astype(np.int32)
    one, _ = _train(X, y, "adam", batch_size, 1, True, dtype)
    two, _ = _train(X, y, "adam", batch_size, 2, True, dtype)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_the_sparse_path_is_chosen_by_the_density_of_X():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 50).astype(np.int32)
    sparse_X = sparse_matrix(rng, 50, 40, SPARSE_DENSITY / 2, np.float64)
    dense_X = sparse_matrix(rng, 50, 40, 0.9, np.float64)
    assert _runner(sparse_X, y, "sgd", 10, 1, None, "float64")[0].sparse_input
    assert not _runner(dense_X, y, "sgd", 10, 1, None, "float64")[0].sparse_input
    # dropout on the input needs the dense rows: never sparse
    net = dn.Sequential([dn.Dropout(0.2), dn.Dense(4), dn.Dense(3)], input_dim=40,
                        dtype="float64", seed=0)
    net.compile(loss="softmax_cross_entropy", optimizer="sgd")
    net.build(40)
    net.optimizer.build(net._params())
    runner = EpochRunner(sparse_X, None, y, training.runner_specs(net), net.loss_.code,
                         net.optimizer.kernel_config(), 0.0, 0.0, 0.0, 10, 1,
                         sparse_input=True)
    assert not runner.sparse_input


def test_fit_on_mostly_zero_inputs_equals_the_per_layer_path():
    """Through the public API: fit (which picks the sparse first layer for these
    inputs) against train_on_batch (dense kernels), Adam, batch 16."""
    X = sparse_matrix(np.random.default_rng(6), 120, 60, 0.15, np.float64)
    y = np.random.default_rng(7).integers(0, 3, len(X))
    nets = []
    for _ in range(2):
        net = dn.Sequential([dn.Dense(33, activation="relu"), dn.Dense(3)],
                            input_dim=60, dtype="float64", seed=2, n_threads=2)
        net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.Adam(0.01))
        nets.append(net)
    nets[0].fit(X, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    for _ in range(2):
        for start in range(0, len(X), 16):
            nets[1].train_on_batch(X[start:start + 16], y[start:start + 16])
    for a, b in zip(nets[0].get_weights(), nets[1].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@FAST
@given(n=st.integers(65, 300), d=st.integers(1, 40), k=st.integers(1, 70),
       density=densities, dtype=dtypes, seed=seeds)
def test_sparse_grad_kernel_in_sample_chunks_keeps_the_bits_of_the_fma_loops(
        n, d, k, density, dtype, seed):
    # The kernel gradient walks its samples in chunks sized from the L2
    # cache (at least 64 rows): each out row's chain of FMAs continues across
    # chunks, so the AVX-512 and AVX2 loops give the unchunked bits; the
    # portable loop (four terms per pass) agrees to rounding.
    rng = np.random.default_rng(seed)
    x = sparse_matrix(rng, n, d, density, dtype)
    dz = rng.normal(size=(n, k)).astype(dtype)
    w = rng.normal(size=(d, k)).astype(dtype)
    results = []
    for chunk_bytes in (2**40, 1):        # one chunk; 64-row chunks
        previous = _sparse._set_grad_chunk_bytes(chunk_bytes)
        try:
            out = w.copy()
            _sparse.sparse_grad_kernel_py(x, dz, out, 0, d, -0.5)
        finally:
            _sparse._set_grad_chunk_bytes(previous)
        results.append(out)
    expected = w.astype(np.float64) - 0.5 * (x.astype(np.float64).T @ dz)
    norm = 1 + np.abs(expected).max()
    np.testing.assert_allclose(results[1] / norm, expected / norm, **TOL[dtype])
    if _sparse.ISA in ("avx512", "avx2"):
        np.testing.assert_array_equal(results[1], results[0])
