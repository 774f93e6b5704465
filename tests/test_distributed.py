"""descend.distributed: data-parallel fit over MPI, run under mpiexec.

Each test launches ``mpiexec -n p python tests/mpi_worker.py SCENARIO OUT``
(a subprocess with a timeout: a hang fails the test instead of the suite)
and asserts on what rank 0 wrote. Skipped with a reason without mpi4py or
an mpiexec (``pip install '.[mpi]'`` brings both).
"""
import inspect
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import descend as dn

WORKER = pathlib.Path(__file__).with_name("mpi_worker.py")
TIMEOUT = 240       # seconds for one mpiexec run (3 ranks on 2 busy cores)


def _mpiexec():
    beside = pathlib.Path(sys.executable).with_name("mpiexec")
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _have_mpi4py():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


needs_mpi = pytest.mark.skipif(
    not _have_mpi4py() or _mpiexec() is None,
    reason="needs mpi4py and mpiexec (pip install '.[mpi]': mpi4py and mpich)")


SHARED_MEMORY = pathlib.Path("/dev/shm")


def mpich_segments():
    """Names of MPICH's shared-memory segments in /dev/shm (none elsewhere)."""
    try:
        return {p.name for p in SHARED_MEMORY.iterdir() if p.name.startswith("mpich_shm_")}
    except OSError:
        return set()


def _mapped_by_a_process():
    """Paths under /dev/shm that a running process maps."""
    mapped = set()
    for maps in pathlib.Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:     # the process ended, or is not ours to read
            continue
        mapped.update(line.split(None, 5)[5].removesuffix(" (deleted)")
                      for line in text.splitlines() if " /dev/shm/" in line)
    return mapped


def remove_leaked_segments(before):
    """Remove MPICH segments that appeared since `before` and no process maps.
    A job ended by MPI_Abort leaves its node's segment behind (3 MB of RAM
    each, measured; a developer's machine ran out of memory with 7400 of
    them from abort tests and scripts); a job that ends normally removes it.
    Ranks the launcher killed may map it for a moment after mpiexec returns:
    waits up to 5 s for them."""
    left = mpich_segments() - before
    deadline = time.monotonic() + 5     # ranks the launcher killed may still be exiting
    while left:
        mapped = _mapped_by_a_process()
        for name in list(left):
            path = SHARED_MEMORY / name
            if str(path) not in mapped:
                path.unlink(missing_ok=True)
                left.discard(name)
        if not left or time.monotonic() > deadline:
            return      # (a segment still mapped then is a live job's: left alone)
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def no_leaked_mpich_segments():
    before = mpich_segments()
    yield
    remove_leaked_segments(before)


