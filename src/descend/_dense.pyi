"""Typed signatures of descend._dense (compiled from csrc/descend/_dense.pyx).

The def twins of the Dense layer kernels. Arrays are C-contiguous, all of
one dtype (float32 or float64) per call; outputs are written in place.
`activation` is a descend._contract.Activation code.
"""
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

_F = TypeVar("_F", np.float32, np.float64)

def dense_forward_py(x: NDArray[_F], w: NDArray[_F], b: NDArray[_F] | None, z: NDArray[_F],
                     a: NDArray[_F], activation: int, alpha: float, n_threads: int) -> None:
    """z := x . w + b ; a := act(z), in place. b may be None."""

def dense_backward_py(x: NDArray[_F], w: NDArray[_F], z: NDArray[_F], a: NDArray[_F],
                      dz: NDArray[_F], dw: NDArray[_F], db: NDArray[_F] | None,
                      dx: NDArray[_F] | None, activation: int, alpha: float,
                      n_threads: int) -> None:
    """Backpropagate through one Dense layer, in place (dz: dL/da in, dL/dz out)."""

def dropout_py(out: NDArray[_F], inp: NDArray[_F], rate: float, seed: int,
               n_threads: int, first_row: int = 0) -> None:
    """out := inp * mask / (1 - rate) for the mask given by seed (in place ok)."""

def dropout_seed_py(epoch_seed: int, batch: int, layer: int) -> int:
    """Seed of the dropout mask of (batch, layer) within an epoch."""

def activation_forward_py(z: NDArray[_F], a: NDArray[_F], activation: int,
                          alpha: float) -> None:
    """a := act(z) elementwise."""

def activation_derivative_py(z: NDArray[_F], a: NDArray[_F], d: NDArray[_F],
                             activation: int, alpha: float) -> None:
    """d := act'(z) elementwise, given a = act(z)."""

def gemm_row_blocks_py(x: NDArray[_F], w: NDArray[_F], z: NDArray[_F], rows: int) -> None:
    """z[i:i+rows] := x[i:i+rows] . w for each block of `rows` rows."""

def forward_rows_py(x: NDArray[_F], kernels: tuple[NDArray[_F], ...],
                    biases: tuple[NDArray[_F] | None, ...], activations: tuple[int, ...],
                    alphas: tuple[float, ...], link: int,
                    n_threads: int) -> NDArray[_F] | None:
    """The network's output after its link (0 none, 1 sigmoid, 2 softmax) for
    the rows of x, every layer in one call; None if a value is not finite or
    the arrays do not fit together."""
