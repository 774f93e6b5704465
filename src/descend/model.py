"""Sequential: a stack of Dense (and Dropout) layers trained by gradient descent.

This module holds the model: its structure, build, compile, weights,
predict, evaluate and save. Training lives in :mod:`descend.training`
(``fit`` = validate, prepare, run: :class:`~descend.training.FitConfig` and
:class:`~descend.training.Trainer`, which runs each epoch as one compiled call
of ``_train.pyx``); the per-layer driver of the same kernels (``gradients``,
``loss``, ``train_on_batch``) in :mod:`descend.reference`.
"""
import math
import time
from numbers import Integral

import numpy as np

from descend import _inference, _threads, losses, optimizers, plans, reference
from descend._inference import CHUNK_ROWS, PARALLEL_MIN_ROWS  # noqa: F401
from descend import layers as layers_module
from descend._sample_weight import check_sample_weight
from descend._validation import (InstanceOf, Interval, as_array, check, check_array_like,
                                 check_dtype, check_int, check_lengths, check_n_threads,
                                 check_X, error_message)
from descend.layers import Dense, Dropout
from descend.training import (DivergenceError, FitConfig, History, Trainer,  # noqa: F401
                               make_trainer)
from descend.training import partial_fit as _partial_fit


def _check_metrics(metrics, loss):
    """compile's metrics: names among those every epoch logs for `loss`."""
    if metrics is None:
        return
    if not isinstance(metrics, (list, tuple)) or not all(isinstance(m, str) for m in metrics):
        raise TypeError(f"metrics must be a list of str (names of metrics), got {metrics!r}")
    # (not Keras's "acc": the history's key is "accuracy", which a monitor names)
    logged = ("accuracy",) if loss.is_classifier else ("mse", "mae", "r2")
    unknown = [m for m in metrics if m not in logged]
    if unknown:
        # Keras's short names, pointed to descend's
        hints = [f"{m!r} is {full!r}" for m, full in (("acc", "accuracy"),
                 ("mean_squared_error", "mse"), ("mean_absolute_error", "mae"))
                 if m in unknown and full in logged]
        raise ValueError(f"metrics: loss {loss.name!r} logs the loss and {', '.join(logged)} "
                         f"every epoch (validation_data adds their val_ twins); descend "
                         f"computes no other metric, got {unknown!r}"
                         + (f" ({'; '.join(hints)} here)" if hints else ""))


