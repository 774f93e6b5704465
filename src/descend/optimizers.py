"""Gradient-descent optimizers; the updates run in ``_optim.pyx``.

Every optimizer updates each parameter array in one compiled pass, both in
the fused epoch loop of ``fit`` and in :meth:`Optimizer.apply_gradients`.
Notation: w a parameter, g its gradient (of the mean batch loss plus
penalties), lr the learning rate, wd the weight decay, t the update count
starting at 1. Biases are exempt from weight decay unless ``decay_bias=True``
(PyTorch and Keras decay every parameter unless told otherwise).

Before the update, gradients may be clipped: ``clipnorm`` rescales each
parameter array's gradient to norm <= clipnorm, ``global_clipnorm`` rescales
all of them together to global norm <= global_clipnorm, both by the factor
``min(1, c / (norm + 1e-6))`` of ``torch.nn.utils.clip_grad_norm_`` (Keras's
``c / max(norm, c)`` has no 1e-6: a clipped step differs by about
1e-6 / norm, relatively), ``clipvalue`` clips each element to
[-clipvalue, clipvalue] (as Keras). Only one of the three may be set.
"""
import abc
import numbers
from numbers import Real

import numpy as np

from descend import _aligned, _optim, _threads, schedules
from descend._contract import OptimizerKind
from descend._validation import (Interval, check, check_array_like, check_float,
                                 check_team_size, error_message, flush_cut_rate,
                                 learning_rate_dtype_problem, refuse_unknown_keywords)

# the kernels' update codes (descend._contract.OptimizerKind: one definition)
SGD_KIND, ADAGRAD_KIND, RMSPROP_KIND, ADAM_KIND = (
    OptimizerKind.SGD, OptimizerKind.ADAGRAD, OptimizerKind.RMSPROP, OptimizerKind.ADAM)


# PyTorch's names of the hyperparameters (lr also older Keras's), for the
# TypeError a misnamed keyword gets
_OTHER_LIBRARIES_NAMES = {
    name: f"descend's name: {ours}" for name, ours in (
        ("lr", "learning_rate"), ("betas", "beta_1 and beta_2"), ("beta1", "beta_1"),
        ("beta2", "beta_2"), ("eps", "epsilon"), ("alpha", "rho"))}

_POSITIVE = Interval(Real, 0.0, None, closed="neither")
_NON_NEGATIVE = Interval(Real, 0.0, None)
_FRACTION = Interval(Real, 0.0, 1.0, closed="left")      # [0, 1): a decay rate
_CLIP_SETTINGS = ("clipnorm", "global_clipnorm", "clipvalue")


