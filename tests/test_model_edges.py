"""descend.model.Sequential at its edges: what each public method promises
(defaults, messages, metric values, structure rules) pinned by values derived
by hand or printed by scikit-learn, so that a mutant of any constant,
comparison, default or message of the module fails a test.

The network-wide behaviour (training, gradients, saving) has its own files;
this one pins what those leave implicit: the arguments the thin methods hand
on, the exact text of the errors, and metric values on inputs built so that
every term matters (several outputs with different means, weights whose sum
is not n, a Dropout row in the summary).
"""
import numpy as np
import pytest

import descend as dn
from descend import _threads, activations, model as model_module, reference, training
from descend.model import PARALLEL_MIN_ROWS


def linear(W, b, loss="mean_squared_error", **dense):
    """A one-layer float64 network computing X @ W + b (no activation)."""
    W = np.asarray(W, np.float64)
    net = dn.Sequential([dn.Dense(W.shape[1], **dense)], input_dim=W.shape[0],
                        dtype="float64", seed=0)
    net.compile(loss=loss)
    net.set_weights([W, np.asarray(b, np.float64)])
    return net


# ---------------------------------------------------------------------- construction
def test_a_new_network_has_the_documented_defaults():
    net = dn.Sequential()
    assert net.dtype == np.float32
    assert net.layers == [] and net.input_dim is None and not net.built
    assert net.loss_ is None and net.optimizer is None and net.classes_ is None
    assert net.plan is None and net.plan_ is None and net.name is None
    assert net.stop_training is False and net.epochs_trained == 0
    assert dict(net.history) == {} and net.history.epoch == []
    assert net.count_params() == 0


def test_input_dim_without_layers_waits_and_with_layers_builds():
    alone = dn.Sequential(input_dim=3)
    assert alone.input_dim == 3 and not alone.built
    lazy = dn.Sequential([dn.Dense(2)])
    assert lazy.input_dim is None and not lazy.built
    one = dn.Sequential([dn.Dense(2)], input_dim=1)         # the smallest input_dim
    assert one.built and one.layers[0].kernel.shape == (1, 2)


@pytest.mark.parametrize("bad, error, match", [
    ({"input_dim": 0}, ValueError, r"^input_dim must be an int >= 1 or None, got 0 \(int\)$"),
    ({"seed": -1}, ValueError,
     r"^seed must be None, an int >= 0 or a Generator, got -1 \(int\)$"),
    ({"seed": "0"}, TypeError, r"^seed must be None, an int >= 0 or a Generator"),
    ({"name": 3}, TypeError, r"^Sequential: name must be None or a non-empty str, got 3"),
    ({"dtype": "float16"}, ValueError, r"^dtype must be 'float32' or 'float64'"),
])
def test_constructor_arguments_are_refused_by_name(bad, error, match):
    with pytest.raises(error, match=match):
        dn.Sequential([dn.Dense(2)], **bad)


def test_seed_zero_and_a_name_and_threads_are_kept():
    net = dn.Sequential([dn.Dense(2)], input_dim=3, seed=0, name="net", n_threads=1)
    assert (net.seed, net.name, net.n_threads) == (0, "net", 1)
    assert net.get_config()["seed"] == 0
    same = dn.Sequential([dn.Dense(2)], input_dim=3, seed=0)
    np.testing.assert_array_equal(net.layers[0].kernel, same.layers[0].kernel)


def test_a_generator_seed_is_used_and_not_recorded_as_a_seed():
    drawn = np.random.default_rng(5)
    net = dn.Sequential([dn.Dense(2)], input_dim=3, seed=drawn)
    assert net.seed is None and net.get_config()["seed"] is None
    again = dn.Sequential([dn.Dense(2)], input_dim=3, seed=np.random.default_rng(5))
    np.testing.assert_array_equal(net.layers[0].kernel, again.layers[0].kernel)
    other = dn.Sequential([dn.Dense(2)], input_dim=3, seed=5)   # the int seeds its own
    np.testing.assert_array_equal(other.layers[0].kernel, again.layers[0].kernel)


