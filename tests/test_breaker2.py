"""Adversarial inputs, second pass: sample and class weights, pinned plans,
array-likes that lie about their shape, and networks trained from two places
at once. Each test names what the code did before its fix ("was: ...") and
asserts the documented behaviour: a ValueError/TypeError naming the argument
(RuntimeError for a call made while the network trains), raised before any
state changes."""
import threading

import numpy as np
import pytest

import descend as dn
from descend import plans


def small_net(dtype="float32", optimizer=None, n_threads=1):
    net = dn.Sequential([dn.Dense(5, activation="relu"), dn.Dense(3)],
                        seed=0, dtype=dtype, n_threads=n_threads)
    net.compile("softmax_cross_entropy", optimizer or dn.optimizers.SGD(0.1, momentum=0.9))
    return net


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 4)), rng.integers(0, 3, 40)


def same_weights(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


# ------------------------------------------------------------ sample weights
def test_a_validation_split_that_leaves_all_zero_weights_is_refused_before_fit(data):
    # was: ZeroDivisionError from the validation scores, after the first
    # epoch had trained the network
    X, y = data
    weights = np.r_[np.ones(30), np.zeros(10)]
    net = small_net()
    with pytest.raises(ValueError, match=r"sample_weight: the weights of the validation part "
                                         r"\(after the validation split\) are all zero"):
        net.fit(X, y, epochs=1, verbose=0, validation_split=0.25, sample_weight=weights)
    assert not net.built and net.epochs_trained == 0


def test_a_memmap_fit_with_all_zero_validation_weights_is_refused_too(tmp_path, data):
    X, y = data
    path = tmp_path / "X.dat"
    stored = np.memmap(path, dtype=np.float64, mode="w+", shape=X.shape)
    stored[:] = X
    stored.flush()
    X_map = np.memmap(path, dtype=np.float64, mode="r", shape=X.shape)
    net = small_net()
    with pytest.raises(ValueError, match="weights of the validation part"):
        net.fit(X_map, y, epochs=1, verbose=0, validation_split=0.25,
                sample_weight=np.r_[np.ones(30), np.zeros(10)])
    assert not net.built


@pytest.mark.parametrize("call", ["fit", "fit_batch_1", "evaluate", "train_on_batch",
                                  "gradients"])
def test_subnormal_sample_weights_are_refused_with_their_index(data, call):
    # was: fit diverged (DivergenceError), evaluate and gradients blamed an
    # overflowing network output: a batch's weights summed below 1 / DBL_MAX,
    # so the mean's scale 1 / sum(w) was inf
    X, y = data
    weights = np.ones(40)
    weights[7] = 1e-310
    net = small_net(dtype="float64")
    net.fit(X, y, epochs=1, verbose=0)
    before = net.get_weights()
    run = {"fit": lambda: net.fit(X, y, epochs=1, verbose=0, sample_weight=weights),
           "fit_batch_1": lambda: net.fit(X, y, epochs=1, batch_size=1, verbose=0,
                                          sample_weight=weights),
           "evaluate": lambda: net.evaluate(X, y, sample_weight=weights),
           "train_on_batch": lambda: net.train_on_batch(X, y, sample_weight=weights),
           "gradients": lambda: net.gradients(X, y, sample_weight=weights)}[call]
    with pytest.raises(ValueError, match=r"sample_weight must be 0 or >= 2\.22507e-308 "
                                         r"\(float64's smallest normal number\), got 1e-310 "
                                         r"at index 7"):
        run()
    assert same_weights(before, net.get_weights()) and net.epochs_trained == 1


def test_all_subnormal_sample_weights_are_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="got 9.99989e-321 at index 0; multiply the weights"):
        small_net().fit(X, y, epochs=1, verbose=0, sample_weight=np.full(40, 1e-320))


def test_class_weights_that_make_a_weight_subnormal_are_named(data):
    X, y = data
    net = small_net()
    with pytest.raises(ValueError, match=r"sample_weight times class_weight must be 0 or >="):
        net.fit(X, y, epochs=1, verbose=0, sample_weight=np.full(40, 1e-10),
                class_weight={0: 1e-300})
    assert not net.built


