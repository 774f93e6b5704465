"""Tests of descend.schedules against hand-computed sequences.

Expected learning rates are built here independently (recurrences, literal
values, explicit restart points), not by re-evaluating the module's
formulas.  Where PyTorch or scikit-learn is installed, the schedules are
also compared with their reference implementations.
"""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from descend import schedules

EPOCHS = 20


def seq(schedule, n=EPOCHS):
    return [schedule(e) for e in range(n)]


# ---------------------------------------------------------------------------
# closed-form schedules
# ---------------------------------------------------------------------------
def test_constant():
    assert seq(schedules.Constant(0.03)) == [0.03] * EPOCHS


def test_step_decay_by_recurrence():
    # halve at epochs 3, 6, 9, ...
    expected, lr = [], 0.1
    for epoch in range(EPOCHS):
        if epoch > 0 and epoch % 3 == 0:
            lr *= 0.5
        expected.append(lr)
    got = seq(schedules.StepDecay(0.1, drop=0.5, step_size=3))
    assert got == pytest.approx(expected, rel=1e-14)
    assert got[:7] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])


def test_step_decay_defaults():
    s = schedules.StepDecay(1.0)
    assert [s(e) for e in (0, 9, 10, 19, 20, 35)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]


def test_exponential_decay_continuous():
    # multiply by 0.9 ** (1/2) every epoch
    expected, lr = [], 0.2
    for _ in range(EPOCHS):
        expected.append(lr)
        lr *= math.sqrt(0.9)
    got = seq(schedules.ExponentialDecay(0.2, decay_rate=0.9, decay_epochs=2))
    assert got == pytest.approx(expected, rel=1e-12)


def test_exponential_decay_staircase():
    s = schedules.ExponentialDecay(1.0, decay_rate=0.5, decay_epochs=3, staircase=True)
    expected = [1.0] * 3 + [0.5] * 3 + [0.25] * 3 + [0.125] * 3 + [0.0625] * 3 + [0.03125] * 3
    assert seq(s, 18) == pytest.approx(expected, rel=1e-14)


def test_inverse_time_decay_values():
    s = schedules.InverseTimeDecay(1.0, power_t=0.5)
    expected = [1.0 / math.sqrt(t) for t in range(1, EPOCHS + 1)]  # t = epoch + 1
    assert seq(s) == pytest.approx(expected, rel=1e-14)
    s = schedules.InverseTimeDecay(0.3, power_t=1.0)
    assert seq(s, 4) == pytest.approx([0.3, 0.15, 0.1, 0.075], rel=1e-14)


def test_inverse_time_decay_matches_sklearn_invscaling():
    opt_mod = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    params = [np.zeros(1)]
    for power_t in (0.25, 0.5, 1.3):
        opt = opt_mod.SGDOptimizer(
            params, learning_rate_init=0.07, lr_schedule="invscaling", power_t=power_t
        )
        ours = schedules.InverseTimeDecay(0.07, power_t=power_t)
        for epoch in range(EPOCHS):
            # scikit-learn: learning_rate_init / (time_step + 1) ** power_t
            opt.iteration_ends(epoch)
            assert ours(epoch) == pytest.approx(opt.learning_rate, rel=1e-14)


def test_cosine_without_restarts():
    c = math.cos
    pi = math.pi
    s = schedules.CosineAnnealing(1.0, T_max=4)
    expected = [
        1.0,
        (1 + c(pi / 4)) / 2,
        0.5,
        (1 + c(3 * pi / 4)) / 2,
        0.0,
        # past T_max the closed form keeps going: back up to 1.0 at 2 * T_max
        (1 + c(3 * pi / 4)) / 2,
        0.5,
        (1 + c(pi / 4)) / 2,
        1.0,
        (1 + c(pi / 4)) / 2,
    ]
    assert seq(s, 10) == pytest.approx(expected, abs=1e-15)


def test_cosine_eta_min():
    s = schedules.CosineAnnealing(0.5, T_max=10, eta_min=0.1)
    assert s(0) == pytest.approx(0.5)
    assert s(5) == pytest.approx(0.3)  # halfway: (lr0 + eta_min) / 2
    assert s(10) == pytest.approx(0.1)
    assert all(0.1 - 1e-15 <= v <= 0.5 for v in seq(s, 40))


def restart_points(t0, t_mult, n):
    """Epochs at which SGDR cycles start, and their lengths, by walking."""
    starts, lengths, start, length = [], [], 0, t0
    while start < n:
        starts.append(start)
        lengths.append(length)
        start += length
        length *= t_mult
    return starts, lengths


@pytest.mark.parametrize("t0,t_mult", [(2, 2), (3, 1), (1, 3), (5, 2)])
def test_cosine_warm_restart_points(t0, t_mult):
    s = schedules.CosineAnnealing(0.8, T_max=t0, eta_min=0.05, T_mult=t_mult)
    starts, lengths = restart_points(t0, t_mult, 60)
    for start, length in zip(starts, lengths):
        assert s(start) == 0.8  # exact restart
        for k in range(length):
            if start + k >= 60:
                break
            expected = 0.05 + 0.75 * (1 + math.cos(math.pi * k / length)) / 2
            assert s(start + k) == pytest.approx(expected, abs=1e-14)


