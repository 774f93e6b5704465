"""Backpropagation against finite differences, and against a hand-written backprop.

``dn.check_gradients`` compares ``net.gradients`` with central differences of
``net.loss`` in float64; every case must come out below 1e-6 (the bar is not
negotiable). A second, independent reference is a 2-layer tanh network
backpropagated by hand in numpy.
"""
import numpy as np
import pytest

import descend as dn

BAR = 1e-6
ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu"]
N, D, H = 5, 3, 4          # samples, features, hidden units

# (loss, outputs, how to draw y)
LOSSES = {
    "softmax_int": ("softmax_cross_entropy", 3, lambda r: r.integers(0, 3, N)),
    "softmax_onehot": ("softmax_cross_entropy", 3,
                       lambda r: np.eye(3, dtype=int)[r.integers(0, 3, N)]),
    "bce_1": ("binary_cross_entropy", 1, lambda r: r.integers(0, 2, N)),
    "bce_k": ("binary_cross_entropy", 3, lambda r: r.uniform(0, 1, (N, 3))),
    "mse_1": ("mean_squared_error", 1, lambda r: r.normal(size=N)),
    "mse_k": ("mean_squared_error", 2, lambda r: r.normal(size=(N, 2))),
}


def make_net(depth, activation, n_out, loss, seed, kernel_regularizer=None,
             bias_regularizer=None, dropout=0.0, dtype="float64"):
    """depth Dense layers; hidden ones use `activation`, and so does the only
    layer of a depth-1 net (the last layer of a deeper net outputs logits)."""
    layers = []
    for i in range(depth):
        last = i == depth - 1
        if dropout and (i > 0 or depth == 1):
            layers.append(dn.Dropout(dropout))
        layers.append(dn.Dense(n_out if last else H,
                               activation=activation if (depth == 1 or not last) else None,
                               kernel_regularizer=kernel_regularizer,
                               bias_regularizer=bias_regularizer))
    # one thread: these nets and batches are tiny (threaded kernels are checked
    # against one thread in test_kernels, and below with the numpy backprop)
    net = dn.Sequential(layers, input_dim=D, dtype=dtype, seed=seed, n_threads=1)
    rng = np.random.default_rng(seed + 1000)
    # nonzero biases, so that bias gradients and bias penalties are exercised
    net.set_weights([w if w.ndim == 2 else rng.normal(0, 0.3, w.shape)
                     for w in net.get_weights()])
    net.compile(loss=loss, optimizer="sgd")
    return net


def data(seed, y_maker):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, D)), y_maker(rng)


@pytest.mark.parametrize("loss_key", sorted(LOSSES))
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("depth", [1, 2, 5])
def test_backprop_matches_finite_differences(depth, activation, loss_key):
    loss, n_out, y_maker = LOSSES[loss_key]
    seed = depth * 100 + ACTIVATIONS.index(activation)
    net = make_net(depth, activation, n_out, loss, seed)
    X, y = data(seed, y_maker)
    grads = net.gradients(X, y)
    # every array is really checked: no all-zero gradient makes the check vacuous
    for dW, db in grads:
        assert np.abs(dW).max() > 0 and np.abs(db).max() > 0
    assert dn.check_gradients(net, X, y) < BAR


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_int_labels_and_one_hot_give_the_same_gradients(depth):
    net = make_net(depth, "tanh", 3, "softmax_cross_entropy", seed=1)
    rng = np.random.default_rng(2)
    X, labels = rng.normal(size=(N, D)), rng.integers(0, 3, N)
    g_int = net.gradients(X, labels)
    g_hot = net.gradients(X, np.eye(3)[labels])
    for (a, b), (c, d) in zip(g_int, g_hot):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


@pytest.mark.parametrize("loss_key", ["softmax_int", "bce_k", "mse_k"])
@pytest.mark.parametrize("reg", [dn.regularizers.l2(0.05), dn.regularizers.l1(0.02),
                                 dn.regularizers.l1_l2(0.02, 0.05)],
                         ids=["l2", "l1", "l1_l2"])
