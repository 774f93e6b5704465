"""The edges of descend.training that the older tests executed without checking.

Each test pins a value derived independently of the code under test: the
exact message of each refusal (the argument's name, what was expected, what
came), fit's documented defaults, hand-computed splits and batch counts,
SGD replayed step by step with the reference (per-layer) gradients, the
formula of each log, and the state left by a refused or diverged call.
"""
import inspect
import math
import os
import re
import sys
import warnings

import numpy as np
import pytest

import descend as dn
from descend import training
from descend.callbacks import Callback
from descend.training import FitConfig, History


# --------------------------------------------------------------------------- helpers
def blobs(n=20, d=3, k=2, seed=0):
    """n samples of d features; labels 0..k-1 in turn (every class in every split)."""
    X = np.random.default_rng(seed).normal(size=(n, d))
    return X, np.arange(n) % k


def classifier(d=3, k=2, lr=0.1):
    net = dn.Sequential([dn.Dense(4, activation="relu"), dn.Dense(k)], input_dim=d,
                        dtype="float64", seed=0, n_threads=1)
    return net.compile("softmax_cross_entropy", dn.optimizers.SGD(lr))


def linear_regressor(d=3, lr=0.05, dtype="float64"):
    net = dn.Sequential([dn.Dense(1)], input_dim=d, dtype=dtype, seed=0, n_threads=1)
    return net.compile("mean_squared_error", dn.optimizers.SGD(lr))


def untouched(net):
    """What a refused call must leave as it was."""
    return (net.built, net.epochs_trained, net._rng.bit_generator.state,
            None if net.classes_ is None else list(net.classes_),
            [w.copy() for w in net.get_weights()] if net.built else None)


def assert_untouched(before, net):
    after = untouched(net)
    assert before[:4] == after[:4]
    if before[4] is not None:
        for u, v in zip(before[4], after[4]):
            np.testing.assert_array_equal(u, v)


class Record(Callback):
    """Every hook call with a copy of its logs (None stays None: Keras passes dicts)."""

    def __init__(self):
        super().__init__()
        self.calls = []
        self.params_seen = None

    def set_params(self, params):
        super().set_params(params)
        self.params_seen = dict(params)

    def _record(self, *call):
        self.calls.append(call[:-1] + (None if call[-1] is None else dict(call[-1]),))

    def on_train_begin(self, logs=None):
        self._record("train_begin", logs)

    def on_train_end(self, logs=None):
        self._record("train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._record("epoch_begin", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._record("batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._record("batch_end", batch, logs)


# --------------------------------------------------------------------------- validate
def test_fit_config_defaults_are_fits_documented_defaults():
    """FitConfig.validate(model, X, y) alone means fit(X, y) with fit's defaults
    (the distributed fit calls it with a subset of the keywords)."""
    fit = inspect.signature(dn.Sequential.fit).parameters
    validate = inspect.signature(FitConfig.validate).parameters
    for name in ("epochs", "batch_size", "shuffle", "verbose", "validation_data",
                 "validation_split", "callbacks", "gradient_norms", "n_threads",
                 "initial_epoch", "steps_per_execution", "sample_weight", "class_weight"):
        assert validate[name].default == fit[name].default, name
    assert validate["shard"].default is False
    X, y = blobs(n=40)
    config = FitConfig.validate(classifier(), X, y)
    assert (config.epochs, config.initial_epoch, config.batch_size) == (1, 0, 32)
    assert config.shuffle is True and config.verbose == 1
    assert config.gradient_norms is False and config.validation is None
    assert config.steps_per_execution is None and config.weights is None
    assert config.n_threads == 1            # the network's n_threads
    assert len(config.X) == 40 and list(config.callbacks) == []


def msg(text):
    """A regex matching exactly `text` at the start of the message."""
    return "^" + re.escape(text)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"y": None}, ValueError, "y is required, got None"),
    ({"y": [[0, 1], [1]] * 10}, ValueError,
     "y must be labels (1-D) or targets (2-D), got a list of rows of different lengths"),
    ({"epochs": -1}, ValueError, "epochs must be an int >= 0, got -1 (int)"),
    ({"steps_per_execution": 0}, ValueError,
     "steps_per_execution must be an int >= 1, got 0 (int)"),
    ({"verbose": 3}, ValueError, "verbose must be a bool or one of 0, 1, 2, 'auto', got 3 (int)"),
    ({"shuffle": "yes"}, TypeError, "shuffle must be a bool, got 'yes' (str)"),
    ({"validation_split": 1.0}, ValueError,
     "validation_split must be a finite float in [0, 1), got 1.0 (float)"),
    ({"validation_split": -0.1}, ValueError,
     "validation_split must be a finite float in [0, 1), got -0.1 (float)"),
    ({"gradient_norms": 2}, TypeError, "gradient_norms must be a bool, got 2 (int)"),
    ({"n_threads": 0}, ValueError,
     "n_threads must be an int in [1, 64], an int <= -1 or None, got 0 (int)"),
    ({"batch_size": 0}, ValueError, "batch_size must be an int >= 1, got 0 (int)"),
    ({"initial_epoch": -1}, ValueError, "initial_epoch must be an int >= 0, got -1 (int)"),
    ({"epochs": 2, "initial_epoch": 3}, ValueError,
     "with initial_epoch=3, epochs is the index of the last epoch plus one (as in Keras) "
     "and must be >= initial_epoch, got epochs=2"),
    ({"callbacks": [Callback(), object()]}, TypeError,
     "callbacks[1] must be a descend Callback (or an object with on_epoch_end etc.), got "),
    # was: "Callback.set_model() missing 1 required positional argument: 'model'"
    ({"callbacks": [dn.callbacks.TerminateOnNaN]}, TypeError,
     "callbacks[0] must be a descend Callback (or an object with on_epoch_end etc.), got "
     "<class 'descend.callbacks.TerminateOnNaN'> (type): a class, not an instance; "
     "call it: TerminateOnNaN(...)"),
    ({"validation_data": 5}, ValueError,
     "validation_data must be a tuple (X_val, y_val) or (X_val, y_val, sample_weight_val), "
     "got int"),
    ({"validation_data": [np.zeros((2, 3))]}, ValueError,
     "validation_data must be a tuple (X_val, y_val) or (X_val, y_val, sample_weight_val), "
     "got a list of length 1"),
    ({"validation_data": (np.zeros((2, 3)),) * 4}, ValueError,
     "validation_data must be a tuple (X_val, y_val) or (X_val, y_val, sample_weight_val), "
     "got a tuple of length 4"),
    ({"validation_data": (np.zeros((2, 4)), np.zeros(2, int))}, ValueError,
     "validation_data[0] has 4 features, but "),
    ({"validation_split": 0.01}, ValueError,
     "validation_split=0.01 of 20 samples leaves 0 validation and 20 training samples; "
     "both need at least one"),
    ({"sample_weight": np.r_[np.zeros(15), np.ones(5)], "validation_split": 0.25},
     ValueError, "sample_weight: the weights of the training part (before the validation "
     "split) are all zero; at least one needs to be positive"),
    ({"sample_weight": np.r_[np.ones(15), np.zeros(5)], "validation_split": 0.25},
     ValueError, "sample_weight: the weights of the validation part (after the validation "
     "split) are all zero; at least one needs to be positive"),
    ({"y": np.r_[np.zeros(10, int), np.ones(10, int)], "validation_split": 0.5}, ValueError,
     "validation_split=0.5 holds out the last 10 samples, which leaves no training sample "
     "of class(es) [1]; shuffle the data before fit or pass validation_data"),
])
def test_fit_refuses_with_the_exact_message_and_changes_nothing(kwargs, error, message):
    X, y = blobs()
    kwargs = dict(kwargs)
    y = kwargs.pop("y", y)
    net = classifier()
    before = untouched(net)
    with pytest.raises(error, match=msg(message)):
        net.fit(X, y, **{"verbose": 0, **kwargs})
    assert_untouched(before, net)
    assert net.history is None or list(net.history.epoch) == []


