"""Fuzzing the public entry points with hypothesis.

Random shapes, dtypes and values (NaN, inf, huge, tiny, empty) go to fit,
partial_fit, predict, evaluate, gradients, load and the scikit-learn
estimators. Each call must either raise a clear descend error (ValueError or
TypeError naming the problem; FloatingPointError / DivergenceError when the
numbers overflow) or return finite results: never a crash, a segfault, a NaN
or another exception type. Bounded: about 100 small examples per test.
"""
import contextlib
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import descend as dn  # noqa: E402

FUZZ = settings(max_examples=100, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
CLEAR_ERRORS = (ValueError, TypeError, FloatingPointError)   # DivergenceError included
# What random inputs may rightly warn about: a batch_size clipped to n, max_iter
# reached (ConvergenceWarning is a UserWarning), numpy casting NaN or inf. Only
# these are ignored; a DeprecationWarning or FutureWarning still fails the test.
EXPECTED_WARNINGS = (UserWarning, RuntimeWarning)


@contextlib.contextmanager
def expected_warnings_ignored():
    with warnings.catch_warnings():
        for category in EXPECTED_WARNINGS:
            warnings.simplefilter("ignore", category)
        yield
D = 3   # features of the fuzzed networks

SPECIAL = [0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e-300, 1e38, -1e38, 3e38,
           1e300, -1e300, 5e-324]
values = st.one_of(st.sampled_from(SPECIAL),
                   st.floats(allow_nan=True, allow_infinity=True, width=64),
                   st.floats(-10, 10))
dtypes = st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int8, np.uint8,
                          np.bool_, np.complex128, np.object_, np.str_])


@st.composite
def arrays(draw, ndim=None, n=None, d=None):
    """An array of a random dtype and a small shape, with special values."""
    if ndim is None:
        ndim = draw(st.sampled_from([0, 1, 2, 2, 2, 2, 3]))
    shape = []
    for axis in range(ndim):
        if axis == 0 and n is not None:
            shape.append(n)
        elif axis == 1 and d is not None:
            shape.append(d)
        else:
            shape.append(draw(st.integers(0, 6)))
    dtype = draw(dtypes)
    base = draw(hnp.arrays(np.float64, tuple(shape), elements=values))
    with expected_warnings_ignored(), np.errstate(all="ignore"):
        if dtype is np.str_:
            return base.astype(str)
        if dtype is np.object_:
            return base.astype(object)
        if np.issubdtype(dtype, np.integer) or dtype is np.bool_:
            clean = np.nan_to_num(base, nan=0, posinf=0, neginf=0)
            return np.clip(clean, -100, 100).astype(dtype)
        return base.astype(dtype)


@st.composite
def inputs(draw):
    """(X, y): mostly well-shaped with wild values, sometimes anything at all."""
    if draw(st.booleans()):
        n = draw(st.integers(0, 8))
        X = draw(arrays(ndim=2, n=n, d=draw(st.sampled_from([D, D, D, 1, 0]))))
        y = draw(st.one_of(
            hnp.arrays(np.int64, n, elements=st.integers(-2, 4)),
            arrays(ndim=1, n=n),
            arrays(ndim=2, n=n),
            st.just(np.array(["a", "b", "c"] * 3)[:n])))
    else:
        X = draw(st.one_of(arrays(), st.none(), st.just("X"), st.just([[1, 2, 3]]),
                           st.just([[1, 2], [3]])))
        y = draw(st.one_of(arrays(), st.none(), st.just([0]), st.just(0)))
    return X, y


def make_net(kind, dtype):
    if kind == "softmax":
        layers, loss = [dn.Dense(5, activation="tanh"), dn.Dense(3)], "softmax_cross_entropy"
    elif kind == "binary":
        layers, loss = [dn.Dense(4, activation="relu"), dn.Dense(1)], "binary_cross_entropy"
    else:
        layers, loss = [dn.Dense(4, activation="elu"), dn.Dense(1)], "mean_squared_error"
    net = dn.Sequential(layers, input_dim=D, dtype=dtype, seed=0, n_threads=1)
    net.compile(loss=loss, optimizer=dn.optimizers.SGD(0.05, momentum=0.5))
    return net


