"""Activation functions: kernel cost, gradient flow in a deep net, accuracy.

Three measurements per activation:
1. the compiled elementwise kernels (``descend._dense.activation_forward_py``
   and ``activation_derivative_py``, the same inline functions the Dense
   kernels use) timed on a large float32 array: nanoseconds per element;
2. the Frobenius norm of every layer's kernel gradient (backpropagation,
   ``Sequential.gradients`` on a fixed set of training samples) in a net of
   10 hidden layers, at initialization and after one epoch: vanishing
   gradients show as a first-layer norm far below the last layer's;
3. the test accuracy of that deep net after a few epochs of training.
"""
import numpy as np

import descend as dn
from descend import _dense
from descend.experiments._common import (Result, Table, best_time, describe_data, fmt,
                                         fmt_pm, make_net, standard_data, train)

NAME = "activations"
TITLE = "activation functions: kernel time, vanishing/exploding gradients, accuracy"
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu")


def kernel_times(n_elements, repeats, seed=0):
    """{activation: (forward ns/element, derivative ns/element)}, float32."""
    rng = np.random.default_rng(seed)
    side = int(np.sqrt(n_elements))
    z = (2.0 * rng.standard_normal((side, side))).astype(np.float32)
    a = np.empty_like(z)
    d = np.empty_like(z)
    times = {}
    for name in ("identity",) + ACTIVATIONS:
        code = dn.activations.ACTIVATIONS[name]
        alpha = dn.activations.DEFAULT_ALPHA.get(name, 0.0)
        _dense.activation_forward_py(z, a, code, alpha)   # warm up, and a = f(z)
        fwd = best_time(lambda: _dense.activation_forward_py(z, a, code, alpha), repeats)
        bwd = best_time(lambda: _dense.activation_derivative_py(z, a, d, code, alpha), repeats)
        times[name] = (fwd / z.size * 1e9, bwd / z.size * 1e9)
    return times, z.size


def layer_norms(net, X, y):
    """Frobenius norm of each Dense layer's kernel gradient, first layer first."""
    return [float(np.linalg.norm(dw)) for dw, _ in net.gradients(X, y)]


