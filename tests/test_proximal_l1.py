"""L1 as a proximal step (soft thresholding after each update)."""
import numpy as np
import pytest

import descend as dn
from descend import _optim


def test_soft_threshold_kernel_against_numpy():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        w = rng.standard_normal(1000).astype(dtype)
        expected = np.sign(w) * np.maximum(np.abs(w.astype(np.float64)) - 0.3, 0)
        _optim.soft_threshold_py(w, 0.3, 1)
        np.testing.assert_allclose(w, expected, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="threshold"):
        _optim.soft_threshold_py(np.ones(3), -1.0, 1)


def _net(proximal, seed=1):
    net = dn.Sequential([dn.Dense(16, activation="tanh",
                                  kernel_regularizer=dn.regularizers.l1(1e-2, proximal=proximal)),
                         dn.Dense(3)], input_dim=5, seed=seed, dtype="float64", n_threads=1)
    net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(0.1))
    return net


def test_one_proximal_sgd_step_by_hand():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
    net = _net(True)
    w0 = [w.copy() for w in net.get_weights()]
    # the data gradient alone (proximal L1 is not in the gradient)
    plain = _net(False)
    plain.layers[0].kernel_regularizer = None
    grads = plain.gradients(X, y)
    net.train_on_batch(X, y)
    step = w0[0] - 0.1 * grads[0][0]
    expected = np.sign(step) * np.maximum(np.abs(step) - 0.1 * 1e-2, 0)
    np.testing.assert_allclose(net.layers[0].kernel, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(net.layers[0].bias, w0[1] - 0.1 * grads[0][1], rtol=1e-12)


def test_fused_fit_equals_per_batch_path_and_gives_exact_zeros():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 5))
    X[:, 3:] = 0.0                      # two dead inputs: their weights only shrink
    y = rng.integers(0, 3, 120)
    fused, stepped = _net(True), _net(True)
    fused.fit(X, y, epochs=1, batch_size=12, shuffle=False, verbose=0)
    for start in range(0, 120, 12):
        stepped.train_on_batch(X[start:start + 12], y[start:start + 12])
    for a, b in zip(fused.get_weights(), stepped.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # 60 more epochs: 600 steps of lr*l1 = 1e-3 exceed the largest initial |w| (0.53)
    fused.fit(X, y, epochs=60, batch_size=12, verbose=0)
    subgradient = _net(False)
    subgradient.fit(X, y, epochs=61, batch_size=12, verbose=0)
    assert (fused.layers[0].kernel[3:] == 0).all()          # dead inputs: exactly zero
    assert (subgradient.layers[0].kernel == 0).sum() < (fused.layers[0].kernel == 0).sum()


def test_proximal_flag_round_trips_and_is_checked(tmp_path):
    with pytest.raises(TypeError, match="proximal"):
        dn.regularizers.L1L2(l1=0.1, proximal="yes")
    net = _net(True)
    net.fit(np.ones((6, 5)), [0, 1, 2, 0, 1, 2], epochs=1, batch_size=None, verbose=0)
    net.save(tmp_path / "m.npz")
    assert dn.load(tmp_path / "m.npz").layers[0].kernel_regularizer.proximal is True
