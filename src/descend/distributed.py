"""Synchronous data-parallel training over MPI (mpi4py).

Run the one-process script under an MPI launcher with one more argument::

    mpiexec -n 4 python train.py      # train.py: net.fit(X, y, ..., distributed=dn.distributed.MPI())

Semantics (Horovod / PyTorch DDP style, with the global batch of the
one-process run):

* ``batch_size`` is the global batch. Each step uses the samples the
  one-process run uses; rank r computes the gradient of its contiguous
  share of the batch (rows ``[nb r / p, nb (r + 1) / p)``), and one
  ``MPI_Allreduce`` per step sums a single flat buffer holding every
  gradient, the loss and the count of correct predictions. Every rank then
  adds the penalties, clips and applies the same update, so the weights are
  the one-process weights up to the rounding of the sum, and equal on every
  rank.
* Dropout masks are keyed by the sample's row within the global batch and
  the batch's index: a rank's share gets the masks of the one-process run.
* Parameters, optimizer state and the random generator are broadcast from
  rank 0 at the start; a start-up check compares the ranks' network, data
  shapes, dtypes, seeds, fit arguments and (not sharded) a digest of the
  data and raises a ValueError naming the rank and the difference (on every
  rank: no hang).
* Losses and metrics come from allreduced sums (validation data is split
  between the ranks too), so every rank logs the same values and takes the
  same early-stopping and schedule decisions (``stop_training`` is then
  rank 0's on every rank). ``allreduce_seconds`` (this rank's wall time
  inside MPI_Allreduce, waiting for the slowest rank included: timed inside
  the compiled loop, or around the step loop's call) is logged per epoch,
  and ``net.distributed_stats_`` sums it over the fit with the loop used,
  the ranks, the steps and the bytes of the buffer summed a step. Each rank's default
  ``n_threads`` is its node's cores shared by the ranks on that node.
  CSVLogger, ModelCheckpoint, TensorBoard and progress output act on rank 0
  only, as does ``Sequential.save`` of a model trained this way.
* An exception or Ctrl-C on one rank during training prints that rank's
  message and aborts the whole job (``MPI_Abort``): never a hang.

Two drivers of the same step. With X in memory, not sharded, and every
step giving each rank at least one row, the allreduce runs inside the
compiled epoch loop (``EpochRunner.set_distributed``: MPI_Allreduce of the
library mpi4py loaded, looked up at run time, called by thread 0 between
two barriers): no return to Python per step. Otherwise (sharded input, a
memmap or h5py X, tiny batches) the step loop below runs each step's kernels
from Python and returns to it once a step (its cost: docs/distributed.md).
"""
import hashlib
import os
import sys
import time
import traceback

import numpy as np

from descend import _losses, _threads, reference
from descend._contract import Activation
from descend._dense import activation_derivative_py
from descend._sparse import sparse_forward_py, sparse_grad_kernel_py
from descend._validation import check_bool, check_int, error_message
from descend._outofcore import LazyRows, is_lazy
from descend._sample_weight import fit_weights, sample_classes
from descend.training import (DivergenceError, FitConfig, History, Trainer, _check_batch_size,
                              held_objects, log_keys, loop_settings, make_trainer,
                              record_plan, runner_specs, set_classes)

__all__ = ["MPI"]


def _mpi4py():
    try:
        from mpi4py import MPI as mpi
    except ImportError as exc:   # pragma: no cover - depends on the environment
        raise ImportError("descend.distributed.MPI needs mpi4py and an MPI library: "
                          "pip install 'descend[mpi]' (mpi4py and mpich)") from exc
    return mpi


def _allreduce_address():
    """The address of MPI_Allreduce in the MPI library mpi4py loaded (looked up
    through mpi4py's extension module, which links it), or None."""
    import ctypes
    try:
        library = ctypes.CDLL(_mpi4py().__file__)
        return ctypes.cast(library.MPI_Allreduce, ctypes.c_void_p).value
    except (OSError, AttributeError):
        return None


