"""Regularization on a deliberately small training set: none, L2, L1,
dropout, early stopping.

A wide two-hidden-layer net is trained long enough to fit its small
training set perfectly; each regularizer is judged by the train/test gap it
leaves. For the penalties the fraction of (near-)zero weights is counted
over all kernels (biases are not penalised and not counted), three ways:
exactly 0.0, |w| < 1e-6, and |w| < 1e-3.
"""
import numpy as np

import descend as dn
from descend.experiments._common import (Result, Table, describe_data, fit, fmt_pm, load_data,
                                         make_net, reference_line, train)

NAME = "regularization"
TITLE = "regularization: train/test gap and sparsity"


def zero_fractions(net):
    """Fractions of kernel weights exactly 0, below 1e-6 and below 1e-3 in absolute value."""
    w = np.concatenate([layer.kernel.ravel() for layer in net.dense_layers])
    return (float(np.mean(w == 0)), float(np.mean(np.abs(w) < 1e-6)),
            float(np.mean(np.abs(w) < 1e-3)), w.size)


def _settings(cfg):
    # (label, kernel_regularizer factory, dropout rate, early stopping)
    return [
        ("none", None, 0.0, False),
        ("L2 1e-4", lambda: dn.regularizers.l2(1e-4), 0.0, False),
        ("L2 1e-3", lambda: dn.regularizers.l2(1e-3), 0.0, False),
        ("L1 1e-5", lambda: dn.regularizers.l1(1e-5), 0.0, False),
        ("L1 1e-4", lambda: dn.regularizers.l1(1e-4), 0.0, False),
        ("L1 1e-4 proximal", lambda: dn.regularizers.l1(1e-4, proximal=True), 0.0, False),
        ("dropout 0.2", None, 0.2, False),
        ("dropout 0.5", None, 0.5, False),
        ("early stopping", None, 0.0, True),
    ]


def run(cfg):
    """Run this experiment at cfg's size on cfg's dataset; return its Result (tables, data, plot)."""
    mnist = cfg.dataset == "mnist"
    n_train = cfg.pick(200, 2000 if mnist else 300, 2000 if mnist else 300)
    X, X_test, y, y_test = load_data(cfg.dataset, cfg, n_train=n_train,
                                     n_test=cfg.pick(1000, None, None) if mnist else None)
    k = len(np.unique(y))
    hidden = cfg.pick((64, 64), (256, 256), (256, 256))
    epochs = cfg.pick(40, 40 if mnist else 100, 50 if mnist else 150)
    lr, patience = 0.05, 10
    n_val = len(X) // 5
    table = Table(
        f"{cfg.dataset}: {len(X)} training samples, {X.shape[1]}-{hidden[0]}-{hidden[1]}-{k} "
        f"relu MLP, SGD lr {lr} momentum 0.9, batch 32, {epochs} epochs",
        ["regularizer", "train accuracy", "test accuracy", "gap (train - test)",
         "test loss", "exactly 0", "|w| < 1e-6", "|w| < 1e-3", "epochs run"])
    raw, raw_weights = {}, {}   # raw_weights: seed 0's kernels, for the histogram
    for label, make_reg, rate, early in _settings(cfg):
        rows = {"train": [], "test": [], "gap": [], "test_loss": [], "exact": [], "tiny": [],
                "small": [], "epochs": []}
        for seed in range(cfg.seeds):
            cfg.log(f"{NAME}: {label} seed {seed}")
            net = make_net(X.shape[1], hidden, k, seed=seed, cfg=cfg, dropout=rate,
                           kernel_regularizer=make_reg() if make_reg else None)
            epochs_run = _fit(net, lr, early, patience, n_val, X, y, X_test, y_test, epochs)
            train_acc = net.evaluate(X, y)["accuracy"]
            test = net.evaluate(X_test, y_test)
            exact, tiny, small, n_weights = zero_fractions(net)
            if seed == 0 and label in ("none", "L2 1e-3", "L1 1e-4"):
                raw_weights[label] = np.concatenate([layer.kernel.ravel()
                                                     for layer in net.dense_layers])
            for key, value in (("train", train_acc), ("test", test["accuracy"]),
                               ("gap", train_acc - test["accuracy"]),
                               ("test_loss", test["loss"]), ("exact", exact), ("tiny", tiny),
                               ("small", small), ("epochs", epochs_run)):
                rows[key].append(value)
        raw[label] = rows
        table.add(label, fmt_pm(rows["train"], 3), fmt_pm(rows["test"], 3),
                  fmt_pm(rows["gap"], 2), fmt_pm(rows["test_loss"], 3),
                  fmt_pm(rows["exact"], 2, scale=100) + " %",
                  fmt_pm(rows["tiny"], 2, scale=100) + " %",
                  fmt_pm(rows["small"], 2, scale=100) + " %", fmt_pm(rows["epochs"], 3))
    table.notes.append(
        f"Zero counts over all {n_weights:,} kernel weights. Penalties: descend adds "
        "l1·Σ|w| + l2·Σw² to every mini-batch's mean loss (Keras' convention); L1 is a "
        "subgradient step (sign(0) = 0), or, in the 'proximal' row, a soft-thresholding "
        "step w = sign(w)·max(|w| - lr·l1, 0) after each update. Early stopping: "
        f"EarlyStopping(monitor='val_loss', patience={patience}, restore_best_weights=True), "
        f"trained on the first {len(X) - n_val} training samples with the last {n_val} as "
        "validation; its train accuracy is over all training samples.")

    l1 = raw["L1 1e-4"]
    proximal = raw["L1 1e-4 proximal"]
    findings = [
        f"exact zeros: none {np.mean(raw['none']['exact']) * 100:.2g} %, L1 1e-4 "
        f"{np.mean(l1['exact']) * 100:.2g} %, L1 1e-4 proximal "
        f"{np.mean(proximal['exact']) * 100:.2g} %; |w| < 1e-6: none "
        f"{np.mean(raw['none']['tiny']) * 100:.2g} %, L1 1e-4 {np.mean(l1['tiny']) * 100:.2g} %; "
        f"|w| < 1e-3: none {np.mean(raw['none']['small']) * 100:.2g} %, L1 1e-4 "
        f"{np.mean(l1['small']) * 100:.2g} %",
        "descend's L1 is a subgradient step: a weight whose data gradient is ~0 walks to 0 "
        "in steps of lr·l1 and then oscillates across 0 (w, w - lr·l1, w, ...) instead of "
        "landing on it; the proximal (soft-thresholding) update sets such weights to "
        "exactly 0"]
    return Result(
        name=NAME, title=TITLE,
        question="How much does each regularizer close the gap between training and test "
                 "accuracy on a small training set, and how many weights does L1 set to zero?",
        setup=[describe_data(cfg.dataset, X, X_test)],
        tables=[table], plot=_plotter(raw, raw_weights), data=raw, findings=findings,
        net=f"{X.shape[1]}-{hidden[0]}-{hidden[1]}-{k} relu MLP, {len(X)} training samples")


