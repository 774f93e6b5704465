"""No reference to a caller's data outlives a call (issue 12, fault 5).

predict on a float64 X into a float32 network used to keep the 572 MB
converted copy alive in the first layer's cache until the next forward pass.
"""
import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import descend as dn


def _net(dtype="float32", loss="softmax_cross_entropy"):
    net = dn.Sequential([dn.Dense(8, activation="relu"), dn.Dense(3)], input_dim=50,
                        dtype=dtype, seed=0, n_threads=1)
    net.compile(loss=loss, optimizer=dn.optimizers.SGD(0.01))
    return net


def _data(n=4000, dtype=np.float32):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 50)).astype(dtype), rng.integers(0, 3, size=n)


CALLS = {
    "predict": lambda net, X, y: net.predict(X),
    "predict_classes": lambda net, X, y: net.predict_classes(X),
    "evaluate": lambda net, X, y: net.evaluate(X, y),
    "loss": lambda net, X, y: net.loss(X, y),
    "gradients": lambda net, X, y: net.gradients(X, y),
    "train_on_batch": lambda net, X, y: net.train_on_batch(X, y),
    "fit": lambda net, X, y: net.fit(X, y, epochs=1, batch_size=min(500, len(X)), verbose=0),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_the_callers_array_is_released_after_the_call(call):
    # X already has the network's dtype and layout: used without a copy
    net = _net()
    X, y = _data()
    CALLS[call](net, X, y)
    alive = weakref.ref(X)
    del X
    gc.collect()
    assert alive() is None


@pytest.mark.parametrize("call", sorted(CALLS))
def test_no_converted_copy_survives_the_call(call):
    # float64 X into a float32 network: the 4 MB float32 copy must be freed
    net = _net()
    X, y = _data(n=20000, dtype=np.float64)
    CALLS[call](net, X[:10], y[:10])          # first-call allocations out of the way
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = CALLS[call](net, X, y)
        del result
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    copy_bytes = X.size * 4
    assert kept < copy_bytes / 4, f"{kept} bytes still held after {call}"
