"""pytest-benchmark suites for the compiled kernels.

    pip install ".[bench]" && python -m pytest bench/ --benchmark-only

Times only; nothing here asserts a duration. Each kernel runs single-threaded
(n_threads=1, BLAS limited to one thread) so the numbers compare across
machines and runs; bench/compare.py measures whole epochs on 2 threads.
The arrays start on 64-byte boundaries, as a network's parameters and the
epoch's buffers do (descend._aligned).
"""
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from descend import _aligned, _dense, _losses, _optim, _sparse
from descend._contract import Activation, Loss, OptimizerKind

SHAPES = [(1, 784, 256), (32, 784, 256), (128, 784, 256), (1024, 784, 256),
          (32, 256, 128), (32, 128, 10)]
ACTIVATIONS = {member.name.lower(): member for member in Activation}


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(1, user_api="blas"):
        yield


def arrays(n, n_in, n_out, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n_in)).astype(dtype)
    w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    return _aligned.copy(x), _aligned.copy(w), _aligned.copy(b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_dense_forward(benchmark, shape, dtype):
    n, n_in, n_out = shape
    x, w, b = arrays(n, n_in, n_out, dtype)
    z = np.empty((n, n_out), dtype)
    a = np.empty_like(z)
    benchmark.extra_info["gflop"] = 2 * n * n_in * n_out / 1e9
    benchmark(_dense.dense_forward_py, x, w, b, z, a, ACTIVATIONS["relu"], 0.0, 1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_dense_backward(benchmark, shape, dtype):
    n, n_in, n_out = shape
    x, w, b = arrays(n, n_in, n_out, dtype)
    z = np.empty((n, n_out), dtype)
    a = np.empty_like(z)
    _dense.dense_forward_py(x, w, b, z, a, ACTIVATIONS["relu"], 0.0, 1)
    grad_a = np.ones_like(z)
    dz, dw, db, dx = np.empty_like(z), np.empty_like(w), np.empty_like(b), np.empty_like(x)

    def backward():
        np.copyto(dz, grad_a)
        _dense.dense_backward_py(x, w, z, a, dz, dw, db, dx, ACTIVATIONS["relu"], 0.0, 1)

    benchmark.extra_info["gflop"] = 4 * n * n_in * n_out / 1e9
    benchmark(backward)


def sparse_rows(n, n_in, dtype, density=0.19, seed=0):
    """Inputs with MNIST's share of non-zero entries (19%), at random places."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, n_in)).astype(dtype)
    x[rng.random((n, n_in)) >= density] = 0
    return _aligned.copy(x)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [32, 1024])
def test_sparse_forward(benchmark, n, dtype):
    """The first layer's forward product from the non-zero inputs only (the
    dense twin is test_dense_forward at the same shape)."""
    _, w, b = arrays(1, 784, 256, dtype)
    x = sparse_rows(n, 784, dtype)
    z, a = _aligned.empty((n, 256), dtype), _aligned.empty((n, 256), dtype)
    benchmark.extra_info["dense_gflop"] = 2 * n * 784 * 256 / 1e9
    benchmark(_sparse.sparse_forward_py, x, w, b, z, a, ACTIVATIONS["relu"], 0.0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [32, 1024])
def test_sparse_grad_kernel(benchmark, n, dtype):
    """dW = x^T dz of the first layer from the non-zero inputs only."""
    x = sparse_rows(n, 784, dtype)
    dz = _aligned.copy(np.random.default_rng(1).standard_normal((n, 256)).astype(dtype))
    dw = _aligned.full((784, 256), dtype, 0)
    benchmark.extra_info["dense_gflop"] = 2 * n * 784 * 256 / 1e9
    benchmark(_sparse.sparse_grad_kernel_py, x, dz, dw, 0, 784, 1.0)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_activation_forward(benchmark, activation):
    z = _aligned.copy(np.random.default_rng(0).standard_normal((1024, 256)).astype(np.float32))
    a = _aligned.empty(z.shape, z.dtype)
    benchmark.extra_info["elements"] = z.size
    benchmark(_dense.activation_forward_py, z, a, ACTIVATIONS[activation], 0.01)


@pytest.mark.parametrize("loss", ["mean_squared_error", "binary_cross_entropy",
                                  "softmax_cross_entropy"])
@pytest.mark.parametrize("n", [32, 1024])
def test_loss_and_gradient(benchmark, loss, n):
    rng = np.random.default_rng(0)
    k = 1 if loss == "binary_cross_entropy" else 10
    output = rng.standard_normal((n, k)).astype(np.float32)
    target = rng.integers(0, 2, (n, k)).astype(np.float32)
    labels = rng.integers(0, k, n).astype(np.int32)
    grad = np.empty_like(output)
    code = Loss[loss.upper()]
    softmax = code == Loss.SOFTMAX_CROSS_ENTROPY
    benchmark(_losses.loss_and_gradient_py, code, output,
              None if softmax else target, labels if softmax else None,
              grad, 1.0 / n, 1)


OPTIMIZERS = {
    "sgd": ({"kind": OptimizerKind.SGD}, 0),
    "momentum": ({"kind": OptimizerKind.SGD, "momentum": 0.9}, 1),
    "nesterov": ({"kind": OptimizerKind.SGD, "momentum": 0.9, "nesterov": True}, 1),
    "adagrad": ({"kind": OptimizerKind.ADAGRAD, "epsilon": 1e-10}, 1),
    "rmsprop": ({"kind": OptimizerKind.RMSPROP, "rho": 0.9, "epsilon": 1e-8}, 3),
    "adam": ({"kind": OptimizerKind.ADAM, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}, 2),
    "adamw": ({"kind": OptimizerKind.ADAM, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8,
               "decoupled": True}, 2),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_update(benchmark, name):
    """One update of a 784x256 kernel (200,704 parameters)."""
    config, n_state = OPTIMIZERS[name]
    rng = np.random.default_rng(0)
    w = _aligned.copy(rng.standard_normal(784 * 256).astype(np.float32))
    g = _aligned.copy(rng.standard_normal(784 * 256).astype(np.float32))
    state = [_aligned.full(w.shape, w.dtype, 0) for _ in range(n_state)] + [None] * (3 - n_state)
    benchmark.extra_info["parameters"] = w.size
    benchmark(_optim.optimizer_step_py, config, w, g, state[0], state[1], state[2],
              1e-3, 0.0, 1, 1)


@pytest.fixture(params=["avx512", "avx2", "portable"])
def isa(request):
    """The update loops of one instruction set (the widest below it this
    CPU has; the id says which was asked for), the default restored after."""
    default = _optim._use_isa("avx512")
    used = _optim._use_isa(request.param)
    yield used
    _optim._use_isa(default)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_penalty_gradient_and_sum(benchmark, isa, dtype):
    """L1 + L2 penalty of a 784x256 kernel: its gradient added, its value
    summed in lanes (phase B of every step with a penalty)."""
    rng = np.random.default_rng(0)
    w = _aligned.copy(rng.standard_normal(784 * 256).astype(dtype))
    g = _aligned.full(w.shape, w.dtype, 0)
    benchmark.extra_info["isa"] = isa
    benchmark(_optim.add_penalty_gradient_py, w, g, 1e-5, 1e-4, 1)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sum_squares(benchmark, isa, dtype):
    """Sum of squares of 200,704 gradients (global clipnorm, gradient norms)."""
    g = _aligned.copy(np.random.default_rng(0).standard_normal(784 * 256).astype(dtype))
    benchmark.extra_info["isa"] = isa
    benchmark(_optim.sum_squares_py, g, 1)
