"""The optimizers module as a whole: documented defaults, every argument's range
and message, the config and state round trips, apply_gradients' input checks
and clipping edges, and torch.optim trajectories with no default left in place.

Written against what survived a mutation sample of descend.optimizers: each
group pins a behaviour of the whole module (every constructor argument, every
key of a config or state), not one sampled mutant. Expected values are the
documented defaults, hand-computed steps, or torch.optim's numbers written as
literals (the command that printed them is beside them); no descend code
computes an expected value.
"""
import math
import re

import numpy as np
import pytest

import descend as dn
from descend import optimizers as O
from descend._validation import MAX_THREADS      # 8 per CPU of the machine, at least 64

W0 = np.array([1.0, -2.0, 0.5])
GRADS = [np.array([0.5, -1.0, 0.25]),
         np.array([0.3, 0.2, -0.4]),
         np.array([-0.1, 0.6, 0.05])]


def trajectory(optimizer, grads=GRADS, w0=W0):
    w, out = w0.copy(), []
    for g in grads:
        optimizer.apply_gradients([w], [g.copy()])
        out.append(w.copy())
    return out


# ---------------------------------------------------------------------------
# torch.optim with every hyperparameter away from its default: a kernel that
# read a default instead of the setting (a misspelt config key, a dropped
# argument) moves off these numbers. Printed by /work/venvs/speed/bin/python
# (torch 2.13.0+cpu), float64 tensors w = W0, w.grad = GRADS[t], opt.step():
#   torch.optim.RMSprop([w], lr=0.01, alpha=0.7, eps=1e-3, weight_decay=0.1,
#                       momentum=0.5, centered=True)
#   torch.optim.Adagrad([w], lr=0.5, eps=1e-3, weight_decay=0.1,
#                       initial_accumulator_value=0.2)
#   torch.optim.Adam([w], lr=0.01, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1,
#                    amsgrad=True)
#   torch.optim.AdamW([w], lr=0.01, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.1)
#   torch.optim.SGD([w], lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.1)
# ---------------------------------------------------------------------------
TORCH = {
    "rmsprop": (lambda: O.RMSprop(0.01, rho=0.7, epsilon=1e-3, weight_decay=0.1, momentum=0.5,
                                  centered=True),
                [[0.9782572884537613, -1.9782178214850696, 0.47833579488089184],
                 [0.9515845876630116, -1.9673711758845447, 0.4825537684474669],
                 [0.9384498930326225, -1.9698799836215324, 0.47990127466514926]]),
    "adagrad": (lambda: O.Adagrad(0.5, epsilon=1e-3, weight_decay=0.1,
                                  initial_accumulator_value=0.2),
                [[0.5996431364941072, -1.5318442825319152, 0.22197327540088913],
                 [0.38316390364362546, -1.5500962481266982, 0.5086975045210888],
                 [0.42015806162781166, -1.7139917819384605, 0.4330279214780623]]),
    "adam": (lambda: O.Adam(0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-3, weight_decay=0.1,
                            amsgrad=True),
             [[0.9900166389351082, -1.990008326394671, 0.4900332225913621],
              [0.9804033461778764, -1.9838156633487634, 0.4919124071920827],
              [0.973563452773819, -1.981724963671291, 0.49175550139288404]]),
    "adamw": (lambda: O.AdamW(0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-3, weight_decay=0.1),
              [[0.9890199600798403, -1.98800999000999, 0.4895398406374502],
               [0.9785646731696792, -1.9813503400397154, 0.49235314691223475],
               [0.9719840024788259, -1.9800962775789694, 0.4935126669968111]]),
    "sgd": (lambda: O.SGD(0.1, momentum=0.8, nesterov=True, weight_decay=0.1),
            [[0.892, -1.784, 0.446], [0.783544, -1.711088, 0.490772],
             [0.731811408, -1.728230816, 0.48032370399999996]]),
}


@pytest.mark.parametrize("name", list(TORCH))
def test_every_setting_reaches_the_update_as_in_torch(name):
    make, expected = TORCH[name]
    for step, (got, want) in enumerate(zip(trajectory(make()), expected), start=1):
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15, err_msg=f"step {step}")


@pytest.mark.parametrize("name", list(TORCH))
def test_the_torch_trajectory_survives_a_config_round_trip(name):
    """from_config(get_config()) rebuilds every setting: the same torch numbers."""
    make, expected = TORCH[name]
    again = O.from_config(make().get_config())
    assert type(again) is type(make())
    np.testing.assert_allclose(trajectory(again)[-1], expected[-1], rtol=1e-14)


# ---------------------------------------------------------------------------
# documented defaults (the class docstrings' "default" values)
# ---------------------------------------------------------------------------
COMMON = {"weight_decay": 0.0, "decay_bias": False, "clipnorm": None,
          "global_clipnorm": None, "clipvalue": None}
