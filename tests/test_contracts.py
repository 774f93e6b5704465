"""Behaviours that one-line mutants of the Python layer broke without a test
noticing (issue 16), each pinned by a value derived outside descend.

Every behaviour here has at least two independent tests (different inputs,
different paths or a different reference), so that one weak test cannot hide
a mutant:

- shuffling: the batch order is the seeded permutation, and it changes with
  the seed;
- train_on_batch rollback: an update that makes the weights non-finite is
  undone bit for bit, optimizer state included;
- binary cross-entropy accuracy with several labels: the fraction of correct
  (sample, label) pairs, hand-computed and against scikit-learn;
- r2 with several outputs: the mean over outputs, against scikit-learn;
- RMSprop(centered=True): against PyTorch's values (literals below) in the
  fused loop and in train_on_batch;
- check_gradients: reports a real disagreement (a ReLU kink) with its value;
- EarlyStopping(restore_best_weights=True): restores when training ends
  without an early stop, in a real fit.
"""
import numpy as np
import pytest

import descend as dn

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def linear_net(n_in, n_out, loss, optimizer, dtype="float64", seed=0, weights=None):
    net = dn.Sequential([dn.Dense(n_out)], input_dim=n_in, dtype=dtype, seed=seed,
                        n_threads=1)
    net.compile(loss=loss, optimizer=optimizer)
    if weights is not None:
        net.set_weights(weights)
    return net


def assert_bitwise_equal(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype and a.shape == e.shape
        np.testing.assert_array_equal(a, e)


class RecordWeights(dn.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


# --------------------------------------------------------------------------- shuffling
def seeded_permutation(layers, n_in, seed, dtype, n):
    """The first epoch's order as DESIGN.md defines it: the network's Generator,
    default_rng(seed), draws the initial weights layer by layer, then the
    permutation. Built here from fresh layers, without the network."""
    rng = np.random.default_rng(seed)
    weights = []
    for layer in layers:
        layer.build(n_in, rng, np.dtype(dtype))
        weights += [layer.kernel, layer.bias]
        n_in = layer.units
    return weights, rng.permutation(n)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_shuffled_epoch_equals_the_unshuffled_epoch_on_the_seeded_permutation(seed, batch_size):
    rng = np.random.default_rng(100)
    X, y = rng.normal(size=(12, 3)), rng.normal(size=(12, 1))
    expected_init, order = seeded_permutation(
        [dn.Dense(4, activation="tanh"), dn.Dense(1)], 3, seed, "float64", len(X))
    assert not np.array_equal(order, np.arange(len(X)))

    def net():
        return dn.Sequential([dn.Dense(4, activation="tanh"), dn.Dense(1)], input_dim=3,
                             dtype="float64", seed=seed, n_threads=1)
    shuffled, reference = net(), net()
    assert_bitwise_equal(shuffled.get_weights(), expected_init)   # the replica is exact
    for model in (shuffled, reference):
        model.compile(loss="mean_squared_error", optimizer=dn.optimizers.SGD(0.1))
    shuffled.fit(X, y, epochs=1, batch_size=batch_size, shuffle=True, verbose=0)
    reference.fit(X[order], y[order], epochs=1, batch_size=batch_size, shuffle=False,
                  verbose=0)
    assert_bitwise_equal(shuffled.get_weights(), reference.get_weights())


def test_the_batch_order_changes_with_the_seed_and_only_when_shuffling():
    """Same start, same data, batch size 1: the weights after an epoch depend on
    the order, so five seeds give five results with shuffle=True, one without."""
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(10, 2)), rng.normal(size=10)
    start = [np.array([[0.3], [-0.2]]), np.array([0.1])]
    results = {True: [], False: []}
    for shuffle in (True, False):
        for seed in range(5):
            net = linear_net(2, 1, "mean_squared_error", dn.optimizers.SGD(0.2),
                             seed=seed, weights=start)
            net.fit(X, y, epochs=2, batch_size=1, shuffle=shuffle, verbose=0)
            results[shuffle].append(np.concatenate([w.ravel() for w in net.get_weights()]))
    unshuffled = results[False]
    assert all(np.array_equal(w, unshuffled[0]) for w in unshuffled)
    shuffled = results[True]
    gaps = [np.abs(a - b).max() for i, a in enumerate(shuffled) for b in shuffled[i + 1:]]
    assert min(gaps) > 1e-6
    assert all(np.abs(w - unshuffled[0]).max() > 1e-6 for w in shuffled)


def test_shuffle_draws_a_new_order_every_epoch():
    """Two shuffled epochs equal two unshuffled epochs on the two permutations
    that the seeded Generator draws in turn (the epoch's dropout seed between
    them), and differ from two epochs on the first permutation."""
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(9, 2)), rng.normal(size=9)
    start = [np.array([[0.5], [0.25]]), np.array([0.0])]

    def net(weights=start):
        return linear_net(2, 1, "mean_squared_error", dn.optimizers.SGD(0.1), seed=11,
                          weights=weights)
    shuffled = net()
    shuffled.fit(X, y, epochs=2, batch_size=1, shuffle=True, verbose=0)
    generator = np.random.default_rng(11)
    dn.Dense(1).build(2, generator, np.dtype("float64"))
    first = generator.permutation(len(X))
    generator.integers(0, 2**63)                          # the first epoch's dropout seed
    second = generator.permutation(len(X))
    assert not np.array_equal(first, second)
    reference, replay = net(), net()
    for order in (first, second):
        reference.fit(X[order], y[order], epochs=1, batch_size=1, shuffle=False, verbose=0)
    for order in (first, first):
        replay.fit(X[order], y[order], epochs=1, batch_size=1, shuffle=False, verbose=0)
    assert_bitwise_equal(shuffled.get_weights(), reference.get_weights())
    assert not np.allclose(replay.get_weights()[0], shuffled.get_weights()[0])