def assert_finite(value):
    if isinstance(value, dict):
        for v in value.values():
            assert_finite(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            if v is not None:
                assert_finite(v)
    else:
        array = np.asarray(value)
        if array.dtype.kind in "fc":
            assert np.isfinite(array).all(), value


def call(fn, *args, **kwargs):
    """fn's result, or None after a clear error (anything else fails the test)."""
    try:
        with expected_warnings_ignored():
            return fn(*args, **kwargs)
    except CLEAR_ERRORS as exc:
        assert str(exc), f"{type(exc).__name__} without a message"
        return None


nets = st.tuples(st.sampled_from(["softmax", "binary", "regression"]),
                 st.sampled_from(["float32", "float64"]))


@FUZZ
@given(net_spec=nets, data=inputs(), batch_size=st.sampled_from([1, 3, 32, None]),
       validation=st.booleans())
def test_fit_and_partial_fit_raise_clearly_or_train_finitely(net_spec, data, batch_size,
                                                             validation):
    X, y = data
    net = make_net(*net_spec)
    history = call(net.fit, X, y, epochs=2, batch_size=batch_size, verbose=0,
                   validation_split=0.3 if validation else 0.0)
    weights = net.get_weights()
    assert_finite(weights)
    if history is None:
        return
    assert_finite(dict(history))
    assert len(history.epoch) == 2
    if call(net.partial_fit, X, y) is not None:
        assert_finite(net.get_weights())
    for result in (call(net.predict, X), call(net.evaluate, X, y), call(net.gradients, X, y),
                   call(net.loss, X, y)):
        if result is not None:
            assert_finite(result)


@FUZZ
@given(net_spec=nets, data=inputs())
def test_predict_evaluate_gradients_raise_clearly_or_return_finite(net_spec, data):
    X, y = data
    net = make_net(*net_spec)
    for fn, args in ((net.predict, (X,)), (net.predict_proba, (X,)), (net.evaluate, (X, y)),
                     (net.gradients, (X, y)), (net.loss, (X, y)),
                     (net.train_on_batch, (X, y))):
        result = call(fn, *args)
        if result is not None:
            assert_finite(result)
    if net.loss_.is_classifier:
        call(net.predict_classes, X)
    assert_finite(net.get_weights())
    before = net.get_weights()
    if call(net.train_on_batch, X, y) is None:     # a rejected batch changes nothing
        for a, b in zip(before, net.get_weights()):
            np.testing.assert_array_equal(a, b)


@FUZZ
@given(weights=st.lists(arrays(), min_size=0, max_size=5), data=inputs())
def test_set_weights_raises_clearly_or_keeps_finite_weights(weights, data):
    net = make_net("softmax", "float32")
    before = net.get_weights()
    if call(net.set_weights, weights) is None and any(
            not np.array_equal(a, b) for a, b in zip(before, net.get_weights())):
        pytest.fail("a rejected set_weights changed the weights")
    assert_finite(net.get_weights())
    result = call(net.predict, data[0])
    if result is not None:
        assert_finite(result)


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    net = make_net("softmax", "float32")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, D))
    net.fit(X, np.arange(20) % 3, epochs=1, batch_size=4, verbose=0)
    path = tmp_path_factory.mktemp("fuzz") / "model.npz"
    net.save(path)
    return path.read_bytes()


@FUZZ
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                      max_size=8),
       cut=st.one_of(st.none(), st.floats(0, 1)),
       garbage=st.one_of(st.none(), st.binary(max_size=64)))
def test_load_of_damaged_files_raises_clearly_or_loads_a_working_model(
        model_bytes, tmp_path_factory, edits, cut, garbage):
    content = bytearray(model_bytes)
    for where, byte in edits:
        content[int(where * len(content))] = byte
    if cut is not None:
        content = content[:int(cut * len(content))]
    if garbage is not None:
        content = bytearray(garbage)
    path = tmp_path_factory.mktemp("damaged") / "model.npz"
    path.write_bytes(bytes(content))
    try:
        with expected_warnings_ignored():
            net = dn.load(path)
    except ValueError as exc:
        assert str(path) in str(exc)
        return
    X = np.ones((2, net.n_features_in_), dtype=net.dtype)
    result = call(net.predict, X)
    if result is not None:
        assert_finite(result)


@FUZZ
@given(data=inputs(), classifier=st.booleans(), solver=st.sampled_from(["adam", "sgd"]))
def test_sklearn_estimators_raise_clearly_or_fit_finitely(data, classifier, solver):
    pytest.importorskip("sklearn")
    X, y = data
    Est = dn.MLPClassifier if classifier else dn.MLPRegressor
    est = Est(hidden_layer_sizes=(4,), solver=solver, max_iter=3, random_state=0, n_threads=1)
    try:
        with expected_warnings_ignored():
            est.fit(X, y)
    except (ValueError, TypeError) as exc:       # rejected input: nothing was fitted
        assert str(exc) and not hasattr(est, "net_")
        return
    except FloatingPointError as exc:            # overflow in training: nothing fitted either
        assert "learning rate" in str(exc) and not hasattr(est, "net_")
        return
    assert_finite(est.net_.get_weights())
    result = call(est.predict, X)
    if result is not None and np.asarray(result).dtype.kind == "f":
        assert_finite(result)
