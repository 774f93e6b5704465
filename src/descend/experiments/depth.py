"""Depth: 1 to 10 hidden relu layers, with He initialization and without it.

"Without" is a fixed-scale normal initialization of every layer, as in the
pre-2010 practice: stddev 0.05 (signals and gradients shrink layer by layer)
and stddev 1.0 (they grow). He normal (stddev sqrt(2 / fan_in)) keeps the
variance of relu activations constant across layers (He et al. 2015).
"""
import numpy as np

import descend as dn
from descend.experiments._common import (TARGET_LOSS, Result, Table, describe_data, fmt_pm,
                                         make_net, reached_cell, standard_data, train)

NAME = "depth"
TITLE = "depth, with and without He initialization"

SCHEMES = (
    ("He normal", None),   # Dense's default for relu: he_normal (output layer glorot)
    ("N(0, 0.05²)", {"name": "random_normal", "stddev": 0.05}),
    ("N(0, 1)", {"name": "random_normal", "stddev": 1.0}),
)


def _initializer(spec):
    if spec is None:
        return None
    return dn.initializers.get(dict(spec))


def run(cfg):
    """Run this experiment at cfg's size on cfg's dataset; return its Result (tables, data, plot)."""
    mnist = cfg.dataset == "mnist"
    X, X_test, y, y_test, k = standard_data(cfg)
    width = 128 if mnist else 64
    depths = cfg.pick([1, 10], [1, 2, 3, 4, 6, 8, 10],
                      [1, 2, 3, 4, 6, 8, 10] if mnist else list(range(1, 11)))
    epochs = cfg.pick(2, 10, 8 if mnist else 20)
    lr = 0.01
    target = TARGET_LOSS[cfg.dataset]
    X_grad, y_grad = X[:1000], y[:1000]
    columns, grad_columns = ["hidden layers"], ["hidden layers"]
    for label, _ in SCHEMES:
        columns += [f"{label}: epochs to target", f"{label}: test accuracy"]
        grad_columns += [f"{label}: ‖dW₁‖", f"{label}: ‖dW₁‖ / ‖dW_out‖"]
    table = Table(f"{cfg.dataset}: relu layers of {width} units, SGD lr {lr} momentum 0.9, "
                  f"batch 32, {epochs} epochs; target: training loss <= {target}", columns)
    grad_table = Table("gradient of the first layer at initialization: its norm, and its ratio "
                       "to the output layer's", grad_columns)
    raw = {label: {"depth": [], "ratio": [], "first_norm": [], "accuracy": [], "status": [],
                   "epochs": []}
           for label, _ in SCHEMES}
    for depth in depths:
        row, grad_row = [depth], [depth]
        for label, spec in SCHEMES:
            runs, ratios, firsts = [], [], []
            for seed in range(cfg.seeds):
                cfg.log(f"{NAME}: {depth} layers, {label}, seed {seed}")
                net = make_net(X.shape[1], (width,) * depth, k, activation="relu", seed=seed,
                               cfg=cfg, kernel_initializer=_initializer(spec))
                net.compile("softmax_cross_entropy", "sgd")
                first, ratio = _first_layer_gradient(net, X_grad, y_grad)
                firsts.append(first)
                ratios.append(ratio)
                runs.append(train(net, dn.optimizers.SGD(learning_rate=lr, momentum=0.9),
                                  X, y, X_test, y_test, epochs, 32))
            to_target = [r.first_epoch("train_loss", target) if not r.diverged else None
                         for r in runs]
            accs = [r.final["test_accuracy"] if not r.diverged else None for r in runs]
            row += _scheme_cells(runs, to_target, accs)
            grad_row += [fmt_pm(firsts, 2), fmt_pm(ratios, 2)]
            d = raw[label]
            d["depth"].append(depth)
            d["ratio"].append(ratios)
            d["first_norm"].append(firsts)
            d["accuracy"].append(accs)
            d["status"].append([r.status for r in runs])
            d["epochs"].append(to_target)
        table.add(*row)
        grad_table.add(*grad_row)

    return Result(
        name=NAME, title=TITLE,
        question="How do convergence, accuracy and gradient flow change with the number of "
                 "hidden layers, with He initialization and with naive fixed-scale "
                 "initializations?",
        setup=[describe_data(cfg.dataset, X, X_test),
               "He normal: hidden layers he_normal, output layer glorot_uniform (descend's "
               "defaults for relu); N(0, s²): every layer, output included, drawn from a "
               "normal with stddev s; biases zero",
               "‖dW₁‖ / ‖dW_out‖: ratio of the first to the last layer's kernel-gradient norm "
               f"at initialization (backpropagation over the first {len(X_grad)} training "
               "samples)",
               "a run counts as diverged if fit raised DivergenceError or its loss exploded "
               "(see learning-rate)"],
        tables=[table, grad_table], plot=_plotter(raw, epochs), data=raw,
        net=f"{X.shape[1]}-{width}x({min(depths)}..{max(depths)})-{k} relu MLPs "
            f"({min(depths)} to {max(depths)} hidden layers of {width}), SGD momentum 0.9")


def _first_layer_gradient(net, X, y):
    """(‖dW₁‖, ‖dW₁‖ / ‖dW_out‖) of net's kernel gradients on (X, y); inf and nan when the
    forward pass overflows."""
    try:
        grads = net.gradients(X, y)
        norms = [float(np.linalg.norm(dw)) for dw, _ in grads]
    except FloatingPointError:   # the forward pass overflowed
        norms = [np.inf, np.inf]
    return norms[0], norms[0] / norms[-1] if 0 < norms[-1] < np.inf else np.nan


def _scheme_cells(runs, to_target, accs):
    """The two table cells of one initialization at one depth: epochs to the target (how
    many reached it, how many diverged) and test accuracy."""
    n_div = sum(r.diverged for r in runs)
    cell = reached_cell(to_target, len(runs))
    if n_div:
        cell += f"; diverged {n_div}/{len(runs)}"
    acc_cell = fmt_pm(accs, 3, missing="diverged", count=False)
    if 0 < n_div < len(runs):
        acc_cell += f" (of {len(runs) - n_div} not diverged)"
    return [cell, acc_cell]


def _plotter(raw, epochs):
    """The figure: test accuracy, and the first layer's gradient norm, against depth."""
    def plot(fig):
        ax1, ax2 = fig.subplots(1, 2)
        for label, _ in SCHEMES:
            d = raw[label]
            acc = [np.mean([v for v in a if v is not None]) if any(v is not None for v in a)
                   else np.nan for a in d["accuracy"]]
            first = [np.exp(np.mean(np.log(np.maximum(np.array(r, float), 1e-300))))
                     for r in d["first_norm"]]
            ax1.plot(d["depth"], acc, "o-", label=label)
            ax2.plot(d["depth"], first, "o-", label=label)
        ax1.set_xlabel("hidden layers")
        ax1.set_ylabel(f"test accuracy after {epochs} epochs")
        ax1.legend(fontsize=8, title="initialization", title_fontsize=8)
        ax1.set_title("mean over seeds; missing points: all seeds diverged", fontsize=9)
        ax2.set_yscale("log")
        ax2.set_xlabel("hidden layers")
        ax2.set_ylabel("‖dW₁‖ at init (geometric mean)")

    return plot
