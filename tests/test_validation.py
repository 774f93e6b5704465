"""descend._validation: one constraint table, one message style, one rule for the
exception type, and the same message for the same argument kind everywhere."""
import os
import warnings
from numbers import Integral, Real

import numpy as np
import pytest

import descend as dn
from descend import _validation as v
from descend._validation import Interval, Options


# --------------------------------------------------------------------------- each constraint
@pytest.mark.parametrize("specs, value, error, message", [
    ([Interval(Integral, 1, None)], 0, ValueError, "n must be an int >= 1, got 0 (int)"),
    ([Interval(Integral, 1, None)], 1.0, TypeError, "n must be an int >= 1, got 1.0 (float)"),
    ([Interval(Integral, 1, None)], True, TypeError, "n must be an int >= 1, got True (bool)"),
    ([Interval(Integral, 0, 9)], 10, ValueError, "n must be an int in [0, 9], got 10 (int)"),
    ([Interval(Integral, None, -1)], 0, ValueError, "n must be an int <= -1, got 0 (int)"),
    ([Interval(Real, 0, None, closed="neither")], 0.0, ValueError,
     "n must be a finite float > 0, got 0.0 (float)"),
    ([Interval(Real, 0, 1, closed="left")], 1, ValueError,
     "n must be a finite float in [0, 1), got 1 (int)"),
    ([Interval(Real, 0, 1, closed="right")], 0.0, ValueError,
     "n must be a finite float in (0, 1], got 0.0 (float)"),
    ([Interval(Real)], float("nan"), ValueError, "n must be a finite float, got nan (float)"),
    ([Interval(Real)], float("inf"), ValueError, "n must be a finite float, got inf (float)"),
    ([Interval(Real, finite=False)], float("nan"), ValueError,
     "n must be a float (not NaN), got nan (float)"),
    ([Interval(Real, 0.5, None)], "1", TypeError,
     "n must be a finite float >= 0.5, got '1' (str)"),
    ([Options("auto", "min")], "max", ValueError,
     "n must be one of 'auto', 'min', got 'max' (str)"),
    ([Options("auto", "min")], 1, TypeError, "n must be one of 'auto', 'min', got 1 (int)"),
    (["boolean"], 1, TypeError, "n must be a bool, got 1 (int)"),
    (["boolean"], None, TypeError, "n must be a bool, got None (NoneType)"),
    (["str"], "", ValueError, "n must be a non-empty str, got '' (str)"),
    (["path"], b"x", TypeError, "n must be a non-empty str or os.PathLike path, got b'x' (bytes)"),
    (["path"], "", ValueError, "n must be a non-empty str or os.PathLike path, got '' (str)"),
    ([callable], 3, TypeError, "n must be a callable, got 3 (int)"),
    ([np.random.Generator], 3, TypeError, "n must be a Generator, got 3 (int)"),
    (["dtype"], None, TypeError, "n must be 'float32' or 'float64' (or numpy.float32 / "
                                 "numpy.float64), got None (NoneType)"),
    (["dtype"], "int8", ValueError, "n must be 'float32' or 'float64' (or numpy.float32 / "
                                    "numpy.float64), got 'int8' (str)"),
    ([Interval(Integral, 1, None), None], -2, ValueError,
     "n must be an int >= 1 or None, got -2 (int)"),
    ([Interval(Integral, 1, None), None], "2", TypeError,
     "n must be an int >= 1 or None, got '2' (str)"),
])
def test_each_constraint_names_the_argument_the_expected_and_the_received(
        specs, value, error, message):
    with pytest.raises(error) as info:
        v.check(value, "n", specs)
    assert str(info.value) == message


@pytest.mark.parametrize("specs, value, converted", [
    ([Interval(Integral, 1, None)], np.int64(3), 3),
    ([Interval(Real, 0, None)], 2, 2.0),
    ([Interval(Real, 0, None)], np.float32(0.5), 0.5),
    (["boolean"], np.bool_(True), True),
    (["dtype"], "float32", np.dtype(np.float32)),
    (["dtype"], np.float64, np.dtype(np.float64)),
    (["path"], os.path.join("a", "b"), os.path.join("a", "b")),
    ([None, Interval(Integral, 1, None)], None, None),
])
def test_check_returns_the_value_in_its_canonical_type(specs, value, converted):
    result = v.check(value, "n", specs)
    assert result == converted and type(result) is type(converted)