# ---------------------------------------------------------------------- structure
def test_add_refuses_shared_built_and_late_layers_with_their_reasons():
    dense = dn.Dense(3)
    with pytest.raises(ValueError, match=r"^Dense\(3, activation='identity'\) is in the "
                       r"network twice: shared layers are not supported, create one Dense "
                       r"per position$"):
        dn.Sequential([dense, dense])
    built = dn.Sequential([dn.Dense(2)], input_dim=3).layers[0]
    with pytest.raises(ValueError, match=r"is already built \(part of another network\?\): "
                       r"building this network would redraw its weights; create a new Dense "
                       r"and copy weights with set_weights$"):
        dn.Sequential().add(built)
    net = dn.Sequential([dn.Dense(2)], input_dim=3)
    with pytest.raises(ValueError, match=r"^cannot add a layer to a network that is already "
                       r"built$"):
        net.add(dn.Dense(1))
    with pytest.raises(TypeError, match=r"^layer must be a Dense or a Dropout, got 'x'"):
        net.add("x")
    assert len(net.layers) == 1


def test_one_dropout_object_may_sit_in_two_places():
    # a Dropout has no parameters: reusing it is not sharing weights
    drop = dn.Dropout(0.5)
    net = dn.Sequential([dn.Dense(3), drop, dn.Dense(3), drop, dn.Dense(2)], input_dim=2)
    assert net.layers[1] is net.layers[3] is drop
    assert [layer.kernel.shape for layer in net.dense_layers] == [(2, 3), (3, 3), (3, 2)]


@pytest.mark.parametrize("layers, match", [
    ([], r"^the last layer must be a Dense layer, got no layers$"),
    ([dn.Dense(2), dn.Dense(3), dn.Dropout(0.5)],
     r"^the last layer must be a Dense layer, got Dropout\(0.5\)$"),
    ([dn.Dense(3), dn.Dense(3, activation="softmax"), dn.Dense(2)],
     r"^activation='softmax' is only allowed on the last layer \(fused with "
     r"softmax_cross_entropy\)$"),
])
def test_compile_and_build_refuse_a_bad_structure(layers, match):
    # compile refuses a trailing Dropout through the structure check ("Dropout
    # cannot be the last layer" had no other way to be reached)
    net = dn.Sequential(layers)
    with pytest.raises(ValueError, match=match):
        net.compile(loss="mean_squared_error")
    with pytest.raises(ValueError, match=match):
        net.build(2)
    assert net.loss_ is None and not net.built


def test_a_softmax_output_layer_is_allowed_last():
    net = dn.Sequential([dn.Dense(3), dn.Dense(3), dn.Dense(2, activation="softmax")],
                        input_dim=2)
    assert net.compile(loss="softmax_cross_entropy") is net


def test_build_chains_the_shapes_in_the_networks_dtype():
    net = dn.Sequential([dn.Dense(4), dn.Dropout(0.2), dn.Dense(3, use_bias=False),
                         dn.Dense(2)], dtype="float64", seed=0)
    with pytest.raises(ValueError, match=r"^input_dim must be an int >= 1, got 0 \(int\)$"):
        net.build(0)
    net.build(1)
    assert net.input_dim == 1 and net.n_features_in_ == 1
    assert [layer.kernel.shape for layer in net.dense_layers] == [(1, 4), (4, 3), (3, 2)]
    assert net.dense_layers[1].bias is None
    assert all(p.dtype == np.float64 for p in net.get_weights())
    assert net.count_params() == (1 * 4 + 4) + 4 * 3 + (3 * 2 + 2)


def test_consecutive_dropouts_combine_into_one_rate_per_dense_input():
    net = dn.Sequential([dn.Dropout(0.5), dn.Dense(4), dn.Dropout(0.2), dn.Dropout(0.5),
                         dn.Dense(3), dn.Dense(2)])
    # keep probabilities multiply: 1 - (1 - 0.2) (1 - 0.5) = 0.6
    assert net._dropout_rates() == pytest.approx([0.5, 0.6, 0.0], abs=1e-15)


def test_the_last_layers_link_is_fused_into_the_loss_only_after_compile():
    net = dn.Sequential([dn.Dense(3, activation="sigmoid"), dn.Dense(1, activation="sigmoid")],
                        input_dim=2)
    codes = activations.ACTIVATIONS
    assert net._activation_codes() == [codes["sigmoid"], codes["sigmoid"]]
    net.compile(loss="binary_cross_entropy")
    assert net._activation_codes() == [codes["sigmoid"], codes["identity"]]


