"""The training loop of Sequential.fit / partial_fit (issue 5).

Validation data and split, History, verbose output, callbacks end to end,
metrics, gradient norms, divergence, Ctrl-C, partial_fit, input validation
of every public entry point (a failed call changes nothing), memory layouts
and determinism.
"""
import csv
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import descend as dn
from descend import network, training
from descend.callbacks import (Callback, CSVLogger, EarlyStopping, LearningRateScheduler,
                               ModelCheckpoint, ReduceLROnPlateau)


# --------------------------------------------------------------------------- helpers
def classification_data(n=120, d=6, k=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    y = np.argmax(X @ rng.normal(size=(d, k)), axis=1)
    return X, y


def regression_data(n=100, d=5, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    y = X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)
    return X, y.astype(dtype)


def classifier(d=6, k=3, dtype="float64", seed=0, optimizer=None, n_threads=1,
               hidden=16, input_dim=True):
    net = dn.Sequential([dn.Dense(hidden, activation="relu"), dn.Dense(k)],
                        input_dim=d if input_dim else None, dtype=dtype, seed=seed,
                        n_threads=n_threads)
    net.compile(loss="softmax_cross_entropy",
                optimizer=optimizer or dn.optimizers.SGD(0.1, momentum=0.9))
    return net


def regressor(d=5, dtype="float64", seed=0, optimizer=None, n_threads=1):
    net = dn.Sequential([dn.Dense(16, activation="tanh"), dn.Dense(1)], input_dim=d,
                        dtype=dtype, seed=seed, n_threads=n_threads)
    net.compile(loss="mean_squared_error",
                optimizer=optimizer or dn.optimizers.SGD(0.01, momentum=0.9))
    return net


def full_state(net):
    """Everything a failed call must leave alone."""
    opt = net.optimizer
    return {
        "built": net.built,
        "weights": net.get_weights() if net.built else None,
        "opt_state": None if opt is None else opt.get_state(),
        "opt_lr": None if opt is None else opt.learning_rate,
        "classes": None if net.classes_ is None else np.array(net.classes_, copy=True),
        "rng": net._rng.bit_generator.state,
        "epochs_trained": net.epochs_trained,
        "history": (list(net.history.epoch), {k: list(v) for k, v in net.history.items()}),
    }


def assert_same_state(a, b):
    assert a["built"] == b["built"]
    if a["weights"] is not None:
        assert len(a["weights"]) == len(b["weights"])
        for u, v in zip(a["weights"], b["weights"]):
            np.testing.assert_array_equal(u, v)
    assert (a["opt_state"] is None) == (b["opt_state"] is None)
    if a["opt_state"] is not None:
        assert a["opt_state"]["iterations"] == b["opt_state"]["iterations"]
        sa, sb = a["opt_state"]["arrays"], b["opt_state"]["arrays"]
        assert (sa is None) == (sb is None)
        for pa, pb in zip(sa or [], sb or []):
            for u, v in zip(pa, pb):
                np.testing.assert_array_equal(u, v)
    assert a["opt_lr"] == b["opt_lr"]
    if a["classes"] is None:
        assert b["classes"] is None
    else:
        np.testing.assert_array_equal(a["classes"], b["classes"])
    assert a["rng"] == b["rng"]
    assert a["epochs_trained"] == b["epochs_trained"]
    assert a["history"] == b["history"]


def assert_weights_equal(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


class RecordWeights(Callback):
    """Copies of the weights at the end of every epoch."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


# --------------------------------------------------------------------------- validation
def test_validation_data_gives_per_epoch_val_loss_and_metrics():
    X, y = classification_data()
    Xv, yv = classification_data(n=40, seed=1)
    net = classifier()
    history = net.fit(X, y, epochs=3, batch_size=16, verbose=0, validation_data=(Xv, yv))
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert len(history[key]) == 3
        assert all(np.isfinite(history[key]))
    scores = net.evaluate(Xv, yv)
    assert history["val_loss"][-1] == pytest.approx(scores["loss"], rel=1e-12)
    assert history["val_accuracy"][-1] == scores["accuracy"]


def test_validation_split_holds_out_the_last_samples():
    X, y = classification_data(n=100)
    net = classifier()
    history = net.fit(X, y, epochs=2, batch_size=16, verbose=0, validation_split=0.25)
    scores = net.evaluate(X[-25:], y[-25:])
    assert history["val_loss"][-1] == pytest.approx(scores["loss"], rel=1e-12)
    assert history["val_accuracy"][-1] == scores["accuracy"]


@pytest.mark.parametrize("split", [0.001, 0.999])
def test_validation_split_leaving_no_sample_is_a_clear_error(split):
    X, y = classification_data(n=100)
    for net in (classifier(), classifier(input_dim=False)):
        before = full_state(net)
        with pytest.raises(ValueError, match="validation_split"):
            net.fit(X, y, epochs=1, verbose=0, validation_split=split)
        assert_same_state(before, full_state(net))


def test_validation_split_dropping_a_class_is_a_clear_error():
    X, y = classification_data(n=100)
    order = np.argsort(y == 2, kind="stable")      # all of class 2 at the end
    X, y = X[order], y[order]
    split = (np.sum(y == 2) + 5) / 100
    n_val = int(100 * split)
    assert (y[:-n_val] != 2).all() and (y[:-n_val] == 1).any()
    net = classifier()
    before = full_state(net)
    with pytest.raises(ValueError, match=r"no training sample of class\(es\) \[2\]") as info:
        net.fit(X, y, epochs=1, verbose=0, validation_split=split)
    assert_same_state(before, full_state(net))
    assert str(info.value) == (
        f"validation_split={split} holds out the last {n_val} samples, which leaves no "
        "training sample of class(es) [2]; shuffle the data before fit or pass "
        "validation_data")


def test_validation_split_of_no_sample_says_what_it_leaves():
    # validation_split < 1 (checked first), so only the validation side can be empty
    X, y = classification_data(n=100)
    with pytest.raises(ValueError) as info:
        classifier().fit(X, y, epochs=1, verbose=0, validation_split=0.001)
    assert str(info.value) == ("validation_split=0.001 of 100 samples leaves 0 validation "
                               "and 100 training samples; both need at least one")


def test_validation_split_dropping_a_string_class_names_it():
    X, _ = classification_data(n=40)
    y = np.array(["cat"] * 20 + ["dog"] * 12 + ["emu"] * 8)
    net = classifier()
    with pytest.raises(ValueError, match="emu"):
        net.fit(X, y, epochs=1, verbose=0, validation_split=0.2)


def test_validation_labels_unseen_in_training_are_scored_as_evaluate_scores_them():
    # issue 12, item 7: what evaluate accepts, validation_data accepts (this
    # was refused as "classes absent from the training data")
    X, y = classification_data(n=60)
    net = classifier()
    history = net.fit(X[y != 2], y[y != 2], epochs=1, verbose=0, validation_data=(X, y))
    scores = net.evaluate(X, y)
    assert history["val_loss"] == [scores["loss"]]
    assert history["val_accuracy"] == [scores["accuracy"]]


# --------------------------------------------------------------------------- history
def test_history_is_returned_and_kept_with_every_key():
    X, y = classification_data()
    net = classifier()
    history = net.fit(X, y, epochs=4, batch_size=32, verbose=0, validation_split=0.2)
    assert history is net.history
    assert history.history is history
    assert history.epoch == [0, 1, 2, 3]
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate",
                            "seconds", "samples_per_second"}
    assert all(len(v) == 4 for v in history.values())
    assert history["learning_rate"] == [0.1] * 4
    for seconds, rate in zip(history["seconds"], history["samples_per_second"]):
        assert seconds > 0
        assert rate == pytest.approx(96 / seconds)
    assert history.interrupted is False
    assert net.epochs_trained == 4


def test_regression_history_has_mse_mae_r2_and_their_val_twins():
    X, y = regression_data()
    Xv, yv = regression_data(n=30, seed=1)
    net = regressor()
    history = net.fit(X, y, epochs=3, batch_size=10, verbose=0, validation_data=(Xv, yv))
    for key in ("loss", "mse", "mae", "r2", "val_loss", "val_mse", "val_mae", "val_r2"):
        assert len(history[key]) == 3 and np.all(np.isfinite(history[key]))
    assert "accuracy" not in history
    # training metrics: on the training data with the weights at the end of the epoch
    scores = net.evaluate(X, y)
    for key in ("mse", "mae", "r2"):
        assert history[key][-1] == scores[key]
    output = net.predict(X)[:, 0]
    assert scores["mse"] == pytest.approx(np.mean((output - y) ** 2), rel=1e-12)
    assert scores["mae"] == pytest.approx(np.mean(np.abs(output - y)), rel=1e-12)
    r2 = 1 - np.sum((y - output) ** 2) / np.sum((y - y.mean()) ** 2)
    assert scores["r2"] == pytest.approx(r2, rel=1e-12)
    assert history["r2"][-1] > 0.5


def test_classifier_accuracy_matches_predictions():
    X, y = classification_data()
    net = classifier()
    net.fit(X, y, epochs=5, batch_size=16, verbose=0)
    accuracy = net.evaluate(X, y)["accuracy"]
    assert accuracy == np.mean(net.predict_classes(X) == y)
    assert accuracy > 0.8


# --------------------------------------------------------------------------- verbose
def test_verbose_0_prints_nothing(capsys):
    X, y = classification_data()
    classifier().fit(X, y, epochs=2, verbose=0, validation_split=0.2)
    out, err = capsys.readouterr()
    assert out == "" and err == ""


def test_verbose_1_shows_a_tqdm_bar_and_one_line_per_epoch(capsys, monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(training, "_dynamic_display", lambda: True)   # as on a terminal
    X, y = classification_data()
    classifier().fit(X, y, epochs=2, verbose=1)
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("epoch 1/2") and "loss" in lines[0]
    assert "samples/s" in lines[0]
    assert "sample/s" in err        # tqdm's rate, in samples


def test_verbose_1_piped_prints_the_epoch_lines_without_a_bar(capsys):
    # capsys' streams are not terminals, as a pipe or a log file: no bar stuck at
    # 0% (tqdm's disable=None, Keras' non-dynamic progress bar), the lines only
    pytest.importorskip("tqdm")
    assert not training._dynamic_display()
    X, y = classification_data()
    classifier().fit(X, y, epochs=2, verbose=1)
    out, err = capsys.readouterr()
    assert [line.split("  ")[0] for line in out.splitlines()] == ["epoch 1/2", "epoch 2/2"]
    assert err == ""


def test_dynamic_display_is_a_terminal_or_a_jupyter_kernel(monkeypatch):
    class Stream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setattr(sys, "stderr", Stream(True))
    assert training._dynamic_display()
    monkeypatch.setattr(sys, "stderr", Stream(False))
    assert not training._dynamic_display()
    monkeypatch.setitem(sys.modules, "ipykernel", object())    # a notebook's streams
    assert training._dynamic_display()


def test_verbose_1_in_a_pipe_writes_no_bar_to_stderr(tmp_path):
    # the whole process with both streams piped, as `python train.py | tee log`
    script = ("import numpy as np, descend as dn\n"
              "X = np.random.default_rng(0).normal(size=(600, 4)).astype('float32')\n"
              "y = (X[:, 0] > 0).astype(int)\n"
              "net = dn.Sequential([dn.Dense(8, activation='relu'), dn.Dense(2)], "
              "input_dim=4, seed=0, n_threads=1)\n"
              "net.compile('softmax_cross_entropy', 'sgd')\n"
              "net.fit(X, y, epochs=3, batch_size=8, verbose=1)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path,
                          env={**os.environ,
                               "PYTHONPATH": str(Path(dn.__file__).parents[1])})
    assert done.returncode == 0, done.stderr
    assert [line.split("  ")[0] for line in done.stdout.splitlines()] == [
        "epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "%" not in done.stderr and "sample/s" not in done.stderr


def test_tqdm_bar_counts_samples_and_shows_the_running_loss():
    pytest.importorskip("tqdm")
    bar = network._TqdmBar(100, 32, "epoch 1/1")
    try:
        bar.update_to(2, 0.5)
        assert bar._bar.n == 64
        assert "loss=0.5000" in str(bar._bar.postfix)
        bar.update_to(4, 0.25)
        assert bar._bar.n == 100       # the short last batch
        assert bar._bar.unit == "sample"
        assert bar._bar.desc == "epoch 1/1"
        assert bar._bar.unit_scale is True          # 1.2k samples, 3.4M samples/s
        assert bar._bar.leave is False              # the epoch line replaces the bar
        assert callable(bar._bar.dynamic_ncols)     # tqdm follows the terminal's width
    finally:
        bar.close()


def test_the_epoch_line_formats_each_kind_of_log():
    logs = {"loss": 0.123456, "accuracy": 0.5, "learning_rate": 0.000123456,
            "val_loss": 2.0, "seconds": 1.2345, "samples_per_second": 12345.6}
    assert training._format_logs(2, 10, logs) == (
        "epoch 3/10  loss 0.1235  accuracy 0.5000  lr 0.000123  val_loss 2.0000  1.23s  "
        "12,346 samples/s")


def test_verbose_1_without_tqdm_prints_the_line_only(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)      # import tqdm -> ImportError
    X, y = classification_data()
    classifier().fit(X, y, epochs=2, verbose=1)
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 2
    assert err == ""


def test_verbose_2_prints_lines_without_bar(capsys):
    X, y = classification_data()
    classifier().fit(X, y, epochs=3, verbose=2)
    out, err = capsys.readouterr()
    assert len(out.strip().splitlines()) == 3
    assert err == ""


# --------------------------------------------------------------------------- callbacks
def test_early_stopping_restores_the_best_weights():
    X, y = classification_data()
    net = classifier()
    record = RecordWeights()
    # min_delta so large that only the first epoch counts as an improvement
    stop = EarlyStopping(monitor="val_loss", patience=0, min_delta=10.0,
                         restore_best_weights=True)
    history = net.fit(X, y, epochs=10, batch_size=16, verbose=0, validation_split=0.2,
                      callbacks=[record, stop])
    assert history.epoch == [0, 1]
    assert stop.stopped_epoch == 1 and stop.best_epoch == 0
    assert_weights_equal(net.get_weights(), record.weights[0])


def test_early_stopping_on_a_real_plateau_keeps_the_best_epoch():
    X, y = classification_data()
    Xv, yv = classification_data(n=60, seed=3)
    net = classifier(optimizer=dn.optimizers.SGD(0.5, momentum=0.9))
    record = RecordWeights()
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = net.fit(X, y, epochs=40, batch_size=8, verbose=0, validation_data=(Xv, yv),
                      callbacks=[record, stop])
    best = int(np.argmin(history["val_loss"]))
    assert_weights_equal(net.get_weights(), record.weights[best])


def test_model_checkpoint_save_best_only_keeps_the_best_model(tmp_path):
    X, y = classification_data()
    Xv, yv = classification_data(n=60, seed=3)
    net = classifier(optimizer=dn.optimizers.SGD(0.5, momentum=0.9))
    record = RecordWeights()
    path = tmp_path / "best.npz"
    check = ModelCheckpoint(str(path), monitor="val_loss", save_best_only=True)
    history = net.fit(X, y, epochs=12, batch_size=8, verbose=0, validation_data=(Xv, yv),
                      callbacks=[record, check])
    best = int(np.argmin(history["val_loss"]))
    loaded = dn.load(path)
    assert_weights_equal(loaded.get_weights(), record.weights[best])
    assert loaded.history.epoch == list(range(best + 1))


def test_model_checkpoint_every_epoch_with_formatted_names(tmp_path):
    X, y = classification_data()
    net = classifier()
    net.fit(X, y, epochs=3, batch_size=16, verbose=0,
            callbacks=[ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}.npz"),
                                       save_best_only=False)])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-01.npz", "ckpt-02.npz", "ckpt-03.npz"]
    assert_weights_equal(dn.load(tmp_path / "ckpt-03.npz").get_weights(), net.get_weights())


def test_learning_rate_scheduler_sets_the_rate_of_each_epoch():
    X, y = classification_data()
    net = classifier()
    history = net.fit(X, y, epochs=4, batch_size=16, verbose=0,
                      callbacks=[LearningRateScheduler(lambda epoch: 0.2 * 0.5 ** epoch)])
    assert history["learning_rate"] == [0.2, 0.1, 0.05, 0.025]


def test_reduce_lr_on_plateau_lowers_the_rate():
    X, y = classification_data()
    net = classifier()
    history = net.fit(X, y, epochs=4, batch_size=16, verbose=0,
                      callbacks=[ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1,
                                                   min_delta=10.0)])
    # epoch 0 improves on +inf; each later epoch does not, and patience=1 reduces at once
    assert history["learning_rate"] == [0.1, 0.1, 0.05, 0.025]
    assert net.optimizer.learning_rate == 0.0125


def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    X, y = classification_data()
    path = tmp_path / "log.csv"
    history = classifier().fit(X, y, epochs=3, batch_size=16, verbose=0,
                               validation_split=0.2, callbacks=[CSVLogger(str(path))])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert [float(r["val_loss"]) for r in rows] == history["val_loss"]
    assert [float(r["loss"]) for r in rows] == history["loss"]


# --------------------------------------------------------------------------- gradient norms
def test_gradient_norms_per_layer_per_epoch():
    X, y = classification_data()
    net = classifier()
    history = net.fit(X, y, epochs=3, batch_size=16, verbose=0, gradient_norms=True)
    assert len(history["grad_norm_0"]) == len(history["grad_norm_1"]) == 3
    assert all(g > 0 and np.isfinite(g) for g in history["grad_norm_0"] + history["grad_norm_1"])
    grads = net.gradients(X, y)
    for i, (dw, _) in enumerate(grads):
        assert history[f"grad_norm_{i}"][-1] == pytest.approx(np.linalg.norm(dw), rel=1e-10)
    assert "grad_norm_0" not in classifier().fit(X, y, epochs=1, verbose=0)


# --------------------------------------------------------------------------- divergence
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_divergence_stops_with_a_clear_error_and_keeps_the_last_finite_weights(dtype):
    X, y = regression_data(dtype=dtype)
    y = y * 100
    net = regressor(dtype=dtype, optimizer=dn.optimizers.SGD(1e-3))
    record = RecordWeights()
    boost = LearningRateScheduler(lambda epoch: 1e-3 if epoch < 2 else 1e25)
    with pytest.raises(dn.DivergenceError, match=r"epoch 3/6: .*smaller learning rate"):
        net.fit(X, y, epochs=6, batch_size=4, verbose=0, callbacks=[record, boost])
    assert len(record.weights) == 2
    assert_weights_equal(net.get_weights(), record.weights[1])
    assert net.history.epoch == [0, 1]
    assert np.isfinite(net.predict(X)).all()
    assert np.isfinite(list(net.evaluate(X, y).values())).all()
    # training can resume from the kept weights with a sane rate
    net.fit(X, y, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(net.predict(X)).all()


def test_divergence_in_the_first_epoch_keeps_the_initial_weights():
    X, y = regression_data()
    net = regressor(optimizer=dn.optimizers.SGD(1e30))
    initial = net.get_weights()
    with pytest.raises(dn.DivergenceError, match="epoch 1/2: "):
        net.fit(X, y * 1e3, epochs=2, batch_size=4, verbose=0)
    assert_weights_equal(net.get_weights(), initial)
    assert net.optimizer.iterations == 0


def test_predict_never_returns_nan():
    X, _ = classification_data()
    net = classifier()
    net.set_weights([np.full_like(w, 1e300) for w in net.get_weights()])
    with pytest.raises(FloatingPointError):
        net.predict(X)
    with pytest.raises(FloatingPointError):
        net.predict_classes(X)
    with pytest.raises(FloatingPointError):
        net.evaluate(X, np.zeros(len(X), dtype=int))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_outputs_overflowing_with_finite_weights_count_as_divergence(seed):
    # found by tests/test_fuzz.py: the epoch's loss and weights stay finite, but the
    # network's outputs on the training data overflow float32 by the end of the epoch.
    # Built to overflow in any batch order: from w = 0 every forward pass gives 0
    # (finite loss), the row x = (0, 1e20) with target 1 then moves w_2 by
    # lr * 2 * 1e20 = 2e19 (finite), and that row's output becomes 2e19 * 1e20 = 2e39,
    # beyond float32's 3.4e38. The other row only moves w_1 (its x_2 is 0).
    X = np.array([[1.0, 0.0], [0.0, 1e20]])
    net = dn.Sequential([dn.Dense(1)], input_dim=2, dtype="float32", seed=seed,
                        n_threads=1)
    net.compile(loss="mean_squared_error", optimizer=dn.optimizers.SGD(0.1))
    net.set_weights([np.zeros((2, 1)), np.zeros(1)])
    with pytest.raises(dn.DivergenceError, match="diverged in epoch 1/"):
        net.fit(X, np.ones(2), epochs=2, batch_size=1, verbose=0)
    assert net.history.epoch == []
    assert_weights_equal(net.get_weights(), [np.zeros((2, 1)), np.zeros(1)])
    assert np.isfinite(net.predict(X)).all()


def test_loss_gradients_and_train_on_batch_never_return_overflow():
    X = np.full((1, 3), 1e38)
    net = dn.Sequential([dn.Dense(4, activation="elu"), dn.Dense(1)], input_dim=3,
                        dtype="float32", seed=0, n_threads=1)
    net.compile(loss="mean_squared_error", optimizer=dn.optimizers.SGD(0.05))
    before = full_state(net)
    with pytest.raises(FloatingPointError):
        net.gradients(X, [0.0])                     # float32 gradient overflows
    assert np.isfinite(net.loss(X, [0.0]))          # (the loss is summed in float64)
    with pytest.raises(dn.DivergenceError, match="no update"):
        net.train_on_batch(X, [0.0])
    assert_same_state(before, full_state(net))
    big = dn.Sequential([dn.Dense(1)], input_dim=3, dtype="float64", seed=0)
    big.compile(loss="mean_squared_error", optimizer="sgd")
    with pytest.raises(FloatingPointError):
        big.loss(np.zeros((1, 3)), [1e300])


def test_binary_labels_need_two_classes():
    # found by tests/test_fuzz.py: one non-0/1 label made predict_classes index past
    # classes_ (and 'a' alone cannot say which class is positive)
    X = np.ones((4, 3))
    net = dn.Sequential([dn.Dense(4, activation="relu"), dn.Dense(1)], input_dim=3,
                        seed=0, n_threads=1)
    net.compile(loss="binary_cross_entropy", optimizer="sgd")
    before = full_state(net)
    for call in (lambda: net.fit(X, ["a"] * 4, batch_size=None, verbose=0),
                 lambda: net.train_on_batch(X, ["a"] * 4),
                 lambda: net.evaluate(X, ["a"] * 4)):
        with pytest.raises(ValueError, match="single class"):
            call()
        assert_same_state(before, full_state(net))
    assert set(net.predict_classes(X)) <= {0, 1}      # unfitted: class ids 0/1
    net.fit(X, [1, 1, 1, 1], batch_size=None, verbose=0)   # 0/1 labels keep their meaning
    np.testing.assert_array_equal(net.classes_, [0, 1])


# --------------------------------------------------------------------------- Ctrl-C
class _InterruptingBar:
    """Stands in for the tqdm bar: raises KeyboardInterrupt mid-epoch."""

    def __init__(self, epoch, at_epoch, after_batches):
        self.epoch, self.at_epoch, self.after = epoch, at_epoch, after_batches

    def update_to(self, batches_done, running_loss):
        if self.epoch == self.at_epoch and batches_done >= self.after:
            raise KeyboardInterrupt

    def close(self):
        pass


def test_ctrl_c_mid_epoch_keeps_the_last_completed_epoch(monkeypatch, capsys):
    X, y = classification_data(n=200)
    net = classifier(optimizer=dn.optimizers.Adam(0.01))
    record = RecordWeights()
    states = []

    class RecordState(Callback):
        def on_epoch_end(self, epoch, logs=None):
            states.append((net.optimizer.get_state(), net._rng.bit_generator.state))

    monkeypatch.setattr(training, "_progress_bar",
                        lambda verbose, n, bs, epoch, epochs: _InterruptingBar(epoch, 2, 3))
    history = net.fit(X, y, epochs=5, batch_size=8, verbose=0,
                      callbacks=[record, RecordState()])
    assert history.interrupted is True
    assert history.epoch == [0, 1] and len(history["loss"]) == 2
    assert net.history is history
    assert_weights_equal(net.get_weights(), record.weights[1])
    state, rng = states[1]
    assert net.optimizer.iterations == state["iterations"] == 2 * 25
    assert net._rng.bit_generator.state == rng
    assert net.epochs_trained == 2
    assert capsys.readouterr() == ("", "")      # verbose=0 stays silent
    # a fit continuing from here equals an uninterrupted one
    monkeypatch.undo()
    net.fit(X, y, epochs=1, batch_size=8, verbose=0)
    reference = classifier(optimizer=dn.optimizers.Adam(0.01))
    reference.fit(X, y, epochs=3, batch_size=8, verbose=0)
    assert_weights_equal(net.get_weights(), reference.get_weights())


def test_ctrl_c_in_a_callback_after_the_epoch_keeps_that_epoch():
    X, y = classification_data()
    net = classifier()
    record = RecordWeights()

    class Interrupt(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    history = net.fit(X, y, epochs=5, batch_size=16, verbose=0,
                      callbacks=[record, Interrupt()])
    assert history.interrupted and history.epoch == [0, 1]
    assert_weights_equal(net.get_weights(), record.weights[1])


def test_ctrl_c_at_epoch_begin_keeps_the_previous_epoch():
    X, y = classification_data()
    net = classifier()
    record = RecordWeights()

    class Interrupt(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    history = net.fit(X, y, epochs=5, batch_size=16, verbose=2, callbacks=[record, Interrupt()])
    assert history.interrupted and history.epoch == [0, 1]
    assert_weights_equal(net.get_weights(), record.weights[1])


def test_sigint_from_a_timer_thread_ends_fit_cleanly(capsys):
    """A real SIGINT from another thread, sent once the first epoch has ended (so
    that there are weights to keep, whatever the machine's speed): fit ends
    with the weights, history and step count of the last completed epoch."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread only")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 64))
    y = rng.integers(0, 10, size=4000)
    net = dn.Sequential([dn.Dense(128, activation="relu"), dn.Dense(10)], input_dim=64,
                        seed=0, n_threads=1)
    net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(0.01))
    record = RecordWeights()
    timers = []

    class SignalAfterFirstEpoch(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:       # lands in epoch 1's compiled loop (or, if slow, later)
                timers.append(threading.Timer(0.05, signal.raise_signal,
                                              args=(signal.SIGINT,)))
                timers[0].start()
            if epoch >= 1000:    # a safety net only: the signal ends the fit
                self.model.stop_training = True

    # Python's own handler (raises KeyboardInterrupt), whatever ran before this test
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        history = net.fit(X, y, epochs=10**6, batch_size=16, verbose=1,
                          callbacks=[record, SignalAfterFirstEpoch()])
    finally:
        for timer in timers:
            timer.join()
        signal.signal(signal.SIGINT, previous)
    assert history.interrupted
    completed = len(history.epoch)
    assert 1 <= completed < 1000
    assert net.optimizer.iterations == completed * 250
    assert net.epochs_trained == completed
    # On a loaded machine the signal may land after an epoch's last step, among
    # its on_epoch_end callbacks: the epoch is complete (and in the history) but
    # RecordWeights may not have seen it. The reference is therefore an
    # uninterrupted fit of `completed` epochs (one thread: the same bits).
    assert len(record.weights) in (completed - 1, completed)
    reference = dn.Sequential([dn.Dense(128, activation="relu"), dn.Dense(10)], input_dim=64,
                              seed=0, n_threads=1)
    reference.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(0.01))
    reference.fit(X, y, epochs=completed, batch_size=16, verbose=0)
    assert_weights_equal(net.get_weights(), reference.get_weights())
    assert "Interrupted" in capsys.readouterr().err