DEFAULT_CONFIGS = {
    "sgd": {"class": "SGD", "learning_rate": 0.01, **COMMON, "momentum": 0.0,
            "nesterov": False},
    "adagrad": {"class": "Adagrad", "learning_rate": 0.01, **COMMON, "epsilon": 1e-10,
                "initial_accumulator_value": 0.0},
    "rmsprop": {"class": "RMSprop", "learning_rate": 0.001, **COMMON, "rho": 0.9,
                "momentum": 0.0, "epsilon": 1e-8, "centered": False},
    "adam": {"class": "Adam", "learning_rate": 0.001, **COMMON, "beta_1": 0.9,
             "beta_2": 0.999, "epsilon": 1e-8, "amsgrad": False},
    "adamw": {"class": "AdamW", "learning_rate": 0.001, **COMMON, "weight_decay": 0.01,
              "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8, "amsgrad": False},
}


@pytest.mark.parametrize("name", list(DEFAULT_CONFIGS))
def test_defaults_are_the_documented_ones(name):
    for optimizer in (O.get(name), O.get(name.upper()), O.get(name.capitalize())):
        assert optimizer.get_config() == DEFAULT_CONFIGS[name]
        assert (optimizer.iterations, optimizer.learning_rate_scale) == (0, 1.0)
        assert optimizer.state is None and optimizer.param_names is None
        assert optimizer.schedule is None
        assert optimizer.clip_settings() == (0.0, 0.0, 0.0)


KERNEL_CONFIGS = {
    "sgd": (lambda: O.SGD(0.1, momentum=0.3, nesterov=True),
            {"kind": O.SGD_KIND, "momentum": 0.3, "nesterov": True}),
    "adagrad": (lambda: O.Adagrad(0.1, epsilon=0.25), {"kind": O.ADAGRAD_KIND, "epsilon": 0.25}),
    "rmsprop": (lambda: O.RMSprop(0.1, rho=0.5, momentum=0.25, epsilon=0.125, centered=True),
                {"kind": O.RMSPROP_KIND, "rho": 0.5, "momentum": 0.25, "epsilon": 0.125,
                 "centered": True}),
    "adam": (lambda: O.Adam(0.1, beta_1=0.5, beta_2=0.25, epsilon=0.125, amsgrad=True),
             {"kind": O.ADAM_KIND, "beta1": 0.5, "beta2": 0.25, "epsilon": 0.125,
              "amsgrad": True, "decoupled": False}),
    "adamw": (lambda: O.AdamW(0.1), {"kind": O.ADAM_KIND, "beta1": 0.9, "beta2": 0.999,
                                     "epsilon": 1e-8, "amsgrad": False, "decoupled": True}),
}


@pytest.mark.parametrize("name", list(KERNEL_CONFIGS))
def test_kernel_config_names_what_the_kernel_reads(name):
    # the keys are the ones descend._optim.make_config_py reads (its docstring)
    make, expected = KERNEL_CONFIGS[name]
    assert make().kernel_config() == expected


def test_active_state_names_follow_the_configuration():
    assert O.SGD(0.1).active_state_names() == ()
    assert O.SGD(0.1, momentum=0.5).active_state_names() == ("velocity",)
    assert O.Adagrad().active_state_names() == ("sum_squares",)
    assert O.RMSprop().active_state_names() == ("square_avg", "grad_avg", "velocity")
    assert O.Adam().active_state_names() == ("exp_avg", "exp_avg_sq")
    assert O.Adam(amsgrad=True).active_state_names() == ("exp_avg", "exp_avg_sq",
                                                         "max_exp_avg_sq")
    assert O.AdamW(amsgrad=True).active_state_names()[-1] == "max_exp_avg_sq"


class PlainDescent(O.Optimizer):
    """A user's own optimizer on the base class: plain gradient steps."""
    kind = O.SGD_KIND

    def kernel_config(self):
        return {"kind": self.kind, "momentum": 0.0, "nesterov": False}


def test_the_base_class_defaults_for_a_subclass():
    opt = PlainDescent(0.5)
    assert (opt.weight_decay, opt.decay_bias) == (0.0, False)
    assert opt.get_config() == {"class": "PlainDescent", "learning_rate": 0.5, **COMMON}
    assert opt.active_state_names() == ()
    w = W0.copy()
    opt.apply_gradients([w], [GRADS[0].copy()])
    np.testing.assert_array_equal(w, W0 - 0.5 * GRADS[0])
    assert opt.state == [[]] and opt.iterations == 1
    assert repr(opt) == ("PlainDescent(learning_rate=0.5, weight_decay=0.0, decay_bias=False, "
                         "clipnorm=None, global_clipnorm=None, clipvalue=None)")


# ---------------------------------------------------------------------------
# every constructor argument: refused outside its range by name, at exact
# messages; accepted at the inclusive edges and inside
# ---------------------------------------------------------------------------
# (class, argument, values refused, the range the message names)
OUT_OF_RANGE = [
    (O.SGD, "learning_rate", (0.0, math.nan), "> 0"), (O.Adagrad, "learning_rate", (-1.0,), "> 0"),
    (O.SGD, "weight_decay", (-0.5,), ">= 0"), (O.AdamW, "weight_decay", (-0.5,), ">= 0"),
    (O.SGD, "momentum", (-0.5, 1.0, 1.5), "in [0, 1)"), (O.Adagrad, "epsilon", (0.0, -1.0), "> 0"),
    (O.Adagrad, "initial_accumulator_value", (-0.5,), ">= 0"),
    (O.RMSprop, "rho", (-0.5, 1.0, 1.5), "in [0, 1)"),
    (O.RMSprop, "momentum", (-0.5, 1.5), "in [0, 1)"), (O.RMSprop, "epsilon", (0.0, -1.0), "> 0"),
    (O.Adam, "beta_1", (-0.5, 1.5), "in [0, 1)"), (O.Adam, "beta_2", (-0.5, 1.5), "in [0, 1)"),
    (O.Adam, "epsilon", (0.0, -1.0), "> 0"), (O.AdamW, "beta_1", (1.0,), "in [0, 1)"),
    (O.SGD, "clipnorm", (0.0, -1.0), "> 0"), (O.Adam, "global_clipnorm", (0.0, -1.0), "> 0"),
    (O.RMSprop, "clipvalue", (0.0, -1.0), "> 0"),
]
# (the clipping settings may also be None: their messages say so)
REFUSED = [(cls, name, value, f"{name} must be {'None or ' if 'clip' in name else ''}"
                              f"a finite float {bounds}, got {value!r} (float)")
           for cls, name, values, bounds in OUT_OF_RANGE for value in values]


@pytest.mark.parametrize("cls, name, value, message", REFUSED,
                         ids=[f"{c.__name__}-{n}-{v}" for c, n, v, _ in REFUSED])
def test_each_argument_is_refused_out_of_range_by_name(cls, name, value, message):
    with pytest.raises(ValueError) as info:
        cls(**{name: value})
    assert str(info.value) == message


# (class, argument, a bool-only argument gets a non-bool / a float argument gets a string)
WRONG_TYPES = [(O.SGD, "nesterov", 1, "nesterov must be a bool, got 1 (int)"),
               (O.SGD, "decay_bias", "no", "decay_bias must be a bool, got 'no' (str)"),
               (O.RMSprop, "centered", "yes", "centered must be a bool, got 'yes' (str)"),
               (O.Adam, "amsgrad", None, "amsgrad must be a bool, got None (NoneType)"),
               (O.SGD, "momentum", "0.9", "momentum must be a finite float in [0, 1), got "
                                          "'0.9' (str)"),
               (O.Adam, "beta_1", True, "beta_1 must be a finite float in [0, 1), got True "
                                        "(bool)"),
               (O.Adagrad, "initial_accumulator_value", "1",
                "initial_accumulator_value must be a finite float >= 0, got '1' (str)")]


@pytest.mark.parametrize("cls, name, value, message", WRONG_TYPES,
                         ids=[f"{c.__name__}-{n}" for c, n, _, _ in WRONG_TYPES])
def test_each_argument_of_the_wrong_type_is_a_type_error_by_name(cls, name, value, message):
    with pytest.raises(TypeError) as info:
        cls(**{name: value})
    assert str(info.value).startswith(message[:message.index(" got ")])
    assert str(info.value).endswith(message[message.index(" got "):])


@pytest.mark.parametrize("cls, name, value", [
    (O.SGD, "weight_decay", 0.0), (O.SGD, "weight_decay", 0.5), (O.SGD, "momentum", 0.0),
    (O.SGD, "momentum", 0.5), (O.SGD, "learning_rate", 0.5), (O.SGD, "learning_rate", 2),
    (O.SGD, "clipnorm", 0.5), (O.SGD, "global_clipnorm", 0.5), (O.SGD, "clipvalue", 0.5),
    (O.Adagrad, "epsilon", 0.5), (O.Adagrad, "initial_accumulator_value", 0.0),
    (O.Adagrad, "initial_accumulator_value", 0.5), (O.Adagrad, "weight_decay", 0.5),
    (O.RMSprop, "rho", 0.0), (O.RMSprop, "rho", 0.5), (O.RMSprop, "momentum", 0.0),
    (O.RMSprop, "momentum", 0.5), (O.RMSprop, "epsilon", 0.5), (O.RMSprop, "weight_decay", 0.5),
    (O.Adam, "beta_1", 0.0), (O.Adam, "beta_1", 0.5), (O.Adam, "beta_2", 0.0),
    (O.Adam, "beta_2", 0.5), (O.Adam, "epsilon", 0.5), (O.Adam, "weight_decay", 0.5),
    (O.AdamW, "weight_decay", 0.0), (O.AdamW, "weight_decay", 0.5),
    (O.AdamW, "learning_rate", 0.5)])
def test_each_argument_is_accepted_at_its_edges_and_inside(cls, name, value):
    optimizer = cls(**{name: value})
    assert optimizer.get_config()[name] == value
    assert type(optimizer.get_config()[name]) is float or name.startswith("clip")


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError) as info:
        O.SGD(0.1, nesterov=True)
    assert str(info.value) == "nesterov=True requires momentum > 0, got momentum=0"
    assert O.SGD(0.1, momentum=0.5, nesterov=True).nesterov is True
    assert O.SGD(0.1, momentum=0.5).nesterov is False


