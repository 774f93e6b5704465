"""pytest-benchmark: one training epoch of 784-256-128-10 on MNIST.

    pip install ".[bench]" && python -m pytest bench/ --benchmark-only

Uses ../shared/datasets/mnist (or $DESCEND_DATA); skipped if absent. The
side-by-side comparison with PyTorch, numpy and scikit-learn is
bench/compare.py.
"""
import os
from pathlib import Path

import numpy as np
import pytest

import descend as dn

MNIST = Path(os.environ.get("DESCEND_DATA", Path(__file__).resolve().parents[2]
                            / "shared" / "datasets" / "mnist"))


@pytest.fixture(scope="module")
def mnist():
    if not (MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"MNIST not found in {MNIST}")
    X, _, y, _ = dn.datasets.load_mnist(data_home=MNIST, download=False)
    return X, y


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("batch_size", [1, 8, 32, 128, 1024])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_epoch(benchmark, mnist, batch_size, dtype, optimizer):
    X, y = mnist
    X = X.astype(dtype)
    if batch_size < 32:
        X, y = X[:10000], y[:10000]      # keep the suite short; see extra_info
    make = {"sgd": lambda: dn.optimizers.SGD(0.01),
            "momentum": lambda: dn.optimizers.SGD(0.01, momentum=0.9),
            "adam": lambda: dn.optimizers.Adam(0.001)}[optimizer]

    def one_epoch():
        net = dn.Sequential([dn.Dense(256, activation="relu"),
                             dn.Dense(128, activation="relu"), dn.Dense(10)],
                            input_dim=784, dtype=dtype, seed=0)
        net.compile(loss="softmax_cross_entropy", optimizer=make())
        return net.fit(X, y, epochs=1, batch_size=batch_size, verbose=0)

    benchmark.extra_info["samples"] = len(X)
    history = benchmark.pedantic(one_epoch, rounds=3, iterations=1)
    assert np.isfinite(history["loss"][0])


@pytest.mark.parametrize("weights", ["none", "uniform_0_2"])
@pytest.mark.parametrize("batch_size", [1, 128])
def test_epoch_sample_weight(benchmark, mnist, batch_size, weights):
    """The cost of sample_weight in the compiled loop (float32, Adam; plain SGD
    for batch size 1, the per-sample path): compare the two `weights` rows."""
    X, y = mnist
    if batch_size == 1:
        X, y = X[:10000], y[:10000]
    w = (None if weights == "none"
         else np.random.default_rng(0).uniform(0, 2, size=len(X)))

    def one_epoch():
        net = dn.Sequential([dn.Dense(256, activation="relu"),
                             dn.Dense(128, activation="relu"), dn.Dense(10)],
                            input_dim=784, dtype="float32", seed=0)
        net.compile(loss="softmax_cross_entropy",
                    optimizer=dn.optimizers.SGD(0.01) if batch_size == 1
                    else dn.optimizers.Adam(0.001))
        return net.fit(X, y, epochs=1, batch_size=batch_size, verbose=0, sample_weight=w)

    benchmark.extra_info["samples"] = len(X)
    history = benchmark.pedantic(one_epoch, rounds=3, iterations=1)
    assert np.isfinite(history["loss"][0])
