"""Typed signatures of descend._contract (compiled from csrc/descend/_contract.pyx):
the codes and the layer spec shared by the Python layer and the kernels."""
from collections.abc import Sequence
from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

__all__ = ["Activation", "Loss", "OptimizerKind", "Strategy", "LayerSpec"]

class Activation(IntEnum):
    """Activation codes of the kernels."""
    IDENTITY = 0
    SIGMOID = 1
    TANH = 2
    RELU = 3
    LEAKY_RELU = 4
    ELU = 5
    SOFTPLUS = 6
    GELU = 7

class Loss(IntEnum):
    """Loss codes of the kernels."""
    MEAN_SQUARED_ERROR = 0
    BINARY_CROSS_ENTROPY = 1
    SOFTMAX_CROSS_ENTROPY = 2

class OptimizerKind(IntEnum):
    """Update rules of the kernels."""
    SGD = 0
    ADAGRAD = 1
    RMSPROP = 2
    ADAM = 3

class Strategy(IntEnum):
    """The batch paths of descend._train.EpochRunner."""
    PER_SAMPLE_SGD = 0
    TEAM_GEMM_SGD = 1
    TEAM_GENERAL = 2
    TEAM_BY_COLUMNS = 3

_FloatArray = NDArray[np.float32] | NDArray[np.float64]

class LayerSpec:
    """One Dense layer as the compiled epoch loop sees it (checked when built)."""

    @property
    def kernel(self) -> _FloatArray: ...
    @property
    def bias(self) -> _FloatArray | None: ...
    @property
    def kernel_state(self) -> tuple[_FloatArray, ...]: ...
    @property
    def bias_state(self) -> tuple[_FloatArray, ...]: ...
    @property
    def activation(self) -> int: ...
    @property
    def alpha(self) -> float: ...
    @property
    def dropout_rate(self) -> float: ...
    @property
    def kernel_l1(self) -> float: ...
    @property
    def kernel_l2(self) -> float: ...
    @property
    def bias_l1(self) -> float: ...
    @property
    def bias_l2(self) -> float: ...
    @property
    def kernel_l1_proximal(self) -> bool: ...
    @property
    def bias_l1_proximal(self) -> bool: ...
    @property
    def decay_bias(self) -> bool: ...
    def __init__(self, kernel: _FloatArray, bias: _FloatArray | None,
                 kernel_state: Sequence[_FloatArray] | None = (),
                 bias_state: Sequence[_FloatArray] | None = (), *,
                 activation: Activation | int = Activation.IDENTITY, alpha: float = 0.0,
                 dropout_rate: float = 0.0, kernel_l1: float = 0.0, kernel_l2: float = 0.0,
                 bias_l1: float = 0.0, bias_l2: float = 0.0, kernel_l1_proximal: bool = False,
                 bias_l1_proximal: bool = False, decay_bias: bool = False) -> None: ...
