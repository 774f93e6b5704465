"""Plans: how the compiled epoch cuts its work, chosen from measurements.

The fused epoch loop (``descend._train.EpochRunner``) has choices whose best
value depends on the CPU and its BLAS, not on the math: whether the first
layer skips the zero entries of its input (the sparse kernels of
``_sparse.pyx``), and how many rows of a batch go through one BLAS call in
phase A (``sample_rows``) and how many kernel rows in phase B
(``kernel_rows``). Constants tuned on one CPU lose on another: on an AMD
EPYC (AVX2) the sparse first layer wins up to 35% non-zero inputs and
4-row sample blocks are fastest for small batches; on an Intel Xeon with
AVX-512 one large sgemm runs at ~150 GFLOP/s a core, and 4-row blocks over
a 1024 x 1024 kernel stream 4 MB of weights per 4 samples (35 GFLOP/s).
How the sparse first layer compares depends on the batch size: timed as
one 512-row batch against one large GEMM, it broke even at 19% non-zero
inputs on that Xeon (MNIST's density: a knife edge), timed as the epoch
runs it (batch by batch, in the plan's blocks) at 20-24% for batch 1024
and ~30% for batches 16 and 128 (under load); so the profile measures it
at several batch sizes.

Wide kernels change the picture again: a 1024 x 1024 float32 kernel (4 MB)
does not fit a core's L2 cache, and phase A by samples makes every core
stream all of it for its own rows. ``by_columns`` then runs each layer over
the whole batch, every core on its own slice of the kernel's output columns
(the runner's ``team_by_columns`` strategy); it is chosen only where some
kernel is larger than a core's L2 cache (read from the OS, recorded in the
profile) and the profile's GEMM rates estimate it faster by the margin.

Phase B's blocks of kernel rows are cut one per core and layer by default;
a thin block (128 rows of a 256-wide layer on 2 cores) runs its X^T dZ
product slower than a whole layer (one thread, batch 1024, on the Xeon:
13% less CPU time a whole epoch of a 784-256x5-10 net with whole-layer
blocks), and whole layers balance over the cores once the runner deals
the blocks by cost (_deal_blocks in _train.pyx). The plan moves layers to
thicker blocks (whole, one per core, or a measured size) where the
profile's phase-B rates estimate it faster, searching by groups of layers
of one shape (one of five 256 x 256 layers made whole alone unbalances the
deal; four beside a first layer cut in two balance). Small batches split by
columns gain most: each block's product packs the batch's dZ for little
work (784-2048-2048-10, batch 32: blocks of 64 kernel rows cost 15% of an
epoch against one block per core).

So the plan follows from a *machine profile*: the throughput of the
candidate phase-A blockings (single-threaded GEMM of r rows against a
small and a large kernel), of the phase-B blockings (X^T dZ over r kernel
rows) and of the sparse first layer, measured once per
machine (under a second of CPU time), persisted in the user cache directory,
keyed by the CPU model and features and the versions of descend, numpy,
scipy and the BLAS. The plan for a workload is a deterministic function
of that profile and the workload's shapes, dtype, batch size, input
density and core count (never the number of threads, so the results stay
bit-identical for any ``n_threads``). Timing noise therefore enters only
once, when the profile is measured; it is reported by :func:`describe`
and can be refreshed with ``machine_profile(refresh=True)``.

A profile taken on a loaded machine must not pick a slower plan: its
timings are the thread's CPU time (not wall-clock time, which counts the
other tenants' time slices), interleaved round by round, and medians; and
it moves a choice off the defaults only where its estimate is faster by
``PLAN_MARGIN`` (15%). A stored profile is measured again when it is stale:
another CPU or library version (its key), another number of usable cores,
or older than ``PROFILE_MAX_AGE_DAYS``.

Environment:

``DESCEND_PROFILE=0``
    Do not measure (nor read) a profile: use the defaults (the constants
    measured on the AMD EPYC of the first speed issue). Off: 0, false, no,
    off; on (the default): unset, empty, 1, true, yes, on; any other value
    is a ValueError naming the variable.
``DESCEND_PLAN="sparse_input=0,sample_rows=64"``
    Force fields of the plan (comma-separated ``name=value``, each field
    at most once; also JSON): PLAN_FIELDS for fit, PREDICT_FIELDS
    (``predict_sparse_density``, ``predict_gemm_min_rows``) for predict's
    thresholds (descend._inference).
    Both forms take the same numbers: ASCII digits for the int fields, a
    decimal or exponent float within a float64 for the density, and no
    sign, on a zero neither (no field takes a negative value: ``-0`` and
    ``-0.0`` are refused as ``-1`` is, where Python's ``0 <= -0.0`` would
    let JSON's through); so is a float -0.0 given in Python (``plan=``,
    ``net.plan``, ``pin_plan``: check_plan). The name=value form also takes spellings JSON has
    no place for (``064``, ``.5``) as the same numbers; JSON refuses them
    as its grammar does, the message naming the number and the field.
    The keyword ``plan=`` of EpochRunner does the same per fit, and a
    network's ``plan`` (``pin_plan``) for its fits and predictions, over
    DESCEND_PLAN; ``plan_`` records both parts, and both are saved.
``DESCEND_CACHE_DIR``
    Where profiles are kept (default: the user cache directory; a leading ~
    is the home directory, a relative path is taken from the current
    directory when the profile is first needed, empty is unset, only
    whitespace a ValueError naming the variable). Where it
    cannot be written, a ProfileCacheWarning says so once per process and
    the profile is kept in memory (each new process measures it again).
"""
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import platform
import re
import stat
import statistics
import sys
import threading
import time
import warnings

import numpy as np

from descend._config import register_section
from descend._validation import MAX_THREADS, outside_stacklevel

# The stored profile's format, part of its key (a profile of another format
# is measured again, never misread): bumped when the fields (see
# machine_profile) or the way they are measured change. 7: phase-B rates
# (gemm_update); 8: the same fields, in settled rounds (2 to 5) on shared
# operands, the first-layer probe over fewer rows at the small batches; 9:
# the sparse probes on 64-byte aligned arrays, as fit and predict now
# allocate them (descend._aligned: the row loops ran 25-35% faster so); 10:
# phase-B rates at batch 32 too (the plan now searches phase-B blocks at
# batches up to 64 as well, when they run by columns).
PROFILE_FORMAT = 10

# A stored profile is measured again when it is older than this, or when the
# process may use another number of cores than when it was measured (the
# key already changes with the CPU and the library versions).
PROFILE_MAX_AGE_DAYS = 30
# Rounds of the profile's interleaved timings (medians are taken): at least
# PROFILE_MIN_ROUNDS, more (up to PROFILE_ROUNDS) for each run until its
# timings agree (two within PROFILE_SPREAD of each other, or three of the median).
PROFILE_ROUNDS = 5
PROFILE_MIN_ROUNDS = 2
PROFILE_SPREAD = 0.1
# The profile replaces a default choice only when its estimate is faster by
# this fraction: a profile measured with noise (under load, on shared
# cores) then moves off a default only where the difference is real.
PLAN_MARGIN = 0.15

# The defaults (no profile): measured on an AMD EPYC (AVX2, OpenBLAS with
# SkylakeX kernels), MNIST epoch 784-256-128-10, 2 threads. Sparse first
# layer when at most 35% of the inputs are non-zero (time sparse / dense at
# 10% .. 50% non-zero: 0.49, 0.69, 0.86, 0.98, 1.17); 4-row sample blocks
# below batch 128 (batches of 8, 32, 64: 0.78, 0.48, 0.51 s, against
# 0.73-0.88 s for 8-32 rows); one block per core from 128 up; kernel rows in
# blocks of 64 for batches up to 64 (X^T dZ stays in L1/L2), one block per
# core above (256 rows ~95 GFLOP/s against 64 rows ~80).
DEFAULT_SPARSE_DENSITY = 0.35
DEFAULT_SAMPLE_ROWS = 4
SMALL_BATCH_KERNEL_ROWS = 64

# Phase-A block sizes the profile measures, and the kernels it measures them
# on (a small one that stays in L2 and a large one that does not).
PROFILE_ROWS = (4, 16, 64, 256)
PROFILE_WIDTHS = (256, 1024)

# Phase-B blocks the profile measures (kernel rows of X^T dZ, summed over a
# batch of each UPDATE_PROBE_BATCHES size into an update of the kernel),
# against the same two kernel widths: how much a thin block loses grows
# with the batch (one thread, 128 against 256 rows of a 256-wide kernel:
# about as fast at batch 256, 25-30% slower at 1024 on the Xeon), and thin
# blocks lose most at small batches, where each block's product packs dZ
# for little work (batch 32, 1024 outputs: 64 rows 60-90 GFLOP/s, 512 rows
# ~110 on the Xeon model 167).
PROFILE_UPDATE_ROWS = (64, 128, 256, 512)
UPDATE_PROBE_BATCHES = (32, 128, 1024)

