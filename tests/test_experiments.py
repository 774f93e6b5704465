"""Tests of descend.experiments: every experiment runs (in the tests-only
"smoke" size), fills a table of the right shape, and measures the physics
it is about.

The CLI's --quick size is timed and documented in docs/experiments.md; the
smoke size exists only to keep this file fast.
"""
import re
import sys

import numpy as np
import pytest

from descend import experiments
from descend.__main__ import main

SEEDS = 3


@pytest.fixture(scope="module")
def results():
    """One smoke run per experiment, shared by the tests below."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = experiments.run(name, size="smoke", seeds=SEEDS)
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(experiments.EXPERIMENTS))
def test_every_experiment_fills_its_tables(results, name):
    result = results(name)
    assert result.name == name
    assert result.tables, "an experiment reports at least one table"
    for table in result.tables:
        n_rows, n_cols = table.shape
        assert n_rows >= 1 and n_cols >= 2
        assert all(len(row) == n_cols for row in table.rows)
        assert all(cell.strip() for row in table.rows for cell in row), "no empty cells"
    text = result.to_markdown()
    assert text.startswith(f"## {name}:")
    # every table renders as a markdown table with a header separator
    assert text.count("|---|") >= len(result.tables)


def test_noisy_cells_are_mean_std_over_seeds(results):
    table = results("gd-variants").table
    accuracy = table.column("final test accuracy")
    assert all("±" in cell for cell in accuracy)
    assert f"seeds={SEEDS}" in results("gd-variants").to_markdown()


def test_gd_variants_rows_are_the_three_variants(results):
    table = results("gd-variants").table
    assert table.shape[0] == 3
    assert [int(b) for b in table.column("batch size")][1:] == [1, 32]
    updates = [int(u.replace(",", "")) for u in table.column("updates / epoch")]
    assert updates[0] == 1 and updates[1] > updates[2] > 1


def test_far_too_large_learning_rate_is_marked_diverged(results):
    result = results("learning-rate")
    rates = result.data["learning_rate"]
    assert result.table.shape[0] == len(rates)
    biggest = int(np.argmax(rates))
    assert rates[biggest] >= 100
    assert "diverged" in result.data["status"][biggest]
    assert all(s.startswith("diverged") for s in result.data["statuses"][biggest])
    # and a sensible rate is not
    assert result.data["status"][rates.index(1.0)] == "ok"


def test_learning_rate_statuses_from_both_divergence_paths():
    from descend.experiments._common import Run
    from descend.experiments.learning_rate import status_of, summarize_status
    run = Run(initial_loss=2.3, seconds=[0.1], train_loss=[2.5], train_accuracy=[0.1],
              test_loss=[2.5], test_accuracy=[0.1])
    assert status_of(run) == "no progress"
    run.status = "diverged (NaN/inf)"
    assert status_of(run) == "diverged (NaN/inf)"
    assert summarize_status(["ok", "ok"]) == "ok"
    assert summarize_status(["ok", "no progress"]) == "ok 1/2, no progress 1/2"


def test_nan_divergence_is_caught_and_marked():
    """A run whose weights become NaN is caught (DivergenceError) and marked."""
    import descend as dn
    from descend.experiments._common import Config, load_data, make_net, train
    cfg = Config(size="smoke")
    X, X_test, y, y_test = load_data("digits", cfg, n_train=200)
    X = X * 1e20   # overflow the first layer's GEMM in float32
    net = make_net(64, (32,), 10, seed=0, cfg=cfg)
    run = train(net, dn.optimizers.SGD(learning_rate=1.0), X, y, X_test, y_test, 2, 32)
    assert run.status == "diverged (NaN/inf)" and run.diverged_epoch == 1


def test_batch_size_rows_count_their_updates(results):
    # (seconds and samples / s are measured on a shared machine: reported by the
    # experiment, not asserted; the epoch's speed against the batch is in bench/)
    result = results("batch-size")
    data = result.data
    assert data["batch_size"][0] == 1
    updates = [int(u.replace(",", "")) for u in result.table.column("updates / epoch")]
    n = updates[0]                                  # one update per sample at batch 1
    assert updates == [-(-n // bs) for bs in data["batch_size"]]
    assert updates[-1] == 1                         # the last row is the whole set
    assert all(s > 0 and np.isfinite(s) for v in data["samples_per_second"] for s in v)


def test_sigmoid_gradients_vanish_relu_he_do_not(results):
    result = results("activations")
    ratio = result.data["ratio_init"]
    sigmoid, relu = np.mean(ratio["sigmoid"]), np.mean(ratio["relu"])
    # first-layer vs output-layer gradient norm in a 10-hidden-layer net
    assert sigmoid < 1e-3 * relu
    assert 0.1 < relu < 10
    first = lambda act: np.mean([n[0] for n in result.data["norms_init"][act]])
    assert first("sigmoid") < 1e-3 * first("relu")
    assert result.table.shape[0] == 7
    kernel = result.data["kernel_ns"]
    assert all(f > 0 and b > 0 for f, b in kernel.values())


def test_depth_naive_small_init_shrinks_first_layer_gradient(results):
    data = results("depth").data
    he, small = data["He normal"], data["N(0, 0.05²)"]
    deepest = int(np.argmax(he["depth"]))
    assert he["depth"][deepest] == 10
    assert np.mean(small["first_norm"][deepest]) < 1e-3 * np.mean(he["first_norm"][deepest])
    big = data["N(0, 1)"]
    assert np.mean(big["first_norm"][deepest]) > 1e3 * np.mean(he["first_norm"][deepest])


def test_l1_gives_more_zeros_than_no_penalty(results):
    data = results("regularization").data
    none, l1 = data["none"], data["L1 1e-4"]
    # descend's L1 is a subgradient step (w oscillates across 0 in steps of
    # lr*l1 rather than landing on it), so exact zeros are rare under both; the
    # experiment reports exact zeros and |w| < 1e-6 side by side.
    assert np.mean(l1["exact"]) >= np.mean(none["exact"])
    assert np.mean(l1["tiny"]) > np.mean(none["tiny"])
    assert np.mean(l1["small"]) > 5 * np.mean(none["small"])
    # L1 applied as a proximal step lands weights on exactly zero
    proximal = data["L1 1e-4 proximal"]
    assert np.mean(proximal["exact"]) > np.mean(none["exact"])
    table = results("regularization").table
    assert table.shape == (9, 9)
    assert "exactly 0" in table.columns and "|w| < 1e-6" in table.columns


def test_optimizers_include_lbfgs_reference(results):
    result = results("optimizers")
    labels = result.table.column("optimizer")
    assert labels == ["gradient descent", "momentum", "Nesterov", "Adagrad", "RMSprop",
                      "Adam", "AdamW", "L-BFGS"]
    # L-BFGS minimized the full-batch loss below where it started
    assert all(np.isfinite(v) for v in result.data["L-BFGS"]["final_loss"])
    assert min(result.data["L-BFGS"]["evaluations"]) > 1


def test_complexity_exponents(results):
    data = results("complexity").data
    from descend.experiments._common import fit_exponent
    from descend.experiments.complexity import flops_per_epoch
    depth = data["depth"]
    # (seconds are reported, not asserted: a shared machine's timings are not a test)
    assert all(s > 0 and np.isfinite(s) for s in depth["seconds"])
    assert fit_exponent(depth["x"], depth["flops"]) > 0.5
    # FLOPs grow exactly linearly with the number of equal hidden layers
    steps = np.diff(depth["flops"]) / np.diff(depth["x"])
    np.testing.assert_allclose(steps, steps[0], rtol=1e-12)
    batch = data["batch size"]
    assert abs(fit_exponent(batch["x"], batch["activations"]) - 1) < 0.05
    assert batch["peak"][-1] > batch["peak"][0]
    # by hand, 5 samples through 4-3-2: forward and dW 2*4*3 each in the first
    # layer (no dX), forward, dW and dX 2*3*2 each in the second
    assert flops_per_epoch(5, [4, 3, 2]) == 5 * (2 * 24 + 3 * 12)


def test_backprop_and_finite_differences_agree(results):
    data = results("backprop-vs-numerical").data
    assert data["check_gradients"] < 1e-6
    assert max(data["max_rel_err"]) < 1e-5
    # the same gradient-descent trajectory with either gradient
    assert max(data["max_loss_diff"]) < 1e-6


def test_finite_differences_cost_two_loss_evaluations_per_parameter(monkeypatch):
    """The cost the experiment times, as a count that no load changes: 2 P
    forward passes for finite differences, one forward and backward pass for
    backpropagation whatever P."""
    import descend as dn
    counts = {"loss": 0, "gradients": 0}
    for name in counts:
        real = getattr(dn.Sequential, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            counts[_name] += 1
            return _real(self, *args, **kwargs)
        monkeypatch.setattr(dn.Sequential, name, counted)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(6, 4)), rng.integers(0, 3, size=6)
    for hidden in (2, 5):
        net = dn.Sequential([dn.Dense(hidden, activation="tanh"), dn.Dense(3)], input_dim=4,
                            dtype="float64", seed=0)
        net.compile(loss="softmax_cross_entropy", optimizer="sgd")
        P = net.count_params()
        assert P == 4 * hidden + hidden + hidden * 3 + 3
        counts.update(loss=0, gradients=0)
        dn.numerical_gradients(net, X, y)
        assert counts == {"loss": 2 * P, "gradients": 0}
        counts.update(loss=0, gradients=0)
        net.gradients(X, y)
        assert counts == {"loss": 0, "gradients": 1}


def test_local_minima_fractions(results):
    result = results("local-minima")
    table = result.table
    assert table.shape[0] == 2 * 3 * 2   # problems x init schemes x schedules
    for cell in table.column("successes"):
        k, rest = cell.split("/")
        n = int(rest.split()[0])
        assert 0 <= int(k) <= n


def test_two_spirals_generator():
    from descend.experiments.local_minima import two_spirals, xor
    X, y = two_spirals(97)
    assert X.shape == (194, 2) and np.bincount(y).tolist() == [97, 97]
    np.testing.assert_allclose(X[:97], -X[97:])
    assert np.abs(X).max() <= 1.0
    X, y = xor()
    assert y.tolist() == [0, 1, 1, 0]


def test_domains_rows(results):
    from descend._domain_data import newsgroups_available
    from descend.experiments._common import mnist_available
    result = results("domains")
    table = result.table
    expected = ["digits", "mnist", "breast_cancer"] if mnist_available() else \
        ["digits", "breast_cancer"]
    expected += ["newsgroups"] if newsgroups_available() else []
    assert table.column("domain") == expected
    notes = " ".join(table.notes)
    if not newsgroups_available():
        assert "20news-bydate.tar.gz not in" in notes and "load_newsgroups()" in notes


def test_domains_text_and_fraud_rows_on_small_data():
    from descend.experiments import domains
    from descend.experiments._common import Config, Table
    cfg = Config(size="smoke", seeds=1)
    rng = np.random.default_rng(0)
    X = rng.random((200, 40)).astype(np.float32)
    y = (X[:, 0] > X[:, 1]).astype(int) + 2 * (X[:, 2] > 0.5)
    table = Table("t", ["domain", "task", "n", "net", "epochs", "s", "to target", "train",
                        "test", "majority"])
    curves, raw = {}, {}
    domains.text_row(cfg, X[:150], y[:150], X[150:], y[150:], table, curves, raw)
    assert table.column("domain") == ["newsgroups"] and table.column("net") == ["40-128-4"]
    assert 0 <= raw["newsgroups"]["test_accuracy"][0] <= 1
    Xf = rng.normal(size=(2000, 30))
    yf = (Xf[:, 0] > 2.0).astype(int)             # ~2% positives
    fraud = Table("f", ["domain", "n", "net", "epochs", "precision", "recall", "PR-AUC",
                        "chance"])
    domains.fraud_row(cfg, Xf[:1500], yf[:1500], Xf[1500:], yf[1500:], fraud, raw)
    assert fraud.column("domain") == ["creditcard"]
    assert set(raw["creditcard"]) == {"precision", "recall", "pr_auc"}
    assert raw["creditcard"]["pr_auc"][0] > yf[1500:].mean()     # better than chance


def test_precision_recall_and_average_precision_by_hand():
    from descend.experiments.domains import precision_recall_ap
    y = np.array([1, 0, 1, 0, 0, 1])
    scores = np.array([0.9, 0.8, 0.7, 0.4, 0.3, 0.2])
    precision, recall, ap = precision_recall_ap(y, scores)
    # predicted positive: the first three (two frauds): precision 2/3, recall 2/3
    # ranks of the positives 1, 3, 6: precisions 1, 2/3, 3/6
    assert precision == pytest.approx(2 / 3) and recall == pytest.approx(2 / 3)
    assert ap == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)
    assert precision_recall_ap(np.zeros(3), np.full(3, 0.1)) == (0.0, 0.0, 0.0)


def _reference_lines(ax):
    """The axhline / axvline lines of an axes (they span it in axes coordinates)."""
    return [line for line in ax.get_lines()
            if list(line.get_xdata()) == [0, 1] or list(line.get_ydata()) == [0, 1]]


def _legend_texts(fig):
    return {text.get_text() for ax in fig.axes if ax.get_legend()
            for text in ax.get_legend().get_texts()}


@pytest.mark.parametrize("name", list(experiments.EXPERIMENTS))
def test_every_plot_has_a_title_marker_legends_and_labelled_reference_lines(results, name):
    pytest.importorskip("matplotlib")
    from matplotlib.collections import PathCollection
    from descend.experiments._common import draw_plot
    result = results(name)
    fig = draw_plot(result)
    # the title names the experiment, the data and the net
    title = " ".join(fig._suptitle.get_text().split())
    data = result.datasets or result.config.dataset
    assert result.net and title == f"{name}: {data}, {result.net}"
    legends = _legend_texts(fig)
    for ax in fig.axes:
        # scattered markers (ok / diverged, reached / not, classes) are explained
        if any(isinstance(c, PathCollection) for c in ax.collections):
            assert ax.get_legend() is not None, f"{name}: markers without a legend"
        for line in _reference_lines(ax):
            assert not line.get_label().startswith("_"), f"{name}: an unlabelled line"
            assert line.get_label() in legends
    if name in ("gd-variants", "learning-rate", "optimizers"):
        assert any(text.startswith("target: training loss") for text in legends)
    if name == "learning-rate":
        assert {"ok", "no progress", "diverged"} <= legends
    if name == "batch-size":
        assert any(text.startswith("not reached") for text in legends)


def test_batch_size_plots_missed_targets_where_a_log_axis_shows_them(results):
    pytest.importorskip("matplotlib")
    from matplotlib.collections import PathCollection
    from descend.experiments._common import draw_plot
    result = results("batch-size")
    data = result.data
    spent = sorted(t for secs, times in zip(data["seconds_to_target"], data["seconds_spent"])
                   for s, t in zip(secs, times) if s is None)
    assert spent, "the smoke size (5 epochs) misses the target at some batch size"
    ax = draw_plot(result).axes[1]
    drawn = sorted(y for c in ax.collections if isinstance(c, PathCollection)
                   for _, y in c.get_offsets())
    # each missed run at the seconds it trained (was drawn at y = 0, off a log axis)
    assert drawn == pytest.approx(spent) and all(y > 0 for y in drawn)


def test_cli_writes_markdown_and_plot(tmp_path, capsys):
    code = main(["experiments", "learning-rate", "--size", "smoke", "--seeds", "1",
                 "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "| learning rate |" in out
    md = (tmp_path / "learning-rate.md").read_text()
    assert re.search(r"\| 100 \| diverged", md)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not (tmp_path / "learning-rate.png").exists()
    else:
        png = tmp_path / "learning-rate.png"
        assert png.exists() and 0 < png.stat().st_size < 200_000
        assert "![learning-rate](learning-rate.png)" in md


def test_without_matplotlib_tables_are_written_and_plot_skipped(tmp_path, monkeypatch,
                                                                 capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    result = experiments.run("gd-variants", size="smoke", seeds=1, out=tmp_path)
    assert (tmp_path / "gd-variants.md").exists()
    assert not (tmp_path / "gd-variants.png").exists()
    assert "matplotlib" in result.plot_message
    assert "matplotlib" in (tmp_path / "gd-variants.md").read_text()
    assert "matplotlib" in capsys.readouterr().err


def test_bad_arguments():
    with pytest.raises(ValueError, match="experiment must be one of"):
        experiments.run("nope")
    with pytest.raises(ValueError, match="dataset"):
        experiments.run("depth", dataset="cifar")
    with pytest.raises(ValueError, match="seeds"):
        experiments.run("depth", seeds=0)


def test_format_helpers():
    from descend.experiments._common import fit_exponent, fmt, fmt_pm
    assert fmt(1234567.0) == "1,230,000"
    assert fmt(0.012345) == "0.0123"
    assert fmt(None) == "-" and fmt(float("nan")) == "nan"
    assert fmt_pm([1.0, 2.0, 3.0]) == "2.00 ± 1.0"
    assert fmt_pm([1.0, None, 3.0]) == "2.00 ± 1.4 (2/3 runs)"
    assert fmt_pm([None], missing="not reached") == "not reached"
    x = np.array([1, 2, 4, 8, 16])
    assert abs(fit_exponent(x, 3 * x ** 2.0) - 2) < 1e-12


@pytest.mark.parametrize("argv", [["--seeds", "0"], ["--n-threads", "0"],
                                  ["--n-threads", "1000000"]])
def test_cli_rejects_bad_counts_with_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(["experiments", "depth", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {argv[0]}: expected" in err and argv[1] in err


def test_cli_without_mnist_offline_says_where_to_put_it(monkeypatch, tmp_path, capsys):
    # was a DatasetNotFoundError traceback
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    home = tmp_path / "mnist"
    code = main(["experiments", "depth", "--dataset", "mnist", "--size", "smoke",
                 "--data-home", str(home), "--out", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("descend experiments: could not download MNIST file")
    assert f"into {home}, or point --data-home" in err
    assert not home.exists()


def test_an_output_directory_under_a_symbolic_link_to_nothing_is_refused_before_the_run(
        tmp_path, capsys):
    # the check climbed past the link to its writable parent: the whole run went
    # by, then mkdir raised FileExistsError
    link = tmp_path / "dangling"
    link.symlink_to("/nonexistent/dir")
    reason = f"({str(link)!r} is a symbolic link to '/nonexistent/dir', which does not exist)"
    out = link / "results"
    with pytest.raises(ValueError) as info:
        experiments.run("depth", size="smoke", seeds=1, out=out)
    assert str(info.value) == (f"out must be a directory that can be created or written, "
                               f"got {str(out)!r} {reason}")
    with pytest.raises(SystemExit) as stop:
        main(["experiments", "depth", "--quick", "--out", str(out)])
    assert stop.value.code == 2
    assert (f"argument --out: expected a directory that can be created or written, got "
            f"{str(out)!r} {reason}") in capsys.readouterr().err
