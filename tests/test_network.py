"""Behaviour of the Sequential API: fit, predict, labels, dtypes, batches, errors."""
import math
import warnings

import numpy as np
import pytest

from descend.losses import _class_id_hint

import descend as dn


@pytest.fixture(scope="module")
def digits():
    X, y = dn.datasets.load_digits()
    return dn.datasets.train_test_split(X, y, seed=0)     # X_train, X_test, y_train, y_test


def digits_net(seed=0, dtype="float32", optimizer=None, dropout=0.0):
    layers = [dn.Dense(128, activation="relu")]
    if dropout:
        layers.append(dn.Dropout(dropout))
    layers.append(dn.Dense(10))
    net = dn.Sequential(layers, input_dim=64, dtype=dtype, seed=seed)
    net.compile(loss="softmax_cross_entropy",
                optimizer=optimizer or dn.optimizers.SGD(0.1, momentum=0.9))
    return net


def small_data(n=15, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)                      # every class present
    return X, y


def small_net(d=4, k=3, dtype="float64", seed=0, optimizer=None, loss="softmax_cross_entropy",
              n_threads=1, **dense_kwargs):
    # tiny nets run on one thread unless a test asks for more: OpenMP teams on
    # 4-row batches only cost time (and a lot of it on a loaded machine)
    net = dn.Sequential([dn.Dense(5, activation="tanh", **dense_kwargs), dn.Dense(k)],
                        input_dim=d, dtype=dtype, seed=seed, n_threads=n_threads)
    net.compile(loss=loss, optimizer=optimizer or dn.optimizers.SGD(0.1))
    return net


# ---------------------------------------------------------------------------
# training works, and is reproducible
# ---------------------------------------------------------------------------
def test_fit_digits_reaches_95_percent(digits):
    X_train, X_test, y_train, y_test = digits
    net = digits_net()
    history = net.fit(X_train, y_train, epochs=10, batch_size=32, verbose=0,
                      validation_data=(X_test, y_test))
    scores = net.evaluate(X_test, y_test)
    assert scores["accuracy"] >= 0.95
    assert history["val_accuracy"][-1] == pytest.approx(scores["accuracy"])
    assert np.mean(net.predict_classes(X_test) == y_test) == pytest.approx(scores["accuracy"])
    assert history["loss"][-1] < history["loss"][0] / 3


def test_same_seed_same_weights_whatever_the_global_numpy_state(digits):
    X_train, _, y_train, _ = digits
    runs = []
    for global_seed in (1, 12345):
        np.random.seed(global_seed)
        net = digits_net(seed=7, dropout=0.2)
        net.fit(X_train[:400], y_train[:400], epochs=2, batch_size=16, verbose=0)
        runs.append(net.get_weights())
    for a, b in zip(*runs):
        assert a.tobytes() == b.tobytes()
    other = digits_net(seed=8, dropout=0.2)
    other.fit(X_train[:400], y_train[:400], epochs=2, batch_size=16, verbose=0)
    assert not np.array_equal(other.get_weights()[0], runs[0][0])


def test_fit_does_not_touch_the_global_numpy_state(digits):
    X_train, _, y_train, _ = digits
    np.random.seed(3)
    before = np.random.get_state()[1].copy()
    digits_net(seed=1, dropout=0.1).fit(X_train[:100], y_train[:100], epochs=1, verbose=0)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept_end_to_end(dtype):
    X, y = small_data()
    net = small_net(dtype=dtype)
    net.fit(X.astype(np.float64 if dtype == "float32" else np.float32), y, epochs=2,
            batch_size=4, verbose=0)
    want = np.dtype(dtype)
    assert all(w.dtype == want for w in net.get_weights())
    assert all(layer.kernel.dtype == want for layer in net.dense_layers)
    assert all(s.dtype == want for arrays in net.optimizer.get_state()["arrays"] or []
               for s in arrays)
    assert net.predict(X).dtype == want
    assert net.predict(X.astype(np.int64)).dtype == want
    assert all(g.dtype == want for pair in net.gradients(X, y) for g in pair)


# ---------------------------------------------------------------------------
# batch sizes: batch, stochastic, mini-batch
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size,per_epoch", [(None, 1), (1, 15), (7, 3), (15, 1)])
def test_number_of_updates(batch_size, per_epoch):
    X, y = small_data(n=15)
    net = small_net()
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # no warning for these sizes
        net.fit(X, y, epochs=3, batch_size=batch_size, verbose=0)
    assert per_epoch == math.ceil(15 / (batch_size or 15))
    assert net.optimizer.iterations == 3 * per_epoch


def test_batch_larger_than_n_warns_once_and_is_clipped():
    X, y = small_data(n=15)
    net = small_net()
    clipped = small_net()
    with pytest.warns(UserWarning, match="batch_size=100 is larger than the 15") as record:
        net.fit(X, y, epochs=3, batch_size=100, verbose=0, shuffle=False)
    assert len([w for w in record if issubclass(w.category, UserWarning)]) == 1
    assert net.optimizer.iterations == 3
    clipped.fit(X, y, epochs=3, batch_size=None, verbose=0, shuffle=False)
    for a, b in zip(net.get_weights(), clipped.get_weights()):
        np.testing.assert_array_equal(a, b)