PLAN_FIELDS = ("sparse_input", "sample_rows", "kernel_rows", "by_columns")
# predict's thresholds (descend._inference.Thresholds), pinned and recorded
# beside the fit's fields: the input density up to which predict's first
# layer skips zero inputs, and the rows from which GEMMs run the hidden
# layers (fewer rows take the row loops; 2**31 - 1: never). Their plans
# differ in the last bits, as the fit's do.
PREDICT_FIELDS = ("predict_sparse_density", "predict_gemm_min_rows")
MAX_GEMM_MIN_ROWS = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class Workload:
    """What the plan depends on: shapes, dtype, batch size, input density.

    layer_shapes: ((n_in, n_out), ...) of the Dense kernels; density: the
    fraction of the first layer's inputs that are non-zero; cores: the
    cores the blocks are cut for (not the threads used: the results must
    not depend on n_threads); input_dropout: dropout on the first layer's
    input (the sparse path cannot apply it).
    """
    layer_shapes: tuple
    dtype: str
    batch_size: int
    density: float
    cores: int
    optimizer_kind: int = 0
    input_dropout: bool = False


@dataclasses.dataclass(frozen=True)
class Plan:
    """How the fused epoch cuts its work (see the module docstring).

    sparse_input: the first layer skips zero inputs; sample_rows: rows of a
    batch per phase-A block; kernel_rows: per layer, kernel rows per
    phase-B block; by_columns: each batch runs layer by layer over all its
    rows, every product cut into blocks of output columns (the runner's
    team_by_columns strategy, for kernels too large for a core's L2 cache);
    source: "profile" or "defaults" (what chose the fields), "forced" (every
    field was given by the caller or DESCEND_PLAN) or "forced+profile",
    "forced+defaults" (some were; see part_source).
    """
    sparse_input: bool
    sample_rows: int
    kernel_rows: tuple
    source: str = "defaults"
    by_columns: bool = False

    def as_dict(self):
        """The plan as a JSON-friendly dict (what a network records and saves)."""
        return {"sparse_input": bool(self.sparse_input), "sample_rows": int(self.sample_rows),
                "kernel_rows": [int(r) for r in self.kernel_rows],
                "by_columns": bool(self.by_columns), "source": self.source}


# ---------------------------------------------------------------- the profile
def cpu_description():
    """{"model": CPU model name, "machine": architecture, "features": [...]}:
    the features are those descend's compiled loops dispatch on."""
    from descend import _config, _sparse
    return {"model": _config._cpu_model(), "machine": platform.machine(),
            "features": sorted(name for name, on in _sparse.cpu_features().items() if on)}


def _blas_description():
    """Name, version and kernel architecture of the BLAS descend calls (scipy's)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl is a runtime dependency
        return {}
    import scipy.linalg  # noqa: F401 - loads the BLAS scipy.linalg.cython_blas uses
    infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    infos.sort(key=lambda i: "scipy.libs" not in i.get("filepath", ""))
    if not infos:
        return {}
    return {k: infos[0].get(k) for k in ("internal_api", "version", "architecture")}


_key = []


def profile_key():
    """What a profile holds for: CPU, library versions, profile format
    (computed once per process: scanning the loaded libraries takes a while)."""
    import scipy
    import descend
    if not _key:
        _key.append({"format": PROFILE_FORMAT, "cpu": cpu_description(),
                     "blas": _blas_description(), "descend": descend.__version__,
                     "numpy": np.__version__, "scipy": scipy.__version__,
                     "python": sys.version.split()[0]})
    return json.loads(json.dumps(_key[0]))


def cache_dir():
    """The directory profiles are kept in, as an absolute path: DESCEND_CACHE_DIR
    (a leading ~ is the home directory, a relative path is taken from the
    directory current when it is first needed in the process; empty: unset), else the user cache directory
    ($XDG_CACHE_HOME/descend or ~/.cache/descend, ~/Library/Caches/descend,
    %LOCALAPPDATA%\\descend\\Cache). A relative XDG_CACHE_HOME is ignored, as the
    XDG Base Directory specification asks.

    Raises
    ------
    ValueError
        DESCEND_CACHE_DIR starts with ~ of no known user (~name) or home, or
        is only whitespace.
    """
    chosen = os.environ.get("DESCEND_CACHE_DIR")
    if chosen and not chosen.strip():   # a stray space, not a directory named " "
        raise ValueError(f"DESCEND_CACHE_DIR must be a directory (or empty: the default), "
                         f"got {chosen!r}: only whitespace (write {'./' + chosen!r} for a "
                         f"directory of that name)")
    if chosen:
        expanded = os.path.expanduser(chosen)
        if expanded.startswith("~"):    # ~name of no user (or no home): not a relative path
            raise ValueError(f"DESCEND_CACHE_DIR must be a directory, its leading ~ the "
                             f"home directory (~) or a user's (~name), got {chosen!r}: "
                             f"no such user or home directory (write ./{chosen} for a "
                             f"directory of that name)")
        if os.path.isabs(expanded):
            return os.path.normpath(expanded)
        # from the directory current when first needed: a process that
        # changes directory later keeps its cache (and does not measure again)
        return _relative_cache_dirs.setdefault(chosen, os.path.abspath(expanded))
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.expanduser("~")
        return os.path.join(base, "descend", "Cache")
    if sys.platform == "darwin":
        return os.path.expanduser("~/Library/Caches/descend")
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return os.path.join(xdg if os.path.isabs(xdg) else os.path.expanduser("~/.cache"),
                        "descend")


# DESCEND_CACHE_DIR's relative values -> the absolute directory each was first taken for
_relative_cache_dirs = {}


def _profile_path(key):
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return os.path.join(cache_dir(), f"profile-{digest}.json")


# the values an on/off environment switch takes (DESCEND_PROFILE, the bools of
# DESCEND_PLAN), in any case
_SWITCH = {"1": True, "true": True, "yes": True, "on": True,
           "0": False, "false": False, "no": False, "off": False}


def profiling_enabled():
    """False when DESCEND_PROFILE is 0 (or false, no, off; plans then use
    the defaults); True when it is unset, empty, 1, true, yes or on (any case).

    Raises
    ------
    ValueError
        Any other value, naming DESCEND_PROFILE and the accepted values
        (a typo such as "of" must not leave profiling on unnoticed).
    """
    text = os.environ.get("DESCEND_PROFILE", "").strip()
    if not text:
        return True
    if text.lower() not in _SWITCH:
        raise ValueError(f"DESCEND_PROFILE must be one of {sorted(_SWITCH)} (or "
                         f"unset), got {text!r}")
    return _SWITCH[text.lower()]


_loaded = {}
_measuring = threading.Lock()


def _unlock_in_child():
    """A child forked while a thread measured: a free lock (the measuring
    thread is not in the child, to release the one it copied)."""
    global _measuring
    _measuring = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_unlock_in_child)


def machine_profile(refresh=False):
    """This machine's profile (a dict), measured once and then read from the
    cache; None when profiling is off (DESCEND_PROFILE=0).

    Parameters
    ----------
    refresh : bool
        Measure again and overwrite the stored profile.

    Returns
    -------
    dict or None
        ``key`` (CPU, libraries), ``gemm`` ({dtype: {width: {rows: GFLOP/s}}},
        single-threaded BLAS on blocks of ``rows`` rows against a width x
        width kernel), ``gemm_update`` ({dtype: {batch: {width: {rows:
        GFLOP/s}}}}, single-threaded X^T dZ products of ``rows`` kernel rows
        of a width-wide kernel over ``batch`` rows, as phase B runs them),
        ``sparse_break_even`` ({dtype: {batch size: the input density below
        which the sparse first layer is faster}}),
        ``predict`` ({dtype: the figures predict's thresholds follow from,
        see ``descend._inference.profile_figures``}), ``seconds`` (time
        the measurement took), ``path`` (where it is stored; None if the
        cache was not writable).

    Warns
    -----
    ProfileCacheWarning
        The profile cannot be stored in the cache directory (once per
        process and directory): it is kept in memory for this process, and
        the next process measures it again.
    """
    if not profiling_enabled():
        return None
    key = profile_key()
    path = _profile_path(key)
    if not refresh and path in _loaded:
        return _loaded[path]
    # one thread reads or measures, the others wait for its profile: threads
    # measuring at once took that many times longer and timed BLAS on cores
    # the other measurements loaded
    with _measuring:
        return _profile_at(path, key, refresh)


def _profile_at(path, key, refresh):
    """machine_profile's profile stored at `path` for `key` (read, or
    measured and stored), under the _measuring lock."""
    if not refresh:
        if path in _loaded:         # (measured while this thread waited)
            return _loaded[path]
        try:
            stored = _read_stored(path)
            if not profile_is_stale(stored, key):
                stored["path"] = path
                _loaded[path] = stored
                return stored
        except (OSError, ValueError, RecursionError):   # (a file nested too deep)
            pass
    profile = measure_profile()
    profile["key"] = key
    error = None
    try:
        profile["path"] = _store(path, profile)
    except OSError as failure:
        profile["path"], error = None, failure
    _loaded[path] = profile     # kept for the rest of the process, stored or not
    if error is not None:       # (once kept: under -W error the warning raises)
        _warn_unwritable(os.path.dirname(path), error)
    return profile


class ProfileCacheWarning(RuntimeWarning):
    """descend could not store its machine profile (``descend.plans``) in the
    cache directory: the profile is kept in memory for this process, but
    every new process measures it again. Given once per process and
    directory; set DESCEND_CACHE_DIR to a writable directory."""


_warned_dirs = set()


def _warn_unwritable(directory, error):
    """Say once per process (and directory) that profiles cannot be stored there."""
    if directory in _warned_dirs:
        return
    _warned_dirs.add(directory)
    if os.path.islink(directory) and not os.path.exists(directory):
        # (makedirs says "File exists" of a link to nothing)
        error = f"a symbolic link to {os.readlink(directory)!r}, which does not exist"
    warnings.warn(f"descend cannot store its machine profile in {directory!r} ({error}); "
                  f"this process keeps it in memory, but every new process measures it "
                  f"again (about a second). Set DESCEND_CACHE_DIR to a writable directory "
                  f"(or DESCEND_PROFILE=0 for the built-in plans, unmeasured).",
                  ProfileCacheWarning, stacklevel=outside_stacklevel())


# a profile is a few KB: a larger file is not one (and is not read whole)
MAX_PROFILE_BYTES = 1 << 20


def _read_stored(path):
    """The JSON at `path`; OSError where it is no regular file of at most
    MAX_PROFILE_BYTES (a named pipe would block open() and read(), a link to
    /dev/zero fill the memory), ValueError where it is no JSON."""
    # (O_NONBLOCK: open() of a named pipe returns at once, to be refused)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_PROFILE_BYTES:
            raise OSError(f"{path}: not a profile (no regular file, or over "
                          f"{MAX_PROFILE_BYTES} bytes)")
        return json.loads(f.read(MAX_PROFILE_BYTES + 1))


def usable_cores():
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    from descend._openmp import _usable_cpus
    return _usable_cpus()


def profile_is_stale(profile, key, now=None):
    """Whether a stored profile must be measured again: it was measured for
    another key (CPU model or features, BLAS, descend, numpy, scipy or
    Python version, profile format), for another number of usable cores,
    or more than PROFILE_MAX_AGE_DAYS ago (or it lacks those records)."""
    if not isinstance(profile, dict):     # valid JSON, but not a profile: measure again
        return True
    now = time.time() if now is None else now
    measured_at = profile.get("measured_at")
    return (profile.get("key") != key or profile.get("cores") != usable_cores()
            or not is_finite_number(measured_at, zero=True)
            or not 0 <= now - measured_at <= PROFILE_MAX_AGE_DAYS * 86400
            or not _records_are_valid(profile) or not _figures_are_valid(profile))


def _records_are_valid(profile):
    """Whether the records beside the figures are what measure_profile
    writes: ``seconds`` a finite number >= 0, ``load_average`` None or one,
    ``l2_cache_bytes`` None or an int >= 0 (fit's by_columns rule compares
    kernel sizes with it; info --json gives them as numbers)."""
    l2 = profile.get("l2_cache_bytes")
    load = profile.get("load_average")
    return (is_finite_number(profile.get("seconds"), zero=True)
            and (load is None or is_finite_number(load, zero=True))
            and (l2 is None or (isinstance(l2, int) and not isinstance(l2, bool) and l2 >= 0)))


def is_finite_number(value, zero=False):
    """Whether `value` is a finite real number as a stored profile holds its
    figures: an int or a float (not a bool) within a float64, > 0, or >= 0
    where `zero`."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        value = float(value)    # (an int of 309 digits or more: OverflowError)
    except OverflowError:
        return False
    return math.isfinite(value) and (value >= 0 if zero else value > 0)


