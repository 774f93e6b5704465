"""How tests/data/v1_*.npz were made: run from the repository root with descend
at commit 480dbc6 (format 1, before the state protocol); kept for provenance."""
import os

import numpy as np

import descend as dn


def main():
    out = "tests/data"
    rng = np.random.default_rng(7)
    X = rng.normal(size=(40, 5))
    def save(name, net, X):
        path = os.path.join(out, f"v1_{name}.npz")
        net.save(path)
        opt = net.optimizer
        st = opt.get_state() if opt is not None else None
        exp = {"X": X, "predict": net.predict(X)}
        if st is not None and st["arrays"] is not None:
            for i, per in enumerate(st["arrays"]):
                for j, a in enumerate(per):
                    exp[f"state_{i}_{j}"] = a
        np.savez(os.path.join(out, f"v1_{name}_expected.npz"), **exp)
    # 1. SGD nesterov momentum, string classes, dropout, float32, l2, no-bias layer
    y = np.array(["cat", "dog", "emu"])[np.argmax(X @ rng.normal(size=(5, 3)), 1)]
    net = dn.Sequential([dn.Dense(6, activation="relu", kernel_regularizer=dn.regularizers.l2(1e-3)),
                         dn.Dropout(0.2), dn.Dense(4, activation="tanh", use_bias=False), dn.Dense(3)],
                        input_dim=5, dtype="float32", seed=1, n_threads=1, name="fixture-sgd")
    net.compile("softmax_cross_entropy", dn.optimizers.SGD(0.05, momentum=0.9, nesterov=True))
    net.fit(X, y, epochs=2, batch_size=8, verbose=0)
    save("sgd_momentum_strings", net, X.astype(np.float32))
    # 2. Adam amsgrad, binary int classes, float64, exponential decay schedule
    yb = (X[:, 0] + X[:, 1] > 0).astype(int) * 5 + 2      # classes 2 and 7
    net = dn.Sequential([dn.Dense(4, activation="relu"), dn.Dense(1)], input_dim=5,
                        dtype="float64", seed=2, n_threads=1)
    net.compile("binary_cross_entropy", dn.optimizers.Adam(
        dn.schedules.ExponentialDecay(0.01, decay_rate=0.9), amsgrad=True))
    net.fit(X, yb, epochs=3, batch_size=16, verbose=0)
    save("adam_amsgrad_binary", net, X)
    # 3. RMSprop centered regression, no classes
    yr = X @ rng.normal(size=(5, 2))
    net = dn.Sequential([dn.Dense(3, activation="tanh"), dn.Dense(2)], input_dim=5,
                        dtype="float64", seed=3, n_threads=1)
    net.compile("mean_squared_error", dn.optimizers.RMSprop(0.01, momentum=0.5, centered=True))
    net.fit(X, yr, epochs=2, batch_size=10, verbose=0)
    save("rmsprop_regression", net, X)
    # 4. compiled, never trained (optimizer not built); 5. not compiled
    net = dn.Sequential([dn.Dense(3)], input_dim=5, seed=4, n_threads=1)
    net.compile("softmax_cross_entropy", "adam")
    save("adam_unbuilt", net, X.astype(np.float32))
    net = dn.Sequential([dn.Dense(2, activation="sigmoid")], input_dim=5, seed=5, n_threads=1)
    save("uncompiled", net, X.astype(np.float32))


if __name__ == "__main__":
    main()
