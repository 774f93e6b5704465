"""Fork after OpenMP threads (issue 12, fault 1).

GNU libgomp's worker threads do not survive fork: a child's first team of
more than one thread used to wait for them forever. Each scenario runs in a
subprocess of its own session with a timeout, so that a regression fails the
test (and its whole process group is killed) instead of hanging the suite.
The right value: the child finishes with the weights and predictions the
parent computes for the same fit.
"""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")

# The job a parent and its children run: a fit large enough for a team of two
# threads (>= 256 rows per batch and prediction) and a prediction.
JOB = """
import os, sys, warnings
import numpy as np
import descend as dn
from descend import ForkedAfterThreadsWarning

def job(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, 20)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    net = dn.Sequential([dn.Dense(32, activation="relu"), dn.Dense(2)], input_dim=20,
                        seed=seed, n_threads=2)
    net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(0.1, momentum=0.9))
    net.fit(X, y, epochs=3, batch_size=300, verbose=0)
    return net.get_weights() + [net.predict(X)]

def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))

def fork_warnings(record):
    return [w for w in record if issubclass(w.category, ForkedAfterThreadsWarning)]
"""


def run_isolated(code, timeout=240):
    """Run JOB + code in a new session; kill the whole group on timeout."""
    proc = subprocess.Popen([sys.executable, "-c", JOB + textwrap.dedent(code)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"deadlock: the scenario did not finish in {timeout} s")
    assert proc.returncode == 0, out + err
    return out


def test_multiprocessing_fork_child_trains_the_parents_weights():
    out = run_isolated("""
        import multiprocessing as mp

        def child_job():
            with warnings.catch_warnings(record=True) as record:
                warnings.simplefilter("always")
                first, second = job(), job()
            return first, second, len(fork_warnings(record))

        parent = job()
        with mp.get_context("fork").Pool(2) as pool:
            results = [pool.apply_async(child_job) for _ in range(2)]
            results = [r.get(timeout=200) for r in results]
        for first, second, n_warnings in results:
            assert same(first, parent) and same(second, parent)
            assert n_warnings == 1, n_warnings      # once per process
        print("ok")
    """)
    assert out.strip() == "ok"


def test_os_fork_nested_children_finish_with_the_parents_weights():
    # parent -> child -> grandchild, each fitting and predicting; each level
    # reports through a pipe, and waits for its own child
    out = run_isolated("""
        import pickle

        def fork_and_run(depth):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read)
                try:
                    result = [job()]
                    if depth > 1:
                        result += fork_and_run(depth - 1)
                    data = pickle.dumps(result)
                    with os.fdopen(write, "wb") as f:
                        f.write(data)
                    os._exit(0)
                except BaseException:
                    import traceback; traceback.print_exc()
                    os._exit(1)
            os.close(write)
            with os.fdopen(read, "rb") as f:
                data = f.read()
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            return pickle.loads(data)

        parent = job()
        results = fork_and_run(2)
        assert len(results) == 2
        assert all(same(r, parent) for r in results)
        print("ok")
    """)
    assert out.strip() == "ok"


def test_fork_before_any_team_keeps_every_thread():
    # a child of a process that never ran a team has a working libgomp
    out = run_isolated("""
        from descend import _threads
        pid = os.fork()
        if pid == 0:
            code = 0 if _threads.plan(1000, 2) == (2, 1) else 3
            code = code or (0 if not _threads.forked_after_threads() else 4)
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """)
    assert out.strip() == "0"


def test_blas_in_a_forked_child_after_threaded_blas_in_the_parent():
    out = run_isolated("""
        from threadpoolctl import threadpool_info
        a = np.random.default_rng(0).normal(size=(600, 600))
        expected = a @ a                       # the parent's BLAS pool runs
        job()                                  # and descend's OpenMP team
        pid = os.fork()
        if pid == 0:
            ok = np.array_equal(a @ a, expected) and same(job(), job())
            os._exit(0 if ok else 5)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """)
    assert out.strip() == "0"


def test_grid_search_on_a_fork_based_joblib_backend():
    pytest.importorskip("sklearn")
    out = run_isolated("""
        from joblib import parallel_backend
        from sklearn.model_selection import GridSearchCV
        from descend import MLPClassifier

        job()                                  # a team ran before the workers fork
        rng = np.random.default_rng(1)
        X = rng.normal(size=(900, 10))
        y = (X[:, 0] - X[:, 2] > 0).astype(int)
        grid = {"alpha": [1e-4, 1e-2]}
        def search(n_jobs):
            est = MLPClassifier((16,), max_iter=5, batch_size=300, random_state=0,
                                n_threads=2)
            return GridSearchCV(est, grid, cv=2, n_jobs=n_jobs).fit(X, y)
        serial = search(1)
        with parallel_backend("multiprocessing"):
            forked = search(2)
        assert np.array_equal(serial.cv_results_["mean_test_score"],
                              forked.cv_results_["mean_test_score"])
        print("ok")
    """)
    assert out.strip() == "ok"
