"""descend.plans: the machine profile, the plan chosen from it, and every
plan's results against the per-layer path (conftest.py turns profiling off
for the other tests; here fake profiles make the choices deterministic)."""
import json
import time

import numpy as np
import pytest

import descend as dn
from descend import _sparse, plans, training
from descend._contract import Activation
from descend._train import EpochRunner

MNIST_LIKE = ((784, 256), (256, 128), (128, 10))
WIDE = ((784, 1024), (1024, 1024), (1024, 10))


def fake_profile(small_rates=(70, 40, 110, 130), large_rates=(6, 35, 86, 100),
                 break_even=0.185):
    """A profile shaped like the Intel Xeon's (float32 and float64 alike)."""
    rows = [str(r) for r in plans.PROFILE_ROWS]
    table = {"256": dict(zip(rows, small_rates)), "1024": dict(zip(rows, large_rates))}
    return {"gemm": {"float32": table, "float64": table},
            "sparse_break_even": {"float32": break_even, "float64": break_even / 2}}


def workload(shapes=MNIST_LIKE, batch_size=128, density=0.19, cores=2, dtype="float32",
             input_dropout=False):
    return plans.Workload(shapes, dtype, batch_size, density, cores,
                          input_dropout=input_dropout)


# ---------------------------------------------------------------- the plan
@pytest.mark.parametrize("batch_size, rows", [(1, 4), (32, 4), (127, 4), (128, 64),
                                              (1024, 512)])
def test_the_defaults_are_the_constants_measured_on_the_amd_epyc(batch_size, rows):
    plan = plans.plan_for(workload(batch_size=batch_size), None)
    assert plan.sample_rows == rows
    assert plan.kernel_rows == ((64, 64, 64) if batch_size <= 64 else (392, 128, 64))
    assert plan.source == "defaults"
    assert plans.plan_for(workload(density=0.35), None).sparse_input
    assert not plans.plan_for(workload(density=0.36), None).sparse_input


def test_a_wide_net_gets_sample_blocks_that_reuse_its_kernels():
    """4-row blocks against a 1024 x 1024 kernel run at 6 GFLOP/s in the
    fake profile, 64-row blocks at 86: the plan takes the faster."""
    profile = fake_profile()
    assert plans.plan_for(workload(WIDE, batch_size=64), profile).sample_rows == 64
    assert plans.plan_for(workload(MNIST_LIKE, batch_size=32), profile).sample_rows == 4


def test_the_sparse_first_layer_leaves_the_default_only_beyond_the_margin():
    """The default (sparse up to 35% non-zero) holds unless the profile's
    break-even says the dense path is 15% faster at the workload's density:
    break-even 0.17 -> dense above 0.17 / 0.85 = 0.2; MNIST's 19% stays sparse
    (a profile taken under load put the break-even near 19% and flipped it)."""
    profile = fake_profile(break_even=0.17)
    assert plans.PLAN_MARGIN == 0.15
    assert plans.plan_for(workload(batch_size=1024, density=0.19), profile).sparse_input
    assert plans.plan_for(workload(batch_size=1024, density=0.199), profile).sparse_input
    assert not plans.plan_for(workload(batch_size=1024, density=0.201), profile).sparse_input
    assert plans.sparse_density_limit(profile, workload(dtype="float64")) == pytest.approx(0.1)
    assert not plans.plan_for(workload(density=0.11, dtype="float64"), profile).sparse_input
    # above the default's 35% the sparse path must win by the margin too
    high = fake_profile(break_even=0.5)
    assert plans.plan_for(workload(density=0.42), high).sparse_input
    assert not plans.plan_for(workload(density=0.43), high).sparse_input
    # dropout on the input needs the dense rows, whatever the density
    assert not plans.plan_for(workload(density=0.01, input_dropout=True), profile).sparse_input


def test_the_break_even_density_follows_the_batch_size():
    """The profile measures the break-even at a few batch sizes; a workload's
    is log-linear between them (clamped): 10% at batch 16 and 40% at 1024
    give 20% at 128, so MNIST's 19% runs dense at batch 16 (limit 0.1 / 0.85)
    and sparse from batch 128 up."""
    profile = fake_profile()
    profile["sparse_break_even"]["float32"] = {"16": 0.1, "1024": 0.4}
    assert plans.sparse_break_even(profile, "float32", 128) == pytest.approx(0.2)
    assert plans.sparse_break_even(profile, "float32", 1) == pytest.approx(0.1)
    assert plans.sparse_break_even(profile, "float32", 4096) == pytest.approx(0.4)
    assert plans.sparse_break_even(profile, "float64", 128) == pytest.approx(0.185 / 2)
    assert not plans.plan_for(workload(batch_size=16), profile).sparse_input
    assert plans.plan_for(workload(batch_size=128), profile).sparse_input
    assert plans.plan_for(workload(batch_size=1024), profile).sparse_input
    assert plans.sparse_density_limit(profile, workload(batch_size=16)) == pytest.approx(
        0.1 / 0.85)


def test_the_profile_probe_runs_the_first_layer_of_an_epoch_both_ways():
    """Both runs do the epoch's whole work (a run that skipped some would
    look faster and tip the plan): z = x . w and out = w - 0.001 x^T dz,
    batch by batch, in the plan's blocks."""
    rng = np.random.default_rng(8)
    x = sparse_rows(rng, 45, 30, 0.2, np.float64)
    w, dz = rng.normal(size=(30, 7)), rng.normal(size=(45, 7))
    for dense in (False, True):
        run = _sparse.SparseLayerRun(x, w, dz, dense=dense, batch_size=16, sample_rows=6,
                                     kernel_rows=8)
        run()
        z, out = run.outputs()
        np.testing.assert_allclose(z, x @ w, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out, w - 0.001 * x.T @ dz, rtol=1e-12, atol=1e-12)


def test_the_plan_is_a_function_of_the_profile_and_the_workload_only():
    profile = fake_profile()
    first = [plans.plan_for(workload(s, b), profile) for s in (MNIST_LIKE, WIDE)
             for b in (1, 8, 32, 64, 128, 256, 1024)]
    again = [plans.plan_for(workload(s, b), json.loads(json.dumps(profile)))
             for s in (MNIST_LIKE, WIDE) for b in (1, 8, 32, 64, 128, 256, 1024)]
    assert first == again


def test_forced_fields_override_the_choice():
    plan = plans.plan_for(workload(), fake_profile(),
                          {"sparse_input": False, "sample_rows": 7, "kernel_rows": 5})
    # (by_columns, not forced, from the profile)
    assert (plan.sparse_input, plan.sample_rows, plan.kernel_rows, plan.source) == (
        False, 7, (5, 5, 5), "forced+profile")
    with pytest.raises(ValueError, match="fields"):
        plans.plan_for(workload(), None, {"rows": 3})
    with pytest.raises(ValueError, match="sample_rows"):
        plans.plan_for(workload(), None, {"sample_rows": 0})
    with pytest.raises(ValueError, match="kernel_rows"):
        plans.plan_for(workload(), None, {"kernel_rows": (1, 2)})