# --------------------------------------------------------------------------- partial_fit
@pytest.mark.parametrize("optimizer", [lambda: dn.optimizers.SGD(0.1, momentum=0.9),
                                       lambda: dn.optimizers.Adam(0.01)])
def test_partial_fit_twice_equals_fit_two_epochs(optimizer):
    X, y = classification_data()
    a = classifier(optimizer=optimizer())
    a.partial_fit(X, y, batch_size=16)
    history = a.partial_fit(X, y, batch_size=16)
    assert history.epoch == [1] and a.epochs_trained == 2     # epochs continue
    b = classifier(optimizer=optimizer())
    b.fit(X, y, epochs=2, batch_size=16, verbose=0)
    assert_weights_equal(a.get_weights(), b.get_weights())


def test_partial_fit_with_declared_classes_accepts_late_labels():
    X, _ = classification_data(n=90)
    labels = np.array(["ant", "bee", "cow"])
    y = labels[np.arange(90) % 3]
    net = classifier(input_dim=False)
    first = y != "cow"
    net.partial_fit(X[first], y[first], classes=["cow", "bee", "ant"])
    np.testing.assert_array_equal(net.classes_, labels)
    net.partial_fit(X, y)                                 # 'cow' appears now
    net.partial_fit(X, y, classes=labels)                 # same classes: fine
    assert set(net.predict_classes(X)) <= set(labels)
    before = full_state(net)
    bad = y.copy()
    bad[5] = "dog"
    with pytest.raises(ValueError, match="dog"):
        net.partial_fit(X, bad)
    assert_same_state(before, full_state(net))
    with pytest.raises(ValueError, match="differs from classes_"):
        net.partial_fit(X, y, classes=["ant", "bee", "dog"])
    assert_same_state(before, full_state(net))


