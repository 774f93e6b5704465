"""Session 10's breaker: a negative zero density in the Python-side plans,
bench/shapes.py's directories, and an aborting MPI rank whose stderr is not
a plain pipe that the launcher reads."""
import numpy as np
import pytest

import descend as dn
from descend import plans
from test_breaker5 import bench_script
from test_distributed import _mpiexec, needs_mpi, no_leaked_mpich_segments  # noqa: F401


# ------------------------------------------- a density of -0.0 in Python plans
@pytest.mark.parametrize("density", [-0.0, np.float64(-0.0), np.float32(-0.0)])
def test_check_plan_refuses_a_negative_zero_density_as_descend_plan_does(density):
    """0 <= -0.0 in Python: plan=, net.plan and pin_plan took the -0.0 that
    DESCEND_PLAN refuses (in both its forms) since robust10."""
    with pytest.raises(ValueError, match=r"plan\['predict_sparse_density'\] must be a number "
                                         r"in \[0, 1\] or None, got .*-0\.0.*negative zero"):
        plans.check_plan({"predict_sparse_density": density})


@pytest.mark.parametrize("density", [0, 0.0, np.float64(0.0), 1, 1.0, 0.3])
def test_check_plan_keeps_taking_an_unsigned_zero_and_the_ends(density):
    assert plans.check_plan({"predict_sparse_density": density}) == {
        "predict_sparse_density": density}


def test_pin_plan_and_a_network_plan_refuse_a_negative_zero_density():
    net = dn.Sequential([dn.Dense(2)], input_dim=3, seed=0)
    with pytest.raises(ValueError, match="negative zero"):
        net.pin_plan({"predict_sparse_density": -0.0})
    assert net.plan is None                             # refused before any change
    net.plan = {"predict_sparse_density": -0.0}         # assigned by hand: refused at use
    with pytest.raises(ValueError, match="negative zero"):
        net.predict(np.zeros((4, 3)))
    net.plan = {"predict_sparse_density": 0.0}
    assert net.predict(np.zeros((4, 3))).shape == (4, 2)


def test_descend_plan_and_check_plan_agree_on_a_negative_zero(monkeypatch):
    for text in ("predict_sparse_density=-0.0", '{"predict_sparse_density": -0.0}'):
        monkeypatch.setenv("DESCEND_PLAN", text)
        with pytest.raises(ValueError, match="negative zero"):
            plans.forced_from_env()
    with pytest.raises(ValueError, match="negative zero"):
        plans.check_plan({"predict_sparse_density": -0.0})


# ------------------------------------------------- bench/shapes.py directories
@pytest.mark.parametrize("option", ["--data-home", "--scratch"])
def test_bench_shapes_refuses_a_file_as_a_directory_before_any_work(option, tmp_path, capsys,
                                                                   monkeypatch):
    """--data-home naming a file failed only after the scratch directory was
    made (in load_mnist); --scratch naming a file in os.makedirs."""
    shapes = bench_script("shapes.py")
    a_file = tmp_path / "not-a-directory"
    a_file.write_text("x")
    scratch = tmp_path / "scratch"
    monkeypatch.setattr(shapes, "run", lambda cell: pytest.fail("a cell ran"))
    monkeypatch.setattr(dn.datasets, "load_mnist", lambda **k: pytest.fail("MNIST was read"))
    argv = ["--data-home", str(tmp_path), "--scratch", str(scratch)]
    argv[argv.index(option) + 1] = str(a_file)
    with pytest.raises(SystemExit) as stop:
        shapes.main(argv)
    assert stop.value.code == 2
    assert f"{option}: expected a directory, got {str(a_file)!r} (a file)" in (
        capsys.readouterr().err)
    assert not scratch.exists()


