"""Session 19's breaker: callbacks that change settings the compiled loop
read once, fits that fail before their first epoch, a pinned plan that does
not fit the network, gradient checking with proximal L1, TensorBoard's
gradient data, and the data loaders' paths and labels. Each test names what
the code did before its fix ("was: ...")."""
import gzip
import hashlib
import os
import re
import time
import warnings

import numpy as np
import pytest

import descend as dn
from descend import datasets
from test_breaker2 import same_weights


def small_net(optimizer=None, **layer):
    net = dn.Sequential([dn.Dense(8, activation="relu", **layer), dn.Dense(3)], input_dim=4,
                        seed=0, dtype="float64", n_threads=1)
    return net.compile("softmax_cross_entropy",
                       optimizer or dn.optimizers.SGD(0.1, momentum=0.9))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(48, 4)), rng.integers(0, 3, 48)


# ------------------------------------ settings the compiled loop read once
class _Change(dn.callbacks.Callback):
    """Sets `attribute` of `target(model)` to `value` in the hook `when`."""

    def __init__(self, when, target, attribute, value):
        super().__init__()
        self.when, self.target, self.attribute, self.value = when, target, attribute, value

    def _change(self):
        setattr(self.target(self.model), self.attribute, self.value)

    def on_epoch_end(self, epoch, logs=None):
        if self.when == "epoch_end" and epoch == 0:
            self._change()

    def on_epoch_begin(self, epoch, logs=None):
        if self.when == "epoch_begin" and epoch == 1:
            self._change()

    def on_train_batch_end(self, batch, logs=None):
        if self.when == "batch" and batch == 1:
            self._change()


CHANGES = [(lambda m: m.optimizer, "momentum", 0.0, "optimizer.momentum", "0.9 -> 0.0"),
           (lambda m: m.optimizer, "clipvalue", 1.0, "optimizer.clipvalue", "None -> 1.0"),
           (lambda m: m.layers[0], "activation", "tanh", "layers.0.activation",
            "'relu' -> 'tanh'"),
           (lambda m: m.layers[0], "kernel_regularizer", dn.regularizers.l2(0.1),
            "layers.0.kernel_regularizer", "None -> {'l1': 0.0, 'l2': 0.1")]


@pytest.mark.parametrize("target, attribute, value, key, shown", CHANGES)
@pytest.mark.parametrize("when, kept", [("epoch_end", 1), ("epoch_begin", 1), ("batch", 0)])
def test_a_setting_changed_during_fit_stops_it_instead_of_being_ignored(
        data, target, attribute, value, key, shown, when, kept):
    # was: the loop trained on with the old value while the network reported
    # (and saved) the new one: momentum 0.0 on the config of a momentum run
    reference = small_net()
    reference.fit(*data, epochs=kept, batch_size=8, shuffle=False, verbose=0)
    net = small_net()
    message = re.escape(f"fit: {key} changed during fit ({shown}") + ".*read it once"
    with pytest.raises(RuntimeError, match=message):
        net.fit(*data, epochs=2, batch_size=8, shuffle=False, verbose=0,
                steps_per_execution=1, callbacks=[_Change(when, target, attribute, value)])
    # the epochs before the change are kept, the one it would have reached is not
    assert net.epochs_trained == kept and net.history.epoch == list(range(kept))
    assert same_weights(net.get_weights(), reference.get_weights())


