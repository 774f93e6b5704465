"""The one reduce-on-plateau rule: hand-worked sequences, the Keras and PyTorch
semantics written as literals, the callback and the schedule in lockstep, a
callback cut composing with a schedule, and an absent monitor warning."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import descend as dn
from descend import callbacks, schedules
from descend._plateau import PlateauRule


class _Optimizer:
    def __init__(self, learning_rate):
        self.learning_rate = learning_rate


class _Model:
    def __init__(self, learning_rate):
        self.optimizer = _Optimizer(learning_rate)
        self.stop_training = False


def callback_rates(values, monitor="val_loss", **kwargs):
    """The rate in use at each epoch (before its end) under the callback."""
    model = _Model(1.0)
    cut = callbacks.ReduceLROnPlateau(monitor=monitor, **kwargs)
    cut.set_model(model)
    cut.on_train_begin()
    rates = []
    for epoch, value in enumerate(values):
        rates.append(model.optimizer.learning_rate)
        cut.on_epoch_end(epoch, {monitor: value})
    return rates


def schedule_rates(values, **kwargs):
    schedule = schedules.ReduceLROnPlateau(1.0, **kwargs)
    rates = []
    for epoch, value in enumerate(values):
        rates.append(schedule(epoch))
        schedule.step(value)
    return rates


# --------------------------------------------------------------------------- hand-worked
def test_rule_hand_worked_sequence():
    # patience 2, cooldown 1, min_delta 0.1, mode min
    rule = PlateauRule("t", "loss", 0.5, 2, "min", 0.1, 1, 0.0)
    steps = []
    for value in [1.0, 0.95, 0.8, 0.8, 0.8, 0.8, 0.5, 0.6, 0.6, 0.6]:
        due = rule.cut_due(value)
        rate = rule.cut(1.0) if due else None
        steps.append((rule.best, rule.wait, rule.cooldown_counter, due, rate))
    assert steps == [
        (1.0, 0, 0, False, None),     # first value improves on +inf
        (1.0, 1, 0, False, None),     # 0.95 is not better by more than 0.1
        (0.8, 0, 0, False, None),     # improves
        (0.8, 1, 0, False, None),
        (0.8, 0, 1, True, 0.5),       # second bad epoch: cut, cooldown 1, wait 0
        (0.8, 0, 0, False, None),     # the cooldown epoch is not counted
        (0.5, 0, 0, False, None),     # improves
        (0.5, 1, 0, False, None),
        (0.5, 0, 1, True, 0.5),
        (0.5, 0, 0, False, None),
    ]


def test_rule_stops_at_min_lr():
    rule = PlateauRule("t", "loss", 0.1, 1, "min", 0.0, 3, 0.05)
    rule.cut_due(1.0)
    assert rule.cut_due(1.0) and rule.cut(0.2) == pytest.approx(0.05)
    assert rule.cooldown_counter == 3
    rule.cooldown_counter = 0
    assert rule.cut_due(1.0) and rule.cut(0.05) == 0.05
    assert rule.cooldown_counter == 0 and rule.wait == 1   # no cut: no cooldown, wait grows
    assert rule.cut_due(1.0) and rule.wait == 2


def test_nan_never_improves_and_counts():
    assert callback_rates([1.0, math.nan, math.nan], factor=0.5, patience=2) == [1.0, 1.0, 1.0]
    assert schedule_rates([1.0, math.nan, math.nan, 2.0], factor=0.5, patience=2) == \
        [1.0, 1.0, 1.0, 0.5]


def test_mode_max_for_accuracy_monitors():
    values = [0.5, 0.6, 0.6, 0.7]
    expected = [1.0, 1.0, 1.0, 0.5]
    assert callback_rates(values, monitor="val_accuracy", factor=0.5, patience=1) == expected
    assert schedule_rates(values, monitor="val_accuracy", factor=0.5, patience=1) == expected


# --------------------------------------------------------------------------- Keras, PyTorch
# A plateau, a recovery and a second plateau; rates are those in use at each epoch.
VALUES = [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5]

# keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=0, min_delta=0),
# worked by hand from Keras 3's on_epoch_end: cuts at the ends of epochs 3, 5, 9, 11.
KERAS_PATIENCE_2_COOLDOWN_0 = [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25,
                               0.125, 0.125]
# the same with Keras cooldown=2: Keras decrements before counting, so the epoch after a
# cut is skipped but the second one counts: cuts at the ends of epochs 3, 6, 9.
KERAS_PATIENCE_2_COOLDOWN_2 = [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25,
                               0.125, 0.125]
# torch.optim.lr_scheduler.ReduceLROnPlateau(factor=0.5, patience=1, cooldown=1,
# threshold=0, threshold_mode="abs"), worked by hand from its step(): a cut once the bad
# epochs exceed 1, and the epoch after a cut ignored: cuts after epochs 3, 6, 9.
TORCH_PATIENCE_1_COOLDOWN_1 = [1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25,
                               0.125, 0.125]


@pytest.mark.parametrize("rates", [callback_rates, schedule_rates])
def test_matches_keras_without_cooldown(rates):
    assert rates(VALUES, factor=0.5, patience=2, cooldown=0, min_delta=0.0) == \
        KERAS_PATIENCE_2_COOLDOWN_0


@pytest.mark.parametrize("rates", [callback_rates, schedule_rates])
def test_keras_cooldown_c_is_cooldown_c_minus_1(rates):
    assert rates(VALUES, factor=0.5, patience=2, cooldown=1, min_delta=0.0) == \
        KERAS_PATIENCE_2_COOLDOWN_2


@pytest.mark.parametrize("rates", [callback_rates, schedule_rates])
def test_torch_patience_p_is_patience_p_plus_1(rates):
    assert rates(VALUES, factor=0.5, patience=2, cooldown=1, min_delta=0.0) == \
        TORCH_PATIENCE_1_COOLDOWN_1


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.sampled_from([0.5, 0.7, 0.9, 1.0, math.inf, math.nan]),
                       min_size=1, max_size=25),
       patience=st.integers(0, 4), cooldown=st.integers(0, 3),
       min_delta=st.sampled_from([0.0, 0.1]), mode=st.sampled_from(["min", "max"]))
def test_callback_and_schedule_follow_one_rule(values, patience, cooldown, min_delta, mode):
    kwargs = dict(factor=0.5, patience=patience, cooldown=cooldown, min_delta=min_delta,
                  mode=mode, min_lr=0.1)
    assert callback_rates(values, **kwargs) == schedule_rates(values, **kwargs)


# --------------------------------------------------------------------------- compose
def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = (X[:, 0] > 0).astype(int)
    return X, y


def _net(learning_rate):
    net = dn.Sequential([dn.Dense(2)], input_dim=3, dtype="float64", seed=0)
    net.compile(loss="softmax_cross_entropy",
                optimizer=dn.optimizers.SGD(learning_rate=learning_rate))
    return net


def _never_improving():
    # min_delta huge: only the first epoch improves (on +inf); patience 1 cuts every epoch
    return callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=1e9)


def test_a_callback_cut_applies_on_top_of_the_schedule():
    X, y = _data()
    net = _net(schedules.StepDecay(0.1, drop=0.5, step_size=2))  # 0.1 0.1 0.05 0.05 0.025
    history = net.fit(X, y, epochs=5, batch_size=16, callbacks=[_never_improving()])
    # cuts after epochs 1, 2, 3 (and 4): the schedule's rate times 1/2, 1/4, 1/8
    assert history["learning_rate"] == pytest.approx([0.1, 0.1, 0.025, 0.0125, 0.003125])
    assert net.optimizer.learning_rate_scale == 1 / 16


def test_the_cut_survives_save_load_and_a_second_fit(tmp_path):
    X, y = _data()
    net = _net(schedules.StepDecay(0.1, drop=0.5, step_size=2))
    net.fit(X, y, epochs=3, batch_size=16, callbacks=[_never_improving()])
    assert net.optimizer.learning_rate_scale == 0.25
    net.save(tmp_path / "m.npz")
    loaded = dn.load(tmp_path / "m.npz")
    assert loaded.optimizer.learning_rate_scale == 0.25
    # epochs 3 and 4 of the schedule (0.05, 0.025), still cut by 1/4
    history = loaded.fit(X, y, epochs=2, batch_size=16)
    assert history["learning_rate"] == pytest.approx([0.0125, 0.00625])


def test_a_callback_cut_composes_with_a_plateau_schedule():
    X, y = _data()
    # the schedule watches a metric that is absent: it never cuts on its own
    net = _net(schedules.ReduceLROnPlateau(0.1, monitor="loss", patience=100))
    history = net.fit(X, y, epochs=3, batch_size=16, callbacks=[_never_improving()])
    assert history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05])


def test_a_callback_cut_composes_with_learning_rate_scheduler():
    X, y = _data()
    net = _net(0.1)
    history = net.fit(X, y, epochs=4, batch_size=16, callbacks=[
        callbacks.LearningRateScheduler(lambda epoch: 0.1), _never_improving()])
    assert history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05, 0.025])


def test_a_constant_rate_is_cut_as_before():
    X, y = _data()
    net = _net(0.1)
    history = net.fit(X, y, epochs=4, batch_size=16, callbacks=[_never_improving()])
    assert history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05, 0.025])
    assert net.optimizer.learning_rate == pytest.approx(0.0125)


def test_files_without_a_scale_load_with_scale_one():
    # files written before the scale existed are format 1 (tests/data, written
    # at 480dbc6); format 2 always holds it in the optimizer's state_dict
    import json
    import os
    import zipfile
    path = os.path.join(os.path.dirname(__file__), "data", "v1_adam_amsgrad_binary.npz")
    with np.load(path) as archive:
        config = json.loads(str(archive["config"]))
    assert config["format_version"] == 1
    assert "learning_rate_scale" not in config["optimizer_state"]      # as written before
    assert zipfile.is_zipfile(path)
    assert dn.load(path).optimizer.learning_rate_scale == 1.0


# --------------------------------------------------------------------------- absent monitor
def test_schedule_warns_once_when_the_monitor_is_absent():
    schedule = schedules.ReduceLROnPlateau(0.1, monitor="val_loss", patience=1)
    with pytest.warns(RuntimeWarning, match=r"`val_loss`, which is not in the epoch logs\. "
                                            r"Available keys: loss\..*not reduced"):
        assert schedule.observe({"loss": 1.0}) == 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert schedule.observe({"loss": 1.0}) == 0.1     # once until reset
    schedule.reset()
    with pytest.warns(RuntimeWarning, match="val_loss"):
        schedule.observe({})


def test_schedule_observe_steps_with_the_monitor():
    schedule = schedules.ReduceLROnPlateau(0.1, monitor="loss", factor=0.5, patience=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [schedule.observe({"loss": v}) for v in (1.0, 1.0, 1.0)] == [0.1, 0.05, 0.025]


def test_callback_warns_when_the_monitor_is_absent():
    model = _Model(1.0)
    cut = callbacks.ReduceLROnPlateau(monitor="val_loss", patience=0)
    cut.set_model(model)
    cut.on_train_begin()
    with pytest.warns(RuntimeWarning, match="val_loss"):
        cut.on_epoch_end(0, {"loss": 1.0})
    assert model.optimizer.learning_rate == 1.0


def test_fit_warns_when_the_schedule_monitor_is_absent():
    X, y = _data()
    net = _net(schedules.ReduceLROnPlateau(0.1, monitor="val_loss", factor=0.5, patience=1))
    with pytest.warns(RuntimeWarning, match=r"schedules.ReduceLROnPlateau is conditioned on "
                                            r"`val_loss`.*Available keys: .*loss"):
        history = net.fit(X, y, epochs=3, batch_size=16)      # no validation data
    assert history["learning_rate"] == [0.1, 0.1, 0.1]


def test_fit_steps_the_schedule_with_its_monitor():
    X, y = _data()
    net = _net(schedules.ReduceLROnPlateau(0.1, monitor="val_loss", factor=0.5, patience=1,
                                           min_delta=1e9))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        history = net.fit(X, y, epochs=3, batch_size=16, validation_data=(X, y))
    assert history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05])


@pytest.mark.parametrize("make", [lambda: callbacks.ReduceLROnPlateau(patience=5),
                                  lambda: schedules.ReduceLROnPlateau(1.0, patience=5)])
def test_front_end_attributes_are_the_rule_itself(make):
    front = make()
    front.patience = 1                      # as a Keras user may set it
    assert front._rule.patience == 1
    front.monitor = "val_accuracy"
    assert front.monitor_mode == "max" and front._rule.monitor_mode == "max"
    assert front.best == -math.inf or front.best == math.inf
