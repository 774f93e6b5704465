"""Semantics pinned by an audit against hand-computed numpy values."""
import numpy as np
import pytest

import descend as dn


def _linear_regressor():
    net = dn.Sequential([dn.Dense(1, kernel_initializer="zeros")], input_dim=2,
                        dtype="float64", seed=0, n_threads=1)
    net.compile(loss="mean_squared_error", optimizer=dn.optimizers.SGD(0.1))
    net.set_weights([np.array([[0.5], [-0.25]]), np.array([0.125])])
    return net


def _batch_losses(X, y, weights, batch_size, lr=0.1):
    """Each batch's weighted mean squared error and the rows' weight sum, as
    plain SGD on o = X w + b steps through the batches (by hand)."""
    w, b = np.array([0.5, -0.25]), 0.125
    losses, sums = [], []
    for start in range(0, len(X), batch_size):
        xb, tb, wb = (a[start:start + batch_size] for a in (X, y, weights))
        err = xb @ w + b - tb
        losses.append(np.sum(wb * err ** 2) / np.sum(wb))
        sums.append(np.sum(wb))
        grad = 2 * wb * err / np.sum(wb)
        w, b = w - lr * (xb.T @ grad), b - lr * np.sum(grad)
    return np.array(losses), np.array(sums)


X = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0], [-1.0, 1.5], [0.25, 0.75]])
y = np.array([1.0, -0.5, 2.0, 0.0, 1.5])


def test_epoch_loss_counts_each_batch_by_its_rows():
    # batches of 2, 2 and 1 rows: the short last batch counts half as much
    # as a full one (Keras's running mean), not as a full batch
    losses, rows = _batch_losses(X, y, np.ones(5), batch_size=2)
    history = _linear_regressor().fit(X, y, epochs=1, batch_size=2, shuffle=False,
                                      verbose=0)
    assert history["loss"][0] == pytest.approx(np.sum(rows * losses) / 5, rel=1e-12)
    assert abs(history["loss"][0] - losses.mean()) > 1e-3


def test_epoch_loss_with_sample_weights_counts_each_batch_by_its_weights():
    weights = np.array([1.0, 3.0, 0.5, 0.5, 4.0])
    losses, sums = _batch_losses(X, y, weights, batch_size=2)
    history = _linear_regressor().fit(X, y, epochs=1, batch_size=2, shuffle=False,
                                      verbose=0, sample_weight=weights)
    assert history["loss"][0] == pytest.approx(np.sum(sums * losses) / np.sum(sums),
                                               rel=1e-12)
