"""Sequential: a stack of Dense (and Dropout) layers trained by gradient descent.

Backpropagation computes the gradient (``gradients``); gradient descent uses
it (``fit``). ``fit`` runs each epoch as one compiled call (``_train.pyx``);
``gradients``, ``loss``, ``predict`` and ``train_on_batch`` drive the same
kernels layer by layer from Python.
"""
import math
import sys
import time
import warnings

import numpy as np

from descend import _threads, losses, optimizers
from descend._dense import dropout_seed_py
from descend._optim import add_penalty_gradient_py, soft_threshold_py
from descend._train import EpochRunner
from descend._validation import (check_X, check_dtype, check_float, check_int, check_lengths,
                                 check_n_threads)
from descend.callbacks import Callback, CallbackList
from descend.layers import Dense, Dropout

# Rows per chunk in predict/evaluate/gradients: bounds the activations' memory.
CHUNK_ROWS = 8192
# Fewer rows than this run the per-layer kernels on one thread.
PARALLEL_MIN_ROWS = 256   # one GEMM block (ROWS_PER_BLOCK in _dense.pyx)


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss or weight; the model was rolled back."""


class History(dict):
    """Per-epoch logs: ``history["loss"][e]`` is epoch e's training loss.

    Keys: loss, accuracy (classifiers) or mse/mae/r2 (regression), their
    ``val_`` twins with validation data, learning_rate, seconds,
    samples_per_second, and ``grad_norm_<i>`` per Dense layer when
    ``fit(gradient_norms=True)``. ``history.history`` is the dict itself
    and ``history.epoch`` the epoch indices, as in Keras;
    ``history.interrupted`` is True when Ctrl-C ended the fit.
    """

    def __init__(self):
        super().__init__()
        self.epoch = []
        self.interrupted = False

    @property
    def history(self):
        return self

    def append(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.setdefault(key, []).append(value)


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

    Examples
    --------
    >>> import descend as dn
    >>> net = dn.Sequential([dn.Dense(64, activation="relu"), dn.Dense(10)],
    ...                     input_dim=64, seed=0)
    >>> net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(0.1))
    """

    # fit computes mse/mae/r2 on the training data after each epoch (regression)
    _regression_train_metrics = True

    def __init__(self, layers=None, input_dim=None, dtype="float32", seed=None,
                 n_threads=None, name=None):
        self.dtype = check_dtype(dtype)
        self.input_dim = check_int(input_dim, "input_dim", minimum=1, allow_none=True)
        self.n_threads = check_n_threads(n_threads)
        if seed is not None and not isinstance(seed, np.random.Generator):
            check_int(seed, "seed", minimum=0)
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
        if self.input_dim is not None and self.dense_layers:
            self.build(self.input_dim)

    # ------------------------------------------------------------------ structure
    def add(self, layer):
        """Append a Dense or Dropout layer (before the network is built)."""
        if not isinstance(layer, (Dense, Dropout)):
            raise TypeError(f"layers must be descend Dense or Dropout layers, got "
                            f"{type(layer).__name__}")
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
        return [layer for layer in self.layers if isinstance(layer, Dense)]

    @property
    def built(self):
        dense = self.dense_layers
        return bool(dense) and all(layer.built for layer in dense)

    @property
    def n_features_in_(self):
        return self.dense_layers[0].n_in if self.built else self.input_dim

    def _check_structure(self):
        if not self.layers or not isinstance(self.layers[-1], Dense):
            raise ValueError("the last layer must be a Dense layer, got "
                             f"{self.layers[-1] if self.layers else 'no layers'}")
        for layer in self.dense_layers[:-1]:
            if layer.activation == "softmax":
                raise ValueError("activation='softmax' is only allowed on the last layer "
                                 "(fused with softmax_cross_entropy)")

    def build(self, input_dim):
        """Draw all parameters for `input_dim` input features."""
        input_dim = check_int(input_dim, "input_dim", minimum=1)
        self._check_structure()
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

    def _decay_flags(self):
        decay_bias = self.optimizer.decay_bias if self.optimizer else False
        return [flag for layer in self.dense_layers
                for flag in ([True] + ([decay_bias] if layer.use_bias else []))]

    def count_params(self):
        return sum(layer.count_params() for layer in self.dense_layers) if self.built else 0

    # ------------------------------------------------------------------ compile
    def compile(self, loss, optimizer="sgd"):
        """Choose the loss and the optimizer.

        Parameters
        ----------
        loss : str or Loss
            "softmax_cross_entropy", "binary_cross_entropy" or
            "mean_squared_error" (Keras names accepted as aliases).
        optimizer : str or Optimizer, default "sgd"

        Raises
        ------
        ValueError
            Unknown names, or a last-layer softmax without softmax_cross_entropy.
        """
        loss = losses.get(loss)
        optimizer = optimizers.get(optimizer)
        self._check_structure()
        last = self.dense_layers[-1]
        if last.activation == "softmax" and loss.link != "softmax":
            raise ValueError(f"a softmax output layer needs loss='softmax_cross_entropy', "
                             f"got {loss.name!r}")
        if self._dropout_rates() and isinstance(self.layers[-1], Dropout):
            raise ValueError("Dropout cannot be the last layer")
        self.loss_ = loss
        self.optimizer = optimizer
        self.epochs_trained = 0
        return self

    def _check_live_params(self):
        """ValueError unless each Dense layer's kernel and bias are still arrays the
        compiled loop can write: the layer's shape, the network's dtype, C order,
        writeable (they are public and may have been replaced, not modified)."""
        n_in = self.input_dim
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Dense):
                continue
            for attr, shape in (("kernel", (n_in, layer.units)),
                                ("bias", (layer.units,) if layer.use_bias else None)):
                p = getattr(layer, attr)
                if shape is None:
                    continue
                if not (isinstance(p, np.ndarray) and p.shape == shape
                        and p.dtype == self.dtype and p.flags.c_contiguous
                        and p.flags.writeable):
                    got = (f"{p.dtype} array of shape {p.shape}, C-contiguous "
                           f"{p.flags.c_contiguous}, writeable {p.flags.writeable}"
                           if isinstance(p, np.ndarray) else type(p).__name__)
                    raise ValueError(
                        f"layers[{i}].{attr} must be a writeable C-contiguous "
                        f"{self.dtype} array of shape {shape}, got a {got}; modify the "
                        "live arrays in place or use set_weights")
                if not np.isfinite(p).all():
                    raise ValueError(f"layers[{i}].{attr} contains NaN or infinite values")
            n_in = layer.units

    def _check_compiled(self):
        if self.loss_ is None:
            raise RuntimeError("call compile(loss=..., optimizer=...) before training "
                               "or evaluating the network")

    # ------------------------------------------------------------------ data
    def _check_X(self, X, name="X"):
        return check_X(X, self.dtype, name, n_features=self.n_features_in_)

    def _encode(self, y, name="y", classes=None):
        """(targets, labels, classes) for the kernels; classes_ defaults to ours."""
        n_out = self.dense_layers[-1].units
        return self.loss_.encode(y, n_out, self.classes_ if classes is None else classes,
                                 self.dtype, name)

    def _prepare(self, X, y, x_name="X", y_name="y"):
        self._check_compiled()
        X = self._check_X(X, x_name)
        if y is None:
            raise ValueError(f"{y_name} is required, got None")
        check_lengths(X, np.asarray(y) if np.ndim(y) else [y], x_name, y_name)
        targets, labels, classes = self._encode(y, y_name)
        return X, targets, labels, classes

    # ------------------------------------------------------------------ per-layer path
    def _threads_for(self, n_rows, n_threads=None):
        """(OpenMP, BLAS) threads for per-layer kernels on n_rows rows."""
        if n_rows < PARALLEL_MIN_ROWS:
            # a team of threads costs more than it saves on a few rows
            return 1, 1 if _threads.ThreadpoolController is not None else None
        return _threads.plan(n_rows, self.n_threads if n_threads is None else n_threads)

    def _forward(self, X, codes, rates, training, seed, omp):
        """Output of the last layer (before the loss's link) for X."""
        a = X
        for i, layer in enumerate(self.dense_layers):
            if training and rates[i] > 0:
                a = _dropout(a, rates[i], dropout_seed_py(seed, 0, i), omp)
            a = layer.forward(a, codes[i], omp)
        return a

    def _backward(self, grad_output, rates, training, seed, omp):
        """[(dW, db), ...] from dL/d(output) after _forward on the same layers."""
        dense = self.dense_layers
        grads = [None] * len(dense)
        grad = grad_output
        for i in range(len(dense) - 1, -1, -1):
            dx, dkernel, dbias = dense[i].backward(grad, need_input_grad=i > 0,
                                                   n_threads=omp)
            if i > 0 and training and rates[i] > 0:
                dx = _dropout(dx, rates[i], dropout_seed_py(seed, 0, i), omp)
            grads[i] = (dkernel, dbias)
            grad = dx
        return grads

    def _penalty(self, grads=None, omp=1):
        """Sum of the layers' penalties; adds their gradient into grads if given."""
        total = 0.0
        for i, layer in enumerate(self.dense_layers):
            for param, reg, k in ((layer.kernel, layer.kernel_regularizer, 0),
                                  (layer.bias, layer.bias_regularizer, 1)):
                if reg is None or param is None:
                    continue
                g = grads[i][k].reshape(-1) if grads is not None else np.zeros(param.size,
                                                                             param.dtype)
                if reg.proximal:
                    # proximal L1 counts in the loss but steps after the update
                    total += reg.l1 * float(np.abs(param).sum(dtype=np.float64))
                    total += add_penalty_gradient_py(param.reshape(-1), g, 0.0, reg.l2, omp)
                else:
                    total += add_penalty_gradient_py(param.reshape(-1), g, reg.l1, reg.l2, omp)
        return total

    def _proximal_l1_step(self, omp=1):
        """Soft-threshold the arrays with proximal L1 (after an update)."""
        for layer in self.dense_layers:
            for param, reg in ((layer.kernel, layer.kernel_regularizer),
                               (layer.bias, layer.bias_regularizer)):
                if reg is not None and param is not None and reg.proximal and reg.l1 > 0:
                    soft_threshold_py(param.reshape(-1),
                                      self.optimizer.learning_rate * reg.l1, omp)

    def _loss_and_grads(self, X, targets, labels, training=False, seed=0):
        codes, rates = self._activation_codes(), self._dropout_rates()
        omp, blas = self._threads_for(len(X))
        with _threads.blas_threads(blas):
            output = self._forward(X, codes, rates, training, seed, omp)
            loss, grad_output = self.loss_.loss_and_gradient(output, targets, labels, omp)
            grads = self._backward(grad_output, rates, training, seed, omp)
            loss += self._penalty(grads, omp)
        return loss, grads

    def gradients(self, X, y, training=False, seed=0):
        """Gradients of the loss by backpropagation, for the whole of X.

        The loss is the mean over the samples of X of the data loss, plus the
        layers' penalties.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like, targets as accepted by the loss
        training : bool, default False
            Apply dropout (mask fixed by `seed`), as in training.
        seed : int, default 0
            Dropout mask seed (only used with training=True).

        Returns
        -------
        list of (dW, db) tuples, one per Dense layer
            dW has the kernel's shape (n_in, n_out), db the bias's (n_out,)
            (None without bias); the network's dtype.

        Raises
        ------
        ValueError, TypeError
            Bad X or y (named), before anything is computed.
        FloatingPointError
            The loss or a gradient overflows to NaN/inf; never returned.
        """
        _check_dropout_args(training, seed)
        X, targets, labels, _ = self._prepare(X, y)
        self._require_built()
        loss, grads = self._loss_and_grads(X, targets, labels, training, seed)
        if not (math.isfinite(loss) and all(np.isfinite(g).all() for pair in grads
                                            for g in pair if g is not None)):
            raise FloatingPointError(
                f"the loss ({loss}) or its gradient is NaN or infinite for this (X, y): "
                "the outputs or the targets overflow (weights or inputs out of range)")
        return grads

    def loss(self, X, y, training=False, seed=0):
        """Mean loss over X (plus penalties), a float; see `gradients`.

        Raises FloatingPointError rather than return NaN or inf.
        """
        _check_dropout_args(training, seed)
        X, targets, labels, _ = self._prepare(X, y)
        self._require_built()
        codes, rates = self._activation_codes(), self._dropout_rates()
        omp, blas = self._threads_for(len(X))
        with _threads.blas_threads(blas):
            output = self._forward(X, codes, rates, training, seed, omp)
            loss = self.loss_.mean_loss(output, targets, labels, omp) + self._penalty(None, omp)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"the loss is {loss} for this (X, y): the outputs or the targets overflow "
                "(weights or inputs out of range)")
        return loss

    def _require_built(self):
        if not self.built:
            raise RuntimeError("the network is not built yet: give input_dim or call fit first")

    def train_on_batch(self, X, y, seed=0):
        """One gradient-descent update on the batch (X, y); returns the batch loss.

        The per-layer Python driver of the same kernels that ``fit`` runs
        fused: forward, loss, backward, penalties, clipping and update.
        """
        _check_dropout_args(True, seed)
        X, targets, labels, classes = self._prepare(X, y)
        if not self.built:
            self.build(X.shape[1])
        if self.loss_.is_classifier and self.classes_ is None:
            self.classes_ = classes
        loss, grads = self._loss_and_grads(X, targets, labels, training=True, seed=seed)
        flat = [g for pair in grads for g in pair if g is not None]
        if not math.isfinite(loss) or not all(np.isfinite(g).all() for g in flat):
            raise DivergenceError(f"non-finite loss {loss} or gradient on this batch; no "
                                  "update was made (try a smaller learning rate)")
        snapshot = self.get_weights(), self.optimizer.get_state()
        omp, blas = self._threads_for(len(X))
        with _threads.blas_threads(blas):
            self.optimizer.apply_gradients(self._params(), flat, self._decay_flags(), omp)
            self._proximal_l1_step(omp)
        if not self._weights_finite():
            self.set_weights(snapshot[0])
            self.optimizer.set_state(snapshot[1])
            raise DivergenceError("the update made the weights NaN or infinite; it was "
                                  "undone (try a smaller learning rate)")
        return loss

    # ------------------------------------------------------------------ training
    def fit(self, X, y, epochs=1, batch_size=32, shuffle=True, verbose=1,
            validation_data=None, validation_split=0.0, callbacks=None,
            gradient_norms=False, n_threads=None):
        """Train by gradient descent with backpropagated gradients.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Converted to the network's dtype (float32 or float64).
        y : array-like
            Class labels (int ids, one-hot, strings...) for the cross-entropy
            losses; real targets (n,) or (n, k) for mean_squared_error.
        epochs : int >= 0, default 1
        batch_size : int >= 1 or None, default 32
            None (or n_samples): batch gradient descent; 1: stochastic; in
            between: mini-batch. A short last batch is used. Larger than
            n_samples is clipped to n_samples with a warning.
        shuffle : bool, default True
            Reshuffle the samples every epoch (from the network's Generator).
        verbose : 0, 1 or 2
            0 silent, 1 progress bar (tqdm, if installed: running loss and
            samples/s) and a line per epoch, 2 a line per epoch.
        validation_data : (X_val, y_val) or None
            Evaluated after every epoch (``val_loss`` and ``val_`` metrics).
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
            Bad input (checked before any state changes).
        DivergenceError
            A non-finite loss or weight, or outputs that overflow; the
            message names the epoch, and the weights, optimizer state and
            history of the last finite epoch are kept.

        Notes
        -----
        Ctrl-C (KeyboardInterrupt) ends the fit cleanly: the weights,
        optimizer state, random generator and history are those of the last
        completed epoch, and ``history.interrupted`` is True. The compiled
        loop notices the signal every progress chunk (1/20 of an epoch).

        A learning-rate schedule is evaluated at ``epochs_trained``, which
        counts epochs over all calls since compile: a second fit (or a fit
        after save and load) continues the schedule.
        """
        self._check_compiled()
        self._check_structure()
        if self.built:
            self._check_live_params()
        X = self._check_X(X)
        if y is None:
            raise ValueError("y is required, got None")
        y = np.asarray(y)
        check_lengths(X, y)
        epochs = check_int(epochs, "epochs", minimum=0)
        if verbose not in (0, 1, 2, True, False):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be a bool, got {shuffle!r}")
        validation_split = check_float(validation_split, "validation_split", minimum=0.0,
                                       maximum=1.0, max_inclusive=False)
        if not isinstance(gradient_norms, (bool, np.bool_)):
            raise TypeError(f"gradient_norms must be a bool, got {gradient_norms!r}")
        if self.optimizer.schedule is None:     # assignable, by callbacks too
            check_float(self.optimizer.learning_rate, "optimizer.learning_rate", minimum=0.0)
        n_threads = check_n_threads(n_threads)
        check_n_threads(self.n_threads, "the network's n_threads")
        callback_list = CallbackList(callbacks)
        for i, callback in enumerate(callback_list):
            if not isinstance(callback, Callback) and not any(
                    callable(getattr(callback, hook, None)) for hook in CallbackList._HOOKS):
                raise TypeError(f"callbacks[{i}] must be a descend Callback (or an object "
                                f"with on_epoch_end etc.), got {type(callback).__name__} "
                                f"{callback!r}")

        # validation data: given, or split off the end
        X_val = y_val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data must be a tuple (X_val, y_val)")
            X_val = check_X(validation_data[0], self.dtype, "validation_data[0]",
                            n_features=X.shape[1])
            y_val = np.asarray(validation_data[1])
            check_lengths(X_val, y_val, "validation_data[0]", "validation_data[1]")
        elif validation_split > 0:
            n_val = int(len(X) * validation_split)
            if n_val < 1 or n_val >= len(X):
                raise ValueError(
                    f"validation_split={validation_split} of {len(X)} samples leaves "
                    f"{n_val} validation and {len(X) - n_val} training samples; both "
                    "need at least one")
            self._check_split_keeps_classes(y, n_val, validation_split)
            X, X_val = X[:-n_val], X[-n_val:]
            y, y_val = y[:-n_val], y[-n_val:]
        n = len(X)
        batch_size = self._check_batch_size(batch_size, n)

        targets, labels, classes = self._encode(y)
        val = None
        if X_val is not None:
            val_targets, val_labels, _ = self._encode(y_val, "validation labels", classes)
            if self.loss_.is_classifier and val_labels is not None:
                missing = np.setdiff1d(val_labels, labels)
                if missing.size:
                    raise ValueError(
                        f"validation labels include classes absent from the training data: "
                        f"{classes[missing].tolist()[:10]}")
            val = (X_val, val_targets, val_labels)

        # all checks passed: from here on, state may change
        if not self.built:
            self.build(X.shape[1])
        if self.loss_.is_classifier and self.classes_ is None:
            self.classes_ = classes
        n_threads = self.n_threads if n_threads is None else n_threads
        omp, blas = _threads.plan(batch_size, n_threads)
        params = self._params()
        self.optimizer.build(params)
        runner = EpochRunner(X, targets, labels, self._runner_specs(), self.loss_.code,
                             self.optimizer.kernel_config(), *self.optimizer.clip_settings(),
                             batch_size, omp)
        self.history = History()
        self.stop_training = False
        callback_list.set_model(self)
        callback_list.set_params({"epochs": epochs, "batch_size": batch_size,
                                  "samples": n, "verbose": verbose})
        callback_list.on_train_begin({})
        n_batches = -(-n // batch_size)
        progress_every = max(1, n_batches // 20)
        interrupted = False
        snapshot = bar = None
        epoch = -1
        try:
            for epoch in range(epochs):
                # the state after the last completed epoch, restored on Ctrl-C or divergence
                snapshot = None
                snapshot = self._snapshot()
                self.optimizer.learning_rate_for_epoch(self.epochs_trained)
                callback_list.on_epoch_begin(epoch, {})
                order = (self._rng.permutation(n) if shuffle else np.arange(n)).astype(np.intp)
                epoch_seed = int(self._rng.integers(0, 2**63))
                bar = _progress_bar(verbose, n, batch_size, epoch, epochs)
                start = time.perf_counter()
                with _threads.blas_threads(blas):
                    result = runner.run_epoch(
                        order, self.optimizer.learning_rate, self.optimizer.weight_decay,
                        self.optimizer.iterations, epoch_seed,
                        bar.update_to if bar else None, progress_every)
                seconds = time.perf_counter() - start
                if bar:
                    bar.close()
                    bar = None
                self.optimizer.iterations = result["step"]
                if not result["finite"] or not self._weights_finite():
                    self._diverged(snapshot, callback_list, epoch, "the loss or the weights")
                logs = self._epoch_logs(result, n, targets)
                if not self.loss_.is_classifier and self._regression_train_metrics:
                    # mse, mae, r2 on the training data with the epoch's final weights
                    scores = self._evaluate(X, targets, labels)
                    logs.update((key, scores[key]) for key in ("mse", "mae", "r2"))
                if val is not None:
                    for key, value in self._evaluate(*val).items():
                        logs["val_" + key] = value
                if gradient_norms:
                    logs.update(self._gradient_norms(X, targets, labels))
                if not all(math.isfinite(value) for value in logs.values()):
                    # finite weights whose outputs overflow: diverged just the same
                    bad = [key for key, value in logs.items() if not math.isfinite(value)]
                    self._diverged(snapshot, callback_list, epoch,
                                   f"the network's outputs (so {', '.join(bad)})")
                logs["learning_rate"] = self.optimizer.learning_rate
                logs["seconds"] = seconds
                logs["samples_per_second"] = n / seconds if seconds > 0 else float("inf")
                self.epochs_trained += 1
                self.history.append(epoch, logs)
                if verbose:
                    print(_format_logs(epoch, epochs, logs), flush=True)
                callback_list.on_epoch_end(epoch, logs)
                schedule = self.optimizer.schedule
                if schedule is not None and hasattr(schedule, "step"):
                    monitor = getattr(schedule, "monitor", "val_loss")
                    if monitor in logs:
                        schedule.step(logs[monitor])
                if self.stop_training:
                    break
        except KeyboardInterrupt:
            # Ctrl-C (checked by the compiled loop every progress chunk), anywhere in
            # an epoch: end the fit with the weights and history of the last completed one
            if bar:
                bar.close()
            if snapshot is not None and epoch not in self.history.epoch:
                self._restore(snapshot)
            interrupted = True
            if verbose:
                print(f"\nInterrupted: kept the weights and history of the "
                      f"{len(self.history.epoch)} completed epoch(s).", file=sys.stderr)
        self.history.interrupted = interrupted
        callback_list.on_train_end({"interrupted": interrupted} if interrupted else {})
        return self.history

    def partial_fit(self, X, y, classes=None, batch_size=32, shuffle=True, verbose=0,
                    n_threads=None):
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
        verbose : 0, 1 or 2, default 0
        n_threads : int or None

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
        self._check_compiled()
        shape = np.shape(X)
        n = shape[0] if len(shape) >= 1 else None
        if batch_size is not None:
            batch_size = check_int(batch_size, "batch_size", minimum=1)
            if n:
                batch_size = min(batch_size, n)
        previous = self.classes_
        if classes is not None:
            classes = self._check_classes(classes)
            if previous is not None and not (
                    len(previous) == len(classes) and np.array_equal(previous, classes)):
                raise ValueError(f"classes={classes.tolist()[:20]} differs from classes_ "
                                 f"{np.asarray(previous).tolist()[:20]} set by an earlier "
                                 "call")
        elif previous is None and self.loss_.is_classifier:
            self._check_first_chunk_classes(y)
        if classes is not None and previous is None:
            self.classes_ = classes
        try:
            return self.fit(X, y, epochs=1, batch_size=batch_size, shuffle=shuffle,
                            verbose=verbose, n_threads=n_threads)
        except (ValueError, TypeError):
            self.classes_ = previous
            raise

    def _check_classes(self, classes):
        """`classes` of partial_fit as a sorted unique 1-D array fitting the network."""
        if not self.loss_.is_classifier:
            raise TypeError(f"classes is only for classification losses, the network uses "
                            f"{self.loss_.name!r}")
        if isinstance(classes, (str, bytes)):
            raise TypeError(f"classes must be an array-like of labels, got {classes!r}")
        array = np.asarray(classes)
        if array.ndim != 1 or array.size == 0:
            raise ValueError(f"classes must be a non-empty 1-D array of labels, got shape "
                             f"{array.shape}")
        if array.dtype.kind not in "biufUS":
            raise TypeError(f"classes must hold numbers or strings, got dtype {array.dtype}")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise ValueError("classes contains NaN or infinite values")
        unique = np.unique(array)
        if len(unique) != len(array):
            raise ValueError(f"classes has duplicate labels: {array.tolist()[:20]}")
        n_out = self.dense_layers[-1].units
        expected = n_out if self.loss_.code == losses.SOFTMAX_CROSS_ENTROPY else (
            2 if n_out == 1 else None)
        if expected is None:
            raise ValueError(f"classes is not used with {n_out} independent binary outputs "
                             "(multi-label targets); pass classes=None")
        if len(unique) != expected:
            raise ValueError(f"classes has {len(unique)} labels, but the network's "
                             f"{self.loss_.name} output needs {expected}")
        return unique

    def _check_first_chunk_classes(self, y):
        """Without `classes`, a first chunk of non-integer labels must show them all."""
        y = np.asarray(y)
        n_out = self.dense_layers[-1].units
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            return      # fit names the NaN
        if (self.loss_.code == losses.SOFTMAX_CROSS_ENTROPY and y.ndim == 1
                and y.dtype.kind not in "iu" and y.size):
            found = losses._unique(y, "y")
            if len(found) != n_out:
                raise ValueError(
                    f"the first partial_fit call sees {len(found)} distinct labels "
                    f"{found.tolist()[:10]}, but the network has {n_out} outputs; pass "
                    "classes=<all labels> on the first call")

    def _check_split_keeps_classes(self, y, n_val, validation_split):
        """ValueError if holding out the last n_val samples leaves a class untrained."""
        if not self.loss_.is_classifier:
            return
        _, labels, classes = self._encode(y)
        if labels is None:      # binary: (n, k) 0/1 targets; labels are their values
            targets = self._encode(y)[0]
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

    def _check_batch_size(self, batch_size, n):
        if batch_size is None:
            return n
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        if batch_size > n:
            warnings.warn(f"batch_size={batch_size} is larger than the {n} training "
                          f"samples; using batch_size={n} (batch gradient descent)",
                          UserWarning, stacklevel=3)
            return n
        return batch_size

    def _runner_specs(self):
        """What the compiled epoch loop needs to know of each Dense layer."""
        codes, rates = self._activation_codes(), self._dropout_rates()
        state = iter(self.optimizer.state)
        specs = []
        for i, layer in enumerate(self.dense_layers):
            kreg, breg = layer.kernel_regularizer, layer.bias_regularizer
            specs.append({
                "kernel": layer.kernel, "bias": layer.bias,
                "dkernel": np.empty_like(layer.kernel),
                "dbias": np.empty_like(layer.bias) if layer.use_bias else None,
                "kernel_state": next(state),
                "bias_state": next(state) if layer.use_bias else None,
                "activation": codes[i], "alpha": layer.alpha, "dropout_rate": rates[i],
                "kernel_l1": kreg.l1 if kreg else 0.0, "kernel_l2": kreg.l2 if kreg else 0.0,
                "bias_l1": breg.l1 if breg else 0.0, "bias_l2": breg.l2 if breg else 0.0,
                "kernel_l1_proximal": bool(kreg and kreg.proximal),
                "bias_l1_proximal": bool(breg and breg.proximal),
                "kernel_decay": 1.0, "bias_decay": 1.0 if self.optimizer.decay_bias else 0.0,
            })
        return specs

    def _diverged(self, snapshot, callback_list, epoch, what):
        """Roll back to the snapshot and raise DivergenceError."""
        learning_rate = self.optimizer.learning_rate
        self._restore(snapshot)
        callback_list.on_train_end({})
        raise DivergenceError(
            f"training diverged in epoch {epoch} (0-based): {what} became NaN or infinite "
            f"with learning_rate={learning_rate:g}. The weights after the last finite epoch "
            "were kept; try a smaller learning rate (or gradient clipping).")

    def _snapshot(self):
        return (self.get_weights(), self.optimizer.get_state(), self.optimizer.learning_rate,
                self._rng.bit_generator.state, self.epochs_trained)

    def _restore(self, snapshot):
        weights, state, learning_rate, rng_state, epochs_trained = snapshot
        self.set_weights(weights)
        self.optimizer.set_state(state)
        self.optimizer.learning_rate = learning_rate
        self._rng.bit_generator.state = rng_state
        self.epochs_trained = epochs_trained

    def _weights_finite(self):
        return all(np.isfinite(p).all() for p in self._params())

    def _epoch_logs(self, result, n, targets):
        logs = {"loss": result["loss_sum"] / max(result["n_samples"], 1)}
        if self.loss_.code == losses.SOFTMAX_CROSS_ENTROPY:
            logs["accuracy"] = result["n_correct"] / n
        elif self.loss_.code == losses.BINARY_CROSS_ENTROPY:
            logs["accuracy"] = result["n_correct"] / targets.size
        return logs

    def _gradient_norms(self, X, targets, labels, max_rows=2048):
        rows = slice(0, min(len(X), max_rows))
        _, grads = self._loss_and_grads(
            X[rows], None if targets is None else targets[rows],
            None if labels is None else labels[rows])
        return {f"grad_norm_{i}": float(np.linalg.norm(dw)) for i, (dw, _) in enumerate(grads)}

    # ------------------------------------------------------------------ inference
    def _output(self, X):
        """Last-layer output (before the link) for validated X, in chunks."""
        codes, rates = self._activation_codes(), self._dropout_rates()
        chunks = []
        for start in range(0, len(X), CHUNK_ROWS):
            part = X[start:start + CHUNK_ROWS]
            omp, blas = self._threads_for(len(part))
            with _threads.blas_threads(blas):
                chunks.append(self._forward(part, codes, rates, False, 0, omp))
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)

    def predict(self, X):
        """Network output after the loss's link.

        Returns
        -------
        ndarray, shape (n_samples, n_outputs), the network's dtype
            Class probabilities (softmax) for softmax_cross_entropy,
            probabilities (sigmoid) for binary_cross_entropy, raw outputs for
            mean_squared_error (or without compile).

        Raises
        ------
        FloatingPointError
            The output is not finite (weights out of range); never returns NaN.
        """
        self._require_built()
        X = self._check_X(X)
        output = self._output(X)
        if self.loss_ is not None:
            output = self.loss_.apply_link(output, 1)
        if not np.isfinite(output).all():
            raise FloatingPointError("the network's output is NaN or infinite for this X; "
                                     "the weights may have diverged")
        return output

    def predict_proba(self, X):
        """Alias of predict for classifiers (scikit-learn's name)."""
        return self.predict(X)

    def predict_classes(self, X):
        """Predicted labels, taken from ``classes_`` (strings kept)."""
        self._check_compiled()
        if not self.loss_.is_classifier:
            raise TypeError(f"predict_classes needs a classification loss, the network "
                            f"uses {self.loss_.name!r}")
        self._require_built()
        output = self._output(self._check_X(X))
        if not np.isfinite(output).all():
            raise FloatingPointError("the network's output is NaN or infinite for this X; "
                                     "the weights may have diverged")
        if self.loss_.code == losses.SOFTMAX_CROSS_ENTROPY:
            ids = np.argmax(output, axis=1)
        elif output.shape[1] == 1:
            ids = (output[:, 0] > 0).astype(np.intp)
        else:
            return (output > 0).astype(np.int64)   # multi-label 0/1 matrix
        if self.classes_ is not None:
            classes = self.classes_
        else:       # not fitted yet: class ids (0/1 for a single binary output)
            classes = np.arange(max(output.shape[1], 2))
        return classes[ids]

    def evaluate(self, X, y):
        """Loss and metrics on (X, y).

        Returns
        -------
        dict
            {"loss", "accuracy"} for classifiers, {"loss", "mse", "mae", "r2"}
            for regression; floats. loss includes the layers' penalties.

        Raises
        ------
        ValueError, TypeError
            Bad X or y (named).
        FloatingPointError
            A score overflows to NaN/inf (it is never returned).
        """
        X, targets, labels, _ = self._prepare(X, y)
        self._require_built()
        scores = self._evaluate(X, targets, labels)
        if not all(math.isfinite(value) for value in scores.values()):
            raise FloatingPointError(
                f"evaluate produced non-finite scores {scores} for this X: the network's "
                "output overflows (inputs or weights out of range)")
        return scores

    def _evaluate(self, X, targets, labels):
        output = self._output(X)
        n, k = output.shape
        scores = {"loss": self.loss_.mean_loss(output, targets, labels) + self._penalty()}
        if self.loss_.code == losses.SOFTMAX_CROSS_ENTROPY:
            scores["accuracy"] = float(np.mean(np.argmax(output, axis=1) == labels))
        elif self.loss_.code == losses.BINARY_CROSS_ENTROPY:
            scores["accuracy"] = float(np.mean((output > 0) == (targets > 0.5)))
        else:
            err = output.astype(np.float64) - targets
            scores["mse"] = float(np.mean(err ** 2))
            scores["mae"] = float(np.mean(np.abs(err)))
            scores["r2"] = _r2(targets, output)
        return scores

    # ------------------------------------------------------------------ parameters
    def get_weights(self):
        """[W1, b1, W2, b2, ...]: copies of the parameters (no entry for unused biases)."""
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
        weights = list(weights)
        if len(weights) != len(params):
            raise ValueError(f"set_weights expected {len(params)} arrays, got {len(weights)}")
        arrays = []
        for i, (p, w) in enumerate(zip(params, weights)):
            w = np.asarray(w)
            if w.shape != p.shape:
                raise ValueError(f"weights[{i}] has shape {w.shape}, expected {p.shape}")
            if w.dtype.kind not in "biuf" or not np.isfinite(w).all():
                raise ValueError(f"weights[{i}] must be finite real numbers")
            arrays.append(w)
        for p, w in zip(params, arrays):
            np.copyto(p, w, casting="unsafe")

    def summary(self, print_fn=print):
        """Print (and return) a table of the layers, output shapes and parameter counts."""
        width = max([28] + [len(repr(layer)) + 2 for layer in self.layers])
        lines = [f"Sequential {self.name or ''}".rstrip(),
                 f"{'layer':<{width}}{'output shape':<18}{'params':>10}"]
        n_in = self.n_features_in_
        for layer in self.layers:
            if isinstance(layer, Dense):
                count = layer.count_params() if layer.built else 0
                shape = f"(None, {layer.units})"
                lines.append(f"{repr(layer):<{width}}{shape:<18}{count:>10}")
                n_in = layer.units
            else:
                lines.append(f"{repr(layer):<{width}}{f'(None, {n_in})':<18}{0:>10}")
        lines.append(f"total parameters: {self.count_params()}  dtype: {self.dtype.name}")
        text = "\n".join(lines)
        if print_fn is not None:
            print_fn(text)
        return text

    def save(self, path):
        """Save the network to one ``.npz`` file; ``descend.load(path)`` rebuilds it.

        See :func:`descend.io.save` (the file holds the architecture, the
        weights, the optimizer and its state, ``classes_``, the random
        generator's state and the history; no pickled object).

        Returns
        -------
        str
            The path written (exactly `path`; no suffix is added).
        """
        from descend import io
        return io.save(self, path)

    def get_config(self):
        return {"layers": [layer.get_config() for layer in self.layers],
                "input_dim": self.n_features_in_, "dtype": self.dtype.name,
                "seed": self.seed, "n_threads": self.n_threads, "name": self.name}

    def __repr__(self):
        return f"Sequential({self.layers!r}, input_dim={self.n_features_in_})"


def _check_dropout_args(training, seed):
    """TypeError/ValueError naming `training` (a bool) or `seed` (an int in [0, 2**64))."""
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training must be a bool, got {training!r}")
    seed = check_int(seed, "seed", minimum=0)
    if seed >= 2**64:
        raise ValueError(f"seed must be < 2**64 (a dropout-mask seed), got {seed}")


def _dropout(x, rate, seed, n_threads):
    from descend._dense import dropout_py
    out = np.empty_like(x)
    dropout_py(out, np.ascontiguousarray(x), rate, seed, n_threads)
    return out


def _r2(targets, output):
    """Coefficient of determination, averaged over outputs (as scikit-learn)."""
    t = targets.astype(np.float64)
    ss_res = np.sum((t - output) ** 2, axis=0)
    ss_tot = np.sum((t - t.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1),
                      np.where(ss_res == 0, 1.0, 0.0))
    return float(np.mean(r2))


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
    """A tqdm bar for verbose=1 (None without tqdm: the epoch line is printed alone)."""
    if verbose != 1:
        return None
    try:
        return _TqdmBar(n_samples, batch_size, f"epoch {epoch + 1}/{epochs}")
    except ImportError:
        return None