def test_cosine_warm_restarts_literal():
    # T_0 = 2, T_mult = 2: cycles [0, 2), [2, 6), [6, 14), [14, 30)
    s = schedules.CosineAnnealing(1.0, T_max=2, T_mult=2)
    restarts = [e for e in range(31) if s(e) == 1.0]
    assert restarts == [0, 2, 6, 14, 30]
    assert s(1) == pytest.approx(0.5)
    assert s(4) == pytest.approx(0.5)  # middle of the 4-epoch cycle
    assert s(10) == pytest.approx(0.5)  # middle of the 8-epoch cycle


def test_cosine_t_mult_one_is_sawtooth_not_smooth():
    saw = schedules.CosineAnnealing(1.0, T_max=4, T_mult=1)
    smooth = schedules.CosineAnnealing(1.0, T_max=4)
    assert saw(4) == 1.0 and smooth(4) == 0.0
    assert seq(saw, 8)[4:] == pytest.approx(seq(saw, 4))


# PyTorch 2.13.0's learning rates for epochs 0-29 (lr 0.5, eta_min 0.01), printed by
#   python -c "import torch
#   p = [torch.nn.Parameter(torch.zeros(1))]
#   for t0, t_mult in [(3, None), (3, 1), (2, 2), (4, 3)]:
#       opt = torch.optim.SGD(p, lr=0.5)
#       ref = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t0, eta_min=0.01)
#              if t_mult is None else torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
#                  opt, T_0=t0, T_mult=t_mult, eta_min=0.01))
#       lrs = []
#       for _ in range(30):
#           lrs.append(opt.param_groups[0]['lr']); opt.step(); ref.step()
#       print((t0, t_mult), lrs)"
# (T_mult None: CosineAnnealingLR, the smooth cosine; else CosineAnnealingWarmRestarts)
TORCH_COSINE = {
    (3, None): [
        0.5, 0.3775, 0.13250000000000006, 0.01, 0.13249999999999998, 0.3775000000000003,
        0.5000000000000003, 0.37750000000000034, 0.13250000000000026, 0.01,
        0.13249999999999998, 0.37749999999999956, 0.4999999999999997, 0.3774999999999998,
        0.13250000000000017, 0.01, 0.13249999999999998, 0.3775000000000012,
        0.5000000000000014, 0.3775000000000015, 0.13250000000000026, 0.01,
        0.13249999999999998, 0.37750000000000056, 0.5000000000000017, 0.377500000000001,
        0.1325000000000004, 0.01, 0.13249999999999998, 0.37750000000000145],
    (3, 1): [
        0.5, 0.3775, 0.13250000000000006, 0.5, 0.3775, 0.13250000000000006, 0.5, 0.3775,
        0.13250000000000006, 0.5, 0.3775, 0.13250000000000006, 0.5, 0.3775,
        0.13250000000000006, 0.5, 0.3775, 0.13250000000000006, 0.5, 0.3775,
        0.13250000000000006, 0.5, 0.3775, 0.13250000000000006, 0.5, 0.3775,
        0.13250000000000006, 0.5, 0.3775, 0.13250000000000006],
    (2, 2): [
        0.5, 0.255, 0.5, 0.4282411613907041, 0.255, 0.08175883860929586, 0.5,
        0.48135048546526527, 0.4282411613907041, 0.348757440929447, 0.255,
        0.16124255907055302, 0.08175883860929586, 0.02864951453473475, 0.5,
        0.49529239369879147, 0.48135048546526527, 0.4587100550141236, 0.4282411613907041,
        0.39111470708980256, 0.348757440929447, 0.30279712889395144, 0.255,
        0.2072028711060486, 0.16124255907055302, 0.11888529291019752, 0.08175883860929586,
        0.05128994498587639, 0.02864951453473475, 0.014707606301208546],
    (4, 3): [
        0.5, 0.4282411613907041, 0.255, 0.08175883860929586, 0.5, 0.4916518274408217,
        0.4671762239271875, 0.4282411613907041, 0.3775, 0.3184106660501176, 0.255,
        0.19158933394988245, 0.13250000000000006, 0.08175883860929586, 0.04282377607281252,
        0.01834817255917829, 0.5, 0.49906770103247766, 0.496277899487991,
        0.4916518274408217, 0.48522469209254754, 0.47704540782397925, 0.4671762239271875,
        0.455692250850803, 0.4426808885641496, 0.4282411613907041, 0.41248296437320214,
        0.3955262269060063, 0.3775, 0.35854147412647136],
}


@pytest.mark.parametrize("t0, t_mult", list(TORCH_COSINE))
def test_cosine_matches_pytorch(t0, t_mult):
    ours = schedules.CosineAnnealing(0.5, T_max=t0, eta_min=0.01, T_mult=t_mult)
    expected = TORCH_COSINE[(t0, t_mult)]
    assert [ours(epoch) for epoch in range(len(expected))] == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------------------
# warm-up
# ---------------------------------------------------------------------------
def test_linear_warmup_into_step_decay():
    inner = schedules.StepDecay(1.0, drop=0.5, step_size=2)
    s = schedules.LinearWarmup(inner, warmup_epochs=4, start_learning_rate=0.1)
    # target = inner(4) = 0.25; ramp 0.1 -> 0.25 in steps of 0.0375
    expected = [0.1, 0.1375, 0.175, 0.2125, 0.25, 0.25, 0.125, 0.125, 0.0625]
    assert seq(s, 9) == pytest.approx(expected, rel=1e-14)


def test_linear_warmup_clock_not_shifted():
    inner = schedules.CosineAnnealing(1.0, T_max=10)
    s = schedules.LinearWarmup(inner, warmup_epochs=3)
    for epoch in range(3, EPOCHS):
        assert s(epoch) == inner(epoch)
    assert s(0) == 0.0  # default start
    assert s(1) == pytest.approx(inner(3) / 3)
    assert s(2) == pytest.approx(2 * inner(3) / 3)


