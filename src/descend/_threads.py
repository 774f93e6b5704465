"""Threading plan: OpenMP threads and BLAS threads, never both at once.

OpenBLAS keeps its threads spinning for a while after each call; if OpenMP
threads run at the same time, the cores are oversubscribed and a batch of 32
runs about 140x slower. So every compiled region runs under a plan with
OpenMP threads > 1 and BLAS limited to one thread (threadpoolctl), or with
OpenMP on one thread. descend's own loops get the cores: the compiled epoch
cuts each batch into blocks of samples and of kernel rows and calls
single-threaded BLAS on each, which beat multi-threaded BLAS on these small
GEMMs and, unlike it, stays fast when other processes load the machine.
threadpoolctl is a required dependency for that reason (as in scikit-learn).
"""
import contextlib

from threadpoolctl import ThreadpoolController

from descend._openmp import effective_n_threads
from descend._validation import check_n_threads

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
    return effective_n_threads(check_n_threads(n_threads)), 1


@contextlib.contextmanager
def blas_threads(n):
    """Limit BLAS to n threads inside the block (no-op for None)."""
    if n is None:
        yield
        return
    if not _controller:
        # scanning the loaded libraries is the slow part: do it once
        _controller.append(ThreadpoolController())
    with _controller[0].limit(limits=n, user_api="blas"):
        yield
