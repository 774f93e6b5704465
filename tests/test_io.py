"""Sequential.save / descend.load: one .npz, no pickle, bitwise round trips."""
import json
import os
import pickle
import re
import zipfile

import numpy as np
import pytest

import descend as dn
from descend import io


# --------------------------------------------------------------------------- helpers
def data(n=96, d=6, k=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    y = np.argmax(X @ rng.normal(size=(d, k)), axis=1)
    return X, y


OPTIMIZERS = {
    "sgd_momentum": lambda: dn.optimizers.SGD(0.05, momentum=0.9),
    "sgd_nesterov": lambda: dn.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    "adam": lambda: dn.optimizers.Adam(0.01),
    "adamw_amsgrad": lambda: dn.optimizers.AdamW(0.01, amsgrad=True),
    "rmsprop_centered": lambda: dn.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "adagrad": lambda: dn.optimizers.Adagrad(0.05),
}


def network(dtype="float64", optimizer="adam", seed=0, dropout=0.0, loss="softmax_cross_entropy",
            k=3, d=6):
    layers = [dn.Dense(16, activation="relu", kernel_regularizer=dn.regularizers.l2(1e-3))]
    if dropout:
        layers.append(dn.Dropout(dropout))
    layers += [dn.Dense(8, activation="tanh", use_bias=False), dn.Dense(k)]
    net = dn.Sequential(layers, input_dim=d, dtype=dtype, seed=seed, n_threads=1,
                        name="test-net")
    net.compile(loss=loss, optimizer=OPTIMIZERS[optimizer]() if isinstance(optimizer, str)
                else optimizer)
    return net


def arrays_of(path):
    with np.load(path, allow_pickle=False) as f:
        return {key: f[key] for key in f.files}


def rewrite(path, arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def config_of(arrays):
    return json.loads(str(arrays["config"][()]))


def with_config(arrays, **changes):
    config = config_of(arrays)
    config.update(changes)
    arrays = dict(arrays)
    arrays["config"] = np.array(json.dumps(config))
    return arrays


def with_state(arrays, **changes):
    """Change entries of the config's "state" (the state_dict without its arrays)."""
    state = dict(config_of(arrays)["state"])
    state.update(changes)
    return with_config(arrays, state=state)


def with_compile(arrays, **changes):
    compile_config = dict(config_of(arrays)["compile"])
    compile_config.update(changes)
    return with_config(arrays, compile=compile_config)


# the parameters of network() without dropout, in get_weights() order
PARAMETER_NAMES = ["layers.0.kernel", "layers.0.bias", "layers.1.kernel", "layers.2.kernel",
                   "layers.2.bias"]
KERNEL_0 = "parameters/layers.0.kernel"


def assert_weights_equal(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.dtype == v.dtype
        np.testing.assert_array_equal(u, v)


@pytest.fixture
def saved(tmp_path):
    X, y = data()
    net = network()
    net.fit(X, y, epochs=2, batch_size=16, verbose=0)
    path = tmp_path / "model.npz"
    net.save(path)
    return net, path


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predictions_are_bit_identical_after_load(tmp_path, dtype):
    X, y = data(dtype=dtype)
    net = network(dtype=dtype, dropout=0.25)
    net.fit(X, y, epochs=2, batch_size=16, verbose=0, validation_split=0.25)
    path = net.save(tmp_path / "m.npz")
    loaded = dn.load(path)
    assert loaded.dtype == net.dtype
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    assert loaded.predict(X).dtype == np.dtype(dtype)
    assert loaded.evaluate(X, y) == net.evaluate(X, y)
    assert_weights_equal(loaded.get_weights(), net.get_weights())
    assert loaded.get_config() == net.get_config()
    assert repr(loaded.optimizer) == repr(net.optimizer)
    assert loaded.history == net.history and loaded.history.epoch == net.history.epoch
    assert loaded.epochs_trained == 2
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in net.layers]
    assert loaded.layers[0].kernel_regularizer.l2 == 1e-3
    assert loaded.layers[2].bias is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_resumed_training_is_bitwise_identical(tmp_path, dtype, optimizer):
    """fit 2 epochs == fit 1 + save + load + fit 1, bit for bit (dropout and shuffle on)."""
    X, y = data(dtype=dtype)
    straight = network(dtype=dtype, optimizer=optimizer, dropout=0.2)
    straight.fit(X, y, epochs=2, batch_size=16, verbose=0)

    first = network(dtype=dtype, optimizer=optimizer, dropout=0.2)
    first.fit(X, y, epochs=1, batch_size=16, verbose=0)
    path = first.save(tmp_path / "half.npz")
    del first
    resumed = dn.load(path)
    resumed.fit(X, y, epochs=1, batch_size=16, verbose=0)

    assert_weights_equal(resumed.get_weights(), straight.get_weights())
    assert resumed.optimizer.iterations == straight.optimizer.iterations
    for a, b in zip(resumed.optimizer.get_state()["arrays"] or [],
                    straight.optimizer.get_state()["arrays"] or []):
        assert_weights_equal(a, b)
    assert resumed._rng.bit_generator.state == straight._rng.bit_generator.state
    np.testing.assert_array_equal(resumed.predict(X), straight.predict(X))


def test_resume_continues_the_learning_rate_schedule(tmp_path):
    X, y = data()

    def make():
        return network(optimizer=dn.optimizers.SGD(
            dn.schedules.StepDecay(0.1, drop=0.5, step_size=1), momentum=0.9))

    straight = make()
    straight_history = straight.fit(X, y, epochs=3, batch_size=16, verbose=0)
    first = make()
    first.fit(X, y, epochs=1, batch_size=16, verbose=0)
    resumed = dn.load(first.save(tmp_path / "m.npz"))
    history = resumed.fit(X, y, epochs=2, batch_size=16, verbose=0)
    assert history["learning_rate"] == straight_history["learning_rate"][1:]
    assert_weights_equal(resumed.get_weights(), straight.get_weights())


def test_resume_keeps_plateau_schedule_state_and_callback_learning_rate(tmp_path):
    X, y = data()
    schedule = dn.schedules.ReduceLROnPlateau(0.1, monitor="loss", factor=0.5, patience=1,
                                              min_delta=10.0)
    net = network(optimizer=dn.optimizers.SGD(schedule))
    net.fit(X, y, epochs=3, batch_size=16, verbose=0)
    loaded = dn.load(net.save(tmp_path / "m.npz"))
    assert loaded.optimizer.schedule.state_dict() == schedule.state_dict()
    assert loaded.optimizer.learning_rate == net.optimizer.learning_rate < 0.1
    # a learning rate changed by a callback (no schedule) is kept as well
    plain = network(optimizer=dn.optimizers.SGD(0.1))
    plain.fit(X, y, epochs=3, batch_size=16, verbose=0, callbacks=[
        dn.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=10.0)])
    assert plain.optimizer.learning_rate < 0.1
    again = dn.load(plain.save(tmp_path / "p.npz"))
    assert again.optimizer.learning_rate == plain.optimizer.learning_rate
    a = plain.fit(X, y, epochs=1, batch_size=16, verbose=0)
    b = again.fit(X, y, epochs=1, batch_size=16, verbose=0)
    assert a["loss"] == b["loss"]


def test_string_classes_are_stored_as_unicode_not_objects(tmp_path):
    X, _ = data(n=60)
    y = np.array(["setosa", "versicolor", "virginica"], dtype=object)[np.arange(60) % 3]
    net = network()
    net.fit(X, y, epochs=1, batch_size=16, verbose=0)
    path = net.save(tmp_path / "m.npz")
    stored = arrays_of(path)["classes"]
    assert stored.dtype.kind == "U"
    loaded = dn.load(path)
    np.testing.assert_array_equal(loaded.predict_classes(X), net.predict_classes(X))
    assert loaded.predict_classes(X[:1])[0] in {"setosa", "versicolor", "virginica"}


@pytest.mark.parametrize("labels", [np.array([-1, 7]), np.array([False, True]),
                                    np.array([0.5, 2.5]), np.array(["no", "yes"])])
def test_binary_classes_of_any_kind_round_trip(tmp_path, labels):
    X, _ = data(n=40)
    y = labels[np.arange(40) % 2]
    net = network(loss="binary_cross_entropy", k=1)
    net.fit(X, y, epochs=1, batch_size=8, verbose=0)
    loaded = dn.load(net.save(tmp_path / "m.npz"))
    np.testing.assert_array_equal(loaded.classes_, net.classes_)
    assert loaded.classes_.dtype == net.classes_.dtype
    np.testing.assert_array_equal(loaded.predict_classes(X), net.predict_classes(X))


def test_regression_and_multilabel_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 6))
    reg = network(loss="mean_squared_error", k=2, optimizer="sgd_momentum")
    reg.fit(X, X[:, :2] * 2, epochs=2, batch_size=10, verbose=0)
    loaded = dn.load(reg.save(tmp_path / "r.npz"))
    assert loaded.classes_ is None
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))
    multi = network(loss="binary_cross_entropy", k=3)
    multi.fit(X, (X[:, :3] > 0).astype(int), epochs=2, batch_size=10, verbose=0)
    loaded = dn.load(multi.save(tmp_path / "b.npz"))
    np.testing.assert_array_equal(loaded.predict(X), multi.predict(X))


