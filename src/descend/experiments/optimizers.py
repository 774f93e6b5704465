"""Optimizers: gradient descent and its descendants against L-BFGS.

All gradient-descent optimizers run inside fit's compiled epoch loop on
mini-batches of 32. L-BFGS (scipy.optimize.minimize(method="L-BFGS-B",
jac=True)) is the non-gradient-descent reference: a quasi-Newton method on
the full-batch loss over the flattened parameters, evaluated with
net.loss / net.gradients after set_weights, so each of its function
evaluations is one full pass over the training data (two forward passes and
one backward pass through the public API).
"""
import time

import numpy as np

import descend as dn
from descend.experiments._common import (TARGET_LOSS, Result, Table, describe_data, fmt_pm,
                                         make_net, reached_cell, reference_line, standard_data,
                                         train)

NAME = "optimizers"
TITLE = "optimizers: gradient descent, momentum, Nesterov, Adagrad, RMSprop, Adam, AdamW, L-BFGS"


def _optimizers():
    o = dn.optimizers
    return [
        ("gradient descent", "SGD(lr=0.1)", lambda: o.SGD(learning_rate=0.1)),
        ("momentum", "SGD(lr=0.01, momentum=0.9)",
         lambda: o.SGD(learning_rate=0.01, momentum=0.9)),
        ("Nesterov", "SGD(lr=0.01, momentum=0.9, nesterov=True)",
         lambda: o.SGD(learning_rate=0.01, momentum=0.9, nesterov=True)),
        ("Adagrad", "Adagrad(lr=0.05)", lambda: o.Adagrad(learning_rate=0.05)),
        ("RMSprop", "RMSprop(lr=0.001)", lambda: o.RMSprop(learning_rate=0.001)),
        ("Adam", "Adam(lr=0.001)", lambda: o.Adam(learning_rate=0.001)),
        ("AdamW", "AdamW(lr=0.001, weight_decay=0.01)",
         lambda: o.AdamW(learning_rate=0.001, weight_decay=0.01)),
    ]


def lbfgs(net, X, y, X_eval, y_eval, max_evaluations, target):
    """Minimize net.loss(X, y) with scipy's L-BFGS-B; returns a record dict.

    Every function evaluation is logged: wall seconds since the start, the
    loss on (X_eval, y_eval) is not recomputed (X is the evaluation set when
    they are the same), the full-batch loss returned to scipy is recorded.
    """
    from scipy.optimize import minimize

    shapes = [w.shape for w in net.get_weights()]
    sizes = [int(np.prod(s)) for s in shapes]
    splits = np.cumsum(sizes)[:-1]

    def unflatten(theta):
        return [part.reshape(shape) for part, shape in zip(np.split(theta, splits), shapes)]

    log = {"seconds": [], "loss": []}
    start = time.perf_counter()

    def fun(theta):
        net.set_weights(unflatten(theta))
        loss = net.loss(X, y)
        grads = net.gradients(X, y)
        flat = np.concatenate([g.ravel() for pair in grads for g in pair if g is not None])
        log["seconds"].append(time.perf_counter() - start)
        log["loss"].append(float(loss))
        return float(loss), flat.astype(np.float64)

    theta0 = np.concatenate([w.ravel() for w in net.get_weights()]).astype(np.float64)
    result = minimize(fun, theta0, jac=True, method="L-BFGS-B",
                      options={"maxfun": max_evaluations, "maxiter": max_evaluations,
                               "gtol": 1e-10, "ftol": 1e-12})
    net.set_weights(unflatten(result.x))
    total = time.perf_counter() - start
    reached = next((i for i, v in enumerate(log["loss"]) if v <= target), None)
    return {"evaluations": len(log["loss"]), "iterations": int(result.nit),
            "seconds": total, "message": str(result.message),
            "to_target": None if reached is None else reached + 1,
            "seconds_to_target": None if reached is None else log["seconds"][reached],
            "log": log}


