"""Edges of today's plan and profile changes (the breaker pass of session 8):
a stored profile whose size keys are corrupt, a hostile DESCEND_PLAN or
profile file nested too deep for the JSON parser, and a pinned plan that
one-row predict must check as every other predict does."""
import json
import os
import time

import numpy as np
import pytest

import descend as dn
from descend import _inference, plans
from test_plans import profile_dir  # noqa: F401 - a fixture


def full_profile():
    """A profile with every table a plan reads (fit's and predict's), both dtypes."""
    rows = {str(r): rate for r, rate in zip(plans.PROFILE_ROWS, (70, 40, 110, 130))}
    update = {str(r): rate for r, rate in zip(plans.PROFILE_UPDATE_ROWS, (30, 60, 80, 90))}
    tables = {dtype: {"gemm": {"256": dict(rows), "1024": dict(rows)},
                      "update": {str(b): {"256": dict(update), "1024": dict(update)}
                                 for b in plans.UPDATE_PROBE_BATCHES},
                      "break_even": {"16": 0.4, "128": 0.37, "512": 0.31},
                      "predict": {"sparse_break_even": 0.35,
                                  "row_loop_gflops": {"256": 50.0, "1024": 27.0}}}
              for dtype in ("float32", "float64")}
    return {"gemm": {d: t["gemm"] for d, t in tables.items()},
            "gemm_update": {d: t["update"] for d, t in tables.items()},
            "sparse_break_even": {d: t["break_even"] for d, t in tables.items()},
            "predict": {d: t["predict"] for d, t in tables.items()}}


@pytest.fixture
def full_profile_dir(profile_dir, monkeypatch):
    """test_plans' profile_dir, measuring full_profile(); no DESCEND_PLAN, no
    thresholds kept from earlier tests."""
    directory, calls = profile_dir
    monkeypatch.delenv("DESCEND_PLAN", raising=False)
    monkeypatch.setattr(_inference, "_thresholds", {})

    def measure():
        calls.append(1)
        return {**full_profile(), "seconds": 0.5, "measured_at": int(time.time()),
                "cores": plans.usable_cores()}
    monkeypatch.setattr(plans, "measure_profile", measure)
    return profile_dir


def rename(table, old, new):
    table[new] = table.pop(old)


# each of these passed the check of a stored profile, then broke every
# predict or fit (the error in the comment) until the file was deleted
@pytest.mark.parametrize("corrupt", [
    # ValueError: math domain error (log of a zero-wide kernel)
    lambda p: rename(p["gemm"]["float32"], "256", "0"),
    # ValueError: invalid literal for int() with base 10: 'abc'
    lambda p: rename(p["gemm"]["float32"], "256", "abc"),
    # OverflowError: integer division result too large for a float
    lambda p: rename(p["gemm"]["float32"], "256", "9" * 400),
    # ValueError: math domain error
    lambda p: rename(p["gemm_update"]["float32"]["128"], "256", "0"),
    # ValueError: invalid literal for int() with base 10: 'abc'
    lambda p: rename(p["gemm_update"]["float32"], "128", "abc"),
    # ZeroDivisionError: division by zero
    lambda p: rename(p["gemm_update"]["float32"], "128", "0"),
    # ZeroDivisionError: float division by zero ("0128" and "128" are one size)
    lambda p: p["gemm_update"]["float32"].update({"0128": p["gemm_update"]["float32"]["128"]}),
    # ValueError: min() arg is an empty sequence
    lambda p: p["gemm_update"]["float32"].update({"128": {}}),
    # the same size twice in a rate table, a row-loop table or a break-even table
    lambda p: p["gemm"]["float32"]["256"].update({"064": 1.0}),
    lambda p: p["predict"]["float32"]["row_loop_gflops"].update({"0256": 1.0}),
    lambda p: p["sparse_break_even"]["float32"].update({"016": 0.5}),
], ids=["width-0", "width-text", "width-huge", "update-width-0", "update-batch-text",
        "update-batch-0", "update-batch-twice", "update-width-empty", "rows-twice",
        "row-loop-width-twice", "break-even-batch-twice"])
def test_a_stored_profile_with_corrupt_sizes_is_measured_again(full_profile_dir, monkeypatch,
                                                                 corrupt):
    directory, calls = full_profile_dir
    path = plans.machine_profile()["path"]
    with open(path) as f:
        stored = json.load(f)
    corrupt(stored)
    assert plans.profile_is_stale(stored, plans.profile_key())
    with open(path, "w") as f:
        json.dump(stored, f)
    monkeypatch.setattr(plans, "_loaded", {})      # a new process: read from the file
    rng = np.random.default_rng(0)
    net = dn.Sequential([dn.Dense(256, activation="relu"), dn.Dense(256, activation="relu"),
                         dn.Dense(3)], input_dim=64, seed=0, n_threads=1)
    net.compile("softmax_cross_entropy", "sgd")
    X = rng.normal(size=(300, 64))
    assert net.predict(X).shape == (300, 3)
    net.fit(X, np.arange(300) % 3, epochs=1, batch_size=128, verbose=0)
    assert len(calls) == 2 and net.plan_["source"] == "profile"
    with open(path) as f:
        assert json.load(f)["gemm"] == full_profile()["gemm"]      # rewritten whole