class Sequential:
    """A feed-forward network: Dense layers (with optional Dropout between).

    Parameters
    ----------
    layers : list of Dense / Dropout
        The last layer must be Dense; with a cross-entropy loss it outputs
        logits (see ``descend.losses``).
    input_dim : int or None
        Number of input features; None builds the network at the first fit.
    dtype : "float32" or "float64", default "float32"
        Dtype of the parameters and of all computation; inputs are converted
        to it (one copy at most), outputs come back in it.
    seed : int, numpy Generator or None
        Seeds the network's own ``numpy.random.Generator``, the only source
        of randomness (initialization, shuffling, dropout masks); the global
        numpy state is never used. None draws fresh entropy.
    n_threads : int or None
        Threads for the compiled loops (None: all usable cores, respecting
        OMP_NUM_THREADS and the CPU affinity).

    Attributes
    ----------
    layers : list
    loss_ : descend.losses.Loss or None (after compile)
    optimizer : descend.optimizers.Optimizer or None (after compile)
    classes_ : ndarray or None
        Class labels of a classifier, in output order (set by the first fit).
    history : History
        Logs of the last fit.
    stop_training : bool
        A callback may set it to end fit after the current epoch.
    epochs_trained : int
        Epochs completed since compile, over all calls to fit and
        partial_fit: the clock of the optimizer's learning-rate schedule, so
        that training continued by another fit (or after save and load)
        resumes the schedule where it stopped.
    plan : dict or None
        Fields of a ``descend.plans.Plan`` to force in the compiled epoch
        (``sparse_input``, ``sample_rows``, ``kernel_rows``, ``by_columns``) and in
        predict (``plans.PREDICT_FIELDS``), e.g. the ``plan_`` of an earlier run to
        reproduce its rounding on another machine; None: from this machine's profile.
    plan_ : dict or None
        The plan the last fit and predict used (after either).

    Examples
    --------
    >>> import descend as dn
    >>> net = dn.Sequential([dn.Dense(64, activation="relu"), dn.Dense(10)],
    ...                     input_dim=64, seed=0)
    >>> net = net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(0.1))
    >>> [layer.kernel.shape for layer in net.dense_layers]
    [(64, 64), (64, 10)]
    >>> net.predict(np.zeros((2, 64), np.float32)).shape      # softmax probabilities
    (2, 10)
    """

    # fit computes mse/mae/r2 on the training data after each epoch (regression)
    _regression_train_metrics = True

    def __init__(self, layers=None, input_dim=None, dtype="float32", seed=None,
                 n_threads=None, name=None):
        self.dtype = check_dtype(dtype)
        self.input_dim = check_int(input_dim, "input_dim", minimum=1, allow_none=True)
        self.n_threads = check_n_threads(n_threads)
        check(seed, "seed", [None, Interval(Integral, 0, None), np.random.Generator])
        check(name, "name", [None, "str"], "Sequential")
        self.seed = seed if not isinstance(seed, np.random.Generator) else None
        self._rng = np.random.default_rng(seed)
        self.name = name
        self.layers = []
        for layer in layers or []:
            self.add(layer)
        self.loss_ = None
        self.optimizer = None
        self.classes_ = None
        self.history = History()
        self.stop_training = False
        self.epochs_trained = 0
        self.plan = None
        self.plan_ = None
        if self.input_dim is not None and self.dense_layers:
            self.build(self.input_dim)

    # ------------------------------------------------------------------ structure
    def add(self, layer):
        """Append a Dense or Dropout layer (before the network is built)."""
        check(layer, "layer", [InstanceOf(Dense, Dropout)])
        if isinstance(layer, Dense) and any(layer is other for other in self.layers):
            raise ValueError(f"{layer!r} is in the network twice: shared layers are not "
                             "supported, create one Dense per position")
        if isinstance(layer, Dense) and layer.built:
            raise ValueError(f"{layer!r} is already built (part of another network?): "
                             "building this network would redraw its weights; create a new "
                             "Dense and copy weights with set_weights")
        if self.built:
            raise ValueError("cannot add a layer to a network that is already built")
        self.layers.append(layer)

    @property
    def dense_layers(self):
        """The network's Dense layers in order (a new list; Dropout layers
        left out): ``net.dense_layers[i].kernel`` is layer i's kernel,
        shape (n_in, n_out)."""
        return [layer for layer in self.layers if isinstance(layer, Dense)]

    @property
    def built(self):
        dense = self.dense_layers
        return bool(dense) and all(layer.built for layer in dense)

    @property
    def n_features_in_(self):
        return self.dense_layers[0].n_in if self.built else self.input_dim

    def _check_structure(self):
        """The layers' order and each layer's settings (assignable after
        construction): ValueError or TypeError naming the layer."""
        if not self.layers or not isinstance(self.layers[-1], Dense):
            raise ValueError("the last layer must be a Dense layer, got "
                             f"{self.layers[-1] if self.layers else 'no layers'}")
        for i, layer in enumerate(self.layers):
            layer.check_settings(f"layers[{i}]")
        for layer in self.dense_layers[:-1]:
            if layer.activation == "softmax":
                raise ValueError("activation='softmax' is only allowed on the last layer "
                                 "(fused with softmax_cross_entropy)")

    def build(self, input_dim):
        """Draw all parameters for `input_dim` input features."""
        input_dim = check_int(input_dim, "input_dim", minimum=1)
        self._check_structure()
        layers_module.check_kernel_sizes(self.dense_layers, input_dim, self.dtype)
        n_in = input_dim
        for layer in self.dense_layers:
            layer.build(n_in, self._rng, self.dtype)
            n_in = layer.units
        self.input_dim = input_dim

    def _dropout_rates(self):
        """Dropout rate on the input of each Dense layer (consecutive ones combine)."""
        rates, keep = [], 1.0
        for layer in self.layers:
            if isinstance(layer, Dropout):
                keep *= 1.0 - layer.rate
            else:
                rates.append(1.0 - keep)
                keep = 1.0
        return rates

    def _activation_codes(self):
        link = self.loss_.link if self.loss_ is not None else None
        dense = self.dense_layers
        return [layer.kernel_activation_code(i == len(dense) - 1, link)
                for i, layer in enumerate(dense)]

    def _params(self):
        """[W0, b0, W1, b1, ...] live arrays (biases only where used)."""
        return [p for layer in self.dense_layers for p in layer.params()]

    def _param_names(self):
        """Names of ``_params()``: "layers.<index in self.layers>.kernel" / ".bias"."""
        return [f"layers.{index}.{kind}" for index, layer in enumerate(self.layers)
                if isinstance(layer, Dense)
                for kind in (("kernel", "bias") if layer.use_bias else ("kernel",))]

    def _decay_flags(self):
        decay_bias = self.optimizer.decay_bias if self.optimizer else False
        return [flag for layer in self.dense_layers
                for flag in ([True] + ([decay_bias] if layer.use_bias else []))]

    def count_params(self):
        return sum(layer.count_params() for layer in self.dense_layers) if self.built else 0

    # ------------------------------------------------------------------ compile
    def compile(self, loss, optimizer="sgd", metrics=None):
        """Choose the loss and the optimizer.

        Parameters
        ----------
        loss : str or Loss
            "softmax_cross_entropy", "binary_cross_entropy" or
            "mean_squared_error" (Keras names accepted as aliases).
        optimizer : str or Optimizer, default "sgd"
        metrics : list of str, optional
            Keras's argument, checked rather than chosen: every epoch logs
            the loss and, by the loss, "accuracy" (classification) or
            "mse", "mae" and "r2" (regression), whatever it says. A list of
            names among those is accepted; it changes nothing.

        Returns
        -------
        Sequential
            The network itself, so that calls chain:
            ``net = Sequential([...]).compile(...)``.

        Raises
        ------
        ValueError
            Unknown names, a last layer that is not Dense (a trailing
            Dropout), a softmax before the last layer, a last-layer
            softmax without softmax_cross_entropy, an optimizer's
            ``epsilon`` too small for the network's dtype
            (:meth:`Optimizer.check_dtype <descend.optimizers.Optimizer.check_dtype>`),
            or a metric the loss does not log.
        TypeError
            ``metrics`` not a list or tuple of str.
        """
        loss = losses.get(loss)
        _check_metrics(metrics, loss)
        optimizer = optimizers.get(optimizer)
        optimizer.check_dtype(self.dtype)
        self._check_structure()
        last = self.dense_layers[-1]
        if last.activation == "softmax" and loss.link != "softmax":
            raise ValueError(f"a softmax output layer needs loss='softmax_cross_entropy', "
                             f"got {loss.name!r}")
        self.loss_ = loss
        self.optimizer = optimizer
        self.epochs_trained = 0
        return self

    def _check_compiled(self):
        if self.loss_ is None:
            raise RuntimeError("call compile(loss=..., optimizer=...) before training "
                               "or evaluating the network")

    # ------------------------------------------------------------------ data
    def _check_X(self, X, name="X", lazy=False):
        return check_X(X, self.dtype, name, n_features=self.n_features_in_, lazy=lazy)

    def _encode(self, y, name="y", classes=None):
        """(targets, labels, classes) for the kernels; classes_ defaults to ours."""
        n_out = self.dense_layers[-1].units
        return self.loss_.encode(y, n_out, self.classes_ if classes is None else classes,
                                 self.dtype, name)

    def _prepare(self, X, y, x_name="X", y_name="y", classes=None, n_features=None,
                 lazy=False):
        """(X, targets, labels, classes): an (X, y) pair checked and encoded for the
        kernels. The one rule for such pairs: evaluate, gradients, loss,
        train_on_batch and fit's validation_data (with the training data's
        `classes` and `n_features` before the network is built) all use it."""
        self._check_compiled()
        X = check_X(X, self.dtype, x_name,
                    n_features=self.n_features_in_ if n_features is None else n_features,
                    lazy=lazy)
        if y is None:
            raise ValueError(f"{y_name} is required, got None")
        check_lengths(X, as_array(y, y_name, "labels (1-D) or targets (2-D)")
                      if np.ndim(y) else [y], x_name, y_name)
        targets, labels, classes = self._encode(y, y_name, classes)
        return X, targets, labels, classes

    # ------------------------------------------------------------------ per-layer path
    def _threads_for(self, n_rows, n_threads=None):
        """(OpenMP, BLAS) threads for per-layer kernels on n_rows rows."""
        if n_rows < PARALLEL_MIN_ROWS:
            # a team of threads costs more than it saves on a few rows
            return 1, 1
        return _threads.plan(n_rows, self.n_threads if n_threads is None else n_threads)

    def gradients(self, X, y, training=False, seed=0, sample_weight=None):
        """Gradients of the loss by backpropagation, for the whole of X.

        The loss is the mean over the samples of X of the data loss (the
        weighted mean with `sample_weight`, as in `fit`), plus the layers'
        penalties.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like, targets as accepted by the loss
        training : bool, default False
            Apply dropout (mask fixed by `seed`), as in training.
        seed : int, default 0
            Dropout mask seed (only used with training=True).
        sample_weight : array-like, shape (n_samples,), or None
            Non-negative weights: the loss is sum_i w_i l_i / sum_i w_i.

        Returns
        -------
        list of (dW, db) tuples, one per Dense layer
            dW has the kernel's shape (n_in, n_out), db the bias's (n_out,)
            (None without bias); the network's dtype.

        Raises
        ------
        ValueError, TypeError
            Bad X, y or sample_weight (named), before anything is computed.
        FloatingPointError
            The loss or a gradient overflows to NaN/inf; never returned.
        """
        return reference.gradients(self, X, y, training, seed, sample_weight)

    def loss(self, X, y, training=False, seed=0, sample_weight=None):
        """Mean loss over X (plus penalties), a float; see `gradients`.

        Raises FloatingPointError rather than return NaN or inf.
        """
        return reference.loss(self, X, y, training, seed, sample_weight)

    def _require_built(self):
        if not self.built:
            raise RuntimeError("the network is not built yet: give input_dim or call fit first")

    def train_on_batch(self, X, y, seed=0, sample_weight=None, class_weight=None):
        """One gradient-descent update on the batch (X, y); returns the batch loss.

        The per-layer Python driver of the same kernels that ``fit`` runs
        fused: forward, loss, backward, penalties, clipping and update.
        `sample_weight` and `class_weight` as in `fit` (the batch's weighted
        mean loss).
        """
        return reference.train_on_batch(self, X, y, seed, sample_weight, class_weight)

    # ------------------------------------------------------------------ training
    def fit(self, X, y, epochs=1, batch_size=32, shuffle=True, verbose=1,
            validation_data=None, validation_split=0.0, callbacks=None,
            gradient_norms=False, n_threads=None, initial_epoch=None,
            steps_per_execution=None, sample_weight=None, class_weight=None,
            distributed=None):
        """Train by gradient descent with backpropagated gradients.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Converted to the network's dtype (float32 or float64).
        y : array-like
            Class labels (int ids, one-hot, strings...) for the cross-entropy
            losses; real targets (n,) or (n, k) for mean_squared_error.
        epochs : int >= 0, default 1
            The number of epochs to run; with `initial_epoch`, as Keras: the
            index at which training stops (epochs - initial_epoch are run).
        batch_size : int >= 1 or None, default 32
            None (or n_samples): batch gradient descent; 1: stochastic; in
            between: mini-batch. A short last batch is used. Larger than
            n_samples is clipped to n_samples with a warning.
        shuffle : bool, default True
            Reshuffle the samples every epoch (from the network's Generator).
        verbose : 0, 1, 2 or "auto" (Keras's default: 1)
            0 silent, 1 progress bar (tqdm, if installed: running loss and
            samples/s; only when stderr is a terminal or in Jupyter, as
            tqdm's ``disable=None``) and a line per epoch, 2 a line per epoch.
        validation_data : (X_val, y_val), (X_val, y_val, sample_weight_val) or None
            Evaluated after every epoch (``val_loss`` and ``val_`` metrics),
            weighted by sample_weight_val if given (as Keras).
        validation_split : float in [0, 1)
            Fraction of the samples, taken from the end before shuffling (as
            Keras), held out for validation; ignored with validation_data.
            A split leaving no training or validation sample, or no training
            sample of some class, is a ValueError.
        callbacks : list of descend.callbacks.Callback or None
        gradient_norms : bool
            Record each Dense layer's kernel-gradient norm (full-batch
            gradient over up to 2048 training samples) at the end of every
            epoch, as ``grad_norm_<i>``.
        n_threads : int or None
            Override the network's n_threads for this fit.
        initial_epoch : int >= 0 or None, default None
            Index of the first epoch, as callbacks, the history, the
            progress lines and the optimizer's learning-rate schedule see
            it. None continues the count of earlier fits
            (``epochs_trained``), so that a second fit's epochs follow the
            first's (a ``ModelCheckpoint("ck-{epoch}.npz")`` writes new
            files); an int behaves as Keras' ``initial_epoch``: epochs k..
            ``epochs - 1`` run, with ``learning_rate=schedule`` at
            ``schedule(k)``, ``schedule(k + 1)``... as a
            ``LearningRateScheduler(schedule)`` gives, whatever
            ``epochs_trained`` says (after a save and load, pass
            ``initial_epoch=net.epochs_trained`` or None to resume the
            schedule where it stopped). ``epochs_trained`` counts the epochs
            run either way.
        steps_per_execution : int >= 1 or None, default None
            Batches the compiled loop runs between two calls of the
            callbacks' ``on_train_batch_begin`` / ``on_train_batch_end`` (as
            Keras' ``steps_per_execution``): ``on_train_batch_end`` sees
            batches k-1, 2k-1, ... of each epoch and its last one (the
            progress bar moves there too), and 1 calls them around every
            batch at the cost of a return to Python per batch. None:
            min(64, 1/20 of an epoch). Unused when no callback defines a
            batch hook.
        sample_weight : array-like, shape (n_samples,), or None
            Non-negative finite weight of each sample (zeros allowed, not
            all). Each batch's loss is the weighted mean
            ``sum_i w_i l_i / sum_i w_i`` (the metrics too), so integer
            weights train exactly as repeated rows do in full-batch training
            and the weights' overall scale does not matter. Keras divides by
            the batch size instead (``sum_i w_i l_i / n``), where scaling the
            weights scales the step. A batch whose weights sum to 0 has loss
            and gradient 0; its update still runs (penalties, weight decay,
            momentum), as for any batch. With validation_split, the weights
            of the held-out rows weight the validation scores.
        class_weight : dict {class index: weight}, "balanced" or None
            Multiplies the weight of every sample of a class (Keras'
            meaning: indices are positions in ``classes_``; classes not named
            weigh 1). "balanced": ``n_samples / (n_classes * bincount(y))``
            (scikit-learn's formula, with sample weights its weighted form).
            Classification with one class per sample only; applies to the
            training data, not to validation.
        distributed : descend.distributed.MPI or None, default None
            Synchronous data-parallel training over the ranks of an MPI
            communicator (run the script under ``mpiexec -n p``):
            `batch_size` is the global batch, the weights after each step are
            the one-process weights up to rounding and equal on every rank;
            ``distributed_stats_`` then holds the allreduce's bytes and time.
            See ``descend.distributed`` and docs/distributed.md.

        Returns
        -------
        History
            Also kept as ``self.history``: loss, accuracy (classifiers) or
            mse/mae/r2 (regression, on the training data with the epoch's
            final weights), their ``val_`` twins, learning_rate, seconds,
            samples_per_second, grad_norm_<i>.

        Raises
        ------
        ValueError, TypeError
            Bad input (checked before any state changes), including
            sample_weight of the wrong length or with negative, NaN or
            infinite values, or all zero, and class_weight keys that are not
            classes.
        DivergenceError
            A non-finite loss or weight, or outputs that overflow; the
            message names the epoch, and the weights and optimizer state
            of the last finite epoch are kept, and this fit's history up to
            it (``model.history`` is this fit's History, as in Keras: empty
            when the first epoch diverged).
        RuntimeError
            A callback replaced the optimizer, the loss or a parameter array,
            or changed a setting the compiled loop reads once, when fit
            starts (an optimizer's momentum, a layer's activation or
            regularizer...: only ``learning_rate`` and ``weight_decay`` may
            change between epochs); in a distributed fit, the ranks start an
            epoch with different learning rates, weight decays or weights.
            The completed epochs are kept, the one under way is undone.

        Notes
        -----
        Ctrl-C (KeyboardInterrupt) ends the fit cleanly: the weights,
        optimizer state, random generator and history are those of the last
        completed epoch, and ``history.interrupted`` is True. The compiled
        loop notices the signal every progress chunk (1/20 of an epoch).

        A learning-rate schedule given as the optimizer's ``learning_rate``
        is evaluated at each epoch's index, the one callbacks see (their
        ``epoch`` argument) and the history records: without
        `initial_epoch`, ``epochs_trained`` at the epoch's start, which
        counts epochs over all calls since compile, so a second fit (or a
        fit after save and load) continues the schedule; with
        ``initial_epoch=k``, k, k + 1, ... (Keras drives its optimizers'
        schedules by ``optimizer.iterations``, steps; descend's count
        epochs). A ``LearningRateScheduler`` callback gets the same index,
        so both forms give the same rates.

        Batch hooks: ``on_train_batch_begin(batch)`` is called before a run
        of batches starting at `batch` (0-based in the epoch) and
        ``on_train_batch_end(batch, {"loss": ...})`` after it, with the
        index of its last batch and the epoch's running mean loss.

        Divergence: on a non-finite loss or weight, fit rolls the model back
        to the last finite epoch and calls ``on_train_batch_end`` of the
        callbacks with the failing batch and ``{"loss": nan}`` (or the
        epoch's non-finite logs). If a callback then sets ``stop_training``
        (``TerminateOnNaN`` does) the fit ends there and returns the
        history, with ``history.diverged`` True and the epoch that diverged
        as its last entry (loss NaN, as Keras records it, or the epoch's
        finite loss and non-finite ``val_`` scores when only the validation
        outputs overflowed; its weights were rolled back, so
        ``epochs_trained`` does not count it); otherwise it raises
        DivergenceError.

        Examples
        --------
        >>> import descend as dn
        >>> X, y = dn.datasets.load_digits()
        >>> X_train, X_test, y_train, y_test = dn.datasets.train_test_split(
        ...     X, y, seed=0, stratify=True)
        >>> net = dn.Sequential([dn.Dense(32, activation="relu"), dn.Dense(10)],
        ...                     input_dim=64, seed=0)
        >>> net = net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.Adam(0.01))
        >>> history = net.fit(X_train, y_train, epochs=5, batch_size=32,
        ...                   validation_data=(X_test, y_test), verbose=0)
        >>> sorted(history)
        ['accuracy', 'learning_rate', 'loss', 'samples_per_second', 'seconds', 'val_accuracy', 'val_loss']
        >>> history["loss"][-1] < history["loss"][0]
        True
        >>> net.evaluate(X_test, y_test)["accuracy"] > 0.9
        True

        A second call continues (the schedule's clock and the optimizer's
        state carry over):

        >>> history = net.fit(X_train, y_train, epochs=1, verbose=0)
        >>> net.epochs_trained, history.epoch
        (6, [5])
        """
        if distributed is not None:
            from descend import distributed as mpi
            return mpi.fit(
                self, distributed, X, y, epochs=epochs, batch_size=batch_size,
                shuffle=shuffle, verbose=verbose, validation_data=validation_data,
                validation_split=validation_split, callbacks=callbacks,
                gradient_norms=gradient_norms, n_threads=n_threads,
                initial_epoch=initial_epoch, steps_per_execution=steps_per_execution,
                sample_weight=sample_weight, class_weight=class_weight)
        config = FitConfig.validate(
            self, X, y, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
            verbose=verbose, validation_data=validation_data,
            validation_split=validation_split, callbacks=callbacks,
            gradient_norms=gradient_norms, n_threads=n_threads,
            initial_epoch=initial_epoch, steps_per_execution=steps_per_execution,
            sample_weight=sample_weight, class_weight=class_weight)
        return make_trainer(self, config).run()

    def partial_fit(self, X, y, classes=None, batch_size=32, shuffle=True, verbose=0,
                    n_threads=None, sample_weight=None):
        """Train incrementally: one epoch over (X, y), as scikit-learn's partial_fit.

        Builds the network at the first call; the optimizer's state, the
        learning-rate schedule's clock (``epochs_trained``) and the random
        generator carry over from call to call, so a stream of chunks trains
        like one long fit.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like
            Targets as for `fit`.
        classes : array-like, shape (n_classes,), or None
            All the class labels the stream will contain (classifiers only),
            so that labels absent from the first chunks may appear later.
            Sorted into ``classes_`` (as ``numpy.unique``); for
            softmax_cross_entropy there must be one per output unit, for
            binary_cross_entropy two. Once ``classes_`` is set, `classes` may
            be omitted or must equal it.
        batch_size : int >= 1 or None, default 32
            Clipped to n_samples without a warning (chunks may be small).
        shuffle : bool, default True
        verbose : 0, 1, 2 or "auto" (1), default 0
        n_threads : int or None
        sample_weight : array-like, shape (n_samples,), or None
            As for `fit` (scikit-learn's partial_fit takes it too).

        Returns
        -------
        History
            The logs of this one epoch (also ``self.history``).

        Raises
        ------
        ValueError
            A label of y outside ``classes_`` (the message names it),
            `classes` not matching the network or an earlier call, and any
            bad input as for `fit`; the model is then unchanged.
        TypeError
            `classes` for a regression loss, or badly typed arguments.
        DivergenceError
            As for `fit`.
        """
        return _partial_fit(self, X, y, classes=classes, batch_size=batch_size,
                            shuffle=shuffle, verbose=verbose, n_threads=n_threads,
                            sample_weight=sample_weight)

    def _training_state_finite(self):
        """Whether the weights and the optimizer's state are all finite: a
        finite gradient can overflow a moment (Adam's v of a float32
        gradient of 1e20), which then stalls its weight for good and makes
        the model unsaveable, so it counts as divergence as a weight does."""
        state = self.optimizer.state if self.optimizer is not None else None
        arrays = list(self._params()) + [a for slots in (state or []) for a in slots]
        return all(np.isfinite(a).all() for a in arrays)

    # ------------------------------------------------------------------ inference
    def _output(self, X, chunk_rows=None):
        """Last-layer output (before the link) for validated X, in chunks."""
        return _inference.per_layer_output(self, X, chunk_rows)

    def predict(self, X, batch_size=None, verbose=0):
        """Network output after the loss's link.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        batch_size : int >= 1 or None
            Rows per forward pass (Keras's keyword): bounds the activations'
            memory to ``batch_size`` times the widest layer. None: 8192
            rows. Other sizes give the same outputs up to float rounding
            (chunks under the plan's GEMM threshold run the row loops).
        verbose : 0, 1, 2 or "auto" (1)
            0 silent; 1 or 2 print one line when done (samples, seconds,
            samples/s).

        Returns
        -------
        ndarray, shape (n_samples, n_outputs), the network's dtype
            Class probabilities (softmax) for softmax_cross_entropy,
            probabilities (sigmoid) for binary_cross_entropy, raw outputs for
            mean_squared_error (or without compile).

        Raises
        ------
        ValueError, TypeError
            Bad X, batch_size or verbose (named).
        FloatingPointError
            The output is not finite (weights out of range); never returns NaN.
        """
        return _inference.predict_with_options(self, X, batch_size, verbose)

    def predict_proba(self, X, batch_size=None, verbose=0):
        """Alias of predict for classifiers (scikit-learn's name)."""
        return self.predict(X, batch_size=batch_size, verbose=verbose)

    def predict_classes(self, X, batch_size=None):
        """Predicted labels, taken from ``classes_`` (strings kept);
        batch_size as for `predict`."""
        self._check_compiled()
        if not self.loss_.is_classifier:
            raise TypeError(f"predict_classes needs a classification loss, the network "
                            f"uses {self.loss_.name!r}")
        chunk_rows, _ = _inference.check_keras_options(batch_size, 0)
        return _labels(_inference.predict(self, X, link=False, chunk_rows=chunk_rows),
                       self.loss_.code, self.classes_)

    def evaluate(self, X, y, sample_weight=None, batch_size=None, verbose=0):
        """Loss and metrics on (X, y).

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like, targets as for `fit`
        sample_weight : array-like, shape (n_samples,), or None
            Non-negative weights: every score is the weighted mean over the
            samples, ``sum_i w_i s_i / sum_i w_i`` (as in `fit`); r2 uses
            weighted sums of squares around the weighted mean (as
            scikit-learn's ``r2_score``).
        batch_size : int >= 1 or None
            Rows per forward pass, as for `predict`.
        verbose : 0, 1, 2 or "auto" (1)
            0 silent; 1 or 2 print the scores in one line, as fit's epoch
            lines (with samples, seconds and samples/s).

        Returns
        -------
        dict
            {"loss", "accuracy"} for classifiers, {"loss", "mse", "mae", "r2"}
            for regression; floats. loss includes the layers' penalties.

        Raises
        ------
        ValueError, TypeError
            Bad X, y, sample_weight, batch_size or verbose (named).
        FloatingPointError
            A score overflows to NaN/inf (it is never returned).
        """
        chunk_rows, verbose = _inference.check_keras_options(batch_size, verbose)
        started = time.perf_counter()
        X, targets, labels, _ = self._prepare(X, y, lazy=True)
        weights = check_sample_weight(sample_weight, X.shape[0])
        self._require_built()
        scores = self._evaluate(X, targets, labels, weights, chunk_rows)
        if not all(math.isfinite(value) for value in scores.values()):
            raise FloatingPointError(
                f"evaluate produced non-finite scores {scores} for this X: the network's "
                "output overflows (inputs or weights out of range)")
        if verbose:
            _inference.report("evaluate", X.shape[0], time.perf_counter() - started, scores)
        return scores

    # an overflowed output is refused by the callers (evaluate: FloatingPointError, fit:
    # divergence); numpy's warning on the way would preempt that under -W error
    @np.errstate(over="ignore", invalid="ignore")
    def _evaluate(self, X, targets, labels, weights=None, chunk_rows=None):
        """Scores of validated, encoded data; weights: float64 (n,) or None."""
        output = self._output(X, chunk_rows)
        n, k = output.shape
        scores = {"loss": self.loss_.mean_loss(output, targets, labels, weights=weights)
                  + reference.penalty(self)}
        if self.loss_.is_classifier:
            total = n if weights is None else float(np.sum(weights))
            scores["accuracy"] = float(self.loss_.accuracy(
                self.loss_.count_correct(output, targets, labels, weights), total, k))
        else:
            err = output.astype(np.float64) - targets
            per_element = None if weights is None else np.broadcast_to(
                weights[:, None], err.shape)
            scores["mse"] = float(np.average(err ** 2, weights=per_element))
            scores["mae"] = float(np.average(np.abs(err), weights=per_element))
            scores["r2"] = _r2(targets, output, weights)
        return scores

    # ------------------------------------------------------------------ parameters
    def get_weights(self):
        """[W1, b1, W2, b2, ...]: copies of the parameters (no entry for unused biases).

        Raises
        ------
        RuntimeError
            The network is not built, or another thread is training it
            (``descend._threads.check_consistent_read``: its fit's callbacks
            may read it, between epochs or batches).
        """
        _threads.check_consistent_read(self, "get_weights")
        self._require_built()
        return [p.copy() for p in self._params()]

    def set_weights(self, weights):
        """Copy `weights` (as from get_weights) into the live parameter arrays.

        Raises
        ------
        ValueError
            Wrong number of arrays, a shape mismatch, or NaN/inf values; the
            network is unchanged.
        """
        self._require_built()
        params = self._params()
        if not isinstance(weights, (list, tuple)):
            raise TypeError(error_message("weights", "a list of arrays (as from get_weights)",
                                          weights))
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(f"set_weights expected {len(params)} arrays, got {len(weights)}")
        arrays = []
        for i, (p, w) in enumerate(zip(params, weights)):
            w = np.asarray(w)
            if w.shape != p.shape:
                raise ValueError(f"weights[{i}] has shape {w.shape}, expected {p.shape}")
            if w.dtype.kind not in "biuf":
                raise ValueError(f"weights[{i}] must be finite real numbers, got dtype {w.dtype}")
            with np.errstate(over="ignore"):    # 1e300 in a float32 network: inf, refused
                w = w.astype(p.dtype)
            if not np.isfinite(w).all():
                raise ValueError(f"weights[{i}] holds NaN or infinite values (in the network's "
                                 f"dtype {p.dtype})")
            arrays.append(w)
        for p, w in zip(params, arrays):
            np.copyto(p, w)

    def summary(self, print_fn=None):
        """Print a table of the layers, output shapes and parameter counts.

        As Keras' ``Model.summary``: prints and returns None.

        Parameters
        ----------
        print_fn : callable, optional
            Called with each line of the table (a str, no newline); default
            :func:`print`. ``lines = []; net.summary(print_fn=lines.append)``
            captures the table; ``functools.partial(print, file=f)`` writes it
            to a file.

        Raises
        ------
        TypeError
            If ``print_fn`` is neither None nor callable.
        """
        if print_fn is None:
            print_fn = print
        elif not callable(print_fn):
            raise TypeError(f"print_fn must be a callable (such as print or list.append) "
                            f"or None, got {print_fn!r} ({type(print_fn).__name__})")
        for line in _summary(self).split("\n"):
            print_fn(line)

    def save(self, path):
        """Save the network to one ``.npz`` file; ``descend.load(path)`` rebuilds it.

        See :func:`descend.io.save` (the file holds the architecture, the
        weights, the optimizer and its state, ``classes_``, the random
        generator's state and the history; no pickled object).

        After a distributed fit (``fit(distributed=MPI(...))``, until a fit
        without it), only rank 0 writes; the others return `path` unwritten.

        Returns
        -------
        str
            The path written (exactly `path`; no suffix is added).

        Raises
        ------
        RuntimeError
            Another thread is training the network (a file of mid-epoch
            weights and last-epoch counters would not resume the run): wait
            for its fit to return, or save from a callback of that fit
            (``callbacks.ModelCheckpoint``), which runs between epochs.
        ValueError, TypeError
            As :func:`descend.io.save` lists them; nothing is written.
        """
        from descend import io      # io depends on the model, not the other way round
        distributed = getattr(self, "_distributed", None)
        if distributed is not None and not distributed.is_root:
            return path     # trained over MPI: rank 0 writes the file
        return io.save(self, path)

    def get_config(self):
        """The architecture as plain data: ``Sequential.from_config`` rebuilds it.

        Returns
        -------
        dict
            ``{"layers": [layer configs], "input_dim", "dtype", "seed",
            "n_threads", "name"}``; no weights (see :meth:`state_dict`) and
            no loss or optimizer (see :meth:`get_compile_config`).
        """
        return {"layers": [layer.get_config() for layer in self.layers],
                "input_dim": self.n_features_in_, "dtype": self.dtype.name,
                "seed": self.seed, "n_threads": self.n_threads, "name": self.name}

    @classmethod
    def from_config(cls, config):
        """A new network with the architecture of ``get_config()``.

        Built (with freshly drawn weights) when the config has an input_dim;
        load weights and the rest with :meth:`load_state_dict`. No code from
        the config is executed: layer classes are looked up by name.

        Raises
        ------
        ValueError, TypeError
            A config that is not a dict with a "layers" list, an unknown
            layer class, or any argument the constructors refuse.
        """
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            got = (type(config).__name__ if not isinstance(config, dict)
                   else "a dict without 'layers'" if "layers" not in config
                   else f"a dict whose 'layers' is a {type(config['layers']).__name__}")
            raise ValueError(f"the config must be a dict with a 'layers' list, got {got}")
        return cls([layers_module.from_config(layer) for layer in config["layers"]],
                   input_dim=config.get("input_dim"), dtype=config.get("dtype"),
                   seed=config.get("seed"), n_threads=config.get("n_threads"),
                   name=config.get("name"))

    @staticmethod
    def parameter_shapes(config):
        """{"layers.<i>.kernel": (n_in, units), ...} that ``from_config(config)`` builds,
        computed without allocating any parameter ({} without an int input_dim)."""
        return _parameter_shapes(config)

    def get_compile_config(self):
        """``{"loss": name, "optimizer": optimizer.get_config()}``, or None before compile."""
        if self.loss_ is None:
            return None
        return {"loss": self.loss_.name, "optimizer": self.optimizer.get_config()}

    def compile_from_config(self, config):
        """``compile`` with the loss and optimizer of a :meth:`get_compile_config`."""
        self.compile(loss=config["loss"],
                     optimizer=optimizers.Optimizer.from_config(config["optimizer"]))
        return self

    def state_dict(self):
        """Everything training changes, as named arrays and plain data (copies).

        Returns
        -------
        dict
            ``"parameters"``: {"layers.<i>.kernel" / ".bias": array} (i the
            index in ``layers``); ``"optimizer"``: the optimizer's
            ``state_dict()`` (its arrays named "layers.<i>.kernel.<slot>")
            or None before compile; ``"classes"``: ``classes_`` or None;
            ``"rng_state"``: the Generator's ``bit_generator.state``;
            ``"epochs_trained"``: int; ``"history"``: ``{"epoch": [...],
            "logs": {key: [...]}}``; ``"plan"``: ``{"pinned": plan, "used":
            plan_}`` (see ``descend.plans``; optional in load_state_dict, so
            that states written before it load). With ``get_config`` and
            ``get_compile_config`` it restores the network bit for bit.

        Raises
        ------
        RuntimeError
            The network is not built, or another thread is training it: the
            weights of a step in mid-epoch with the counters of the last
            epoch would not resume the run. Wait for the fit to return, or
            take the state in one of its callbacks (they run in its thread).
        ValueError
            ``plan`` or ``plan_`` does not fit the network (a list of
            ``kernel_rows`` not one per Dense layer, say), or ``classes_``
            or the optimizer's state is for other layers (removed or added
            since the last fit), or ``classes_`` is set for a regression loss
            (compiled since a classification fit): a file that
            :func:`descend.load` would refuse is not written. The message says
            what to reset.
        """
        _threads.check_consistent_read(self, "state_dict")
        self._require_built()
        _check_state_fits(self)
        n_layers = len(self.dense_layers)
        return {"parameters": dict(zip(self._param_names(), self.get_weights())),
                "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
                "classes": None if self.classes_ is None else np.array(self.classes_),
                "rng_state": self._rng.bit_generator.state,
                "epochs_trained": int(self.epochs_trained),
                "history": {"epoch": list(self.history.epoch),
                            "logs": {key: list(values) for key, values in self.history.items()}},
                # checked as load_state_dict checks them: a saved file loads back
                "plan": {"pinned": plans.check_plan(self.plan, "plan", n_layers),
                         "used": plans.check_plan(self.plan_, "plan_", n_layers)}}

    def load_state_dict(self, state):
        """Restore a :meth:`state_dict`; all of it is checked before anything changes.

        An ``"optimizer"`` entry of None leaves the optimizer as it is.

        Raises
        ------
        ValueError
            Missing or unknown keys (named); a parameter or optimizer array of
            another shape or dtype than the network's, or with NaN/inf;
            classes that are not sorted distinct labels, one per class of the
            loss (none for a regression loss); an unknown bit generator or
            invalid generator state; epochs_trained or iterations not an int
            >= 0; an optimizer state for an uncompiled network; an invalid
            history.
        RuntimeError
            The network is not built.
        """
        self._require_built()
        checked = _check_state(self, state)
        if state["optimizer"] is not None:
            if self.optimizer is None:
                raise ValueError("the state holds an optimizer state, but the network is not "
                                 "compiled: compile it (or compile_from_config) first")
            optimizer = self.optimizer
            previous = optimizer.state, optimizer.param_names
            optimizer.build(self._params(), self._param_names())   # the arrays to copy into
            try:
                optimizer.load_state_dict(state["optimizer"])
            except (TypeError, ValueError):
                optimizer.state, optimizer.param_names = previous
                raise
        for param, array in zip(self._params(), checked["parameters"]):
            np.copyto(param, array)
        self.classes_ = checked["classes"]
        self._rng = checked["rng"]
        self.epochs_trained = checked["epochs_trained"]
        self.history = checked["history"]
        self.plan, self.plan_ = checked["plan"]

    def pin_plan(self, plan=None):
        """Pin the plan of the next fits and predictions: `plan` (a dict of
        ``descend.plans.Plan`` fields and PREDICT_FIELDS), or by default the plan
        used last (``plan_``, also restored by ``descend.load``), so that a run
        is reproduced bit for bit on another machine. ``net.plan = None``
        unpins.

        Raises
        ------
        ValueError
            No plan given and none recorded (the network never trained), or
            an invalid plan (unknown fields, non-positive block sizes).

        Examples
        --------
        >>> import descend as dn
        >>> net = dn.Sequential([dn.Dense(2)], input_dim=3, seed=0)
        >>> net.pin_plan({"sparse_input": False, "sample_rows": 64})
        {'sparse_input': False, 'sample_rows': 64}
        """
        plan = plans.check_plan(self.plan_ if plan is None else plan, "plan",
                                len(self.dense_layers))
        if plan is None:
            raise ValueError("plan: no plan given and none recorded (fit and predict set plan_)")
        self.plan = {k: v for k, v in plan.items() if k != "source"}
        return self.plan

    def __getstate__(self):
        # pickle and copy.deepcopy (and copy.copy) read the whole state: a
        # RuntimeError while another thread trains the network (see state_dict)
        _threads.check_consistent_read(self, "pickle or copy.deepcopy")
        return self.__dict__

    def __repr__(self):
        return f"Sequential({self.layers!r}, input_dim={self.n_features_in_})"