def test_partial_fit_first_call_without_all_labels_asks_for_classes():
    X, _ = classification_data(n=30)
    y = np.array(["a", "b"] * 15)
    net = classifier(input_dim=False)
    before = full_state(net)
    with pytest.raises(ValueError, match="classes="):
        net.partial_fit(X, y)
    assert_same_state(before, full_state(net))
    assert net.classes_ is None


@pytest.mark.parametrize("classes, error, match", [
    (["a", "b"], ValueError, "needs 3"),
    (["a", "a", "b"], ValueError, "duplicate"),
    ([], ValueError, "non-empty"),
    ([[1, 2, 3]], ValueError, "1-D"),
    ("abc", TypeError, "array-like"),
    ([1.0, np.nan, 2.0], ValueError, "NaN"),
])
def test_partial_fit_rejects_bad_classes(classes, error, match):
    X, y = classification_data(n=30)
    net = classifier()
    before = full_state(net)
    with pytest.raises(error, match=match):
        net.partial_fit(X, y, classes=classes)
    assert_same_state(before, full_state(net))


def test_partial_fit_classes_for_regression_is_a_type_error():
    X, y = regression_data()
    net = regressor()
    with pytest.raises(TypeError, match="classification"):
        net.partial_fit(X, y, classes=[0, 1])


