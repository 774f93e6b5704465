"""Mutation testing of one module of the Python layer with its own tests.

    nice -n 19 python tests/mutation.py gradcheck [optimizers ...]

For each module named, copies src/ (compiled kernels included), tests/ and
pyproject.toml into mutants-work/<module>/, narrows pyproject's [tool.mutmut]
to that module and the test files in TESTS below, and runs ``mutmut run``
there (mutmut 3: each mutant is run against the tests that cover its
function). Prints the score and the surviving mutants; ``mutmut show NAME``
in that directory shows one. A whole-package run (``mutmut run`` at the root)
uses the same configuration with every test file and takes hours on 2 cores.
"""
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "mutants-work"

# the test files that pin each module (a mutant survives if none of them fails)
TESTS = {
    "gradcheck": ["test_gradients.py", "test_contracts.py"],
    "losses": ["test_kernels.py", "test_gradients.py", "test_contracts.py",
               "test_training_loop.py", "test_network.py"],
    "optimizers": ["test_optimizers.py", "test_contracts.py", "test_regularization.py",
                   "test_io.py"],
    "schedules": ["test_schedules.py", "test_callbacks.py"],
    "io": ["test_io.py", "test_io_files.py", "test_state_dict.py", "test_adversarial.py"],
    "callbacks": ["test_callbacks.py", "test_contracts.py", "test_training_loop.py"],
    "model": ["test_network.py", "test_contracts.py", "test_training_loop.py"],
    "training": ["test_training_loop.py", "test_contracts.py", "test_network.py"],
    "reference": ["test_network.py", "test_contracts.py", "test_gradients.py"],
}


def configure(pyproject_text, module):
    """pyproject's text with [tool.mutmut] narrowed to one module and its tests."""
    section = (
        "[tool.mutmut]\n"
        'source_paths = ["src/descend"]\n'
        f'only_mutate = ["src/descend/{module}.py"]\n'
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]\n'
        # a mutant counts as a timeout after 15 x its tests' time + this many seconds:
        # on 2 cores shared by other jobs a fork of a 0.1 s test can take 20 s
        "timeout_constant = 60\n"
        f"pytest_add_cli_args_test_selection = {['tests/' + t for t in TESTS[module]]!r}\n"
    ).replace("'", '"')
    return re.sub(r"\[tool\.mutmut\].*?(?=^\[|\Z)", section + "\n", pyproject_text,
                  flags=re.S | re.M)


def run(module):
    work = WORK / module
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(ROOT / "src", work / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.c", "*.html"))
    shutil.copytree(ROOT / "tests", work / "tests",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (work / "pyproject.toml").write_text(configure((ROOT / "pyproject.toml").read_text(),
                                                  module))
    # subprocess tests import descend from ./src (mutmut runs them in mutants/)
    env = {**__import__("os").environ, "PYTHONPATH": "src"}
    with open(work / "mutmut-run.log", "w") as log:     # why a run stopped, if it did
        subprocess.run(["mutmut", "run"], cwd=work, env=env, stdout=log,
                       stderr=subprocess.STDOUT)
    results = subprocess.run(["mutmut", "results", "--all", "true"], cwd=work, env=env,
                             capture_output=True, text=True).stdout
    status = re.findall(r"^\s*(\S+): (\w[\w ]*)$", results, flags=re.M)
    killed = sum(s == "killed" for _, s in status)
    survivors = [name for name, s in status if s == "survived"]
    total = len(status)
    print(f"{module}: {killed}/{total} killed "
          f"({100 * killed / max(total, 1):.1f}%), {len(survivors)} survived")
    for name in survivors:
        print("   ", name)
    return killed, total, survivors


if __name__ == "__main__":
    for name in sys.argv[1:] or TESTS:
        run(name)
