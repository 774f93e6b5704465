"""check_gradients' number, pinned: the documented relative error per array (the
largest discrepancy over the array's largest gradient, then the worst array),
and an array whose gradients are all zero (a layer of dead ReLUs) counted as 0
rather than 0/0."""
import warnings

import numpy as np
import pytest

import descend as dn

N, D, H = 6, 3, 4


def tanh_net(seed=0):
    net = dn.Sequential([dn.Dense(H, activation="tanh"), dn.Dense(3)], input_dim=D,
                        dtype="float64", seed=seed, n_threads=1)
    net.compile(loss="softmax_cross_entropy", optimizer="sgd")
    rng = np.random.default_rng(seed + 100)
    return net, rng.normal(size=(N, D)), rng.integers(0, 3, N)


def test_the_error_is_the_largest_discrepancy_over_the_arrays_largest_gradient(
        monkeypatch):
    net, X, y = tanh_net()
    backprop = net.gradients(X, y)
    numeric = dn.numerical_gradients(net, X, y)
    # a backward pass whose first kernel is off by 2% and whose last bias is off by
    # 5% of its largest entry in one place
    bump = np.zeros_like(backprop[1][1])
    bump[1] = 0.05 * np.abs(backprop[1][1]).max()
    wrong = [(backprop[0][0] * 1.02, backprop[0][1]), (backprop[1][0], backprop[1][1] + bump)]

    def expected_error(g_bp, g_fd):
        scale = max(np.abs(g_bp).max(), np.abs(g_fd).max())
        return np.abs(g_bp - g_fd).max() / scale
    per_array = [expected_error(g_bp, g_fd) for pair_bp, pair_fd in zip(wrong, numeric)
                 for g_bp, g_fd in zip(pair_bp, pair_fd)]
    # the gradients are below 1 here: a check that skipped small arrays would see nothing
    assert max(np.abs(g).max() for pair in backprop for g in pair) < 1
    assert 0.019 < per_array[0] < 0.0197         # 0.02 / 1.02 up to the differences' error
    assert 0.049 < per_array[3] < 0.051
    assert max(per_array[1], per_array[2]) < 1e-6

    monkeypatch.setattr(dn.Sequential, "gradients", lambda self, *a, **k: wrong)
    np.testing.assert_allclose(dn.check_gradients(net, X, y), max(per_array), rtol=1e-9)


def test_an_array_of_zero_gradients_counts_as_no_error(monkeypatch):
    # the first layer's units are dead (pre-activations far below 0): its kernel's and
    # bias's gradients are exactly 0 by backprop and by finite differences
    net = dn.Sequential([dn.Dense(H, activation="relu"), dn.Dense(3)], input_dim=D,
                        dtype="float64", seed=1, n_threads=1)
    net.compile(loss="softmax_cross_entropy", optimizer="sgd")
    kernel, bias, *rest = net.get_weights()
    net.set_weights([kernel, np.full_like(bias, -100.0)] + rest)
    X = np.random.default_rng(1).uniform(-1, 1, size=(N, D))
    y = np.array([0, 0, 0, 0, 1, 2])     # unbalanced: the last bias's gradient is not 0
    numeric = dn.numerical_gradients(net, X, y)
    assert not np.any(numeric[0][0]) and not np.any(numeric[0][1])
    assert np.all(net.gradients(X, y)[0][0] == 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no 0/0 on the way
        error = dn.check_gradients(net, X, y)
    assert 0 <= error < 1e-6
    # the last bias still counts (the last kernel's input is all 0 too): a wrong
    # gradient there is seen
    real = dn.Sequential.gradients
    monkeypatch.setattr(dn.Sequential, "gradients", lambda self, *a, **k: [
        pair if i == 0 else (pair[0], pair[1] * 1.01)
        for i, pair in enumerate(real(self, *a, **k))])
    assert 0.009 < dn.check_gradients(net, X, y) < 0.0100


def _float32_tanh_net():
    net = dn.Sequential([dn.Dense(3, activation="tanh"), dn.Dense(2)], input_dim=4,
                        seed=1, dtype="float32")
    net.compile("softmax_cross_entropy", "sgd")
    rng = np.random.default_rng(0)
    return net, rng.normal(size=(5, 4)).astype(np.float32), rng.integers(0, 2, 5)


def _flat(grads):
    return np.concatenate([a.ravel() for pair in grads for a in pair if a is not None])


def test_a_float32_network_gets_a_step_its_losses_can_resolve():
    # eps=1e-5 on float32 losses (rounding near 1e-7) was off by 2e-3 of the
    # largest gradient; the float32 default, 3e-3, by about 5e-6
    from descend.gradcheck import _as_float64
    net, X, y = _float32_tanh_net()
    exact = _flat(_as_float64(net).gradients(X, y))
    error = np.max(np.abs(_flat(dn.numerical_gradients(net, X, y)) - exact))
    assert error < 5e-5 * np.max(np.abs(exact))


def test_the_difference_is_divided_by_the_step_the_stored_weight_took():
    # a float32 weight of 100 moves by 7.6e-6, not 1e-5, for eps=1e-5: the
    # quotient by 2 eps was 24% off; y = 0 and one row x = 1: L = mean((w + b)^2)
    net = dn.Sequential([dn.Dense(1, kernel_initializer="zeros")], input_dim=1,
                        dtype="float32", seed=0)
    net.compile("mean_squared_error", "sgd")
    net.set_weights([np.array([[100.0]]), np.array([0.5])])
    (dW, db), = dn.numerical_gradients(net, np.ones((1, 1), np.float32),
                                       np.zeros((1, 1)), eps=1e-5)
    assert dW[0, 0] == pytest.approx(2 * 100.5, rel=2e-3)


def test_an_eps_below_the_weights_spacing_is_refused_with_the_weights_unchanged():
    net, X, y = _float32_tanh_net()
    before = [w.copy() for w in net.get_weights()]
    with pytest.raises(ValueError, match=r"eps=1e-12 is below half the spacing of the "
                                         r"float32 numbers .*use a larger eps"):
        dn.numerical_gradients(net, X, y, eps=1e-12)
    assert all(np.array_equal(a, b) for a, b in zip(before, net.get_weights()))


def test_an_eps_that_makes_the_loss_overflow_names_eps_with_the_weights_unchanged():
    # was: FloatingPointError "the loss is nan ...", naming neither eps nor
    # the step (w + 3e38 fits in float32; the outputs it gives do not)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 4)).astype(np.float32), rng.integers(0, 2, 5)
    net = dn.Sequential([dn.Dense(3, activation="relu"), dn.Dense(2)], input_dim=4, seed=1,
                        dtype="float32")
    net.compile("softmax_cross_entropy", "sgd")
    before = [w.copy() for w in net.get_weights()]
    with pytest.raises(ValueError, match=r"^eps=3e\+38 is too large for this network: with "
                                         r"the weight .* moved by it, the loss is nan.*"
                                         r"use a smaller eps$"):
        dn.numerical_gradients(net, X, y, eps=3e38)
    assert all(np.array_equal(a, b) for a, b in zip(before, net.get_weights()))