def test_partial_fit_binary_with_declared_classes():
    X, _ = classification_data(n=40)
    y = np.array(["no", "yes"])[np.arange(40) % 2]
    net = dn.Sequential([dn.Dense(8, activation="relu"), dn.Dense(1)], seed=0, n_threads=1)
    net.compile(loss="binary_cross_entropy", optimizer="adam")
    net.partial_fit(X[y == "no"], y[y == "no"], classes=["yes", "no"])
    net.partial_fit(X, y)
    np.testing.assert_array_equal(net.classes_, ["no", "yes"])
    with pytest.raises(ValueError, match="maybe"):
        net.partial_fit(X[:3], ["no", "maybe", "yes"])


def test_schedule_continues_across_fit_calls():
    X, y = classification_data()

    def make():
        return classifier(optimizer=dn.optimizers.SGD(
            dn.schedules.StepDecay(0.2, drop=0.5, step_size=1), momentum=0.9))

    a = make()
    first = a.fit(X, y, epochs=1, batch_size=16, verbose=0)
    second = a.fit(X, y, epochs=2, batch_size=16, verbose=0)
    assert first["learning_rate"] == [0.2]
    assert second["learning_rate"] == [0.1, 0.05]
    b = make()
    b.fit(X, y, epochs=3, batch_size=16, verbose=0)
    assert_weights_equal(a.get_weights(), b.get_weights())
    a.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(
        dn.schedules.StepDecay(0.2, drop=0.5, step_size=1)))
    assert a.epochs_trained == 0      # a new compile starts the schedule again


