"""The one reduce-on-plateau rule, shared by ``callbacks.ReduceLROnPlateau``
(a Keras-style callback) and ``schedules.ReduceLROnPlateau`` (a PyTorch-style
schedule stepped with the monitored value).

The rule, applied once per epoch end to the monitored value ``v``:

1. ``v`` improves if ``v < best - min_delta`` (mode "min") or
   ``v > best + min_delta`` (mode "max"); then ``best = v`` and ``wait = 0``.
   NaN never improves.
2. While ``cooldown_counter > 0`` (the ``cooldown`` epochs right after a
   cut) the epoch is not counted: the counter goes down by one and
   ``wait = 0``.
3. Otherwise a non-improving epoch adds one to ``wait``; when
   ``wait >= patience`` the rate is cut to ``max(lr * factor, min_lr)``; if
   that lowers it, ``wait = 0`` and ``cooldown_counter = cooldown``.

Against the two libraries users know (same monitored values, absolute
``min_delta``):

* Keras 3 ``keras.callbacks.ReduceLROnPlateau``: identical for
  ``cooldown=0``. Keras decrements the cooldown before deciding whether the
  epoch counts, so its ``cooldown=c`` (c >= 1) skips only ``c - 1`` epochs:
  Keras ``cooldown=c`` is ``cooldown=c - 1`` here. ``patience`` counts the
  same way (the cut comes at the end of the ``patience``-th non-improving
  epoch; 0 and 1 both cut at the first one).
* PyTorch ``torch.optim.lr_scheduler.ReduceLROnPlateau`` with
  ``threshold_mode="abs"``, ``threshold=min_delta``: identical cooldown;
  PyTorch cuts when the count of bad epochs *exceeds* ``patience``, so
  PyTorch ``patience=p`` is ``patience=p + 1`` here. (PyTorch's default
  ``threshold_mode="rel"`` compares with ``best * (1 -/+ threshold)``.)
"""
import math
from numbers import Integral, Real

from descend._validation import Interval, Options, validate

MODES = ("auto", "min", "max")

# The hyperparameters both front-ends share, checked by one table so that
# both raise the same messages.
PARAMETER_CONSTRAINTS = {
    "monitor": ["str"],
    "factor": [Interval(Real, 0, 1, closed="neither")],
    "patience": [Interval(Integral, 0, None)],
    "mode": [Options(*MODES)],
    "min_delta": [Interval(Real, 0, None)],
    "cooldown": [Interval(Integral, 0, None)],
    "min_lr": [Interval(Real, 0, None)],
}


def resolve_mode(mode, monitor):
    """"min" or "max": "auto" is "max" if the monitor name (without a
    ``val_`` prefix) contains "acc" or is "r2", else "min" (losses, mse)."""
    if mode != "auto":
        return mode
    name = monitor[4:] if monitor.startswith("val_") else monitor
    return "max" if "acc" in name or name == "r2" else "min"


class PlateauRule:
    """State and decisions of the reduce-on-plateau rule (module docstring).

    Parameters
    ----------
    owner : str
        Name used in error messages ("ReduceLROnPlateau").
    monitor, factor, patience, mode, min_delta, cooldown, min_lr
        As in the module docstring; checked against PARAMETER_CONSTRAINTS.

    Attributes
    ----------
    best : float
        Best monitored value so far (+/-inf before the first).
    wait : int
        Non-improving epochs counted since the last reset.
    cooldown_counter : int
        Epochs of cooldown left.
    monitor_mode : {"min", "max"}
    """

    def __init__(self, owner, monitor, factor, patience, mode, min_delta, cooldown, min_lr):
        values = validate(PARAMETER_CONSTRAINTS, {
            "monitor": monitor, "factor": factor, "patience": patience, "mode": mode,
            "min_delta": min_delta, "cooldown": cooldown, "min_lr": min_lr}, owner)
        self.monitor, self.factor, self.patience = (values["monitor"], values["factor"],
                                                    values["patience"])
        self.mode, self.min_delta = values["mode"], values["min_delta"]
        self.cooldown, self.min_lr = values["cooldown"], values["min_lr"]
        self.reset()

    @property
    def monitor_mode(self):
        """"min" or "max", resolved from ``mode`` and ``monitor``."""
        return resolve_mode(self.mode, self.monitor)

    def reset(self):
        """Forget the history (best, wait, cooldown)."""
        self.best = -math.inf if self.monitor_mode == "max" else math.inf
        self.wait = 0
        self.cooldown_counter = 0

    def improves(self, value):
        """True if ``value`` beats ``best`` by more than ``min_delta``."""
        if self.monitor_mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def cut_due(self, value):
        """Record one epoch's value (steps 1-3); True if the rate is to be cut now."""
        improved = self.improves(value)
        if improved:
            self.best = value
            self.wait = 0
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
            return False
        if improved:
            return False
        self.wait += 1
        return self.wait >= self.patience

    def cut(self, learning_rate):
        """The rate after a due cut, starting the cooldown if it is lower."""
        new_rate = max(learning_rate * self.factor, self.min_lr)
        if new_rate < learning_rate:
            self.wait = 0
            self.cooldown_counter = self.cooldown
            return new_rate
        return learning_rate

    def state_dict(self):
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}


# what a front-end exposes of its rule, as its own attributes (Keras' names)
RULE_ATTRIBUTES = tuple(PARAMETER_CONSTRAINTS) + ("best", "wait", "cooldown_counter")


def delegate_to_rule(cls):
    """Class decorator: each of RULE_ATTRIBUTES (and ``monitor_mode``, read-only)
    becomes a property reading and writing ``self._rule``, so the front-end
    and its rule never disagree."""
    def attribute(name):
        return property(lambda self: getattr(self._rule, name),
                        lambda self, value: setattr(self._rule, name, value),
                        doc=f"The plateau rule's ``{name}``.")
    for name in RULE_ATTRIBUTES:
        setattr(cls, name, attribute(name))
    cls.monitor_mode = property(lambda self: self._rule.monitor_mode,
                                doc='"min" or "max", resolved from mode and monitor.')
    return cls


def missing_monitor_message(who, monitor, logs):
    """The warning for a monitor absent from the epoch logs."""
    keys = ", ".join(sorted(logs)) if logs else "(none)"
    return (f"{who} is conditioned on `{monitor}`, which is not in the epoch logs. "
            f"Available keys: {keys}. Pass validation_data to fit() for val_* "
            f"metrics, or choose another `monitor`.")
