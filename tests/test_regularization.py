"""Dropout, L1/L2 penalties and the default initializers of Dense."""
import math

import numpy as np
import pytest

import descend as dn
from descend import initializers


def _dropout_probe(rate, n, d, seed=0, dtype="float64"):
    """Dropout on the input of a Dense(1) with zero weights, MSE against -1.

    The output is 0 whatever the mask, so dL/do = 2 / n for every sample and
    dL/dW = 2 * (mean over samples of the dropped-out input): the gradient
    reads back the mean of what the dropout layer let through.
    """
    net = dn.Sequential([dn.Dropout(rate), dn.Dense(1)], input_dim=d, dtype=dtype, seed=seed)
    net.compile(loss="mean_squared_error", optimizer=dn.optimizers.SGD(0.1))
    net.set_weights([np.zeros((d, 1)), np.zeros(1)])
    return net, np.ones((n, d)), np.full(n, -1.0)


# ---------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [0.2, 0.5, 0.8])
def test_dropout_layer_drops_the_stated_fraction_and_scales_the_rest(rate):
    layer = dn.Dropout(rate)
    x = np.random.default_rng(0).uniform(1, 2, (500, 200))     # no zeros in x
    out = layer.forward(x, seed=11)
    dropped = out == 0
    assert abs(dropped.mean() - rate) < 5 * math.sqrt(rate * (1 - rate) / x.size)
    np.testing.assert_allclose(out[~dropped], x[~dropped] / (1 - rate), rtol=1e-15)
    # the mean activation is kept: E[out] = E[x]
    sd = math.sqrt(rate / (1 - rate) * np.mean(x ** 2) / x.size)
    assert abs(out.mean() - x.mean()) < 5 * sd
    # the backward pass uses the same mask
    grad = layer.backward(np.ones_like(x), seed=11)
    np.testing.assert_array_equal(grad == 0, dropped)


@pytest.mark.parametrize("rate", [0.25, 0.6])
def test_network_dropout_keeps_the_expected_activation(rate):
    n, d = 4000, 40
    net, X, y = _dropout_probe(rate, n, d)
    (dW, _), = net.gradients(X, y, training=True, seed=3)
    means = dW[:, 0] / 2                            # per-feature mean of the dropped input
    # each is (kept count / n) / (1 - rate): mean 1, sd sqrt(rate / ((1 - rate) n))
    sd = math.sqrt(rate / ((1 - rate) * n))
    assert abs(means.mean() - 1.0) < 5 * sd / math.sqrt(d)
    assert 0.6 * sd < means.std() < 1.4 * sd        # the mask is really random per element
    # without training the gradient sees the input itself
    (dW, _), = net.gradients(X, y)
    np.testing.assert_allclose(dW[:, 0], 2.0, rtol=1e-12)       # sum of n terms 2/n


def test_fused_fit_applies_dropout_with_the_stated_rate():
    rate, n, d, lr = 0.5, 2000, 50, 0.1
    net, X, y = _dropout_probe(rate, n, d, seed=5)
    net.fit(X, y, epochs=1, batch_size=None, verbose=0)
    W, b = net.get_weights()
    means = -W[:, 0] / (2 * lr)                     # W = -lr dW after one full-batch step
    sd = math.sqrt(rate / ((1 - rate) * n))
    assert abs(means.mean() - 1.0) < 5 * sd / math.sqrt(d)
    assert 0.6 * sd < means.std() < 1.4 * sd
    assert b[0] == pytest.approx(-lr * 2.0, rel=1e-14)   # the bias sees no dropout


def test_dropout_is_the_identity_at_predict():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 6))
    with_dropout = dn.Sequential([dn.Dropout(0.3), dn.Dense(8, activation="relu"),
                                  dn.Dropout(0.5), dn.Dense(3)], input_dim=6,
                                 dtype="float64", seed=2)
    plain = dn.Sequential([dn.Dense(8, activation="relu"), dn.Dense(3)], input_dim=6,
                          dtype="float64", seed=2)
    for net in (with_dropout, plain):
        net.compile(loss="softmax_cross_entropy")
    plain.set_weights(with_dropout.get_weights())
    y = rng.integers(0, 3, 30)
    np.testing.assert_array_equal(with_dropout.predict(X), plain.predict(X))
    np.testing.assert_array_equal(with_dropout.predict(X), with_dropout.predict(X))
    assert with_dropout.evaluate(X, y) == plain.evaluate(X, y)
    assert with_dropout.loss(X, y) == plain.loss(X, y)
    assert with_dropout.loss(X, y, training=True, seed=1) != plain.loss(X, y)
    # predict after training is still deterministic and dropout-free
    with_dropout.fit(X, y, epochs=2, batch_size=8, verbose=0)
    plain.set_weights(with_dropout.get_weights())
    np.testing.assert_array_equal(with_dropout.predict(X), plain.predict(X))


