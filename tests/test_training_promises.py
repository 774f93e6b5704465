"""Promises of the training loop: batch hooks, divergence as a policy callbacks
observe (TerminateOnNaN), epochs that continue across fits (initial_epoch)."""
import os
import pathlib

import numpy as np
import pytest

import descend as dn
from descend.callbacks import Callback, LearningRateScheduler, ModelCheckpoint, TerminateOnNaN


def data(n=100, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X, np.argmax(X @ rng.normal(size=(d, k)), axis=1)


def net(seed=0, optimizer=None):
    model = dn.Sequential([dn.Dense(8, activation="relu"), dn.Dense(3)], input_dim=5,
                          dtype="float64", seed=seed, n_threads=1)
    model.compile("softmax_cross_entropy", optimizer or dn.optimizers.SGD(0.1, momentum=0.9))
    return model


class RecordBatches(Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch", epoch))

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(("begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("end", batch, logs["loss"]))


# --------------------------------------------------------------------------- batch hooks
@pytest.mark.parametrize("every, begins, ends", [
    (1, list(range(10)), list(range(10))),
    (4, [0, 4, 8], [3, 7, 9]),
    (10, [0], [9]),
    (64, [0], [9]),
])
def test_batch_hooks_are_called_every_k_batches(every, begins, ends):
    X, y = data()
    record = RecordBatches()
    history = net().fit(X, y, epochs=2, batch_size=10, verbose=0, callbacks=[record],
                        steps_per_execution=every)
    for epoch in (0, 1):
        start = record.calls.index(("epoch", epoch))
        stop = (record.calls.index(("epoch", epoch + 1)) if epoch == 0
                else len(record.calls))
        calls = record.calls[start + 1:stop]
        assert [c[1] for c in calls if c[0] == "begin"] == begins
        assert [c[1] for c in calls if c[0] == "end"] == ends
        assert [c[0] for c in calls] == ["begin", "end"] * len(begins)
        # the last report's running loss is the epoch's loss
        assert calls[-1][2] == history["loss"][epoch]


def test_default_batch_hooks_run_every_twentieth_of_an_epoch():
    X, y = data(n=400)
    record = RecordBatches()
    net().fit(X, y, epochs=1, batch_size=4, verbose=0, callbacks=[record])     # 100 batches
    ends = [c[1] for c in record.calls if c[0] == "end"]
    assert ends == list(range(4, 100, 5))


def test_batch_hooks_do_not_change_the_training():
    X, y = data()
    plain, hooked = net(), net()
    plain.fit(X, y, epochs=3, batch_size=7, verbose=0)
    hooked.fit(X, y, epochs=3, batch_size=7, verbose=0, callbacks=[RecordBatches()],
               steps_per_execution=1)
    for a, b in zip(plain.get_weights(), hooked.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("value, error", [(0, ValueError), (1.5, TypeError), ("2", TypeError)])
def test_steps_per_execution_is_checked(value, error):
    X, y = data()
    with pytest.raises(error, match="steps_per_execution"):
        net().fit(X, y, verbose=0, steps_per_execution=value)


# --------------------------------------------------------------------------- divergence
def diverging_fit(callbacks):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 5))
    y = (X @ rng.normal(size=5)) * 100
    model = dn.Sequential([dn.Dense(16, activation="tanh"), dn.Dense(1)], input_dim=5,
                          dtype="float64", seed=0, n_threads=1)
    model.compile("mean_squared_error", dn.optimizers.SGD(1e-3))
    boost = LearningRateScheduler(lambda epoch: 1e-3 if epoch < 2 else 1e25)
    weights = []

    class Record(Callback):
        def on_epoch_end(self, epoch, logs=None):
            weights.append(self.model.get_weights())

    history = model.fit(X, y, epochs=6, batch_size=4, verbose=0,
                        callbacks=[Record(), boost] + callbacks)
    return model, history, weights


def test_terminate_on_nan_fires_and_ends_the_fit_with_the_last_finite_epoch():
    stop = TerminateOnNaN(verbose=0)
    record = RecordBatches()
    model, history, weights = diverging_fit([stop, record])
    assert stop.terminated_epoch == 2
    assert history.diverged and not history.interrupted
    # the epoch that diverged is the History's last entry (loss NaN), as in Keras;
    # its weights were rolled back, so epochs_trained does not count it
    assert history.epoch == [0, 1, 2] and model.epochs_trained == 2
    assert np.isfinite(history["loss"][:2]).all() and np.isnan(history["loss"][2])
    assert history["learning_rate"] == [1e-3, 1e-3, 1e25]
    assert {len(values) for values in history.values()} == {3}     # one value per epoch
    for a, b in zip(model.get_weights(), weights[-1]):
        np.testing.assert_array_equal(a, b)
    last = record.calls[-1]
    assert last[0] == "end" and np.isnan(last[2])


def test_terminate_on_nan_in_the_first_epoch_returns_a_history_of_what_ran(capsys):
    # was: an empty History, so history.history["loss"] raised KeyError
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 5))
    y = (X @ rng.normal(size=5)) * 1e3
    model = dn.Sequential([dn.Dense(16, activation="tanh"), dn.Dense(1)], input_dim=5,
                          dtype="float64", seed=0, n_threads=1)
    model.compile("mean_squared_error", dn.optimizers.SGD(1e30))
    before = model.get_weights()
    history = model.fit(X, y, epochs=5, batch_size=4, verbose=2,
                        callbacks=[TerminateOnNaN(verbose=0)])
    assert history.diverged and history.epoch == [0] and model.epochs_trained == 0
    assert len(history.history["loss"]) == 1 and np.isnan(history.history["loss"][0])
    assert history["learning_rate"] == [1e30] and history["seconds"][0] >= 0
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    err = capsys.readouterr().err
    assert "Training stopped in epoch 1/5 by a callback" in err and "0-based" not in err


def test_without_a_callback_that_stops_divergence_raises():
    record = RecordBatches()
    with pytest.raises(dn.DivergenceError, match=r"diverged in epoch 3/6: "):
        diverging_fit([record])
    assert record.calls[-1][0] == "end" and np.isnan(record.calls[-1][2])


# --------------------------------------------------------------------------- epochs
def test_a_second_fit_continues_the_epochs_and_keeps_the_checkpoints(tmp_path):
    X, y = data()
    model = net()
    pattern = str(tmp_path / "ck-{epoch}.npz")
    first = model.fit(X, y, epochs=2, verbose=0, callbacks=[ModelCheckpoint(pattern)])
    saved_first = pathlib.Path(pattern.format(epoch=2)).read_bytes()
    record = RecordBatches()
    second = model.fit(X, y, epochs=2, verbose=0,
                       callbacks=[ModelCheckpoint(pattern), record])
    assert first.epoch == [0, 1] and second.epoch == [2, 3]
    assert [c[1] for c in record.calls if c[0] == "epoch"] == [2, 3]
    assert sorted(os.listdir(tmp_path)) == [f"ck-{e}.npz" for e in (1, 2, 3, 4)]
    assert pathlib.Path(pattern.format(epoch=2)).read_bytes() == saved_first
    np.testing.assert_array_equal(dn.load(pattern.format(epoch=4)).predict(X), model.predict(X))


def test_initial_epoch_as_keras(capsys):
    X, y = data()
    model = net()
    history = model.fit(X, y, epochs=7, initial_epoch=5, verbose=2)
    assert history.epoch == [5, 6] and model.epochs_trained == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("epoch 6/7") and lines[1].startswith("epoch 7/7")
    assert model.fit(X, y, epochs=3, initial_epoch=3, verbose=0).epoch == []
    with pytest.raises(ValueError, match="initial_epoch"):
        model.fit(X, y, epochs=2, initial_epoch=3, verbose=0)
    with pytest.raises(ValueError, match="initial_epoch"):
        model.fit(X, y, epochs=2, initial_epoch=-1, verbose=0)
    assert model.epochs_trained == 2


def test_initial_epoch_does_not_change_the_training():
    X, y = data()
    a, b = net(), net()
    a.fit(X, y, epochs=2, verbose=0)
    b.fit(X, y, epochs=12, initial_epoch=10, verbose=0)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)