def is_size_key(key):
    """Whether a profile table's key is a size as measure_profile writes it:
    a positive int in plain decimal ("064" and "64" would be one size twice,
    "0" a log of zero, a 400-digit size an overflow in the plan's sums)."""
    return (isinstance(key, str) and key.isascii() and key.isdigit() and key[0] != "0"
            and int(key) <= MAX_GEMM_MIN_ROWS)


def _figures_are_valid(profile):
    """Whether every figure a plan reads is a positive finite number under a
    size key (is_size_key), for both dtypes: a hand-edited or corrupt cache
    file is then measured again instead of breaking every fit until someone
    deletes it."""
    from descend import _inference

    def rates(table):       # {size: figure}, at least one
        return (isinstance(table, dict) and bool(table)
                and all(is_size_key(size) and is_finite_number(v) for size, v in table.items()))

    def tables(table):      # {size: {size: figure}}, at least one
        return (isinstance(table, dict) and bool(table)
                and all(is_size_key(size) and rates(t) for size, t in table.items()))
    try:
        for dtype in ("float32", "float64"):
            break_even = profile["sparse_break_even"][dtype]
            if not (rates(break_even) if isinstance(break_even, dict)
                    else is_finite_number(break_even)):
                return False
            if not tables(profile["gemm"][dtype]):
                return False
            # (without them predict takes its defaults)
            if "predict" in profile and not _inference.figures_are_valid(
                    profile["predict"].get(dtype)):
                return False
            # (gemm_update is optional: without it, phase B keeps its default blocks)
            update = profile["gemm_update"][dtype] if "gemm_update" in profile else None
            if update is not None and not (isinstance(update, dict) and bool(update) and all(
                    is_size_key(batch) and tables(t) for batch, t in update.items())):
                return False
    except (KeyError, TypeError, AttributeError):
        return False
    return True


