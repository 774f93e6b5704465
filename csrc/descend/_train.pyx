# The whole mini-batch loop of an epoch in one compiled call.
#
# For each batch: gather the rows of the shuffled order, forward through all
# layers (dropout included), fused loss and gradient, backward through all
# layers, penalties, clipping and the optimizer update of every parameter
# array. No Python runs per batch, except a progress call every
# `progress_every` batches, which is also where Ctrl-C is noticed. Every
# buffer is allocated once, when the EpochRunner is built at the start of fit,
# on a 64-byte boundary (descend._aligned: the vector loops' loads then do
# not straddle cache lines; results do not depend on it).
# The kernels are the same cdef functions the per-layer Python path calls,
# except the sparse first layer below: the loop knows the density of all of
# X before it starts, the per-layer path sees one batch at a time.
#
# Threads. One OpenMP team runs a whole chunk of batches, so the cost of
# starting threads is paid once per chunk, not once per kernel. Each batch
# has two phases separated by barriers:
#   A. by samples: thread t owns rows [r0, r1) of the batch and runs the
#      forward pass, the loss and the backward pass to dL/dz of every layer
#      on them (rows are independent, so no thread waits for another);
#   B. by parameters: thread t owns the blocks of kernel rows the deal gives
#      it (_deal_blocks: by cost, so that whole layers balance too) and a
#      slice of each bias, computes dW = X^T dZ for them over all rows of
#      the batch, then adds the penalty and updates them (elementwise).
# Barrier 1 separates A from B (B reads every row of dZ, and A reads the
# weights B is about to change); barrier 2 ends the batch. Clipping by norm
# needs all gradients before any update: one more barrier, only then.
# BLAS runs on one thread inside the team (the caller limits it), one GEMM
# per block of the plan (OpenBLAS packs the weights, or dZ, once per call:
# cutting a block into 256-row calls packed them again, 10-15% of a wide
# net's epoch); the kernels called with n_threads=1 open no nested parallel
# region (_dense.pyx, SERIAL).
#
# Inputs that are mostly zeros (MNIST: ~81% of the pixels) take the first
# layer through the sparse kernels of _sparse.pyx: phase A copies the rows
# as the dense path does, and both the forward product (rows four at a time,
# over the union of their non-zero columns) and the kernel's gradient
# (samples listed per four kernel rows, read off the copied rows) skip the
# zeros (their sums then run in another order: results equal the dense
# path's up to rounding, and still do not depend on the number of threads).
#
# Wide kernels (team_by_columns): when a kernel no longer fits a core's L2
# cache, phase A by samples has every core stream all the weights for its
# own rows. This strategy runs each layer over all rows of the batch
# instead, thread t computing its blocks of the layer's output columns
# (one GEMM against that slice of the kernel, which stays in its cache),
# with a barrier between layers; backward, the thread that owns kernel
# rows [k0, k1) computes the previous layer's dL/dz on columns [k0, k1)
# and then updates those rows. The blocks depend on the shapes and the
# core count only, so the results do not depend on n_threads. (Threaded
# BLAS on the whole batch would be simpler, but OpenBLAS's sgemm gives
# other bits on 2 threads than on 1 for some shapes, e.g. K = 784.)
#
# Batch size 1 with plain SGD has its own path: per sample, the forward
# lists each layer's non-zero inputs once (MNIST pixels are ~80% zero, ReLU
# outputs about half) and both the forward and the update go through those
# rows only (_sparse's dispatched loops; one BLAS gemv for dL/da).
#
# Sample weights (fit's sample_weight, class_weight) enter at one place, the
# loss kernel (_losses.weighted_loss_and_gradient): each batch's loss is
# sum_i w_i l_i / sum_i w_i, so dL/dz carries the weights and everything
# after it (backward, penalties, clipping, every update path) is unchanged.
# The batch's weight sum is computed by every thread (same order, same bits);
# a batch of weight 0 has loss and gradient 0. Without weights the pointer
# is NULL and the kernels multiply by exactly 1.0: the same bits as before.
#
# Layout. EpochRunner (a cdef class) builds the loop's state once per fit
# and runs epochs (run_epoch -> _run: chunks of batches, a team size per
# chunk); all it runs in the loop are module-level `noexcept nogil`
# functions that take that state, a LoopState struct, as `loop`. Sections,
# in this order: the state and its setup; EpochRunner; the team strategies
# (_team_batches: a batch's phase A, barrier, phase B, barrier); phase A by
# samples; team_by_columns; phase B's updates; clipping by norm;
# distributed; per_sample_sgd; the formulas on one slice of an array.
#
# Strategies. _choose_strategy picks one Strategy (a cpdef enum
# of _contract.pxd) once, when the runner is built, by one rule:
#   the plan says by_columns, no dropout, no clipping by norm,
#       and not the PER_SAMPLE_SGD case below  -> TEAM_BY_COLUMNS
#   plain SGD (momentum 0, no clipping) and no L1 anywhere
#       -> batch 1, no L2 and no dropout anywhere: PER_SAMPLE_SGD
#       -> otherwise:                               TEAM_GEMM_SGD
#   anything else                                -> TEAM_GENERAL
# (an epoch given a weight decay runs PER_SAMPLE_SGD's work as TEAM_GEMM_SGD).
# sparse_input and by_norm are variants inside the team strategies; the plan
# (descend.plans) decides sparse_input and the block sizes. `runner.strategy`
# names the strategy ("per_sample_sgd", ...).
#
# | strategy / variant  | runs when                                   | code                      | pinned by                                   |
# |---------------------|---------------------------------------------|---------------------------|---------------------------------------------|
# | per_sample_sgd      | batch 1, plain SGD (momentum 0), no clip-   | _per_sample_sgd (_forward,| test_network: stochastic_plain_sgd_equals_  |
# |                     | ping, dropout, penalty; epoch without decay | _backward_update)         | per_layer_path; test_plans: the_runner_     |
# |                     |                                             |                           | names_its_strategy                          |
# | team_gemm_sgd       | plain SGD, no clipping, no L1, not the row  | _team_batches (phase A:   | test_network: fused_fit_equals_train_on_    |
# |                     | above (L2 / weight decay fold into GEMM's   | _samples_forward_backward)| batch_loop, fused_paths_equal_the_per_      |
# |                     | beta; dropout allowed)                      | + _gemm_sgd_update        | layer_path_on_wide_layers; test_plans       |
# | team_general        | every other optimizer / setting (momentum,  | _team_batches             | test_network: fused_paths_equal_the_per_    |
# |                     | Adagrad, RMSprop, Adam, clipping, L1)       | + _general_update         | layer_path_on_wide_layers (sgd_l1, momentum)|
# |                     |                                             |                           | fused_fit_equals_train_on_batch_loop        |
# | team_by_columns     | plan by_columns (a kernel larger than a     | _columns_forward, _columns| test_plans: by_columns_*                    |
# |                     | core's L2 and the profile's rates favour    | _product, _columns_       | (per-layer path, any thread count, the      |
# |                     | it), no dropout, no clipnorm; any optimizer | backward (update as the   | rule); test_network: fused_paths_equal_     |
# |                     | (plain SGD updates through GEMM)            | two rows above)           | the_per_layer_path_on_wide_layers           |
# | + sparse_input      | plan: input density below the profile's     | _sparse_first_layer,      | test_sparse: sparse_and_dense_first_layer_  |
# |                     | break-even at the batch size (defaults:     | _sparse_grad (_sparse:    | train_the_same; test_plans: every_plan_*    |
# |                     | 35%), no input dropout                      | sparse_rows_forward, ...) |                                             |
# | + by_norm (clip)    | team_general with clipnorm or               | _update_by_norm,          | test_formulas: the_python_driver_steps_as_  |
# |                     | global_clipnorm > 0                         | _clip_scales              | the_fused_loop; test_network (clipnorm)     |
# | team size 1 or T    | TeamSize: measured per chunk (same bits)    | _run                      | test_threads; test_network: fused_fit_is_   |
# |                     |                                             |                           | bit_identical_for_any_thread_count          |
# | + padded copies     | a kernel's rows a multiple of 2 KB apart,   | _padded_copies,           | test_padded_copies (same bits; what         |
# |                     | not the sparse first layer, no clipping by  | EpochRunner._use_copies   | callbacks, signal handlers and exceptions   |
# |                     | norm, not batch 1's path or distributed;    | (copied in and out around | see; which layers)                          |
# |                     | >= 1024 rows between copies                 | each chunk in _run)       |                                             |
# | + distributed       | set_distributed (descend.distributed: X in  | _team_batches' share,     | test_distributed: weights_equal_the_one_    |
# |                     | memory, not sharded, >= 1 row per rank and  | _sum_over_ranks (one      | process_run_* [compiled], resume_*, files_* |
# |                     | step); forces team_general                  | MPI_Allreduce a step)     |                                             |
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport parallel, threadid
from cpython.exc cimport PyErr_CheckSignals
from libc.math cimport sqrt, isfinite
from libc.stdlib cimport malloc, free, calloc
from libc.string cimport memcpy, memset
from libc.stdint cimport uint64_t, intptr_t

import os
import time

import numpy as np

from descend import _aligned
from descend._threads import OtherJobsLoad
from descend._blas cimport gemm, gemv
from descend._dense cimport (dense_forward_block, activation_backward,
                             dense_grad_params, dropout, descend_mix,
                             bias_activation_row, activation_backward_columns)
from descend._sparse cimport (nonzero_entries, sparse_forward, update_rows,
                              sparse_rows_forward, sparse_grad_kernel, sparse_scratch_ints,
                              sparse_scratch_values)
from descend._contract cimport (OptimizerConfig, SGD, IDENTITY, MEAN_SQUARED_ERROR,
                               SOFTMAX_CROSS_ENTROPY, BINARY_CROSS_ENTROPY, LayerSpec,
                               Strategy, PER_SAMPLE_SGD, TEAM_GEMM_SGD, TEAM_GENERAL,
                               TEAM_BY_COLUMNS)
from descend._contract import Strategy as _Strategy
from descend._losses cimport weighted_loss_and_gradient, mean_scale
from descend._optim cimport (optimizer_step, Lanes, lanes_total, clear_lanes, add_penalty_lanes,
                             sum_squares_lanes, sum_abs_lanes, sum_squares, scale_and_clip,
                             make_config_py, soft_threshold, clip_scale)
from descend._optim import required_state

cnp.import_array()

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static inline void descend_barrier(void) {
        #pragma omp barrier
    }
    static inline int descend_team_size(void) { return omp_get_num_threads(); }
    #else
    static inline void descend_barrier(void) {}
    static inline int descend_team_size(void) { return 1; }
    #endif
    """
    void barrier "descend_barrier"() noexcept nogil
    int team_size "descend_team_size"() noexcept nogil

# MPI_Allreduce, called through the address of the function in the MPI library
# that mpi4py loaded (descend.distributed looks it up at run time): the wheel
# needs no MPI to build. Handles (MPI_Datatype, MPI_Op, MPI_Comm) are ints in
# MPICH's ABI and pointers in Open MPI's and the MPI 5 ABI: passed as intptr_t,
# which fills the same argument register either way on the 64-bit ABIs.
cdef extern from *:
    """
    #include <stdint.h>
    typedef int (*descend_allreduce_fn)(const void*, void*, int, intptr_t, intptr_t,
                                        intptr_t);
    static inline int descend_allreduce(void* fn, const void* send, void* recv, int count,
                                        intptr_t datatype, intptr_t op, intptr_t comm) {
        return ((descend_allreduce_fn)fn)(send, recv, count, datatype, op, comm);
    }
    """
    int call_allreduce "descend_allreduce"(void* fn, const void* send, void* recv,
                                           int count, intptr_t datatype, intptr_t op,
                                           intptr_t comm) noexcept nogil

# A wall clock without the GIL, for the time spent inside MPI_Allreduce:
# omp_get_wtime with OpenMP, C11 timespec_get without.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static inline double descend_wall_seconds(void) { return omp_get_wtime(); }
    #else
    #include <time.h>
    static inline double descend_wall_seconds(void) {
        struct timespec now;
        timespec_get(&now, TIME_UTC);
        return (double)now.tv_sec + 1e-9 * (double)now.tv_nsec;
    }
    #endif
    """
    double wall_seconds "descend_wall_seconds"() noexcept nogil