def test_descend_plan_environment_variable(monkeypatch):
    monkeypatch.setenv("DESCEND_PLAN", "sparse_input=0, sample_rows=16")
    assert plans.forced_from_env() == {"sparse_input": False, "sample_rows": 16}
    monkeypatch.setenv("DESCEND_PLAN", '{"kernel_rows": [8, 8, 8]}')
    assert plans.forced_from_env() == {"kernel_rows": [8, 8, 8]}
    monkeypatch.setenv("DESCEND_PLAN", "rows=3")
    with pytest.raises(ValueError, match="DESCEND_PLAN"):
        plans.forced_from_env()


# ------------------------------------------------------------- the profile
@pytest.fixture
def profile_dir(tmp_path, monkeypatch):
    """Profiling on, the cache in a temporary directory, a counted fake measurement."""
    monkeypatch.setenv("DESCEND_PROFILE", "1")
    monkeypatch.setenv("DESCEND_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(plans, "_loaded", {})
    calls = []

    def measure():
        calls.append(1)
        return {**fake_profile(), "seconds": 0.5, "measured_at": int(time.time()),
                "cores": plans.usable_cores()}
    monkeypatch.setattr(plans, "measure_profile", measure)
    return tmp_path, calls


def test_the_profile_is_measured_once_persisted_and_refreshable(profile_dir, monkeypatch):
    directory, calls = profile_dir
    first = plans.machine_profile()
    assert len(calls) == 1 and first["path"].startswith(str(directory))
    with open(first["path"]) as f:
        stored = json.load(f)
    assert stored["key"]["cpu"]["model"] and stored["gemm"] == first["gemm"]
    monkeypatch.setattr(plans, "_loaded", {})      # a new process: read from the file
    assert plans.machine_profile()["gemm"] == first["gemm"] and len(calls) == 1
    plans.machine_profile(refresh=True)
    assert len(calls) == 2
    assert "profile:" in plans.describe() and "GFLOP/s" in plans.describe()


def test_a_profile_of_other_libraries_is_not_used(profile_dir, monkeypatch):
    directory, calls = profile_dir
    plans.machine_profile()
    key = plans.profile_key()
    monkeypatch.setattr(plans, "_loaded", {})
    monkeypatch.setattr(plans, "profile_key", lambda: {**key, "numpy": "0.0"})
    plans.machine_profile()
    assert len(calls) == 2 and len(list(directory.iterdir())) == 2


def test_a_stale_profile_is_measured_again(profile_dir, monkeypatch):
    """Older than PROFILE_MAX_AGE_DAYS, or measured with another number of
    usable cores: measured again (and overwritten); a fresh one is kept."""
    directory, calls = profile_dir
    first = plans.machine_profile()
    key = plans.profile_key()
    assert not plans.profile_is_stale(first, key)
    day = 86400
    assert plans.profile_is_stale({**first, "measured_at": time.time() - 31 * day}, key)
    assert not plans.profile_is_stale({**first, "measured_at": time.time() - 29 * day}, key)
    assert plans.profile_is_stale({**first, "measured_at": time.time() + day}, key)
    assert plans.profile_is_stale({**first, "cores": plans.usable_cores() + 1}, key)
    assert plans.profile_is_stale({k: v for k, v in first.items() if k != "measured_at"}, key)
    assert plans.profile_is_stale(first, {**key, "scipy": "0.0"})
    with open(first["path"]) as f:
        stored = json.load(f)
    with open(first["path"], "w") as f:
        json.dump({**stored, "measured_at": stored["measured_at"] - 31 * day}, f)
    monkeypatch.setattr(plans, "_loaded", {})
    again = plans.machine_profile()
    assert len(calls) == 2 and again["path"] == first["path"]
    with open(first["path"]) as f:
        assert not plans.profile_is_stale(json.load(f), key)
    monkeypatch.setattr(plans, "_loaded", {})
    monkeypatch.setattr(plans, "usable_cores", lambda: 64)
    plans.machine_profile()
    assert len(calls) == 3


@pytest.mark.parametrize("corrupt", [
    # ZeroDivisionError in _phase_a_seconds
    lambda p: p["gemm"]["float32"]["256"].update({"4": 0}),
    # TypeError: can't multiply sequence by non-int of type 'float'
    lambda p: p["sparse_break_even"].update(float32="x"),
    # KeyError: 'float32'
    lambda p: p["gemm"].pop("float32"),
    # ValueError: min() arg is an empty sequence
    lambda p: p["gemm"]["float32"].clear()], ids=["zero", "text", "missing", "empty"])
def test_a_corrupt_stored_profile_is_measured_again_not_an_error_in_every_fit(
        profile_dir, monkeypatch, corrupt):
    # found by the breaker pass (tests/test_breaker2.py)
    directory, calls = profile_dir
    path = plans.machine_profile()["path"]
    with open(path) as f:
        stored = json.load(f)
    corrupt(stored)
    with open(path, "w") as f:
        json.dump(stored, f)
    monkeypatch.setattr(plans, "_loaded", {})      # a new process: read from the file
    rng = np.random.default_rng(0)
    net = dn.Sequential([dn.Dense(5, activation="relu"), dn.Dense(3)], seed=0, n_threads=1)
    net.compile("softmax_cross_entropy", "sgd")
    net.fit(rng.normal(size=(32, 4)), rng.integers(0, 3, 32), epochs=1, verbose=0)
    # (fit's fields from the profile; predict's from the defaults: no predict figures)
    assert len(calls) == 2 and plans.fit_source(net.plan_) == "profile"


def test_a_small_estimated_gain_keeps_the_default_sample_blocks():
    """Batch 128 on 2 cores: the default is 64-row blocks; a profile whose
    16-row blocks run 10% faster keeps 64 (the margin is 15%), 50% faster
    moves to 16."""
    def profile(rate_16):
        rates = {"4": 1, "16": rate_16, "64": 100, "256": 100}
        return fake_profile(small_rates=tuple(rates.values()),
                            large_rates=tuple(rates.values()))
    assert plans.plan_for(workload(batch_size=128), profile(110)).sample_rows == 64
    assert plans.plan_for(workload(batch_size=128), profile(150)).sample_rows == 16


def test_the_real_measurement_uses_cpu_time_and_records_its_conditions():
    profile = plans.measure_profile()
    assert profile["cores"] == plans.usable_cores()
    assert abs(profile["measured_at"] - time.time()) < 600
    assert "CPU time" in profile["timer"]


def test_profiling_off_means_the_defaults(monkeypatch):
    monkeypatch.setenv("DESCEND_PROFILE", "0")
    assert plans.machine_profile() is None
    assert plans.choose(workload()).source == "defaults"


def test_the_real_measurement_has_every_field():
    profile = plans.measure_profile()
    for dtype in ("float32", "float64"):
        assert set(profile["sparse_break_even"][dtype]) == {
            str(b) for b in plans.SPARSE_PROBE_BATCHES}
        assert all(0 < value < 100 for value in profile["sparse_break_even"][dtype].values())
        for width in plans.PROFILE_WIDTHS:
            assert set(profile["gemm"][dtype][str(width)]) == {str(r) for r in plans.PROFILE_ROWS}
            assert min(profile["gemm"][dtype][str(width)].values()) > 0
            for batch in plans.UPDATE_PROBE_BATCHES:
                rates = profile["gemm_update"][dtype][str(batch)][str(width)]
                assert set(rates) == {str(r) for r in plans.PROFILE_UPDATE_ROWS}
                assert min(rates.values()) > 0


# --------------------------------------------- every plan against the reference
def sparse_rows(rng, n, d, density, dtype):
    x = rng.normal(size=(n, d))
    x[rng.random((n, d)) >= density] = 0
    return x.astype(dtype)


def train(X, y, batch_size, n_threads, plan, optimizer="adam", epochs=2):
    net = dn.Sequential([dn.Dense(70, activation="relu"), dn.Dense(9, activation="tanh"),
                         dn.Dense(3)], input_dim=X.shape[1], dtype=X.dtype.name, seed=5)
    optimizer = dn.optimizers.Adam(0.01) if optimizer == "adam" else dn.optimizers.SGD(0.05)
    net.compile(loss="softmax_cross_entropy", optimizer=optimizer)
    net.build(X.shape[1])
    net.optimizer.build(net._params())
    net.initial_weights = net.get_weights()
    runner = EpochRunner(X, None, y, training.runner_specs(net), net.loss_.code,
                         net.optimizer.kernel_config(), *net.optimizer.clip_settings(),
                         batch_size, n_threads, plan=plan)
    for field in ("sparse_input", "sample_rows"):
        if field in plan:
            assert runner.plan[field] == plan[field]
    step = 0
    for epoch in range(epochs):
        result = runner.run_epoch(np.arange(len(X), dtype=np.intp), net.optimizer.learning_rate,
                                  net.optimizer.weight_decay, step, epoch)
        step = result["step"]
    return net


def compiled_runner(X, y, batch_size, n_threads, sample_weight=None):
    """A compiled loop over X of train()'s net (Adam), and its net."""
    net = dn.Sequential([dn.Dense(70, activation="relu"), dn.Dense(9, activation="tanh"),
                         dn.Dense(3)], input_dim=X.shape[1], dtype=X.dtype.name, seed=5)
    net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.Adam(0.01))
    net.build(X.shape[1])
    net.optimizer.build(net._params())
    runner = EpochRunner(X, None, y, training.runner_specs(net), net.loss_.code,
                         net.optimizer.kernel_config(), *net.optimizer.clip_settings(),
                         batch_size, n_threads, sample_weight=sample_weight)
    return runner, net