def test_the_learning_rate_and_weight_decay_still_change_between_epochs(data):
    class Halve(dn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.optimizer.learning_rate /= 2
            self.model.optimizer.weight_decay = 1e-3
    net = small_net()
    history = net.fit(*data, epochs=3, verbose=0, callbacks=[Halve()])
    assert history["learning_rate"] == [0.1, 0.05, 0.025]


def test_a_setting_changed_between_fits_is_read_by_the_next_fit(data):
    changed, fresh = small_net(), small_net(dn.optimizers.SGD(0.1, momentum=0.0))
    changed.optimizer.momentum = 0.0
    changed.fit(*data, epochs=1, batch_size=8, shuffle=False, verbose=0)
    fresh.fit(*data, epochs=1, batch_size=8, shuffle=False, verbose=0)
    assert same_weights(changed.get_weights(), fresh.get_weights())


# ---------------------------------- a fit that fails before its first epoch
class _FailsAtStart(dn.callbacks.Callback):
    def on_train_begin(self, logs=None):
        raise RuntimeError("callback set-up failed")


def test_a_callback_failing_in_on_train_begin_keeps_the_history(data):
    # was: fit had replaced net.history (and so state_dict's and save's) first
    net = small_net()
    net.fit(*data, epochs=3, verbose=0)
    with pytest.raises(RuntimeError, match="callback set-up failed"):
        net.fit(*data, epochs=1, verbose=0, callbacks=[_FailsAtStart()])
    assert net.history.epoch == [0, 1, 2] and len(net.history["loss"]) == 3
    assert net.state_dict()["history"]["epoch"] == [0, 1, 2]


def test_a_first_fit_failing_in_on_train_begin_leaves_classes_unset(data):
    # was: classes_ kept the failed fit's labels, and the next fit with
    # other labels was refused ("y has labels not in classes_")
    X, y = data
    net = small_net()
    with pytest.raises(RuntimeError):
        net.fit(X, np.array(["a", "b", "c"])[y], epochs=1, verbose=0,
                callbacks=[_FailsAtStart()])
    assert net.classes_ is None
    net.fit(X, y, epochs=1, verbose=0)
    assert list(net.classes_) == [0, 1, 2]


def test_a_bad_cache_directory_is_refused_before_fit_changes_anything(data, monkeypatch):
    # was: refused while the compiled loop was built, after classes_ and the
    # optimizer's state were set (the first fit in a process)
    X, y = data
    net = small_net()
    monkeypatch.setenv("DESCEND_PROFILE", "1")      # (where fit reads the directory)
    monkeypatch.setenv("DESCEND_CACHE_DIR", "~no_such_user_descend/cache")
    with pytest.raises(ValueError, match="DESCEND_CACHE_DIR must be a directory"):
        net.fit(X, np.array(["a", "b", "c"])[y], epochs=1, verbose=0)
    assert net.classes_ is None and net.optimizer.state is None


# ------------------------------------- a pinned plan that does not fit
def test_save_refuses_a_plan_that_load_would_refuse(data, tmp_path):
    # was: saved; load then raised ModelFileError on the file
    net = small_net()
    net.fit(*data, epochs=1, verbose=0)
    net.plan = {"kernel_rows": [64, 64, 64]}
    message = r"plan\['kernel_rows'\] must hold one int per Dense layer \(2\)"
    with pytest.raises(ValueError, match=message):
        net.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()
    net.plan = {"kernel_rows": [64, 64]}
    net.save(tmp_path / "m.npz")
    assert dn.load(tmp_path / "m.npz").plan == {"kernel_rows": [64, 64]}


# -------------------------------------------------------- gradient checking
def test_check_gradients_leaves_proximal_l1_out_of_both_sides(data):
    # was: 0.36 (the finite differences counted the proximal penalty that
    # backpropagation rightly leaves out)
    X, y = data
    proximal = small_net(kernel_regularizer=dn.regularizers.l1_l2(0.1, 0.01))
    proximal.layers[0].kernel_regularizer = dn.regularizers.L1L2(0.1, 0.01, proximal=True)
    assert dn.check_gradients(proximal, X[:5], y[:5]) < 1e-6
    # the network's own regularizer is untouched, and net.loss still counts it
    assert proximal.layers[0].kernel_regularizer.l1 == 0.1
    smooth = small_net(kernel_regularizer=dn.regularizers.l2(0.01))
    assert proximal.loss(X, y) > smooth.loss(X, y)


def test_numerical_gradients_of_an_unbuilt_network_raise():
    # was: [(None, None), (None, None)]
    net = dn.Sequential([dn.Dense(4), dn.Dense(3)])
    net.compile(loss="softmax_cross_entropy")
    with pytest.raises(RuntimeError, match="the network is not built yet"):
        dn.numerical_gradients(net, [[1.0, 2.0]], [0])


# --------------------------------------------------- TensorBoard's gradients
@pytest.mark.parametrize("bad, message", [
    ("nan", r"TensorBoard's gradient_data\[0\] contains 1 NaN"),
    ("label", r"TensorBoard's gradient_data\[1\] has class ids outside \[0, 3\)"),
    ("features", r"TensorBoard: gradient_data has 2 features, the model 4")])
def test_tensorboards_gradient_data_is_checked_before_the_first_epoch(data, tmp_path,
                                                                       bad, message):
    # was: refused at the first histogram epoch, after it trained, naming "X"
    pytest.importorskip("tensorboardX")
    X, y = data
    Xg, yg = X[:10].copy(), y[:10].copy()
    if bad == "nan":
        Xg[0, 0] = np.nan
    elif bad == "label":
        yg[0] = 7
    else:
        Xg = Xg[:, :2]
    net = small_net()
    board = dn.callbacks.TensorBoard(str(tmp_path), histogram_freq=2, gradient_data=(Xg, yg))
    with pytest.raises(ValueError, match=message):
        net.fit(X, y, epochs=2, verbose=0, callbacks=[board])
    assert net.epochs_trained == 0 and board.writers == {}


# ------------------------------------------------------------------ data
@pytest.mark.parametrize("value, message", [
    ("~no_such_user_descend/mnist", "its leading ~ the home directory"),
    (" ", "only whitespace")])
def test_a_data_home_of_no_known_user_or_only_space_is_a_value_error(monkeypatch, value,
                                                                     message):
    # was: pathlib's RuntimeError "Could not determine home directory."; " "
    # was taken as a directory named " "
    with pytest.raises(ValueError, match=f"data_home must be a directory.*{message}"):
        datasets.load_mnist(data_home=value, download=False)
    monkeypatch.setenv("DESCEND_DATA", value)
    with pytest.raises(ValueError, match=f"DESCEND_DATA must be a directory.*{message}"):
        datasets.load_mnist(download=False)


def test_a_file_changed_in_place_is_hashed_again_even_with_its_mtime_set_back(
        tmp_path, monkeypatch):
    # was: the check was skipped for an unchanged (path, size, mtime)
    name = "t10k-labels-idx1-ubyte.gz"
    good, bad = b"\x00\x01\x02\x03", b"\x09\x09\x09\x09"
    monkeypatch.setitem(datasets.MNIST_FILES, name, hashlib.sha256(good).hexdigest())
    path = tmp_path / name
    path.write_bytes(gzip.compress(good, mtime=0))
    assert datasets._decompress_and_verify(path, name) == good
    stat = os.stat(path)
    time.sleep(0.05)        # past the file system's clock tick
    path.write_bytes(gzip.compress(bad, mtime=0))        # same size, same inode
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(path).st_size == stat.st_size
    with pytest.raises(datasets.DatasetCorruptError, match="does not match"):
        datasets._decompress_and_verify(path, name)


def test_targets_too_large_for_the_dtype_raise_without_a_warning_first():
    # was: numpy's "overflow encountered in cast" first (an error under -W error)
    net = dn.Sequential([dn.Dense(1)], input_dim=2, seed=0)
    net.compile("mean_squared_error", "sgd")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="y holds values beyond the range of the "
                                             "network's dtype float32 \\(largest 3.4"):
            net.fit(np.ones((4, 2)), np.full(4, 1e39), verbose=0)