# Per-thread accumulators, padded to their own cache line (no false sharing).
cdef enum:
    SLOT = 8
    ACC_LOSS = 0        # sum over batches of (loss + penalty share) * batch size
    ACC_PENALTY = 1     # sum over batches of the penalty share
    CORRECT = 2         # correct predictions so far (their weights' sum, if weighted)
    ACC_WEIGHT = 3      # the batches' total weight (sample_weight), thread 0

# Work is cut into blocks whose size depends on the shapes (and the plan,
# descend.plans) only, never on the number of threads: each BLAS call then
# sees the same operands whatever the team size, so n_threads=1 and
# n_threads=2 give bit-identical weights.


def _choose_plan(X, layers, batch_size, n_threads, cores, optimizer_config, forced,
                 sparse_input):
    """The runner's plan as a dict (descend.plans.Plan.as_dict()): the
    caller's `forced` fields (a dict, or a Plan's dict) and `sparse_input`
    override the choice from the machine's profile."""
    from descend import plans
    forced = dict(forced or {})
    forced.pop("source", None)
    if sparse_input is not None:
        forced["sparse_input"] = bool(sparse_input)
    input_dropout = (<LayerSpec>layers[0]).dropout_rate > 0
    density = 1.0
    if "sparse_input" not in forced and not input_dropout and X.size:
        density = np.count_nonzero(X) / X.size
    workload = plans.Workload(
        layer_shapes=tuple(spec.kernel.shape for spec in layers), dtype=str(X.dtype),
        batch_size=batch_size, density=density, cores=cores,
        optimizer_kind=optimizer_config.get("kind", 0), input_dropout=input_dropout)
    return plans.choose(workload, forced).as_dict()


cdef struct Param:
    # one parameter array (a kernel or a bias), its gradient and optimizer state
    void* value
    void* grad
    void* state1
    void* state2
    void* state3
    long size
    double l1, l2           # penalty on this array (0: none)
    bint proximal           # L1 by a proximal step after the update, not in the gradient
    double decay            # 1 if the optimizer's weight decay applies, else 0


cdef struct LayerPlan:
    int n_in, n_out, activation
    int kernel_rows         # rows of the kernel per phase-B block
    int first_block         # phase-B blocks of the layers before this one
    int out_columns         # team_by_columns: output columns per forward block
    double alpha
    double dropout_rate     # on this layer's input; 0: none
    Param kernel
    Param bias              # bias.value is NULL when use_bias=False
    void* z                 # (batch, n_out) pre-activation
    void* a                 # (batch, n_out) activation (== z for identity)
    void* dz                # (batch, n_out) dL/da, then dL/dz
    void* dropped           # (batch, n_in) the input after dropout
    int ldk                 # kernel.value's row stride: n_out, or more in a padded
                            # working copy (EpochRunner._use_copies)


cdef inline void* data(object array) except? NULL:
    """Address of a C-contiguous array's data; None -> NULL."""
    if array is None:
        return NULL
    if not (<cnp.ndarray>array).flags.c_contiguous:
        raise ValueError("internal error: buffer is not C-contiguous")
    return cnp.PyArray_DATA(<cnp.ndarray>array)


cdef inline int part(int n, int t, int parts) noexcept nogil:
    """Start of part t when [0, n) is cut into `parts` near-equal parts."""
    return <int>((<long>n * t) // parts)


def check_runner_inputs(X, targets, labels, layers, optimizer_config, n_threads,
                        batch_size, sample_weight=None):
    """Every size and index the compiled loop will trust, checked once: a
    wrong one would read or write outside the buffers. Each LayerSpec checked
    its own arrays when it was built; here, how they fit X and each other."""
    if n_threads < 1 or batch_size < 1:
        raise ValueError(f"n_threads and batch_size must be >= 1, got {n_threads}, "
                         f"{batch_size}")
    if X.ndim != 2 or X.dtype not in (np.float32, np.float64):
        raise TypeError("X must be a 2-D float32 or float64 array")
    if not layers:
        raise ValueError("at least one layer is needed")
    n, width = X.shape
    # state slots are positional (s1, s2, s3): the highest one read decides
    needed = max([int(slot[1]) for slot in required_state(optimizer_config)], default=0)
    for i, spec in enumerate(layers):
        if not isinstance(spec, LayerSpec):
            raise TypeError(f"layers[{i}] must be a descend._contract.LayerSpec, got "
                            f"{type(spec).__name__}")
        kernel = spec.kernel
        if kernel.shape[0] != width or kernel.dtype != X.dtype:
            raise ValueError(f"layer {i}: kernel {kernel.shape} {kernel.dtype} does not take "
                             f"{width} {X.dtype} inputs")
        width = kernel.shape[1]
        for name, state in (("kernel", spec.kernel_state), ("bias", spec.bias_state)):
            if (name == "kernel" or spec.bias is not None) and len(state) < needed:
                raise ValueError(f"layer {i}: the optimizer needs {needed} state arrays "
                                 f"shaped like the {name}, got {len(state)}")
    if targets is not None and (targets.shape != (n, width) or targets.dtype != X.dtype):
        raise ValueError(f"targets must be ({n}, {width}) {X.dtype}")
    if labels is not None:
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},)")
        if n and (labels.min() < 0 or labels.max() >= width):
            raise ValueError(f"labels must be class ids in [0, {width})")
    if targets is None and labels is None:
        raise ValueError("targets or labels are needed")
    if sample_weight is not None and (
            sample_weight.shape != (n,) or sample_weight.dtype != np.float64
            or not sample_weight.flags.c_contiguous):
        raise ValueError(f"sample_weight must be a contiguous float64 array of shape ({n},)")


def _check_runner_settings(targets, labels, loss, clipnorm, global_clipnorm, clipvalue,
                           n_threads, sparse_input):
    """The settings the loop trusts besides sizes: a loss code it knows, with
    the encoding that loss reads (labels for softmax cross-entropy, targets
    for the others: the loop dereferences that one), clip thresholds >= 0,
    a team size libgomp accepts."""
    from descend._contract import Loss
    from descend._validation import check_team_size
    if loss not in [int(code) for code in Loss]:
        raise ValueError(f"loss must be one of the descend._contract.Loss codes "
                         f"{[int(code) for code in Loss]}, got {loss}")
    if loss == SOFTMAX_CROSS_ENTROPY and labels is None:
        raise ValueError("loss SOFTMAX_CROSS_ENTROPY reads labels: labels must not be None")
    if loss != SOFTMAX_CROSS_ENTROPY and targets is None:
        raise ValueError(f"loss {Loss(loss).name} reads targets: targets must not be None")
    for name, value in (("clipnorm", clipnorm), ("global_clipnorm", global_clipnorm),
                        ("clipvalue", clipvalue)):
        if not value >= 0:      # NaN fails too
            raise ValueError(f"{name} must be >= 0 (0: off), got {value}")
    check_team_size(n_threads)
    if sparse_input is not None and not isinstance(sparse_input, (bool, np.bool_)):
        raise TypeError(f"sparse_input must be True, False or None, got {sparse_input!r}")


class TeamSize:
    """Threads for the next chunk of batches: all of them, or one.

    On shared cores a team of threads that meets at barriers twice a batch
    can run many times slower than one thread when another process holds a
    core: each barrier then waits for a descheduled thread (measured here
    with a 2-thread numpy job running: 25 ms a batch for the team against
    0.13 ms for one thread, digits, batch 32). So training runs the choice
    that has been faster per batch, and now and then retries the other one
    for a single batch. A retry is due once the time spent since the last
    one reaches the retry's expected cost (the other choice's last time per
    batch) divided by RETRY_SHARE: retries then cost at most that share of
    the training time, however slow the other choice is, and come often
    when it is cheap. The first retry of one thread comes right after the
    first timed chunk when other jobs hold the cores (`busy`, by default a
    descend._threads.OtherJobsLoad, says so or cannot tell); on idle cores it
    follows the same rule, its cost taken as n_threads times the team's
    time per batch (one thread doing the team's work), or
    `one_thread_seconds` (an estimate of one batch's work on one thread,
    from the machine's profile: plans.one_thread_batch_seconds) if less: a fit of a few batches
    then does not run one of them on one thread for nothing (one batch in
    ten at batch 1024 on 10000 rows), and a team slowed by a load that
    `busy` has not seen yet (it needs 0.2 s) gives way after a batch or two.
    What was learned is remembered across fits in this process, for the
    same workload. The first chunk of a fit is not timed: it pays for
    first touches of new buffers. The weights do not depend on the choice:
    work is cut into blocks whose size does not depend on the number of
    threads.
    """
    RETRY_SHARE = 0.05
    _memory = {}    # (n_threads, workload) -> (preferred team, {team: seconds per batch})

    def __init__(self, n_threads, workload=None, busy=None, one_thread_seconds=None):
        """workload: a hashable description of the work per batch (shapes,
        batch size, dtype): what was learned holds for the same workload.
        busy: a function returning whether other jobs hold the cores now
        (True, False, or None: unknown); default descend._threads.OtherJobsLoad.
        one_thread_seconds: an estimate of a batch on one thread, or None."""
        self.n_threads = n_threads
        self.one_thread_seconds = one_thread_seconds
        self.busy = OtherJobsLoad(n_threads) if busy is None else busy
        self.key = (n_threads, workload)
        best, seconds = TeamSize._memory.get(self.key, (n_threads, {}))
        self.best = best
        self.seconds = dict(seconds)    # the preferred: running mean; the other: last retry
        self.spent = 0.0                # seconds on the preferred choice since the last retry
        self.retrying = None            # the team of the chunk under way, if a retry
        self.warm = False               # the first chunk (cold caches, new buffers) is not timed

    def choose(self):
        """Threads for the next chunk; if it is a retry (self.retrying is then
        set), the chunk should be a single batch."""
        if self.n_threads == 1:
            return 1
        other = 1 if self.best != 1 else self.n_threads
        if other not in self.seconds:
            # nothing known of it yet: at once if the cores are busy (or that
            # is unknown), else when its cost, at most n_threads batches'
            # worth of the team's time (or one_thread_seconds), is
            # RETRY_SHARE of the time spent
            cost = self.seconds.get(self.best, 0.0) * self.n_threads
            if self.one_thread_seconds is not None:
                cost = min(cost, self.one_thread_seconds)
            due = self.best in self.seconds and (
                self.busy() is not False or self.spent * self.RETRY_SHARE >= cost)
        else:
            due = self.spent * self.RETRY_SHARE >= self.seconds[other]
        self.retrying = other if due else None
        return other if due else self.best

    def record(self, team, seconds_per_batch, n_batches=1):
        """The chunk just run: its team, its seconds per batch and batches."""
        if not self.warm:
            self.warm = True
            self.retrying = None
            return
        if team == self.retrying:
            # a fresh measurement replaces the old one (the load may have changed)
            self.seconds[team] = seconds_per_batch
            self.retrying = None
            self.spent = 0.0
            if self.best not in self.seconds or seconds_per_batch < self.seconds[self.best]:
                self.best = team
        else:
            previous = self.seconds.get(team)
            self.seconds[team] = (seconds_per_batch if previous is None
                                  else 0.5 * previous + 0.5 * seconds_per_batch)
            self.spent += seconds_per_batch * n_batches
        TeamSize._memory[self.key] = (self.best, dict(self.seconds))

