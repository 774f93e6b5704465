"""The compiled kernels against plain numpy float64 references.

Every reference here is written out with numpy (and ``math.erf``) in float64,
independently of descend's own code; the kernels run in float32 and float64
on random shapes (batch 1 and odd sizes included). Tolerances are per dtype:
float64 results must agree to ~1e-12 relative, float32 to ~1e-5.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from descend import _blas, _dense, _losses, _optim, _train
from descend._contract import Activation, Loss, OptimizerKind

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

DTYPES = [np.float32, np.float64]
# rtol, and atol per unit of the operands' magnitude
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}
FAST = settings(max_examples=25, deadline=None)

dims = st.integers(min_value=1, max_value=17)      # 1 and odd sizes included
seeds = st.integers(min_value=0, max_value=2**32 - 1)
dtypes = st.sampled_from(DTYPES)

IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, SOFTPLUS, GELU = Activation
ALPHA = {LEAKY_RELU: 0.01, ELU: 1.0}


def _blas_one_thread():
    """BLAS on one thread while OpenMP threads run (as descend does)."""
    if threadpool_limits is None:  # pragma: no cover
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


# ---------------------------------------------------------------------------
# numpy float64 references
# ---------------------------------------------------------------------------
_erf = np.vectorize(math.erf, otypes=[np.float64])


def ref_act(z, code, alpha):
    z = np.asarray(z, dtype=np.float64)
    if code == IDENTITY:
        return z.copy()
    if code == SIGMOID:
        return 1.0 / (1.0 + np.exp(-z))
    if code == TANH:
        return np.tanh(z)
    if code == RELU:
        return np.where(z > 0, z, 0.0)
    if code == LEAKY_RELU:
        return np.where(z > 0, z, alpha * z)
    if code == ELU:
        return np.where(z > 0, z, alpha * (np.exp(np.minimum(z, 0)) - 1))
    if code == SOFTPLUS:
        return np.log(1.0 + np.exp(z))
    if code == GELU:
        return 0.5 * z * (1 + _erf(z / math.sqrt(2)))
    raise AssertionError(code)


def ref_dact(z, code, alpha):
    z = np.asarray(z, dtype=np.float64)
    if code == IDENTITY:
        return np.ones_like(z)
    if code == SIGMOID:
        s = 1.0 / (1.0 + np.exp(-z))
        return s * (1 - s)
    if code == TANH:
        return 1 - np.tanh(z) ** 2
    if code == RELU:
        return (z > 0).astype(np.float64)
    if code == LEAKY_RELU:
        return np.where(z > 0, 1.0, alpha)
    if code == ELU:
        return np.where(z > 0, 1.0, alpha * np.exp(np.minimum(z, 0)))
    if code == SOFTPLUS:
        return 1.0 / (1.0 + np.exp(-z))
    if code == GELU:
        return 0.5 * (1 + _erf(z / math.sqrt(2))) + z * np.exp(-z * z / 2) / math.sqrt(2 * np.pi)
    raise AssertionError(code)


def assert_close(got, expected, dtype, scale=1.0):
    tol = TOL[dtype]
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), expected,
                               rtol=tol["rtol"], atol=tol["atol"] * scale)


# ---------------------------------------------------------------------------
# _blas
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@FAST
@given(m=dims, n=dims, k=dims, seed=seeds, dtype=dtypes)
def test_gemm_all_transposes(trans_a, trans_b, m, n, k, seed, dtype):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, (k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.uniform(-1, 1, (n, k) if trans_b else (k, n)).astype(dtype)
    c = rng.uniform(-1, 1, (m, n)).astype(dtype)
    alpha, beta = 1.5, -0.75
    opa = a.astype(np.float64).T if trans_a else a.astype(np.float64)
    opb = b.astype(np.float64).T if trans_b else b.astype(np.float64)
    expected = alpha * opa @ opb + beta * c.astype(np.float64)
    _blas.gemm_py(trans_a, trans_b, alpha, a, b, beta, c)
    assert c.dtype == dtype
    assert_close(c, expected, dtype, scale=k)


def test_gemm_beta_zero_ignores_garbage_in_c():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    b = np.arange(12, dtype=np.float64).reshape(3, 4)
    c = np.full((2, 4), 7.0)
    _blas.gemm_py(False, False, 1.0, a, b, 0.0, c)
    np.testing.assert_array_equal(c, a @ b)


def test_gemm_rejects_mismatched_shapes():
    a = np.ones((2, 3))
    with pytest.raises(ValueError, match="gemm shapes"):
        _blas.gemm_py(False, False, 1.0, a, np.ones((4, 2)), 0.0, np.ones((2, 2)))


@FAST
@given(m=dims, n=dims, seed=seeds, dtype=dtypes)
def test_gemv_is_the_row_major_matrix_vector_product(m, n, seed, dtype):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, (m, n)).astype(dtype)
    x = rng.uniform(-1, 1, n).astype(dtype)
    y = np.full(m, np.nan, dtype)            # beta = 0: what y held does not count
    _blas.gemv_py(a, x, y)
    assert_close(y, a.astype(np.float64) @ x.astype(np.float64), dtype, scale=n)


def test_gemv_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"A is \(2, 3\), x has 2, y has 2"):
        _blas.gemv_py(np.ones((2, 3)), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match=r"A is \(2, 3\), x has 3, y has 3"):
        _blas.gemv_py(np.ones((2, 3)), np.ones(3), np.ones(3))


# ---------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("code", list(Activation))
@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_forward_and_derivative(code, dtype):
    rng = np.random.default_rng(code)
    z = rng.uniform(-6, 6, (13, 7)).astype(dtype)
    z[0, :5] = [-30, -1e-3, 1e-3, 30, 2.5]
    alpha = ALPHA.get(code, 0.0)
    a = np.empty_like(z)
    d = np.empty_like(z)
    _dense.activation_forward_py(z, a, code, alpha)
    _dense.activation_derivative_py(z, a, d, code, alpha)
    assert_close(a, ref_act(z, code, alpha), dtype, scale=10)
    assert_close(d, ref_dact(z, code, alpha), dtype)


@pytest.mark.parametrize("code,alpha", [(LEAKY_RELU, 0.2), (ELU, 0.5)])
def test_activation_alpha_is_used(code, alpha):
    z = np.array([[-2.0, -0.5, 0.5, 2.0]])
    a, d = np.empty_like(z), np.empty_like(z)
    _dense.activation_forward_py(z, a, code, alpha)
    _dense.activation_derivative_py(z, a, d, code, alpha)
    np.testing.assert_allclose(a, ref_act(z, code, alpha), rtol=1e-14)
    np.testing.assert_allclose(d, ref_dact(z, code, alpha), rtol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_derivative_at_exactly_zero_is_zero(dtype):
    z = np.array([[0.0, -0.0, 1e-30, -1e-30]], dtype=dtype)
    a, d = np.empty_like(z), np.empty_like(z)
    _dense.activation_forward_py(z, a, RELU, 0.0)
    _dense.activation_derivative_py(z, a, d, RELU, 0.0)
    assert d.tolist() == [[0.0, 0.0, 1.0, 0.0]]
    assert a.tolist() == [[0.0, 0.0, dtype(1e-30), 0.0]]


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_exact_at_plus_minus_1000(dtype):
    z = np.array([[1000.0, -1000.0]], dtype=dtype)
    expected = {
        # code: ((f(1000), f(-1000)), (f'(1000), f'(-1000)))
        IDENTITY: ((1000, -1000), (1, 1)),
        SIGMOID: ((1, 0), (0, 0)),
        TANH: ((1, -1), (0, 0)),
        RELU: ((1000, 0), (1, 0)),
        LEAKY_RELU: ((1000, -10), (1, 0.01)),
        ELU: ((1000, -1), (1, 0)),
        SOFTPLUS: ((1000, 0), (1, 0)),
        GELU: ((1000, 0), (1, 0)),
    }
    with np.errstate(all="raise"):
        for code, (values, slopes) in expected.items():
            a, d = np.empty_like(z), np.empty_like(z)
            _dense.activation_forward_py(z, a, code, ALPHA.get(code, 0.0))
            _dense.activation_derivative_py(z, a, d, code, ALPHA.get(code, 0.0))
            assert np.isfinite(a).all() and np.isfinite(d).all(), code
            np.testing.assert_array_equal(a[0], np.array(values, dtype=dtype), err_msg=str(code))
            np.testing.assert_array_equal(d[0], np.array(slopes, dtype=dtype), err_msg=str(code))


# ---------------------------------------------------------------------------
# dense forward / backward
# ---------------------------------------------------------------------------
def _dense_case(rng, n, n_in, n_out, dtype):
    x = rng.uniform(-1, 1, (n, n_in)).astype(dtype)
    w = rng.uniform(-1, 1, (n_in, n_out)).astype(dtype)
    b = rng.uniform(-1, 1, n_out).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("code", list(Activation))
@settings(max_examples=12, deadline=None)
@given(n=dims, n_in=dims, n_out=dims, seed=seeds, dtype=dtypes, use_bias=st.booleans())
def test_dense_forward(code, n, n_in, n_out, seed, dtype, use_bias):
    rng = np.random.default_rng(seed)
    x, w, b = _dense_case(rng, n, n_in, n_out, dtype)
    alpha = ALPHA.get(code, 0.0)
    z = np.empty((n, n_out), dtype)
    a = z if code == IDENTITY else np.empty_like(z)
    _dense.dense_forward_py(x, w, b if use_bias else None, z, a, code, alpha, 1)
    z_ref = x.astype(np.float64) @ w.astype(np.float64)
    if use_bias:
        z_ref = z_ref + b.astype(np.float64)
    assert_close(z, z_ref, dtype, scale=n_in)
    # the activation of the kernel's own z (float32 rounding of z not compounded)
    assert_close(a, ref_act(z, code, alpha), dtype, scale=n_in)


@pytest.mark.parametrize("code", list(Activation))
@settings(max_examples=12, deadline=None)
@given(n=dims, n_in=dims, n_out=dims, seed=seeds, dtype=dtypes, use_bias=st.booleans(),
       need_dx=st.booleans())
def test_dense_backward(code, n, n_in, n_out, seed, dtype, use_bias, need_dx):
    rng = np.random.default_rng(seed)
    x, w, b = _dense_case(rng, n, n_in, n_out, dtype)
    alpha = ALPHA.get(code, 0.0)
    z = np.empty((n, n_out), dtype)
    a = z if code == IDENTITY else np.empty_like(z)
    _dense.dense_forward_py(x, w, b, z, a, code, alpha, 1)
    upstream = rng.uniform(-1, 1, (n, n_out)).astype(dtype)
    dz = upstream.copy()
    dw = np.full_like(w, np.nan)
    db = np.full_like(b, np.nan) if use_bias else None
    dx = np.full_like(x, np.nan) if need_dx else None
    _dense.dense_backward_py(x, w, z, a, dz, dw, db, dx, code, alpha, 1)

    dz_ref = upstream.astype(np.float64) * ref_dact(z, code, alpha)
    assert_close(dz, dz_ref, dtype)
    assert_close(dw, x.astype(np.float64).T @ dz_ref, dtype, scale=n)
    if use_bias:
        assert_close(db, dz_ref.sum(axis=0), dtype, scale=n)
    if need_dx:
        assert_close(dx, dz_ref @ w.astype(np.float64).T, dtype, scale=n_out)


@pytest.mark.parametrize("code", [IDENTITY, RELU, GELU])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_threads_give_the_same_bits_as_one_thread(code, dtype):
    """gemm_rows cuts every GEMM into fixed blocks of 64 rows of C and spreads
    them over the threads: each BLAS call sees the same operands whatever the
    thread count, so 2 and 3 threads give exactly the bits of one thread."""
    rng = np.random.default_rng(7)
    n, n_in, n_out = 150, 131, 33        # 3 blocks of rows for z, dx and dW
    x, w, b = _dense_case(rng, n, n_in, n_out, dtype)
    upstream = rng.uniform(-1, 1, (n, n_out)).astype(dtype)
    results = []
    with _blas_one_thread():
        for threads in (1, 2, 3):
            z = np.empty((n, n_out), dtype)
            a = z if code == IDENTITY else np.empty_like(z)
            _dense.dense_forward_py(x, w, b, z, a, code, ALPHA.get(code, 0.0), threads)
            dz, dw, db, dx = upstream.copy(), np.empty_like(w), np.empty_like(b), np.empty_like(x)
            _dense.dense_backward_py(x, w, z, a, dz, dw, db, dx, code, ALPHA.get(code, 0.0),
                                     threads)
            results.append([z.copy(), a.copy(), dz, dw, db, dx])
    for other in results[1:]:
        for one, many in zip(results[0], other):
            np.testing.assert_array_equal(one, many)
    # and the threaded result is the right one
    z_ref = x.astype(np.float64) @ w.astype(np.float64) + b
    assert_close(results[1][0], z_ref, dtype, scale=n_in)
    dz_ref = upstream.astype(np.float64) * ref_dact(results[0][0], code, ALPHA.get(code, 0.0))
    assert_close(results[1][3], x.astype(np.float64).T @ dz_ref, dtype, scale=n)
    assert_close(results[1][5], dz_ref @ w.astype(np.float64).T, dtype, scale=n_out)


# ---------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_fraction_and_scale(rate, dtype):
    rng = np.random.default_rng(3)
    inp = rng.uniform(0.5, 1.5, (200, 50)).astype(dtype)     # no zeros in the input
    out = np.empty_like(inp)
    _dense.dropout_py(out, inp, rate, 12345, 1)
    dropped = out == 0
    n = inp.size
    # binomial: 5 standard deviations
    assert abs(dropped.mean() - rate) < 5 * math.sqrt(rate * (1 - rate) / n)
    scale = dtype(1.0 / (1.0 - rate))
    np.testing.assert_array_equal(out[~dropped], inp[~dropped] * scale)
    # expected value kept: E[out] = E[inp]
    ones = np.ones((400, 250), dtype)
    out = np.empty_like(ones)
    _dense.dropout_py(out, ones, rate, 99, 1)
    sd = math.sqrt(rate / (1 - rate) / ones.size)       # sd of the mean of out
    assert abs(out.astype(np.float64).mean() - 1.0) < 5 * sd


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_mask_is_a_function_of_the_seed(dtype):
    rng = np.random.default_rng(4)
    inp = rng.uniform(0.5, 1.5, (37, 11)).astype(dtype)
    first, second, other = (np.empty_like(inp) for _ in range(3))
    _dense.dropout_py(first, inp, 0.3, 2024, 1)
    _dense.dropout_py(second, inp, 0.3, 2024, 1)
    _dense.dropout_py(other, inp, 0.3, 2025, 1)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first == 0, other == 0)
    # in place gives the same as out of place
    inplace = inp.copy()
    _dense.dropout_py(inplace, inplace, 0.3, 2024, 1)
    np.testing.assert_array_equal(inplace, first)
    # any thread split gives the same mask
    big = rng.uniform(0.5, 1.5, (301, 13)).astype(dtype)
    one, two = np.empty_like(big), np.empty_like(big)
    _dense.dropout_py(one, big, 0.3, 7, 1)
    _dense.dropout_py(two, big, 0.3, 7, 2)
    np.testing.assert_array_equal(one, two)


def test_dropout_rate_zero_is_identity():
    inp = np.random.default_rng(0).normal(size=(9, 5))
    out = np.empty_like(inp)
    _dense.dropout_py(out, inp, 0.0, 1, 1)
    np.testing.assert_array_equal(out, inp)


# ---------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------
def ref_logsumexp(o):
    m = o.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(o - m).sum(axis=1, keepdims=True)))[:, 0]


def ref_softmax(o):
    e = np.exp(o - o.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@settings(max_examples=30, deadline=None)
@given(n=dims, k=dims, seed=seeds, dtype=dtypes, code=st.sampled_from(list(Loss)),
       threads=st.sampled_from([1, 2]))
def test_loss_and_gradient(n, k, seed, dtype, code, threads):
    rng = np.random.default_rng(seed)
    o = rng.uniform(-4, 4, (n, k)).astype(dtype)
    o64 = o.astype(np.float64)
    scale = 1.0 / (n * k) if code != Loss.SOFTMAX_CROSS_ENTROPY else 1.0 / n
    target = labels = None
    if code == Loss.MEAN_SQUARED_ERROR:
        target = rng.normal(size=(n, k)).astype(dtype)
        t = target.astype(np.float64)
        loss_ref = np.sum((o64 - t) ** 2)
        grad_ref = 2 * (o64 - t)
    elif code == Loss.BINARY_CROSS_ENTROPY:
        target = rng.uniform(0, 1, (n, k)).astype(dtype)
        t = target.astype(np.float64)
        loss_ref = np.sum(np.log1p(np.exp(o64)) - o64 * t)
        grad_ref = 1 / (1 + np.exp(-o64)) - t
    else:
        labels = rng.integers(0, k, n).astype(np.int32)
        loss_ref = np.sum(ref_logsumexp(o64) - o64[np.arange(n), labels])
        grad_ref = ref_softmax(o64)
        grad_ref[np.arange(n), labels] -= 1
    grad = np.full_like(o, np.nan)
    total = _losses.loss_and_gradient_py(code, o, target, labels, grad, scale, threads)
    assert isinstance(total, float)
    # the loss is summed in float64 whatever the dtype
    assert total == pytest.approx(loss_ref, rel=1e-12, abs=1e-12 * n * k)
    assert grad.dtype == dtype
    assert_close(grad, scale * grad_ref, dtype)
    # loss only (grad None)
    alone = _losses.loss_and_gradient_py(code, o, target, labels, None, scale, threads)
    assert alone == pytest.approx(total, rel=1e-14)


@settings(max_examples=20, deadline=None)
@given(n=dims, k=dims, seed=seeds, dtype=dtypes)
def test_softmax(n, k, seed, dtype):
    rng = np.random.default_rng(seed)
    o = rng.uniform(-20, 20, (n, k)).astype(dtype)
    p = np.empty_like(o)
    _losses.softmax_py(o, p, 1)
    assert_close(p, ref_softmax(o.astype(np.float64)), dtype)
    assert_close(p.sum(axis=1), np.ones(n), dtype, scale=k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_losses_exact_at_plus_minus_1000(dtype):
    with np.errstate(all="raise"):
        # binary cross-entropy: loss log(1 + exp(o)) - o t
        o = np.array([[1000.0], [-1000.0], [1000.0], [-1000.0]], dtype=dtype)
        t = np.array([[0.0], [1.0], [1.0], [0.0]], dtype=dtype)
        for row, (loss, grad) in enumerate([(1000.0, 1.0), (1000.0, -1.0),
                                            (0.0, 0.0), (0.0, 0.0)]):
            g = np.full((1, 1), np.nan, dtype)
            got = _losses.loss_and_gradient_py(Loss.BINARY_CROSS_ENTROPY, o[row:row + 1], t[row:row + 1], None, g,
                                               1.0, 1)
            assert got == loss
            assert g[0, 0] == grad
        # softmax cross-entropy of [1000, -1000]: label 1 costs 2000, label 0 costs 0
        o = np.array([[1000.0, -1000.0]], dtype=dtype)
        for label, loss, grad in [(1, 2000.0, [1.0, -1.0]), (0, 0.0, [0.0, 0.0])]:
            g = np.full_like(o, np.nan)
            got = _losses.loss_and_gradient_py(Loss.SOFTMAX_CROSS_ENTROPY, o, None,
                                               np.array([label], np.int32), g, 1.0, 1)
            assert got == loss
            assert g.tolist() == [grad]
        p = np.empty_like(o)
        _losses.softmax_py(o, p, 1)
        assert p.tolist() == [[1.0, 0.0]]
        p2 = np.empty((1, 3), dtype)
        _losses.softmax_py(np.array([[-1000.0, -1000.0, -1000.0]], dtype), p2, 1)
        np.testing.assert_allclose(p2, np.full((1, 3), 1 / 3), rtol=1e-6)


# ---------------------------------------------------------------------------
# optimizer updates (equations written out here in numpy)
# ---------------------------------------------------------------------------
CONFIGS = {
    "sgd": {"kind": OptimizerKind.SGD},
    "momentum": {"kind": OptimizerKind.SGD, "momentum": 0.9},
    "nesterov": {"kind": OptimizerKind.SGD, "momentum": 0.9, "nesterov": True},
    "adagrad": {"kind": OptimizerKind.ADAGRAD, "epsilon": 1e-10},
    "rmsprop": {"kind": OptimizerKind.RMSPROP, "rho": 0.9, "epsilon": 1e-8},
    "rmsprop_centered": {"kind": OptimizerKind.RMSPROP, "rho": 0.8, "epsilon": 1e-8, "centered": True},
    "rmsprop_momentum": {"kind": OptimizerKind.RMSPROP, "rho": 0.9, "epsilon": 1e-8, "momentum": 0.5},
    "adam": {"kind": OptimizerKind.ADAM, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
    "amsgrad": {"kind": OptimizerKind.ADAM, "beta1": 0.8, "beta2": 0.9, "epsilon": 1e-8, "amsgrad": True},
    "adamw": {"kind": OptimizerKind.ADAM, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "decoupled": True},
}


def ref_step(name, cfg, w, g, s, lr, wd, t):
    """One update in float64; s is a list of three state arrays (updated in place)."""
    w = w.copy()
    if cfg["kind"] == 0:
        mu = cfg.get("momentum", 0.0)
        d = g + wd * w
        if mu == 0:
            return w - lr * d
        s[0][:] = mu * s[0] + d
        return w - lr * (d + mu * s[0] if cfg.get("nesterov") else s[0])
    if cfg["kind"] == 1:
        d = g + wd * w
        s[0][:] = s[0] + d * d
        return w - lr * d / (np.sqrt(s[0]) + cfg["epsilon"])
    if cfg["kind"] == 2:
        d = g + wd * w
        rho, mu = cfg["rho"], cfg.get("momentum", 0.0)
        s[0][:] = rho * s[0] + (1 - rho) * d * d
        if cfg.get("centered"):
            s[1][:] = rho * s[1] + (1 - rho) * d
            r = np.sqrt(s[0] - s[1] ** 2) + cfg["epsilon"]
        else:
            r = np.sqrt(s[0]) + cfg["epsilon"]
        if mu > 0:
            s[2][:] = mu * s[2] + d / r
            return w - lr * s[2]
        return w - lr * d / r
    b1, b2 = cfg["beta1"], cfg["beta2"]
    if cfg.get("decoupled"):
        d = g
        w = w - lr * wd * w
    else:
        d = g + wd * w
    s[0][:] = b1 * s[0] + (1 - b1) * d
    s[1][:] = b2 * s[1] + (1 - b2) * d * d
    v = s[1]
    if cfg.get("amsgrad"):
        s[2][:] = np.maximum(s[2], s[1])
        v = s[2]
    return w - lr * (s[0] / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + cfg["epsilon"])


@pytest.mark.parametrize("name", sorted(CONFIGS))
@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 41), seed=seeds, dtype=dtypes, wd=st.sampled_from([0.0, 0.05]))
def test_optimizer_step_three_steps(name, n, seed, dtype, wd):
    cfg = CONFIGS[name]
    rng = np.random.default_rng(seed)
    w = rng.uniform(-1, 1, n).astype(dtype)
    states = [np.zeros(n, dtype) for _ in range(3)]
    w_ref = w.astype(np.float64)
    s_ref = [np.zeros(n) for _ in range(3)]
    lr = 0.05
    for t in (1, 2, 3):
        g = rng.uniform(-1, 1, n).astype(dtype)
        _optim.optimizer_step_py(cfg, w, g, *states, lr, wd, t, 1)
        w_ref = ref_step(name, cfg, w_ref, g.astype(np.float64), s_ref, lr, wd, t)
        # float32 stores w and the states in float32 each step: compare loosely
        tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(w, w_ref, **tol)
        for got, ref in zip(states, s_ref):
            np.testing.assert_allclose(got, ref, **tol)
    assert w.dtype == dtype


@pytest.mark.parametrize("name", ["momentum", "rmsprop_centered", "amsgrad"])
def test_optimizer_step_threaded_equals_serial(name):
    """Arrays past the parallel threshold are split over threads: same numbers,
    every time (the threads' spans were shared variables, and a thread could
    update another's span: ~1 run in 1000 differed, ~3% after a change of
    timing; 200 runs here)."""
    cfg = CONFIGS[name]
    rng = np.random.default_rng(1)
    n = 40_000
    w0 = rng.normal(size=n)
    expected = None
    for threads in [1] + [2] * 200:
        w, states = w0.copy(), [np.zeros(n) for _ in range(3)]
        for t in (1, 2):
            g = np.random.default_rng(t).normal(size=n)
            _optim.optimizer_step_py(cfg, w, g, *states, 0.01, 0.01, t, threads)
        if expected is None:
            expected = [w] + states
            continue
        for one, two in zip(expected, [w] + states):
            np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("activation", [Activation.RELU, Activation.IDENTITY])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_row_loops_are_the_same_in_every_instruction_set(activation, dtype):
    """The portable, AVX2 and AVX-512 row loops of relu and identity (bias
    and activation forward, relu's gradient backward) give the same bits,
    which match numpy, on widths with and without a vector tail, exact zeros
    included (relu'(0) = 0)."""
    results = {}
    widest = _dense._use_isa("avx512")
    try:
        for isa in ("avx512", "avx2", "portable"):
            if _dense._use_isa(isa) != isa:
                continue
            rng = np.random.default_rng(3)       # the same arrays for each version
            outputs = []
            for n_out in (1, 16, 37):
                x = rng.normal(size=(5, 7)).astype(dtype)
                w = rng.normal(size=(7, n_out)).astype(dtype)
                b = rng.normal(size=n_out).astype(dtype)
                w[:, 0] = 0
                b[0] = 0                         # column 0 of z is exactly 0
                z, a = np.empty((5, n_out), dtype), np.empty((5, n_out), dtype)
                _dense.dense_forward_py(x, w, b, z, a, int(activation), 0.0, 1)
                expected_z = x @ w + b
                np.testing.assert_allclose(z, expected_z, rtol=1e-5)
                np.testing.assert_array_equal(
                    a, np.maximum(z, 0) if activation == Activation.RELU else z)
                dz = rng.normal(size=(5, n_out)).astype(dtype)
                dw, db = np.empty_like(w), np.empty_like(b)
                _dense.dense_backward_py(x, w, z, a, dz, dw, db, None, int(activation),
                                         0.0, 1)
                outputs += [z, a, dz, dw, db]
            results[isa] = outputs
    finally:
        _dense._use_isa(widest)
    for isa, arrays in results.items():
        for got, expected in zip(arrays, results["portable"]):
            np.testing.assert_array_equal(got, expected, err_msg=isa)


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_optimizer_step_is_the_same_in_every_instruction_set(name, dtype):
    """The portable, AVX2 and AVX-512 versions of each update loop give the
    same bits (elementwise, no fused multiply-add), on a length with a
    vector body and a tail in each; each agrees with the float64 reference
    (test_optimizer_step_three_steps checks the widest, this one the rest)."""
    cfg = CONFIGS[name]
    rng = np.random.default_rng(7)
    n = 1000 + 13
    w0 = rng.uniform(-1, 1, n).astype(dtype)
    grads = [rng.uniform(-1, 1, n).astype(dtype) for _ in range(3)]
    results = {}
    widest = _optim._use_isa("avx512")
    try:
        for isa in ("avx512", "avx2", "portable"):
            if _optim._use_isa(isa) != isa:
                continue
            w, states = w0.copy(), [np.zeros(n, dtype) for _ in range(3)]
            w_ref, s_ref = w0.astype(np.float64), [np.zeros(n) for _ in range(3)]
            for t, g in enumerate(grads, start=1):
                _optim.optimizer_step_py(cfg, w, g, *states, 0.05, 0.01, t, 1)
                w_ref = ref_step(name, cfg, w_ref, g.astype(np.float64), s_ref, 0.05, 0.01, t)
            tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12)
            np.testing.assert_allclose(w, w_ref, **tol)
            results[isa] = [w] + states
    finally:
        _optim._use_isa(widest)
    assert "portable" in results
    for isa, arrays in results.items():
        for got, expected in zip(arrays, results["portable"]):
            np.testing.assert_array_equal(got, expected, err_msg=isa)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 60), seed=seeds, dtype=dtypes, l1=st.sampled_from([0.0, 0.01, 0.3]),
       l2=st.sampled_from([0.0, 0.02, 0.5]))
