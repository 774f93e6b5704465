"""Losses, each fused with its output link (computed in ``_losses.pyx``).

===================== ======== =================================================== ==========================
name                  link     loss per sample (mean over the batch)               gradient w.r.t. the output
===================== ======== =================================================== ==========================
mean_squared_error    identity mean_j (o_j - t_j)^2                                2 (o - t) / k
binary_cross_entropy  sigmoid  mean_j max(o_j,0) - o_j t_j + log1p(exp(-abs(o_j))) (sigmoid(o) - t) / k
softmax_cross_entropy softmax  logsumexp(o) - o_y                                  softmax(o) - onehot(y)
===================== ======== =================================================== ==========================

``o`` are the last layer's outputs (logits for the cross-entropies), k the
number of outputs. The mean over the batch is then taken, so the gradient of
a batch of n carries a 1/n factor. With sample weights w_i the mean is the
weighted one, sum_i w_i l_i / sum_i w_i (a batch whose weights sum to 0 has
loss and gradient 0). Losses are summed in float64.

Each loss object also turns user targets into what the kernel reads
(``encode``): class labels of any type become integer ids kept in
``classes_``, one-hot rows become ids, binary labels become 0/1 columns.
"""
import abc
import numpy as np

from descend import _losses
from descend._contract import Activation, Loss as LossCode
from descend._validation import check_storable_labels, error_message

# the kernels' loss codes (descend._contract.Loss: one definition)
MEAN_SQUARED_ERROR = LossCode.MEAN_SQUARED_ERROR
BINARY_CROSS_ENTROPY = LossCode.BINARY_CROSS_ENTROPY
SOFTMAX_CROSS_ENTROPY = LossCode.SOFTMAX_CROSS_ENTROPY
ALIASES = {"mse": "mean_squared_error",
           "binary_crossentropy": "binary_cross_entropy",
           "categorical_crossentropy": "softmax_cross_entropy",
           "sparse_categorical_crossentropy": "softmax_cross_entropy",
           "cross_entropy": "softmax_cross_entropy"}


class Loss(abc.ABC):
    """Base class: code (kernel enum), name, link, is_classifier."""
    code = None
    name = None
    link = "identity"
    is_classifier = False

    @abc.abstractmethod
    def encode(self, y, n_outputs, classes=None, dtype=np.float32, name="y"):
        """(targets (n, k) array or None, labels (n,) int32 or None, ``classes_``)."""

    def grad_scale(self, n, k):
        """1 / number of averaged terms, so the kernel returns d(mean loss): 1 / n
        for softmax_cross_entropy, 1 / (n k) for the elementwise losses (the
        fused loop's ``mean_scale``, through its twin). With sample weights, n
        is their sum (0 gives 0: a batch of zero total weight adds nothing)."""
        return _losses.mean_scale_py(self.code, n, k)

    def accuracy(self, n_correct, n, k):
        """Fraction of correct predictions among n samples of k outputs, from the
        count of the kernels' ``count_correct``: per sample for
        softmax_cross_entropy (n_correct / n), per output for
        binary_cross_entropy (n_correct / (n k)); None for regression."""
        if not self.is_classifier:
            return None
        return n_correct / (n if self.code == SOFTMAX_CROSS_ENTROPY else n * k)

    def count_correct(self, output, targets, labels, weights=None):
        """Correct predictions in output (n, k) for encoded targets/labels (an
        int); with weights (n,) float64, the sum of the correct ones' weights."""
        from descend._train import count_correct_py
        return count_correct_py(self.code, output, targets, labels, weights)

    def mean_loss(self, output, targets, labels, n_threads=1, weights=None):
        """Mean loss of output (n, k) against encoded targets (float); with
        weights (n,) float64, the weighted mean sum_i w_i l_i / sum_i w_i."""
        n, k = output.shape
        total = _losses.loss_and_gradient_py(self.code, output, targets, labels, None,
                                             1.0, n_threads, weights)
        return total * self.grad_scale(_total_weight(n, weights), k)

    def loss_and_gradient(self, output, targets, labels, n_threads=1, weights=None):
        """(mean loss, d mean loss / d output) for output (n, k); with weights
        (n,) float64, of the weighted mean sum_i w_i l_i / sum_i w_i."""
        n, k = output.shape
        grad = np.empty_like(output)
        scale = self.grad_scale(_total_weight(n, weights), k)
        total = _losses.loss_and_gradient_py(self.code, output, targets, labels, grad,
                                             scale, n_threads, weights)
        return total * scale, grad

    # n_threads is the links' common signature; the identity link runs no threads
    def apply_link(self, output, n_threads=1):  # pragma: no mutate
        return output

    def __repr__(self):
        return f"{type(self).__name__}()"


