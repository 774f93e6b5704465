"""The per-layer driver: the same kernels ``fit`` runs fused, called layer by layer.

``Sequential.gradients``, ``loss`` and ``train_on_batch`` (and the
inference path of ``predict``/``evaluate``) run here: a forward pass over the
Dense layers, the loss's fused value and gradient, a backward pass, the
layers' penalties, and one optimizer update, each a compiled kernel called
from Python. It is the reference that the fused epoch loop
(``descend._train``) is tested against, and the driver for anything that
needs the gradients themselves (gradient checking, L-BFGS).
"""
import math
from numbers import Integral

import numpy as np

from descend import _threads, plans
from descend._sample_weight import check_sample_weight, fit_weights
from descend._dense import dropout_seed_py
from descend._optim import soft_threshold_py
from descend._train import penalize_py
from descend._validation import Interval, check, check_bool
from descend.layers import dropout
from descend.training import DivergenceError, set_classes


def forward(net, X, codes, rates, training, seed, omp, keep_for_backward=True, batch=0,
            first_row=0, first_layer=0):
    """Output of the last layer (before the loss's link) for X.

    `keep_for_backward`: the layers cache their inputs for one `backward`;
    False (inference) keeps no reference to X or any activation. Dropout
    masks are those the fused loop draws for rows first_row.. of batch
    `batch` of an epoch whose seed is `seed`. With `first_layer` > 0, X is
    the input of that Dense layer (the caller ran the ones before).
    """
    a = X
    for i in range(first_layer, len(net.dense_layers)):
        layer = net.dense_layers[i]
        if training and rates[i] > 0:
            a = dropout(a, rates[i], dropout_seed_py(seed, batch, i), omp, first_row)
        a = layer.forward(a, codes[i], omp, keep_for_backward)
    return a


def backward(net, grad_output, rates, training, seed, omp, batch=0, first_row=0):
    """[(dW, db), ...] from dL/d(output) after `forward` on the same layers
    (and the same batch, first_row)."""
    return backward_to(net, grad_output, rates, training, seed, omp, batch, first_row)[0]


def backward_to(net, grad_output, rates, training, seed, omp, batch=0, first_row=0,
                last_layer=0):
    """(grads, dL/d(input of layer last_layer)): `backward` down to the Dense
    layer `last_layer` only (grads[i] is None below it; the input gradient is
    None when last_layer is 0)."""
    dense = net.dense_layers
    grads = [None] * len(dense)
    grad = grad_output
    for i in range(len(dense) - 1, last_layer - 1, -1):
        dx, dkernel, dbias = dense[i].backward(grad, need_input_grad=i > 0, n_threads=omp)
        if i > 0 and training and rates[i] > 0:
            dx = dropout(dx, rates[i], dropout_seed_py(seed, batch, i), omp, first_row)
        grads[i] = (dkernel, dbias)
        grad = dx
    return grads, grad


def penalty(net, grads=None):
    """Sum of the layers' penalties; adds their gradient into grads if given.

    Through the fused loop's own ``_penalize`` (one thread, as there): a
    proximal L1 counts in the loss but adds no gradient (its step follows
    the update, :func:`proximal_l1_step`).
    """
    total = 0.0
    for i, layer in enumerate(net.dense_layers):
        for param, reg, k in ((layer.kernel, layer.kernel_regularizer, 0),
                              (layer.bias, layer.bias_regularizer, 1)):
            if reg is None or param is None:
                continue
            g = grads[i][k].reshape(-1) if grads is not None else np.zeros(param.size,
                                                                         param.dtype)
            total += penalize_py(param.reshape(-1), g, reg.l1, reg.l2, reg.proximal)
    return total


def proximal_l1_step(net, omp=1):
    """Soft-threshold the arrays with proximal L1 (after an update)."""
    for layer in net.dense_layers:
        for param, reg in ((layer.kernel, layer.kernel_regularizer),
                           (layer.bias, layer.bias_regularizer)):
            if reg is not None and param is not None and reg.proximal and reg.l1 > 0:
                soft_threshold_py(param.reshape(-1), net.optimizer.learning_rate * reg.l1, omp)