def _store(path, profile):
    """Write the profile atomically and return `path`; OSError where the
    directory cannot be made or written (no temporary is left behind)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump({k: v for k, v in profile.items() if k != "path"}, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return path


def _timed_rounds(runs, rounds=PROFILE_ROUNDS, min_rounds=PROFILE_MIN_ROUNDS, warm_all=True):
    """{name: [seconds, ...]} of each zero-argument callable in `runs`: the
    calling thread's CPU time, in turns (round by round), after one warm-up
    call each (warm_all; else of the first only: runs whose memory was all
    written beforehand have nothing to warm but the BLAS's buffers);
    `min_rounds` rounds, more (up to `rounds`) for each run until its
    timings agree (see _settled).

    Wall-clock time on shared cores measures the other tenants: under load
    a run is descheduled for whole time slices, and the longer of two runs
    is hit more often, so a profile taken under load ranked the dense first
    layer (the longer run) wrongly. The thread's CPU time leaves the waiting
    out (the runs are single-threaded, the BLAS limited to one thread), and
    turns put a burst of contention on every run of a round alike. On a
    quiet machine the rounds agree within a few percent and two of them
    settle the medians; under load the extra rounds outvote the outliers,
    and only the runs that need them take them (the long runs, which
    dominate the time, tend to agree first)."""
    for run in list(runs.values())[:None if warm_all else 1]:
        run()   # warm: first touch, BLAS buffers
    seconds = {name: [] for name in runs}
    for round_ in range(rounds):
        # the runs whose timings do not agree yet go on, in turns
        for name in [name for name, times in seconds.items()
                     if round_ < min_rounds or not _settled(times)]:
            start = time.thread_time()
            runs[name]()
            seconds[name].append(max(time.thread_time() - start, 1e-9))
    return seconds


def _settled(times):
    """Whether a run's timings settle its median: two that agree within
    PROFILE_SPREAD, or (from three on) three within PROFILE_SPREAD of the
    median (the others are outliers it leaves out)."""
    if len(times) == 2:
        return abs(times[0] - times[1]) <= PROFILE_SPREAD * min(times)
    median = statistics.median(times)
    return sum(abs(t - median) <= PROFILE_SPREAD * median for t in times) >= 3


def _operands(rng, dtype):
    """(a, b): random read-only operands every GEMM probe of one dtype
    slices its inputs from, a of max(PROFILE_WIDTHS) x max(PROFILE_WIDTHS)
    entries and b of max(UPDATE_PROBE_BATCHES) x max(PROFILE_UPDATE_ROWS),
    apart so that a product's two inputs never share cache lines. One draw
    in the dtype: generating and converting operands for each probe took a
    fifth of the profile's time. (Values in [0, 1): their size does not
    change a GEMM's speed, and no product runs long enough to overflow.)"""
    size_a = max(PROFILE_WIDTHS) ** 2
    pool = rng.random(size_a + max(UPDATE_PROBE_BATCHES) * max(PROFILE_UPDATE_ROWS), dtype=dtype)
    return pool[:size_a], pool[size_a:]


def _matrix(flat, rows, cols):
    """The first rows x cols entries of a flat operand, as a C-contiguous matrix."""
    return flat[:rows * cols].reshape(rows, cols)


def _gemm_runs(operands):
    """{(width, rows): (run, flops)}: phase-A-like GEMMs, one thread."""
    from descend import _dense
    a, b = operands
    runs = {}
    for width in PROFILE_WIDTHS:
        w = _matrix(a, width, width)
        x = _matrix(b, max(PROFILE_ROWS), width)
        z = np.ones_like(x)     # (written: no first touch in a timing)
        for rows in PROFILE_ROWS:
            # >= 16 MFLOP and whole blocks: a few ms per timing
            n = rows * -(-int(8e6 / width ** 2) // rows) if rows < 256 else rows
            runs[(width, rows)] = ((lambda x=x[:n], w=w, z=z[:n], rows=rows:
                                    _dense.gemm_row_blocks_py(x, w, z, rows)),
                                   2 * n * width * width)
    return runs


def _update_runs(operands):
    """{(batch, width, rows): (run, flops)}: phase-B-like GEMMs, one thread:
    W[rows, width] += X^T dZ over `batch` rows, as _sgd_through_gemm calls
    it (scipy's BLAS, the one descend's kernels call)."""
    from scipy.linalg import blas
    a, b = operands
    gemm = blas.sgemm if a.dtype == np.float32 else blas.dgemm
    runs = {}
    for width in PROFILE_WIDTHS:
        # one kernel to update per width (the runs' results are not read;
        # written: no first touch in a timing)
        out = np.ones((max(PROFILE_UPDATE_ROWS), width), a.dtype)
        for n in UPDATE_PROBE_BATCHES:
            dz = _matrix(a, n, width)
            for rows in PROFILE_UPDATE_ROWS:
                # row-major W := W - 0.001 X^T dZ is column-major
                # W^T := W^T - 0.001 dZ^T X
                xs, w = _matrix(b, n, rows), out[:rows]
                repeats = max(1, math.ceil(8e6 / (2 * n * rows * width)))

                def run(dz=dz, xs=xs, w=w, repeats=repeats):
                    for _ in range(repeats):
                        gemm(-0.001, dz.T, xs.T, 1.0, w.T, trans_b=1, overwrite_c=1)
                runs[(n, width, rows)] = (run, 2 * n * rows * width * repeats)
    return runs


# The sparse first layer's probe: image-like inputs of this density (MNIST:
# 19% non-zero), through MNIST's net, at these batch sizes (the break-even
# density of a workload is interpolated between them, log scale), each over
# as many rows (a few batches of the smaller sizes time the same per-batch
# work as many: each batch updates the whole kernel).
SPARSE_PROBE_DENSITY = 0.2
SPARSE_PROBE_SHAPES = ((784, 256), (256, 128), (128, 10))
SPARSE_PROBE_BATCHES = {16: 128, 128: 256, 512: 512}


def _first_layer_runs(rng, x, gemm_rates, cores):
    """{("sparse" or "dense", batch size): run}: the first layer's share of
    an epoch of plain SGD on rows of x (image-like, see _image_like_rows)
    into 256 units, batch by batch as the fused epoch runs it (compress or
    copy the rows, the forward product in the plan's sample blocks, the
    update in its kernel blocks), through the sparse kernels and through
    single-threaded BLAS. gemm_rates: the profile's "gemm" table, from
    which the plan's sample blocks follow."""
    from descend import _sparse
    n, (n_in, n_out) = max(SPARSE_PROBE_BATCHES.values()), SPARSE_PROBE_SHAPES[0]
    w = rng.random((n_in, n_out), dtype=x.dtype) - 0.5
    dz = rng.random((n, n_out), dtype=x.dtype) - 0.5
    runs = {}
    for batch, rows in SPARSE_PROBE_BATCHES.items():
        workload = Workload(SPARSE_PROBE_SHAPES, str(x.dtype), batch, SPARSE_PROBE_DENSITY, cores)
        blocks = dict(batch_size=batch, kernel_rows=_default_kernel_rows(workload)[0],
                      sample_rows=_sample_rows({"gemm": gemm_rates}, workload))
        for kind in ("sparse", "dense"):
            runs[(kind, batch)] = _sparse.SparseLayerRun(x[:rows], w, dz[:rows],
                                                         dense=kind == "dense", **blocks)
    return runs


def _image_like_rows(rng, dtype):
    """512 rows of 784 inputs, SPARSE_PROBE_DENSITY of them non-zero, all in
    the middle 40% of the columns (MNIST: 19% non-zero, mostly central
    pixels), as mostly-zero inputs tend to be: the input of the sparse
    first layer's probes, for fit's plan and for predict's."""
    x = rng.random((512, 784), dtype=dtype)
    middle = np.zeros(784, bool)
    middle[235:549] = True
    x[(x >= SPARSE_PROBE_DENSITY / 0.4) | ~middle] = 0
    return x


def _rates(runs, seconds):
    """{key: GFLOP/s} of {key: (run, flops)} from their timings' medians."""
    return {key: flops / 1e9 / statistics.median(seconds[key])
            for key, (_, flops) in runs.items()}


def measure_profile():
    """Measure the throughputs a plan is chosen from (single-threaded BLAS;
    under a second on a quiet machine). See machine_profile for the
    fields."""
    from descend import _inference
    from descend._threads import blas_threads
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    dtypes = ("float32", "float64")
    operands = {dtype: _operands(rng, dtype) for dtype in dtypes}
    images = {dtype: _image_like_rows(rng, dtype) for dtype in dtypes}
    load = _load_average()
    with blas_threads(1):
        gemm_runs = {(dtype,) + key: run for dtype in dtypes
                     for key, run in _gemm_runs(operands[dtype]).items()}
        rates = _rates(gemm_runs, _timed_rounds({k: run for k, (run, _) in gemm_runs.items()}))
        gemm = {dtype: {str(width): {str(rows): rates[(dtype, width, rows)]
                                     for rows in PROFILE_ROWS}
                        for width in PROFILE_WIDTHS} for dtype in dtypes}
        update_runs = {(dtype,) + key: run for dtype in dtypes
                       for key, run in _update_runs(operands[dtype]).items()}
        rates = _rates(update_runs,
                       _timed_rounds({k: run for k, (run, _) in update_runs.items()},
                                     warm_all=False))
        gemm_update = {dtype: {str(n): {str(width): {
            str(rows): rates[(dtype, n, width, rows)] for rows in PROFILE_UPDATE_ROWS}
            for width in PROFILE_WIDTHS} for n in UPDATE_PROBE_BATCHES} for dtype in dtypes}
        # the first layer in the blocks the plan takes from those rates
        seconds = _timed_rounds({(dtype,) + key: run for dtype in dtypes for key, run in
                                 _first_layer_runs(rng, images[dtype], gemm,
                                                   usable_cores()).items()})
        # predict's first layer and hidden row loops (descend._inference)
        predict_seconds = _timed_rounds({
            (dtype, name): run for dtype in dtypes
            for name, run in _inference.profile_runs(rng, images[dtype]).items()})
    # the sparse path's time grows with the non-zeros, the dense one's does
    # not: they break even at the probe's density times their time ratio
    # (the median of the rounds' ratios: each round times both back to back;
    # over the rounds both took)
    sparse = {dtype: {str(batch): SPARSE_PROBE_DENSITY * statistics.median(
        d / s for d, s in zip(seconds[(dtype, "dense", batch)],
                              seconds[(dtype, "sparse", batch)]))
        for batch in SPARSE_PROBE_BATCHES} for dtype in dtypes}
    predict = {dtype: _inference.profile_figures(
        {name: times for (of, name), times in predict_seconds.items() if of == dtype},
        SPARSE_PROBE_DENSITY) for dtype in dtypes}
    return {"gemm": gemm, "gemm_update": gemm_update, "sparse_break_even": sparse,
            "predict": predict,
            "l2_cache_bytes": l2_cache_bytes(),
            "seconds": round(time.perf_counter() - started, 3),
            "measured_at": int(time.time()), "cores": usable_cores(),
            "load_average": load, "timer": "thread CPU time, median of rounds"}


def l2_cache_bytes(cpu_dir="/sys/devices/system/cpu/cpu0/cache"):
    """The L2 cache of one core, in bytes (Linux sysfs), or None where the OS
    does not say: the size beyond which a kernel's weights no longer stay
    in a core's cache between two batches."""
    try:
        for entry in sorted(os.listdir(cpu_dir)):
            path = os.path.join(cpu_dir, entry)
            with open(os.path.join(path, "level")) as f:
                level = f.read().strip()
            with open(os.path.join(path, "type")) as f:
                kind = f.read().strip()
            if level == "2" and kind in ("Unified", "Data"):
                with open(os.path.join(path, "size")) as f:
                    size = f.read().strip().upper()
                scale = {"K": 1024, "M": 1024 ** 2}.get(size[-1:], 1)
                return int(size.rstrip("KM")) * scale
    except (OSError, ValueError):
        pass
    return None


def _load_average():
    """The 1-minute load average (None where the OS does not report it):
    recorded with the profile so that a report can say it was taken under load."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


# ------------------------------------------------------------------- the plan
def beats_default(seconds, default_seconds):
    """Whether a choice the profile estimates at `seconds` replaces the
    default's, estimated at `default_seconds`: only when faster by
    PLAN_MARGIN, so that a profile measured with noise (under load, on
    shared cores) moves a choice off its default only where the difference
    is real. Every rule, fit's and predict's, leaves its default through
    this test (the sparse first layer's density limit is its algebra:
    sparse_density_limit)."""
    return seconds < (1 - PLAN_MARGIN) * default_seconds


def _gemm_rate(profile, dtype, rows, n_in, n_out):
    """GFLOP/s of phase-A blocks of `rows` rows against an n_in x n_out
    kernel: the measured block size at or below `rows`, the measured kernel
    nearest in size (log scale)."""
    table = profile["gemm"][dtype]
    width = min(table, key=lambda w: abs(math.log(int(w) ** 2 / max(n_in * n_out, 1))))
    measured = sorted(int(r) for r in table[width])
    below = [r for r in measured if r <= rows] or measured[:1]
    return table[width][str(below[-1])]


def one_thread_batch_seconds(layer_shapes, dtype, batch_size, profile=None):
    """An estimate of one batch's seconds on one thread: every product of
    the batch (forward, input gradient after the first layer, kernel
    gradient; dense, whatever the plan) at the profile's one-thread GEMM
    rate for blocks of the batch's rows against a kernel of the layer's
    size. None without a profile (DESCEND_PROFILE=0).

    What TeamSize's first retry of one thread may cost: the team's own time
    per batch bounds it too (n_threads times it), but not on cores another
    job holds, where a team of 2 ran a batch of 8 in 23-44 ms against
    0.06-0.15 ms on one thread (Intel Xeon, MNIST 784-256-128-10; this
    estimate: 0.12 ms)."""
    profile = machine_profile() if profile is None else profile
    if profile is None:
        return None
    return sum((2 if i == 0 else 3) * 2 * batch_size * n_in * n_out
               / (_interpolated_rate(profile, dtype, batch_size, n_in, n_out) * 1e9)
               for i, (n_in, n_out) in enumerate(layer_shapes))


def _phase_a_seconds(profile, workload, rows):
    """Estimated phase-A time of one batch with blocks of `rows` rows: the
    blocks go round-robin over the cores, each runs every layer's forward
    and (after the first) input-gradient products on its rows."""
    batch = workload.batch_size
    rounds = math.ceil(math.ceil(batch / rows) / workload.cores)
    block = 0.0
    for i, (n_in, n_out) in enumerate(workload.layer_shapes):
        products = 1 if i == 0 else 2
        block += products * 2 * rows * n_in * n_out / _gemm_rate(profile, workload.dtype,
                                                                 rows, n_in, n_out)
    return rounds * block


def _sample_rows(profile, workload):
    batch = workload.batch_size
    per_core = max(64, -(-batch // workload.cores))
    default = DEFAULT_SAMPLE_ROWS if batch < 128 else per_core
    if profile is None:
        return default
    candidates = sorted({r for r in PROFILE_ROWS if r < batch}
                        | {min(batch, per_core), -(-batch // workload.cores)})
    # the smallest of the fastest (ties: thinner blocks balance better),
    # if it beats the default by the margin
    best = min(candidates, key=lambda r: (_phase_a_seconds(profile, workload, r), r))
    if beats_default(_phase_a_seconds(profile, workload, best),
                     _phase_a_seconds(profile, workload, default)):
        return best
    return default


def _default_kernel_rows(workload):
    """Phase-B blocks without a profile: 64 kernel rows up to batch 64, one
    block per core above (at least 64 rows)."""
    return tuple(SMALL_BATCH_KERNEL_ROWS if workload.batch_size <= 64 else
                 max(SMALL_BATCH_KERNEL_ROWS, -(-n_in // workload.cores))
                 for n_in, _ in workload.layer_shapes)


def _update_rate(profile, dtype, rows, n_out, batch):
    """GFLOP/s of one-thread phase-B products of `rows` kernel rows into an
    n_out-wide kernel over `batch` rows (the profile's gemm_update: the
    measured width nearest n_out, log scale; log-linear between the
    measured row counts and batch sizes around them, clamped)."""
    tables = profile["gemm_update"][dtype]
    def at(table):
        width = min(table, key=lambda w: abs(math.log(int(w) / max(n_out, 1))))
        return _log_interpolated(table[width], rows)
    return _log_interpolated({n: at(table) for n, table in tables.items()}, batch)


def _phase_b_seconds(profile, workload, kernel_rows, sparse, rates=None, by_columns=False):
    """Estimated phase-B time of one batch: the busiest core's share. A
    layer's kernel rows go in blocks of kernel_rows[i], dealt as the runner
    deals them (deal_blocks; by_columns: column_deal); a block of r rows
    costs its X^T dZ product (r x n_out, summed over the batch) at the
    profile's one-thread rate for r-row blocks (gemm_update, measured over
    the probe's batches), and by_columns, after the first layer, also the
    previous layer's dL/dz on those r columns (dZ W[rows]^T: the same
    shapes, taken at the same rate). The sparse first layer's gradient
    costs the dense one's times density / break-even (the two break even
    there). rates: a dict that keeps the rates looked up, {(rows, n_out):
    GFLOP/s}, for a search that estimates many plans of one workload."""
    batch, cores, dtype = workload.batch_size, workload.cores, workload.dtype
    rates = {} if rates is None else rates
    seconds = [0.0] * cores
    deal = column_deal if by_columns else deal_blocks
    owners = iter(deal(workload.layer_shapes, kernel_rows, cores))
    for i, ((n_in, n_out), rows) in enumerate(zip(workload.layer_shapes, kernel_rows)):
        products = 2 if by_columns and i > 0 else 1
        for k0 in range(0, n_in, rows):
            r = min(rows, n_in - k0)
            if (r, n_out) not in rates:
                rates[(r, n_out)] = _update_rate(profile, dtype, r, n_out, batch)
            rate = rates[(r, n_out)]
            if i == 0 and sparse:
                rate *= sparse_break_even(profile, dtype, batch) / max(workload.density, 1e-3)
            seconds[next(owners)] += products * 2 * r * n_out * batch / rate
    return max(seconds) * 1e-9


def deal_blocks(layer_shapes, kernel_rows, team):
    """The thread of each phase-B block of the net, in order, as the runner
    deals them (_deal_blocks in _train.pyx): each block to the thread with
    the least work so far (rows x outputs; ties: the lowest thread)."""
    work, owners = [0] * team, []
    for (n_in, n_out), rows in zip(layer_shapes, kernel_rows):
        for k0 in range(0, n_in, rows):
            owners.append(work.index(min(work)))
            work[owners[-1]] += min(rows, n_in - k0) * n_out
    return owners


def column_deal(layer_shapes, kernel_rows, team):
    """The thread of each phase-B block of the net, in order, as the
    team_by_columns strategy deals them (_columns_backward in _train.pyx):
    block b of each layer to thread b mod team."""
    return [b % team for (n_in, _), rows in zip(layer_shapes, kernel_rows)
            for b in range(-(-n_in // rows))]


def _kernel_rows(profile, workload, sparse, by_columns=False):
    """Kernel rows per phase-B block, per layer: the defaults, unless the
    profile's GEMM rates estimate a faster phase B with some layers in
    larger blocks (a thin block, e.g. 128 rows of a 256-wide layer on 2
    cores at batch 1024, or 64 rows of a 2048-wide one at batch 32, runs
    its X^T dZ product slower than a thick one: the product's packed dZ
    is reused over fewer rows), the balance of the runner's deal counted
    (by_columns: that strategy's deal, and its dL/dz products, cut by the
    same blocks). The result replaces the defaults only if its estimate
    is faster by PLAN_MARGIN. The sparse first layer keeps its blocks (the
    profile's sparse probe runs them). Batches up to 64 by samples keep
    the defaults: there the estimate favoured thicker blocks that ran no
    faster (784-256-128-10, batch 32: 2-3% slower); by columns (kernels
    larger than L2) they ran 10-15% faster (784-2048-2048-10, batch 32,
    Xeon model 167: 1.86-1.95 s an epoch of 10000 rows against 2.17-2.30)."""
    default = _default_kernel_rows(workload)
    if (profile is None or "gemm_update" not in profile or workload.cores < 2
            or (workload.batch_size <= 64 and not by_columns)):
        return default
    rows = _blocks_search(profile, workload, sparse, default, by_columns)
    if beats_default(_phase_b_seconds(profile, workload, rows, sparse, by_columns=by_columns),
                     _phase_b_seconds(profile, workload, default, sparse,
                                      by_columns=by_columns)):
        return tuple(rows)
    return default


def _blocks_search(profile, workload, sparse, default, by_columns=False):
    """The kernel rows of the fastest phase B the search finds (by the
    profile's estimate), from the defaults. A move gives the first j
    layers not yet moved of a group of layers of one shape (any j) blocks
    of one larger size: the whole layer, one block per core, or a measured
    block size (PROFILE_UPDATE_ROWS) between the default and the whole;
    each step takes the move that gains most, until none gains. Groups matter: one
    layer made whole alone can unbalance the deal (one of five 256 x 256
    layers on 2 cores) while several balance (all five, or four beside a
    first layer cut in two). Deterministic: ties keep the earlier move
    (whole layers first, then the larger sizes)."""
    shapes = workload.layer_shapes
    movable = [i for i, (n_in, _) in enumerate(shapes)
               if not (i == 0 and sparse) and default[i] < n_in]
    groups = [[i for i in movable if shapes[i] == shape]
              for shape in dict.fromkeys(shapes[i] for i in movable)]
    rows, rates, cores = list(default), {}, workload.cores
    best = _phase_b_seconds(profile, workload, rows, sparse, rates, by_columns)
    while any(groups):
        moves = []
        for g, group in enumerate(groups):
            if not group:
                continue
            n_in = shapes[group[0]][0]
            sizes = [n_in] + sorted({r for r in PROFILE_UPDATE_ROWS + (-(-n_in // cores),)
                                     if default[group[0]] < r < n_in}, reverse=True)
            for size in sizes:
                for j in range(1, len(group) + 1):
                    moved = [size if i in group[:j] else r for i, r in enumerate(rows)]
                    seconds = _phase_b_seconds(profile, workload, moved, sparse, rates,
                                               by_columns)
                    # (estimates equal on paper may differ in the last bit: compared
                    # to 9 digits, so that ties keep the earlier move)
                    moves.append((round(seconds / best, 9), len(moves), g, j, moved, seconds))
        ratio, _, g, j, moved, seconds = min(moves)
        if ratio >= 1:
            break
        rows, best, groups[g] = moved, seconds, groups[g][j:]
    return rows


def _log_interpolated(table, at):
    """The value of {size (str or int): positive figure} at size `at`:
    log-linear between the measured sizes around it (clamped to them)."""
    points = sorted((int(size), value) for size, value in table.items())
    at = min(max(at, points[0][0]), points[-1][0])
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= at <= x1:
            share = math.log(at / x0) / math.log(x1 / x0)
            return y0 * (y1 / y0) ** share
    return points[0][1]


def _interpolated_rate(profile, dtype, rows, n_in, n_out):
    """GFLOP/s of one-thread GEMMs of `rows` rows against an n_in x n_out
    kernel: the measured kernel nearest in size (log scale), log-linear
    between the measured block sizes around `rows` (clamped to them)."""
    table = profile["gemm"][dtype]
    width = min(table, key=lambda w: abs(math.log(int(w) ** 2 / max(n_in * n_out, 1))))
    return _log_interpolated(table[width], rows)


def sparse_break_even(profile, dtype, batch_size):
    """The profile's break-even input density (below it the sparse first
    layer is faster) at a batch size: log-linear between the batch sizes
    it was measured at (clamped to them). A single number (a hand-made
    profile) holds for every batch size."""
    table = profile["sparse_break_even"][dtype]
    return _log_interpolated(table, batch_size) if isinstance(table, dict) else table


def _products_seconds(profile, workload, sparse, by_columns, sample_rows):
    """Estimated time of one batch's forward and input-gradient products
    (the kernel gradients are cut the same way by both splits): by blocks
    of `sample_rows` samples, every core running whole layers on its
    rows; or by columns, every core running all the batch's rows through
    its share of each layer's output columns (and, backward, of its input
    columns). The sparse first layer's forward is the same either way."""
    cores, batch = workload.cores, workload.batch_size
    rows = batch if by_columns else sample_rows
    rounds = 1 if by_columns else math.ceil(math.ceil(batch / sample_rows) / cores)
    total = 0.0
    for i, (n_in, n_out) in enumerate(workload.layer_shapes):
        for (k, n), needed in (((n_in, n_out), not (i == 0 and sparse)),
                               ((n_out, n_in), i > 0)):
            if needed:
                n_core = -(-n // cores) if by_columns else n
                total += 2 * rows * k * n_core / _interpolated_rate(
                    profile, workload.dtype, rows, k, n_core)
    return rounds * total * 1e-9


def by_columns_rule(profile, workload, sparse, sample_rows):
    """Whether a batch runs layer by layer in blocks of output columns: only
    where some kernel is larger than a core's L2 cache (each core then keeps
    its share of the weights in cache, instead of every core streaming all
    of them for its own rows), and the profile's GEMM rates estimate the
    products faster that way by PLAN_MARGIN."""
    if profile is None or not profile.get("l2_cache_bytes") or workload.cores < 2:
        return False
    itemsize = np.dtype(workload.dtype).itemsize
    if max(a * b for a, b in workload.layer_shapes) * itemsize <= profile["l2_cache_bytes"]:
        return False
    return beats_default(_products_seconds(profile, workload, sparse, True, sample_rows),
                         _products_seconds(profile, workload, sparse, False, sample_rows))


def sparse_density_limit(profile, workload):
    """The input density up to which the first layer runs sparse: the
    default (35%) unless the profile's break-even density at the
    workload's batch size (the first layer's share of a plain-SGD epoch
    timed both ways on image-like inputs, see measure_profile) says the
    other path is faster by PLAN_MARGIN (sparse_density_threshold)."""
    if profile is None:
        return DEFAULT_SPARSE_DENSITY
    return sparse_density_threshold(
        sparse_break_even(profile, workload.dtype, workload.batch_size))


def sparse_density_threshold(break_even):
    """The density up to which the sparse path runs, given the density at
    which the profile estimates both paths equally fast: the default (35%)
    held within [break_even * (1 - margin), break_even / (1 - margin)].

    The sparse path's time grows with the density d and the dense path's
    does not, so sparse / dense = d / break_even. Below the default (sparse
    by default) d turns dense only where dense is faster by the margin,
    d > break_even / (1 - margin); above it (dense by default) sparse only
    where d < break_even * (1 - margin). Both rules are "sparse iff d <= the
    default clamped into that interval": one number, which fit compares with
    the training data's density and predict with each input's."""
    low, high = break_even * (1 - PLAN_MARGIN), break_even / (1 - PLAN_MARGIN)
    return min(max(DEFAULT_SPARSE_DENSITY, low), high)


def plan_for(workload, profile=None, forced=None):
    """The plan for a workload: a deterministic function of the profile
    (None: the defaults) and the workload. forced: a dict of plan fields
    that override the choice (unknown names raise ValueError)."""
    forced = dict(forced or {})
    unknown = set(forced) - set(PLAN_FIELDS) - {"source"}
    if unknown:
        raise ValueError(f"plan fields must be among {PLAN_FIELDS}, got {sorted(unknown)}")
    sample_rows = forced.get("sample_rows")
    if sample_rows is None:
        sample_rows = _sample_rows(profile, workload)
    sample_rows = int(sample_rows)
    if not 1 <= sample_rows <= MAX_BLOCK_ROWS:
        raise ValueError(f"plan sample_rows must be in [1, {MAX_BLOCK_ROWS}], got {sample_rows}")
    sparse = forced.get("sparse_input")
    if sparse is None:
        sparse = workload.density <= sparse_density_limit(profile, workload)
    sparse = bool(sparse) and not workload.input_dropout
    by_columns = forced.get("by_columns")
    if by_columns is None:
        by_columns = by_columns_rule(profile, workload, sparse, sample_rows)
    kernel_rows = forced.get("kernel_rows")
    if kernel_rows is None:
        kernel_rows = _kernel_rows(profile, workload, sparse, bool(by_columns))
    elif isinstance(kernel_rows, (int, np.integer)):
        kernel_rows = (int(kernel_rows),) * len(workload.layer_shapes)
    kernel_rows = tuple(int(r) for r in kernel_rows)
    if (len(kernel_rows) != len(workload.layer_shapes)
            or not 1 <= min(kernel_rows) <= max(kernel_rows) <= MAX_BLOCK_ROWS):
        raise ValueError(f"plan kernel_rows must be {len(workload.layer_shapes)} "
                         f"ints in [1, {MAX_BLOCK_ROWS}], got {kernel_rows}")
    source = part_source(forced, PLAN_FIELDS, "defaults" if profile is None else "profile")
    return Plan(sparse, sample_rows, kernel_rows, forced.get("source", source),
                bool(by_columns))


def part_source(pinned, fields, chooser):
    """Where the `fields` of one part of a plan (fit's PLAN_FIELDS or
    predict's PREDICT_FIELDS) came from, given those `pinned` (a dict or set
    of names) and what chose the others (`chooser`: "profile" or
    "defaults"): "forced" when all were pinned, `chooser` when none was,
    "forced+<chooser>" when some were."""
    pinned = set(pinned) & set(fields)
    if not pinned:
        return chooser
    return "forced" if pinned == set(fields) else f"forced+{chooser}"


def recorded_source(fit, predict):
    """``plan_["source"]`` from the sources of its fit fields and of its
    predict fields (part_source; None: the plan holds no such fields): the
    one source when they agree, else both, as "fit: <fit's>, predict:
    <predict's>"."""
    if fit is None or fit == predict:
        return predict
    if predict is None:
        return fit
    return f"fit: {fit}, predict: {predict}"


def fit_source(recorded):
    """The source of the fit fields of a recorded plan (``plan_``, see
    recorded_source), or None when it holds none."""
    if not set(recorded) & set(PLAN_FIELDS):
        return None
    source = recorded.get("source")
    if isinstance(source, str) and source.startswith("fit: "):
        return source[len("fit: "):].split(", predict: ")[0]
    return source


_ALL_FIELDS = PLAN_FIELDS + PREDICT_FIELDS
# Block sizes are C ints in the compiled loop, which steps a thread's next
# block by team size x block rows: that stays a C int for any team size up
# to MAX_THREADS (2**31 - 1 segfaulted as the sum wrapped around).
MAX_BLOCK_ROWS = (2**31 - 1) // (MAX_THREADS + 1)
_EXPECTED = {"sparse_input": "a bool or None", "by_columns": "a bool or None",
             "predict_sparse_density": "a number in [0, 1] or None",
             "predict_gemm_min_rows": f"an int in [1, {MAX_GEMM_MIN_ROWS}] or None",
             "sample_rows": f"an int in [1, {MAX_BLOCK_ROWS}] or None",
             "kernel_rows": f"an int in [1, {MAX_BLOCK_ROWS}], a non-empty list of them or None",
             "source": "a str"}


def check_plan(value, name="plan", n_layers=None):
    """A plan dict (pinned fields, or a fit's ``plan_``) checked field by
    field: keys among PLAN_FIELDS, PREDICT_FIELDS and "source", sparse_input
    a bool, sample_rows an int >= 1, kernel_rows an int >= 1 or a list of them,
    predict_sparse_density in [0, 1] with no sign (-0.0 is refused, as by
    DESCEND_PLAN)
    (with `n_layers`, the number of Dense layers of the network the plan
    is for: exactly one per layer). None passes. Returns a copy;
    ValueError/TypeError naming `name`."""
    if value is None:
        return None
    if not isinstance(value, dict) or not set(value) <= set(_ALL_FIELDS) | {"source"}:
        raise ValueError(f"{name} must be None or a dict with keys among "
                         f"{_ALL_FIELDS + ('source',)}, got {value!r}")

    def positive(v):
        # the compiled loop holds block sizes in C ints
        return (isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                and 1 <= v <= MAX_BLOCK_ROWS)
    checks = {"sparse_input": lambda v: v is None or isinstance(v, (bool, np.bool_)),
              "by_columns": lambda v: v is None or isinstance(v, (bool, np.bool_)),
              "sample_rows": lambda v: v is None or positive(v),
              "kernel_rows": lambda v: v is None or positive(v) or (
                  isinstance(v, (list, tuple)) and len(v) > 0 and all(map(positive, v))),
              # no sign on a zero, as DESCEND_PLAN (0 <= -0.0 would let -0.0 pass)
              "predict_sparse_density": lambda v: v is None or (
                  isinstance(v, (int, float, np.integer, np.floating))
                  and not isinstance(v, (bool, np.bool_)) and 0 <= v <= 1
                  and math.copysign(1.0, v) > 0),
              "predict_gemm_min_rows": lambda v: v is None or (
                  isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                  and 1 <= v <= MAX_GEMM_MIN_ROWS),
              "source": lambda v: isinstance(v, str)}
    for field, ok in checks.items():
        if field in value and not ok(value[field]):
            negative_zero = (" (a negative zero: no plan field takes a sign)"
                             if field == "predict_sparse_density" and value[field] == 0 else "")
            raise ValueError(f"{name}[{field!r}] must be {_EXPECTED[field]}, got "
                             f"{value[field]!r}{negative_zero}")
    rows = value.get("kernel_rows")
    if n_layers is not None and isinstance(rows, (list, tuple)) and len(rows) != n_layers:
        # the compiled loop reads one entry per layer: a list for another
        # network would be refused only by the next fit, after a load had
        # replaced the network's state
        raise ValueError(f"{name}['kernel_rows'] must hold one int per Dense layer "
                         f"({n_layers}), got {list(rows)!r}")
    return {k: _plain(v) for k, v in value.items()}


def _plain(value):
    """A checked plan field as plain Python (numpy ints and bools included), so
    that a state_dict's plan is JSON as Plan.as_dict() is."""
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.floating):
        return float(value)
    return int(value) if isinstance(value, np.integer) else value


