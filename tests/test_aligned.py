"""The 64-byte aligned arrays of descend._aligned: the parameters, their
optimizer state and the training loop's buffers start on a cache line, and
no result depends on where an array starts."""
import copy
import pickle

import numpy as np
import pytest

import descend as dn
from descend import _aligned


def misaligned_copy(array, offset=16):
    """A C-contiguous copy of `array` whose data start `offset` bytes past a
    64-byte boundary."""
    raw = np.empty(array.nbytes + 128, np.uint8)
    start = -raw.ctypes.data % 64 + offset
    out = raw[start:start + array.nbytes].view(array.dtype).reshape(array.shape)
    out[...] = array
    assert out.ctypes.data % 64 == offset
    return out


@pytest.mark.parametrize("shape", [(0,), (), (1,), (3, 5), (7, 784), (2, 3, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint8])
def test_arrays_start_on_a_64_byte_boundary(shape, dtype):
    for array in (_aligned.empty(shape, dtype), _aligned.full(shape, dtype, 3)):
        assert array.shape == shape and array.dtype == dtype
        assert array.flags.c_contiguous and array.flags.writeable
        assert array.size == 0 or array.ctypes.data % 64 == 0   # empty: no data to align
    assert (_aligned.full(shape, dtype, 3) == 3).all()


def test_copy_keeps_the_values_and_converts_the_dtype_only_when_asked():
    source = misaligned_copy(np.arange(12, dtype=np.float64).reshape(3, 4) / 3)
    same = _aligned.copy(source)
    assert same.dtype == np.float64 and same.ctypes.data % 64 == 0
    assert np.array_equal(same, source) and not np.shares_memory(same, source)
    single = _aligned.copy(source, np.float32)
    assert single.dtype == np.float32 and single.ctypes.data % 64 == 0
    assert np.array_equal(single, source.astype(np.float32))
    assert _aligned.copy(source.T).flags.c_contiguous   # any layout in, C order out
    assert np.array_equal(_aligned.copy(source.T), source.T)


def test_realigned_copies_only_what_is_not_aligned():
    aligned = _aligned.copy(np.arange(40.0).reshape(5, 8))
    assert _aligned.realigned(aligned) is aligned
    for other in (misaligned_copy(aligned), aligned[:, ::2]):
        again = _aligned.realigned(other)
        assert again is not other and again.ctypes.data % 64 == 0
        assert again.flags.c_contiguous and np.array_equal(again, other)


def test_a_shallow_copy_of_a_layer_still_shares_its_arrays():
    net = dn.Sequential([dn.Dense(4)], input_dim=3, seed=0)
    net.compile(loss="mean_squared_error", optimizer="adam")
    layer = net.layers[0]
    assert copy.copy(layer).kernel is layer.kernel
    net.fit(np.ones((4, 3)), np.ones((4, 4)), epochs=1, batch_size=4, verbose=0)
    assert copy.copy(net.optimizer).state[0][0] is net.optimizer.state[0][0]


def test_an_integer_shape_is_a_one_dimensional_array():
    assert _aligned.empty(5, np.float32).shape == (5,)
    assert _aligned.empty(np.int64(5), np.float32).shape == (5,)


def _network(optimizer, dtype="float32"):
    net = dn.Sequential([dn.Dense(48, activation="relu"), dn.Dense(3)], input_dim=20,
                        dtype=dtype, seed=3, n_threads=2)
    net.compile(loss="softmax_cross_entropy", optimizer=optimizer)
    return net


def _aligned_state(net):
    params = [p.ctypes.data % 64 == 0 for p in net._params()]
    state = [a.ctypes.data % 64 == 0 for s in net.optimizer.state or [] for a in s]
    return params, state


@pytest.mark.parametrize("make_optimizer", [
    lambda: dn.optimizers.SGD(learning_rate=0.1, momentum=0.9),
    lambda: dn.optimizers.Adam(learning_rate=0.01),
    lambda: dn.optimizers.Adagrad(learning_rate=0.1, initial_accumulator_value=0.5)])
def test_parameters_and_optimizer_state_are_aligned_after_build_fit_pickle_and_copy(
        make_optimizer):
    rng = np.random.default_rng(0)
    X, y = rng.random((64, 20), dtype=np.float32), rng.integers(0, 3, 64)
    net = _network(make_optimizer())
    net.fit(X, y, epochs=1, batch_size=16, verbose=0)
    assert net.optimizer.state, "the optimizer keeps state arrays"
    for candidate in (net, pickle.loads(pickle.dumps(net)), copy.deepcopy(net)):
        params, state = _aligned_state(candidate)
        assert all(params) and all(state), (params, state)
        assert all(np.array_equal(a, b) for a, b in zip(candidate._params(), net._params()))
    # state restored into an optimizer that has none yet: new arrays, aligned
    fresh = make_optimizer()
    assert fresh.state is None
    fresh.set_state(net.optimizer.get_state())
    assert all(a.ctypes.data % 64 == 0 for s in fresh.state for a in s)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sparse", [True, False])
def test_training_gives_the_same_bits_whatever_the_parameters_alignment(optimizer, dtype,
                                                                        sparse):
    rng = np.random.default_rng(1)
    X = rng.random((96, 20)).astype(dtype)
    if sparse:                          # mostly zeros: the sparse first layer
        X[rng.random(X.shape) < 0.85] = 0
    y = rng.integers(0, 3, 96)
    nets = [_network(optimizer, dtype) for _ in range(2)]
    for layer in nets[1].layers:       # the same values, 16 bytes past a boundary
        layer.kernel = misaligned_copy(layer.kernel)
        layer.bias = misaligned_copy(layer.bias)
    for net in nets:
        net.fit(X, y, epochs=2, batch_size=32, verbose=0)
    assert nets[1].layers[0].kernel.ctypes.data % 64 == 16      # trained in place
    for a, b in zip(nets[0]._params(), nets[1]._params()):
        assert np.array_equal(a.view(np.uint8), b.view(np.uint8))
    assert np.array_equal(nets[0].predict(X).view(np.uint8), nets[1].predict(X).view(np.uint8))