def loss_and_grads(net, X, targets, labels, training=False, seed=0, weights=None):
    """(loss, [(dW, db), ...]) for validated, encoded data: no checks of the result.

    weights: float64 (n,) sample weights (the weighted mean loss), or None."""
    codes, rates = net._activation_codes(), net._dropout_rates()
    omp, blas = net._threads_for(len(X))
    with _threads.blas_threads(blas):
        output = forward(net, X, codes, rates, training, seed, omp)
        loss, grad_output = net.loss_.loss_and_gradient(output, targets, labels, omp, weights)
        grads = backward(net, grad_output, rates, training, seed, omp)
        loss += penalty(net, grads)
    return loss, grads


def gradients(net, X, y, training=False, seed=0, sample_weight=None):
    """``Sequential.gradients``: checked input, finite gradients or FloatingPointError."""
    check_dropout_args(training, seed)
    X, targets, labels, _ = net._prepare(X, y)
    weights = check_sample_weight(sample_weight, len(X), allow_all_zero=True)
    net._require_built()
    loss, grads = loss_and_grads(net, X, targets, labels, training, seed, weights)
    if not (math.isfinite(loss) and all(np.isfinite(g).all() for pair in grads
                                        for g in pair if g is not None)):
        raise FloatingPointError(
            f"the loss ({loss}) or its gradient is NaN or infinite for this (X, y): "
            "the outputs or the targets overflow (weights or inputs out of range)")
    return grads


def loss(net, X, y, training=False, seed=0, sample_weight=None):
    """``Sequential.loss``: the mean loss plus penalties, finite or FloatingPointError."""
    check_dropout_args(training, seed)
    X, targets, labels, _ = net._prepare(X, y)
    weights = check_sample_weight(sample_weight, len(X), allow_all_zero=True)
    net._require_built()
    codes, rates = net._activation_codes(), net._dropout_rates()
    omp, blas = net._threads_for(len(X))
    with _threads.blas_threads(blas):
        output = forward(net, X, codes, rates, training, seed, omp, keep_for_backward=False)
        value = net.loss_.mean_loss(output, targets, labels, omp, weights) + penalty(net)
    if not math.isfinite(value):
        raise FloatingPointError(
            f"the loss is {value} for this (X, y): the outputs or the targets overflow "
            "(weights or inputs out of range)")
    return value


def train_on_batch(net, X, y, seed=0, sample_weight=None, class_weight=None):
    """``Sequential.train_on_batch``: one update, undone if it makes weights non-finite."""
    with _threads.training(net, "train_on_batch", uses=(net.optimizer,)):
        return _train_on_batch(net, X, y, seed, sample_weight, class_weight)


def _train_on_batch(net, X, y, seed, sample_weight, class_weight):
    check_dropout_args(True, seed)
    net._check_compiled()
    net.optimizer.check_dtype(net.dtype)
    # not used by this per-layer path, but a plan that fit, predict and save
    # refuse must not let the network train and then fail to save
    plans.check_plan(net.plan, "plan", len(net.dense_layers))
    X, targets, labels, classes = net._prepare(X, y)
    weights = fit_weights(net, check_sample_weight(sample_weight, len(X),
                                                   allow_all_zero=True),
                          class_weight, targets, labels, allow_all_zero=True)
    if not net.built:
        net.build(X.shape[1])
    value, grads = loss_and_grads(net, X, targets, labels, training=True, seed=seed,
                                  weights=weights)
    flat = [g for pair in grads for g in pair if g is not None]
    if not math.isfinite(value) or not all(np.isfinite(g).all() for g in flat):
        raise DivergenceError(f"non-finite loss {value} or gradient on this batch; no "
                              "update was made (try a smaller learning rate)")
    snapshot = net.get_weights(), net.optimizer.get_state()
    omp, blas = net._threads_for(len(X))
    net.optimizer.build(net._params(), net._param_names())    # names its state
    with _threads.blas_threads(blas):
        net.optimizer.apply_gradients(net._params(), flat, net._decay_flags(), omp)
        proximal_l1_step(net, omp)
    if not net._training_state_finite():
        net.set_weights(snapshot[0])
        net.optimizer.set_state(snapshot[1])
        raise DivergenceError("the update made the weights or the optimizer's state NaN "
                              "or infinite; it was undone (try a smaller learning rate)")
    # the classes are the network's once an update was made with them; a
    # regression's update clears a classifier's, as fit does (was: kept, save refused them)
    set_classes(net, classes)
    return value


def check_dropout_args(training, seed):
    """TypeError/ValueError naming `training` (a bool) or `seed` (an int in [0, 2**64))."""
    check_bool(training, "training")
    seed = check(seed, "seed", [Interval(Integral, 0, 2**64 - 1)])   # a dropout-mask seed

