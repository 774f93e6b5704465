"""Adversarial inputs found by trying to break the day's changes: each test
names the input, and asserts the documented error (a ValueError/TypeError
naming the argument, raised before any state changes) instead of what the
code did before its fix."""
import io as stdio
import os
import re
import zipfile

import numpy as np
import pytest

import descend as dn


def small_net(optimizer=None, dtype="float32"):
    net = dn.Sequential([dn.Dense(4, activation="relu"), dn.Dense(2)], input_dim=3,
                        seed=0, dtype=dtype, n_threads=1)
    net.compile("softmax_cross_entropy", optimizer or dn.optimizers.Adam(0.01))
    return net


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 3)), rng.integers(0, 2, 40)


# ------------------------------------------------------------- validation
@pytest.mark.parametrize("value", [10**400, -(10**400)], ids=["+10**400", "-10**400"])
def test_an_int_too_large_for_a_float_is_a_value_error_naming_the_argument(value):
    # was: OverflowError 'int too large to convert to float' from float(value)
    with pytest.raises(ValueError, match=r"learning_rate must be .*got 1000"
                       if value > 0 else r"learning_rate must be .*got -1000"):
        dn.optimizers.SGD(learning_rate=value)
    with pytest.raises(ValueError, match="ReduceLROnPlateau: min_lr must be"):
        dn.callbacks.ReduceLROnPlateau(min_lr=value)


def test_a_float_interval_without_finiteness_still_refuses_an_overflowing_int():
    from numbers import Real
    from descend._validation import Interval, check
    with pytest.raises(ValueError, match="x must be a float"):
        check(10**400, "x", [Interval(Real, None, None, finite=False)])


# ------------------------------------------------------------- fit arguments
@pytest.mark.parametrize("validation_data", [
    lambda X, y: (X,), lambda X, y: (X, y, None, 1), lambda X, y: (X, y, np.ones(3), 1)])
def test_validation_data_of_the_wrong_length_says_so(data, validation_data):
    # was: 'validation_data must be a tuple (X_val, y_val), got tuple'
    # (a third element, the validation sample weights, is Keras' form: allowed)
    X, y = data
    net = small_net()
    before = [w.copy() for w in net.get_weights()]
    with pytest.raises(ValueError, match=r"validation_data must be a tuple \(X_val, y_val\) "
                                         r"or \(X_val, y_val, sample_weight_val\), got a "
                                         r"tuple of length \d"):
        net.fit(X, y, epochs=1, verbose=0, validation_data=validation_data(X, y))
    assert net.epochs_trained == 0 and net.optimizer.iterations == 0
    for old, new in zip(before, net.get_weights()):
        np.testing.assert_array_equal(old, new)


# ------------------------------------------------------------- state protocol
def test_a_parameter_given_as_a_list_is_refused_as_not_an_array(data):
    # was: "parameter 'layers.1.bias' has shape (2,), expected (2,)"
    X, y = data
    net = small_net()
    net.fit(X, y, epochs=1, verbose=0)
    state = net.state_dict()
    before = [w.copy() for w in net.get_weights()]
    state["parameters"]["layers.1.bias"] = state["parameters"]["layers.1.bias"].tolist()
    with pytest.raises(ValueError, match=r"parameter 'layers.1.bias' must be a numpy array "
                                         r"\(shape \(2,\), dtype float32\), got list"):
        net.load_state_dict(state)
    for old, new in zip(before, net.get_weights()):
        np.testing.assert_array_equal(old, new)


# ------------------------------------------------------------- files
def _edit_config(path, edit):
    with zipfile.ZipFile(path) as z:
        members = {name: z.read(name) for name in z.namelist()}
    buffer = stdio.BytesIO()
    np.save(buffer, np.array(edit(str(np.load(stdio.BytesIO(members["config.npy"]))))))
    members["config.npy"] = buffer.getvalue()
    with zipfile.ZipFile(path, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)


