# Flush-to-zero / denormals-are-zero for descend's threads (x86 MXCSR).
#
# Arithmetic on subnormal floats (|x| < 1.2e-38 in float32) takes a slow
# microcode path on x86: a fit on inputs scaled by 1e-37 ran 13x slower.
# Two MXCSR bits make the SSE/AVX units treat subnormal inputs as zero (DAZ,
# bit 6) and flush subnormal results to zero (FTZ, bit 15). MXCSR is
# per-thread, so the bits are set in the calling thread and in every thread
# of an OpenMP team (a static schedule of one iteration per thread), and each
# thread's previous value is restored afterwards. Elsewhere (ARM, ...) the
# functions report that they are unavailable and change nothing.
from cython.parallel cimport prange, threadid

import numpy as np

FLUSH_BITS = DESCEND_FLUSH_BITS     # FTZ (bit 15) | DAZ (bit 6); _fpenv.pxd


def available():
    """True where the flush-to-zero control exists (x86 with SSE2)."""
    return DESCEND_HAVE_MXCSR


def get_mxcsr():
    """The calling thread's MXCSR (0 where there is none)."""
    return descend_get_mxcsr()


def team_mxcsr(int n_threads):
    """MXCSR of each thread of a team of n_threads, by OpenMP thread number."""
    cdef unsigned int[::1] values = np.zeros(n_threads, dtype=np.uintc)
    cdef Py_ssize_t i
    for i in prange(n_threads, nogil=True, num_threads=n_threads, schedule="static",
                    chunksize=1):
        values[threadid()] = descend_get_mxcsr()
    return np.asarray(values).copy()


def set_flush(bint flush, int n_threads):
    """Set (or clear) FTZ and DAZ in the caller and in a team of n_threads.

    Returns
    -------
    (int, ndarray of uintc)
        The caller's previous MXCSR and each team thread's, for `restore`.
    """
    cdef unsigned int bits = FLUSH_BITS
    cdef unsigned int[::1] saved = np.zeros(n_threads, dtype=np.uintc)
    cdef Py_ssize_t i
    cdef int t
    caller = descend_get_mxcsr()
    with nogil:
        for i in prange(n_threads, num_threads=n_threads, schedule="static", chunksize=1):
            t = threadid()
            saved[t] = descend_get_mxcsr()
            if flush:
                descend_set_mxcsr(saved[t] | bits)
            else:
                descend_set_mxcsr(saved[t] & ~bits)
        if flush:
            descend_set_mxcsr(descend_get_mxcsr() | bits)
        else:
            descend_set_mxcsr(descend_get_mxcsr() & ~bits)
    return caller, np.asarray(saved).copy()


def restore(unsigned int caller, unsigned int[::1] saved):
    """Put back the MXCSR values that `set_flush` returned."""
    cdef Py_ssize_t i
    cdef int n = saved.shape[0]
    with nogil:
        for i in prange(n, num_threads=n, schedule="static", chunksize=1):
            descend_set_mxcsr(saved[threadid()])
        descend_set_mxcsr(caller)