def test_the_owner_prefixes_the_message():
    with pytest.raises(ValueError, match=r"^EarlyStopping: patience must be an int >= 0, "
                                         r"got -1 \(int\)$"):
        dn.callbacks.EarlyStopping(patience=-1)


def test_long_values_are_shortened_in_messages():
    with pytest.raises(TypeError) as info:
        v.check("x" * 1000, "n", ["boolean"])
    assert len(str(info.value)) < 120


def test_n_threads_keeps_its_meaning():
    assert v.check_n_threads(None) is None and v.check_n_threads(-1) == -1
    assert v.check_n_threads(np.int32(2)) == 2
    with pytest.raises(ValueError, match=r"n_threads must be an int in \[1, \d+\], an int <= -1 "
                                         r"or None, got 0 \(int\)"):
        v.check_n_threads(0)
    with pytest.raises(ValueError, match="n_threads"):
        v.check_n_threads(v.MAX_THREADS + 1)
    with pytest.raises(ValueError, match="n_threads"):
        v.check_team_size(-1)


def test_validate_checks_a_whole_table_and_converts():
    table = {"a": [Interval(Integral, 0, None)], "b": ["boolean"]}
    assert v.validate(table, {"a": np.int8(1), "b": np.bool_(False)}) == {"a": 1, "b": False}
    with pytest.raises(TypeError, match="^T: b must be a bool"):
        v.validate(table, {"a": 1, "b": "no"}, "T")


def test_validate_params_decorates_a_function():
    @v.validate_params({"k": [Interval(Integral, 1, None)]})
    def top(values, k=1):
        return values[:k], type(k)

    assert top([3, 2, 1], k=np.int64(2)) == ([3, 2], int)
    with pytest.raises(ValueError, match=r"^top: k must be an int >= 1, got 0 \(int\)$"):
        top([1], 0)
    assert list(top._parameter_constraints) == ["k"]
    with pytest.raises(ValueError, match="unknown parameters"):
        v.validate_params({"nope": ["boolean"]})(lambda a: a)


def test_unknown_constraint_is_a_bug_of_the_table():
    with pytest.raises(ValueError, match="unknown constraint"):
        v.check(1, "n", ["integer"])


# --------------------------------------------------------------------------- one style everywhere
BOOL_ARGUMENTS = [
    ("use_bias", lambda value: dn.Dense(3, use_bias=value)),
    ("nesterov", lambda value: dn.optimizers.SGD(momentum=0.9, nesterov=value)),
    ("decay_bias", lambda value: dn.optimizers.Adam(decay_bias=value)),
    ("amsgrad", lambda value: dn.optimizers.Adam(amsgrad=value)),
    ("centered", lambda value: dn.optimizers.RMSprop(centered=value)),
    ("proximal", lambda value: dn.regularizers.L1L2(l1=0.1, proximal=value)),
    ("staircase", lambda value: dn.schedules.ExponentialDecay(0.1, 0.5, staircase=value)),
    ("restore_best_weights", lambda value: dn.callbacks.EarlyStopping(
        restore_best_weights=value)),
    ("save_best_only", lambda value: dn.callbacks.ModelCheckpoint("m.npz",
                                                                  save_best_only=value)),
    ("append", lambda value: dn.callbacks.CSVLogger("log.csv", append=value)),
    ("shuffle", lambda value: _compiled().fit(np.zeros((4, 2)), [0, 1, 0, 1], shuffle=value,
                                              batch_size=None, verbose=0)),
    ("gradient_norms", lambda value: _compiled().fit(np.zeros((4, 2)), [0, 1, 0, 1],
                                                     gradient_norms=value, batch_size=None,
                                                     verbose=0)),
]


def _compiled():
    net = dn.Sequential([dn.Dense(2)], input_dim=2, seed=0)
    return net.compile(loss="softmax_cross_entropy", optimizer="sgd")


@pytest.mark.parametrize("name, make", BOOL_ARGUMENTS, ids=[b[0] for b in BOOL_ARGUMENTS])
def test_every_bool_argument_has_the_same_message(name, make):
    with pytest.raises(TypeError, match=rf"(^|: ){name} must be a bool, got 1 \(int\)$"):
        make(1)
    make(np.bool_(True))          # numpy bools pass everywhere