def _labels(output, loss_code, classes):
    """Predicted labels from the raw output (logits): taken from `classes`,
    or class ids before a fit (0/1 for a single binary output); a 0/1
    matrix for multi-label outputs."""
    if loss_code == losses.SOFTMAX_CROSS_ENTROPY:
        ids = np.argmax(output, axis=1)
    elif output.shape[1] == 1:
        ids = (output[:, 0] > 0).astype(np.intp)
    else:
        return (output > 0).astype(np.int64)   # multi-label 0/1 matrix
    if classes is None:
        classes = np.arange(max(output.shape[1], 2))
    return classes[ids]


def _summary(net):
    """The text of Sequential.summary."""
    width = max([28] + [len(repr(layer)) + 2 for layer in net.layers])
    lines = [f"Sequential {net.name or ''}".rstrip(),
             f"{'layer':<{width}}{'output shape':<18}{'params':>10}"]
    n_in = net.n_features_in_
    for layer in net.layers:
        if isinstance(layer, Dense):
            count = layer.count_params() if layer.built else 0
            shape = f"(None, {layer.units})"
            lines.append(f"{repr(layer):<{width}}{shape:<18}{count:>10}")
            n_in = layer.units
        else:
            lines.append(f"{repr(layer):<{width}}{f'(None, {n_in})':<18}{0:>10}")
    lines.append(f"total parameters: {net.count_params()}  dtype: {net.dtype.name}")
    return "\n".join(lines)