def test_parameter_names_and_decay_flags_skip_unused_biases():
    net = dn.Sequential([dn.Dense(3), dn.Dropout(0.5), dn.Dense(2, use_bias=False)],
                        input_dim=2)
    assert list(net.state_dict()["parameters"]) == [
        "layers.0.kernel", "layers.0.bias", "layers.2.kernel"]
    assert net._decay_flags() == [True, False, True]        # before compile: no bias decay
    net.compile(loss="mse", optimizer=dn.optimizers.SGD(0.1, weight_decay=0.1,
                                                       decay_bias=True))
    assert net._decay_flags() == [True, True, True]


# ---------------------------------------------------------------------- compile
def test_compile_defaults_to_sgd_and_restarts_the_schedule_clock():
    net = dn.Sequential([dn.Dense(3), dn.Dense(3), dn.Dense(2)], input_dim=2)
    net.epochs_trained = 5
    assert net.compile(loss="mse") is net
    assert type(net.optimizer) is dn.optimizers.SGD
    assert net.optimizer.learning_rate == 0.01              # SGD's documented default
    assert net.loss_.name == "mean_squared_error" and net.epochs_trained == 0


def test_a_softmax_output_needs_softmax_cross_entropy():
    net = dn.Sequential([dn.Dense(3), dn.Dense(3), dn.Dense(2, activation="softmax")],
                        input_dim=2)
    with pytest.raises(ValueError, match=r"^a softmax output layer needs "
                       r"loss='softmax_cross_entropy', got 'mean_squared_error'$"):
        net.compile(loss="mse")
    assert net.loss_ is None and net.optimizer is None


def test_training_and_evaluating_need_compile_and_weights_need_a_build():
    net = dn.Sequential([dn.Dense(2)], input_dim=2)
    with pytest.raises(RuntimeError, match=r"^call compile\(loss=\.\.\., optimizer=\.\.\.\) "
                       r"before training or evaluating the network$"):
        net.evaluate(np.zeros((1, 2)), [0])
    with pytest.raises(RuntimeError, match=r"^the network is not built yet: give input_dim "
                       r"or call fit first$"):
        dn.Sequential([dn.Dense(2)]).get_weights()


# ---------------------------------------------------------------------- hand-over
def test_fit_hands_its_documented_defaults_and_arguments_to_the_fit_config(monkeypatch):
    seen = []

    def validate(model, X, y, **kwargs):
        seen.append((model, X, y, kwargs))
        return "config"

    class Runner:
        def run(self):
            return "history"
    monkeypatch.setattr(training.FitConfig, "validate", validate)
    monkeypatch.setattr(model_module, "make_trainer",
                        lambda model, config: Runner() if (model is net
                                                           and config == "config") else None)
    net = dn.Sequential([dn.Dense(2)], input_dim=2).compile(loss="mse")
    X, y = object(), object()
    assert net.fit(X, y) == "history"
    model, X_seen, y_seen, kwargs = seen.pop()
    assert model is net and X_seen is X and y_seen is y
    assert kwargs == {"epochs": 1, "batch_size": 32, "shuffle": True, "verbose": 1,
                      "validation_data": None, "validation_split": 0.0, "callbacks": None,
                      "gradient_norms": False, "n_threads": None, "initial_epoch": None,
                      "steps_per_execution": None, "sample_weight": None,
                      "class_weight": None}
    passed = {name: object() for name in kwargs}
    assert net.fit(X, y, **passed) == "history"
    kwargs = seen.pop()[3]
    assert sorted(kwargs) == sorted(passed)
    assert all(kwargs[name] is value for name, value in passed.items())


def test_partial_fit_hands_its_documented_defaults_on(monkeypatch):
    seen = []
    monkeypatch.setattr(model_module, "_partial_fit",
                        lambda *args, **kwargs: seen.append((args, kwargs)) or "history")
    net = dn.Sequential([dn.Dense(2)], input_dim=2).compile(loss="mse")
    X, y = object(), object()
    assert net.partial_fit(X, y) == "history"
    args, kwargs = seen.pop()
    assert args[0] is net and args[1] is X and args[2] is y
    assert kwargs == {"classes": None, "batch_size": 32, "shuffle": True, "verbose": 0,
                      "n_threads": None, "sample_weight": None}
    passed = {name: object() for name in kwargs}
    net.partial_fit(X, y, **passed)
    kwargs = seen.pop()[1]
    assert all(kwargs[name] is value for name, value in passed.items())


