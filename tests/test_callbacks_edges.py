"""descend.callbacks pinned edge by edge: what each hook passes on, each default,
each message, each boundary of a comparison, checked against values worked out
by hand from the Keras 3 semantics the module documents (keras.callbacks).

tests/test_callbacks.py drives the callbacks through a fake fit; this file
pins what a mutant of one constant, comparison, default or message could
change without that file noticing (tests/mutation.py runs both).
"""

import csv
import math
import os
import re
import warnings

import numpy as np
import pytest

from descend import callbacks as cbs


class Optimizer:
    def __init__(self, learning_rate=0.1):
        self.learning_rate = learning_rate


class Model:
    """The attributes the callbacks use: stop_training, optimizer,
    get_weights/set_weights, save."""

    def __init__(self, learning_rate=0.1):
        self.stop_training = False
        self.optimizer = Optimizer(learning_rate)
        self.weights = [np.zeros(2)]
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w, copy=True) for w in weights]

    def save(self, path):
        with open(path, "wb") as f:
            f.write(b"saved")
        self.saved.append(str(path))


def attached(callback, model=None):
    callback.set_model(model if model is not None else Model())
    callback.on_train_begin({})
    return callback


# ---------------------------------------------------------------------------
# CallbackList
# ---------------------------------------------------------------------------

class Log(cbs.Callback):
    """Records every hook with its arguments (by identity for logs)."""

    def __init__(self, calls, name):
        super().__init__()
        self.calls, self.name = calls, name

    def set_params(self, params):
        self.calls.append((self.name, "set_params", params))

    def on_train_begin(self, logs=None):
        self.calls.append((self.name, "on_train_begin", logs))

    def on_train_end(self, logs=None):
        self.calls.append((self.name, "on_train_end", logs))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append((self.name, "on_epoch_begin", epoch, logs))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append((self.name, "on_epoch_end", epoch, logs))

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append((self.name, "on_train_batch_begin", batch, logs))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append((self.name, "on_train_batch_end", batch, logs))


def test_callback_list_passes_every_hook_its_arguments_in_order():
    calls = []
    hooks = cbs.CallbackList([Log(calls, "a"), Log(calls, "b")])
    params = {"epochs": 3}
    logs = [{"loss": float(i)} for i in range(6)]
    hooks.set_params(params)
    hooks.on_train_begin(logs[0])
    hooks.on_epoch_begin(7, logs[1])
    hooks.on_train_batch_begin(11, logs[2])
    hooks.on_train_batch_end(12, logs[3])
    hooks.on_epoch_end(8, logs[4])
    hooks.on_train_end(logs[5])
    expected = [("set_params", params), ("on_train_begin", logs[0]),
                ("on_epoch_begin", 7, logs[1]), ("on_train_batch_begin", 11, logs[2]),
                ("on_train_batch_end", 12, logs[3]), ("on_epoch_end", 8, logs[4]),
                ("on_train_end", logs[5])]
    assert [c[1:] for c in calls] == [e for e in expected for _ in "ab"]
    assert [c[0] for c in calls] == ["a", "b"] * len(expected)
    # the very dicts, not copies or None
    assert all(c[-1] is e[-1] for c, e in zip(calls[::2], expected))


def test_callback_list_defaults_and_its_own_model():
    empty = cbs.CallbackList()
    assert empty.callbacks == [] and len(empty) == 0 and list(empty) == []
    assert empty.model is None
    first, second = cbs.Callback(), cbs.Callback()
    empty.append(first)
    empty.append(second)
    assert list(empty) == [first, second] and len(empty) == 2
    model = Model()
    empty.set_model(model)
    assert empty.model is model and first.model is model and second.model is model
    built = cbs.CallbackList((c for c in [first]), model=model)    # any iterable
    assert built.model is model and built.callbacks == [first]


class Bare:
    """Duck-typed: no set_model, no set_params, only one hook."""

    def __init__(self):
        self.ends = []

    def on_epoch_end(self, epoch, logs=None):
        self.ends.append((epoch, logs))


