# How many threads descend's OpenMP loops may use.
#
# Compiled without OpenMP, the build still works: the C preprocessor block
# below replaces the OpenMP runtime calls with single-threaded stubs.
import os

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
    """True when the kernels were compiled with OpenMP."""
    return DESCEND_OPENMP_ENABLED


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
        At least 1; always 1 without OpenMP.

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
        return 1
    usable = omp_get_max_threads()
    if hasattr(os, "sched_getaffinity"):
        usable = min(usable, len(os.sched_getaffinity(0)))
    usable = max(usable, 1)
    if n_threads is None:
        return usable
    if n_threads < 0:
        return max(1, usable + 1 + n_threads)
    return n_threads
