"""Tests for descend.callbacks, driven by a fake model and a fake fit loop.

``FakeModel`` implements only the interface the callbacks rely on
(stop_training, get/set_weights, save, optimizer.learning_rate), and
``fake_fit`` calls the hooks in the order ``model.fit`` does (checked against
a real fit below), with scripted epoch logs.
"""

import csv
import math
import os
import re
import warnings

import numpy as np
import pytest

import descend as dn
from descend import callbacks as cbs


# ---------------------------------------------------------------------------
# Fakes
# ---------------------------------------------------------------------------

def weights_at(epoch):
    """The fake model's weights at the end of ``epoch`` (distinct per epoch)."""
    return [
        np.full((2, 3), float(epoch)),
        np.arange(4, dtype=np.float64) * (epoch + 1),
    ]


class FakeOptimizer:
    def __init__(self, learning_rate):
        self.learning_rate = learning_rate


class FakeModel:
    def __init__(self, learning_rate=0.1):
        self.stop_training = False
        self.optimizer = FakeOptimizer(learning_rate)
        self._weights = [np.zeros((2, 3)), np.zeros(4)]
        self.saved = []  # paths passed to save(), in order

    def get_weights(self):
        return [w.copy() for w in self._weights]

    def set_weights(self, weights):
        self._weights = [np.array(w, copy=True) for w in weights]

    def save(self, path):
        # Write to the exact path (np.savez on a file object adds no suffix).
        with open(path, "wb") as f:
            np.savez(f, *self._weights)
        self.saved.append(str(path))


class Run:
    """What fake_fit observed."""

    def __init__(self):
        self.epochs = []  # epochs that ran
        self.lrs = []  # learning rate in effect during each epoch


def fake_fit(model, scripted_logs, callbacks):
    """Mimic model.fit: one epoch per entry of ``scripted_logs``.

    Each epoch "trains" by setting the weights to ``weights_at(epoch)``, then
    reports a copy of the scripted logs plus the learning rate it used.
    """
    run = Run()
    for cb in callbacks:
        cb.set_model(model)
    model.stop_training = False
    for cb in callbacks:
        cb.on_train_begin({})
    for epoch, scripted in enumerate(scripted_logs):
        for cb in callbacks:
            cb.on_epoch_begin(epoch, {})
        lr = model.optimizer.learning_rate
        run.epochs.append(epoch)
        run.lrs.append(lr)
        model._weights = weights_at(epoch)
        logs = dict(scripted)
        logs.setdefault("learning_rate", lr)
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    for cb in callbacks:
        cb.on_train_end({})
    return run


def val_losses(*values):
    return [{"loss": 1.0, "val_loss": v} for v in values]


def assert_weights_equal(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e)


class Recorder(cbs.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin",))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end",))


class StopAt(cbs.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.stop_training = True


# ---------------------------------------------------------------------------
# Callback / CallbackList
# ---------------------------------------------------------------------------

def test_base_callback_hooks_are_noops_and_set_model():
    cb = cbs.Callback()
    assert cb.model is None
    model = FakeModel()
    run = fake_fit(model, val_losses(1.0, 0.5), [cb])
    assert cb.model is model
    assert run.epochs == [0, 1]
    cb.on_train_batch_begin(0, {})
    cb.on_train_batch_end(0, {})
    cb.set_params({"epochs": 2})
    assert cb.params == {"epochs": 2}


def test_callback_list_dispatches_in_order():
    a, b = Recorder(), Recorder()
    model = FakeModel()
    lst = cbs.CallbackList([a, b], model=model)
    assert a.model is model and b.model is model and len(lst) == 2
    lst.on_train_begin({})
    lst.on_epoch_begin(0, {})
    lst.on_epoch_end(0, {"loss": 1.0})
    lst.on_train_end({})
    expected = [("train_begin",), ("epoch_begin", 0), ("epoch_end", 0), ("train_end",)]
    assert a.calls == expected and b.calls == expected
    with pytest.raises(TypeError):
        cbs.CallbackList(a)


def test_callback_list_calls_a_callbacks_own_set_model():
    # Keras's protocol: a callback may override set_model (to look the network up
    # once); the list calls it, and gives an object without one a `model` attribute
    seen = []

    class LooksUp(cbs.Callback):
        def set_model(self, model):
            seen.append(model)
            super().set_model(model)

    class Plain:
        pass
    model = FakeModel()
    looks_up, plain = LooksUp(), Plain()
    cbs.CallbackList([looks_up, plain], model=model)
    assert seen == [model] and looks_up.model is model and plain.model is model


def test_fit_calls_set_model_once_before_on_train_begin():
    import descend as dn
    calls = []

    class LooksUp(cbs.Callback):
        def set_model(self, model):
            calls.append(("set_model", model))
            super().set_model(model)

        def on_train_begin(self, logs=None):
            calls.append(("train_begin", self.model))
    net = dn.Sequential([dn.Dense(1)], input_dim=2, seed=0, n_threads=1)
    net.compile(loss="mean_squared_error", optimizer="sgd")
    net.fit(np.ones((4, 2)), np.ones(4), epochs=1, batch_size=4, verbose=0,
            callbacks=[LooksUp()])
    assert calls == [("set_model", net), ("train_begin", net)]


def test_fit_gives_every_callback_its_params():
    # Keras's protocol: self.params holds the fit's settings (a progress bar reads
    # epochs from it); set through each callback's set_params
    import descend as dn
    seen = []

    class Records(cbs.Callback):
        def on_train_begin(self, logs=None):
            seen.append(self.params)
    net = dn.Sequential([dn.Dense(1)], input_dim=2, seed=0, n_threads=1)
    net.compile(loss="mean_squared_error", optimizer="sgd")
    net.fit(np.ones((6, 2)), np.ones(6), epochs=3, batch_size=2, verbose=0,
            callbacks=[Records()])
    # (Keras 2's do_validation and metrics: the keys every epoch's logs hold)
    assert seen == [{"epochs": 3, "batch_size": 2, "samples": 6, "verbose": 0,
                     "do_validation": False,
                     "metrics": ["loss", "mse", "mae", "r2", "learning_rate", "seconds",
                                 "samples_per_second"]}]


def test_fake_fit_calls_hooks_in_the_order_of_the_real_fit():
    """The fake loop is only worth its tests if it calls the hooks as
    Sequential.fit does: both record the same calls, with and without a stop."""
    import descend as dn

    class StopAt(Recorder):
        def __init__(self, epoch):
            super().__init__()
            self.stop_epoch = epoch

        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            if epoch == self.stop_epoch:
                self.model.stop_training = True

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 2)), rng.normal(size=8)
    for epochs, stop_epoch in ((2, None), (5, 1)):
        real, fake = StopAt(stop_epoch), StopAt(stop_epoch)
        net = dn.Sequential([dn.Dense(1)], input_dim=2, seed=0, n_threads=1)
        net.compile(loss="mean_squared_error", optimizer="sgd")
        net.fit(X, y, epochs=epochs, batch_size=4, verbose=0, callbacks=[real])
        fake_fit(FakeModel(), val_losses(*[1.0] * epochs), [fake])
        expected = [("train_begin",), ("epoch_begin", 0), ("epoch_end", 0),
                    ("epoch_begin", 1), ("epoch_end", 1), ("train_end",)]
        assert real.calls == expected
        assert fake.calls == expected


# ---------------------------------------------------------------------------
# EarlyStopping
# ---------------------------------------------------------------------------

def test_early_stopping_stops_after_patience():
    es = cbs.EarlyStopping(monitor="val_loss", patience=2)
    run = fake_fit(FakeModel(), val_losses(1.0, 0.9, 0.95, 0.92, 0.8, 0.7), [es])
    assert run.epochs == [0, 1, 2, 3]
    assert es.stopped_epoch == 3
    assert es.best == 0.9
    assert es.best_epoch == 1
    assert es.wait == 2


def test_early_stopping_patience_zero_stops_at_first_non_improvement():
    es = cbs.EarlyStopping(patience=0)
    run = fake_fit(FakeModel(), val_losses(1.0, 0.9, 0.95, 0.5), [es])
    assert run.epochs == [0, 1, 2]
    assert es.stopped_epoch == 2


def test_early_stopping_never_stops_at_epoch_zero():
    # A NaN monitor is never an improvement, but epoch 0 cannot stop.
    es = cbs.EarlyStopping(patience=0)
    run = fake_fit(FakeModel(), val_losses(math.nan, math.nan, 1.0), [es])
    assert run.epochs == [0, 1]
    assert es.stopped_epoch == 1


def test_early_stopping_min_delta():
    # 1.0 -> 0.85 improves by more than 0.1; 0.85 -> 0.80 by less.
    es = cbs.EarlyStopping(monitor="val_loss", min_delta=0.1, patience=1)
    run = fake_fit(FakeModel(), val_losses(1.0, 0.85, 0.80, 0.5), [es])
    assert run.epochs == [0, 1, 2]
    assert es.best == 0.85
    assert es.best_epoch == 1


def test_early_stopping_runs_to_the_end_while_improving():
    es = cbs.EarlyStopping(patience=1)
    run = fake_fit(FakeModel(), val_losses(1.0, 0.9, 0.8, 0.7), [es])
    assert run.epochs == [0, 1, 2, 3]
    assert es.stopped_epoch == 0
    assert es.best == 0.7 and es.best_epoch == 3


