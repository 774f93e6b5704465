"""descend.MLPClassifier / MLPRegressor: the scikit-learn estimator API."""
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline, Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import descend as dn  # noqa: E402
from descend.estimators import MLPClassifier, MLPRegressor  # noqa: E402

# Checks that cannot pass, with the reason; none at present (scikit-learn 1.9.1).
# Checks scikit-learn itself skips here, and why:
#   check_array_api_input                 SCIPY_ARRAY_API is not set (no array API input)
#   check_classifier_data_not_an_array /
#   check_regressor_data_not_an_array     pandas is not installed
#   check_classifiers_multilabel_output_format_decision_function
#                                         no decision_function (as scikit-learn's MLP)
# sample_weight is a fit parameter: the sample-weight checks (equivalence with
# repeated rows included) run on every estimator here; test_sample_weight_*
# below adds solver="lbfgs", the solver scikit-learn runs that check with.
EXPECTED_FAILED_CHECKS = {}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


# n_threads=1: the checks fit hundreds of tiny problems, where threads only add overhead.
# (early_stopping=True is left out: like scikit-learn's own MLP it cannot split the
# checks' 2-sample problems stratified, nor partial_fit; it is tested below.)
# solver="lbfgs" passes the whole suite too, but scipy's L-BFGS-B takes ~30 s over it
# (as for scikit-learn's MLP): run it with DESCEND_SLOW_TESTS=1.
ESTIMATORS = [MLPClassifier(n_threads=1), MLPClassifier(solver="sgd", n_threads=1),
              MLPRegressor(n_threads=1),
              MLPRegressor(solver="sgd", learning_rate="adaptive", n_threads=1)]
if os.environ.get("DESCEND_SLOW_TESTS"):
    ESTIMATORS += [
        MLPClassifier(solver="lbfgs", hidden_layer_sizes=(10,), max_iter=50, n_threads=1),
        MLPRegressor(solver="lbfgs", hidden_layer_sizes=(10,), max_iter=50, n_threads=1)]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# --------------------------------------------------------------------------- helpers
def blobs(n=150, d=5, k=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(k, d))
    y = np.arange(n) % k
    X = (centers[y] + rng.normal(size=(n, d))).astype(dtype)
    return X, y


def linear(n=120, d=4, k=1, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    y = X @ rng.normal(size=(d, k))
    return X, (y[:, 0] if k == 1 else y).astype(dtype)


def fitted_state(est):
    state = {k: v for k, v in vars(est).items() if k != "net_"}
    weights = est.net_.get_weights() if hasattr(est, "net_") else None
    return state, weights


def assert_same(a, b):
    (sa, wa), (sb, wb) = a, b
    assert sa.keys() == sb.keys()
    for key in sa:
        if isinstance(sa[key], np.ndarray):
            np.testing.assert_array_equal(sa[key], sb[key])
        elif key != "_random_state":
            assert sa[key] == sb[key], key
    assert (wa is None) == (wb is None)
    for u, v in zip(wa or [], wb or []):
        np.testing.assert_array_equal(u, v)


# --------------------------------------------------------------------------- basics
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # max_iter
def test_classifier_with_string_labels():
    X, y = blobs()
    labels = np.array(["red", "green", "blue"])[y]
    clf = dn.MLPClassifier(hidden_layer_sizes=(16,), max_iter=100, random_state=0,
                           learning_rate_init=0.01, n_threads=1).fit(X, labels)
    np.testing.assert_array_equal(clf.classes_, ["blue", "green", "red"])
    assert clf.n_features_in_ == 5
    assert clf.predict(X).dtype == labels.dtype
    assert clf.score(X, labels) > 0.95
    proba = clf.predict_proba(X)
    assert proba.shape == (150, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], clf.predict(X))
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba)
    assert len(clf.loss_curve_) == clf.n_iter_ <= 100
    assert clf.loss_ == clf.loss_curve_[-1]
    assert clf.out_activation_ == "softmax" and clf.n_outputs_ == 3 and clf.n_layers_ == 3
    assert [c.shape for c in clf.coefs_] == [(5, 16), (16, 3)]
    assert [b.shape for b in clf.intercepts_] == [(16,), (3,)]
    assert clf.t_ == clf.n_iter_ * 150


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # max_iter
def test_binary_and_multilabel_classifiers():
    X, y = blobs(k=2)
    clf = dn.MLPClassifier(hidden_layer_sizes=(8,), random_state=0, n_threads=1,
                           max_iter=50).fit(X, np.where(y == 1, "yes", "no"))
    assert clf.n_outputs_ == 1 and clf.out_activation_ == "logistic"
    proba = clf.predict_proba(X)
    assert proba.shape == (150, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(clf.predict(X), np.where(proba[:, 1] > 0.5, "yes", "no"))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] < 0.5]).astype(int)
    multi = dn.MLPClassifier(hidden_layer_sizes=(16,), random_state=0, n_threads=1,
                             max_iter=300).fit(X, Y)
    assert multi.n_outputs_ == 3 and multi.predict(X).dtype == Y.dtype
    assert multi.predict(X).shape == (120, 3) and multi.predict_proba(X).shape == (120, 3)
    assert multi.score(X, Y) > 0.8     # subset accuracy


