"""sample_weight and class_weight: the weighted mean loss sum(w l) / sum(w), in
both drivers (fit's compiled loop, train_on_batch's per-layer path), every
loss and optimizer, evaluate's scores, and the checks of bad weights."""
import copy

import numpy as np
import pytest

import descend as dn
from descend import _sample_weight

OPTIMIZERS = {
    "sgd": lambda: dn.optimizers.SGD(0.2),
    "momentum": lambda: dn.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "adam": lambda: dn.optimizers.Adam(0.05),
    "adamw": lambda: dn.optimizers.AdamW(0.05, weight_decay=0.01),
    "rmsprop": lambda: dn.optimizers.RMSprop(0.01, momentum=0.5),
    "adagrad": lambda: dn.optimizers.Adagrad(0.1),
}


def binary_data(n=30, d=3, seed=0):
    """30x3 inputs, 0/1 labels, and integer weights 1..3."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X @ np.array([1.0, -2.0, 0.5]) + 0.3 * rng.normal(size=n) > 0).astype(int)
    weights = rng.integers(1, 4, size=n)
    return X, y, weights


def make_net(loss="binary_cross_entropy", outputs=1, optimizer="sgd", d=3, seed=0,
             n_threads=1, **dense_kwargs):
    net = dn.Sequential([dn.Dense(6, activation="tanh", **dense_kwargs), dn.Dense(outputs)],
                        input_dim=d, dtype="float64", seed=seed, n_threads=n_threads)
    opt = OPTIMIZERS[optimizer]() if isinstance(optimizer, str) else optimizer
    return net.compile(loss=loss, optimizer=opt)


def assert_same_weights(a, b, rtol=1e-10, atol=1e-12):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- equivalence
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_fused_full_batch_integer_weights_equal_repeated_rows(optimizer):
    X, y, w = binary_data()
    weighted, repeated = make_net(optimizer=optimizer), make_net(optimizer=optimizer)
    h_w = weighted.fit(X, y, epochs=20, batch_size=None, verbose=0, sample_weight=w)
    h_r = repeated.fit(np.repeat(X, w, axis=0), np.repeat(y, w), epochs=20,
                       batch_size=None, verbose=0)
    assert_same_weights(weighted, repeated)
    np.testing.assert_allclose(h_w["loss"], h_r["loss"], rtol=1e-10)
    np.testing.assert_allclose(h_w["accuracy"], h_r["accuracy"], rtol=1e-12)
    # the weights moved: equal because of the weights, not because nothing happened
    assert not np.allclose(weighted.get_weights()[0], make_net().get_weights()[0])


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_reference_full_batch_integer_weights_equal_repeated_rows(optimizer):
    X, y, w = binary_data()
    weighted, repeated = make_net(optimizer=optimizer), make_net(optimizer=optimizer)
    Xr, yr = np.repeat(X, w, axis=0), np.repeat(y, w)
    for _ in range(20):
        loss_w = weighted.train_on_batch(X, y, sample_weight=w)
        loss_r = repeated.train_on_batch(Xr, yr)
        assert loss_w == pytest.approx(loss_r, rel=1e-12)
    assert_same_weights(weighted, repeated)


@pytest.mark.parametrize("loss, outputs", [("softmax_cross_entropy", 3),
                                           ("mean_squared_error", 2),
                                           ("binary_cross_entropy", 2)])
def test_every_loss_full_batch_weights_equal_repeated_rows(loss, outputs):
    """Softmax, multi-output regression and multi-label binary outputs, with an L1/L2
    penalty and clipping by norm, in both drivers."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(24, 3))
    if loss == "softmax_cross_entropy":
        y = np.arange(24) % 3
    elif loss == "mean_squared_error":
        y = X @ rng.normal(size=(3, 2))
    else:
        y = (rng.random((24, 2)) > 0.5).astype(int)
    w = rng.integers(0, 4, size=24)       # zeros too: a removed row
    w[:3] = 1
    reg = dn.regularizers.l1_l2(1e-3, 1e-2)

    def net():
        return make_net(loss, outputs, dn.optimizers.Adam(0.05, clipnorm=0.5),
                        kernel_regularizer=reg)
    Xr, yr = np.repeat(X, w, axis=0), np.repeat(y, w, axis=0)
    fused_w, fused_r, ref_w, ref_r = net(), net(), net(), net()
    fused_w.fit(X, y, epochs=10, batch_size=None, verbose=0, sample_weight=w)
    fused_r.fit(Xr, yr, epochs=10, batch_size=None, verbose=0)
    for _ in range(10):
        ref_w.train_on_batch(X, y, sample_weight=w)
        ref_r.train_on_batch(Xr, yr)
    assert_same_weights(fused_w, fused_r)
    assert_same_weights(ref_w, ref_r)
    assert_same_weights(fused_w, ref_w)