# --------------------------------------------------------------------------- validation_data
def evaluate_inputs():
    X, y = data(n=30, seed=3)
    names = np.array(["a", "b", "c"])
    return {
        "arrays": (X, y),
        "lists": (X.tolist(), y.tolist()),
        "float32 X, int8 y": (X.astype(np.float32), y.astype(np.int8)),
        "Fortran X": (np.asfortranarray(X), y),
        "strided X": (np.repeat(X, 2, axis=0)[::2], y),
        "column y": (X, y.reshape(-1, 1)),
        "one-hot y": (X, np.eye(3)[y]),
        "one sample": (X[:1], y[:1]),
        "a class absent from training": (X, np.full(30, 2)),
        "tuple of tuples": (tuple(map(tuple, X)), tuple(y)),
        "string labels": (X, names[y]),
    }


@pytest.mark.parametrize("name", list(evaluate_inputs()))
def test_validation_data_accepts_what_evaluate_accepts(name):
    X, y = data()
    strings = name == "string labels"
    train_y = np.array(["a", "b", "c"])[y] if strings else y
    train = np.isin(y, [0, 1]) | strings      # training data without class 2 (ids)
    X_val, y_val = evaluate_inputs()[name]
    a, b = net(), net()
    a.fit(X[train], train_y[train], epochs=1, verbose=0)
    expected = a.evaluate(X_val, y_val)
    history = b.fit(X[train], train_y[train], epochs=1, verbose=0,
                    validation_data=(X_val, y_val))
    assert history["val_loss"] == [expected["loss"]]
    assert history["val_accuracy"] == [expected["accuracy"]]


