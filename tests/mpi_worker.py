"""Scenarios of tests/test_distributed.py, run under ``mpiexec -n p``.

``python tests/mpi_worker.py SCENARIO OUT`` runs one scenario on every rank;
rank 0 writes its findings to OUT (JSON) for the test to assert on. Not a
test module itself (pytest collects test_*.py only).
"""
import json
import sys
import zlib

import numpy as np

import descend as dn
from descend import distributed


def data(n=203, d=12, k=3, seed=0, regression=False, zeros=0.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * (rng.random((n, d)) >= zeros)
    if regression:
        return X, X[:, :2] @ rng.normal(size=(2, k)) + 0.1 * rng.normal(size=(n, k))
    return X, rng.integers(0, k, n)


def network(case, d=12, k=3):
    """A float64 network for one of the CASES (same seed on every rank)."""
    reg = dn.regularizers.L1L2(l1=1e-4, l2=1e-3) if case.get("penalty") else None
    layers = [dn.Dense(16, activation="relu", kernel_regularizer=reg)]
    if case.get("dropout"):
        layers.append(dn.Dropout(case["dropout"]))
    layers += [dn.Dense(8, activation="tanh"), dn.Dense(k)]
    net = dn.Sequential(layers, input_dim=d, dtype="float64", seed=1)
    net.compile(loss=case.get("loss", "softmax_cross_entropy"), optimizer=case["optimizer"]())
    return net


CASES = {
    "sgd_momentum_l1l2_clipvalue": dict(optimizer=lambda: dn.optimizers.SGD(
        0.05, momentum=0.9, nesterov=True, clipvalue=0.05), penalty=True),
    "sgd_plain": dict(optimizer=lambda: dn.optimizers.SGD(0.1)),
    # 85% zeros: the first layer goes through the sparse kernels on both sides
    "adam_sparse_input_l2": dict(optimizer=lambda: dn.optimizers.Adam(0.01), zeros=0.85,
                                 penalty=True),
    "adam_dropout": dict(optimizer=lambda: dn.optimizers.Adam(0.01), dropout=0.3),
    "adamw_global_clip": dict(optimizer=lambda: dn.optimizers.AdamW(
        0.01, weight_decay=0.01, global_clipnorm=0.5)),
    "rmsprop_clipnorm": dict(optimizer=lambda: dn.optimizers.RMSprop(0.005, clipnorm=0.3)),
    "sgd_schedule_mse": dict(optimizer=lambda: dn.optimizers.SGD(
        dn.schedules.ExponentialDecay(0.05, decay_rate=0.5)),
        loss="mean_squared_error", regression=True),
}


def weights_hash_equal(net, comm):
    """True if every rank holds bit-identical weights (allgather of a CRC)."""
    digest = 0
    for w in net.get_weights():
        digest = zlib.crc32(np.ascontiguousarray(w).tobytes(), digest)
    return len(set(comm.allgather(digest))) == 1


def max_relative_error(a, b):
    return max(float(np.max(np.abs(x - y) / (np.abs(y) + 1e-12)))
               for x, y in zip(a.get_weights(), b.get_weights()))


def equal_to_one_process(dist):
    """Each case: 3 epochs distributed against the one-process fit."""
    found = {}
    for name, case in CASES.items():
        X, y = data(regression=case.get("regression", False), zeros=case.get("zeros", 0.0))
        val = data(n=41, seed=5, regression=case.get("regression", False))
        kwargs = dict(epochs=3, batch_size=32, verbose=0, validation_data=val)
        net = network(case)
        history = net.fit(X, y, distributed=dist, **kwargs)
        ref = network(case)
        ref_history = ref.fit(X, y, **kwargs)
        found[name] = {
            "max_rel": max_relative_error(net, ref),
            "same_on_ranks": weights_hash_equal(net, dist.comm),
            "logs": {key: [history[key], ref_history[key]] for key in history
                     if key not in ("seconds", "samples_per_second", "allreduce_seconds")},
            "allreduce_seconds": history.get("allreduce_seconds"),
            "stats": getattr(net, "distributed_stats_", None),   # (not on 1 rank)
            "n_parameters": sum(w.size for w in net.get_weights()),
            "iterations": [net.optimizer.iterations, ref.optimizer.iterations],
        }
    return found


def sharded(dist):
    """Shards that interleave to X (shuffle=False): the one-process weights."""
    p, r, batch = dist.size, dist.rank, 30
    X, y = data(n=240)
    rows = interleaved_shard(len(X), batch, p, r)
    case = CASES["adam_dropout"]
    net = network(case)
    net.fit(X[rows], y[rows], epochs=2, batch_size=batch, shuffle=False, verbose=0,
            distributed=distributed.MPI(dist.comm, sharded=True))
    ref = network(case)
    ref.fit(X, y, epochs=2, batch_size=batch, shuffle=False, verbose=0)
    # shuffled: runs, equal on every rank, the loss falls
    shuffled = network(case)
    history = shuffled.fit(X[rows], y[rows], epochs=3, batch_size=batch, verbose=0,
                           distributed=distributed.MPI(dist.comm, sharded=True))
    return {"max_rel": max_relative_error(net, ref),
            "same_on_ranks": weights_hash_equal(net, dist.comm),
            "shuffled_same_on_ranks": weights_hash_equal(shuffled, dist.comm),
            "shuffled_loss": history["loss"]}


def interleaved_shard(n, batch, p, r):
    """Rank r's rows of a sharded run that, with shuffle=False, steps through the
    one-process batches of `batch` rows (rank r takes its share of each)."""
    shares = [(batch * q) // p for q in range(p + 1)]
    return np.concatenate([np.arange(s, min(s + shares[r + 1] - shares[r], n - shares[r]))
                           + shares[r] for s in range(0, n, batch)])


def weighted(dist):
    """sample_weight and class_weight: distributed against one process (weights
    and every logged value), in memory, sharded, and through the estimator."""
    import warnings
    found = {}
    rng = np.random.default_rng(3)
    for name, case in [("adam_dropout", CASES["adam_dropout"]),
                       ("sgd_momentum_l1l2_clipvalue", CASES["sgd_momentum_l1l2_clipvalue"]),
                       ("sgd_schedule_mse", CASES["sgd_schedule_mse"])]:
        regression = case.get("regression", False)
        X, y = data(regression=regression)
        w = rng.random(len(X)) * 3 * (rng.random(len(X)) > 0.2)     # 20% zeros
        Xv, yv = data(n=41, seed=5, regression=regression)
        kwargs = dict(epochs=3, batch_size=32, verbose=0,
                      validation_data=(Xv, yv, rng.random(41)))
        if not regression:
            kwargs["class_weight"] = {0: 2.0, 2: 0.5}
        net, ref = network(case), network(case)
        history = net.fit(X, y, sample_weight=w, distributed=dist, **kwargs)
        ref_history = ref.fit(X, y, sample_weight=w, **kwargs)
        found[name] = _compared(net, ref, history, ref_history, dist)
    # sharded, each rank its rows and their weights; "balanced" from every shard's counts
    p, r, batch = dist.size, dist.rank, 30
    X, y = data(n=240)
    w = rng.random(len(X)) + 0.5
    rows = interleaved_shard(len(X), batch, p, r)
    for name, extra in [("sharded", {}), ("sharded_balanced", {"class_weight": "balanced"})]:
        case = CASES["adam_dropout"]
        net, ref = network(case), network(case)
        kwargs = dict(epochs=2, batch_size=batch, shuffle=False, verbose=0, **extra)
        history = net.fit(X[rows], y[rows], sample_weight=w[rows],
                          distributed=distributed.MPI(dist.comm, sharded=True), **kwargs)
        ref_history = ref.fit(X, y, sample_weight=w, **kwargs)
        found[name] = _compared(net, ref, history, ref_history, dist)
    X, y = data(n=180)
    kwargs = dict(hidden_layer_sizes=(10,), max_iter=4, batch_size=40, random_state=0,
                  dtype="float64", learning_rate_init=0.01, class_weight="balanced")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # ConvergenceWarning after max_iter
        mine = dn.MLPClassifier(distributed=dist, **kwargs).fit(X, y)
        reference = dn.MLPClassifier(**kwargs).fit(X, y)
    found["estimator_balanced"] = {
        "max_rel": max(float(np.max(np.abs(a - b) / (np.abs(b) + 1e-12)))
                       for a, b in zip(mine.coefs_ + mine.intercepts_,
                                       reference.coefs_ + reference.intercepts_)),
        "same_on_ranks": True,
        "logs": {"loss_curve": [mine.loss_curve_, reference.loss_curve_]}}
    return found


def _compared(net, ref, history, ref_history, dist):
    return {"max_rel": max_relative_error(net, ref),
            "same_on_ranks": weights_hash_equal(net, dist.comm),
            "logs": {key: [history[key], ref_history[key]] for key in ref_history
                     if key not in ("seconds", "samples_per_second")}}


def shards(dist):
    """Sharded fits of tests/test_breaker3.py against the one-process fit of all
    the rows: a shard whose weights are all zero (the others' are not), a
    shard whose validation weights are; batch_size=None (the whole data, not
    a shard); MLPClassifier with class_weight="balanced" (and sample weights
    zero on one shard), batch 40 and "auto". Then every shard's weights zero:
    the messages every rank raised."""
    import warnings
    found = {}
    p, r, batch = dist.size, dist.rank, 30
    sharded_mpi = distributed.MPI(dist.comm, sharded=True)
    X, y = data(n=240)
    Xv, yv = data(n=60, seed=5)
    rng = np.random.default_rng(4)
    w, wv = rng.random(len(X)) + 0.5, rng.random(len(Xv)) + 0.5
    rows = interleaved_shard(len(X), batch, p, r)
    w[interleaved_shard(len(X), batch, p, p - 1)] = 0.0      # the last rank's shard
    val_rows = np.array_split(np.arange(len(Xv)), p)[r]
    wv[np.array_split(np.arange(len(Xv)), p)[0]] = 0.0          # rank 0's validation
    for name, extra in [("zero_shard", {}), ("zero_shard_balanced",
                                             {"class_weight": "balanced"})]:
        case = CASES["adam_dropout"]
        net, ref = network(case), network(case)
        kwargs = dict(epochs=2, batch_size=batch, shuffle=False, verbose=0, **extra)
        history = net.fit(X[rows], y[rows], sample_weight=w[rows], distributed=sharded_mpi,
                          validation_data=(Xv[val_rows], yv[val_rows], wv[val_rows]),
                          **kwargs)
        ref_history = ref.fit(X, y, sample_weight=w, validation_data=(Xv, yv, wv), **kwargs)
        found[name] = _compared(net, ref, history, ref_history, dist)
    # batch_size=None: one batch of all the shards' rows (was: of this rank's shard)
    full = interleaved_shard(len(X), len(X), p, r)
    case = CASES["sgd_momentum_l1l2_clipvalue"]
    net, ref = network(case), network(case)
    history = net.fit(X[full], y[full], epochs=3, batch_size=None, shuffle=False, verbose=0,
                      distributed=sharded_mpi)
    ref_history = ref.fit(X, y, epochs=3, batch_size=None, shuffle=False, verbose=0)
    found["full_batch"] = _compared(net, ref, history, ref_history, dist)
    found["full_batch"]["iterations"] = [net.optimizer.iterations, ref.optimizer.iterations]
    # the estimator: "balanced" from every shard's class counts
    X, y = data(n=180)
    w = rng.random(len(X)) + 0.5
    for name, batch_size in [("estimator_balanced", 40), ("estimator_balanced_auto", "auto")]:
        step = 40 if batch_size == 40 else len(X)
        mine_rows = interleaved_shard(len(X), step, p, r)
        weights = w.copy()
        weights[interleaved_shard(len(X), step, p, 0)] = 0.0    # rank 0's shard weighs 0
        kwargs = dict(hidden_layer_sizes=(10,), max_iter=4, batch_size=batch_size,
                      random_state=0, dtype="float64", learning_rate_init=0.01,
                      class_weight="balanced", shuffle=False, alpha=0.01)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # ConvergenceWarning after max_iter
            mine = dn.MLPClassifier(distributed=sharded_mpi, **kwargs).fit(
                X[mine_rows], y[mine_rows], sample_weight=weights[mine_rows])
            reference = dn.MLPClassifier(**kwargs).fit(X, y, sample_weight=weights)
        found[name] = {
            "max_rel": max(float(np.max(np.abs(a - b) / (np.abs(b) + 1e-12)))
                           for a, b in zip(mine.coefs_ + mine.intercepts_,
                                           reference.coefs_ + reference.intercepts_)),
            "same_on_ranks": weights_hash_equal(mine.net_, dist.comm),
            "logs": {"loss_curve": [mine.loss_curve_, reference.loss_curve_],
                     "t_": [mine.t_, reference.t_]}}
    # every shard's weights zero: refused on every rank, before anything changes
    messages = {}
    for name, fit in [
            ("net", lambda: network(CASES["sgd_plain"]).fit(
                X[:20], y[:20], sample_weight=np.zeros(20), verbose=0,
                distributed=sharded_mpi)),
            ("estimator", lambda: dn.MLPClassifier(
                hidden_layer_sizes=(4,), max_iter=2, random_state=0,
                distributed=sharded_mpi).fit(X[:20], y[:20], sample_weight=np.zeros(20))),
            # rank 1 another batch size (was: not compared over shards, the steps
            # then differed between the ranks)
            ("batch_differs", lambda: network(CASES["sgd_plain"]).fit(
                X[:20], y[:20], batch_size=16 if r == 1 else 8, verbose=0,
                distributed=sharded_mpi)),
            ("random_state_none", lambda: dn.MLPClassifier(
                hidden_layer_sizes=(4,), max_iter=2, distributed=dist).fit(X, y))]:
        try:
            fit()
            messages[name] = None
        except ValueError as exc:
            messages[name] = str(exc)
    found["all_zero"] = dist.comm.allgather(messages)
    return found


def mismatch(dist):
    """Rank 1 differs (batch size, then seed, then shape, then its validation
    rows, then a sample weight): every rank raises."""
    X, y = data()
    messages = {}
    for what in ("batch_size", "seed", "units", "bad_input", "validation_rows",
                 "sample_weight"):
        case = CASES["adam_dropout"]
        net = network(case)
        batch = 32
        if dist.rank == 1 and what == "batch_size":
            batch = 16
        if dist.rank == 1 and what == "seed":
            net = dn.Sequential([dn.Dense(16, activation="relu"), dn.Dense(8, activation="tanh"),
                                 dn.Dense(3)], input_dim=12, dtype="float64", seed=2)
            net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.Adam(0.01))
        if dist.rank == 1 and what == "units":
            net = dn.Sequential([dn.Dense(17, activation="relu"), dn.Dropout(0.3),
                                 dn.Dense(8, activation="tanh"), dn.Dense(3)],
                                input_dim=12, dtype="float64", seed=1)
            net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.Adam(0.01))
        Xr = X.copy()
        if dist.rank == 1 and what == "bad_input":
            Xr[3, 2] = np.nan
        validation = None
        if what == "validation_rows":
            validation = (X[:20], y[:20]) if dist.rank == 1 else (X[:30], y[:30])
        weights = None
        if what == "sample_weight":
            weights = np.ones(len(X))
            weights[5] += dist.rank == 1
        try:
            net.fit(Xr, y, epochs=1, batch_size=batch, verbose=0, distributed=dist,
                    validation_data=validation, sample_weight=weights)
            messages[what] = None
        except ValueError as exc:
            messages[what] = str(exc)
        messages[what] = dist.comm.allgather(messages[what])
    return messages