@pytest.mark.parametrize("method, defaults", [
    ("gradients", (False, 0, None)),       # training, seed, sample_weight
    ("loss", (False, 0, None)),
    ("train_on_batch", (0, None, None)),   # seed, sample_weight, class_weight
])
def test_the_per_layer_methods_hand_their_defaults_to_the_reference_driver(
        monkeypatch, method, defaults):
    seen = []
    monkeypatch.setattr(reference, method, lambda *args: seen.append(args) or "result")
    net = dn.Sequential([dn.Dense(2)], input_dim=2).compile(loss="mse")
    X, y = object(), object()
    assert getattr(net, method)(X, y) == "result"
    args = seen.pop()
    assert args[0] is net and args[1] is X and args[2] is y and args[3:] == defaults
    passed = tuple(object() for _ in defaults)
    getattr(net, method)(X, y, *passed)
    assert all(a is b for a, b in zip(seen.pop()[3:], passed))


def test_per_layer_kernels_run_on_one_thread_below_the_parallel_threshold():
    net = dn.Sequential([dn.Dense(2)], input_dim=2, n_threads=2)
    assert net._threads_for(1) == (1, 1)
    assert net._threads_for(PARALLEL_MIN_ROWS - 1) == (1, 1)
    assert net._threads_for(PARALLEL_MIN_ROWS) == _threads.plan(PARALLEL_MIN_ROWS, 2)
    assert net._threads_for(PARALLEL_MIN_ROWS, 1) == _threads.plan(PARALLEL_MIN_ROWS, 1)
    one = dn.Sequential([dn.Dense(2)], input_dim=2, n_threads=1)
    assert one._threads_for(PARALLEL_MIN_ROWS) == _threads.plan(PARALLEL_MIN_ROWS, 1)
    assert one._threads_for(PARALLEL_MIN_ROWS, 2) == _threads.plan(PARALLEL_MIN_ROWS, 2)


def test_gradients_of_a_memmap_equal_those_of_the_array(tmp_path):
    # the per-layer driver reads X whole (lazy reading is for evaluate and fit)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 3))
    y = rng.normal(size=(6, 2))
    disk = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float64,
                                     shape=X.shape)
    disk[:] = X
    net = linear(rng.normal(size=(3, 2)), [0.1, -0.2])
    for (dW, db), (dW_disk, db_disk) in zip(net.gradients(X, y), net.gradients(disk, y)):
        np.testing.assert_array_equal(dW_disk, dW)
        np.testing.assert_array_equal(db_disk, db)


# ---------------------------------------------------------------------- data checks
def test_evaluate_names_X_and_y_in_its_errors():
    net = linear(np.eye(2), [0, 0], loss="softmax_cross_entropy")
    with pytest.raises(ValueError, match=r"^X has 3 features, but the network expects 2$"):
        net.evaluate(np.zeros((3, 3)), [0, 1, 0])
    with pytest.raises(ValueError, match=r"^X and y have different lengths: len\(X\) = 3, "
                       r"len\(y\) = 2$"):
        net.evaluate(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ValueError, match=r"^y is required, got None$"):
        net.evaluate(np.zeros((3, 2)), None)
    with pytest.raises(ValueError, match=r"^y has 3 distinct labels, but the network has 2 "
                       r"outputs"):
        net.evaluate(np.zeros((3, 2)), ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"^X has 3 features, but the network expects 2$"):
        net.predict(np.zeros((3, 3)))


def test_validation_data_is_checked_against_the_training_width_before_the_build():
    net = dn.Sequential([dn.Dense(2)]).compile(loss="mse")
    with pytest.raises(ValueError, match=r"^validation_data\[0\] has 4 features, but the "
                       r"network expects 3$"):
        net.fit(np.zeros((4, 3)), np.zeros((4, 2)),
                validation_data=(np.zeros((2, 4)), np.zeros((2, 2))), verbose=0)
    with pytest.raises(ValueError, match=r"^validation_data\[0\] and validation_data\[1\] "
                       r"have different lengths: len\(validation_data\[0\]\) = 2, "
                       r"len\(validation_data\[1\]\) = 3$"):
        net.fit(np.zeros((4, 3)), np.zeros((4, 2)),
                validation_data=(np.zeros((2, 3)), np.zeros((3, 2))), verbose=0)
    assert not net.built