def test_the_smallest_normal_weights_train_as_weights_of_one(data):
    # the weighted mean does not depend on the weights' scale: scaled by a
    # power of two down to the smallest normal numbers, bit for bit
    X, y = data
    plain = small_net(dtype="float64")
    plain.fit(X, y, epochs=2, batch_size=8, verbose=0)
    tiny = small_net(dtype="float64")
    history = tiny.fit(X, y, epochs=2, batch_size=8, verbose=0,
                       sample_weight=np.full(40, 2.0 ** -1020))
    assert same_weights(plain.get_weights(), tiny.get_weights())
    assert history.history["loss"] == plain.history.history["loss"]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_early_stopping_with_all_zero_validation_weights_is_refused_before_training():
    # was: scikit-learn's "Sample weights must contain at least one non-zero
    # number" from the validation score, after an epoch had changed the
    # warm-started network
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), rng.normal(size=60)
    model = dn.MLPRegressor(hidden_layer_sizes=(5,), max_iter=3, random_state=0,
                            early_stopping=True, validation_fraction=0.2, warm_start=True)
    model.fit(X, y)
    before, n_iter = model.net_.get_weights(), model.n_iter_
    weights = np.zeros(60)
    weights[0] = 1.0        # one sample: one of the two parts weighs nothing
    with pytest.raises(ValueError, match=r"sample_weight: the weights (left for training|of "
                                         r"the validation set) after the early-stopping "
                                         r"split are all zero"):
        model.fit(X, y, sample_weight=weights)
    assert same_weights(before, model.net_.get_weights()) and model.n_iter_ == n_iter


# ------------------------------------------------------------------ plans
@pytest.mark.parametrize("plan", [{"sample_rows": 2**31 - 1},
                                  {"kernel_rows": [2**31 - 1, 2**31 - 1]},
                                  {"kernel_rows": 2**30}])
def test_block_sizes_that_wrap_a_c_int_are_refused_not_a_segfault(data, plan):
    # was: SIGSEGV (or "malloc(): invalid next size") in the compiled loop,
    # which steps a block by team size x rows: 2**31 - 1 wrapped around
    net = small_net(n_threads=2)
    net.plan = plan
    with pytest.raises(ValueError, match=r"plan\['(sample|kernel)_rows'\] must be an int in "
                                         rf"\[1, {plans.MAX_BLOCK_ROWS}\]"):
        net.fit(*data, epochs=1, verbose=0)
    assert not net.built


def test_the_largest_block_size_accepted_trains(data):
    net = small_net(n_threads=2)
    net.plan = {"sample_rows": plans.MAX_BLOCK_ROWS,
                "kernel_rows": [plans.MAX_BLOCK_ROWS, plans.MAX_BLOCK_ROWS]}
    net.fit(*data, epochs=1, verbose=0)
    reference = small_net(n_threads=2)
    reference.plan = {"sample_rows": 40, "kernel_rows": [4, 5]}    # one block: the same
    reference.fit(*data, epochs=1, verbose=0)
    assert same_weights(net.get_weights(), reference.get_weights())
    assert net.plan_["sample_rows"] == plans.MAX_BLOCK_ROWS


def test_a_descend_plan_variable_with_a_wrapping_block_size_is_named(monkeypatch, data):
    monkeypatch.setenv("DESCEND_PLAN", f"kernel_rows={2**31 - 1}")
    net = small_net(n_threads=2)
    with pytest.raises(ValueError, match=r"DESCEND_PLAN\['kernel_rows'\] must be an int in"):
        net.fit(*data, epochs=1, verbose=0)
    assert not net.built