def test_linear_warmup_wraps_float_and_callable():
    s = schedules.LinearWarmup(0.2, warmup_epochs=4)
    assert seq(s, 6) == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2, 0.2])
    s = schedules.LinearWarmup(lambda e: 1.0 / (e + 1), warmup_epochs=2, start_learning_rate=0.5)
    # target = 1/3; halfway at epoch 1
    assert seq(s, 5) == pytest.approx([0.5, (0.5 + 1 / 3) / 2, 1 / 3, 1 / 4, 1 / 5])


def test_linear_warmup_rejects_plateau_and_bad_args():
    with pytest.raises(TypeError, match="ReduceLROnPlateau"):
        schedules.LinearWarmup(schedules.ReduceLROnPlateau(0.1), warmup_epochs=2)
    with pytest.raises(ValueError, match="warmup_epochs"):
        schedules.LinearWarmup(0.1, warmup_epochs=0)
    with pytest.raises(ValueError, match="start_learning_rate"):
        schedules.LinearWarmup(0.1, warmup_epochs=2, start_learning_rate=-0.1)
    with pytest.raises(TypeError, match="identifier"):
        schedules.LinearWarmup("fast", warmup_epochs=2)


# ---------------------------------------------------------------------------
# ReduceLROnPlateau
# ---------------------------------------------------------------------------
def run_plateau(schedule, metrics):
    """Simulate a training loop; return the lr used in each epoch."""
    used = []
    for epoch, value in enumerate(metrics):
        used.append(schedule(epoch))
        schedule.step(value)
    return used


def test_plateau_reduces_after_patience_flat_epochs():
    s = schedules.ReduceLROnPlateau(1.0, factor=0.5, patience=3)
    used = run_plateau(s, [1.0] * 11)
    # step 1 sets best; steps 2-4 are 3 non-improving -> reduced from epoch 4;
    # steps 5-7 -> reduced again from epoch 7; steps 8-10 -> from epoch 10
    assert used == [1.0] * 4 + [0.5] * 3 + [0.25] * 3 + [0.125]


def test_plateau_no_reduction_while_improving():
    s = schedules.ReduceLROnPlateau(1.0, patience=1)
    used = run_plateau(s, [1.0 - 0.01 * k for k in range(30)])
    assert used == [1.0] * 30
    assert s.wait == 0


def test_plateau_min_delta_is_absolute():
    s = schedules.ReduceLROnPlateau(1.0, factor=0.5, patience=2, min_delta=0.1)
    # decreases of 0.05 are below min_delta, so they do not count
    used = run_plateau(s, [1.0, 0.95, 0.90, 0.85])
    assert used == [1.0, 1.0, 1.0, 0.5]
    s = schedules.ReduceLROnPlateau(1.0, factor=0.5, patience=2, min_delta=0.1)
    used = run_plateau(s, [1.0, 0.85, 0.70, 0.55])
    assert used == [1.0] * 4


def test_plateau_cooldown():
    s = schedules.ReduceLROnPlateau(1.0, factor=0.1, patience=2, cooldown=2)
    used = run_plateau(s, [5.0] * 10)
    # reduce after step 3; steps 4 and 5 are cooldown (ignored); steps 6, 7
    # count -> reduce after step 7; steps 8, 9 cooldown
    assert used == pytest.approx([1.0] * 3 + [0.1] * 4 + [0.01] * 3, rel=1e-12)


def test_plateau_cooldown_still_tracks_best():
    s = schedules.ReduceLROnPlateau(1.0, factor=0.5, patience=1, cooldown=3)
    run_plateau(s, [3.0, 3.0])  # reduced, cooldown 3
    assert s(0) == 0.5
    s.step(1.0)  # improvement inside cooldown
    assert s.best == 1.0


def test_plateau_min_lr():
    s = schedules.ReduceLROnPlateau(1.0, factor=0.1, patience=1, min_lr=0.05)
    used = run_plateau(s, [1.0] * 6)
    assert used == pytest.approx([1.0, 1.0, 0.1, 0.05, 0.05, 0.05])


def test_plateau_modes():
    # auto -> max for accuracies
    s = schedules.ReduceLROnPlateau(1.0, monitor="val_accuracy", factor=0.5, patience=1)
    assert run_plateau(s, [0.5, 0.6, 0.7, 0.65]) == [1.0] * 4
    assert s(4) == 0.5
    s = schedules.ReduceLROnPlateau(1.0, monitor="score", mode="max", factor=0.5, patience=1)
    assert run_plateau(s, [1.0, 2.0, 3.0]) == [1.0] * 3
    s = schedules.ReduceLROnPlateau(
        1.0, monitor="val_accuracy", mode="min", factor=0.5, patience=1
    )
    run_plateau(s, [0.5, 0.6])
    assert s(2) == 0.5
    # auto -> min for losses
    s = schedules.ReduceLROnPlateau(1.0, monitor="loss", factor=0.5, patience=1)
    run_plateau(s, [0.5, 0.6])
    assert s(2) == 0.5


def test_plateau_infinite_metric_is_not_improvement():
    s = schedules.ReduceLROnPlateau(1.0, factor=0.5, patience=1)
    s.step(1.0)
    s.step(math.inf)
    assert s(0) == 0.5