@pytest.mark.parametrize("labels", [np.array([1, 2, 1, 2], dtype="timedelta64[s]"),
                                    np.array(["2020-01-01", "2021-01-01"] * 2,
                                             dtype="datetime64[D]")])
def test_durations_and_dates_are_not_class_labels(labels):
    # was: timedelta labels trained as two classes (while X and MSE targets refused them)
    net = dn.Sequential([dn.Dense(2)], input_dim=2, seed=0)
    net.compile("softmax_cross_entropy", "sgd")
    with pytest.raises(TypeError, match="y labels must be ints, bools, floats or strings"):
        net.fit(np.ones((4, 2)), labels, verbose=0)
    assert net.classes_ is None and net.epochs_trained == 0


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(y=np.array([1, "a"] * 5, dtype=object), stratify=True), TypeError,
     r"y \(stratify=True\) must hold labels of one comparable kind.*\['int', 'str'\]"),
    (dict(y=np.arange(10), stratify="yes"), ValueError,
     "stratify must be True/False or 10 labels .*got 'yes'"),
    (dict(y=[[1], [1, 2]] * 5), ValueError,
     "y must be an array with one entry per sample, got a list of rows of different")])
def test_train_test_split_names_the_argument(kwargs, error, message):
    # was: numpy's own errors ('<' not supported; inhomogeneous shape; "got shape ()")
    X = np.random.default_rng(0).random((10, 2))
    with pytest.raises(error, match=message):
        datasets.train_test_split(X, **kwargs)


