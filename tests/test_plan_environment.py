"""The machine profile's cache directory and the DESCEND_PLAN text, as a
user sets them: an unwritable cache (one warning, the profile kept in
memory), DESCEND_CACHE_DIR with ~ or a relative path, and the spellings of
numbers DESCEND_PLAN accepts."""
import os
import warnings

import pytest

from descend import plans
from test_plans import profile_dir  # noqa: F401 - a fixture


# ------------------------------------------------------------ an unwritable cache
@pytest.fixture
def unwritable_cache(profile_dir, monkeypatch):
    """profile_dir's counted measurement, the cache below a regular file (no
    directory can be made there, even by root), no warning given yet."""
    directory, calls = profile_dir
    blocker = directory / "a-file"
    blocker.write_text("not a directory")
    cache = blocker / "descend"
    monkeypatch.setenv("DESCEND_CACHE_DIR", str(cache))
    monkeypatch.setattr(plans, "_warned_dirs", set(), raising=False)
    return cache, calls


def test_an_unwritable_cache_warns_once_naming_it_and_keeps_the_profile(unwritable_cache):
    cache, calls = unwritable_cache
    with pytest.warns(plans.ProfileCacheWarning) as record:
        first = plans.machine_profile()
    assert len(record) == 1 and issubclass(record[0].category, RuntimeWarning)
    message = str(record[0].message)
    assert str(cache) in message                    # where
    assert "Not a directory" in message             # the OS error
    assert "DESCEND_CACHE_DIR" in message           # how to fix it
    assert first["path"] is None and len(calls) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # the rest of the process: the profile from memory, no new warning,
        # not even when it is measured again (refresh)
        assert plans.machine_profile() is first
        plans.machine_profile(refresh=True)
    assert len(calls) == 2


