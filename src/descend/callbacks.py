"""Training callbacks for descend models: ``model.fit(..., callbacks=[...])``.

A callback is an object whose hooks ``model.fit`` calls at fixed points of
training.  For every callback passed as ``fit(..., callbacks=[...])`` the
training loop calls, in this order:

1. ``set_model(model)`` once,
2. ``on_train_begin(logs)``,
3. for each epoch (0-based ``epoch``): ``on_epoch_begin(epoch, logs)`` then
   ``on_epoch_end(epoch, logs)``,
4. ``on_train_end(logs)``.

At epoch end ``logs`` is a dict of floats such as ``"loss"``,
``"accuracy"`` (classifiers) or ``"mse"``/``"mae"``/``"r2"`` (regressors),
``"val_..."`` counterparts when validation data is given,
``"learning_rate"``, ``"seconds"`` and ``"samples_per_second"``.

A callback stops training by setting ``model.stop_training = True``; the loop
finishes the current epoch, then calls ``on_train_end``.

The callbacks follow Keras (``keras.callbacks``, Keras 3) semantics unless a
class docstring says otherwise, so code and intuition carry over.

This module depends only on NumPy, the standard library and two pure-Python
helpers: ``descend._validation`` (argument checks) and ``descend._plateau``
(the reduce-on-plateau rule it shares with ``descend.schedules``).
"""

import csv
import inspect
import math
import numbers
import os
import string
import sys
import warnings
from numbers import Integral, Real

import numpy as np

from descend._plateau import (PARAMETER_CONSTRAINTS as _PLATEAU_CONSTRAINTS, PlateauRule,
                              delegate_to_rule, missing_monitor_message, resolve_mode)
from descend._validation import (Constraint, Interval, Options, check, check_output_file,
                                 error_message, flush_cut_rate, learning_rate_dtype_problem,
                                 outside_stacklevel, validate)

__all__ = [
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "ModelCheckpoint",
    "LearningRateScheduler",
    "ReduceLROnPlateau",
    "CSVLogger",
    "TerminateOnNaN",
]

_MODES = ("auto", "min", "max")


# ---------------------------------------------------------------------------
# Argument constraints (checked by descend._validation, one message style)
# ---------------------------------------------------------------------------

_VERBOSE = ["boolean", Interval(Integral, 0, None)]   # verbose=True is a common spelling
_MONITOR = ["str"]
_MODE = [Options(*_MODES)]


class _SingleCharacter(Constraint):
    """One character that is not a line break (a CSV separator: "\n" split
    every field onto a row of its own, "\r" failed in the csv module after
    the first epoch had trained)."""

    description = "a single character other than a line break"

    def type_ok(self, value):
        return isinstance(value, str)

    def value_ok(self, value):
        return len(value) == 1 and value not in "\r\n"


def _type_name(value):
    return type(value).__name__


def _resolve_mode(mode, monitor):
    """Resolve ``"auto"`` to ``"min"`` or ``"max"`` from the monitor name.

    ``"max"`` if the name (without a ``val_`` prefix) contains ``"acc"`` or is
    ``"r2"``; ``"min"`` otherwise (losses, ``mse``, ``mae``, ...).
    """
    return resolve_mode(mode, monitor)


def _as_float(value):
    """Best-effort conversion of a log value to float (None if impossible)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _missing_key_message(what, monitor, logs):
    return missing_monitor_message(what, monitor, logs)


def _format_fields(text):
    """The names of the replacement fields of a format string, those nested
    in format specs included ("{loss:.{digits}f}" reads loss and digits)."""
    for _, field, spec, _ in string.Formatter().parse(text):
        if field is not None:
            yield field
            if spec:
                yield from _format_fields(spec)


def _check_savable(model):
    """ValueError, before the first epoch trains, if ``model.save`` would refuse
    a descend Sequential (a custom loss, a LambdaSchedule...): ModelCheckpoint
    raised it at the end of the first epoch, after that epoch had trained.
    Other models are left to their own save."""
    # a Sequential exists only once descend.model (and the compiled kernels) is
    # imported: this module itself imports neither
    model_module = sys.modules.get("descend.model")
    if model_module is not None and isinstance(model, model_module.Sequential):
        from descend import io
        try:
            io.check_savable(model)
        except ValueError as exc:
            raise ValueError(f"ModelCheckpoint: {exc}") from None


def check_fields_logged(filepath, keys):
    """ValueError if ModelCheckpoint's ``filepath`` reads a field that none
    of `keys` (an epoch's log keys) nor ``epoch`` is. A distributed fit
    checks it on every rank, the callback running on rank 0 alone."""
    available = ["epoch"] + list(keys)
    for field in _format_fields(filepath):
        # "loss" of "{loss.real}" or "{loss[0]}": the key formatting looks up
        head = field.partition(".")[0].partition("[")[0]
        if head not in available:
            hint = (" (val_ fields need validation_data or validation_split)"
                    if head.startswith("val_") else "")
            raise ValueError(
                f"ModelCheckpoint: `filepath` {filepath!r} uses the field "
                f"{head!r}, which the epoch logs of this fit will not hold{hint}. "
                f"Available fields: {', '.join(sorted(available))}.")


def _logged_keys(callback):
    """The keys every epoch's logs will hold, from the params fit gives
    (``"metrics"``), or None from a loop that does not say."""
    keys = callback.params.get("metrics")
    return None if keys is None else list(keys)


def _warn_if_not_logged(callback, who, consequence=""):
    """At on_train_begin: the missing-monitor warning, before the first epoch
    instead of at its end, when fit's params say the logs will lack
    ``callback.monitor`` (then not again at epoch end: one per fit)."""
    keys = _logged_keys(callback)
    if keys is not None and callback.monitor not in keys:
        callback._warned_missing = True
        warnings.warn(_missing_key_message(who, callback.monitor, keys) + consequence,
                      RuntimeWarning, stacklevel=outside_stacklevel())


# ---------------------------------------------------------------------------
# Base classes
# ---------------------------------------------------------------------------

class Callback:
    """Base class for training callbacks.

    Subclass it and override the hooks you need; every hook is a no-op here.
    ``model.fit`` calls :meth:`set_model` once before training, after which
    the model is available as :attr:`model`.

    Attributes
    ----------
    model : object or None
        The model being trained (``None`` until :meth:`set_model`).
    params : dict
        Training parameters, if the training loop provides them through
        :meth:`set_params`; empty otherwise. ``fit`` gives ``epochs``,
        ``batch_size``, ``samples``, ``verbose``, ``do_validation`` (bool)
        and ``metrics``: the keys every epoch's logs will hold (as Keras 2's
        ``params["metrics"]``, here with ``learning_rate``, ``seconds``...).

    Notes
    -----
    Mirrors ``keras.callbacks.Callback``.  Hooks receive ``logs``, which may be
    ``None`` or a dict; callbacks should not rely on mutating it.
    """

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        """Attach the model being trained."""
        self.model = model

    def set_params(self, params):
        """Attach the training parameters (a dict)."""
        self.params = dict(params) if params else {}

    def on_train_begin(self, logs=None):
        """Called once at the start of ``fit``."""

    def on_train_end(self, logs=None):
        """Called once at the end of ``fit`` (also after an early stop)."""

    def on_epoch_begin(self, epoch, logs=None):
        """Called at the start of epoch ``epoch`` (0-based)."""

    def on_epoch_end(self, epoch, logs=None):
        """Called at the end of epoch ``epoch`` (0-based) with its logs."""

    def on_train_batch_begin(self, batch, logs=None):
        """Called before batch ``batch`` (0-based in the epoch) when the
        previous call of ``on_train_batch_end`` ended a run of batches: at
        batches 0, k, 2k, ... for fit's ``steps_per_execution`` k (default
        min(64, 1/20 of an epoch); 1 for every batch, as in Keras)."""

    def on_train_batch_end(self, batch, logs=None):
        """Called after batches k-1, 2k-1, ... of each epoch and its last one,
        k being fit's ``steps_per_execution`` (default min(64, 1/20 of an
        epoch); 1 for every batch, as in Keras); ``logs["loss"]`` is the
        epoch's running mean loss so far."""