def test_early_stopping_mode_auto_is_max_for_accuracy():
    es = cbs.EarlyStopping(monitor="val_accuracy", patience=2)
    assert es.monitor_mode == "max"
    logs = [{"loss": 1.0, "val_accuracy": a} for a in (0.5, 0.7, 0.65, 0.6, 0.9)]
    run = fake_fit(FakeModel(), logs, [es])
    assert run.epochs == [0, 1, 2, 3]
    assert es.best == 0.7 and es.best_epoch == 1


@pytest.mark.parametrize(
    "monitor, expected",
    [
        ("val_loss", "min"),
        ("loss", "min"),
        ("mse", "min"),
        ("val_mae", "min"),
        ("accuracy", "max"),
        ("val_acc", "max"),
        ("r2", "max"),
        ("val_r2", "max"),
    ],
)
def test_mode_auto_resolution(monitor, expected):
    assert cbs.EarlyStopping(monitor=monitor).monitor_mode == expected
    assert cbs.ReduceLROnPlateau(monitor=monitor).monitor_mode == expected


def test_early_stopping_explicit_mode_max():
    es = cbs.EarlyStopping(monitor="val_loss", mode="max", patience=0)
    run = fake_fit(FakeModel(), val_losses(1.0, 2.0, 1.5), [es])
    assert run.epochs == [0, 1, 2]
    assert es.best == 2.0


def test_early_stopping_restores_best_weights_when_stopped():
    model = FakeModel()
    es = cbs.EarlyStopping(patience=2, restore_best_weights=True)
    run = fake_fit(model, val_losses(1.0, 0.6, 0.7, 0.8, 0.1), [es])
    assert run.epochs == [0, 1, 2, 3]
    assert es.best_epoch == 1
    assert_weights_equal(model.get_weights(), weights_at(1))


def test_early_stopping_restores_at_train_end_only():
    # Weights seen by other callbacks at the stopping epoch are still current.
    seen = {}

    class Probe(cbs.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen[epoch] = self.model.get_weights()

    model = FakeModel()
    es = cbs.EarlyStopping(patience=1, restore_best_weights=True)
    fake_fit(model, val_losses(1.0, 0.5, 0.9), [es, Probe()])
    assert_weights_equal(seen[2], weights_at(2))
    assert_weights_equal(model.get_weights(), weights_at(1))


def test_early_stopping_restores_best_weights_without_early_stop():
    model = FakeModel()
    es = cbs.EarlyStopping(patience=10, restore_best_weights=True)
    run = fake_fit(model, val_losses(1.0, 0.5, 0.7, 0.8), [es])
    assert run.epochs == [0, 1, 2, 3]
    assert es.stopped_epoch == 0
    assert_weights_equal(model.get_weights(), weights_at(1))


def test_early_stopping_keeps_last_weights_when_last_epoch_is_best():
    model = FakeModel()
    es = cbs.EarlyStopping(patience=10, restore_best_weights=True)
    fake_fit(model, val_losses(1.0, 0.9, 0.8), [es])
    assert_weights_equal(model.get_weights(), weights_at(2))


def test_early_stopping_best_weights_are_copies():
    class AliasingModel(FakeModel):
        def get_weights(self):  # returns the live arrays, not copies
            return self._weights

    model = AliasingModel()
    es = cbs.EarlyStopping(patience=1, restore_best_weights=True)
    es.set_model(model)
    es.on_train_begin({})
    model._weights = weights_at(0)
    es.on_epoch_end(0, {"val_loss": 0.1})
    model._weights[0][...] = 99.0  # in-place update of the live weights
    model._weights[1][...] = 99.0
    es.on_epoch_end(1, {"val_loss": 0.5})
    es.on_train_end({})
    assert_weights_equal(model.get_weights(), weights_at(0))


def test_early_stopping_without_restore_leaves_weights():
    model = FakeModel()
    es = cbs.EarlyStopping(patience=1)
    fake_fit(model, val_losses(1.0, 0.5, 0.9), [es])
    assert es.best_weights is None
    assert_weights_equal(model.get_weights(), weights_at(2))


def test_early_stopping_restore_when_never_improving_uses_first_epoch():
    model = FakeModel()
    es = cbs.EarlyStopping(patience=1, restore_best_weights=True)
    run = fake_fit(model, val_losses(math.nan, math.nan, math.nan), [es])
    assert run.epochs == [0, 1]
    assert_weights_equal(model.get_weights(), weights_at(0))


def test_early_stopping_baseline_not_reached_stops():
    # Nothing beats the baseline: the counter is never reset.
    es = cbs.EarlyStopping(patience=2, baseline=0.5)
    run = fake_fit(FakeModel(), val_losses(0.9, 0.95, 0.97, 0.4), [es])
    assert run.epochs == [0, 1]
    assert es.stopped_epoch == 1
    assert es.best == 0.9


def test_early_stopping_baseline_reached_behaves_normally():
    es = cbs.EarlyStopping(patience=2, baseline=0.5)
    run = fake_fit(FakeModel(), val_losses(0.4, 0.45, 0.46, 0.47, 0.1), [es])
    assert run.epochs == [0, 1, 2]
    assert es.stopped_epoch == 2
    assert es.best == 0.4


def test_early_stopping_baseline_improving_epochs_do_not_stop():
    # Keras 3 semantics: improvements that miss the baseline keep counting,
    # but the stop only happens on a non-improving epoch.
    es = cbs.EarlyStopping(patience=1, baseline=0.5)
    run = fake_fit(FakeModel(), val_losses(0.9, 0.8, 0.7, 0.75, 0.1), [es])
    assert run.epochs == [0, 1, 2, 3]
    assert es.stopped_epoch == 3
    assert es.wait == 4


def test_early_stopping_baseline_max_mode():
    es = cbs.EarlyStopping(monitor="val_accuracy", patience=1, baseline=0.8)
    # 0.5 and 0.6 improve but miss the baseline; 0.55 does not improve.
    logs = [{"val_accuracy": a} for a in (0.5, 0.6, 0.55, 0.9)]
    run = fake_fit(FakeModel(), logs, [es])
    assert run.epochs == [0, 1, 2]
    assert es.stopped_epoch == 2 and es.best == 0.6


def test_early_stopping_start_from_epoch():
    # Epoch 0's very low loss is ignored, otherwise training would stop at 1.
    es = cbs.EarlyStopping(patience=1, start_from_epoch=1)
    run = fake_fit(FakeModel(), val_losses(0.1, 5.0, 4.0, 4.5, 1.0), [es])
    assert run.epochs == [0, 1, 2, 3]
    assert es.best == 4.0 and es.best_epoch == 2


def test_early_stopping_missing_monitor_warns_once_and_never_stops():
    es = cbs.EarlyStopping(monitor="val_loss", patience=0)
    logs = [{"loss": v, "accuracy": 0.5} for v in (1.0, 2.0, 3.0, 4.0)]
    with pytest.warns(RuntimeWarning) as record:
        run = fake_fit(FakeModel(), logs, [es])
    messages = [str(w.message) for w in record if "EarlyStopping" in str(w.message)]
    assert len(messages) == 1
    assert "val_loss" in messages[0]
    assert "accuracy" in messages[0] and "loss" in messages[0]
    assert "learning_rate" in messages[0]
    assert run.epochs == [0, 1, 2, 3]
    assert es.stopped_epoch == 0


def test_early_stopping_is_reusable():
    es = cbs.EarlyStopping(patience=1, restore_best_weights=True)
    fake_fit(FakeModel(), val_losses(0.1, 0.5), [es])
    assert es.stopped_epoch == 1
    model = FakeModel()
    run = fake_fit(model, val_losses(1.0, 0.9, 0.8), [es])
    assert run.epochs == [0, 1, 2]
    assert es.stopped_epoch == 0 and es.best == 0.8 and es.best_epoch == 2
    assert_weights_equal(model.get_weights(), weights_at(2))


def test_early_stopping_verbose_prints(capsys):
    es = cbs.EarlyStopping(patience=0, restore_best_weights=True, verbose=1)
    fake_fit(FakeModel(), val_losses(1.0, 2.0), [es])
    out = capsys.readouterr().out
    assert "Epoch 2: early stopping" in out
    assert "best epoch: 1" in out


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        ({"patience": -1}, ValueError, ["patience", "-1", ">= 0"]),
        ({"patience": 1.5}, TypeError, ["patience", "int", "float"]),
        ({"patience": True}, TypeError, ["patience"]),
        ({"min_delta": -0.1}, ValueError, ["min_delta", "-0.1", ">= 0"]),
        ({"min_delta": "0"}, TypeError, ["min_delta", "str"]),
        ({"mode": "bogus"}, ValueError, ["mode", "'bogus'", "'auto'", "'min'", "'max'"]),
        ({"mode": 1}, TypeError, ["mode"]),
        ({"monitor": 3}, TypeError, ["monitor", "int"]),
        ({"monitor": ""}, ValueError, ["monitor"]),
        ({"baseline": "x"}, TypeError, ["baseline"]),
        ({"baseline": math.nan}, ValueError, ["baseline"]),
        ({"restore_best_weights": "yes"}, TypeError, ["restore_best_weights"]),
        ({"start_from_epoch": -2}, ValueError, ["start_from_epoch", "-2"]),
    ],
)
def test_early_stopping_validation(kwargs, exc, words):
    with pytest.raises(exc) as info:
        cbs.EarlyStopping(**kwargs)
    for word in words:
        assert word in str(info.value)


def test_early_stopping_accepts_numpy_scalars():
    es = cbs.EarlyStopping(patience=np.int64(2), min_delta=np.float32(0.0),
                           restore_best_weights=np.bool_(True))
    assert es.patience == 2 and es.restore_best_weights is True


