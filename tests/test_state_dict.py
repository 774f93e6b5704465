"""The state protocol (state_dict / load_state_dict / from_config) and old model files."""
import glob
import os

import numpy as np
import pytest

import descend as dn

DATA = os.path.join(os.path.dirname(__file__), "data")
V1_FILES = sorted(p for p in glob.glob(os.path.join(DATA, "v1_*.npz"))
                  if not p.endswith("_expected.npz"))


def expected_of(path):
    with np.load(path[:-4] + "_expected.npz", allow_pickle=False) as f:
        return {key: f[key] for key in f.files}


# --------------------------------------------------------------------------- format 1 files
def test_the_format_1_fixtures_are_there():
    assert len(V1_FILES) == 5


@pytest.mark.parametrize("path", V1_FILES, ids=os.path.basename)
def test_format_1_files_still_load_with_their_predictions_and_optimizer_state(path):
    expected = expected_of(path)
    net = dn.load(path)
    np.testing.assert_array_equal(net.predict(expected["X"]), expected["predict"])
    stored = sorted(key for key in expected if key.startswith("state_"))
    if net.optimizer is None or net.optimizer.state is None:
        assert stored == []
        return
    flat = {f"state_{i}_{j}": a for i, per in enumerate(net.optimizer.get_state()["arrays"])
            for j, a in enumerate(per)}
    assert sorted(flat) == stored
    for key in stored:
        assert flat[key].dtype == expected[key].dtype
        np.testing.assert_array_equal(flat[key], expected[key])


@pytest.mark.parametrize("path", V1_FILES, ids=os.path.basename)
def test_format_1_optimizer_state_is_named_after_the_parameters(path):
    expected = expected_of(path)
    net = dn.load(path)
    named = net.optimizer.state_dict()["state"] if net.optimizer is not None else None
    stored = sorted(key for key in expected if key.startswith("state_"))
    if named is None:
        assert stored == []
        return
    slots = net.optimizer.active_state_names()
    for i, name in enumerate(net.state_dict()["parameters"]):
        for j, slot in enumerate(slots):
            np.testing.assert_array_equal(named[f"{name}.{slot}"], expected[f"state_{i}_{j}"])
    assert len(named) == len(stored)


# --------------------------------------------------------------------------- state_dict
def trained(optimizer, dtype="float32", classes=("a", "b", "c"), seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(48, 4)).astype(dtype)
    y = np.asarray(classes)[rng.integers(0, 3, size=48)]
    net = dn.Sequential([dn.Dense(5, activation="relu"), dn.Dropout(0.1),
                         dn.Dense(3, use_bias=False), dn.Dense(3)],
                        input_dim=4, dtype=dtype, seed=seed, n_threads=1)
    net.compile("softmax_cross_entropy", optimizer)
    net.fit(X, y, epochs=2, batch_size=16, verbose=0)
    return net, X, y


def test_state_dict_names_parameters_and_optimizer_state_by_layer():
    net, _, _ = trained(dn.optimizers.SGD(0.05, momentum=0.9))
    state = net.state_dict()
    # Dropout is layers[1]: names count every layer, as PyTorch's Sequential does
    assert list(state["parameters"]) == ["layers.0.kernel", "layers.0.bias",
                                         "layers.2.kernel", "layers.3.kernel",
                                         "layers.3.bias"]
    optimizer = state["optimizer"]
    assert sorted(optimizer["state"]) == sorted(f"{name}.velocity"
                                                for name in state["parameters"])
    assert optimizer["iterations"] == net.optimizer.iterations == 6
    np.testing.assert_array_equal(optimizer["state"]["layers.3.bias"  + ".velocity"],
                                  net.optimizer.state[4][0])
    assert state["classes"].tolist() == ["a", "b", "c"]
    assert state["epochs_trained"] == 2 and state["history"]["epoch"] == [0, 1]
    # copies, not views of the live arrays
    state["parameters"]["layers.0.kernel"][...] = 0
    assert np.any(net.layers[0].kernel != 0)