def test_the_epoch_runner_refuses_a_wrapping_block_size_given_directly(data):
    from descend.training import runner_specs
    X, y = data
    net = small_net()
    net.fit(X, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"plan sample_rows must be in \[1, "):
        dn._train.EpochRunner(X.astype(np.float32), None, y.astype(np.int32),
                              runner_specs(net), net.loss_.code,
                              net.optimizer.kernel_config(),
                              *net.optimizer.clip_settings(), 8, 2,
                              plan={"sample_rows": 2**31 - 1})


# ------------------------------------------------- array-likes that lie
class Lying:
    """An h5py-like 2-D array whose rows are not what its shape says."""

    def __init__(self, array, shape, mode):
        self.array, self.shape, self.dtype, self.mode = array, shape, array.dtype, mode

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        rows = self.array[key]
        return {"narrow": lambda: rows[:, :1], "short": lambda: rows[:-1],
                "flat": lambda: rows.ravel(), "text": lambda: rows.astype(str),
                "honest": lambda: rows}[self.mode]()


@pytest.mark.parametrize("mode, shape", [("narrow", (40, 4)), ("short", (40, 4)),
                                         ("flat", (40, 4)), ("text", (40, 4)),
                                         ("honest", (50, 4))])
@pytest.mark.parametrize("call", ["fit", "predict", "evaluate"])
def test_an_array_like_whose_rows_contradict_its_shape_is_named(data, mode, shape, call):
    # was: fit broadcast (40, 1) rows into the (40, 4) buffer and trained on
    # them (a silently wrong result), parsed strings as numbers, or raised
    # numpy's IndexError / broadcast errors that named nothing
    X, y = data
    fitted = small_net()
    fitted.fit(X, y, epochs=1, verbose=0)
    fresh = small_net()
    lying = Lying(X, shape, mode)
    run = {"fit": lambda: fresh.fit(lying, np.resize(y, shape[0]), epochs=1, verbose=0),
           "predict": lambda: fitted.predict(lying),
           "evaluate": lambda: fitted.evaluate(lying, np.resize(y, shape[0]))}[call]
    with pytest.raises(ValueError, match=rf"X says it has shape \({shape[0]}, 4\) and dtype "
                                         r"float64, but \d+ of its rows came back with"):
        run()
    assert not fresh.built


def test_an_honest_array_like_trains_as_the_array(data):
    X, y = data
    lazy, eager = small_net(), small_net()
    lazy.fit(Lying(X, X.shape, "honest"), y, epochs=2, verbose=0, shuffle=False)
    eager.fit(X, y, epochs=2, verbose=0, shuffle=False)
    assert same_weights(lazy.get_weights(), eager.get_weights())


@pytest.mark.parametrize("shape, error, match", [
    ((40.0, 4.0), TypeError, r"X.shape must be two ints, got \(40.0, 4.0\)"),
    ((-1, 4), ValueError, r"X.shape must be two ints >= 0, got \(-1, 4\)")])
def test_an_array_like_with_a_shape_that_is_not_sizes_is_named(data, shape, error, match):
    # was: "'float' object cannot be interpreted as an integer" and
    # "__len__() should return >= 0", naming nothing
    X, y = data
    net = small_net()
    with pytest.raises(error, match=match):
        net.fit(Lying(X, shape, "honest"), y, epochs=1, verbose=0)
    assert not net.built


# ---------------------------------------------- one training at a time
class _Hold(dn.callbacks.Callback):
    """Holds its fit inside the first epoch until released."""

    def __init__(self):
        super().__init__()
        self.inside, self.release = threading.Event(), threading.Event()

    def on_epoch_begin(self, epoch, logs=None):
        self.inside.set()
        assert self.release.wait(60)


def _fit_in_thread(net, data, hold):
    errors = []

    def fit():
        try:
            net.fit(*data, epochs=2, verbose=0, callbacks=[hold])
        except Exception as exc:    # pragma: no cover - reported by the test
            errors.append(exc)
    thread = threading.Thread(target=fit)
    thread.start()
    assert hold.inside.wait(60)
    return thread, errors


