"""The losses module as a whole: each loss's value and gradient against its
definition (hand-computed and by float64 finite differences), weighted means,
the accuracy and correct-count arithmetic, the output links, every branch of
the target encoders with their exact messages, and `get` with its aliases.

Written after a mutation sample of descend.losses: each group pins a behaviour
of the module (every encoder branch, every message), not one sampled mutant.
Expected values are computed here from the definitions (log-likelihoods,
sigmoid, softmax written out in numpy), never by descend.
"""
import math

import numpy as np
import pytest

from descend.losses import _class_id_hint

from descend import losses as L


def sigmoid(o):
    return 1.0 / (1.0 + np.exp(-o))


def softmax(o):
    e = np.exp(o - o.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def per_sample_loss(name, o, t, labels):
    """Each sample's loss from the textbook definition."""
    if name == "mean_squared_error":
        return ((o - t) ** 2).mean(axis=1)
    if name == "binary_cross_entropy":
        p = sigmoid(o)
        return (-(t * np.log(p) + (1 - t) * np.log(1 - p))).mean(axis=1)
    return -np.log(softmax(o)[np.arange(len(o)), labels])


def finite_difference(loss, o, t, labels, weights, h=1e-6):
    grad = np.zeros_like(o)
    for idx in np.ndindex(*o.shape):
        up, down = o.copy(), o.copy()
        up[idx] += h
        down[idx] -= h
        grad[idx] = (loss.mean_loss(up, t, labels, weights=weights)
                     - loss.mean_loss(down, t, labels, weights=weights)) / (2 * h)
    return grad


OUT = np.array([[0.5, -1.0, 2.0], [-2.0, 3.0, 0.25], [1.5, 0.0, -0.75], [0.0, 0.5, 1.0]])
REAL_TARGETS = np.array([[0.0, 1.0, 2.0], [1.0, 1.0, -1.0], [0.5, 0.0, 0.0], [2.0, -1.0, 1.0]])
BINARY_TARGETS = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.5], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
LABELS = np.array([2, 0, 1, 1], dtype=np.int32)
WEIGHTS = np.array([1.0, 3.0, 0.5, 0.0])

