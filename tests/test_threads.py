"""Thread teams: the choice between all threads and one (TeamSize), and a
team smaller than asked for (OpenMP may grant fewer threads)."""
import copy
import itertools
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import descend as dn
from descend._train import TeamSize

_keys = itertools.count()


def fresh(n_threads=2, busy=True):
    """A TeamSize with nothing remembered (a workload key of its own), on
    cores that other jobs hold (busy=True), or not, or unknown (None)."""
    return TeamSize(n_threads, ("test", next(_keys)), busy=lambda: busy)


def run(team, seconds_per_batch, n_batches=10):
    """One chunk: TeamSize's choice, timed by the given function of it."""
    choice = team.choose()
    batches = 1 if team.retrying is not None else n_batches
    team.record(choice, seconds_per_batch[choice], batches)
    return choice, batches


def test_one_thread_is_never_retried():
    team = fresh(1)
    assert [run(team, {1: 0.01})[0] for _ in range(20)] == [1] * 20


def test_a_loaded_team_gives_way_to_one_thread_after_one_timed_chunk():
    team = fresh()
    seconds = {2: 0.025, 1: 0.0001}          # as measured with another job running
    chunks = [run(team, seconds) for _ in range(4)]
    # the first chunk is not timed, the second is, the third retries 1 thread
    # for a single batch, and from then on one thread runs
    assert chunks == [(2, 10), (2, 10), (1, 1), (1, 10)]
    assert team.best == 1


@pytest.mark.parametrize("busy", [True, None])
def test_busy_or_unknown_cores_retry_one_thread_right_after_the_first_timed_chunk(busy):
    team = fresh(busy=busy)
    seconds = {2: 0.001, 1: 0.0018}
    assert [run(team, seconds) for _ in range(4)] == [(2, 10), (2, 10), (1, 1), (2, 10)]
    assert team.best == 2 and team.seconds == {2: 0.001, 1: 0.0018}


def test_idle_cores_retry_one_thread_once_its_cost_is_the_retry_share():
    team = fresh(busy=False)
    seconds = {2: 0.001, 1: 0.0018}
    # one thread would cost at most 2 x 0.001 s: due once 0.002 / RETRY_SHARE
    # = 0.04 s (40 batches of 0.001 s) were spent on the team after the first chunk
    chunks = [run(team, seconds) for _ in range(7)]
    assert chunks == [(2, 10)] * 5 + [(1, 1), (2, 10)]
    assert team.best == 2 and team.seconds[1] == 0.0018


def test_a_team_slowed_before_the_load_is_seen_gives_way_at_the_work_estimate():
    # the load signal still says idle (it needs two windows of 0.1 s), but
    # the team takes 30 ms a batch whose work one thread does in ~0.1 ms:
    # the first retry is due once RETRY_SHARE of the time spent reaches the
    # estimate (0.0002 s: after 0.004 s), i.e. right after the first timed chunk
    team = TeamSize(2, ("test", next(_keys)), busy=lambda: False, one_thread_seconds=0.0002)
    seconds = {2: 0.03, 1: 0.0001}
    assert [run(team, seconds) for _ in range(4)] == [(2, 10), (2, 10), (1, 1), (1, 10)]
    assert team.best == 1


def test_the_work_estimate_never_delays_the_first_retry():
    # an estimate above n_threads x the team's time leaves the idle-core rule
    # as it is: due after 40 batches of 0.001 s (see the test above it)
    team = TeamSize(2, ("test", next(_keys)), busy=lambda: False, one_thread_seconds=1.0)
    chunks = [run(team, {2: 0.001, 1: 0.0018}) for _ in range(7)]
    assert chunks == [(2, 10)] * 5 + [(1, 1), (2, 10)]


def test_the_busy_signal_is_read_only_until_one_thread_was_measured():
    calls = []
    team = TeamSize(2, ("test", next(_keys)), busy=lambda: calls.append(1) or False)
    for _ in range(8):
        run(team, {2: 0.001, 1: 0.0018})
    assert team.seconds[1] == 0.0018
    assert len(calls) == 4      # from the first choice after a timed chunk to the retry