class MeanSquaredError(Loss):
    """Mean squared error over samples and outputs (identity output).

    Targets: (n,) or (n, k) real numbers, k = number of outputs.

    Examples
    --------
    Two samples, one output: mean of (1 - 0)^2 and (3 - 1)^2, and the
    gradient 2 (o - t) / (n k):

    >>> import numpy as np
    >>> from descend import losses
    >>> mse = losses.get("mean_squared_error")
    >>> targets, _, _ = mse.encode(np.array([0.0, 1.0]), n_outputs=1, dtype=np.float64)
    >>> loss, grad = mse.loss_and_gradient(np.array([[1.0], [3.0]]), targets, None)
    >>> loss
    2.5
    >>> grad.ravel()
    array([1., 2.])
    """
    code = MEAN_SQUARED_ERROR
    name = "mean_squared_error"

    def encode(self, y, n_outputs, classes=None, dtype=np.float32, name="y"):
        t = np.asarray(y)
        if t.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real-valued targets for mean_squared_error, "
                            f"got dtype {t.dtype}")
        if t.ndim == 1:
            t = t.reshape(-1, 1)
        if t.ndim != 2 or t.shape[1] != n_outputs:
            # only a single output takes a 1-D y
            accepted = ("(n,) or (n, 1) to match the 1 output" if n_outputs == 1 else
                        f"(n, {n_outputs}) to match the {n_outputs} outputs")
            raise ValueError(f"{name} must have shape {accepted}, got shape {np.shape(y)}")
        if not np.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        with np.errstate(over="ignore"):    # 1e39 in a float32 network: inf, refused
            t = np.ascontiguousarray(t, dtype=dtype)
        if not np.isfinite(t).all():
            raise ValueError(f"{name} holds values beyond the range of the network's dtype "
                             f"{np.dtype(dtype).name} (largest {np.finfo(dtype).max.item()!r})")
        return t, None, None