# --------------------------------------------------------------------------- input validation
def _bad_X_cases(d):
    rng = np.random.default_rng(0)
    good = rng.normal(size=(10, d))
    nan = good.copy()
    nan[3, 1] = np.nan
    inf = good.copy()
    inf[0, 0] = np.inf
    return [
        ("nan", nan, ValueError, "NaN"),
        ("inf", inf, ValueError, "infinite"),
        ("empty", np.empty((0, d)), ValueError, "empty"),
        ("no features", np.empty((10, 0)), ValueError, "0 features"),
        ("1-D", good[0], ValueError, "2-D"),
        ("3-D", good[None], ValueError, "2-D"),
        ("features", good[:, :-1], ValueError, f"expects {d}"),
        ("strings", np.array([["a"] * d] * 10), TypeError, "real numbers"),
        ("complex", good.astype(complex), TypeError, "real numbers"),
        ("object", good.astype(object), TypeError, "real numbers"),
        ("None", None, TypeError, "X must be"),
        ("overflow", np.full((10, d), 1e300), ValueError, "after conversion"),
    ]


@pytest.mark.parametrize("case", range(12))
@pytest.mark.parametrize("entry", ["fit", "partial_fit", "predict", "evaluate", "gradients",
                                   "loss", "train_on_batch", "predict_classes"])