def disagree(dist):
    """A callback that, at the end of epoch 0, on rank 1 only: sets the
    learning rate, moves a weight or sets the momentum; on every rank: sets
    the momentum (which the compiled loop read once), or replaces a kernel.
    Every rank raises a RuntimeError before epoch 1 runs, and keeps epoch 0."""
    X, y = data()
    found = {}
    for what in ("learning_rate", "weights", "momentum", "momentum_everywhere", "kernel"):
        class OnRankOne(dn.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch != 0 or (dist.rank != 1 and what in (
                        "learning_rate", "weights", "momentum")):
                    return
                if what == "learning_rate":
                    self.model.optimizer.learning_rate *= 0.5
                elif what == "weights":
                    self.model.dense_layers[0].kernel[0, 0] += 1.0
                elif what.startswith("momentum"):
                    self.model.optimizer.momentum = 0.5
                else:
                    layer = self.model.dense_layers[0]
                    layer.kernel = layer.kernel.copy()
        net = network(CASES["sgd_momentum_l1l2_clipvalue"])
        try:
            net.fit(X, y, epochs=3, batch_size=32, verbose=0, distributed=dist,
                    callbacks=[OnRankOne()])
            message = None
        except RuntimeError as exc:
            message = str(exc)
        found[what] = dist.comm.allgather([message, net.epochs_trained, net.history.epoch])
    return found


def callbacks_root_only(dist, out):
    """CSVLogger and ModelCheckpoint write on rank 0; early stopping agrees."""
    import os
    X, y = data()
    case = CASES["adam_dropout"]
    net = network(case)
    folder = os.path.dirname(out)
    log = os.path.join(folder, f"log-rank{dist.rank}.csv")
    ck = os.path.join(folder, f"ck-rank{dist.rank}-{{epoch}}.npz")
    stop = dn.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=10.0)
    history = net.fit(X, y, epochs=5, batch_size=32, verbose=0, distributed=dist,
                      callbacks=[dn.callbacks.CSVLogger(log),
                                 dn.callbacks.ModelCheckpoint(ck), stop])
    saved = net.save(os.path.join(folder, f"model-rank{dist.rank}.npz"))
    dist.comm.Barrier()
    return {"files": sorted(os.listdir(folder)),
            "epochs_run": dist.comm.allgather(len(history["loss"])),
            "saved": saved is not None}


