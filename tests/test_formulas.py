"""Each formula once: the def twins of the fused loop's kernels, and the Python
driver reaching them (penalty, clipping by norm, accuracy, loss scale, dropout)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import descend as dn
from descend import _losses, _optim, _train, losses


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), l1=st.sampled_from([0.0, 0.01, 0.3]),
       l2=st.sampled_from([0.0, 0.02, 0.5]), proximal=st.booleans(), seed=st.integers(0, 99))
def test_penalize_py_is_the_penalty_and_its_gradient(n, l1, l2, proximal, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=n)
    g = rng.normal(size=n)
    expected_grad = g + 2 * l2 * w + (0.0 if proximal else l1 * np.sign(w))
    value = _train.penalize_py(w, g, l1, l2, proximal)
    assert value == pytest.approx(l1 * np.abs(w).sum() + l2 * (w ** 2).sum(), rel=1e-12)
    np.testing.assert_allclose(g, expected_grad, rtol=1e-12, atol=1e-15)


def test_clip_scale_py():
    assert _optim.clip_scale_py(1.0, 16.0) == pytest.approx(1.0 / (4.0 + 1e-6), rel=1e-15)
    assert _optim.clip_scale_py(5.0, 16.0) == 1.0
    assert _optim.clip_scale_py(1.0, 0.0) == 1.0
    with pytest.raises(ValueError):
        _optim.clip_scale_py(0.0, 1.0)


def test_mean_scale_py_per_sample_or_per_output():
    assert _losses.mean_scale_py(losses.SOFTMAX_CROSS_ENTROPY, 8, 3) == 1 / 8
    assert _losses.mean_scale_py(losses.BINARY_CROSS_ENTROPY, 8, 3) == 1 / 24
    assert _losses.mean_scale_py(losses.MEAN_SQUARED_ERROR, 8, 3) == 1 / 24
    for loss in (dn.losses.get("mse"), dn.losses.get("binary_cross_entropy"),
                 dn.losses.get("softmax_cross_entropy")):
        assert loss.grad_scale(8, 3) == _losses.mean_scale_py(loss.code, 8, 3)
    # weights: 1 / sum(w) (per output too); a batch of zero total weight gets 0
    assert _losses.mean_scale_py(losses.SOFTMAX_CROSS_ENTROPY, 2.5, 3) == 1 / 2.5
    assert _losses.mean_scale_py(losses.MEAN_SQUARED_ERROR, 2.5, 4) == 1 / 10
    assert _losses.mean_scale_py(losses.MEAN_SQUARED_ERROR, 0.0, 4) == 0.0
    with pytest.raises(ValueError):
        _losses.mean_scale_py(0, -1.0, 3)
    with pytest.raises(ValueError):
        _losses.mean_scale_py(0, float("nan"), 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_count_correct_py_against_numpy(dtype):
    rng = np.random.default_rng(0)
    output = rng.normal(size=(50, 4)).astype(dtype)
    labels = rng.integers(0, 4, size=50).astype(np.int32)
    assert _train.count_correct_py(losses.SOFTMAX_CROSS_ENTROPY, output, None, labels) == \
        int(np.sum(np.argmax(output, axis=1) == labels))
    targets = rng.integers(0, 2, size=(50, 4)).astype(dtype)
    assert _train.count_correct_py(losses.BINARY_CROSS_ENTROPY, output, targets, None) == \
        int(np.sum((output > 0) == (targets > 0.5)))
    assert _train.count_correct_py(losses.MEAN_SQUARED_ERROR, output, targets, None) == 0
    with pytest.raises(ValueError, match="labels"):
        _train.count_correct_py(losses.SOFTMAX_CROSS_ENTROPY, output, None, None)


@pytest.mark.parametrize("loss, k", [("softmax_cross_entropy", 3), ("binary_cross_entropy", 2)])
def test_fit_and_evaluate_count_accuracy_alike(loss, k):
    # full batch, a learning rate too small to move a weight: the epoch's
    # accuracy (the fused loop's count) is the one evaluate finds
    rng = np.random.default_rng(1)
    X = rng.normal(size=(64, 5))
    y = (rng.integers(0, 3, size=64) if loss == "softmax_cross_entropy"
         else rng.integers(0, 2, size=(64, k)))
    net = dn.Sequential([dn.Dense(6, activation="tanh"), dn.Dense(k)], input_dim=5,
                        dtype="float64", seed=0, n_threads=1)
    net.compile(loss, dn.optimizers.SGD(1e-300))
    history = net.fit(X, y, epochs=1, batch_size=None, shuffle=False, verbose=0)
    assert history["accuracy"][0] == net.evaluate(X, y)["accuracy"]


@pytest.mark.parametrize("clip", [{"clipnorm": 0.05}, {"global_clipnorm": 0.05}])
@pytest.mark.parametrize("proximal", [False, True])
def test_the_python_driver_steps_as_the_fused_loop(clip, proximal):
    # one full batch: train_on_batch (per layer, Python) and fit (fused) make
    # the same update, clipping and an L1/L2 penalty included
    rng = np.random.default_rng(2)
    X = rng.normal(size=(32, 4))
    y = rng.integers(0, 3, size=32)

    def make():
        reg = dn.regularizers.L1L2(l1=0.01, l2=0.02, proximal=proximal) if proximal else \
            dn.regularizers.L1L2(l1=0.01, l2=0.02)
        net = dn.Sequential([dn.Dense(5, activation="relu", kernel_regularizer=reg),
                             dn.Dense(3)], input_dim=4, dtype="float64", seed=3, n_threads=1)
        net.compile("softmax_cross_entropy", dn.optimizers.SGD(0.5, momentum=0.9, **clip))
        return net

    fused, driver = make(), make()
    fused.fit(X, y, epochs=1, batch_size=None, shuffle=False, verbose=0)
    driver.train_on_batch(X, y)
    for a, b in zip(fused.get_weights(), driver.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_dropout_layer_and_the_network_driver_share_one_mask():
    from descend.layers import dropout
    x = np.ones((6, 5))
    layer = dn.Dropout(0.4)
    np.testing.assert_array_equal(layer.forward(x, 7), dropout(x, 0.4, 7))
    np.testing.assert_array_equal(layer.backward(x, 7), layer.forward(x, 7))
