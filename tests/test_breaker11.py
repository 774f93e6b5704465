"""Session 11's breaker: the 64-byte aligned parameters and optimizer state
(descend._aligned) against shallow copies, and against pickles and deep
copies of networks whose layers share one kernel."""
import copy
import pickle

import numpy as np
import pytest

import descend as dn
from test_aligned import misaligned_copy


def _fitted(optimizer="adam"):
    net = dn.Sequential([dn.Dense(6, activation="tanh"), dn.Dense(3)], input_dim=4,
                        dtype="float64", seed=0, n_threads=1)
    net.compile(loss="mean_squared_error", optimizer=optimizer)
    X = np.random.default_rng(0).random((16, 4))
    net.fit(X, X[:, :3], epochs=1, batch_size=8, verbose=0)
    return net, X


# ------------------------------------------------ shallow copies share everything
def test_a_shallow_copy_of_a_layer_shares_a_kernel_the_user_assigned():
    """copy.copy shares attributes; it made an aligned copy of a kernel that a
    user had replaced by a 16-byte aligned array (as np.load gives)."""
    net, _ = _fitted()
    layer = net.layers[0]
    layer.kernel, layer.bias = misaligned_copy(layer.kernel), misaligned_copy(layer.bias)
    shallow = copy.copy(layer)
    assert shallow.kernel is layer.kernel and shallow.bias is layer.bias
    shallow.kernel[0, 0] = 5.0          # the same array: seen through both
    assert layer.kernel[0, 0] == 5.0


def test_a_shallow_copy_of_an_optimizer_shares_its_state_list_and_arrays():
    net, _ = _fitted()
    optimizer = net.optimizer
    optimizer.state[0][0] = misaligned_copy(optimizer.state[0][0])
    shallow = copy.copy(optimizer)
    assert shallow.state is optimizer.state
    assert shallow.state[0][0] is optimizer.state[0][0]


def test_a_deep_copy_of_a_layer_still_aligns_what_the_user_assigned():
    net, _ = _fitted()
    layer = net.layers[0]
    layer.kernel = misaligned_copy(layer.kernel)
    deep = copy.deepcopy(layer)
    assert deep.kernel is not layer.kernel and deep.kernel.ctypes.data % 64 == 0
    assert np.array_equal(deep.kernel, layer.kernel)