def _r2(targets, output, weights=None):
    """Coefficient of determination, averaged over outputs (as scikit-learn's
    r2_score, weighted sums of squares with sample weights)."""
    t = targets.astype(np.float64)
    w = np.ones(len(t)) if weights is None else weights
    ss_res = np.sum(w[:, None] * (t - output) ** 2, axis=0)
    ss_tot = np.sum(w[:, None] * (t - np.average(t, axis=0, weights=w)) ** 2, axis=0)
    return r2_from_sums(ss_res, ss_tot)


def r2_from_sums(ss_res, ss_tot):
    """Mean over outputs of 1 - ss_res / ss_tot (1 or 0 where ss_tot is 0, as
    scikit-learn), from the per-output residual and total sums of squares."""
    # the inner where never divides by 0; sums that overflowed give inf / inf:
    # NaN without a warning, which evaluate and fit then report as non-finite
    with np.errstate(invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1),
                      np.where(ss_res == 0, 1.0, 0.0))
    return float(np.mean(r2))




# ---------------------------------------------------------------------- state checks
# Bit generators a state may name (looked up in this table, never by getattr).
_BIT_GENERATORS = {cls.__name__: cls for cls in (np.random.PCG64, np.random.PCG64DXSM,
                                                 np.random.MT19937, np.random.Philox,
                                                 np.random.SFC64)}
