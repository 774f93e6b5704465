"""Cost per epoch and time to a target accuracy against the mini-batch size."""
import math

import numpy as np

import descend as dn
from descend.experiments._common import (TARGET_ACCURACY, Result, Table, describe_data, fmt,
                                         fmt_pm, load_data, make_net, marker_legend, reached_cell,
                                         train)

NAME = "batch-size"
TITLE = "mini-batch size: seconds per epoch, samples per second, time to accuracy"
BASE_LR = 0.01   # learning rate at batch size 1; lr = BASE_LR * sqrt(batch size)


def run(cfg):
    """Run this experiment at cfg's size on cfg's dataset; return its Result (tables, data, plot)."""
    mnist = cfg.dataset == "mnist"
    n_train = cfg.pick(1000 if mnist else 600, 10000 if mnist else None, None)
    X, X_test, y, y_test = load_data(cfg.dataset, cfg, n_train=n_train,
                                     n_test=cfg.pick(1000, None, None) if mnist else None)
    n = len(X)
    k = len(np.unique(y))
    hidden = (128,) if mnist else (64,)
    sizes = cfg.pick([1, 16, 256, n], [1, 4, 16, 64, 256, 1024, n],
                     [1, 4, 16, 64, 256, 1024, 4096] if mnist else [1, 4, 16, 64, 256, 1024, n])
    sizes = sorted({min(s, n) for s in sizes})
    max_epochs = cfg.pick(5, 100, 40 if mnist else 200)
    target = TARGET_ACCURACY[cfg.dataset]
    table = Table(f"{cfg.dataset}, {X.shape[1]}-{hidden[0]}-{k} relu MLP, SGD without momentum, "
                  f"learning rate {BASE_LR} x sqrt(batch size); target: test accuracy >= "
                  f"{target}, at most {max_epochs} epochs",
                  ["batch size", "learning rate", "updates / epoch", "seconds / epoch",
                   "samples / s", "epochs to target", "seconds to target",
                   "test accuracy at stop"])
    raw = {"batch_size": [], "seconds_per_epoch": [], "samples_per_second": [],
           "seconds_to_target": [], "seconds_spent": []}
    for bs in sizes:
        lr = float(f"{BASE_LR * math.sqrt(bs):.2g}")
        runs = []
        for seed in range(cfg.seeds):
            cfg.log(f"{NAME}: batch {bs} seed {seed}")
            net = make_net(X.shape[1], hidden, k, seed=seed, cfg=cfg)
            runs.append(train(net, dn.optimizers.SGD(learning_rate=lr), X, y, X_test, y_test,
                              max_epochs, bs, test_every_epoch=True,
                              stop=lambda r: r.test_accuracy[-1] >= target))
        per_epoch = [float(np.median(r.seconds)) for r in runs]
        to_target = [r.first_epoch("test_accuracy", target, above=True) for r in runs]
        secs = [r.seconds_to(e) for r, e in zip(runs, to_target)]
        table.add(bs if bs < n else f"{bs} (all)", fmt(lr, 2), runs[0].updates_per_epoch,
                  fmt_pm(per_epoch, 3), fmt_pm([n / s for s in per_epoch], 3),
                  reached_cell(to_target, len(runs)),
                  fmt_pm(secs, 3, missing="not reached", count=False),
                  fmt_pm([r.test_accuracy[-1] for r in runs], 3))
        raw["batch_size"].append(bs)
        raw["seconds_per_epoch"].append(per_epoch)
        raw["samples_per_second"].append([n / s for s in per_epoch])
        raw["seconds_to_target"].append(secs)
        raw["seconds_spent"].append([float(np.sum(r.seconds)) for r in runs])

    plot = _plotter(raw, cfg.n_threads, target, max_epochs)

    return Result(
        name=NAME, title=TITLE,
        question="How do the seconds per epoch, the throughput and the time to a target "
                 "accuracy change with the mini-batch size?",
        setup=[describe_data(cfg.dataset, X, X_test),
               f"learning rate = {BASE_LR} x sqrt(batch size) (the square-root scaling rule, "
               "rounded to 2 digits), no momentum; training stops at the first epoch whose "
               "test accuracy reaches the target",
               "seconds / epoch: median over the epochs of a run of fit's epoch time "
               "(compiled loop only); samples / s = training samples / that; "
               "seconds to target: fit time summed up to the epoch that reached it"],
        tables=[table], plot=plot, data=raw,
        net=f"{X.shape[1]}-{hidden[0]}-{k} relu MLP, SGD without momentum")


def _plotter(raw, n_threads, target, max_epochs):
    """The figure: throughput, and seconds to the target accuracy, against the batch size."""
    def plot(fig):
        ax1, ax2 = fig.subplots(1, 2)
        bss = raw["batch_size"]
        sps = [np.mean(v) for v in raw["samples_per_second"]]
        ax1.plot(bss, sps, "o-")
        ax1.set_xscale("log")
        ax1.set_yscale("log")
        ax1.set_xlabel("batch size")
        ax1.set_ylabel("training samples / s")
        ax1.set_title(f"throughput ({n_threads} thread(s))", fontsize=9)
        for bs, secs, spent in zip(bss, raw["seconds_to_target"], raw["seconds_spent"]):
            vals = [s for s in secs if s is not None]
            if vals:
                ax2.errorbar(bs, np.mean(vals), yerr=np.std(vals), fmt="o", color="tab:blue")
            # a run that missed the target: at the seconds it trained (a lower bound)
            missed = [t for s, t in zip(secs, spent) if s is None]
            ax2.scatter([bs] * len(missed), missed, marker="x", color="tab:red")
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_xlabel("batch size")
        ax2.set_ylabel("training seconds")
        ax2.set_title(f"time to test accuracy {target}", fontsize=9)
        marker_legend(ax2, [("o", "tab:blue", "reached (mean ± std of seeds)"),
                            ("x", "tab:red", f"not reached in {max_epochs} epochs "
                                             "(seconds spent)")], fontsize=7)

    return plot
