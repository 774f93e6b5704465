"""A log grid of learning rates for plain mini-batch gradient descent.

Each rate is run from the same seeds; a run is marked
- "diverged (NaN/inf)" if fit raised descend.DivergenceError (a non-finite
  loss or weight; descend rolls the weights back and raises),
- "diverged (loss exploded)" if its training loss rose above 10x the loss
  at initialization after some epoch, or ended above 3x it, without
  becoming NaN (the stable softmax cross-entropy stays finite even for huge
  logits, so this is the usual way a too-large rate fails here),
- "no progress" if it ended with a training loss above 0.95 x the loss at
  initialization (a rate too small for the epochs run, or, at large rates,
  every relu unit died),
- "ok" otherwise.
"""
import numpy as np

import descend as dn
from descend.experiments._common import (standard_data, EXPLOSION_FACTOR, FINAL_EXPLOSION_FACTOR,
                                         TARGET_LOSS, Result, Table,
                                         describe_data, fmt, fmt_pm, make_net,
                                         marker_legend, reached_cell, reference_line, train)

NAME = "learning-rate"
NO_PROGRESS = 0.95   # final / initial training loss above which a run made no progress
TITLE = "learning rate: convergence, accuracy and divergence"


def status_of(run):
    """How a learning-rate run ended: "ok", "no progress", or its divergence status."""
    if run.diverged:
        return run.status
    if run.final["train_loss"] > NO_PROGRESS * run.initial_loss:
        return "no progress"
    return "ok"


def summarize_status(statuses):
    """'ok' / 'diverged (loss exploded) 3/3' / mixed 'ok 2/3, no progress 1/3'."""
    counts = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    if len(counts) == 1:
        (s, c), = counts.items()
        return s if s == "ok" else f"{s} {c}/{len(statuses)}"
    return ", ".join(f"{s} {c}/{len(statuses)}" for s, c in counts.items())


def run(cfg):
    """Run this experiment at cfg's size on cfg's dataset; return its Result (tables, data, plot)."""
    mnist = cfg.dataset == "mnist"
    X, X_test, y, y_test, k = standard_data(cfg)
    hidden = (128,) if mnist else (64,)
    batch_size = 32
    epochs = cfg.pick(3, 10, 10)
    exponents = cfg.pick([-3, -1, 0, 2], np.arange(-4, 2.51, 0.5), np.arange(-4, 2.51, 0.5))
    rates = [float(f"{10.0 ** e:.1g}") for e in exponents]
    target = TARGET_LOSS[cfg.dataset]
    table = Table(f"{cfg.dataset}, {X.shape[1]}-{hidden[0]}-{k} relu MLP, SGD without momentum, "
                  f"batch 32, {epochs} epochs; target: training loss <= {target}",
                  ["learning rate", "status", "epochs to target", "seconds to target",
                   "final train loss", "final test accuracy"])
    raw = {"learning_rate": [], "status": [], "final_loss": [], "statuses": []}
    curves = {}
    for lr in rates:
        runs = []
        for seed in range(cfg.seeds):
            cfg.log(f"{NAME}: lr {lr:g} seed {seed}")
            net = make_net(X.shape[1], hidden, k, seed=seed, cfg=cfg)
            runs.append(train(net, dn.optimizers.SGD(learning_rate=lr), X, y, X_test, y_test,
                              epochs, batch_size))
        statuses = [status_of(r) for r in runs]
        ok = [r for r, s in zip(runs, statuses) if s == "ok"]
        to_target = [r.first_epoch("train_loss", target) for r in ok]
        cell_epochs = reached_cell(to_target, len(runs)) if ok else "-"
        finals = [r.final["train_loss"] for r in runs]
        table.add(fmt(lr, 1), summarize_status(statuses), cell_epochs,
                  fmt_pm([r.seconds_to(e) for r, e in zip(ok, to_target)], 3,
                         missing="not reached", count=False) if ok else "-",
                  fmt_pm(finals, 3),
                  fmt_pm([r.final["test_accuracy"] for r in runs], 3))
        raw["learning_rate"].append(lr)
        raw["status"].append(summarize_status(statuses))
        raw["statuses"].append(statuses)
        raw["final_loss"].append(finals)
        curves[lr] = runs

    findings = _findings(raw, curves, target, epochs)
    return Result(
        name=NAME, title=TITLE,
        question="Over a logarithmic grid of learning rates, how fast does plain "
                 "mini-batch gradient descent converge, how accurate is the result, and "
                 "where does it diverge?",
        setup=[describe_data(cfg.dataset, X, X_test),
               f"grid: {', '.join(fmt(r, 1) for r in rates)} (half decades)",
               "divergence: 'diverged (NaN/inf)' = fit raised descend.DivergenceError; "
               f"'diverged (loss exploded)' = training loss > {EXPLOSION_FACTOR:g} x the loss "
               "at initialization after an epoch (training is stopped there) or > "
               f"{FINAL_EXPLOSION_FACTOR:g} x it at the end, while still finite; "
               f"'no progress' = final training loss > {NO_PROGRESS} x the initial loss "
               "(a rate too small for the epochs run, or every relu unit died)",
               "epochs/seconds to target over the converged runs only; training loss "
               "measured on up to 5000 training samples after each epoch"],
        tables=[table], plot=_plotter(curves, target, epochs), data=raw,
        net=f"{X.shape[1]}-{hidden[0]}-{k} relu MLP, SGD without momentum", findings=findings)


