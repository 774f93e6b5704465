"""Batch vs stochastic vs mini-batch gradient descent.

The three variants are one optimizer (plain gradient descent, no momentum)
fed batches of different sizes: the whole training set (one update per
epoch), one sample (n updates per epoch) or 32 samples.
"""
import numpy as np

import descend as dn
from descend.experiments._common import (TARGET_LOSS, Result, Table, describe_data, fmt_pm,
                                         make_net, reference_line, standard_data, train)

NAME = "gd-variants"
TITLE = "batch vs stochastic vs mini-batch gradient descent"


def _settings(cfg):
    mnist = cfg.dataset == "mnist"
    # (label, batch_size, learning rate, epoch budget)
    return [
        ("batch (all samples)", None, 1.0, cfg.pick(40, 300, 150 if mnist else 300)),
        ("stochastic (1 sample)", 1, 0.01, cfg.pick(2, 10, 5 if mnist else 10)),
        ("mini-batch (32)", 32, 0.1, cfg.pick(4, 30, 20 if mnist else 30)),
    ]


def run(cfg):
    """Run this experiment at cfg's size on cfg's dataset; return its Result (tables, data, plot)."""
    mnist = cfg.dataset == "mnist"
    X, X_test, y, y_test, k = standard_data(cfg)
    hidden = (128,) if mnist else (64,)
    target = TARGET_LOSS[cfg.dataset]
    table = Table(f"{cfg.dataset}, {X.shape[1]}-{hidden[0]}-{k} relu MLP, plain gradient "
                  f"descent; target: training loss <= {target}",
                  ["variant", "batch size", "learning rate", "epochs run",
                   "updates / epoch", "epochs to target", "seconds to target",
                   "updates / s", "samples / s", "final train loss", "final test accuracy"])
    curves = {}
    raw = {}
    for label, batch_size, lr, epochs in _settings(cfg):
        runs = []
        for seed in range(cfg.seeds):
            cfg.log(f"{NAME}: {label} seed {seed}")
            net = make_net(X.shape[1], hidden, k, seed=seed, cfg=cfg)
            runs.append(train(net, dn.optimizers.SGD(learning_rate=lr), X, y, X_test, y_test,
                              epochs, batch_size))
        to_target = [r.first_epoch("train_loss", target) for r in runs]
        secs = [r.seconds_to(e) for r, e in zip(runs, to_target)]
        per_epoch = [np.median(r.seconds) for r in runs]
        updates = runs[0].updates_per_epoch
        reached = sum(e is not None for e in to_target)
        note = "" if reached == len(runs) else f" ({reached}/{len(runs)} reached)"
        table.add(label, len(X) if batch_size is None else batch_size, f"{lr:g}", epochs,
                  updates, fmt_pm(to_target, 3, missing="not reached", count=False) + note,
                  fmt_pm(secs, 3, missing="not reached", count=False),
                  fmt_pm([updates / s for s in per_epoch], 3),
                  fmt_pm([len(X) / s for s in per_epoch], 3),
                  fmt_pm([r.final["train_loss"] for r in runs], 3),
                  fmt_pm([r.final["test_accuracy"] for r in runs], 3))
        curves[label] = runs
        raw[label] = {"epochs_to_target": to_target, "seconds_to_target": secs,
                      "status": [r.status for r in runs]}

    def plot(fig):
        ax1, ax2 = fig.subplots(1, 2)
        for label, runs in curves.items():
            r = runs[0]
            t = np.cumsum(r.seconds)
            ax1.plot(np.arange(1, r.epochs + 1), r.train_loss, label=label)
            ax2.plot(t, r.train_loss, label=label)
        for ax, xl in ((ax1, "epoch"), (ax2, "training seconds (fit only)")):
            reference_line(ax, target, f"target: training loss {target}")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(xl)
            ax.set_ylabel("training loss")
        ax1.legend(fontsize=8)
        ax1.set_title(f"{cfg.dataset}: loss per epoch (seed 0)", fontsize=9)
        ax2.set_title("loss against wall time", fontsize=9)

    return Result(
        name=NAME, title=TITLE,
        question="How many epochs and seconds does each gradient-descent variant need to "
                 "reach the same training loss, how many updates per second does it make, "
                 "and how well does the result generalize?",
        setup=[describe_data(cfg.dataset, X, X_test),
               "optimizer: descend.optimizers.SGD(learning_rate, momentum=0); the only "
               "difference between the variants is fit(batch_size=...)",
               "learning rates: one per variant (1.0 / 0.01 / 0.1), picked in a pilot on "
               "digits from each variant's converging range, not tuned to be optimal (the "
               "learning-rate experiment scans the mini-batch case); the epoch budget is "
               "per variant",
               "epochs to target: first epoch after which the training loss (measured on up "
               "to 5000 training samples with the weights of the epoch's end) is <= "
               f"{target}; seconds to target: sum of fit's per-epoch times up to that epoch "
               "(evaluation not timed)",
               "updates / s and samples / s: from the median epoch time"],
        tables=[table], plot=plot, data=raw,
        net=f"{X.shape[1]}-{hidden[0]}-{k} relu MLP, SGD without momentum")
