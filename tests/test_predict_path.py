"""predict's fused forward pass (``_dense.forward_rows_py``): the same bits
as the per-layer path it replaces (the layers' ``forward`` and the loss's
link), a numpy reference, and the per-layer path's errors where it declines."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import descend as dn
from descend import _threads
from descend._dense import forward_rows_py
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