@pytest.mark.parametrize("depth", [1, 2, 5])
def test_gradients_with_penalties(depth, reg, loss_key):
    loss, n_out, y_maker = LOSSES[loss_key]
    net = make_net(depth, "tanh", n_out, loss, seed=depth, kernel_regularizer=reg,
                   bias_regularizer=reg)
    # keep every parameter away from L1's kink at 0 (|w| > 1e-2 >> eps)
    net.set_weights([np.where(np.abs(w) < 1e-2, np.copysign(0.05, w), w)
                     for w in net.get_weights()])
    X, y = data(depth, y_maker)
    plain = make_net(depth, "tanh", n_out, loss, seed=depth)
    plain.set_weights(net.get_weights())
    # the penalty really is in the loss and in the gradient
    penalty = sum(reg(w) for w in net.get_weights())
    assert net.loss(X, y) == pytest.approx(plain.loss(X, y) + penalty, rel=1e-12)
    for (a, _), (b, _), w in zip(net.gradients(X, y), plain.gradients(X, y),
                                 net.get_weights()[::2]):
        np.testing.assert_allclose(a - b, reg.l1 * np.sign(w) + 2 * reg.l2 * w, atol=1e-12)
    assert dn.check_gradients(net, X, y) < BAR


@pytest.mark.parametrize("loss_key", ["softmax_int", "bce_1", "mse_k"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("depth", [1, 2, 5])
def test_gradients_with_dropout(depth, activation, loss_key):
    loss, n_out, y_maker = LOSSES[loss_key]
    net = make_net(depth, activation, n_out, loss, seed=10 + depth, dropout=0.3)
    X, y = data(depth, y_maker)
    # dropout is active (a fixed mask) with training=True, off otherwise
    trained = net.gradients(X, y, training=True, seed=5)
    again = net.gradients(X, y, training=True, seed=5)
    inference = net.gradients(X, y)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(trained, again))
    assert not all(np.allclose(a[0], b[0]) for a, b in zip(trained, inference))
    assert dn.check_gradients(net, X, y, training=True, seed=5) < BAR
    assert dn.check_gradients(net, X, y, training=False) < BAR


def test_float32_network_is_checked_in_float64():
    net = make_net(2, "gelu", 3, "softmax_cross_entropy", seed=3, dtype="float32")
    X, y = data(3, LOSSES["softmax_int"][2])
    assert dn.check_gradients(net, X, y) < BAR
    assert net.layers[0].kernel.dtype == np.float32      # the network itself is untouched


def test_check_gradients_detects_a_wrong_gradient(monkeypatch):
    """The check is not vacuous: a backward pass off by 1% is caught."""
    net = make_net(2, "tanh", 3, "softmax_cross_entropy", seed=4)
    X, y = data(4, LOSSES["softmax_int"][2])
    real = dn.Sequential.gradients

    def wrong(self, *args, **kwargs):
        grads = real(self, *args, **kwargs)
        return [(dW * 1.01, db) for dW, db in grads]

    monkeypatch.setattr(dn.Sequential, "gradients", wrong)
    assert dn.check_gradients(net, X, y) > 1e-3


def test_check_runs_with_the_networks_thread_setting(monkeypatch):
    net = make_net(2, "tanh", 3, "softmax_cross_entropy", seed=4)
    X, y = data(4, LOSSES["softmax_int"][2])
    seen = []
    real = dn.Sequential.gradients

    def spy(self, *args, **kwargs):
        seen.append(self.n_threads)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(dn.Sequential, "gradients", spy)
    dn.check_gradients(net, X, y)
    assert seen == [1]


def test_parameters_restored_after_numerical_gradients():
    net = make_net(2, "relu", 2, "mean_squared_error", seed=6)
    X, y = data(6, LOSSES["mse_k"][2])
    before = net.get_weights()
    dn.numerical_gradients(net, X, y)
    for a, b in zip(before, net.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# an independent reference: a 2-layer tanh network backpropagated by hand
# ---------------------------------------------------------------------------
def numpy_backprop(X, labels, W1, b1, W2, b2):
    """Mean softmax cross-entropy of tanh(X W1 + b1) W2 + b2 and its gradients."""
    n = len(X)
    z1 = X @ W1 + b1
    h = np.tanh(z1)
    logits = h @ W2 + b2
    shifted = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(n), labels]))
    dlogits = p.copy()
    dlogits[np.arange(n), labels] -= 1
    dlogits /= n
    dW2 = h.T @ dlogits
    db2 = dlogits.sum(axis=0)
    dh = dlogits @ W2.T
    dz1 = dh * (1 - h ** 2)
    dW1 = X.T @ dz1
    db1 = dz1.sum(axis=0)
    return loss, [(dW1, db1), (dW2, db2)]


