"""Gradient descent fed by backpropagation vs by finite differences.

"Is gradient descent backpropagation?" No: gradient descent is the update
w <- w - lr * g; backpropagation is one way to compute g (reverse-mode
differentiation, one backward pass for all P partial derivatives). Central
finite differences (descend.numerical_gradients) compute the same g with
2P loss evaluations. This experiment measures both: the seconds per
gradient against P (backprop O(P) per sample, finite differences O(P²)),
the agreement of the two gradients, and the loss trajectory of a few steps
of plain gradient descent driven by each.

Always on digits (64 inputs): finite differences cost O(P²), and with
MNIST's 784 inputs even a 16-unit net has 12,730 parameters.
"""
import time

import numpy as np

import descend as dn
from descend.experiments._common import Result, Table, fit_exponent, fmt, load_data

NAME = "backprop-vs-numerical"
TITLE = "backpropagation vs finite differences as the gradient for gradient descent"


def _net(n_in, hidden, k, seed, cfg):
    net = dn.Sequential([dn.Dense(hidden, activation="tanh"), dn.Dense(k)], input_dim=n_in,
                        dtype="float64", seed=seed, n_threads=cfg.n_threads)
    net.compile("softmax_cross_entropy", "sgd")
    return net


def _flat(grads):
    return np.concatenate([g.ravel() for pair in grads for g in pair if g is not None])


def gd_trajectory(net, X, y, steps, lr, gradient):
    """Losses of `steps` plain GD updates w -= lr * gradient(net); seconds per step."""
    losses, seconds = [], []
    for _ in range(steps):
        losses.append(net.loss(X, y))
        start = time.perf_counter()
        grads = gradient(net)
        seconds.append(time.perf_counter() - start)
        weights = net.get_weights()
        flat_grads = [g for pair in grads for g in pair if g is not None]
        net.set_weights([w - lr * g for w, g in zip(weights, flat_grads)])
    losses.append(net.loss(X, y))
    return np.array(losses), np.array(seconds)


