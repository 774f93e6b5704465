"""Training: one validated fit configuration, and the trainer that runs it.

``Sequential.fit`` reads as validate, prepare, run::

    config = FitConfig.validate(model, X, y, epochs=..., ...)   # no state changed yet
    return Trainer(model, config).run()                          # prepare, epoch loop

:class:`FitConfig` checks every fit argument once, before any state
changes. :class:`Trainer` builds the network and the compiled epoch loop
(``descend._train.EpochRunner``), then owns the epoch loop: learning-rate
schedules, callback dispatch, the rollback to the last finite epoch on
divergence, and Ctrl-C.
"""
import math
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

from descend import _inference, _threads, losses, plans
from descend._contract import LayerSpec
from descend._outofcore import ChunkedTrainer, LazyRows
from descend._sample_weight import (check_class_weight, check_sample_weight,
                                    check_validation_weights, fit_weights)
from descend._train import EpochRunner
from descend._validation import (as_array, check_bool, check_float, check_int, check_lengths,
                                 check_live_params, check_n_threads, check_storable_labels,
                                 check_verbose, error_message, outside_stacklevel)
from descend.callbacks import Callback, CallbackList, LearningRateScheduler


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss or weight; the model was rolled back."""


class History(dict):
    """Per-epoch logs: ``history["loss"][e]`` is epoch e's training loss.

    The training loss is the mean of the epoch's batch losses (penalties
    included), each batch counted by its rows, as Keras does; with sample or
    class weights, by its weights' sum (Keras still counts rows), which
    makes it the weighted mean over the epoch's samples.

    Keys: loss, accuracy (classifiers) or mse/mae/r2 (regression), their
    ``val_`` twins with validation data, learning_rate, seconds,
    samples_per_second, ``grad_norm_<i>`` per Dense layer when
    ``fit(gradient_norms=True)``, and ``allreduce_seconds`` (this rank's
    seconds inside MPI_Allreduce) in a fit over several MPI ranks. ``history.history`` is the dict itself
    and ``history.epoch`` the epoch indices, as in Keras;
    ``history.interrupted`` is True when Ctrl-C ended the fit, and
    ``history.diverged`` when a callback stopped it on a non-finite loss
    (see ``Sequential.fit``'s Notes): the last entry is then the epoch that
    diverged, with loss NaN, as in Keras (its weights were rolled back); when
    only the validation outputs overflowed, that entry holds the epoch's
    finite loss and its non-finite ``val_`` scores.
    """

    def __init__(self):
        super().__init__()
        self.epoch = []
        self.interrupted = False
        self.diverged = False

    @property
    def history(self):
        """The dict itself (Keras' ``History.history``)."""
        return self

    def append(self, epoch, logs):
        """Record the logs of `epoch`."""
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.setdefault(key, []).append(value)


# ---------------------------------------------------------------------- validate
def _check_plans(model):
    """The plan fields the compiled loop will be forced to (the network's
    ``plan``, DESCEND_PLAN), DESCEND_PROFILE and DESCEND_CACHE_DIR (where
    the profile is read), checked before fit builds or changes anything."""
    n_layers = len(model.dense_layers)
    plans.check_plan(getattr(model, "plan", None), "plan", n_layers)
    plans.check_plan(plans.forced_from_env(), "DESCEND_PLAN", n_layers)
    if plans.profiling_enabled():   # (a DESCEND_PROFILE it does not know: ValueError)
        plans.cache_dir()


@dataclass
class FitConfig:
    """Every argument of one ``fit`` call, validated and converted.

    Built by :meth:`validate`, which raises before any state changes; the
    arrays are the training data after the validation split, encoded for
    the kernels (``targets``, ``labels``), ``weights`` the float64 weight
    of each training sample (sample_weight times class_weight) or None, and
    ``validation`` is ``(X_val, targets_val, labels_val, weights_val)`` or None.
    """

    X: np.ndarray
    targets: object
    labels: object
    classes: object
    validation: object
    epochs: int
    batch_size: int
    shuffle: bool
    verbose: int
    callbacks: CallbackList
    gradient_norms: bool
    n_threads: object
    initial_epoch: int = 0          # the epochs run are range(initial_epoch, epochs)
    steps_per_execution: object = None
    weights: object = None

    @classmethod
    def validate(cls, model, X, y, epochs=1, batch_size=32, shuffle=True, verbose=1,
                 validation_data=None, validation_split=0.0, callbacks=None,
                 gradient_norms=False, n_threads=None, initial_epoch=None,
                 steps_per_execution=None, sample_weight=None, class_weight=None,
                 shard=False):
        """Check and convert the arguments of ``model.fit`` (see its docstring).

        `shard`: X, y and the weights are one rank's shard of a sharded
        distributed fit, whose weights (training or validation) may all be
        zero: the sums over every rank's shard are checked by the caller.

        Raises
        ------
        ValueError, TypeError
            Naming the argument, before any state of `model` changes.
        """
        model._check_compiled()
        model.optimizer.check_dtype(model.dtype)    # (its epsilon may be set since compile)
        model._check_structure()
        if model.built:
            check_live_params(model)
        X = model._check_X(X, lazy=True)
        if y is None:
            raise ValueError("y is required, got None")
        y = as_array(y, "y", "labels (1-D) or targets (2-D)")
        check_lengths(X, y)
        sample_weight = check_sample_weight(sample_weight, len(X), allow_all_zero=shard)
        class_weight = check_class_weight(class_weight)
        epochs = check_int(epochs, "epochs", minimum=0)
        initial_epoch, epochs = _epoch_range(model, epochs, initial_epoch)
        if steps_per_execution is not None:
            steps_per_execution = check_int(steps_per_execution, "steps_per_execution",
                                            minimum=1)
        verbose = check_verbose(verbose)
        shuffle = check_bool(shuffle, "shuffle")
        validation_split = check_float(validation_split, "validation_split", minimum=0.0,
                                       maximum=1.0, max_inclusive=False)
        gradient_norms = check_bool(gradient_norms, "gradient_norms")
        if model.optimizer.schedule is None:     # assignable, by callbacks too
            check_float(model.optimizer.learning_rate, "optimizer.learning_rate", minimum=0.0)
        n_threads = check_n_threads(n_threads)
        check_n_threads(model.n_threads, "the network's n_threads")
        _check_plans(model)
        callback_list = _check_callbacks(callbacks, model.optimizer)
        X, y, X_val, y_val = _validation_split(model, X, y, validation_data, validation_split)
        sample_weight, val_weights = _split_weights(sample_weight, len(X), validation_data,
                                                    shard)
        if batch_size is not None:
            batch_size = check_int(batch_size, "batch_size", minimum=1)
        targets, labels, classes = model._encode(y)
        weights = fit_weights(model, sample_weight, class_weight, targets, labels, shard)
        validation = None
        if validation_data is not None or X_val is not None:
            # the rule evaluate applies to its (X, y), with the training data's classes
            names = (("validation_data[0]", "validation_data[1]") if validation_data is not None
                     else ("X's validation split", "y's validation split"))
            X_val, val_targets, val_labels, _ = model._prepare(
                X_val, y_val, *names, classes=classes, n_features=X.shape[1])
            if validation_data is not None:
                val_weights = check_validation_weights(validation_data, len(X_val), shard)
            validation = (X_val, val_targets, val_labels, val_weights)
        batch_size = _check_batch_size(batch_size, len(X))     # may warn: all checks passed
        return cls(X, targets, labels, classes, validation, epochs, batch_size, shuffle,
                   verbose, callback_list, gradient_norms,
                   model.n_threads if n_threads is None else n_threads, initial_epoch,
                   steps_per_execution, weights)


def _split_weights(sample_weight, n_train, validation_data, shard=False):
    """(training weights, validation weights) after the validation split: a
    split takes the weights of its rows along (as Keras); weights left all
    zero in the training part are a ValueError (not in one rank's `shard`:
    the caller checks the sums over the ranks)."""
    if sample_weight is None or validation_data is not None:
        return sample_weight, None
    train, val = sample_weight[:n_train], sample_weight[n_train:]
    for part, rows in (("training part (before", train), ("validation part (after", val)):
        if len(rows) and not rows.sum() > 0 and not shard:
            # the validation scores would divide by a zero weight after an epoch
            raise ValueError(f"sample_weight: the weights of the {part} the validation "
                             "split) are all zero; at least one needs to be positive")
    return train, (val if len(val) else None)


def _epoch_range(model, epochs, initial_epoch):
    """(first, end): the indices of the epochs to run are range(first, end).

    Without initial_epoch, they continue the model's count (epochs_trained)
    and `epochs` is how many to run; with it, as Keras: `epochs` is the
    index at which training stops."""
    if initial_epoch is None:
        return model.epochs_trained, model.epochs_trained + epochs
    initial_epoch = check_int(initial_epoch, "initial_epoch", minimum=0)
    if epochs < initial_epoch:
        raise ValueError(f"with initial_epoch={initial_epoch}, epochs is the index of the "
                         f"last epoch plus one (as in Keras) and must be >= initial_epoch, "
                         f"got epochs={epochs}")
    return initial_epoch, epochs


def _has_batch_hooks(callbacks):
    """Whether a callback does something on_train_batch_begin/end (not Callback's no-ops)."""
    for callback in callbacks:
        for hook in ("on_train_batch_begin", "on_train_batch_end"):
            # the hook as called: a subclass's method or one set on the instance
            bound = getattr(callback, hook, None)
            function = getattr(bound, "__func__", bound)
            if callable(bound) and function is not getattr(Callback, hook):
                return True
    return False


def _check_callbacks(callbacks, optimizer):
    """The callbacks as a CallbackList; TypeError for one that is not a
    callback, or for a LearningRateScheduler beside an optimizer whose
    learning rate is a schedule (each would overwrite the other's rate
    every epoch; Keras refuses the same pair)."""
    callback_list = CallbackList(callbacks)
    for i, callback in enumerate(callback_list):
        if isinstance(callback, type):      # its hooks are unbound functions
            raise TypeError(error_message(f"callbacks[{i}]", "a descend Callback (or an "
                                          "object with on_epoch_end etc.)", callback)
                            + f": a class, not an instance; call it: "
                            f"{callback.__name__}(...)")
        if not isinstance(callback, Callback) and not any(
                callable(getattr(callback, hook, None)) for hook in CallbackList._HOOKS):
            raise TypeError(error_message(f"callbacks[{i}]", "a descend Callback (or an "
                                          "object with on_epoch_end etc.)", callback))
        if isinstance(callback, LearningRateScheduler) and optimizer.schedule is not None:
            raise TypeError(
                f"callbacks[{i}] is a LearningRateScheduler, but the optimizer's "
                f"learning_rate is a schedule ({optimizer.schedule!r}): both would set the "
                "rate every epoch. Give the optimizer a float learning_rate, or drop the "
                "callback.")
    return callback_list


def _validation_split(model, X, y, validation_data, validation_split):
    """(X, y, X_val, y_val): validation data given (checked with the training
    data's classes by the caller), or split off the end."""
    X_val = y_val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)):
            raise ValueError(f"validation_data must be a tuple (X_val, y_val) or (X_val, "
                             f"y_val, sample_weight_val), got "
                             f"{type(validation_data).__name__}")
        if len(validation_data) not in (2, 3):
            raise ValueError(f"validation_data must be a tuple (X_val, y_val) or (X_val, "
                             f"y_val, sample_weight_val), got a "
                             f"{type(validation_data).__name__} of length "
                             f"{len(validation_data)}")
        X_val, y_val = validation_data[:2]
    elif validation_split > 0:
        n_val = int(len(X) * validation_split)
        if n_val < 1 or n_val >= len(X):
            raise ValueError(
                f"validation_split={validation_split} of {len(X)} samples leaves "
                f"{n_val} validation and {len(X) - n_val} training samples; both "
                "need at least one")
        _check_split_keeps_classes(model, y, n_val, validation_split)
        X, X_val = X[:-n_val], X[-n_val:]
        y, y_val = y[:-n_val], y[-n_val:]
    return X, y, X_val, y_val