def test_every_entry_point_rejects_bad_X_and_changes_nothing(entry, case):
    name, X, error, match = _bad_X_cases(6)[case]
    if name == "overflow":
        net = classifier(dtype="float32")
    else:
        net = classifier()
    Xt, yt = classification_data()
    net.fit(Xt, yt, epochs=1, batch_size=16, verbose=0)
    before = full_state(net)
    y = np.zeros(10 if X is None or np.ndim(X) < 1 else len(X), dtype=int)
    calls = {"fit": lambda: net.fit(X, y, epochs=1, batch_size=None, verbose=0),
             "partial_fit": lambda: net.partial_fit(X, y),
             "predict": lambda: net.predict(X),
             "evaluate": lambda: net.evaluate(X, y),
             "gradients": lambda: net.gradients(X, y),
             "loss": lambda: net.loss(X, y),
             "train_on_batch": lambda: net.train_on_batch(X, y),
             "predict_classes": lambda: net.predict_classes(X)}
    with pytest.raises(error, match=match):
        calls[entry]()
    assert_same_state(before, full_state(net))


@pytest.mark.parametrize("y, error, match", [
    (np.zeros(9, dtype=int), ValueError, "different lengths"),
    (np.full(10, 3), ValueError, r"outside \[0, 3\)"),
    (np.full(10, -1), ValueError, r"outside \[0, 3\)"),
    (np.array([0.0, np.nan] * 5), ValueError, "NaN"),
    (None, ValueError, "required"),
    (np.array(["a", "b"] * 5), ValueError, "distinct labels"),
    (np.zeros((10, 2)), ValueError, "one-hot"),
    (np.zeros((10, 3, 1)), ValueError, "1-D labels or 2-D one-hot"),
])
@pytest.mark.parametrize("entry", ["fit", "partial_fit", "evaluate", "gradients",
                                   "train_on_batch"])
def test_entry_points_reject_bad_classification_targets(entry, y, error, match):
    X = np.random.default_rng(0).normal(size=(10, 6))
    net = classifier()
    before = full_state(net)
    calls = {"fit": lambda: net.fit(X, y, epochs=1, batch_size=None, verbose=0),
             "partial_fit": lambda: net.partial_fit(X, y),
             "evaluate": lambda: net.evaluate(X, y),
             "gradients": lambda: net.gradients(X, y),
             "train_on_batch": lambda: net.train_on_batch(X, y)}
    with pytest.raises(error, match=match):
        calls[entry]()
    assert_same_state(before, full_state(net))


