"""The fused loop's padded working copies (_train.pyx, _padded_copies): the
same bits as running the layers' own kernels, and the layers' kernels are
what Python sees (and sets) between the loop's chunks of batches: progress
callbacks, signal handlers, and after an epoch or an exception."""
import signal

import numpy as np
import pytest

import descend as dn
from descend import _train, training
from descend._train import EpochRunner

ALWAYS, NEVER = 0, 10 ** 18     # _train.PADDED_COPY_ROWS: copies for any or no run


def data(dtype, n=700, d=20):
    rng = np.random.default_rng(3)
    return rng.normal(size=(n, d)).astype(dtype), rng.integers(0, 3, n)


def network(dtype, width, optimizer, regularizer=None, dropout=0.0, plan=None):
    """20-width-width-3: the hidden kernels' rows 2 KB apart (width 512 float32
    or 256 float64) are run padded, the first (width columns) too."""
    layers = [dn.Dense(width, activation="relu")] + ([dn.Dropout(dropout)] if dropout else [])
    layers += [dn.Dense(width, activation="tanh", kernel_regularizer=regularizer),
               dn.Dense(3)]
    net = dn.Sequential(layers, input_dim=20, dtype=dtype, seed=4, n_threads=2)
    if plan is not None:
        net.pin_plan(plan)
    net.compile(loss="softmax_cross_entropy", optimizer=optimizer)
    return net


def fit(rows, monkeypatch, dtype="float64", width=256, optimizer=None, callbacks=(),
        **kwargs):
    monkeypatch.setattr(_train, "PADDED_COPY_ROWS", rows)
    X, y = data(dtype)
    net = network(dtype, width, optimizer or dn.optimizers.SGD(0.05), **kwargs)
    history = net.fit(X, y, epochs=2, batch_size=32, verbose=0, callbacks=list(callbacks))
    return net, history


OPTIMIZERS = {
    "sgd": lambda: dn.optimizers.SGD(0.05),
    "sgd_weight_decay": lambda: dn.optimizers.SGD(0.05, weight_decay=0.01),
    "nesterov_clipvalue": lambda: dn.optimizers.SGD(0.05, momentum=0.9, nesterov=True,
                                                    clipvalue=0.01),
    "adam": lambda: dn.optimizers.Adam(0.001),
    "adamw": lambda: dn.optimizers.AdamW(0.001, weight_decay=0.01),
}


@pytest.mark.parametrize("dtype,width", [("float64", 256), ("float32", 512)])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("plan", [None, {"by_columns": True}])
def test_padded_copies_train_the_same_bits(monkeypatch, dtype, width, optimizer, plan):
    runs = [fit(rows, monkeypatch, dtype, width, OPTIMIZERS[optimizer](), plan=plan)
            for rows in (NEVER, ALWAYS)]
    (plain, plain_history), (padded, padded_history) = runs
    for a, b in zip(plain.get_weights(), padded.get_weights()):
        assert a.dtype == b.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a, b)
    assert plain_history["loss"] == padded_history["loss"]
    assert np.isfinite(plain_history["loss"]).all()


REGULARIZERS = {
    "l2": lambda: dn.regularizers.l2(1e-3),
    "l1": lambda: dn.regularizers.l1(1e-4),
    "proximal_l1": lambda: dn.regularizers.l1(1e-4, proximal=True),
    "l1_l2": lambda: dn.regularizers.l1_l2(1e-4, 1e-3),
}