def test_plateau_bad_metric():
    s = schedules.ReduceLROnPlateau(1.0, patience=2)
    # NaN is never an improvement (as Keras, PyTorch and the callback): it counts
    assert s.step(float("nan")) == 1.0 and s.wait == 1 and s.best == math.inf
    assert s.step(float("nan")) == 0.1 and s.wait == 0
    for bad in ("low", "0.5", True, None):
        with pytest.raises(TypeError, match="metric_value"):
            s.step(bad)
    s.step(np.float32(0.5))  # numpy scalars are fine
    assert s.best == 0.5


def test_plateau_state_dict_round_trip():
    a = schedules.ReduceLROnPlateau(1.0, factor=0.5, patience=2, cooldown=1)
    run_plateau(a, [3.0, 2.0, 2.5, 2.4, 2.3])
    state = a.state_dict()
    assert set(state) == {"learning_rate", "best", "wait", "cooldown_counter"}
    assert all(type(v) in (int, float) for v in state.values())
    b = schedules.ReduceLROnPlateau(1.0, factor=0.5, patience=2, cooldown=1)
    b.load_state_dict(json.loads(json.dumps(state)))
    tail = [2.6, 2.7, 1.0, 1.0, 1.0, 1.0]
    assert run_plateau(a, tail) == run_plateau(b, tail)
    # fresh state has best = +inf
    assert schedules.ReduceLROnPlateau(1.0).state_dict()["best"] == math.inf
    with pytest.raises(ValueError, match="keys"):
        b.load_state_dict({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="wait"):
        b.load_state_dict({**state, "wait": -1})


def test_plateau_reset():
    s = schedules.ReduceLROnPlateau(1.0, factor=0.5, patience=1)
    run_plateau(s, [1.0, 1.0, 1.0])
    s.reset()
    assert s(0) == 1.0 and s.best == math.inf and s.wait == 0


# PyTorch 2.13.0's ReduceLROnPlateau on 30 random cases (patience, cooldown, min_delta
# and 40 losses drawn as in the test below): the steps after which it cut the rate,
# printed by
#   python -c "import numpy as np, torch
#   p = [torch.nn.Parameter(torch.zeros(1))]
#   rng = np.random.default_rng(0)
#   for case in range(30):
#       patience, cooldown = int(rng.integers(1, 4)), int(rng.integers(0, 4))
#       min_delta = float(rng.choice([0.0, 0.05]))
#       opt = torch.optim.SGD(p, lr=1.0)
#       ref = torch.optim.lr_scheduler.ReduceLROnPlateau(
#           opt, mode='min', factor=0.5, patience=patience - 1, threshold=min_delta,
#           threshold_mode='abs', cooldown=cooldown, min_lr=0.01, eps=0.0)
#       values = np.round(rng.uniform(0, 1, 40) + np.linspace(0, -0.5, 40), 1)
#       cuts, lr = [], 1.0
#       for i, value in enumerate(values):
#           ref.step(float(value))
#           if opt.param_groups[0]['lr'] != lr:
#               cuts.append(i); lr = opt.param_groups[0]['lr']
#       print(cuts)"
TORCH_PLATEAU_CUTS = [
    [3, 8, 13, 21, 26, 31, 36],
    [1, 4, 7, 11, 14, 17, 20],
    [1, 5, 9, 13, 17, 21, 25],
    [4, 7, 10, 13, 16, 19, 22],
    [8, 12, 20, 24, 31, 35, 39],
    [6, 11, 16, 21, 28, 33, 38],
    [2, 8, 13, 20, 25, 30, 35],
    [3, 8, 13, 18, 25, 30, 35],
    [1, 4, 7, 10, 13, 16, 19],
    [2, 4, 6, 8, 10, 12, 14],
    [8, 13, 18, 23, 28, 34, 39],
    [6, 12, 18, 24, 30, 36],
    [1, 3, 5, 7, 9, 11, 13],
    [3, 7, 10, 13, 16, 19, 26],
    [3, 8, 13, 20, 28, 33, 38],
    [2, 4, 6, 9, 11, 13, 15],
    [3, 5, 9, 11, 13, 15, 17],
    [2, 6, 10, 14, 18, 22, 26],
    [3, 7, 9, 11, 14, 16, 19],
    [5, 8, 11, 18, 21, 26, 29],
    [3, 8, 14, 20, 25, 30, 35],
    [3, 9, 15, 21, 27, 33, 39],
    [9, 13, 17, 23, 30, 37],
    [3, 5, 7, 9, 11, 13, 15],
    [5, 8, 13, 16, 19, 22, 27],
    [3, 6, 9, 12, 15, 18, 23],
    [3, 9, 16, 24, 30, 37],
    [2, 8, 15, 20, 25, 30, 35],
    [3, 5, 7, 9, 11, 14, 16],
    [5, 11, 15, 19, 23, 28, 32],
]


def test_plateau_matches_pytorch_with_patience_offset():
    # PyTorch reduces after patience + 1 bad epochs (num_bad > patience);
    # ours after patience (Keras).  Cooldown counts agree.
    rng = np.random.default_rng(0)
    for cuts in TORCH_PLATEAU_CUTS:
        patience = int(rng.integers(1, 4))
        cooldown = int(rng.integers(0, 4))
        min_delta = float(rng.choice([0.0, 0.05]))
        ours = schedules.ReduceLROnPlateau(
            1.0, factor=0.5, patience=patience, min_delta=min_delta,
            cooldown=cooldown, min_lr=0.01,
        )
        values = np.round(rng.uniform(0, 1, 40) + np.linspace(0, -0.5, 40), 1)
        for i, value in enumerate(values):
            ours.step(float(value))
            n_cuts = sum(c <= i for c in cuts)
            # halved at each cut, floored at min_lr (0.5**7 < 0.01)
            assert ours(0) == pytest.approx(max(0.5 ** n_cuts, 0.01), rel=1e-12), (cuts, i)


# ---------------------------------------------------------------------------
# LambdaSchedule
# ---------------------------------------------------------------------------
def test_lambda_schedule():
    s = schedules.LambdaSchedule(lambda e: 0.1 * 0.9**e)
    assert seq(s, 3) == pytest.approx([0.1, 0.09, 0.081])
    assert isinstance(schedules.LambdaSchedule(lambda e: 1)(0), float)
    assert schedules.LambdaSchedule(lambda e: 0.0)(0) == 0.0


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_lambda_schedule_bad_value_names_epoch_and_value(bad):
    s = schedules.LambdaSchedule(lambda e: 0.1 if e < 3 else bad)
    s(2)
    with pytest.raises(ValueError) as info:
        s(3)
    message = str(info.value)
    assert "for epoch 4 (fn(3))" in message and repr(float(bad)) in message


def test_lambda_schedule_bad_types():
    with pytest.raises(TypeError, match="fn"):
        schedules.LambdaSchedule(0.1)
    with pytest.raises(TypeError, match=r"epoch 1 \(fn\(0\)\)"):
        schedules.LambdaSchedule(lambda e: "fast")(0)


# ---------------------------------------------------------------------------
# get / config
# ---------------------------------------------------------------------------
def test_get_variants():
    c = schedules.get(0.05)
    assert isinstance(c, schedules.Constant) and c(10) == 0.05
    assert isinstance(schedules.get(1), schedules.Constant)
    s = schedules.StepDecay(0.1)
    assert schedules.get(s) is s
    lam = schedules.get(lambda e: 0.1 / (e + 1))
    assert isinstance(lam, schedules.LambdaSchedule) and lam(1) == 0.05
    d = schedules.get(
        {"name": "exponential_decay", "initial_learning_rate": 1.0, "decay_rate": 0.5}
    )
    assert isinstance(d, schedules.ExponentialDecay) and d(2) == 0.25
    assert isinstance(schedules.get({"name": "StepDecay", "initial_learning_rate": 1.0}),
                      schedules.StepDecay)


@pytest.mark.parametrize("bad", ["0.1", None, True, [0.1], schedules.StepDecay])
def test_get_bad_type(bad):
    with pytest.raises(TypeError, match="identifier"):
        schedules.get(bad)


def test_get_bad_configs():
    with pytest.raises(ValueError, match="step_decay"):
        schedules.get({"name": "cyclic"})
    with pytest.raises(ValueError, match="name"):
        schedules.get({"initial_learning_rate": 0.1})
    with pytest.raises(ValueError, match="gamma"):
        schedules.get({"name": "step_decay", "initial_learning_rate": 0.1, "gamma": 2})
    with pytest.raises(ValueError, match="learning_rate"):
        schedules.get(-0.1)


@pytest.mark.parametrize(
    "schedule",
    [
        schedules.Constant(0.1),
        schedules.StepDecay(0.1, drop=0.25, step_size=4),
        schedules.ExponentialDecay(0.1, 0.96, decay_epochs=2.5, staircase=True),
        schedules.InverseTimeDecay(0.1, power_t=0.25),
        schedules.CosineAnnealing(0.1, T_max=5, eta_min=0.001),
        schedules.CosineAnnealing(0.1, T_max=5, T_mult=2),
        schedules.LinearWarmup(schedules.CosineAnnealing(0.1, T_max=5), 3, 0.01),
        schedules.ReduceLROnPlateau(0.1, monitor="val_acc", factor=0.2, patience=3,
                                    mode="max", min_delta=0.01, cooldown=2, min_lr=1e-4),
    ],
)
def test_config_round_trip_through_json(schedule):
    config = schedules.serialize(schedule)
    restored = schedules.get(json.loads(json.dumps(config)))
    assert type(restored) is type(schedule)
    assert restored.get_config() == config
    assert seq(restored, 30) == seq(schedule, 30)


def test_lambda_config_round_trips_in_process():
    fn = lambda e: 0.1  # noqa: E731
    restored = schedules.get(schedules.LambdaSchedule(fn).get_config())
    assert restored.fn is fn


def test_stateless_state_dict():
    s = schedules.StepDecay(0.1)
    assert s.state_dict() == {}
    s.load_state_dict({})
    with pytest.raises(ValueError):
        s.load_state_dict({"x": 1})


# ---------------------------------------------------------------------------
# argument validation
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make,arg,received",
    [
        (lambda: schedules.Constant(0.0), "learning_rate", "0.0"),
        (lambda: schedules.Constant(float("inf")), "learning_rate", "inf"),
        (lambda: schedules.StepDecay(-1.0), "initial_learning_rate", "-1.0"),
        (lambda: schedules.StepDecay(0.1, drop=1.0), "drop", "1.0"),
        (lambda: schedules.StepDecay(0.1, drop=0.0), "drop", "0.0"),
        (lambda: schedules.StepDecay(0.1, step_size=0), "step_size", "0"),
        (lambda: schedules.ExponentialDecay(0.1, decay_rate=1.5), "decay_rate", "1.5"),
        (lambda: schedules.ExponentialDecay(0.1, 0.5, decay_epochs=0), "decay_epochs", "0"),
        (lambda: schedules.InverseTimeDecay(0.1, power_t=-0.5), "power_t", "-0.5"),
        (lambda: schedules.CosineAnnealing(0.1, T_max=0), "T_max", "0"),
        (lambda: schedules.CosineAnnealing(0.1, T_max=5, T_mult=0), "T_mult", "0"),
        (lambda: schedules.CosineAnnealing(0.1, T_max=5, eta_min=-0.1), "eta_min", "-0.1"),
        (lambda: schedules.CosineAnnealing(0.1, T_max=5, eta_min=0.2), "eta_min", "0.2"),
        (lambda: schedules.ReduceLROnPlateau(0.1, factor=1.0), "factor", "1.0"),
        (lambda: schedules.ReduceLROnPlateau(0.1, factor=0.0), "factor", "0.0"),
        (lambda: schedules.ReduceLROnPlateau(0.1, patience=-1), "patience", "-1"),
        (lambda: schedules.ReduceLROnPlateau(0.1, cooldown=-1), "cooldown", "-1"),
        (lambda: schedules.ReduceLROnPlateau(0.1, min_delta=-1e-3), "min_delta", "-0.001"),
        (lambda: schedules.ReduceLROnPlateau(0.1, min_lr=0.5), "min_lr", "0.5"),
        (lambda: schedules.ReduceLROnPlateau(0.1, mode="up"), "mode", "up"),
    ],
)
def test_bad_arguments_raise_value_error(make, arg, received):
    with pytest.raises(ValueError) as info:
        make()
    message = str(info.value)
    assert arg in message and received in message


