"""Threading plan: OpenMP threads and BLAS threads, never both at once.

OpenBLAS keeps its threads spinning for a while after each call; if OpenMP
threads run at the same time, the cores are oversubscribed and a batch of 32
runs about 140x slower. So every compiled region runs under a plan with
OpenMP threads > 1 and BLAS limited to one thread (threadpoolctl), or with
OpenMP on one thread. descend's own loops get the cores: the compiled epoch
cuts each batch into blocks of samples and of kernel rows and calls
single-threaded BLAS on each, which beat multi-threaded BLAS on these small
GEMMs and, unlike it, stays fast when other processes load the machine.
threadpoolctl is a required dependency for that reason (as in scikit-learn).

Two process-wide hazards are handled here:

* **fork after OpenMP.** GNU libgomp keeps its worker threads in a pool that
  a forked child does not inherit (fork copies only the calling thread), yet
  the child's libgomp still believes the pool exists: its first parallel
  region of more than one thread waits forever for workers. descend learns
  of every fork through ``os.register_at_fork``; a child forked after
  descend ran a team of threads runs descend's loops on one thread (the
  results do not depend on the thread count) and says so once with a
  :class:`ForkedAfterThreadsWarning`. Processes started with the "spawn" or
  "forkserver" methods are fresh and use every core. OpenBLAS handles fork
  itself (it shuts its pool down around fork and restarts it).
* **concurrent limits.** threadpoolctl's limits are process-global: two
  threads each saving "the original limit" and restoring it on exit can
  restore each other's 1 and leave numpy on one thread for good. descend's
  BLAS limit is therefore reference-counted: the first holder records the
  libraries' thread counts and applies the limit, the last one restores
  them, whatever the interleaving of fits and predicts in other threads.
"""
import os
import threading
import time
import warnings

from threadpoolctl import ThreadpoolController

from descend._openmp import effective_n_threads
from descend._validation import check_n_threads

_controller = []


class ForkedAfterThreadsWarning(RuntimeWarning):
    """This process was forked after descend ran OpenMP threads, so descend's
    loops run on one thread in it (see ``descend._threads``)."""


class _ForkState:
    """What this process knows about OpenMP teams and forks."""
    teams_started = False     # this process (or a parent before fork) ran a team > 1
    forked_after_teams = False
    warned = False


def _after_fork_in_child():
    if _ForkState.teams_started:
        _ForkState.forked_after_teams = True
    _ForkState.warned = False
    _BlasLimit.after_fork_in_child()


def forked_after_threads():
    """True in a process forked (directly or not) from one that ran OpenMP threads."""
    return _ForkState.forked_after_teams