def test_a_profile_file_nested_too_deep_is_measured_again(full_profile_dir, monkeypatch):
    # RecursionError from json.load, out of every fit and predict
    directory, calls = full_profile_dir
    path = plans.machine_profile()["path"]
    with open(path, "w") as f:
        f.write("[" * 100_000 + "]" * 100_000)
    monkeypatch.setattr(plans, "_loaded", {})
    assert plans.machine_profile()["gemm"] == full_profile()["gemm"] and len(calls) == 2


@pytest.mark.parametrize("text", ['{"sample_rows": ' + "[" * 100_000 + "]" * 100_000 + "}",
                                  '{"a":' * 100_000 + "1" + "}" * 100_000])
def test_a_descend_plan_nested_too_deep_is_a_value_error_naming_it(monkeypatch, text):
    # RecursionError from json.loads
    monkeypatch.setenv("DESCEND_PLAN", text)
    with pytest.raises(ValueError, match="DESCEND_PLAN is not valid JSON"):
        plans.forced_from_env()


def test_a_nested_object_in_descend_plan_is_shown_as_given(monkeypatch):
    # it showed as [('a', 1)], the parser's pairs
    monkeypatch.setenv("DESCEND_PLAN", '{"predict_sparse_density": {"a": 1}}')
    with pytest.raises(ValueError, match=r"got \{'a': 1\}"):
        plans.forced_from_env()


def small_net(plan=None):
    net = dn.Sequential([dn.Dense(4, activation="relu"), dn.Dense(2)], input_dim=3, seed=0)
    net.compile("softmax_cross_entropy", "sgd")
    net.plan = plan
    return net


@pytest.mark.parametrize("plan", ["fast", {"rows": 3}, {"predict_gemm_min_rows": 0},
                                  {"predict_sparse_density": float("nan")},
                                  {"predict_gemm_min_rows": True}])
@pytest.mark.parametrize("n_rows", [1, 2])
def test_predict_checks_a_pinned_plan_on_one_row_as_on_more(plan, n_rows):
    # one row took the lean path, which read no plan: any plan passed there
    net = small_net(plan)
    X = np.ones((n_rows, 3))
    with pytest.raises(ValueError, match="plan"):
        net.predict(X)
    assert net.plan_ is None


@pytest.mark.parametrize("n_rows", [1, 2])
def test_predict_checks_descend_plan_on_one_row_as_on_more(monkeypatch, n_rows):
    monkeypatch.setenv("DESCEND_PLAN", "predict_gemm_min_rows=0")
    with pytest.raises(ValueError, match="DESCEND_PLAN"):
        small_net().predict(np.ones((n_rows, 3)))


def test_a_valid_pinned_plan_gives_one_row_the_bits_of_no_plan():
    X = np.random.default_rng(0).normal(size=(1, 3))
    expected = small_net().predict(X)
    pinned = small_net({"predict_sparse_density": 0, "predict_gemm_min_rows": 1})
    np.testing.assert_array_equal(pinned.predict(X), expected)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_profile_path_that_is_no_regular_file_is_measured_again(full_profile_dir, monkeypatch,
                                                                  kind):
    # a named pipe there hung every fit and predict in open(); a link to
    # /dev/zero read until memory ran out
    directory, calls = full_profile_dir
    path = plans.machine_profile()["path"]
    os.remove(path)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        os.symlink(os.devnull if not os.path.exists("/dev/zero") else "/dev/zero", path)
    monkeypatch.setattr(plans, "_loaded", {})
    assert plans.machine_profile()["gemm"] == full_profile()["gemm"] and len(calls) == 2
    assert os.path.isfile(path) and not os.path.islink(path)     # replaced by the profile


def test_an_oversized_profile_file_is_measured_again(full_profile_dir, monkeypatch):
    directory, calls = full_profile_dir
    path = plans.machine_profile()["path"]
    with open(path) as f:
        stored = f.read()
    with open(path, "w") as f:
        f.write(" " * (plans.MAX_PROFILE_BYTES + 1) + stored)
    monkeypatch.setattr(plans, "_loaded", {})
    plans.machine_profile()
    assert len(calls) == 2