class MPI:
    """Data-parallel training over an MPI communicator.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm or None, default None
        The ranks that train together; None is ``MPI.COMM_WORLD``. Any
        intra-communicator works (for example one from ``Comm.Split``).
    sharded : bool, default False
        False: every rank passes the same X, y (an array or an np.memmap) and
        reads only its rows of each batch. True: each rank passes its own
        shard; the global data is the shards in rank order, each epoch every
        rank visits its rows in the order of one global permutation drawn from
        the shared seed, and step s takes each rank's next ``batch_size / p``
        rows (a rank whose shard is used up contributes none).

    Raises
    ------
    ImportError
        mpi4py is not installed (``pip install 'descend[mpi]'``).
    TypeError
        `comm` is not an mpi4py communicator or `sharded` not a bool.

    Examples
    --------
    >>> import descend as dn
    >>> dist = dn.distributed.MPI()          # doctest: +SKIP
    >>> net.fit(X, y, batch_size=256, distributed=dist)   # doctest: +SKIP
    """

    _compiled_loop = True   # False: the step loop (returns to Python a step), for comparisons

    def __init__(self, comm=None, sharded=False):
        mpi = _mpi4py()
        if comm is None:
            comm = mpi.COMM_WORLD
        if not isinstance(comm, mpi.Intracomm):
            raise TypeError(error_message("comm", "an mpi4py intra-communicator (e.g. "
                                          "MPI.COMM_WORLD) or None", comm))
        self.comm = comm
        self.sharded = check_bool(sharded, "sharded")

    @property
    def rank(self):
        """This process's rank in `comm` (0 is the root)."""
        return self.comm.Get_rank()

    @property
    def size(self):
        """Number of ranks in `comm`."""
        return self.comm.Get_size()

    @property
    def is_root(self):
        """True on rank 0, the rank that writes files and prints."""
        return self.rank == 0

    def threads_per_rank(self):
        """The default OpenMP threads of each rank: this process's usable cores
        (OMP_NUM_THREADS and the affinity mask count) shared by the ranks on
        this node, at least 1. Without it, p ranks on one node would each run
        a team of all cores: p times too many threads, which collapses (50x
        slower measured with 2 ranks on 2 cores). A collective call."""
        from descend._openmp import effective_n_threads
        node = self.comm.Split_type(_mpi4py().COMM_TYPE_SHARED)
        try:
            ranks_here = node.Get_size()
        finally:
            node.Free()
        return max(1, effective_n_threads(None) // ranks_here)

    def allreduce(self, buffer):
        """Sum `buffer` (a contiguous float array) over the ranks, in place."""
        self.comm.Allreduce(_mpi4py().IN_PLACE, buffer, op=_mpi4py().SUM)
        return buffer

    def abort(self, exc):
        """Print `exc` as this rank's failure and end the whole job (MPI_Abort).
        Never returns: MPI_Abort may return before the launcher kills the
        ranks (MPICH's does, measured), and this rank must not run on (its
        script would carry on after fit as if it had ended)."""
        message = (f"descend.distributed: rank {self.rank} of {self.size} failed; aborting "
                   f"the job.\n"
                   + _shortened("".join(traceback.format_exception(type(exc), exc,
                                                                   exc.__traceback__))))
        try:
            if not _tell_within(message, timeout=2.0):
                # MPICH's MPI_Abort writes a line of its own to fd 2: on the pipe
                # nobody reads it blocked for good (measured), the job with it
                _quiet_stderr()
            self.comm.Abort(1)
        finally:
            os._exit(1)     # the launcher sees a failed rank and ends the others

    def __repr__(self):
        return f"MPI(rank={self.rank}, size={self.size}, sharded={self.sharded})"


MESSAGE_HEAD, MESSAGE_TAIL = 12288, 4096     # characters of a long traceback kept


def _shortened(text):
    """`text` (an aborting rank's traceback) as is up to 16 Ki characters,
    else its first 12 Ki and last 4 Ki characters (the frames and the
    exception's last words) around a line saying how many were left out.
    The launcher relays a rank's output through pipes and sockets that hold
    some hundreds of KiB: an exception with a 1 MB message, under an
    ``mpiexec ... | cmd`` that reads no more, blocked mpiexec before it
    could handle the abort, and the other ranks ran on (measured)."""
    if len(text) <= MESSAGE_HEAD + MESSAGE_TAIL:
        return text
    left_out = len(text) - MESSAGE_HEAD - MESSAGE_TAIL
    return (f"{text[:MESSAGE_HEAD]}\n[... {left_out} characters left out ...]\n"
            f"{text[-MESSAGE_TAIL:]}")


def _tell_within(message, timeout):
    """Write an aborting rank's `message` where it can go and wait until the
    launcher has read it, for at most `timeout` seconds in all, whatever the
    script made of sys.stderr: the job must end. Written by a thread that
    this one leaves at the timeout: a write blocks for good on a pipe nobody
    reads (``mpiexec ... 2>&1 | cmd`` whose cmd reads no more, a message
    larger than the pipe's 64 KiB: the job hung), on a socket or on a user's
    stream object; Ctrl-C during the wait goes on to the abort. True if the
    message was written and, where fd 2 is a pipe, read from it in time."""
    import threading
    read = []
    teller = threading.Thread(target=lambda: read.append(_tell(message)), daemon=True,
                              name="descend-abort-message")
    try:
        teller.start()
        teller.join(timeout)
    except BaseException:   # noqa: BLE001 - Ctrl-C, no thread at shutdown: abort anyway
        pass
    return read == [True]


def _tell(message):
    """Write `message` to the script's sys.stderr and, unless that is on file
    descriptor 2, to file descriptor 2 too (the process's stderr, which the
    launcher reads): a StringIO, a closed file or None in sys.stderr dies with
    the rank, and a log file the script opened is not where the user looks
    when the job ends. Then wait until the launcher has read it; whether it
    has (_wait_until_read)."""
    for stream in (sys.stdout, sys.stderr):     # what the script printed before
        try:
            stream.flush()
        except Exception:   # noqa: BLE001 - None, closed, a broken pipe
            pass
    on_fd_2 = False
    try:
        sys.stderr.write(message)
        sys.stderr.flush()
        on_fd_2 = sys.stderr.fileno() == 2
    except Exception:       # noqa: BLE001 - None, closed, no file descriptor, a broken pipe
        pass
    if not on_fd_2:
        data = message.encode(errors="backslashreplace")
        try:
            while data:
                data = data[os.write(2, data):]
        except OSError:     # fd 2 closed, or a pipe whose reader has gone
            pass
    return _wait_until_read(2)


def _quiet_stderr():
    """Point file descriptor 2 at the null device (a write blocked on the old
    one stays blocked, in the thread that made it)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
    except OSError:
        pass


def _wait_until_read(fd, timeout=2.0):
    """Wait (at most `timeout` seconds) until the launcher has read what this
    rank wrote to file descriptor `fd`, when that is a pipe. MPI_Abort tells the launcher to kill the job on another channel
    than the ranks' output, and MPICH's mpiexec sometimes handled the abort
    first and dropped the message (7 of 1000 jobs lost it, measured; 0 of
    3000 after this wait). Streams that are not pipes (a file, a terminal, a
    socket) are left at once. False if the pipe still held unread bytes at
    the timeout, True otherwise."""
    import stat
    try:
        import fcntl
        import termios
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return True
        deadline = time.monotonic() + timeout
        unread = bytearray(4)
        while time.monotonic() < deadline:
            fcntl.ioctl(fd, termios.FIONREAD, unread)    # bytes still in the pipe
            if int.from_bytes(unread, sys.byteorder) == 0:
                return True
            time.sleep(0.001)
        return False
    except (ImportError, OSError):
        return True     # no fcntl (Windows), fd 2 closed: nothing to wait for


def check_distributed(distributed):
    """`distributed` as an MPI object or None (TypeError otherwise)."""
    if distributed is not None and not isinstance(distributed, MPI):
        raise TypeError(error_message("distributed", "descend.distributed.MPI(...) or None",
                                      distributed))
    return distributed


# ---------------------------------------------------------------------- fit
def fit(model, distributed, X, y, **kwargs):
    """``Sequential.fit(..., distributed=distributed)``; one rank: the usual fit."""
    check_distributed(distributed)
    if distributed.size == 1 and not distributed.sharded:
        return make_trainer(model, FitConfig.validate(model, X, y, **kwargs)).run()
    if kwargs.get("n_threads") is None:
        kwargs = dict(kwargs, n_threads=distributed.threads_per_rank())
    config = _validate_everywhere(model, distributed, X, y, kwargs)
    trainer = DistributedTrainer(model, config, distributed)
    try:
        return trainer.run()
    except DivergenceError:
        raise       # from the allreduced loss and the shared weights: on every rank
    except BaseException as exc:    # KeyboardInterrupt included: the others would wait
        if isinstance(exc, _RanksDisagree) or getattr(exc, "raised_on_every_rank", False):
            raise   # every rank raises (DistributedTrainer._on_every_rank)
        trainer.abort(exc)


def _validate_everywhere(model, distributed, X, y, kwargs):
    """FitConfig.validate on every rank, then the start-up consistency check.

    A rank whose arguments fail raises there; the others learn of it
    through one allgather and raise a ValueError naming it: no rank is left
    waiting in a collective."""
    batch_size = kwargs.get("batch_size", 32)
    outcome = None
    if not distributed.sharded and is_lazy(X):
        # a memmap or h5py-style X: each rank checks (and later reads) its share only
        X = LazyRows(X, X.dtype)
        X.scan_part = (distributed.rank, distributed.size)
    # sharded "balanced" class weights need every shard's class counts: after the checks
    class_weight = kwargs.get("class_weight")
    balance_later = (distributed.sharded and isinstance(class_weight, str)
                     and class_weight == "balanced")
    try:
        fit_kwargs = dict(kwargs, class_weight=None if balance_later else class_weight)
        if distributed.sharded:     # the global batch is clipped to the global n below
            if batch_size is not None:      # (FitConfig.validate sees None)
                batch_size = check_int(batch_size, "batch_size", minimum=1)
            fit_kwargs["batch_size"] = None
        # a shard's weights may all be zero: their sums over the ranks are checked below
        config = FitConfig.validate(model, X, y, **fit_kwargs, shard=distributed.sharded)
        if balance_later:           # its errors (regression, soft targets) before the sum
            sample_classes(model.loss_, config.targets, config.labels)
        _check_root_callbacks(model, config)
        summary = _summary(model, config, kwargs, distributed.sharded)
    except (ValueError, TypeError) as exc:
        config, summary, outcome = None, None, exc
    everyone = agree(distributed, outcome, summary)
    for rank, theirs in enumerate(everyone):
        for key in summary:
            if key not in _PER_RANK and theirs[key] != everyone[0][key]:
                raise ValueError(
                    f"distributed fit: rank {rank} differs from rank 0 in {key}: "
                    f"{theirs[key]!r} (rank {rank}) != {everyone[0][key]!r} (rank 0); "
                    "every rank must build the same network and call fit the same way")
    for key, name in (("weight_sum", "sample_weight"),
                      ("validation_weight_sum", "the validation weights")):
        sums = [theirs[key] for theirs in everyone if theirs.get(key) is not None]
        if sums and not sum(sums) > 0:
            raise ValueError(f"{name}: the weights of every rank's shard are all zero; at "
                             "least one sample needs a positive weight")
    if balance_later:
        config.weights = fit_weights(model, config.weights, "balanced", config.targets,
                                     config.labels, allow_all_zero=True,
                                     reduce=distributed.allreduce)
    if distributed.sharded:
        total = sum(theirs["shard_rows"] for theirs in everyone)
        # None: batch gradient descent over the global data, not this rank's shard
        requested = total if batch_size is None else batch_size
        config.batch_size = (_check_batch_size(requested, total) if distributed.is_root
                             else min(requested, total))
    return config


def agree(distributed, outcome, summary):
    """Every rank's `summary` (a list in rank order), once every rank has
    checked its own arguments; `outcome` is this rank's exception or None.

    One allgather: a rank whose check failed raises its exception, the
    others a ValueError naming that rank, so that no rank is left waiting
    alone in a later collective call."""
    everyone = distributed.comm.allgather(
        (None if outcome is None else f"{type(outcome).__name__}: {outcome}", summary))
    if outcome is not None:
        raise outcome
    failed = [(rank, message) for rank, (message, _) in enumerate(everyone) if message]
    if failed:
        rank, message = failed[0]
        raise ValueError(f"distributed fit: rank {rank} rejected its arguments ({message})")
    return [theirs for _, theirs in everyone]


# summary entries of a sharded fit that differ between the ranks
_PER_RANK = ("shard_rows", "weight_sum", "validation_weight_sum")


def _summary(model, config, kwargs, sharded):
    """What must agree between ranks (compared with ==), as plain data; a
    sharded fit adds this rank's rows and weight sums (_PER_RANK)."""
    optimizer = model.optimizer
    shapes = [(layer.units, layer.activation, layer.use_bias) for layer in model.dense_layers]
    summary = {
        "layers": shapes, "dtype": str(np.dtype(model.dtype)), "seed": model.seed,
        "loss": model.loss_.name, "optimizer": optimizer.get_config(),
        "n_features": config.X.shape[1], "X dtype": str(config.X.dtype),
        "batch_size": kwargs.get("batch_size", 32), "epochs": (config.initial_epoch,
                                                               config.epochs),
        "shuffle": config.shuffle, "classes": (None if config.classes is None
                                               else np.asarray(config.classes).tolist()),
        "dropout": model._dropout_rates(), "built": model.built,
        "iterations": optimizer.iterations,
        "validation": None if config.validation is None else config.validation[0].shape[1],
        "sample_weight": kwargs.get("sample_weight") is not None,
        "class_weight": kwargs.get("class_weight"),
        "validation_weights": config.validation is not None and config.validation[3] is not None,
    }
    if not sharded:
        summary["n_samples"] = len(config.X)
        # each rank scores its part of the validation rows (was: parts of
        # validation data of other lengths, silently mixed into the scores)
        summary["validation_rows"] = (None if config.validation is None
                                      else len(config.validation[0]))
        # every rank divides its share by the global batch's weight sum from its
        # own weights (was: other weights on a rank, other losses logged there)
        summary["sample_weight digest"] = (
            None if config.weights is None else
            hashlib.sha256(np.ascontiguousarray(config.weights, np.float64)).hexdigest()[:16])
        # before the digest, which leaves a lazy X out: a rank reading X lazily
        # and one holding it in memory were told their data differed
        summary["X read lazily (a memmap, h5py)"] = is_lazy(config.X)
        summary["X, y and validation data (SHA-256)"] = _data_digest(config)
        return summary
    summary["shard_rows"] = len(config.X)
    summary["weight_sum"] = None if config.weights is None else float(np.sum(config.weights))
    summary["validation_weight_sum"] = (float(np.sum(config.validation[3])) if
                                        summary["validation_weights"] else None)
    return summary


def _data_digest(config):
    """SHA-256 (16 hex digits) of the training data and the validation data,
    which every rank of a fit that is not sharded must pass alike (was: a rank
    that had loaded or shuffled its copy otherwise trained the job on a mix of
    the two, silently, and scored a mix of validation sets). X is left out when
    it is read lazily (a memmap, h5py): each rank reads only its share of it.
    About 0.1 s for MNIST's 188 MB."""
    digest = hashlib.sha256()
    arrays = [config.X, config.targets, config.labels]
    if config.validation is not None:
        arrays += config.validation[:3]
    for array in arrays:
        if isinstance(array, np.ndarray) and not is_lazy(array):
            digest.update(str((array.shape, array.dtype.str)).encode())
            digest.update(np.ascontiguousarray(array))
    return digest.hexdigest()[:16]


class _Steps:
    """Which rows of an epoch's order each rank trains on at each step.

    ``step(s)`` returns (nb, first_row, rows): the global batch's size, the
    index within it of this rank's first row, and this rank's rows (indices
    into its X). Not sharded: rank r takes rows [nb r / p, nb (r + 1) / p)
    of the global batch. Sharded: rank q contributes up to b_q rows per
    step from its own order, b_q its share of the global batch."""

    def __init__(self, batch_size, rank, size, shard_rows=None):
        self.batch_size, self.rank, self.size = batch_size, rank, size
        self.shard_rows = shard_rows        # every rank's row count (sharded) or None
        shares = np.diff([(batch_size * q) // size for q in range(size + 1)])
        self.shares = shares
        if shard_rows is None:
            self.n_samples = None
        else:
            self.n_samples = int(sum(shard_rows))
            self.n_steps = max(-(-rows // max(share, 1)) if share else 0
                               for rows, share in zip(shard_rows, shares))

    def count(self, n):
        """Steps in an epoch over n rows (not sharded)."""
        return self.n_steps if self.shard_rows is not None else -(-n // self.batch_size)

    def step(self, s, order):
        if self.shard_rows is None:
            start = s * self.batch_size
            nb = min(self.batch_size, len(order) - start)
            lo = (nb * self.rank) // self.size
            hi = (nb * (self.rank + 1)) // self.size
            return nb, lo, order[start + lo:start + hi]
        counts = [int(min(share, max(0, rows - s * share)))
                  for rows, share in zip(self.shard_rows, self.shares)]
        first = s * int(self.shares[self.rank])
        return (sum(counts), sum(counts[:self.rank]),
                order[first:first + counts[self.rank]])


class _RanksDisagree(RuntimeError):
    """Raised on every rank at once (after an allgather): no rank is left
    waiting, so the fit ends as a one-process fit would, without MPI_Abort."""


class DistributedTrainer(Trainer):
    """The Trainer with each step's gradient summed over the ranks of an MPI
    communicator (see the module docstring).

    Parameters
    ----------
    model : descend.Sequential
    config : FitConfig
        Validated on every rank (``_validate_everywhere``).
    distributed : MPI
    """

    def __init__(self, model, config, distributed):
        self.distributed = distributed
        comm = distributed.comm
        if not distributed.is_root:
            # files and output on rank 0 only
            config.verbose = 0
            config.callbacks = type(config.callbacks)(
                [c for c in config.callbacks if not _root_only(c)])
        super().__init__(model, config)
        shard_rows = comm.allgather(len(config.X)) if distributed.sharded else None
        self.steps = _Steps(config.batch_size, distributed.rank, distributed.size,
                            shard_rows)
        if shard_rows is not None:
            self.n_samples = self.steps.n_samples
            self.offset = int(sum(shard_rows[:distributed.rank]))

    def prepare(self):
        """Build, then broadcast rank 0's parameters, optimizer state and generator."""
        model, config = self.model, self.config
        if not model.built:
            model.build(config.X.shape[1])
        set_classes(model, config.classes)     # (was: a regression kept a classifier's)
        model.optimizer.build(model._params(), model._param_names())
        comm = self.distributed.comm
        for array in model._params() + [s for states in model.optimizer.state
                                        for s in states if s is not None]:
            comm.Bcast(array, root=0)
        model._rng.bit_generator.state = comm.bcast(model._rng.bit_generator.state, root=0)
        model._distributed = self.distributed
        self.n_batches = self.steps.count(self.n_samples)
        self.progress_every = max(1, self.n_batches // 20)
        self.hook_every = min(config.steps_per_execution or min(self.progress_every, 64),
                              self.n_batches)
        self.runner = self._compiled_runner()
        if self.runner is not None:
            record_plan(model, self.runner.plan)
            # what it holds and read once: checked around each epoch (the step loop
            # reads them at every step)
            self.held = held_objects(model)
            self.settings = loop_settings(model)
            self.allreduce_seconds = 0.0
            step_bytes = self.runner.distributed_stats()["bytes_per_step"]
        else:
            self._prepare_step_loop()
            step_bytes = self.buffer.nbytes
        model.distributed_stats_ = {
            "loop": "steps" if self.runner is None else "compiled",
            "ranks": self.distributed.size, "bytes_per_step": step_bytes, "steps": 0,
            "allreduce_seconds": 0.0}
        model.history = History()
        model.stop_training = False

    def _compiled_runner(self):
        """The compiled epoch loop with the allreduce inside it
        (``EpochRunner.set_distributed``) when it applies: X in memory, not
        sharded, every step giving each rank at least one row, and
        MPI_Allreduce found in the library mpi4py loaded; else None."""
        model, config, dist = self.model, self.config, self.distributed
        n, batch, size = len(config.X), config.batch_size, dist.size
        last = n - (self.n_batches - 1) * batch
        if (not dist._compiled_loop or dist.sharded or not isinstance(config.X, np.ndarray)
                or min(batch, last) < size):
            return None
        address = _allreduce_address()
        if address is None:
            return None
        mpi = _mpi4py()
        share = -(-batch // size)       # the largest share of a global batch
        omp, self.blas = _threads.plan(share, config.n_threads)
        runner = self.make_runner(config.X, config.targets, config.labels, runner_specs(model),
                                  model.loss_.code, model.optimizer.kernel_config(),
                                  *model.optimizer.clip_settings(), share, omp,
                                  plan=getattr(model, "plan", None),
                                  sample_weight=config.weights)
        datatype = mpi.FLOAT if config.X.dtype == np.float32 else mpi.DOUBLE
        runner.set_distributed(address, mpi._handleof(datatype), mpi._handleof(mpi.SUM),
                               mpi._handleof(dist.comm), dist.rank, size, batch)
        return runner

    def _prepare_step_loop(self):
        """Buffers of the step loop, which returns to Python once a step."""
        model, config = self.model, self.config
        self.omp, self.blas = _threads.plan(max(1, config.batch_size // self.distributed.size),
                                            config.n_threads)
        # one flat buffer: every gradient, then the loss, the correct count (or
        # weight) and the rows' weight sum (see _step_gradients)
        params = model._params()
        sizes = [p.size for p in params]
        self.buffer = np.zeros(sum(sizes) + 3, dtype=params[0].dtype)
        bounds = np.cumsum([0] + sizes)
        self.grads = [self.buffer[a:b].reshape(p.shape)
                      for a, b, p in zip(bounds[:-1], bounds[1:], params)]
        self.allreduce_seconds = 0.0
        self.sparse_first = _SparseFirstLayer.if_planned(model, config, self.distributed.size)

    def run_epoch(self, epoch):
        """One epoch; then every rank takes rank 0's decision to stop. Ctrl-C
        aborts the job (the one-process clean stop would leave this rank alone
        while the others wait in the next allreduce)."""
        try:
            super().run_epoch(epoch)
        except KeyboardInterrupt as exc:
            self.abort(exc)
        self.model.stop_training = bool(self.distributed.comm.bcast(
            self.model.stop_training, root=0))

    def _check_epoch_settings(self):
        """The one-process checks before an epoch, on every rank at once
        (_on_every_rank)."""
        def checks():
            self.model.optimizer.check_learning_rate(self.model.dtype)
            Trainer._check_kept(self)
        self._on_every_rank(checks)

    def _check_kept(self):
        """Trainer._check_kept on every rank at once (_on_every_rank)."""
        self._on_every_rank(super()._check_kept)

    def _on_every_rank(self, checks):
        """Run this rank's `checks`, then compare with every rank (one
        allgather) their outcomes and what callbacks may change between
        epochs: the learning rate, the weight decay, the settings the
        compiled loop reads once, and the weights. A rank whose checks
        failed raises its error, the others a RuntimeError naming it, and a
        difference between ranks (a callback that ran on one rank only, or
        decided otherwise there: that rank's weights would drift apart for
        the rest of the fit, silently) a RuntimeError on every rank: each
        rank raises, none is left waiting and no MPI_Abort is needed."""
        failed = None
        try:
            checks()
        except (ValueError, TypeError, RuntimeError) as exc:
            failed = exc
        model = self.model
        weights = hashlib.blake2b(digest_size=16)
        for array in model._params():
            weights.update(array)
        mine = {"learning_rate": model.optimizer.learning_rate,
                "weight_decay": model.optimizer.weight_decay, **loop_settings(model),
                "weights (BLAKE2b digest)": weights.hexdigest()}
        everyone = self.distributed.comm.allgather((failed and str(failed), mine))
        if failed is not None:
            failed.raised_on_every_rank = True      # (the others raise below)
            raise failed
        stopped = [(rank, message) for rank, (message, _) in enumerate(everyone) if message]
        if stopped:
            rank, message = stopped[0]
            raise _RanksDisagree(f"distributed fit: rank {rank} stopped the fit ({message})")
        for key in dict.fromkeys(key for _, theirs in everyone for key in theirs):
            values = [theirs.get(key) for _, theirs in everyone]
            if any(value != values[0] for value in values):
                shown = ", ".join(f"rank {rank}: {value!r}" for rank, value in enumerate(values))
                raise _RanksDisagree(
                    f"distributed fit: the ranks are at epoch {self.epoch + 1} with different "
                    f"{key} ({shown}); a callback that changes it must run on every rank "
                    "and decide the same way there (the built-in ones do: every rank logs "
                    "the same values). That epoch did not run, or was undone")

    def abort(self, exc):
        """End the whole job after `exc` on this rank: the model back at its last
        complete epoch, which rank 0 writes to its checkpoint files
        (:func:`_checkpoint_last_epoch`), then ``MPI_Abort``. Never returns. On a
        communicator of one rank nobody waits: `exc` is raised as in a
        one-process fit (Ctrl-C then ends the fit cleanly)."""
        if self.distributed.size == 1:
            raise exc
        try:
            snapshot = getattr(self, "snapshot", None)
            # an epoch under way (not yet counted) moved the weights: undo it
            if snapshot is not None and self.model.epochs_trained == snapshot[-1]:
                self._restore(snapshot)
            _checkpoint_last_epoch(self.model, self.config.callbacks)
        finally:
            self.distributed.abort(exc)

    def train_epoch(self, order, epoch_seed, progress, progress_every):
        """The epoch, one allreduce per step; the result dict of EpochRunner.run_epoch.
        Adds the epoch's steps and seconds in the allreduce to the model's
        ``distributed_stats_``."""
        if self.runner is not None:
            result = self._compiled_epoch(order, epoch_seed, progress, progress_every)
        else:
            result = self._step_epoch(order, epoch_seed, progress, progress_every)
        stats = self.model.distributed_stats_
        stats["steps"] += result["n_batches"]
        stats["allreduce_seconds"] += self.allreduce_seconds
        return result

    def _compiled_epoch(self, order, epoch_seed, progress, progress_every):
        """The compiled loop's epoch (its allreduce timed inside the loop)."""
        before = self.runner.distributed_stats()["allreduce_seconds"]
        result = super().train_epoch(order, epoch_seed, progress, progress_every)
        self.allreduce_seconds = self.runner.distributed_stats()["allreduce_seconds"] - before
        # the compiled loop summed the loss; the correct predictions: once an epoch
        correct = self.distributed.allreduce(np.array([result["n_correct"]], np.float64))
        # (with sample weights: the correct samples' weight sum)
        result["n_correct"] = int(correct[0]) if self.config.weights is None else correct[0]
        return result

    def _step_epoch(self, order, epoch_seed, progress, progress_every):
        """The step loop's epoch: Python drives each step (see _step_gradients)."""
        if self.distributed.sharded:
            # the Trainer drew a permutation of all rows; keep this rank's, in its order
            mine = (order >= self.offset) & (order < self.offset + len(self.config.X))
            order = order[mine] - self.offset
        model, config = self.model, self.config
        self.allreduce_seconds = 0.0
        loss_sum = penalty_sum = weight_sum = 0.0
        n_correct = n_done = 0
        finite = True
        s = 0
        with _threads.blas_threads(self.blas):
            for s in range(self.n_batches):
                nb, first_row, rows = self.steps.step(s, order)
                batch_loss, correct, weight = self._step_gradients(rows, nb, first_row, s,
                                                                   epoch_seed)
                if not np.isfinite(batch_loss):
                    finite = False
                    break
                penalty = self._penalty_into_grads()
                model.optimizer.apply_gradients(model._params(), list(self.grads),
                                                model._decay_flags(), self.omp)
                reference.proximal_l1_step(model, self.omp)
                loss_sum += (batch_loss + penalty) * weight
                penalty_sum += penalty
                n_correct += correct
                n_done += nb
                weight_sum += weight
                # at the multiples of the bar's interval and of the hooks' (as the
                # compiled loop: Trainer.train_epoch)
                hooks = self.hook_every if self.batch_hooks else progress_every
                if progress is not None and ((s + 1) % progress_every == 0
                                             or (s + 1) % hooks == 0
                                             or s + 1 == self.n_batches):
                    progress(s + 1, loss_sum / weight_sum if weight_sum > 0 else 0.0)
        result = {"loss_sum": loss_sum, "penalty_sum": penalty_sum,
                  "n_batches": s + (1 if finite else 0), "n_correct": n_correct,
                  "step": model.optimizer.iterations, "finite": finite, "n_samples": n_done}
        if self.config.weights is not None:
            result["weight_sum"] = weight_sum
        return result

    def _step_gradients(self, rows, nb, first_row, batch, epoch_seed):
        """Sum over the ranks of this step's gradients (in self.grads), and
        (the batch's mean loss without penalties, its correct predictions, what
        the mean divides by: nb, or the batch's weight sum).

        With sample weights the mean is sum_i w_i l_i / W over the global
        batch, and W sums weights other ranks hold (sharded data): each rank
        sends the gradient of its rows' sum_i w_i l_i and their weight sum in
        the same buffer, and the sum is divided by W after the allreduce (the
        gradient is linear in the loss): one allreduce a step all the same."""
        model, config = self.model, self.config
        buffer, weighted = self.buffer, config.weights is not None
        if len(rows):
            X = _gather(config.X, rows)
            targets = None if config.targets is None else _gather(config.targets, rows)
            labels = None if config.labels is None else _gather(config.labels, rows)
            weights = _gather(config.weights, rows) if weighted else None
            codes, rates = model._activation_codes(), model._dropout_rates()
            steps = (True, epoch_seed, self.omp)
            # the first layer's activations when it runs sparse (then forward starts at 1)
            sparse = self.sparse_first is not None
            inputs = self.sparse_first.forward(X, codes[0]) if sparse else X
            output = reference.forward(model, inputs, codes, rates, *steps, batch=batch,
                                       first_row=first_row, first_layer=int(sparse))
            k = output.shape[1]
            # d(mean over the global batch); weighted: d(sum_i w_i l_i), divided below
            scale = model.loss_.grad_scale(1.0 if weighted else nb, k)
            grad_output = np.empty_like(output)
            total = _losses.loss_and_gradient_py(model.loss_.code, output, targets, labels,
                                                 grad_output, scale, self.omp, weights)
            buffer[-3] = total * scale
            buffer[-2] = model.loss_.count_correct(output, targets, labels, weights)
            buffer[-1] = np.sum(weights) if weighted else len(rows)
            grads, grad_input = reference.backward_to(
                model, grad_output, rates, *steps, batch=batch, first_row=first_row,
                last_layer=int(sparse))
            if sparse:
                grads[0] = self.sparse_first.backward(X, grad_input, codes[0])
            flat = [g for pair in grads for g in pair if g is not None]
            for into, g in zip(self.grads, flat):
                np.copyto(into, g)
        else:
            buffer[:] = 0
        started = time.perf_counter()
        self.distributed.allreduce(buffer)
        self.allreduce_seconds += time.perf_counter() - started
        if not weighted:
            return float(buffer[-3]), int(round(float(buffer[-2]))), nb
        weight = float(buffer[-1])
        # 1 / W (0 for W = 0: a batch of weight 0 has loss and gradient 0, as in
        # the compiled loop) on the gradients and the loss
        buffer[:-2] *= model.loss_.grad_scale(weight, 1)
        return float(buffer[-3]), float(buffer[-2]), weight

    def log_keys(self):
        """The Trainer's, plus allreduce_seconds (:meth:`_epoch_logs`)."""
        return _log_keys(self.model, self.config)

    def _epoch_logs(self, result):
        """The Trainer's logs, plus this rank's seconds in the allreduce this epoch."""
        logs = super()._epoch_logs(result)
        logs["allreduce_seconds"] = self.allreduce_seconds
        return logs

    def _penalty_into_grads(self):
        """The layers' penalties (once, after the sum) added into the gradients."""
        pairs, it = [], iter(self.grads)
        for layer in self.model.dense_layers:
            kernel = next(it)
            pairs.append((kernel, next(it) if layer.use_bias else None))
        return reference.penalty(self.model, pairs)

    def scores(self, X, targets, labels, weights=None):
        """Scores of these rows (weighted by `weights` if given), each rank
        evaluating its part, summed by allreduce."""
        return _allreduced_scores(self.model, self.distributed, X, targets, labels, weights)


class _SparseFirstLayer:
    """The first Dense layer through the sparse kernels (descend._sparse), as
    the compiled loop takes it when the plan says so (mostly-zero inputs such
    as MNIST's pixels): the per-layer path would multiply the zeros too."""

    def __init__(self, layer):
        self.layer = layer
        self.z = self.a = None

    @classmethod
    def if_planned(cls, model, config, size):
        """An instance if the plan for a rank's share of a batch takes the first
        layer sparse (never under dropout on the input), else None."""
        from descend._train import _choose_plan
        if model._dropout_rates()[0] > 0:
            return None
        sample = np.asarray(config.X[:min(len(config.X), 4096)])
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
        plan = _choose_plan(sample, runner_specs(model), max(1, config.batch_size // size), 1,
                            cores, model.optimizer.kernel_config(), None, None)
        return cls(model.dense_layers[0]) if plan["sparse_input"] else None

    def forward(self, X, code):
        """The layer's activations for X (kept, with z, for backward)."""
        layer = self.layer
        self.z = np.empty((len(X), layer.units), X.dtype)
        self.a = self.z if code == Activation.IDENTITY else np.empty_like(self.z)
        sparse_forward_py(X, layer.kernel, layer.bias, self.z, self.a, code, layer.alpha)
        return self.a

    def backward(self, X, grad_a, code):
        """(dW, db) from dL/da: dz = dL/da * act'(z), dW = X^T dz (non-zeros only)."""
        layer = self.layer
        dz = np.empty_like(self.z)
        activation_derivative_py(self.z, self.a, dz, code, layer.alpha)
        dz *= grad_a
        dkernel = np.zeros_like(layer.kernel)
        sparse_grad_kernel_py(X, dz, dkernel, 0, X.shape[1], 1.0)
        self.z = self.a = None
        return dkernel, (dz.sum(axis=0) if layer.use_bias else None)


def _check_root_callbacks(model, config):
    """The start-of-training checks of the callbacks that run on rank 0 only,
    on every rank: ModelCheckpoint's (model.save can store the network, the
    logs hold its filepath's fields) and TensorBoard's (gradient_data fits).
    On rank 0 alone, a refusal left the other ranks waiting in a collective
    until MPI_Abort ended the job."""
    from descend.callbacks import (ModelCheckpoint, TensorBoard, _check_savable,
                                   check_fields_logged)
    checkpoints = [c for c in config.callbacks if isinstance(c, ModelCheckpoint)]
    if checkpoints:
        _check_savable(model)
    for checkpoint in checkpoints:
        check_fields_logged(checkpoint.filepath, _log_keys(model, config))
    for board in (c for c in config.callbacks if isinstance(c, TensorBoard)):
        board.check_gradient_data(model, config.X.shape[1], config.classes)


def _log_keys(model, config):
    """DistributedTrainer's epoch log keys: the Trainer's and allreduce_seconds."""
    return log_keys(model, config) + ["allreduce_seconds"]


def _root_only(callback):
    """Whether a callback writes files or prints (so runs on rank 0 only)."""
    from descend.callbacks import CSVLogger, ModelCheckpoint, TensorBoard
    if getattr(callback, "root_only", None) is not None:
        return bool(callback.root_only)
    # a subclass of TensorBoard too (was: matched by class name, so a subclass
    # wrote event files on every rank)
    return isinstance(callback, (CSVLogger, ModelCheckpoint, TensorBoard))


def _checkpoint_last_epoch(model, callbacks):
    """Before an abort (rank 0; the other ranks hold no ModelCheckpoint): each
    ModelCheckpoint that saves every epoch and has not written the last
    complete one (an error in an earlier callback's on_epoch_end, say) writes
    it now, to the path that epoch's logs give. ``Sequential.save`` writes a
    temporary file and renames it, so an abort from another rank during a
    save leaves the previous complete file. Errors are reported, not raised:
    the abort must happen."""
    from descend.callbacks import ModelCheckpoint
    history = getattr(model, "history", None)
    if not history or not history.epoch:
        return
    epoch = history.epoch[-1]
    logs = {key: values[-1] for key, values in history.items()}
    for callback in callbacks:
        if (not isinstance(callback, ModelCheckpoint) or callback.save_best_only
                or callback.last_saved_epoch == epoch):
            continue
        try:
            path = callback._format_path(epoch, logs)
            if os.path.dirname(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
            model.save(path)
            callback.last_saved_path, callback.last_saved_epoch = path, epoch
            sys.stderr.write(f"descend.distributed: saved epoch {epoch + 1} (the last "
                             f"complete one) to {path} before aborting.\n")
        except Exception as exc:      # noqa: BLE001 - reported; the abort goes on
            sys.stderr.write(f"descend.distributed: could not save epoch {epoch + 1} "
                             f"before aborting: {type(exc).__name__}: {exc}\n")


def _gather(array, rows):
    """array[rows] as a C-contiguous array: an ndarray's, or read from a LazyRows
    (an np.memmap or h5py-style X: only these rows are read)."""
    if isinstance(array, LazyRows):
        return array.take(rows)
    return np.ascontiguousarray(array[rows])


def _allreduced_scores(model, distributed, X, targets, labels, weights=None):
    """``model._evaluate``'s scores over all ranks' rows: each rank scores its
    contiguous part (not sharded) or its shard, the sums are allreduced.
    `weights` (float64, one per row, or None): the weighted scores, as
    ``model._evaluate`` computes them."""
    n = len(X)
    if not distributed.sharded:
        lo, hi = (n * distributed.rank) // distributed.size, (n * (distributed.rank + 1)) \
            // distributed.size
        X = X[lo:hi]
        targets = None if targets is None else targets[lo:hi]
        labels = None if labels is None else labels[lo:hi]
        weights = None if weights is None else weights[lo:hi]
    k = model.dense_layers[-1].units
    output = model._output(X) if len(X) else np.zeros((0, k), model.dtype)
    w = np.ones(len(X)) if weights is None else weights
    sums = np.zeros(5 + 2 * k)
    sums[0] = np.sum(w)             # what the means divide by: rows, or their weights
    if sums[0] > 0:
        sums[1] = model.loss_.mean_loss(output, targets, labels, weights=weights) * sums[0]
    if len(X) and model.loss_.is_classifier:
        sums[2] = model.loss_.count_correct(output, targets, labels, weights)
    elif len(X):
        t = targets.astype(np.float64)
        err = output.astype(np.float64) - t
        sums[3], sums[4] = np.sum(w[:, None] * err ** 2), np.sum(w[:, None] * np.abs(err))
        sums[5:5 + k] = np.sum(w[:, None] * err ** 2, axis=0)
        sums[5 + k:5 + 2 * k] = np.sum(w[:, None] * t, axis=0)
    distributed.allreduce(sums)
    total = sums[0]
    scores = {"loss": sums[1] / total + reference.penalty(model)}
    if model.loss_.is_classifier:
        scores["accuracy"] = float(model.loss_.accuracy(sums[2], total, k))
        return scores
    scores["mse"] = float(sums[3] / (total * k))
    scores["mae"] = float(sums[4] / (total * k))
    scores["r2"] = _r2_from_sums(distributed, targets, w, sums[5:5 + k],
                                 sums[5 + k:5 + 2 * k] / total)
    return scores


def _r2_from_sums(distributed, targets, weights, ss_res, mean):
    """R^2 averaged over outputs (as scikit-learn) from the allreduced residual
    sums and (weighted) target means: one more allreduce for the total sums of
    squares."""
    ss_tot = np.zeros(len(mean))
    if targets is not None and len(targets):
        ss_tot[:] = np.sum(weights[:, None] * (targets.astype(np.float64) - mean) ** 2, axis=0)
    distributed.allreduce(ss_tot)
    from descend.model import r2_from_sums
    return r2_from_sums(ss_res, ss_tot)