def test_callback_list_skips_what_a_duck_typed_callback_lacks():
    bare = Bare()
    model = Model()
    hooks = cbs.CallbackList([bare], model=model)
    assert bare.model is model              # no set_model: the attribute is set
    hooks.set_params({"epochs": 1})         # no set_params: skipped
    hooks.on_train_begin({})
    hooks.on_epoch_begin(0, {})
    hooks.on_train_batch_begin(0, {})
    hooks.on_train_batch_end(0, {})
    logs = {"loss": 1.0}
    hooks.on_epoch_end(0, logs)
    hooks.on_train_end({})
    assert bare.ends == [(0, logs)]
    assert not hasattr(bare, "params")


@pytest.mark.parametrize("value, shown", [
    (5, "5 (int)"), ("ab", "'ab' (str)"), (b"ab", "b'ab' (bytes)"), (None.__class__, None)])
def test_callback_list_refuses_what_is_not_a_list_by_name(value, shown):
    with pytest.raises(TypeError) as info:
        cbs.CallbackList(value)
    message = str(info.value)
    assert message.startswith("CallbackList: callbacks must be a list of callbacks, got ")
    if shown is not None:
        assert message == f"CallbackList: callbacks must be a list of callbacks, got {shown}"


def test_callback_list_refuses_a_single_callback():
    single = cbs.Callback()
    with pytest.raises(TypeError, match=r"^CallbackList: callbacks must be a list of "
                                        r"callbacks, got <.*Callback object.*> \(Callback\)$"):
        cbs.CallbackList(single)


# ---------------------------------------------------------------------------
# Warnings: their text, category, and the frame they point at
# ---------------------------------------------------------------------------

def missing(who, monitor, keys):
    return (f"{who} is conditioned on `{monitor}`, which is not in the epoch logs. "
            f"Available keys: {keys}. Pass validation_data to fit() for val_* "
            f"metrics, or choose another `monitor`.")


def recorded_warnings(monkeypatch):
    """warnings.warn replaced by a recorder of (message, category, stacklevel):
    stacklevel=2 makes a warning point at the code that called the hook (the
    training loop), which the frame under mutmut's trampoline cannot show."""
    seen = []
    monkeypatch.setattr(warnings, "warn", lambda message, category=UserWarning, stacklevel=1:
                        seen.append((message, category, stacklevel)))
    return seen


def test_early_stopping_warning_once_per_fit_names_the_monitor_and_the_keys(monkeypatch):
    seen = recorded_warnings(monkeypatch)
    stop = attached(cbs.EarlyStopping(monitor="val_acc", patience=0))
    stop.on_epoch_end(0, {"loss": 1.0, "acc": 0.5})
    stop.on_epoch_end(1, {"loss": 2.0})
    assert seen == [(missing("EarlyStopping", "val_acc", "acc, loss"), RuntimeWarning, 2)]
    assert stop.model.stop_training is False and stop.wait == 0
    stop.on_train_begin({})                     # a new fit warns again
    stop.on_epoch_end(0, None)
    assert seen[1] == (missing("EarlyStopping", "val_acc", "(none)"), RuntimeWarning, 2)
    stop.on_epoch_end(1, {"val_acc": None})     # None counts as missing: no third warning
    assert len(seen) == 2 and stop.best == -math.inf


def test_model_checkpoint_warning_names_the_monitor_and_skips_the_save(monkeypatch, tmp_path):
    seen = recorded_warnings(monkeypatch)
    save = attached(cbs.ModelCheckpoint(str(tmp_path / "m.npz"), monitor="val_mae",
                                        save_best_only=True))
    save.on_epoch_end(0, {"mae": 1.0})
    save.on_epoch_end(1, {"mae": 1.0})
    assert seen == [(missing("ModelCheckpoint(save_best_only=True)", "val_mae", "mae")
                     + " No checkpoint is written for such epochs.", RuntimeWarning, 2)]
    assert save.model.saved == [] and save.last_saved_path is None
    save.on_train_begin({})
    save.on_epoch_end(0, {})
    assert len(seen) == 2


def test_plateau_warning_names_the_monitor(monkeypatch):
    seen = recorded_warnings(monkeypatch)
    cut = attached(cbs.ReduceLROnPlateau(monitor="val_r2", patience=0))
    cut.on_epoch_end(0, {"r2": 0.5})
    cut.on_epoch_end(1, {"val_r2": None})
    assert seen == [(missing("ReduceLROnPlateau", "val_r2", "r2"), RuntimeWarning, 2)]
    assert cut.model.optimizer.learning_rate == 0.1
    cut.on_train_begin({})
    cut.on_epoch_end(0, {})
    assert len(seen) == 2


