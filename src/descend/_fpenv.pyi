"""Typed signatures of descend._fpenv (compiled from csrc/descend/_fpenv.pyx):
the x86 MXCSR flush-to-zero / denormals-are-zero flags of the calling thread
and of descend's OpenMP threads (descend.flush_subnormals uses them)."""
import numpy as np
from numpy.typing import NDArray

FLUSH_BITS: int

def available() -> bool:
    """True where the flush-to-zero control exists (x86 with SSE2)."""

def get_mxcsr() -> int:
    """The calling thread's MXCSR (0 where there is none)."""

def team_mxcsr(n_threads: int) -> NDArray[np.uintc]:
    """MXCSR of each thread of a team of n_threads, by OpenMP thread number."""

def set_flush(flush: bool, n_threads: int) -> tuple[int, NDArray[np.uintc]]:
    """Set (or clear) FTZ and DAZ in the caller and a team; returns what to restore."""

def restore(caller: int, saved: NDArray[np.uintc]) -> None:
    """Put back the MXCSR values that `set_flush` returned."""