def test_uncompiled_and_unfitted_networks_round_trip(tmp_path):
    net = dn.Sequential([dn.Dense(4, activation="elu", alpha=0.5), dn.Dense(2)],
                        input_dim=3, dtype="float32", seed=3)
    loaded = dn.load(net.save(tmp_path / "u.npz"))
    assert loaded.loss_ is None and loaded.optimizer is None
    X = np.ones((2, 3), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))
    assert loaded.layers[0].alpha == 0.5
    # compiled but never fitted: no optimizer state yet
    net.compile(loss="mean_squared_error", optimizer="adam")
    loaded = dn.load(net.save(tmp_path / "c.npz"))
    assert loaded.optimizer.state is None and loaded.optimizer.iterations == 0


def test_other_bit_generators_round_trip(tmp_path):
    X, y = data()
    for bit_generator in (np.random.MT19937(5), np.random.Philox(5), np.random.SFC64(5)):
        net = dn.Sequential([dn.Dense(8, activation="relu"), dn.Dense(3)], input_dim=6,
                            seed=np.random.Generator(bit_generator), n_threads=1)
        net.compile(loss="softmax_cross_entropy", optimizer="adam")
        net.fit(X, y, epochs=1, batch_size=16, verbose=0)
        loaded = dn.load(net.save(tmp_path / "g.npz"))
        assert type(loaded._rng.bit_generator) is type(bit_generator)
        net.fit(X, y, epochs=1, batch_size=16, verbose=0)
        loaded.fit(X, y, epochs=1, batch_size=16, verbose=0)
        assert_weights_equal(loaded.get_weights(), net.get_weights())


