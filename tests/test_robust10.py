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


# ------------------------------------------------------ bench/predict_compare.py
def _predict_compare_script():
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(__file__), os.pardir, "bench", "predict_compare.py")
    if not os.path.isfile(path):        # the tests of an installed wheel run outside the checkout
        pytest.skip("bench/predict_compare.py is in the source checkout only")
    spec = importlib.util.spec_from_file_location("bench_predict_compare", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _MnistRead(Exception):
    """What the test's load_mnist raises: the work began."""


@pytest.fixture
def predict_compare(monkeypatch):
    """The script, its load_mnist recording data_home and stopping there,
    torch a stand-in (the comparison is not run)."""
    import sys
    import types
    script = _predict_compare_script()
    read = []

    def load_mnist(data_home=None, **kwargs):
        read.append(data_home)
        raise _MnistRead
    monkeypatch.setattr(script.dn.datasets, "load_mnist", load_mnist)
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))
    return script, read


def test_bench_predict_compare_reads_mnist_from_data_home(predict_compare, tmp_path):
    """It read MNIST from the default place only (a download; offline,
    DESCEND_DATA had to be set), where compare.py and shapes.py take --data-home."""
    script, read = predict_compare
    with pytest.raises(_MnistRead):
        script.main(["--data-home", str(tmp_path), "--rows", "1"])
    assert read == [str(tmp_path)]
    with pytest.raises(_MnistRead):
        script.main([])
    assert read[-1] is None             # (load_mnist's default: DESCEND_DATA, the cache)


@pytest.mark.parametrize("argv, named", [
    (["--data-home", "{file}"], "--data-home"),
    (["--data-home", ""], "--data-home"),
    (["--rows", "0"], "--rows"),          # ZeroDivisionError after MNIST and the nets
    (["--rows", "10", "-1"], "--rows"),
    (["--threads", "0"], "--threads"),
    (["--rounds", "0"], "--rounds"),      # a median of nothing
    (["--dtypes", "float16"], "--dtypes")])
def test_bench_predict_compare_refuses_bad_arguments_before_any_work(
        predict_compare, argv, named, tmp_path, capsys):
    script, read = predict_compare
    a_file = tmp_path / "mnist.gz"
    a_file.write_text("not a directory")
    with pytest.raises(SystemExit) as stop:
        script.main([arg.format(file=a_file) for arg in argv])
    assert stop.value.code == 2
    assert named in capsys.readouterr().err and read == []
