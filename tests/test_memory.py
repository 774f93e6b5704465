"""Peak memory of fit stays within data + parameters + optimizer state +
one batch's activations + 10% (the speed issue's bound).

numpy allocations are visible to tracemalloc, so the peak of traced memory
during fit measures every array descend allocates (buffers of the compiled
loop included: they are numpy arrays).
"""
import tracemalloc

import numpy as np
import pytest

import descend as dn


@pytest.mark.parametrize("inputs", ["dense", "mostly_zero"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("batch_size", [32, 256])
def test_fit_peak_memory(optimizer, batch_size, inputs):
    """mostly_zero: 19% non-zero inputs, as MNIST, which fit trains with the
    sparse first-layer kernels (their buffers replace the batch's input rows)."""
    rng = np.random.default_rng(0)
    n, d, hidden, k = 20000, 784, (256, 128), 10
    X = rng.random((n, d), dtype=np.float32)
    if inputs == "mostly_zero":
        X[rng.random((n, d)) >= 0.19] = 0
    y = rng.integers(0, k, n)
    net = dn.Sequential([dn.Dense(hidden[0], activation="relu"),
                         dn.Dense(hidden[1], activation="relu"), dn.Dense(k)],
                        input_dim=d, seed=0)
    net.compile(loss="softmax_cross_entropy",
                optimizer=dn.optimizers.Adam(1e-3) if optimizer == "adam"
                else dn.optimizers.SGD(0.01))
    itemsize = 4
    sizes = (d,) + hidden + (k,)
    params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    state = {"sgd": 0, "adam": 2}[optimizer] * params
    # per sample of a batch: the input row, z, a and dL/dz of every layer
    activations = batch_size * (d + 3 * sum(sizes[1:]))
    data = X.nbytes + y.nbytes
    bound = 1.10 * (data + itemsize * (params + state + activations))

    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        net.fit(X, y, epochs=1, batch_size=batch_size, verbose=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # data is held by the caller before fit; what fit adds comes on top of it
    used = data + (peak - before)
    assert used <= bound, f"fit used {used / 1e6:.1f} MB, bound {bound / 1e6:.1f} MB"