def test_regressor_single_and_multi_output():
    X, y = linear()
    reg = dn.MLPRegressor(hidden_layer_sizes=(32,), max_iter=400, random_state=0,
                          n_threads=1).fit(X, y)
    assert reg.predict(X).shape == (120,)
    assert reg.score(X, y) > 0.95
    X, Y = linear(k=2)
    reg = dn.MLPRegressor(hidden_layer_sizes=(32,), max_iter=400, random_state=0,
                          n_threads=1).fit(X, Y)
    assert reg.predict(X).shape == (120, 2) and reg.n_outputs_ == 2
    assert reg.score(X, Y) > 0.95


@pytest.mark.parametrize("Estimator, data", [(dn.MLPClassifier, blobs),
                                             (dn.MLPRegressor, linear)])
def test_float32_stays_float32(Estimator, data):
    X, y = data(dtype=np.float32)
    est = Estimator(hidden_layer_sizes=(8,), max_iter=5, random_state=0, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert est.net_.dtype == np.float32
    assert all(c.dtype == np.float32 for c in est.coefs_)
    out = est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)
    assert out.dtype == np.float32
    est64 = clone(est).set_params(dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est64.fit(X, y)
    assert est64.net_.dtype == np.float64
    est_int = clone(est)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est_int.fit(X.astype(int), y)
    assert est_int.net_.dtype == np.float64


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # max_iter
def test_pipeline_and_grid_search():
    X, y = dn.datasets.load_digits()
    X, y = X[:600], y[:600]
    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", dn.MLPClassifier(max_iter=40, batch_size=50,
                                              learning_rate_init=0.01, random_state=0,
                                              n_threads=1))])
    search = GridSearchCV(pipe, {"mlp__hidden_layer_sizes": [(16,), (48,)],
                                 "mlp__alpha": [1e-4, 1e-1]}, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    assert search.best_score_ > 0.8     # scikit-learn's own MLP: 0.85 here (unshuffled folds)
    assert set(search.best_params_) == {"mlp__hidden_layer_sizes", "mlp__alpha"}
    assert search.score(X, y) > 0.95
    Xr, yr = linear()
    scores = cross_val_score(make_pipeline(StandardScaler(), dn.MLPRegressor(
        hidden_layer_sizes=(32,), max_iter=300, random_state=0, n_threads=1)), Xr, yr, cv=3)
    assert scores.min() > 0.9


def test_pickle_round_trip():
    X, y = blobs()
    clf = dn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0,
                           n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    again.partial_fit(X, y)
    clf.partial_fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


# --------------------------------------------------------------------------- parity with sklearn
def _common_start(ours, theirs, seed=1):
    """Give both fitted estimators the same weights and fresh optimizer state."""
    rng = np.random.default_rng(seed)
    coefs = [rng.normal(scale=0.5, size=c.shape) for c in theirs.coefs_]
    intercepts = [rng.normal(scale=0.1, size=b.shape) for b in theirs.intercepts_]
    ours.net_.set_weights([a for pair in zip(coefs, intercepts) for a in pair])
    ours.net_.optimizer.state = None
    ours.net_.optimizer.iterations = 0
    theirs.coefs_ = [c.copy() for c in coefs]
    theirs.intercepts_ = [b.copy() for b in intercepts]


@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel", "regression",
                                  "regression2"])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_full_batch_epochs_match_sklearn(kind, solver):
    """Same start, full batches, no shuffle: descend follows scikit-learn's updates,
    which checks the alpha mapping (alpha / (2 n) ||W||^2) and the loss scaling."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    if kind == "multiclass":
        y, Ours, Theirs = np.arange(40) % 3, dn.MLPClassifier, SkMLPClassifier
    elif kind == "binary":
        y, Ours, Theirs = np.arange(40) % 2, dn.MLPClassifier, SkMLPClassifier
    elif kind == "multilabel":
        y, Ours, Theirs = (X[:, :3] > 0).astype(int), dn.MLPClassifier, SkMLPClassifier
    elif kind == "regression":
        y, Ours, Theirs = X @ rng.normal(size=5), dn.MLPRegressor, SkMLPRegressor
    else:
        y, Ours, Theirs = X[:, :2] * 3, dn.MLPRegressor, SkMLPRegressor
    # epsilon tiny: scikit-learn's Adam adds it to sqrt(v), descend to sqrt(v_hat)
    params = dict(hidden_layer_sizes=(7,), activation="tanh", solver=solver, alpha=0.5,
                  batch_size=40, learning_rate_init=0.05, momentum=0.9,
                  nesterovs_momentum=False, shuffle=False, max_iter=4, warm_start=True,
                  epsilon=1e-12, random_state=0)
    ours = Ours(n_threads=1, dtype="float64", **params)
    theirs = Theirs(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
        theirs.fit(X, y)
        _common_start(ours, theirs)
        ours.fit(X, y)
        theirs.fit(X, y)
    rtol = 1e-9 if solver == "sgd" else 1e-7
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    if kind != "regression2":       # (sklearn reports 1/k of its multi-output objective)
        np.testing.assert_allclose(ours.loss_curve_[4:], theirs.loss_curve_[4:], rtol=rtol)


@pytest.mark.parametrize("kind", ["multiclass", "regression"])
def test_lbfgs_objective_is_sklearns(kind):
    """loss_ of solver='lbfgs' is scikit-learn's full-batch objective at the weights found."""
    X, y = (blobs(n=60) if kind == "multiclass" else linear(n=60))
    Est = dn.MLPClassifier if kind == "multiclass" else dn.MLPRegressor
    alpha = 0.7
    est = Est(hidden_layer_sizes=(6,), solver="lbfgs", alpha=alpha, max_iter=30,
              random_state=0, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    hidden = np.maximum(X @ est.coefs_[0] + est.intercepts_[0], 0)
    out = hidden @ est.coefs_[1] + est.intercepts_[1]
    if kind == "multiclass":
        out = out - out.max(axis=1, keepdims=True)
        logp = out - np.log(np.exp(out).sum(axis=1, keepdims=True))
        data_loss = -np.mean(logp[np.arange(len(y)), y])
    else:
        data_loss = 0.5 * np.mean((out[:, 0] - y) ** 2)
    penalty = alpha / (2 * len(X)) * sum(np.sum(c ** 2) for c in est.coefs_)
    assert est.loss_ == pytest.approx(data_loss + penalty, rel=1e-9)
    assert 0 < est.n_iter_ <= 30


def test_accuracy_close_to_sklearn_on_digits():
    X, y = dn.datasets.load_digits()
    X = X / 16
    params = dict(hidden_layer_sizes=(32,), max_iter=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = dn.MLPClassifier(n_threads=1, **params).fit(X[:1200], y[:1200])
        theirs = SkMLPClassifier(**params).fit(X[:1200], y[:1200])
    assert abs(ours.score(X[1200:], y[1200:]) - theirs.score(X[1200:], y[1200:])) < 0.03
    assert abs(ours.loss_ - theirs.loss_) < 0.1 * theirs.loss_


# --------------------------------------------------------------------------- training options
def test_early_stopping_keeps_the_best_validation_weights():
    X, y = blobs(n=300)
    clf = dn.MLPClassifier(hidden_layer_sizes=(16,), early_stopping=True,
                           n_iter_no_change=3, max_iter=300, random_state=0, n_threads=1)
    clf.fit(X, y)
    assert clf.n_iter_ < 300
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.best_loss_ is None
    reg = dn.MLPRegressor(hidden_layer_sizes=(16,), early_stopping=True, max_iter=500,
                          random_state=0, n_threads=1).fit(*linear(n=200))
    assert reg.best_validation_score_ == max(reg.validation_scores_) > 0.9


def test_sgd_learning_rate_schedules():
    X, y = blobs()
    scaling = dn.MLPClassifier(solver="sgd", learning_rate="invscaling", power_t=0.5,
                               learning_rate_init=0.1, max_iter=5, random_state=0,
                               n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scaling.fit(X, y)
    assert scaling.net_.optimizer.learning_rate == pytest.approx(0.1 / (5 * 150 + 1) ** 0.5)
    adaptive = dn.MLPClassifier(solver="sgd", learning_rate="adaptive", tol=10.0,
                                n_iter_no_change=1, learning_rate_init=0.1, max_iter=7,
                                random_state=0, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        adaptive.fit(X, y)
    # tol=10: no epoch improves; every 2nd epoch the rate is divided by 5
    assert adaptive.net_.optimizer.learning_rate == pytest.approx(0.1 / 5 ** 3)
    constant = dn.MLPClassifier(solver="sgd", tol=10.0, n_iter_no_change=2, max_iter=50,
                                random_state=0, n_threads=1).fit(X, y)
    assert constant.n_iter_ == 4        # as scikit-learn: stop once the count exceeds 2


def test_max_iter_reached_warns_convergence():
    X, y = blobs()
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        dn.MLPClassifier(max_iter=2, random_state=0, n_threads=1).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="lbfgs"):
        dn.MLPClassifier(solver="lbfgs", max_iter=2, random_state=0, n_threads=1).fit(X, y)


def test_batch_size_auto_and_clipping():
    X, y = blobs(n=60)
    with pytest.warns(UserWarning, match="clipped"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            dn.MLPClassifier(batch_size=1000, max_iter=2, n_threads=1).fit(X, y)


def test_verbose_prints_iterations(capsys):
    X, y = blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dn.MLPClassifier(max_iter=3, verbose=True, n_threads=1).fit(X, y)
    out = capsys.readouterr().out
    assert out.count("Iteration") == 3 and "Iteration 1, loss = " in out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dn.MLPClassifier(max_iter=3, n_threads=1).fit(X, y)
    assert capsys.readouterr() == ("", "")


def test_warm_start_continues_and_checks_classes():
    X, y = blobs()
    clf = dn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, warm_start=True,
                           random_state=0, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        net = clf.net_
        first = clf.loss_curve_[-1]
        clf.fit(X, y)
    assert clf.net_ is net and len(clf.loss_curve_) == 10 and clf.loss_curve_[-1] < first
    with pytest.raises(ValueError, match="warm_start"):
        clf.fit(X[y < 2], y[y < 2])


@pytest.mark.parametrize("early_stopping", [False, True])
def test_warm_start_takes_early_stopping_set_after_the_fit(early_stopping):
    # was: AttributeError ('NoneType' object has no attribute 'append') or
    # TypeError (None - float) after the continued fit's first epoch had trained
    X, y = blobs()
    clf = dn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, warm_start=True,
                           early_stopping=early_stopping, random_state=0, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        net = clf.net_
        clf.set_params(early_stopping=not early_stopping).fit(X, y)
    assert clf.net_ is net and len(clf.loss_curve_) == 6
    if early_stopping:
        assert clf.validation_scores_ is None and clf.best_loss_ == min(clf.loss_curve_[3:])
    else:
        assert len(clf.validation_scores_) == 3 and clf.best_loss_ is None
        assert clf.best_validation_score_ == max(clf.validation_scores_)


@pytest.mark.parametrize("solver, changes, expected", [
    ("adam", {"learning_rate_init": 0.01, "beta_1": 0.5, "beta_2": 0.6, "epsilon": 1e-3},
     {"learning_rate": 0.01, "beta_1": 0.5, "beta_2": 0.6, "epsilon": 1e-3}),
    ("sgd", {"learning_rate_init": 0.01, "momentum": 0.0},
     {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False}),
    ("sgd", {"momentum": 0.5, "nesterovs_momentum": False},
     {"learning_rate": 0.001, "momentum": 0.5, "nesterov": False}),
])
def test_warm_start_fit_takes_the_optimizer_parameters_set_after_the_fit(
        solver, changes, expected):
    # was: the continued fit kept the first fit's learning rate, momentum, betas
    # and epsilon (scikit-learn's warm start builds its optimizer from them anew)
    X, y = blobs()
    first = {"momentum": 0.0} if "momentum" in changes and changes["momentum"] else {}
    clf = dn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, warm_start=True,
                           solver=solver, random_state=0, n_threads=1, **first)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        clf.set_params(**changes).fit(X, y)
    optimizer = clf.net_.optimizer
    assert {name: getattr(optimizer, name) for name in expected} == expected
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 4
    clf.partial_fit(X, y)       # partial_fit keeps the optimizer, as scikit-learn's
    assert {name: getattr(optimizer, name) for name in expected} == expected


def test_partial_fit_streams_with_declared_classes():
    X, y = blobs()
    labels = np.array(["a", "b", "c"])[y]
    clf = dn.MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, batch_size=50,
                           random_state=0, n_threads=1)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, labels)
    assert not hasattr(clf, "net_")
    first = labels != "c"
    clf.partial_fit(X[first], labels[first], classes=["c", "a", "b"])
    np.testing.assert_array_equal(clf.classes_, ["a", "b", "c"])
    for _ in range(30):
        clf.partial_fit(X, labels)
    assert clf.score(X, labels) > 0.9
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 31
    before = fitted_state(clf)
    bad = labels.astype("U5")
    bad[0] = "zebra"
    with pytest.raises(ValueError, match="zebra"):
        clf.partial_fit(X, bad)
    assert_same(before, fitted_state(clf))
    with pytest.raises(ValueError, match="not the same as on the last call"):
        clf.partial_fit(X, labels, classes=["a", "b"])
    assert_same(before, fitted_state(clf))
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[:, :3], labels)
    assert_same(before, fitted_state(clf))
    assert not hasattr(dn.MLPClassifier(solver="lbfgs"), "partial_fit")
    with pytest.raises(ValueError, match="early_stopping"):
        dn.MLPRegressor(early_stopping=True).partial_fit(*linear())


