"""predict's fused forward pass (``_dense.forward_rows_py``): the same bits
as the per-layer path it replaces (the layers' ``forward`` and the loss's
link), a numpy reference, and the per-layer path's errors where it declines."""
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import descend as dn
from descend import _threads, plans
from descend._dense import forward_rows_py
from descend._inference import NEVER
from descend.activations import ACTIVATIONS


def per_layer_predict(net, X):
    """The path predict took before the fused one: layer by layer, then the link."""
    output = net._output(X)
    return net.loss_.apply_link(output, 1) if net.loss_ is not None else output


def build(dtype, loss, hidden_activation, widths=(17, 9), n_in=6, n_out=3, dropout=0.0,
          use_bias=True, n_threads=2, seed=0):
    layers = []
    for width in widths:
        layers.append(dn.Dense(width, activation=hidden_activation, use_bias=use_bias))
        if dropout:
            layers.append(dn.Dropout(dropout))
    layers.append(dn.Dense(n_out))
    net = dn.Sequential(layers, input_dim=n_in, dtype=dtype, seed=seed, n_threads=n_threads)
    if loss is not None:
        net.compile(loss=loss, optimizer=dn.optimizers.SGD(0.1))
    # non-zero biases so that the bias pass is tested too
    rng = np.random.default_rng(seed + 1)
    for layer in net.dense_layers:
        if layer.bias is not None:
            layer.bias[...] = rng.normal(size=layer.bias.shape)
    return net


@settings(max_examples=40, deadline=None)
@given(dtype=st.sampled_from(["float32", "float64"]),
       loss=st.sampled_from([None, "softmax_cross_entropy", "binary_cross_entropy",
                             "mean_squared_error"]),
       activation=st.sampled_from(sorted(set(ACTIVATIONS) - {"softmax"})),
       n_rows=st.sampled_from([1, 2, 7, 255, 256, 257, 600]),
       n_threads=st.sampled_from([1, 2]), use_bias=st.booleans(),
       dropout=st.sampled_from([0.0, 0.3]), seed=st.integers(0, 2**16))
def test_predict_has_the_bits_of_the_per_layer_path(dtype, loss, activation, n_rows,
                                                   n_threads, use_bias, dropout, seed):
    net = build(dtype, loss, activation, use_bias=use_bias, dropout=dropout,
                n_threads=n_threads, seed=seed)
    X = np.random.default_rng(seed).normal(size=(n_rows, 6)).astype(dtype)
    np.testing.assert_array_equal(net.predict(X), per_layer_predict(net, X))