def test_csv_logger_warning_names_the_late_keys_and_the_columns(monkeypatch, tmp_path):
    seen = recorded_warnings(monkeypatch)
    log = attached(cbs.CSVLogger(str(tmp_path / "log.csv")))
    log.on_epoch_end(0, {"loss": 1.0})
    log.on_epoch_end(1, {"loss": 0.5, "val_loss": 0.7, "acc": 0.1})
    log.on_epoch_end(2, {"loss": 0.25, "val_loss": 0.6})
    log.on_train_end({})
    assert seen == [("CSVLogger: keys ['acc', 'val_loss'] appeared after the first epoch and "
                     "are not written; the columns are fixed by the first epoch: "
                     "['epoch', 'loss'].", RuntimeWarning, 2)]
    assert (tmp_path / "log.csv").read_bytes() == b"epoch,loss\r\n0,1.0\r\n1,0.5\r\n2,0.25\r\n"


# ---------------------------------------------------------------------------
# EarlyStopping
# ---------------------------------------------------------------------------

class CountingModel(Model):
    def __init__(self):
        super().__init__()
        self.restores = []

    def set_weights(self, weights):
        self.restores.append([np.array(w, copy=True) for w in weights])
        super().set_weights(weights)


def test_early_stopping_restores_after_a_stop_at_epoch_one_even_if_a_loop_goes_on(capsys):
    """A stop at epoch 1 restores at train end (stopped_epoch > 0), also when a
    loop that ignores stop_training trains on and its last epoch is the best."""
    stop = cbs.EarlyStopping(monitor="loss", patience=0, restore_best_weights=True,
                             verbose=1)
    model = CountingModel()
    attached(stop, model)
    for epoch, loss in enumerate([1.0, 2.0, 0.5]):
        model.weights = [np.full(2, float(epoch))]
        stop.on_epoch_end(epoch, {"loss": loss})
    assert stop.stopped_epoch == 1 and stop.best_epoch == 2
    stop.on_train_end({})
    assert capsys.readouterr().out == ("Epoch 2: early stopping\n"
                                       "Restoring model weights from the end of the best "
                                       "epoch: 3.\n")
    assert len(model.restores) == 1
    np.testing.assert_array_equal(model.restores[0][0], [2.0, 2.0])



# ---------------------------------------------------------------------------
# ModelCheckpoint
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("as_path", [str, os.fspath])
def test_model_checkpoint_names_a_directory_and_suggests_a_file(tmp_path, as_path):
    folder = as_path(tmp_path)
    expected = (f"ModelCheckpoint: filepath {str(tmp_path)!r} is a directory; give a file "
                f"name such as {os.path.join(str(tmp_path), 'model-{epoch:02d}.npz')!r}")
    with pytest.raises(ValueError, match="^" + re.escape(expected) + "$"):
        cbs.ModelCheckpoint(folder)
    with pytest.raises(ValueError, match="^" + re.escape(expected) + "$"):
        cbs.ModelCheckpoint(tmp_path)


def test_model_checkpoint_starts_with_nothing_saved(tmp_path):
    save = cbs.ModelCheckpoint(str(tmp_path / "m-{epoch}.npz"), save_best_only=True,
                               monitor="val_accuracy")
    assert save.last_saved_path is None and save.last_saved_epoch is None
    assert save.best == -math.inf and save.monitor_mode == "max"
    attached(save)
    save.on_epoch_end(0, {"val_accuracy": 0.5})
    assert save.last_saved_epoch == 0 and save.last_saved_path == str(tmp_path / "m-1.npz")
    save.on_train_begin({})                 # a new fit forgets the last one
    assert save.last_saved_path is None and save.last_saved_epoch is None
    assert save.best == -math.inf


@pytest.mark.parametrize("filepath", ["{a.0}", "{a[0]}", "{a.b[0]}", "{a[0].b}", "{a[1][2]}"])
def test_model_checkpoint_accepts_named_fields_with_attributes_and_indices(filepath):
    assert cbs.ModelCheckpoint(filepath).filepath == filepath