@pytest.mark.parametrize("given", [("clipnorm", "global_clipnorm"), ("clipnorm", "clipvalue"),
                                   ("global_clipnorm", "clipvalue"),
                                   ("clipnorm", "global_clipnorm", "clipvalue")])
def test_two_clipping_modes_are_refused_and_named(given):
    with pytest.raises(ValueError) as info:
        O.Adam(**{key: 1.0 for key in given})
    assert str(info.value) == ("set at most one of clipnorm, global_clipnorm and clipvalue, "
                               f"got {list(given)}")


@pytest.mark.parametrize("key", ["clipnorm", "global_clipnorm", "clipvalue"])
def test_one_clipping_mode_is_kept_and_reported(key):
    optimizer = O.SGD(0.1, **{key: 0.5})
    settings = dict(zip(("clipnorm", "global_clipnorm", "clipvalue"),
                        optimizer.clip_settings()))
    assert settings == {k: (0.5 if k == key else 0.0) for k in settings}
    assert getattr(optimizer, key) == 0.5
    assert {k: optimizer.get_config()[k] for k in settings} == {
        k: (0.5 if k == key else None) for k in settings}


def test_a_bool_learning_rate_is_refused():
    # True is an int to Python, but not a learning rate
    with pytest.raises(TypeError, match=r"got True \(bool\)$"):
        O.SGD(True)


def test_learning_rates_of_every_real_type_are_floats():
    for value in (2, np.float32(0.5), np.float64(0.25), 0.125):
        optimizer = O.Adam(value)
        assert optimizer.learning_rate == value and type(optimizer.learning_rate) is float
        assert optimizer.schedule is None


# ---------------------------------------------------------------------------
# schedules and the learning rate of an epoch
# ---------------------------------------------------------------------------
def step_decay():
    return dn.schedules.StepDecay(0.4, drop=0.5, step_size=1)     # 0.4, 0.2, 0.1, ...


def test_a_schedule_sets_the_first_learning_rate_and_each_epochs():
    optimizer = O.SGD(step_decay(), momentum=0.5)
    assert optimizer.learning_rate == 0.4 and isinstance(optimizer.schedule,
                                                         dn.schedules.StepDecay)
    assert optimizer.learning_rate_for_epoch(2) == 0.1 and optimizer.learning_rate == 0.1
    optimizer.learning_rate_scale = 0.5                # a plateau cut composes
    assert optimizer.learning_rate_for_epoch(1) == 0.1 and optimizer.learning_rate == 0.1
    optimizer.learning_rate_scale = 0.0                # ... down to 0, allowed
    assert optimizer.learning_rate_for_epoch(1) == 0.0
    assert O.SGD(lambda epoch: 0.5 / (epoch + 1)).learning_rate_for_epoch(3) == 0.125


class BrokenAfter(dn.schedules.LearningRateSchedule):
    """A user's own schedule (not a checked LambdaSchedule): 0.1, 0.1, then `bad`."""

    def __init__(self, bad):
        self.bad = bad

    def _lr(self, epoch):
        return 0.1 if epoch < 2 else self.bad


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_a_schedule_value_out_of_range_names_the_epoch(bad):
    optimizer = O.SGD(BrokenAfter(bad))
    assert optimizer.learning_rate_for_epoch(1) == 0.1
    with pytest.raises(ValueError) as info:
        optimizer.learning_rate_for_epoch(2)
    assert str(info.value) == (f"learning-rate schedule gave {bad} for epoch 3 (schedule(2)); "
                               "expected a finite value >= 0")
    assert optimizer.learning_rate == 0.1


def test_without_a_schedule_an_assigned_learning_rate_is_checked_and_kept():
    optimizer = O.SGD(0.1)
    for value in (0.0, 0.5, 3.0):           # a callback may assign any rate >= 0
        optimizer.learning_rate = value
        assert optimizer.learning_rate_for_epoch(7) == value
    optimizer.learning_rate = np.float32(0.25)
    assert optimizer.learning_rate_for_epoch(0) == 0.25
    assert type(optimizer.learning_rate) is float
    optimizer.learning_rate = -0.5
    with pytest.raises(ValueError) as info:
        optimizer.learning_rate_for_epoch(0)
    assert str(info.value) == ("optimizer.learning_rate must be a finite float >= 0, got "
                               "-0.5 (float)")


def test_apply_gradients_checks_an_assigned_learning_rate_before_any_change():
    optimizer = O.SGD(0.1, momentum=0.5)
    w = W0.copy()
    optimizer.learning_rate = -0.5
    with pytest.raises(ValueError) as info:
        optimizer.apply_gradients([w], [GRADS[0].copy()])
    assert str(info.value) == ("optimizer.learning_rate must be a finite float >= 0, got "
                               "-0.5 (float)")
    assert optimizer.iterations == 0 and optimizer.state is None
    np.testing.assert_array_equal(w, W0)
    optimizer.learning_rate = 0.0           # a rate of 0 counts the step, moves nothing
    optimizer.apply_gradients([w], [GRADS[0].copy()])
    np.testing.assert_array_equal(w, W0)
    assert optimizer.iterations == 1
    np.testing.assert_array_equal(optimizer.state[0][0], GRADS[0])
    optimizer.learning_rate = 0.5
    optimizer.apply_gradients([w], [GRADS[1].copy()])
    np.testing.assert_allclose(w, W0 - 0.5 * (0.5 * GRADS[0] + GRADS[1]), rtol=1e-15)


def test_repr_shows_a_schedule_not_its_config():
    assert repr(O.SGD(step_decay())) == (
        "SGD(learning_rate=StepDecay(initial_learning_rate=0.4, drop=0.5, step_size=1), "
        "weight_decay=0.0, decay_bias=False, clipnorm=None, global_clipnorm=None, "
        "clipvalue=None, momentum=0.0, nesterov=False)")
    assert repr(O.Adam(0.5, amsgrad=True, clipvalue=2.0)) == (
        "Adam(learning_rate=0.5, weight_decay=0.0, decay_bias=False, clipnorm=None, "
        "global_clipnorm=None, clipvalue=2.0, beta_1=0.9, beta_2=0.999, epsilon=1e-08, "
        "amsgrad=True)")


