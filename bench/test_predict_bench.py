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
    linears = [torch.nn.Linear(a, b, dtype=getattr(torch, net.dtype.name))
               for a, b in zip(SIZES[:-1], SIZES[1:])]
    model = torch.nn.Sequential(linears[0], torch.nn.ReLU(), linears[1], torch.nn.ReLU(),
                                linears[2], torch.nn.Softmax(dim=1)).eval()
    with torch.no_grad():
        for linear, layer in zip(linears, net.dense_layers):
            linear.weight.copy_(torch.from_numpy(layer.kernel.T.copy()))
            linear.bias.copy_(torch.from_numpy(layer.bias))

    def forward(X):
        with torch.no_grad():
            return model(torch.from_numpy(X)).numpy()
    return forward


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