# ---------------------------------------------------------------------------
# LearningRateScheduler
# ---------------------------------------------------------------------------

class Declared:
    """A schedule whose declared signature decides the calling form although
    __call__ would take either: the scheduler must not try (epoch, lr) first."""

    def __init__(self, *declared):
        import inspect
        self.__signature__ = inspect.Signature(
            [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
             for name in declared])
        self.calls = []

    def __call__(self, *args):
        self.calls.append(args)
        return 0.25


@pytest.mark.parametrize("declared, expected", [(("epoch",), [(3,)]),
                                                (("epoch", "lr"), [(3, 0.5)])])
def test_scheduler_calls_the_declared_form_only(declared, expected):
    schedule = Declared(*declared)
    scheduler = attached(cbs.LearningRateScheduler(schedule), Model(0.5))
    scheduler.on_epoch_begin(3, {})
    assert schedule.calls == expected
    assert scheduler.model.optimizer.learning_rate == 0.25


# ---------------------------------------------------------------------------
# CSVLogger
# ---------------------------------------------------------------------------

def log_epochs(path, epochs, **kwargs):
    logger = attached(cbs.CSVLogger(path, **kwargs))
    for epoch, logs in enumerate(epochs):
        logger.on_epoch_end(epoch, logs)
    logger.on_train_end({})
    return logger


def test_csv_logger_starts_with_no_columns(tmp_path):
    logger = cbs.CSVLogger(str(tmp_path / "log.csv"))
    assert logger.keys is None and logger.csv_file is None
    assert (logger.separator, logger.append) == (",", False)


def test_csv_logger_appends_in_the_columns_of_the_existing_header(tmp_path):
    """Keras appends rows in the order of the logs' sorted keys; here rows follow the
    header already in the file, so that columns do not shift under it."""
    path = tmp_path / "log.csv"
    path.write_bytes(b"epoch;val_loss;loss\r\n0;0.9;1.0\r\n")
    log_epochs(path, [{"loss": 0.5, "val_loss": 0.6}], separator=";", append=True)
    assert path.read_bytes() == b"epoch;val_loss;loss\r\n0;0.9;1.0\r\n0;0.6;0.5\r\n"


def test_csv_logger_appends_under_a_key_with_a_line_break_in_it(tmp_path):
    """newline="" (the csv module's rule) reads a quoted field with "\\r\\n" in it as
    written, so the appended row finds its column."""
    path = tmp_path / "log.csv"
    log_epochs(path, [{"a\r\nb": 1.0}])
    log_epochs(path, [{"a\r\nb": 2.0}], append=True)
    assert path.read_bytes() == b'epoch,"a\r\nb"\r\n0,1.0\r\n0,2.0\r\n'


def test_csv_logger_refuses_to_append_to_another_file_by_name(tmp_path):
    path = tmp_path / "data.csv"
    first = "x" * 90
    path.write_text(f"{first};y\n1;2\n", encoding="utf-8")
    logger = cbs.CSVLogger(path, separator=";", append=True)
    shown = (first + ";y")[:80]
    with pytest.raises(ValueError, match=exact(
            f"CSVLogger: cannot append to {str(path)!r}: its first line {shown!r} is not a "
            "CSVLogger header with separator ';' (epoch;...)")):
        logger.on_train_begin({})
    assert path.read_text(encoding="utf-8") == f"{first};y\n1;2\n"     # untouched
    assert logger.csv_file is None


def test_csv_logger_writes_strings_and_0d_arrays_as_they_are(tmp_path):
    path = tmp_path / "log.csv"
    log_epochs(path, [{"note": "a b", "value": np.array(2.5), "name": np.array("x")}])
    assert path.read_bytes() == b"epoch,name,note,value\r\n0,x,a b,2.5\r\n"


def exact(message):
    return "^" + re.escape(message) + "$"


@pytest.mark.parametrize("separator", ["\t", ";", "|", "X", " "])
def test_csv_logger_takes_any_single_character_but_a_line_break(tmp_path, separator):
    path = tmp_path / "log.csv"
    log_epochs(path, [{"loss": 0.5, "mae": 1.5}], separator=separator)
    assert path.read_bytes() == (f"epoch{separator}loss{separator}mae\r\n"
                                 f"0{separator}0.5{separator}1.5\r\n").encode()