def test_get_config_serializes_a_schedule_and_from_config_rebuilds_it():
    optimizer = O.RMSprop(step_decay(), centered=True)
    config = optimizer.get_config()
    assert config["learning_rate"] == dn.schedules.serialize(step_decay())
    assert isinstance(config["learning_rate"], dict)
    again = O.Optimizer.from_config(config)
    assert "class" in config                # the caller's dict is left whole
    assert type(again) is O.RMSprop and again.centered is True
    assert [again.learning_rate_for_epoch(e) for e in range(3)] == [0.4, 0.2, 0.1]


def test_from_config_refuses_an_unknown_class_by_name():
    with pytest.raises(ValueError) as info:
        O.from_config({"class": "Lion", "learning_rate": 0.1})
    assert str(info.value) == "unknown optimizer class in config: 'Lion'"
    with pytest.raises(ValueError, match="describes a AdamW, not a SGD"):
        O.SGD.from_config(O.AdamW().get_config())
    assert type(O.Adam.from_config(O.AdamW().get_config())) is O.AdamW   # a subclass is one


def test_get_returns_an_instance_as_is_and_names_unknown_strings():
    optimizer = O.SGD(0.3)
    assert O.get(optimizer) is optimizer
    with pytest.raises(ValueError) as info:
        O.get("lion")
    assert str(info.value) == ("optimizer must be one of ['adagrad', 'adam', 'adamw', "
                               "'rmsprop', 'sgd'] or a descend Optimizer, got 'lion' (str)")
    with pytest.raises(TypeError, match=r"got None \(NoneType\)$"):
        O.get(None)


# ---------------------------------------------------------------------------
# apply_gradients: what it refuses (before anything changes) and accepts
# ---------------------------------------------------------------------------
def assert_refused(optimizer, params, grads, error, message, **kwargs):
    before = [np.array(p, copy=True) for p in params]
    with pytest.raises(error) as info:
        optimizer.apply_gradients(params, grads, **kwargs)
    assert str(info.value) == message
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p, b)
    assert optimizer.iterations == 0 and optimizer.state is None


def test_apply_gradients_counts_params_grads_and_decay_flags():
    w, b = W0.copy(), np.zeros(2)
    assert_refused(O.SGD(0.1), [w, b], [GRADS[0].copy()], ValueError,
                   "apply_gradients needs one gradient (and decay flag) per parameter: got 2 "
                   "params, 1 grads")
    assert_refused(O.SGD(0.1), [w], [GRADS[0].copy(), np.zeros(2)], ValueError,
                   "apply_gradients needs one gradient (and decay flag) per parameter: got 1 "
                   "params, 2 grads")
    assert_refused(O.SGD(0.1), [w, b], [GRADS[0].copy(), np.zeros(2)], ValueError,
                   "apply_gradients needs one gradient (and decay flag) per parameter: got 2 "
                   "params, 2 grads, 1 decay flags", decay_flags=[True])
    assert_refused(O.SGD(0.1), [w, b], [GRADS[0].copy(), np.zeros(2)], ValueError,
                   f"n_threads must be an int in [1, {MAX_THREADS}], got 0 (int)", n_threads=0)


def test_apply_gradients_refuses_parameters_it_cannot_update_in_place():
    g = GRADS[0]
    assert_refused(O.SGD(0.1), [[1.0, -2.0, 0.5]], [g.copy()], TypeError,
                   "params[0] must be a writeable C-contiguous float32 or float64 array (it is "
                   "updated in place), got list")
    assert_refused(O.SGD(0.1), [W0.copy(), np.array([1, 2, 3])], [g.copy(), g.copy()],
                   TypeError, "params[1] must be a writeable C-contiguous float32 or float64 "
                   "array (it is updated in place), got a int64 array, C-contiguous True")
    strided = np.zeros(6)[::2]
    assert_refused(O.SGD(0.1), [strided], [g.copy()], TypeError,
                   "params[0] must be a writeable C-contiguous float32 or float64 array (it is "
                   "updated in place), got a float64 array, C-contiguous False")
    frozen = W0.copy()
    frozen.flags.writeable = False
    assert_refused(O.SGD(0.1), [frozen], [g.copy()], TypeError,
                   "params[0] must be a writeable C-contiguous float32 or float64 array (it is "
                   "updated in place), got a float64 array, C-contiguous True")


def test_apply_gradients_refuses_gradients_that_do_not_match_or_are_not_finite():
    w, b = W0.copy(), np.zeros(2)
    assert_refused(O.Adam(0.1), [w, b], [GRADS[0].copy(), np.zeros(3)], ValueError,
                   "grads[1] must be a float64 array of shape (2,) like params[1], got a "
                   "float64 array of shape (3,)")
    # a NaN in the last gradient: the first parameter is not updated either
    assert_refused(O.Adam(0.1), [w, b], [GRADS[0].copy(), np.array([0.0, np.nan])], ValueError,
                   "grads[1] contains NaN or infinite values; no update was made")
    assert_refused(O.Adam(0.1), [w], [np.array([0.0, -np.inf, 1.0])], ValueError,
                   "grads[0] contains NaN or infinite values; no update was made")


def test_a_gradient_given_as_a_list_takes_the_parameter_dtype():
    w32 = W0.astype(np.float32)
    O.SGD(0.5).apply_gradients([w32], [[0.5, -1.0, 0.25]])
    assert w32.dtype == np.float32
    np.testing.assert_array_equal(w32, np.array([0.75, -1.5, 0.375], np.float32))


def test_gradients_are_clipped_in_place_unless_they_cannot_be():
    # documented: grads are modified in place by clipping
    g = np.array([3.0, -4.0])                       # norm 5
    O.SGD(1.0, clipnorm=1.0).apply_gradients([np.zeros(2)], [g])
    np.testing.assert_allclose(g, [3.0 / (5 + 1e-6), -4.0 / (5 + 1e-6)], rtol=1e-15)
    # a read-only or strided gradient is copied, the caller's array is left alone
    frozen = np.array([3.0, -4.0])
    frozen.flags.writeable = False
    w = np.zeros(2)
    O.SGD(1.0, clipvalue=1.0).apply_gradients([w], [frozen])
    np.testing.assert_array_equal(w, [-1.0, 1.0])
    np.testing.assert_array_equal(frozen, [3.0, -4.0])
    strided = np.array([3.0, 9.0, -4.0, 9.0])[::2]
    w = np.zeros(2)
    O.SGD(1.0, clipvalue=1.0).apply_gradients([w], [strided])
    np.testing.assert_array_equal(w, [-1.0, 1.0])
    np.testing.assert_array_equal(strided, [3.0, -4.0])
    # a read-only gradient without clipping
    w = np.zeros(2)
    O.Adam(0.1).apply_gradients([w], [frozen])
    np.testing.assert_allclose(w, [-0.1, 0.1], rtol=1e-6)


def test_apply_gradients_on_threads_gives_the_one_thread_result():
    grads = [np.linspace(-1, 1, 12).reshape(3, 4), np.array([0.5, -0.25])]
    results = []
    for n_threads in (1, 2):
        params = [np.ones((3, 4)), np.ones(2)]
        optimizer = O.Adam(0.1, global_clipnorm=0.5)
        for _ in range(2):
            optimizer.apply_gradients(params, [g.copy() for g in grads], n_threads=n_threads)
        results.append(params)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-14)