def _fit(net, lr, early, patience, n_val, X, y, X_test, y_test, epochs):
    """Train `net` with SGD momentum 0.9, batch 32 (with early stopping on the last n_val
    training samples if `early`); return the number of epochs it ran."""
    if early:
        X_fit, y_fit = X[:-n_val], y[:-n_val]
        stopper = dn.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                             restore_best_weights=True)
        net.compile("softmax_cross_entropy",
                    dn.optimizers.SGD(learning_rate=lr, momentum=0.9))
        history = fit(net, X_fit, y_fit, epochs=epochs, batch_size=32, verbose=0,
                      validation_data=(X[-n_val:], y[-n_val:]), callbacks=[stopper])
        return len(history.epoch)
    r = train(net, dn.optimizers.SGD(learning_rate=lr, momentum=0.9), X, y,
              X_test, y_test, epochs, 32)
    return r.epochs


def _plotter(raw, raw_weights):
    """The figure: train and test accuracy per regularizer, and histograms of |w|."""
    def plot(fig):
        ax1, ax2 = fig.subplots(1, 2)
        labels = list(raw)
        xs = np.arange(len(labels))
        for offset, key, name in ((-0.2, "train", "train"), (0.2, "test", "test")):
            ax1.bar(xs + offset, [np.mean(raw[lab][key]) for lab in labels], 0.4,
                    yerr=[np.std(raw[lab][key]) for lab in labels], label=name)
        lo = min(np.mean(raw[lab]["test"]) for lab in labels)
        ax1.set_ylim(max(0.0, lo - 0.05), 1.005)
        ax1.set_xticks(xs, labels, rotation=40, ha="right", fontsize=7)
        ax1.set_ylabel("accuracy")
        ax1.legend(fontsize=8, title="accuracy (mean ± std)", title_fontsize=7)
        bins = np.logspace(-10, 0.5, 60)
        for lab, w in raw_weights.items():
            ax2.hist(np.maximum(np.abs(w), 1e-10), bins=bins, histtype="step", label=lab)
        ax2.set_xscale("log")
        ax2.set_xlabel("|w| (all kernels, seed 0; 0 drawn at 1e-10)")
        ax2.set_ylabel("count")
        reference_line(ax2, 1e-6, "|w| = 1e-6", vertical=True)
        ax2.legend(fontsize=7)

    return plot
