"""Thread teams: the choice between all threads and one (TeamSize), and a
team smaller than asked for (OpenMP may grant fewer threads)."""
import itertools
import os
import subprocess
import sys
import textwrap

import pytest

from descend._train import TeamSize

_keys = itertools.count()


def fresh(n_threads=2):
    """A TeamSize with nothing remembered (a workload key of its own)."""
    return TeamSize(n_threads, ("test", next(_keys)))


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
    team = TeamSize(2, key)
    for _ in range(4):
        run(team, {2: 0.025, 1: 0.0001})
    again = TeamSize(2, key)
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