def run_mpi(n, scenario, tmp_path, expect_ok=True, loop="compiled", omp_threads=1):
    """Run a scenario on n ranks; (rank 0's findings or None, the completed process).
    loop: "compiled" (the allreduce inside the compiled loop where it applies) or
    "steps" (the step loop, which returns to Python once a step)."""
    out = tmp_path / "out.json"
    env = dict(os.environ)
    # the worker imports the descend these tests import (source tree or installed)
    package_root = str(pathlib.Path(dn.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([package_root, env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = str(omp_threads)
    done = subprocess.run([_mpiexec(), "-n", str(n), sys.executable, str(WORKER), scenario,
                           str(out), loop], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=tmp_path)
    if expect_ok:
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(out.read_text()), done
    return None, done


@needs_mpi
@pytest.mark.parametrize("n, loop", [(2, "compiled"), (3, "compiled"), (2, "steps"),
                                     (3, "steps")])
def test_weights_equal_the_one_process_run_and_are_bit_identical_across_ranks(
        n, loop, tmp_path):
    found, _ = run_mpi(n, "equal", tmp_path, loop=loop)
    assert found.pop("size") == n
    assert len(found) == 7
    for name, case in found.items():
        assert case["max_rel"] < 1e-9, name
        assert case["same_on_ranks"], name
        assert case["iterations"][0] == case["iterations"][1] == 21, name
        # each epoch's seconds inside MPI_Allreduce (timed inside the compiled loop,
        # or around the step loop's call), summed over the fit with the steps and bytes
        assert len(case["allreduce_seconds"]) == 3 and min(case["allreduce_seconds"]) > 0
        stats = case["stats"]
        assert stats["allreduce_seconds"] == pytest.approx(sum(case["allreduce_seconds"]))
        # 203 rows, batch 32: the compiled loop applies; its buffer holds every
        # gradient and the loss, the step loop's also the correct count and the weight
        extra = 1 if loop == "compiled" else 3
        assert (stats["loop"], stats["ranks"], stats["steps"], stats["bytes_per_step"]) == (
            loop, n, 21, (case["n_parameters"] + extra) * 8)
        for key, (mine, reference) in case["logs"].items():
            np.testing.assert_allclose(mine, reference, rtol=1e-9, err_msg=f"{name} {key}")


@needs_mpi
@pytest.mark.parametrize("n, omp_threads", [(2, 64), (3, 64), (2, 1)])
def test_ranks_on_one_node_share_its_threads(n, omp_threads, tmp_path):
    # p ranks each running a team of all cores oversubscribe the node (measured 50x slower)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    found, _ = run_mpi(n, "threads", tmp_path, omp_threads=omp_threads)
    assert found["threads"] == [max(1, min(omp_threads, cores) // n)] * n


@needs_mpi
def test_one_rank_runs_as_before(tmp_path):
    found, _ = run_mpi(1, "equal", tmp_path)
    assert all(case["max_rel"] == 0.0 for key, case in found.items() if key != "size")


@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
def test_sharded_input_trains_as_the_interleaved_one_process_data(n, tmp_path):
    found, _ = run_mpi(n, "sharded", tmp_path)
    assert found["max_rel"] < 1e-9
    assert found["same_on_ranks"] and found["shuffled_same_on_ranks"]
    assert found["shuffled_loss"][-1] < found["shuffled_loss"][0]


@needs_mpi
@pytest.mark.parametrize("n, loop", [(2, "compiled"), (3, "compiled"), (2, "steps"),
                                     (3, "steps")])
def test_sample_and_class_weights_train_as_on_one_process(n, loop, tmp_path):
    # the loss is sum(w l) / sum(w) over the global batch: each rank's share is
    # scaled by the whole batch's weight sum (sharded: summed in the allreduce)
    found, _ = run_mpi(n, "weighted", tmp_path, loop=loop)
    assert found.pop("size") == n
    assert sorted(found) == ["adam_dropout", "estimator_balanced", "sgd_momentum_l1l2_clipvalue",
                             "sgd_schedule_mse", "sharded", "sharded_balanced"]
    for name, case in found.items():
        assert case["max_rel"] < 1e-9, name
        assert case["same_on_ranks"], name
        assert case["logs"], name
        for key, (mine, reference) in case["logs"].items():
            np.testing.assert_allclose(mine, reference, rtol=1e-9, err_msg=f"{name} {key}")


@needs_mpi
def test_memmap_input_trains_as_in_memory(tmp_path):
    found, _ = run_mpi(2, "memmap", tmp_path)
    assert found["max_rel"] < 1e-9 and found["same_on_ranks"]
    if "h5py_max_rel" in found:     # h5py installed (the test extra brings it)
        assert found["h5py_max_rel"] < 1e-9 and found["h5py_same_on_ranks"]


@needs_mpi
def test_mismatched_ranks_are_named_on_every_rank(tmp_path):
    found, _ = run_mpi(3, "mismatch", tmp_path)
    for what, fragment in [("batch_size", "rank 1 differs from rank 0 in batch_size: 16"),
                           ("seed", "rank 1 differs from rank 0 in seed: 2"),
                           ("units", "rank 1 differs from rank 0 in layers: [(17"),
                           # was: each rank scored its part of its own validation rows
                           ("validation_rows",
                            "rank 1 differs from rank 0 in validation_rows: 20 (rank 1) != 30"),
                           # was: rank 1 logged other losses than rank 0
                           ("sample_weight",
                            "rank 1 differs from rank 0 in sample_weight digest")]:
        assert all(fragment in message for message in found[what]), found[what]
    # a rank's own input error: raised there, named on the others
    assert found["bad_input"][1].startswith("X contains 1 NaN")
    for rank in (0, 2):
        assert found["bad_input"][rank].startswith(
            "distributed fit: rank 1 rejected its arguments (ValueError: X contains 1 NaN")


@needs_mpi
@pytest.mark.parametrize("loop", ["compiled", "steps"])
def test_ranks_whose_callbacks_disagree_stop_on_every_rank_before_the_epoch(loop, tmp_path):
    # was: the ranks trained on with different learning rates (or weights),
    # logging the same allreduced loss, rank 0's saved model matching no
    # other; a setting the compiled loop read once, changed on every rank,
    # ended the job by MPI_Abort; a replaced kernel was not noticed
    found, _ = run_mpi(2, "disagree", tmp_path, loop=loop)
    differ = "distributed fit: the ranks are at epoch 2 with different "
    changed = "fit: optimizer.momentum changed during fit (0.9 -> 0.5"
    expected = {
        "learning_rate": [differ + "learning_rate (rank 0: 0.05, rank 1: 0.025)"] * 2,
        "weights": [differ + "weights (BLAKE2b digest) (rank 0: '"] * 2,
        # the compiled loop read the momentum once: rank 1 stops, rank 0 names it;
        # the step loop reads it every step: the ranks differ
        "momentum": ([f"distributed fit: rank 1 stopped the fit ({changed}", changed]
                     if loop == "compiled" else
                     [differ + "optimizer.momentum (rank 0: 0.9, rank 1: 0.5)"] * 2),
        "momentum_everywhere": [changed] * 2 if loop == "compiled" else [None] * 2,
        "kernel": (["fit: the network's layers.0.kernel was replaced during fit"] * 2
                   if loop == "compiled" else [None] * 2)}
    for what, starts in expected.items():
        for (message, epochs_trained, epochs), start in zip(found[what], starts):
            if start is None:       # the step loop reads them at every step
                assert message is None and epochs_trained == 3, (what, message)
            else:
                assert message is not None and message.startswith(start), (what, message)
                assert epochs_trained == 1 and epochs == [0]


@needs_mpi
def test_files_are_written_on_rank_0_and_early_stopping_agrees(tmp_path):
    found, _ = run_mpi(3, "callbacks", tmp_path)
    assert found["files"] == ["ck-rank0-1.npz", "ck-rank0-2.npz", "log-rank0.csv",
                              "model-rank0.npz", ]
    assert found["epochs_run"] == [2, 2, 2]     # min_delta=10: stops after patience 0


@needs_mpi
def test_resume_from_rank_0s_file_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    found, _ = run_mpi(2, "resume", tmp_path)
    assert found["max_abs"] == 0.0 and found["same_on_ranks"]
    assert found["epochs"] == [3, 3]


@needs_mpi
def test_estimator_takes_the_mpi_object(tmp_path):
    found, _ = run_mpi(2, "estimator", tmp_path)
    assert found["max_rel"] < 1e-9
    np.testing.assert_allclose(*found["loss_curve"], rtol=1e-9)
    assert len(found["loss_curve"][0]) == 4


@needs_mpi
@pytest.mark.parametrize("scenario, message", [("fail", "RuntimeError: boom on rank one"),
                                               ("interrupt", "KeyboardInterrupt")])
def test_a_failing_rank_ends_the_job_with_its_message(scenario, message, tmp_path):
    _, done = run_mpi(3, scenario, tmp_path, expect_ok=False)
    assert done.returncode != 0
    assert "rank 1 of 3 failed; aborting the job" in done.stderr
    assert message in done.stderr
    assert not (tmp_path / "out.json").exists()


def test_an_aborting_rank_waits_until_the_launcher_has_read_its_message(tmp_path):
    # was: MPI_Abort reached mpiexec before the message and 7 of 1000 jobs
    # ended with an empty stderr (the CI's failing-rank test, once)
    import threading
    from descend.distributed import _wait_until_read
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as reader, os.fdopen(write_fd, "w") as writer:
        writer.write("rank 1 failed\n")
        writer.flush()
        got = []
        launcher = threading.Timer(0.3, lambda: got.append(os.read(reader.fileno(), 100)))
        start = time.monotonic()
        launcher.start()
        _wait_until_read(writer.fileno(), timeout=10)
        waited = time.monotonic() - start
        launcher.join()
        assert got == [b"rank 1 failed\n"] and 0.25 < waited < 5
        writer.write("nobody reads this\n")       # no reader: gives up at the timeout
        writer.flush()
        start = time.monotonic()
        _wait_until_read(writer.fileno(), timeout=0.2)
        assert 0.15 < time.monotonic() - start < 5
    with open(tmp_path / "log.txt", "w") as not_a_pipe:      # a file: no wait
        not_a_pipe.write("x" * 100)
        start = time.monotonic()
        _wait_until_read(not_a_pipe.fileno(), timeout=10)
        assert time.monotonic() - start < 1


@needs_mpi
def test_an_aborted_jobs_shared_memory_is_removed_by_the_tests(tmp_path):
    before = mpich_segments()
    run_mpi(3, "fail", tmp_path, expect_ok=False)
    if not SHARED_MEMORY.is_dir():
        pytest.skip("no /dev/shm")
    if not mpich_segments() - before:
        pytest.skip("this MPI left no MPICH segment after MPI_Abort")
    remove_leaked_segments(before)
    assert not mpich_segments() - before


@needs_mpi
@pytest.mark.parametrize("n, variant, message, epochs", [
    (3, "rank1-batch", "rank 1 of 3 failed; aborting the job", 2),
    (2, "rank0-interrupt", "rank 0 of 2 failed; aborting the job", 2),
    (2, "rank0-epoch_end", "saved epoch 3 (the last complete one)", 3)])
def test_an_aborted_job_leaves_the_last_complete_epoch_in_rank_0s_checkpoint(
        n, variant, message, epochs, tmp_path):
    # the job would train 100000 epochs: only the abort ends it before the timeout
    _, done = run_mpi(n, f"fault-{variant}", tmp_path, expect_ok=False)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
    saved = dn.load(tmp_path / "ck.npz")
    assert saved.epochs_trained == epochs
    with np.load(tmp_path / f"ref-{epochs}.npz") as reference:
        for mine, theirs in zip(saved.get_weights(), reference.values()):
            np.testing.assert_allclose(mine, theirs, rtol=1e-9)
    assert not (tmp_path / "out.json").exists()


def test_distributed_must_be_an_mpi_object():
    X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    net = dn.Sequential([dn.Dense(2)], input_dim=2, seed=0)
    net.compile(loss="softmax_cross_entropy")
    with pytest.raises(TypeError, match="distributed must be descend.distributed.MPI"):
        net.fit(X, y, distributed="mpi")
    assert net.epochs_trained == 0


def test_fit_hands_every_argument_to_the_distributed_fit_unchanged(monkeypatch):
    # the MPI fit itself runs under mpiexec (above); this pins without MPI that
    # Sequential.fit passes each of its arguments on, by name and by identity
    passed = {name: object() for name in inspect.signature(dn.Sequential.fit).parameters
              if name not in ("self", "X", "y", "distributed")}
    seen = {}

    def distributed_fit(model, distributed, X, y, **kwargs):
        seen.update(model=model, distributed=distributed, X=X, y=y, kwargs=kwargs)
        return "history"
    monkeypatch.setattr(dn.distributed, "fit", distributed_fit)
    net = dn.Sequential([dn.Dense(2)], input_dim=2, seed=0)
    net.compile(loss="softmax_cross_entropy")
    X, y, mpi = object(), object(), object()
    assert net.fit(X, y, distributed=mpi, **passed) == "history"
    assert seen.pop("model") is net and seen.pop("distributed") is mpi
    assert seen.pop("X") is X and seen.pop("y") is y
    kwargs = seen.pop("kwargs")
    assert sorted(kwargs) == sorted(passed)
    for name, value in passed.items():
        assert kwargs[name] is value, name
    # 13 arguments besides X, y and distributed: a new one must be handed on too
    assert len(passed) == 13


def test_only_rank_0_of_a_distributed_fit_writes_the_file(tmp_path):
    # after a distributed fit every rank holds the same weights: rank 0 writes,
    # the others return the path without touching the file system
    net = dn.Sequential([dn.Dense(2)], input_dim=2, seed=0)
    net.compile(loss="softmax_cross_entropy")

    class Rank:
        def __init__(self, is_root):
            self.is_root = is_root
    net._distributed = Rank(is_root=False)
    path = tmp_path / "model.npz"
    assert net.save(path) == path and not path.exists()
    net._distributed = Rank(is_root=True)
    assert os.fspath(net.save(path)) == str(path) and path.exists()
    np.testing.assert_array_equal(dn.load(path).layers[0].kernel, net.layers[0].kernel)


@pytest.mark.skipif(not _have_mpi4py(), reason="needs mpi4py (pip install '.[mpi]')")
def test_mpi_checks_its_arguments():
    with pytest.raises(TypeError, match="comm must be an mpi4py intra-communicator"):
        dn.distributed.MPI(comm="world")
    with pytest.raises(TypeError, match="sharded"):
        dn.distributed.MPI(sharded="yes")


@pytest.mark.skipif(not _have_mpi4py(), reason="needs mpi4py (pip install '.[mpi]')")
def test_the_step_loops_batch_hooks_come_at_their_multiples_beside_a_bar(monkeypatch):
    # 40 steps: the bar every 2, the hooks every 3 (steps_per_execution)
    from descend import training

    class Bar:
        updates = []

        def update_to(self, batches_done, running_loss):
            self.updates.append(batches_done)

        def close(self):
            pass
    monkeypatch.setattr(training, "_progress_bar", lambda *args: Bar())
    ends = []

    class Hooks(dn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            ends.append(batch)
    X, y = np.random.default_rng(0).normal(size=(160, 3)), np.arange(160) % 2
    net = dn.Sequential([dn.Dense(2)], input_dim=3, dtype="float64", seed=0)
    net.compile(loss="softmax_cross_entropy")
    net.fit(X, y, epochs=1, batch_size=4, verbose=1, callbacks=[Hooks()], shuffle=False,
            steps_per_execution=3, distributed=dn.distributed.MPI(sharded=True))
    assert net.distributed_stats_["loop"] == "steps"
    assert ends == list(range(2, 39, 3)) + [39]
    assert set(range(2, 41, 2)) <= set(Bar.updates)


@pytest.mark.skipif(not _have_mpi4py(), reason="needs mpi4py (pip install '.[mpi]')")
def test_one_rank_step_loop_raises_instead_of_aborting():
    # sharded input on one rank runs the distributed step loop; nobody waits for this
    # rank, so an error is raised as in a one-process fit (not MPI_Abort), epoch undone
    class Fails(dn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("boom in epoch 2")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    net = dn.Sequential([dn.Dense(2)], input_dim=3, dtype="float64", seed=0)
    net.compile(loss="softmax_cross_entropy")
    with pytest.raises(RuntimeError, match="boom in epoch 2"):
        net.fit(X, y, epochs=3, batch_size=8, verbose=0, callbacks=[Fails()],
                distributed=dn.distributed.MPI(sharded=True))
    assert net.epochs_trained == 2 and net.distributed_stats_["loop"] == "steps"