# ---------------------------------------------------------------------------
# L1 / L2
# ---------------------------------------------------------------------------
def _nets(reg_kernel, reg_bias=None, loss="softmax_cross_entropy", k=3):
    rng = np.random.default_rng(0)
    regularized = dn.Sequential(
        [dn.Dense(6, activation="tanh", kernel_regularizer=reg_kernel,
                  bias_regularizer=reg_bias),
         dn.Dense(k, kernel_regularizer=reg_kernel, bias_regularizer=reg_bias)],
        input_dim=4, dtype="float64", seed=0)
    plain = dn.Sequential([dn.Dense(6, activation="tanh"), dn.Dense(k)], input_dim=4,
                          dtype="float64", seed=0)
    weights = [rng.normal(0, 0.5, w.shape) for w in regularized.get_weights()]
    for net in (regularized, plain):
        net.compile(loss=loss, optimizer=dn.optimizers.SGD(0.1))
        net.set_weights(weights)
    return regularized, plain, weights


@pytest.mark.parametrize("l1,l2", [(0.01, 0.0), (0.0, 0.03), (0.01, 0.03)])
@pytest.mark.parametrize("on_bias", [False, True])
def test_penalty_in_the_reported_loss(l1, l2, on_bias):
    reg = dn.regularizers.L1L2(l1=l1, l2=l2)
    net, plain, weights = _nets(reg, reg if on_bias else None)
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(20, 4)), rng.integers(0, 3, 20)
    # the data loss by hand: mean softmax cross-entropy of the predicted probabilities
    proba = plain.predict(X)
    data_loss = -np.mean(np.log(proba[np.arange(20), y]))
    # the penalty by hand: kernels always, biases only with a bias_regularizer
    penalized = weights if on_bias else weights[::2]
    penalty = sum(l1 * np.abs(w).sum() + l2 * (w ** 2).sum() for w in penalized)
    assert net.loss(X, y) == pytest.approx(data_loss + penalty, rel=1e-12)
    assert net.evaluate(X, y)["loss"] == pytest.approx(data_loss + penalty, rel=1e-12)
    # fit reports it too (full batch: the epoch's loss is at the starting weights)
    history = net.fit(X, y, epochs=1, batch_size=None, verbose=0)
    assert history["loss"][0] == pytest.approx(data_loss + penalty, rel=1e-12)


@pytest.mark.parametrize("l1,l2", [(0.01, 0.0), (0.0, 0.03), (0.02, 0.05)])
def test_penalty_in_the_gradient(l1, l2):
    reg = dn.regularizers.L1L2(l1=l1, l2=l2)
    net, plain, weights = _nets(reg, reg)
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(10, 4)), rng.integers(0, 3, 10)
    got = [g for pair in net.gradients(X, y) for g in pair]
    base = [g for pair in plain.gradients(X, y) for g in pair]
    for g, b, w in zip(got, base, weights):
        # d/dw (l1 |w| + l2 w^2) = l1 sign(w) + 2 l2 w
        np.testing.assert_allclose(g - b, l1 * np.sign(w) + 2 * l2 * w, rtol=1e-10, atol=1e-14)


def test_l1_subgradient_is_zero_at_zero():
    reg = dn.regularizers.l1(0.5)
    net, plain, weights = _nets(reg)
    weights = [w.copy() for w in weights]
    weights[0][0, :3] = 0.0
    net.set_weights(weights)
    plain.set_weights(weights)
    X, y = np.random.default_rng(3).normal(size=(5, 4)), np.arange(5) % 3
    (dW, _), _ = net.gradients(X, y)
    (bW, _), _ = plain.gradients(X, y)
    np.testing.assert_array_equal(dW[0, :3], bW[0, :3])            # sign(0) = 0
    np.testing.assert_allclose(dW[0, 3:] - bW[0, 3:], 0.5 * np.sign(weights[0][0, 3:]),
                               rtol=1e-12)