def test_network_settings_are_checked_with_their_own_names():
    X, y = blobs()
    net = classifier()
    net.optimizer.learning_rate = -1.0
    with pytest.raises(ValueError, match=msg(
            "optimizer.learning_rate must be a finite float >= 0, got -1.0 (float)")):
        net.fit(X, y, verbose=0)
    net = classifier()
    net.n_threads = 0
    with pytest.raises(ValueError, match=msg(
            "the network's n_threads must be an int in [1, 64], an int <= -1 or None, "
            "got 0 (int)")):
        net.fit(X, y, verbose=0)
    net = classifier()
    net.plan = {"bogus": 1}
    before = untouched(net)
    with pytest.raises(ValueError, match=msg("plan must be None or a dict with keys among")):
        net.fit(X, y, verbose=0)
    assert_untouched(before, net)


def test_a_bad_descend_plan_in_the_environment_is_named(monkeypatch):
    X, y = blobs()
    net = classifier()
    monkeypatch.setenv("DESCEND_PLAN", "bogus=1")
    before = untouched(net)
    with pytest.raises(ValueError, match="^DESCEND_PLAN"):
        net.fit(X, y, verbose=0)
    assert_untouched(before, net)


def test_the_bounds_themselves_are_accepted():
    """epochs=0, validation_split=0, learning_rate=0, batch_size=1 and
    steps_per_execution=1 are inside the documented ranges."""
    X, y = blobs()
    net = classifier()
    net.optimizer.learning_rate = 0.0       # assignable (a callback may set it)
    history = net.fit(X, y, epochs=0, batch_size=4, verbose=0)
    assert history.epoch == [] and net.epochs_trained == 0
    before = net.get_weights()
    history = net.fit(X, y, epochs=1, batch_size=1, validation_split=0.0,
                      steps_per_execution=1, verbose=False)
    assert history.epoch == [0] and "val_loss" not in history
    for u, v in zip(before, net.get_weights()):
        np.testing.assert_array_equal(u, v)        # learning_rate 0: nothing moved
    assert net.optimizer.iterations == 20