def _findings(raw, curves, target, epochs):
    """The range of rates that worked, those that reached the target, and how the others
    ended."""
    finding_ok = [lr for lr, s in zip(raw["learning_rate"], raw["status"]) if s == "ok"]
    reaching = [lr for lr, runs in curves.items()
                if all(r.first_epoch("train_loss", target) for r in runs)]
    findings = []
    if finding_ok:
        findings.append(f"rates that lowered the loss without diverging on every seed: "
                        f"{fmt(min(finding_ok), 1)} to {fmt(max(finding_ok), 1)}; of these, "
                        f"reached the target on every seed within {epochs} epochs: "
                        + (", ".join(fmt(r, 1) for r in reaching) or "none"))
    bad = [f"{fmt(lr, 1)}: {s}" for lr, s in zip(raw["learning_rate"], raw["status"])
           if s != "ok"]
    if bad:
        findings.append("the others: " + "; ".join(bad))
    return findings


def _plotter(curves, target, epochs):
    """The figure: final training loss of every seed against the rate, and seed 0's
    training-loss curve at every rate."""
    def plot(fig):
        ax1, ax2 = fig.subplots(1, 2)
        for lr, runs in curves.items():
            finals = [r.final["train_loss"] for r in runs]
            for r, f in zip(runs, finals):
                marker = "x" if r.diverged else ("s" if status_of(r) == "no progress" else "o")
                color = "tab:red" if r.diverged else (
                    "tab:orange" if marker == "s" else "tab:blue")
                ax1.scatter(lr, f, marker=marker, color=color, s=18)
        ax1.set_xscale("log")
        ax1.set_yscale("log")
        reference_line(ax1, target, f"target: training loss {target}")
        ax1.set_xlabel("learning rate")
        ax1.set_ylabel(f"training loss after {epochs} epochs")
        ax1.set_title("one point per seed", fontsize=9)
        marker_legend(ax1, [("o", "tab:blue", "ok"), ("s", "tab:orange", "no progress"),
                            ("x", "tab:red", "diverged")], fontsize=7)
        from matplotlib import colormaps
        cmap = colormaps["viridis"]
        for i, (lr, runs) in enumerate(curves.items()):
            r = runs[0]
            ax2.plot(np.arange(0, r.epochs + 1), [r.initial_loss] + r.train_loss,
                     color=cmap(i / max(len(curves) - 1, 1)), label=fmt(lr, 1))
        ax2.set_yscale("log")
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("training loss (seed 0)")
        ax2.legend(fontsize=6, ncol=1, title="learning rate", title_fontsize=7,
                   loc="center left", bbox_to_anchor=(1.0, 0.5))

    return plot
