"""Threading plan: OpenMP threads and BLAS threads, never both at once.

OpenBLAS keeps its threads spinning for a while after each call; if OpenMP
threads run at the same time, the cores are oversubscribed and a batch of 32
runs about 140x slower. So every compiled region runs under a plan with
OpenMP threads > 1 and BLAS limited to one thread (threadpoolctl), or with
OpenMP on one thread. descend's own loops get the cores: the compiled epoch
cuts each batch into blocks of samples and of kernel rows and calls
single-threaded BLAS on each, which beat multi-threaded BLAS on these small
GEMMs and, unlike it, stays fast when other processes load the machine.
Without threadpoolctl BLAS cannot be limited, so OpenMP stays on one thread
(correct, slower).
"""
import contextlib
import warnings

from descend._openmp import effective_n_threads
from descend._validation import check_n_threads

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover - exercised only without the extra
    ThreadpoolController = None

_warned = []
_controller = []


def plan(batch_size, n_threads=None):
    """(openmp_threads, blas_threads) for work on batches of `batch_size` rows.

    Parameters
    ----------
    batch_size : int
        Rows per batch (kept for plans that depend on it).
    n_threads : int or None
        None: all usable cores (see ``effective_n_threads``).
    """
    total = effective_n_threads(check_n_threads(n_threads))
    if ThreadpoolController is None:
        if total > 1 and not _warned:
            _warned.append(True)
            warnings.warn("descend: threadpoolctl is not installed, so descend's "
                          "own loops run on one thread (pip install descend[fast]).",
                          RuntimeWarning, stacklevel=3)
        return 1, None
    return total, 1


@contextlib.contextmanager
def blas_threads(n):
    """Limit BLAS to n threads inside the block (no-op for None)."""
    if n is None or ThreadpoolController is None:
        yield
        return
    if not _controller:
        # scanning the loaded libraries is the slow part: do it once
        _controller.append(ThreadpoolController())
    with _controller[0].limit(limits=n, user_api="blas"):
        yield