def test_scaling_all_weights_changes_nothing():
    """The weighted mean's scale invariance (unlike Keras' sum(w l) / n)."""
    X, y, w = binary_data()
    a, b = make_net(optimizer="momentum"), make_net(optimizer="momentum")
    ha = a.fit(X, y, epochs=3, batch_size=8, shuffle=False, verbose=0, sample_weight=w)
    hb = b.fit(X, y, epochs=3, batch_size=8, shuffle=False, verbose=0,
               sample_weight=10.0 * w)
    assert_same_weights(a, b, rtol=1e-12)
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=1e-12)


def test_unit_weights_train_bit_identically_to_no_weights():
    X, y, _ = binary_data()
    a, b = make_net(optimizer="adam"), make_net(optimizer="adam")
    a.fit(X, y, epochs=3, batch_size=7, verbose=0)
    b.fit(X, y, epochs=3, batch_size=7, verbose=0, sample_weight=np.ones(len(X)))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("strategy", ["team_general", "team_gemm_sgd"])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_mini_batches_equal_the_train_on_batch_loop(n_threads, dtype, strategy):
    """Mini-batches (a short last one), weights 0..3, an L2 penalty, and momentum
    with clipvalue (the general path) or plain SGD (the update through GEMM):
    the fused loop and the per-layer driver agree, loss log included."""
    X, y, _ = binary_data(n=50, seed=4)
    w = np.random.default_rng(9).integers(0, 4, size=50).astype(float)
    w[:8] = 0.0                           # the first batch weighs nothing
    reg = dn.regularizers.l2(1e-2)

    def net():
        n = dn.Sequential([dn.Dense(6, activation="relu", kernel_regularizer=reg),
                           dn.Dense(1)], input_dim=3, dtype=dtype, seed=2,
                          n_threads=n_threads)
        optimizer = (dn.optimizers.SGD(0.1) if strategy == "team_gemm_sgd"
                     else dn.optimizers.SGD(0.1, momentum=0.5, clipvalue=0.3))
        return n.compile(loss="binary_cross_entropy", optimizer=optimizer)
    fused, looped = net(), net()
    history = fused.fit(X, y, epochs=2, batch_size=8, shuffle=False, verbose=0,
                        sample_weight=w)
    assert fused.plan_ is not None and strategy_of(fused, X, w) == strategy
    epoch_losses = []
    for _ in range(2):
        total = 0.0
        for start in range(0, 50, 8):
            rows = slice(start, start + 8)
            total += looped.train_on_batch(X[rows], y[rows], sample_weight=w[rows]) * w[
                rows].sum()
        epoch_losses.append(total / w.sum())
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=1e-6)
    for a, b in zip(fused.get_weights(), looped.get_weights()):
        np.testing.assert_allclose(a, b, **tol)
    np.testing.assert_allclose(history["loss"], epoch_losses, rtol=tol["rtol"])


def strategy_of(net, X, w):
    """The batch path the compiled loop takes for net's settings."""
    from descend import training
    config = training.FitConfig.validate(net, X, np.zeros(len(X), int), epochs=0,
                                         batch_size=8, sample_weight=w)
    trainer = training.Trainer(net, config)
    trainer.prepare()
    return trainer.runner.strategy