def test_string_labels_of_a_later_evaluate_keep_the_fit_classes():
    # a validation set or an evaluate holding a subset of the labels is encoded
    # with the classes of the training data, not with its own
    X = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1]] * 4)
    y = np.array(["a", "b", "c"] * 4)
    net = dn.Sequential([dn.Dense(3)], input_dim=3, seed=0, dtype="float64")
    net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(0.5))
    X_val, y_val = X[2:3].repeat(2, axis=0), np.array(["c", "c"])
    history = net.fit(X, y, epochs=30, batch_size=12, shuffle=False, verbose=0,
                      validation_data=(X_val, y_val))
    assert list(net.classes_) == ["a", "b", "c"]
    assert list(net.predict_classes(X_val)) == ["c", "c"]
    assert history["val_accuracy"][-1] == 1.0
    assert net.evaluate(X_val, y_val)["accuracy"] == 1.0
    assert net.evaluate(X_val, y_val)["loss"] == pytest.approx(history["val_loss"][-1],
                                                               rel=1e-12)


def test_fit_names_y_when_its_labels_do_not_fit_the_outputs():
    net = dn.Sequential([dn.Dense(2)], input_dim=2, seed=0)
    net.compile(loss="softmax_cross_entropy")
    with pytest.raises(ValueError, match=r"^y has 3 distinct labels, but the network has 2 "
                       r"outputs"):
        net.fit(np.zeros((3, 2)), ["a", "b", "c"], verbose=0)
    assert net.classes_ is None and net.epochs_trained == 0


def test_the_label_count_comes_from_the_last_layer():
    net = dn.Sequential([dn.Dense(4), dn.Dense(5), dn.Dense(3)], input_dim=2, seed=0)
    net.compile(loss="softmax_cross_entropy")
    assert set(net.evaluate(np.zeros((3, 2)), ["a", "b", "c"])) == {"loss", "accuracy"}


# ---------------------------------------------------------------------- metrics
# O = X @ I + b for these X and b (hand-computed):
#   [[1.5, -1], [0.5, 0], [1.5, 0], [2.5, -1], [0.5, 1]]
X_REG = np.array([[1.0, 0], [0, 1], [1, 1], [2, 0], [0, 2]])
B_REG = [0.5, -1.0]
T_REG = np.array([[1.0, 0], [1, 0], [2, 1], [2, -1], [0, 3]])
W_REG = np.array([1.0, 2, 3, 0, 4])
# python -c "import numpy as np; from sklearn.metrics import *;
#   O = np.array([[1.5,-1],[0.5,0],[1.5,0],[2.5,-1],[0.5,1]]);
#   T = np.array([[1,0],[1,0],[2,1],[2,-1],[0,3.]]); w = np.array([1,2,3,0,4.]);
#   print(mean_squared_error(T,O), mean_absolute_error(T,O), r2_score(T,O));
#   print(mean_squared_error(T,O,sample_weight=w), mean_absolute_error(T,O,sample_weight=w),
#         r2_score(T,O,sample_weight=w))"       (scikit-learn 1.x)
SKLEARN = {None: (0.725, 0.65, 0.45069875776397517),
           "weighted": (1.125, 0.85, 0.21277997364953882)}


@pytest.mark.parametrize("weighted", [None, "weighted"])
def test_regression_scores_equal_scikit_learns_over_two_outputs(weighted):
    net = linear(np.eye(2), B_REG)
    weights = W_REG if weighted else None
    scores = net.evaluate(X_REG, T_REG, sample_weight=weights)
    mse, mae, r2 = SKLEARN[weighted]
    assert scores == pytest.approx({"loss": mse, "mse": mse, "mae": mae, "r2": r2},
                                   rel=1e-12)


def test_the_loss_adds_the_layers_penalty_to_the_data_loss():
    net = linear(np.eye(2), B_REG, kernel_regularizer=dn.regularizers.L1L2(l2=0.25))
    scores = net.evaluate(X_REG, T_REG)
    # 0.25 * sum(I^2) = 0.5 on top of the mean squared error
    assert scores["loss"] == pytest.approx(0.725 + 0.5, rel=1e-12)
    assert scores["mse"] == pytest.approx(0.725, rel=1e-12)


