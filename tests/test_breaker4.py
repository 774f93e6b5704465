"""Adversarial inputs, fourth pass: the command line (each command's bad
arguments, Ctrl-C), the experiments, the dataset loaders, out-of-core
training, the TensorBoard callback and distributed's argument checks. Each
test names what the code did before its fix ("was: ...") and asserts the
documented behaviour: a ValueError/TypeError (the CLI: a usage error, exit
code 2) naming the argument, what was expected and what came, raised before
any state changes; Ctrl-C a one-line message and exit code 130."""
import os
import re

import pytest

import descend as dn
from descend import experiments, training
from descend.__main__ import main


def _ctrl_c_in_the_first_epoch(monkeypatch):
    """Ctrl-C as the compiled loop sees it: a KeyboardInterrupt inside an
    epoch, which fit catches (it keeps the completed epochs and returns)."""
    def interrupted(self, *args):
        raise KeyboardInterrupt
    monkeypatch.setattr(training.Trainer, "train_epoch", interrupted)


# ------------------------------------------------------------------------ Ctrl-C
@pytest.mark.parametrize("name", [name for name in experiments.EXPERIMENTS
                                  if name != "backprop-vs-numerical"])
def test_ctrl_c_stops_an_experiment_instead_of_filling_its_table(monkeypatch, name):
    # was: fit swallowed the interrupt and the experiment went on, filling its
    # cells with networks trained for none or part of their epochs
    _ctrl_c_in_the_first_epoch(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        experiments.run(name, size="smoke", seeds=1)


@pytest.mark.parametrize("argv", [
    ["experiments", "depth", "--size", "smoke", "--seeds", "1", "--out", "OUT"],
    ["demo", "--epochs", "2", "--verbose", "0"]])
def test_ctrl_c_ends_a_command_with_a_message_and_exit_code_130(monkeypatch, capsys, tmp_path,
                                                                  argv):
    # was: a traceback from deep inside (experiments: after finishing the run
    # with untrained networks; demo: KeyError 'seconds' when no epoch had ended)
    _ctrl_c_in_the_first_epoch(monkeypatch)
    argv = [str(tmp_path) if arg == "OUT" else arg for arg in argv]
    assert main(argv) == 130
    out, err = capsys.readouterr()
    assert err.strip() == f"descend {argv[0]}: interrupted (Ctrl-C)"
    assert "accuracy" not in out             # nothing evaluated
    assert not list(tmp_path.iterdir())      # no table of an interrupted run written


def test_ctrl_c_after_a_demo_epoch_reports_it_and_exits_130(monkeypatch, capsys):
    # was: exit code 0, as if the demo had run its epochs
    train_epoch, calls = training.Trainer.train_epoch, []

    def second_epoch_interrupted(self, *args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return train_epoch(self, *args)
    monkeypatch.setattr(training.Trainer, "train_epoch", second_epoch_interrupted)
    assert main(["demo", "--epochs", "3", "--verbose", "0"]) == 130
    out, err = capsys.readouterr()
    assert "test accuracy: 0.9" in out and "s/epoch (the median of 1 epoch)" in out
    assert err.strip() == "descend demo: interrupted (Ctrl-C)"


def test_ctrl_c_in_bench_is_a_message_not_a_traceback(monkeypatch, capsys):
    import descend.benchmark

    def interrupted(**kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(descend.benchmark, "run_benchmark", interrupted)
    assert main(["bench", "--quick"]) == 130
    assert capsys.readouterr().err.strip() == "descend bench: interrupted (Ctrl-C)"


# ------------------------------------------------------------------------- bench
@pytest.mark.parametrize("kwargs, error, message", [
    ({"contenders": ["foo"]}, ValueError,
     r"run_benchmark: contenders\[0\] must be one of .*'descend'.*, got 'foo'"),
    ({"contenders": "descend"}, TypeError,
     r"contenders must be a non-empty list or tuple of contender names or None, got 'descend'"),
    ({"batch_sizes": [0]}, ValueError, r"batch_sizes\[0\] must be an int >= 1, got 0"),
    ({"batch_sizes": [8, -8]}, ValueError, r"batch_sizes\[1\] must be an int .*, got -8"),
    ({"batch_sizes": [2.5]}, TypeError, r"batch_sizes\[0\] must be an int .*, got 2.5"),
    ({"batch_sizes": []}, ValueError, r"batch_sizes must be a non-empty list .*, got \[\]"),
    ({"dtypes": ["float16"]}, ValueError, r"dtypes\[0\] must be one of .*, got 'float16'"),
    ({"dtypes": []}, ValueError, r"dtypes must be a non-empty list .*, got \[\]"),
    ({"batch_sizes": [8, 8]}, ValueError, r"batch_sizes must be .*, each once, got \[8, 8\]"),
    ({"dtypes": ["float32", "float32"]}, ValueError, r"dtypes must be .* each once"),
    ({"repeats": 0}, ValueError, r"repeats must be an int >= 1, got 0"),
    ({"repeats": 2.5}, TypeError, r"repeats must be an int .*, got 2.5"),
    ({"data": "bogus"}, ValueError, r"data must be one of .*'synthetic'.*, got 'bogus'"),
    ({"n_threads": 0}, ValueError, r"n_threads must be .*, got 0"),
    ({"quick": "yes"}, TypeError, r"quick must be a bool, got 'yes'"),
    ({"data_home": ""}, ValueError, r"data_home must be a non-empty str .*, got ''"),
    ({"log": "stderr"}, TypeError, r"log must be a callable or None, got 'stderr'"),
])
def test_run_benchmark_checks_its_arguments_before_timing(monkeypatch, kwargs, error, message):
    # was: KeyError 'foo' / 'd' (a str of names), batch sizes 0, -8 and 2.5
    # timed (their cells empty), float16 timed, [] dtypes an empty report,
    # repeats=0 KeyError, repeats=2.5 TypeError from range(), an unknown data
    # silently synthetic
    import descend.benchmark as benchmark

    def loaded(*args):
        raise AssertionError("the data was loaded before the arguments were checked")
    monkeypatch.setattr(benchmark, "load_task_data", loaded)
    with pytest.raises(error, match=message):
        benchmark.run_benchmark(**kwargs)


@pytest.mark.parametrize("argv, message", [
    (["--skip", "descend"], r"argument --skip: descend is always timed \(every speed-up is "
                            r"relative to it\), got 'descend'"),
    (["--skip", "numpy,descend"], r"argument --skip: descend is always timed"),
    (["--batch-sizes", "1,,2"], r"argument --batch-sizes: expected a comma-separated list of "
                                r"positive integers, each once, got '1,,2'"),
    (["--batch-sizes", "8,"], r"argument --batch-sizes: .* got '8,'"),
    (["--dtype", "float32,,float64"], r"argument --dtype/--dtypes: .* got 'float32,,float64'"),
    (["--contenders", "numpy,"], r"argument --contenders: .* got 'numpy,'"),
    (["--batch-sizes", "8,8"], r"argument --batch-sizes: .* each once, got '8,8'"),
    (["--contenders", "numpy,numpy"], r"argument --contenders: .* each once, got 'numpy,numpy'"),
])
def test_bench_cli_refuses_what_it_would_ignore(capsys, argv, message):
    # was: --skip descend ignored (descend timed anyway), empty list items dropped
    with pytest.raises(SystemExit) as stop:
        main(["bench", *argv])
    assert stop.value.code == 2
    assert re.search(message, capsys.readouterr().err)


# ------------------------------------------------------------------- experiments
def _not_root():
    return not hasattr(os, "geteuid") or os.geteuid() != 0


@pytest.mark.parametrize("kwargs, error, message", [
    ({"quick": "yes"}, TypeError, r"quick must be a bool, got 'yes'"),
    ({"echo": "x"}, TypeError, r"echo must be a bool, got 'x'"),
    ({"data_home": ""}, ValueError, r"data_home must be None or a non-empty str"),
    ({"data_home": "AFILE"}, ValueError,
     r"data_home must be a directory, got 'AFILE' \(a file\)"),
])
def test_experiments_run_checks_its_flags_and_paths_before_running(monkeypatch, tmp_path,
                                                                   kwargs, error, message):
    # was: quick='yes' and echo='x' taken as True; data_home '' or a file
    # accepted (an error only when an experiment reached for MNIST, hours in)
    (tmp_path / "AFILE").write_text("")         # a file of its own: the tests run anywhere
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=message):
        experiments.run("gd-variants", size="smoke", seeds=1, **kwargs)


def test_experiments_run_names_a_name_of_the_wrong_type():
    # was: a ValueError for 123 (a type mistake)
    with pytest.raises(TypeError, match=r"name must be one of .*'depth'.* or 'all', got 123"):
        experiments.run(123, size="smoke")


def test_an_output_directory_under_a_file_is_refused_before_the_run(tmp_path, monkeypatch):
    # was: NotADirectoryError from mkdir after the whole run (an hour for 'all')
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(training.Trainer, "train_epoch", lambda *args: pytest.fail("ran"))
    with pytest.raises(ValueError, match=r"out must be a directory that can be created or "
                                         r"written, got '.*file/sub' \('.*file' is a file\)"):
        experiments.run("gd-variants", size="smoke", seeds=1, out=tmp_path / "file" / "sub")


def test_the_cli_refuses_an_output_directory_under_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit) as stop:
        main(["experiments", "depth", "--size", "smoke", "--out", str(tmp_path / "file" / "x")])
    assert stop.value.code == 2
    # (refused by the check --data-home shares: "expected a directory, got ...")
    assert re.search(r"argument --out: expected a directory.*, "
                     r"got '.*file/x' \('.*file' is a file\)", capsys.readouterr().err)


@pytest.mark.skipif(not _not_root(), reason="root writes into read-only directories")
def test_an_unwritable_output_directory_is_refused_before_the_run(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ValueError, match=r"\(not writable\)"):
            experiments.run("gd-variants", size="smoke", seeds=1, out=locked / "sub")
    finally:
        locked.chmod(0o700)


def test_the_output_directory_check_asks_for_write_access(tmp_path, monkeypatch):
    # the same refusal as the test above, for any user (root writes anywhere)
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: (
        access(path, mode) and not str(path).startswith(str(tmp_path))))
    with pytest.raises(ValueError, match=rf"got '{re.escape(str(tmp_path))}/sub' "
                                         rf"\('{re.escape(str(tmp_path))}' is not writable\)"):
        experiments.run("gd-variants", size="smoke", seeds=1, out=tmp_path / "sub")