def test_each_parameter_keeps_its_own_state_and_shape():
    # two arrays of different shapes, momentum: each velocity is its own gradient sum
    W, b = np.ones((2, 3)), np.zeros(2)
    gW, gb = np.arange(6.0).reshape(2, 3) / 10, np.array([1.0, -1.0])
    optimizer = O.SGD(0.1, momentum=0.5)
    for _ in range(2):
        optimizer.apply_gradients([W, b], [gW.copy(), gb.copy()], [True, False])
    assert optimizer.iterations == 2
    np.testing.assert_allclose(optimizer.state[0][0], 1.5 * gW, rtol=1e-15)
    np.testing.assert_allclose(optimizer.state[1][0], 1.5 * gb, rtol=1e-15)
    np.testing.assert_allclose(W, 1.0 - 0.1 * 2.5 * gW, rtol=1e-15)
    np.testing.assert_allclose(b, -0.1 * 2.5 * gb, rtol=1e-15)
    assert W.shape == (2, 3) and optimizer.state[0][0].shape == (2, 3)


def test_decay_flags_exempt_exactly_the_flagged_arrays():
    # SGD, weight decay 0.5, zero gradients: a decayed array shrinks by lr wd, the other stays
    W, b = np.array([2.0, -4.0]), np.array([1.0, 3.0])
    O.SGD(0.1, weight_decay=0.5).apply_gradients([W, b], [np.zeros(2), np.zeros(2)],
                                                  [False, True])
    np.testing.assert_array_equal(W, [2.0, -4.0])
    np.testing.assert_allclose(b, [0.95, 2.85], rtol=1e-15)
    W = np.array([2.0, -4.0])
    O.SGD(0.1, weight_decay=0.5).apply_gradients([W], [np.zeros(2)])   # default: all decay
    np.testing.assert_allclose(W, [1.9, -3.8], rtol=1e-15)


def test_iterations_count_one_per_call_and_feed_the_bias_correction():
    optimizer = O.Adam(0.1, beta_1=0.5, beta_2=0.5)
    w = np.array([0.0])
    for t in range(1, 4):
        optimizer.apply_gradients([w], [np.array([1.0])])
        assert optimizer.iterations == t
    # a constant gradient: m_hat = v_hat = 1 at every step, each step is lr / (1 + eps)
    assert w[0] == pytest.approx(-0.3 / (1 + 1e-8), rel=1e-14)


# ---------------------------------------------------------------------------
# clipping edges: bounds below 1, scaled values above 1, untouched arrays
# ---------------------------------------------------------------------------
def test_global_clipnorm_below_one_scales_every_array_together():
    grads = [np.array([0.3, -0.4]), np.array([[1.2]])]        # global norm 1.3
    params = [np.zeros(2), np.zeros((1, 1))]
    O.SGD(1.0, global_clipnorm=0.5).apply_gradients(params, [g.copy() for g in grads])
    scale = 0.5 / (1.3 + 1e-6)
    np.testing.assert_allclose(params[0], [-0.3 * scale, 0.4 * scale], rtol=1e-14)
    np.testing.assert_allclose(params[1], [[-1.2 * scale]], rtol=1e-14)


def test_clipping_to_a_large_norm_keeps_elements_above_one():
    # norm 50 clipped to 5: elements 3 and 4, nothing clipped to [-1, 1]
    for key in ("clipnorm", "global_clipnorm"):
        w = np.zeros(2)
        O.SGD(1.0, **{key: 5.0}).apply_gradients([w], [np.array([30.0, -40.0])])
        np.testing.assert_allclose(w, [-30.0 * 5 / (50 + 1e-6), 40.0 * 5 / (50 + 1e-6)],
                                   rtol=1e-14)
        assert w[0] < -2.9 and w[1] > 3.9


def test_gradients_inside_the_bound_are_untouched():
    for key in ("clipnorm", "global_clipnorm"):
        g = np.array([0.3, -0.4])                           # norm 0.5 < 0.75
        w = np.zeros(2)
        O.SGD(1.0, **{key: 0.75}).apply_gradients([w], [g])
        np.testing.assert_array_equal(w, [-0.3, 0.4])
        np.testing.assert_array_equal(g, [0.3, -0.4])
    # clipvalue: only elements beyond the bound change, the others keep their value
    w = np.zeros(4)
    O.SGD(1.0, clipvalue=0.5).apply_gradients([w], [np.array([0.1, -0.2, 0.7, -3.0])])
    np.testing.assert_array_equal(w, [-0.1, 0.2, -0.5, 0.5])


# ---------------------------------------------------------------------------
# build: names and when the state arrays are kept
# ---------------------------------------------------------------------------
def test_build_names_the_parameters_and_keeps_names_it_was_given():
    optimizer = O.Adam(0.1)
    params = [np.zeros((2, 2)), np.zeros(2)]
    optimizer.build(params, names=["layers.0.kernel", 7])
    assert optimizer.param_names == ["layers.0.kernel", "7"]
    optimizer.build(params)                      # as many arrays: the names stay
    assert optimizer.param_names == ["layers.0.kernel", "7"]
    optimizer.build(params + [np.zeros(3)])      # another count: numbered
    assert optimizer.param_names == ["0", "1", "2"]
    fresh = O.Adam(0.1)
    fresh.build(params)
    assert fresh.param_names == ["0", "1"]
    assert sorted(fresh.state_dict()["state"]) == ["0.exp_avg", "0.exp_avg_sq", "1.exp_avg",
                                                   "1.exp_avg_sq"]


def test_build_keeps_state_that_fits_and_rebuilds_what_does_not():
    optimizer = O.Adagrad(0.1, initial_accumulator_value=0.25)
    params = [np.zeros((2, 2)), np.zeros(2)]
    optimizer.build(params)
    kept = optimizer.state
    assert [[a.shape for a in s] for s in kept] == [[(2, 2)], [(2,)]]
    for s in kept:
        assert s[0].flags.c_contiguous and (s[0] == 0.25).all() and s[0].dtype == np.float64
        s[0][...] = 3.0
    optimizer.build([np.ones((2, 2)), np.ones(2)])
    assert optimizer.state is kept and (kept[1][0] == 3.0).all()
    for other in ([np.zeros((2, 2)), np.zeros(3)],                         # a shape
                  [np.zeros((2, 2), np.float32), np.zeros(2, np.float32)],  # a dtype
                  [np.zeros((2, 2))]):                                       # a count
        optimizer.build(params)
        optimizer.build(other)
        assert [[(a.shape, a.dtype) for a in s] for s in optimizer.state] == [
            [(p.shape, p.dtype)] for p in other]
        assert all((s[0] == 0.25).all() for s in optimizer.state)


def test_build_rebuilds_when_the_slots_change():
    optimizer = O.Adam(0.1)
    optimizer.build([np.zeros(2)])
    assert len(optimizer.state[0]) == 2
    optimizer.amsgrad = True                     # one more slot
    optimizer.build([np.zeros(2)])
    assert len(optimizer.state[0]) == 3