def test_weighted_accuracy_divides_by_the_sum_of_the_weights():
    net = linear([[1.0, -1.0]], [0, 0], loss="softmax_cross_entropy")
    X = np.array([[1.0], [-1.0], [1.0]])             # predicts class 0, 1, 0
    y = [0, 0, 1]                                     # right, wrong, wrong
    assert net.evaluate(X, y)["accuracy"] == pytest.approx(1 / 3, rel=1e-15)
    scores = net.evaluate(X, y, sample_weight=[3.0, 1.0, 0.5])
    assert scores["accuracy"] == pytest.approx(3 / 4.5, rel=1e-15)
    # the weighted mean of the per-sample losses log(1 + e^{-2}), log(1 + e^2) x2
    losses = np.log1p(np.exp([-2.0, 2.0, 2.0]))
    assert scores["loss"] == pytest.approx(np.average(losses, weights=[3, 1, 0.5]),
                                           rel=1e-12)


def test_r2_takes_each_outputs_own_weighted_mean():
    # per output: 1 - ss_res / ss_tot where ss_tot > 0; 1 for a perfect fit of a
    # constant, 0 otherwise (scikit-learn's convention)
    ss_res = np.array([0.0, 2.0, 2.0, 0.25])
    ss_tot = np.array([0.0, 0.0, 4.0, 0.5])
    assert model_module.r2_from_sums(ss_res, ss_tot) == pytest.approx(
        (1.0 + 0.0 + 0.5 + 0.5) / 4, abs=1e-15)
    # sums that overflowed: NaN, without a warning (the suite makes warnings errors)
    assert np.isnan(model_module.r2_from_sums(np.array([np.inf]), np.array([np.inf])))
    t = np.array([[0.0, 10.0], [2.0, 10.0], [4.0, 13.0]])
    out = np.array([[1.0, 10.0], [2.0, 11.0], [3.0, 13.0]])
    w = np.array([1.0, 2.0, 1.0])
    # output 0: weighted mean 2, ss_tot 4 + 0 + 4 = 8, ss_res 1 + 0 + 1 = 2;
    # output 1: mean 43/4 = 10.75, ss_tot 0.5625 + 2*0.5625 + 5.0625 = 6.75,
    # ss_res 2*1 = 2
    assert model_module._r2(t, out, w) == pytest.approx(
        ((1 - 2 / 8) + (1 - 2 / 6.75)) / 2, rel=1e-14)


def test_evaluate_refuses_to_return_an_overflowed_score():
    net = linear([[1e30]], [0.0])
    net_before = net.get_weights()
    with pytest.raises(FloatingPointError, match=r"^evaluate produced non-finite scores "
                       r"\{'loss': inf, 'mse': inf, 'mae': inf, 'r2': 0.0\} for this X: the "
                       r"network's output overflows \(inputs or weights out of range\)$"):
        net.evaluate(np.array([[1e300]]), [0.0])
    np.testing.assert_array_equal(net.get_weights()[0], net_before[0])


# ---------------------------------------------------------------------- labels
def test_predicted_labels_of_each_loss_from_known_logits():
    X = np.array([[0.0, 0.5, -1.0], [2.0, 0.0, 0.25], [-0.5, 1.5, 1.0]])
    multi = linear(np.eye(3), [0, 0, 0], loss="binary_cross_entropy")
    labels = multi.predict_classes(X)                 # 1 where the logit is > 0
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [[0, 1, 0], [1, 0, 1], [0, 1, 1]])
    binary = linear([[1.0]], [0.0], loss="binary_cross_entropy")
    logits = np.array([[-1.0], [0.0], [0.5], [2.0]])
    np.testing.assert_array_equal(binary.predict_classes(logits), [0, 0, 1, 1])
    binary.classes_ = np.array(["no", "yes"])
    np.testing.assert_array_equal(binary.predict_classes(logits), ["no", "no", "yes", "yes"])
    softmax = linear(np.eye(3), [0, 0, 0], loss="softmax_cross_entropy")
    np.testing.assert_array_equal(softmax.predict_classes(X), [1, 0, 1])
    np.testing.assert_array_equal(softmax.predict_proba(X), softmax.predict(X))
    e = np.exp(X[0])
    np.testing.assert_allclose(softmax.predict_proba(X[:1])[0], e / e.sum(), rtol=1e-12)
    regression = linear(np.eye(3), [0, 0, 0])
    with pytest.raises(TypeError, match=r"^predict_classes needs a classification loss, "
                       r"the network uses 'mean_squared_error'$"):
        regression.predict_classes(X)