def test_nan_in_the_validation_split_of_y_names_the_split():
    X = np.random.default_rng(0).normal(size=(10, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    y[-1] = np.nan
    net = linear_regressor()
    before = untouched(net)
    with pytest.raises(ValueError, match=msg("y's validation split contains NaN or infinite")):
        net.fit(X, y, validation_split=0.2, verbose=0)
    assert_untouched(before, net)
    # the same values as validation_data are named as validation_data[1]
    with pytest.raises(ValueError, match=msg("validation_data[1] contains NaN or infinite")):
        net.fit(X[:8], y[:8], validation_data=(X[8:], y[8:]), batch_size=8, verbose=0)


@pytest.mark.parametrize("split, n_val", [(0.25, 2), (0.5, 5), (0.99, 9), (0.1, 1)])
def test_validation_split_holds_out_int_of_n_times_split_rows(split, n_val):
    """Keras: the last int(n * split) rows, in order, with their weights."""
    X = np.random.default_rng(1).normal(size=(10, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    weights = np.arange(1.0, 11.0)
    config = FitConfig.validate(linear_regressor(), X, y, validation_split=split,
                                sample_weight=weights, batch_size=1)
    np.testing.assert_array_equal(config.X, X[:10 - n_val])
    X_val, targets_val, _, weights_val = config.validation
    np.testing.assert_array_equal(X_val, X[10 - n_val:])
    np.testing.assert_array_equal(targets_val[:, 0], y[10 - n_val:])
    np.testing.assert_array_equal(config.weights, weights[:10 - n_val])
    np.testing.assert_array_equal(weights_val, weights[10 - n_val:])


def test_validation_data_takes_its_own_weights_and_leaves_the_training_weights_whole():
    X, y = blobs()
    weights = np.linspace(0.5, 2.0, 20)
    config = FitConfig.validate(classifier(), X, y, sample_weight=weights, batch_size=4,
                                validation_data=(X[:4], y[:4], [1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(config.weights, weights)
    np.testing.assert_array_equal(config.validation[3], [1.0, 2.0, 3.0, 4.0])
    config = FitConfig.validate(classifier(), X, y, validation_data=(X[:4], y[:4]),
                                batch_size=4)
    assert config.validation[3] is None and config.weights is None


def test_a_shard_may_hold_only_zero_weights_in_either_part():
    X, y = blobs()
    for weights in (np.r_[np.zeros(15), np.ones(5)], np.r_[np.ones(15), np.zeros(5)]):
        config = FitConfig.validate(classifier(), X, y, validation_split=0.25,
                                    sample_weight=weights, shard=True, batch_size=4)
        np.testing.assert_array_equal(config.weights, weights[:15])
        np.testing.assert_array_equal(config.validation[3], weights[15:])


def test_a_multi_label_split_may_leave_a_column_without_positives():
    """Multi-label 0/1 targets have no classes to drop; a single binary column
    has two (0 and 1), named when the split removes one from training."""
    X = np.random.default_rng(0).normal(size=(10, 3))
    Y = np.zeros((10, 2))
    Y[8:, 0] = 1.0                      # column 0 is positive in the held-out rows only
    Y[:, 1] = np.arange(10) % 2
    net = dn.Sequential([dn.Dense(2)], input_dim=3, dtype="float64", seed=0, n_threads=1)
    net.compile("binary_cross_entropy", dn.optimizers.SGD(0.1))
    config = FitConfig.validate(net, X, Y, validation_split=0.2, batch_size=4)
    assert len(config.X) == 8
    net = dn.Sequential([dn.Dense(1)], input_dim=3, dtype="float64", seed=0, n_threads=1)
    net.compile("binary_cross_entropy", dn.optimizers.SGD(0.1))
    y = np.r_[np.zeros(8), np.ones(2)]
    with pytest.raises(ValueError, match=msg(
            "validation_split=0.2 holds out the last 2 samples, which leaves no training "
            "sample of class(es) [1.0]")):
        FitConfig.validate(net, X, y, validation_split=0.2, batch_size=4)


def test_a_split_that_drops_many_classes_names_the_first_ten():
    X = np.random.default_rng(0).normal(size=(24, 3))
    y = np.r_[np.zeros(12, int), np.arange(1, 13)]
    net = dn.Sequential([dn.Dense(13)], input_dim=3, dtype="float64", seed=0, n_threads=1)
    net.compile("softmax_cross_entropy", dn.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match=re.escape(
            "class(es) [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]; shuffle")):
        FitConfig.validate(net, X, y, validation_split=0.5, batch_size=4)


def test_a_batch_larger_than_the_data_warns_at_the_callers_line():
    X, y = blobs()
    net = classifier()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net.fit(X, y, batch_size=50, validation_split=0.25, verbose=0)
    [warning] = [w for w in caught if issubclass(w.category, UserWarning)]
    assert str(warning.message) == ("batch_size=50 is larger than the 15 training samples; "
                                    "using batch_size=15 (batch gradient descent)")
    # stacklevel: the line of fit's caller, here (under mutmut, whose trampolines add
    # frames in descend's modules, the frame count differs)
    if "MUTANT_UNDER_TEST" not in os.environ:
        assert warning.filename == __file__
    assert net.optimizer.iterations == 1     # one batch of all 15 rows
    config = FitConfig.validate(classifier(), X, y, batch_size=None)
    assert config.batch_size == 20
    config = FitConfig.validate(classifier(), X, y, batch_size=20)
    assert config.batch_size == 20


# --------------------------------------------------------------------------- History
def test_history_starts_empty_and_appends_per_key():
    history = History()
    assert history == {} and history.epoch == []
    assert history.interrupted is False and history.diverged is False
    assert history.history is history
    history.append(3, {"loss": 0.5, "accuracy": 0.25})
    history.append(4, {"loss": 0.25, "accuracy": 0.5})
    assert history.epoch == [3, 4]
    assert dict(history) == {"loss": [0.5, 0.25], "accuracy": [0.25, 0.5]}


def test_two_histories_share_nothing():
    a, b = History(), History()
    a.append(0, {"loss": 1.0})
    assert b.epoch == [] and b == {}


# --------------------------------------------------------------------------- the epoch loop
def replay_sgd(net, X, y, order, lr):
    """Plain SGD, batch size 1, over the rows in `order`, with the per-layer
    (reference) gradients: w <- w - lr * dL/dw."""
    weights = net.get_weights()
    for i in order:
        net.set_weights(weights)
        (dW, db), = net.gradients(X[i:i + 1], y[i:i + 1])
        weights = [weights[0] - lr * dW, weights[1] - lr * db]
    return weights


@pytest.mark.parametrize("shuffle", [True, False])
def test_each_epoch_visits_the_rows_in_the_networks_seeded_permutation(shuffle, monkeypatch):
    """shuffle=True: epoch e's order is the network's generator's permutation,
    drawn before the epoch's dropout seed; shuffle=False: the rows in order."""
    X = np.random.default_rng(2).normal(size=(12, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3
    net = linear_regressor(lr=0.05)
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = net._rng.bit_generator.state
    start = net.get_weights()
    seeds = []
    orders = []
    for _ in range(2):
        orders.append(rng.permutation(12) if shuffle else np.arange(12))
        seeds.append(int(rng.integers(0, 2**63)))   # the epoch's dropout seed, drawn next
    passed = []
    train_epoch = training.Trainer.train_epoch

    def spy(self, order, epoch_seed, *args):
        passed.append((order.copy(), epoch_seed))
        return train_epoch(self, order, epoch_seed, *args)

    monkeypatch.setattr(training.Trainer, "train_epoch", spy)
    net.fit(X, y, epochs=2, batch_size=1, shuffle=shuffle, verbose=0)
    assert net._rng.bit_generator.state == rng.bit_generator.state
    for (order, seed), want_order, want_seed in zip(passed, orders, seeds):
        assert order.dtype == np.intp
        np.testing.assert_array_equal(order, want_order)
        assert seed == want_seed
    assert len(passed) == 2
    twin = linear_regressor(lr=0.05)
    twin.set_weights(start)
    expected = replay_sgd(twin, X, y, np.concatenate(orders), 0.05)
    for got, want in zip(net.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    other = replay_sgd(twin, X, y, np.concatenate([np.arange(12)[::-1]] * 2), 0.05)
    assert not np.allclose(net.get_weights()[0], other[0], rtol=1e-9)


def test_callbacks_get_the_fits_params_and_hooks_in_order():
    X, y = blobs()
    record = Record()
    net = classifier()
    net.fit(X, y, epochs=1, batch_size=4, verbose=0)
    net.fit(X, y, epochs=2, batch_size=4, validation_split=0.25, verbose=0, callbacks=[record])
    # epochs: the index the fit stops at (1 done + 2 more), samples: after the split
    assert record.params_seen == {
        "epochs": 3, "batch_size": 4, "samples": 15, "verbose": 0, "do_validation": True,
        "metrics": ["loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds",
                    "samples_per_second"]}
    assert record.calls[0] == ("train_begin", {})
    assert record.calls[-1] == ("train_end", {})
    assert [c[1] for c in record.calls if c[0] == "batch_end"] == [0, 1, 2, 3] * 2
    assert [c[1:] for c in record.calls if c[0] == "batch_begin"] == [
        (b, {}) for b in (0, 1, 2, 3)] * 2
    assert [c[1:] for c in record.calls if c[0] == "epoch_begin"] == [(1, {}), (2, {})]
    assert net.stop_training is False
    assert net.history.epoch == [1, 2] and net.epochs_trained == 3
    assert net.history.interrupted is False and net.history.diverged is False


def test_history_rates_and_times_are_those_of_the_epoch():
    """samples_per_second is the epoch's training samples over its seconds;
    learning_rate the rate the epoch ran with."""
    X, y = blobs()
    schedule = dn.schedules.ExponentialDecay(0.1, decay_rate=0.5, decay_epochs=1)
    net = dn.Sequential([dn.Dense(2)], input_dim=3, dtype="float64", seed=0, n_threads=1)
    net.compile("softmax_cross_entropy", dn.optimizers.SGD(schedule))
    history = net.fit(X, y, epochs=3, batch_size=5, validation_split=0.25, verbose=0)
    assert history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025], rel=1e-12)
    for seconds, rate in zip(history["seconds"], history["samples_per_second"]):
        assert seconds > 0 and rate * seconds == pytest.approx(15, rel=1e-12)


def weighted_epoch(net, X, y, weights=None, **kwargs):
    """One epoch of batch gradient descent at learning rate 0: the weights do
    not move, so the epoch's training logs equal evaluate's on the same rows."""
    net.optimizer.learning_rate = 0.0
    return net.fit(X, y, epochs=1, batch_size=None, sample_weight=weights, verbose=0,
                   **kwargs)


def test_training_loss_and_accuracy_are_the_weighted_means_evaluate_gives():
    X, y = blobs(n=20, k=2, seed=3)
    weights = np.linspace(0.1, 3.0, 20)       # sum 30.999..., not n
    net = classifier()
    history = weighted_epoch(net, X, y, weights)
    scores = net.evaluate(X, y, sample_weight=weights)
    assert history["loss"][0] == pytest.approx(scores["loss"], rel=1e-12)
    assert history["accuracy"][0] == pytest.approx(scores["accuracy"], rel=1e-12)
    correct = net.predict_classes(X) == y
    assert history["accuracy"][0] == pytest.approx(weights[correct].sum() / weights.sum(),
                                                   rel=1e-12)
    history = weighted_epoch(net, X, y)
    assert history["accuracy"][0] == pytest.approx(correct.mean(), rel=1e-12)


def test_multi_label_training_accuracy_counts_every_output():
    X = np.random.default_rng(4).normal(size=(16, 3))
    Y = (X[:, :2] > 0).astype(float)
    net = dn.Sequential([dn.Dense(2)], input_dim=3, dtype="float64", seed=0, n_threads=1)
    net.compile("binary_cross_entropy", dn.optimizers.SGD(0.1))
    history = weighted_epoch(net, X, Y)
    expected = ((net.predict(X) > 0.5) == (Y > 0.5)).mean()      # over n * k
    assert history["accuracy"][0] == pytest.approx(expected, rel=1e-12)
    assert history["accuracy"][0] == pytest.approx(net.evaluate(X, Y)["accuracy"])


def test_regression_training_metrics_are_evaluates_on_the_training_rows():
    X = np.random.default_rng(5).normal(size=(20, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 1.0
    weights = np.linspace(0.5, 2.0, 20)
    net = linear_regressor()
    history = weighted_epoch(net, X, y, weights, validation_split=0.25)
    train = net.evaluate(X[:15], y[:15], sample_weight=weights[:15])
    val = net.evaluate(X[15:], y[15:], sample_weight=weights[15:])
    for key in ("mse", "mae", "r2"):
        assert history[key][0] == pytest.approx(train[key], rel=1e-12)
    for key in ("loss", "mse", "mae", "r2"):
        assert history["val_" + key][0] == pytest.approx(val[key], rel=1e-12)
    assert history["loss"][0] == pytest.approx(train["loss"], rel=1e-12)


def test_gradient_norms_use_the_first_2048_rows_and_their_weights():
    X = np.random.default_rng(6).normal(size=(2100, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    y[2048:] += 100.0                       # rows past 2048 would change the gradient
    weights = np.r_[np.linspace(0.5, 2.0, 2048), np.ones(52)]
    net = linear_regressor()
    history = weighted_epoch(net, X, y, weights, gradient_norms=True)
    (dW, _), = net.gradients(X[:2048], y[:2048], sample_weight=weights[:2048])
    assert history["grad_norm_0"][0] == pytest.approx(np.linalg.norm(dW), rel=1e-10)
    (dW_all, _), = net.gradients(X, y, sample_weight=weights)
    assert not np.isclose(np.linalg.norm(dW_all), np.linalg.norm(dW), rtol=1e-3)


# --------------------------------------------------------------------------- divergence
class Diverged(Callback):
    """Records on_train_batch_end; with stop=True, ends the fit on a non-finite log."""

    def __init__(self, stop=False):
        super().__init__()
        self.stop = stop
        self.batches = []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append((batch, dict(logs)))
        if self.stop and not all(math.isfinite(v) for v in logs.values()):
            self.model.stop_training = True


def test_a_non_finite_loss_is_reported_at_the_batch_that_overflowed():
    """Rows 4-5 (batch 2 of 2 rows, unshuffled) are 1e200: their squared error
    overflows float64 in that batch."""
    X = np.random.default_rng(0).normal(size=(10, 3))
    y = X @ np.array([1.0, 2.0, 3.0])
    X[4:6] = 1e200
    net = linear_regressor(lr=0.01)
    start = net.get_weights()
    record, ends = Diverged(), Record()
    with pytest.raises(dn.DivergenceError, match=msg(
            "training diverged in epoch 1/1: the loss, the weights or the optimizer's "
            "state became NaN or infinite with learning_rate=0.01. The weights after the last finite epoch were kept; "
            "try a smaller learning rate (or gradient clipping).")):
        net.fit(X, y, batch_size=2, shuffle=False, verbose=0, callbacks=[record, ends])
    assert [b for b, _ in record.batches] == [0, 1, 2]
    assert ends.calls[-1] == ("train_end", {})      # told before the error propagates
    assert math.isnan(record.batches[-1][1]["loss"]) and list(record.batches[-1][1]) == ["loss"]
    for got, want in zip(net.get_weights(), start):
        np.testing.assert_array_equal(got, want)
    assert net.optimizer.iterations == 0 and net.epochs_trained == 0


def test_weights_that_overflow_in_the_last_batch_name_that_batch_and_keep_the_log_keys(
        capsys):
    """Epoch 2 runs at learning_rate=1e308 (set by a callback after epoch 1): its one
    batch's loss is finite, the update overflows the weights. A stopping callback
    gets that batch (0) with loss NaN; History keeps epoch 2 with NaN for every
    metric epoch 1 logged, and its learning rate."""
    X = 1e3 * np.random.default_rng(0).normal(size=(10, 3))
    y = X @ np.array([1.0, 2.0, 3.0]) + 5.0

    class Explode(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.optimizer.learning_rate = 1e308

    net = linear_regressor(lr=1e-8)
    record = Diverged(stop=True)
    history = net.fit(X, y, epochs=3, batch_size=None, verbose=2, gradient_norms=True,
                      callbacks=[Explode(), record])
    after_first = capsys.readouterr()
    assert history.diverged is True and history.epoch == [0, 1]
    assert record.batches[-1][0] == 0 and math.isnan(record.batches[-1][1]["loss"])
    assert set(history) == {"loss", "mse", "mae", "r2", "grad_norm_0", "learning_rate",
                            "seconds", "samples_per_second"}
    for key in ("loss", "mse", "mae", "r2", "grad_norm_0"):
        assert math.isfinite(history[key][0]) and math.isnan(history[key][1]), key
    assert history["learning_rate"] == [1e-8, 1e308]
    assert history["seconds"][1] > 0
    assert net.epochs_trained == 1 and np.isfinite(net.get_weights()[0]).all()
    assert after_first.err.endswith(
        "Training stopped in epoch 2/3 by a callback: the loss, the weights or the "
        "optimizer's state became NaN or infinite; the weights of the last finite epoch were kept.\n")


def overflowing_validation():
    """Finite training, validation rows of 3e38 whose float32 outputs overflow:
    the weights start at 1 and stay near it (learning rate 0.01 on a linear target)."""
    X = np.random.default_rng(0).normal(size=(10, 3))
    y = X @ np.array([1.0, 2.0, 3.0])
    net = linear_regressor(lr=0.01, dtype="float32")
    net.set_weights([np.ones((3, 1)), np.zeros(1)])
    return net, X, y, (np.full((3, 3), 3e38), y[:3])


def test_validation_outputs_that_overflow_count_as_divergence_at_the_last_batch():
    net, X, y, validation = overflowing_validation()
    record = Diverged()
    with pytest.raises(dn.DivergenceError, match=msg(
            "training diverged in epoch 1/2: the network's outputs (so val_loss, val_mse, "
            "val_mae, val_r2) became NaN or infinite with learning_rate=0.01. The weights "
            "after the last finite epoch were kept")):
        net.fit(X, y, epochs=2, batch_size=4, verbose=0, callbacks=[record],
                validation_data=validation)
    # 10 rows in batches of 4: batches 0, 1, 2; then the epoch's logs at batch 2
    assert [b for b, _ in record.batches] == [0, 1, 2, 2]
    logs = record.batches[-1][1]
    assert math.isfinite(logs["loss"]) and logs["val_loss"] == math.inf
    assert set(logs) == {"loss", "mse", "mae", "r2", "val_loss", "val_mse", "val_mae",
                         "val_r2"}
    for got, want in zip(net.get_weights(), [np.ones((3, 1)), np.zeros(1)]):
        np.testing.assert_array_equal(got, want)


def test_a_callback_may_end_a_fit_whose_validation_outputs_overflow(capsys):
    net, X, y, validation = overflowing_validation()
    net.fit(X, y, epochs=1, batch_size=4, verbose=0)
    kept = net.get_weights()
    history = net.fit(X, y, epochs=1, batch_size=4, verbose=2, validation_data=validation,
                      callbacks=[Diverged(stop=True)])
    assert history.diverged is True and history.epoch == [1]
    assert math.isfinite(history["loss"][0]) and history["val_loss"] == [math.inf]
    assert history["learning_rate"] == [pytest.approx(0.01)]
    assert capsys.readouterr().err == (
        "Training stopped in epoch 2/2 by a callback: the network's outputs (so val_loss, "
        "val_mse, val_mae, val_r2) became NaN or infinite; the weights of the last finite "
        "epoch were kept.\n")
    for got, want in zip(net.get_weights(), kept):
        np.testing.assert_array_equal(got, want)
    assert net.epochs_trained == 1


def test_divergence_restores_the_optimizer_rate_generator_and_epoch_count():
    """After a DivergenceError the next fit runs as if the failed epoch never had."""
    X = np.random.default_rng(0).normal(size=(12, 3))
    y = X @ np.array([1.0, 2.0, 3.0])
    bad = X.copy()
    bad[0] = 1e200
    net = dn.Sequential([dn.Dense(1)], input_dim=3, dtype="float64", seed=0, n_threads=1)
    net.compile("mean_squared_error", dn.optimizers.Adam(0.01))
    twin = dn.Sequential([dn.Dense(1)], input_dim=3, dtype="float64", seed=0, n_threads=1)
    twin.compile("mean_squared_error", dn.optimizers.Adam(0.01))
    net.fit(X, y, epochs=1, batch_size=4, verbose=0)
    twin.fit(X, y, epochs=1, batch_size=4, verbose=0)
    with pytest.raises(dn.DivergenceError):
        net.fit(bad, y, epochs=1, batch_size=4, verbose=0)
    assert net.optimizer.iterations == 3 and net.epochs_trained == 1
    net.fit(X, y, epochs=1, batch_size=4, verbose=0)
    twin.fit(X, y, epochs=1, batch_size=4, verbose=0)
    for got, want in zip(net.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert net.optimizer.get_state()["iterations"] == 6


# --------------------------------------------------------------------------- what the loop gets
def test_runner_specs_carry_each_layers_settings_over_its_live_arrays():
    net = dn.Sequential([
        dn.Dense(4, activation="leaky_relu", alpha=0.2,
                 kernel_regularizer=dn.regularizers.L1L2(l1=0.01, l2=0.02, proximal=True),
                 bias_regularizer=dn.regularizers.L1L2(l1=0.03, l2=0.04)),
        dn.Dropout(0.25),
        dn.Dense(2, use_bias=False,
                 kernel_regularizer=dn.regularizers.L1L2(l1=0.05),
                 bias_regularizer=dn.regularizers.L1L2(l1=0.06, proximal=True)),
    ], input_dim=3, dtype="float64", seed=0, n_threads=1)
    net.compile("softmax_cross_entropy", dn.optimizers.Adam(0.01, weight_decay=0.1,
                                                            decay_bias=True))
    net.optimizer.build(net._params(), net._param_names())
    first, second = training.runner_specs(net)
    assert first.kernel is net.layers[0].kernel and first.bias is net.layers[0].bias
    assert (first.alpha, first.dropout_rate) == (0.2, 0.0)
    assert (first.kernel_l1, first.kernel_l2, first.bias_l1, first.bias_l2) == (
        0.01, 0.02, 0.03, 0.04)
    assert first.kernel_l1_proximal is True and first.bias_l1_proximal is False
    assert len(first.kernel_state) == 2 and len(first.bias_state) == 2    # Adam: m, v
    np.testing.assert_array_equal(first.kernel_state[0], np.zeros((3, 4)))
    assert first.bias_state[0].shape == (4,)
    assert second.dropout_rate == 0.25 and second.bias_state == ()
    assert (second.kernel_l1, second.kernel_l2) == (0.05, 0.0)
    assert (second.bias_l1, second.bias_l2) == (0.06, 0.0)
    assert second.kernel_l1_proximal is False and second.bias_l1_proximal is True
    assert first.decay_bias is True and second.decay_bias is True
    assert first.activation != second.activation    # leaky_relu, then the logits
    plain = classifier()
    plain.optimizer.build(plain._params(), plain._param_names())
    spec = training.runner_specs(plain)[0]
    assert (spec.kernel_l1, spec.kernel_l2, spec.bias_l1, spec.bias_l2) == (0, 0, 0, 0)
    assert spec.kernel_l1_proximal is False and spec.bias_l1_proximal is False
    assert spec.decay_bias is False and spec.alpha == 0.0


def test_an_object_whose_batch_hook_is_set_on_the_instance_gets_batch_calls():
    X, y = blobs()
    calls = []

    class Plain:                                # no Callback base, hooks set per instance
        pass

    hooks = Plain()
    hooks.on_train_batch_end = lambda batch, logs=None: calls.append(batch)
    classifier().fit(X, y, epochs=1, batch_size=5, verbose=0, callbacks=[hooks])
    assert calls == [0, 1, 2, 3]
    assert training._has_batch_hooks([Callback(), hooks]) is True
    assert training._has_batch_hooks([Callback(), Plain()]) is False

    class Begins(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            calls.append(("begin", batch))

    assert training._has_batch_hooks([Begins()]) is True


def test_ctrl_c_says_what_was_kept_and_tells_the_callbacks(capsys):
    X, y = blobs()
    record = Record()

    class Interrupt(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    history = classifier().fit(X, y, epochs=3, batch_size=5, verbose=2,
                               callbacks=[record, Interrupt()])
    assert history.interrupted is True and history.epoch == [0]
    assert record.calls[-1] == ("train_end", {"interrupted": True})
    err = capsys.readouterr().err
    assert err == "\nInterrupted: kept the weights and history of the 1 completed epoch(s).\n"


def test_an_error_in_a_callback_propagates_without_on_train_end():
    X, y = blobs()
    record = Record()

    class Fail(Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise LookupError("from the callback")

    net = classifier()
    with pytest.raises(LookupError, match="from the callback"):
        net.fit(X, y, epochs=2, batch_size=5, verbose=0, callbacks=[record, Fail()])
    assert "train_end" not in [c[0] for c in record.calls]
    assert net.history.epoch == [0] and net.epochs_trained == 1   # the epoch was complete


def test_a_callback_replacing_the_optimizer_is_named():
    X, y = blobs()

    class Swap(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.optimizer = dn.optimizers.SGD(0.1)

    with pytest.raises(RuntimeError, match=msg(
            "fit: the network's optimizer was replaced during fit (by a callback?); the "
            "compiled loop trains the objects it started with. Change weights in place "
            "(net.set_weights, layer.kernel[...] = ...); a new optimizer or loss takes "
            "compile() between fits, not during one")):
        classifier().fit(X, y, epochs=2, batch_size=5, verbose=0, callbacks=[Swap()])


class StepOnly(dn.schedules.LearningRateSchedule):
    """A constant 0.1 with step(value) but no observe(logs), as a PyTorch-style
    plateau scheduler; a `monitor` attribute only if one is given."""

    def __init__(self, monitor=None):
        self.values = []
        if monitor is not None:
            self.monitor = monitor

    def _lr(self, epoch):
        return 0.1

    def step(self, value):
        self.values.append(value)

    def get_config(self):
        return {}


def fit_with_schedule(schedule, **kwargs):
    X, y = blobs()
    net = dn.Sequential([dn.Dense(2)], input_dim=3, dtype="float64", seed=0, n_threads=1)
    net.compile("softmax_cross_entropy", dn.optimizers.SGD(schedule))
    return net.fit(X, y, epochs=2, batch_size=5, verbose=0, **kwargs)


def test_a_step_only_schedule_without_a_monitor_follows_val_loss():
    schedule = StepOnly()
    fit_with_schedule(schedule)
    assert schedule.values == []               # no val_loss without validation data
    history = fit_with_schedule(schedule, validation_split=0.25)
    assert schedule.values == history["val_loss"]


def test_a_step_only_schedule_follows_the_monitor_it_names():
    schedule = StepOnly(monitor="loss")
    history = fit_with_schedule(schedule, validation_split=0.25)
    assert schedule.values == history["loss"] != history["val_loss"]


# --------------------------------------------------------------------------- partial_fit
def softmax_net(k=3, loss="softmax_cross_entropy"):
    net = dn.Sequential([dn.Dense(k)], input_dim=3, dtype="float64", seed=0, n_threads=1)
    return net.compile(loss, dn.optimizers.SGD(0.1))


@pytest.mark.parametrize("classes, net_args, error, message", [
    (["a", "b"], {}, ValueError,
     "classes has 2 labels, but the network's softmax_cross_entropy output needs 3"),
    (["a", "a", "b"], {}, ValueError, "classes has duplicate labels: ['a', 'a', 'b']"),
    (list(range(22)) + [0], {}, ValueError,
     f"classes has duplicate labels: {list(range(20))}"),
    ([], {}, ValueError, "classes must be a non-empty 1-D array of labels, got shape (0,)"),
    ([[1, 2, 3]], {}, ValueError,
     "classes must be a non-empty 1-D array of labels, got shape (1, 3)"),
    ("abc", {}, TypeError, "classes must be an array-like of labels, got 'abc'"),
    (b"ab", {}, TypeError, "classes must be an array-like of labels, got b'ab'"),
    ([1.0, np.inf, 2.0], {}, ValueError, "classes contains NaN or infinite values"),
    ([None, 1, 2], {}, TypeError, "classes must hold numbers or strings, got dtype object"),
    ([0, 1], {"k": 2, "loss": "binary_cross_entropy"}, ValueError,
     "classes is not used with 2 independent binary outputs (multi-label targets); pass "
     "classes=None"),
    ([0, 1, 2], {"k": 1, "loss": "binary_cross_entropy"}, ValueError,
     "classes has 3 labels, but the network's binary_cross_entropy output needs 2"),
    ([0, 1], {"k": 1, "loss": "mean_squared_error"}, TypeError,
     "classes is only for classification losses, the network uses 'mean_squared_error'"),
])
def test_partial_fit_refuses_classes_with_the_exact_message(classes, net_args, error, message):
    X = np.random.default_rng(0).normal(size=(6, 3))
    net = softmax_net(**net_args)
    y = np.arange(6) % 3 if net_args.get("k", 3) == 3 else np.zeros((6, net_args["k"]))
    before = untouched(net)
    with pytest.raises(error, match=msg(message)):
        net.partial_fit(X, y, classes=classes)
    assert_untouched(before, net)


def test_partial_fit_keeps_its_first_classes():
    X = np.random.default_rng(0).normal(size=(6, 3))
    net = softmax_net()
    net.partial_fit(X, np.arange(6) % 3, classes=[0, 1, 2])
    with pytest.raises(ValueError, match=msg(
            "classes=[0, 1, 3] differs from classes_ [0, 1, 2] set by an earlier call")):
        net.partial_fit(X, np.arange(6) % 3, classes=[0, 1, 3])
    net.partial_fit(X, np.arange(6) % 3, classes=[2, 0, 1])      # the same set, sorted
    np.testing.assert_array_equal(net.classes_, [0, 1, 2])


def test_partial_fit_first_chunk_of_strings_must_show_every_label():
    X = np.random.default_rng(0).normal(size=(6, 3))
    net = softmax_net()
    with pytest.raises(ValueError, match=msg(
            "the first partial_fit call sees 2 distinct labels ['a', 'b'], but the network "
            "has 3 outputs; pass classes=<all labels> on the first call")):
        net.partial_fit(X, np.array(list("aabbaa")))
    assert net.classes_ is None
    net.partial_fit(X, np.array(list("abcabc")))
    np.testing.assert_array_equal(net.classes_, ["a", "b", "c"])
    net = softmax_net()
    net.partial_fit(X, np.array([0, 0, 1, 1, 0, 0]))     # integer ids: classes 0..k-1
    np.testing.assert_array_equal(net.classes_, [0, 1, 2])
    net = softmax_net()
    with pytest.raises(ValueError, match=msg("y contains NaN")):
        net.partial_fit(X, np.array([0.0, 1.0, np.nan, 2.0, 0.0, 1.0]))


def test_partial_fit_clips_the_batch_to_the_chunk_without_a_warning():
    X = np.random.default_rng(0).normal(size=(6, 3))
    net = softmax_net()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.partial_fit(X, np.arange(6) % 3, batch_size=50)
    assert net.optimizer.iterations == 1
    net.partial_fit(X, np.arange(6) % 3, batch_size=4)
    assert net.optimizer.iterations == 3
    with pytest.raises(ValueError, match=msg("batch_size must be an int >= 1, got 0 (int)")):
        net.partial_fit(X, np.arange(6) % 3, batch_size=0)
    assert net.optimizer.iterations == 3


def test_a_refused_partial_fit_forgets_the_classes_it_declared():
    X = np.random.default_rng(0).normal(size=(6, 3))
    net = softmax_net()
    with pytest.raises(ValueError, match=msg("X and y have different lengths")):
        net.partial_fit(X, np.arange(1), classes=[0, 1, 2])
    assert net.classes_ is None


# --------------------------------------------------------------------------- more of the loop
def test_a_callback_replacing_the_optimizer_before_the_first_epoch_changes_no_weight():
    X, y = blobs()

    class SwapFirst(Callback):
        def on_train_begin(self, logs=None):
            self.model.optimizer = dn.optimizers.SGD(0.1)

    net = classifier()
    start = net.get_weights()
    with pytest.raises(RuntimeError, match=msg("fit: the network's optimizer was replaced")):
        net.fit(X, y, epochs=2, batch_size=5, verbose=0, callbacks=[SwapFirst()])
    for got, want in zip(net.get_weights(), start):
        np.testing.assert_array_equal(got, want)
    assert net.epochs_trained == 0


def test_fit_resets_stop_training_set_by_an_earlier_fit():
    X, y = blobs()

    class StopNow(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    net = classifier()
    assert net.fit(X, y, epochs=3, batch_size=5, verbose=0, callbacks=[StopNow()]).epoch == [0]
    assert net.stop_training is True
    history = net.fit(X, y, epochs=2, batch_size=5, verbose=0)
    assert history.epoch == [1, 2] and net.stop_training is False


def test_an_epoch_faster_than_the_clock_reports_infinite_samples_per_second(monkeypatch):
    X, y = blobs()
    monkeypatch.setattr(training.time, "perf_counter", lambda: 100.0)
    history = classifier().fit(X, y, epochs=1, batch_size=5, verbose=0)
    assert history["seconds"] == [0.0] and history["samples_per_second"] == [math.inf]


def test_epoch_seconds_are_within_the_fits_own_duration():
    import time
    X, y = blobs()
    start = time.perf_counter()
    history = classifier().fit(X, y, epochs=2, batch_size=5, verbose=0)
    took = time.perf_counter() - start
    assert 0 < sum(history["seconds"]) <= took


def test_each_epoch_line_is_flushed_at_once():
    """A log piped to a file or another process shows each epoch when it ends."""
    X, y = blobs()
    events = []

    class Stream:
        def write(self, text):
            events.append(("write", text))

        def flush(self):
            events.append(("flush",))

    stdout = sys.stdout
    sys.stdout = Stream()
    try:
        classifier().fit(X, y, epochs=2, batch_size=5, verbose=2)
    finally:
        sys.stdout = stdout
    lines = [i for i, e in enumerate(events) if e[0] == "write" and e[1].startswith("epoch ")]
    assert len(lines) == 2
    for i in lines:
        assert ("flush",) in events[i:i + 3]


def test_an_epoch_of_one_sample_or_tiny_weights_logs_its_loss():
    """The epoch's loss is the loss sum over the weight sum, even when that sum is
    one sample or below one."""
    X, y = blobs(n=4)
    net = classifier()
    history = weighted_epoch(net, X[:1], y[:1])
    assert history["loss"][0] == pytest.approx(net.evaluate(X[:1], y[:1])["loss"], rel=1e-12)
    weights = np.full(4, 0.01)
    history = weighted_epoch(net, X, y, weights)
    want = net.evaluate(X, y, sample_weight=weights)["loss"]
    assert history["loss"][0] == pytest.approx(want, rel=1e-12) and want > 0.1


def test_fit_takes_n_threads_as_given_over_the_networks():
    X, y = blobs()
    assert FitConfig.validate(classifier(), X, y, n_threads=2, batch_size=4).n_threads == 2
    assert FitConfig.validate(classifier(), X, y, batch_size=4).n_threads == 1


def test_a_shard_may_hold_only_zero_training_or_validation_weights():
    X, y = blobs()
    config = FitConfig.validate(classifier(), X, y, sample_weight=np.zeros(20), shard=True,
                                batch_size=4)
    np.testing.assert_array_equal(config.weights, np.zeros(20))
    config = FitConfig.validate(classifier(), X, y, batch_size=4, shard=True,
                                validation_data=(X[:4], y[:4], np.zeros(4)))
    np.testing.assert_array_equal(config.validation[3], np.zeros(4))
    with pytest.raises(ValueError, match="sample_weight"):
        FitConfig.validate(classifier(), X, y, sample_weight=np.zeros(20), batch_size=4)


class FakeBar:
    def __init__(self):
        self.updates = []

    def update_to(self, batches_done, running_loss):
        self.updates.append(batches_done)

    def close(self):
        pass


def fit_40_batches_with_a_bar(monkeypatch, steps_per_execution):
    """(the bar, the hooks' Record) of a fit of 40 batches of one row."""
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = np.arange(40) % 2
    bar = FakeBar()
    monkeypatch.setattr(training, "_progress_bar", lambda *args: bar)
    record = Record()
    classifier().fit(X, y, epochs=1, batch_size=1, verbose=1, callbacks=[record],
                     steps_per_execution=steps_per_execution)
    return bar, record


def test_a_bar_moves_every_twentieth_of_the_epoch_between_sparser_batch_hooks(monkeypatch):
    """40 batches: the bar every 2 (a twentieth), the hooks every 10
    (steps_per_execution)."""
    bar, record = fit_40_batches_with_a_bar(monkeypatch, 10)
    assert bar.updates == list(range(2, 41, 2))
    assert [c[1] for c in record.calls if c[0] == "batch_end"] == [9, 19, 29, 39]
    assert [c[1] for c in record.calls if c[0] == "batch_begin"] == [0, 10, 20, 30]


def test_hooks_between_the_bars_multiples_come_at_their_own(monkeypatch):
    """40 batches: the bar every 2, the hooks every 5 (not a multiple of 2):
    the hooks came at the bar's multiples past each 5 (5, 11, 17, ...)."""
    bar, record = fit_40_batches_with_a_bar(monkeypatch, 5)
    assert set(range(2, 41, 2)) <= set(bar.updates)
    assert [c[1] for c in record.calls if c[0] == "batch_end"] == list(range(4, 40, 5))


def test_a_bar_without_batch_hooks_moves_every_twentieth_of_the_epoch(monkeypatch):
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = np.arange(40) % 2
    bar = FakeBar()
    monkeypatch.setattr(training, "_progress_bar", lambda *args: bar)
    classifier().fit(X, y, epochs=1, batch_size=1, verbose=1)
    assert bar.updates == list(range(2, 41, 2))


def test_partial_fit_defaults_are_the_networks():
    mine = inspect.signature(training.partial_fit).parameters
    for name, parameter in inspect.signature(dn.Sequential.partial_fit).parameters.items():
        if name != "self":
            assert mine[name].default == parameter.default, name


def test_partial_fit_called_from_a_callback_is_refused_by_name():
    X, y = blobs()
    errors = []

    class Nested(Callback):
        def on_epoch_end(self, epoch, logs=None):
            try:
                self.model.partial_fit(X, y)
            except RuntimeError as error:
                errors.append(str(error))

    classifier().fit(X, y, epochs=1, batch_size=5, verbose=0, callbacks=[Nested()])
    assert len(errors) == 1
    assert errors[0].startswith("partial_fit: this network is already being trained by fit")


def test_partial_fit_passes_weights_threads_and_one_epoch_to_fit():
    X, y = blobs(n=12)
    weights = np.r_[np.ones(6), np.zeros(6)]
    a, b = classifier(), classifier()
    a.partial_fit(X, y, batch_size=4, shuffle=False, sample_weight=weights)
    b.fit(X, y, epochs=1, batch_size=4, shuffle=False, sample_weight=weights, verbose=0)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)
    assert a.epochs_trained == 1
    with pytest.raises(ValueError, match=msg("n_threads must be an int in [1, 64]")):
        a.partial_fit(X, y, n_threads=0)
    a.partial_fit(X[:2], y[:2], batch_size=1)
    assert a.optimizer.iterations == 3 + 2


def test_partial_fit_names_twenty_classes_at_most():
    X = np.random.default_rng(0).normal(size=(25, 3))
    net = softmax_net(k=25)
    net.partial_fit(X, np.arange(25), classes=np.arange(25))
    with pytest.raises(ValueError, match=msg(
            f"classes={list(range(1, 21))} differs from classes_ {list(range(20))} set by "
            "an earlier call")):
        net.partial_fit(X, np.arange(25), classes=np.arange(1, 26))


def test_partial_fit_refuses_a_single_class_and_mixed_labels():
    X = np.random.default_rng(0).normal(size=(6, 3))
    with pytest.raises(ValueError, match=msg(
            "classes has 1 labels, but the network's softmax_cross_entropy output needs 3")):
        softmax_net().partial_fit(X, np.zeros(6, int), classes=[0])
    mixed = np.array(["a", 1, "b", 2, "a", 1], dtype=object)
    with pytest.raises(TypeError, match=msg("y labels must be comparable with each other")):
        softmax_net().partial_fit(X, mixed)


def test_partial_fit_first_chunk_names_ten_labels_at_most():
    X = np.random.default_rng(0).normal(size=(12, 3))
    labels = np.array([f"c{i:02d}" for i in range(12)])
    with pytest.raises(ValueError, match=re.escape(
            f"sees 12 distinct labels {labels[:10].tolist()}, but the network has 13")):
        softmax_net(k=13).partial_fit(X, labels)


def test_partial_fit_checks_only_the_first_chunk_of_string_labels():
    X = np.random.default_rng(0).normal(size=(6, 3))
    net = softmax_net()
    net.partial_fit(X, np.array(list("abcabc")))
    net.partial_fit(X[:2], np.array(["a", "b"]))       # later chunks may miss labels
    np.testing.assert_array_equal(net.classes_, ["a", "b", "c"])
    binary = softmax_net(k=1, loss="binary_cross_entropy")
    binary.partial_fit(X, np.array(["no", "yes"] * 3))  # one output, two labels
    np.testing.assert_array_equal(binary.classes_, ["no", "yes"])


def test_a_refusal_at_an_epochs_start_keeps_the_epochs_already_completed():
    """A callback replaces the optimizer after epoch 1: fit raises at epoch 2's
    start, before epoch 2 changed anything, and the network keeps epoch 1's
    weights, count and history (as after Ctrl-C there)."""
    X, y = blobs()

    class Swap(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.after = self.model.get_weights()
            self.model.optimizer = dn.optimizers.SGD(0.1)

    net = classifier()
    swap = Swap()
    with pytest.raises(RuntimeError, match=msg("fit: the network's optimizer was replaced")):
        net.fit(X, y, epochs=2, batch_size=5, verbose=0, callbacks=[swap])
    assert net.history.epoch == [0] and net.epochs_trained == 1
    for got, want in zip(net.get_weights(), swap.after):
        np.testing.assert_array_equal(got, want)


def test_a_callback_dropping_the_last_bias_is_named_as_parameters():
    X, y = blobs()

    class DropBias(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.layers[-1].use_bias = False

    with pytest.raises(RuntimeError, match=msg(
            "fit: the network's parameters was replaced during fit")):
        classifier().fit(X, y, epochs=2, batch_size=5, verbose=0, callbacks=[DropBias()])


def test_small_weights_in_both_parts_of_a_split_are_fine():
    X, y = blobs()
    config = FitConfig.validate(classifier(), X, y, sample_weight=np.full(20, 0.1),
                                validation_split=0.25, batch_size=4)
    assert config.weights.sum() == pytest.approx(1.5) and config.validation[3].sum() < 1


def test_initial_epoch_bounds():
    X, y = blobs()
    net = classifier()
    history = net.fit(X, y, epochs=2, initial_epoch=2, batch_size=5, verbose=0)
    assert history.epoch == [] and net.epochs_trained == 0
    history = net.fit(X, y, epochs=1, initial_epoch=0, batch_size=5, verbose=0)
    assert history.epoch == [0] and net.epochs_trained == 1


def test_a_hook_that_is_callbacks_own_no_op_is_no_batch_hook():
    class Plain:
        pass

    hooks = Plain()
    hooks.on_train_batch_end = Callback.on_train_batch_end     # the base class's no-op
    assert training._has_batch_hooks([hooks]) is False


def test_the_progress_bar_is_for_verbose_1_on_a_live_display(monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(training, "_dynamic_display", lambda: True)
    bar = training._progress_bar(1, 100, 32, 2, 5)
    try:
        assert bar._bar.desc == "epoch 3/5" and bar._bar.total == 100
        bar.update_to(4, 0.5)
        assert bar._bar.n == 100                    # 4 batches of 32, clipped to 100
    finally:
        bar.close()
    assert training._progress_bar(2, 100, 32, 2, 5) is None
    assert training._progress_bar(0, 100, 32, 2, 5) is None
    monkeypatch.setattr(training, "_dynamic_display", lambda: False)
    assert training._progress_bar(1, 100, 32, 2, 5) is None


def test_a_memmap_is_trained_in_chunks_as_the_in_memory_array(tmp_path):
    X, y = blobs()
    rows = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float64,
                                     shape=X.shape)
    rows[:] = X
    rows.flush()
    config = FitConfig.validate(classifier(), rows, y, batch_size=4, validation_split=0.25)
    assert isinstance(config.X, training.LazyRows) and len(config.X) == 15
    np.testing.assert_array_equal(config.validation[0], X[15:])
    assert type(training.make_trainer(classifier(), config)) is training._ChunkedTrainer
    in_memory = FitConfig.validate(classifier(), X, y, batch_size=4)
    assert type(training.make_trainer(classifier(), in_memory)) is training.Trainer
    lazy, eager = classifier(), classifier()
    lazy.fit(rows, y, epochs=2, batch_size=4, verbose=0)
    eager.fit(X, y, epochs=2, batch_size=4, verbose=0)
    for u, v in zip(lazy.get_weights(), eager.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_training_partial_fit_alone_is_one_quiet_shuffled_epoch_of_batches_of_32(capsys):
    """descend.training.partial_fit's own defaults (Sequential.partial_fit passes
    every argument): batch_size 32, shuffle, verbose 0, the network's threads."""
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = np.arange(40) % 2
    alone, twin = classifier(), classifier()
    training.partial_fit(alone, X, y)
    twin.fit(X, y, epochs=1, batch_size=32, shuffle=True, verbose=0)
    for u, v in zip(alone.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(u, v)
    assert alone.optimizer.iterations == 2
    assert capsys.readouterr() == ("", "")


def test_a_closed_stderr_is_no_live_display(monkeypatch):
    import io
    closed = io.StringIO()
    closed.close()                              # isatty() now raises ValueError
    monkeypatch.setattr(sys, "stderr", closed)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert training._dynamic_display() is False
    monkeypatch.setitem(sys.modules, "ipykernel", sys)      # as in a Jupyter kernel
    assert training._dynamic_display() is True


def test_batch_hooks_every_k_batches_when_the_progress_chunk_does_not_divide_k():
    """60 batches: the loop's progress chunk is 3 (a twentieth); hooks every 7
    batches, not at the multiples of 3 past each 7."""
    X = np.random.default_rng(0).normal(size=(60, 3))
    y = np.arange(60) % 2
    record = Record()
    classifier().fit(X, y, epochs=1, batch_size=1, verbose=0, callbacks=[record],
                     steps_per_execution=7)
    ends = [c[1] for c in record.calls if c[0] == "batch_end"]
    assert ends == [6, 13, 20, 27, 34, 41, 48, 55, 59]
    assert [c[1] for c in record.calls if c[0] == "batch_begin"] == [0] + [
        e + 1 for e in ends[:-1]]


@pytest.mark.parametrize("k, n_batches, memmap", [
    (100, 300, False),      # past the loop's 64-batch chunks: was 127, 255, 299
    (65, 100, False),       # was 99 only
    (7, 200, True),         # out of core: each chunk of rows counted from 0
])
def test_batch_hooks_come_at_the_epochs_multiples_of_k(tmp_path, k, n_batches, memmap):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_batches * 50, 784))
    y = np.arange(n_batches * 50) % 2
    if memmap:
        np.save(tmp_path / "X.npy", X)
        X = np.load(tmp_path / "X.npy", mmap_mode="r")     # read in chunks of rows
    record = Record()
    net = dn.Sequential([dn.Dense(4, activation="relu"), dn.Dense(2)], input_dim=784,
                        dtype="float64", seed=0, n_threads=2)
    net.compile("softmax_cross_entropy", dn.optimizers.SGD(0.01))
    net.fit(X, y, epochs=1, batch_size=50, verbose=0, callbacks=[record],
            steps_per_execution=k, shuffle=False)
    ends = [c[1] for c in record.calls if c[0] == "batch_end"]
    assert ends == sorted(set(range(k - 1, n_batches - 1, k)) | {n_batches - 1})


def test_partial_fit_keeps_the_first_classes_as_declared():
    """A later call may declare the same labels in another dtype (0.0 == 0): the
    classes_ of the first call stay, so predict_classes keeps returning ints."""
    X = np.random.default_rng(0).normal(size=(6, 3))
    net = softmax_net()
    net.partial_fit(X, np.arange(6) % 3, classes=[0, 1, 2])
    net.partial_fit(X, np.arange(6) % 3, classes=[0.0, 1.0, 2.0])
    assert net.classes_.dtype.kind == "i"
    assert net.predict_classes(X).dtype.kind == "i"


def test_validation_labels_are_encoded_with_the_training_classes():
    """Validation data holding 'b' and 'c' of the classes a, b, c: scored as
    evaluate scores them after the fit, not as a two-class problem of its own."""
    X = np.random.default_rng(0).normal(size=(12, 3))
    y = np.array(list("abc") * 4)
    net = softmax_net()
    history = net.fit(X, y, epochs=1, batch_size=4, verbose=0,
                      validation_data=(X[1:3], y[1:3]))
    scores = net.evaluate(X[1:3], y[1:3])
    assert history["val_loss"][0] == pytest.approx(scores["loss"], rel=1e-12)
    assert history["val_accuracy"][0] == pytest.approx(scores["accuracy"], rel=1e-12)


def test_partial_fit_names_a_bad_batch_size_before_looking_at_the_labels():
    X = np.random.default_rng(0).normal(size=(6, 3))
    net = softmax_net()
    for batch_size in (0, -5):
        with pytest.raises(ValueError, match=msg(
                f"batch_size must be an int >= 1, got {batch_size} (int)")):
            net.partial_fit(X, np.array(list("aabbaa")), batch_size=batch_size)
    assert net.classes_ is None and net.epochs_trained == 0


def test_an_overflowing_optimizer_moment_is_divergence(tmp_path):
    """A breaker's case: float32 targets of 1e21 give finite gradients whose
    square overflows Adam's v; the weights then stalled for good (m / inf),
    the fit ended normally and the saved model could not be loaded. Now the
    fit and train_on_batch roll back and raise DivergenceError; the kept
    state saves and loads."""
    X, y = np.ones((8, 2), np.float32), np.full(8, 1e21, np.float32)
    net = dn.Sequential([dn.Dense(1)], input_dim=2, seed=0).compile(
        "mean_squared_error", dn.optimizers.Adam())
    start = net.get_weights()
    with pytest.raises(dn.DivergenceError, match="the optimizer's state became NaN"):
        net.fit(X, y, epochs=1, batch_size=8, verbose=0)
    with pytest.raises(dn.DivergenceError, match="the optimizer's state NaN or infinite"):
        net.train_on_batch(X, y)
    assert all(np.array_equal(a, b) for a, b in zip(start, net.get_weights()))
    assert all(np.isfinite(s).all() for slots in net.optimizer.state for s in slots)
    net.save(tmp_path / "kept.npz")
    dn.load(tmp_path / "kept.npz")


@pytest.mark.parametrize("verbose, lines", [(np.int64(2), 1), (np.int8(0), 0), (np.uint8(2), 1)])
def test_fit_and_partial_fit_take_a_numpy_integer_verbose_as_its_value(verbose, lines, capsys):
    # (np.int64(2) was a TypeError where batch_size=np.int64(32) was taken)
    X, y = np.random.default_rng(0).random((40, 3)), np.arange(40) % 2
    net = dn.Sequential([dn.Dense(2)], input_dim=3, seed=0)
    net.compile(loss="softmax_cross_entropy", optimizer="sgd")
    net.fit(X, y, epochs=1, verbose=verbose)
    net.partial_fit(X, y, verbose=verbose)
    assert len(capsys.readouterr().out.splitlines()) == 2 * lines
    with pytest.raises(ValueError, match="verbose must be a bool or one of 0, 1, 2, 'auto', "
                                         "got 3"):
        net.fit(X, y, verbose=np.int64(3))


def test_verbose_auto_is_kerass_default_one(capsys):
    # Keras's fit, evaluate and predict default to verbose="auto" (1); it was
    # a TypeError in all four
    X, y = np.random.default_rng(0).random((40, 3)), np.arange(40) % 2
    net = dn.Sequential([dn.Dense(2)], input_dim=3, seed=0)
    net.compile(loss="softmax_cross_entropy", optimizer="sgd")
    net.fit(X, y, epochs=2, batch_size=40, verbose="auto")
    net.partial_fit(X, y, verbose="auto")
    net.evaluate(X, y, verbose="auto")
    net.predict(X, verbose="auto")
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["epoch", "epoch", "epoch", "evaluate",
                                                 "predict"], out
    with pytest.raises(ValueError, match="got 'AUTO'"):
        net.predict(X, verbose="AUTO")