_STATE_KEYS = ("parameters", "optimizer", "classes", "rng_state", "epochs_trained", "history")
_OPTIONAL_STATE_KEYS = ("plan",)      # absent from states written before it


def _parameter_shapes(config):
    input_dim = config.get("input_dim") if isinstance(config, dict) else None
    if isinstance(input_dim, bool) or not isinstance(input_dim, int):
        return {}
    shapes, n_in = {}, input_dim
    for index, layer_config in enumerate(config.get("layers") or []):
        layer = layers_module.from_config(layer_config)
        if isinstance(layer, Dense):
            shapes[f"layers.{index}.kernel"] = (n_in, layer.units)
            if layer.use_bias:
                shapes[f"layers.{index}.bias"] = (layer.units,)
            n_in = layer.units
    return shapes


def _check_state_fits(net):
    """ValueError, saying what to reset, where state_dict would hold what
    load_state_dict refuses: a plan or optimizer state for other layers, or
    classes_ for other layers or a regression loss (check_classes_fit; was:
    checked by save alone, so load_state_dict refused a state_dict's classes)."""
    n_layers = len(net.dense_layers)
    for name, plan, remedy in (
            ("plan", net.plan, "pin another plan, or set net.plan = None"),
            ("plan_", net.plan_, "set net.plan_ = None (the last fit's plan, "
                                  "recorded for it), or fit again")):
        # a plan refused whatever the layers (a bad field: fit refused it
        # too) is not blamed on changed layers
        for layers, why in ((None, ""), (n_layers, "the layers changed since: ")):
            try:
                plans.check_plan(plan, name, layers)
            except ValueError as exc:
                raise ValueError(f"{exc}; {why}{remedy}") from None
    optimizer = net.optimizer
    if optimizer is not None and optimizer.state is not None and (
            optimizer.param_names != net._param_names() or
            [states[0].shape for states in optimizer.state if states]
            != [p.shape for p, states in zip(net._params(), optimizer.state) if states]):
        raise ValueError(
            f"the optimizer's state is for the parameters {optimizer.param_names}, the "
            f"network's are {net._param_names()} (the layers changed since the last "
            "fit): fit again, or compile again for a fresh optimizer")
    if net.classes_ is not None:
        check_classes_fit(net, net.classes_)