def run(cfg):
    """Run this experiment at cfg's size on cfg's dataset; return its Result (tables, data, plot)."""
    from descend.experiments._common import Config
    data_cfg = Config(size=cfg.size, dataset="digits", seeds=cfg.seeds, dtype="float64",
                      n_threads=cfg.n_threads)
    X_all, _, y_all, _ = load_data("digits", data_cfg)
    n_in, k = X_all.shape[1], len(np.unique(y_all))
    m = cfg.pick(64, 256, 256)
    X, y = X_all[:m], y_all[:m]
    widths = cfg.pick([2, 8, 32], [2, 4, 8, 16, 32, 64], [2, 4, 8, 16, 32, 64, 128, 256])
    eps = 1e-6
    table = Table(
        f"digits, {m} samples, 64-h-10 tanh MLP in float64, one gradient of the mean loss "
        f"over the {m} samples; finite differences: central, eps = {eps:g}",
        ["hidden units", "parameters P", "backprop seconds", "finite-difference seconds",
         "ratio FD / backprop", "loss evaluations (FD)", "max |g_bp - g_fd|",
         "max relative error"])
    ps, t_bp, t_fd = [], [], []
    for h in widths:
        cfg.log(f"{NAME}: width {h}")
        P, tb, tf, abs_err, rel_err = _gradient_costs(_net(n_in, h, k, 0, cfg), X, y, eps, cfg)
        ps.append(P)
        t_bp.append(tb)
        t_fd.append(tf)
        table.add(h, f"{P:,}", fmt(tb, 3), fmt(tf, 3), fmt(tf / tb, 3), f"{2 * P:,}",
                  fmt(abs_err, 2), fmt(rel_err, 2))
    exps = _exponents_table(ps, t_bp, t_fd)

    # the same trajectory with either gradient
    h_small = cfg.pick(4, 8, 16)
    steps = cfg.pick(5, 10, 20)
    lr = 0.5
    traj, trajectories, max_loss_diffs = _descents(X, y, n_in, k, h_small, steps, lr, eps,
                                                  cfg)
    check = dn.check_gradients(_net(n_in, h_small, k, 0, cfg), X, y)
    max_rel_err = [float(c) for c in table.column("max relative error")]

    biggest = len(ps) - 1
    findings = [
        f"the two gradients agree: descend.check_gradients on the 64-{h_small}-10 net gives a "
        f"max relative error of {fmt(check, 2)}; the largest max relative error on the grid "
        f"is {fmt(max(max_rel_err), 2)}",
        f"same descent: over {steps} steps the losses of GD+backprop and GD+finite "
        f"differences differ by at most {fmt(max(max_loss_diffs), 2)}",
        f"different cost: at P = {ps[biggest]:,} one finite-difference gradient took "
        f"{fmt(t_fd[biggest], 3)} s against {fmt(t_bp[biggest], 3)} s for backpropagation "
        f"({fmt(t_fd[biggest] / t_bp[biggest], 3)}x)",
        "so gradient descent is not backpropagation: it is the update rule, and "
        "backpropagation is the cheap way to give it its gradient"]
    return Result(
        name=NAME, title=TITLE, datasets="digits",
        question="Does gradient descent need backpropagation? Feed it finite-difference "
                 "gradients instead and measure the cost and the path.",
        setup=[f"data: the first {m} digits training samples (always digits: finite "
               "differences are O(P²), see the module docstring); float64 so that the "
               "finite differences are accurate",
               "seconds: backprop = fastest of repeated net.gradients calls; finite "
               "differences = one dn.numerical_gradients call (2P calls of net.loss)"],
        tables=[table, exps, traj], plot=_plotter(ps, t_bp, t_fd, trajectories[0], h_small),
        findings=findings,
        net=f"64-h-10 tanh MLPs, h = {min(widths)}..{max(widths)} (right: h = {h_small}), "
            "float64",
        data={"P": ps, "t_backprop": t_bp, "t_numerical": t_fd,
              "max_loss_diff": max_loss_diffs, "check_gradients": check,
              "max_rel_err": max_rel_err})


def _descents(X, y, n_in, k, h_small, steps, lr, eps, cfg):
    """Plain gradient descent from every seed's initialization, fed by backpropagation and
    by finite differences: (the table comparing them, the (backprop, finite-difference)
    loss trajectories, the largest loss difference per seed)."""
    m = len(X)
    traj = Table(
        f"{steps} steps of plain gradient descent (lr {lr}, full batch of {m} samples) from "
        f"the same initialization (seed s), 64-{h_small}-10 tanh MLP in float64",
        ["seed", "parameters P", "initial loss", "final loss (backprop)",
         "final loss (finite differences)", "max |loss_bp - loss_fd| over the steps",
         "max |w_bp - w_fd| at the end", "seconds / step backprop",
         "seconds / step finite differences"])
    trajectories = []
    max_loss_diffs = []
    for seed in range(cfg.seeds):
        cfg.log(f"{NAME}: trajectory seed {seed}")
        net_bp = _net(n_in, h_small, k, seed, cfg)
        net_fd = _net(n_in, h_small, k, seed, cfg)
        l_bp, s_bp = gd_trajectory(net_bp, X, y, steps, lr, lambda n: n.gradients(X, y))
        l_fd, s_fd = gd_trajectory(net_fd, X, y, steps, lr,
                                   lambda n: dn.numerical_gradients(n, X, y, eps=eps))
        w_diff = max(float(np.max(np.abs(a - b)))
                     for a, b in zip(net_bp.get_weights(), net_fd.get_weights()))
        diff = float(np.max(np.abs(l_bp - l_fd)))
        max_loss_diffs.append(diff)
        trajectories.append((l_bp, l_fd))
        traj.add(seed, f"{net_bp.count_params():,}", fmt(l_bp[0], 4), fmt(l_bp[-1], 6),
                 fmt(l_fd[-1], 6), fmt(diff, 2), fmt(w_diff, 2), fmt(np.median(s_bp), 3),
                 fmt(np.median(s_fd), 3))
    return traj, trajectories, max_loss_diffs


