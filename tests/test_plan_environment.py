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
    """HOME (and USERPROFILE, read on Windows) in a temporary directory, XDG unset."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("USERPROFILE", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
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