def test_a_config_nested_too_deeply_for_the_json_parser_is_a_value_error(tmp_path, data):
    # was: RecursionError from json.loads
    X, y = data
    path = tmp_path / "m.npz"
    net = small_net()
    net.fit(X, y, epochs=1, verbose=0)
    net.save(path)
    _edit_config(path, lambda text: "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="entry 'config' is not valid JSON"):
        dn.load(path)


def test_saving_into_a_missing_directory_names_the_path_not_the_temporary(tmp_path, data):
    # was: FileNotFoundError naming '.x.npz.descend-save-<host>-<pid>-<hex>.tmp'
    net = small_net()
    net.build(3)
    target = tmp_path / "missing" / "x.npz"
    with pytest.raises(FileNotFoundError) as info:
        net.save(target)
    assert info.value.filename == str(target)
    assert "descend-save" not in str(info.value)


# ------------------------------------------------------------- domain loaders
_CARD_HEADER = ",".join(["Time"] + [f"V{i}" for i in range(1, 29)] + ["Amount", "Class"])


def _card_row(value="0.5", label="0"):
    return ",".join(["1"] + [value] * 28 + ["10", label])


def _card_dir(tmp_path, text):
    (tmp_path / "creditcard.csv").write_text(text)
    return tmp_path


@pytest.mark.parametrize("kwargs, error, match", [
    ({"dtype": "int32"}, ValueError, "load_creditcard: dtype must be 'float32' or 'float64'"),
    ({"dtype": "float16"}, ValueError, "load_creditcard: dtype must be"),
    ({"download": "no"}, TypeError, "load_creditcard: download must be a bool"),
    ({"timeout": float("nan")}, ValueError, "load_creditcard: timeout must be"),
])
def test_load_creditcard_checks_its_arguments(tmp_path, kwargs, error, match):
    # was: dtype='int32' truncated every feature to an int, download='no' downloaded
    directory = _card_dir(tmp_path, _CARD_HEADER + "\n" + _card_row() + "\n")
    with pytest.raises(error, match=match):
        dn.datasets.load_creditcard(directory, **{"download": False, **kwargs})


def test_load_creditcard_refuses_a_data_home_that_is_not_a_path():
    # was: TypeError 'expected str, bytes or os.PathLike object, not int' from pathlib
    with pytest.raises(TypeError, match="load_creditcard: data_home must be"):
        dn.datasets.load_creditcard(3, download=False)


@pytest.mark.parametrize("text, match", [
    ("", "empty"),                                                       # was: IndexError
    (_CARD_HEADER + "\n", "no rows"),               # was: 'rows of 1 values, expected 31'
    (_CARD_HEADER + "\n" + _card_row("nan") + "\n", "NaN or infinite"),   # was: returned NaN
    (_CARD_HEADER + "\n" + _card_row("inf") + "\n", "NaN or infinite"),   # was: returned inf
    (_CARD_HEADER + "\n" + _card_row("1e300") + "\n", "NaN or infinite"),  # float32: inf
])
def test_load_creditcard_refuses_a_malformed_file_with_a_value_error(tmp_path, text, match):
    directory = _card_dir(tmp_path, text)
    with pytest.raises(ValueError, match=match) as info:
        dn.datasets.load_creditcard(directory, download=False)
    assert "creditcard.csv" in str(info.value)


def _newsgroups_dir(tmp_path, posts):
    import tarfile
    with tarfile.open(tmp_path / "20news-bydate.tar.gz", "w:gz") as archive:
        for name, text in posts.items():
            content = text.encode()
            member = tarfile.TarInfo(name)
            member.size = len(content)
            archive.addfile(member, stdio.BytesIO(content))
    return tmp_path


_POSTS = {"20news-bydate-train/sci.med/1": "From: a\n\nthe doctor said hello",
          "20news-bydate-train/alt.atheism/2": "From: b\n\nno god said hello",
          "20news-bydate-test/sci.med/3": "From: c\n\ndoctor"}


@pytest.mark.parametrize("kwargs, error, match", [
    ({"categories": "sci.med"}, TypeError, "load_newsgroups: categories must be"),
    ({"categories": ["sci.med", 3]}, TypeError, r"categories\[1\] must be a non-empty str"),
    ({"n_features": 0}, ValueError, "load_newsgroups: n_features must be an int >= 1"),
    ({"n_features": True}, TypeError, "load_newsgroups: n_features must be an int"),
    ({"dtype": "int8"}, ValueError, "load_newsgroups: dtype must be"),
    ({"verify": "yes"}, TypeError, "load_newsgroups: verify must be a bool"),
    ({"timeout": -1.0}, ValueError, "load_newsgroups: timeout must be"),
])
def test_load_newsgroups_checks_its_arguments(tmp_path, kwargs, error, match):
    # was: a str of categories read as its characters, n_features=0 gave X of
    # 0 columns, True one column, dtype='int8' rounded every TF-IDF value to 0
    directory = _newsgroups_dir(tmp_path, _POSTS)
    with pytest.raises(error, match=match):
        dn.datasets.load_newsgroups(directory, **{"download": False, "verify": False,
                                                  **kwargs})


def test_load_newsgroups_reads_a_well_formed_test_archive(tmp_path):
    X, y, X_test, y_test, names = dn.datasets.load_newsgroups(
        _newsgroups_dir(tmp_path, _POSTS), download=False, verify=False,
        categories=("sci.med", "alt.atheism"))
    assert names == ["alt.atheism", "sci.med"]
    np.testing.assert_array_equal(y, [0, 1])     # archive-name order: alt.atheism/2 first
    assert X.shape == (2, 6) and X_test.shape == (1, 6)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-6)