# --------------------------------------------------------------------------- file contents
def test_file_holds_plain_arrays_and_a_json_config(saved):
    net, path = saved
    arrays = arrays_of(path)        # would raise on any object array
    assert all(a.dtype.kind != "O" for a in arrays.values())
    assert arrays["config"].shape == () and arrays["config"].dtype.kind == "U"
    config = config_of(arrays)
    assert config["format_version"] == io.FORMAT_VERSION
    assert config["descend_version"] == dn.__version__
    assert config["model"]["dtype"] == "float64"
    assert [layer["class"] for layer in config["model"]["layers"]] == ["Dense"] * 3
    assert config["compile"]["loss"] == "softmax_cross_entropy"
    assert config["compile"]["optimizer"]["class"] == "Adam"
    assert config["compile"]["optimizer"]["beta_2"] == 0.999
    assert config["state"]["optimizer"]["iterations"] == net.optimizer.iterations == 12
    assert config["state"]["rng_state"] == net._rng.bit_generator.state
    assert config["state"]["epochs_trained"] == 2
    weights = [arrays[f"parameters/{name}"] for name in PARAMETER_NAMES]
    assert_weights_equal(weights, net.get_weights())
    assert sorted(k for k in arrays if k.startswith("optimizer")) == sorted(
        f"optimizer/state/{name}.{slot}" for name in PARAMETER_NAMES
        for slot in ("exp_avg", "exp_avg_sq"))


