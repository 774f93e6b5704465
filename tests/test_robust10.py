"""Session 9's leftovers (robust10): one check of a stored profile's numbers,
bench/predict_compare.py's --data-home, DESCEND_PLAN's two forms taking the
same numbers, a DESCEND_CACHE_DIR of only whitespace."""
import pytest

from descend import plans
from test_breaker5 import bench_script
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
class _MnistRead(Exception):
    """What the test's load_mnist raises: the work began."""


@pytest.fixture
def predict_compare(monkeypatch):
    """The script, its load_mnist recording data_home and stopping there,
    torch a stand-in (the comparison is not run)."""
    import sys
    import types
    script = bench_script("predict_compare.py")
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


# ------------------------------------------------------------ DESCEND_PLAN
NEGATIVE_ZERO = "a negative zero"
# (field, number as written, the value both forms give or a message both say)
SAME_IN_BOTH_FORMS = [
    ("sample_rows", "64", 64),
    ("kernel_rows", "1", 1),
    ("predict_gemm_min_rows", "2147483647", 2147483647),
    ("predict_sparse_density", "0", 0.0),
    ("predict_sparse_density", "0.0", 0.0),
    ("predict_sparse_density", "0e5", 0.0),
    ("predict_sparse_density", "0.3", 0.3),
    ("predict_sparse_density", "3E-1", 0.3),
    ("predict_sparse_density", "1", 1.0),
    ("predict_sparse_density", "5e-324", 5e-324),
    # a minus sign, on a zero too: JSON took -0.0 (0 <= -0.0), name=value refused it
    ("predict_sparse_density", "-0", NEGATIVE_ZERO),
    ("predict_sparse_density", "-0.0", NEGATIVE_ZERO),
    ("predict_sparse_density", "-0.000e-7", NEGATIVE_ZERO),
    ("sample_rows", "-0", NEGATIVE_ZERO),       # (JSON said 'got 0')
    ("kernel_rows", "-0", NEGATIVE_ZERO),
    ("predict_gemm_min_rows", "-0", NEGATIVE_ZERO),
    ("predict_sparse_density", "-0.5", "must be a number in [0, 1]"),
    ("sample_rows", "-3", "must be an int in [1, "),
    ("sample_rows", "0", "must be an int in [1, "),
    ("predict_gemm_min_rows", "2147483648", "must be an int in [1, 2147483647]"),
    ("predict_sparse_density", "1.5", "must be a number in [0, 1]"),
    ("predict_sparse_density", "1e-400", "underflows to 0"),
    ("predict_sparse_density", "1e400", "overflows to infinity"),
]


def _forced(monkeypatch, form, field, number):
    text = f"{field}={number}" if form == "name=value" else f'{{"{field}": {number}}}'
    monkeypatch.setenv("DESCEND_PLAN", text)
    return plans.forced_from_env()


@pytest.mark.parametrize("field, number, expected", SAME_IN_BOTH_FORMS)
def test_both_forms_of_descend_plan_take_the_same_numbers(monkeypatch, field, number,
                                                          expected):
    results = {}
    for form in ("name=value", "json"):
        try:
            results[form] = _forced(monkeypatch, form, field, number)
        except ValueError as error:
            results[form] = str(error)
    if isinstance(expected, str):
        for form, message in results.items():
            assert isinstance(message, str), (form, message)
            assert message.startswith(f"DESCEND_PLAN[{field!r}]") and expected in message
            assert number in message or number.lstrip("-") in message
        if expected == NEGATIVE_ZERO:       # word for word
            assert results["name=value"] == results["json"]
            assert repr(number) in results["json"]
    else:
        for form, forced in results.items():
            assert forced == {field: expected}, form
            assert type(forced[field]) is type(expected), form


@pytest.mark.parametrize("listed", ["[-0]", "[64, -0]", "[-0.0]"])
def test_a_negative_zero_in_json_kernel_rows_is_named(monkeypatch, listed):
    monkeypatch.setenv("DESCEND_PLAN", f'{{"kernel_rows": {listed}}}')
    with pytest.raises(ValueError, match=r"^DESCEND_PLAN\['kernel_rows'\] .*"
                                         + NEGATIVE_ZERO):
        plans.forced_from_env()


@pytest.mark.parametrize("field, number, value, without", [
    ("sample_rows", "00064", 64, "64"),
    ("predict_gemm_min_rows", "016", 16, "16"),
    ("predict_sparse_density", "00.5", 0.5, "0.5"),
    ("predict_sparse_density", "00", 0.0, "0")])
def test_leading_zeros_are_taken_in_name_value_and_named_in_json(monkeypatch, field, number,
                                                                 value, without):
    """JSON has no numbers with leading zeros, and json.loads said only
    "Expecting ',' delimiter: line 1 column 18 (char 17)"."""
    assert _forced(monkeypatch, "name=value", field, number) == {field: value}
    with pytest.raises(ValueError) as error:
        _forced(monkeypatch, "json", field, number)
    message = str(error.value)
    assert message.startswith("DESCEND_PLAN is not valid JSON: ")
    assert f"{number} for {field!r} has a leading zero" in message
    assert f"(write {without}; the name=value form takes {field}={number})" in message
    assert "delimiter" not in message


@pytest.mark.parametrize("text, says", [
    ('{"kernel_rows": [64, 064]}', "064 for 'kernel_rows' has a leading zero"),
    ('{"predict_sparse_density": -00.5}', "-00.5 for 'predict_sparse_density' has a leading "
                                          "zero, which JSON does not allow (write -0.5)"),
    ('{"sample_rows": 64, "kernel_rows": 8 9}', "Expecting ',' delimiter"),   # (not a zero)
    ('{"sample_rows": 10 5}', "Expecting ',' delimiter"),
    ('{"sample_rows": "0"5}', "Expecting ',' delimiter")])
def test_the_json_leading_zero_message_only_for_leading_zeros(monkeypatch, text, says):
    monkeypatch.setenv("DESCEND_PLAN", text)
    with pytest.raises(ValueError, match="^DESCEND_PLAN is not valid JSON") as error:
        plans.forced_from_env()
    assert says in str(error.value)
    assert ("leading zero" in str(error.value)) == ("leading zero" in says)