# ---------------------------------------------------------------------------
# ModelCheckpoint
# ---------------------------------------------------------------------------

def test_model_checkpoint_formats_file_names(tmp_path):
    model = FakeModel()
    ckpt = cbs.ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.3f}.npz"))
    fake_fit(model, val_losses(0.5, 0.25, 0.125), [ckpt])
    expected = ["ckpt-01-0.500.npz", "ckpt-02-0.250.npz", "ckpt-03-0.125.npz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == expected
    assert model.saved == [str(tmp_path / name) for name in expected]
    assert ckpt.last_saved_path == str(tmp_path / expected[-1])
    assert ckpt.last_saved_epoch == 2
    for epoch, name in enumerate(expected):
        with np.load(tmp_path / name) as data:
            assert_weights_equal([data["arr_0"], data["arr_1"]], weights_at(epoch))


def test_model_checkpoint_any_log_key_and_pathlike(tmp_path):
    model = FakeModel(learning_rate=0.01)
    logs = [{"loss": 0.75, "accuracy": 0.5}]
    ckpt = cbs.ModelCheckpoint(tmp_path / "e{epoch}-acc{accuracy:.2f}-lr{learning_rate}.npz")
    fake_fit(model, logs, [ckpt])
    assert [p.name for p in tmp_path.iterdir()] == ["e1-acc0.50-lr0.01.npz"]


def test_model_checkpoint_creates_directories(tmp_path):
    model = FakeModel()
    ckpt = cbs.ModelCheckpoint(str(tmp_path / "a" / "b" / "m-{epoch}.npz"))
    fake_fit(model, val_losses(1.0), [ckpt])
    assert (tmp_path / "a" / "b" / "m-1.npz").is_file()


def test_model_checkpoint_save_best_only(tmp_path):
    model = FakeModel()
    ckpt = cbs.ModelCheckpoint(str(tmp_path / "best-{epoch}.npz"), save_best_only=True)
    # improvements at epochs 1, 3 and 5 (1-based); a tie is not an improvement
    fake_fit(model, val_losses(0.5, 0.6, 0.4, 0.4, 0.3), [ckpt])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best-1.npz",
        "best-3.npz",
        "best-5.npz",
    ]
    assert ckpt.best == 0.3


def test_model_checkpoint_save_best_only_fixed_path_holds_best(tmp_path):
    model = FakeModel()
    path = tmp_path / "best.npz"
    ckpt = cbs.ModelCheckpoint(str(path), save_best_only=True)
    fake_fit(model, val_losses(0.5, 0.2, 0.4, 0.3), [ckpt])
    assert len(model.saved) == 2
    with np.load(path) as data:
        assert_weights_equal([data["arr_0"], data["arr_1"]], weights_at(1))


def test_model_checkpoint_save_best_only_mode_max(tmp_path):
    model = FakeModel()
    ckpt = cbs.ModelCheckpoint(
        str(tmp_path / "m-{epoch}.npz"), monitor="val_accuracy", save_best_only=True
    )
    logs = [{"val_accuracy": a} for a in (0.5, 0.4, 0.7, 0.6)]
    fake_fit(model, logs, [ckpt])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-1.npz", "m-3.npz"]


def test_model_checkpoint_save_best_only_nan_never_saves(tmp_path):
    model = FakeModel()
    ckpt = cbs.ModelCheckpoint(str(tmp_path / "m-{epoch}.npz"), save_best_only=True)
    fake_fit(model, val_losses(math.nan, 1.0, math.nan), [ckpt])
    assert [p.name for p in tmp_path.iterdir()] == ["m-2.npz"]


def test_model_checkpoint_missing_monitor_warns_and_skips(tmp_path):
    model = FakeModel()
    ckpt = cbs.ModelCheckpoint(str(tmp_path / "m.npz"), save_best_only=True)
    with pytest.warns(RuntimeWarning, match="val_loss") as record:
        fake_fit(model, [{"loss": 1.0}, {"loss": 0.5}], [ckpt])
    assert len([w for w in record if "ModelCheckpoint" in str(w.message)]) == 1
    assert model.saved == []


def test_model_checkpoint_unknown_field_raises_key_error(tmp_path):
    ckpt = cbs.ModelCheckpoint(str(tmp_path / "m-{val_accuracy:.2f}.npz"))
    with pytest.raises(KeyError, match="val_accuracy") as info:
        fake_fit(FakeModel(), val_losses(1.0), [ckpt])
    assert "val_loss" in str(info.value)  # available fields are listed


def test_model_checkpoint_is_reusable(tmp_path):
    model = FakeModel()
    ckpt = cbs.ModelCheckpoint(str(tmp_path / "m-{epoch}.npz"), save_best_only=True)
    fake_fit(model, val_losses(0.1), [ckpt])
    fake_fit(model, val_losses(0.5), [ckpt])  # best is reset for the new fit
    assert len(model.saved) == 2


@pytest.mark.parametrize(
    "args, kwargs, exc, words",
    [
        ((3,), {}, TypeError, ["filepath", "int"]),
        (("",), {}, ValueError, ["filepath"]),
        (("m-{epoch.npz",), {}, ValueError, ["filepath", "format"]),
        (("m-{}.npz",), {}, ValueError, ["filepath", "positional"]),
        (("m-{0}.npz",), {}, ValueError, ["filepath", "positional"]),
        (("m.npz",), {"mode": "up"}, ValueError, ["mode", "'up'"]),
        (("m.npz",), {"save_best_only": 1}, TypeError, ["save_best_only"]),
        (("m.npz",), {"monitor": None}, TypeError, ["monitor"]),
    ],
)
def test_model_checkpoint_validation(args, kwargs, exc, words):
    with pytest.raises(exc) as info:
        cbs.ModelCheckpoint(*args, **kwargs)
    for word in words:
        assert word in str(info.value)


# ---------------------------------------------------------------------------
# LearningRateScheduler
# ---------------------------------------------------------------------------

def test_lr_scheduler_one_argument():
    model = FakeModel(learning_rate=1.0)
    sched = cbs.LearningRateScheduler(lambda epoch: 0.1 * 0.5 ** epoch)
    run = fake_fit(model, val_losses(1, 1, 1), [sched])
    assert run.lrs == [0.1, 0.05, 0.025]
    assert isinstance(model.optimizer.learning_rate, float)


def test_lr_scheduler_two_arguments_receives_current_lr():
    model = FakeModel(learning_rate=0.2)
    seen = []

    def schedule(epoch, lr):
        seen.append((epoch, lr))
        return lr if epoch == 0 else lr * 0.5

    run = fake_fit(model, val_losses(1, 1, 1), [cbs.LearningRateScheduler(schedule)])
    assert run.lrs == [0.2, 0.1, 0.05]
    assert seen == [(0, 0.2), (1, 0.2), (2, 0.1)]


def test_lr_scheduler_callable_object():
    class StepDecay:
        def __call__(self, epoch):
            return 1.0 if epoch < 2 else 0.1

    run = fake_fit(FakeModel(), val_losses(1, 1, 1), [cbs.LearningRateScheduler(StepDecay())])
    assert run.lrs == [1.0, 1.0, 0.1]


def test_lr_scheduler_accepts_descend_schedule():
    from descend import schedules
    sched = cbs.LearningRateScheduler(schedules.StepDecay(1.0, drop=0.5, step_size=2))
    run = fake_fit(FakeModel(), val_losses(1, 1, 1, 1), [sched])
    assert run.lrs == [1.0, 1.0, 0.5, 0.5]


def test_lr_scheduler_second_parameter_with_default_gets_lr():
    def schedule(epoch, lr=None):
        return lr * 2

    run = fake_fit(FakeModel(0.25), val_losses(1, 1), [cbs.LearningRateScheduler(schedule)])
    assert run.lrs == [0.5, 1.0]


def test_lr_scheduler_accepts_int_and_numpy_values():
    run = fake_fit(
        FakeModel(),
        val_losses(1, 1),
        [cbs.LearningRateScheduler(lambda e: [1, np.float32(0.5)][e])],
    )
    assert run.lrs == [1.0, 0.5]
    assert all(type(lr) is float for lr in run.lrs)


def test_lr_scheduler_does_not_hide_type_errors_inside_schedule():
    def schedule(epoch, lr):
        raise TypeError("bug inside the schedule")

    with pytest.raises(TypeError, match="bug inside"):
        fake_fit(FakeModel(), val_losses(1), [cbs.LearningRateScheduler(schedule)])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 0.0, -0.1, None, "0.1", True,
                                 pytest.param(10 ** 400, id="int-beyond-float")])
def test_lr_scheduler_rejects_invalid_values(bad):
    sched = cbs.LearningRateScheduler(lambda epoch: 0.1 if epoch < 2 else bad)
    with pytest.raises(ValueError) as info:
        fake_fit(FakeModel(), val_losses(1, 1, 1, 1), [sched])
    message = str(info.value)
    assert "for epoch 3 (schedule(2))" in message
    assert repr(bad) in message


def test_lr_scheduler_refuses_an_int_beyond_float_after_a_cut():
    # was: a bare OverflowError ("int too large to convert to float") from
    # float(value), or from value * learning_rate_scale after a plateau cut
    net = dn.Sequential([dn.Dense(3)], input_dim=4, seed=0)
    net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(0.1))
    net.optimizer.learning_rate_scale = 0.5
    sched = cbs.LearningRateScheduler(lambda epoch: 10 ** 400)
    X, y = np.ones((8, 4)), np.arange(8) % 3
    with pytest.raises(ValueError, match="finite float > 0"):
        net.fit(X, y, epochs=1, batch_size=4, callbacks=[sched], verbose=0)
    assert net.optimizer.learning_rate == 0.1 and net.epochs_trained == 0


