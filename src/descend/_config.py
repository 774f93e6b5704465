"""What descend was built with and what it runs on.

``dn.show_config()`` and ``python -m descend info`` print it; bug reports
should paste it. The report is a list of named sections, each a function
returning a dict, so that other parts of descend can add their own::

    from descend._config import register_section
    register_section("last fit plan", lambda: {"path": ..., "threads": ...})

``check_build()`` runs at ``import descend``: it turns a missing or broken
compiled module into one clear ImportError instead of the circular-import
error Python would give.
"""
import importlib
import importlib.util
import json
import os
import platform
import sys

BUILD_INFO_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                               "_build_info.json")

# CPU features worth knowing for descend's kernels, in the order printed
# (numpy's names; those the CPU lacks are left out)
CPU_FEATURES = ("SSE42", "AVX", "F16C", "FMA3", "AVX2", "AVX512F", "AVX512CD",
                "AVX512BW", "AVX512DQ", "AVX512VL", "AVX512VNNI", "AVX512_SPR",
                "NEON", "ASIMD", "ASIMDHP", "ASIMDDP", "SVE", "VSX")

_sections = {}


def register_section(name, provider, data=None):
    """Add (or replace) a section of ``show_config``.

    Parameters
    ----------
    name : str
        Heading of the section.
    provider : callable
        Called with no arguments each time the report is made; returns a
        dict (str -> str, number, bool, list or dict). An exception it
        raises is reported inside its section instead of stopping the report.
    data : callable, optional
        The section for programs (``show_config(mode="dicts")``, ``python -m
        descend info --json``), where `provider` writes figures as text for
        people: numbers, units in the key names. Default: `provider`'s dict.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty str, got {name!r}")
    for argument, value in (("provider", provider), ("data", data)):
        if not callable(value) and not (argument == "data" and value is None):
            raise TypeError(f"{argument} must be callable, got {value!r}")
    _sections[name] = (provider, data or provider)


def build_info():
    """The build's record (``descend/_build_info.json``) as a dict, or None.

    Keys: extensions (compiled module names), openmp (bool), compiler,
    compiler_type, compile_args, link_args, debug, cython, numpy (the
    version built against), python, platform.
    """
    try:
        with open(BUILD_INFO_FILE) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _not_built_message(module, error):
    where = os.path.dirname(BUILD_INFO_FILE)
    if importlib.util.find_spec(module) is None:
        problem = f"its compiled module {module} is missing from {where}"
    else:
        problem = f"its compiled module {module} does not load ({error})"
    return (f"descend was not built correctly: {problem}. This happens when descend was "
            f"installed from source without compiling its Cython kernels, or imported "
            f"from a source checkout that was not built. Install a binary wheel "
            f"(pip install --only-binary descend descend), build from source with a C "
            f"compiler (pip install --no-binary descend descend; see the README's "
            f"'Building from source'), or, in a checkout, run "
            f"`python setup.py build_ext --inplace`.")


def check_build():
    """Import every compiled module of descend; raise a clear ImportError if one fails.

    Raises
    ------
    ImportError
        "descend was not built correctly: ..." naming the module, and whether
        it is missing or fails to load (with the loader's message).
    """
    info = build_info()
    # without a build record (an older in-place build) check the one module
    # every build has
    names = info["extensions"] if info and info.get("extensions") else ["_openmp"]
    for name in names:
        module = f"descend.{name}"
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ImportError(_not_built_message(module, error)) from error


# ---------------------------------------------------------------- sections
def _descend_section():
    import descend
    return {"version": descend.__version__,
            "path": os.path.dirname(os.path.abspath(descend.__file__))}


def _build_section():
    from descend._openmp import openmp_enabled
    info = build_info()
    if info is None:
        return {"openmp_enabled": openmp_enabled(),
                "record": f"none ({BUILD_INFO_FILE} is missing: rebuild to record it)"}
    return {"openmp_enabled": openmp_enabled(),
            "compiler": info.get("compiler"),
            "compiler_type": info.get("compiler_type"),
            "compile_args": " ".join(info.get("compile_args", [])),
            "link_args": " ".join(info.get("link_args", [])),
            "debug": info.get("debug"),
            "cython": info.get("cython"),
            "numpy_built_against": info.get("numpy"),
            "python_built_for": info.get("python"),
            "platform": info.get("platform"),
            "extensions": " ".join(info.get("extensions", []))}


def _proc_cpuinfo():
    """The first processor's fields in /proc/cpuinfo ({} off Linux)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def _cpu_model():
    """The CPU's marketing name (with x86 family/model numbers on Linux), or
    platform.processor() where it cannot be read."""
    if sys.platform.startswith("linux"):
        fields = _proc_cpuinfo()
        for key in ("model name", "Model", "cpu model", "Hardware"):
            if key in fields:
                if "cpu family" in fields and "model" in fields:
                    return (f"{fields[key]} (family {fields['cpu family']}, "
                            f"model {fields['model']})")
                return fields[key]
    elif sys.platform == "darwin":
        import subprocess
        try:
            name = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                  capture_output=True, text=True, timeout=10).stdout.strip()
            if name:
                return name
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or "unknown"