def test_load_newsgroups_refuses_an_archive_that_is_not_gzip_with_a_value_error(tmp_path):
    # was: tarfile.ReadError 'not a gzip file' (verify=False skips the SHA-256)
    (tmp_path / "20news-bydate.tar.gz").write_bytes(b"not a tar archive")
    with pytest.raises(ValueError, match="20news-bydate.tar.gz.*not a readable"):
        dn.datasets.load_newsgroups(tmp_path, download=False, verify=False)


def test_load_newsgroups_refuses_posts_without_a_single_word(tmp_path):
    # was: X of shape (2, 0) returned
    directory = _newsgroups_dir(tmp_path, {"20news-bydate-train/sci.med/1": "From: a\n\n!!",
                                           "20news-bydate-train/alt.atheism/2": "From: b\n\n"})
    with pytest.raises(ValueError, match="no word"):
        dn.datasets.load_newsgroups(directory, download=False, verify=False, categories=None)


# ------------------------------------------------------------- plateau and state
def test_a_model_whose_plateau_cuts_reached_zero_saves_and_loads(tmp_path):
    # cut after every epoch by 1e-10 (min_lr=0): the rate underflows to 0.0, and with it
    # learning_rate_scale; was: save wrote scale 0.0 and load refused it ('must be > 0')
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 3)), rng.integers(0, 2, 50)
    net = small_net(dn.optimizers.SGD(dn.schedules.ExponentialDecay(0.1, 0.99)))
    cut = dn.callbacks.ReduceLROnPlateau(monitor="loss", patience=0, factor=1e-10,
                                         min_delta=1e9)
    net.fit(X, y, epochs=40, verbose=0, callbacks=[cut])
    assert net.optimizer.learning_rate == 0.0 and net.optimizer.learning_rate_scale == 0.0
    net.load_state_dict(net.state_dict())
    net.save(tmp_path / "m.npz")
    loaded = dn.load(tmp_path / "m.npz")
    assert loaded.optimizer.learning_rate_scale == 0.0
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))