def forced_from_env():
    """The plan fields DESCEND_PLAN forces ({} if unset): JSON or
    comma-separated name=value (sparse_input=0, sample_rows=64, kernel_rows=64,
    by_columns=1, predict_sparse_density=0.3, predict_gemm_min_rows=16).
    Numbers in plain ASCII: digits for the int fields, a decimal or exponent
    float (3e-1) for the density, within a float64 (1e-400 is no 0.0), no
    sign (-0 neither), in both forms (see the module docstring); in JSON a
    bool is no number nor a number a bool. ValueError naming DESCEND_PLAN
    (and the field) for anything else."""
    text = os.environ.get("DESCEND_PLAN", "").strip()
    if not text:
        return {}
    if text.startswith("{"):
        repeated = []

        def unique(pairs):
            # json.loads would keep the last of a repeated name silently
            names = [name for name, _ in pairs]
            repeated.extend(name for name in names if names.count(name) > 1)
            return dict(pairs)
        try:
            fields = json.loads(text, object_pairs_hook=unique, parse_float=_FloatText,
                                parse_int=_json_int)
        except RecursionError:      # nested deeper than the parser goes
            raise ValueError(f"DESCEND_PLAN is not valid JSON (nested too deep): "
                             f"{text[:80]!r}...") from None
        except ValueError as exc:
            raise ValueError(_leading_zero(text, exc)
                             or f"DESCEND_PLAN is not valid JSON ({exc}): {text!r}") from None
        if repeated:
            raise ValueError(_repeated_field(repeated[0], text))
        if "source" in fields:      # what a recorded plan says of itself, not a field to force
            raise ValueError(f"DESCEND_PLAN: the fields to force are among {_ALL_FIELDS}, "
                             f"got 'source' in {text!r}")
        if isinstance(fields, dict):
            fields = {name: _json_float(name, value) for name, value in fields.items()}
        return check_plan(fields, "DESCEND_PLAN")
    forced = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if name not in _ALL_FIELDS or not value:
            raise ValueError(f"DESCEND_PLAN: expected name=value with a name among "
                             f"{_ALL_FIELDS}, got {item!r}")
        if name in forced:
            raise ValueError(_repeated_field(name, text))
        if name in ("sparse_input", "by_columns"):
            forced[name] = _SWITCH.get(value.lower(), value)
        else:
            forced[name] = _plain_number(name, value)
    return check_plan(forced, "DESCEND_PLAN")


