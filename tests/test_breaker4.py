"""Adversarial inputs, fourth pass: the command line (each command's bad
arguments, Ctrl-C), the experiments, the dataset loaders, out-of-core
training, the TensorBoard callback and distributed's argument checks. Each
test names what the code did before its fix ("was: ...") and asserts the
documented behaviour: a ValueError/TypeError (the CLI: a usage error, exit
code 2) naming the argument, what was expected and what came, raised before
any state changes; Ctrl-C a one-line message and exit code 130."""
import pytest

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
    assert "test accuracy: 0.9" in out and "(median over 1 epoch)" in out
    assert err.strip() == "descend demo: interrupted (Ctrl-C)"


def test_ctrl_c_in_bench_is_a_message_not_a_traceback(monkeypatch, capsys):
    import descend.benchmark

    def interrupted(**kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(descend.benchmark, "run_benchmark", interrupted)
    assert main(["bench", "--quick"]) == 130
    assert capsys.readouterr().err.strip() == "descend bench: interrupted (Ctrl-C)"