# --------------------------------------------------------------------------- rollback
def overflowing_step(dtype):
    """A net, a batch and a learning rate whose one SGD step is finite in its
    loss and gradient but overflows the weights: w = 1, x = 1e3, target 0 gives
    dL/dw = 2 * 1e3 * 1e3 = 2e6, and lr * 2e6 is beyond the dtype's range."""
    big = 1e33 if dtype == "float32" else 1e303
    net = linear_net(1, 1, "mean_squared_error", dn.optimizers.SGD(0.01, momentum=0.9),
                     dtype=dtype, weights=[np.array([[1.0]]), np.array([0.0])])
    X, y = np.array([[1e3]]), np.array([0.0])
    return net, X, y, big


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_train_on_batch_undoes_an_update_that_overflows_the_weights(dtype):
    net, X, y, big = overflowing_step(dtype)
    net.train_on_batch(X * 1e-3, y)               # a sane step: momentum state is non-zero
    weights, state = net.get_weights(), net.optimizer.get_state()
    assert np.abs(state["arrays"][0][0]).max() > 0
    net.optimizer.learning_rate = big
    with pytest.raises(dn.DivergenceError, match="undone"):
        net.train_on_batch(X, y)
    assert_bitwise_equal(net.get_weights(), weights)
    after = net.optimizer.get_state()
    assert after["iterations"] == state["iterations"] == 1
    for mine, theirs in zip(after["arrays"], state["arrays"]):
        assert_bitwise_equal(mine, theirs)
    assert all(np.isfinite(layer.kernel).all() for layer in net.dense_layers)


def test_an_undone_first_update_leaves_the_classes_undeclared():
    # the undone update was the network's first: its labels do not become
    # the classes (a later call may still declare others); the largest
    # learning rate float32 holds (compile refuses more) times gradients
    # of inputs 1000 times the digits' overflows
    X, y = dn.datasets.load_digits()
    net = dn.Sequential([dn.Dense(10)], input_dim=64, seed=0)
    net.compile("softmax_cross_entropy", dn.optimizers.SGD(3e38))
    with pytest.raises(dn.DivergenceError, match="undone"):
        net.train_on_batch(X[:32] * 1e3, y[:32])
    assert net.classes_ is None
    net.compile("softmax_cross_entropy", dn.optimizers.SGD(0.01))
    labels = np.array(list("abcdefghij"))[y[:32]]
    net.train_on_batch(X[:32], labels)
    assert net.classes_.tolist() == sorted(set(labels.tolist()))