class BinaryCrossEntropy(Loss):
    """Binary cross-entropy from logits (sigmoid link), per output.

    Targets: (n,) labels with at most two distinct values (kept in ``classes_``,
    the second one is the positive class; 0/1 and bools map to themselves),
    or (n, k) values in [0, 1] for k independent binary outputs.

    Examples
    --------
    Logits 0 give probability 1/2: the loss is log 2 and the gradient
    (sigmoid(o) - t) / (n k):

    >>> import numpy as np
    >>> from descend import losses
    >>> bce = losses.get("binary_cross_entropy")
    >>> targets, _, classes = bce.encode(np.array([0, 1]), n_outputs=1, dtype=np.float64)
    >>> loss, grad = bce.loss_and_gradient(np.zeros((2, 1)), targets, None)
    >>> round(loss, 6), grad.ravel()
    (0.693147, array([ 0.25, -0.25]))
    """
    code = BINARY_CROSS_ENTROPY
    name = "binary_cross_entropy"
    link = "sigmoid"
    is_classifier = True

    def encode(self, y, n_outputs, classes=None, dtype=np.float32, name="y"):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == n_outputs and y.dtype.kind in "biuf" and (
                n_outputs > 1 or classes is None):
            t = np.ascontiguousarray(y, dtype=dtype)
            if not (np.isfinite(t).all() and (t >= 0).all() and (t <= 1).all()):
                raise ValueError(f"{name} must hold targets in [0, 1] for binary_cross_entropy")
            return t, None, classes if classes is not None else np.array([0, 1])
        if n_outputs != 1:
            raise ValueError(f"{name} must have shape (n, {n_outputs}) with values in [0, 1] "
                             f"for {n_outputs} binary outputs, got shape {y.shape}")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"{name} must be 1-D labels or (n, 1), got shape {y.shape}")
        _check_labels(y, name)
        if classes is None:
            found = _unique(y, name)
            # 0/1 (or bool) labels keep their meaning even if one is absent
            if y.dtype.kind in "biuf" and set(found.tolist()) <= {0, 1}:
                classes = np.array([0, 1], dtype=y.dtype)
            else:
                classes = found
            if len(classes) != 2:
                # one label that is not 0/1: which class would it be?
                count = "a single class" if len(found) == 1 else f"{len(found)} classes"
                raise ValueError(f"binary_cross_entropy takes two classes, but {name} has "
                                 f"{count}: {found[:10].tolist()}; use 0/1 labels, or "
                                 "declare both with partial_fit(classes=...)")
        ids = _label_ids(y, classes, name)
        return np.ascontiguousarray(ids.reshape(-1, 1), dtype=dtype), None, classes

    # the sigmoid link runs on one thread whatever n_threads says (elementwise, cheap)
    def apply_link(self, output, n_threads=1):  # pragma: no mutate
        from descend._dense import activation_forward_py
        out = np.empty_like(output)
        activation_forward_py(output, out, Activation.SIGMOID, 0.0)
        return out


class SoftmaxCrossEntropy(Loss):
    """Softmax cross-entropy from logits (max-shifted, stable).

    Targets: integer class ids in [0, k), one-hot rows (n, k), or any labels
    (strings included): these are sorted into ``classes_`` (as
    ``numpy.unique``), which must then have exactly k entries.

    Examples
    --------
    String labels become class ids; equal logits give log 2 per sample and
    the gradient (softmax(o) - onehot(y)) / n:

    >>> import numpy as np
    >>> from descend import losses
    >>> sce = losses.get("softmax_cross_entropy")
    >>> _, labels, classes = sce.encode(np.array(["cat", "dog"]), n_outputs=2)
    >>> classes.tolist(), labels.tolist()
    (['cat', 'dog'], [0, 1])
    >>> loss, grad = sce.loss_and_gradient(np.zeros((2, 2)), None, labels)
    >>> round(loss, 6)
    0.693147
    >>> grad
    array([[-0.25,  0.25],
           [ 0.25, -0.25]])
    """
    code = SOFTMAX_CROSS_ENTROPY
    name = "softmax_cross_entropy"
    link = "softmax"
    is_classifier = True

    def encode(self, y, n_outputs, classes=None, dtype=np.float32, name="y"):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.ndim == 2:
            if y.shape[1] != n_outputs:
                raise ValueError(f"one-hot {name} has {y.shape[1]} columns, but the network "
                                 f"has {n_outputs} outputs")
            if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all() or not (
                    y.sum(axis=1) == 1).all():
                raise ValueError(f"2-D {name} must be one-hot rows (a single 1 per row); "
                                 "give class ids as a 1-D array instead")
            labels = np.argmax(y, axis=1)
            return None, np.ascontiguousarray(labels, dtype=np.int32), (
                classes if classes is not None else np.arange(n_outputs))
        if y.ndim != 1:
            raise ValueError(f"{name} must be 1-D labels or 2-D one-hot, got shape {y.shape}")
        _check_labels(y, name)
        if classes is None:
            if y.dtype.kind in "iu":
                classes = np.arange(n_outputs)
            else:
                classes = _unique(y, name)
                if len(classes) != n_outputs:
                    raise ValueError(
                        f"{name} has {len(classes)} distinct labels, but the network has "
                        f"{n_outputs} outputs; pass integer class ids or match the last "
                        "layer's units to the number of classes")
        ids = _label_ids(y, classes, name)
        return None, np.ascontiguousarray(ids, dtype=np.int32), classes

    # one row a thread, each row's softmax the same bits on any thread: the default
    # thread count changes no value
    def apply_link(self, output, n_threads=1):  # pragma: no mutate
        out = np.empty_like(output)
        _losses.softmax_py(output, out, n_threads)
        return out


