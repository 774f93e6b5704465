"""Tests of descend.initializers against the formulas, computed independently.

Expected values are derived here by hand (limits, variances, Gram-Schmidt)
rather than by calling the module's own helpers.
"""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from descend import initializers

ALL_NAMES = [
    "zeros",
    "ones",
    "constant",
    "random_normal",
    "random_uniform",
    "truncated_normal",
    "variance_scaling",
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "lecun_normal",
    "lecun_uniform",
    "orthogonal",
]
RANDOM_NAMES = [n for n in ALL_NAMES if n not in ("zeros", "ones", "constant")]
CAMEL = {
    "zeros": "Zeros",
    "ones": "Ones",
    "constant": "Constant",
    "random_normal": "RandomNormal",
    "random_uniform": "RandomUniform",
    "truncated_normal": "TruncatedNormal",
    "variance_scaling": "VarianceScaling",
    "glorot_uniform": "GlorotUniform",
    "glorot_normal": "GlorotNormal",
    "he_uniform": "HeUniform",
    "he_normal": "HeNormal",
    "lecun_normal": "LecunNormal",
    "lecun_uniform": "LecunUniform",
    "orthogonal": "Orthogonal",
}

# Keras' correction: std of a standard normal truncated to [-2, 2].
KERAS_TRUNC = 0.87962566103423978


def rng(seed=0):
    return np.random.default_rng(seed)


def truncated_std_by_hand():
    """Std of N(0, 1) truncated to [-2, 2], from the closed form."""
    phi2 = math.exp(-2.0) / math.sqrt(2.0 * math.pi)  # pdf at 2
    mass = math.erf(2.0 / math.sqrt(2.0))  # P(|Z| <= 2)
    return math.sqrt(1.0 - 2.0 * 2.0 * phi2 / mass)


# ---------------------------------------------------------------------------
# calling convention
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7, 3), (3, 7), (2, 3, 4)])
def test_shape_dtype_contiguity(name, dtype, shape):
    w = initializers.get(name)(shape, rng(), dtype)
    assert isinstance(w, np.ndarray)
    assert w.shape == shape
    assert w.dtype == np.dtype(dtype)
    assert w.flags.c_contiguous
    assert w.flags.owndata and w.flags.writeable
    assert np.all(np.isfinite(w))


@pytest.mark.parametrize("name", [n for n in ALL_NAMES if n != "orthogonal"])
def test_bias_shape(name):
    w = initializers.get(name)((5,), rng(), np.float64)
    assert w.shape == (5,)


def test_default_dtype_is_float64():
    assert initializers.get("glorot_uniform")((3, 2), rng()).dtype == np.float64


def test_dtype_spellings():
    init = initializers.get("he_normal")
    for dtype in ("float32", np.dtype("float32"), np.float32):
        assert init((2, 2), rng(), dtype).dtype == np.float32


def test_shape_as_list_and_numpy_ints():
    w = initializers.get("glorot_uniform")([np.int64(4), 3], rng(), np.float64)
    assert w.shape == (4, 3)


@pytest.mark.parametrize("name", RANDOM_NAMES)
def test_same_seed_same_values_different_seed_differs(name):
    init = initializers.get(name)
    a = init((20, 10), rng(123), np.float64)
    b = init((20, 10), rng(123), np.float64)
    c = init((20, 10), rng(124), np.float64)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_float32_equals_rounded_float64(name):
    init = initializers.get(name)
    w64 = init((30, 20), rng(7), np.float64)
    w32 = init((30, 20), rng(7), np.float32)
    np.testing.assert_array_equal(w32, w64.astype(np.float32))


@pytest.mark.parametrize("name", RANDOM_NAMES)
def test_global_numpy_state_is_untouched(name):
    np.random.seed(99)
    before = np.random.get_state()[1].copy()
    a = initializers.get(name)((10, 10), rng(5), np.float64)
    after = np.random.get_state()[1]
    np.testing.assert_array_equal(before, after)
    # and the result does not depend on the global seed
    np.random.seed(1)
    b = initializers.get(name)((10, 10), rng(5), np.float64)
    np.testing.assert_array_equal(a, b)