@pytest.mark.parametrize("sparse_input", [True, False])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_sparse_first_layer_weights_equal_repeated_rows(sparse_input, optimizer):
    """Mostly-zero inputs through the first layer's sparse kernels (or dense)."""
    rng = np.random.default_rng(8)
    X = rng.random((30, 40)) * (rng.random((30, 40)) < 0.15)
    y = np.arange(30) % 3
    w = rng.integers(0, 4, size=30)
    w[:3] = 1

    def net():
        n = make_net("softmax_cross_entropy", 3, optimizer, d=40, n_threads=2)
        n.plan = {"sparse_input": sparse_input}
        return n
    weighted, repeated = net(), net()
    weighted.fit(X, y, epochs=5, batch_size=None, verbose=0, sample_weight=w)
    repeated.fit(np.repeat(X, w, axis=0), np.repeat(y, w), epochs=5, batch_size=None,
                 verbose=0)
    assert weighted.plan_["sparse_input"] == repeated.plan_["sparse_input"] == sparse_input
    assert_same_weights(weighted, repeated)


def test_fused_dropout_with_weights_uses_the_per_layer_masks():
    X, y, w = binary_data(n=40, seed=6)

    def net():
        n = dn.Sequential([dn.Dropout(0.2), dn.Dense(12, activation="relu"), dn.Dropout(0.5),
                           dn.Dense(1)], input_dim=3, dtype="float64", seed=6, n_threads=2)
        return n.compile(loss="binary_cross_entropy", optimizer=dn.optimizers.SGD(0.1))
    fused, looped = net(), net()
    epoch_seed = int(copy.deepcopy(fused._rng).integers(0, 2**63))
    history = fused.fit(X, y, epochs=1, batch_size=None, shuffle=False, verbose=0,
                        sample_weight=w)
    loss = looped.train_on_batch(X, y, seed=epoch_seed, sample_weight=w)
    assert history["loss"][0] == pytest.approx(loss, rel=1e-12)
    assert_same_weights(fused, looped, rtol=1e-12, atol=1e-14)