def scripted(readings):
    """A read function for OtherJobsLoad returning `readings` in turn:
    (wall seconds, busy CPU seconds of the cores, this process's CPU
    seconds), or None (unreadable)."""
    readings = iter(readings)
    return lambda: next(readings)


def test_other_jobs_load_is_busy_after_two_busy_windows_in_a_row():
    from descend._threads import OtherJobsLoad
    # a team of 2 threads on 2 cores; others' cores = (busy - own) / wall
    load = OtherJobsLoad(2, cores=2, read=scripted([
        (0.0, 100.0, 10.0),           # at construction
        (0.0625, 100.1, 10.05),       # the window (0.1 s) is not over
        (0.125, 100.2, 10.1125),      # others 0.7 cores over 0.125 s: one busy window
        (0.25, 100.45, 10.3625),      # others 0.0 cores: idle, the count starts again
        (0.375, 100.7, 10.4875),      # others 1.0 core: busy once
        (0.4375, 100.8, 10.5),        # too soon: the last verdict
        (0.5, 100.95, 10.5875),       # others 1.2 cores: busy twice in a row
        (0.5625, 101.0, 10.6),        # too soon: still busy
        (0.625, 101.2, 10.8375),      # others 0.0: idle
        None]))                       # /proc gone
    assert [load() for _ in range(9)] == [False, False, False, False, False, True, True,
                                          False, None]


def test_other_jobs_may_use_the_cores_the_team_leaves_free():
    from descend._threads import OtherJobsLoad
    readings = [(0.0, 0.0, 0.0), (1.0, 3.2, 2.0), (2.0, 7.2, 3.2), (3.0, 11.2, 4.4)]
    load = OtherJobsLoad(2, cores=4, read=scripted(readings))
    # a team of 2 on 4 cores leaves 2 free: 1.2 cores of others is not busy,
    # 2.8 cores (over 2 + THRESHOLD) is, twice in a row
    assert [load(), load(), load()] == [False, False, True]
    assert OtherJobsLoad(1, read=lambda: None)() is None


def test_other_jobs_load_waits_longer_on_many_cores():
    from descend._threads import OtherJobsLoad
    # CPU time comes in ticks per core: on 64 cores a window of 0.1 s would
    # hold rounding errors of whole cores
    assert OtherJobsLoad(2, cores=2, read=lambda: None).window == OtherJobsLoad.WINDOW
    assert OtherJobsLoad(2, cores=64, read=lambda: None).window == pytest.approx(1.6)


def test_a_first_reading_that_failed_does_not_leave_the_load_unknown_for_good():
    from descend._threads import OtherJobsLoad
    load = OtherJobsLoad(2, cores=2, read=scripted([
        None,                     # at construction: /proc/stat could not be read
        (1.0, 0.0, 0.0),          # readable again: the window starts here
        (1.125, 0.35, 0.2),       # others 1.2 cores: busy once
        (1.25, 0.7, 0.4)]))       # and twice
    assert [load(), load(), load()] == [None, False, True]


def test_a_single_busy_window_on_idle_cores_retries_nothing():
    from descend._threads import OtherJobsLoad
    # a spike of another job's threads in one window, then idle cores
    load = OtherJobsLoad(2, cores=2, read=scripted(
        [(0.0, 0.0, 0.0), (0.125, 0.35, 0.2)]
        + [(0.125 * i, 0.35 + 0.25 * (i - 1), 0.2 + 0.25 * (i - 1)) for i in range(2, 30)]))
    team = TeamSize(2, ("test", next(_keys)), busy=load)
    chunks = [run(team, {2: 0.001, 1: 0.0018}, n_batches=1) for _ in range(20)]
    assert {choice for choice, _ in chunks} == {2} and 1 not in team.seconds


