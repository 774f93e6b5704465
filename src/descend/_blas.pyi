"""Typed signatures of descend._blas (compiled from csrc/descend/_blas.pyx).

The memoryview twins of the BLAS wrappers: arrays are C-contiguous, of one
dtype (float32 or float64) per call, and written in place.
"""
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

_F = TypeVar("_F", np.float32, np.float64)

def gemm_py(trans_a: bool, trans_b: bool, alpha: float, a: NDArray[_F], b: NDArray[_F],
            beta: float, c: NDArray[_F]) -> None:
    """C := alpha * op(A) . op(B) + beta * C, in place on C (row-major)."""

def gemv_py(a: NDArray[_F], x: NDArray[_F], y: NDArray[_F]) -> None:
    """y := A . x, in place on y (A row-major, (len(y), len(x))); ValueError
    if the shapes do not agree."""