class CallbackList:
    """Dispatch each hook to a sequence of callbacks, in order.

    A convenience for training loops.  Objects that do not subclass
    :class:`Callback` are accepted; hooks they lack are skipped.

    Parameters
    ----------
    callbacks : iterable of Callback, optional
        The callbacks, called in the given order.
    model : object, optional
        If given, :meth:`set_model` is called on every callback.
    """

    _HOOKS = (
        "on_train_begin",
        "on_train_end",
        "on_epoch_begin",
        "on_epoch_end",
        "on_train_batch_begin",
        "on_train_batch_end",
    )

    def __init__(self, callbacks=None, model=None):
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, (Callback, str, bytes)) or not hasattr(
            callbacks, "__iter__"
        ):
            raise TypeError(error_message("callbacks", "a list of callbacks", callbacks,
                                          "CallbackList"))
        self.callbacks = list(callbacks)
        self.model = None
        if model is not None:
            self.set_model(model)

    def append(self, callback):
        self.callbacks.append(callback)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self):
        return len(self.callbacks)

    def set_model(self, model):
        self.model = model
        for cb in self.callbacks:
            setter = getattr(cb, "set_model", None)
            if callable(setter):
                setter(model)
            else:
                cb.model = model

    def set_params(self, params):
        for cb in self.callbacks:
            setter = getattr(cb, "set_params", None)
            if callable(setter):
                setter(params)

    def _call(self, hook, *args):
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if callable(fn):
                fn(*args)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs)


# ---------------------------------------------------------------------------
# EarlyStopping
# ---------------------------------------------------------------------------