def test_initial_state_is_zeros_shaped_and_typed_as_the_parameter():
    optimizer = O.RMSprop(0.1)
    param = np.ones((3, 2), np.float32)
    optimizer.build([param])
    for array in optimizer.state[0]:
        assert array.shape == (3, 2) and array.dtype == np.float32
        assert array.flags.c_contiguous and not np.shares_memory(array, param)
        np.testing.assert_array_equal(array, 0.0)


# ---------------------------------------------------------------------------
# state: get/set_state and state_dict/load_state_dict
# ---------------------------------------------------------------------------
def test_get_state_holds_copies_under_its_keys():
    optimizer = O.SGD(0.1, momentum=0.5)
    assert optimizer.get_state() == {"iterations": 0, "learning_rate_scale": 1.0,
                                     "arrays": None}
    optimizer.apply_gradients([W0.copy()], [GRADS[0].copy()])
    optimizer.learning_rate_scale = 0.5
    state = optimizer.get_state()
    assert sorted(state) == ["arrays", "iterations", "learning_rate_scale"]
    assert (state["iterations"], state["learning_rate_scale"]) == (1, 0.5)
    np.testing.assert_array_equal(state["arrays"][0][0], GRADS[0])
    assert not np.shares_memory(state["arrays"][0][0], optimizer.state[0][0])


def test_set_state_restores_iterations_scale_and_each_array():
    source = O.Adam(0.1, amsgrad=True)
    params = [np.ones((2, 2)), np.ones(2)]
    grads = [np.array([[0.5, -1.0], [2.0, 0.25]]), np.array([1.0, -3.0])]
    source.apply_gradients(params, [g.copy() for g in grads])
    source.learning_rate_scale = 0.25
    state = source.get_state()
    for target in (O.Adam(0.1, amsgrad=True), None):
        if target is None:                       # built on the same shapes: copied in place
            target = O.Adam(0.1, amsgrad=True)
            target.build([np.ones((2, 2)), np.ones(2)])
        target.set_state(state)
        assert (target.iterations, target.learning_rate_scale) == (1, 0.25)
        for mine, theirs in zip(target.state, source.state):
            assert len(mine) == 3
            for a, b in zip(mine, theirs):
                np.testing.assert_array_equal(a, b)
                assert not np.shares_memory(a, b)
        # and they go on identically
        p1, p2 = [p.copy() for p in params], [p.copy() for p in params]
        source_copy = O.Adam(0.1, amsgrad=True)
        source_copy.set_state(source.get_state())
        source_copy.apply_gradients(p1, [g.copy() for g in grads])
        target.apply_gradients(p2, [g.copy() for g in grads])
        for a, b in zip(p1, p2):
            np.testing.assert_array_equal(a, b)


def test_set_state_of_fitting_arrays_keeps_each_built_array():
    optimizer = O.RMSprop(0.1)
    optimizer.build([np.zeros(2), np.zeros(3)])
    built = [list(s) for s in optimizer.state]
    arrays = [[np.full(2, 1.0), np.full(2, 2.0), np.full(2, 3.0)],
              [np.full(3, 4.0), np.full(3, 5.0), np.full(3, 6.0)]]
    optimizer.set_state({"iterations": 3, "arrays": arrays})
    for mine, before, theirs in zip(optimizer.state, built, arrays):
        for m, b, t in zip(mine, before, theirs):
            assert m is b
            np.testing.assert_array_equal(m, t)


def test_set_state_copies_arrays_it_cannot_copy_into():
    optimizer = O.SGD(0.1, momentum=0.5)
    given = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    optimizer.set_state({"iterations": 5, "arrays": [[given]]})
    assert optimizer.iterations == 5 and type(optimizer.iterations) is int
    (velocity,), = optimizer.state
    assert velocity.flags.c_contiguous and not np.shares_memory(velocity, given)
    np.testing.assert_array_equal(velocity, given)


def test_state_dict_of_each_optimizer_names_its_slots():
    params = [np.ones((2, 2)), np.ones(2)]
    names = ["layers.0.kernel", "layers.0.bias"]
    expected = {
        O.SGD(0.1): [],
        O.SGD(0.1, momentum=0.9): ["velocity"],
        O.Adagrad(0.1): ["sum_squares"],
        O.RMSprop(0.1): ["square_avg", "grad_avg", "velocity"],
        O.Adam(0.1): ["exp_avg", "exp_avg_sq"],
        O.AdamW(0.1, amsgrad=True): ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
    }
    for optimizer, slots in expected.items():
        assert optimizer.state_dict()["state"] is None
        optimizer.build(params, names)
        state = optimizer.state_dict()
        assert sorted(state) == ["iterations", "learning_rate", "learning_rate_scale",
                                 "schedule", "state"]
        assert sorted(state["state"]) == sorted(f"{n}.{s}" for n in names for s in slots)
        for key, array in state["state"].items():
            param = params[names.index(key.rsplit(".", 1)[0])]
            assert array.shape == param.shape
            assert not any(np.shares_memory(array, a) for s in optimizer.state for a in s)


def test_state_dict_values_are_plain_numbers_and_the_schedule_state():
    optimizer = O.SGD(step_decay())
    optimizer.iterations = np.int64(4)
    optimizer.learning_rate = np.float32(0.5)
    state = optimizer.state_dict()
    assert state["iterations"] == 4 and type(state["iterations"]) is int
    assert state["learning_rate"] == 0.5 and type(state["learning_rate"]) is float
    assert state["learning_rate_scale"] == 1.0 and type(state["learning_rate_scale"]) is float
    assert state["schedule"] == step_decay().state_dict()
    assert O.SGD(0.1).state_dict()["schedule"] is None


def test_load_state_dict_restores_everything_into_a_built_optimizer():
    source = O.Adam(0.1, amsgrad=True)
    params = [np.ones((2, 2)), np.ones(2)]
    names = ["k", "b"]
    source.build(params, names)
    grads = [np.array([[0.5, -1.0], [2.0, 0.25]]), np.array([1.0, -3.0])]
    source.apply_gradients(params, [g.copy() for g in grads])
    source.learning_rate, source.learning_rate_scale = 0.05, 0.5
    target = O.Adam(0.1, amsgrad=True)
    target.build([np.ones((2, 2)), np.ones(2)], names)
    built = [list(s) for s in target.state]
    target.load_state_dict(source.state_dict())
    assert (target.iterations, target.learning_rate, target.learning_rate_scale) == (1, 0.05,
                                                                                     0.5)
    for mine, before, theirs in zip(target.state, built, source.state):
        for m, b, t in zip(mine, before, theirs):
            assert m is b
            np.testing.assert_array_equal(m, t)
    # a state without arrays unbuilds
    target.load_state_dict({**source.state_dict(), "state": None})
    assert target.state is None


def test_load_state_dict_loads_the_schedule_state():
    schedule = dn.schedules.ReduceLROnPlateau(0.4, factor=0.5, patience=0)
    source = O.SGD(schedule)
    schedule.observe({"val_loss": 1.0})
    schedule.observe({"val_loss": 2.0})           # no improvement: one cut
    saved = source.state_dict()
    target = O.SGD(dn.schedules.ReduceLROnPlateau(0.4, factor=0.5, patience=0))
    target.load_state_dict(saved)
    assert target.schedule.state_dict() == saved["schedule"]
    assert target.schedule(0) == schedule(0) == 0.2


