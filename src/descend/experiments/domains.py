"""Domains: image recognition (digits, MNIST), a tabular medical task
(breast cancer diagnosis), text classification (20 newsgroups, TF-IDF) and
fraud detection (credit-card transactions, 0.17% frauds), trained the same
way.

Every domain uses Adam (lr 1e-3), mini-batches of 32, relu hidden layers,
and reports the test accuracy after every epoch. Breast cancer is binary:
one sigmoid output with binary cross-entropy, features standardized with
the training split's mean and standard deviation (never the test split's).
Fraud detection is judged by the fraud class's precision, recall and the
area under the precision-recall curve (average precision) on the test
split: its accuracy is 0.998 for a model that never says "fraud". The text
and fraud rows need their files (``dn.datasets.load_newsgroups()`` and
``load_creditcard()`` download them when online); without them the table
notes which file is missing and where to put it.
"""
import numpy as np

import descend as dn
from descend.experiments._common import (TARGET_ACCURACY, Config, Result, Table, fit, fmt,
                                         fmt_pm, load_data, mnist_available, reference_line,
                                         subsample, train)

NAME = "domains"
TITLE = "domains: handwritten digits, MNIST, breast cancer, newsgroups, card fraud"
TEXT_TARGET = 0.85


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
    fraud_table = Table("Fraud detection: the fraud class on the held-out test split "
                        "(threshold 0.5)", ["domain", "train / test samples (frauds)", "net",
                                            "epochs", "precision", "recall", "PR-AUC",
                                            "PR-AUC of chance"])
    _text_and_fraud_rows(cfg, table, fraud_table, curves, raw, skipped)
    if skipped:
        table.notes.append("skipped: " + "; ".join(skipped))

    plot = _plotter(curves)

    return Result(
        name=NAME, title=TITLE,
        # what ran (MNIST, newsgroups and creditcard only where their files are)
        datasets=", ".join(list(curves) + [name for name in ("creditcard",) if name in raw]),
        question="How fast and how well does the same training recipe converge on image "
                 "recognition, a tabular medical task, text classification and fraud "
                 "detection?",
        setup=["digits: the bundled UCI 8x8 digits, stratified 75/25 split (seed 0); MNIST: "
               "the standard 60,000/10,000 split"
               + ("" if cfg.size == "full" else " (training subset in this size)")
               + "; breast cancer: UCI Wisconsin diagnostic, stratified 75/25 split (seed 0), "
               "standardized with the training statistics (--dataset does not apply)",
               "newsgroups: the 'bydate' train/test split of 4 of the 20 groups (alt.atheism, "
               "comp.graphics, sci.med, soc.religion.christian), headers removed, TF-IDF of "
               "the 2000 words in most training posts (target accuracy 0.85); creditcard: "
               "stratified 75/25 split (seed 0), standardized with the training statistics, "
               "no class weights (a model that never says 'fraud' has accuracy 0.998)",
               "epochs to target: first epoch whose test accuracy reaches 0.95; seconds / "
               "epoch: median of fit's epoch times"],
        tables=[table] + ([fraud_table] if fraud_table.rows else []), plot=plot, data=raw,
        net="one-hidden-layer relu MLPs (see the table)")


def _plotter(curves):
    """The figure: test accuracy and training loss per epoch of each domain."""
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
        for target in sorted({TARGET_ACCURACY.get(name, TEXT_TARGET) for name in curves}):
            reference_line(ax1, target, f"target: test accuracy {target}")
        ax1.set_xlabel("epoch")
        ax1.set_ylabel("test accuracy (mean, min-max band)")
        ax1.set_ylim(0.85, 1.0)
        ax1.legend(fontsize=8, title="dataset", title_fontsize=8)
        ax2.set_yscale("log")
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("training loss")

    return plot


def _text_and_fraud_rows(cfg, table, fraud_table, curves, raw, skipped):
    """The newsgroups and creditcard rows, from local files only (never a download)."""
    from descend import datasets
    from descend._domain_data import creditcard_available, get_data_dir, newsgroups_available
    if not newsgroups_available(cfg.data_home):
        skipped.append(f"newsgroups ({datasets.NEWSGROUPS_ARCHIVE} not in "
                       f"{get_data_dir('newsgroups', cfg.data_home)}: run "
                       "dn.datasets.load_newsgroups() online, or see its docstring)")
    else:
        try:
            X, y, X_test, y_test, names = datasets.load_newsgroups(
                cfg.data_home, download=False, dtype=cfg.dtype)
        except ValueError as exc:
            skipped.append(f"newsgroups ({exc})")
        else:
            n_train = cfg.pick(300, 1000, None)
            X, y = subsample(X, y, n_train)
            text_row(cfg, X, y, X_test, y_test, table, curves, raw)
    if not creditcard_available(cfg.data_home):
        skipped.append(f"creditcard (creditcard.arff or creditcard.csv not in "
                       f"{get_data_dir('creditcard', cfg.data_home)}: run "
                       "dn.datasets.load_creditcard() online, or see its docstring)")
    else:
        try:
            X, y = datasets.load_creditcard(cfg.data_home, download=False, dtype="float64")
        except ValueError as exc:
            skipped.append(f"creditcard ({exc})")
        else:
            X, X_test, y, y_test = datasets.train_test_split(X, y, test_size=0.25, seed=0,
                                                             stratify=True)
            X, y = subsample(X, y, cfg.pick(20000, 60000, None))
            fraud_row(cfg, X, y, X_test, y_test, fraud_table, raw)