class EarlyStopping(Callback):
    """Stop training when a monitored quantity has stopped improving.

    Parameters
    ----------
    monitor : str, default "val_loss"
        Key of the epoch logs to watch.
    min_delta : float, default 0.0
        Minimum change that counts as an improvement: in ``"min"`` mode an
        epoch improves if ``current < best - min_delta``, in ``"max"`` mode if
        ``current > best + min_delta``.  Must be >= 0.
    patience : int, default 0
        Number of epochs without improvement after which training stops.
        Must be >= 0.  Training never stops at epoch 0.
    mode : {"auto", "min", "max"}, default "auto"
        Whether the quantity should decrease (``"min"``) or increase
        (``"max"``).  ``"auto"`` picks ``"max"`` if the monitor name (without
        a ``val_`` prefix) contains ``"acc"`` or is ``"r2"``, else ``"min"``.
    baseline : float or None, default None
        If given, the patience counter is only reset by epochs that improve on
        both the best value so far and ``baseline``.  A run that never beats
        the baseline is stopped at the first non-improving epoch at which
        ``patience`` epochs have elapsed since the counter was last reset.
    restore_best_weights : bool, default False
        Keep a copy of the weights of the best epoch and put them back into
        the model in :meth:`on_train_end` -- both when training was stopped
        early and when it ran to the end but the best epoch was not the last.
        If no epoch ever improved (e.g. the monitor is always NaN), the
        weights of the first monitored epoch are restored.
    start_from_epoch : int, default 0
        Epochs before this (0-based) are ignored entirely (warm-up).
    verbose : int, default 0
        If > 0, print a message when stopping and when restoring weights.

    Attributes
    ----------
    wait : int
        Epochs counted against ``patience`` since the last reset.
    stopped_epoch : int
        0-based epoch at which training was stopped; 0 if it was not stopped.
    best : float
        Best monitored value so far (``inf``/``-inf`` before the first one).
    best_epoch : int
        0-based epoch of ``best``.
    best_weights : list of ndarray or None
        Copy of the weights at ``best_epoch`` (only if
        ``restore_best_weights``).
    monitor_mode : {"min", "max"}
        The resolved mode.

    Notes
    -----
    Follows Keras 3 ``keras.callbacks.EarlyStopping``, including two of its
    less obvious rules: an improving epoch never triggers the stop (with a
    ``baseline`` the counter keeps growing through improvements that do not
    beat it, and the stop happens at the next non-improving epoch), and
    weights are restored at train end even without an early stop, as Keras
    does since 2.11.  Differences: ``mode="auto"`` is decided from the name
    as described above, invalid arguments raise instead of warning, and a
    monitor missing from the logs produces one warning per ``fit`` (listing
    the available keys) instead of one per epoch, at its start (before the
    first epoch: fit's ``params["metrics"]`` lists the keys), or at the
    first epoch end that lacks it from a loop that gives no such list; such
    epochs are skipped and never stop training.  A NaN monitor value is
    never an improvement.

    Examples
    --------
    >>> import descend as dn
    >>> X, y = dn.datasets.load_digits()
    >>> net = dn.Sequential([dn.Dense(10)], input_dim=64, seed=0)
    >>> net = net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(0.5))
    >>> stop = dn.callbacks.EarlyStopping(monitor="val_loss", min_delta=0.01, patience=1,
    ...                                   restore_best_weights=True)
    >>> history = net.fit(X, y, epochs=200, validation_split=0.25, callbacks=[stop],
    ...                   verbose=0)
    >>> len(history["loss"]) < 200 and stop.stopped_epoch == len(history["loss"]) - 1
    True
    """

    _parameter_constraints = {
        "monitor": _MONITOR,
        "min_delta": [Interval(Real, 0, None)],
        "patience": [Interval(Integral, 0, None)],
        "mode": _MODE,
        "baseline": [Interval(Real, finite=False), None],
        "restore_best_weights": ["boolean"],
        "start_from_epoch": [Interval(Integral, 0, None)],
        "verbose": _VERBOSE,
    }

    def __init__(
        self,
        monitor="val_loss",
        min_delta=0.0,
        patience=0,
        mode="auto",
        baseline=None,
        restore_best_weights=False,
        start_from_epoch=0,
        verbose=0,
    ):
        super().__init__()
        values = validate(self._parameter_constraints, {
            "monitor": monitor, "min_delta": min_delta, "patience": patience,
            "mode": mode, "baseline": baseline,
            "restore_best_weights": restore_best_weights,
            "start_from_epoch": start_from_epoch, "verbose": verbose}, "EarlyStopping")
        self.monitor = values["monitor"]
        self.min_delta = values["min_delta"]
        self.patience = values["patience"]
        self.mode = values["mode"]
        self.monitor_mode = _resolve_mode(self.mode, self.monitor)
        self.baseline = values["baseline"]
        self.restore_best_weights = values["restore_best_weights"]
        self.start_from_epoch = values["start_from_epoch"]
        self.verbose = int(values["verbose"])
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = math.inf if self.monitor_mode == "min" else -math.inf
        self.best_epoch = 0
        self.best_weights = None
        self._last_epoch = None
        self._warned_missing = False

    def _is_improvement(self, current, reference):
        if self.monitor_mode == "min":
            return current + self.min_delta < reference
        return current - self.min_delta > reference

    def _get_weights(self):
        return [np.array(w, copy=True) for w in self.model.get_weights()]

    def on_train_begin(self, logs=None):
        self._reset()
        _warn_if_not_logged(self, "EarlyStopping")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self._last_epoch = epoch
        if self.monitor not in logs or logs[self.monitor] is None:
            if not self._warned_missing:
                self._warned_missing = True
                warnings.warn(
                    _missing_key_message("EarlyStopping", self.monitor, logs),
                    RuntimeWarning,
                    stacklevel=outside_stacklevel(),
                )
            return
        if epoch < self.start_from_epoch:
            return
        current = _as_float(logs[self.monitor])
        if current is None:
            current = math.nan

        if self.restore_best_weights and self.best_weights is None:
            # Until some epoch improves, the first monitored one is the best.
            self.best_weights = self._get_weights()
            self.best_epoch = epoch

        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self._get_weights()
            # Only restart the count if we beat both our best and the baseline.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return

        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if (
            self.restore_best_weights
            and self.best_weights is not None
            and (self.stopped_epoch > 0 or self.best_epoch != self._last_epoch)
        ):
            if self.verbose > 0:
                print(
                    "Restoring model weights from the end of the best epoch: "
                    f"{self.best_epoch + 1}."
                )
            self.model.set_weights([np.array(w, copy=True) for w in self.best_weights])


# ---------------------------------------------------------------------------
# ModelCheckpoint
# ---------------------------------------------------------------------------

_NO_CHECKPOINT = " No checkpoint is written for such epochs."