@pytest.mark.parametrize("scale", [-1.0, float("nan"), float("inf")])
def test_a_negative_or_non_finite_learning_rate_scale_is_still_refused(scale):
    net = small_net()
    net.build(3)
    state = net.state_dict()
    state["optimizer"]["learning_rate_scale"] = scale
    with pytest.raises(ValueError, match="learning_rate_scale must be a finite float >= 0"):
        net.load_state_dict(state)


# ------------------------------------------------------------- callbacks
def test_a_batch_hook_assigned_on_the_instance_is_called(data):
    # a Callback whose on_train_batch_end is set on the instance (as Keras'
    # LambdaCallback does); was: never called, as the check looked at the class only
    X, y = data
    seen = []
    callback = dn.callbacks.Callback()
    callback.on_train_batch_end = lambda batch, logs=None: seen.append(batch)
    small_net().fit(X, y, epochs=1, batch_size=10, verbose=0, callbacks=[callback],
                    steps_per_execution=1)
    assert seen == [0, 1, 2, 3]


def test_an_error_raised_by_an_instance_batch_hook_rolls_the_epoch_back(data):
    X, y = data
    net = small_net()
    before = [w.copy() for w in net.get_weights()]
    callback = dn.callbacks.Callback()

    def fail(batch, logs=None):
        if batch == 2:
            raise RuntimeError("from the hook")
    callback.on_train_batch_end = fail
    with pytest.raises(RuntimeError, match="from the hook"):
        net.fit(X, y, epochs=1, batch_size=10, verbose=0, callbacks=[callback],
                steps_per_execution=1)
    assert net.epochs_trained == 0 and net.optimizer.iterations == 0
    for old, new in zip(before, net.get_weights()):
        np.testing.assert_array_equal(old, new)


# ------------------------------------------------------------- names
@pytest.mark.parametrize("make, owner", [
    (lambda name: dn.Dense(3, name=name), "Dense"),
    (lambda name: dn.layers.Dropout(0.5, name=name), "Dropout"),
    (lambda name: dn.Sequential([dn.Dense(2)], input_dim=3, name=name), "Sequential"),
])
@pytest.mark.parametrize("name, error", [
    (float("nan"), TypeError), (True, TypeError), ([1], TypeError), (1 + 0j, TypeError),
    (np.array(1.0), TypeError), ("", ValueError)])
def test_a_name_must_be_a_non_empty_str_or_none(make, owner, name, error):
    # was: accepted as is (a NaN or complex name then failed at save, far from its cause)
    with pytest.raises(error, match=f"{owner}: name must be None or a non-empty str"):
        make(name)
    assert make("hidden").name == "hidden" and make(None).name is None


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (1.5, TypeError), (True, TypeError),
                                         ("0", TypeError)])
def test_train_test_split_names_a_bad_seed(seed, error):
    # was: numpy's 'expected non-negative integer' (no argument named); 1.5 and True passed
    with pytest.raises(error, match="train_test_split: seed must be None, an int >= 0"):
        dn.datasets.train_test_split(np.zeros((10, 2)), np.arange(10) % 2, seed=seed)


def test_set_weights_refuses_values_that_overflow_the_network_dtype():
    # was: float64 1e300 passed the finiteness check, then became inf in the float32 kernel
    net = small_net()
    net.build(3)
    before = [w.copy() for w in net.get_weights()]
    weights = [w.astype(np.float64) for w in before]
    weights[2][0, 0] = 1e300
    with pytest.raises(ValueError, match=r"weights\[2\] .*NaN or infinite .*float32"):
        net.set_weights(weights)
    for old, new in zip(before, net.get_weights()):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("weights", [None, 3])
def test_set_weights_names_a_non_list_argument(weights):
    # was: "TypeError: 'NoneType' object is not iterable"
    net = small_net()
    net.build(3)
    with pytest.raises(TypeError, match="weights must be a list of arrays"):
        net.set_weights(weights)