# ---------------------------------------------------------------------- datasets
def _corrupt_mnist(directory):
    from descend import datasets
    directory.mkdir()
    for name in datasets.MNIST_FILES:
        (directory / name).write_bytes(b"\x1f\x8b not gzip")
    return directory


@pytest.mark.parametrize("argv", [["bench", "--quick", "--data", "mnist"],
                                  ["bench", "--quick"],
                                  ["experiments", "depth", "--size", "smoke", "--dataset",
                                   "mnist", "--out", "OUT"]])
def test_a_corrupt_mnist_file_is_a_message_from_every_command(tmp_path, capsys, argv):
    # was: a traceback from datasets._decompress_and_verify (bench, experiments;
    # demo printed the message)
    home = _corrupt_mnist(tmp_path / "mnist")
    argv = [str(tmp_path / "out") if arg == "OUT" else arg for arg in argv]
    assert main([*argv, "--data-home", str(home)]) == 1
    err = capsys.readouterr().err
    assert re.fullmatch(rf"descend {argv[0]}: train-images-idx3-ubyte.gz: .*mnist/train-images-"
                        r"idx3-ubyte.gz is not a valid gzip file \(.*\)\n", err)
    assert not (tmp_path / "out").exists()


def test_a_corrupt_mnist_file_raises_dataset_corrupt_error_a_value_error(tmp_path):
    from descend import datasets
    home = _corrupt_mnist(tmp_path / "mnist")
    with pytest.raises(datasets.DatasetCorruptError, match="is not a valid gzip file"):
        datasets.load_mnist(home, download=False)
    assert issubclass(datasets.DatasetCorruptError, ValueError)   # was: a plain ValueError