@pytest.mark.parametrize("optimizer", [
    lambda: dn.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: dn.optimizers.Adam(dn.schedules.ExponentialDecay(0.01, decay_rate=0.5),
                               amsgrad=True),
    lambda: dn.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    lambda: dn.optimizers.Adagrad(0.05)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_network_rebuilt_from_config_and_state_dict_trains_on_bit_for_bit(optimizer, dtype):
    net, X, y = trained(optimizer(), dtype)
    copy = dn.Sequential.from_config(net.get_config())
    copy.compile_from_config(net.get_compile_config())
    copy.load_state_dict(net.state_dict())
    np.testing.assert_array_equal(copy.predict(X), net.predict(X))
    net.fit(X, y, epochs=2, batch_size=16, verbose=0)
    copy.fit(X, y, epochs=2, batch_size=16, verbose=0)
    for a, b in zip(net.get_weights(), copy.get_weights()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    for key, value in net.optimizer.state_dict()["state"].items():
        np.testing.assert_array_equal(copy.optimizer.state_dict()["state"][key], value)
    assert copy.history["loss"] == net.history["loss"]
    assert copy.optimizer.learning_rate == net.optimizer.learning_rate


@pytest.mark.parametrize("change, match", [
    (lambda s: s["parameters"].pop("layers.0.bias"), "parameters must be named"),
    (lambda s: s["parameters"].update({"layers.0.kernel": np.zeros((4, 4), np.float32)}),
     "layers.0.kernel' has shape"),
    (lambda s: s["parameters"].update({"layers.0.kernel": np.zeros((4, 5))}), "dtype"),
    (lambda s: s["parameters"]["layers.3.bias"].fill(np.nan), "NaN"),
    (lambda s: s["optimizer"]["state"].pop("layers.0.kernel.velocity"), "missing"),
    (lambda s: s["optimizer"]["state"].update(
        {"layers.0.kernel.velocity": np.zeros((4, 4), np.float32)}), "velocity' has shape"),
    (lambda s: s["optimizer"].update(iterations=-1), "iterations"),
    (lambda s: s["optimizer"].update(learning_rate=float("nan")), "learning_rate"),
    (lambda s: s.update(classes=np.array(["b", "a", "c"])), "sorted"),
    (lambda s: s.update(classes=np.array(["a", "b"])), "needs 3"),
    (lambda s: s.update(rng_state={"bit_generator": "os.system"}), "bit generator"),
    (lambda s: s.update(rng_state="PCG64"),       # a name where the state dict belongs
     r"unknown random bit generator 'PCG64' in rng_state \(known: \['MT19937', 'PCG64'"),
    (lambda s: s.update(epochs_trained=1.5), "epochs_trained"),
    (lambda s: s.update(history={"logs": {"loss": ["x"]}}), "history"),
    (lambda s: s.pop("history"), "keys"),
])
def test_load_state_dict_checks_everything_before_changing_anything(change, match):
    net, X, _ = trained(dn.optimizers.SGD(0.05, momentum=0.9))
    other, _, _ = trained(dn.optimizers.SGD(0.05, momentum=0.9), seed=1)
    before = other.state_dict()
    state = net.state_dict()
    change(state)
    with pytest.raises(ValueError, match=match):
        other.load_state_dict(state)
    after = other.state_dict()
    for key in ("parameters",):
        for name, value in before[key].items():
            np.testing.assert_array_equal(after[key][name], value)
    for name, value in before["optimizer"]["state"].items():
        np.testing.assert_array_equal(after["optimizer"]["state"][name], value)
    assert after["rng_state"] == before["rng_state"]
    assert after["epochs_trained"] == before["epochs_trained"]
    assert after["optimizer"]["iterations"] == before["optimizer"]["iterations"]


def test_an_optimizer_state_needs_a_compiled_network():
    net, X, _ = trained(dn.optimizers.Adam(0.01))
    bare = dn.Sequential.from_config(net.get_config())
    before = bare.get_weights()
    with pytest.raises(ValueError) as info:
        bare.load_state_dict(net.state_dict())
    assert str(info.value) == ("the state holds an optimizer state, but the network is not "
                               "compiled: compile it (or compile_from_config) first")
    for mine, theirs in zip(bare.get_weights(), before):
        np.testing.assert_array_equal(mine, theirs)


def test_optimizer_state_dict_round_trip_and_from_config():
    params = [np.ones((2, 3)), np.ones(3)]
    opt = dn.optimizers.Adam(0.1)
    opt.build(params, ["w", "b"])
    opt.apply_gradients(params, [np.full((2, 3), 0.5), np.full(3, -1.0)])
    state = opt.state_dict()
    assert sorted(state["state"]) == ["b.exp_avg", "b.exp_avg_sq", "w.exp_avg", "w.exp_avg_sq"]
    # first step of Adam: m = (1 - beta_1) g, v = (1 - beta_2) g^2
    np.testing.assert_allclose(state["state"]["w.exp_avg"], 0.1 * 0.5)
    np.testing.assert_allclose(state["state"]["b.exp_avg_sq"], 0.001 * 1.0)
    copy = dn.optimizers.Optimizer.from_config(opt.get_config())
    assert type(copy) is dn.optimizers.Adam and copy.get_config() == opt.get_config()
    copy.build([np.zeros((2, 3)), np.zeros(3)], ["w", "b"])
    copy.load_state_dict(state)
    assert copy.iterations == 1
    for key, value in state["state"].items():
        np.testing.assert_array_equal(copy.state_dict()["state"][key], value)
    with pytest.raises(ValueError, match="not a SGD"):
        dn.optimizers.SGD.from_config(opt.get_config())
    unbuilt = dn.optimizers.Adam(0.1)
    with pytest.raises(ValueError, match="build the optimizer"):
        unbuilt.load_state_dict(state)


def test_io_reads_no_private_model_attribute_and_does_not_import_back():
    import ast
    import inspect
    from descend import io, model
    source = inspect.getsource(io)
    assert "._rng" not in source and "._params" not in source
    top_level = [node for node in ast.parse(inspect.getsource(model)).body
                 if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert not any(alias.name == "io" or alias.name.endswith(".io")
                   for node in top_level for alias in node.names)


def test_saved_files_name_their_entries(tmp_path):
    net, X, _ = trained(dn.optimizers.SGD(0.05, momentum=0.9))
    path = net.save(str(tmp_path / "m.npz"))
    with np.load(path, allow_pickle=False) as f:
        files = set(f.files)
    assert "parameters/layers.2.kernel" in files
    assert "optimizer/state/layers.3.bias.velocity" in files
    loaded = dn.load(path)
    np.testing.assert_array_equal(loaded.predict(X), net.predict(X))


def test_learning_rate_scale_is_part_of_the_optimizer_state(tmp_path):
    net, X, _ = trained(dn.optimizers.Adam(dn.schedules.ExponentialDecay(0.01, decay_rate=0.5)))
    net.optimizer.learning_rate_scale = 0.25        # as callbacks.ReduceLROnPlateau cuts
    assert net.optimizer.state_dict()["learning_rate_scale"] == 0.25
    loaded = dn.load(net.save(str(tmp_path / "m.npz")))
    assert loaded.optimizer.learning_rate_scale == 0.25
    state = net.state_dict()
    state["optimizer"]["learning_rate_scale"] = -0.5     # (0.0 is valid: cuts down to a rate of 0)
    with pytest.raises(ValueError, match="learning_rate_scale"):
        loaded.load_state_dict(state)
    assert loaded.optimizer.learning_rate_scale == 0.25


# --------------------------------------------------------------------------- format 1 details
# Each test rewrites one format-1 fixture (written by descend at 480dbc6) with one
# change and reads the loader's exact answer.
V1_SGD = os.path.join(DATA, "v1_sgd_momentum_strings.npz")      # float32, SGD, 5 arrays


def v1_rewritten(tmp_path, arrays=None, **config_changes):
    """V1_SGD with entries replaced by `arrays` and config keys by `config_changes`
    (a value None deletes the key); returns the new file's path as a str."""
    import json
    with np.load(V1_SGD, allow_pickle=False) as f:
        entries = {key: f[key] for key in f.files}
    config = json.loads(str(entries["config"][()]))
    for key, value in config_changes.items():
        if value is None:
            del config[key]
        else:
            config[key] = value
    entries.update(arrays or {})
    entries["config"] = np.array(json.dumps(config))
    path = str(tmp_path / "v1.npz")
    np.savez(path, **entries)
    return path


def v1_error(path):
    with pytest.raises(ValueError) as info:
        dn.load(path)
    prefix = f"{path!r}: "
    assert str(info.value).startswith(prefix)
    return str(info.value)[len(prefix):]


def test_format_1_history_is_the_one_in_the_file(tmp_path):
    net = dn.load(V1_SGD)
    assert net.history.epoch == [0, 1]
    # the values written in the fixture's config (python -c "import json, numpy as np;
    # print(json.loads(str(np.load('tests/data/v1_sgd_momentum_strings.npz')['config']))
    # ['history'])")
    assert net.history["loss"] == [1.0383951110055283, 0.9582988960268221]
    assert net.history["accuracy"] == [0.5, 0.6]
    # files written before the history was stored load with an empty one
    net = dn.load(v1_rewritten(tmp_path, history=None))
    assert net.history.epoch == [] and dict(net.history) == {}


def test_format_1_learning_rate_scale_is_read_when_present_and_one_otherwise(tmp_path):
    with np.load(V1_SGD, allow_pickle=False) as f:
        import json
        saved = json.loads(str(f["config"][()]))["optimizer_state"]
    assert "learning_rate_scale" not in saved
    assert dn.load(V1_SGD).optimizer.learning_rate_scale == 1.0
    net = dn.load(v1_rewritten(tmp_path, optimizer_state=dict(saved, learning_rate_scale=0.25)))
    assert net.optimizer.learning_rate_scale == 0.25


def test_format_1_optimizer_state_must_be_an_object(tmp_path):
    path = v1_rewritten(tmp_path, optimizer_state=[10, 0.05])
    assert v1_error(path) == "the config's 'optimizer_state' must be an object"


@pytest.mark.parametrize("counts", [[1, 1, 1, 1, 2], [1, 1, 1, 1], 5])
def test_format_1_optimizer_array_counts_must_match_the_optimizer(tmp_path, counts):
    path = v1_rewritten(tmp_path, optimizer_state={"iterations": 10, "learning_rate": 0.05,
                                                   "n_arrays": counts})
    assert v1_error(path) == (f"the optimizer state must have 1 array(s) for each of the 5 "
                              f"parameters, the config says {counts!r}")


@pytest.mark.parametrize("key", ["weight_0", "optimizer_0_0"])
def test_format_1_arrays_are_checked_against_the_network_dtype(tmp_path, key):
    with np.load(V1_SGD, allow_pickle=False) as f:
        wrong = f[key].astype(np.float64)       # the network is float32
    path = v1_rewritten(tmp_path, arrays={key: wrong})
    assert v1_error(path) == (f"entry {key!r} has dtype float64, but the network's dtype "
                              f"is float32")


def test_format_1_files_with_more_weights_than_the_architecture_are_refused(tmp_path):
    with np.load(V1_SGD, allow_pickle=False) as f:
        extra = f["weight_4"]
    path = v1_rewritten(tmp_path, arrays={"weight_5": extra})
    assert v1_error(path) == "the file holds more weight arrays than the architecture's 5"


def test_format_1_files_keep_the_pinned_and_the_used_plan_apart(tmp_path):
    pinned = {"sparse_input": False, "sample_rows": 4}
    used = {"sparse_input": False, "sample_rows": 8, "source": "profile"}
    net = dn.load(v1_rewritten(tmp_path, plan=pinned, plan_used=used))
    assert net.plan == pinned
    assert net.plan_ == used
