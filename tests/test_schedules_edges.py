"""descend.schedules pinned edge by edge: each boundary and each message, with
values worked out by hand from the formulas in the module's docstrings.

tests/test_schedules.py checks the schedules against their formulas and the
libraries they follow; this file pins what a mutant of one comparison or
message could change without that file noticing (tests/mutation.py runs both).
"""

import math
import re

import pytest

from descend import schedules


def exact(message):
    return "^" + re.escape(message) + "$"


def test_linear_warmup_hands_over_at_warmup_epochs_exactly():
    """From epoch == warmup_epochs on, the rate is the wrapped schedule's own value,
    not the warm-up line evaluated at its end (0.7 + (0.01 - 0.7) * 1.0 is
    0.010000000000000009 in binary floating point)."""
    warm = schedules.LinearWarmup(0.01, warmup_epochs=3, start_learning_rate=0.7)
    assert warm(3) == 0.01 and warm(4) == 0.01
    assert warm(0) == 0.7
    assert warm(1) == 0.7 + (0.01 - 0.7) / 3


@pytest.mark.parametrize("kwargs, message", [
    ({"start_learning_rate": -0.1},
     "start_learning_rate must be a finite float >= 0, got -0.1 (float)"),
    ({"start_learning_rate": math.inf},
     "start_learning_rate must be a finite float >= 0, got inf (float)"),
    ({"warmup_epochs": 0}, "warmup_epochs must be an int >= 1, got 0 (int)"),
])
def test_linear_warmup_messages(kwargs, message):
    arguments = {"schedule": 0.1, "warmup_epochs": 2, **kwargs}
    with pytest.raises(ValueError, match=exact(message)):
        schedules.LinearWarmup(**arguments)


def test_plateau_observe_warns_once_from_the_caller(monkeypatch):
    """The warning for a missing monitor points at the caller of observe (the
    training loop): stacklevel=2, recorded here since mutmut's trampoline adds
    frames that a warning's filename would show."""
    seen = []
    monkeypatch.setattr(schedules.warnings, "warn",
                        lambda message, category=UserWarning, stacklevel=1:
                        seen.append((message, category, stacklevel)))
    plateau = schedules.ReduceLROnPlateau(0.1, monitor="val_loss", patience=0)
    assert plateau.observe({"loss": 1.0}) == 0.1
    assert plateau.observe(None) == 0.1
    assert seen == [("schedules.ReduceLROnPlateau is conditioned on `val_loss`, which is not "
                     "in the epoch logs. Available keys: loss. Pass validation_data to fit() "
                     "for val_* metrics, or choose another `monitor`. The learning rate is "
                     "not reduced.", RuntimeWarning, 2)]
    plateau.reset()
    plateau.observe({})
    assert len(seen) == 2 and seen[1][0].startswith(
        "schedules.ReduceLROnPlateau is conditioned on `val_loss`, which is not in the epoch "
        "logs. Available keys: (none).")


@pytest.mark.parametrize("value, shown", [
    ("0.5", "'0.5' (str)"), (b"1", "b'1' (bytes)"), (True, "True (bool)"),
    (None, "None (NoneType)"), ([1.0], "[1.0] (list)")])
def test_plateau_step_refuses_what_is_not_a_number_and_keeps_its_state(value, shown):
    plateau = schedules.ReduceLROnPlateau(0.1, monitor="loss", patience=0)
    plateau.step(1.0)
    before = plateau.state_dict()
    with pytest.raises(TypeError, match=exact(
            f"ReduceLROnPlateau.step: metric_value must be a real number, got {shown}")):
        plateau.step(value)
    assert plateau.state_dict() == before


@pytest.mark.parametrize("name", ["nope", ["step_decay"]])
def test_get_lists_every_registered_name_for_an_unknown_one(name):
    with pytest.raises(ValueError, match=exact(
            f"unknown schedule {name!r}; valid names are: constant, cosine_annealing, "
            "exponential_decay, inverse_time_decay, lambda_schedule, linear_warmup, "
            "reduce_lr_on_plateau, step_decay (CamelCase class names are accepted too)")):
        schedules.get({"name": name})



@pytest.mark.parametrize("schedule, epoch", [
    (schedules.InverseTimeDecay(0.1, power_t=2000), 1),
    (schedules.InverseTimeDecay(0.1, power_t=150), 120),
    (schedules.ExponentialDecay(0.1, decay_rate=0.5), 10**400),
])
def test_a_rate_beyond_floating_point_names_the_schedule_and_epoch(schedule, epoch):
    # (epoch + 1) ** power_t overflowed: a bare OverflowError from fit's epoch
    shown = str(epoch) if epoch < 10**30 else r"100000+\.\.\.0+"   # (not 401 digits)
    with pytest.raises(ValueError, match=rf"{type(schedule).__name__}\(.*epoch {shown} is "
                                         "beyond floating point") as error:
        schedule(epoch)
    assert len(str(error.value)) < 300


def test_fit_stops_with_the_schedules_error_after_the_epochs_it_could_train():
    import numpy as np
    import descend as dn
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), rng.integers(0, 2, 40)
    net = dn.Sequential([dn.Dense(2, activation="softmax")], input_dim=3, seed=0)
    net.compile(loss="softmax_cross_entropy",
                optimizer=dn.optimizers.SGD(schedules.InverseTimeDecay(0.1, power_t=2000)))
    with pytest.raises(ValueError, match="epoch 1 is beyond floating point"):
        net.fit(X, y, epochs=3, verbose=0)
    assert net.epochs_trained == 1 and len(net.history.epoch) == 1