def memmap_input(dist, out):
    """Every rank passes the same np.memmap: the one-process weights."""
    import os
    X, y = data(n=300)
    path = os.path.join(os.path.dirname(out), "x.npy")
    if dist.rank == 0:
        np.save(path, X)
    dist.comm.Barrier()
    mm = np.load(path, mmap_mode="r")
    case = CASES["adam_dropout"]
    net = network(case)
    net.fit(mm, y, epochs=2, batch_size=32, verbose=0, distributed=dist,
            validation_data=(mm[:50], y[:50]))
    ref = network(case)
    ref.fit(X, y, epochs=2, batch_size=32, verbose=0, validation_data=(X[:50], y[:50]))
    found = {"max_rel": max_relative_error(net, ref),
             "same_on_ranks": weights_hash_equal(net, dist.comm)}
    try:
        import h5py
    except ImportError:
        return found
    # an HDF5 dataset, opened by every rank: each reads its rows of each batch
    path = os.path.join(os.path.dirname(out), "x.h5")
    if dist.rank == 0:
        with h5py.File(path, "w") as f:
            f.create_dataset("X", data=X, chunks=(16, X.shape[1]))
    dist.comm.Barrier()
    with h5py.File(path, "r") as f:
        net = network(case)
        net.fit(f["X"], y, epochs=2, batch_size=32, verbose=0, distributed=dist,
                validation_data=(X[:50], y[:50]))
    found["h5py_max_rel"] = max_relative_error(net, ref)
    found["h5py_same_on_ranks"] = weights_hash_equal(net, dist.comm)
    return found