def text_row(cfg, X, y, X_test, y_test, table, curves, raw):
    """Train (hidden 128, softmax) on TF-IDF features; add the newsgroups row."""
    k = len(np.unique(y))
    epochs = cfg.pick(2, 10, 20)
    runs = []
    for seed in range(cfg.seeds):
        cfg.log(f"{NAME}: newsgroups seed {seed}")
        net = dn.Sequential([dn.Dense(128, activation="relu"), dn.Dense(k)],
                            input_dim=X.shape[1], dtype=cfg.dtype, seed=seed,
                            n_threads=cfg.n_threads)
        runs.append(train(net, dn.optimizers.Adam(learning_rate=1e-3), X, y, X_test, y_test,
                          epochs, 32, test_every_epoch=True, eval_rows=len(X)))
    to_target = [r.first_epoch("test_accuracy", TEXT_TARGET, above=True) for r in runs]
    table.add("newsgroups", f"text, TF-IDF of {X.shape[1]} words, {k} classes",
              f"{len(X):,} / {len(X_test):,}", f"{X.shape[1]}-128-{k}", epochs,
              fmt_pm([np.median(r.seconds) for r in runs], 3),
              fmt_pm(to_target, 3, missing=f"not reached (>= {TEXT_TARGET})", count=False),
              fmt_pm([r.final["train_accuracy"] for r in runs], 3),
              fmt_pm([r.final["test_accuracy"] for r in runs], 4),
              fmt(np.max(np.bincount(y_test)) / len(y_test), 3))
    curves["newsgroups"] = runs
    raw["newsgroups"] = {"test_accuracy": [r.final["test_accuracy"] for r in runs],
                         "to_target": to_target}


def fraud_row(cfg, X, y, X_test, y_test, fraud_table, raw):
    """Standardize with the training statistics, train (hidden 32, sigmoid),
    and add precision, recall and PR-AUC of the fraud class."""
    mean, std = X.mean(0), X.std(0)
    std[std == 0] = 1
    X = ((X - mean) / std).astype(cfg.dtype)
    X_test = ((X_test - mean) / std).astype(cfg.dtype)
    epochs = cfg.pick(1, 3, 5)
    scores = {"precision": [], "recall": [], "pr_auc": []}
    for seed in range(cfg.seeds):
        cfg.log(f"{NAME}: creditcard seed {seed}")
        net = dn.Sequential([dn.Dense(32, activation="relu"), dn.Dense(1, activation="sigmoid")],
                            input_dim=X.shape[1], dtype=cfg.dtype, seed=seed,
                            n_threads=cfg.n_threads)
        net.compile(loss="binary_cross_entropy", optimizer=dn.optimizers.Adam(1e-3))
        fit(net, X, y, epochs=epochs, batch_size=32, verbose=0)
        p = net.predict(X_test)[:, 0]
        for key, value in zip(scores, precision_recall_ap(y_test, p)):
            scores[key].append(value)
    fraud_table.add("creditcard", f"{len(X):,} ({int(y.sum())}) / {len(X_test):,} "
                    f"({int(y_test.sum())})", f"{X.shape[1]}-32-1 sigmoid", epochs,
                    fmt_pm(scores["precision"], 3), fmt_pm(scores["recall"], 3),
                    fmt_pm(scores["pr_auc"], 3), fmt(y_test.mean(), 4))
    raw["creditcard"] = scores


def precision_recall_ap(y_true, scores, threshold=0.5):
    """(precision, recall, average precision) of the positive class.

    Average precision is the mean, over the positives, of the precision
    among the samples scored at least as high (scikit-learn's
    ``average_precision_score``, ties broken by order). Precision is 0 when
    nothing is predicted positive.
    """
    y_true = np.asarray(y_true).astype(bool)
    predicted = scores >= threshold
    tp = np.count_nonzero(predicted & y_true)
    precision = tp / max(np.count_nonzero(predicted), 1)
    recall = tp / max(np.count_nonzero(y_true), 1)
    order = np.argsort(-scores, kind="stable")
    hits = y_true[order]
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    ap = float(precision_at[hits].sum() / max(hits.sum(), 1))
    return precision, recall, ap