@pytest.mark.parametrize("weighted", [False, True])
def test_the_epoch_sums_do_not_depend_on_the_chunks_the_loop_runs_in(weighted):
    # the loop runs chunks of progress_every batches (a team size each) and the
    # out-of-core trainer one call per chunk of rows: the sums must add batch
    # by batch whatever the chunks, or the reported loss changes in its last
    # bits with the progress bar, the timing-chosen team and the memory
    rng = np.random.default_rng(2)
    X = rng.normal(size=(1000, 20))
    y = rng.integers(0, 3, 1000).astype(np.int32)
    weights = rng.uniform(0.1, 3.0, 1000) if weighted else None
    order = np.arange(1000, dtype=np.intp)
    sums = ("loss_sum", "penalty_sum", "n_correct", "weight_sum")

    def epoch(progress_every, split=None):
        runner, net = compiled_runner(X, y, 8, 2, weights)
        if split is None:
            result = runner.run_epoch(order, 0.01, 0.0, 0, 7, None if progress_every == 0
                                      else (lambda *_: None), progress_every)
            return [result[key] for key in sums]
        first = runner.run_epoch(order[:split], 0.01, 0.0, 0, 7)
        runner2 = EpochRunner(X[split:], None, y[split:], training.runner_specs(net),
                              net.loss_.code, net.optimizer.kernel_config(),
                              *net.optimizer.clip_settings(), 8, 2,
                              sample_weight=None if weights is None else weights[split:])
        rest = runner2.run_epoch(order[:1000 - split], 0.01, 0.0, first["step"], 7,
                                 start=tuple(first[key] for key in sums))
        return [rest[key] for key in sums]

    whole = epoch(0)
    assert whole[3] == pytest.approx(1000 if weights is None else weights.sum())
    assert epoch(5) == whole
    assert epoch(3) == whole
    # batch seeds count from each call's first batch: without dropout the
    # same updates, so the same sums carried over from the first 400 rows
    assert epoch(None, split=400) == whole


@pytest.mark.parametrize("optimizer", [dn.optimizers.SGD(0.05),
                                       dn.optimizers.SGD(0.05, momentum=0.9),
                                       dn.optimizers.Adam(0.01)])
def test_the_penalty_sums_do_not_depend_on_the_team_that_ran(optimizer):
    # L1 and L2 on kernels and biases: each batch's penalty adds block by
    # block in one order, whichever thread ran a block and whatever the team
    # (the threads' own subtotals changed the last bits of the loss with the
    # team sizes TeamSize chose, so two fits of one seed reported two losses)
    rng = np.random.default_rng(4)
    X = rng.normal(size=(600, 40))
    y = rng.integers(0, 3, 600).astype(np.int32)
    reg = dn.regularizers.l1_l2(l1=1e-3, l2=1e-3)

    def epoch(teams):
        net = dn.Sequential([dn.Dense(300, activation="relu", kernel_regularizer=reg,
                                      bias_regularizer=reg),
                             dn.Dense(3, kernel_regularizer=reg)],
                            input_dim=40, dtype="float64", seed=5)
        net.compile(loss="softmax_cross_entropy", optimizer=optimizer.from_config(
            optimizer.get_config()))
        net.build(40)
        net.optimizer.build(net._params())
        runner = EpochRunner(X, None, y, training.runner_specs(net), net.loss_.code,
                             net.optimizer.kernel_config(), *net.optimizer.clip_settings(),
                             20, 2, plan={"kernel_rows": 16})
        chosen = iter(teams * 100)
        runner.team.choose = lambda: next(chosen)      # the team of each chunk, forced
        result = runner.run_epoch(np.arange(600, dtype=np.intp), 0.05, 0.0, 0, 7,
                                  lambda *_: None, 1)
        assert result["penalty_sum"] > 0
        return ([result[key] for key in ("loss_sum", "penalty_sum")],
                [w.tobytes() for w in net.get_weights()])

    one, two, mixed = epoch([1]), epoch([2]), epoch([2, 1, 1, 2, 2])
    assert one == two == mixed


