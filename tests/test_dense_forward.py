"""Dense.forward's public signature: an activation name (None: the layer's own),
checked inputs, and the same numbers as a numpy reference."""
import numpy as np
import pytest

import descend as dn
from descend import activations


def built(units=3, activation="tanh", n_in=4, dtype=np.float64):
    layer = dn.Dense(units, activation=activation)
    layer.build(n_in, np.random.default_rng(0), dtype)
    layer.bias[...] = np.linspace(-0.5, 0.5, units)
    return layer


X = np.random.default_rng(1).normal(size=(5, 4))


@pytest.mark.parametrize("activation, reference", [
    ("tanh", np.tanh),
    ("relu", lambda z: np.maximum(z, 0)),
    ("sigmoid", lambda z: 1 / (1 + np.exp(-z))),
    ("identity", lambda z: z),
])
def test_forward_applies_the_named_activation(activation, reference):
    layer = built(activation="tanh")
    z = X @ layer.kernel + layer.bias
    np.testing.assert_allclose(layer.forward(X, activation), reference(z), rtol=1e-12,
                               atol=1e-12)


def test_none_is_the_layer_own_activation_and_softmax_layers_give_logits():
    layer = built(activation="relu")
    z = X @ layer.kernel + layer.bias
    np.testing.assert_allclose(layer.forward(X), np.maximum(z, 0), rtol=1e-12)
    logits = built(activation="softmax")
    np.testing.assert_allclose(logits.forward(X), X @ logits.kernel + logits.bias, rtol=1e-12)


def test_the_kernel_code_still_works_for_descends_drivers():
    layer = built(activation="identity")
    code = activations.ACTIVATIONS["relu"]
    np.testing.assert_array_equal(layer.forward(X, code), layer.forward(X, "relu"))


def test_backward_follows_the_activation_of_the_forward_call():
    layer = built(activation="tanh")
    a = layer.forward(X, "identity")
    dx, dkernel, dbias = layer.backward(np.ones_like(a), need_input_grad=True)
    np.testing.assert_allclose(dkernel, X.T @ np.ones_like(a), rtol=1e-12)
    np.testing.assert_allclose(dbias, np.full(3, 5.0), rtol=1e-12)
    np.testing.assert_allclose(dx, np.ones_like(a) @ layer.kernel.T, rtol=1e-12)


@pytest.mark.parametrize("call, error, match", [
    (lambda layer: layer.forward(X, "swish"), ValueError, "activation must be one of"),
    (lambda layer: layer.forward(X, 3.5), TypeError, "activation must be None or one of"),
    (lambda layer: layer.forward(X, 99), ValueError, "activation must be None or one of"),
    (lambda layer: layer.forward(X.astype(np.float32)), ValueError,
     r"x must be a C-contiguous float64 array of shape \(n_samples, 4\), got a float32"),
    (lambda layer: layer.forward(X[:, :3].copy()), ValueError, r"got a float64 array of shape "
                                                               r"\(5, 3\)"),
    (lambda layer: layer.forward(np.asfortranarray(X)), ValueError, "not C-contiguous"),
    (lambda layer: layer.forward(X.tolist()), TypeError, "x must be a C-contiguous"),
    (lambda layer: layer.forward(X, n_threads=0), ValueError, "n_threads"),
])
def test_bad_calls_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call(built())


def test_an_unbuilt_layer_says_so():
    with pytest.raises(RuntimeError, match="built"):
        dn.Dense(3).forward(X)
