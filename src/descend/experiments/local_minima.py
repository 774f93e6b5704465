"""Local minima and plateaus: XOR and two spirals from many random starts.

Each problem is trained by full-batch descent from N random initializations
(seeds 0..N-1) per initialization scheme and learning-rate schedule; a run
succeeds if it ends with zero training error (every training point
classified correctly). Failures are characterized by their final loss: a
run stuck near ln 2 = 0.693 (XOR) is on a plateau where the output ignores
the input, anything lower is a worse-than-global minimum or an unfinished
descent.

Two spirals: the classic set of Lang & Witbrock (1988), generated here:
97 points per spiral, point i at angle i·π/16 and radius 6.5·(104 - i)/104,
the second spiral the point reflection of the first; inputs divided by 6.5.
"""
import numpy as np

import descend as dn
from descend.experiments._common import Result, Table, fit, fmt_pm, marker_legend

NAME = "local-minima"
TITLE = "local minima: XOR and two spirals from random initializations"


def xor():
    """The XOR problem: X (4, 2) float64 at the corners of the unit square, y (4,) labels 0/1."""
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    return X, np.array([0, 1, 1, 0])


def two_spirals(n_per_class=97):
    """Two interleaved spirals of n_per_class points each (Lang & Witbrock 1988):
    X (2 n_per_class, 2) float64, y (2 n_per_class,) labels 0/1."""
    i = np.arange(n_per_class)
    phi = i * np.pi / 16
    r = 6.5 * (104 - i) / 104
    arm = np.stack([r * np.sin(phi), r * np.cos(phi)], axis=1)
    X = (np.concatenate([arm, -arm]) / 6.5).astype(np.float32)
    y = np.concatenate([np.zeros(n_per_class, int), np.ones(n_per_class, int)])
    return X, y


SCHEMES = (("glorot_uniform", "glorot_uniform"), ("he_normal", "he_normal"),
           ("N(0, 0.05²)", {"name": "random_normal", "stddev": 0.05}))


def _problems(cfg):
    # name, data, hidden sizes, optimizer factory(lr or schedule), base lr, epochs, inits
    return [
        ("XOR", xor(), (2,), lambda lr: dn.optimizers.SGD(learning_rate=lr, momentum=0.9),
         0.5, "SGD momentum 0.9", cfg.pick(300, 1000, 3000), cfg.pick(6, 20, 20)),
        ("two spirals", two_spirals(cfg.pick(30, 97, 97)), (32, 32),
         lambda lr: dn.optimizers.Adam(learning_rate=lr), 0.01, "Adam",
         cfg.pick(200, 1500, 3000), cfg.pick(3, 8, 20)),
    ]


def run(cfg):
    """Run this experiment at cfg's size on cfg's dataset; return its Result (tables, data, plot)."""
    table = Table("fraction of random initializations that reach zero training error",
                  ["problem", "net", "init", "schedule", "epochs", "successes",
                   "epochs to zero error (successes)", "final loss of failures",
                   "final training accuracy"])
    raw = {}
    examples = {}
    for (name, (X, y), hidden, make_opt, lr, opt_name, epochs, n_inits) in _problems(cfg):
        for scheme, init in SCHEMES:
            for schedule in ("constant", "cosine"):
                successes, first, fail_loss, accs = 0, [], [], []
                for seed in range(n_inits):
                    cfg.log(f"{NAME}: {name} {scheme} {schedule} seed {seed}")
                    init_obj = dn.initializers.get(dict(init) if isinstance(init, dict)
                                                   else init)
                    layers = [dn.Dense(h, activation="tanh", kernel_initializer=init_obj)
                              for h in hidden]
                    layers.append(dn.Dense(1, activation="sigmoid", kernel_initializer=init_obj))
                    net = dn.Sequential(layers, input_dim=2, seed=seed, n_threads=cfg.n_threads)
                    rate = lr if schedule == "constant" else dn.schedules.CosineAnnealing(
                        lr, T_max=epochs)
                    net.compile("binary_cross_entropy", make_opt(rate))
                    try:
                        history = fit(net, X, y, epochs=epochs, batch_size=None, verbose=0)
                    except dn.DivergenceError:
                        fail_loss.append(np.nan)
                        accs.append(np.nan)
                        continue
                    scores = net.evaluate(X, y)
                    accs.append(scores["accuracy"])
                    if scores["accuracy"] == 1.0:
                        successes += 1
                        # full batch: history accuracy is that of the weights before the
                        # epoch's update, so the first 1.0 at index e means e updates
                        hits = [e for e, a in enumerate(history["accuracy"]) if a == 1.0]
                        first.append(hits[0] if hits else epochs)
                    else:
                        fail_loss.append(scores["loss"])
                    if seed == 0 and schedule == "constant":
                        examples[(name, scheme)] = net
                table.add(name, "2-" + "-".join(map(str, hidden)) + "-1 tanh", scheme,
                          f"{opt_name}, lr {lr:g}" + (" constant" if schedule == "constant"
                                                      else " cosine to 0"),
                          epochs, f"{successes}/{n_inits} = {successes / n_inits:.2f}",
                          fmt_pm(first, 3, count=False) if first else "-",
                          fmt_pm(fail_loss, 3, count=False) if fail_loss else "-",
                          fmt_pm(accs, 3))
                raw[(name, scheme, schedule)] = {"success": successes / n_inits,
                                                 "n": n_inits, "fail_loss": fail_loss}

    spirals = two_spirals(cfg.pick(30, 97, 97))
    example = examples.get(("two spirals", "he_normal"))

    def plot(fig):
        ax1, ax2 = fig.subplots(1, 2)
        _plot_success(ax1, raw)
        _plot_regions(ax2, example, *spirals)

    return Result(
        name=NAME, title=TITLE, datasets="XOR, two spirals",
        question="From how many random starting points does gradient descent find a "
                 "zero-error solution of XOR and of the two spirals?",
        setup=["data: XOR (4 points) and two spirals (generated; --dataset does not apply)",
               "full-batch training (batch_size=None), binary cross-entropy on a sigmoid "
               "output; the init scheme applies to every layer; seeds 0..N-1 draw the "
               "initial weights (N = the 'successes' denominator)",
               "'cosine to 0': CosineAnnealing(lr, T_max=epochs)"],
        tables=[table], plot=plot, findings=_findings(raw),
        net="2-2-1 and 2-32-32-1 tanh MLPs with a sigmoid output",
        data={"raw": {" / ".join(k): v for k, v in raw.items()}})


