"""``python -m descend bench``: the task's arithmetic, its data, its report.

Nothing here asserts a duration (speed belongs to bench/); the end-to-end
test runs the real command in a subprocess with the descend and numpy
contenders only, and checks the JSON's schema and that its values are sane.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from descend import benchmark
from descend.__main__ import build_parser


def test_epoch_flops_counts_every_product_of_the_mnist_task():
    # 784-256-128-10: X W and X^T dZ for 3 layers, dZ W^T for the last two
    macs = 784 * 256 * 2 + 256 * 128 * 3 + 128 * 10 * 3
    assert benchmark.epoch_flops(60000, 784) == 2 * macs * 60000
    assert benchmark.epoch_flops(10, 3, hidden=(2,), n_out=4) == 2 * (3 * 2 * 2 + 2 * 4 * 3) * 10


def test_synthetic_data_has_mnists_shape_sparsity_and_a_learnable_class_signal():
    X, y = benchmark.synthetic_mnist(n_samples=3000)
    assert X.shape == (3000, 784) and X.dtype == np.float32 and y.dtype == np.int64
    assert set(np.unique(y)) == set(range(10))
    assert 0.15 < np.mean(X != 0) <= 0.19 + 1e-9
    assert X.min() == 0 and 0.3 <= X[X > 0].min() and X.max() <= 1
    # each class has its own ink: the class means are far from each other
    means = np.array([X[y == k].mean(axis=0) for k in range(10)])
    own = np.array([np.linalg.norm(X[y == k] - means[k], axis=1).mean() for k in range(10)])
    between = np.linalg.norm(means[:, None] - means[None], axis=2)[~np.eye(10, dtype=bool)]
    assert between.min() > 0.5 * own.mean()


def test_without_mnist_the_task_runs_on_synthetic_data_and_says_why(tmp_path):
    X, y, data = benchmark.load_task_data("auto", data_home=tmp_path, quick=True)
    assert X.shape == (benchmark.QUICK_SAMPLES, 784)
    assert data["name"] == "synthetic" and str(tmp_path) in data["source"]
    assert data["n_samples"] == benchmark.QUICK_SAMPLES and data["n_features"] == 784
    X_digits, _, digits = benchmark.load_task_data("digits")
    assert X_digits.shape == (1797, 64) and digits["name"] == "digits"


def test_asking_for_mnist_where_it_is_missing_names_the_files(tmp_path):
    from descend.datasets import DatasetNotFoundError
    with pytest.raises(DatasetNotFoundError, match="train-images"):
        benchmark.load_task_data("mnist", data_home=tmp_path)


def test_prefix_limit_scales_only_slow_contenders_at_tiny_batches():
    assert benchmark.prefix_limit("descend", 1, 60000) is None
    assert benchmark.prefix_limit("PyTorch", 1, 60000) == 3000
    assert benchmark.prefix_limit("PyTorch", 8, 60000) == 12000
    assert benchmark.prefix_limit("PyTorch", 8, 6000) is None     # whole quick epoch
    assert benchmark.prefix_limit("scikit-learn", 8, 60000) == 3000
    assert benchmark.prefix_limit("JAX", 32, 60000) is None


@pytest.mark.parametrize("option, value", [("--batch-sizes", "0,8"), ("--batch-sizes", "a"),
                                           ("--dtype", "float16"), ("--contenders", "keras")])
def test_bad_options_are_refused_by_argparse(option, value, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", option, value])
    assert option in capsys.readouterr().err


@pytest.mark.parametrize("command", ["bench", "demo", "experiments"])
@pytest.mark.parametrize("value, expected", [
    ("~descend-no-such-user", "no such user or home directory"),
    ("~descend-no-such-user/mnist", "no such user or home directory"),
    ("   ", "only whitespace"),
    ("~/{file}", "(a file)"),
    ("~/{file}/mnist", "mnist.gz' is a file)"),   # was refused by the loader mid-run
    ("mnist\0dir", "a path cannot hold a NUL byte"),
    ("", "expected a directory, got ''")])
def test_data_home_is_checked_at_parsing_after_the_tilde(command, value, expected,
                                                        tmp_path, monkeypatch, capsys):
    """~name of no user and whitespace were refused by the loader mid-run
    (after bench's and experiments' other work), ~/file not at all."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "mnist.gz").write_text("not a directory")
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args([command, "--data-home", value.format(file="mnist.gz")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--data-home" in err and expected in err


def test_missing_contenders_are_named_and_skipped(monkeypatch):
    real = benchmark.importlib.util.find_spec
    monkeypatch.setattr(benchmark.importlib.util, "find_spec",
                        lambda name: None if name == "jax" else real(name))
    found, skipped = benchmark.installed_contenders(["descend", "JAX", "numpy"])
    assert set(found) == {"descend", "numpy"} and found["numpy"] == np.__version__
    assert skipped == {"JAX": "not installed (import jax)"}


def test_bench_quick_json_from_the_command_line_has_every_field(tmp_path):
    """The real command in a fresh interpreter, descend and numpy only."""
    command = [sys.executable, "-m", "descend", "bench", "--quick", "--json",
               "--contenders", "descend,numpy", "--batch-sizes", "1,256",
               "--data-home", str(tmp_path), "--n-threads", "1"]
    import descend
    # the descend under test (source tree or installed), from outside the tree
    here = os.path.dirname(os.path.dirname(os.path.abspath(descend.__file__)))
    path = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, DESCEND_DATA=str(tmp_path), PYTHONPATH=path)
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"schema", "descend_version", "machine", "versions", "task",
                           "contenders", "skipped", "floors", "results"}
    assert report["schema"] == benchmark.SCHEMA
    assert report["descend_version"] == descend.__version__
    machine = report["machine"]
    assert machine["cpu"] and machine["n_threads"] == 1 and machine["logical_cpus"] >= 1
    assert isinstance(machine["features"], list)
    assert report["contenders"] == ["descend", "numpy"]
    assert set(report["skipped"]) == set()          # the others were not asked for
    assert report["versions"]["numpy"] == np.__version__
    task = report["task"]
    assert task["name"] == "synthetic"              # no MNIST in the empty data home
    assert (task["n_samples"], task["n_features"]) == (benchmark.QUICK_SAMPLES, 784)
    assert task["hidden"] == [256, 128] and task["dtypes"] == ["float32"]
    assert task["batch_sizes"] == [1, 256] and task["repeats"] == 1 and task["quick"]
    floor = report["floors"]["float32"]
    assert floor["epoch_flops"] == benchmark.epoch_flops(benchmark.QUICK_SAMPLES, 784)
    assert floor["gemm_flops_per_second"] > 1e8
    assert floor["seconds"] == pytest.approx(floor["epoch_flops"]
                                             / floor["gemm_flops_per_second"])
    rows = {(row["contender"], row["batch_size"]): row for row in report["results"]}
    assert set(rows) == {(name, bs) for name in ("descend", "numpy") for bs in (1, 256)}
    for (name, batch_size), row in rows.items():
        assert row["dtype"] == "float32" and row["errors"] == []
        assert len(row["runs"]) == 1 and row["seconds"] == row["runs"][0] > 0
        assert row["speedup"] == pytest.approx(row["seconds"]
                                               / rows["descend", batch_size]["seconds"])
        assert row["over_floor"] == pytest.approx(row["seconds"] / floor["seconds"])
    # numpy at batch 1 runs on a 3000-sample prefix, scaled to the epoch
    assert rows["numpy", 1]["scaled"] and rows["numpy", 1]["samples_timed"] == 3000
    assert not rows["descend", 1]["scaled"]
    assert rows["descend", 256]["samples_timed"] == benchmark.QUICK_SAMPLES
    # after one epoch at batch 1 the synthetic classes are learnt
    assert rows["descend", 1]["train_accuracy"] > 0.9
    assert rows["numpy", 1]["train_accuracy"] is None
    # the markdown table of the same report
    text = benchmark.format_markdown(report)
    assert "| batch | descend s | train acc | numpy s | descend / floor |" in text
    assert f"{rows['numpy', 1]['seconds']:.3f}*" in text