DTYPE_ARGUMENTS = [
    ("validation", lambda value: v.check_dtype(value)),
    ("initializers", lambda value: dn.initializers.HeNormal()((2, 2), np.random.default_rng(0),
                                                             value)),
    ("datasets", lambda value: dn.datasets.load_digits(dtype=value)),
    ("estimators", lambda value: dn.MLPClassifier(dtype=value, max_iter=1).fit(
        np.zeros((4, 2)), [0, 1, 0, 1])),
]


@pytest.mark.parametrize("where, make", DTYPE_ARGUMENTS, ids=[d[0] for d in DTYPE_ARGUMENTS])
@pytest.mark.parametrize("bad, error", [(None, TypeError), ("float16", ValueError),
                                        (np.int32, ValueError), (3, TypeError)])
def test_every_dtype_argument_follows_one_rule(where, make, bad, error):
    if where == "estimators" and bad is None:
        pytest.skip("dtype=None means 'the input's dtype' for the estimators")
    if where == "estimators":
        pytest.importorskip("sklearn")
    with pytest.raises(error, match=r"dtype must be (None or )?'float32' or 'float64' \(or "
                                    r"numpy.float32 / numpy.float64\), got"):
        make(bad)


@pytest.mark.parametrize("make, error, message", [
    (lambda: dn.callbacks.ReduceLROnPlateau(factor=1.0), ValueError,
     "ReduceLROnPlateau: factor must be a finite float in (0, 1), got 1.0 (float)"),
    (lambda: dn.schedules.ReduceLROnPlateau(0.1, factor=1.0), ValueError,
     "ReduceLROnPlateau: factor must be a finite float in (0, 1), got 1.0 (float)"),
    (lambda: dn.callbacks.ReduceLROnPlateau(cooldown=-1), ValueError,
     "ReduceLROnPlateau: cooldown must be an int >= 0, got -1 (int)"),
    (lambda: dn.schedules.ReduceLROnPlateau(0.1, cooldown=-1), ValueError,
     "ReduceLROnPlateau: cooldown must be an int >= 0, got -1 (int)"),
    (lambda: dn.callbacks.ReduceLROnPlateau(mode="up"), ValueError,
     "ReduceLROnPlateau: mode must be one of 'auto', 'min', 'max', got 'up' (str)"),
    (lambda: dn.schedules.ReduceLROnPlateau(0.1, mode="up"), ValueError,
     "ReduceLROnPlateau: mode must be one of 'auto', 'min', 'max', got 'up' (str)"),
    (lambda: dn.callbacks.ReduceLROnPlateau(monitor=3), TypeError,
     "ReduceLROnPlateau: monitor must be a non-empty str, got 3 (int)"),
    (lambda: dn.callbacks.EarlyStopping(min_delta=-1), ValueError,
     "EarlyStopping: min_delta must be a finite float >= 0, got -1 (int)"),
    (lambda: dn.callbacks.CSVLogger("log.csv", separator=";;"), ValueError,
     "CSVLogger: separator must be a single character other than a line break, got ';;' "
     "(str)"),
    (lambda: dn.callbacks.LearningRateScheduler(3), TypeError,
     "LearningRateScheduler: schedule must be a callable, got 3 (int)"),
    (lambda: dn.Dense(0), ValueError, "units must be an int >= 1, got 0 (int)"),
    (lambda: dn.Sequential([dn.Dense(2), "relu"]), TypeError,
     "layer must be a Dense or a Dropout, got 'relu' (str)"),
    (lambda: dn.Sequential([dn.Dense(2)], seed=-1), ValueError,
     "seed must be None, an int >= 0 or a Generator, got -1 (int)"),
    (lambda: _compiled().fit(np.zeros((4, 2)), [0, 1, 0, 1], verbose=3), ValueError,
     "verbose must be a bool or one of 0, 1, 2, 'auto', got 3 (int)"),
    (lambda: _compiled().fit(np.zeros((4, 2)), [0, 1, 0, 1], callbacks=[3]), TypeError,
     "callbacks[0] must be a descend Callback (or an object with on_epoch_end etc.), "
     "got 3 (int)"),
    (lambda: dn.optimizers.SGD(momentum=1.0), ValueError,
     "momentum must be a finite float in [0, 1), got 1.0 (float)"),
    (lambda: dn.optimizers.get("sgdd"), ValueError,
     "optimizer must be one of ['adagrad', 'adam', 'adamw', 'rmsprop', 'sgd'] or a descend "
     "Optimizer, got 'sgdd' (str)"),
    (lambda: dn.regularizers.L1L2(l2=-0.5), ValueError,
     "L1L2: l2 must be a finite float >= 0, got -0.5 (float)"),
    (lambda: dn.initializers.VarianceScaling(mode="fan"), ValueError,
     "mode must be one of 'fan_in', 'fan_out', 'fan_avg', got 'fan' (str)"),
    (lambda: dn.initializers.Zeros()((2, True), np.random.default_rng(0)), TypeError,
     "shape must be a non-empty tuple of positive ints, got (2, True) (tuple)"),
    (lambda: dn.datasets.train_test_split(np.zeros((4, 1)), np.zeros(4), test_size=1.5),
     ValueError, "train_test_split: test_size must be an int >= 1 or a finite float in (0, 1), "
                 "got 1.5 (float)"),
])
def test_messages_of_the_converted_modules(make, error, message):
    with pytest.raises(error) as info:
        make()
    assert str(info.value) == message