def test_lr_scheduler_validation():
    with pytest.raises(TypeError, match="callable"):
        cbs.LearningRateScheduler(0.1)
    with pytest.raises(TypeError, match="positional"):
        cbs.LearningRateScheduler(lambda a, b, c: 0.1)
    with pytest.raises(TypeError, match="positional"):
        cbs.LearningRateScheduler(lambda: 0.1)
    with pytest.raises(TypeError, match="keyword-only"):
        cbs.LearningRateScheduler(lambda epoch, *, scale: 0.1)
    with pytest.raises(ValueError, match="verbose"):
        cbs.LearningRateScheduler(lambda e: 0.1, verbose=-1)


def test_lr_scheduler_verbose(capsys):
    fake_fit(FakeModel(), val_losses(1), [cbs.LearningRateScheduler(lambda e: 0.5, verbose=1)])
    assert "setting learning rate to 0.5" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# ReduceLROnPlateau
# ---------------------------------------------------------------------------

def reduction_epochs(run):
    """Epochs whose end reduced the learning rate (as seen by the next epoch)."""
    return [e for e in range(len(run.lrs) - 1) if run.lrs[e + 1] < run.lrs[e]]


def test_reduce_lr_on_plateau_reduces_after_patience():
    model = FakeModel(learning_rate=1.0)
    rlr = cbs.ReduceLROnPlateau(factor=0.5, patience=2)
    run = fake_fit(model, val_losses(*[1.0] * 7), [rlr])
    # epoch 0 improves on inf; 1, 2 plateau -> reduce at 2; 3, 4 -> reduce at 4 ...
    assert run.lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert model.optimizer.learning_rate == 0.125  # reduced at the end of epoch 6


def test_reduce_lr_on_plateau_improvement_resets_wait():
    model = FakeModel(learning_rate=1.0)
    rlr = cbs.ReduceLROnPlateau(factor=0.5, patience=2)
    run = fake_fit(model, val_losses(1.0, 1.0, 0.5, 0.5, 0.5), [rlr])
    assert reduction_epochs(run) == [] and model.optimizer.learning_rate == 0.5
    assert rlr.best == 0.5


def test_reduce_lr_on_plateau_min_delta():
    model = FakeModel(learning_rate=1.0)
    rlr = cbs.ReduceLROnPlateau(factor=0.5, patience=1, min_delta=0.1)
    # 1.0 -> 0.95 is not an improvement of more than 0.1
    run = fake_fit(model, val_losses(1.0, 0.95, 0.5), [rlr])
    assert run.lrs == [1.0, 1.0, 0.5]


def test_reduce_lr_on_plateau_cooldown():
    model = FakeModel(learning_rate=1.0)
    rlr = cbs.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=2)
    run = fake_fit(model, val_losses(*[1.0] * 9), [rlr])
    # reduce at 2; epochs 3 and 4 are the cooldown (not counted, as PyTorch);
    # 5, 6 -> reduce at 6; 7, 8 cooldown again.
    assert reduction_epochs(run) == [2, 6]
    assert run.lrs == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert model.optimizer.learning_rate == 0.25


def test_reduce_lr_on_plateau_cooldown_counts_whole_epochs():
    # cooldown=c skips c epochs (PyTorch); Keras' cooldown=1 behaves as 0 does
    runs = {}
    for cooldown in (0, 1):
        rlr = cbs.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=cooldown)
        runs[cooldown] = fake_fit(FakeModel(1.0), val_losses(*[1.0] * 8), [rlr]).lrs
    assert runs[0] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125]
    assert runs[1] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25]


def test_reduce_lr_on_plateau_min_lr():
    model = FakeModel(learning_rate=1.0)
    rlr = cbs.ReduceLROnPlateau(factor=0.1, patience=1, min_lr=0.005)
    run = fake_fit(model, val_losses(*[1.0] * 6), [rlr])
    assert run.lrs[:3] == [1.0, 1.0, 0.1]
    assert run.lrs[3] == pytest.approx(0.01)
    assert run.lrs[4:] == [0.005, 0.005]
    assert model.optimizer.learning_rate == 0.005


def test_reduce_lr_on_plateau_mode_max_for_accuracy():
    model = FakeModel(learning_rate=1.0)
    rlr = cbs.ReduceLROnPlateau(monitor="val_accuracy", factor=0.5, patience=1)
    logs = [{"val_accuracy": a} for a in (0.5, 0.6, 0.55, 0.7, 0.7)]
    run = fake_fit(model, logs, [rlr])
    assert reduction_epochs(run) == [2]
    assert model.optimizer.learning_rate == 0.25  # and again at epoch 4


def test_reduce_lr_on_plateau_missing_monitor_warns_once():
    model = FakeModel(learning_rate=1.0)
    rlr = cbs.ReduceLROnPlateau(patience=0)
    with pytest.warns(RuntimeWarning, match="val_loss") as record:
        fake_fit(model, [{"loss": 1.0}] * 3, [rlr])
    assert len([w for w in record if "ReduceLROnPlateau" in str(w.message)]) == 1
    assert model.optimizer.learning_rate == 1.0


def test_reduce_lr_on_plateau_is_reusable():
    rlr = cbs.ReduceLROnPlateau(factor=0.5, patience=1)
    fake_fit(FakeModel(1.0), val_losses(0.1, 0.2), [rlr])
    model = FakeModel(1.0)
    fake_fit(model, val_losses(1.0, 0.9), [rlr])  # best reset: 0.9 improves
    assert model.optimizer.learning_rate == 1.0


def test_reduce_lr_on_plateau_verbose(capsys):
    rlr = cbs.ReduceLROnPlateau(factor=0.5, patience=0, verbose=1)
    fake_fit(FakeModel(1.0), val_losses(1.0, 2.0), [rlr])
    assert "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.5" in capsys.readouterr().out


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        ({"factor": 1.0}, ValueError, ["factor", "(0, 1)", "1.0"]),
        ({"factor": 0.0}, ValueError, ["factor", "0.0"]),
        ({"factor": 1.5}, ValueError, ["factor", "1.5"]),
        ({"factor": -0.5}, ValueError, ["factor"]),
        ({"factor": "0.5"}, TypeError, ["factor", "str"]),
        ({"patience": -1}, ValueError, ["patience", "-1"]),
        ({"patience": 2.0}, TypeError, ["patience"]),
        ({"cooldown": -1}, ValueError, ["cooldown", "-1"]),
        ({"min_lr": -1e-3}, ValueError, ["min_lr"]),
        ({"min_delta": -1.0}, ValueError, ["min_delta"]),
        ({"mode": "MIN"}, ValueError, ["mode", "'MIN'"]),
        ({"monitor": ["val_loss"]}, TypeError, ["monitor"]),
    ],
)
def test_reduce_lr_on_plateau_validation(kwargs, exc, words):
    with pytest.raises(exc) as info:
        cbs.ReduceLROnPlateau(**kwargs)
    for word in words:
        assert word in str(info.value)


# ---------------------------------------------------------------------------
# CSVLogger
# ---------------------------------------------------------------------------

CSV_LOGS = [
    {"val_loss": 0.5, "loss": 0.75, "accuracy": 0.25, "learning_rate": 0.1},
    {"val_loss": 0.25, "loss": 0.5, "accuracy": 0.5, "learning_rate": 0.1},
    {"val_loss": 0.125, "loss": 0.25, "accuracy": 0.75, "learning_rate": 0.1},
]


def read_csv(path, delimiter=","):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=delimiter))


def test_csv_logger_content(tmp_path):
    path = tmp_path / "log.csv"
    logger = cbs.CSVLogger(str(path))
    fake_fit(FakeModel(), CSV_LOGS, [logger])
    assert read_csv(path) == [
        ["epoch", "accuracy", "learning_rate", "loss", "val_loss"],
        ["0", "0.25", "0.1", "0.75", "0.5"],
        ["1", "0.5", "0.1", "0.5", "0.25"],
        ["2", "0.75", "0.1", "0.25", "0.125"],
    ]


def test_csv_logger_separator_and_numpy_values(tmp_path):
    path = tmp_path / "log.csv"
    logs = [{"loss": np.float64(0.5), "mse": np.float32(0.25), "r2": np.array(0.125)}]
    fake_fit(FakeModel(0.01), logs, [cbs.CSVLogger(path, separator=";")])
    assert read_csv(path, delimiter=";") == [
        ["epoch", "learning_rate", "loss", "mse", "r2"],
        ["0", "0.01", "0.5", "0.25", "0.125"],
    ]


def test_csv_logger_flushes_each_epoch(tmp_path):
    path = tmp_path / "log.csv"
    rows_seen = []

    class Probe(cbs.Callback):
        def on_epoch_end(self, epoch, logs=None):
            rows_seen.append(len(read_csv(path)))

    fake_fit(FakeModel(), CSV_LOGS, [cbs.CSVLogger(str(path)), Probe()])
    assert rows_seen == [2, 3, 4]


def test_csv_logger_closes_file_on_early_stop(tmp_path):
    path = tmp_path / "log.csv"
    logger = cbs.CSVLogger(str(path))
    run = fake_fit(FakeModel(), CSV_LOGS, [logger, StopAt(0)])
    assert run.epochs == [0]
    assert logger.csv_file is None
    assert len(read_csv(path)) == 2