@pytest.mark.parametrize("progress_every", [1, 5, 7, 100])
def test_progress_comes_at_the_multiples_of_progress_every_whatever_the_chunks(
        progress_every):
    # the loop's first chunks are short (1, 2, 4, ... batches), a retry of
    # the other team size runs one batch and chunks are at most 64 batches:
    # progress still comes at the multiples of progress_every, and after
    # the last batch
    rng = np.random.default_rng(3)
    X = rng.normal(size=(1000, 20))
    y = rng.integers(0, 3, 1000).astype(np.int32)
    runner, _ = compiled_runner(X, y, 4, 2)          # 250 batches
    runner.team.one_thread_seconds = 0.0               # a retry of one thread at once
    calls = []
    runner.run_epoch(np.arange(1000, dtype=np.intp), 0.01, 0.0, 0, 7,
                     lambda done, loss: calls.append(done), progress_every)
    assert calls == list(range(progress_every, 250, progress_every)) + [250]
    assert len(runner.team.seconds) == 2                # both team sizes ran


def test_the_one_thread_estimate_is_every_product_at_the_profiles_rate(monkeypatch):
    # 784-256-10 at batch 64: the profile measured 64-row blocks against a
    # 256-wide kernel (nearest to both layers' sizes) at 110 GFLOP/s; the
    # first layer has no input gradient
    flops = 2 * 2 * 64 * 784 * 256 + 3 * 2 * 64 * 256 * 10
    assert plans.one_thread_batch_seconds(((784, 256), (256, 10)), "float32", 64,
                                          fake_profile()) == pytest.approx(flops / 110e9)
    monkeypatch.setenv("DESCEND_PROFILE", "0")
    assert plans.one_thread_batch_seconds(((784, 256),), "float32", 64) is None


def test_run_epoch_checks_start_and_progress_every():
    runner, _ = compiled_runner(np.ones((10, 4)), np.zeros(10, np.int32), 5, 1)
    order = np.arange(10, dtype=np.intp)
    with pytest.raises(ValueError, match="start must be 4 sums"):
        runner.run_epoch(order, 0.01, 0.0, 0, 0, start=(1.0, 2.0))
    # (it divided by zero: a SIGFPE that killed the process)
    with pytest.raises(ValueError, match="progress_every must be >= 1"):
        runner.run_epoch(order, 0.01, 0.0, 0, 0, lambda *_: None, 0)


PLANS = [{"sparse_input": s, "sample_rows": r, "kernel_rows": k}
         for s in (False, True) for r, k in ((1, 1), (3, 7), (16, 64), (64, 200))]