# -------------------------------------------------------------------- TensorBoard
@pytest.mark.parametrize("where, reason", [("file", r"\(a file\)"),
                                           ("file/sub", r"\('.*file' is a file\)"),
                                           ("locked/sub", r"\('.*locked' is not writable\)")])
def test_tensorboard_refuses_a_log_dir_it_cannot_write_before_fit_trains(tmp_path, monkeypatch,
                                                                          where, reason):
    # was: NotADirectoryError (an OSError) from tensorboardX at the first
    # epoch's end, one epoch trained (write_config=False), or at on_train_begin
    pytest.importorskip("tensorboardX")
    (tmp_path / "file").write_text("x")
    (tmp_path / "locked").mkdir()
    access = os.access      # root writes anywhere: the check asks os.access
    monkeypatch.setattr(os, "access", lambda path, mode: (
        access(path, mode) and not str(path).endswith("locked")))
    with pytest.raises(ValueError, match=r"TensorBoard: log_dir must be a directory.*, got "
                                         rf"'.*{where}' {reason}"):
        dn.callbacks.TensorBoard(tmp_path / where, write_config=False)


def test_tensorboard_on_a_non_chief_rank_does_not_check_the_log_dir(tmp_path):
    pytest.importorskip("tensorboardX")
    (tmp_path / "file").write_text("x")
    dn.callbacks.TensorBoard(tmp_path / "file", is_chief=False)    # it never writes


