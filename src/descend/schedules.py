"""Learning-rate schedules (NumPy/stdlib only).

A schedule maps the **0-based index of the epoch about to be trained** to the
learning rate used for every update of that epoch: ``schedule(0)`` is the
rate of the first epoch.  Every schedule returns a Python ``float``.
Given as an optimizer's ``learning_rate``, ``fit`` evaluates it at the
index its callbacks see: ``epochs_trained`` counting on over fits, or
``k, k + 1, ...`` for ``fit(initial_epoch=k)`` (as a
``callbacks.LearningRateScheduler`` does with the same schedule).  A
positive rate below the smallest normal number of the network's dtype
(1.2e-38 for float32) stops ``fit`` with a ValueError naming the epoch: it
would train nothing; 0 is allowed, and :class:`ReduceLROnPlateau` cuts that
go below that bound give 0.0.

Most schedules are pure functions of the epoch.  :class:`ReduceLROnPlateau`
is stateful: the training loop calls :meth:`ReduceLROnPlateau.step` once
after each epoch with the monitored value, and the schedule returns the
current rate whatever the epoch.  All schedules have ``state_dict()`` /
``load_state_dict()`` (empty for the stateless ones) so a training loop can
checkpoint any schedule the same way.

:func:`get` turns a float, a schedule, a config dict or any callable
``epoch -> lr`` into a schedule.

Examples
--------
>>> from descend import schedules
>>> s = schedules.StepDecay(0.1, drop=0.5, step_size=2)
>>> [s(e) for e in range(5)]
[0.1, 0.1, 0.05, 0.05, 0.025]
>>> schedules.get(0.01)(7)
0.01
"""

from __future__ import annotations

import abc
import inspect
import math
import numbers
import warnings
from numbers import Integral, Real

from descend._plateau import PlateauRule, delegate_to_rule, missing_monitor_message
from descend._validation import (Interval, check, error_message, outside_stacklevel,
                                 short_repr, validate)

__all__ = [
    "LearningRateSchedule",
    "Constant",
    "StepDecay",
    "ExponentialDecay",
    "InverseTimeDecay",
    "CosineAnnealing",
    "LinearWarmup",
    "ReduceLROnPlateau",
    "LambdaSchedule",
    "get",
    "serialize",
]


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------
def _is_real(value):
    # bool is a numbers.Real (via int) but True as a learning rate is a bug.
    # (numpy.bool_ is not registered as numbers.Real, so it is rejected too.)
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_positive(name, value):
    """Return ``value`` as a finite float > 0, or raise naming ``name``."""
    return check(value, name, [Interval(Real, 0, closed="neither")])


def _check_non_negative(name, value):
    return check(value, name, [Interval(Real, 0)])


def _check_open_unit(name, value):
    return check(value, name, [Interval(Real, 0, 1, closed="neither")])


def _check_int(name, value, minimum):
    """Return ``value`` as an int >= ``minimum``, or raise naming ``name``."""
    return check(value, name, [Interval(Integral, minimum)])


def _check_epoch(epoch):
    return _check_int("epoch", epoch, 0)


# --------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------
class LearningRateSchedule(abc.ABC):
    """Base class of learning-rate schedules.

    Subclasses implement :meth:`_lr`, which receives a validated epoch; the
    base :meth:`__call__` validates the epoch and returns a ``float``.

    Attributes
    ----------
    name : str
        Snake-case registry name, also the ``"name"`` entry of the config.
    """

    name = "learning_rate_schedule"

    def __call__(self, epoch):
        """Return the learning rate for ``epoch``.

        Parameters
        ----------
        epoch : int
            0-based index of the epoch about to be trained.

        Returns
        -------
        float

        Raises
        ------
        TypeError
            If ``epoch`` is not an int.
        ValueError
            If ``epoch`` is negative, or the rate at ``epoch`` is beyond
            floating point (``(epoch + 1) ** power_t`` of a large
            ``power_t``, say): the message names the schedule and the epoch.
        """
        epoch = _check_epoch(epoch)
        try:
            return float(self._lr(epoch))
        except OverflowError as exc:
            raise ValueError(f"{self!r}: the learning rate of epoch {short_repr(epoch)} is "
                             f"beyond floating point ({exc}): choose settings whose rate "
                             "stays a float over the epochs trained") from None

    @abc.abstractmethod
    def _lr(self, epoch):
        """The learning rate at a validated epoch index (subclasses)."""

    def get_config(self):
        """Return ``{"name": ..., **params}``; ``get(config)`` rebuilds it.

        The config is JSON-serialisable except for :class:`LambdaSchedule`
        (and wrappers around one), whose config holds the Python callable.
        Configs hold constructor parameters only, never runtime state; see
        :meth:`state_dict`.
        """
        return {"name": self.name}

    def state_dict(self):
        """Return the mutable state as a plain dict (empty if stateless)."""
        return {}

    def load_state_dict(self, state):
        """Restore state produced by :meth:`state_dict`.

        Raises
        ------
        ValueError
            If ``state`` is not the state of this kind of schedule.
        """
        if state:
            raise ValueError(
                f"{type(self).__name__} is stateless; state must be an empty dict, "
                f"got {state!r}"
            )

    def __repr__(self):
        params = {k: v for k, v in self.get_config().items() if k != "name"}
        args = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return f"{type(self).__name__}({args})"