def test_returns_fresh_arrays():
    init = initializers.get("zeros")
    a = init((3,), rng())
    b = init((3,), rng())
    a[0] = 5.0
    assert b[0] == 0.0


# ---------------------------------------------------------------------------
# deterministic initializers
# ---------------------------------------------------------------------------
def test_zeros_ones_constant_values():
    np.testing.assert_array_equal(initializers.Zeros()((2, 3), rng()), np.zeros((2, 3)))
    np.testing.assert_array_equal(initializers.Ones()((4,), rng()), np.ones(4))
    w = initializers.Constant(-2.5)((3, 2), rng(), np.float32)
    np.testing.assert_array_equal(w, np.full((3, 2), -2.5, dtype=np.float32))


def test_deterministic_initializers_do_not_draw():
    r = rng(3)
    initializers.Constant(1.0)((100,), r)
    assert r.random() == rng(3).random()


# ---------------------------------------------------------------------------
# statistics at large fans
# ---------------------------------------------------------------------------
FAN_IN, FAN_OUT = 1000, 400  # unequal, so a wrong fan would show
N = FAN_IN * FAN_OUT


def check_moments(w, mean, var, rel_var_tol=0.02):
    # mean: 6 standard errors; variance: 2% (the estimator's relative
    # standard error is about sqrt(2 / N) = 0.2% here).
    assert abs(w.mean() - mean) < 6.0 * math.sqrt(var / w.size) + 1e-12
    assert w.var() == pytest.approx(var, rel=rel_var_tol)


def test_truncation_constant_matches_closed_form():
    assert truncated_std_by_hand() == pytest.approx(KERAS_TRUNC, rel=1e-12)


def test_random_normal_moments():
    w = initializers.RandomNormal(mean=1.5, stddev=2.0)((FAN_IN, FAN_OUT), rng())
    check_moments(w, 1.5, 4.0)


def test_random_normal_defaults():
    w = initializers.RandomNormal()((FAN_IN, FAN_OUT), rng())
    check_moments(w, 0.0, 0.05**2)


def test_random_uniform_moments_and_bounds():
    w = initializers.RandomUniform(-1.0, 3.0)((FAN_IN, FAN_OUT), rng())
    check_moments(w, 1.0, 4.0**2 / 12.0)
    assert w.min() >= -1.0 and w.max() < 3.0
    d = initializers.RandomUniform()((FAN_IN, FAN_OUT), rng())
    assert d.min() >= -0.05 and d.max() < 0.05


def test_truncated_normal_moments_and_bounds():
    w = initializers.TruncatedNormal(mean=0.5, stddev=0.1)((FAN_IN, FAN_OUT), rng())
    assert np.all(np.abs(w - 0.5) <= 0.2)
    # close to the bound: truncation, not a narrower distribution
    assert np.abs(w - 0.5).max() > 0.199
    check_moments(w, 0.5, (0.1 * truncated_std_by_hand()) ** 2)


# (name, target variance, distribution) with variances from the papers
VARIANCE_CASES = [
    ("glorot_uniform", 2.0 / (FAN_IN + FAN_OUT), "uniform"),
    ("glorot_normal", 2.0 / (FAN_IN + FAN_OUT), "normal"),
    ("he_uniform", 2.0 / FAN_IN, "uniform"),
    ("he_normal", 2.0 / FAN_IN, "normal"),
    ("lecun_uniform", 1.0 / FAN_IN, "uniform"),
    ("lecun_normal", 1.0 / FAN_IN, "normal"),
]