# ---------------------------------------------------------------------- weights
def test_set_weights_refuses_with_reasons_and_changes_nothing():
    net = dn.Sequential([dn.Dense(3), dn.Dense(2)], input_dim=2, seed=0)
    before = net.get_weights()
    good = [np.ones((2, 3)), np.ones(3), np.ones((3, 2)), np.ones(2)]
    cases = [
        (3, TypeError, r"^weights must be a list of arrays \(as from get_weights\), got 3"),
        ([np.ones((2, 3))], ValueError, r"^set_weights expected 4 arrays, got 1$"),
        (good[:3] + [np.ones(3)], ValueError,
         r"^weights\[3\] has shape \(3,\), expected \(2,\)$"),
        ([good[0].astype(str)] + good[1:], ValueError,
         r"^weights\[0\] must be finite real numbers, got dtype <U32$"),
        (good[:2] + [np.full((3, 2), 1e300)] + good[3:], ValueError,
         r"^weights\[2\] holds NaN or infinite values \(in the network's dtype float32\)$"),
    ]
    for weights, error, match in cases:
        with pytest.raises(error, match=match):
            net.set_weights(weights)
        for now, then in zip(net.get_weights(), before):
            np.testing.assert_array_equal(now, then)
    net.set_weights(tuple(good))
    for now, wanted in zip(net.get_weights(), good):
        assert now.dtype == np.float32
        np.testing.assert_array_equal(now, wanted)


# ---------------------------------------------------------------------- summary
def test_summary_text_with_a_dropout_row_a_long_layer_and_a_name():
    net = dn.Sequential([dn.Dense(16, activation="relu"), dn.Dropout(0.5), dn.Dense(3)],
                        input_dim=4, name="small")
    lines = []
    assert net.summary(print_fn=lines.append) is None
    # columns 33 (the longest repr, 31 characters, + 2), 18 and 10 (right-aligned)
    # wide; params 4*16+16 = 80 and 16*3+3 = 51
    assert lines == [
        "Sequential small",
        "layer                            output shape          params",
        "Dense(16, activation='relu')     (None, 16)                80",
        "Dropout(0.5)                     (None, 16)                 0",
        "Dense(3, activation='identity')  (None, 3)                 51",
        "total parameters: 131  dtype: float32",
    ]


def test_summary_of_an_unbuilt_unnamed_network_and_print_fn_checks(capsys):
    net = dn.Sequential([dn.Dense(2, activation="elu"), dn.Dropout(0.25),
                         dn.Dense(1, activation="elu")])
    net.summary()
    # every repr is at most 26 characters: the first column keeps its 28
    assert capsys.readouterr().out.split("\n") == [
        "Sequential",
        "layer                       output shape          params",
        "Dense(2, activation='elu')  (None, 2)                  0",
        "Dropout(0.25)               (None, 2)                  0",
        "Dense(1, activation='elu')  (None, 1)                  0",
        "total parameters: 0  dtype: float32",
        "",
    ]
    with pytest.raises(TypeError, match=r"^print_fn must be a callable \(such as print or "
                       r"list.append\) or None, got 3 \(int\)$"):
        net.summary(print_fn=3)


# ---------------------------------------------------------------------- config
@pytest.mark.parametrize("config, got", [
    ([1], "list"),
    ({}, "a dict without 'layers'"),
    ({"layers": (1,)}, "a dict whose 'layers' is a tuple"),
])
def test_from_config_names_what_it_got(config, got):
    with pytest.raises(ValueError, match=r"^the config must be a dict with a 'layers' list, "
                       rf"got {got}$"):
        dn.Sequential.from_config(config)


def test_from_config_rebuilds_every_field_of_get_config():
    net = dn.Sequential([dn.Dense(3, use_bias=False), dn.Dropout(0.5), dn.Dense(2)],
                        input_dim=4, dtype="float64", seed=7, n_threads=1, name="copy")
    config = net.get_config()
    assert {k: v for k, v in config.items() if k != "layers"} == {
        "input_dim": 4, "dtype": "float64", "seed": 7, "n_threads": 1, "name": "copy"}
    copy = dn.Sequential.from_config(config)
    assert copy.get_config() == config and copy.built
    for a, b in zip(copy.get_weights(), net.get_weights()):   # same seed, same draw
        np.testing.assert_array_equal(a, b)
    assert dn.Sequential.parameter_shapes(config) == {
        "layers.0.kernel": (4, 3), "layers.2.kernel": (3, 2), "layers.2.bias": (2,)}
    unbuilt = dict(config, input_dim=None)
    assert dn.Sequential.parameter_shapes(unbuilt) == {}
    assert dn.Sequential.parameter_shapes(dict(config, input_dim=True)) == {}
    assert not dn.Sequential.from_config(unbuilt).built