@pytest.mark.parametrize("steps", [2**31, 10**20])
def test_steps_per_execution_beyond_a_c_int_calls_batch_hooks_once_an_epoch(data, steps):
    # was: OverflowError 'value too large to convert to int' from the compiled loop
    # (only with a batch hook: then the count reaches the loop's progress interval)
    X, y = data
    seen = []
    callback = dn.callbacks.Callback()
    callback.on_train_batch_end = lambda batch, logs=None: seen.append(batch)
    net = small_net()
    net.fit(X, y, epochs=2, batch_size=10, verbose=0, callbacks=[callback],
            steps_per_execution=steps)
    assert seen == [3, 3] and net.epochs_trained == 2


@pytest.mark.parametrize("config, received", [
    ({"layers": "x"}, r"a dict whose 'layers' is a str"),
    ({"input_dim": 3}, r"a dict without 'layers'"),
    (None, r"NoneType")])
def test_from_config_says_what_is_wrong_with_the_config(config, received):
    # was: "the config must be a dict with a 'layers' list, got dict" for the first two
    with pytest.raises(ValueError, match="the config must be a dict with a 'layers' list, "
                                         "got " + received):
        dn.Sequential.from_config(config)


def test_csv_logger_refuses_a_directory_before_fit(tmp_path, data):
    # was: IsADirectoryError from on_train_begin, after fit had built the network
    with pytest.raises(ValueError, match="CSVLogger: filename .* is a directory"):
        dn.callbacks.CSVLogger(tmp_path)


# ------------------------------------------------- the typed layer contract
@pytest.mark.parametrize("make, match", [
    # was: accepted; the momentum step then wrote the velocity over the weights
    (lambda k, b: dict(kernel=k, bias=b, kernel_state=[k]),
     r"kernel and kernel_state\[0\] share memory"),
    (lambda k, b: dict(kernel=k, bias=b, bias_state=[b[::1]]),
     r"bias and bias_state\[0\] share memory"),
    (lambda k, b: (lambda s: dict(kernel=k, bias=b, kernel_state=[s, s]))(np.zeros_like(k)),
     r"kernel_state\[0\] and kernel_state\[1\] share memory"),
    # was: accepted; a layer without inputs or units trained nothing
    (lambda k, b: dict(kernel=np.zeros((0, 3)), bias=b), r"kernel must have no empty"),
    (lambda k, b: dict(kernel=np.zeros((4, 0)), bias=None), r"kernel must have no empty"),
])
def test_a_layer_spec_refuses_shared_or_empty_arrays(make, match):
    from descend._contract import LayerSpec
    kwargs = make(np.zeros((4, 3)), np.zeros(3))
    with pytest.raises(ValueError, match=match):
        LayerSpec(kwargs.pop("kernel"), kwargs.pop("bias"), **kwargs)


@pytest.mark.parametrize("kwargs, error, match", [
    # was: TypeError "'int' object is not iterable", naming nothing
    ({"kernel_state": 5}, TypeError, r"LayerSpec: kernel_state must be a sequence .* got 5 \(int\)"),
    # was: the array's rows taken as 1-D state arrays ("must be 2-D")
    ({"kernel_state": np.zeros((4, 3))}, TypeError, r"kernel_state must be a sequence"),
    # was: 3.0 accepted as RELU; "relu" and None a ValueError; an array a TypeError
    # naming nothing ("only 0-dimensional arrays can be converted")
    ({"activation": 3.0}, TypeError, r"LayerSpec: activation must be an int, got 3.0"),
    ({"activation": "relu"}, TypeError, r"activation must be an int, got 'relu' \(str\)"),
    ({"activation": np.array([3])}, TypeError, r"activation must be an int, got array"),
    ({"activation": 99}, ValueError, r"activation must be an Activation code, got 99"),
])
def test_a_layer_spec_names_a_bad_state_or_activation(kwargs, error, match):
    from descend._contract import LayerSpec
    with pytest.raises(error, match=match):
        LayerSpec(np.zeros((4, 3)), np.zeros(3), **kwargs)