def test_save_writes_exactly_the_given_path_and_no_temporary_files(tmp_path):
    X, y = data()
    net = network()
    net.fit(X, y, epochs=1, verbose=0)
    path = tmp_path / "model.weights"
    assert net.save(str(path)) == str(path)
    assert os.listdir(tmp_path) == ["model.weights"]
    net.save(path)                                  # overwrite in place
    assert os.listdir(tmp_path) == ["model.weights"]
    np.testing.assert_array_equal(dn.load(path).predict(X), net.predict(X))


def test_save_refuses_what_cannot_be_stored_as_data(tmp_path):
    X, y = data()
    path = tmp_path / "m.npz"
    with pytest.raises(ValueError, match="not built"):
        dn.Sequential([dn.Dense(2)]).save(path)
    net = network(optimizer=dn.optimizers.SGD(lambda epoch: 0.1))
    net.fit(X, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="LambdaSchedule"):
        net.save(path)

    class MyLoss(dn.losses.SoftmaxCrossEntropy):
        pass

    custom = network(loss=MyLoss())
    with pytest.raises(ValueError, match="custom loss"):
        custom.save(path)

    class MyOptimizer(dn.optimizers.SGD):
        pass

    custom = network(optimizer=MyOptimizer(0.1))
    with pytest.raises(ValueError, match="custom optimizer"):
        custom.save(path)
    odd = network()
    odd.classes_ = np.array([1, "a", None], dtype=object)
    with pytest.raises(ValueError, match="classes_"):
        odd.save(path)
    assert os.listdir(tmp_path) == []
    with pytest.raises(TypeError, match="path"):
        network().save(3)
    with pytest.raises(TypeError, match="Sequential"):
        io.save("not a network", path)