def test_compile_config_round_trip():
    net = dn.Sequential([dn.Dense(2)], input_dim=2)
    assert net.get_compile_config() is None
    net.compile(loss="mse", optimizer=dn.optimizers.SGD(0.5, momentum=0.9))
    config = net.get_compile_config()
    assert config == {"loss": "mean_squared_error",
                      "optimizer": net.optimizer.get_config()}
    copy = dn.Sequential([dn.Dense(2)], input_dim=2).compile_from_config(config)
    assert copy.loss_.name == "mean_squared_error"
    assert copy.optimizer.get_config() == config["optimizer"]
    assert copy.optimizer.momentum == 0.9


def test_repr_names_layers_and_input_dim():
    net = dn.Sequential([dn.Dense(2)], input_dim=3)
    assert repr(net) == "Sequential([Dense(2, activation='identity')], input_dim=3)"


def test_float64_outputs_whose_squares_overflow_are_refused_not_warned_about():
    # outputs near 1e200 are finite, their squares are not: evaluate must raise its
    # FloatingPointError and fit its DivergenceError, not numpy's RuntimeWarning
    # (an error under this suite's warnings-as-errors, as under python -W error)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.normal(size=(40, 1))
    net = dn.Sequential([dn.Dense(4, activation="relu"), dn.Dense(1)], input_dim=3, seed=0,
                        dtype="float64")
    net.compile(loss="mse", optimizer=dn.optimizers.SGD(0.01))
    weights = net.get_weights()
    with pytest.raises(FloatingPointError, match="non-finite scores"):
        net.evaluate(X * 1e200, y)
    with pytest.raises(dn.DivergenceError, match="val_loss, val_mse, val_r2"):
        net.fit(X, y, epochs=1, batch_size=8, validation_data=(X * 1e200, y), verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(net.get_weights(), weights))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_kernel_beyond_any_arrays_size_is_refused_naming_units_before_any_draw(dtype):
    # numpy's "array is too big" named neither the layer nor units, after the
    # layers before it were built and the generator had moved on
    net = dn.Sequential([dn.Dense(4), dn.Dense(5), dn.Dense(2**62)], seed=0, dtype=dtype)
    with pytest.raises(ValueError, match=r"Dense\(units=4611686018427387904\): its "
                                         rf"\(5, 4611686018427387904\) {dtype} kernel"):
        net.build(8)
    assert all(layer.kernel is None for layer in net.dense_layers)
    net.layers[2].units = 3
    net.build(8)
    fresh = dn.Sequential([dn.Dense(4), dn.Dense(5), dn.Dense(3)], seed=0, dtype=dtype)
    fresh.build(8)
    for u, v in zip(net.get_weights(), fresh.get_weights()):     # the same draws
        np.testing.assert_array_equal(u, v)


def test_an_input_dim_beyond_any_arrays_size_is_named():
    # the message blamed Dense(units=2) alone: "choose fewer units"
    with pytest.raises(ValueError, match=r"kernel \(input_dim=4611686018427387904\) .*"
                                         r"choose fewer units or a smaller input_dim"):
        dn.Sequential([dn.Dense(2)], input_dim=2**62)


@pytest.mark.parametrize("sizes, layer", [((2**62,), "layer 1 \\(3, 4611686018427387904\\)"),
                                         ((5, 2**61), "layer 2 \\(5, 2305843009213693952\\)"),
                                         ((2**61, 4), "layer 1 \\(3, 2305843009213693952\\)")])
def test_the_estimators_name_a_hidden_layer_beyond_any_arrays_size(sizes, layer):
    # the message named Dense(units=...), an argument the estimator's user never wrote
    from descend.estimators import MLPClassifier
    X, y = np.random.default_rng(0).random((20, 3)), np.arange(20) % 2
    clf = MLPClassifier(hidden_layer_sizes=sizes)
    with pytest.raises(ValueError, match=r"hidden_layer_sizes=\(.*\): the weights of " + layer
                       + r" in float64 .* choose smaller hidden layers"):
        clf.fit(X, y)
    assert not hasattr(clf, "net_") and not hasattr(clf, "classes_")