def test_a_layer_spec_takes_numpy_integer_codes():
    from descend._contract import Activation, LayerSpec
    spec = LayerSpec(np.zeros((4, 3)), None, activation=np.int64(Activation.RELU))
    assert spec.activation == Activation.RELU and type(spec.activation) is int


# ------------------------------------------------------ MNIST's data_home
def test_load_mnist_refuses_a_data_home_that_is_a_file(tmp_path):
    # was: FileExistsError from mkdir, once the download started
    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    with pytest.raises(ValueError, match="data_home must be a directory, got .*afile.* file"):
        dn.datasets.load_mnist(afile, timeout=0.01, mirrors=[])


@pytest.mark.parametrize("kwargs, error, match", [
    # was: '' taken as the current directory; 123 a TypeError naming nothing
    ({"data_home": ""}, ValueError, "load_mnist: data_home must be None or a non-empty str"),
    ({"data_home": 123}, TypeError, r"load_mnist: data_home must be .* got 123 \(int\)"),
    # was: a str iterated character by character as mirrors ('f/train-images...')
    ({"mirrors": "file:///tmp/"}, TypeError, "load_mnist: mirrors must be None or a list"),
    # was: AttributeError ('int' object has no attribute 'rstrip')
    ({"mirrors": [1]}, TypeError, r"load_mnist: mirrors\[0\] must be a non-empty str"),
])
def test_load_mnist_names_a_bad_data_home_or_mirror(tmp_path, kwargs, error, match):
    kwargs.setdefault("data_home", tmp_path / "mnist")
    with pytest.raises(error, match=match):
        dn.datasets.load_mnist(timeout=0.01, **kwargs)


def test_load_mnist_into_a_directory_that_cannot_be_created_says_where_to_copy(
        tmp_path, monkeypatch):
    # was: FileNotFoundError / PermissionError from mkdir (a traceback from the CLI).
    # mkdir refused as in a read-only parent (root may write anywhere; a file
    # in the way is data_home's ValueError, tests/test_datasets.py)
    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))
    monkeypatch.setattr(dn.datasets.Path, "mkdir", refused)
    with pytest.raises(dn.datasets.DatasetNotFoundError,
                       match=r"cannot be downloaded there .*copy the four MNIST files"):
        dn.datasets.load_mnist(tmp_path / "mnist", mirrors=["http://127.0.0.1:9"],
                               timeout=0.01)


@pytest.mark.parametrize("command", ["demo", "bench", "experiments"])
@pytest.mark.parametrize("value", ["", "afile"])
def test_the_cli_refuses_a_data_home_that_is_a_file_or_empty(tmp_path, capsys, command, value):
    # was (demo --dataset mnist): a FileExistsError traceback
    from descend.__main__ import main
    if value:
        value = str(tmp_path / value)
        open(value, "w").close()
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--data-home", value])
    assert exit_info.value.code == 2
    assert "argument --data-home: expected a directory, got" in capsys.readouterr().err


# ------------------------------------------------------------------ plans
@pytest.mark.parametrize("plan, match", [
    # was: OverflowError ("value too large to convert to int") from the runner,
    # after fit had built the network and its optimizer
    ({"sample_rows": 2**31}, r"plan\['sample_rows'\] must be an int in \[1, \d+\]"),
    ({"kernel_rows": [2**40, 1]}, r"plan\['kernel_rows'\] must be an int in \[1, \d+\]"),
    # was: ValueError "dictionary update sequence element #0 has length 1"
    ("fast", r"plan must be None or a dict with keys among"),
    # was: refused by the runner only, after the network was built
    ({"kernel_rows": [1, 1, 1]}, r"plan\['kernel_rows'\] must hold one int per Dense layer \(2\)"),
])
def test_a_bad_pinned_plan_is_refused_before_fit_builds_anything(data, plan, match):
    net = dn.Sequential([dn.Dense(4, activation="relu"), dn.Dense(2)], seed=0)
    net.compile("softmax_cross_entropy", "sgd")
    net.plan = plan
    with pytest.raises(ValueError, match=match):
        net.fit(*data, epochs=1, verbose=0)
    assert not net.built and net.plan_ is None


