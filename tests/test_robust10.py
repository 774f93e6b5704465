"""Session 9's leftovers (robust10): one check of a stored profile's numbers,
bench/predict_compare.py's --data-home, DESCEND_PLAN's two forms taking the
same numbers, a DESCEND_CACHE_DIR of only whitespace."""
import pytest

from descend import plans
from test_plans import profile_dir  # noqa: F401 - a fixture


# ------------------------------------------------- a stored profile's numbers
@pytest.mark.parametrize("value, positive, non_negative", [
    (1, True, True), (0.25, True, True), (1e308, True, True),
    (0, False, True), (0.0, False, True), (-0.0, False, True),
    (-1, False, False), (-1e-300, False, False),
    (True, False, False), (False, False, False),       # JSON's true is no figure
    (float("nan"), False, False), (float("inf"), False, False),
    ("1", False, False), (None, False, False), ([1], False, False)])
def test_one_check_of_a_finite_number_for_records_and_figures(value, positive, non_negative):
    """_records_are_valid (>= 0) and _figures_are_valid (> 0), and predict's
    figures, each had their own three-line copy of this check."""
    assert plans.is_finite_number(value) is positive
    assert plans.is_finite_number(value, zero=True) is non_negative


@pytest.mark.parametrize("field", ["seconds", "load_average", "measured_at", "gemm",
                                   "sparse_break_even"])
def test_a_stored_profile_with_an_int_beyond_a_float64_is_measured_again(
        profile_dir, monkeypatch, field):
    """JSON reads a 400-digit int as an int; math.isfinite (and time.time()
    minus it) raised OverflowError from machine_profile, so every fit
    failed until someone deleted the file."""
    import json
    directory, calls = profile_dir
    path = plans.machine_profile()["path"]
    with open(path) as f:
        stored = json.load(f)
    huge = 10**400
    if field == "gemm":
        stored["gemm"]["float32"]["256"]["64"] = huge
    elif field == "sparse_break_even":
        stored["sparse_break_even"]["float64"] = huge
    else:
        stored[field] = huge
    with open(path, "w") as f:
        json.dump(stored, f)
    monkeypatch.setattr(plans, "_loaded", {})      # a new process: read from the file
    profile = plans.machine_profile()
    assert len(calls) == 2 and profile["seconds"] == 0.5
    assert plans.is_finite_number(huge) is False
    assert plans.is_finite_number(huge, zero=True) is False


# ------------------------------------------------------------ DESCEND_CACHE_DIR
@pytest.mark.parametrize("value", [" ", "   ", "\t", " \n "])
def test_a_descend_cache_dir_of_only_whitespace_is_refused_naming_it(
        value, profile_dir, monkeypatch, tmp_path):
    """It was taken as a relative path: a directory named ' ' in the current
    directory, made silently, the profile stored in it."""
    import os
    directory, calls = profile_dir
    monkeypatch.setattr(plans, "_relative_cache_dirs", {})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DESCEND_CACHE_DIR", value)
    with pytest.raises(ValueError, match="DESCEND_CACHE_DIR") as error:
        plans.cache_dir()
    assert repr(value) in str(error.value) and "whitespace" in str(error.value)
    with pytest.raises(ValueError, match="DESCEND_CACHE_DIR"):
        plans.machine_profile()
    assert calls == [] and os.listdir(tmp_path) == []
    assert "DESCEND_CACHE_DIR" in plans.plans_data()["error"]


def test_a_descend_cache_dir_of_a_space_after_dot_slash_is_that_directory(monkeypatch,
                                                                         tmp_path):
    monkeypatch.setattr(plans, "_relative_cache_dirs", {})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DESCEND_CACHE_DIR", "./ ")
    assert plans.cache_dir() == str(tmp_path / " ")


def test_the_cli_refuses_a_descend_cache_dir_of_only_whitespace_as_a_usage_error(
        monkeypatch, capsys, tmp_path):
    from descend.__main__ import main
    monkeypatch.chdir(tmp_path)         # (before the fix, demo ran: not in the checkout)
    monkeypatch.setenv("DESCEND_CACHE_DIR", " ")
    with pytest.raises(SystemExit) as exit_info:
        main(["demo"])
    assert exit_info.value.code == 2
    assert "error: DESCEND_CACHE_DIR must be a directory" in capsys.readouterr().err
