"""Sequential.load_state_dict's checks one field at a time: every refusal at
its exact message (naming the field, what was expected and what came), the
edges of each range accepted, and the optional parts of a state (plan,
history entries) loaded when absent. test_state_dict.py pins the round trip
and that a refused state changes nothing; this file pins each rule."""
import numpy as np
import pytest

import descend as dn

X = np.random.default_rng(0).normal(size=(8, 2))
Y = np.array([0, 1, 2, 0, 1, 2, 0, 1])


def trained(units=(3,), loss="softmax_cross_entropy", y=Y):
    net = dn.Sequential([dn.Dense(u) for u in units], input_dim=2, seed=0)
    net.compile(loss=loss, optimizer=dn.optimizers.SGD(0.1, momentum=0.9))
    net.fit(X, y, epochs=1, batch_size=4, verbose=0)
    return net


def refused(net, match, **changes):
    state = net.state_dict()
    state.update(changes)
    with pytest.raises(ValueError, match=match):
        net.load_state_dict(state)


def loaded(net, **changes):
    state = net.state_dict()
    state.update(changes)
    net.load_state_dict(state)
    return net


KEYS = ("['parameters', 'optimizer', 'classes', 'rng_state', 'epochs_trained', 'history'] "
        "(and optionally ['plan'])")


