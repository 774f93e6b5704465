"""descend._contract: the codes shared by Python and the kernels, defined once."""
import numpy as np
import pytest

import descend as dn
from descend import _dense, _losses, activations, losses, optimizers
from descend._contract import Activation, LayerSpec, Loss, OptimizerKind, Strategy
from descend._train import EpochRunner


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


# ---------------------------------------------------------------- LayerSpec
def _spec(**kwargs):
    kernel = kwargs.pop("kernel", np.zeros((4, 3)))
    bias = kwargs.pop("bias", np.zeros(3))
    return LayerSpec(kernel, bias, **kwargs)


def test_a_layer_spec_holds_the_live_arrays_not_copies():
    kernel, bias, velocity = np.zeros((4, 3)), np.zeros(3), np.zeros((4, 3))
    spec = LayerSpec(kernel, bias, [velocity], activation=Activation.RELU, kernel_l2=0.5)
    assert spec.kernel is kernel and spec.bias is bias and spec.kernel_state[0] is velocity
    assert spec.bias_state == () and spec.activation == Activation.RELU
    assert (spec.kernel_l2, spec.kernel_l1, spec.decay_bias) == (0.5, 0.0, False)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"kernel": [[1.0]]}, TypeError, r"LayerSpec: kernel must be a numpy.ndarray, got \[\[1.0\]\] \(list\)"),
    ({"kernel": np.zeros((4, 3), np.int64)}, TypeError, "kernel must have dtype"),
    ({"kernel": np.zeros(4)}, ValueError, "kernel must be 2-D"),
    ({"kernel": np.zeros((3, 4)).T}, ValueError, "C-contiguous"),
    ({"bias": np.zeros(4)}, ValueError, r"bias must have shape \(3,\)"),
    ({"bias": np.zeros(3, np.float32)}, TypeError, "bias must have dtype float64"),
    ({"kernel_state": [np.zeros((3, 4))]}, ValueError, r"kernel_state\[0\] must have shape"),
    ({"kernel_state": [np.zeros((4, 3))] * 4}, ValueError, "at most 3"),
    ({"bias": None, "bias_state": [np.zeros(3)]}, ValueError, "bias_state must be empty"),
    ({"activation": 99}, ValueError, "activation must be an Activation code, got 99"),
    ({"dropout_rate": 1.0}, ValueError, r"dropout_rate must be a finite float in \[0, 1\), got 1.0"),
    ({"kernel_l2": -1.0}, ValueError, "kernel_l2 must be a finite float >= 0, got -1.0"),
    ({"bias_l1": float("nan")}, ValueError, "bias_l1 must be a finite float >= 0, got nan"),
    ({"alpha": float("inf")}, ValueError, "alpha must be a finite float, got inf"),
    ({"decay_bias": "yes"}, TypeError, "decay_bias must be a bool"),
])
def test_a_layer_spec_rejects_what_the_loop_could_not_trust(kwargs, error, match):
    with pytest.raises(error, match=match):
        _spec(**kwargs)


def test_a_read_only_kernel_is_refused():
    kernel = np.zeros((4, 3))
    kernel.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        LayerSpec(kernel, None)


def test_the_runner_takes_layer_specs_only():
    X, y = np.ones((10, 4)), np.zeros(10, np.int32)
    layer = {"kernel": np.zeros((4, 3)), "bias": None}
    with pytest.raises(TypeError, match=r"layers\[0\] must be a descend._contract.LayerSpec"):
        EpochRunner(X, None, y, [layer], Loss.SOFTMAX_CROSS_ENTROPY,
                    {"kind": OptimizerKind.SGD}, 0.0, 0.0, 0.0, 5, 1)


@pytest.mark.parametrize("optimizer, batch_size, spec_kwargs, strategy", [
    ({"kind": OptimizerKind.SGD}, 1, {}, Strategy.PER_SAMPLE_SGD),
    ({"kind": OptimizerKind.SGD}, 1, {"kernel_l2": 0.1}, Strategy.TEAM_GEMM_SGD),
    ({"kind": OptimizerKind.SGD}, 1, {"dropout_rate": 0.2}, Strategy.TEAM_GEMM_SGD),
    ({"kind": OptimizerKind.SGD}, 5, {}, Strategy.TEAM_GEMM_SGD),
    ({"kind": OptimizerKind.SGD}, 5, {"bias_l1": 0.1}, Strategy.TEAM_GENERAL),
    ({"kind": OptimizerKind.SGD, "momentum": 0.9}, 1, {}, Strategy.TEAM_GENERAL),
    ({"kind": OptimizerKind.ADAGRAD}, 5, {}, Strategy.TEAM_GENERAL),
])
def test_the_strategy_follows_the_one_rule(optimizer, batch_size, spec_kwargs, strategy):
    X, y = np.ones((10, 4)), np.zeros(10, np.int32)
    state = [np.zeros((4, 3))] if optimizer["kind"] != OptimizerKind.SGD or \
        optimizer.get("momentum") else []
    spec = LayerSpec(np.zeros((4, 3)), None, state, **spec_kwargs)
    runner = EpochRunner(X, None, y, [spec], Loss.SOFTMAX_CROSS_ENTROPY, optimizer,
                         0.0, 0.0, 0.0, batch_size, 1)
    assert runner.strategy == strategy.name.lower()


@pytest.mark.parametrize("clip", [(0.5, 0.0, 0.0), (0.0, 0.5, 0.0), (0.0, 0.0, 0.5)])
def test_any_clipping_takes_the_general_strategy(clip):
    X, y = np.ones((10, 4)), np.zeros(10, np.int32)
    runner = EpochRunner(X, None, y, [LayerSpec(np.zeros((4, 3)), None)],
                         Loss.SOFTMAX_CROSS_ENTROPY, {"kind": OptimizerKind.SGD}, *clip, 1, 1)
    assert runner.strategy == "team_general"
