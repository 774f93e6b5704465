"""Mutation testing of one module of the Python layer with its own tests.

    nice -n 19 python tests/mutation.py gradcheck [optimizers ...]
    nice -n 19 python tests/mutation.py --sample 150 model    # an estimate
    nice -n 19 python tests/mutation.py --more 50 model       # 50 more of the same copy
    nice -n 19 python tests/mutation.py --sample 60 --seed 7 model  # a fresh sample

For each module named, copies src/ (compiled kernels included), tests/ and
pyproject.toml into mutants-work/<module>/, narrows pyproject's [tool.mutmut]
to that module and the test files in TESTS below, and runs ``mutmut run``
there (mutmut 3: each mutant is run against the tests that cover its
function). Prints the score and the surviving mutants; ``mutmut show NAME``
in that directory shows one. A whole-package run (``mutmut run`` at the root)
uses the same configuration with every test file and takes hours on 2 cores.
"""
import argparse
import math
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# mutmut of this interpreter's environment, activated or not
MUTMUT = shutil.which("mutmut", path=os.path.dirname(sys.executable)) or "mutmut"
WORK = ROOT / "mutants-work"

# the test files that pin each module (a mutant survives if none of them fails)
TESTS = {
    "gradcheck": ["test_gradients.py", "test_contracts.py"],
    "losses": ["test_kernels.py", "test_gradients.py", "test_contracts.py",
               "test_training_loop.py", "test_network.py", "test_sample_weight.py"],
    "optimizers": ["test_optimizers.py", "test_contracts.py", "test_regularization.py",
                   "test_io.py", "test_validation.py"],
    "schedules": ["test_schedules.py", "test_schedules_edges.py", "test_callbacks.py",
                  "test_plateau.py"],
    "io": ["test_io.py", "test_io_files.py", "test_state_dict.py", "test_adversarial.py",
           "test_breaker.py", "test_validation.py"],
    "callbacks": ["test_callbacks.py", "test_callbacks_edges.py", "test_contracts.py",
                  "test_training_loop.py"],
    # test_distributed's MPI tests are skipped without mpi4py (as in /work/venv); its
    # others pin fit's hand-over to the distributed fit and save on ranks other than 0
    "model": ["test_network.py", "test_contracts.py", "test_training_loop.py",
              "test_state_dict.py", "test_predict_path.py", "test_validation.py",
              "test_distributed.py", "test_sample_weight.py", "test_model_edges.py",
              "test_model_state_checks.py"],
    "training": ["test_training_loop.py", "test_contracts.py", "test_network.py",
                 "test_sample_weight.py", "test_training_promises.py", "test_validation.py",
                 "test_plateau.py", "test_regularization.py", "test_breaker.py",
                 "test_training_edges.py"],
    "reference": ["test_network.py", "test_contracts.py", "test_gradients.py"],
}


# Tests that start Python in another directory with descend from mutants/src: the
# child inherits mutmut's MUTANT_UNDER_TEST=stats, and mutmut's trampoline then
# looks for its configuration in that directory and fails the stats run. They
# still run in the ordinary suite.
ELSEWHERE = ["tests/test_training_loop.py::test_verbose_1_in_a_pipe_writes_no_bar_to_stderr"]
DESELECT = [arg for test in ELSEWHERE for arg in ("--deselect", test)]


def configure(pyproject_text, module):
    """pyproject's text with [tool.mutmut] narrowed to one module and its tests."""
    section = (
        "[tool.mutmut]\n"
        'source_paths = ["src/descend"]\n'
        f'only_mutate = ["src/descend/{module}.py"]\n'
        f"pytest_add_cli_args = {['-p', 'no:cacheprovider', '-q'] + DESELECT!r}\n"
        # a mutant counts as a timeout after 15 x its tests' time + this many seconds:
        # on 2 cores shared by other jobs a fork of a 0.1 s test can take 20 s
        "timeout_constant = 60\n"
        # mutmut's default ("fork") runs the stats and clean tests in its own
        # process and forks each mutant from it: after those tests ran OpenMP
        # teams, a forked child runs descend on one thread and says so with a
        # ForkedAfterThreadsWarning, which the suite's warnings-as-errors turns
        # into a failure of every threaded test, so mutants died for the wrong
        # reason (before descend detected forks, the child's first team hung
        # until mutmut's 15-minute wall timeout: runs stood at 0/900). The fork
        # server only collects the tests (no team runs) before it forks.
        'process_isolation = "forkserver"\n'
        f"pytest_add_cli_args_test_selection = {['tests/' + t for t in TESTS[module]]!r}\n"
    ).replace("'", '"')
    return re.sub(r"\[tool\.mutmut\].*?(?=^\[|\Z)", section + "\n", pyproject_text,
                  flags=re.S | re.M)