def test_csv_logger_file_is_closed_after_train_end(tmp_path):
    logger = cbs.CSVLogger(str(tmp_path / "log.csv"))
    logger.set_model(FakeModel())
    logger.on_train_begin({})
    handle = logger.csv_file
    assert not handle.closed
    logger.on_train_end({})
    assert handle.closed


def test_csv_logger_append(tmp_path):
    path = tmp_path / "log.csv"
    fake_fit(FakeModel(), CSV_LOGS[:2], [cbs.CSVLogger(str(path))])
    fake_fit(FakeModel(), CSV_LOGS[2:], [cbs.CSVLogger(str(path), append=True)])
    rows = read_csv(path)
    assert rows[0] == ["epoch", "accuracy", "learning_rate", "loss", "val_loss"]
    assert [r[0] for r in rows] == ["epoch", "0", "1", "0"]


def test_csv_logger_append_to_new_file_writes_header(tmp_path):
    path = tmp_path / "new.csv"
    fake_fit(FakeModel(), CSV_LOGS[:1], [cbs.CSVLogger(str(path), append=True)])
    assert read_csv(path)[0][0] == "epoch"


def test_csv_logger_overwrites_without_append(tmp_path):
    path = tmp_path / "log.csv"
    logger = cbs.CSVLogger(str(path))
    fake_fit(FakeModel(), CSV_LOGS, [logger])
    fake_fit(FakeModel(), CSV_LOGS[:1], [logger])
    assert len(read_csv(path)) == 2


def test_csv_logger_missing_and_extra_keys(tmp_path):
    path = tmp_path / "log.csv"
    logs = [{"loss": 1.0, "val_loss": 2.0}, {"loss": 0.5}, {"loss": 0.25, "val_loss": 1.0, "new": 3.0}]
    with pytest.warns(RuntimeWarning, match="new"):
        fake_fit(FakeModel(0.5), logs, [cbs.CSVLogger(str(path))])
    assert read_csv(path) == [
        ["epoch", "learning_rate", "loss", "val_loss"],
        ["0", "0.5", "1.0", "2.0"],
        ["1", "0.5", "0.5", "NA"],
        ["2", "0.5", "0.25", "1.0"],
    ]


def test_csv_logger_validation(tmp_path):
    with pytest.raises(TypeError, match="filename"):
        cbs.CSVLogger(3)
    with pytest.raises(ValueError, match="separator"):
        cbs.CSVLogger(str(tmp_path / "x.csv"), separator=",,")
    with pytest.raises(ValueError, match="separator"):
        cbs.CSVLogger(str(tmp_path / "x.csv"), separator="")
    with pytest.raises(TypeError, match="separator"):
        cbs.CSVLogger(str(tmp_path / "x.csv"), separator=1)
    with pytest.raises(TypeError, match="append"):
        cbs.CSVLogger(str(tmp_path / "x.csv"), append="yes")


# ---------------------------------------------------------------------------
# TerminateOnNaN
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float32("nan")])
def test_terminate_on_nan_stops(bad):
    cb = cbs.TerminateOnNaN(verbose=0)
    logs = [{"loss": 1.0}, {"loss": bad}, {"loss": 0.5}]
    run = fake_fit(FakeModel(), logs, [cb])
    assert run.epochs == [0, 1]
    assert cb.terminated_epoch == 1


def test_terminate_on_nan_ignores_finite_and_missing_loss():
    cb = cbs.TerminateOnNaN(verbose=0)
    run = fake_fit(FakeModel(), [{"loss": 1.0}, {"accuracy": 0.5}, {"loss": 0.5}], [cb])
    assert run.epochs == [0, 1, 2]
    assert cb.terminated_epoch is None


def test_terminate_on_nan_checks_batches_too(capsys):
    model = FakeModel()
    cb = cbs.TerminateOnNaN()
    cb.set_model(model)
    cb.on_train_begin({})
    cb.on_epoch_begin(0, {})
    cb.on_train_batch_end(0, {"loss": 1.0})
    assert model.stop_training is False
    cb.on_train_batch_end(1, {"loss": math.nan})
    assert model.stop_training is True and cb.terminated_epoch == 0
    # 1-based, as the epoch lines ("epoch 1/5") and Keras' progress bar count
    assert capsys.readouterr().out == "Epoch 1, batch 2: invalid loss nan, terminating training\n"


def test_terminate_on_nan_names_a_batch_outside_any_epoch_and_per_output_losses(capsys):
    # a custom loop that reports batches without epochs, and a per-output loss array
    model = FakeModel()
    cb = cbs.TerminateOnNaN()
    cb.set_model(model)
    cb.on_train_begin({})
    cb.on_train_batch_end(2, {"loss": math.nan})
    assert model.stop_training is True and cb.terminated_epoch is None
    assert capsys.readouterr().out == "Batch 3: invalid loss nan, terminating training\n"
    model.stop_training = False
    cb.on_epoch_end(4, {"loss": np.array([0.5, np.inf])})
    assert model.stop_training is True and cb.terminated_epoch == 4
    assert capsys.readouterr().out == "Epoch 5: invalid loss [0.5 inf], terminating training\n"


# ---------------------------------------------------------------------------
# Together
# ---------------------------------------------------------------------------

def test_callbacks_together(tmp_path):
    model = FakeModel(learning_rate=1.0)
    csv_path = tmp_path / "log.csv"
    callbacks = [
        cbs.LearningRateScheduler(lambda epoch, lr: lr),
        cbs.ReduceLROnPlateau(factor=0.5, patience=1),
        cbs.ModelCheckpoint(str(tmp_path / "best.npz"), save_best_only=True),
        cbs.CSVLogger(str(csv_path)),
        cbs.EarlyStopping(patience=2, restore_best_weights=True),
        cbs.TerminateOnNaN(verbose=0),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing here should warn
        run = fake_fit(model, val_losses(1.0, 0.5, 0.6, 0.7, 0.1), callbacks)
    assert run.epochs == [0, 1, 2, 3]
    assert run.lrs == [1.0, 1.0, 1.0, 0.5]
    assert_weights_equal(model.get_weights(), weights_at(1))
    with np.load(tmp_path / "best.npz") as data:
        assert_weights_equal([data["arr_0"], data["arr_1"]], weights_at(1))
    rows = read_csv(csv_path)
    assert [r[0] for r in rows] == ["epoch", "0", "1", "2", "3"]
    assert rows[0] == ["epoch", "learning_rate", "loss", "val_loss"]
    assert callbacks[3].csv_file is None


# ---------------------------------------------------------------------------
# Each test below pins a mutant that survived `python tests/mutation.py callbacks`
# ---------------------------------------------------------------------------

class BatchRecorder(cbs.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(("begin", batch, logs))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("end", batch, logs))


def test_callback_list_passes_batch_hooks_on_to_appended_callbacks():
    first, second = BatchRecorder(), BatchRecorder()
    hooks = cbs.CallbackList([first])
    hooks.append(second)
    assert len(hooks) == 2 and list(hooks) == [first, second]
    logs = {"loss": 0.5}
    hooks.on_train_batch_begin(3, logs)
    hooks.on_train_batch_end(3, logs)
    for recorder in (first, second):
        assert recorder.calls == [("begin", 3, logs), ("end", 3, logs)]


class ScaledOptimizer(FakeOptimizer):
    def __init__(self, learning_rate, scale):
        super().__init__(learning_rate)
        self.learning_rate_scale = scale


@pytest.mark.parametrize("scale, expected", [(0.5, 0.1), (1.0, 0.2), (2.0, 0.4)])
def test_one_argument_schedule_is_scaled_by_the_plateau_cuts(scale, expected):
    model = FakeModel()
    model.optimizer = ScaledOptimizer(0.3, scale)
    scheduler = cbs.LearningRateScheduler(lambda epoch: 0.2)
    scheduler.set_model(model)
    scheduler.on_epoch_begin(0)
    assert model.optimizer.learning_rate == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("value, shown", [("a", "'a' (str)"), (True, "True (bool)")])
def test_scaled_schedule_rejects_what_is_not_a_number(value, shown):
    model = FakeModel()
    model.optimizer = ScaledOptimizer(0.3, 0.5)
    scheduler = cbs.LearningRateScheduler(lambda epoch: value)
    scheduler.set_model(model)
    with pytest.raises(ValueError, match=re.escape(
            "LearningRateScheduler: `schedule` must return a finite float > 0 as the "
            f"learning rate, got {shown} for epoch 3 (schedule(2)).")):
        scheduler.on_epoch_begin(2)


def test_plateau_cooldown_flag_and_no_cut_at_min_lr(capsys):
    model = FakeModel(learning_rate=0.1)
    plateau = cbs.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, cooldown=1,
                                    min_lr=0.05, verbose=1)
    plateau.set_model(model)
    plateau.on_train_begin()
    assert not plateau.in_cooldown()
    plateau.on_epoch_end(0, {"loss": 1.0})          # first value: an improvement
    plateau.on_epoch_end(1, {"loss": 1.0})          # no improvement: cut to 0.05
    assert model.optimizer.learning_rate == 0.05 and plateau.in_cooldown()
    assert capsys.readouterr().out == "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.05.\n"
    plateau.on_epoch_end(2, {"loss": 1.0})          # cooldown epoch
    assert not plateau.in_cooldown()
    plateau.on_epoch_end(3, {"loss": 1.0})          # due, but already at min_lr: no cut
    assert model.optimizer.learning_rate == 0.05
    assert capsys.readouterr().out == ""