def test_bench_refuses_an_output_file_in_an_unwritable_directory(tmp_path, monkeypatch, capsys):
    # was: PermissionError when writing the tables, after the whole run
    access = os.access      # root writes anywhere: the check asks os.access
    monkeypatch.setattr(os, "access", lambda path, mode: (
        access(path, mode) and os.path.abspath(path) != str(tmp_path)))
    with pytest.raises(SystemExit) as stop:
        main(["bench", "--quick", "--output", str(tmp_path / "tables.md")])
    assert stop.value.code == 2
    assert re.search(r"argument --output: expected a file in a writable directory, got "
                     r"'.*tables.md' \('.*' is not writable\)", capsys.readouterr().err)


@pytest.mark.parametrize("argv", [["bench", "--quick", "--data", "mnist"],
                                  ["experiments", "depth", "--size", "smoke", "--dataset",
                                   "mnist", "--out", "OUT"],
                                  ["demo", "--dataset", "mnist"]])
def test_descend_data_naming_a_file_is_a_usage_error_of_every_command(tmp_path, monkeypatch,
                                                                      capsys, argv):
    # was: a traceback from load_mnist (bench, experiments); demo printed it, exit 1
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("DESCEND_DATA", str(tmp_path / "file"))
    argv = [str(tmp_path / "out") if arg == "OUT" else arg for arg in argv]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert re.search(r"error: DESCEND_DATA must be a directory, got '.*file' \(a file\)",
                     capsys.readouterr().err)


@pytest.mark.parametrize("value, message", [
    ("~no_such_user_descend", "its leading ~ the home directory"),
    ("   ", "only whitespace")])
@pytest.mark.parametrize("argv", [["bench", "--quick"], ["experiments", "domains", "--quick"]])
def test_descend_data_of_no_known_user_or_only_space_is_a_usage_error(monkeypatch, capsys,
                                                                      argv, value, message):
    # was: a traceback (pathlib's RuntimeError, or load_mnist's ValueError),
    # experiments domains after training the digits row
    monkeypatch.setenv("DESCEND_DATA", value)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert re.search(f"error: DESCEND_DATA must be a directory.*{message}",
                     capsys.readouterr().err)


# ------------------------------------------------------------- Ctrl-C between epochs
def test_ctrl_c_between_two_epochs_keeps_the_completed_one(monkeypatch):
    # was: an interrupt landing after the loop moved to the next epoch but
    # before that epoch's snapshot restored the previous epoch's snapshot,
    # undoing a completed epoch that the history still listed
    import numpy as np
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 4)), rng.integers(0, 3, 64)

    def net():
        model = dn.Sequential([dn.Dense(5, activation="relu"), dn.Dense(3)], input_dim=4,
                              seed=0, dtype="float64", n_threads=1)
        return model.compile("softmax_cross_entropy", dn.optimizers.SGD(0.1, momentum=0.9))
    one_epoch = net()
    one_epoch.fit(X, y, epochs=1, verbose=0)
    run_epoch = training.Trainer.run_epoch

    def interrupted_on_entering_the_second(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return run_epoch(self, epoch)
    monkeypatch.setattr(training.Trainer, "run_epoch", interrupted_on_entering_the_second)
    model = net()
    history = model.fit(X, y, epochs=3, verbose=0)
    assert history.interrupted and history.epoch == [0] and model.epochs_trained == 1
    for got, want in zip(model.get_weights(), one_epoch.get_weights()):
        np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------- out of core
def test_a_memmap_whose_file_was_truncated_is_a_value_error_before_fit_trains(tmp_path):
    # was: OSError 'short read' from the pread reader (the h5py-style IndexError
    # of the same fault was already this ValueError)
    import numpy as np
    rng = np.random.default_rng(0)
    path = tmp_path / "X.npy"
    X = np.lib.format.open_memmap(path, "w+", np.float64, (200, 4))
    X[:] = rng.normal(size=(200, 4))
    X.flush()
    X = np.lib.format.open_memmap(path, "r")
    os.truncate(path, 1000)
    net = dn.Sequential([dn.Dense(3)], input_dim=4, seed=0, dtype="float64", n_threads=1)
    net.compile("softmax_cross_entropy", dn.optimizers.SGD(0.1))
    before = net.get_weights()
    with pytest.raises(ValueError, match=r"X says it has shape \(200, 4\), but reading its rows "
                                         r"failed: short read from .*X.npy"):
        net.fit(X, rng.integers(0, 3, 200), epochs=1, verbose=0)
    assert net.epochs_trained == 0
    for got, want in zip(net.get_weights(), before):
        np.testing.assert_array_equal(got, want)