@pytest.mark.parametrize("key, value", [("iterations", np.bool_(True)),
                                        ("learning_rate", np.bool_(False)),
                                        ("learning_rate_scale", np.bool_(True)),
                                        ("learning_rate_scale", "1.0"),
                                        ("learning_rate_scale", math.nan),
                                        ("iterations", 2**62 + 5),
                                        ("learning_rate", -math.inf)])
def test_load_state_dict_refuses_numpy_bools_and_strings_and_changes_nothing(key, value):
    optimizer = O.SGD(0.1, momentum=0.5)
    optimizer.apply_gradients([W0.copy()], [GRADS[0].copy()])
    state = optimizer.state_dict()
    good = {**state, "iterations": 9, "learning_rate": 0.7, "learning_rate_scale": 0.3}
    with pytest.raises(ValueError, match=rf"^the optimizer's {key} must be .*, got "
                                         rf"{re.escape(repr(value))}$"):
        optimizer.load_state_dict({**good, key: value})
    assert (optimizer.iterations, optimizer.learning_rate, optimizer.learning_rate_scale) == (
        1, 0.1, 1.0)
    np.testing.assert_array_equal(optimizer.state[0][0], GRADS[0])


def test_load_state_dict_checks_the_arrays_before_the_schedule_and_scalars():
    optimizer = O.SGD(step_decay(), momentum=0.5)
    optimizer.build([np.zeros(2)])
    good = optimizer.state_dict()
    bad_array = {**good, "iterations": 5, "state": {"0.velocity": np.array([np.nan, 0.0])}}
    with pytest.raises(ValueError) as info:
        optimizer.load_state_dict(bad_array)
    assert str(info.value) == "optimizer state '0.velocity' contains NaN or infinite values"
    with pytest.raises(ValueError) as info:
        optimizer.load_state_dict({**good, "state": {"0.velocity": np.zeros(2, np.float32)}})
    assert str(info.value) == "optimizer state '0.velocity' has dtype float32, expected float64"
    with pytest.raises(ValueError) as info:
        optimizer.load_state_dict({**good, "state": {"0.velocity": [0.0, 0.0]}})
    assert str(info.value) == ("optimizer state '0.velocity' must be a numpy array (shape (2,), "
                               "dtype float64), got list")
    assert optimizer.iterations == 0
    np.testing.assert_array_equal(optimizer.state[0][0], [0.0, 0.0])


def test_load_state_dict_message_names_what_it_got():
    with pytest.raises(ValueError) as info:
        O.SGD(0.1).load_state_dict(None)
    assert str(info.value) == ("an optimizer state_dict has the keys ['iterations', "
                               "'learning_rate', 'learning_rate_scale', 'schedule', 'state'], "
                               "got NoneType")
    full = O.SGD(0.1).state_dict()
    with pytest.raises(ValueError, match=r"got \['extra', 'iterations', 'learning_rate', "
                                         r"'learning_rate_scale', 'schedule', 'state'\]$"):
        O.SGD(0.1).load_state_dict({**full, "extra": 1})


