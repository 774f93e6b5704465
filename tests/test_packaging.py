"""How descend is built and installed: the compiled-module check at import,
the build record, ``show_config`` / ``python -m descend info``, the
single-threaded warning of a build without OpenMP, and the installed
metadata. (Building the sdist and wheels and testing them in fresh
environments is .ci/dist-check's job: it takes minutes.)"""
import functools
import importlib
import json
import os
import subprocess
import sys
import warnings
from importlib import metadata
from pathlib import Path

import pytest

import descend
from descend import _config, _openmp
from descend.__main__ import main

COMPILED = ("_blas", "_dense", "_losses", "_openmp", "_optim", "_train")


# ---------------------------------------------------------------- check_build
def test_check_build_passes_on_this_build():
    _config.check_build()


def test_missing_compiled_module_is_named_not_a_circular_import(monkeypatch):
    info = dict(_config.build_info() or {}, extensions=["_openmp", "_no_such_kernel"])
    monkeypatch.setattr(_config, "build_info", lambda: info)
    with pytest.raises(ImportError, match=r"^descend was not built correctly: its compiled "
                                          r"module descend\._no_such_kernel is missing") as error:
        _config.check_build()
    assert "pip install" in str(error.value) and "build_ext --inplace" in str(error.value)


def test_module_that_fails_to_load_reports_the_loader_message(monkeypatch):
    real_import = importlib.import_module

    def import_module(name, *args):
        if name == "descend._dense":
            raise ImportError("libgomp.so.1: cannot open shared object file")
        return real_import(name, *args)

    monkeypatch.setattr(_config.importlib, "import_module", import_module)
    monkeypatch.setattr(_config, "build_info", lambda: {"extensions": ["_openmp", "_dense"]})
    with pytest.raises(ImportError, match=r"descend\._dense does not load \(libgomp\.so\.1: "
                                          r"cannot open shared object file\)"):
        _config.check_build()


def test_without_a_build_record_the_openmp_module_is_checked(monkeypatch):
    monkeypatch.setattr(_config, "build_info", lambda: None)
    seen = []
    monkeypatch.setattr(_config.importlib, "import_module", seen.append)
    _config.check_build()
    assert seen == ["descend._openmp"]


# ---------------------------------------------------------------- the build record
build_record = _config.build_info()
needs_record = pytest.mark.skipif(build_record is None,
                                  reason="built before the build record existed: rebuild")


@needs_record
def test_build_record_matches_the_modules_that_load():
    assert set(COMPILED) <= set(build_record["extensions"])
    for name in build_record["extensions"]:
        assert importlib.import_module(f"descend.{name}").__file__.endswith(
            tuple(importlib.machinery.EXTENSION_SUFFIXES))
    assert build_record["openmp"] is descend.openmp_enabled()


@needs_record
def test_release_build_has_no_debug_info_flag():
    args = build_record["compile_args"]
    if not build_record["debug"] and build_record["compiler_type"] != "msvc":
        assert "-g0" in args and "-g" not in args
        assert "-O3" in args


# ---------------------------------------------------------------- show_config
def test_show_config_dicts_has_every_section():
    report = descend.show_config(mode="dicts")
    assert list(report)[:6] == ["descend", "build", "cpu", "threads", "dependencies",
                                "threadpools"]
    assert report["descend"]["version"] == descend.__version__
    assert report["build"]["openmp_enabled"] is descend.openmp_enabled()
    assert report["cpu"]["logical_cpus"] >= 1
    assert report["dependencies"]["numpy"] == metadata.version("numpy")
    assert report["threads"]["default_n_threads"] == descend.effective_n_threads()
    pools = report["threadpools"].values()
    assert all(pool["num_threads"] >= 1 for pool in pools)
    # BLAS is listed where threadpoolctl knows it (not Accelerate); the OpenMP
    # runtime the kernels link (libgomp, libomp, vcomp) always
    if descend.openmp_enabled():
        assert "openmp" in {pool["internal_api"] for pool in pools}


