"""Typed signatures of descend._optim (compiled from csrc/descend/_optim.pyx).

`config` is an optimizer's kernel_config() dict (kind: a
descend._contract.OptimizerKind, and its hyperparameters); arrays are 1-D,
C-contiguous, of one float dtype per call, updated in place.
"""
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

_F = TypeVar("_F", np.float32, np.float64)

def optimizer_step_py(config: dict[str, Any], w: NDArray[_F], g: NDArray[_F],
                      s1: NDArray[_F] | None, s2: NDArray[_F] | None, s3: NDArray[_F] | None,
                      learning_rate: float, weight_decay: float, step: int,
                      n_threads: int) -> None:
    """Update w in place (and the state arrays s1, s2, s3 the kind reads)."""

def required_state(config: dict[str, Any]) -> set[str]:
    """Names of the state arrays (s1, s2, s3) the update reads for this config."""

def make_config_py(config: dict[str, Any]) -> dict[str, Any]:
    """The C struct of an optimizer's settings (as a dict), from its config dict."""

def add_penalty_gradient_py(w: NDArray[_F], g: NDArray[_F], l1: float, l2: float,
                            n_threads: int) -> float:
    """g += l1 sign(w) + 2 l2 w in place; returns l1 sum|w| + l2 sum w^2."""

def sum_squares_py(g: NDArray[_F], n_threads: int) -> float:
    """Sum of squares of g (float64)."""

def scale_and_clip_py(g: NDArray[_F], scale: float, clipvalue: float, n_threads: int) -> None:
    """g := clip(scale g, -clipvalue, clipvalue) in place (no clip if clipvalue <= 0)."""

def soft_threshold_py(w: NDArray[_F], threshold: float, n_threads: int) -> None:
    """w := sign(w) max(|w| - threshold, 0) in place (threshold >= 0)."""

def clip_scale_py(bound: float, norm_squared: float) -> float:
    """min(1, bound / sqrt(norm_squared)): the factor of clipping by norm."""
