"""`python -m descend info --json` (and ``dn.show_config(mode="dicts")``):
the profile's figures and the last plans as numbers, the text form as it was."""
import json

import numpy as np
import pytest

import descend as dn
from descend import plans
from descend.__main__ import main
from test_plan_pinning_edges import full_profile_dir  # noqa: F401 - a fixture
from test_plans import profile_dir  # noqa: F401 - a fixture


def fit_and_predict():
    rng = np.random.default_rng(0)
    X = rng.random((64, 784), dtype=np.float32)
    X[X > 0.2] = 0
    net = dn.Sequential([dn.Dense(256, activation="relu"), dn.Dense(10)], input_dim=784,
                        seed=0, n_threads=1)
    net.compile("softmax_cross_entropy", "sgd")
    net.fit(X, rng.integers(0, 10, 64), epochs=1, batch_size=32, verbose=0)
    net.predict(X[:20])
    return net


def info_json(capsys):
    assert main(["info", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def is_float(value):
    return type(value) is float


@pytest.fixture
def profiled(full_profile_dir, monkeypatch):
    """The full fake profile, with an L2 cache size, measured in this test."""
    measure = plans.measure_profile
    monkeypatch.setattr(plans, "measure_profile",
                        lambda: {**measure(), "l2_cache_bytes": 2097152, "load_average": 1.5})
    return full_profile_dir


def test_info_json_gives_the_profiles_figures_as_numbers(profiled, capsys):
    net = fit_and_predict()
    report = info_json(capsys)
    section = report["plans"]
    profile = section["profile"]
    assert profile["path"] == plans.machine_profile()["path"]
    assert (profile["measured_seconds"], profile["load_average"], profile["cores"],
            profile["max_age_days"]) == (0.5, 1.5, plans.usable_cores(), 30)
    gemm = section["gemm_gflops"]["float32"]
    assert gemm["256"] == {"4": 70.0, "16": 40.0, "64": 110.0, "256": 130.0}
    assert all(is_float(rate) for table in section["gemm_gflops"].values()
               for rates in table.values() for rate in rates.values())
    update = section["kernel_update_gflops"]["float64"]["1024"]["256"]
    assert update == {"64": 30.0, "128": 60.0, "256": 80.0, "512": 90.0}
    assert all(is_float(rate) for rate in update.values())
    assert section["sparse_break_even_density"]["float32"] == {"16": 0.4, "128": 0.37,
                                                              "512": 0.31}
    assert section["l2_cache_bytes"] == 2097152
    last = section["last_plan"]
    assert last["plan"] == {k: v for k, v in net.plan_.items() if k in plans.PLAN_FIELDS
                            or k == "source"} | {"source": plans.fit_source(net.plan_)}
    assert (last["batch_size"], last["dtype"], last["layer_shapes"]) == (
        32, "float32", [[784, 256], [256, 10]])
    assert is_float(last["input_density"]) and 0.15 < last["input_density"] < 0.25
    predict = report["predict"]
    assert predict["profiling"] is True
    assert predict["sparse_break_even_density"] == {"float32": 0.35, "float64": 0.35}
    assert predict["row_loop_gflops"]["float32"] == {"256": 50.0, "1024": 27.0}
    assert predict["last_predict"] == {
        "dtype": "float32", "layer_shapes": [[784, 256], [256, 10]],
        "sparse_density": net.plan_["predict_sparse_density"],
        "gemm_min_rows": net.plan_["predict_gemm_min_rows"], "source": "profile"}
    # the same report from Python
    assert json.loads(json.dumps(dn.show_config(mode="dicts")["plans"])) == section


def test_the_text_form_stays_as_it_was(profiled, capsys):
    fit_and_predict()
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    for line in [
            "  float32 GEMM GFLOP/s, 1 thread, 256x256 kernel: 4 rows 70, 16 rows 40, "
            "64 rows 110, 256 rows 130",
            "  float64 kernel-update GEMM GFLOP/s, 1 thread, 1024 outputs, batch 1024: "
            "64 rows 30, 128 rows 60, 256 rows 80, 512 rows 90",
            "  float32 sparse first layer faster below: 40% non-zero inputs at batch 16, 37% "
            "non-zero inputs at batch 128, 31% non-zero inputs at batch 512",
            "  L2 cache per core: 2048 KiB",
            "  float32 sparse first layer faster below: 35% non-zero inputs (forward only)",
            "  float32 row loops GFLOP/s, ReLU-like inputs: 256x256 kernel 50, "
            "1024x1024 kernel 27"]:
        assert line + "\n" in text
    assert "(measured in 0.5 s, load average 1.5, " in text
    assert "  last predict: float32, layers [(784, 256), (256, 10)]: sparse first layer up " \
           "to 35% non-zero inputs, GEMMs for the hidden layers " in text


def test_info_json_with_profiling_off(monkeypatch, capsys):
    monkeypatch.setenv("DESCEND_PROFILE", "0")
    fit_and_predict()
    report = info_json(capsys)
    assert report["plans"]["profile"] is None
    assert report["plans"]["last_plan"]["plan"]["source"] == "defaults"
    assert report["predict"]["profiling"] is False
    assert report["predict"]["last_predict"]["gemm_min_rows"] == 16
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "  profile: off (DESCEND_PROFILE=0): plans use the defaults\n" in text
    assert "  thresholds: defaults (DESCEND_PROFILE=0)\n" in text
