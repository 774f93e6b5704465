# How many threads descend's OpenMP loops may use.
#
# Compiled without OpenMP, the build still works: the C preprocessor block
# below replaces the OpenMP runtime calls with single-threaded stubs, and the
# first request for more than one thread warns once that it runs on one.
import os
import warnings

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define DESCEND_OPENMP_ENABLED 1
    #else
    #define DESCEND_OPENMP_ENABLED 0
    static int omp_get_max_threads(void) { return 1; }
    #endif
    """
    bint DESCEND_OPENMP_ENABLED
    int omp_get_max_threads() nogil


def openmp_enabled():
    """True when the kernels were compiled with OpenMP.

    Returns
    -------
    bool
        False for a build whose compiler had no OpenMP: every kernel then
        runs on one thread whatever ``n_threads`` says.
    """
    return bool(DESCEND_OPENMP_ENABLED)


_warned_without_openmp = False


def _warn_once_without_openmp(requested):
    """Warn (once per process) that `requested` (> 1) threads will be one.

    Called by ``effective_n_threads`` in builds without OpenMP; a def of its
    own so that tests can exercise it in any build.
    """
    global _warned_without_openmp
    if requested > 1 and not _warned_without_openmp:
        _warned_without_openmp = True
        warnings.warn(
            f"descend was built without OpenMP, so it trains on 1 thread instead of "
            f"the {requested} asked for (`python -m descend info` shows the build; "
            f"install a wheel, or rebuild with a compiler that has OpenMP: see the "
            f"README's 'Building from source').", RuntimeWarning, stacklevel=3)


def _usable_cpus():
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return max(os.cpu_count() or 1, 1)


def effective_n_threads(n_threads=None):
    """Number of OpenMP threads to use.

    Parameters
    ----------
    n_threads : int or None
        None (or -1): all usable cores, i.e. the smaller of OMP_NUM_THREADS
        (through ``omp_get_max_threads``) and the CPUs this process may run on
        (its affinity mask). A positive int is used as given. ``-k`` means
        "all usable cores but k - 1", as in scikit-learn / joblib.

    Returns
    -------
    int
        At least 1; always 1 without OpenMP (the first request for more
        then warns once, with a RuntimeWarning).

    Raises
    ------
    TypeError
        ``n_threads`` is not an int or None.
    ValueError
        ``n_threads`` is 0.
    """
    if n_threads is not None and (isinstance(n_threads, bool)
                                  or not isinstance(n_threads, int)):
        raise TypeError(f"n_threads must be an int or None, got {n_threads!r}")
    if n_threads == 0:
        raise ValueError("n_threads must be a positive int, -1 or None, got 0")
    if not DESCEND_OPENMP_ENABLED:
        # what an OpenMP build would have used (OMP_NUM_THREADS read by hand:
        # the stub cannot)
        usable = _usable_cpus()
        if os.environ.get("OMP_NUM_THREADS", "").strip().isdigit():
            usable = min(usable, max(int(os.environ["OMP_NUM_THREADS"]), 1))
        requested = n_threads if n_threads is not None and n_threads > 0 else \
            max(1, usable + 1 + (n_threads or -1))
        _warn_once_without_openmp(requested)
        return 1
    usable = max(min(omp_get_max_threads(), _usable_cpus()), 1)
    if n_threads is None:
        return usable
    if n_threads < 0:
        return max(1, usable + 1 + n_threads)
    return n_threads