@pytest.mark.parametrize("cls", [dn.callbacks.EarlyStopping, dn.callbacks.ModelCheckpoint,
                                 dn.callbacks.LearningRateScheduler,
                                 dn.callbacks.ReduceLROnPlateau, dn.callbacks.CSVLogger,
                                 dn.callbacks.TerminateOnNaN, dn.regularizers.L1L2])
def test_declared_constraints_cover_the_constructor(cls):
    import inspect
    parameters = set(inspect.signature(cls).parameters)
    assert set(cls._parameter_constraints) == parameters


def test_compile_takes_keras_metrics_it_logs_and_names_the_others():
    """A new user's Keras habit: compile(..., metrics=["accuracy"]) was a bare
    'unexpected keyword' TypeError. Names the loss logs are accepted (and
    change nothing); others name what is logged; the network is untouched."""
    X, y = np.random.default_rng(0).normal(size=(12, 2)), np.arange(12) % 3
    net = dn.Sequential([dn.Dense(4, activation="relu"), dn.Dense(3)], input_dim=2, seed=0)
    net.compile("softmax_cross_entropy", "adam", metrics=["accuracy"])
    assert set(net.fit(X, y, epochs=1, batch_size=4, verbose=0).history) >= {"loss", "accuracy"}
    with pytest.raises(ValueError, match=r"logs the loss and accuracy every epoch .*"
                                         r"got \['auc'\]"):
        net.compile("softmax_cross_entropy", "sgd", metrics=["accuracy", "auc"])
    # (not Keras's "acc": the history's key, which monitors name, is "accuracy")
    with pytest.raises(ValueError, match=r"got \['acc'\] \('acc' is 'accuracy' here\)$"):
        net.compile("softmax_cross_entropy", "sgd", metrics=["acc"])
    with pytest.raises(ValueError, match=r"\('mean_absolute_error' is 'mae' here\)$"):
        net.compile("mean_squared_error", "sgd", metrics=["r2", "mean_absolute_error"])
    with pytest.raises(ValueError, match=r"logs the loss and mse, mae, r2 .*\['accuracy'\]"):
        net.compile("mean_squared_error", "sgd", metrics=["accuracy"])
    with pytest.raises(TypeError, match="metrics must be a list of str"):
        net.compile("softmax_cross_entropy", "sgd", metrics="accuracy")
    assert isinstance(net.optimizer, dn.optimizers.Adam) and net.epochs_trained == 1
    net.compile("mean_squared_error", "sgd", metrics=("mae", "r2"))


# --------------------------------------------------------------------------- masked arrays
def _digits_net():
    X, y = dn.datasets.load_digits()
    net = dn.Sequential([dn.Dense(8, activation="relu"), dn.Dense(10)], input_dim=64, seed=0)
    return X[:100], y[:100], net.compile(loss="softmax_cross_entropy", optimizer="sgd")


def _masked(array):
    # values under the mask that would wreck training if used: np.asarray kept
    # them and dropped the mask (the loss of a fit on such X was 1.4e12)
    masked = np.ma.masked_array(np.array(array, dtype=np.float64), mask=False)
    masked[:3] = np.ma.masked
    masked.data[:3] = 1e6
    return masked