def _gradient_costs(net, X, y, eps, cfg):
    """(parameters P, best backprop seconds, finite-difference seconds, max absolute and
    max relative difference of the two gradients) of one net on (X, y)."""
    P = net.count_params()
    net.gradients(X, y)   # warm up
    reps = max(3, int(cfg.pick(5, 20, 20)))
    tb = min(_timed(lambda: net.gradients(X, y)) for _ in range(reps))
    start = time.perf_counter()
    numeric = dn.numerical_gradients(net, X, y, eps=eps)
    tf = time.perf_counter() - start
    g_bp, g_fd = _flat(net.gradients(X, y)), _flat(numeric)
    abs_err = float(np.max(np.abs(g_bp - g_fd)))
    rel_err = abs_err / max(np.max(np.abs(g_bp)), np.max(np.abs(g_fd)))
    return P, tb, tf, abs_err, rel_err


def _exponents_table(ps, t_bp, t_fd):
    """The fitted exponents b of seconds ~ P^b, over all P and over P >= 2,000."""
    upper = [i for i, p in enumerate(ps) if p >= 2000]
    exps = Table("fitted exponents: seconds ~ P^b (least squares on log-log)",
                 ["gradient", "b over all P", "b over P >= 2,000", "theory"])
    exps.add("backpropagation", fmt(fit_exponent(ps, t_bp), 2),
             fmt(fit_exponent([ps[i] for i in upper], [t_bp[i] for i in upper]), 2)
             if len(upper) >= 2 else "-", "1 (one forward and one backward pass)")
    exps.add("finite differences", fmt(fit_exponent(ps, t_fd), 2),
             fmt(fit_exponent([ps[i] for i in upper], [t_fd[i] for i in upper]), 2)
             if len(upper) >= 2 else "-", "2 (2P forward passes of O(P) each)")
    exps.notes.append(
        "A call to net.loss or net.gradients also has a fixed cost (argument checks, "
        "threading setup, Python) that dominates small nets, so the exponents over the "
        "whole grid are below the asymptotic ones; the fit over the larger nets shows the "
        "trend.")
    return exps


def _plotter(ps, t_bp, t_fd, trajectory, h_small):
    """The figure: seconds per gradient against P, and seed 0's loss along the descent
    driven by each gradient."""
    def plot(fig):
        ax1, ax2 = fig.subplots(1, 2)
        ax1.loglog(ps, t_bp, "o-", label="backpropagation")
        ax1.loglog(ps, t_fd, "s-", label="finite differences")
        p = np.array(ps, float)
        ax1.loglog(p, t_fd[-1] * (p / p[-1]) ** 2, "k:", lw=1, label="∝ P²")
        ax1.loglog(p, t_bp[-1] * (p / p[-1]), "k--", lw=1, label="∝ P")
        ax1.set_xlabel("parameters P")
        ax1.set_ylabel("seconds per gradient")
        ax1.set_title("cost of one gradient", fontsize=9)
        from matplotlib.ticker import NullFormatter
        ax1.xaxis.set_minor_formatter(NullFormatter())     # overlapping 2x10^3, 3x10^3, ...
        ax1.legend(fontsize=7)
        l_bp, l_fd = trajectory
        ax2.plot(l_bp, "o-", label="GD + backprop")
        ax2.plot(l_fd, "x--", label="GD + finite differences")
        ax2.set_xlabel("gradient-descent step")
        ax2.set_title(f"the same descent, 64-{h_small}-10 net", fontsize=9)
        ax2.set_ylabel("loss (seed 0)")
        ax2.legend(fontsize=7)

    return plot


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