@pytest.mark.parametrize(
    "make,arg",
    [
        (lambda: schedules.Constant("0.1"), "learning_rate"),
        (lambda: schedules.StepDecay(0.1, step_size=2.5), "step_size"),
        (lambda: schedules.StepDecay(0.1, step_size=True), "step_size"),
        (lambda: schedules.ExponentialDecay(0.1, 0.5, staircase=1), "staircase"),
        (lambda: schedules.CosineAnnealing(0.1, T_max=5, T_mult=1.5), "T_mult"),
        (lambda: schedules.ReduceLROnPlateau(0.1, monitor=3), "monitor"),
    ],
)
def test_bad_argument_types(make, arg):
    with pytest.raises(TypeError, match=arg):
        make()


@pytest.mark.parametrize(
    "schedule",
    [schedules.Constant(0.1), schedules.ReduceLROnPlateau(0.1),
     schedules.LambdaSchedule(lambda e: 0.1)],
)
def test_epoch_validation(schedule):
    with pytest.raises(ValueError, match="epoch"):
        schedule(-1)
    with pytest.raises(TypeError, match="epoch"):
        schedule(1.5)
    with pytest.raises(TypeError, match="epoch"):
        schedule(True)
    assert schedule(np.int64(3)) == 0.1


# ---------------------------------------------------------------------------
# property-based
# ---------------------------------------------------------------------------
lrs = st.floats(1e-6, 10.0)
unit = st.floats(0.01, 0.99)


