"""Typed signatures of descend._train (compiled from csrc/descend/_train.pyx):
the whole mini-batch loop of an epoch in one compiled call."""
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from descend._contract import LayerSpec

_F = TypeVar("_F", np.float32, np.float64)
_FloatArray = NDArray[np.float32] | NDArray[np.float64]

def check_runner_inputs(X: _FloatArray, targets: _FloatArray | None,
                        labels: NDArray[np.int32] | None, layers: Sequence[LayerSpec],
                        optimizer_config: dict[str, Any], n_threads: int,
                        batch_size: int,
                        sample_weight: NDArray[np.float64] | None = None) -> None:
    """Every size and index the compiled loop will trust, checked once."""

PADDED_COPY_ROWS: int     # rows between two copies of the padded kernels, at least
CACHE_LINE: int           # bytes a padded kernel's rows are longer by
ALIASED_ROW_BYTES: int    # kernels whose row bytes are a multiple of this run padded
CHUNK_BATCHES: int        # the most batches run between two returns to Python

class TeamSize:
    """Threads for the next chunk of batches: all of them, or one (measured)."""

    RETRY_SHARE: float
    n_threads: int
    key: tuple[int, Hashable]
    best: int
    seconds: dict[int, float]
    spent: float
    retrying: int | None
    warm: bool
    busy: Callable[[], bool | None]
    one_thread_seconds: float | None
    def __init__(self, n_threads: int, workload: Hashable = None,
                 busy: Callable[[], bool | None] | None = None,
                 one_thread_seconds: float | None = None) -> None: ...
    def choose(self) -> int:
        """The team size for the next chunk."""
    def record(self, team: int, seconds_per_batch: float, n_batches: int = 1) -> None:
        """What a chunk run with `team` threads took per batch."""

class EpochRunner:
    """Compiled training epochs over fixed data, layers and optimizer."""

    @property
    def sparse_input(self) -> bool: ...
    @property
    def padded_layers(self) -> tuple[int, ...]:
        """The layers whose kernels the epochs run from a padded working copy."""
    @property
    def plan(self) -> dict[str, Any]: ...
    @property
    def team(self) -> TeamSize: ...
    @property
    def strategy(self) -> str:
        """"per_sample_sgd", "team_gemm_sgd", "team_general" or "team_by_columns"."""
    def __init__(self, X: _FloatArray, targets: _FloatArray | None,
                 labels: NDArray[np.int32] | None, layers: list[LayerSpec], loss: int,
                 optimizer_config: dict[str, Any], clipnorm: float, global_clipnorm: float,
                 clipvalue: float, batch_size: int, n_threads: int,
                 sparse_input: bool | None = None,
                 plan: dict[str, Any] | None = None,
                 sample_weight: NDArray[np.float64] | None = None) -> None: ...
    def run_epoch(self, order: NDArray[np.intp], learning_rate: float, weight_decay: float,
                  step: int, seed: int, progress: Callable[[int, float], object] | None = None,
                  progress_every: int = 0,
                  start: tuple[float, float, float, float] | None = None,
                  first_batch: int = 0, hook_every: int = 0) -> dict[str, Any]:
        """Train one epoch over the rows of X in `order` (`start`: the sums to go on from;
        `first_batch`: the epoch's index of its first batch; progress at the epoch's
        multiples of progress_every and of hook_every)."""
    def set_distributed(self, allreduce_address: int, datatype: int, op: int, comm: int,
                        rank: int, size: int, global_batch: int) -> None:
        """Train as rank `rank` of `size`: one MPI_Allreduce a step from the loop."""
    def distributed_stats(self) -> dict[str, float | int] | None:
        """The allreduce's seconds, calls and bytes per step since set_distributed."""

def penalize_py(value: NDArray[_F], grad: NDArray[_F], l1: float, l2: float,
                proximal: bool) -> float:
    """Penalty l1 sum|w| + l2 sum w^2 of one array; its gradient added into grad."""

def kernel_penalty_py(stored: NDArray[_F], n_out: int, grad: NDArray[_F], l1: float,
                      l2: float) -> float:
    """The fused loop's kernel penalty, row by row over rows stored.shape[1] apart."""

def count_correct_py(loss: int, output: NDArray[_F], targets: NDArray[_F] | None,
                     labels: NDArray[np.int32] | None,
                     weights: NDArray[np.float64] | None = None) -> int | float:
    """Correct predictions of a batch (0 for regression); with weights, the
    sum of the correct samples' weights (a float)."""