def _plot_success(ax, raw):
    """Bars: the fraction of initializations reaching zero error, per cell."""
    from matplotlib.patches import Patch
    labels, values = [], []
    for (name, scheme, schedule), r in raw.items():
        labels.append(f"{'XOR' if name == 'XOR' else 'spirals'} {scheme.split('_')[0]} "
                      f"{schedule}")
        values.append(r["success"])
    ax.barh(np.arange(len(labels)), values, color=[
        "tab:blue" if lab.startswith("XOR") else "tab:orange" for lab in labels])
    ax.set_yticks(np.arange(len(labels)), labels, fontsize=7)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("fraction reaching zero training error")
    ax.legend(handles=[Patch(color="tab:blue", label="XOR, 2-2-1 net"),
                       Patch(color="tab:orange", label="two spirals, 2-32-32-1 net")],
              fontsize=7, loc="lower right")


def _plot_regions(ax, net, X, y):
    """The two spirals and the decision regions of ``net`` (if it trained)."""
    from matplotlib import colormaps
    if net is not None:
        g = np.linspace(-1.1, 1.1, 120, dtype=np.float32)
        gx, gy = np.meshgrid(g, g)
        p = net.predict(np.stack([gx.ravel(), gy.ravel()], 1)).reshape(gx.shape)
        ax.contourf(gx, gy, p, levels=[0, 0.5, 1], colors=["#cde", "#fdc"])
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap="coolwarm", s=8)
    coolwarm = colormaps["coolwarm"]
    marker_legend(ax, [("o", coolwarm(0.0), "class 0"), ("o", coolwarm(1.0), "class 1"),
                       ("s", "#cde", "predicted 0"), ("s", "#fdc", "predicted 1")],
                  fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_aspect("equal")
    ax.set_title("two spirals, he_normal, seed 0: decision regions", fontsize=9)


def _findings(raw):
    findings = []
    for name in ("XOR", "two spirals"):
        cells = {k: v for k, v in raw.items() if k[0] == name}
        best = max(cells.items(), key=lambda kv: kv[1]["success"])
        worst = min(cells.items(), key=lambda kv: kv[1]["success"])
        findings.append(f"{name}: from {worst[1]['success']:.0%} ({worst[0][1]}, "
                        f"{worst[0][2]}) to {best[1]['success']:.0%} ({best[0][1]}, "
                        f"{best[0][2]}) of the random starts reach zero training error")
    losses = [v for k, r in raw.items() if k[0] == "XOR" for v in r["fail_loss"]
              if np.isfinite(v)]
    if losses:
        half = sum(abs(v - np.log(2) / 2) < 0.02 for v in losses)
        flat = sum(abs(v - np.log(2)) < 0.02 for v in losses)
        findings.append(
            f"XOR failures: {half} of {len(losses)} end at a loss of ln(2)/2 = 0.347 (two "
            f"points fitted, two left at output 0.5: the classic local minimum of the "
            f"2-2-1 net), {flat} at ln 2 = 0.693 (output 0.5 everywhere: the flat start "
            f"of a small initialization never left)")
    return findings