@settings(max_examples=100, deadline=None)
@given(lr0=lrs, drop=unit, step=st.integers(1, 10), rate=unit, power=st.floats(0.01, 3.0))
def test_property_decays_are_non_increasing_floats(lr0, drop, step, rate, power):
    for s in (
        schedules.StepDecay(lr0, drop, step),
        schedules.ExponentialDecay(lr0, rate, decay_epochs=step),
        schedules.ExponentialDecay(lr0, rate, decay_epochs=step, staircase=True),
        schedules.InverseTimeDecay(lr0, power),
    ):
        values = seq(s, 40)
        assert all(type(v) is float for v in values)
        assert values[0] == lr0
        assert all(b <= a for a, b in zip(values, values[1:]))
        assert all(v >= 0.0 for v in values)


@settings(max_examples=100, deadline=None)
@given(lr0=lrs, frac=st.floats(0.0, 1.0), t_max=st.integers(1, 12),
       t_mult=st.one_of(st.none(), st.integers(1, 4)), epoch=st.integers(0, 10_000))
def test_property_cosine_stays_in_range(lr0, frac, t_max, t_mult, epoch):
    eta_min = lr0 * frac
    s = schedules.CosineAnnealing(lr0, T_max=t_max, eta_min=eta_min, T_mult=t_mult)
    value = s(epoch)
    assert eta_min - 1e-12 * lr0 <= value <= lr0 * (1 + 1e-12)


# ---------------------------------------------------------------------------
# configs, reprs, states and messages, exactly (mutants of schedules.py that
# survived the tests above changed these and nothing else)
# ---------------------------------------------------------------------------
def _step():
    return schedules.StepDecay(1.0, drop=0.5, step_size=2)