class ModelCheckpoint(Callback):
    """Save the model with ``model.save`` at the end of epochs.

    Parameters
    ----------
    filepath : str or os.PathLike
        Where to save.  It may contain :meth:`str.format` fields: ``{epoch}``
        (1-based, like Keras) and any key of the epoch logs, with format
        specs, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``.  Missing
        parent directories are created.  ``model.save`` writes a ``.npz``
        archive, so give the name a ``.npz`` suffix.
    monitor : str, default "val_loss"
        Log key compared between epochs when ``save_best_only``.
    save_best_only : bool, default False
        If True, save only at epochs where ``monitor`` is strictly better
        than every previous value (the first epoch with a value always
        saves).  With a fixed ``filepath`` the file then always holds the
        best model so far.
    mode : {"auto", "min", "max"}, default "auto"
        Direction of improvement; ``"auto"`` is ``"max"`` if the monitor name
        (without ``val_``) contains ``"acc"`` or is ``"r2"``, else ``"min"``.
    verbose : int, default 0
        If > 0, print a message for each save.

    Attributes
    ----------
    best : float
        Best monitored value seen (only tracked with ``save_best_only``).
    last_saved_path : str or None
        Path of the most recent save.
    last_saved_epoch : int or None
        0-based index of the epoch most recently saved.

    Raises
    ------
    ValueError
        At construction, if ``filepath`` is not a valid format string, uses
        positional fields (``{}``/``{0}``), has a field that an int epoch
        or a float log value cannot fill (``{epoch:q}``, ``{loss:d}``), is
        an existing directory, or lies in a directory that cannot be
        created or written (a file, no write permission, a symbolic link
        to nothing).
        At :meth:`on_train_begin` (fit's start, before any epoch trains),
        if ``filepath`` names a field that the epoch logs of this fit will
        not hold (``{val_loss}`` without validation data): the message
        names the field and lists the available ones (fit's
        ``params["metrics"]`` and ``epoch``); or if ``model.save`` would
        refuse the network (a custom loss or optimizer, a
        ``LambdaSchedule``...: see :func:`descend.io.save`).
    KeyError
        At save time, if ``filepath`` names a field that is not in the logs
        (with a training loop whose params do not list the keys).

    Notes
    -----
    Follows Keras 3 ``keras.callbacks.ModelCheckpoint`` with
    ``save_freq="epoch"``: ``{epoch}`` is 1-based, improvement is strict with
    no ``min_delta``, and a missing ``monitor`` with ``save_best_only``
    skips the save with a warning (here once per ``fit``, at its start when
    fit's params list the keys, as ``EarlyStopping`` does).  Only
    whole-model saves are supported (no ``save_weights_only``).

    Examples
    --------
    >>> import os, tempfile
    >>> import descend as dn
    >>> X, y = dn.datasets.load_digits()
    >>> net = dn.Sequential([dn.Dense(10)], input_dim=64, seed=0)
    >>> net = net.compile(loss="softmax_cross_entropy", optimizer="sgd")
    >>> folder = tempfile.mkdtemp()
    >>> save = dn.callbacks.ModelCheckpoint(os.path.join(folder, "digits-{epoch:02d}.npz"))
    >>> history = net.fit(X, y, epochs=2, callbacks=[save], verbose=0)
    >>> sorted(os.listdir(folder))
    ['digits-01.npz', 'digits-02.npz']
    """

    _parameter_constraints = {
        "filepath": ["path"],
        "monitor": _MONITOR,
        "save_best_only": ["boolean"],
        "mode": _MODE,
        "verbose": _VERBOSE,
    }

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        save_best_only=False,
        mode="auto",
        verbose=0,
    ):
        super().__init__()
        values = validate(self._parameter_constraints, {
            "filepath": filepath, "monitor": monitor, "save_best_only": save_best_only,
            "mode": mode, "verbose": verbose}, "ModelCheckpoint")
        self.filepath = values["filepath"]
        self._check_format(self.filepath)
        if os.path.isdir(self.filepath):
            # (model.save refused it at the end of the first epoch, after training it)
            raise ValueError(f"ModelCheckpoint: filepath {self.filepath!r} is a directory; "
                             "give a file name such as "
                             f"{os.path.join(self.filepath, 'model-{epoch:02d}.npz')!r}")
        # (the save after the first epoch's training raised FileExistsError under a
        # symbolic link to nothing)
        check_output_file(self.filepath, "filepath", "ModelCheckpoint", makedirs=True)
        self.monitor = values["monitor"]
        self.save_best_only = values["save_best_only"]
        self.mode = values["mode"]
        self.monitor_mode = _resolve_mode(self.mode, self.monitor)
        self.verbose = int(values["verbose"])
        self._reset()

    @staticmethod
    def _check_format(filepath):
        try:
            parsed = [(f, spec, conversion)
                      for _, f, spec, conversion in string.Formatter().parse(filepath)
                      if f is not None]
            fields = [f for f, _, _ in parsed]
        except ValueError as exc:
            raise ValueError(
                f"ModelCheckpoint: `filepath` is not a valid format string "
                f"({exc}), got {filepath!r}. Double braces ('{{{{', '}}}}') "
                f"write literal braces."
            ) from None
        for field in fields:
            head = field.partition(".")[0].partition("[")[0]    # "0" of "0.real", "0[1]"
            if head == "" or head.isdigit():
                raise ValueError(
                    "ModelCheckpoint: `filepath` may only use named fields such "
                    "as {epoch} or {val_loss}, got a positional field "
                    f"{{{field}}} in {filepath!r}."
                )
        # the format specs of plain fields, on the values they will get:
        # epoch an int, the logs floats ({epoch:q} failed after the first epoch)
        convert = {"r": repr, "s": str, "a": ascii, None: lambda value: value}
        for field, spec, conversion in parsed:
            if field.isidentifier() and "{" not in spec:
                try:
                    format(convert[conversion](1 if field == "epoch" else 0.5), spec)
                except (ValueError, TypeError) as exc:
                    raise ValueError(
                        f"ModelCheckpoint: `filepath` {filepath!r} cannot be formatted with "
                        f"{{epoch}} an int and the logs' values floats: {exc}"
                    ) from None

    def _reset(self):
        self.best = math.inf if self.monitor_mode == "min" else -math.inf
        self.last_saved_path = None
        self.last_saved_epoch = None
        self._warned_missing = False

    def on_train_begin(self, logs=None):
        self._reset()
        self._check_fields_logged()
        _check_savable(self.model)
        if self.save_best_only:
            _warn_if_not_logged(self, "ModelCheckpoint(save_best_only=True)",
                                _NO_CHECKPOINT)

    def _check_fields_logged(self):
        """ValueError if ``filepath`` reads a field the epoch logs of this fit
        will not hold: before the first epoch, not after it trained."""
        keys = _logged_keys(self)
        if keys is not None:
            check_fields_logged(self.filepath, keys)

    def _format_path(self, epoch, logs):
        fields = dict(logs)
        fields["epoch"] = epoch + 1
        try:
            return self.filepath.format(**fields)
        except KeyError as exc:
            keys = ", ".join(sorted(fields))
            raise KeyError(
                f"ModelCheckpoint: `filepath` {self.filepath!r} uses the field "
                f"{exc.args[0]!r}, which is not in the logs of epoch {epoch + 1}. "
                f"Available fields: {keys}."
            ) from None
        except (ValueError, IndexError, AttributeError, TypeError) as exc:
            raise ValueError(
                f"ModelCheckpoint: could not format `filepath` {self.filepath!r} "
                f"at epoch {epoch + 1}: {exc}."
            ) from None

    def _is_improvement(self, current):
        if self.monitor_mode == "min":
            return current < self.best
        return current > self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            current = _as_float(logs.get(self.monitor))
            if current is None:
                if not self._warned_missing:
                    self._warned_missing = True
                    warnings.warn(
                        _missing_key_message(
                            "ModelCheckpoint(save_best_only=True)", self.monitor, logs
                        )
                        + _NO_CHECKPOINT,
                        RuntimeWarning,
                        stacklevel=outside_stacklevel(),
                    )
                return
            if not self._is_improvement(current):
                if self.verbose > 0:
                    print(
                        f"Epoch {epoch + 1}: {self.monitor} did not improve "
                        f"from {self.best:.5g}"
                    )
                return
            path = self._format_path(epoch, logs)
            previous = self.best
            self.best = current
            if self.verbose > 0:
                print(
                    f"Epoch {epoch + 1}: {self.monitor} improved from {previous:.5g} "
                    f"to {current:.5g}, saving model to {path}"
                )
        else:
            path = self._format_path(epoch, logs)
            if self.verbose > 0:
                print(f"Epoch {epoch + 1}: saving model to {path}")
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self.model.save(path)
        self.last_saved_path = path
        self.last_saved_epoch = epoch