def numpy_backprop_mse(X, T, W1, b1, W2, b2):
    """Mean (over samples and outputs) squared error of the same network."""
    h = np.tanh(X @ W1 + b1)
    out = h @ W2 + b2
    loss = np.mean((out - T) ** 2)
    dout = 2 * (out - T) / out.size
    dz1 = dout @ W2.T * (1 - h ** 2)
    return loss, [(X.T @ dz1, dz1.sum(axis=0)), (h.T @ dout, dout.sum(axis=0))]


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("n", [1, 7, 40])
def test_gradients_match_hand_written_numpy_backprop(dtype, rtol, n):
    rng = np.random.default_rng(n)
    net = dn.Sequential([dn.Dense(6, activation="tanh"), dn.Dense(4)], input_dim=5,
                        dtype=dtype, seed=n)
    net.compile(loss="softmax_cross_entropy")
    weights = [rng.normal(0, 0.7, w.shape) for w in net.get_weights()]
    net.set_weights(weights)
    X = rng.normal(size=(n, 5))
    labels = rng.integers(0, 4, n)
    # the reference sees the parameters as the network stores them
    W1, b1, W2, b2 = (w.astype(dtype).astype(np.float64) for w in weights)
    X64 = X.astype(dtype).astype(np.float64)
    loss, expected = numpy_backprop(X64, labels, W1, b1, W2, b2)
    got = net.gradients(X, labels)
    assert net.loss(X, labels) == pytest.approx(loss, rel=rtol)
    for (dW, db), (eW, eb) in zip(got, expected):
        assert dW.dtype == np.dtype(dtype) and db.dtype == np.dtype(dtype)
        scale = np.abs(eW).max()
        np.testing.assert_allclose(dW, eW, rtol=rtol, atol=rtol * scale)
        np.testing.assert_allclose(db, eb, rtol=rtol, atol=rtol * np.abs(eb).max())


