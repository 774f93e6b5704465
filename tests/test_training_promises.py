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