@pytest.mark.parametrize("second", ["fit", "partial_fit", "train_on_batch"])
def test_a_second_training_of_a_network_being_fit_in_another_thread_is_refused(data, second):
    # was: both ran, interleaving their updates: two 3-epoch fits of one
    # network recorded 6 epochs, mixed histories and 3 optimizer steps
    X, y = data
    net = small_net()
    hold = _Hold()
    thread, errors = _fit_in_thread(net, data, hold)
    try:
        with pytest.raises(RuntimeError, match=rf"{second}: this network is already being "
                                               r"trained by fit \(in another thread"):
            {"fit": lambda: net.fit(X, y, epochs=1, verbose=0),
             "partial_fit": lambda: net.partial_fit(X, y, classes=[0, 1, 2]),
             "train_on_batch": lambda: net.train_on_batch(X, y)}[second]()
    finally:
        hold.release.set()
        thread.join(60)
    assert not errors
    assert net.epochs_trained == 2 and net.history.epoch == [0, 1]
    assert net.optimizer.iterations == 2 * 2      # 40 samples, batches of 32
    net.fit(X, y, epochs=1, verbose=0)            # free again once the first returned
    assert net.epochs_trained == 3


def test_predict_and_other_networks_run_while_a_network_trains(data):
    X, y = data
    net, other = small_net(), small_net()
    hold = _Hold()
    thread, errors = _fit_in_thread(net, data, hold)
    try:
        assert net.predict(X).shape == (40, 3)
        other.fit(X, y, epochs=1, verbose=0)
    finally:
        hold.release.set()
        thread.join(60)
    assert not errors and other.epochs_trained == 1


class _Nested(dn.callbacks.Callback):
    def __init__(self, call):
        super().__init__()
        self.call = call

    def on_train_batch_end(self, batch, logs=None):
        self.call(self.model)


@pytest.mark.parametrize("call, name", [
    (lambda net: net.fit(np.ones((4, 4)), [0, 1, 2, 0], epochs=1, batch_size=4, verbose=0),
     "fit"),
    (lambda net: net.train_on_batch(np.ones((4, 4)), [0, 1, 2, 0]), "train_on_batch")])
def test_training_a_network_from_its_own_callback_is_refused(data, call, name):
    # was: the inner fit replaced the outer one's History and ran its epochs
    # on top of the outer epoch in progress
    net = small_net()
    net.fit(*data, epochs=1, verbose=0)
    before = net.get_weights()
    with pytest.raises(RuntimeError, match=rf"{name}: this network is already being trained "
                                           r"by fit \(in another thread, or"):
        net.fit(*data, epochs=1, verbose=0, callbacks=[_Nested(call)], steps_per_execution=1)
    # the epoch in progress is rolled back
    assert same_weights(before, net.get_weights()) and net.epochs_trained == 1


class _Replace(dn.callbacks.Callback):
    def __init__(self, what):
        super().__init__()
        self.what = what

    def on_train_batch_end(self, batch, logs=None):
        if self.what == "kernel":
            layer = self.model.dense_layers[0]
            layer.kernel = layer.kernel.copy()
        else:
            self.model.compile("softmax_cross_entropy", dn.optimizers.Adam(0.1))


@pytest.mark.parametrize("what, name", [("kernel", "layers.0.kernel"),
                                        ("optimizer", "optimizer")])
def test_a_callback_that_replaces_what_the_loop_trains_stops_the_fit(data, what, name):
    # was: the compiled loop went on updating the old arrays (and the old
    # optimizer's state): after fit the network held none of the training
    net = small_net()
    net.fit(*data, epochs=1, verbose=0)
    before = net.get_weights()
    with pytest.raises(RuntimeError, match=rf"the network's {name} was replaced during fit"):
        net.fit(*data, epochs=1, verbose=0, callbacks=[_Replace(what)], steps_per_execution=1)
    assert same_weights(before, net.get_weights()) and net.epochs_trained == 1


# ------------------------------------------------------------------ the CLI
@pytest.mark.parametrize("command", [["demo", "--epochs", "1"], ["info"],
                                     ["bench", "--quick"]])