# ---------------------------------------------------------------------------
# TerminateOnNaN
# ---------------------------------------------------------------------------

def test_terminate_on_nan_starts_outside_any_epoch(capsys):
    """Before on_train_begin (a loop that reports batches only) nothing has
    terminated, and a batch is named without an epoch."""
    stop = cbs.TerminateOnNaN()
    assert stop.terminated_epoch is None
    stop.set_model(Model())
    stop.on_train_batch_end(0, {"loss": math.inf})
    assert capsys.readouterr().out == "Batch 1: invalid loss inf, terminating training\n"
    assert stop.model.stop_training is True and stop.terminated_epoch is None


@pytest.mark.parametrize("loss, shown", [("nan", "nan"), ("-inf", "-inf"),
                                         (np.float32("nan"), "nan"),
                                         (complex(1.0, math.inf), "(1+infj)"),
                                         (np.array([[1.0], [math.nan]]), "[[ 1.]\n [nan]]")])
def test_terminate_on_nan_reads_numbers_written_as_strings_and_arrays(capsys, loss, shown):
    stop = attached(cbs.TerminateOnNaN())
    stop.on_epoch_end(2, {"loss": loss})
    assert stop.model.stop_training is True and stop.terminated_epoch == 2
    assert capsys.readouterr().out == f"Epoch 3: invalid loss {shown}, terminating training\n"


@pytest.mark.parametrize("loss", ["n/a", "1e3", object(), [1.0, [2.0]], np.array([1, 2]),
                                  np.array(["nan"]), None, True])
def test_terminate_on_nan_ignores_what_is_not_a_non_finite_number(capsys, loss):
    stop = attached(cbs.TerminateOnNaN())
    stop.on_epoch_end(0, {"loss": loss})
    assert stop.model.stop_training is False and stop.terminated_epoch is None
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------- output paths
def test_callbacks_refuse_a_path_under_a_symbolic_link_to_nothing_up_front(tmp_path):
    # ModelCheckpoint raised FileExistsError after the first epoch had trained,
    # CSVLogger and TensorBoard a FileNotFoundError, none naming the argument
    import descend as dn
    link = tmp_path / "dl"
    link.symlink_to(tmp_path / "gone")
    reason = f"{str(link)!r} is a symbolic link to {str(tmp_path / 'gone')!r}, which does not exist"
    makers = [
        (lambda p: cbs.ModelCheckpoint(p), link / "m.npz",
         "ModelCheckpoint: filepath must be a file in a directory that can be created or "
         "written"),
        (lambda p: cbs.ModelCheckpoint(p), link / "sub" / "m-{epoch:02d}.npz",
         "ModelCheckpoint: filepath must be a file in a directory that can be created or "
         "written"),
        (lambda p: cbs.CSVLogger(p), link / "log.csv",
         "CSVLogger: filename must be a file in a directory that can be written"),
    ]
    try:
        import tensorboardX  # noqa: F401
        makers.append((lambda p: cbs.TensorBoard(p), link / "run",
                       "TensorBoard: log_dir must be a directory that can be created or "
                       "written"))
    except ImportError:
        pass
    for make, path, head in makers:
        with pytest.raises(ValueError) as info:
            make(path)
        assert str(info.value) == f"{head}, got {str(path)!r} ({reason})"
    # a missing directory: CSVLogger does not make it (open() raised at on_train_begin)
    with pytest.raises(ValueError) as info:
        cbs.CSVLogger(tmp_path / "missing" / "log.csv")
    assert str(info.value) == (
        f"CSVLogger: filename must be a file in a directory that can be written, got "
        f"{str(tmp_path / 'missing' / 'log.csv')!r} ({str(tmp_path / 'missing')!r} does "
        "not exist)")
    # ModelCheckpoint makes it, and writes through a link to a file not made yet
    net = dn.Sequential([dn.Dense(2)], input_dim=2, seed=0).compile(
        loss="mean_squared_error", optimizer="sgd")
    X = np.ones((4, 2))
    net.fit(X, X, verbose=0, batch_size=4,
            callbacks=[cbs.ModelCheckpoint(tmp_path / "made" / "m.npz"),
                       cbs.CSVLogger(link)])
    assert (tmp_path / "made" / "m.npz").is_file() and (tmp_path / "gone").is_file()