# --------------------------------------------------------------------------
# closed-form schedules
# --------------------------------------------------------------------------
class Constant(LearningRateSchedule):
    """Constant learning rate: ``lr(epoch) = learning_rate``.

    Parameters
    ----------
    learning_rate : float
        Finite, > 0.

    Raises
    ------
    ValueError
        If ``learning_rate`` is not finite and > 0.
    """

    name = "constant"

    def __init__(self, learning_rate):
        self.learning_rate = _check_positive("learning_rate", learning_rate)

    def _lr(self, epoch):
        return self.learning_rate

    def get_config(self):
        return {"name": self.name, "learning_rate": self.learning_rate}


class StepDecay(LearningRateSchedule):
    """Multiply the rate by ``drop`` every ``step_size`` epochs.

    ``lr(epoch) = initial_learning_rate * drop ** floor(epoch / step_size)``

    Parameters
    ----------
    initial_learning_rate : float
        Rate of epochs ``0 .. step_size - 1``; finite, > 0.
    drop : float, default 0.5
        Multiplicative factor, in (0, 1).
    step_size : int, default 10
        Epochs between drops, >= 1.

    Raises
    ------
    ValueError
        If a parameter is out of range.
    """

    name = "step_decay"

    def __init__(self, initial_learning_rate, drop=0.5, step_size=10):
        self.initial_learning_rate = _check_positive(
            "initial_learning_rate", initial_learning_rate
        )
        self.drop = _check_open_unit("drop", drop)
        self.step_size = _check_int("step_size", step_size, 1)

    def _lr(self, epoch):
        return self.initial_learning_rate * self.drop ** (epoch // self.step_size)

    def get_config(self):
        return {
            "name": self.name,
            "initial_learning_rate": self.initial_learning_rate,
            "drop": self.drop,
            "step_size": self.step_size,
        }


class ExponentialDecay(LearningRateSchedule):
    """Exponential decay, as Keras ``ExponentialDecay`` with epochs as steps.

    ``lr(epoch) = initial_learning_rate * decay_rate ** (epoch / decay_epochs)``

    With ``staircase=True`` the exponent is ``floor(epoch / decay_epochs)``,
    so the rate changes only every ``decay_epochs`` epochs.

    Parameters
    ----------
    initial_learning_rate : float
        Rate at epoch 0; finite, > 0.
    decay_rate : float
        Factor applied per ``decay_epochs`` epochs, in (0, 1).
    decay_epochs : float, default 1
        Epochs per factor of ``decay_rate``; finite, > 0 (need not be an
        integer, as Keras' ``decay_steps``).
    staircase : bool, default False
        Floor the exponent.

    Raises
    ------
    ValueError
        If a parameter is out of range.
    TypeError
        If ``staircase`` is not a bool.
    """

    name = "exponential_decay"

    def __init__(self, initial_learning_rate, decay_rate, decay_epochs=1, staircase=False):
        self.initial_learning_rate = _check_positive(
            "initial_learning_rate", initial_learning_rate
        )
        self.decay_rate = _check_open_unit("decay_rate", decay_rate)
        self.decay_epochs = _check_positive("decay_epochs", decay_epochs)
        self.staircase = check(staircase, "staircase", ["boolean"])

    def _lr(self, epoch):
        p = epoch / self.decay_epochs
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate**p

    def get_config(self):
        return {
            "name": self.name,
            "initial_learning_rate": self.initial_learning_rate,
            "decay_rate": self.decay_rate,
            "decay_epochs": self.decay_epochs,
            "staircase": self.staircase,
        }


class InverseTimeDecay(LearningRateSchedule):
    """Inverse scaling, scikit-learn's ``learning_rate="invscaling"``.

    ``lr(epoch) = initial_learning_rate / (epoch + 1) ** power_t``

    scikit-learn writes this ``eta = eta0 / pow(t, power_t)`` with a time
    step ``t`` that starts at 1 (for ``SGDClassifier`` ``t`` counts sample
    updates; ``MLPClassifier`` evaluates ``(t + 1) ** power_t`` with ``t``
    the number of samples seen at the end of each epoch).  Here
    ``t = epoch + 1`` is the 1-based **epoch** number, so epoch 0 uses
    ``initial_learning_rate`` and the rate falls per epoch, not per sample.

    This is *not* Keras' ``InverseTimeDecay``
    (``lr0 / (1 + decay_rate * step / decay_steps)``).

    Parameters
    ----------
    initial_learning_rate : float
        Rate at epoch 0; finite, > 0.
    power_t : float, default 0.5
        Exponent; finite, > 0.

    Raises
    ------
    ValueError
        If a parameter is out of range.
    """

    name = "inverse_time_decay"

    def __init__(self, initial_learning_rate, power_t=0.5):
        self.initial_learning_rate = _check_positive(
            "initial_learning_rate", initial_learning_rate
        )
        self.power_t = _check_positive("power_t", power_t)

    def _lr(self, epoch):
        return self.initial_learning_rate / (epoch + 1) ** self.power_t

    def get_config(self):
        return {
            "name": self.name,
            "initial_learning_rate": self.initial_learning_rate,
            "power_t": self.power_t,
        }


class CosineAnnealing(LearningRateSchedule):
    """Cosine annealing, optionally with warm restarts (SGDR).

    SGDR [1]_ eq. (5)::

        lr = eta_min + (initial_learning_rate - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2

    * ``T_mult=None`` (no restarts): ``T_cur = epoch`` and ``T_i = T_max``;
      this is the closed form of PyTorch's ``CosineAnnealingLR``.  The rate
      falls from ``initial_learning_rate`` at epoch 0 to ``eta_min`` at epoch
      ``T_max`` and, past ``T_max``, the cosine simply continues: it climbs
      back to ``initial_learning_rate`` at ``2 * T_max`` and repeats with
      period ``2 * T_max``.
    * ``T_mult`` an int >= 1 (warm restarts, PyTorch's
      ``CosineAnnealingWarmRestarts`` with ``T_0 = T_max``): the first cycle
      lasts ``T_0`` epochs, each following cycle ``T_mult`` times longer than
      the one before, so cycle ``k`` (0-based) starts at epoch
      ``T_0 * (T_mult**k - 1) / (T_mult - 1)`` (``k * T_0`` if ``T_mult == 1``)
      and lasts ``T_i = T_0 * T_mult**k`` epochs.  ``T_cur`` is the number of
      epochs since the cycle started, so the rate jumps back to
      ``initial_learning_rate`` at every restart and never quite reaches
      ``eta_min``.

    Parameters
    ----------
    initial_learning_rate : float
        Maximum rate; finite, > 0.
    T_max : int
        Half-period without restarts, first cycle length ``T_0`` with
        restarts; >= 1.
    eta_min : float, default 0.0
        Minimum rate, in ``[0, initial_learning_rate]``.
    T_mult : int or None, default None
        Cycle-length multiplier (>= 1) enabling warm restarts, or None.

    Raises
    ------
    ValueError
        If a parameter is out of range.

    References
    ----------
    .. [1] I. Loshchilov and F. Hutter, "SGDR: Stochastic Gradient Descent
       with Warm Restarts", ICLR 2017.
    """

    name = "cosine_annealing"

    def __init__(self, initial_learning_rate, T_max, eta_min=0.0, T_mult=None):
        self.initial_learning_rate = _check_positive(
            "initial_learning_rate", initial_learning_rate
        )
        self.T_max = _check_int("T_max", T_max, 1)
        self.eta_min = _check_non_negative("eta_min", eta_min)
        if self.eta_min > self.initial_learning_rate:
            raise ValueError(error_message(
                "eta_min", f"<= initial_learning_rate ({self.initial_learning_rate!r})",
                self.eta_min))
        self.T_mult = None if T_mult is None else _check_int("T_mult", T_mult, 1)

    def _cycle_position(self, epoch):
        """Return ``(T_cur, T_i)`` for ``epoch``."""
        if self.T_mult is None:
            return epoch, self.T_max
        if self.T_mult == 1:
            return epoch % self.T_max, self.T_max
        # Walk cycle by cycle in exact integer arithmetic; PyTorch's
        # log-based closed form can misplace a restart by one epoch through
        # floating-point rounding.  The number of cycles grows like
        # log(epoch), so this is cheap.
        t_cur, t_i = epoch, self.T_max
        while t_cur >= t_i:
            t_cur -= t_i
            t_i *= self.T_mult
        return t_cur, t_i

    def _lr(self, epoch):
        t_cur, t_i = self._cycle_position(epoch)
        cosine = (1.0 + math.cos(math.pi * t_cur / t_i)) / 2.0
        return self.eta_min + (self.initial_learning_rate - self.eta_min) * cosine

    def get_config(self):
        return {
            "name": self.name,
            "initial_learning_rate": self.initial_learning_rate,
            "T_max": self.T_max,
            "eta_min": self.eta_min,
            "T_mult": self.T_mult,
        }


# --------------------------------------------------------------------------
# wrappers
# --------------------------------------------------------------------------
class LambdaSchedule(LearningRateSchedule):
    """Wrap any callable ``epoch -> learning rate``.

    ``lr(epoch) = float(fn(epoch))``

    Parameters
    ----------
    fn : callable
        Called with the 0-based epoch (an ``int``); must return a finite
        real number >= 0 (0 is allowed, e.g. to freeze training for an
        epoch).

    Raises
    ------
    TypeError
        At construction if ``fn`` is not callable; when called, if ``fn``
        returns something that is not a real number.
    ValueError
        When called, if ``fn`` returns NaN, an infinity or a negative number
        (the message names the epoch and the value).

    Notes
    -----
    ``get_config()`` holds ``fn`` itself, so it round-trips through
    :func:`get` within a process but is not JSON-serialisable.
    """

    name = "lambda_schedule"

    def __init__(self, fn):
        self.fn = check(fn, "fn", [callable])

    def _lr(self, epoch):
        value = self.fn(epoch)
        if not _is_real(value):
            raise TypeError(
                f"learning-rate function returned {type(value).__name__} {value!r} for "
                f"epoch {epoch + 1} (fn({epoch})); expected a finite real number >= 0"
            )
        value = float(value)
        if not math.isfinite(value) or value < 0.0:
            raise ValueError(
                f"learning-rate function returned {value!r} for epoch {epoch + 1} "
                f"(fn({epoch})); expected a finite real number >= 0"
            )
        return value

    def get_config(self):
        return {"name": self.name, "fn": self.fn}


class LinearWarmup(LearningRateSchedule):
    """Linear warm-up in front of another schedule.

    ::

        lr(epoch) = start_learning_rate
                    + (schedule(warmup_epochs) - start_learning_rate)
                      * epoch / warmup_epochs          if epoch < warmup_epochs
        lr(epoch) = schedule(epoch)                    otherwise

    The wrapped schedule's clock is **not** shifted: after the warm-up it is
    evaluated at the true epoch, so the warm-up replaces (rather than
    delays) its first ``warmup_epochs`` epochs and the two pieces meet
    continuously at ``epoch == warmup_epochs``.  This is Keras' warm-up
    (as in ``CosineDecay(warmup_steps=...)``) with the warm-up target set to
    ``schedule(warmup_epochs)``.

    Epoch 0 uses ``start_learning_rate``; with the default 0.0 the first
    epoch therefore makes no update.  Pass a small positive
    ``start_learning_rate`` if that epoch should train.

    Parameters
    ----------
    schedule : LearningRateSchedule, float, dict or callable
        Anything :func:`get` accepts (a float warms up to a constant rate).
        :class:`ReduceLROnPlateau` is not accepted: its rate depends on the
        metric history, not on the epoch, so ``schedule(warmup_epochs)`` has
        no meaning during the warm-up.
    warmup_epochs : int
        Length of the warm-up, >= 1.
    start_learning_rate : float, default 0.0
        Rate at epoch 0; finite, >= 0.

    Raises
    ------
    TypeError
        If ``schedule`` cannot be turned into a schedule, or is a
        :class:`ReduceLROnPlateau`.
    ValueError
        If a parameter is out of range.
    """

    name = "linear_warmup"

    def __init__(self, schedule, warmup_epochs, start_learning_rate=0.0):
        schedule = get(schedule)
        if isinstance(schedule, ReduceLROnPlateau):
            raise TypeError(
                "schedule must be an epoch-based schedule; ReduceLROnPlateau cannot be "
                "wrapped by LinearWarmup"
            )
        self.schedule = schedule
        self.warmup_epochs = _check_int("warmup_epochs", warmup_epochs, 1)
        self.start_learning_rate = _check_non_negative(
            "start_learning_rate", start_learning_rate
        )

    def _lr(self, epoch):
        if epoch >= self.warmup_epochs:
            return self.schedule(epoch)
        target = self.schedule(self.warmup_epochs)
        fraction = epoch / self.warmup_epochs
        return self.start_learning_rate + (target - self.start_learning_rate) * fraction

    def get_config(self):
        return {
            "name": self.name,
            "schedule": self.schedule.get_config(),
            "warmup_epochs": self.warmup_epochs,
            "start_learning_rate": self.start_learning_rate,
        }

    # A user-defined wrapped schedule may carry state; pass it through.
    def state_dict(self):
        return {"schedule": self.schedule.state_dict()}

    def load_state_dict(self, state):
        if not isinstance(state, dict) or set(state) != {"schedule"}:
            raise ValueError(
                f"state must be a dict with the single key 'schedule', got {state!r}"
            )
        self.schedule.load_state_dict(state["schedule"])


# --------------------------------------------------------------------------
# stateful schedule
# --------------------------------------------------------------------------
@delegate_to_rule
class ReduceLROnPlateau(LearningRateSchedule):
    """Reduce the rate when a monitored metric stops improving.

    Usage: after each epoch the training loop calls :meth:`observe` with the
    epoch's logs (``fit`` does), or ``step(value)`` with the value of
    ``monitor`` (as PyTorch's ``scheduler.step(val_loss)``); the rate
    returned by ``schedule(epoch)`` (whatever ``epoch``) is the current one,
    so a reduction decided after epoch ``e`` applies from epoch ``e + 1``.

    The rule is the one of :class:`descend.callbacks.ReduceLROnPlateau`,
    written once in ``descend._plateau``:

    * ``value`` *improves* on ``best`` if ``value < best - min_delta``
      (mode ``"min"``) or ``value > best + min_delta`` (mode ``"max"``);
      ``min_delta`` is an absolute threshold, as in Keras.  ``best`` starts
      at +inf (min) or -inf (max), so the first finite value improves.  An
      improvement sets ``best = value`` and ``wait = 0``.  NaN never
      improves.
    * For ``cooldown`` steps after a reduction, non-improving values are not
      counted (improvements still update ``best``).
    * Otherwise a non-improving value increments ``wait``; when
      ``wait >= patience`` the rate becomes
      ``max(lr * factor, min_lr)``, ``wait`` is reset and the cooldown
      starts.  Nothing happens once the rate is already at ``min_lr``.

    So with ``patience = p`` the rate drops right after the ``p``-th
    consecutive non-improving epoch (Keras; PyTorch's ``patience=p - 1``),
    and after a reduction exactly ``cooldown`` epochs are ignored (PyTorch;
    Keras' implementation ignores ``cooldown - 1``).

    Parameters
    ----------
    initial_learning_rate : float
        Rate until the first reduction; finite, > 0.
    monitor : str, default "val_loss"
        Key of the epoch logs read by :meth:`observe` (also decides
        ``mode="auto"``).
    factor : float, default 0.1
        Reduction factor, in (0, 1).
    patience : int, default 10
        Non-improving epochs before a reduction, >= 0 (0 and 1 both cut at
        the first).
    mode : {"auto", "min", "max"}, default "auto"
        Whether lower or higher values are better.  ``"auto"`` picks
        ``"max"`` if ``monitor`` without a ``"val_"`` prefix contains
        ``"acc"`` (e.g. ``"val_accuracy"``, as Keras) or is ``"r2"``, and
        ``"min"`` otherwise.
    min_delta : float, default 1e-4
        Minimum absolute change that counts as an improvement, >= 0.
    cooldown : int, default 0
        Epochs ignored after a reduction, >= 0.
    min_lr : float, default 0.0
        Lower bound on the rate, in ``[0, initial_learning_rate]``.

    Raises
    ------
    ValueError
        If a parameter is out of range or ``mode`` is unknown.
    TypeError
        If a parameter has the wrong type.

    References
    ----------
    .. [1] Keras ``keras.callbacks.ReduceLROnPlateau``.
    .. [2] PyTorch ``torch.optim.lr_scheduler.ReduceLROnPlateau``.

    Examples
    --------
    >>> s = ReduceLROnPlateau(0.1, monitor="loss", factor=0.5, patience=2)
    >>> [s.step(loss) for loss in [1.0, 0.9, 0.9, 0.9, 0.9, 0.9]]
    [0.1, 0.1, 0.1, 0.05, 0.05, 0.025]
    """

    name = "reduce_lr_on_plateau"
    _STATE_KEYS = ("learning_rate", "best", "wait", "cooldown_counter")
    _STATE_CONSTRAINTS = {
        "state['learning_rate']": [Interval(Real, 0, None, closed="neither")],
        "state['best']": [Interval(Real, finite=False)],
        "state['wait']": [Interval(Integral, 0, None)],
        "state['cooldown_counter']": [Interval(Integral, 0, None)],
    }
    _parameter_constraints = {"initial_learning_rate": [Interval(Real, 0, None,
                                                                 closed="neither")]}

    def __init__(
        self,
        initial_learning_rate,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
    ):
        owner = "ReduceLROnPlateau"
        self.initial_learning_rate = check(initial_learning_rate, "initial_learning_rate",
                                           self._parameter_constraints["initial_learning_rate"],
                                           owner)
        self._rule = PlateauRule(owner, monitor, factor, patience, mode, min_delta, cooldown,
                                 min_lr)
        if self.min_lr > self.initial_learning_rate:
            raise ValueError(error_message(
                "min_lr", f"<= initial_learning_rate ({self.initial_learning_rate!r})",
                self.min_lr, owner))
        self.reset()

    def reset(self):
        """Return to the initial state (initial rate, no history)."""
        self.learning_rate = self.initial_learning_rate
        self._rule.reset()
        self._warned_missing = False

    def step(self, metric_value):
        """Record the monitored value of the epoch that just finished.

        Parameters
        ----------
        metric_value : float
            Value of ``monitor`` for that epoch.  +/-inf is accepted (a
            diverged loss simply does not improve), so is NaN (never an
            improvement, as in Keras and PyTorch).

        Returns
        -------
        float
            The learning rate for the next epoch.

        Raises
        ------
        TypeError
            If ``metric_value`` is not a real number.
        """
        try:
            # float() would also accept "0.5" or True; a monitored value of those
            # types means the wrong log entry was passed.
            if isinstance(metric_value, (str, bytes, bool)):
                raise TypeError
            value = float(metric_value)
        except (TypeError, ValueError):
            raise TypeError(error_message("metric_value", "a real number", metric_value,
                                          "ReduceLROnPlateau.step")) from None
        if self._rule.cut_due(value):
            self.learning_rate = self._rule.cut(self.learning_rate)
        return self.learning_rate

    def observe(self, logs):
        """Step with ``logs[monitor]``; warn (once until :meth:`reset`) if absent.

        This is what ``fit`` calls after each epoch, with the epoch's logs
        (the same dict the callbacks receive).

        Returns
        -------
        float
            The learning rate for the next epoch.
        """
        logs = logs or {}
        if logs.get(self.monitor) is None:
            if not self._warned_missing:
                self._warned_missing = True
                warnings.warn(missing_monitor_message(
                    "schedules.ReduceLROnPlateau", self.monitor, logs)
                    + " The learning rate is not reduced.", RuntimeWarning, stacklevel=outside_stacklevel())
            return self.learning_rate
        return self.step(logs[self.monitor])

    def _lr(self, epoch):
        return self.learning_rate

    def get_config(self):
        return {
            "name": self.name,
            "initial_learning_rate": self.initial_learning_rate,
            "monitor": self.monitor,
            "factor": self.factor,
            "patience": self.patience,
            "mode": self.mode,
            "min_delta": self.min_delta,
            "cooldown": self.cooldown,
            "min_lr": self.min_lr,
        }

    def state_dict(self):
        """Return ``{"learning_rate", "best", "wait", "cooldown_counter"}``.

        ``best`` is +/-inf before the first :meth:`step`.
        """
        return {
            "learning_rate": self.learning_rate,
            "best": self.best,
            "wait": self.wait,
            "cooldown_counter": self.cooldown_counter,
        }

    def load_state_dict(self, state):
        """Restore a state produced by :meth:`state_dict`.

        Raises
        ------
        ValueError
            If keys are missing or extra, or a value is out of range.
        TypeError
            If a value has the wrong type.
        """
        if not isinstance(state, dict) or set(state) != set(self._STATE_KEYS):
            raise ValueError(
                f"state must be a dict with keys {self._STATE_KEYS}, got {state!r}"
            )
        values = validate(self._STATE_CONSTRAINTS,
                          {f"state[{key!r}]": state[key] for key in self._STATE_KEYS})
        self.learning_rate = values["state['learning_rate']"]
        self.best = values["state['best']"]
        self.wait = values["state['wait']"]
        self.cooldown_counter = values["state['cooldown_counter']"]


# --------------------------------------------------------------------------
# lookup and (de)serialisation
# --------------------------------------------------------------------------
_CLASSES = (
    Constant,
    StepDecay,
    ExponentialDecay,
    InverseTimeDecay,
    CosineAnnealing,
    LinearWarmup,
    ReduceLROnPlateau,
    LambdaSchedule,
)

_REGISTRY = {}
for _cls in _CLASSES:
    _REGISTRY[_cls.name] = _cls
    _REGISTRY[_cls.__name__] = _cls
del _cls


def _from_config(config):
    if "name" not in config:
        raise ValueError(
            f"identifier config dict must have a 'name' entry, got keys {sorted(config)!r}"
        )
    name = config["name"]
    try:
        cls = _REGISTRY[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(c.name for c in _CLASSES))
        raise ValueError(
            f"unknown schedule {name!r}; valid names are: {valid} "
            "(CamelCase class names are accepted too)"
        ) from None
    params = {k: v for k, v in config.items() if k != "name"}
    # Check the keys against the constructor so that a stray key is reported
    # as a bad config (ValueError), not as a bad call.
    try:
        inspect.signature(cls).bind(**params)
    except TypeError as exc:
        raise ValueError(f"invalid config for schedule {name!r}: {exc}") from None
    return cls(**params)


def get(identifier, name="identifier"):
    """Resolve ``identifier`` to a :class:`LearningRateSchedule`.

    Parameters
    ----------
    identifier : float, LearningRateSchedule, dict or callable
        * a real number: :class:`Constant` learning rate;
        * a schedule instance, returned unchanged;
        * a config dict ``{"name": ..., **params}`` from
          :meth:`LearningRateSchedule.get_config` / :func:`serialize`
          (nested schedule configs, as in :class:`LinearWarmup`, are
          resolved too);
        * any other callable ``epoch -> lr``, wrapped in
          :class:`LambdaSchedule`.
    name : str, default "identifier"
        The argument's name in the TypeError's message (an optimizer passes
        ``"learning_rate"``, so its users read the name they wrote).

    Returns
    -------
    LearningRateSchedule

    Raises
    ------
    TypeError
        If ``identifier`` is of any other type (including a bool, a string
        or a class).
    ValueError
        If a number is not a valid learning rate, or a config dict is
        malformed or names an unknown schedule.

    Examples
    --------
    >>> get(0.1)
    Constant(learning_rate=0.1)
    >>> get({"name": "step_decay", "initial_learning_rate": 0.1})
    StepDecay(initial_learning_rate=0.1, drop=0.5, step_size=10)
    """
    if isinstance(identifier, LearningRateSchedule):
        return identifier
    if _is_real(identifier):
        return Constant(identifier)
    if isinstance(identifier, dict):
        return _from_config(identifier)
    # A class is callable, but calling it with an epoch builds an object,
    # not a learning rate.
    if callable(identifier) and not isinstance(identifier, type):
        return LambdaSchedule(identifier)
    raise TypeError(error_message(
        name, "a learning rate (float), a LearningRateSchedule, a config dict or a "
        "callable epoch -> lr", identifier))


def serialize(schedule):
    """Return the config dict of a schedule (inverse of :func:`get`).

    Raises
    ------
    TypeError
        If ``schedule`` is not a :class:`LearningRateSchedule`.
    """
    check(schedule, "schedule", [LearningRateSchedule])
    return schedule.get_config()