@pytest.mark.parametrize("pinned, field", [
    # was: loaded; the next fit died of an OverflowError
    ({"sample_rows": 10**30}, "sample_rows"),
    # was: loaded; the next fit on two threads segfaulted (tests/test_breaker2.py)
    ({"kernel_rows": [2**31 - 1, 4]}, "kernel_rows")])
def test_a_model_file_with_a_plan_beyond_a_c_int_is_refused_on_load(tmp_path, data, pinned,
                                                                    field):
    net = small_net()
    net.fit(*data, epochs=1, verbose=0)
    path = tmp_path / "model.npz"
    net.save(path)
    from test_adversarial import _rewrite
    _rewrite(path, path, lambda arrays, config: config.update(
        plan={"pinned": pinned, "used": None}))
    with pytest.raises(ValueError, match=rf"\['pinned'\]\['{field}'\] must be an int in"):
        dn.load(path)


@pytest.mark.parametrize("text, match", [
    # was: silently False
    ("sparse_input=maybe", r"DESCEND_PLAN\['sparse_input'\] must be a bool or None, got 'maybe'"),
    # was: "invalid literal for int() with base 10: 'abc'", naming nothing
    ("sample_rows=abc", r"DESCEND_PLAN\['sample_rows'\] must be an int"),
    ('{"sample_rows": "x"}', r"DESCEND_PLAN\['sample_rows'\] must be an int"),
    # was: OverflowError from the runner
    ("sample_rows=99999999999999", r"DESCEND_PLAN\['sample_rows'\] must be an int in \[1, "),
    # was: a bare JSONDecodeError
    ("{", "DESCEND_PLAN is not valid JSON"),
    ("kernel_rows=1", r"DESCEND_PLAN\['kernel_rows'\] must hold one int per Dense layer"),
])
def test_a_bad_descend_plan_variable_is_named_before_fit_builds_anything(monkeypatch, data,
                                                                          text, match):
    monkeypatch.setenv("DESCEND_PLAN", text if text != "kernel_rows=1" else
                       '{"kernel_rows": [1, 1, 1]}')
    net = dn.Sequential([dn.Dense(4, activation="relu"), dn.Dense(2)], seed=0)
    net.compile("softmax_cross_entropy", "sgd")
    with pytest.raises(ValueError, match=match):
        net.fit(*data, epochs=1, verbose=0)
    assert not net.built


# ------------------------------------------------------------ memmap input
@pytest.mark.parametrize("dtype", [np.complex64, "U3", "M8[s]"])
def test_a_memmap_that_does_not_hold_real_numbers_is_refused_by_fit_and_evaluate(tmp_path, data,
                                                                                 dtype):
    # was (complex): trained and evaluated on the real part, with a ComplexWarning
    # per chunk; predict already refused it
    X, y = data
    X_mm = np.memmap(tmp_path / "X.dat", dtype=dtype, mode="w+", shape=X.shape)
    net = small_net()
    before = net.get_weights()
    for call in (lambda: net.fit(X_mm, y, epochs=1, verbose=0),
                 lambda: net.evaluate(X_mm, y), lambda: net.predict(X_mm)):
        with pytest.raises(TypeError, match="X must hold real numbers, got dtype"):
            call()
    for a, b in zip(before, net.get_weights()):
        np.testing.assert_array_equal(a, b)


# -------------------------------------------------------- TerminateOnNaN
class _StopFlag:
    stop_training = False


