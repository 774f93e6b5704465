"""Typed signatures of descend._sparse (compiled from csrc/descend/_sparse.pyx).

The first layer's kernels for mostly-zero inputs: they skip the zero
entries of x. Arrays are C-contiguous, of one float dtype per call.
"""
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

_F = TypeVar("_F", np.float32, np.float64)

ISA: str
"""The row loops in use: "avx512", "avx2" or "portable"."""

def cpu_features() -> dict[str, bool]:
    """{"avx2": bool (with FMA), "avx512f": bool}: what the row loops dispatch on."""

def nonzero_entries_py(
        x: NDArray[_F]) -> tuple[NDArray[np.int32], NDArray[_F], NDArray[np.int32]]:
    """(index, value, count) of x's rows: row i's non-zero columns are
    index[i, :count[i]], their values value[i, :count[i]]."""

def sparse_forward_py(x: NDArray[_F], w: NDArray[_F], b: NDArray[_F] | None, z: NDArray[_F],
                      a: NDArray[_F], activation: int, alpha: float) -> None:
    """z := x . w + b ; a := act(z), computed from x's non-zero entries only."""

def forward_rows_sparse_py(x: NDArray[_F], kernels: tuple[NDArray[_F], ...],
                           biases: tuple[NDArray[_F] | None, ...], activations: tuple[int, ...],
                           alphas: tuple[float, ...], link: int, n_threads: int,
                           gemm_min_rows: int) -> NDArray[_F] | None:
    """forward_rows_py's result with a sparse first layer (row loops; the
    other layers too on blocks of fewer than gemm_min_rows rows, no BLAS
    then); None if a value is not finite or the arrays do not fit."""

def sparse_grad_kernel_py(x: NDArray[_F], dz: NDArray[_F], out: NDArray[_F], row_begin: int,
                          row_end: int, scale: float) -> None:
    """out[r] += scale * (x^T . dz)[r] for r in [row_begin, row_end), in place."""

def update_rows_py(x: NDArray[_F], scale: float, dz: NDArray[_F], w: NDArray[_F]) -> None:
    """w[i, :] += (scale * x[i]) * dz for the non-zero x[i], in place (the
    per-sample SGD step); ValueError if w is not (len(x), len(dz)) or empty."""

class SparseLayerRun:
    """The first layer's work on x's rows as the fused epoch does it with plain
    SGD, batch by batch, sparse or dense (descend.plans times the two against
    each other)."""

    def __init__(self, x: NDArray[_F], w: NDArray[_F], dz: NDArray[_F], dense: bool = False,
                 batch_size: int | None = None, sample_rows: int = 64,
                 kernel_rows: int | None = None) -> None: ...
    def outputs(self) -> tuple[NDArray[_F], NDArray[_F]]:
        """(z, out): the forward product of the last call, and w after every
        call's update."""
    def __call__(self) -> None:
        """Run the work once, without the GIL."""
