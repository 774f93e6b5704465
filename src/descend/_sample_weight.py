"""Sample and class weights: checked once, combined into one weight per sample.

Convention (both drivers, every loss, the metrics): the loss of a batch is
the weighted mean ``sum_i w_i l_i / sum_i w_i``. Integer weights then train
exactly as repeating rows would in full-batch training (scikit-learn's
sample-weight equivalence), and scaling all weights by a constant changes
nothing. Keras divides by the batch size instead (``sum_i w_i l_i / n``), so
there the weights' scale multiplies the step size. A batch whose weights sum
to 0 has loss and gradient 0 (its update still runs: penalties, weight decay
and momentum act as on any batch).

A sample's weight is ``sample_weight[i] * class_weight[class of i]``.
"""
from numbers import Integral, Real

import numpy as np

from descend._validation import as_array, error_message

# the smallest positive weight: float64's smallest normal number (below it
# the weights are subnormal and the reciprocal of their sum overflows)
_SMALLEST_WEIGHT = float(np.finfo(np.float64).tiny)

__all__ = ["check_sample_weight", "check_class_weight", "class_weights", "sample_classes",
           "fit_weights", "check_validation_weights"]


def check_sample_weight(sample_weight, n, name="sample_weight", allow_all_zero=False):
    """sample_weight as a float64 (n,) array, or None.

    `allow_all_zero`: one batch of a user's own loop (train_on_batch,
    gradients, loss) may weigh nothing (loss and gradient 0, as such a
    batch in fit); the samples of a fit or an evaluation may not.

    Raises
    ------
    TypeError
        Not an array of real numbers.
    ValueError
        Not 1-D of length n, NaN or infinite, negative, positive but
        subnormal (below 2.2e-308), all zero, or a sum that overflows; the
        message names `name`.
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, (str, bytes, dict)):
        raise TypeError(error_message(name, f"an array of {n} non-negative weights",
                                      sample_weight))
    weights = as_array(sample_weight, name, f"an array of {n} non-negative weights")
    if weights.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {weights.dtype}")
    if weights.shape != (n,):
        raise ValueError(f"{name} must be a 1-D array of {n} weights (one per sample), "
                         f"got shape {weights.shape}")
    weights = np.array(weights, dtype=np.float64)     # a copy: never the caller's array
    bad = ~np.isfinite(weights)
    if bad.any():
        raise ValueError(f"{name} must be finite, got {weights[bad][0]} at index "
                         f"{int(np.flatnonzero(bad)[0])}")
    if n and weights.min() < 0:
        raise ValueError(f"{name} must be >= 0, got {weights.min()} at index "
                         f"{int(np.argmin(weights))}")
    subnormal = (weights > 0) & (weights < _SMALLEST_WEIGHT)
    if subnormal.any():
        # a batch of such weights sums to less than 1 / DBL_MAX: the mean's
        # scale 1 / sum(w) overflows to inf, and the loss and gradient with it
        index = int(np.flatnonzero(subnormal)[0])
        raise ValueError(f"{name} must be 0 or >= {_SMALLEST_WEIGHT:.6g} (float64's smallest "
                         f"normal number), got {weights[index]:.6g} at index {index}; "
                         "multiply the weights by a constant (that changes nothing)")
    with np.errstate(over="ignore"):
        total = weights.sum()
    if n and total == 0 and not allow_all_zero:
        raise ValueError(f"{name}: all the weights are zero; at least one sample needs a "
                         "positive weight")
    if not np.isfinite(total):
        raise ValueError(f"{name}: the weights' sum overflows float64")
    return weights


def check_class_weight(class_weight, name="class_weight"):
    """class_weight as None, "balanced" or a dict of finite weights >= 0.

    Keys are not checked here (that needs the classes, see :func:`class_weights`).
    """
    if class_weight is None or (isinstance(class_weight, str) and class_weight == "balanced"):
        return class_weight
    if not isinstance(class_weight, dict):
        raise TypeError(error_message(name, 'a dict {class: weight}, "balanced" or None',
                                      class_weight))
    for key, value in class_weight.items():
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
            raise TypeError(f"{name}[{key!r}] must be a real number, got {value!r} "
                            f"({type(value).__name__})")
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name}[{key!r}] must be a finite number >= 0, got {value!r}")
    return class_weight


def class_weights(class_weight, ids, n_classes, sample_weight=None, labels=None,
                  name="class_weight", reduce=None):
    """The weight of each class id, a float64 (n_classes,) array.

    Parameters
    ----------
    class_weight : dict or "balanced"
        A dict maps a class to its weight; classes it does not name weigh 1.
        Its keys are class ids in [0, n_classes) (Keras' class indices), or,
        with `labels`, the labels themselves (scikit-learn's). "balanced":
        ``sum(w) / (n_present * sum_{i in class c} w_i)`` per class present,
        w the sample weights (all 1: n_samples / (n_classes * bincount(y)),
        scikit-learn's ``compute_class_weight``); 1 for absent classes.
    ids : int array (n,)
        Class id of each sample.
    sample_weight : float64 array (n,) or None
    labels : array (n_classes,) or None
        The label of each class id, when the dict's keys are labels.
    reduce : callable or None
        "balanced" over data split between processes: sums the per-class
        (weighted) counts over them in place (``MPI.allreduce``), so that
        every process gets the weights of the whole data.

    Raises
    ------
    ValueError
        A key that is not a class; the message names it and the classes.
    """
    class_weight = check_class_weight(class_weight, name)
    if isinstance(class_weight, str):    # "balanced"
        counts = np.bincount(ids, weights=sample_weight, minlength=n_classes).astype(np.float64)
        if reduce is not None:
            counts = reduce(counts)
        present = counts > 0
        weights = np.ones(n_classes)
        weights[present] = counts.sum() / (present.sum() * counts[present])
        return weights
    weights = np.ones(n_classes)
    for key, value in class_weight.items():
        weights[_class_index(key, n_classes, labels, name)] = float(value)
    return weights


def _class_index(key, n_classes, labels, name):
    if labels is not None:
        found = np.flatnonzero(np.asarray(labels) == key) if not isinstance(
            key, (list, tuple, dict)) else []
        if len(found) != 1:
            raise ValueError(f"{name} has key {key!r}, which is not a class; the classes "
                             f"are {np.asarray(labels).tolist()[:20]}")
        return int(found[0])
    if isinstance(key, (bool, np.bool_)) or not isinstance(key, Integral):
        raise TypeError(f"{name} keys must be class indices (ints in [0, {n_classes}), "
                        f"the positions in classes_, as in Keras), got {key!r}")
    if not 0 <= key < n_classes:
        raise ValueError(f"{name} has key {key}, which is not a class index in "
                         f"[0, {n_classes})")
    return int(key)


def sample_classes(loss, targets, labels, name="class_weight"):
    """(class id of each sample, number of classes) for the model's encoded y.

    Raises ValueError when samples have no single class: regression targets,
    multi-label outputs, or soft binary targets.
    """
    if labels is not None:
        return labels.astype(np.intp), None
    if not loss.is_classifier:
        raise ValueError(f"{name} needs a classification loss; the network uses "
                         f"{loss.name!r} (give sample_weight instead)")
    if targets.shape[1] != 1:
        raise ValueError(f"{name} needs one class per sample, but y is a multi-label 0/1 "
                         f"matrix of {targets.shape[1]} outputs (give sample_weight instead)")
    column = targets[:, 0]
    if not np.isin(column, (0, 1)).all():
        raise ValueError(f"{name} needs hard 0/1 targets, but y holds probabilities in "
                         "(0, 1) (give sample_weight instead)")
    return column.astype(np.intp), 2


def fit_weights(model, sample_weight, class_weight, targets, labels, allow_all_zero=False,
                reduce=None):
    """One float64 weight per training sample (sample_weight times its class's
    weight), or None when neither is given. sample_weight is already checked.
    `reduce`: see :func:`class_weights` (a sharded distributed fit)."""
    if class_weight is None:
        return sample_weight
    ids, n_classes = sample_classes(model.loss_, targets, labels)
    if n_classes is None:       # softmax: one class per output
        n_classes = model.dense_layers[-1].units
    per_class = class_weights(class_weight, ids, n_classes, sample_weight, reduce=reduce)
    weights = per_class[ids] if sample_weight is None else sample_weight * per_class[ids]
    return check_sample_weight(weights, len(ids), "sample_weight times class_weight",
                               allow_all_zero)


def check_validation_weights(validation_data, n_val, allow_all_zero=False):
    """The third element of validation_data (Keras' sample weights), checked
    (`allow_all_zero`: one rank's shard of a sharded distributed fit)."""
    if len(validation_data) < 3:
        return None
    return check_sample_weight(validation_data[2], n_val, "validation_data[2]",
                               allow_all_zero)