@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-5), ("float64", 1e-12)])
def test_predict_matches_a_numpy_forward_pass(dtype, rtol):
    net = build(dtype, "softmax_cross_entropy", "tanh", widths=(40, 30), n_in=20, n_out=5)
    X = np.random.default_rng(3).normal(size=(300, 20)).astype(dtype)
    a = X.astype(np.float64)
    dense = net.dense_layers
    for i, layer in enumerate(dense):
        a = a @ layer.kernel.astype(np.float64) + layer.bias
        if i < len(dense) - 1:
            a = np.tanh(a)
    expected = np.exp(a - a.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(net.predict(X), expected, rtol=rtol, atol=rtol * 1e-2)
    np.testing.assert_allclose(net.predict(X[:1]), expected[:1], rtol=rtol, atol=rtol * 1e-2)


def test_inputs_not_in_the_network_form_are_converted_first():
    net = build("float32", "softmax_cross_entropy", "relu")
    X = np.random.default_rng(0).normal(size=(5, 6))
    expected = per_layer_predict(net, X.astype(np.float32))
    for variant in (X, X.tolist(), np.asfortranarray(X.astype(np.float32)),
                    X.astype(np.float32)[:, ::1]):
        np.testing.assert_array_equal(net.predict(variant), expected)


def test_where_the_fused_path_declines_the_per_layer_path_raises():
    net = build("float64", "softmax_cross_entropy", "relu")
    X = np.ones((3, 6))
    X[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN|finite"):
        net.predict(X)
    with pytest.raises(ValueError, match="features"):
        net.predict(np.ones((2, 5)))
    net.dense_layers[0].kernel[0, 0] = 1e308
    with pytest.raises(FloatingPointError):
        net.predict(np.full((2, 6), 1e10))
    unbuilt = dn.Sequential([dn.Dense(3)])
    with pytest.raises(RuntimeError, match="not built"):
        unbuilt.predict(np.ones((2, 6)))


def test_forward_rows_declines_arrays_that_do_not_fit():
    """None (never a crash) for anything it cannot run on: the caller then
    takes the checked path."""
    x = np.ones((2, 4))
    w = np.ones((4, 3))
    ok = forward_rows_py(x, (w,), (None,), (0,), (0.0,), 0, 1)
    np.testing.assert_array_equal(ok, np.full((2, 3), 4.0))
    bad_calls = [
        (x.astype(np.float32), (w,), (None,), (0,), (0.0,), 0, 1),     # dtypes differ
        (x, (w[:3],), (None,), (0,), (0.0,), 0, 1),                   # shapes differ
        (x, (w,), (np.ones(2),), (0,), (0.0,), 0, 1),                 # bias length
        (x, (w,), (None,), (99,), (0.0,), 0, 1),                      # activation code
        (x, (w,), (None,), (0,), (0.0,), 7, 1),                       # link code
        (x, (w,), (None,), (0,), (0.0,), 0, 0),                       # threads
        (np.asfortranarray(np.ones((3, 4))), (w,), (None,), (0,), (0.0,), 0, 1),
        (np.ones((0, 4)), (w,), (None,), (0,), (0.0,), 0, 1),
        (x.tolist(), (w,), (None,), (0,), (0.0,), 0, 1),
        (x, (), (), (), (), 0, 1),
    ]
    for args in bad_calls:
        assert forward_rows_py(*args) is None


def test_predict_leaves_blas_threads_as_they_were():
    from threadpoolctl import threadpool_info
    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    net = build("float32", "softmax_cross_entropy", "relu")
    net.predict(np.ones((1, 6), np.float32))
    net.predict(np.ones((700, 6), np.float32))
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before
    with _threads.blas_threads(1):
        assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"} == {1}
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before


# ---- the plans of descend._inference: row loops, sparse input, dense ----

def sparse_rows(rng, n_rows, n_in, density, dtype):
    """Rows with about `density` of their entries non-zero (MNIST: 0.19)."""
    X = rng.normal(size=(n_rows, n_in))
    X[rng.random((n_rows, n_in)) >= density] = 0
    return X.astype(dtype)


@settings(max_examples=60, deadline=None)
@given(dtype=st.sampled_from(["float32", "float64"]),
       loss=st.sampled_from([None, "softmax_cross_entropy", "binary_cross_entropy",
                             "mean_squared_error"]),
       activation=st.sampled_from(["relu", "tanh", "leaky_relu", "identity"]),
       n_rows=st.sampled_from([1, 2, 3, 5, 15, 16, 17, 255, 256, 257, 600]),
       density=st.sampled_from([0.0, 0.1, 0.3, 0.5]), n_in=st.integers(1, 40),
       widths=st.lists(st.integers(1, 40), min_size=0, max_size=3),
       n_threads=st.sampled_from([1, 2]), use_bias=st.booleans(), seed=st.integers(0, 2**16))
def test_every_plan_has_the_bits_of_the_per_layer_path(dtype, loss, activation, n_rows, density,
                                                       n_in, widths, n_threads, use_bias, seed):
    net = build(dtype, loss, activation, widths=tuple(widths), n_in=n_in, use_bias=use_bias,
                n_threads=n_threads, seed=seed)
    X = sparse_rows(np.random.default_rng(seed), n_rows, n_in, density, dtype)
    np.testing.assert_array_equal(net.predict(X), per_layer_predict(net, X))


def test_the_plans_follow_size_and_density():
    from descend._inference import input_plan
    rng = np.random.default_rng(0)
    assert input_plan(np.ones((1, 784))) == "row_loops"             # one row: always
    assert input_plan(sparse_rows(rng, 10, 784, 0.19, "float32")) == "row_loops"
    assert input_plan(sparse_rows(rng, 1000, 784, 0.19, "float32")) == "sparse_input"
    assert input_plan(np.ones((10, 784))) == "dense"
    assert input_plan(np.ones((1000, 784))) == "dense"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_row_loops_give_each_row_its_own_bits(dtype):
    """The row-loop driver: the same bits for any n_threads, for each row
    alone or among others, four rows at a time (AVX-512) or one at a time."""
    from descend import _sparse
    from descend._sparse import forward_rows_sparse_py
    rng = np.random.default_rng(1)
    net = build(dtype, "softmax_cross_entropy", "relu", widths=(70, 33), n_in=50, n_out=7)
    dense = net.dense_layers
    layers = (tuple(d.kernel for d in dense), tuple(d.bias for d in dense),
              tuple(d.kernel_activation_code(i == 2, "softmax") for i, d in enumerate(dense)),
              (0.0,) * 3, 2)
    X = sparse_rows(rng, 601, 50, 0.2, dtype)
    every_layer = forward_rows_sparse_py(X, *layers, 1, 10**6)       # no GEMM at all
    for n_threads in (2, 3):
        np.testing.assert_array_equal(forward_rows_sparse_py(X, *layers, n_threads, 10**6),
                                      every_layer)
    for i in (0, 5, 599, 600):
        np.testing.assert_array_equal(forward_rows_sparse_py(X[i:i + 1], *layers, 1, 10**6)[0],
                                      every_layer[i])
    isa = _sparse.ISA
    try:
        if _sparse._use_isa("avx2") == "avx2":          # one row at a time
            np.testing.assert_array_equal(forward_rows_sparse_py(X, *layers, 2, 10**6),
                                          every_layer)
    finally:
        _sparse._use_isa(isa)
    with _threads.blas_threads(1):
        with_gemms = forward_rows_sparse_py(X, *layers, 1, 16)
        np.testing.assert_array_equal(forward_rows_sparse_py(X, *layers, 2, 16), with_gemms)
    np.testing.assert_allclose(with_gemms, every_layer, rtol=1e-4 if dtype == "float32" else 1e-12,
                               atol=1e-6)


def test_row_loops_decline_what_they_cannot_run():
    from descend._sparse import forward_rows_sparse_py
    x, w = np.ones((2, 4)), np.ones((4, 3))
    np.testing.assert_array_equal(forward_rows_sparse_py(x, (w,), (None,), (0,), (0.0,), 0, 1, 16),
                                  np.full((2, 3), 4.0))
    for args in [(x.astype(np.float32), (w,), (None,), (0,), (0.0,), 0, 1, 16),
                 (x, (w[:3],), (None,), (0,), (0.0,), 0, 1, 16),
                 (x, (w,), (None,), (0,), (0.0,), 0, 0, 16),
                 (x, (w,), (None,), (0,), (0.0,), 0, 1, 0),
                 (np.array([[1.0, np.nan, 0, 0]]), (w,), (None,), (0,), (0.0,), 0, 1, 16),
                 (x.tolist(), (w,), (None,), (0,), (0.0,), 0, 1, 16)]:
        assert forward_rows_sparse_py(*args) is None


def test_one_row_sets_no_blas_limit(monkeypatch):
    """The lean path calls no BLAS, so it leaves threadpoolctl alone."""
    net = build("float32", "softmax_cross_entropy", "relu")
    x = np.ones((1, 6), np.float32)
    expected = per_layer_predict(net, x)

    def refuse(n):
        raise AssertionError("one-row predict set a BLAS limit")
    monkeypatch.setattr(_threads._BlasLimit, "enter", refuse)
    np.testing.assert_array_equal(net.predict(x), expected)
    np.testing.assert_array_equal(net.predict_proba(x), expected)


def test_one_row_errors_are_those_of_the_checked_path():
    net = build("float32", "softmax_cross_entropy", "relu")
    with pytest.raises(ValueError, match="X .*NaN|X .*finite"):
        net.predict(np.array([[1, np.nan, 0, 0, 0, 0]], np.float32))
    with pytest.raises(ValueError, match="X has 5 features"):
        net.predict(np.ones((1, 5), np.float32))
    with pytest.raises(TypeError, match="X"):
        net.predict("not an array")
    net = build("float32", "softmax_cross_entropy", "identity")
    net.dense_layers[0].kernel[0, 0] = np.float32(3e38)
    with pytest.raises(FloatingPointError):
        net.predict(np.full((1, 6), 10, np.float32))


def test_cached_arguments_follow_the_network():
    """What predict caches per network is rebuilt when a parameter array, an
    activation, a layer or the loss is replaced."""
    net = build("float64", "softmax_cross_entropy", "relu")
    x = np.random.default_rng(0).normal(size=(1, 6))
    before = net.predict(x)
    layer = net.dense_layers[0]
    layer.kernel = layer.kernel * 2                    # a new array
    np.testing.assert_array_equal(net.predict(x), per_layer_predict(net, x))
    assert not np.array_equal(net.predict(x), before)
    layer.activation = "tanh"
    np.testing.assert_array_equal(net.predict(x), per_layer_predict(net, x))
    net.set_weights([np.zeros_like(w) for w in net.get_weights()])
    np.testing.assert_array_equal(net.predict(x), np.full((1, 3), 1 / 3))
    net.compile(loss="mean_squared_error", optimizer="sgd")       # no link now
    np.testing.assert_array_equal(net.predict(x), np.zeros((1, 3)))


@pytest.mark.parametrize("n_rows", [1, 7, 300])
def test_predict_classes_takes_the_argmax_of_the_fused_logits(n_rows):
    net = build("float32", "softmax_cross_entropy", "relu")
    X = sparse_rows(np.random.default_rng(2), n_rows, 6, 0.3, "float32")
    logits = net._output(X)
    np.testing.assert_array_equal(net.predict_classes(X), np.argmax(logits, axis=1))
    np.testing.assert_array_equal(net.predict_classes(X), np.argmax(net.predict(X), axis=1))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_non_finite_inputs_are_found_in_the_compressed_rows(dtype):
    """The row-loop driver counts NaN and inf among the first layer's
    compressed entries: in a group of four rows and in a row left over."""
    from descend._sparse import forward_rows_sparse_py
    rng = np.random.default_rng(4)
    w = rng.normal(size=(30, 5)).astype(dtype)
    for bad_value in (np.nan, np.inf, -np.inf):
        for row in (0, 5, 8):          # rows 0-7 go in groups of four on AVX-512
            X = sparse_rows(rng, 9, 30, 0.2, dtype)
            X[row, 17] = bad_value
            for gemm_min_rows in (1, 10**6):
                assert forward_rows_sparse_py(X, (w,), (None,), (0,), (0.0,), 0, 1,
                                              gemm_min_rows) is None


# ---- the thresholds: from the machine profile (descend.plans) or the defaults ----

MNIST_SHAPES = ((784, 256), (256, 128), (128, 10))


def fake_profile(row_loop_rate, break_even=0.3):
    """GEMM rates shaped like the Intel Xeon's (GFLOP/s at 4, 16, 64, 256
    rows) and the predict figures."""
    gemm = {"256": {"4": 70, "16": 40, "64": 110, "256": 130},
            "1024": {"4": 6, "16": 35, "64": 86, "256": 100}}
    return {"gemm": {"float32": gemm},
            "predict": {"float32": {"sparse_break_even": break_even,
                                    "row_loop_gflops": {"256": row_loop_rate,
                                                        "1024": row_loop_rate / 4}}}}


def test_thresholds_follow_from_the_profile():
    """The hidden layers of MNIST's net (256 x 128, 128 x 10) take the 256 x
    256 figures: GEMMs from the fewest rows from which on the GEMM rate
    beats the row loops' (70, 40, 110, 130 GFLOP/s at 4, 16, 64, 256 rows:
    against 60 GFLOP/s row loops, not from 4 rows, as 16 rows lose)."""
    from descend._inference import DEFAULTS, NEVER, thresholds_from_profile
    limits = thresholds_from_profile(fake_profile(90), MNIST_SHAPES, "float32")
    # a break-even of 30% is within the margin of the default's 35%: it holds
    assert (limits.sparse_density, limits.gemm_min_rows, limits.source) == (0.35, 64, "profile")
    assert thresholds_from_profile(fake_profile(30), MNIST_SHAPES, "float32").gemm_min_rows == 4
    assert thresholds_from_profile(fake_profile(60), MNIST_SHAPES, "float32").gemm_min_rows == 64
    assert thresholds_from_profile(fake_profile(200), MNIST_SHAPES, "float32").gemm_min_rows \
        == NEVER
    # a wide hidden layer takes the 1024 x 1024 figures: row loops at 90 / 4
    wide = ((784, 1024), (1024, 1024), (1024, 10))
    assert thresholds_from_profile(fake_profile(90), wide, "float32").gemm_min_rows == 16
    assert thresholds_from_profile(None, MNIST_SHAPES, "float32") == DEFAULTS
    assert thresholds_from_profile({"gemm": {}}, MNIST_SHAPES, "float32") == DEFAULTS
    assert DEFAULTS.gemm_min_rows == 16 and DEFAULTS.sparse_density == 0.35


@pytest.mark.parametrize("break_even, expected", [
    (0.3, 0.35),            # within the margin of the default (0.255 .. 0.353): it holds
    (0.2, 0.2 / 0.85),      # dense path 15% faster above 0.235: the limit moves down
    (0.5, 0.5 * 0.85),      # sparse path 15% faster below 0.425: the limit moves up
    (0.35, 0.35),
    (1.5, 1.0),             # sparse at every density
])
def test_the_predict_density_limit_leaves_the_default_only_beyond_the_margin(break_even,
                                                                            expected):
    """predict's density limit follows fit's rule (plans.sparse_density_threshold):
    a profile measured under load, whose break-even wanders around the
    default, does not flip inputs near it between the paths."""
    from descend._inference import thresholds_from_profile
    limits = thresholds_from_profile(fake_profile(90, break_even), MNIST_SHAPES, "float32")
    assert limits.sparse_density == pytest.approx(expected)


def test_fit_and_predict_share_the_density_rule():
    """Fit's limit at a workload is the same number as predict's from the
    same break-even, and both decide "sparse iff density <= it" exactly as
    the two-sided margin rule does, on a grid of densities and break-evens."""
    margin = plans.PLAN_MARGIN
    for break_even in np.linspace(0.05, 0.9, 35) + 0.0017:
        limit = plans.sparse_density_threshold(break_even)
        for density in np.linspace(0.0, 1.0, 101) + 0.0003:     # off the exact edges
            if density <= plans.DEFAULT_SPARSE_DENSITY:     # default sparse
                sparse = not density / break_even * (1 - margin) > 1
            else:                                           # default dense
                sparse = density / break_even < 1 - margin
            assert (density <= limit) == sparse, (break_even, density)


def rates_profile(gemm_rates, loop_rate=100.0):
    """A profile whose 256-wide GEMMs run at `gemm_rates` (GFLOP/s at 4, 16,
    64, 256 rows) and whose row loops run at `loop_rate` at every width."""
    gemm = {"256": dict(zip(("4", "16", "64", "256"), gemm_rates))}
    return {"gemm": {"float32": gemm},
            "predict": {"float32": {"sparse_break_even": 0.3,
                                    "row_loop_gflops": {"256": loop_rate}}}}


@pytest.mark.parametrize("gemm_rates, expected, without_margin", [
    # GEMMs 10-40% faster: from the default's 16 rows, not from 4 (10% is no 15%)
    ((110, 120, 130, 140), 16, 4),
    # row loops 5% faster from 16 rows up: GEMMs there still (the default), and
    # from 4 rows, where they are twice as fast
    ((200, 95, 95, 95), 4, NEVER),
    # row loops 20% faster at 256 rows: row loops everywhere
    ((200, 95, 95, 80), NEVER, NEVER),
    # row loops twice as fast at 16 rows: GEMMs from 64
    ((50, 50, 120, 130), 64, 64),
])
def test_predicts_gemm_rows_leave_the_default_only_beyond_the_margin(
        gemm_rates, expected, without_margin, monkeypatch):
    """As fit's rules: the default (GEMMs from 16 rows) holds at a block size
    unless the profile estimates the other path faster by PLAN_MARGIN (15%)
    there; GEMMs from the fewest rows from which on they hold."""
    from descend import _inference, plans
    shapes = ((784, 256), (256, 256), (256, 10))
    profile = rates_profile(gemm_rates)
    assert _inference.thresholds_from_profile(profile, shapes, "float32").gemm_min_rows == \
        expected
    monkeypatch.setattr(plans, "PLAN_MARGIN", 0.0)
    assert _inference.thresholds_from_profile(profile, shapes, "float32").gemm_min_rows == \
        without_margin
    # a net without hidden layers has no GEMMs to run from any number of rows
    assert _inference.thresholds_from_profile(profile, ((784, 10),), "float32").gemm_min_rows \
        == NEVER


@pytest.fixture
def profiled(monkeypatch):
    """Profiling on, with a fake profile; predict's thresholds worked out afresh."""
    from descend import _inference, plans
    profiles = []
    monkeypatch.setenv("DESCEND_PROFILE", "1")
    monkeypatch.setattr(plans, "machine_profile", lambda refresh=False: profiles[-1])
    monkeypatch.setattr(_inference, "_thresholds", {})
    return profiles


@pytest.mark.parametrize("row_loop_rate", [30, 90, 200])
def test_a_profiled_plan_keeps_the_bits_of_the_per_layer_path(profiled, row_loop_rate):
    """Whatever the profile decides, predict gives the per-layer path's bits;
    when the GEMMs never win, every row gets its own bits (row loops only)."""
    profiled.append(fake_profile(row_loop_rate, break_even=0.2))
    net = build("float32", "softmax_cross_entropy", "relu", widths=(256, 128), n_in=784,
                n_out=10)
    X = sparse_rows(np.random.default_rng(5), 300, 784, 0.19, "float32")
    for rows in (5, 40, 300):
        np.testing.assert_array_equal(net.predict(X[:rows]), per_layer_predict(net, X[:rows]))
    if row_loop_rate == 200:
        np.testing.assert_array_equal(net.predict(X),
                                      np.concatenate([net.predict(x[None]) for x in X]))
    # at 30% non-zero the profile's break-even (20%: GEMMs faster above 23.5%, the
    # margin) sends the first layer to GEMMs
    from descend._inference import input_plan, thresholds
    limits = thresholds(net, MNIST_SHAPES, "float32")
    assert input_plan(sparse_rows(np.random.default_rng(6), 300, 784, 0.3, "float32"),
                      limits) == "dense"
    assert input_plan(X, limits) == ("row_loops" if row_loop_rate == 200 else "sparse_input")


def test_the_thresholds_are_reported(profiled):
    from descend._config import config_info
    profiled.append(fake_profile(90))
    net = build("float32", "softmax_cross_entropy", "relu", widths=(256, 128), n_in=784,
                n_out=10)
    net.predict(sparse_rows(np.random.default_rng(0), 20, 784, 0.19, "float32"))
    section = config_info()["predict"]
    assert section["float32 sparse first layer faster below"].startswith("30%")
    assert section["last predict"] == (
        "float32, layers [(784, 256), (256, 128), (128, 10)]: sparse first layer up to 35% "
        "non-zero inputs, GEMMs for the hidden layers from 64 rows (profile)")


def test_the_real_profile_has_the_predict_figures():
    from descend import _inference, plans
    profile = plans.measure_profile()
    for dtype in ("float32", "float64"):
        figures = profile["predict"][dtype]
        assert _inference.figures_are_valid(figures)
        assert 0 < figures["sparse_break_even"] < 100
        assert set(figures["row_loop_gflops"]) == {str(w) for w in _inference.PROFILE_HIDDEN}
    broken = {**profile, "predict": {**profile["predict"], "float64": {"sparse_break_even": -1}}}
    assert not plans._figures_are_valid(broken)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_four_rows_skip_the_columns_a_row_does_not_have(dtype):
    """A row without an entry in column j gets nothing from kernel row j, even
    where that row is -inf (0 * -inf would be NaN): the masks of the four-row
    loop (AVX-512) say exactly which rows have which columns. Columns 20 (in
    the union's vector chunks) and 66 (its scalar tail) have -inf kernel rows
    and an entry in the first row of every four only: that row's outputs
    are ReLU(-inf) = 0, the other three rows' are their own."""
    from descend._sparse import forward_rows_sparse_py, sparse_forward_py
    rng = np.random.default_rng(7)
    n_in, n_out = 70, 75        # float32 and float64: strips of four vectors and a tail
    w = rng.normal(size=(n_in, n_out)).astype(dtype)
    X = np.abs(sparse_rows(rng, 64, n_in, 0.3, dtype))
    for j in (20, 66):
        w[j] = -np.inf
        X[:, j] = 0
        X[::4, j] = 1
    expected = np.empty((len(X), n_out), dtype)
    sparse_forward_py(X, w, None, expected, expected, 3, 0.0)           # 3: ReLU, row by row
    assert (expected[::4] == 0).all() and (expected[1::4] > 0).mean() > 0.3
    got = forward_rows_sparse_py(X, (w,), (None,), (3,), (0.0,), 0, 1, 10**6)
    np.testing.assert_array_equal(got, expected)


# ---- predict's thresholds pinned (net.plan, DESCEND_PLAN), recorded in plan_ and saved ----

def use_profile(profiled, profile):
    """Another machine: its profile, predict's thresholds worked out afresh."""
    from descend import _inference
    profiled.append(profile)
    _inference._thresholds.clear()


def mnist_like_net():
    return build("float32", "softmax_cross_entropy", "relu", widths=(256, 128), n_in=784,
                 n_out=10)


def test_a_pinned_plan_gives_predict_the_same_bits_whatever_the_profile(profiled):
    """Two machines: A (break-even 20%, GEMMs from 4 rows) sends 30%-dense rows
    through GEMMs, B (break-even 50%, row loops always) through the row loops,
    which round otherwise. The thresholds A used, recorded in plan_ and
    pinned, give B the bits A gave."""
    X = sparse_rows(np.random.default_rng(7), 40, 784, 0.3, "float32")
    net = mnist_like_net()
    use_profile(profiled, fake_profile(30, break_even=0.2))
    on_a = net.predict(X)
    a_density = plans.sparse_density_threshold(0.2)              # 0.2 / 0.85
    assert (net.plan_["predict_sparse_density"], net.plan_["predict_gemm_min_rows"]) == (
        a_density, 4)
    use_profile(profiled, fake_profile(200, break_even=0.5))
    on_b = net.predict(X)
    assert not np.array_equal(on_a, on_b)            # the plans round otherwise
    from descend._inference import NEVER
    assert (net.plan_["predict_sparse_density"], net.plan_["predict_gemm_min_rows"]) == (
        plans.sparse_density_threshold(0.5), NEVER)                # 0.5 * 0.85
    use_profile(profiled, fake_profile(30, break_even=0.2))
    net.predict(X[:5])
    pinned = net.pin_plan()
    assert pinned == {"predict_sparse_density": a_density, "predict_gemm_min_rows": 4}
    use_profile(profiled, fake_profile(200, break_even=0.5))
    np.testing.assert_array_equal(net.predict(X), on_a)
    from descend._config import config_info
    assert config_info()["predict"]["last predict"].endswith("from 4 rows (forced)")
    # one field pinned, the other from the profile (B's: row loops, 40 rows < NEVER)
    net.plan = {"predict_sparse_density": 0.5}
    np.testing.assert_array_equal(net.predict(X), on_b)
    assert net.plan_["predict_gemm_min_rows"] == NEVER


def pinned_pair(limits):
    return limits.sparse_density, limits.gemm_min_rows


def test_predict_pinned_by_descend_plan_and_net_plan_first(profiled, monkeypatch):
    from descend._inference import thresholds
    use_profile(profiled, fake_profile(90))
    net = mnist_like_net()
    monkeypatch.setenv("DESCEND_PLAN", "predict_sparse_density=0.125,predict_gemm_min_rows=7")
    limits = thresholds(net, MNIST_SHAPES, "float32")
    assert (limits.sparse_density, limits.gemm_min_rows, limits.source) == (0.125, 7, "forced")
    net.plan = {"predict_gemm_min_rows": 9, "predict_sparse_density": None}
    assert pinned_pair(thresholds(net, MNIST_SHAPES, "float32")) == (0.125, 9)
    monkeypatch.setenv("DESCEND_PLAN", '{"predict_sparse_density": 1}')
    assert pinned_pair(thresholds(net, MNIST_SHAPES, "float32")) == (1, 9)
    # both pinned: no profile is read (nor measured)
    from descend import _inference, plans
    _inference._thresholds.clear()
    monkeypatch.setattr(plans, "machine_profile", lambda refresh=False: 1 / 0)
    net.plan = {"predict_gemm_min_rows": 9, "predict_sparse_density": 0.0}
    assert pinned_pair(thresholds(net, MNIST_SHAPES, "float32")) == (0.0, 9)


def test_fit_records_predict_thresholds_and_ignores_them_for_its_own_plan(profiled,
                                                                          monkeypatch):
    use_profile(profiled, fake_profile(90))
    from descend import plans
    monkeypatch.setattr(plans, "plan_for", lambda workload, profile, forced: plans.Plan(
        True, 4, (64,) * len(workload.layer_shapes), "forced" if forced else "profile"))
    net = mnist_like_net()
    net.plan = {"predict_gemm_min_rows": 3}
    X = sparse_rows(np.random.default_rng(8), 64, 784, 0.19, "float32")
    net.fit(X, np.arange(64) % 10, epochs=1, batch_size=32, verbose=0)
    # the fit's own fields came from the profile; predict's are recorded beside them,
    # one pinned, the other from the profile
    assert net.plan_["source"] == "fit: profile, predict: forced+profile"
    assert (net.plan_["predict_sparse_density"], net.plan_["predict_gemm_min_rows"]) == (0.35, 3)


@pytest.mark.parametrize("field, value, expected", [
    ("predict_sparse_density", 1.5, r"a number in \[0, 1\] or None, got 1.5"),
    ("predict_sparse_density", -0.1, r"a number in \[0, 1\] or None, got -0.1"),
    ("predict_sparse_density", float("nan"), r"a number in \[0, 1\] or None, got nan"),
    ("predict_sparse_density", "0.3", r"a number in \[0, 1\] or None, got '0.3'"),
    ("predict_sparse_density", True, r"a number in \[0, 1\] or None, got True"),
    ("predict_gemm_min_rows", 0, r"an int in \[1, 2147483647\] or None, got 0"),
    ("predict_gemm_min_rows", 2**31, r"an int in \[1, 2147483647\] or None, got 2147483648"),
    ("predict_gemm_min_rows", 2.0, r"an int in \[1, 2147483647\] or None, got 2.0"),
    ("predict_gemm_min_rows", False, r"an int in \[1, 2147483647\] or None, got False"),
])
def test_bad_predict_fields_are_refused_naming_them(profiled, field, value, expected):
    use_profile(profiled, fake_profile(90))
    net = mnist_like_net()
    X = sparse_rows(np.random.default_rng(9), 5, 784, 0.19, "float32")
    net.predict(X)
    recorded = dict(net.plan_)
    net.plan = {field: value}
    with pytest.raises(ValueError, match=rf"^plan\['{field}'\] must be {expected}$"):
        net.predict(X)
    assert net.plan_ == recorded                    # nothing recorded
    with pytest.raises(ValueError, match=rf"^plan\['{field}'\] must be {expected}$"):
        net.pin_plan({field: value})


@pytest.mark.parametrize("text, expected", [
    ("predict_sparse_density=2", r"^DESCEND_PLAN\['predict_sparse_density'\] must be a number"),
    ("predict_sparse_density=dense", r"got 'dense'$"),
    ("predict_gemm_min_rows=0", r"^DESCEND_PLAN\['predict_gemm_min_rows'\] must be an int"),
    ("predict_gemm_min_rows=1,predict_gemm_min_rows=2", r"more than once"),
    ('{"predict_gemm_min_rows": 1.5}', r"^DESCEND_PLAN\['predict_gemm_min_rows'\] must be"),
    ("predict_rows=4", r"^DESCEND_PLAN: expected name=value with a name among"),
])
def test_bad_predict_fields_in_descend_plan_are_refused(profiled, monkeypatch, text, expected):
    use_profile(profiled, fake_profile(90))
    net = mnist_like_net()
    monkeypatch.setenv("DESCEND_PLAN", text)
    with pytest.raises(ValueError, match=expected):
        net.predict(sparse_rows(np.random.default_rng(9), 5, 784, 0.19, "float32"))


def test_the_predict_thresholds_come_back_from_a_file(profiled, tmp_path):
    use_profile(profiled, fake_profile(30, break_even=0.2))
    net = mnist_like_net()
    X = sparse_rows(np.random.default_rng(10), 40, 784, 0.3, "float32")
    on_a = net.predict(X)
    net.pin_plan()
    net.save(tmp_path / "m.npz")
    use_profile(profiled, fake_profile(200, break_even=0.5))
    loaded = dn.load(tmp_path / "m.npz")
    assert loaded.plan == {"predict_sparse_density": plans.sparse_density_threshold(0.2),
                           "predict_gemm_min_rows": 4}
    assert loaded.plan_ == net.plan_
    np.testing.assert_array_equal(loaded.predict(X), on_a)
    state = loaded.state_dict()
    assert state["plan"]["pinned"] == loaded.plan


# ---------------------------------------------------------------- Keras's keywords
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_size", [1, 7, 256, 600, 10_000])
def test_predict_batch_size_runs_each_chunk_as_a_predict_of_its_own(dtype, batch_size,
                                                                     tmp_path):
    net = build(dtype, "softmax_cross_entropy", "relu", widths=(300, 40), n_in=50)
    X = np.random.default_rng(5).normal(size=(600, 50)).astype(dtype)
    chunks = np.concatenate([net.predict(X[s:s + batch_size])
                             for s in range(0, len(X), batch_size)])
    np.testing.assert_array_equal(net.predict(X, batch_size=batch_size), chunks)
    np.testing.assert_allclose(net.predict(X, batch_size=batch_size), net.predict(X),
                               rtol=1e-5 if dtype == "float32" else 1e-12)
    on_disk = np.lib.format.open_memmap(tmp_path / "X.npy", "w+", dtype, X.shape)
    on_disk[...] = X                        # (read in chunks by the per-layer path)
    np.testing.assert_array_equal(net.predict(on_disk, batch_size=batch_size), chunks)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_classes", "evaluate"])
def test_batch_size_sets_the_rows_of_each_forward_pass(method, monkeypatch):
    from descend import _inference
    seen = []
    original = _inference.input_plan
    monkeypatch.setattr(_inference, "input_plan",
                        lambda part, limits: seen.append(len(part)) or original(part, limits))
    net = build("float64", "softmax_cross_entropy", "tanh")
    X = np.random.default_rng(6).normal(size=(25, 6))
    args = (X, np.arange(25) % 3) if method == "evaluate" else (X,)
    getattr(net, method)(*args, batch_size=10)
    assert seen == [10, 10, 5]


def test_evaluate_batch_size_gives_the_scores_up_to_rounding():
    net = build("float64", "softmax_cross_entropy", "relu", widths=(30,))
    X = np.random.default_rng(7).normal(size=(100, 6))
    y = np.arange(100) % 3
    whole, chunked = net.evaluate(X, y), net.evaluate(X, y, batch_size=3)
    assert whole.keys() == chunked.keys()
    for key in whole:
        assert chunked[key] == pytest.approx(whole[key], rel=1e-12)


@pytest.mark.parametrize("verbose", [1, 2, True])
def test_verbose_evaluate_and_predict_print_one_line(verbose, capsys):
    net = build("float64", "softmax_cross_entropy", "tanh")
    X = np.random.default_rng(8).normal(size=(40, 6))
    scores = net.evaluate(X, np.arange(40) % 3, verbose=verbose)
    net.predict(X, verbose=verbose)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"evaluate  loss {scores['loss']:.4f}  "
                               f"accuracy {scores['accuracy']:.4f}  40 samples  ")
    assert lines[1].startswith("predict  40 samples  ")


@pytest.mark.parametrize("verbose", [np.int64(1), np.uint8(2)])
def test_numpy_integer_verbose_counts_as_its_value(verbose, capsys):
    """verbose=np.int64(1) was a TypeError ("got np.int64(1)"), while
    batch_size=np.int64(5) and verbose=np.bool_(True) were taken."""
    net = build("float64", "softmax_cross_entropy", "tanh")
    X = np.random.default_rng(8).normal(size=(40, 6))
    net.evaluate(X, np.arange(40) % 3, verbose=verbose)
    net.predict(X, verbose=verbose)
    net.predict(X, verbose=np.int64(0))
    assert len(capsys.readouterr().out.splitlines()) == 2
    with pytest.raises(ValueError, match="verbose must be a bool or one of 0, 1, 2, 'auto', got 3"):
        net.predict(X, verbose=np.int64(3))


@pytest.mark.parametrize("verbose", [0, False])
def test_silent_evaluate_and_predict_print_nothing(verbose, capsys):
    net = build("float64", "softmax_cross_entropy", "tanh")
    X = np.random.default_rng(8).normal(size=(40, 6))
    net.evaluate(X, np.arange(40) % 3, verbose=verbose)
    net.predict(X, verbose=verbose)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("keywords, error, expected", [
    ({"batch_size": 0}, ValueError, "batch_size must be an int >= 1, got 0"),
    ({"batch_size": 2.5}, TypeError, "batch_size must be an int >= 1, got 2.5"),
    ({"batch_size": True}, TypeError, "batch_size must be an int >= 1, got True"),
    ({"verbose": 3}, ValueError, "verbose must be a bool or one of 0, 1, 2, 'auto', got 3"),
    ({"verbose": "silent"}, ValueError,
     "verbose must be a bool or one of 0, 1, 2, 'auto', got 'silent'"),
])
@pytest.mark.parametrize("method", ["predict", "predict_proba", "evaluate"])
def test_bad_keras_keywords_are_refused_before_any_work(method, keywords, error, expected,
                                                       capsys):
    net = build("float64", "softmax_cross_entropy", "tanh")
    X = np.random.default_rng(9).normal(size=(5, 6))
    args = (X, np.arange(5) % 3) if method == "evaluate" else (X,)
    with pytest.raises(error, match=re.escape(expected)):
        getattr(net, method)(*args, **keywords)
    assert capsys.readouterr().out == ""
