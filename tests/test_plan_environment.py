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