# ---- the loop's state, built once per fit (with the GIL) ---------------------
cdef struct LoopState:
    # What the compiled loop reads and writes, passed as `loop` to every
    # nogil function below: the layers, the batch's buffers and the settings.
    # The pointers point into arrays that the EpochRunner keeps alive.
    LayerPlan* plans            # one per Dense layer
    int n_layers
    int batch_size
    int n_threads
    int loss                    # a descend._contract.Loss code
    int n_outputs
    long n_rows                 # rows of X
    bint is_float32
    int sample_rows             # rows of a batch per phase-A block
    int* block_owner            # phase B: the thread of each kernel-row block (_deal_blocks)
    int dealt_team              # the team size block_owner was dealt for (0: none yet)
    int* owner_table            # block_owner for teams of 1..n_threads, n_blocks each
    int n_blocks                # phase-B blocks of the net
    bint sparse_input           # the first layer's input goes through _sparse
    bint by_norm                # clipping by norm (clipnorm or global_clipnorm)
    bint columns_sgd            # team_by_columns updates as team_gemm_sgd (else team_general)
    OptimizerConfig config
    double clipnorm, global_clipnorm, clipvalue
    double* partials            # per-thread accumulators, SLOT doubles each
    double* block_loss          # mean-loss share of each sample block of a batch
    double* block_correct       # correct predictions (or their weights) of each block
    double* clip_scales         # per parameter array (2 per layer), for clipping by norm
    double* penalties           # the batch's penalty of each phase-B block, then of each
                                # layer's bias: summed in this order (any team, same bits)
    # data and batch buffers
    void* X
    void* targets
    int* labels
    void* x_batch
    void* targets_batch
    int* labels_batch
    # sample weights (NULL: all 1, and no work for them) and the batch's
    double* weights
    double* weights_batch
    # the sparse kernels' scratch (sparse_input), per thread: scratch_size
    # ints and scratch_values values
    int* grad_scratch
    void* grad_values
    long scratch_size, scratch_values
    # the per-sample path (PER_SAMPLE_SGD): each layer's non-zero inputs, found
    # by the forward and used again by the update; layer l's n_in entries
    # start at the sum of the earlier layers' n_in
    int* sample_index
    void* sample_values
    int* sample_count           # per layer: how many
    # distributed (set_distributed): this rank's share of each global batch, its
    # gradients summed over the ranks by one MPI_Allreduce a step, from the loop
    int dist_rank, dist_size    # dist_size 0: not distributed
    long global_batch
    void* allreduce_fn
    intptr_t mpi_datatype, mpi_op, mpi_comm
    void* flat                  # every gradient array, then the batch's loss
    void* send                  # its copy, sent (no MPI_IN_PLACE: ABI-specific)
    long flat_size
    double allreduce_seconds    # wall time inside MPI_Allreduce, and its calls
    long allreduce_calls


cdef inline void _deal_blocks(LoopState* loop, int T) noexcept nogil:
    """Phase-B blocks to the T threads of a team: block_owner becomes the
    deal for T threads, worked out at setup by descend.plans.deal_blocks
    (by cost: each block of the net, in order, to the thread with the least
    rows x outputs so far, so that whole layers balance too; the plan's
    model of phase B counts the same deal). Which thread runs a block does
    not change its bits."""
    loop.block_owner = loop.owner_table + <long>(T - 1) * loop.n_blocks
    loop.dealt_team = T


cdef inline int _next_row(LoopState* loop, LayerPlan* p, int t, int k0) noexcept nogil:
    """The first kernel row of thread t's next phase-B block of a layer after
    the block that starts at row k0 (k0 = -p.kernel_rows: its first one);
    p.n_in when it has no more (the deal: _deal_blocks)."""
    cdef int b = (k0 + p.kernel_rows) // p.kernel_rows
    while b * p.kernel_rows < p.n_in and loop.block_owner[p.first_block + b] != t:
        b = b + 1
    return min(b * p.kernel_rows, p.n_in)


cdef Strategy _choose_strategy(LoopState* loop, list layers, bint by_columns) except *:
    """The one rule that picks the batch path (the table at the top); sets
    loop.columns_sgd."""
    cdef LayerSpec spec
    cdef bint l1 = False, penalty_or_dropout = False
    for spec in layers:
        l1 = l1 or spec.kernel_l1 != 0 or spec.bias_l1 != 0
        penalty_or_dropout = (penalty_or_dropout or spec.kernel_l1 != 0 or spec.bias_l1 != 0
                              or spec.kernel_l2 != 0 or spec.bias_l2 != 0
                              or spec.dropout_rate > 0)
    plain_sgd = (loop.config.kind == SGD and loop.config.momentum == 0
                 and loop.clipnorm == 0 and loop.global_clipnorm == 0
                 and loop.clipvalue == 0)
    dropout = any(spec.dropout_rate > 0 for spec in layers)
    loop.columns_sgd = plain_sgd and not l1
    if by_columns and not dropout and not loop.by_norm and not (
            loop.columns_sgd and loop.batch_size == 1 and not penalty_or_dropout):
        return TEAM_BY_COLUMNS
    if not plain_sgd or l1:
        return TEAM_GENERAL
    if loop.batch_size == 1 and not penalty_or_dropout:
        return PER_SAMPLE_SGD
    return TEAM_GEMM_SGD


# Padded working copies. A kernel whose rows lie a multiple of 2 KB apart
# (512 float32 columns, 256 float64, or a multiple) starts every row in the
# same one or two sets of a core's L1 cache (set = address bits 6-11 on the
# x86-64 cores we ran on: 48 or 32 KB, 12 or 8 ways). BLAS packs a product's
# weight operand a cache line from each of many rows in turn; those lines
# then evict each other before the next is read. perf of 784-1024-1024-10,
# dense input, batch 256, one thread, AMD EPYC (Zen 4): OpenBLAS's packing
# of a non-transposed operand (sgemm_itcopy: the weights of the forward
# product, dZ of the update) 16% of the epoch; its GEMM of 128 rows against
# a 1024 x 1024 kernel 62 -> 71 GFLOP/s (forward) and 67 -> 79 (dL/dx)
# with rows one cache line longer. So the loop runs such kernels from a
# copy with rows one cache line longer, the same products on the same
# values (the same bits),
# copied in before each chunk of batches and back to the layer's array
# after it (EpochRunner._run): Python runs between chunks (progress
# callbacks, signal handlers; other threads then) and may read or set the
# weights. The penalties' sums go row by row, on from row to row (the
# bits of one flat sum). Not where other paths read the kernel as one flat
# array: clipping by norm, the sparse first layer, batch 1's per-sample
# path and distributed steps keep the layer's array; so does a kernel
# that several layers share.
PADDED_COPY_ROWS = 1024     # rows between two copies, at least: the copies (2 n_in
                            # n_out elements) then cost under ~1% of the
                            # products between them (6 rows n_in n_out FLOPs)
CACHE_LINE = 64
ALIASED_ROW_BYTES = 2048
CHUNK_BATCHES = 64          # the most batches _run runs between two returns to Python


cdef list _padded_copies(LoopState* loop, list layers, Strategy strategy):
    """[layer, kernel, None] for each kernel the team strategies run from a
    padded working copy (see above); EpochRunner._use_copies allocates the
    copy in place of the None when a run first uses it. A kernel that
    several layers share (tied weights, trained as one array) keeps its
    array: one copy per layer would each write it back over the other."""
    if strategy == PER_SAMPLE_SGD or loop.by_norm:
        return []
    kernels = [(<LayerSpec>spec).kernel for spec in layers]
    itemsize = kernels[0].itemsize
    return [[l, kernels[l], None] for l in range(loop.n_layers)
            if (loop.plans[l].n_out * itemsize) % ALIASED_ROW_BYTES == 0
            and not (l == 0 and loop.sparse_input)
            and sum(kernel is kernels[l] for kernel in kernels) == 1]


cdef _allocate_batch_buffers(LoopState* loop, X, targets, labels, list keep_alive):
    """The batch's rows, its targets or labels, the sparse kernels' scratch
    and the per-thread accumulators."""
    cdef int batch_size = loop.batch_size
    cdef int sample_blocks = (batch_size + loop.sample_rows - 1) // loop.sample_rows
    dtype, width, sparse = X.dtype, X.shape[1], loop.sparse_input
    x_batch = _aligned.empty((batch_size, width), dtype)
    # the sparse kernels' scratch, per thread
    loop.scratch_size = sparse_scratch_ints(batch_size, width)
    loop.scratch_values = sparse_scratch_values(batch_size, width)
    grad_scratch = (_aligned.empty((loop.n_threads, loop.scratch_size), np.int32)
                    if sparse else None)
    grad_values = (_aligned.empty((loop.n_threads, loop.scratch_values), dtype)
                   if sparse else None)
    targets_batch = (None if targets is None else
                     _aligned.empty((batch_size, targets.shape[1]), dtype))
    labels_batch = None if labels is None else np.empty(batch_size, dtype=np.int32)
    weights_batch = None if loop.weights == NULL else np.empty(batch_size)
    keep_alive.extend([x_batch, targets_batch, labels_batch, grad_scratch, grad_values,
                       weights_batch])
    loop.weights_batch = <double*>data(weights_batch)
    loop.grad_scratch, loop.grad_values = <int*>data(grad_scratch), data(grad_values)
    loop.x_batch, loop.targets_batch = data(x_batch), data(targets_batch)
    loop.labels_batch = <int*>data(labels_batch)
    loop.plans = <LayerPlan*>malloc(loop.n_layers * sizeof(LayerPlan))
    loop.partials = <double*>calloc(loop.n_threads * SLOT, sizeof(double))
    loop.block_loss = <double*>calloc(2 * sample_blocks, sizeof(double))
    loop.block_correct = loop.block_loss + sample_blocks    # the same allocation
    loop.clip_scales = <double*>calloc(2 * loop.n_layers, sizeof(double))
    if (loop.plans == NULL or loop.partials == NULL or loop.block_loss == NULL
            or loop.clip_scales == NULL):
        raise MemoryError()


cdef _allocate_per_sample(LoopState* loop, dtype, list keep_alive):
    """The per-sample path's lists of each layer's non-zero inputs."""
    inputs = sum(loop.plans[l].n_in for l in range(loop.n_layers))
    index = np.zeros(inputs, np.int32)
    values = _aligned.empty(inputs, dtype)
    count = np.zeros(loop.n_layers, np.int32)
    keep_alive.extend([index, values, count])
    loop.sample_index, loop.sample_values = <int*>data(index), data(values)
    loop.sample_count = <int*>data(count)


