"""descend.flush_subnormals (issue 12, fault 8): results differ only where
subnormal numbers occur, and every thread's floating-point state is
restored."""
import threading

import numpy as np
import pytest

import descend as dn
from descend import _fpenv

pytestmark = pytest.mark.skipif(not _fpenv.available(), reason="x86 MXCSR only")
TINY32 = np.finfo(np.float32).tiny      # the smallest normal float32


def fit(X, y, n_threads=2):
    net = dn.Sequential([dn.Dense(16, activation="relu"), dn.Dense(2)], input_dim=X.shape[1],
                        seed=0, dtype="float32", n_threads=n_threads)
    net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(0.1, momentum=0.9))
    net.fit(X, y, epochs=3, batch_size=300, verbose=0)
    return net.get_weights() + [net.predict(X)]


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 10)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(int)


def test_without_subnormals_the_results_are_bitwise_the_same(data):
    X, y = data
    plain = fit(X, y)
    with dn.flush_subnormals():
        flushed = fit(X, y)
    assert same(plain, flushed)


def test_subnormal_inputs_count_as_zeros(data):
    # the last five columns scaled into the subnormal range; their kernel
    # rows scaled by 1e38 so that x * w is of order 0.1
    X, y = data
    tiny = X.copy()
    tiny[:, 5:] *= np.float32(1e-39)
    assert np.count_nonzero(np.abs(tiny[:, 5:]) < TINY32) == tiny[:, 5:].size
    zeroed = X.copy()
    zeroed[:, 5:] = 0
    net = dn.Sequential([dn.Dense(16, activation="relu"), dn.Dense(2)], input_dim=10,
                        seed=0, dtype="float32", n_threads=2)
    weights = net.get_weights()
    weights[0][5:] *= np.float32(1e38)
    net.set_weights(weights)
    with dn.flush_subnormals():
        flushed = net.predict(tiny)
    assert np.array_equal(flushed, net.predict(zeroed))
    assert not np.allclose(net.predict(tiny), net.predict(zeroed))


def test_training_on_subnormal_inputs_equals_training_on_zeros(data):
    # weights and the momentum velocities equal those of a fit on zeros: with
    # the flag, and (the velocities' updates flushing their state) without it
    X, y = data
    tiny = X.copy()
    tiny[:, 5:] *= np.float32(1e-39)
    zeroed = X.copy()
    zeroed[:, 5:] = 0

    def fit_state(X):
        net = dn.Sequential([dn.Dense(16, activation="relu"), dn.Dense(2)], input_dim=10,
                            seed=0, dtype="float32", n_threads=2)
        net.compile(loss="softmax_cross_entropy",
                    optimizer=dn.optimizers.SGD(0.1, momentum=0.9))
        net.fit(X, y, epochs=3, batch_size=300, verbose=0)
        return net.get_weights() + net.optimizer.get_state()["arrays"][0]

    with dn.flush_subnormals():
        flushed = fit_state(tiny)
    assert same(flushed, fit_state(zeroed))
    assert same(fit_state(tiny), fit_state(zeroed))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", [
    lambda: dn.optimizers.Adam(0.01), lambda: dn.optimizers.AdamW(0.01),
    lambda: dn.optimizers.RMSprop(0.01, momentum=0.5), lambda: dn.optimizers.Adagrad(0.01),
    lambda: dn.optimizers.SGD(0.01, momentum=0.9)])
def test_optimizer_state_is_flushed_and_the_callers_bits_restored(dtype, optimizer):
    """Updates with state run with FTZ/DAZ (_optim.pyx: decaying state passes
    through the subnormal range on ordinary data, at a microcode assist an
    operation): a subnormal gradient counts as zero and no state holds a
    subnormal; normal values update as IEEE says; the caller's MXCSR is as
    it was. Plain SGD keeps IEEE (below)."""
    tiny = np.finfo(dtype).tiny
    w = np.array([0.5, -0.25, 1.0, 2.0], dtype)
    g_normal = np.array([0.1, -0.2, 0.0, 0.0], dtype)
    g_tiny = np.array([0.1, -0.2, tiny / 4, -tiny / 8], dtype)     # last two subnormal
    runs = []
    for g in (g_normal, g_tiny):
        opt = optimizer()
        params = [w.copy()]
        before = _fpenv.get_mxcsr()
        for _ in range(3):
            opt.apply_gradients(params, [g.copy()])
        assert _fpenv.get_mxcsr() == before
        state = [np.asarray(a) for a in opt.get_state()["arrays"][0]]
        runs.append(params + state)
        for array in runs[-1]:
            subnormal = (array != 0) & (np.abs(array) < tiny)
            assert not subnormal.any(), array
    assert same(runs[0], runs[1])
    assert not np.array_equal(runs[0][0][:2], w[:2])                  # it did update


def test_plain_sgd_keeps_ieee_subnormals():
    tiny = np.finfo(np.float32).tiny
    params = [np.array([0.0, 1.0], np.float32)]
    dn.optimizers.SGD(1.0).apply_gradients(params, [np.array([-tiny / 4, 0.0], np.float32)])
    assert params[0][0] == tiny / 4                                    # subnormal, kept


def test_every_threads_state_is_restored_even_after_an_error():
    before = _fpenv.get_mxcsr(), _fpenv.team_mxcsr(2).tolist()
    with pytest.raises(KeyError):
        with dn.flush_subnormals(n_threads=2):
            assert _fpenv.get_mxcsr() & _fpenv.FLUSH_BITS == _fpenv.FLUSH_BITS
            assert all(v & _fpenv.FLUSH_BITS == _fpenv.FLUSH_BITS
                       for v in _fpenv.team_mxcsr(2))
            with dn.flush_subnormals(n_threads=2):      # nested
                pass
            assert _fpenv.get_mxcsr() & _fpenv.FLUSH_BITS == _fpenv.FLUSH_BITS
            raise KeyError("inside")
    assert (_fpenv.get_mxcsr(), _fpenv.team_mxcsr(2).tolist()) == before
    assert np.float32(1e-39) * np.float32(1.0) != 0     # numpy is back to IEEE


def test_other_running_python_threads_are_not_affected():
    go, seen = threading.Event(), []

    def other():
        go.wait(30)
        seen.append(np.float32(1e-39) * np.float32(1))
    t = threading.Thread(target=other)
    t.start()                                   # started before the block
    with dn.flush_subnormals(n_threads=1):
        go.set()
        t.join()
        inside = np.float32(1e-39) * np.float32(1)
    assert seen[0] != 0 and inside == 0