# ---------------------------------------------- a new user's frictions
@pytest.mark.parametrize("make, message", [
    (lambda: dn.optimizers.SGD(lr=0.1),
     "SGD() got an unexpected keyword argument 'lr' (descend's name: learning_rate)"),
    (lambda: dn.optimizers.Adam(betas=(0.9, 0.99)),
     "Adam() got an unexpected keyword argument 'betas' (descend's name: beta_1 and beta_2)"),
    (lambda: dn.optimizers.RMSprop(alpha=0.9),
     "RMSprop() got an unexpected keyword argument 'alpha' (descend's name: rho)"),
    (lambda: dn.optimizers.AdamW(foo=1), "AdamW() got an unexpected keyword argument 'foo'"),
    # the twenty-first session's new user: bare TypeErrors before
    (lambda: dn.optimizers.Adam(beta1=0.9),
     "Adam() got an unexpected keyword argument 'beta1' (descend's name: beta_1)"),
    (lambda: dn.Dense(32, input_dim=64),
     "Dense() got an unexpected keyword argument 'input_dim' (the input size goes to the "
     "network: Sequential([...], input_dim=n), or the first fit sets it)"),
    (lambda: dn.Dense(32, input_shape=(64,)),
     "Dense() got an unexpected keyword argument 'input_shape' (the input size goes to the "
     "network: Sequential([...], input_dim=n), or the first fit sets it)"),
    (lambda: dn.Dense(32, foo=1), "Dense() got an unexpected keyword argument 'foo'"),
    (lambda: datasets.train_test_split(np.zeros((4, 1)), np.zeros(4), random_state=0),
     "train_test_split() got an unexpected keyword argument 'random_state' "
     "(descend's name: seed)")])
def test_a_misnamed_optimizer_argument_names_the_class_and_descends_name(make, message):
    # was: "Optimizer.__init__() got an unexpected keyword argument 'lr'"
    with pytest.raises(TypeError) as info:
        make()
    assert str(info.value) == message


def test_a_dense_layers_repr_shows_the_alpha_its_activation_reads():
    # was: Dense(4, activation='leaky_relu') for a slope of 0.2
    assert repr(dn.Dense(4, activation="leaky_relu", alpha=0.2)) == \
        "Dense(4, activation='leaky_relu', alpha=0.2)"
    assert repr(dn.Dense(4, activation="relu")) == "Dense(4, activation='relu')"
    assert repr(dn.Dense(4, activation="elu")) == "Dense(4, activation='elu')"   # default


def test_model_checkpoint_prints_five_significant_digits(data, tmp_path, capsys):
    # was: "improved from 1.4446222814397576 to 0.8882..."
    checkpoint = dn.callbacks.ModelCheckpoint(str(tmp_path / "m.npz"), monitor="loss",
                                              save_best_only=True, verbose=1)
    small_net().fit(*data, epochs=1, verbose=0, callbacks=[checkpoint])
    line = capsys.readouterr().out
    assert re.fullmatch(r"Epoch 1: loss improved from inf to \d\.\d{1,4}(e-\d+)?, saving "
                        r"model to .*\n", line), line