@pytest.mark.parametrize("make, text, config", [
    (lambda: schedules.Constant(0.1), "Constant(learning_rate=0.1)",
     {"name": "constant", "learning_rate": 0.1}),
    (_step, "StepDecay(initial_learning_rate=1.0, drop=0.5, step_size=2)",
     {"name": "step_decay", "initial_learning_rate": 1.0, "drop": 0.5, "step_size": 2}),
    (lambda: schedules.CosineAnnealing(0.5, T_max=3, eta_min=0.01, T_mult=2),
     "CosineAnnealing(initial_learning_rate=0.5, T_max=3, eta_min=0.01, T_mult=2)",
     {"name": "cosine_annealing", "initial_learning_rate": 0.5, "T_max": 3,
      "eta_min": 0.01, "T_mult": 2}),
    (lambda: schedules.LinearWarmup(_step(), warmup_epochs=3, start_learning_rate=0.1),
     "LinearWarmup(schedule={'name': 'step_decay', 'initial_learning_rate': 1.0, "
     "'drop': 0.5, 'step_size': 2}, warmup_epochs=3, start_learning_rate=0.1)",
     {"name": "linear_warmup", "schedule": {"name": "step_decay",
      "initial_learning_rate": 1.0, "drop": 0.5, "step_size": 2},
      "warmup_epochs": 3, "start_learning_rate": 0.1}),
    (lambda: schedules.ReduceLROnPlateau(1.0, factor=0.5, patience=2),
     "ReduceLROnPlateau(initial_learning_rate=1.0, monitor='val_loss', factor=0.5, "
     "patience=2, mode='auto', min_delta=0.0001, cooldown=0, min_lr=0.0)",
     {"name": "reduce_lr_on_plateau", "initial_learning_rate": 1.0, "monitor": "val_loss",
      "factor": 0.5, "patience": 2, "mode": "auto", "min_delta": 0.0001, "cooldown": 0,
      "min_lr": 0.0}),
])
def test_config_and_repr_are_exact(make, text, config):
    schedule = make()
    assert repr(schedule) == text
    assert schedule.get_config() == config


def test_linear_warmup_state_is_its_inner_schedules():
    plain = schedules.LinearWarmup(_step(), warmup_epochs=1)
    assert plain.state_dict() == {"schedule": {}}
    plain.load_state_dict({"schedule": {}})
    for bad in ({}, [], {"schedule": {}, "extra": 1}):
        with pytest.raises(ValueError, match=r"^state must be a dict with the single key "
                                             r"'schedule', got "):
            plain.load_state_dict(bad)
    with pytest.raises(ValueError, match=r"^StepDecay is stateless; state must be an "
                                         r"empty dict, got \{'a': 1\}$"):
        plain.load_state_dict({"schedule": {"a": 1}})
    # warmup_epochs = 1 is the smallest: epoch 0 ramps, epoch 1 is the inner schedule's
    assert [plain(0), plain(1), plain(2)] == [0.0, 1.0, 0.5]