def test_partial_fit_first_call_checks_y_against_classes():
    # the first call took integer labels as positions in classes: y in {0, 1, 2}
    # trained as 7, 8, 9 (or "cat", "dog", "emu"); the second call refused them
    X, y = blobs()
    for classes, named in (([7, 8, 9], "[7, 8, 9]: [0, 1, 2]"),
                           (["cat", "dog", "emu"], "['cat', 'dog', 'emu']: [0, 1, 2]")):
        clf = dn.MLPClassifier(hidden_layer_sizes=(4,), random_state=0, n_threads=1)
        with pytest.raises(ValueError) as info:
            clf.partial_fit(X, y, classes=classes)
        assert str(info.value) == f"y has labels not declared in classes {named}"
        assert not hasattr(clf, "net_") and not hasattr(clf, "classes_")
    # an undeclared label among declared ones is named as such (it was "binary_cross_
    # entropy takes two classes ... declare both with partial_fit(classes=...)")
    labels = np.array(["cat", "dog", "emu"])[y]
    clf = dn.MLPClassifier(hidden_layer_sizes=(4,), random_state=0, n_threads=1)
    with pytest.raises(ValueError) as info:
        clf.partial_fit(X, labels, classes=["cat", "dog"])
    assert str(info.value) == "y has labels not declared in classes ['cat', 'dog']: ['emu']"
    assert not hasattr(clf, "net_")
    clf.partial_fit(X, labels, classes=["emu", "cat", "dog"])
    np.testing.assert_array_equal(clf.classes_, ["cat", "dog", "emu"])