# The numbers DESCEND_PLAN's name=value form takes: ASCII decimal digits, and
# for the float field a decimal point and an exponent (what JSON allows, sign
# aside). Python's int() and float() also take 1_000, +16, " 16", digits of
# other scripts, nan, inf and hexadecimal floats: not plan values.
_PLAIN_INT = re.compile(r"[0-9]+")
_PLAIN_FLOAT = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPELLED = {"sample_rows": f"an int in [1, {MAX_BLOCK_ROWS}] written in ASCII digits (such as 64)",
            "kernel_rows": f"an int in [1, {MAX_BLOCK_ROWS}] written in ASCII digits (such as 64)",
            "predict_gemm_min_rows": f"an int in [1, {MAX_GEMM_MIN_ROWS}] written in ASCII "
                                     f"digits (such as 64)",
            "predict_sparse_density": "a number in [0, 1] written in ASCII digits (such as 0.3 "
                                      "or 3e-1)"}


def _plain_number(name, text):
    """The value of the numeric DESCEND_PLAN field `name` from its text: an
    int of plain ASCII digits, or for predict_sparse_density a plain decimal
    or exponent float (_finite_float); ValueError naming the field and the
    text for any other spelling."""
    is_float = name == "predict_sparse_density"
    grammar = _PLAIN_FLOAT if is_float else _PLAIN_INT
    if text[:1] == "-" and grammar.fullmatch(text[1:]) and _is_zero(text[1:]):
        raise ValueError(_negative_zero(name, text))
    if not grammar.fullmatch(text):
        raise ValueError(f"DESCEND_PLAN[{name!r}] must be {_SPELLED[name]}, got {text!r}")
    if is_float:
        return _finite_float(name, text)
    try:
        return int(text)
    except ValueError:      # more digits than int() converts (4300): far out of range
        raise ValueError(f"DESCEND_PLAN[{name!r}] must be {_SPELLED[name]}, got "
                         f"{len(text)} digits") from None