@pytest.mark.parametrize("call, error, message", [
    (lambda: schedules.Constant(-1), ValueError,
     r"^learning_rate must be a finite float > 0, got -1 \(int\)$"),
    (lambda: schedules.LinearWarmup(schedules.Constant(1.0), warmup_epochs=0), ValueError,
     r"^warmup_epochs must be an int >= 1, got 0 \(int\)$"),
    (lambda: schedules.LambdaSchedule(3), TypeError,
     r"^fn must be a callable, got 3 \(int\)$"),
    (lambda: schedules.LambdaSchedule(lambda e: "x")(0), TypeError,
     r"^learning-rate function returned str 'x' for epoch 1 \(fn\(0\)\); expected a finite real "
     r"number >= 0$"),
    (lambda: schedules.LambdaSchedule(lambda e: -1.0)(0), ValueError,
     r"^learning-rate function returned -1.0 for epoch 1 \(fn\(0\)\); expected a finite real "
     r"number >= 0$"),
    (lambda: schedules.LinearWarmup(schedules.ReduceLROnPlateau(1.0), warmup_epochs=2),
     TypeError, r"^schedule must be an epoch-based schedule; ReduceLROnPlateau cannot be "
                r"wrapped by LinearWarmup$"),
    (lambda: schedules.Constant(1.0).load_state_dict({"a": 1}), ValueError,
     r"^Constant is stateless; state must be an empty dict, got \{'a': 1\}$"),
])
def test_messages_are_exact(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("key, value, error, message", [
    ("learning_rate", -1.0, ValueError,
     r"^state\['learning_rate'\] must be a finite float > 0, got -1.0 \(float\)$"),
    ("best", float("nan"), ValueError,
     r"^state\['best'\] must be a float \(not NaN\), got nan \(float\)$"),
    ("best", "x", TypeError, r"^state\['best'\] must be a float \(not NaN\), got 'x' \(str\)$"),
])
def test_plateau_state_is_checked_with_exact_messages(key, value, error, message):
    plateau = schedules.ReduceLROnPlateau(1.0)
    state = {**plateau.state_dict(), key: value}
    with pytest.raises(error, match=message):
        plateau.load_state_dict(state)
    assert plateau.state_dict()["best"] == math.inf      # nothing changed


def test_plateau_defaults_and_initial_state_are_exact():
    plateau = schedules.ReduceLROnPlateau(1.0)
    assert plateau.get_config() == {
        "name": "reduce_lr_on_plateau", "initial_learning_rate": 1.0, "monitor": "val_loss",
        "factor": 0.1, "patience": 10, "mode": "auto", "min_delta": 0.0001, "cooldown": 0,
        "min_lr": 0.0}
    assert plateau.state_dict() == {"learning_rate": 1.0, "best": math.inf, "wait": 0,
                                    "cooldown_counter": 0}


@pytest.mark.parametrize("monitor, after", [("val_accuracy", 1.0), ("accuracy", 1.0),
                                            ("r2", 1.0), ("val_r2", 1.0), ("loss", 0.25),
                                            ("val_loss", 0.25)])
def test_plateau_mode_auto_maximizes_accuracy_and_r2(monitor, after):
    plateau = schedules.ReduceLROnPlateau(1.0, monitor=monitor, patience=1, factor=0.5,
                                          min_delta=0.0)
    for value in (1.0, 2.0, 3.0):            # rising: progress for a maximized metric
        plateau.step(value)
    assert plateau(0) == after


def test_plateau_at_its_floor_does_not_count_a_cut():
    plateau = schedules.ReduceLROnPlateau(1.0, patience=1, factor=0.5, min_lr=0.5,
                                          min_delta=0.0)
    for value in (1, 1, 1, 1, 1):
        plateau.step(value)
    assert plateau.state_dict() == {"learning_rate": 0.5, "best": 1.0, "wait": 3,
                                    "cooldown_counter": 0}


def test_floors_equal_to_the_start_are_allowed():
    assert schedules.CosineAnnealing(0.5, T_max=3, eta_min=0.5)(1) == 0.5
    assert schedules.ReduceLROnPlateau(1.0, min_lr=1.0).min_lr == 1.0


@pytest.mark.parametrize("call, error, message", [
    (lambda: schedules.ReduceLROnPlateau(1.0).load_state_dict(
        {**schedules.ReduceLROnPlateau(1.0).state_dict(), "wait": -1}),
     ValueError, r"^state\['wait'\] must be an int >= 0, got -1 \(int\)$"),
    (lambda: schedules.ReduceLROnPlateau(1.0).load_state_dict(
        {**schedules.ReduceLROnPlateau(1.0).state_dict(), "cooldown_counter": -1}),
     ValueError, r"^state\['cooldown_counter'\] must be an int >= 0, got -1 \(int\)$"),
    (lambda: schedules.ReduceLROnPlateau(1.0).step("x"), TypeError,
     r"^ReduceLROnPlateau.step: metric_value must be a real number, got 'x' \(str\)$"),
    (lambda: schedules.ReduceLROnPlateau(1.0, monitor=3), TypeError,
     r"^ReduceLROnPlateau: monitor must be a non-empty str, got 3 \(int\)$"),
    (lambda: schedules.ReduceLROnPlateau(1.0, min_lr=-1), ValueError,
     r"^ReduceLROnPlateau: min_lr must be a finite float >= 0, got -1 \(int\)$"),
    (lambda: schedules.ReduceLROnPlateau(1.0, min_lr=2.0), ValueError,
     r"^ReduceLROnPlateau: min_lr must be <= initial_learning_rate \(1.0\), "
     r"got 2.0 \(float\)$"),
    (lambda: schedules.CosineAnnealing(0.5, T_max=3, eta_min=0.6), ValueError,
     r"^eta_min must be <= initial_learning_rate \(0.5\), got 0.6 \(float\)$"),
])
def test_plateau_and_cosine_messages_are_exact(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("make, name", [
    (lambda: schedules.StepDecay(-1.0, drop=0.5, step_size=2), "initial_learning_rate"),
    (lambda: schedules.StepDecay(1.0, drop=1.5, step_size=2), "drop"),
    (lambda: schedules.StepDecay(1.0, drop=0.5, step_size=0), "step_size"),
    (lambda: schedules.ExponentialDecay(-1.0, decay_rate=0.5), "initial_learning_rate"),
    (lambda: schedules.ExponentialDecay(1.0, decay_rate=1.5), "decay_rate"),
    (lambda: schedules.ExponentialDecay(1.0, decay_rate=0.5, decay_epochs=0), "decay_epochs"),
    (lambda: schedules.ExponentialDecay(1.0, decay_rate=0.5, staircase="no"), "staircase"),
    (lambda: schedules.InverseTimeDecay(-1.0), "initial_learning_rate"),
    (lambda: schedules.InverseTimeDecay(1.0, power_t=0), "power_t"),
    (lambda: schedules.CosineAnnealing(-1.0, T_max=3), "initial_learning_rate"),
    (lambda: schedules.CosineAnnealing(1.0, T_max=0), "T_max"),
    (lambda: schedules.CosineAnnealing(1.0, T_max=3, eta_min=-1.0), "eta_min"),
    (lambda: schedules.CosineAnnealing(1.0, T_max=3, T_mult=0), "T_mult"),
    (lambda: schedules.StepDecay(1.0, drop=0.5, step_size=2)(-1), "epoch"),
])
def test_every_bad_argument_is_named_first_in_its_message(make, name):
    with pytest.raises((ValueError, TypeError), match=rf"^{name} must be "):
        make()


def test_inverse_time_decay_default_power_is_one_half():
    s = schedules.InverseTimeDecay(1.0)
    assert s(3) == pytest.approx(1.0 / (1 + 3) ** 0.5, rel=1e-15)   # lr0 / (1 + t)^0.5


def test_get_names_what_it_takes_and_what_it_got():
    with pytest.raises(TypeError) as info:
        schedules.get([1])
    assert str(info.value) == ("identifier must be a learning rate (float), a "
                               "LearningRateSchedule, a config dict or a callable epoch -> "
                               "lr, got [1] (list)")


def test_plateau_schedule_names_itself_in_a_bad_initial_learning_rate():
    with pytest.raises(ValueError) as info:
        schedules.ReduceLROnPlateau(-1.0)
    assert str(info.value) == ("ReduceLROnPlateau: initial_learning_rate must be a finite "
                               "float > 0, got -1.0 (float)")


def test_a_schedule_without_parameters_has_the_base_config():
    class Half(schedules.LearningRateSchedule):
        name = "half"

        def _lr(self, epoch):
            return 0.5
    assert Half().get_config() == {"name": "half"}
    assert Half()(3) == 0.5


def test_serialize_names_what_it_got_instead_of_a_schedule():
    with pytest.raises(TypeError) as info:
        schedules.serialize(0.1)
    assert str(info.value) == "schedule must be a LearningRateSchedule, got 0.1 (float)"