def _manual_sgd(net, X, y, batches, lr):
    """Plain SGD by hand over the given row slices, with gradients from backprop."""
    for rows in batches:
        grads = net.gradients(X[rows], y[rows])
        weights = net.get_weights()
        flat = [g for pair in grads for g in pair]
        net.set_weights([w - lr * g for w, g in zip(weights, flat)])


def test_short_last_batch_is_used_with_its_own_mean():
    X, y = small_data(n=15)
    net = small_net(optimizer=dn.optimizers.SGD(0.2))
    ref = small_net(optimizer=dn.optimizers.SGD(0.2))
    net.fit(X, y, epochs=1, batch_size=7, shuffle=False, verbose=0)
    _manual_sgd(ref, X, y, [slice(0, 7), slice(7, 14), slice(14, 15)], 0.2)
    for a, b in zip(net.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # without the last sample's update the weights would differ
    no_last = small_net(optimizer=dn.optimizers.SGD(0.2))
    _manual_sgd(no_last, X, y, [slice(0, 7), slice(7, 14)], 0.2)
    assert not np.allclose(no_last.get_weights()[0], net.get_weights()[0], rtol=1e-9)


@pytest.mark.parametrize("batch_size", [None, 1, 4])
def test_full_batch_and_stochastic_descent_by_hand(batch_size):
    X, y = small_data(n=9)
    net = small_net(optimizer=dn.optimizers.SGD(0.3))
    ref = small_net(optimizer=dn.optimizers.SGD(0.3))
    net.fit(X, y, epochs=2, batch_size=batch_size, shuffle=False, verbose=0)
    size = batch_size or 9
    batches = [slice(s, s + size) for s in range(0, 9, size)] * 2
    _manual_sgd(ref, X, y, batches, 0.3)
    for a, b in zip(net.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("optimizer", [
    lambda: dn.optimizers.SGD(0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda: dn.optimizers.Adam(0.01, amsgrad=True, clipnorm=0.5),
    lambda: dn.optimizers.AdamW(0.01, global_clipnorm=0.3),
    lambda: dn.optimizers.RMSprop(0.01, centered=True, momentum=0.5, clipvalue=0.05),
    lambda: dn.optimizers.Adagrad(0.1, decay_bias=True, weight_decay=0.01),
], ids=["sgd-nesterov", "adam-amsgrad-clipnorm", "adamw-global", "rmsprop-clipvalue",
        "adagrad-decay-bias"])
@pytest.mark.parametrize("n,batch_size", [(23, 5), (70, 24)])   # 1 and 2 OpenMP threads
def test_fused_fit_equals_train_on_batch_loop(optimizer, n, batch_size):
    X, y = small_data(n=n)
    reg = dn.regularizers.l1_l2(1e-3, 1e-2)
    threads = 1 if batch_size < 8 else 2
    fused = small_net(optimizer=optimizer(), kernel_regularizer=reg, n_threads=threads)
    looped = small_net(optimizer=optimizer(), kernel_regularizer=reg, n_threads=threads)
    history = fused.fit(X, y, epochs=2, batch_size=batch_size, shuffle=False, verbose=0)
    losses = []
    for _ in range(2):
        epoch_loss = 0.0
        for start in range(0, n, batch_size):
            rows = slice(start, start + batch_size)
            epoch_loss += looped.train_on_batch(X[rows], y[rows]) * len(X[rows])
        losses.append(epoch_loss / n)
    updates = 2 * math.ceil(n / batch_size)
    assert fused.optimizer.iterations == looped.optimizer.iterations == updates
    for a, b in zip(fused.get_weights(), looped.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    for a, b in zip(fused.optimizer.get_state()["arrays"], looped.optimizer.get_state()["arrays"]):
        for s, t in zip(a, b):
            np.testing.assert_allclose(s, t, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(history["loss"], losses, rtol=1e-10)


# ---------------------------------------------------------------------------
# targets
# ---------------------------------------------------------------------------
def test_int_one_hot_and_string_labels_train_the_same():
    X, ids = small_data(n=30)
    names = np.array(["cat", "dog", "emu"])
    nets = {kind: small_net(seed=3) for kind in ("int", "onehot", "str")}
    nets["int"].fit(X, ids, epochs=3, batch_size=8, verbose=0)
    nets["onehot"].fit(X, np.eye(3, dtype=int)[ids], epochs=3, batch_size=8, verbose=0)
    nets["str"].fit(X, names[ids], epochs=3, batch_size=8, verbose=0)
    for kind in ("onehot", "str"):
        for a, b in zip(nets["int"].get_weights(), nets[kind].get_weights()):
            np.testing.assert_array_equal(a, b)
    assert nets["str"].classes_.tolist() == ["cat", "dog", "emu"]
    predicted = nets["str"].predict_classes(X)
    assert predicted.dtype.kind == "U"
    np.testing.assert_array_equal(predicted, names[nets["int"].predict_classes(X)])
    assert nets["str"].evaluate(X, names[ids]) == pytest.approx(nets["int"].evaluate(X, ids))


def test_unsorted_string_labels_map_through_classes():
    X, ids = small_data(n=30)
    y = np.array(["zebra", "ant", "moth"])[ids]
    net = small_net()
    net.fit(X, y, epochs=1, batch_size=None, verbose=0)
    assert net.classes_.tolist() == ["ant", "moth", "zebra"]
    proba = net.predict(X)
    np.testing.assert_array_equal(net.predict_classes(X), net.classes_[proba.argmax(axis=1)])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)


def test_binary_string_labels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.where(X[:, 0] > 0, "yes", "no")
    net = dn.Sequential([dn.Dense(4, activation="tanh"), dn.Dense(1, activation="sigmoid")],
                        input_dim=3, dtype="float64", seed=0)
    net.compile(loss="binary_cross_entropy", optimizer=dn.optimizers.SGD(0.5))
    net.fit(X, y, epochs=30, batch_size=8, verbose=0)
    assert net.classes_.tolist() == ["no", "yes"]
    assert net.predict(X).shape == (40, 1)
    assert set(net.predict_classes(X).tolist()) <= {"no", "yes"}
    assert net.evaluate(X, y)["accuracy"] >= 0.9


@pytest.mark.parametrize("k,one_d", [(1, True), (1, False), (3, False)])
def test_regression_targets(k, one_d):
    rng = np.random.default_rng(k)
    X = rng.normal(size=(60, 4))
    T = X @ rng.normal(size=(4, k)) + 0.5
    y = T[:, 0] if one_d else T
    net = dn.Sequential([dn.Dense(k)], input_dim=4, dtype="float64", seed=0, n_threads=1)
    net.compile(loss="mean_squared_error", optimizer=dn.optimizers.SGD(0.1))
    before = net.evaluate(X, y)
    history = net.fit(X, y, epochs=60, batch_size=10, verbose=0)
    scores = net.evaluate(X, y)
    assert set(scores) == {"loss", "mse", "mae", "r2"}
    assert net.predict(X).shape == (60, k)
    assert scores["mse"] < 1e-3 * before["mse"]
    assert scores["r2"] > 0.999
    assert scores["loss"] == pytest.approx(np.mean((net.predict(X) - T) ** 2), rel=1e-10)
    assert "accuracy" not in history
    with pytest.raises(TypeError):
        net.predict_classes(X)


# ---------------------------------------------------------------------------
# history
# ---------------------------------------------------------------------------
def test_history_logs_every_epoch():
    X, y = small_data(n=20)
    Xv, yv = small_data(n=9, seed=1)
    net = small_net()
    history = net.fit(X, y, epochs=4, batch_size=6, verbose=0, validation_data=(Xv, yv),
                      gradient_norms=True)
    assert history is net.history and history.history is history
    assert history.epoch == [0, 1, 2, 3]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds",
                "samples_per_second", "grad_norm_0", "grad_norm_1"):
        assert len(history[key]) == 4, key
        assert all(np.isfinite(history[key])), key
    assert history["learning_rate"] == [0.1] * 4
    assert all(0 <= a <= 1 for a in history["accuracy"] + history["val_accuracy"])
    assert history["val_loss"][-1] == pytest.approx(net.evaluate(Xv, yv)["loss"])


def test_full_batch_epoch_loss_is_the_loss_before_the_update():
    X, y = small_data(n=20)
    net = small_net(kernel_regularizer=dn.regularizers.l2(0.01))
    loss_before = net.loss(X, y)
    accuracy_before = net.evaluate(X, y)["accuracy"]
    history = net.fit(X, y, epochs=1, batch_size=None, verbose=0)
    assert history["loss"][0] == pytest.approx(loss_before, rel=1e-12)
    assert history["accuracy"][0] == pytest.approx(accuracy_before)


# ---------------------------------------------------------------------------
# bad input: a clear error, and the model unchanged
# ---------------------------------------------------------------------------
@pytest.fixture
def trained():
    X, y = small_data(n=15)
    net = small_net(optimizer=dn.optimizers.Adam(0.01))
    net.fit(X, y, epochs=1, batch_size=4, verbose=0)
    return net, X, y


def _snapshot(net):
    state = net.optimizer.get_state()
    return (net.get_weights(), state["iterations"],
            [a.copy() for arrays in state["arrays"] for a in arrays],
            None if net.classes_ is None else net.classes_.copy(), net.optimizer.learning_rate)


def _assert_unchanged(net, snap):
    weights, iterations, arrays, classes, lr = snap
    now = _snapshot(net)
    for a, b in zip(weights, now[0]):
        np.testing.assert_array_equal(a, b)
    assert now[1] == iterations
    for a, b in zip(arrays, now[2]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(now[3], classes)
    assert now[4] == lr


def _bad_inputs(X, y):
    X_nan = X.copy()
    X_nan[2, 1] = np.nan
    X_inf = X.copy()
    X_inf[0, 0] = np.inf
    y_out = y.copy()
    y_out[3] = 3
    y_neg = y.copy()
    y_neg[0] = -1
    return {
        "length": (X, y[:-2], ValueError, r"len\(X\) = 15.*len\(y\) = 13"),
        "nan": (X_nan, y, ValueError, "NaN or infinite"),
        "inf": (X_inf, y, ValueError, "NaN or infinite"),
        "empty": (X[:0], y[:0], ValueError, "0 samples"),
        "features": (X[:, :3], y, ValueError, "3 features, but the network expects 4"),
        "class_id": (X, y_out, ValueError, r"class ids outside \[0, 3\): \[3\]"),
        "negative_id": (X, y_neg, ValueError, r"class ids outside \[0, 3\): \[-1\]"),
        "one_d": (X[:, 0], y, ValueError, "must be 2-D"),
        "strings": (np.array([["a"] * 4] * 15), y, TypeError, "real numbers"),
    }


CASES = ["length", "nan", "inf", "empty", "features", "class_id", "negative_id", "one_d",
         "strings"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("method", ["fit", "train_on_batch", "evaluate", "gradients"])
def test_bad_input_raises_and_leaves_the_model_unchanged(trained, case, method):
    net, X, y = trained
    Xb, yb, error, message = _bad_inputs(X, y)[case]
    snap = _snapshot(net)
    call = getattr(net, method)
    with pytest.raises(error, match=message):
        if method == "fit":
            call(Xb, yb, epochs=2, batch_size=None, verbose=0)
        else:
            call(Xb, yb)
    _assert_unchanged(net, snap)


@pytest.mark.parametrize("case", ["nan", "inf", "empty", "features", "one_d", "strings"])
def test_bad_X_at_predict(trained, case):
    net, X, y = trained
    Xb, _, error, message = _bad_inputs(X, y)[case]
    snap = _snapshot(net)
    for method in (net.predict, net.predict_classes):
        with pytest.raises(error, match=message):
            method(Xb)
    _assert_unchanged(net, snap)


def test_bad_validation_data_leaves_the_model_unchanged(trained):
    net, X, y = trained
    snap = _snapshot(net)
    with pytest.raises(ValueError, match=r"len\(validation_data\[0\]\) = 15"):
        net.fit(X, y, epochs=1, verbose=0, validation_data=(X, y[:4]))
    with pytest.raises(ValueError, match="NaN"):
        net.fit(X, y, epochs=1, verbose=0, validation_data=(X * np.nan, y))
    _assert_unchanged(net, snap)


def test_bad_fit_arguments(trained):
    net, X, y = trained
    snap = _snapshot(net)
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 1, got 0 \(int\)"):
        net.fit(X, y, batch_size=0, verbose=0)
    with pytest.raises(TypeError, match=r"batch_size must be an int >= 1, got 2.5 "
                                        r"\(float\)"):
        net.fit(X, y, batch_size=2.5, verbose=0)
    with pytest.raises(ValueError, match=r"epochs must be an int >= 0, got -1 \(int\)"):
        net.fit(X, y, epochs=-1, verbose=0)
    _assert_unchanged(net, snap)


def test_unknown_string_label_at_evaluate():
    X, ids = small_data(n=30)
    net = small_net()
    net.fit(X, np.array(["a", "b", "c"])[ids], epochs=1, batch_size=None, verbose=0)
    with pytest.raises(ValueError, match="not in classes_"):
        net.evaluate(X[:2], np.array(["a", "zzz"]))


def test_failed_fit_on_an_unbuilt_network_changes_nothing():
    X, y = small_data(n=15)
    bad = y.copy()
    bad[0] = 7
    net = dn.Sequential([dn.Dense(5, activation="tanh"), dn.Dense(3)], dtype="float64", seed=4)
    net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.Adam(0.01))
    with pytest.raises(ValueError, match="class ids outside"):
        net.fit(X, bad, epochs=1, batch_size=None, verbose=0)
    assert not net.built and net.classes_ is None and net.optimizer.iterations == 0
    # the network's random stream did not move: the next fit is the seed's fit
    net.fit(X, y, epochs=1, batch_size=None, verbose=0)
    fresh = dn.Sequential([dn.Dense(5, activation="tanh"), dn.Dense(3)], dtype="float64", seed=4)
    fresh.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.Adam(0.01))
    fresh.fit(X, y, epochs=1, batch_size=None, verbose=0)
    for a, b in zip(net.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# the fused loop's special paths against the per-layer path
# ---------------------------------------------------------------------------
def _wide_net(optimizer, dtype="float64", n_threads=1, activation="relu", d=70,
              hidden=(80, 9), k=3, loss="softmax_cross_entropy", use_bias=True, **dense_kwargs):
    """Kernels with more than 64 rows: several phase-B blocks per layer."""
    layers = [dn.Dense(h, activation=activation, use_bias=use_bias, **dense_kwargs)
              for h in hidden]
    layers.append(dn.Dense(k, **dense_kwargs))
    net = dn.Sequential(layers, input_dim=d, dtype=dtype, seed=3, n_threads=n_threads)
    net.compile(loss=loss, optimizer=optimizer)
    return net


def _sparse_inputs(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (n, d))
    X[rng.uniform(size=(n, d)) < 0.7] = 0.0          # mostly zero, like image pixels
    return X


def _loop(net, X, y, batch_size, epochs):
    for _ in range(epochs):
        for start in range(0, len(X), batch_size):
            net.train_on_batch(X[start:start + batch_size], y[start:start + batch_size])


@pytest.mark.parametrize("by_columns", [False, True])
@pytest.mark.parametrize("batch_size", [1, 5, 40])
@pytest.mark.parametrize("case", ["sgd", "sgd_l2_decay", "sgd_l1", "sgd_clipnorm", "momentum"])
def test_fused_paths_equal_the_per_layer_path_on_wide_layers(case, batch_size, by_columns):
    """Plain SGD takes special fused paths (per-sample sparse updates for batch 1,
    the update folded into the GEMM with L2 / weight decay); all must equal the
    per-layer path, on layers wider than one block of kernel rows. by_columns:
    the plan asks for team_by_columns (2 threads; clipping by norm and batch 1
    plain SGD keep their own paths, and the recorded plan says so)."""
    settings = {
        "sgd": (lambda: dn.optimizers.SGD(0.05), {}),
        "sgd_l2_decay": (lambda: dn.optimizers.SGD(0.05, weight_decay=0.01),
                         {"kernel_regularizer": dn.regularizers.l2(0.01)}),
        "sgd_l1": (lambda: dn.optimizers.SGD(0.05),
                   {"kernel_regularizer": dn.regularizers.l1_l2(1e-3, 1e-3),
                    "bias_regularizer": dn.regularizers.l2(1e-2)}),
        "sgd_clipnorm": (lambda: dn.optimizers.SGD(0.05, clipnorm=0.1), {}),
        "momentum": (lambda: dn.optimizers.SGD(0.05, momentum=0.9, decay_bias=True,
                                               weight_decay=1e-3), {}),
    }
    make, kwargs = settings[case]
    n = 83
    X = _sparse_inputs(n, 70)
    y = np.random.default_rng(1).integers(0, 3, n)
    fused = _wide_net(make(), n_threads=2 if by_columns else 1, **kwargs)
    fused.plan = {"by_columns": True} if by_columns else None
    looped = _wide_net(make(), **kwargs)
    history = fused.fit(X, y, epochs=2, batch_size=batch_size, shuffle=False, verbose=0)
    _loop(looped, X, y, batch_size, 2)
    runs_by_columns = by_columns and case != "sgd_clipnorm" and not (
        batch_size == 1 and case == "sgd")
    assert fused.plan_["by_columns"] is runs_by_columns
    assert fused.optimizer.iterations == looped.optimizer.iterations == 2 * math.ceil(
        n / batch_size)
    for a, b in zip(fused.get_weights(), looped.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert np.isfinite(history["loss"]).all()


@pytest.mark.parametrize("loss,k,activation", [("mean_squared_error", 2, "relu"),
                                               ("binary_cross_entropy", 1, "tanh"),
                                               ("softmax_cross_entropy", 4, "leaky_relu")])
def test_stochastic_plain_sgd_equals_per_layer_path(loss, k, activation):
    """batch_size=1 plain SGD (the per-sample sparse path), hidden layers without
    bias, zero inputs and zero-derivative ReLU units included."""
    n, d = 37, 12
    X = _sparse_inputs(n, d, seed=2)
    rng = np.random.default_rng(3)
    y = rng.normal(size=(n, k)) if loss == "mean_squared_error" else (
        rng.integers(0, 2, n) if k == 1 else rng.integers(0, k, n))
    nets = [_wide_net(dn.optimizers.SGD(0.05), activation=activation, d=d, hidden=(9, 7),
                      k=k, loss=loss, use_bias=False) for _ in range(2)]
    history = nets[0].fit(X, y, epochs=2, batch_size=1, shuffle=False, verbose=0)
    losses = []
    for _ in range(2):
        losses.append(np.mean([nets[1].train_on_batch(X[i:i + 1], y[i:i + 1])
                               for i in range(n)]))
    for a, b in zip(nets[0].get_weights(), nets[1].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(history["loss"], losses, rtol=1e-10)


@pytest.mark.parametrize("optimizer", [lambda: dn.optimizers.SGD(0.05),
                                       lambda: dn.optimizers.Adam(0.01, global_clipnorm=1.0)],
                         ids=["sgd", "adam-global-clip"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_fit_is_bit_identical_for_any_thread_count(optimizer, dtype):
    X = _sparse_inputs(150, 70)
    y = np.random.default_rng(4).integers(0, 3, 150)
    weights = []
    for threads in (1, 2):
        net = _wide_net(optimizer(), dtype=dtype, n_threads=threads)
        net.fit(X, y, epochs=2, batch_size=50, verbose=0)
        weights.append(net.get_weights())
    for a, b in zip(*weights):
        assert a.tobytes() == b.tobytes()


def test_fused_dropout_uses_the_same_masks_as_the_per_layer_path():
    """One full batch with dropout on the input and between hidden layers: fit
    draws its epoch seed from the network's generator right after the (skipped)
    shuffle; train_on_batch with that seed must build the same masks, forward
    and backward, across the fused loop's blocks of samples."""
    import copy

    X = _sparse_inputs(50, 20)
    y = np.random.default_rng(5).integers(0, 3, 50)

    def net():
        n = dn.Sequential([dn.Dropout(0.2), dn.Dense(30, activation="relu"), dn.Dropout(0.5),
                           dn.Dense(10, activation="tanh"), dn.Dropout(0.3), dn.Dense(3)],
                          input_dim=20, dtype="float64", seed=6, n_threads=2)
        n.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(0.1))
        return n

    fused, looped = net(), net()
    epoch_seed = int(copy.deepcopy(fused._rng).integers(0, 2**63))
    history = fused.fit(X, y, epochs=1, batch_size=None, shuffle=False, verbose=0)
    loss = looped.train_on_batch(X, y, seed=epoch_seed)
    assert history["loss"][0] == pytest.approx(loss, rel=1e-12)
    for a, b in zip(fused.get_weights(), looped.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # and the masks matter: another seed gives other weights
    other = net()
    other.train_on_batch(X, y, seed=epoch_seed + 1)
    assert not np.allclose(other.get_weights()[0], fused.get_weights()[0])


def test_fortran_ordered_and_strided_inputs_give_the_same_results():
    X, y = small_data(n=40, d=4)
    wide = np.zeros((40, 8))
    wide[:, ::2] = X                                     # a strided view equal to X
    inputs = {"c": X, "fortran": np.asfortranarray(X), "strided": wide[:, ::2]}
    results = {}
    for name, data in inputs.items():
        net = small_net(seed=2)
        net.fit(data, y, epochs=2, batch_size=8, verbose=0)
        results[name] = (net.get_weights(), net.predict(data), net.predict(X))
    for name in ("fortran", "strided"):
        for a, b in zip(results["c"][0], results[name][0]):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(results["c"][1], results[name][1])
        np.testing.assert_array_equal(results[name][1], results[name][2])


def test_predict_in_chunks_and_single_rows():
    """predict works through the rows in chunks: the result must not depend on them."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 4))
    net = small_net(seed=1)
    full = net.predict(X)
    assert full.shape == (20_000, 3)
    np.testing.assert_allclose(full[:9000], net.predict(X[:9000]), rtol=1e-14)
    np.testing.assert_allclose(full[-1:], net.predict(X[-1:]), rtol=1e-14)
    np.testing.assert_allclose(full.sum(axis=1), 1.0, rtol=1e-13)
    np.testing.assert_array_equal(net.predict_classes(X), full.argmax(axis=1))


# ---------------------------------------------------------------------------
# the losses' target encoding, each message in full (each pins a mutant that
# survived `python tests/mutation.py losses`)
# ---------------------------------------------------------------------------
def _raises(exc, message):
    import re
    return pytest.raises(exc, match="^" + re.escape(message) + "$")


def test_mse_encode_shapes_dtype_and_messages():
    mse = dn.losses.get("mse")
    t, labels, classes = mse.encode(np.array([1, 2, 3]), 1)
    assert t.shape == (3, 1) and t.dtype == np.float32 and labels is None and classes is None
    np.testing.assert_array_equal(mse.encode([[1.0, 2.0]], 2, dtype=np.float64)[0], [[1, 2]])
    with _raises(TypeError, "y must hold real-valued targets for mean_squared_error, got "
                            "dtype <U1"):
        mse.encode(np.array(["a"]), 1)
    with _raises(ValueError, "y must have shape (n, 2) to match the 2 outputs, got shape "
                             "(3, 3)"):
        mse.encode(np.zeros((3, 3)), 2)
    with _raises(ValueError, "t must have shape (n, 2) to match the 2 outputs, got shape "
                             "(3,)"):
        mse.encode(np.zeros(3), 2, name="t")
    with _raises(ValueError, "y contains NaN or infinite values"):
        mse.encode(np.array([np.inf]), 1)


def test_bce_encode_multilabel_and_messages():
    bce = dn.losses.get("binary_cross_entropy")
    t, labels, classes = bce.encode(np.array([[0, 1], [1, 1]]), 2)
    assert t.dtype == np.float32 and labels is None and classes.tolist() == [0, 1]
    given = np.array(["no", "yes"])
    assert bce.encode(np.array([[0, 1]]), 2, classes=given)[2] is given
    with _raises(ValueError, "y must hold targets in [0, 1] for binary_cross_entropy"):
        bce.encode(np.array([[0.5, 1.5]]), 2)
    with _raises(ValueError, "y must hold targets in [0, 1] for binary_cross_entropy"):
        bce.encode(np.array([[-0.5, 1.0]]), 2)
    with _raises(ValueError, "y must have shape (n, 3) with values in [0, 1] for 3 binary "
                             "outputs, got shape (4,)"):
        bce.encode(np.zeros(4), 3)
    with _raises(ValueError, "y must be 1-D labels or (n, 1), got shape (2, 2)"):
        bce.encode(np.zeros((2, 2)), 1, classes=np.array([0, 1]))
    with _raises(ValueError, "y contains NaN or infinite labels"):
        bce.encode(np.array([0.0, np.nan]), 1)


def test_bce_encode_labels_and_classes():
    bce = dn.losses.get("binary_cross_entropy")
    # (n, 1) labels with declared classes are read as a column of labels
    t, _, classes = bce.encode(np.array([["b"], ["a"]]), 1, classes=np.array(["a", "b"]))
    assert t.ravel().tolist() == [1.0, 0.0] and t.shape == (2, 1)
    # 0/1 labels keep their meaning even when only 1 occurs; the classes keep y's dtype
    t, _, classes = bce.encode(np.array([1, 1], dtype=np.int16), 1)
    assert t.ravel().tolist() == [1.0, 1.0] and classes.dtype == np.int16
    assert classes.tolist() == [0, 1]
    t, _, classes = bce.encode(np.array([5, 7, 5]), 1)
    assert classes.tolist() == [5, 7] and t.ravel().tolist() == [0.0, 1.0, 0.0]
    with _raises(ValueError, "binary_cross_entropy takes two classes, but y has a single "
                             "class: [5]; use 0/1 labels, or declare both with "
                             "partial_fit(classes=...)"):
        bce.encode(np.array([5, 5]), 1)
    with _raises(ValueError, "binary_cross_entropy takes two classes, but y has 12 classes: "
                             f"{list(range(10))}; use 0/1 labels, or declare both with "
                             "partial_fit(classes=...)"):
        bce.encode(np.arange(12), 1)


def test_softmax_encode_one_hot_and_messages():
    sce = dn.losses.get("softmax_cross_entropy")
    t, labels, classes = sce.encode(np.array([[0, 0, 1], [1, 0, 0]]), 3)
    assert t is None and labels.dtype == np.int32 and labels.tolist() == [2, 0]
    assert classes.tolist() == [0, 1, 2]
    given = np.array(["a", "b", "c"])
    assert sce.encode(np.array([[0, 1, 0]]), 3, classes=given)[2] is given
    # a column of ids is read as ids
    assert sce.encode(np.array([[2], [1]]), 3)[1].tolist() == [2, 1]
    with _raises(ValueError, "one-hot y has 3 columns, but the network has 2 outputs"):
        sce.encode(np.eye(3), 2)
    not_one_hot = "2-D y must be one-hot rows (a single 1 per row); give class ids as a 1-D " \
                  "array instead"
    for bad in (np.array([["1", "0"]]), np.array([[2, -1]]), np.array([[1, 1]]),
                np.array([[0, 0]])):
        with _raises(ValueError, not_one_hot):
            sce.encode(bad, 2)
    with _raises(ValueError, "y must be 1-D labels or 2-D one-hot, got shape (1, 1, 2)"):
        sce.encode(np.zeros((1, 1, 2)), 2)
    with _raises(ValueError, "y contains NaN or infinite labels"):
        sce.encode(np.array([0.0, np.nan]), 2)
    with _raises(ValueError, "y has 3 distinct labels, but the network has 2 outputs; pass "
                             "integer class ids or match the last layer's units to the number "
                             "of classes"):
        sce.encode(np.array(["a", "b", "c"]), 2)


def test_label_ids_messages():
    sce = dn.losses.get("softmax_cross_entropy")
    assert sce.encode(np.array([2, 0]), 3)[1].tolist() == [2, 0]
    with _raises(ValueError, f"y has class ids outside [0, 3): {list(range(3, 13))}"
                             + _class_id_hint(3)):
        sce.encode(np.array([-0] + list(range(3, 14))), 3)
    with _raises(ValueError, "y has class ids outside [0, 3): [-1, 3]" + _class_id_hint(3)):
        sce.encode(np.array([-1, 3, 0]), 3)
    classes = np.array([f"c{i:02d}" for i in range(22)])
    with _raises(ValueError, f"y has labels not in classes_ {classes.tolist()[:20]}: "
                             f"{[f'x{i:02d}' for i in range(10)]}"):
        sce.encode(np.array([f"x{i:02d}" for i in range(11)]), 22, classes=classes)
    with _raises(TypeError, "y labels of type object cannot be compared with classes_ of "
                            "type <U3"):
        sce.encode(np.array([5, 6], dtype=object), 22, classes=classes)
    with _raises(TypeError, "y labels must be comparable with each other (all numbers or "
                            "all strings), got a mix of ['int', 'str']"):
        sce.encode(np.array([1] * 500 + ["a"] * 500 + [None], dtype=object), 2)


def test_loss_get_repr_and_identity_link():
    assert repr(dn.losses.get("mse")) == "MeanSquaredError()"
    assert repr(dn.losses.get("cross_entropy")) == "SoftmaxCrossEntropy()"
    o = np.array([[1.5, -2.0]])
    assert dn.losses.get("mse").apply_link(o) is o
    with _raises(ValueError, "loss must be one of ['binary_cross_entropy', "
                             "'mean_squared_error', 'softmax_cross_entropy'] (or aliases "
                             "['binary_crossentropy', 'categorical_crossentropy', "
                             "'cross_entropy', 'mse', 'sparse_categorical_crossentropy']) or "
                             "a descend Loss, got 'hinge' (str)"):
        dn.losses.get("hinge")
    with pytest.raises(TypeError, match=r"^loss must be one of .*, got 3 \(int\)$"):
        dn.losses.get(3)


# --------------------------------------------------------------------------- summary
def test_summary_prints_like_keras_and_returns_none(capsys):
    # was: printed and returned the text, so a REPL showed the table twice
    net = dn.Sequential([dn.Dense(4, activation="relu"), dn.Dense(3)], input_dim=5, seed=0)
    assert net.summary() is None
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "Sequential"
    assert printed[-1] == "total parameters: 39  dtype: float32"      # 5*4+4 + 4*3+3
    assert [line.split()[-1] for line in printed[2:4]] == ["24", "15"]
    lines = []
    assert net.summary(print_fn=lines.append) is None
    assert lines == printed and capsys.readouterr().out == ""      # one call per line
    with pytest.raises(TypeError, match="print_fn must be a callable .* got 'x' \\(str\\)"):
        net.summary(print_fn="x")


# --------------------------------------------------------------------------- exact answers
def test_label_errors_name_the_argument_that_holds_the_labels():
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = np.arange(40) % 3
    net = dn.Sequential([dn.Dense(4, activation="relu"), dn.Dense(3)], input_dim=3, seed=0,
                        n_threads=1)
    net.compile("softmax_cross_entropy", "sgd")
    net.fit(X, y, epochs=1, verbose=0)
    bad = np.array([0, 1, 7, 1, 0])
    with pytest.raises(ValueError) as info:
        net.evaluate(X[:5], bad)
    assert str(info.value) == "y has class ids outside [0, 3): [7]" + _class_id_hint(3)
    with pytest.raises(ValueError) as info:
        net.fit(X, y, epochs=1, verbose=0, validation_data=(X[:5], bad))
    assert str(info.value) == ("validation_data[1] has class ids outside [0, 3): [7]"
                               + _class_id_hint(3))


def test_from_config_names_what_it_got_instead_of_a_layers_list():
    with pytest.raises(ValueError) as info:
        dn.Sequential.from_config({"layers": "Dense"})
    assert str(info.value) == ("the config must be a dict with a 'layers' list, got a dict "
                               "whose 'layers' is a str")


def test_weighted_evaluate_weighs_every_output_of_a_row():
    net = dn.Sequential([dn.Dense(2)], input_dim=3, seed=0, n_threads=1)
    net.compile("mean_squared_error", "sgd")
    X, Y = np.eye(3), np.array([[1.0, 2.0], [0.0, 0.0], [3.0, -1.0]])
    w = np.array([1.0, 0.0, 3.0])
    err = net.predict(X) - Y
    scores = net.evaluate(X, Y, sample_weight=w)
    # each row's weight applies to both of its outputs: sum_i w_i sum_j |e_ij| / (2 sum w)
    mae = (np.abs(err[0]).sum() + 3 * np.abs(err[2]).sum()) / 8
    mse = ((err[0] ** 2).sum() + 3 * (err[2] ** 2).sum()) / 8
    assert scores["mae"] == pytest.approx(mae, rel=1e-12)
    assert scores["mse"] == pytest.approx(mse, rel=1e-12)
    assert scores["mae"] != pytest.approx(np.abs(err).mean(), rel=1e-3)


def test_pin_plan_keeps_the_fields_and_drops_the_source():
    net = dn.Sequential([dn.Dense(2)], input_dim=3, seed=0)
    pinned = net.pin_plan({"sparse_input": False, "sample_rows": 4, "source": "profile"})
    assert pinned == {"sparse_input": False, "sample_rows": 4} and net.plan == pinned


def test_a_softmax_output_layer_needs_softmax_cross_entropy():
    net = dn.Sequential([dn.Dense(3, activation="softmax")], input_dim=2, seed=0)
    with pytest.raises(ValueError) as info:
        net.compile("mean_squared_error", "sgd")
    assert str(info.value) == ("a softmax output layer needs loss='softmax_cross_entropy', "
                               "got 'mean_squared_error'")
    net.compile("softmax_cross_entropy", "sgd")
    assert net.loss_.name == "softmax_cross_entropy"


@pytest.mark.parametrize("input_dim", [0, -3])
def test_input_dim_must_be_at_least_one(input_dim):
    with pytest.raises(ValueError) as info:
        dn.Sequential([dn.Dense(2)], input_dim=input_dim)
    assert str(info.value) == f"input_dim must be an int >= 1 or None, got {input_dim} (int)"


def test_set_weights_names_what_it_got_instead_of_a_list():
    net = dn.Sequential([dn.Dense(2)], input_dim=3, seed=0)
    with pytest.raises(TypeError) as info:
        net.set_weights(np.zeros(3))
    assert str(info.value) == ("weights must be a list of arrays (as from get_weights), "
                               "got array([0., 0., 0.]) (ndarray)")


class RowsOnly:
    """An h5py-style 2-D array (shape, dtype, slicing; no __array__, no len):
    descend reads it by rows, as it reads an h5py Dataset or a zarr array."""

    def __init__(self, X):
        self._X, self.shape, self.dtype, self.reads = X, X.shape, X.dtype, []

    def __getitem__(self, rows):
        block = self._X[rows]
        self.reads.append(len(block))
        return block


def test_evaluate_reads_an_h5py_style_array_by_rows():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 3)), rng.integers(0, 2, 50)
    net = dn.Sequential([dn.Dense(2)], input_dim=3, dtype="float64", seed=0, n_threads=1)
    net.compile("softmax_cross_entropy", "sgd")
    rows = RowsOnly(X)
    assert net.evaluate(rows, y) == net.evaluate(X, y)
    assert rows.reads and sum(rows.reads) >= len(X)


def test_a_new_network_is_not_stopping_and_from_config_keeps_its_threads():
    net = dn.Sequential([dn.Dense(2)], input_dim=2, seed=0, n_threads=1)
    assert net.stop_training is False       # Keras: callbacks set it, fit reads it
    copy = dn.Sequential.from_config(net.get_config())
    assert (copy.n_threads, copy.seed, copy.input_dim) == (1, 0, 2)


def test_partial_fit_prints_its_epoch_line_at_verbose_1(capsys):
    net = dn.Sequential([dn.Dense(2)], input_dim=2, seed=0, n_threads=1)
    net.compile("softmax_cross_entropy", "sgd")
    net.partial_fit(np.ones((4, 2)), [0, 1, 0, 1], classes=[0, 1], batch_size=4, verbose=0)
    assert capsys.readouterr().out == ""
    net.partial_fit(np.ones((4, 2)), [0, 1, 0, 1], batch_size=4, verbose=1)
    assert capsys.readouterr().out.startswith("epoch 2/2  loss ")    # the second epoch


def test_state_dict_names_a_plan_set_by_hand_that_is_not_one():
    net = dn.Sequential([dn.Dense(2)], input_dim=2, seed=0)
    net.plan = {"bogus": 1}
    with pytest.raises(ValueError) as info:
        net.state_dict()
    assert str(info.value).startswith("plan must be None or a dict with keys among (")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_cross_entropy_link_is_the_logistic_sigmoid(dtype):
    logits = np.array([[-30.0, -2.0, 0.0], [0.5, 3.0, 40.0]], dtype=dtype)
    expected = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))    # float64 by hand
    out = dn.losses.get("binary_cross_entropy").apply_link(logits)
    assert out.dtype == logits.dtype and out.shape == logits.shape
    np.testing.assert_allclose(out, expected, rtol=1e-6 if dtype == "float32" else 1e-14)