def test_cpu_seconds_sum_the_usable_cores_lines_of_proc_stat(monkeypatch, tmp_path):
    from descend import _threads
    files = {"/proc/stat": tmp_path / "stat", "/proc/self/stat": tmp_path / "self"}
    # user nice system idle iowait irq softirq steal guest guest_nice
    files["/proc/stat"].write_text("cpu  310 0 40 900 5 1 2 7 0 0\n"
                                   "cpu0 100 0 10 500 5 1 1 3 0 0\n"
                                   "cpu1 210 0 30 400 0 0 1 4 0 0\n"
                                   "intr 12345\n")
    files["/proc/self/stat"].write_text("42 (a (b) c) R " + " ".join(["0"] * 10)
                                        + " 150 25 0 0\n")
    real_open = open
    monkeypatch.setattr("builtins.open",
                        lambda path, *a, **k: real_open(files.get(path, path), *a, **k))
    ticks = os.sysconf("SC_CLK_TCK")
    _, busy, own = _threads._cpu_seconds(cores=[1])
    # cpu1: user + nice + system + irq + softirq + steal; idle and iowait are not busy
    assert busy == pytest.approx((210 + 30 + 1 + 4) / ticks)
    assert own == pytest.approx((150 + 25) / ticks)
    assert _threads._cpu_seconds(cores=[0, 1])[1] == pytest.approx((115 + 245) / ticks)
    # a usable core without a line (a container's renumbered view): unknown,
    # not idle
    assert _threads._cpu_seconds(cores=[1, 2]) is None
    files["/proc/stat"].unlink()
    assert _threads._cpu_seconds(cores=[0]) is None


def test_other_jobs_load_reads_linux_proc():
    from descend._threads import OtherJobsLoad, _cpu_seconds
    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc/stat (not Linux)")
    wall, machine, own = _cpu_seconds()
    assert wall > 0 and machine >= own >= 0
    load = OtherJobsLoad(1)
    load.start = (load.start[0] - 1.0,) + load.start[1:]    # a window of a second
    assert load() in (True, False)


def test_retries_of_the_slow_choice_cost_at_most_their_share_of_the_time():
    team = fresh()
    seconds = {2: 0.025, 1: 0.0001}
    spent = {1: 0.0, 2: 0.0}
    for _ in range(5000):
        choice, batches = run(team, seconds)
        spent[choice] += seconds[choice] * batches
    assert team.best == 1
    # the first two chunks ran on 2 threads before anything was known
    retries = spent[2] - 2 * 10 * seconds[2]
    assert 0 < retries <= 1.1 * TeamSize.RETRY_SHARE * spent[1]


def test_a_team_that_becomes_faster_again_is_taken_back():
    team = fresh()
    seconds = {2: 0.025, 1: 0.001}
    for _ in range(5):
        run(team, seconds)
    assert team.best == 1
    seconds[2] = 0.0004                       # the other job ended
    choices = [run(team, seconds)[0] for _ in range(2000)]
    assert team.best == 2 and choices[-1] == 2


def test_what_was_learned_holds_for_the_next_fit_of_the_same_workload():
    key = ("test", next(_keys))
    team = TeamSize(2, key, busy=lambda: True)
    for _ in range(4):
        run(team, {2: 0.025, 1: 0.0001})
    again = TeamSize(2, key, busy=lambda: True)
    assert again.best == 1
    # the next fit does not retry 2 threads until it has spent 20x their cost
    assert [run(again, {2: 0.025, 1: 0.0001})[0] for _ in range(5)] == [1] * 5


@pytest.mark.parametrize("density", [0.15, 0.9])        # sparse and dense first layer
def test_a_team_smaller_than_asked_for_trains_the_same_weights(density):
    """OMP_THREAD_LIMIT=1 grants one thread to a region asking for two: the
    work must be cut over the team that runs (this used to skip half of it,
    and read stale rows in the sparse path)."""
    script = textwrap.dedent(f"""
        import numpy as np, descend as dn
        rng = np.random.default_rng(0)
        X = rng.normal(size=(256, 300))
        X[rng.random(X.shape) > {density}] = 0
        y = rng.integers(0, 3, 256)
        weights = []
        for n_threads in (1, 2):
            net = dn.Sequential([dn.Dense(32, activation="relu"), dn.Dense(3)],
                                input_dim=300, seed=1, n_threads=n_threads)
            net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(0.05))
            net.fit(X, y, epochs=2, batch_size=16, verbose=0)
            weights.append(net.get_weights())
        assert all((a == b).all() for a, b in zip(*weights)), "weights differ"
        print("same")
    """)
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "same"