def test_sgd_step_with_l1_and_l2_by_hand():
    """One SGD step: w <- w - lr (g_data + l1 sign(w) + 2 l2 w), in fit and train_on_batch."""
    l1, l2, lr = 0.05, 0.1, 0.2
    reg = dn.regularizers.L1L2(l1=l1, l2=l2)
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(8, 4)), rng.integers(0, 3, 8)
    for path in ("fit", "train_on_batch"):
        net, plain, weights = _nets(reg)
        net.optimizer = dn.optimizers.SGD(lr)
        data_grads = [g for pair in plain.gradients(X, y) for g in pair]
        if path == "fit":
            net.fit(X, y, epochs=1, batch_size=None, verbose=0)
        else:
            net.train_on_batch(X, y)
        for i, (w, g, new) in enumerate(zip(weights, data_grads, net.get_weights())):
            penalty_grad = (l1 * np.sign(w) + 2 * l2 * w) if i % 2 == 0 else 0.0
            np.testing.assert_allclose(new, w - lr * (g + penalty_grad), rtol=1e-12,
                                       atol=1e-15)


def test_l1_gathers_weights_near_zero_more_than_l2():
    """A subgradient step makes weights oscillate around zero rather than land on
    it: in a short run neither L1 nor L2 gives exact zeros, but L1 gathers far
    more weights within a few lr * l1 of zero than L2 with the same factor."""
    X, y = dn.datasets.load_digits()
    X_train, _, y_train, _ = dn.datasets.train_test_split(X, y, seed=0)
    near_zero = {}
    for name, reg in (("l1", dn.regularizers.l1(1e-3)), ("l2", dn.regularizers.l2(1e-3))):
        net = dn.Sequential([dn.Dense(64, activation="relu", kernel_regularizer=reg),
                             dn.Dense(10, kernel_regularizer=reg)], input_dim=64, seed=0,
                            n_threads=1)
        net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(0.1))
        net.fit(X_train, y_train, epochs=5, batch_size=32, verbose=0)
        kernel = net.get_weights()[0]
        near_zero[name] = int(np.sum(np.abs(kernel) < 1e-4))      # lr * l1 = 1e-4
    assert near_zero["l1"] > 10 * max(near_zero["l2"], 1)


# ---------------------------------------------------------------------------
# initializers used by Dense
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("activation,expected", [
    ("relu", initializers.HeNormal), ("leaky_relu", initializers.HeNormal),
    ("elu", initializers.HeNormal), ("gelu", initializers.HeNormal),
    ("tanh", initializers.GlorotUniform), ("sigmoid", initializers.GlorotUniform),
    ("softplus", initializers.GlorotUniform), (None, initializers.GlorotUniform),
    ("softmax", initializers.GlorotUniform)])
def test_default_kernel_initializer(activation, expected):
    layer = dn.Dense(3, activation=activation)
    assert type(layer.kernel_initializer) is expected
    assert type(layer.bias_initializer) is initializers.Zeros


def test_default_initializers_draw_the_right_distributions():
    fan_in, fan_out = 400, 300
    net = dn.Sequential([dn.Dense(fan_out, activation="relu"), dn.Dense(fan_out)],
                        input_dim=fan_in, dtype="float64", seed=0)
    relu_kernel, relu_bias, plain_kernel, plain_bias = net.get_weights()
    # he_normal (Keras): variance 2 / fan_in, normal truncated at 2 stddev of the
    # untruncated normal, stddev = sqrt(2 / fan_in) / 0.8796...
    assert relu_kernel.var() == pytest.approx(2 / fan_in, rel=0.02)
    untruncated_sd = math.sqrt(2 / fan_in) / 0.87962566103423978
    assert np.abs(relu_kernel).max() <= 2 * untruncated_sd
    assert np.abs(relu_kernel).max() > 1.9 * untruncated_sd
    # glorot_uniform: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)), for the
    # second layer (fan_in = fan_out = 300)
    limit = math.sqrt(6 / (fan_out + fan_out))
    assert np.abs(plain_kernel).max() < limit
    assert np.abs(plain_kernel).max() > 0.99 * limit
    assert plain_kernel.var() == pytest.approx(limit ** 2 / 3, rel=0.02)
    np.testing.assert_array_equal(relu_bias, 0.0)
    np.testing.assert_array_equal(plain_bias, 0.0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_seed_gives_the_same_weights(dtype):
    def build(seed):
        return dn.Sequential([dn.Dense(16, activation="relu"), dn.Dense(4, activation="tanh")],
                             input_dim=8, dtype=dtype, seed=seed).get_weights()
    np.random.seed(0)
    first = build(42)
    np.random.seed(1)
    second = build(42)
    other = build(43)
    for a, b in zip(first, second):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    assert not np.array_equal(first[2], other[2])
