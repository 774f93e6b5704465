# The whole mini-batch loop of an epoch in one compiled call.
#
# For each batch: gather the rows of the shuffled order, forward through all
# layers (dropout included), fused loss and gradient, backward through all
# layers, penalties, clipping and the optimizer update of every parameter
# array. No Python runs per batch, except a progress call every
# `progress_every` batches, which is also where Ctrl-C is noticed. Every
# buffer is allocated once, when the EpochRunner is built at the start of fit.
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
#   B. by parameters: thread t owns a slice of each kernel's rows (and of
#      each bias), computes dW = X^T dZ for it over all rows of the batch,
#      then adds the penalty and updates that slice (elementwise).
# Barrier 1 separates A from B (B reads every row of dZ, and A reads the
# weights B is about to change); barrier 2 ends the batch. Clipping by norm
# needs all gradients before any update: one more barrier, only then.
# BLAS runs on one thread inside the team (the caller limits it).
#
# Inputs that are mostly zeros (MNIST: ~81% of the pixels) take the first
# layer through the sparse kernels of _sparse.pyx: phase A compresses each
# sample's row of X (its non-zero columns and values) instead of copying it,
# and both the forward product and the kernel's gradient skip the zeros
# (their sums then run in another order: results equal the dense path's up
# to rounding, and still do not depend on the number of threads).
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
# Batch size 1 with plain SGD has its own path: per sample, BLAS level-1
# calls over the rows whose input is non-zero (MNIST pixels are ~80% zero,
# ReLU outputs about half), with the update fused into the outer product.
#
# Sample weights (fit's sample_weight, class_weight) enter at one place, the
# loss kernel (_losses.weighted_loss_and_gradient): each batch's loss is
# sum_i w_i l_i / sum_i w_i, so dL/dz carries the weights and everything
# after it (backward, penalties, clipping, every update path) is unchanged.
# The batch's weight sum is computed by every thread (same order, same bits);
# a batch of weight 0 has loss and gradient 0. Without weights the pointer
# is NULL and the kernels multiply by exactly 1.0: the same bits as before.
#
# Strategies. EpochRunner._choose_strategy picks one Strategy (a cpdef enum
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
# | per_sample_sgd      | batch 1, plain SGD (momentum 0), no clip-   | _per_sample_sgd           | test_network: stochastic_plain_sgd_equals_  |
# |                     | ping, dropout, penalty; epoch without decay |                           | per_layer_path; test_plans: the_runner_     |
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
# | + sparse_input      | plan: input density below the profile's     | _gather compresses,       | test_sparse: sparse_and_dense_first_layer_  |
# |                     | break-even at the batch size (defaults:     | _sparse_grad, sparse_     | train_the_same; test_plans: every_plan_*    |
# |                     | 35%), no input dropout                      | forward                   |                                             |
# | + by_norm (clip)    | team_general with clipnorm or               | _update_by_norm,          | test_formulas: the_python_driver_steps_as_  |
# |                     | global_clipnorm > 0                         | _clip_scales              | the_fused_loop; test_network (clipnorm)     |
# | team size 1 or T    | TeamSize: measured per chunk (same bits)    | _run                      | test_threads; test_network: fused_fit_is_   |
# |                     |                                             |                           | bit_identical_for_any_thread_count          |
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

from descend._blas cimport axpy, dot, gemm
from descend._activations cimport activate, derivative
from descend._dense cimport (dense_forward, activation_backward, dense_grad_input,
                             dense_grad_params, dropout, descend_mix, gemm_rows,
                             bias_activation_row, activation_backward_columns)
from descend._sparse cimport (nonzero_entries, sparse_forward, sparse_grad_kernel,
                              sparse_scratch_ints, sparse_scratch_values)
from descend._contract cimport (OptimizerConfig, SGD, IDENTITY, MEAN_SQUARED_ERROR,
                               SOFTMAX_CROSS_ENTROPY, BINARY_CROSS_ENTROPY, LayerSpec,
                               Strategy, PER_SAMPLE_SGD, TEAM_GEMM_SGD, TEAM_GENERAL,
                               TEAM_BY_COLUMNS)