@pytest.mark.parametrize("X_val, y_val, error, match", [
    (None, [0], TypeError, r"validation_data\[0\]"),
    ("abc", [0], TypeError, r"validation_data\[0\]"),
    (np.zeros((2, 4)), [0, 1], ValueError, r"validation_data\[0\] has 4 features"),
    (np.zeros((2, 5)), [0], ValueError, r"validation_data\[1\]"),
    (np.zeros((2, 5)), [0, 7], ValueError, r"validation_data\[1\]"),
    (np.full((2, 5), np.nan), [0, 1], ValueError, r"validation_data\[0\] contains"),
])
def test_validation_data_is_refused_as_evaluate_refuses_it(X_val, y_val, error, match):
    X, y = data()
    model = net()
    with pytest.raises(error, match=match):
        model.fit(X, y, verbose=0, validation_data=(X_val, y_val))
    assert model.epochs_trained == 0
    with pytest.raises(error):
        model.evaluate(X_val, y_val)


def test_an_error_in_a_batch_hook_leaves_the_epoch_unapplied():
    class Fails(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch >= 5:
                raise RuntimeError("hook failed")

    X, y = data()
    model = net(optimizer=dn.optimizers.Adam(0.01))
    model.fit(X, y, epochs=1, batch_size=10, verbose=0)
    before = model.state_dict()
    with pytest.raises(RuntimeError, match="hook failed"):
        model.fit(X, y, epochs=1, batch_size=10, verbose=0, callbacks=[Fails()],
                  steps_per_execution=2)
    after = model.state_dict()
    for name, value in before["parameters"].items():
        np.testing.assert_array_equal(after["parameters"][name], value)
    assert after["optimizer"]["iterations"] == before["optimizer"]["iterations"] == 10
    assert after["rng_state"] == before["rng_state"]
    assert model.epochs_trained == 1


def test_batch_hooks_beyond_64_batches_keep_at_least_k_batches_apart():
    X, y = data(n=600)
    record = RecordBatches()
    net().fit(X, y, epochs=1, batch_size=2, verbose=0, callbacks=[record],
              steps_per_execution=100)                                     # 300 batches
    ends = [c[1] for c in record.calls if c[0] == "end"]
    begins = [c[1] for c in record.calls if c[0] == "begin"]
    assert ends[-1] == 299 and begins[0] == 0
    assert all(b - a >= 100 for a, b in zip([-1] + ends[:-2], ends[:-1]))
    assert begins[1:] == [e + 1 for e in ends[:-1]]


# ------------------------------------------------------- survivors of the 13:00 UTC sample
def test_a_fit_that_ends_normally_is_not_interrupted():
    from descend.training import History
    assert History().interrupted is False
    X, y = data()
    history = net().fit(X, y, epochs=2, batch_size=10, verbose=0)
    assert history.interrupted is False and not history.diverged


def test_a_validation_split_of_one_sample_holds_out_the_last_row():
    X, y = data()                                   # 100 rows: 0.01 holds out 1
    model = net()
    history = model.fit(X, y, epochs=1, batch_size=10, verbose=0, validation_split=0.01,
                        shuffle=False)
    assert model.history.epoch == [0]
    expected = model.evaluate(X[-1:], y[-1:])["loss"]
    assert history["val_loss"][0] == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------- schedule's epoch
STEP = dn.schedules.StepDecay(0.1, drop=0.5, step_size=1)      # 0.1 * 0.5**epoch


class RecordRates(Callback):
    """(epoch, learning rate) at each on_epoch_begin: the index the callbacks
    see and the rate the epoch trains with (set before the hook)."""
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append((epoch, self.model.optimizer.learning_rate))


def scheduled_net():
    return net(optimizer=dn.optimizers.SGD(learning_rate=STEP))


@pytest.mark.parametrize("fits, epochs", [
    # (the fits run in turn, the epoch indices the last one runs)
    ([dict(epochs=4, initial_epoch=2)], [2, 3]),                      # fresh network
    ([dict(epochs=3), dict(epochs=5, initial_epoch=1)], [1, 2, 3, 4]),  # index < epochs_trained
    ([dict(epochs=1), dict(epochs=6, initial_epoch=4)], [4, 5]),      # index > epochs_trained
    ([dict(epochs=2), dict(epochs=2)], [2, 3]),                       # None: epochs_trained
])
def test_the_schedule_runs_at_the_epoch_index_callbacks_see(fits, epochs):
    # learning_rate=schedule and LearningRateScheduler(schedule) give the same
    # rates: schedule(k) at the epoch callbacks see as k (with initial_epoch it
    # was schedule(epochs_trained): [0.1, 0.05] for epochs 2 and 3)
    X, y = data()
    a, b = scheduled_net(), net(optimizer=dn.optimizers.SGD(0.1))
    for kw in fits:
        seen_a, seen_b = RecordRates(), RecordRates()
        history_a = a.fit(X, y, verbose=0, callbacks=[seen_a], **kw)
        history_b = b.fit(X, y, verbose=0, callbacks=[LearningRateScheduler(STEP), seen_b],
                          **kw)
    rates = [0.1 * 0.5 ** epoch for epoch in epochs]
    assert history_a.epoch == history_b.epoch == epochs
    assert history_a["learning_rate"] == history_b["learning_rate"] == rates
    assert seen_a.seen == seen_b.seen == list(zip(epochs, rates))
    assert a.epochs_trained == sum(kw["epochs"] - kw.get("initial_epoch", 0) for kw in fits)
    for u, v in zip(a.get_weights(), b.get_weights()):       # the same updates
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("resume, epochs", [
    (dict(epochs=4, initial_epoch=2), [2, 3]),        # Keras' way to resume
    (dict(epochs=2), [2, 3]),                         # descend's: epochs_trained
    (dict(epochs=6, initial_epoch=4), [4, 5]),        # an index past epochs_trained
])
def test_a_schedule_after_save_and_load_runs_at_the_index_callbacks_see(tmp_path, resume,
                                                                         epochs):
    # initial_epoch=epochs_trained and None resume where the schedule stopped, with
    # the uninterrupted fit's weights; another initial_epoch moves the schedule
    # with the callbacks' index (it ran at epochs_trained: 0.025, 0.0125)
    X, y = data()
    whole = scheduled_net()
    whole.fit(X, y, epochs=4, verbose=0)
    first = scheduled_net()
    first.fit(X, y, epochs=2, verbose=0)
    first.save(tmp_path / "half.npz")
    resumed = dn.load(tmp_path / "half.npz")
    seen = RecordRates()
    history = resumed.fit(X, y, verbose=0, callbacks=[seen], **resume)
    rates = [0.1 * 0.5 ** epoch for epoch in epochs]
    assert history["learning_rate"] == rates and seen.seen == list(zip(epochs, rates))
    assert resumed.epochs_trained == 4
    if epochs == [2, 3]:
        assert rates == whole.history["learning_rate"][2:]
        for u, v in zip(resumed.get_weights(), whole.get_weights()):
            np.testing.assert_array_equal(u, v)


def test_initial_epoch_moves_the_schedule_not_the_training_count():
    # a schedule whose rate differs at epoch 5 trains differently from epoch 0
    # (the constant rate of test_initial_epoch_does_not_change_the_training does not)
    X, y = data()
    a, b = scheduled_net(), net(optimizer=dn.optimizers.SGD(learning_rate=0.1 * 0.5 ** 5))
    a.fit(X, y, epochs=7, initial_epoch=5, verbose=0)
    b.fit(X, y, epochs=1, verbose=0)
    b.optimizer.learning_rate = 0.1 * 0.5 ** 6
    b.fit(X, y, epochs=1, verbose=0)
    assert a.history["learning_rate"] == [0.1 * 0.5 ** 5, 0.1 * 0.5 ** 6]
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)