def test_weighted_gradient_is_the_weighted_mean_of_per_sample_gradients():
    """With dropout masks fixed by the seed: G(w) = sum_i w_i G(e_i) / sum_i w_i,
    where G(e_i) weighs sample i alone (same rows, same masks)."""
    X, y, w = binary_data(n=6, seed=2)
    net = dn.Sequential([dn.Dropout(0.3), dn.Dense(4, activation="tanh"), dn.Dense(1)],
                        input_dim=3, dtype="float64", seed=1)
    net.compile(loss="binary_cross_entropy", optimizer="sgd")
    got = net.gradients(X, y, training=True, seed=11, sample_weight=w)
    parts = [net.gradients(X, y, training=True, seed=11, sample_weight=np.eye(6)[i])
             for i in range(6)]
    for layer in range(2):
        for k in range(2):
            expected = sum(w[i] * parts[i][layer][k] for i in range(6)) / w.sum()
            np.testing.assert_allclose(got[layer][k], expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("driver", ["fused", "reference"])
def test_a_batch_whose_weights_sum_to_zero_moves_nothing_and_stays_finite(driver):
    """Plain SGD, no penalty: a zero-weight batch has gradient 0, loss 0, no NaN."""
    X, y, _ = binary_data(n=8)
    w = np.array([1.0, 2.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    net, first_half = make_net(), make_net()
    if driver == "fused":
        history = net.fit(X, y, epochs=1, batch_size=4, shuffle=False, verbose=0,
                          sample_weight=w)
        assert np.isfinite(history["loss"][0])
        first_half.fit(X[:4], y[:4], epochs=1, batch_size=4, shuffle=False, verbose=0,
                       sample_weight=w[:4])
        assert history["loss"][0] == pytest.approx(first_half.history["loss"][0], rel=1e-12)
    else:
        net.train_on_batch(X[:4], y[:4], sample_weight=w[:4])
        assert net.train_on_batch(X[4:], y[4:], sample_weight=w[4:]) == 0.0
        first_half.train_on_batch(X[:4], y[:4], sample_weight=w[:4])
    assert net.optimizer.iterations == 2 * first_half.optimizer.iterations
    assert_same_weights(net, first_half, rtol=0, atol=0)


def test_batch_size_one_positive_weights_do_not_change_the_step():
    """sum(w l) / sum(w) over one sample is l: only a zero weight (a skipped
    sample) changes plain SGD at batch size 1 (documented in fit)."""
    X, y, _ = binary_data(n=10)
    w = np.array([3.0, 0.5, 1.0, 2.0, 7.0, 0.0, 1.0, 1.0, 4.0, 1.0])
    weighted, plain, dropped = make_net(), make_net(), make_net()
    weighted.fit(X, y, epochs=1, batch_size=1, shuffle=False, verbose=0, sample_weight=w)
    plain.fit(np.delete(X, 5, axis=0), np.delete(y, 5), epochs=1, batch_size=1,
              shuffle=False, verbose=0)
    assert_same_weights(weighted, plain, rtol=1e-12, atol=1e-14)
    dropped.fit(X, y, epochs=1, batch_size=1, shuffle=False, verbose=0)
    assert not np.allclose(dropped.get_weights()[0], weighted.get_weights()[0])


def test_partial_fit_takes_sample_weight_as_fit_does():
    X, y, w = binary_data()
    a, b = make_net(optimizer="adam"), make_net(optimizer="adam")
    a.partial_fit(X, y, batch_size=10, sample_weight=w)
    b.fit(X, y, epochs=1, batch_size=10, verbose=0, sample_weight=w)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    with pytest.raises(ValueError, match="sample_weight must be >= 0"):
        a.partial_fit(X, y, sample_weight=-w)


# --------------------------------------------------------------------------- class_weight
def test_class_weight_equals_the_corresponding_sample_weight():
    X, y, w = binary_data()
    by_class, by_sample = make_net(optimizer="adam"), make_net(optimizer="adam")
    by_class.fit(X, y, epochs=3, batch_size=8, verbose=0, sample_weight=w,
                 class_weight={0: 1.0, 1: 2.5})
    by_sample.fit(X, y, epochs=3, batch_size=8, verbose=0,
                  sample_weight=w * np.where(y == 1, 2.5, 1.0))
    for a, b in zip(by_class.get_weights(), by_sample.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_class_weight_indices_follow_classes_and_default_to_one():
    """Keras' meaning: keys are positions in classes_ (here string labels)."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 3))
    names = np.array(["ant", "bee", "cat"])[np.arange(30) % 3]
    a, b = make_net("softmax_cross_entropy", 3), make_net("softmax_cross_entropy", 3)
    a.fit(X, names, epochs=2, batch_size=10, verbose=0, class_weight={2: 4.0})
    b.fit(X, names, epochs=2, batch_size=10, verbose=0,
          sample_weight=np.where(names == "cat", 4.0, 1.0))
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_balanced_class_weight_matches_scikit_learn():
    sklearn_utils = pytest.importorskip("sklearn.utils.class_weight")
    y = np.array([0] * 7 + [1] * 2 + [2] * 3)
    expected = sklearn_utils.compute_class_weight("balanced", classes=np.arange(3), y=y)
    got = _sample_weight.class_weights("balanced", y, 3)
    np.testing.assert_allclose(got, expected, rtol=1e-15)
    np.testing.assert_allclose(got, len(y) / (3 * np.bincount(y)), rtol=1e-15)
    sw = np.arange(1.0, 13.0)
    expected = sklearn_utils.compute_class_weight("balanced", classes=np.arange(3), y=y,
                                                  sample_weight=sw)
    np.testing.assert_allclose(_sample_weight.class_weights("balanced", y, 3, sw), expected,
                               rtol=1e-14)
    # and fit uses it
    X = np.random.default_rng(0).normal(size=(12, 3))
    a, b = make_net("softmax_cross_entropy", 3), make_net("softmax_cross_entropy", 3)
    a.fit(X, y, epochs=2, batch_size=5, verbose=0, class_weight="balanced")
    b.fit(X, y, epochs=2, batch_size=5, verbose=0, sample_weight=(len(y) / (
        3 * np.bincount(y)))[y])
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-14, atol=1e-15)


# --------------------------------------------------------------------------- evaluate
def test_evaluate_weighted_loss_and_accuracy_by_hand():
    """One linear logit o = x0 - x1 on four samples, weights 1, 2, 0, 3."""
    net = dn.Sequential([dn.Dense(1)], input_dim=2, dtype="float64", seed=0)
    net.compile(loss="binary_cross_entropy", optimizer="sgd")
    net.set_weights([np.array([[1.0], [-1.0]]), np.array([0.0])])
    X = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 3.0]])
    y = np.array([1, 1, 0, 0])
    w = np.array([1.0, 2.0, 0.0, 3.0])
    o = np.array([2.0, -1.0, 0.0, -3.0])
    per_sample = np.log1p(np.exp(o)) - o * y      # -log p(y | o)
    scores = net.evaluate(X, y, sample_weight=w)
    assert scores["loss"] == pytest.approx((per_sample * w).sum() / 6.0, rel=1e-14)
    # correct: samples 0 (o > 0, y = 1), 2 (o = 0, y = 0) and 3 (o < 0, y = 0);
    # sample 1 (o < 0, y = 1) wrong
    assert scores["accuracy"] == pytest.approx((1.0 + 3.0) / 6.0, rel=1e-15)
    unweighted = net.evaluate(X, y)
    assert unweighted["accuracy"] == pytest.approx(3 / 4)    # sample 2: o = 0 is class 0
    assert unweighted["loss"] == pytest.approx(per_sample.mean(), rel=1e-14)


def test_evaluate_weighted_regression_metrics_match_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    X, w = rng.normal(size=(20, 3)), rng.random(20)
    y = X @ rng.normal(size=(3, 2)) + 0.1
    net = make_net("mean_squared_error", 2)
    out = net.predict(X)
    scores = net.evaluate(X, y, sample_weight=w)
    assert scores["mse"] == pytest.approx(metrics.mean_squared_error(y, out, sample_weight=w),
                                          rel=1e-12)
    assert scores["mae"] == pytest.approx(metrics.mean_absolute_error(y, out,
                                                                      sample_weight=w),
                                          rel=1e-12)
    assert scores["r2"] == pytest.approx(metrics.r2_score(y, out, sample_weight=w), rel=1e-12)
    assert scores["loss"] == pytest.approx(scores["mse"], rel=1e-12)


def test_validation_data_weights_and_validation_split_weights():
    X, y, w = binary_data(n=40)
    net = make_net()
    history = net.fit(X[:30], y[:30], epochs=1, batch_size=10, verbose=0,
                      validation_data=(X[30:], y[30:], w[30:]))
    assert history["val_loss"][0] == pytest.approx(
        net.evaluate(X[30:], y[30:], sample_weight=w[30:])["loss"], rel=1e-12)
    split = make_net()
    history = split.fit(X, y, epochs=1, batch_size=10, verbose=0, sample_weight=w,
                        validation_split=0.25, shuffle=False)
    assert history["val_accuracy"][0] == pytest.approx(
        split.evaluate(X[30:], y[30:], sample_weight=w[30:])["accuracy"], rel=1e-12)
    # the training part trained with its own weights
    alone = make_net()
    alone.fit(X[:30], y[:30], epochs=1, batch_size=10, verbose=0, sample_weight=w[:30],
              shuffle=False)
    assert_same_weights(split, alone, rtol=0, atol=0)


# --------------------------------------------------------------------------- bad input
BAD_WEIGHTS = [
    (np.ones(29), ValueError, "sample_weight must be a 1-D array of 30"),
    (np.ones((30, 1)), ValueError, r"got shape \(30, 1\)"),
    (np.r_[-1.0, np.ones(29)], ValueError, "sample_weight must be >= 0, got -1.0 at index 0"),
    (np.r_[np.ones(29), np.nan], ValueError, "sample_weight must be finite, got nan at index 29"),
    (np.r_[np.inf, np.ones(29)], ValueError, "sample_weight must be finite, got inf"),
    (np.full(30, 1e308), ValueError, "sum overflows"),
    (np.array(["a"] * 30), TypeError, "sample_weight must hold real numbers"),
    ("heavy", TypeError, "sample_weight must be"),
    (2.0, ValueError, r"got shape \(\)"),
]


@pytest.mark.parametrize("weights, error, message", BAD_WEIGHTS)
@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch", "gradients"])
def test_bad_sample_weight_is_refused_before_any_state_changes(weights, error, message,
                                                               method):
    X, y, _ = binary_data()
    net = make_net(optimizer="adam")
    net.fit(X, y, epochs=1, batch_size=10, verbose=0)
    before = (net.get_weights(), net.optimizer.iterations, net.epochs_trained,
              dict(net.history))
    with pytest.raises(error, match=message):
        getattr(net, method)(X, y, sample_weight=weights)
    after = (net.get_weights(), net.optimizer.iterations, net.epochs_trained,
             dict(net.history))
    for a, b in zip(before[0], after[0]):
        np.testing.assert_array_equal(a, b)
    assert before[1:] == after[1:]


@pytest.mark.parametrize("method", ["fit", "evaluate"])
def test_all_zero_weights_are_refused_by_fit_and_evaluate(method):
    """(train_on_batch and gradients take them: one batch of a user's loop, loss
    and gradient 0, as such a batch inside fit.)"""
    X, y, _ = binary_data()
    net = make_net()
    with pytest.raises(ValueError, match="sample_weight: all the weights are zero"):
        getattr(net, method)(X, y, sample_weight=np.zeros(30))
    assert net.optimizer.iterations == 0
    grads = net.gradients(X, y, sample_weight=np.zeros(30))
    assert all(not g.any() for pair in grads for g in pair)


@pytest.mark.parametrize("class_weight, error, message", [
    ({2: 1.0}, ValueError, r"key 2, which is not a class index in \[0, 2\)"),
    ({"1": 1.0}, TypeError, "keys must be class indices"),
    ({0: -1.0}, ValueError, r"class_weight\[0\] must be a finite number >= 0"),
    ({0: float("nan")}, ValueError, r"class_weight\[0\] must be a finite number"),
    ({0: "x"}, TypeError, r"class_weight\[0\] must be a real number"),
    ("heavy", TypeError, "class_weight must be"),
    ([1.0, 2.0], TypeError, "class_weight must be"),
    ({0: 0.0, 1: 0.0}, ValueError, "all the weights are zero"),
])
def test_bad_class_weight_is_refused_before_any_state_changes(class_weight, error, message):
    X, y, _ = binary_data()
    net = make_net()
    with pytest.raises(error, match=message):
        net.fit(X, y, epochs=1, verbose=0, class_weight=class_weight)
    assert net.optimizer.iterations == 0 and net.epochs_trained == 0


def test_class_weight_needs_one_class_per_sample():
    X, y, _ = binary_data()
    with pytest.raises(ValueError, match="class_weight needs a classification loss"):
        make_net("mean_squared_error").fit(X, y * 1.0, verbose=0, class_weight={0: 1.0})
    with pytest.raises(ValueError, match="multi-label"):
        make_net(outputs=2).fit(X, np.c_[y, 1 - y], verbose=0, class_weight={0: 1.0})


def test_bad_validation_weights_and_split_leaving_zero_weights():
    X, y, w = binary_data()
    net = make_net()
    with pytest.raises(ValueError, match=r"validation_data\[2\] must be a 1-D array of 10"):
        net.fit(X[:20], y[:20], verbose=0, validation_data=(X[20:], y[20:], w[:5]))
    with pytest.raises(ValueError, match=r"validation_data\[2\] must be >= 0"):
        net.fit(X[:20], y[:20], verbose=0, validation_data=(X[20:], y[20:], -w[20:]))
    with pytest.raises(ValueError, match="length"):
        net.fit(X[:20], y[:20], verbose=0, validation_data=(X[20:], y[20:], w[20:], w[20:]))
    zero_head = np.r_[np.zeros(20), np.ones(10)]
    with pytest.raises(ValueError, match="training part .* all zero"):
        net.fit(X, y, verbose=0, sample_weight=zero_head, validation_split=1 / 3)
    assert net.optimizer.iterations == 0 and net.epochs_trained == 0