def test_cpu_features_are_the_ones_numpy_detects():
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:     # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_features__
    features = descend.show_config(mode="dicts")["cpu"]["features"].split()
    assert features == [f for f in _config.CPU_FEATURES if __cpu_features__.get(f)]


def test_simd_loops_reported_as_the_sparse_kernels_choose_them():
    from descend import _sparse
    widest = _sparse.ISA
    try:
        for isa in ("portable", "avx2", "avx512"):
            running = _sparse._use_isa(isa)
            assert descend.show_config(mode="dicts")["cpu"]["simd_loops"] == running
    finally:
        _sparse._use_isa(widest)
    assert descend.show_config(mode="dicts")["cpu"]["simd_loops"] == widest


def test_show_config_prints_and_rejects_a_bad_mode(capsys):
    assert descend.show_config() is None
    out = capsys.readouterr().out
    assert out.startswith("descend:\n  version: ")
    assert "openmp_enabled: " in out and "threadpools:" in out
    with pytest.raises(ValueError, match="mode must be 'stdout' or 'dicts', got 'yaml'"):
        descend.show_config(mode="yaml")


def test_a_registered_section_is_reported_and_its_failure_contained(monkeypatch):
    monkeypatch.setattr(_config, "_sections", dict(_config._sections))
    _config.register_section("last fit plan", lambda: {"threads": 2, "path": "fused"})
    _config.register_section("broken", lambda: 1 / 0)
    report = descend.show_config(mode="dicts")
    assert report["last fit plan"] == {"threads": 2, "path": "fused"}
    assert report["broken"] == {"error": "ZeroDivisionError: division by zero"}
    with pytest.raises(TypeError, match="provider must be callable, got 3"):
        _config.register_section("x", 3)
    with pytest.raises(TypeError, match="name must be a non-empty str, got ''"):
        _config.register_section("", dict)


# ---------------------------------------------------------------- command line
def test_cli_info_text_and_json(capsys):
    assert main(["info"]) == 0
    assert "compile_args" in capsys.readouterr().out or build_record is None
    assert main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["descend"]["version"] == descend.__version__
    assert report["build"]["openmp_enabled"] is descend.openmp_enabled()


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"descend {descend.__version__}\n"


def test_python_m_descend_version_and_help_name_the_command_as_typed(tmp_path):
    # the real command lines, in a child process from outside the source tree
    env = {**os.environ, "PYTHONPATH": str(Path(descend.__file__).parents[1])}
    run = functools.partial(subprocess.run, capture_output=True, text=True, timeout=120,
                            cwd=tmp_path, env=env)
    version = run([sys.executable, "-m", "descend", "--version"])
    assert (version.returncode, version.stdout) == (0, f"descend {descend.__version__}\n")
    python = os.path.basename(sys.executable)
    usage = run([sys.executable, "-m", "descend", "demo", "--help"]).stdout
    assert usage.startswith(f"usage: {python} -m descend demo [-h]")     # not __main__.py
    # the installed script's name (what argparse prints for `descend demo --help`)
    script = tmp_path / "descend"
    script.write_text("import sys\nfrom descend.__main__ import main\nsys.exit(main())\n")
    usage = run([sys.executable, str(script), "demo", "--help"]).stdout
    assert usage.startswith("usage: descend demo [-h]")


