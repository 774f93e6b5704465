"""Threading plan: which of OpenMP and BLAS gets the cores, never both.

OpenBLAS keeps its threads spinning for a while after each call; if OpenMP
threads run at the same time, the cores are oversubscribed and a batch of 32
runs about 140x slower. So every compiled region runs under a plan with
either OpenMP threads > 1 and BLAS limited to 1 thread (threadpoolctl), or
OpenMP on 1 thread and BLAS on its own threads. Without threadpoolctl BLAS
cannot be limited, so OpenMP stays on one thread (correct, slower).
"""
import contextlib
import warnings

from descend._openmp import effective_n_threads

try:
    from threadpoolctl import ThreadpoolController, threadpool_limits
except ImportError:  # pragma: no cover - exercised only without the extra
    threadpool_limits = None

# Up to this batch size, BLAS on all threads with our own loops serial was
# measured fastest; above it, BLAS on one thread and the GEMMs split by rows.
SMALL_BATCH = 8
_warned = []


def plan(batch_size, n_threads=None):
    """(openmp_threads, blas_threads) for a batch of this size."""
    total = effective_n_threads(n_threads)
    if threadpool_limits is None:
        if total > 1 and not _warned:
            _warned.append(True)
            warnings.warn("descend: threadpoolctl is not installed, so descend's "
                          "own loops run on one thread (pip install descend[fast]).",
                          RuntimeWarning, stacklevel=3)
        return 1, None
    if batch_size <= SMALL_BATCH:
        return 1, total
    return total, 1


@contextlib.contextmanager
def blas_threads(n):
    """Limit BLAS to n threads inside the block (no-op for None)."""
    if n is None or threadpool_limits is None:
        yield
    else:
        with _controller().limit(limits=n, user_api="blas"):
            yield


_controllers = []


def _controller():
    """One ThreadpoolController, built at first use (as scikit-learn does).

    Building one scans every loaded shared library (~0.8 ms, more than a
    small forward pass); blas_threads runs on every per-layer call, so the
    scan is done once. descend's BLAS (scipy's) is loaded at import time.
    """
    if not _controllers:
        _controllers.append(ThreadpoolController())
    return _controllers[0]