def test_add_penalty_gradient(n, seed, dtype, l1, l2):
    rng = np.random.default_rng(seed)
    w = rng.uniform(-1, 1, n).astype(dtype)
    w[::4] = 0.0                                  # sign(0) = 0: subgradient 0
    g = rng.uniform(-1, 1, n).astype(dtype)
    w64, g64 = w.astype(np.float64), g.astype(np.float64)
    expected_g = g64 + l1 * np.sign(w64) + 2 * l2 * w64
    expected_penalty = l1 * np.abs(w64).sum() + l2 * (w64 ** 2).sum()
    penalty = _optim.add_penalty_gradient_py(w, g, l1, l2, 1)
    assert penalty == pytest.approx(expected_penalty, rel=1e-12, abs=1e-15)
    assert_close(g, expected_g, dtype)


def lane_sum(terms):
    """The kernels' sum of float64 `terms`: term i added in order to lane i % 8,
    the lanes combined ((0+1)+(2+3))+((4+5)+(6+7)) (_optim.pyx)."""
    lanes = [float(np.cumsum(terms[j::8])[-1]) if len(terms[j::8]) else 0.0
             for j in range(8)]
    return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + (
        (lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 100), seed=seeds, dtype=dtypes, l1=st.sampled_from([0.0, 0.01, 0.3]),
       l2=st.sampled_from([0.0, 0.02, 0.5]))
