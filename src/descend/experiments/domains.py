"""Domains: image recognition (digits, MNIST) and a tabular medical task
(breast cancer diagnosis), trained the same way.

Every domain uses Adam (lr 1e-3), mini-batches of 32, relu hidden layers,
and reports the test accuracy after every epoch. Breast cancer is binary:
one sigmoid output with binary cross-entropy, features standardized with
the training split's mean and standard deviation (never the test split's).
"""
import numpy as np

import descend as dn
from descend.experiments._common import (TARGET_ACCURACY, Config, Result, Table, fmt, fmt_pm,
                                         load_data, mnist_available, train)

NAME = "domains"
TITLE = "domains: handwritten digits, MNIST, breast cancer"


def _domains(cfg):
    # dataset, task, hidden, epochs, n_train
    return [
        ("digits", "image, 8x8, 10 classes", (128,), cfg.pick(3, 20, 30), None),
        ("mnist", "image, 28x28, 10 classes", (256, 128), cfg.pick(1, 3, 10),
         cfg.pick(2000, 10000, None)),
        ("breast_cancer", "tabular medical, 30 features, 2 classes", (32,),
         cfg.pick(5, 50, 100), None),
    ]


def run(cfg):
    """Run this experiment at cfg's size on cfg's dataset; return its Result (tables, data, plot)."""
    table = Table("Adam lr 1e-3, batch 32; accuracy on the held-out test split",
                  ["domain", "task", "train / test samples", "net", "epochs",
                   "seconds / epoch", "epochs to target", "final train accuracy",
                   "final test accuracy", "majority-class baseline"])
    curves, raw, skipped = {}, {}, []
    for dataset, task, hidden, epochs, n_train in _domains(cfg):
        if dataset == "mnist" and not mnist_available(cfg.data_home):
            skipped.append("mnist (files not found; pass --data-home or set DESCEND_DATA)")
            continue
        dcfg = Config(size=cfg.size, dataset=dataset, seeds=cfg.seeds, data_home=cfg.data_home,
                      n_threads=cfg.n_threads, dtype=cfg.dtype, verbose=cfg.verbose)
        X, X_test, y, y_test = load_data(dataset, dcfg, n_train=n_train)
        k = len(np.unique(y))
        binary = k == 2
        target = TARGET_ACCURACY[dataset]
        runs = []
        for seed in range(cfg.seeds):
            cfg.log(f"{NAME}: {dataset} seed {seed}")
            layers = [dn.Dense(h, activation="relu") for h in hidden]
            layers.append(dn.Dense(1, activation="sigmoid") if binary else dn.Dense(k))
            net = dn.Sequential(layers, input_dim=X.shape[1], dtype=cfg.dtype, seed=seed,
                                n_threads=cfg.n_threads)
            runs.append(train(net, dn.optimizers.Adam(learning_rate=1e-3), X, y, X_test, y_test,
                              epochs, 32, test_every_epoch=True, eval_rows=len(X),
                              loss="binary_cross_entropy" if binary else
                              "softmax_cross_entropy"))
        to_target = [r.first_epoch("test_accuracy", target, above=True) for r in runs]
        reached = sum(e is not None for e in to_target)
        majority = np.max(np.bincount(y_test)) / len(y_test)
        net_text = (f"{X.shape[1]}-" + "-".join(map(str, hidden))
                    + ("-1 sigmoid" if binary else f"-{k}"))
        table.add(dataset, task, f"{len(X):,} / {len(X_test):,}", net_text, epochs,
                  fmt_pm([np.median(r.seconds) for r in runs], 3),
                  fmt_pm(to_target, 3, missing=f"not reached (>= {target})", count=False)
                  + ("" if reached in (0, len(runs)) else f" ({reached}/{len(runs)} reached)")
                  + (f" (target {target})" if reached else ""),
                  fmt_pm([r.final["train_accuracy"] for r in runs], 3),
                  fmt_pm([r.final["test_accuracy"] for r in runs], 4),
                  fmt(majority, 3))
        curves[dataset] = runs
        raw[dataset] = {"test_accuracy": [r.final["test_accuracy"] for r in runs],
                        "to_target": to_target}
    if skipped:
        table.notes.append("skipped: " + "; ".join(skipped))

    def plot(fig):
        ax1, ax2 = fig.subplots(1, 2)
        for dataset, runs in curves.items():
            acc = np.array([r.test_accuracy for r in runs if len(r.test_accuracy)
                            == len(runs[0].test_accuracy)])
            epochs = np.arange(1, acc.shape[1] + 1)
            ax1.plot(epochs, acc.mean(0), "o-", ms=3, label=dataset)
            ax1.fill_between(epochs, acc.min(0), acc.max(0), alpha=0.2)
            loss = np.array([r.train_loss for r in runs if len(r.train_loss)
                             == len(runs[0].train_loss)])
            ax2.plot(epochs, loss.mean(0), "o-", ms=3, label=dataset)
        ax1.set_xlabel("epoch")
        ax1.set_ylabel("test accuracy (mean, min-max band)")
        ax1.set_ylim(0.85, 1.0)
        ax1.legend(fontsize=8)
        ax2.set_yscale("log")
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("training loss")

    return Result(
        name=NAME, title=TITLE, datasets="digits, mnist, breast_cancer",
        question="How fast and how well does the same training recipe converge on image "
                 "recognition and on a tabular medical task?",
        setup=["digits: the bundled UCI 8x8 digits, stratified 75/25 split (seed 0); MNIST: "
               "the standard 60,000/10,000 split"
               + ("" if cfg.size == "full" else " (training subset in this size)")
               + "; breast cancer: UCI Wisconsin diagnostic, stratified 75/25 split (seed 0), "
               "standardized with the training statistics (--dataset does not apply)",
               "epochs to target: first epoch whose test accuracy reaches 0.95; seconds / "
               "epoch: median of fit's epoch times"],
        tables=[table], plot=plot, data=raw)
