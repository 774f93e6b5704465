"""Gradient checking: backpropagation against central finite differences.

Backpropagation gives every partial derivative of the loss in one backward
pass; finite differences need two loss evaluations per parameter. Comparing
the two is the standard test that a backward pass is right.
"""
import math

import numpy as np

from descend._validation import InstanceOf, check, check_float


# central differences' best step, about u^(1/3) for u the rounding error
# of a loss evaluation in the dtype (see numerical_gradients)
DEFAULT_EPS = {"float64": 1e-5, "float32": 3e-3}


def numerical_gradients(net, X, y, eps=None, training=False, seed=0):
    """Central finite differences of ``net.loss`` w.r.t. every parameter.

    dL/dw_i ~ (L(w + eps e_i) - L(w - eps e_i)) / (2 eps); 2 P loss
    evaluations for P parameters, so O(P^2) work against O(P) for
    backpropagation. The network's parameters are restored afterwards.

    For float64 the default eps = 1e-5 balances the two errors of a central difference:
    truncation, about ``eps^2 |L'''| / 6``, and rounding, about ``u |L| / eps`` with
    u the float64 rounding error of a loss evaluation (a few times 1e-16);
    their sum is smallest near eps = u^(1/3), about 1e-5 (Numerical Recipes,
    section 5.7). With eps = 1e-6 rounding dominates: on a 5-layer sigmoid
    net, whose first layers' gradients are ~1e-3, correct gradients showed
    relative errors above 1e-6. A float32 network's losses round at about
    1e-7, so its best eps is near 3e-3, the default for float32 (eps=None):
    on a 4-3-2 tanh net with softmax cross-entropy, against float64
    backpropagation at the same weights, the largest error relative to the
    largest gradient was 2e-3 at eps = 1e-5, 9e-6 at 1e-3, 5e-6 at 3e-3 and
    2e-5 at 1e-2. (``check_gradients`` runs on a float64 copy instead.)
    The difference is divided by the step the stored weights actually took,
    ``w_+ - w_-`` in the network's dtype, not by 2 eps: in float32,
    ``w + eps`` rounds to a step up to 0.3% off for eps = 1e-5.

    ``net.loss`` counts a proximal L1 penalty, which has no gradient in
    ``net.gradients`` (its soft-threshold step follows each update): with
    one, the two differ by its subgradient; ``check_gradients`` leaves it
    out of both.

    Parameters
    ----------
    net : Sequential
        A compiled, built network; its parameters are perturbed one at a
        time and restored.
    X, y
        Inputs and targets as for ``net.loss``.
    eps : float > 0 or None
        The step; None: ``DEFAULT_EPS`` for the network's dtype (1e-5 for
        float64, 3e-3 for float32).
    training, seed
        As for ``net.loss`` (dropout on, and the masks' seed).

    Returns
    -------
    list of (dW, db) shaped like ``net.gradients`` (float64).

    Raises
    ------
    RuntimeError
        The network is not built (no input_dim given and never fit), as
        ``check_gradients``.
    ValueError
        eps is not a positive number, so small that a weight plus and
        minus eps round to the same value in the network's dtype, or so
        large that they overflow it or that a weight moved by it makes the
        loss overflow; or a weight is NaN or infinite (the network's
        parameters are restored).
    FloatingPointError
        The loss is not finite at the network's own weights (as
        ``net.loss`` raises it).
    """
    _check_net(net)
    net._require_built()
    eps = (DEFAULT_EPS[np.dtype(net.dtype).name] if eps is None else
           check_float(eps, "eps", minimum=0.0, min_inclusive=False))
    grads = []
    for layer in net.dense_layers:
        pair = []
        for param in (layer.kernel, layer.bias):
            if param is None:
                pair.append(None)
                continue
            flat = param.reshape(-1)
            grad = np.empty(flat.size, dtype=np.float64)
            for i in range(flat.size):
                original = flat[i]
                upper, lower = _stored_steps(original, eps, flat.dtype)
                try:        # the weight is restored even if the loss raises
                    flat[i] = upper
                    plus = net.loss(X, y, training=training, seed=seed)
                    flat[i] = lower
                    minus = net.loss(X, y, training=training, seed=seed)
                except FloatingPointError as exc:
                    flat[i] = original  # (before finally: the check reads the loss at w)
                    _raise_for_the_step(net, X, y, training, seed, eps, original, exc)
                finally:
                    flat[i] = original
                grad[i] = (plus - minus) / (upper - lower)
            pair.append(grad.reshape(param.shape))
        grads.append(tuple(pair))
    return grads


def _raise_for_the_step(net, X, y, training, seed, eps, weight, exc):
    """After `exc`, a loss not finite with `weight` moved by eps: a ValueError
    naming eps if the loss is finite at the weights themselves, else the
    loss's own error there (weights out of range before any step are not
    eps's doing). One more loss evaluation, on this path only."""
    net.loss(X, y, training=training, seed=seed)
    raise ValueError(f"eps={eps!r} is too large for this network: with the weight "
                     f"{float(weight)!r} moved by it, {exc}; use a smaller eps") from None