def test_after_an_undone_update_training_continues_as_if_it_never_happened():
    net, X, y, big = overflowing_step("float64")
    twin, _, _, _ = overflowing_step("float64")
    for model in (net, twin):
        model.train_on_batch(X * 1e-3, y)
    net.optimizer.learning_rate = big
    with pytest.raises(dn.DivergenceError):
        net.train_on_batch(X, y)
    net.optimizer.learning_rate = twin.optimizer.learning_rate
    for model in (net, twin):
        model.train_on_batch(X * 2e-3, y)
    assert_bitwise_equal(net.get_weights(), twin.get_weights())
    # by hand (SGD momentum 0.9, lr 0.01, MSE gradient 2 (o - t) per output, n = k = 1)
    o1 = 1.0 * 1.0 + 0.0                                  # w0 x1 + b0, x1 = 1
    w1, b1 = 1.0 - 0.01 * 2 * o1 * 1.0, 0.0 - 0.01 * 2 * o1
    o2 = w1 * 2.0 + b1                                    # x2 = 2
    w2 = w1 - 0.01 * (0.9 * 2 * o1 * 1.0 + 2 * o2 * 2.0)
    assert net.get_weights()[0][0, 0] == pytest.approx(w2, rel=1e-14)
    assert w2 == pytest.approx(0.8844, rel=1e-14)


# --------------------------------------------------------------------------- multi-label BCE
# logits = X (identity kernel, zero bias); labels right on 8 of the 12 (sample, label)
# pairs: rows 0-1 all right, row 2 one wrong, row 3 three wrong
ML_X = np.array([[2.0, -1.0, 3.0], [-2.0, 1.0, 1.5], [1.0, 1.0, -1.0], [-3.0, -2.0, 2.5]])
ML_Y = np.array([[1, 0, 1], [0, 1, 1], [1, 0, 0], [1, 1, 0]])
ML_ACCURACY = 8 / 12


@pytest.mark.parametrize("batch_size", [None, 1, 2])
def test_multilabel_training_accuracy_is_over_all_sample_label_pairs(batch_size):
    # a learning rate far too small to flip any sign within the epoch
    net = linear_net(3, 3, "binary_cross_entropy", dn.optimizers.SGD(1e-9),
                     weights=[np.eye(3), np.zeros(3)])
    history = net.fit(ML_X, ML_Y, epochs=1, batch_size=batch_size, shuffle=False, verbose=0)
    assert history["accuracy"][0] == pytest.approx(ML_ACCURACY, rel=1e-12)
    assert net.evaluate(ML_X, ML_Y)["accuracy"] == pytest.approx(ML_ACCURACY, rel=1e-12)