# ------------------------------------------------ BLAS limits shared by threads
# (issue 12, fault 2: two concurrent fits left numpy's BLAS on one thread for
# good). Each scenario runs in a fresh interpreter: OpenBLAS ignores thread
# counts set from other threads once the main thread has set one, so a
# process whose main thread already set counts cannot show the fault.
BLAS_PRELUDE = """
import os, queue, threading
import numpy as np
import descend as dn
from descend import _threads
from threadpoolctl import threadpool_info, threadpool_limits

def counts():
    return sorted(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

BEFORE = counts()
if min(BEFORE) < 2:
    print("one core"); raise SystemExit(0)

class Actor:
    # a thread that runs the callables given to step(), one at a time
    def __init__(self):
        self.todo, self.done = queue.Queue(), queue.Queue()
        self.thread = threading.Thread(target=self.run, daemon=True); self.thread.start()
    def run(self):
        for step in iter(self.todo.get, None):
            step(); self.done.put(True)
    def step(self, f):
        self.todo.put(f); assert self.done.get(timeout=60)
    def stop(self):
        self.todo.put(None); self.thread.join()
"""


def run_blas_scenario(code):
    script = BLAS_PRELUDE + textwrap.dedent(code)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    if result.stdout.strip() == "one core":
        pytest.skip("BLAS runs on one thread here: no limit to restore")
    assert result.stdout.strip() == "ok", result.stdout + result.stderr


@pytest.mark.parametrize("order", ["AB-AB", "AB-BA", "AM-AM", "MA-AM"])
def test_overlapping_limits_restore_the_counts_in_any_order(order):
    # A and B are other threads, M the main thread; each enters a limit, then
    # they leave in the given order
    run_blas_scenario(f"""
        order = {order!r}
        actors = {{"A": Actor(), "B": Actor()}}
        limits = {{who: _threads.blas_threads(1) for who in "ABM"}}
        def on(who, f):
            actors[who].step(f) if who in actors else f()
        enter, leave = order.split("-")
        for who in enter:
            on(who, limits[who].__enter__)
            assert set(counts()) == {{1}}, counts()
        for i, who in enumerate(leave):
            on(who, lambda: limits[who].__exit__(None, None, None))
            assert counts() == ([1] * len(BEFORE) if i == 0 else BEFORE), counts()
        for actor in actors.values():
            actor.stop()
        print("ok")
    """)


def test_concurrent_fits_and_predicts_leave_blas_as_it_was():
    run_blas_scenario("""
        rng = np.random.default_rng(0)
        X = rng.normal(size=(3000, 40))
        y = (X[:, 0] > 0).astype(int)
        barrier = threading.Barrier(3)
        errors = []

        def work(kind, seed):
            try:
                net = dn.Sequential([dn.Dense(64, activation="relu"), dn.Dense(2)],
                                    input_dim=40, seed=seed)
                net.compile(loss="softmax_cross_entropy", optimizer="sgd")
                for _ in range(3):
                    barrier.wait(timeout=60)
                    if kind == "fit":
                        net.fit(X, y, epochs=1, batch_size=64, verbose=0)
                    else:
                        net.predict(X); net.evaluate(X, y)
            except BaseException as exc:
                errors.append(exc); barrier.abort()

        threads = [threading.Thread(target=work, args=args)
                   for args in (("fit", 0), ("fit", 1), ("predict", 2))]
        for t in threads: t.start()
        for t in threads: t.join(timeout=200)
        assert not errors, errors
        assert counts() == BEFORE, (counts(), BEFORE)
        np.ones((300, 300)) @ np.ones((300, 300))
        print("ok")
    """)


def test_a_count_set_by_user_code_during_a_limit_is_kept():
    run_blas_scenario("""
        with _threads.blas_threads(1):
            threadpool_limits(limits=3, user_api="blas")   # user code, e.g. a callback
            kept = counts()
        assert counts() == kept and set(kept) != {1}, (counts(), kept)
        print("ok")
    """)