@pytest.mark.parametrize("name,var,dist", VARIANCE_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_variance_scaling_presets(name, var, dist, dtype):
    w = initializers.get(name)((FAN_IN, FAN_OUT), rng(11), dtype).astype(np.float64)
    check_moments(w, 0.0, var)
    if dist == "uniform":
        limit = math.sqrt(3.0 * var)
        assert np.abs(w).max() <= limit * (1 + 1e-6)
        assert np.abs(w).max() > 0.999 * limit
    else:
        bound = 2.0 * math.sqrt(var) / KERAS_TRUNC
        assert np.abs(w).max() <= bound * (1 + 1e-6)
        assert np.abs(w).max() > 0.995 * bound


def test_glorot_uniform_limit_formula():
    # sqrt(6 / (fan_in + fan_out)) exactly, as in Glorot & Bengio (2010)
    w = initializers.GlorotUniform()((FAN_IN, FAN_OUT), rng())
    limit = math.sqrt(6.0 / (FAN_IN + FAN_OUT))
    assert limit * 0.999 < np.abs(w).max() <= limit


def test_he_uniform_limit_formula():
    w = initializers.HeUniform()((FAN_IN, FAN_OUT), rng())
    limit = math.sqrt(6.0 / FAN_IN)
    assert limit * 0.999 < np.abs(w).max() <= limit


def test_square_1000x1000_he_normal():
    w = initializers.HeNormal()((1000, 1000), rng(2))
    check_moments(w, 0.0, 2.0 / 1000)
    assert np.abs(w).max() <= 2.0 * math.sqrt(2.0 / 1000) / KERAS_TRUNC


def test_fans_of_bias_and_conv_shapes():
    # 1-D: fan_in = fan_out = n
    b = initializers.LecunUniform()((300_000,), rng())
    limit = math.sqrt(3.0 / 300_000)
    assert np.abs(b).max() <= limit and np.abs(b).max() > 0.999 * limit
    # conv (kh, kw, in, out): fan_in = kh * kw * in
    w = initializers.HeNormal()((3, 3, 64, 128), rng())
    check_moments(w, 0.0, 2.0 / (3 * 3 * 64), rel_var_tol=0.03)
    assert initializers.compute_fans((3, 3, 64, 128)) == (576, 1152)
    assert initializers.compute_fans((7,)) == (7, 7)
    assert initializers.compute_fans((7, 2)) == (7, 2)


def test_variance_scaling_general():
    vs = initializers.VarianceScaling(scale=3.0, mode="fan_out", distribution="uniform")
    w = vs((FAN_IN, FAN_OUT), rng())
    check_moments(w, 0.0, 3.0 / FAN_OUT)
    vs = initializers.VarianceScaling(scale=0.5, mode="fan_avg", distribution="untruncated_normal")
    w = vs((FAN_IN, FAN_OUT), rng())
    check_moments(w, 0.0, 0.5 / ((FAN_IN + FAN_OUT) / 2))
    assert np.abs(w).max() > 3.0 * math.sqrt(0.5 / 700)  # not truncated
    # Keras alias
    assert initializers.VarianceScaling(distribution="normal").distribution == "truncated_normal"


# ---------------------------------------------------------------------------
# orthogonal
# ---------------------------------------------------------------------------
def gram_schmidt_columns(a):
    """Orthonormalise the columns of ``a`` (modified Gram-Schmidt).

    The result is the unique Q with positive diag(R) in a = QR, i.e. what
    QR with Saxe et al.'s sign correction must produce.
    """
    q = np.array(a, dtype=np.float64)
    for j in range(q.shape[1]):
        for i in range(j):
            q[:, j] -= (q[:, i] @ q[:, j]) * q[:, i]
        q[:, j] /= np.linalg.norm(q[:, j])
    return q


@pytest.mark.parametrize("shape", [(200, 200), (300, 100), (64, 64)])
def test_orthogonal_columns(shape):
    w = initializers.Orthogonal()(shape, rng(4))
    np.testing.assert_allclose(w.T @ w, np.eye(shape[1]), atol=1e-10)


def test_orthogonal_wide_has_orthonormal_rows():
    w = initializers.Orthogonal()((100, 300), rng(4))
    np.testing.assert_allclose(w @ w.T, np.eye(100), atol=1e-10)


def test_orthogonal_gain_and_float32():
    w = initializers.Orthogonal(gain=2.0)((50, 30), rng(), np.float32).astype(np.float64)
    np.testing.assert_allclose(w.T @ w, 4.0 * np.eye(30), atol=1e-5)


def test_orthogonal_nd_shape_flattens_leading_dims():
    w = initializers.Orthogonal()((4, 5, 6), rng())
    flat = w.reshape(20, 6)
    np.testing.assert_allclose(flat.T @ flat, np.eye(6), atol=1e-10)


@pytest.mark.parametrize("shape", [(8, 8), (12, 5)])
def test_orthogonal_sign_correction_tall(shape):
    # the initializer draws one standard-normal (rows, cols) matrix
    a = rng(21).standard_normal(shape)
    w = initializers.Orthogonal()(shape, rng(21))
    np.testing.assert_allclose(w, gram_schmidt_columns(a), atol=1e-10)


def test_orthogonal_sign_correction_wide():
    # rows < cols: a (cols, rows) normal matrix is orthonormalised, then transposed
    a = rng(22).standard_normal((9, 4))
    w = initializers.Orthogonal()((4, 9), rng(22))
    np.testing.assert_allclose(w, gram_schmidt_columns(a).T, atol=1e-10)


def test_orthogonal_is_not_sign_biased():
    # Without the sign correction LAPACK makes w[0, 0] always negative.
    firsts = [initializers.Orthogonal()((5, 5), rng(s))[0, 0] for s in range(200)]
    positive = sum(f > 0 for f in firsts)
    assert 60 < positive < 140


def test_orthogonal_rejects_1d():
    with pytest.raises(ValueError, match="shape"):
        initializers.Orthogonal()((5,), rng())


# ---------------------------------------------------------------------------
# get / serialize
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ALL_NAMES)
def test_get_by_snake_and_camel_name(name):
    a = initializers.get(name)
    b = initializers.get(CAMEL[name])
    assert type(a) is type(b)
    assert type(a).__name__ == CAMEL[name]
    assert isinstance(a, initializers.Initializer)
    assert a.get_config()["name"] == name