def test_labels_ending_in_nul_are_refused():
    # unique_labels made classes_ ['a', 'a', 'b'] of ['a', 'a\x00', 'b']: two classes
    # predicted as the same label
    X, y = blobs()
    labels = np.array(["a", "a\x00", "b"], dtype=object)[y]
    clf = dn.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0, n_threads=1)
    with pytest.raises(ValueError) as info:
        clf.fit(X, labels)
    assert str(info.value) == (
        "y has the label 'a\\x00', which ends in a NUL character: numpy's fixed-width strings "
        "drop trailing NULs (it would be 'a' in classes_ and in a saved model); strip them or "
        "use other labels")
    with pytest.raises(ValueError, match=r"^classes has the label 'b\\x00', which ends"):
        clf.partial_fit(X, np.array(["a", "b", "c"])[y], classes=["a", "b\x00", "c"])
    assert not hasattr(clf, "net_") and not hasattr(clf, "classes_")


def test_regressor_partial_fit():
    X, y = linear()
    reg = dn.MLPRegressor(hidden_layer_sizes=(16,), learning_rate_init=0.01, batch_size=20,
                          random_state=0, n_threads=1)
    for _ in range(100):
        reg.partial_fit(X, y)
    assert reg.score(X, y) > 0.9
    with pytest.raises(ValueError, match="target"):
        reg.partial_fit(X, np.column_stack([y, y]))


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("param, value, match", [
    ("hidden_layer_sizes", (0,), "hidden_layer_sizes"),
    ("activation", "swish", "activation"),
    ("solver", "newton", "solver"),
    ("alpha", -1.0, "alpha"),
    ("batch_size", 0, "batch_size"),
    ("learning_rate", "cyclic", "learning_rate"),
    ("learning_rate_init", 0.0, "learning_rate_init"),
    ("max_iter", 0, "max_iter"),
    ("momentum", 1.5, r"momentum must be a finite float in \[0, 1\), got 1.5 \(float\)"),
    ("beta_2", 1.0, "beta_2"),
    ("validation_fraction", 1.0, "validation_fraction"),
    ("epsilon", -1e-8, "epsilon"),
    ("n_iter_no_change", 0, "n_iter_no_change"),
    ("dtype", "float16", "dtype"),
    ("n_threads", 0, "n_threads"),
])
def test_bad_hyperparameters_are_named_at_fit(param, value, match):
    X, y = blobs(n=30)
    clf = dn.MLPClassifier(**{param: value})          # __init__ never validates
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)
    assert not hasattr(clf, "net_")