def test_a_fork_while_another_thread_holds_the_limit():
    # the child inherits neither the other thread nor its hold: its limiter
    # works (no deadlock on the lock) and it restores the counts it inherited
    run_blas_scenario("""
        holder = Actor()
        limit = _threads.blas_threads(1)
        holder.step(limit.__enter__)
        pid = os.fork()
        if pid == 0:
            code = 0 if counts() == BEFORE else 3
            with _threads.blas_threads(1):
                code = code or (0 if set(counts()) == {1} else 4)
            code = code or (0 if counts() == BEFORE else 5)
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        holder.step(lambda: limit.__exit__(None, None, None))
        holder.stop()
        assert counts() == BEFORE
        print("ok")
    """)


# ------------------------------------- reading a network that another thread trains
# (a tester's report: save, state_dict, deepcopy or get_weights from another
# thread during fit gave the weights of a step in mid-epoch with the counters
# of the last epoch boundary, and no error; resuming such a file could not
# reproduce the run)
def _reads_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 8))
    return X, np.argmax(X[:, :3], axis=1)


def _reads_net():
    net = dn.Sequential([dn.Dense(16, activation="relu"), dn.Dense(3)], input_dim=8,
                        seed=0, n_threads=1)
    net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.Adam(0.01))
    return net


class _PauseMidEpoch(dn.callbacks.Callback):
    """Holds its fit after batch 2 of epoch 1 (epoch 0 complete, epoch 1
    under way) until released."""

    def __init__(self):
        super().__init__()
        self.inside, self.release = threading.Event(), threading.Event()
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 2:
            self.inside.set()
            assert self.release.wait(60)


def _fit_paused_in_a_thread(net, epochs=2):
    X, y = _reads_data()
    pause, errors = _PauseMidEpoch(), []

    def fit():
        try:
            net.fit(X, y, epochs=epochs, batch_size=16, verbose=0, callbacks=[pause],
                    steps_per_execution=1)
        except Exception as exc:    # pragma: no cover - reported by the test
            errors.append(exc)
    thread = threading.Thread(target=fit)
    thread.start()
    assert pause.inside.wait(60)
    return thread, pause, errors


READS = {
    "save": lambda net, path: net.save(path),
    "descend.io.save": lambda net, path: dn.io.save(net, path),
    "state_dict": lambda net, path: net.state_dict(),
    "get_weights": lambda net, path: net.get_weights(),
    "copy.deepcopy": lambda net, path: copy.deepcopy(net),
    "copy.copy": lambda net, path: copy.copy(net),
    "pickle": lambda net, path: pickle.dumps(net),
    "optimizer.get_state": lambda net, path: net.optimizer.get_state(),
    "optimizer.state_dict": lambda net, path: net.optimizer.state_dict(),
    "deepcopy(optimizer)": lambda net, path: copy.deepcopy(net.optimizer),
}
READ_NAMES = {"save": "save", "descend.io.save": "save", "state_dict": "state_dict",
              "get_weights": "get_weights", "copy.deepcopy": "pickle or copy.deepcopy",
              "copy.copy": "pickle or copy.deepcopy", "pickle": "pickle or copy.deepcopy",
              "optimizer.get_state": "get_state", "optimizer.state_dict": "state_dict",
              "deepcopy(optimizer)": "pickle or copy.deepcopy"}


@pytest.mark.parametrize("read", sorted(READS))
def test_reading_the_state_of_a_network_another_thread_trains_is_refused(read, tmp_path):
    path = tmp_path / "during.npz"
    net = _reads_net()
    thread, pause, errors = _fit_paused_in_a_thread(net)
    try:
        assert net.epochs_trained == 1      # the pause is in epoch 1, after batch 2
        whose = "a network with this optimizer" if "optimizer" in read else "this network"
        with pytest.raises(RuntimeError, match=re.escape(
                f"{READ_NAMES[read]}: another thread is training {whose} (fit): ")
                + r".*Wait for fit to return \(join its thread\), or save from a callback"):
            READS[read](net, path)
        assert not path.exists()            # nothing written
        # documented: predict and evaluate run meanwhile, on the weights as they are
        X, y = _reads_data()
        assert net.predict(X).shape == (200, 3)
        assert set(net.evaluate(X, y)) == {"loss", "accuracy"}
    finally:
        pause.release.set()
        thread.join(60)
    assert not errors
    # the fit went on undisturbed, and once it returned the state reads again
    assert net.epochs_trained == 2 and net.optimizer.iterations == 2 * 13
    net.save(path)
    loaded = dn.load(path)
    assert loaded.epochs_trained == 2 and loaded.optimizer.iterations == 2 * 13
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), net.get_weights()))