# ------------------------------------- a second breaker, on the changes above
def test_a_layer_appended_mid_epoch_stops_the_fit_and_the_rollback_completes(data):
    # was: the rollback's set_weights raised "expected 6 arrays, got 4" over
    # the RuntimeError, leaving the partial epoch in the weights and state
    net = small_net()
    net.fit(*data, epochs=1, batch_size=8, verbose=0)
    before, state = net.get_weights(), net.optimizer.get_state()
    rng = net._rng.bit_generator.state

    class Grow(dn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2 and len(self.model.layers) == 2:
                extra = dn.Dense(2)
                extra.build(3, np.random.default_rng(1), np.float64)
                self.model.layers.append(extra)
    with pytest.raises(RuntimeError, match="the network's parameters was replaced"):
        net.fit(*data, epochs=2, batch_size=8, verbose=0, steps_per_execution=1,
                callbacks=[Grow()])
    net.layers.pop()
    assert same_weights(before, net.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(state["arrays"][0],
                                                      net.optimizer.get_state()["arrays"][0]))
    assert net._rng.bit_generator.state == rng and net.epochs_trained == 1


def test_replacing_the_optimizers_state_arrays_stops_the_fit(data):
    # was: the loop went on updating the old arrays; optimizer.state and
    # state_dict stayed stale, and the next fit started from them
    class Reset(dn.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                optimizer = self.model.optimizer
                optimizer.state = [[np.zeros_like(a) for a in s] for s in optimizer.state]
    net = small_net()
    with pytest.raises(RuntimeError, match="the network's optimizer's state of "
                                           "layers.0.kernel was replaced during fit"):
        net.fit(*data, epochs=3, verbose=0, callbacks=[Reset()])
    assert net.epochs_trained == 1


def test_save_after_removing_a_layer_says_what_to_reset(data, tmp_path):
    # was: "plan_['kernel_rows'] must hold one int per Dense layer" with no way
    # out; then, plan_ reset, a file load refused (the optimizer's state and
    # classes_ of the removed layer)
    X, y = data
    net = dn.Sequential([dn.Dense(8, activation="relu"), dn.Dense(4, activation="relu"),
                         dn.Dense(3)], input_dim=4, seed=0, dtype="float64")
    net.compile("softmax_cross_entropy", "adam")
    net.fit(X, y, epochs=1, verbose=0)
    net.pin_plan()
    net.layers.pop()
    path = tmp_path / "m.npz"
    net.plan = None
    with pytest.raises(ValueError, match=r"the layers changed since: set net.plan_ = None"):
        net.save(path)
    net.plan_ = None
    with pytest.raises(ValueError, match=r"the optimizer's state is for the parameters .*"
                                         r"fit again, or compile again"):
        net.save(path)
    net.compile("softmax_cross_entropy", "adam")
    with pytest.raises(ValueError, match=r"classes_ \(from the last fit\) has 3 labels, "
                                         r"but .* needs 4 \(the layers changed since\): set "
                                         r"net.classes_ = None, or fit again"):
        net.save(path)
    net.classes_ = None
    net.save(path)
    assert same_weights(dn.load(path).get_weights(), net.get_weights())
    assert not list(tmp_path.glob("*.tmp*"))


def test_save_with_a_refused_plan_field_does_not_blame_the_layers(data, tmp_path):
    # a plan fit had refused ({"sample_rows": 0}) was reported by save as
    # "...; the layers changed since: pin another plan", the layers untouched
    X, y = data
    net = dn.Sequential([dn.Dense(8, activation="relu"), dn.Dense(3)], input_dim=4, seed=0)
    net.compile("softmax_cross_entropy", "sgd")
    net.plan = {"sample_rows": 0}
    with pytest.raises(ValueError, match="sample_rows"):
        net.fit(X, y, epochs=1, verbose=0)
    with pytest.raises(ValueError) as refused:
        net.save(tmp_path / "m.npz")
    assert str(refused.value).startswith("plan['sample_rows'] must be")
    assert str(refused.value).endswith("got 0; pin another plan, or set net.plan = None")


def test_predict_reads_only_the_predict_fields_of_a_pinned_plan(data):
    net = small_net()
    net.fit(*data, epochs=1, verbose=0)
    net.plan = {"kernel_rows": [64, 64, 64]}     # another network's: fit refuses it
    assert net.predict(data[0][:3]).shape == (3, 3)


def test_bad_gradient_data_labels_and_data_home_types_are_named(tmp_path):
    # was: "object of type 'NoneType' has no len()"; pathlib's and os's errors
    pytest.importorskip("tensorboardX")
    with pytest.raises(ValueError, match=r"gradient_data must be \(X, y\) .* and y None "
                                         r"\(NoneType\)"):
        dn.callbacks.TensorBoard(str(tmp_path), histogram_freq=1,
                                 gradient_data=(np.zeros((3, 4)), None))
    for value, shown in [(b"~x", r"b'~x' \(bytes\)"), (5, r"5 \(int\)")]:
        with pytest.raises(TypeError, match=f"data_home must be a str or os.PathLike path, "
                                            f"got {shown}"):
            datasets.get_mnist_dir(value)