@pytest.mark.parametrize("call, name", [
    (lambda net, X, y: net.fit(_masked(X), y, verbose=0), "X"),
    (lambda net, X, y: net.fit(X, _masked(y), verbose=0), "y"),
    (lambda net, X, y: net.fit(X, y, sample_weight=_masked(np.ones(len(y))), verbose=0),
     "sample_weight"),
    (lambda net, X, y: net.fit(X, y, validation_data=(_masked(X), y), verbose=0),
     "validation_data[0]"),
    (lambda net, X, y: net.fit(X, y, validation_data=(X, _masked(y)), verbose=0),
     "validation_data[1]"),
    (lambda net, X, y: net.fit(X, y, verbose=0, validation_data=(
        X, y, _masked(np.ones(len(y))))), "validation_data[2]"),
    (lambda net, X, y: net.partial_fit(_masked(X), y), "X"),
    (lambda net, X, y: net.train_on_batch(X, _masked(y)), "y"),
    (lambda net, X, y: net.evaluate(_masked(X), y), "X"),
    (lambda net, X, y: net.evaluate(X, _masked(y)), "y"),
    (lambda net, X, y: net.predict(_masked(X)), "X"),
    (lambda net, X, y: dn.datasets.train_test_split(_masked(X), y, seed=0), "X"),
    (lambda net, X, y: dn.datasets.train_test_split(X, _masked(y), seed=0), "y"),
])
def test_masked_arrays_are_refused_naming_the_argument(call, name):
    X, y, net = _digits_net()
    with pytest.raises(TypeError) as info:
        call(net, X, y)
    assert str(info.value) == (
        f"{name} must be an array without a mask, got a numpy.ma.MaskedArray of shape "
        f"{(100, 64) if name.endswith(('X', '[0]')) else (100,)} (descend would use the "
        f"values under its mask); fill or drop the masked entries first, e.g. "
        f"{name}.filled(value), or np.ma.compress_rows({name}) to drop the rows of a 2-D "
        "array")
    assert net.epochs_trained == 0 and not net.history