@pytest.mark.parametrize("y, error, match", [
    (np.zeros((10, 2)), ValueError, r"shape \(n,\) or \(n, 1\)"),
    (np.array(["a"] * 10), TypeError, "real-valued"),
    (np.array([np.inf] * 10), ValueError, "NaN or infinite"),
])
def test_regression_targets_are_checked(y, error, match):
    X = np.random.default_rng(0).normal(size=(10, 5))
    net = regressor()
    before = full_state(net)
    for call in (lambda: net.fit(X, y, batch_size=None, verbose=0), lambda: net.evaluate(X, y),
                 lambda: net.partial_fit(X, y)):
        with pytest.raises(error, match=match):
            call()
        assert_same_state(before, full_state(net))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"epochs": -1}, ValueError, "epochs"),
    ({"epochs": 1.5}, TypeError, "epochs"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": "32"}, TypeError, "batch_size"),
    ({"verbose": 3}, ValueError, "verbose"),
    ({"shuffle": "yes"}, TypeError, "shuffle"),
    ({"validation_split": 1.0}, ValueError, "validation_split"),
    ({"validation_split": -0.1}, ValueError, "validation_split"),
    ({"validation_data": (np.zeros((3, 5)), np.zeros(3))}, ValueError, "validation_data"),
    ({"validation_data": (np.full((3, 6), np.nan), np.zeros(3))}, ValueError, "NaN"),
    ({"validation_data": (np.zeros((3, 6)), np.zeros(2))}, ValueError, "lengths"),
    ({"validation_data": np.zeros((3, 6))}, ValueError, "validation_data"),
    ({"callbacks": "early"}, TypeError, "callbacks"),
    ({"n_threads": 0}, ValueError, "n_threads"),
])
def test_fit_rejects_bad_arguments_and_changes_nothing(kwargs, error, match):
    X, y = classification_data()
    for net in (classifier(), classifier(input_dim=False)):
        before = full_state(net)
        with pytest.raises(error, match=match):
            net.fit(X, y, **{"verbose": 0, **kwargs})
        assert_same_state(before, full_state(net))


def test_set_weights_rejects_bad_arrays_and_changes_nothing():
    net = classifier()
    before = full_state(net)
    weights = net.get_weights()
    bad_nan = [w.copy() for w in weights]
    bad_nan[2][0, 0] = np.nan
    for bad, match in ((weights[:-1], "expected 4 arrays"),
                       ([weights[0].T] + weights[1:], "shape"),
                       (bad_nan, "finite")):
        with pytest.raises(ValueError, match=match):
            net.set_weights(bad)
        assert_same_state(before, full_state(net))


def test_one_class_in_y_is_fine_for_integer_ids_but_strings_must_match_outputs():
    X, _ = classification_data(n=20)
    net = classifier()
    net.fit(X, np.zeros(20, dtype=int), epochs=1, batch_size=None, verbose=0)  # 3 classes
    other = classifier()
    with pytest.raises(ValueError, match="1 distinct labels"):
        other.fit(X, np.array(["only"] * 20), epochs=1, batch_size=None, verbose=0)


# --------------------------------------------------------------------------- layouts
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_and_fortran_inputs_match_contiguous_copies(dtype):
    rng = np.random.default_rng(0)
    big = rng.normal(size=(240, 12)).astype(dtype)
    y_big = rng.integers(0, 3, size=240)
    variants = {"strided": (big[::2, ::2], y_big[::2]),
                "fortran": (np.asfortranarray(big[::2, ::2]), np.ascontiguousarray(y_big[::2])),
                "reversed": (np.ascontiguousarray(big[::2, ::2])[::-1][::-1],
                             y_big[::2][::-1][::-1])}
    X_c = np.ascontiguousarray(big[::2, ::2])
    y_c = np.ascontiguousarray(y_big[::2])
    assert not variants["strided"][0].flags.c_contiguous
    assert variants["fortran"][0].flags.f_contiguous
    ref = classifier(dtype=np.dtype(dtype).name)
    ref.fit(X_c, y_c, epochs=2, batch_size=16, verbose=0, validation_data=(X_c, y_c))
    for name, (X, y) in variants.items():
        net = classifier(dtype=np.dtype(dtype).name)
        net.fit(X, y, epochs=2, batch_size=16, verbose=0, validation_data=(X, y))
        assert_weights_equal(net.get_weights(), ref.get_weights())
        np.testing.assert_array_equal(net.predict(X), ref.predict(X_c))
        assert net.evaluate(X, y) == ref.evaluate(X_c, y_c)
        for (dw, db), (rw, rb) in zip(net.gradients(X, y), ref.gradients(X_c, y_c)):
            np.testing.assert_array_equal(dw, rw)
            np.testing.assert_array_equal(db, rb)


def test_inputs_are_never_modified():
    X, y = classification_data()
    X_copy, y_copy = X.copy(), y.copy()
    net = classifier()
    net.fit(X, y, epochs=1, verbose=0, validation_data=(X, y))
    net.predict(X)
    net.gradients(X, y)
    np.testing.assert_array_equal(X, X_copy)
    np.testing.assert_array_equal(y, y_copy)


def test_read_only_inputs_work():
    X, y = classification_data()
    X.flags.writeable = False
    y.flags.writeable = False
    net = classifier()
    net.fit(X, y, epochs=1, verbose=0)
    net.partial_fit(X, y)
    assert np.isfinite(net.predict(X)).all()


# --------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_seed_same_weights_whatever_the_global_numpy_state(dtype):
    X, y = classification_data(dtype=dtype)
    results = []
    for global_seed in (0, 12345):
        np.random.seed(global_seed)
        np.random.random(100)
        net = dn.Sequential([dn.Dense(16, activation="relu"), dn.Dropout(0.2), dn.Dense(3)],
                            input_dim=6, dtype=dtype, seed=7, n_threads=1)
        net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.Adam(0.01))
        net.fit(X, y, epochs=2, batch_size=16, verbose=0)
        results.append(net.get_weights())
    assert_weights_equal(results[0], results[1])
    state = np.random.get_state()
    dn.Sequential([dn.Dense(3)], input_dim=6, seed=1)
    assert np.random.get_state()[1].tolist() == state[1].tolist()   # global state untouched