def run(cfg):
    """Run this experiment at cfg's size on cfg's dataset; return its Result (tables, data, plot)."""
    mnist = cfg.dataset == "mnist"
    X, X_test, y, y_test, k = standard_data(cfg)
    width = 128 if mnist else 64
    depth = 10
    epochs = cfg.pick(1, 5, 10)
    lr = 0.01
    X_grad, y_grad = X[:1000], y[:1000]

    n_elements = cfg.pick(2 ** 18, 2 ** 22, 2 ** 22)
    times, n_el = kernel_times(n_elements, cfg.pick(2, 5, 7))

    norms_init, norms_one, accs, losses = {}, {}, {}, {}
    for act in ACTIVATIONS:
        norms_init[act], norms_one[act], accs[act], losses[act] = [], [], [], []
        for seed in range(cfg.seeds):
            cfg.log(f"{NAME}: {act} seed {seed}")
            net = make_net(X.shape[1], (width,) * depth, k, activation=act, seed=seed, cfg=cfg)
            net.compile("softmax_cross_entropy", "sgd")
            norms_init[act].append(layer_norms(net, X_grad, y_grad))
            r, one_epoch = _train_tracking_first_epoch(net, lr, X, y, X_test, y_test, epochs,
                                                       X_grad, y_grad)
            norms_one[act].append(one_epoch if one_epoch else [np.nan] * (depth + 1))
            accs[act].append(r.final["test_accuracy"] if not r.diverged else np.nan)
            losses[act].append(r.final["train_loss"])

    table = Table(
        f"{cfg.dataset}: {depth} hidden layers of {width} units + a {k}-unit output layer, "
        f"default initializer (He normal for relu/leaky_relu/elu/gelu, Glorot uniform "
        f"otherwise); SGD lr {lr}, momentum 0.9, batch 32, {epochs} epoch(s)",
        ["activation", "forward ns / element", "derivative ns / element",
         "‖dW₁‖ at init", "‖dW_out‖ at init", "first / last at init",
         "first / last after 1 epoch", f"train loss after {epochs} ep.",
         f"test accuracy after {epochs} ep."])
    per_layer = Table("gradient norm ‖dWᵢ‖ of every layer at initialization (geometric mean "
                      "over seeds); layer 1 is next to the input, the last is the output layer",
                      ["activation"] + [f"{i + 1}" for i in range(depth + 1)])
    ratio_init, ratio_one = {}, {}
    for act in ACTIVATIONS:
        ni = np.array(norms_init[act])
        no = np.array(norms_one[act])
        ratio_init[act] = list(ni[:, 0] / ni[:, -1])
        ratio_one[act] = list(no[:, 0] / no[:, -1])
        fwd, bwd = times[act]
        table.add(act, fmt(fwd, 3), fmt(bwd, 3), fmt_pm(ni[:, 0], 3), fmt_pm(ni[:, -1], 3),
                  fmt_pm(ratio_init[act], 3), fmt_pm(ratio_one[act], 3),
                  fmt_pm(losses[act], 3), fmt_pm(accs[act], 3))
        geo = np.exp(np.log(np.maximum(ni, 1e-300)).mean(axis=0))
        per_layer.add(act, *[fmt(v, 2) for v in geo])
    table.notes.append(
        f"Kernel times: best of repeats over {n_el:,} float32 elements drawn from N(0, 2²), one "
        f"thread; the identity kernel (a copy through the same loop) takes "
        f"{fmt(times['identity'][0], 3)} / {fmt(times['identity'][1], 3)} ns per element. "
        "Gradient norms: full gradient over the first "
        f"{len(X_grad)} training samples, mean ± std over seeds.")

    sig, relu = np.mean(ratio_init["sigmoid"]), np.mean(ratio_init["relu"])
    findings = [f"first/last layer gradient-norm ratio at initialization: sigmoid {fmt(sig, 2)}, "
                f"tanh {fmt(np.mean(ratio_init['tanh']), 2)}, relu (He) {fmt(relu, 2)}: "
                f"the sigmoid net's first layer gets {fmt(relu / sig, 2)}x less gradient, "
                "relative to its output layer, than the relu net's"]
    return Result(
        name=NAME, title=TITLE,
        question="What does each activation cost per element, how well do gradients reach "
                 "the first layer of a 10-hidden-layer net, and how accurate is that net?",
        setup=[describe_data(cfg.dataset, X, X_test)],
        tables=[table, per_layer], plot=_plotter(norms_init, norms_one, depth),
        findings=findings,
        net=f"{X.shape[1]}-{width}x{depth}-{k} MLP ({depth} hidden layers of {width}) per "
            "activation, SGD momentum 0.9",
        data={"ratio_init": ratio_init, "ratio_one_epoch": ratio_one,
              "norms_init": norms_init, "kernel_ns": times, "accuracy": accs})


def _train_tracking_first_epoch(net, lr, X, y, X_test, y_test, epochs, X_grad, y_grad):
    """Train `net` with SGD momentum 0.9, batch 32; return (its Run, the layer gradient
    norms on (X_grad, y_grad) after the first epoch, or None if it never ended)."""
    one_epoch = []

    class AfterFirst(dn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                one_epoch.append(layer_norms(self.model, X_grad, y_grad))

    r = train(net, dn.optimizers.SGD(learning_rate=lr, momentum=0.9), X, y, X_test,
              y_test, epochs, 32, callbacks=[AfterFirst()])
    return r, one_epoch[0] if one_epoch else None


def _plotter(norms_init, norms_one, depth):
    """The figure: every layer's gradient norm at initialization and after one epoch."""
    def plot(fig):
        ax1, ax2 = fig.subplots(1, 2, sharey=True)
        layers = np.arange(1, depth + 2)
        for act in ACTIVATIONS:
            for ax, norms in ((ax1, norms_init), (ax2, norms_one)):
                geo = np.exp(np.nanmean(np.log(np.maximum(np.array(norms[act]), 1e-300)),
                                        axis=0))
                ax.plot(layers, geo, "o-", ms=3, label=act)
        for ax, title in ((ax1, "at initialization"), (ax2, "after one epoch")):
            ax.set_yscale("log")
            ax.set_xlabel("layer (1 = input side)")
            ax.set_title(f"‖dW‖ per layer, {title}", fontsize=9)
        ax1.set_ylabel("gradient norm")
        ax2.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5),
                   title="activation", title_fontsize=7)

    return plot
