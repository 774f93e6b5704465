"""Typed signatures of descend._openmp (compiled from csrc/descend/_openmp.pyx)."""

def openmp_enabled() -> bool:
    """True when the kernels were compiled with OpenMP."""

def effective_n_threads(n_threads: int | None = None) -> int:
    """Number of OpenMP threads to use (None or -1: all usable cores; -k: all but k - 1)."""