@pytest.mark.parametrize(
    "init",
    [
        initializers.Zeros(),
        initializers.Ones(),
        initializers.Constant(3.25),
        initializers.RandomNormal(mean=1.0, stddev=0.2),
        initializers.RandomUniform(minval=-2.0, maxval=0.5),
        initializers.TruncatedNormal(stddev=0.3),
        initializers.VarianceScaling(2.0, "fan_out", "uniform"),
        initializers.GlorotUniform(),
        initializers.GlorotNormal(),
        initializers.HeUniform(),
        initializers.HeNormal(),
        initializers.LecunNormal(),
        initializers.LecunUniform(),
        initializers.Orthogonal(gain=1.5),
    ],
)
def test_serialize_round_trip_through_json(init):
    config = initializers.serialize(init)
    assert config == init.get_config()
    restored = initializers.get(json.loads(json.dumps(config)))
    assert type(restored) is type(init)
    assert restored == init
    assert restored.get_config() == config
    np.testing.assert_array_equal(restored((6, 4), rng(8)), init((6, 4), rng(8)))


def test_config_contents():
    assert initializers.RandomNormal(1.0, 2.0).get_config() == {
        "name": "random_normal",
        "mean": 1.0,
        "stddev": 2.0,
    }
    assert initializers.GlorotUniform().get_config() == {"name": "glorot_uniform"}
    assert initializers.Constant(2).get_config() == {"name": "constant", "value": 2.0}


def test_get_instance_and_class():
    init = initializers.HeNormal()
    assert initializers.get(init) is init
    assert isinstance(initializers.get(initializers.Orthogonal), initializers.Orthogonal)


def test_get_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="glorot_uniform") as info:
        initializers.get("xavier")
    assert "'xavier'" in str(info.value)


@pytest.mark.parametrize("bad", [3, 1.5, None, ["zeros"], np.zeros(2)])
def test_get_bad_type(bad):
    with pytest.raises(TypeError, match="identifier"):
        initializers.get(bad)


def test_get_bad_dicts():
    with pytest.raises(ValueError, match="name"):
        initializers.get({"stddev": 1.0})
    with pytest.raises(ValueError, match="foo"):
        initializers.get({"name": "random_normal", "foo": 1})
    with pytest.raises(ValueError, match="stddev"):
        initializers.get({"name": "random_normal", "stddev": -1.0})
    with pytest.raises(ValueError, match="nope"):
        initializers.get({"name": "nope"})


def test_serialize_rejects_non_initializer():
    with pytest.raises(TypeError, match="init"):
        initializers.serialize("glorot_uniform")