def test_the_state_keys_are_named_in_the_refusal():
    net = trained()
    state = net.state_dict()
    with pytest.raises(ValueError, match=rf"^a state_dict has the keys {KEYS}, got list$"
                       .replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        net.load_state_dict(list(state))
    state["extra"] = 1
    with pytest.raises(ValueError, match=r"got \['classes', 'epochs_trained', 'extra', "
                       r"'history', 'optimizer', 'parameters', 'plan', 'rng_state'\]$"):
        net.load_state_dict(state)
    del state["extra"], state["history"]
    with pytest.raises(ValueError, match=r"got \['classes', 'epochs_trained', 'optimizer', "
                       r"'parameters', 'plan', 'rng_state'\]$"):
        net.load_state_dict(state)


def test_a_state_without_a_plan_loads_and_a_plan_is_restored():
    net = trained()
    used = dict(net.plan_)
    state = net.state_dict()
    del state["plan"]                   # a state written before plans existed
    other = trained()
    other.plan, other.plan_ = {"sample_rows": 8}, None
    other.load_state_dict(state)
    assert other.plan is None and other.plan_ is None
    other.load_state_dict(net.state_dict())
    assert other.plan is None and other.plan_ == used
    net.pin_plan({"sample_rows": 16})
    other.load_state_dict(net.state_dict())
    assert other.plan == {"sample_rows": 16} and other.plan_ == used


@pytest.mark.parametrize("plan, match", [
    ([1], r"^state_dict\['plan'\] must be None or a dict with keys 'pinned' and 'used', "
          r"got \[1\]$"),
    ({"other": None}, r"^state_dict\['plan'\] must be None or a dict with keys 'pinned' and "
                      r"'used', got \{'other': None\}$"),
    ({"pinned": {"kernel_rows": [4, 4]}, "used": None},
     r"^state_dict\['plan'\]\['pinned'\]\['kernel_rows'\] must hold one int per Dense layer "
     r"\(1\), got \[4, 4\]$"),
    ({"pinned": None, "used": {"kernel_rows": [4, 4]}},
     r"^state_dict\['plan'\]\['used'\]\['kernel_rows'\] must hold one int per Dense layer "
     r"\(1\), got \[4, 4\]$"),
])
def test_a_plan_for_another_network_is_refused_by_its_place(plan, match):
    net = trained()
    before = (net.plan, dict(net.plan_))
    refused(net, match, plan=plan)
    assert (net.plan, net.plan_) == before


def test_parameters_must_carry_the_networks_names():
    net = trained()
    refused(net, r"^the parameters must be named \['layers.0.kernel', 'layers.0.bias'\], "
                 r"got list$", parameters=[1])
    refused(net, r"^the parameters must be named \['layers.0.kernel', 'layers.0.bias'\], "
                 r"got \['layers.0.kernel'\]$",
            parameters={"layers.0.kernel": np.zeros((2, 3), np.float32)})
    weights = [np.full((2, 3), 0.5, np.float32), np.arange(3, dtype=np.float32)]
    loaded(net, parameters={"layers.0.kernel": weights[0], "layers.0.bias": weights[1]})
    for now, wanted in zip(net.get_weights(), weights):
        np.testing.assert_array_equal(now, wanted)


@pytest.mark.parametrize("classes, match", [
    ([0, 1, 2], r"^classes must be a 1-D array of numbers or strings, got list  of shape "
                r"\(3,\)$"),
    (np.array([[0, 1, 2]]), r"^classes must be a 1-D array of numbers or strings, got "
                            r"ndarray int64 of shape \(1, 3\)$"),
    (np.array([0, 1, 2], dtype=complex), r"^classes must be a 1-D array of numbers or "
                                         r"strings, got ndarray complex128 of shape \(3,\)$"),
    (np.array([0.0, 1.0, np.nan]), r"^classes contains NaN or infinite labels: "
                                   r"\[0.0, 1.0, nan\]$"),
    (np.array([0.0, 1.0, np.inf]), r"^classes contains NaN or infinite labels"),
    (np.array([0, 1, 1]), r"^classes must hold sorted distinct labels \(as numpy.unique\), "
                          r"got \[0, 1, 1\]$"),
    (np.array([2, 1, 0]), r"^classes must hold sorted distinct labels"),
    # a long list is cut after its first 20 labels
    (np.array([np.nan] + list(range(1, 30)), dtype=float),
     r"^classes contains NaN or infinite labels: \[nan, 1.0, 2.0, (\d+.0, )+19.0\]$"),
    (np.arange(30)[::-1], r"^classes must hold sorted distinct labels \(as numpy.unique\), "
                          r"got \[29, 28, (\d+, )+10\]$"),
    (np.array([0, 1, 2, 3]), r"^classes has 4 labels, but the network's "
                             r"softmax_cross_entropy output needs 3$"),
])
def test_classes_are_refused_with_their_reason(classes, match):
    net = trained()
    refused(net, match, classes=classes)
    np.testing.assert_array_equal(net.classes_, [0, 1, 2])


@pytest.mark.parametrize("classes", [
    np.array([0.5, 1.5, 2.5]), np.array(["a", "b", "c"]), np.array([b"a", b"b", b"c"]),
    np.array([0, 1, 2], dtype=np.uint8), np.array([-3, 0, 7]),
])
def test_classes_of_every_label_kind_load_as_a_copy(classes):
    net = loaded(trained(), classes=classes)
    np.testing.assert_array_equal(net.classes_, classes)
    assert net.classes_ is not classes and net.classes_.dtype == classes.dtype


def test_the_class_count_is_the_last_layers_or_two_for_a_binary_output():
    deep = trained(units=(4, 5, 3))
    loaded(deep, classes=np.array(["x", "y", "z"]))
    refused(deep, r"^classes has 5 labels, but the network's softmax_cross_entropy output "
                  r"needs 3$", classes=np.arange(5))
    binary = trained(units=(1,), loss="binary_cross_entropy", y=Y % 2)
    np.testing.assert_array_equal(loaded(binary, classes=np.array([False, True])).classes_,
                                  [False, True])
    refused(binary, r"^classes has 3 labels, but the network's binary_cross_entropy output "
                    r"needs 2$", classes=np.arange(3))
    regression = trained(units=(2,), loss="mean_squared_error", y=np.ones((8, 2)))
    # a regression has no classes, as partial_fit(classes=...) refuses them
    # (a classifier's state loaded here left the network with classes_)
    refused(regression, r"^classes has 3 labels, but the network's mean_squared_error loss "
                        r"is a regression, which has no classes", classes=np.arange(3))
    assert loaded(regression, classes=None).classes_ is None
    bare = dn.Sequential([dn.Dense(3)], input_dim=2, seed=0)
    state = trained().state_dict()
    state["optimizer"] = None
    state["classes"] = np.arange(7)     # nothing to count against before compile
    bare.load_state_dict(state)
    assert bare.classes_.tolist() == list(range(7))


@pytest.mark.parametrize("value", [True, np.bool_(False), -1, 2**62, 1.0, "3", None])
def test_epochs_trained_outside_its_range_is_refused(value):
    net = trained()
    refused(net, rf"^epochs_trained must be an int >= 0 \(and < 2\*\*62\), got "
                 rf"{repr(value).replace('(', '.').replace(')', '.')}$", epochs_trained=value)
    assert net.epochs_trained == 1


@pytest.mark.parametrize("value", [0, 2**62 - 1, np.int64(3), np.uint8(4)])
def test_epochs_trained_at_its_edges_loads_as_an_int(value):
    net = loaded(trained(), epochs_trained=value)
    assert net.epochs_trained == int(value) and type(net.epochs_trained) is int


def test_the_generator_state_is_restored_or_refused():
    net = trained()
    mt = np.random.Generator(np.random.MT19937(3))
    loaded(net, rng_state=mt.bit_generator.state)
    assert isinstance(net._rng.bit_generator, np.random.MT19937)
    assert net._rng.random() == np.random.Generator(np.random.MT19937(3)).random()
    refused(net, r"^invalid random generator state: 'state'$",
            rng_state={"bit_generator": "PCG64"})
    refused(net, r"^unknown random bit generator None in rng_state \(known: \['MT19937', "
                 r"'PCG64', 'PCG64DXSM', 'Philox', 'SFC64'\]\)$", rng_state={"state": 1})


def test_a_history_without_epochs_or_logs_loads_and_a_bad_one_is_refused():
    net = loaded(trained(), history={})
    assert net.history.epoch == [] and dict(net.history) == {}
    net = loaded(net, history={"logs": {1: [np.float32(0.5), 2]}})
    assert net.history.epoch == [] and dict(net.history) == {"1": [0.5, 2.0]}
    assert all(type(v) is float for v in net.history["1"])
    net = loaded(net, history={"epoch": [np.int64(4), 5.0]})
    assert net.history.epoch == [4, 5] and dict(net.history) == {}
    refused(net, r"^invalid history: invalid literal for int\(\) with base 10: 'a'$",
            history={"epoch": ["a"]})
    refused(net, r"^invalid history: 'list' object has no attribute 'get'$", history=[1])


def test_pin_plan_pins_the_recorded_plan_without_its_source():
    net = dn.Sequential([dn.Dense(3)], input_dim=2, seed=0)
    with pytest.raises(ValueError, match=r"^plan: no plan given and none recorded "
                       r"\(fit and predict set plan_\)$"):
        net.pin_plan()
    assert net.plan is None
    with pytest.raises(ValueError, match=r"^plan\['kernel_rows'\] must hold one int per "
                       r"Dense layer \(1\), got \[4, 4\]$"):
        net.pin_plan({"kernel_rows": [4, 4]})
    assert net.pin_plan({"sample_rows": 8, "source": "mine"}) == {"sample_rows": 8}
    net = trained()
    assert "source" in net.plan_       # where the plan came from (profile or defaults)
    pinned = net.pin_plan()
    assert pinned == {k: v for k, v in net.plan_.items() if k != "source"} == net.plan
    assert "sample_rows" in pinned
    assert net.pin_plan({"sample_rows": 2}) == {"sample_rows": 2} == net.plan


def test_state_dict_holds_copies_of_everything_training_changed():
    net = trained()
    state = net.state_dict()
    assert sorted(state) == ["classes", "epochs_trained", "history", "optimizer", "parameters",
                             "plan", "rng_state"]
    assert list(state["parameters"]) == ["layers.0.kernel", "layers.0.bias"]
    for saved, live in zip(state["parameters"].values(), net._params()):
        np.testing.assert_array_equal(saved, live)
        assert saved is not live
    assert state["optimizer"]["iterations"] == 2          # 8 samples in batches of 4
    assert state["classes"].tolist() == [0, 1, 2] and state["classes"] is not net.classes_
    assert state["rng_state"] == net._rng.bit_generator.state
    assert state["epochs_trained"] == 1 and type(state["epochs_trained"]) is int
    assert state["history"]["epoch"] == [0]
    assert state["history"]["logs"] == {key: list(values) for key, values in net.history.items()}
    assert "loss" in state["history"]["logs"]
    assert state["plan"] == {"pinned": None, "used": net.plan_}
    bare = dn.Sequential([dn.Dense(3)], input_dim=2, seed=0).state_dict()
    assert bare["optimizer"] is None and bare["classes"] is None
    assert bare["history"] == {"epoch": [], "logs": {}} and bare["epochs_trained"] == 0
    assert bare["plan"] == {"pinned": None, "used": None}


def test_state_dict_names_the_plan_it_cannot_save():
    # a plan set by hand past pin_plan's checks is refused by the attribute's name
    net = dn.Sequential([dn.Dense(3)], input_dim=2, seed=0)
    net.plan_ = {"sample_rows": 0}
    with pytest.raises(ValueError, match=r"^plan_\['sample_rows'\] must be an int in \[1, "):
        net.state_dict()
    net.plan_, net.plan = None, {"sample_rows": 0}
    with pytest.raises(ValueError, match=r"^plan\['sample_rows'\] must be an int in \[1, "):
        net.state_dict()


def test_a_regression_fit_after_a_classification_fit_keeps_no_classes(tmp_path):
    # compiled again with a regression loss, the network kept the classes_
    # of its classification fit and wrote them into its model file
    X = np.random.default_rng(0).normal(size=(12, 2))
    net = dn.Sequential([dn.Dense(3)], input_dim=2, seed=0)
    net.compile("softmax_cross_entropy", "sgd")
    net.fit(X, np.arange(12) % 3, epochs=1, batch_size=4, verbose=0)
    net.compile("mean_squared_error", "sgd")
    with pytest.raises(ValueError, match=r"classes_ \(from the last fit\) has 3 labels, but "
                                         r"the network's mean_squared_error loss is a "
                                         r"regression.*net.classes_ = None"):
        net.save(tmp_path / "m.npz")
    assert net.classes_.tolist() == [0, 1, 2] and not list(tmp_path.iterdir())
    net.fit(X, np.zeros((12, 3)), epochs=1, batch_size=4, verbose=0)
    assert net.classes_ is None
    assert dn.load(net.save(tmp_path / "m.npz")).classes_ is None