# team_by_columns: layer by layer, blocks of output columns (PLANS[6:] keeps
# them in the thread-count test below)
PLANS += [{"sparse_input": s, "sample_rows": r, "kernel_rows": k, "by_columns": True}
          for s in (False, True) for r, k in ((3, 7), (16, 64))]


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: "-".join(str(v) for v in p.values()))
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_every_plan_trains_as_the_per_layer_path(plan, optimizer):
    rng = np.random.default_rng(1)
    X = sparse_rows(rng, 90, 50, 0.2, np.float64)
    y = rng.integers(0, 3, len(X)).astype(np.int32)
    net = train(X, y, 16, 2, plan, optimizer)
    reference = dn.Sequential([dn.Dense(70, activation="relu"),
                               dn.Dense(9, activation="tanh"), dn.Dense(3)],
                              input_dim=50, dtype="float64", seed=5)
    reference.build(50)
    reference.set_weights(net.initial_weights)
    reference.compile(loss="softmax_cross_entropy",
                      optimizer=dn.optimizers.Adam(0.01) if optimizer == "adam"
                      else dn.optimizers.SGD(0.05))
    for _ in range(2):
        for start in range(0, len(X), 16):
            reference.train_on_batch(X[start:start + 16], y[start:start + 16])
    for a, b in zip(net.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("plan", PLANS[2:4] + PLANS[6:], ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_plan_gives_the_same_bits_for_any_thread_count(plan, dtype):
    rng = np.random.default_rng(2)
    X = sparse_rows(rng, 200, 60, 0.2, dtype)
    y = rng.integers(0, 3, len(X)).astype(np.int32)
    one = train(X, y, 50, 1, plan).get_weights()
    two = train(X, y, 50, 2, plan).get_weights()
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_by_columns_names_its_strategy_and_records_when_it_cannot_run(optimizer):
    def runner(batch_size):
        return small_runner(optimizer, batch_size, 2, {"by_columns": True})
    assert runner(8).strategy == "team_by_columns"
    assert runner(8).plan["by_columns"] is True
    # batch 1 plain SGD keeps its per-sample path, and the plan says so
    one = runner(1)
    assert one.strategy == ("per_sample_sgd" if optimizer == "sgd" else "team_by_columns")
    assert one.plan["by_columns"] is (optimizer != "sgd")


def cached_profile(l2_bytes, small_rows_rate, large_rows_rate):
    """A profile whose 1-thread GEMM rate grows with the rows per call."""
    rates = {str(r): small_rows_rate + (large_rows_rate - small_rows_rate) * i / 3
             for i, r in enumerate(plans.PROFILE_ROWS)}
    return {"gemm": {dt: {str(w): dict(rates) for w in plans.PROFILE_WIDTHS}
                     for dt in ("float32", "float64")},
            "sparse_break_even": {"float32": 0.2, "float64": 0.2},
            "l2_cache_bytes": l2_bytes}


def wide(batch_size, width=1024, cores=2):
    return plans.Workload(layer_shapes=((784, width), (width, width), (width, 10)),
                          dtype="float32", batch_size=batch_size, density=1.0, cores=cores)


def test_by_columns_rule_needs_a_kernel_beyond_l2_and_a_faster_estimate():
    profile = cached_profile(2 * 2**20, 10.0, 100.0)
    # 1024 x 1024 float32 (4 MB) > 2 MB L2; the batch's rows per GEMM double
    assert plans.plan_for(wide(32), profile).by_columns
    assert plans.plan_for(wide(32), profile).as_dict()["by_columns"] is True
    # the kernels fit the L2 cache: by samples
    assert not plans.plan_for(wide(32, width=256), profile).by_columns
    assert not plans.plan_for(wide(32), cached_profile(64 * 2**20, 10.0, 100.0)).by_columns
    # GEMMs as fast on few rows as on many: no gain, the default stays
    assert not plans.plan_for(wide(32), cached_profile(2 * 2**20, 50.0, 50.0)).by_columns
    # one core, no profile, an unknown cache size: by samples
    assert not plans.plan_for(wide(32, cores=1), profile).by_columns
    assert not plans.plan_for(wide(32), None).by_columns
    assert not plans.plan_for(wide(32), cached_profile(None, 10.0, 100.0)).by_columns
    # forced either way
    assert not plans.plan_for(wide(32), profile, {"by_columns": False}).by_columns
    assert plans.plan_for(wide(32, width=64), None, {"by_columns": True}).by_columns


def update_profile(thin_rate, whole_rate=100.0):
    """A profile whose phase-B products run at thin_rate GFLOP/s on blocks
    of 64-128 kernel rows and at whole_rate on 256 or more (any width and
    batch); the other figures as fake_profile's."""
    rates = {"64": thin_rate, "128": thin_rate, "256": whole_rate, "512": whole_rate}
    table = {str(n): {str(w): dict(rates) for w in plans.PROFILE_WIDTHS}
             for n in plans.UPDATE_PROBE_BATCHES}
    return {**fake_profile(), "gemm_update": {"float32": table, "float64": table}}


DEEP_256 = ((784, 256),) + ((256, 256),) * 5 + ((256, 10),)


def test_the_deal_gives_each_block_to_the_least_loaded_thread():
    """Whole layers of a deep net balance over two threads (rows x outputs:
    784 x 256 on thread 0, then 256 x 256 layers on thread 1 until it has
    more); for any net, every block goes to the thread with the least work
    so far (the runner takes its deal from plans.deal_blocks)."""
    owners = plans.deal_blocks(DEEP_256, [784] + [256] * 6, 2)
    assert owners == [0, 1, 1, 1, 1, 0, 1]
    work = [0, 0]
    for owner, (n_in, n_out) in zip(owners, DEEP_256):
        work[owner] += n_in * n_out
    assert work == [784 * 256 + 256 * 256, 4 * 256 * 256 + 256 * 10]
    # one block per core and layer: every thread gets one block of each layer
    assert plans.deal_blocks(((8, 4), (6, 4)), [4, 3], 2) == [0, 1, 0, 1]
    assert plans.deal_blocks(((8, 4),), [4], 1) == [0, 0]
    rng = np.random.default_rng(3)
    for _ in range(200):
        sizes = rng.integers(1, 300, rng.integers(2, 8))
        shapes = tuple(zip(sizes[:-1].tolist(), sizes[1:].tolist()))
        rows = rng.integers(1, 200, len(shapes)).tolist()
        team = int(rng.integers(1, 6))
        work = [0] * team
        blocks = [(k0, n_out, min(r, n_in - k0)) for (n_in, n_out), r in zip(shapes, rows)
                  for k0 in range(0, n_in, r)]
        for owner, (_, n_out, r) in zip(plans.deal_blocks(shapes, rows, team), blocks,
                                         strict=True):
            assert work[owner] == min(work) and owner == work.index(min(work))
            work[owner] += r * n_out


def test_thin_phase_b_blocks_give_way_to_whole_layers_when_the_profile_says_so():
    """Batch 1024 on 2 cores: the default cuts each 256-wide layer into two
    blocks of 128 kernel rows; a profile where such blocks run at half the
    rate of whole layers moves them to whole layers (the deal balances
    them), one where they run 10% slower keeps the default (the margin),
    and so do a profile without the phase-B figures and batch 64."""
    deep = workload(DEEP_256, batch_size=1024, density=1.0)
    default = (392,) + (128,) * 6
    assert plans.plan_for(deep, None).kernel_rows == default
    assert plans.plan_for(deep, update_profile(50.0)).kernel_rows == (784,) + (256,) * 6
    assert plans.plan_for(deep, update_profile(90.0)).kernel_rows == default
    assert plans.plan_for(deep, fake_profile()).kernel_rows == default
    assert plans.plan_for(workload(DEEP_256, batch_size=64, density=1.0),
                          update_profile(50.0)).kernel_rows == (64,) * 7
    # one core: one block per layer anyway
    assert plans.plan_for(workload(DEEP_256, batch_size=1024, density=1.0, cores=1),
                          update_profile(50.0)).kernel_rows == (784,) + (256,) * 6
    # the sparse first layer keeps its blocks (the profile's sparse probe ran them)
    sparse = plans.plan_for(workload(DEEP_256, batch_size=1024), update_profile(50.0))
    assert sparse.sparse_input and sparse.kernel_rows[:6] == (392,) + (256,) * 5
    # forced kernel rows win
    assert plans.plan_for(deep, update_profile(50.0), {"kernel_rows": 64}).kernel_rows == (64,) * 7


def test_whole_layers_are_searched_in_groups_that_balance_the_deal():
    """Thin blocks at 60% of the whole rate: one 256 x 256 layer made whole
    alone loses (the deal puts it beside a thread's other blocks), so a
    search that moves one layer at a time keeps the default; four of the
    five made whole balance over the two threads (784 x 256 cut in two,
    two whole layers beside each half), which the model estimates 23%
    faster, over the margin."""
    deep = workload(DEEP_256, batch_size=1024, density=1.0)
    profile = update_profile(60.0)
    default = (392,) + (128,) * 6
    found = (392, 256, 256, 256, 256, 128, 128)
    assert plans.plan_for(deep, profile).kernel_rows == found
    seconds = [plans._phase_b_seconds(profile, deep, rows, False) for rows in (found, default)]
    assert seconds[0] == pytest.approx(0.767 * seconds[1], rel=1e-3)
    # every single-layer move from the default estimates slower or no faster
    for i in range(1, 6):
        one = default[:i] + (256,) + default[i + 1:]
        assert plans._phase_b_seconds(profile, deep, one, False) >= seconds[1]
    # the busiest thread has 2.25 layers' work of 256 x 256 in blocks of 256 rows
    work = [0, 0]
    for owner, (n_in, n_out, rows) in zip(
            plans.deal_blocks(DEEP_256, found, 2),
            [(n, o, r) for (n, o), r in zip(DEEP_256, found) for _ in range(0, n, r)]):
        work[owner] += min(rows, n_in) * n_out
    assert work == [392 * 256 + 2 * 256 * 256 + 128 * 256 + 128 * 10,
                    392 * 256 + 2 * 256 * 256 + 128 * 256 + 128 * 10]


def test_by_columns_deals_each_layer_round_robin():
    """team_by_columns gives block b of each layer to thread b mod team
    (_columns_backward: thread t starts at t * kernel_rows and steps by
    team * kernel_rows); plans.column_deal models it."""
    assert plans.column_deal(((8, 4), (6, 4)), [3, 4], 2) == [0, 1, 0, 0, 1]
    assert plans.column_deal(((8, 4),), [8], 3) == [0]
    assert plans.column_deal(((10, 4), (5, 2)), [2, 5], 3) == [0, 1, 2, 0, 1, 0]


def test_small_batches_by_columns_search_thicker_phase_b_blocks():
    """Batch 32 on a wide net: by columns, blocks of 64 kernel rows (the
    small-batch default) give way to thicker ones where the profile's
    phase-B rates say thin blocks run at half speed: every layer one
    block per core (balanced over the two threads; 512 or 256 rows for
    the last, 2048 x 10, estimate the same, and the tie keeps the earlier
    move), estimated at half the default's time; a 10% difference
    keeps the default (the margin), and so does the split by samples
    (where such blocks ran no faster, see _kernel_rows)."""
    wide = workload(((784, 2048), (2048, 2048), (2048, 10)), batch_size=32, density=1.0)
    profile = update_profile(50.0)
    found = plans.plan_for(wide, profile, {"by_columns": True}).kernel_rows
    assert found == (392, 1024, 1024)
    default = (64, 64, 64)
    assert plans._phase_b_seconds(profile, wide, found, False, by_columns=True) == \
        pytest.approx(0.498 * plans._phase_b_seconds(profile, wide, default, False,
                                                     by_columns=True), rel=1e-2)
    assert plans.plan_for(wide, update_profile(90.0), {"by_columns": True}).kernel_rows == \
        default
    assert plans.plan_for(wide, profile, {"by_columns": False}).kernel_rows == default


def test_the_by_columns_model_counts_the_input_gradient_products():
    """By columns, every layer after the first also computes the previous
    layer's dL/dz on its blocks' columns (the same shapes as the kernel's
    gradient): twice the work, the deal round robin per layer."""
    profile = update_profile(100.0)
    two = workload(((256, 256),) * 2, batch_size=1024, density=1.0)
    block = 2 * 128 * 256 * 1024 / 100.0 * 1e-9
    # each thread: one 128-row block of each layer; the second layer's costs two products
    assert plans._phase_b_seconds(profile, two, (128, 128), False, by_columns=True) == \
        pytest.approx(3 * block)
    assert plans._phase_b_seconds(profile, two, (128, 128), False) == pytest.approx(2 * block)


def test_the_phase_b_model_counts_the_busiest_thread():
    """Two equal layers of one block each take one thread each (the time of
    one); three take two on one thread (the time of two)."""
    profile = update_profile(100.0)
    two = workload(((256, 256),) * 2, batch_size=1024, density=1.0)
    three = workload(((256, 256),) * 3, batch_size=1024, density=1.0)
    one_block = 2 * 256 * 256 * 1024 / 100.0 * 1e-9
    assert plans._phase_b_seconds(profile, two, (256, 256), False) == pytest.approx(one_block)
    assert plans._phase_b_seconds(profile, three, (256,) * 3, False) == pytest.approx(
        2 * one_block)


def test_the_l2_cache_size_is_read_from_sysfs(tmp_path):
    for index, (level, kind, size) in enumerate([("1", "Data", "48K"),
                                                  ("1", "Instruction", "32K"),
                                                  ("2", "Unified", "2048K")]):
        entry = tmp_path / f"index{index}"
        entry.mkdir()
        (entry / "level").write_text(level + "\n")
        (entry / "type").write_text(kind + "\n")
        (entry / "size").write_text(size + "\n")
    assert plans.l2_cache_bytes(str(tmp_path)) == 2 * 2**20
    assert plans.l2_cache_bytes(str(tmp_path / "missing")) is None


def test_the_runner_records_its_plan(monkeypatch):
    rng = np.random.default_rng(3)
    X = sparse_rows(rng, 40, 30, 0.1, np.float64)
    y = rng.integers(0, 3, len(X)).astype(np.int32)
    monkeypatch.setenv("DESCEND_PLAN", "sample_rows=5")
    runner_plan = train(X, y, 10, 1, {}, epochs=1)
    assert plans.last_plan()[1].sample_rows == 5
    assert plans.last_plan()[1].source == "forced+defaults"
    assert runner_plan is not None


# ------------------------------------------------- the dispatched row loops
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_out", [1, 7, 16, 33, 130, 257])
def test_avx2_and_avx512_row_loops_give_the_same_bits(dtype, n_out):
    """Both run the same FMA chain per element: a plan pinned on one CPU
    reproduces on the other."""
    widest = _sparse._use_isa("avx512")
    if widest != "avx512":
        pytest.skip("this CPU has no AVX-512")
    rng = np.random.default_rng(n_out)
    x = sparse_rows(rng, 37, 91, 0.3, dtype)
    w = rng.normal(size=(91, n_out)).astype(dtype)
    dz = rng.normal(size=(37, n_out)).astype(dtype)
    outputs = []
    try:
        for isa in ("avx512", "avx2"):
            _sparse._use_isa(isa)
            z = np.empty((37, n_out), dtype)
            _sparse.sparse_forward_py(x, w, None, z, z, Activation.IDENTITY, 0.0)
            grad = np.zeros_like(w)
            _sparse.sparse_grad_kernel_py(x, dz, grad, 0, 91, 1.0)
            outputs.append((z, grad, _sparse.nonzero_entries_py(x)))
    finally:
        _sparse._use_isa(widest)
    (z1, g1, c1), (z2, g2, c2) = outputs
    np.testing.assert_array_equal(z1, z2)
    np.testing.assert_array_equal(g1, g2)
    for a, b in zip(c1, c2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(z1, x @ w, rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-4 if dtype == np.float32 else 1e-12)


def test_cpu_features_and_the_loops_in_use():
    features = _sparse.cpu_features()
    assert set(features) == {"avx2", "avx512f"}
    expected = "avx512" if features["avx512f"] else ("avx2" if features["avx2"] else "portable")
    assert _sparse.ISA == expected
    with pytest.raises(ValueError, match="name"):
        _sparse._use_isa("sse9")


def test_fit_records_its_plan_and_a_pinned_plan_is_used():
    rng = np.random.default_rng(4)
    X = sparse_rows(rng, 60, 20, 0.1, np.float64)
    y = rng.integers(0, 3, len(X))
    net = dn.Sequential([dn.Dense(8, activation="relu"), dn.Dense(3)], input_dim=20,
                        dtype="float64", seed=0)
    net.compile(loss="softmax_cross_entropy", optimizer="sgd")
    net.fit(X, y, epochs=1, batch_size=10, verbose=0)
    assert net.plan_["sparse_input"] and net.plan_["source"] == "defaults"
    net.plan = {"sparse_input": False, "sample_rows": 3}
    net.fit(X, y, epochs=1, batch_size=10, verbose=0)
    assert (net.plan_["sparse_input"], net.plan_["sample_rows"]) == (False, 3)


def test_show_config_and_the_info_command(capsys, monkeypatch):
    from descend.__main__ import main
    monkeypatch.setenv("DESCEND_PROFILE", "0")
    dn.show_config()
    out = capsys.readouterr().out
    assert "cpu:" in out and "openmp_enabled:" in out and "profile: off" in out
    assert f"simd_loops: {_sparse.ISA}" in out
    assert main(["info"]) == 0
    assert "plans:" in capsys.readouterr().out


@pytest.mark.parametrize("optimizer, batch_size, strategy", [
    ("sgd", 1, "per_sample_sgd"), ("sgd", 10, "team_gemm_sgd"), ("adam", 1, "team_general"),
    ("adam", 10, "team_general")])
def test_the_runner_names_its_strategy(optimizer, batch_size, strategy):
    assert small_runner(optimizer, batch_size).strategy == strategy


def small_runner(optimizer, batch_size, n_threads=1, plan=None):
    """An EpochRunner of a 12-5-3 net on 30 half-zero rows (SGD or Adam)."""
    rng = np.random.default_rng(5)
    X = sparse_rows(rng, 30, 12, 0.5, np.float64)
    y = rng.integers(0, 3, len(X)).astype(np.int32)
    net = dn.Sequential([dn.Dense(5, activation="relu"), dn.Dense(3)], input_dim=12,
                        dtype="float64", seed=0)
    net.compile(loss="softmax_cross_entropy",
                optimizer=dn.optimizers.SGD(0.1) if optimizer == "sgd" else dn.optimizers.Adam())
    net.build(12)
    net.optimizer.build(net._params())
    return EpochRunner(X, None, y, training.runner_specs(net), net.loss_.code,
                       net.optimizer.kernel_config(), *net.optimizer.clip_settings(),
                       batch_size, n_threads, plan=plan)


# ------------------------------------------------- the plan saved with a model
def trained_net(plan=None):
    rng = np.random.default_rng(0)
    X = (rng.random((96, 30)) * (rng.random((96, 30)) < 0.2)).astype(np.float32)
    y = rng.integers(0, 3, 96)
    net = dn.Sequential([dn.Dense(8, activation="relu"), dn.Dense(3)], input_dim=30, seed=0,
                        n_threads=1)
    net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(0.1))
    net.plan = plan
    net.fit(X, y, epochs=1, batch_size=32, verbose=0)
    return net, X, y


def test_the_plan_is_saved_with_the_model_and_pinned_from_the_file(tmp_path):
    pinned = {"sparse_input": True, "sample_rows": 16}
    net, X, y = trained_net(pinned)
    assert net.plan_["sparse_input"] is True and net.plan_["sample_rows"] == 16
    state = net.state_dict()
    assert state["plan"] == {"pinned": pinned, "used": net.plan_}
    path = net.save(tmp_path / "model.npz")
    loaded = dn.load(path)
    assert loaded.plan == pinned and loaded.plan_ == net.plan_
    # pinning the used plan reproduces the next epoch bit for bit
    loaded.plan = None
    assert loaded.pin_plan() == {k: v for k, v in net.plan_.items() if k != "source"}
    net.fit(X, y, epochs=1, batch_size=32, verbose=0, shuffle=False)
    loaded.fit(X, y, epochs=1, batch_size=32, verbose=0, shuffle=False)
    for a, b in zip(net.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert loaded.plan_["source"] == "forced"


def test_the_plan_entry_is_optional_both_ways(tmp_path):
    """States and files without a plan load (the plan is then None); files
    with one keep the state entry that descend before the plan reads."""
    net, _, _ = trained_net()
    state = net.state_dict()
    del state["plan"]
    other = trained_net({"sample_rows": 4})[0]
    other.load_state_dict(state)
    assert other.plan is None and other.plan_ is None
    path = net.save(tmp_path / "model.npz")
    with np.load(path, allow_pickle=False) as data:
        config = json.loads(str(data["config"][()]))
    assert "plan" not in config["state"] and config["plan"]["used"] == net.plan_


@pytest.mark.parametrize("bad", [{"rows": 3}, {"sample_rows": 0}, {"sparse_input": "yes"},
                                 {"kernel_rows": [4, -1]}, "sparse", {"source": 3}])
def test_an_invalid_plan_is_rejected_naming_it(bad):
    net, _, _ = trained_net()
    with pytest.raises(ValueError, match="plan"):
        net.pin_plan(bad)
    state = net.state_dict()
    state["plan"] = {"pinned": bad, "used": None}
    with pytest.raises(ValueError, match="plan"):
        net.load_state_dict(state)
    with pytest.raises(ValueError, match="plan: no plan given"):
        dn.Sequential([dn.Dense(2)], input_dim=3).pin_plan()


# ---- the profile's timings: rounds while the spread needs them, one warm-up ----

class ScriptedClock:
    """A thread_time that each run moves on by its next scripted duration."""
    def __init__(self):
        self.now = 0.0

    def thread_time(self):
        return self.now

    def run(self, durations, calls):
        durations = iter(durations)

        def run():
            calls.append(1)
            self.now += next(durations)
        return run


@pytest.mark.parametrize("noisy, rounds", [
    ((1.0, 1.0, 1.0625), 2),                   # two within 10%: the least rounds
    ((1.0, 1.0, 1.125, 1.0625), 3),            # three within 10% of the median
    ((1.0, 1.0, 1.25, 1.0, 1.0625), 4),        # (1.25 left out)
    ((1.0, 1.0, 2.0, 1.5, 3.0, 1.25), 5),      # never settled: every round taken
])
def test_each_run_is_timed_until_its_timings_agree(monkeypatch, noisy, rounds):
    clock, calls = ScriptedClock(), []
    monkeypatch.setattr(plans, "time", clock)
    steady = clock.run([2.0] * 6, calls)      # (a warm-up, then the rounds)
    seconds = plans._timed_rounds({"steady": steady, "noisy": clock.run(noisy, calls)})
    assert seconds == {"steady": [2.0] * 2, "noisy": list(noisy[1:rounds + 1])}
    assert len(calls) == 2 + 2 + rounds
    # at least min_rounds each, however well they agree
    clock, calls = ScriptedClock(), []
    monkeypatch.setattr(plans, "time", clock)
    assert plans._timed_rounds({"steady": clock.run([2.0] * 6, calls)}, min_rounds=4) == {
        "steady": [2.0] * 4}
    assert (plans.PROFILE_MIN_ROUNDS, plans.PROFILE_ROUNDS, plans.PROFILE_SPREAD) == (2, 5, 0.1)


def test_runs_with_their_memory_written_share_one_warm_up(monkeypatch):
    clock, calls = ScriptedClock(), []
    monkeypatch.setattr(plans, "time", clock)
    runs = {name: clock.run([1.0] * 4, calls) for name in "abc"}
    assert plans._timed_rounds(runs, warm_all=False) == {name: [1.0] * 2 for name in "abc"}
    assert len(calls) == 1 + 3 * 2


def test_the_probes_share_one_draw_of_operands_apart_from_each_other():
    a, b = plans._operands(np.random.default_rng(0), "float32")
    assert a.dtype == b.dtype == np.float32 and a.base is b.base is not None
    assert a.size == max(plans.PROFILE_WIDTHS) ** 2
    assert b.size == max(plans.UPDATE_PROBE_BATCHES) * max(plans.PROFILE_UPDATE_ROWS)
    assert not np.shares_memory(a, b)
    runs = plans._update_runs((a, b))
    run = runs[(128, 256, 64)][0]
    assert set(runs) == {(n, w, r) for n in plans.UPDATE_PROBE_BATCHES
                         for w in plans.PROFILE_WIDTHS for r in plans.PROFILE_UPDATE_ROWS}
    # each timing does at least 8 MFLOP (a whole number of products)
    for (n, width, rows), (run, flops) in runs.items():
        product = 2 * n * width * rows
        assert flops % product == 0 and (flops >= 8e6 or flops == product)
    run()


def test_a_profile_of_another_format_is_measured_again(profile_dir, monkeypatch):
    """A profile stored by a descend whose profile held other fields (format
    7: the same names, measured otherwise) is not read as this format's."""
    directory, calls = profile_dir
    stored = plans.machine_profile()
    key = plans.profile_key()
    assert key["format"] == plans.PROFILE_FORMAT == 10
    assert plans.profile_is_stale(stored, {**key, "format": 7})
    monkeypatch.setattr(plans, "_loaded", {})
    monkeypatch.setattr(plans, "profile_key", lambda: {**key, "format": 7})
    plans.machine_profile()
    assert len(calls) == 2 and len(list(directory.iterdir())) == 2


# ---- the rules on a fixed profile: what bench/profile_decisions.py compares ----

# The medians of 20 profiles of the Intel Xeon of issue 13 (family 6 model
# 207, 2 cores, AVX-512; session 8, under load), old and new measurement.
XEON_PROFILE = json.loads('''{
 "gemm": {
  "float32": {
   "256": {
    "4": 55.0,
    "16": 40.0,
    "64": 76.0,
    "256": 92.0
   },
   "1024": {
    "4": 4.0,
    "16": 23.0,
    "64": 59.0,
    "256": 93.0
   }
  },
  "float64": {
   "256": {
    "4": 29.0,
    "16": 28.0,
    "64": 37.0,
    "256": 41.0
   },
   "1024": {
    "4": 9.0,
    "16": 25.0,
    "64": 43.0,
    "256": 49.0
   }
  }
 },
 "gemm_update": {
  "float32": {
   "128": {
    "256": {
     "64": 44.0,
     "128": 76.0,
     "256": 89.0,
     "512": 103.0
    },
    "1024": {
     "64": 50.0,
     "128": 92.0,
     "256": 100.0,
     "512": 111.0
    }
   },
   "1024": {
    "256": {
     "64": 51.0,
     "128": 78.0,
     "256": 93.0,
     "512": 105.0
    },
    "1024": {
     "64": 48.0,
     "128": 75.0,
     "256": 101.0,
     "512": 108.0
    }
   }
  },
  "float64": {
   "128": {
    "256": {
     "64": 31.0,
     "128": 40.0,
     "256": 41.0,
     "512": 42.0
    },
    "1024": {
     "64": 42.0,
     "128": 53.0,
     "256": 55.0,
     "512": 56.0
    }
   },
   "1024": {
    "256": {
     "64": 36.0,
     "128": 42.0,
     "256": 44.0,
     "512": 42.0
    },
    "1024": {
     "64": 44.0,
     "128": 54.0,
     "256": 56.0,
     "512": 56.0
    }
   }
  }
 },
 "sparse_break_even": {
  "float32": {
   "16": 0.391,
   "128": 0.376,
   "512": 0.322
  },
  "float64": {
   "16": 0.51,
   "128": 0.357,
   "512": 0.298
  }
 },
 "predict": {
  "float32": {
   "sparse_break_even": 0.377,
   "row_loop_gflops": {
    "256": 59.0,
    "1024": 26.0
   }
  },
  "float64": {
   "sparse_break_even": 0.355,
   "row_loop_gflops": {
    "256": 26.0,
    "1024": 12.0
   }
  }
 },
 "l2_cache_bytes": 2097152
}''')


def net_shapes(width, depth):
    sizes = [784] + [width] * depth + [10]
    return tuple(zip(sizes[:-1], sizes[1:]))


@pytest.mark.parametrize("shapes, dtype, density, batch_size, expected", [
    (MNIST_LIKE, "float32", 0.191, 1, (True, 1, (64, 64, 64), False)),
    (MNIST_LIKE, "float32", 0.191, 32, (True, 4, (64, 64, 64), False)),
    (MNIST_LIKE, "float32", 0.191, 128, (True, 64, (392, 128, 64), False)),
    (MNIST_LIKE, "float32", 0.191, 1024, (True, 512, (392, 128, 64), False)),
    (MNIST_LIKE, "float64", 1.0, 256, (False, 128, (392, 128, 64), False)),
    (net_shapes(1024, 2), "float32", 1.0, 128, (False, 64, (392, 512, 512), True)),
    (net_shapes(2048, 6), "float32", 0.191, 256, (True, 128, (392,) + (1024,) * 6, True)),
    (net_shapes(1024, 2), "float64", 1.0, 1024, (False, 512, (392, 512, 512), False)),
    (net_shapes(64, 6), "float32", 1.0, 8, (False, 4, (64,) * 7, False)),
    (net_shapes(256, 6), "float64", 0.191, 1024, (True, 512, (392,) + (128,) * 6, False)),
])
def test_the_default_shapes_get_their_plans_from_a_fixed_profile(shapes, dtype, density,
                                                                 batch_size, expected):
    """The rules (profile -> plan) pinned on one machine's profile, for cells
    of bench/shapes.py's sweep and MNIST's net (the profile's measurement is
    compared by bench/profile_decisions.py; timings belong there, not here)."""
    plan = plans.plan_for(workload(shapes, batch_size, density, dtype=dtype), XEON_PROFILE)
    assert (plan.sparse_input, plan.sample_rows, plan.kernel_rows, plan.by_columns,
            plan.source) == expected + ("profile",)
    assert plans._figures_are_valid(XEON_PROFILE)       # as a stored one would be read


@pytest.mark.parametrize("shapes, dtype, expected", [
    # the break-evens (37.7% float32, 35.5% float64) are within the margin of the
    # default 35%: it holds.
    # hidden layers' GEMM / row-loop time at 4, 16, 64, 256 rows in this profile:
    # 1.07, 1.48, 0.78, 0.64: row loops at 16 rows (GEMMs 48% slower)
    (MNIST_LIKE, "float32", (0.35, 64)),
    # 0.90, 0.93, 0.70, 0.63: GEMMs 10% faster at 4 rows is inside the 15% margin
    # (without it: from 4 rows)
    (MNIST_LIKE, "float64", (0.35, 16)),
    # 6.48, 1.13, 0.44, 0.28: GEMMs 13% slower at 16 rows, inside the margin too
    # (without it: from 64 rows)
    (net_shapes(1024, 2), "float32", (0.35, 16)),
    (net_shapes(1024, 2), "float64", (0.35, 16)),
])
def test_predicts_thresholds_from_a_fixed_profile(shapes, dtype, expected):
    from descend._inference import thresholds_from_profile
    limits = thresholds_from_profile(XEON_PROFILE, shapes, dtype)
    assert (limits.sparse_density, limits.gemm_min_rows, limits.source) == expected + ("profile",)


@pytest.mark.parametrize("plan", [{"sample_rows": 0}, "sparse"])
def test_train_on_batch_refuses_a_plan_that_fit_and_save_refuse(plan):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 3)), rng.integers(0, 2, 16)
    net = dn.Sequential([dn.Dense(2, activation="softmax")], input_dim=3, seed=0)
    net.compile(loss="softmax_cross_entropy", optimizer="sgd")
    before = net.get_weights()
    net.plan = plan
    with pytest.raises((ValueError, TypeError), match="plan"):
        net.train_on_batch(X, y)
    for old, new in zip(before, net.get_weights()):
        np.testing.assert_array_equal(old, new)