@pytest.mark.parametrize("regularizer", sorted(REGULARIZERS))
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_penalized_kernels_train_and_report_the_same_bits(monkeypatch, regularizer,
                                                          optimizer):
    """Their penalties are summed a row at a time, on from row to row."""
    runs = [fit(rows, monkeypatch, optimizer=OPTIMIZERS[optimizer](),
                regularizer=REGULARIZERS[regularizer](), dropout=0.2)
            for rows in (NEVER, ALWAYS)]
    (plain, plain_history), (padded, padded_history) = runs
    for a, b in zip(plain.get_weights(), padded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert plain_history["loss"] == padded_history["loss"]


class Kernels(dn.callbacks.Callback):
    """Records a kernel at each batch end; from batch `scale_at` on, halves it."""

    def __init__(self, scale_at=None):
        super().__init__()
        self.seen, self.scale_at = [], scale_at

    def on_train_batch_end(self, batch, logs=None):
        kernel = self.model.dense_layers[1].kernel
        self.seen.append(kernel.copy())
        if self.scale_at is not None and batch >= self.scale_at:
            kernel *= 0.5


def test_callbacks_see_and_set_the_weights_being_trained(monkeypatch):
    runs = []
    for rows in (NEVER, ALWAYS):
        callback = Kernels(scale_at=10)
        net, _ = fit(rows, monkeypatch, callbacks=[callback])
        runs.append((net, callback.seen))
    (plain, plain_seen), (padded, padded_seen) = runs
    assert len(plain_seen) == len(padded_seen) == 2 * 22
    for a, b in zip(plain_seen, padded_seen):
        np.testing.assert_array_equal(a, b)
    # the kernel moved between batches: the callback saw training, not a stale copy
    assert not np.array_equal(padded_seen[0], padded_seen[5])
    for a, b in zip(plain.get_weights(), padded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_an_epoch_ended_by_an_exception_leaves_the_trained_weights_in_the_layers(
        monkeypatch):
    """A raising progress call (Ctrl-C in the loop, a callback's error) ends
    run_epoch: the layers' kernels then hold the batches done."""
    kernels = []
    for rows in (NEVER, ALWAYS):
        monkeypatch.setattr(_train, "PADDED_COPY_ROWS", rows)
        epochs, net = runner("float64", (256, 256), dn.optimizers.Adam(0.01), n_rows=640,
                             with_net=True)
        assert epochs.padded_layers == (0, 1)
        initial = [layer.kernel.copy() for layer in net.dense_layers]

        def progress(batches_done, loss):
            if batches_done == 8:
                raise RuntimeError("stop")
        with pytest.raises(RuntimeError, match="stop"):
            epochs.run_epoch(np.arange(640, dtype=np.intp), 0.01, 0.0, 0, 1,
                             progress=progress, progress_every=2)
        assert not any(np.array_equal(layer.kernel, start)
                       for layer, start in zip(net.dense_layers, initial))
        kernels.append([layer.kernel.copy() for layer in net.dense_layers])
    for a, b in zip(*kernels):
        np.testing.assert_array_equal(a, b)


def test_a_signal_between_chunks_leaves_the_trained_weights_in_the_layers(monkeypatch):
    """A signal handler's exception (Ctrl-C) comes from the loop's check
    between chunks, with no progress call to copy the kernels out first."""
    monkeypatch.setattr(_train, "PADDED_COPY_ROWS", ALWAYS)
    epochs, net = runner("float64", (256, 256), dn.optimizers.SGD(0.01), n_rows=20000,
                         with_net=True)
    initial = [layer.kernel.copy() for layer in net.dense_layers]

    def alarm(signum, frame):
        raise RuntimeError("alarm")
    previous = signal.signal(signal.SIGALRM, alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.005)
        with pytest.raises(RuntimeError, match="alarm"):
            epochs.run_epoch(np.arange(20000, dtype=np.intp), 0.01, 0.0, 0, 1)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert not any(np.array_equal(layer.kernel, start)
                   for layer, start in zip(net.dense_layers, initial))


def test_a_signal_handler_sees_and_sets_the_weights_being_trained(monkeypatch):
    """A handler that returns (a checkpoint on SIGUSR1, say) runs between
    chunks too: it reads the trained weights, and what it sets is trained on."""
    monkeypatch.setattr(_train, "PADDED_COPY_ROWS", ALWAYS)
    epochs, net = runner("float32", (512,), dn.optimizers.SGD(0.01), n_rows=40000,
                         with_net=True)
    assert epochs.padded_layers == (0,)
    kernel = net.dense_layers[0].kernel
    start, seen = kernel.copy(), []

    def checkpoint(signum, frame):
        seen.append(kernel.copy())
        if len(seen) == 1:
            kernel[0, 0] = 1000.0
    previous = signal.signal(signal.SIGALRM, checkpoint)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.005, 0.005)
        epochs.run_epoch(np.arange(40000, dtype=np.intp), 0.01, 0.0, 0, 1)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert len(seen) >= 2
    assert not np.array_equal(seen[-1][1:], start[1:])     # trained rows, not the start's
    assert kernel[0, 0] > 100          # the handler's value was trained on, not overwritten


@pytest.mark.parametrize("regularizer", [None, "l2"])
def test_a_kernel_two_layers_share_trains_as_one_array(monkeypatch, regularizer):
    """Tied weights (layers[2].kernel is layers[1].kernel) keep their array:
    a padded copy per layer would each write it back over the other's
    updates."""
    runs = []
    for rows in (NEVER, ALWAYS):
        monkeypatch.setattr(_train, "PADDED_COPY_ROWS", rows)
        X, y = data("float32", n=1100)
        reg = REGULARIZERS[regularizer]() if regularizer else None
        net = dn.Sequential([dn.Dense(512, activation="relu"),
                             dn.Dense(512, activation="tanh", kernel_regularizer=reg),
                             dn.Dense(512, activation="tanh", kernel_regularizer=reg),
                             dn.Dense(3)], input_dim=20, dtype="float32", seed=0, n_threads=1)
        net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(0.05))
        net.layers[2].kernel = net.layers[1].kernel
        history = net.fit(X, y, epochs=2, batch_size=32, verbose=0)
        assert net.layers[2].kernel is net.layers[1].kernel
        runs.append((net.get_weights(), history["loss"]))
    (plain, plain_loss), (padded, padded_loss) = runs
    assert plain_loss == padded_loss
    for a, b in zip(plain, padded):
        np.testing.assert_array_equal(a, b)
    epochs = EpochRunner(X, None, y.astype(np.int32), training.runner_specs(net),
                         net.loss_.code, net.optimizer.kernel_config(),
                         *net.optimizer.clip_settings(), 32, 1)
    assert epochs.padded_layers == (0,)