# --------------------------------------------------------------------------- bad files
class _Exploit:
    """Unpickling this would create a marker file: loading must never do so."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_objects_are_refused_and_never_executed(saved, tmp_path):
    _, path = saved
    marker = tmp_path / "pwned"
    arrays = arrays_of(path)
    evil = np.empty(1, dtype=object)
    evil[0] = _Exploit(str(marker))
    arrays[KERNEL_0] = evil
    with open(path, "wb") as f:
        np.savez(f, **arrays)           # numpy pickles object arrays on save
    with pytest.raises(ValueError, match=r"layers.0.kernel.* pickled Python objects") as info:
        dn.load(path)
    assert str(path) in str(info.value)
    assert not marker.exists()
    # the same for the config entry
    obj_config = np.empty((), dtype=object)
    obj_config[()] = _Exploit(str(marker))
    rewrite(path, {"config": obj_config})
    with pytest.raises(ValueError, match="pickled"):
        dn.load(path)
    assert not marker.exists()


def test_a_plain_pickle_file_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.npz"
    with open(path, "wb") as f:
        pickle.dump(_Exploit(str(marker)), f)
    with pytest.raises(ValueError, match="not an .npz"):
        dn.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.99])
def test_truncated_files_are_a_clear_error(saved, cut):
    _, path = saved
    content = path.read_bytes()
    path.write_bytes(content[:int(len(content) * cut)])
    with pytest.raises(ValueError) as info:
        dn.load(path)
    assert str(path) in str(info.value)


def test_corrupted_member_is_a_clear_error(saved):
    _, path = saved
    content = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(KERNEL_0 + ".npy")
    start = info.header_offset + 30 + len(info.filename) + 200
    content[start:start + 50] = b"\xff" * 50
    path.write_bytes(bytes(content))
    with pytest.raises(ValueError, match="layers.0.kernel"):
        dn.load(path)


@pytest.mark.parametrize("content", [b"", b"hello world\n", b"\x93NUMPY garbage",
                                     b"PK\x03\x04 not really a zip"])
def test_non_npz_files_are_a_clear_error(tmp_path, content):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        dn.load(path)
    assert str(path) in str(info.value)


def test_npy_and_foreign_npz_files_are_refused(tmp_path):
    npy = tmp_path / "a.npy"
    np.save(npy, np.arange(3))
    with pytest.raises(ValueError, match="not an .npz"):
        dn.load(npy)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    with pytest.raises(ValueError, match="missing entry 'config'"):
        dn.load(other)


def test_missing_files_and_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        dn.load(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="directory"):
        dn.load(tmp_path)
    with pytest.raises(TypeError, match="path"):
        dn.load(None)


@pytest.mark.parametrize("drop", ["parameters/layers.2.kernel",
                                  "optimizer/state/layers.0.bias.exp_avg", "classes", "config"])
def test_missing_entries_are_named(saved, drop):
    net, path = saved
    arrays = arrays_of(path)
    if drop == "classes":
        arrays = with_state(arrays, classes={"npz": "classes"})
        arrays.pop("classes", None)
    else:
        del arrays[drop]
    rewrite(path, arrays)
    with pytest.raises(ValueError, match=f"missing entry '{drop}'") as info:
        dn.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("version", [0, 3, "1", None, True])
def test_unknown_format_versions_are_refused(saved, version):
    _, path = saved
    rewrite(path, with_config(arrays_of(path), format_version=version))
    with pytest.raises(ValueError, match="format version"):
        dn.load(path)


@pytest.mark.parametrize("change, match", [
    (lambda a: a.update({KERNEL_0: a[KERNEL_0][:, :-1]}), "shape"),
    (lambda a: a.update({KERNEL_0: a[KERNEL_0].astype(np.float32)}), "dtype"),
    (lambda a: a.update({"parameters/layers.0.bias": np.full_like(
        a["parameters/layers.0.bias"], np.nan)}), "NaN"),
    (lambda a: a.update({"optimizer/state/layers.0.kernel.exp_avg_sq":
                         a["optimizer/state/layers.0.kernel.exp_avg_sq"][:2]}), "shape"),
    (lambda a: a.update({"parameters/layers.3.kernel": a["parameters/layers.2.kernel"]}),
     "unknown entries"),
    (lambda a: a.update(config=np.array(b"{}")), "0-d unicode"),
    (lambda a: a.update(config=np.array("{not json")), "JSON"),
    (lambda a: a.update(config=np.array("[1, 2]")), "JSON object"),
    (lambda a: a.update(with_config(a, model={"layers": [{"class": "Conv2D"}]})),
     "unknown layer class"),
    (lambda a: a.update(with_config(a, model={"layers": "Dense"})), "layers"),
    (lambda a: a.update(with_compile(a, optimizer={"class": "os.system"})),
     "unknown optimizer class"),
    (lambda a: a.update(with_compile(a, loss="__import__('os')")), "loss"),
    (lambda a: a.update(with_state(a, rng_state={"bit_generator": "os.system"})),
     "bit generator"),
    (lambda a: a.update(with_state(a, rng_state={"bit_generator": "PCG64", "state": 1})),
     "generator state"),
    (lambda a: a.update(with_state(a, epochs_trained=-1)), "epochs_trained"),
    (lambda a: a.update(with_state(a, optimizer=dict(config_of(a)["state"]["optimizer"],
                                                     iterations=1.5))), "iterations"),
    (lambda a: a.update(with_config(a, format="keras")), "format"),
    (lambda a: a.update(with_state(a, history={"logs": {"loss": ["x"]}})), "history"),
])
def test_inconsistent_contents_are_clear_errors(saved, change, match):
    _, path = saved
    arrays = arrays_of(path)
    change(arrays)
    rewrite(path, arrays)
    with pytest.raises(ValueError, match=match) as info:
        dn.load(path)
    assert str(path) in str(info.value)


def test_load_is_exported_and_pathlike_paths_work(saved):
    net, path = saved
    assert dn.load is io.load
    loaded = dn.load(str(path))
    np.testing.assert_array_equal(loaded.predict(np.ones((1, 6))), net.predict(np.ones((1, 6))))


# --------------------------------------------------------------------------- exact answers
def load_error(path):
    """The message of load's ValueError without its "<path>: " prefix."""
    with pytest.raises(ValueError) as info:
        dn.load(str(path))
    prefix = f"{str(path)!r}: "
    assert str(info.value).startswith(prefix)
    return str(info.value)[len(prefix):]