def resume(dist, out):
    """2 epochs, save on rank 0, load on every rank, 1 more: the 3-epoch run's bits."""
    import os
    X, y = data()
    case = CASES["adam_dropout"]
    path = os.path.join(os.path.dirname(out), "resume.npz")
    first = network(case)
    first.fit(X, y, epochs=2, batch_size=32, verbose=0, distributed=dist)
    first.save(path)
    dist.comm.Barrier()
    resumed = dn.load(path)
    resumed.fit(X, y, epochs=1, batch_size=32, verbose=0, distributed=dist)
    straight = network(case)
    straight.fit(X, y, epochs=3, batch_size=32, verbose=0, distributed=dist)
    return {"max_abs": max(float(np.max(np.abs(a - b))) for a, b in
                           zip(resumed.get_weights(), straight.get_weights())),
            "same_on_ranks": weights_hash_equal(resumed, dist.comm),
            "epochs": [resumed.epochs_trained, straight.epochs_trained]}


def estimator(dist):
    """MLPClassifier(distributed=...) against the one-process estimator."""
    import warnings
    X, y = data(n=180)
    kwargs = dict(hidden_layer_sizes=(10,), max_iter=4, batch_size=40, random_state=0,
                  dtype="float64", learning_rate_init=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # ConvergenceWarning after max_iter
        mine = dn.MLPClassifier(distributed=dist, **kwargs).fit(X, y)
        reference = dn.MLPClassifier(**kwargs).fit(X, y)
    return {"max_rel": max(float(np.max(np.abs(a - b) / (np.abs(b) + 1e-12)))
                           for a, b in zip(mine.coefs_ + mine.intercepts_,
                                           reference.coefs_ + reference.intercepts_)),
            "loss_curve": [mine.loss_curve_, reference.loss_curve_]}


def failing_rank(dist, interrupt=False):
    """Rank 1's callback raises (or gets Ctrl-C) in epoch 1: the job must end
    with its message."""
    import os
    import signal

    class Fails(dn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if dist.rank == 1 and epoch == 1:
                if interrupt:
                    os.kill(os.getpid(), signal.SIGINT)
                raise RuntimeError("boom on rank one")
    X, y = data()
    net = network(CASES["adam_dropout"])
    net.fit(X, y, epochs=50, batch_size=8, verbose=0, distributed=dist, callbacks=[Fails()])
    return {"finished": True}


def checkpoint_fault(dist, out, variant):
    """A fault after 2 or 3 complete epochs of a job that would run for ages;
    rank 0's ModelCheckpoint("ck.npz") saves every epoch. Rank 0 first writes
    the uninterrupted one-process weights after 2 and 3 epochs (ref-2.npz,
    ref-3.npz) for the test to compare the checkpoint with.

    variant "rank1-batch": rank 1's batch hook raises in the middle of epoch 3;
    "rank0-interrupt": Ctrl-C on rank 0 in the middle of epoch 3 (both: the
    file holds epoch 2); "rank0-epoch_end": rank 0's callback listed before the
    checkpoint raises at the end of epoch 3 (the checkpoint has not run: the
    abort writes epoch 3)."""
    import os
    import signal
    folder = os.path.dirname(out)
    X, y = data()
    case = CASES["adam_dropout"]
    kwargs = dict(batch_size=8, verbose=0)
    if dist.rank == 0:
        reference = network(case)
        for epochs in (2, 3):
            reference.fit(X, y, epochs=epochs - reference.epochs_trained, **kwargs)
            np.savez(os.path.join(folder, f"ref-{epochs}.npz"), *reference.get_weights())
    failing_rank = 1 if variant == "rank1-batch" else 0

    class Fails(dn.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if dist.rank == failing_rank and self.epoch == 2 and batch >= 10:
                if variant == "rank0-interrupt":
                    os.kill(os.getpid(), signal.SIGINT)
                elif variant == "rank1-batch":
                    raise RuntimeError("boom in the middle of an epoch")

        def on_epoch_end(self, epoch, logs=None):
            if dist.rank == failing_rank and epoch == 2 and variant == "rank0-epoch_end":
                raise RuntimeError("boom at the end of an epoch")
    checkpoint = dn.callbacks.ModelCheckpoint(os.path.join(folder, "ck.npz"))
    net = network(case)
    net.fit(X, y, epochs=100000, steps_per_execution=2, distributed=dist,
            callbacks=[Fails(), checkpoint], **kwargs)
    return {"finished": True}


def main(scenario, out, loop="compiled"):
    dist = distributed.MPI()
    # "compiled": the allreduce inside the compiled loop where it applies;
    # "steps": the step loop (one return to Python a step) everywhere
    dist._compiled_loop = loop == "compiled"
    if scenario == "equal":
        found = equal_to_one_process(dist)
    elif scenario == "sharded":
        found = sharded(dist)
    elif scenario == "weighted":
        found = weighted(dist)
    elif scenario == "shards":
        found = shards(dist)
    elif scenario == "mismatch":
        found = mismatch(dist)
    elif scenario == "disagree":
        found = disagree(dist)
    elif scenario == "callbacks":
        found = callbacks_root_only(dist, out)
    elif scenario == "memmap":
        found = memmap_input(dist, out)
    elif scenario == "resume":
        found = resume(dist, out)
    elif scenario == "estimator":
        found = estimator(dist)
    elif scenario == "threads":
        found = {"threads": dist.comm.allgather(dist.threads_per_rank())}
    elif scenario == "fail":
        found = failing_rank(dist)
    elif scenario == "interrupt":
        found = failing_rank(dist, interrupt=True)
    elif scenario.startswith("fault-"):
        found = checkpoint_fault(dist, out, scenario[len("fault-"):])
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    found["size"] = dist.size
    if dist.rank == 0:
        with open(out, "w") as f:
            json.dump(found, f, default=float)


if __name__ == "__main__":
    main(*sys.argv[1:])