def runner(dtype="float32", widths=(512, 512), optimizer=None, l2=0.0, clipnorm=0.0,
           batch_size=32, density=1.0, n_in=20, n_rows=64, with_net=False):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_rows, n_in)) * (rng.random((n_rows, n_in)) < density)
    X = X.astype(dtype)
    y = rng.integers(0, 3, n_rows).astype(np.int32)
    regularizer = dn.regularizers.l2(l2) if l2 else None
    net = dn.Sequential([dn.Dense(w, activation="relu", kernel_regularizer=regularizer)
                         for w in widths] + [dn.Dense(3)], input_dim=n_in, dtype=dtype,
                        seed=0)
    optimizer = optimizer or dn.optimizers.SGD(0.1, clipnorm=clipnorm or None)
    net.compile(loss="softmax_cross_entropy", optimizer=optimizer)
    net.build(n_in)
    net.optimizer.build(net._params())
    epochs = EpochRunner(X, None, y, training.runner_specs(net), net.loss_.code,
                         net.optimizer.kernel_config(), *net.optimizer.clip_settings(),
                         batch_size, 1)
    return (epochs, net) if with_net else epochs


def test_only_kernels_with_rows_a_multiple_of_2_kb_apart_are_padded():
    assert runner("float32", (512, 1024)).padded_layers == (0, 1)
    assert runner("float32", (256, 512)).padded_layers == (1,)
    assert runner("float64", (256, 384)).padded_layers == (0,)
    assert runner("float32", (500, 64)).padded_layers == ()


def test_paths_that_read_a_kernel_as_one_flat_array_keep_the_layers_arrays():
    assert runner(l2=1e-3).padded_layers == (0, 1)     # penalties go row by row
    assert runner(clipnorm=1.0).padded_layers == ()                 # norms
    assert runner(batch_size=1).padded_layers == ()                 # per-sample SGD
    sparse = runner(density=0.1, n_in=300)                          # sparse first layer
    assert sparse.sparse_input and sparse.padded_layers == (1,)
