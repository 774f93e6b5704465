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
                         grad_scale: float, n_threads: int,
                         weight: NDArray[np.float64] | None = None) -> float:
    """Summed loss sum_i w_i l_i (float64); fills grad (unless None) with
    grad_scale * w_i * dl_i/doutput_i (weight None: all 1)."""

def mean_scale_py(loss: int, total_weight: float, k: int) -> float:
    """1 / W (softmax_cross_entropy) or 1 / (W k) (the others), W the number
    of samples or the sum of their weights; 0 for W = 0."""