# ---------------------------------------------------------------------------
# LearningRateScheduler
# ---------------------------------------------------------------------------

def _schedule_arity(schedule):
    """Return 1 or 2 (number of positional args to pass), or None if unknown."""
    try:
        signature = inspect.signature(schedule)
    except (TypeError, ValueError):
        return None
    params = list(signature.parameters.values())
    positional = [
        p for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    required = [p for p in positional if p.default is p.empty]
    var_positional = any(p.kind == p.VAR_POSITIONAL for p in params)
    required_kwonly = [
        p.name for p in params if p.kind == p.KEYWORD_ONLY and p.default is p.empty
    ]
    if required_kwonly:
        raise TypeError(
            "LearningRateScheduler: `schedule` must be callable as "
            "schedule(epoch) or schedule(epoch, lr), but it has required "
            f"keyword-only parameters {required_kwonly} (signature {signature})."
        )
    if len(required) > 2:
        raise TypeError(
            "LearningRateScheduler: `schedule` must take 1 or 2 positional "
            f"parameters (epoch[, lr]), got {len(required)} required ones "
            f"(signature {signature})."
        )
    if len(positional) >= 2 or var_positional:
        return 2
    if len(positional) == 1:
        return 1
    raise TypeError(
        "LearningRateScheduler: `schedule` must take 1 or 2 positional "
        f"parameters (epoch[, lr]), got signature {signature}."
    )


def _validate_lr(value, epoch, who):
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    try:
        lr = float(value) if ok else math.nan
    except OverflowError:   # an int (or Fraction) beyond the float range
        lr = math.inf
    if not (ok and math.isfinite(lr) and lr > 0.0):
        raise ValueError(
            f"{who} must return a finite float > 0 as the learning rate, got "
            f"{value!r} ({_type_name(value)}) for epoch {epoch + 1} (schedule({epoch}))."
        )
    return lr


def _scaled(value, scale):
    """value * scale for a number (anything else is left for _validate_lr)."""
    if scale != 1.0 and isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            return value * scale
        except OverflowError:   # an int beyond the float range: _validate_lr refuses it
            return value
    return value


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch from a schedule.

    Parameters
    ----------
    schedule : callable
        Called at :meth:`on_epoch_begin` as ``schedule(epoch)`` or
        ``schedule(epoch, lr)`` -- ``epoch`` is 0-based and ``lr`` is the
        current ``model.optimizer.learning_rate`` as a float.  The form is
        chosen from the signature: two positional parameters (even if the
        second has a default) or ``*args`` get ``(epoch, lr)``, one gets
        ``(epoch)``.  Objects with ``__call__(self, epoch)``, such as descend
        learning-rate schedules, work too.  If the signature cannot be
        inspected, ``(epoch, lr)`` is tried first and ``(epoch)`` on
        ``TypeError``, like Keras.  The result must be a real number, finite
        and > 0 (ints are accepted and converted to float).
    verbose : int, default 0
        If > 0, print the learning rate set at each epoch.

    Raises
    ------
    TypeError
        At construction, if ``schedule`` is not callable or its signature
        cannot accept 1 or 2 positional arguments; by ``fit``, before it
        changes anything, if the optimizer's ``learning_rate`` is itself a
        schedule (both would set the rate every epoch; Keras refuses the
        same pair).
    ValueError
        At an epoch, if the schedule returns something that is not a finite
        number > 0 (NaN, inf, 0, negative, None, a string ...), or a number
        the network's dtype does not hold (below its smallest normal number,
        1.2e-38 for float32, where it would train nothing; above its
        largest); the message names the epoch and the value, and the
        learning rate is unchanged.

    Notes
    -----
    Follows Keras 3 ``keras.callbacks.LearningRateScheduler``, except that
    the calling form is taken from the signature instead of by catching
    ``TypeError`` (which would hide errors raised inside the schedule), and
    results are checked for finiteness and sign.

    Examples
    --------
    >>> import descend as dn
    >>> X, y = dn.datasets.load_digits()
    >>> net = dn.Sequential([dn.Dense(10)], input_dim=64, seed=0)
    >>> net = net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(0.1))
    >>> halve = dn.callbacks.LearningRateScheduler(lambda epoch, lr: lr / 2 if epoch else lr)
    >>> net.fit(X, y, epochs=3, callbacks=[halve], verbose=0)["learning_rate"]
    [0.1, 0.05, 0.025]
    """

    _parameter_constraints = {
        "schedule": [callable],
        "verbose": _VERBOSE,
    }

    def __init__(self, schedule, verbose=0):
        super().__init__()
        values = validate(self._parameter_constraints,
                          {"schedule": schedule, "verbose": verbose}, "LearningRateScheduler")
        self.schedule = schedule
        self._arity = _schedule_arity(schedule)
        self.verbose = int(values["verbose"])

    def _current_lr(self):
        return float(self.model.optimizer.learning_rate)

    def on_epoch_begin(self, epoch, logs=None):
        # schedule(epoch) alone would undo a ReduceLROnPlateau cut: the cuts so
        # far (the optimizer's learning_rate_scale) apply on top of it;
        # schedule(epoch, lr) receives the cut rate itself.
        scale = float(getattr(self.model.optimizer, "learning_rate_scale", 1.0))
        if self._arity == 2:
            value = self.schedule(epoch, self._current_lr())
        elif self._arity == 1:
            value = _scaled(self.schedule(epoch), scale)
        else:
            try:
                value = self.schedule(epoch, self._current_lr())
            except TypeError:
                value = _scaled(self.schedule(epoch), scale)
        lr = _validate_lr(value, epoch, "LearningRateScheduler: `schedule`")
        dtype = getattr(self.model, "dtype", None)
        problem = None if dtype is None else learning_rate_dtype_problem(lr, dtype)
        if problem:
            # (fit would refuse it after on_epoch_begin too, without the schedule's name)
            raise ValueError(f"LearningRateScheduler: `schedule` returned {value!r} for "
                             f"epoch {epoch + 1} (schedule({epoch})); the network's "
                             f"learning_rate {problem}")
        self.model.optimizer.learning_rate = lr
        if self.verbose > 0:
            print(
                f"Epoch {epoch + 1}: LearningRateScheduler setting learning "
                f"rate to {lr}."
            )


# ---------------------------------------------------------------------------
# ReduceLROnPlateau
# ---------------------------------------------------------------------------

@delegate_to_rule
class ReduceLROnPlateau(Callback):
    """Reduce the learning rate when a monitored quantity stops improving.

    Parameters
    ----------
    monitor : str, default "val_loss"
        Log key to watch.
    factor : float, default 0.1
        Multiplier applied to the learning rate, ``0 < factor < 1``.
    patience : int, default 10
        The rate is cut at the end of the ``patience``-th consecutive
        non-improving epoch outside cooldown (0 and 1 both cut at the first).
    mode : {"auto", "min", "max"}, default "auto"
        Direction of improvement; ``"auto"`` is ``"max"`` if the monitor name
        (without ``val_``) contains ``"acc"`` or is ``"r2"``, else ``"min"``.
    min_delta : float, default 1e-4
        An epoch improves if ``current < best - min_delta`` (``"min"``) or
        ``current > best + min_delta`` (``"max"``).  Must be >= 0.
    cooldown : int, default 0
        Number of epochs after a cut that are not counted towards
        ``patience`` (as PyTorch; Keras' ``cooldown=c`` skips ``c - 1``).
    min_lr : float, default 0.0
        Lower bound of the learning rate.  Once the rate is at or below it no
        further reduction happens.
    verbose : int, default 0
        If > 0, print a message at each reduction.

    Attributes
    ----------
    best : float
        Best monitored value so far.
    wait : int
        Non-improving epochs counted since the last reset.
    cooldown_counter : int
        Remaining cooldown.
    monitor_mode : {"min", "max"}
        The resolved mode.

    Notes
    -----
    The rule is the one of :class:`descend.schedules.ReduceLROnPlateau`
    (``descend._plateau`` documents it step by step against Keras and
    PyTorch): identical to Keras 3 ``keras.callbacks.ReduceLROnPlateau``
    except that ``cooldown`` counts whole epochs.  A cut assigns
    ``max(lr * factor, min_lr)`` to ``model.optimizer.learning_rate`` (used
    from the next epoch on).

    On an optimizer whose learning rate is a schedule the cut composes with
    it: the optimizer's ``learning_rate_scale`` is multiplied by the cut, so
    every later epoch uses ``schedule(epoch) * learning_rate_scale`` (Keras
    refuses this combination; PyTorch chains schedulers the same way).  The
    scale is part of the optimizer's state: it survives later ``fit`` calls
    and save/load, as a cut of a constant rate does.

    A cut that would leave the rate positive but below the smallest normal
    number of the network's dtype (1.2e-38 for float32, where fit refuses
    a chosen rate: it trains nothing) sets it to 0.0, the end of the decay.

    A missing monitor warns once per ``fit``, at its start when fit's
    ``params["metrics"]`` lists the keys of the logs (else at the first
    epoch end that lacks it); NaN values count as no improvement.

    Examples
    --------
    >>> import descend as dn
    >>> cut = dn.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2)
    >>> class Model:                   # the attributes fit provides
    ...     optimizer = dn.optimizers.SGD(learning_rate=0.1)
    >>> cut.set_model(Model())
    >>> cut.on_train_begin()
    >>> for epoch, loss in enumerate([1.0, 0.9, 0.9, 0.9, 0.9, 0.9]):
    ...     cut.on_epoch_end(epoch, {"loss": loss})
    ...     print(epoch, Model.optimizer.learning_rate)
    0 0.1
    1 0.1
    2 0.1
    3 0.05
    4 0.05
    5 0.025
    """

    _parameter_constraints = {**_PLATEAU_CONSTRAINTS, "verbose": _VERBOSE}

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
        verbose=0,
    ):
        super().__init__()
        self.verbose = int(check(verbose, "verbose", _VERBOSE, "ReduceLROnPlateau"))
        self._rule = PlateauRule("ReduceLROnPlateau", monitor, factor, patience, mode,
                                 min_delta, cooldown, min_lr)
        self._warned_missing = False

    def _reset(self):
        self._rule.reset()
        self._warned_missing = False

    def on_train_begin(self, logs=None):
        self._reset()
        _warn_if_not_logged(self, "ReduceLROnPlateau")

    def in_cooldown(self):
        """True while the cooldown counter is positive."""
        return self._rule.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs or logs[self.monitor] is None:
            if not self._warned_missing:
                self._warned_missing = True
                warnings.warn(
                    _missing_key_message("ReduceLROnPlateau", self.monitor, logs),
                    RuntimeWarning,
                    stacklevel=outside_stacklevel(),
                )
            return
        current = _as_float(logs[self.monitor])
        if current is None:
            current = math.nan
        if self._rule.cut_due(current):
            self._cut(epoch)

    def _cut(self, epoch):
        optimizer = self.model.optimizer
        try:
            old_lr = float(optimizer.learning_rate)
        except (TypeError, ValueError):
            raise TypeError(
                "ReduceLROnPlateau needs model.optimizer.learning_rate to be a float, "
                f"got {optimizer.learning_rate!r}."
            ) from None
        new_lr = self._rule.cut(old_lr)
        dtype = getattr(self.model, "dtype", None)
        if dtype is not None:       # (fit refuses a positive rate the dtype flushes)
            new_lr = flush_cut_rate(new_lr, dtype)
        if new_lr < old_lr:
            optimizer.learning_rate = new_lr
            if hasattr(optimizer, "learning_rate_scale"):
                # composes with a schedule: later epochs use schedule(epoch) * scale
                optimizer.learning_rate_scale *= new_lr / old_lr
            if self.verbose > 0:
                print(
                    f"Epoch {epoch + 1}: ReduceLROnPlateau reducing "
                    f"learning rate to {new_lr}."
                )


# ---------------------------------------------------------------------------
# CSVLogger
# ---------------------------------------------------------------------------

def _open_csv(filename, mode):
    """The log file opened for the csv module: newline="" keeps its "\r\n" row
    ends and line breaks inside quoted fields as they are (the csv module's
    rule), UTF-8 whatever the locale."""
    return open(filename, mode, newline="", encoding="utf-8")


class CSVLogger(Callback):
    """Write the epoch logs to a CSV file, one row per epoch.

    Parameters
    ----------
    filename : str or os.PathLike
        Path of the CSV file.
    separator : str, default ","
        Single-character field delimiter (not a line break).
    append : bool, default False
        If True, append to an existing file (the header is written only if
        the file is missing or empty; rows follow the columns of an existing
        header, written with the same separator); if False, overwrite it.

    Raises
    ------
    ValueError
        At construction, if ``filename`` is a directory, or its directory
        does not exist, is not writable or lies under a symbolic link to
        nothing.

    Notes
    -----
    Follows Keras 3 ``keras.callbacks.CSVLogger``: the columns are
    ``"epoch"`` (the **0-based** epoch index, as in Keras) followed by the
    keys of the first epoch's logs in sorted order; the header is written
    once; a key missing in a later epoch is written as ``NA``; values are
    written with ``str()`` (so floats round-trip).  The file is opened at
    :meth:`on_train_begin`, flushed after every row and closed at
    :meth:`on_train_end`, which ``fit`` also calls after an early stop.
    Unlike Keras, no empty ``val_*`` columns are added when the first epoch
    has no validation metrics, and keys that first appear after the first
    epoch are dropped with a single warning rather than silently.

    Examples
    --------
    >>> import os, tempfile
    >>> import descend as dn
    >>> X, y = dn.datasets.load_digits()
    >>> net = dn.Sequential([dn.Dense(10)], input_dim=64, seed=0)
    >>> net = net.compile(loss="softmax_cross_entropy", optimizer="sgd")
    >>> path = os.path.join(tempfile.mkdtemp(), "log.csv")
    >>> history = net.fit(X, y, epochs=2, callbacks=[dn.callbacks.CSVLogger(path)],
    ...                   verbose=0)
    >>> with open(path) as f:
    ...     rows = f.read().splitlines()
    >>> rows[0]
    'epoch,accuracy,learning_rate,loss,samples_per_second,seconds'
    >>> [row.split(",")[0] for row in rows[1:]]
    ['0', '1']
    """

    _parameter_constraints = {
        "filename": ["path"],
        "separator": [_SingleCharacter()],
        "append": ["boolean"],
    }

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        values = validate(self._parameter_constraints, {
            "filename": filename, "separator": separator, "append": append}, "CSVLogger")
        if os.path.isdir(values["filename"]):
            raise ValueError(f"CSVLogger: filename {values['filename']!r} is a directory; "
                             "give a file name such as "
                             f"{os.path.join(values['filename'], 'log.csv')!r}")
        # here, not as a FileNotFoundError of open() at on_train_begin
        check_output_file(values["filename"], "filename", "CSVLogger")
        self.filename = values["filename"]
        self.separator = values["separator"]
        self.append = values["append"]
        self.keys = None
        self.csv_file = None
        self._writer = None

    def _close(self):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = None
        self._writer = None

    def on_train_begin(self, logs=None):
        self._close()  # in case a previous fit ended without on_train_end
        self.keys = None
        self._warned_extra = False
        if self.append:
            write_header = not (
                os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
            )
            mode = "a"
        else:
            write_header = True
            mode = "w"
        self._write_header = write_header
        if not write_header:
            self.keys = self._appended_columns()
        self.csv_file = _open_csv(self.filename, mode)

    def _appended_columns(self):
        """The columns of the file appended to (its header, after "epoch"): rows
        follow them (a key it lacks is dropped with the warning, a column the
        logs lack is NA) instead of running past the header. ValueError if
        the header is not CSVLogger's with this separator."""
        with _open_csv(self.filename, "r") as f:
            header = next(csv.reader(f, delimiter=self.separator), [])
        if not header:      # a blank first line: no columns to follow
            return None
        if header[0] != "epoch":
            raise ValueError(f"CSVLogger: cannot append to {self.filename!r}: its first line "
                             f"{self.separator.join(header)[:80]!r} is not a CSVLogger header "
                             f"with separator {self.separator!r} (epoch{self.separator}...)")
        return header[1:]

    @staticmethod
    def _format_value(value):
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value[()]
        if isinstance(value, (list, tuple, np.ndarray)):
            return "[" + ", ".join(str(v) for v in np.ravel(np.asarray(value, dtype=object))) + "]"
        return value

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.csv_file is None:
            raise RuntimeError(
                "CSVLogger: on_epoch_end was called before on_train_begin "
                "(the log file is not open)."
            )
        if self.keys is None:
            self.keys = sorted(logs)
        if self._writer is None:
            self._writer = csv.writer(self.csv_file, delimiter=self.separator)
            if self._write_header:
                self._writer.writerow(["epoch"] + self.keys)
        extra = sorted(set(logs) - set(self.keys))
        if extra and not self._warned_extra:
            self._warned_extra = True
            warnings.warn(
                f"CSVLogger: keys {extra} appeared after the first epoch and are "
                f"not written; the columns are fixed by the first epoch: "
                f"{['epoch'] + self.keys}.",
                RuntimeWarning,
                stacklevel=outside_stacklevel(),
            )
        row = [epoch] + [
            self._format_value(logs[k]) if k in logs else "NA" for k in self.keys
        ]
        self._writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        self._close()