# --------------------------------------------------------------------------- tiny rates
F32_TINY = 1.1754943508222875e-38
FLUSHED = (f"must be at least {F32_TINY} when positive (the smallest normal float32: a "
           "smaller rate moves no weight of normal size, and optimizers with state flush it "
           "to zero)")


@pytest.mark.parametrize("value", [1e-46, 1e-320])
def test_compile_refuses_a_learning_rate_float32_rounds_to_nothing(value):
    # it trained two epochs without moving a weight (0.0 itself was refused)
    model = dn.Sequential([dn.Dense(3)], input_dim=5, seed=0)          # float32
    with pytest.raises(ValueError) as info:
        model.compile("softmax_cross_entropy", dn.optimizers.SGD(learning_rate=value))
    assert str(info.value) == f"learning_rate {FLUSHED}, got {value}"
    assert model.optimizer is None


def float32_net(optimizer):
    model = dn.Sequential([dn.Dense(8, activation="relu"), dn.Dense(3)], input_dim=5,
                          seed=0, n_threads=1)
    return model.compile("softmax_cross_entropy", optimizer)


@pytest.mark.parametrize("how", ["schedule", "callback", "assigned"])
def test_a_rate_flushed_mid_fit_stops_it_before_the_epoch_keeping_the_last(how):
    X, y = data()
    rates = lambda epoch: 0.1 if epoch == 0 else 1e-40                       # noqa: E731
    if how == "schedule":
        model, callbacks = float32_net(dn.optimizers.SGD(rates)), []
        message = (f"learning-rate schedule gave 1e-40 for epoch 2 (schedule(1)); "
                   f"learning_rate {FLUSHED}")
    elif how == "callback":
        model, callbacks = float32_net(dn.optimizers.SGD(0.1)), [LearningRateScheduler(rates)]
        message = ("LearningRateScheduler: `schedule` returned 1e-40 for epoch 2 "
                   f"(schedule(1)); the network's learning_rate {FLUSHED}")
    else:
        class Assign(Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.model.optimizer.learning_rate = rates(epoch)
        model, callbacks = float32_net(dn.optimizers.SGD(0.1)), [Assign()]
        message = f"learning_rate {FLUSHED}, got 1e-40"
    once = float32_net(dn.optimizers.SGD(0.1))
    once.fit(X, y, epochs=1, verbose=0)
    with pytest.raises(ValueError) as info:
        model.fit(X, y, epochs=3, verbose=0, callbacks=callbacks)
    assert str(info.value) == message
    assert model.epochs_trained == 1 and model.history["learning_rate"] == [0.1]
    assert model.optimizer.learning_rate == 0.1
    for u, v in zip(model.get_weights(), once.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_a_rate_of_zero_mid_fit_still_pauses_training():
    # (the documented rule for assigned and scheduled rates: >= 0)
    X, y = data()
    model = float32_net(dn.optimizers.SGD(dn.schedules.LinearWarmup(
        dn.schedules.Constant(0.1), 2)))
    before = model.get_weights()
    history = model.fit(X, y, epochs=1, verbose=0)
    assert history["learning_rate"] == [0.0]
    for u, v in zip(model.get_weights(), before):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("how", ["callback", "schedule"])
def test_plateau_cuts_below_the_dtypes_normal_range_end_at_zero(how):
    # descend's own cuts (min_lr=0) decay the rate towards 0: past float32's
    # smallest normal they give 0.0 (allowed mid-fit), not 1e-41 (which trained
    # nothing) nor the ValueError a chosen rate there gets
    X, y = data()
    settings = dict(monitor="loss", factor=1e-10, patience=0, min_delta=1e9)
    if how == "callback":
        model = float32_net(dn.optimizers.SGD(0.1))
        callbacks = [dn.callbacks.ReduceLROnPlateau(**settings)]
    else:
        model = float32_net(dn.optimizers.SGD(dn.schedules.ReduceLROnPlateau(0.1, **settings)))
        callbacks = []
    history = model.fit(X, y, epochs=7, verbose=0, callbacks=callbacks)
    # (the first epoch improves on inf: the cuts start after the second)
    assert history["learning_rate"][:5] == pytest.approx([0.1, 0.1, 1e-11, 1e-21, 1e-31],
                                                         rel=1e-12, abs=0)
    assert history["learning_rate"][5:] == [0.0, 0.0]
    assert model.epochs_trained == 7


def test_a_scale_below_the_normal_range_gives_zero_where_the_schedule_does_not():
    optimizer = dn.optimizers.SGD(dn.schedules.Constant(0.1))
    optimizer.learning_rate_scale = 1e-40               # (cuts by ReduceLROnPlateau)
    assert optimizer.learning_rate_for_epoch(0, np.float32) == 0.0
    assert optimizer.learning_rate_for_epoch(0, np.float64) == pytest.approx(1e-41, abs=0)