def test_parameter_and_optimizer_entries_are_checked_against_the_architecture(saved):
    _, path = saved         # float64, Adam: exp_avg and exp_avg_sq per parameter
    original = arrays_of(path)
    velocity = "optimizer/state/layers.0.kernel.exp_avg_sq"
    cases = [
        ({KERNEL_0: original[KERNEL_0].astype(np.float32)},
         f"entry {KERNEL_0!r} has dtype float32, but the network's dtype is float64"),
        ({velocity: original[velocity].astype(np.float32)},
         f"entry {velocity!r} has dtype float32, but the network's dtype is float64"),
        ({velocity: original[velocity][:2]},
         f"entry {velocity!r} has shape (2, 16), but the architecture needs (6, 16)"),
    ]
    for change, message in cases:
        rewrite(path, {**original, **change})
        assert load_error(path) == message


def test_an_optimizer_entry_must_name_a_parameter(saved):
    _, path = saved
    arrays = arrays_of(path)
    stray = "optimizer/state/layers.9.kernel.exp_avg"
    optimizer = config_of(arrays)["state"]["optimizer"]
    optimizer["state"][stray[len("optimizer/state/"):]] = {"npz": stray}
    arrays = with_state(arrays, optimizer=optimizer)
    arrays[stray] = np.zeros((6, 16))
    rewrite(path, arrays)
    assert load_error(path) == (f"entry {stray!r} names no parameter of the architecture "
                                f"({PARAMETER_NAMES})")


def test_entries_referenced_from_a_list_are_checked_too(tmp_path):
    X, y = data(dtype=np.float32)
    net = network(dtype="float32")
    net.fit(X, y, epochs=1, batch_size=32, verbose=0)
    path = tmp_path / "model.npz"
    net.save(path)
    arrays = arrays_of(path)
    history = config_of(arrays)["state"]["history"]
    for stray, array, message in [
            ("optimizer/state/layers.9.kernel.exp_avg", np.zeros((6, 16), np.float32),
             f"names no parameter of the architecture ({PARAMETER_NAMES})"),
            ("optimizer/state/layers.0.kernel.extra", np.zeros((6, 16)),
             "has dtype float64, but the network's dtype is float32")]:
        listed = dict(history, logs=dict(history["logs"], loss=[{"npz": stray}]))
        rewrite(path, {**with_state(arrays, history=listed), stray: array})
        assert load_error(path) == f"entry {stray!r} {message}"


def test_unknown_entries_are_named_with_what_descend_writes(saved):
    _, path = saved
    arrays = arrays_of(path)
    arrays["parameters/layers.3.kernel"] = arrays[KERNEL_0]
    rewrite(path, arrays)
    assert load_error(path) == ("unknown entries ['parameters/layers.3.kernel']; descend "
                                "writes only config and the entries the config names")


