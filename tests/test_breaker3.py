"""Adversarial inputs, third pass: plans pinned, loaded and forced through the
environment, distributed fits over shards (class weights, all-zero weights),
and what a user gets wrong by mistake in the newest features. Each test names
what the code did before its fix ("was: ...") and asserts the documented
behaviour: a ValueError/TypeError naming the argument, what was expected and
what came, raised before any state changes (or the run equal to the
one-process run it stands for)."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest

import descend as dn
from descend import plans
from test_breaker2 import data, same_weights  # noqa: F401 - data is a fixture
from test_distributed import _have_mpi4py, needs_mpi, run_mpi

needs_mpi4py = pytest.mark.skipif(not _have_mpi4py(), reason="needs mpi4py (pip install '.[mpi]')")


def small_net(dtype="float64", n_layers=2):
    layers = [dn.Dense(5, activation="relu") for _ in range(n_layers - 1)] + [dn.Dense(3)]
    net = dn.Sequential(layers, input_dim=4, seed=0, dtype=dtype, n_threads=1)
    net.compile("softmax_cross_entropy", dn.optimizers.SGD(0.1, momentum=0.9))
    return net


# ------------------------------------------------------------ plans of another network
@pytest.mark.parametrize("which", ["pinned", "used"])
def test_a_state_whose_plan_has_kernel_rows_for_another_network_is_refused(data, which):
    # was: loaded; the next fit then failed (pinned), or pin_plan() pinned a plan
    # the network could never run (used)
    X, y = data
    net = small_net()
    net.fit(X, y, epochs=1, verbose=0)
    state = net.state_dict()
    before = net.get_weights(), dict(net.plan_), net.plan
    state["plan"][which] = {"sparse_input": False, "sample_rows": 4, "kernel_rows": [8, 8, 8]}
    state["parameters"] = {k: v + 1 for k, v in state["parameters"].items()}
    with pytest.raises(ValueError, match=rf"state_dict\['plan'\]\['{which}'\]\['kernel_rows'\] "
                                         r"must hold one int per Dense layer \(2\), got "
                                         r"\[8, 8, 8\]"):
        net.load_state_dict(state)
    assert same_weights(net.get_weights(), before[0])
    assert net.plan_ == before[1] and net.plan is before[2]


def test_a_model_file_whose_pinned_plan_does_not_fit_its_network_is_refused(tmp_path, data):
    X, y = data
    net = small_net()
    net.fit(X, y, epochs=1, verbose=0)
    # a file written by hand, its plan for a one-layer network (save refuses to
    # write one: tests/test_breaker12.py)
    net.plan = {"kernel_rows": [16, 16]}
    net.save(tmp_path / "m.npz")
    _edit_config(tmp_path / "m.npz", '"kernel_rows": [16, 16]', '"kernel_rows": [16]')
    with pytest.raises(ValueError, match=r"\['pinned'\]\['kernel_rows'\] must hold one int "
                                         r"per Dense layer \(2\), got \[16\]"):
        dn.load(tmp_path / "m.npz")
    net.plan = {"kernel_rows": [16, 16]}
    net.save(tmp_path / "m.npz")
    assert dn.load(tmp_path / "m.npz").plan == {"kernel_rows": [16, 16]}


def _edit_config(path, old, new):
    """Replace `old` by `new` in the JSON config entry of a saved model file."""
    with np.load(path) as saved:
        entries = {name: saved[name] for name in saved.files}
    assert old in str(entries["config"])
    entries["config"] = np.array(str(entries["config"]).replace(old, new))
    np.savez(path, **entries)


def test_pin_plan_refuses_kernel_rows_for_another_network():
    # was: pinned; the next fit refused it
    net = small_net(n_layers=3)
    with pytest.raises(ValueError, match=r"plan\['kernel_rows'\] must hold one int per Dense "
                                         r"layer \(3\), got \[4, 4\]"):
        net.pin_plan({"kernel_rows": [4, 4]})
    assert net.plan is None
    assert net.pin_plan({"kernel_rows": [4, 4, 4]}) == {"kernel_rows": [4, 4, 4]}
    assert net.pin_plan({"kernel_rows": 4}) == {"kernel_rows": 4}   # one int: every layer


# ------------------------------------------------------------ DESCEND_PLAN, DESCEND_PROFILE
@pytest.mark.parametrize("text, field", [
    ("sample_rows=8, sample_rows=16", "sample_rows"),
    ("sparse_input=0,by_columns=1,sparse_input=1", "sparse_input"),
    ('{"kernel_rows": 8, "kernel_rows": [8, 8]}', "kernel_rows"),
])
def test_descend_plan_refuses_a_field_given_twice(monkeypatch, data, text, field):
    # was: the later value silently won
    monkeypatch.setenv("DESCEND_PLAN", text)
    with pytest.raises(ValueError, match=rf"DESCEND_PLAN gives '{field}' more than once"):
        plans.forced_from_env()
    X, y = data
    net = small_net()
    with pytest.raises(ValueError, match="more than once"):
        net.fit(X, y, epochs=1, verbose=0)
    assert net.epochs_trained == 0 and net.plan_ is None and not net.optimizer.iterations


def test_descend_plan_fields_given_once_still_apply(monkeypatch):
    monkeypatch.setenv("DESCEND_PLAN", "sample_rows=8, by_columns=on, sparse_input=OFF")
    assert plans.forced_from_env() == {"sample_rows": 8, "by_columns": True,
                                       "sparse_input": False}
    monkeypatch.setenv("DESCEND_PLAN", '{"sample_rows": 8, "kernel_rows": [4, 4]}')
    assert plans.forced_from_env() == {"sample_rows": 8, "kernel_rows": [4, 4]}


@pytest.mark.parametrize("value", ["banana", "2", "of", "enabled", "-1"])
def test_descend_profile_accepts_the_documented_values_only(monkeypatch, data, value):
    # was: any value but 0/false/no/off meant "on" (a typo left profiling on)
    monkeypatch.setenv("DESCEND_PROFILE", value)
    message = rf"DESCEND_PROFILE must be one of \[.*'off'.*'on'.*\] \(or unset\), got '{value}'"
    with pytest.raises(ValueError, match=message):
        plans.profiling_enabled()
    X, y = data
    net = small_net()
    with pytest.raises(ValueError, match=message):
        net.fit(X, y, epochs=1, verbose=0)
    assert net.epochs_trained == 0 and net.plan_ is None and not net.optimizer.iterations


@pytest.mark.parametrize("value, on", [("0", False), ("off", False), ("No", False),
                                       ("FALSE", False), (" 1 ", True), ("on", True),
                                       ("yes", True), ("True", True), ("", True)])
def test_descend_profile_documented_values(monkeypatch, value, on):
    monkeypatch.setenv("DESCEND_PROFILE", value)
    assert plans.profiling_enabled() is on
    monkeypatch.delenv("DESCEND_PROFILE")
    assert plans.profiling_enabled() is True


def test_the_cli_names_a_bad_descend_profile_as_a_usage_error(tmp_path):
    import os
    env = dict(os.environ, DESCEND_PROFILE="banana", DESCEND_CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "descend", "info"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert "error: DESCEND_PROFILE must be one of" in done.stderr
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------ sharded distributed fits
@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
def test_sharded_fits_equal_the_one_process_fit_of_all_the_rows(n, tmp_path):
    # was: a shard whose weights were all zero was refused though the others had
    # weight; batch_size=None took one rank's shard as the batch; the estimator
    # refused class_weight="balanced" with MPI(sharded=True)
    found, _ = run_mpi(n, "shards", tmp_path, loop="steps")
    assert found.pop("size") == n
    all_zero = found.pop("all_zero")
    assert sorted(found) == ["estimator_balanced", "estimator_balanced_auto", "full_batch",
                             "zero_shard", "zero_shard_balanced"]
    for name, case in found.items():
        assert case["max_rel"] < 1e-9, name
        assert case["same_on_ranks"], name
        for key, (mine, reference) in case["logs"].items():
            np.testing.assert_allclose(mine, reference, rtol=1e-9, err_msg=f"{name} {key}")
    # one batch of all 240 rows an epoch (was: of a shard's, n steps an epoch)
    assert found["full_batch"]["iterations"] == [3, 3]
    assert found["estimator_balanced"]["logs"]["t_"] == [720, 720]
    # every shard's weights zero: the same error on every rank
    for messages in all_zero:
        assert "sample_weight: the weights of every rank's shard are all zero" in messages["net"]
        assert ("sample_weight: the weights of every rank's shard are all zero"
                in messages["estimator"])
        assert ("distributed fit: rank 1 differs from rank 0 in batch_size: 16 (rank 1) != 8 "
                "(rank 0)" in messages["batch_differs"])
        # was: "rank 1 differs from rank 0 in seed: ...; every rank must build the same
        # network" (the estimator built it, from a fresh seed on every rank)
        assert messages["random_state_none"].startswith("random_state=None draws another seed")


@needs_mpi4py
@pytest.mark.parametrize("batch_size, error", [(0, ValueError), (-3, ValueError),
                                               (2.5, TypeError), ("32", TypeError)])
def test_a_sharded_fit_checks_its_batch_size(data, batch_size, error):
    # was: not checked over shards: batch_size=0 "trained" an epoch of no step (loss 0.0)
    X, y = data
    net = small_net()
    before = net.get_weights()
    with pytest.raises(error, match="batch_size must be an int >= 1"):
        net.fit(X, y, epochs=1, batch_size=batch_size, verbose=0,
                distributed=dn.distributed.MPI(sharded=True))
    assert net.epochs_trained == 0 and same_weights(net.get_weights(), before)


def _one_rank_estimator(**kwargs):
    return dn.MLPClassifier(hidden_layer_sizes=(6,), max_iter=3, random_state=0,
                            dtype="float64", shuffle=False, alpha=0.01, **kwargs)


@needs_mpi4py
def test_the_estimator_takes_balanced_class_weight_over_shards_on_one_rank():
    # was: ValueError 'class_weight="balanced" needs every class count'
    import warnings
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(60, 3)), rng.integers(0, 3, 60)
    w = rng.random(60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = _one_rank_estimator(class_weight="balanced",
                                   distributed=dn.distributed.MPI(sharded=True)).fit(
            X, y, sample_weight=w)
        reference = _one_rank_estimator(class_weight="balanced").fit(X, y, sample_weight=w)
    for a, b in zip(mine.coefs_ + mine.intercepts_, reference.coefs_ + reference.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9)
    np.testing.assert_allclose(mine.loss_curve_, reference.loss_curve_, rtol=1e-9)


@needs_mpi4py
def test_the_estimator_refuses_early_stopping_over_shards_before_anything_changes():
    # was: each rank held out its own shard's rows and kept the weights of its own
    # best validation score
    X, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 2
    estimator = _one_rank_estimator(early_stopping=True,
                                    distributed=dn.distributed.MPI(sharded=True))
    with pytest.raises(ValueError, match=r"early_stopping=True is not supported with "
                                         r"MPI\(sharded=True\)"):
        estimator.fit(X, y)
    assert not hasattr(estimator, "net_") and not hasattr(estimator, "classes_")


@needs_mpi4py
@pytest.mark.parametrize("sharded", [False, True])
def test_the_estimator_refuses_lbfgs_with_distributed_before_anything_changes(sharded):
    # was: the ValueError came after net_, classes_, n_iter_, loss_curve_ were set
    X, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 2
    estimator = dn.MLPClassifier(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=3,
                                 distributed=dn.distributed.MPI(sharded=sharded))
    with pytest.raises(ValueError, match="distributed training needs a stochastic solver"):
        estimator.fit(X, y)
    assert not hasattr(estimator, "net_") and not hasattr(estimator, "classes_")
    assert not hasattr(estimator, "n_iter_")


# ------------------------------------------------------------ estimators' set_params
@pytest.mark.parametrize("call", ["warm_start", "partial_fit"])
@pytest.mark.parametrize("param, value", [("hidden_layer_sizes", (7,)), ("activation", "tanh"),
                                          ("solver", "sgd"), ("dtype", "float32")])
def test_set_params_that_change_the_network_are_not_ignored_by_a_continued_fit(
        data, call, param, value):
    # was: warm_start / partial_fit went on training the fitted (4,)-relu-adam-float64
    # network and ignored the new value
    import warnings
    X, y = data
    est = dn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0,
                           dtype="float64", warm_start=call == "warm_start")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    before = [w.copy() for w in est.coefs_], est.n_iter_, list(est.loss_curve_)
    est.set_params(**{param: value})
    again = est.fit if call == "warm_start" else est.partial_fit
    with pytest.raises(ValueError, match=re.escape(f"{param}={value!r} differs from the "
                                                   "fitted network's ")):
        again(X, y)
    assert same_weights(est.coefs_, before[0])
    assert est.n_iter_ == before[1] and est.loss_curve_ == before[2]
    # a fresh fit takes the new value
    est.set_params(warm_start=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    if param == "hidden_layer_sizes":
        assert est.coefs_[0].shape == (4, 7)
    elif param == "dtype":
        assert est.coefs_[0].dtype == np.float32


def test_set_params_that_keep_the_network_still_continue(data):
    import warnings
    X, y = data
    est = dn.MLPClassifier(hidden_layer_sizes=[4], max_iter=2, random_state=0, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
        kernel = est.coefs_[0]
        est.set_params(hidden_layer_sizes=(4,), alpha=0.5, max_iter=1).fit(X, y)
        est.partial_fit(X, y)
    assert est.coefs_[0] is kernel and est.n_iter_ == 1


# ------------------------------------------------------------ callbacks
def test_model_checkpoint_refuses_a_directory_before_fit_trains(tmp_path):
    # was: model.save refused it at the end of the first epoch, which had trained
    with pytest.raises(ValueError, match=r"ModelCheckpoint: filepath .* is a directory; give "
                                         r"a file name such as .*model-\{epoch:02d\}\.npz"):
        dn.callbacks.ModelCheckpoint(tmp_path)
    with pytest.raises(ValueError, match="is a directory"):
        dn.callbacks.ModelCheckpoint(str(tmp_path))
    dn.callbacks.ModelCheckpoint(tmp_path / "{epoch}")       # a file name in it: fine


@pytest.mark.parametrize("separator", ["\n", "\r"])
def test_csv_logger_refuses_a_line_break_as_separator(separator, tmp_path):
    # was: "\n" wrote every field on a row of its own; "\r" failed in the csv module
    # at the end of the first epoch, after training it
    with pytest.raises(ValueError, match="CSVLogger: separator must be a single character "
                                         "other than a line break"):
        dn.callbacks.CSVLogger(tmp_path / "log.csv", separator=separator)


def test_csv_logger_separators_other_than_line_breaks_round_trip(data, tmp_path):
    import csv
    X, y = data
    for separator in ";\t |":
        path = tmp_path / "log.csv"
        net = small_net()
        history = net.fit(X, y, epochs=2, verbose=0,
                          callbacks=[dn.callbacks.CSVLogger(path, separator=separator)])
        with open(path, newline="") as f:
            rows = list(csv.reader(f, delimiter=separator))
        assert rows[0][:2] == ["epoch", "accuracy"] and len(rows) == 3
        assert [float(row[3]) for row in rows[1:]] == history["loss"]


# ------------------------------------------------------------ the profile's cache file
@pytest.mark.parametrize("content", ["[]", "5", '"profile"', "null", '{"key": 5}',
                                     '{"gemm": [], "measured_at": "x"}'])
def test_a_cache_file_of_valid_json_that_is_no_profile_is_measured_again(
        tmp_path, monkeypatch, content):
    # was: AttributeError ('list' object has no attribute 'get') from every fit and
    # from `python -m descend info` until the file was deleted by hand
    import time
    from test_plans import fake_profile
    monkeypatch.setenv("DESCEND_PROFILE", "1")
    monkeypatch.setenv("DESCEND_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(plans, "_loaded", {})
    measured = []
    monkeypatch.setattr(plans, "measure_profile", lambda: measured.append(1) or {
        **fake_profile(), "seconds": 0.5, "measured_at": int(time.time()),
        "cores": plans.usable_cores()})
    path = plans._profile_path(plans.profile_key())
    with open(path, "w") as f:
        f.write(content)
    profile = plans.machine_profile()
    assert measured == [1] and profile["path"] == path
    with open(path) as f:
        assert isinstance(json.load(f)["gemm"], dict)      # rewritten


def test_descend_plan_cannot_force_what_a_plan_says_of_its_source(monkeypatch, data):
    # was: DESCEND_PLAN='{"source": "profile", ...}' made plan_ claim a profile's choice
    monkeypatch.setenv("DESCEND_PLAN", '{"source": "profile", "sample_rows": 8}')
    with pytest.raises(ValueError, match="DESCEND_PLAN: the fields to force are among"):
        plans.forced_from_env()


# ------------------------------------------------------------ predict with replaced parameters
_REPLACED = {
    "fortran kernel": (lambda layers: setattr(layers[0], "kernel",
                                              np.asfortranarray(layers[0].kernel)),
                       r"layers\[0\]\.kernel must be a C-contiguous float64 array of shape "
                       r"\(4, 5\), got a float64 array of shape \(4, 5\), C-contiguous False"),
    "float32 kernel": (lambda layers: setattr(layers[0], "kernel",
                                              layers[0].kernel.astype(np.float32)),
                       r"layers\[0\]\.kernel must be .* float64 .*, got a float32 array"),
    "wider kernel": (lambda layers: setattr(layers[0], "kernel", np.zeros((4, 6))),
                     r"layers\[0\]\.kernel must be .* of shape \(4, 5\), got a float64 array "
                     r"of shape \(4, 6\)"),
    "list kernel": (lambda layers: setattr(layers[0], "kernel", layers[0].kernel.tolist()),
                    r"layers\[0\]\.kernel must be .*, got a list"),
    "no bias": (lambda layers: setattr(layers[1], "bias", None),
                r"layers\[1\]\.bias must be .* of shape \(3,\), got a NoneType"),
    "unknown activation": (lambda layers: setattr(layers[0], "activation", "Relu"),
                           r"layers\[0\]\.activation must be one of .*'relu'.*, got 'Relu'"),
}


@pytest.mark.parametrize("case", sorted(_REPLACED))
@pytest.mark.parametrize("rows", [1, 5, 40])
def test_predict_and_evaluate_name_a_replaced_parameter_as_fit_does(case, rows, data):
    # was: the kernels' own errors ("ndarray is not C-contiguous", "Buffer dtype
    # mismatch, expected 'const double' but got 'float'", "z has shape (1, 5),
    # expected (1, 6)", KeyError: 'Relu', AttributeError) or, for a missing bias,
    # an output computed without it, while fit named the parameter
    X, y = data
    X = X * (np.random.default_rng(1).random(X.shape) < 0.2) if rows == 5 else X
    net = small_net()
    net.predict(X[:rows])        # the fused passes' arguments are cached by now
    replace, message = _REPLACED[case]
    replace(net.layers)
    with pytest.raises(ValueError, match=message):
        net.predict(X[:rows])
    with pytest.raises(ValueError, match=message):
        net.evaluate(X[:rows], y[:rows])
    if case != "unknown activation":
        message = message.replace("must be a C", "must be a writeable C")
    with pytest.raises(ValueError, match=message.replace(r"must be \.\*", "must be .*")):
        net.fit(X, y, epochs=1, verbose=0)
    assert net.epochs_trained == 0


def test_predict_reads_a_read_only_kernel(data):
    X, _ = data
    net = small_net()
    expected = net.predict(X)
    for layer in net.dense_layers:
        layer.kernel.setflags(write=False)
    np.testing.assert_array_equal(net.predict(X), expected)
    np.testing.assert_array_equal(net.predict(X[:1]), expected[:1])


def test_show_config_reports_a_bad_descend_profile_and_shows_the_rest(monkeypatch, capsys):
    # (the CLI refuses it as a usage error; dn.show_config(), a diagnostic, shows it)
    monkeypatch.setenv("DESCEND_PROFILE", "banana")
    dn.show_config()
    out = capsys.readouterr().out
    assert "profile: error: DESCEND_PROFILE must be one of" in out
    assert "threadpools:" in out and "cpu:" in out


def test_csv_logger_appends_rows_under_the_existing_header(data, tmp_path):
    # was: a second fit with validation appended rows two fields longer than the
    # header (val_accuracy and val_loss with no column), silently
    import csv
    X, y = data
    path = tmp_path / "log.csv"
    net = small_net()
    net.fit(X, y, epochs=1, verbose=0, callbacks=[dn.callbacks.CSVLogger(path, append=True)])
    with pytest.warns(RuntimeWarning, match=r"keys \['val_accuracy', 'val_loss'\] appeared"):
        history = net.fit(X, y, epochs=1, verbose=0, validation_data=(X, y),
                          callbacks=[dn.callbacks.CSVLogger(path, append=True)])
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "accuracy", "learning_rate", "loss", "samples_per_second",
                       "seconds"]
    assert [len(row) for row in rows] == [6, 6, 6]
    assert rows[2][0] == "1" and float(rows[2][3]) == history["loss"][0]


def test_csv_logger_refuses_to_append_with_another_separator(data, tmp_path):
    # was: appended ';'-separated rows under a ','-separated header
    X, y = data
    path = tmp_path / "log.csv"
    net = small_net()
    net.fit(X, y, epochs=1, verbose=0, callbacks=[dn.callbacks.CSVLogger(path)])
    before = path.read_text()
    with pytest.raises(ValueError, match=r"CSVLogger: cannot append to .*log\.csv'.*: its first "
                                         r"line 'epoch,accuracy,.*' is not a CSVLogger header "
                                         r"with separator ';'"):
        net.fit(X, y, epochs=1, verbose=0,
                callbacks=[dn.callbacks.CSVLogger(path, append=True, separator=";")])
    assert path.read_text() == before and net.epochs_trained == 1


def test_a_plan_pinned_with_numpy_scalars_is_plain_json_in_the_state_dict(data):
    # was: state_dict()["plan"] kept np.int64 / np.bool_ (json.dumps: TypeError)
    X, y = data
    net = small_net()
    net.plan = {"sample_rows": np.int64(8), "sparse_input": np.bool_(False),
                "kernel_rows": [np.int32(4), np.int64(4)]}
    assert json.loads(json.dumps(net.state_dict()["plan"]["pinned"])) == {
        "sample_rows": 8, "sparse_input": False, "kernel_rows": [4, 4]}
    assert type(net.pin_plan(net.plan)["sample_rows"]) is int


# --------------------------------------------------------------------------- relu(NaN)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows", [1, 5, 200])      # the lean row loops and the BLAS plan
def test_a_nan_in_a_kernel_reaches_the_predictions_through_relu(dtype, rows):
    """relu(NaN) is NaN, as numpy.maximum(NaN, 0) and PyTorch's relu: a NaN written
    into a hidden unit's kernel must not come out as a finite prediction (the
    kernels used to compute relu as `z > 0 ? z : 0`, which maps NaN to 0)."""
    net = dn.Sequential([dn.Dense(8, activation="relu"), dn.Dense(3)], input_dim=4,
                        dtype=dtype, seed=0, n_threads=1)
    kernel = net.layers[0].kernel
    kernel[:, 2] = np.nan             # hidden unit 2 is NaN for every input
    X = np.random.default_rng(0).normal(size=(rows, 4)).astype(dtype)
    with np.errstate(invalid="ignore"):
        hidden = np.maximum(X @ kernel + net.layers[0].bias, 0)
    assert np.isnan(hidden[:, 2]).all()
    try:
        out = net.predict(X)
    except (ValueError, FloatingPointError) as error:   # refused with an error: also fine
        assert "nan" in str(error).lower() or "finite" in str(error).lower()
    else:
        assert np.isnan(out).all(), out