def test_an_optimizer_state_survives_a_model_save_and_load(tmp_path):
    """Through the public save/load: the restored optimizer continues the same path."""
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(16, 3)), rng.normal(size=(16, 2))
    for optimizer in (O.RMSprop(0.01, momentum=0.5, centered=True, epsilon=1e-4),
                      O.Adagrad(0.1, initial_accumulator_value=0.5),
                      O.AdamW(0.01, amsgrad=True, beta_1=0.8, clipnorm=0.5)):
        net = dn.Sequential([dn.Dense(4, activation="tanh"), dn.Dense(2)], input_dim=3,
                            dtype="float64", seed=0)
        net.compile(loss="mean_squared_error", optimizer=optimizer)
        net.fit(X, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
        net.save(tmp_path / "m.npz")
        again = dn.load(tmp_path / "m.npz")
        assert again.optimizer.get_config() == optimizer.get_config()
        assert again.optimizer.iterations == optimizer.iterations == 4
        for model in (net, again):
            model.fit(X, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
        for a, b in zip(net.get_weights(), again.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_state_built_on_a_fortran_ordered_parameter_is_c_ordered_and_live():
    # the kernels read each state array flat: built in the parameter's memory order, a
    # Fortran-ordered state would be updated in a copy and forget every step
    W = np.arange(6.0).reshape(2, 3)
    g = np.full((2, 3), 0.5)
    for optimizer, slot in ((O.SGD(0.1, momentum=0.5), 0), (O.Adagrad(0.1), 0),
                            (O.Adam(0.1), 1)):
        optimizer.build([np.asfortranarray(W)])
        assert all(a.flags.c_contiguous for a in optimizer.state[0])
        built = optimizer.state[0][slot]
        for _ in range(2):
            optimizer.apply_gradients([W.copy()], [g.copy()])
        assert optimizer.state[0][slot] is built
        expected = {O.SGD: 1.5 * g, O.Adagrad: 2 * g * g,
                    O.Adam: 0.001 * (1 + 0.999) * g * g}[type(optimizer)]
        np.testing.assert_allclose(built, expected, rtol=1e-15)


@pytest.mark.parametrize("cls", [O.SGD, O.Adagrad, O.RMSprop, O.Adam, O.AdamW])
@pytest.mark.parametrize("key", ["clipnorm", "global_clipnorm", "clipvalue"])
def test_every_optimizer_takes_the_base_settings(cls, key):
    optimizer = cls(0.5, decay_bias=True, **{key: 0.25})
    config = optimizer.get_config()
    assert config["decay_bias"] is True and optimizer.decay_bias is True
    assert config[key] == 0.25
    assert optimizer.clip_settings() == tuple(0.25 if k == key else 0.0 for k in (
        "clipnorm", "global_clipnorm", "clipvalue"))


def test_apply_gradients_runs_on_one_thread_by_default():
    # the documented default n_threads=1: the same bits as asking for one thread (a
    # two-thread sum of squares adds in another order, and the global clip follows it)
    rng = np.random.default_rng(7)
    g = rng.normal(size=(512, 256))                 # above the kernels' parallel threshold
    results = {}
    for n_threads in (None, 1):
        w = np.ones((512, 256))
        kwargs = {} if n_threads is None else {"n_threads": n_threads}
        O.SGD(1.0, global_clipnorm=1.0).apply_gradients([w], [g.copy()], **kwargs)
        results[n_threads] = w
    np.testing.assert_array_equal(results[None], results[1])


@pytest.mark.parametrize("cls", [O.SGD, O.RMSprop, O.Adam, O.AdamW, O.Adagrad])
@pytest.mark.parametrize("learning_rate", [True, "0.1", None, [0.1]])
def test_a_learning_rate_of_no_accepted_type_is_refused_by_its_own_name(cls, learning_rate):
    # a bool, string, None or list goes to schedules.get, whose message used to say
    # 'identifier', a name the user never wrote
    with pytest.raises(TypeError, match=r"^learning_rate must be a learning rate \(float\), "
                                        r"a LearningRateSchedule, .* got "):
        cls(learning_rate)


@pytest.mark.parametrize("name", ["Adagrad", "RMSprop", "Adam", "AdamW"])
@pytest.mark.parametrize("dtype, too_small, smallest", [("float32", 1e-38, 1.2e-38),
                                                         ("float64", 1e-310, 2.3e-308)])
def test_an_epsilon_that_vanishes_in_the_networks_dtype_is_refused_at_compile(
        name, dtype, too_small, smallest):
    # below the dtype's smallest normal number the updates flush epsilon to
    # zero, and a dead unit's zero gradient gave 0/0: a DivergenceError in
    # the first epoch that advised a smaller learning rate
    X, y = dn.datasets.load_digits(dtype=dtype)
    net = dn.Sequential([dn.Dense(16, activation="relu"), dn.Dense(10)], input_dim=64,
                        seed=0, dtype=dtype)
    with pytest.raises(ValueError, match=rf"epsilon must be at least .* {dtype}.* got "
                                         rf"{re.escape(repr(too_small))}"):
        net.compile("softmax_cross_entropy", getattr(O, name)(epsilon=too_small))
    assert net.optimizer is None or not isinstance(net.optimizer, getattr(O, name))
    net.compile("softmax_cross_entropy", getattr(O, name)(epsilon=smallest))
    net.fit(X, y, epochs=1, verbose=0)
    assert all(np.isfinite(w).all() for w in net.get_weights())


def test_an_epsilon_set_after_compile_is_refused_by_every_training_call():
    X, y = dn.datasets.load_digits()
    net = dn.Sequential([dn.Dense(10)], input_dim=64, seed=0)
    net.compile("softmax_cross_entropy", O.Adam())
    net.optimizer.epsilon = 1e-45
    before = [w.copy() for w in net.get_weights()]
    for call in (lambda: net.fit(X, y, verbose=0), lambda: net.partial_fit(X, y),
                 lambda: net.train_on_batch(X[:8], y[:8])):
        with pytest.raises(ValueError, match=r"epsilon must be at least .* got 1e-45"):
            call()
    assert net.classes_ is None and net.epochs_trained == 0
    assert all(a.tobytes() == b.tobytes() for a, b in zip(before, net.get_weights()))


def test_the_estimators_name_the_epsilon_they_were_given():
    from descend.estimators import MLPRegressor
    X, y = dn.datasets.load_digits()
    # the regressor scales epsilon by its loss scale (2 for one output)
    with pytest.raises(ValueError, match=r"epsilon must be at least 5\.877472e-39 here .* "
                                         r"got 1e-40$"):
        MLPRegressor(epsilon=1e-40).fit(X, y.astype(float))


@pytest.mark.parametrize("refit", [False, True])
def test_an_estimator_refusing_its_epsilon_keeps_its_fitted_attributes(refit):
    # was: classes_ and n_features_in_ of the refused fit were kept, and predict
    # raised an AttributeError (no net_) instead of NotFittedError, or a refit
    # paired the new classes_ with the old network
    from sklearn.exceptions import ConvergenceWarning, NotFittedError
    from descend.estimators import MLPClassifier
    X, y = dn.datasets.load_digits()
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, random_state=0)
    if refit:
        with pytest.warns(ConvergenceWarning):
            clf.fit(X, y)
    before = dict(vars(clf))
    with pytest.raises(ValueError, match=r"epsilon must be at least .* got 1e-45$"):
        clf.set_params(epsilon=1e-45).fit(X[:, :10], np.array(list("ab"))[y % 2])
    assert vars(clf).keys() == before.keys()
    assert all(vars(clf)[key] is value for key, value in before.items() if key != "epsilon")
    if refit:
        assert clf.predict(X[:3]).dtype.kind == "i"
    else:
        with pytest.raises(NotFittedError):
            clf.predict(X[:3])


# ------------------------------------------------------------- learning rate and dtype
F32_TINY, F64_TINY = 1.1754943508222875e-38, 2.2250738585072014e-308
LOW = ("learning_rate must be at least {tiny} when positive (the smallest normal {name}: "
       "a smaller rate moves no weight of normal size, and optimizers with state flush "
       "it to zero), got {value}")


@pytest.mark.parametrize("value, dtype, tiny", [
    (1e-46, np.float32, F32_TINY),          # 0.0 once rounded to float32
    (1e-320, np.float32, F32_TINY),
    (1.1754943e-38, np.float32, F32_TINY),  # below the bound by its 8th digit
    (1e-320, np.float64, F64_TINY),         # a float64 subnormal
])
def test_a_positive_learning_rate_the_dtype_flushes_is_refused(value, dtype, tiny):
    # it was accepted and trained nothing, while 0.0 was refused as "not > 0"
    name = np.dtype(dtype).name
    for optimizer in (O.SGD(value), O.Adam(value)):
        with pytest.raises(ValueError) as info:
            optimizer.check_dtype(dtype)
        assert str(info.value) == LOW.format(tiny=tiny, name=name, value=value)
        w = np.ones(2, dtype)                   # apply_gradients: nothing updated
        with pytest.raises(ValueError, match="^learning_rate must be at least"):
            optimizer.apply_gradients([w], [np.ones(2, dtype)])
        assert (w == 1).all() and optimizer.iterations == 0 and optimizer.state is None


def test_the_learning_rate_bounds_are_the_dtypes_normal_range():
    O.SGD(F32_TINY).check_dtype(np.float32)             # the smallest normal is fine
    O.SGD(1e-46).check_dtype(np.float64)                # a normal float64
    O.SGD(1e-300).check_dtype(np.float64)
    optimizer = O.SGD(0.1)
    optimizer.learning_rate = 0.0                       # assigned 0 pauses, as documented
    optimizer.check_learning_rate(np.float32)
    optimizer.learning_rate = 1e-40
    with pytest.raises(ValueError) as info:
        optimizer.check_learning_rate(np.float32)
    assert str(info.value) == LOW.format(tiny=F32_TINY, name="float32", value=1e-40)


def test_a_schedule_value_the_dtype_flushes_is_refused_naming_the_epoch():
    optimizer = O.SGD(dn.schedules.LambdaSchedule(lambda epoch: 0.1 if epoch < 3 else 1e-40))
    assert optimizer.learning_rate_for_epoch(2, np.float32) == 0.1
    with pytest.raises(ValueError) as info:
        optimizer.learning_rate_for_epoch(3, np.float32)
    assert str(info.value) == (
        "learning-rate schedule gave 1e-40 for epoch 4 (schedule(3)); learning_rate must be "
        f"at least {F32_TINY} when positive (the smallest normal float32: a smaller rate "
        "moves no weight of normal size, and optimizers with state flush it to zero)")
    assert optimizer.learning_rate == 0.1               # unchanged
    assert optimizer.learning_rate_for_epoch(3, np.float64) == 1e-40
    with pytest.raises(ValueError, match=r"schedule gave 1e\+39 for epoch 1 \(schedule\(0\)\); "
                                         r"learning_rate must be at most 3\.4028234663852886e"):
        O.SGD(dn.schedules.Constant(1e39)).learning_rate_for_epoch(0, np.float32)
    zero = O.SGD(dn.schedules.LinearWarmup(dn.schedules.Constant(0.1), 2))
    assert zero.learning_rate_for_epoch(0, np.float32) == 0.0   # 0 from a schedule: allowed