def _usable_cores():
    """The cores this process may run on (its CPU affinity where the
    platform tells it, else all of them)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _cpu_seconds(cores=None):
    """(wall clock, CPU seconds that `cores` (indices, default: this
    process's usable cores) spent busy, CPU seconds of this process), or
    None where Linux's /proc is not there or has no line for one of
    `cores`. Busy: user, nice, system, irq, softirq and steal time of each
    core's line in /proc/stat (steal: other virtual machines on the same
    host); this process's: its user and system time (/proc/self/stat), in
    the same clock ticks."""
    wanted = {f"cpu{core}" for core in (_usable_cores() if cores is None else cores)}
    try:
        with open("/proc/stat") as stat:
            lines = [line.split() for line in stat if line.startswith("cpu")]
        with open("/proc/self/stat") as stat:
            own = stat.read().rpartition(")")[2].split()
        ticks = os.sysconf("SC_CLK_TCK")
        if not wanted <= {fields[0] for fields in lines}:
            # /proc/stat does not describe these cores (e.g. a container's
            # renumbered view): summing the lines found would read them idle
            return None
        busy = sum(int(v) for fields in lines if fields[0] in wanted
                   for v in fields[1:4] + fields[6:9])
        return time.perf_counter(), busy / ticks, (int(own[11]) + int(own[12])) / ticks
    except (OSError, ValueError, IndexError):
        return None


class OtherJobsLoad:
    """Whether other jobs hold the cores this process's team needs: a callable
    returning True, False, or None where that is unknown (no Linux /proc).

    The CPU time that the cores this process may use (its CPU affinity)
    spent on anything but this process (stolen time included: other virtual
    machines on the same host), over windows of wall time, in cores: a
    window is busy when that exceeds the cores the team leaves free by
    THRESHOLD, and the cores are busy after two busy windows in a row.
    A measure over time, not a count of running threads at one instant:
    that count caught a short-lived kernel or agent thread in about one
    reading in twenty on idle cores (measured), and every such reading made
    descend._train's TeamSize run a whole batch on one thread. The kernel
    counts CPU time in ticks (10 ms) per core and per kind of time, so a
    window lasts WINDOW seconds, longer on many cores (WINDOW_PER_CORE a
    core); a call before the window ends returns the last verdict (at first
    False).

    Parameters
    ----------
    n_threads : int
        The team's threads.
    cores : int or None
        The cores the team may use (None: this process's CPU affinity).
    read : callable or None
        Returns (wall seconds, busy CPU seconds of the usable cores, this
        process's CPU seconds) or None; default: from /proc.
    """
    WINDOW = 0.1
    WINDOW_PER_CORE = 0.025
    THRESHOLD = 0.5

    def __init__(self, n_threads, cores=None, read=None):
        cores = cores or len(_usable_cores())
        self.free = max(cores - n_threads, 0)
        self.window = max(self.WINDOW, self.WINDOW_PER_CORE * cores)
        self.read = _cpu_seconds if read is None else read
        self.start = self.read()
        self.busy_windows = 0       # busy windows in a row, up to now

    def __call__(self):
        now = self.read()
        if now is None:
            return None
        if self.start is None:      # the first reading failed: the window starts now
            self.start = now
            return None
        wall = now[0] - self.start[0]
        if wall >= self.window:
            others = ((now[1] - self.start[1]) - (now[2] - self.start[2])) / wall
            busy = others > self.free + self.THRESHOLD
            self.busy_windows = self.busy_windows + 1 if busy else 0
            self.start = now
        return self.busy_windows >= 2


def plan(batch_size, n_threads=None):
    """(openmp_threads, blas_threads) for work on batches of `batch_size` rows.

    Parameters
    ----------
    batch_size : int
        Rows per batch (kept for plans that depend on it).
    n_threads : int or None
        None: all usable cores (see ``effective_n_threads``).

    Returns
    -------
    (int, int or None)
        OpenMP threads for descend's loops; the BLAS limit to hold meanwhile.

    Warns
    -----
    ForkedAfterThreadsWarning
        Once per process, in a child forked after descend ran threads: its
        loops then run on one thread.
    """
    total = effective_n_threads(check_n_threads(n_threads))
    if total > 1 and _ForkState.forked_after_teams:
        if not _ForkState.warned:
            _ForkState.warned = True
            warnings.warn(
                "descend: this process was forked after descend ran OpenMP threads; "
                "GNU OpenMP cannot start threads in such a child, so descend runs on one "
                "thread here (same results, slower). Start worker processes with the "
                "'spawn' or 'forkserver' method (multiprocessing.get_context, or joblib's "
                "default 'loky' backend) to use every core.",
                ForkedAfterThreadsWarning, stacklevel=3)
        return 1, 1
    if total > 1:
        # recorded before the team runs: a fork from another thread during the
        # region already leaves a child without workers
        _ForkState.teams_started = True
    return total, 1


class _BlasLimit:
    """The reference-counted BLAS thread limit behind :func:`blas_threads`.

    Holders are counted per Python thread, so that a forked child (which
    keeps only the forking thread) forgets the holders it did not inherit.
    While any holder is inside, BLAS runs on the smallest limit asked for.
    """
    lock = threading.Lock()
    holders = {}        # thread id -> list of the limits it holds (nested)
    saved = None        # [(library controller, its thread count before the first holder)]
    applied = None      # the limit currently set

    @classmethod
    def libraries(cls):
        """[(get, set)]: each BLAS library's thread-count getter and setter."""
        if not _controller:
            # scanning the loaded libraries is the slow part: do it once
            libs = ThreadpoolController().select(user_api="blas").lib_controllers
            _controller.append([_thread_count_functions(lib) for lib in libs])
        return _controller[0]

    @classmethod
    def enter(cls, n):
        with cls.lock:
            if cls.saved is None:
                cls.saved = [(lib, lib[0]()) for lib in cls.libraries()]
            cls.holders.setdefault(threading.get_ident(), []).append(n)
            cls.apply()

    @classmethod
    def leave(cls):
        with cls.lock:
            me = threading.get_ident()
            cls.holders[me].pop()
            if not cls.holders[me]:
                del cls.holders[me]
            if cls.holders:
                cls.apply()
            else:
                cls.restore()

    @classmethod
    def apply(cls):
        limit = min(n for limits in cls.holders.values() for n in limits)
        if limit != cls.applied:
            for (_, set_threads), original in cls.saved:
                set_threads(min(limit, original))
            cls.applied = limit

    @classmethod
    def restore(cls):
        for (get_threads, set_threads), original in cls.saved:
            # a count that is no longer ours was set by user code meanwhile: keep it
            if get_threads() == min(cls.applied, original):
                set_threads(original)
        cls.saved = None
        cls.applied = None

    @classmethod
    def after_fork_in_child(cls):
        cls.lock = threading.Lock()     # another thread may have held it at the fork
        me = threading.get_ident()
        cls.holders = {me: cls.holders[me]} if me in cls.holders else {}
        if not cls.holders and cls.saved is not None:
            cls.restore()


def _thread_count_functions(lib):
    """(get, set) of a threadpoolctl library controller's thread count.

    For OpenBLAS with its own (pthreads) pool, the library's
    ``openblas_get/set_num_threads`` themselves, through the ctypes symbols
    threadpoolctl found: a predict on one sample takes ~10 us, and
    threadpoolctl's Python wrappers (with the controlling-thread bookkeeping,
    which descend's own lock makes unnecessary) cost ~20 us a call. Other
    libraries, or a threadpoolctl without that symbol lookup, go through
    threadpoolctl's public API.
    """
    lookup = getattr(lib, "_get_symbol", None)
    if lib.internal_api == "openblas" and getattr(lib, "threading_layer", None) == "pthreads" \
            and lookup is not None:
        try:
            get_threads = lookup("openblas_get_num_threads")
            set_threads = lookup("openblas_set_num_threads")
        except Exception:       # pragma: no cover - a threadpoolctl that looks up otherwise
            get_threads = set_threads = None
        if get_threads is not None and set_threads is not None:
            return get_threads, set_threads
    return (lambda: lib.num_threads), (lambda n: _set_num_threads(lib, n))


def _set_num_threads(lib, n):
    """Set a library's thread count from whichever thread holds the limiter.

    threadpoolctl (>= 3.6) lets only one "controlling" Python thread change
    the count of a process-wide OpenBLAS pool and silently ignores the others;
    the thread that leaves the limiter last is often not the one that entered
    first. The limiter's lock already serialises descend's changes, so it
    takes control for the one call and hands it back.
    """
    release = getattr(type(lib), "clear_controlling_thread", None)
    if release is None:
        lib.set_num_threads(n)
        return
    release(force=True)
    try:
        lib.set_num_threads(n)
    finally:
        release()


class blas_threads:
    """Limit BLAS to n threads inside a ``with`` block (no-op for None).

    Safe to use from several Python threads at once: the limit is
    reference-counted and the libraries' thread counts are restored when the
    last block exits (unless user code changed them meanwhile). A class, not
    a generator: one-sample predict enters it, and it costs ~1 us.
    """
    __slots__ = ("n",)

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        if self.n is not None:
            _BlasLimit.enter(self.n)
        return self

    def __exit__(self, *exc):
        if self.n is not None:
            _BlasLimit.leave()
        return False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# ---------------------------------------------------------------- one training at a time
# id(object) -> [(the call training it ("fit", ...), its Python thread's ident, what
# the object is to that call: "network", "estimator" or "optimizer")], innermost last
_training = {}
_training_lock = threading.Lock()


class training:
    """``with training(net, "fit"):`` marks `net` as being trained for the block.

    RuntimeError, before anything changes, if it already is: two trainings
    of one network at once (fit from two Python threads, or fit called from
    one of its own callbacks) would interleave their updates, optimizer
    steps and histories without an error (two 3-epoch fits of one network
    in two threads recorded 3 optimizer steps for 6 epochs of 1 batch).

    The mark also tells :func:`check_consistent_read` which thread trains
    `obj` and the objects in `uses` (the network's optimizer), so that
    other threads cannot read their state half way through an epoch.

    Parameters
    ----------
    obj : object
        The network (kind "network") or scikit-learn estimator (kind
        "estimator") that the block trains.
    what : str
        The call, named in messages ("fit", "partial_fit", ...).
    kind : {"network", "estimator"}
    uses : iterable
        Other objects the block updates (None entries are skipped), marked
        as "optimizer": other threads may not read them, nor train another
        network with them, meanwhile (the fit's own thread may).
    """

    def __init__(self, obj, what, kind="network", uses=()):
        self.obj, self.what, self.kind, self.uses = obj, what, kind, uses
        self.marks = []

    def __enter__(self):
        ident = threading.get_ident()
        marks = [(id(self.obj), (self.what, ident, self.kind))] + [
            (id(used), (self.what, ident, "optimizer")) for used in self.uses
            if used is not None]
        with _training_lock:
            _check_not_training_locked(marks[0][0], self.what, self.kind)
            for key, _ in marks[1:]:
                _check_not_used_elsewhere_locked(key, self.what, ident)
            for key, mark in marks:
                _training.setdefault(key, []).append(mark)
        self.marks = marks
        return self

    def __exit__(self, *exc):
        with _training_lock:
            for key, mark in self.marks:
                marks = _training.get(key, [])
                if mark in marks:       # absent in a child forked by this fit
                    marks.remove(mark)
                if not marks:
                    _training.pop(key, None)


def check_not_training(net, what, kind="network"):
    """RuntimeError if `net` is being trained (see :class:`training`)."""
    with _training_lock:
        _check_not_training_locked(id(net), what, kind)


_ONE_CALL_AT_A_TIME = {
    "network": ("this network is already being trained by {running} (in another thread, "
                "or {what} was called from one of its callbacks); a network trains in one "
                "call at a time: wait for it to return, or train a copy made before it "
                "started (copy.deepcopy(net)) in each thread"),
    "estimator": ("another thread is already fitting this estimator ({running}); an "
                  "estimator fits in one call at a time: wait for that call to return, or "
                  "fit a clone (sklearn.base.clone(estimator)) in each thread"),
}


def _check_not_training_locked(key, what, kind):
    """RuntimeError naming `what` if the object whose id() is `key` is being
    trained; the caller holds _training_lock (so the check and the mark that
    may follow it are one step)."""
    marks = _training.get(key)
    if marks:
        raise RuntimeError(f"{what}: " + _ONE_CALL_AT_A_TIME[kind].format(
            running=marks[-1][0], what=what))


def _check_not_used_elsewhere_locked(key, what, ident):
    """RuntimeError if another thread trains a network with the optimizer whose
    id() is `key`: each fit would step and snapshot the other's state (and the
    second would meet the first's mark at its first get_state, half prepared)."""
    others = [mark for mark in _training.get(key, ()) if mark[1] != ident]
    if others:
        raise RuntimeError(
            f"{what}: another thread is training a network with this network's optimizer "
            f"({others[-1][0]}); two networks cannot share one optimizer while they train "
            "at once: compile each with an optimizer of its own")


# what another thread reading now would get wrong, and what to do instead
_TORN = ("its weights change at every step, while epochs_trained, the optimizer's "
         "iterations and the history change between epochs, so {what} now would mix two "
         "points of the training (a checkpoint that does not resume the run). Wait for "
         "{running} to return (join its thread), or save from a callback of that fit "
         "(descend.callbacks.ModelCheckpoint, or an on_epoch_end of your own), which runs "
         "in the fit's thread between epochs")
_READ_ELSEWHERE = {
    "network": "another thread is training this network ({running}): " + _TORN,
    "optimizer": "another thread is training a network with this optimizer ({running}): "
                 + _TORN,
    "estimator": ("another thread is fitting this estimator ({running}): its network and "
                  "fitted attributes are half updated until it returns. Wait for {running} "
                  "to return (join its thread)"),
}


def check_consistent_read(obj, what):
    """RuntimeError if a Python thread other than this one is training `obj`.

    For the calls that read a network's whole state (save, state_dict,
    get_weights, pickle and copy.deepcopy, the optimizer's get_state): from
    another thread they would see the weights of a step in the middle of an
    epoch with the counters of the epoch before, and give no sign of it.
    The fit's own thread (its callbacks, a signal handler between chunks of
    batches) reads as it always did.

    Parameters
    ----------
    obj : object
        A network, optimizer or estimator (see :class:`training`).
    what : str
        The reading call, named in the message.

    Raises
    ------
    RuntimeError
        Another thread's fit, partial_fit or train_on_batch is training
        `obj` (or, for an optimizer, a network with it); says to wait for it
        or to save from a callback.
    """
    me = threading.get_ident()
    with _training_lock:
        others = [mark for mark in _training.get(id(obj), ()) if mark[1] != me]
    if others:
        running, _, kind = others[-1]
        raise RuntimeError(f"{what}: " + _READ_ELSEWHERE[kind].format(running=running,
                                                                      what=what))


def _forget_trainings_after_fork():
    """A forked child has none of its parent's other threads, so none of the
    trainings they ran: its copies of those networks are free to train."""
    global _training_lock
    _training.clear()
    _training_lock = threading.Lock()   # another thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_trainings_after_fork)