def _check_split_keeps_classes(model, y, n_val, validation_split):
    """ValueError if holding out the last n_val samples leaves a class untrained."""
    if not model.loss_.is_classifier:
        return
    _, labels, classes = model._encode(y)
    if labels is None:      # binary: (n, k) 0/1 targets; labels are their values
        targets = model._encode(y)[0]
        if targets.shape[1] != 1:
            return          # multi-label 0/1 matrix: no classes to drop
        labels = targets[:, 0].astype(np.intp)
    dropped = np.setdiff1d(labels, labels[:-n_val])
    if dropped.size:
        raise ValueError(
            f"validation_split={validation_split} holds out the last {n_val} samples, "
            f"which leaves no training sample of class(es) "
            f"{np.asarray(classes)[dropped].tolist()[:10]}; shuffle the data before "
            "fit or pass validation_data")


def _check_batch_size(batch_size, n):
    """The batch size for n samples (None: n), clipped to n with a warning."""
    if batch_size is None:
        return n
    if batch_size > n:
        warnings.warn(f"batch_size={batch_size} is larger than the {n} training "
                      f"samples; using batch_size={n} (batch gradient descent)",
                      UserWarning, stacklevel=outside_stacklevel())
        return n
    return batch_size


# ---------------------------------------------------------------------- run
class Trainer:
    """Runs one validated fit: prepares the model, then the epoch loop.

    Parameters
    ----------
    model : descend.Sequential
        Compiled; built here if it is not yet.
    config : FitConfig
    """

    def __init__(self, model, config):
        self.model = model
        self.config = config
        self.held = None            # held_objects(model): what the runner trains
        self.settings = None        # loop_settings(model) the runner was built with
        self.batch_hooks = _has_batch_hooks(config.callbacks)
        # set by prepare() (this class's and the distributed trainer's) before any
        # read, hooked_batches by _progress(): no value here can change a fit
        self.runner = self.blas = None  # pragma: no mutate
        self.progress_every = self.hook_every = 1  # pragma: no mutate
        self.n_batches = 0  # pragma: no mutate
        self.hooked_batches = 0  # pragma: no mutate (batches reported to the batch hooks)
        self.n_samples = len(config.X)      # training samples of an epoch (all ranks')

    def prepare(self):
        """All checks passed: build the model, its optimizer and the compiled loop."""
        model, config = self.model, self.config
        X = config.X
        if not model.built:
            model.build(X.shape[1])
        set_classes(model, config.classes)
        omp, self.blas = _threads.plan(config.batch_size, config.n_threads)
        model.optimizer.build(model._params(), model._param_names())
        self.runner = self.make_runner(X, config.targets, config.labels, runner_specs(model),
                                       model.loss_.code, model.optimizer.kernel_config(),
                                       *model.optimizer.clip_settings(), config.batch_size,
                                       omp, plan=getattr(model, "plan", None),
                                       sample_weight=config.weights)
        record_plan(model, self.runner.plan)
        # what the compiled loop holds and read: checked around each epoch (_check_kept)
        self.held = held_objects(model)
        self.settings = loop_settings(model)
        self.n_batches = -(-len(X) // config.batch_size)
        self.progress_every = max(1, self.n_batches // 20)
        # more than an epoch's batches is once an epoch (and fits the loop's C int)
        self.hook_every = min(config.steps_per_execution or min(self.progress_every, 64),
                              self.n_batches)
        model.history = History()
        model.stop_training = False
        # trained by this process alone: its save writes again on every rank
        # (was: a rank other than 0 skipped every later save, silently)
        model._distributed = None

    def make_runner(self, X, targets, labels, *args, **kwargs):
        """The compiled epoch loop over (X, targets, labels): ``EpochRunner``."""
        return EpochRunner(X, targets, labels, *args, **kwargs)

    def run(self):
        """Prepare, run the epochs, and return the model's History.

        Raises
        ------
        DivergenceError
            As ``Sequential.fit`` documents; the model is rolled back first.
        RuntimeError
            The model is being trained already (another thread, or a callback
            of that fit), or another thread trains a network with its
            optimizer, before anything changes.
        """
        # the optimizer too: its state is read (get_state) as the network's is
        with _threads.training(self.model, "fit", uses=(self.model.optimizer,)):
            return self._run()

    def _run(self):
        model, config = self.model, self.config
        # what prepare() replaces that a fit failing before its first epoch must
        # give back (a build, the optimizer's zeroed state: as the next fit's)
        before = (model.history, model.classes_, model.stop_training,
                  getattr(model, "_distributed", None))
        try:
            self.prepare()
            callbacks = config.callbacks
            callbacks.set_model(model)
            # Keras 2's params, "metrics" the keys of every epoch's logs: a callback
            # checks the fields and monitors it reads at on_train_begin
            callbacks.set_params({"epochs": config.epochs, "batch_size": config.batch_size,
                                  "samples": self.n_samples, "verbose": config.verbose,
                                  "do_validation": config.validation is not None,
                                  "metrics": self.log_keys()})
            callbacks.on_train_begin({})
        except BaseException:
            model.history, model.classes_, model.stop_training, model._distributed = before
            raise
        self.snapshot = self.bar = None
        interrupted = False
        # read only by the handlers below when a snapshot exists, i.e. after the loop
        # assigned epoch: the value before the loop is never read
        epoch = -1  # pragma: no mutate
        try:
            for epoch in range(config.initial_epoch, config.epochs):
                self.run_epoch(epoch)
                if model.stop_training:
                    break
        except KeyboardInterrupt:
            # Ctrl-C (checked by the compiled loop every progress chunk), anywhere in
            # an epoch: end the fit with the weights and history of the last completed one
            if self.bar:
                self.bar.close()
            if self.snapshot is not None and epoch not in model.history.epoch:
                self._restore(self.snapshot)
            interrupted = True
            if config.verbose:
                print(f"\nInterrupted: kept the weights and history of the "
                      f"{len(model.history.epoch)} completed epoch(s).", file=sys.stderr)
        except Exception:
            # a callback's error (a batch hook runs inside the compiled loop's epoch):
            # never leave an epoch half applied (weights moved, iterations not counted)
            if self.bar:
                self.bar.close()
            if self.snapshot is not None and epoch not in model.history.epoch:
                self._restore(self.snapshot)
            raise
        model.history.interrupted = interrupted
        callbacks.on_train_end({"interrupted": interrupted} if interrupted else {})
        return model.history

    def run_epoch(self, epoch):
        """One epoch: schedule, callbacks, the compiled loop, logs, divergence check."""
        model, config = self.model, self.config
        self.epoch = epoch      # (messages)
        optimizer, n = model.optimizer, self.n_samples
        # the state after the last completed epoch, restored on Ctrl-C or divergence;
        # cleared first: a refusal before the new one is taken must not restore the
        # previous epoch's (it would undo that completed epoch)
        self.snapshot = None
        self._check_kept()
        self.snapshot = self._snapshot()
        # the index the callbacks see (as Keras' LearningRateScheduler): with
        # initial_epoch=k, k for the first epoch whatever epochs_trained says;
        # without, epochs_trained (range(epochs_trained, ...)): one rule for both
        optimizer.learning_rate_for_epoch(epoch, model.dtype)
        config.callbacks.on_epoch_begin(epoch, {})
        self._check_epoch_settings()                   # a callback may have changed them
        order = (model._rng.permutation(n) if config.shuffle else np.arange(n)).astype(np.intp)
        epoch_seed = int(model._rng.integers(0, 2**63))
        self.bar = _progress_bar(config.verbose, n, config.batch_size, epoch, config.epochs)
        progress, progress_every = self._progress()
        start = time.perf_counter()
        result = self.train_epoch(order, epoch_seed, progress, progress_every)
        seconds = time.perf_counter() - start
        self._check_kept()
        if self.bar:
            self.bar.close()
            self.bar = None
        optimizer.iterations = result["step"]
        rate_and_time = {"learning_rate": optimizer.learning_rate, "seconds": seconds,
                  "samples_per_second": n / seconds if seconds > 0 else float("inf")}
        if not result["finite"] or not model._training_state_finite():
            failed = result["n_batches"] - (0 if not result["finite"] else 1)
            return self._diverged(epoch, "the loss, the weights or the optimizer's state",
                                  failed, {"loss": float("nan")}, rate_and_time)
        logs = self._epoch_logs(result)
        if not all(math.isfinite(value) for value in logs.values()):
            # finite weights whose outputs overflow: diverged just the same
            bad = [key for key, value in logs.items() if not math.isfinite(value)]
            return self._diverged(epoch, f"the network's outputs (so {', '.join(bad)})",
                                  self.n_batches - 1, logs, rate_and_time)
        logs.update(rate_and_time)
        model.epochs_trained += 1
        model.history.append(epoch, logs)
        # the epoch is complete: a Ctrl-C from here to the next epoch's snapshot
        # must keep it, not restore the snapshot taken before it
        self.snapshot = None
        if config.verbose:
            print(_format_logs(epoch, config.epochs, logs), flush=True)
        config.callbacks.on_epoch_end(epoch, logs)
        self._step_plateau_schedule(logs)

    def _check_epoch_settings(self):
        """Before an epoch runs, after its on_epoch_begin: the learning rate
        as it stands, and nothing the compiled loop holds or read changed."""
        self.model.optimizer.check_learning_rate(self.model.dtype)
        self._check_kept()

    def _check_kept(self):
        """RuntimeError if a callback replaced what the compiled loop trains
        (it would go on updating the arrays it holds, and the fit's work would
        not be in the network: silently lost), or changed a setting the loop
        read when it was built (the network would report and save a setting
        its weights were not trained with)."""
        model = self.model
        if self.held is not None:       # (None: the distributed trainer's step loop)
            replaced = _replaced(self.held, held_objects(model), _held_names(model))
            if replaced:
                raise RuntimeError(
                    f"fit: the network's {replaced} was replaced during fit (by a "
                    "callback?); the compiled loop trains the objects it started with. "
                    "Change weights in place (net.set_weights, layer.kernel[...] = ...); a "
                    "new optimizer or loss takes compile() between fits, not during one")
        if self.settings is not None:
            _check_settings_kept(self.settings, loop_settings(model))

    def train_epoch(self, order, epoch_seed, progress, progress_every, start=None,
                    first_batch=0):
        """The epoch's updates over the rows in `order`: the compiled loop's
        result dict (``EpochRunner.run_epoch``; `start`: the sums it goes on
        from, `first_batch`: the epoch's index of its first batch). Progress
        comes at the epoch's multiples of progress_every and, with batch
        hooks, of hook_every."""
        optimizer = self.model.optimizer
        with _threads.blas_threads(self.blas):
            return self.runner.run_epoch(
                order, optimizer.learning_rate, optimizer.weight_decay, optimizer.iterations,
                epoch_seed, progress, progress_every, start, first_batch,
                self.hook_every if self.batch_hooks else 0)

    def scores(self, X, targets, labels, weights=None):
        """``model._evaluate`` of these rows, weighted by `weights` if given
        (a distributed fit sums over ranks)."""
        return self.model._evaluate(X, targets, labels, weights)

    def _epoch_logs(self, result):
        """Training loss and metrics of the epoch, then the validation scores."""
        model, config = self.model, self.config
        X, targets, labels = config.X, config.targets, config.labels
        # the (weighted) mean over the epoch's samples: the loop's sums are
        # weighted by the samples' weights when there are any
        seen = result["n_samples"] if config.weights is None else result["weight_sum"]
        logs = {"loss": result["loss_sum"] / seen if seen > 0 else 0.0}
        if model.loss_.is_classifier:
            total = self.n_samples if config.weights is None else result["weight_sum"]
            logs["accuracy"] = model.loss_.accuracy(result["n_correct"], total,
                                                    model.dense_layers[-1].units)
        if not model.loss_.is_classifier and model._regression_train_metrics:
            # mse, mae, r2 on the training data with the epoch's final weights
            scores = self.scores(X, targets, labels, config.weights)
            logs.update((key, scores[key]) for key in ("mse", "mae", "r2"))
        if config.validation is not None:
            for key, value in self.scores(*config.validation).items():
                logs["val_" + key] = value
        if config.gradient_norms:
            logs.update(self._gradient_norms())
        return logs

    def log_keys(self):
        """The keys of every epoch's logs (:meth:`_epoch_logs` and the rate and
        time run_epoch adds), in their order, known before the first epoch
        (the network is built)."""
        return log_keys(self.model, self.config)

    def _gradient_norms(self, max_rows=2048):
        from descend import reference   # (reference imports DivergenceError from here)
        config = self.config
        rows = slice(0, min(len(config.X), max_rows))
        _, grads = reference.loss_and_grads(
            self.model, np.asarray(config.X[rows]),
            None if config.targets is None else config.targets[rows],
            None if config.labels is None else config.labels[rows],
            weights=None if config.weights is None else config.weights[rows])
        return {f"grad_norm_{i}": float(np.linalg.norm(dw)) for i, (dw, _) in enumerate(grads)}

    def _step_plateau_schedule(self, logs):
        schedule = self.model.optimizer.schedule
        if schedule is None:
            return
        if hasattr(schedule, "observe"):
            schedule.observe(logs)          # warns if its monitor is absent
        elif hasattr(schedule, "step"):     # a user's schedule with step(value) only
            monitor = getattr(schedule, "monitor", "val_loss")
            if monitor in logs:
                schedule.step(logs[monitor])

    def _progress(self):
        """(progress callback, every how many batches) for the compiled loop.

        The loop calls it between runs of batches, with the GIL: it moves the
        bar and, at the epoch's multiples of ``hook_every`` batches (and its
        last batch), calls the callbacks' ``on_train_batch_end`` (logs: the
        epoch's running mean loss) and the next ``on_train_batch_begin``."""
        bar = self.bar
        if not self.batch_hooks:
            return (bar.update_to if bar else None), self.progress_every
        callbacks = self.config.callbacks
        self.hooked_batches = 0
        callbacks.on_train_batch_begin(0, {})

        def progress(batches_done, running_loss):
            if bar:
                bar.update_to(batches_done, running_loss)
            # (the loop also stops at the bar's multiples, between the hooks')
            if (batches_done // self.hook_every > self.hooked_batches // self.hook_every
                    or batches_done == self.n_batches):
                callbacks.on_train_batch_end(batches_done - 1, {"loss": running_loss})
                self.hooked_batches = batches_done
                if batches_done < self.n_batches:
                    callbacks.on_train_batch_begin(batches_done, {})
        # the loop reports at the multiples of both (train_epoch passes hook_every)
        return progress, self.progress_every if bar else self.hook_every

    def _diverged(self, epoch, what, batch, logs, rate_and_time):
        """Roll back to the snapshot and tell the callbacks (on_train_batch_end of the
        failing batch, with its non-finite loss); end the fit if one of them set
        stop_training (TerminateOnNaN does), else raise DivergenceError.

        A fit that ends this way records the epoch that diverged in its History,
        as Keras does: its loss NaN (and every other metric this fit logged, so
        the lists stay one per epoch), its learning rate and time; the epoch's
        own logs override those NaNs (a finite loss when only the validation
        outputs overflowed). Its weights were rolled back, so
        ``model.epochs_trained`` does not count it."""
        model = self.model
        learning_rate = model.optimizer.learning_rate
        where = f"epoch {epoch + 1}/{self.config.epochs}"       # as the epoch lines say
        self._restore(self.snapshot)
        self.config.callbacks.on_train_batch_end(batch, dict(logs))
        if model.stop_training:
            model.history.diverged = True
            nan = float("nan")
            record = {key: nan for key in model.history}
            record["loss"] = nan
            record.update(logs)
            record.update(rate_and_time)
            model.history.append(epoch, record)
            if self.config.verbose:
                print(f"Training stopped in {where} by a callback: {what} became NaN or "
                      "infinite; the weights of the last finite epoch were kept.",
                      file=sys.stderr)
            return
        self.config.callbacks.on_train_end({})
        raise DivergenceError(
            f"training diverged in {where}: {what} became NaN or infinite with "
            f"learning_rate={learning_rate:g}. The weights after the last finite epoch "
            "were kept; try a smaller learning rate (or gradient clipping).")

    def _snapshot(self):
        model = self.model
        params = model._params()
        return (params, [np.array(p, copy=True) for p in params],
                model.optimizer.get_state(), model.optimizer.learning_rate,
                model._rng.bit_generator.state, model.epochs_trained)

    def _restore(self, snapshot):
        model = self.model
        params, weights, state, learning_rate, rng_state, epochs_trained = snapshot
        if [p.shape for p in model._params()] == [w.shape for w in weights]:
            model.set_weights(weights)
        else:   # a callback added or removed layers: back into the arrays the epoch trained
            for param, weight in zip(params, weights):
                np.copyto(param, weight)
        # the optimizer snapshotted, even if a callback compiled another one
        optimizer = self.held[0][0] if self.held else model.optimizer
        optimizer.set_state(state)
        optimizer.learning_rate = learning_rate
        model._rng.bit_generator.state = rng_state
        model.epochs_trained = epochs_trained


class _ChunkedTrainer(ChunkedTrainer, Trainer):
    """The Trainer over an X read in chunks (descend._outofcore)."""


def make_trainer(model, config):
    """The Trainer for a validated fit: chunked when X is not in memory."""
    if isinstance(config.X, LazyRows):
        return _ChunkedTrainer(model, config)
    return Trainer(model, config)


def record_plan(model, plan):
    """Record on the model (``plan_``, saved with it) the compiled epoch's
    plan and the thresholds its predict will use, so that pin_plan() pins
    both (descend.plans)."""
    model.plan_ = plan
    _inference.predict_plan(model, tuple(layer.kernel.shape for layer in model.dense_layers),
                            model.dtype)


def held_objects(model):
    """What the compiled loop holds, in groups: (optimizer, loss), the
    parameters, the optimizer's state arrays."""
    return ((model.optimizer, model.loss_), tuple(model._params()),
            tuple(_state_arrays(model.optimizer)))


def _held_names(model):
    """Names of held_objects(model)'s groups' members, for messages."""
    optimizer = model.optimizer
    state = [f"optimizer's state of {name}" for name, arrays
             in zip(optimizer.param_names or [], optimizer.state or []) for _ in arrays]
    return (("optimizer", "loss"), model._param_names(), state)


def _replaced(held, now, names):
    """The name of the first member of held_objects' groups that `now` holds
    another object for; "parameters" or "optimizer's state" for a group of
    another length; None if nothing was replaced."""
    for group, (before, after, members) in enumerate(zip(held, now, names)):
        if len(before) != len(after):
            return ("optimizer", "parameters", "optimizer's state")[group]
        for name, old, new in zip(members, before, after):
            if new is not old:
                return name
    return None


def _state_arrays(optimizer):
    """The optimizer's state arrays, flat (none before it is built)."""
    return [array for arrays in optimizer.state or [] for array in arrays]


def loop_settings(model):
    """Every setting of the optimizer and the layers that the compiled loop
    reads once, when it is built, as {"optimizer.<key>" or "layers.<i>.<key>":
    value}: their configs without what the loop reads each epoch
    (learning_rate, weight_decay) or never (names, initializers)."""
    settings = {f"optimizer.{key}": value for key, value in model.optimizer.get_config().items()
                if key not in ("learning_rate", "weight_decay")}
    for i, layer in enumerate(model.layers):
        settings.update((f"layers.{i}.{key}", value) for key, value in layer.get_config().items()
                        if key not in ("name", "kernel_initializer", "bias_initializer"))
    return settings


def _check_settings_kept(before, now):
    """RuntimeError naming the first setting of loop_settings that changed."""
    for key in sorted(before.keys() | now.keys()):
        if before.get(key) != now.get(key):
            raise RuntimeError(
                f"fit: {key} changed during fit ({before.get(key)!r} -> {now.get(key)!r}; "
                "by a callback?), but the compiled loop read it once, when fit started, "
                "and would train on with the old value: only the optimizer's learning_rate "
                "and weight_decay may change between epochs. Set it back, or change it "
                "between two fits (the next fit reads it)")


def runner_specs(model):
    """What the compiled epoch loop needs to know of each Dense layer: one
    ``descend._contract.LayerSpec`` per layer (checked when built), over the
    live parameter and optimizer-state arrays."""
    codes, rates = model._activation_codes(), model._dropout_rates()
    state = iter(model.optimizer.state)
    specs = []
    for i, layer in enumerate(model.dense_layers):
        kreg, breg = layer.kernel_regularizer, layer.bias_regularizer
        specs.append(LayerSpec(
            layer.kernel, layer.bias, next(state),
            next(state) if layer.use_bias else (),
            activation=codes[i], alpha=layer.alpha, dropout_rate=rates[i],
            kernel_l1=kreg.l1 if kreg else 0.0, kernel_l2=kreg.l2 if kreg else 0.0,
            bias_l1=breg.l1 if breg else 0.0, bias_l2=breg.l2 if breg else 0.0,
            kernel_l1_proximal=bool(kreg and kreg.proximal),
            bias_l1_proximal=bool(breg and breg.proximal),
            decay_bias=model.optimizer.decay_bias))
    return specs


# ---------------------------------------------------------------------- partial_fit
def partial_fit(model, X, y, classes=None, batch_size=32, shuffle=True, verbose=0,
                n_threads=None, sample_weight=None):
    """One epoch over (X, y), keeping all state; see ``Sequential.partial_fit``."""
    model._check_compiled()
    model.optimizer.check_dtype(model.dtype)
    _threads.check_not_training(model, "partial_fit")     # before classes_ is set
    shape = np.shape(X)
    n = shape[0] if len(shape) >= 1 else None
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        if n:
            batch_size = min(batch_size, n)
    previous = model.classes_
    if classes is not None:
        classes = _check_classes(model, classes)
        if previous is not None and not (
                len(previous) == len(classes) and np.array_equal(previous, classes)):
            raise ValueError(f"classes={classes.tolist()[:20]} differs from classes_ "
                             f"{np.asarray(previous).tolist()[:20]} set by an earlier "
                             "call")
    elif previous is None and model.loss_.is_classifier:
        _check_first_chunk_classes(model, y)
    if classes is not None and previous is None:
        model.classes_ = classes
    try:
        return model.fit(X, y, epochs=1, batch_size=batch_size, shuffle=shuffle,
                         verbose=verbose, n_threads=n_threads, sample_weight=sample_weight)
    except (ValueError, TypeError):
        model.classes_ = previous
        raise


def _check_classes(model, classes):
    """`classes` of partial_fit as a sorted unique 1-D array fitting the network."""
    if not model.loss_.is_classifier:
        raise TypeError(f"classes is only for classification losses, the network uses "
                        f"{model.loss_.name!r}")
    if isinstance(classes, (str, bytes)):
        raise TypeError(f"classes must be an array-like of labels, got {classes!r}")
    array = np.asarray(classes)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"classes must be a non-empty 1-D array of labels, got shape "
                         f"{array.shape}")
    if array.dtype.kind not in "biufUS":
        raise TypeError(f"classes must hold numbers or strings, got dtype {array.dtype}")
    if array.dtype.kind in "US":    # np.asarray dropped trailing NULs: look at the labels given
        check_storable_labels(np.asarray(classes, dtype=object).ravel().tolist(), "classes")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError("classes contains NaN or infinite values")
    unique = np.unique(array)
    if len(unique) != len(array):
        raise ValueError(f"classes has duplicate labels: {array.tolist()[:20]}")
    n_out = model.dense_layers[-1].units
    expected = n_out if model.loss_.code == losses.SOFTMAX_CROSS_ENTROPY else (
        2 if n_out == 1 else None)
    if expected is None:
        raise ValueError(f"classes is not used with {n_out} independent binary outputs "
                         "(multi-label targets); pass classes=None")
    if len(unique) != expected:
        raise ValueError(f"classes has {len(unique)} labels, but the network's "
                         f"{model.loss_.name} output needs {expected}")
    return unique


def _check_first_chunk_classes(model, y):
    """Without `classes`, a first chunk of non-integer labels must show them all."""
    y = np.asarray(y)
    n_out = model.dense_layers[-1].units
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        return      # fit names the NaN
    if (model.loss_.code == losses.SOFTMAX_CROSS_ENTROPY and y.ndim == 1
            and y.dtype.kind not in "iu" and y.size):
        found = losses._unique(y, "y")
        if len(found) != n_out:
            raise ValueError(
                f"the first partial_fit call sees {len(found)} distinct labels "
                f"{found.tolist()[:10]}, but the network has {n_out} outputs; pass "
                "classes=<all labels> on the first call")


# ---------------------------------------------------------------------- progress
def _format_logs(epoch, epochs, logs):
    parts = [f"epoch {epoch + 1}/{epochs}"]
    for key, value in logs.items():
        if key == "seconds":
            parts.append(f"{value:.2f}s")
        elif key == "samples_per_second":
            parts.append(f"{value:,.0f} samples/s")
        elif key == "learning_rate":
            parts.append(f"lr {value:.3g}")
        else:
            parts.append(f"{key} {value:.4f}")
    return "  ".join(parts)


def _dynamic_display():
    """True if a progress bar can redraw itself in place: stderr is a terminal,
    or the code runs in a Jupyter kernel."""
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        terminal = bool(isatty and isatty())
    except ValueError:          # a closed stream
        terminal = False
    return terminal or "ipykernel" in sys.modules


class _TqdmBar:
    """Progress of one epoch in samples: tqdm shows samples/s and the running loss."""

    def __init__(self, n_samples, batch_size, desc):
        from tqdm import tqdm
        # (verbose=2 prints the epoch lines only: the choice for log files)
        self._bar = tqdm(total=n_samples, desc=desc, unit="sample", unit_scale=True,
                         leave=False, dynamic_ncols=True)
        self._n = n_samples
        self._batch_size = batch_size
        self._done = 0

    def update_to(self, batches_done, running_loss):
        done = min(batches_done * self._batch_size, self._n)
        self._bar.set_postfix(loss=f"{running_loss:.4f}", refresh=False)
        self._bar.update(done - self._done)
        self._done = done

    def close(self):
        self._bar.close()


def _progress_bar(verbose, n_samples, batch_size, epoch, epochs):
    """A tqdm bar for verbose=1 on a terminal, else None (the epoch line is printed alone).

    Piped or redirected output (stderr, where tqdm writes, is not a terminal)
    gets no bar, as tqdm's ``disable=None`` and Keras' progress bar do: a log
    file would otherwise hold a bar stuck at 0% or one line per refresh. A
    Jupyter kernel (whose streams are not terminals) keeps the bar, as in Keras."""
    if verbose != 1 or not _dynamic_display():
        return None
    try:
        return _TqdmBar(n_samples, batch_size, f"epoch {epoch + 1}/{epochs}")
    except ImportError:
        return None


def log_keys(model, config):
    """The keys of every epoch's logs of a fit of `model` with the validated
    `config` (a FitConfig), in their order (see :meth:`Trainer.log_keys`)."""
    scores = (["accuracy"] if model.loss_.is_classifier else ["mse", "mae", "r2"])
    keys = ["loss"]
    if model.loss_.is_classifier or model._regression_train_metrics:
        keys += scores
    if config.validation is not None:      # model._evaluate's keys
        keys += ["val_" + key for key in ["loss"] + scores]
    if config.gradient_norms:
        keys += [f"grad_norm_{i}" for i in range(len(model.dense_layers))]
    return keys + ["learning_rate", "seconds", "samples_per_second"]


def set_classes(model, classes):
    """``classes_`` as a fit or an update with the training data's `classes`
    leaves them: those already set, else `classes`; None for a regression
    loss, which has no classes (those of an earlier classification fit,
    compiled again since, would be saved with it)."""
    if not model.loss_.is_classifier:
        model.classes_ = None
    elif model.classes_ is None:
        model.classes_ = classes