def test_mse_gradients_match_hand_written_numpy_backprop():
    rng = np.random.default_rng(11)
    net = dn.Sequential([dn.Dense(6, activation="tanh"), dn.Dense(3)], input_dim=4,
                        dtype="float64", seed=0)
    net.compile(loss="mean_squared_error")
    weights = [rng.normal(0, 0.7, w.shape) for w in net.get_weights()]
    net.set_weights(weights)
    X, T = rng.normal(size=(9, 4)), rng.normal(size=(9, 3))
    loss, expected = numpy_backprop_mse(X, T, *weights)
    assert net.loss(X, T) == pytest.approx(loss, rel=1e-13)
    for (dW, db), (eW, eb) in zip(net.gradients(X, T), expected):
        np.testing.assert_allclose(dW, eW, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(db, eb, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- check_gradients' arguments
# (each pins one argument that a mutant of gradcheck.py dropped or changed unnoticed)
def test_check_gradients_defaults_are_inference_mode_and_seed_0():
    net = make_net(2, "tanh", 3, "softmax_cross_entropy", seed=7, dropout=0.5)
    X, y = data(7, LOSSES["softmax_int"][2])
    default = dn.check_gradients(net, X, y)
    assert default == dn.check_gradients(net, X, y, training=False, seed=0)
    assert default != dn.check_gradients(net, X, y, training=True, seed=0)
    with_mask = dn.check_gradients(net, X, y, training=True)
    assert with_mask == dn.check_gradients(net, X, y, training=True, seed=0)
    assert with_mask != dn.check_gradients(net, X, y, training=True, seed=1)


def test_check_gradients_uses_its_eps():
    """A central difference's truncation error grows as eps^2: eps = 0.3 on a
    tanh net is far off where the default 1e-5 agrees."""
    net = make_net(2, "tanh", 3, "softmax_cross_entropy", seed=8)
    X, y = data(8, LOSSES["softmax_int"][2])
    assert dn.check_gradients(net, X, y) < BAR
    assert dn.check_gradients(net, X, y, eps=0.3) > 1e-4


def test_check_gradients_checks_every_layer_after_one_without_bias(monkeypatch):
    net = dn.Sequential([dn.Dense(H, activation="tanh", use_bias=False), dn.Dense(3)],
                        input_dim=D, dtype="float64", seed=9, n_threads=1)
    net.compile(loss="softmax_cross_entropy", optimizer="sgd")
    X, y = data(9, LOSSES["softmax_int"][2])
    assert dn.check_gradients(net, X, y) < BAR
    real = dn.Sequential.gradients

    def wrong_last_layer(self, *args, **kwargs):
        grads = real(self, *args, **kwargs)
        return grads[:-1] + [(grads[-1][0] * 1.01, grads[-1][1])]

    monkeypatch.setattr(dn.Sequential, "gradients", wrong_last_layer)
    assert dn.check_gradients(net, X, y) > 1e-3


def test_check_gradients_keeps_the_networks_classes():
    """y may hold a subset of the classes the network was trained on: labels
    are encoded with the network's classes_, as in net.gradients."""
    rng = np.random.default_rng(10)
    X = rng.normal(size=(6, D))
    labels = np.array(["ant", "bee", "cow"])
    net = dn.Sequential([dn.Dense(H, activation="tanh"), dn.Dense(3)], input_dim=D,
                        dtype="float64", seed=10, n_threads=1)
    net.compile(loss="softmax_cross_entropy", optimizer="sgd")
    net.fit(X, labels[np.arange(6) % 3], epochs=1, batch_size=None, verbose=0)
    only_cows = np.array(["cow"] * 6)
    assert dn.check_gradients(net, X, only_cows) < BAR


def test_numerical_gradients_defaults_are_eps_1e5_inference_mode_seed_0():
    net = make_net(2, "tanh", 3, "softmax_cross_entropy", seed=11, dropout=0.5)
    X, y = data(11, LOSSES["softmax_int"][2])

    def flat(grads):
        return np.concatenate([g.ravel() for pair in grads for g in pair])
    default = flat(dn.numerical_gradients(net, X, y))
    np.testing.assert_array_equal(
        default, flat(dn.numerical_gradients(net, X, y, eps=1e-5, training=False, seed=0)))
    for other in ({"eps": 1e-3}, {"training": True}):
        assert not np.array_equal(default, flat(dn.numerical_gradients(net, X, y, **other)))
    masked = flat(dn.numerical_gradients(net, X, y, training=True))
    np.testing.assert_array_equal(masked,
                                  flat(dn.numerical_gradients(net, X, y, training=True, seed=0)))
    assert not np.array_equal(masked,
                              flat(dn.numerical_gradients(net, X, y, training=True, seed=1)))


@pytest.mark.parametrize("check", [dn.numerical_gradients, dn.check_gradients])
@pytest.mark.parametrize("eps, error", [(0.0, ValueError), (-1e-5, ValueError),
                                        (float("nan"), ValueError), ("1e-5", TypeError)])
def test_eps_must_be_a_positive_number(check, eps, error):
    net = make_net(1, "tanh", 1, "mean_squared_error", seed=12)
    X, y = data(12, LOSSES["mse_1"][2])
    with pytest.raises(error, match=r"^eps must be "):
        check(net, X, y, eps=eps)


@pytest.mark.parametrize("check", [dn.numerical_gradients, dn.check_gradients])
def test_net_must_be_a_sequential_and_the_message_says_what_came(check):
    with pytest.raises(TypeError, match=r"^net must be a descend Sequential, got .*str"):
        check("not a net", np.ones((2, 2)), np.ones(2))