CASES = {
    "mean_squared_error": (REAL_TARGETS, None),
    "binary_cross_entropy": (BINARY_TARGETS, None),
    "softmax_cross_entropy": (None, LABELS),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_and_gradient_follow_the_definition(name, weighted):
    loss = L.get(name)
    targets, labels = CASES[name]
    weights = WEIGHTS if weighted else None
    per_sample = per_sample_loss(name, OUT, targets, labels)
    w = np.ones(len(OUT)) if weights is None else weights
    expected = float(np.sum(w * per_sample) / np.sum(w))
    value, grad = loss.loss_and_gradient(OUT, targets, labels, weights=weights)
    assert value == pytest.approx(expected, rel=1e-13)
    assert loss.mean_loss(OUT, targets, labels, weights=weights) == pytest.approx(expected,
                                                                                  rel=1e-13)
    assert grad.shape == OUT.shape and grad.dtype == np.float64
    np.testing.assert_allclose(grad, finite_difference(loss, OUT, targets, labels, weights),
                               rtol=1e-6, atol=1e-9)
    # the closed forms of the module docstring's table, times w_i / sum w
    k = OUT.shape[1]
    if name == "mean_squared_error":
        closed = 2 * (OUT - targets) / k
    elif name == "binary_cross_entropy":
        closed = (sigmoid(OUT) - targets) / k
    else:
        closed = softmax(OUT) - np.eye(k)[labels]
    np.testing.assert_allclose(grad, closed * (w / w.sum())[:, None], rtol=1e-12, atol=1e-15)


def test_hand_computed_values():
    mse = L.get("mse")
    # (1 - 0)^2, (2 - 2)^2, (3 - 1)^2, (-1 - 1)^2: mean 9/4; gradient 2 (o - t) / 4
    out, t = np.array([[1.0, 2.0], [3.0, -1.0]]), np.array([[0.0, 2.0], [1.0, 1.0]])
    value, grad = mse.loss_and_gradient(out, t, None)
    assert value == 2.25
    np.testing.assert_array_equal(grad, [[0.5, 0.0], [1.0, -1.0]])
    # weights 1 and 3: per-sample losses 0.5 and 4, weighted mean (0.5 + 12) / 4
    value, grad = mse.loss_and_gradient(out, t, None, weights=np.array([1.0, 3.0]))
    assert value == 3.125
    np.testing.assert_array_equal(grad, [[0.25, 0.0], [1.5, -1.5]])
    # softmax of equal logits is uniform: log 3 per sample, gradient (1/3 - onehot) / n
    sce = L.get("cross_entropy")
    value, grad = sce.loss_and_gradient(np.zeros((2, 3)), None, np.array([0, 2], np.int32))
    assert value == pytest.approx(math.log(3), rel=1e-15)
    np.testing.assert_allclose(grad, [[-1 / 3, 1 / 6, 1 / 6], [1 / 6, 1 / 6, -1 / 3]],
                               rtol=1e-15)


def test_a_batch_of_zero_total_weight_has_loss_and_gradient_zero():
    for name, (targets, labels) in CASES.items():
        loss = L.get(name)
        value, grad = loss.loss_and_gradient(OUT, targets, labels, weights=np.zeros(4))
        assert value == 0.0 and loss.mean_loss(OUT, targets, labels,
                                               weights=np.zeros(4)) == 0.0
        np.testing.assert_array_equal(grad, 0.0)


def random_batches(n, seed):
    """(loss, outputs, targets, labels) of n random samples of 4 outputs, per loss."""
    rng = np.random.default_rng(seed)
    out, targets = rng.normal(size=(n, 4)), rng.uniform(size=(n, 4))
    labels = rng.integers(0, 4, size=n).astype(np.int32)
    for name in CASES:
        sce = name == "softmax_cross_entropy"
        yield L.get(name), out, None if sce else targets, labels if sce else None


def test_losses_on_threads_give_the_one_thread_values():
    for loss, out, t, lab in random_batches(300, seed=0):
        one = loss.loss_and_gradient(out, t, lab, n_threads=1)
        two = loss.loss_and_gradient(out, t, lab, n_threads=2)
        assert two[0] == pytest.approx(one[0], rel=1e-13)
        np.testing.assert_allclose(two[1], one[1], rtol=1e-13)
        assert loss.mean_loss(out, t, lab, n_threads=2) == pytest.approx(one[0], rel=1e-13)


def test_losses_run_on_one_thread_by_default():
    # the documented default n_threads=1: the same bits as asking for one thread (two
    # threads add the per-sample losses in another order)
    for loss, out, t, lab in random_batches(2000, seed=1):
        value, grad = loss.loss_and_gradient(out, t, lab)
        one_value, one_grad = loss.loss_and_gradient(out, t, lab, n_threads=1)
        assert value == one_value
        np.testing.assert_array_equal(grad, one_grad)
        assert loss.mean_loss(out, t, lab) == loss.mean_loss(out, t, lab, n_threads=1)


def test_float32_outputs_give_float32_gradients():
    out = OUT.astype(np.float32)
    value, grad = L.get("mean_squared_error").loss_and_gradient(
        out, REAL_TARGETS.astype(np.float32), None)
    assert grad.dtype == np.float32 and isinstance(value, float)
    assert value == pytest.approx(float(per_sample_loss("mean_squared_error", OUT,
                                                        REAL_TARGETS, None).mean()), rel=1e-6)


# ---------------------------------------------------------------------------
# the mean's scale, accuracy and correct counts
# ---------------------------------------------------------------------------
def test_grad_scale_is_one_over_the_number_of_averaged_terms():
    assert L.get("mean_squared_error").grad_scale(4, 3) == pytest.approx(1 / 12, rel=1e-15)
    assert L.get("binary_cross_entropy").grad_scale(4, 3) == pytest.approx(1 / 12, rel=1e-15)
    assert L.get("softmax_cross_entropy").grad_scale(4, 3) == pytest.approx(1 / 4, rel=1e-15)
    assert L.get("softmax_cross_entropy").grad_scale(2.5, 3) == pytest.approx(0.4, rel=1e-15)
    assert L.get("mean_squared_error").grad_scale(0.0, 3) == 0.0


def test_accuracy_divides_per_sample_or_per_output():
    assert L.get("softmax_cross_entropy").accuracy(3, 4, 5) == 0.75
    assert L.get("binary_cross_entropy").accuracy(6, 4, 3) == 0.5
    assert L.get("binary_cross_entropy").accuracy(3, 4, 1) == 0.75
    assert L.get("mean_squared_error").accuracy(3, 4, 1) is None


def test_count_correct_counts_samples_or_outputs_and_weighs_them():
    sce, bce = L.get("softmax_cross_entropy"), L.get("binary_cross_entropy")
    out = np.array([[1.0, 2.0, 3.0], [0.0, 5.0, 0.0]])       # argmax 2, 1
    labels = np.array([2, 0], np.int32)
    assert sce.count_correct(out, None, labels) == 1
    assert sce.count_correct(out, None, labels, np.array([0.25, 2.0])) == 0.25
    # outputs > 0 predict 1: [1, 0], [0, 1] against [1, 0], [1, 1]: 3 of 4 right
    logits, targets = np.array([[0.5, -1.0], [-2.0, 3.0]]), np.array([[1.0, 0.0], [1.0, 1.0]])
    assert bce.count_correct(logits, targets, None) == 3
    assert bce.count_correct(logits, targets, None, np.array([2.0, 0.5])) == 2 * 2 + 0.5


# ---------------------------------------------------------------------------
# links
# ---------------------------------------------------------------------------
def test_links_map_outputs_to_predictions():
    out = np.array([[0.0, 2.0, -1.0], [3.0, 3.0, 3.0]], dtype=np.float32)
    before = out.copy()
    assert L.get("mean_squared_error").apply_link(out) is out      # identity
    p = L.get("binary_cross_entropy").apply_link(out)
    assert p.dtype == np.float32
    np.testing.assert_allclose(p, sigmoid(before.astype(np.float64)), rtol=1e-6)
    q = L.get("softmax_cross_entropy").apply_link(out, n_threads=2)
    assert q.dtype == np.float32
    np.testing.assert_allclose(q, softmax(before.astype(np.float64)), rtol=1e-6)
    np.testing.assert_allclose(L.get("softmax_cross_entropy").apply_link(out), q, rtol=1e-7)
    np.testing.assert_array_equal(out, before)                      # input left alone
    assert L.get("binary_cross_entropy").apply_link(out, n_threads=2)[0, 0] == 0.5


def test_each_loss_describes_itself():
    expected = {"mean_squared_error": (L.MeanSquaredError, "identity", False),
                "binary_cross_entropy": (L.BinaryCrossEntropy, "sigmoid", True),
                "softmax_cross_entropy": (L.SoftmaxCrossEntropy, "softmax", True)}
    for name, (cls, link, classifier) in expected.items():
        loss = L.get(name)
        assert type(loss) is cls and loss.name == name
        assert (loss.link, loss.is_classifier) == (link, classifier)
        assert repr(loss) == f"{cls.__name__}()"
    assert [L.get(n).code for n in expected] == [L.MEAN_SQUARED_ERROR, L.BINARY_CROSS_ENTROPY,
                                                 L.SOFTMAX_CROSS_ENTROPY]


# ---------------------------------------------------------------------------
# get and its aliases
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("alias, cls", [
    ("mse", L.MeanSquaredError), ("binary_crossentropy", L.BinaryCrossEntropy),
    ("categorical_crossentropy", L.SoftmaxCrossEntropy),
    ("sparse_categorical_crossentropy", L.SoftmaxCrossEntropy),
    ("cross_entropy", L.SoftmaxCrossEntropy), ("mean_squared_error", L.MeanSquaredError),
    ("binary_cross_entropy", L.BinaryCrossEntropy),
    ("softmax_cross_entropy", L.SoftmaxCrossEntropy)])
def test_get_resolves_names_and_keras_aliases(alias, cls):
    assert type(L.get(alias)) is cls


def test_get_returns_an_instance_as_is_and_names_what_it_refuses():
    loss = L.BinaryCrossEntropy()
    assert L.get(loss) is loss
    expected = ("loss must be one of ['binary_cross_entropy', 'mean_squared_error', "
                "'softmax_cross_entropy'] (or aliases ['binary_crossentropy', "
                "'categorical_crossentropy', 'cross_entropy', 'mse', "
                "'sparse_categorical_crossentropy']) or a descend Loss, got ")
    with pytest.raises(ValueError) as info:
        L.get("hinge")
    assert str(info.value) == expected + "'hinge' (str)"
    with pytest.raises(ValueError):
        L.get("MSE")                               # names are case-sensitive, as Keras
    with pytest.raises(TypeError) as info:
        L.get(None)
    assert str(info.value) == expected + "None (NoneType)"


# ---------------------------------------------------------------------------
# MeanSquaredError.encode
# ---------------------------------------------------------------------------
def test_mse_encode_shapes_and_types_the_targets():
    mse = L.get("mse")
    t, labels, classes = mse.encode([1, 2, 3], n_outputs=1)
    assert labels is None and classes is None
    assert t.shape == (3, 1) and t.dtype == np.float32 and t.flags.c_contiguous
    np.testing.assert_array_equal(t.ravel(), [1, 2, 3])
    y = np.asfortranarray(np.arange(6.0).reshape(3, 2))
    t, _, _ = mse.encode(y, n_outputs=2, dtype=np.float64)
    assert t.dtype == np.float64 and t.flags.c_contiguous
    np.testing.assert_array_equal(t, y)
    t, _, _ = mse.encode(np.array([True, False]), n_outputs=1, dtype=np.float64)
    np.testing.assert_array_equal(t, [[1.0], [0.0]])


@pytest.mark.parametrize("y, n_outputs, error, message", [
    (np.array(["a", "b"]), 1, TypeError,
     "y_val must hold real-valued targets for mean_squared_error, got dtype <U1"),
    (np.zeros((3, 2)), 1, ValueError,
     "y_val must have shape (n,) or (n, 1) to match the 1 output, got shape (3, 2)"),
    (np.zeros(3), 2, ValueError,
     # (with 2 outputs a 1-D y is not accepted: the message said it was)
     "y_val must have shape (n, 2) to match the 2 outputs, got shape (3,)"),
    (np.zeros((2, 2, 1)), 2, ValueError,
     "y_val must have shape (n, 2) to match the 2 outputs, got shape (2, 2, 1)"),
    (np.array([1.0, np.nan]), 1, ValueError, "y_val contains NaN or infinite values"),
    (np.array([[1.0, np.inf]]), 2, ValueError, "y_val contains NaN or infinite values"),
])
def test_mse_encode_refuses_by_name(y, n_outputs, error, message):
    with pytest.raises(error) as info:
        L.get("mse").encode(y, n_outputs, name="y_val")
    assert str(info.value) == message


def test_encoders_name_y_by_default():
    with pytest.raises(ValueError, match=r"^y contains NaN"):
        L.get("mse").encode([np.nan], 1)
    with pytest.raises(ValueError, match=r"^y must be 1-D labels or \(n, 1\)"):
        L.get("binary_cross_entropy").encode(np.zeros((2, 2, 2)), 1)
    with pytest.raises(ValueError, match=r"^y must be 1-D labels or 2-D one-hot"):
        L.get("softmax_cross_entropy").encode(np.zeros((2, 2, 2)), 2)


# ---------------------------------------------------------------------------
# BinaryCrossEntropy.encode
# ---------------------------------------------------------------------------
def test_bce_encode_multi_label_targets():
    bce = L.get("binary_cross_entropy")
    y = np.array([[1, 0, 1], [0, 0, 1]])
    t, labels, classes = bce.encode(y, n_outputs=3)
    assert labels is None and t.dtype == np.float32 and t.flags.c_contiguous
    np.testing.assert_array_equal(t, y)
    np.testing.assert_array_equal(classes, [0, 1])
    soft = np.array([[0.0, 0.25], [1.0, 0.5]])                   # probabilities are targets
    t, _, classes = bce.encode(soft, n_outputs=2, classes=np.array([0, 1]), dtype=np.float64)
    np.testing.assert_array_equal(t, soft)
    declared = np.array([0, 1])
    assert bce.encode(y, n_outputs=3, classes=declared)[2] is declared    # kept as declared
    # a (n, 1) column of probabilities with no classes declared: one binary output
    t, _, classes = bce.encode(np.array([[0.25], [1.0]]), n_outputs=1)
    np.testing.assert_array_equal(t, [[0.25], [1.0]])
    np.testing.assert_array_equal(classes, [0, 1])


@pytest.mark.parametrize("y", [np.array([[0.5, 1.5]]), np.array([[-0.5, 0.0]]),
                               np.array([[np.nan, 0.0]]), np.array([[1.0, 1.0001]])])
def test_bce_encode_refuses_multi_label_targets_outside_0_1(y):
    with pytest.raises(ValueError) as info:
        L.get("binary_cross_entropy").encode(y, n_outputs=2, name="y_val")
    assert str(info.value) == "y_val must hold targets in [0, 1] for binary_cross_entropy"


def test_bce_encode_accepts_the_edges_0_and_1():
    t, _, _ = L.get("binary_cross_entropy").encode(np.array([[0.0, 1.0]]), n_outputs=2)
    np.testing.assert_array_equal(t, [[0.0, 1.0]])


def test_bce_encode_with_declared_classes_maps_a_column_of_labels():
    # classes declared (partial_fit): a (n, 1) column is labels, not probabilities
    bce = L.get("binary_cross_entropy")
    t, labels, classes = bce.encode(np.array([[3], [7], [7]]), n_outputs=1,
                                    classes=np.array([3, 7]))
    assert labels is None and t.shape == (3, 1) and t.dtype == np.float32
    np.testing.assert_array_equal(t.ravel(), [0, 1, 1])
    np.testing.assert_array_equal(classes, [3, 7])
    with pytest.raises(ValueError) as info:
        bce.encode(np.array(["a", "q"]), 1, classes=np.array(["a", "b"]))
    assert str(info.value) == "y has labels not in classes_ ['a', 'b']: ['q']"


def test_bce_encode_labels_of_two_classes():
    bce = L.get("binary_cross_entropy")
    t, labels, classes = bce.encode(np.array(["spam", "ham", "spam"]), n_outputs=1,
                                    dtype=np.float64)
    assert classes.tolist() == ["ham", "spam"]                    # the second is positive
    assert labels is None and t.dtype == np.float64 and t.shape == (3, 1)
    np.testing.assert_array_equal(t.ravel(), [1, 0, 1])
    # 0/1 and bools keep their meaning, even when one value is absent
    for y, dtype in ((np.array([1, 1]), np.int64), (np.array([0.0, 0.0]), np.float64),
                     (np.array([True, True]), np.bool_), (np.array([0, 1]), np.int64)):
        t, _, classes = bce.encode(y, n_outputs=1)
        assert classes.tolist() == [0, 1] and classes.dtype == dtype
        np.testing.assert_array_equal(t.ravel(), y.astype(float))
    # a (n, 1) column of labels is a 1-D one
    t, _, classes = bce.encode(np.array([["b"], ["a"]]), n_outputs=1)
    assert classes.tolist() == ["a", "b"]
    np.testing.assert_array_equal(t, [[1.0], [0.0]])
    # labels 1 and 2: two classes, 2 is positive
    t, _, classes = bce.encode(np.array([2, 1, 2]), n_outputs=1)
    assert classes.tolist() == [1, 2]
    np.testing.assert_array_equal(t.ravel(), [1, 0, 1])


@pytest.mark.parametrize("y, n_outputs, message", [
    (np.array([5, 5]), 1, "binary_cross_entropy takes two classes, but y_val has a single "
                          "class: [5]; use 0/1 labels, or declare both with "
                          "partial_fit(classes=...)"),
    (np.array(["a", "b", "c", "a"]), 1, "binary_cross_entropy takes two classes, but y_val has "
                                        "3 classes: ['a', 'b', 'c']; use 0/1 labels, or declare "
                                        "both with partial_fit(classes=...)"),
    (np.arange(12), 1, "binary_cross_entropy takes two classes, but y_val has 12 classes: "
                       "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]; use 0/1 labels, or declare both with "
                       "partial_fit(classes=...)"),
    (np.array([0, 1]), 2, "y_val must have shape (n, 2) with values in [0, 1] for 2 binary "
                          "outputs, got shape (2,)"),
    (np.zeros((2, 3)), 2, "y_val must have shape (n, 2) with values in [0, 1] for 2 binary "
                          "outputs, got shape (2, 3)"),
    (np.zeros((2, 2)), 1, "y_val must be 1-D labels or (n, 1), got shape (2, 2)"),
    (np.array([0.0, np.nan]), 1, "y_val contains NaN or infinite labels"),
])
def test_bce_encode_refuses_by_name(y, n_outputs, message):
    with pytest.raises(ValueError) as info:
        L.get("binary_cross_entropy").encode(y, n_outputs, name="y_val")
    assert str(info.value) == message


def test_bce_encode_names_labels_that_cannot_be_ordered():
    with pytest.raises(TypeError) as info:
        L.get("binary_cross_entropy").encode(np.array([1, "a"], dtype=object), 1, name="y_val")
    assert str(info.value) == ("y_val labels must be comparable with each other (all numbers "
                               "or all strings), got a mix of ['int', 'str']")


# ---------------------------------------------------------------------------
# SoftmaxCrossEntropy.encode
# ---------------------------------------------------------------------------
def test_sce_encode_class_ids_one_hot_and_labels():
    sce = L.get("softmax_cross_entropy")
    targets, labels, classes = sce.encode(np.array([2, 0, 1, 2]), n_outputs=3)
    assert targets is None and labels.dtype == np.int32 and labels.flags.c_contiguous
    assert labels.tolist() == [2, 0, 1, 2] and classes.tolist() == [0, 1, 2]
    _, labels, classes = sce.encode(np.array([[0], [2]], dtype=np.uint8), n_outputs=3)
    assert labels.tolist() == [0, 2] and labels.dtype == np.int32
    _, labels, classes = sce.encode(np.array([[0, 0, 1], [1, 0, 0]]), n_outputs=3)
    assert labels.tolist() == [2, 0] and classes.tolist() == [0, 1, 2]
    assert labels.dtype == np.int32 and labels.flags.c_contiguous    # what the kernels read
    _, labels, classes = sce.encode(np.array([[0.0, 1.0], [1.0, 0.0]]), n_outputs=2,
                                    classes=np.array(["no", "yes"]))
    assert labels.tolist() == [1, 0] and classes.tolist() == ["no", "yes"]
    _, labels, classes = sce.encode(np.array([[True, False]]), n_outputs=2)
    assert labels.tolist() == [0]
    _, labels, classes = sce.encode(np.array(["b", "c", "a"]), n_outputs=3)
    assert labels.tolist() == [1, 2, 0] and classes.tolist() == ["a", "b", "c"]
    _, labels, classes = sce.encode(np.array([2.0, 0.5, 1.0]), n_outputs=3)
    assert labels.tolist() == [2, 0, 1] and classes.tolist() == [0.5, 1.0, 2.0]
    _, labels, classes = sce.encode(np.array([20, 10]), n_outputs=2,
                                    classes=np.array([10, 20]))   # declared, not 0..k-1
    assert labels.tolist() == [1, 0]


@pytest.mark.parametrize("y, n_outputs, classes, error, message", [
    (np.eye(3)[:2], 2, None, ValueError,
     "one-hot y_val has 3 columns, but the network has 2 outputs"),
    (np.array([[1, 1, 0], [0, 0, 1]]), 3, None, ValueError,
     "2-D y_val must be one-hot rows (a single 1 per row); give class ids as a 1-D array "
     "instead"),
    (np.array([[0, 0, 0], [1, 0, 0]]), 3, None, ValueError,
     "2-D y_val must be one-hot rows (a single 1 per row); give class ids as a 1-D array "
     "instead"),
    (np.array([[0, 2, 0]]), 3, None, ValueError,
     "2-D y_val must be one-hot rows (a single 1 per row); give class ids as a 1-D array "
     "instead"),
    (np.array([[0.5, 0.5]]), 2, None, ValueError,
     "2-D y_val must be one-hot rows (a single 1 per row); give class ids as a 1-D array "
     "instead"),
    (np.array([["a", "b"]]), 2, None, ValueError,
     "2-D y_val must be one-hot rows (a single 1 per row); give class ids as a 1-D array "
     "instead"),
    (np.zeros((2, 2, 2)), 2, None, ValueError,
     "y_val must be 1-D labels or 2-D one-hot, got shape (2, 2, 2)"),
    (np.array([0, 5, -1, 7, 3, 3]), 3, None, ValueError,
     "y_val has class ids outside [0, 3): [-1, 3, 5, 7]"
     + _class_id_hint(3)),
    (np.array([0, 2]), 2, None, ValueError, "y_val has class ids outside [0, 2): [2]"
     + _class_id_hint(2)),
    (np.arange(-12, 3), 3, None, ValueError,
     "y_val has class ids outside [0, 3): [-12, -11, -10, -9, -8, -7, -6, -5, -4, -3]"
     + _class_id_hint(3)),
    (np.array(["a", "b"]), 3, None, ValueError,
     "y_val has 2 distinct labels, but the network has 3 outputs; pass integer class ids or "
     "match the last layer's units to the number of classes"),
    (np.array([0.0, np.inf]), 2, None, ValueError, "y_val contains NaN or infinite labels"),
    # complex labels were classes of their own, and 1+0j matched class 1
    (np.array([0.5j, 1 + 0.5j]), 2, None, TypeError,
     "y_val labels must be ints, bools, floats or strings, got complex128 values"),
    (np.array([0j, 1 + 0j]), 2, np.array([0, 1]), TypeError,
     "y_val labels must be ints, bools, floats or strings, got complex128 values"),
    (np.array([0, np.complex64(1)], dtype=object), 2, None, TypeError,
     "y_val labels must be ints, bools, floats or strings, got object values holding "
     "complex numbers"),
    (np.array([1, "a"], dtype=object), 2, None, TypeError,
     "y_val labels must be comparable with each other (all numbers or all strings), got a "
     "mix of ['int', 'str']"),
    # numpy's fixed-width strings drop trailing NULs: 'a' and 'a\x00' fitted as two
    # classes and were saved as 'a' twice, a file load refused
    (np.array(["a", "a\x00"], dtype=object), 2, None, ValueError,
     "y_val has the label 'a\\x00', which ends in a NUL character: numpy's fixed-width "
     "strings drop trailing NULs (it would be 'a' in classes_ and in a saved model); strip "
     "them or use other labels"),
    (np.array([b"b\x00\x00", b"a"], dtype=object), 2, None, ValueError,
     "y_val has the label b'b\\x00\\x00', which ends in a NUL character: numpy's "
     "fixed-width strings drop trailing NULs (it would be b'b' in classes_ and in a saved "
     "model); strip them or use other labels"),
    (np.array([1, 2], dtype=object), 2, np.array(["a", "b"]), TypeError,
     "y_val labels of type object cannot be compared with classes_ of type <U1"),
    (np.array([1.5, 2.5]), 2, np.array(["a", "b"]), ValueError,
     "y_val has labels not in classes_ ['a', 'b']: [1.5, 2.5]"),
    (np.array(["z", "a", "y"] + ["x"] * 3), 21, np.array([f"c{i:02d}" for i in range(21)]),
     ValueError, "y_val has labels not in classes_ ['c00', 'c01', 'c02', 'c03', 'c04', 'c05', "
                 "'c06', 'c07', 'c08', 'c09', 'c10', 'c11', 'c12', 'c13', 'c14', 'c15', 'c16', "
                 "'c17', 'c18', 'c19']: ['a', 'x', 'y', 'z']"),
    (np.array([f"u{i:02d}" for i in range(12)]), 2, np.array(["a", "b"]), ValueError,
     "y_val has labels not in classes_ ['a', 'b']: ['u00', 'u01', 'u02', 'u03', 'u04', "
     "'u05', 'u06', 'u07', 'u08', 'u09']"),
])
def test_sce_encode_refuses_by_name(y, n_outputs, classes, error, message):
    with pytest.raises(error) as info:
        L.get("softmax_cross_entropy").encode(y, n_outputs, classes=classes, name="y_val")
    assert str(info.value) == message


def test_label_ids_of_declared_classes_reach_both_ends():
    # the first and the last class, and labels beyond either end of the sorted classes
    sce = L.get("softmax_cross_entropy")
    classes = np.array(["b", "d", "f"])
    _, labels, _ = sce.encode(np.array(["f", "b", "d", "f"]), 3, classes=classes)
    assert labels.tolist() == [2, 0, 1, 2]
    for beyond in ("a", "g", "c"):
        with pytest.raises(ValueError, match=rf"not in classes_ \['b', 'd', 'f'\]: \['{beyond}'\]$"):
            sce.encode(np.array(["b", beyond]), 3, classes=classes)