class Optimizer(abc.ABC):
    """Base class: learning rate (float or schedule), decay and clipping.

    Parameters
    ----------
    learning_rate : float > 0, or a schedule / callable epoch -> float
        A schedule is evaluated at the start of every epoch of ``fit``, at
        the 0-based epoch index its callbacks see (see ``fit``'s
        ``initial_epoch``); the value used is recorded in the history. A
        positive rate below the smallest normal number of the network's
        dtype (1.2e-38 for float32) is refused by compile and fit, from a
        schedule too: it would train nothing.
    weight_decay : float >= 0
    decay_bias : bool, default False
        Apply weight decay to biases too.
    clipnorm, global_clipnorm, clipvalue : float > 0 or None

    Attributes
    ----------
    learning_rate : float
        The learning rate of the next update (callbacks may assign it).
    learning_rate_scale : float
        Product of the cuts of ``callbacks.ReduceLROnPlateau`` (1.0 at
        first): with a schedule, the rate of an epoch is
        ``schedule(epoch) * learning_rate_scale``, so a cut composes with the
        schedule instead of being undone by it. Part of the state
        (:meth:`get_state`).
    iterations : int
        Number of updates done (t).
    state : list of list of ndarray
        Per parameter array, the optimizer's state arrays (names in
        ``state_names``), created by :meth:`build`.
    param_names : list of str or None
        The names of the parameters given to :meth:`build`: the keys of
        :meth:`state_dict` are ``"<param name>.<state name>"``.
    """
    kind = None
    state_names = ()
    # every hyperparameter's constraints (descend._validation), but the
    # learning rate's (a float or a schedule): checked by the constructor and
    # again by compile and each fit (check_settings), as callers may assign
    # them in between
    _constraints = {"weight_decay": [_NON_NEGATIVE], "decay_bias": ["boolean"],
                    **{name: [None, _POSITIVE] for name in _CLIP_SETTINGS}}

    def __init__(self, learning_rate, weight_decay=0.0, decay_bias=False,
                 clipnorm=None, global_clipnorm=None, clipvalue=None, **unknown):
        # named for the subclass, with descend's name for PyTorch's
        refuse_unknown_keywords(type(self).__name__, unknown, _OTHER_LIBRARIES_NAMES)
        if isinstance(learning_rate, (int, float, np.floating)) and not isinstance(
                learning_rate, bool):
            self.schedule = None
            self.learning_rate = check_float(learning_rate, "learning_rate", minimum=0.0,
                                             min_inclusive=False)
        else:
            self.schedule = schedules.get(learning_rate, name="learning_rate")
            self.learning_rate = float(self.schedule(0))
        self._set_settings(weight_decay=weight_decay, decay_bias=decay_bias, clipnorm=clipnorm,
                           global_clipnorm=global_clipnorm, clipvalue=clipvalue)
        Optimizer._check_combinations(self, "")     # (a subclass's settings come later)
        self.iterations = 0
        self.learning_rate_scale = 1.0
        self.state = None
        self.param_names = None

    def __setstate__(self, state):
        # as Dense.__setstate__: unpickled state arrays are aligned again
        self.__dict__.update(state)
        if self.__dict__.get("state") is not None:
            self.state = [[_aligned.realigned(a) for a in s] for s in self.state]

    def __copy__(self):
        # as Dense.__copy__: the same state list and arrays, whatever their alignment
        return _aligned.shallow_copy(self)

    def __getstate__(self):
        # pickle / deepcopy read the state as get_state does (RuntimeError while
        # another thread trains a network with this optimizer)
        _threads.check_consistent_read(self, "pickle or copy.deepcopy")
        return self.__dict__

    # -- hyperparameters ---------------------------------------------------
    def _set_settings(self, **values):
        """Assign hyperparameters, each checked (and converted) by its constraints."""
        for name, value in values.items():
            setattr(self, name, check(value, name, self._constraints[name]))

    def _check_combinations(self, prefix):
        """ValueError for settings that are valid one by one but not together."""
        given = [prefix + name for name in _CLIP_SETTINGS if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"set at most one of clipnorm, global_clipnorm and clipvalue, "
                             f"got {given}")

    def check_settings(self):
        """Check every hyperparameter as it stands: a caller may have assigned
        one since construction (``optimizer.momentum = 1.5``). Run by
        compile, fit, partial_fit and apply_gradients (through
        :meth:`check_dtype`); the learning rate is checked on its own.

        Raises
        ------
        TypeError, ValueError
            Naming ``optimizer.<name>``, what it must be and what it is; no
            setting changes.
        """
        checked = {name: check(getattr(self, name), f"optimizer.{name}", specs)
                   for name, specs in self._constraints.items()}
        self._check_combinations("optimizer.")
        self.__dict__.update(checked)

    # -- settings shared with the kernels -----------------------------------
    @abc.abstractmethod
    def kernel_config(self):
        """The dict read by the compiled update (kind and hyperparameters)."""

    def clip_settings(self):
        return (self.clipnorm or 0.0, self.global_clipnorm or 0.0, self.clipvalue or 0.0)

    def check_dtype(self, dtype):
        """Check the hyperparameters (:meth:`check_settings`) and that they
        hold in parameters of `dtype`.

        Raises
        ------
        TypeError, ValueError
            From :meth:`check_settings`.
        ValueError
            ``epsilon`` (Adagrad, RMSprop, Adam, AdamW) below the smallest
            normal number of `dtype` (1.2e-38 for float32): the updates
            flush subnormal numbers to zero, and a zero gradient would then
            divide 0 by 0. A positive ``learning_rate`` below that smallest
            normal number: it would train nothing (1e-46 is 0.0 in float32);
            0, which a callback may assign to pause training, passes.
            ``learning_rate`` or ``epsilon`` above the largest finite number
            of `dtype` (3.4e38 for float32): the update computes in `dtype`,
            where either would be infinite.
        """
        self.check_settings()
        epsilon = getattr(self, "epsilon", None)
        info = np.finfo(dtype)
        # Python numbers: a numpy scalar of another width compared with them
        # would warn of its cast; bounds printed in full (tiny.item()!r)
        tiny, largest, name = info.tiny.item(), info.max.item(), np.dtype(dtype).name
        # (a value that is not a number is the type checks' to refuse)
        settings = {key: value.item() if isinstance(value, np.generic) else value
                    for key, value in (("learning_rate", self.learning_rate),
                                       ("epsilon", epsilon))
                    if isinstance(value, numbers.Real)}
        if "epsilon" in settings and settings["epsilon"] < tiny:
            raise ValueError(f"epsilon must be at least {tiny!r} (the smallest normal "
                             f"{name}: the updates flush smaller numbers to "
                             f"zero, and a zero gradient would give 0/0), got {epsilon!r}")
        if "learning_rate" in settings:
            problem = learning_rate_dtype_problem(settings["learning_rate"], dtype)
            if problem:
                raise ValueError(f"learning_rate {problem}, got {settings['learning_rate']!r}")
        if "epsilon" in settings and settings["epsilon"] > largest:
            raise ValueError(f"epsilon must be at most {largest!r} (the largest finite "
                             f"{name}: the update computes in {name}), got {epsilon!r}")

    def check_learning_rate(self, dtype):
        """Check the learning rate as it stands (a callback may have assigned
        it): a finite float >= 0 (bool refused) that `dtype` holds: 0 or at
        least its smallest normal number, at most its largest.

        Raises
        ------
        TypeError, ValueError
            Naming ``optimizer.learning_rate`` (or ``learning_rate``, for a
            value `dtype` does not hold: :meth:`check_dtype`).
        """
        self.learning_rate = check_float(self.learning_rate, "optimizer.learning_rate",
                                         minimum=0.0)
        self.check_dtype(dtype)

    def learning_rate_for_epoch(self, epoch, dtype=None):
        """Set ``learning_rate`` for an epoch: the schedule (if any) at `epoch`
        times ``learning_rate_scale``, else the rate as it stands, checked.

        Parameters
        ----------
        epoch : int
            The 0-based index of the epoch, as fit's callbacks see it (with
            ``fit(initial_epoch=k)``, k for its first epoch).
        dtype : numpy dtype or None
            The parameters' dtype: a schedule's value is checked against it
            here, naming the schedule and the epoch (None: not checked; fit
            checks the rate again after ``on_epoch_begin``).

        Returns
        -------
        float
            The learning rate of the epoch.

        Raises
        ------
        ValueError
            The schedule gave NaN, an infinity or a negative value, or, with
            `dtype`, a value `dtype` does not hold (a positive rate below
            its smallest normal number, or above its largest); a rate
            assigned by a caller that is not a finite float >= 0.
            ``learning_rate`` is then unchanged. (Plateau cuts are not
            refused: a rate they take below the smallest normal number,
            through ``learning_rate_scale`` or a
            ``schedules.ReduceLROnPlateau``, becomes 0.0.)
        TypeError
            An assigned rate that is not a real number.
        """
        if self.schedule is not None:
            value = float(self.schedule(epoch))
            lr = value * self.learning_rate_scale
            if not np.isfinite(lr) or lr < 0:
                raise ValueError(f"learning-rate schedule gave {lr} for epoch {epoch + 1} "
                                 f"(schedule({epoch})); expected a finite value >= 0")
            if dtype is not None:
                # the schedule's own value is the caller's choice; what plateau cuts
                # made of it (learning_rate_scale, schedules.ReduceLROnPlateau's
                # value) is descend's decay towards 0, which ends at 0.0
                cut = isinstance(self.schedule, schedules.ReduceLROnPlateau)
                problem = None if cut else learning_rate_dtype_problem(value, dtype)
                if problem:
                    raise ValueError(f"learning-rate schedule gave {value!r} for epoch "
                                     f"{epoch + 1} (schedule({epoch})); learning_rate {problem}")
                lr = flush_cut_rate(lr, dtype)
            self.learning_rate = lr
        else:   # a callback may have assigned it
            self.learning_rate = check_float(self.learning_rate, "optimizer.learning_rate",
                                             minimum=0.0)
        return self.learning_rate

    # -- state -------------------------------------------------------------
    def build(self, params, names=None):
        """Create zeroed state arrays for each parameter array (kept if they fit).

        Parameters
        ----------
        params : list of ndarray
        names : list of str or None
            The parameters' names (``Sequential`` gives ``"layers.0.kernel"``
            ...), the keys of :meth:`state_dict`; None keeps the names of an
            earlier build of as many arrays, else numbers them "0", "1", ...
        """
        if names is not None:
            self.param_names = [str(name) for name in names]
        elif self.param_names is None or len(self.param_names) != len(params):
            self.param_names = [str(i) for i in range(len(params))]
        slots = self.active_state_names()
        if self.state is not None and len(self.state) == len(params) and all(
                len(s) == len(slots) and all(a.shape == p.shape and a.dtype == p.dtype
                                             for a in s)
                for s, p in zip(self.state, params)):
            return
        self.state = [[self._initial_state(name, p) for name in slots] for p in params]

    def active_state_names(self):
        """The state arrays this configuration uses (others stay unallocated)."""
        return self.state_names

    def _initial_state(self, name, param):
        return _aligned.full(param.shape, param.dtype, 0)

    def get_state(self):
        """{"iterations": t, "learning_rate_scale": s, "arrays": [[arrays of param 0],
        ...]} (copies).

        Raises
        ------
        RuntimeError
            Another thread is training a network with this optimizer: its
            arrays change at every step and ``iterations`` between epochs
            (the fit's own thread, its callbacks included, may read it).
        """
        _threads.check_consistent_read(self, "get_state")
        return {"iterations": self.iterations, "learning_rate_scale": self.learning_rate_scale,
                "arrays": None if self.state is None else
                [[a.copy() for a in s] for s in self.state]}

    def set_state(self, state):
        """Restore state from get_state(), copying in place where built."""
        arrays = state["arrays"]
        if arrays is None:
            self.state = None
        elif self.state is not None and len(self.state) == len(arrays) and all(
                len(a) == len(b) and all(x.shape == y.shape for x, y in zip(a, b))
                for a, b in zip(self.state, arrays)):
            for mine, theirs in zip(self.state, arrays):
                for m, t in zip(mine, theirs):
                    np.copyto(m, t)
        else:
            self.state = [[_aligned.copy(a) for a in s] for s in arrays]
        self.iterations = int(state["iterations"])
        self.learning_rate_scale = float(state.get("learning_rate_scale", 1.0))

    def state_dict(self):
        """The optimizer's mutable state, by name (copies).

        Returns
        -------
        dict
            ``{"iterations": t, "learning_rate": float,
            "learning_rate_scale": float, "schedule": schedule.state_dict()
            or None, "state": {"<param>.<slot>": array} or None}``: one array
            per parameter and state slot, e.g.
            ``"layers.0.kernel.velocity"`` (SGD momentum) or
            ``"layers.0.bias.exp_avg_sq"`` (Adam), shaped and typed as the
            parameter; ``"state"`` is None before :meth:`build`.

        Raises
        ------
        RuntimeError
            Another thread is training a network with this optimizer (see
            :meth:`get_state`).
        """
        _threads.check_consistent_read(self, "state_dict")
        state = None
        if self.state is not None:
            names = self.param_names or [str(i) for i in range(len(self.state))]
            slots = self.active_state_names()
            state = {f"{param}.{slot}": array.copy()
                     for param, arrays in zip(names, self.state)
                     for slot, array in zip(slots, arrays)}
        return {"iterations": int(self.iterations), "learning_rate": float(self.learning_rate),
                "learning_rate_scale": float(self.learning_rate_scale),
                "schedule": None if self.schedule is None else self.schedule.state_dict(),
                "state": state}

    def load_state_dict(self, state_dict):
        """Restore a :meth:`state_dict`, checking all of it before changing anything.

        The optimizer must be built (:meth:`build`) on the parameters the
        state belongs to when the state holds arrays; they are copied into
        the built arrays.

        Raises
        ------
        ValueError
            A missing or unknown key (named), an array whose shape or dtype
            differs from its parameter's or that holds NaN/inf, iterations
            not an int in [0, 2**62), a learning rate not a finite float
            >= 0, a schedule state without a schedule (or the schedule's
            own ValueError); the optimizer is unchanged.
        """
        if not isinstance(state_dict, dict) or set(state_dict) != set(_STATE_KEYS):
            raise ValueError(f"an optimizer state_dict has the keys {list(_STATE_KEYS)}, got "
                             f"{_keys_of(state_dict)}")
        iterations = state_dict["iterations"]
        if (isinstance(iterations, (bool, np.bool_)) or not isinstance(iterations,
                                                                       (int, np.integer))
                or not 0 <= iterations < 2**62):
            raise ValueError(f"the optimizer's iterations must be an int >= 0 (and < 2**62), "
                             f"got {iterations!r}")
        learning_rate = state_dict["learning_rate"]
        if (isinstance(learning_rate, (bool, np.bool_))
                or not isinstance(learning_rate, (int, float, np.floating))
                or not np.isfinite(learning_rate) or learning_rate < 0):
            raise ValueError(f"the optimizer's learning_rate must be a finite float >= 0, "
                             f"got {learning_rate!r}")
        scale = state_dict["learning_rate_scale"]
        if (isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, float, np.floating))
                or not np.isfinite(scale) or scale < 0):
            # 0 is what plateau cuts down to a learning rate of 0 (min_lr=0) leave
            raise ValueError(f"the optimizer's learning_rate_scale must be a finite float >= 0, "
                             f"got {scale!r}")
        arrays = self._checked_state_arrays(state_dict["state"])
        if state_dict["schedule"] is not None:
            if self.schedule is None:
                raise ValueError("the state has a learning-rate schedule state, but the "
                                 "optimizer has no schedule")
            self.schedule.load_state_dict(state_dict["schedule"])
        if arrays is None:
            self.state = None
        else:
            for mine, theirs in zip(self.state, arrays):
                for m, t in zip(mine, theirs):
                    np.copyto(m, t)
        self.iterations = int(iterations)
        self.learning_rate = float(learning_rate)
        self.learning_rate_scale = float(scale)

    def _checked_state_arrays(self, named):
        """Per parameter, the arrays of `named` in slot order, checked against the state."""
        if named is None:
            return None
        if not isinstance(named, dict):
            raise ValueError(f"the optimizer's state must be a dict of arrays or None, got "
                             f"{type(named).__name__}")
        if self.state is None:
            raise ValueError("build the optimizer on its parameters (optimizer.build(params, "
                             "names)) before loading a state that holds arrays")
        slots = self.active_state_names()
        expected = [[f"{param}.{slot}" for slot in slots] for param in self.param_names]
        flat = [key for keys in expected for key in keys]
        missing, unknown = sorted(set(flat) - set(named)), sorted(set(named) - set(flat))
        if missing or unknown:
            raise ValueError(f"the optimizer's state does not fit its parameters: missing "
                             f"{missing[:10]}, unknown {unknown[:10]}")
        return [[check_array_like(named[key], like, f"optimizer state {key!r}")
                 for key, like in zip(keys, built)]
                for keys, built in zip(expected, self.state)]

    @classmethod
    def from_config(cls, config):
        """The optimizer of a :meth:`get_config` (no code from the config is run).

        Raises
        ------
        ValueError
            An unknown class name, or one that is not `cls` or a subclass.
        """
        optimizer = from_config(config)
        if not isinstance(optimizer, cls):
            raise ValueError(f"the config describes a {type(optimizer).__name__}, not a "
                             f"{cls.__name__}")
        return optimizer

    def get_config(self):
        config = {"class": type(self).__name__,
                  "learning_rate": (self.learning_rate if self.schedule is None
                                    else schedules.serialize(self.schedule)),
                  "weight_decay": self.weight_decay, "decay_bias": self.decay_bias,
                  "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm,
                  "clipvalue": self.clipvalue}
        config.update(self._hyperparameters())
        return config

    def _hyperparameters(self):
        return {}

    # -- the per-batch Python driver ------------------------------------------
    def apply_gradients(self, params, grads, decay_flags=None, n_threads=1):
        """One update of every array in params from grads (same kernels as fit).

        Parameters
        ----------
        params : list of ndarray
            Updated in place.
        grads : list of ndarray
            Same shapes; modified in place by clipping.
        decay_flags : list of bool or None
            Whether weight decay applies to each array (default: all).

        Raises
        ------
        ValueError, TypeError
            Arrays that do not match (count, shape, dtype), a parameter that
            is not a writeable C-contiguous float array, a NaN or infinite
            gradient, a bad n_threads, or a learning_rate or epsilon that
            the parameters' dtype cannot hold (check_dtype); nothing is
            updated.

        Notes
        -----
        The update itself is not checked (as in PyTorch's optimizers): a
        finite gradient whose square overflows the dtype (about 6e20 for
        Adam on float32) leaves an infinite moment, which stalls that
        weight. ``fit`` and ``train_on_batch`` check the weights and the
        state after each update and undo it (DivergenceError); a custom
        loop can do the same with ``get_state``/``set_state``.
        """
        params, grads = _check_update(params, grads, decay_flags, n_threads)
        check_float(self.learning_rate, "optimizer.learning_rate", minimum=0.0)
        for dtype in {p.dtype for p in params}:
            self.check_dtype(dtype)     # as compile does: epsilon and lr in the dtype
        self.build(params)
        flat_grads = [g.reshape(-1) for g in grads]
        clipnorm, global_clipnorm, clipvalue = self.clip_settings()
        if global_clipnorm > 0:
            total = sum(_optim.sum_squares_py(g, n_threads) for g in flat_grads)
            scale = _optim.clip_scale_py(global_clipnorm, total)
            # scale is min(1, ...): skipping a scale of exactly 1 only saves time
            if scale < 1:  # pragma: no mutate
                for g in flat_grads:
                    _optim.scale_and_clip_py(g, scale, 0.0, n_threads)
        self.iterations += 1
        config = self.kernel_config()
        for i, (p, g) in enumerate(zip(params, flat_grads)):
            if clipnorm > 0:
                scale = _optim.clip_scale_py(clipnorm, _optim.sum_squares_py(g, n_threads))
                # as above: scale <= 1, and a scale of exactly 1 changes nothing
                if scale < 1:  # pragma: no mutate
                    _optim.scale_and_clip_py(g, scale, 0.0, n_threads)
            if clipvalue > 0:
                _optim.scale_and_clip_py(g, 1.0, clipvalue, n_threads)
            state = [s.reshape(-1) for s in self.state[i]] + [None] * (3 - len(self.state[i]))
            decay = self.weight_decay if (decay_flags is None or decay_flags[i]) else 0.0
            _optim.optimizer_step_py(config, p.reshape(-1), g, state[0], state[1], state[2],
                                     self.learning_rate, decay, self.iterations, n_threads)

    def __repr__(self):
        config = {k: v for k, v in self.get_config().items() if k != "class"}
        if self.schedule is not None:       # ExponentialDecay(...), not its config dict
            config["learning_rate"] = self.schedule
        args = ", ".join(f"{k}={v!r}" for k, v in config.items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent, with optional (Nesterov) momentum.

    Plain gradient descent is SGD with momentum=0; the batch size given to
    ``fit`` decides whether it is batch, stochastic or mini-batch descent.

    Update (as ``torch.optim.SGD`` with dampening 0; velocity v starts at 0)::

        d = g + wd * w
        v = momentum * v + d
        w = w - lr * (d + momentum * v)   if nesterov
        w = w - lr * v                    otherwise  (w - lr * d if momentum = 0)

    Parameters
    ----------
    learning_rate : float or schedule, default 0.01
    momentum : float in [0, 1), default 0
    nesterov : bool, default False (requires momentum > 0)
    weight_decay : float >= 0, default 0 (L2 added to the gradient)

    The velocity holds no learning rate (PyTorch's form). Keras keeps
    ``v = momentum * v - lr * g`` and steps ``w + v`` (Nesterov:
    ``w + momentum * v - lr * g``): the same steps while the rate is
    constant, but after a schedule changes the rate, Keras's velocity still
    carries the old rate and descend's does not.

    References
    ----------
    Robbins & Monro (1951); Polyak (1964), heavy-ball momentum; Sutskever,
    Martens, Dahl, Hinton (2013), "On the importance of initialization and
    momentum in deep learning", eq. (3)-(4) for Nesterov momentum, here
    (as in PyTorch) rewritten in terms of the look-ahead point w + momentum * v
    (Bengio, Boulanger-Lewandowski, Pascanu 2013, "Advances in Optimizing
    Recurrent Networks"), so that the gradient is taken at w itself.

    Examples
    --------
    Two updates of w = (1, 2) with the gradient g = (0.5, -1): the velocity
    is g, then 0.9 g + g.

    >>> import numpy as np
    >>> from descend import optimizers
    >>> w = np.array([1.0, 2.0])
    >>> opt = optimizers.SGD(learning_rate=0.1, momentum=0.9)
    >>> opt.apply_gradients([w], [np.array([0.5, -1.0])])
    >>> w
    array([0.95, 2.1 ])
    >>> opt.apply_gradients([w], [np.array([0.5, -1.0])])
    >>> w
    array([0.855, 2.29 ])
    """
    kind = SGD_KIND
    _constraints = {**Optimizer._constraints, "momentum": [_FRACTION], "nesterov": ["boolean"]}

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=0.0,
                 **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)
        self._set_settings(momentum=momentum, nesterov=nesterov)
        self._check_combinations("")

    def _check_combinations(self, prefix):
        super()._check_combinations(prefix)
        if self.nesterov and self.momentum == 0:
            raise ValueError(f"{prefix}nesterov=True requires {prefix}momentum > 0, "
                             f"got {prefix}momentum=0")

    def active_state_names(self):
        return ("velocity",) if self.momentum > 0 else ()

    def kernel_config(self):
        return {"kind": self.kind, "momentum": self.momentum, "nesterov": self.nesterov}

    def _hyperparameters(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adagrad(Optimizer):
    """Adagrad: per-coordinate steps shrinking with the summed squared gradients.

    Update (as ``torch.optim.Adagrad`` without lr_decay; G starts at
    ``initial_accumulator_value``)::

        d = g + wd * w
        G = G + d^2
        w = w - lr * d / (sqrt(G) + eps)

    Parameters
    ----------
    learning_rate : float or schedule, default 0.01
    epsilon : float > 0, default 1e-10
    initial_accumulator_value : float >= 0, default 0
    weight_decay : float >= 0, default 0 (L2 added to the gradient)

    References
    ----------
    Duchi, Hazan, Singer (2011), "Adaptive Subgradient Methods for Online
    Learning and Stochastic Optimization", JMLR 12, the diagonal update of
    Section 1 / Figure 1.
    """
    kind = ADAGRAD_KIND
    state_names = ("sum_squares",)
    _constraints = {**Optimizer._constraints, "epsilon": [_POSITIVE],
                    "initial_accumulator_value": [_NON_NEGATIVE]}

    def __init__(self, learning_rate=0.01, epsilon=1e-10, initial_accumulator_value=0.0,
                 weight_decay=0.0, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)
        self._set_settings(epsilon=epsilon, initial_accumulator_value=initial_accumulator_value)

    def _initial_state(self, name, param):
        return _aligned.full(param.shape, param.dtype, self.initial_accumulator_value)

    def kernel_config(self):
        return {"kind": self.kind, "epsilon": self.epsilon}

    def _hyperparameters(self):
        return {"epsilon": self.epsilon,
                "initial_accumulator_value": self.initial_accumulator_value}


class RMSprop(Optimizer):
    """RMSprop: steps divided by a running root-mean-square of the gradients.

    Update (as ``torch.optim.RMSprop``; s, c, v start at 0)::

        d = g + wd * w
        s = rho * s + (1 - rho) * d^2
        c = rho * c + (1 - rho) * d                    (centered only)
        r = sqrt(s - c^2) + eps  if centered else  sqrt(s) + eps
        v = momentum * v + d / r ;  w = w - lr * v     (momentum > 0)
        w = w - lr * d / r                             (momentum = 0)

    Parameters
    ----------
    learning_rate : float or schedule, default 0.001
    rho : float in [0, 1), default 0.9 (Keras's default; PyTorch's alpha
        defaults to 0.99)
    momentum : float in [0, 1), default 0
    epsilon : float > 0, default 1e-8
        Added after the square root, as PyTorch does; Keras (TensorFlow)
        and Graves (2013) add it under the square root, sqrt(s + eps).
    centered : bool, default False (Graves 2013, eq. 38-40, with epsilon
        placed as above)
    weight_decay : float >= 0, default 0 (L2 added to the gradient)

    References
    ----------
    Tieleman & Hinton (2012), Lecture 6.5 of "Neural Networks for Machine
    Learning" (Coursera); Graves (2013), "Generating Sequences With
    Recurrent Neural Networks", eq. (38)-(40) for the centered form.
    """
    kind = RMSPROP_KIND
    _constraints = {**Optimizer._constraints, "rho": [_FRACTION], "momentum": [_FRACTION],
                    "epsilon": [_POSITIVE], "centered": ["boolean"]}

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-8,
                 centered=False, weight_decay=0.0, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)
        self._set_settings(rho=rho, momentum=momentum, epsilon=epsilon, centered=centered)

    def active_state_names(self):
        # slot order is the kernel's: square_avg, grad_avg, velocity
        return ("square_avg", "grad_avg", "velocity")

    def kernel_config(self):
        return {"kind": self.kind, "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}

    def _hyperparameters(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


class Adam(Optimizer):
    """Adam: bias-corrected first and second moment estimates.

    Update, Kingma & Ba (2015) Algorithm 1 (m, v start at 0; t from 1)::

        d = g + wd * w                       (Adam: weight decay is L2)
        m = beta_1 * m + (1 - beta_1) * d
        v = beta_2 * v + (1 - beta_2) * d^2
        v_max = max(v_max, v)                (amsgrad only; v_max used for v)
        w = w - lr * (m / (1 - beta_1^t)) / (sqrt(v / (1 - beta_2^t)) + eps)

    Parameters
    ----------
    learning_rate : float or schedule, default 0.001
    beta_1, beta_2 : float in [0, 1), default 0.9, 0.999
    epsilon : float > 0, default 1e-8 (added to sqrt(v_hat), as in the paper)
    amsgrad : bool, default False (Reddi, Kale, Kumar 2018, Algorithm 2, in
        PyTorch's bias-corrected form)
    weight_decay : float >= 0, default 0

    References
    ----------
    Kingma & Ba (2015), "Adam: A Method for Stochastic Optimization", ICLR,
    Algorithm 1.

    Examples
    --------
    The first step moves every parameter by about learning_rate against the
    sign of its gradient (the bias-corrected ``m / sqrt(v)`` is ``g / |g|``):

    >>> import numpy as np
    >>> from descend import optimizers
    >>> w = np.array([1.0, 2.0])
    >>> optimizers.Adam(learning_rate=0.1).apply_gradients([w], [np.array([0.5, -1.0])])
    >>> np.round(w, 6)
    array([0.9, 2.1])
    """
    kind = ADAM_KIND
    decoupled = False
    _constraints = {**Optimizer._constraints, "beta_1": [_FRACTION], "beta_2": [_FRACTION],
                    "epsilon": [_POSITIVE], "amsgrad": ["boolean"]}

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 amsgrad=False, weight_decay=0.0, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)
        self._set_settings(beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad)

    def active_state_names(self):
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())

    def kernel_config(self):
        return {"kind": self.kind, "beta1": self.beta_1, "beta2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad,
                "decoupled": self.decoupled}

    def _hyperparameters(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay.

    Update, Loshchilov & Hutter (2019) Algorithm 2 with the schedule
    multiplier folded into lr (as ``torch.optim.AdamW``)::

        w = w - lr * wd * w                  (decay first, outside the moments)
        m, v, w: the Adam update above with d = g

    The decay is multiplied by the learning rate, as in PyTorch and Keras:
    the paper decays by eta_t * lambda, not by its alpha, so with
    lr = alpha * eta_t, ``weight_decay`` is the paper's lambda / alpha.

    Parameters
    ----------
    learning_rate : float or schedule, default 0.001
    weight_decay : float >= 0, default 0.01
    beta_1, beta_2, epsilon, amsgrad : as Adam

    References
    ----------
    Loshchilov & Hutter (2019), "Decoupled Weight Decay Regularization",
    ICLR, Algorithm 2 (lines 9-12).
    """
    decoupled = True

    def __init__(self, learning_rate=0.001, weight_decay=0.01, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)


_STATE_KEYS = ("iterations", "learning_rate", "learning_rate_scale", "schedule", "state")


def _keys_of(value):
    return sorted(value) if isinstance(value, dict) else type(value).__name__


def _check_update(params, grads, decay_flags, n_threads):
    """(params, grads) as lists of matching arrays for apply_gradients, or raise."""
    check_team_size(n_threads)
    params, grads = list(params), list(grads)
    if len(grads) != len(params) or (decay_flags is not None
                                     and len(decay_flags) != len(params)):
        raise ValueError(f"apply_gradients needs one gradient (and decay flag) per "
                         f"parameter: got {len(params)} params, {len(grads)} grads"
                         + ("" if decay_flags is None else f", {len(decay_flags)} decay flags"))
    checked = []
    for i, (p, g) in enumerate(zip(params, grads)):
        if not (isinstance(p, np.ndarray) and p.dtype in (np.float32, np.float64)
                and p.flags.c_contiguous and p.flags.writeable):
            raise TypeError(f"params[{i}] must be a writeable C-contiguous float32 or float64 "
                            f"array (it is updated in place), got "
                            + (f"a {p.dtype} array, C-contiguous {p.flags.c_contiguous}"
                               if isinstance(p, np.ndarray) else type(p).__name__))
        g = np.asarray(g, dtype=p.dtype) if not isinstance(g, np.ndarray) else g
        if g.shape != p.shape or g.dtype != p.dtype:
            raise ValueError(f"grads[{i}] must be a {p.dtype} array of shape {p.shape} like "
                             f"params[{i}], got a {g.dtype} array of shape {g.shape}")
        if not np.isfinite(g).all():
            raise ValueError(f"grads[{i}] contains NaN or infinite values; no update was made")
        checked.append(g if g.flags.c_contiguous and g.flags.writeable else g.copy())
    return params, checked


_OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSprop, "adam": Adam,
               "adamw": AdamW}


def get(identifier):
    """An Optimizer from a name ('sgd', 'adam', ...) with defaults, or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _OPTIMIZERS:
        return _OPTIMIZERS[identifier.lower()]()
    raise (ValueError if isinstance(identifier, str) else TypeError)(error_message(
        "optimizer", f"one of {sorted(_OPTIMIZERS)} or a descend Optimizer", identifier))


def from_config(config):
    """Rebuild an optimizer from get_config() (no code is executed)."""
    config = dict(config)
    name = config.pop("class", None)
    classes = {cls.__name__: cls for cls in _OPTIMIZERS.values()}
    if name not in classes:
        raise ValueError(f"unknown optimizer class in config: {name!r}")
    # a schedule's config dict needs nothing here: the constructor hands any
    # learning rate that is not a number to schedules.get, which rebuilds it
    return classes[name](**config)