cdef _fill_layers(LoopState* loop, list layers, dtype, kernel_rows, int cores,
                  list keep_alive):
    """One LayerPlan per LayerSpec: its parameters, their gradient buffers
    and the batch's activation buffers. kernel_rows: the plan's, per layer."""
    cdef int i, blocks = 0
    cdef LayerPlan* p
    cdef LayerSpec spec
    for i, spec in enumerate(layers):
        p = &loop.plans[i]
        p.n_in, p.n_out = spec.kernel.shape[0], spec.kernel.shape[1]
        p.kernel_rows = kernel_rows[i]
        p.first_block = blocks
        blocks += (p.n_in + p.kernel_rows - 1) // p.kernel_rows
        # a core's share of the outputs, in whole cache lines of float32
        share = (p.n_out + cores - 1) // cores
        p.out_columns = min(p.n_out, (share + 15) // 16 * 16)
        p.activation, p.alpha, p.dropout_rate = spec.activation, spec.alpha, spec.dropout_rate
        _fill_param(&p.kernel, spec.kernel, spec.kernel_state, spec.kernel_l1,
                    spec.kernel_l2, spec.kernel_l1_proximal, 1.0, keep_alive)
        p.ldk = p.n_out
        _fill_param(&p.bias, spec.bias, spec.bias_state, spec.bias_l1, spec.bias_l2,
                    spec.bias_l1_proximal, 1.0 if spec.decay_bias else 0.0, keep_alive)
        z = _aligned.empty((loop.batch_size, p.n_out), dtype)
        # identity layers need no separate activation buffer
        a = z if p.activation == IDENTITY else _aligned.empty(z.shape, dtype)
        dz = _aligned.empty(z.shape, dtype)
        dropped = (_aligned.empty((loop.batch_size, p.n_in), dtype)
                   if p.dropout_rate > 0 else None)
        keep_alive.extend([z, a, dz, dropped])
        p.z, p.a, p.dz, p.dropped = data(z), data(a), data(dz), data(dropped)
    # the deal of phase B's blocks for every team size a chunk may run with
    from descend import plans
    shapes = [(loop.plans[i].n_in, loop.plans[i].n_out) for i in range(loop.n_layers)]
    rows = [loop.plans[i].kernel_rows for i in range(loop.n_layers)]
    table = np.array([plans.deal_blocks(shapes, rows, team)
                      for team in range(1, loop.n_threads + 1)],
                     dtype=np.int32).reshape(loop.n_threads, blocks)
    penalties = np.zeros(blocks + loop.n_layers)
    keep_alive.extend([table, penalties])
    loop.owner_table, loop.n_blocks = <int*>data(table), blocks
    loop.penalties = <double*>data(penalties)
    _deal_blocks(loop, loop.n_threads)


cdef _fill_param(Param* param, value, tuple state, double l1, double l2, bint proximal,
                 double decay, list keep_alive):
    """param from a parameter array (or None), its optimizer state, penalty
    and weight-decay factor; its gradient buffer is allocated here."""
    grad = None if value is None else _aligned.empty(value.shape, value.dtype)
    slots = list(state) + [None] * (3 - len(state))
    keep_alive.extend([value, grad] + slots)
    param.value = data(value)
    param.grad = data(grad)
    param.state1, param.state2, param.state3 = data(slots[0]), data(slots[1]), data(slots[2])
    param.size = 0 if value is None else value.size
    param.l1, param.l2, param.proximal, param.decay = l1, l2, proximal, decay


cdef _gradients_into_flat(LoopState* loop, list keep_alive):
    """Distributed: one flat buffer holds every gradient array (they become
    views of it) and, last, the batch's loss; `send` is its copy."""
    cdef int l
    cdef long offset = 0, itemsize = 4 if loop.is_float32 else 8
    cdef LayerPlan* p
    loop.flat_size = 1
    for l in range(loop.n_layers):
        loop.flat_size += loop.plans[l].kernel.size + loop.plans[l].bias.size
    flat = _aligned.full(loop.flat_size, np.float32 if loop.is_float32 else np.float64, 0)
    send = _aligned.empty(flat.shape, flat.dtype)
    keep_alive.extend([flat, send])
    loop.flat, loop.send = data(flat), data(send)
    for l in range(loop.n_layers):
        p = &loop.plans[l]
        p.kernel.grad = <char*>loop.flat + offset * itemsize
        offset += p.kernel.size
        if p.bias.value != NULL:
            p.bias.grad = <char*>loop.flat + offset * itemsize
            offset += p.bias.size


cdef class EpochRunner:
    """Compiled training epochs over fixed data, layers and optimizer.

    Built once per fit by descend.Sequential; holds references to every
    array it writes so that the raw pointers it keeps stay valid. Weights
    must be changed in place (Sequential.set_weights does so). The batch
    paths are the nogil functions below, over the runner's LoopState.
    """
    cdef LoopState loop
    cdef Strategy _strategy     # the batch path, chosen once by _choose_strategy
    cdef readonly dict plan     # the descend.plans.Plan fields this runner uses
    cdef list keep_alive        # every array the loop's pointers point into
    cdef readonly object team   # TeamSize: threads per chunk, adapted to the load
    cdef list copies            # [layer, kernel, padded copy or None]: _padded_copies

    def __cinit__(self):
        memset(&self.loop, 0, sizeof(LoopState))

    def __dealloc__(self):
        free(self.loop.plans)
        free(self.loop.partials)
        free(self.loop.block_loss)
        free(self.loop.clip_scales)

    def __init__(self, X, targets, labels, list layers, int loss,
                 dict optimizer_config, double clipnorm, double global_clipnorm,
                 double clipvalue, int batch_size, int n_threads, sparse_input=None,
                 plan=None, sample_weight=None):
        """
        X (n, d), targets (n, k) or None, labels (n,) int32 or None;
        layers: one descend._contract.LayerSpec per Dense layer (built by
        descend.training.runner_specs). n_threads: the OpenMP team size.
        sparse_input: True/False forces the first layer's sparse kernels on
        or off (never under dropout on the input). plan: a dict of
        descend.plans.Plan fields (sparse_input, sample_rows, kernel_rows)
        to force; the others come from descend.plans.choose (the machine's
        profile, DESCEND_PLAN). The plan used is the `plan` attribute.
        sample_weight: (n,) float64 weights >= 0, or None (all 1): each
        batch's loss is then sum_i w_i l_i / sum_i w_i (descend._sample_weight).
        """
        cdef LoopState* loop = &self.loop
        _check_runner_settings(targets, labels, loss, clipnorm, global_clipnorm, clipvalue,
                               n_threads, sparse_input)
        check_runner_inputs(X, targets, labels, layers, optimizer_config, n_threads,
                            batch_size, sample_weight)
        if labels is not None and labels.dtype != np.int32:
            raise TypeError("internal error: labels must be int32")
        # Blocks are cut per core of the machine (not per thread used), so
        # that they, and the results, do not change with n_threads.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
        loop.is_float32 = X.dtype == np.float32
        loop.n_rows = X.shape[0]
        loop.n_layers = len(layers)
        loop.batch_size = batch_size
        loop.n_threads = max(1, n_threads)
        loop.loss = loss
        loop.config = make_config_py(optimizer_config)
        loop.clipnorm, loop.global_clipnorm, loop.clipvalue = (clipnorm, global_clipnorm,
                                                               clipvalue)
        loop.by_norm = clipnorm > 0 or global_clipnorm > 0
        # (wraparound is off in compiled code: no negative indices)
        loop.n_outputs = (<LayerSpec>layers[len(layers) - 1]).kernel.shape[1]
        # the blockings and the first layer's path: from descend.plans (the
        # machine's measured profile, or the defaults), unless given
        self.plan = _choose_plan(X, layers, batch_size, loop.n_threads, cores,
                                 optimizer_config, plan, sparse_input)
        loop.sparse_input = self.plan["sparse_input"]
        loop.sample_rows = self.plan["sample_rows"]
        from descend import plans
        shapes = tuple(spec.kernel.shape for spec in layers)
        self.team = TeamSize(loop.n_threads, (
            batch_size, str(X.dtype), loss, bool(loop.sparse_input),
            tuple((spec.kernel.shape, spec.activation, spec.dropout_rate)
                  for spec in layers)),
            one_thread_seconds=plans.one_thread_batch_seconds(shapes, str(X.dtype),
                                                              batch_size))
        self.keep_alive = [X, targets, labels, sample_weight]
        loop.X, loop.targets, loop.labels = data(X), data(targets), <int*>data(labels)
        loop.weights = <double*>data(sample_weight)
        _allocate_batch_buffers(loop, X, targets, labels, self.keep_alive)
        _fill_layers(loop, layers, X.dtype, self.plan["kernel_rows"], max(1, cores),
                     self.keep_alive)
        self._strategy = _choose_strategy(loop, layers, bool(self.plan.get("by_columns")))
        self.copies = _padded_copies(loop, layers, self._strategy)
        if self._strategy == PER_SAMPLE_SGD:
            _allocate_per_sample(loop, X.dtype, self.keep_alive)
        # the plan records what runs: by columns only where the strategy allows it
        self.plan["by_columns"] = self._strategy == TEAM_BY_COLUMNS

    def set_distributed(self, allreduce_address, datatype, op, comm, int rank, int size,
                        long global_batch):
        """Train as rank `rank` of `size`: step s of an epoch is global batch s
        of `order` (global_batch rows), this runner computes the gradient of its
        contiguous share (rows [nb rank / size, nb (rank + 1) / size)), and one
        MPI_Allreduce (sum) of one flat buffer of every gradient and the
        batch's loss runs from inside the loop, by thread 0 between two
        barriers; then every rank adds the penalties, clips and updates
        (team_general's phase B). allreduce_address: the address of
        MPI_Allreduce in the loaded MPI library; datatype, op, comm: the C
        handles of MPI_FLOAT/MPI_DOUBLE (this runner's dtype), MPI_SUM and the
        communicator. The runner's batch_size must be the largest share,
        ceil(global_batch / size), and every step must give each rank a row
        (the caller checks: descend.distributed)."""
        cdef LoopState* loop = &self.loop
        if not 0 <= rank < size or size < 2 or global_batch < size:
            raise ValueError(f"rank {rank} of {size} ranks, global batch {global_batch}: "
                             "need 0 <= rank < size, size >= 2, global batch >= size")
        if (global_batch + size - 1) // size != loop.batch_size:
            raise ValueError(f"batch_size {loop.batch_size} must be the largest share "
                             f"of the global batch, {(global_batch + size - 1) // size}")
        if not allreduce_address:
            raise ValueError("allreduce_address must be the address of MPI_Allreduce")
        _gradients_into_flat(loop, self.keep_alive)
        self.copies = []        # team_general's distributed steps run the kernels themselves
        loop.allreduce_fn = <void*><intptr_t>allreduce_address
        loop.mpi_datatype, loop.mpi_op, loop.mpi_comm = datatype, op, comm
        loop.dist_rank, loop.dist_size, loop.global_batch = rank, size, global_batch
        self._strategy = TEAM_GENERAL      # gradients first, then the update
        self.plan["by_columns"] = False

    def distributed_stats(self):
        """The allreduce's cost since set_distributed, or None if not distributed:
        {"allreduce_seconds": wall seconds thread 0 spent inside MPI_Allreduce
        (waiting for the slowest rank to arrive included), "allreduce_calls":
        its calls (one a step), "bytes_per_step": the bytes of the summed
        buffer (every gradient and the batch's loss)}."""
        if not self.loop.dist_size:
            return None
        return {"allreduce_seconds": self.loop.allreduce_seconds,
                "allreduce_calls": self.loop.allreduce_calls,
                "bytes_per_step": self.loop.flat_size * (4 if self.loop.is_float32 else 8)}

    @property
    def strategy(self):
        """The batch path of run_epoch (the table at the top of _train.pyx):
        "per_sample_sgd" (batch 1, plain SGD; run_epoch falls back to
        "team_gemm_sgd" for an epoch given a weight decay), "team_gemm_sgd",
        "team_general" or "team_by_columns"."""
        return _Strategy(self._strategy).name.lower()

    @property
    def sparse_input(self):
        """True when the first layer's input goes through the sparse kernels."""
        return self.loop.sparse_input

    @property
    def padded_layers(self):
        """The layers whose kernels the epochs run from a padded working
        copy (_padded_copies), as a tuple of layer indices."""
        return tuple(entry[0] for entry in self.copies)

    cdef int _use_copies(self, bint on) except -1:
        """Point the loop at the padded working copies, copying the layers'
        kernels in (on), or back at the layers' kernels, copying the working
        copies out; nothing where it already points there."""
        cdef LayerPlan* p
        for entry in self.copies:
            l, kernel, copy = entry
            p = &self.loop.plans[<int>l]
            if on and p.ldk == p.n_out:
                if copy is None:
                    copy = entry[2] = _aligned.empty(
                        (p.n_in, p.n_out + CACHE_LINE // kernel.itemsize), kernel.dtype)
                    copy[:, p.n_out:] = 0
                copy[:, :p.n_out] = kernel
                p.kernel.value, p.ldk = data(copy), copy.shape[1]
            elif not on and p.ldk != p.n_out:
                kernel[...] = copy[:, :p.n_out]
                p.kernel.value, p.ldk = data(kernel), p.n_out
        return 0

    def run_epoch(self, cnp.intp_t[::1] order, double learning_rate,
                  double weight_decay, long step, unsigned long long seed,
                  object progress=None, int progress_every=0, tuple start=None,
                  long first_batch=0, int hook_every=0):
        """Train one epoch over the rows of X in `order`.

        Returns a dict: loss_sum (sum over batches of the batch's mean loss,
        penalties included, times its size, or its weight sum with
        sample_weight), penalty_sum, n_batches, n_correct (classification;
        with sample_weight the correct samples' weight sum, a float), step
        (updates done so far), finite (False if a non-finite loss stopped
        the epoch early; the weights are then those before the failing
        batch's update), n_samples, and weight_sum (the weights, or sizes,
        of the batches done).

        The sums are added batch by batch in the epoch's order, whatever the
        chunks the loop runs in, so their bits do not depend on timing.
        `start` = (loss_sum, penalty_sum, n_correct, weight_sum) continues
        the sums of earlier rows of the same epoch (the out-of-core trainer's
        earlier chunks); the progress callback then gets the running mean
        over them too. `first_batch`: the index in the epoch of this call's
        first batch (those earlier chunks' batches): progress comes once a
        multiple of progress_every of the epoch's batches is reached, and
        of `hook_every` too if given (the batch callbacks' interval, the
        former the progress bar's).
        """
        if progress is not None and progress_every < 1:
            raise ValueError(f"progress_every must be >= 1 with a progress callback, "
                             f"got {progress_every}")
        if start is not None and len(start) != 4:
            raise ValueError(f"start must be 4 sums, got {start!r}")
        if first_batch < 0 or hook_every < 0:
            raise ValueError(f"first_batch and hook_every must be >= 0, got {first_batch} "
                             f"and {hook_every}")
        if order.shape[0] > 0 and (np.min(order) < 0 or np.max(order) >= self.loop.n_rows):
            raise ValueError(f"order must hold row indices in [0, {self.loop.n_rows})")
        cdef double sums[4]
        cdef int i
        for i in range(4):
            sums[i] = 0.0 if start is None else float(start[i])
        if self.loop.is_float32:
            return self._run[float](order, learning_rate, weight_decay, step, seed,
                                    progress, progress_every, hook_every, first_batch, sums)
        return self._run[double](order, learning_rate, weight_decay, step, seed,
                                 progress, progress_every, hook_every, first_batch, sums)

    cdef dict _run(self, cnp.intp_t[::1] order, double learning_rate,
                   double weight_decay, long step, unsigned long long seed,
                   object progress, int progress_every, int hook_every,
                   long first_batch, double* totals, floating dummy=0):
        cdef LoopState* loop = &self.loop
        cdef long n = order.shape[0]
        # rows of X a batch takes from `order` (distributed: the global batch)
        cdef long rows = loop.global_batch if loop.dist_size else loop.batch_size
        cdef long n_batches = (n + rows - 1) // rows
        # the epoch's batch indices at whose multiples progress is due
        cdef long never = n + first_batch + 1
        cdef long every = progress_every if progress is not None else never
        cdef long hooks = hook_every if progress is not None and hook_every > 0 else never
        cdef long batch = 0, stop, done, size = 1, at
        cdef bint finite = True, due, padded
        cdef Strategy strategy = self._strategy
        cdef bint per_sample
        cdef int team
        cdef double started
        # the per-sample path has no weight decay: such an epoch runs the team's
        # plain SGD (the same update, batch 1)
        if strategy == PER_SAMPLE_SGD and weight_decay != 0:
            strategy = TEAM_GEMM_SGD
        per_sample = strategy == PER_SAMPLE_SGD     # one thread
        # Chunks of at most 64 batches: the team size is chosen per chunk.
        # They end on the epoch's multiples of `every` and `hooks` (where
        # progress is due; a retry's batch included), and the first ones are
        # short (1, 2, 4, ... batches): TeamSize then learns within a few
        # batches whether the team or one thread runs faster (a core held by
        # another job slows a team by up to 100x; 64-batch chunks ran 128
        # such batches first).
        # Padded working copies (_padded_copies), copied in before each chunk
        # and out after it (Python runs between chunks: signal handlers,
        # progress callbacks, other threads), where a full chunk's rows
        # repay the copies
        padded = bool(self.copies) and min(
            CHUNK_BATCHES * rows, min(every, hooks) * rows, n) >= PADDED_COPY_ROWS
        while batch < n_batches and finite:
            at = first_batch + batch        # the batch's index in the epoch
            stop = min(batch + size, (at // every + 1) * every - first_batch,
                       (at // hooks + 1) * hooks - first_batch, n_batches)
            size = min(2 * size, CHUNK_BATCHES)
            team = 1 if per_sample else self.team.choose()
            if not per_sample and self.team.retrying is not None:
                stop = batch + 1        # a retry of the other team size: one batch
            self._use_copies(padded)
            started = time.perf_counter()
            with nogil:
                if per_sample:
                    done = _per_sample_sgd[floating](loop, &order[0], batch, stop,
                                                     learning_rate, totals)
                else:
                    done = _team_batches[floating](loop, &order[0], n, batch, stop,
                                                   strategy, learning_rate,
                                                   weight_decay, step, seed, team,
                                                   totals)
            if not per_sample:
                self.team.record(team, (time.perf_counter() - started) / max(done - batch, 1),
                                 max(done - batch, 1))
            self._use_copies(False)
            finite = done == stop
            step += done - batch
            # progress once a multiple of either interval is reached (or the end)
            due = progress is not None and (
                (first_batch + done) // every > (first_batch + batch) // every
                or (first_batch + done) // hooks > (first_batch + batch) // hooks
                or done == n_batches)
            batch = done
            PyErr_CheckSignals()    # Ctrl-C raises KeyboardInterrupt here
            if due:
                # the running (weighted) mean loss: weight_sum counts the
                # samples done (distributed: of the global batches), or sums their weights
                progress(batch, totals[0] / totals[3] if totals[3] > 0 else 0.0)
        return {"loss_sum": totals[0], "penalty_sum": totals[1],
                "n_batches": batch, "step": step, "finite": finite,
                "n_samples": min(batch * rows, n), "weight_sum": totals[3],
                "n_correct": <long>totals[2] if loop.weights == NULL else totals[2]}


# ---- the team strategies: a team of threads over batches, phases A and B -----
cdef long _team_batches(LoopState* loop, cnp.intp_t* order, long n, long first, long stop,
                        Strategy strategy, double learning_rate, double weight_decay,
                        long step, uint64_t seed, int T, double* totals,
                        floating dummy=0) noexcept nogil:
    """Train batches [first, stop); return the index of the first batch not
    done (stop, or the batch whose loss was not finite). totals (sum of
    (batch loss + penalty) * batch weight, sum of penalties, correct, sum of
    batch weights; a batch's weight is its size or the sum of its sample
    weights) goes on from its values: thread 0 adds each batch's loss and
    penalty (loop.penalties, summed in block order) to them in batch order.
    T threads are asked for and share the work (the results do not depend
    on T). OpenMP may grant fewer (OMP_DYNAMIC, OMP_THREAD_LIMIT, nested
    regions): the work is cut over the team actually running."""
    cdef int t, i, blk, n_blocks, nb, nb_all, offset, dealt
    cdef long batch, start
    cdef long first_not_done[1]
    cdef int granted[1]
    cdef double batch_loss, batch_correct, penalty, batch_weight
    cdef uint64_t batch_seed
    cdef double* mine
    first_not_done[0] = stop
    granted[0] = 1
    if loop.dealt_team != T:
        _deal_blocks(loop, T)
    dealt = T
    with parallel(num_threads=T):
        t = threadid()
        T = team_size()
        if t == 0:
            granted[0] = T
        if T != dealt:      # OpenMP granted fewer threads: deal again, for them
            if t == 0:
                _deal_blocks(loop, T)
            barrier()
        mine = &loop.partials[t * SLOT]
        if t == 0:      # the running sums: a batch's loss adds to them in order
            mine[ACC_LOSS], mine[ACC_PENALTY] = totals[0], totals[1]
            mine[CORRECT], mine[ACC_WEIGHT] = totals[2], totals[3]
        else:
            mine[ACC_LOSS] = mine[ACC_PENALTY] = mine[CORRECT] = mine[ACC_WEIGHT] = 0
        batch = first
        while batch < stop:
            if loop.dist_size:
                # this rank's contiguous share of global batch `batch`
                start = batch * loop.global_batch
                nb_all = <int>min(loop.global_batch, n - start)
                offset = <int>((<long>nb_all * loop.dist_rank) // loop.dist_size)
                nb = <int>((<long>nb_all * (loop.dist_rank + 1)) // loop.dist_size) - offset
                start = start + offset
            else:
                start = batch * loop.batch_size
                nb = <int>min(<long>loop.batch_size, n - start)
                nb_all, offset = nb, 0
            n_blocks = (nb + loop.sample_rows - 1) // loop.sample_rows
            batch_seed = descend_mix(seed, <uint64_t>batch)
            # every thread sums the batch's weights (same order, same bits);
            # distributed: the global batch's, all ranks' rows
            batch_weight = _batch_weight(loop, order + start - offset, nb_all)
            _phase_a[floating](loop, strategy, order + start, nb, offset, batch_seed,
                               batch_weight, t, T)
            barrier()
            batch_loss = batch_correct = 0
            for blk in range(n_blocks):     # in block order: same sums for any T
                batch_loss = batch_loss + loop.block_loss[blk]
                batch_correct = batch_correct + loop.block_correct[blk]
            if loop.dist_size:
                # the batch's loss and gradients summed over the ranks
                batch_loss = _sum_over_ranks[floating](loop, nb, t, T, batch_loss)
            if not isfinite(batch_loss):
                # every thread sees the same sum, so all leave together
                first_not_done[0] = batch
                break
            _phase_b[floating](loop, strategy, nb, t, T, learning_rate, weight_decay,
                               step + (batch - first) + 1)
            barrier()
            if t == 0:
                # (the others write penalties again only after the next
                # batch's first barrier, which waits for this thread)
                penalty = 0
                for i in range(loop.n_blocks + loop.n_layers):   # in order: any T
                    penalty = penalty + loop.penalties[i]
                mine[ACC_LOSS] += batch_loss * batch_weight
                mine[CORRECT] += batch_correct
                mine[ACC_WEIGHT] += batch_weight
                mine[ACC_LOSS] += penalty * batch_weight
                mine[ACC_PENALTY] += penalty
            batch = batch + 1
    totals[0] = totals[1] = totals[2] = totals[3] = 0
    for i in range(granted[0]):
        totals[0] += loop.partials[i * SLOT + ACC_LOSS]
        totals[1] += loop.partials[i * SLOT + ACC_PENALTY]
        totals[2] += loop.partials[i * SLOT + CORRECT]
        totals[3] += loop.partials[i * SLOT + ACC_WEIGHT]
    return first_not_done[0]


cdef void _phase_a(LoopState* loop, Strategy strategy, cnp.intp_t* rows, int nb, int offset,
                   uint64_t batch_seed, double batch_weight, int t, int T,
                   floating dummy=0) noexcept nogil:
    """Phase A of one batch (rows: its rows of `order`): this thread's blocks
    of samples (by columns: of samples, then of every layer's outputs), up
    to dL/dz; block_loss and block_correct get each sample block's share of
    the loss and its correct predictions."""
    if strategy == TEAM_BY_COLUMNS:
        _columns_forward[floating](loop, rows, nb, t, T, batch_weight)
    else:
        _samples_phase_a[floating](loop, rows, nb, offset, batch_seed, batch_weight, t, T)


cdef void _phase_b(LoopState* loop, Strategy strategy, int nb, int t, int T,
                   double learning_rate, double weight_decay, long step,
                   floating dummy=0) noexcept nogil:
    """Phase B of one batch: this thread's blocks of every parameter array
    (gradient, penalty, update; step: the update's number, from 1). Each
    block's penalty goes to its slot of loop.penalties (_block_penalty)."""
    if strategy == TEAM_GEMM_SGD:
        _gemm_sgd_update[floating](loop, nb, t, T, learning_rate, weight_decay, step)
    elif strategy == TEAM_BY_COLUMNS:
        _columns_backward[floating](loop, nb, t, T, learning_rate, weight_decay, step)
    else:
        _general_update[floating](loop, nb, t, T, learning_rate, weight_decay, step,
                                  loop.dist_size != 0)


cdef inline double* _block_penalty(LoopState* loop, LayerPlan* p, int k0) noexcept nogil:
    """The slot of loop.penalties of the phase-B block of p's kernel that
    starts at row k0."""
    return &loop.penalties[p.first_block + k0 // p.kernel_rows]


cdef inline double _batch_weight(LoopState* loop, cnp.intp_t* rows, int nb) noexcept nogil:
    """What the batch's mean loss divides by: nb, or the sum of its weights."""
    cdef int i
    cdef double total = 0.0
    if loop.weights == NULL:
        return nb
    for i in range(nb):
        total += loop.weights[rows[i]]
    return total


# ---- phase A by samples: gather, forward, loss, backward to dL/dz ------------
cdef void _samples_phase_a(LoopState* loop, cnp.intp_t* rows, int nb, int offset,
                           uint64_t batch_seed, double batch_weight, int t, int T,
                           floating dummy=0) noexcept nogil:
    """Phase A by samples: thread t's blocks of sample_rows rows (block b
    to thread b mod T) gathered, then forward, loss and backward to dL/dz
    on them; block_loss and block_correct get each block's share of the
    batch's loss and its correct predictions."""
    cdef int blk = t
    cdef int n_blocks = (nb + loop.sample_rows - 1) // loop.sample_rows
    while blk < n_blocks:
        _gather[floating](loop, rows, blk * loop.sample_rows,
                          min((blk + 1) * loop.sample_rows, nb))
        loop.block_correct[blk] = 0
        loop.block_loss[blk] = _samples_forward_backward[floating](
            loop, blk * loop.sample_rows, min((blk + 1) * loop.sample_rows, nb),
            offset, batch_seed, batch_weight, &loop.block_correct[blk])
        blk = blk + T


cdef void _gather(LoopState* loop, cnp.intp_t* rows, int r0, int r1,
                  floating dummy=0) noexcept nogil:
    """Copy rows[r0:r1] of X (and the targets) into the batch buffers."""
    cdef int i
    cdef long d = loop.plans[0].n_in
    cdef long k = loop.n_outputs
    cdef floating* X = <floating*>loop.X
    cdef floating* T = <floating*>loop.targets
    cdef int* Y = loop.labels
    cdef floating* xb = <floating*>loop.x_batch
    cdef floating* tb = <floating*>loop.targets_batch
    cdef int* yb = loop.labels_batch
    for i in range(r0, r1):
        memcpy(xb + i * d, X + rows[i] * d, d * sizeof(floating))
        if T != NULL:
            memcpy(tb + i * k, T + rows[i] * k, k * sizeof(floating))
        if Y != NULL:
            yb[i] = Y[rows[i]]
        if loop.weights != NULL:
            loop.weights_batch[i] = loop.weights[rows[i]]


cdef inline floating* _input(LoopState* loop, int l, floating dummy=0) noexcept nogil:
    """The input buffer of layer l as it enters its kernel (after dropout)."""
    if loop.plans[l].dropout_rate > 0:
        return <floating*>loop.plans[l].dropped
    if l == 0:
        return <floating*>loop.x_batch
    return <floating*>loop.plans[l - 1].a


cdef double _samples_forward_backward(LoopState* loop, int r0, int r1, int offset,
                                      uint64_t batch_seed, double batch_weight,
                                      double* correct, floating dummy=0) noexcept nogil:
    """Phase A on rows [r0, r1): forward, loss, and dL/dz of every layer.
    Returns these rows' share of the batch's (weighted) mean loss.
    batch_weight: the batch's rows (all ranks' when distributed) or the sum
    of their sample weights; offset: the index in the batch of this
    runner's row 0 (distributed: its share's first row; dropout masks are
    keyed by it)."""
    cdef int l, rows = r1 - r0
    cdef LayerPlan* p
    cdef LayerPlan* last = &loop.plans[loop.n_layers - 1]
    cdef floating* raw
    cdef floating* inp
    cdef double loss, scale
    cdef long k = last.n_out
    if rows <= 0:
        return 0.0
    for l in range(loop.n_layers):
        p = &loop.plans[l]
        inp = _input[floating](loop, l)
        if p.dropout_rate > 0:
            raw = (<floating*>loop.x_batch if l == 0
                   else <floating*>loop.plans[l - 1].a)
            dropout(inp + <long>r0 * p.n_in, raw + <long>r0 * p.n_in, rows, p.n_in,
                    offset + r0, p.dropout_rate, descend_mix(batch_seed, <uint64_t>l), 1)
        if l == 0 and loop.sparse_input:
            _sparse_first_layer[floating](loop, r0, r1)
            continue
        # the whole block in one GEMM on this thread (the weights packed once)
        dense_forward_block(inp + <long>r0 * p.n_in, rows, p.n_in, <floating*>p.kernel.value,
                            p.ldk, <floating*>p.bias.value, p.n_out,
                            <floating*>p.z + <long>r0 * p.n_out,
                            <floating*>p.a + <long>r0 * p.n_out, p.activation,
                            <floating>p.alpha)
    loss = _rows_loss[floating](loop, r0, r1, batch_weight, correct)
    # backward to dL/dz of every layer: layer l writes dL/d(its input)
    # into layer l-1's dz, through the dropout mask if there is one
    for l in range(loop.n_layers - 1, -1, -1):
        p = &loop.plans[l]
        activation_backward(<floating*>p.z + <long>r0 * p.n_out,
                            <floating*>p.a + <long>r0 * p.n_out,
                            <floating*>p.dz + <long>r0 * p.n_out, rows, p.n_out,
                            p.activation, <floating>p.alpha, 1)
        if l > 0:
            # dL/d(input) := dz . W^T, the block in one GEMM
            inp = <floating*>loop.plans[l - 1].dz + <long>r0 * p.n_in
            gemm(False, True, rows, p.n_in, p.n_out, <floating>1,
                 <floating*>p.dz + <long>r0 * p.n_out, p.n_out, <floating*>p.kernel.value,
                 p.ldk, <floating>0, inp, p.n_in)
            if p.dropout_rate > 0:
                dropout(inp, inp, rows, p.n_in, offset + r0, p.dropout_rate,
                        descend_mix(batch_seed, <uint64_t>l), 1)
    return loss


cdef void _sparse_first_layer(LoopState* loop, int r0, int r1, floating dummy=0) noexcept nogil:
    """The first layer's forward on rows [r0, r1) of the batch, from their
    non-zero entries (sparse_input), with this thread's scratch."""
    cdef LayerPlan* p = &loop.plans[0]
    cdef int t = threadid()
    sparse_rows_forward(<floating*>loop.x_batch + <long>r0 * p.n_in, r1 - r0, p.n_in,
                        <floating*>p.kernel.value, <floating*>p.bias.value, p.n_out,
                        <floating*>p.z + <long>r0 * p.n_out,
                        <floating*>p.a + <long>r0 * p.n_out, p.activation,
                        <floating>p.alpha, loop.grad_scratch + t * loop.scratch_size,
                        <floating*>loop.grad_values + t * loop.scratch_values)


cdef double _rows_loss(LoopState* loop, int r0, int r1, double batch_weight, double* correct,
                       floating dummy=0) noexcept nogil:
    """The loss of rows [r0, r1) and its gradient dL/da of the last layer
    (the (weighted) mean over the batch's samples, and outputs for the
    elementwise losses); adds their correct predictions to correct[0].
    Returns these rows' share of the batch's loss."""
    cdef LayerPlan* last = &loop.plans[loop.n_layers - 1]
    cdef long k = last.n_out
    cdef int rows = r1 - r0
    cdef double scale = mean_scale(loop.loss, batch_weight, k)
    cdef floating* targets = <floating*>loop.targets_batch
    cdef int* labels = loop.labels_batch
    cdef double* weights = loop.weights_batch + r0 if loop.weights != NULL else NULL
    cdef double loss = scale * weighted_loss_and_gradient(
        loop.loss, <floating*>last.a + r0 * k,
        targets + r0 * k if targets != NULL else NULL,
        labels + r0 if labels != NULL else NULL, weights,
        <floating*>last.dz + r0 * k, rows, <int>k, scale, 1)
    correct[0] += count_correct(loop.loss, <floating*>last.a + r0 * k,
                                targets + r0 * k if targets != NULL else NULL,
                                labels + r0 if labels != NULL else NULL, weights,
                                rows, <int>k)
    return loss


# ---- team_by_columns: layer by layer, blocks of columns ----------------------
cdef void _columns_forward(LoopState* loop, cnp.intp_t* rows, int nb, int t, int T,
                           double batch_weight, floating dummy=0) noexcept nogil:
    """Phase A of team_by_columns: this thread's blocks of samples are
    gathered (and go through the sparse first layer); then each layer,
    after a barrier, runs all the batch's rows through this thread's
    blocks of its output columns (block b of p.out_columns columns to
    thread b mod T: one GEMM against that slice of the kernel, which
    stays in this core's cache from batch to batch); then the loss and
    the last layer's dL/dz on the sample blocks. block_loss and
    block_correct get each sample block's share of the loss and its
    correct predictions."""
    cdef int blk, l, c0, r0, r1, n_blocks = (nb + loop.sample_rows - 1) // loop.sample_rows
    cdef LayerPlan* p
    cdef LayerPlan* last = &loop.plans[loop.n_layers - 1]
    blk = t
    while blk < n_blocks:
        r0, r1 = blk * loop.sample_rows, min((blk + 1) * loop.sample_rows, nb)
        _gather[floating](loop, rows, r0, r1)
        if loop.sparse_input:
            _sparse_first_layer[floating](loop, r0, r1)
        blk = blk + T
    for l in range(1 if loop.sparse_input else 0, loop.n_layers):
        barrier()
        p = &loop.plans[l]
        c0 = t * p.out_columns
        while c0 < p.n_out:
            _columns_product[floating](loop, p, l, nb, c0, min(c0 + p.out_columns, p.n_out))
            c0 = c0 + T * p.out_columns
    barrier()
    blk = t
    while blk < n_blocks:
        r0, r1 = blk * loop.sample_rows, min((blk + 1) * loop.sample_rows, nb)
        loop.block_correct[blk] = 0
        loop.block_loss[blk] = _rows_loss[floating](loop, r0, r1, batch_weight,
                                                    &loop.block_correct[blk])
        activation_backward(<floating*>last.z + <long>r0 * last.n_out,
                            <floating*>last.a + <long>r0 * last.n_out,
                            <floating*>last.dz + <long>r0 * last.n_out, r1 - r0,
                            last.n_out, last.activation, <floating>last.alpha, 1)
        blk = blk + T


cdef void _columns_product(LoopState* loop, LayerPlan* p, int l, int nb, int c0, int c1,
                           floating dummy=0) noexcept nogil:
    """z[:, c0:c1] := x . W[:, c0:c1] + b[c0:c1] ; a[:, c0:c1] := act(z) over
    the batch's nb rows (x: layer l's input)."""
    cdef int i
    cdef floating* z = <floating*>p.z
    cdef floating* a = <floating*>p.a
    cdef floating* b = <floating*>p.bias.value
    gemm(False, False, nb, c1 - c0, p.n_in, <floating>1, _input[floating](loop, l),
         p.n_in, <floating*>p.kernel.value + c0, p.ldk, <floating>0, z + c0, p.n_out)
    for i in range(nb):
        bias_activation_row(z + <long>i * p.n_out + c0, a + <long>i * p.n_out + c0,
                            b + c0 if b != NULL else NULL, c1 - c0, p.activation,
                            <floating>p.alpha)


cdef void _columns_backward(LoopState* loop, int nb, int t, int T, double learning_rate,
                            double weight_decay, long step,
                            floating dummy=0) noexcept nogil:
    """Phase B of team_by_columns, last layer first: this thread's blocks of
    p.kernel_rows kernel rows [k0, k1) (block b to thread b mod T) first
    give the previous layer's dL/dz on columns [k0, k1) (dZ W[k0:k1]^T,
    then its activation's derivative: those rows of W are this thread's,
    so it reads them before it updates them), then their update (as
    team_gemm_sgd or team_general); then the bias; a barrier before the
    previous layer, whose dL/dz is then whole."""
    cdef int l, k0, k1
    cdef LayerPlan* p
    cdef LayerPlan* prev
    for l in range(loop.n_layers - 1, -1, -1):
        p = &loop.plans[l]
        prev = &loop.plans[l - 1] if l > 0 else NULL
        k0 = t * p.kernel_rows
        while k0 < p.n_in:
            k1 = min(k0 + p.kernel_rows, p.n_in)
            if prev != NULL:
                gemm(False, True, nb, k1 - k0, p.n_out, <floating>1, <floating*>p.dz,
                     p.n_out, <floating*>p.kernel.value + <long>k0 * p.ldk, p.ldk,
                     <floating>0, <floating*>prev.dz + k0, p.n_in)
                activation_backward_columns(<floating*>prev.z + k0, <floating*>prev.a + k0,
                                            <floating*>prev.dz + k0, nb, k1 - k0, p.n_in,
                                            prev.activation, <floating>prev.alpha)
            if loop.columns_sgd:
                _block_penalty(loop, p, k0)[0] = _sgd_through_gemm[floating](
                    loop, p, l, nb, k0, k1, t, learning_rate, weight_decay)
            else:
                _kernel_gradient[floating](loop, l, nb, k0, k1, t)
                _block_penalty(loop, p, k0)[0] = _kernel_penalty[floating](p, k0, k1)
                _kernel_step[floating](loop, p, k0, k1, learning_rate, weight_decay, step)
            k0 = k0 + T * p.kernel_rows
        _bias_update[floating](loop, l, nb, t, T, learning_rate, weight_decay, step,
                               True, True)
        if prev != NULL:
            barrier()


# ---- phase B: gradients, penalties and updates (SGD through GEMM, or any) ----
cdef void _gemm_sgd_update(LoopState* loop, int nb, int t, int T, double learning_rate,
                           double weight_decay, long step,
                           floating dummy=0) noexcept nogil:
    """Phase B, plain SGD: each block of kernel rows updated by one GEMM
    (_sgd_through_gemm: dW is never written out), then the bias. Kernel
    rows go in blocks of p.kernel_rows, dealt over the team by cost (_deal_blocks)."""
    cdef int l, k0, k1
    cdef LayerPlan* p
    for l in range(loop.n_layers):
        p = &loop.plans[l]
        k0 = _next_row(loop, p, t, -p.kernel_rows)
        while k0 < p.n_in:
            k1 = min(k0 + p.kernel_rows, p.n_in)
            _block_penalty(loop, p, k0)[0] = _sgd_through_gemm[floating](
                loop, p, l, nb, k0, k1, t, learning_rate, weight_decay)
            k0 = _next_row(loop, p, t, k0)
        _bias_update[floating](loop, l, nb, t, T, learning_rate, weight_decay, step,
                               True, True)


cdef double _sgd_through_gemm(LoopState* loop, LayerPlan* p, int l, int nb, int k0, int k1,
                              int t, double learning_rate, double weight_decay,
                              floating dummy=0) noexcept nogil:
    """Plain SGD on kernel rows [k0, k1): W := (1 - lr (wd + 2 l2)) W - lr X^T dZ
    as one GEMM (alpha = -lr, beta = the decay factor), so dW is never
    written out and read back; for a sparse input, the decay and then
    the sparse product added into W. The same update as optimizer_step's
    SGD with momentum 0 and the L2 penalty's gradient 2 l2 w. Returns the
    rows' penalty (before the update)."""
    cdef long begin = <long>k0 * p.n_out, end = <long>k1 * p.n_out
    cdef Lanes squares
    cdef double shrink = 1 - learning_rate * (weight_decay * p.kernel.decay
                                              + 2 * p.kernel.l2)
    cdef int k
    clear_lanes(&squares)
    if p.kernel.l2 != 0:
        # row by row (rows p.ldk apart), in the lanes of the unpadded kernel:
        # one flat sum's bits
        for k in range(k0, k1):
            sum_squares_lanes(<floating*>p.kernel.value + <long>k * p.ldk, p.n_out,
                              <long>k * p.n_out, &squares)
    cdef double penalty = p.kernel.l2 * lanes_total(&squares)
    if l == 0 and loop.sparse_input:
        if shrink != 1:
            scale_and_clip(<floating*>p.kernel.value + begin, end - begin, shrink, 0.0, 1)
        _sparse_grad[floating](loop, nb, k0, k1, -learning_rate,
                               <floating*>p.kernel.value, t)
        return penalty
    # one GEMM for the whole block: dZ is packed once per block (begin and
    # end above count rows of n_out: the sparse first layer is never padded)
    gemm(True, False, k1 - k0, p.n_out, nb, <floating>(-learning_rate),
         _input[floating](loop, l) + k0, p.n_in, <floating*>p.dz, p.n_out,
         <floating>shrink, <floating*>p.kernel.value + <long>k0 * p.ldk, p.ldk)
    return penalty


cdef void _general_update(LoopState* loop, int nb, int t, int T, double learning_rate,
                          double weight_decay, long step, bint summed,
                          floating dummy=0) noexcept nogil:
    """Phase B, any optimizer: dW, db, penalties, clipping by value and the
    update. Kernel rows go in blocks of p.kernel_rows, dealt over the
    team by cost (_deal_blocks); each block is updated right after its gradient is computed,
    while it is still in cache (unless by_norm: then every gradient first,
    _update_by_norm after). `summed`: the gradients are there already
    (distributed: _sum_over_ranks)."""
    cdef int l, k0, k1
    cdef LayerPlan* p
    for l in range(loop.n_layers):
        p = &loop.plans[l]
        k0 = _next_row(loop, p, t, -p.kernel_rows)
        while k0 < p.n_in:
            k1 = min(k0 + p.kernel_rows, p.n_in)
            if not summed:
                _kernel_gradient[floating](loop, l, nb, k0, k1, t)
            _block_penalty(loop, p, k0)[0] = _kernel_penalty[floating](p, k0, k1)
            if not loop.by_norm:
                _kernel_step[floating](loop, p, k0, k1, learning_rate, weight_decay, step)
            k0 = _next_row(loop, p, t, k0)
        _bias_update[floating](loop, l, nb, t, T, learning_rate, weight_decay, step,
                               not loop.by_norm, not summed)
    if loop.by_norm:
        _update_by_norm[floating](loop, t, T, learning_rate, weight_decay, step)


cdef void _bias_update(LoopState* loop, int l, int nb, int t, int T, double learning_rate,
                       double weight_decay, long step, bint update, bint gradient,
                       floating dummy=0) noexcept nogil:
    """db of layer l on this thread's part of the bias (if `gradient`), its
    penalty and, if `update`, the optimizer step on it. A penalized bias is
    one part, thread l mod T's (a penalty summed over parts of sizes that
    depend on T would change in its last bits with T); that thread writes
    the bias's slot of loop.penalties (0 for a bias without penalty)."""
    cdef LayerPlan* p = &loop.plans[l]
    cdef int j0 = part(p.n_out, t, T), j1 = part(p.n_out, t + 1, T)
    cdef double penalty
    if p.bias.l1 != 0 or p.bias.l2 != 0:
        j0, j1 = 0, (p.n_out if t == l % T else 0)
    if gradient:
        dense_grad_params(_input[floating](loop, l), nb, p.n_in, <floating*>p.dz,
                          p.n_out, NULL, <floating*>p.bias.grad, 0, 0, j0, j1, 1)
    penalty = _penalize[floating](&p.bias, j0, j1)
    if t == l % T:
        loop.penalties[loop.n_blocks + l] = penalty
    if update:
        _step[floating](&loop.config, &p.bias, j0, j1, learning_rate,
                        weight_decay, step, loop.clipvalue)


cdef void _kernel_gradient(LoopState* loop, int l, int nb, int k0, int k1, int t,
                           floating dummy=0) noexcept nogil:
    """dW[k0:k1] := (X^T dZ)[k0:k1] of layer l (thread t's scratch)."""
    cdef LayerPlan* p = &loop.plans[l]
    cdef floating* grad = <floating*>p.kernel.grad
    if l == 0 and loop.sparse_input:
        memset(grad + <long>k0 * p.n_out, 0, <long>(k1 - k0) * p.n_out * sizeof(floating))
        _sparse_grad[floating](loop, nb, k0, k1, 1, grad, t)
    else:
        # rows k0..k1 of X^T are columns k0..k1 of X; one GEMM for the block
        gemm(True, False, k1 - k0, p.n_out, nb, <floating>1, _input[floating](loop, l) + k0,
             p.n_in, <floating*>p.dz, p.n_out, <floating>0, grad + <long>k0 * p.n_out,
             p.n_out)


cdef void _sparse_grad(LoopState* loop, int nb, int k0, int k1, double scale, floating* out,
                       int t) noexcept nogil:
    """out[k0:k1] += scale * (X^T dZ)[k0:k1] of the first layer, sparse input,
    with thread t's scratch."""
    cdef LayerPlan* p = &loop.plans[0]
    sparse_grad_kernel(<floating*>loop.x_batch, p.n_in, nb, <floating*>p.dz, p.n_out, k0, k1,
                       <floating>scale, out,
                       loop.grad_scratch + t * loop.scratch_size,
                       <floating*>loop.grad_values + t * loop.scratch_values)


# ---- phase B by_norm: clipping by norm needs every gradient first ------------
cdef void _update_by_norm(LoopState* loop, int t, int T, double learning_rate,
                          double weight_decay, long step,
                          floating dummy=0) noexcept nogil:
    """The by_norm variant of team_general: clipping by norm needs every
    gradient before any update, and every norm before any gradient is
    rescaled: thread 0 computes the scales between two barriers (in a
    fixed order: the same bits for any T), then each thread scales and
    updates its blocks."""
    cdef int l, k0, k1, j0, j1
    cdef LayerPlan* p
    barrier()
    if t == 0:
        _clip_scales[floating](loop, )
    barrier()
    for l in range(loop.n_layers):
        p = &loop.plans[l]
        j0, j1 = part(p.n_out, t, T), part(p.n_out, t + 1, T)
        k0 = _next_row(loop, p, t, -p.kernel_rows)
        while k0 < p.n_in:
            k1 = min(k0 + p.kernel_rows, p.n_in)
            _scale_and_step[floating](&loop.config, &p.kernel, <long>k0 * p.n_out,
                                      <long>k1 * p.n_out, loop.clip_scales[2 * l],
                                      learning_rate, weight_decay, step)
            k0 = _next_row(loop, p, t, k0)
        _scale_and_step[floating](&loop.config, &p.bias, j0, j1,
                                  loop.clip_scales[2 * l + 1], learning_rate,
                                  weight_decay, step)


cdef void _clip_scales(LoopState* loop, floating dummy=0) noexcept nogil:
    """Gradient scale per parameter array: min(1, clipnorm / ||g_array||)
    or, for global_clipnorm, min(1, global_clipnorm / ||all g||)."""
    cdef int l, i
    cdef double total = 0.0, scale
    cdef Param* q
    for i in range(2 * loop.n_layers):
        q = &loop.plans[i // 2].kernel if i % 2 == 0 else &loop.plans[i // 2].bias
        loop.clip_scales[i] = _sum_sq[floating](q, 0, q.size)
        total += loop.clip_scales[i]
    for i in range(2 * loop.n_layers):
        if loop.global_clipnorm > 0:
            loop.clip_scales[i] = clip_scale(loop.global_clipnorm, total)
        else:
            loop.clip_scales[i] = clip_scale(loop.clipnorm, loop.clip_scales[i])


# ---- distributed: the gradients summed over the ranks, from the loop ---------
cdef double _sum_over_ranks(LoopState* loop, int nb, int t, int T, double batch_loss,
                            floating dummy=0) noexcept nogil:
    """A distributed step between phases A and B: this thread's blocks of
    every gradient (this rank's nb rows), then thread 0 puts the batch's
    loss after them and sums the flat buffer over the ranks with one
    MPI_Allreduce, between two barriers. Returns the summed loss (every
    rank and thread gets the same value: all stop together on NaN)."""
    cdef int l, k0, j0, j1
    cdef LayerPlan* p
    cdef floating* flat = <floating*>loop.flat
    cdef double started
    for l in range(loop.n_layers):
        p = &loop.plans[l]
        k0 = _next_row(loop, p, t, -p.kernel_rows)
        while k0 < p.n_in:
            _kernel_gradient[floating](loop, l, nb, k0, min(k0 + p.kernel_rows, p.n_in), t)
            k0 = _next_row(loop, p, t, k0)
        if p.bias.value != NULL:
            j0, j1 = part(p.n_out, t, T), part(p.n_out, t + 1, T)
            dense_grad_params(_input[floating](loop, l), nb, p.n_in, <floating*>p.dz,
                              p.n_out, NULL, <floating*>p.bias.grad, 0, 0, j0, j1, 1)
    barrier()
    if t == 0:
        flat[loop.flat_size - 1] = <floating>batch_loss
        memcpy(loop.send, loop.flat, loop.flat_size * sizeof(floating))
        started = wall_seconds()
        call_allreduce(loop.allreduce_fn, loop.send, loop.flat, <int>loop.flat_size,
                       loop.mpi_datatype, loop.mpi_op, loop.mpi_comm)
        loop.allreduce_seconds += wall_seconds() - started
        loop.allreduce_calls += 1
    barrier()
    return flat[loop.flat_size - 1]


# ---- per_sample_sgd: batch size 1, plain SGD ---------------------------------
cdef long _per_sample_sgd(LoopState* loop, cnp.intp_t* order, long first, long stop,
                          double learning_rate, double* totals,
                          floating dummy=0) noexcept nogil:
    """Plain SGD, one sample per update, over samples [first, stop) of
    `order`; returns stop, or the sample whose loss was not finite (not
    updated). totals gets (sum of loss * weight, -, correct, sum of weights).

    w -= lr * x_i * dz for the rows i where the layer's input x_i != 0
    (the others have a zero gradient): the forward lists them, and both
    the forward and the update go through those rows only, in the
    hand-written loops of _sparse (no call into BLAS per row). Same math as
    the general path (w -= lr * X^T dZ), without touching zero rows."""
    cdef long s, row
    cdef LayerPlan* last = &loop.plans[loop.n_layers - 1]
    cdef floating* X = <floating*>loop.X
    cdef floating* T = <floating*>loop.targets
    cdef int* Y = loop.labels
    cdef double loss, scale, weight = 1.0
    cdef double* weights
    cdef int k = last.n_out
    for s in range(first, stop):
        row = order[s]
        # a sample's weighted mean loss is its loss, or 0 for a zero weight
        weights = loop.weights + row if loop.weights != NULL else NULL
        if weights != NULL:
            weight = weights[0]
        scale = mean_scale(loop.loss, weight, k)
        _per_sample_forward[floating](loop, X + row * loop.plans[0].n_in)
        loss = scale * weighted_loss_and_gradient(loop.loss, <floating*>last.a,
                                                  T + row * k if T != NULL else NULL,
                                                  Y + row if Y != NULL else NULL,
                                                  weights, <floating*>last.dz, 1, k,
                                                  scale, 1)
        if not isfinite(loss):
            return s
        totals[0] += loss * weight
        totals[2] += count_correct(loop.loss, <floating*>last.a,
                                   T + row * k if T != NULL else NULL,
                                   Y + row if Y != NULL else NULL, weights, 1, k)
        totals[3] += weight
        _per_sample_backward_update[floating](loop, X + row * loop.plans[0].n_in,
                                              <floating>(-learning_rate))
    return stop


cdef void _per_sample_forward(LoopState* loop, floating* x) noexcept nogil:
    """One sample's forward through every layer (x: its row of X): the
    layer's non-zero inputs listed (kept for the update), then
    z = sum over them of x_i * W[i, :] + b and a = act(z) (_sparse's loops)."""
    cdef int l
    cdef long first = 0
    cdef LayerPlan* p
    cdef int* index
    cdef floating* values
    for l in range(loop.n_layers):
        p = &loop.plans[l]
        index = loop.sample_index + first
        values = <floating*>loop.sample_values + first
        loop.sample_count[l] = nonzero_entries(x, p.n_in, index, values)
        sparse_forward(index, values, &loop.sample_count[l], 1, p.n_in,
                       <floating*>p.kernel.value, <floating*>p.bias.value, p.n_out,
                       <floating*>p.z, <floating*>p.a, p.activation, <floating>p.alpha)
        x = <floating*>p.a
        first += p.n_in


cdef void _per_sample_backward_update(LoopState* loop, floating* x0,
                                      floating neg_lr) noexcept nogil:
    """One sample's backward and SGD update, last layer first (x0: its row
    of X; the last layer's dz holds dL/da): dL/dz, then dL/dx of the layer
    below with the old weights (one matrix-vector product), then
    w -= lr * x_i * dz on the rows of the non-zero inputs x_i the forward
    listed, and b -= lr * dz."""
    cdef int l, zero = 0
    cdef long first = 0
    cdef LayerPlan* p
    cdef floating one = 1
    for l in range(loop.n_layers - 1):
        first += loop.plans[l].n_in
    for l in range(loop.n_layers - 1, -1, -1):
        p = &loop.plans[l]
        activation_backward(<floating*>p.z, <floating*>p.a, <floating*>p.dz, 1, p.n_out,
                            p.activation, <floating>p.alpha, 1)
        if l > 0:
            # dL/da of the layer below, W . dz with the old weights (its
            # activation's derivative applies when its turn comes)
            gemv(p.n_in, p.n_out, <floating*>p.kernel.value, <floating*>p.dz,
                 <floating*>loop.plans[l - 1].dz)
        update_rows(loop.sample_index + first, <floating*>loop.sample_values + first,
                    loop.sample_count[l], neg_lr, <floating*>p.dz, p.n_out,
                    <floating*>p.kernel.value)
        if p.bias.value != NULL:
            # the bias as one row whose input is 1
            update_rows(&zero, &one, 1, neg_lr, <floating*>p.dz, p.n_out,
                        <floating*>p.bias.value)
        if l > 0:
            first -= loop.plans[l - 1].n_in


# ---- formulas on one slice of a parameter array, and the correct count -------
cdef double _penalize(Param* q, long begin, long end, floating dummy=0) noexcept nogil:
    """The penalty of q[begin:end), its gradient added into q.grad (_penalty_sums)."""
    cdef Lanes sums[2]
    if q.value == NULL or end <= begin or (q.l1 == 0 and q.l2 == 0):
        return 0.0
    clear_lanes(&sums[0])
    clear_lanes(&sums[1])
    _penalty_sums[floating](<floating*>q.value, q, begin, end, sums)
    return lanes_total(&sums[0]) + q.l1 * lanes_total(&sums[1])


cdef double _kernel_penalty(LayerPlan* p, int k0, int k1, floating dummy=0) noexcept nogil:
    """_penalize on kernel rows [k0, k1), a row at a time (a padded working
    copy's rows are p.ldk apart), each element in the lane of its index in
    the unpadded kernel: the bits of one flat call on the rows."""
    cdef Lanes sums[2]
    cdef int k
    if p.kernel.value == NULL or k1 <= k0 or (p.kernel.l1 == 0 and p.kernel.l2 == 0):
        return 0.0
    clear_lanes(&sums[0])
    clear_lanes(&sums[1])
    for k in range(k0, k1):
        _penalty_sums[floating](<floating*>p.kernel.value + <long>k * (p.ldk - p.n_out),
                                &p.kernel, <long>k * p.n_out, <long>(k + 1) * p.n_out, sums)
    return lanes_total(&sums[0]) + p.kernel.l1 * lanes_total(&sums[1])


cdef void _penalty_sums(floating* value, Param* q, long begin, long end, Lanes* sums,
                        floating dummy=0) noexcept nogil:
    """Adds the penalty's gradient into q.grad[begin:end] (value: where
    element 0 of q's values is, q.value or a padded row's shifted pointer);
    its sums go on in sums[0] (l2 sum w^2, and l1 sum |w| unless proximal)
    and sums[1] (sum |w|, proximal L1 only: its value counts in the loss,
    its step comes after the update)."""
    cdef floating* w = value + begin
    cdef floating* g = <floating*>q.grad + begin
    if not q.proximal:
        add_penalty_lanes(w, g, end - begin, begin, q.l1, q.l2, &sums[0])
        return
    add_penalty_lanes(w, g, end - begin, begin, 0.0, q.l2, &sums[0])
    sum_abs_lanes(w, end - begin, begin, &sums[1])


cdef double _sum_sq(Param* q, long begin, long end, floating dummy=0) noexcept nogil:
    if q.value == NULL or end <= begin:
        return 0.0
    return sum_squares(<floating*>q.grad + begin, end - begin, 1)


cdef void _scale_and_step(OptimizerConfig* config, Param* q, long begin, long end,
                          double scale, double learning_rate, double weight_decay,
                          long step, floating dummy=0) noexcept nogil:
    """grad[begin:end] *= scale (if < 1), then the optimizer step."""
    if q.value == NULL or end <= begin:
        return
    if scale < 1:
        scale_and_clip(<floating*>q.grad + begin, end - begin, scale, 0.0, 1)
    _step[floating](config, q, begin, end, learning_rate, weight_decay, step, 0.0)


cdef void _kernel_step(LoopState* loop, LayerPlan* p, int k0, int k1, double learning_rate,
                       double weight_decay, long step, floating dummy=0) noexcept nogil:
    """_step on kernel rows [k0, k1). A padded working copy's rows are p.ldk
    apart, its gradient's and state's p.n_out: then a row at a time, the
    value pointer shifted so that row k's offset k * n_out lands on k * ldk
    (rows of whole vectors: the same bits as one call on all of them)."""
    cdef Param row
    cdef int k
    if p.ldk == p.n_out:
        _step[floating](&loop.config, &p.kernel, <long>k0 * p.n_out, <long>k1 * p.n_out,
                        learning_rate, weight_decay, step, loop.clipvalue)
        return
    row = p.kernel
    for k in range(k0, k1):
        row.value = <floating*>p.kernel.value + <long>k * (p.ldk - p.n_out)
        _step[floating](&loop.config, &row, <long>k * p.n_out, <long>(k + 1) * p.n_out,
                        learning_rate, weight_decay, step, loop.clipvalue)


cdef void _step(OptimizerConfig* config, Param* q, long begin, long end,
                double learning_rate, double weight_decay, long step, double clipvalue,
                floating dummy=0) noexcept nogil:
    """clipvalue, then the optimizer update of q[begin:end]."""
    cdef long n = end - begin
    if q.value == NULL or n <= 0:
        return
    if clipvalue > 0:
        scale_and_clip(<floating*>q.grad + begin, n, 1.0, clipvalue, 1)
    optimizer_step(config, <floating*>q.value + begin, <floating*>q.grad + begin,
                   <floating*>q.state1 + begin if q.state1 != NULL else NULL,
                   <floating*>q.state2 + begin if q.state2 != NULL else NULL,
                   <floating*>q.state3 + begin if q.state3 != NULL else NULL,
                   n, learning_rate, weight_decay * q.decay, step, 1)
    if q.proximal and q.l1 > 0:
        soft_threshold(<floating*>q.value + begin, n, learning_rate * q.l1, 1)


cdef double count_correct(int loss, floating* output, floating* targets, int* labels,
                          const double* weight, int n, int k) noexcept nogil:
    """Correct predictions in a batch: argmax == label (softmax), or
    (logit > 0) == (target > 0.5) per output (binary); 0 for regression.
    With weight (n,) not NULL, each correct prediction of sample i counts w_i."""
    cdef double correct = 0
    cdef long hits
    cdef int i, j, best
    if loss != SOFTMAX_CROSS_ENTROPY and loss != BINARY_CROSS_ENTROPY:
        return 0
    for i in range(n):
        hits = 0
        if loss == SOFTMAX_CROSS_ENTROPY:
            best = 0
            for j in range(1, k):
                if output[<long>i * k + j] > output[<long>i * k + best]:
                    best = j
            hits = best == labels[i]
        else:
            for j in range(k):
                hits += (output[<long>i * k + j] > 0) == (targets[<long>i * k + j] > 0.5)
        correct += hits * weight[i] if weight != NULL else hits
    return correct


# ---- def twins: the per-layer Python driver calls the formulas above ---------

def penalize_py(floating[::1] value, floating[::1] grad, double l1, double l2,
                bint proximal):
    """_penalize's twin on one parameter array: returns its penalty
    l1 sum|w| + l2 sum w^2 and adds the penalty's gradient into grad
    (l1 sign(w) + 2 l2 w; without the L1 term when proximal, whose step
    follows the update), as phase B of the fused loop does."""
    if grad.shape[0] != value.shape[0]:
        raise ValueError(f"grad has {grad.shape[0]} elements, value has {value.shape[0]}")
    cdef Param q
    memset(&q, 0, sizeof(Param))
    cdef long n = value.shape[0]
    cdef double total
    if n == 0:
        return 0.0
    q.value, q.grad, q.size = &value[0], &grad[0], n
    q.l1, q.l2, q.proximal = l1, l2, proximal
    with nogil:
        total = _penalize[floating](&q, 0, n)
    return total


def kernel_penalty_py(floating[:, ::1] stored, int n_out, floating[::1] grad, double l1,
                      double l2):
    """_kernel_penalty's twin on every row of a kernel of n_out columns whose
    rows are stored stored.shape[1] >= n_out apart (a padded working copy's
    rows): returns its penalty and adds its gradient into grad (the
    unpadded kernel's, flat), as phase B does block by block."""
    if not 0 < n_out <= stored.shape[1] or grad.shape[0] != stored.shape[0] * n_out:
        raise ValueError(f"need 0 < n_out <= {stored.shape[1]} and grad of "
                         f"{stored.shape[0]} * n_out elements, got n_out={n_out}, "
                         f"{grad.shape[0]} elements")
    cdef LayerPlan p
    cdef double total
    memset(&p, 0, sizeof(LayerPlan))
    p.n_in, p.n_out, p.ldk = stored.shape[0], n_out, stored.shape[1]
    p.kernel.value, p.kernel.grad, p.kernel.size = &stored[0, 0], &grad[0], grad.shape[0]
    p.kernel.l1, p.kernel.l2 = l1, l2
    with nogil:
        total = _kernel_penalty[floating](&p, 0, p.n_in)
    return total


def count_correct_py(int loss, floating[:, ::1] output, floating[:, ::1] targets,
                     const int[::1] labels, const double[::1] weights=None):
    """count_correct's twin: argmax == label per row (softmax_cross_entropy, needs
    labels), (logit > 0) == (target > 0.5) per element (binary_cross_entropy,
    needs targets), 0 for regression. With weights (n,): the weighted count
    sum_i w_i (correct predictions of sample i), a float."""
    cdef int n = output.shape[0], k = output.shape[1]
    if loss == SOFTMAX_CROSS_ENTROPY and (labels is None or labels.shape[0] != n):
        raise ValueError(f"softmax_cross_entropy needs {n} labels")
    if loss == BINARY_CROSS_ENTROPY and (
            targets is None or (targets.shape[0], targets.shape[1]) != (n, k)):
        raise ValueError(f"binary_cross_entropy needs targets of shape {(n, k)}")
    if weights is not None and weights.shape[0] != n:
        raise ValueError(f"weights has {weights.shape[0]} entries, expected {n}")
    if n == 0 or loss not in (SOFTMAX_CROSS_ENTROPY, BINARY_CROSS_ENTROPY):
        return 0 if weights is None else 0.0
    correct = count_correct(loss, &output[0, 0],
                            &targets[0, 0] if targets is not None else NULL,
                            <int*>&labels[0] if labels is not None else NULL,
                            &weights[0] if weights is not None else NULL, n, k)
    return int(correct) if weights is None else correct