def test_plateau_names_a_learning_rate_that_is_not_a_float():
    model = FakeModel(learning_rate="fast")
    plateau = cbs.ReduceLROnPlateau(monitor="loss", patience=0)
    plateau.set_model(model)
    plateau.on_epoch_end(0, {"loss": 1.0})
    with pytest.raises(TypeError, match=re.escape(
            "ReduceLROnPlateau needs model.optimizer.learning_rate to be a float, "
            "got 'fast'.")):
        plateau.on_epoch_end(1, {"loss": 1.0})


def test_terminate_on_nan_prints_by_default_and_names_where(capsys):
    assert cbs.TerminateOnNaN().verbose == 1
    stop = cbs.TerminateOnNaN()
    stop.set_model(FakeModel())
    stop.on_train_begin()
    stop.on_epoch_begin(1)
    stop.on_train_batch_end(3, {"loss": math.nan})
    stop.on_epoch_end(1, {"loss": math.inf})
    assert capsys.readouterr().out == ("Epoch 2, batch 4: invalid loss nan, terminating "
                                       "training\n"
                                       "Epoch 2: invalid loss inf, terminating training\n")
    assert stop.terminated_epoch == 1 and stop.model.stop_training
    quiet = cbs.TerminateOnNaN(verbose=0)
    quiet.set_model(FakeModel())
    quiet.on_epoch_end(0, {"loss": math.nan})
    assert capsys.readouterr().out == "" and quiet.model.stop_training


def test_plateau_defaults_are_keras_ones():
    plateau = cbs.ReduceLROnPlateau()
    assert (plateau.monitor, plateau.factor, plateau.patience, plateau.mode, plateau.min_delta,
            plateau.cooldown, plateau.min_lr, plateau.verbose) == (
        "val_loss", 0.1, 10, "auto", 1e-4, 0, 0.0, 0)


@pytest.mark.parametrize("kwargs, message", [
    ({"verbose": -1}, "ReduceLROnPlateau: verbose must be a bool or an int >= 0, got -1 (int)"),
    ({"factor": 2.0},
     "ReduceLROnPlateau: factor must be a finite float in (0, 1), got 2.0 (float)")])
def test_plateau_messages_name_the_callback_and_the_argument(kwargs, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        cbs.ReduceLROnPlateau(**kwargs)


def test_plateau_warns_once_about_a_missing_monitor_from_the_caller():
    plateau = cbs.ReduceLROnPlateau(monitor="val_loss")
    plateau.set_model(FakeModel())
    with pytest.warns(RuntimeWarning) as record:      # before any on_train_begin too
        plateau.on_epoch_end(0, {"loss": 1.0, "accuracy": 0.5})
        plateau.on_epoch_end(1, {"loss": 1.0})
    assert len(record) == 1 and from_the_caller(record[0])
    assert str(record[0].message) == (
        "ReduceLROnPlateau is conditioned on `val_loss`, which is not in the epoch logs. "
        "Available keys: accuracy, loss. Pass validation_data to fit() for val_* metrics, "
        "or choose another `monitor`.")


def test_plateau_reads_a_value_that_is_not_a_number_as_nan():
    model = FakeModel(learning_rate=0.1)
    plateau = cbs.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0)
    plateau.set_model(model)
    plateau.on_train_begin()
    plateau.on_epoch_end(0, {"loss": 1.0})
    plateau.on_epoch_end(1, {"loss": "n/a"})        # NaN never improves: a cut
    assert model.optimizer.learning_rate == 0.05


def test_scheduler_accepts_a_0d_array():
    model = FakeModel()
    scheduler = cbs.LearningRateScheduler(lambda epoch: np.array(0.05))
    scheduler.set_model(model)
    scheduler.on_epoch_begin(0)
    assert model.optimizer.learning_rate == 0.05 and type(model.optimizer.learning_rate) is float


def test_csv_logger_writes_sequences_as_bracketed_lists(tmp_path):
    path = tmp_path / "log.csv"
    logger = cbs.CSVLogger(path)
    with pytest.raises(RuntimeError, match="^" + re.escape(
            "CSVLogger: on_epoch_end was called before on_train_begin (the log file is "
            "not open).") + "$"):
        logger.on_epoch_end(0, {"loss": 1.0})
    logger.on_train_begin()
    logger.on_epoch_end(0, {"a": [1, 2.5], "b": np.array([[0.5, 2.0]]), "c": (3,)})
    logger.on_train_end()
    assert path.read_text().splitlines() == ["epoch,a,b,c", "0,\"[1, 2.5]\",\"[0.5, 2.0]\",[3]"]


@pytest.mark.parametrize("existing, header", [("", True), ("\n", False)])
def test_csv_logger_appends_a_header_only_to_an_empty_file(tmp_path, existing, header):
    path = tmp_path / "log.csv"
    path.write_text(existing)
    logger = cbs.CSVLogger(path, append=True)
    logger.on_train_begin()
    logger.on_epoch_end(0, {"loss": 0.5})
    logger.on_train_end()
    assert path.read_bytes() == (existing + ("epoch,loss\r\n" if header else "")
                                 + "0,0.5\r\n").encode()


def test_callback_params_default_to_an_empty_dict():
    cb = cbs.Callback()
    assert cb.params == {} and cb.model is None
    cb.set_params(None)
    assert cb.params == {}
    given = {"epochs": 3}
    cb.set_params(given)
    assert cb.params == given and cb.params is not given


@pytest.mark.parametrize("make, exc, message", [
    (lambda: cbs.EarlyStopping(patience=-1), ValueError,
     "EarlyStopping: patience must be an int >= 0, got -1 (int)"),
    (lambda: cbs.ModelCheckpoint("x", verbose=-1), ValueError,
     "ModelCheckpoint: verbose must be a bool or an int >= 0, got -1 (int)"),
    (lambda: cbs.LearningRateScheduler(3), TypeError,
     "LearningRateScheduler: schedule must be a callable, got 3 (int)"),
    (lambda: cbs.LearningRateScheduler(lambda: 0), TypeError,
     "LearningRateScheduler: `schedule` must take 1 or 2 positional parameters "
     "(epoch[, lr]), got signature ()."),
    (lambda: cbs.CSVLogger("x", separator=",,"), ValueError,
     "CSVLogger: separator must be a single character other than a line break, got ',,' "
     "(str)"),
    (lambda: cbs.ModelCheckpoint("{0}"), ValueError,
     "ModelCheckpoint: `filepath` may only use named fields such as {epoch} or {val_loss}, "
     "got a positional field {0} in '{0}'."),
    # refused when built, not after the first epoch has trained
    (lambda: cbs.ModelCheckpoint("ck-{epoch:q}.npz"), ValueError,
     "ModelCheckpoint: `filepath` 'ck-{epoch:q}.npz' cannot be formatted with {epoch} an "
     "int and the logs' values floats: Unknown format code 'q' for object of type 'int'"),
    (lambda: cbs.ModelCheckpoint("ck-{val_loss:d}.npz"), ValueError,
     "ModelCheckpoint: `filepath` 'ck-{val_loss:d}.npz' cannot be formatted with {epoch} "
     "an int and the logs' values floats: Unknown format code 'd' for object of type "
     "'float'")])
def test_callback_messages_name_the_callback_and_the_argument(make, exc, message):
    with pytest.raises(exc, match="^" + re.escape(message) + "$"):
        make()


def test_csv_logger_names_a_directory_and_suggests_a_file(tmp_path):
    with pytest.raises(ValueError, match="^" + re.escape(
            f"CSVLogger: filename {str(tmp_path)!r} is a directory; give a file name such as "
            f"{str(tmp_path / 'log.csv')!r}") + "$"):
        cbs.CSVLogger(str(tmp_path))


def test_callback_defaults():
    stop = cbs.EarlyStopping()
    assert (stop.monitor, stop.min_delta, stop.patience, stop.mode, stop.baseline,
            stop.restore_best_weights, stop.start_from_epoch, stop.verbose) == (
        "val_loss", 0.0, 0, "auto", None, False, 0, 0)
    assert stop.best_epoch == 0 and stop.stopped_epoch == 0 and stop.best == math.inf
    assert cbs.ModelCheckpoint("m.npz").verbose == 0
    assert cbs.ModelCheckpoint("m.npz").last_saved_path is None
    assert cbs.LearningRateScheduler(lambda e: 0.1).verbose == 0


@pytest.mark.parametrize("monitor, values, best", [("loss", [2.0, 1.5], 2.0),
                                                   ("acc", [1.0, 1.5], 1.0),
                                                   ("acc", [1.0, 1.25], 1.0)])
def test_early_stopping_min_delta_must_be_exceeded(monitor, values, best):
    """An epoch improves by more than min_delta or not at all: equal to best -+ min_delta
    (exact in binary) is no improvement, and patience 0 stops there."""
    stop = cbs.EarlyStopping(monitor=monitor, min_delta=0.5, patience=0)
    model = FakeModel()
    fake_fit(model, [{monitor: v} for v in values] + [{monitor: 9.0}], [stop])
    assert stop.stopped_epoch == 1 and stop.best == best


def test_early_stopping_reads_a_value_that_is_not_a_number_as_nan():
    stop = cbs.EarlyStopping(monitor="loss", patience=0)
    run = fake_fit(FakeModel(), [{"loss": 1.0}, {"loss": "n/a"}, {"loss": 0.5}], [stop])
    assert run.epochs == [0, 1] and stop.stopped_epoch == 1