# ---------------------------------------------------------------------------
# argument validation
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make,arg,received",
    [
        (lambda: initializers.RandomNormal(stddev=0.0), "stddev", "0.0"),
        (lambda: initializers.RandomNormal(stddev=-1.0), "stddev", "-1.0"),
        (lambda: initializers.TruncatedNormal(stddev=-0.1), "stddev", "-0.1"),
        (lambda: initializers.RandomNormal(mean=float("nan")), "mean", "nan"),
        (lambda: initializers.RandomUniform(1.0, 1.0), "minval", "1.0"),
        (lambda: initializers.RandomUniform(2.0, 1.0), "maxval", "1.0"),
        (lambda: initializers.Constant(float("inf")), "value", "inf"),
        (lambda: initializers.Orthogonal(gain=0.0), "gain", "0.0"),
        (lambda: initializers.VarianceScaling(scale=-1.0), "scale", "-1.0"),
        (lambda: initializers.VarianceScaling(mode="fan_sum"), "mode", "fan_sum"),
        (lambda: initializers.VarianceScaling(distribution="cauchy"), "distribution", "cauchy"),
    ],
)
def test_bad_parameters_raise_value_error(make, arg, received):
    with pytest.raises(ValueError) as info:
        make()
    message = str(info.value)
    assert arg in message and received in message


@pytest.mark.parametrize("bad", ["0.1", None, True])
def test_bad_parameter_types(bad):
    with pytest.raises(TypeError, match="stddev"):
        initializers.RandomNormal(stddev=bad)


@pytest.mark.parametrize(
    "shape,exc",
    [
        ((0, 3), ValueError),
        ((3, -1), ValueError),
        ((), ValueError),
        (3, TypeError),
        ((2.5, 3), TypeError),
        ((True, 3), TypeError),
        ("33", TypeError),
        (np.array([3, 3]), TypeError),
    ],
)
def test_bad_shapes(shape, exc):
    with pytest.raises(exc, match="shape"):
        initializers.GlorotUniform()(shape, rng())


@pytest.mark.parametrize("name", ["zeros", "glorot_uniform", "orthogonal"])
@pytest.mark.parametrize("bad", [None, 0, np.random.RandomState(0), np.random])
def test_rng_must_be_generator(name, bad):
    with pytest.raises(TypeError, match="rng"):
        initializers.get(name)((3, 3), bad)


# one rule everywhere: a type that cannot name a dtype is a TypeError, a string or
# numpy type naming anything but float32/float64 a ValueError
@pytest.mark.parametrize("bad,exc", [(np.int32, ValueError), ("float16", ValueError),
                                     (None, TypeError), (3, TypeError),
                                     ("not-a-dtype", ValueError)])
def test_bad_dtype(bad, exc):
    with pytest.raises(exc, match="dtype"):
        initializers.HeNormal()((3, 3), rng(), bad)


# ---------------------------------------------------------------------------
# property-based
# ---------------------------------------------------------------------------
shapes = st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**32 - 1), name=st.sampled_from(ALL_NAMES))
def test_property_shape_dtype_and_cast(shape, seed, name):
    if name == "orthogonal" and len(shape) < 2:
        return
    init = initializers.get(name)
    w64 = init(shape, np.random.default_rng(seed), np.float64)
    w32 = init(shape, np.random.default_rng(seed), np.float32)
    assert w64.shape == shape and w32.dtype == np.float32
    np.testing.assert_array_equal(w32, w64.astype(np.float32))


@settings(max_examples=60, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**32 - 1))
def test_property_bounds_hold_for_any_shape(shape, seed):
    if len(shape) == 1:
        fan_in = fan_out = shape[0]
    elif len(shape) == 2:
        fan_in, fan_out = shape
    else:
        fan_in, fan_out = shape[0] * shape[1], shape[0] * shape[2]
    r = np.random.default_rng(seed)
    w = initializers.GlorotUniform()(shape, r)
    assert np.abs(w).max() <= math.sqrt(6.0 / (fan_in + fan_out))
    w = initializers.HeNormal()(shape, r)
    assert np.abs(w).max() <= 2.0 * math.sqrt(2.0 / fan_in) / KERAS_TRUNC