def test_the_cli_names_a_bad_descend_plan_variable_as_a_usage_error(monkeypatch, capsys,
                                                                    command):
    # was: demo and bench died with a traceback from inside the first fit
    from descend.__main__ import main
    monkeypatch.setenv("DESCEND_PLAN", "garbage")
    with pytest.raises(SystemExit) as exit_info:
        main(command)
    assert exit_info.value.code == 2
    assert ("error: DESCEND_PLAN: expected name=value with a name among"
            in capsys.readouterr().err)


# ------------------------------------------------------------ ragged lists
@pytest.mark.parametrize("call", ["fit", "predict", "evaluate"])
def test_a_ragged_list_for_x_is_named(data, call):
    # was: numpy's "setting an array element with a sequence. The requested
    # array has an inhomogeneous shape ...", naming no argument
    X, y = data
    net = small_net()
    net.fit(X, y, epochs=1, verbose=0)
    ragged = [[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]]
    run = {"fit": lambda: net.fit(ragged, [0, 1], epochs=1, verbose=0),
           "predict": lambda: net.predict(ragged),
           "evaluate": lambda: net.evaluate(ragged, [0, 1])}[call]
    with pytest.raises(ValueError, match=r"^X must be a 2-D array of numbers, got a list of "
                                         r"rows of different lengths"):
        run()
    assert net.epochs_trained == 1


def test_a_ragged_y_in_fit_is_named(data):
    X, y = data
    net = small_net()
    with pytest.raises(ValueError, match=r"^y must be labels \(1-D\) or targets \(2-D\), got "
                                         r"a list of rows of different lengths"):
        net.fit(X[:3], [[0, 1], [1], [0, 1]], epochs=1, verbose=0)
    assert not net.built


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_child_forked_while_another_thread_trains_may_train_its_copy():
    # the mark of the parent's training thread must not follow the fork: the
    # child has no such thread, and a mark would refuse its copy for good
    import subprocess
    import sys
    import textwrap
    script = textwrap.dedent("""
        import os, threading
        import numpy as np
        import descend as dn
        rng = np.random.default_rng(0)
        X, y = rng.normal(size=(40, 4)), rng.integers(0, 3, 40)
        net = dn.Sequential([dn.Dense(5), dn.Dense(3)], seed=0, n_threads=1)
        net.compile("softmax_cross_entropy", "sgd")
        inside, release = threading.Event(), threading.Event()

        class Hold(dn.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                inside.set()
                release.wait(60)
        thread = threading.Thread(target=lambda: net.fit(X, y, epochs=1, verbose=0,
                                                         callbacks=[Hold()]))
        thread.start()
        inside.wait(60)
        pid = os.fork()
        if pid == 0:
            try:
                net.fit(X, y, epochs=1, verbose=0)
                os._exit(0)
            except RuntimeError:
                os._exit(3)
        release.set()
        thread.join()
        print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=240)
    assert result.stdout.strip() == "0", result.stderr


# ------------------------------------------------------------ scipy.sparse
@pytest.mark.parametrize("call", ["fit", "predict", "evaluate"])
def test_a_scipy_sparse_x_is_named_as_sparse(data, call):
    # was: "X must hold real numbers, got dtype object" (np.asarray of a
    # sparse matrix is a 0-d object array), though it holds real numbers
    import scipy.sparse
    X, y = data
    net = small_net()
    net.fit(X, y, epochs=1, verbose=0)
    sparse = scipy.sparse.csr_matrix(X)
    run = {"fit": lambda: net.fit(sparse, y, epochs=1, verbose=0),
           "predict": lambda: net.predict(sparse),
           "evaluate": lambda: net.evaluate(sparse, y)}[call]
    with pytest.raises(TypeError, match=r"X must be a dense 2-D array, got a scipy.sparse "
                                        r"csr_matrix of shape \(40, 4\): pass X.toarray\(\)"):
        run()
    assert net.epochs_trained == 1