@pytest.mark.parametrize("loss, stops", [
    # was: ignored (float() of an array raises TypeError in numpy 2), training went on
    (np.array([np.nan]), True), (np.array([1.0, np.nan]), True), ([float("nan")], True),
    (complex(float("nan"), 0.0), True),
    # was: OverflowError out of the callback
    (10**400, False),
    ("nan", True), ("abc", False), (None, False), (0.5, False), ([[1], [1, 2]], False),
])
def test_terminate_on_nan_reads_array_and_complex_losses_of_a_custom_loop(loss, stops):
    callback = dn.callbacks.TerminateOnNaN(verbose=0)
    callback.set_model(_StopFlag())
    callback.on_epoch_end(0, {"loss": loss})
    assert callback.model.stop_training is stops
    assert callback.terminated_epoch == (0 if stops else None)


# ------------------------------------------------------------ experiments
@pytest.mark.parametrize("kwargs, error, match", [
    # was: FileExistsError, after the whole run (an hour at the full size)
    ({"out": "AFILE"}, ValueError, "out must be a directory, got .* file"),
    # was: '' wrote NAME.md and NAME.png into the current directory
    ({"out": ""}, ValueError, "out must be a non-empty str or os.PathLike path, got ''"),
    # was: any truthy value taken as True
    ({"verbose": "yes"}, TypeError, "verbose must be a bool, got 'yes'"),
    # was: ValueError for a type error
    ({"seeds": 2.5}, TypeError, r"seeds must be an int >= 1, got 2.5 \(float\)"),
    ({"seeds": True}, TypeError, r"seeds must be an int >= 1, got True \(bool\)"),
])
def test_experiments_run_checks_its_arguments_before_running(tmp_path, kwargs, error, match):
    from descend import experiments
    if kwargs.get("out") == "AFILE":
        kwargs["out"] = str(tmp_path / "afile")
        open(kwargs["out"], "w").close()
    with pytest.raises(error, match=match):
        experiments.run("gd-variants", size="smoke", **kwargs)


def test_the_experiments_cli_refuses_an_out_that_is_a_file(tmp_path, capsys):
    from descend.__main__ import main
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(SystemExit):
        main(["experiments", "gd-variants", "--out", str(afile)])
    assert "argument --out: expected a directory" in capsys.readouterr().err


# -------------------------------------------------------------------- CLI
@pytest.mark.parametrize("args", [["info"], ["info", "--json"], ["--version"], ["--help"],
                                  ["demo", "--help"]])
def test_the_cli_stops_quietly_when_its_reader_goes_away(args):
    # was (`python -m descend info | head -3`): a BrokenPipeError traceback
    import subprocess
    import sys
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(dn.__file__))] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    read, write = os.pipe()
    os.close(read)          # the reader is gone before the first line
    try:
        done = subprocess.run([sys.executable, "-m", "descend", *args], stdout=write,
                              stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    finally:
        os.close(write)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr
    assert done.returncode in (0, 141)


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["bench", "--help"]])
def test_the_cli_parser_stops_quietly_when_its_reader_goes_away(args, monkeypatch):
    # was: argparse's own output (--help, --version) raised BrokenPipeError through
    # main on Pythons whose argparse does not swallow it (3.11.2, a new user's venv)
    import argparse
    from descend.__main__ import main

    def closed_pipe(self, message, file=None):
        raise BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr(argparse.ArgumentParser, "_print_message", closed_pipe)
    monkeypatch.setattr(os, "dup2", lambda fd, fd2: None)   # keep pytest's stdout
    assert main(args) == 141


@pytest.mark.parametrize("output, match", [
    (".", r"expected a file name, got '\.' \(a directory\)"),
    ("AFILE/x.md", "expected a file in an existing directory"),
])
def test_bench_refuses_an_output_it_could_not_write_before_timing(tmp_path, capsys, output,
                                                                  match):
    # was: IsADirectoryError / NotADirectoryError after the whole benchmark ran
    from descend.__main__ import main
    afile = tmp_path / "AFILE"
    afile.write_text("")
    output = output.replace("AFILE", str(afile))
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--output", output])
    assert exit_info.value.code == 2
    assert re.search(match, capsys.readouterr().err)
