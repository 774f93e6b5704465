"""Measured cost of an epoch against batch size, width and depth.

Time: the fastest of a few epochs of fit (fit's own per-epoch timer, the
compiled loop only). Memory, per point:
- "traced": tracemalloc, which sees NumPy's array allocations; every buffer
  descend's epoch loop uses is a NumPy array (the batch copy, z, a and dz
  per layer, gradients, optimizer state, fit's per-epoch rollback snapshot).
  "Training" is what fit holds when training starts plus the highest extra
  allocation during one epoch (a callback reads tracemalloc at
  on_train_begin and on_epoch_end); "peak of fit" also covers fit's input
  checks;
- "activations": computed bytes of the per-batch activation buffers, which
  are what grows with the batch size: batch x (inputs + sum over layers of
  z, a and dz) x itemsize.

The fitted exponent is the least-squares slope of log(measure) against
log(variable). Beside it: the exponent of the exact FLOP count of an epoch
over the same grid, and the asymptotic order.
"""
import tracemalloc

import numpy as np

import descend as dn
from descend.experiments._common import (Result, Table, describe_data, fit, fit_exponent, fmt,
                                         load_data, make_net)

NAME = "complexity"
TITLE = "time and memory per epoch against batch size, width and depth"

# per variable: (the asymptotic orders in words, the time exponent, the memory exponent)
THEORY = {
    "batch size": ("time O(1) per epoch (same FLOPs, fewer and larger GEMMs); "
                   "activation memory O(batch)", 0.0, "1 (activations), 0 (the rest)"),
    "width": ("time O(width²) (hidden-to-hidden GEMMs dominate); "
              "activation memory O(width), parameters, gradients and optimizer state "
              "O(width²)", 2.0, "1 (activations), 2 (parameter-sized buffers)"),
    "depth": ("time O(depth); activation memory O(depth)", 1.0, 1.0),
}


def flops_per_epoch(n, sizes):
    """Multiply-adds x 2 of forward + backward for n samples through `sizes` layers.

    forward x W: 2 n_in n_out per sample and layer; backward dW = x^T dz: the
    same; dX = dz W^T: the same except for the first layer.
    """
    pairs = list(zip(sizes[:-1], sizes[1:]))
    per_sample = sum(2 * a * b * (3 if i > 0 else 2) for i, (a, b) in enumerate(pairs))
    return n * per_sample


def activation_bytes(batch, sizes, itemsize=4):
    """Bytes of the per-batch buffers (inputs, z, a, dz) of a net of these layer sizes."""
    return batch * (sizes[0] + 3 * sum(sizes[1:])) * itemsize


def measure(X, y, hidden, k, batch_size, repeats, cfg):
    """(best seconds per epoch, traced bytes of training, traced peak of the whole fit).

    Training bytes: what fit has allocated when training starts (the epoch
    loop's buffers, optimizer state, encoded targets), plus the highest
    extra allocation during the epoch (shuffled index, rollback snapshot).
    The whole-fit peak also covers fit's input checks before training.
    """
    from descend.callbacks import Callback

    net = make_net(X.shape[1], hidden, k, seed=0, cfg=cfg)
    net.compile("softmax_cross_entropy", dn.optimizers.SGD(learning_rate=0.01, momentum=0.9))
    history = fit(net, X, y, epochs=repeats, batch_size=batch_size, verbose=0)
    best = float(min(history["seconds"]))
    net2 = make_net(X.shape[1], hidden, k, seed=0, cfg=cfg)
    net2.compile("softmax_cross_entropy", dn.optimizers.SGD(learning_rate=0.01, momentum=0.9))
    marks = {}

    class Memory(Callback):
        def on_train_begin(self, logs=None):
            current, peak = tracemalloc.get_traced_memory()
            marks["allocated"], marks["setup_peak"] = current - marks["base"], peak - marks["base"]
            tracemalloc.reset_peak()
            marks["start"] = current

        def on_epoch_end(self, epoch, logs=None):
            marks["epoch_peak"] = tracemalloc.get_traced_memory()[1] - marks["start"]

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        marks["base"] = tracemalloc.get_traced_memory()[0]
        fit(net2, X, y, epochs=1, batch_size=batch_size, verbose=0, callbacks=[Memory()])
    finally:
        tracemalloc.stop()
    training = marks["allocated"] + marks["epoch_peak"]
    return best, training, max(marks["setup_peak"], training)