def test_penalty_sums_are_lane_sums_in_every_instruction_set(n, seed, dtype, l1, l2):
    """The penalty, the sum of squares and the proximal L1's sum of |w| are
    the lane sums above, to the bit, in every version (portable, AVX2,
    AVX-512): the lengths give each a vector body, a tail or both."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(-1, 1, n).astype(dtype)
    w[::5] = 0.0
    w64 = w.astype(np.float64)
    expected = {"penalty": lane_sum(l1 * np.abs(w64) + l2 * w64 * w64),
                "squares": lane_sum(w64 * w64),
                "proximal": lane_sum(l2 * w64 * w64) + l1 * lane_sum(np.abs(w64))}
    widest = _optim._use_isa("avx512")
    try:
        for isa in ("avx512", "avx2", "portable"):
            if _optim._use_isa(isa) != isa:
                continue
            got = {"penalty": _optim.add_penalty_gradient_py(w, np.zeros_like(w), l1, l2, 1),
                   "squares": _optim.sum_squares_py(w, 1),
                   "proximal": _train.penalize_py(w, np.zeros_like(w), l1, l2, True)}
            assert got == expected, isa
    finally:
        _optim._use_isa(widest)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride", [13, 16, 29])
def test_a_kernel_summed_row_by_row_gives_the_bits_of_one_flat_sum(dtype, stride):
    """_kernel_penalty goes a row at a time (a padded copy's rows are
    `stride` apart, the padding holding anything), each element in the lane
    of its index in the kernel: rows of 13 (starting in every lane) give
    the bits of one flat call (penalize_py), and the same gradient."""
    rng = np.random.default_rng(5)
    kernel = rng.uniform(-1, 1, (37, 13)).astype(dtype)
    stored = rng.uniform(-9, 9, (37, stride)).astype(dtype)
    stored[:, :13] = kernel
    flat_grad = np.zeros(kernel.size, dtype)
    expected = _train.penalize_py(kernel.reshape(-1), flat_grad, 0.01, 0.02, False)
    grad = np.zeros(kernel.size, dtype)
    assert _train.kernel_penalty_py(stored, 13, grad, 0.01, 0.02) == expected
    np.testing.assert_array_equal(grad, flat_grad)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 300), seed=seeds, dtype=dtypes)
def test_sum_squares(n, seed, dtype):
    g = np.random.default_rng(seed).uniform(-3, 3, n).astype(dtype)
    expected = float(np.sum(g.astype(np.float64) ** 2))
    # accumulated in float64 even for float32 input
    assert _optim.sum_squares_py(g, 1) == pytest.approx(expected, rel=1e-13)


def test_sum_squares_threaded():
    g = np.random.default_rng(0).normal(size=50_000).astype(np.float32)
    expected = float(np.sum(g.astype(np.float64) ** 2))
    assert _optim.sum_squares_py(g, 2) == pytest.approx(expected, rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 60), seed=seeds, dtype=dtypes, scale=st.sampled_from([1.0, 0.3, 2.0]),
       clip=st.sampled_from([0.0, 0.5, 2.0]))
def test_scale_and_clip(n, seed, dtype, scale, clip):
    g = np.random.default_rng(seed).uniform(-3, 3, n).astype(dtype)
    expected = scale * g.astype(np.float64)
    if clip > 0:
        expected = np.clip(expected, -clip, clip)
    _optim.scale_and_clip_py(g, scale, clip, 1)
    assert_close(g, expected, dtype)
