"""Session 9's robustness items attacked with bad input and a hostile
environment: the machine profile's cache, DESCEND_CACHE_DIR, plan_ sources,
info --json (breaker2)."""
import os
import threading
import time
import warnings

import pytest

from descend import plans
from test_plans import profile_dir  # noqa: F401 - a fixture


# ------------------------------------------------ threads and the first profile
def test_threads_needing_the_profile_at_once_measure_it_once(profile_dir, monkeypatch):
    """Many threads predicting while the profile is first measured: one
    measurement, which the others wait for (each measured it before, timing
    BLAS on cores the other measurements loaded, and took that many times longer)."""
    directory, calls = profile_dir
    measure = plans.measure_profile

    def slow_measure():
        time.sleep(0.2)         # (a real measurement takes about a second)
        return measure()
    monkeypatch.setattr(plans, "measure_profile", slow_measure)
    start = threading.Barrier(6)
    profiles = []

    def need_profile():
        start.wait()
        profiles.append(plans.machine_profile())
    threads = [threading.Thread(target=need_profile) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len(profiles) == 6 and all(p is profiles[0] for p in profiles)
    assert profiles[0]["path"].startswith(str(directory))


def test_a_child_forked_while_the_profile_is_measured_measures_its_own(
        profile_dir, monkeypatch):
    """The lock that makes threads wait for one measurement must not stay
    held in a child forked during it (the child would hang)."""
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this OS")
    measuring, forked = threading.Event(), threading.Event()
    measure = plans.measure_profile

    def blocking_measure():
        measuring.set()
        forked.wait(10)
        return measure()
    monkeypatch.setattr(plans, "measure_profile", blocking_measure)
    thread = threading.Thread(target=plans.machine_profile)
    thread.start()
    assert measuring.wait(10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)     # (fork with threads)
        pid = os.fork()
    if pid == 0:        # the child: its own measurement, at once
        code = 1
        try:
            monkeypatch.setattr(plans, "measure_profile", measure)
            code = 0 if plans.machine_profile() is not None else 1
        finally:
            os._exit(code)
    forked.set()
    thread.join()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung on the profile's lock")
    assert os.waitstatus_to_exitcode(status) == 0


# ------------------------------------------------------------ DESCEND_CACHE_DIR
def test_a_tilde_of_an_unknown_user_is_refused_naming_descend_cache_dir(
        monkeypatch, tmp_path):
    """~nosuchuser/cache: expanduser leaves it as it is, and abspath made it a
    directory named '~nosuchuser' in the current directory, silently."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DESCEND_CACHE_DIR", "~descend_no_such_user_b2/cache")
    with pytest.raises(ValueError, match="DESCEND_CACHE_DIR") as error:
        plans.cache_dir()
    assert "~descend_no_such_user_b2/cache" in str(error.value)
    assert "user" in str(error.value)
    assert os.listdir(tmp_path) == []


def test_a_tilde_of_an_unknown_user_is_refused_before_anything_is_measured(
        profile_dir, monkeypatch, tmp_path):
    directory, calls = profile_dir
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DESCEND_CACHE_DIR", "~descend_no_such_user_b2")
    with pytest.raises(ValueError, match="DESCEND_CACHE_DIR"):
        plans.machine_profile()
    assert calls == [] and os.listdir(tmp_path) == []
    # info reports it in its section instead of failing
    assert "DESCEND_CACHE_DIR" in plans.plans_data()["error"]


def test_a_tilde_of_a_known_user_is_that_users_home(monkeypatch):
    import pwd
    try:
        user = pwd.getpwuid(os.getuid())
    except KeyError:
        pytest.skip("this uid has no passwd entry")
    monkeypatch.setenv("DESCEND_CACHE_DIR", f"~{user.pw_name}/cache")
    assert plans.cache_dir() == os.path.join(user.pw_dir, "cache")


# ------------------------------------------------------ a hand-edited profile file
@pytest.mark.parametrize("field, value", [
    ("l2_cache_bytes", "2MB"),      # TypeError ('<=' int and str) from every large fit
    ("l2_cache_bytes", [1]),
    ("l2_cache_bytes", True),       # taken as a 1-byte cache
    ("l2_cache_bytes", -5),
    ("l2_cache_bytes", 1.5),
    ("seconds", "x"),               # info --json's measured_seconds: no number
    ("seconds", float("nan")),
    ("seconds", None),              # missing: KeyError in info's plans section
    ("load_average", "high"),
    ("load_average", -1.0)])
def test_a_stored_profile_with_bad_records_is_measured_again(profile_dir, monkeypatch,
                                                             field, value):
    """The records beside the figures that a fit or info reads: the L2 cache
    size (fit's by_columns rule), the measurement's seconds and load average
    (info --json, promised as numbers)."""
    import json

    import numpy as np

    import descend as dn
    directory, calls = profile_dir
    path = plans.machine_profile()["path"]
    with open(path) as f:
        stored = json.load(f)
    stored["l2_cache_bytes"], stored["load_average"] = 2 << 20, 0.5     # (measured ones)
    with open(path, "w") as f:
        json.dump(stored, f)
    monkeypatch.setattr(plans, "_loaded", {})
    assert plans.machine_profile()["l2_cache_bytes"] == 2 << 20 and len(calls) == 1
    if value is None:
        del stored[field]
    else:
        stored[field] = value
    with open(path, "w") as f:
        json.dump(stored, f)
    monkeypatch.setattr(plans, "_loaded", {})      # a new process: read from the file
    rng = np.random.default_rng(0)
    net = dn.Sequential([dn.Dense(600, activation="relu"), dn.Dense(3)], seed=0,
                        n_threads=2)
    net.compile("softmax_cross_entropy", "sgd")
    net.fit(rng.normal(size=(64, 600)), rng.integers(0, 3, 64), epochs=1, batch_size=64,
            verbose=0)
    assert len(calls) == 2
    data = plans.plans_data()
    assert "error" not in data
    assert isinstance(data["profile"]["measured_seconds"], float)


def test_a_relative_descend_cache_dir_stays_where_it_was_first_needed(
        profile_dir, monkeypatch, tmp_path):
    """'taken from the current directory when the profile is first needed':
    a process that changes directory afterwards (a server, a test runner)
    measured the profile again and made a second cache in the new directory."""
    directory, calls = profile_dir
    monkeypatch.setattr(plans, "_relative_cache_dirs", {}, raising=False)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.setenv("DESCEND_CACHE_DIR", "profiles")
    monkeypatch.chdir(first)
    path = plans.machine_profile()["path"]
    assert path.startswith(str(first / "profiles") + os.sep)
    monkeypatch.chdir(second)
    assert plans.cache_dir() == str(first / "profiles")
    assert plans.machine_profile()["path"] == path
    assert len(calls) == 1 and os.listdir(second) == []
    # another value is another directory, taken from the current one
    monkeypatch.setenv("DESCEND_CACHE_DIR", "other")
    assert plans.cache_dir() == str(second / "other")


# ------------------------------------------------------------ bench/shapes.py
def bench_script(file_name):
    """bench/`file_name` loaded as a module (skips outside the source checkout)."""
    import importlib.util
    path = os.path.join(os.path.dirname(__file__), os.pardir, "bench", file_name)
    if not os.path.isfile(path):        # the tests of an installed wheel run outside the checkout
        pytest.skip(f"bench/{file_name} is in the source checkout only")
    spec = importlib.util.spec_from_file_location("bench_" + file_name[:-len(".py")], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shapes_script():
    return bench_script("shapes.py")


@pytest.mark.parametrize("argv, named", [
    (["--repeats", "0"], "--repeats"),           # StatisticsError / ZeroDivisionError at the end
    (["--rows", "-5"], "--rows"),
    (["--inputs", "mnist,images"], "--inputs"),  # KeyError 'images' after loading MNIST
    (["--optimizers", "sgd,rmsprop"], "--optimizers"),  # a PyTorch Adam timed as 'rmsprop'
    (["--widths", "256,"], "--widths"),          # ValueError from int('') mid-sweep
    (["--depths", "0"], "--depths"),
    (["--batch-sizes", "32,abc"], "--batch-sizes")])
def test_bench_shapes_refuses_bad_arguments_before_any_work(argv, named, capsys, monkeypatch):
    shapes = _shapes_script()
    monkeypatch.setattr(shapes, "run", lambda cell: pytest.fail("a cell ran"))
    with pytest.raises(SystemExit) as stop:
        shapes.main(argv + ["--data-home", "/nonexistent-descend-b2"])
    assert stop.value.code == 2
    assert named in capsys.readouterr().err


def test_the_cache_warning_quotes_a_directory_with_a_newline(profile_dir, monkeypatch,
                                                            tmp_path):
    """A directory named with a newline (or trailing spaces) printed as is
    made the warning a two-line message, the name unreadable in it."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cache = str(blocker / "line one\nline two ")
    monkeypatch.setenv("DESCEND_CACHE_DIR", cache)
    monkeypatch.setattr(plans, "_warned_dirs", set())
    with pytest.warns(plans.ProfileCacheWarning) as record:
        plans.machine_profile()
    message = str(record[0].message)
    assert repr(cache) in message and "\n" not in message


def test_the_cache_warning_says_the_directory_is_a_dangling_link(profile_dir, monkeypatch,
                                                                tmp_path):
    """A cache directory that is a symbolic link to nothing: the OS says
    'File exists' (makedirs), where `ls` says 'No such file'."""
    link = tmp_path / "cache-link"
    link.symlink_to(tmp_path / "gone")
    monkeypatch.setenv("DESCEND_CACHE_DIR", str(link))
    monkeypatch.setattr(plans, "_warned_dirs", set())
    with pytest.warns(plans.ProfileCacheWarning) as record:
        plans.machine_profile()
    message = str(record[0].message)
    assert "symbolic link" in message and str(tmp_path / "gone") in message
    assert not (tmp_path / "gone").exists()         # (not made behind the user's back)


def test_a_cache_warning_turned_into_an_error_keeps_the_measured_profile(
        profile_dir, monkeypatch, tmp_path):
    """Under -W error the warning stops the first call; the profile it had
    measured was dropped, and the next call measured again (silently)."""
    directory, calls = profile_dir
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("DESCEND_CACHE_DIR", str(blocker / "descend"))
    monkeypatch.setattr(plans, "_warned_dirs", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error", plans.ProfileCacheWarning)
        with pytest.raises(plans.ProfileCacheWarning):
            plans.machine_profile()
        profile = plans.machine_profile()
    assert profile["path"] is None and len(calls) == 1


# ------------------------------------------------------------ DESCEND_PLAN
@pytest.mark.parametrize("text", ['{"predict_gemm_min_rows": 1%s}', '{"sample_rows": -1%s}'])
def test_descend_plan_json_with_a_5000_digit_int_names_the_field(monkeypatch, text):
    """json.loads refused it as 'not valid JSON (Exceeds the limit (4300
    digits) ... use sys.set_int_max_str_digits())', advice for Python code,
    the whole 5000 digits echoed; the name=value form says 'got 5001 digits'."""
    monkeypatch.setenv("DESCEND_PLAN", text % ("0" * 5000))
    with pytest.raises(ValueError) as error:
        plans.forced_from_env()
    message = str(error.value)
    assert "DESCEND_PLAN[" in message and "digits" in message
    assert "set_int_max_str_digits" not in message and len(message) < 400


def test_the_cli_refuses_a_tilde_of_an_unknown_user_as_a_usage_error(monkeypatch, capsys):
    # was: a raw traceback from the command, the clear message at its bottom
    from descend.__main__ import main
    monkeypatch.setenv("DESCEND_CACHE_DIR", "~no_such_user_of_descend/cache")
    with pytest.raises(SystemExit) as exit_info:
        main(["demo"])
    assert exit_info.value.code == 2
    assert "error: DESCEND_CACHE_DIR must be a directory" in capsys.readouterr().err