def run(cfg):
    """Run this experiment at cfg's size on cfg's dataset; return its Result (tables, data, plot)."""
    mnist = cfg.dataset == "mnist"
    n_train = cfg.pick(500, 5000 if mnist else None, 10000 if mnist else None)
    X, X_test, y, _ = load_data(cfg.dataset, cfg, n_train=n_train)
    n, d = X.shape
    k = len(np.unique(y))
    repeats = cfg.pick(2, 3, 3)
    base_width, base_depth, base_batch = 128, 2, 64
    grids = {
        "batch size": cfg.pick([4, 64, 512], [1, 4, 16, 64, 256, 1024],
                               [1, 4, 16, 64, 256, 1024, 4096 if mnist else 1347]),
        "width": cfg.pick([32, 128, 256], [32, 64, 128, 256, 512],
                          [32, 64, 128, 256, 512, 1024]),
        "depth": cfg.pick([1, 2, 4, 8], [1, 2, 4, 8, 16], [1, 2, 4, 8, 16, 32]),
    }
    rows = {}
    detail = Table("every measured point", ["variable", "value", "hidden layers",
                                            "seconds / epoch", "samples / s",
                                            "GFLOP / s", "traced training MB",
                                            "traced peak of fit MB",
                                            "activation buffers MB", "parameters"])
    for var, grid in grids.items():
        rows[var] = _measure_variable(X, y, k, var, grid, (base_width, base_depth, base_batch),
                                      repeats, detail, cfg)

    table = Table(
        f"{cfg.dataset}: {n} training samples, {d} inputs, {k} outputs, relu, SGD momentum; "
        f"base point: {base_depth} hidden layers of {base_width}, batch {base_batch}; "
        f"time = fastest of {repeats} epochs, {cfg.n_threads} thread(s)",
        ["variable", "grid", "time exponent (fitted)", "FLOP-count exponent (same grid)",
         "time, asymptotic theory", "traced training-memory exponent",
         "activation-memory exponent",
         "memory, asymptotic theory"])
    for var, r in rows.items():
        text, t_exp, m_exp = THEORY[var]
        table.add(var, ", ".join(map(str, r["x"])), fmt(fit_exponent(r["x"], r["seconds"]), 2),
                  fmt(fit_exponent(r["x"], r["flops"]), 2) if var != "batch size" else "0",
                  fmt(t_exp, 2) + f" ({text.split(';')[0]})",
                  fmt(fit_exponent(r["x"], r["peak"]), 2),
                  fmt(fit_exponent(r["x"], r["activations"]), 2),
                  m_exp if isinstance(m_exp, str) else fmt(m_exp, 2))
    table.notes.append(
        "Memory is measured by tracemalloc (NumPy allocations; every buffer of descend's "
        "epoch loop is a NumPy array): 'training' = what fit has allocated when training "
        "starts (epoch-loop buffers, gradients, optimizer state, encoded targets) plus the "
        "highest extra allocation during one epoch (shuffled index, rollback snapshot); "
        "'peak of fit' also covers fit's input checks before training. It is also computed "
        "as the activation-buffer size batch x (inputs + 3 x sum of layer widths) x 4 bytes. "
        "The traced training memory also holds sizes that do not depend on the variable "
        "(the batch-independent buffers scale with the parameters, the index with the "
        "samples), so its exponent lies below the activations'. For width, the time exponent "
        "over a grid that starts "
        "small mixes the O(width) input and output layers with the O(width²) hidden ones; "
        "the FLOP-count exponent over the same grid is the fair comparison.")

    return Result(
        name=NAME, title=TITLE,
        question="How do the time and the memory of an epoch grow with the batch size, the "
                 "width and the depth, measured, against the textbook orders?",
        setup=[describe_data(cfg.dataset, X, X_test)],
        tables=[table, detail], plot=_plotter(rows), data=rows, figsize=(8, 5),
        net=f"relu MLPs around {base_depth} hidden layers of {base_width}, batch "
            f"{base_batch}, one varied per column")


def _measure_variable(X, y, k, var, grid, base, repeats, detail, cfg):
    """Measure every point of one variable's grid, the others at their base (width, depth,
    batch); add a row per point to the `detail` table; return the variable's series."""
    n, d = X.shape
    base_width, base_depth, base_batch = base
    xs, secs, peaks, fit_peaks, acts, flops = [], [], [], [], [], []
    for value in grid:
        width, depth, batch = base_width, base_depth, base_batch
        if var == "batch size":
            batch = min(value, n)
        elif var == "width":
            width = value
        else:
            depth = value
        hidden = (width,) * depth
        sizes = [d, *hidden, k]
        cfg.log(f"{NAME}: {var} = {value}")
        seconds, peak, fit_peak = measure(X, y, hidden, k, batch, repeats, cfg)
        fl = flops_per_epoch(n, sizes)
        act = activation_bytes(batch, sizes, np.dtype(cfg.dtype).itemsize)
        params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        xs.append(value)
        secs.append(seconds)
        peaks.append(peak)
        fit_peaks.append(fit_peak)
        acts.append(act)
        flops.append(fl)
        detail.add(var, value, f"{depth} x {width}", fmt(seconds, 3),
                   fmt(n / seconds, 3), fmt(fl / seconds / 1e9, 3), fmt(peak / 1e6, 3),
                   fmt(fit_peak / 1e6, 3), fmt(act / 1e6, 3), f"{params:,}")
    return {"x": xs, "seconds": secs, "peak": peaks, "fit_peak": fit_peaks,
            "activations": acts, "flops": flops}


def _plotter(rows):
    """The figure: per variable (a column), seconds per epoch with the scaled FLOP count
    on top, the traced and computed memory below."""
    def plot(fig):
        from matplotlib.ticker import NullFormatter
        axes = fig.subplots(2, 3)
        for j, (var, r) in enumerate(rows.items()):
            top, bottom = axes[0, j], axes[1, j]
            x = np.array(r["x"], float)
            top.plot(x, r["seconds"], "o-", label="measured")
            scale = r["seconds"][-1] / r["flops"][-1]
            top.plot(x, np.array(r["flops"]) * scale, "k:", lw=1,
                     label="FLOP count (scaled to the last point)")
            bottom.plot(x, np.array(r["peak"]) / 1e6, "s-", color="tab:orange", ms=4,
                        label="traced, training")
            bottom.plot(x, np.array(r["fit_peak"]) / 1e6, "v:", color="tab:red", ms=3,
                        label="traced, peak of fit")
            bottom.plot(x, np.array(r["activations"]) / 1e6, "^--", color="tab:green", ms=4,
                        label="activation buffers")
            for ax in (top, bottom):
                ax.set_xscale("log", base=2)
                ax.set_yscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())
                ax.yaxis.set_minor_formatter(NullFormatter())
                ax.tick_params(labelsize=7)
            bottom.set_xlabel(var)
            if j == 0:
                top.set_ylabel("seconds / epoch")
                bottom.set_ylabel("MB")
                top.legend(fontsize=6)
                bottom.legend(fontsize=6)

    return plot