def _finite_float(name, text):
    """float(text), or ValueError naming the DESCEND_PLAN field `name` where
    the number is beyond a float64: overflowing to infinity, or underflowing
    to 0 although its digits are not all zeros (1e-400), not to be taken
    silently for another value."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"DESCEND_PLAN[{name!r}]: {text!r} overflows to infinity in a "
                         f"float64")
    if value == 0 and not _is_zero(text):
        raise ValueError(f"DESCEND_PLAN[{name!r}]: {text!r} underflows to 0 in a float64 "
                         f"(write 0 for zero)")
    return value


def _is_zero(text):
    """Whether the digits of a number's text (before any exponent) are all zeros."""
    return not re.search("[1-9]", re.split("[eE]", text)[0])


def _negative_zero(name, text):
    """The message for a zero with a minus sign (-0, -0.0) given for the
    numeric DESCEND_PLAN field `name`, the same in both forms."""
    return (f"DESCEND_PLAN[{name!r}] must be {_SPELLED[name]}, got {text!r} (a negative "
            f"zero: no plan field takes a sign)")


def _leading_zero(text, error):
    """The message for a DESCEND_PLAN JSON text that json.loads refused
    (`error`) at a number with a leading zero (064, 00.5): JSON allows none,
    and its own message ("Expecting ',' delimiter") does not say so. None
    for any other error."""
    at = getattr(error, "pos", 0)
    # json reads a leading 0 as the whole int part and stops at the next digit
    if not (getattr(error, "msg", "") == "Expecting ',' delimiter" and 0 < at < len(text)
            and text[at - 1] == "0" and text[at].isdigit()):
        return None
    start = at - 1 - (text[at - 2:at - 1] == "-")
    number = re.match(r"-?[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?", text[start:]).group()
    field = re.search(r'"([^"\\]*)"\s*:\s*(?:\[[^\[\]]*)?$', text[:start])
    name = field.group(1) if field else None
    without = re.sub(r"^(-?)0+(?=[0-9])", r"\1", number)
    plain = (f"; the name=value form takes {name}={number}"
             if name in _SPELLED and number[0] != "-" else "")
    return (f"DESCEND_PLAN is not valid JSON: {number}"
            + (f" for {name!r}" if name else "")
            + f" has a leading zero, which JSON does not allow (write {without}{plain}): "
            f"{text!r}")