@pytest.mark.parametrize("param, value, match", [
    ("hidden_layer_sizes", "big", "MLPClassifier: hidden_layer_sizes must be an int >= 1 or "
                                  "a sequence of ints >= 1, got 'big' \\(str\\)"),
    ("shuffle", "yes", "MLPClassifier: shuffle must be a bool, got 'yes' \\(str\\)"),
    ("random_state", "seed", "random_state must be None, an int in"),
    ("alpha", "0.1", "alpha must be a finite float >= 0"),
])
def test_hyperparameters_of_a_wrong_type_are_type_errors(param, value, match):
    X, y = blobs(n=30)
    clf = dn.MLPClassifier(**{param: value})
    with pytest.raises(TypeError, match=match):
        clf.fit(X, y)
    assert not hasattr(clf, "net_")


def test_estimators_declare_a_constraint_for_every_parameter():
    for cls in (dn.MLPClassifier, dn.MLPRegressor):
        assert set(cls._parameter_constraints) == set(cls().get_params(deep=False))


@pytest.mark.parametrize("make_bad, match", [
    (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X), y), "NaN"),
    (lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 3, np.inf, X), y),
     "infinity"),
    (lambda X, y: (X[:0], y[:0]), "0 sample"),
    (lambda X, y: (X[:-1], y), "inconsistent numbers of samples"),
    (lambda X, y: (X, np.zeros_like(y)), "class"),
    (lambda X, y: (X, y + 0.5), "Unknown label type"),
    (lambda X, y: (X[:, 0], y), "2D array"),
])
def test_bad_input_leaves_a_fitted_estimator_unchanged(make_bad, match):
    X, y = blobs()
    clf = dn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    before = fitted_state(clf)
    Xb, yb = make_bad(X, y)
    with pytest.raises(ValueError, match=match):
        clf.fit(Xb, yb)
    assert_same(before, fitted_state(clf))
    # a different feature count in a failed fit does not change n_features_in_
    with pytest.raises(ValueError):
        clf.fit(np.hstack([X, X]), np.zeros(len(X)))
    assert clf.n_features_in_ == 5
    assert_same(before, fitted_state(clf))