def test_masked_arrays_are_refused_by_the_estimators():
    pytest.importorskip("sklearn")
    X, y, _ = _digits_net()
    clf = dn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0, n_threads=1)
    for args, name in (((_masked(X), y), "X"), ((X, _masked(y)), "y")):
        with pytest.raises(TypeError, match=rf"^{name} must be an array without a mask"):
            clf.fit(*args)
        assert not hasattr(clf, "net_")
    reg = dn.MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0, n_threads=1)
    with pytest.raises(TypeError, match=r"^y must be an array without a mask"):
        reg.partial_fit(X, _masked(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")    # ConvergenceWarning of max_iter=2
        clf.fit(X, y)
    for method in (clf.predict, clf.predict_proba):
        with pytest.raises(TypeError, match=r"^X must be an array without a mask"):
            method(_masked(X))
    # filled, the same data is accepted (what the message says to do)
    assert clf.predict(_masked(X).filled(0.0)).shape == (100,)


# --------------------------------------------------------------------------- output paths
def test_a_symbolic_link_to_nothing_is_not_climbed_past(tmp_path):
    # exists() is False for such a link: the check went on to its writable parent,
    # and makedirs raised FileExistsError after the run
    link = tmp_path / "dl"
    link.symlink_to(tmp_path / "gone")
    reason = f"{str(link)!r} is a symbolic link to {str(tmp_path / 'gone')!r}, which does not exist"
    for path in (link, link / "results", link / "a" / "b"):
        assert v.unwritable_directory(path) == reason
        with pytest.raises(ValueError) as info:
            v.check_output_directory(path, "out")
        assert str(info.value) == (f"out must be a directory that can be created or written, "
                                   f"got {str(path)!r} ({reason})")
    # a link to a directory is that directory
    (tmp_path / "real").mkdir()
    (tmp_path / "ok").symlink_to(tmp_path / "real")
    assert v.unwritable_directory(tmp_path / "ok" / "sub") is None


def test_check_output_file_names_the_directory_it_cannot_write(tmp_path):
    link = tmp_path / "dl"
    link.symlink_to("gone")     # relative: read as the link reads it
    away = tmp_path / "away"
    away.symlink_to(tmp_path / "nowhere" / "x")
    (tmp_path / "file").write_text("x")
    cases = [
        (link / "m.npz", True, f"{str(link)!r} is a symbolic link to 'gone', which does not exist"),
        (tmp_path / "file" / "m.npz", True, f"{str(tmp_path / 'file')!r} is a file"),
        (tmp_path / "missing" / "log.csv", False,
         f"{str(tmp_path / 'missing')!r} does not exist"),
        # open() writes through a link: to nothing in a directory that is missing
        (away, True, f"{str(away)!r} is a symbolic link to "
                     f"{str(tmp_path / 'nowhere' / 'x')!r}, whose directory does not exist"),
    ]
    for path, makedirs, reason in cases:
        with pytest.raises(ValueError) as info:
            v.check_output_file(path, "filename", "Owner", makedirs=makedirs)
        can = "created or written" if makedirs else "written"
        assert str(info.value) == (f"Owner: filename must be a file in a directory that can "
                                   f"be {can}, got {str(path)!r} ({reason})")
    # what can be written: a missing directory the writer makes, and a link to a
    # file not made yet in a directory that exists
    new = str(tmp_path / "new" / "m.npz")
    assert v.check_output_file(new, "filepath", makedirs=True) == new
    assert v.check_output_file(link, "filename") == str(link)


# --------------------------------------------------------------------------- scipy.sparse
def test_sparse_arguments_other_than_X_are_named_as_sparse():
    # np.asarray made a 0-d object array of them: "got ndarray array(<Compressed
    # Sparse Row ...>, dtype=object)", and train_test_split's "not scalars"
    sp = pytest.importorskip("scipy.sparse")
    X, y, net = _digits_net()
    Y = sp.csr_array(np.eye(10)[y])
    W = sp.csr_matrix(np.ones((1, 100)))

    def message(name, expected, value):
        return (f"{name} must be {expected}, got a scipy.sparse {type(value).__name__} of "
                f"shape {value.shape}, which is not supported here: pass a dense array "
                f"({name}.toarray())")

    cases = [
        (lambda: net.fit(X, Y, verbose=0), message("y", "labels (1-D) or targets (2-D)", Y)),
        (lambda: net.evaluate(X, Y), message("y", "labels (1-D) or targets (2-D)", Y)),
        (lambda: net.fit(X, y, validation_data=(X, Y), verbose=0),
         message("validation_data[1]", "labels (1-D) or targets (2-D)", Y)),
        (lambda: net.fit(X, y, sample_weight=W, verbose=0),
         message("sample_weight", "an array of 100 non-negative weights", W)),
        (lambda: dn.datasets.train_test_split(sp.csr_matrix(X), y, seed=0),
         message("X", "an array with one row per sample", sp.csr_matrix(X))),
        (lambda: dn.datasets.train_test_split(X, Y, seed=0),
         message("y", "an array with one entry per sample", Y)),
    ]
    for call, expected in cases:
        with pytest.raises(TypeError) as info:
            call()
        assert str(info.value) == expected
    assert net.epochs_trained == 0


# --------------------------------------------------------------------------- labels beyond int64
def test_int_labels_beyond_64_bits_are_refused_naming_y(tmp_path):
    # they fitted, and save raised a bare OverflowError ("Python int too large to
    # convert to C long"); the estimators said "Unknown label type: unknown"
    X, y, net = _digits_net()
    labels = np.array([2**70 + i for i in range(10)], dtype=object)[y]
    message = ("y has the label 1180591620717411303424, an int beyond the 64-bit range "
               "[-9223372036854775808, 9223372036854775807] that numpy and a saved model "
               "hold labels in; use smaller ints or strings as labels")
    with pytest.raises(ValueError) as info:
        net.fit(X, labels, verbose=0)
    assert str(info.value) == message
    assert net.classes_ is None and net.epochs_trained == 0
    # the ends of the range are labels like any other, and come back from a file
    edges = np.array([-2**63, 2**63 - 1] * 50, dtype=object)
    net = dn.Sequential([dn.Dense(2)], input_dim=64, seed=0).compile(
        loss="softmax_cross_entropy", optimizer="sgd")
    net.fit(X, edges, verbose=0)
    assert dn.load(net.save(tmp_path / "m.npz")).classes_.tolist() == [-2**63, 2**63 - 1]
    pytest.importorskip("sklearn")
    with pytest.raises(ValueError) as info:
        dn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=1).fit(X, labels)
    assert str(info.value) == message