class _FloatText(str):
    """A JSON number with a fraction or exponent, as its text (json.loads'
    parse_float), until the field it belongs to is known."""


class _IntText(str):
    """A JSON int as its text (json.loads' parse_int) where int() would lose
    what it says: more digits than any plan value has (int() refuses 4300
    digits and more), or -0 (its sign)."""


def _json_int(text):
    return _IntText(text) if len(text.lstrip("-")) > 19 or text == "-0" else int(text)


def _json_float(name, value):
    """A top-level DESCEND_PLAN JSON value with its numbers as floats, those
    of the field `name` checked by _finite_float (lists hold no valid floats:
    plain conversion, for check_plan to refuse); ValueError naming the field
    for an int of more digits than any plan value, or a negative zero given
    for a numeric field (as the name=value form)."""
    numbers = value if isinstance(value, list) else [value]
    for number in numbers:
        if (isinstance(number, (_FloatText, _IntText)) and name in _SPELLED
                and number[:1] == "-" and _is_zero(number)):
            raise ValueError(_negative_zero(name, number))
        if isinstance(number, _IntText) and number != "-0":
            raise ValueError(f"DESCEND_PLAN[{name!r}]: an int of {len(number.lstrip('-'))} "
                             f"digits, beyond any plan value")
    if isinstance(value, _FloatText):
        return _finite_float(name, value)
    if name == "predict_sparse_density" and type(value) is int:
        return float(value)     # (a float, as the name=value form gives it)
    numbers = [float(v) if isinstance(v, _FloatText) else int(v) if isinstance(v, _IntText)
               else v for v in numbers]
    return numbers if isinstance(value, list) else numbers[0]


def _repeated_field(name, text):
    return (f"DESCEND_PLAN gives {name!r} more than once (which one is meant?); give "
            f"each field once, got {text!r}")


_last = []


def choose(workload, forced=None):
    """The plan a fit uses: the profile's (or the defaults'), with the fields
    of DESCEND_PLAN and then `forced` on top (predict's fields aside).
    Remembered for describe()."""
    fields = {**forced_from_env(), **{k: v for k, v in (forced or {}).items()
                                      if v is not None}}
    fields = {k: v for k, v in fields.items() if k not in PREDICT_FIELDS}
    plan = plan_for(workload, machine_profile(), fields)
    _last[:] = [(workload, plan)]
    return plan


def last_plan():
    """(workload, plan) of the last fit in this process, or None."""
    return _last[0] if _last else None


def describe():
    """The profile's figures, where it is stored, and the plan of the last
    fit, as readable lines (the "plans" section of ``dn.show_config()``)."""
    section = plans_section()
    return "\n".join(f"{key}: {value}" for key, value in section.items())


def plans_data():
    """The "plans" section as data (``python -m descend info --json``,
    ``dn.show_config(mode="dicts")``): numbers, units in the key names.

    ``profile``: None when profiling is off (or DESCEND_PROFILE is invalid:
    then ``error``, its message), else ``{"path": str or None (not stored),
    "measured_seconds", "load_average" (None where the OS has none),
    "cores", "max_age_days"}``; ``gemm_gflops``: {dtype: {kernel width:
    {rows per block: GFLOP/s}}}, one thread, width x width kernels;
    ``kernel_update_gflops``: {dtype: {batch size: {kernel outputs: {kernel
    rows per block: GFLOP/s}}}}; ``sparse_break_even_density``: {dtype:
    {batch size: fraction of non-zero inputs}} (or one fraction for every
    batch size); ``l2_cache_bytes``: int or None; ``last_plan``: None, or
    the last fit's ``{"plan": Plan.as_dict(), "batch_size", "dtype",
    "layer_shapes": [[n_in, n_out], ...], "input_density"}``. Sizes are
    the profile's keys, strings as JSON needs them.
    """
    try:
        profile = machine_profile()
        section = {"profile": None}
    except ValueError as exc:   # a bad DESCEND_PROFILE: reported, the rest still shown
        profile, section = None, {"profile": None, "error": str(exc)}
    if profile is not None:
        section["profile"] = {"path": profile.get("path"),
                              "measured_seconds": profile["seconds"],
                              "load_average": profile.get("load_average"),
                              "cores": profile.get("cores"),
                              "max_age_days": PROFILE_MAX_AGE_DAYS}
        section["gemm_gflops"] = _floats(profile["gemm"])
        section["kernel_update_gflops"] = _floats(profile.get("gemm_update", {}))
        section["sparse_break_even_density"] = _floats(profile["sparse_break_even"])
        section["l2_cache_bytes"] = profile.get("l2_cache_bytes")
    last = last_plan()
    section["last_plan"] = None
    if last is not None:
        workload, plan = last
        section["last_plan"] = {"plan": plan.as_dict(), "batch_size": workload.batch_size,
                                "dtype": workload.dtype,
                                "layer_shapes": [list(shape) for shape in workload.layer_shapes],
                                "input_density": float(workload.density)}
    return section


def _floats(table):
    """A profile's table ({size: ... {size: figure}}) with its figures as floats."""
    if isinstance(table, dict):
        return {key: _floats(value) for key, value in table.items()}
    return float(table)


def plans_section():
    """The "plans" section of ``dn.show_config()`` / ``python -m descend
    info`` as text (the figures of plans_data): the machine profile (where
    it is stored, its GEMM rates and the sparse first layer's break-even
    density) and the plan of the last fit."""
    data = plans_data()
    profile = data["profile"]
    if "error" in data:
        section = {"profile": f"error: {data['error']}"}
    elif profile is None:
        section = {"profile": "off (DESCEND_PROFILE=0): plans use the defaults"}
    else:
        load = profile["load_average"]
        section = {"profile": f"{profile['path'] or 'in memory'} "
                              f"(measured in {profile['measured_seconds']} s"
                              + (f", load average {load}" if load is not None else "")
                              + f", {profile['cores']} cores; remeasured after "
                              f"{profile['max_age_days']} days or on another core count)"}
        for dtype, table in data["gemm_gflops"].items():
            for width, rates in table.items():
                section[f"{dtype} GEMM GFLOP/s, 1 thread, {width}x{width} kernel"] = \
                    _rates_text(rates)
            for batch, widths in data["kernel_update_gflops"].get(dtype, {}).items():
                for width, rates in widths.items():
                    section[f"{dtype} kernel-update GEMM GFLOP/s, 1 thread, {width} outputs, "
                            f"batch {batch}"] = _rates_text(rates)
            break_even = data["sparse_break_even_density"][dtype]
            if not isinstance(break_even, dict):
                break_even = {"any": break_even}
            section[f"{dtype} sparse first layer faster below"] = ", ".join(
                f"{value:.0%} non-zero inputs at batch {batch}"
                for batch, value in break_even.items())
        l2 = data["l2_cache_bytes"]
        section["L2 cache per core"] = f"{l2 // 1024} KiB" if l2 else "unknown"
    last = data["last_plan"]
    if last is not None:
        shapes = [tuple(shape) for shape in last["layer_shapes"]]
        section["last plan"] = (f"{last['plan']} for batch {last['batch_size']}, "
                                f"{last['dtype']}, layers {shapes}, "
                                f"input density {last['input_density']:.2f}")
    return section


def _rates_text(rates):
    """'4 rows 56, 16 rows 39, ...' of {rows: GFLOP/s}."""
    return ", ".join(f"{rows} rows {rate:.0f}" for rows, rate in rates.items())


register_section("plans", plans_section, data=plans_data)