def test_early_stopping_warns_once_about_a_missing_monitor_from_the_caller():
    stop = cbs.EarlyStopping(monitor="val_loss", restore_best_weights=True)
    stop.set_model(FakeModel())
    with pytest.warns(RuntimeWarning) as record:
        stop.on_epoch_end(0, {"loss": 1.0})
        stop.on_epoch_end(1, {"loss": 1.0})
    assert len(record) == 1 and from_the_caller(record[0])
    assert str(record[0].message).startswith(
        "EarlyStopping is conditioned on `val_loss`, which is not in the epoch logs. "
        "Available keys: loss.")
    stop.on_train_end()                      # nothing monitored, nothing to restore
    assert stop.model._weights[0].sum() == 0


class ReferenceModel(FakeModel):
    """Keeps the arrays given to set_weights (as a model that does not copy would)."""

    def __init__(self):
        super().__init__()
        self.restored = 0

    def set_weights(self, weights):
        self.restored += 1
        self._weights = list(weights)


def test_early_stopping_restores_copies_and_only_when_the_best_is_not_the_last(capsys):
    stop = cbs.EarlyStopping(monitor="loss", patience=5, restore_best_weights=True,
                             verbose=1)
    model = ReferenceModel()
    fake_fit(model, [{"loss": 3.0}, {"loss": 2.0}], [stop])     # best = last: no restore
    assert model.restored == 0 and capsys.readouterr().out == ""
    fake_fit(model, [{"loss": 3.0}, {"loss": 2.0}, {"loss": 2.5}], [stop])
    assert model.restored == 1 and stop.best_epoch == 1
    np.testing.assert_array_equal(model._weights[1], weights_at(1)[1])
    assert model._weights[0] is not stop.best_weights[0]
    assert capsys.readouterr().out == (
        "Restoring model weights from the end of the best epoch: 2.\n")
    quiet = cbs.EarlyStopping(monitor="loss", patience=0, restore_best_weights=True)
    fake_fit(model, [{"loss": 3.0}, {"loss": 4.0}], [quiet])
    assert model.restored == 2 and capsys.readouterr().out == ""


def test_early_stopping_prints_the_stop_epoch(capsys):
    stop = cbs.EarlyStopping(monitor="loss", patience=1, verbose=1)
    run = fake_fit(FakeModel(), [{"loss": 3.0}, {"loss": 4.0}, {"loss": 4.0}], [stop])
    assert run.epochs == [0, 1] and capsys.readouterr().out == "Epoch 2: early stopping\n"


def test_early_stopping_first_monitored_epoch_is_the_fallback_best():
    stop = cbs.EarlyStopping(monitor="loss", patience=5, start_from_epoch=1,
                             restore_best_weights=True)
    fake_fit(FakeModel(), [{"loss": math.nan}] * 3, [stop])
    assert stop.best_epoch == 1


@pytest.mark.parametrize("filepath", ["{0.real}", "{0[1]}", "{0.real.real}", "{0[a][b]}",
                                      "{[0]}"])
def test_model_checkpoint_rejects_every_positional_field(filepath):
    with pytest.raises(ValueError, match="got a positional field"):
        cbs.ModelCheckpoint(filepath)


def test_model_checkpoint_format_errors_name_the_epoch(tmp_path):
    ckpt = cbs.ModelCheckpoint(str(tmp_path / "m-{val_loss}.npz"))
    ckpt.set_model(FakeModel())
    with pytest.raises(KeyError, match=re.escape(
            f"uses the field 'val_loss', which is not in the logs of epoch 2. "
            f"Available fields: epoch, loss.")):
        ckpt.on_epoch_end(1, {"loss": 1.0})
    # a spec no float takes is refused when built; one set on the callback
    # afterwards still names the epoch where it fails
    with pytest.raises(ValueError, match="cannot be formatted with"):
        cbs.ModelCheckpoint(str(tmp_path / "m-{loss:d}.npz"))
    bad = cbs.ModelCheckpoint(str(tmp_path / "m-{loss}.npz"))
    bad.filepath = str(tmp_path / "m-{loss:d}.npz")
    bad.set_model(FakeModel())
    with pytest.raises(ValueError, match=re.escape(
            f"ModelCheckpoint: could not format `filepath` {bad.filepath!r} at epoch 3: "
            "Unknown format code 'd' for object of type 'float'.")):
        bad.on_epoch_end(2, {"loss": 1.0})


def test_model_checkpoint_messages_and_equal_values(tmp_path, capsys):
    path = str(tmp_path / "m.npz")
    ckpt = cbs.ModelCheckpoint(path, monitor="acc", save_best_only=True, verbose=1)
    model = FakeModel()
    with pytest.warns(RuntimeWarning) as record:
        fake_fit(model, [{"acc": 0.5}, {"acc": 0.5}, {"loss": 1.0}, {"acc": 0.75}], [ckpt])
    assert len(record) == 1 and from_the_caller(record[0])
    assert str(record[0].message) == (
        "ModelCheckpoint(save_best_only=True) is conditioned on `acc`, which is not in the "
        "epoch logs. Available keys: learning_rate, loss. Pass validation_data to fit() for "
        "val_* metrics, or choose another `monitor`. No checkpoint is written for such "
        "epochs.")
    assert model.saved == [path, path]                  # epochs 1 and 4 (0.5 is no gain)
    assert capsys.readouterr().out == (
        f"Epoch 1: acc improved from -inf to 0.5, saving model to {path}\n"
        "Epoch 2: acc did not improve from 0.5\n"
        f"Epoch 4: acc improved from 0.5 to 0.75, saving model to {path}\n")
    every = cbs.ModelCheckpoint(path, verbose=1)
    fake_fit(FakeModel(), [{"loss": 1.0}], [every])
    assert capsys.readouterr().out == f"Epoch 1: saving model to {path}\n"
    quiet = cbs.ModelCheckpoint(path, monitor="acc", save_best_only=True)
    fake_fit(FakeModel(), [{"acc": 0.5}, {"acc": 0.25}], [quiet])
    assert capsys.readouterr().out == ""


def from_the_caller(warning):
    """The warning points at the code that called the hook (stacklevel=2), not at
    callbacks.py; under mutmut its trampoline is that caller (one frame more)."""
    return warning.filename == __file__ or f"{os.sep}mutmut{os.sep}" in warning.filename


class Uninspectable:
    """A schedule whose signature inspect cannot read (as some builtins)."""
    __signature__ = "not a signature"

    def __call__(self, epoch):
        return 0.2 * (epoch + 1)


@pytest.mark.parametrize("schedule, expected", [(max, 0.3), (Uninspectable(), 0.1)],
                         ids=["two-arguments", "one-argument"])
def test_scheduler_tries_both_forms_when_the_signature_is_unknown(schedule, expected):
    model = FakeModel()
    model.optimizer = ScaledOptimizer(0.3, 0.5)
    scheduler = cbs.LearningRateScheduler(schedule)
    scheduler.set_model(model)
    scheduler.on_epoch_begin(0)                  # max(0, 0.3); Uninspectable()(0) * 0.5
    assert model.optimizer.learning_rate == pytest.approx(expected, rel=1e-15)
    if isinstance(schedule, Uninspectable):
        scheduler.on_epoch_begin(1)              # 0.2 * 2 * 0.5
        assert model.optimizer.learning_rate == pytest.approx(0.2, rel=1e-15)


# written after the last mutmut rerun of callbacks: each targets survivors of it
def test_plateau_cut_composes_with_the_optimizer_scale(capsys):
    model = FakeModel()
    model.optimizer = ScaledOptimizer(0.1, 0.5)
    plateau = cbs.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0)
    plateau.set_model(model)
    plateau.on_epoch_end(0, {"loss": 1.0})
    plateau.on_epoch_end(1, {"loss": 1.0})
    assert model.optimizer.learning_rate == 0.05
    assert model.optimizer.learning_rate_scale == 0.25          # 0.5 * (0.05 / 0.1)
    assert capsys.readouterr().out == ""


def test_more_callback_messages():
    with pytest.raises(ValueError, match="^" + re.escape(
            "TerminateOnNaN: verbose must be a bool or an int >= 0, got -1 (int)") + "$"):
        cbs.TerminateOnNaN(verbose=-1)
    with pytest.raises(TypeError, match="^" + re.escape(
            "LearningRateScheduler: `schedule` must be callable as schedule(epoch) or "
            "schedule(epoch, lr), but it has required keyword-only parameters ['k'] "
            "(signature (epoch, *, k)).") + "$"):
        cbs.LearningRateScheduler(lambda epoch, *, k: 0.1)
    with pytest.raises(TypeError, match="^" + re.escape(
            "LearningRateScheduler: `schedule` must take 1 or 2 positional parameters "
            "(epoch[, lr]), got 3 required ones (signature (a, b, d)).") + "$"):
        cbs.LearningRateScheduler(lambda a, b, d: 0.1)


def test_scheduler_passes_epoch_and_rate_to_varargs_and_prints(capsys):
    seen = []
    model = FakeModel(learning_rate=0.3)
    scheduler = cbs.LearningRateScheduler(lambda *args: seen.append(args) or 0.2, verbose=1)
    scheduler.set_model(model)
    scheduler.on_epoch_begin(2)
    assert seen == [(2, 0.3)] and model.optimizer.learning_rate == 0.2
    assert capsys.readouterr().out == "Epoch 3: LearningRateScheduler setting learning rate to 0.2.\n"
    quiet = cbs.LearningRateScheduler(lambda epoch: 0.2)
    quiet.set_model(model)
    quiet.on_epoch_begin(0)
    quiet_checkpoint = cbs.ModelCheckpoint("m.npz")
    quiet_checkpoint.set_model(model)
    model.save = lambda path: None
    quiet_checkpoint.on_epoch_end(0, {"loss": 1.0})
    assert capsys.readouterr().out == ""