def test_multilabel_training_accuracy_matches_scikit_learn_hamming_loss():
    """Epoch 2's accuracy (full batch: measured with the weights after epoch 1)
    equals 1 - hamming_loss of those weights' predictions (scikit-learn)."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 4))
    Y = (X @ rng.normal(size=(4, 5)) + rng.normal(size=5) > 0).astype(int)
    Y[:, 4] = rng.integers(0, 2, size=60)                 # one label is noise
    net = dn.Sequential([dn.Dense(8, activation="tanh"), dn.Dense(5)], input_dim=4,
                        dtype="float64", seed=0, n_threads=1)
    net.compile(loss="binary_cross_entropy", optimizer=dn.optimizers.SGD(0.5))
    record = RecordWeights()
    history = net.fit(X, Y, epochs=2, batch_size=None, verbose=0, callbacks=[record])
    net.set_weights(record.weights[0])
    predicted = (net.predict(X) > 0.5).astype(int)
    expected = 1 - sklearn_metrics.hamming_loss(Y, predicted)
    assert 0.5 < expected < 1                              # neither trivial nor perfect
    assert history["accuracy"][1] == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------- multi-output r2
def three_output_regression():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 3))
    Y = np.column_stack([X @ [1.0, -2.0, 0.5] + 3.0,       # learnable
                         rng.normal(size=40) * 5,          # noise
                         X[:, 0] ** 2])                    # not linear
    return X, Y


def test_evaluate_r2_mse_mae_with_several_outputs_match_scikit_learn():
    X, Y = three_output_regression()
    W = np.array([[1.0, 0.2, 0.0], [-2.0, 0.0, 0.1], [0.5, 0.3, 0.0]])
    b = np.array([3.0, 0.0, 1.0])
    net = linear_net(3, 3, "mean_squared_error", dn.optimizers.SGD(0.01),
                     weights=[W, b])
    prediction = X @ W + b
    scores = net.evaluate(X, Y)
    r2 = sklearn_metrics.r2_score(Y, prediction)          # uniform average over outputs
    per_output = sklearn_metrics.r2_score(Y, prediction, multioutput="raw_values")
    assert per_output[0] == pytest.approx(1.0) and per_output[1] < 0.5
    assert scores["r2"] == pytest.approx(r2, rel=1e-12)
    assert scores["mse"] == pytest.approx(sklearn_metrics.mean_squared_error(Y, prediction),
                                          rel=1e-12)
    assert scores["mae"] == pytest.approx(sklearn_metrics.mean_absolute_error(Y, prediction),
                                          rel=1e-12)


def test_training_r2_with_several_outputs_matches_scikit_learn():
    X, Y = three_output_regression()
    net = dn.Sequential([dn.Dense(16, activation="tanh"), dn.Dense(3)], input_dim=3,
                        dtype="float64", seed=0, n_threads=1)
    net.compile(loss="mean_squared_error", optimizer=dn.optimizers.Adam(0.01))
    history = net.fit(X, Y, epochs=3, batch_size=8, verbose=0)
    prediction = net.predict(X)                           # the epoch's final weights
    assert history["r2"][-1] == pytest.approx(sklearn_metrics.r2_score(Y, prediction),
                                              rel=1e-12)
    assert history["mse"][-1] == pytest.approx(
        sklearn_metrics.mean_squared_error(Y, prediction), rel=1e-12)


def test_r2_of_a_constant_output_follows_scikit_learn():
    """A constant target column: scikit-learn scores 1 if predicted exactly, else 0."""
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    Y = np.column_stack([2 * X[:, 0], np.full(4, 5.0)])
    for bias, in [(5.0,), (4.0,)]:
        net = linear_net(1, 2, "mean_squared_error", "sgd",
                         weights=[np.array([[2.0, 0.0]]), np.array([0.0, bias])])
        prediction = net.predict(X)
        assert net.evaluate(X, Y)["r2"] == pytest.approx(
            sklearn_metrics.r2_score(Y, prediction), abs=1e-12)


# --------------------------------------------------------------------------- RMSprop centered
# A 3-2 linear layer, MSE (mean over all outputs), full batch, 5 steps of
# RMSprop(lr=0.01, rho=0.8, momentum=0.5, eps=1e-8, centered). Reference values
# from PyTorch 2.13.0 (CPU), float64, produced by (with RMS_* below pasted in and
# CENTERED in (True, False)):
#   python - <<'EOF'
#   import torch
#   X = torch.tensor(RMS_X, dtype=torch.float64); Y = torch.tensor(RMS_Y, dtype=torch.float64)
#   lin = torch.nn.Linear(3, 2).double()
#   with torch.no_grad():
#       lin.weight.copy_(torch.tensor(RMS_W0, dtype=torch.float64).T)
#       lin.bias.copy_(torch.tensor(RMS_B0, dtype=torch.float64))
#   opt = torch.optim.RMSprop(lin.parameters(), lr=0.01, alpha=0.8, eps=1e-8,
#                             momentum=0.5, centered=CENTERED)
#   for _ in range(5):
#       opt.zero_grad(); torch.nn.functional.mse_loss(lin(X), Y).backward(); opt.step()
#   print(repr(lin.weight.detach().numpy().T.tolist()), repr(lin.bias.tolist()))
#   EOF
RMS_X = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.5], [-1.0, 2.0, 0.0], [0.0, -0.5, 1.0],
         [2.0, 1.0, 1.0], [-0.5, -1.5, 0.5]]
RMS_Y = [[1.0, 0.0], [0.0, 2.0], [-1.0, 1.0], [0.5, -0.5], [2.0, 1.5], [-1.0, 0.0]]
RMS_W0 = [[0.1, -0.2], [0.3, 0.05], [-0.4, 0.2]]
RMS_B0 = [0.05, -0.1]
TORCH_RMSPROP = {      # centered: (final kernel (3, 2), final bias (2,))
    True: ([[0.26533740919995336, -0.031758881622355274],
            [0.14017455799748701, 0.21212253099822923],
            [-0.2352064268843357, 0.06270520786131431]],
           [0.19646656606457483, 0.06928032347281038]),
    False: ([[0.22683190160417296, -0.07172661723646874],
             [0.1756958303575233, 0.17531040004999837],
             [-0.27343626728202874, 0.08741401900853633]],
            [0.16845094740171587, 0.028833607178793946]),
}


@pytest.mark.parametrize("centered", [True, False])
@pytest.mark.parametrize("path", ["fit", "train_on_batch"])
def test_rmsprop_matches_pytorch(centered, path):
    optimizer = dn.optimizers.RMSprop(0.01, rho=0.8, momentum=0.5, epsilon=1e-8,
                                      centered=centered)
    net = linear_net(3, 2, "mean_squared_error", optimizer,
                     weights=[np.array(RMS_W0), np.array(RMS_B0)])
    X, Y = np.array(RMS_X), np.array(RMS_Y)
    if path == "fit":
        net.fit(X, Y, epochs=5, batch_size=None, shuffle=False, verbose=0)
    else:
        for _ in range(5):
            net.train_on_batch(X, Y)
    W, b = TORCH_RMSPROP[centered]
    np.testing.assert_allclose(net.get_weights()[0], W, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(net.get_weights()[1], b, rtol=1e-12, atol=1e-14)


def test_centered_and_plain_rmsprop_references_differ():
    """The comparison above can tell the two apart."""
    (Wc, bc), (Wp, bp) = TORCH_RMSPROP[True], TORCH_RMSPROP[False]
    assert np.abs(np.array(Wc) - np.array(Wp)).max() > 1e-3


# --------------------------------------------------------------------------- check_gradients
def kinked_net(loss="mean_squared_error"):
    """relu(w1 x + b1) at w1 = b1 = 0: the pre-activation is exactly 0, where
    backprop takes relu'(0) = 0 while the central difference sees the slope
    of the right side only. With w2 = 1, b2 = 0, x = 1, t = 1:
    L(w1 = e) = (e - 1)^2 and L(w1 = -e) = 1, so dL/dw1 ~ -1 + e/2 against 0."""
    net = dn.Sequential([dn.Dense(1, activation="relu"), dn.Dense(1)], input_dim=1,
                        dtype="float64", seed=0, n_threads=1)
    net.compile(loss=loss, optimizer="sgd")
    net.set_weights([np.zeros((1, 1)), np.zeros(1), np.ones((1, 1)), np.zeros(1)])
    return net


def test_check_gradients_reports_a_real_disagreement_with_its_value():
    net = kinked_net()
    X, y = np.array([[1.0]]), np.array([1.0])
    grads = net.gradients(X, y)
    assert grads[0][0][0, 0] == 0.0                       # relu'(0) = 0
    numeric = dn.numerical_gradients(net, X, y, eps=1e-5)
    assert numeric[0][0][0, 0] == pytest.approx(-1 + 0.5e-5, rel=1e-9)
    # |0 - (-1 + e/2)| / max(0, |-1 + e/2|) = 1 for the first kernel and bias
    assert dn.check_gradients(net, X, y) == pytest.approx(1.0, rel=1e-12)


def test_check_gradients_is_small_away_from_the_kink_and_one_on_it():
    net = kinked_net()
    X, y = np.array([[1.0]]), np.array([1.0])
    net.set_weights([np.full((1, 1), 0.5), np.zeros(1), np.ones((1, 1)), np.zeros(1)])
    assert dn.check_gradients(net, X, y) < 1e-8
    net.set_weights([np.full((1, 1), 1e-12), np.zeros(1), np.ones((1, 1)), np.zeros(1)])
    assert dn.check_gradients(net, X, y) > 0.4            # 1e-12 < eps: straddles the kink


# --------------------------------------------------------------------------- EarlyStopping
def test_early_stopping_restores_the_best_weights_when_training_runs_to_the_end():
    """Full-batch gradient descent with a small step on a linear least-squares
    problem lowers the loss every epoch (the descent lemma), so under
    mode="max" epoch 0 is the best by construction and patience is never used up."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    y = X @ [1.0, -1.0, 2.0]
    net = linear_net(3, 1, "mean_squared_error", dn.optimizers.SGD(0.05))
    record = RecordWeights()
    stop = dn.callbacks.EarlyStopping(monitor="loss", mode="max", patience=100,
                                      restore_best_weights=True)
    history = net.fit(X, y, epochs=4, batch_size=None, verbose=0, callbacks=[record, stop])
    assert np.all(np.diff(history["loss"]) < 0)
    assert history.epoch == [0, 1, 2, 3] and stop.stopped_epoch == 0
    assert stop.best_epoch == 0
    assert_bitwise_equal(net.get_weights(), record.weights[0])
    assert not np.allclose(record.weights[0][0], record.weights[3][0])


def test_early_stopping_keeps_the_final_weights_when_the_last_epoch_is_best():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    y = X @ [1.0, -1.0, 2.0]
    net = linear_net(3, 1, "mean_squared_error", dn.optimizers.SGD(0.05))
    record = RecordWeights()
    stop = dn.callbacks.EarlyStopping(monitor="loss", patience=100,
                                      restore_best_weights=True)
    net.fit(X, y, epochs=4, batch_size=None, verbose=0, callbacks=[record, stop])
    assert stop.best_epoch == 3
    assert_bitwise_equal(net.get_weights(), record.weights[3])