def _check_state(net, state):
    """The parts of a state_dict for `net`, checked and converted; raises ValueError."""
    if (not isinstance(state, dict) or not set(_STATE_KEYS) <= set(state)
            or not set(state) <= set(_STATE_KEYS + _OPTIONAL_STATE_KEYS)):
        got = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"a state_dict has the keys {list(_STATE_KEYS)} (and optionally "
                         f"{list(_OPTIONAL_STATE_KEYS)}), got {got}")
    plan = state.get("plan")
    if plan is not None and (not isinstance(plan, dict)
                             or not set(plan) <= {"pinned", "used"}):
        raise ValueError(f"state_dict['plan'] must be None or a dict with keys 'pinned' "
                         f"and 'used', got {plan!r}")
    plan, n_layers = plan or {}, len(net.dense_layers)
    return {"parameters": _check_parameters(net, state["parameters"]),
            "classes": _check_classes(net, state["classes"]),
            "rng": _generator(state["rng_state"]),
            "epochs_trained": _check_counter(state["epochs_trained"], "epochs_trained"),
            "history": _history(state["history"]),
            "plan": (plans.check_plan(plan.get("pinned"), "state_dict['plan']['pinned']",
                                      n_layers),
                     plans.check_plan(plan.get("used"), "state_dict['plan']['used']",
                                      n_layers))}