def test_the_fits_own_thread_checkpoints_between_epochs_and_resumes_the_run(tmp_path):
    """ModelCheckpoint and other callbacks run in the fit's thread (here not
    the main one): they read as before, and a file saved after epoch 1
    resumes to the weights of the uninterrupted run, bit for bit."""
    X, y = _reads_data()
    mid_epoch = []

    class ReadMidEpoch(dn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 5 and not mid_epoch:
                state = self.model.state_dict()
                mid_epoch.append((state["epochs_trained"], self.model.get_weights()))

    net = _reads_net()
    checkpoint = dn.callbacks.ModelCheckpoint(str(tmp_path / "ckpt-{epoch}.npz"))
    thread = threading.Thread(target=lambda: net.fit(
        X, y, epochs=3, batch_size=16, verbose=0, steps_per_execution=1,
        callbacks=[checkpoint, ReadMidEpoch()]))
    thread.start()
    thread.join(120)
    assert net.epochs_trained == 3 and mid_epoch and mid_epoch[0][0] == 0
    resumed = dn.load(tmp_path / "ckpt-1.npz")
    assert resumed.epochs_trained == 1 and resumed.optimizer.iterations == 13
    resumed.fit(X, y, epochs=2, batch_size=16, verbose=0)
    assert resumed.optimizer.iterations == net.optimizer.iterations == 3 * 13
    assert all(np.array_equal(a, b) for a, b in zip(resumed.get_weights(), net.get_weights()))


def test_a_signal_handler_in_the_fitting_thread_may_save_mid_epoch(tmp_path):
    """Python runs signal handlers in the main thread, between the compiled
    loop's chunks or in a callback: that is the fit's thread, which may read."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(
            signal, "SIGUSR1"):
        pytest.skip("needs SIGUSR1 and the main thread")
    X, y = _reads_data()
    path, handled, outcome = tmp_path / "signal.npz", threading.Event(), []

    def checkpoint(signum, frame):
        try:
            outcome.append(net.save(path))
        except Exception as exc:    # pragma: no cover - reported by the test
            outcome.append(exc)
        handled.set()

    class SignalMidEpoch(dn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2 and not handled.is_set() and not senders:
                # from another thread: delivered wherever the main thread is next
                senders.append(threading.Thread(
                    target=os.kill, args=(os.getpid(), signal.SIGUSR1)))
                senders[0].start()

        def on_epoch_end(self, epoch, logs=None):
            assert handled.wait(60)         # the handler ran inside the fit

    senders = []
    net = _reads_net()
    previous = signal.signal(signal.SIGUSR1, checkpoint)
    try:
        net.fit(X, y, epochs=1, batch_size=16, verbose=0, steps_per_execution=1,
                callbacks=[SignalMidEpoch()])
    finally:
        senders[0].join(60)
        signal.signal(signal.SIGUSR1, previous)
    assert outcome == [str(path)]
    saved = dn.load(path)      # in epoch 0: its counters are those before it
    assert saved.epochs_trained == 0 and saved.get_weights()[0].shape == (8, 16)


def test_a_network_sharing_the_optimizer_another_thread_trains_with_is_refused():
    net = _reads_net()
    other = dn.Sequential([dn.Dense(4), dn.Dense(3)], input_dim=8, seed=1, n_threads=1)
    other.compile(loss="softmax_cross_entropy", optimizer=net.optimizer)
    X, y = _reads_data()
    thread, pause, errors = _fit_paused_in_a_thread(net)
    try:
        with pytest.raises(RuntimeError, match=r"fit: another thread is training a network "
                                               r"with this network's optimizer \(fit\); .*"
                                               r"compile each with an optimizer of its own"):
            other.fit(X, y, epochs=1, batch_size=16, verbose=0)
        assert not other.history.epoch and other.epochs_trained == 0
    finally:
        pause.release.set()
        thread.join(60)
    assert not errors and net.optimizer.iterations == 2 * 13