def test_cli_output_into_a_closed_pipe_ends_without_a_traceback(tmp_path):
    # `python -m descend demo | head -2`: the reader is gone before the output is written
    env = {**os.environ, "PYTHONPATH": str(Path(descend.__file__).parents[1])}
    child = subprocess.Popen([sys.executable, "-m", "descend", "demo", "--epochs", "2"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                             env=env)
    child.stdout.close()
    stderr = child.communicate(timeout=300)[1].decode()
    assert child.returncode == 141      # 128 + SIGPIPE, as a shell reports it
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


def _options(parser):
    """(command, option action) of every option of every subcommand."""
    import argparse
    commands = [action for action in parser._actions
                if isinstance(action, argparse._SubParsersAction)][0]
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if action.option_strings and action.help != argparse.SUPPRESS:
                yield name, action


def test_every_cli_option_has_help_that_states_its_default():
    from descend.__main__ import build_parser
    options = list(_options(build_parser("descend")))
    assert {name for name, _ in options} >= {"demo", "info", "bench", "experiments"}
    for name, action in options:
        if action.dest == "help":
            continue
        assert action.help, f"{name} {action.option_strings[0]} has no help text"
        assert "default" in action.help, f"{name} {action.option_strings[0]}: {action.help}"


def test_demo_help_gives_the_per_dataset_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"], prog="descend")
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: descend demo [-h]")
    assert "(default: 20 for digits, 6 for mnist, 40 for breast_cancer)" in text
    assert "(default: 32 for digits, 64 for mnist, 16 for breast_cancer)" in text
    assert "(default: float32)" in text and "(default: digits)" in text


def test_demo_header_prints_the_optimizer_and_its_schedule_readably(capsys):
    from descend.__main__ import _demo_config, _describe
    assert main(["demo", "--epochs", "1", "--n-threads", "1"]) == 0
    header = capsys.readouterr().out.splitlines()[:3]
    assert header[2] == "  SGD(learning_rate=0.1, momentum=0.9), epochs=1, batch_size=32"
    # MNIST's decayed rate: the schedule as a call, not its config dict
    assert _describe(_demo_config("mnist")[3]()) == (
        "Adam(learning_rate=ExponentialDecay(initial_learning_rate=0.001, decay_rate=0.7))")
    optimizer = descend.optimizers.SGD(descend.schedules.StepDecay(0.1, step_size=3),
                                       momentum=0.5, clipnorm=1.0)
    assert _describe(optimizer) == ("SGD(learning_rate=StepDecay(initial_learning_rate=0.1, "
                                    "step_size=3), clipnorm=1.0, momentum=0.5)")
    assert repr(optimizer).startswith("SGD(learning_rate=StepDecay(initial_learning_rate=0.1, "
                                      "drop=0.5, step_size=3), weight_decay=0.0")


def test_demo_without_network_names_the_option_and_leaves_no_directory(monkeypatch, tmp_path,
                                                                       capsys):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.delenv("DESCEND_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["demo", "--dataset", "mnist"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("descend demo: could not download MNIST file")
    assert str(tmp_path / ".cache" / "descend" / "mnist") in err
    assert "point --data-home or the DESCEND_DATA environment variable" in err
    assert "data_home" not in err
    assert list(tmp_path.iterdir()) == []           # no empty ~/.cache/descend/mnist


# ---------------------------------------------------------------- without OpenMP
def test_single_threaded_build_warns_once_at_the_first_multithreaded_request(monkeypatch):
    monkeypatch.setattr(_openmp, "_warned_without_openmp", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _openmp._warn_once_without_openmp(1)        # one thread asked: nothing to say
        assert caught == []
        _openmp._warn_once_without_openmp(4)
        _openmp._warn_once_without_openmp(8)        # once per process
    assert len(caught) == 1 and caught[0].category is RuntimeWarning
    assert "built without OpenMP, so it trains on 1 thread instead of the 4 asked for" \
        in str(caught[0].message)


def test_openmp_enabled_is_a_bool_and_bounds_the_thread_count():
    assert isinstance(descend.openmp_enabled(), bool)
    if not descend.openmp_enabled():
        assert descend.effective_n_threads(1) == 1


# ---------------------------------------------------------------- installed metadata
def _installed():
    try:
        return metadata.metadata("descend")
    except metadata.PackageNotFoundError:
        return None


@pytest.mark.skipif(_installed() is None, reason="descend is not installed (source tree run)")
def test_installed_metadata_requires_threadpoolctl_and_declares_the_licence():
    meta = _installed()
    required = [r for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    assert {r.split(">")[0].split("=")[0].strip() for r in required} >= {
        "numpy", "scipy", "threadpoolctl"}
    # setuptools < 77 (an older development install) writes License: instead
    if meta["License-Expression"] is not None:
        assert meta["License-Expression"] == "BSD-3-Clause"