def statuses(work, env):
    """[(mutant name, status)] of the run in `work` ("killed", "survived", ...)."""
    results = subprocess.run([MUTMUT, "results", "--all", "true"], cwd=work, env=env,
                             capture_output=True, text=True).stdout
    return re.findall(r"^\s*(\S+): (\w[\w ]*)$", results, flags=re.M)


def wilson_interval(killed, total, z=1.96):
    """The Wilson score interval of a binomial proportion (95% for z = 1.96): the
    whole module's score, estimated from `killed` of a random sample of `total`.
    Unlike p +- z sqrt(p (1 - p) / n), it stays inside [0, 1] and is not empty
    when every sampled mutant was killed (Wilson, JASA 22 (1927) 209-212)."""
    if total == 0:
        return 0.0, 1.0
    p = killed / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return centre - half, centre + half


def copy_sources(work, module):
    """A fresh scratch copy in `work`: src/ (compiled kernels included), tests/ and
    pyproject.toml with [tool.mutmut] narrowed to `module`."""
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(ROOT / "src", work / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.c", "*.html"))
    shutil.copytree(ROOT / "tests", work / "tests",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (work / "pyproject.toml").write_text(configure((ROOT / "pyproject.toml").read_text(),
                                                  module))


def run(module, sample=None, jobs=None, more=None, seed=0):
    """Mutation-test `module`: every mutant, or a random `sample` of them drawn
    with `seed` (another seed draws a fresh sample, independent of the tests
    written for an earlier one's survivors);
    `jobs` mutants at a time (mutmut's default: one per core). `more`: in the
    scratch copy of an earlier run (same sources and tests), `more` mutants
    drawn at random from those not run yet; the score is then over every mutant
    run so far (two draws without replacement make one random sample)."""
    work = WORK / module
    # subprocess tests import descend from ./src (mutmut runs them in mutants/)
    env = {**os.environ, "PYTHONPATH": "src"}
    if more is None:
        copy_sources(work, module)
    elif not (work / "mutants").exists():
        raise SystemExit(f"--more: no earlier run of {module} in {work}")
    names = []
    with open(work / "mutmut-run.log", "a" if more else "w") as log:  # why a run stopped
        if sample is not None and more is None:
            # a name that matches nothing: mutmut generates the mutants and collects
            # the stats (kept for the next run), then stops before running any
            subprocess.run([MUTMUT, "run", "no-such-mutant"], cwd=work, env=env,
                           stdout=log, stderr=subprocess.STDOUT)
            every = sorted(name for name, _ in statuses(work, env))
            names = sorted(random.Random(seed).sample(every, min(sample, len(every))))
        elif more is not None:
            before = statuses(work, env)
            left = sorted(name for name, s in before if s == "not checked")
            seed = len(before) - len(left)      # a new draw for each extension
            names = sorted(random.Random(seed).sample(left, min(more, len(left))))
        children = [] if jobs is None else ["--max-children", str(jobs)]
        subprocess.run([MUTMUT, "run", *children, *names], cwd=work, env=env, stdout=log,
                       stderr=subprocess.STDOUT)
    status = statuses(work, env)
    if names:       # the sample: every mutant run in this copy (a stopped run's are left out)
        status = [(name, s) for name, s in status if s != "not checked"]
    killed = sum(s == "killed" for _, s in status)
    survivors = [name for name, s in status if s == "survived"]
    total = len(status)
    sampled = ""
    if names:
        low, high = wilson_interval(killed, total)
        sampled = (f" (a random sample of {total}: the module's score lies in "
                   f"[{100 * low:.1f}%, {100 * high:.1f}%] at 95% confidence)")
    print(f"{module}: {killed}/{total} killed "
          f"({100 * killed / max(total, 1):.1f}%), {len(survivors)} survived" + sampled)
    for name, s in status:
        if s != "killed":
            print(f"    {name}: {s}")
    return killed, total, survivors


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="module",
                        help=f"one of {', '.join(TESTS)} (default: all)")
    parser.add_argument("--sample", type=int, default=None, metavar="N",
                        help="run a seeded random sample of N mutants per module (an "
                             "estimate of the score when the whole run takes too long)")
    parser.add_argument("--more", type=int, default=None, metavar="K",
                        help="extend an earlier sampled run by K more random mutants "
                             "(its scratch copy, sources and tests are kept)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="the seed of --sample's draw (default 0); a new seed gives a "
                             "fresh sample")
    parser.add_argument("--jobs", type=int, default=None, metavar="J",
                        help="run J mutants at a time (default: one per core)")
    args = parser.parse_args()
    unknown = sorted(set(args.modules) - set(TESTS))
    if unknown:
        parser.error(f"unknown module(s) {unknown}: choose from {list(TESTS)}")
    for name in args.modules or TESTS:
        run(name, args.sample, args.jobs, args.more, args.seed)