def _total_weight(n, weights):
    """What the mean divides by: the number of samples, or the sum of their weights."""
    return n if weights is None else float(np.sum(weights))


def _unique(y, name):
    """np.unique(y), or a TypeError naming y if its labels cannot be ordered."""
    try:
        return np.unique(y)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in y.ravel()[:1000].tolist()})
        raise TypeError(f"{name} labels must be comparable with each other (all numbers or "
                        f"all strings), got a mix of {kinds}") from None


def _check_labels(y, name):
    """Class labels: no complex numbers (they were taken as classes, and
    1+0j matched class 1), dates, durations or raw records (numpy kinds M,
    m, V: refused in X too), no NaN or infinity, none numpy cannot store
    (``check_storable_labels``)."""
    if y.dtype.kind in "cmMV" or (y.dtype.kind == "O" and any(
            isinstance(v, (complex, np.complexfloating)) for v in y.ravel().tolist())):
        raise TypeError(f"{name} labels must be ints, bools, floats or strings, got "
                        f"{y.dtype} values" + (" holding complex numbers"
                                               if y.dtype.kind == "O" else ""))
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError(f"{name} contains NaN or infinite labels")
    if y.dtype.kind == "O":     # (str arrays cannot hold trailing NULs: numpy dropped them)
        check_storable_labels(y.ravel().tolist(), name)


def _class_id_hint(n_classes):
    """What to do about int labels outside [0, n_classes): a network with too
    few outputs for its classes, or 1-based labels, are the usual causes."""
    return (f"; int labels are class ids 0 to {n_classes - 1}: give the last layer one "
            "unit per class (one unit for binary cross-entropy), shift 1-based labels "
            "down by 1, or pass float or str labels to have them sorted into classes_")


def _label_ids(y, classes, name):
    """Index of each label in classes, or a ValueError naming unknown labels."""
    if y.dtype.kind in "iu" and classes.dtype.kind in "iu" and np.array_equal(
            classes, np.arange(len(classes))):
        bad = (y < 0) | (y >= len(classes))
        if bad.any():
            raise ValueError(f"{name} has class ids outside [0, {len(classes)}): "
                             f"{np.unique(y[bad])[:10].tolist()}{_class_id_hint(len(classes))}")
        return y.astype(np.int64)
    try:
        ids = np.searchsorted(classes, y)
    except TypeError:
        raise TypeError(f"{name} labels of type {y.dtype} cannot be compared with "
                        f"classes_ of type {classes.dtype}") from None
    ids = np.clip(ids, 0, len(classes) - 1)
    unknown = classes[ids] != y
    if np.any(unknown):
        raise ValueError(f"{name} has labels not in classes_ {classes.tolist()[:20]}: "
                         f"{np.unique(y[unknown])[:10].tolist()}")
    return ids


_LOSSES = {cls.name: cls for cls in (MeanSquaredError, BinaryCrossEntropy, SoftmaxCrossEntropy)}


def get(identifier):
    """A Loss from its name (or alias) or a Loss instance."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        name = ALIASES.get(identifier, identifier)
        if name in _LOSSES:
            return _LOSSES[name]()
    raise (ValueError if isinstance(identifier, str) else TypeError)(error_message(
        "loss", f"one of {sorted(_LOSSES)} (or aliases {sorted(ALIASES)}) or a descend Loss",
        identifier))