def test_csv_logger_warns_once_about_keys_after_the_first_epoch(tmp_path):
    logger = cbs.CSVLogger(tmp_path / "log.csv")
    logger.on_train_begin()
    logger.on_epoch_end(0, {"loss": 1.0})
    with pytest.warns(RuntimeWarning) as record:
        logger.on_epoch_end(1, {"loss": 1.0, "new": 2.0})
        logger.on_epoch_end(2, {"loss": 1.0, "new": 2.0})
    logger.on_train_end()
    assert len(record) == 1 and from_the_caller(record[0])
    assert str(record[0].message) == (
        "CSVLogger: keys ['new'] appeared after the first epoch and are not written; the "
        "columns are fixed by the first epoch: ['epoch', 'loss'].")


def test_lr_scheduler_beside_an_optimizer_schedule_is_refused_before_fit_changes_anything():
    """An optimizer built with a schedule and a LearningRateScheduler would both
    set the rate every epoch (the callback won silently, [0.01, 0.01, 0.01]
    instead of the schedule's [0.1, 0.05, 0.025]); Keras raises TypeError."""
    import descend as dn
    X, y = dn.datasets.load_digits()
    net = dn.Sequential([dn.Dense(10)], input_dim=64, seed=0)
    net.compile(loss="softmax_cross_entropy",
                optimizer=dn.optimizers.SGD(dn.schedules.ExponentialDecay(0.1, 0.5)))
    net.fit(X[:50], y[:50], epochs=1, verbose=0)
    before = [w.copy() for w in net.get_weights()]
    history, optimizer_state = net.history, net.optimizer.state_dict()
    with pytest.raises(TypeError, match=r"^callbacks\[1\] is a LearningRateScheduler, but the "
                                        r"optimizer's learning_rate is a schedule \(Exp"):
        net.fit(X, y, epochs=3, verbose=0, callbacks=[
            cbs.EarlyStopping(), cbs.LearningRateScheduler(lambda epoch: 0.01)])
    for got, expected in zip(net.get_weights(), before):
        np.testing.assert_array_equal(got, expected)
    assert net.history is history
    assert repr(net.optimizer.state_dict()) == repr(optimizer_state)
    # the schedule alone still trains, where it stopped
    alone = net.fit(X, y, epochs=3, verbose=0)["learning_rate"]
    assert alone == pytest.approx([0.05, 0.025, 0.0125])     # its epochs 2-4


def test_warnings_raised_deep_inside_fit_name_the_line_that_called_fit():
    """A new user's ReduceLROnPlateau warning named descend/training.py (and
    quoted its line), not their fit call: warnings from inside fit (its
    checks, the callbacks, the optimizer's schedule) point out of descend."""
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = np.arange(20) % 2
    net = dn.Sequential([dn.Dense(2)], input_dim=3, seed=0)
    net.compile(loss="softmax_cross_entropy",
                optimizer=dn.optimizers.SGD(dn.schedules.ReduceLROnPlateau(0.1)))
    with pytest.warns(Warning) as caught:
        net.fit(X, y, epochs=1, batch_size=64, verbose=0,
                callbacks=[cbs.EarlyStopping(monitor="val_accuracy")])
    messages = {type(w.message).__name__: w for w in caught}
    assert len(caught) == 3, [str(w.message) for w in caught]   # batch size, two monitors
    assert all(w.filename == __file__ for w in caught), [w.filename for w in caught]
    assert set(messages) == {"UserWarning", "RuntimeWarning"}


# ---------------------------------------------------------------------------
# What the logs will hold, known at on_train_begin (fit's params["metrics"])
# ---------------------------------------------------------------------------

def small_net(loss="softmax_cross_entropy", units=10):
    import descend as dn
    net = dn.Sequential([dn.Dense(8, activation="relu"), dn.Dense(units)], input_dim=64,
                        seed=0, n_threads=1)
    return net.compile(loss=loss, optimizer=dn.optimizers.SGD(0.1))


class KeysSeen(cbs.Callback):
    """params["metrics"] at on_train_begin and the keys of each epoch's logs."""
    def on_train_begin(self, logs=None):
        self.promised, self.logged = self.params["metrics"], []

    def on_epoch_end(self, epoch, logs=None):
        self.logged.append(list(logs))


@pytest.mark.parametrize("loss, kwargs, train_metrics, promised", [
    ("softmax_cross_entropy", {}, True,
     ["loss", "accuracy", "learning_rate", "seconds", "samples_per_second"]),
    ("softmax_cross_entropy", {"validation_split": 0.2, "gradient_norms": True}, True,
     ["loss", "accuracy", "val_loss", "val_accuracy", "grad_norm_0", "grad_norm_1",
      "learning_rate", "seconds", "samples_per_second"]),
    ("mean_squared_error", {"validation_split": 0.2}, True,
     ["loss", "mse", "mae", "r2", "val_loss", "val_mse", "val_mae", "val_r2",
      "learning_rate", "seconds", "samples_per_second"]),
    # (MLPRegressor's network: no training mse/mae/r2; validation still has them)
    ("mean_squared_error", {"validation_split": 0.2}, False,
     ["loss", "val_loss", "val_mse", "val_mae", "val_r2", "learning_rate", "seconds",
      "samples_per_second"]),
])
def test_fit_params_list_the_keys_every_epoch_logs(loss, kwargs, train_metrics, promised):
    import descend as dn
    X, y = dn.datasets.load_digits()
    net = small_net(loss, 10 if loss == "softmax_cross_entropy" else 1)
    net._regression_train_metrics = train_metrics
    target = y if loss == "softmax_cross_entropy" else y.astype(float)
    seen = KeysSeen()
    net.fit(X[:200], target[:200], epochs=2, verbose=0, callbacks=[seen], **kwargs)
    assert seen.promised == promised
    assert seen.logged == [promised, promised]


@pytest.mark.parametrize("pattern, field, hint", [
    ("m_{val_loss:.3f}.npz", "val_loss",
     " (val_ fields need validation_data or validation_split)"),
    ("m_{epoch:02d}_{acc:.2f}.npz", "acc", ""),                     # "accuracy" is logged
    ("m_{loss:.{digits}f}.npz", "digits", ""),                      # nested in a spec
    ("m_{grad_norm_0.real:.2f}.npz", "grad_norm_0", ""),            # without gradient_norms
])
def test_model_checkpoint_fields_the_logs_will_lack_are_refused_before_any_epoch(
        tmp_path, pattern, field, hint):
    # it was a KeyError at the end of epoch 1, the network trained
    import descend as dn
    X, y = dn.datasets.load_digits()
    net = small_net()
    before, history = net.get_weights(), net.history
    path = str(tmp_path / pattern)
    with pytest.raises(ValueError) as info:
        net.fit(X, y, epochs=3, verbose=0, callbacks=[cbs.ModelCheckpoint(path)])
    assert str(info.value) == (
        f"ModelCheckpoint: `filepath` {path!r} uses the field {field!r}, which the epoch "
        f"logs of this fit will not hold{hint}. Available fields: accuracy, epoch, "
        "learning_rate, loss, samples_per_second, seconds.")
    assert net.epochs_trained == 0 and net.history is history and os.listdir(tmp_path) == []
    for got, expected in zip(net.get_weights(), before):
        np.testing.assert_array_equal(got, expected)


def test_model_checkpoint_fields_the_logs_hold_are_written(tmp_path):
    import descend as dn
    X, y = dn.datasets.load_digits()
    net = small_net()
    path = str(tmp_path / "m_{epoch}_{val_loss:.3f}_{grad_norm_1.real:.1f}.npz")
    history = net.fit(X, y, epochs=2, verbose=0, validation_split=0.2, gradient_norms=True,
                      callbacks=[cbs.ModelCheckpoint(path)])
    assert sorted(os.listdir(tmp_path)) == sorted(
        f"m_{e + 1}_{history['val_loss'][e]:.3f}_{history['grad_norm_1'][e]:.1f}.npz"
        for e in (0, 1))


@pytest.mark.parametrize("make, who", [
    (lambda: cbs.EarlyStopping(monitor="val_loss"), "EarlyStopping"),
    (lambda: cbs.ReduceLROnPlateau(monitor="val_loss"), "ReduceLROnPlateau"),
    (lambda path: cbs.ModelCheckpoint(path, monitor="val_loss", save_best_only=True),
     "ModelCheckpoint(save_best_only=True)"),
])
def test_a_monitor_the_logs_will_lack_warns_once_before_the_first_epoch(tmp_path, make, who):
    # the documented warning (as Keras warns), at fit's start: with epochs=0 too,
    # where no epoch end ever came to warn
    import descend as dn
    X, y = dn.datasets.load_digits()
    expected = (f"{who} is conditioned on `val_loss`, which is not in the epoch logs. "
                "Available keys: accuracy, learning_rate, loss, samples_per_second, seconds. "
                "Pass validation_data to fit() for val_* metrics, or choose another "
                "`monitor`.")
    if "Checkpoint" in who:
        expected += " No checkpoint is written for such epochs."
    callback = make(str(tmp_path / "m.npz")) if "Checkpoint" in who else make()
    for epochs in (0, 3):
        net = small_net()
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            net.fit(X[:100], y[:100], epochs=epochs, verbose=0, callbacks=[callback])
        assert [str(w.message) for w in record] == [expected]
        assert record[0].category is RuntimeWarning
    assert os.listdir(tmp_path) == []           # no checkpoint without its monitor