def _check_parameters(net, parameters):
    names, params = net._param_names(), net._params()
    if not isinstance(parameters, dict) or set(parameters) != set(names):
        got = sorted(parameters) if isinstance(parameters, dict) else type(parameters).__name__
        raise ValueError(f"the parameters must be named {names}, got {got}")
    return [check_array_like(parameters[name], like, f"parameter {name!r}")
            for name, like in zip(names, params)]


def _check_classes(net, classes):
    """classes_ as fit makes them: finite, sorted unique, one per class of the loss."""
    if classes is None:
        return None
    if (not isinstance(classes, np.ndarray) or classes.ndim != 1
            or classes.dtype.kind not in "biufUS"):
        raise ValueError(f"classes must be a 1-D array of numbers or strings, got "
                         f"{type(classes).__name__} {getattr(classes, 'dtype', '')} of shape "
                         f"{np.shape(classes)}")
    if classes.dtype.kind == "f" and not np.isfinite(classes).all():
        raise ValueError(f"classes contains NaN or infinite labels: {classes.tolist()[:20]}")
    unique = np.unique(classes)
    if len(classes) != len(unique) or not np.array_equal(unique, classes):
        raise ValueError(f"classes must hold sorted distinct labels (as numpy.unique), got "
                         f"{classes.tolist()[:20]}")
    _check_classes_for_the_loss(net, classes, "classes", "")
    return classes.copy()


