"""descend._contract: the codes shared by Python and the kernels, defined once."""
import numpy as np
import pytest

import descend as dn
from descend import _dense, _losses, activations, losses, optimizers
from descend._contract import Activation, Loss, OptimizerKind


def test_every_activation_name_maps_to_its_kernel_code():
    assert set(activations.ACTIVATIONS) == {m.name.lower() for m in Activation}
    z = np.linspace(-2, 2, 9).reshape(3, 3)
    for name, code in activations.ACTIVATIONS.items():
        a = np.empty_like(z)
        _dense.activation_forward_py(z, a, code, activations.DEFAULT_ALPHA.get(name, 0.0))
        if name == "relu":
            np.testing.assert_array_equal(a, np.maximum(z, 0))
        if name == "identity":
            np.testing.assert_array_equal(a, z)


@pytest.mark.parametrize("name, code", [("mean_squared_error", Loss.MEAN_SQUARED_ERROR),
                                        ("binary_cross_entropy", Loss.BINARY_CROSS_ENTROPY),
                                        ("softmax_cross_entropy", Loss.SOFTMAX_CROSS_ENTROPY)])
def test_each_loss_carries_its_kernel_code(name, code):
    net = dn.Sequential([dn.Dense(2)], input_dim=3, seed=0)
    net.compile(loss=name, optimizer="sgd")
    assert net.loss_.code == code
    assert getattr(losses, code.name) == code


def test_the_softmax_code_selects_the_softmax_kernel():
    o = np.array([[1.0, 2.0, 0.5]])
    grad = np.empty_like(o)
    total = _losses.loss_and_gradient_py(Loss.SOFTMAX_CROSS_ENTROPY, o, None,
                                         np.array([1], np.int32), grad, 1.0, 1)
    p = np.exp(o) / np.exp(o).sum()
    assert total == pytest.approx(-np.log(p[0, 1]))


@pytest.mark.parametrize("optimizer, kind", [
    (lambda: optimizers.SGD(0.1), OptimizerKind.SGD),
    (lambda: optimizers.Adagrad(0.1), OptimizerKind.ADAGRAD),
    (lambda: optimizers.RMSprop(0.1), OptimizerKind.RMSPROP),
    (lambda: optimizers.Adam(0.1), OptimizerKind.ADAM)])
def test_each_optimizer_names_its_kernel_update(optimizer, kind):
    assert optimizer().kernel_config()["kind"] == kind