def _train_with_threads(n_threads, dtype, batch_size):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 64)).astype(dtype)
    y = rng.integers(0, 10, size=300)
    net = dn.Sequential([dn.Dense(100, activation="relu"), dn.Dropout(0.1), dn.Dense(10)],
                        input_dim=64, dtype=dtype, seed=1, n_threads=n_threads)
    net.compile(loss="softmax_cross_entropy",
                optimizer=dn.optimizers.SGD(0.01, momentum=0.9, nesterov=True))
    net.fit(X, y, epochs=2, batch_size=batch_size, verbose=0)
    return (net.get_weights(), [net.predict(X), net.predict(X[:5])],
            [g for pair in net.gradients(X[:7], y[:7]) for g in pair])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_size", [1, 4, 64, 200])
def test_one_and_two_threads_give_bitwise_identical_results(dtype, batch_size):
    """GEMMs are cut in 64-row blocks whatever the team size (csrc/descend/_dense.pyx),
    so training, predict and gradients do not depend on n_threads."""
    one = _train_with_threads(1, dtype, batch_size)
    two = _train_with_threads(2, dtype, batch_size)
    for a, b in zip(one, two):
        assert_weights_equal(a, b)


def test_loss_and_mse_of_an_epoch_line_differ_as_the_readme_says():
    # README: `loss` is the mean of the batch losses as training went, `mse` the
    # training data scored after the epoch with its final weights
    X, y = regression_data()
    full_batch = regressor(optimizer=dn.optimizers.SGD(0.05))
    before = full_batch.evaluate(X, y)["mse"]
    logs = full_batch.fit(X, y, epochs=1, batch_size=None, shuffle=False, verbose=0)
    after = full_batch.evaluate(X, y)["mse"]
    # one full batch: loss is that batch's loss, taken before its update
    assert logs["loss"][0] == pytest.approx(before, rel=1e-12)
    assert logs["mse"][0] == pytest.approx(after, rel=1e-12) and after < 0.9 * before
    net = regressor()
    logs = net.fit(X, y, epochs=1, batch_size=8, verbose=0)
    assert logs["mse"][0] == pytest.approx(net.evaluate(X, y)["mse"], rel=1e-12)
    assert logs["loss"][0] > 1.05 * logs["mse"][0]      # early batches scored worse weights
    readme = Path(__file__).resolve().parents[1] / "README.md"
    if readme.exists():                                  # (not in an installed-wheel run)
        text = readme.read_text(encoding="utf-8")
        assert "MLPRegressor" in text and "`loss` and `mse` differ" in text


class BatchEnds(dn.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(batch)


@pytest.mark.parametrize("n, batch_size, expected", [
    # under 40 batches an epoch: after every batch
    (30, 3, list(range(10))),
    # 1300 batches: every min(1300 // 20, 64) = 64 batches, and after the last
    (1300, 1, [64 * i - 1 for i in range(1, 21)] + [1299]),
])
def test_batch_hooks_run_every_batch_of_short_epochs_and_every_64_batches_at_most(
        n, batch_size, expected):
    X, y = classification_data(n=n)
    seen = BatchEnds()
    classifier().fit(X, y, epochs=1, batch_size=batch_size, verbose=0, callbacks=[seen])
    assert seen.batches == expected


def test_a_terminal_gets_a_bar_that_counts_samples_and_shows_the_loss(capsys, monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(training, "_dynamic_display", lambda: True)     # as on a terminal
    closed = []
    close = training._TqdmBar.close

    def recording_close(self):      # (tqdm redraws at most every 0.1 s: read the bar)
        closed.append((self._bar.desc, self._bar.n, str(self._bar.postfix)[:5]))
        close(self)
    monkeypatch.setattr(training._TqdmBar, "close", recording_close)
    X, y = classification_data(n=120)
    classifier().fit(X, y, epochs=2, batch_size=32, verbose=1)
    out, err = capsys.readouterr()
    assert [line.split("  ")[0] for line in out.splitlines()] == ["epoch 1/2", "epoch 2/2"]
    assert "epoch 1/2:" in err and "epoch 2/2:" in err
    assert closed == [("epoch 1/2", 120, "loss="), ("epoch 2/2", 120, "loss=")]


def test_ctrl_c_while_the_epoch_snapshot_is_taken_keeps_the_last_completed_epoch(
        monkeypatch):
    X, y = classification_data()
    reference = classifier()
    reference.fit(X, y, epochs=1, batch_size=16, verbose=0)
    taken = []
    snapshot = training.Trainer._snapshot

    def interrupted_second_snapshot(self):
        taken.append(1)
        if len(taken) == 2:
            raise KeyboardInterrupt
        return snapshot(self)
    monkeypatch.setattr(training.Trainer, "_snapshot", interrupted_second_snapshot)
    net = classifier()
    history = net.fit(X, y, epochs=3, batch_size=16, verbose=0)
    assert history.interrupted and history.epoch == [0] and net.epochs_trained == 1
    for a, b in zip(net.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_an_object_with_hooks_is_a_callback_without_subclassing():
    class EpochEnds:                    # Keras-style duck typing: hooks, no base class
        def __init__(self):
            self.seen = []

        def on_epoch_end(self, epoch, logs=None):
            self.seen.append((epoch, sorted(logs)))
    X, y = classification_data()
    duck = EpochEnds()
    classifier().fit(X, y, epochs=2, batch_size=32, verbose=0, callbacks=[duck])
    keys = ["accuracy", "learning_rate", "loss", "samples_per_second", "seconds"]
    assert duck.seen == [(0, keys), (1, keys)]
    with pytest.raises(TypeError, match=r"callbacks\[1\] must be a descend Callback"):
        classifier().fit(X, y, epochs=1, verbose=0, callbacks=[duck, object()])


@pytest.mark.parametrize("steps, error, message", [
    (0, ValueError, "steps_per_execution must be an int >= 1, got 0 (int)"),
    (1.5, TypeError, "steps_per_execution must be an int >= 1, got 1.5 (float)"),
])
def test_steps_per_execution_is_checked_by_name(steps, error, message):
    X, y = classification_data()
    net = classifier()
    before = full_state(net)
    with pytest.raises(error) as info:
        net.fit(X, y, epochs=1, verbose=0, steps_per_execution=steps)
    assert str(info.value) == message
    assert_same_state(before, full_state(net))
