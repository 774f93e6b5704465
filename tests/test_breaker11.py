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


# ------------------------------ a kernel shared by two layers stays shared
def _tied():
    """Two hidden layers of one kernel (assigned: layers[2].kernel is
    layers[1].kernel), which fit trains as one array."""
    net = dn.Sequential([dn.Dense(8, activation="tanh"), dn.Dense(8, activation="tanh"),
                         dn.Dense(8, activation="tanh"), dn.Dense(2)],
                        input_dim=8, dtype="float64", seed=0, n_threads=1)
    net.compile(loss="mean_squared_error", optimizer=dn.optimizers.SGD(0.1))
    net.layers[2].kernel = net.layers[1].kernel
    return net


@pytest.mark.parametrize("clone", [lambda net: pickle.loads(pickle.dumps(net)),
                                   copy.deepcopy], ids=["pickle", "deepcopy"])
def test_a_pickled_or_deep_copied_network_keeps_a_kernel_its_layers_share(clone):
    """Unpickled arrays are aligned again one by one: each layer got its own
    copy of the shared kernel, so the clone trained other weights than the
    network (pickle and deepcopy keep shared objects shared)."""
    net = _tied()
    # unpickled arrays start where NumPy's allocator puts them, 64-byte
    # aligned by chance one time in four: eight clones held at once
    twins = [clone(net) for _ in range(8)]
    for twin in twins:
        assert twin.layers[2].kernel is twin.layers[1].kernel
        assert twin.layers[1].kernel.ctypes.data % 64 == 0
    twin = twins[0]
    X = np.random.default_rng(1).random((32, 8))
    for model in (net, twin):
        model.fit(X, X[:, :2], epochs=2, batch_size=8, shuffle=False, verbose=0)
    assert np.array_equal(net.predict(X), twin.predict(X))


def test_arrays_unpickled_apart_are_not_shared():
    """The same kernel pickled twice (two pickles) is two arrays."""
    net = _tied()
    first, second = (pickle.loads(pickle.dumps(net.layers[1])) for _ in range(2))
    assert first.kernel is not second.kernel
    assert np.array_equal(first.kernel, second.kernel)


# ------------------------------- arrays unpickled over read-only buffers
def test_a_network_unpickled_over_read_only_buffers_trains_whatever_their_alignment():
    """Out-of-band pickle buffers read back as bytes give read-only arrays;
    realigned copied (writeable) those that happened not to be aligned and
    kept the others, so whether fit ran or refused a read-only kernel
    depended on where the bytes landed. In-band pickles give writeable
    arrays: so do these, always."""
    net, X = _fitted()
    expected = copy.deepcopy(net)
    expected.fit(X, X[:, :3], epochs=1, batch_size=8, shuffle=False, verbose=0)
    for _ in range(4):      # each array 64-byte aligned by chance one time in four
        buffers = []
        data = pickle.dumps(net, protocol=5, buffer_callback=buffers.append)
        twin = pickle.loads(data, buffers=[bytes(b.raw()) for b in buffers])
        arrays = twin._params() + [a for s in twin.optimizer.state for a in s]
        assert all(a.flags.writeable and a.ctypes.data % 64 == 0 for a in arrays)
        twin.fit(X, X[:, :3], epochs=1, batch_size=8, shuffle=False, verbose=0)
        assert all(np.array_equal(a, b) for a, b in zip(twin._params(), expected._params()))


# ----------------------------------------- a kernel of an ndarray subclass
class TaggedArray(np.ndarray):
    """An ndarray subclass that pickle finds by name."""


@pytest.mark.parametrize("clone", [lambda layer: pickle.loads(pickle.dumps(layer)),
                                   copy.deepcopy], ids=["pickle", "deepcopy"])
def test_an_unpickled_kernel_keeps_its_ndarray_subclass_whatever_its_alignment(clone):
    """pickle and deepcopy keep an array's class; realigned's copy was a
    plain ndarray, so a kernel the user assigned as a subclass (np.memmap,
    np.matrix, this one) came back of its class when it landed aligned and
    an ndarray when it did not."""
    net, X = _fitted()
    layer = net.layers[0]
    layer.kernel = layer.kernel.view(TaggedArray)
    for twin in [clone(layer) for _ in range(8)]:  # aligned by chance one time in four
        assert type(twin.kernel) is TaggedArray and twin.kernel.ctypes.data % 64 == 0
        assert np.array_equal(twin.kernel, layer.kernel)