from descend._contract import Strategy as _Strategy
from descend._losses cimport weighted_loss_and_gradient, mean_scale
from descend._optim cimport (optimizer_step, add_penalty_gradient, sum_squares,
                             scale_and_clip, make_config_py, soft_threshold, clip_scale)
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
    int out_columns         # team_by_columns: output columns per forward block
    double alpha
    double dropout_rate     # on this layer's input; 0: none
    Param kernel
    Param bias              # bias.value is NULL when use_bias=False
    void* z                 # (batch, n_out) pre-activation
    void* a                 # (batch, n_out) activation (== z for identity)
    void* dz                # (batch, n_out) dL/da, then dL/dz
    void* dropped           # (batch, n_in) the input after dropout


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
    when it is cheap. The first retry comes right after the first timed
    chunk.
    What was learned is remembered across fits in this process, for the
    same workload. The first chunk of a fit is not timed: it pays for
    first touches of new buffers. The weights do not depend on the choice:
    work is cut into blocks whose size does not depend on the number of
    threads.
    """
    RETRY_SHARE = 0.05
    _memory = {}    # (n_threads, workload) -> (preferred team, {team: seconds per batch})

    def __init__(self, n_threads, workload=None):
        """workload: a hashable description of the work per batch (shapes,
        batch size, dtype): what was learned holds for the same workload."""
        self.n_threads = n_threads
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
            due = self.best in self.seconds
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


cdef class EpochRunner:
    """Compiled training epochs over fixed data, layers and optimizer.

    Built once per fit by descend.Sequential; holds references to every
    array it writes so that the raw pointers it keeps stay valid. Weights
    must be changed in place (Sequential.set_weights does so).
    """
    cdef LayerPlan* plans
    cdef double* partials
    cdef double* block_loss     # mean-loss share of each sample block of a batch
    cdef int sample_rows        # rows of a batch per phase-A block
    cdef double* clip_scales    # per parameter array (2 per layer), for clipping by norm
    cdef int n_layers
    cdef int batch_size
    cdef int n_threads
    cdef int loss
    cdef int n_outputs
    cdef long n_rows
    cdef bint is_float32
    cdef Strategy _strategy     # the batch path, chosen once by _choose_strategy
    cdef bint columns_sgd       # team_by_columns updates as team_gemm_sgd (else team_general)
    cdef int cores              # usable cores: blocks are cut per core, not per thread
    cdef bint by_norm           # clipping by norm (clipnorm or global_clipnorm)
    cdef readonly bint sparse_input     # the first layer's input goes through _sparse
    cdef readonly dict plan             # the descend.plans.Plan fields this runner uses
    cdef OptimizerConfig config
    cdef double clipnorm, global_clipnorm, clipvalue
    cdef object keep_alive
    cdef object team             # TeamSize: threads per chunk, adapted to the load
    # data and batch buffers (pointers into arrays held by keep_alive)
    cdef void* X
    cdef void* targets
    cdef int* labels
    cdef void* x_batch
    cdef void* targets_batch
    cdef int* labels_batch
    # sample weights (NULL: all 1, and no work for them) and the batch's
    cdef double* weights
    cdef double* weights_batch
    # the batch's rows of X, compressed (sparse_input): see _sparse.pyx
    cdef int* nz_index
    cdef void* nz_value
    cdef int* nz_count
    # sparse_grad_kernel's scratch, per thread: scratch_size ints and
    # scratch_values values
    cdef int* grad_scratch
    cdef void* grad_values
    cdef long scratch_size, scratch_values
    # distributed (set_distributed): this rank's share of each global batch, its
    # gradients summed over the ranks by one MPI_Allreduce a step, from the loop
    cdef int dist_rank, dist_size      # dist_size 0: not distributed
    cdef long global_batch
    cdef void* allreduce_fn
    cdef intptr_t mpi_datatype, mpi_op, mpi_comm
    cdef void* flat                     # every gradient array, then the batch's loss
    cdef void* send                     # its copy, sent (no MPI_IN_PLACE: ABI-specific)
    cdef long flat_size
    cdef double allreduce_seconds       # wall time inside MPI_Allreduce, and its calls
    cdef long allreduce_calls

    def __cinit__(self):
        self.dist_size = 0
        self.plans = NULL
        self.partials = NULL
        self.block_loss = NULL
        self.clip_scales = NULL

    def __dealloc__(self):
        free(self.plans)
        free(self.partials)
        free(self.block_loss)
        free(self.clip_scales)

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
        self.cores = max(1, cores)
        self.is_float32 = X.dtype == np.float32
        self.n_rows = X.shape[0]
        self.n_layers = len(layers)
        self.batch_size = batch_size
        self.n_threads = max(1, n_threads)
        self.loss = loss
        self.config = make_config_py(optimizer_config)
        self.clipnorm, self.global_clipnorm, self.clipvalue = clipnorm, global_clipnorm, clipvalue
        self.by_norm = clipnorm > 0 or global_clipnorm > 0
        # (wraparound is off in compiled code: no negative indices)
        self.n_outputs = (<LayerSpec>layers[len(layers) - 1]).kernel.shape[1]
        # the blockings and the first layer's path: from descend.plans (the
        # machine's measured profile, or the defaults), unless given
        self.plan = _choose_plan(X, layers, batch_size, self.n_threads, cores,
                                 optimizer_config, plan, sparse_input)
        self.sparse_input = self.plan["sparse_input"]
        self.sample_rows = self.plan["sample_rows"]
        self.team = TeamSize(self.n_threads, (
            batch_size, str(X.dtype), loss, bool(self.sparse_input),
            tuple((spec.kernel.shape, spec.activation, spec.dropout_rate)
                  for spec in layers)))
        self.keep_alive = [X, targets, labels, sample_weight]
        self.X, self.targets, self.labels = data(X), data(targets), <int*>data(labels)
        self.weights = <double*>data(sample_weight)
        self._allocate_batch_buffers(X, targets, labels)
        self._fill_layers(layers, X.dtype)
        self._strategy = self._choose_strategy(layers)
        # the plan records what runs: by columns only where the strategy allows it
        self.plan["by_columns"] = self._strategy == TEAM_BY_COLUMNS

    cdef Strategy _choose_strategy(self, list layers):
        """The one rule that picks the batch path (the table at the top)."""
        cdef LayerSpec spec
        cdef bint l1 = False, penalty_or_dropout = False
        for spec in layers:
            l1 = l1 or spec.kernel_l1 != 0 or spec.bias_l1 != 0
            penalty_or_dropout = (penalty_or_dropout or spec.kernel_l1 != 0 or spec.bias_l1 != 0
                                  or spec.kernel_l2 != 0 or spec.bias_l2 != 0
                                  or spec.dropout_rate > 0)
        plain_sgd = (self.config.kind == SGD and self.config.momentum == 0
                     and self.clipnorm == 0 and self.global_clipnorm == 0
                     and self.clipvalue == 0)
        dropout = any(spec.dropout_rate > 0 for spec in layers)
        self.columns_sgd = plain_sgd and not l1
        if self.plan.get("by_columns") and not dropout and not self.by_norm and not (
                self.columns_sgd and self.batch_size == 1 and not penalty_or_dropout):
            return TEAM_BY_COLUMNS
        if not plain_sgd or l1:
            return TEAM_GENERAL
        if self.batch_size == 1 and not penalty_or_dropout:
            return PER_SAMPLE_SGD
        return TEAM_GEMM_SGD

    cdef _allocate_batch_buffers(self, X, targets, labels):
        """The batch's rows (copied, or compressed for sparse_input), its targets
        or labels, the sparse kernels' scratch and the per-thread accumulators."""
        cdef int batch_size = self.batch_size
        dtype, width, sparse = X.dtype, X.shape[1], self.sparse_input
        x_batch = None if sparse else np.empty((batch_size, width), dtype=dtype)
        nz_index = np.empty((batch_size, width), np.int32) if sparse else None
        nz_value = np.empty((batch_size, width), dtype) if sparse else None
        nz_count = np.empty(batch_size, np.int32) if sparse else None
        # sparse_grad_kernel's scratch, per thread
        self.scratch_size = sparse_scratch_ints(batch_size)
        self.scratch_values = sparse_scratch_values(batch_size)
        grad_scratch = (np.empty((self.n_threads, self.scratch_size), np.int32)
                        if sparse else None)
        grad_values = (np.empty((self.n_threads, self.scratch_values), dtype)
                       if sparse else None)
        targets_batch = (None if targets is None else
                         np.empty((batch_size, targets.shape[1]), dtype=dtype))
        labels_batch = None if labels is None else np.empty(batch_size, dtype=np.int32)
        weights_batch = None if self.weights == NULL else np.empty(batch_size)
        self.keep_alive += [x_batch, targets_batch, labels_batch, nz_index, nz_value,
                            nz_count, grad_scratch, grad_values, weights_batch]
        self.weights_batch = <double*>data(weights_batch)
        self.nz_index, self.nz_value = <int*>data(nz_index), data(nz_value)
        self.nz_count = <int*>data(nz_count)
        self.grad_scratch, self.grad_values = <int*>data(grad_scratch), data(grad_values)
        self.x_batch, self.targets_batch = data(x_batch), data(targets_batch)
        self.labels_batch = <int*>data(labels_batch)
        self.plans = <LayerPlan*>malloc(self.n_layers * sizeof(LayerPlan))
        self.partials = <double*>calloc(self.n_threads * SLOT, sizeof(double))
        self.block_loss = <double*>calloc((batch_size + self.sample_rows - 1)
                                          // self.sample_rows, sizeof(double))
        self.clip_scales = <double*>calloc(2 * self.n_layers, sizeof(double))
        if (self.plans == NULL or self.partials == NULL or self.block_loss == NULL
                or self.clip_scales == NULL):
            raise MemoryError()

    cdef _fill_layers(self, list layers, dtype):
        """One LayerPlan per LayerSpec: its parameters, their gradient buffers
        and the batch's activation buffers."""
        cdef int i
        cdef LayerPlan* p
        cdef LayerSpec spec
        for i, spec in enumerate(layers):
            p = &self.plans[i]
            p.n_in, p.n_out = spec.kernel.shape[0], spec.kernel.shape[1]
            p.kernel_rows = self.plan["kernel_rows"][i]
            # a core's share of the outputs, in whole cache lines of float32
            share = (p.n_out + self.cores - 1) // self.cores
            p.out_columns = min(p.n_out, (share + 15) // 16 * 16)
            p.activation, p.alpha, p.dropout_rate = spec.activation, spec.alpha, spec.dropout_rate
            self._fill_param(&p.kernel, spec.kernel, spec.kernel_state, spec.kernel_l1,
                             spec.kernel_l2, spec.kernel_l1_proximal, 1.0)
            self._fill_param(&p.bias, spec.bias, spec.bias_state, spec.bias_l1,
                             spec.bias_l2, spec.bias_l1_proximal, 1.0 if spec.decay_bias else 0.0)
            z = np.empty((self.batch_size, p.n_out), dtype=dtype)
            # identity layers need no separate activation buffer
            a = z if p.activation == IDENTITY else np.empty_like(z)
            dz = np.empty_like(z)
            dropped = (np.empty((self.batch_size, p.n_in), dtype=dtype)
                       if p.dropout_rate > 0 else None)
            self.keep_alive.extend([z, a, dz, dropped])
            p.z, p.a, p.dz, p.dropped = data(z), data(a), data(dz), data(dropped)

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
        cdef int l
        cdef long offset = 0, itemsize = 4 if self.is_float32 else 8
        cdef LayerPlan* p
        if not 0 <= rank < size or size < 2 or global_batch < size:
            raise ValueError(f"rank {rank} of {size} ranks, global batch {global_batch}: "
                             "need 0 <= rank < size, size >= 2, global batch >= size")
        if (global_batch + size - 1) // size != self.batch_size:
            raise ValueError(f"batch_size {self.batch_size} must be the largest share "
                             f"of the global batch, {(global_batch + size - 1) // size}")
        if not allreduce_address:
            raise ValueError("allreduce_address must be the address of MPI_Allreduce")
        self.flat_size = 1
        for l in range(self.n_layers):
            self.flat_size += self.plans[l].kernel.size + self.plans[l].bias.size
        flat = np.zeros(self.flat_size, np.float32 if self.is_float32 else np.float64)
        send = np.empty_like(flat)
        self.keep_alive += [flat, send]
        self.flat, self.send = data(flat), data(send)
        for l in range(self.n_layers):     # the gradients become views of `flat`
            p = &self.plans[l]
            p.kernel.grad = <char*>self.flat + offset * itemsize
            offset += p.kernel.size
            if p.bias.value != NULL:
                p.bias.grad = <char*>self.flat + offset * itemsize
                offset += p.bias.size
        self.allreduce_fn = <void*><intptr_t>allreduce_address
        self.mpi_datatype, self.mpi_op, self.mpi_comm = datatype, op, comm
        self.dist_rank, self.dist_size, self.global_batch = rank, size, global_batch
        self._strategy = TEAM_GENERAL      # gradients first, then the update
        self.plan["by_columns"] = False

    def distributed_stats(self):
        """The allreduce's cost since set_distributed, or None if not distributed:
        {"allreduce_seconds": wall seconds thread 0 spent inside MPI_Allreduce
        (waiting for the slowest rank to arrive included), "allreduce_calls":
        its calls (one a step), "bytes_per_step": the bytes of the summed
        buffer (every gradient and the batch's loss)}."""
        if not self.dist_size:
            return None
        return {"allreduce_seconds": self.allreduce_seconds,
                "allreduce_calls": self.allreduce_calls,
                "bytes_per_step": self.flat_size * (4 if self.is_float32 else 8)}

    @property
    def strategy(self):
        """The batch path of run_epoch (the table at the top of _train.pyx):
        "per_sample_sgd" (batch 1, plain SGD; run_epoch falls back to
        "team_gemm_sgd" for an epoch given a weight decay), "team_gemm_sgd"
        or "team_general"."""
        return _Strategy(self._strategy).name.lower()

    cdef _fill_param(self, Param* param, value, tuple state, double l1, double l2,
                     bint proximal, double decay):
        """param from a parameter array (or None), its optimizer state, penalty
        and weight-decay factor; its gradient buffer is allocated here."""
        grad = None if value is None else np.empty_like(value)
        slots = list(state) + [None] * (3 - len(state))
        self.keep_alive.extend([value, grad] + slots)
        param.value = data(value)
        param.grad = data(grad)
        param.state1, param.state2, param.state3 = data(slots[0]), data(slots[1]), data(slots[2])
        param.size = 0 if value is None else value.size
        param.l1, param.l2, param.proximal, param.decay = l1, l2, proximal, decay

    def run_epoch(self, cnp.intp_t[::1] order, double learning_rate,
                  double weight_decay, long step, unsigned long long seed,
                  object progress=None, int progress_every=0):
        """Train one epoch over the rows of X in `order`.

        Returns a dict: loss_sum (sum over batches of the batch's mean loss,
        penalties included, times its size, or its weight sum with
        sample_weight), penalty_sum, n_batches, n_correct (classification;
        with sample_weight the correct samples' weight sum, a float), step
        (updates done so far), finite (False if a non-finite loss stopped
        the epoch early; the weights are then those before the failing
        batch's update), n_samples, and weight_sum (with sample_weight: the
        weights of the samples done).
        """
        if order.shape[0] > 0 and (np.min(order) < 0 or np.max(order) >= self.n_rows):
            raise ValueError(f"order must hold row indices in [0, {self.n_rows})")
        if self.is_float32:
            return self._run[float](order, learning_rate, weight_decay, step, seed,
                                    progress, progress_every)
        return self._run[double](order, learning_rate, weight_decay, step, seed,
                                 progress, progress_every)

    cdef dict _run(self, cnp.intp_t[::1] order, double learning_rate,
                   double weight_decay, long step, unsigned long long seed,
                   object progress, int progress_every, floating dummy=0):
        cdef long n = order.shape[0]
        # rows of X a batch takes from `order` (distributed: the global batch)
        cdef long rows = self.global_batch if self.dist_size else self.batch_size
        cdef long n_batches = (n + rows - 1) // rows
        cdef long chunk = progress_every if progress_every > 0 else n_batches
        cdef long batch = 0, stop, done
        cdef double loss_sum = 0.0, penalty_sum = 0.0, weight_sum = 0.0
        cdef double n_correct = 0
        cdef bint finite = True
        cdef Strategy strategy = self._strategy
        cdef bint per_sample
        cdef double totals[4]
        cdef int team
        cdef double started
        # the per-sample path has no weight decay: such an epoch runs the team's
        # plain SGD (the same update, batch 1)
        if strategy == PER_SAMPLE_SGD and weight_decay != 0:
            strategy = TEAM_GEMM_SGD
        per_sample = strategy == PER_SAMPLE_SGD     # one thread
        # Chunks of at most ~64 batches: the team size is chosen per chunk
        chunk = max(1, min(chunk, 64))
        while batch < n_batches and finite:
            stop = min(batch + chunk, n_batches)
            totals[0] = totals[1] = totals[2] = totals[3] = 0
            team = 1 if per_sample else self.team.choose()
            if not per_sample and self.team.retrying is not None:
                stop = batch + 1        # a retry of the other team size: one batch
            started = time.perf_counter()
            with nogil:
                if per_sample:
                    done = self._per_sample_sgd[floating](&order[0], batch, stop,
                                                          learning_rate, totals)
                else:
                    done = self._team_batches[floating](&order[0], n, batch, stop,
                                                        strategy, learning_rate,
                                                        weight_decay, step, seed, team,
                                                        totals)
            if not per_sample:
                self.team.record(team, (time.perf_counter() - started) / max(done - batch, 1),
                                 max(done - batch, 1))
            finite = done == stop
            step += done - batch
            loss_sum += totals[0]
            penalty_sum += totals[1]
            n_correct += totals[2]
            weight_sum += totals[3]
            batch = done
            PyErr_CheckSignals()    # Ctrl-C raises KeyboardInterrupt here
            if progress is not None and (batch % progress_every < chunk or batch == n_batches):
                # the running (weighted) mean loss: weight_sum counts the
                # samples done (distributed: of the global batches), or sums their weights
                progress(batch, loss_sum / weight_sum if weight_sum > 0 else 0.0)
        result = {"loss_sum": loss_sum, "penalty_sum": penalty_sum,
                  "n_batches": batch, "step": step, "finite": finite,
                  "n_samples": min(batch * rows, n),
                  "n_correct": <long>n_correct if self.weights == NULL else n_correct}
        if self.weights != NULL:
            result["weight_sum"] = weight_sum
        return result

    # ---- team_gemm_sgd and team_general: a team of threads over batches -----
    cdef long _team_batches(self, cnp.intp_t* order, long n, long first, long stop,
                            Strategy strategy, double learning_rate, double weight_decay,
                            long step, uint64_t seed, int T, double* totals,
                            floating dummy=0) noexcept nogil:
        """Train batches [first, stop); return the index of the first batch not
        done (stop, or the batch whose loss was not finite). totals gets
        (sum of (batch loss + penalty) * batch weight, sum of penalties, correct,
        sum of batch weights), a batch's weight being its size or the sum of
        its sample weights.
        T threads are asked for and share the work (the results do not depend
        on T). OpenMP may grant fewer (OMP_DYNAMIC, OMP_THREAD_LIMIT, nested
        regions): the work is cut over the team actually running."""
        cdef int t, i, blk, n_blocks, nb, nb_all, offset
        cdef long batch, start
        cdef long first_not_done[1]
        cdef int granted[1]
        cdef double batch_loss, penalty, batch_weight
        cdef uint64_t batch_seed
        cdef double* mine
        first_not_done[0] = stop
        granted[0] = 1
        with parallel(num_threads=T):
            t = threadid()
            T = team_size()
            if t == 0:
                granted[0] = T
            mine = &self.partials[t * SLOT]
            mine[ACC_LOSS] = mine[ACC_PENALTY] = mine[CORRECT] = mine[ACC_WEIGHT] = 0
            batch = first
            while batch < stop:
                if self.dist_size:
                    # this rank's contiguous share of global batch `batch`
                    start = batch * self.global_batch
                    nb_all = <int>min(self.global_batch, n - start)
                    offset = <int>((<long>nb_all * self.dist_rank) // self.dist_size)
                    nb = <int>((<long>nb_all * (self.dist_rank + 1)) // self.dist_size) - offset
                    start = start + offset
                else:
                    start = batch * self.batch_size
                    nb = <int>min(<long>self.batch_size, n - start)
                    nb_all, offset = nb, 0
                n_blocks = (nb + self.sample_rows - 1) // self.sample_rows
                batch_seed = descend_mix(seed, <uint64_t>batch)
                # every thread sums the batch's weights (same order, same bits);
                # distributed: the global batch's, all ranks' rows
                batch_weight = self._batch_weight(order + start - offset, nb_all)
                # phase A: this thread's blocks of samples (by columns: of
                # samples, then of every layer's outputs)
                if strategy == TEAM_BY_COLUMNS:
                    self._columns_forward[floating](order + start, nb, t, T, batch_weight,
                                                    &mine[CORRECT])
                else:
                    self._samples_phase_a[floating](order + start, nb, offset, batch_seed,
                                                    batch_weight, t, T, &mine[CORRECT])
                barrier()
                batch_loss = 0
                for blk in range(n_blocks):     # in block order: same sum for any T
                    batch_loss = batch_loss + self.block_loss[blk]
                if self.dist_size:
                    # the batch's loss and gradients summed over the ranks
                    batch_loss = self._sum_over_ranks[floating](nb, t, T, batch_loss)
                if not isfinite(batch_loss):
                    # every thread sees the same sum, so all leave together
                    first_not_done[0] = batch
                    break
                # phase B: this thread's blocks of every parameter array
                if strategy == TEAM_GEMM_SGD:
                    penalty = self._gemm_sgd_update[floating](
                        nb, t, T, learning_rate, weight_decay, step + (batch - first) + 1)
                elif strategy == TEAM_BY_COLUMNS:
                    penalty = self._columns_backward[floating](
                        nb, t, T, learning_rate, weight_decay, step + (batch - first) + 1)
                else:
                    penalty = self._general_update[floating](
                        nb, t, T, learning_rate, weight_decay, step + (batch - first) + 1,
                        self.dist_size != 0)
                if t == 0:
                    mine[ACC_LOSS] += batch_loss * batch_weight
                    mine[ACC_WEIGHT] += batch_weight
                mine[ACC_LOSS] += penalty * batch_weight
                mine[ACC_PENALTY] += penalty
                barrier()
                batch = batch + 1
        for i in range(granted[0]):
            totals[0] += self.partials[i * SLOT + ACC_LOSS]
            totals[1] += self.partials[i * SLOT + ACC_PENALTY]
            totals[2] += self.partials[i * SLOT + CORRECT]
            totals[3] += self.partials[i * SLOT + ACC_WEIGHT]
        return first_not_done[0]

    cdef void _samples_phase_a(self, cnp.intp_t* rows, int nb, int offset,
                               uint64_t batch_seed, double batch_weight, int t, int T,
                               double* correct, floating dummy=0) noexcept nogil:
        """Phase A by samples: thread t's blocks of sample_rows rows (block b
        to thread b mod T) gathered, then forward, loss and backward to dL/dz
        on them; block_loss gets each block's share of the batch's loss."""
        cdef int blk = t
        cdef int n_blocks = (nb + self.sample_rows - 1) // self.sample_rows
        while blk < n_blocks:
            self._gather[floating](rows, blk * self.sample_rows,
                                   min((blk + 1) * self.sample_rows, nb))
            self.block_loss[blk] = self._samples_forward_backward[floating](
                blk * self.sample_rows, min((blk + 1) * self.sample_rows, nb),
                offset, batch_seed, batch_weight, correct)
            blk = blk + T

    cdef inline double _batch_weight(self, cnp.intp_t* rows, int nb) noexcept nogil:
        """What the batch's mean loss divides by: nb, or the sum of its weights."""
        cdef int i
        cdef double total = 0.0
        if self.weights == NULL:
            return nb
        for i in range(nb):
            total += self.weights[rows[i]]
        return total

    cdef void _gather(self, cnp.intp_t* rows, int r0, int r1,
                      floating dummy=0) noexcept nogil:
        """Copy rows[r0:r1] of X (and the targets) into the batch buffers;
        with sparse_input, compress the rows of X instead of copying them."""
        cdef int i
        cdef long d = self.plans[0].n_in
        cdef long k = self.n_outputs
        cdef floating* X = <floating*>self.X
        cdef floating* T = <floating*>self.targets
        cdef int* Y = self.labels
        cdef floating* xb = <floating*>self.x_batch
        cdef floating* tb = <floating*>self.targets_batch
        cdef int* yb = self.labels_batch
        for i in range(r0, r1):
            if self.sparse_input:
                self.nz_count[i] = nonzero_entries(X + rows[i] * d, <int>d,
                                                   self.nz_index + i * d,
                                                   <floating*>self.nz_value + i * d)
            else:
                memcpy(xb + i * d, X + rows[i] * d, d * sizeof(floating))
            if T != NULL:
                memcpy(tb + i * k, T + rows[i] * k, k * sizeof(floating))
            if Y != NULL:
                yb[i] = Y[rows[i]]
            if self.weights != NULL:
                self.weights_batch[i] = self.weights[rows[i]]

    cdef inline floating* _input(self, int l, floating dummy=0) noexcept nogil:
        """The input buffer of layer l as it enters its kernel (after dropout)."""
        if self.plans[l].dropout_rate > 0:
            return <floating*>self.plans[l].dropped
        if l == 0:
            return <floating*>self.x_batch
        return <floating*>self.plans[l - 1].a

    cdef double _samples_forward_backward(self, int r0, int r1, int offset,
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
        cdef LayerPlan* last = &self.plans[self.n_layers - 1]
        cdef floating* raw
        cdef floating* inp
        cdef double loss, scale
        cdef long k = last.n_out
        if rows <= 0:
            return 0.0
        for l in range(self.n_layers):
            p = &self.plans[l]
            inp = self._input[floating](l)
            if p.dropout_rate > 0:
                raw = (<floating*>self.x_batch if l == 0
                       else <floating*>self.plans[l - 1].a)
                dropout(inp + <long>r0 * p.n_in, raw + <long>r0 * p.n_in, rows, p.n_in,
                        offset + r0, p.dropout_rate, descend_mix(batch_seed, <uint64_t>l), 1)
            if l == 0 and self.sparse_input:
                self._sparse_first_layer[floating](r0, r1)
                continue
            dense_forward(inp + <long>r0 * p.n_in, rows, p.n_in, <floating*>p.kernel.value,
                          <floating*>p.bias.value, p.n_out,
                          <floating*>p.z + <long>r0 * p.n_out,
                          <floating*>p.a + <long>r0 * p.n_out, p.activation,
                          <floating>p.alpha, 1)
        loss = self._rows_loss[floating](r0, r1, batch_weight, correct)
        # backward to dL/dz of every layer: layer l writes dL/d(its input)
        # into layer l-1's dz, through the dropout mask if there is one
        for l in range(self.n_layers - 1, -1, -1):
            p = &self.plans[l]
            activation_backward(<floating*>p.z + <long>r0 * p.n_out,
                                <floating*>p.a + <long>r0 * p.n_out,
                                <floating*>p.dz + <long>r0 * p.n_out, rows, p.n_out,
                                p.activation, <floating>p.alpha, 1)
            if l > 0:
                inp = <floating*>self.plans[l - 1].dz + <long>r0 * p.n_in
                dense_grad_input(<floating*>p.dz + <long>r0 * p.n_out, rows, p.n_out,
                                 <floating*>p.kernel.value, p.n_in, inp, 1)
                if p.dropout_rate > 0:
                    dropout(inp, inp, rows, p.n_in, offset + r0, p.dropout_rate,
                            descend_mix(batch_seed, <uint64_t>l), 1)
        return loss

    cdef void _sparse_first_layer(self, int r0, int r1, floating dummy=0) noexcept nogil:
        """The first layer's forward on rows [r0, r1) of the batch, from their
        compressed rows (sparse_input)."""
        cdef LayerPlan* p = &self.plans[0]
        sparse_forward(self.nz_index + <long>r0 * p.n_in,
                       <floating*>self.nz_value + <long>r0 * p.n_in,
                       self.nz_count + r0, r1 - r0, p.n_in,
                       <floating*>p.kernel.value, <floating*>p.bias.value, p.n_out,
                       <floating*>p.z + <long>r0 * p.n_out,
                       <floating*>p.a + <long>r0 * p.n_out, p.activation,
                       <floating>p.alpha)

    cdef double _rows_loss(self, int r0, int r1, double batch_weight, double* correct,
                           floating dummy=0) noexcept nogil:
        """The loss of rows [r0, r1) and its gradient dL/da of the last layer
        (the (weighted) mean over the batch's samples, and outputs for the
        elementwise losses); adds their correct predictions to correct[0].
        Returns these rows' share of the batch's loss."""
        cdef LayerPlan* last = &self.plans[self.n_layers - 1]
        cdef long k = last.n_out
        cdef int rows = r1 - r0
        cdef double scale = mean_scale(self.loss, batch_weight, k)
        cdef floating* targets = <floating*>self.targets_batch
        cdef int* labels = self.labels_batch
        cdef double* weights = self.weights_batch + r0 if self.weights != NULL else NULL
        cdef double loss = scale * weighted_loss_and_gradient(
            self.loss, <floating*>last.a + r0 * k,
            targets + r0 * k if targets != NULL else NULL,
            labels + r0 if labels != NULL else NULL, weights,
            <floating*>last.dz + r0 * k, rows, <int>k, scale, 1)
        correct[0] += count_correct(self.loss, <floating*>last.a + r0 * k,
                                    targets + r0 * k if targets != NULL else NULL,
                                    labels + r0 if labels != NULL else NULL, weights,
                                    rows, <int>k)
        return loss

    # ---- team_by_columns: layer by layer, blocks of columns --------------------
    cdef void _columns_forward(self, cnp.intp_t* rows, int nb, int t, int T,
                               double batch_weight, double* correct,
                               floating dummy=0) noexcept nogil:
        """Phase A of team_by_columns: this thread's blocks of samples are
        gathered (and go through the sparse first layer); then each layer,
        after a barrier, runs all the batch's rows through this thread's
        blocks of its output columns (block b of p.out_columns columns to
        thread b mod T: one GEMM against that slice of the kernel, which
        stays in this core's cache from batch to batch); then the loss and
        the last layer's dL/dz on the sample blocks. block_loss gets each
        sample block's share of the loss."""
        cdef int blk, l, c0, r0, r1, n_blocks = (nb + self.sample_rows - 1) // self.sample_rows
        cdef LayerPlan* p
        cdef LayerPlan* last = &self.plans[self.n_layers - 1]
        blk = t
        while blk < n_blocks:
            r0, r1 = blk * self.sample_rows, min((blk + 1) * self.sample_rows, nb)
            self._gather[floating](rows, r0, r1)
            if self.sparse_input:
                self._sparse_first_layer[floating](r0, r1)
            blk = blk + T
        for l in range(1 if self.sparse_input else 0, self.n_layers):
            barrier()
            p = &self.plans[l]
            c0 = t * p.out_columns
            while c0 < p.n_out:
                self._columns_product[floating](p, l, nb, c0, min(c0 + p.out_columns, p.n_out))
                c0 = c0 + T * p.out_columns
        barrier()
        blk = t
        while blk < n_blocks:
            r0, r1 = blk * self.sample_rows, min((blk + 1) * self.sample_rows, nb)
            self.block_loss[blk] = self._rows_loss[floating](r0, r1, batch_weight, correct)
            activation_backward(<floating*>last.z + <long>r0 * last.n_out,
                                <floating*>last.a + <long>r0 * last.n_out,
                                <floating*>last.dz + <long>r0 * last.n_out, r1 - r0,
                                last.n_out, last.activation, <floating>last.alpha, 1)
            blk = blk + T

    cdef void _columns_product(self, LayerPlan* p, int l, int nb, int c0, int c1,
                               floating dummy=0) noexcept nogil:
        """z[:, c0:c1] := x . W[:, c0:c1] + b[c0:c1] ; a[:, c0:c1] := act(z) over
        the batch's nb rows (x: layer l's input)."""
        cdef int i
        cdef floating* z = <floating*>p.z
        cdef floating* a = <floating*>p.a
        cdef floating* b = <floating*>p.bias.value
        gemm(False, False, nb, c1 - c0, p.n_in, <floating>1, self._input[floating](l),
             p.n_in, <floating*>p.kernel.value + c0, p.n_out, <floating>0, z + c0, p.n_out)
        for i in range(nb):
            bias_activation_row(z + <long>i * p.n_out + c0, a + <long>i * p.n_out + c0,
                                b + c0 if b != NULL else NULL, c1 - c0, p.activation,
                                <floating>p.alpha)

    cdef double _columns_backward(self, int nb, int t, int T, double learning_rate,
                                  double weight_decay, long step,
                                  floating dummy=0) noexcept nogil:
        """Phase B of team_by_columns, last layer first: this thread's blocks of
        p.kernel_rows kernel rows [k0, k1) (block b to thread b mod T) first
        give the previous layer's dL/dz on columns [k0, k1) (dZ W[k0:k1]^T,
        then its activation's derivative: those rows of W are this thread's,
        so it reads them before it updates them), then their update (as
        team_gemm_sgd or team_general); then the bias; a barrier before the
        previous layer, whose dL/dz is then whole. Returns the penalty of
        this thread's blocks."""
        cdef int l, k0, k1
        cdef LayerPlan* p
        cdef LayerPlan* prev
        cdef double penalty = 0.0
        for l in range(self.n_layers - 1, -1, -1):
            p = &self.plans[l]
            prev = &self.plans[l - 1] if l > 0 else NULL
            k0 = t * p.kernel_rows
            while k0 < p.n_in:
                k1 = min(k0 + p.kernel_rows, p.n_in)
                if prev != NULL:
                    gemm(False, True, nb, k1 - k0, p.n_out, <floating>1, <floating*>p.dz,
                         p.n_out, <floating*>p.kernel.value + <long>k0 * p.n_out, p.n_out,
                         <floating>0, <floating*>prev.dz + k0, p.n_in)
                    activation_backward_columns(<floating*>prev.z + k0, <floating*>prev.a + k0,
                                                <floating*>prev.dz + k0, nb, k1 - k0, p.n_in,
                                                prev.activation, <floating>prev.alpha)
                if self.columns_sgd:
                    penalty += self._sgd_through_gemm[floating](p, l, nb, k0, k1, t,
                                                                learning_rate, weight_decay)
                else:
                    self._kernel_gradient[floating](l, nb, k0, k1, t)
                    penalty += _penalize[floating](&p.kernel, <long>k0 * p.n_out,
                                                   <long>k1 * p.n_out)
                    _step[floating](&self.config, &p.kernel, <long>k0 * p.n_out,
                                    <long>k1 * p.n_out, learning_rate, weight_decay, step,
                                    self.clipvalue)
                k0 = k0 + T * p.kernel_rows
            penalty += self._bias_update[floating](l, nb, t, T, learning_rate, weight_decay,
                                                   step, True, True)
            if prev != NULL:
                barrier()
        return penalty

    # ---- phase B of team_gemm_sgd ---------------------------------------------
    cdef double _gemm_sgd_update(self, int nb, int t, int T, double learning_rate,
                                 double weight_decay, long step,
                                 floating dummy=0) noexcept nogil:
        """Phase B, plain SGD: each block of kernel rows updated by one GEMM
        (_sgd_through_gemm: dW is never written out), then the bias. Kernel
        rows go in blocks of p.kernel_rows, block b to thread b mod T.
        Returns the penalty of this thread's blocks."""
        cdef int l, k0, k1
        cdef LayerPlan* p
        cdef double penalty = 0.0
        for l in range(self.n_layers):
            p = &self.plans[l]
            k0 = t * p.kernel_rows
            while k0 < p.n_in:
                k1 = min(k0 + p.kernel_rows, p.n_in)
                penalty += self._sgd_through_gemm[floating](p, l, nb, k0, k1, t,
                                                            learning_rate, weight_decay)
                k0 = k0 + T * p.kernel_rows
            penalty += self._bias_update[floating](l, nb, t, T, learning_rate,
                                                   weight_decay, step, True, True)
        return penalty

    cdef double _bias_update(self, int l, int nb, int t, int T, double learning_rate,
                             double weight_decay, long step, bint update, bint gradient,
                             floating dummy=0) noexcept nogil:
        """db of layer l on this thread's part of the bias (if `gradient`), its
        penalty (returned) and, if `update`, the optimizer step on it."""
        cdef LayerPlan* p = &self.plans[l]
        cdef int j0 = part(p.n_out, t, T), j1 = part(p.n_out, t + 1, T)
        cdef double penalty
        if gradient:
            dense_grad_params(self._input[floating](l), nb, p.n_in, <floating*>p.dz,
                              p.n_out, NULL, <floating*>p.bias.grad, 0, 0, j0, j1, 1)
        penalty = _penalize[floating](&p.bias, j0, j1)
        if update:
            _step[floating](&self.config, &p.bias, j0, j1, learning_rate,
                            weight_decay, step, self.clipvalue)
        return penalty

    # ---- phase B of team_general -------------------------------------------------
    cdef double _general_update(self, int nb, int t, int T, double learning_rate,
                                double weight_decay, long step, bint summed,
                                floating dummy=0) noexcept nogil:
        """Phase B, any optimizer: dW, db, penalties, clipping by value and the
        update. Kernel rows go in blocks of p.kernel_rows, block b to thread
        b mod T; each block is updated right after its gradient is computed,
        while it is still in cache (unless by_norm: then every gradient first,
        _update_by_norm after). `summed`: the gradients are there already
        (distributed: _sum_over_ranks). Returns the penalty of this thread's
        blocks."""
        cdef int l, k0, k1
        cdef LayerPlan* p
        cdef double penalty = 0.0
        for l in range(self.n_layers):
            p = &self.plans[l]
            k0 = t * p.kernel_rows
            while k0 < p.n_in:
                k1 = min(k0 + p.kernel_rows, p.n_in)
                if not summed:
                    self._kernel_gradient[floating](l, nb, k0, k1, t)
                penalty += _penalize[floating](&p.kernel, <long>k0 * p.n_out,
                                               <long>k1 * p.n_out)
                if not self.by_norm:
                    _step[floating](&self.config, &p.kernel, <long>k0 * p.n_out,
                                    <long>k1 * p.n_out, learning_rate, weight_decay,
                                    step, self.clipvalue)
                k0 = k0 + T * p.kernel_rows
            penalty += self._bias_update[floating](l, nb, t, T, learning_rate,
                                                   weight_decay, step, not self.by_norm,
                                                   not summed)
        if self.by_norm:
            self._update_by_norm[floating](t, T, learning_rate, weight_decay, step)
        return penalty

    cdef double _sum_over_ranks(self, int nb, int t, int T, double batch_loss,
                                floating dummy=0) noexcept nogil:
        """A distributed step between phases A and B: this thread's blocks of
        every gradient (this rank's nb rows), then thread 0 puts the batch's
        loss after them and sums the flat buffer over the ranks with one
        MPI_Allreduce, between two barriers. Returns the summed loss (every
        rank and thread gets the same value: all stop together on NaN)."""
        cdef int l, k0, j0, j1
        cdef LayerPlan* p
        cdef floating* flat = <floating*>self.flat
        cdef double started
        for l in range(self.n_layers):
            p = &self.plans[l]
            k0 = t * p.kernel_rows
            while k0 < p.n_in:
                self._kernel_gradient[floating](l, nb, k0, min(k0 + p.kernel_rows, p.n_in), t)
                k0 = k0 + T * p.kernel_rows
            if p.bias.value != NULL:
                j0, j1 = part(p.n_out, t, T), part(p.n_out, t + 1, T)
                dense_grad_params(self._input[floating](l), nb, p.n_in, <floating*>p.dz,
                                  p.n_out, NULL, <floating*>p.bias.grad, 0, 0, j0, j1, 1)
        barrier()
        if t == 0:
            flat[self.flat_size - 1] = <floating>batch_loss
            memcpy(self.send, self.flat, self.flat_size * sizeof(floating))
            started = wall_seconds()
            call_allreduce(self.allreduce_fn, self.send, self.flat, <int>self.flat_size,
                           self.mpi_datatype, self.mpi_op, self.mpi_comm)
            self.allreduce_seconds += wall_seconds() - started
            self.allreduce_calls += 1
        barrier()
        return flat[self.flat_size - 1]

    cdef void _update_by_norm(self, int t, int T, double learning_rate,
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
            self._clip_scales[floating]()
        barrier()
        for l in range(self.n_layers):
            p = &self.plans[l]
            j0, j1 = part(p.n_out, t, T), part(p.n_out, t + 1, T)
            k0 = t * p.kernel_rows
            while k0 < p.n_in:
                k1 = min(k0 + p.kernel_rows, p.n_in)
                _scale_and_step[floating](&self.config, &p.kernel, <long>k0 * p.n_out,
                                          <long>k1 * p.n_out, self.clip_scales[2 * l],
                                          learning_rate, weight_decay, step)
                k0 = k0 + T * p.kernel_rows
            _scale_and_step[floating](&self.config, &p.bias, j0, j1,
                                      self.clip_scales[2 * l + 1], learning_rate,
                                      weight_decay, step)

    cdef void _clip_scales(self, floating dummy=0) noexcept nogil:
        """Gradient scale per parameter array: min(1, clipnorm / ||g_array||)
        or, for global_clipnorm, min(1, global_clipnorm / ||all g||)."""
        cdef int l, i
        cdef double total = 0.0, scale
        cdef Param* q
        for i in range(2 * self.n_layers):
            q = &self.plans[i // 2].kernel if i % 2 == 0 else &self.plans[i // 2].bias
            self.clip_scales[i] = _sum_sq[floating](q, 0, q.size)
            total += self.clip_scales[i]
        for i in range(2 * self.n_layers):
            if self.global_clipnorm > 0:
                self.clip_scales[i] = clip_scale(self.global_clipnorm, total)
            else:
                self.clip_scales[i] = clip_scale(self.clipnorm, self.clip_scales[i])

    cdef void _kernel_gradient(self, int l, int nb, int k0, int k1, int t,
                               floating dummy=0) noexcept nogil:
        """dW[k0:k1] := (X^T dZ)[k0:k1] of layer l (thread t's scratch)."""
        cdef LayerPlan* p = &self.plans[l]
        cdef floating* grad = <floating*>p.kernel.grad
        if l == 0 and self.sparse_input:
            memset(grad + <long>k0 * p.n_out, 0, <long>(k1 - k0) * p.n_out * sizeof(floating))
            self._sparse_grad[floating](nb, k0, k1, 1, grad, t)
        else:
            dense_grad_params(self._input[floating](l), nb, p.n_in, <floating*>p.dz,
                              p.n_out, grad, NULL, k0, k1, 0, 0, 1)

    cdef void _sparse_grad(self, int nb, int k0, int k1, double scale, floating* out,
                           int t) noexcept nogil:
        """out[k0:k1] += scale * (X^T dZ)[k0:k1] of the first layer, sparse input,
        with thread t's scratch."""
        cdef LayerPlan* p = &self.plans[0]
        sparse_grad_kernel(self.nz_index, <floating*>self.nz_value, self.nz_count, nb,
                           p.n_in, <floating*>p.dz, p.n_out, k0, k1, <floating>scale, out,
                           self.grad_scratch + t * self.scratch_size,
                           <floating*>self.grad_values + t * self.scratch_values)

    cdef double _sgd_through_gemm(self, LayerPlan* p, int l, int nb, int k0, int k1,
                                  int t, double learning_rate, double weight_decay,
                                  floating dummy=0) noexcept nogil:
        """Plain SGD on kernel rows [k0, k1): W := (1 - lr (wd + 2 l2)) W - lr X^T dZ
        as one GEMM (alpha = -lr, beta = the decay factor), so dW is never
        written out and read back; for a sparse input, the decay and then
        the sparse product added into W. The same update as optimizer_step's
        SGD with momentum 0 and the L2 penalty's gradient 2 l2 w. Returns the
        rows' penalty (before the update)."""
        cdef long begin = <long>k0 * p.n_out, end = <long>k1 * p.n_out
        cdef double penalty = 0.0
        cdef double shrink = 1 - learning_rate * (weight_decay * p.kernel.decay
                                                  + 2 * p.kernel.l2)
        if p.kernel.l2 != 0:
            penalty = p.kernel.l2 * sum_squares(<floating*>p.kernel.value + begin,
                                                end - begin, 1)
        if l == 0 and self.sparse_input:
            if shrink != 1:
                scale_and_clip(<floating*>p.kernel.value + begin, end - begin, shrink, 0.0, 1)
            self._sparse_grad[floating](nb, k0, k1, -learning_rate,
                                        <floating*>p.kernel.value, t)
            return penalty
        gemm_rows(True, False, k1 - k0, p.n_out, nb, <floating>(-learning_rate),
                  self._input[floating](l) + k0, p.n_in, <floating*>p.dz, p.n_out,
                  <floating>shrink, <floating*>p.kernel.value + begin, p.n_out, 1)
        return penalty

    # ---- per_sample_sgd: batch size 1, plain SGD ------------------------------
    cdef long _per_sample_sgd(self, cnp.intp_t* order, long first, long stop,
                           double learning_rate, double* totals,
                           floating dummy=0) noexcept nogil:
        """Plain SGD, one sample per update, over samples [first, stop).

        w -= lr * x_i * dz for the rows i where the layer's input x_i != 0
        (the others have a zero gradient), dL/dx_i computed only where the
        previous layer's activation derivative is non-zero. Same math as the
        general path (w -= lr * X^T dZ), without touching zero rows."""
        cdef long s, row
        cdef int l, i
        cdef LayerPlan* p
        cdef LayerPlan* last = &self.plans[self.n_layers - 1]
        cdef floating* X = <floating*>self.X
        cdef floating* T = <floating*>self.targets
        cdef int* Y = self.labels
        cdef floating* x
        cdef floating* z
        cdef floating* a
        cdef floating* dz
        cdef floating* w
        cdef floating xi
        cdef floating neg_lr = <floating>(-learning_rate)
        cdef double loss, scale, weight = 1.0
        cdef double* weights
        cdef int k = last.n_out
        for s in range(first, stop):
            row = order[s]
            # a sample's weighted mean loss is its loss, or 0 for a zero weight
            weights = self.weights + row if self.weights != NULL else NULL
            if weights != NULL:
                weight = weights[0]
            scale = mean_scale(self.loss, weight, k)
            # forward: z = b + sum over non-zero inputs x_i of x_i * W[i, :]
            x = X + row * self.plans[0].n_in
            for l in range(self.n_layers):
                p = &self.plans[l]
                z, a, w = <floating*>p.z, <floating*>p.a, <floating*>p.kernel.value
                if p.bias.value != NULL:
                    memcpy(z, p.bias.value, p.n_out * sizeof(floating))
                else:
                    for i in range(p.n_out):
                        z[i] = 0
                for i in range(p.n_in):
                    if x[i] != 0:
                        axpy(p.n_out, x[i], w + <long>i * p.n_out, z)
                if a != z:
                    for i in range(p.n_out):
                        a[i] = activate(z[i], p.activation, <floating>p.alpha)
                x = a
            loss = scale * weighted_loss_and_gradient(self.loss, <floating*>last.a,
                                                      T + row * k if T != NULL else NULL,
                                                      Y + row if Y != NULL else NULL,
                                                      weights, <floating*>last.dz, 1, k,
                                                      scale, 1)
            if not isfinite(loss):
                return s
            totals[0] += loss * weight
            totals[2] += count_correct(self.loss, <floating*>last.a,
                                       T + row * k if T != NULL else NULL,
                                       Y + row if Y != NULL else NULL, weights, 1, k)
            totals[3] += weight
            # backward and update, last layer first
            for l in range(self.n_layers - 1, -1, -1):
                p = &self.plans[l]
                dz, w = <floating*>p.dz, <floating*>p.kernel.value
                activation_backward(<floating*>p.z, <floating*>p.a, dz, 1, p.n_out,
                                    p.activation, <floating>p.alpha, 1)
                x = X + row * p.n_in if l == 0 else <floating*>self.plans[l - 1].a
                if l > 0:
                    # dL/dx_i with the old weights, where it can matter
                    self._sparse_input_grad[floating](l, dz, w)
                for i in range(p.n_in):
                    if x[i] != 0:
                        axpy(p.n_out, neg_lr * x[i], dz, w + <long>i * p.n_out)
                if p.bias.value != NULL:
                    axpy(p.n_out, neg_lr, dz, <floating*>p.bias.value)
        return stop

    cdef void _sparse_input_grad(self, int l, floating* dz, floating* w,
                                 floating dummy=0) noexcept nogil:
        """Layer l-1's dL/da_i = W[i, :] . dz where its act'(z_i) != 0, else 0."""
        cdef LayerPlan* prev = &self.plans[l - 1]
        cdef LayerPlan* p = &self.plans[l]
        cdef floating* out = <floating*>prev.dz
        cdef floating* z = <floating*>prev.z
        cdef floating* a = <floating*>prev.a
        cdef int i
        for i in range(p.n_in):
            if derivative(z[i], a[i], prev.activation, <floating>prev.alpha) != 0:
                out[i] = dot(p.n_out, w + <long>i * p.n_out, dz)
            else:
                out[i] = 0


cdef double _penalize(Param* q, long begin, long end, floating dummy=0) noexcept nogil:
    if q.value == NULL or end <= begin or (q.l1 == 0 and q.l2 == 0):
        return 0.0
    cdef double penalty
    if not q.proximal:
        return add_penalty_gradient(<floating*>q.value + begin, <floating*>q.grad + begin,
                                    end - begin, q.l1, q.l2, 1)
    # proximal L1: its value counts in the loss, its step comes after the update
    penalty = add_penalty_gradient(<floating*>q.value + begin, <floating*>q.grad + begin,
                                   end - begin, 0.0, q.l2, 1)
    return penalty + q.l1 * _sum_abs(<floating*>q.value + begin, end - begin)


cdef double _sum_abs(floating* w, long n) noexcept nogil:
    cdef long i
    cdef double total = 0.0
    for i in range(n):
        total += w[i] if w[i] > 0 else -w[i]
    return total


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