def test_predict_checks_its_input():
    X, y = blobs()
    clf = dn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, n_threads=1)
    with pytest.raises(NotFittedError):
        clf.predict(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    with pytest.raises(ValueError, match="5 features"):
        clf.predict(X[:, :4])
    with pytest.raises(ValueError, match="NaN"):
        clf.predict_proba(np.full((2, 5), np.nan))
    with pytest.raises(ValueError, match="0 sample"):
        clf.predict(X[:0])


def test_random_state_reproducible_and_global_state_untouched():
    X, y = blobs()

    def fit(random_state, n_threads=1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return dn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, n_threads=n_threads,
                                    random_state=random_state).fit(X, y).predict_proba(X)

    np.random.seed(0)
    a = fit(3)
    np.random.seed(99)
    np.random.random(10)
    np.testing.assert_array_equal(a, fit(3))
    np.testing.assert_array_equal(a, fit(3, n_threads=2))
    np.testing.assert_array_equal(fit(np.random.RandomState(5)), fit(np.random.RandomState(5)))
    np.testing.assert_array_equal(fit(np.random.default_rng(5)), fit(np.random.default_rng(5)))
    state = np.random.get_state()[1].copy()
    fit(None)
    fit(None)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_import_descend_works_without_sklearn():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import descend\n"
            "assert 'descend.estimators' not in sys.modules\n"
            "try:\n"
            "    descend.MLPClassifier\n"
            "except ImportError as exc:\n"
            "    print('ImportError:', exc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "pip install 'descend[sklearn]'" in result.stdout
    assert "MLPClassifier" in dir(dn) and "MLPRegressor" in dir(dn)
    with pytest.raises(AttributeError):
        dn.NoSuchThing


# --------------------------------------------------------------------------- weights
@pytest.mark.parametrize("estimator", [
    MLPClassifier(solver="lbfgs", hidden_layer_sizes=(5,), max_iter=30, n_threads=1),
    MLPRegressor(solver="lbfgs", hidden_layer_sizes=(5,), max_iter=30, n_threads=1),
    MLPClassifier(hidden_layer_sizes=(5,), max_iter=30, class_weight="balanced",
                  n_threads=1)])
def test_sample_weight_equivalence_with_repeated_rows(estimator):
    from sklearn.utils.estimator_checks import check_sample_weight_equivalence_on_dense_data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_sample_weight_equivalence_on_dense_data(type(estimator).__name__, estimator)


def test_class_weight_equals_sample_weight_and_balanced_is_sklearns():
    from sklearn.utils.class_weight import compute_class_weight
    X, y = blobs(n=60)
    labels = np.array(["a", "b", "c"])[y]
    y_skewed = labels.copy()
    y_skewed[:12] = "a"
    sw = np.random.default_rng(0).random(60) + 0.5
    params = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        by_dict = MLPClassifier(class_weight={"b": 3.0}, **params).fit(
            X, y_skewed, sample_weight=sw)
        by_sample = MLPClassifier(**params).fit(
            X, y_skewed, sample_weight=sw * np.where(y_skewed == "b", 3.0, 1.0))
        balanced = MLPClassifier(class_weight="balanced", **params).fit(
            X, y_skewed, sample_weight=sw)
        expected = compute_class_weight("balanced", classes=np.array(["a", "b", "c"]),
                                        y=y_skewed, sample_weight=sw)
        by_hand = MLPClassifier(**params).fit(
            X, y_skewed, sample_weight=sw * expected[np.searchsorted(["a", "b", "c"],
                                                                     y_skewed)])
    for a, b in zip(by_dict.coefs_, by_sample.coefs_):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(balanced.coefs_, by_hand.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_class_weight_errors_leave_the_estimator_unfitted():
    X, y = blobs(n=30)
    with pytest.raises(ValueError, match="key 7, which is not a class"):
        MLPClassifier(class_weight={7: 2.0}, max_iter=2).fit(X, y)
    with pytest.raises(ValueError, match="class_weight must be"):
        MLPClassifier(class_weight="even").fit(X, y)
    with pytest.raises(ValueError, match="multi-label"):
        MLPClassifier(class_weight={0: 2.0}).fit(X, np.eye(3, dtype=int)[y])
    clf = MLPClassifier(class_weight="balanced")
    with pytest.raises(ValueError, match="not supported by partial_fit"):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    assert not hasattr(clf, "net_")
    with pytest.raises(ValueError, match="sample_weight must be >= 0"):
        MLPRegressor().fit(*linear(n=20), sample_weight=-np.ones(20))


def test_early_stopping_scores_the_validation_part_with_its_weights(monkeypatch):
    from sklearn.metrics import accuracy_score
    X, y = blobs(n=120)
    w = np.random.default_rng(3).integers(0, 4, size=120).astype(float)
    seen = []
    score = MLPClassifier._validation_score

    def recording(self, X_val, y_val, sample_weight=None):
        seen.append((X_val, y_val, sample_weight))
        return score(self, X_val, y_val, sample_weight)
    monkeypatch.setattr(MLPClassifier, "_validation_score", recording)
    clf = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=1,
                        random_state=0, n_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y, sample_weight=w)
    (X_val, y_val, w_val), = seen
    rows = [int(np.flatnonzero((X == x).all(axis=1))[0]) for x in X_val]
    np.testing.assert_array_equal(w_val, w[rows])          # the held-out rows' weights
    assert clf.validation_scores_[0] == pytest.approx(
        accuracy_score(y_val, clf.predict(X_val), sample_weight=w_val), rel=1e-15)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_diverging_call_leaves_the_estimator_as_it_was():
    """A breaker's cases: only ValueError/TypeError restored the estimator, and
    DivergenceError is a FloatingPointError: partial_fit's divergence reset
    n_iter_ to 0, a fresh estimator whose fit diverged was left 'fitted'
    with an untrained net_, a diverging warm-start fit kept the epochs it had
    run. Now each leaves the estimator (and its network) as it was."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, 2.0, 3.0])
    huge = X * 1e200
    fitted = MLPRegressor(hidden_layer_sizes=(3,), max_iter=5, random_state=0).fit(X, y)
    before, n_iter = fitted.predict(X), fitted.n_iter_
    with pytest.raises(dn.DivergenceError):
        fitted.partial_fit(huge, y)
    assert fitted.n_iter_ == n_iter and np.array_equal(fitted.predict(X), before)
    fresh = MLPRegressor(hidden_layer_sizes=(3,), max_iter=5, random_state=0)
    with pytest.raises(dn.DivergenceError):
        fresh.fit(huge, y)
    assert not hasattr(fresh, "net_")
    with pytest.raises(NotFittedError):
        fresh.predict(X)
    warm = MLPRegressor(hidden_layer_sizes=(3,), max_iter=5, random_state=0,
                        warm_start=True).fit(X, y)
    before, n_iter = warm.predict(X), warm.n_iter_
    late = X.copy()
    late[-1] = 1e200             # the last batch of the first epoch diverges
    with pytest.raises(dn.DivergenceError):
        warm.fit(late, y)
    assert warm.n_iter_ == n_iter and np.array_equal(warm.predict(X), before)


# --------------------------------------------------------------------------- threads
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("second", ["fit", "partial_fit", "pickle"])
def test_a_second_fit_of_an_estimator_another_thread_fits_is_refused(monkeypatch, second):
    """A tester's report: two threads fitting one estimator at once (64 and
    32 features) could leave n_features_in_=64 with a net_ built for 32;
    predict then raised. The second call now raises before changing anything."""
    import threading
    from descend import estimators
    X, y = blobs(d=6)
    inside, release, errors = threading.Event(), threading.Event(), []
    original = estimators._SklearnLoop.on_epoch_end

    def pause_once(self, epoch, logs=None):
        # the first fit's first epoch end: held until the other call was tried
        if not inside.is_set():
            inside.set()
            assert release.wait(60)
        return original(self, epoch, logs)
    monkeypatch.setattr(estimators._SklearnLoop, "on_epoch_end", pause_once)
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0, n_threads=1)

    def fit():
        try:
            clf.fit(X, y)
        except Exception as exc:    # pragma: no cover - reported by the test
            errors.append(exc)
    thread = threading.Thread(target=fit)
    thread.start()
    assert inside.wait(60)
    try:
        if second == "pickle":
            with pytest.raises(RuntimeError, match=r"pickle or copy.deepcopy: another thread "
                                                   r"is fitting this estimator \(fit\)"):
                pickle.dumps(clf)
        else:
            call = {"fit": lambda: clf.fit(X[:, :3], y % 2),
                    "partial_fit": lambda: clf.partial_fit(X[:, :3], y % 2, classes=[0, 1])}
            with pytest.raises(RuntimeError, match=rf"{second}: another thread is already "
                                                   r"fitting this estimator \(fit\); .* fit a "
                                                   r"clone \(sklearn.base.clone"):
                call[second]()
    finally:
        release.set()
        thread.join(60)
    assert not errors
    # the first fit alone shaped the estimator: as a fit with nothing beside it
    monkeypatch.setattr(estimators._SklearnLoop, "on_epoch_end", original)
    alone = clone(clf).fit(X, y)
    assert clf.n_features_in_ == 6 and clf.net_.n_features_in_ == 6
    assert clf.classes_.tolist() == [0, 1, 2] and clf.n_iter_ == alone.n_iter_ == 5
    np.testing.assert_array_equal(clf.predict_proba(X), alone.predict_proba(X))
    again = pickle.loads(pickle.dumps(clf))         # and it pickles once fit returned
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