def test_the_warning_comes_once_per_process_and_directory(unwritable_cache, monkeypatch,
                                                          tmp_path):
    cache, calls = unwritable_cache
    with pytest.warns(plans.ProfileCacheWarning):
        plans.machine_profile()
    other = tmp_path / "a-file" / "other"
    monkeypatch.setenv("DESCEND_CACHE_DIR", str(other))
    with pytest.warns(plans.ProfileCacheWarning, match="other"):
        plans.machine_profile()
    # a writable directory again: stored, silently
    monkeypatch.setenv("DESCEND_CACHE_DIR", str(tmp_path / "fine"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plans.machine_profile()["path"].startswith(str(tmp_path / "fine"))
    assert len(calls) == 3


def test_the_warning_is_public(unwritable_cache):
    import descend as dn
    assert dn.ProfileCacheWarning is plans.ProfileCacheWarning
    assert "ProfileCacheWarning" in dn.__all__


# ------------------------------------------------------------ DESCEND_CACHE_DIR
@pytest.fixture
def home(tmp_path, monkeypatch):
    """HOME (and USERPROFILE, read on Windows) in a temporary directory, XDG
    and the user's own DESCEND_CACHE_DIR unset (a user who set it, as the
    README allows, runs these tests too)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("USERPROFILE", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("DESCEND_CACHE_DIR", raising=False)
    return tmp_path / "home"


def default_cache(home):
    if os.name == "nt":
        return plans.cache_dir()        # (LOCALAPPDATA)
    return os.path.join(home, "Library/Caches/descend" if os.uname().sysname == "Darwin"
                        else ".cache/descend")


def test_a_tilde_in_descend_cache_dir_is_the_home_directory(home, monkeypatch, profile_dir):
    monkeypatch.setenv("DESCEND_CACHE_DIR", "~/profiles")
    assert plans.cache_dir() == os.path.join(home, "profiles")
    path = plans.machine_profile()["path"]
    assert path.startswith(os.path.join(home, "profiles") + os.sep) and os.path.isfile(path)


def test_an_empty_descend_cache_dir_means_unset(home, monkeypatch):
    monkeypatch.setenv("DESCEND_CACHE_DIR", "")
    assert plans.cache_dir() == default_cache(home)


def test_a_relative_descend_cache_dir_is_taken_from_the_current_directory(
        home, monkeypatch, tmp_path):
    monkeypatch.setattr(plans, "_relative_cache_dirs", {})     # (first needed here)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DESCEND_CACHE_DIR", "profiles")
    assert plans.cache_dir() == os.path.join(tmp_path, "profiles")     # absolute


@pytest.mark.skipif(os.name == "nt" or os.uname().sysname == "Darwin",
                    reason="XDG_CACHE_HOME is read on Linux and other Unix only")
def test_a_relative_xdg_cache_home_is_ignored_as_the_xdg_spec_says(home, monkeypatch,
                                                                    tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert plans.cache_dir() == os.path.join(tmp_path, "xdg", "descend")
    monkeypatch.setenv("XDG_CACHE_HOME", "xdg")
    assert plans.cache_dir() == default_cache(home)


# ------------------------------------------------------------ numbers in DESCEND_PLAN
@pytest.mark.parametrize("text, expected", [
    ("sample_rows=64", {"sample_rows": 64}),
    ("sample_rows=064", {"sample_rows": 64}),
    ("kernel_rows=8, predict_gemm_min_rows=2147483647",
     {"kernel_rows": 8, "predict_gemm_min_rows": 2147483647}),
    ("predict_sparse_density=0.3", {"predict_sparse_density": 0.3}),
    ("predict_sparse_density=.25", {"predict_sparse_density": 0.25}),
    ("predict_sparse_density=3E-1", {"predict_sparse_density": 0.3}),
    ("predict_sparse_density=1", {"predict_sparse_density": 1.0}),
    ("predict_sparse_density=0", {"predict_sparse_density": 0.0}),
    ("predict_sparse_density=0.0e-400", {"predict_sparse_density": 0.0}),  # zero, written so
    ("predict_sparse_density=1e-300", {"predict_sparse_density": 1e-300}),
])
def test_descend_plan_takes_plain_decimal_numbers(monkeypatch, text, expected):
    monkeypatch.setenv("DESCEND_PLAN", text)
    forced = plans.forced_from_env()
    assert forced == expected
    assert all(type(v) is type(expected[k]) for k, v in forced.items())


INT_TEXT = r"an int in \[1, \d+\] written in ASCII digits \(such as 64\), got "
DENSITY = (r"\['predict_sparse_density'\] must be a number in \[0, 1\] written in ASCII "
           r"digits \(such as 0.3 or 3e-1\), got ")


@pytest.mark.parametrize("text, message", [
    # Python's int() takes these; a plan field does not
    ("sample_rows=1_000", r"\['sample_rows'\] must be " + INT_TEXT + "'1_000'"),
    ("sample_rows=+16", r"\['sample_rows'\] must be " + INT_TEXT + r"'\+16'"),
    ("kernel_rows=\u0661\u0666", r"\['kernel_rows'\] must be " + INT_TEXT + "'\u0661\u0666'"),
    ("predict_gemm_min_rows=\uff11\uff16", r"\['predict_gemm_min_rows'\] must be "
     + INT_TEXT + "'\uff11\uff16'"),
    ("sample_rows=16.0", r"\['sample_rows'\] must be " + INT_TEXT + "'16.0'"),
    ("sample_rows=1e2", r"\['sample_rows'\] must be " + INT_TEXT + "'1e2'"),
    ("sample_rows=0x10", r"\['sample_rows'\] must be " + INT_TEXT + "'0x10'"),
    ("sample_rows=-3", r"\['sample_rows'\] must be " + INT_TEXT + "'-3'"),
    ("sample_rows=" + "9" * 5000, r"\['sample_rows'\] must be an int in \[1, \d+\]"),
    # and float() takes these
    ("predict_sparse_density=0.3_0", DENSITY + "'0.3_0'"),
    ("predict_sparse_density=+0.3", DENSITY + r"'\+0.3'"),
    ("predict_sparse_density=\u0660.\u0663", DENSITY + "'\u0660.\u0663'"),
    ("predict_sparse_density=nan", DENSITY + "'nan'"),
    ("predict_sparse_density=inf", DENSITY + "'inf'"),
    ("predict_sparse_density=0x1p-2", DENSITY + "'0x1p-2'"),
    ("predict_sparse_density=1e-400",
     r"\['predict_sparse_density'\]: '1e-400' underflows to 0"),
    ("predict_sparse_density=1e400",
     r"\['predict_sparse_density'\]: '1e400' overflows to infinity"),
])
def test_descend_plan_refuses_other_spellings_naming_the_field_and_the_text(
        monkeypatch, text, message):
    monkeypatch.setenv("DESCEND_PLAN", text)
    with pytest.raises(ValueError, match="^DESCEND_PLAN" + message):
        plans.forced_from_env()


@pytest.mark.parametrize("text, message", [
    ('{"predict_sparse_density": 1e-400}',
     r"\['predict_sparse_density'\]: '1e-400' underflows to 0"),
    ('{"predict_sparse_density": 5e-324}', None),           # the least subnormal: not 0
    ('{"predict_sparse_density": 1E+400}',
     r"\['predict_sparse_density'\]: '1E\+400' overflows to infinity"),
    ('{"predict_sparse_density": NaN}', r"\['predict_sparse_density'\] must be a number"),
    # JSON's true is not 1, nor 1 true
    ('{"sample_rows": true}', r"\['sample_rows'\] must be an int"),
    ('{"predict_gemm_min_rows": true}', r"\['predict_gemm_min_rows'\] must be an int"),
    ('{"predict_sparse_density": false}', r"\['predict_sparse_density'\] must be a number"),
    ('{"sparse_input": 1}', r"\['sparse_input'\] must be a bool"),
    ('{"by_columns": 0}', r"\['by_columns'\] must be a bool"),
    ('{"kernel_rows": [true, 2]}', r"\['kernel_rows'\] must be an int"),
    ('{"sample_rows": 16.0}', r"\['sample_rows'\] must be an int"),
])
def test_descend_plan_json_numbers_go_through_the_same_checks(monkeypatch, text, message):
    monkeypatch.setenv("DESCEND_PLAN", text)
    if message is None:
        assert plans.forced_from_env() == {"predict_sparse_density": 5e-324}
        return
    with pytest.raises(ValueError, match="^DESCEND_PLAN" + message):
        plans.forced_from_env()