# ---------------------------------------------------------------------------
# TerminateOnNaN
# ---------------------------------------------------------------------------

class TerminateOnNaN(Callback):
    """Stop training as soon as the loss becomes NaN or infinite.

    Checks ``logs["loss"]`` at every epoch end (and at batch end if the
    training loop reports batches) and sets ``model.stop_training = True``
    when it is not finite.  Missing losses are ignored.

    Parameters
    ----------
    verbose : int, default 1
        If > 0, print a message when terminating (Keras always prints).

    Attributes
    ----------
    terminated_epoch : int or None
        0-based epoch at which a non-finite loss was seen, or None.

    Notes
    -----
    Follows Keras ``keras.callbacks.TerminateOnNaN``, which checks after each
    batch; here the epoch loss is checked as well since descend reports
    losses per epoch.

    Examples
    --------
    >>> import descend as dn
    >>> class Model:                       # what fit passes to set_model
    ...     stop_training = False
    >>> nan_stop = dn.callbacks.TerminateOnNaN(verbose=0)
    >>> nan_stop.set_model(Model())
    >>> nan_stop.on_epoch_end(0, {"loss": 0.5}); nan_stop.model.stop_training
    False
    >>> nan_stop.on_epoch_end(1, {"loss": float("nan")}); nan_stop.model.stop_training
    True
    """

    _parameter_constraints = {"verbose": _VERBOSE}

    def __init__(self, verbose=1):
        super().__init__()
        self.verbose = int(check(verbose, "verbose", _VERBOSE, "TerminateOnNaN"))
        self.terminated_epoch = None
        self._epoch = None

    def on_train_begin(self, logs=None):
        self.terminated_epoch = None
        self._epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _check(self, logs, where, epoch):
        loss = (logs or {}).get("loss")
        # a float, a numpy scalar or array (a custom loop's per-output
        # losses), complex too: any NaN or inf element stops; a str or an
        # object is no loss (ignored, as a missing one)
        try:
            values = np.asarray(_as_float(loss) if isinstance(loss, str) else loss)
        except ValueError:      # a ragged list
            return
        if np.issubdtype(values.dtype, np.inexact) and not np.isfinite(values).all():
            if self.terminated_epoch is None:
                self.terminated_epoch = epoch
            if self.verbose > 0:    # a 0-d array prints as its number: "nan", "(1+infj)"
                print(f"{where}: invalid loss {values}, terminating training")
            self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        where = f"Batch {batch + 1}" if self._epoch is None else \
            f"Epoch {self._epoch + 1}, batch {batch + 1}"     # 1-based, as the epoch lines
        self._check(logs, where, self._epoch)

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, f"Epoch {epoch + 1}", epoch)


# ---------------------------------------------------------------------------
# TensorBoard: its own module, since it writes through tensorboardX (an
# optional extra, imported only when a TensorBoard callback is made)
# ---------------------------------------------------------------------------

from descend._tensorboard import TensorBoard  # noqa: E402  (needs Callback above)

__all__.append("TensorBoard")