# --------------------------------------- an aborting rank's message and its end
# MPI.abort in a child process (it never returns) on a stand-in communicator:
# Abort writes a mark to a file and returns, as MPICH's may; the launcher is
# the test, which reads the child's stderr (or, "unread", leaves it in a pipe)
ABORTING_RANK = r'''
import io, os, signal, sys, threading
from descend import distributed

class Comm:
    def Get_rank(self):
        return 1
    def Get_size(self):
        return 3
    def Abort(self, code):
        with open(sys.argv[2], "w") as f:
            f.write(f"Abort({code})")

case = sys.argv[1]
if case == "stringio":
    sys.stderr = io.StringIO()
elif case == "none":
    sys.stderr = None
elif case == "closed":
    sys.stderr.close()
elif case == "log-file":
    sys.stderr = open(sys.argv[3], "w")
elif case == "ctrl-c":      # Ctrl-C while the rank waits for the launcher to read
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
dist = object.__new__(distributed.MPI)
dist.comm = Comm()
words = "x" * 1_000_000 if case in ("huge", "huge-unread") else "boom on rank one"
try:
    raise RuntimeError(words + " the end")
except RuntimeError as exc:
    dist.abort(exc)
'''


def child_env():
    """The environment of a child process that imports this descend."""
    import os
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(dn.__file__)), os.environ.get("PYTHONPATH", "")]))


def run_unread(argv, unread="pipe", with_stdout=False, timeout=60, **popen):
    """Run `argv` with its stderr (and stdout `with_stdout`) into a `unread`
    ("pipe", "pty" or "socket") that nobody reads until it has ended; (its
    exit status, what it wrote there). Fails the test if it hangs."""
    import os
    import subprocess
    if unread == "pty":
        import pty
        read_end, write_end = pty.openpty()
    elif unread == "socket":
        import socket
        ends = socket.socketpair()
        read_end, write_end = (os.dup(end.fileno()) for end in ends)
        for end in ends:
            end.close()
    else:
        read_end, write_end = os.pipe()
    try:
        child = subprocess.Popen(argv, stderr=write_end, env=child_env(), stdout=(
            write_end if with_stdout else subprocess.DEVNULL), **popen)
        os.close(write_end)
        try:
            status = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            pytest.fail(f"{argv[0]} hung on a {unread} nobody reads")
        os.set_blocking(read_end, False)
        return status, os.read(read_end, 1 << 20).decode(errors="replace")
    finally:
        os.close(read_end)


def abort_in_a_child(tmp_path, case, unread=None):
    """(the child's exit status, its stderr as text, whether Abort was called);
    `unread`: "pipe", "pty" or "socket", a stderr nobody reads until the end."""
    import subprocess
    import sys
    script = tmp_path / "aborting_rank.py"
    script.write_text(ABORTING_RANK)
    mark, log = tmp_path / "aborted", tmp_path / "log.txt"
    argv = [sys.executable, str(script), case, str(mark), str(log)]
    if unread is None:
        done = subprocess.run(argv, env=child_env(), capture_output=True, timeout=60)
        return done.returncode, done.stderr.decode(), mark.exists()
    status, stderr = run_unread(argv, unread)
    return status, stderr, mark.exists()


@pytest.mark.parametrize("case", ["stringio", "none", "closed", "log-file"])
def test_an_aborting_rank_tells_its_launcher_whatever_sys_stderr_became(case, tmp_path):
    """The message went into the script's StringIO (and died with the rank);
    sys.stderr None or closed raised before MPI_Abort, the message lost."""
    status, stderr, aborted = abort_in_a_child(tmp_path, case)
    assert status == 1 and aborted
    assert stderr.startswith("descend.distributed: rank 1 of 3 failed; aborting the job.\n"
                             "Traceback (most recent call last):\n")
    assert stderr.endswith("RuntimeError: boom on rank one the end\n")
    if case == "log-file":          # where the script sent it too
        assert (tmp_path / "log.txt").read_text() == stderr


def test_an_aborting_rank_writes_its_message_once_on_a_plain_stderr(tmp_path):
    status, stderr, aborted = abort_in_a_child(tmp_path, "plain")
    assert status == 1 and aborted
    assert stderr.count("aborting the job") == 1 and stderr.endswith("the end\n")


@pytest.mark.parametrize("case, unread", [("huge", "pipe"), ("plain", "pipe"),
                                          ("ctrl-c", "pipe"), ("huge", "pty"),
                                          ("huge", "socket")])