def check_gradients(net, X, y, eps=1e-5, training=False, seed=0):
    """Max relative error of backprop gradients against finite differences.

    The check runs on a float64 copy of the network (a float32 network is
    cast), so rounding does not hide or fake errors. For each parameter
    array (each kernel and bias) the error is
    ``max_i |g_bp,i - g_fd,i| / max(max_i |g_bp,i|, max_i |g_fd,i|)``,
    the largest discrepancy relative to the array's largest gradient
    (0 when both are all zeros); the result is the maximum over arrays.
    With the default eps = 1e-5 a correct backward pass gives 1e-10 to 1e-6:
    larger when the gradients are small (a trained network: the finite
    differences' rounding is relative to the loss, not to the gradient) or
    when a ReLU-family kink lies within eps of a pre-activation (see
    `numerical_gradients`). The README's digits net, trained 20 epochs,
    float32 cast to float64, gives 2e-9 to 2e-7 (relu), 1e-9 to 1.2e-7
    (tanh), 1e-9 to 9e-7 (gelu) over four 5-row slices of its test set.
    A proximal L1 penalty (``regularizers.l1(..., proximal=True)``) counts
    in ``net.loss`` but has no gradient (its soft-threshold step follows
    each update): both sides leave it out.

    Parameters
    ----------
    net : descend.Sequential
        Compiled and built.
    X, y : arrays
        Keep them small: the cost is 2 P forward passes over X.
    eps : float
        Finite-difference step.
    training, seed : as ``Sequential.gradients`` (dropout with a fixed mask).

    Returns
    -------
    float
    """
    _check_net(net)
    net64 = _as_float64(net)
    # checked as gradients checks X, converted once for the 2 P losses (was:
    # np.asarray, which took the real part of complex X and let numpy's own
    # message name no argument for strings)
    X = net64._check_X(X)
    backprop = net64.gradients(X, y, training=training, seed=seed)
    numeric = numerical_gradients(net64, X, y, eps=eps, training=training, seed=seed)
    worst = 0.0
    for pair_bp, pair_fd in zip(backprop, numeric):
        for g_bp, g_fd in zip(pair_bp, pair_fd):
            if g_bp is None:
                continue
            scale = max(np.abs(g_bp).max(), np.abs(g_fd).max())
            if scale > 0:
                worst = max(worst, float(np.abs(g_bp - g_fd).max() / scale))
    return worst


def _stored_steps(original, eps, dtype):
    """w + eps and w - eps as the network's dtype stores them (floats), for
    the weight `original`; ValueError, before any weight moves, when they
    round to the same value, leave the dtype's range or the weight is not
    finite (was: "use a larger eps" for an infinite weight, which no eps
    helps, and a NaN loss for an eps past float32's range)."""
    weight = float(original)
    if not math.isfinite(weight):
        raise ValueError(f"the network holds a weight of {weight!r}: numerical gradients "
                         "need finite weights (set them with set_weights)")
    with np.errstate(over="ignore"):
        upper, lower = (float(dtype.type(weight + step)) for step in (eps, -eps))
    if not math.isfinite(upper - lower):
        raise ValueError(f"eps={eps!r} is too large for the network's {dtype} weights: "
                         f"the weight {weight!r} plus or minus eps overflows; use a "
                         "smaller eps")
    if upper == lower:
        raise ValueError(
            f"eps={eps!r} is below half the spacing of the {dtype} "
            f"numbers near the weight {weight!r}: w + eps and "
            f"w - eps round to the same value; use a larger eps")
    return upper, lower


def _check_net(net):
    from descend.model import Sequential
    check(net, "net", [InstanceOf(Sequential, description="a descend Sequential")])


def _as_float64(net):
    """A float64 copy of a compiled network with the same weights and classes."""
    from descend.model import Sequential
    from descend import layers as layers_module

    net._check_compiled()
    net._require_built()
    copy = Sequential([layers_module.from_config(_smooth_part(layer.get_config()))
                       for layer in net.layers],
                      input_dim=net.n_features_in_, dtype="float64", seed=0,
                      n_threads=net.n_threads)
    copy.compile(loss=type(net.loss_)(), optimizer="sgd")
    copy.set_weights(net.get_weights())
    copy.classes_ = net.classes_
    return copy


def _smooth_part(config):
    """A layer's config without its proximal L1 penalties: backpropagation
    leaves them out (their soft-threshold step follows the update), so the
    finite differences they are compared with must too."""
    config = dict(config)
    for key in ("kernel_regularizer", "bias_regularizer"):
        regularizer = config.get(key)
        if regularizer and regularizer["proximal"]:
            config[key] = dict(regularizer, l1=0.0)
    return config