def _cpu_features():
    """Features the CPU has, as numpy detected them at run time (any OS);
    /proc/cpuinfo's flags where numpy's table cannot be read."""
    try:
        try:
            from numpy._core._multiarray_umath import __cpu_features__ as detected
        except ImportError:     # numpy 1.x
            from numpy.core._multiarray_umath import __cpu_features__ as detected
        return [name for name in CPU_FEATURES if detected.get(name)]
    except ImportError:
        pass
    fields = _proc_cpuinfo()
    flags = set((fields.get("flags") or fields.get("Features") or "").upper().split())
    if not flags:
        return ["unknown"]
    aliases = {"SSE42": "SSE4_2", "FMA3": "FMA", "AVX512VNNI": "AVX512_VNNI"}
    return [name for name in CPU_FEATURES if name in flags or aliases.get(name) in flags]


def _simd_loops():
    """Which row loops of the sparse first layer run, as the kernels chose
    them at import from the CPU's features: AVX-512, AVX2+FMA or portable C."""
    return getattr(importlib.import_module("descend._sparse"), "ISA", None)


def _cpu_section():
    from descend._openmp import _usable_cpus
    features = _cpu_features()
    section = {"model": _cpu_model(), "architecture": platform.machine(),
               "logical_cpus": os.cpu_count(), "usable_cpus": _usable_cpus(),
               "features": " ".join(features)}
    simd = _simd_loops()
    if simd is not None:
        section["simd_loops"] = simd
    return section


def _threads_section():
    from descend._openmp import effective_n_threads, openmp_enabled
    names = ("OMP_NUM_THREADS", "OMP_THREAD_LIMIT", "OMP_DYNAMIC", "OPENBLAS_NUM_THREADS",
             "MKL_NUM_THREADS", "OPENBLAS_CORETYPE")
    # effective_n_threads warns in a build without OpenMP: not for a report
    section = {"default_n_threads": effective_n_threads() if openmp_enabled() else 1}
    section.update({name: os.environ[name] for name in names if name in os.environ})
    return section


def _dependencies_section():
    from importlib.metadata import PackageNotFoundError, version
    section = {"python": f"{platform.python_version()} ({sys.executable})",
               "platform": platform.platform()}
    for name in ("numpy", "scipy", "threadpoolctl", "tqdm", "matplotlib", "scikit-learn",
                 "tensorboardX", "mpi4py", "mpich"):
        try:
            section[name] = version(name)
        except PackageNotFoundError:
            section[name] = "not installed"
    return section


def _threadpools_section():
    """threadpoolctl's view: each BLAS/OpenMP library loaded and its threads."""
    from threadpoolctl import threadpool_info
    keys = ("internal_api", "version", "num_threads", "threading_layer", "architecture",
            "filepath")
    return {f"{pool['user_api']} {i}": {k: pool[k] for k in keys if pool.get(k) is not None}
            for i, pool in enumerate(threadpool_info(), 1)}


register_section("descend", _descend_section)
register_section("build", _build_section)
register_section("cpu", _cpu_section)
register_section("threads", _threads_section)
register_section("dependencies", _dependencies_section)
register_section("threadpools", _threadpools_section)


def config_info(data=False):
    """Every section of the report: {section name: dict}, in print order;
    with `data`, each section as data (numbers, see register_section)."""
    report = {}
    for name, providers in _sections.items():
        try:
            report[name] = providers[data]()
        except Exception as error:      # a report must not fail on one section
            report[name] = {"error": f"{type(error).__name__}: {error}"}
    return report


def format_config(report):
    """The report as indented text, one ``key: value`` a line."""
    lines = []

    def emit(mapping, indent):
        for key, value in mapping.items():
            if isinstance(value, dict):
                lines.append(f"{' ' * indent}{key}:")
                emit(value, indent + 2)
            else:
                lines.append(f"{' ' * indent}{key}: {value}")

    for name, section in report.items():
        lines.append(f"{name}:")
        emit(section, 2)
    return "\n".join(lines)


def show_config(mode="stdout"):
    """Print (or return) how descend was built and what it runs on.

    Sections: descend (version, path), build (compiler, flags, whether
    OpenMP is enabled), cpu (model, features such as AVX2/AVX-512, usable
    cores), threads (default thread count, OMP_*/BLAS variables set),
    dependencies (numpy, scipy, threadpoolctl, extras), threadpools
    (threadpoolctl's view of the BLAS and OpenMP libraries loaded and their
    threads), and any section registered with ``register_section``.

    Parameters
    ----------
    mode : {"stdout", "dicts"}
        "stdout" prints the report; "dicts" returns it as
        {section: {key: value}} instead (as ``numpy.show_config``), with
        figures as numbers (the "plans" and "predict" sections' keys:
        ``descend.plans.plans_data``, ``descend._inference.predict_data``),
        what ``python -m descend info --json`` prints.

    Returns
    -------
    dict or None
        The report for ``mode="dicts"``, else None.

    Raises
    ------
    ValueError
        `mode` is neither "stdout" nor "dicts".
    """
    if mode not in ("stdout", "dicts"):
        raise ValueError(f"mode must be 'stdout' or 'dicts', got {mode!r}")
    if mode == "dicts":
        return config_info(data=True)
    print(format_config(config_info()))
    return None
