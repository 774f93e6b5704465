"""Typed signatures of descend._losses (compiled from csrc/descend/_losses.pyx).

`loss` is a descend._contract.Loss code; arrays are C-contiguous, of one
float dtype per call (labels: int32).
"""
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

_F = TypeVar("_F", np.float32, np.float64)

def softmax_py(logits: NDArray[_F], proba: NDArray[_F], n_threads: int) -> None:
    """proba := softmax(logits) row by row (max-shifted), in place."""

def loss_and_gradient_py(loss: int, output: NDArray[_F], target: NDArray[_F] | None,
                         labels: NDArray[np.int32] | None, grad: NDArray[_F] | None,
                         grad_scale: float, n_threads: int) -> float:
    """Summed loss (float64); fills grad (unless None) with grad_scale * dL/doutput."""

def mean_scale_py(loss: int, n: int, k: int) -> float:
    """1 / n (softmax_cross_entropy) or 1 / (n k) (the others)."""
