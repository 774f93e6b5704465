"""pytest-benchmark cases for inference: ``Sequential.predict`` on one sample
and on 1000 samples (MNIST's net, 784-256-128-10 ReLU, softmax), and
PyTorch's forward pass of the same net beside them when it is installed
(1 thread, ``torch.no_grad``; the issue's anchor). Times only.

    python -m pytest bench/test_predict_bench.py --benchmark-only

The one-sample case times everything a user call does: validation, the
dispatch (the lean row-loop plan: no BLAS thread limit), the three layers
and the softmax. bench/predict_compare.py runs the same comparison as a
table (both libraries interleaved in one run, MNIST rows).
"""
import numpy as np
import pytest

import descend as dn
from predict_compare import torch_forward_of     # (bench/ is on the path under pytest)

SIZES = (784, 256, 128, 10)


@pytest.fixture(scope="module", params=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture(scope="module")
def net(dtype):
    net = dn.Sequential([dn.Dense(SIZES[1], activation="relu"),
                         dn.Dense(SIZES[2], activation="relu"), dn.Dense(SIZES[3])],
                        input_dim=SIZES[0], dtype=dtype, seed=0)
    return net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(0.01))


@pytest.fixture(scope="module")
def inputs(dtype):
    rng = np.random.default_rng(0)
    X = rng.random((1000, SIZES[0]))
    X[X < 0.81] = 0        # MNIST's density (19% non-zero): the sparse-input plan
    return X.astype(dtype)


@pytest.fixture(scope="module")
def torch_forward(net):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch_forward_of(net, torch)


@pytest.mark.parametrize("n_samples", [1, 10, 1000])
def test_predict(benchmark, net, inputs, n_samples):
    X = np.ascontiguousarray(inputs[:n_samples])
    benchmark.extra_info["n_samples"] = n_samples
    benchmark(net.predict, X)


@pytest.mark.parametrize("n_samples", [1, 10, 1000])
def test_predict_pytorch(benchmark, torch_forward, inputs, n_samples):
    X = np.ascontiguousarray(inputs[:n_samples])
    benchmark.extra_info["n_samples"] = n_samples
    benchmark(torch_forward, X)