def run(cfg):
    """Run this experiment at cfg's size on cfg's dataset; return its Result (tables, data, plot)."""
    mnist = cfg.dataset == "mnist"
    X, X_test, y, y_test, k = standard_data(cfg)
    hidden = (128,) if mnist else (64,)
    epochs = cfg.pick(4, 30, 20 if mnist else 40)
    max_evaluations = cfg.pick(60, 400, 300 if mnist else 600)
    target = TARGET_LOSS[cfg.dataset]
    table = Table(
        f"{cfg.dataset}, {X.shape[1]}-{hidden[0]}-{k} relu MLP; gradient-descent optimizers: "
        f"batch 32, {epochs} epochs; L-BFGS: full batch, at most {max_evaluations} function "
        f"evaluations; target: training loss <= {target}",
        ["optimizer", "settings", "passes over the data to target", "seconds to target",
         "seconds / pass", "final train loss", "final test accuracy"])
    curves, raw = {}, {}
    for label, settings, make in _optimizers():
        runs = []
        for seed in range(cfg.seeds):
            cfg.log(f"{NAME}: {label} seed {seed}")
            net = make_net(X.shape[1], hidden, k, seed=seed, cfg=cfg)
            runs.append(train(net, make(), X, y, X_test, y_test, epochs, 32,
                              eval_rows=len(X)))
        to_target = [r.first_epoch("train_loss", target) for r in runs]
        status = {r.status for r in runs if r.diverged}
        table.add(label, settings,
                  reached_cell(to_target, len(runs))
                  + (f"; {', '.join(status)}" if status else ""),
                  fmt_pm([r.seconds_to(e) for r, e in zip(runs, to_target)], 3,
                         missing="not reached", count=False),
                  fmt_pm([np.median(r.seconds) for r in runs], 3),
                  fmt_pm([r.final["train_loss"] for r in runs], 3),
                  fmt_pm([r.final["test_accuracy"] for r in runs], 3))
        curves[label] = [(np.cumsum(r.seconds), r.train_loss) for r in runs]
        raw[label] = {"to_target": to_target, "final_loss": [r.final["train_loss"]
                                                             for r in runs]}
    _add_lbfgs(table, curves, raw, X, y, X_test, y_test, hidden, k, max_evaluations,
               target, cfg)
    table.notes.append(
        "A pass is one epoch for the gradient-descent optimizers (len(X)/32 updates) and one "
        "function evaluation (loss and gradient on all training samples) for L-BFGS. "
        "Seconds: fit's epoch times for the gradient-descent optimizers (compiled loop); "
        "wall time since the start of minimize for L-BFGS (it includes scipy and "
        "set_weights; each evaluation also runs one extra forward pass, net.loss before "
        "net.gradients). L-BFGS made "
        f"{fmt_pm(raw['L-BFGS']['iterations'], 3)} iterations with "
        f"{fmt_pm(raw['L-BFGS']['evaluations'], 3)} evaluations; scipy stopped with: "
        + "; ".join(raw["L-BFGS"]["messages"])
        + ". The training loss is over all training samples.")
    return Result(
        net=f"{X.shape[1]}-{hidden[0]}-{k} relu MLP",
        name=NAME, title=TITLE,
        question="How many passes over the data and how many seconds does each optimizer "
                 "need to reach a target training loss, and where does it end?",
        setup=[describe_data(cfg.dataset, X, X_test),
               "learning rates: the usual defaults (Adam family 1e-3) or, for plain and "
               "momentum SGD, rates from the learning-rate experiment's converging range; "
               "no per-optimizer tuning"],
        tables=[table], plot=_plotter(curves, target), data=raw)


def _add_lbfgs(table, curves, raw, X, y, X_test, y_test, hidden, k, max_evaluations, target,
               cfg):
    """Run L-BFGS from every seed's initialization; add its row to the table, its loss
    curves to `curves` and its numbers to `raw`."""
    records, finals, accs = [], [], []
    for seed in range(cfg.seeds):
        cfg.log(f"{NAME}: L-BFGS seed {seed}")
        net = make_net(X.shape[1], hidden, k, seed=seed, cfg=cfg)
        net.compile("softmax_cross_entropy", "sgd")
        rec = lbfgs(net, X, y, X, y, max_evaluations, target)
        records.append(rec)
        finals.append(net.evaluate(X, y)["loss"])
        accs.append(net.evaluate(X_test, y_test)["accuracy"])
    messages = sorted({r["message"] for r in records})
    to_target = [r["to_target"] for r in records]
    table.add("L-BFGS", "scipy L-BFGS-B, full batch, float32 net, float64 optimizer state",
              reached_cell(to_target, len(records)),
              fmt_pm([r["seconds_to_target"] for r in records], 3, missing="not reached",
                     count=False),
              fmt_pm([r["seconds"] / r["evaluations"] for r in records], 3),
              fmt_pm(finals, 3), fmt_pm(accs, 3))
    curves["L-BFGS"] = [(np.array(r["log"]["seconds"]), r["log"]["loss"]) for r in records]
    raw["L-BFGS"] = {"to_target": to_target, "final_loss": finals, "messages": messages,
                     "evaluations": [r["evaluations"] for r in records],
                     "iterations": [r["iterations"] for r in records]}


def _plotter(curves, target):
    """The figure: seed 0's training loss against passes over the data and against seconds."""
    def plot(fig):
        ax1, ax2 = fig.subplots(1, 2)
        for label, runs in curves.items():
            t, loss = runs[0]
            style = "k--" if label == "L-BFGS" else "-"
            ax1.plot(np.arange(1, len(loss) + 1), loss, style, label=label, lw=1.2)
            ax2.plot(t, loss, style, label=label, lw=1.2)
        for ax, xl in ((ax1, "passes over the training data"), (ax2, "seconds")):
            ax.set_xscale("log")
            ax.set_yscale("log")
            reference_line(ax, target, f"target: training loss {target}")
            ax.set_xlabel(xl)
        ax1.set_ylabel("training loss (seed 0)")
        ax2.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))

    return plot