def check_classes_fit(net, classes):
    """ValueError, saying what to reset, if `classes` (a 1-D array, a fit's
    classes_) does not have one label per class of the network's output, as
    load_state_dict requires (the layers changed since that fit)."""
    _check_classes_for_the_loss(net, classes, "classes_ (from the last fit)",
                                " (the layers changed since): set net.classes_ = None, "
                                "or fit again")


def _check_classes_for_the_loss(net, classes, name, remedy):
    """ValueError unless `classes` has one label per class of the network's
    compiled loss; a regression loss takes none (a classifier's state
    loaded into a regression network left it with classes_)."""
    if net.loss_ is not None and not net.loss_.is_classifier:
        raise ValueError(f"{name} has {len(classes)} labels, but the network's "
                         f"{net.loss_.name} loss is a regression, which has no classes: "
                         "set classes to None (net.classes_ = None), or compile with a "
                         "classification loss")
    expected = _classes_needed(net)
    if expected and len(classes) != expected:
        raise ValueError(f"{name} has {len(classes)} labels, but the network's "
                         f"{net.loss_.name} output needs {expected}{remedy}")


def _classes_needed(net):
    """How many labels classes_ holds for the network's loss and output
    layer; None for a regression loss or none."""
    if net.loss_ is None or not net.loss_.is_classifier:
        return None
    return net.dense_layers[-1].units if net.loss_.link == "softmax" else 2


def _check_counter(value, name):
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))
            or not 0 <= value < 2**62):
        raise ValueError(f"{name} must be an int >= 0 (and < 2**62), got {value!r}")
    return int(value)


def _generator(state):
    """A numpy Generator in `state` (a ``bit_generator.state`` dict)."""
    if not isinstance(state, dict) or state.get("bit_generator") not in _BIT_GENERATORS:
        name = state.get("bit_generator") if isinstance(state, dict) else state
        raise ValueError(f"unknown random bit generator {name!r} in rng_state (known: "
                         f"{sorted(_BIT_GENERATORS)})")
    bit_generator = _BIT_GENERATORS[state["bit_generator"]]()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise ValueError(f"invalid random generator state: {exc}") from None
    return np.random.Generator(bit_generator)


def _history(saved):
    history = History()
    try:
        for epoch in saved.get("epoch", []):
            history.epoch.append(int(epoch))
        for key, values in saved.get("logs", {}).items():
            history[str(key)] = [float(v) for v in values]
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"invalid history: {exc}") from None
    return history
