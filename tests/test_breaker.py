"""Adversarial inputs found by trying to break the day's changes: each test
names the input, and asserts the documented error (a ValueError/TypeError
naming the argument, raised before any state changes) instead of what the
code did before its fix."""
import io as stdio
import json
import os
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
    lambda X, y: (X,), lambda X, y: (X, y, np.ones(len(y))), lambda X, y: (X, y, None, 1)])
def test_validation_data_of_the_wrong_length_says_so(data, validation_data):
    # was: 'validation_data must be a tuple (X_val, y_val), got tuple'
    X, y = data
    net = small_net()
    before = [w.copy() for w in net.get_weights()]
    with pytest.raises(ValueError, match=r"validation_data must be a tuple \(X_val, y_val\) "
                                         r"of length 2, got a tuple of length \d"):
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