def test_numpy_scalars_and_integer_arrays_become_plain_json():
    cases = [(np.int64(7), int, 7), (np.uint8(255), int, 255), (np.float32(0.5), float, 0.5),
             (np.float16(-2.0), float, -2.0), (np.bool_(True), bool, True),
             (np.bool_(False), bool, False)]
    for value, kind, plain in cases:
        converted = io._json_default(value)
        assert type(converted) is kind and converted == plain
    # bit-generator states hold unsigned integer arrays (MT19937's key)
    assert io._json_default(np.array([1, 2**32 - 1], dtype=np.uint32)) == [1, 2**32 - 1]
    assert io._json_default(np.array([True, False])) == [True, False]
    assert io._json_default(np.array([-3], dtype=np.int8)) == [-3]
    for other, message in [(np.array([0.5]), "ndarray array([0.5])"),
                           (len, "builtin_function_or_method <built-in function len>"),
                           (1 + 2j, "complex (1+2j)")]:
        with pytest.raises(TypeError) as info:
            io._json_default(other)
        assert str(info.value) == message


def test_fortran_ordered_entries_load_with_their_values(saved):
    # numpy writes a Fortran-ordered array's bytes column by column
    # (fortran_order: True in its header); another writer may store a model so
    net, path = saved
    arrays = arrays_of(path)
    arrays[KERNEL_0] = np.asfortranarray(arrays[KERNEL_0])
    rewrite(path, arrays)
    with np.load(path) as f:
        assert f[KERNEL_0].flags.f_contiguous and not f[KERNEL_0].flags.c_contiguous
    loaded = dn.load(path)
    np.testing.assert_array_equal(loaded.layers[0].kernel, net.layers[0].kernel)
    assert_weights_equal(loaded.get_weights(), net.get_weights())


def test_other_entries_are_bounded_at_16_mib_inclusive(saved):
    # classes_ is read whole: its size is capped before it is read (io._MAX_OTHER_ENTRY_BYTES)
    _, path = saved
    arrays = arrays_of(path)
    at_the_bound = 2**24 // 8                 # int64 labels: exactly 16 MiB
    rewrite(path, {**arrays, "classes": np.arange(at_the_bound, dtype=np.int64)})
    assert load_error(path) == ("classes has 2097152 labels, but the network's "
                                "softmax_cross_entropy output needs 3")
    rewrite(path, {**arrays, "classes": np.arange(at_the_bound + 1, dtype=np.int64)})
    assert load_error(path) == ("entry 'classes' declares shape (2097153,) of int64, more "
                                "than such an entry can hold (16777216 bytes)")


def test_an_architecture_that_cannot_be_built_is_refused(saved):
    _, path = saved
    arrays = arrays_of(path)
    model = dict(config_of(arrays)["model"], input_dim=None)
    rewrite(path, with_config(arrays, model=model))
    assert load_error(path) == "the config's architecture has no input_dim or no Dense layer"


def test_a_file_that_is_not_a_model_raises_the_public_model_file_error(tmp_path):
    """A new user caught descend.io._ModelFileError, a private name: the
    error of a file load cannot read is public (and still a ValueError)."""
    from descend.io import ModelFileError
    path = tmp_path / "other.npz"
    np.savez(path, a=np.ones(2))
    with pytest.raises(ModelFileError, match="missing entry 'config'") as caught:
        dn.load(path)
    assert isinstance(caught.value, ValueError) and str(path) in str(caught.value)
    # every refusal of the file itself (a breaker found these plain ValueErrors)
    text, empty, npy = tmp_path / "a.txt", tmp_path / "empty.npz", tmp_path / "a.npy"
    text.write_text("not a model")
    empty.write_bytes(b"")
    np.save(npy, np.ones(2))
    good = tmp_path / "good.npz"
    dn.Sequential([dn.Dense(2)], input_dim=2, seed=0).compile(
        "softmax_cross_entropy").save(good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:-10])
    extra = tmp_path / "extra.npz"
    with np.load(good) as archive:
        np.savez(extra, surplus=np.ones(1), **{k: archive[k] for k in archive.files})
    for bad in (text, empty, npy, truncated, extra, tmp_path):
        with pytest.raises(ModelFileError, match=re.escape(repr(str(bad)))):
            dn.load(bad)
