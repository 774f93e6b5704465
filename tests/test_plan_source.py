"""plan_["source"]: where the fields of the recorded plan came from, fit's
and predict's, through pinning, unpinning, predict before any fit, and save
and load (descend.plans.part_source, recorded_source)."""
import numpy as np

import descend as dn
from descend import plans
from test_plan_pinning_edges import full_profile_dir  # noqa: F401 - a fixture
from test_plans import profile_dir  # noqa: F401 - a fixture

PREDICT_PINNED = {"predict_sparse_density": 0.3, "predict_gemm_min_rows": 16}


def mnist_like(seed=0):
    net = dn.Sequential([dn.Dense(256, activation="relu"), dn.Dense(128, activation="relu"),
                         dn.Dense(10)], input_dim=784, seed=seed, n_threads=1)
    return net.compile("softmax_cross_entropy", dn.optimizers.SGD(0.01))


def rows(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 784), dtype=np.float32)
    X[X > 0.2] = 0
    return X, rng.integers(0, 10, n)


def test_part_source_says_whether_none_some_or_all_fields_were_pinned():
    fields = plans.PREDICT_FIELDS
    assert plans.part_source({}, fields, "profile") == "profile"
    assert plans.part_source({}, fields, "defaults") == "defaults"
    assert plans.part_source({"predict_gemm_min_rows": 4}, fields, "profile") == \
        "forced+profile"
    assert plans.part_source(PREDICT_PINNED, fields, "defaults") == "forced"
    assert plans.recorded_source(None, "profile") == "profile"
    assert plans.recorded_source("profile", "profile") == "profile"
    assert plans.recorded_source("forced", "profile") == "fit: forced, predict: profile"
    assert plans.fit_source({"sample_rows": 4, "source": "fit: forced+profile, "
                                                        "predict: profile"}) == "forced+profile"
    assert plans.fit_source({"sample_rows": 4, "source": "defaults"}) == "defaults"
    assert plans.fit_source({"predict_gemm_min_rows": 4, "source": "forced"}) is None


def test_a_fit_from_the_profile_then_a_pinned_predict_says_so(full_profile_dir, tmp_path):
    X, y = rows(64)
    net = mnist_like()
    net.fit(X, y, epochs=1, batch_size=32, verbose=0)
    assert net.plan_["source"] == "profile"
    net.plan = dict(PREDICT_PINNED)
    net.predict(X[:3])
    assert {k: net.plan_[k] for k in PREDICT_PINNED} == PREDICT_PINNED
    assert net.plan_["source"] == "fit: profile, predict: forced"
    # saved and loaded as it is
    loaded = dn.load(net.save(tmp_path / "m.npz"))
    assert loaded.plan_ == net.plan_
    # one predict field pinned: the other from the profile
    net.plan = {"predict_gemm_min_rows": 16}
    net.predict(X[:3])
    assert net.plan_["source"] == "fit: profile, predict: forced+profile"
    # unpinned: all from the profile again
    net.plan = None
    net.predict(X[:3])
    assert net.plan_["source"] == "profile"
    # everything pinned (pin_plan), the next fit and predict: all forced
    net.pin_plan()
    net.fit(X, y, epochs=1, batch_size=32, verbose=0)
    assert net.plan_["source"] == "forced"
    net.predict(X[:3])
    assert net.plan_["source"] == "forced"


def test_a_pinned_value_equal_to_the_profiles_is_still_pinned(full_profile_dir):
    X, y = rows(64)
    net = mnist_like()
    net.fit(X, y, epochs=1, batch_size=32, verbose=0)
    net.plan = {k: net.plan_[k] for k in plans.PREDICT_FIELDS}     # the same values
    net.predict(X[:3])
    assert net.plan_["source"] == "fit: profile, predict: forced"


def test_a_partly_pinned_fit_is_forced_plus_the_rest(full_profile_dir, monkeypatch):
    X, y = rows(64)
    net = mnist_like()
    monkeypatch.setenv("DESCEND_PLAN", "sample_rows=8")
    net.fit(X, y, epochs=1, batch_size=32, verbose=0)
    assert net.plan_["sample_rows"] == 8
    assert net.plan_["source"] == "fit: forced+profile, predict: profile"
    monkeypatch.setenv("DESCEND_PROFILE", "0")
    net.fit(X, y, epochs=1, batch_size=32, verbose=0)
    assert net.plan_["source"] == "fit: forced+defaults, predict: defaults"
    net.plan = dict(PREDICT_PINNED)
    net.predict(X[:3])
    assert net.plan_["source"] == "fit: forced+defaults, predict: forced"


def test_a_predict_before_any_fit_records_its_source(full_profile_dir):
    net = mnist_like()
    net.predict(rows(3)[0])
    assert net.plan_ == {**{k: net.plan_[k] for k in plans.PREDICT_FIELDS},
                         "source": "profile"}


def test_plan_for_says_whether_none_some_or_all_fit_fields_were_forced(full_profile_dir):
    workload = plans.Workload(((784, 256), (256, 10)), "float32", 32, 0.2, 2)
    every = {"sparse_input": True, "sample_rows": 4, "kernel_rows": 64, "by_columns": False}
    assert plans.plan_for(workload, plans.machine_profile(), every).source == "forced"
    assert plans.plan_for(workload, plans.machine_profile(), {"sample_rows": 4}).source == \
        "forced+profile"
    assert plans.plan_for(workload, None, {"sample_rows": 4}).source == "forced+defaults"
    assert plans.plan_for(workload, None, {}).source == "defaults"