def test_an_aborting_rank_ends_when_nobody_reads_its_stderr(case, unread, tmp_path):
    """A 1 MB message on a pipe nobody reads (``mpiexec ... 2>&1 | cmd``
    whose cmd reads no more), a terminal or a socket blocked the write for
    good: the job hung. Ctrl-C during the wait for the launcher skipped
    MPI_Abort."""
    status, stderr, aborted = abort_in_a_child(tmp_path, case, unread=unread)
    assert status == 1 and aborted
    stderr = stderr.replace("\r\n", "\n")      # a terminal's line ends
    assert stderr.startswith("descend.distributed: rank 1 of 3 failed; aborting the job.\n")
    if unread == "pipe":
        assert stderr.endswith(" the end\n")      # the whole (shortened) message


def test_a_huge_traceback_is_shortened_around_a_line_saying_so(tmp_path):
    from descend import distributed
    status, stderr, aborted = abort_in_a_child(tmp_path, "huge")
    assert status == 1 and aborted
    kept = len(stderr) - len("descend.distributed: rank 1 of 3 failed; aborting the job.\n")
    line = next(line for line in stderr.splitlines() if "characters left out" in line)
    left_out = int(line.split()[1])
    assert kept == distributed.MESSAGE_HEAD + distributed.MESSAGE_TAIL + len(line) + 2
    assert kept - len(line) - 2 + left_out > 1_000_000
    assert stderr.endswith("x the end\n")
    short = "Traceback ...\n" + "y" * (distributed.MESSAGE_HEAD + distributed.MESSAGE_TAIL - 14)
    assert distributed._shortened(short) == short


MPI_ABORTING_RANK = r'''
import io, sys, time
from descend import distributed
dist = distributed.MPI()
if dist.rank == 1:
    if sys.argv[1] == "stringio":
        sys.stderr = io.StringIO()
    try:
        raise RuntimeError("x" * (1_000_000 if sys.argv[1] == "huge" else 10) + " the end")
    except RuntimeError as exc:
        dist.abort(exc)
time.sleep(120)     # the other ranks: ended by the abort
'''


@needs_mpi
@pytest.mark.parametrize("case", ["huge", "stringio"])
def test_an_mpi_job_ends_with_the_message_when_nobody_reads_mpiexecs_output(case, tmp_path):
    """mpiexec relays a rank's output; writing a 1 MB message to a pipe
    nobody reads, it blocked before it could handle the abort, and rank 0
    slept on. A StringIO in sys.stderr kept the message from the launcher."""
    import sys
    import time
    script = tmp_path / "job.py"
    script.write_text(MPI_ABORTING_RANK)
    start = time.monotonic()
    status, output = run_unread([_mpiexec(), "-n", "2", sys.executable, str(script), case],
                                with_stdout=True, timeout=100, cwd=tmp_path)
    assert status != 0 and time.monotonic() - start < 100      # not rank 0's 120 s
    assert "descend.distributed: rank 1 of 2 failed; aborting the job.\n" in output
    assert "x the end\n" in output


# ------------------------------------------------- bench/predict_compare.py
@pytest.mark.parametrize("argv, named, expected", [
    # the table said 20000 rows for MNIST's 10000 test rows
    (["--rows", "1", "20000"], "--rows", "expected at most 10000 (MNIST's test rows), "
                                         "got 20000"),
    # descend's ValueError from Sequential(n_threads=...) after torch and MNIST
    (["--threads", "1", "100000"], "--threads", "expected at most")])
def test_bench_predict_compare_refuses_rows_and_threads_it_cannot_time(
        argv, named, expected, capsys, monkeypatch):
    import sys
    import types
    script = bench_script("predict_compare.py")
    monkeypatch.setattr(script.dn.datasets, "load_mnist",
                        lambda **k: pytest.fail("MNIST was read"))
    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))
    with pytest.raises(SystemExit) as stop:
        script.main(argv)
    assert stop.value.code == 2
    assert f"{named}: {expected}" in capsys.readouterr().err
