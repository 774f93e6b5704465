"""pytest-benchmark: one epoch on subnormal inputs, with and without
``descend.flush_subnormals`` (issue 12, fault 8).

    python -m pytest bench/test_subnormal_bench.py --benchmark-only

Measured on the 2-core Intel Xeon (model 207, AVX-512), 1 thread, float32,
20000 x 100 inputs, 100-128-2 net, batch 64, 2 epochs: 0.50 s on N(0, 1)
inputs, 6.5-6.7 s on the same inputs scaled by 1e-37 (subnormal: 13x
slower), 0.39 s on either inside ``flush_subnormals()``.
"""
import numpy as np
import pytest

import descend as dn


@pytest.mark.parametrize("flush", [False, True])
@pytest.mark.parametrize("scale", [1.0, 1e-37])
def test_epoch_on_subnormal_inputs(benchmark, scale, flush):
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(20000, 100)) * scale).astype(np.float32)
    y = (rng.random(20000) > 0.5).astype(int)

    def fit():
        net = dn.Sequential([dn.Dense(128, activation="relu"), dn.Dense(2)], input_dim=100,
                            seed=0, n_threads=1)
        net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(0.1))
        if flush:
            with dn.flush_subnormals(n_threads=1):
                net.fit(X, y, epochs=1, batch_size=64, verbose=0)
        else:
            net.fit(X, y, epochs=1, batch_size=64, verbose=0)

    benchmark.extra_info.update(scale=scale, flush=flush)
    benchmark.pedantic(fit, rounds=2, iterations=1)
