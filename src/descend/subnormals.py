"""Flush subnormal numbers to zero while descend computes (x86).

Subnormal floats (0 < |x| < 1.18e-38 in float32, 2.2e-308 in float64) take
a slow microcode path on x86 CPUs: a fit on float32 inputs scaled by 1e-37
runs 13x slower than on the same inputs unscaled (see
``bench/test_subnormal_bench.py``). Data this small is usually a units
mistake (rescale it), but when it is not, :func:`flush_subnormals` sets the
CPU's FTZ and DAZ flags so that subnormal inputs count as zero and subnormal
results become zero, at full speed. Results then differ from the default
only where a subnormal number occurs (it is replaced by a zero of its sign).
"""
import contextlib

from descend import _fpenv, _threads


@contextlib.contextmanager
def flush_subnormals(n_threads=None):
    """Treat subnormal floats as zero inside the block (FTZ and DAZ).

    The flags are per-thread CPU state: they are set in the calling thread
    and in the OpenMP threads descend's loops run on from it, and every
    thread's previous state is restored when the block exits, whatever
    happens in it. numpy code run in the block by the calling thread is
    affected too, and so are threads it starts in the block (they inherit
    the state); other threads are not. Blocks nest. Where the CPU has no such control (not x86),
    the block changes nothing and computes as without it.

    Parameters
    ----------
    n_threads : int or None
        How many OpenMP threads to set (None: all usable cores, as
        ``Sequential(n_threads=None)``); at least the ``n_threads`` of the
        networks used in the block.

    Examples
    --------
    >>> with descend.flush_subnormals():                # doctest: +SKIP
    ...     net.fit(X_tiny, y, epochs=5)
    """
    if not _fpenv.available():
        yield
        return
    omp, _ = _threads.plan(1, n_threads)
    caller, saved = _fpenv.set_flush(True, omp)
    try:
        yield
    finally:
        _fpenv.restore(caller, saved)
